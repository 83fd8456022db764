//! [`Proxy`]: an HTTP proxy to reach a peer through, with `CONNECT`.

use std::collections::BTreeMap;

use crate::protocols::SocketAddr;

/// An HTTP proxy between us and a peer: the connector connects to
/// `next_hop`, asks it to `CONNECT host:port` (RFC 9110 §9.3.6) with
/// `headers` (credentials, say), and once it answers 2xx speaks to the
/// peer through the tunnel, TLS included. Set it on
/// [`HttpPeer::proxy`](super::HttpPeer::proxy), or build the peer with
/// [`HttpPeer::new_proxy`](super::HttpPeer::new_proxy).
///
/// # Examples
///
/// ```
/// use pingora_core::upstreams::{HttpPeer, Peer};
/// use std::collections::BTreeMap;
///
/// let mut headers = BTreeMap::new();
/// headers.insert("Proxy-Authorization".to_string(), b"Basic dXNlcjpwdw==".to_vec());
/// let ip = "192.0.2.10".parse().unwrap();
/// let peer = HttpPeer::new_proxy("127.0.0.1:3128", ip, 443, true, "example.com", headers);
/// let proxy = peer.proxy().unwrap();
/// assert_eq!((proxy.host.as_str(), proxy.port), ("192.0.2.10", 443));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Proxy {
    /// Where the proxy listens: a TCP address or a Unix socket path.
    pub next_hop: SocketAddr,
    /// The host of the `CONNECT` target (the peer, as the proxy names it).
    pub host: String,
    /// The port of the `CONNECT` target.
    pub port: u16,
    /// Fields sent with the `CONNECT` request, such as
    /// `Proxy-Authorization`.
    pub headers: BTreeMap<String, Vec<u8>>,
}

impl Proxy {
    /// A proxy at `next_hop` asked to connect to `host:port`.
    pub fn new(next_hop: impl Into<SocketAddr>, host: impl Into<String>, port: u16) -> Self {
        Self {
            next_hop: next_hop.into(),
            host: host.into(),
            port,
            headers: BTreeMap::new(),
        }
    }

    /// Send `name: value` with the `CONNECT` request.
    #[must_use]
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }
}
