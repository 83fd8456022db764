//! [`HttpCache`]: the cache state of one request, as a proxy drives it.
//!
//! A request starts [`Disabled`](CachePhase::Disabled); a proxy phase
//! turns caching on with [`HttpCache::enable`] (storage, defaults, an
//! optional lock), the proxy sets the key, looks it up, and records
//! where the request went: a [`Hit`](CachePhase::Hit), a
//! [`Miss`](CachePhase::Miss), an [`Expired`](CachePhase::Expired) entry
//! fetched again, and so on. A transition the current phase does not
//! allow returns an error instead of panicking.

use crate::filters::{CacheMetaDefaults, NoCacheReason};
use crate::key::CacheKey;
use crate::lock::CacheLock;
use crate::meta::CacheMeta;
use crate::storage::Storage;
use pingora_error::{Error, ErrorType, Result};
use std::sync::Arc;

/// Where a request stands with the cache.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CachePhase {
    /// Caching is off for this request, and why.
    Disabled(NoCacheReason),
    /// Enabled; no key yet.
    Uninit,
    /// Enabled and keyed; not looked up yet.
    CacheKey,
    /// Enabled, then bypassed: the request goes to the origin and the
    /// response is not stored.
    Bypass,
    /// Not found: fetched from the origin (and stored if cacheable).
    Miss,
    /// Found fresh: served from the cache.
    Hit,
    /// Found stale and served stale (`stale-while-revalidate` or
    /// `stale-if-error`).
    Stale,
    /// Found stale: fetched again from the origin.
    Expired,
    /// Found stale, and the origin confirmed it with a 304.
    Revalidated,
}

impl CachePhase {
    /// A short name for logs.
    pub const fn as_str(&self) -> &'static str {
        match self {
            Self::Disabled(_) => "disabled",
            Self::Uninit => "uninitialized",
            Self::CacheKey => "key",
            Self::Bypass => "bypass",
            Self::Miss => "miss",
            Self::Hit => "hit",
            Self::Stale => "stale",
            Self::Expired => "expired",
            Self::Revalidated => "revalidated",
        }
    }
}

/// What a `cache_hit_filter` may ask for instead of serving a hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForcedInvalidationKind {
    /// Treat the entry as stale: fetch it again.
    ForceExpired,
    /// Treat the entry as absent: a plain miss.
    ForceMiss,
}

/// The outcome of a purge, handed to the proxy's `purge_response_filter`.
#[derive(Debug)]
pub enum PurgeStatus {
    /// Something was removed.
    Purged,
    /// Nothing was stored under the key.
    NotFound,
    /// The storage failed.
    Error(Box<Error>),
}

/// The storage, policy and lock a request caches with.
struct Enabled {
    storage: Arc<dyn Storage>,
    lock: Option<Arc<CacheLock>>,
    defaults: CacheMetaDefaults,
    key: Option<CacheKey>,
    meta: Option<CacheMeta>,
    max_file_size: Option<usize>,
}

/// The cache state of one request.
///
/// # Examples
///
/// ```
/// use pingora_cache::http_cache::{CachePhase, HttpCache};
/// use pingora_cache::{CacheKey, CacheMetaDefaults, MemCache, NoCacheReason};
/// use std::sync::Arc;
///
/// let storage = Arc::new(MemCache::new(1 << 20));
/// let mut cache = HttpCache::new();
/// assert_eq!(cache.phase(), CachePhase::Disabled(NoCacheReason::NeverEnabled));
/// cache.enable(storage, None, CacheMetaDefaults::default());
/// assert!(cache.enabled());
/// cache.set_cache_key(CacheKey::new("", "http://a.test/", "")).unwrap();
/// cache.cache_miss().unwrap();
/// assert_eq!(cache.phase(), CachePhase::Miss);
/// cache.disable(NoCacheReason::NoStore);
/// assert!(!cache.enabled());
/// ```
pub struct HttpCache {
    phase: CachePhase,
    inner: Option<Box<Enabled>>,
}

impl std::fmt::Debug for HttpCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpCache")
            .field("phase", &self.phase)
            .field("key", &self.cache_key())
            .finish_non_exhaustive()
    }
}

impl Default for HttpCache {
    fn default() -> Self {
        Self::new()
    }
}

fn wrong_phase(what: &str, phase: CachePhase) -> Box<Error> {
    Error::explain(
        ErrorType::InternalError,
        format!("cache: {what} in phase {}", phase.as_str()),
    )
}

impl HttpCache {
    /// A request's cache state: disabled until [`enable`](Self::enable).
    pub const fn new() -> Self {
        Self {
            phase: CachePhase::Disabled(NoCacheReason::NeverEnabled),
            inner: None,
        }
    }

