//! [`L4Stream`]: an accepted TCP or Unix socket connection with its digest.

use crate::protocols::proxy_protocol::ProxyHeader;
use crate::protocols::{Digest, IO, SocketAddr, Stream};
use nix::sys::socket::MsgFlags;
use pingora_error::{ErrorType, OrErr, Result};
use std::any::Any;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

#[derive(Debug)]
enum Inner {
    Tcp(TcpStream),
    Unix(UnixStream),
}

/// A TCP or Unix domain socket connection and its [`Digest`] (local and
/// peer address, time of accept).
#[derive(Debug)]
pub struct L4Stream {
    inner: Inner,
    digest: Digest,
}

impl L4Stream {
    /// Wrap a TCP connection; the digest records its addresses and now.
    pub fn from_tcp(stream: TcpStream) -> Self {
        let local = stream.local_addr().ok().map(SocketAddr::Inet);
        let peer = stream.peer_addr().ok().map(SocketAddr::Inet);
        Self {
            inner: Inner::Tcp(stream),
            digest: Digest::new(local, peer),
        }
    }

    /// Wrap a Unix socket connection; the digest records its paths and now.
    pub fn from_unix(stream: UnixStream) -> Self {
        let path = |addr: tokio::net::unix::SocketAddr| {
            SocketAddr::Unix(addr.as_pathname().map(std::path::Path::to_path_buf))
        };
        let local = stream.local_addr().ok().map(path);
        let peer = stream.peer_addr().ok().map(path);
        Self {
            inner: Inner::Unix(stream),
            digest: Digest::new(local, peer),
        }
    }

    /// Set `TCP_NODELAY`; a no-op on Unix sockets.
    ///
    /// # Errors
    ///
    /// [`ErrorType::SocketError`] when the option cannot be set.
    pub fn set_nodelay(&self, nodelay: bool) -> Result<()> {
        match &self.inner {
            Inner::Tcp(s) => s
                .set_nodelay(nodelay)
                .or_err(ErrorType::SocketError, "cannot set TCP_NODELAY"),
            Inner::Unix(_) => Ok(()),
        }
    }

    /// Turn TCP keepalive probes on; a no-op on Unix sockets.
    ///
    /// # Errors
    ///
    /// [`ErrorType::SocketError`] when an option cannot be set.
    pub fn set_keepalive(&self, keepalive: &TcpKeepalive) -> Result<()> {
        let Inner::Tcp(s) = &self.inner else {
            return Ok(());
        };
        let params = socket2::TcpKeepalive::new()
            .with_time(keepalive.idle)
            .with_interval(keepalive.interval)
            .with_retries(keepalive.count);
        socket2::SockRef::from(s)
            .set_tcp_keepalive(&params)
            .or_err(ErrorType::SocketError, "cannot set TCP keepalive")
    }

    /// Whether this is a TCP connection (as opposed to a Unix socket).
    pub const fn is_tcp(&self) -> bool {
        matches!(self.inner, Inner::Tcp(_))
    }

    /// The TCP socket inside, when this is a TCP connection: for callers
    /// that drive it with readiness and system calls of their own (the L4
    /// proxy relays with `splice(2)` through it).
    pub const fn as_tcp(&self) -> Option<&TcpStream> {
        match &self.inner {
            Inner::Tcp(s) => Some(s),
            Inner::Unix(_) => None,
        }
    }

    /// `stream` as an `L4Stream`, when it is one; `stream` back when not.
    pub fn from_boxed(stream: Stream) -> std::result::Result<Box<Self>, Stream> {
        if !(&*stream as &dyn Any).is::<Self>() {
            return Err(stream);
        }
        let any: Box<dyn Any> = stream;
        // Checked above: the downcast succeeds, and the error (a closed
        // pipe in place of the stream) is never built.
        any.downcast::<Self>().map_err(|_| {
            let never: Stream = Box::new(tokio::io::duplex(1).0);
            never
        })
    }

