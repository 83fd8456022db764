//! Options that say how to connect to a peer.

use std::hash::{Hash, Hasher};
use std::net::SocketAddr as InetAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::CertificateDer;

use crate::protocols::Digest;
use crate::protocols::l4::TcpKeepalive;
use crate::protocols::proxy_protocol::{self, ProxyAddresses};
use crate::tls::{Alpn, CertKey};

/// How to connect to a peer: timeouts, TLS verification, client
/// certificate, ALPN and socket options.
///
/// Every field is public; start from [`PeerOptions::default`] and change
/// what you need. The defaults verify the certificate and the hostname,
/// use HTTP/1 only and set no timeout beyond the connector's own defaults.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PeerOptions {
    /// Timeout of the TCP (or Unix socket) connect alone.
    pub connection_timeout: Option<Duration>,
    /// Timeout of the whole connection set-up: TCP connect plus TLS
    /// handshake.
    pub total_connection_timeout: Option<Duration>,
    /// Timeout of each read once connected; used by the sessions above.
    pub read_timeout: Option<Duration>,
    /// Timeout of each write once connected; used by the sessions above.
    pub write_timeout: Option<Duration>,
    /// How long a connection to this peer may sit idle in the pool.
    pub idle_timeout: Option<Duration>,
    /// Verify the peer's certificate chain (on by default).
    pub verify_cert: bool,
    /// Verify that the certificate names the SNI (on by default).
    pub verify_hostname: bool,
    /// Other names the certificate may carry instead of the SNI.
    pub alternative_names: Vec<String>,
    /// Certificates to trust instead of the connector's default trust store.
    pub ca: Option<Arc<[CertificateDer<'static>]>>,
    /// Client certificate and key, for mutual TLS.
    pub client_cert_key: Option<Arc<CertKey>>,
    /// Which HTTP versions to offer with ALPN.
    pub alpn: Alpn,
    /// TCP keepalive probes; `None` leaves the system default.
    pub tcp_keepalive: Option<TcpKeepalive>,
    /// Ask for TCP fast open where the platform supports it.
    pub tcp_fast_open: bool,
    /// Local address to bind before connecting.
    pub bind_to: Option<InetAddr>,
    /// Socket receive buffer size in bytes.
    pub tcp_recv_buf: Option<usize>,
    /// The most requests one HTTP/2 connection to this peer carries at
    /// once; past it the connector opens another connection. Default
    /// `usize::MAX`: as many as the server allows (its
    /// `SETTINGS_MAX_CONCURRENT_STREAMS`). `0` counts as 1.
    pub max_h2_streams: usize,
    /// How often to PING an HTTP/2 connection to this peer, to find a dead
    /// one before a request does; `None` keeps the connector's setting
    /// ([`H2Options::keepalive_interval`](crate::protocols::http::v2::H2Options::keepalive_interval)).
    pub h2_ping_interval: Option<Duration>,
    /// A PROXY protocol header to send the peer first, right after the
    /// connect (through the tunnel when the peer has a CONNECT proxy) and
    /// before TLS: who the client is, for a peer behind us that accepts
    /// them. Part of the reuse key: a pooled connection announced for one
    /// client is never used for another.
    pub proxy_header: Option<SendProxyHeader>,
}

/// Which PROXY protocol version to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProxyVersion {
    /// Version 1, text.
    V1,
    /// Version 2, binary.
    V2,
}

/// A PROXY protocol header to send an upstream (see
/// [`PeerOptions::proxy_header`]): the client's address and the address
/// it connected to.
///
/// # Examples
///
/// ```
/// use pingora_core::upstreams::{HttpPeer, ProxyVersion, SendProxyHeader};
///
/// let mut peer = HttpPeer::new("10.0.0.5:8080", false, "");
/// let client = "203.0.113.7:50123".parse().unwrap();
/// let us = "198.51.100.1:443".parse().unwrap();
/// peer.options.proxy_header = Some(SendProxyHeader::new(ProxyVersion::V2, client, us));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct SendProxyHeader {
    /// v1 or v2.
    pub version: ProxyVersion,
    /// The client.
    pub source: InetAddr,
    /// The address the client connected to.
    pub destination: InetAddr,
}

