//! The L4 step: a TCP or Unix socket connection to a peer, with the
//! socket options its [`PeerOptions`] ask for.

use std::io;
use std::net::SocketAddr as InetAddr;
use std::path::Path;
use std::time::Duration;

use pingora_error::{BError, Error, ErrorType, OrErr, Result};
use tokio::net::{TcpSocket, UnixStream};

use crate::protocols::l4::L4Stream;
use crate::protocols::{SocketAddr, Stream};
use crate::upstreams::{Peer, PeerOptions};

/// Connect to `peer`'s address within `timeout` and apply its socket
/// options. No TLS: see [`TransportConnector`](super::TransportConnector)
/// for the whole set-up.
///
/// # Errors
///
/// Marked as from the upstream and safe to retry (nothing was sent):
/// [`ErrorType::ConnectTimedout`], [`ErrorType::ConnectRefused`],
/// [`ErrorType::ConnectNoRoute`], [`ErrorType::ConnectError`] for other
/// connect failures, [`ErrorType::BindError`] when `bind_to` fails and
/// [`ErrorType::SocketError`] when a socket option cannot be set.
///
/// # Cancel safety
///
/// Dropping the future abandons the half-open socket.
pub async fn connect<P: Peer + ?Sized>(peer: &P, timeout: Duration) -> Result<Stream> {
    connect_from(peer, timeout, None).await
}

/// [`connect`], binding to `default_bind` (port 0) when the peer sets no
/// `bind_to` of its own: the server config's `client_bind_to_*`.
pub(crate) async fn connect_from<P: Peer + ?Sized>(
    peer: &P,
    timeout: Duration,
    default_bind: Option<std::net::IpAddr>,
) -> Result<Stream> {
    if let Some(why) = peer.address_error() {
        // The address is wrong, not the network: retrying cannot help.
        let e = Error::explain(crate::upstreams::INVALID_PEER_ADDRESS, why.to_string());
        return Err(e.into_up());
    }
    connect_to(peer.address(), peer.options(), default_bind, timeout)
        .await
        .map_err(|e| {
            let mut e = e.more_context(format!("connecting to {peer}")).into_up();
            e.set_retry(true);
            e
        })
}

/// Connect to `address` with `options`' socket options, within `timeout`,
/// binding to `default_bind` when the options set no `bind_to`.
pub(super) async fn connect_to(
    address: &SocketAddr,
    options: &PeerOptions,
    default_bind: Option<std::net::IpAddr>,
    timeout: Duration,
) -> Result<Stream> {
    match address {
        SocketAddr::Inet(addr) => {
            let bind = options
                .bind_to
                .or_else(|| default_bind.map(|ip| InetAddr::new(ip, 0)));
            connect_tcp(*addr, options, bind, timeout).await
        }
        SocketAddr::Unix(Some(path)) => connect_unix(path, timeout).await,
        SocketAddr::Unix(None) => Error::e_explain(
            ErrorType::ConnectError,
            "cannot connect to an unnamed Unix socket",
        ),
    }
}

async fn connect_tcp(
    addr: InetAddr,
    options: &PeerOptions,
    bind: Option<InetAddr>,
    timeout: Duration,
) -> Result<Stream> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .or_err(ErrorType::SocketError, "creating TCP socket")?;
    if let Some(size) = options.tcp_recv_buf {
        let size = u32::try_from(size).unwrap_or(u32::MAX);
        socket
            .set_recv_buffer_size(size)
            .or_err(ErrorType::SocketError, "setting receive buffer size")?;
    }
    if let Some(local) = bind {
        socket
            .bind(local)
            .or_err_with(ErrorType::BindError, || format!("binding to {local}"))?;
    }
    if options.tcp_fast_open {
        set_fast_open(&socket);
    }
    let tcp = match tokio::time::timeout(timeout, socket.connect(addr)).await {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(e)) => return Err(connect_error(e)),
        Err(_) => return Err(timed_out(timeout)),
    };
    let stream = L4Stream::from_tcp(tcp);
    // Proxied requests are small writes that must not wait for Nagle.
    stream.set_nodelay(true)?;
    if let Some(keepalive) = &options.tcp_keepalive {
        stream.set_keepalive(keepalive)?;
    }
    Ok(Box::new(stream))
}

