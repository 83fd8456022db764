//! Everything below the proxy logic of pingora-rs.
//!
//! - [`server`]: the `Server` that runs services, its config file and CLI,
//!   signals, daemonizing and zero-downtime upgrade.
//! - [`apps`]: what a listening service runs on each accepted connection
//!   ([`apps::ServerApp`]).
//! - [`protocols`]: streams (TCP, Unix socket, TLS) and the connection
//!   [`protocols::Digest`] every request callback can read.
//! - [`upstreams`]: peers ([`upstreams::HttpPeer`]) and their options.
//! - [`connectors`]: connecting to peers (L4, then TLS) with a pool of idle
//!   connections.
//! - [`tls`]: certificates, the server-side acceptor and the TLS backends.
//! - [`header`]: request and response headers that keep the wire's name
//!   case and order.
//! - [`protocols::http`]: HTTP sessions for both sides, built on sans-IO
//!   parsers and body framing.
//!
//! This crate is **not** a proxy: the proxy state machine and its callbacks
//! live in `pingora-proxy`.
//!
//! # Features
//!
//! - `rustls` (default): the rustls TLS backend (aws-lc-rs provider; needs
//!   only a C compiler).
//! - `openssl`: the OpenSSL TLS backend (needs libssl-dev and pkg-config).
//! - `boringssl`: the BoringSSL TLS backend (needs cmake, clang and git to
//!   build the vendored BoringSSL); it cannot link into the same binary as
//!   `openssl`, and enabling both is a compile error.
//!
//! Each feature compiles one backend in; with several, a
//! [`tls::TlsBackend`] value picks one (see [`tls`]).

pub mod apps;
pub mod connectors;
pub mod header;
pub mod listeners;
pub mod metrics;
pub mod modules;
pub mod protocols;
pub mod report;
pub mod server;
pub mod services;
pub mod tls;
pub mod upstreams;

pub mod prelude;

pub use pingora_error::{
    BError, Error, ErrorSource, ErrorType, ImmutStr, OkOrErr, OrErr, Result, RetryType,
};
