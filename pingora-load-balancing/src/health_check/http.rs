//! [`HttpHealthCheck`]: a backend is healthy when it answers an HTTP/1.1
//! request as expected.

use super::{HealthCheck, HealthObserver, notify, threshold};
use crate::Backend;
use async_trait::async_trait;
use pingora_core::connectors::ConnectorOptions;
use pingora_core::connectors::http::HttpConnector;
use pingora_core::header::{RequestHeader, ResponseHeader};
use pingora_core::upstreams::{HttpPeer, PeerOptions};
use pingora_error::{Error, ErrorType, Result};
use std::sync::Arc;
use std::time::Duration;

/// Decides whether a response means healthy: `Ok` for healthy, `Err` (with
/// the reason, logged) otherwise. Gets the response head and up to
/// [`HttpHealthCheck::MAX_BODY`] bytes of body.
pub type ResponseValidator = Arc<dyn Fn(&ResponseHeader, &[u8]) -> Result<()> + Send + Sync>;

/// The error kind for a response that fails the check.
const UNHEALTHY: ErrorType = ErrorType::new("UnhealthyResponse");

/// Healthy when the backend answers the request (by default `GET /` with
/// the configured `Host`) with the expected status (default 200), or with a
/// response the [validator](Self::validator) accepts.
///
/// Each probe is bounded as a whole by [`timeout`](Self::timeout). Probes
/// use a fresh connection unless [`reuse_connection`](Self::reuse_connection)
/// is set.
///
/// # Examples
///
/// ```
/// use pingora_load_balancing::health_check::HttpHealthCheck;
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// let check = HttpHealthCheck::new("origin.example", false)
///     .path("/healthz")
///     .unwrap()
///     .timeout(Duration::from_secs(2))
///     .validator(Arc::new(|resp, body| {
///         if resp.status().is_success() && body.starts_with(b"ok") {
///             Ok(())
///         } else {
///             pingora_error::Error::e_explain(pingora_error::ErrorType::new("NotOk"), "not ok")
///         }
///     }));
/// ```
pub struct HttpHealthCheck {
    connector: Option<HttpConnector>,
    /// The request each probe sends (default `GET /` with the `Host`
    /// given to [`new`](Self::new)).
    pub req: RequestHeader,
    tls: bool,
    sni: String,
    timeout: Duration,
    options: PeerOptions,
    expected_status: u16,
    validator: Option<ResponseValidator>,
    /// Probe over a pooled connection rather than a fresh one each time.
    pub reuse_connection: bool,
    /// Successes in a row that bring a down backend back (default 1;
    /// 0 counts as 1).
    pub consecutive_success: usize,
    /// Failures in a row that take an up backend down (default 1; 0
    /// counts as 1).
    pub consecutive_failure: usize,
    /// Called on each health change, after it is visible to selection.
    pub health_changed_callback: Option<HealthObserver>,
}

impl std::fmt::Debug for HttpHealthCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpHealthCheck")
            .field("req", &self.req)
            .field("tls", &self.tls)
            .field("sni", &self.sni)
            .field("timeout", &self.timeout)
            .field("expected_status", &self.expected_status)
            .field("validator", &self.validator.is_some())
            .field("consecutive_success", &self.consecutive_success)
            .field("consecutive_failure", &self.consecutive_failure)
            .finish_non_exhaustive()
    }
}

impl HttpHealthCheck {
    /// The default time a whole probe may take.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
    /// The most response body bytes read and handed to a validator; the
    /// rest is not read.
    pub const MAX_BODY: usize = 64 * 1024;

    /// `GET /` with `Host: host`, over TLS with SNI `host` when `tls` is set.
    pub fn new(host: &str, tls: bool) -> Self {
        // A constant method and path always build.
        let mut request =
            RequestHeader::build("GET", b"/", None).expect("GET / is a valid request line");
        if let Err(e) = request.insert_header("Host", host) {
            log::warn!("health check host {host:?} is not a valid header value: {e}");
        }
        Self {
            connector: HttpConnector::new(ConnectorOptions::default())
                .inspect_err(|e| log::error!("health check connector: {e}"))
                .ok(),
            req: request,
            tls,
            sni: host.to_string(),
            timeout: Self::DEFAULT_TIMEOUT,
            options: PeerOptions::default(),
            expected_status: 200,
            validator: None,
            reuse_connection: false,
            consecutive_success: 1,
            consecutive_failure: 1,
            health_changed_callback: None,
        }
    }

