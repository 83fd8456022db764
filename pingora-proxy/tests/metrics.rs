//! The framework's and the proxy's Prometheus metrics, scraped over HTTP
//! before and after known traffic through a proxy service: each counter
//! moves by what that traffic must cost.
//!
//! One test in this binary: the registry is the process's.

// Tests unwrap: a failure should fail the test loudly.
#![allow(clippy::unwrap_used)]

mod support;

use async_trait::async_trait;
use pingora_cache::{CacheLock, CacheMetaDefaults, MemCache};
use pingora_core::apps::http_app::{HttpRequest, HttpResponse, ServeHttp};
use pingora_core::connectors::ConnectorOptions;
use pingora_core::connectors::http::HttpConnector;
use pingora_core::server::{ServerConf, ShutdownWatch};
use pingora_core::services::ServiceContext;
use pingora_core::services::listening::Service;
use pingora_core::tls::{CertKey, CertStore, TlsSettings};
use pingora_core::upstreams::HttpPeer;
use pingora_error::Result;
use pingora_proxy::{HttpProxy, HttpProxyService, ProxyHttp, Session};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use support::h2_tools::{h2_client, h2_exchange};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

/// 404 for `/missing`, 200 with a cacheable body otherwise.
struct Origin;

#[async_trait]
impl ServeHttp for Origin {
    async fn response(&self, request: HttpRequest) -> HttpResponse {
        if request.header().uri().path() == "/missing" {
            return HttpResponse::text(404, "no");
        }
        let mut resp = HttpResponse::text(200, "yes");
        let _ = resp
            .header_mut()
            .insert_header("Cache-Control", "max-age=60");
        resp
    }
}

/// Proxies to the origin; `/dead` goes to a dead address, `/limited` is
/// answered 429 here, `/cached*` is cached.
struct Proxy {
    origin: SocketAddr,
    dead: SocketAddr,
    storage: Arc<MemCache>,
    lock: Arc<CacheLock>,
}

impl ProxyHttp for Proxy {
    type CTX = ();
    fn new_ctx(&self) {}

    async fn request_filter(&self, session: &mut Session, _: &mut ()) -> Result<bool> {
        if session.req_header().uri().path() == "/limited" {
            session.respond_error(429).await?;
            return Ok(true);
        }
        Ok(false)
    }

    fn request_cache_filter(&self, session: &mut Session, _: &mut ()) -> Result<()> {
        if session.req_header().uri().path().starts_with("/cached") {
            let (storage, lock) = (self.storage.clone(), Some(self.lock.clone()));
            session
                .cache
                .enable(storage, lock, CacheMetaDefaults::default());
        }
        Ok(())
    }

    async fn upstream_peer(&self, session: &mut Session, _: &mut ()) -> Result<Box<HttpPeer>> {
        let addr = if session.req_header().uri().path() == "/dead" {
            self.dead
        } else {
            self.origin
        };
        Ok(Box::new(HttpPeer::new(addr, false, "")))
    }
}

/// Start `service` on this runtime; returns its `n` addresses once bound.
async fn start(
    mut service: impl pingora_core::services::Service + 'static,
    addrs: pingora_core::services::listening::BoundAddrs,
    n: usize,
    stop: &ShutdownWatch,
) -> Vec<SocketAddr> {
    let (ctx, _ready) = ServiceContext::standalone(stop.clone());
    tokio::spawn(async move { service.start_service(ctx).await });
    for _ in 0..200 {
        if let Some(bound) = addrs.get().filter(|a| a.len() == n) {
            return bound.iter().map(|a| *a.as_inet().unwrap()).collect();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("service did not bind");
}

/// TLS settings with a self-signed certificate for `proxy.test`.
fn tls_settings() -> TlsSettings {
    let cert = rcgen::generate_simple_self_signed(vec!["proxy.test".to_owned()]).unwrap();
    let (cert, key) = (cert.cert.pem(), cert.key_pair.serialize_pem());
    let cert = CertKey::from_pem(cert.as_bytes(), key.as_bytes()).unwrap();
    TlsSettings::new(CertStore::new().with_default(cert))
}

/// Every sample of a scrape, by its name with labels as written.
async fn scrape(metrics: SocketAddr) -> HashMap<String, f64> {
    let answer = get(metrics, "/metrics").await;
    assert_eq!(answer.status, 200);
    let text = String::from_utf8(answer.body).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (name, value) = l.rsplit_once(' ').unwrap();
            (name.to_owned(), value.parse().unwrap())
        })
        .collect()
}

