//! Connecting to a peer through an HTTP proxy: `CONNECT` (RFC 9110
//! §9.3.6), then the peer's own protocol through the tunnel.

use std::time::Duration;

use bytes::BytesMut;
use pingora_error::{Error, ErrorType, OrErr, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::l4;
use crate::protocols::Stream;
use crate::upstreams::{Peer, Proxy};

/// The largest `CONNECT` response head read from a proxy.
const MAX_HEAD: usize = 16 * 1024;

/// Connect to `peer` through `proxy`, the whole exchange within
/// `timeout`: a stream to the peer, through the tunnel. `default_bind` is
/// the source address when the peer's options set none.
///
/// # Errors
///
/// As [`l4::connect`] for reaching the proxy (retryable: nothing reached
/// the peer). [`ErrorType::ConnectProxyFailure`] when the proxy refuses
/// (its status is in the message), closes, or answers something that is
/// not an HTTP/1 response head; [`ErrorType::ConnectTimedout`] when it
/// does not answer in time. All marked as from the upstream.
pub(super) async fn connect<P: Peer + ?Sized>(
    peer: &P,
    proxy: &Proxy,
    default_bind: Option<std::net::IpAddr>,
    timeout: Duration,
) -> Result<Stream> {
    let tunnel = async {
        let mut stream = l4::connect_to(&proxy.next_hop, peer.options(), default_bind, timeout)
            .await
            .map_err(|mut e| {
                e.set_retry(true);
                e
            })?;
        stream
            .write_all(&connect_request(proxy))
            .await
            .or_err(ErrorType::WriteError, "sending CONNECT")?;
        read_connect_response(&mut stream).await?;
        Ok(stream)
    };
    let result = match tokio::time::timeout(timeout, tunnel).await {
        Ok(result) => result,
        Err(_) => Error::e_explain(
            ErrorType::ConnectTimedout,
            format!("no tunnel within {timeout:?}"),
        ),
    };
    result.map_err(|e| {
        let context = format!("connecting to {peer} through {}", proxy.next_hop);
        e.more_context(context).into_up()
    })
}

/// `CONNECT host:port HTTP/1.1` with `Host` and the proxy's fields.
fn connect_request(proxy: &Proxy) -> Vec<u8> {
    // An IPv6 literal is bracketed in an authority (RFC 3986 §3.2.2).
    let host = if proxy.host.contains(':') && !proxy.host.starts_with('[') {
        format!("[{}]", proxy.host)
    } else {
        proxy.host.clone()
    };
    let authority = format!("{host}:{}", proxy.port);
    let mut req = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n").into_bytes();
    for (name, value) in &proxy.headers {
        req.extend_from_slice(name.as_bytes());
        req.extend_from_slice(b": ");
        req.extend_from_slice(value);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"\r\n");
    req
}

/// Read the proxy's answer to `CONNECT`: fine on 2xx with nothing after
/// the head (the peer has not been spoken to, so it cannot have said
/// anything yet).
async fn read_connect_response(stream: &mut Stream) -> Result<()> {
    let mut buf = BytesMut::with_capacity(512);
    loop {
        let read = stream
            .read_buf(&mut buf)
            .await
            .or_err(ErrorType::ReadError, "reading the CONNECT response")?;
        if read == 0 {
            return Error::e_explain(
                ErrorType::ConnectProxyFailure,
                "the proxy closed before answering CONNECT",
            );
        }
        let mut fields = [httparse::EMPTY_HEADER; 64];
        let mut head = httparse::Response::new(&mut fields);
        match head.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => {
                let status = head.code.unwrap_or(0);
                if !(200..300).contains(&status) {
                    return Error::e_explain(
                        ErrorType::ConnectProxyFailure,
                        format!("the proxy refused CONNECT with {status}"),
                    );
                }
                if len != buf.len() {
                    return Error::e_explain(
                        ErrorType::ConnectProxyFailure,
                        "the proxy sent bytes after its CONNECT response",
                    );
                }
                return Ok(());
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => {}
            Ok(httparse::Status::Partial) => {
                return Error::e_explain(
                    ErrorType::ConnectProxyFailure,
                    "the proxy's CONNECT response head is too large",
                );
            }
            Err(e) => {
                return Error::e_explain(
                    ErrorType::ConnectProxyFailure,
                    format!("the proxy's CONNECT response is not HTTP: {e}"),
                );
            }
        }
    }
}
