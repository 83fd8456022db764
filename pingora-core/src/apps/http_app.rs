//! A plain HTTP server app: implement [`ServeHttp`] (request in, response
//! out) and serve it with [`HttpServer`], which handles HTTP/1 parsing,
//! limits, keep-alive and pipelining.
//!
//! The request body is read whole before [`ServeHttp::response`] runs, up
//! to a limit (1 MiB by default, 413 beyond it), and the response body is
//! given whole. Apps that stream bodies use the sessions in
//! [`crate::protocols::http::v1`] directly.
//!
//! # Examples
//!
//! ```no_run
//! use async_trait::async_trait;
//! use pingora_core::apps::http_app::{HttpRequest, HttpResponse, HttpServer, ServeHttp};
//! use pingora_core::apps::ServerApp;
//! use std::sync::Arc;
//!
//! struct Greeter;
//!
//! #[async_trait]
//! impl ServeHttp for Greeter {
//!     async fn response(&self, request: HttpRequest) -> HttpResponse {
//!         let name = request.header().uri().path().trim_start_matches('/');
//!         HttpResponse::text(200, format!("hello {name}\n"))
//!     }
//! }
//!
//! # async fn run(stream: pingora_core::protocols::Stream) {
//! let app = Arc::new(HttpServer::new(Greeter));
//! let (_tx, shutdown) = tokio::sync::watch::channel(false);
//! app.process_new(stream, &shutdown).await;
//! # }
//! ```

use super::{Handover, ListenerOptions, Served, ServerApp};
use crate::header::{HeaderList, RequestHeader, ResponseHeader};
use crate::protocols::Stream;
use crate::protocols::http::ServerSession;
use crate::protocols::http::v1::{H1Config, NextRequest, ServerConnection};
use crate::protocols::http::v2::{self, H2Options};
use crate::report::CatchUnwind;
use crate::server::{ServerConf, ShutdownWatch};
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap};
use http::{StatusCode, Version};
use pingora_error::{Error, ErrorType, Result};
use std::sync::Arc;

/// A whole request, as a [`ServeHttp`] app sees it.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    header: RequestHeader,
    body: Bytes,
    trailers: Option<HeaderMap>,
}

impl HttpRequest {
    /// A request from its parts (for testing apps directly).
    pub const fn new(header: RequestHeader, body: Bytes, trailers: Option<HeaderMap>) -> Self {
        Self {
            header,
            body,
            trailers,
        }
    }

    /// The request head.
    pub const fn header(&self) -> &RequestHeader {
        &self.header
    }

    /// The request body (empty when there was none).
    pub const fn body(&self) -> &Bytes {
        &self.body
    }

    /// Trailers of a chunked request body.
    pub const fn trailers(&self) -> Option<&HeaderMap> {
        self.trailers.as_ref()
    }
}

/// A whole response from a [`ServeHttp`] app.
///
/// Content-Length is filled in from the body unless the head already has
/// framing fields; trailers make the response chunked (HTTP/1.1 clients).
#[derive(Debug, Clone)]
pub struct HttpResponse {
    header: ResponseHeader,
    body: Bytes,
    trailers: Option<HeaderMap>,
}

impl HttpResponse {
    /// A response with `header` and `body`.
    pub const fn new(header: ResponseHeader, body: Bytes) -> Self {
        Self {
            header,
            body,
            trailers: None,
        }
    }

    /// A `text/plain` response; an invalid `status` becomes 500.
    pub fn text(status: u16, body: impl Into<Bytes>) -> Self {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut header = ResponseHeader::from_parts(
            status,
            Version::HTTP_11,
            None,
            HeaderList::with_capacity(2),
        );
        // A static, valid name and value cannot fail to insert.
        let _ = header.insert_header("Content-Type", "text/plain; charset=utf-8");
        Self::new(header, body.into())
    }

    /// Send `trailers` after the body.
    #[must_use]
    pub fn with_trailers(mut self, trailers: HeaderMap) -> Self {
        self.trailers = Some(trailers);
        self
    }

    /// The response head.
    pub const fn header(&self) -> &ResponseHeader {
        &self.header
    }

    /// The response head, to add fields.
    pub const fn header_mut(&mut self) -> &mut ResponseHeader {
        &mut self.header
    }

    /// The response body.
    pub const fn body(&self) -> &Bytes {
        &self.body
    }
}

/// A simple HTTP server: one method turns a request into a response.
#[async_trait]
pub trait ServeHttp: Send + Sync + 'static {
    /// Answer `request`.
    async fn response(&self, request: HttpRequest) -> HttpResponse;
}

/// A [`ServerApp`] that serves a [`ServeHttp`] over HTTP/1 with keep-alive.
#[derive(Debug)]
pub struct HttpServer<S> {
    app: S,
    config: H1Config,
    max_request_body: usize,
    h2: H2Options,
    h2c: bool,
}

