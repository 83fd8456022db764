//! Operations in flight per key, each held by a guard.

use crate::estimator::Estimator;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

/// The default number of hashes of an [`Inflight`]'s estimator.
const HASHES: usize = 4;
/// The default number of slots of an [`Inflight`]'s estimator.
const SLOTS: usize = 8192;

/// Concurrent operations per key: [`incr`](Self::incr) counts one in and
/// hands back a [`Guard`] that counts it out when dropped.
///
/// The counts live in an [`Estimator`], so they are never below the truth
/// (see its [error bound](Estimator#error-bound); every key's count stays
/// `>= 0` here, since each guard takes back exactly what it added).
///
/// # Examples
///
/// ```
/// use pingora_limits::inflight::Inflight;
///
/// let inflight = Inflight::new();
/// let (first, count) = inflight.incr("backend-1", 1);
/// assert_eq!(count, 1);
/// let (second, count) = inflight.incr("backend-1", 1);
/// assert_eq!(count, 2);
/// drop(first);
/// assert_eq!(second.get(), 1);
/// ```
#[derive(Debug, Clone)]
pub struct Inflight {
    counts: Arc<Estimator>,
    hasher: RandomState,
}

impl Default for Inflight {
    fn default() -> Self {
        Self::new()
    }
}

impl Inflight {
    /// An empty counter with an estimator of 4 hashes and 8192 slots.
    pub fn new() -> Self {
        Self::new_with_estimator_config(HASHES, SLOTS)
    }

    /// An empty counter with an estimator of `hashes` rows of `slots`
    /// counters (see [`Estimator::new`]).
    pub fn new_with_estimator_config(hashes: usize, slots: usize) -> Self {
        Self {
            counts: Arc::new(Estimator::new(hashes, slots)),
            hasher: RandomState::new(),
        }
    }

    /// Count `value` more operations of `key` in flight: a guard that
    /// counts them out when dropped, and the key's count after the add.
    pub fn incr(&self, key: impl Hash, value: isize) -> (Guard, isize) {
        // The guard keeps the key's hash, not the key: it needs no
        // lifetime or clone of it.
        let id = self.hasher.hash_one(key);
        let count = self.counts.incr(id, value);
        let guard = Guard {
            counts: Arc::clone(&self.counts),
            id,
            value,
        };
        (guard, count)
    }

    /// The count of `key` in flight now.
    pub fn get(&self, key: impl Hash) -> isize {
        self.counts.get(self.hasher.hash_one(key))
    }
}

/// Operations counted in by [`Inflight::incr`]; dropping it counts them
/// out.
#[derive(Debug)]
#[must_use = "dropping the guard counts the operation out at once"]
pub struct Guard {
    counts: Arc<Estimator>,
    id: u64,
    value: isize,
}

impl Guard {
    /// The count of this guard's key in flight now, this guard included.
    pub fn get(&self) -> isize {
        self.counts.get(self.id)
    }

    /// Count `value` more operations in under this guard (or fewer, when
    /// negative); they are counted out with it. The key's count after it.
    pub fn incr(&mut self, value: isize) -> isize {
        self.value = self.value.wrapping_add(value);
        self.counts.incr(self.id, value)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.counts.decr(self.id, self.value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards_count_out_what_they_counted_in() {
        let inflight = Inflight::new();
        let (mut a, _) = inflight.incr("k", 2);
        let (b, count) = inflight.incr("k", 1);
        assert_eq!(count, 3);
        assert_eq!(a.incr(4), 7);
        drop(a);
        assert_eq!(b.get(), 1);
        assert_eq!(inflight.get("k"), 1);
        drop(b);
        assert_eq!(inflight.get("k"), 0);
    }

    #[test]
    fn clones_share_counts() {
        let inflight = Inflight::new();
        let other = inflight.clone();
        let (_guard, _) = inflight.incr(42u64, 1);
        assert_eq!(other.get(42u64), 1);
    }

    #[test]
    fn guards_dropped_on_other_threads_count_out() {
        let inflight = Inflight::new();
        let guards: Vec<_> = (0..100).map(|_| inflight.incr("k", 1).0).collect();
        assert_eq!(inflight.get("k"), 100);
        std::thread::spawn(move || drop(guards)).join().unwrap();
        assert_eq!(inflight.get("k"), 0);
    }
}
