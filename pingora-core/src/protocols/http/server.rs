//! [`ServerSession`]: one downstream exchange, whatever the HTTP version.

use super::{v1, v2};
use crate::header::{RequestHeader, ResponseHeader};
use crate::protocols::Digest;
use bytes::Bytes;
use http::header::HeaderMap;
use pingora_error::Result;
use std::time::Duration;

/// One request/response exchange with a client, over any HTTP version.
///
/// Code above the protocols (the proxy, apps) works on this type, so that
/// HTTP/2 can join as another variant without changing its callers. Each
/// method forwards to the version's session; see [`v1::ServerSession`] for
/// the HTTP/1 rules.
#[derive(Debug)]
#[non_exhaustive]
pub enum ServerSession {
    /// An HTTP/1.0 or HTTP/1.1 exchange (a pointer to the connection's
    /// state, which lives as long as the connection).
    H1(v1::ServerSession),
    /// One stream of an HTTP/2 connection. Boxed, so the enum stays small
    /// as it moves through a proxy's layers.
    H2(Box<v2::ServerSession>),
}

impl From<v1::ServerSession> for ServerSession {
    fn from(session: v1::ServerSession) -> Self {
        Self::H1(session)
    }
}

impl From<v2::ServerSession> for ServerSession {
    fn from(session: v2::ServerSession) -> Self {
        Self::H2(Box::new(session))
    }
}

impl ServerSession {
    /// The request head.
    pub const fn req_header(&self) -> &RequestHeader {
        match self {
            Self::H1(s) => s.req_header(),
            Self::H2(s) => s.req_header(),
        }
    }

    /// The request head, to change before forwarding it.
    pub const fn req_header_mut(&mut self) -> &mut RequestHeader {
        match self {
            Self::H1(s) => s.req_header_mut(),
            Self::H2(s) => s.req_header_mut(),
        }
    }

    /// What is known about the underlying connection.
    pub fn digest(&self) -> Option<&Digest> {
        match self {
            Self::H1(s) => s.digest(),
            Self::H2(s) => s.digest(),
        }
    }

    /// Read the next piece of the request body; `None` at its end.
    ///
    /// # Errors
    ///
    /// As [`v1::ServerSession::read_body_bytes`].
    pub async fn read_body_bytes(&mut self) -> Result<Option<Bytes>> {
        match self {
            Self::H1(s) => s.read_body_bytes().await,
            Self::H2(s) => s.read_body_bytes().await,
        }
    }

    /// Whether the whole request body has been read.
    pub fn is_body_done(&self) -> bool {
        match self {
            Self::H1(s) => s.is_body_done(),
            Self::H2(s) => s.is_body_done(),
        }
    }

    /// The request trailers, once the body is fully read.
    pub const fn trailers(&self) -> Option<&HeaderMap> {
        match self {
            Self::H1(s) => s.trailers(),
            Self::H2(s) => s.trailers(),
        }
    }

    /// Write a response head (1xx heads are interim).
    ///
    /// # Errors
    ///
    /// As [`v1::ServerSession::write_response_header`].
    pub async fn write_response_header(&mut self, resp: ResponseHeader) -> Result<()> {
        match self {
            Self::H1(s) => s.write_response_header(resp).await,
            Self::H2(s) => s.write_response_header(resp).await,
        }
    }

    /// Send a response head that is held back waiting for body: both
    /// versions hold a final head until the first piece of body or the
    /// end of the response (HTTP/1 so that a small response leaves in
    /// one write, HTTP/2 so that a response ending with its head carries
    /// END_STREAM on its HEADERS frame).
    ///
    /// # Errors
    ///
    /// As [`v1::ServerSession::flush`].
    pub async fn flush(&mut self) -> Result<()> {
        match self {
            Self::H1(s) => s.flush().await,
            Self::H2(s) => s.flush(),
        }
    }

    /// Write a piece of the response body.
    ///
    /// # Errors
    ///
    /// As [`v1::ServerSession::write_body`].
    pub async fn write_body(&mut self, data: &[u8]) -> Result<()> {
        match self {
            Self::H1(s) => s.write_body(data).await,
            Self::H2(s) => s.write_body(data).await,
        }
    }

    /// End the response, with `trailers` when the protocol can carry them.
    ///
    /// # Errors
    ///
    /// As [`v1::ServerSession::finish_response`].
    pub async fn finish_response(&mut self, trailers: Option<&HeaderMap>) -> Result<()> {
        match self {
            Self::H1(s) => s.finish_response(trailers).await,
            Self::H2(s) => s.finish_response(trailers).await,
        }
    }

