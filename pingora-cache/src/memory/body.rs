//! A body that readers stream while its writer fills it.

use crate::storage::{HandleHit, PARTIAL_ENTRY_ABANDONED};
use async_trait::async_trait;
use bytes::Bytes;
use pingora_error::{Error, ErrorType, Result};
use std::sync::Arc;
use tokio::sync::watch;

/// How far the writer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fill {
    Writing,
    Done,
    Abandoned(&'static str),
}

/// The pieces written so far, each with its offset, and the fill state.
#[derive(Debug)]
pub(crate) struct BodyState {
    chunks: Vec<(u64, Bytes)>,
    len: u64,
    fill: Fill,
}

/// The shared body of one entry. Readers wait on the watch channel for
/// the writer's progress; the channel's value is the body itself, so a
/// reader sees pieces and state change together.
#[derive(Debug)]
pub(crate) struct Body {
    tx: watch::Sender<BodyState>,
}

impl Body {
    pub(crate) fn new() -> Self {
        let (tx, _) = watch::channel(BodyState {
            chunks: Vec::new(),
            len: 0,
            fill: Fill::Writing,
        });
        Self { tx }
    }

    /// Append a piece; returns the new length.
    pub(crate) fn push(&self, data: Bytes) -> u64 {
        let mut len = 0;
        self.tx.send_modify(|s| {
            if s.fill == Fill::Writing && !data.is_empty() {
                let at = s.len;
                s.len += data.len() as u64;
                s.chunks.push((at, data));
            }
            len = s.len;
        });
        len
    }

    /// End the fill (done or abandoned); only the first end counts.
    ///
    /// A finished body is joined into one piece: it is copied once here,
    /// and every hit then reads it in one slice and writes it in one go
    /// instead of piece by piece as the origin's reads cut it. Readers
    /// find their place by offset, so one in the middle of the body reads
    /// on from the joined piece.
    pub(crate) fn end(&self, fill: Fill) {
        self.tx.send_if_modified(|s| {
            if s.fill != Fill::Writing {
                return false;
            }
            s.fill = fill;
            if fill == Fill::Done && s.chunks.len() > 1 {
                let mut whole = bytes::BytesMut::with_capacity(usize::try_from(s.len).unwrap_or(0));
                for (_, chunk) in &s.chunks {
                    whole.extend_from_slice(chunk);
                }
                s.chunks = vec![(0, whole.freeze())];
            }
            true
        });
    }

    pub(crate) fn len(&self) -> u64 {
        self.tx.borrow().len
    }

    pub(crate) fn fill(&self) -> Fill {
        self.tx.borrow().fill
    }

    pub(crate) fn reader(self: &Arc<Self>) -> BodyReader {
        BodyReader {
            rx: self.tx.subscribe(),
            _body: Arc::clone(self),
            pos: 0,
            end: None,
        }
    }
}

/// Reads a [`Body`] from `pos` to `end`, waiting for the writer when it
/// gets ahead of it.
pub(crate) struct BodyReader {
    rx: watch::Receiver<BodyState>,
    // Keeps the sender (so the channel) alive while reading.
    _body: Arc<Body>,
    pos: u64,
    end: Option<u64>,
}

enum Step {
    Data(Bytes),
    Eof,
    Wait,
}

impl BodyReader {
    fn step(&mut self) -> Result<Step> {
        let state = self.rx.borrow_and_update();
        let end = self.end.unwrap_or(u64::MAX);
        if self.pos >= end {
            return Ok(Step::Eof);
        }
        if self.pos < state.len {
            // The piece that holds `pos`: the last one starting at or before it.
            let i = state.chunks.partition_point(|(at, _)| *at <= self.pos) - 1;
            let (at, chunk) = &state.chunks[i];
            let from = usize::try_from(self.pos - at).unwrap_or(usize::MAX);
            let to = usize::try_from((end - at).min(chunk.len() as u64)).unwrap_or(chunk.len());
            let piece = chunk.slice(from..to);
            self.pos += piece.len() as u64;
            return Ok(Step::Data(piece));
        }
        match state.fill {
            Fill::Writing => Ok(Step::Wait),
            Fill::Done if self.end.is_some_and(|e| e > state.len) => Error::e_explain(
                ErrorType::InternalError,
                "range beyond the end of the stored body",
            ),
            Fill::Done => Ok(Step::Eof),
            Fill::Abandoned(why) => Error::e_explain(PARTIAL_ENTRY_ABANDONED, why),
        }
    }
}

