//! [`Backends`]: the current set of backends, its discovery and health.

use crate::Backend;
use crate::discovery::ServiceDiscovery;
use crate::health_check::{Health, HealthCheck, HealthFlag};
use crate::selection::fnv::FnvBuildHasher;
use arc_swap::ArcSwap;
use pingora_error::Result;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use tokio::task::JoinSet;

/// One snapshot of the set: the backends and the health of each. Replaced
/// whole when discovery changes the set; health flips in place.
#[derive(Debug, Default)]
struct Snapshot {
    backends: Arc<BTreeSet<Backend>>,
    health: HashMap<Backend, Arc<Health>, FnvBuildHasher>,
}

/// The current set of backends, where it comes from, and how healthy each
/// backend is.
///
/// Readers never lock: the set sits behind an [`ArcSwap`] and each
/// backend's health is an atomic flag. Only [`update`](Self::update) (from
/// discovery) replaces the set, and only when it changed.
pub struct Backends {
    discovery: Box<dyn ServiceDiscovery>,
    health_check: Option<Arc<dyn HealthCheck>>,
    current: ArcSwap<Snapshot>,
}

impl std::fmt::Debug for Backends {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backends")
            .field("backends", &self.current.load().backends)
            .field("health_check", &self.health_check.is_some())
            .finish_non_exhaustive()
    }
}

impl Backends {
    /// Backends found by `discovery`; empty until the first
    /// [`update`](Self::update).
    ///
    /// `discovery` may be boxed (`Box<dyn ServiceDiscovery>`, as Pingora
    /// programs pass it) or not.
    ///
    /// # Examples
    ///
    /// ```
    /// use pingora_load_balancing::discovery::{ServiceDiscovery, Static};
    /// use pingora_load_balancing::{Backend, Backends};
    /// use std::collections::BTreeSet;
    ///
    /// let set: BTreeSet<Backend> = [Backend::new("127.0.0.1:80")?].into();
    /// let plain = Backends::new(Static::new(set.clone()));
    /// let boxed: Box<dyn ServiceDiscovery> = Box::new(Static::new(set));
    /// let from_box = Backends::new(boxed);
    /// # Ok::<(), pingora_error::BError>(())
    /// ```
    pub fn new(discovery: impl ServiceDiscovery + 'static) -> Self {
        Self {
            discovery: Box::new(discovery),
            health_check: None,
            current: ArcSwap::from_pointee(Snapshot::default()),
        }
    }

    /// Probe the backends with `check` on each
    /// [`run_health_check`](Self::run_health_check).
    pub fn set_health_check(&mut self, check: Box<dyn HealthCheck>) {
        self.health_check = Some(Arc::from(check));
    }

    /// The current set.
    pub fn get_backend(&self) -> Arc<BTreeSet<Backend>> {
        Arc::clone(&self.current.load().backends)
    }

    /// Take `backend` out of selection (`enabled == false`) or put it back,
    /// at run time, whatever its health: for draining a backend before
    /// maintenance. Health checks go on probing a disabled backend, so it
    /// comes back with its current health. Returns whether `backend` is in
    /// the current set; the setting stays with the backend while
    /// discovery keeps returning it.
    ///
    /// # Examples
    ///
    /// ```
    /// use pingora_load_balancing::{Backend, LoadBalancer};
    /// use pingora_load_balancing::selection::RoundRobin;
    ///
    /// let lb = LoadBalancer::<RoundRobin>::try_from_iter(["127.0.0.1:8001", "127.0.0.1:8002"])?;
    /// let a = Backend::new("127.0.0.1:8001")?;
    /// assert!(lb.backends().set_enable(&a, false));
    /// for _ in 0..4 {
    ///     assert_ne!(lb.select(b"", 8).unwrap(), a);
    /// }
    /// lb.backends().set_enable(&a, true);
    /// assert!(lb.backends().ready(&a));
    /// # Ok::<(), pingora_error::BError>(())
    /// ```
    pub fn set_enable(&self, backend: &Backend, enabled: bool) -> bool {
        match self.current.load().health.get(backend) {
            Some(health) => {
                health.set_enabled(enabled);
                true
            }
            None => false,
        }
    }

