//! The quick-start load balancer: round robin over two origins.
//!
//! ```text
//! cargo run --example load_balancer --features lb
//! curl 127.0.0.1:6188        # "hello from origin 1", then origin 2, ...
//! ```
//!
//! The two origins run as services of the same `Server` (on 127.0.0.1:6191
//! and :6192), so the demo needs nothing else, and a graceful upgrade
//! (`-u` plus SIGQUIT, see `docs/src/lifecycle.md`) hands every listener
//! over. It takes the standard options: `-c FILE`, `-d`, `-t`, `-u`.
//! `docs/src/quick-start.md` walks through this file.
//!
//! Features: `lb`.

use async_trait::async_trait;
use pingora::core::apps::http_app::{HttpRequest, HttpResponse, HttpServer, ServeHttp};
use pingora::core::header::RequestHeader;
use pingora::core::listeners::TcpSocketOptions;
use pingora::core::server::{Opt, Server};
use pingora::core::services::listening::ListeningService;
use pingora::core::upstreams::HttpPeer;
use pingora::lb::LoadBalancer;
use pingora::lb::selection::RoundRobin;
use pingora::prelude::*;
use pingora::proxy::{ProxyHttp, Session, http_proxy_service};
use std::sync::Arc;

/// The proxy: picks the next origin for every request.
pub struct LB(Arc<LoadBalancer<RoundRobin>>);

#[async_trait]
impl ProxyHttp for LB {
    type CTX = ();
    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        // The key is unused by round robin; 256 bounds the search for a
        // healthy backend.
        let upstream = self
            .0
            .select(b"", 256)
            .ok_or_else(|| Error::explain(ErrorType::HTTPStatus(503), "no healthy upstream"))?;
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
struct Origin(&'static str);

#[async_trait]
impl ServeHttp for Origin {
    async fn response(&self, _request: HttpRequest) -> HttpResponse {
        HttpResponse::text(200, format!("hello from origin {}\n", self.0))
    }
}

/// Listener options for the demo origins. They answer with two writes
/// (head, then body); without `TCP_NODELAY`, Nagle's algorithm holds the
/// body back until the proxy acknowledges the head, up to 40 ms on a
/// kept-alive connection. The proxy's own listeners set it already.
fn origin_options() -> TcpSocketOptions {
    let mut options = TcpSocketOptions::default();
    options.nodelay = true;
    options
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();

    let mut server = Server::new(Some(Opt::parse_args())).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(1)
    });
    server.bootstrap();

    let origins = ["127.0.0.1:6191", "127.0.0.1:6192"];
    let mut handles = Vec::new();
    for (i, addr) in origins.iter().enumerate() {
        let name = if i == 0 { "1" } else { "2" };
        let mut origin = ListeningService::new(
            &format!("origin {name}"),
            Arc::new(HttpServer::new(Origin(name))),
        );
        origin.add_tcp_with_settings(addr, origin_options());
        handles.push(server.add_service(origin));
    }

    let upstreams = LoadBalancer::try_from_iter(origins).expect("the origin addresses are valid");
    let mut lb = http_proxy_service(&server.configuration, LB(Arc::new(upstreams)));
    lb.add_tcp("127.0.0.1:6188");
    let proxy = server.add_service(lb);
    // Take traffic only once both origins listen.
    for origin in &handles {
        server
            .add_dependency(&proxy, origin)
            .expect("both services belong to this server, without a cycle");
    }

    server.run_forever();
}
