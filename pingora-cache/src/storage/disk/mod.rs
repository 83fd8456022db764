//! [`DiskCache`]: a [`Storage`] that keeps bodies and metadata in files
//! under a directory, bounded in bytes, streaming entries while they fill,
//! and consistent after a crash.
//!
//! # On disk
//!
//! One file per entry, `<dir>/<pp>/<primary hash>[.<variance>].<id>`
//! (`pp`: the primary hash's first byte in hex): a 72-byte header (magic
//! and format version, id, key hashes, lengths, checksum), the metadata
//! ([`CacheMeta::serialize`]), then the body. The id grows with each
//! write, so every version of an entry has a file of its own.
//!
//! # Crash safety
//!
//! An entry is written under `<dir>/tmp/`, and renamed to its final name
//! only when [`finish`](crate::storage::HandleMiss::finish) succeeds,
//! after the header with the body's length and the checksum is written.
//! `rename` is atomic, so a final name always holds a complete file; an
//! entry killed mid-write (a crash, `SIGKILL`) leaves only a file in
//! `tmp/`, which start-up deletes. [`update_meta`](Storage::update_meta)
//! writes a new file (new id) the same way and then deletes the old one;
//! start-up keeps the newest file of a key. Start-up also deletes files
//! whose length, checksum or name disagree.
//!
//! **fsync**: off by default. A process crash loses nothing written (the
//! data is in the kernel's page cache). A power loss may lose recent
//! entries: on Linux filesystems that order data before metadata (ext4
//! `data=ordered`, XFS) they come back truncated (deleted at start-up
//! because the length check fails) or not at all. With
//! [`with_fsync(true)`](DiskCache::with_fsync) each finished file and its
//! directory are synced before `finish` returns (slower: one or two disk
//! flushes per entry).
//!
//! # I/O and the async runtime
//!
//! Writes (each body piece, the final rename, metadata updates, purges)
//! run on tokio's blocking pool: a write may wait for the kernel to flush
//! dirty pages, which can take milliseconds, and misses go to the origin
//! anyway. Reads run inline by default, in pieces of at most 64 KiB
//! (first piece read together with the header, in one `pread`): from the
//! page cache, `open` and a 64 KiB `pread` take about 8 µs, while the
//! hand-off to the blocking pool and back alone takes 30–130 µs on a
//! 2-core machine (`inline_read_cost` in `tests/disk.rs` prints both);
//! nginx reads its cache files inline too unless told to use threads.
//! A read that misses the page cache blocks the worker for one device
//! read; for a cache on slow disks, or one much larger than memory, turn
//! on [`with_offloaded_reads(true)`](DiskCache::with_offloaded_reads).
//!
//! # Start-up
//!
//! [`DiskCache::new`] scans the directory: it deletes `tmp/`, reads each
//! entry's header (one small read per file, no body reads), deletes what
//! is invalid or superseded, and hands the rest to the eviction manager
//! oldest first. Expect a few microseconds per entry with a warm page
//! cache (the `restart_time_to_first_hit` test prints the time for 10,000
//! entries) and one random read per entry on a cold disk. It blocks: call
//! it before starting the runtime or in `spawn_blocking`.
//!
//! One `DiskCache` per directory. Two processes on one directory (the old
//! and the new one during a graceful upgrade) never serve a partial or
//! corrupt entry, but each only knows the entries it found at start-up
//! or wrote itself: the new one's start-up deletes the old one's
//! unfinished fills (they then fail to finish), and files either one
//! writes afterwards are not counted against the other's budget until
//! the next start.

mod file;
mod reader;
mod scan;

use crate::eviction::{EvictionManager, lru};
use crate::key::{CacheKey, CompactCacheKey, HashBinary};
use crate::meta::CacheMeta;
use crate::storage::{HitHandler, MissHandler, Storage};
use async_trait::async_trait;
use file::{HEADER_LEN, Header};
use lookup::Found;
use parking_lot::RwLock;
use pingora_error::{Error, ErrorType, OrErr, Result};
use reader::Fill;
use std::collections::HashMap;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

mod lookup;
mod open_files;
mod write;

const SHARDS: usize = 16;

/// How many entry files are kept open by default
/// ([`DiskCache::with_open_files`]).
const DEFAULT_OPEN_FILES: usize = 1024;

