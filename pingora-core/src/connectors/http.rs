//! HTTP sessions to upstream peers, over pooled connections.
//!
//! [`HttpConnector`] turns an [`HttpPeer`] into a session.
//! [`HttpConnector::get_session`] picks the HTTP version by the peer's
//! [`Alpn`] option in its [`PeerOptions`](crate::upstreams::PeerOptions)
//! and returns the version-neutral [`ClientSession`]:
//!
//! - [`Alpn::H1`]: HTTP/1.1 on a pooled or fresh connection;
//! - [`Alpn::H2`]: HTTP/2 only, offered with ALPN over TLS, or with prior
//!   knowledge (h2c, RFC 9113 §3.3) over cleartext;
//! - [`Alpn::H2H1`]: HTTP/2 when the TLS handshake picks `h2`, else HTTP/1
//!   on the same connection. Over cleartext there is nothing to negotiate
//!   with, so HTTP/1 is used.
//!
//! Idle HTTP/1 sessions are pooled, with their buffers, under the peer's
//! [`Peer::reuse_hash`] and handed back with
//! [`HttpConnector::release_session`]; the pool is bounded by
//! [`ConnectorOptions::keepalive_pool_size`] like the transport's. One HTTP/2 connection carries many
//! concurrent streams: it is handed out while it has spare streams under
//! the server's SETTINGS_MAX_CONCURRENT_STREAMS, and another is opened
//! when every one is full. Connections that closed, broke or stopped
//! answering keep-alive PINGs are dropped and never handed out again.
//! Several requests that start at once for a peer with no connection yet
//! may each open one; later requests share them.
//!
//! [`HttpConnector::get_http_session`] is the HTTP/1-only shortcut.
//!
//! # Retrying on reused connections
//!
//! An idle pooled connection may have been closed by the upstream just as
//! we picked it. A request that fails on a *reused* connection before any
//! response byte arrived may therefore be retried on a fresh one; on a
//! fresh connection the same failure says the peer itself is broken.
//! [`retry_before_response`] applies that rule
//! ([`RetryType::ReusedOnly`], settled by whether the connection was
//! reused), and never to a non-idempotent request the upstream may have
//! processed (RFC 9110 §9.2.2).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use pingora_error::{Error, ErrorSource, ErrorType, Result, RetryType};

use super::pool::{ConnectionPool, IdleWatch, poll_read_unusable};
use super::{ConnectorOptions, TransportConnector};
use crate::protocols::http::ClientSession;
use crate::protocols::http::v1::{self, H1Config};
use crate::protocols::http::v2::{self, ClientConnection, H2Options};
use crate::tls::Alpn;
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
    /// Idle HTTP/1 sessions. Pooling the session rather than its stream
    /// keeps its read and write buffers, so a reused connection costs no
    /// allocation per request.
    /// Boxed, so a session moves in and out of the pool as a pointer.
    h1_idle: ConnectionPool<Box<v1::ClientSession>>,
    config: H1Config,
    h2: H2Options,
    /// Open HTTP/2 connections by peer reuse key.
    h2_conns: Mutex<HashMap<u64, Vec<Arc<ClientConnection>>>>,
}

impl HttpConnector {
    /// A connector with these options and default HTTP/1 and HTTP/2
    /// settings.
    ///
    /// # Errors
    ///
    /// As [`TransportConnector::new`].
    pub fn new(options: ConnectorOptions) -> Result<Self> {
        Ok(Self {
            h1_idle: ConnectionPool::new(options.keepalive_pool_size),
            transport: TransportConnector::new(options)?,
            config: H1Config::default(),
            h2: H2Options::default(),
            h2_conns: Mutex::new(HashMap::new()),
        })
    }

