//! HTTP sessions to upstream peers with HTTP/2, over shared connections.
//!
//! [`H2Connector`] reads the peer's [`Alpn`] choice in its
//! [`PeerOptions`](crate::upstreams::PeerOptions):
//!
//! - [`Alpn::H1`]: an HTTP/1 session on a pooled or fresh connection;
//! - [`Alpn::H2`]: HTTP/2 only, offered with ALPN over TLS, or with prior
//!   knowledge (h2c, RFC 9113 §3.3) over cleartext;
//! - [`Alpn::H2H1`]: HTTP/2 when the TLS handshake picks `h2`, else HTTP/1
//!   on the same connection. Over cleartext there is nothing to negotiate
//!   with, so HTTP/1 is used.
//!
//! One HTTP/2 connection carries many concurrent streams: a connection is
//! handed out while it has spare streams under the server's
//! SETTINGS_MAX_CONCURRENT_STREAMS, and another is opened when every one
//! is full. Connections that closed, broke or stopped answering keep-alive
//! PINGs are dropped and never handed out again. An HTTP/2 connection
//! with no open stream closes after the [`H2Options`] idle timeout.
//!
//! Several requests that start at once for a peer with no connection yet
//! may each open one; later requests share them.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use pingora_error::{Error, ErrorType, Result};

use super::{ConnectorOptions, TransportConnector};
use crate::protocols::Stream;
use crate::protocols::http::v1::{self, H1Config};
use crate::protocols::http::v2::{self, ClientConnection, H2Options};
use crate::tls::Alpn;
use crate::upstreams::{HttpPeer, Peer};

/// A session to an upstream, of the HTTP version the connection chose.
#[derive(Debug)]
pub enum UpstreamSession {
    /// HTTP/1.1 on a connection of its own.
    H1(v1::ClientSession),
    /// One stream of a shared HTTP/2 connection.
    H2(v2::ClientSession),
}

/// Connects to HTTP peers with HTTP/2 where their options ask for it.
///
/// # Examples
///
/// ```no_run
/// use pingora_core::connectors::ConnectorOptions;
/// use pingora_core::connectors::http2::{H2Connector, UpstreamSession};
/// use pingora_core::header::RequestHeader;
/// use pingora_core::protocols::http::v2::H2Options;
/// use pingora_core::tls::Alpn;
/// use pingora_core::upstreams::HttpPeer;
///
/// # async fn run() -> pingora_core::Result<()> {
/// let connector = H2Connector::new(ConnectorOptions::default(), H2Options::default())?;
/// let addr: std::net::SocketAddr = "127.0.0.1:8443".parse().unwrap();
/// let mut peer = HttpPeer::new(addr, true, "origin.example");
/// peer.options.alpn = Alpn::H2H1;
/// if let (UpstreamSession::H2(mut session), _reused) = connector.get_session(&peer).await? {
///     let req = RequestHeader::build("GET", b"/", None)?;
///     session.write_request_header(req, true).await?;
///     session.read_response_header().await?;
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct H2Connector {
    transport: TransportConnector,
    options: H2Options,
    h1: H1Config,
    conns: Mutex<HashMap<u64, Vec<Arc<ClientConnection>>>>,
}

impl H2Connector {
    /// A connector with `options` for its transport and `h2` for its
    /// HTTP/2 connections.
    ///
    /// # Errors
    ///
    /// As [`TransportConnector::new`].
    pub fn new(options: ConnectorOptions, h2: H2Options) -> Result<Self> {
        Ok(Self {
            transport: TransportConnector::new(options)?,
            options: h2,
            h1: H1Config::default(),
            conns: Mutex::new(HashMap::new()),
        })
    }

    /// The transport connector underneath, whose pool keeps idle HTTP/1
    /// connections.
    pub const fn transport(&self) -> &TransportConnector {
        &self.transport
    }

