//! TinyUfo used from several threads at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tinyufo::TinyUfo;

/// Four threads get, put, force-put and remove overlapping keys with
/// varied weights. Every value read is the one stored for its key, every
/// eviction comes back with its own data, and once the threads stop the
/// weight is within the limit and agrees with what is left.
#[test]
fn threads_share_one_cache() {
    const LIMIT: usize = 500;
    let cache = Arc::new(TinyUfo::new(LIMIT, 100));
    let evicted = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let cache = Arc::clone(&cache);
            let evicted = Arc::clone(&evicted);
            std::thread::spawn(move || {
                let mut x = t.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
                let mut hits = 0;
                for _ in 0..50_000 {
                    // xorshift: a skewed key in 0..1000 (small keys likelier)
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let key = (x % 1000) * (x % 1000) / 1000;
                    // Some removals and forced puts too, so slots go stale
                    // and entries skip probation while others evict.
                    if x % 32 == 0 {
                        cache.remove(&key);
                        continue;
                    }
                    if x % 32 == 1 {
                        for kv in cache.force_put(key, key * 7, 1 + (key % 5) as usize) {
                            assert_eq!(kv.weight, 1 + (kv.data / 7 % 5) as usize);
                        }
                        continue;
                    }
                    if let Some(v) = cache.get(&key) {
                        assert_eq!(v, key * 7);
                        hits += 1;
                    } else {
                        // A key's weight is a function of the key, so
                        // what is left can be summed from the keys alone.
                        let out = cache.put(key, key * 7, 1 + (key % 5) as usize);
                        for kv in out {
                            assert_eq!(kv.weight, 1 + (kv.data / 7 % 5) as usize);
                            assert_eq!(cache.key_hash(&(kv.data / 7)), kv.key);
                            evicted.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                hits
            })
        })
        .collect();
    let hits: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert!(hits > 50_000, "hits {hits}");
    assert!(cache.total_weight() <= LIMIT, "{}", cache.total_weight());
    // Count what is left: every key's weight is a function of the key.
    let left: usize = (0..1000u64)
        .filter(|k| cache.contains(k))
        .map(|k| 1 + (k % 5) as usize)
        .sum();
    assert_eq!(left, cache.total_weight());
    assert!(evicted.load(Ordering::Relaxed) > 0);
}
