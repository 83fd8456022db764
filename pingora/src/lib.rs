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
//! | `memory_cache` | `pingora-memory-cache` | `memory-cache` (in `cache`) |
//! | `tinyufo` | `tinyufo` | `memory-cache` (in `cache`) |
//! | `limits` | `pingora-limits` | `limits` |
//!
//! `limits` is on by default; the `redis` feature adds
//! `limits::distributed`, the rate limiter shared through Redis.
//!
//! TLS backends: `rustls` (default, pure Rust), `openssl`, `boringssl`.
//! `openssl` and `boringssl` share C symbol names and cannot be linked into
//! one binary; each is built on its own in CI.
//!
//! UDP (which Pingora lacks): the UDP service API is
//! [`services::udp`] (always), the UDP proxy `proxy::udp` (feature
//! `proxy`).
//!
//! [`prelude`] gathers the names almost every program uses.
//!
//! # Coming from Pingora
//!
//! The module paths Pingora programs import resolve here as re-exports of
//! the same types, so imports port unchanged:
//!
//! | Pingora path | here |
//! | --- | --- |
//! | `pingora::prelude::*` | [`prelude`] |
//! | `pingora::server::{Server, configuration::{Opt, ServerConf}}` | [`server`] |
//! | `pingora::upstreams::peer::HttpPeer` | [`upstreams::peer`] |
//! | `pingora::http::{RequestHeader, ResponseHeader}` | [`http`] |
//! | `pingora::listeners::tls::TlsSettings` | [`listeners::tls`] |
//! | `pingora::services::{Service, background::*, listening::Service}` | [`services`] |
//! | `pingora::apps`, `pingora::protocols`, `pingora::connectors` | [`apps`], [`protocols`], [`connectors`] |
//! | `pingora::proxy::{ProxyHttp, Session, http_proxy_service}` | `proxy` (feature `proxy`) |
//! | `pingora::lb::{LoadBalancer, Backend, selection, health_check}` | `lb` (feature `lb`) |
//! | `pingora::{Error, ErrorType, Result, OrErr, OkOrErr}` | the crate root |
//! | `pingora_core::...`, `pingora_error::...` | [`core`], [`error`] |
//!
//! ```
//! # #[cfg(feature = "lb")] {
//! use pingora::Error;
//! use pingora::ErrorType;
//! use pingora::http::{RequestHeader, ResponseHeader};
//! use pingora::lb::{Backend, LoadBalancer, health_check::TcpHealthCheck, selection::RoundRobin};
//! use pingora::listeners::tls::TlsSettings;
//! use pingora::proxy::{ProxyHttp, Session, http_proxy_service};
//! use pingora::server::Server;
//! use pingora::server::configuration::{Opt, ServerConf};
//! use pingora::services::background::{BackgroundService, background_service};
//! use pingora::services::listening::Service;
//! use pingora::upstreams::peer::HttpPeer;
//! use pingora::{OkOrErr, OrErr, Result};
//! # }
//! ```
//!
//! ## Which traits need `#[async_trait]`
//!
//! One rule: **`ProxyHttp` uses native `async fn`; every other trait with
//! async methods is written with `#[async_trait]`**: background services
//! ([`services::background::BackgroundService`]), health checks
//! (`lb::health_check::HealthCheck`), service discovery
//! (`lb::discovery::ServiceDiscovery`), connection filters
//! ([`listeners::ConnectionFilter`]), server apps
//! ([`apps::ServerApp`], [`apps::http_app::ServeHttp`]) and services
//! ([`services::Service`]). The attribute is re-exported as
//! [`async_trait`](macro@async_trait) (and in the prelude), so a ported program keeps its
//! `#[async_trait]` lines on those impls and drops only the one on
//! `impl ProxyHttp`.
//!
//! # Examples
//!
//! ```
//! use pingora::prelude::*;
//!
//! fn check(port: u32) -> Result<u16> {
//!     u16::try_from(port).or_err(InternalError, "port out of range")
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

#[cfg(feature = "memory-cache")]
pub use pingora_memory_cache as memory_cache;

#[cfg(feature = "memory-cache")]
pub use tinyufo;

// pingora-core's modules, where Pingora programs find them (`pingora::server`
// and so on): Pingora's facade re-exports its core crate at the root.
pub use pingora_core::{apps, connectors, listeners, protocols, server, services, tls, upstreams};

