//! Rewrite a JSON response on its way through the proxy: the header
//! filters fix the fields, the body filter collects the body and rewrites
//! it at its end.
//!
//! ```text
//! cargo run --example modify_response --features proxy
//! curl -i 127.0.0.1:6188/    # {"name":"pingora-rs","version":1,"proxied":true}
//! ```
//!
//! The origin (127.0.0.1:6191, a service of the same server) answers
//! `{"name":"pingora-rs","version":1}`. Features: `proxy`.
//!
//! `LISTEN=addr` and `ORIGIN=addr` move the proxy and the demo origin.
//! The tests (`pingora/tests/examples.rs`) run it that way, on free ports.

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use pingora::core::apps::http_app::{HttpRequest, HttpResponse, HttpServer, ServeHttp};
use pingora::core::header::ResponseHeader;
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
/// The largest body this example rewrites; it buffers the body, so it
/// must bound it.
const MAX_BODY: usize = 1024 * 1024;

struct Json2Tagged;

/// The body collected so far.
#[derive(Default)]
struct Ctx {
    buffer: BytesMut,
}

impl ProxyHttp for Json2Tagged {
    type CTX = Ctx;
    fn new_ctx(&self) -> Ctx {
        Ctx::default()
    }

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        let addr: std::net::SocketAddr = ORIGIN.parse().or_err(InternalError, "bad origin")?;
        Ok(Box::new(HttpPeer::new(addr, false, "")))
    }

    fn upstream_response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        _ctx: &mut Ctx,
    ) -> Result<()> {
        // The body changes length: let the proxy frame it (chunked).
        upstream_response.remove_header("Content-Length");
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        _ctx: &mut Ctx,
    ) -> Result<()> {
        upstream_response.insert_header("Content-Type", "application/json")?;
        upstream_response.insert_header("X-Rewritten-By", "modify_response")
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> Result<Option<std::time::Duration>> {
        if let Some(piece) = body.take() {
            if ctx.buffer.len() + piece.len() > MAX_BODY {
                return Error::e_explain(InternalError, "body too large to rewrite");
            }
            ctx.buffer.extend_from_slice(&piece);
        }
        if end_of_stream {
            *body = Some(tag(&ctx.buffer));
        }
        Ok(None)
    }
}

/// Add `"proxied":true` to a JSON object; anything else passes unchanged.
fn tag(json: &[u8]) -> Bytes {
    let text = String::from_utf8_lossy(json);
    let trimmed = text.trim_end();
    match trimmed.strip_suffix('}') {
        Some(open) if trimmed.starts_with('{') => {
            let sep = if open.trim_end().ends_with('{') {
                ""
            } else {
                ","
            };
            Bytes::from(format!("{open}{sep}\"proxied\":true}}\n"))
        }
        _ => Bytes::copy_from_slice(json),
    }
}

struct JsonOrigin;

#[async_trait]
impl ServeHttp for JsonOrigin {
    async fn response(&self, _request: HttpRequest) -> HttpResponse {
        HttpResponse::text(200, "{\"name\":\"pingora-rs\",\"version\":1}")
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

    let mut origin = ListeningService::new("origin", Arc::new(HttpServer::new(JsonOrigin)));
    origin.add_tcp(&ORIGIN);
    let origin = server.add_service(origin);

    let mut proxy = http_proxy_service(&server.configuration, Json2Tagged);
    proxy.add_tcp(&LISTEN);
    let proxy = server.add_service(proxy);
    server
        .add_dependency(&proxy, &origin)
        .expect("both services belong to this server, without a cycle");
    server.run_forever();
}
