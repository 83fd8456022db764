//! The smallest TCP proxy, for benchmarks: every connection goes to one
//! upstream, relayed adaptively on Linux (small reads copied, bulk with
//! `splice(2)`; `BENCH_SPLICE=0`: the plain copy loop instead).
//!
//! ```text
//! cargo build --release --example bench_tcp_proxy --features proxy
//! target/release/examples/bench_tcp_proxy 127.0.0.1:8000 127.0.0.1:6191
//! #                                        upstream       listen
//! ```
//!
//! One worker thread, no per-session logging. `bench/l4-vs-nginx-stream.sh`
//! runs it against nginx `stream` through `proxy-bench.sh`. Features:
//! `proxy`.

use pingora::core::server::{Opt, Server, ServerConf};
use pingora::core::services::listening::ListeningService;
use pingora::core::upstreams::BasicPeer;
use pingora::prelude::*;
use pingora::proxy::l4::{ProxyTcp, TcpProxy, TcpProxyOptions, TcpSession};
use std::net::SocketAddr;
use std::sync::Arc;

struct ToUpstream(SocketAddr);

impl ProxyTcp for ToUpstream {
    type CTX = ();
    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _: &mut TcpSession, _: &mut ()) -> Result<Box<BasicPeer>> {
        Ok(Box::new(BasicPeer::new(self.0)))
    }
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let mut args = std::env::args().skip(1);
    let upstream = args.next().unwrap_or_else(|| "127.0.0.1:8000".to_string());
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:6191".to_string());
    let upstream: SocketAddr = upstream.parse().unwrap_or_else(|e| {
        eprintln!("usage: bench_tcp_proxy UPSTREAM_ADDR LISTEN_ADDR ({e})");
        std::process::exit(2)
    });
    let mut conf = ServerConf::default();
    conf.threads = 1;
    conf.work_stealing = false;
    let mut server = Server::new_with_conf(Opt::default(), conf);
    server.bootstrap();
    let mut options = TcpProxyOptions::default();
    options.splice = std::env::var_os("BENCH_SPLICE").is_none_or(|v| v != "0");
    let proxy = TcpProxy::new(ToUpstream(upstream), &server.configuration)
        .unwrap_or_else(|e| {
            eprintln!("bench_tcp_proxy: {e}");
            std::process::exit(2)
        })
        .with_options(options);
    let mut proxy = ListeningService::new("bench tcp proxy", Arc::new(proxy));
    proxy.add_tcp(&listen);
    server.add_service(proxy);
    server.run_forever();
}
