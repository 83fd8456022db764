//! [`TieredStorage`]: a fast tier (memory) in front of a large one
//! (disk), with promotion of hits from the large tier.

use crate::key::CacheKey;
use crate::meta::CacheMeta;
use crate::storage::{HandleHit, HandleMiss, HitHandler, MissHandler, Storage};
use async_trait::async_trait;
use bytes::Bytes;
use pingora_error::{Error, Result};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// The default largest body promoted to the hot tier: 8 MiB (the
/// default per-entry limit of [`MemCache`](crate::memory::MemCache)).
pub const DEFAULT_MAX_PROMOTE_SIZE: u64 = 8 << 20;

/// The default number of promotions under way at once.
pub const DEFAULT_MAX_PROMOTING: usize = 64;

struct Inner {
    hot: Arc<dyn Storage>,
    cold: Arc<dyn Storage>,
    max_promote_size: u64,
    max_promoting: usize,
    promoting: AtomicUsize,
    promoted: AtomicU64,
}

/// Two storages as one: a hot tier (usually a
/// [`MemCache`](crate::memory::MemCache)) in front of a cold one (usually a
/// [`DiskCache`](crate::storage::disk::DiskCache)).
///
/// - **Lookups** try the hot tier, then the cold one. A finished cold hit
///   whose body is at most the promotion limit is **promoted**: the body
///   is kept as the reader reads it, and once read to the end it is
///   stored in the hot tier (in one go, so that nobody streams a copy at
///   the pace of one client). A range read (a seek) promotes the whole
///   body from a read of its own, in the background; a body not read to
///   the end promotes nothing. Promotions are bounded in body size and in
///   number under way.
/// - **Writes** go to both tiers. When one tier refuses or drops the
///   entry (too large for memory, a disk error) the other keeps it; the
///   write fails only when both do.
/// - **Purge** and **update_meta** go to both.
///
/// While an entry fills, lookups stream it from the hot tier. If the hot
/// tier gives it up mid-way (the body outgrew its per-entry limit), those
/// readers get [`PARTIAL_ENTRY_ABANDONED`](crate::storage::PARTIAL_ENTRY_ABANDONED)
/// as with the hot tier alone, while the cold tier completes the entry;
/// give the hot tier a per-entry limit above the bodies that are common.
///
/// Pick it per request in `request_cache_filter` like any storage.
///
/// # Examples
///
/// ```no_run
/// use pingora_cache::storage::{disk::DiskCache, tiered::TieredStorage};
/// use pingora_cache::MemCache;
/// use std::sync::Arc;
///
/// # fn main() -> pingora_error::Result<()> {
/// let memory = MemCache::new(256 << 20);
/// let disk = DiskCache::new("/var/cache/my-proxy", 10 << 30)?;
/// let storage = Arc::new(TieredStorage::new(memory, disk));
/// // in request_cache_filter:
/// // session.cache.enable(storage.clone(), Some(lock.clone()), defaults);
/// # let _ = storage;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct TieredStorage {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for TieredStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TieredStorage")
            .field("max_promote_size", &self.inner.max_promote_size)
            .field("promoted", &self.promoted())
            .finish_non_exhaustive()
    }
}

impl TieredStorage {
    /// `hot` in front of `cold`, promoting bodies of at most
    /// [`DEFAULT_MAX_PROMOTE_SIZE`], [`DEFAULT_MAX_PROMOTING`] at a time.
    pub fn new(hot: impl Storage + 'static, cold: impl Storage + 'static) -> Self {
        Self {
            inner: Arc::new(Inner {
                hot: Arc::new(hot),
                cold: Arc::new(cold),
                max_promote_size: DEFAULT_MAX_PROMOTE_SIZE,
                max_promoting: DEFAULT_MAX_PROMOTING,
                promoting: AtomicUsize::new(0),
                promoted: AtomicU64::new(0),
            }),
        }
    }