    /// Use `options` for the HTTP/2 connections this connector opens.
    #[must_use]
    pub const fn with_h2_options(mut self, options: H2Options) -> Self {
        self.h2 = options;
        self
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
    pub async fn get_http_session(&self, peer: &HttpPeer) -> Result<(v1::ClientSession, bool)> {
        let (session, reused) = self.boxed_http_session(peer, peer.reuse_hash()).await?;
        Ok((*session, reused))
    }

    async fn boxed_http_session(
        &self,
        peer: &HttpPeer,
        key: u64,
    ) -> Result<(Box<v1::ClientSession>, bool)> {
        let config = self.session_config(peer);
        if let Some(mut session) = self.h1_idle.get(key) {
            session.set_config(config);
            session.set_reuse_key(key);
            return Ok((session, true));
        }
        let stream = self.transport.new_stream(peer).await?;
        let mut session = Box::new(v1::ClientSession::new(stream, config));
        session.set_reuse_key(key);
        Ok((session, false))
    }

    /// A session to `peer` of the HTTP version its ALPN option and the
    /// server allow (see the [module docs](self)). The flag says whether
    /// the connection was reused.
    ///
    /// # Errors
    ///
    /// Connect and TLS errors as [`TransportConnector::get_stream`];
    /// [`ErrorType::H2Downgrade`] when a peer that must speak HTTP/2 chose
    /// another protocol in ALPN; HTTP/2 handshake errors. All marked
    /// upstream.
    pub async fn get_session(&self, peer: &HttpPeer) -> Result<(ClientSession, bool)> {
        let start = crate::metrics::enabled().then(std::time::Instant::now);
        let got = self.reuse_or_connect(peer).await;
        if let Some(start) = start {
            match &got {
                Ok((_, true)) => crate::metrics::upstream_pool(true),
                Ok((_, false)) => {
                    crate::metrics::upstream_pool(false);
                    crate::metrics::upstream_connected(start.elapsed().as_secs_f64());
                }
                Err(e) => crate::metrics::upstream_connect_failed(e.etype()),
            }
        }
        got
    }

    async fn reuse_or_connect(&self, peer: &HttpPeer) -> Result<(ClientSession, bool)> {
        let alpn = peer.options.alpn;
        let key = peer.reuse_hash();
        if alpn == Alpn::H1 || (alpn == Alpn::H2H1 && !peer.tls()) {
            let (session, reused) = self.boxed_http_session(peer, key).await?;
            return Ok((session.into(), reused));
        }
        let max_streams = peer.options.max_h2_streams.max(1);
        if let Some(conn) = self.reusable_h2(key, max_streams)
            && let Ok(session) = conn.new_session().await
        {
            return Ok((h2_session(session, peer), true));
        }
        // Only HTTP/1 sessions are ever pooled idle, so a pooled one here
        // is an HTTP/1 fallback of an H2H1 peer.
        if let Some(mut session) = self.h1_idle.get(key) {
            session.set_config(self.session_config(peer));
            session.set_reuse_key(key);
            return Ok((session.into(), true));
        }
        let stream = self.transport.new_stream(peer).await?;
        if peer.tls() && !v2::negotiated_h2(&stream) {
            if alpn == Alpn::H2 {
                let why = "upstream did not agree to h2 in alpn";
                return Err(Error::explain(ErrorType::H2Downgrade, why).into_up());
            }
            let mut session = Box::new(v1::ClientSession::new(stream, self.session_config(peer)));
            session.set_reuse_key(key);
            return Ok((session.into(), false));
        }
        let authority = match peer.sni() {
            "" => peer.address().to_string(),
            sni => sni.to_owned(),
        };
        let mut h2 = self.h2;
        if let Some(interval) = peer.options.h2_ping_interval {
            h2.keepalive_interval = Some(interval);
        }
        let conn = ClientConnection::handshake(stream, &h2, peer.tls(), &authority);
        let conn = Arc::new(conn.await?);
        let session = conn.new_session().await?;
        self.h2_conns.lock().entry(key).or_default().push(conn);
        Ok((h2_session(session, peer), false))
    }

    /// An open HTTP/2 connection for `key` with a spare stream, carrying
    /// fewer than `max_streams`, dropping the dead ones on the way.
    fn reusable_h2(&self, key: u64, max_streams: usize) -> Option<Arc<ClientConnection>> {
        let mut conns = self.h2_conns.lock();
        let list = conns.get_mut(&key)?;
        list.retain(|c| !c.is_closed());
        let fits =
            |c: &&Arc<ClientConnection>| c.spare_streams() > 0 && c.in_flight() < max_streams;
        let found = list.iter().find(fits).cloned();
        if list.is_empty() {
            conns.remove(&key);
        }
        found
    }

    /// Open HTTP/2 connections to `peer` (for metrics and tests).
    pub fn h2_connections(&self, peer: &HttpPeer) -> usize {
        let mut conns = self.h2_conns.lock();
        conns.get_mut(&peer.reuse_hash()).map_or(0, |list| {
            list.retain(|c| !c.is_closed());
            list.len()
        })
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

    /// End an exchange of [`get_session`](Self::get_session): an HTTP/1
    /// connection goes back to the pool as
    /// [`release_http_session`](Self::release_http_session) says; an
    /// HTTP/2 stream needs nothing, its slot frees itself when dropped.
    pub fn release_session(&self, session: ClientSession, peer: &HttpPeer) {
        match session {
            ClientSession::H1(mut h1) => {
                if h1.reset_for_reuse() {
                    let key = h1.reuse_key().unwrap_or_else(|| peer.reuse_hash());
                    self.h1_idle.put(key, h1, peer.options().idle_timeout);
                }
            }
            ClientSession::H2(_) => {}
        }
    }

    /// Put the session's connection back into the pool, under the reuse
    /// key of the peer it was made for (`peer`'s, for a session no
    /// connector made) and with `peer`'s idle timeout, when the finished
    /// exchange left it reusable; close it otherwise.
    pub fn release_http_session(&self, session: v1::ClientSession, peer: &HttpPeer) {
        if let Some(session) = session.recycle() {
            let idle: Option<Duration> = peer.options().idle_timeout;
            let key = session.reuse_key().unwrap_or_else(|| peer.reuse_hash());
            self.h1_idle.put(key, Box::new(session), idle);
        }
    }

    /// Idle HTTP/1 sessions held for reuse (for metrics and tests).
    pub fn idle_http_sessions(&self) -> usize {
        self.h1_idle.len()
    }
}

impl IdleWatch for v1::ClientSession {
    fn poll_unusable(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        poll_read_unusable(self.stream_mut(), cx)
    }
}

fn h2_session(mut session: v2::ClientSession, peer: &HttpPeer) -> ClientSession {
    session.set_timeouts(peer.options.read_timeout, peer.options.write_timeout);
    session.into()
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
/// `once_only` says the request's head reached the upstream and its
/// method is not idempotent. The upstream may then have processed it
/// before the connection failed, and RFC 9110 §9.2.2 forbids sending it
/// again on one's own: the error is marked not retryable, unless it shows
/// the upstream did not process the request (an HTTP/2 REFUSED_STREAM,
/// or a GOAWAY below the stream, RFC 9113 §8.7, see
/// [`v2::is_unprocessed`]). A caller that knows the request is safe to
/// repeat may set the retry hint again afterwards.
///
/// The caller must only use this while no request body byte was lost: a
/// retry resends the request from the start.
pub fn retry_before_response(e: &mut Error, reused: bool, once_only: bool) {
    let connection_level = matches!(
        e.etype(),
        ErrorType::ConnectionClosed | ErrorType::ReadError | ErrorType::WriteError
    );
    if connection_level && *e.esource() == ErrorSource::Upstream {
        e.set_retry_type(RetryType::ReusedOnly);
    }
    e.decide_reuse(reused);
    if once_only && !v2::is_unprocessed(e) {
        e.set_retry(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reused_connection_failures_retry() {
        let mut e = Error::new_up(ErrorType::WriteError);
        retry_before_response(&mut e, true, false);
        assert!(e.retry());
        let mut e = Error::new_up(ErrorType::ConnectionClosed);
        retry_before_response(&mut e, false, false);
        assert!(!e.retry());
        // A malformed head fails again on any connection.
        let mut e = Error::new_up(ErrorType::InvalidHTTPHeader);
        retry_before_response(&mut e, true, false);
        assert!(!e.retry());
    }

    #[test]
    fn a_request_that_may_have_been_processed_is_not_retried() {
        // A POST whose head went out: the upstream may have run it.
        let mut e = Error::new_up(ErrorType::ConnectionClosed);
        retry_before_response(&mut e, true, true);
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
