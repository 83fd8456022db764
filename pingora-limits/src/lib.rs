//! Counting structures for rate limiting.
//!
//! Lock-free counters a proxy consults on every request:
//!
//! - [`estimator::Estimator`]: a count-min sketch, counts for very many
//!   keys in fixed memory, never below the truth, with a stated error
//!   bound;
//! - [`rate::Rate`]: events per key over a sliding window, from two
//!   estimators;
//! - [`inflight::Inflight`]: operations in flight per key, each held by a
//!   guard that counts it out when dropped;
//! - `distributed::RedisRateLimiter` (feature `redis`): a limit shared by
//!   many processes through Redis, with local counts in front.
//!
//! It is **not** a policy engine: it counts, and the caller decides what to
//! do with the counts (answer 429, pick another backend ...). It depends on
//! no other crate of this workspace.
//!
//! # Features
//!
//! - `redis`: the `distributed` module, over the `redis` crate and tokio.
//!   Its public API shows `redis::RedisError` (from
//!   `RedisRateLimiter::new`).
//!
//! # Examples
//!
//! A limit of 10 requests per second per client:
//!
//! ```
//! use pingora_limits::rate::Rate;
//! use std::time::Duration;
//!
//! let rate = Rate::new(Duration::from_secs(1));
//! let admit = |client: &str| {
//!     rate.observe(client, 1);
//!     if rate.estimate(client) > 10.0 {
//!         // Refused requests do not count.
//!         rate.observe(client, -1);
//!         return false;
//!     }
//!     true
//! };
//! let admitted = (0..15).filter(|_| admit("10.0.0.7")).count();
//! // The estimator never undercounts, so never more than the limit.
//! assert!(admitted <= 10);
//! ```

#![forbid(unsafe_code)]

#[cfg(feature = "redis")]
pub mod distributed;
pub mod estimator;
pub mod inflight;
pub mod rate;
