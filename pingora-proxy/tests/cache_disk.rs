//! Caching on disk through a real proxy: hits survive a restart of the
//! storage and of the proxy process (killed with SIGKILL), a proxy
//! killed in the middle of a fill never serves the partial entry, and the
//! memory+disk tiers promote a disk hit to memory.

// Tests unwrap: a failure should fail the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use pingora_cache::storage::Storage;
use pingora_cache::storage::disk::DiskCache;
use pingora_cache::storage::tiered::TieredStorage;
use pingora_cache::{CacheKey, CacheLock, CacheMetaDefaults, MemCache};
use pingora_core::header::ResponseHeader;
use pingora_core::server::ServerConf;
use pingora_core::upstreams::HttpPeer;
use pingora_error::Result;
use pingora_proxy::{HttpProxy, ProxyHttp, Session};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The length of `/slow`'s body; its first answer sends half of it and
/// then stalls.
const SLOW_LEN: usize = 200_000;

/// An origin on raw sockets that counts requests. `/slow` answers the
/// first time with half its body and then never sends the rest; every
/// other answer is whole and cacheable for a minute.
struct Origin {
    addr: SocketAddr,
    count: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Origin {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let count = Arc::new(AtomicUsize::new(0));
        let counter = count.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                let counter = counter.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tcp.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                    let line = String::from_utf8_lossy(&head)
                        .lines()
                        .next()
                        .unwrap()
                        .to_owned();
                    let path = line.split(' ').nth(1).unwrap().to_owned();
                    let body = if path == "/slow" {
                        vec![b's'; SLOW_LEN]
                    } else {
                        format!("{path} #{n}").into_bytes()
                    };
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nCache-Control: max-age=60\r\n\
                         Connection: close\r\n\r\n",
                        body.len()
                    );
                    tcp.write_all(resp.as_bytes()).await.unwrap();
                    if path == "/slow" && n == 1 {
                        tcp.write_all(&body[..SLOW_LEN / 2]).await.unwrap();
                        tokio::time::sleep(Duration::from_secs(60)).await;
                    }
                    let _ = tcp.write_all(&body).await;
                });
            }
        });
        Self { addr, count, task }
    }

    fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }
}

/// A proxy caching everything in `storage`.
struct Cdn {
    origin: SocketAddr,
    storage: Arc<dyn Storage>,
    lock: Arc<CacheLock>,
}

impl ProxyHttp for Cdn {
    type CTX = ();
    fn new_ctx(&self) {}