    /// Believe the PROXY protocol `header` this connection started with:
    /// the digest keeps it and names its client as the peer.
    pub(crate) fn set_proxy_header(&mut self, header: ProxyHeader) {
        self.digest.set_proxy_header(Arc::new(header));
    }

    /// Copy up to `buf.len()` bytes waiting on the socket into `buf`
    /// without taking them: the next read returns them again. Returns at
    /// once with what is there; `Ok(0)` means the peer closed.
    pub(crate) async fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        match &self.inner {
            Inner::Tcp(s) => s.peek(buf).await,
            Inner::Unix(s) => loop {
                s.readable().await?;
                let peeked = s.try_io(tokio::io::Interest::READABLE, || {
                    nix::sys::socket::recv(s.as_raw_fd(), buf, MsgFlags::MSG_PEEK)
                        .map_err(io::Error::from)
                });
                match peeked {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    other => return other,
                }
            },
        }
    }

    /// Take the socket out of the runtime's reactor, keeping only what
    /// [`IdleSocket::into_stream`] needs to rebuild the stream: the
    /// descriptor, when the connection was established and the PROXY
    /// header it started with (so the client it named stays the peer).
    pub(crate) fn into_idle(self) -> io::Result<IdleSocket> {
        let (fd, unix) = match self.inner {
            Inner::Tcp(s) => (OwnedFd::from(s.into_std()?), false),
            Inner::Unix(s) => (OwnedFd::from(s.into_std()?), true),
        };
        Ok(IdleSocket {
            fd,
            unix,
            established: self.digest.established,
            proxy_header: self.digest.proxy_header,
        })
    }
}

/// A connection taken out of the runtime while it is idle (see
/// [`L4Stream::into_idle`]): the bare descriptor, nonblocking.
#[derive(Debug)]
pub(crate) struct IdleSocket {
    fd: OwnedFd,
    unix: bool,
    established: Option<std::time::SystemTime>,
    proxy_header: Option<Arc<ProxyHeader>>,
}

impl IdleSocket {
    /// The stream again, registered with the runtime this is called on,
    /// its digest's addresses read from the socket.
    pub(crate) fn into_stream(self) -> io::Result<L4Stream> {
        let mut stream = if self.unix {
            L4Stream::from_unix(UnixStream::from_std(self.fd.into())?)
        } else {
            L4Stream::from_tcp(TcpStream::from_std(self.fd.into())?)
        };
        stream.digest.established = self.established;
        if let Some(header) = self.proxy_header {
            stream.digest.set_proxy_header(header);
        }
        Ok(stream)
    }
}

impl AsFd for IdleSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// TCP keepalive settings: probe after `idle` without traffic, every
/// `interval`, and give up after `count` unanswered probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpKeepalive {
    /// Idle time before the first probe.
    pub idle: Duration,
    /// Time between probes.
    pub interval: Duration,
    /// Unanswered probes before the connection is dropped.
    pub count: u32,
}

impl IO for L4Stream {
    fn digest(&self) -> Option<&Digest> {
        Some(&self.digest)
    }
}