async fn connect_unix(path: &Path, timeout: Duration) -> Result<Stream> {
    match tokio::time::timeout(timeout, UnixStream::connect(path)).await {
        Ok(Ok(unix)) => Ok(Box::new(L4Stream::from_unix(unix))),
        Ok(Err(e)) => Err(connect_error(e)),
        Err(_) => Err(timed_out(timeout)),
    }
}

/// Ask for TCP fast open on connect. Best effort: a kernel without it
/// still connects normally, so failure is only logged.
fn set_fast_open(socket: &TcpSocket) {
    #[cfg(target_os = "linux")]
    if let Err(e) =
        nix::sys::socket::setsockopt(socket, nix::sys::socket::sockopt::TcpFastOpenConnect, &true)
    {
        log::debug!("TCP fast open not available: {e}");
    }
    #[cfg(not(target_os = "linux"))]
    let _ = socket;
}

fn timed_out(timeout: Duration) -> BError {
    Error::explain(
        ErrorType::ConnectTimedout,
        format!("no connection within {timeout:?}"),
    )
}

/// The connect error kind for an OS error.
fn connect_error(e: io::Error) -> BError {
    let etype = match e.kind() {
        io::ErrorKind::ConnectionRefused => ErrorType::ConnectRefused,
        io::ErrorKind::TimedOut => ErrorType::ConnectTimedout,
        io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => {
            ErrorType::ConnectNoRoute
        }
        _ => ErrorType::ConnectError,
    };
    Error::because(etype, "connect failed", e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstreams::BasicPeer;
    use pingora_error::ErrorSource;

    #[tokio::test]
    async fn connects_and_fills_the_digest() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut peer = BasicPeer::new(addr);
        peer.options.tcp_recv_buf = Some(64 * 1024);
        peer.options.tcp_fast_open = true;
        peer.options.bind_to = Some("127.0.0.1:0".parse().unwrap());
        peer.options.tcp_keepalive = Some(crate::protocols::l4::TcpKeepalive {
            idle: Duration::from_secs(30),
            interval: Duration::from_secs(5),
            count: 3,
        });
        let stream = connect(&peer, Duration::from_secs(5)).await.unwrap();
        let digest = stream.digest().unwrap();
        assert_eq!(digest.peer_addr, Some(SocketAddr::Inet(addr)));
    }

    #[tokio::test]
    async fn refused_is_an_upstream_retryable_error() {
        // Bind then drop to find a port nobody listens on.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let err = connect(&BasicPeer::new(addr), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert_eq!(err.etype(), &ErrorType::ConnectRefused);
        assert_eq!(err.esource(), &ErrorSource::Upstream);
        assert!(err.retry());
    }

    #[tokio::test]
    async fn unix_socket_connects() {
        let dir = std::env::temp_dir().join(format!("pingora-l4-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("l4.sock");
        let _ = std::fs::remove_file(&path);
        let _listener = tokio::net::UnixListener::bind(&path).unwrap();
        let stream = connect(&BasicPeer::new_uds(&path), Duration::from_secs(5)).await;
        assert!(stream.is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn os_errors_map_to_connect_kinds() {
        let kind = |k| *connect_error(io::Error::from(k)).etype();
        assert_eq!(
            kind(io::ErrorKind::ConnectionRefused),
            ErrorType::ConnectRefused
        );
        assert_eq!(kind(io::ErrorKind::TimedOut), ErrorType::ConnectTimedout);
        assert_eq!(
            kind(io::ErrorKind::HostUnreachable),
            ErrorType::ConnectNoRoute
        );
        assert_eq!(
            kind(io::ErrorKind::NetworkUnreachable),
            ErrorType::ConnectNoRoute
        );
        assert_eq!(
            kind(io::ErrorKind::PermissionDenied),
            ErrorType::ConnectError
        );
        assert_eq!(
            *timed_out(Duration::from_secs(1)).etype(),
            ErrorType::ConnectTimedout
        );
    }

    #[tokio::test]
    async fn missing_unix_socket_is_a_connect_error() {
        let peer = BasicPeer::new_uds("/nonexistent/pingora.sock");
        let err = connect(&peer, Duration::from_secs(5)).await.unwrap_err();
        assert_eq!(err.etype(), &ErrorType::ConnectError);
    }
}