    fn request_cache_filter(&self, session: &mut Session, _: &mut ()) -> Result<()> {
        let defaults = CacheMetaDefaults::default();
        session
            .cache
            .enable(self.storage.clone(), Some(self.lock.clone()), defaults);
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

async fn proxy(origin: SocketAddr, storage: Arc<dyn Storage>) -> Running {
    let cdn = Cdn {
        origin,
        storage,
        lock: Arc::new(CacheLock::new(Duration::from_secs(5))),
    };
    serve_app(HttpProxy::new(cdn, &ServerConf::default()).unwrap()).await
}

fn x_cache(x: &Exchange) -> &str {
    x.headers.get("x-cache").map_or("", |v| v.to_str().unwrap())
}

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("pingora-proxy-disk-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tmp_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir.join("tmp"))
        .map(|d| d.map(|f| f.unwrap().path()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn hits_keep_hitting_after_a_storage_restart() {
    let dir = TempDir::new("restart");
    let origin = Origin::start().await;
    let disk: Arc<dyn Storage> = Arc::new(DiskCache::new(&dir.0, 1 << 24).unwrap());
    let p = proxy(origin.addr, disk).await;
    let first = get(p.addr, "/a").await;
    assert_eq!((first.status, x_cache(&first)), (200, "miss"));
    assert_eq!(x_cache(&get(p.addr, "/a").await), "hit");
    drop(p);
    tokio::time::sleep(Duration::from_millis(50)).await;

    let disk: Arc<dyn Storage> = Arc::new(DiskCache::new(&dir.0, 1 << 24).unwrap());
    let p = proxy(origin.addr, disk).await;
    let again = get(p.addr, "/a").await;
    assert_eq!(x_cache(&again), "hit");
    assert_eq!(again.body, first.body);
    assert_eq!(origin.count(), 1);
}

/// Not a test on its own: the proxy process of
/// `a_proxy_killed_mid_fill_never_serves_the_partial_entry`. It caches on
/// disk in `DISK_PROXY_DIR`, proxies to `DISK_PROXY_ORIGIN`, prints its
/// address and waits to be killed.
#[tokio::test]
#[ignore = "run as a child process by a_proxy_killed_mid_fill_never_serves_the_partial_entry"]
async fn proxy_child() {
    let dir = std::env::var("DISK_PROXY_DIR").expect("run by the parent test");
    let origin = std::env::var("DISK_PROXY_ORIGIN").unwrap().parse().unwrap();
    let disk: Arc<dyn Storage> = Arc::new(DiskCache::new(dir, 1 << 24).unwrap());
    let p = proxy(origin, disk).await;
    println!("LISTEN {}", p.addr);
    tokio::time::sleep(Duration::from_secs(60)).await;
}

#[tokio::test]
async fn a_proxy_killed_mid_fill_never_serves_the_partial_entry() {
    let dir = TempDir::new("crash");
    let origin = Origin::start().await;
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["proxy_child", "--exact", "--ignored", "--nocapture"])
        .env("DISK_PROXY_DIR", &dir.0)
        .env("DISK_PROXY_ORIGIN", origin.addr.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let addr: SocketAddr = tokio::task::spawn_blocking(move || {
        let mut lines = BufReader::new(stdout).lines();
        loop {
            let line = lines.next().expect("child ended early").unwrap();
            if let Some(addr) = line.strip_prefix("LISTEN ") {
                return addr.parse().unwrap();
            }
        }
    })
    .await
    .unwrap();

    // A complete entry, then a fill that stalls half way.
    assert_eq!(x_cache(&get(addr, "/a").await), "miss");
    assert_eq!(x_cache(&get(addr, "/a").await), "hit");
    let mut c = client(addr).await;
    c.write_request_header(request("GET", "/slow"))
        .await
        .unwrap();
    c.finish_body(None).await.unwrap();
    c.read_final_response_header().await.unwrap();
    let mut got = 0;
    while got < SLOW_LEN / 2 {
        got += c.read_body_bytes().await.unwrap().unwrap().len();
    }
    // The body is on its way to the cache file too.
    let deadline = Instant::now() + 3 * WAIT;
    while !tmp_files(&dir.0)
        .iter()
        .any(|f| f.metadata().unwrap().len() as usize > SLOW_LEN / 2)
    {
        assert!(Instant::now() < deadline, "the fill never reached the disk");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert_eq!(origin.count(), 2);

    // A new proxy on the same directory.
    let disk: Arc<dyn Storage> = Arc::new(DiskCache::new(&dir.0, 1 << 24).unwrap());
    assert!(tmp_files(&dir.0).is_empty(), "the partial fill is deleted");
    let p = proxy(origin.addr, disk).await;
    assert_eq!(
        x_cache(&get(p.addr, "/a").await),
        "hit",
        "the finished entry survives"
    );
    let slow = get(p.addr, "/slow").await;
    assert_eq!(x_cache(&slow), "miss", "the partial entry is never served");
    assert_eq!(slow.body.len(), SLOW_LEN);
    assert_eq!(origin.count(), 3);
    assert_eq!(x_cache(&get(p.addr, "/slow").await), "hit");
    assert_eq!(origin.count(), 3);
}

#[tokio::test]
async fn tiers_promote_a_disk_hit_to_memory() {
    let dir = TempDir::new("tiered");
    let origin = Origin::start().await;
    let tiers = |memory: MemCache| {
        let disk = DiskCache::new(&dir.0, 1 << 24).unwrap();
        Arc::new(TieredStorage::new(memory, disk)) as Arc<dyn Storage>
    };
    let p = proxy(origin.addr, tiers(MemCache::new(1 << 20))).await;
    assert_eq!(x_cache(&get(p.addr, "/t").await), "miss");
    drop(p);
    tokio::time::sleep(Duration::from_millis(50)).await;

    // Restarted: memory is empty, disk is not.
    let memory = MemCache::new(1 << 20);
    let p = proxy(origin.addr, tiers(memory.clone())).await;
    let mut key = CacheKey::default(&request("GET", "/t"));
    key.remove_variance_key();
    assert!(memory.lookup(&key).await.unwrap().is_none());
    assert_eq!(x_cache(&get(p.addr, "/t").await), "hit");
    let deadline = Instant::now() + WAIT;
    while memory.lookup(&key).await.unwrap().is_none() {
        assert!(Instant::now() < deadline, "not promoted");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(x_cache(&get(p.addr, "/t").await), "hit");
    assert_eq!(origin.count(), 1);
}