// The error names at the root, as in Pingora (`pingora::Error`).
pub use pingora_error::{
    BError, Error, ErrorSource, ErrorType, ImmutStr, OkOrErr, OrErr, Result, RetryType,
};

/// The `#[async_trait]` attribute, for the traits that use it (see
/// [which traits need it](crate#which-traits-need-async_trait)).
pub use async_trait::async_trait;

/// HTTP header types (Pingora's `pingora::http`): the case- and
/// order-preserving [`RequestHeader`](http::RequestHeader) and
/// [`ResponseHeader`](http::ResponseHeader), and the `http` crate's types
/// they are built from.
pub mod http {
    pub use ::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, Version};
    pub use pingora_core::header::{IntoCaseHeaderName, RequestHeader, ResponseHeader};
}

/// The names almost every program built with pingora-rs uses: the server
/// and its configuration, [`HttpPeer`](prelude::HttpPeer), the header types,
/// the error names (every [`ErrorType`] variant by name), `async_trait`,
/// and with their features the proxy (`ProxyHttp`, `Session`,
/// `http_proxy_service`) and the load balancer (`LoadBalancer`, `Backend`,
/// the selection algorithms, `TcpHealthCheck`, `HttpHealthCheck`).
pub mod prelude {
    pub use async_trait::async_trait;
    pub use pingora_core::prelude::*;
    #[cfg(feature = "lb")]
    pub use pingora_load_balancing::prelude::*;
    #[cfg(feature = "proxy")]
    pub use pingora_proxy::prelude::*;
}

/// The book's chapters, compiled as doc tests so their examples cannot rot.
/// Every chapter of `docs/src/` is listed here (the `book_chapters` test
/// checks it), each under the features its examples need.
#[cfg(doctest)]
mod book {
    #[cfg(all(feature = "lb", feature = "cache"))]
    #[doc = include_str!("../../docs/src/caching.md")]
    struct Caching;

    #[cfg(feature = "lb")]
    #[doc = include_str!("../../docs/src/config.md")]
    struct Config;

    #[cfg(feature = "proxy")]
    #[doc = include_str!("../../docs/src/compression.md")]
    struct Compression;

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

    #[cfg(feature = "proxy")]
    #[doc = include_str!("../../docs/src/grpc-web.md")]
    struct GrpcWeb;

    #[cfg(feature = "lb")]
    #[doc = include_str!("../../docs/src/hardening.md")]
    struct Hardening;

    #[cfg(feature = "proxy")]
    #[doc = include_str!("../../docs/src/forward-proxy.md")]
    struct ForwardProxy;

    #[cfg(feature = "proxy")]
    #[doc = include_str!("../../docs/src/proxy-protocol.md")]
    struct ProxyProtocol;

    #[cfg(feature = "lb")]
    #[doc = include_str!("../../docs/src/l4.md")]
    struct L4;

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

    #[cfg(feature = "cache")]
    #[doc = include_str!("../../docs/src/cache-storage.md")]
    struct CacheStorage;

    #[cfg(feature = "proxy")]
    #[doc = include_str!("../../docs/src/subrequests.md")]
    struct Subrequests;

    #[cfg(feature = "proxy")]
    #[doc = include_str!("../../docs/src/observability.md")]
    struct Observability;

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
    #[doc = include_str!("../../docs/src/porting.md")]
    struct Porting;

    #[cfg(feature = "lb")]
    #[doc = include_str!("../../docs/src/production.md")]
    struct Production;

    #[cfg(feature = "lb")]
    #[doc = include_str!("../../docs/src/quick-start.md")]
    struct QuickStart;

    #[cfg(all(feature = "lb", feature = "cache"))]
    #[doc = include_str!("../../docs/src/tiered-caching.md")]
    struct TieredCaching;

    #[cfg(all(feature = "lb", feature = "limits"))]
    #[doc = include_str!("../../docs/src/rate-limiting.md")]
    struct RateLimiting;

    #[doc = include_str!("../../docs/src/timeouts.md")]
    struct Timeouts;

    #[cfg(feature = "lb")]
    #[doc = include_str!("../../docs/src/tls.md")]
    struct Tls;
}
