//! What is known about one connection.

use std::fmt;
use std::time::SystemTime;

/// A socket address: IPv4, IPv6 or a Unix domain socket path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SocketAddr {
    /// An IPv4 or IPv6 address with a port.
    Inet(std::net::SocketAddr),
    /// A Unix domain socket path; `None` for an unnamed socket.
    Unix(Option<std::path::PathBuf>),
}

impl SocketAddr {
    /// The IP address and port, when this is an inet address.
    pub const fn as_inet(&self) -> Option<&std::net::SocketAddr> {
        match self {
            Self::Inet(addr) => Some(addr),
            Self::Unix(_) => None,
        }
    }
}

impl fmt::Display for SocketAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Inet(addr) => write!(f, "{addr}"),
            Self::Unix(Some(path)) => write!(f, "unix:{}", path.display()),
            Self::Unix(None) => f.write_str("unix:(unnamed)"),
        }
    }
}

impl From<std::net::SocketAddr> for SocketAddr {
    fn from(addr: std::net::SocketAddr) -> Self {
        Self::Inet(addr)
    }
}

/// What is known about one connection: its addresses and when it was
/// established. TLS details join it with the TLS work.
///
/// On a listener that accepts the PROXY protocol, a header from a trusted
/// balancer replaces `peer_addr` with the client it names; the socket's
/// own peer (the balancer) stays in `socket_peer_addr`, and the header
/// itself (with its TLVs) in `proxy_header`.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Digest {
    /// Our end of the connection.
    pub local_addr: Option<SocketAddr>,
    /// The other end of the connection: the client. A PROXY protocol
    /// header believed on accept replaces the socket's peer with the
    /// client the header names.
    pub peer_addr: Option<SocketAddr>,
    /// The socket's own peer, whatever a PROXY header said: the balancer
    /// in front when one sent a header, else the same as `peer_addr`.
    pub socket_peer_addr: Option<SocketAddr>,
    /// The PROXY protocol header the connection started with, when the
    /// listener accepts them and believed this one (see
    /// [`ProxyProtocolSettings`](crate::listeners::ProxyProtocolSettings)).
    pub proxy_header: Option<std::sync::Arc<super::proxy_protocol::ProxyHeader>>,
    /// When the connection was accepted or connected.
    pub established: Option<SystemTime>,
    /// What the TLS handshake negotiated, on a TLS connection.
    pub tls: Option<std::sync::Arc<super::tls::TlsDigest>>,
}

impl Digest {
    /// A digest for a connection between `local` and `peer`, established now.
    pub fn new(local: Option<SocketAddr>, peer: Option<SocketAddr>) -> Self {
        Self {
            local_addr: local,
            socket_peer_addr: peer.clone(),
            peer_addr: peer,
            established: Some(SystemTime::now()),
            tls: None,
            proxy_header: None,
        }
    }

    /// Believe `header`: keep it, and when it names the client, make that
    /// the peer (the socket's own peer stays in `socket_peer_addr`).
    pub(crate) fn set_proxy_header(
        &mut self,
        header: std::sync::Arc<super::proxy_protocol::ProxyHeader>,
    ) {
        if let Some(source) = header.source() {
            self.peer_addr = Some(SocketAddr::Inet(source));
        }
        self.proxy_header = Some(header);
    }
}
