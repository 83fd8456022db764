//! Eviction: which entries leave when a storage is full.
//!
//! A storage tells its [`EvictionManager`] about each entry it admits,
//! reads and removes; on admission the manager answers with the entries
//! to evict so that its byte budget holds. [`lru::Manager`] evicts the
//! least recently used, weighted by size; [`tinyufo::Manager`] keeps the
//! most frequently used, and may turn a newcomer away (see
//! [`EvictionManager::admit`]), so that scans do not flush the cache.

pub mod lru;
pub mod tinyufo;

use crate::key::CompactCacheKey;

/// Tracks entries and their sizes, and picks what to evict.
///
/// Implementations are shared by all the threads using one storage, so
/// every method takes `&self`.
pub trait EvictionManager: Send + Sync {
    /// Start tracking `key` (or update its size) as just used; returns the
    /// keys to evict to stay within budget, oldest first. The list may
    /// hold `key` itself when it alone does not fit: then it must not be
    /// stored.
    fn admit(&self, key: CompactCacheKey, size: usize) -> Vec<CompactCacheKey>;

    /// Mark `key` as just used; returns whether it is tracked.
    fn access(&self, key: &CompactCacheKey) -> bool;

    /// Stop tracking `key` (it was purged or replaced by the storage).
    fn remove(&self, key: &CompactCacheKey);

    /// Change the size of `key` by `delta` bytes; returns the keys to evict.
    fn increment_weight(&self, key: &CompactCacheKey, delta: isize) -> Vec<CompactCacheKey>;

    /// The bytes tracked now.
    fn total_size(&self) -> usize;

    /// The entries tracked now.
    fn total_items(&self) -> usize;

    /// The bytes evicted so far.
    fn evicted_size(&self) -> usize;

    /// The entries evicted so far.
    fn evicted_items(&self) -> usize;
}
