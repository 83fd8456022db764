//! A session's queue of datagrams toward its upstream, bounded both in
//! datagrams and in bytes.

use bytes::Bytes;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use tokio::sync::mpsc;

/// What the two ends of a queue share.
#[derive(Debug)]
struct Shared {
    /// Bytes queued now.
    bytes: AtomicUsize,
    max_bytes: usize,
    /// Datagrams refused because the queue was full.
    dropped: AtomicU64,
}

/// The sending end, kept in the session table.
#[derive(Debug)]
pub(super) struct QueueTx {
    tx: mpsc::Sender<Bytes>,
    shared: Arc<Shared>,
}

/// The receiving end, owned by the session's task.
#[derive(Debug)]
pub(super) struct QueueRx {
    rx: mpsc::Receiver<Bytes>,
    shared: Arc<Shared>,
}

/// Why a datagram was not queued.
#[derive(Debug)]
pub(super) enum PushError {
    /// The queue is full; the datagram is dropped.
    Full,
    /// The session ended; the datagram is given back for a new one.
    Closed(Bytes),
}

/// A queue of at most `max_datagrams` datagrams and `max_bytes` bytes (at
/// least one datagram, whatever its size).
pub(super) fn queue(max_datagrams: usize, max_bytes: usize) -> (QueueTx, QueueRx) {
    let (tx, rx) = mpsc::channel(max_datagrams.max(1));
    let shared = Arc::new(Shared {
        bytes: AtomicUsize::new(0),
        max_bytes,
        dropped: AtomicU64::new(0),
    });
    (
        QueueTx {
            tx,
            shared: Arc::clone(&shared),
        },
        QueueRx { rx, shared },
    )
}

impl QueueTx {
    /// Queue `datagram` without waiting.
    pub(super) fn push(&self, datagram: Bytes) -> Result<(), PushError> {
        if self.tx.is_closed() {
            return Err(PushError::Closed(datagram));
        }
        let len = datagram.len();
        let queued = self.shared.bytes.fetch_add(len, Ordering::AcqRel);
        // An empty queue takes any one datagram, so a large one is never
        // refused for its size alone.
        if queued > 0 && queued + len > self.shared.max_bytes {
            self.refuse(len);
            return Err(PushError::Full);
        }
        match self.tx.try_send(datagram) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.refuse(len);
                Err(PushError::Full)
            }
            Err(mpsc::error::TrySendError::Closed(datagram)) => {
                self.shared.bytes.fetch_sub(len, Ordering::AcqRel);
                Err(PushError::Closed(datagram))
            }
        }
    }

    fn refuse(&self, len: usize) {
        self.shared.bytes.fetch_sub(len, Ordering::AcqRel);
        self.shared.dropped.fetch_add(1, Ordering::Relaxed);
    }
}

impl QueueRx {
    /// The next datagram, or `None` once every sender is gone.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`mpsc::Receiver::recv`].
    pub(super) async fn recv(&mut self) -> Option<Bytes> {
        let datagram = self.rx.recv().await?;
        self.shared
            .bytes
            .fetch_sub(datagram.len(), Ordering::AcqRel);
        Some(datagram)
    }

    /// Stop taking datagrams, and count the ones still queued.
    pub(super) fn close(&mut self) -> u64 {
        self.rx.close();
        let mut left = 0;
        while self.rx.try_recv().is_ok() {
            left += 1;
        }
        left
    }

    /// Datagrams refused so far because the queue was full.
    pub(super) fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bounded_in_datagrams_and_bytes() {
        let (tx, mut rx) = queue(2, 1000);
        // A datagram larger than the byte budget passes when alone.
        tx.push(Bytes::from(vec![0; 1500])).unwrap();
        assert!(matches!(
            tx.push(Bytes::from_static(b"x")),
            Err(PushError::Full)
        ));
        assert_eq!(rx.recv().await.unwrap().len(), 1500);
        tx.push(Bytes::from(vec![0; 600])).unwrap();
        assert!(matches!(
            tx.push(Bytes::from(vec![0; 600])),
            Err(PushError::Full)
        ));
        tx.push(Bytes::from(vec![0; 300])).unwrap();
        // Two datagrams queued: the count bound holds too.
        assert!(matches!(
            tx.push(Bytes::from_static(b"x")),
            Err(PushError::Full)
        ));
        assert_eq!(rx.dropped(), 3);
        assert_eq!(rx.close(), 2);
        assert!(matches!(
            tx.push(Bytes::from_static(b"x")),
            Err(PushError::Closed(_))
        ));
    }
}
