//! [`TcpProxy`]: the app that runs a [`ProxyTcp`] on each accepted
//! connection, and [`tcp_proxy_service`] that serves it.

use super::relay::{self, Activity, Direction, Limits};
use super::{ProxyTcp, TcpSession, metrics};
use async_trait::async_trait;
use bytes::BytesMut;
use pingora_core::apps::ServerApp;
use pingora_core::connectors::{ConnectorOptions, TransportConnector};
use pingora_core::protocols::Stream;
use pingora_core::protocols::l4::L4Stream;
use pingora_core::server::{ServerConf, ShutdownWatch};
use pingora_core::services::listening::ListeningService;
use pingora_error::{Error, ErrorType, Result};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// Settings of a [`TcpProxy`], with the defaults of
/// [`TcpProxyOptions::default`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TcpProxyOptions {
    /// Close a session after this long without a byte either way (at
    /// most an eighth of it later: the relay checks its byte counts every
    /// eighth of the timeout instead of reading the clock per chunk).
    /// Default: 10 minutes (nginx `proxy_timeout` is the same). `None`:
    /// never. A session may change its own
    /// ([`TcpSession::set_idle_timeout`]).
    pub idle_timeout: Option<Duration>,
    /// Close a session this long after it was accepted, whatever it is
    /// doing. Default: `None` (no limit).
    pub total_timeout: Option<Duration>,
    /// How long [`TcpSession::read_client_hello`] waits for the hello.
    /// Default: 10 seconds.
    pub client_hello_timeout: Duration,
    /// Once the server starts shutting down, sessions in flight (and
    /// sessions accepted during the grace period) get this much longer,
    /// then are closed. Default: 30 seconds. The server's
    /// `graceful_shutdown_timeout_seconds` still bounds it all.
    pub drain_timeout: Duration,
    /// Relay bulk transfers with `splice(2)` where possible (Linux, both
    /// sides plain TCP, no byte filter): each direction copies through a
    /// 16 KiB buffer until a read fills it, then splices. Default: `true`.
    pub splice: bool,
    /// The buffer of each direction of the copy loop (used with TLS or
    /// byte filters). Default: 64 KiB.
    pub buffer_size: usize,
}

impl Default for TcpProxyOptions {
    fn default() -> Self {
        Self {
            idle_timeout: Some(Duration::from_secs(600)),
            total_timeout: None,
            client_hello_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(30),
            splice: true,
            buffer_size: 64 * 1024,
        }
    }
}

/// The TCP proxy app: runs `SV`'s phases on every client connection. Serve
/// it with [`tcp_proxy_service`], or any
/// [`ListeningService`].
pub struct TcpProxy<SV> {
    inner: SV,
    connector: TransportConnector,
    options: TcpProxyOptions,
    max_retries: usize,
}

