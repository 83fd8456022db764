//! A UDP proxy: each client sticks to one of two upstreams, chosen round
//! robin by a `LoadBalancer` when its session starts; sessions end after
//! a few idle seconds and are logged with what went each way.
//!
//! ```text
//! cargo run --example udp_proxy                  # proxy on 127.0.0.1:6153
//! echo -n hello | socat -t 1 - UDP:127.0.0.1:6153   # "upstream 1: hello"
//! echo -n hello | socat -t 1 - UDP:127.0.0.1:6153   # a new client port: "upstream 2: hello"
//! ```
//!
//! The two upstreams are UDP echo services the example starts itself (on
//! 127.0.0.1:6154 and :6155), written with the plain UDP service API
//! (`DatagramApp`); the proxy implements `ProxyUdp`.
//!
//! Features: `lb` (on by default).
//!
//! `LISTEN=addr` moves the proxy, `UPSTREAMS=addr1,addr2` the upstreams,
//! `IDLE_MS=n` sets the sessions' idle timeout (default 5000).
//! The tests (`pingora/tests/examples.rs`) run it that way, on free ports.

use async_trait::async_trait;
use bytes::Bytes;
use pingora::core::server::{Opt, Server};
use pingora::core::services::udp::{DatagramApp, DatagramReply, UdpService};
use pingora::lb::LoadBalancer;
use pingora::lb::selection::RoundRobin;
use pingora::proxy::udp::udp_proxy_service_with_options;
use pingora::proxy::udp::{ProxyUdp, SessionEnd, UdpPeer, UdpProxyOptions, UdpSession};
use pingora::{Error, ErrorType, OkOrErr, Result};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// An upstream: answers each datagram with `NAME: ` and the datagram.
struct Echo(String);

#[async_trait]
impl DatagramApp for Echo {
    async fn process_datagram(
        self: &Arc<Self>,
        datagram: Bytes,
        _from: SocketAddr,
        reply: &DatagramReply,
    ) {
        let mut answer = format!("{}: ", self.0).into_bytes();
        answer.extend_from_slice(&datagram);
        let _ = reply.send(&answer).await;
    }
}

/// The proxy: a round-robin choice per new session, and a log line per
/// session.
struct Balancer(LoadBalancer<RoundRobin>);

impl ProxyUdp for Balancer {
    type CTX = ();
    fn new_ctx(&self) {}

    async fn upstream_peer(&self, session: &UdpSession, _: &[u8], _: &mut ()) -> Result<UdpPeer> {
        let backend = self
            .0
            .select(b"", 256)
            .or_err(ErrorType::ConnectNoRoute, "no upstream")?;
        let addr = *backend.addr.as_inet().or_err(
            ErrorType::ConnectNoRoute,
            "a UDP upstream needs an IP address",
        )?;
        log::info!("new session: {} -> {addr}", session.client_addr());
        Ok(UdpPeer::new(addr))
    }

    async fn logging(&self, session: &UdpSession, error: Option<&Error>, _: &mut ()) {
        log::info!(
            "session ended ({}): {} -> {}, {} datagrams ({} bytes) up, {} datagrams ({} bytes) down, {} dropped, after {:?}{}",
            session.end_reason().map_or("running", SessionEnd::as_str),
            session.client_addr(),
            session
                .upstream_addr()
                .map_or("no upstream".to_owned(), |a| a.to_string()),
            session.datagrams_to_upstream(),
            session.bytes_to_upstream(),
            session.datagrams_to_client(),
            session.bytes_to_client(),
            session.datagrams_dropped(),
            session.duration(),
            error.map(|e| format!(", error: {e}")).unwrap_or_default(),
        );
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

    let upstreams = env_or("UPSTREAMS", "127.0.0.1:6154,127.0.0.1:6155");
    let upstreams: Vec<&str> = upstreams.split(',').collect();
    for (i, addr) in upstreams.iter().enumerate() {
        let name = format!("upstream {}", i + 1);
        let mut echo = UdpService::new(&name, Arc::new(Echo(name.clone())));
        echo.add_udp(addr);
        server.add_service(echo);
    }

    let balancer =
        LoadBalancer::try_from_iter(&upstreams).expect("the upstream addresses are valid");
    let idle_ms: u64 = env_or("IDLE_MS", "5000")
        .parse()
        .expect("IDLE_MS is a number");
    let mut options = UdpProxyOptions::default();
    options.idle_timeout = Duration::from_millis(idle_ms);
    let mut proxy = udp_proxy_service_with_options("udp proxy", Balancer(balancer), options);
    proxy.add_udp(&env_or("LISTEN", "127.0.0.1:6153"));
    server.add_service(proxy);

    server.run_forever();
}
