//! Caching through a real proxy to a loopback origin that counts its
//! requests and can change its answers: miss then hit, `Age`, expiry,
//! responses never stored, `Vary`, HEAD, ranges and 304 from cache,
//! purge, invalidation by POST, the cache lock under 100 concurrent
//! misses, and a request body on a hit.

// Tests unwrap: a failure should fail the test loudly.
#![allow(clippy::unwrap_used)]

mod support;

use async_trait::async_trait;
use parking_lot::Mutex;
use pingora_cache::range::RangeType;
use pingora_cache::{CacheLock, CacheMetaDefaults, MemCache};
use pingora_core::apps::http_app::{HttpRequest, HttpResponse, ServeHttp};
use pingora_core::header::{RequestHeader, ResponseHeader};
use pingora_core::server::ServerConf;
use pingora_core::upstreams::HttpPeer;
use pingora_error::Result;
use pingora_proxy::{HttpProxy, ProxyHttp, Session};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use support::h2_tools::{h2_client, h2_exchange};
use support::*;

/// Response fields, by name and value.
type Fields = Vec<(&'static str, &'static str)>;

/// An origin that counts requests. Each path answers with the fields set
/// by [`Origin::set`] (default `Cache-Control: max-age=60`) and a body
/// naming the path, the request's number and its `Accept-Language`.
#[derive(Clone, Default)]
struct Origin {
    count: Arc<AtomicUsize>,
    fields: Arc<Mutex<HashMap<String, Fields>>>,
    delay_ms: Arc<AtomicU64>,
    /// When not 0, every answer has this status.
    fail_status: Arc<AtomicU16>,
    /// Answer every conditional request with a 304 carrying the path's
    /// current fields, whatever it asked about (a broken origin).
    blind_304: Arc<AtomicBool>,
}

impl Origin {
    fn set(&self, path: &str, fields: &[(&'static str, &'static str)]) {
        self.fields.lock().insert(path.to_owned(), fields.to_vec());
    }

    fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl ServeHttp for Origin {
    async fn response(&self, request: HttpRequest) -> HttpResponse {
        let n = self.count.fetch_add(1, Ordering::SeqCst) + 1;
        let delay = self.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        let req = request.header();
        let path = req.uri().path().to_owned();
        let lang = req
            .get_header("accept-language")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let fields = self.fields.lock().get(&path).cloned();
        let fields = fields.unwrap_or_else(|| vec![("Cache-Control", "max-age=60")]);
        let fail = self.fail_status.load(Ordering::SeqCst);
        if fail != 0 {
            return HttpResponse::text(fail, "origin failure");
        }
        let etag = fields.iter().find(|(n, _)| *n == "ETag").map(|(_, v)| *v);
        let inm = req.get_header("if-none-match").map(|v| v.to_str().unwrap());
        let blind = inm.is_some() && self.blind_304.load(Ordering::SeqCst);
        if blind || (etag.is_some() && etag == inm) {
            let mut head = ResponseHeader::build(304, None).unwrap();
            for (name, value) in fields {
                head.append_header(name, value).unwrap();
            }
            return HttpResponse::new(head, bytes::Bytes::new());
        }
        let body = format!("{path} #{n} lang={lang}");
        let mut resp = HttpResponse::text(200, body);
        for (name, value) in fields {
            resp.header_mut().append_header(name, value).unwrap();
        }
        resp
    }
}

/// A proxy caching everything in one MemCache with a lock; `PURGE` purges.
struct Cdn {
    origin: Arc<Mutex<SocketAddr>>,
    storage: Arc<MemCache>,
    lock: Arc<CacheLock>,
    enabled: bool,
    /// Serve no ranges and no 304s from the cache.
    plain: bool,
    /// Subrequests seen, that knew their client's address.
    subrequests: Arc<AtomicUsize>,
}

impl Cdn {
    /// Caching on, ranges and 304s served, a 1 MiB MemCache and a lock,
    /// proxying to `origin`.
    fn to(origin: Arc<Mutex<SocketAddr>>) -> Self {
        Self {
            origin,
            storage: Arc::new(MemCache::new(1 << 20)),
            lock: Arc::new(CacheLock::new(Duration::from_secs(5))),
            enabled: true,
            plain: false,
            subrequests: Arc::default(),
        }
    }
}

impl ProxyHttp for Cdn {
    type CTX = ();
    fn new_ctx(&self) {}

