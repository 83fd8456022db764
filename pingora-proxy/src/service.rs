//! Serving an [`HttpProxy`] on listening sockets.

use crate::session::ConnectionCtx;
use crate::{HttpProxy, ProxyHttp, Session};
use async_trait::async_trait;
use pingora_core::apps::{Handover, ListenerOptions, Served, ServerApp};
use pingora_core::listeners::{ServerAddress, TcpSocketOptions};
use pingora_core::protocols::Stream;
use pingora_core::protocols::http::ServerSession;
use pingora_core::protocols::http::v1::{NextRequest, ServerConnection};
use pingora_core::protocols::http::v2;
use pingora_core::server::{ServerConf, ShutdownWatch};
use pingora_core::services::listening::{BoundAddrs, ListeningService};
use pingora_core::services::{Service, ServiceContext};
use pingora_core::tls::TlsSettings;
use pingora_error::Result;
use std::sync::Arc;

/// A listening service that proxies HTTP with `SV`'s phases.
///
/// Plain TCP listeners ([`add_tcp`](Self::add_tcp)) serve HTTP/1, and
/// h2c too when the proxy was built
/// [`with_h2c`](crate::HttpProxy::with_h2c); TLS listeners
/// ([`add_tls`](Self::add_tls)) serve HTTP/2 or HTTP/1 as ALPN picks.
///
/// Its TCP listeners turn on `TCP_NODELAY` for every client connection,
/// as [`TcpSocketOptions`] does by default.
pub struct HttpProxyService<SV> {
    inner: ListeningService<HttpProxy<SV>>,
}

impl<SV> std::fmt::Debug for HttpProxyService<SV> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.fmt(f)
    }
}

