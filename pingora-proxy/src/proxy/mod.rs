//! [`HttpProxy`]: drives each request through the [`ProxyHttp`] phases.
//!
//! The flow is split by step, each shared by every protocol: this module
//! runs the phases in order and handles the end of a request (error
//! response, error log, `logging`); [`upstream`] picks a peer, connects
//! and retries; [`exchange`] sends the request and streams the response;
//! [`tunnel`] decides which upgrades may become tunnels and carries their
//! bytes; [`connect`] serves CONNECT as a forward proxy, when enabled. The protocol of each side sits behind [`Session`](crate::Session)
//! (downstream) and the connector's client session (upstream).

mod body;
mod cache;
mod connect;
mod exchange;
mod revalidate;
mod subrequest;
mod tunnel;
mod upstream;

use crate::{ProxyHttp, Session};
use http::Method;
use pingora_core::connectors::ConnectorOptions;
use pingora_core::connectors::http::HttpConnector;
use pingora_core::header::ResponseHeader;
use pingora_core::modules::http::HttpModules;
use pingora_core::protocols::http::v1::H1Config;
use pingora_core::protocols::http::v2::H2Options;
use pingora_core::report::{CatchUnwind, panic_message};
use pingora_core::server::ServerConf;
use pingora_error::{Error, ErrorType, Result};
use std::sync::Arc;
use tunnel::Upgrades;

pub(crate) use cache::Fill;
pub use connect::ConnectPolicy;
pub use subrequest::{
    MAX_SUBREQUEST_DEPTH, MAX_SUBREQUESTS_PER_REQUEST, SUBREQUEST_BODY_LIMIT, SubrequestResponse,
};
pub(crate) use subrequest::{SubrequestCtx, SubrequestRunner, Subrequests};

/// The methods a `405` to CONNECT names in `Allow` (RFC 9110 §15.5.6):
/// every method the proxy forwards that RFC 9110 and RFC 5789 define.
const ALLOW: &str = "GET, HEAD, POST, PUT, DELETE, OPTIONS, TRACE, PATCH";

/// The proxy app: a [`ProxyHttp`] implementation plus the connector and
/// settings it proxies with. Serve it with
/// [`http_proxy_service`](crate::http_proxy_service), or hand connections
/// to it directly as a [`ServerApp`](pingora_core::apps::ServerApp).
///
/// # Defaults that guard the origin
///
/// - **CONNECT** is answered `405 Method Not Allowed` (with `Allow`) and
///   never forwarded, unless the proxy is built
///   [`with_connect`](Self::with_connect) (a forward proxy): [`upstream_peer`](ProxyHttp::upstream_peer) is not
///   called and no upstream connection is made. The
///   [`early_request_filter`](ProxyHttp::early_request_filter) and
///   [`request_filter`](ProxyHttp::request_filter) phases still see it, so
///   a proxy can answer it itself. This holds for HTTP/1 and HTTP/2
///   clients alike (RFC 9113 §8.5). Extended CONNECT (RFC 8441, with
///   `:protocol`) is not enabled on the HTTP/2 server, so the HTTP/2
///   layer refuses it before any phase.
/// - **Upgrades** become tunnels only for the protocols of
///   [`with_allowed_upgrades`](Self::with_allowed_upgrades) (websocket by
///   default), and only after a 101 naming an offered protocol; see there.
/// - **Retries** never replay a request the upstream may have processed
///   unless its method is idempotent; see
///   [`error_while_proxy`](ProxyHttp::error_while_proxy).
#[derive(Debug)]
pub struct HttpProxy<SV> {
    inner: SV,
    connector: HttpConnector,
    max_retries: usize,
    downstream_config: H1Config,
    h2: H2Options,
    h2c: bool,
    upgrades: Upgrades,
    modules: HttpModules,
    connect: Option<ConnectPolicy>,
}