    /// Cache this request in `storage`, with `defaults` for what the
    /// response does not say and, when given, `lock` against stampedes.
    /// Re-enabling replaces the earlier choice and forgets the key.
    pub fn enable(
        &mut self,
        storage: Arc<dyn Storage>,
        lock: Option<Arc<CacheLock>>,
        defaults: CacheMetaDefaults,
    ) {
        self.phase = CachePhase::Uninit;
        self.inner = Some(Box::new(Enabled {
            storage,
            lock,
            defaults,
            key: None,
            meta: None,
            max_file_size: None,
        }));
    }

    /// Turn caching off for the rest of the request, with `reason`.
    pub fn disable(&mut self, reason: NoCacheReason) {
        self.phase = CachePhase::Disabled(reason);
        self.inner = None;
    }

    /// Go to the origin and store nothing, but keep the storage and key
    /// (an unsafe method can still invalidate its target).
    pub fn bypass(&mut self) {
        if self.inner.is_some() {
            self.phase = CachePhase::Bypass;
        }
    }

    /// The current phase.
    pub const fn phase(&self) -> CachePhase {
        self.phase
    }

    /// Whether the cache takes part in this request: enabled and neither
    /// disabled since nor bypassed.
    pub const fn enabled(&self) -> bool {
        !matches!(self.phase, CachePhase::Disabled(_) | CachePhase::Bypass)
    }

    /// Whether the cache was bypassed.
    pub const fn bypassing(&self) -> bool {
        matches!(self.phase, CachePhase::Bypass)
    }

    /// Whether the request went to the origin.
    pub const fn upstream_used(&self) -> bool {
        matches!(
            self.phase,
            CachePhase::Disabled(_)
                | CachePhase::Bypass
                | CachePhase::Miss
                | CachePhase::Expired
                | CachePhase::Revalidated
        )
    }

    /// The storage, once enabled.
    pub fn storage(&self) -> Option<&Arc<dyn Storage>> {
        self.inner.as_ref().map(|i| &i.storage)
    }

    /// The lock, when one was given to [`enable`](Self::enable).
    pub fn cache_lock(&self) -> Option<&Arc<CacheLock>> {
        self.inner.as_ref().and_then(|i| i.lock.as_ref())
    }

    /// The defaults given to [`enable`](Self::enable).
    pub fn defaults(&self) -> Option<&CacheMetaDefaults> {
        self.inner.as_ref().map(|i| &i.defaults)
    }

    /// Store no response whose body is larger than `bytes` (on top of the
    /// storage's own limit): a larger one is proxied, not cached.
    pub fn set_max_file_size_bytes(&mut self, bytes: usize) {
        if let Some(i) = &mut self.inner {
            i.max_file_size = Some(bytes);
        }
    }

    /// The limit set by [`set_max_file_size_bytes`](Self::set_max_file_size_bytes).
    pub fn max_file_size_bytes(&self) -> Option<usize> {
        self.inner.as_ref().and_then(|i| i.max_file_size)
    }

    /// Set the key: from [`Uninit`](CachePhase::Uninit) to
    /// [`CacheKey`](CachePhase::CacheKey) (or again, while bypassed).
    ///
    /// # Errors
    ///
    /// When caching is not enabled.
    pub fn set_cache_key(&mut self, key: CacheKey) -> Result<()> {
        match (self.phase, &mut self.inner) {
            (CachePhase::Uninit | CachePhase::CacheKey, Some(i)) => {
                i.key = Some(key);
                self.phase = CachePhase::CacheKey;
                Ok(())
            }
            (CachePhase::Bypass, Some(i)) => {
                i.key = Some(key);
                Ok(())
            }
            (phase, _) => Err(wrong_phase("set key", phase)),
        }
    }

    /// The key, once set.
    pub fn cache_key(&self) -> Option<&CacheKey> {
        self.inner.as_ref().and_then(|i| i.key.as_ref())
    }

    /// The key, to set its variance.
    pub fn cache_key_mut(&mut self) -> Option<&mut CacheKey> {
        self.inner.as_mut().and_then(|i| i.key.as_mut())
    }

    /// The metadata of the entry found, or of the response being stored.
    pub fn cache_meta(&self) -> Option<&CacheMeta> {
        self.inner.as_ref().and_then(|i| i.meta.as_ref())
    }

    fn found(&mut self, meta: Option<CacheMeta>, to: CachePhase, what: &str) -> Result<()> {
        let from_ok = matches!(
            self.phase,
            CachePhase::CacheKey
                | CachePhase::Miss
                | CachePhase::Hit
                | CachePhase::Expired
                | CachePhase::Stale
        );
        match &mut self.inner {
            Some(i) if from_ok && i.key.is_some() => {
                if meta.is_some() {
                    i.meta = meta;
                }
                self.phase = to;
                Ok(())
            }
            _ => Err(wrong_phase(what, self.phase)),
        }
    }

