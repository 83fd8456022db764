//! A two-level cache fleet: edge proxies hash each request's cache key
//! with ketama to one of several shard proxies, which cache and fetch from
//! the origin. However many edges a key is asked through, one shard holds
//! it and the origin sees one fetch.
//!
//! ```text
//! cargo run --example cache_fleet          # the whole fleet in one process
//! curl -i 127.0.0.1:6188/a                 # x-shard: 127.0.0.1:620N, x-shard-cache: miss
//! curl -i 127.0.0.1:6188/a                 # the same shard, x-shard-cache: hit
//! curl 127.0.0.1:6188/__shards             # the edge's view: each shard up or down
//! curl 127.0.0.1:6191/__counts             # origin fetches per path
//! ```
//!
//! With no argument it runs a demo fleet as services of one server: the
//! origin (127.0.0.1:6191), three shards (127.0.0.1:6201-6203) and one
//! edge (127.0.0.1:6188). With a role as its first argument it runs one
//! member of a real fleet, one process each:
//!
//! - `origin`: a counting origin. Every path answers
//!   `Cache-Control: max-age=60` and its fetch count in `X-Origin-Count`;
//!   `GET /__counts` lists `count path` lines. `LISTEN` sets its address.
//! - `shard`: an upper-tier caching proxy: in-memory storage and a cache
//!   lock, so that concurrent misses of one key make one origin fetch.
//!   Answers `GET /__health` itself, and says who served a response in
//!   `X-Shard` (its `LISTEN` address) and `X-Shard-Cache` (hit, miss ...).
//!   `LISTEN` and `ORIGIN` set its addresses.
//! - `edge`: a plain (non-caching) proxy that sends each request to the
//!   shard that owns its cache key: `LISTEN`, and `SHARDS=a,b,c` (every
//!   edge must be given the same set; order does not matter). It probes
//!   `GET /__health` on each shard every `HEALTH_CHECK_MS` (default 1000)
//!   and moves a down shard's keys to the next shard on the ring;
//!   `GET /__shards` shows its view.
//!
//! Any other argument prints the usage. The server options of the other
//! examples (`-c`, `-d`, `-u`) are not read: the one argument is the role.
//! The demo reads the same variables (`LISTEN` for its edge, `ORIGIN`,
//! `SHARDS`). `docs/src/tiered-caching.md` explains the design; the test
//! `pingora/tests/cache_fleet.rs` runs 1 origin, 3 shards and 3 edges as
//! processes and stops a shard. Features: `lb`, `cache`.

use async_trait::async_trait;
use pingora::cache::{CacheKey, CacheLock, CacheMetaDefaults, MemCache};
use pingora::core::apps::http_app::{HttpRequest, HttpResponse, HttpServer, ServeHttp};
use pingora::core::header::ResponseHeader;
use pingora::core::server::{Opt, Server, ServiceHandle};
use pingora::core::services::background::background_service;
use pingora::core::services::listening::ListeningService;
use pingora::core::upstreams::HttpPeer;
use pingora::lb::selection::KetamaHashing;
use pingora::prelude::*;
use pingora::proxy::{ProxyHttp, Session, http_proxy_service};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

// === the edge ===

/// The lower tier: forwards each request to the shard owning its key.
struct Edge {
    listen: String,
    shards: Arc<LoadBalancer<KetamaHashing>>,
}

/// Per request: the shards already tried, so that a retry moves on.
#[derive(Default)]
struct Tried(Vec<Backend>);

impl ProxyHttp for Edge {
    type CTX = Tried;
    fn new_ctx(&self) -> Tried {
        Tried::default()
    }

    async fn request_filter(&self, session: &mut Session, _ctx: &mut Tried) -> Result<bool> {
        if session.req_header().uri().path() != "/__shards" {
            return Ok(false);
        }
        let mut view = String::new();
        for shard in self.shards.backends().get_backend().iter() {
            let up = self.shards.backends().ready(shard);
            view.push_str(&format!(
                "{} {}\n",
                shard.addr,
                if up { "up" } else { "down" }
            ));
        }
        session.respond_error_with_body(200, view.into()).await?;
        Ok(true)
    }

