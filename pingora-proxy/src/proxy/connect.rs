//! Forward-proxy CONNECT (RFC 9110 §9.3.6), for a proxy built
//! [`with_connect`](super::HttpProxy::with_connect): check the target
//! against the [`ConnectPolicy`], resolve it, connect, answer `200`, and
//! relay bytes both ways until either side ends or the tunnel idles.
//!
//! Over HTTP/1 the `200` turns the client connection into the tunnel;
//! over HTTP/2 the tunnel is the CONNECT stream's DATA frames (RFC 9113
//! §8.5), so other streams of the connection go on.

mod policy;

pub use policy::ConnectPolicy;

use crate::Session;
use bytes::{Bytes, BytesMut};
use pingora_core::header::ResponseHeader;
use pingora_error::{Error, ErrorType, OrErr, Result};
use policy::{Allowed, Target, TargetHost};
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Serve a CONNECT the phases did not answer, by `policy`: `400` for a
/// malformed target, `403` for one not allowed (or resolving only to
/// addresses it may not reach), `502`/`504` (by the returned error) when
/// it cannot be reached, else a tunnel.
pub(super) async fn serve(policy: &ConnectPolicy, session: &mut Session) -> Result<()> {
    if session.response_started() {
        return session.finish_response(None).await;
    }
    let Some(target) = target_of(session) else {
        log::debug!("malformed CONNECT target: {}", session.request_summary());
        return session.respond_error(400).await;
    };
    let Some(how) = policy.check(&target) else {
        log::debug!("CONNECT target not allowed: {}", session.request_summary());
        return session.respond_error(403).await;
    };
    // A body on an HTTP/1 CONNECT would sit in front of the tunnel bytes.
    if !session.is_http2() && !session.is_body_done() {
        return session.respond_error(400).await;
    }
    let open = tokio::time::timeout(policy.connect_timeout, open(policy, &target, how)).await;
    let upstream = match open {
        Ok(Ok(Some(stream))) => stream,
        Ok(Ok(None)) => {
            log::debug!("CONNECT target is internal: {}", session.request_summary());
            return session.respond_error(403).await;
        }
        Ok(Err(e)) => return Err(e),
        Err(_) => {
            let why = format!(
                "CONNECT target not reached within {:?}",
                policy.connect_timeout
            );
            return Err(Error::explain(ErrorType::ConnectTimedout, why).into_up());
        }
    };
    if let Ok(addr) = upstream.peer_addr() {
        session.set_upstream_addr(&addr.into());
    }
    let mut resp = ResponseHeader::build(200, Some(0))?;
    resp.set_reason_phrase("Connection Established")?;
    session.set_keepalive(None);
    session.write_head(resp, false).await?;
    session.flush().await?;
    relay(policy, session, upstream).await
}

/// The request's CONNECT target, when well formed: an authority only.
fn target_of(session: &Session) -> Option<Target> {
    let uri = session.req_header().uri();
    if uri.scheme().is_some() || uri.path_and_query().is_some() {
        return None;
    }
    policy::parse_target(uri.authority()?.as_str())
}

/// Resolve `target` and connect to the first address `policy` lets it
/// reach; `None` when it resolves only to addresses it may not reach.
async fn open(policy: &ConnectPolicy, target: &Target, how: Allowed) -> Result<Option<TcpStream>> {
    let addrs: Vec<SocketAddr> = match &target.host {
        TargetHost::Ip(ip) => vec![SocketAddr::new(*ip, target.port)],
        TargetHost::Name(name) => {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((&**name, target.port))
                .await
                .or_err_with(ErrorType::ConnectError, || format!("resolving {name}"))
                .map_err(|e| e.into_up())?
                .collect();
            if found.is_empty() {
                let why = format!("{name} resolved to no address");
                return Err(Error::explain(ErrorType::ConnectError, why).into_up());
            }
            found
        }
    };
    // Connect to the very addresses checked: no second lookup that a
    // rebinding name could answer differently.
    let mut last = None;
    for addr in addrs.into_iter().filter(|a| policy.may_reach(how, a.ip())) {
        match TcpStream::connect(addr).await {
            Ok(stream) => {
                // Small writes (TLS handshakes) go out at once.
                let _ = stream.set_nodelay(true);
                return Ok(Some(stream));
            }
            Err(e) => last = Some((addr, e)),
        }
    }
    match last {
        None => Ok(None),
        Some((addr, e)) => {
            let etype = match e.kind() {
                std::io::ErrorKind::ConnectionRefused => ErrorType::ConnectRefused,
                _ => ErrorType::ConnectError,
            };
            Err(Error::because(etype, format!("connecting to {addr}"), e).into_up())
        }
    }
}

