//! The clock and the thread that turns the wheel.
//!
//! One plain OS thread per [`Timers`] (one for the whole process in
//! production) reads the clock, advances the wheel and wakes what is due.
//! Wakers can be woken from any thread, so the same timers serve tasks of
//! any number of tokio runtimes, current-thread or multi-thread, and of other
//! executors. A task on the runtime would be tied to that runtime's life
//! and would stall whenever its worker is busy.
//!
//! How often the thread wakes:
//!
//! - every tick while short timers (under [`LAZY_TICKS`](super::wheel::LAZY_TICKS) ticks) are being
//!   armed, since each needs its clock reading within about a tick;
//! - while only long timers are armed (the I/O and idle timeouts of a busy
//!   server), it naps until the next tick something is due, but at most
//!   [`NAP_TICKS`] ticks: new long timers get their clock reading at the
//!   next pass, so they may fire up to a nap late (50 ms by default, a
//!   twentieth of the shortest long timer). Waking every tick instead cost
//!   a busy one-threaded proxy about half a per cent of its CPU in context
//!   switches;
//! - never while no timer waits: it parks until a registration unparks it.
//!
//! A short timer armed during a nap unparks the thread, so napping never
//! delays one.

use super::slots::Slots;
use super::wheel::{Key, Wheel, lazy_nanos};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::Waker;
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

/// The bucket width of the process-wide timers.
pub(crate) const DEFAULT_TICK: Duration = Duration::from_millis(5);

/// The longest the driver sleeps between passes while timers wait and
/// none of them is short: 50 ms at the default tick.
pub(crate) const NAP_TICKS: u64 = 10;

/// Above this many wakers, the driver frees its wake list after use rather
/// than keeping a burst-sized buffer forever.
const KEEP_DUE: usize = 4096;

/// A wheel, its clock and its driver thread.
pub(crate) struct Timers {
    wheel: Wheel,
    /// Tick 0 starts here; tick `n` covers `[epoch + n * tick, +tick)`.
    epoch: Instant,
    tick_nanos: u64,
    /// Timers of at least this delay are long (batched).
    lazy_nanos: u64,
    /// [`NOT_STARTED`], [`RUNNING`] or [`UNAVAILABLE`]: read on every
    /// registration, so it is one atomic load rather than a lock.
    driver_state: AtomicU8,
    /// The driver thread, for unparking it; `None` until the first
    /// registration starts it, and again in a forked child until the next.
    driver: Mutex<Option<Thread>>,
    /// [`AWAKE`], [`NAPPING`] or [`IDLE`]: what a new timer must do to
    /// be seen in time.
    sleep: AtomicU8,
    /// Driver passes so far, for the tests.
    #[cfg(test)]
    pub(crate) passes: AtomicUsize,
}

/// The driver passes at the next tick (or is passing now): a new timer
/// needs nothing.
const AWAKE: u8 = 0;
/// The driver sleeps longer than a tick: a new short timer unparks it.
const NAPPING: u8 = 1;
/// The driver is parked with no timer to watch: any new timer unparks it.
const IDLE: u8 = 2;

/// No driver thread yet (or none in this forked child): the next
/// registration starts one.
const NOT_STARTED: u8 = 0;
/// The driver thread runs.
const RUNNING: u8 = 1;
/// The OS refused to start the driver thread.
const UNAVAILABLE: u8 = 2;

/// What became of a registration.
#[derive(Debug)]
pub(crate) enum Armed {
    /// The timer waits in the wheel.
    Waiting(Key),
    /// The wheel cannot take the timer: no driver thread, or a full shard.
    Unavailable,
}

impl Timers {
    /// Timers with buckets `tick` wide (at least a microsecond).
    pub(crate) fn new(tick: Duration) -> Self {
        let tick_nanos = u64::try_from(tick.as_nanos())
            .unwrap_or(u64::MAX)
            .max(1_000);
        let shards = thread::available_parallelism().map_or(4, |n| n.get() * 4);
        Self {
            wheel: Wheel::new(shards.clamp(4, 256), tick_nanos),
            epoch: Instant::now(),
            tick_nanos,
            lazy_nanos: lazy_nanos(tick_nanos),
            driver_state: AtomicU8::new(NOT_STARTED),
            driver: Mutex::new(None),
            sleep: AtomicU8::new(AWAKE),
            #[cfg(test)]
            passes: AtomicUsize::new(0),
        }
    }