impl<SV: ProxyHttp + 'static> HttpProxyService<SV> {
    /// A service named `name` serving an already built `proxy`, for
    /// settings [`http_proxy_service`] does not take, such as
    /// [`HttpProxy::with_downstream_config`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use pingora_proxy::{HttpProxy, HttpProxyService, ProxyHttp};
    /// # fn build<SV: ProxyHttp + 'static>(my_proxy: SV) -> pingora_error::Result<()> {
    /// use pingora_core::protocols::http::v1::H1Config;
    /// use pingora_core::server::ServerConf;
    /// use std::time::Duration;
    ///
    /// let mut h1 = H1Config::default();
    /// h1.idle_timeout = Duration::from_secs(5);
    /// let proxy = HttpProxy::new(my_proxy, &ServerConf::default())?.with_downstream_config(h1);
    /// let mut service = HttpProxyService::new("my proxy", proxy);
    /// service.add_tcp("127.0.0.1:6188");
    /// # Ok(()) }
    /// ```
    pub fn new(name: &str, proxy: HttpProxy<SV>) -> Self {
        Self {
            inner: ListeningService::new(name, Arc::new(proxy)),
        }
    }

    /// Listen on a TCP address with the default options (`TCP_NODELAY`
    /// on).
    pub fn add_tcp(&mut self, addr: &str) {
        self.inner.add_tcp(addr);
    }

    /// Listen on a TCP address with `options`, as given.
    pub fn add_tcp_with_settings(&mut self, addr: &str, options: TcpSocketOptions) {
        self.inner.add_tcp_with_settings(addr, options);
    }

    /// Listen on a TCP address with TLS, presenting the certificate chain
    /// and key of these PEM files, and offering `h2` and `http/1.1` with
    /// ALPN: clients that pick `h2` are served HTTP/2. `TCP_NODELAY` is on.
    ///
    /// # Errors
    ///
    /// When the files cannot be read or hold no usable certificate or key,
    /// or no TLS backend is compiled in.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use pingora_proxy::{HttpProxyService, ProxyHttp};
    /// # fn add<SV: ProxyHttp + 'static>(service: &mut HttpProxyService<SV>) -> pingora_error::Result<()> {
    /// service.add_tls("0.0.0.0:6443", "/etc/proxy/cert.pem", "/etc/proxy/key.pem")?;
    /// # Ok(()) }
    /// ```
    pub fn add_tls(&mut self, addr: &str, cert_path: &str, key_path: &str) -> Result<()> {
        let mut settings = TlsSettings::with_cert_files(cert_path, key_path)?;
        settings.enable_h2();
        self.add_tls_with_settings(addr, None, settings)
    }

    /// Listen on a TCP address with TLS `settings`, as given (set their
    /// ALPN to [`Alpn::H2H1`](pingora_core::tls::Alpn::H2H1) to serve
    /// HTTP/2), and socket `options` (default: `TCP_NODELAY` on).
    ///
    /// # Errors
    ///
    /// When the settings do not build an acceptor (see
    /// [`TlsSettings::build`]).
    pub fn add_tls_with_settings(
        &mut self,
        addr: &str,
        options: Option<TcpSocketOptions>,
        settings: TlsSettings,
    ) -> Result<()> {
        let options = options.unwrap_or_default();
        let acceptor = settings.build()?;
        self.inner.add_tls_with_settings(addr, options, acceptor);
        Ok(())
    }

    /// Listen on a Unix domain socket path, with file mode `mode`.
    pub fn add_uds(&mut self, path: &str, mode: Option<u32>) {
        self.inner.add_uds(path, mode);
    }

    /// Listen on `addr`, with TLS `settings` when given, using the HTTP/1
    /// and HTTP/2 limits and timeouts of `options` instead of the proxy's
    /// for the connections it accepts: for example a short header timeout
    /// and a body limit on a public port.
    ///
    /// # Errors
    ///
    /// When the TLS settings do not build an acceptor.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use pingora_proxy::{HttpProxyService, ProxyHttp};
    /// # fn add<SV: ProxyHttp + 'static>(service: &mut HttpProxyService<SV>) -> pingora_error::Result<()> {
    /// use pingora_core::apps::ListenerOptions;
    /// use pingora_core::listeners::{ServerAddress, TcpSocketOptions};
    /// use pingora_core::protocols::http::v1::H1Config;
    /// use std::time::Duration;
    ///
    /// let mut h1 = H1Config::default();
    /// h1.header_timeout = Duration::from_secs(10);
    /// let addr = ServerAddress::Tcp("0.0.0.0:80".into(), TcpSocketOptions::default());
    /// service.add_listener(addr, None, ListenerOptions::default().with_h1(h1))?;
    /// # Ok(()) }
    /// ```
    pub fn add_listener(
        &mut self,
        addr: ServerAddress,
        settings: Option<TlsSettings>,
        options: ListenerOptions,
    ) -> Result<()> {
        let acceptor = settings.map(TlsSettings::build).transpose()?;
        self.inner.add_listener(addr, acceptor, options);
        Ok(())
    }

    /// Run on `threads` threads instead of the server's setting.
    pub fn set_threads(&mut self, threads: usize) {
        self.inner.set_threads(threads);
    }

    /// Ask `filter` about every client connection of this service's
    /// listeners, after any PROXY header and before TLS and HTTP; the
    /// ones it refuses are closed at once. See
    /// [`ConnectionFilter`](pingora_core::listeners::ConnectionFilter).
    pub fn set_connection_filter(
        &mut self,
        filter: Arc<dyn pingora_core::listeners::ConnectionFilter>,
    ) {
        self.inner.set_connection_filter(filter);
    }

    /// The proxy app.
    pub fn app(&self) -> &Arc<HttpProxy<SV>> {
        self.inner.app()
    }

    /// A handle that gives the bound addresses once the service is ready.
    pub fn bound_addrs(&self) -> BoundAddrs {
        self.inner.bound_addrs()
    }

    /// A handle that counts this service's idle client connections parked
    /// right now (see [`ListeningService::parked_connections`]).
    pub fn parked_connections(&self) -> pingora_core::services::listening::ParkedCount {
        self.inner.parked_connections()
    }
}

#[async_trait]
impl<SV: ProxyHttp + 'static> Service for HttpProxyService<SV> {
    async fn start_service(&mut self, ctx: ServiceContext) -> Result<()> {
        self.inner.start_service(ctx).await
    }

    fn name(&self) -> &str {
        self.inner.name()
    }

    fn threads(&self) -> Option<usize> {
        self.inner.threads()
    }
}

