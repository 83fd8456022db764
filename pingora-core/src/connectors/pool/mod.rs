//! A pool of idle connections, keyed by reuse key.
//!
//! - **Keyed**: connections are grouped by a `u64` reuse key
//!   ([`Peer::reuse_hash`](crate::upstreams::Peer::reuse_hash)), so one is
//!   only handed to a peer it fits. The key is a hash already and is used
//!   as is, with no second hashing.
//! - **Bounded**: at most `capacity` idle connections in total; putting one
//!   more evicts the least recently returned.
//! - **Checked when taken**: [`ConnectionPool::get`] polls a candidate once
//!   ([`IdleWatch`], with a no-op waker) and compares its idle deadline with
//!   the clock. One the upstream closed, that received bytes nobody asked
//!   for, that failed, or whose idle timeout passed is dropped, and the next
//!   candidate is tried. For a tokio socket with no pending readiness event
//!   the poll makes no system call.
//! - **Swept in the background**: so that idle connections are released even
//!   when nobody asks for them, each pool runs one sweeper task (started by
//!   the first [`put`](ConnectionPool::put) made inside a tokio runtime, and
//!   again if that runtime goes away). Every sweep period it checks each
//!   idle connection the same way and drops the unusable and expired ones.
//!   The period is 1 s, or the shortest idle timeout the pool has been given
//!   if that is shorter, but never under 10 ms. A connection closed by its
//!   upstream is therefore released within about one period; one past its
//!   idle timeout may stay, already unusable for `get`, for up to two.
//!   The sweeper holds only a weak reference and ends with the pool.
//! - **Cheap per request**: the pool is a slab of entries threaded on two
//!   intrusive lists (all entries in return order, and each key's entries)
//!   behind one mutex. A `get` followed by a `put` spawns no task, arms no
//!   timer and, once the pool has reached its working size, allocates
//!   nothing. Connections are never dropped while the lock is held, and no
//!   lock is held across an await.
//!
//! Within a key the most recently returned connection is handed out first,
//! so the busiest connections stay warm and the rest age out.
//!
//! Without a tokio runtime there is no sweeper; `put` and `get` still work
//! and `get` still enforces idle timeouts.

mod index;
mod watch;

pub use watch::{IdleWatch, poll_read_unusable};

use std::fmt;
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use index::{Idle, Index};
use watch::unusable_now;

/// How often the sweeper runs when no idle timeout is shorter.
const SWEEP_PERIOD: Duration = Duration::from_secs(1);

/// The shortest sweep period, however short the idle timeouts.
const MIN_SWEEP_PERIOD: Duration = Duration::from_millis(10);

/// How many slots a sweep checks per hold of the lock, so that `get` and
/// `put` on other threads never wait for a whole sweep.
const SWEEP_CHUNK: usize = 64;

struct State<C> {
    index: Index<C>,
    /// The shortest idle timeout ever given to `put`: it shortens the
    /// sweep period.
    shortest_timeout: Option<Duration>,
    /// The running sweeper, if one was started.
    sweeper: Option<AbortHandle>,
    /// Set when a sweeper panicked (say, a runtime without a timer):
    /// starting another one on every `put` would only panic again.
    sweeper_failed: bool,
}

impl<C> State<C> {
    fn needs_sweeper(&self) -> bool {
        !self.sweeper_failed && self.sweeper.as_ref().is_none_or(AbortHandle::is_finished)
    }
}

struct Shared<C> {
    capacity: usize,
    state: Mutex<State<C>>,
}

impl<C> Drop for Shared<C> {
    fn drop(&mut self) {
        // The idle connections are dropped with the index, right after.
        if let Some(sweeper) = self.state.get_mut().sweeper.take() {
            sweeper.abort();
        }
    }
}

impl<C: IdleWatch> Shared<C> {
    fn sweep_period(&self) -> Duration {
        let shortest = self.state.lock().shortest_timeout;
        shortest
            .map_or(SWEEP_PERIOD, |t| t.min(SWEEP_PERIOD))
            .max(MIN_SWEEP_PERIOD)
    }

    /// Check every idle connection once; drop the unusable and expired.
    fn sweep(&self) -> usize {
        let now = Instant::now();
        let mut released = Vec::new();
        let mut count = 0;
        let mut start: usize = 0;
        loop {
            let mut state = self.state.lock();
            let end = state
                .index
                .slot_count()
                .min(start.saturating_add(SWEEP_CHUNK));
            if start >= end {
                break;
            }
            for i in start..end {
                let dead = state.index.get_mut(i).is_some_and(|idle| {
                    idle.expires.is_some_and(|at| now >= at) || unusable_now(&mut idle.conn)
                });
                if dead {
                    released.extend(state.index.remove(i));
                }
            }
            drop(state);
            count += released.len();
            // Dropped here, with the lock released.
            released.clear();
            start = end;
        }
        count
    }
}