impl AsyncRead for L4Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().inner {
            Inner::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Inner::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for L4Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().inner {
            Inner::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Inner::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().inner {
            Inner::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Inner::Unix(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.inner {
            Inner::Tcp(s) => s.is_write_vectored(),
            Inner::Unix(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().inner {
            Inner::Tcp(s) => Pin::new(s).poll_flush(cx),
            Inner::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().inner {
            Inner::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Inner::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn tcp_digest_and_io() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::spawn(async move {
            let mut c = TcpStream::connect(addr).await.unwrap();
            c.write_all(b"ping").await.unwrap();
            let mut buf = [0u8; 4];
            c.read_exact(&mut buf).await.unwrap();
            (c.local_addr().unwrap(), buf)
        });
        let (s, _) = listener.accept().await.unwrap();
        let mut stream = L4Stream::from_tcp(s);
        stream.set_nodelay(true).unwrap();
        let keepalive = TcpKeepalive {
            idle: Duration::from_secs(30),
            interval: Duration::from_secs(5),
            count: 3,
        };
        stream.set_keepalive(&keepalive).unwrap();
        let mut buf = [0u8; 4];
        stream.read_exact(&mut buf).await.unwrap();
        stream.write_all(&buf).await.unwrap();
        let (client_addr, echoed) = client.await.unwrap();
        assert_eq!(&echoed, b"ping");
        let digest = stream.digest().unwrap();
        assert_eq!(digest.local_addr, Some(SocketAddr::Inet(addr)));
        assert_eq!(digest.peer_addr, Some(SocketAddr::Inet(client_addr)));
        assert!(digest.established.is_some() && stream.is_tcp());
        assert_eq!(stream.as_tcp().unwrap().peer_addr().unwrap(), client_addr);
    }

    /// A connection rebuilt after parking still names the client its
    /// PROXY header carried, not the balancer its socket is from.
    #[tokio::test]
    async fn the_proxied_client_survives_parking() {
        use crate::protocols::proxy_protocol::{Parsed, parse};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = TcpStream::connect(addr).await.unwrap();
        let balancer = SocketAddr::Inet(client.local_addr().unwrap());
        let (s, _) = listener.accept().await.unwrap();
        let mut stream = L4Stream::from_tcp(s);
        let bytes = b"PROXY TCP4 203.0.113.7 198.51.100.1 5000 443\r\n";
        let Ok(Parsed::Header { header, .. }) = parse(bytes) else {
            panic!("a valid header")
        };
        stream.set_proxy_header(header.clone());
        let rebuilt = stream.into_idle().unwrap().into_stream().unwrap();
        let digest = rebuilt.digest().unwrap();
        let client_addr = "203.0.113.7:5000".parse::<std::net::SocketAddr>().unwrap();
        assert_eq!(digest.peer_addr, Some(SocketAddr::Inet(client_addr)));
        assert_eq!(digest.socket_peer_addr, Some(balancer));
        assert_eq!(digest.proxy_header.as_deref(), Some(&header));
        drop(client);
    }

    #[tokio::test]
    async fn peek_leaves_the_bytes_for_the_next_read() {
        for unix in [false, true] {
            let (mut ours, mut theirs): (L4Stream, Box<dyn IO>) = if unix {
                let (a, b) = UnixStream::pair().unwrap();
                (L4Stream::from_unix(a), Box::new(L4Stream::from_unix(b)))
            } else {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let c = TcpStream::connect(listener.local_addr().unwrap())
                    .await
                    .unwrap();
                let (s, _) = listener.accept().await.unwrap();
                (L4Stream::from_tcp(s), Box::new(L4Stream::from_tcp(c)))
            };
            theirs.write_all(b"abcdef").await.unwrap();
            let mut buf = [0u8; 4];
            let mut n = 0;
            while n < 4 {
                n = ours.peek(&mut buf).await.unwrap();
            }
            assert_eq!(&buf, b"abcd");
            let mut all = [0u8; 6];
            ours.read_exact(&mut all).await.unwrap();
            assert_eq!(&all, b"abcdef");
            drop(theirs);
            assert_eq!(ours.peek(&mut buf).await.unwrap(), 0, "unix: {unix}");
        }
    }

    #[tokio::test]
    async fn unix_digest() {
        let (a, _b) = UnixStream::pair().unwrap();
        let stream = L4Stream::from_unix(a);
        assert!(!stream.is_tcp() && stream.as_tcp().is_none());
        stream.set_nodelay(true).unwrap();
        let digest = stream.digest().unwrap();
        assert_eq!(digest.peer_addr, Some(SocketAddr::Unix(None)));
    }
}