    /// A session to `peer` of the version its ALPN option and the server
    /// allow. The flag says whether the connection was reused.
    ///
    /// # Errors
    ///
    /// Connect and TLS errors as [`TransportConnector::new_stream`];
    /// [`ErrorType::H2Downgrade`] when a peer that must speak HTTP/2 chose
    /// another protocol in ALPN; HTTP/2 handshake errors. All marked
    /// upstream.
    pub async fn get_session(&self, peer: &HttpPeer) -> Result<(UpstreamSession, bool)> {
        let alpn = peer.options.alpn;
        if alpn == Alpn::H1 || (alpn == Alpn::H2H1 && !peer.tls()) {
            let (stream, reused) = self.transport.get_stream(peer).await?;
            return Ok((self.h1_session(stream, peer), reused));
        }
        let key = peer.reuse_hash();
        if let Some(conn) = self.reusable(key)
            && let Ok(session) = conn.new_session().await
        {
            return Ok((self.h2_session(session, peer), true));
        }
        // Only HTTP/1 connections are ever released to the transport pool,
        // so a pooled one here is an HTTP/1 fallback of an H2H1 peer.
        let (stream, reused) = self.transport.get_stream(peer).await?;
        if reused {
            return Ok((self.h1_session(stream, peer), true));
        }
        if peer.tls() && !v2::negotiated_h2(&stream) {
            if alpn == Alpn::H2 {
                let why = "upstream did not agree to h2 in alpn";
                return Err(Error::explain(ErrorType::H2Downgrade, why).into_up());
            }
            return Ok((self.h1_session(stream, peer), false));
        }
        let authority = match peer.sni() {
            "" => peer.address().to_string(),
            sni => sni.to_owned(),
        };
        let conn = ClientConnection::handshake(stream, &self.options, peer.tls(), &authority);
        let conn = Arc::new(conn.await?);
        let session = conn.new_session().await?;
        self.conns.lock().entry(key).or_default().push(conn);
        Ok((self.h2_session(session, peer), false))
    }

    /// An open HTTP/2 connection for `key` with a spare stream, dropping
    /// the dead ones on the way.
    fn reusable(&self, key: u64) -> Option<Arc<ClientConnection>> {
        let mut conns = self.conns.lock();
        let list = conns.get_mut(&key)?;
        list.retain(|c| !c.is_closed());
        let found = list.iter().find(|c| c.spare_streams() > 0).cloned();
        if list.is_empty() {
            conns.remove(&key);
        }
        found
    }

    /// Open HTTP/2 connections to `peer` (for metrics and tests).
    pub fn h2_connections(&self, peer: &HttpPeer) -> usize {
        let mut conns = self.conns.lock();
        conns.get_mut(&peer.reuse_hash()).map_or(0, |list| {
            list.retain(|c| !c.is_closed());
            list.len()
        })
    }

    fn h1_session(&self, stream: Stream, peer: &HttpPeer) -> UpstreamSession {
        let mut config = self.h1;
        if let Some(read) = peer.options.read_timeout {
            config.header_timeout = read;
            config.body_read_timeout = read;
        }
        if let Some(write) = peer.options.write_timeout {
            config.write_timeout = write;
        }
        UpstreamSession::H1(v1::ClientSession::new(stream, config))
    }

    fn h2_session(&self, mut session: v2::ClientSession, peer: &HttpPeer) -> UpstreamSession {
        session.set_timeouts(peer.options.read_timeout, peer.options.write_timeout);
        UpstreamSession::H2(session)
    }

    /// Give back an HTTP/1 session's connection for reuse when the
    /// exchange left it reusable. HTTP/2 sessions need no release: their
    /// stream slot frees itself when the session is dropped.
    pub fn release_h1(&self, session: v1::ClientSession, peer: &HttpPeer) {
        if let Some(stream) = session.reuse() {
            let idle = peer.options.idle_timeout;
            self.transport
                .release_stream(stream, peer.reuse_hash(), idle);
        }
    }
}
