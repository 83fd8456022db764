//! A rate limiter shared by many processes through Redis (feature `redis`).
//!
//! See [`RedisRateLimiter`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redis::Script;
use redis::aio::MultiplexedConnection;

/// The server side of the counter, run atomically by Redis (EVALSHA, with
/// a fallback to EVAL when the server has not seen the script yet).
///
/// KEYS[1] counts this window, KEYS[2] the previous one; ARGV[1] is the
/// count to add (0 only reads), ARGV[2] the keys' lifetime in ms. The
/// expiry is set once, when the key has none, so a key lives two windows
/// after its first count and Redis needs no cleanup.
const SCRIPT: &str = r"
local current = redis.call('INCRBY', KEYS[1], ARGV[1])
if redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
local previous = tonumber(redis.call('GET', KEYS[2]) or '0')
return {current, previous}
";

/// What a [`RedisRateLimiter`] does while Redis cannot be reached (a
/// connection refused, an error or a call past its timeout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailurePolicy {
    /// Fail open: keep admitting on this process's own counts. Each process
    /// still holds a key to the limit on what it saw itself, so a fleet of
    /// `M` processes admits up to `M` times the limit until Redis is back.
    Open,
    /// Fail closed: refuse every request while Redis is down.
    Closed,
}

/// The settings of a [`RedisRateLimiter`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RedisLimitConfig {
    /// Requests admitted per key per window, across every process.
    pub limit: u64,
    /// The window length (at least 1 ms).
    pub window: Duration,
    /// Flush a key's local count to Redis once it has admitted this many
    /// requests since its last flush (`k` in the tolerance). Default 10.
    pub flush_every: u64,
    /// ... or once this long has passed since its last flush, at its next
    /// request. Also how often a down Redis is tried again. Default 50 ms.
    pub flush_interval: Duration,
    /// The bound on each call to Redis, connecting included. Default 50 ms.
    pub timeout: Duration,
    /// What to do while Redis is down. Default [`FailurePolicy::Open`].
    pub failure_policy: FailurePolicy,
    /// Prefix of the Redis keys (`{<prefix><key>}:<window>`). Default `rl:`.
    pub prefix: String,
}

impl RedisLimitConfig {
    /// `limit` requests per key per `window`, with the defaults above.
    pub fn new(limit: u64, window: Duration) -> Self {
        Self {
            limit,
            window: window.max(Duration::from_millis(1)),
            flush_every: 10,
            flush_interval: Duration::from_millis(50),
            timeout: Duration::from_millis(50),
            failure_policy: FailurePolicy::Open,
            prefix: "rl:".to_owned(),
        }
    }
}

/// The answer of [`RedisRateLimiter::check`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    allowed: bool,
    count: u64,
    limit: u64,
    retry_after: Duration,
}

impl Decision {
    /// Whether the request may go on.
    pub fn allowed(&self) -> bool {
        self.allowed
    }

    /// The key's estimated count in the sliding window, this request
    /// included when it was admitted.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The limit (for `X-RateLimit-Limit`).
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// How many more requests the key may send now (for
    /// `X-RateLimit-Remaining`).
    pub fn remaining(&self) -> u64 {
        self.limit.saturating_sub(self.count)
    }

    /// When a refused client may try again: the end of the current window
    /// (for `Retry-After`). Zero when admitted.
    pub fn retry_after(&self) -> Duration {
        self.retry_after
    }
}

