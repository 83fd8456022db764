//! The downstream side: read requests from a client and write responses.
//!
//! A [`ServerConnection`] is a connection waiting for its next request;
//! [`ServerConnection::read_request`] turns it into a [`ServerSession`] for
//! one exchange, and [`ServerSession::reuse`] turns a finished exchange back
//! into a connection when keep-alive allows. The typestate keeps requests on
//! one connection strictly in order: the next head is read only after the
//! previous response is written, so pipelined requests never mix.

use super::conn::Conn;
use super::decode::{BodyDecoder, DecodeError, Decoded};
use super::encode::BodyEncoder;
use super::framing::{self, Framing};
use crate::header::{RequestHeader, ResponseHeader};
use crate::protocols::{Digest, Stream};
use bytes::Bytes;
use http::header::{self, HeaderMap};
use http::{Method, StatusCode, Version};
use pingora_error::{Error, ErrorType, Result};
use std::time::Duration;

mod connection;

pub use connection::{DRAIN_IDLE_WAIT, NextRequest, ServerConnection, rejected_requests};

/// A bodyless error response that closes the connection.
fn write_error_head(out: &mut bytes::BytesMut, status: u16) {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.extend_from_slice(b" ");
    out.extend_from_slice(status.canonical_reason().unwrap_or_default().as_bytes());
    out.extend_from_slice(b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
}

/// Where `Expect: 100-continue` stands (RFC 9110 §10.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Continue {
    NotExpected,
    Expected,
    Sent,
}

/// Where the response stands.
#[derive(Debug)]
enum Response {
    /// No final response head written yet (1xx heads may have been).
    NotStarted,
    /// Head written; the body goes through the encoder.
    Body(BodyEncoder),
    /// The response is complete.
    Done,
}

/// Everything a connection keeps during and between requests. It is boxed
/// once per connection and handed from [`ServerConnection`] to
/// [`ServerSession`] and back, so each request moves a pointer instead of
/// several hundred bytes through every layer that passes a session on.
#[derive(Debug)]
struct State {
    conn: Conn,
    served: u64,
    req: RequestHeader,
    body: BodyDecoder,
    trailers: Option<HeaderMap>,
    keepalive: bool,
    /// The server is shutting down: no request is kept alive.
    draining: bool,
    /// The caller can park the connection while it idles.
    parkable: bool,
    cont: Continue,
    upgraded: bool,
    response: Response,
    /// The final response head as written, for
    /// [`ServerSession::response_written`].
    written: Option<ResponseHeader>,
    /// The connection's read and write timeouts, while this request
    /// overrides them; put back when the connection is reused.
    saved_timeouts: Option<(Duration, Duration)>,
}

/// One request/response exchange on a downstream HTTP/1 connection.
#[derive(Debug)]
pub struct ServerSession {
    s: Box<State>,
}

impl ServerSession {
    fn new(parent: ServerConnection, req: RequestHeader, framing: Framing) -> Self {
        let cont = if framing::expects_continue(&req) && framing != Framing::Empty {
            Continue::Expected
        } else {
            Continue::NotExpected
        };
        let mut s = parent.s;
        s.body = BodyDecoder::new(framing, s.conn.config.max_trailer_bytes)
            .with_body_limit(s.conn.config.max_request_body);
        s.keepalive = framing::request_keepalive(&req) && !s.draining;
        s.req = req;
        s.trailers = None;
        s.cont = cont;
        s.upgraded = false;
        s.response = Response::NotStarted;
        s.written = None;
        Self { s }
    }

    /// The request head.
    pub const fn req_header(&self) -> &RequestHeader {
        &self.s.req
    }

    /// The request head, to change before forwarding it.
    pub const fn req_header_mut(&mut self) -> &mut RequestHeader {
        &mut self.s.req
    }

    /// What is known about the underlying connection.
    pub fn digest(&self) -> Option<&Digest> {
        self.s.conn.stream.digest()
    }

    /// Whether the request asks to switch protocols (for example to a
    /// websocket). Answer 101 to accept; after that the body methods carry
    /// raw bytes both ways.
    pub fn is_upgrade_request(&self) -> bool {
        framing::is_upgrade_request(&self.s.req)
    }