#[async_trait]
impl HandleHit for BodyReader {
    async fn read_body(&mut self) -> Result<Option<Bytes>> {
        loop {
            match self.step()? {
                Step::Data(b) => return Ok(Some(b)),
                Step::Eof => return Ok(None),
                Step::Wait => {
                    // The sender lives as long as `_body`, so this only
                    // fails if it was dropped some other way: treat it as
                    // the writer going away.
                    if self.rx.changed().await.is_err() {
                        return Error::e_explain(PARTIAL_ENTRY_ABANDONED, "writer gone");
                    }
                }
            }
        }
    }

    fn body_len(&self) -> Option<u64> {
        let state = self.rx.borrow();
        (state.fill == Fill::Done).then_some(state.len)
    }

    fn can_seek(&self) -> bool {
        true
    }

    fn seek(&mut self, start: u64, end: Option<u64>) -> Result<()> {
        if end.is_some_and(|e| e < start) {
            return Error::e_explain(ErrorType::InternalError, "seek range ends before it starts");
        }
        self.pos = start;
        self.end = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn reader_follows_writer() {
        let body = Arc::new(Body::new());
        let mut r = body.reader();
        assert_eq!(r.body_len(), None);
        let b2 = Arc::clone(&body);
        let writer = tokio::spawn(async move {
            for piece in ["ab", "", "cd", "e"] {
                tokio::time::sleep(Duration::from_millis(5)).await;
                b2.push(Bytes::from_static(piece.as_bytes()));
            }
            b2.end(Fill::Done);
        });
        let mut got = Vec::new();
        while let Some(b) = r.read_body().await.unwrap() {
            got.extend_from_slice(&b);
        }
        assert_eq!(got, b"abcde");
        writer.await.unwrap();
        assert_eq!(body.len(), 5);
    }

    #[tokio::test]
    async fn a_finished_body_is_one_piece_and_readers_keep_their_place() {
        let body = Arc::new(Body::new());
        body.push(Bytes::from_static(b"abc"));
        body.push(Bytes::from_static(b"def"));
        let mut early = body.reader();
        assert_eq!(early.read_body().await.unwrap().unwrap(), "abc");
        body.push(Bytes::from_static(b"ghi"));
        body.end(Fill::Done);
        // One read of the rest, from where it was.
        assert_eq!(early.read_body().await.unwrap().unwrap(), "defghi");
        assert!(early.read_body().await.unwrap().is_none());
        let mut late = body.reader();
        assert_eq!(late.read_body().await.unwrap().unwrap(), "abcdefghi");
        assert!(late.read_body().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn seek_spans_pieces() {
        let body = Arc::new(Body::new());
        for piece in ["0123", "4567", "89"] {
            body.push(Bytes::from_static(piece.as_bytes()));
        }
        body.end(Fill::Done);
        let mut r = body.reader();
        r.seek(3, Some(9)).unwrap();
        let mut got = Vec::new();
        while let Some(b) = r.read_body().await.unwrap() {
            got.extend_from_slice(&b);
        }
        assert_eq!(got, b"345678");
        assert_eq!(r.body_len(), Some(10));
        let mut r = body.reader();
        r.seek(8, Some(20)).unwrap();
        assert_eq!(&r.read_body().await.unwrap().unwrap()[..], b"89");
        assert!(r.read_body().await.is_err());
        assert!(r.seek(5, Some(4)).is_err());
    }

    #[tokio::test]
    async fn abandoned_is_told_apart() {
        let body = Arc::new(Body::new());
        body.push(Bytes::from_static(b"x"));
        let mut r = body.reader();
        assert_eq!(&r.read_body().await.unwrap().unwrap()[..], b"x");
        body.end(Fill::Abandoned("upstream failed"));
        body.end(Fill::Done);
        let err = r.read_body().await.unwrap_err();
        assert_eq!(*err.etype(), PARTIAL_ENTRY_ABANDONED);
        assert_eq!(body.fill(), Fill::Abandoned("upstream failed"));
    }
}
