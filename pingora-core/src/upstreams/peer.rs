//! Peers: where to connect and how.

use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::PathBuf;

use super::{PeerOptions, Proxy};
use crate::protocols::SocketAddr;

/// Something a connector can connect to: an address, whether to speak TLS,
/// the SNI to send and the [`PeerOptions`].
pub trait Peer: fmt::Display + Send + Sync {
    /// The address to connect to.
    fn address(&self) -> &SocketAddr;

    /// Whether to run a TLS handshake after connecting.
    fn tls(&self) -> bool;

    /// The SNI to send, which is also the name the certificate must carry.
    /// Empty means no SNI.
    fn sni(&self) -> &str;

    /// How to connect.
    fn options(&self) -> &PeerOptions;

    /// The HTTP proxy to reach the peer through, if any.
    fn proxy(&self) -> Option<&Proxy> {
        None
    }

    /// A key that is equal for two peers exactly when a connection made for
    /// one may be handed to the other: same address, TLS on or off, SNI,
    /// verification settings, CA, client certificate, ALPN, bind address
    /// and the proxy in between.
    fn reuse_hash(&self) -> u64 {
        let mut hasher = GatheringHasher::default();
        self.address().hash(&mut hasher);
        self.proxy().hash(&mut hasher);
        self.tls().hash(&mut hasher);
        self.sni().hash(&mut hasher);
        self.options().hash_reuse(&mut hasher);
        hasher.finish()
    }
}

/// SipHash with the writes gathered first. SipHash pays for every write,
/// and a peer is a dozen writes of a few bytes each (flags, address, port,
/// SNI, options); gathered, they cost about a third as much. Same hash
/// quality: the same bytes reach the same hasher in the same order.
struct GatheringHasher {
    buf: [u8; 128],
    len: usize,
    inner: DefaultHasher,
}

impl Default for GatheringHasher {
    fn default() -> Self {
        Self {
            buf: [0; 128],
            len: 0,
            inner: DefaultHasher::new(),
        }
    }
}

impl Hasher for GatheringHasher {
    fn write(&mut self, bytes: &[u8]) {
        if self.len + bytes.len() > self.buf.len() {
            self.inner.write(&self.buf[..self.len]);
            self.len = 0;
            if bytes.len() > self.buf.len() {
                self.inner.write(bytes);
                return;
            }
        }
        self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }

    fn finish(&self) -> u64 {
        let mut inner = self.inner.clone();
        inner.write(&self.buf[..self.len]);
        inner.finish()
    }
}

/// A peer spoken to over HTTP, with or without TLS.
///
/// # Examples
///
/// ```
/// use pingora_core::upstreams::{HttpPeer, Peer};
///
/// let mut peer = HttpPeer::new("127.0.0.1:443".parse::<std::net::SocketAddr>().unwrap(), true, "example.com");
/// peer.options.alternative_names.push("www.example.com".into());
/// assert!(peer.tls());
/// assert_eq!(peer.sni(), "example.com");
/// ```
#[derive(Debug, Clone)]
pub struct HttpPeer {
    address: SocketAddr,
    tls: bool,
    sni: String,
    /// How to connect to this peer.
    pub options: PeerOptions,
    /// The HTTP proxy to reach this peer through (`CONNECT`), if any.
    pub proxy: Option<Proxy>,
}

impl HttpPeer {
    /// A peer at `address`, over TLS when `tls` is set, sending `sni`.
    pub fn new(address: impl Into<SocketAddr>, tls: bool, sni: impl Into<String>) -> Self {
        Self {
            address: address.into(),
            tls,
            sni: sni.into(),
            options: PeerOptions::default(),
            proxy: None,
        }
    }

    /// A peer at `ip:port` reached through the HTTP proxy at `next_hop`
    /// (a TCP address such as `"127.0.0.1:3128"`, or else a Unix socket
    /// path), which is asked to `CONNECT` to it with `headers`. TLS, when
    /// `tls` is set, runs end to end through the tunnel. See [`Proxy`].
    pub fn new_proxy(
        next_hop: &str,
        ip: std::net::IpAddr,
        port: u16,
        tls: bool,
        sni: &str,
        headers: std::collections::BTreeMap<String, Vec<u8>>,
    ) -> Self {
        let hop = match next_hop.parse::<std::net::SocketAddr>() {
            Ok(addr) => SocketAddr::Inet(addr),
            Err(_) => SocketAddr::Unix(Some(PathBuf::from(next_hop))),
        };
        let mut proxy = Proxy::new(hop, ip.to_string(), port);
        proxy.headers = headers;
        let mut peer = Self::new(std::net::SocketAddr::new(ip, port), tls, sni);
        peer.proxy = Some(proxy);
        peer
    }