    /// Answer with a bodyless error `status` when no response has started.
    ///
    /// # Errors
    ///
    /// Write errors.
    pub async fn respond_error(&mut self, status: u16) -> Result<()> {
        match self {
            Self::H1(s) => s.respond_error(status).await,
            Self::H2(s) => s.respond_error(status).await,
        }
    }

    /// Whether the request asks to switch protocols.
    pub fn is_upgrade_request(&self) -> bool {
        match self {
            Self::H1(s) => s.is_upgrade_request(),
            Self::H2(_) => false,
        }
    }

    /// How long the connection waits for the client's next request after
    /// this exchange (HTTP/1 keep-alive; an HTTP/2 stream does not own its
    /// connection, so nothing changes there). See
    /// [`v1::ServerSession::set_idle_timeout`].
    pub const fn set_idle_timeout(&mut self, timeout: Duration) {
        match self {
            Self::H1(s) => s.set_idle_timeout(timeout),
            Self::H2(_) => {}
        }
    }

    /// How long one read of request body may wait, for this exchange;
    /// `None` goes back to the listener's setting.
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) {
        match self {
            Self::H1(s) => s.set_read_timeout(timeout),
            Self::H2(s) => s.set_read_timeout(timeout),
        }
    }

    /// How long one write to the client may wait, for this exchange;
    /// `None` goes back to the listener's setting.
    pub fn set_write_timeout(&mut self, timeout: Option<Duration>) {
        match self {
            Self::H1(s) => s.set_write_timeout(timeout),
            Self::H2(s) => s.set_write_timeout(timeout),
        }
    }

    /// The final response head as written, once written.
    pub fn response_written(&self) -> Option<&ResponseHeader> {
        match self {
            Self::H1(s) => s.response_written(),
            Self::H2(s) => s.response_written(),
        }
    }

    /// Refuse keep-alive for the connection after this exchange.
    pub fn set_keepalive(&mut self, keepalive: bool) {
        match self {
            Self::H1(s) => s.set_keepalive(keepalive),
            // HTTP/2 streams do not own the connection.
            Self::H2(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocols::http::v1::{H1Config, ServerConnection};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn forwards_to_h1() {
        let (mut client, server) = tokio::io::duplex(4096);
        client
            .write_all(b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi")
            .await
            .unwrap();
        let conn = ServerConnection::new(Box::new(server), H1Config::default());
        let mut s = ServerSession::from(conn.read_request().await.unwrap().unwrap());
        assert_eq!(s.req_header().uri().path(), "/p");
        assert!(!s.is_upgrade_request());
        assert!(s.digest().is_none());
        assert_eq!(&s.read_body_bytes().await.unwrap().unwrap()[..], b"hi");
        assert!(s.read_body_bytes().await.unwrap().is_none());
        assert!(s.is_body_done() && s.trailers().is_none());
        s.req_header_mut().remove_header("host");
        s.set_keepalive(false);
        let mut resp = ResponseHeader::build(200, None).unwrap();
        resp.insert_header("Content-Length", "2").unwrap();
        s.write_response_header(resp).await.unwrap();
        s.write_body(b"ok").await.unwrap();
        s.finish_response(None).await.unwrap();
        s.respond_error(500).await.unwrap();
        drop(s);
        let mut out = String::new();
        client.read_to_string(&mut out).await.unwrap();
        assert_eq!(
            out,
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
        );
    }

    /// Per-request timeouts last one request; the written head is kept,
    /// with the fields the framing added.
    #[tokio::test]
    async fn per_request_timeouts_and_written_head() {
        let (mut client, server) = tokio::io::duplex(4096);
        client
            .write_all(b"GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .unwrap();
        let config = H1Config::default();
        let conn = ServerConnection::new(Box::new(server), config);
        let mut h1 = conn.read_request().await.unwrap().unwrap();
        h1.set_read_timeout(Some(Duration::from_millis(5)));
        h1.set_write_timeout(Some(Duration::from_millis(7)));
        h1.set_idle_timeout(Duration::from_secs(3));
        let mut s = ServerSession::from(h1);
        assert!(s.response_written().is_none());
        let mut resp = ResponseHeader::build(200, None).unwrap();
        resp.insert_header("Content-Length", "0").unwrap();
        s.write_response_header(resp).await.unwrap();
        assert_eq!(s.response_written().unwrap().status(), 200);
        s.finish_response(None).await.unwrap();
        let ServerSession::H1(h1) = s else {
            unreachable!()
        };
        let conn = h1.reuse().await.unwrap();
        let restored = conn.config();
        assert_eq!(restored.body_read_timeout, config.body_read_timeout);
        assert_eq!(restored.write_timeout, config.write_timeout);
        assert_eq!(restored.idle_timeout, Duration::from_secs(3));
        let next = conn.read_request().await.unwrap().unwrap();
        assert!(next.response_written().is_none());
    }
}
