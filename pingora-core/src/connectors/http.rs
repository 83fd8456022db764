//! HTTP sessions to upstream peers, over pooled connections.
//!
//! [`HttpConnector`] turns an [`HttpPeer`] into an HTTP/1 [`ClientSession`]:
//! it takes an idle connection from the [`TransportConnector`]'s pool when
//! one fits the peer (same [`Peer::reuse_hash`]), or connects (and runs the
//! TLS handshake) otherwise. When an exchange leaves the session reusable,
//! [`HttpConnector::release_http_session`] puts its connection back under
//! the peer's reuse key.
//!
//! # Retrying on reused connections
//!
//! An idle pooled connection may have been closed by the upstream just as
//! we picked it. A request that fails on a *reused* connection before any
//! response byte arrived may therefore be retried on a fresh one; on a
//! fresh connection the same failure says the peer itself is broken.
//! [`retry_before_response`] applies that rule
//! ([`RetryType::ReusedOnly`], settled by whether the connection was
//! reused).

use std::time::Duration;

use pingora_error::{Error, ErrorSource, ErrorType, Result, RetryType};

use super::{ConnectorOptions, TransportConnector};
use crate::protocols::http::v1::{ClientSession, H1Config};
use crate::upstreams::{HttpPeer, Peer};

/// Connects to HTTP peers and pools their idle connections.
///
/// # Examples
///
/// ```no_run
/// use pingora_core::connectors::ConnectorOptions;
/// use pingora_core::connectors::http::HttpConnector;
/// use pingora_core::header::RequestHeader;
/// use pingora_core::upstreams::HttpPeer;
///
/// # async fn run() -> pingora_core::Result<()> {
/// let connector = HttpConnector::new(ConnectorOptions::default())?;
/// let addr: std::net::SocketAddr = "127.0.0.1:8080".parse().unwrap();
/// let peer = HttpPeer::new(addr, false, "");
/// let (mut session, _reused) = connector.get_http_session(&peer).await?;
/// let mut req = RequestHeader::build("GET", b"/", None)?;
/// req.insert_header("Host", "localhost")?;
/// session.write_request_header(req).await?;
/// session.finish_body(None).await?;
/// session.read_final_response_header().await?;
/// while session.read_body_bytes().await?.is_some() {}
/// connector.release_http_session(session, &peer);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct HttpConnector {
    transport: TransportConnector,
    config: H1Config,
}

impl HttpConnector {
    /// A connector with these options and default HTTP/1 limits.
    ///
    /// # Errors
    ///
    /// As [`TransportConnector::new`].
    pub fn new(options: ConnectorOptions) -> Result<Self> {
        Ok(Self {
            transport: TransportConnector::new(options)?,
            config: H1Config::default(),
        })
    }

    /// Use `config`'s HTTP/1 limits for upstream sessions. A peer's
    /// `read_timeout` and `write_timeout` override its timeouts.
    #[must_use]
    pub const fn with_h1_config(mut self, config: H1Config) -> Self {
        self.config = config;
        self
    }

    /// The transport connector underneath, with its pool.
    pub const fn transport(&self) -> &TransportConnector {
        &self.transport
    }

    /// An HTTP/1 session to `peer`, on an idle pooled connection when one
    /// fits, else on a fresh one. The flag says whether the connection was
    /// reused.
    ///
    /// The session's head and body read timeouts are the peer's
    /// `read_timeout` and its write timeout the peer's `write_timeout`,
    /// where set.
    ///
    /// # Errors
    ///
    /// As [`TransportConnector::get_stream`]: connect and TLS errors,
    /// marked as from the upstream.
    pub async fn get_http_session(&self, peer: &HttpPeer) -> Result<(ClientSession, bool)> {
        let (stream, reused) = self.transport.get_stream(peer).await?;
        let config = self.session_config(peer);
        Ok((ClientSession::new(stream, config), reused))
    }

    fn session_config(&self, peer: &HttpPeer) -> H1Config {
        let mut config = self.config;
        let options = peer.options();
        if let Some(read) = options.read_timeout {
            config.header_timeout = read;
            config.body_read_timeout = read;
        }
        if let Some(write) = options.write_timeout {
            config.write_timeout = write;
        }
        config
    }

    /// Put the session's connection back into the pool, under `peer`'s
    /// reuse key, when the finished exchange left it reusable; close it
    /// otherwise.
    pub fn release_http_session(&self, session: ClientSession, peer: &HttpPeer) {
        if let Some(stream) = session.reuse() {
            let idle: Option<Duration> = peer.options().idle_timeout;
            self.transport
                .release_stream(stream, peer.reuse_hash(), idle);
        }
    }
}

/// Decide whether an upstream error that happened **before any response
/// byte arrived** may be retried, knowing whether the connection was
/// `reused`.
///
/// Connection-level failures (the peer closed, reset, or refused our
/// write) on a reused connection are retryable: the peer likely closed it
/// while it sat idle. On a fresh connection they are not. Other errors
/// keep their own retry decision (a [`RetryType::ReusedOnly`] hint is
/// settled the same way).
///
/// The caller must only use this while no request body byte was lost: a
/// retry resends the request from the start.
pub fn retry_before_response(e: &mut Error, reused: bool) {
    let connection_level = matches!(
        e.etype(),
        ErrorType::ConnectionClosed | ErrorType::ReadError | ErrorType::WriteError
    );
    if connection_level && *e.esource() == ErrorSource::Upstream {
        e.set_retry_type(RetryType::ReusedOnly);
    }
    e.decide_reuse(reused);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reused_connection_failures_retry() {
        let mut e = Error::new_up(ErrorType::WriteError);
        retry_before_response(&mut e, true);
        assert!(e.retry());
        let mut e = Error::new_up(ErrorType::ConnectionClosed);
        retry_before_response(&mut e, false);
        assert!(!e.retry());
        // A malformed head fails again on any connection.
        let mut e = Error::new_up(ErrorType::InvalidHTTPHeader);
        retry_before_response(&mut e, true);
        assert!(!e.retry());
    }

    #[test]
    fn peer_timeouts_override_the_config() {
        let connector = HttpConnector::new(ConnectorOptions::default()).unwrap();
        let addr: std::net::SocketAddr = "127.0.0.1:1".parse().unwrap();
        let mut peer = HttpPeer::new(addr, false, "");
        peer.options.read_timeout = Some(Duration::from_millis(5));
        let config = connector.session_config(&peer);
        assert_eq!(config.header_timeout, Duration::from_millis(5));
        assert_eq!(config.body_read_timeout, Duration::from_millis(5));
        assert_eq!(config.write_timeout, H1Config::default().write_timeout);
    }
}