    /// Promote bodies of at most `max_size` bytes, at most `max_at_once`
    /// at a time (0: never promote). The bytes held for promotions are at
    /// most their product. Call it on a storage not yet cloned; on a
    /// shared one it does nothing.
    #[must_use]
    pub fn with_promotion(mut self, max_size: u64, max_at_once: usize) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.max_promote_size = max_size;
            inner.max_promoting = max_at_once;
        }
        self
    }

    /// The hot tier.
    pub fn hot(&self) -> &dyn Storage {
        self.inner.hot.as_ref()
    }

    /// The cold tier.
    pub fn cold(&self) -> &dyn Storage {
        self.inner.cold.as_ref()
    }

    /// The entries promoted so far.
    pub fn promoted(&self) -> u64 {
        self.inner.promoted.load(Ordering::Relaxed)
    }
}

/// One promotion slot, given back on drop.
struct Permit(Arc<Inner>);

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.promoting.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Inner {
    fn permit(self: &Arc<Self>) -> Option<Permit> {
        let before = self.promoting.fetch_add(1, Ordering::Relaxed);
        let permit = Permit(Arc::clone(self));
        (before < self.max_promoting).then_some(permit)
    }
}

/// A cold hit that copies its body into the hot tier once read whole.
struct Promoting {
    hit: HitHandler,
    key: CacheKey,
    meta: CacheMeta,
    /// The body's length.
    len: u64,
    /// The body so far, and its length; `None` once promotion is given
    /// up or handed to a task.
    kept: Option<(Vec<Bytes>, u64)>,
    permit: Option<Permit>,
}

