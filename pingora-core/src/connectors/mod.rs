//! Connecting to peers: L4, then TLS if asked, with a pool of idle
//! connections.
//!
//! [`TransportConnector`] hands out a connected [`Stream`] for a
//! [`Peer`], plain or TLS, reusing an idle one from its
//! [`ConnectionPool`] when one fits (same [`Peer::reuse_hash`]). The
//! sessions built on top (HTTP/1, HTTP/2) return the stream with
//! [`TransportConnector::release_stream`] when it can be reused.
//!
//! Each step's errors name the step and are marked as from the upstream:
//! [`ErrorType::ConnectTimedout`], [`ErrorType::ConnectRefused`],
//! [`ErrorType::ConnectNoRoute`], [`ErrorType::ConnectError`],
//! [`ErrorType::TLSHandshakeFailure`], [`ErrorType::TLSHandshakeTimedout`],
//! [`ErrorType::InvalidCert`].

pub mod http;
pub mod http2;
pub mod l4;
pub mod pool;
mod proxy;
mod tls;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use pingora_error::Result;
#[allow(unused_imports)] // for the doc links
use pingora_error::{Error, ErrorType};
use tokio::time::Instant;

use crate::protocols::Stream;
use crate::tls::{ConnectorImpl, TlsBackend, certs_from_pem_file};
use crate::upstreams::Peer;
use pool::ConnectionPool;

/// The connect timeout when a peer sets none: a connect that takes longer
/// is almost always to a dead host.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The TLS handshake timeout when a peer sets no total timeout.
pub const DEFAULT_TLS_TIMEOUT: Duration = Duration::from_secs(10);
/// The number of idle connections kept when not configured.
pub const DEFAULT_POOL_SIZE: usize = 128;

/// Settings shared by every connection a [`TransportConnector`] makes.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConnectorOptions {
    /// A PEM CA bundle to trust instead of the system roots (the server
    /// config's `ca_file`). Peers with their own CA use theirs.
    pub ca_file: Option<PathBuf>,
    /// The most idle connections kept across all peers
    /// (`upstream_keepalive_pool_size`).
    pub keepalive_pool_size: usize,
    /// The TLS backend; the default one when `None`.
    pub tls_backend: Option<TlsBackend>,
    /// Source addresses for connections to IPv4 peers, used in turn, when
    /// a peer sets no `bind_to` (`client_bind_to_ipv4`); empty: the
    /// system's choice.
    pub bind_to_v4: Vec<std::net::Ipv4Addr>,
    /// The same for IPv6 peers (`client_bind_to_ipv6`).
    pub bind_to_v6: Vec<std::net::Ipv6Addr>,
    /// Write TLS session keys to the file named by `SSLKEYLOGFILE`
    /// (`upstream_debug_ssl_keylog`), for decrypting a packet capture.
    /// Never in production: anyone with the file reads the traffic.
    pub debug_ssl_keylog: bool,
}

impl Default for ConnectorOptions {
    fn default() -> Self {
        Self {
            ca_file: None,
            keepalive_pool_size: DEFAULT_POOL_SIZE,
            tls_backend: TlsBackend::default_backend(),
            bind_to_v4: Vec::new(),
            bind_to_v6: Vec::new(),
            debug_ssl_keylog: false,
        }
    }
}

impl ConnectorOptions {
    /// The options a server's config file asks for: its `ca_file` as the
    /// default trust store, its `upstream_keepalive_pool_size` and its
    /// `client_bind_to_ipv4` / `client_bind_to_ipv6` (entries that do not
    /// parse are skipped; [`ServerConf::validate`](crate::server::ServerConf::validate)
    /// refuses them).
    pub fn from_server_conf(conf: &crate::server::ServerConf) -> Self {
        Self {
            ca_file: conf.ca_file.as_ref().map(PathBuf::from),
            keepalive_pool_size: conf.upstream_keepalive_pool_size,
            bind_to_v4: conf
                .client_bind_to_ipv4
                .iter()
                .filter_map(|ip| ip.parse().ok())
                .collect(),
            bind_to_v6: conf
                .client_bind_to_ipv6
                .iter()
                .filter_map(|ip| ip.parse().ok())
                .collect(),
            debug_ssl_keylog: conf.upstream_debug_ssl_keylog,
            ..Self::default()
        }
    }
}