    /// A fresh entry was found and is served.
    ///
    /// # Errors
    ///
    /// Before the key is set, or after the cache was disabled.
    pub fn cache_found(&mut self, meta: CacheMeta) -> Result<()> {
        self.found(Some(meta), CachePhase::Hit, "hit")
    }

    /// A stale entry was found and is served as it is.
    ///
    /// # Errors
    ///
    /// As [`cache_found`](Self::cache_found).
    pub fn serve_stale(&mut self, meta: CacheMeta) -> Result<()> {
        self.found(Some(meta), CachePhase::Stale, "stale")
    }

    /// A stale entry was found: the origin is asked again.
    ///
    /// # Errors
    ///
    /// As [`cache_found`](Self::cache_found).
    pub fn cache_expired(&mut self, meta: CacheMeta) -> Result<()> {
        self.found(Some(meta), CachePhase::Expired, "expired")
    }

    /// Nothing usable was found: the origin is asked. Calling it again in
    /// [`Miss`](CachePhase::Miss) does nothing.
    ///
    /// # Errors
    ///
    /// As [`cache_found`](Self::cache_found).
    pub fn cache_miss(&mut self) -> Result<()> {
        if self.phase == CachePhase::Miss {
            return Ok(());
        }
        if let Some(i) = &mut self.inner {
            i.meta = None;
        }
        self.found(None, CachePhase::Miss, "miss")
    }

    /// The origin answered an expired entry's revalidation with a 304:
    /// `meta` is the refreshed metadata.
    ///
    /// # Errors
    ///
    /// Outside [`Expired`](CachePhase::Expired).
    pub fn revalidated(&mut self, meta: CacheMeta) -> Result<()> {
        if self.phase != CachePhase::Expired {
            return Err(wrong_phase("revalidated", self.phase));
        }
        self.found(Some(meta), CachePhase::Revalidated, "revalidated")
    }

    /// Record the metadata of the response being stored (a miss).
    ///
    /// # Errors
    ///
    /// Outside [`Miss`](CachePhase::Miss) and [`Expired`](CachePhase::Expired).
    pub fn set_cache_meta(&mut self, meta: CacheMeta) -> Result<()> {
        match (self.phase, &mut self.inner) {
            (CachePhase::Miss | CachePhase::Expired, Some(i)) => {
                i.meta = Some(meta);
                Ok(())
            }
            (phase, _) => Err(wrong_phase("set meta", phase)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemCache;
    use pingora_core::header::ResponseHeader;
    use std::time::SystemTime;

    fn meta() -> CacheMeta {
        let now = SystemTime::now();
        CacheMeta::new(now, now, 0, 0, ResponseHeader::build(200, None).unwrap())
    }

    #[test]
    fn transitions() {
        let mut c = HttpCache::new();
        assert!(!c.enabled());
        assert!(c.upstream_used());
        assert!(c.cache_miss().is_err());
        assert!(c.set_cache_key(CacheKey::new("", "k", "")).is_err());
        c.enable(
            Arc::new(MemCache::new(1024)),
            None,
            CacheMetaDefaults::default(),
        );
        assert_eq!(c.phase(), CachePhase::Uninit);
        // No key yet: no lookup outcome.
        assert!(c.cache_found(meta()).is_err());
        c.set_cache_key(CacheKey::new("", "k", "")).unwrap();
        c.cache_expired(meta()).unwrap();
        assert!(c.cache_meta().is_some());
        assert!(c.upstream_used());
        c.revalidated(meta()).unwrap();
        assert_eq!(c.phase(), CachePhase::Revalidated);
        assert!(c.revalidated(meta()).is_err());
        assert!(c.set_cache_meta(meta()).is_err());

        c.enable(
            Arc::new(MemCache::new(1024)),
            None,
            CacheMetaDefaults::default(),
        );
        assert!(c.cache_key().is_none());
        c.set_cache_key(CacheKey::new("", "k", "")).unwrap();
        c.cache_miss().unwrap();
        c.cache_miss().unwrap();
        c.set_cache_meta(meta()).unwrap();
        c.set_max_file_size_bytes(10);
        assert_eq!(c.max_file_size_bytes(), Some(10));
        c.bypass();
        assert!(c.bypassing() && !c.enabled());
        assert!(c.storage().is_some());
        c.disable(NoCacheReason::Custom("test"));
        assert!(c.storage().is_none());
        assert_eq!(c.phase().as_str(), "disabled");
    }
}