/// Store a whole body in the hot tier, then give the permit back.
async fn store_hot(permit: Permit, key: CacheKey, meta: CacheMeta, body: Vec<Bytes>) {
    let inner = Arc::clone(&permit.0);
    let stored = async {
        let mut miss = inner.hot.get_miss_handler(&key, &meta).await?;
        for piece in body {
            miss.write_body(piece).await?;
        }
        miss.finish().await
    };
    match stored.await {
        Ok(_) => {
            inner.promoted.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => log::debug!("cache promotion failed: {e}"),
    }
}

/// Read the whole body of `key` from the cold tier (at most `max`
/// bytes), then store it in the hot tier.
async fn copy_to_hot(permit: Permit, key: CacheKey, max: u64) {
    let read = async {
        let Some((meta, mut hit)) = permit.0.cold.lookup(&key).await? else {
            return Ok(None);
        };
        if hit.body_len().is_none_or(|len| len > max) {
            return Ok(None);
        }
        let mut body = Vec::new();
        while let Some(piece) = hit.read_body().await? {
            body.push(piece);
        }
        Ok::<_, Box<Error>>(Some((meta, body)))
    };
    match read.await {
        Ok(Some((meta, body))) => store_hot(permit, key, meta, body).await,
        Ok(None) => {}
        Err(e) => log::debug!("cache promotion failed: {e}"),
    }
}

impl Promoting {
    /// Hand the body to a task that stores it in the hot tier, so that
    /// the reader does not wait for it.
    fn promote(&mut self) {
        let (Some((body, _)), Some(permit)) = (self.kept.take(), self.permit.take()) else {
            return;
        };
        let (key, meta) = (self.key.clone(), self.meta.clone());
        tokio::spawn(store_hot(permit, key, meta, body));
    }
}

#[async_trait]
impl HandleHit for Promoting {
    async fn read_body(&mut self) -> Result<Option<Bytes>> {
        match self.hit.read_body().await {
            Ok(Some(piece)) => {
                if let Some((kept, kept_len)) = &mut self.kept {
                    *kept_len += piece.len() as u64;
                    kept.push(piece.clone());
                    // Whole: promote now, whether or not the reader asks
                    // for the end.
                    if *kept_len == self.len {
                        self.promote();
                    }
                }
                Ok(Some(piece))
            }
            Ok(None) => {
                self.promote();
                Ok(None)
            }
            Err(e) => {
                self.kept = None;
                Err(e)
            }
        }
    }

    fn body_len(&self) -> Option<u64> {
        self.hit.body_len()
    }

    fn can_seek(&self) -> bool {
        self.hit.can_seek()
    }

    fn seek(&mut self, start: u64, end: Option<u64>) -> Result<()> {
        // A part of the body (a range request): promote the whole body
        // from a read of its own, in the background.
        if self.kept.take().is_some()
            && let Some(permit) = self.permit.take()
        {
            let max = permit.0.max_promote_size;
            tokio::spawn(copy_to_hot(permit, self.key.clone(), max));
        }
        self.hit.seek(start, end)
    }
}

/// Writes to both tiers; a tier that fails is dropped (abandoning its
/// copy) and the other goes on.
struct TieredMiss {
    hot: Option<MissHandler>,
    cold: Option<MissHandler>,
}

#[async_trait]
impl HandleMiss for TieredMiss {
    async fn write_body(&mut self, data: Bytes) -> Result<()> {
        let mut last_err = None;
        for tier in [&mut self.hot, &mut self.cold] {
            if let Some(miss) = tier
                && let Err(e) = miss.write_body(data.clone()).await
            {
                *tier = None;
                last_err = Some(e);
            }
        }
        match last_err {
            Some(e) if self.hot.is_none() && self.cold.is_none() => Err(e),
            _ => Ok(()),
        }
    }

    async fn finish(self: Box<Self>) -> Result<usize> {
        let mut stored = None;
        let mut last_err = None;
        for miss in [self.cold, self.hot].into_iter().flatten() {
            match miss.finish().await {
                Ok(n) => stored = Some(stored.unwrap_or(0).max(n)),
                Err(e) => last_err = Some(e),
            }
        }
        match (stored, last_err) {
            (Some(n), _) => Ok(n),
            (None, Some(e)) => Err(e),
            (None, None) => {
                Error::e_explain(pingora_error::ErrorType::InternalError, "no tier left")
            }
        }
    }
}

/// `Ok` when either tier succeeded, else the first error.
fn either<T>(a: Result<T>, b: Result<T>, join: impl FnOnce(T, T) -> T) -> Result<T>
where
    T: Default,
{
    match (a, b) {
        (Ok(a), Ok(b)) => Ok(join(a, b)),
        (Ok(x), Err(e)) | (Err(e), Ok(x)) => {
            log::warn!("cache tier failed: {e}");
            Ok(join(x, T::default()))
        }
        (Err(e), Err(_)) => Err(e),
    }
}

#[async_trait]
impl Storage for TieredStorage {
    async fn lookup(&self, key: &CacheKey) -> Result<Option<(CacheMeta, HitHandler)>> {
        let inner = &self.inner;
        if let Some(found) = inner.hot.lookup(key).await? {
            return Ok(Some(found));
        }
        let Some((meta, hit)) = inner.cold.lookup(key).await? else {
            return Ok(None);
        };
        // Only a finished body of bounded size, under the key it was
        // found by: a lookup without variance may find a variant, which
        // must not be stored under the bare key.
        let promotable = hit
            .body_len()
            .is_some_and(|len| len <= inner.max_promote_size)
            && (key.variance_bin().is_some() || !meta.response_header().has_header("vary"));
        let permit = promotable.then(|| inner.permit()).flatten();
        let Some(permit) = permit else {
            return Ok(Some((meta, hit)));
        };
        let promoting = Promoting {
            len: hit.body_len().unwrap_or(0),
            hit,
            key: key.clone(),
            meta: meta.clone(),
            kept: Some((Vec::new(), 0)),
            permit: Some(permit),
        };
        Ok(Some((meta, Box::new(promoting))))
    }

    async fn get_miss_handler(&self, key: &CacheKey, meta: &CacheMeta) -> Result<MissHandler> {
        let hot = self.inner.hot.get_miss_handler(key, meta).await;
        let cold = self.inner.cold.get_miss_handler(key, meta).await;
        match (hot, cold) {
            (Err(e), Err(_)) => Err(e),
            (hot, cold) => Ok(Box::new(TieredMiss {
                hot: hot.ok(),
                cold: cold.ok(),
            })),
        }
    }

    async fn update_meta(&self, key: &CacheKey, meta: &CacheMeta) -> Result<bool> {
        let hot = self.inner.hot.update_meta(key, meta).await;
        let cold = self.inner.cold.update_meta(key, meta).await;
        either(hot, cold, |a, b| a || b)
    }

    async fn purge(&self, key: &CacheKey) -> Result<bool> {
        // Both, and an error from either is reported: a purge that
        // leaves a copy behind has failed.
        let hot = self.inner.hot.purge(key).await;
        let cold = self.inner.cold.purge(key).await;
        Ok(hot? | cold?)
    }

    fn support_streaming_partial_write(&self) -> bool {
        self.inner.hot.support_streaming_partial_write()
            && self.inner.cold.support_streaming_partial_write()
    }
}
