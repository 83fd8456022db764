//! Build fast, reliable, programmable network services in Rust: HTTP
//! proxies, load balancers, API gateways, HTTP servers and clients.
//!
//! This facade re-exports the pingora-rs crates, each under its own module
//! name, behind feature flags:
//!
//! | module | crate | feature |
//! | --- | --- | --- |
//! | [`error`] | `pingora-error` | always |
//! | [`timeout`] | `pingora-timeout` | always |
//! | [`core`] | `pingora-core` | always |
//! | `proxy` | `pingora-proxy` | `proxy` |
//! | `lb` | `pingora-load-balancing` | `lb` |
//! | `cache` | `pingora-cache` | `cache` |
//! | `limits` | `pingora-limits` | `limits` |
//!
//! TLS backends: `rustls` (default, pure Rust), `openssl`, `boringssl`.
//! `openssl` and `boringssl` share C symbol names and cannot be linked into
//! one binary; each is built on its own in CI.
//!
//! [`prelude`] gathers the names almost every program uses.
//!
//! # Examples
//!
//! ```
//! use pingora::prelude::*;
//!
//! fn check(port: u32) -> Result<u16> {
//!     u16::try_from(port).or_err(ErrorType::InternalError, "port out of range")
//! }
//! assert!(check(70_000).is_err());
//! ```

pub use pingora_core as core;
pub use pingora_error as error;
pub use pingora_timeout as timeout;

#[cfg(feature = "proxy")]
pub use pingora_proxy as proxy;

#[cfg(feature = "lb")]
pub use pingora_load_balancing as lb;

#[cfg(feature = "cache")]
pub use pingora_cache as cache;

#[cfg(feature = "limits")]
pub use pingora_limits as limits;

/// The names almost every program built with pingora-rs uses.
pub mod prelude {
    pub use pingora_error::{
        BError, Error, ErrorSource, ErrorType, OkOrErr, OrErr, Result, RetryType,
    };
}

/// The book's chapters, compiled as doc tests so their examples cannot rot.
/// Every chapter of `docs/src/` is listed here (the `book_chapters` test
/// checks it), each under the features its examples need.
#[cfg(doctest)]
mod book {
    #[cfg(feature = "lb")]
    #[doc = include_str!("../../docs/src/config.md")]
    struct Config;

    #[doc = include_str!("../../docs/src/crates.md")]
    struct Crates;

    #[cfg(feature = "lb")]
    #[doc = include_str!("../../docs/src/ctx.md")]
    struct Ctx;

    #[doc = include_str!("../../docs/src/errors.md")]
    struct Errors;

    #[cfg(feature = "lb")]
    #[doc = include_str!("../../docs/src/failover.md")]
    struct Failover;

    #[cfg(feature = "lb")]
    #[doc = include_str!("../../docs/src/hardening.md")]
    struct Hardening;

    #[cfg(feature = "lb")]
    #[doc = include_str!("../../docs/src/health-checks.md")]
    struct HealthChecks;

    #[cfg(feature = "lb")]
    #[doc = include_str!("../../docs/src/http1.md")]
    struct Http1;

    #[cfg(feature = "lb")]
    #[doc = include_str!("../../docs/src/http2.md")]
    struct Http2;

    #[doc = include_str!("../../docs/src/intro.md")]
    struct Intro;

    #[cfg(feature = "lb")]
    #[doc = include_str!("../../docs/src/lifecycle.md")]
    struct Lifecycle;

    #[cfg(feature = "lb")]
    #[doc = include_str!("../../docs/src/load-balancing.md")]
    struct LoadBalancing;

    #[cfg(feature = "lb")]
    #[doc = include_str!("../../docs/src/modify.md")]
    struct Modify;

    #[cfg(feature = "lb")]
    #[doc = include_str!("../../docs/src/peers.md")]
    struct Peers;

    #[cfg(feature = "lb")]
    #[doc = include_str!("../../docs/src/performance.md")]
    struct Performance;

    #[cfg(feature = "lb")]
    #[doc = include_str!("../../docs/src/phases.md")]
    struct Phases;

    #[cfg(feature = "lb")]
    #[doc = include_str!("../../docs/src/pooling.md")]
    struct Pooling;

    #[cfg(feature = "lb")]
    #[doc = include_str!("../../docs/src/production.md")]
    struct Production;

    #[cfg(feature = "lb")]
    #[doc = include_str!("../../docs/src/quick-start.md")]
    struct QuickStart;

    #[doc = include_str!("../../docs/src/timeouts.md")]
    struct Timeouts;

    #[cfg(feature = "lb")]
    #[doc = include_str!("../../docs/src/tls.md")]
    struct Tls;
}
