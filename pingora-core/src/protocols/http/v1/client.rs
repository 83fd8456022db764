//! The upstream side: write requests to a server and read its responses.

use super::H1Config;
use super::conn::Conn;
use super::decode::{BodyDecoder, Decoded};
use super::encode::BodyEncoder;
use super::framing::{self, Framing};
use super::head::HeadReader;
use crate::header::{RequestHeader, ResponseHeader};
use crate::protocols::{Digest, Stream};
use bytes::Bytes;
use http::header::{self, HeaderMap};
use http::{Method, StatusCode, Version};
use pingora_error::{Error, ErrorType, Result, RetryType};

/// Most interim (1xx) responses skipped before a final one, so an upstream
/// cannot keep us reading heads forever.
const MAX_INTERIM: usize = 16;

/// An upstream HTTP/1 connection, one exchange at a time.
///
/// # Examples
///
/// ```no_run
/// use pingora_core::protocols::http::v1::{ClientSession, H1Config};
/// use pingora_core::header::RequestHeader;
/// # async fn fetch(stream: pingora_core::protocols::Stream) -> pingora_core::Result<()> {
/// let mut client = ClientSession::new(stream, H1Config::default());
/// let mut req = RequestHeader::build("GET", b"/", None)?;
/// req.insert_header("Host", "example.com")?;
/// client.write_request_header(req).await?;
/// client.finish_body(None).await?;
/// let status = client.read_final_response_header().await?.status();
/// while let Some(chunk) = client.read_body_bytes().await? {
///     println!("{status}: {} bytes", chunk.len());
/// }
/// let _pooled = client.reuse();
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct ClientSession {
    conn: Conn,
    method: Method,
    keepalive: bool,
    req_body: Option<BodyEncoder>,
    resp: Option<ResponseHeader>,
    /// The final response allows another request on this connection as
    /// far as its version and `Connection` go (kept apart from `resp`,
    /// which the caller may take).
    resp_persistent: bool,
    resp_body: Option<BodyDecoder>,
    trailers: Option<HeaderMap>,
    upgrade_requested: bool,
    upgraded: bool,
    /// The pool key of the peer this connection was made for, set by the
    /// connector that made it.
    reuse_key: Option<u64>,
}

fn up(etype: ErrorType, why: &'static str) -> Box<Error> {
    Error::explain(etype, why).into_up()
}

impl ClientSession {
    /// Speak HTTP/1 to an upstream over `stream`.
    pub fn new(stream: Stream, config: H1Config) -> Self {
        Self {
            conn: Conn::new(stream, config),
            method: Method::GET,
            keepalive: false,
            req_body: None,
            resp: None,
            resp_persistent: false,
            resp_body: None,
            trailers: None,
            upgrade_requested: false,
            upgraded: false,
            reuse_key: None,
        }
    }

    /// What is known about the underlying connection.
    pub fn digest(&self) -> Option<&Digest> {
        self.conn.stream.digest()
    }

    /// Write the request head. Its framing fields decide how the body is
    /// sent: `Transfer-Encoding: chunked` (any Content-Length is removed,
    /// RFC 9112 §6.2), `Content-Length`, or no body.
    ///
    /// # Errors
    ///
    /// [`ErrorType::InternalError`] when a request was already written on
    /// this session or the framing fields are invalid; write errors and
    /// [`ErrorType::WriteTimedout`].
    pub async fn write_request_header(&mut self, mut req: RequestHeader) -> Result<()> {
        if self.req_body.is_some() {
            return Error::e_explain(ErrorType::InternalError, "request already sent");
        }
        if req.has_header(header::TRANSFER_ENCODING.as_str()) {
            req.remove_header("content-length");
            req.insert_header("Transfer-Encoding", "chunked")?;
        }
        let framing = match framing::request_body_framing(&req) {
            Ok(framing) => framing,
            Err(why) => return Error::e_explain(ErrorType::InternalError, why),
        };
        self.method = req.method().clone();
        self.upgrade_requested = framing::is_upgrade_request(&req);
        self.keepalive = framing::request_keepalive(&req);
        req.write_h1(&mut self.conn.wbuf);
        self.req_body = Some(BodyEncoder::new(framing));
        self.flush().await
    }

