//! A caching proxy: responses the origin allows to be cached are kept in
//! memory and served without asking it again, until they expire; a
//! `PURGE` request removes one.
//!
//! ```text
//! cargo run --example cache_proxy
//! curl -i 127.0.0.1:6188/        # x-cache: miss, x-origin-count: 1
//! curl -i 127.0.0.1:6188/        # x-cache: hit, still count 1, with an Age
//! curl -X PURGE 127.0.0.1:6188/  # 200: removed
//! curl -i 127.0.0.1:6188/        # x-cache: miss, count 2
//! ```
//!
//! The origin (127.0.0.1:6191, a service of the same server) counts its
//! requests and answers with `Cache-Control: max-age=10`. The proxy turns
//! caching on for every request in `request_cache_filter`: a 64 MiB
//! in-memory storage and a cache lock, so that concurrent misses of one
//! URL send a single request to the origin. What may be stored, and for
//! how long, follows RFC 9111 (see `docs/src/caching.md`).
//! Features: `cache`.
//!
//! `LISTEN=addr` and `ORIGIN=addr` move the proxy and the demo origin.
//! The tests (`pingora/tests/examples.rs`) run it that way, on free ports.

use async_trait::async_trait;
use pingora::cache::{CacheLock, CacheMetaDefaults, MemCache};
use pingora::core::apps::http_app::{HttpRequest, HttpResponse, HttpServer, ServeHttp};
use pingora::core::header::ResponseHeader;
use pingora::core::server::{Opt, Server};
use pingora::core::services::listening::ListeningService;
use pingora::core::upstreams::HttpPeer;
use pingora::prelude::*;
use pingora::proxy::{ProxyHttp, Session, http_proxy_service};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

/// Where the demo origin listens (`ORIGIN` moves it).
static ORIGIN: LazyLock<String> = LazyLock::new(|| env_or("ORIGIN", "127.0.0.1:6191"));
/// Where the proxy listens (`LISTEN` moves it).
static LISTEN: LazyLock<String> = LazyLock::new(|| env_or("LISTEN", "127.0.0.1:6188"));

/// The proxy: one storage and one lock, shared by every request.
struct CachingProxy {
    origin: std::net::SocketAddr,
    storage: Arc<MemCache>,
    lock: Arc<CacheLock>,
}

impl ProxyHttp for CachingProxy {
    type CTX = ();
    fn new_ctx(&self) {}

    fn request_cache_filter(&self, session: &mut Session, _ctx: &mut ()) -> Result<()> {
        // RFC 9111's rules, with no freshness of our own for responses
        // that give none (they are not stored).
        let defaults = CacheMetaDefaults::default();
        let storage = self.storage.clone();
        session
            .cache
            .enable(storage, Some(self.lock.clone()), defaults);
        Ok(())
    }

    fn is_purge(&self, session: &Session, _ctx: &()) -> bool {
        session.req_header().method().as_str() == "PURGE"
    }

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.origin, false, "")))
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        _ctx: &mut (),
    ) -> Result<()> {
        // Say where the answer came from: hit, miss, stale, ...
        resp.insert_header("X-Cache", session.cache.phase().as_str())
    }
}

/// The demo origin: counts its requests and lets them be cached 10 s.
struct CountingOrigin(AtomicUsize);

#[async_trait]
impl ServeHttp for CountingOrigin {
    async fn response(&self, _request: HttpRequest) -> HttpResponse {
        let count = self.0.fetch_add(1, Ordering::Relaxed) + 1;
        let mut resp = HttpResponse::text(200, "hello from the origin\n");
        let header = resp.header_mut();
        let _ = header.insert_header("Cache-Control", "max-age=10");
        let _ = header.insert_header("X-Origin-Count", count.to_string());
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
    let mut origin = ListeningService::new(
        "origin",
        Arc::new(HttpServer::new(CountingOrigin(AtomicUsize::new(0)))),
    );
    origin.add_tcp(&ORIGIN);

    let proxy = CachingProxy {
        origin: origin_addr,
        storage: Arc::new(MemCache::new(64 << 20)),
        lock: Arc::new(CacheLock::new(Duration::from_secs(5))),
    };
    let mut service = http_proxy_service(&server.configuration, proxy);
    service.add_tcp(&LISTEN);

    let origin = server.add_service(origin);
    let proxy = server.add_service(service);
    server
        .add_dependency(&proxy, &origin)
        .expect("both services belong to this server, without a cycle");
    server.run_forever();
}