    /// A peer listening on the Unix socket at `path`.
    pub fn new_uds(path: impl Into<PathBuf>, tls: bool, sni: impl Into<String>) -> Self {
        Self::new(SocketAddr::Unix(Some(path.into())), tls, sni)
    }
}

impl Peer for HttpPeer {
    fn address(&self) -> &SocketAddr {
        &self.address
    }
    fn tls(&self) -> bool {
        self.tls
    }
    fn sni(&self) -> &str {
        &self.sni
    }
    fn options(&self) -> &PeerOptions {
        &self.options
    }
    fn proxy(&self) -> Option<&Proxy> {
        self.proxy.as_ref()
    }
}

impl fmt::Display for HttpPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        write!(f, "{scheme}://{} (sni: {:?})", self.address, self.sni)?;
        match &self.proxy {
            Some(proxy) => write!(f, " via proxy {}", proxy.next_hop),
            None => Ok(()),
        }
    }
}

/// A plain L4 peer: a TCP or Unix socket address, optionally with TLS.
#[derive(Debug, Clone)]
pub struct BasicPeer {
    address: SocketAddr,
    tls: bool,
    sni: String,
    /// How to connect to this peer.
    pub options: PeerOptions,
}

impl BasicPeer {
    /// A plain-text peer at `address`.
    pub fn new(address: impl Into<SocketAddr>) -> Self {
        Self {
            address: address.into(),
            tls: false,
            sni: String::new(),
            options: PeerOptions::default(),
        }
    }

    /// A plain-text peer on the Unix socket at `path`.
    pub fn new_uds(path: impl Into<PathBuf>) -> Self {
        Self::new(SocketAddr::Unix(Some(path.into())))
    }

    /// Speak TLS to this peer, sending `sni`.
    #[must_use]
    pub fn with_tls(mut self, sni: impl Into<String>) -> Self {
        self.tls = true;
        self.sni = sni.into();
        self
    }
}

impl Peer for BasicPeer {
    fn address(&self) -> &SocketAddr {
        &self.address
    }
    fn tls(&self) -> bool {
        self.tls
    }
    fn sni(&self) -> &str {
        &self.sni
    }
    fn options(&self) -> &PeerOptions {
        &self.options
    }
}

impl fmt::Display for BasicPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.address)?;
        if self.tls {
            write!(f, " (tls, sni: {:?})", self.sni)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr as InetAddr;

    fn addr(s: &str) -> InetAddr {
        s.parse().unwrap()
    }

    #[test]
    fn same_peer_same_key() {
        let a = HttpPeer::new(addr("127.0.0.1:80"), true, "a.test");
        let b = HttpPeer::new(addr("127.0.0.1:80"), true, "a.test");
        assert_eq!(a.reuse_hash(), b.reuse_hash());
    }

    #[test]
    fn address_tls_and_sni_change_the_key() {
        let a = HttpPeer::new(addr("127.0.0.1:80"), true, "a.test");
        for other in [
            HttpPeer::new(addr("127.0.0.1:81"), true, "a.test"),
            HttpPeer::new(addr("[::1]:80"), true, "a.test"),
            HttpPeer::new(addr("127.0.0.1:80"), false, "a.test"),
            HttpPeer::new(addr("127.0.0.1:80"), true, "b.test"),
            HttpPeer::new_uds("/tmp/a.sock", true, "a.test"),
        ] {
            assert_ne!(a.reuse_hash(), other.reuse_hash(), "{other}");
        }
    }

    #[test]
    fn gathering_hashes_the_bytes_written_whatever_their_split() {
        let bytes: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut plain = DefaultHasher::new();
        plain.write(&bytes);
        // Small writes, writes that overflow the buffer and one longer
        // than it, in several splits.
        for sizes in [
            &[1usize, 3, 8, 100, 200, 7, 681][..],
            &[128, 128, 744],
            &[1000],
        ] {
            let mut gathering = GatheringHasher::default();
            let mut at = 0;
            for n in sizes {
                gathering.write(&bytes[at..at + n]);
                at += n;
            }
            assert_eq!(at, bytes.len());
            assert_eq!(gathering.finish(), plain.finish(), "{sizes:?}");
        }
    }

    #[test]
    fn display_names_the_scheme() {
        let p = HttpPeer::new(addr("127.0.0.1:80"), false, "");
        assert!(p.to_string().starts_with("http://127.0.0.1:80"));
        let b = BasicPeer::new_uds("/tmp/x.sock").with_tls("x");
        assert!(b.tls());
        assert_eq!(b.to_string(), "unix:/tmp/x.sock (tls, sni: \"x\")");
    }
}
