//! Binding listening sockets (or taking them over from the previous
//! process) and accepting [`L4Stream`]s on them.

use super::{ServerAddress, TcpSocketOptions};
use crate::protocols::SocketAddr;
use crate::protocols::l4::{L4Stream, sys};
use crate::server::ListenFds;
use pingora_error::{Error, ErrorType, OkOrErr, OrErr, Result};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::net::ToSocketAddrs;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};

const DEFAULT_BACKLOG: u32 = 65535;

#[derive(Debug)]
enum Inner {
    Tcp(tokio::net::TcpListener, TcpSocketOptions),
    Unix(tokio::net::UnixListener),
}

/// A bound listening socket of a listening service.
#[derive(Debug)]
pub(crate) struct Listener {
    inner: Inner,
    key: String,
}

impl Listener {
    /// Take the socket for `addr` from `fds` if the previous process passed
    /// it on, else bind it; register it in `fds` either way.
    ///
    /// Must run inside a tokio runtime.
    pub(crate) fn bind_or_take(addr: &ServerAddress, fds: &ListenFds) -> Result<Self> {
        let key = addr.key();
        let fd = match fds.dup(&key) {
            Some(fd) => {
                log::info!("taking over listening socket {key}");
                fd.or_err_with(ErrorType::SocketError, || {
                    format!("cannot dup socket {key}")
                })?
            }
            None => {
                let fd = bind(addr)?;
                let kept = fd.try_clone().or_err_with(ErrorType::SocketError, || {
                    format!("cannot dup socket {key}")
                })?;
                fds.insert(key.clone(), kept);
                fd
            }
        };
        let inner = match addr {
            ServerAddress::Tcp(_, options) => {
                let std = std::net::TcpListener::from(fd);
                std.set_nonblocking(true)
                    .or_err(ErrorType::SocketError, "cannot set listener non-blocking")?;
                let listener = tokio::net::TcpListener::from_std(std)
                    .or_err(ErrorType::SocketError, "cannot register listener")?;
                Inner::Tcp(listener, options.clone())
            }
            ServerAddress::Uds(..) => {
                let std = std::os::unix::net::UnixListener::from(fd);
                std.set_nonblocking(true)
                    .or_err(ErrorType::SocketError, "cannot set listener non-blocking")?;
                let listener = tokio::net::UnixListener::from_std(std)
                    .or_err(ErrorType::SocketError, "cannot register listener")?;
                Inner::Unix(listener)
            }
        };
        Ok(Self { inner, key })
    }

    /// The key of this socket in the [`ListenFds`] table.
    pub(crate) fn key(&self) -> &str {
        &self.key
    }

    /// The address the socket is bound to.
    pub(crate) fn local_addr(&self) -> Option<SocketAddr> {
        match &self.inner {
            Inner::Tcp(l, _) => l.local_addr().ok().map(SocketAddr::Inet),
            Inner::Unix(l) => l
                .local_addr()
                .ok()
                .map(|a| SocketAddr::Unix(a.as_pathname().map(std::path::Path::to_path_buf))),
        }
    }

    /// Accept one connection and apply the per-connection options.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a connection is only taken from the kernel when this
    /// returns it.
    pub(crate) async fn accept(&self) -> Result<L4Stream> {
        match &self.inner {
            Inner::Tcp(listener, options) => {
                let stream = accept_tcp(listener, options.nodelay).await?;
                let stream = L4Stream::from_tcp(stream);
                // Options on the accepted socket are best effort: the
                // connection is usable without them.
                if let Some(keepalive) = &options.keepalive
                    && let Err(e) = stream.set_keepalive(keepalive)
                {
                    log::debug!("{e}");
                }
                Ok(stream)
            }
            Inner::Unix(listener) => {
                let (stream, _) = listener
                    .accept()
                    .await
                    .or_err(ErrorType::AcceptError, "Unix socket accept failed")?;
                Ok(L4Stream::from_unix(stream))
            }
        }
    }
}

