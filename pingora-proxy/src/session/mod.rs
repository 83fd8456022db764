//! [`Session`]: one downstream request as the phases see it.

mod request_info;
mod subrequest;

pub(crate) use request_info::RequestInfo;

use bytes::Bytes;
use http::header::HeaderMap;
use pingora_cache::HttpCache;
use pingora_core::header::{RequestHeader, ResponseHeader};
use pingora_core::modules::http::HttpModuleCtx;
use pingora_core::protocols::http::ServerSession;
use pingora_core::server::ShutdownWatch;
use pingora_error::{Error, ErrorType, Result};
use std::any::Any;
use std::collections::VecDeque;
use std::time::Duration;

/// The most request body a phase may read and still have forwarded. Past
/// it the pieces are dropped, and the request can only be answered by the
/// phase itself.
const KEPT_BODY_LIMIT: usize = 64 * 1024;

/// One request from a client, handed to every [`ProxyHttp`](crate::ProxyHttp)
/// phase: the request head (mutable), its body, the response written so
/// far, and what is known about the client connection.
///
/// Whatever the HTTP version, the downstream is driven through the
/// version-neutral [`ServerSession`].
#[derive(Debug)]
pub struct Session {
    downstream: ServerSession,
    reused: bool,
    response_status: Option<u16>,
    body_bytes_read: u64,
    body_bytes_sent: u64,
    shutdown: Option<ShutdownWatch>,
    /// Body pieces a phase read before forwarding began, to forward.
    kept: VecDeque<Bytes>,
    kept_bytes: usize,
    kept_lost: bool,
    forwarding: bool,
    /// The most request body this request may have
    /// ([`set_request_body_limit`](Session::set_request_body_limit)).
    body_limit: Option<u64>,
    /// The head of a bodyless error response, which the downstream
    /// session writes without keeping one.
    error_head: Option<Box<ResponseHeader>>,
    /// This request's HTTP modules.
    modules: HttpModuleCtx,
    /// The modules saw the end of the request body.
    modules_request_ended: bool,
    /// The modules saw the end of the response body.
    modules_response_ended: bool,
    /// State kept across the requests of one HTTP/1 connection.
    conn_ctx: Option<ConnectionCtx>,
    /// This request's cache state: off unless
    /// [`request_cache_filter`](crate::ProxyHttp::request_cache_filter)
    /// calls [`HttpCache::enable`].
    pub cache: HttpCache,
    /// The writer of the response being stored, during a miss.
    pub(crate) fill: Option<crate::proxy::Fill>,
    /// Set on a subrequest: what it carries from the request that made it.
    pub(crate) subrequest: Option<Box<crate::proxy::SubrequestCtx>>,
    /// Set when this request may make subrequests.
    pub(crate) subrequests: Option<Box<crate::proxy::Subrequests>>,
    /// The cache lock's write permit for an entry this request was served
    /// stale from, to refresh in the background once it is answered.
    pub(crate) background_refresh: Option<pingora_cache::lock::WritePermit>,
    /// What an access log line needs beyond the request and response.
    pub(crate) info: RequestInfo,
}

/// What [`Session::set_connection_ctx`] keeps.
pub(crate) type ConnectionCtx = Box<dyn Any + Send + Sync>;

impl Session {
    /// A session for one request on `downstream`; `reused` says the client
    /// connection served requests before this one.
    pub fn new(downstream: impl Into<ServerSession>, reused: bool) -> Self {
        Self {
            downstream: downstream.into(),
            reused,
            response_status: None,
            body_bytes_read: 0,
            body_bytes_sent: 0,
            shutdown: None,
            kept: VecDeque::new(),
            kept_bytes: 0,
            kept_lost: false,
            forwarding: false,
            body_limit: None,
            error_head: None,
            modules: HttpModuleCtx::empty(),
            modules_request_ended: false,
            modules_response_ended: false,
            conn_ctx: None,
            cache: HttpCache::new(),
            fill: None,
            subrequest: None,
            subrequests: None,
            background_refresh: None,
            info: RequestInfo::new(),
        }
    }

    /// Close the client connection after this request when `shutdown`
    /// has turned `true` by the time the response head goes out.
    pub(crate) fn set_shutdown_watch(&mut self, shutdown: Option<ShutdownWatch>) {
        self.shutdown = shutdown;
    }