    async fn flush(&mut self) -> Result<()> {
        self.conn.flush_wbuf().await.map_err(|e| {
            self.keepalive = false;
            e.into_up()
        })
    }

    /// Write a piece of the request body. After an upgrade, raw bytes.
    ///
    /// # Errors
    ///
    /// [`ErrorType::InternalError`] before the head or past the announced
    /// length; write errors.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: a cancelled call may have sent part of `data`.
    pub async fn write_body(&mut self, data: &[u8]) -> Result<()> {
        let Some(encoder) = &mut self.req_body else {
            return Error::e_explain(ErrorType::InternalError, "request head not sent");
        };
        // A request without length fields has no body (RFC 9112 §6.3):
        // bytes written now would be read as the next request.
        if matches!(encoder, BodyEncoder::Empty) && !data.is_empty() {
            return Error::e_explain(ErrorType::InternalError, "request declares no body");
        }
        let res = match encoder.pass_through(data.len()) {
            Ok(true) => {
                return self.conn.flush_with(data).await.map_err(|e| {
                    self.keepalive = false;
                    e.into_up()
                });
            }
            Ok(false) => encoder.encode(data, &mut self.conn.wbuf),
            Err(e) => Err(e),
        };
        if let Err(e) = res {
            self.keepalive = false;
            return Error::e_explain(ErrorType::InternalError, e.as_str());
        }
        self.flush().await
    }

    /// End the request body, with `trailers` when it is chunked.
    ///
    /// # Errors
    ///
    /// [`ErrorType::InternalError`] before the head or when the body is
    /// shorter than its Content-Length; write errors.
    pub async fn finish_body(&mut self, trailers: Option<&HeaderMap>) -> Result<()> {
        let Some(encoder) = &mut self.req_body else {
            return Error::e_explain(ErrorType::InternalError, "request head not sent");
        };
        if let Err(e) = encoder.finish(trailers, &mut self.conn.wbuf) {
            self.keepalive = false;
            return Error::e_explain(ErrorType::InternalError, e.as_str());
        }
        self.flush().await
    }

    /// Read the next response head, interim (1xx) ones included: after
    /// `Expect: 100-continue`, a `100` says to send the body.
    ///
    /// # Errors
    ///
    /// Upstream errors: [`ErrorType::InvalidHTTPHeader`] for a malformed or
    /// over-limit head, [`ErrorType::H1Error`] for conflicting framing,
    /// [`ErrorType::ConnectionClosed`] when the upstream closed first
    /// (retryable on a reused connection), [`ErrorType::ReadTimedout`] past
    /// the header timeout, and read errors.
    pub async fn read_response_header(&mut self) -> Result<&ResponseHeader> {
        if self.resp_body.is_some() {
            return Error::e_explain(ErrorType::InternalError, "final response already read");
        }
        let config = self.conn.config;
        let resp = match config
            .bounded(config.header_timeout, self.read_head())
            .await
        {
            Ok(res) => res?,
            Err(_) => return Err(up(ErrorType::ReadTimedout, "reading response head")),
        };
        self.accept_response(resp)
    }

    /// Read response heads until the final one, skipping interim 1xx
    /// responses (a `101` is final: the protocol switches).
    ///
    /// # Errors
    ///
    /// As [`read_response_header`](Self::read_response_header), plus
    /// [`ErrorType::H1Error`] after too many interim responses.
    pub async fn read_final_response_header(&mut self) -> Result<&ResponseHeader> {
        for _ in 0..MAX_INTERIM {
            self.read_response_header().await?;
            if self.resp_body.is_some() {
                return self
                    .resp
                    .as_ref()
                    .ok_or_else(|| up(ErrorType::InternalError, "no head"));
            }
        }
        Err(up(ErrorType::H1Error, "too many interim responses"))
    }

