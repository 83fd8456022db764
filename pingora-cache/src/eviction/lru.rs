//! A size-weighted LRU [`Manager`], sharded so that hits on different keys
//! rarely contend.

use super::EvictionManager;
use crate::key::CompactCacheKey;
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};

/// One shard: entries by key, and the same entries by last use.
#[derive(Default)]
struct Shard {
    entries: HashMap<CompactCacheKey, (usize, u64)>,
    by_use: BTreeMap<u64, CompactCacheKey>,
    tick: u64,
    size: usize,
}

impl Shard {
    fn touch(&mut self, key: &CompactCacheKey) -> bool {
        let Some((_, last)) = self.entries.get_mut(key) else {
            return false;
        };
        self.by_use.remove(last);
        self.tick += 1;
        *last = self.tick;
        self.by_use.insert(self.tick, *key);
        true
    }

    fn remove(&mut self, key: &CompactCacheKey) -> Option<usize> {
        let (size, last) = self.entries.remove(key)?;
        self.by_use.remove(&last);
        self.size -= size;
        Some(size)
    }

    fn evict_over(&mut self, capacity: usize, out: &mut Vec<CompactCacheKey>) -> usize {
        let mut bytes = 0;
        while self.size > capacity {
            let Some((_, key)) = self.by_use.pop_first() else {
                break;
            };
            if let Some((size, _)) = self.entries.remove(&key) {
                self.size -= size;
                bytes += size;
                out.push(key);
            }
        }
        bytes
    }
}

/// A least-recently-used eviction manager with a byte budget.
///
/// The budget is split evenly over the shards (keys spread over them by
/// hash), so an entry larger than `capacity / shards` never fits: keep
/// the per-entry limit of the storage well below that.
///
/// # Examples
///
/// ```
/// use pingora_cache::eviction::{lru::Manager, EvictionManager};
/// use pingora_cache::key::CompactCacheKey;
///
/// let lru = Manager::with_shards(100, 1);
/// let key = |b| CompactCacheKey { primary: [b; 16], variance: None };
/// assert!(lru.admit(key(1), 60).is_empty());
/// lru.access(&key(1));
/// assert!(lru.admit(key(2), 30).is_empty());
/// // Key 1 was used before key 2: it goes first.
/// assert_eq!(lru.admit(key(3), 30), [key(1)]);
/// assert_eq!(lru.total_size(), 60);
/// ```
pub struct Manager {
    shards: Box<[Mutex<Shard>]>,
    shard_capacity: usize,
    evicted_size: AtomicUsize,
    evicted_items: AtomicUsize,
}

impl std::fmt::Debug for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("lru::Manager")
            .field("shards", &self.shards.len())
            .field("shard_capacity", &self.shard_capacity)
            .finish_non_exhaustive()
    }
}

impl Manager {
    /// A manager for `capacity` bytes in 16 shards.
    pub fn new(capacity: usize) -> Self {
        Self::with_shards(capacity, 16)
    }

    /// A manager for `capacity` bytes in `shards` shards (at least one).
    pub fn with_shards(capacity: usize, shards: usize) -> Self {
        let shards = shards.max(1);
        Self {
            shards: (0..shards).map(|_| Mutex::default()).collect(),
            shard_capacity: capacity / shards,
            evicted_size: AtomicUsize::new(0),
            evicted_items: AtomicUsize::new(0),
        }
    }

    fn shard(&self, key: &CompactCacheKey) -> &Mutex<Shard> {
        let h = u64::from_le_bytes([
            key.primary[0],
            key.primary[1],
            key.primary[2],
            key.primary[3],
            key.primary[4],
            key.primary[5],
            key.primary[6],
            key.primary[7],
        ]);
        // The hash is uniform, so its low bits pick a shard evenly.
        &self.shards[(h % self.shards.len() as u64) as usize]
    }

    fn count(&self, evicted: &[CompactCacheKey], bytes: usize) {
        self.evicted_size.fetch_add(bytes, Ordering::Relaxed);
        self.evicted_items
            .fetch_add(evicted.len(), Ordering::Relaxed);
    }
}

