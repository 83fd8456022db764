//! Coarse timeouts and sleeps for servers holding very many timers at once.
//!
//! Time is cut into 5 ms ticks. Every timer waits in the bucket of the first
//! tick boundary at or after its deadline, and one background thread, shared
//! by every runtime in the process, fires the buckets as they fall due.
//! Arming a timer reads no clock: it records the delay in the arming
//! thread's shard, under a short lock, in O(1) and with no allocation once
//! the shard has grown. The timer thread's next pass stamps new timers with
//! its own clock reading, which is later than their real start, so they
//! cannot fire early. Dropping a timer releases its entry and the task's
//! waker at once. Polling an armed timer again with the same waker takes no
//! lock unless a timer of its shard fired since it last looked, so a timer
//! in a `select!` loop or around a future woken many times costs one lock to
//! arm and one to release, however often it is polled.
//!
//! # Accuracy
//!
//! - A timer **never fires early**.
//! - A timer under a second fires **up to two ticks (10 ms) late**: up to
//!   one tick until the timer thread's pass stamps it, up to one more from
//!   rounding up to a bucket boundary. Durations that are whole multiples
//!   of 5 ms land 5–10 ms late. Add the time the thread and the executor
//!   take to run the woken task.
//! - A timer of a second or more fires **up to 60 ms late**: while only such
//!   timers wait (the I/O and idle guards of a busy server), the thread
//!   wakes every 50 ms at most instead of every tick, and stamps new ones
//!   when it does. Waking every tick cost a busy one-threaded proxy about
//!   half a per cent of its CPU.
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
//!
//! The timer thread starts with the first armed timer. Like every thread
//! it does not survive `fork`; a process that forks after arming a fast
//! timer (to daemonize, say) holds a [`prepare_fork`] guard across the
//! fork, and the child's next timer starts a new thread. The pingora
//! server does this when it daemonizes.
//!
//! # Design
//!
//! - `timer`: the state one future keeps, armed on first `Pending`.
//! - `driver`: the clock and the thread that turns the wheel.
//! - `wheel`: the shards and the rules that keep timers from firing early,
//!   with no clock inside, so they are tested on virtual time.
//! - `slots`: one shard's arena of timer entries and its lists.

mod driver;
mod sleep;
mod slots;
mod timeout;
mod timer;
mod wheel;

pub use driver::ForkGuard;
pub use sleep::Sleep;
pub use timeout::Timeout;

use driver::Timers;
use std::future::IntoFuture;
use std::time::Duration;
use timer::Timer;

/// Run `future` for at most `duration`, on the coarse shared timer.
///
/// The same contract as [`crate::timeout`], with the accuracy described in
/// the [module docs](self): never early, up to about 10 ms late, and
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
/// # Panics
///
/// Only in a process where the OS refuses to start the timer thread: the
/// timer then falls back to tokio's, which panics outside a tokio runtime
/// with time enabled.
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
/// Completes no sooner than `duration` after its first poll and up to about
/// 10 ms later; see the [module docs](self).
///
/// # Panics
///
/// Only in a process where the OS refuses to start the timer thread: the
/// timer then falls back to tokio's, which panics outside a tokio runtime
/// with time enabled.
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

/// The name of the fast timers' thread, as the OS lists it.
pub const TIMER_THREAD_NAME: &str = "pingora-timeout";

/// Get the fast timers ready for a `fork` of this process; see
/// [`ForkGuard`] for what to do with the guard on each side of the fork.
///
/// # Examples
///
/// ```no_run
/// # fn fork() -> u32 { 0 }
/// let guard = pingora_timeout::fast::prepare_fork();
/// let pid = fork(); // nix::unistd::fork or a daemonizing library
/// if pid == 0 {
///     guard.in_child(); // the child's next timer starts a timer thread
/// } else {
///     drop(guard); // the parent carries on as before
/// }
/// ```
pub fn prepare_fork() -> ForkGuard {
    Timers::global().lock_for_fork()
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
