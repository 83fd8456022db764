//! The store behind one wheel slot: the wakers of the timers that wait on it.
//!
//! A vector with a free list, so that a timer keeps a stable index from
//! registration to removal and both cost O(1) without allocating once the
//! vector has grown. Timers due in later rounds of the wheel share the slot
//! (see `wheel`), so each entry keeps its own deadline tick and a drain keeps
//! the entries that are not due yet where they are.

use std::task::Waker;

/// Marks the end of the free list.
const NONE: u32 = u32::MAX;

/// Above this many entries, an emptied slot gives its memory back instead of
/// keeping it for reuse: a burst of a million timers in one bucket must not
/// pin tens of megabytes for the life of the process.
const KEEP_CAPACITY: usize = 1024;

enum Entry {
    Waiting { tick: u64, waker: Waker },
    Free { next: u32 },
}

/// The timers registered in one slot, addressed by a stable `u32` index.
#[derive(Default)]
pub(crate) struct Slab {
    entries: Vec<Entry>,
    /// Head of the list of free entries, [`NONE`] when every entry is used.
    free: u32,
    len: usize,
}

impl Slab {
    /// An empty slab; allocates nothing until the first insert.
    pub(crate) const fn new() -> Self {
        Self {
            entries: Vec::new(),
            free: NONE,
            len: 0,
        }
    }

    /// The number of waiting timers.
    #[cfg(test)]
    pub(crate) const fn len(&self) -> usize {
        self.len
    }

    /// Store a timer due at `tick` and return its index.
    ///
    /// Returns `None` when the slab already holds `u32::MAX` entries, so that
    /// indexes always fit the `u32` kept in each registration.
    pub(crate) fn insert(&mut self, tick: u64, waker: &Waker) -> Option<u32> {
        let entry = Entry::Waiting {
            tick,
            waker: waker.clone(),
        };
        // `get` finds nothing for NONE: the vector never grows that long.
        let index = if let Some(Entry::Free { next }) = self.entries.get(self.free as usize) {
            let index = self.free;
            self.free = *next;
            self.entries[index as usize] = entry;
            index
        } else {
            let index = u32::try_from(self.entries.len())
                .ok()
                .filter(|i| *i != NONE)?;
            self.entries.push(entry);
            index
        };
        self.len += 1;
        Some(index)
    }

    /// Remove the timer at `index` and hand back its waker.
    ///
    /// The caller must drop the waker after releasing its lock: dropping the
    /// last reference to a task may run arbitrary code.
    pub(crate) fn remove(&mut self, index: u32) -> Option<Waker> {
        let slot = self.entries.get_mut(index as usize)?;
        if matches!(slot, Entry::Free { .. }) {
            return None;
        }
        let old = std::mem::replace(slot, Entry::Free { next: self.free });
        self.free = index;
        self.len -= 1;
        if self.len == 0 {
            // Forget the free list: the next inserts fill the vector from
            // the start again, which keeps drains scanning a short prefix.
            self.entries.clear();
            self.free = NONE;
        }
        match old {
            Entry::Waiting { waker, .. } => Some(waker),
            Entry::Free { .. } => None,
        }
    }

    /// Swap the waker at `index` for `waker` unless both wake the same task.
    ///
    /// Returns the replaced waker, to be dropped outside the lock.
    pub(crate) fn update(&mut self, index: u32, waker: &Waker) -> Option<Waker> {
        match self.entries.get_mut(index as usize) {
            Some(Entry::Waiting { waker: stored, .. }) if !stored.will_wake(waker) => {
                Some(std::mem::replace(stored, waker.clone()))
            }
            _ => None,
        }
    }

    /// Move the wakers of every timer due at or before `now` into `out`.
    pub(crate) fn drain_due(&mut self, now: u64, out: &mut Vec<Waker>) {
        if self.len == 0 {
            self.release_if_large();
            return;
        }
        for (index, slot) in self.entries.iter_mut().enumerate() {
            if matches!(slot, Entry::Waiting { tick, .. } if *tick <= now) {
                let next = self.free;
                if let Entry::Waiting { waker, .. } = std::mem::replace(slot, Entry::Free { next })
                {
                    out.push(waker);
                }
                // `index` fits in u32: insert never hands out a larger one.
                self.free = index as u32;
                self.len -= 1;
            }
        }
        if self.len == 0 {
            self.entries.clear();
            self.free = NONE;
            self.release_if_large();
        }
    }

    fn release_if_large(&mut self) {
        if self.entries.capacity() > KEEP_CAPACITY {
            self.entries = Vec::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_are_reused_after_removal() {
        let mut slab = Slab::new();
        let a = slab.insert(1, Waker::noop()).unwrap();
        let b = slab.insert(2, Waker::noop()).unwrap();
        assert_ne!(a, b);
        assert!(slab.remove(a).is_some());
        assert!(slab.remove(a).is_none(), "a second removal finds nothing");
        let c = slab.insert(3, Waker::noop()).unwrap();
        assert_eq!(c, a);
        assert_eq!(slab.len(), 2);
    }

    #[test]
    fn drain_keeps_later_rounds() {
        let mut slab = Slab::new();
        let early = slab.insert(5, Waker::noop()).unwrap();
        let late = slab.insert(5 + 1024, Waker::noop()).unwrap();
        let mut out = Vec::new();
        slab.drain_due(5, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(slab.len(), 1);
        assert!(slab.remove(early).is_none());
        assert!(slab.remove(late).is_some());
        assert_eq!(slab.len(), 0);
    }

    #[test]
    fn emptied_large_slab_frees_its_memory() {
        let mut slab = Slab::new();
        for _ in 0..=KEEP_CAPACITY {
            slab.insert(1, Waker::noop()).unwrap();
        }
        let mut out = Vec::new();
        slab.drain_due(1, &mut out);
        assert_eq!(out.len(), KEEP_CAPACITY + 1);
        assert_eq!(slab.entries.capacity(), 0);
    }
}