/// A proxy service running `inner`'s phases with the settings of `conf`
/// (a [`Server`](pingora_core::server::Server)'s configuration): those
/// [`HttpProxy::new`] takes, and the HTTP/2 settings of its `h2` section
/// ([`ServerConf::h2_options`]) for client connections. Add listeners
/// with `add_tcp` and hand it to the server.
///
/// When the connector cannot be built from `conf` (its `ca_file` is
/// unreadable) this logs the error and exits the process with status 1,
/// as a server does for any start-up failure;
/// [`try_http_proxy_service`] returns the error instead.
///
/// # Examples
///
/// ```no_run
/// use async_trait::async_trait;
/// use pingora_core::server::Server;
/// use pingora_core::upstreams::HttpPeer;
/// use pingora_proxy::{http_proxy_service, ProxyHttp, Session};
///
/// struct ToOrigin;
///
/// impl ProxyHttp for ToOrigin {
///     type CTX = ();
///     fn new_ctx(&self) {}
///     async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> pingora_error::Result<Box<HttpPeer>> {
///         let addr: std::net::SocketAddr = "127.0.0.1:8000".parse().unwrap();
///         Ok(Box::new(HttpPeer::new(addr, false, "")))
///     }
/// }
///
/// let mut server = Server::new(None).unwrap();
/// server.bootstrap();
/// let mut proxy = http_proxy_service(server.configuration(), ToOrigin);
/// proxy.add_tcp("127.0.0.1:6188");
/// server.add_service(proxy);
/// server.run_forever();
/// ```
pub fn http_proxy_service<SV>(conf: &Arc<ServerConf>, inner: SV) -> HttpProxyService<SV>
where
    SV: ProxyHttp + 'static,
{
    try_http_proxy_service(conf, inner).unwrap_or_else(|e| {
        log::error!("cannot build the proxy service: {e}");
        eprintln!("cannot build the proxy service: {e}");
        std::process::exit(1)
    })
}

/// [`http_proxy_service`], returning the error instead of exiting.
///
/// # Errors
///
/// When the upstream connector cannot be built (the CA file is unreadable).
pub fn try_http_proxy_service<SV>(conf: &Arc<ServerConf>, inner: SV) -> Result<HttpProxyService<SV>>
where
    SV: ProxyHttp + 'static,
{
    let proxy = HttpProxy::new(inner, conf)?;
    Ok(HttpProxyService::new("Pingora HTTP Proxy Service", proxy))
}

#[async_trait]
impl<SV: ProxyHttp + 'static> ServerApp for HttpProxy<SV> {
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
        let served = serve_connection(self, stream, shutdown, options, handover);
        served.await.into_reusable()
    }

    async fn process_connection(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
        options: &ListenerOptions,
        handover: Handover,
    ) -> Served {
        serve_connection(self, stream, shutdown, options, handover).await
    }
}

/// Serve one client connection, HTTP/1 or HTTP/2 as negotiated, with
/// the listener's settings where it has its own.
async fn serve_connection<SV: ProxyHttp + 'static>(
    proxy: &Arc<HttpProxy<SV>>,
    stream: Stream,
    shutdown: &ShutdownWatch,
    options: &ListenerOptions,
    handover: Handover,
) -> Served {
    let h1 = || options.h1.unwrap_or(proxy.downstream_config());
    let conn = if handover.resumed {
        // An HTTP/1 connection that was parked idle.
        ServerConnection::resumed(stream, h1())
    } else {
        let h2 = options.h2.as_ref().unwrap_or(proxy.h2_options());
        // This future lives as long as the connection, and is as large as
        // its largest state: the HTTP/2 connection (like the h2c sniffing
        // in `detect`) is boxed so that an HTTP/1 connection does not
        // carry its size (kilobytes) all its life.
        match v2::detect(stream, proxy.h2c(), h2.handshake_timeout).await {
            v2::Detected::Http1(stream) => ServerConnection::new(stream, h1()),
            v2::Detected::Http2(stream) => {
                Box::pin(serve_h2(proxy, stream, h2, shutdown)).await;
                return Served::Closed;
            }
            // Already answered with an HTTP/2 connection error.
            _ => return Served::Closed,
        }
    };
    serve_h1(proxy, conn, shutdown, handover.parkable).await
}

