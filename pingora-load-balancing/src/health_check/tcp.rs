//! [`TcpHealthCheck`]: a backend is healthy when it accepts a connection.

use super::{HealthCheck, HealthObserver, notify, threshold};
use crate::Backend;
use async_trait::async_trait;
use pingora_core::connectors::{ConnectorOptions, TransportConnector};
use pingora_core::upstreams::{BasicPeer, PeerOptions};
use pingora_error::{Error, ErrorType, Result};
use std::time::Duration;

/// Healthy when a TCP connect (and the TLS handshake, when
/// [`with_tls`](Self::with_tls) is set) succeeds within the timeout.
///
/// Each probe opens a fresh connection and closes it at once; pooled
/// connections are never used, since a live idle connection says nothing
/// about whether new ones are accepted.
///
/// # Examples
///
/// ```
/// use pingora_load_balancing::health_check::TcpHealthCheck;
/// use std::time::Duration;
///
/// let check = TcpHealthCheck::new()
///     .timeout(Duration::from_millis(500))
///     .consecutive_failure(3)
///     .consecutive_success(2);
///
/// // The same knobs as fields, the way Pingora programs set them.
/// let mut check = TcpHealthCheck::new();
/// check.consecutive_failure = 3;
/// check.consecutive_success = 2;
/// ```
pub struct TcpHealthCheck {
    /// The SNI to send when the probe runs a TLS handshake.
    tls_sni: Option<String>,
    options: PeerOptions,
    timeout: Duration,
    connector: Option<TransportConnector>,
    /// Successes in a row that bring a down backend back (default 1;
    /// 0 counts as 1).
    pub consecutive_success: usize,
    /// Failures in a row that take an up backend down (default 1; 0
    /// counts as 1).
    pub consecutive_failure: usize,
    /// Called on each health change, after it is visible to selection.
    pub health_changed_callback: Option<HealthObserver>,
}

impl std::fmt::Debug for TcpHealthCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpHealthCheck")
            .field("tls_sni", &self.tls_sni)
            .field("timeout", &self.timeout)
            .field("consecutive_success", &self.consecutive_success)
            .field("consecutive_failure", &self.consecutive_failure)
            .field(
                "health_changed_callback",
                &self.health_changed_callback.is_some(),
            )
            .finish_non_exhaustive()
    }
}

impl TcpHealthCheck {
    /// The default connect timeout of a probe.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

    /// A plain TCP check, thresholds 1 and 1, timeout
    /// [`DEFAULT_TIMEOUT`](Self::DEFAULT_TIMEOUT).
    pub fn new() -> Self {
        Self {
            tls_sni: None,
            options: PeerOptions::default(),
            timeout: Self::DEFAULT_TIMEOUT,
            connector: new_connector(),
            consecutive_success: 1,
            consecutive_failure: 1,
            health_changed_callback: None,
        }
    }

    /// Run a TLS handshake after connecting, sending `sni`; the check then
    /// also fails on a certificate that does not verify for `sni`.
    #[must_use]
    pub fn with_tls(mut self, sni: &str) -> Self {
        self.tls_sni = Some(sni.to_string());
        self
    }

    /// Fail a probe that has not connected (and shaken hands) in `timeout`.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Connect with these options (trusted CA, verification, client
    /// certificate, bind address...); their timeouts are replaced by
    /// [`timeout`](Self::timeout).
    #[must_use]
    pub fn peer_options(mut self, options: PeerOptions) -> Self {
        self.options = options;
        self
    }

    /// Successes in a row that bring a down backend back (default 1).
    #[must_use]
    pub fn consecutive_success(mut self, count: usize) -> Self {
        self.consecutive_success = count;
        self
    }

    /// Failures in a row that take an up backend down (default 1).
    #[must_use]
    pub fn consecutive_failure(mut self, count: usize) -> Self {
        self.consecutive_failure = count;
        self
    }

    /// Call `observer` on each health change.
    #[must_use]
    pub fn on_health_change(mut self, observer: HealthObserver) -> Self {
        self.health_changed_callback = Some(observer);
        self
    }

    fn peer_for(&self, target: &Backend) -> BasicPeer {
        let mut peer = BasicPeer::new(target.addr.clone());
        if let Some(sni) = &self.tls_sni {
            peer = peer.with_tls(sni.as_str());
        }
        peer.options = self.options.clone();
        peer.options.connection_timeout = Some(self.timeout);
        peer.options.total_connection_timeout = Some(self.timeout);
        peer
    }
}

/// A connector with the default trust store. Building it only fails when
/// the trust store cannot be loaded; the checks then fail (and say why)
/// instead of the constructor.
pub(super) fn new_connector() -> Option<TransportConnector> {
    TransportConnector::new(ConnectorOptions::default())
        .inspect_err(|e| log::error!("health check connector: {e}"))
        .ok()
}

impl Default for TcpHealthCheck {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl HealthCheck for TcpHealthCheck {
    async fn check(&self, target: &Backend) -> Result<()> {
        let peer = self.peer_for(target);
        let Some(connector) = &self.connector else {
            return Error::e_explain(ErrorType::ConnectError, "no connector for health checks");
        };
        // The connector bounds the connect and the handshake by the peer's
        // timeouts; dropping the stream closes the connection.
        connector.new_stream(&peer).await.map(drop)
    }

    fn health_threshold(&self, success: bool) -> usize {
        threshold(self.consecutive_success, self.consecutive_failure, success)
    }

    async fn health_status_change(&self, target: &Backend, healthy: bool) {
        notify(self.health_changed_callback.as_ref(), target, healthy);
    }
}
