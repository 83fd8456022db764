//! The downstream side: accept an HTTP/2 connection and serve its streams.
//!
//! [`ServerConnection`] owns the connection and must be driven by calling
//! [`ServerConnection::accept`] in a loop: that one task reads frames for
//! every stream, while each [`ServerSession`] runs on its own task.
//! [`serve_connection`] is that loop, with graceful shutdown.

use super::H2Options;
use super::body::{h2_error, recv_data, recv_trailers, send_data, send_end};
use super::convert::{request_from_h2, response_to_h2};
use super::guard::{MeteredIo, Trip, Tripwire, Watch};
use super::meter::FrameMeter;
use crate::header::{RequestHeader, ResponseHeader};
use crate::protocols::{Digest, Stream};
use crate::server::ShutdownWatch;
use bytes::Bytes;
use h2::server::SendResponse;
use h2::{Reason, RecvStream, SendStream};
use http::HeaderMap;
use pingora_error::{Error, ErrorType, Result};
use std::future::Future;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::time::{Instant, sleep_until};

/// What `h2` hands over for each new stream.
type Accepted = std::result::Result<(http::Request<RecvStream>, SendResponse<Bytes>), h2::Error>;

/// How long a GOAWAY sent to cut off a misbehaving peer may take to leave.
const GOAWAY_FLUSH: Duration = Duration::from_secs(1);

/// A downstream HTTP/2 connection.
///
/// # Examples
///
/// ```no_run
/// use pingora_core::protocols::http::v2::{H2Options, ServerConnection};
/// use pingora_core::header::ResponseHeader;
///
/// # async fn run(stream: pingora_core::protocols::Stream) -> pingora_core::Result<()> {
/// let mut conn = ServerConnection::handshake(stream, &H2Options::default()).await?;
/// while let Some(session) = conn.accept().await {
///     let mut session = session?;
///     tokio::spawn(async move {
///         let resp = ResponseHeader::build(200, None)?;
///         session.write_response_header(resp).await?;
///         session.write_body(b"hello").await?;
///         session.finish_response(None).await
///     });
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct ServerConnection {
    conn: h2::server::Connection<MeteredIo, Bytes>,
    watch: Watch,
    digest: Option<Arc<Digest>>,
    options: H2Options,
    /// When an idle connection is closed, or when a closing one is cut.
    deadline: Instant,
    closing: bool,
}

impl ServerConnection {
    /// Read the client's connection preface and exchange SETTINGS
    /// (RFC 9113 §3.4), advertising `options`.
    ///
    /// # Errors
    ///
    /// [`ErrorType::ReadTimedout`] after the handshake timeout,
    /// [`ErrorType::InvalidH2`] when the client does not speak HTTP/2.
    /// Both are marked downstream.
    pub async fn handshake(stream: Stream, options: &H2Options) -> Result<Self> {
        let digest = stream.digest().cloned().map(Arc::new);
        let wire = Arc::new(Tripwire::default());
        let io = MeteredIo::new(stream, FrameMeter::for_server(options), wire.clone());
        let handshake = builder(options).handshake(io);
        let mut conn = match pingora_timeout::timeout(options.handshake_timeout, handshake).await {
            Err(_) => {
                return Err(Error::explain(ErrorType::ReadTimedout, "h2 handshake").into_down());
            }
            Ok(Err(e)) => {
                return Err(Error::because(ErrorType::InvalidH2, "h2 handshake", e).into_down());
            }
            Ok(Ok(conn)) => conn,
        };
        let mut watch = Watch::new(wire);
        if let (Some(interval), Some(pings)) = (options.keepalive_interval, conn.ping_pong()) {
            watch.start_keepalive(pings, interval, options.keepalive_timeout);
        }
        Ok(Self {
            conn,
            watch,
            digest,
            options: *options,
            deadline: Instant::now() + options.idle_timeout,
            closing: false,
        })
    }

