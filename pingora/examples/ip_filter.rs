//! An IP allow and deny list in front of a proxy: a connection filter
//! drops unwanted clients right after the accept, before TLS or HTTP
//! spends anything on them. The listener also accepts PROXY protocol
//! headers from a balancer on 127.0.0.1, so the filter judges the client
//! the balancer names, not the balancer.
//!
//! ```text
//! cargo run --example ip_filter --features proxy
//! curl -i 127.0.0.1:6188/        # 200: 127.0.0.0/8 is allowed
//! # As a balancer would, for the client 203.0.113.66 (denied): closed.
//! printf 'PROXY TCP4 203.0.113.66 127.0.0.1 5000 6188\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n' \
//!     | nc 127.0.0.1 6188
//! ```
//!
//! Features: `proxy`.
//!
//! `LISTEN=addr` and `ORIGIN=addr` move the proxy and the demo origin;
//! `ALLOW` and `DENY` are comma-separated networks (the deny list wins),
//! `TRUSTED` the balancers whose PROXY headers are believed. The tests
//! (`pingora/tests/examples.rs`) run it on free ports.

use pingora::async_trait;
use pingora::core::apps::ListenerOptions;
use pingora::core::apps::http_app::{HelloApp, HttpServer};
use pingora::core::listeners::{
    Cidr, ConnectionFilter, ProxyProtocolSettings, ServerAddress, TcpSocketOptions,
};
use pingora::core::protocols::SocketAddr;
use pingora::core::server::{Opt, Server};
use pingora::core::services::listening::ListeningService;
use pingora::core::upstreams::HttpPeer;
use pingora::prelude::*;
use pingora::proxy::{ProxyHttp, Session, http_proxy_service};
use std::sync::Arc;

/// Serves the clients in `allow` that are not in `deny`.
struct IpFilter {
    allow: Vec<Cidr>,
    deny: Vec<Cidr>,
}

#[async_trait]
impl ConnectionFilter for IpFilter {
    async fn should_accept(&self, addr: Option<&SocketAddr>) -> bool {
        // A client without an IP address (a Unix socket) is not served.
        let Some(ip) = addr.and_then(SocketAddr::as_inet).map(|a| a.ip()) else {
            return false;
        };
        let listed = |list: &[Cidr]| list.iter().any(|net| net.contains(ip));
        listed(&self.allow) && !listed(&self.deny)
    }
}

/// Proxies every request to the demo origin.
struct ToOrigin(std::net::SocketAddr);

impl ProxyHttp for ToOrigin {
    type CTX = ();
    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.0, false, "")))
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, _ctx: &mut ()) {
        log::info!("{}", session.request_summary());
    }
}

/// `var` from the environment, else `default`.
fn env_or(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_owned())
}

/// The networks in `var` (comma-separated), else in `default`.
fn networks(var: &str, default: &str) -> Vec<Cidr> {
    env_or(var, default)
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse().unwrap_or_else(|e| panic!("{var}: {e}")))
        .collect()
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let mut server = Server::new(Some(Opt::parse_args())).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(1)
    });
    server.bootstrap();
    let listen = env_or("LISTEN", "127.0.0.1:6188");
    let origin_addr = env_or("ORIGIN", "127.0.0.1:6191");

    let mut origin = ListeningService::new("origin", Arc::new(HttpServer::new(HelloApp)));
    origin.add_tcp(&origin_addr);
    let origin = server.add_service(origin);

    let upstream = origin_addr.parse().expect("ORIGIN is an address");
    let mut proxy = http_proxy_service(&server.configuration, ToOrigin(upstream));
    proxy.set_connection_filter(Arc::new(IpFilter {
        allow: networks("ALLOW", "127.0.0.0/8,203.0.113.0/24"),
        deny: networks("DENY", "203.0.113.66"),
    }));
    // Believe a balancer on 127.0.0.1 about its clients; a header is not
    // required, so that a local curl works too.
    let balancers = ProxyProtocolSettings::trusting(networks("TRUSTED", "127.0.0.1"));
    let options = ListenerOptions::default().with_proxy_protocol(balancers.with_required(false));
    let addr = ServerAddress::Tcp(listen, TcpSocketOptions::default());
    proxy
        .add_listener(addr, None, options)
        .expect("a plain listener needs no TLS settings");
    let proxy = server.add_service(proxy);
    server
        .add_dependency(&proxy, &origin)
        .expect("both services belong to this server, without a cycle");
    server.run_forever();
}
