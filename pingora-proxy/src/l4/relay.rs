//! Moving bytes both ways between the client and the upstream: a copy
//! loop through a buffer per direction (with the byte filters, or with
//! TLS on either side), and the timeouts that bound a whole relay.

use pingora_core::protocols::Stream;
use pingora_error::{Error, ErrorType, Result};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll, Wake, Waker, ready};
use std::time::Duration;
use tokio::io::ReadBuf;
use tokio::time::Instant;

use bytes::BytesMut;

/// The error kind of a session closed after its idle timeout.
pub const IDLE_TIMEOUT: ErrorType = ErrorType::Custom("IdleTimeout");
/// The error kind of a session closed at its total timeout.
pub const TOTAL_TIMEOUT: ErrorType = ErrorType::Custom("SessionTimeout");
/// The error kind of a session closed because the server shut down and
/// its drain timeout passed.
pub const SHUT_DOWN: ErrorType = ErrorType::Custom("ShutDown");

/// Which way bytes go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Direction {
    /// Client to upstream.
    Upstream,
    /// Upstream to client.
    Downstream,
}

/// What the relay moved, shared with the timeouts that watch it.
#[derive(Debug)]
pub(super) struct Activity {
    pub(super) from_downstream: AtomicU64,
    pub(super) from_upstream: AtomicU64,
    /// Whether any byte went through `splice(2)`.
    pub(super) spliced: AtomicBool,
}

impl Activity {
    pub(super) fn new() -> Self {
        Self {
            from_downstream: AtomicU64::new(0),
            from_upstream: AtomicU64::new(0),
            spliced: AtomicBool::new(false),
        }
    }

    /// `n` bytes read going `dir`. No clock is read here: the idle
    /// timeout looks at the byte counts (see [`bounded`]).
    pub(super) fn moved(&self, dir: Direction, n: usize) {
        let counter = match dir {
            Direction::Upstream => &self.from_downstream,
            Direction::Downstream => &self.from_upstream,
        };
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }

    fn total(&self) -> u64 {
        let down = self.from_downstream.load(Ordering::Relaxed);
        down.wrapping_add(self.from_upstream.load(Ordering::Relaxed))
    }
}

/// How long a relay may run.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    pub(super) idle: Option<Duration>,
    pub(super) total_deadline: Option<Instant>,
    pub(super) drain: Duration,
}

/// Wakes the task and notes that the timer or the shutdown signal fired,
/// so that they are polled again only then, not on every wake of the
/// relay.
struct Fired {
    fired: AtomicBool,
    task: Waker,
}

impl Wake for Fired {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.fired.store(true, Ordering::Release);
        self.task.wake_by_ref();
    }
}

/// The watch over one relay: idle, total and drain limits.
struct Watch<'a> {
    activity: &'a Activity,
    limits: Limits,
    drain_deadline: Option<Instant>,
    /// The byte count at the last idle check, and when that check saw it
    /// change (or the start).
    seen: u64,
    active_at: Instant,
}

impl Watch<'_> {
    /// When to look next: the idle timeout is checked every eighth of
    /// it, by whether any byte moved since the last check, so relaying a
    /// chunk reads no clock and re-arms no timer. A session closes
    /// between `idle` and `idle * 9 / 8` after its last byte.
    fn next(&self, now: Instant) -> Option<Instant> {
        let idle = self.limits.idle.map(|idle| {
            let step = (idle / 8).max(Duration::from_millis(1));
            (self.active_at + idle).min(now + step)
        });
        [idle, self.limits.total_deadline, self.drain_deadline]
            .into_iter()
            .flatten()
            .min()
    }

    /// The timer fired at `now`: the error of a passed limit, if any.
    fn check(&mut self, now: Instant) -> Result<()> {
        if self.limits.total_deadline.is_some_and(|at| now >= at) {
            return Error::e_explain(TOTAL_TIMEOUT, "the session's total timeout passed");
        }
        if self.drain_deadline.is_some_and(|at| now >= at) {
            return Error::e_explain(SHUT_DOWN, "the server shut down");
        }
        if let Some(idle) = self.limits.idle {
            let total = self.activity.total();
            if total != self.seen {
                (self.seen, self.active_at) = (total, now);
            } else if now >= self.active_at + idle {
                return Error::e_explain(IDLE_TIMEOUT, "no bytes either way for the idle timeout");
            }
        }
        Ok(())
    }
}

