//! [`ProxyUdp`]: the callbacks of a UDP proxy, and what they are given.

use bytes::Bytes;
use pingora_error::{Error, Result};
use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Where a UDP session's datagrams go: the upstream's address, and
/// optionally the local address its socket binds to.
///
/// # Examples
///
/// ```
/// use pingora_proxy::udp::UdpPeer;
///
/// let peer = UdpPeer::new("10.0.0.2:53".parse().unwrap())
///     .with_bind_to("10.0.0.1:0".parse().unwrap());
/// assert_eq!(peer.addr.port(), 53);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UdpPeer {
    /// The upstream's address.
    pub addr: SocketAddr,
    /// The local address the session's upstream socket binds to; `None`
    /// binds to any address of the upstream's family on a free port.
    pub bind_to: Option<SocketAddr>,
}

impl UdpPeer {
    /// A peer at `addr`.
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            bind_to: None,
        }
    }

    /// Bind the session's upstream socket to `local` (port 0 for any).
    #[must_use]
    pub fn with_bind_to(mut self, local: SocketAddr) -> Self {
        self.bind_to = Some(local);
        self
    }
}

impl From<SocketAddr> for UdpPeer {
    fn from(addr: SocketAddr) -> Self {
        Self::new(addr)
    }
}

/// Why a UDP session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionEnd {
    /// No datagram went either way for the
    /// [idle timeout](super::UdpProxyOptions::idle_timeout).
    Idle,
    /// The server shut down.
    Shutdown,
    /// No upstream was chosen, or the upstream socket failed (an ICMP
    /// port unreachable, say); the error is given to
    /// [`ProxyUdp::logging`].
    Error,
}

impl SessionEnd {
    /// A short lowercase name: `idle`, `shutdown`, `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Shutdown => "shutdown",
            Self::Error => "error",
        }
    }
}

impl std::fmt::Display for SessionEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One client's session through a UDP proxy, as the callbacks see it: its
/// addresses and what went each way so far.
#[derive(Debug, Clone)]
pub struct UdpSession {
    pub(super) client: SocketAddr,
    pub(super) local: SocketAddr,
    pub(super) upstream: Option<SocketAddr>,
    pub(super) started: Instant,
    pub(super) to_upstream: Traffic,
    pub(super) to_client: Traffic,
    pub(super) dropped: u64,
    pub(super) end: Option<SessionEnd>,
}

/// Datagrams and bytes that went one way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Traffic {
    pub(super) datagrams: u64,
    pub(super) bytes: u64,
}

impl Traffic {
    pub(super) fn add(&mut self, len: usize) {
        self.datagrams += 1;
        self.bytes += len as u64;
    }
}

impl UdpSession {
    pub(super) fn new(client: SocketAddr, local: SocketAddr) -> Self {
        Self {
            client,
            local,
            upstream: None,
            started: Instant::now(),
            to_upstream: Traffic::default(),
            to_client: Traffic::default(),
            dropped: 0,
            end: None,
        }
    }

    /// The client's address: the session's key, with the local address.
    pub fn client_addr(&self) -> SocketAddr {
        self.client
    }

    /// The proxy's address the client writes to, which answers come from.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The upstream's address, once [`ProxyUdp::upstream_peer`] chose it.
    pub fn upstream_addr(&self) -> Option<SocketAddr> {
        self.upstream
    }

    /// How long the session has lasted.
    pub fn duration(&self) -> Duration {
        self.started.elapsed()
    }

    /// Datagrams sent to the upstream.
    pub fn datagrams_to_upstream(&self) -> u64 {
        self.to_upstream.datagrams
    }

    /// Payload bytes sent to the upstream.
    pub fn bytes_to_upstream(&self) -> u64 {
        self.to_upstream.bytes
    }

    /// Datagrams sent back to the client.
    pub fn datagrams_to_client(&self) -> u64 {
        self.to_client.datagrams
    }

    /// Payload bytes sent back to the client.
    pub fn bytes_to_client(&self) -> u64 {
        self.to_client.bytes
    }

    /// Datagrams of this session dropped: its queue was full, a filter
    /// dropped them, or they could not be sent.
    pub fn datagrams_dropped(&self) -> u64 {
        self.dropped
    }

