//! The estimator's error bound (see `Estimator`'s docs), checked against
//! exact counts: never an underestimate, and the share of keys over
//! `e * N / w` no more than `e^-d`.

#![allow(clippy::unwrap_used)]

use pingora_limits::estimator::Estimator;
use proptest::prelude::*;
use std::collections::HashMap;

/// A small seeded generator (xorshift64*), so the key streams repeat.
struct Xorshift(u64);

impl Xorshift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Keys `0..n` drawn with probability proportional to `1 / (rank + 1)^s`
/// (Zipf), by inverting the cumulative distribution.
struct Zipf {
    cumulative: Vec<f64>,
}

impl Zipf {
    fn new(n: usize, s: f64) -> Self {
        let mut total = 0.0;
        let mut cumulative: Vec<f64> = (0..n)
            .map(|rank| {
                total += 1.0 / ((rank + 1) as f64).powf(s);
                total
            })
            .collect();
        for c in &mut cumulative {
            *c /= total;
        }
        Self { cumulative }
    }

    fn sample(&self, rng: &mut Xorshift) -> usize {
        let u = rng.unit();
        self.cumulative
            .partition_point(|&c| c < u)
            .min(self.cumulative.len() - 1)
    }
}

/// Feed `events` (key, count) to an estimator of `d` x `w`; check the
/// bound on every key; the largest error seen.
fn check_bound(events: impl Iterator<Item = (u64, isize)>, d: usize, w: usize) -> isize {
    let estimator = Estimator::new(d, w);
    let mut exact: HashMap<u64, isize> = HashMap::new();
    let mut total = 0isize;
    for (key, count) in events {
        let estimate = estimator.incr(key, count);
        let truth = exact.entry(key).or_default();
        *truth += count;
        total += count;
        assert!(estimate >= *truth, "incr returned {estimate} < {truth}");
    }
    let bound = std::f64::consts::E * total as f64 / w as f64;
    let mut over = 0usize;
    let mut worst = 0;
    for (&key, &truth) in &exact {
        let estimate = estimator.get(key);
        assert!(estimate >= truth, "key {key}: {estimate} < {truth}");
        let error = estimate - truth;
        worst = worst.max(error);
        if error as f64 > bound {
            over += 1;
        }
    }
    let allowed = (-(d as f64)).exp() * exact.len() as f64;
    assert!(
        over as f64 <= allowed,
        "{over} of {} keys over e*N/w = {bound:.1} (at most {allowed:.1} allowed)",
        exact.len()
    );
    worst
}

#[test]
fn uniform_keys_stay_within_the_bound() {
    let mut rng = Xorshift(0x9e37_79b9_7f4a_7c15);
    let events = (0..200_000).map(|_| (rng.next() % 5_000, 1));
    let worst = check_bound(events, 4, 1024);
    // N = 200k, w = 1024: the bound is e*N/w = 531.
    assert!(worst <= 531, "worst error {worst}");
}

#[test]
fn zipf_keys_stay_within_the_bound() {
    let zipf = Zipf::new(20_000, 1.1);
    let mut rng = Xorshift(0xdead_beef_cafe_f00d);
    let events: Vec<_> = (0..200_000)
        .map(|_| (zipf.sample(&mut rng) as u64, 1))
        .collect();
    // Skewed indeed: the first key takes a large share.
    let head = events.iter().filter(|(k, _)| *k == 0).count();
    assert!(head > 20_000, "{head}");
    check_bound(events.into_iter(), 4, 1024);
}

#[test]
fn small_sketches_still_never_undercount() {
    let zipf = Zipf::new(1_000, 1.3);
    let mut rng = Xorshift(7);
    let events: Vec<_> = (0..50_000)
        .map(|_| (zipf.sample(&mut rng) as u64, 2))
        .collect();
    check_bound(events.into_iter(), 2, 64);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any sequence of adds and matched removes: never below the truth.
    #[test]
    fn never_an_underestimate(
        adds in proptest::collection::vec((0u16..300, 1isize..20), 1..400),
        hashes in 1usize..5,
        slots in 1usize..64,
    ) {
        let estimator = Estimator::new(hashes, slots);
        let mut exact: HashMap<u16, isize> = HashMap::new();
        for &(key, n) in &adds {
            estimator.incr(key, n);
            *exact.entry(key).or_default() += n;
        }
        // Take back half of every other add.
        for &(key, n) in adds.iter().step_by(2) {
            estimator.decr(key, n / 2);
            *exact.get_mut(&key).unwrap() -= n / 2;
        }
        for (&key, &truth) in &exact {
            prop_assert!(estimator.get(key) >= truth);
        }
    }
}
