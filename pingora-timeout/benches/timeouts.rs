//! Placeholder bench, replaced by the timeout benchmark.

fn main() {}