/// Run `relay` until it ends, or until a limit passes: no byte either way
/// for the idle timeout, the total deadline, or the drain timeout after
/// `shutdown` turned true. Dropping `relay` closes what it owns.
///
/// The relay is polled on every wake; the timer and the shutdown signal
/// only when they woke the task.
pub(super) async fn bounded<F>(
    relay: F,
    activity: &Activity,
    limits: Limits,
    mut shutdown: pingora_core::server::ShutdownWatch,
) -> Result<()>
where
    F: Future<Output = Result<()>>,
{
    let mut relay = std::pin::pin!(relay);
    let start = Instant::now();
    let mut watch = Watch {
        activity,
        limits,
        drain_deadline: shutdown.borrow().then(|| start + limits.drain),
        seen: activity.total(),
        active_at: start,
    };
    let draining = async move {
        // A gone sender never signals.
        if shutdown.wait_for(|stop| *stop).await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let mut draining = std::pin::pin!(draining);
    let mut armed = watch.next(start);
    let mut sleep = std::pin::pin!(tokio::time::sleep_until(armed.unwrap_or(start)));
    let mut fired: Option<Arc<Fired>> = None;
    std::future::poll_fn(|cx| {
        if let Poll::Ready(done) = relay.as_mut().poll(cx) {
            return Poll::Ready(done);
        }
        let fired = match &fired {
            Some(f) if f.task.will_wake(cx.waker()) => f,
            _ => fired.insert(Arc::new(Fired {
                fired: AtomicBool::new(true),
                task: cx.waker().clone(),
            })),
        };
        if !fired.fired.swap(false, Ordering::Acquire) {
            return Poll::Pending;
        }
        let waker = Waker::from(Arc::clone(fired));
        let mut timers = Context::from_waker(&waker);
        if watch.drain_deadline.is_none() && draining.as_mut().poll(&mut timers).is_ready() {
            let now = Instant::now();
            watch.drain_deadline = Some(now + limits.drain);
            armed = watch.next(now);
            if let Some(at) = armed {
                sleep.as_mut().reset(at);
            }
        }
        while armed.is_some() && sleep.as_mut().poll(&mut timers).is_ready() {
            let now = Instant::now();
            watch.check(now)?;
            armed = watch.next(now);
            if let Some(at) = armed {
                sleep.as_mut().reset(at);
            }
        }
        Poll::Pending
    })
    .await
}

/// A byte filter over both directions: `(direction, data, end_of_stream)`.
pub(super) type Filter<'a> = dyn FnMut(Direction, &mut BytesMut, bool) -> Result<()> + Send + 'a;

/// The state of one direction of the copy loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Read,
    /// Writing what was read; then shut the write side down when `eof`.
    Write {
        eof: bool,
    },
    Shutdown,
    Done,
}

/// One direction of the copy loop.
struct Half {
    dir: Direction,
    buf: Box<[u8]>,
    /// Unfiltered bytes of `buf` still to write.
    start: usize,
    end: usize,
    /// Filtered bytes still to write (used instead of `buf` with filters).
    out: BytesMut,
    state: State,
}

