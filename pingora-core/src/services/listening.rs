//! [`ListeningService`]: accepts connections on its listeners and serves each
//! with an app.

use super::admit::admit;
use super::park;
pub use super::park::ParkedCount;
use super::{Service as ServiceTrait, ServiceContext};
use crate::apps::{Handover, ListenerOptions, Served, ServerApp};
use crate::listeners::{
    AcceptBackoff, ConnectionFilter, Listener, Listeners, ServerAddress, TcpSocketOptions,
};
use crate::protocols::{SocketAddr, Stream};
use crate::server::{ShutdownWatch, Spawner};
use crate::tls::TlsAcceptor;
use async_trait::async_trait;
use parking_lot::Mutex;
use pingora_error::Result;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;

/// A service that accepts connections on its [`Listeners`] and hands each to
/// its app, on its own task.
///
/// At the shutdown signal its app is told to drain (the app's
/// [`ShutdownWatch`] is the server's
/// [`draining`](crate::services::ServiceContext::draining) watch) while it
/// goes on accepting; once the grace period is over it stops accepting,
/// closes its listening sockets (unless a new process has taken them
/// over), waits for the connections in flight, then calls the app's
/// [`cleanup`](ServerApp::cleanup).
///
/// # Examples
///
/// ```no_run
/// # use pingora_core::apps::ServerApp;
/// # use pingora_core::services::listening::ListeningService;
/// # use std::sync::Arc;
/// # fn make<A: ServerApp + Send + Sync + 'static>(app: A) {
/// let mut service = ListeningService::new("echo", Arc::new(app));
/// service.add_tcp("0.0.0.0:6142");
/// service.add_uds("/tmp/echo.sock", Some(0o660));
/// # }
/// ```
pub struct ListeningService<A> {
    name: String,
    listeners: Listeners,
    /// The TLS acceptor of each listener, by its index in `listeners`.
    tls: Vec<Option<TlsAcceptor>>,
    /// The options of each listener handed to the app, by index; missing
    /// ones are the default.
    options: Vec<Arc<ListenerOptions>>,
    app: Arc<A>,
    threads: Option<usize>,
    bound: BoundAddrs,
    parked: ParkedCount,
    filter: Option<Arc<dyn ConnectionFilter>>,
}

/// [`ListeningService`] under the name Pingora programs use
/// (`services::listening::Service`).
pub type Service<A> = ListeningService<A>;

impl<A> std::fmt::Debug for ListeningService<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListeningService")
            .field("name", &self.name)
            .field("listeners", &self.listeners)
            .finish_non_exhaustive()
    }
}

impl<A> ListeningService<A> {
    /// A service named `name` serving `app`, with no listener yet.
    pub fn new(name: &str, app: Arc<A>) -> Self {
        Self::with_listeners(name, Listeners::new(), app)
    }

    /// A service named `name` serving `app` on `listeners`.
    pub fn with_listeners(name: &str, listeners: Listeners, app: Arc<A>) -> Self {
        Self {
            name: name.to_string(),
            tls: vec![None; listeners.len()],
            options: Vec::new(),
            listeners,
            app,
            threads: None,
            bound: BoundAddrs::default(),
            parked: ParkedCount::default(),
            filter: None,
        }
    }

    /// Listen on a TCP address with default options.
    pub fn add_tcp(&mut self, addr: &str) {
        self.listeners.add_tcp(addr);
    }

    /// Listen on a TCP address with `options`.
    pub fn add_tcp_with_settings(&mut self, addr: &str, options: TcpSocketOptions) {
        self.listeners.add_tcp_with_settings(addr, options);
    }

    /// Listen on a Unix domain socket path, with file mode `mode`.
    pub fn add_uds(&mut self, path: &str, mode: Option<u32>) {
        self.listeners.add_uds(path, mode);
    }

    /// Listen on `addr`.
    pub fn add_address(&mut self, addr: ServerAddress) {
        self.listeners.add_address(addr);
    }

