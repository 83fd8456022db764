//! In-flight request counts and the guard that holds one.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Requests in flight to each backend of one set, by backend index.
#[derive(Debug)]
pub(crate) struct Counts(Box<[AtomicUsize]>);

impl Counts {
    pub(crate) fn new(len: usize) -> Self {
        Self((0..len).map(|_| AtomicUsize::new(0)).collect())
    }

    pub(crate) fn get(&self, index: usize) -> usize {
        self.0.get(index).map_or(0, |c| c.load(Ordering::Relaxed))
    }
}

/// One request in flight to a backend, counted until the guard is dropped.
///
/// Hold it for as long as the request runs (keep it in the request
/// context); load-aware algorithms such as
/// [`PowerOfTwo`](super::PowerOfTwo) read these counts. Algorithms that do
/// not look at load hand out untracked guards, which do nothing.
#[derive(Debug)]
#[must_use = "the request stops being counted when the guard is dropped"]
pub struct InFlight {
    counted: Option<(Arc<Counts>, usize)>,
}

impl InFlight {
    /// A guard that counts nothing.
    pub fn untracked() -> Self {
        Self { counted: None }
    }

    /// Count one more request on backend `index` of `counts`.
    pub(crate) fn track(counts: &Arc<Counts>, index: usize) -> Self {
        let Some(counter) = counts.0.get(index) else {
            return Self::untracked();
        };
        counter.fetch_add(1, Ordering::Relaxed);
        Self {
            counted: Some((Arc::clone(counts), index)),
        }
    }

    /// Whether this guard is counting a request.
    pub fn is_tracked(&self) -> bool {
        self.counted.is_some()
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some((counts, index)) = &self.counted
            && let Some(counter) = counts.0.get(*index)
        {
            counter.fetch_sub(1, Ordering::Relaxed);
        }
    }
}