impl Half {
    fn new(dir: Direction, size: usize) -> Self {
        Self {
            dir,
            buf: vec![0; size].into_boxed_slice(),
            start: 0,
            end: 0,
            out: BytesMut::new(),
            state: State::Read,
        }
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
        from: &mut Stream,
        to: &mut Stream,
        filter: &mut Option<&mut Filter<'_>>,
        activity: &Activity,
    ) -> Poll<Result<()>> {
        loop {
            match self.state {
                State::Read => {
                    let mut read = ReadBuf::new(&mut self.buf);
                    let polled = Pin::new(&mut **from).poll_read(cx, &mut read);
                    let dir = self.dir;
                    ready!(polled).map_err(|e| io_error(dir, e, true))?;
                    let n = read.filled().len();
                    if n > 0 {
                        activity.moved(self.dir, n);
                    }
                    let eof = n == 0;
                    match filter {
                        Some(filter) => {
                            self.out.clear();
                            self.out.extend_from_slice(&self.buf[..n]);
                            filter(self.dir, &mut self.out, eof)?;
                        }
                        None => (self.start, self.end) = (0, n),
                    }
                    self.state = State::Write { eof };
                }
                State::Write { eof } => {
                    ready!(self.poll_write_pending(cx, to))?;
                    self.state = if eof { State::Shutdown } else { State::Read };
                }
                State::Shutdown => {
                    // The other end may be gone already: nothing to tell it.
                    let _ = ready!(Pin::new(&mut **to).poll_shutdown(cx));
                    self.state = State::Done;
                }
                State::Done => return Poll::Ready(Ok(())),
            }
        }
    }

    fn poll_write_pending(&mut self, cx: &mut Context<'_>, to: &mut Stream) -> Poll<Result<()>> {
        loop {
            let pending = if self.out.is_empty() {
                &self.buf[self.start..self.end]
            } else {
                &self.out[..]
            };
            if pending.is_empty() {
                break;
            }
            let polled = Pin::new(&mut **to).poll_write(cx, pending);
            let n = ready!(polled).map_err(|e| io_error(self.dir, e, false))?;
            if n == 0 {
                let e = io::Error::from(io::ErrorKind::WriteZero);
                return Poll::Ready(Err(io_error(self.dir, e, false)));
            }
            if self.out.is_empty() {
                self.start += n;
            } else {
                let _ = self.out.split_to(n);
            }
        }
        // TLS streams hold written bytes until flushed.
        let flushed = ready!(Pin::new(&mut **to).poll_flush(cx));
        Poll::Ready(flushed.map_err(|e| io_error(self.dir, e, false)))
    }
}

/// An I/O error of direction `dir`, marked with the side it came from.
pub(super) fn io_error(dir: Direction, e: io::Error, reading: bool) -> Box<Error> {
    let (etype, what) = if reading {
        (ErrorType::ReadError, "reading")
    } else {
        (ErrorType::WriteError, "writing")
    };
    let from_client = (dir == Direction::Upstream) == reading;
    let side = if from_client { "client" } else { "upstream" };
    let e = Error::because(etype, format!("{what} the {side} connection"), e);
    if from_client {
        e.into_down()
    } else {
        e.into_up()
    }
}

