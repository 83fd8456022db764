use super::*;
use crate::memory::MemCache;
use crate::storage::{HitHandler, Storage};
use crate::{CacheKey, CacheMeta};
use pingora_core::header::ResponseHeader;
use proptest::prelude::*;
use std::time::{Duration, SystemTime};

fn ckey(b: u8) -> CompactCacheKey {
    CompactCacheKey {
        primary: [b; 16],
        variance: None,
    }
}

#[test]
fn admit_access_resize_remove() {
    let m = Manager::new(100, 10);
    assert!(m.admit(ckey(1), 40).is_empty());
    assert!(m.admit(ckey(2), 40).is_empty());
    assert!(m.access(&ckey(1)));
    assert!(!m.access(&ckey(3)));
    assert_eq!((m.total_size(), m.total_items()), (80, 2));
    // Re-admitting a key replaces its size.
    assert!(m.admit(ckey(2), 30).is_empty());
    assert_eq!(m.total_size(), 70);
    assert!(m.increment_weight(&ckey(2), -10).is_empty());
    assert_eq!(m.total_size(), 60);
    assert!(m.increment_weight(&ckey(9), 10).is_empty());
    m.remove(&ckey(1));
    assert!(!m.access(&ckey(1)));
    assert_eq!((m.total_size(), m.total_items()), (20, 1));
    // Growing past the budget evicts, here the grown entry itself.
    assert_eq!(m.increment_weight(&ckey(2), 200), [ckey(2)]);
    assert_eq!((m.evicted_size(), m.evicted_items()), (220, 1));
    assert_eq!(m.total_size(), 0);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The budget holds, and every byte admitted is tracked, evicted or
    /// removed.
    #[test]
    fn budget_and_books(ops in proptest::collection::vec((0u8..4, 0u8..30, 1usize..50), 1..200)) {
        let cap = 120;
        let m = Manager::new(cap, 16);
        let mut sizes = std::collections::HashMap::new();
        for (op, k, size) in ops {
            let evicted = match op {
                0 | 1 => { sizes.insert(k, size); m.admit(ckey(k), size) }
                2 => { prop_assert_eq!(m.access(&ckey(k)), sizes.contains_key(&k)); Vec::new() }
                _ => { sizes.remove(&k); m.remove(&ckey(k)); Vec::new() }
            };
            for e in evicted {
                prop_assert!(sizes.remove(&e.primary[0]).is_some());
            }
            prop_assert!(m.total_size() <= cap);
            prop_assert_eq!(m.total_size(), sizes.values().sum::<usize>());
        }
    }
}

fn meta() -> CacheMeta {
    let now = SystemTime::now();
    let h = ResponseHeader::build(200, None).unwrap();
    CacheMeta::new(now + Duration::from_secs(60), now, 0, 0, h)
}

fn key(i: usize) -> CacheKey {
    CacheKey::new("", format!("http://t/{i}"), "")
}

async fn store(cache: &MemCache, key: &CacheKey, len: usize) -> usize {
    let mut miss = cache.get_miss_handler(key, &meta()).await.unwrap();
    miss.write_body(vec![b'x'; len].into()).await.unwrap();
    miss.finish().await.unwrap()
}

async fn body(hit: &mut HitHandler) -> usize {
    let mut n = 0;
    while let Some(b) = hit.read_body().await.unwrap() {
        n += b.len();
    }
    n
}

/// MemCache on the TinyUFO manager: hot objects survive a scan of
/// one-time objects, the scan's newcomers are turned away (and then not
/// served), and the bytes stay within budget.
#[tokio::test]
async fn memcache_keeps_the_hot_set_through_a_scan() {
    let cap = 4000;
    let cache = MemCache::with_eviction(Box::new(Manager::new(cap, 20)), 2000);
    for i in 0..10 {
        store(&cache, &key(i), 200).await;
    }
    for _ in 0..3 {
        for i in 0..10 {
            let (_, mut hit) = cache.lookup(&key(i)).await.unwrap().unwrap();
            assert_eq!(body(&mut hit).await, 200);
        }
    }
    let mut turned_away = 0;
    // Each newcomer is heavier than the room left beside the hot set, so
    // its own admission decides at once, and it loses.
    for i in 100..200 {
        store(&cache, &key(i), 1500).await;
        if cache.lookup(&key(i)).await.unwrap().is_none() {
            turned_away += 1;
        }
        assert!(cache.used_bytes() <= cap);
        assert_eq!(cache.used_bytes(), cache.eviction().total_size());
    }
    assert!(
        turned_away >= 90,
        "only {turned_away} newcomers turned away"
    );
    for i in 0..10 {
        let (_, mut hit) = cache.lookup(&key(i)).await.unwrap().unwrap();
        assert_eq!(body(&mut hit).await, 200, "hot object {i}");
    }
    let ev = cache.eviction();
    assert!(ev.evicted_items() >= turned_away);
}
