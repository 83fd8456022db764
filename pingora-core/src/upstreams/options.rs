//! Options that say how to connect to a peer.

use std::hash::{Hash, Hasher};
use std::net::SocketAddr as InetAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::CertificateDer;

use crate::protocols::l4::TcpKeepalive;
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
    pub(crate) fn hash_reuse<H: Hasher>(&self, state: &mut H) {
        self.hash_tls(state);
        self.bind_to.hash(state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::DefaultHasher;

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
}
