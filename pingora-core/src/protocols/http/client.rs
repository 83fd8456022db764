//! [`ClientSession`]: one upstream exchange, whatever the HTTP version.

use super::{v1, v2};
use crate::header::{RequestHeader, ResponseHeader};
use crate::protocols::Digest;
use bytes::Bytes;
use http::header::HeaderMap;
use pingora_error::Result;

/// One request/response exchange with an upstream, over any HTTP version.
///
/// [`HttpConnector::get_session`](crate::connectors::http::HttpConnector::get_session)
/// hands these out, choosing the version by the peer's ALPN option. Each
/// method forwards to the version's session; see [`v1::ClientSession`]
/// and [`v2::ClientSession`] for the rules of each.
#[derive(Debug)]
#[non_exhaustive]
pub enum ClientSession {
    /// HTTP/1.1 on a connection of its own.
    /// Boxed: a session moves through the pool and the proxy's layers
    /// on every request, and a pointer moves cheaper than the session.
    H1(Box<v1::ClientSession>),
    /// One stream of a shared HTTP/2 connection.
    /// Boxed as well, so the enum stays small.
    H2(Box<v2::ClientSession>),
}

impl From<v1::ClientSession> for ClientSession {
    fn from(session: v1::ClientSession) -> Self {
        Self::H1(Box::new(session))
    }
}

impl From<Box<v1::ClientSession>> for ClientSession {
    fn from(session: Box<v1::ClientSession>) -> Self {
        Self::H1(session)
    }
}

impl From<v2::ClientSession> for ClientSession {
    fn from(session: v2::ClientSession) -> Self {
        Self::H2(Box::new(session))
    }
}

impl ClientSession {
    /// Whether this exchange runs over HTTP/2.
    pub const fn is_h2(&self) -> bool {
        matches!(self, Self::H2(_))
    }

    /// What is known about the underlying connection.
    pub fn digest(&self) -> Option<&Digest> {
        match self {
            Self::H1(s) => s.digest(),
            Self::H2(s) => s.digest(),
        }
    }

    /// Send the request head. `end` says no body follows; HTTP/1 takes the
    /// body framing from the head instead. Call
    /// [`finish_body`](Self::finish_body) in any case.
    ///
    /// # Errors
    ///
    /// As the version's `write_request_header`.
    pub async fn write_request_header(&mut self, req: RequestHeader, end: bool) -> Result<()> {
        match self {
            Self::H1(s) => s.write_request_header(req).await,
            Self::H2(s) => s.write_request_header(req, end).await,
        }
    }

    /// Send a piece of the request body (raw bytes after an HTTP/1
    /// upgrade).
    ///
    /// # Errors
    ///
    /// As the version's `write_body`.
    pub async fn write_body(&mut self, data: &[u8]) -> Result<()> {
        match self {
            Self::H1(s) => s.write_body(data).await,
            Self::H2(s) => s.write_body(data).await,
        }
    }

    /// End the request body, with `trailers` when the framing carries them
    /// (HTTP/2, or a chunked HTTP/1 body).
    ///
    /// # Errors
    ///
    /// As the version's `finish_body`.
    pub async fn finish_body(&mut self, trailers: Option<&HeaderMap>) -> Result<()> {
        match self {
            Self::H1(s) => s.finish_body(trailers).await,
            Self::H2(s) => s.finish_body(trailers).await,
        }
    }

    /// Read the next response head. Over HTTP/1 interim (1xx) heads are
    /// returned too; over HTTP/2 only the final one is.
    ///
    /// # Errors
    ///
    /// As the version's `read_response_header`.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: bytes read stay buffered in the session.
    pub async fn read_response_header(&mut self) -> Result<&ResponseHeader> {
        match self {
            Self::H1(s) => s.read_response_header().await,
            Self::H2(s) => s.read_response_header().await,
        }
    }

    /// The response head [`read_response_header`](Self::read_response_header)
    /// returned, as an owned value for a caller that changes and forwards
    /// it. HTTP/1 hands over its copy (saving one); HTTP/2 keeps its own,
    /// as its `read_response_header` returns it again when called again.
    pub fn take_response_header(&mut self) -> Option<ResponseHeader> {
        match self {
            Self::H1(s) => s.take_resp_header(),
            Self::H2(s) => s.response_header().cloned(),
        }
    }

    /// Read the next piece of the response body; `None` at its end.
    ///
    /// # Errors
    ///
    /// As the version's `read_body_bytes`.
    pub async fn read_body_bytes(&mut self) -> Result<Option<Bytes>> {
        match self {
            Self::H1(s) => s.read_body_bytes().await,
            Self::H2(s) => s.read_body_bytes().await,
        }
    }

    /// Whether the whole response body has been read.
    pub fn is_body_done(&self) -> bool {
        match self {
            Self::H1(s) => s.is_body_done(),
            Self::H2(s) => s.is_body_done(),
        }
    }

    /// Whether response body is already at hand without waiting (see
    /// [`v1::ClientSession::has_body_bytes`]); always `false` over HTTP/2,
    /// which leaves a caller to flush what it holds before waiting.
    pub fn has_body_bytes(&self) -> bool {
        match self {
            Self::H1(s) => s.has_body_bytes(),
            Self::H2(_) => false,
        }
    }

    /// The response trailers, once the body is fully read.
    pub const fn trailers(&self) -> Option<&HeaderMap> {
        match self {
            Self::H1(s) => s.trailers(),
            Self::H2(s) => s.response_trailers(),
        }
    }

    /// Whether the connection switched protocols (HTTP/1 only): the body
    /// methods now carry raw bytes both ways.
    pub const fn is_upgraded(&self) -> bool {
        match self {
            Self::H1(s) => s.is_upgraded(),
            Self::H2(_) => false,
        }
    }
}
