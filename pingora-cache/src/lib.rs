//! The HTTP cache of pingora-rs.
//!
//! This crate will own the cache state machine that the proxy drives,
//! cacheability rules (RFC 9111), the storage trait and an in-memory storage,
//! eviction and admission, a cache lock against stampedes, and purge.
//!
//! It is **not** a general key-value cache: entries are HTTP responses with
//! their metadata.
//!
//! Status: the crate is reserved; its content arrives with the cache work.
