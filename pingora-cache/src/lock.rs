//! [`CacheLock`]: many concurrent misses on one key send one request to
//! the origin; the others wait for its result.
//!
//! The first to [`lock`](CacheLock::lock) a key gets a
//! [`WritePermit`] and fetches; the others get a [`ReadLock`] and
//! [`wait`](ReadLock::wait). A writer should look the key up once more
//! before fetching: the lookup that missed came before the lock, and a
//! previous writer may have stored the entry in between. What the
//! waiters learn:
//!
//! - [`LockStatus::Done`]: the entry is stored; look it up again.
//! - [`LockStatus::GiveUp`] (uncacheable), [`LockStatus::TransientError`]
//!   (the fetch failed) or [`LockStatus::Dropped`] (the permit went away
//!   unreleased): released at once; go to the origin (the lock is free
//!   again, so [`lock`](CacheLock::lock) makes one of them the new writer).
//! - [`LockStatus::Timeout`]: the writer took longer than the lock's
//!   timeout; go to the origin without waiting any more.

use crate::key::{CacheKey, HashBinary};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

const SHARDS: usize = 16;

/// Where a lock stands, as its waiters see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockStatus {
    /// The writer is still fetching.
    Waiting,
    /// The writer stored the response: look it up.
    Done,
    /// The writer's fetch failed; try the origin.
    TransientError,
    /// The response is not cacheable; go to the origin.
    GiveUp,
    /// The permit was dropped without a status (a bug or a panic).
    Dropped,
    /// The wait outlasted the lock's timeout.
    Timeout,
}

/// One held lock: its status and when its waiters stop waiting.
#[derive(Debug)]
struct LockCore {
    status: watch::Sender<LockStatus>,
    deadline: Instant,
}

type Table = Mutex<HashMap<HashBinary, Arc<LockCore>>>;

/// A table of per-key locks against cache stampedes.
///
/// # Examples
///
/// ```
/// use pingora_cache::lock::{CacheLock, Locked, LockStatus};
/// use pingora_cache::CacheKey;
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let lock = CacheLock::new(Duration::from_secs(5));
/// let key = CacheKey::new("", "http://a.test/", "");
/// let Locked::Write(permit) = lock.lock(&key) else { unreachable!() };
/// let Locked::Read(reader) = lock.lock(&key) else { unreachable!() };
/// permit.release(LockStatus::Done);
/// assert_eq!(reader.wait().await, LockStatus::Done);
/// // Released: the next one writes again.
/// assert!(matches!(lock.lock(&key), Locked::Write(_)));
/// # }
/// ```
#[derive(Debug)]
pub struct CacheLock {
    table: Arc<[Table]>,
    timeout: Duration,
}

/// What [`CacheLock::lock`] gives.
#[derive(Debug)]
pub enum Locked {
    /// You fetch and fill; release the permit with the outcome.
    Write(WritePermit),
    /// Someone else fetches; wait for them.
    Read(ReadLock),
}

impl Locked {
    /// Whether this is the write permit.
    pub const fn is_write(&self) -> bool {
        matches!(self, Self::Write(_))
    }
}

impl CacheLock {
    /// A lock table whose waiters give up after `timeout`, counted from
    /// when the writer took the lock.
    pub fn new(timeout: Duration) -> Self {
        Self {
            table: (0..SHARDS).map(|_| Mutex::default()).collect(),
            timeout,
        }
    }

    /// The waiters' timeout.
    pub const fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Take the lock of `key` (its [`combined_bin`](CacheKey::combined_bin)):
    /// the write permit if it is free or its holder outlasted the timeout,
    /// else a read lock on the holder's outcome.
    pub fn lock(&self, key: &CacheKey) -> Locked {
        let hash = key.combined_bin();
        let shard = &self.table[usize::from(hash[15]) % SHARDS];
        let mut map = shard.lock();
        let held = map
            .get(&hash)
            .filter(|c| Instant::now() < c.deadline && *c.status.borrow() == LockStatus::Waiting);
        if let Some(core) = held {
            return Locked::Read(ReadLock {
                core: Arc::clone(core),
            });
        }
        let (status, _) = watch::channel(LockStatus::Waiting);
        let core = Arc::new(LockCore {
            status,
            deadline: Instant::now() + self.timeout,
        });
        map.insert(hash, Arc::clone(&core));
        Locked::Write(WritePermit {
            table: Arc::clone(&self.table),
            hash,
            core,
            released: false,
        })
    }

    /// Release `permit` with `status` (the same as
    /// [`WritePermit::release`]).
    pub fn release(&self, permit: WritePermit, status: LockStatus) {
        permit.release(status);
    }

    /// How many keys are locked now.
    pub fn len(&self) -> usize {
        self.table.iter().map(|s| s.lock().len()).sum()
    }

    /// Whether no key is locked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The right to fetch and fill one key. Dropping it unreleased releases
/// its waiters with [`LockStatus::Dropped`].
#[derive(Debug)]
pub struct WritePermit {
    table: Arc<[Table]>,
    hash: HashBinary,
    core: Arc<LockCore>,
    released: bool,
}

impl WritePermit {
    /// Tell the waiters the outcome and free the key.
    pub fn release(mut self, status: LockStatus) {
        self.unlock(status);
    }

