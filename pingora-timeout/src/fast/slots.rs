//! One shard's timers: an arena of entries threaded into linked lists.
//!
//! Entries live in one vector with a free list, so a timer keeps a stable
//! index from arming until it is released, memory is reused from tick to
//! tick, and every operation is O(1) with no allocation once the vector has
//! grown. An entry sits in one of these places:
//!
//! - **staged** or **batched**: just armed. The arming thread did not read
//!   the clock (that read would cost more than the rest of arming), so the
//!   entry holds its delay until the driver's next pass reads the clock for
//!   it. A short timer is then *staged*: the pass gives it its deadline tick
//!   at once. A long one (delay of at least `lazy_after`) is *batched*: the
//!   pass stamps its whole batch with the clock reading in O(1), and the
//!   entries get deadline ticks only when the batch is about to fall due.
//!   Most long timers (I/O and idle guards) are released long before that,
//!   so they are never touched by the driver at all.
//! - **slotted**: in the list of slot `tick % SLOTS`, waiting for `tick`.
//!   Timers due in later rounds share a slot's list with nearer ones.
//! - **fired**: its waker was handed out. The entry stays reserved until
//!   its timer releases it, so an index never changes owner while a timer
//!   holds it.

use std::collections::VecDeque;
use std::task::Waker;

/// Slots per shard; a power of two so that a tick maps to a slot by masking.
pub(crate) const SLOTS: usize = 1024;
const MASK: u64 = SLOTS as u64 - 1;

/// The null link.
const NONE: u32 = u32::MAX;

/// Above this many entries, an emptied arena gives its memory back (when
/// [`Slots::shrink_if_empty`] is called) instead of keeping it for reuse.
const KEEP_CAPACITY: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Free,
    /// `when` is the delay in nanoseconds.
    Staged,
    /// `when` is the delay in nanoseconds; `batch` names the batch.
    Batched,
    /// `when` is the deadline tick.
    Slotted,
    Fired,
}

struct Entry {
    waker: Option<Waker>,
    when: u64,
    prev: u32,
    /// The next entry in the same list; for a free entry, the next free one.
    next: u32,
    batch: u32,
    place: Place,
}

/// Long timers armed between two passes of the driver.
struct Batch {
    /// Numbers batches in arming order, wrapping.
    seq: u32,
    /// The clock reading of the pass that sealed the batch: every timer in
    /// it started before this.
    sealed_at: u64,
    head: u32,
}

/// What [`Slots::refresh`] found.
pub(crate) enum Refresh {
    /// The timer had fired; its entry is now released.
    Fired,
    /// The timer waits; holds the waker it replaced, if any, to be dropped
    /// outside the lock.
    Waiting(Option<Waker>),
}

/// The timers of one shard, addressed by a stable `u32` index.
pub(crate) struct Slots {
    entries: Vec<Entry>,
    free: u32,
    /// Entries not free.
    held: usize,
    /// Entries staged or slotted.
    waiting: usize,
    /// The first entry of each slot's list.
    heads: Box<[u32]>,
    /// Staged entries: pushed at the head, scheduled from the tail (oldest
    /// first), so a steady stream of new timers cannot starve old ones.
    staged_head: u32,
    staged_tail: u32,
    /// The batch that new long timers join; it has no clock reading yet.
    open: u32,
    open_seq: u32,
    /// Sealed batches, oldest first, so also in order of falling due.
    batches: VecDeque<Batch>,
    tick_nanos: u64,
    /// Timers with at least this delay are batched.
    lazy_after: u64,
}

impl Slots {
    /// No timers, ticks `tick_nanos` long, timers of `lazy_after` nanos or
    /// more batched. The arena allocates on the first insert.
    pub(crate) fn new(tick_nanos: u64, lazy_after: u64) -> Self {
        Self {
            entries: Vec::new(),
            free: NONE,
            held: 0,
            waiting: 0,
            heads: vec![NONE; SLOTS].into_boxed_slice(),
            staged_head: NONE,
            staged_tail: NONE,
            open: NONE,
            open_seq: 0,
            batches: VecDeque::new(),
            tick_nanos: tick_nanos.max(1),
            lazy_after,
        }
    }

    /// Entries that a timer still holds: waiting, or fired and not released.
    #[cfg(test)]
    pub(crate) const fn held(&self) -> usize {
        self.held
    }

    /// Timers that have not fired.
    pub(crate) const fn waiting(&self) -> usize {
        self.waiting
    }