    /// What is known about the underlying connection.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_deref()
    }

    /// Wait for the next stream, driving the whole connection meanwhile.
    ///
    /// Returns `None` once the connection is closed: by the client, after
    /// a graceful shutdown once every stream finished, or when it sat idle
    /// with no stream past the idle timeout.
    ///
    /// # Errors
    ///
    /// A connection error, marked downstream: [`ErrorType::H2Error`] when
    /// the client broke a limit or the protocol (it was sent a GOAWAY with
    /// the matching code), [`ErrorType::ReadTimedout`] when a keep-alive
    /// PING went unanswered, read errors. The connection is closed.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: no stream is lost when the future is dropped.
    pub async fn accept(&mut self) -> Option<Result<ServerSession>> {
        loop {
            let wire = self.watch.wire.clone();
            tokio::select! {
                biased;
                why = wire.wait() => return Some(Err(self.cut_off(why).await)),
                next = self.conn.accept() => match self.accepted(next) {
                    ControlFlow::Break(next) => return next,
                    // Refused with an error response; wait for the next.
                    ControlFlow::Continue(()) => {}
                },
                () = sleep_until(self.deadline) => {
                    if self.closing {
                        // Open streams overran the graceful timeout.
                        return None;
                    }
                    if self.conn.has_streams() {
                        self.deadline = Instant::now() + self.options.idle_timeout;
                    } else {
                        self.graceful_shutdown();
                    }
                }
            }
        }
    }

    /// A new stream as a session, or `Continue` when the request was
    /// invalid and answered here (400 or 413) without being handed on.
    fn accepted(&mut self, next: Option<Accepted>) -> ControlFlow<Option<Result<ServerSession>>> {
        let Some(next) = next else {
            return ControlFlow::Break(None);
        };
        ControlFlow::Break(match next {
            Ok((req, mut respond)) => {
                if !self.closing {
                    self.deadline = Instant::now() + self.options.idle_timeout;
                }
                let (parts, body) = req.into_parts();
                let checked = self.check_limits(&parts, &body);
                let checked =
                    checked.and_then(|()| request_from_h2(&parts).map_err(|why| (400, why)));
                crate::metrics::h2_stream_accepted();
                let req = match checked {
                    Ok(req) => req,
                    Err((status, why)) => {
                        log::debug!("h2 request refused: {why}");
                        refuse(&mut respond, status);
                        return ControlFlow::Continue(());
                    }
                };
                let expects = parts.headers.get(http::header::EXPECT);
                let expects_continue = !body.is_end_stream()
                    && expects.is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
                Some(Ok(ServerSession {
                    req,
                    body_budget: self.options.max_request_body.unwrap_or(u64::MAX),
                    expects_continue,
                    body_done: body.is_end_stream(),
                    body,
                    trailers: None,
                    respond,
                    response: Response::NotStarted,
                    digest: self.digest.clone(),
                    read_timeout: self.options.stream_read_timeout,
                    write_timeout: self.options.stream_write_timeout,
                    written: None,
                    default_timeouts: (
                        self.options.stream_read_timeout,
                        self.options.stream_write_timeout,
                    ),
                    request_end_wait: self.options.request_end_wait,
                }))
            }
            // After our GOAWAY the client may close without waiting for
            // the rest of the exchange: that is the end, not an error.
            Err(e) if self.closing && e.is_io() => None,
            // h2 already sent the GOAWAY its error calls for.
            Err(e) => Some(Err(h2_error(e, "h2 connection").into_down())),
        })
    }

    /// Refuse a request over the limits of [`H2Options`]: too many
    /// fields (431), a `:path` too long (414), a `content-length` over the
    /// body limit (413).
    fn check_limits(
        &self,
        parts: &http::request::Parts,
        body: &RecvStream,
    ) -> std::result::Result<(), (u16, &'static str)> {
        if parts.headers.len() > self.options.max_headers {
            return Err((431, "too many header fields"));
        }
        let path = parts.uri.path_and_query().map_or(0, |pq| pq.as_str().len());
        if path > self.options.max_path_bytes {
            return Err((414, "path too long"));
        }
        let Some(max) = self.options.max_request_body else {
            return Ok(());
        };
        let length = parts.headers.get(http::header::CONTENT_LENGTH);
        let length = length.and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        match length {
            Some(n) if n > max && !body.is_end_stream() => Err((413, "request body too large")),
            _ => Ok(()),
        }
    }

    /// Send GOAWAY with `ENHANCE_YOUR_CALM` (RFC 9113 §7) or, for a dead
    /// peer, `NO_ERROR`, give it a moment to leave, and close.
    async fn cut_off(&mut self, why: Trip) -> Box<Error> {
        let (reason, err) = match why {
            Trip::Flood(v) => (
                Reason::ENHANCE_YOUR_CALM,
                Error::explain(ErrorType::H2Error, v.as_str()),
            ),
            Trip::PingTimeout => (
                Reason::NO_ERROR,
                Error::explain(ErrorType::ReadTimedout, "h2 keep-alive ping unanswered"),
            ),
        };
        log::debug!("closing h2 connection: {err}");
        crate::metrics::h2_goaway_sent();
        self.conn.abrupt_shutdown(reason);
        let flush = std::future::poll_fn(|cx| self.conn.poll_closed(cx));
        let _ = pingora_timeout::timeout(GOAWAY_FLUSH, flush).await;
        err.into_down()
    }

    /// Start a graceful shutdown: GOAWAY tells the client to open no new
    /// stream (RFC 9113 §6.8) while open ones finish; [`Self::accept`]
    /// returns `None` when they have, or after the graceful timeout.
    pub fn graceful_shutdown(&mut self) {
        if !self.closing {
            self.closing = true;
            self.deadline = Instant::now() + self.options.graceful_timeout;
            crate::metrics::h2_goaway_sent();
            self.conn.graceful_shutdown();
        }
    }
}

