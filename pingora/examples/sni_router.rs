//! TLS passthrough routed by SNI: the proxy reads each client's
//! ClientHello without terminating TLS, picks a backend by the server
//! name (and ALPN), and forwards the bytes unchanged; the backend does the
//! handshake with its own certificate.
//!
//! ```text
//! cargo run --example sni_router
//! curl -k --resolve a.example:6195:127.0.0.1 https://a.example:6195/   # "hello from a.example"
//! curl -k --resolve b.example:6195:127.0.0.1 https://b.example:6195/   # "hello from b.example"
//! curl -k --http2 --resolve c.example:6195:127.0.0.1 https://c.example:6195/  # to b (offers h2)
//! curl -k --http1.1 --resolve c.example:6195:127.0.0.1 https://c.example:6195/  # closed
//! ```
//!
//! The two backends are HTTPS servers of the same `Server` (on
//! 127.0.0.1:6196 and :6197), each with a self-signed certificate for its
//! own name made at start-up (hence `-k`). Names other than `a.example`
//! and `b.example` go to `b` when the client offers HTTP/2 and are closed
//! otherwise. It takes the standard options: `-c FILE`, `-d`, `-t`, `-u`.
//!
//! Features: `proxy`.
//!
//! `LISTEN=addr` moves the proxy, `BACKENDS=a,b` the backends. The tests
//! (`pingora/tests/examples.rs`) run it that way, on free ports.

use async_trait::async_trait;
use pingora::core::apps::http_app::{HttpRequest, HttpResponse, HttpServer, ServeHttp};
use pingora::core::listeners::TcpSocketOptions;
use pingora::core::server::{Opt, Server};
use pingora::core::services::listening::ListeningService;
use pingora::core::tls::{Alpn, CertKey, CertStore, TlsSettings};
use pingora::core::upstreams::BasicPeer;
use pingora::prelude::*;
use pingora::proxy::l4::{ProxyTcp, TcpSession, tcp_proxy_service};
use std::net::SocketAddr;
use std::sync::Arc;

/// The router: `a.example` and `b.example` to their backends, other
/// names offering HTTP/2 to `b`, the rest closed.
struct SniRouter {
    a: SocketAddr,
    b: SocketAddr,
}

impl ProxyTcp for SniRouter {
    type CTX = ();
    fn new_ctx(&self) {}

    async fn upstream_peer(
        &self,
        session: &mut TcpSession,
        _ctx: &mut (),
    ) -> Result<Box<BasicPeer>> {
        // Bounded in size and time; the bytes go to the backend as read.
        let hello = session.read_client_hello().await?;
        let name = hello.server_name.as_deref().unwrap_or("");
        let to = if name.eq_ignore_ascii_case("a.example") {
            self.a
        } else if name.eq_ignore_ascii_case("b.example") || hello.offers_alpn(b"h2") {
            self.b
        } else {
            return Error::e_explain(
                Custom("UnknownServerName"),
                format!("no backend for {name:?}"),
            );
        };
        log::info!("{name:?} -> {to}");
        Ok(Box::new(BasicPeer::new(to)))
    }

    async fn logging(&self, session: &mut TcpSession, e: Option<&Error>, _ctx: &mut ()) {
        if let Some(e) = e {
            log::info!("closed {:?}: {e}", session.client_addr());
        }
    }
}

/// A backend page naming the backend.
struct Hello(&'static str);

#[async_trait]
impl ServeHttp for Hello {
    async fn response(&self, _request: HttpRequest) -> HttpResponse {
        HttpResponse::text(200, format!("hello from {}\n", self.0))
    }
}

/// TLS settings with a self-signed certificate for `name`.
fn self_signed(name: &str) -> TlsSettings {
    let cert = rcgen::generate_simple_self_signed(vec![name.to_owned()]).expect("a certificate");
    let (cert, key) = (cert.cert.pem(), cert.key_pair.serialize_pem());
    let cert = CertKey::from_pem(cert.as_bytes(), key.as_bytes()).expect("a valid pem");
    let mut settings = TlsSettings::new(CertStore::new().with_default(cert));
    settings.set_alpn(Alpn::H2H1);
    settings
}

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

    let backends = env_or("BACKENDS", "127.0.0.1:6196,127.0.0.1:6197");
    let addrs: Vec<SocketAddr> = backends
        .split(',')
        .map(|a| a.parse().expect("BACKENDS holds two ip:port"))
        .collect();
    let [a, b] = addrs[..] else {
        panic!("BACKENDS holds two addresses")
    };
    for (name, addr) in [("a.example", a), ("b.example", b)] {
        let mut backend = ListeningService::new(name, Arc::new(HttpServer::new(Hello(name))));
        let acceptor = self_signed(name).build().expect("a TLS acceptor");
        backend.add_tls_with_settings(&addr.to_string(), TcpSocketOptions::default(), acceptor);
        server.add_service(backend);
    }

    let mut proxy = tcp_proxy_service(server.configuration(), SniRouter { a, b });
    proxy.add_tcp(&env_or("LISTEN", "127.0.0.1:6195"));
    server.add_service(proxy);
    server.run_forever();
}