    /// Take the watch back, for the connection's next request: cloning
    /// and dropping one per request would cost four atomic operations.
    pub(crate) const fn take_shutdown_watch(&mut self) -> Option<ShutdownWatch> {
        self.shutdown.take()
    }

    /// Give this request its module instances.
    pub(crate) fn set_modules(&mut self, modules: HttpModuleCtx) {
        self.modules = modules;
    }

    /// Run the modules' request head filters.
    pub(crate) async fn run_request_header_modules(&mut self) -> Result<()> {
        if self.modules.is_empty() {
            return Ok(());
        }
        let req = self.downstream.req_header_mut();
        self.modules.request_header_filter(req).await
    }

    /// Run the modules' upstream response head filters.
    pub(crate) fn run_upstream_response_header_modules(
        &mut self,
        resp: &mut ResponseHeader,
        end_of_stream: bool,
    ) -> Result<()> {
        if self.modules.is_empty() {
            return Ok(());
        }
        self.modules
            .upstream_response_header_filter(resp, end_of_stream)
    }

    /// Run the modules' upstream response body filters.
    pub(crate) fn run_upstream_response_body_modules(
        &mut self,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
    ) -> Result<()> {
        if self.modules.is_empty() {
            return Ok(());
        }
        self.modules
            .upstream_response_body_filter(body, end_of_stream)
    }

    /// This request's HTTP modules (see
    /// [`ProxyHttp::init_downstream_modules`](crate::ProxyHttp::init_downstream_modules)),
    /// to find one by type with [`HttpModuleCtx::get`].
    pub const fn downstream_modules_ctx(&self) -> &HttpModuleCtx {
        &self.modules
    }

    /// This request's HTTP modules, to change one (for example to turn it
    /// off for this request) with [`HttpModuleCtx::get_mut`].
    pub const fn downstream_modules_ctx_mut(&mut self) -> &mut HttpModuleCtx {
        &mut self.modules
    }

    /// Hand this request the connection's context, and take it back.
    pub(crate) fn put_connection_ctx(&mut self, ctx: Option<ConnectionCtx>) {
        self.conn_ctx = ctx;
    }

    pub(crate) fn take_connection_ctx(&mut self) -> Option<ConnectionCtx> {
        self.conn_ctx.take()
    }

    /// Keep `ctx` for the rest of this client connection: the next
    /// requests on it find it with [`connection_ctx`](Self::connection_ctx)
    /// (replacing any context of another type). For state that belongs to
    /// the connection rather than to one request, such as a login done
    /// once per connection or a count of its requests.
    ///
    /// It lives as long as the HTTP/1 connection: a connection that holds
    /// one is never parked while idle (parking frees everything but the
    /// socket, see [`H1Config::park_idle_after`](pingora_core::protocols::http::v1::H1Config::park_idle_after)),
    /// so it keeps its task and memory between requests. Each HTTP/2
    /// stream is a request of its own: a context set there is dropped
    /// with the stream.
    ///
    /// # Examples
    ///
    /// ```
    /// # use pingora_core::upstreams::HttpPeer;
    /// # use pingora_error::Result;
    /// # use pingora_proxy::{ProxyHttp, Session};
    /// struct Requests(u64);
    ///
    /// struct Counting;
    ///
    /// impl ProxyHttp for Counting {
    ///     type CTX = ();
    ///     fn new_ctx(&self) {}
    /// #   async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> Result<Box<HttpPeer>> {
    /// #       unimplemented!()
    /// #   }
    ///     async fn request_filter(&self, session: &mut Session, _: &mut ()) -> Result<bool> {
    ///         match session.connection_ctx_mut::<Requests>() {
    ///             Some(seen) => seen.0 += 1,
    ///             None => session.set_connection_ctx(Requests(1)),
    ///         }
    ///         Ok(false)
    ///     }
    /// }
    /// ```
    pub fn set_connection_ctx<T: Any + Send + Sync>(&mut self, ctx: T) {
        self.conn_ctx = Some(Box::new(ctx));
    }

    /// The connection's context, when one of type `T` was set by this or
    /// an earlier request on the connection.
    pub fn connection_ctx<T: Any>(&self) -> Option<&T> {
        self.conn_ctx.as_ref()?.downcast_ref()
    }

