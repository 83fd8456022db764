//! Placeholder until the storage exists.

fn main() {}
