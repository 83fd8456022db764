//! [`MemCache`]: an in-memory [`Storage`] that streams entries while they
//! fill, bounded in bytes, sharded for concurrent readers.

mod body;

use crate::eviction::{EvictionManager, lru};
use crate::key::{CacheKey, CompactCacheKey, HashBinary};
use crate::meta::CacheMeta;
use crate::storage::{ENTRY_TOO_LARGE, HandleMiss, HitHandler, MissHandler, Storage};
use async_trait::async_trait;
use body::{Body, Fill};
use bytes::Bytes;
use parking_lot::RwLock;
use pingora_error::{Error, ErrorType, Result};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

const SHARDS: usize = 16;

/// The default per-entry limit: 8 MiB.
pub const DEFAULT_MAX_ENTRY_SIZE: usize = 8 << 20;

/// One stored response: its metadata and body.
#[derive(Debug)]
struct Entry {
    meta: RwLock<CacheMeta>,
    body: Arc<Body>,
    /// What the entry was charged when admitted (0 before).
    weight: AtomicUsize,
}

/// One variant of a resource: the finished entry, and the one being
/// filled, which lookups prefer (it is newer).
#[derive(Debug)]
struct Variant {
    variance: Option<HashBinary>,
    current: Option<Arc<Entry>>,
    filling: Option<Arc<Entry>>,
}

type Shard = RwLock<HashMap<HashBinary, Vec<Variant>>>;

struct Inner {
    shards: Box<[Shard]>,
    eviction: Box<dyn EvictionManager>,
    max_entry_size: usize,
    used: AtomicUsize,
    /// Body bytes of entries still filling, and their cap: fills are not
    /// yet admitted, so this is what bounds them all together.
    filling: AtomicUsize,
    max_filling: usize,
}

/// An in-memory cache storage.
///
/// - **Streaming**: an entry is visible to lookups from the moment its
///   writer is created; readers get the bytes as they arrive and wait for
///   more. If the writer gives up, they get
///   [`PARTIAL_ENTRY_ABANDONED`](crate::storage::PARTIAL_ENTRY_ABANDONED).
/// - **Bounded**: an entry whose body grows past the per-entry limit is
///   abandoned ([`ENTRY_TOO_LARGE`] to its writer), and so is one that
///   would take the bytes of all entries still filling past their cap
///   (by default the capacity given to [`new`](Self::new)); finished entries are
///   admitted through an [`EvictionManager`] (by default a size-weighted
///   LRU with the byte budget), and what it evicts is dropped.
/// - **Sharded**: 16 read-write-locked maps by key hash, so lookups on
///   different keys run in parallel and lookups on one key share a read
///   lock.
///
/// # Examples
///
/// ```
/// use pingora_cache::{memory::MemCache, storage::Storage, CacheKey, CacheMeta};
/// use pingora_core::header::ResponseHeader;
/// use std::time::{Duration, SystemTime};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> pingora_error::Result<()> {
/// let cache = MemCache::new(64 << 20);
/// let key = CacheKey::new("", "http://a.test/", "");
/// let now = SystemTime::now();
/// let meta = CacheMeta::new(now + Duration::from_secs(60), now, 0, 0, ResponseHeader::build(200, None)?);
///
/// let mut miss = cache.get_miss_handler(&key, &meta).await?;
/// miss.write_body("hello".into()).await?;
/// miss.finish().await?;
///
/// let (meta, mut hit) = cache.lookup(&key).await?.expect("stored");
/// assert!(meta.is_fresh(now));
/// assert_eq!(hit.read_body().await?.as_deref(), Some(&b"hello"[..]));
/// assert_eq!(hit.read_body().await?, None);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct MemCache {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for MemCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemCache")
            .field("used_bytes", &self.used_bytes())
            .field("max_entry_size", &self.inner.max_entry_size)
            .finish_non_exhaustive()
    }
}

/// The bytes an entry is charged: its body plus its header fields.
fn entry_weight(meta: &CacheMeta, body_len: u64) -> usize {
    let header: usize = meta
        .response_header()
        .wire_headers()
        .map(|(n, v)| n.len() + v.len() + 4)
        .sum();
    usize::try_from(body_len)
        .unwrap_or(usize::MAX)
        .saturating_add(header + 64)
}

