use super::*;
use crate::storage::{PARTIAL_ENTRY_ABANDONED, lookup_variant};
use pingora_core::header::{RequestHeader, ResponseHeader};
use std::time::{Duration, SystemTime};

fn meta(fields: &[(&str, &str)]) -> CacheMeta {
    let mut h = ResponseHeader::build(200, None).unwrap();
    for (n, v) in fields {
        h.append_header(n, *v).unwrap();
    }
    let now = SystemTime::now();
    CacheMeta::new(now + Duration::from_secs(60), now, 0, 0, h)
}

fn key(path: &str) -> CacheKey {
    CacheKey::new("", format!("http://t{path}"), "")
}

async fn read_all(hit: &mut HitHandler) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(b) = hit.read_body().await? {
        out.extend_from_slice(&b);
    }
    Ok(out)
}

async fn store(cache: &MemCache, key: &CacheKey, m: &CacheMeta, body: &[u8]) -> Result<usize> {
    let mut miss = cache.get_miss_handler(key, m).await?;
    miss.write_body(Bytes::copy_from_slice(body)).await?;
    miss.finish().await
}

#[tokio::test]
async fn miss_then_hit() {
    let cache = MemCache::new(1 << 20);
    let k = key("/a");
    // Usable as a trait object, as the proxy holds it.
    let dyn_storage: &dyn Storage = &cache;
    assert!(dyn_storage.lookup(&k).await.unwrap().is_none());
    store(&cache, &k, &meta(&[("X", "1")]), b"body")
        .await
        .unwrap();
    let (m, mut hit) = cache.lookup(&k).await.unwrap().unwrap();
    assert_eq!(m.response_header().get_header("x").unwrap(), "1");
    assert_eq!(read_all(&mut hit).await.unwrap(), b"body");
    assert!(cache.used_bytes() > 4);
    assert_eq!(cache.eviction().total_size(), cache.used_bytes());
    assert!(cache.support_streaming_partial_write());
}

#[tokio::test]
async fn readers_stream_a_filling_entry() {
    let cache = MemCache::new(1 << 20);
    let k = key("/s");
    let mut miss = cache.get_miss_handler(&k, &meta(&[])).await.unwrap();
    miss.write_body("ab".into()).await.unwrap();
    let (_, mut early) = cache.lookup(&k).await.unwrap().unwrap();
    let reader = tokio::spawn(async move { read_all(&mut early).await.unwrap() });
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!reader.is_finished(), "the reader waits for the writer");
    miss.write_body("cd".into()).await.unwrap();
    let (_, mut late) = cache.lookup(&k).await.unwrap().unwrap();
    miss.finish().await.unwrap();
    assert_eq!(reader.await.unwrap(), b"abcd");
    assert_eq!(read_all(&mut late).await.unwrap(), b"abcd");
}

#[tokio::test]
async fn too_large_is_abandoned_and_told_apart() {
    let cache = MemCache::with_eviction(Box::new(lru::Manager::new(1 << 20)), 5);
    let k = key("/big");
    let mut miss = cache.get_miss_handler(&k, &meta(&[])).await.unwrap();
    miss.write_body("abc".into()).await.unwrap();
    let (_, mut hit) = cache.lookup(&k).await.unwrap().unwrap();
    let err = miss.write_body("def".into()).await.unwrap_err();
    assert_eq!(*err.etype(), ENTRY_TOO_LARGE);
    assert_eq!(&hit.read_body().await.unwrap().unwrap()[..], b"abc");
    let err = hit.read_body().await.unwrap_err();
    assert_eq!(*err.etype(), PARTIAL_ENTRY_ABANDONED);
    assert!(miss.finish().await.is_err());
    assert!(cache.lookup(&k).await.unwrap().is_none());
    assert_eq!(cache.used_bytes(), 0);
}