impl<SV: ProxyHttp> HttpProxy<SV> {
    /// A proxy running `inner`'s phases with the settings of `conf`: its
    /// `max_retries`, `ca_file`, `upstream_keepalive_pool_size` and its
    /// `h2` section.
    ///
    /// # Errors
    ///
    /// When the connector cannot be built (the CA file is unreadable).
    pub fn new(inner: SV, conf: &ServerConf) -> Result<Self> {
        let connector = HttpConnector::new(ConnectorOptions::from_server_conf(conf))?;
        // Shown at zero from the first scrape on.
        crate::metrics::register_proxy();
        let mut modules = HttpModules::new();
        inner.init_downstream_modules(&mut modules);
        Ok(Self {
            inner,
            connector,
            max_retries: conf.max_retries,
            downstream_config: H1Config::default(),
            h2: conf.h2_options(),
            h2c: false,
            upgrades: Upgrades::default(),
            modules,
            connect: None,
        })
    }

    /// Use `options`' HTTP/2 settings and limits for client connections.
    /// HTTP/2 is served on TLS connections whose ALPN chose `h2`, and on
    /// every connection with [`with_h2c`](Self::with_h2c).
    #[must_use]
    pub const fn with_h2_options(mut self, options: H2Options) -> Self {
        self.h2 = options;
        self
    }

    /// Also serve cleartext HTTP/2 with prior knowledge (h2c, RFC 9113
    /// §3.3): a connection without ALPN `h2` that opens with the HTTP/2
    /// preface is served as HTTP/2, any other as HTTP/1.
    #[must_use]
    pub const fn with_h2c(mut self, h2c: bool) -> Self {
        self.h2c = h2c;
        self
    }

    /// Use `connector` for upstream connections instead of the one built
    /// from the server configuration, for example one made
    /// [`with_h2_options`](HttpConnector::with_h2_options).
    #[must_use]
    pub fn with_connector(mut self, connector: HttpConnector) -> Self {
        self.connector = connector;
        self
    }

    /// Use `config`'s limits and timeouts for client connections.
    #[must_use]
    pub const fn with_downstream_config(mut self, config: H1Config) -> Self {
        self.downstream_config = config;
        self
    }

    /// The protocols (RFC 9110 §7.8 names, such as `websocket`, in any
    /// case) a client may upgrade to through this proxy; `websocket` only
    /// by default, none for an empty list.
    ///
    /// An upgrade turns the connection into a tunnel of raw bytes that no
    /// phase sees, so it is offered upstream only for these protocols: a
    /// request offering none of them goes upstream as a plain request,
    /// without `Upgrade` and `Connection: upgrade`, and an upstream `101`
    /// to it is answered `502` with no tunnel. A `101` naming a protocol
    /// the request did not offer is a `502` too. `h2c` (and any other
    /// HTTP version) is never allowed, whatever this list says: it would
    /// carry requests no phase sees; its `HTTP2-Settings` field is always
    /// removed.
    ///
    /// # Examples
    ///
    /// ```
    /// # use pingora_core::server::ServerConf;
    /// # use pingora_core::upstreams::HttpPeer;
    /// # use pingora_proxy::{HttpProxy, ProxyHttp, Session};
    /// # struct Origin;
    /// # impl ProxyHttp for Origin {
    /// #     type CTX = ();
    /// #     fn new_ctx(&self) {}
    /// #     async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> pingora_error::Result<Box<HttpPeer>> {
    /// #         unimplemented!()
    /// #     }
    /// # }
    /// let proxy = HttpProxy::new(Origin, &ServerConf::default())?
    ///     .with_allowed_upgrades(["websocket", "my-protocol"]);
    /// # Ok::<(), Box<pingora_error::Error>>(())
    /// ```
    #[must_use]
    pub fn with_allowed_upgrades<I, S>(mut self, protocols: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.upgrades = Upgrades::new(protocols);
        self
    }