    /// Arm a timer that fires `delay_nanos` after its arming.
    ///
    /// Returns `None` when the arena already holds `u32::MAX` entries, so
    /// that indexes always fit the `u32` kept in each registration.
    pub(crate) fn insert(&mut self, delay_nanos: u64, waker: &Waker) -> Option<u32> {
        let lazy = delay_nanos >= self.lazy_after;
        let (place, head) = if lazy {
            (Place::Batched, self.open)
        } else {
            (Place::Staged, self.staged_head)
        };
        let entry = Entry {
            waker: Some(waker.clone()),
            when: delay_nanos,
            prev: NONE,
            next: head,
            batch: self.open_seq,
            place,
        };
        let index = if self.free == NONE {
            let index = u32::try_from(self.entries.len())
                .ok()
                .filter(|i| *i != NONE)?;
            self.entries.push(entry);
            index
        } else {
            let index = self.free;
            let reused = &mut self.entries[index as usize];
            self.free = reused.next;
            *reused = entry;
            index
        };
        if head != NONE {
            self.entries[head as usize].prev = index;
        }
        if lazy {
            self.open = index;
        } else {
            if head == NONE {
                self.staged_tail = index;
            }
            self.staged_head = index;
        }
        self.held += 1;
        self.waiting += 1;
        Some(index)
    }

    /// One driver pass over this shard at clock reading `now_nanos`: give
    /// deadline ticks (never below `min_tick`) to up to `budget` timers,
    /// staged ones first, then those of batches about to fall due.
    ///
    /// `now_nanos` must be read under the lock that guards `self`, so that
    /// every timer armed so far started before it and none fires early.
    /// Returns how many timers were given ticks, and whether work is left.
    pub(crate) fn schedule(
        &mut self,
        budget: usize,
        now_nanos: u64,
        min_tick: u64,
    ) -> (usize, bool) {
        if self.open != NONE {
            // O(1) however many long timers the batch holds.
            self.batches.push_back(Batch {
                seq: self.open_seq,
                sealed_at: now_nanos,
                head: self.open,
            });
            self.open = NONE;
            self.open_seq = self.open_seq.wrapping_add(1);
        }
        let mut done = 0;
        while done < budget && self.staged_tail != NONE {
            self.slot(self.staged_tail, now_nanos, min_tick);
            done += 1;
        }
        // A batch's timers are due no sooner than `sealed_at + lazy_after`;
        // they get their ticks a little before, while the wheel still has
        // two ticks to spare.
        let horizon = now_nanos.saturating_add(2 * self.tick_nanos);
        while let Some(batch) = self.batches.front()
            && batch.sealed_at.saturating_add(self.lazy_after) <= horizon
        {
            let (start, index) = (batch.sealed_at, batch.head);
            if index == NONE {
                self.batches.pop_front();
                continue;
            }
            if done == budget {
                return (done, true);
            }
            self.slot(index, start, min_tick);
            done += 1;
        }
        (done, self.staged_tail != NONE)
    }

    /// Whether timers wait for their first clock reading with a short
    /// delay (see [`schedule`](Self::schedule)).
    pub(crate) const fn has_staged(&self) -> bool {
        self.staged_head != NONE
    }

    /// The first tick after `now` at which this shard needs a driver pass,
    /// but no later than `latest`: the next tick when short timers are
    /// staged, else the first tick whose slot holds a timer, or the tick in
    /// which [`schedule`](Self::schedule) will slot the oldest batch.
    ///
    /// A slot may hold only timers of later rounds, which makes the pass
    /// early and harmless. Long timers armed after this call are not
    /// counted: they wait for a pass by `latest` to be stamped.
    pub(crate) fn next_pass(&self, now: u64, latest: u64) -> u64 {
        let soonest = now.saturating_add(1);
        if self.has_staged() {
            return soonest;
        }
        let mut latest = latest.max(soonest);
        if let Some(batch) = self.batches.front() {
            // `schedule` slots the batch at a clock reading of `at` or later.
            let at = batch
                .sealed_at
                .saturating_add(self.lazy_after)
                .saturating_sub(2 * self.tick_nanos);
            latest = latest.min(at.div_ceil(self.tick_nanos).max(soonest));
        }
        (soonest..latest)
            .find(|&tick| self.heads[slot_of(tick)] != NONE)
            .unwrap_or(latest)
    }

    /// Move a staged or batched entry whose clock started before
    /// `start_nanos` into the slot of its deadline tick.
    fn slot(&mut self, index: u32, start_nanos: u64, min_tick: u64) {
        self.unlink(index);
        let delay = self.entries[index as usize].when;
        let tick = start_nanos
            .saturating_add(delay)
            .div_ceil(self.tick_nanos)
            .max(min_tick);
        let slot = slot_of(tick);
        let head = self.heads[slot];
        let entry = &mut self.entries[index as usize];
        entry.when = tick;
        entry.place = Place::Slotted;
        entry.prev = NONE;
        entry.next = head;
        if head != NONE {
            self.entries[head as usize].prev = index;
        }
        self.heads[slot] = index;
    }