impl SendProxyHeader {
    /// A `version` header saying `source` connected to `destination`.
    pub const fn new(version: ProxyVersion, source: InetAddr, destination: InetAddr) -> Self {
        Self {
            version,
            source,
            destination,
        }
    }

    /// A header for the downstream connection `digest` describes: its
    /// client ([`Digest::peer_addr`], the one a trusted PROXY header named
    /// when there was one) and the address the client connected to (the
    /// destination of that PROXY header, else our socket's address).
    /// `None` when either is not an IP address (a Unix socket client).
    ///
    /// # Examples
    ///
    /// ```
    /// use pingora_core::protocols::Digest;
    /// use pingora_core::upstreams::{ProxyVersion, SendProxyHeader};
    ///
    /// let local = "198.51.100.1:443".parse::<std::net::SocketAddr>().unwrap();
    /// let client = "203.0.113.7:50123".parse::<std::net::SocketAddr>().unwrap();
    /// let digest = Digest::new(Some(local.into()), Some(client.into()));
    /// let header = SendProxyHeader::from_digest(ProxyVersion::V1, &digest).unwrap();
    /// assert_eq!(header.source, client);
    /// ```
    pub fn from_digest(version: ProxyVersion, digest: &Digest) -> Option<Self> {
        let source = *digest.peer_addr.as_ref()?.as_inet()?;
        let announced = digest
            .proxy_header
            .as_ref()
            .and_then(|h| match h.addresses {
                ProxyAddresses::Inet { destination, .. } => Some(destination),
                _ => None,
            });
        let destination = match announced {
            Some(destination) => destination,
            None => *digest.local_addr.as_ref()?.as_inet()?,
        };
        Some(Self::new(version, source, destination))
    }

    /// The header's bytes. Addresses of different families are both sent
    /// as IPv6 (the IPv4 one mapped), which both versions can carry.
    pub fn encode(&self) -> Vec<u8> {
        let (source, destination) = if self.source.is_ipv4() == self.destination.is_ipv4() {
            (self.source, self.destination)
        } else {
            let v6 = |a: InetAddr| match a {
                InetAddr::V4(v4) => InetAddr::new(v4.ip().to_ipv6_mapped().into(), v4.port()),
                v6 => v6,
            };
            (v6(self.source), v6(self.destination))
        };
        let addresses = Some((source, destination));
        match self.version {
            ProxyVersion::V1 => proxy_protocol::encode_v1(addresses),
            // Without TLVs the body is at most 36 bytes: it always fits.
            ProxyVersion::V2 => proxy_protocol::encode_v2(addresses, &[]).unwrap_or_default(),
        }
    }
}

impl Default for PeerOptions {
    fn default() -> Self {
        Self {
            connection_timeout: None,
            total_connection_timeout: None,
            read_timeout: None,
            write_timeout: None,
            idle_timeout: None,
            verify_cert: true,
            verify_hostname: true,
            alternative_names: Vec::new(),
            ca: None,
            client_cert_key: None,
            alpn: Alpn::H1,
            tcp_keepalive: None,
            tcp_fast_open: false,
            bind_to: None,
            tcp_recv_buf: None,
            max_h2_streams: usize::MAX,
            h2_ping_interval: None,
            proxy_header: None,
        }
    }
}

impl PeerOptions {
    /// Feed into `state` the options that decide whether two TLS sessions
    /// are interchangeable: how the server was verified, who we claimed to
    /// be and which protocol was offered.
    pub(crate) fn hash_tls<H: Hasher>(&self, state: &mut H) {
        self.verify_cert.hash(state);
        self.verify_hostname.hash(state);
        self.alternative_names.hash(state);
        match &self.ca {
            Some(ca) => {
                true.hash(state);
                for cert in ca.iter() {
                    cert.as_ref().hash(state);
                }
            }
            None => false.hash(state),
        }
        self.client_cert_key
            .as_ref()
            .map(|ck| ck.fingerprint())
            .hash(state);
        self.alpn.hash(state);
    }