/// A sliding-window rate limiter whose counts are shared by every process
/// that points at the same Redis.
///
/// # Algorithm
///
/// Time is cut into fixed windows aligned on the Unix epoch, so every
/// process agrees on them (their clocks should be within a small part of
/// a window). Redis keeps one counter per key and window; a key's count is
/// the sliding estimate of [`Rate`](crate::rate::Rate):
/// `previous * (1 - f) + current`, `f` the part of the window gone.
///
/// Redis runs a Lua script (EVALSHA): `INCRBY` this window's counter, set
/// its expiry when it has none, and read the previous window's counter, all
/// atomically and in one round trip. A script rather than `INCR` +
/// `PEXPIRE` in `MULTI`: it also reads the previous window, and sets the
/// expiry only once instead of on every call.
///
/// # The local counter in front
///
/// Most requests never touch Redis: each process keeps, per key, the last
/// counts Redis returned plus the requests it admitted since, and decides
/// on those. It sends its new admissions to Redis (`INCRBY n`, in a task of
/// its own, off the request's path) once a key has `flush_every` (`k`) of
/// them, or at the key's first request `flush_interval` after its last
/// flush. With `k = 10`, one request in ten touches Redis.
///
/// # Tolerance
///
/// A process never counts its own admissions late, but sees the others'
/// only at its next flush. So with `M` processes sharing a key, a window
/// admits at most about `limit + M * k` requests (plus, per process, the
/// requests it admits during one Redis round trip), and at least
/// `limit - k` when it gets more than the limit. A limit of 1000 with
/// `k = 10` on 4 proxies admits between 990 and 1040.
///
/// # When Redis is down
///
/// A failed call (refused, an error, or past `timeout`) counts in
/// [`failures`](Self::failures) and marks Redis down; the connection is
/// dropped and made anew by the next try, one request every
/// `flush_interval`. While down, [`FailurePolicy`] decides:
/// [`Open`](FailurePolicy::Open) goes on with each process's own counts,
/// [`Closed`](FailurePolicy::Closed) refuses everything.
///
/// # Memory
///
/// One small entry per key seen in the current or the previous window;
/// older ones are dropped when a window starts.
///
/// # Examples
///
/// ```no_run
/// use pingora_limits::distributed::{FailurePolicy, RedisLimitConfig, RedisRateLimiter};
/// use std::time::Duration;
///
/// # async fn run() -> Result<(), redis::RedisError> {
/// let mut config = RedisLimitConfig::new(100, Duration::from_secs(1));
/// config.failure_policy = FailurePolicy::Closed;
/// let limiter = RedisRateLimiter::new("redis://127.0.0.1:6379/", config)?;
/// let decision = limiter.check("client-42").await;
/// if !decision.allowed() {
///     println!("429, retry after {:?}", decision.retry_after());
/// }
/// println!("redis failures so far: {}", limiter.failures());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct RedisRateLimiter {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: redis::Client,
    config: RedisLimitConfig,
    script: Script,
    connection: Mutex<Option<MultiplexedConnection>>,
    keys: Mutex<Keys>,
    /// Whether the last call to Redis failed.
    down: AtomicBool,
    /// When (ms since `epoch`) a down Redis may be tried again.
    retry_at: AtomicU64,
    epoch: Instant,
    failures: AtomicU64,
}

#[derive(Debug, Default)]
struct Keys {
    states: HashMap<String, KeyState>,
    /// The window of the last sweep of old keys.
    swept: u64,
}

/// One key's view, in window `window`.
#[derive(Debug)]
struct KeyState {
    window: u64,
    /// The previous window's count, as last seen.
    previous: u64,
    /// This window's count, as Redis last returned it.
    current: u64,
    /// Admitted here, sent to Redis, not answered yet.
    in_flight: u64,
    /// Admitted here, not sent yet.
    pending: u64,
    last_flush: Instant,
}

impl KeyState {
    fn new(window: u64, now: Instant) -> Self {
        Self {
            window,
            previous: 0,
            current: 0,
            in_flight: 0,
            pending: 0,
            last_flush: now,
        }
    }

    /// Move to `window` if it is a later one.
    fn roll(&mut self, window: u64) {
        if window <= self.window {
            return;
        }
        let total = self.current + self.in_flight + self.pending;
        self.previous = if window == self.window + 1 { total } else { 0 };
        // Unsent counts of the old window stay here: they are part of
        // `previous` locally, and of the tolerance for the others.
        self.current = 0;
        self.in_flight = 0;
        self.pending = 0;
        self.window = window;
    }

    fn estimate(&self, gone: f64) -> f64 {
        self.previous as f64 * (1.0 - gone) + (self.current + self.in_flight + self.pending) as f64
    }
}

/// Where the wall clock stands: the window index, the part of it gone,
/// and the time left in it.
struct Clock {
    window: u64,
    gone: f64,
    left: Duration,
}

