//! Selection algorithms: which backend serves a request.
//!
//! Each algorithm is a [`BackendSelection`]: an immutable structure built
//! once per backend set (when discovery changes the set) and then read by
//! every request without a lock. Picking a backend allocates nothing: the
//! iterator holds a reference-counted handle to the structure and at most
//! a few integers.
//!
//! | algorithm | picks | key used | on failover (next item) |
//! | --- | --- | --- | --- |
//! | [`RoundRobin`] | smooth weighted round robin | no | each other backend once, unweighted |
//! | [`Random`] | weighted random | no | each other backend once, unweighted |
//! | [`FNVHash`] | FNV-1a hash of the key, weighted | yes | the following backends in order |
//! | [`Consistent`] | ketama ring (libketama points) | yes | the next backend on the ring |
//! | [`PowerOfTwo`] | fewer in-flight requests of two random | no | another pair |
//! | [`LeastConnection`] | fewest in-flight requests per weight | no | the next least loaded |

pub(crate) mod fnv;
mod in_flight;
mod ketama;
mod least_conn;
mod md5;
mod rng;
mod weighted;

pub use in_flight::InFlight;
pub use ketama::{Consistent, KetamaConfig};

/// Consistent hashing under Pingora's name for it.
pub type KetamaHashing = Consistent;

/// Tuning for the selection algorithms that take any, passed to
/// [`BackendSelection::build_with_config`].
///
/// # Examples
///
/// ```
/// use pingora_load_balancing::selection::{Consistent, KetamaConfig, SelectionConfig};
/// use pingora_load_balancing::LoadBalancer;
///
/// let mut lb = LoadBalancer::<Consistent>::try_from_iter(["127.0.0.1:8001", "127.0.0.1:8002"])?;
/// let mut ketama = KetamaConfig::default();
/// ketama.point_multiple = Some(320);
/// let mut config = SelectionConfig::default();
/// config.ketama = ketama;
/// lb.set_selection_config(config);
/// assert!(lb.select(b"user-42", 8).is_some());
/// # Ok::<(), pingora_error::BError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SelectionConfig {
    /// The ring of [`Consistent`].
    pub ketama: KetamaConfig,
}
pub use least_conn::{LeastConnection, PowerOfTwo};
pub use weighted::{FNVHash, Random, RoundRobin};

use crate::Backend;
use std::collections::BTreeSet;
use std::sync::Arc;

/// A selection algorithm, built from one set of backends.
///
/// The load balancer rebuilds it only when the set changes, and shares it
/// between requests behind an `Arc`, so [`iter`](Self::iter) must be cheap
/// and must not lock.
pub trait BackendSelection: Send + Sync + Sized + 'static {
    /// The iterator [`iter`](Self::iter) returns.
    type Iter: BackendIter;

    /// Build the structure for `backends`.
    fn build(backends: &BTreeSet<Backend>) -> Self;

    /// Build the structure for `backends` with the tuning in `config`
    /// (see [`LoadBalancer::set_selection_config`](crate::LoadBalancer::set_selection_config)).
    /// The default ignores `config` and calls [`build`](Self::build);
    /// [`Consistent`] reads [`SelectionConfig::ketama`].
    fn build_with_config(backends: &BTreeSet<Backend>, config: &SelectionConfig) -> Self {
        let _ = config;
        Self::build(backends)
    }

    /// The backends to try for `key`, best first. The iterator may repeat
    /// backends and may never end; callers bound it (see
    /// [`LoadBalancer::select`](crate::LoadBalancer::select)).
    fn iter(self: &Arc<Self>, key: &[u8]) -> Self::Iter;

    /// Count a request in flight to `backend` until the returned guard is
    /// dropped. Algorithms that do not look at load return an untracked
    /// guard, which is the default.
    fn track(self: &Arc<Self>, backend: &Backend) -> InFlight {
        let _ = backend;
        InFlight::untracked()
    }
}

/// An iterator over candidate backends, borrowing from itself.
pub trait BackendIter: Send {
    /// The next candidate, or `None` when there is none left.
    fn next(&mut self) -> Option<&Backend>;
}

/// The backends of a set in order with their effective weights summed up,
/// to map a point in `0..total` to a backend in `O(log n)`.
#[derive(Debug)]
pub(crate) struct Weighted {
    backends: Box<[Backend]>,
    /// `ends[i]` is the sum of the weights of backends `0..=i`.
    ends: Box<[u64]>,
    total: u64,
}

impl Weighted {
    pub(crate) fn new(backends: &BTreeSet<Backend>) -> Self {
        let backends: Box<[Backend]> = backends.iter().cloned().collect();
        let mut total = 0u64;
        let ends = backends
            .iter()
            .map(|b| {
                total = total.saturating_add(b.effective_weight() as u64);
                total
            })
            .collect();
        Self {
            backends,
            ends,
            total,
        }
    }

    pub(crate) fn backends(&self) -> &[Backend] {
        &self.backends
    }

    /// The index of the backend whose share of `0..total` holds
    /// `point % total`, or `None` when there is no backend.
    pub(crate) fn index_of(&self, point: u64) -> Option<usize> {
        if self.total == 0 {
            return None;
        }
        let point = point % self.total;
        Some(self.ends.partition_point(|&end| end <= point))
    }
}

/// The failover order after a weighted first pick: every other backend
/// exactly once, unweighted, from a starting offset.
///
/// Unweighted on purpose: were failover candidates drawn by weight, a
/// heavy backend that is down would keep coming up and exhaust
/// `max_iterations` before a healthy light one. The offset spreads the
/// requests that fail over from one backend across the others instead of
/// piling them on its neighbour.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Failover {
    first: usize,
    offset: usize,
    given: usize,
    len: usize,
}

impl Failover {
    /// After backend `first` of `len`, starting `spread` places further on.
    pub(crate) fn new(first: usize, spread: u64, len: usize) -> Self {
        let others = len.saturating_sub(1).max(1) as u64;
        Self {
            first,
            offset: (spread % others) as usize,
            given: 0,
            len,
        }
    }

    /// The next backend index, or `None` once every other one was given.
    pub(crate) fn next(&mut self) -> Option<usize> {
        if self.given + 1 >= self.len {
            return None;
        }
        let others = self.len - 1;
        let step = 1 + (self.offset + self.given) % others;
        self.given += 1;
        Some((self.first + step) % self.len)
    }
}
