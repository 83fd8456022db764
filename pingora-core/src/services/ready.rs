//! Readiness of a service, for the services that depend on it.

use tokio::sync::watch;

/// Held by a service; tells its dependents it is ready.
///
/// A service that finishes without calling
/// [`notify_ready`](Self::notify_ready) (dropping the notifier) counts as
/// ready, so that its dependents never wait forever.
#[derive(Debug)]
pub struct ReadyNotifier {
    tx: watch::Sender<State>,
}

/// Where a service stands, as its [`ReadyWatch`] sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Starting.
    Pending,
    /// Said it is ready.
    Ready,
    /// Dropped its notifier without saying so: it finished or failed.
    Gone,
}

impl ReadyNotifier {
    /// A notifier and the watch that sees it.
    pub fn new() -> (Self, ReadyWatch) {
        let (tx, rx) = watch::channel(State::Pending);
        (Self { tx }, ReadyWatch { rx })
    }

    /// Mark the service ready.
    pub fn notify_ready(self) {
        self.tx.send_replace(State::Ready);
    }
}

impl Drop for ReadyNotifier {
    fn drop(&mut self) {
        self.tx.send_if_modified(|state| {
            let pending = *state == State::Pending;
            if pending {
                *state = State::Gone;
            }
            pending
        });
    }
}

/// Waits until a service is ready.
#[derive(Debug, Clone)]
pub struct ReadyWatch {
    rx: watch::Receiver<State>,
}

impl ReadyWatch {
    /// Wait until the service is ready (or gone).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn wait(&mut self) {
        // An error means the notifier is gone, which also counts as ready.
        let _ = self.rx.wait_for(|state| *state != State::Pending).await;
    }

    /// Whether the service is ready now.
    pub fn is_ready(&self) -> bool {
        *self.rx.borrow() != State::Pending
    }

    /// Whether the service said it is ready, rather than ending without
    /// saying so (which may be a failure to start).
    pub(crate) fn notified(&self) -> bool {
        *self.rx.borrow() == State::Ready
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn notify_and_drop() {
        let (notifier, mut watch) = ReadyNotifier::new();
        assert!(!watch.is_ready());
        let waiter = tokio::spawn(async move {
            watch.wait().await;
            watch.is_ready()
        });
        notifier.notify_ready();
        assert!(waiter.await.unwrap());

        let (notifier, mut watch) = ReadyNotifier::new();
        drop(notifier);
        watch.wait().await;
        assert!(watch.is_ready());
        assert!(!watch.notified(), "dropped, not notified");

        let (notifier, watch) = ReadyNotifier::new();
        notifier.notify_ready();
        assert!(watch.notified());
    }
}
