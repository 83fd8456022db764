//! Admitting a connection just accepted, before TLS or the app: read the
//! PROXY protocol header its listener asks for, then ask the service's
//! connection filter whether to serve the client.

use crate::listeners::proxy_protocol::accept_header;
use crate::listeners::{ConnectionFilter, ProxyProtocolSettings};
use crate::protocols::Stream;

/// `stream` if it may be served, its digest naming the client a trusted
/// PROXY header carried; `None` when it was refused and must be closed
/// (nothing is written to it).
pub(super) async fn admit(
    stream: Stream,
    proxy: Option<&ProxyProtocolSettings>,
    filter: Option<&dyn ConnectionFilter>,
) -> Option<Stream> {
    let stream = match proxy {
        Some(settings) => {
            let socket_peer = stream.digest().and_then(|d| d.peer_addr.clone());
            match accept_header(stream, settings).await {
                Ok(stream) => stream,
                Err(why) => {
                    crate::metrics::proxy_header_rejected(why.index());
                    log::debug!(
                        "closing the connection from {socket_peer:?}: PROXY header {why:?}"
                    );
                    return None;
                }
            }
        }
        None => stream,
    };
    if let Some(filter) = filter {
        let peer = stream.digest().and_then(|d| d.peer_addr.as_ref());
        if !filter.should_accept(peer).await {
            crate::metrics::connection_filtered();
            log::debug!("connection from {peer:?} dropped by the connection filter");
            return None;
        }
    }
    Some(stream)
}