impl<SV> std::fmt::Debug for TcpProxy<SV> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpProxy")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl<SV: ProxyTcp> TcpProxy<SV> {
    /// A proxy running `inner`'s phases, connecting with the connector
    /// settings of `conf` (its `ca_file`, bind addresses ...) and
    /// retrying connects up to its `max_retries`.
    ///
    /// # Errors
    ///
    /// When the connector cannot be built (unreadable CA file).
    pub fn new(inner: SV, conf: &ServerConf) -> Result<Self> {
        metrics::register();
        let connector = TransportConnector::new(ConnectorOptions::from_server_conf(conf))?;
        Ok(Self {
            inner,
            connector,
            options: TcpProxyOptions::default(),
            max_retries: conf.max_retries,
        })
    }

    /// These options instead of the defaults.
    #[must_use]
    pub fn with_options(mut self, options: TcpProxyOptions) -> Self {
        self.options = options;
        self
    }

    /// The options in use.
    pub fn options(&self) -> &TcpProxyOptions {
        &self.options
    }

    /// The user's phases.
    pub fn inner(&self) -> &SV {
        &self.inner
    }

    /// Serve one client connection to its end.
    async fn serve(&self, stream: Stream, shutdown: &ShutdownWatch) {
        let mut session = TcpSession::new(stream, shutdown.clone());
        session.idle_timeout = self.options.idle_timeout;
        session.total_timeout = self.options.total_timeout;
        session.client_hello_timeout = self.options.client_hello_timeout;
        let mut ctx = self.inner.new_ctx();
        let result = self.proxy(&mut session, &mut ctx).await;
        session.mark_ended();
        let error = result.err();
        metrics::session_done(&session, error.is_some());
        self.inner
            .logging(&mut session, error.as_deref(), &mut ctx)
            .await;
    }

    async fn proxy(&self, session: &mut TcpSession, ctx: &mut SV::CTX) -> Result<()> {
        let mut retries = 0;
        let (upstream, peer) = loop {
            let peer = self.inner.upstream_peer(session, ctx).await?;
            match self.connector.new_stream(&*peer).await {
                Ok(stream) => break (stream, peer),
                Err(e) => {
                    metrics::connect_failed();
                    let e = self.inner.fail_to_connect(session, &peer, ctx, e);
                    if !e.retry() || retries >= self.max_retries {
                        return Err(e);
                    }
                    retries += 1;
                }
            }
        };
        session.upstream_digest = upstream.digest().cloned();
        session.mark_connected();
        self.inner
            .connected_to_upstream(session, &peer, ctx)
            .await?;
        session.peer = Some(peer);
        let filters = self.inner.wants_byte_filters(session, ctx);
        let downstream = session
            .downstream
            .take()
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "the client stream is gone"))?;
        let preread = std::mem::take(&mut session.preread);
        let activity = Activity::new();
        let limits = Limits {
            idle: session.idle_timeout,
            total_deadline: session
                .total_timeout
                .map(|t| tokio::time::Instant::from_std(session.start()) + t),
            drain: self.options.drain_timeout,
        };
        let shutdown = session.shutdown.clone();
        let spliceable = self.options.splice && !filters;
        let result = if filters {
            let inner = &self.inner;
            let mut filter = |dir: Direction, data: &mut BytesMut, eof: bool| match dir {
                Direction::Upstream => inner.downstream_bytes_filter(session, data, eof, ctx),
                Direction::Downstream => inner.upstream_bytes_filter(session, data, eof, ctx),
            };
            let relay = relay_streams(
                downstream,
                upstream,
                preread,
                false,
                Some(&mut filter),
                &activity,
                self.options.buffer_size,
            );
            relay::bounded(relay, &activity, limits, shutdown).await
        } else {
            let relay = relay_streams(
                downstream,
                upstream,
                preread,
                spliceable,
                None,
                &activity,
                self.options.buffer_size,
            );
            relay::bounded(relay, &activity, limits, shutdown).await
        };
        session.spliced = activity.spliced.load(Ordering::Relaxed);
        session.from_downstream = activity.from_downstream.load(Ordering::Relaxed);
        session.from_upstream = activity.from_upstream.load(Ordering::Relaxed);
        result
    }
}