impl RedisRateLimiter {
    /// A limiter on the Redis at `url` (`redis://host:port/db`). Nothing
    /// is sent before the first [`check`](Self::check).
    ///
    /// # Errors
    ///
    /// When `url` is not a valid Redis URL.
    pub fn new(url: &str, config: RedisLimitConfig) -> redis::RedisResult<Self> {
        let client = redis::Client::open(url)?;
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                config,
                script: Script::new(SCRIPT),
                connection: Mutex::new(None),
                keys: Mutex::new(Keys::default()),
                down: AtomicBool::new(false),
                retry_at: AtomicU64::new(0),
                epoch: Instant::now(),
                failures: AtomicU64::new(0),
            }),
        })
    }

    /// The settings.
    pub fn config(&self) -> &RedisLimitConfig {
        &self.inner.config
    }

    /// Count one request of `key` and say whether it may go on.
    ///
    /// Decided on local counts; at most one call to Redis waits here (the
    /// retry of a down Redis, bounded by `timeout`), while flushes run in
    /// a task of their own. Must run inside a tokio runtime.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before it finishes may leave the request
    /// counted, never miscounts others.
    pub async fn check(&self, key: &str) -> Decision {
        let inner = &self.inner;
        if inner.down.load(Ordering::Acquire) {
            if inner.claim_retry() {
                // Read (and send what is pending) before deciding.
                Inner::flush(Arc::clone(inner), key.to_owned(), true).await;
            }
            if inner.down.load(Ordering::Acquire) {
                return inner.decide(
                    key,
                    inner.config.failure_policy == FailurePolicy::Open,
                    false,
                );
            }
        }
        inner.decide(key, true, true)
    }

    /// How many calls to Redis failed so far (refused, an error, or past
    /// the timeout): the metric of the Redis-down behaviour.
    pub fn failures(&self) -> u64 {
        self.inner.failures.load(Ordering::Relaxed)
    }

    /// The counter behind [`failures`](Self::failures), for an exporter.
    pub fn failure_counter(&self) -> &AtomicU64 {
        &self.inner.failures
    }

    /// Whether the last call to Redis failed.
    pub fn redis_down(&self) -> bool {
        self.inner.down.load(Ordering::Acquire)
    }
}

impl Inner {
    fn clock(&self) -> Clock {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        let window = self.config.window.as_millis().max(1);
        let into = now % window;
        Clock {
            window: u64::try_from(now / window).unwrap_or(u64::MAX),
            gone: into as f64 / window as f64,
            left: Duration::from_millis(u64::try_from(window - into).unwrap_or(u64::MAX)),
        }
    }

    fn keys(&self) -> MutexGuard<'_, Keys> {
        // The state stays consistent at every unlock: a panic elsewhere
        // while holding it leaves nothing half-done.
        self.keys.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Decide on local counts: `admit` false refuses outright; `flush`
    /// lets the decision send the key's counts to Redis when due.
    fn decide(self: &Arc<Self>, key: &str, admit: bool, flush: bool) -> Decision {
        let clock = self.clock();
        let now = Instant::now();
        let limit = self.config.limit;
        let mut keys = self.keys();
        if keys.swept < clock.window {
            keys.swept = clock.window;
            keys.states
                .retain(|_, state| state.window + 1 >= clock.window);
        }
        let state = keys
            .states
            .entry(key.to_owned())
            .or_insert_with(|| KeyState::new(clock.window, now));
        state.roll(clock.window);
        let with_this = state.estimate(clock.gone) + 1.0;
        let allowed = admit && with_this <= limit as f64;
        let count = if allowed {
            state.pending += 1;
            with_this
        } else {
            with_this - 1.0
        };
        let due = state.pending >= self.config.flush_every.max(1)
            || (state.pending > 0
                && now.duration_since(state.last_flush) >= self.config.flush_interval);
        drop(keys);
        if flush && due {
            tokio::spawn(Self::flush(Arc::clone(self), key.to_owned(), false));
        }
        Decision {
            allowed,
            count: count.ceil() as u64,
            limit,
            retry_after: if allowed { Duration::ZERO } else { clock.left },
        }
    }