    /// The process-wide timers behind [`fast`](crate::fast).
    pub(crate) fn global() -> &'static Self {
        static GLOBAL: OnceLock<Timers> = OnceLock::new();
        GLOBAL.get_or_init(|| Self::new(DEFAULT_TICK))
    }

    /// Arm a timer that fires `duration` from now and then wakes `waker`.
    ///
    /// Reads no clock: see the `wheel` module for how the start is bounded.
    pub(crate) fn register(&'static self, duration: Duration, waker: &Waker) -> Armed {
        if !self.driver_runs() {
            return Armed::Unavailable;
        }
        let delay = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        let Some(key) = self.wheel.insert(shard_hint(), delay, waker) else {
            return Armed::Unavailable;
        };
        // Pairs with the driver announcing its sleep before its last look
        // at the shards: either it saw this timer, or we see the state.
        let must_wake = match self.sleep.load(Ordering::SeqCst) {
            AWAKE => false,
            NAPPING => delay < self.lazy_nanos,
            _ => true,
        };
        if must_wake && let Some(driver) = self.driver_thread().as_ref() {
            driver.unpark();
        }
        Armed::Waiting(key)
    }

    /// See [`Wheel::refresh`]: true once the timer has fired.
    pub(crate) fn refresh(&self, key: &mut Key, waker: &Waker) -> bool {
        self.wheel.refresh(key, waker)
    }

    /// See [`Wheel::remove`].
    pub(crate) fn cancel(&self, key: &Key) {
        self.wheel.remove(key);
    }

    /// The number of armed timers not yet released by their owner.
    #[cfg(test)]
    pub(crate) fn live(&self) -> usize {
        self.wheel.held()
    }

    /// Nanoseconds from tick 0 to `now`.
    fn nanos_since_epoch(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    /// The last tick that has started by `now`.
    fn current_tick(&self, now: Instant) -> u64 {
        self.nanos_since_epoch(now) / self.tick_nanos
    }

    fn tick_start(&self, tick: u64) -> Instant {
        let nanos = tick.saturating_mul(self.tick_nanos);
        self.epoch
            .checked_add(Duration::from_nanos(nanos))
            .unwrap_or(self.epoch)
    }

    /// Whether a driver thread runs, starting it if none does yet.
    fn driver_runs(&'static self) -> bool {
        match self.driver_state.load(Ordering::Acquire) {
            RUNNING => true,
            UNAVAILABLE => false,
            _ => self.start_driver(),
        }
    }

    #[cold]
    fn start_driver(&'static self) -> bool {
        let mut driver = self.driver_thread();
        // Another thread may have started it while this one waited.
        match self.driver_state.load(Ordering::Acquire) {
            RUNNING => return true,
            UNAVAILABLE => return false,
            _ => {}
        }
        let spawned = thread::Builder::new()
            .name(super::TIMER_THREAD_NAME.into())
            .spawn(move || self.drive());
        let state = match spawned {
            Ok(handle) => {
                *driver = Some(handle.thread().clone());
                RUNNING
            }
            Err(_) => UNAVAILABLE,
        };
        self.driver_state.store(state, Ordering::Release);
        state == RUNNING
    }

    fn driver_thread(&self) -> MutexGuard<'_, Option<Thread>> {
        // Nothing panics while the lock is held.
        self.driver.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Take every lock these timers have, for a fork: see [`ForkGuard`].
    pub(crate) fn lock_for_fork(&'static self) -> ForkGuard {
        // The driver lock first: no thread takes a shard lock while it
        // holds that one, and the driver holds one shard lock at a time.
        let driver = self.driver_thread();
        let shards = self.wheel.lock_all();
        ForkGuard {
            timers: self,
            _shards: shards,
            driver,
        }
    }

    /// The driver thread's loop; it runs for the life of the process.
    fn drive(&self) {
        let mut due = Vec::new();
        loop {
            #[cfg(test)]
            self.passes.fetch_add(1, Ordering::Relaxed);
            let short = self
                .wheel
                .schedule(|| self.nanos_since_epoch(Instant::now()));
            let now = self.current_tick(Instant::now());
            let waiting = self.wheel.advance(now, &mut due);
            // Outside every lock: a wake can run executor code that drops
            // other timers, which takes shard locks.
            due.drain(..).for_each(Waker::wake);
            if due.capacity() > KEEP_DUE {
                due = Vec::new();
            }
            if waiting == 0 {
                self.sleep.store(IDLE, Ordering::SeqCst);
                if self.wheel.waiting() == 0 {
                    thread::park();
                }
                self.sleep.store(AWAKE, Ordering::SeqCst);
                continue;
            }
            let next = if short {
                now.saturating_add(1)
            } else {
                self.nap_until(now)
            };
            // Spurious or early wake-ups only cost one more pass: advancing
            // to a tick already fired does nothing.
            let next = self.tick_start(next);
            thread::park_timeout(next.saturating_duration_since(Instant::now()));
            self.sleep.store(AWAKE, Ordering::SeqCst);
        }
    }

    /// The tick to sleep until when no short timer was armed since the
    /// last pass: the next one something needs, at most [`NAP_TICKS`]
    /// away. Announces the nap first, so that a short timer armed from
    /// then on is either seen here or unparks the driver.
    fn nap_until(&self, now: u64) -> u64 {
        self.sleep.store(NAPPING, Ordering::SeqCst);
        let next = self.wheel.next_pass(now, now.saturating_add(NAP_TICKS));
        if next <= now.saturating_add(1) {
            self.sleep.store(AWAKE, Ordering::SeqCst);
        }
        next
    }
}

