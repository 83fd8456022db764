//! An API gateway: requests without a login header get 403 from the proxy
//! itself; the rest go to the origin.
//!
//! ```text
//! cargo run --example gateway --features proxy
//! curl -i 127.0.0.1:6188/                          # 403
//! curl -i -H 'x-login: letmein' 127.0.0.1:6188/    # 200, from the origin
//! ```
//!
//! Features: `proxy`.
//!
//! `LISTEN=addr` and `ORIGIN=addr` move the proxy and the demo origin.
//! The tests (`pingora/tests/examples.rs`) run it that way, on free ports.

use pingora::core::apps::http_app::{HelloApp, HttpServer};
use pingora::core::server::{Opt, Server};
use pingora::core::services::listening::ListeningService;
use pingora::core::upstreams::HttpPeer;
use pingora::prelude::*;
use pingora::proxy::{ProxyHttp, Session, http_proxy_service};
use std::sync::{Arc, LazyLock};

/// Where the demo origin listens (`ORIGIN` moves it).
static ORIGIN: LazyLock<String> = LazyLock::new(|| env_or("ORIGIN", "127.0.0.1:6191"));
/// Where the proxy listens (`LISTEN` moves it).
static LISTEN: LazyLock<String> = LazyLock::new(|| env_or("LISTEN", "127.0.0.1:6188"));

struct Gateway;

impl ProxyHttp for Gateway {
    type CTX = ();
    fn new_ctx(&self) {}

    async fn request_filter(&self, session: &mut Session, _ctx: &mut ()) -> Result<bool> {
        let logged_in = session
            .get_header("x-login")
            .is_some_and(|v| v.as_bytes() == b"letmein");
        if !logged_in {
            session.respond_error(403).await?;
            // The response is written: stop here.
            return Ok(true);
        }
        Ok(false)
    }

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        let addr: std::net::SocketAddr = ORIGIN.parse().or_err(InternalError, "bad origin")?;
        Ok(Box::new(HttpPeer::new(addr, false, "")))
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, _ctx: &mut ()) {
        let status = session.response_status().unwrap_or(0);
        let error = e.map(ToString::to_string).unwrap_or_default();
        log::info!("{} -> {status} {error}", session.request_summary());
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

    let mut origin = ListeningService::new("origin", Arc::new(HttpServer::new(HelloApp)));
    origin.add_tcp(&ORIGIN);
    let origin = server.add_service(origin);

    let mut gateway = http_proxy_service(&server.configuration, Gateway);
    gateway.add_tcp(&LISTEN);
    let gateway = server.add_service(gateway);
    server
        .add_dependency(&gateway, &origin)
        .expect("both services belong to this server, without a cycle");
    server.run_forever();
}
