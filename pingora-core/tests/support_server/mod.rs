//! Support for the server process tests: the server the test binary runs
//! when it re-executes itself, and helpers to drive it from the tests.

pub(crate) mod child;
pub(crate) mod client;
pub(crate) mod process;
