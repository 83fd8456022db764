//! The frequency estimator: a count-min sketch of small saturating
//! counters that halves itself periodically, so that it forgets old
//! popularity (TinyLFU's "reset").

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

/// Rows of the sketch: each key has one counter per row and its estimate
/// is the smallest, so a collision in one row alone does not inflate it.
const ROWS: usize = 4;
/// Counters saturate here (4 bits' worth, as in TinyLFU): enough to tell
/// hot from lukewarm, and aging keeps the range in use.
const MAX_COUNT: u8 = 15;
/// Seeds that make the rows' indices independent.
const SEEDS: [u64; ROWS] = [
    0x9e37_79b9_7f4a_7c15,
    0xc2b2_ae3d_27d4_eb4f,
    0x1656_67b1_9e37_79f9,
    0x27d4_eb2f_1656_67c5,
];

/// A count-min sketch with periodic halving.
///
/// Counters are relaxed atomics: two threads counting the same key at once
/// may lose one increment, which an estimate tolerates, and nothing ever
/// takes a lock.
pub(crate) struct Sketch {
    counters: Box<[AtomicU8]>,
    /// Row width minus one (the width is a power of two).
    mask: usize,
    /// Increments since the last halving.
    additions: AtomicUsize,
    /// Increments between halvings.
    sample: usize,
}

/// A 64-bit finalizer (from `splitmix64`): spreads the bits of `x`.
fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl Sketch {
    /// A sketch sized for about `items` distinct hot keys.
    pub(crate) fn new(items: usize) -> Self {
        let width = items
            .saturating_mul(2)
            .clamp(1024, 1 << 26)
            .next_power_of_two();
        Self {
            counters: (0..width * ROWS).map(|_| AtomicU8::new(0)).collect(),
            mask: width - 1,
            additions: AtomicUsize::new(0),
            // TinyLFU's sample: ten accesses per cached item between resets.
            sample: items.saturating_mul(10).max(640),
        }
    }

    fn index(&self, row: usize, key: u64) -> usize {
        row * (self.mask + 1) + (mix(key ^ SEEDS[row]) as usize & self.mask)
    }

    /// Count one access to `key`; returns its new estimate.
    pub(crate) fn incr(&self, key: u64) -> u8 {
        let mut min = u8::MAX;
        for row in 0..ROWS {
            let c = &self.counters[self.index(row, key)];
            let v = c.load(Ordering::Relaxed);
            // Load then store, not fetch_add: a counter must saturate, and
            // a lost race only loses one count.
            let v = if v < MAX_COUNT {
                c.store(v + 1, Ordering::Relaxed);
                v + 1
            } else {
                v
            };
            min = min.min(v);
        }
        if self.additions.fetch_add(1, Ordering::Relaxed) + 1 == self.sample {
            self.age();
        }
        min
    }

    /// The estimate of `key`'s accesses in the recent past.
    pub(crate) fn get(&self, key: u64) -> u8 {
        (0..ROWS)
            .map(|row| self.counters[self.index(row, key)].load(Ordering::Relaxed))
            .min()
            .unwrap_or(0)
    }

    /// Halve every counter: recent accesses now weigh twice the older.
    fn age(&self) {
        self.additions.fetch_sub(self.sample, Ordering::Relaxed);
        for c in self.counters.iter() {
            let v = c.load(Ordering::Relaxed);
            c.store(v / 2, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_saturate_and_age() {
        let s = Sketch::new(100);
        assert_eq!(s.get(7), 0);
        assert_eq!(s.incr(7), 1);
        assert_eq!(s.incr(7), 2);
        for _ in 0..20 {
            s.incr(7);
        }
        assert_eq!(s.get(7), MAX_COUNT);
        assert_eq!(s.get(8), 0);
        // Fill the sample with other keys: key 7's count halves.
        for k in 100..100 + s.sample as u64 {
            s.incr(k);
            if s.get(7) < MAX_COUNT {
                break;
            }
        }
        assert_eq!(s.get(7), MAX_COUNT / 2);
    }

    #[test]
    fn hot_keys_estimate_above_cold() {
        let s = Sketch::new(1000);
        for round in 0..5u64 {
            for k in 0..10 {
                s.incr(k);
            }
            for k in 0..500 {
                s.incr(1000 + round * 500 + k);
            }
        }
        let hot = (0..10).map(|k| s.get(k)).min().unwrap_or(0);
        let cold = (0..100).map(|k| s.get(1000 + k)).max().unwrap_or(0);
        assert!(hot >= 5 && cold <= 2, "hot {hot} cold {cold}");
    }
}
