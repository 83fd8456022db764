//! HTTP sessions to upstream peers with HTTP/2, over shared connections.
//!
//! [`H2Connector`] is an [`HttpConnector`] built with HTTP/2 settings: it
//! reads the peer's [`Alpn`](crate::tls::Alpn) choice and hands out a
//! version-neutral [`UpstreamSession`]. The rules (ALPN, sharing one
//! connection among streams, dropping dead connections) are those of
//! [`HttpConnector::get_session`]; see the
//! [`http` connector docs](super::http).

use pingora_error::Result;

use super::http::HttpConnector;
use super::{ConnectorOptions, TransportConnector};
use crate::protocols::http::v1;
use crate::protocols::http::v2::H2Options;
use crate::upstreams::HttpPeer;

/// A session to an upstream, of the HTTP version the connection chose:
/// the version-neutral [`ClientSession`](crate::protocols::http::ClientSession).
pub type UpstreamSession = crate::protocols::http::ClientSession;

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
    inner: HttpConnector,
}

impl H2Connector {
    /// A connector with `options` for its transport and `h2` for its
    /// HTTP/2 connections.
    ///
    /// # Errors
    ///
    /// As [`TransportConnector::new`].
    pub fn new(options: ConnectorOptions, h2: H2Options) -> Result<Self> {
        let inner = HttpConnector::new(options)?.with_h2_options(h2);
        Ok(Self { inner })
    }

    /// The transport connector underneath, whose pool keeps idle HTTP/1
    /// connections.
    pub const fn transport(&self) -> &TransportConnector {
        self.inner.transport()
    }

    /// The HTTP connector this wraps.
    pub const fn http(&self) -> &HttpConnector {
        &self.inner
    }

    /// A session to `peer` of the version its ALPN option and the server
    /// allow. The flag says whether the connection was reused.
    ///
    /// # Errors
    ///
    /// As [`HttpConnector::get_session`].
    pub async fn get_session(&self, peer: &HttpPeer) -> Result<(UpstreamSession, bool)> {
        self.inner.get_session(peer).await
    }

    /// Open HTTP/2 connections to `peer` (for metrics and tests).
    pub fn h2_connections(&self, peer: &HttpPeer) -> usize {
        self.inner.h2_connections(peer)
    }

    /// Give back an HTTP/1 session's connection for reuse when the
    /// exchange left it reusable. HTTP/2 sessions need no release: their
    /// stream slot frees itself when the session is dropped.
    pub fn release_h1(&self, session: v1::ClientSession, peer: &HttpPeer) {
        self.inner.release_http_session(session, peer);
    }
}