/// The default per-entry limit: 64 MiB.
pub const DEFAULT_MAX_ENTRY_SIZE: usize = 64 << 20;

/// The largest piece a reader reads at once: 64 KiB.
const READ_PIECE: usize = 64 << 10;

/// A finished entry, as the index keeps it (its metadata stays on disk).
#[derive(Debug, Clone, Copy)]
struct Stored {
    id: u64,
    meta_len: u32,
    body_len: u64,
}

impl Stored {
    fn header(&self, key: CompactCacheKey) -> Header {
        Header {
            id: self.id,
            key,
            meta_len: self.meta_len,
            body_len: self.body_len,
        }
    }

    /// What it is charged: its file's length.
    fn weight(&self) -> usize {
        let len = HEADER_LEN as u64 + u64::from(self.meta_len) + self.body_len;
        usize::try_from(len).unwrap_or(usize::MAX)
    }
}

/// An entry being written to `tmp/`.
struct Filling {
    id: u64,
    meta: CacheMeta,
    /// The meta bytes in the file, for the final header's checksum.
    meta_bytes: Vec<u8>,
    file: Arc<File>,
    progress: watch::Sender<Fill>,
}

impl Filling {
    fn body_offset(&self) -> u64 {
        HEADER_LEN as u64 + self.meta_bytes.len() as u64
    }

    /// End the fill as abandoned, unless it already ended.
    fn abandon(&self, why: &'static str) {
        self.progress.send_if_modified(|f| {
            let writing = matches!(f, Fill::Writing(_));
            if writing {
                *f = Fill::Abandoned(why);
            }
            writing
        });
    }

    fn is_writing(&self) -> bool {
        matches!(*self.progress.borrow(), Fill::Writing(_))
    }
}

/// One variant of a resource: its finished entry and the one filling.
struct Variant {
    variance: Option<HashBinary>,
    current: Option<Stored>,
    filling: Option<Arc<Filling>>,
}

type Shard = RwLock<HashMap<HashBinary, Vec<Variant>>>;

struct Inner {
    dir: PathBuf,
    shards: Box<[Shard]>,
    eviction: Box<dyn EvictionManager>,
    max_entry_size: usize,
    used: AtomicU64,
    next_id: AtomicU64,
    fsync: bool,
    offload_reads: bool,
    /// The files of recently hit entries, kept open.
    open_files: open_files::OpenFiles,
}

/// A cache storage in files under a directory.
///
/// - **Streaming**: an entry is visible to lookups from the moment its
///   writer is created; readers read the part written so far from the
///   file being written and wait for more.
/// - **Bounded**: by bytes on disk (header, metadata and body), through an
///   [`EvictionManager`] (an LRU by default); a body past the per-entry
///   limit is abandoned with [`ENTRY_TOO_LARGE`](crate::storage::ENTRY_TOO_LARGE).
/// - **Persistent and crash safe**: see the [module docs](self) for the
///   file format, what survives a crash and what start-up costs.
///
/// Only the index stays in memory (key hashes, id and lengths: with the
/// default LRU, about 200 bytes per entry);
/// each hit reads the header, metadata and first body piece from the file
/// in one read.
///
/// # Examples
///
/// ```no_run
/// use pingora_cache::storage::{disk::DiskCache, Storage};
/// use pingora_cache::{CacheKey, CacheMeta};
/// use pingora_core::header::ResponseHeader;
/// use std::time::{Duration, SystemTime};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> pingora_error::Result<()> {
/// let cache = DiskCache::new("/var/cache/my-proxy", 10 << 30)?.with_max_entry_size(256 << 20);
/// let key = CacheKey::new("", "http://a.test/", "");
/// let now = SystemTime::now();
/// let meta = CacheMeta::new(now + Duration::from_secs(60), now, 0, 0, ResponseHeader::build(200, None)?);
/// let mut miss = cache.get_miss_handler(&key, &meta).await?;
/// miss.write_body("hello".into()).await?;
/// miss.finish().await?;
///
/// // Also after a restart: a new DiskCache on the same directory.
/// let (_meta, mut hit) = cache.lookup(&key).await?.expect("stored");
/// assert_eq!(hit.read_body().await?.as_deref(), Some(&b"hello"[..]));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct DiskCache {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for DiskCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskCache")
            .field("dir", &self.inner.dir)
            .field("used_bytes", &self.used_bytes())
            .field("max_entry_size", &self.inner.max_entry_size)
            .finish_non_exhaustive()
    }
}

