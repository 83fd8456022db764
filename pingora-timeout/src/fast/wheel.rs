//! The timer wheel: coarse buckets of wakers, sharded, with no clock inside.
//!
//! Time comes in from the caller (the driver thread in production, the
//! tests directly) as tick numbers and as a clock closure, so every rule
//! below can be tested without waiting.
//!
//! A timer is armed with a delay, not a deadline: the arming thread does
//! not read the clock. At its next pass the driver reads the clock **under
//! the shard's lock**, after every staged timer of that shard was armed, and
//! gives each the first tick at or after that reading plus its delay (long
//! timers get theirs later, from the same reading: see `slots`). The
//! reading is later than the timer's real start, so it never fires early;
//! it is at most one pass later. The driver passes every tick while short
//! timers are armed, so those fire at most about one tick late on top of
//! the rounding; while only long ones are, it passes less often (see
//! `driver`), and they fire up to that gap late.
//!
//! Timers more than one round ahead share a slot with nearer ones and are
//! skipped by the passes of earlier rounds: a scan of a long timer once per
//! round (every [`SLOTS`] ticks) buys entries that never move, so cancelling
//! is one lock and an O(1) unlink.

use super::slots::{Refresh, SLOTS, Slots};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::{RawWakerVTable, Waker};

/// Timers given deadline ticks per lock hold, so that a burst of new timers
/// never blocks the threads arming more for long.
const SCHEDULE_CHUNK: usize = 4096;

/// Timers of at least this many ticks are batched (see `slots`): one
/// second at the default tick, well below common I/O and idle timeouts.
pub(crate) const LAZY_TICKS: u64 = 200;

/// The delay from which a timer is long (batched), for ticks of
/// `tick_nanos`.
pub(crate) const fn lazy_nanos(tick_nanos: u64) -> u64 {
    tick_nanos.saturating_mul(LAZY_TICKS)
}

/// Where an armed timer is, so that it can be refreshed or released, and
/// what its owner last saw of it, so that most refreshes take no lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Key {
    shard: u32,
    index: u32,
    /// The shard's [`Shard::fired`] count when the entry was last looked at
    /// under the lock.
    fired_seen: u64,
    /// The waker the entry holds.
    waker: WakerId,
}

/// What [`Waker::will_wake`] compares, kept without holding the waker: the
/// entry's clone keeps the task alive, so the address cannot be reused by
/// another task while the entry holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct WakerId {
    data: usize,
    vtable: usize,
}

impl WakerId {
    fn of(waker: &Waker) -> Self {
        Self {
            data: waker.data().addr(),
            vtable: std::ptr::from_ref::<RawWakerVTable>(waker.vtable()).addr(),
        }
    }
}

/// One lock's worth of the wheel. Aligned to its own cache lines so that
/// threads working on neighbouring shards do not slow each other down.
#[repr(align(128))]
struct Shard {
    slots: Mutex<Slots>,
    /// Bumped, under the lock, by every driver pass that fires a timer of
    /// this shard. An owner that reads the count it saw at arming knows
    /// its timer has not fired, without taking the lock.
    fired: AtomicU64,
}