impl<S: ServeHttp> HttpServer<S> {
    /// Serve `app` with default limits and timeouts.
    pub fn new(app: S) -> Self {
        Self {
            app,
            config: H1Config::default(),
            max_request_body: 1024 * 1024,
            h2: H2Options::default(),
            h2c: false,
        }
    }

    /// Use `config`'s HTTP/1 limits and timeouts.
    #[must_use]
    pub const fn with_config(mut self, config: H1Config) -> Self {
        self.config = config;
        self
    }

    /// Answer requests with a body over `max` bytes with 413.
    #[must_use]
    pub const fn with_max_request_body(mut self, max: usize) -> Self {
        self.max_request_body = max;
        self
    }

    /// Use `options`' HTTP/2 settings and limits. HTTP/2 is served on TLS
    /// connections whose ALPN chose `h2`, and on every connection with
    /// [`with_h2c`](Self::with_h2c).
    #[must_use]
    pub const fn with_h2_options(mut self, options: H2Options) -> Self {
        self.h2 = options;
        self
    }

    /// Use the HTTP/2 settings of `conf`'s `h2` section
    /// ([`ServerConf::h2_options`]), as a service built from a server's
    /// configuration should.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use pingora_core::apps::http_app::{HelloApp, HttpServer};
    /// use pingora_core::server::Server;
    /// use pingora_core::services::listening::ListeningService;
    /// use std::sync::Arc;
    ///
    /// let mut server = Server::new(None).unwrap();
    /// server.bootstrap();
    /// let app = HttpServer::new(HelloApp)
    ///     .with_server_conf(server.configuration())
    ///     .with_h2c(true);
    /// let mut service = ListeningService::new("hello", Arc::new(app));
    /// service.add_tcp("127.0.0.1:8080");
    /// server.add_service(service);
    /// server.run_forever();
    /// ```
    #[must_use]
    pub fn with_server_conf(self, conf: &ServerConf) -> Self {
        self.with_h2_options(conf.h2_options())
    }

    /// Also serve cleartext HTTP/2 with prior knowledge (h2c, RFC 9113
    /// §3.3): a connection without ALPN `h2` that opens with the HTTP/2
    /// preface is served as HTTP/2, any other as HTTP/1.
    #[must_use]
    pub const fn with_h2c(mut self, h2c: bool) -> Self {
        self.h2c = h2c;
        self
    }

    /// The served app.
    pub const fn app(&self) -> &S {
        &self.app
    }

    /// Serve one exchange on `session`; once `shutdown` turns `true` the
    /// response closes the connection.
    async fn serve(&self, session: &mut ServerSession, shutdown: &ShutdownWatch) -> Result<()> {
        let Some((body, trailers)) = self.read_body(session).await? else {
            return Ok(());
        };
        let request = HttpRequest::new(session.req_header().clone(), body, trailers);
        // A panicking app costs this request (a 500), not the connection
        // task: the connection closes after the answer.
        let response = match CatchUnwind(self.app.response(request)).await {
            Ok(response) => response,
            Err(payload) => {
                let message = crate::report::panic_message(payload.as_ref());
                let summary = format!("{}", session.req_header().uri());
                log::error!("http app panicked: {message}, request: {summary}");
                let e = Error::explain(ErrorType::InternalError, format!("panic: {message}"));
                crate::report::report_error(&e, "panic", &summary);
                session.set_keepalive(false);
                return session.respond_error(500).await;
            }
        };
        let HttpResponse {
            mut header,
            body,
            trailers,
        } = response;
        let framed = header.has_header(header::CONTENT_LENGTH.as_str())
            || header.has_header(header::TRANSFER_ENCODING.as_str());
        if !framed {
            if trailers.is_some() {
                header.insert_header("Transfer-Encoding", "chunked")?;
            } else {
                header.insert_header("Content-Length", body.len().to_string())?;
            }
        }
        // Checked as the head goes out, so that a request that was in
        // progress when shutdown began is told too.
        if *shutdown.borrow() {
            session.set_keepalive(false);
        }
        session.write_response_header(header).await?;
        session.write_body(&body).await?;
        session.finish_response(trailers.as_ref()).await
    }

    /// Read the whole request body; `None` when it was refused with an
    /// error response.
    async fn read_body(
        &self,
        session: &mut ServerSession,
    ) -> Result<Option<(Bytes, Option<HeaderMap>)>> {
        let mut body = BytesMut::new();
        loop {
            match session.read_body_bytes().await {
                Ok(Some(data)) if body.len() + data.len() > self.max_request_body => {
                    session.respond_error(413).await?;
                    return Ok(None);
                }
                Ok(Some(data)) => body.extend_from_slice(&data),
                Ok(None) => return Ok(Some((body.freeze(), session.trailers().cloned()))),
                Err(e) => {
                    if e.etype() == &ErrorType::ReadTimedout {
                        let _ = session.respond_error(408).await;
                    }
                    return Err(e);
                }
            }
        }
    }
}