/// The `h2` server builder for `options`.
fn builder(options: &H2Options) -> h2::server::Builder {
    let mut b = h2::server::Builder::new();
    b.max_concurrent_streams(options.max_concurrent_streams)
        .initial_window_size(H2Options::window(options.initial_stream_window))
        .initial_connection_window_size(H2Options::window(options.initial_connection_window))
        .max_header_list_size(options.max_header_list_size)
        .max_frame_size(options.frame_size())
        .max_send_buffer_size(options.max_send_buffer as usize)
        .max_pending_accept_reset_streams(options.max_pending_accept_reset_streams as usize)
        .max_local_error_reset_streams(Some(options.max_local_error_reset_streams as usize));
    b
}

/// Serve HTTP/2 on `stream`: accept streams and run `handler` on each, on
/// its own task, until the connection ends. When `shutdown` turns `true`
/// the client gets a GOAWAY and open streams may finish.
///
/// At most `max_concurrent_streams` handlers run at once per connection.
/// A client that resets its streams frees their slots in the protocol
/// while our handlers may still be working on them (the cost behind
/// rapid reset); streams beyond the cap are refused with REFUSED_STREAM,
/// which tells the client they were not processed (RFC 9113 §8.7).
pub async fn serve_connection<F, Fut>(
    stream: Stream,
    options: &H2Options,
    shutdown: &ShutdownWatch,
    handler: F,
) where
    F: Fn(ServerSession) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut conn = match ServerConnection::handshake(stream, options).await {
        Ok(conn) => conn,
        Err(e) => {
            log::debug!("h2 handshake failed: {e}");
            return;
        }
    };
    let mut shutdown = shutdown.clone();
    let mut closing = false;
    let slots = Arc::new(Semaphore::new(
        options.max_concurrent_streams.max(1) as usize
    ));
    loop {
        if !closing && *shutdown.borrow() {
            conn.graceful_shutdown();
            closing = true;
        }
        let next = tokio::select! {
            next = conn.accept() => next,
            _ = shutdown.wait_for(|stop| *stop), if !closing => continue,
        };
        match next {
            Some(Ok(mut session)) => match slots.clone().try_acquire_owned() {
                Ok(slot) => {
                    let serve = handler(session);
                    tokio::spawn(async move {
                        serve.await;
                        drop(slot);
                    });
                }
                Err(_) => session.reset(Reason::REFUSED_STREAM),
            },
            Some(Err(e)) => {
                log::debug!("h2 connection ended: {e}");
                return;
            }
            None => return,
        }
    }
}

