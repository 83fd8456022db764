//! Helpers shared by the TLS and pool integration tests.

// Each test file uses a different subset of these helpers.
#![allow(dead_code)]

pub(crate) mod certs;
pub(crate) mod origin;
pub(crate) mod tls;
