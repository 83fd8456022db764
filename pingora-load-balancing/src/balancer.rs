//! [`LoadBalancer`]: backends, a selection algorithm and the schedule that
//! keeps them current.

use crate::Backend;
use crate::backends::Backends;
use crate::discovery::{ServiceDiscovery, Static};
use crate::health_check::HealthCheck;
use crate::selection::{BackendIter, BackendSelection, InFlight, SelectionConfig};
use arc_swap::ArcSwap;
use pingora_error::Result;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

/// Picks a backend for each request with the algorithm `S`, skipping
/// unhealthy backends.
///
/// Run it as a background service of the server
/// ([`background_service`](pingora_core::services::background::background_service))
/// to refresh discovery every [`update_frequency`](Self::update_frequency)
/// and probe health every
/// [`health_check_frequency`](Self::health_check_frequency), or call
/// [`update`](Self::update) and
/// [`Backends::run_health_check`] yourself.
///
/// # Examples
///
/// ```
/// use pingora_load_balancing::LoadBalancer;
/// use pingora_load_balancing::selection::RoundRobin;
///
/// let lb = LoadBalancer::<RoundRobin>::try_from_iter(["127.0.0.1:8001", "127.0.0.1:8002"]).unwrap();
/// let first = lb.select(b"", 8).unwrap();
/// let second = lb.select(b"", 8).unwrap();
/// assert_ne!(first, second);
/// ```
pub struct LoadBalancer<S> {
    backends: Backends,
    selector: ArcSwap<S>,
    selection_config: SelectionConfig,
    /// How often the background service asks discovery for the set;
    /// `None` (the default) asks only once, at start.
    pub update_frequency: Option<Duration>,
    /// How often the background service probes health; `None` (the
    /// default) never probes.
    pub health_check_frequency: Option<Duration>,
    /// Probe all backends concurrently (the default) rather than one after
    /// another.
    pub parallel_health_check: bool,
}

impl<S> std::fmt::Debug for LoadBalancer<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadBalancer")
            .field("backends", &self.backends)
            .field("update_frequency", &self.update_frequency)
            .field("health_check_frequency", &self.health_check_frequency)
            .finish_non_exhaustive()
    }
}

impl<S: BackendSelection> LoadBalancer<S> {
    /// A load balancer over a fixed list of `ip:port` (or `unix:PATH`)
    /// addresses of weight 1, ready to select at once.
    ///
    /// # Errors
    ///
    /// [`INVALID_BACKEND`](crate::INVALID_BACKEND) for an address that does
    /// not parse.
    pub fn try_from_iter<A: AsRef<str>, I: IntoIterator<Item = A>>(addrs: I) -> Result<Self> {
        let discovery = Static::try_from_iter(addrs)?;
        let initial = discovery.backends().clone();
        let lb = Self::from_backends(Backends::new(discovery));
        lb.backends.replace(initial, |set| {
            lb.selector
                .store(Arc::new(S::build_with_config(set, &lb.selection_config)))
        });
        Ok(lb)
    }

    /// A load balancer over `backends`. It selects nothing until the first
    /// [`update`](Self::update) (which the background service runs at
    /// start).
    pub fn from_backends(backends: Backends) -> Self {
        Self {
            backends,
            selector: ArcSwap::from_pointee(S::build(&BTreeSet::new())),
            selection_config: SelectionConfig::default(),
            update_frequency: None,
            health_check_frequency: None,
            parallel_health_check: true,
        }
    }

    /// A load balancer over what `discovery` finds.
    pub fn from_discovery(discovery: impl ServiceDiscovery + 'static) -> Self {
        Self::from_backends(Backends::new(discovery))
    }

    /// Tune the selection algorithm (for example the ketama ring of
    /// [`Consistent`](crate::selection::Consistent)) and rebuild it for
    /// the current set.
    pub fn set_selection_config(&mut self, config: SelectionConfig) {
        self.selection_config = config;
        let set = self.backends.get_backend();
        self.selector
            .store(Arc::new(S::build_with_config(&set, &self.selection_config)));
    }

    /// Probe the backends with `check`; see [`Backends::set_health_check`].
    pub fn set_health_check(&mut self, check: impl HealthCheck + 'static) {
        self.backends.set_health_check(Box::new(check));
    }

    /// Ask discovery for the set and rebuild the selector if it changed.
    ///
    /// # Errors
    ///
    /// The discovery's error; the current set and selector are kept.
    pub async fn update(&self) -> Result<()> {
        self.backends
            .update(|set| {
                self.selector
                    .store(Arc::new(S::build_with_config(set, &self.selection_config)))
            })
            .await
            .map(drop)
    }

    /// The backends, their health and discovery.
    pub fn backends(&self) -> &Backends {
        &self.backends
    }

    /// A healthy backend for `key`, trying at most `max_iterations`
    /// candidates of the algorithm.
    ///
    /// `key` matters only to the hashing algorithms. `None` when no healthy
    /// backend turned up in `max_iterations` candidates.
    pub fn select(&self, key: &[u8], max_iterations: usize) -> Option<Backend> {
        self.select_with(key, max_iterations, |_, healthy| healthy)
    }

    /// The first of at most `max_iterations` candidates for `key` that
    /// `accept(backend, healthy)` takes.
    ///
    /// Use it for failover: skip the backends a request already failed on,
    /// or accept an unhealthy backend as a last resort.
    ///
    /// # Examples
    ///
    /// ```
    /// use pingora_load_balancing::LoadBalancer;
    /// use pingora_load_balancing::selection::Consistent;
    ///
    /// let lb = LoadBalancer::<Consistent>::try_from_iter(["127.0.0.1:8001", "127.0.0.1:8002"]).unwrap();
    /// let first = lb.select(b"user-42", 8).unwrap();
    /// // The first choice refused the connection: take another.
    /// let next = lb.select_with(b"user-42", 8, |b, healthy| healthy && *b != first).unwrap();
    /// assert_ne!(first, next);
    /// ```
    pub fn select_with<F>(
        &self,
        key: &[u8],
        max_iterations: usize,
        mut accept: F,
    ) -> Option<Backend>
    where
        F: FnMut(&Backend, bool) -> bool,
    {
        let selector = self.selector.load();
        let mut candidates = S::iter(&selector, key);
        for _ in 0..max_iterations {
            let backend = candidates.next()?;
            if accept(backend, self.backends.ready(backend)) {
                return Some(backend.clone());
            }
        }
        None
    }

    /// As [`select_with`](Self::select_with), and count the request as in
    /// flight to the chosen backend until the returned guard drops. Use it
    /// with the load-aware algorithms
    /// ([`PowerOfTwo`](crate::selection::PowerOfTwo),
    /// [`LeastConnection`](crate::selection::LeastConnection)); with the
    /// others the guard counts nothing.
    pub fn select_tracked<F>(
        &self,
        key: &[u8],
        max_iterations: usize,
        mut accept: F,
    ) -> Option<(Backend, InFlight)>
    where
        F: FnMut(&Backend, bool) -> bool,
    {
        let selector = self.selector.load();
        let mut candidates = S::iter(&selector, key);
        for _ in 0..max_iterations {
            let backend = candidates.next()?;
            if accept(backend, self.backends.ready(backend)) {
                // Count on the same selector the backend came from.
                return Some((backend.clone(), S::track(&selector, backend)));
            }
        }
        None
    }
}