    /// Feed into `state` every option that makes two connections
    /// interchangeable. Timeouts are left out: they change how long we
    /// wait, not what we are connected to. Socket options are left out too
    /// except the bind address, which changes the connection's source.
    /// The PROXY header to send is in: the peer believes the connection
    /// is that client's.
    pub(crate) fn hash_reuse<H: Hasher>(&self, state: &mut H) {
        self.hash_tls(state);
        self.bind_to.hash(state);
        self.proxy_header.hash(state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::DefaultHasher;

    #[test]
    fn a_header_for_mixed_families_maps_ipv4() {
        let header = SendProxyHeader::new(
            ProxyVersion::V1,
            "192.0.2.7:1000".parse().unwrap(),
            "[2001:db8::1]:443".parse().unwrap(),
        );
        let text = String::from_utf8(header.encode()).unwrap();
        assert_eq!(text, "PROXY TCP6 ::ffff:192.0.2.7 2001:db8::1 1000 443\r\n");
    }

    #[test]
    fn a_header_from_a_digest_forwards_the_announced_client() {
        use crate::protocols::proxy_protocol::{Parsed, parse};
        let local: InetAddr = "10.0.0.1:80".parse().unwrap();
        let balancer: InetAddr = "10.0.0.9:4000".parse().unwrap();
        let mut digest = Digest::new(Some(local.into()), Some(balancer.into()));
        let bytes = b"PROXY TCP4 203.0.113.7 198.51.100.1 5000 443\r\n";
        let Ok(Parsed::Header { header, .. }) = parse(bytes) else {
            panic!("a valid header")
        };
        digest.set_proxy_header(Arc::new(header));
        let sent = SendProxyHeader::from_digest(ProxyVersion::V2, &digest).unwrap();
        assert_eq!(sent.source, "203.0.113.7:5000".parse().unwrap());
        assert_eq!(sent.destination, "198.51.100.1:443".parse().unwrap());
        let Ok(Parsed::Header { header, .. }) = parse(&sent.encode()) else {
            panic!("we write what we read")
        };
        assert_eq!(header.source(), Some(sent.source));
    }

    fn reuse(opts: &PeerOptions) -> u64 {
        let mut h = DefaultHasher::new();
        opts.hash_reuse(&mut h);
        h.finish()
    }

    #[test]
    fn timeouts_do_not_change_the_reuse_key() {
        let a = PeerOptions::default();
        let b = PeerOptions {
            read_timeout: Some(Duration::from_secs(3)),
            idle_timeout: Some(Duration::from_secs(3)),
            ..PeerOptions::default()
        };
        assert_eq!(reuse(&a), reuse(&b));
    }

    #[test]
    fn tls_settings_change_the_reuse_key() {
        let base = reuse(&PeerOptions::default());
        let changed = [
            PeerOptions {
                verify_cert: false,
                ..PeerOptions::default()
            },
            PeerOptions {
                verify_hostname: false,
                ..PeerOptions::default()
            },
            PeerOptions {
                alpn: Alpn::H2,
                ..PeerOptions::default()
            },
            PeerOptions {
                alternative_names: vec!["other".into()],
                ..PeerOptions::default()
            },
            PeerOptions {
                ca: Some(Arc::from(vec![CertificateDer::from(vec![1u8, 2, 3])])),
                ..PeerOptions::default()
            },
            PeerOptions {
                bind_to: Some("127.0.0.2:0".parse().unwrap()),
                ..PeerOptions::default()
            },
        ];
        for opts in &changed {
            assert_ne!(base, reuse(opts), "{opts:?}");
        }
    }

    /// A pooled connection announced for one client is never reused for
    /// another, nor for the same client in the other version.
    #[test]
    fn the_proxy_header_changes_the_reuse_key() {
        let us = "198.51.100.1:443".parse().unwrap();
        let with = |version, client: &str| PeerOptions {
            proxy_header: Some(SendProxyHeader::new(version, client.parse().unwrap(), us)),
            ..PeerOptions::default()
        };
        let a = with(ProxyVersion::V1, "203.0.113.7:5000");
        assert_eq!(
            reuse(&a),
            reuse(&with(ProxyVersion::V1, "203.0.113.7:5000"))
        );
        let base = reuse(&PeerOptions::default());
        let changed = [
            with(ProxyVersion::V1, "203.0.113.8:5000"),
            with(ProxyVersion::V1, "203.0.113.7:5001"),
            with(ProxyVersion::V2, "203.0.113.7:5000"),
        ];
        assert_ne!(base, reuse(&a));
        for opts in &changed {
            assert_ne!(reuse(&a), reuse(opts), "{opts:?}");
        }
    }
}