    fn request_cache_filter(&self, session: &mut Session, _: &mut ()) -> Result<()> {
        if session.is_subrequest() && session.client_addr().is_some() {
            self.subrequests.fetch_add(1, Ordering::SeqCst);
        }
        if self.enabled {
            let storage = self.storage.clone();
            let lock = Some(self.lock.clone());
            session
                .cache
                .enable(storage, lock, CacheMetaDefaults::default());
            if session.req_header().uri().path() == "/big" {
                session.cache.set_max_file_size_bytes(4);
            }
        }
        Ok(())
    }

    fn cache_not_modified_filter(
        &self,
        session: &Session,
        resp: &ResponseHeader,
        _: &mut (),
    ) -> Result<bool> {
        Ok(!self.plain && pingora_cache::conditional::not_modified(session.req_header(), resp))
    }

    fn range_header_filter(
        &self,
        req: &RequestHeader,
        resp: &mut ResponseHeader,
        _: &mut (),
    ) -> RangeType {
        if self.plain {
            return RangeType::None;
        }
        let len = resp.get_header("content-length").unwrap().to_str().unwrap();
        pingora_cache::range::range_header_filter(req, resp, len.parse().unwrap()).unwrap()
    }

    fn is_purge(&self, session: &Session, _: &()) -> bool {
        session.req_header().method().as_str() == "PURGE"
    }

    async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(*self.origin.lock(), false, "")))
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        _: &mut (),
    ) -> Result<()> {
        resp.insert_header("X-Cache", session.cache.phase().as_str())
    }
}

struct Setup {
    origin: Origin,
    subrequests: Arc<AtomicUsize>,
    /// Where the proxy sends requests.
    peer: Arc<Mutex<SocketAddr>>,
    _origin_server: Running,
    proxy: Running,
}

async fn setup_with(enabled: bool) -> Setup {
    setup_opts(enabled, false).await
}

async fn setup_opts(enabled: bool, plain: bool) -> Setup {
    let origin = Origin::default();
    let origin_server = start_origin(origin.clone()).await;
    let peer = Arc::new(Mutex::new(origin_server.addr));
    let cdn = Cdn {
        enabled,
        plain,
        ..Cdn::to(peer.clone())
    };
    let subrequests = cdn.subrequests.clone();
    let proxy = HttpProxy::new(cdn, &ServerConf::default())
        .unwrap()
        .with_h2c(true);
    let proxy = serve_app(proxy).await;
    Setup {
        origin,
        subrequests,
        peer,
        _origin_server: origin_server,
        proxy,
    }
}

async fn setup() -> Setup {
    setup_with(true).await
}

fn field<'a>(x: &'a Exchange, name: &str) -> &'a str {
    x.headers.get(name).map_or("", |v| v.to_str().unwrap_or(""))
}

async fn send(addr: SocketAddr, method: &str, path: &str, fields: &[(&str, &str)]) -> Exchange {
    let mut c = client(addr).await;
    let mut req = request(method, path);
    for (n, v) in fields {
        req.insert_header(n.to_string(), *v).unwrap();
    }
    exchange(&mut c, req, b"").await
}

#[tokio::test]
async fn miss_then_hit_with_age() {
    let s = setup().await;
    // The origin says the response is already 5 s old.
    s.origin
        .set("/a", &[("Cache-Control", "max-age=60"), ("Age", "5")]);
    let first = get(s.proxy.addr, "/a").await;
    assert_eq!(first.status, 200);
    assert_eq!(field(&first, "x-cache"), "miss");
    let second = get(s.proxy.addr, "/a").await;
    assert_eq!(second.status, 200);
    assert_eq!(field(&second, "x-cache"), "hit");
    assert_eq!(second.body, first.body);
    assert_eq!(field(&second, "age"), "5");
    assert_eq!(s.origin.count(), 1);
}

#[tokio::test]
async fn caching_is_off_by_default() {
    let s = setup_with(false).await;
    get(s.proxy.addr, "/a").await;
    let second = get(s.proxy.addr, "/a").await;
    assert_eq!(field(&second, "x-cache"), "disabled");
    assert_eq!(s.origin.count(), 2);
}