/// A bounded, LRU-evicting pool of idle connections of type `C`.
///
/// Cheap to clone; clones share the pool.
///
/// # Examples
///
/// ```
/// use pingora_core::connectors::pool::ConnectionPool;
/// use pingora_core::protocols::Stream;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let pool: ConnectionPool<Stream> = ConnectionPool::new(128);
/// let (ours, _theirs) = tokio::io::duplex(64);
/// pool.put(7, Box::new(ours), None);
/// assert!(pool.get(7).is_some());
/// assert!(pool.get(7).is_none());
/// # }
/// ```
pub struct ConnectionPool<C> {
    shared: Arc<Shared<C>>,
}

impl<C> Clone for ConnectionPool<C> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<C> fmt::Debug for ConnectionPool<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionPool")
            .field("capacity", &self.shared.capacity)
            .field("idle", &self.shared.state.lock().index.len())
            .finish()
    }
}

impl<C: IdleWatch> ConnectionPool<C> {
    /// A pool holding at most `capacity` idle connections (0 disables
    /// pooling).
    pub fn new(capacity: usize) -> Self {
        Self {
            shared: Arc::new(Shared {
                capacity,
                state: Mutex::new(State {
                    index: Index::new(),
                    shortest_timeout: None,
                    sweeper: None,
                    sweeper_failed: false,
                }),
            }),
        }
    }

    /// The most recently returned usable idle connection for `key`, if any.
    ///
    /// Each candidate is checked first: one that is closed, failed, holds
    /// unsolicited bytes or is past its idle timeout is dropped, and the
    /// next one is tried.
    pub fn get(&self, key: u64) -> Option<C> {
        let mut now = None;
        loop {
            // The guard is a temporary: the lock is released before the
            // candidate is checked or dropped.
            let mut idle = self.shared.state.lock().index.pop_newest_of(key)?;
            let expired = idle
                .expires
                .is_some_and(|at| *now.get_or_insert_with(Instant::now) >= at);
            if !expired && !unusable_now(&mut idle.conn) {
                return Some(idle.conn);
            }
        }
    }

    /// Return an idle connection under `key`, to be dropped once it has
    /// been idle for `idle_timeout`. Evicts the least recently returned
    /// connection if the pool is full.
    ///
    /// Inside a tokio runtime this also starts the pool's sweeper if it is
    /// not running. Without one, connections are only checked when taken.
    pub fn put(&self, key: u64, conn: C, idle_timeout: Option<Duration>) {
        if self.shared.capacity == 0 {
            return;
        }
        // A timeout too large to represent never expires.
        let expires = idle_timeout.and_then(|t| Instant::now().checked_add(t));
        let evicted = {
            let mut state = self.shared.state.lock();
            let evicted = if state.index.len() >= self.shared.capacity {
                state.index.pop_oldest()
            } else {
                None
            };
            state.index.push(Idle { conn, key, expires });
            if let Some(t) = idle_timeout {
                state.shortest_timeout = Some(state.shortest_timeout.map_or(t, |s| s.min(t)));
            }
            if state.needs_sweeper() {
                self.start_sweeper(&mut state);
            }
            evicted
        };
        // Dropped here, outside the lock.
        drop(evicted);
    }

    /// Check every idle connection now, as the background sweeper does,
    /// and drop those that are unusable or past their idle timeout.
    /// Returns how many were dropped.
    ///
    /// The sweeper calls this periodically; call it directly for an
    /// immediate, deterministic sweep (in tests, or without a runtime).
    pub fn sweep_now(&self) -> usize {
        self.shared.sweep()
    }

    fn start_sweeper(&self, state: &mut State<C>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let pool = Arc::downgrade(&self.shared);
        let task = runtime.spawn(sweep_periodically(pool));
        state.sweeper = Some(task.abort_handle());
    }

    /// The number of idle connections in the pool.
    pub fn len(&self) -> usize {
        self.shared.state.lock().index.len()
    }

    /// Whether the pool holds no idle connection.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The number of idle connections under `key`.
    pub fn len_of(&self, key: u64) -> usize {
        self.shared.state.lock().index.len_of(key)
    }
}

/// The sweeper: sweep the pool every period until the pool is dropped.
async fn sweep_periodically<C: IdleWatch>(pool: Weak<Shared<C>>) {
    let _failure = FailureFlag(pool.clone());
    loop {
        // Only a weak reference lives across the sleep, so the pool can
        // be dropped meanwhile.
        let Some(period) = pool.upgrade().map(|shared| shared.sweep_period()) else {
            return;
        };
        tokio::time::sleep(period).await;
        let Some(shared) = pool.upgrade() else {
            return;
        };
        shared.sweep();
    }
}

/// Marks the pool's sweeper as failed if the sweeper unwinds.
struct FailureFlag<C>(Weak<Shared<C>>);

impl<C> Drop for FailureFlag<C> {
    fn drop(&mut self) {
        if std::thread::panicking()
            && let Some(shared) = self.0.upgrade()
        {
            shared.state.lock().sweeper_failed = true;
        }
    }
}

#[cfg(test)]
mod tests;
