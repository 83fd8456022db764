//! The hit path of `MemCache`: look up a stored entry and read its 1 KiB
//! body to the end, on one thread and on four threads sharing the cache.
//!
//! Run with `cargo bench -p pingora-cache -- --sample-size 10`.

// `criterion_group!` generates a public function with no docs; benches may unwrap.
#![allow(missing_docs, clippy::unwrap_used)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pingora_cache::memory::MemCache;
use pingora_cache::storage::Storage;
use pingora_cache::{CacheKey, CacheMeta};
use pingora_core::header::ResponseHeader;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

const KEYS: usize = 1024;

fn keys() -> Vec<CacheKey> {
    (0..KEYS)
        .map(|i| CacheKey::new("", format!("http://bench.test/item/{i}"), ""))
        .collect()
}

async fn fill(cache: &MemCache, keys: &[CacheKey]) {
    let now = SystemTime::now();
    let mut header = ResponseHeader::build(200, None).unwrap();
    header
        .insert_header("Content-Type", "application/octet-stream")
        .unwrap();
    header
        .insert_header("Cache-Control", "max-age=3600")
        .unwrap();
    let meta = CacheMeta::new(now + Duration::from_secs(3600), now, 0, 0, header);
    for key in keys {
        let mut miss = cache.get_miss_handler(key, &meta).await.unwrap();
        miss.write_body(vec![b'x'; 1024].into()).await.unwrap();
        miss.finish().await.unwrap();
    }
}

async fn hit(cache: &MemCache, key: &CacheKey) -> usize {
    let (meta, mut body) = cache.lookup(key).await.unwrap().unwrap();
    black_box(&meta);
    let mut n = 0;
    while let Some(b) = body.read_body().await.unwrap() {
        n += b.len();
    }
    n
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .build()
        .unwrap();
    let cache = MemCache::new(64 << 20);
    let keys: Arc<[CacheKey]> = keys().into();
    rt.block_on(fill(&cache, &keys));

    let mut group = c.benchmark_group("memcache_hit_1k");
    group.throughput(Throughput::Elements(1));
    group.bench_function("one_thread", |b| {
        let mut i = 0;
        b.to_async(&rt).iter(|| {
            i = (i + 1) % KEYS;
            let (cache, key) = (&cache, &keys[i]);
            async move { hit(cache, key).await }
        });
    });
    group.throughput(Throughput::Elements(4 * 256));
    group.bench_function("four_tasks_x256", |b| {
        b.to_async(&rt).iter(|| {
            let (cache, keys) = (cache.clone(), Arc::clone(&keys));
            async move {
                let tasks: Vec<_> = (0..4)
                    .map(|t| {
                        let (cache, keys) = (cache.clone(), Arc::clone(&keys));
                        tokio::spawn(async move {
                            let mut n = 0;
                            for j in 0..256 {
                                n += hit(&cache, &keys[(t * 256 + j) % KEYS]).await;
                            }
                            n
                        })
                    })
                    .collect();
                for t in tasks {
                    black_box(t.await.unwrap());
                }
            }
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