#[tokio::test]
async fn expires_after_max_age() {
    let s = setup().await;
    s.origin.set("/short", &[("Cache-Control", "max-age=1")]);
    get(s.proxy.addr, "/short").await;
    assert_eq!(field(&get(s.proxy.addr, "/short").await, "x-cache"), "hit");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let after = get(s.proxy.addr, "/short").await;
    assert_eq!(field(&after, "x-cache"), "expired");
    assert_eq!(s.origin.count(), 2);
    // Stored again.
    assert_eq!(field(&get(s.proxy.addr, "/short").await, "x-cache"), "hit");
    assert_eq!(s.origin.count(), 2);
}

#[tokio::test]
async fn uncacheable_responses_are_not_stored() {
    let s = setup().await;
    s.origin.set("/ns", &[("Cache-Control", "no-store")]);
    s.origin
        .set("/pv", &[("Cache-Control", "private, max-age=60")]);
    s.origin.set("/none", &[]);
    for path in ["/ns", "/pv", "/none"] {
        get(s.proxy.addr, path).await;
        let again = get(s.proxy.addr, path).await;
        assert_eq!(again.status, 200);
        assert_eq!(field(&again, "x-cache"), "disabled", "{path}");
    }
    assert_eq!(s.origin.count(), 6);
    // Too large for the per-request limit: proxied whole, not stored.
    let big = get(s.proxy.addr, "/big").await;
    assert_eq!(big.body, b"/big #7 lang=");
    get(s.proxy.addr, "/big").await;
    assert_eq!(s.origin.count(), 8);
}

#[tokio::test]
async fn vary_keeps_variants_apart() {
    let s = setup().await;
    s.origin.set(
        "/v",
        &[("Cache-Control", "max-age=60"), ("Vary", "Accept-Language")],
    );
    let en = send(s.proxy.addr, "GET", "/v", &[("Accept-Language", "en")]).await;
    let fr = send(s.proxy.addr, "GET", "/v", &[("Accept-Language", "fr")]).await;
    assert_eq!(en.body, b"/v #1 lang=en");
    assert_eq!(fr.body, b"/v #2 lang=fr");
    let en2 = send(s.proxy.addr, "GET", "/v", &[("Accept-Language", "EN")]).await;
    let fr2 = send(s.proxy.addr, "GET", "/v", &[("Accept-Language", "fr")]).await;
    assert_eq!((&en2.body, &fr2.body), (&en.body, &fr.body));
    assert_eq!(field(&en2, "x-cache"), "hit");
    assert_eq!(s.origin.count(), 2);
    let de = send(s.proxy.addr, "GET", "/v", &[("Accept-Language", "de")]).await;
    assert_eq!(de.body, b"/v #3 lang=de");
}

#[tokio::test]
async fn head_range_and_304_from_a_cached_get() {
    let s = setup().await;
    s.origin.set(
        "/doc",
        &[("Cache-Control", "max-age=60"), ("ETag", "\"v1\"")],
    );
    let full = get(s.proxy.addr, "/doc").await;
    assert_eq!(full.body, b"/doc #1 lang=");

    let head = send(s.proxy.addr, "HEAD", "/doc", &[]).await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(field(&head, "content-length"), full.body.len().to_string());
    assert_eq!(field(&head, "x-cache"), "hit");

    let range = send(s.proxy.addr, "GET", "/doc", &[("Range", "bytes=0-3")]).await;
    assert_eq!(range.status, 206);
    assert_eq!(range.body, b"/doc");
    assert_eq!(field(&range, "content-range"), "bytes 0-3/13");

    let cond = send(s.proxy.addr, "GET", "/doc", &[("If-None-Match", "\"v1\"")]).await;
    assert_eq!(cond.status, 304);
    assert!(cond.body.is_empty());
    assert_eq!(field(&cond, "etag"), "\"v1\"");
    assert_eq!(s.origin.count(), 1);
}

#[tokio::test]
async fn head_miss_does_not_fill() {
    let s = setup().await;
    let head = send(s.proxy.addr, "HEAD", "/h", &[]).await;
    assert_eq!(head.status, 200);
    let after = get(s.proxy.addr, "/h").await;
    assert_eq!(field(&after, "x-cache"), "miss");
    assert_eq!(s.origin.count(), 2);
}