    /// Request `path` instead of `/`.
    ///
    /// # Errors
    ///
    /// [`ErrorType::InvalidHTTPHeader`] when `path` is not a valid target.
    pub fn path(mut self, path: &str) -> Result<Self> {
        let uri = path
            .parse()
            .map_err(|e| Error::because(ErrorType::InvalidHTTPHeader, "health check path", e))?;
        self.req.set_uri(uri);
        Ok(self)
    }

    /// Send `method` instead of `GET`.
    #[must_use]
    pub fn method(mut self, method: http::Method) -> Self {
        self.req.set_method(method);
        self
    }

    /// Send this request head instead (its `Host` field included).
    #[must_use]
    pub fn request(mut self, request: RequestHeader) -> Self {
        self.req = request;
        self
    }

    /// Send `sni` in the TLS handshake instead of the host.
    #[must_use]
    pub fn sni(mut self, sni: &str) -> Self {
        self.sni = sni.to_string();
        self
    }

    /// Fail a probe that has not finished in `timeout`: connect, handshake,
    /// request and response together.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Connect with these options (trusted CA, verification, client
    /// certificate, ALPN, bind address...); their timeouts are replaced by
    /// [`timeout`](Self::timeout).
    #[must_use]
    pub fn peer_options(mut self, options: PeerOptions) -> Self {
        self.options = options;
        self
    }

    /// Expect this status instead of 200 (ignored when a validator is set).
    #[must_use]
    pub fn expect_status(mut self, status: u16) -> Self {
        self.expected_status = status;
        self
    }

    /// Judge responses with `validator` instead of by status.
    #[must_use]
    pub fn validator(mut self, validator: ResponseValidator) -> Self {
        self.validator = Some(validator);
        self
    }

    /// Keep the connection between probes when the backend allows it.
    /// Cheaper, but a probe then does not show that new connections are
    /// accepted.
    #[must_use]
    pub fn reuse_connection(mut self, reuse: bool) -> Self {
        self.reuse_connection = reuse;
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

    fn peer_for(&self, target: &Backend) -> HttpPeer {
        let mut peer = HttpPeer::new(target.addr.clone(), self.tls, self.sni.clone());
        peer.options = self.options.clone();
        let options = &mut peer.options;
        options.connection_timeout = Some(self.timeout);
        options.total_connection_timeout = Some(self.timeout);
        options.read_timeout = Some(self.timeout);
        options.write_timeout = Some(self.timeout);
        peer
    }

    /// One probe, without the overall timeout.
    async fn probe(&self, connector: &HttpConnector, peer: &HttpPeer) -> Result<()> {
        let mut session = if self.reuse_connection {
            connector.get_http_session(peer).await?.0
        } else {
            let stream = connector.transport().new_stream(peer).await?;
            pingora_core::protocols::http::v1::ClientSession::new(stream, Default::default())
        };
        session.write_request_header(self.req.clone()).await?;
        session.finish_body(None).await?;
        let response = session.read_final_response_header().await?.clone();
        let mut body = Vec::new();
        while body.len() < Self::MAX_BODY {
            match session.read_body_bytes().await? {
                Some(chunk) => body.extend_from_slice(&chunk),
                None => break,
            }
        }
        let verdict = match &self.validator {
            Some(validator) => validator(&response, &body),
            None if response.status().as_u16() == self.expected_status => Ok(()),
            None => Error::e_explain(
                UNHEALTHY,
                format!(
                    "status {} instead of {}",
                    response.status(),
                    self.expected_status
                ),
            ),
        };
        if self.reuse_connection && session.is_body_done() {
            connector.release_http_session(session, peer);
        }
        verdict
    }
}

#[async_trait]
impl HealthCheck for HttpHealthCheck {
    async fn check(&self, target: &Backend) -> Result<()> {
        let Some(connector) = &self.connector else {
            return Error::e_explain(ErrorType::ConnectError, "no connector for health checks");
        };
        let peer = self.peer_for(target);
        match tokio::time::timeout(self.timeout, self.probe(connector, &peer)).await {
            Ok(result) => result,
            Err(_) => Error::e_explain(ErrorType::ReadTimedout, "health check timed out"),
        }
    }

    fn health_threshold(&self, success: bool) -> usize {
        threshold(self.consecutive_success, self.consecutive_failure, success)
    }

    async fn health_status_change(&self, target: &Backend, healthy: bool) {
        notify(self.health_changed_callback.as_ref(), target, healthy);
    }
}
