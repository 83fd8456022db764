//! Finding an entry and opening it for a reader.

use super::file::{self, HEADER_LEN, Header};
use super::open_files::OpenFile;
use super::reader::{self, FileReader};
use super::{Filling, Inner, READ_PIECE, Stored};
use crate::key::CompactCacheKey;
use crate::meta::CacheMeta;
use bytes::Bytes;
use pingora_error::{ErrorType, OrErr, Result};
use std::fs::File;
use std::io;
use std::sync::Arc;

/// What a lookup found in the index.
pub(super) enum Found {
    Filling(Arc<Filling>),
    Stored(CompactCacheKey, Stored),
}

impl Inner {
    pub(super) fn find(&self, key: &CompactCacheKey) -> Option<Found> {
        let shard = self.shard(&key.primary).read();
        let variants = shard.get(&key.primary)?;
        let variant = match key.variance {
            Some(_) => variants.iter().find(|v| v.variance == key.variance),
            // No variance asked: the variant without one, else any, so
            // that the caller can read its Vary.
            None => variants
                .iter()
                .find(|v| v.variance.is_none())
                .or_else(|| variants.first()),
        }?;
        if let Some(f) = &variant.filling {
            return Some(Found::Filling(Arc::clone(f)));
        }
        let key = CompactCacheKey {
            primary: key.primary,
            variance: variant.variance,
        };
        variant.current.map(|s| Found::Stored(key, s))
    }

    pub(super) fn reader(&self, file: Arc<File>, body_offset: u64) -> FileReader {
        FileReader {
            file,
            body_offset,
            len: None,
            progress: None,
            pending: None,
            pos: 0,
            end: None,
            piece: READ_PIECE,
            offload: self.offload_reads,
        }
    }

    /// Open a finished entry and read its header, meta and first body
    /// piece in one read. `None` when its file is gone (evicted, purged
    /// or replaced since the index was read) or fails its checks.
    pub(super) async fn open(
        &self,
        key: CompactCacheKey,
        stored: Stored,
    ) -> Result<Option<(CacheMeta, FileReader)>> {
        if let Some(open) = self.open_files.get(stored.id) {
            return Ok(Some(self.reopen(&open, key, stored)));
        }
        let header = stored.header(key);
        let path = self.path(&key, stored.id);
        let first = usize::try_from(header.body_offset())
            .unwrap_or(usize::MAX)
            .saturating_add(
                usize::try_from(stored.body_len).map_or(READ_PIECE, |l| l.min(READ_PIECE)),
            );
        let read = move || -> io::Result<(File, Bytes)> {
            let file = File::open(&path)?;
            let bytes = reader::read_at(&file, 0, first)?;
            Ok((file, bytes))
        };
        let opened = if self.offload_reads {
            tokio::task::spawn_blocking(read)
                .await
                .or_err(ErrorType::InternalError, "disk cache task failed")?
        } else {
            read()
        };
        let (file, bytes) = match opened {
            Ok(r) => r,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).or_err(ErrorType::FileReadError, "disk cache read failed"),
        };
        let meta_end = HEADER_LEN + stored.meta_len as usize;
        let checked = (bytes.len() == first)
            .then(|| Header::decode(&bytes[..HEADER_LEN], &bytes[HEADER_LEN..meta_end]).ok())
            .flatten()
            .filter(|h| *h == header)
            .and_then(|_| file::decode_meta(&bytes[HEADER_LEN..meta_end]).ok());
        let Some(meta) = checked else {
            self.drop_corrupt(&key, stored.id);
            return Ok(None);
        };
        let file = Arc::new(file);
        let open = OpenFile {
            file: Arc::clone(&file),
            meta: meta.clone(),
        };
        self.open_files.insert(stored.id, Arc::new(open));
        let mut reader = self.reader(file, header.body_offset());
        reader.len = Some(stored.body_len);
        reader.pending = Some(bytes.slice(meta_end..));
        Ok(Some((meta, reader)))
    }

    /// A reader of an entry whose file is already open and checked. The
    /// body is read when it is asked for: not at all for a HEAD or a 304,
    /// only the range for a range.
    fn reopen(
        &self,
        open: &OpenFile,
        key: CompactCacheKey,
        stored: Stored,
    ) -> (CacheMeta, FileReader) {
        let body_offset = stored.header(key).body_offset();
        let mut reader = self.reader(Arc::clone(&open.file), body_offset);
        reader.len = Some(stored.body_len);
        (open.meta.clone(), reader)
    }
}