    /// Release the entry at `index` and hand back its waker, if it still
    /// had one.
    ///
    /// The caller must drop the waker after releasing its lock: dropping the
    /// last reference to a task may run arbitrary code.
    pub(crate) fn remove(&mut self, index: u32) -> Option<Waker> {
        let place = self.entries.get(index as usize)?.place;
        match place {
            Place::Free => return None,
            Place::Staged | Place::Batched | Place::Slotted => {
                self.unlink(index);
                self.waiting -= 1;
            }
            Place::Fired => {}
        }
        let entry = &mut self.entries[index as usize];
        let waker = entry.waker.take();
        entry.place = Place::Free;
        entry.next = self.free;
        self.free = index;
        self.held -= 1;
        if self.held == 0 {
            // Nothing is held, so every list is empty: start again from the
            // front of the arena, keeping its memory for the next burst.
            self.entries.clear();
            self.free = NONE;
        }
        waker
    }

    /// Report whether the timer at `index` has fired, releasing its entry if
    /// so; if not, make sure it will wake `waker`.
    pub(crate) fn refresh(&mut self, index: u32, waker: &Waker) -> Refresh {
        let Some(entry) = self.entries.get_mut(index as usize) else {
            return Refresh::Fired;
        };
        match entry.place {
            Place::Staged | Place::Batched | Place::Slotted => {
                Refresh::Waiting(match &mut entry.waker {
                    Some(stored) if !stored.will_wake(waker) => {
                        Some(std::mem::replace(stored, waker.clone()))
                    }
                    _ => None,
                })
            }
            Place::Fired => {
                // A fired entry has no waker left to drop.
                let _none = self.remove(index);
                Refresh::Fired
            }
            Place::Free => Refresh::Fired,
        }
    }

    /// Fire the timers in `tick`'s slot that are due at or before `tick`,
    /// moving their wakers into `out`. Timers of later rounds stay.
    pub(crate) fn fire_slot(&mut self, tick: u64, out: &mut Vec<Waker>) {
        self.fire_list(slot_of(tick), tick, out);
    }

    /// Fire every slotted timer due at or before `now`.
    pub(crate) fn fire_all(&mut self, now: u64, out: &mut Vec<Waker>) {
        for slot in 0..SLOTS {
            self.fire_list(slot, now, out);
        }
    }

    /// Give back the arena's memory if no timer holds an entry and it is
    /// large.
    pub(crate) fn shrink_if_empty(&mut self) {
        if self.held == 0 && self.entries.capacity() > KEEP_CAPACITY {
            self.entries = Vec::new();
        }
    }

    fn fire_list(&mut self, slot: usize, now: u64, out: &mut Vec<Waker>) {
        let mut index = self.heads[slot];
        while index != NONE {
            let entry = &self.entries[index as usize];
            let next = entry.next;
            if entry.when <= now {
                self.unlink(index);
                self.waiting -= 1;
                let entry = &mut self.entries[index as usize];
                entry.place = Place::Fired;
                out.extend(entry.waker.take());
            }
            index = next;
        }
    }

    /// Take a staged, batched or slotted entry out of its list.
    fn unlink(&mut self, index: u32) {
        let entry = &self.entries[index as usize];
        let (prev, next, place) = (entry.prev, entry.next, entry.place);
        if prev == NONE {
            *self.head_of(index) = next;
        } else {
            self.entries[prev as usize].next = next;
        }
        if next != NONE {
            self.entries[next as usize].prev = prev;
        } else if place == Place::Staged {
            self.staged_tail = prev;
        }
    }

    /// The list head that points at `index`, which heads its list.
    fn head_of(&mut self, index: u32) -> &mut u32 {
        let entry = &self.entries[index as usize];
        match entry.place {
            Place::Staged => &mut self.staged_head,
            Place::Batched if entry.batch == self.open_seq => &mut self.open,
            Place::Batched => {
                // Sealed batches are numbered consecutively from the front.
                let front = self.batches.front().map_or(0, |b| b.seq);
                let at = entry.batch.wrapping_sub(front) as usize;
                &mut self.batches[at].head
            }
            Place::Slotted | Place::Free | Place::Fired => &mut self.heads[slot_of(entry.when)],
        }
    }
}

const fn slot_of(tick: u64) -> usize {
    (tick & MASK) as usize
}

#[cfg(test)]
mod tests;