/// Accept one TCP connection and set `TCP_NODELAY` on it when `nodelay`.
///
/// The option is set per connection rather than inherited from the
/// listening socket: a socket taken over from the previous process keeps
/// the options that process bound it with.
///
/// # Cancel safety
///
/// Cancel safe, as [`tokio::net::TcpListener::accept`].
async fn accept_tcp(
    listener: &tokio::net::TcpListener,
    nodelay: bool,
) -> Result<tokio::net::TcpStream> {
    let (stream, _) = listener
        .accept()
        .await
        .or_err(ErrorType::AcceptError, "TCP accept failed")?;
    // Best effort: the connection is usable without it.
    if nodelay && let Err(e) = stream.set_nodelay(true) {
        log::debug!("cannot set TCP_NODELAY: {e}");
    }
    Ok(stream)
}

/// Create, bind and listen on the socket for `addr`.
fn bind(addr: &ServerAddress) -> Result<OwnedFd> {
    match addr {
        ServerAddress::Tcp(addr, options) => bind_tcp(addr, options),
        ServerAddress::Uds(path, mode) => bind_uds(path, *mode),
    }
}

fn bind_tcp(addr: &str, options: &TcpSocketOptions) -> Result<OwnedFd> {
    let sockaddr = addr
        .to_socket_addrs()
        .or_err_with(ErrorType::BindError, || {
            format!("invalid listen address {addr}")
        })?
        .next()
        .or_err_with(ErrorType::BindError, || {
            format!("{addr} resolves to no address")
        })?;
    let fail = |what: &str| format!("{addr}: cannot {what}");
    let socket = Socket::new(
        Domain::for_address(sockaddr),
        Type::STREAM,
        Some(Protocol::TCP),
    )
    .or_err_with(ErrorType::SocketError, || fail("create socket"))?;
    // A restarted server must be able to bind while connections of the
    // previous one linger in TIME_WAIT.
    socket
        .set_reuse_address(true)
        .or_err_with(ErrorType::SocketError, || fail("set SO_REUSEADDR"))?;
    if options.reuseport {
        socket
            .set_reuse_port(true)
            .or_err_with(ErrorType::SocketError, || fail("set SO_REUSEPORT"))?;
    }
    if let (Some(only), true) = (options.ipv6_only, sockaddr.is_ipv6()) {
        socket
            .set_only_v6(only)
            .or_err_with(ErrorType::SocketError, || fail("set IPV6_V6ONLY"))?;
    }
    if let Some(queue) = options.fastopen {
        sys::set_tcp_fastopen(&socket, queue)
            .or_err_with(ErrorType::SocketError, || fail("set TCP_FASTOPEN"))?;
    }
    socket
        .bind(&sockaddr.into())
        .or_err_with(ErrorType::BindError, || fail("bind"))?;
    listen(&socket, options.backlog).or_err_with(ErrorType::BindError, || fail("listen"))?;
    Ok(socket.into())
}

fn bind_uds(path: &str, mode: Option<u32>) -> Result<OwnedFd> {
    let fail = |what: &str| format!("{path}: cannot {what}");
    // A socket file left by a previous run would make bind fail; anything
    // else at that path is not ours to delete.
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Error::e_explain(ErrorType::BindError, fail("bind: not a socket file"));
        }
        std::fs::remove_file(path)
            .or_err_with(ErrorType::BindError, || fail("remove stale socket"))?;
    }
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None)
        .or_err_with(ErrorType::SocketError, || fail("create socket"))?;
    let sockaddr = SockAddr::unix(path).or_err_with(ErrorType::BindError, || fail("use path"))?;
    socket
        .bind(&sockaddr)
        .or_err_with(ErrorType::BindError, || fail("bind"))?;
    if let Some(mode) = mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .or_err_with(ErrorType::BindError, || fail("set file mode"))?;
    }
    listen(&socket, None).or_err_with(ErrorType::BindError, || fail("listen"))?;
    Ok(socket.into())
}

