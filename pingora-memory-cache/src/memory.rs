//! [`MemoryCache`]: typed values with optional time-to-live, on TinyUFO.

use crate::CacheStatus;
use std::hash::Hash;
use std::time::Duration;
use tinyufo::TinyUfo;
use tokio::time::Instant;

/// A stored value and when it stops being fresh.
#[derive(Clone)]
struct Node<T> {
    value: T,
    expires: Option<Instant>,
}

/// A bounded in-memory cache of typed values with optional TTLs.
///
/// Bounded by entry count (each entry weighs 1) and run by the
/// [TinyUFO](tinyufo) policy: one-time keys do not push out popular ones.
/// Reads take one shard's read lock and clone the value, so keep `T`
/// cheap to clone (an `Arc`, a small value). Expiry is checked on read;
/// expired entries stay until evicted, so that
/// [`get_stale`](Self::get_stale) can still serve them.
///
/// Keys are hashed with a per-cache random SipHash key, and an entry is
/// found by that 64-bit hash alone: two keys sharing one (odds about
/// n²/2⁶⁵ for n keys) share an entry.
///
/// Time is [`tokio::time::Instant`]: the real clock, or tokio's paused
/// clock in tests.
///
/// # Examples
///
/// ```
/// use pingora_memory_cache::{CacheStatus, MemoryCache};
/// use std::time::Duration;
///
/// let cache: MemoryCache<&str, u32> = MemoryCache::new(1000);
/// assert_eq!(cache.get(&"a"), (None, CacheStatus::Miss));
/// cache.put(&"a", 1, Some(Duration::from_secs(60)));
/// assert_eq!(cache.get(&"a"), (Some(1), CacheStatus::Hit));
/// cache.remove(&"a");
/// assert_eq!(cache.get(&"a").1, CacheStatus::Miss);
/// ```
pub struct MemoryCache<K: Hash, T: Clone> {
    store: TinyUfo<K, Node<T>>,
}

impl<K: Hash, T: Clone> std::fmt::Debug for MemoryCache<K, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryCache")
            .field("len", &self.store.len())
            .field("size", &self.store.weight_limit())
            .finish()
    }
}

impl<K: Hash, T: Clone + Send + Sync> MemoryCache<K, T> {
    /// A cache of at most `size` entries.
    pub fn new(size: usize) -> Self {
        Self {
            store: TinyUfo::new(size, size),
        }
    }

    pub(crate) fn hash(&self, key: &K) -> u64 {
        self.store.key_hash(key)
    }

    /// The value of `key` if it is cached and fresh: `(Some, Hit)`; else
    /// `(None, Miss)` or, for an expired one, `(None, Expired)`.
    pub fn get(&self, key: &K) -> (Option<T>, CacheStatus) {
        self.get_hashed(self.hash(key))
    }

    pub(crate) fn get_hashed(&self, hash: u64) -> (Option<T>, CacheStatus) {
        match self.store.get_hashed(hash) {
            None => (None, CacheStatus::Miss),
            Some(node) if node.expires.is_some_and(|e| e <= Instant::now()) => {
                (None, CacheStatus::Expired)
            }
            Some(node) => (Some(node.value), CacheStatus::Hit),
        }
    }

    /// Like [`get`](Self::get), but an expired value is returned too, with
    /// [`CacheStatus::Stale`] and how long ago it expired (for serving
    /// stale data while a refresh runs, or when the source is down).
    pub fn get_stale(&self, key: &K) -> (Option<T>, CacheStatus) {
        self.get_stale_hashed(self.hash(key))
    }

    pub(crate) fn get_stale_hashed(&self, hash: u64) -> (Option<T>, CacheStatus) {
        match self.store.get_hashed(hash) {
            None => (None, CacheStatus::Miss),
            Some(node) => {
                let now = Instant::now();
                match node.expires {
                    Some(e) if e <= now => (Some(node.value), CacheStatus::Stale(now - e)),
                    _ => (Some(node.value), CacheStatus::Hit),
                }
            }
        }
    }

    /// [`get`](Self::get) for several keys, in order.
    ///
    /// ```
    /// # use pingora_memory_cache::{CacheStatus, MemoryCache};
    /// let cache: MemoryCache<u8, u8> = MemoryCache::new(10);
    /// cache.put(&1, 10, None);
    /// let got = cache.multi_get([1, 2].iter());
    /// assert_eq!(got, [(Some(10), CacheStatus::Hit), (None, CacheStatus::Miss)]);
    /// ```
    pub fn multi_get<'a, I>(&self, keys: I) -> Vec<(Option<T>, CacheStatus)>
    where
        I: Iterator<Item = &'a K>,
        K: 'a,
    {
        keys.map(|k| self.get(k)).collect()
    }

    /// Cache `value` under `key`, fresh for `ttl` (forever if `None`). As
    /// a newcomer it is on probation: if the cache is full of more popular
    /// keys it may be evicted soon, or at once.
    pub fn put(&self, key: &K, value: T, ttl: Option<Duration>) {
        self.put_hashed(self.hash(key), value, ttl);
    }

    pub(crate) fn put_hashed(&self, hash: u64, value: T, ttl: Option<Duration>) {
        let expires = ttl.map(|ttl| Instant::now() + ttl);
        self.store.put_hashed(hash, Node { value, expires }, 1);
    }

    /// Like [`put`](Self::put), but the entry skips the admission check
    /// (see [`TinyUfo::force_put`]).
    pub fn force_put(&self, key: &K, value: T, ttl: Option<Duration>) {
        let expires = ttl.map(|ttl| Instant::now() + ttl);
        self.store
            .force_put_hashed(self.hash(key), Node { value, expires }, 1);
    }

    /// Remove `key`.
    pub fn remove(&self, key: &K) {
        self.store.remove(key);
    }

    /// The number of entries, expired ones included.
    pub fn len(&self) -> usize {
        self.store.len()
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.store.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn ttl_expires_and_stale_is_served_on_request() {
        let cache: MemoryCache<u32, &str> = MemoryCache::new(10);
        cache.put(&1, "short", Some(Duration::from_secs(5)));
        cache.put(&2, "forever", None);
        assert_eq!(cache.get(&1), (Some("short"), CacheStatus::Hit));
        tokio::time::sleep(Duration::from_secs(6)).await;
        assert_eq!(cache.get(&1), (None, CacheStatus::Expired));
        assert_eq!(
            cache.get_stale(&1),
            (Some("short"), CacheStatus::Stale(Duration::from_secs(1)))
        );
        assert_eq!(cache.get(&2), (Some("forever"), CacheStatus::Hit));
        assert_eq!(cache.get_stale(&2), (Some("forever"), CacheStatus::Hit));
        // Putting again refreshes.
        cache.put(&1, "again", Some(Duration::from_secs(5)));
        assert_eq!(cache.get(&1), (Some("again"), CacheStatus::Hit));
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn bounded_by_count() {
        let cache: MemoryCache<u32, u32> = MemoryCache::new(10);
        for i in 0..100 {
            cache.put(&i, i, None);
            assert!(cache.len() <= 10);
        }
        cache.force_put(&1000, 1000, None);
        assert_eq!(cache.get(&1000), (Some(1000), CacheStatus::Hit));
        assert!(!cache.is_empty());
    }
}