/// Carry bytes both ways until the target closes, or neither side sends
/// anything for the idle timeout. The client ending its side (HTTP/1
/// half-close, HTTP/2 END_STREAM) shuts the target's write side and the
/// target's bytes keep flowing; the target ending its side ends the
/// tunnel. One piece per direction is in flight at a time, so memory
/// stays bounded and each side is slowed down to the other's pace.
///
/// A piece for the target is written while the target's bytes are still
/// read (and passed to the client): waiting for that write alone would
/// deadlock with a target that only reads once its own answer is taken,
/// such as an echo server whose socket buffers are full.
async fn relay(policy: &ConnectPolicy, session: &mut Session, upstream: TcpStream) -> Result<()> {
    let idle = policy.idle_timeout;
    // The tunnel's own idle timer rules; the session's per-read timeout
    // must not end a tunnel whose other direction is busy.
    session.set_read_timeout(Some(idle.saturating_mul(2)));
    let (mut up_read, mut up_write) = upstream.into_split();
    let mut buf = BytesMut::with_capacity(policy.buffer_size);
    let mut client_open = true;
    // Client bytes not yet written to the target, and how far they are.
    let mut to_target: Option<(Bytes, usize)> = None;
    loop {
        buf.clear();
        tokio::select! {
            down = session.read_body_to_forward(), if client_open && to_target.is_none() => {
                match down? {
                    Some(data) if !data.is_empty() => to_target = Some((data, 0)),
                    Some(_) => {}
                    None => {
                        client_open = false;
                        // Half-close: the target may still answer.
                        let _ = up_write.shutdown().await;
                    }
                }
            }
            // One `write` call: cancel safe, unlike `write_all`.
            written = write_some(&mut up_write, to_target.as_ref()), if to_target.is_some() => {
                let n = written
                    .or_err(ErrorType::WriteError, "writing to the CONNECT target")
                    .map_err(|e| e.into_up())?;
                if let Some((data, at)) = &mut to_target {
                    *at += n;
                    if *at >= data.len() {
                        to_target = None;
                    }
                }
            }
            up = up_read.read_buf(&mut buf) => match up {
                Ok(0) => break,
                Ok(_) => session.write_raw(&buf).await?,
                Err(e) => {
                    let e = Error::because(ErrorType::ReadError, "reading from the CONNECT target", e);
                    return Err(e.into_up());
                }
            },
            () = tokio::time::sleep(idle) => {
                log::debug!("closing CONNECT tunnel idle for {idle:?}");
                break;
            }
        }
    }
    session.finish_response(None).await
}

/// Write what is left of `pending` (bytes and how far they went) with a
/// single `write` call; a zero-length write means the target is gone.
async fn write_some(
    up_write: &mut tokio::net::tcp::OwnedWriteHalf,
    pending: Option<&(Bytes, usize)>,
) -> std::io::Result<usize> {
    let Some((data, at)) = pending else {
        return Ok(0);
    };
    let n = up_write.write(&data[*at..]).await?;
    if n == 0 {
        return Err(std::io::ErrorKind::WriteZero.into());
    }
    Ok(n)
}
