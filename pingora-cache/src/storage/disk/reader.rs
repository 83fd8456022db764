//! Reading a body from its file: a finished entry, or one still being
//! written (then the writer's progress says how far the file is valid).

use crate::storage::{HandleHit, PARTIAL_ENTRY_ABANDONED};
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use pingora_error::{Error, ErrorType, OrErr, Result};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use tokio::sync::watch;

/// How far the writer of a filling entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fill {
    /// This many body bytes are in the file.
    Writing(u64),
    /// The body is complete, with this length.
    Done(u64),
    /// The writer gave up.
    Abandoned(&'static str),
}

/// Read `len` bytes at `offset`; fewer only at the end of the file.
pub(super) fn read_at(file: &File, offset: u64, len: usize) -> std::io::Result<Bytes> {
    let mut buf = BytesMut::zeroed(len);
    let mut filled = 0;
    while filled < len {
        let n = file.read_at(&mut buf[filled..], offset + filled as u64)?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    buf.truncate(filled);
    Ok(buf.freeze())
}

/// Reads one body from an open file, in pieces of at most `piece` bytes.
pub(super) struct FileReader {
    pub(super) file: Arc<File>,
    /// Where the body starts in the file.
    pub(super) body_offset: u64,
    /// The body's length, once known.
    pub(super) len: Option<u64>,
    /// The writer's progress, for an entry still being written.
    pub(super) progress: Option<watch::Receiver<Fill>>,
    /// Body bytes at `pos` already read (with the header, at lookup).
    pub(super) pending: Option<Bytes>,
    pub(super) pos: u64,
    pub(super) end: Option<u64>,
    pub(super) piece: usize,
    /// Read on tokio's blocking pool instead of inline.
    pub(super) offload: bool,
}

impl FileReader {
    /// How many bytes are readable from the file now, or what to do.
    async fn available(&mut self) -> Result<u64> {
        if let Some(len) = self.len {
            return Ok(len);
        }
        let Some(rx) = self.progress.as_mut() else {
            return Error::e_explain(ErrorType::InternalError, "body length unknown");
        };
        loop {
            let fill = *rx.borrow_and_update();
            match fill {
                Fill::Writing(n) if n > self.pos => return Ok(n),
                Fill::Writing(_) => {
                    // The writer holds the sender while it lives and
                    // ends the fill before it goes.
                    if rx.changed().await.is_err() {
                        return Error::e_explain(PARTIAL_ENTRY_ABANDONED, "writer gone");
                    }
                }
                Fill::Done(len) => {
                    self.len = Some(len);
                    return Ok(len);
                }
                Fill::Abandoned(why) => return Error::e_explain(PARTIAL_ENTRY_ABANDONED, why),
            }
        }
    }
}

#[async_trait]
impl HandleHit for FileReader {
    async fn read_body(&mut self) -> Result<Option<Bytes>> {
        if let Some(first) = self.pending.take().filter(|p| !p.is_empty()) {
            self.pos += first.len() as u64;
            return Ok(Some(first));
        }
        let end = self.end.unwrap_or(u64::MAX);
        if self.pos >= end {
            return Ok(None);
        }
        let available = self.available().await?;
        if self.pos >= available {
            if self.end.is_some_and(|e| e > available) {
                return Error::e_explain(
                    ErrorType::InternalError,
                    "range beyond the end of the stored body",
                );
            }
            return Ok(None);
        }
        let want = (end.min(available) - self.pos).min(self.piece as u64);
        // `want` is at most `piece`, a usize.
        let want = usize::try_from(want).unwrap_or(self.piece);
        let offset = self.body_offset + self.pos;
        let data = if self.offload {
            let file = Arc::clone(&self.file);
            tokio::task::spawn_blocking(move || read_at(&file, offset, want))
                .await
                .or_err(ErrorType::InternalError, "disk cache read task failed")?
        } else {
            read_at(&self.file, offset, want)
        }
        .or_err(ErrorType::InternalError, "disk cache read failed")?;
        if data.len() < want {
            return Error::e_explain(ErrorType::InternalError, "disk cache file truncated");
        }
        self.pos += data.len() as u64;
        Ok(Some(data))
    }

    fn body_len(&self) -> Option<u64> {
        self.len
            .or_else(|| match self.progress.as_ref().map(|rx| *rx.borrow()) {
                Some(Fill::Done(len)) => Some(len),
                _ => None,
            })
    }

    fn can_seek(&self) -> bool {
        true
    }

    fn seek(&mut self, start: u64, end: Option<u64>) -> Result<()> {
        if end.is_some_and(|e| e < start) {
            return Error::e_explain(ErrorType::InternalError, "seek range ends before it starts");
        }
        if let Some(len) = self.len
            && (start > len || end.is_some_and(|e| e > len))
        {
            return Error::e_explain(ErrorType::InternalError, "seek beyond the body");
        }
        // Keep what was read ahead if it lies in the range.
        let (pos, pending) = (self.pos, self.pending.take());
        self.pending = pending.and_then(|p| {
            let from = start.checked_sub(pos).filter(|&f| f < p.len() as u64)?;
            let to = end.map_or(p.len() as u64, |e| (e - pos).min(p.len() as u64));
            // Both are within the piece's length, a usize.
            Some(p.slice(usize::try_from(from).ok()?..usize::try_from(to).ok()?))
        });
        self.pos = start;
        self.end = end;
        Ok(())
    }
}