    /// Why the session ended; `None` while it runs.
    pub fn end_reason(&self) -> Option<SessionEnd> {
        self.end
    }
}

/// The callbacks of a UDP proxy. Pingora has no UDP proxy; the shape
/// follows [`ProxyHttp`](crate::ProxyHttp): a per-session `CTX`, a required
/// [`upstream_peer`](Self::upstream_peer), optional filters and a
/// [`logging`](Self::logging) call at the end.
///
/// A **session** is one client address (on one of the proxy's addresses).
/// Its first datagram starts it: [`new_ctx`](Self::new_ctx), then
/// [`upstream_peer`](Self::upstream_peer) picks the upstream (a load
/// balancer plugs in here), and the session gets a socket of its own
/// connected to that upstream. Every later datagram of the client goes to
/// the same upstream, and every datagram the upstream sends back goes to
/// the client, from the address the client wrote to. The session ends
/// when no datagram went either way for the idle timeout, when the
/// upstream socket fails, or at shutdown; then [`logging`](Self::logging)
/// runs once.
///
/// The filters run for each datagram on the session's task; they are
/// plain functions, so they stay cheap. Implement the async callbacks
/// with plain `async fn`; they must return `Send` futures.
///
/// # Examples
///
/// ```
/// use pingora_error::Result;
/// use pingora_proxy::udp::{ProxyUdp, UdpPeer, UdpSession};
///
/// /// Spreads clients over two DNS servers by their port's parity.
/// struct Dns;
///
/// impl ProxyUdp for Dns {
///     type CTX = ();
///     fn new_ctx(&self) {}
///
///     async fn upstream_peer(&self, session: &UdpSession, _: &[u8], _: &mut ()) -> Result<UdpPeer> {
///         let upstream = if session.client_addr().port() % 2 == 0 {
///             "10.0.0.53:53"
///         } else {
///             "10.0.1.53:53"
///         };
///         Ok(UdpPeer::new(upstream.parse().unwrap()))
///     }
/// }
/// ```
pub trait ProxyUdp: Send + Sync + 'static {
    /// Per-session state, made by [`new_ctx`](Self::new_ctx) when the
    /// session starts and given to every callback of the session.
    type CTX: Send;

    /// The state of a new session.
    fn new_ctx(&self) -> Self::CTX;

    /// Choose the upstream of a new session, from its client and first
    /// datagram. Bounded by the
    /// [connect timeout](super::UdpProxyOptions::connect_timeout); the
    /// client's next datagrams wait in the session's queue meanwhile.
    ///
    /// # Errors
    ///
    /// An error ends the session: its datagrams are dropped (and counted,
    /// `reason="no_upstream"`), and [`logging`](Self::logging) gets the
    /// error. The client's next datagram starts a new session.
    fn upstream_peer(
        &self,
        session: &UdpSession,
        first_datagram: &[u8],
        ctx: &mut Self::CTX,
    ) -> impl Future<Output = Result<UdpPeer>> + Send;

    /// Look at, change or drop (`None`, counted as `reason="filtered"`)
    /// each datagram from the client before it goes to the upstream.
    fn upstream_datagram_filter(
        &self,
        session: &UdpSession,
        datagram: Bytes,
        ctx: &mut Self::CTX,
    ) -> Option<Bytes> {
        let _ = (session, ctx);
        Some(datagram)
    }

    /// Look at, change or drop (`None`, counted as `reason="filtered"`)
    /// each datagram from the upstream before it goes to the client.
    fn downstream_datagram_filter(
        &self,
        session: &UdpSession,
        datagram: Bytes,
        ctx: &mut Self::CTX,
    ) -> Option<Bytes> {
        let _ = (session, ctx);
        Some(datagram)
    }

    /// Called once when the session ends, with what went each way
    /// ([`UdpSession`]), why it ended
    /// ([`end_reason`](UdpSession::end_reason)) and the error, if one
    /// ended it.
    fn logging(
        &self,
        session: &UdpSession,
        error: Option<&Error>,
        ctx: &mut Self::CTX,
    ) -> impl Future<Output = ()> + Send {
        let _ = (session, error, ctx);
        async {}
    }
}