impl MemCache {
    /// A cache of at most `capacity` bytes, with an LRU eviction manager
    /// and entries of at most [`DEFAULT_MAX_ENTRY_SIZE`] (or a sixteenth
    /// of the capacity, if smaller, so that any admitted entry fits its
    /// LRU shard).
    pub fn new(capacity: usize) -> Self {
        let max_entry = DEFAULT_MAX_ENTRY_SIZE.min(capacity / SHARDS);
        Self::with_eviction(Box::new(lru::Manager::new(capacity)), max_entry)
            .with_max_filling_bytes(capacity)
    }

    /// Cap the body bytes of all entries still being filled together
    /// (unbounded by default with [`with_eviction`](Self::with_eviction)):
    /// a write that would pass it abandons its entry with
    /// [`ENTRY_TOO_LARGE`]. Call it on a cache not yet cloned; on a
    /// shared one it does nothing.
    #[must_use]
    pub fn with_max_filling_bytes(mut self, max: usize) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.max_filling = max;
        }
        self
    }

    /// The body bytes of entries still being filled.
    pub fn filling_bytes(&self) -> usize {
        self.inner.filling.load(Ordering::Relaxed)
    }

    /// A cache whose budget and policy are `eviction`'s, with bodies of at
    /// most `max_entry_size` bytes.
    pub fn with_eviction(eviction: Box<dyn EvictionManager>, max_entry_size: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
                eviction,
                max_entry_size,
                used: AtomicUsize::new(0),
                filling: AtomicUsize::new(0),
                max_filling: usize::MAX,
            }),
        }
    }

    /// The bytes held by finished entries.
    pub fn used_bytes(&self) -> usize {
        self.inner.used.load(Ordering::Relaxed)
    }

    /// The per-entry body limit.
    pub fn max_entry_size(&self) -> usize {
        self.inner.max_entry_size
    }

    /// The eviction manager.
    pub fn eviction(&self) -> &dyn EvictionManager {
        self.inner.eviction.as_ref()
    }
}

impl Inner {
    fn shard(&self, primary: &HashBinary) -> &Shard {
        &self.shards[usize::from(primary[15]) % SHARDS]
    }

    /// Drop a finished entry's accounting.
    fn release(&self, entry: &Entry) {
        let weight = entry.weight.swap(0, Ordering::Relaxed);
        self.used.fetch_sub(weight, Ordering::Relaxed);
    }

    /// Remove the finished entry of `key`'s variant (after eviction).
    fn evict(&self, key: &CompactCacheKey) {
        let mut shard = self.shard(&key.primary).write();
        let Some(variants) = shard.get_mut(&key.primary) else {
            return;
        };
        let found = variants.iter_mut().find(|v| v.variance == key.variance);
        if let Some(entry) = found.and_then(|v| v.current.take()) {
            self.release(&entry);
        }
        variants.retain(|v| v.current.is_some() || v.filling.is_some());
        if variants.is_empty() {
            shard.remove(&key.primary);
        }
    }