    async fn upstream_peer(
        &self,
        session: &mut Session,
        tried: &mut Tried,
    ) -> Result<Box<HttpPeer>> {
        // The key the shard will cache under (`http://host/path?query`, the
        // default cache key): every request for one cached object goes to
        // the one shard that may hold it.
        let key = CacheKey::default(session.req_header());
        // The owner, or when it is down or was already tried (its connect
        // failed before the health check noticed), the next shard
        // clockwise on the ring: where the key lives while it is gone.
        let shard = self
            .shards
            .select_with(key.primary(), 16, |b, healthy| {
                healthy && !tried.0.contains(b)
            })
            .ok_or_else(|| Error::explain(HTTPStatus(503), "no shard left for this key"))?;
        let peer = HttpPeer::new(shard.addr.clone(), false, "");
        tried.0.push(shard);
        Ok(Box::new(peer))
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        resp: &mut ResponseHeader,
        _ctx: &mut Tried,
    ) -> Result<()> {
        resp.insert_header("X-Edge", self.listen.as_str())
    }
}

/// Add an edge on `listen` over `shards`, and the health check feeding
/// it; the edge takes traffic once the first probes are done.
fn add_edge(server: &mut Server, listen: &str, shards: &[&str], every: Duration) -> ServiceHandle {
    let mut lb = LoadBalancer::<KetamaHashing>::try_from_iter(shards).unwrap_or_else(|e| {
        eprintln!("SHARDS {shards:?}: {e}");
        std::process::exit(1)
    });
    let check = HttpHealthCheck::new("shard.local", false)
        .path("/__health")
        .expect("a constant path is a valid target");
    lb.set_health_check(check);
    lb.health_check_frequency = Some(every);
    let health_check = background_service("shard health check", lb);
    let edge = Edge {
        listen: listen.to_owned(),
        shards: health_check.task(),
    };
    let mut service = http_proxy_service(&server.configuration, edge);
    service.add_tcp(listen);
    let health_check = server.add_service(health_check);
    let edge = server.add_service(service);
    server
        .add_dependency(&edge, &health_check)
        .expect("both services belong to this server, without a cycle");
    health_check
}

// === a shard ===

/// The upper tier: a caching proxy in front of the origin.
struct Shard {
    listen: String,
    origin: SocketAddr,
    storage: Arc<MemCache>,
    lock: Arc<CacheLock>,
}

impl ProxyHttp for Shard {
    type CTX = ();
    fn new_ctx(&self) {}

    async fn request_filter(&self, session: &mut Session, _ctx: &mut ()) -> Result<bool> {
        // The edges' probe: answered here, before any cache phase.
        if session.req_header().uri().path() == "/__health" {
            session.respond_error_with_body(200, "ok\n".into()).await?;
            return Ok(true);
        }
        Ok(false)
    }

    fn request_cache_filter(&self, session: &mut Session, _ctx: &mut ()) -> Result<()> {
        // The lock makes concurrent misses of one key, from any edge, wait
        // for a single origin fetch.
        let storage = self.storage.clone();
        let defaults = CacheMetaDefaults::default();
        session
            .cache
            .enable(storage, Some(self.lock.clone()), defaults);
        Ok(())
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
        resp.insert_header("X-Shard", self.listen.as_str())?;
        resp.insert_header("X-Shard-Cache", session.cache.phase().as_str())
    }
}

fn add_shard(server: &mut Server, listen: &str, origin: &str) -> ServiceHandle {
    let origin = origin.parse().unwrap_or_else(|e| {
        eprintln!("ORIGIN {origin}: {e}");
        std::process::exit(1)
    });
    let shard = Shard {
        listen: listen.to_owned(),
        origin,
        storage: Arc::new(MemCache::new(64 << 20)),
        lock: Arc::new(CacheLock::new(Duration::from_secs(5))),
    };
    let mut service = http_proxy_service(&server.configuration, shard);
    service.add_tcp(listen);
    server.add_service(service)
}

