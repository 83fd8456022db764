//! TinyUFO: a concurrent in-memory cache policy that keeps what is asked
//! for often, bounded by weight.
//!
//! [`TinyUfo`] combines two ideas:
//!
//! - **Frequency-aware admission** (TinyLFU): a count-min sketch of small
//!   saturating counters, halved periodically so that it forgets, estimates
//!   how often each key was asked for recently. A newcomer that was never
//!   used while on probation enters the main queue only by beating the
//!   main queue's next victim on that estimate, so a scan of one-time keys
//!   cannot flush the hot set.
//! - **Two FIFO queues** (as in S3-FIFO): a small probationary queue (about
//!   10 % of the weight) where every newcomer starts, and a main queue for
//!   the rest. Hits only bump a per-entry counter; the queues move on
//!   eviction, so a read takes one shard's read lock and a few relaxed
//!   atomics, never a global lock.
//!
//! Entries live in a sharded hash map keyed by a 64-bit hash of the key
//! (SipHash with a per-cache random seed, so keys cannot be crafted to
//! collide); the queues are lock-free.
//!
//! It is **not** a key-value store with expiry or loading: for TTLs and
//! coalesced lookups see the `pingora-memory-cache` crate built on it, and
//! for HTTP responses the proxy cache's eviction manager.
//!
//! # Examples
//!
//! ```
//! use tinyufo::TinyUfo;
//!
//! // At most 100 units of weight, about 10 entries.
//! let cache = TinyUfo::new(100, 10);
//! assert!(cache.put(1, "one", 10).is_empty());
//! assert_eq!(cache.get(&1), Some("one"));
//! assert_eq!(cache.get(&2), None);
//!
//! // Past the limit, `put` returns what left to make room.
//! let mut evicted = Vec::new();
//! for i in 2..30 {
//!     evicted.extend(cache.put(i, "other", 10));
//! }
//! assert!(cache.total_weight() <= 100);
//! assert!(!evicted.is_empty());
//! ```
#![forbid(unsafe_code)]

mod cache;
mod sketch;

pub use cache::TinyUfo;

/// The weight of an entry: what it counts against the cache's limit
/// (bytes, or 1 per entry to bound the count).
pub type Weight = usize;

/// An entry that left the cache: the hash of its key, its data and its
/// weight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KV<T> {
    /// The key's hash, as [`TinyUfo::key_hash`] gives it.
    pub key: u64,
    /// The entry's data.
    pub data: T,
    /// The entry's weight.
    pub weight: Weight,
}