    /// Make a filled entry current, unless it was replaced or purged
    /// meanwhile. Returns its weight.
    fn admit(&self, key: CompactCacheKey, entry: &Arc<Entry>) -> Result<usize> {
        let weight = entry_weight(&entry.meta.read(), entry.body.len());
        let mut replaced = Vec::new();
        {
            let mut shard = self.shard(&key.primary).write();
            let variants = shard.get_mut(&key.primary);
            let Some(variants) = variants else {
                return Error::e_explain(ErrorType::InternalError, "entry purged while filling");
            };
            let Some(v) = variants.iter_mut().find(|v| v.variance == key.variance) else {
                return Error::e_explain(ErrorType::InternalError, "entry purged while filling");
            };
            if !v.filling.as_ref().is_some_and(|f| Arc::ptr_eq(f, entry)) {
                return Error::e_explain(ErrorType::InternalError, "entry replaced while filling");
            }
            v.filling = None;
            // Charged under the lock, so an eviction cannot release it first.
            entry.weight.store(weight, Ordering::Relaxed);
            self.used.fetch_add(weight, Ordering::Relaxed);
            if let Some(old) = v.current.replace(Arc::clone(entry)) {
                // Same key: the eviction manager re-admits it below.
                replaced.push((None, old));
            }
            // A response with Vary supersedes one without, and the other
            // way round: keep only variants of the same kind.
            let keyed = key.variance.is_some();
            variants.retain_mut(|o| {
                if o.variance.is_some() == keyed {
                    return true;
                }
                if let Some(old) = o.current.take() {
                    let other = CompactCacheKey {
                        primary: key.primary,
                        variance: o.variance,
                    };
                    replaced.push((Some(other), old));
                }
                o.filling.is_some()
            });
        }
        for (other, old) in &replaced {
            if let Some(other) = other {
                self.eviction.remove(other);
            }
            self.release(old);
        }
        for evicted in self.eviction.admit(key, weight) {
            self.evict(&evicted);
        }
        Ok(weight)
    }

    /// Drop a filling entry that will not finish.
    fn abandon(&self, key: &CompactCacheKey, entry: &Arc<Entry>, why: &'static str) {
        entry.body.end(Fill::Abandoned(why));
        let mut shard = self.shard(&key.primary).write();
        let Some(variants) = shard.get_mut(&key.primary) else {
            return;
        };
        for v in variants.iter_mut().filter(|v| v.variance == key.variance) {
            if v.filling.as_ref().is_some_and(|f| Arc::ptr_eq(f, entry)) {
                v.filling = None;
            }
        }
        variants.retain(|v| v.current.is_some() || v.filling.is_some());
        if variants.is_empty() {
            shard.remove(&key.primary);
        }
    }
}

/// The writer of one MemCache entry.
struct MemMissHandler {
    inner: Arc<Inner>,
    key: CompactCacheKey,
    entry: Arc<Entry>,
    finished: bool,
    /// What this writer added to `Inner::filling`.
    charged: usize,
}

#[async_trait]
impl HandleMiss for MemMissHandler {
    async fn write_body(&mut self, data: Bytes) -> Result<()> {
        if self.entry.body.fill() != Fill::Writing {
            return Error::e_explain(ErrorType::InternalError, "entry no longer filling");
        }
        let new_len = self.entry.body.len() + data.len() as u64;
        if new_len > self.inner.max_entry_size as u64 {
            self.finished = true;
            self.inner
                .abandon(&self.key, &self.entry, "entry too large");
            return Error::e_explain(ENTRY_TOO_LARGE, "body past the per-entry limit");
        }
        let n = data.len();
        let before = self.inner.filling.fetch_add(n, Ordering::Relaxed);
        self.charged += n;
        if before.saturating_add(n) > self.inner.max_filling {
            self.finished = true;
            self.inner
                .abandon(&self.key, &self.entry, "cache memory full");
            return Error::e_explain(ENTRY_TOO_LARGE, "entries being filled past their budget");
        }
        self.entry.body.push(data);
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<usize> {
        if self.entry.body.fill() != Fill::Writing {
            return Error::e_explain(ErrorType::InternalError, "entry no longer filling");
        }
        self.finished = true;
        match self.inner.admit(self.key, &self.entry) {
            Ok(weight) => {
                self.entry.body.end(Fill::Done);
                Ok(weight)
            }
            Err(e) => {
                self.entry
                    .body
                    .end(Fill::Abandoned("entry purged while filling"));
                Err(e)
            }
        }
    }
}

impl Drop for MemMissHandler {
    fn drop(&mut self) {
        if !self.finished {
            self.inner
                .abandon(&self.key, &self.entry, "writer dropped before finishing");
        }
        // Finished (admitted and charged to `used`) or not, the entry no
        // longer fills.
        self.inner
            .filling
            .fetch_sub(self.charged, Ordering::Relaxed);
    }
}

#[async_trait]
impl Storage for MemCache {
    async fn lookup(&self, key: &CacheKey) -> Result<Option<(CacheMeta, HitHandler)>> {
        let compact = key.to_compact();
        let entry = {
            let shard = self.inner.shard(&compact.primary).read();
            let Some(variants) = shard.get(&compact.primary) else {
                return Ok(None);
            };
            let variant = match compact.variance {
                Some(_) => variants.iter().find(|v| v.variance == compact.variance),
                // No variance asked: the variant without one, else any, so
                // that the caller can read its Vary.
                None => variants
                    .iter()
                    .find(|v| v.variance.is_none())
                    .or_else(|| variants.first()),
            };
            let Some(entry) = variant.and_then(|v| v.filling.as_ref().or(v.current.as_ref()))
            else {
                return Ok(None);
            };
            Arc::clone(entry)
        };
        if entry.body.fill() == Fill::Done {
            self.inner.eviction.access(&compact);
        }
        let meta = entry.meta.read().clone();
        Ok(Some((meta, Box::new(entry.body.reader()))))
    }

