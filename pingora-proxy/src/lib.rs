//! The HTTP proxy of pingora-rs.
//!
//! This crate will own the `ProxyHttp` trait, the callbacks a user implements
//! to decide where each request goes and how it is changed on the way, and
//! the proxy state machine that drives a request through those callbacks for
//! HTTP/1 and HTTP/2 on both sides: request and response filters, body
//! streaming with backpressure, upgrades and websockets, gRPC trailers,
//! retries and the cache phases.
//!
//! It is **not** a connection or protocol library: listeners, sessions,
//! connectors and TLS live in `pingora-core`.
//!
//! Status: the crate is reserved; its content arrives with the proxy work.