    fn unlock(&mut self, status: LockStatus) {
        if self.released {
            return;
        }
        self.released = true;
        // Waiting is not an outcome: treat it as a dropped permit.
        let status = if status == LockStatus::Waiting {
            LockStatus::Dropped
        } else {
            status
        };
        {
            let shard = &self.table[usize::from(self.hash[15]) % SHARDS];
            let mut map = shard.lock();
            // Only our own lock: after a timeout a newer writer may hold it.
            if map
                .get(&self.hash)
                .is_some_and(|c| Arc::ptr_eq(c, &self.core))
            {
                map.remove(&self.hash);
            }
        }
        self.core.status.send_replace(status);
    }
}

impl Drop for WritePermit {
    fn drop(&mut self) {
        self.unlock(LockStatus::Dropped);
    }
}

/// A wait on another request's fill of the same key.
#[derive(Debug)]
pub struct ReadLock {
    core: Arc<LockCore>,
}

impl ReadLock {
    /// Wait until the writer releases the lock, or until the lock's
    /// timeout ([`LockStatus::Timeout`]).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn wait(&self) -> LockStatus {
        let mut rx = self.core.status.subscribe();
        let outcome = tokio::time::timeout_at(
            self.core.deadline,
            rx.wait_for(|s| *s != LockStatus::Waiting),
        )
        .await;
        match outcome {
            Ok(Ok(status)) => *status,
            // The sender lives in `core`, which we hold: cannot happen,
            // but a closed channel means nobody will write.
            Ok(Err(_)) => LockStatus::Dropped,
            Err(_) => LockStatus::Timeout,
        }
    }

    /// The status now, without waiting.
    pub fn lock_status(&self) -> LockStatus {
        let status = *self.core.status.borrow();
        if status == LockStatus::Waiting && self.expired() {
            LockStatus::Timeout
        } else {
            status
        }
    }

    /// Whether the lock's timeout has passed.
    pub fn expired(&self) -> bool {
        Instant::now() >= self.core.deadline
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn key(s: &str) -> CacheKey {
        CacheKey::new("", s, "")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn hundred_lockers_one_writer() {
        let lock = Arc::new(CacheLock::new(Duration::from_secs(30)));
        let barrier = Arc::new(tokio::sync::Barrier::new(100));
        let writers = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..100)
            .map(|_| {
                let (lock, barrier) = (Arc::clone(&lock), Arc::clone(&barrier));
                let (writers, done) = (Arc::clone(&writers), Arc::clone(&done));
                tokio::spawn(async move {
                    let locked = lock.lock(&key("one"));
                    // Everyone has locked before the writer releases.
                    barrier.wait().await;
                    match locked {
                        Locked::Write(permit) => {
                            writers.fetch_add(1, Ordering::SeqCst);
                            permit.release(LockStatus::Done);
                        }
                        Locked::Read(r) => {
                            if r.wait().await == LockStatus::Done {
                                done.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                    }
                })
            })
            .collect();
        for t in tasks {
            tokio::time::timeout(Duration::from_secs(30), t)
                .await
                .unwrap()
                .unwrap();
        }
        assert_eq!(writers.load(Ordering::SeqCst), 1);
        assert_eq!(done.load(Ordering::SeqCst), 99);
        assert!(lock.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn waiters_time_out_and_a_new_writer_takes_over() {
        let lock = CacheLock::new(Duration::from_secs(2));
        let Locked::Write(slow) = lock.lock(&key("k")) else {
            panic!("first is the writer");
        };
        let Locked::Read(r) = lock.lock(&key("k")) else {
            panic!("second waits");
        };
        assert_eq!(r.lock_status(), LockStatus::Waiting);
        let start = Instant::now();
        assert_eq!(r.wait().await, LockStatus::Timeout);
        assert_eq!(start.elapsed(), Duration::from_secs(2));
        assert!(r.expired());
        assert_eq!(r.lock_status(), LockStatus::Timeout);
        // The expired lock is taken over; the old writer's release does
        // not free the new one.
        let Locked::Write(fresh) = lock.lock(&key("k")) else {
            panic!("expired lock is taken over");
        };
        slow.release(LockStatus::Done);
        assert!(!lock.lock(&key("k")).is_write());
        drop(fresh);
        assert!(lock.is_empty());
    }

    #[tokio::test]
    async fn failures_release_at_once() {
        let lock = CacheLock::new(Duration::from_secs(3600));
        for status in [LockStatus::GiveUp, LockStatus::TransientError] {
            let Locked::Write(w) = lock.lock(&key("f")) else {
                panic!("writer");
            };
            let Locked::Read(r) = lock.lock(&key("f")) else {
                panic!("reader");
            };
            let waiter = tokio::spawn(async move { r.wait().await });
            lock.release(w, status);
            assert_eq!(waiter.await.unwrap(), status);
        }
        let Locked::Write(w) = lock.lock(&key("f")) else {
            panic!("writer");
        };
        let Locked::Read(r) = lock.lock(&key("f")) else {
            panic!("reader");
        };
        // Other keys are independent.
        assert!(lock.lock(&key("g")).is_write());
        drop(w);
        assert_eq!(r.wait().await, LockStatus::Dropped);
        assert!(lock.lock(&key("f")).is_write());
    }
}
