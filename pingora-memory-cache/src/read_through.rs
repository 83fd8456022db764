//! [`RTCache`]: a read-through cache that coalesces concurrent lookups of
//! one missing key into one call of its [`Lookup`].

use crate::{CacheStatus, MemoryCache};
use parking_lot::Mutex;
use pingora_error::{BError, Error, ErrorType};
use std::collections::HashMap;
use std::error::Error as StdError;
use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// What a [`Lookup`] may fail with.
pub type LookupError = Box<dyn StdError + Send + Sync>;

/// How an [`RTCache`] fetches a missing value.
///
/// Implement it on a marker type with `async fn lookup`; `extra` carries
/// whatever the lookup needs besides the key (a client, a request
/// context), passed to [`RTCache::get`].
///
/// # Examples
///
/// ```
/// use pingora_memory_cache::{Lookup, LookupError};
/// use std::time::Duration;
///
/// struct Double;
///
/// impl Lookup<u32, u32, ()> for Double {
///     async fn lookup(key: &u32, _extra: Option<&()>) -> Result<(u32, Option<Duration>), LookupError> {
///         Ok((key * 2, Some(Duration::from_secs(60))))
///     }
/// }
/// ```
pub trait Lookup<K, T, S> {
    /// Fetch the value of `key` and how long it stays fresh (`None`:
    /// until evicted). An error is returned to every caller waiting for
    /// this lookup, and nothing is cached.
    fn lookup(
        key: &K,
        extra: Option<&S>,
    ) -> impl Future<Output = Result<(T, Option<Duration>), LookupError>> + Send;
}

/// An error shared by every caller of one failed lookup.
#[derive(Debug, Clone)]
struct SharedError(Arc<dyn StdError + Send + Sync>);

impl std::fmt::Display for SharedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl StdError for SharedError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.0.source()
    }
}

/// The error kind of a failed [`Lookup`].
pub const LOOKUP_ERROR: ErrorType = ErrorType::Custom("LookupError");

type Outcome<T> = Option<Result<T, SharedError>>;

/// A lookup in flight: its result goes out on `tx`.
struct Pending<T> {
    tx: watch::Sender<Outcome<T>>,
    started: Instant,
}

/// The lookups in flight by key hash (one shard of them).
type InFlight<T> = Mutex<HashMap<u64, Arc<Pending<T>>>>;

/// Removes a lookup from the in-flight map when its leader finishes or is
/// dropped (cancelled); the waiters of a dropped one see the channel
/// close and start over.
struct Lead<'a, T> {
    map: &'a InFlight<T>,
    hash: u64,
    pending: Arc<Pending<T>>,
}

impl<T> Drop for Lead<'_, T> {
    fn drop(&mut self) {
        let mut map = self.map.lock();
        // A newer lookup may have replaced this one (see `lock_age`).
        if map
            .get(&self.hash)
            .is_some_and(|p| Arc::ptr_eq(p, &self.pending))
        {
            map.remove(&self.hash);
        }
    }
}

const SHARDS: usize = 16;

/// A read-through [`MemoryCache`]: [`get`](Self::get) returns the cached
/// value, or calls `CB`'s [`Lookup`] and caches what it returns.
///
/// Concurrent `get`s of one missing key make **one** lookup: the first
/// caller runs it, the others wait for its result ([`CacheStatus::LockHit`]).
/// A failed lookup's error reaches all of them and nothing is cached, so
/// the next `get` tries again. A waiter that waits longer than its lock
/// timeout runs the lookup itself.
///
/// # Examples
///
/// Caching an authorization lookup, keyed by API token:
///
/// ```
/// use pingora_memory_cache::{CacheStatus, Lookup, LookupError, RTCache};
/// use std::sync::Arc;
/// use std::time::Duration;
///
/// /// What the auth service says about a token.
/// #[derive(Clone, Debug, PartialEq)]
/// struct Grant { user: String, admin: bool }
///
/// /// Asks the auth service (here: a stand-in).
/// struct AuthLookup;
///
/// impl Lookup<String, Arc<Grant>, ()> for AuthLookup {
///     async fn lookup(token: &String, _: Option<&()>) -> Result<(Arc<Grant>, Option<Duration>), LookupError> {
///         tokio::time::sleep(Duration::from_millis(5)).await;
///         match token.as_str() {
///             "t-alice" => Ok((Arc::new(Grant { user: "alice".into(), admin: true }), Some(Duration::from_secs(30)))),
///             _ => Err("unknown token".into()),
///         }
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// // 10 000 tokens; a caller waits at most 1 s for another's lookup.
/// let auth: RTCache<String, Arc<Grant>, AuthLookup, ()> =
///     RTCache::new(10_000, None, Some(Duration::from_secs(1)));
///
/// let (grant, status) = auth.get(&"t-alice".to_string(), None, None).await;
/// assert_eq!(grant.unwrap().user, "alice");
/// assert_eq!(status, CacheStatus::Miss);
/// let (_, status) = auth.get(&"t-alice".to_string(), None, None).await;
/// assert_eq!(status, CacheStatus::Hit);
/// assert!(auth.get(&"t-mallory".to_string(), None, None).await.0.is_err());
/// # }
/// ```
pub struct RTCache<K: Hash, T: Clone, CB, S> {
    cache: MemoryCache<K, T>,
    pending: Box<[InFlight<T>]>,
    lock_age: Option<Duration>,
    lock_timeout: Option<Duration>,
    _lookup: PhantomData<fn(&S) -> CB>,
}