    /// Whether `backend` is in the set, healthy and enabled. Backends
    /// start healthy and stay so when no health check is set.
    pub fn ready(&self, backend: &Backend) -> bool {
        // A backend handed out by the current set carries its entry; the
        // map serves backends built elsewhere. A backend from a replaced set
        // keeps reading its old entry until the selector is rebuilt too,
        // which `replace` does first.
        if let Some(health) = &backend.health {
            return health.is_healthy();
        }
        self.current
            .load()
            .health
            .get(backend)
            .is_some_and(|h| h.is_healthy() && h.is_enabled())
    }

    /// Ask discovery for the set; when it differs from the current one,
    /// swap it in and call `on_change` with it (to rebuild a selector).
    /// Returns whether the set changed.
    ///
    /// Backends that stay keep their health; new ones start healthy.
    ///
    /// # Errors
    ///
    /// The discovery's error; the current set is kept.
    pub async fn update<F: FnOnce(&BTreeSet<Backend>)>(&self, on_change: F) -> Result<bool> {
        let found = self.discovery.discover().await?;
        Ok(self.replace(found, on_change))
    }

    /// Swap in `found` if it differs from the current set.
    pub(crate) fn replace<F: FnOnce(&BTreeSet<Backend>)>(
        &self,
        found: BTreeSet<Backend>,
        on_change: F,
    ) -> bool {
        let old = self.current.load_full();
        if *old.backends == found {
            return false;
        }
        // Attach each backend's health entry (kept for backends that stay)
        // so that the selector built from this set reads health directly.
        let mut health = HashMap::default();
        let found: BTreeSet<Backend> = found
            .into_iter()
            .map(|mut b| {
                let h = old.health.get(&b).cloned().unwrap_or_default();
                health.insert(b.clone(), Arc::clone(&h));
                b.health = Some(h as Arc<dyn HealthFlag>);
                b
            })
            .collect();
        // Build the selector before publishing the set, so that a backend
        // is never selectable without a health entry.
        on_change(&found);
        self.current.store(Arc::new(Snapshot {
            backends: Arc::new(found),
            health,
        }));
        true
    }

    /// Probe every backend once with the health check (if any) and apply
    /// the results; concurrently when `parallel`, one after another
    /// otherwise.
    ///
    /// Each check bounds its own time (see [`HealthCheck::check`]).
    pub async fn run_health_check(&self, parallel: bool) {
        let Some(check) = &self.health_check else {
            return;
        };
        let snapshot = self.current.load_full();
        let probes = snapshot
            .health
            .iter()
            .map(|(backend, health)| (backend.clone(), Arc::clone(health)));
        if parallel {
            let mut tasks = JoinSet::new();
            for (backend, health) in probes {
                let check = Arc::clone(check);
                tasks.spawn(async move { probe(&*check, &backend, &health).await });
            }
            while tasks.join_next().await.is_some() {}
        } else {
            for (backend, health) in probes {
                probe(&**check, &backend, &health).await;
            }
        }
    }
}

/// Probe one backend and record the result, calling the hook on a flip.
async fn probe(check: &dyn HealthCheck, backend: &Backend, health: &Health) {
    let result = check.check(backend).await;
    let ok = result.is_ok();
    if let Err(e) = &result {
        log::debug!("health check of {backend} failed: {e}");
    }
    if let Some(healthy) = health.observe(ok, check.health_threshold(ok)) {
        match &result {
            Ok(()) => log::info!("{backend} is healthy again"),
            Err(e) => log::warn!("{backend} is unhealthy: {e}"),
        }
        check.health_status_change(backend, healthy).await;
    }
}
