//! A proxy that compresses responses: brotli, zstd or gzip, whichever the
//! client prefers among those it accepts (brotli on a tie, as browsers
//! send them all), for text-like bodies of 256 bytes or more.
//!
//! ```text
//! cargo run --example compression
//! curl -si --compressed 127.0.0.1:6190/     # content-encoding: br (curl's list)
//! curl -si -H 'Accept-Encoding: gzip' 127.0.0.1:6190/ | head -8   # gzip
//! curl -si 127.0.0.1:6190/                  # no Accept-Encoding: plain
//! curl -si --compressed 127.0.0.1:6190/plain   # this path: never compressed
//! ```
//!
//! The origin (127.0.0.1:6192, a service of the same server) answers a
//! 20 KB HTML page. The proxy registers the compression module once, in
//! `init_downstream_modules`, and turns it off for `/plain` in
//! `request_filter` through the request's module instance. See
//! `docs/src/compression.md`. Features: `proxy`.
//!
//! `LISTEN=addr` and `ORIGIN=addr` move the proxy and the demo origin.
//! The tests (`pingora/tests/examples.rs`) run it that way, on free ports.

use async_trait::async_trait;
use pingora::core::apps::http_app::{HttpRequest, HttpResponse, HttpServer, ServeHttp};
use pingora::core::modules::http::HttpModules;
use pingora::core::modules::http::compression::{ResponseCompression, ResponseCompressionBuilder};
use pingora::core::server::{Opt, Server};
use pingora::core::services::listening::ListeningService;
use pingora::core::upstreams::HttpPeer;
use pingora::prelude::*;
use pingora::proxy::{ProxyHttp, Session, http_proxy_service};
use std::sync::{Arc, LazyLock};

/// Where the demo origin listens (`ORIGIN` moves it).
static ORIGIN: LazyLock<String> = LazyLock::new(|| env_or("ORIGIN", "127.0.0.1:6192"));
/// Where the proxy listens (`LISTEN` moves it).
static LISTEN: LazyLock<String> = LazyLock::new(|| env_or("LISTEN", "127.0.0.1:6190"));

struct CompressingProxy {
    origin: std::net::SocketAddr,
}

impl ProxyHttp for CompressingProxy {
    type CTX = ();
    fn new_ctx(&self) {}

    fn init_downstream_modules(&self, modules: &mut HttpModules) {
        // Level 6 for gzip, brotli and zstd alike: a good ratio at a
        // modest CPU cost (see the table in docs/src/compression.md).
        modules.add_module(ResponseCompressionBuilder::enable(6));
    }

    async fn request_filter(&self, session: &mut Session, _ctx: &mut ()) -> Result<bool> {
        if session.req_header().uri().path() == "/plain" {
            // This request's instance of the module: level 0 turns it off.
            let modules = session.downstream_modules_ctx_mut();
            if let Some(compression) = modules.get_mut::<ResponseCompression>() {
                compression.adjust_level(0);
            }
        }
        Ok(false)
    }

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.origin, false, "")))
    }
}

/// The demo origin: the same HTML page for every path.
struct PageOrigin;

#[async_trait]
impl ServeHttp for PageOrigin {
    async fn response(&self, _request: HttpRequest) -> HttpResponse {
        let mut page = String::from("<!doctype html><title>compression</title><ul>\n");
        for i in 0..500 {
            page.push_str(&format!("<li class=\"item\">item number {i}</li>\n"));
        }
        page.push_str("</ul>\n");
        let mut resp = HttpResponse::text(200, page);
        let _ = resp
            .header_mut()
            .insert_header("Content-Type", "text/html; charset=utf-8");
        resp
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

    let origin_addr = ORIGIN.parse().unwrap_or_else(|e| {
        eprintln!("ORIGIN {}: {e}", *ORIGIN);
        std::process::exit(1)
    });
    let mut origin = ListeningService::new("origin", Arc::new(HttpServer::new(PageOrigin)));
    origin.add_tcp(&ORIGIN);

    let mut service = http_proxy_service(
        &server.configuration,
        CompressingProxy {
            origin: origin_addr,
        },
    );
    service.add_tcp(&LISTEN);

    let origin = server.add_service(origin);
    let proxy = server.add_service(service);
    server
        .add_dependency(&proxy, &origin)
        .expect("both services belong to this server, without a cycle");
    server.run_forever();
}