    async fn read_head(&mut self) -> Result<ResponseHeader> {
        let mut reader = HeadReader::default();
        let mut first = true;
        loop {
            match reader.parse_response(&mut self.conn.buf, &self.conn.config) {
                Ok(Some(resp)) => return Ok(resp),
                Ok(None) => {}
                Err(bad) => {
                    self.keepalive = false;
                    return Err(up(ErrorType::InvalidHTTPHeader, bad.as_str()));
                }
            }
            // The caller bounds the whole head read by the header timeout.
            let n = self
                .conn
                .read_more_unbounded()
                .await
                .map_err(Error::into_up)?;
            if n == 0 {
                self.keepalive = false;
                let mut e = up(
                    ErrorType::ConnectionClosed,
                    "upstream closed before response",
                );
                // Nothing arrived: a pooled connection may have been closed
                // by the upstream while idle, so a fresh one may succeed.
                if first && self.conn.buf.is_empty() {
                    e.set_retry_type(RetryType::ReusedOnly);
                }
                return Err(e);
            }
            first = false;
        }
    }

    fn accept_response(&mut self, mut resp: ResponseHeader) -> Result<&ResponseHeader> {
        let status = resp.status();
        let interim = status.is_informational() && status != StatusCode::SWITCHING_PROTOCOLS;
        if !interim {
            self.resp_body = Some(self.response_decoder(&resp)?);
            self.resp_persistent =
                resp.version() != Version::HTTP_10 || framing::response_keepalive(&resp);
        }
        if status.is_informational() {
            // 1xx carries no body and its fields describe nothing below.
            resp.remove_header("content-length");
            resp.remove_header("transfer-encoding");
        }
        Ok(self.resp.insert(resp))
    }