    /// Serve CONNECT as a forward proxy, for the targets `policy` allows:
    /// open a TCP tunnel to the target and relay bytes both ways. Off by
    /// default (CONNECT gets `405`).
    ///
    /// A CONNECT goes through
    /// [`early_request_filter`](ProxyHttp::early_request_filter) and
    /// [`request_filter`](ProxyHttp::request_filter) first, which may
    /// answer it themselves (a `407` asking for `Proxy-Authorization`,
    /// say). Then its target (`host:port`, the authority as sent) is
    /// checked against `policy`: `400` when malformed, `403` when not
    /// allowed, and nothing is connected. An allowed target is resolved
    /// (internal addresses refused as the policy says) and connected to
    /// within the policy's connect timeout (`502` when it fails, `504`
    /// past the timeout); then the client gets `200 Connection
    /// Established` and the tunnel runs until either side closes or it
    /// idles for the policy's idle timeout. No other phase runs:
    /// [`upstream_peer`](ProxyHttp::upstream_peer) is not asked, and no
    /// module or filter sees the tunnel's bytes. `logging` is called at
    /// the end, with the bytes carried each way in
    /// [`Session::body_bytes_read`] (client to target) and
    /// [`Session::body_bytes_sent`] (target to client).
    ///
    /// HTTP/1 clients and HTTP/2 clients (RFC 9113 §8.5: the tunnel is
    /// the stream's DATA frames) are both served. Extended CONNECT
    /// (RFC 8441) stays refused.
    ///
    /// # Examples
    ///
    /// ```
    /// # use pingora_core::server::ServerConf;
    /// # use pingora_core::upstreams::HttpPeer;
    /// # use pingora_proxy::{ConnectPolicy, HttpProxy, ProxyHttp, Session};
    /// # struct Forward;
    /// # impl ProxyHttp for Forward {
    /// #     type CTX = ();
    /// #     fn new_ctx(&self) {}
    /// #     async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> pingora_error::Result<Box<HttpPeer>> {
    /// #         unimplemented!()
    /// #     }
    /// # }
    /// let policy = ConnectPolicy::new().allow("*.example.com:443")?;
    /// let proxy = HttpProxy::new(Forward, &ServerConf::default())?.with_connect(policy);
    /// # Ok::<(), Box<pingora_error::Error>>(())
    /// ```
    #[must_use]
    pub fn with_connect(mut self, policy: ConnectPolicy) -> Self {
        self.connect = Some(policy);
        self
    }

    /// The user's phases.
    pub const fn inner(&self) -> &SV {
        &self.inner
    }

    pub(crate) const fn downstream_config(&self) -> H1Config {
        self.downstream_config
    }

    pub(crate) const fn h2_options(&self) -> &H2Options {
        &self.h2
    }

    pub(crate) const fn h2c(&self) -> bool {
        self.h2c
    }

    async fn run_phases(&self, session: &mut Session, ctx: &mut SV::CTX) -> Result<()> {
        // The method as received: a phase renaming it does not change what
        // the client's bytes after the head are (a tunnel, for CONNECT).
        let connect = session.req_header().method() == Method::CONNECT;
        self.inner.early_request_filter(session, ctx).await?;
        session.run_request_header_modules().await?;
        if self.inner.request_filter(session, ctx).await? {
            return finish_short_circuit(session).await;
        }
        if connect {
            return match &self.connect {
                Some(policy) => connect::serve(policy, session).await,
                None => refuse_connect(session).await,
            };
        }
        if self.cache_phases(session, ctx).await? {
            return Ok(());
        }
        if !self.inner.proxy_upstream_filter(session, ctx).await? {
            if !session.response_started() {
                session.respond_error(502).await?;
            }
            return finish_short_circuit(session).await;
        }
        if let Err(e) = self.proxy_to_upstream(session, ctx).await {
            if self.stale_if_error(session, ctx, &e).await? {
                return Ok(());
            }
            return Err(e);
        }
        self.invalidate_after(session).await;
        Ok(())
    }
}