#[async_trait]
impl<S: ServeHttp> ServerApp for HttpServer<S> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        self.process_new_on(stream, shutdown, &ListenerOptions::default())
            .await
    }

    async fn process_new_on(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
        options: &ListenerOptions,
    ) -> Option<Stream> {
        // Not parkable: served to the end on this task.
        let handover = Handover::default();
        let served = self.process_connection(stream, shutdown, options, handover);
        served.await.into_reusable()
    }

    async fn process_connection(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
        options: &ListenerOptions,
        handover: Handover,
    ) -> Served {
        let config = || options.h1.unwrap_or(self.config);
        if handover.resumed {
            // An HTTP/1 connection that was parked idle.
            let conn = ServerConnection::resumed(stream, config());
            return self.serve_h1(conn, shutdown, handover).await;
        }
        let h2 = options.h2.as_ref().unwrap_or(&self.h2);
        let detected = v2::detect(stream, self.h2c, h2.handshake_timeout).await;
        let stream = match detected {
            v2::Detected::Http1(stream) => stream,
            v2::Detected::Http2(stream) => {
                let serve = |session: v2::ServerSession| {
                    let app = Arc::clone(self);
                    // HTTP/2 streams need no `Connection: close`: the
                    // connection sends GOAWAY itself.
                    let watch = shutdown.clone();
                    async move {
                        if let Err(e) = app.serve(&mut session.into(), &watch).await {
                            log::debug!("h2 exchange failed: {e}");
                        }
                    }
                };
                v2::serve_connection(stream, h2, shutdown, serve).await;
                return Served::Closed;
            }
            // A broken HTTP/2 preface, already answered with GOAWAY.
            _ => return Served::Closed,
        };
        let conn = ServerConnection::new(stream, config());
        self.serve_h1(conn, shutdown, handover).await
    }
}

impl<S: ServeHttp> HttpServer<S> {
    /// Serve requests on an HTTP/1 connection until it closes, or, when
    /// the listening service can park it, until it idles.
    async fn serve_h1(
        &self,
        mut conn: ServerConnection,
        shutdown: &ShutdownWatch,
        handover: Handover,
    ) -> Served {
        let mut watch = shutdown.clone();
        let mut stop = std::pin::pin!(async move {
            // A dropped sender counts as shutting down too.
            let _ = watch.wait_for(|stop| *stop).await;
        });
        conn.set_parkable(handover.parkable);
        loop {
            // Only the wait for a request races shutdown: a request in
            // progress is always finished, and once shutting down the
            // connection drains (see `ServerConnection::drain`).
            let next = conn.read_request_or_idle(stop.as_mut(), true).await;
            let mut session = match next {
                Ok(NextRequest::Request(session)) => ServerSession::from(session),
                Ok(NextRequest::Idle { stream, wait }) => return Served::Idle { stream, wait },
                Ok(NextRequest::Closed) => return Served::Closed,
                Err(e) => {
                    log::debug!("http request refused: {e}");
                    return Served::Closed;
                }
            };
            if let Err(e) = self.serve(&mut session, shutdown).await {
                log::debug!("http exchange failed: {e}");
                session.set_keepalive(false);
            }
            let ServerSession::H1(session) = session else {
                return Served::Closed;
            };
            match session.reuse().await {
                Some(next) => conn = next,
                None => return Served::Closed,
            }
        }
    }
}

/// An app that answers every request with its own body, for tests and as a
/// proxy origin. The response carries `X-Echo-Method` and `X-Echo-Uri`, and
/// the request trailers come back as response trailers.
#[derive(Debug, Clone, Copy, Default)]
pub struct EchoApp;

#[async_trait]
impl ServeHttp for EchoApp {
    async fn response(&self, request: HttpRequest) -> HttpResponse {
        let mut resp = HttpResponse::text(200, request.body.clone());
        let h = resp.header_mut();
        let _ = h.insert_header("X-Echo-Method", request.header.method().as_str());
        let _ = h.insert_header("X-Echo-Uri", request.header.uri().to_string());
        match request.trailers {
            Some(t) => resp.with_trailers(t),
            None => resp,
        }
    }
}

/// An app that answers every request with `Hello, world!\n`.
#[derive(Debug, Clone, Copy, Default)]
pub struct HelloApp;

#[async_trait]
impl ServeHttp for HelloApp {
    async fn response(&self, _request: HttpRequest) -> HttpResponse {
        HttpResponse::text(200, "Hello, world!\n")
    }
}