/// Copy bytes both ways through a buffer of `size` per direction until
/// both directions ended: an end of stream on one side is passed on as a
/// shutdown of the write side of the other, and the other direction goes
/// on (half-close).
///
/// # Errors
///
/// The first read or write error, or a filter's error.
pub(super) async fn copy(
    downstream: &mut Stream,
    upstream: &mut Stream,
    size: usize,
    mut filter: Option<&mut Filter<'_>>,
    activity: &Activity,
) -> Result<()> {
    let mut to_up = Half::new(Direction::Upstream, size);
    let mut to_down = Half::new(Direction::Downstream, size);
    std::future::poll_fn(|cx| {
        let up = to_up.poll(cx, downstream, upstream, &mut filter, activity)?;
        let down = to_down.poll(cx, upstream, downstream, &mut filter, activity)?;
        if up.is_ready() && down.is_ready() {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Both ways through in-memory pipes, with a filter, and a half-close
    /// passed on while the other way goes on.
    #[tokio::test]
    async fn copies_both_ways_filters_and_half_closes() {
        let (mut client, down) = tokio::io::duplex(1024);
        let (up, mut origin) = tokio::io::duplex(1024);
        let activity = Activity::new();
        let relay = async {
            let mut filter = |dir: Direction, data: &mut BytesMut, eof: bool| {
                if dir == Direction::Upstream && eof {
                    data.extend_from_slice(b"!");
                }
                data.make_ascii_uppercase();
                Ok(())
            };
            let (mut d, mut u): (Stream, Stream) = (Box::new(down), Box::new(up));
            copy(&mut d, &mut u, 16, Some(&mut filter), &activity).await
        };
        let peers = async {
            client.write_all(b"hello from the client").await.unwrap();
            client.shutdown().await.unwrap();
            let mut got = Vec::new();
            origin.read_to_end(&mut got).await.unwrap();
            assert_eq!(got, b"HELLO FROM THE CLIENT!");
            origin.write_all(b"and back").await.unwrap();
            origin.shutdown().await.unwrap();
            let mut back = Vec::new();
            client.read_to_end(&mut back).await.unwrap();
            assert_eq!(back, b"AND BACK");
        };
        let (relayed, ()) = tokio::join!(relay, peers);
        relayed.unwrap();
        assert_eq!(activity.from_downstream.load(Ordering::Relaxed), 21);
        assert_eq!(activity.from_upstream.load(Ordering::Relaxed), 8);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_total_and_drain_limits() {
        let activity = Activity::new();
        let (_tx, rx) = tokio::sync::watch::channel(false);
        let never = std::future::pending::<Result<()>>();
        let idle = Limits {
            idle: Some(Duration::from_secs(5)),
            total_deadline: None,
            drain: Duration::from_secs(1),
        };
        let start = Instant::now();
        let e = bounded(never, &activity, idle, rx.clone())
            .await
            .unwrap_err();
        assert_eq!(e.etype(), &IDLE_TIMEOUT);
        assert_eq!(start.elapsed(), Duration::from_secs(5));

        let total = Limits {
            idle: None,
            total_deadline: Some(Instant::now() + Duration::from_secs(3)),
            ..idle
        };
        let never = std::future::pending::<Result<()>>();
        let e = bounded(never, &activity, total, rx.clone())
            .await
            .unwrap_err();
        assert_eq!(e.etype(), &TOTAL_TIMEOUT);

        let (tx, rx) = tokio::sync::watch::channel(false);
        let none = Limits {
            idle: None,
            total_deadline: None,
            drain: Duration::from_secs(2),
        };
        let start = Instant::now();
        let stop = async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            tx.send_replace(true);
            std::future::pending::<()>().await;
        };
        let never = std::future::pending::<Result<()>>();
        let e = tokio::select! {
            r = bounded(never, &activity, none, rx) => r.unwrap_err(),
            () = stop => unreachable!(),
        };
        assert_eq!(e.etype(), &SHUT_DOWN);
        assert_eq!(start.elapsed(), Duration::from_secs(3));
    }

    /// Activity moves the idle deadline.
    #[tokio::test(start_paused = true)]
    async fn activity_keeps_a_session_alive() {
        let activity = Activity::new();
        let (_tx, rx) = tokio::sync::watch::channel(false);
        let limits = Limits {
            idle: Some(Duration::from_secs(2)),
            total_deadline: None,
            drain: Duration::from_secs(1),
        };
        let busy = async {
            for _ in 0..5 {
                tokio::time::sleep(Duration::from_secs(1)).await;
                activity.moved(Direction::Upstream, 1);
            }
            Ok(())
        };
        bounded(busy, &activity, limits, rx).await.unwrap();
    }

    /// The idle timeout counts from the last byte, up to an eighth of it
    /// late (the byte counts are checked every eighth).
    #[tokio::test(start_paused = true)]
    async fn idle_closes_within_an_eighth_after_the_last_byte() {
        let activity = Activity::new();
        let (_tx, rx) = tokio::sync::watch::channel(false);
        let limits = Limits {
            idle: Some(Duration::from_secs(8)),
            total_deadline: None,
            drain: Duration::from_secs(1),
        };
        let start = Instant::now();
        let busy = async {
            for _ in 0..3 {
                tokio::time::sleep(Duration::from_secs(3)).await;
                activity.moved(Direction::Downstream, 1);
            }
            std::future::pending::<Result<()>>().await
        };
        let e = bounded(busy, &activity, limits, rx).await.unwrap_err();
        assert_eq!(e.etype(), &IDLE_TIMEOUT);
        let idle_for = start.elapsed() - Duration::from_secs(9);
        assert!(idle_for >= Duration::from_secs(8), "{idle_for:?}");
        assert!(idle_for <= Duration::from_secs(9), "{idle_for:?}");
    }
}
