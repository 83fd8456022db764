//! The [`Storage`] trait every cache tier implements, and the handlers it
//! hands out: a [`HandleHit`] to read a stored body, a [`HandleMiss`] to
//! write one.
//!
//! The tiers: in memory, [`MemCache`](crate::memory::MemCache); in files,
//! [`disk::DiskCache`]; both, hot entries in memory in front of the rest
//! on disk, [`tiered::TieredStorage`].

pub mod disk;
pub mod tiered;

use crate::key::CacheKey;
use crate::meta::CacheMeta;
use async_trait::async_trait;
use bytes::Bytes;
use pingora_core::header::RequestHeader;
use pingora_error::{ErrorType, Result};

/// The error kind a reader of a partial entry gets when its writer gave
/// up (the upstream failed, the body grew past a limit, the entry was
/// purged mid-fill): the bytes already read are a prefix of a response
/// that will never be complete. A proxy that has sent them must abort
/// the downstream response; one that has not may go to the origin.
pub const PARTIAL_ENTRY_ABANDONED: ErrorType = ErrorType::Custom("PartialEntryAbandoned");

/// The error kind a writer gets when the body grows past the storage's
/// per-entry limit: the entry is dropped; keep proxying without caching.
pub const ENTRY_TOO_LARGE: ErrorType = ErrorType::Custom("CacheEntryTooLarge");

/// Reads the body of a stored (or still filling) entry.
#[async_trait]
pub trait HandleHit: Send + Sync {
    /// The next piece of the body; `None` at its end. On an entry still
    /// being written it waits for the writer.
    ///
    /// # Errors
    ///
    /// [`PARTIAL_ENTRY_ABANDONED`] when the writer gave up; storage
    /// errors otherwise.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: nothing is consumed until a piece is returned.
    async fn read_body(&mut self) -> Result<Option<Bytes>>;

    /// The length of the whole body, once it is known (the entry is
    /// complete); `None` while it is still being written.
    fn body_len(&self) -> Option<u64> {
        None
    }

    /// Whether [`seek`](Self::seek) works.
    fn can_seek(&self) -> bool {
        false
    }

    /// Read only bytes `start..end` (end exclusive; `None`: to the end),
    /// for a range served from cache.
    ///
    /// # Errors
    ///
    /// When seeking is not supported or the range is out of bounds.
    fn seek(&mut self, start: u64, end: Option<u64>) -> Result<()> {
        let _ = (start, end);
        pingora_error::Error::e_explain(ErrorType::InternalError, "seek not supported")
    }
}

/// A reader of a stored body.
pub type HitHandler = Box<dyn HandleHit>;

/// Writes the body of a new entry.
///
/// Dropping a handler before [`finish`](Self::finish) abandons the entry:
/// it is not stored, and its readers get [`PARTIAL_ENTRY_ABANDONED`].
#[async_trait]
pub trait HandleMiss: Send + Sync {
    /// Append `data` to the body.
    ///
    /// # Errors
    ///
    /// [`ENTRY_TOO_LARGE`] past the per-entry limit (the entry is then
    /// abandoned); storage errors otherwise.
    async fn write_body(&mut self, data: Bytes) -> Result<()>;

    /// The body is complete: store the entry. Returns its size in bytes
    /// (it may still be evicted at once if it does not fit).
    ///
    /// # Errors
    ///
    /// When the entry was abandoned or purged meanwhile.
    async fn finish(self: Box<Self>) -> Result<usize>;
}

/// A writer of a new entry.
pub type MissHandler = Box<dyn HandleMiss>;

/// A cache tier: where responses are stored.
///
/// Lookup is exact: by the key's primary hash and its variance, if any.
/// For a key without variance, a tier whose stored response under that
/// primary key has `Vary` returns one of its variants, so the caller can
/// read `Vary` and look up again with a variance ([`lookup_variant`] does
/// both steps).
#[async_trait]
pub trait Storage: Send + Sync {
    /// The stored metadata and a body reader for `key`, if any. An entry
    /// still being filled is returned (its body streams as it is written).
    ///
    /// # Errors
    ///
    /// Storage errors; a miss is `Ok(None)`.
    async fn lookup(&self, key: &CacheKey) -> Result<Option<(CacheMeta, HitHandler)>>;

    /// A writer for a new entry under `key` with `meta`. Lookups see the
    /// entry (partially) from now on; a previous entry stays readable by
    /// those who hold it and is replaced when the new one finishes.
    ///
    /// # Errors
    ///
    /// Storage errors.
    async fn get_miss_handler(&self, key: &CacheKey, meta: &CacheMeta) -> Result<MissHandler>;

    /// Replace the metadata of the stored entry under `key` (after a 304).
    /// Returns whether there was one.
    ///
    /// # Errors
    ///
    /// Storage errors.
    async fn update_meta(&self, key: &CacheKey, meta: &CacheMeta) -> Result<bool>;

    /// Remove every variant stored under `key`'s primary hash, finished or
    /// filling. Returns whether there was any.
    ///
    /// # Errors
    ///
    /// Storage errors.
    async fn purge(&self, key: &CacheKey) -> Result<bool>;

    /// Whether readers can stream an entry that is still being written.
    fn support_streaming_partial_write(&self) -> bool {
        false
    }
}

/// Look up the variant of `key` that serves `req` (RFC 9111 §4.1): first
/// by the primary key; if the stored response has `Vary`, again with the
/// request's variance, which is then left set in `key` (so a miss writes
/// the new response under it). Returns `None` on a miss.
///
/// # Errors
///
/// Storage errors.
///
/// # Examples
///
/// ```
/// use pingora_cache::{memory::MemCache, storage::{lookup_variant, Storage}, CacheKey};
/// use pingora_core::header::RequestHeader;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let cache = MemCache::new(1 << 20);
/// let req = RequestHeader::build("GET", b"http://a.test/", None).unwrap();
/// let mut key = CacheKey::default(&req);
/// assert!(lookup_variant(&cache, &mut key, &req).await.unwrap().is_none());
/// # }
/// ```
pub async fn lookup_variant(
    storage: &(impl Storage + ?Sized),
    key: &mut CacheKey,
    req: &RequestHeader,
) -> Result<Option<(CacheMeta, HitHandler)>> {
    key.remove_variance_key();
    let Some((meta, hit)) = storage.lookup(key).await? else {
        return Ok(None);
    };
    match crate::variance::variance_for(meta.response_header(), req) {
        None => Ok(Some((meta, hit))),
        Some(variance) => {
            key.set_variance_key(variance);
            storage.lookup(key).await
        }
    }
}
