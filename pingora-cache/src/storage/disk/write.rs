//! Writing entries: new ones through [`DiskMissHandler`], new metadata
//! for a stored one through a copy of its file.

use super::file::{self, Header, encode_meta};
use super::reader::Fill;
use super::{Filling, Inner, Stored, Variant, blocking, remove_later, sync_dir};
use crate::key::CompactCacheKey;
use crate::meta::CacheMeta;
use crate::storage::{ENTRY_TOO_LARGE, HandleMiss};
use async_trait::async_trait;
use bytes::Bytes;
use pingora_error::{Error, ErrorType, Result};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::watch;

fn meta_len(meta_bytes: &[u8]) -> Result<u32> {
    u32::try_from(meta_bytes.len())
        .map_err(|_| Error::explain(ErrorType::InternalError, "cache meta too large"))
}

/// Create `path` holding `header` and `meta_bytes`, ready for the body.
fn create(path: &PathBuf, head: &[u8], meta_bytes: &[u8]) -> io::Result<File> {
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)?;
    f.write_all(head)?;
    f.write_all(meta_bytes)?;
    Ok(f)
}

impl Inner {
    fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Start a new entry for `key`: its file in `tmp/`, and its place in
    /// the index, where lookups find it from now on.
    pub(super) async fn start(
        self: &Arc<Self>,
        key: CompactCacheKey,
        meta: &CacheMeta,
    ) -> Result<DiskMissHandler> {
        let id = self.next_id();
        let meta_bytes = encode_meta(meta)?;
        let header = Header {
            id,
            key,
            meta_len: meta_len(&meta_bytes)?,
            body_len: 0,
        };
        let head = header.encode(&meta_bytes, false);
        let tmp = file::tmp_path(&self.dir, id);
        let (path, bytes) = (tmp.clone(), meta_bytes.clone());
        let file = blocking("disk cache: cannot create entry", move || {
            create(&path, &head, &bytes)
        })
        .await?;
        let (progress, _) = watch::channel(Fill::Writing(0));
        let filling = Arc::new(Filling {
            id,
            meta: meta.clone(),
            meta_bytes,
            file: Arc::new(file),
            progress,
        });
        let displaced = {
            let mut shard = self.shard(&key.primary).write();
            let variants = shard.entry(key.primary).or_default();
            match variants.iter_mut().find(|v| v.variance == key.variance) {
                Some(v) => v.filling.replace(Arc::clone(&filling)),
                None => {
                    // Newest first, so a lookup without variance finds it.
                    variants.insert(
                        0,
                        Variant {
                            variance: key.variance,
                            current: None,
                            filling: Some(Arc::clone(&filling)),
                        },
                    );
                    None
                }
            }
        };
        if let Some(old) = displaced {
            old.abandon("replaced by a newer fill");
        }
        Ok(DiskMissHandler {
            inner: Arc::clone(self),
            key,
            filling,
            tmp,
            written: 0,
            renamed: false,
        })
    }

    /// Write `meta` for `key`'s finished entry: a copy of its file with
    /// the new metadata, renamed into place, then the old file deleted.
    /// Returns whether there was an entry (and it was still there after).
    pub(super) async fn update_meta(&self, key: CompactCacheKey, meta: &CacheMeta) -> Result<bool> {
        let old = {
            let shard = self.shard(&key.primary).read();
            shard
                .get(&key.primary)
                .and_then(|vs| vs.iter().find(|v| v.variance == key.variance))
                .and_then(|v| v.current)
        };
        let Some(old) = old else {
            return Ok(false);
        };
        let id = self.next_id();
        let meta_bytes = encode_meta(meta)?;
        let new = Stored {
            id,
            meta_len: meta_len(&meta_bytes)?,
            body_len: old.body_len,
        };
        let head = new.header(key).encode(&meta_bytes, true);
        let from = self.path(&key, old.id);
        let to = self.path(&key, id);
        let tmp = file::tmp_path(&self.dir, id);
        let (to2, tmp2, fsync) = (to.clone(), tmp.clone(), self.fsync);
        let body_offset = old.header(key).body_offset();
        let copied = blocking("disk cache: cannot update meta", move || {
            let result = (|| {
                let mut src = File::open(&from)?;
                let mut dst = create(&tmp2, &head, &meta_bytes)?;
                src.seek(SeekFrom::Start(body_offset))?;
                let n = io::copy(&mut src.take(old.body_len), &mut dst)?;
                if n != old.body_len {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "body truncated",
                    ));
                }
                if fsync {
                    dst.sync_all()?;
                }
                fs::rename(&tmp2, &to2)?;
                if fsync && let Some(parent) = to2.parent() {
                    sync_dir(parent)?;
                }
                Ok(())
            })();
            if result.is_err() {
                let _ = fs::remove_file(&tmp2);
            }
            result
        })
        .await;
        if let Err(e) = copied {
            // Evicted or purged meanwhile: nothing to update.
            if !std::path::Path::new(&self.path(&key, old.id)).exists() {
                return Ok(false);
            }
            return Err(e);
        }
        let swapped = {
            let mut shard = self.shard(&key.primary).write();
            let v = shard
                .get_mut(&key.primary)
                .and_then(|vs| vs.iter_mut().find(|v| v.variance == key.variance))
                .filter(|v| v.current.is_some_and(|c| c.id == old.id));
            v.map(|v| v.current = Some(new)).is_some()
        };
        if !swapped {
            // Replaced, purged or evicted while copying.
            remove_later(to);
            return Ok(false);
        }
        self.used.fetch_add(new.weight() as u64, Ordering::Relaxed);
        self.used.fetch_sub(old.weight() as u64, Ordering::Relaxed);
        self.open_files.remove(old.id);
        remove_later(self.path(&key, old.id));
        let delta = isize::try_from(new.weight()).unwrap_or(isize::MAX)
            - isize::try_from(old.weight()).unwrap_or(isize::MAX);
        for evicted in self.eviction.increment_weight(&key, delta) {
            self.evict(&evicted);
        }
        Ok(true)
    }
}