// === the origin ===

/// Counts fetches per path and lets every answer be cached for a minute.
#[derive(Default)]
struct CountingOrigin(Mutex<BTreeMap<String, u64>>);

#[async_trait]
impl ServeHttp for CountingOrigin {
    async fn response(&self, request: HttpRequest) -> HttpResponse {
        let path = request.header().uri().path().to_owned();
        // A poisoned lock only means another request panicked mid-count.
        let mut counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if path == "/__counts" {
            let list: String = counts.iter().map(|(p, n)| format!("{n} {p}\n")).collect();
            let mut resp = HttpResponse::text(200, list);
            let _ = resp.header_mut().insert_header("Cache-Control", "no-store");
            return resp;
        }
        let count = counts.entry(path.clone()).or_insert(0);
        *count += 1;
        let mut resp = HttpResponse::text(200, format!("content of {path}\n"));
        let header = resp.header_mut();
        let _ = header.insert_header("Cache-Control", "max-age=60");
        let _ = header.insert_header("X-Origin-Count", count.to_string());
        resp
    }
}

fn add_origin(server: &mut Server, listen: &str) -> ServiceHandle {
    let app = HttpServer::new(CountingOrigin::default());
    let mut origin = ListeningService::new("origin", Arc::new(app));
    origin.add_tcp(listen);
    server.add_service(origin)
}

// === roles ===

/// `var` from the environment, else `default`: the tests run the fleet on
/// free ports by setting these.
fn env_or(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_owned())
}

const USAGE: &str = "usage: cache_fleet [origin|shard|edge]
  (no role)  the whole demo fleet in one process
  origin     LISTEN=addr
  shard      LISTEN=addr ORIGIN=addr
  edge       LISTEN=addr SHARDS=a,b,c [HEALTH_CHECK_MS=1000]";

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let role = std::env::args().nth(1).unwrap_or_else(|| "demo".to_owned());

    let mut server = Server::new(Some(Opt::default())).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(1)
    });
    server.bootstrap();

    let origin = env_or("ORIGIN", "127.0.0.1:6191");
    let shards = env_or("SHARDS", "127.0.0.1:6201,127.0.0.1:6202,127.0.0.1:6203");
    let shards: Vec<&str> = shards.split(',').map(str::trim).collect();
    let every = env_or("HEALTH_CHECK_MS", "1000").parse().unwrap_or(1000);
    let every = Duration::from_millis(every);
    match role.as_str() {
        "origin" => {
            add_origin(&mut server, &env_or("LISTEN", "127.0.0.1:6191"));
        }
        "shard" => {
            add_shard(&mut server, &env_or("LISTEN", "127.0.0.1:6201"), &origin);
        }
        "edge" => {
            add_edge(
                &mut server,
                &env_or("LISTEN", "127.0.0.1:6188"),
                &shards,
                every,
            );
        }
        "demo" => {
            let origin_handle = add_origin(&mut server, &origin);
            let mut shard_handles = Vec::new();
            for shard in &shards {
                let handle = add_shard(&mut server, shard, &origin);
                server
                    .add_dependency(&handle, &origin_handle)
                    .expect("both services belong to this server, without a cycle");
                shard_handles.push(handle);
            }
            let listen = env_or("LISTEN", "127.0.0.1:6188");
            let health_check = add_edge(&mut server, &listen, &shards, every);
            // Probe once the shards listen, so none starts out down.
            for shard in &shard_handles {
                server
                    .add_dependency(&health_check, shard)
                    .expect("both services belong to this server, without a cycle");
            }
            println!("demo fleet: edge {listen}, shards {shards:?}, origin {origin}");
        }
        _ => {
            eprintln!("{USAGE}");
            std::process::exit(2)
        }
    }
    server.run_forever();
}
