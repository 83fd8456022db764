//! Everything below the proxy logic of pingora-rs.
//!
//! - [`server`]: the `Server` that runs services, its config file and CLI,
//!   signals, daemonizing and zero-downtime upgrade.
//! - [`apps`]: what a listening service runs on each accepted connection
//!   ([`apps::ServerApp`]).
//! - [`protocols`]: streams (TCP, Unix socket, later TLS) and the connection
//!   [`protocols::Digest`] every request callback can read.
//!
//! Still to come in this crate: HTTP/1 and HTTP/2 sessions for both sides,
//! header types, connectors with connection pooling, peers and TLS backends.
//!
//! This crate is **not** a proxy: the proxy state machine and its callbacks
//! live in `pingora-proxy`.
//!
//! # Features
//!
//! - `rustls` (default): the pure-Rust TLS backend.
//! - `openssl`: the OpenSSL TLS backend (needs libssl-dev).
//! - `boringssl`: the BoringSSL TLS backend (needs cmake and clang); it
//!   cannot be linked into the same binary as `openssl`.
//!
//! The TLS backends are selected by these features; their implementations
//! arrive with the TLS work.

pub mod apps;
pub mod connectors;
pub mod header;
pub mod listeners;
pub mod protocols;
pub mod server;
pub mod services;
pub mod tls;
pub mod upstreams;

pub use pingora_error::{BError, Error, ErrorSource, ErrorType, Result};