impl Shard {
    /// Called with the lock held, after a pass that fired timers if `any`.
    fn note_fired(&self, any: bool) {
        if any {
            self.fired.fetch_add(1, Ordering::Release);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Slots> {
        // Nothing that can panic runs while the lists are half updated, so
        // a poisoned lock still guards a consistent shard.
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A sharded wheel of timer buckets, one bucket per tick.
pub(crate) struct Wheel {
    shards: Box<[Shard]>,
    /// Every tick up to and including this one has fired. Written only by
    /// [`Wheel::advance`].
    fired_through: AtomicU64,
}

impl Wheel {
    /// A wheel with at least `shards` shards (rounded up to a power of two)
    /// and ticks `tick_nanos` long, whose tick 0 counts as fired.
    pub(crate) fn new(shards: usize, tick_nanos: u64) -> Self {
        let tick_nanos = tick_nanos.max(1);
        let shards = shards.clamp(1, 1 << 16).next_power_of_two();
        Self {
            shards: (0..shards)
                .map(|_| Shard {
                    slots: Mutex::new(Slots::new(tick_nanos, lazy_nanos(tick_nanos))),
                    fired: AtomicU64::new(0),
                })
                .collect(),
            fired_through: AtomicU64::new(0),
        }
    }

    /// Arm a timer for `delay_nanos` in the shard picked by `hint`, keeping
    /// a clone of `waker` to wake. `None` if the shard is full.
    pub(crate) fn insert(&self, hint: usize, delay_nanos: u64, waker: &Waker) -> Option<Key> {
        // The shard count is a power of two.
        let shard = hint & (self.shards.len() - 1);
        let lock = &self.shards[shard];
        let mut slots = lock.lock();
        let index = slots.insert(delay_nanos, waker)?;
        // Exact: the count only changes under the lock held here.
        let fired_seen = lock.fired.load(Ordering::Relaxed);
        drop(slots);
        Some(Key {
            // `shard` < shards.len() <= 2^16.
            shard: shard as u32,
            index,
            fired_seen,
            waker: WakerId::of(waker),
        })
    }

    /// Report whether the timer has fired, releasing it if so; if not, make
    /// sure it will wake `waker`, which may belong to another task than the
    /// one that armed it.
    ///
    /// Takes no lock when `waker` is the one the entry holds and no timer
    /// of the shard fired since the owner last looked: the common case of
    /// a task polled again before its deadline. Should the timer fire just
    /// after the count is read, the driver wakes that same waker, and the
    /// next refresh sees the new count.
    pub(crate) fn refresh(&self, key: &mut Key, waker: &Waker) -> bool {
        let shard = self.shard(key);
        let waker_id = WakerId::of(waker);
        // Acquire: pairs with the bump in `advance`, so a task woken by
        // the firing reads the new count.
        if key.waker == waker_id && shard.fired.load(Ordering::Acquire) == key.fired_seen {
            return false;
        }
        let mut slots = shard.lock();
        let refresh = slots.refresh(key.index, waker);
        key.fired_seen = shard.fired.load(Ordering::Relaxed);
        drop(slots);
        match refresh {
            Refresh::Fired => true,
            Refresh::Waiting(replaced) => {
                key.waker = waker_id;
                // Outside the lock: see `Slots::remove`.
                drop(replaced);
                false
            }
        }
    }

    /// Release the timer at `key`, dropping the waker it holds (after the
    /// lock is released: see [`Slots::remove`]).
    pub(crate) fn remove(&self, key: &Key) {
        let removed = self.shard(key).lock().remove(key.index);
        drop(removed);
    }

    /// Give deadline ticks to the timers armed since the last pass and to
    /// the batches about to fall due. `now_nanos` reads the clock, in
    /// nanoseconds since tick 0 started; it is called with each shard
    /// locked, after the timers it schedules were armed.
    ///
    /// Returns whether any short (staged) timer was waiting: while they
    /// are being armed, the driver passes every tick.
    pub(crate) fn schedule(&self, mut now_nanos: impl FnMut() -> u64) -> bool {
        let min_tick = self.fired_through.load(Ordering::Acquire) + 1;
        let mut short = false;
        for shard in self.shards.iter() {
            // At most as many timers as there were at the start, so that a
            // steady stream of new ones cannot keep the driver here.
            let mut budget = None;
            loop {
                let mut slots = shard.lock();
                short |= slots.has_staged();
                let left = budget.get_or_insert(slots.waiting());
                if *left == 0 {
                    break;
                }
                let now = now_nanos();
                let (done, more) = slots.schedule(SCHEDULE_CHUNK.min(*left), now, min_tick);
                *left -= done;
                if !more {
                    break;
                }
            }
        }
        short
    }

    /// The first tick after `now`, and no later than `latest`, at which
    /// some shard needs a pass: see [`Slots::next_pass`].
    pub(crate) fn next_pass(&self, now: u64, latest: u64) -> u64 {
        self.shards
            .iter()
            .map(|shard| shard.lock().next_pass(now, latest))
            .min()
            .unwrap_or(latest)
    }

    /// Fire every scheduled timer due at or before tick `now`, moving their
    /// wakers into `out` in tick order, and return how many timers wait.
    ///
    /// The caller wakes them after this returns, outside every lock.
    pub(crate) fn advance(&self, now: u64, out: &mut Vec<Waker>) -> usize {
        let from = self.fired_through.load(Ordering::Acquire).saturating_add(1);
        if now >= from {
            if now - from >= SLOTS as u64 {
                // Behind by a whole round or more (the process was stopped,
                // or the machine suspended): one sweep of every slot fires
                // all that is due, with no order between ticks, since they
                // are all late.
                for shard in self.shards.iter() {
                    let mut slots = shard.lock();
                    let before = out.len();
                    slots.fire_all(now, out);
                    shard.note_fired(before != out.len());
                    slots.shrink_if_empty();
                }
            } else {
                for tick in from..=now {
                    for shard in self.shards.iter() {
                        let mut slots = shard.lock();
                        let before = out.len();
                        slots.fire_slot(tick, out);
                        shard.note_fired(before != out.len());
                        if tick % SLOTS as u64 == 0 {
                            // Once a round: a shard empty since its last
                            // burst need not keep the burst's memory.
                            slots.shrink_if_empty();
                        }
                    }
                }
            }
            self.fired_through.store(now, Ordering::Release);
        }
        self.waiting()
    }

    /// Every shard's lock, in shard order (the order the driver takes
    /// them in, one at a time).
    pub(crate) fn lock_all(&self) -> Vec<MutexGuard<'_, Slots>> {
        self.shards.iter().map(Shard::lock).collect()
    }

    /// Timers that have not fired, summed over the shards.
    pub(crate) fn waiting(&self) -> usize {
        self.shards.iter().map(|s| s.lock().waiting()).sum()
    }

    /// Entries held by timers, fired or not, summed over the shards.
    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        self.shards.iter().map(|s| s.lock().held()).sum()
    }

    fn shard(&self, key: &Key) -> &Shard {
        &self.shards[key.shard as usize]
    }
}

#[cfg(test)]
mod tests;
