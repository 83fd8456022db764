//! Load balancing for pingora-rs: backends, selection algorithms, health
//! checks and service discovery.
//!
//! A [`LoadBalancer`] holds a set of [`Backend`]s (found by a
//! [`ServiceDiscovery`](discovery::ServiceDiscovery), kept healthy by a
//! [`HealthCheck`](health_check::HealthCheck)) and picks one per request with a
//! [`BackendSelection`](selection::BackendSelection) algorithm:
//!
//! - [`selection::RoundRobin`]: smooth weighted round robin;
//! - [`selection::Random`]: weighted random;
//! - [`selection::FNVHash`]: hash of a request key;
//! - [`selection::Consistent`]: consistent hashing on a ketama ring placed
//!   as libketama places it;
//! - [`selection::PowerOfTwo`] and [`selection::LeastConnection`]: by
//!   requests in flight.
//!
//! Selection takes no lock and allocates nothing (for IP backends): the set
//! and the algorithm's state sit behind `arc-swap` and are rebuilt only when
//! discovery returns a different set.
//!
//! This crate is **not** a proxy: a proxy asks the load balancer which
//! backend to use (in `upstream_peer`) and connects through `pingora-core`.
//!
//! # Features
//!
//! - `rustls` (default), `openssl`, `boringssl`: the TLS backend passed to
//!   `pingora-core`, used by TLS health checks.
//!
//! # Example
//!
//! ```
//! use pingora_load_balancing::LoadBalancer;
//! use pingora_load_balancing::health_check::TcpHealthCheck;
//! use pingora_load_balancing::selection::RoundRobin;
//! use std::time::Duration;
//!
//! let mut lb = LoadBalancer::<RoundRobin>::try_from_iter(["127.0.0.1:8001", "127.0.0.1:8002"])?;
//! lb.set_health_check(TcpHealthCheck::new().consecutive_failure(2));
//! lb.health_check_frequency = Some(Duration::from_secs(1));
//!
//! // In a server: server.add_service(background_service("lb", lb)), then
//! // select from the shared `Arc` (`GenBackgroundService::task`).
//! let backend = lb.select(b"", 256).expect("both backends start healthy");
//! println!("proxying to {backend}");
//! # Ok::<(), pingora_error::BError>(())
//! ```

mod backend;
mod backends;
mod balancer;
pub mod discovery;
pub mod health_check;
pub mod prelude;
pub mod selection;
mod service;

pub use backend::{Backend, Extensions, INVALID_BACKEND};
pub use backends::Backends;
pub use balancer::LoadBalancer;