/// Completes once `shutdown` turns true (or its sender is gone), and is
/// cheap to poll again and again: polled once, the wait keeps this task's
/// waker registered, so after that it is polled again only once the value
/// changed (an atomic load). Polling the wait itself takes the notifier's
/// lock, and the HTTP/1 loop races it with every keep-alive wait.
async fn stop_signal(mut shutdown: ShutdownWatch) {
    let changed = shutdown.clone();
    // Unconstrained by tokio's task budget: a first poll that the budget
    // cut short would not register the waker.
    let wait = tokio::task::unconstrained(shutdown.wait_for(|stop| *stop));
    let mut wait = std::pin::pin!(wait);
    let mut registered = false;
    std::future::poll_fn(|cx| {
        if registered && matches!(changed.has_changed(), Ok(false)) {
            return std::task::Poll::Pending;
        }
        registered = true;
        wait.as_mut().poll(cx).map(|_| ())
    })
    .await;
}

/// The HTTP/1 adapter: read requests one after another on the connection
/// and run each through the shared phases.
///
/// This future lives as long as the connection, so it is kept small:
/// while the connection waits for a request, or for the rest of a head,
/// it holds only that read (and no buffer while nothing arrived, see
/// [`ServerConnection::read_request`]). Running the phases, whose state
/// is several kilobytes, happens in a future boxed for that one request.
async fn serve_h1<SV: ProxyHttp + 'static>(
    proxy: &Arc<HttpProxy<SV>>,
    mut conn: ServerConnection,
    shutdown: &ShutdownWatch,
    parkable: bool,
) -> Served {
    // One wait for the whole connection, not a new one per request.
    let mut stop = std::pin::pin!(stop_signal(shutdown.clone()));
    // Lent to each request's session and taken back.
    let mut watch = Some(shutdown.clone());
    let mut conn_ctx = None;
    loop {
        // Handed back idle once silent for `park_idle_after`, to be
        // parked; not while it holds a connection context, which parking
        // would drop (see `Session::set_connection_ctx`).
        conn.set_parkable(parkable && conn_ctx.is_none());
        let reused = conn.served() > 0;
        // Only the wait for a request races shutdown: a request in
        // progress is always finished, and once shutting down the
        // connection drains (see `ServerConnection::drain`).
        let next = conn.read_request_or_idle(stop.as_mut(), true).await;
        let session = match next {
            Ok(NextRequest::Request(h1)) => Session::new(h1, reused),
            Ok(NextRequest::Idle { stream, wait }) => return Served::Idle { stream, wait },
            Ok(NextRequest::Closed) => return Served::Closed,
            Err(e) => {
                // Already answered (400, 414, 431) and closed.
                log::debug!("request refused: {e}");
                return Served::Closed;
            }
        };
        let serving = serve_h1_request(proxy, session, &mut watch, &mut conn_ctx);
        match Box::pin(serving).await {
            Some(next) => conn = next,
            None => return Served::Closed,
        }
    }
}

/// Run one request through the phases and hand back the connection when
/// it can serve another.
async fn serve_h1_request<SV: ProxyHttp + 'static>(
    proxy: &Arc<HttpProxy<SV>>,
    mut session: Session,
    watch: &mut Option<ShutdownWatch>,
    conn_ctx: &mut Option<ConnectionCtx>,
) -> Option<ServerConnection> {
    session.set_shutdown_watch(watch.take());
    session.put_connection_ctx(conn_ctx.take());
    proxy.process_request(&mut session).await;
    *watch = session.take_shutdown_watch();
    *conn_ctx = session.take_connection_ctx();
    next_request(session).await
}

