//! Timeouts and sleeps for servers that hold very many timers at once.
//!
//! Two flavours with one shape. Both take a [`Duration`](std::time::Duration)
//! and a future, and resolve to `Result<F::Output, `[`Elapsed`]`>`:
//!
//! - [`timeout`] and [`sleep`] at the crate root use tokio's timer. They are
//!   precise to the millisecond and cost one timer-wheel entry each.
//! - [`fast::timeout`] and [`fast::sleep`] round deadlines up to 5 ms ticks
//!   and fire each tick's timers together from one shared thread. They never
//!   fire early and fire at most about 10 ms late (60 ms for timers of a
//!   second or more); in exchange, arming and
//!   dropping one costs about a third of a tokio timer (1,000,000 armed at
//!   once: 37 ms against 97 ms in this crate's benchmark), which matters to
//!   a proxy that keeps read, write and idle timeouts on hundreds of
//!   thousands of connections, almost none of which ever fire.
//!
//! Use the fast flavour for guard timeouts (I/O, connect, idle) and the
//! precise one where the exact moment matters (retry back-off, rate
//! pacing, tests on paused time: the fast timer runs on real time only).
//! The book chapter `docs/src/timeouts.md` in the repository has the
//! trade-off and the benchmark figures.
//!
//! # What this crate is not
//!
//! - Not a timer wheel to build on: there is no API for intervals, resets or
//!   deadlines as values, only the two futures above.
//! - Not a clock: the fast timers read [`std::time::Instant`] and do not
//!   follow tokio's paused or advanced test time.
//! - Not independent of tokio: the precise flavour is tokio's timer, and the
//!   fast flavour falls back to it if its own thread cannot start.
//!
//! # Features
//!
//! None. The crate needs tokio with its `time` feature.
//!
//! # Types from other crates
//!
//! None appear in the API: the precise flavour wraps tokio's futures in this
//! crate's own [`Timeout`] and [`Sleep`], and both flavours report
//! [`Elapsed`].
//!
//! # Examples
//!
//! ```
//! use pingora_timeout::{fast, timeout, Elapsed};
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // A read that would never finish, guarded by a coarse timeout.
//! let read = std::future::pending::<std::io::Result<usize>>();
//! let err: Elapsed = fast::timeout(Duration::from_millis(20), read).await.unwrap_err();
//! assert_eq!(err.to_string(), "deadline has elapsed");
//!
//! // The same call shape on tokio's precise timer.
//! assert_eq!(timeout(Duration::from_secs(1), async { "done" }).await, Ok("done"));
//! # }
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod elapsed;
pub mod fast;
mod precise;

pub use elapsed::Elapsed;
pub use precise::{Sleep, Timeout, sleep, timeout};