/// Answer a stream with a complete bodyless `status`. When the client is
/// still sending, `h2` resets its side with NO_ERROR once the stream is
/// dropped (RFC 9113 §8.1).
fn refuse(respond: &mut SendResponse<Bytes>, status: u16) {
    let mut head = http::Response::new(());
    *head.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_REQUEST);
    head.headers_mut().insert(
        http::header::CONTENT_LENGTH,
        http::HeaderValue::from_static("0"),
    );
    if let Err(e) = respond.send_response(head, true) {
        log::debug!("h2 error response not sent: {e}");
    }
}

/// Where the response stands.
#[derive(Debug)]
enum Response {
    /// No final response head written yet (1xx heads may have been).
    NotStarted,
    /// The final head is written but held back until the first piece of
    /// body, a flush or the end of the response, so that a response that
    /// ends with its head leaves as one HEADERS frame with END_STREAM.
    Held(http::Response<()>),
    /// Head sent; the body goes on this stream.
    Body(SendStream<Bytes>),
    /// The response is complete.
    Done,
}

/// One request/response exchange: one stream of an HTTP/2 connection.
///
/// The request head is shaped like an HTTP/1 one (origin-form target,
/// `Host` from `:authority`), so code above needs no version checks.
#[derive(Debug)]
pub struct ServerSession {
    req: RequestHeader,
    /// Body bytes the rest of the request may hold
    /// ([`H2Options::max_request_body`]).
    body_budget: u64,
    /// The client waits for 100 before sending its body and none was
    /// sent yet (RFC 9110 §10.1.1).
    expects_continue: bool,
    body: RecvStream,
    body_done: bool,
    trailers: Option<HeaderMap>,
    respond: SendResponse<Bytes>,
    response: Response,
    digest: Option<Arc<Digest>>,
    read_timeout: Duration,
    write_timeout: Duration,
    /// The final response head, once written.
    written: Option<Box<ResponseHeader>>,
    /// The listener's read and write timeouts, for a `None` override.
    default_timeouts: (Duration, Duration),
    request_end_wait: Duration,
}

impl ServerSession {
    /// The request head.
    pub const fn req_header(&self) -> &RequestHeader {
        &self.req
    }

    /// The request head, to change before forwarding it.
    pub const fn req_header_mut(&mut self) -> &mut RequestHeader {
        &mut self.req
    }

