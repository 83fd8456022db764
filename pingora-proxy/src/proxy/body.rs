//! The request as sent upstream: whether the current attempt's head went
//! out, and the body, kept (up to a limit) so that a retry can send it
//! again.

use bytes::Bytes;

/// The most request body kept for a retry. A larger body streams through
/// without being kept, and a failure after its first piece went out is not
/// retried.
const REPLAY_LIMIT: usize = 64 * 1024;

/// What of the request body has gone upstream.
#[derive(Debug, Default)]
pub(super) struct SentBody {
    replay: Vec<Bytes>,
    kept: usize,
    /// A piece went out that is not in `replay`.
    lost: bool,
    /// The downstream body was read to its end.
    done: bool,
    /// The current attempt's request head was handed to the upstream, with
    /// whether its method is idempotent; `None` before.
    head: Option<bool>,
    /// The request was already sent again for the cache, after a 304
    /// that did not match the stored response.
    refetched: bool,
}

impl SentBody {
    /// Remember `piece`, sent upstream, for a retry.
    pub(super) fn record(&mut self, piece: &Bytes) {
        if self.lost {
            return;
        }
        if self.kept + piece.len() > REPLAY_LIMIT {
            self.lost = true;
            self.replay = Vec::new();
            return;
        }
        self.kept += piece.len();
        self.replay.push(piece.clone());
    }

    /// Whether a new attempt can send everything sent so far again.
    pub(super) const fn replayable(&self) -> bool {
        !self.lost
    }

    /// Whether the request may be sent again for the cache (once, and
    /// only when it can be sent whole).
    pub(super) const fn may_refetch(&self) -> bool {
        self.replayable() && !self.refetched
    }

    /// The request is being sent again for the cache.
    pub(super) fn set_refetched(&mut self) {
        self.refetched = true;
    }

    pub(super) fn pieces(&self) -> &[Bytes] {
        &self.replay
    }

    pub(super) const fn is_done(&self) -> bool {
        self.done
    }

    pub(super) fn set_done(&mut self) {
        self.done = true;
    }

    /// A new attempt begins: nothing of it was sent yet.
    pub(super) fn start_attempt(&mut self) {
        self.head = None;
    }

    /// The request head was handed to the upstream connection.
    pub(super) fn set_head_sent(&mut self, idempotent: bool) {
        self.head = Some(idempotent);
    }

    /// Whether the upstream may have processed a request that must not be
    /// sent twice: its head went out and its method is not idempotent
    /// (RFC 9110 §9.2.2).
    pub(super) const fn may_be_processed_once_only(&self) -> bool {
        matches!(self.head, Some(false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_small_bodies_and_gives_up_on_large_ones() {
        let mut body = SentBody::default();
        body.record(&Bytes::from_static(b"abc"));
        assert!(body.replayable());
        assert_eq!(body.pieces().len(), 1);
        body.record(&Bytes::from(vec![0; REPLAY_LIMIT]));
        assert!(!body.replayable());
        assert!(body.pieces().is_empty());
        body.record(&Bytes::from_static(b"x"));
        assert!(!body.replayable());
    }
}