/// How much `name` moved between two scrapes (absent counts as 0).
fn moved(before: &HashMap<String, f64>, after: &HashMap<String, f64>, name: &str) -> f64 {
    after.get(name).copied().unwrap_or(0.0) - before.get(name).copied().unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_counter_moves_by_what_the_traffic_costs() {
    let origin = start_origin(Origin).await;
    let (stop_proxy, proxy_stop) = watch::channel(false);
    let (_stop_metrics, metrics_stop) = watch::channel(false);
    let mut conf = ServerConf::default();
    conf.max_retries = 1;
    let proxy = Proxy {
        origin: origin.addr,
        dead: dead_addr().await,
        storage: Arc::new(MemCache::new(1 << 20)),
        lock: Arc::new(CacheLock::new(Duration::from_secs(5))),
    };
    let app = HttpProxy::new(proxy, &conf).unwrap().with_h2c(true);
    let mut service = HttpProxyService::new("proxy", app);
    // Addresses chosen here: the order of a service's bound addresses is
    // not that of its listeners.
    let (proxy_addr, tls_addr) = (dead_addr().await, dead_addr().await);
    service.add_tcp(&proxy_addr.to_string());
    let tls = tls_settings();
    service
        .add_tls_with_settings(&tls_addr.to_string(), None, tls)
        .unwrap();
    let proxy_addrs = service.bound_addrs();
    start(service, proxy_addrs, 2, &proxy_stop).await;
    let mut metrics = Service::prometheus_http_service();
    metrics.add_tcp("127.0.0.1:0");
    let metrics_addrs = metrics.bound_addrs();
    let metrics_addr = start(metrics, metrics_addrs, 1, &metrics_stop).await[0];

    // First, apart: its client side (in this process) counts upstream
    // metrics too.
    tls_handshakes(tls_addr, metrics_addr).await;
    let before = scrape(metrics_addr).await;
    // Nine HTTP/1 connections through the proxy, one request each ...
    for path in [
        "/a", "/b", "/c", "/missing", "/missing", "/dead", "/limited",
    ] {
        get(proxy_addr, path).await;
    }
    for _ in 0..2 {
        let answer = get(proxy_addr, "/cached").await;
        assert_eq!(answer.status, 200);
    }
    // ... a tenth with two requests ...
    let mut c = client(proxy_addr).await;
    let mut post = request("POST", "/p");
    post.insert_header("Content-Length", "2").unwrap();
    exchange(&mut c, post, b"hi").await;
    let mut c = next(c);
    exchange(&mut c, request("GET", "/d"), b"").await;
    drop(c);
    // ... an eleventh refused before the phases ...
    let mut tcp = tokio::net::TcpStream::connect(proxy_addr).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n")
        .await
        .unwrap();
    tcp.read_to_end(&mut Vec::new()).await.unwrap();
    // ... and a twelfth over HTTP/2 (h2c), with two streams, which gets
    // a GOAWAY when the proxy drains.
    let send = h2_client(proxy_addr).await;
    for _ in 0..2 {
        let req = http::Request::builder().uri("http://test.local/h2");
        let answer = h2_exchange(&send, req.body(()).unwrap(), b"", None).await;
        assert_eq!(answer.status, 200);
    }
    stop_proxy.send(true).unwrap();
    let goaway = "pingora_h2_goaways_sent_total";
    for _ in 0..200 {
        if moved(&before, &scrape(metrics_addr).await, goaway) > 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let after = scrape(metrics_addr).await;

    let m = |name: &str| moved(&before, &after, name);
    // Twelve to the proxy, and the scrapes' own (the last one's too).
    let scrapes = after["pingora_downstream_connections_accepted_total"]
        - before["pingora_downstream_connections_accepted_total"]
        - 12.0;
    assert!(scrapes >= 1.0, "{scrapes}");
    assert_eq!(m("pingora_http_requests_rejected_total"), 1.0);
    assert_eq!(m("pingora_h2_streams_total"), 2.0);
    assert_eq!(m(goaway), 1.0);
    let gets = |s: &str| format!("pingora_http_requests_total{{method=\"GET\",status=\"{s}\"}}");
    // /a /b /c /cached x2 /d /h2 x2
    assert_eq!(m(&gets("2xx")), 8.0);
    // /missing x2, /limited
    assert_eq!(m(&gets("4xx")), 3.0);
    // /dead
    assert_eq!(m(&gets("5xx")), 1.0);
    assert_eq!(
        m("pingora_http_requests_total{method=\"POST\",status=\"2xx\"}"),
        1.0
    );
    assert_eq!(m("pingora_http_requests_rate_limited_total"), 1.0);
    assert_eq!(m("pingora_http_request_duration_seconds_count"), 13.0);
    // /dead: one retry, two refused connects.
    assert_eq!(m("pingora_upstream_retries_total"), 1.0);
    assert_eq!(
        m("pingora_upstream_connect_failures_total{kind=\"ConnectRefused\"}"),
        2.0
    );
    // Upstream sessions: /a /b /c /missing x2 /cached (miss) /p /d /h2
    // x2 = 10; the first is new, the pool serves most of the rest.
    let pool = |r: &str| m(&format!("pingora_upstream_pool_total{{result=\"{r}\"}}"));
    assert_eq!(pool("hit") + pool("miss"), 10.0);
    assert!(pool("miss") >= 1.0);
    assert_eq!(m("pingora_upstream_connect_seconds_count"), pool("miss"));
    let cache = |r: &str| m(&format!("pingora_cache_lookups_total{{result=\"{r}\"}}"));
    assert_eq!((cache("miss"), cache("hit")), (1.0, 1.0));
    // The connections the test opened are closed again, but for the
    // HTTP/2 one, still draining, and the scrapes' (maybe still open).
    drop(send);
    let open = m("pingora_downstream_connections_open");
    assert!((0.0..=1.0 + scrapes).contains(&open), "{open}");

    // Turned off, nothing moves.
    pingora_core::metrics::set_enabled(false);
    let before = scrape(metrics_addr).await;
    get(metrics_addr, "/").await;
    let after = scrape(metrics_addr).await;
    pingora_core::metrics::set_enabled(true);
    let accepted = "pingora_downstream_connections_accepted_total";
    assert_eq!(moved(&before, &after, accepted), 0.0);
}

/// One TLS handshake that succeeds and one that fails, counted as such.
async fn tls_handshakes(tls_addr: SocketAddr, metrics_addr: SocketAddr) {
    let before = scrape(metrics_addr).await;
    let connector = HttpConnector::new(ConnectorOptions::default()).unwrap();
    let mut peer = HttpPeer::new(tls_addr, true, "proxy.test");
    peer.options.verify_cert = false;
    let (session, _) = connector.get_session(&peer).await.unwrap();
    drop(session);
    let mut tcp = tokio::net::TcpStream::connect(tls_addr).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    let _ = tcp.read_to_end(&mut Vec::new()).await;
    let after = scrape(metrics_addr).await;
    let tls = |r: &str| {
        moved(
            &before,
            &after,
            &format!("pingora_tls_handshakes_total{{result=\"{r}\"}}"),
        )
    };
    assert_eq!((tls("ok"), tls("failed")), (1.0, 1.0));
}
