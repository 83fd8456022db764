//! A typed in-memory cache for user code: TTLs, and read-through lookups
//! that many callers share.
//!
//! - [`MemoryCache`]: a bounded map from keys to cloneable values with an
//!   optional time-to-live each, run by the [TinyUFO](tinyufo) policy, so
//!   the popular keys stay while one-time keys pass through.
//! - [`RTCache`]: a read-through `MemoryCache`. On a miss it calls a
//!   [`Lookup`] (an auth service, a database, a config store); concurrent
//!   callers asking for the same missing key wait for that one call
//!   instead of stampeding the source. A failed lookup reaches all of them
//!   and caches nothing.
//!
//! It is **not** the HTTP cache (that is `pingora-cache`, which stores
//! responses with their metadata), and it is not shared between processes.
//!
//! # Examples
//!
//! ```
//! use pingora_memory_cache::{CacheStatus, MemoryCache};
//! use std::time::Duration;
//!
//! let cache: MemoryCache<String, u64> = MemoryCache::new(10_000);
//! cache.put(&"quota:alice".to_string(), 42, Some(Duration::from_secs(10)));
//! let (value, status) = cache.get(&"quota:alice".to_string());
//! assert_eq!((value, status), (Some(42), CacheStatus::Hit));
//! ```
//!
//! See [`RTCache`] for a cached authorization lookup, and
//! `examples/auth_lookup.rs` for coalescing under load.
#![forbid(unsafe_code)]

mod memory;
mod read_through;

pub use memory::MemoryCache;
pub use read_through::{LOOKUP_ERROR, Lookup, LookupError, RTCache};

use std::time::Duration;

/// Where a value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CacheStatus {
    /// Cached and fresh.
    Hit,
    /// Not cached.
    Miss,
    /// Cached but past its TTL.
    Expired,
    /// Not cached, and another caller's lookup of the same key provided it
    /// ([`RTCache`]).
    LockHit,
    /// Past its TTL by this much, returned anyway
    /// ([`MemoryCache::get_stale`]).
    Stale(Duration),
}

impl CacheStatus {
    /// A short lowercase name, for logs and headers.
    ///
    /// ```
    /// assert_eq!(pingora_memory_cache::CacheStatus::LockHit.as_str(), "lock_hit");
    /// ```
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
            Self::Expired => "expired",
            Self::LockHit => "lock_hit",
            Self::Stale(_) => "stale",
        }
    }

    /// Whether the value came from the cache ([`Hit`](Self::Hit) or
    /// [`Stale`](Self::Stale)).
    pub fn is_hit(&self) -> bool {
        matches!(self, Self::Hit | Self::Stale(_))
    }
}
