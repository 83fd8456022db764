//! A pool of idle connections, keyed by reuse key.
//!
//! - **Keyed**: connections are grouped by a `u64` reuse key
//!   ([`Peer::reuse_hash`](crate::upstreams::Peer::reuse_hash)), so one is
//!   only handed to a peer it fits.
//! - **Bounded**: at most `capacity` idle connections in total; putting one
//!   more evicts the least recently returned.
//! - **Watched**: each idle connection has a small task that polls it
//!   ([`IdleWatch`]) and drops it when the upstream closes it, sends bytes
//!   nobody asked for, or its idle timeout passes.
//! - **Lock-light**: one mutex guards only the index (a few map operations
//!   per call); no lock is held across I/O. Each connection sits in its own
//!   slot, locked only for one non-blocking poll by its watcher or for the
//!   take by a getter.
//!
//! Within a key the most recently returned connection is handed out first,
//! so the busiest connections stay warm and the rest age out.

mod watch;

pub use watch::{IdleWatch, poll_read_unusable};

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::future::poll_fn;
use std::sync::{Arc, Weak};
use std::task::Poll;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::task::AbortHandle;
use tokio::time::Instant;

/// One connection's place: the watcher and a getter race to take it.
type Slot<C> = Arc<Mutex<Option<C>>>;

struct Entry<C> {
    key: u64,
    slot: Slot<C>,
    expires: Option<Instant>,
    watcher: Option<AbortHandle>,
}

struct Index<C> {
    next_id: u64,
    // Ids grow with every put, so the first entry is the least recently
    // returned: the map doubles as the LRU order.
    entries: BTreeMap<u64, Entry<C>>,
    groups: HashMap<u64, VecDeque<u64>>,
}

impl<C> Index<C> {
    fn remove(&mut self, id: u64) -> Option<Entry<C>> {
        let entry = self.entries.remove(&id)?;
        if let Some(group) = self.groups.get_mut(&entry.key) {
            group.retain(|&i| i != id);
            if group.is_empty() {
                self.groups.remove(&entry.key);
            }
        }
        Some(entry)
    }
}

struct Shared<C> {
    capacity: usize,
    index: Mutex<Index<C>>,
}

impl<C> Drop for Shared<C> {
    fn drop(&mut self) {
        // Watchers hold only a weak reference to the pool; stop them so
        // they release their connections with it.
        for entry in self.index.get_mut().entries.values() {
            if let Some(watcher) = &entry.watcher {
                watcher.abort();
            }
        }
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
            .field("idle", &self.shared.index.lock().entries.len())
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
                index: Mutex::new(Index {
                    next_id: 0,
                    entries: BTreeMap::new(),
                    groups: HashMap::new(),
                }),
            }),
        }
    }

    /// The most recently returned idle connection for `key`, if any.
    ///
    /// Never returns a connection its watcher found closed or one past its
    /// idle timeout.
    pub fn get(&self, key: u64) -> Option<C> {
        loop {
            let entry = {
                let mut index = self.shared.index.lock();
                let id = *index.groups.get(&key)?.back()?;
                index.remove(id)?
            };
            if let Some(watcher) = &entry.watcher {
                watcher.abort();
            }
            // The watcher may not have run since the deadline passed (or
            // there is no runtime to run it), so check here too.
            let expired = entry.expires.is_some_and(|at| Instant::now() >= at);
            let conn = entry.slot.lock().take();
            match conn {
                Some(conn) if !expired => return Some(conn),
                // Expired or already dropped by its watcher: try the next.
                _ => {}
            }
        }
    }

    /// Return an idle connection under `key`, to be dropped after
    /// `idle_timeout` if unused. Evicts the least recently returned
    /// connections past the capacity.
    ///
    /// Watching needs a tokio runtime; without one the connection is only
    /// checked against its idle timeout when taken.
    pub fn put(&self, key: u64, conn: C, idle_timeout: Option<Duration>) {
        if self.shared.capacity == 0 {
            return;
        }
        let slot: Slot<C> = Arc::new(Mutex::new(Some(conn)));
        let expires = idle_timeout.map(|t| Instant::now() + t);
        let (id, evicted) = {
            let mut index = self.shared.index.lock();
            let id = index.next_id;
            index.next_id += 1;
            index.entries.insert(
                id,
                Entry {
                    key,
                    slot: slot.clone(),
                    expires,
                    watcher: None,
                },
            );
            index.groups.entry(key).or_default().push_back(id);
            let mut evicted = Vec::new();
            while index.entries.len() > self.shared.capacity {
                let Some(oldest) = index.entries.keys().next().copied() else {
                    break;
                };
                evicted.extend(index.remove(oldest));
            }
            (id, evicted)
        };
        // Evicted connections are dropped here, outside the lock.
        for entry in evicted {
            if let Some(watcher) = entry.watcher {
                watcher.abort();
            }
            drop(entry.slot.lock().take());
        }
        self.spawn_watcher(id, slot, idle_timeout);
    }

    fn spawn_watcher(&self, id: u64, slot: Slot<C>, idle_timeout: Option<Duration>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let task = runtime.spawn(watch(Arc::downgrade(&self.shared), id, slot, idle_timeout));
        if let Some(entry) = self.shared.index.lock().entries.get_mut(&id) {
            entry.watcher = Some(task.abort_handle());
        }
        // Otherwise the connection was already taken or evicted; the
        // watcher finds its slot empty and ends.
    }

    /// The number of idle connections in the pool.
    pub fn len(&self) -> usize {
        self.shared.index.lock().entries.len()
    }

    /// Whether the pool holds no idle connection.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The number of idle connections under `key`.
    pub fn len_of(&self, key: u64) -> usize {
        self.shared
            .index
            .lock()
            .groups
            .get(&key)
            .map_or(0, VecDeque::len)
    }
}

/// Watch one idle connection until it turns unusable or times out, then
/// take it out of the pool and drop it. Ends early, with nothing to do,
/// when a getter takes the connection (it also aborts this task).
async fn watch<C: IdleWatch>(
    pool: Weak<Shared<C>>,
    id: u64,
    slot: Slot<C>,
    idle_timeout: Option<Duration>,
) {
    // The slot lock is held for one non-blocking poll only.
    let unusable = poll_fn(|cx| match slot.lock().as_mut() {
        Some(conn) => conn.poll_unusable(cx),
        None => Poll::Ready(()),
    });
    match idle_timeout {
        Some(timeout) => {
            let _ = tokio::time::timeout(timeout, unusable).await;
        }
        None => unusable.await,
    }
    if let Some(shared) = pool.upgrade() {
        shared.index.lock().remove(id);
    }
    drop(slot.lock().take());
}

#[cfg(test)]
mod tests;
