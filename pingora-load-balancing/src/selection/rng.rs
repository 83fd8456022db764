//! A per-thread pseudo-random generator for the random selections.
//!
//! Selection needs speed and spread, not unpredictability, so a xorshift
//! generator in a thread-local is enough and takes no lock.

use std::cell::Cell;
use std::hash::{BuildHasher, RandomState};

thread_local! {
    static STATE: Cell<u64> = Cell::new(seed());
}

/// A seed that differs per thread and per process; never zero, which is
/// the one state xorshift cannot leave.
fn seed() -> u64 {
    RandomState::new().hash_one(std::thread::current().id()) | 1
}

/// The next pseudo-random number of this thread (xorshift64*).
pub(crate) fn next_u64() -> u64 {
    STATE.with(|state| {
        let mut x = state.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        state.set(x);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    })
}

/// A pseudo-random number in `0..bound`; `bound` must not be zero.
pub(crate) fn below(bound: u64) -> u64 {
    // Multiply-shift instead of `%`: unbiased enough for load spreading
    // and avoids a division.
    ((u128::from(next_u64()) * u128::from(bound)) >> 64) as u64
}
