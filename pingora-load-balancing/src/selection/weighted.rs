//! Weight-proportional algorithms: smooth round robin, random and key hash.

use super::fnv::fnv1a64;
use super::rng;
use super::{BackendIter, BackendSelection, Failover, Weighted};
use crate::Backend;
use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeSet, BinaryHeap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};

/// The longest round-robin cycle kept, in slots (4 bytes each). Sets whose
/// reduced weights add up to more are scaled down to about this many.
const MAX_CYCLE: u64 = 1 << 20;

/// Smooth weighted round robin.
///
/// Over every cycle of `sum(weight)` selections (weights divided by their
/// greatest common divisor) each backend is picked exactly `weight` times,
/// and its turns are spread evenly over the cycle rather than bunched, so
/// `{a: 5, b: 1, c: 1}` runs `a a a b c a a`, not `a a a a a b c`.
///
/// The cycle is computed once per backend set; a request only bumps one
/// atomic counter. Failover candidates are the other backends, each once,
/// unweighted, from an offset that varies per request.
#[derive(Debug)]
pub struct RoundRobin {
    weighted: Arc<Weighted>,
    cycle: Box<[u32]>,
    next: AtomicUsize,
}

impl BackendSelection for RoundRobin {
    type Iter = WeightedIter;

    fn build(backends: &BTreeSet<Backend>) -> Self {
        let weighted = Arc::new(Weighted::new(backends));
        let cycle = smooth_cycle(weighted.backends());
        Self {
            weighted,
            cycle,
            next: AtomicUsize::new(0),
        }
    }

    fn iter(self: &Arc<Self>, _key: &[u8]) -> WeightedIter {
        // Each request takes one slot of the cycle.
        let slot = self.next.fetch_add(1, AtomicOrdering::Relaxed);
        let first = self.cycle.get(slot % self.cycle.len().max(1));
        let first = first.map(|&index| index as usize);
        let len = self.weighted.backends().len();
        WeightedIter {
            weighted: Arc::clone(&self.weighted),
            first,
            // The slot number, scrambled, spreads failover (see Failover).
            failover: Failover::new(first.unwrap_or(0), mix(slot as u64), len),
            started: false,
        }
    }
}

/// A cheap bit mixer (the splitmix64 finaliser), so that consecutive slot
/// numbers give unrelated failover offsets.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// One backend's next turn in [`smooth_cycle`]: due at `num / den` of the
/// cycle.
#[derive(PartialEq, Eq)]
struct Turn {
    num: u64,
    den: u64,
    index: u32,
}

impl Ord for Turn {
    fn cmp(&self, other: &Self) -> Ordering {
        // Compare num/den without floats; ties go to the lower index so the
        // cycle is deterministic.
        let lhs = u128::from(self.num) * u128::from(other.den);
        let rhs = u128::from(other.num) * u128::from(self.den);
        lhs.cmp(&rhs).then(self.index.cmp(&other.index))
    }
}

impl PartialOrd for Turn {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The round-robin cycle: backend indexes in the order they are served.
///
/// Backend `i` of weight `w` owns the `w` slots centred at
/// `(2k + 1) / 2w` of the cycle (`k < w`); merging every backend's slots by
/// time (earliest deadline first) spreads each backend's turns evenly.
fn smooth_cycle(backends: &[Backend]) -> Box<[u32]> {
    let weights = reduced_weights(backends);
    let total: u64 = weights.iter().sum();
    let mut heap: BinaryHeap<Reverse<Turn>> = weights
        .iter()
        .enumerate()
        .map(|(index, &w)| {
            Reverse(Turn {
                num: 1,
                den: 2 * w,
                index: index as u32,
            })
        })
        .collect();
    let mut cycle = Vec::with_capacity(total as usize);
    while let Some(Reverse(turn)) = heap.pop() {
        cycle.push(turn.index);
        // The turn after num/den is (num + 2)/den, while it stays in the cycle.
        if turn.num + 2 < turn.den {
            heap.push(Reverse(Turn {
                num: turn.num + 2,
                ..turn
            }));
        }
    }
    cycle.into_boxed_slice()
}

/// Effective weights divided by their gcd, and scaled down (keeping every
/// backend at least 1) when the cycle would pass [`MAX_CYCLE`] slots.
fn reduced_weights(backends: &[Backend]) -> Vec<u64> {
    let weights: Vec<u64> = backends
        .iter()
        .map(|b| b.effective_weight() as u64)
        .collect();
    let divisor = weights.iter().copied().reduce(gcd).unwrap_or(1).max(1);
    let mut weights: Vec<u64> = weights.into_iter().map(|w| w / divisor).collect();
    let total: u64 = weights.iter().fold(0u64, |a, &w| a.saturating_add(w));
    if total > MAX_CYCLE {
        for w in &mut weights {
            let scaled = u128::from(*w) * u128::from(MAX_CYCLE) / u128::from(total);
            *w = (scaled as u64).max(1);
        }
    }
    weights
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Weighted random: each request's first pick lands on a backend with
/// probability `weight / sum(weight)`, independently of other requests.
/// Failover candidates are the other backends, each once.
#[derive(Debug)]
pub struct Random {
    weighted: Arc<Weighted>,
}

impl BackendSelection for Random {
    type Iter = WeightedIter;

    fn build(backends: &BTreeSet<Backend>) -> Self {
        Self {
            weighted: Arc::new(Weighted::new(backends)),
        }
    }

    fn iter(self: &Arc<Self>, _key: &[u8]) -> WeightedIter {
        let weighted = &self.weighted;
        let first = weighted.index_of(rng::below(weighted.total.max(1)));
        let len = weighted.backends().len();
        WeightedIter {
            weighted: Arc::clone(&self.weighted),
            first,
            failover: Failover::new(first.unwrap_or(0), rng::next_u64(), len),
            started: false,
        }
    }
}

/// Hash of the key: the FNV-1a hash of the key picks a backend, weighted,
/// so the same key goes to the same backend while the set is unchanged.
///
/// Unlike [`Consistent`](super::Consistent), most keys move when the set
/// changes; in exchange a pick costs one hash and a binary search.
/// Failover candidates are the following backends, in order.
#[derive(Debug)]
pub struct FNVHash {
    weighted: Arc<Weighted>,
}

impl BackendSelection for FNVHash {
    type Iter = WeightedIter;

    fn build(backends: &BTreeSet<Backend>) -> Self {
        Self {
            weighted: Arc::new(Weighted::new(backends)),
        }
    }

    fn iter(self: &Arc<Self>, key: &[u8]) -> WeightedIter {
        let first = self.weighted.index_of(fnv1a64(key));
        let len = self.weighted.backends().len();
        WeightedIter {
            weighted: Arc::clone(&self.weighted),
            first,
            // Offset 0: a key fails over to the same backends every time.
            failover: Failover::new(first.unwrap_or(0), 0, len),
            started: false,
        }
    }
}

/// The iterator of [`RoundRobin`], [`Random`] and [`FNVHash`]: the first
/// pick the algorithm made, then every other backend once, in the order
/// its [`Failover`] gives.
#[derive(Debug)]
pub struct WeightedIter {
    weighted: Arc<Weighted>,
    first: Option<usize>,
    failover: Failover,
    started: bool,
}

impl BackendIter for WeightedIter {
    fn next(&mut self) -> Option<&Backend> {
        let index = if self.started {
            self.failover.next()?
        } else {
            self.started = true;
            self.first?
        };
        self.weighted.backends().get(index)
    }
}

#[cfg(test)]
mod tests;
