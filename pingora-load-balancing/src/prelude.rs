//! The names a load-balanced proxy uses, for
//! `use pingora_load_balancing::prelude::*`: [`LoadBalancer`], [`Backend`],
//! the selection algorithms and the built-in health checks.
//!
//! # Examples
//!
//! ```
//! use pingora_load_balancing::prelude::*;
//!
//! let mut lb = LoadBalancer::<RoundRobin>::try_from_iter(["127.0.0.1:8001"])?;
//! lb.set_health_check(TcpHealthCheck::new());
//! assert!(lb.select(b"", 256).is_some());
//! # Ok::<(), pingora_error::BError>(())
//! ```

pub use crate::health_check::{HealthCheck, HttpHealthCheck, TcpHealthCheck};
pub use crate::selection::{
    BackendSelection, Consistent, FNVHash, LeastConnection, PowerOfTwo, Random, RoundRobin,
};
pub use crate::{Backend, Backends, LoadBalancer};
