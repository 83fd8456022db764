//! What an accept loop does after a failed accept.
//!
//! Running out of descriptors (`EMFILE`, `ENFILE`) or kernel memory
//! (`ENOBUFS`, `ENOMEM`) does not clear by retrying at once: the waiting
//! connection stays queued, so the listener stays readable and an accept
//! loop that retries at once spins on a core. Instead the loop pauses, 10
//! ms after the first failure, twice as long after each further one, up
//! to 100 ms, while the connections already accepted keep being served
//! and free descriptors as they close. The first success resets the pause.
//!
//! One line is logged per second at most, with the number of failures
//! since the last one, so that a long exhaustion does not flood the log.

use pingora_error::Error;
use std::time::{Duration, Instant};

/// The first pause after a failed accept.
const FIRST_PAUSE: Duration = Duration::from_millis(10);
/// The longest pause.
const MAX_PAUSE: Duration = Duration::from_millis(100);
/// At most one log line per this interval.
const LOG_INTERVAL: Duration = Duration::from_secs(1);

/// The backoff state of one accept loop.
#[derive(Debug)]
pub(crate) struct AcceptBackoff {
    pause: Duration,
    last_log: Option<Instant>,
    /// Failures not yet logged.
    unlogged: u64,
}

impl Default for AcceptBackoff {
    fn default() -> Self {
        Self::new()
    }
}

impl AcceptBackoff {
    /// A loop that has not failed yet.
    pub(crate) const fn new() -> Self {
        Self {
            pause: FIRST_PAUSE,
            last_log: None,
            unlogged: 0,
        }
    }

    /// An accept succeeded.
    pub(crate) fn succeeded(&mut self) {
        self.pause = FIRST_PAUSE;
    }

    /// An accept failed with `error` at `now`: log it (at most once per
    /// interval) and return how long to pause before accepting again.
    pub(crate) fn failed(&mut self, error: &Error, now: Instant) -> Duration {
        let exhausted = is_exhaustion(error);
        self.unlogged += 1;
        if self
            .last_log
            .is_none_or(|last| now.duration_since(last) >= LOG_INTERVAL)
        {
            let count = std::mem::take(&mut self.unlogged);
            if exhausted {
                log::warn!(
                    "{error} ({count} failed accept(s) since the last report); \
                     pausing accepts up to {} ms while connections close",
                    MAX_PAUSE.as_millis()
                );
            } else {
                log::warn!("{error} ({count} failed accept(s) since the last report)");
            }
            self.last_log = Some(now);
        }
        if !exhausted {
            // Another error (such as a connection reset before it was
            // accepted) says nothing about the next accept.
            return FIRST_PAUSE;
        }
        let pause = self.pause;
        self.pause = (self.pause * 2).min(MAX_PAUSE);
        pause
    }
}

/// Whether `error` comes from running out of descriptors or memory.
fn is_exhaustion(error: &Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return matches!(
                io.raw_os_error(),
                Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
            );
        }
        source = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use pingora_error::ErrorType;

    fn accept_error(errno: i32) -> Box<Error> {
        Error::because(
            ErrorType::AcceptError,
            "TCP accept failed",
            std::io::Error::from_raw_os_error(errno),
        )
    }

    #[test]
    fn pauses_grow_then_reset() {
        let mut backoff = AcceptBackoff::new();
        let now = Instant::now();
        let emfile = accept_error(libc::EMFILE);
        let pauses: Vec<u128> = (0..6)
            .map(|_| backoff.failed(&emfile, now).as_millis())
            .collect();
        assert_eq!(pauses, [10, 20, 40, 80, 100, 100]);
        backoff.succeeded();
        assert_eq!(backoff.failed(&emfile, now), FIRST_PAUSE);
        // A reset connection is not exhaustion: no growing pause.
        let reset = accept_error(libc::ECONNABORTED);
        assert_eq!(backoff.failed(&reset, now), FIRST_PAUSE);
        assert_eq!(backoff.failed(&reset, now), FIRST_PAUSE);
    }

    #[test]
    fn logs_once_per_interval() {
        let mut backoff = AcceptBackoff::new();
        let start = Instant::now();
        let enfile = accept_error(libc::ENFILE);
        backoff.failed(&enfile, start);
        assert_eq!(backoff.unlogged, 0, "the first failure is logged");
        for _ in 0..50 {
            backoff.failed(&enfile, start + Duration::from_millis(500));
        }
        assert_eq!(backoff.unlogged, 50, "none logged within the interval");
        backoff.failed(&enfile, start + LOG_INTERVAL);
        assert_eq!(backoff.unlogged, 0);
    }
}
