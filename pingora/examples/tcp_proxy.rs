//! A load-balanced TCP proxy: round robin over two health-checked origins,
//! relaying raw bytes (no HTTP) both ways.
//!
//! ```text
//! cargo run --example tcp_proxy
//! nc 127.0.0.1 6190          # "origin 1", then echoes what you type
//! nc 127.0.0.1 6190          # the next connection: "origin 2"
//! ```
//!
//! The two origins run as services of the same `Server` (on
//! 127.0.0.1:6193 and :6194): each greets with its name, then echoes. A
//! background service checks every second that they accept TCP
//! connections; the proxy skips one that does not. Between two plain TCP
//! sockets the proxy relays bulk transfers with `splice(2)` on Linux
//! (small messages are copied, which is cheaper); each session is
//! logged with its byte counts when it ends. It takes the standard
//! options: `-c FILE`, `-d`, `-t`, `-u`.
//!
//! Features: `lb`.
//!
//! `LISTEN=addr` moves the proxy, `ORIGINS=a,b` the demo origins. The
//! tests (`pingora/tests/examples.rs`) run it that way, on free ports.

use async_trait::async_trait;
use pingora::core::apps::ServerApp;
use pingora::core::protocols::Stream;
use pingora::core::server::{Opt, Server, ShutdownWatch};
use pingora::core::services::background::background_service;
use pingora::core::services::listening::ListeningService;
use pingora::core::upstreams::BasicPeer;
use pingora::lb::LoadBalancer;
use pingora::lb::health_check::TcpHealthCheck;
use pingora::lb::selection::RoundRobin;
use pingora::prelude::*;
use pingora::proxy::l4::{ProxyTcp, TcpSession, tcp_proxy_service};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The proxy: each connection goes to the next healthy origin.
struct Balanced(Arc<LoadBalancer<RoundRobin>>);

impl ProxyTcp for Balanced {
    type CTX = ();
    fn new_ctx(&self) {}

    async fn upstream_peer(
        &self,
        _session: &mut TcpSession,
        _ctx: &mut (),
    ) -> Result<Box<BasicPeer>> {
        let upstream = self
            .0
            .select(b"", 256)
            .ok_or_else(|| Error::explain(ConnectError, "no healthy upstream"))?;
        let mut peer = BasicPeer::new(upstream.addr.clone());
        peer.options.connection_timeout = Some(Duration::from_secs(2));
        Ok(Box::new(peer))
    }

    async fn logging(&self, session: &mut TcpSession, e: Option<&Error>, _ctx: &mut ()) {
        let peer = session.peer().map(ToString::to_string).unwrap_or_default();
        log::info!(
            "tcp session to {peer}: {} bytes in, {} bytes out, spliced: {}, {:?}, error: {}",
            session.bytes_from_downstream(),
            session.bytes_from_upstream(),
            session.spliced(),
            session.duration().unwrap_or_default(),
            e.map_or_else(|| "none".to_owned(), ToString::to_string),
        );
    }
}

/// A demo origin: greets with its name, then echoes until the client
/// ends its side.
struct Origin(String);

#[async_trait]
impl ServerApp for Origin {
    async fn process_new(
        self: &Arc<Self>,
        mut stream: Stream,
        _: &ShutdownWatch,
    ) -> Option<Stream> {
        let greeting = format!("origin {}\n", self.0);
        stream.write_all(greeting.as_bytes()).await.ok()?;
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => stream.write_all(&buf[..n]).await.ok()?,
            }
        }
        let _ = stream.shutdown().await;
        None
    }
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

    let origins = env_or("ORIGINS", "127.0.0.1:6193,127.0.0.1:6194");
    let origins: Vec<&str> = origins.split(',').collect();
    let mut handles = Vec::new();
    for (i, addr) in origins.iter().enumerate() {
        let name = (i + 1).to_string();
        let mut origin = ListeningService::new(&format!("origin {name}"), Arc::new(Origin(name)));
        origin.add_tcp(addr);
        handles.push(server.add_service(origin));
    }

    let mut upstreams =
        LoadBalancer::try_from_iter(origins).expect("the origin addresses are valid");
    // Every second, connect to each origin: a refused connect takes it
    // out of the rotation, a good one brings it back.
    upstreams.set_health_check(TcpHealthCheck::new());
    upstreams.health_check_frequency = Some(Duration::from_secs(1));
    let health_check = background_service("health check", upstreams);
    let mut proxy = tcp_proxy_service(server.configuration(), Balanced(health_check.task()));
    proxy.add_tcp(&env_or("LISTEN", "127.0.0.1:6190"));

    let health_check = server.add_service(health_check);
    let proxy = server.add_service(proxy);
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