#[tokio::test]
async fn purge_and_post_invalidate() {
    let s = setup().await;
    get(s.proxy.addr, "/p").await;
    let purge = send(s.proxy.addr, "PURGE", "/p", &[]).await;
    assert_eq!(purge.status, 200);
    let missing = send(s.proxy.addr, "PURGE", "/p", &[]).await;
    assert_eq!(missing.status, 404);
    assert_eq!(field(&get(s.proxy.addr, "/p").await, "x-cache"), "miss");
    assert_eq!(s.origin.count(), 2);

    // A successful POST to the target invalidates it (RFC 9111 §4.4).
    assert_eq!(field(&get(s.proxy.addr, "/p").await, "x-cache"), "hit");
    let post = send(s.proxy.addr, "POST", "/p", &[("Content-Length", "0")]).await;
    assert_eq!(post.status, 200);
    assert_eq!(field(&post, "x-cache"), "bypass");
    assert_eq!(field(&get(s.proxy.addr, "/p").await, "x-cache"), "miss");
    assert_eq!(s.origin.count(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_concurrent_misses_one_origin_request() {
    let s = setup().await;
    s.origin.delay_ms.store(200, Ordering::SeqCst);
    let addr = s.proxy.addr;
    let tasks: Vec<_> = (0..100)
        .map(|_| tokio::spawn(async move { get(addr, "/hot").await }))
        .collect();
    for t in tasks {
        let x = t.await.unwrap();
        assert_eq!(x.status, 200);
        assert_eq!(x.body, b"/hot #1 lang=");
    }
    assert_eq!(s.origin.count(), 1);
}

#[tokio::test]
async fn hit_with_a_request_body_keeps_the_connection() {
    let s = setup().await;
    get(s.proxy.addr, "/b").await;
    let mut c = client(s.proxy.addr).await;
    let mut req = request("GET", "/b");
    req.insert_header("Content-Length", "11").unwrap();
    let hit = exchange(&mut c, req, b"hello world").await;
    assert_eq!(field(&hit, "x-cache"), "hit");
    let mut c = next(c);
    let again = exchange(&mut c, request("GET", "/b"), b"").await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body, hit.body);
    assert_eq!(s.origin.count(), 1);
}

#[tokio::test]
async fn stale_entry_revalidated_with_304() {
    let s = setup().await;
    s.origin
        .set("/r", &[("Cache-Control", "max-age=1"), ("ETag", "\"r1\"")]);
    let first = get(s.proxy.addr, "/r").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let again = get(s.proxy.addr, "/r").await;
    // The origin was asked with the stored ETag and said 304: the stored
    // body is served, refreshed.
    assert_eq!(again.status, 200);
    assert_eq!(field(&again, "x-cache"), "revalidated");
    assert_eq!(again.body, first.body);
    assert_eq!(s.origin.count(), 2);
    let hit = get(s.proxy.addr, "/r").await;
    assert_eq!(field(&hit, "x-cache"), "hit");
    assert_eq!(hit.body, first.body);
    assert_eq!(s.origin.count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_while_revalidate_refreshes_in_the_background() {
    let s = setup().await;
    s.origin.set(
        "/swr",
        &[("Cache-Control", "max-age=1, stale-while-revalidate=60")],
    );
    get(s.proxy.addr, "/swr").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    s.origin.delay_ms.store(500, Ordering::SeqCst);
    // Every request is served stale at once, the first one included: it
    // only starts the refresh, which runs on its own.
    for _ in 0..3 {
        let started = std::time::Instant::now();
        let stale = get(s.proxy.addr, "/swr").await;
        assert!(started.elapsed() < Duration::from_millis(400));
        assert_eq!(field(&stale, "x-cache"), "stale");
        assert_eq!(stale.body, b"/swr #1 lang=");
    }
    // One refresh for all of them, done in the background.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let hit = loop {
        let x = get(s.proxy.addr, "/swr").await;
        if field(&x, "x-cache") == "hit" || std::time::Instant::now() > deadline {
            break x;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        (field(&hit, "x-cache"), &hit.body[..]),
        ("hit", &b"/swr #2 lang="[..])
    );
    assert_eq!(s.origin.count(), 2);
    // The refresh ran through the phases as a subrequest, with the
    // address of the client whose request started it.
    assert_eq!(s.subrequests.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_304_about_another_response_is_fetched_again_in_full() {
    let s = setup().await;
    s.origin
        .set("/m", &[("Cache-Control", "max-age=1"), ("ETag", "\"a\"")]);
    let first = get(s.proxy.addr, "/m").await;
    assert_eq!(first.body, b"/m #1 lang=");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // The origin now answers any conditional request with a 304 for
    // another version: that cannot refresh the stored "a", nor answer
    // the client, who sent no conditional.
    s.origin
        .set("/m", &[("Cache-Control", "max-age=60"), ("ETag", "\"b\"")]);
    s.origin.blind_304.store(true, Ordering::SeqCst);
    let again = get(s.proxy.addr, "/m").await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body, b"/m #3 lang=");
    assert_eq!(field(&again, "etag"), "\"b\"");
    assert_eq!(s.origin.count(), 3);
    // The full response fetched the second time was stored.
    let hit = get(s.proxy.addr, "/m").await;
    assert_eq!(
        (field(&hit, "x-cache"), &hit.body[..]),
        ("hit", &b"/m #3 lang="[..])
    );
    assert_eq!(s.origin.count(), 3);
}

#[tokio::test]
async fn stale_if_error_on_5xx_and_with_the_origin_down() {
    let s = setup().await;
    s.origin
        .set("/sie", &[("Cache-Control", "max-age=1, stale-if-error=60")]);
    s.origin.set("/strict", &[("Cache-Control", "max-age=1")]);
    get(s.proxy.addr, "/sie").await;
    get(s.proxy.addr, "/strict").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    s.origin.fail_status.store(503, Ordering::SeqCst);
    let stale = get(s.proxy.addr, "/sie").await;
    assert_eq!((stale.status, field(&stale, "x-cache")), (200, "stale"));
    assert_eq!(stale.body, b"/sie #1 lang=");
    // Without a stale-if-error window the error goes through.
    assert_eq!(get(s.proxy.addr, "/strict").await.status, 503);

    *s.peer.lock() = dead_addr().await;
    let stale = get(s.proxy.addr, "/sie").await;
    assert_eq!((stale.status, field(&stale, "x-cache")), (200, "stale"));
    assert_eq!(stale.body, b"/sie #1 lang=");
    assert_eq!(get(s.proxy.addr, "/strict").await.status, 502);
}

#[tokio::test]
async fn user_filters_decide_ranges_and_304s_on_hits() {
    let s = setup_opts(true, true).await;
    s.origin.set(
        "/doc",
        &[("Cache-Control", "max-age=60"), ("ETag", "\"v1\"")],
    );
    let full = get(s.proxy.addr, "/doc").await;
    let range = send(s.proxy.addr, "GET", "/doc", &[("Range", "bytes=0-3")]).await;
    assert_eq!((range.status, &range.body), (200, &full.body));
    let cond = send(s.proxy.addr, "GET", "/doc", &[("If-None-Match", "\"v1\"")]).await;
    assert_eq!((cond.status, &cond.body), (200, &full.body));
    assert_eq!(field(&cond, "x-cache"), "hit");
    assert_eq!(s.origin.count(), 1);
}

#[tokio::test]
async fn multipart_ranges_from_cache() {
    let s = setup().await;
    get(s.proxy.addr, "/m").await;
    let multi = send(s.proxy.addr, "GET", "/m", &[("Range", "bytes=0-1,-3")]).await;
    assert_eq!(multi.status, 206);
    assert!(field(&multi, "content-type").starts_with("multipart/byteranges; boundary="));
    let body = String::from_utf8(multi.body.clone()).unwrap();
    assert!(
        body.contains("Content-Range: bytes 0-1/11\r\n\r\n/m"),
        "{body}"
    );
    assert!(
        body.contains("Content-Range: bytes 8-10/11\r\n\r\nng="),
        "{body}"
    );
    assert_eq!(
        field(&multi, "content-length"),
        multi.body.len().to_string()
    );
    assert_eq!(s.origin.count(), 1);
}

#[tokio::test]
async fn http2_clients_share_the_cache() {
    let s = setup().await;
    let h1 = get(s.proxy.addr, "/x").await;
    let send = h2_client(s.proxy.addr).await;
    let req = http::Request::builder()
        .uri("http://test.local/x")
        .body(())
        .unwrap();
    let h2 = h2_exchange(&send, req, b"", None).await;
    assert_eq!(h2.status, 200);
    assert_eq!(h2.body, h1.body);
    assert_eq!(h2.headers.get("x-cache").unwrap(), "hit");
    assert!(h2.headers.contains_key("age"));
    assert_eq!(s.origin.count(), 1);
}

/// An origin that counts its requests and answers each with a 200 of
/// `pieces` (its `Content-Length` their sum): the first with the head,
/// each next one `gap` later; then it holds the connection a second.
async fn slow_origin(
    pieces: &'static [&'static [u8]],
    gap: Duration,
) -> (Running, Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let requests = Arc::new(AtomicUsize::new(0));
    let seen = requests.clone();
    let origin = serve_fn(move |mut stream, _| {
        let seen = seen.clone();
        async move {
            let mut buf = Vec::new();
            while !buf.ends_with(b"\r\n\r\n") {
                let mut byte = [0; 1];
                if stream.read(&mut byte).await.unwrap_or(0) == 0 {
                    return;
                }
                buf.push(byte[0]);
            }
            seen.fetch_add(1, Ordering::SeqCst);
            let len: usize = pieces.iter().map(|p| p.len()).sum();
            let head = format!(
                "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: {len}\r\n\r\n"
            );
            stream.write_all(head.as_bytes()).await.unwrap();
            for (i, piece) in pieces.iter().enumerate() {
                if i > 0 {
                    tokio::time::sleep(gap).await;
                }
                stream.write_all(piece).await.unwrap();
                stream.flush().await.unwrap();
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    })
    .await;
    (origin, requests)
}

/// A request that arrives while the entry fills is served from it as it
/// grows: the origin sends half the body, waits, then the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filling_entry_is_served_as_it_grows() {
    let (origin, requests) = slow_origin(&[b"abc", b"def"], Duration::from_millis(400)).await;
    let proxy = start_proxy(Cdn::to(Arc::new(Mutex::new(origin.addr))), 0).await;
    let addr = proxy.addr;
    let first = tokio::spawn(async move { get(addr, "/grow").await });
    tokio::time::sleep(Duration::from_millis(150)).await;
    let second = get(proxy.addr, "/grow").await;
    let first = first.await.unwrap();
    assert_eq!(first.body, b"abcdef");
    assert_eq!(field(&first, "x-cache"), "miss");
    assert_eq!(second.body, b"abcdef");
    assert_eq!(field(&second, "x-cache"), "hit");
    assert_eq!(requests.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fill_outlives_the_client_that_started_it() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let pieces: &[&[u8]] = &[b"abc", b"def", b"ghi"];
    let (origin, requests) = slow_origin(pieces, Duration::from_millis(300)).await;
    let proxy = start_proxy(Cdn::to(Arc::new(Mutex::new(origin.addr))), 0).await;
    // The client that causes the fill reads the head and leaves.
    let mut quitter = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    quitter
        .write_all(b"GET /gone HTTP/1.1\r\nHost: test.local\r\n\r\n")
        .await
        .unwrap();
    let mut head = [0; 64];
    let n = quitter.read(&mut head).await.unwrap();
    assert!(head[..n].starts_with(b"HTTP/1.1 200"));
    // A second client follows the entry as it fills ...
    let addr = proxy.addr;
    let follower = tokio::spawn(async move { get(addr, "/gone").await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(quitter);
    // ... and gets all of it, though the first client is gone.
    let follower = follower.await.unwrap();
    assert_eq!(follower.body, b"abcdefghi");
    assert_eq!(field(&follower, "x-cache"), "hit");
    // The entry is complete: later requests hit it.
    let later = get(proxy.addr, "/gone").await;
    assert_eq!(
        (field(&later, "x-cache"), &later.body[..]),
        ("hit", &b"abcdefghi"[..])
    );
    assert_eq!(requests.load(Ordering::SeqCst), 1);
}
