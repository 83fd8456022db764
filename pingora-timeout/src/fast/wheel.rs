//! The timer wheel: coarse buckets of wakers, sharded, with no clock inside.
//!
//! Time here is a tick count handed in by the caller (the driver thread in
//! production, the tests directly), so every rule below can be tested without
//! waiting. A timer due at tick `t` lives in slot `t % SLOTS` of one shard
//! until the wheel has advanced to `t`; then its waker is handed out once.
//!
//! Timers more than one round ahead share a slot with nearer ones and are
//! simply skipped by the drains of earlier rounds. That costs a scan of a
//! long timer once per round (every `SLOTS` ticks, about ten seconds at the
//! default tick), and buys stable indexes: a timer never moves, so cancelling
//! it is one lock and one O(1) removal.

use super::slab::Slab;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::Waker;

/// Slots per shard; a power of two so that a tick maps to a slot by masking.
pub(crate) const SLOTS: usize = 1024;
const MASK: u64 = SLOTS as u64 - 1;

/// Where a waiting timer is, so that it can be refreshed or cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Key {
    shard: u32,
    index: u32,
    tick: u64,
}

/// What became of an insert.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Insert {
    /// The timer waits; the key finds it again.
    Waiting(Key),
    /// The wheel has already passed the tick: the timer is due now.
    Due,
    /// The slot cannot hold more timers (`u32::MAX` of them).
    Full,
}

/// One lock's worth of the wheel. Aligned to its own cache lines so that
/// threads working on neighbouring shards do not slow each other down.
#[repr(align(128))]
struct Shard {
    /// Mirrors `State::fired_through`, so that the common checks ("has my
    /// timer fired?") need no lock. Written only under the lock.
    fired: AtomicU64,
    state: Mutex<State>,
}

struct State {
    /// Every timer due at or before this tick has been handed out.
    fired_through: u64,
    /// Waiting timers in all slots.
    len: usize,
    slots: Box<[Slab]>,
}

impl Shard {
    fn new(start: u64) -> Self {
        Self {
            fired: AtomicU64::new(start),
            state: Mutex::new(State {
                fired_through: start,
                len: 0,
                slots: (0..SLOTS).map(|_| Slab::new()).collect(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing that can panic runs while the state is half updated, so a
        // poisoned lock still guards a consistent wheel.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn has_fired(&self, tick: u64) -> bool {
        self.fired.load(Ordering::Acquire) >= tick
    }
}

/// A sharded wheel of timer buckets, one bucket per tick.
pub(crate) struct Wheel {
    shards: Box<[Shard]>,
}

impl Wheel {
    /// A wheel with `shards` shards (at least one) whose ticks up to and
    /// including `start` count as already fired.
    pub(crate) fn new(shards: usize, start: u64) -> Self {
        Self {
            shards: (0..shards.max(1)).map(|_| Shard::new(start)).collect(),
        }
    }

    /// Wait for `tick` in the shard picked by `hint`, keeping a clone of
    /// `waker` to wake then.
    pub(crate) fn insert(&self, hint: usize, tick: u64, waker: &Waker) -> Insert {
        let shard = hint % self.shards.len();
        let mut state = self.shards[shard].lock();
        if state.fired_through >= tick {
            return Insert::Due;
        }
        let Some(index) = state.slots[slot_of(tick)].insert(tick, waker) else {
            return Insert::Full;
        };
        state.len += 1;
        Insert::Waiting(Key {
            // `shard` < shards.len(), which `Timers` keeps far below u32::MAX.
            shard: shard as u32,
            index,
            tick,
        })
    }

    /// Whether the timer at `key` has fired. Lock free.
    #[cfg(test)]
    pub(crate) fn has_fired(&self, key: &Key) -> bool {
        self.shard(key).has_fired(key.tick)
    }

    /// Report whether the timer has fired; if not, make sure it will wake
    /// `waker`, which may belong to another task than the one that armed it.
    pub(crate) fn refresh(&self, key: &Key, waker: &Waker) -> bool {
        let shard = self.shard(key);
        if shard.has_fired(key.tick) {
            return true;
        }
        let replaced = {
            let mut state = shard.lock();
            if state.fired_through >= key.tick {
                return true;
            }
            state.slots[slot_of(key.tick)].update(key.index, waker)
        };
        // Dropped here, outside the lock: see `Slab::remove`.
        drop(replaced);
        false
    }

    /// Forget the timer at `key`, dropping the waker it holds. Does nothing
    /// if it has fired already (its waker was handed out then).
    pub(crate) fn remove(&self, key: &Key) {
        let shard = self.shard(key);
        if shard.has_fired(key.tick) {
            return;
        }
        let removed = {
            let mut state = shard.lock();
            // The timer is in its slot until `fired_through` reaches its tick,
            // so this check keeps us from removing a newer timer that reused
            // the index after ours fired.
            if state.fired_through >= key.tick {
                return;
            }
            let removed = state.slots[slot_of(key.tick)].remove(key.index);
            if removed.is_some() {
                state.len -= 1;
            }
            removed
        };
        drop(removed);
    }

    /// Fire every timer due at or before `now`, moving their wakers into
    /// `out` in tick order, and return how many timers still wait.
    ///
    /// The caller wakes them after this returns, outside every lock.
    pub(crate) fn advance(&self, now: u64, out: &mut Vec<Waker>) -> usize {
        let from = self
            .shards
            .iter()
            .map(|s| s.fired.load(Ordering::Acquire))
            .min()
            .unwrap_or(now)
            .saturating_add(1);
        if now < from {
            return self.len();
        }
        if now - from >= SLOTS as u64 {
            // Behind by a whole round or more (the process was stopped, or
            // the machine suspended): one sweep of every slot fires all that
            // is due, with no order between ticks, since they are all late.
            return self.shards.iter().map(|s| sweep(s, now, out)).sum();
        }
        let mut waiting = 0;
        for tick in from..=now {
            waiting = 0;
            for shard in self.shards.iter() {
                let mut state = shard.lock();
                if state.fired_through < tick {
                    let before = out.len();
                    state.slots[slot_of(tick)].drain_due(tick, out);
                    state.len -= out.len() - before;
                    state.fired_through = tick;
                    shard.fired.store(tick, Ordering::Release);
                }
                waiting += state.len;
            }
        }
        waiting
    }

    /// The number of waiting timers, summed over the shards.
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len).sum()
    }

    fn shard(&self, key: &Key) -> &Shard {
        &self.shards[key.shard as usize]
    }
}

fn sweep(shard: &Shard, now: u64, out: &mut Vec<Waker>) -> usize {
    let mut state = shard.lock();
    if state.fired_through >= now {
        return state.len;
    }
    let before = out.len();
    for slot in state.slots.iter_mut() {
        slot.drain_due(now, out);
    }
    state.len -= out.len() - before;
    state.fired_through = now;
    shard.fired.store(now, Ordering::Release);
    state.len
}

const fn slot_of(tick: u64) -> usize {
    (tick & MASK) as usize
}

#[cfg(test)]
mod tests;