/// Connects to peers (L4 + TLS) and pools the idle connections.
///
/// # Examples
///
/// ```no_run
/// use pingora_core::connectors::{ConnectorOptions, TransportConnector};
/// use pingora_core::upstreams::{HttpPeer, Peer};
///
/// # async fn run() -> pingora_core::Result<()> {
/// let connector = TransportConnector::new(ConnectorOptions::default())?;
/// let peer = HttpPeer::new("192.0.2.1:443".parse::<std::net::SocketAddr>().unwrap(), true, "example.com");
/// let (stream, reused) = connector.get_stream(&peer).await?;
/// // ... speak HTTP over `stream`; when the exchange left it reusable:
/// connector.release_stream(stream, peer.reuse_hash(), peer.options.idle_timeout);
/// # Ok(()) }
/// ```
pub struct TransportConnector {
    tls: Option<Arc<dyn ConnectorImpl>>,
    pool: ConnectionPool<Stream>,
    bind_to_v4: Box<[std::net::Ipv4Addr]>,
    bind_to_v6: Box<[std::net::Ipv6Addr]>,
    /// Turns through the bind addresses.
    next_bind: std::sync::atomic::AtomicUsize,
}

impl TransportConnector {
    /// A connector with these options. Loads the trust store once: the
    /// `ca_file` if set, else the system roots.
    ///
    /// # Errors
    ///
    /// [`ErrorType::FileReadError`] or [`ErrorType::InvalidCert`] when the
    /// CA file cannot be used.
    pub fn new(options: ConnectorOptions) -> Result<Self> {
        let roots = options
            .ca_file
            .as_ref()
            .map(certs_from_pem_file)
            .transpose()?;
        let tls = match options.tls_backend {
            Some(backend) => Some(backend.connector(roots, options.debug_ssl_keylog)?),
            None => None,
        };
        Ok(Self {
            tls,
            pool: ConnectionPool::new(options.keepalive_pool_size),
            bind_to_v4: options.bind_to_v4.into(),
            bind_to_v6: options.bind_to_v6.into(),
            next_bind: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    /// A fresh connection to `peer`: L4 connect (through the peer's
    /// CONNECT proxy, if it has one), the PROXY protocol header its
    /// options ask for ([`PeerOptions::proxy_header`](crate::upstreams::PeerOptions::proxy_header)),
    /// then the TLS handshake if the peer asks for TLS.
    ///
    /// The connect is bounded by the peer's `connection_timeout`, the whole
    /// by its `total_connection_timeout`; [`DEFAULT_CONNECT_TIMEOUT`] and
    /// [`DEFAULT_TLS_TIMEOUT`] apply where it sets none.
    ///
    /// # Errors
    ///
    /// As [`l4::connect`], plus [`ErrorType::ConnectProxyFailure`] when
    /// the peer's [`Proxy`](crate::upstreams::Proxy) refuses the tunnel
    /// or answers something other than HTTP, [`ErrorType::TLSHandshakeFailure`],
    /// [`ErrorType::TLSHandshakeTimedout`] and [`ErrorType::InvalidCert`]
    /// from the TLS step, all marked as from the upstream.
    pub async fn new_stream<P: Peer + ?Sized>(&self, peer: &P) -> Result<Stream> {
        let options = peer.options();
        let start = Instant::now();
        let total = options.total_connection_timeout;
        let connect_timeout = match (options.connection_timeout, total) {
            (Some(c), Some(t)) => c.min(t),
            (c, t) => c.or(t).unwrap_or(DEFAULT_CONNECT_TIMEOUT),
        };
        let default_bind = self.default_bind(peer);
        let mut stream = match peer.proxy() {
            Some(via) => proxy::connect(peer, via, default_bind, connect_timeout).await?,
            None => l4::connect_from(peer, connect_timeout, default_bind).await?,
        };
        // The PROXY header goes to the peer itself: first on the socket,
        // or first through a CONNECT tunnel once the proxy opened it; and
        // before TLS, which the peer's PROXY-aware listener reads after it.
        if let Some(header) = &options.proxy_header {
            send_proxy_header(&mut stream, header, connect_timeout)
                .await
                .map_err(|e| e.more_context(format!("connecting to {peer}")))?;
        }
        if !peer.tls() {
            return Ok(stream);
        }
        let Some(tls) = &self.tls else {
            return Err(crate::tls::no_backend().into_up());
        };
        let tls_timeout = match total {
            Some(total) => total.saturating_sub(start.elapsed()),
            None => DEFAULT_TLS_TIMEOUT,
        };
        tls::handshake(tls, stream, peer, tls_timeout).await
    }

    /// The configured source address for `peer`'s family, in turn.
    fn default_bind<P: Peer + ?Sized>(&self, peer: &P) -> Option<std::net::IpAddr> {
        let inet = peer.address().as_inet()?;
        let turn = || {
            self.next_bind
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        };
        if inet.is_ipv4() {
            if self.bind_to_v4.is_empty() {
                return None;
            }
            Some(self.bind_to_v4[turn() % self.bind_to_v4.len()].into())
        } else {
            if self.bind_to_v6.is_empty() {
                return None;
            }
            Some(self.bind_to_v6[turn() % self.bind_to_v6.len()].into())
        }
    }

    /// An idle pooled connection that fits `peer` if there is one, else a
    /// fresh one. The flag says whether the connection was reused: a
    /// request that fails on a reused connection before any response byte
    /// may be retried on a fresh one.
    ///
    /// # Errors
    ///
    /// As [`Self::new_stream`].
    pub async fn get_stream<P: Peer + ?Sized>(&self, peer: &P) -> Result<(Stream, bool)> {
        if let Some(stream) = self.pool.get(peer.reuse_hash()) {
            return Ok((stream, true));
        }
        self.new_stream(peer).await.map(|s| (s, false))
    }

    /// Return a connection that can be reused, under the peer's
    /// `reuse_key` ([`Peer::reuse_hash`]), to be dropped after
    /// `idle_timeout` if unused.
    pub fn release_stream(&self, stream: Stream, reuse_key: u64, idle_timeout: Option<Duration>) {
        self.pool.put(reuse_key, stream, idle_timeout);
    }

    /// The pool of idle connections.
    pub fn pool(&self) -> &ConnectionPool<Stream> {
        &self.pool
    }
}

impl fmt::Debug for TransportConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransportConnector")
            .field("tls", &self.tls)
            .field("pool", &self.pool)
            .finish()
    }
}

/// Write `header` on a fresh `stream`, within `timeout`.
///
/// # Errors
///
/// [`ErrorType::WriteError`] or [`ErrorType::WriteTimedout`], from the
/// upstream and safe to retry: no request byte was sent.
async fn send_proxy_header(
    stream: &mut Stream,
    header: &crate::upstreams::SendProxyHeader,
    timeout: Duration,
) -> Result<()> {
    use tokio::io::AsyncWriteExt;
    let bytes = header.encode();
    let write = async {
        stream.write_all(&bytes).await?;
        stream.flush().await
    };
    let result = match tokio::time::timeout(timeout, write).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Error::because(
            ErrorType::WriteError,
            "sending the PROXY header",
            e,
        )),
        Err(_) => Err(Error::explain(
            ErrorType::WriteTimedout,
            "sending the PROXY header",
        )),
    };
    result.map_err(|mut e| {
        e.set_retry(true);
        e.into_up()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_follow_the_server_conf() {
        let conf = crate::server::ServerConf {
            ca_file: Some("/etc/ssl/private-ca.pem".into()),
            upstream_keepalive_pool_size: 7,
            ..crate::server::ServerConf::default()
        };
        let options = ConnectorOptions::from_server_conf(&conf);
        assert_eq!(
            options.ca_file,
            Some(PathBuf::from("/etc/ssl/private-ca.pem"))
        );
        assert_eq!(options.keepalive_pool_size, 7);
    }

    #[tokio::test]
    async fn client_bind_to_sets_the_source_address() {
        let conf = crate::server::ServerConf {
            client_bind_to_ipv4: vec!["127.0.0.2".into(), "127.0.0.3".into()],
            ..crate::server::ServerConf::default()
        };
        let connector = TransportConnector::new(ConnectorOptions::from_server_conf(&conf)).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let peer = crate::upstreams::HttpPeer::new(listener.local_addr().unwrap(), false, "");
        let mut sources = Vec::new();
        for _ in 0..2 {
            let _stream = connector.new_stream(&peer).await.unwrap();
            let (_, from) = listener.accept().await.unwrap();
            sources.push(from.ip().to_string());
        }
        sources.sort();
        assert_eq!(sources, ["127.0.0.2", "127.0.0.3"]);
        // A peer's own bind_to wins.
        let mut own = peer.clone();
        own.options.bind_to = Some("127.0.0.4:0".parse().unwrap());
        let _stream = connector.new_stream(&own).await.unwrap();
        let (_, from) = listener.accept().await.unwrap();
        assert_eq!(from.ip().to_string(), "127.0.0.4");
    }

    #[tokio::test]
    async fn a_bad_peer_address_fails_the_connect_without_retry() {
        let connector = TransportConnector::new(ConnectorOptions::default()).unwrap();
        let peer = crate::upstreams::HttpPeer::new("no-such-port", false, "");
        let err = connector.new_stream(&peer).await.unwrap_err();
        assert_eq!(err.etype, crate::upstreams::INVALID_PEER_ADDRESS);
        assert!(!err.retry());
        assert!(err.to_string().contains("no-such-port"), "{err}");
    }

    #[test]
    fn missing_ca_file_is_an_error() {
        let options = ConnectorOptions {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..ConnectorOptions::default()
        };
        let err = TransportConnector::new(options).unwrap_err();
        assert_eq!(err.etype(), &ErrorType::FileReadError);
    }
}