    /// Listen on a TCP address with `options`, running a TLS handshake
    /// with `acceptor` on each accepted connection before the app sees
    /// it. The handshake runs on the connection's own task, bounded by
    /// the acceptor's handshake timeout; a failed one closes the
    /// connection.
    pub fn add_tls_with_settings(
        &mut self,
        addr: &str,
        options: TcpSocketOptions,
        acceptor: TlsAcceptor,
    ) {
        self.listeners.add_tcp_with_settings(addr, options);
        self.tls.resize(self.listeners.len() - 1, None);
        self.tls.push(Some(acceptor));
    }

    /// Listen on `addr`, with TLS when `tls` is given, and hand `options`
    /// to the app with each connection it accepts (see
    /// [`ServerApp::process_new_on`]): per-listener limits and timeouts.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use pingora_core::apps::{ListenerOptions, ServerApp};
    /// # use pingora_core::listeners::{ServerAddress, TcpSocketOptions};
    /// # use pingora_core::services::listening::ListeningService;
    /// # use pingora_core::protocols::http::v1::H1Config;
    /// # use std::time::Duration;
    /// # fn add<A>(service: &mut ListeningService<A>) {
    /// let mut h1 = H1Config::default();
    /// h1.header_timeout = Duration::from_secs(5);
    /// let public = ServerAddress::Tcp("0.0.0.0:80".into(), TcpSocketOptions::default());
    /// service.add_listener(public, None, ListenerOptions::default().with_h1(h1));
    /// # }
    /// ```
    pub fn add_listener(
        &mut self,
        addr: ServerAddress,
        tls: Option<TlsAcceptor>,
        options: ListenerOptions,
    ) {
        self.listeners.add_address(addr);
        let index = self.listeners.len() - 1;
        self.tls.resize(index, None);
        self.tls.push(tls);
        self.options.resize_with(index, Arc::default);
        self.options.push(Arc::new(options));
    }

    /// Ask `filter` about every connection this service's listeners
    /// accept, after any PROXY header and before TLS; the connections it
    /// refuses are closed at once. See [`ConnectionFilter`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use pingora_core::listeners::AcceptAllFilter;
    /// # use pingora_core::services::listening::ListeningService;
    /// # use std::sync::Arc;
    /// # fn set<A>(service: &mut ListeningService<A>) {
    /// service.set_connection_filter(Arc::new(AcceptAllFilter));
    /// # }
    /// ```
    pub fn set_connection_filter(&mut self, filter: Arc<dyn ConnectionFilter>) {
        self.filter = Some(filter);
    }

    /// Run on `threads` threads instead of the server's setting.
    pub fn set_threads(&mut self, threads: usize) {
        self.threads = Some(threads);
    }

    /// The app.
    pub fn app(&self) -> &Arc<A> {
        &self.app
    }

    /// A handle that counts the idle connections parked right now (see
    /// [`H1Config::park_idle_after`](crate::protocols::http::v1::H1Config::park_idle_after)).
    pub fn parked_connections(&self) -> ParkedCount {
        self.parked.clone()
    }

    /// A handle that gives the bound addresses once the service is ready,
    /// such as the port picked for `127.0.0.1:0`.
    pub fn bound_addrs(&self) -> BoundAddrs {
        self.bound.clone()
    }
}

/// The addresses a [`ListeningService`] is bound to, known once it is ready.
#[derive(Debug, Clone, Default)]
pub struct BoundAddrs(Arc<Mutex<Option<Vec<SocketAddr>>>>);

impl Service<crate::apps::prometheus_http_app::PrometheusServer> {
    /// A service answering Prometheus scrapes with the default registry:
    /// the framework's metrics ([`crate::metrics`]) and the program's.
    /// Give it a listener of its own with [`add_tcp`](Self::add_tcp).
    ///
    /// ```
    /// use pingora_core::services::listening::Service;
    ///
    /// let mut metrics = Service::prometheus_http_service();
    /// metrics.add_tcp("127.0.0.1:9100");
    /// // server.add_service(metrics);
    /// ```
    pub fn prometheus_http_service() -> Self {
        let app = crate::apps::http_app::HttpServer::new(
            crate::apps::prometheus_http_app::PrometheusHttpApp,
        );
        Self::new("Prometheus metric HTTP", Arc::new(app))
    }
}

