//! The TLS step: a client handshake over an L4 stream, by whichever
//! backend the connector was built with.

use std::sync::Arc;
use std::time::Duration;

use pingora_error::{Error, ErrorType, Result};

use crate::protocols::Stream;
use crate::tls::{ClientParams, ConnectorImpl};
use crate::upstreams::Peer;

/// Run the client handshake for `peer` over `stream` within `timeout`.
///
/// Errors are marked as from the upstream: [`ErrorType::TLSHandshakeTimedout`]
/// (retryable), [`ErrorType::InvalidCert`] and
/// [`ErrorType::TLSHandshakeFailure`] (not retryable: the same peer would
/// fail the same way).
pub(super) async fn handshake<P: Peer + ?Sized>(
    tls: &Arc<dyn ConnectorImpl>,
    stream: Stream,
    peer: &P,
    timeout: Duration,
) -> Result<Stream> {
    let params = ClientParams {
        sni: peer.sni(),
        addr: peer.address(),
        options: peer.options(),
    };
    match tokio::time::timeout(timeout, tls.connect(stream, params)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err(e.more_context(format!("TLS to {peer}")).into_up()),
        Err(_) => {
            let mut e = Error::explain(
                ErrorType::TLSHandshakeTimedout,
                format!("TLS to {peer}: no handshake within {timeout:?}"),
            )
            .into_up();
            e.set_retry(true);
            Err(e)
        }
    }
}