/// Run blocking file work on tokio's blocking pool.
async fn blocking<T: Send + 'static>(
    what: &'static str,
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .or_err(ErrorType::InternalError, "disk cache task failed")?
        .or_err(ErrorType::FileWriteError, what)
}

/// Delete a file without waiting: on the blocking pool when a runtime is
/// running, else here. A failure only leaves a file the next start-up
/// deletes (or an old version it ignores).
fn remove_later(path: PathBuf) {
    let remove = move || {
        if let Err(e) = fs::remove_file(&path)
            && e.kind() != io::ErrorKind::NotFound
        {
            log::warn!("disk cache: cannot delete {}: {e}", path.display());
        }
    };
    match tokio::runtime::Handle::try_current() {
        Ok(rt) => drop(rt.spawn_blocking(remove)),
        Err(_) => remove(),
    }
}

/// Sync a directory, so that a rename in it is durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl DiskCache {
    /// A cache in `dir` (created if missing) of at most `capacity` bytes,
    /// with an LRU eviction manager and entries of at most
    /// [`DEFAULT_MAX_ENTRY_SIZE`] (or a sixteenth of the capacity, if
    /// smaller, so that any admitted entry fits its LRU shard). Scans the
    /// directory: see the [module docs](self) on start-up.
    ///
    /// # Errors
    ///
    /// When the directory cannot be created or read, or when it is not
    /// empty and was not made by a `DiskCache` (it holds no marker file):
    /// start-up deletes files, so it refuses a directory that may not be
    /// ours.
    pub fn new(dir: impl AsRef<Path>, capacity: usize) -> Result<Self> {
        let max_entry = DEFAULT_MAX_ENTRY_SIZE.min(capacity / SHARDS);
        Ok(
            Self::with_eviction(dir, Box::new(lru::Manager::new(capacity)))?
                .with_max_entry_size(max_entry),
        )
    }

    /// A cache in `dir` whose budget and policy are `eviction`'s, with
    /// entries of at most [`DEFAULT_MAX_ENTRY_SIZE`].
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new).
    pub fn with_eviction(
        dir: impl AsRef<Path>,
        eviction: Box<dyn EvictionManager>,
    ) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        let found = scan::scan(&dir).or_err_with(ErrorType::FileOpenError, || {
            format!("disk cache: cannot scan {}", dir.display())
        })?;
        let inner = Inner {
            dir,
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
            eviction,
            max_entry_size: DEFAULT_MAX_ENTRY_SIZE,
            used: AtomicU64::new(0),
            next_id: AtomicU64::new(0),
            fsync: false,
            offload_reads: false,
            open_files: open_files::OpenFiles::new(DEFAULT_OPEN_FILES),
        };
        let mut max_id = 0;
        for h in &found.entries {
            max_id = max_id.max(h.id);
            let stored = Stored {
                id: h.id,
                meta_len: h.meta_len,
                body_len: h.body_len,
            };
            inner
                .shard(&h.key.primary)
                .write()
                .entry(h.key.primary)
                .or_default()
                .push(Variant {
                    variance: h.key.variance,
                    current: Some(stored),
                    filling: None,
                });
            inner
                .used
                .fetch_add(stored.weight() as u64, Ordering::Relaxed);
            for evicted in inner.eviction.admit(h.key, stored.weight()) {
                inner.evict(&evicted);
            }
        }
        // Ids must grow past every file left, also across restarts.
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX / 2));
        inner.next_id.store(now.max(max_id + 1), Ordering::Relaxed);
        log::info!(
            "disk cache {}: {} entries, {} bytes, {} files deleted",
            inner.dir.display(),
            inner.eviction.total_items(),
            inner.used.load(Ordering::Relaxed),
            found.deleted
        );
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    fn configure(mut self, f: impl FnOnce(&mut Inner)) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            f(inner);
        }
        self
    }

    /// Limit bodies to `max` bytes: a larger one is abandoned with
    /// [`ENTRY_TOO_LARGE`](crate::storage::ENTRY_TOO_LARGE). Call it on a
    /// cache not yet cloned; on a shared one it does nothing.
    #[must_use]
    pub fn with_max_entry_size(self, max: usize) -> Self {
        self.configure(|i| i.max_entry_size = max)
    }

    /// Sync each finished file and its directory before `finish` returns,
    /// so that entries survive a power loss (see the [module docs](self)).
    /// Call it on a cache not yet cloned.
    #[must_use]
    pub fn with_fsync(self, fsync: bool) -> Self {
        self.configure(|i| i.fsync = fsync)
    }

    /// Keep the files of up to `files` recently hit entries open, with
    /// their checked metadata (default 1024): a hit on one of them is one
    /// read, with no `open`, `close` or metadata check. 0 turns it off.
    /// Each costs a file descriptor and the entry's metadata in memory;
    /// a purged or replaced entry is never served from it. Call it on a
    /// cache not yet cloned.
    #[must_use]
    pub fn with_open_files(self, files: usize) -> Self {
        self.configure(|i| i.open_files = open_files::OpenFiles::new(files))
    }

    /// Read bodies on tokio's blocking pool instead of inline (see the
    /// [module docs](self)). Call it on a cache not yet cloned.
    #[must_use]
    pub fn with_offloaded_reads(self, offload: bool) -> Self {
        self.configure(|i| i.offload_reads = offload)
    }

    /// The bytes held by finished entries (file lengths).
    pub fn used_bytes(&self) -> u64 {
        self.inner.used.load(Ordering::Relaxed)
    }

    /// The per-entry body limit.
    pub fn max_entry_size(&self) -> usize {
        self.inner.max_entry_size
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
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

    fn path(&self, key: &CompactCacheKey, id: u64) -> PathBuf {
        file::entry_path(&self.dir, key, id)
    }

    /// Forget a finished entry's bytes and delete its file.
    fn release(&self, key: &CompactCacheKey, stored: &Stored) {
        self.used
            .fetch_sub(stored.weight() as u64, Ordering::Relaxed);
        self.open_files.remove(stored.id);
        remove_later(self.path(key, stored.id));
    }

    /// Remove `key`'s finished entry (evicted), or only the one with `id`.
    fn remove_current(&self, key: &CompactCacheKey, id: Option<u64>) -> Option<Stored> {
        let mut shard = self.shard(&key.primary).write();
        let variants = shard.get_mut(&key.primary)?;
        let v = variants.iter_mut().find(|v| v.variance == key.variance)?;
        let taken = match (v.current, id) {
            (Some(c), Some(id)) if c.id != id => None,
            _ => v.current.take(),
        };
        variants.retain(|v| v.current.is_some() || v.filling.is_some());
        if variants.is_empty() {
            shard.remove(&key.primary);
        }
        taken
    }

    fn evict(&self, key: &CompactCacheKey) {
        if let Some(stored) = self.remove_current(key, None) {
            self.release(key, &stored);
        }
    }

    /// A file that failed its checks on a hit: drop the entry.
    fn drop_corrupt(&self, key: &CompactCacheKey, id: u64) {
        if let Some(stored) = self.remove_current(key, Some(id)) {
            log::warn!(
                "disk cache: dropping corrupt {}",
                self.path(key, id).display()
            );
            self.eviction.remove(key);
            self.release(key, &stored);
        }
    }

    /// Make a filled entry (already renamed into place) current, unless
    /// it was purged or replaced meanwhile. Returns its weight.
    fn admit(&self, key: CompactCacheKey, filling: &Arc<Filling>, body_len: u64) -> Result<usize> {
        let stored = Stored {
            id: filling.id,
            meta_len: u32::try_from(filling.meta_bytes.len()).unwrap_or(u32::MAX),
            body_len,
        };
        let weight = stored.weight();
        let mut replaced = Vec::new();
        {
            let mut shard = self.shard(&key.primary).write();
            let v = shard
                .get_mut(&key.primary)
                .and_then(|vs| vs.iter_mut().find(|v| v.variance == key.variance))
                .filter(|v| v.filling.as_ref().is_some_and(|f| Arc::ptr_eq(f, filling)));
            let Some(v) = v else {
                return Error::e_explain(ErrorType::InternalError, "entry purged while filling");
            };
            v.filling = None;
            if let Some(old) = v.current.replace(stored) {
                replaced.push((key, old, false));
            }
            self.used.fetch_add(weight as u64, Ordering::Relaxed);
            // A response with Vary supersedes one without, and the other
            // way round, as in MemCache.
            let keyed = key.variance.is_some();
            if let Some(variants) = shard.get_mut(&key.primary) {
                variants.retain_mut(|o| {
                    if o.variance.is_some() == keyed {
                        return true;
                    }
                    if let Some(old) = o.current.take() {
                        let other = CompactCacheKey {
                            primary: key.primary,
                            variance: o.variance,
                        };
                        replaced.push((other, old, true));
                    }
                    o.filling.is_some()
                });
            }
        }
        for (k, old, other) in &replaced {
            if *other {
                self.eviction.remove(k);
            }
            self.release(k, old);
        }
        for evicted in self.eviction.admit(key, weight) {
            self.evict(&evicted);
        }
        Ok(weight)
    }

    /// Drop a filling entry that will not finish (its writer deletes its
    /// file).
    fn abandon(&self, key: &CompactCacheKey, filling: &Arc<Filling>, why: &'static str) {
        filling.abandon(why);
        let mut shard = self.shard(&key.primary).write();
        let Some(variants) = shard.get_mut(&key.primary) else {
            return;
        };
        for v in variants.iter_mut().filter(|v| v.variance == key.variance) {
            if v.filling.as_ref().is_some_and(|f| Arc::ptr_eq(f, filling)) {
                v.filling = None;
            }
        }
        variants.retain(|v| v.current.is_some() || v.filling.is_some());
        if variants.is_empty() {
            shard.remove(&key.primary);
        }
    }
}