    async fn get_miss_handler(&self, key: &CacheKey, meta: &CacheMeta) -> Result<MissHandler> {
        let compact = key.to_compact();
        let entry = Arc::new(Entry {
            meta: RwLock::new(meta.clone()),
            body: Arc::new(Body::new()),
            weight: AtomicUsize::new(0),
        });
        let displaced = {
            let mut shard = self.inner.shard(&compact.primary).write();
            let variants = shard.entry(compact.primary).or_default();
            match variants.iter_mut().find(|v| v.variance == compact.variance) {
                Some(v) => v.filling.replace(Arc::clone(&entry)),
                None => {
                    // Newest first, so a lookup without variance finds it.
                    variants.insert(
                        0,
                        Variant {
                            variance: compact.variance,
                            current: None,
                            filling: Some(Arc::clone(&entry)),
                        },
                    );
                    None
                }
            }
        };
        if let Some(old) = displaced {
            old.body.end(Fill::Abandoned("replaced by a newer fill"));
        }
        Ok(Box::new(MemMissHandler {
            inner: Arc::clone(&self.inner),
            key: compact,
            entry,
            finished: false,
            charged: 0,
        }))
    }

    async fn update_meta(&self, key: &CacheKey, meta: &CacheMeta) -> Result<bool> {
        let compact = key.to_compact();
        let new = {
            // Under the shard's write lock, so that eviction (which takes
            // it too) never misses the new weight.
            let shard = self.inner.shard(&compact.primary).write();
            let entry = shard
                .get(&compact.primary)
                .and_then(|vs| vs.iter().find(|v| v.variance == compact.variance))
                .and_then(|v| v.current.as_ref());
            let Some(entry) = entry else {
                return Ok(false);
            };
            let new = entry_weight(meta, entry.body.len());
            *entry.meta.write() = meta.clone();
            let old = entry.weight.swap(new, Ordering::Relaxed);
            self.inner.used.fetch_add(new, Ordering::Relaxed);
            self.inner.used.fetch_sub(old, Ordering::Relaxed);
            (new, old)
        };
        let delta = isize::try_from(new.0).unwrap_or(isize::MAX)
            - isize::try_from(new.1).unwrap_or(isize::MAX);
        for evicted in self.inner.eviction.increment_weight(&compact, delta) {
            self.inner.evict(&evicted);
        }
        Ok(true)
    }

    async fn purge(&self, key: &CacheKey) -> Result<bool> {
        let primary = key.primary_bin();
        let removed = self.inner.shard(&primary).write().remove(&primary);
        let Some(variants) = removed else {
            return Ok(false);
        };
        for v in variants {
            let compact = CompactCacheKey {
                primary,
                variance: v.variance,
            };
            if let Some(entry) = v.current {
                self.inner.eviction.remove(&compact);
                self.inner.release(&entry);
            }
            if let Some(filling) = v.filling {
                filling
                    .body
                    .end(Fill::Abandoned("entry purged while filling"));
            }
        }
        Ok(true)
    }

    fn support_streaming_partial_write(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests;
