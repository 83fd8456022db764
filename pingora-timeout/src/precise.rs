//! Timeouts on tokio's own timer: exact to the millisecond, one timer entry
//! each.

use crate::Elapsed;
use pin_project_lite::pin_project;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// Run `future` for at most `duration`, on tokio's timer.
///
/// The future is polled first on every poll, so a future that is ready
/// never reports [`Elapsed`], even with a zero duration. The clock starts
/// when this function is called.
///
/// # Errors
///
/// The returned future resolves to `Err(`[`Elapsed`]`)` when `duration`
/// passes before `future` completes; `future` is then dropped unfinished.
///
/// # Panics
///
/// Panics when called outside a tokio runtime that has its time driver
/// enabled, as [`tokio::time::timeout`] does.
///
/// # Cancel safety
///
/// Dropping the returned future drops `future` and cancels the timer. Whether
/// work is lost is up to `future` itself.
///
/// # Examples
///
/// ```
/// use pingora_timeout::timeout;
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let answer = timeout(Duration::from_secs(1), async { 42 }).await;
/// assert_eq!(answer, Ok(42));
///
/// let never = timeout(Duration::from_millis(1), std::future::pending::<()>()).await;
/// assert!(never.is_err());
/// # }
/// ```
pub fn timeout<F: IntoFuture>(duration: Duration, future: F) -> Timeout<F::IntoFuture> {
    Timeout {
        inner: tokio::time::timeout(duration, future),
    }
}

/// Wait until `duration` has passed, on tokio's timer.
///
/// # Panics
///
/// Panics when called outside a tokio runtime that has its time driver
/// enabled, as [`tokio::time::sleep`] does.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// pingora_timeout::sleep(std::time::Duration::from_millis(1)).await;
/// # }
/// ```
pub fn sleep(duration: Duration) -> Sleep {
    Sleep {
        inner: tokio::time::sleep(duration),
    }
}

pin_project! {
    /// The future returned by [`timeout`].
    #[derive(Debug)]
    #[must_use = "futures do nothing unless polled"]
    pub struct Timeout<F> {
        #[pin]
        inner: tokio::time::Timeout<F>,
    }
}

impl<F> Timeout<F> {
    /// The guarded future.
    pub fn get_ref(&self) -> &F {
        self.inner.get_ref()
    }

    /// The guarded future, mutably.
    pub fn get_mut(&mut self) -> &mut F {
        self.inner.get_mut()
    }

    /// Cancel the timeout and return the guarded future.
    pub fn into_inner(self) -> F {
        self.inner.into_inner()
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project()
            .inner
            .poll(cx)
            .map(|out| out.map_err(|_| Elapsed::new()))
    }
}

pin_project! {
    /// The future returned by [`sleep`].
    #[derive(Debug)]
    #[must_use = "futures do nothing unless polled"]
    pub struct Sleep {
        #[pin]
        inner: tokio::time::Sleep,
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.project().inner.poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn elapses_exactly_at_the_deadline() {
        let start = tokio::time::Instant::now();
        let out = timeout(Duration::from_millis(25), std::future::pending::<()>()).await;
        assert_eq!(out, Err(Elapsed::new()));
        assert_eq!(start.elapsed(), Duration::from_millis(25));
    }

    #[tokio::test(start_paused = true)]
    async fn a_ready_future_wins_even_with_no_time() {
        assert_eq!(timeout(Duration::ZERO, async { 7 }).await, Ok(7));
    }

    #[tokio::test(start_paused = true)]
    async fn sleeps_for_the_duration() {
        let start = tokio::time::Instant::now();
        sleep(Duration::from_secs(3)).await;
        assert_eq!(start.elapsed(), Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn into_inner_gives_back_the_future() {
        let t = timeout(Duration::from_secs(1), async { 5 });
        assert_eq!(t.into_inner().await, 5);
    }
}
