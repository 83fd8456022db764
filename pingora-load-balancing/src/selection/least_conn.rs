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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn set(n: usize) -> BTreeSet<Backend> {
        (1..=n)
            .map(|i| Backend::new(&format!("10.0.0.{i}:80")).unwrap())
            .collect()
    }

    #[test]
    fn guards_count_and_release() {
        let selection = Arc::new(LeastConnection::build(&set(3)));
        let a = selection.iter(b"").next().unwrap().clone();
        let guard = selection.track(&a);
        assert!(guard.is_tracked());
        // With one request on `a`, the other two are lighter.
        for _ in 0..6 {
            assert_ne!(selection.iter(b"").next().unwrap(), &a);
        }
        drop(guard);
        let index = selection.loaded.backends.binary_search(&a).unwrap();
        assert_eq!(selection.loaded.counts.get(index), 0);
        // A backend from another set is not tracked.
        let stranger = Backend::new("192.0.2.1:1").unwrap();
        assert!(!selection.track(&stranger).is_tracked());
    }

    #[test]
    fn least_connection_shares_ties_and_fails_over_in_order() {
        let selection = Arc::new(LeastConnection::build(&set(3)));
        let firsts: BTreeSet<Backend> = (0..3)
            .map(|_| selection.iter(b"").next().unwrap().clone())
            .collect();
        assert_eq!(firsts.len(), 3, "idle backends take turns");
        let mut iter = selection.iter(b"");
        let mut seen = BTreeSet::new();
        while let Some(b) = iter.next() {
            seen.insert(b.clone());
        }
        assert_eq!(seen.len(), 3);
    }

    #[test]
    fn power_of_two_avoids_the_loaded_backend() {
        let selection = Arc::new(PowerOfTwo::build(&set(2)));
        let busy = Backend::new("10.0.0.1:80").unwrap();
        let _guards: Vec<InFlight> = (0..5).map(|_| selection.track(&busy)).collect();
        // With two backends the pair is always both: the idle one wins.
        for _ in 0..100 {
            assert_ne!(selection.iter(b"").next().unwrap(), &busy);
        }
    }

    #[test]
    fn power_of_two_balances_held_requests() {
        // Hold every request: the in-flight counts should stay close.
        let selection = Arc::new(PowerOfTwo::build(&set(10)));
        let mut guards = Vec::new();
        for _ in 0..10_000 {
            let b = selection.iter(b"").next().unwrap().clone();
            guards.push(selection.track(&b));
        }
        let loads: Vec<usize> = (0..10).map(|i| selection.loaded.counts.get(i)).collect();
        let (min, max) = (loads.iter().min().unwrap(), loads.iter().max().unwrap());
        // Power of two choices keeps the gap at O(log log n): a few, but
        // random, and 5 was seen once in CI. A uniform random pick leaves
        // a gap of dozens at this size (its spread is about sqrt(1000)),
        // so 10 still tells the two apart without flaking.
        assert!(max - min <= 10, "{loads:?}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// The least-connection pick has the smallest load per weight.
        #[test]
        fn least_connection_picks_a_minimum(
            loads in prop::collection::vec(0usize..6, 1..8),
            weights in prop::collection::vec(1usize..4, 8),
        ) {
            let backends: BTreeSet<Backend> = loads.iter().enumerate()
                .map(|(i, _)| Backend::new_with_weight(&format!("10.0.0.{}:80", i + 1), weights[i]).unwrap())
                .collect();
            let selection = Arc::new(LeastConnection::build(&backends));
            let mut guards = Vec::new();
            for (b, &load) in selection.loaded.backends.iter().zip(&loads) {
                for _ in 0..load {
                    guards.push(selection.track(b));
                }
            }
            let mut iter = selection.iter(b"");
            let pick = iter.next().unwrap();
            let i = selection.loaded.backends.binary_search(pick).unwrap();
            for j in 0..loads.len() {
                prop_assert!(!selection.loaded.lighter(j, i));
            }
        }
    }
}