    fn response_decoder(&mut self, resp: &ResponseHeader) -> Result<BodyDecoder> {
        let max_trailers = self.conn.config.max_trailer_bytes;
        self.keepalive = self.keepalive && framing::response_keepalive(resp);
        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            // RFC 9110 §15.2.2: a switch nobody asked for is a broken peer.
            if !self.upgrade_requested {
                self.keepalive = false;
                return Err(up(ErrorType::H1Error, "101 without an upgrade request"));
            }
            self.upgraded = true;
            self.keepalive = false;
            self.req_body = Some(BodyEncoder::new(Framing::UntilClose));
            return Ok(BodyDecoder::new(Framing::UntilClose, 0));
        }
        let framing = framing::response_framing(&self.method, resp).map_err(|why| {
            self.keepalive = false;
            up(ErrorType::H1Error, why)
        })?;
        if framing == Framing::UntilClose {
            self.keepalive = false;
            if self.method == Method::CONNECT {
                self.upgraded = true;
                self.req_body = Some(BodyEncoder::new(Framing::UntilClose));
            }
        }
        // A final response before the whole request body went out (an
        // early 4xx, or a refused 100-continue) leaves the upstream's view
        // of the request unknown.
        if !self.req_body.as_ref().is_some_and(BodyEncoder::is_complete) && !self.upgraded {
            self.keepalive = false;
        }
        Ok(BodyDecoder::new(framing, max_trailers))
    }

    /// The last response head read, interim or final.
    pub const fn resp_header(&self) -> Option<&ResponseHeader> {
        self.resp.as_ref()
    }

    /// Take the last response head read, leaving `None`: for a caller that
    /// changes and forwards it, saving a copy.
    pub const fn take_resp_header(&mut self) -> Option<ResponseHeader> {
        self.resp.take()
    }

    /// Whether the connection switched protocols (101, or 2xx to CONNECT):
    /// the body methods now carry raw bytes both ways.
    pub const fn is_upgraded(&self) -> bool {
        self.upgraded
    }

    /// Read the next piece of the response body; `None` at its end.
    ///
    /// # Errors
    ///
    /// [`ErrorType::InternalError`] before a final head was read. Upstream
    /// errors: [`ErrorType::H1Error`] for an invalid body,
    /// [`ErrorType::ConnectionClosed`] when it closes early,
    /// [`ErrorType::ReadTimedout`], read errors.
    pub async fn read_body_bytes(&mut self) -> Result<Option<Bytes>> {
        loop {
            let Some(decoder) = &mut self.resp_body else {
                return Error::e_explain(ErrorType::InternalError, "no final response head");
            };
            let res = match decoder.decode(&mut self.conn.buf) {
                Ok(Decoded::Data(data)) => return Ok(Some(data)),
                Ok(Decoded::Done) => {
                    if self.trailers.is_none() {
                        self.trailers = decoder.take_trailers();
                    }
                    return Ok(None);
                }
                Ok(Decoded::NeedMore) => self.read_more_body().await,
                Err(e) => Err(up(ErrorType::H1Error, e.as_str())),
            };
            if let Err(e) = res {
                self.keepalive = false;
                return Err(e);
            }
        }
    }

    async fn read_more_body(&mut self) -> Result<()> {
        let wait = self.conn.config.body_read_timeout;
        let n = self.conn.read_more(wait).await.map_err(Error::into_up)?;
        match &mut self.resp_body {
            Some(decoder) if n == 0 => decoder
                .on_eof()
                .map(drop)
                .map_err(|e| up(ErrorType::ConnectionClosed, e.as_str())),
            _ => Ok(()),
        }
    }

    /// Whether the whole response body has been read.
    pub fn is_body_done(&self) -> bool {
        self.resp_body.as_ref().is_some_and(BodyDecoder::is_done)
    }

    /// Whether response body is already at hand: the body is complete or
    /// bytes of it arrived with the head. A proxy uses this to decide
    /// whether a held-back downstream head can wait for the first piece of
    /// body or must be flushed now. A partly received chunk-size line
    /// counts as at hand, so at worst the head waits for the rest of it.
    pub fn has_body_bytes(&self) -> bool {
        !self.conn.buf.is_empty() || self.is_body_done()
    }

    /// The trailers of a chunked response body, once it is fully read.
    pub const fn trailers(&self) -> Option<&HeaderMap> {
        self.trailers.as_ref()
    }

    /// Whether the connection could carry another request now.
    pub fn is_reusable(&self) -> bool {
        self.keepalive
            && !self.upgraded
            && self.is_body_done()
            && self.req_body.as_ref().is_some_and(BodyEncoder::is_complete)
            // Extra bytes after a complete response are a broken upstream.
            && self.conn.buf.is_empty()
            && self.resp_persistent
    }

    /// The stream, for a connection pool, when the connection may carry
    /// another request; `None` (and the stream dropped) otherwise.
    pub fn reuse(self) -> Option<Stream> {
        self.is_reusable().then_some(self.conn.stream)
    }

    /// This session, reset for the next request on the same connection,
    /// when the connection may carry another one; `None` (and the
    /// connection dropped) otherwise. Unlike [`reuse`](Self::reuse) it
    /// keeps the session's buffers, so a pool of sessions allocates
    /// nothing per request.
    pub fn recycle(mut self) -> Option<Self> {
        self.reset_for_reuse().then_some(self)
    }

    /// [`recycle`](Self::recycle) in place: reset for the next request
    /// and say whether the connection may carry one.
    pub(crate) fn reset_for_reuse(&mut self) -> bool {
        if !self.is_reusable() {
            return false;
        }
        self.method = Method::GET;
        self.keepalive = false;
        self.req_body = None;
        self.resp = None;
        self.resp_persistent = false;
        self.resp_body = None;
        self.trailers = None;
        self.upgrade_requested = false;
        true
    }

    /// The connection underneath, for a pool that watches it while idle.
    pub(crate) fn stream_mut(&mut self) -> &mut Stream {
        &mut self.conn.stream
    }

    /// The pool key of the peer the connection was made for, when a
    /// connector made it: where the connection goes back when released.
    pub const fn reuse_key(&self) -> Option<u64> {
        self.reuse_key
    }

    pub(crate) const fn set_reuse_key(&mut self, key: u64) {
        self.reuse_key = Some(key);
    }

    /// Change the limits and timeouts for the next exchange (a pooled
    /// session may serve peers with different timeouts).
    pub fn set_config(&mut self, config: H1Config) {
        self.conn.config = config;
    }

    /// Take the stream back, with bytes read but not consumed.
    pub fn into_inner(self) -> (Stream, Bytes) {
        (self.conn.stream, self.conn.buf.freeze())
    }
}

#[cfg(test)]
mod tests;
