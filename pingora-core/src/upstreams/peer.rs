//! Peers: where to connect and how.

use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::PathBuf;

use super::{PeerOptions, Proxy, ToPeerAddress};
use crate::protocols::SocketAddr;
use crate::tls::CertKey;
use pingora_error::Result;
use std::sync::Arc;

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

    /// Why the address this peer was built from is not one, when it is
    /// not: connecting then fails with this reason instead of trying.
    fn address_error(&self) -> Option<&str> {
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
/// # Addresses
///
/// [`HttpPeer::new`] takes every form of [`ToPeerAddress`]: `"ip:port"`
/// and `"host:port"` strings, `(ip, port)` and `(&str, port)` pairs,
/// `SocketAddr`s and a load balancer's `&Backend`. It keeps Pingora's
/// infallible shape, so it cannot return an error; instead:
///
/// - an address that does not parse or resolve never panics: `new` logs
///   it and returns a peer that fails to connect, with an
///   [`INVALID_PEER_ADDRESS`](super::INVALID_PEER_ADDRESS) error naming
///   the address (the request gets a 502, the error reaches `logging`);
/// - to see a bad address at start-up instead, build the peer (or at least
///   check the address) there with [`HttpPeer::try_new`], which returns
///   the error, and clone the peer per request.
///
/// # Examples
///
/// ```
/// use pingora_core::upstreams::{HttpPeer, Peer};
///
/// let mut peer = HttpPeer::new("127.0.0.1:443", true, "example.com");
/// peer.options.alternative_names.push("www.example.com".into());
/// assert!(peer.tls());
/// assert_eq!(peer.sni(), "example.com");
/// ```
#[derive(Debug, Clone)]
pub struct HttpPeer {
    address: SocketAddr,
    tls: bool,
    sni: String,
    /// Why `address` is a placeholder: the given address was not one.
    address_error: Option<Arc<str>>,
    /// How to connect to this peer.
    pub options: PeerOptions,
    /// The HTTP proxy to reach this peer through (`CONNECT`), if any.
    pub proxy: Option<Proxy>,
}

impl HttpPeer {
    /// A peer at `address`, over TLS when `tls` is set, sending `sni`.
    ///
    /// A bad `address` gives a peer that fails to connect (see
    /// [Addresses](Self#addresses)); [`try_new`](Self::try_new) returns the
    /// error instead.
    pub fn new(address: impl ToPeerAddress, tls: bool, sni: impl Into<String>) -> Self {
        match address.to_peer_address() {
            Ok(address) => Self::with_address(address, tls, sni.into()),
            Err(e) => {
                log::error!("peer with a bad address: {e}");
                let mut peer = Self::with_address(SocketAddr::Unix(None), tls, sni.into());
                peer.address_error = Some(e.to_string().into());
                peer
            }
        }
    }

    /// A peer at `address`, over TLS when `tls` is set, sending `sni`.
    ///
    /// # Errors
    ///
    /// [`INVALID_PEER_ADDRESS`](super::INVALID_PEER_ADDRESS) when
    /// `address` is not an address (or a name that resolves to one).
    ///
    /// # Examples
    ///
    /// ```
    /// use pingora_core::upstreams::HttpPeer;
    ///
    /// assert!(HttpPeer::try_new("127.0.0.1:80", false, "").is_ok());
    /// assert!(HttpPeer::try_new("127.0.0.1", false, "").is_err());
    /// ```
    pub fn try_new(address: impl ToPeerAddress, tls: bool, sni: impl Into<String>) -> Result<Self> {
        Ok(Self::with_address(
            address.to_peer_address()?,
            tls,
            sni.into(),
        ))
    }

    /// A TLS peer at `address` that presents the client certificate
    /// `client_cert_key` (mutual TLS), sending `sni`.
    pub fn new_mtls(
        address: impl ToPeerAddress,
        sni: impl Into<String>,
        client_cert_key: Arc<CertKey>,
    ) -> Self {
        let mut peer = Self::new(address, true, sni);
        peer.options.client_cert_key = Some(client_cert_key);
        peer
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
        Self::with_address(SocketAddr::Unix(Some(path.into())), tls, sni.into())
    }

    fn with_address(address: SocketAddr, tls: bool, sni: String) -> Self {
        Self {
            address,
            tls,
            sni,
            address_error: None,
            options: PeerOptions::default(),
            proxy: None,
        }
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
    fn address_error(&self) -> Option<&str> {
        self.address_error.as_deref()
    }
}

impl fmt::Display for HttpPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        if self.address_error.is_some() {
            return write!(f, "{scheme}://(bad address) (sni: {:?})", self.sni);
        }
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
    fn a_bad_address_is_a_peer_that_says_why() {
        let peer = HttpPeer::new("not an address", false, "");
        let why = peer.address_error().unwrap();
        assert!(why.contains("not an address"), "{why}");
        assert!(HttpPeer::try_new("not an address", false, "").is_err());
        assert!(
            HttpPeer::new("127.0.0.1:80", false, "")
                .address_error()
                .is_none()
        );
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