impl BoundAddrs {
    /// The addresses in the order the listeners were added, or `None`
    /// before the service is ready.
    pub fn get(&self) -> Option<Vec<SocketAddr>> {
        self.0.lock().clone()
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServiceTrait for ListeningService<A> {
    async fn start_service(&mut self, ctx: ServiceContext) -> Result<()> {
        let listeners = self.listeners.build(&ctx.fds)?;
        let addrs = listeners.iter().filter_map(Listener::local_addr).collect();
        *self.bound.0.lock() = Some(addrs);
        for listener in &listeners {
            log::info!("{}: listening on {}", self.name, listener.key());
        }
        ctx.ready.notify_ready();

        // Every connection task holds a sender (through its listener's
        // `Listening`); the channel closes once the last one is done,
        // which is how we know the service drained.
        let (drain_tx, mut drain_rx) = mpsc::channel::<()>(1);
        let listeners: Vec<Arc<Listener>> = listeners.into_iter().map(Arc::new).collect();
        let mut accept_loops = Vec::new();
        for (i, listener) in listeners.iter().enumerate() {
            let listening = Arc::new(Listening {
                app: Arc::clone(&self.app),
                tls: self.tls.get(i).cloned().flatten(),
                options: self.options.get(i).cloned().unwrap_or_default(),
                draining: ctx.draining.clone(),
                spawner: ctx.spawner.clone(),
                parker: park::parker(&self.parked),
                filter: self.filter.clone(),
                _drain: drain_tx.clone(),
            });
            park::watch(&listening);
            for _ in 0..ctx.listener_tasks_per_fd {
                let acceptor = Acceptor {
                    listener: Arc::clone(listener),
                    listening: Arc::clone(&listening),
                    shutdown: ctx.shutdown.clone(),
                    backoff: AcceptBackoff::new(),
                };
                accept_loops.push(ctx.spawner.spawn(acceptor.run()));
            }
        }
        for accept_loop in accept_loops {
            let _ = accept_loop.await;
        }
        // Close our listening sockets, so that a plain shutdown refuses new
        // connections. After an upgrade the new process holds its own
        // descriptors for them, so they stay open.
        for listener in &listeners {
            ctx.fds.remove(listener.key());
        }
        drop(listeners);
        log::info!("{}: stopped accepting, draining", self.name);
        drop(drain_tx);
        let _ = drain_rx.recv().await;
        self.app.cleanup().await;
        log::info!("{}: drained", self.name);
        Ok(())
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn threads(&self) -> Option<usize> {
        self.threads
    }
}

/// What the connections of one listener share: the app, the listener's
/// settings, and the set idle ones are parked in.
pub(super) struct Listening<A> {
    pub(super) app: Arc<A>,
    tls: Option<TlsAcceptor>,
    options: Arc<ListenerOptions>,
    /// What the app is given: turns `true` before `shutdown`.
    pub(super) draining: ShutdownWatch,
    pub(super) spawner: Spawner,
    pub(super) parker: Option<Arc<park::Parker>>,
    filter: Option<Arc<dyn ConnectionFilter>>,
    /// Held for as long as a connection (or the parker's watcher) runs.
    _drain: mpsc::Sender<()>,
}

/// One accept loop on one listening socket.
struct Acceptor<A> {
    listener: Arc<Listener>,
    listening: Arc<Listening<A>>,
    shutdown: ShutdownWatch,
    /// Pauses after failed accepts (running out of descriptors, say).
    backoff: AcceptBackoff,
}

impl<A: ServerApp + Send + Sync + 'static> Acceptor<A> {
    async fn run(mut self) {
        loop {
            if *self.shutdown.borrow() {
                return;
            }
            let accepted = tokio::select! {
                biased;
                changed = self.shutdown.changed() => {
                    // An error means the server is gone: stop as well.
                    if changed.is_err() {
                        return;
                    }
                    continue;
                }
                accepted = self.listener.accept() => accepted,
            };
            match accepted {
                Ok(stream) => {
                    self.backoff.succeeded();
                    crate::metrics::connection_accepted();
                    let conn = serve(Arc::clone(&self.listening), Box::new(stream), false);
                    self.listening.spawner.spawn(conn);
                }
                Err(e) => {
                    let pause = self.backoff.failed(&e, Instant::now());
                    tokio::time::sleep(pause).await;
                }
            }
        }
    }
}

/// Serve one connection for as long as the app keeps it reusable, or
/// until the app hands it back idle and it is parked. `resumed`: it was
/// parked, and its client sent more.
pub(super) async fn serve<A: ServerApp + Send + Sync + 'static>(
    listening: Arc<Listening<A>>,
    stream: Stream,
    resumed: bool,
) {
    if serve_until_closed_or_parked(listening, stream, resumed).await == Ended::Closed {
        crate::metrics::connection_closed();
    }
}

/// How a connection's task ended.
#[derive(Debug, PartialEq, Eq)]
enum Ended {
    /// The connection is closed.
    Closed,
    /// It is parked: still open, its task is done.
    Parked,
}

async fn serve_until_closed_or_parked<A: ServerApp + Send + Sync + 'static>(
    listening: Arc<Listening<A>>,
    stream: Stream,
    mut resumed: bool,
) -> Ended {
    // A parked connection was admitted when it was accepted.
    let proxy = listening.options.proxy_protocol.as_ref();
    let own_filter = listening.options.connection_filter.as_deref();
    let filter = own_filter.or(listening.filter.as_deref());
    let stream = if !resumed && (proxy.is_some() || filter.is_some()) {
        // Boxed, like the handshake below.
        match Box::pin(admit(stream, proxy, filter)).await {
            Some(stream) => stream,
            None => return Ended::Closed,
        }
    } else {
        stream
    };
    // The handshake's state is boxed: kept inline, its size would stay in
    // every connection's task for as long as the connection lives.
    let mut stream = match &listening.tls {
        Some(acceptor) if !resumed => match Box::pin(acceptor.accept(stream)).await {
            Ok(stream) => {
                crate::metrics::tls_handshake(true);
                stream
            }
            Err(e) => {
                crate::metrics::tls_handshake(false);
                log::debug!("tls handshake failed: {e}");
                return Ended::Closed;
            }
        },
        _ => stream,
    };
    // Only plain sockets can be parked (a TLS session keeps its state).
    let mut parkable = listening.parker.is_some() && listening.tls.is_none();
    loop {
        let handover = if resumed {
            Handover::resumed(parkable)
        } else {
            Handover::accepted(parkable)
        };
        let app = &listening.app;
        let served = app
            .process_connection(stream, &listening.draining, &listening.options, handover)
            .await;
        match served {
            Served::Closed => return Ended::Closed,
            Served::Again(reusable) if !*listening.draining.borrow() => {
                stream = reusable;
                resumed = false;
            }
            Served::Again(_) => return Ended::Closed,
            Served::Idle { stream: idle, wait } => {
                match park::park(&listening, idle, wait) {
                    Ok(park::Parked::Yes) => return Ended::Parked,
                    Ok(park::Parked::Closed) => return Ended::Closed,
                    // Not parked (the server is draining, say): the app
                    // waits on this task from now on.
                    Err(idle) => {
                        stream = idle;
                        resumed = true;
                        parkable = false;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::ListenFds;
    use crate::services::ReadyNotifier;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::sync::watch;

    /// What a server gives a service: `fds`, the signals, and `tasks`
    /// accept tasks per listener.
    fn context(
        fds: ListenFds,
        shutdown: ShutdownWatch,
        draining: ShutdownWatch,
        ready: ReadyNotifier,
        tasks: usize,
    ) -> ServiceContext {
        ServiceContext {
            fds,
            shutdown,
            draining,
            ready,
            listener_tasks_per_fd: tasks,
            spawner: Spawner::current(),
        }
    }

    /// Answers one byte after `hold` elapses, then closes.
    struct Slow {
        hold: Duration,
    }

    #[async_trait]
    impl ServerApp for Slow {
        async fn process_new(
            self: &Arc<Self>,
            mut stream: Stream,
            _: &ShutdownWatch,
        ) -> Option<Stream> {
            tokio::time::sleep(self.hold).await;
            let _ = stream.write_all(b"!").await;
            // A TLS stream holds written bytes until flushed.
            let _ = stream.flush().await;
            None
        }
    }

    #[tokio::test]
    async fn drains_in_flight_connections_then_returns() {
        let app = Arc::new(Slow {
            hold: Duration::from_millis(200),
        });
        let mut service = ListeningService::new("slow", app);
        service.add_tcp("127.0.0.1:0");
        let bound = service.bound_addrs();
        let (shutdown_tx, shutdown) = watch::channel(false);
        let (ready, mut ready_watch) = ReadyNotifier::new();
        let fds = ListenFds::new();
        let ctx = context(fds.clone(), shutdown.clone(), shutdown, ready, 2);
        let running = tokio::spawn(async move { service.start_service(ctx).await });
        ready_watch.wait().await;
        let addr = *bound.get().unwrap()[0].as_inet().unwrap();
        assert_eq!(fds.len(), 1);

        let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        shutdown_tx.send_replace(true);
        // The in-flight connection is still served...
        let mut byte = [0u8; 1];
        client.read_exact(&mut byte).await.unwrap();
        assert_eq!(&byte, b"!");
        // ...and then the service returns, its socket closed and forgotten.
        let done = tokio::time::timeout(Duration::from_secs(5), running).await;
        done.unwrap().unwrap().unwrap();
        assert!(fds.is_empty());
        let refused = tokio::net::TcpStream::connect(addr).await.unwrap_err();
        assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    }

    /// Writes `1` when its watch says the server is shutting down, else
    /// `0`, then closes.
    struct SeesDraining;

    #[async_trait]
    impl ServerApp for SeesDraining {
        async fn process_new(
            self: &Arc<Self>,
            mut stream: Stream,
            shutdown: &ShutdownWatch,
        ) -> Option<Stream> {
            let seen = if *shutdown.borrow() { b"1" } else { b"0" };
            let _ = stream.write_all(seen).await;
            let _ = stream.flush().await;
            None
        }
    }

    /// The shutdown signal reaches the app at once (`draining`), while
    /// the listener goes on accepting for the grace period; it stops only
    /// at `shutdown`.
    #[tokio::test]
    async fn apps_drain_from_the_signal_while_the_listener_accepts() {
        let mut service = ListeningService::new("drain", Arc::new(SeesDraining));
        service.add_tcp("127.0.0.1:0");
        let bound = service.bound_addrs();
        let (shutdown_tx, shutdown) = watch::channel(false);
        let (draining_tx, draining) = watch::channel(false);
        let (ready, mut ready_watch) = ReadyNotifier::new();
        let ctx = context(ListenFds::new(), shutdown, draining, ready, 1);
        let running = tokio::spawn(async move { service.start_service(ctx).await });
        ready_watch.wait().await;
        let addr = *bound.get().unwrap()[0].as_inet().unwrap();
        let seen = || async {
            let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
            let mut byte = [0u8; 1];
            client.read_exact(&mut byte).await.unwrap();
            byte[0]
        };
        assert_eq!(seen().await, b'0');
        draining_tx.send_replace(true);
        // In the grace period: accepted, and told to drain.
        assert_eq!(seen().await, b'1');
        assert_eq!(seen().await, b'1');
        shutdown_tx.send_replace(true);
        let done = tokio::time::timeout(Duration::from_secs(5), running).await;
        done.unwrap().unwrap().unwrap();
        let refused = tokio::net::TcpStream::connect(addr).await.unwrap_err();
        assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    }

    #[tokio::test]
    async fn tls_listener_hands_the_app_a_tls_stream() {
        use crate::connectors::{ConnectorOptions, TransportConnector};
        use crate::tls::{CertKey, CertStore, TlsSettings};
        use crate::upstreams::HttpPeer;

        let cert = rcgen::generate_simple_self_signed(vec!["tls.test".to_owned()]).unwrap();
        let (cert_pem, key_pem) = (cert.cert.pem(), cert.key_pair.serialize_pem());
        let key = CertKey::from_pem(cert_pem.as_bytes(), key_pem.as_bytes()).unwrap();
        let acceptor = TlsSettings::new(CertStore::new().with_default(key))
            .build()
            .unwrap();
        let app = Arc::new(Slow {
            hold: Duration::ZERO,
        });
        let mut service = ListeningService::new("tls", app);
        // Two distinct addresses: listeners are keyed by address for
        // upgrades, and two `127.0.0.1:0` would share one socket.
        service.add_tcp("127.0.0.2:0");
        service.add_tls_with_settings("127.0.0.1:0", TcpSocketOptions::default(), acceptor);
        let bound = service.bound_addrs();
        let (_tx, shutdown) = watch::channel(false);
        let (ready, mut ready_watch) = ReadyNotifier::new();
        let ctx = context(ListenFds::new(), shutdown.clone(), shutdown, ready, 1);
        tokio::spawn(async move { service.start_service(ctx).await });
        ready_watch.wait().await;
        let addrs = bound.get().unwrap();
        let (plain, tls) = (addrs[0].as_inet().unwrap(), addrs[1].as_inet().unwrap());

        let connector = TransportConnector::new(ConnectorOptions::default()).unwrap();
        let mut peer = HttpPeer::new(*tls, true, "tls.test");
        peer.options.verify_cert = false;
        let wait = Duration::from_secs(10);
        let mut stream = tokio::time::timeout(wait, connector.new_stream(&peer))
            .await
            .unwrap()
            .unwrap();
        assert!(stream.digest().unwrap().tls.is_some());
        let mut byte = [0u8; 1];
        stream.read_exact(&mut byte).await.unwrap();
        assert_eq!(&byte, b"!");
        // The plain listener beside it stays plain.
        let mut client = tokio::net::TcpStream::connect(plain).await.unwrap();
        client.read_exact(&mut byte).await.unwrap();
        assert_eq!(&byte, b"!");
    }

    /// The task of every connection stays small for as long as the
    /// connection lives: the TLS handshake's state is not part of it.
    #[tokio::test]
    async fn a_connection_task_stays_small() {
        use crate::tls::{CertKey, CertStore, TlsSettings};
        const BUDGET: usize = 320;
        let cert = rcgen::generate_simple_self_signed(vec!["tls.test".to_owned()]).unwrap();
        let (cert_pem, key_pem) = (cert.cert.pem(), cert.key_pair.serialize_pem());
        let key = CertKey::from_pem(cert_pem.as_bytes(), key_pem.as_bytes()).unwrap();
        let acceptor = TlsSettings::new(CertStore::new().with_default(key))
            .build()
            .unwrap();
        let app = Arc::new(Slow {
            hold: Duration::ZERO,
        });
        let (stream, _client) = tokio::io::duplex(64);
        let (_tx, draining) = watch::channel(false);
        let (drain, _) = mpsc::channel(1);
        let listening = Arc::new(Listening {
            app,
            tls: Some(acceptor),
            options: Arc::default(),
            draining,
            spawner: Spawner::current(),
            parker: park::parker(&ParkedCount::default()),
            filter: Some(Arc::new(crate::listeners::AcceptAllFilter)),
            _drain: drain,
        });
        let task = serve(listening, Box::new(stream), false);
        let size = size_of_val(&task);
        assert!(size <= BUDGET, "{size} bytes per connection");
    }

    /// Writes the header timeout of the H1 options it was given, if any.
    struct ShowOptions;

    #[async_trait]
    impl ServerApp for ShowOptions {
        async fn process_new(self: &Arc<Self>, _: Stream, _: &ShutdownWatch) -> Option<Stream> {
            None
        }

        async fn process_new_on(
            self: &Arc<Self>,
            mut stream: Stream,
            _: &ShutdownWatch,
            options: &ListenerOptions,
        ) -> Option<Stream> {
            let shown = options
                .h1
                .map_or("none".to_owned(), |h1| format!("{:?}", h1.header_timeout));
            let _ = stream.write_all(shown.as_bytes()).await;
            None
        }
    }

    #[tokio::test]
    async fn each_listener_hands_the_app_its_options() {
        use crate::protocols::http::v1::H1Config;
        let mut service = ListeningService::new("options", Arc::new(ShowOptions));
        let h1 = H1Config {
            header_timeout: Duration::from_millis(250),
            ..H1Config::default()
        };
        let tcp = |a: &str| ServerAddress::Tcp(a.into(), TcpSocketOptions::default());
        service.add_tcp("127.0.0.3:0");
        service.add_listener(
            tcp("127.0.0.1:0"),
            None,
            ListenerOptions::default().with_h1(h1),
        );
        service.add_listener(tcp("127.0.0.2:0"), None, ListenerOptions::default());
        let bound = service.bound_addrs();
        let (_tx, shutdown) = watch::channel(false);
        let (ready, mut ready_watch) = ReadyNotifier::new();
        let ctx = context(ListenFds::new(), shutdown.clone(), shutdown, ready, 1);
        tokio::spawn(async move { service.start_service(ctx).await });
        ready_watch.wait().await;
        let addrs = bound.get().unwrap();
        let mut shown = Vec::new();
        for addr in &addrs {
            let mut client = tokio::net::TcpStream::connect(addr.as_inet().unwrap())
                .await
                .unwrap();
            let mut out = String::new();
            let read = client.read_to_string(&mut out);
            tokio::time::timeout(Duration::from_secs(10), read)
                .await
                .unwrap()
                .unwrap();
            shown.push(out);
        }
        assert_eq!(shown, ["none", "250ms", "none"]);
    }

    /// An HTTP server on 127.0.0.1 whose connections park after 20 ms
    /// idle, with `idle_timeout`; the watches are the server's draining
    /// and shutdown signals.
    async fn parking_server(
        idle_timeout: Duration,
    ) -> (
        std::net::SocketAddr,
        ParkedCount,
        watch::Sender<bool>,
        watch::Sender<bool>,
    ) {
        use crate::apps::http_app::{HelloApp, HttpServer};
        use crate::protocols::http::v1::H1Config;
        let config = H1Config {
            park_idle_after: Some(Duration::from_millis(20)),
            idle_timeout,
            ..H1Config::default()
        };
        let app = HttpServer::new(HelloApp).with_config(config);
        let mut service = ListeningService::new("parking", Arc::new(app));
        service.add_tcp("127.0.0.1:0");
        let bound = service.bound_addrs();
        let parked = service.parked_connections();
        let (shutdown_tx, shutdown) = watch::channel(false);
        let (draining_tx, draining) = watch::channel(false);
        let (ready, mut ready_watch) = ReadyNotifier::new();
        let ctx = context(ListenFds::new(), shutdown, draining, ready, 1);
        tokio::spawn(async move { service.start_service(ctx).await });
        ready_watch.wait().await;
        let addr = *bound.get().unwrap()[0].as_inet().unwrap();
        (addr, parked, draining_tx, shutdown_tx)
    }

    /// Send a GET on `client` and read the response head and body.
    async fn get(client: &mut tokio::net::TcpStream) -> String {
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .unwrap();
        read_responses(client, 1).await
    }

    /// Read `n` responses of the hello app, whole.
    async fn read_responses(client: &mut tokio::net::TcpStream, n: usize) -> String {
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        let read = async {
            while String::from_utf8_lossy(&got)
                .matches("Hello, world!\n")
                .count()
                < n
            {
                let n = client.read(&mut buf).await.unwrap();
                assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&got));
                got.extend_from_slice(&buf[..n]);
            }
        };
        tokio::time::timeout(Duration::from_secs(10), read)
            .await
            .unwrap();
        String::from_utf8(got).unwrap()
    }

    /// Wait until `parked` counts `n`.
    async fn parked_reaches(parked: &ParkedCount, n: usize) {
        let wait = async {
            while parked.get() != n {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        let waited = tokio::time::timeout(Duration::from_secs(10), wait).await;
        assert!(waited.is_ok(), "{} parked, expected {n}", parked.get());
    }

    #[tokio::test]
    async fn an_idle_connection_is_parked_and_resumed() {
        let (addr, parked, _draining, _shutdown) = parking_server(Duration::from_secs(60)).await;
        let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
        assert!(get(&mut client).await.starts_with("HTTP/1.1 200"));
        parked_reaches(&parked, 1).await;
        // Parked, and served again: a head in two parts, the second after
        // the connection has been resumed.
        client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        client.write_all(b"Host: a\r\n\r\n").await.unwrap();
        assert!(
            read_responses(&mut client, 1)
                .await
                .starts_with("HTTP/1.1 200")
        );
        parked_reaches(&parked, 1).await;
        // Pipelined requests after a park: both answered, in order.
        let two = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
        client.write_all(two).await.unwrap();
        let answers = read_responses(&mut client, 2).await;
        assert_eq!(answers.matches("HTTP/1.1 200").count(), 2, "{answers}");
        parked_reaches(&parked, 1).await;
        // The client's close while parked frees the slot.
        drop(client);
        parked_reaches(&parked, 0).await;
    }

    #[tokio::test]
    async fn a_parked_connection_closes_at_its_idle_timeout() {
        let (addr, parked, _draining, _shutdown) = parking_server(Duration::from_millis(300)).await;
        let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let started = Instant::now();
        get(&mut client).await;
        parked_reaches(&parked, 1).await;
        let mut byte = [0u8; 1];
        let closed = tokio::time::timeout(Duration::from_secs(10), client.read(&mut byte)).await;
        assert_eq!(closed.unwrap().unwrap(), 0);
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(290), "closed after {took:?}");
        assert_eq!(parked.get(), 0);
    }

    /// At the shutdown signal every parked connection goes back to the
    /// app, which drains it: a request sent then is still served, with
    /// `Connection: close`, and nothing is left parked.
    #[tokio::test]
    async fn draining_hands_parked_connections_back_to_the_app() {
        let (addr, parked, draining, shutdown) = parking_server(Duration::from_secs(60)).await;
        let mut busy = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
        get(&mut busy).await;
        get(&mut silent).await;
        parked_reaches(&parked, 2).await;
        draining.send_replace(true);
        parked_reaches(&parked, 0).await;
        let answer = get(&mut busy).await;
        assert!(
            answer.to_ascii_lowercase().contains("connection: close"),
            "{answer}"
        );
        // The silent one is closed (a FIN) once the drain wait is over.
        let mut byte = [0u8; 1];
        let closed = tokio::time::timeout(Duration::from_secs(10), silent.read(&mut byte)).await;
        assert_eq!(closed.unwrap().unwrap(), 0);
        shutdown.send_replace(true);
    }

    #[tokio::test]
    async fn bind_error_is_returned() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap().to_string();
        let mut service = ListeningService::new(
            "busy",
            Arc::new(Slow {
                hold: Duration::ZERO,
            }),
        );
        service.add_tcp(&addr);
        let (_tx, shutdown) = watch::channel(false);
        let (ready, _) = ReadyNotifier::new();
        let ctx = context(ListenFds::new(), shutdown.clone(), shutdown, ready, 1);
        let err = service.start_service(ctx).await.unwrap_err();
        assert!(err.to_string().contains(&addr), "{err}");
    }
}
