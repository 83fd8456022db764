//! The smallest proxy, for benchmarks: every request goes to one upstream.
//!
//! ```text
//! cargo build --release --example bench_proxy --features proxy
//! target/release/examples/bench_proxy 127.0.0.1:8000 127.0.0.1:6190
//! #                                    upstream       listen
//! # optionally also TLS (h2 and http/1.1 by ALPN):
//! target/release/examples/bench_proxy 127.0.0.1:8000 127.0.0.1:6190 \
//!     127.0.0.1:6443 cert.pem key.pem
//! ```
//!
//! One worker thread, no per-request logging. `../shared/bench/proxy-bench.sh`
//! runs it against nginx. Features: `proxy`.

use pingora::core::server::{Opt, Server, ServerConf};
use pingora::core::upstreams::HttpPeer;
use pingora::prelude::*;
use pingora::proxy::{ProxyHttp, Session, http_proxy_service};

struct ToUpstream(HttpPeer);

impl ProxyHttp for ToUpstream {
    type CTX = ();
    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(self.0.clone()))
    }
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let mut args = std::env::args().skip(1);
    let upstream = args.next().unwrap_or_else(|| "127.0.0.1:8000".to_string());
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:6190".to_string());
    let upstream: std::net::SocketAddr = upstream.parse().unwrap_or_else(|e| {
        eprintln!("usage: bench_proxy UPSTREAM_ADDR LISTEN_ADDR ({e})");
        std::process::exit(2)
    });

    let mut conf = ServerConf::default();
    conf.threads = 1;
    // One thread: a single-threaded runtime, with no work-stealing
    // bookkeeping to pay for.
    conf.work_stealing = false;
    let mut server = Server::new_with_conf(Opt::default(), conf);
    server.bootstrap();
    let mut proxy = http_proxy_service(
        &server.configuration,
        ToUpstream(HttpPeer::new(upstream, false, "")),
    );
    proxy.add_tcp(&listen);
    if let (Some(tls_listen), Some(cert), Some(key)) = (args.next(), args.next(), args.next()) {
        proxy.add_tls(&tls_listen, &cert, &key).unwrap_or_else(|e| {
            eprintln!("bench_proxy: TLS listener: {e}");
            std::process::exit(2)
        });
    }
    server.add_service(proxy);
    server.run_forever();
}
