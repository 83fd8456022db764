//! [`L4Stream`]: an accepted TCP or Unix socket connection with its digest.

use crate::protocols::{Digest, IO, SocketAddr, Stream};
use pingora_error::{ErrorType, OrErr, Result};
use std::any::Any;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::pin::Pin;
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

    /// Take the socket out of the runtime's reactor, keeping only what
    /// [`IdleSocket::into_stream`] needs to rebuild the stream: the
    /// descriptor and when the connection was established.
    pub(crate) fn into_idle(self) -> io::Result<IdleSocket> {
        let (fd, unix) = match self.inner {
            Inner::Tcp(s) => (OwnedFd::from(s.into_std()?), false),
            Inner::Unix(s) => (OwnedFd::from(s.into_std()?), true),
        };
        Ok(IdleSocket {
            fd,
            unix,
            established: self.digest.established,
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