    /// The connection's context, to change.
    pub fn connection_ctx_mut<T: Any>(&mut self) -> Option<&mut T> {
        self.conn_ctx.as_mut()?.downcast_mut()
    }

    /// Drop the connection's context (the connection can then be parked
    /// again while idle).
    pub fn clear_connection_ctx(&mut self) {
        self.conn_ctx = None;
    }

    /// The request head as the client sent it (or as phases changed it).
    pub fn req_header(&self) -> &RequestHeader {
        self.downstream.req_header()
    }

    /// The request head, to change. Changes made before
    /// [`upstream_request_filter`](crate::ProxyHttp::upstream_request_filter)
    /// are forwarded.
    pub fn req_header_mut(&mut self) -> &mut RequestHeader {
        self.downstream.req_header_mut()
    }

    /// The value of the request field `name`, if present and one value.
    pub fn get_header(&self, name: &str) -> Option<&http::HeaderValue> {
        self.req_header().get_header(name)
    }

    /// Read the next piece of the request body; `None` at its end.
    ///
    /// Pieces a phase reads before the request goes upstream are kept and
    /// still forwarded, up to 64 KiB; a phase that reads more must answer
    /// the request itself (forwarding it then fails with 500).
    ///
    /// # Errors
    ///
    /// Downstream errors: a malformed body (answered with 400), a read
    /// timeout, the client closing early; [`ErrorType::HTTPStatus`]`(413)`
    /// past the [request body limit](Self::set_request_body_limit).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: bytes read from the client stay buffered until a call
    /// completes and returns them.
    pub async fn read_request_body(&mut self) -> Result<Option<Bytes>> {
        self.check_body_limit(0)?;
        let data = self.read_through_modules().await?;
        if let Some(data) = &data {
            self.check_body_limit(data.len())?;
            self.body_bytes_read += data.len() as u64;
            if !self.forwarding {
                self.keep(data);
            }
        }
        Ok(data)
    }

    /// The next piece of body from the client, through the modules'
    /// request body filters.
    async fn read_through_modules(&mut self) -> Result<Option<Bytes>> {
        loop {
            let mut data = self.downstream.read_body_bytes().await?;
            if self.modules.is_empty() || (data.is_none() && self.modules_request_ended) {
                return Ok(data);
            }
            let end = data.is_none() || self.downstream.is_body_done();
            self.modules.request_body_filter(&mut data, end).await?;
            self.modules_request_ended = end;
            // A module may drop a piece: read on, unless the body ended.
            if data.is_some() || end {
                return Ok(data);
            }
        }
    }