    /// Whether the connection switched protocols (101, or 2xx to CONNECT).
    pub const fn is_upgraded(&self) -> bool {
        self.s.upgraded
    }

    /// Whether the connection may serve another request after this one, as
    /// far as is known now.
    pub const fn will_keepalive(&self) -> bool {
        self.s.keepalive
    }

    /// Refuse keep-alive for this connection (for example while shutting
    /// down). Call before writing the response head so it says
    /// `Connection: close`.
    pub fn set_keepalive(&mut self, keepalive: bool) {
        self.s.keepalive = self.s.keepalive && keepalive;
    }

    /// How long this connection waits for the client's next request once
    /// this exchange is over (the keep-alive timeout), instead of
    /// [`H1Config::idle_timeout`](super::H1Config::idle_timeout). It holds
    /// for the rest of the connection's life, but a connection parked
    /// while idle resumes with its listener's settings.
    pub const fn set_idle_timeout(&mut self, timeout: Duration) {
        self.s.conn.config.idle_timeout = timeout;
    }

    /// How long one read of request body may wait, for this request only;
    /// `None` goes back to the connection's
    /// [`H1Config::body_read_timeout`](super::H1Config::body_read_timeout).
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) {
        let saved = self.save_timeouts();
        self.s.conn.config.body_read_timeout = timeout.unwrap_or(saved.0);
    }

    /// How long one write may wait for the client, for this request only;
    /// `None` goes back to the connection's
    /// [`H1Config::write_timeout`](super::H1Config::write_timeout).
    pub fn set_write_timeout(&mut self, timeout: Option<Duration>) {
        let saved = self.save_timeouts();
        self.s.conn.config.write_timeout = timeout.unwrap_or(saved.1);
    }

    fn save_timeouts(&mut self) -> (Duration, Duration) {
        let config = &self.s.conn.config;
        *self
            .s
            .saved_timeouts
            .get_or_insert((config.body_read_timeout, config.write_timeout))
    }

    /// The final response head as it was written (with the fields the
    /// framing added, such as `Connection: close`), once written. A
    /// bodyless [`respond_error`](Self::respond_error) leaves none.
    pub const fn response_written(&self) -> Option<&ResponseHeader> {
        self.s.written.as_ref()
    }

    /// Whether the whole request body has been read.
    pub fn is_body_done(&self) -> bool {
        self.s.body.is_done()
    }

    /// The trailers of a chunked request body, once it is fully read.
    pub const fn trailers(&self) -> Option<&HeaderMap> {
        self.s.trailers.as_ref()
    }

    /// Read the next piece of the request body; `None` at its end. After an
    /// upgrade this returns raw bytes from the client until it closes.
    ///
    /// Sends `100 Continue` first when the client asked for it and no
    /// response has been started.
    ///
    /// # Errors
    ///
    /// [`ErrorType::H1Error`] for an invalid body (such as a bad chunk
    /// size): it is answered with 400 when no response has started, and
    /// the connection will close; the same with 413 for a chunked body
    /// over [`H1Config::max_request_body`](super::H1Config::max_request_body). [`ErrorType::ReadTimedout`] when the body
    /// read timeout passes, [`ErrorType::ConnectionClosed`] when the client
    /// closes early, and read errors. All are marked downstream.
    pub async fn read_body_bytes(&mut self) -> Result<Option<Bytes>> {
        self.send_continue().await?;
        loop {
            match self.s.body.decode(&mut self.s.conn.buf) {
                Ok(Decoded::Data(data)) => return Ok(Some(data)),
                Ok(Decoded::Done) => {
                    if self.s.trailers.is_none() {
                        self.s.trailers = self.s.body.take_trailers();
                    }
                    return Ok(None);
                }
                Ok(Decoded::NeedMore) => self.read_more_body().await?,
                Err(e) => return Err(self.body_error(e).await),
            }
        }
    }

    async fn send_continue(&mut self) -> Result<()> {
        if self.s.cont == Continue::Expected
            && matches!(self.s.response, Response::NotStarted)
            && !self.s.body.is_done()
        {
            self.s.cont = Continue::Sent;
            self.s
                .conn
                .wbuf()
                .extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
            return self.flush_wbuf().await;
        }
        Ok(())
    }

    async fn read_more_body(&mut self) -> Result<()> {
        let wait = self.s.conn.config.body_read_timeout;
        match self.s.conn.read_more(wait).await {
            Ok(0) => match self.s.body.on_eof() {
                Ok(_) => Ok(()),
                Err(DecodeError::Incomplete) => {
                    self.s.keepalive = false;
                    Error::e_explain(ErrorType::ConnectionClosed, "request body incomplete")
                        .map_err(Error::into_down)
                }
                Err(e) => Err(self.body_error(e).await),
            },
            Ok(_) => Ok(()),
            Err(e) => {
                self.s.keepalive = false;
                Err(e.into_down())
            }
        }
    }

    /// An invalid body: the connection cannot be trusted past this point.
    async fn body_error(&mut self, e: DecodeError) -> Box<Error> {
        self.s.keepalive = false;
        if matches!(self.s.response, Response::NotStarted) {
            let status = if e == DecodeError::TooLarge { 413 } else { 400 };
            write_error_head(self.s.conn.wbuf(), status);
            let _ = self.flush_wbuf().await;
            self.s.response = Response::Done;
        }
        Error::explain(ErrorType::H1Error, e.as_str()).into_down()
    }

    async fn flush_wbuf(&mut self) -> Result<()> {
        self.s.conn.flush_wbuf().await.map_err(|e| {
            self.s.keepalive = false;
            e.into_down()
        })
    }

    /// Send what is buffered and then `body`, which is not copied.
    async fn flush_with(&mut self, body: &[u8]) -> Result<()> {
        self.s.conn.flush_with(body).await.map_err(|e| {
            self.s.keepalive = false;
            e.into_down()
        })
    }

    /// Write a response head. 1xx heads are interim: a final head may
    /// follow (they are not sent to HTTP/1.0 clients).
    ///
    /// The body framing is chosen here: the head's Content-Length when
    /// set; otherwise chunked for HTTP/1.1 clients and close-delimited for
    /// HTTP/1.0 ones. Responses to HEAD and 204/304 responses carry no
    /// body, and `Connection: close` is added when the connection will
    /// not be kept.
    ///
    /// # Errors
    ///
    /// [`ErrorType::InternalError`] when a final head was already written
    /// or the head is impossible (a 101 nobody asked for, a bad
    /// Content-Length); write errors and [`ErrorType::WriteTimedout`].
    pub async fn write_response_header(&mut self, mut resp: ResponseHeader) -> Result<()> {
        if !matches!(self.s.response, Response::NotStarted) {
            return Error::e_explain(ErrorType::InternalError, "response head already sent");
        }
        let framing = self.prepare_response(&mut resp)?;
        match framing {
            Some(framing) => self.s.response = Response::Body(BodyEncoder::new(framing)),
            // RFC 9110 §15.2: no 1xx to an HTTP/1.0 client.
            None if self.s.req.version() == Version::HTTP_10 => return Ok(()),
            None => {}
        }
        resp.write_h1(self.s.conn.wbuf());
        if matches!(self.s.response, Response::Body(_)) {
            self.s.written = Some(resp);
        }
        // A final head with body still to come waits in the buffer for the
        // first piece of body or the end of the response, so that a small
        // response leaves in one write: one segment and one wakeup of the
        // peer instead of two. A caller that must show the head before any
        // body is ready calls `flush`.
        let body_follows = matches!(&self.s.response, Response::Body(enc) if enc.expects_more());
        if body_follows && !self.s.upgraded {
            return Ok(());
        }
        self.flush_wbuf().await
    }

    /// Send whatever is buffered, such as a response head held back by
    /// [`write_response_header`](Self::write_response_header) while the
    /// body is not ready yet.
    ///
    /// # Errors
    ///
    /// Write errors and [`ErrorType::WriteTimedout`]; the connection will
    /// not be kept.
    pub async fn flush(&mut self) -> Result<()> {
        if self.s.conn.wbuf.is_empty() {
            return Ok(());
        }
        self.flush_wbuf().await
    }

    /// Fix up the head for the wire and pick the body framing, by RFC 9112
    /// §6 and RFC 9110 §8.6. `None` for an interim (1xx) head.
    fn prepare_response(&mut self, resp: &mut ResponseHeader) -> Result<Option<Framing>> {
        resp.set_version(Version::HTTP_11);
        let status = resp.status();
        let tunnel = *self.s.req.method() == Method::CONNECT && status.is_success();
        if status == StatusCode::SWITCHING_PROTOCOLS || tunnel {
            return self.prepare_upgrade(status).map(Some);
        }
        if status.is_informational() {
            if status == StatusCode::CONTINUE {
                self.s.cont = Continue::Sent;
            }
            strip_framing(resp);
            return Ok(None);
        }
        if framing::has_token(resp.header_list(), &header::CONNECTION, "close") {
            self.s.keepalive = false;
        }
        // A client told to wait for 100 that got a final answer instead may
        // or may not send its body: the connection state is unknown.
        if self.s.cont == Continue::Expected && !self.s.body.is_done() {
            self.s.keepalive = false;
        }
        let framing = self.response_framing(resp)?;
        if framing == Framing::UntilClose {
            self.s.keepalive = false;
        }
        if !self.s.keepalive {
            resp.insert_header("Connection", "close")?;
        } else if self.s.req.version() == Version::HTTP_10 {
            resp.insert_header("Connection", "keep-alive")?;
        }
        Ok(Some(framing))
    }

    fn response_framing(&self, resp: &mut ResponseHeader) -> Result<Framing> {
        let status = resp.status();
        if status == StatusCode::NO_CONTENT {
            // RFC 9110 §8.6 and RFC 9112 §6.1: no length fields in a 204.
            strip_framing(resp);
            return Ok(Framing::Empty);
        }
        // HEAD and 304 keep a Content-Length the app set: it describes the
        // representation, not this (empty) body.
        if *self.s.req.method() == Method::HEAD || status == StatusCode::NOT_MODIFIED {
            return Ok(Framing::Empty);
        }
        let chunked_ok = self.s.req.version() == Version::HTTP_11;
        if resp.has_header(header::TRANSFER_ENCODING.as_str()) {
            // We only produce `chunked`; a sender must not send both
            // fields (RFC 9112 §6.2).
            resp.remove_header("content-length");
            if chunked_ok {
                resp.insert_header("Transfer-Encoding", "chunked")?;
                return Ok(Framing::Chunked);
            }
            resp.remove_header("transfer-encoding");
            return Ok(Framing::UntilClose);
        }
        match framing::response_framing(&Method::GET, resp) {
            Ok(Framing::UntilClose) if chunked_ok => {
                resp.insert_header("Transfer-Encoding", "chunked")?;
                Ok(Framing::Chunked)
            }
            Ok(framing) => Ok(framing),
            Err(why) => Error::e_explain(ErrorType::InternalError, why),
        }
    }

    fn prepare_upgrade(&mut self, status: StatusCode) -> Result<Framing> {
        if status == StatusCode::SWITCHING_PROTOCOLS && !self.is_upgrade_request() {
            // RFC 9110 §15.2.2: only switch to a protocol the client asked for.
            return Error::e_explain(ErrorType::InternalError, "101 without an upgrade request");
        }
        if !self.s.body.is_done() {
            return Error::e_explain(ErrorType::InternalError, "upgrade before request body end");
        }
        self.s.upgraded = true;
        self.s.keepalive = false;
        self.s.cont = Continue::NotExpected;
        // From here on, bytes in both directions are the new protocol's.
        self.s.body = BodyDecoder::new(Framing::UntilClose, 0);
        Ok(Framing::UntilClose)
    }

    /// Write a piece of the response body, framed as the head decided.
    /// Bytes of a response that has no body (HEAD, 204, 304) are dropped.
    ///
    /// # Errors
    ///
    /// [`ErrorType::InternalError`] before the head is written or past the
    /// announced Content-Length (the connection will close); write errors.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: a cancelled call may have sent part of `data`.
    pub async fn write_body(&mut self, data: &[u8]) -> Result<()> {
        let Response::Body(encoder) = &mut self.s.response else {
            return Error::e_explain(ErrorType::InternalError, "no response body to write");
        };
        let res = match encoder.pass_through(data.len()) {
            Ok(true) => return self.flush_with(data).await,
            Ok(false) => encoder.encode(data, self.s.conn.wbuf()),
            Err(e) => Err(e),
        };
        if let Err(e) = res {
            self.s.keepalive = false;
            return Error::e_explain(ErrorType::InternalError, e.as_str());
        }
        self.flush_wbuf().await
    }

    /// End the response, with `trailers` when it is chunked.
    ///
    /// # Errors
    ///
    /// [`ErrorType::InternalError`] when no head was written or the body was
    /// shorter than its Content-Length (the connection will close); write
    /// errors.
    pub async fn finish_response(&mut self, trailers: Option<&HeaderMap>) -> Result<()> {
        let Response::Body(encoder) = &mut self.s.response else {
            return match self.s.response {
                Response::Done => Ok(()),
                _ => Error::e_explain(ErrorType::InternalError, "no response to finish"),
            };
        };
        let res = encoder.finish(trailers, self.s.conn.wbuf());
        self.s.response = Response::Done;
        if let Err(e) = res {
            self.s.keepalive = false;
            return Error::e_explain(ErrorType::InternalError, e.as_str());
        }
        self.flush_wbuf().await
    }

    /// Answer with a bodyless `status` (for example 400 or 502) and close
    /// the connection afterwards. Does nothing when a response was started.
    ///
    /// # Errors
    ///
    /// Write errors.
    pub async fn respond_error(&mut self, status: u16) -> Result<()> {
        if !matches!(self.s.response, Response::NotStarted) {
            return Ok(());
        }
        self.s.keepalive = false;
        self.s.response = Response::Done;
        write_error_head(self.s.conn.wbuf(), status);
        self.flush_wbuf().await
    }

    /// Finish with this exchange: hand back the connection for the next
    /// request when keep-alive allows, or close it.
    ///
    /// The rest of an unread request body is read and discarded first, up
    /// to [`H1Config::max_drain_bytes`](super::H1Config::max_drain_bytes); a larger rest closes the
    /// connection, since the next request starts only after it.
    pub async fn reuse(mut self) -> Option<ServerConnection> {
        let reusable = self.s.keepalive
            && matches!(self.s.response, Response::Done)
            && self.s.cont != Continue::Expected
            && self.drain().await;
        if !reusable {
            self.s.conn.linger_close().await;
            return None;
        }
        self.s.served += 1;
        if let Some((read, write)) = self.s.saved_timeouts.take() {
            self.s.conn.config.body_read_timeout = read;
            self.s.conn.config.write_timeout = write;
        }
        self.s.written = None;
        // The head shares the read buffer's allocation: release it now so
        // the next read can reuse that buffer instead of allocating one.
        self.s.req = RequestHeader::placeholder();
        self.s.trailers = None;
        Some(ServerConnection { s: self.s })
    }

    async fn drain(&mut self) -> bool {
        let mut drained = 0;
        while !self.s.body.is_done() {
            match self.read_body_bytes().await {
                Ok(Some(data)) => drained += data.len(),
                Ok(None) => break,
                Err(_) => return false,
            }
            if drained > self.s.conn.config.max_drain_bytes {
                return false;
            }
        }
        self.s.keepalive
    }

    /// Take the stream back, with bytes read but not consumed. Used to hand
    /// the connection to another protocol.
    pub fn into_inner(self) -> (Stream, Bytes) {
        (self.s.conn.stream, self.s.conn.buf.freeze())
    }
}

/// Remove length fields from a head that must not have them.
fn strip_framing(resp: &mut ResponseHeader) {
    resp.remove_header("content-length");
    resp.remove_header("transfer-encoding");
}

#[cfg(test)]
mod memory_tests;
#[cfg(test)]
mod tests;