impl EvictionManager for Manager {
    fn admit(&self, key: CompactCacheKey, size: usize) -> Vec<CompactCacheKey> {
        let mut out = Vec::new();
        let bytes = {
            let mut shard = self.shard(&key).lock();
            shard.remove(&key);
            shard.tick += 1;
            let tick = shard.tick;
            shard.entries.insert(key, (size, tick));
            shard.by_use.insert(tick, key);
            shard.size += size;
            shard.evict_over(self.shard_capacity, &mut out)
        };
        self.count(&out, bytes);
        out
    }

    fn access(&self, key: &CompactCacheKey) -> bool {
        self.shard(key).lock().touch(key)
    }

    fn remove(&self, key: &CompactCacheKey) {
        self.shard(key).lock().remove(key);
    }

    fn increment_weight(&self, key: &CompactCacheKey, delta: isize) -> Vec<CompactCacheKey> {
        let mut out = Vec::new();
        let bytes = {
            let mut shard = self.shard(key).lock();
            let Some((size, _)) = shard.entries.get_mut(key) else {
                return out;
            };
            let new = size.saturating_add_signed(delta);
            let old = std::mem::replace(size, new);
            shard.size = shard.size - old + new;
            shard.evict_over(self.shard_capacity, &mut out)
        };
        self.count(&out, bytes);
        out
    }

    fn total_size(&self) -> usize {
        self.shards.iter().map(|s| s.lock().size).sum()
    }

    fn total_items(&self) -> usize {
        self.shards.iter().map(|s| s.lock().entries.len()).sum()
    }

    fn evicted_size(&self) -> usize {
        self.evicted_size.load(Ordering::Relaxed)
    }

    fn evicted_items(&self) -> usize {
        self.evicted_items.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(b: u8) -> CompactCacheKey {
        CompactCacheKey {
            primary: [b; 16],
            variance: None,
        }
    }

    #[test]
    fn too_big_evicts_itself_and_weights_move() {
        let lru = Manager::with_shards(100, 1);
        assert!(lru.admit(key(1), 50).is_empty());
        assert_eq!(lru.admit(key(2), 150), [key(1), key(2)]);
        assert_eq!((lru.total_size(), lru.total_items()), (0, 0));
        assert_eq!((lru.evicted_size(), lru.evicted_items()), (200, 2));
        assert!(lru.admit(key(3), 10).is_empty());
        assert!(lru.admit(key(4), 10).is_empty());
        assert_eq!(lru.increment_weight(&key(4), 85), [key(3)]);
        assert_eq!(lru.total_size(), 95);
        assert!(lru.increment_weight(&key(4), -90).is_empty());
        assert_eq!(lru.total_size(), 5);
        lru.remove(&key(4));
        assert!(!lru.access(&key(4)));
        // Re-admitting a key replaces its size.
        lru.admit(key(5), 10);
        lru.admit(key(5), 20);
        assert_eq!(lru.total_size(), 20);
    }

    proptest! {
        /// Against a model: a list in use order with sizes.
        #[test]
        fn matches_model(ops in proptest::collection::vec((0u8..3, 0u8..8, 1usize..40), 1..200)) {
            let cap = 100;
            let lru = Manager::with_shards(cap, 1);
            let mut model: Vec<(u8, usize)> = Vec::new();
            for (op, k, size) in ops {
                match op {
                    0 => {
                        model.retain(|(m, _)| *m != k);
                        model.push((k, size));
                        let mut want = Vec::new();
                        while model.iter().map(|(_, s)| s).sum::<usize>() > cap {
                            want.push(key(model.remove(0).0));
                        }
                        prop_assert_eq!(lru.admit(key(k), size), want);
                    }
                    1 => {
                        let found = model.iter().position(|(m, _)| *m == k);
                        if let Some(i) = found {
                            let e = model.remove(i);
                            model.push(e);
                        }
                        prop_assert_eq!(lru.access(&key(k)), found.is_some());
                    }
                    _ => {
                        model.retain(|(m, _)| *m != k);
                        lru.remove(&key(k));
                    }
                }
                prop_assert!(lru.total_size() <= cap);
                prop_assert_eq!(lru.total_size(), model.iter().map(|(_, s)| s).sum::<usize>());
            }
        }
    }
}