#[tokio::test]
async fn dropped_writer_abandons_and_keeps_the_old_entry() {
    let cache = MemCache::new(1 << 20);
    let k = key("/d");
    store(&cache, &k, &meta(&[("V", "old")]), b"old")
        .await
        .unwrap();
    let mut miss = cache
        .get_miss_handler(&k, &meta(&[("V", "new")]))
        .await
        .unwrap();
    miss.write_body("ne".into()).await.unwrap();
    // Lookups prefer the newer, filling entry.
    let (m, mut partial) = cache.lookup(&k).await.unwrap().unwrap();
    assert_eq!(m.response_header().get_header("v").unwrap(), "new");
    drop(miss);
    assert_eq!(
        *read_all(&mut partial).await.unwrap_err().etype(),
        PARTIAL_ENTRY_ABANDONED
    );
    let (m, mut hit) = cache.lookup(&k).await.unwrap().unwrap();
    assert_eq!(m.response_header().get_header("v").unwrap(), "old");
    assert_eq!(read_all(&mut hit).await.unwrap(), b"old");
}

#[tokio::test]
async fn bounded_by_bytes_evicting_lru() {
    // One shard so the order is global and easy to check.
    let cache = MemCache::with_eviction(Box::new(lru::Manager::with_shards(3000, 1)), 2000);
    let body = vec![b'x'; 900];
    for i in 0..3 {
        store(&cache, &key(&format!("/{i}")), &meta(&[]), &body)
            .await
            .unwrap();
    }
    // Touch /0 so /1 is the least recently used.
    assert!(cache.lookup(&key("/0")).await.unwrap().is_some());
    store(&cache, &key("/3"), &meta(&[]), &body).await.unwrap();
    assert!(cache.lookup(&key("/1")).await.unwrap().is_none());
    for i in [0, 2, 3] {
        assert!(
            cache
                .lookup(&key(&format!("/{i}")))
                .await
                .unwrap()
                .is_some(),
            "{i}"
        );
    }
    assert!(cache.used_bytes() <= 3000);
    assert_eq!(cache.used_bytes(), cache.eviction().total_size());
    // Many more entries never push it over the budget.
    for i in 10..100 {
        store(&cache, &key(&format!("/{i}")), &meta(&[]), &body)
            .await
            .unwrap();
        assert!(cache.used_bytes() <= 3000);
    }
}

#[tokio::test]
async fn vary_variants_and_purge() {
    let cache = MemCache::new(1 << 20);
    let req = |enc: &str| {
        let mut r = RequestHeader::build("GET", b"http://t/v", None).unwrap();
        r.insert_header("Accept-Encoding", enc).unwrap();
        r
    };
    let m = meta(&[("Vary", "Accept-Encoding")]);
    for enc in ["gzip", "br"] {
        let mut k = CacheKey::default(&req(enc));
        assert!(
            lookup_variant(&cache, &mut k, &req(enc))
                .await
                .unwrap()
                .is_none()
        );
        k.set_variance_key(crate::variance::variance_for(m.response_header(), &req(enc)).unwrap());
        store(&cache, &k, &m, enc.as_bytes()).await.unwrap();
    }
    for enc in ["gzip", "br"] {
        let mut k = CacheKey::default(&req(enc));
        let (_, mut hit) = lookup_variant(&cache, &mut k, &req(enc))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(read_all(&mut hit).await.unwrap(), enc.as_bytes());
        assert!(k.variance_bin().is_some());
    }
    let mut k = CacheKey::default(&req("zstd"));
    assert!(
        lookup_variant(&cache, &mut k, &req("zstd"))
            .await
            .unwrap()
            .is_none()
    );
    // A filling variant is purged too; its readers learn it.
    let mut miss = cache.get_miss_handler(&k, &m).await.unwrap();
    miss.write_body("z".into()).await.unwrap();
    let (_, mut partial) = cache.lookup(&k).await.unwrap().unwrap();
    assert!(cache.purge(&k).await.unwrap());
    assert!(!cache.purge(&k).await.unwrap());
    for enc in ["gzip", "br", "zstd"] {
        let mut k = CacheKey::default(&req(enc));
        assert!(
            lookup_variant(&cache, &mut k, &req(enc))
                .await
                .unwrap()
                .is_none()
        );
    }
    assert_eq!(
        *read_all(&mut partial).await.unwrap_err().etype(),
        PARTIAL_ENTRY_ABANDONED
    );
    assert!(miss.finish().await.is_err());
    assert_eq!(cache.used_bytes(), 0);
    assert_eq!(cache.eviction().total_items(), 0);
}

