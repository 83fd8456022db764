//! A TinyUFO [`Manager`]: frequency-aware admission and eviction by bytes,
//! on the [`tinyufo`] crate.

use super::EvictionManager;
use crate::key::CompactCacheKey;
use ::tinyufo::TinyUfo;
use std::sync::atomic::{AtomicUsize, Ordering};

/// An eviction manager that keeps what is asked for often, with a byte
/// budget.
///
/// New entries start on probation; one that was not read again before
/// its turn comes stays only if a frequency sketch estimates it more
/// popular than the entry it would displace. So [`admit`] may return the
/// newcomer itself: the storage then does not keep it. A scan of
/// one-time URLs (a crawler, a cache-busting client) therefore cannot
/// push the popular objects out, as it does with [`lru::Manager`].
///
/// Unlike [`lru::Manager`], the budget is not split by shard: any entry up
/// to the whole capacity fits.
///
/// [`admit`]: EvictionManager::admit
/// [`lru::Manager`]: super::lru::Manager
///
/// # Examples
///
/// ```
/// use pingora_cache::eviction::{tinyufo::Manager, EvictionManager};
/// use pingora_cache::memory::MemCache;
/// use pingora_cache::key::CompactCacheKey;
///
/// // For MemCache: 64 MiB, about 10 000 objects, entries up to 1 MiB.
/// let cache = MemCache::with_eviction(Box::new(Manager::new(64 << 20, 10_000)), 1 << 20);
/// # let _ = cache;
///
/// let ufo = Manager::new(100, 10);
/// let key = |b| CompactCacheKey { primary: [b; 16], variance: None };
/// assert!(ufo.admit(key(1), 60).is_empty());
/// assert!(ufo.access(&key(1)));
/// assert_eq!(ufo.total_size(), 60);
/// // Too big for the budget: turned away at once.
/// assert_eq!(ufo.admit(key(2), 101), [key(2)]);
/// ```
pub struct Manager {
    ufo: TinyUfo<CompactCacheKey, CompactCacheKey>,
    evicted_size: AtomicUsize,
    evicted_items: AtomicUsize,
}

impl std::fmt::Debug for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("tinyufo::Manager")
            .field("capacity", &self.ufo.weight_limit())
            .field("size", &self.ufo.total_weight())
            .field("items", &self.ufo.len())
            .finish_non_exhaustive()
    }
}

impl Manager {
    /// A manager for `capacity` bytes, sized for about `estimated_items`
    /// entries (the frequency sketch's size; a rough guess is enough, such
    /// as the capacity over the typical object size).
    pub fn new(capacity: usize, estimated_items: usize) -> Self {
        Self {
            ufo: TinyUfo::new(capacity, estimated_items),
            evicted_size: AtomicUsize::new(0),
            evicted_items: AtomicUsize::new(0),
        }
    }

    fn evicted(&self, out: Vec<::tinyufo::KV<CompactCacheKey>>) -> Vec<CompactCacheKey> {
        let bytes: usize = out.iter().map(|kv| kv.weight).sum();
        self.evicted_size.fetch_add(bytes, Ordering::Relaxed);
        self.evicted_items.fetch_add(out.len(), Ordering::Relaxed);
        out.into_iter().map(|kv| kv.data).collect()
    }
}

impl EvictionManager for Manager {
    fn admit(&self, key: CompactCacheKey, size: usize) -> Vec<CompactCacheKey> {
        let out = self.ufo.put(key, key, size);
        self.evicted(out)
    }

    fn access(&self, key: &CompactCacheKey) -> bool {
        self.ufo.get(key).is_some()
    }

    fn remove(&self, key: &CompactCacheKey) {
        self.ufo.remove(key);
    }

    fn increment_weight(&self, key: &CompactCacheKey, delta: isize) -> Vec<CompactCacheKey> {
        // Read, then re-put: two resizes of one key racing may lose one,
        // which the storage's next admit of that key corrects.
        let Some(size) = self.ufo.weight(key) else {
            return Vec::new();
        };
        let out = self.ufo.put(*key, *key, size.saturating_add_signed(delta));
        self.evicted(out)
    }

    fn total_size(&self) -> usize {
        self.ufo.total_weight()
    }

    fn total_items(&self) -> usize {
        self.ufo.len()
    }

    fn evicted_size(&self) -> usize {
        self.evicted_size.load(Ordering::Relaxed)
    }

    fn evicted_items(&self) -> usize {
        self.evicted_items.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests;
