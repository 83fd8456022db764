//! [`HttpProxy`]: drives each request through the [`ProxyHttp`] phases.
//!
//! The flow is split by step, each shared by every protocol: this module
//! runs the phases in order and handles the end of a request (error
//! response, error log, `logging`); [`upstream`] picks a peer, connects
//! and retries; [`exchange`] sends the request and streams the response;
//! [`tunnel`] carries the bytes of an upgraded connection. The protocol of
//! each side sits behind [`Session`](crate::Session) (downstream) and the
//! connector's client session (upstream).

mod body;
mod exchange;
mod tunnel;
mod upstream;

use crate::{ProxyHttp, Session};
use pingora_core::connectors::ConnectorOptions;
use pingora_core::connectors::http::HttpConnector;
use pingora_core::protocols::http::v1::H1Config;
use pingora_core::protocols::http::v2::H2Options;
use pingora_core::server::ServerConf;
use pingora_error::{Error, ErrorType, Result};

/// The proxy app: a [`ProxyHttp`] implementation plus the connector and
/// settings it proxies with. Serve it with
/// [`http_proxy_service`](crate::http_proxy_service), or hand connections
/// to it directly as a [`ServerApp`](pingora_core::apps::ServerApp).
#[derive(Debug)]
pub struct HttpProxy<SV> {
    inner: SV,
    connector: HttpConnector,
    max_retries: usize,
    downstream_config: H1Config,
    h2: H2Options,
    h2c: bool,
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
        Ok(Self {
            inner,
            connector,
            max_retries: conf.max_retries,
            downstream_config: H1Config::default(),
            h2: conf.h2_options(),
            h2c: false,
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

    /// Run one request through every phase, answer it on error, and call
    /// `logging` exactly once.
    pub(crate) async fn process_request(&self, session: &mut Session) {
        let mut ctx = self.inner.new_ctx();
        let err = self.run_phases(session, &mut ctx).await.err();
        if let Some(e) = &err {
            // After a response head went out, a second response is
            // impossible: the connection must close so the client sees
            // the failure instead of a truncated success.
            session.set_keepalive(false);
            let status = self.inner.fail_to_proxy(session, e, &mut ctx).await;
            if !self.inner.suppress_error_log(session, &ctx, e) {
                let summary = self.inner.request_summary(session, &ctx);
                log::error!("fail to proxy: {e}, status: {status}, {summary}");
            }
        }
        self.inner.logging(session, err.as_deref(), &mut ctx).await;
    }

    async fn run_phases(&self, session: &mut Session, ctx: &mut SV::CTX) -> Result<()> {
        self.inner.early_request_filter(session, ctx).await?;
        if self.inner.request_filter(session, ctx).await? {
            return finish_short_circuit(session).await;
        }
        if !self.inner.proxy_upstream_filter(session, ctx).await? {
            if !session.response_started() {
                session.respond_error(502).await?;
            }
            return finish_short_circuit(session).await;
        }
        self.proxy_to_upstream(session, ctx).await
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