/// The HTTP/2 adapter: each stream is a request, run through the shared
/// phases on its own task; the connection task only reads frames.
async fn serve_h2<SV: ProxyHttp + 'static>(
    proxy: &Arc<HttpProxy<SV>>,
    stream: Stream,
    options: &v2::H2Options,
    shutdown: &ShutdownWatch,
) {
    let watch = shutdown.clone();
    let serve = |h2: v2::ServerSession| {
        let proxy = Arc::clone(proxy);
        let watch = watch.clone();
        async move {
            // Streams share the connection: "reused" would say nothing
            // about the one this stream runs on.
            let mut session = Session::new(h2, false);
            session.set_shutdown_watch(Some(watch));
            proxy.process_request(&mut session).await;
        }
    };
    v2::serve_connection(stream, options, shutdown, serve).await;
}

/// The connection for the next request, when keep-alive allows.
async fn next_request(session: Session) -> Option<ServerConnection> {
    match session.into_downstream() {
        ServerSession::H1(h1) => h1.reuse().await,
        // Other versions multiplex requests on their own connection task.
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pingora_core::upstreams::HttpPeer;
    use pingora_error::{Error, ErrorType};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Poll, Wake, Waker};

    struct CountWakes(AtomicUsize);

    impl Wake for CountWakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// The shutdown signal is polled once, with the task's budget spent,
    /// and still wakes the task when shutdown begins; until then, polling
    /// it again stays pending.
    #[tokio::test]
    async fn stop_signal_wakes_the_task_even_if_first_polled_out_of_budget() {
        let (tx, rx) = tokio::sync::watch::channel(false);
        let mut stop = std::pin::pin!(stop_signal(rx));
        let wakes = Arc::new(CountWakes(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&wakes));
        let mut cx = Context::from_waker(&waker);
        // Spend the budget of this task (the test's own).
        let mut spent = false;
        for _ in 0..10_000 {
            let mut unit = std::pin::pin!(tokio::task::consume_budget());
            if unit.as_mut().poll(&mut cx).is_pending() {
                spent = true;
                break;
            }
        }
        assert!(spent, "the budget should run out");
        assert!(stop.as_mut().poll(&mut cx).is_pending());
        assert!(stop.as_mut().poll(&mut cx).is_pending());
        let before = wakes.0.load(Ordering::SeqCst);
        tx.send(true).unwrap();
        // Woken by the notifier, there and then.
        assert!(wakes.0.load(Ordering::SeqCst) > before);
        assert_eq!(stop.as_mut().poll(&mut cx), Poll::Ready(()));
    }

    struct Nowhere;

    impl ProxyHttp for Nowhere {
        type CTX = ();
        fn new_ctx(&self) {}
        async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> Result<Box<HttpPeer>> {
            Error::e_explain(ErrorType::InternalError, "never asked")
        }
    }

    /// What every connection keeps for as long as it is open: the future
    /// serving it, which holds the HTTP/1 wait for a request but not the
    /// request phases, the HTTP/2 connection or h2c sniffing (kilobytes;
    /// boxed while they run). Debug builds lay futures out more loosely
    /// than release ones, so the budget is the debug size with a margin.
    #[tokio::test]
    async fn a_connection_future_stays_small() {
        const BUDGET: usize = 704;
        let proxy = Arc::new(HttpProxy::new(Nowhere, &ServerConf::default()).unwrap());
        let (_tx, shutdown) = tokio::sync::watch::channel(false);
        let (stream, _client) = tokio::io::duplex(64);
        let options = ListenerOptions::default();
        let handover = Handover::accepted(true);
        let serving = serve_connection(&proxy, Box::new(stream), &shutdown, &options, handover);
        let size = size_of_val(&serving);
        assert!(size <= BUDGET, "{size} bytes per connection");
    }

    #[test]
    fn h2_settings_come_from_the_conf() {
        let conf = Arc::new(ServerConf::from_yaml("h2:\n  max_concurrent_streams: 7\n").unwrap());
        let service = try_http_proxy_service(&conf, Nowhere).unwrap();
        assert_eq!(service.app().h2_options().max_concurrent_streams, 7);
        assert_eq!(*service.app().h2_options(), conf.h2_options());
    }
}
