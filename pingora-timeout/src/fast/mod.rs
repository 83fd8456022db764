//! Coarse timeouts and sleeps for servers holding very many timers at once.
//!
//! Deadlines are rounded **up** to the next 10 ms boundary, and every timer
//! whose deadline lands on the same boundary waits in the same bucket. A
//! bucket is one entry in a sharded array; arming a timer is a short lock on
//! the caller's shard plus an O(1) insert, and dropping it is an O(1)
//! removal. One background thread, started on first use and shared by every
//! runtime in the process, fires the buckets as their time comes.
//!
//! # Accuracy
//!
//! - A timer **never fires early**: it fires at the first bucket boundary at
//!   or after its deadline.
//! - It fires **up to one bucket (10 ms) late**, plus the time the timer
//!   thread and the executor take to run the woken task.
//! - The clock starts at the **first poll**, not when the future is made.
//!   For `fast::timeout(d, f).await` the two are the same moment.
//!
//! For deadlines that must be met to the millisecond, use the root
//! [`timeout`](crate::timeout) and [`sleep`](crate::sleep), which use
//! tokio's timer.
//!
//! # Runtimes
//!
//! Nothing here needs a tokio runtime: the timer thread wakes tasks through
//! their [`Waker`](std::task::Waker)s, so current-thread and multi-thread
//! runtimes, several runtimes in one process, and other executors all work.
//! The one exception: should the OS refuse to start the timer thread, timers
//! fall back to tokio's timer, which needs a runtime with time enabled.

mod driver;
mod sleep;
mod slots;
mod timeout;
mod timer;
mod wheel;

pub use sleep::Sleep;
pub use timeout::Timeout;

use driver::Timers;
use std::future::IntoFuture;
use std::time::Duration;
use timer::Timer;

/// Run `future` for at most `duration`, on the coarse shared timer.
///
/// The same contract as [`crate::timeout`], with the accuracy described in
/// the [module docs](self): never early, up to one 10 ms bucket late, and
/// counted from the first poll. A future that completes on its first poll
/// never arms a timer at all.
///
/// # Errors
///
/// The returned future resolves to `Err(`[`Elapsed`](crate::Elapsed)`)` when
/// the deadline passes before `future` completes; `future` is then dropped
/// unfinished. The guarded future is always polled before the timer, so it
/// wins any tie.
///
/// # Cancel safety
///
/// Dropping the returned future drops `future` and releases the timer
/// entry, including the task's waker, at once. Whether work is lost is up
/// to `future` itself.
///
/// # Examples
///
/// ```
/// use pingora_timeout::fast;
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let answer = fast::timeout(Duration::from_secs(1), async { 42 }).await;
/// assert_eq!(answer, Ok(42));
///
/// let never = fast::timeout(Duration::from_millis(5), std::future::pending::<()>()).await;
/// assert!(never.is_err());
/// # }
/// ```
pub fn timeout<F: IntoFuture>(duration: Duration, future: F) -> Timeout<F::IntoFuture> {
    timeout_on(Timers::global(), duration, future)
}

/// Wait until at least `duration` has passed, on the coarse shared timer.
///
/// Completes at the first 10 ms bucket boundary at or after the deadline;
/// see the [module docs](self). The clock starts at the first poll.
///
/// # Cancel safety
///
/// Dropping the returned future releases its timer entry at once.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let start = std::time::Instant::now();
/// pingora_timeout::fast::sleep(std::time::Duration::from_millis(15)).await;
/// assert!(start.elapsed() >= std::time::Duration::from_millis(15));
/// # }
/// ```
pub fn sleep(duration: Duration) -> Sleep {
    Sleep::new(Timer::new(Timers::global(), duration))
}

/// [`timeout`] on a given set of timers, so that tests can count what one
/// set holds without seeing the timers of other tests.
pub(crate) fn timeout_on<F: IntoFuture>(
    timers: &'static Timers,
    duration: Duration,
    future: F,
) -> Timeout<F::IntoFuture> {
    Timeout::new(future.into_future(), Timer::new(timers, duration))
}

#[cfg(test)]
mod tests;