/// Every lock of the process-wide fast timers, held across a `fork`.
///
/// A child process has only the thread that forked: the timers' thread is
/// gone, and a lock that thread held at the moment of the fork would stay
/// locked forever. Holding all of them across the fork means the child
/// gets them consistent and free, and [`in_child`](Self::in_child) then
/// lets the child's next timer start a new timers' thread.
///
/// Get one from [`fast::prepare_fork`](super::prepare_fork) just before
/// forking. In the parent, drop it after the fork; in the child, call
/// [`in_child`](Self::in_child). Other threads that arm or release fast
/// timers wait meanwhile, so keep the window short.
#[must_use = "dropping the guard releases the locks; hold it across the fork"]
pub struct ForkGuard {
    timers: &'static Timers,
    _shards: Vec<MutexGuard<'static, Slots>>,
    driver: MutexGuard<'static, Option<Thread>>,
}

impl ForkGuard {
    /// In the child process after the fork: forget the parent's timers'
    /// thread, so that the next timer armed here starts one, and release
    /// the locks.
    pub fn in_child(mut self) {
        *self.driver = None;
        self.timers.sleep.store(AWAKE, Ordering::SeqCst);
        self.timers
            .driver_state
            .store(NOT_STARTED, Ordering::Release);
        // Dropping `self` unlocks every shard and the driver lock.
    }
}

impl std::fmt::Debug for ForkGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForkGuard").finish_non_exhaustive()
    }
}

/// Spreads threads over the shards: each thread sticks to one, so timers
/// armed on different threads rarely meet on a lock.
fn shard_hint() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: usize = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    // During thread teardown the thread local is gone; any shard will do.
    SHARD.try_with(|s| *s).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_count_from_the_epoch() {
        let timers = Timers::new(Duration::from_millis(10));
        let at = |ms| timers.epoch + Duration::from_millis(ms);
        assert_eq!(timers.current_tick(at(0)), 0);
        assert_eq!(timers.current_tick(at(19)), 1);
        assert_eq!(timers.current_tick(at(20)), 2);
        assert_eq!(timers.tick_start(2), at(20));
        assert_eq!(timers.nanos_since_epoch(at(3)), 3_000_000);
    }
}