    /// Fail with 413 when the body read so far plus `more` bytes, or the
    /// declared `Content-Length`, passes the limit.
    fn check_body_limit(&mut self, more: usize) -> Result<()> {
        let Some(limit) = self.body_limit else {
            return Ok(());
        };
        let declared = self
            .req_header()
            .get_header("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        let read = self.body_bytes_read.saturating_add(more as u64);
        if read.max(declared) > limit {
            // The rest of an oversized body is not read: the connection
            // cannot serve another request.
            self.downstream.set_keepalive(false);
            return Error::e_explain(ErrorType::HTTPStatus(413), "request body over the limit")
                .map_err(Error::into_down);
        }
        Ok(())
    }

    /// Refuse a request body larger than `limit` bytes (`None`: no limit
    /// of this request's own; the listener's
    /// [`max_request_body`](pingora_core::protocols::http::v1::H1Config::max_request_body)
    /// still holds). Set it in an early phase: a declared
    /// `Content-Length` above the limit fails the first read of body, and
    /// a body that grows past it fails the read that passes it, with
    /// [`ErrorType::HTTPStatus`]`(413)`, which the proxy answers with 413
    /// when no response has started (and closes the connection).
    ///
    /// # Examples
    ///
    /// ```
    /// # use pingora_core::upstreams::HttpPeer;
    /// # use pingora_error::Result;
    /// # use pingora_proxy::{ProxyHttp, Session};
    /// struct Uploads;
    ///
    /// impl ProxyHttp for Uploads {
    ///     type CTX = ();
    ///     fn new_ctx(&self) {}
    /// #   async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> Result<Box<HttpPeer>> {
    /// #       unimplemented!()
    /// #   }
    ///     async fn request_filter(&self, session: &mut Session, _: &mut ()) -> Result<bool> {
    ///         session.set_request_body_limit(Some(1024 * 1024));
    ///         Ok(false)
    ///     }
    /// }
    /// ```
    pub const fn set_request_body_limit(&mut self, limit: Option<u64>) {
        self.body_limit = limit;
    }

    /// Read the rest of the request body and throw it away, for a request
    /// answered without the body (so that the connection can serve the
    /// next one). Body drained here is not forwarded: a request that
    /// still goes upstream after it fails with 500.
    ///
    /// # Errors
    ///
    /// As [`read_request_body`](Self::read_request_body).
    pub async fn drain_request_body(&mut self) -> Result<()> {
        while let Some(data) = self.downstream.read_body_bytes().await? {
            self.check_body_limit(data.len())?;
            self.body_bytes_read += data.len() as u64;
            if !self.forwarding {
                self.kept_lost = true;
                self.kept = VecDeque::new();
            }
        }
        Ok(())
    }

    fn keep(&mut self, data: &Bytes) {
        if self.kept_lost || self.kept_bytes + data.len() > KEPT_BODY_LIMIT {
            self.kept_lost = true;
            self.kept = VecDeque::new();
            return;
        }
        self.kept_bytes += data.len();
        self.kept.push_back(data.clone());
    }

    /// The next piece of request body to forward: first what phases read,
    /// then the rest from the client.
    pub(crate) async fn read_body_to_forward(&mut self) -> Result<Option<Bytes>> {
        self.forwarding = true;
        self.check_forwardable()?;
        match self.kept.pop_front() {
            Some(piece) => Ok(Some(piece)),
            None => self.read_request_body().await,
        }
    }

    /// Fail when a phase consumed request body that cannot be forwarded,
    /// so the request does not go upstream incomplete.
    pub(crate) fn check_forwardable(&self) -> Result<()> {
        if self.kept_lost {
            return Error::e_explain(
                ErrorType::InternalError,
                "a phase read more request body than can be kept for forwarding",
            );
        }
        Ok(())
    }

    /// Whether everything of the request body has been handed out for
    /// forwarding.
    pub(crate) fn is_forwarded_body_done(&self) -> bool {
        self.kept.is_empty() && self.downstream.is_body_done()
    }

    /// Whether the whole request body has been read from the client.
    pub fn is_body_done(&self) -> bool {
        self.downstream.is_body_done()
    }

    /// The request trailers, once the body was read to its end.
    pub fn request_trailers(&self) -> Option<&HeaderMap> {
        self.downstream.trailers()
    }

    /// Write a response head to the client; with `end_of_stream` the
    /// response ends there (no body). A 1xx head is interim.
    ///
    /// Over HTTP/1 a final head with a body to follow is held until the
    /// first piece of body or the end of the response, so that a small
    /// response leaves in one write; call [`flush`](Self::flush) to send it
    /// before a body that is not ready yet.
    ///
    /// # Errors
    ///
    /// When a final head was already written, or writing fails.
    ///
    /// # Examples
    ///
    /// ```
    /// # use pingora_core::header::ResponseHeader;
    /// # use pingora_proxy::Session;
    /// # async fn answer(session: &mut Session) -> pingora_error::Result<()> {
    /// let mut resp = ResponseHeader::build(403, None)?;
    /// resp.insert_header("Content-Length", "6")?;
    /// session.write_response_header(Box::new(resp), false).await?;
    /// session.write_response_body(Some("denied".into()), true).await?;
    /// # Ok(()) }
    /// ```
    pub async fn write_response_header(
        &mut self,
        resp: Box<ResponseHeader>,
        end_of_stream: bool,
    ) -> Result<()> {
        self.write_head(*resp, end_of_stream).await?;
        if end_of_stream {
            self.finish_response(None).await?;
        }
        Ok(())
    }

    /// Write a response head given by value, through the modules' filters
    /// when it is a final one: what
    /// [`write_response_header`](Self::write_response_header) does with a
    /// boxed one.
    pub(crate) async fn write_head(
        &mut self,
        mut resp: ResponseHeader,
        end_of_stream: bool,
    ) -> Result<()> {
        let status = resp.status();
        let last = !status.is_informational();
        if last && !self.modules.is_empty() {
            self.modules
                .response_header_filter(&mut resp, end_of_stream)
                .await?;
        }
        // A server shutting down answers requests in flight, but tells
        // their clients not to send another one.
        if self.shutdown.as_ref().is_some_and(|s| *s.borrow()) {
            self.downstream.set_keepalive(false);
        }
        self.downstream.write_response_header(resp).await?;
        if !status.is_informational() || status == http::StatusCode::SWITCHING_PROTOCOLS {
            self.response_status = Some(status.as_u16());
        }
        Ok(())
    }

    /// Send a response head held back by
    /// [`write_response_header`](Self::write_response_header).
    ///
    /// # Errors
    ///
    /// When writing fails.
    pub async fn flush(&mut self) -> Result<()> {
        self.downstream.flush().await
    }

    /// Write a piece of the response body (none: nothing to write); with
    /// `end_of_stream` the response ends after it.
    ///
    /// # Errors
    ///
    /// Before a head is written, past the announced length, or when writing
    /// fails.
    pub async fn write_response_body(
        &mut self,
        data: Option<Bytes>,
        end_of_stream: bool,
    ) -> Result<()> {
        self.write_body(data, end_of_stream).await?;
        if end_of_stream {
            self.finish_response(None).await?;
        }
        Ok(())
    }

    /// Write a piece of the response body through the modules' filters;
    /// `end` tells them it is the last.
    pub(crate) async fn write_body(&mut self, mut data: Option<Bytes>, end: bool) -> Result<()> {
        if !self.modules.is_empty() && !self.modules_response_ended {
            self.modules.response_body_filter(&mut data, end)?;
            self.modules_response_ended = end;
        }
        match data.filter(|d| !d.is_empty()) {
            Some(data) => self.write_raw(&data).await,
            None => Ok(()),
        }
    }

    /// Write bytes to the client as they are: response body past every
    /// filter, or a tunnel's bytes.
    pub(crate) async fn write_raw(&mut self, data: &[u8]) -> Result<()> {
        self.downstream.write_body(data).await?;
        self.body_bytes_sent += data.len() as u64;
        Ok(())
    }

    /// End the response, with trailers when the protocol carries them.
    ///
    /// # Errors
    ///
    /// When the body is shorter than announced or writing fails.
    pub async fn finish_response(&mut self, trailers: Option<&HeaderMap>) -> Result<()> {
        if self.modules.is_empty() || self.response_status.is_none() {
            return self.downstream.finish_response(trailers).await;
        }
        if !self.modules_response_ended {
            self.write_body(None, true).await?;
        }
        let mut trailers = trailers.map(|t| Box::new(t.clone()));
        if let Some(bytes) = self.modules.response_trailer_filter(&mut trailers)? {
            self.write_raw(&bytes).await?;
        }
        self.downstream.finish_response(trailers.as_deref()).await
    }

    /// Answer with a bodyless error `status` and close the connection
    /// afterwards. Does nothing when a response already started.
    ///
    /// # Errors
    ///
    /// When writing fails.
    pub async fn respond_error(&mut self, status: u16) -> Result<()> {
        if self.response_started() {
            return Ok(());
        }
        // Bodyless error responses always close the connection.
        self.downstream.respond_error(status).await?;
        self.response_status = Some(status);
        // What the downstream session wrote, for `response_written`.
        let mut head = ResponseHeader::build(status, Some(2))?;
        head.insert_header("Content-Length", "0")?;
        head.insert_header("Connection", "close")?;
        self.error_head = Some(Box::new(head));
        Ok(())
    }

    /// Answer with status `status` and `body` (sent with its
    /// `Content-Length`), and end the response. Does nothing when a
    /// response already started.
    ///
    /// Unlike the bodyless [`respond_error`](Self::respond_error), the
    /// client connection stays open for the next request when keep-alive
    /// allows: the rest of an unread request body is drained first (up to
    /// [`max_drain_bytes`](pingora_core::protocols::http::v1::H1Config::max_drain_bytes),
    /// past which it closes).
    ///
    /// # Errors
    ///
    /// When `status` is not a valid status, or writing fails.
    ///
    /// # Examples
    ///
    /// ```
    /// # use pingora_core::upstreams::HttpPeer;
    /// # use pingora_error::Result;
    /// # use pingora_proxy::{ProxyHttp, Session};
    /// struct Gateway;
    ///
    /// impl ProxyHttp for Gateway {
    ///     type CTX = ();
    ///     fn new_ctx(&self) {}
    /// #   async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> Result<Box<HttpPeer>> {
    /// #       unimplemented!()
    /// #   }
    ///     async fn request_filter(&self, session: &mut Session, _: &mut ()) -> Result<bool> {
    ///         if session.get_header("authorization").is_none() {
    ///             session.respond_error_with_body(403, "no login".into()).await?;
    ///             return Ok(true);
    ///         }
    ///         Ok(false)
    ///     }
    /// }
    /// ```
    pub async fn respond_error_with_body(&mut self, status: u16, body: Bytes) -> Result<()> {
        if self.response_started() {
            return Ok(());
        }
        let mut resp = ResponseHeader::build(status, Some(2))?;
        resp.insert_header("Content-Length", body.len().to_string())?;
        self.write_head(resp, body.is_empty()).await?;
        self.write_response_body(Some(body), true).await
    }

    /// The final response head written to the client, once written (as
    /// the framing left it: `Connection: close`, `Transfer-Encoding` ...).
    pub fn response_written(&self) -> Option<&ResponseHeader> {
        self.downstream
            .response_written()
            .or(self.error_head.as_deref())
    }

    /// Whether a final response head was written to the client.
    pub const fn response_started(&self) -> bool {
        self.response_status.is_some()
    }

    /// The status of the final response written, if any.
    pub const fn response_status(&self) -> Option<u16> {
        self.response_status
    }

    /// Request body bytes read from the client so far.
    pub const fn body_bytes_read(&self) -> u64 {
        self.body_bytes_read
    }

    /// Response body bytes written to the client so far.
    pub const fn body_bytes_sent(&self) -> u64 {
        self.body_bytes_sent
    }

    /// The bytes of the request field `name`, empty when it is absent
    /// (or repeated).
    pub fn get_header_bytes(&self, name: &str) -> &[u8] {
        self.get_header(name).map_or(&[], |v| v.as_bytes())
    }

    /// Whether the client speaks HTTP/2 on this request.
    pub const fn is_http2(&self) -> bool {
        matches!(self.downstream, ServerSession::H2(_))
    }

    /// Keep the client connection open after this request, waiting up to
    /// `Some(seconds)` for the next request, or close it (`None`).
    /// Closing always wins over a later `Some`; call it before the
    /// response head is written, so the head says `Connection: close`.
    ///
    /// `Some(0)` keeps the connection alive with the listener's
    /// [`idle_timeout`](pingora_core::protocols::http::v1::H1Config::idle_timeout)
    /// (a connection is never kept without a bound). The timeout holds for
    /// the rest of the connection's life, but a connection parked while
    /// idle resumes with its listener's setting. An HTTP/2 stream does not
    /// own its connection: there only `None` does something (nothing).
    pub fn set_keepalive(&mut self, seconds: Option<u64>) {
        match seconds {
            None => self.downstream.set_keepalive(false),
            Some(0) => {}
            Some(secs) => self.downstream.set_idle_timeout(Duration::from_secs(secs)),
        }
    }

    /// How long one read of request body from the client may wait, for
    /// this request only; `None` goes back to the listener's setting
    /// ([`H1Config::body_read_timeout`](pingora_core::protocols::http::v1::H1Config::body_read_timeout),
    /// or the HTTP/2 stream read timeout).
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) {
        self.downstream.set_read_timeout(timeout);
    }

    /// How long one write to the client may wait, for this request only;
    /// `None` goes back to the listener's setting.
    pub fn set_write_timeout(&mut self, timeout: Option<Duration>) {
        self.downstream.set_write_timeout(timeout);
    }

    /// Whether the client connection served requests before this one.
    pub const fn is_downstream_reused(&self) -> bool {
        self.reused
    }

    /// Whether the request asks to switch protocols (for example to a
    /// websocket).
    pub fn is_upgrade_request(&self) -> bool {
        self.downstream.is_upgrade_request()
    }

    /// The version-neutral downstream session underneath.
    pub const fn downstream_session(&self) -> &ServerSession {
        &self.downstream
    }

    pub(crate) fn into_downstream(self) -> ServerSession {
        self.downstream
    }
}
