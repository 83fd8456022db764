//! The smallest proxy, for benchmarks: every request goes to one upstream.
//!
//! ```text
//! cargo build --release --example bench_proxy --features proxy,cache
//! target/release/examples/bench_proxy 127.0.0.1:8000 127.0.0.1:6190
//! #                                    upstream       listen
//! # optionally also TLS (h2 and http/1.1 by ALPN):
//! target/release/examples/bench_proxy 127.0.0.1:8000 127.0.0.1:6190 \
//!     127.0.0.1:6443 cert.pem key.pem
//! ```
//!
//! One worker thread, no per-request logging. `../shared/bench/proxy-bench.sh`
//! runs it against nginx. With `BENCH_CACHE=1` in the environment it also
//! caches every 200 response in memory for 60 s (like nginx's
//! `proxy_cache_valid 200 60s`), to measure cache hits; with
//! `BENCH_CACHE=disk:/some/dir` it caches in files under that directory
//! instead (a `DiskCache` of 1 GiB, like nginx's `proxy_cache_path`; the
//! directory is created, and entries left there by an earlier run are hits
//! from the start). `BENCH_METRICS=0` turns the framework's metrics off,
//! to measure what they cost. Features: `proxy`.

use pingora::cache::storage::{Storage, disk::DiskCache};
use pingora::cache::{CacheLock, CacheMetaDefaults, MemCache};
use pingora::core::server::{Opt, Server, ServerConf};
use pingora::core::upstreams::HttpPeer;
use pingora::prelude::*;
use pingora::proxy::{ProxyHttp, Session, http_proxy_service};
use std::sync::Arc;
use std::time::Duration;

struct ToUpstream {
    peer: HttpPeer,
    /// The storage and lock when caching.
    cache: Option<(Arc<dyn Storage>, Arc<CacheLock>)>,
}

/// 60 s for a 200 without a lifetime of its own.
fn sixty_seconds(status: http::StatusCode) -> Option<u32> {
    (status == http::StatusCode::OK).then_some(60)
}

impl ProxyHttp for ToUpstream {
    type CTX = ();
    fn new_ctx(&self) {}

    fn request_cache_filter(&self, session: &mut Session, _ctx: &mut ()) -> Result<()> {
        if let Some((storage, lock)) = &self.cache {
            let defaults = CacheMetaDefaults::new(sixty_seconds, 0, 0);
            session
                .cache
                .enable(storage.clone(), Some(lock.clone()), defaults);
        }
        Ok(())
    }

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(self.peer.clone()))
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
    if std::env::var_os("BENCH_METRICS").is_some_and(|v| v == "0") {
        pingora::core::metrics::set_enabled(false);
    }
    let cache = std::env::var("BENCH_CACHE").ok().map(|choice| {
        let storage: Arc<dyn Storage> = match choice.strip_prefix("disk:") {
            Some(dir) => Arc::new(DiskCache::new(dir, 1 << 30).unwrap_or_else(|e| {
                eprintln!("bench_proxy: disk cache in {dir}: {e}");
                std::process::exit(2)
            })),
            None => Arc::new(MemCache::new(256 << 20)),
        };
        (storage, Arc::new(CacheLock::new(Duration::from_secs(5))))
    });
    let peer = HttpPeer::new(upstream, false, "");
    let mut proxy = http_proxy_service(&server.configuration, ToUpstream { peer, cache });
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