#[tokio::test]
async fn vary_replaces_plain_and_back() {
    let cache = MemCache::new(1 << 20);
    let plain = key("/p");
    store(&cache, &plain, &meta(&[]), b"plain").await.unwrap();
    let mut varied = plain.clone();
    varied.set_variance_key([7; 16]);
    store(&cache, &varied, &meta(&[("Vary", "X")]), b"varied")
        .await
        .unwrap();
    let (m, _) = cache.lookup(&plain).await.unwrap().unwrap();
    assert!(m.response_header().has_header("vary"));
    assert_eq!(cache.eviction().total_items(), 1);
    store(&cache, &plain, &meta(&[]), b"plain").await.unwrap();
    assert!(cache.lookup(&varied).await.unwrap().is_none());
    assert_eq!(cache.eviction().total_items(), 1);
    assert_eq!(cache.used_bytes(), cache.eviction().total_size());
}

#[tokio::test]
async fn update_meta_after_304() {
    let cache = MemCache::new(1 << 20);
    let k = key("/u");
    assert!(!cache.update_meta(&k, &meta(&[])).await.unwrap());
    store(&cache, &k, &meta(&[("ETag", "\"1\"")]), b"keep")
        .await
        .unwrap();
    let new = meta(&[("ETag", "\"1\""), ("X-Fresh", "yes, a longer header")]);
    assert!(cache.update_meta(&k, &new).await.unwrap());
    let (m, mut hit) = cache.lookup(&k).await.unwrap().unwrap();
    assert!(m.response_header().has_header("x-fresh"));
    assert_eq!(read_all(&mut hit).await.unwrap(), b"keep");
    assert_eq!(cache.used_bytes(), cache.eviction().total_size());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_threads_read_at_once() {
    let cache = MemCache::new(16 << 20);
    for i in 0..64 {
        store(
            &cache,
            &key(&format!("/{i}")),
            &meta(&[]),
            format!("body{i}").as_bytes(),
        )
        .await
        .unwrap();
    }
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let cache = cache.clone();
            tokio::spawn(async move {
                for n in 0..500 {
                    let i = (n * 7 + t) % 64;
                    let (_, mut hit) = cache.lookup(&key(&format!("/{i}"))).await.unwrap().unwrap();
                    assert_eq!(
                        read_all(&mut hit).await.unwrap(),
                        format!("body{i}").as_bytes()
                    );
                }
            })
        })
        .collect();
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(30), t)
            .await
            .unwrap()
            .unwrap();
    }
}

#[tokio::test]
async fn fills_share_a_budget() {
    let cache = MemCache::with_eviction(Box::new(lru::Manager::new(1 << 20)), 100)
        .with_max_filling_bytes(150);
    let mut a = cache
        .get_miss_handler(&key("/a"), &meta(&[]))
        .await
        .unwrap();
    let mut b = cache
        .get_miss_handler(&key("/b"), &meta(&[]))
        .await
        .unwrap();
    a.write_body(vec![b'a'; 80].into()).await.unwrap();
    assert_eq!(cache.filling_bytes(), 80);
    let err = b.write_body(vec![b'b'; 80].into()).await.unwrap_err();
    assert_eq!(*err.etype(), ENTRY_TOO_LARGE);
    drop(b);
    assert_eq!(cache.filling_bytes(), 80);
    assert!(cache.lookup(&key("/b")).await.unwrap().is_none());
    a.finish().await.unwrap();
    assert_eq!(cache.filling_bytes(), 0);
    // The budget is free again.
    store(&cache, &key("/c"), &meta(&[]), &[b'c'; 90])
        .await
        .unwrap();
    assert_eq!(cache.filling_bytes(), 0);
}
