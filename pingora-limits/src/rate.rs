//! Events per key over a sliding window, from two estimators.

use crate::estimator::Estimator;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The default number of hashes of a [`Rate`]'s estimators.
const HASHES: usize = 4;
/// The default number of slots of a [`Rate`]'s estimators.
const SLOTS: usize = 1024;

/// Events per key over a sliding window of one interval.
///
/// Time is cut into intervals of a fixed length, counted from the moment
/// the `Rate` was made. Two [`Estimator`]s take turns: one counts the
/// current interval, the other keeps the previous one's counts; when an
/// interval ends the older one is cleared and becomes the current one.
///
/// # The sliding window
///
/// With `interval` the interval length, `f` the fraction of the current
/// interval already gone (`0 <= f < 1`), `current` and `previous` the
/// key's counts in the current and the previous interval:
///
/// ```text
/// estimate(key) = previous * (1 - f) + current     (events in the last interval)
/// rate(key)     = estimate(key) / interval         (events per second)
/// ```
///
/// That is the count of a window of one interval ending now, assuming the
/// previous interval's events were spread evenly over it. An interval with
/// no events at all reads as zero, and so does any interval before it.
///
/// Counts come from an [`Estimator`], so they are never below the truth
/// and seldom much above it (see its [error bound](Estimator#error-bound)).
/// Events observed in the very instant an interval ends may be lost with
/// the cleared estimator, which only lowers an estimate.
///
/// Lock-free, like the estimators it is made of.
///
/// # Examples
///
/// ```
/// use pingora_limits::rate::Rate;
/// use std::time::Duration;
///
/// let rate = Rate::new(Duration::from_secs(1));
/// assert_eq!(rate.observe("client-a", 1), 1);
/// assert_eq!(rate.observe("client-a", 1), 2);
/// // Two events so far, all in the current interval.
/// assert_eq!(rate.estimate("client-a"), 2.0);
/// assert_eq!(rate.rate("client-a"), 2.0);
/// assert_eq!(rate.rate("client-b"), 0.0);
/// ```
#[derive(Debug)]
pub struct Rate {
    counts: [Estimator; 2],
    /// The index (since `start`) of the interval `counts[current % 2]`
    /// counts; `counts[(current + 1) % 2]` counts the one before it.
    current: AtomicU64,
    start: Instant,
    interval: Duration,
}

impl Rate {
    /// A rate over `interval` (taken as 1 ms when shorter), with estimators
    /// of 4 hashes and 1024 slots.
    pub fn new(interval: Duration) -> Self {
        Self::new_with_estimator_config(interval, HASHES, SLOTS)
    }

    /// A rate over `interval` with estimators of `hashes` rows of `slots`
    /// counters (see [`Estimator::new`]).
    pub fn new_with_estimator_config(interval: Duration, hashes: usize, slots: usize) -> Self {
        Self {
            counts: [Estimator::new(hashes, slots), Estimator::new(hashes, slots)],
            current: AtomicU64::new(0),
            start: Instant::now(),
            interval: interval.max(Duration::from_millis(1)),
        }
    }

    /// The interval length.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Count `events` more for `key` now; the key's count in the current
    /// interval after them.
    pub fn observe(&self, key: impl Hash, events: isize) -> isize {
        self.observe_at(key, events, Instant::now())
    }

    /// [`observe`](Self::observe) at time `now` instead of the clock's.
    ///
    /// `now` should not go backwards between calls: events at a time
    /// before the current interval are counted in the current one.
    pub fn observe_at(&self, key: impl Hash, events: isize, now: Instant) -> isize {
        let index = self.rotate(self.index(now));
        self.counts[slot(index)].incr(key, events)
    }

    /// The events per second of `key` over the sliding window ending now
    /// (see [the formula](Self#the-sliding-window)).
    pub fn rate(&self, key: impl Hash) -> f64 {
        self.rate_at(key, Instant::now())
    }

    /// [`rate`](Self::rate) at time `now`.
    pub fn rate_at(&self, key: impl Hash, now: Instant) -> f64 {
        self.estimate_at(key, now) / self.interval.as_secs_f64()
    }

    /// The events of `key` in the sliding window of one interval ending
    /// now: `previous * (1 - f) + current` (see
    /// [the formula](Self#the-sliding-window)). A limiter of `N` events
    /// per interval compares this with `N`.
    pub fn estimate(&self, key: impl Hash) -> f64 {
        self.estimate_at(key, Instant::now())
    }

