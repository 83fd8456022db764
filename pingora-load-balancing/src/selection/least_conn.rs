//! Load-aware algorithms: power of two choices and least connections.
//!
//! Both read per-backend in-flight counts that callers maintain by holding
//! an [`InFlight`] guard per request (see
//! [`LoadBalancer::select_tracked`](crate::LoadBalancer::select_tracked)).
//! They suit backends whose request costs vary, where round robin would
//! keep feeding a backend that is stuck on slow requests.

use super::in_flight::{Counts, InFlight};
use super::rng;
use super::{BackendIter, BackendSelection};
use crate::Backend;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The backends of a set with their in-flight counts.
#[derive(Debug)]
struct Loaded {
    backends: Box<[Backend]>,
    counts: Arc<Counts>,
}

impl Loaded {
    fn new(backends: &BTreeSet<Backend>) -> Self {
        let backends: Box<[Backend]> = backends.iter().cloned().collect();
        let counts = Arc::new(Counts::new(backends.len()));
        Self { backends, counts }
    }

    /// Whether backend `a` is less loaded than `b`, relative to weight:
    /// `in_flight(a) / weight(a) < in_flight(b) / weight(b)`.
    fn lighter(&self, a: usize, b: usize) -> bool {
        let load = |i: usize| {
            let weight = self.backends.get(i).map_or(1, Backend::effective_weight);
            (self.counts.get(i) as u128, weight as u128)
        };
        let ((la, wa), (lb, wb)) = (load(a), load(b));
        la * wb < lb * wa
    }

    fn track(&self, backend: &Backend) -> InFlight {
        // Backends are sorted (they come from a BTreeSet).
        match self.backends.binary_search(backend) {
            Ok(index) => InFlight::track(&self.counts, index),
            Err(_) => InFlight::untracked(),
        }
    }
}

/// Power of two choices: draw two backends at random and take the one with
/// fewer requests in flight per unit of weight.
///
/// Nearly as good as scanning for the least loaded backend, at constant
/// cost, and it does not send a burst of requests to the same backend the
/// way a strict minimum does while counts catch up.
#[derive(Debug)]
pub struct PowerOfTwo {
    loaded: Loaded,
}

impl BackendSelection for PowerOfTwo {
    type Iter = PowerOfTwoIter;

    fn build(backends: &BTreeSet<Backend>) -> Self {
        Self {
            loaded: Loaded::new(backends),
        }
    }

    fn iter(self: &Arc<Self>, _key: &[u8]) -> PowerOfTwoIter {
        PowerOfTwoIter {
            selection: Arc::clone(self),
        }
    }

    fn track(self: &Arc<Self>, backend: &Backend) -> InFlight {
        self.loaded.track(backend)
    }
}

/// The iterator of [`PowerOfTwo`]: every item is a fresh pair draw.
#[derive(Debug)]
pub struct PowerOfTwoIter {
    selection: Arc<PowerOfTwo>,
}

impl BackendIter for PowerOfTwoIter {
    fn next(&mut self) -> Option<&Backend> {
        let loaded = &self.selection.loaded;
        let len = loaded.backends.len();
        if len == 0 {
            return None;
        }
        let a = rng::below(len as u64) as usize;
        // A second, different backend when there is one.
        let b = if len > 1 {
            (a + 1 + rng::below(len as u64 - 1) as usize) % len
        } else {
            a
        };
        let pick = if loaded.lighter(b, a) { b } else { a };
        loaded.backends.get(pick)
    }
}

/// Least connections: the backend with the fewest requests in flight per
/// unit of weight, ties going to a rotating start so equal backends share.
///
/// Each pick scans the set (`O(n)`): prefer [`PowerOfTwo`] for large sets.
/// Failover candidates are the backends after the least loaded one, in
/// order.
#[derive(Debug)]
pub struct LeastConnection {
    loaded: Loaded,
    rotate: AtomicUsize,
}

impl BackendSelection for LeastConnection {
    type Iter = LeastConnectionIter;

    fn build(backends: &BTreeSet<Backend>) -> Self {
        Self {
            loaded: Loaded::new(backends),
            rotate: AtomicUsize::new(0),
        }
    }

    fn iter(self: &Arc<Self>, _key: &[u8]) -> LeastConnectionIter {
        let start = self.rotate.fetch_add(1, Ordering::Relaxed);
        LeastConnectionIter {
            selection: Arc::clone(self),
            start,
            first: None,
            given: 0,
        }
    }

    fn track(self: &Arc<Self>, backend: &Backend) -> InFlight {
        self.loaded.track(backend)
    }
}

/// The iterator of [`LeastConnection`].
#[derive(Debug)]
pub struct LeastConnectionIter {
    selection: Arc<LeastConnection>,
    start: usize,
    /// The least loaded backend, once found, and how many backends were
    /// handed out.
    first: Option<usize>,
    given: usize,
}

impl BackendIter for LeastConnectionIter {
    fn next(&mut self) -> Option<&Backend> {
        let loaded = &self.selection.loaded;
        let len = loaded.backends.len();
        if self.given >= len {
            return None;
        }
        let first = match self.first {
            Some(first) => first,
            None => {
                // Scan from a rotating start so that ties are shared.
                let least = (0..len)
                    .map(|k| (self.start + k) % len)
                    .reduce(|best, i| if loaded.lighter(i, best) { i } else { best })?;
                self.first = Some(least);
                least
            }
        };
        // Failover is rare: walk on from the least loaded, in order,
        // instead of ranking the whole set again.
        let pick = (first + self.given) % len;
        self.given += 1;
        loaded.backends.get(pick)
    }
}
