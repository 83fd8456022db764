//! The quick-start load balancer: round robin over two health-checked
//! origins.
//!
//! ```text
//! cargo run --example load_balancer
//! curl 127.0.0.1:6188        # "hello from origin 1", then origin 2, ...
//! ```
//!
//! The two origins run as services of the same `Server` (on 127.0.0.1:6191
//! and :6192), so the demo needs nothing else. A background service probes
//! them every second and the proxy skips one that fails; the proxy starts
//! accepting only after the first round of probes. A graceful upgrade
//! (`-u` plus SIGQUIT, see `docs/src/lifecycle.md`) hands every listener
//! over. It takes the standard options: `-c FILE`, `-d`, `-t`, `-u`.
//! `docs/src/quick-start.md` walks through this file.
//!
//! Features: `lb`.
//!
//! `LISTEN=addr` moves the proxy, `ORIGINS=a,b` the demo origins, and
//! `UPSTREAMS=a,b,...` balances over running origins instead of starting
//! the demo ones.
//! The tests (`pingora/tests/examples.rs`) run it that way, on free ports.

use async_trait::async_trait;
use pingora::core::apps::http_app::{HttpRequest, HttpResponse, HttpServer, ServeHttp};
use pingora::core::header::RequestHeader;
use pingora::core::server::{Opt, Server};
use pingora::core::services::background::background_service;
use pingora::core::services::listening::ListeningService;
use pingora::core::upstreams::HttpPeer;
use pingora::lb::LoadBalancer;
use pingora::lb::health_check::HttpHealthCheck;
use pingora::lb::selection::RoundRobin;
use pingora::prelude::*;
use pingora::proxy::{ProxyHttp, Session, http_proxy_service};
use std::sync::Arc;
use std::time::Duration;

/// The proxy: picks the next origin for every request.
pub struct LB(Arc<LoadBalancer<RoundRobin>>);

impl ProxyHttp for LB {
    type CTX = ();
    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        // The key is unused by round robin; 256 bounds the search for a
        // healthy backend.
        let upstream = self
            .0
            .select(b"", 256)
            .ok_or_else(|| Error::explain(HTTPStatus(503), "no healthy upstream"))?;
        log::info!("upstream peer is: {upstream}");
        Ok(Box::new(HttpPeer::new(upstream.addr, false, "")))
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut RequestHeader,
        _ctx: &mut (),
    ) -> Result<()> {
        // Name the origin the way it expects to be called.
        upstream_request.insert_header("Host", "origin.local")
    }
}

/// A demo origin that says who it is.
struct Origin(String);

#[async_trait]
impl ServeHttp for Origin {
    async fn response(&self, _request: HttpRequest) -> HttpResponse {
        HttpResponse::text(200, format!("hello from origin {}\n", self.0))
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

    // `UPSTREAMS=a,b,...` balances over running origins instead of the
    // two demo ones; `ORIGINS=a,b` moves the demo origins.
    let upstreams = std::env::var("UPSTREAMS").ok();
    let origins = upstreams
        .clone()
        .unwrap_or_else(|| env_or("ORIGINS", "127.0.0.1:6191,127.0.0.1:6192"));
    let origins: Vec<&str> = origins.split(',').collect();
    let demo = if upstreams.is_some() {
        &[][..]
    } else {
        &origins[..]
    };
    let mut handles = Vec::new();
    for (i, addr) in demo.iter().enumerate() {
        let name = (i + 1).to_string();
        let mut origin = ListeningService::new(
            &format!("origin {name}"),
            Arc::new(HttpServer::new(Origin(name))),
        );
        origin.add_tcp(addr);
        handles.push(server.add_service(origin));
    }

    let mut upstreams =
        LoadBalancer::try_from_iter(origins).expect("the origin addresses are valid");
    // Every second, `GET /` each origin: one failed probe takes it out of
    // the rotation, one good probe brings it back.
    upstreams.set_health_check(HttpHealthCheck::new("origin.local", false));
    upstreams.health_check_frequency = Some(Duration::from_secs(1));
    // The probes run as a background service; the proxy shares its
    // load balancer.
    let health_check = background_service("health check", upstreams);
    let mut lb = http_proxy_service(&server.configuration, LB(health_check.task()));
    lb.add_tcp(&env_or("LISTEN", "127.0.0.1:6188"));

    let health_check = server.add_service(health_check);
    let proxy = server.add_service(lb);
    // Probe once both origins listen; take traffic once the first probes
    // are done.
    for origin in &handles {
        server
            .add_dependency(&health_check, origin)
            .expect("both services belong to this server, without a cycle");
    }
    server
        .add_dependency(&proxy, &health_check)
        .expect("both services belong to this server, without a cycle");

    server.run_forever();
}