    /// [`estimate`](Self::estimate) at time `now`.
    pub fn estimate_at(&self, key: impl Hash, now: Instant) -> f64 {
        let index = self.index(now);
        let current = self.current.load(Ordering::Acquire);
        // What the two estimators hold, seen from `index`: nothing happened
        // in an interval the `Rate` has not rotated to.
        let (current_count, previous_count) = match index.saturating_sub(current) {
            0 => (
                self.counts[slot(current)].get(&key),
                self.counts[slot(current + 1)].get(&key),
            ),
            1 => (0, self.counts[slot(current)].get(&key)),
            _ => (0, 0),
        };
        let gone = self.fraction_gone(now);
        previous_count as f64 * (1.0 - gone) + current_count as f64
    }

    /// The time left until the current interval ends.
    pub fn time_left(&self) -> Duration {
        self.time_left_at(Instant::now())
    }

    /// [`time_left`](Self::time_left) at time `now`.
    pub fn time_left_at(&self, now: Instant) -> Duration {
        let since = now.saturating_duration_since(self.start);
        let interval = self.interval.as_nanos();
        let left = interval - since.as_nanos() % interval;
        Duration::from_nanos(u64::try_from(left).unwrap_or(u64::MAX))
    }

    /// The index of the interval `now` falls in.
    fn index(&self, now: Instant) -> u64 {
        let since = now.saturating_duration_since(self.start).as_nanos();
        u64::try_from(since / self.interval.as_nanos()).unwrap_or(u64::MAX)
    }

    /// How much of its interval has gone at `now`, in `[0, 1)`.
    fn fraction_gone(&self, now: Instant) -> f64 {
        let since = now.saturating_duration_since(self.start).as_nanos();
        let interval = self.interval.as_nanos();
        (since % interval) as f64 / interval as f64
    }

    /// Move the current interval forward to `index` if it is behind;
    /// the current interval's index afterwards.
    fn rotate(&self, index: u64) -> u64 {
        let mut current = self.current.load(Ordering::Acquire);
        while index > current {
            match self
                .current
                .compare_exchange(current, index, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    // We moved it: the estimator that now counts `index`
                    // held `current - 1` (or older); clear it. When more
                    // than one interval went by, the other one is stale
                    // too.
                    self.counts[slot(index)].reset();
                    if index - current > 1 {
                        self.counts[slot(index + 1)].reset();
                    }
                    return index;
                }
                Err(seen) => current = seen,
            }
        }
        current
    }
}

/// The estimator of interval `index`.
fn slot(index: u64) -> usize {
    (index % 2) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn the_previous_interval_fades_out_linearly() {
        let rate = Rate::new(SECOND);
        let t0 = rate.start;
        for _ in 0..10 {
            rate.observe_at("k", 1, t0);
        }
        assert_eq!(rate.estimate_at("k", t0), 10.0);
        // A quarter into the next interval: 10 * 3/4 of the previous one.
        let later = t0 + SECOND + SECOND / 4;
        assert_eq!(rate.estimate_at("k", later), 7.5);
        assert_eq!(rate.observe_at("k", 2, later), 2);
        assert_eq!(rate.estimate_at("k", later), 9.5);
        assert_eq!(rate.rate_at("k", later), 9.5);
        // Half into it: 10 * 1/2 + 2.
        assert_eq!(rate.estimate_at("k", t0 + SECOND + SECOND / 2), 7.0);
    }

    #[test]
    fn intervals_without_events_read_as_zero() {
        let rate = Rate::new(SECOND);
        let t0 = rate.start;
        rate.observe_at("k", 4, t0);
        // Two intervals later, nothing rotated, nothing counts.
        assert_eq!(rate.estimate_at("k", t0 + 2 * SECOND), 0.0);
        // Observing there clears both estimators.
        assert_eq!(rate.observe_at("k", 1, t0 + 2 * SECOND), 1);
        assert_eq!(rate.estimate_at("k", t0 + 3 * SECOND), 1.0);
        assert_eq!(rate.observe_at("k", 1, t0 + 5 * SECOND), 1);
        assert_eq!(rate.estimate_at("k", t0 + 5 * SECOND), 1.0);
    }

    #[test]
    fn rate_is_per_second() {
        let rate = Rate::new(Duration::from_millis(500));
        let t0 = rate.start;
        rate.observe_at("k", 5, t0);
        assert_eq!(rate.rate_at("k", t0), 10.0);
    }

    #[test]
    fn time_left_counts_down_the_interval() {
        let rate = Rate::new(SECOND);
        let t0 = rate.start;
        assert_eq!(rate.time_left_at(t0), SECOND);
        assert_eq!(rate.time_left_at(t0 + SECOND / 4), SECOND * 3 / 4);
        assert_eq!(rate.time_left_at(t0 + SECOND), SECOND);
    }
}
