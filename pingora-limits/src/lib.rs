//! Counting structures for rate limiting.
//!
//! This crate will own lock-free counters that a proxy consults on every
//! request: a rate over a sliding window, a count-min style estimator that
//! tracks very many keys in fixed memory, and in-flight counters.
//!
//! It is **not** a policy engine: it counts, and the caller decides what to
//! do with the counts (answer 429, pick another backend ...).
//!
//! Status: the crate is reserved; its content arrives with the rate-limiting
//! work.