#[async_trait]
impl Storage for DiskCache {
    async fn lookup(&self, key: &CacheKey) -> Result<Option<(CacheMeta, HitHandler)>> {
        let inner = &self.inner;
        let compact = key.to_compact();
        // A second try when the file went away between the index and the
        // open because a newer version replaced it.
        let mut tried = None;
        for _ in 0..2 {
            match inner.find(&compact) {
                None => return Ok(None),
                Some(Found::Filling(f)) => {
                    let mut reader = inner.reader(Arc::clone(&f.file), f.body_offset());
                    reader.progress = Some(f.progress.subscribe());
                    return Ok(Some((f.meta.clone(), Box::new(reader))));
                }
                Some(Found::Stored(key, stored)) => {
                    if tried == Some(stored.id) {
                        return Ok(None);
                    }
                    inner.eviction.access(&key);
                    if let Some((meta, reader)) = inner.open(key, stored).await? {
                        return Ok(Some((meta, Box::new(reader))));
                    }
                    tried = Some(stored.id);
                }
            }
        }
        Ok(None)
    }

    async fn get_miss_handler(&self, key: &CacheKey, meta: &CacheMeta) -> Result<MissHandler> {
        Ok(Box::new(self.inner.start(key.to_compact(), meta).await?))
    }

    async fn update_meta(&self, key: &CacheKey, meta: &CacheMeta) -> Result<bool> {
        self.inner.update_meta(key.to_compact(), meta).await
    }

    async fn purge(&self, key: &CacheKey) -> Result<bool> {
        let primary = key.primary_bin();
        let removed = self.inner.shard(&primary).write().remove(&primary);
        let Some(variants) = removed else {
            return Ok(false);
        };
        let mut paths = Vec::new();
        for v in variants {
            let compact = CompactCacheKey {
                primary,
                variance: v.variance,
            };
            if let Some(stored) = v.current {
                self.inner.eviction.remove(&compact);
                self.inner
                    .used
                    .fetch_sub(stored.weight() as u64, Ordering::Relaxed);
                self.inner.open_files.remove(stored.id);
                paths.push(self.inner.path(&compact, stored.id));
            }
            if let Some(filling) = v.filling {
                filling.abandon("entry purged while filling");
            }
        }
        // Deleted before returning, so that a purge survives a crash
        // right after it.
        blocking("disk cache: cannot delete purged entry", move || {
            for path in paths {
                match fs::remove_file(&path) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
            Ok(())
        })
        .await?;
        Ok(true)
    }

    fn support_streaming_partial_write(&self) -> bool {
        true
    }
}
