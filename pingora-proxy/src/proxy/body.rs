//! The request body as sent upstream, kept (up to a limit) so that a retry
//! can send it again.

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

    pub(super) fn pieces(&self) -> &[Bytes] {
        &self.replay
    }

    pub(super) const fn is_done(&self) -> bool {
        self.done
    }

    pub(super) fn set_done(&mut self) {
        self.done = true;
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