/// Forward `preread`, then relay between the two streams: adaptively
/// (copying small reads, splicing bulk; see [`super::splice`]) when
/// `spliceable` and both are plain TCP, else copying.
async fn relay_streams(
    mut downstream: Stream,
    mut upstream: Stream,
    preread: BytesMut,
    spliceable: bool,
    filter: Option<&mut relay::Filter<'_>>,
    activity: &Activity,
    buffer_size: usize,
) -> Result<()> {
    let mut filter = filter;
    if !preread.is_empty() {
        // Counted as read from the client, as the relay would have, and
        // filtered as the relay would have.
        activity.moved(Direction::Upstream, preread.len());
        let mut preread = preread;
        if let Some(filter) = filter.as_mut() {
            filter(Direction::Upstream, &mut preread, false)?;
        }
        if let Err(e) = upstream.write_all(&preread).await {
            let e = Error::because(
                ErrorType::WriteError,
                "forwarding the client's first bytes",
                e,
            );
            return Err(e.into_up());
        }
    }
    #[cfg(target_os = "linux")]
    if spliceable {
        match both_tcp(downstream, upstream) {
            Ok((down, up)) => {
                let (Some(d), Some(u)) = (down.as_tcp(), up.as_tcp()) else {
                    // both_tcp checked: both are TCP.
                    return Error::e_explain(ErrorType::InternalError, "not tcp");
                };
                return super::splice::relay(d, u, activity).await;
            }
            Err((down, up)) => (downstream, upstream) = (down, up),
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = spliceable;
    let copied = relay::copy(
        &mut downstream,
        &mut upstream,
        buffer_size,
        filter,
        activity,
    );
    copied.await
}

/// Both streams as TCP sockets, or both back as they were.
#[cfg(target_os = "linux")]
#[allow(clippy::type_complexity)]
fn both_tcp(
    down: Stream,
    up: Stream,
) -> std::result::Result<(Box<L4Stream>, Box<L4Stream>), (Stream, Stream)> {
    let down = match L4Stream::from_boxed(down) {
        Ok(d) if d.is_tcp() => d,
        Ok(d) => return Err((d, up)),
        Err(d) => return Err((d, up)),
    };
    match L4Stream::from_boxed(up) {
        Ok(u) if u.is_tcp() => Ok((down, u)),
        Ok(u) => Err((down, u)),
        Err(u) => Err((down, u)),
    }
}

#[async_trait]
impl<SV: ProxyTcp + 'static> ServerApp for TcpProxy<SV> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        self.serve(stream, shutdown).await;
        None
    }
}

/// A listening service proxying TCP with `inner`'s phases and the
/// settings of `conf` (a [`Server`](pingora_core::server::Server)'s
/// configuration). Add listeners and hand it to the server: a plain TCP
/// listener (`add_tcp`) relays bytes as they come (with TLS passthrough
/// when the phases route by [`TcpSession::read_client_hello`]); a TLS one
/// (`add_tls_with_settings`) terminates TLS and relays the plain bytes.
///
/// When the connector cannot be built from `conf` (its `ca_file` is
/// unreadable) this logs the error and exits with status 1, as a server
/// does for any start-up failure; build a [`TcpProxy`] with
/// [`TcpProxy::new`] to get the error instead.
///
/// # Examples
///
/// ```no_run
/// use pingora_core::server::Server;
/// use pingora_core::upstreams::BasicPeer;
/// use pingora_proxy::l4::{tcp_proxy_service, ProxyTcp, TcpSession};
///
/// struct ToRedis;
///
/// impl ProxyTcp for ToRedis {
///     type CTX = ();
///     fn new_ctx(&self) {}
///     async fn upstream_peer(&self, _: &mut TcpSession, _: &mut ()) -> pingora_error::Result<Box<BasicPeer>> {
///         let addr: std::net::SocketAddr = "127.0.0.1:6379".parse().unwrap();
///         Ok(Box::new(BasicPeer::new(addr)))
///     }
/// }
///
/// let mut server = Server::new(None).unwrap();
/// server.bootstrap();
/// let mut proxy = tcp_proxy_service(server.configuration(), ToRedis);
/// proxy.add_tcp("127.0.0.1:6380");
/// server.add_service(proxy);
/// server.run_forever();
/// ```
pub fn tcp_proxy_service<SV>(conf: &Arc<ServerConf>, inner: SV) -> ListeningService<TcpProxy<SV>>
where
    SV: ProxyTcp + 'static,
{
    let proxy = TcpProxy::new(inner, conf).unwrap_or_else(|e| {
        log::error!("cannot build the tcp proxy service: {e}");
        eprintln!("cannot build the tcp proxy service: {e}");
        std::process::exit(1)
    });
    ListeningService::new("TCP Proxy Service", Arc::new(proxy))
}
