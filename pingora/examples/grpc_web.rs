//! Let browsers call a gRPC service: the `GrpcWeb` module turns the
//! proxy into a gRPC-web bridge. Calls arrive as gRPC-web (binary or
//! base64 text, over HTTP/1.1 or HTTP/2) and go to the gRPC origin over
//! HTTP/2; the answers' trailers come back at the end of the body.
//!
//! ```text
//! cargo run --example grpc_web
//! # a text-mode call: one message frame holding "hello", in base64
//! curl -s -H 'Content-Type: application/grpc-web-text' \
//!      -d AAAAAAVoZWxsbw== http://127.0.0.1:6188/demo.Echo/Say; echo
//! # prints the message echoed, then the trailer frame (grpc-status: 0,
//! # x-echoed-bytes: 10), each in padded base64:
//! # AAAAAAVoZWxsbw==gAAAACRncnBjLXN0YXR1czogMA0KeC1lY2hvZWQtYnl0ZXM6IDEwDQo=
//! # the same call in binary mode
//! printf '\0\0\0\0\5hello' | curl -s --data-binary @- \
//!      -H 'Content-Type: application/grpc-web' \
//!      http://127.0.0.1:6188/demo.Echo/Say | od -c
//! ```
//!
//! The origin (127.0.0.1:6191, a service of the same server, cleartext
//! HTTP/2) stands in for a gRPC server: whatever the method, it sends the
//! request's message frames back, then the trailers `grpc-status: 0` and
//! `x-echoed-bytes`. A real deployment points `upstream_peer` at its gRPC
//! service instead; browsers on another origin also need CORS, added in
//! the proxy's phases (see the book's gRPC-web chapter). Features: `proxy`.
//!
//! `LISTEN=addr` and `ORIGIN=addr` move the proxy and the demo origin.
//! The tests (`pingora/tests/examples.rs`) run it that way, on free ports.

use async_trait::async_trait;
use bytes::Bytes;
use pingora::core::apps::ServerApp;
use pingora::core::modules::http::HttpModules;
use pingora::core::modules::http::grpc_web::GrpcWeb;
use pingora::core::protocols::Stream;
use pingora::core::server::{Opt, Server, ShutdownWatch};
use pingora::core::services::listening::ListeningService;
use pingora::core::tls::Alpn;
use pingora::core::upstreams::HttpPeer;
use pingora::prelude::*;
use pingora::proxy::{ProxyHttp, Session, http_proxy_service};
use std::sync::{Arc, LazyLock};

/// Where the demo origin listens (`ORIGIN` moves it).
static ORIGIN: LazyLock<String> = LazyLock::new(|| env_or("ORIGIN", "127.0.0.1:6191"));
/// Where the proxy listens (`LISTEN` moves it).
static LISTEN: LazyLock<String> = LazyLock::new(|| env_or("LISTEN", "127.0.0.1:6188"));

/// The bridge: the module does the translation; the proxy's part is to
/// reach the origin over HTTP/2, which gRPC needs.
struct GrpcWebProxy;

impl ProxyHttp for GrpcWebProxy {
    type CTX = ();
    fn new_ctx(&self) {}

    fn init_downstream_modules(&self, modules: &mut HttpModules) {
        modules.add_module(Box::new(GrpcWeb));
    }

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        let addr: std::net::SocketAddr = ORIGIN.parse().or_err(InternalError, "bad origin")?;
        let mut peer = HttpPeer::new(addr, false, "");
        // Cleartext HTTP/2 (h2c); a TLS origin takes `HttpPeer::new(addr,
        // true, sni)` with the same ALPN.
        peer.options.alpn = Alpn::H2;
        Ok(Box::new(peer))
    }
}

/// The demo gRPC origin: HTTP/2 with prior knowledge, each call answered
/// with its own message frames and the gRPC trailers.
struct EchoOrigin;

#[async_trait]
impl ServerApp for EchoOrigin {
    async fn process_new(self: &Arc<Self>, stream: Stream, _: &ShutdownWatch) -> Option<Stream> {
        let mut conn = h2::server::handshake(stream).await.ok()?;
        while let Some(Ok((req, respond))) = conn.accept().await {
            tokio::spawn(async move {
                if let Err(e) = echo(req, respond).await {
                    log::warn!("echo call failed: {e}");
                }
            });
        }
        None
    }
}

/// Answer one call: the request's frames back, then the trailers.
async fn echo(
    req: http::Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
) -> Result<(), h2::Error> {
    let mut body = req.into_body();
    let mut echoed = Vec::new();
    while let Some(data) = body.data().await {
        let data = data?;
        let _ = body.flow_control().release_capacity(data.len());
        echoed.extend_from_slice(&data);
    }
    let mut head = http::Response::new(());
    head.headers_mut().insert(
        "content-type",
        http::HeaderValue::from_static("application/grpc"),
    );
    let mut send = respond.send_response(head, false)?;
    let len = echoed.len();
    send.send_data(Bytes::from(echoed), false)?;
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
    trailers.insert("x-echoed-bytes", http::HeaderValue::from(len));
    send.send_trailers(trailers)
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

    let mut origin = ListeningService::new("grpc origin", Arc::new(EchoOrigin));
    origin.add_tcp(&ORIGIN);
    let origin = server.add_service(origin);

    let mut proxy = http_proxy_service(&server.configuration, GrpcWebProxy);
    proxy.add_tcp(&LISTEN);
    let proxy = server.add_service(proxy);
    server
        .add_dependency(&proxy, &origin)
        .expect("both services belong to this server, without a cycle");
    server.run_forever();
}
