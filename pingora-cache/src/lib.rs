//! The HTTP cache of pingora-rs: the parts that do not need a proxy.
//!
//! - RFC 9111 semantics as pure functions over
//!   [`RequestHeader`](pingora_core::header::RequestHeader) and
//!   [`ResponseHeader`](pingora_core::header::ResponseHeader):
//!   [`CacheControl`], cacheability ([`resp_cacheable`]), freshness and age
//!   ([`freshness`]), and the stored response's [`CacheMeta`].
//! - Keys and variants: [`CacheKey`] with its fixed-size hashes, `Vary`
//!   ([`variance`]), conditional requests and revalidation
//!   ([`conditional`]), ranges served from a full response ([`range`]),
//!   and how to answer a request from a stored response ([`hit`]).
//! - Storage: the [`Storage`] trait, the streaming in-memory
//!   [`MemCache`], the crash-safe file-backed
//!   [`DiskCache`], both together as
//!   [`TieredStorage`], and eviction
//!   through an [`EvictionManager`](eviction::EvictionManager) (LRU or
//!   TinyUFO, by bytes).
//! - The [`CacheLock`] against stampedes: one fill per
//!   key, the other requests wait for it.
//! - [`HttpCache`]: one request's cache state (its [`CachePhase`]), which
//!   the proxy keeps on its session.
//!
//! It is **not** a general key-value cache: entries are HTTP responses with
//! their metadata. The proxy drives it from its cache phases; nothing here
//! names a proxy type, reads the clock on its own in the RFC rules, or
//! opens a socket.
//!
//! # How a proxy drives it
//!
//! Per request, when caching is on:
//!
//! 1. Only GET and HEAD use the cache ([`filters::request_cacheable`]); an
//!    unsafe method whose response is not an error purges its target
//!    ([`filters::invalidates`], [`Storage::purge`]).
//! 2. Build the key ([`CacheKey::for_request`], then
//!    [`CacheKey::extend`] for user parts); a purge request calls
//!    [`Storage::purge`] and stops.
//! 3. [`storage::lookup_variant`]: on a hit, [`CacheMeta::freshness`]
//!    says fresh (serve), stale-while-revalidate (serve, and refresh in
//!    the background if [`CacheLock::lock`] gives the write permit) or
//!    stale (revalidate: [`conditional::add_validators`] on the upstream
//!    request; a 304 goes through [`conditional::revalidated_meta`] and
//!    [`Storage::update_meta`]; an origin error may still serve it if
//!    [`CacheMeta::can_serve_stale_if_error`]). Serve with
//!    [`hit::plan_hit`] and [`HitHandler`] reads.
//! 4. On a miss, [`CacheLock::lock`]: the writer looks up once more (a
//!    previous writer may have finished since step 3), then fetches; the
//!    others
//!    [`wait`](lock::ReadLock::wait) and look up again on
//!    [`LockStatus::Done`], or go to the origin on anything else.
//! 5. The writer decides with [`resp_cacheable`], sets the variance from
//!    [`variance::variance_for`], writes through
//!    [`Storage::get_miss_handler`] while streaming to the client, and
//!    releases the permit with the outcome.
//!
//! # Examples
//!
//! ```
//! use pingora_cache::{resp_cacheable, CacheControl, CacheMetaDefaults, RespCacheable, ResponseTimes};
//! use pingora_core::header::ResponseHeader;
//! use std::time::{Duration, SystemTime};
//!
//! let mut resp = ResponseHeader::build(200, None).unwrap();
//! resp.insert_header("Cache-Control", "s-maxage=600, stale-if-error=60").unwrap();
//! let now = SystemTime::now();
//! let cc = CacheControl::from_resp_headers(&resp);
//! let defaults = CacheMetaDefaults::default();
//! match resp_cacheable(cc.as_ref(), resp, false, &defaults, ResponseTimes::at(now)) {
//!     RespCacheable::Cacheable(meta) => {
//!         assert!(meta.is_fresh(now + Duration::from_secs(599)));
//!         assert!(meta.can_serve_stale_if_error(now + Duration::from_secs(650)));
//!     }
//!     RespCacheable::Uncacheable(reason) => panic!("{}", reason.as_str()),
//! }
//! ```

pub mod cache_control;
pub mod conditional;
pub mod eviction;
pub mod filters;
pub mod freshness;
pub mod hit;
pub mod http_cache;
pub mod key;
pub mod lock;
pub mod memory;
pub mod meta;
pub mod range;
pub mod storage;
pub mod variance;

pub use cache_control::CacheControl;
pub use filters::{CacheMetaDefaults, NoCacheReason, RespCacheable, ResponseTimes, resp_cacheable};
pub use freshness::Heuristic;
pub use http_cache::{CachePhase, ForcedInvalidationKind, HttpCache, PurgeStatus};
pub use key::{CacheKey, CompactCacheKey, HashBinary};
pub use lock::{CacheLock, LockStatus, Locked};
pub use memory::MemCache;
pub use meta::{CacheMeta, Freshness};
pub use storage::disk::DiskCache;
pub use storage::tiered::TieredStorage;
pub use storage::{HitHandler, MissHandler, Storage};
pub use variance::VarianceBuilder;
