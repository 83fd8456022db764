//! curl as a real client of a caching proxy: a miss, then hits with
//! `Age`, a range and a HEAD from the cache. Skips itself with a notice
//! when curl is missing, so `cargo test --workspace` needs nothing
//! installed.

// Tests unwrap: a failure should fail the test loudly.
#![allow(clippy::unwrap_used)]

mod support;

use async_trait::async_trait;
use pingora_cache::{CacheLock, CacheMetaDefaults, MemCache};
use pingora_core::apps::http_app::{HttpRequest, HttpResponse, ServeHttp};
use pingora_core::header::ResponseHeader;
use pingora_core::upstreams::HttpPeer;
use pingora_error::Result;
use pingora_proxy::{ProxyHttp, Session};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use support::tools::{run_tool, tool_available};
use support::{start_origin, start_proxy};

/// Counts its requests; answers a cacheable 26-letter body.
#[derive(Clone, Default)]
struct Letters(Arc<AtomicUsize>);

#[async_trait]
impl ServeHttp for Letters {
    async fn response(&self, _: HttpRequest) -> HttpResponse {
        self.0.fetch_add(1, Ordering::SeqCst);
        let mut resp = HttpResponse::text(200, "abcdefghijklmnopqrstuvwxyz");
        let h = resp.header_mut();
        h.insert_header("Cache-Control", "max-age=60").unwrap();
        h.insert_header("ETag", "\"az\"").unwrap();
        resp
    }
}

struct Caching {
    origin: SocketAddr,
    storage: Arc<MemCache>,
    lock: Arc<CacheLock>,
}

impl ProxyHttp for Caching {
    type CTX = ();
    fn new_ctx(&self) {}

    fn request_cache_filter(&self, session: &mut Session, _: &mut ()) -> Result<()> {
        let storage = self.storage.clone();
        let lock = Some(self.lock.clone());
        session
            .cache
            .enable(storage, lock, CacheMetaDefaults::default());
        Ok(())
    }

    async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.origin, false, "")))
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

async fn curl(args: &[&str]) -> String {
    let args = args.iter().map(|a| (*a).to_owned()).collect();
    let out = run_tool("curl", args, 30).await;
    String::from_utf8(out.stdout).unwrap().to_ascii_lowercase()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_sees_hits_ranges_and_head_from_cache() {
    if !tool_available("curl") {
        return;
    }
    let letters = Letters::default();
    let origin = start_origin(letters.clone()).await;
    let proxy = start_proxy(
        Caching {
            origin: origin.addr,
            storage: Arc::new(MemCache::new(1 << 20)),
            lock: Arc::new(CacheLock::new(Duration::from_secs(5))),
        },
        0,
    )
    .await;
    let url = format!("http://{}/letters", proxy.addr);
    let miss = curl(&["-si", &url]).await;
    assert!(miss.contains("x-cache: miss"), "{miss}");
    assert!(miss.ends_with("abcdefghijklmnopqrstuvwxyz"), "{miss}");
    let hit = curl(&["-si", &url]).await;
    assert!(hit.contains("x-cache: hit"), "{hit}");
    assert!(hit.contains("\r\nage: "), "{hit}");
    assert!(hit.ends_with("abcdefghijklmnopqrstuvwxyz"), "{hit}");
    let range = curl(&["-si", "-r", "2-4", &url]).await;
    assert!(range.starts_with("http/1.1 206"), "{range}");
    assert!(range.contains("content-range: bytes 2-4/26"), "{range}");
    assert!(range.ends_with("\r\n\r\ncde"), "{range}");
    let head = curl(&["-sI", &url]).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("content-length: 26"), "{head}");
    let not_modified = curl(&["-si", "-H", "If-None-Match: \"az\"", &url]).await;
    assert!(not_modified.starts_with("http/1.1 304"), "{not_modified}");
    assert_eq!(letters.0.load(Ordering::SeqCst), 1);
}
