//! Tests of the fast timers on real time.
//!
//! The wheel's rules have deterministic tests of their own (`wheel/tests.rs`);
//! these check the whole path: clock, driver thread, wakers and runtimes.
//! Each test gets its own `Timers`, so counts of live timers are exact while
//! tests run in parallel. Bounds: never early, and late by at most two
//! ticks (plus a nap for long timers, which the slack covers) plus generous
//! slack for a loaded machine.

use super::driver::DEFAULT_TICK;
use super::*;
use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Instant;

/// Scheduling noise we tolerate past the tick on a busy 2-core machine.
const SLACK: Duration = Duration::from_millis(250);

/// Fresh timers for one test. Leaked: the driver thread borrows them for
/// the life of the process, as it does the global ones.
fn timers() -> &'static Timers {
    Box::leak(Box::new(Timers::new(DEFAULT_TICK)))
}

/// A waker that counts its wakes; its `Arc` count shows who holds it.
#[derive(Default)]
struct Counter(AtomicUsize);

impl Wake for Counter {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn poll_once<F: Future>(fut: Pin<&mut F>, waker: &Waker) -> Poll<F::Output> {
    fut.poll(&mut Context::from_waker(waker))
}

fn assert_on_time(start: Instant, deadline: Duration) {
    assert_on_time_with(start, deadline, DEFAULT_TICK);
}

/// Never early; late by at most the two ticks the design allows, plus slack.
fn assert_on_time_with(start: Instant, deadline: Duration, tick: Duration) {
    let took = start.elapsed();
    assert!(took >= deadline, "fired early: {took:?} < {deadline:?}");
    assert!(
        took <= deadline + 2 * tick + SLACK,
        "fired late: {took:?} for {deadline:?}"
    );
}

async fn elapses_on_time(timers: &'static Timers) {
    for ms in [1, 10, 25, 40] {
        let deadline = Duration::from_millis(ms);
        let start = Instant::now();
        let out = timeout_on(timers, deadline, std::future::pending::<()>()).await;
        assert_eq!(out, Err(crate::Elapsed::new()));
        assert_on_time(start, deadline);
    }
}

#[tokio::test(flavor = "current_thread")]
async fn elapses_on_time_on_a_current_thread_runtime() {
    let timers = timers();
    elapses_on_time(timers).await;
    assert_eq!(timers.live(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elapses_on_time_on_a_multi_thread_runtime() {
    let timers = timers();
    elapses_on_time(timers).await;
    assert_eq!(timers.live(), 0);
}

#[test]
fn serves_several_runtimes_at_once() {
    let timers = timers();
    let runtimes: Vec<_> = (0..3)
        .map(|i| {
            std::thread::spawn(move || {
                let rt = if i % 2 == 0 {
                    tokio::runtime::Builder::new_current_thread().build()
                } else {
                    tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(1)
                        .build()
                };
                // No `enable_time`: the fast timer does not need tokio's.
                rt.unwrap().block_on(elapses_on_time(timers));
            })
        })
        .collect();
    for rt in runtimes {
        rt.join().unwrap();
    }
    assert_eq!(timers.live(), 0);
}

#[tokio::test(flavor = "current_thread")]
async fn the_future_wins_when_it_finishes_first() {
    let timers = timers();
    let inner = sleep(Duration::from_millis(20));
    let out = timeout_on(timers, Duration::from_secs(5), async {
        inner.await;
        "done"
    })
    .await;
    assert_eq!(out, Ok("done"));
    assert_eq!(timers.live(), 0, "completion released the timer");
}

#[test]
fn a_ready_future_arms_nothing() {
    let timers = timers();
    let mut t = pin!(timeout_on(timers, Duration::from_secs(5), async { 1 }));
    assert_eq!(poll_once(t.as_mut(), Waker::noop()), Poll::Ready(Ok(1)));
    assert_eq!(timers.live(), 0);
}

#[test]
fn a_zero_duration_elapses_at_once_after_the_future() {
    let timers = timers();
    let mut t = pin!(timeout_on(
        timers,
        Duration::ZERO,
        std::future::pending::<()>()
    ));
    assert!(poll_once(t.as_mut(), Waker::noop()).is_ready());
    assert_eq!(timers.live(), 0);
}

#[test]
fn dropping_releases_the_timer_and_the_waker() {
    let timers = timers();
    let counter = Arc::new(Counter::default());
    let waker = Waker::from(Arc::clone(&counter));
    let mut t = Box::pin(timeout_on(
        timers,
        Duration::from_secs(60),
        std::future::pending::<()>(),
    ));
    assert!(poll_once(t.as_mut(), &waker).is_pending());
    assert_eq!(timers.live(), 1);
    assert_eq!(Arc::strong_count(&counter), 3, "the wheel holds a clone");
    drop(t);
    assert_eq!(timers.live(), 0);
    assert_eq!(Arc::strong_count(&counter), 2, "the wheel let go of it");
}

#[test]
fn a_fired_timer_wakes_its_task_once_and_lets_go() {
    let timers = timers();
    let counter = Arc::new(Counter::default());
    let waker = Waker::from(Arc::clone(&counter));
    let start = Instant::now();
    let mut s = pin!(Sleep::new(Timer::new(timers, Duration::from_millis(15))));
    assert!(poll_once(s.as_mut(), &waker).is_pending());
    while counter.0.load(Ordering::SeqCst) == 0 {
        assert!(start.elapsed() < Duration::from_secs(2), "never woken");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_on_time(start, Duration::from_millis(15));
    assert_eq!(poll_once(s.as_mut(), &waker), Poll::Ready(()));
    assert_eq!(counter.0.load(Ordering::SeqCst), 1);
    assert_eq!(Arc::strong_count(&counter), 2);
    assert_eq!(timers.live(), 0);
}

#[tokio::test(flavor = "current_thread")]
async fn a_timeout_moved_to_another_task_wakes_that_task() {
    let timers = timers();
    let mut t = Box::pin(timeout_on(
        timers,
        Duration::from_millis(20),
        std::future::pending::<()>(),
    ));
    // Armed with a waker that goes nowhere; the task below must replace it.
    assert!(poll_once(t.as_mut(), Waker::noop()).is_pending());
    let out = tokio::spawn(t).await.unwrap();
    assert!(out.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_timers_fire_in_deadline_order() {
    let timers = timers();
    let fired = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    // Deadlines 40 ms apart, spawned out of order.
    let tasks: Vec<_> = [5u64, 1, 7, 3, 2, 6, 4]
        .into_iter()
        .map(|i| {
            let fired = Arc::clone(&fired);
            tokio::spawn(async move {
                let deadline = Duration::from_millis(40 * i);
                let out = timeout_on(timers, deadline, std::future::pending::<()>()).await;
                assert!(out.is_err());
                assert_on_time(start, deadline);
                fired.lock().unwrap().push(i);
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(*fired.lock().unwrap(), vec![1, 2, 3, 4, 5, 6, 7]);
    assert_eq!(timers.live(), 0);
}

#[tokio::test(flavor = "current_thread")]
async fn many_timers_in_one_bucket_all_fire() {
    let timers = timers();
    let start = Instant::now();
    let deadline = Duration::from_millis(30);
    let tasks: Vec<_> = (0..10_000)
        .map(|_| tokio::spawn(timeout_on(timers, deadline, std::future::pending::<()>())))
        .collect();
    for task in tasks {
        assert!(task.await.unwrap().is_err());
    }
    assert!(start.elapsed() >= deadline);
    assert_eq!(timers.live(), 0);
}

#[tokio::test(flavor = "current_thread")]
async fn the_driver_wakes_again_after_idling() {
    let timers = timers();
    for _ in 0..3 {
        let start = Instant::now();
        assert!(
            timeout_on(
                timers,
                Duration::from_millis(12),
                std::future::pending::<()>()
            )
            .await
            .is_err()
        );
        assert_on_time(start, Duration::from_millis(12));
        // Long enough for the driver to find the wheel empty and park.
        std::thread::sleep(Duration::from_millis(30));
    }
}

/// A long timer armed (and left waiting) on `timers`, so the driver has
/// something to watch; dropped to release it.
fn long_timer(timers: &'static Timers) -> Pin<Box<impl Future>> {
    let mut t = Box::pin(timeout_on(
        timers,
        Duration::from_secs(600),
        std::future::pending::<()>(),
    ));
    assert!(poll_once(t.as_mut(), Waker::noop()).is_pending());
    t
}

#[test]
fn while_only_long_timers_wait_the_driver_naps() {
    let tick = Duration::from_millis(1);
    let timers: &'static Timers = Box::leak(Box::new(Timers::new(tick)));
    let long = long_timer(timers);
    std::thread::sleep(Duration::from_millis(20));
    let before = timers.passes.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(300));
    let passes = timers.passes.load(Ordering::Relaxed) - before;
    // 300 ticks: a pass every tick would be 300, one per nap is 30.
    let most = 2 * 300 / driver::NAP_TICKS as usize;
    assert!(passes <= most, "{passes} passes in 300 ticks");
    assert!(passes > 0, "the driver still passes");
    drop(long);
    assert_eq!(timers.live(), 0);
}

#[tokio::test(flavor = "current_thread")]
async fn a_short_timer_armed_during_a_nap_is_still_on_time() {
    // Naps of ten 50 ms ticks: a short timer left to the end of one would
    // fire up to half a second late.
    let tick = Duration::from_millis(50);
    let timers: &'static Timers = Box::leak(Box::new(Timers::new(tick)));
    let long = long_timer(timers);
    for _ in 0..3 {
        // Past the pass that stamped the long timer: the driver naps.
        tokio::time::sleep(Duration::from_millis(120)).await;
        let start = Instant::now();
        let deadline = Duration::from_millis(60);
        let out = timeout_on(timers, deadline, std::future::pending::<()>()).await;
        assert!(out.is_err());
        assert_on_time_with(start, deadline, tick);
    }
    drop(long);
    assert_eq!(timers.live(), 0);
}

#[tokio::test(flavor = "current_thread")]
async fn the_global_timers_work() {
    let start = Instant::now();
    sleep(Duration::from_millis(10)).await;
    assert_on_time(start, Duration::from_millis(10));
    let out = timeout(Duration::from_secs(1), async { 3 }).await;
    assert_eq!(out, Ok(3));
}

#[tokio::test(flavor = "current_thread")]
async fn a_long_timer_is_batched_and_still_on_time() {
    // With 1 ms ticks, timers of 200 ms or more are batched.
    let tick = Duration::from_millis(1);
    let timers: &'static Timers = Box::leak(Box::new(Timers::new(tick)));
    let start = Instant::now();
    let deadline = Duration::from_millis(230);
    let out = timeout_on(timers, deadline, std::future::pending::<()>()).await;
    assert!(out.is_err());
    assert_on_time_with(start, deadline, tick);
    assert_eq!(timers.live(), 0);
}

#[test]
fn a_timer_armed_on_one_thread_is_released_on_another() {
    let timers = timers();
    let mut t = Box::pin(timeout_on(
        timers,
        Duration::from_secs(60),
        std::future::pending::<()>(),
    ));
    assert!(poll_once(t.as_mut(), Waker::noop()).is_pending());
    std::thread::spawn(move || drop(t)).join().unwrap();
    assert_eq!(timers.live(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_completion_and_expiry_leave_nothing_behind() {
    let timers = timers();
    let deadline = Duration::from_millis(10);
    let tasks: Vec<_> = (0..2000u64)
        .map(|i| {
            // Inner futures finish from 5 to 45 ms: before the deadline,
            // within the 10 ms the timer may be late, and well after.
            let inner = Duration::from_micros(5_000 + i * 7919 % 40_000);
            tokio::spawn(async move {
                let start = Instant::now();
                let out = timeout_on(timers, deadline, tokio::time::sleep(inner)).await;
                if out.is_err() {
                    assert!(start.elapsed() >= deadline, "fired early");
                }
                out.is_err()
            })
        })
        .collect();
    let mut elapsed = 0;
    for task in tasks {
        elapsed += usize::from(task.await.unwrap());
    }
    // The timer beats inner futures far past its deadline.
    assert!(elapsed > 0);
    assert_eq!(timers.live(), 0);
}

#[test]
fn into_inner_releases_the_timer() {
    let timers = timers();
    let mut t = Box::pin(timeout_on(
        timers,
        Duration::from_secs(60),
        std::future::pending::<()>(),
    ));
    assert!(poll_once(t.as_mut(), Waker::noop()).is_pending());
    assert_eq!(timers.live(), 1);
    let _inner = Pin::into_inner(t).into_inner();
    assert_eq!(timers.live(), 0);
}

#[test]
fn a_fast_timeout_adds_little_to_its_future() {
    // A pointer and a small state; tokio's `Sleep` is 112 bytes on x86_64.
    // The state keeps the identity of the waker the wheel holds and the
    // shard's fire count (16 bytes more), so that re-polling an armed timer
    // takes no lock.
    assert!(size_of::<Timer>() <= 48, "{}", size_of::<Timer>());
    assert!(size_of::<Sleep>() <= 48);
}

/// Re-polled with the same waker many times before its deadline (the
/// refreshes take no lock while nothing fired), it still fires on time and
/// lets go of its entry.
#[tokio::test(flavor = "current_thread")]
async fn a_timer_re_polled_often_still_fires_on_time() {
    let timers = timers();
    let deadline = Duration::from_millis(30);
    let start = Instant::now();
    let mut polls = 0_u32;
    // Pending, and asks to be polled again at once: the timeout's timer is
    // refreshed on every poll until the deadline.
    let busy = std::future::poll_fn(|cx| {
        polls += 1;
        cx.waker().wake_by_ref();
        Poll::<()>::Pending
    });
    let out = timeout_on(timers, deadline, busy).await;
    assert_eq!(out, Err(crate::Elapsed::new()));
    assert_on_time(start, deadline);
    assert!(polls > 2, "polled {polls} times");
    assert_eq!(timers.live(), 0);
}