    /// What is known about the underlying connection.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_deref()
    }

    /// How long one read of request body may wait, for this stream
    /// `None` goes back to [`H2Options::stream_read_timeout`].
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) {
        self.read_timeout = timeout.unwrap_or(self.default_timeouts.0);
    }

    /// How long one write may wait for flow-control window, for this
    /// stream; `None` goes back to [`H2Options::stream_write_timeout`].
    pub fn set_write_timeout(&mut self, timeout: Option<Duration>) {
        self.write_timeout = timeout.unwrap_or(self.default_timeouts.1);
    }

    /// The final response head as written, once written. A bodyless
    /// [`respond_error`](Self::respond_error) leaves none.
    pub fn response_written(&self) -> Option<&ResponseHeader> {
        self.written.as_deref()
    }

    /// The stream's id on its connection.
    pub fn stream_id(&self) -> u32 {
        self.respond.stream_id().as_u32()
    }

    /// Read the next piece of the request body; `None` at its end. Bytes
    /// read are returned to the client's flow-control window, so the
    /// client sends no faster than this is called.
    ///
    /// # Errors
    ///
    /// [`ErrorType::ReadTimedout`] when the client sent nothing for the
    /// stream read timeout (a stream opened and never finished),
    /// [`ErrorType::H2Error`] when the client reset the stream, or sent
    /// more than [`H2Options::max_request_body`] (answered with 413, or
    /// the stream reset once a response started). All are marked
    /// downstream.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: data and trailers are taken from the stream only when
    /// the call returns them.
    pub async fn read_body_bytes(&mut self) -> Result<Option<Bytes>> {
        if self.body_done {
            return Ok(None);
        }
        if std::mem::take(&mut self.expects_continue)
            && matches!(self.response, Response::NotStarted)
        {
            // Reading the body is the signal to send 100 (RFC 9110
            // §10.1.1); a failure shows up on the read below.
            let mut head = http::Response::new(());
            *head.status_mut() = http::StatusCode::CONTINUE;
            let _ = self.respond.send_informational(head);
        }
        let read = recv_data(&mut self.body, self.read_timeout).await;
        match read.map_err(Error::into_down)? {
            Some(data) if data.len() as u64 > self.body_budget => {
                match self.response {
                    Response::NotStarted => refuse(&mut self.respond, 413),
                    _ => self.reset(Reason::CANCEL),
                }
                self.response = Response::Done;
                Error::e_explain(ErrorType::H2Error, "request body too large")
                    .map_err(Error::into_down)
            }
            Some(data) => {
                self.body_budget -= data.len() as u64;
                Ok(Some(data))
            }
            None => {
                // Done only once the trailers are in, so that a cancelled
                // call loses nothing (the proxy races this read).
                let trailers = recv_trailers(&mut self.body, self.read_timeout).await;
                self.trailers = trailers.map_err(Error::into_down)?;
                self.body_done = true;
                Ok(None)
            }
        }
    }

    /// Whether the whole request body has been read.
    pub const fn is_body_done(&self) -> bool {
        self.body_done
    }

    /// The request trailers, once the body is fully read.
    pub const fn trailers(&self) -> Option<&HeaderMap> {
        self.trailers.as_ref()
    }

    /// Write a response head. 1xx heads are interim (RFC 9113 §8.1) and
    /// sent at once, except 101, which HTTP/2 does not have (§8.6).
    ///
    /// A final head is held until the first piece of body,
    /// [`flush`](Self::flush) or [`finish_response`](Self::finish_response):
    /// a response that ends with its head then leaves as one HEADERS
    /// frame carrying END_STREAM, and one with trailers but no body as
    /// HEADERS and trailing HEADERS, never with an empty DATA frame
    /// between. gRPC relies on it: a "trailers-only" response (an error
    /// status with no message) is one HEADERS frame with END_STREAM, and
    /// clients may take any DATA after it as a broken response.
    ///
    /// # Errors
    ///
    /// [`ErrorType::H2Error`] for a 101, a second final head, or when the
    /// stream is gone.
    pub async fn write_response_header(&mut self, resp: ResponseHeader) -> Result<()> {
        let status = resp.status();
        if status == http::StatusCode::SWITCHING_PROTOCOLS {
            return Error::e_explain(ErrorType::H2Error, "101 is not allowed in h2");
        }
        if !matches!(self.response, Response::NotStarted) {
            return Error::e_explain(ErrorType::H2Error, "response already started");
        }
        let head = response_to_h2(&resp)?;
        if status.is_informational() {
            return self
                .respond
                .send_informational(head)
                .map_err(|e| h2_error(e, "sending h2 interim head"));
        }
        self.response = Response::Held(head);
        self.written = Some(Box::new(resp));
        Ok(())
    }

    /// Send a held response head (see
    /// [`write_response_header`](Self::write_response_header)) with
    /// the stream left open for body, for a caller whose body is not
    /// ready yet. Nothing to send costs nothing.
    ///
    /// # Errors
    ///
    /// [`ErrorType::H2Error`] when the stream is gone.
    pub fn flush(&mut self) -> Result<()> {
        self.open_body().map(drop)
    }

    /// Send a held head with the stream left open; the stream for body.
    fn open_body(&mut self) -> Result<&mut SendStream<Bytes>> {
        // A failed send leaves `Done`: the stream is gone.
        self.response = match std::mem::replace(&mut self.response, Response::Done) {
            Response::Held(head) => Response::Body(
                self.respond
                    .send_response(head, false)
                    .map_err(|e| h2_error(e, "sending h2 response head"))?,
            ),
            other => other,
        };
        match &mut self.response {
            Response::Body(out) => Ok(out),
            _ => Error::e_explain(ErrorType::H2Error, "no response body in progress"),
        }
    }

    /// Send a piece of the response body, waiting for the client's window.
    /// An empty piece sends nothing, and leaves a held head held.
    ///
    /// # Errors
    ///
    /// [`ErrorType::H2Error`] before the head or after the end, else as
    /// the stream write: [`ErrorType::WriteTimedout`] when the client gave
    /// no window for the write timeout.
    pub async fn write_body(&mut self, data: &[u8]) -> Result<()> {
        if data.is_empty() && matches!(self.response, Response::Held(_)) {
            return Ok(());
        }
        let timeout = self.write_timeout;
        let out = self.open_body()?;
        send_data(out, Bytes::copy_from_slice(data), timeout).await
    }

    /// End the response, with `trailers` when given: END_STREAM on the
    /// head itself when nothing else was sent (RFC 9113 §8.1), else on
    /// the trailers or an empty DATA frame.
    ///
    /// # Errors
    ///
    /// [`ErrorType::H2Error`] when no head was written or the stream is
    /// gone.
    pub async fn finish_response(&mut self, trailers: Option<&HeaderMap>) -> Result<()> {
        if matches!(self.response, Response::Held(_) | Response::Body(_)) {
            self.settle_request().await?;
        }
        let trailers = trailers.filter(|t| !t.is_empty());
        match std::mem::replace(&mut self.response, Response::Done) {
            Response::Held(head) if trailers.is_none() => self
                .respond
                .send_response(head, true)
                .map(drop)
                .map_err(|e| h2_error(e, "sending h2 response head")),
            Response::Held(head) => {
                let mut out = self
                    .respond
                    .send_response(head, false)
                    .map_err(|e| h2_error(e, "sending h2 response head"))?;
                send_end(&mut out, trailers)
            }
            Response::Body(mut out) => send_end(&mut out, trailers),
            Response::Done => Ok(()),
            Response::NotStarted => {
                Error::e_explain(ErrorType::H2Error, "response finished before its head")
            }
        }
    }

    /// Before a response ends, wait a little (`request_end_wait`) for the
    /// rest of a request still being sent, dropping its body. A request
    /// stream found malformed then wins over the response, whenever its
    /// bad frame came (RFC 9113 §8.1.1): the stream is reset with
    /// PROTOCOL_ERROR (`h2` resets it on the frames it checks; this does
    /// for the rest) and the error returned, so the client never sees a
    /// complete response to a request it broke. A request that goes on
    /// past the wait or the byte bound is left: the response ends and
    /// `h2` refuses the rest with RST_STREAM(NO_ERROR) (§8.1).
    ///
    /// # Errors
    ///
    /// As [`read_body_bytes`](Self::read_body_bytes): the request stream
    /// broke.
    async fn settle_request(&mut self) -> Result<()> {
        const DROP_LIMIT: usize = 64 * 1024;
        if self.body_done || self.expects_continue {
            // Nothing left, or nothing coming: a client waiting for 100
            // sends no body until told to (RFC 9110 §10.1.1).
            return Ok(());
        }
        let wait = self.request_end_wait;
        let settle = async {
            let mut dropped = 0;
            while dropped <= DROP_LIMIT {
                match self.read_body_bytes().await? {
                    Some(piece) => dropped += piece.len(),
                    None => break,
                }
            }
            Ok::<(), Box<Error>>(())
        };
        match pingora_timeout::timeout(wait, settle).await {
            // A slow client is no broken one.
            Ok(Err(e)) if *e.etype() == ErrorType::ReadTimedout => Ok(()),
            Ok(Err(e)) => {
                self.reset(Reason::PROTOCOL_ERROR);
                Err(e)
            }
            Ok(Ok(())) | Err(_) => Ok(()),
        }
    }

    /// Answer with a bodyless error `status` when no response has started.
    ///
    /// # Errors
    ///
    /// When the stream is gone.
    pub async fn respond_error(&mut self, status: u16) -> Result<()> {
        if !matches!(self.response, Response::NotStarted) {
            return Ok(());
        }
        let mut resp = ResponseHeader::build(status, Some(1))?;
        resp.insert_header("content-length", "0")?;
        let head = response_to_h2(&resp)?;
        self.response = Response::Done;
        self.respond
            .send_response(head, true)
            .map(drop)
            .map_err(|e| h2_error(e, "sending h2 error response"))
    }

    /// Reset the stream with `CANCEL` (RFC 9113 §8.7), for an exchange
    /// that cannot be finished.
    pub fn abort(&mut self) {
        self.reset(Reason::CANCEL);
    }

    fn reset(&mut self, reason: Reason) {
        match &mut self.response {
            Response::Body(out) => out.send_reset(reason),
            _ => self.respond.send_reset(reason),
        }
        self.response = Response::Done;
    }
}
