//! Readiness of a service, for the services that depend on it.

use tokio::sync::watch;

/// Held by a service; tells its dependents it is ready.
///
/// A service that finishes without calling
/// [`notify_ready`](Self::notify_ready) (dropping the notifier) counts as
/// ready, so that its dependents never wait forever.
#[derive(Debug)]
pub struct ReadyNotifier {
    tx: watch::Sender<bool>,
}

impl ReadyNotifier {
    /// A notifier and the watch that sees it.
    pub fn new() -> (Self, ReadyWatch) {
        let (tx, rx) = watch::channel(false);
        (Self { tx }, ReadyWatch { rx })
    }

    /// Mark the service ready.
    pub fn notify_ready(self) {
        // Drop does the work.
    }
}

impl Drop for ReadyNotifier {
    fn drop(&mut self) {
        self.tx.send_replace(true);
    }
}

/// Waits until a service is ready.
#[derive(Debug, Clone)]
pub struct ReadyWatch {
    rx: watch::Receiver<bool>,
}

impl ReadyWatch {
    /// Wait until the service is ready (or gone).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn wait(&mut self) {
        // An error means the notifier is gone, which also counts as ready.
        let _ = self.rx.wait_for(|ready| *ready).await;
    }

    /// Whether the service is ready now.
    pub fn is_ready(&self) -> bool {
        *self.rx.borrow()
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
    }
}