impl<K: Hash, T: Clone, CB, S> std::fmt::Debug for RTCache<K, T, CB, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RTCache")
            .field("cache", &self.cache)
            .field("lock_age", &self.lock_age)
            .field("lock_timeout", &self.lock_timeout)
            .finish_non_exhaustive()
    }
}

/// What one `get` does after a miss.
enum Role<'a, T> {
    Lead(Lead<'a, T>),
    Wait(watch::Receiver<Outcome<T>>),
}

impl<K, T, CB, S> RTCache<K, T, CB, S>
where
    K: Hash,
    T: Clone + Send + Sync,
    CB: Lookup<K, T, S>,
{
    /// A cache of at most `size` entries. A lookup running longer than
    /// `lock_age` no longer holds back new callers (they start their
    /// own); a caller waits at most `lock_timeout` for another's lookup
    /// before running its own (overridable per [`get`](Self::get)).
    /// `None`: no limit.
    pub fn new(size: usize, lock_age: Option<Duration>, lock_timeout: Option<Duration>) -> Self {
        Self {
            cache: MemoryCache::new(size),
            pending: (0..SHARDS).map(|_| Mutex::default()).collect(),
            lock_age,
            lock_timeout,
            _lookup: PhantomData,
        }
    }

    /// The value of `key`: cached, or looked up (once for all concurrent
    /// callers) and cached for the TTL the lookup gives. `lock_timeout`
    /// overrides the cache's for this call; `extra` goes to the lookup.
    ///
    /// The status says where the value came from: [`Hit`], [`Miss`] or
    /// [`Expired`] (this call looked it up), [`LockHit`] (another call
    /// did).
    ///
    /// # Errors
    ///
    /// [`LOOKUP_ERROR`] when the lookup (this call's, or the one it waited
    /// for) failed, with the lookup's error as the cause.
    ///
    /// # Cancel safety
    ///
    /// Dropping a `get` that runs the lookup cancels it; the callers
    /// waiting for it start over, and one of them runs it again.
    ///
    /// [`Hit`]: CacheStatus::Hit
    /// [`Miss`]: CacheStatus::Miss
    /// [`Expired`]: CacheStatus::Expired
    /// [`LockHit`]: CacheStatus::LockHit
    pub async fn get(
        &self,
        key: &K,
        lock_timeout: Option<Duration>,
        extra: Option<&S>,
    ) -> (Result<T, BError>, CacheStatus) {
        let hash = self.cache.hash(key);
        loop {
            let (cached, status) = self.cache.get_hashed(hash);
            if let Some(value) = cached {
                return (Ok(value), status);
            }
            match self.join_or_lead(hash) {
                Role::Lead(lead) => {
                    let outcome = self.lead(lead, key, extra).await;
                    return (outcome.map_err(|e| lookup_error(e, false)), status);
                }
                Role::Wait(rx) => match self.wait(rx, lock_timeout.or(self.lock_timeout)).await {
                    Waited::Done(outcome) => {
                        let result = outcome.map_err(|e| lookup_error(e, true));
                        return (result, CacheStatus::LockHit);
                    }
                    Waited::TimedOut => {
                        let outcome = self.load(hash, key, extra).await;
                        return (outcome.map_err(|e| lookup_error(e, false)), status);
                    }
                    // The lookup was cancelled: start over.
                    Waited::Gone => continue,
                },
            }
        }
    }

    /// Like [`get`](Self::get), but a value expired for at most
    /// `stale_ttl` (any, if `None`) is served while one caller refreshes
    /// it: that caller looks it up and gets the new value
    /// ([`CacheStatus::Expired`]), the others get the stale one at once
    /// ([`CacheStatus::Stale`]). If the refresh fails, its caller gets the
    /// stale value too. Past `stale_ttl`, this is [`get`](Self::get).
    ///
    /// # Errors
    ///
    /// As [`get`](Self::get), when there is nothing stale to serve.
    ///
    /// # Examples
    ///
    /// ```
    /// # use pingora_memory_cache::{CacheStatus, Lookup, LookupError, RTCache};
    /// # use std::time::Duration;
    /// struct Config;
    /// impl Lookup<&'static str, u64, ()> for Config {
    ///     async fn lookup(_: &&'static str, _: Option<&()>) -> Result<(u64, Option<Duration>), LookupError> {
    ///         Ok((42, Some(Duration::from_secs(1))))
    ///     }
    /// }
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let cache: RTCache<&str, u64, Config, ()> = RTCache::new(10, None, None);
    /// cache.get(&"limit", None, None).await.0.unwrap();
    /// tokio::time::sleep(Duration::from_secs(2)).await;
    /// // Expired 1 s ago, no refresh running: this caller refreshes.
    /// let minute = Some(Duration::from_secs(60));
    /// let (value, status) = cache.get_stale(&"limit", None, minute, None).await;
    /// assert_eq!((value.unwrap(), status), (42, CacheStatus::Expired));
    /// # }
    /// ```
    pub async fn get_stale(
        &self,
        key: &K,
        lock_timeout: Option<Duration>,
        stale_ttl: Option<Duration>,
        extra: Option<&S>,
    ) -> (Result<T, BError>, CacheStatus) {
        let hash = self.cache.hash(key);
        let (stale, age) = match self.cache.get_stale_hashed(hash) {
            (Some(value), CacheStatus::Stale(age)) if stale_ttl.is_none_or(|t| age <= t) => {
                (value, age)
            }
            (Some(value), CacheStatus::Hit) => return (Ok(value), CacheStatus::Hit),
            _ => return self.get(key, lock_timeout, extra).await,
        };
        match self.join_or_lead(hash) {
            Role::Wait(_) => (Ok(stale), CacheStatus::Stale(age)),
            Role::Lead(lead) => match self.lead(lead, key, extra).await {
                Ok(fresh) => (Ok(fresh), CacheStatus::Expired),
                Err(_) => (Ok(stale), CacheStatus::Stale(age)),
            },
        }
    }

    /// Run the lookup as the one in flight, and hand its result to the
    /// waiters.
    async fn lead(&self, lead: Lead<'_, T>, key: &K, extra: Option<&S>) -> Result<T, SharedError> {
        let outcome = self.load(lead.hash, key, extra).await;
        lead.pending.tx.send_replace(Some(outcome.clone()));
        outcome
    }

    fn join_or_lead(&self, hash: u64) -> Role<'_, T> {
        let shard = &self.pending[(hash % SHARDS as u64) as usize];
        let mut map = shard.lock();
        if let Some(p) = map.get(&hash) {
            let fresh = self.lock_age.is_none_or(|age| p.started.elapsed() < age);
            if fresh {
                return Role::Wait(p.tx.subscribe());
            }
        }
        let pending = Arc::new(Pending {
            tx: watch::channel(None).0,
            started: Instant::now(),
        });
        map.insert(hash, Arc::clone(&pending));
        Role::Lead(Lead {
            map: shard,
            hash,
            pending,
        })
    }

    /// Run the lookup and cache a success.
    async fn load(&self, hash: u64, key: &K, extra: Option<&S>) -> Result<T, SharedError> {
        match CB::lookup(key, extra).await {
            Ok((value, ttl)) => {
                // Cached before anyone is told, so a `get` arriving once
                // the lookup left the in-flight map finds it.
                self.cache.put_hashed(hash, value.clone(), ttl);
                Ok(value)
            }
            Err(e) => Err(SharedError(Arc::from(e))),
        }
    }

    async fn wait(
        &self,
        mut rx: watch::Receiver<Outcome<T>>,
        timeout: Option<Duration>,
    ) -> Waited<T> {
        let done = async {
            match rx.wait_for(Option::is_some).await {
                Ok(outcome) => outcome.clone().map_or(Waited::Gone, Waited::Done),
                Err(_) => Waited::Gone,
            }
        };
        match timeout {
            None => done.await,
            Some(t) => tokio::time::timeout(t, done)
                .await
                .unwrap_or(Waited::TimedOut),
        }
    }

    /// The underlying cache, to put, remove or peek without a lookup.
    pub fn cache(&self) -> &MemoryCache<K, T> {
        &self.cache
    }

    /// Remove `key` from the cache (a lookup in flight still caches its
    /// result).
    pub fn remove(&self, key: &K) {
        self.cache.remove(key);
    }
}

enum Waited<T> {
    Done(Result<T, SharedError>),
    TimedOut,
    Gone,
}

fn lookup_error(e: SharedError, waited: bool) -> BError {
    let context = if waited {
        "the lookup this call waited for failed"
    } else {
        "lookup failed"
    };
    Error::because(LOOKUP_ERROR, context, e)
}

#[cfg(test)]
mod tests;