    /// Whether this caller may try a down Redis now (one per
    /// `flush_interval`).
    fn claim_retry(&self) -> bool {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        let at = self.retry_at.load(Ordering::Acquire);
        now >= at
            && self
                .retry_at
                .compare_exchange(
                    at,
                    now + self.interval_ms(),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
    }

    fn interval_ms(&self) -> u64 {
        u64::try_from(self.config.flush_interval.as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    /// Send `key`'s pending count to Redis and take its answer; `always`
    /// calls Redis even with nothing pending (to read, or to retry).
    async fn flush(self: Arc<Self>, key: String, always: bool) {
        let clock = self.clock();
        let sent = {
            let mut keys = self.keys();
            let now = Instant::now();
            let state = keys
                .states
                .entry(key.clone())
                .or_insert_with(|| KeyState::new(clock.window, now));
            state.roll(clock.window);
            if state.pending == 0 && !always {
                return;
            }
            let sent = state.pending;
            state.pending = 0;
            state.in_flight += sent;
            state.last_flush = now;
            sent
        };
        let answer = self.remote_add(&key, clock.window, sent).await;
        let mut keys = self.keys();
        let Some(state) = keys.states.get_mut(&key) else {
            return;
        };
        // An answer for a window that is over changes nothing now.
        let same_window = state.window == clock.window;
        if same_window {
            state.in_flight = state.in_flight.saturating_sub(sent);
        }
        match answer {
            Some((current, previous)) => {
                self.down.store(false, Ordering::Release);
                if same_window {
                    state.current = state.current.max(current);
                    state.previous = state.previous.max(previous);
                }
            }
            None => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                self.down.store(true, Ordering::Release);
                let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
                self.retry_at
                    .fetch_max(now + self.interval_ms(), Ordering::AcqRel);
                if same_window {
                    // Sent again with the next flush.
                    state.pending += sent;
                }
            }
        }
    }

    /// Run the script: add `count` to `key`'s counter of `window`; the
    /// counts of this window and the previous one, or `None` on failure.
    async fn remote_add(&self, key: &str, window: u64, count: u64) -> Option<(u64, u64)> {
        let prefix = &self.config.prefix;
        // One hash tag for both keys: a Redis Cluster keeps them on one
        // node, as a script needs.
        let current = format!("{{{prefix}{key}}}:{window}");
        let previous = format!("{{{prefix}{key}}}:{}", window.saturating_sub(1));
        let ttl = u64::try_from(self.config.window.as_millis())
            .unwrap_or(u64::MAX / 4)
            .saturating_mul(2)
            .saturating_add(1000);
        let call = async {
            let mut conn = self.connection().await?;
            let mut invocation = self.script.key(current);
            invocation.key(previous).arg(count).arg(ttl);
            invocation.invoke_async::<(u64, u64)>(&mut conn).await.ok()
        };
        match tokio::time::timeout(self.config.timeout, call).await {
            Ok(Some(counts)) => Some(counts),
            _ => {
                // Start over with a new connection on the next try.
                *self
                    .connection
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = None;
                None
            }
        }
    }

    /// The shared connection, made when there is none.
    async fn connection(&self) -> Option<MultiplexedConnection> {
        let cached = self
            .connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if cached.is_some() {
            return cached;
        }
        let made = self.client.get_multiplexed_async_connection().await.ok()?;
        *self
            .connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(made.clone());
        Some(made)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_window_starts_from_everything_the_last_one_saw() {
        let mut state = KeyState::new(7, Instant::now());
        (state.current, state.in_flight, state.pending) = (30, 5, 2);
        state.roll(8);
        assert_eq!((state.previous, state.current, state.pending), (37, 0, 0));
        // A quarter in: 37 * 3/4, nothing new yet.
        assert_eq!(state.estimate(0.25), 27.75);
        state.pending = 3;
        assert_eq!(state.estimate(0.5), 21.5);
    }

    #[test]
    fn skipped_windows_leave_nothing() {
        let mut state = KeyState::new(7, Instant::now());
        state.current = 30;
        state.roll(9);
        assert_eq!(state.estimate(0.0), 0.0);
        // An older window never rolls back.
        state.pending = 1;
        state.roll(3);
        assert_eq!((state.window, state.pending), (9, 1));
    }

    #[test]
    fn decisions_report_what_is_left() {
        let decision = Decision {
            allowed: false,
            count: 12,
            limit: 10,
            retry_after: Duration::from_secs(1),
        };
        assert_eq!(decision.remaining(), 0);
        assert_eq!(decision.count(), 12);
    }
}
