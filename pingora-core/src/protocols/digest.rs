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
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Digest {
    /// Our end of the connection.
    pub local_addr: Option<SocketAddr>,
    /// The other end of the connection.
    pub peer_addr: Option<SocketAddr>,
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
            peer_addr: peer,
            established: Some(SystemTime::now()),
            tls: None,
        }
    }
}