fn listen(socket: &Socket, backlog: Option<u32>) -> std::io::Result<()> {
    let backlog = backlog.unwrap_or(DEFAULT_BACKLOG);
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn tcp_v4_v6_and_options() {
        let fds = ListenFds::new();
        let options = TcpSocketOptions {
            reuseport: true,
            backlog: Some(16),
            fastopen: Some(16),
            keepalive: Some(crate::protocols::l4::TcpKeepalive {
                idle: Duration::from_secs(60),
                interval: Duration::from_secs(5),
                count: 5,
            }),
            ..Default::default()
        };
        let addr = ServerAddress::Tcp("127.0.0.1:0".into(), options);
        let listener = Listener::bind_or_take(&addr, &fds).unwrap();
        assert_eq!(fds.len(), 1);
        let local = *listener.local_addr().unwrap().as_inet().unwrap();
        let client = tokio::net::TcpStream::connect(local).await.unwrap();
        let accepted = listener.accept().await.unwrap();
        let digest = crate::protocols::IO::digest(&accepted).unwrap();
        assert_eq!(
            digest.peer_addr,
            Some(SocketAddr::Inet(client.local_addr().unwrap()))
        );

        // IPv6 may be missing in a container; only check it when it exists.
        let v6 = TcpSocketOptions {
            ipv6_only: Some(true),
            ..Default::default()
        };
        if let Ok(l) = Listener::bind_or_take(&ServerAddress::Tcp("[::1]:0".into(), v6), &fds) {
            assert!(l.local_addr().unwrap().as_inet().unwrap().is_ipv6());
        }
    }

    /// `TCP_NODELAY` of the connection the listener for `options` accepts.
    async fn accepted_nodelay(options: TcpSocketOptions) -> bool {
        let addr = ServerAddress::Tcp("127.0.0.1:0".into(), options);
        let listener = Listener::bind_or_take(&addr, &ListenFds::new()).unwrap();
        let local = *listener.local_addr().unwrap().as_inet().unwrap();
        let Inner::Tcp(tcp, options) = &listener.inner else {
            unreachable!("a TCP address binds a TCP listener")
        };
        let _client = tokio::net::TcpStream::connect(local).await.unwrap();
        let accepted = accept_tcp(tcp, options.nodelay).await.unwrap();
        socket2::SockRef::from(&accepted).tcp_nodelay().unwrap()
    }

    #[tokio::test]
    async fn nodelay_is_on_by_default() {
        assert!(accepted_nodelay(TcpSocketOptions::default()).await);
        let off = TcpSocketOptions {
            nodelay: false,
            ..Default::default()
        };
        assert!(!accepted_nodelay(off).await);
    }

    #[tokio::test]
    async fn take_over_from_table() {
        let fds = ListenFds::new();
        let addr = ServerAddress::Tcp("127.0.0.1:0".into(), TcpSocketOptions::default());
        let first = Listener::bind_or_take(&addr, &fds).unwrap();
        // The same configured address finds the registered socket instead of
        // binding a new ephemeral port.
        let second = Listener::bind_or_take(&addr, &fds).unwrap();
        assert_eq!(first.local_addr(), second.local_addr());
        assert_eq!(first.key(), "tcp://127.0.0.1:0");
    }

    #[tokio::test]
    async fn uds_mode_and_stale_file() {
        let dir = std::env::temp_dir().join(format!("pingora-uds-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("l.sock");
        let path_str = path.to_str().unwrap().to_string();
        let addr = ServerAddress::Uds(path_str.clone(), Some(0o600));
        drop(Listener::bind_or_take(&addr, &ListenFds::new()).unwrap());
        // The stale socket file of the dropped listener is replaced.
        let listener = Listener::bind_or_take(&addr, &ListenFds::new()).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let _client = tokio::net::UnixStream::connect(&path).await.unwrap();
        let accepted = listener.accept().await.unwrap();
        assert!(!accepted.is_tcp());
        // A regular file is not deleted to make room.
        let file = dir.join("file");
        std::fs::write(&file, b"x").unwrap();
        let bad = ServerAddress::Uds(file.to_str().unwrap().into(), None);
        assert!(Listener::bind_or_take(&bad, &ListenFds::new()).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_address_is_named() {
        let err = bind_tcp("not an address", &TcpSocketOptions::default()).unwrap_err();
        assert!(err.to_string().contains("not an address"), "{err}");
    }
}
