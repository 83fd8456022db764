//! HTTP sessions. [`v1`] holds HTTP/1.0 and HTTP/1.1 for both sides.

pub mod v1;