/// The writer of one disk entry.
pub(super) struct DiskMissHandler {
    inner: Arc<Inner>,
    key: CompactCacheKey,
    filling: Arc<Filling>,
    tmp: PathBuf,
    written: u64,
    /// The file has its final name: dropping the writer no longer
    /// deletes it.
    renamed: bool,
}

impl DiskMissHandler {
    fn check_writing(&self) -> Result<()> {
        if self.filling.is_writing() {
            Ok(())
        } else {
            Error::e_explain(ErrorType::InternalError, "entry no longer filling")
        }
    }
}

#[async_trait]
impl HandleMiss for DiskMissHandler {
    async fn write_body(&mut self, data: Bytes) -> Result<()> {
        self.check_writing()?;
        let new_len = self.written + data.len() as u64;
        if new_len > self.inner.max_entry_size as u64 {
            self.inner
                .abandon(&self.key, &self.filling, "entry too large");
            return Error::e_explain(ENTRY_TOO_LARGE, "body past the per-entry limit");
        }
        if data.is_empty() {
            return Ok(());
        }
        let file = Arc::clone(&self.filling.file);
        let offset = self.filling.body_offset() + self.written;
        let wrote = blocking("disk cache: write failed", move || {
            file.write_all_at(&data, offset)
        })
        .await;
        if let Err(e) = wrote {
            self.inner
                .abandon(&self.key, &self.filling, "disk write failed");
            return Err(e);
        }
        self.written = new_len;
        self.filling.progress.send_if_modified(|f| match f {
            Fill::Writing(n) => {
                *n = new_len;
                true
            }
            _ => false,
        });
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<usize> {
        self.check_writing()?;
        let stored = Stored {
            id: self.filling.id,
            meta_len: meta_len(&self.filling.meta_bytes)?,
            body_len: self.written,
        };
        let head = stored
            .header(self.key)
            .encode(&self.filling.meta_bytes, true);
        let file = Arc::clone(&self.filling.file);
        let (tmp, to) = (self.tmp.clone(), self.inner.path(&self.key, stored.id));
        let (to2, fsync) = (to.clone(), self.inner.fsync);
        let done = blocking("disk cache: cannot finish entry", move || {
            // The header with the body's length makes the file valid; the
            // rename publishes it whole.
            file.write_all_at(&head, 0)?;
            if fsync {
                file.sync_all()?;
            }
            fs::rename(&tmp, &to2)?;
            if fsync && let Some(parent) = to2.parent() {
                sync_dir(parent)?;
            }
            Ok(())
        })
        .await;
        if let Err(e) = done {
            self.inner
                .abandon(&self.key, &self.filling, "disk write failed");
            return Err(e);
        }
        self.renamed = true;
        match self.inner.admit(self.key, &self.filling, self.written) {
            Ok(weight) => {
                self.filling.progress.send_replace(Fill::Done(self.written));
                Ok(weight)
            }
            Err(e) => {
                self.filling.abandon("entry purged while filling");
                remove_later(to);
                Err(e)
            }
        }
    }
}

impl Drop for DiskMissHandler {
    fn drop(&mut self) {
        if !self.renamed {
            self.inner
                .abandon(&self.key, &self.filling, "writer dropped before finishing");
            remove_later(self.tmp.clone());
            // A finish cancelled while its rename ran may have published
            // the file without admitting it; the name is this entry's own.
            remove_later(self.inner.path(&self.key, self.filling.id));
        }
    }
}
