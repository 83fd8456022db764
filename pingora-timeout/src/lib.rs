//! Timeouts and sleeps for servers that hold very many timers at once.
//!
//! Work in progress: the fast timer lands in this crate next.

use std::future::Future;
use std::time::Duration;

/// The error returned when a [`timeout`] elapses before its future completes.
pub use tokio::time::error::Elapsed;

/// Run `future` for at most `duration`.
///
/// # Errors
///
/// Returns [`Elapsed`] when the duration passes first.
pub async fn timeout<F: Future>(duration: Duration, future: F) -> Result<F::Output, Elapsed> {
    tokio::time::timeout(duration, future).await
}

/// Wait for `duration`.
pub async fn sleep(duration: Duration) {
    tokio::time::sleep(duration).await;
}
