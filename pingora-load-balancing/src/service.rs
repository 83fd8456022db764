//! The load balancer as a background service: discovery and health checks
//! on a schedule.

use crate::LoadBalancer;
use crate::selection::BackendSelection;
use async_trait::async_trait;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::ReadyNotifier;
use pingora_core::services::background::BackgroundService;
use std::time::Duration;
use tokio::time::Instant;

/// Runs discovery at start and every
/// [`update_frequency`](LoadBalancer::update_frequency), health checks every
/// [`health_check_frequency`](LoadBalancer::health_check_frequency), and
/// reports ready after the first discovery and the first round of health
/// checks, so that a proxy depending on it starts with a known-good set.
#[async_trait]
impl<S: BackendSelection> BackgroundService for LoadBalancer<S> {
    async fn start_with_ready(&self, mut shutdown: ShutdownWatch, ready: ReadyNotifier) {
        let mut ready = Some(ready);
        let now = Instant::now();
        let mut next_update = Some(now);
        let mut next_check = self.health_check_frequency.map(|_| now);
        loop {
            if *shutdown.borrow() {
                return;
            }
            let now = Instant::now();
            if next_update.is_some_and(|at| at <= now) {
                if let Err(e) = self.update().await {
                    log::warn!("load balancer discovery failed, keeping the set: {e}");
                }
                next_update = self.update_frequency.map(|f| now + f);
            }
            if next_check.is_some_and(|at| at <= now) {
                self.backends()
                    .run_health_check(self.parallel_health_check)
                    .await;
                next_check = self.health_check_frequency.map(|f| now + f);
            }
            if let Some(ready) = ready.take() {
                ready.notify_ready();
            }
            let wake = match (next_update, next_check) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            tokio::select! {
                changed = shutdown.changed() => {
                    // An error means the server is gone.
                    if changed.is_err() {
                        return;
                    }
                }
                () = sleep_until(wake) => {}
            }
        }
    }
}

/// Sleep until `at`, or forever when there is nothing scheduled.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        // Only shutdown can wake us: park on a timer far in the future.
        None => loop {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        },
    }
}
