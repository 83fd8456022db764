//! Serving an [`HttpProxy`] on listening sockets.

use crate::{HttpProxy, ProxyHttp, Session};
use async_trait::async_trait;
use pingora_core::apps::ServerApp;
use pingora_core::protocols::Stream;
use pingora_core::protocols::http::ServerSession;
use pingora_core::protocols::http::v1::ServerConnection;
use pingora_core::server::{ServerConf, ShutdownWatch};
use pingora_core::services::listening::ListeningService;
use pingora_error::Result;
use std::sync::Arc;

/// A listening service that proxies HTTP with `SV`'s phases.
pub type HttpProxyService<SV> = ListeningService<HttpProxy<SV>>;

/// A proxy service running `inner`'s phases with the settings of `conf`
/// (a [`Server`](pingora_core::server::Server)'s configuration). Add
/// listeners with `add_tcp` and hand it to the server.
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
/// #[async_trait]
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
    Ok(ListeningService::new(
        "Pingora HTTP Proxy Service",
        Arc::new(proxy),
    ))
}

#[async_trait]
impl<SV: ProxyHttp + 'static> ServerApp for HttpProxy<SV> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let mut shutdown = shutdown.clone();
        let mut conn = ServerConnection::new(stream, self.downstream_config());
        loop {
            let reused = conn.served() > 0;
            // Only the wait for a request races shutdown: a request in
            // progress is always finished.
            let read = tokio::select! {
                read = conn.read_request() => read,
                _ = shutdown.wait_for(|stop| *stop) => return None,
            };
            let mut session = match read {
                Ok(Some(h1)) => Session::new(h1, reused),
                Ok(None) => return None,
                Err(e) => {
                    // Already answered (400, 414, 431) and closed.
                    log::debug!("request refused: {e}");
                    return None;
                }
            };
            if *shutdown.borrow() {
                session.set_keepalive(false);
            }
            self.process_request(&mut session).await;
            conn = next_request(session).await?;
        }
    }
}

/// The connection for the next request, when keep-alive allows.
async fn next_request(session: Session) -> Option<ServerConnection> {
    match session.into_downstream() {
        ServerSession::H1(h1) => h1.reuse().await,
        // Other versions multiplex requests on their own connection task.
        _ => None,
    }
}