impl<SV: ProxyHttp + 'static> HttpProxy<SV> {
    /// Run one request through every phase, answer it on error, and call
    /// `logging` exactly once. Starts no background work (see
    /// [`process_request`](Self::process_request)).
    ///
    /// `this` is this proxy, for the request's own subrequests: they are
    /// allowed when it is given and `allow_spawning_subrequest` says so.
    pub(crate) async fn serve_request(&self, session: &mut Session, this: Option<&Arc<Self>>) {
        let mut ctx = self.inner.new_ctx();
        session.set_modules(self.modules.build_ctx());
        if let Some(this) = this
            && self.inner.allow_spawning_subrequest(session, &ctx)
        {
            let depth = session.subrequest.as_ref().map_or(0, |s| s.depth);
            let runner: Arc<dyn SubrequestRunner> = Arc::clone(this) as _;
            session.subrequests = Some(Box::new(Subrequests {
                runner,
                depth,
                made: 0,
            }));
        }
        let outcome = {
            let phases = std::pin::pin!(self.run_phases(session, &mut ctx));
            CatchUnwind(phases).await
        };
        let err = match outcome {
            Ok(result) => result.err(),
            Err(payload) => {
                // Whatever the phase left half done, this connection
                // serves nothing more.
                session.set_keepalive(None);
                let message = panic_message(payload.as_ref());
                let e = Error::explain(ErrorType::InternalError, format!("panic: {message}"));
                Some(e)
            }
        };
        // An unfinished fill is abandoned here: its readers learn it, and
        // the cache lock's waiters are released.
        drop(session.fill.take());
        if let Some(e) = &err {
            // After a response head went out, a second response is
            // impossible: the connection must close so the client sees
            // the failure instead of a truncated success.
            if session.response_started() {
                session.set_keepalive(None);
            }
            let failed = self.inner.fail_to_proxy(session, e, &mut ctx).await;
            if !failed.can_reuse_downstream {
                session.set_keepalive(None);
            }
            if !self.inner.suppress_error_log(session, &ctx, e) {
                let summary = self.inner.request_summary(session, &ctx);
                let status = failed.error_code;
                log::error!("fail to proxy: {e}, status: {status}, {summary}");
                pingora_core::report::report_error(e, "proxy", &summary);
            }
        }
        self.inner.logging(session, err.as_deref(), &mut ctx).await;
        crate::metrics::request_done(session);
    }

    /// Serve one client request ([`serve_request`](Self::serve_request)),
    /// then start the background work it left: the refresh of a cache
    /// entry it was served stale from.
    pub(crate) async fn process_request(self: &Arc<Self>, session: &mut Session) {
        self.serve_request(session, Some(self)).await;
        if let Some(permit) = session.background_refresh.take() {
            self.spawn_refresh(session, permit);
        }
    }
}

/// End a response a phase wrote itself.
async fn finish_short_circuit(session: &mut Session) -> Result<()> {
    if !session.response_started() {
        return Error::e_explain(
            ErrorType::InternalError,
            "request filter ended the request without a response",
        );
    }
    session.finish_response(None).await
}

/// Answer a CONNECT the phases did not answer: `405` with `Allow`, and the
/// client connection closes (whatever it sends next is meant for a tunnel
/// that does not exist). Forwarding it would open a raw tunnel to wherever
/// the client names, past every phase (RFC 9110 §9.3.6).
async fn refuse_connect(session: &mut Session) -> Result<()> {
    if session.response_started() {
        return session.finish_response(None).await;
    }
    log::debug!("refusing CONNECT: {}", session.request_summary());
    let mut resp = ResponseHeader::build(405, Some(2))?;
    resp.insert_header("Allow", ALLOW)?;
    resp.insert_header("Content-Length", "0")?;
    session.set_keepalive(None);
    session.write_head(resp, true).await?;
    session.finish_response(None).await
}
