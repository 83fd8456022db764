//! Helpers shared by the TLS, pool and interop integration tests.

// Each test file uses a different subset of these helpers.
#![allow(dead_code)]

pub(crate) mod certs;
#[path = "../../../test-support/tools.rs"]
pub(crate) mod interop;
pub(crate) mod origin;
pub(crate) mod tls;
