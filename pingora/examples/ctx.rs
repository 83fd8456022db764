//! Per-request state (`CTX`) and state shared by all requests: beta users
//! (a `beta-flag` header) go to another origin, and the proxy counts them.
//!
//! ```text
//! cargo run --example ctx --features proxy
//! curl 127.0.0.1:6188/                     # from the stable origin
//! curl -H 'beta-flag: 1' 127.0.0.1:6188/   # from the beta origin; the
//!                                          # x-beta-count header counts
//! ```
//!
//! Features: `proxy`.
//!
//! `LISTEN=addr`, `STABLE=addr` and `BETA=addr` move the proxy and the
//! demo origins.
//! The tests (`pingora/tests/examples.rs`) run it that way, on free ports.

use async_trait::async_trait;
use pingora::core::apps::http_app::{HttpRequest, HttpResponse, HttpServer, ServeHttp};
use pingora::core::header::ResponseHeader;
use pingora::core::server::{Opt, Server};
use pingora::core::services::listening::ListeningService;
use pingora::core::upstreams::HttpPeer;
use pingora::prelude::*;
use pingora::proxy::{ProxyHttp, Session, http_proxy_service};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};

/// Where the demo origins listen (`STABLE` and `BETA` move them).
static STABLE: LazyLock<String> = LazyLock::new(|| env_or("STABLE", "127.0.0.1:6191"));
static BETA: LazyLock<String> = LazyLock::new(|| env_or("BETA", "127.0.0.1:6192"));
/// Where the proxy listens (`LISTEN` moves it).
static LISTEN: LazyLock<String> = LazyLock::new(|| env_or("LISTEN", "127.0.0.1:6188"));

/// Shared by every request: a plain atomic, no lock.
struct MyProxy {
    beta_counter: AtomicUsize,
}

/// Created for each request by `new_ctx`, dropped after `logging`.
struct MyCtx {
    beta_user: bool,
    beta_count: usize,
}

impl ProxyHttp for MyProxy {
    type CTX = MyCtx;
    fn new_ctx(&self) -> MyCtx {
        MyCtx {
            beta_user: false,
            beta_count: 0,
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut MyCtx) -> Result<bool> {
        ctx.beta_user = session.get_header("beta-flag").is_some();
        if ctx.beta_user {
            ctx.beta_count = self.beta_counter.fetch_add(1, Ordering::Relaxed) + 1;
            log::info!("beta request #{}", ctx.beta_count);
        }
        Ok(false)
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut MyCtx,
    ) -> Result<Box<HttpPeer>> {
        let addr = if ctx.beta_user { &BETA } else { &STABLE };
        let addr: std::net::SocketAddr = addr.parse().or_err(InternalError, "bad origin")?;
        Ok(Box::new(HttpPeer::new(addr, false, "")))
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut MyCtx,
    ) -> Result<()> {
        if ctx.beta_user {
            upstream_response.insert_header("X-Beta-Count", ctx.beta_count.to_string())?;
        }
        Ok(())
    }
}

struct Origin(&'static str);

#[async_trait]
impl ServeHttp for Origin {
    async fn response(&self, _request: HttpRequest) -> HttpResponse {
        HttpResponse::text(200, format!("hello from the {} origin\n", self.0))
    }
}

/// `var` from the environment, else `default`: the tests run every example
/// on free ports by setting these.
fn env_or(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_owned())
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let mut server = Server::new(Some(Opt::parse_args())).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(1)
    });
    server.bootstrap();

    let mut origins = Vec::new();
    for (name, addr) in [("stable", &*STABLE), ("beta", &*BETA)] {
        let mut origin = ListeningService::new(name, Arc::new(HttpServer::new(Origin(name))));
        origin.add_tcp(addr);
        origins.push(server.add_service(origin));
    }

    let proxy = MyProxy {
        beta_counter: AtomicUsize::new(0),
    };
    let mut service = http_proxy_service(&server.configuration, proxy);
    service.add_tcp(&LISTEN);
    let service = server.add_service(service);
    for origin in &origins {
        server
            .add_dependency(&service, origin)
            .expect("both services belong to this server, without a cycle");
    }
    server.run_forever();
}
