//! Active health checks: probe each backend periodically and take it out
//! of selection after consecutive failures, back in after consecutive
//! successes.
//!
//! - [`TcpHealthCheck`]: the backend accepts a TCP (optionally TLS)
//!   connection.
//! - [`HttpHealthCheck`]: the backend answers an HTTP/1.1 request with the
//!   expected status, or a response a user validator accepts.
//!
//! Any type implementing [`HealthCheck`] can be used instead.

mod http;
mod tcp;

pub use self::http::{HttpHealthCheck, ResponseValidator};
pub use tcp::TcpHealthCheck;

use crate::Backend;
use async_trait::async_trait;
use parking_lot::Mutex;
use pingora_error::Result;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A hook called each time a backend changes health: `(backend, healthy)`.
pub type HealthObserver = Arc<dyn Fn(&Backend, bool) + Send + Sync>;

/// A probe of one backend's health.
#[async_trait]
pub trait HealthCheck: Send + Sync {
    /// Probe `target` once.
    ///
    /// # Errors
    ///
    /// An error counts as one failed probe. Implementations must bound
    /// their own time (the built-in checks time out every step).
    async fn check(&self, target: &Backend) -> Result<()>;

    /// Consecutive results needed to flip the state: successes to mark a
    /// down backend up when `success` is `true`, failures to mark an up
    /// backend down otherwise. Values below 1 count as 1.
    fn health_threshold(&self, success: bool) -> usize;

    /// Called once each time `target` changes health, after the change is
    /// visible to selection. The default does nothing.
    async fn health_status_change(&self, target: &Backend, healthy: bool) {
        let _ = (target, healthy);
    }
}

/// A boxed check is a check, so that `set_health_check` takes what
/// Pingora programs pass (`Box<TcpHealthCheck>`,
/// `Box<dyn HealthCheck + Send + Sync>`) as well as a check by value.
#[async_trait]
impl<T: HealthCheck + ?Sized> HealthCheck for Box<T> {
    async fn check(&self, target: &Backend) -> Result<()> {
        (**self).check(target).await
    }

    fn health_threshold(&self, success: bool) -> usize {
        (**self).health_threshold(success)
    }

    async fn health_status_change(&self, target: &Backend, healthy: bool) {
        (**self).health_status_change(target, healthy).await;
    }
}

/// The results in a row a built-in check needs to flip a backend.
pub(crate) const fn threshold(success: usize, failure: usize, ok: bool) -> usize {
    if ok { success } else { failure }
}

/// Call a built-in check's health-change callback, if any.
pub(crate) fn notify(callback: Option<&HealthObserver>, target: &Backend, healthy: bool) {
    if let Some(callback) = callback {
        callback(target, healthy);
    }
}

/// Read access to a backend's [`Health`], as carried inside a
/// [`Backend`].
///
/// A trait object rather than `Arc<Health>`: `Backend` is a map and set key
/// (its identity ignores health), and hiding the atomics behind `dyn` keeps
/// clippy's `mutable_key_type` from flagging every user's
/// `BTreeSet<Backend>`.
pub(crate) trait HealthFlag: Send + Sync {
    fn is_healthy(&self) -> bool;
}

impl HealthFlag for Health {
    /// Selectable: healthy and enabled.
    fn is_healthy(&self) -> bool {
        Self::is_healthy(self) && self.is_enabled()
    }
}

/// The health of one backend: read by every selection (one atomic load),
/// written by the health check task.
#[derive(Debug)]
pub(crate) struct Health {
    healthy: AtomicBool,
    /// Switched by the operator ([`Backends::set_enable`](crate::Backends::set_enable)),
    /// apart from what the checks find.
    enabled: AtomicBool,
    /// The current streak: `(result, length)`. Only the checker touches it.
    streak: Mutex<(bool, usize)>,
}

impl Default for Health {
    /// New backends start healthy, so that a backend is used as soon as it
    /// is discovered rather than after its first probes.
    fn default() -> Self {
        Self {
            healthy: AtomicBool::new(true),
            enabled: AtomicBool::new(true),
            streak: Mutex::new((true, 0)),
        }
    }
}

impl Health {
    pub(crate) fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    pub(crate) fn is_enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    pub(crate) fn set_enabled(&self, enabled: bool) {
        self.enabled.store(enabled, Ordering::Relaxed);
    }

    /// Record one probe result; returns the new state when it flipped.
    pub(crate) fn observe(&self, ok: bool, threshold: usize) -> Option<bool> {
        let mut streak = self.streak.lock();
        if streak.0 == ok {
            streak.1 = streak.1.saturating_add(1);
        } else {
            *streak = (ok, 1);
        }
        let healthy = self.is_healthy();
        if healthy != ok && streak.1 >= threshold.max(1) {
            self.healthy.store(ok, Ordering::Relaxed);
            return Some(ok);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_need_consecutive_results() {
        let health = Health::default();
        assert!(health.is_healthy());
        assert_eq!(health.observe(false, 3), None);
        assert_eq!(health.observe(false, 3), None);
        // A success breaks the failure streak.
        assert_eq!(health.observe(true, 2), None);
        assert_eq!(health.observe(false, 3), None);
        assert_eq!(health.observe(false, 3), None);
        assert_eq!(health.observe(false, 3), Some(false));
        assert!(!health.is_healthy());
        assert_eq!(health.observe(false, 3), None);
        assert_eq!(health.observe(true, 2), None);
        assert_eq!(health.observe(true, 2), Some(true));
        assert!(health.is_healthy());
        // Threshold 0 behaves as 1.
        assert_eq!(health.observe(false, 0), Some(false));
    }
}
