//! The stream wrapper that feeds the frame meter, and the tripwire that
//! tells the connection driver to close when a limit is passed.

use super::meter::{FrameMeter, Violation};
use crate::protocols::Stream;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::Notify;

/// Set once when a connection must be closed, with the reason.
#[derive(Debug, Default)]
pub(crate) struct Tripwire {
    why: OnceLock<Trip>,
    notify: Notify,
}

/// Why a connection is being cut off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Trip {
    /// The peer passed a flood limit.
    Flood(Violation),
    /// A keep-alive PING went unanswered.
    PingTimeout,
}

impl Tripwire {
    /// Record `why` (the first reason wins) and wake the driver.
    pub(crate) fn trip(&self, why: Trip) {
        let _ = self.why.set(why);
        // notify_one keeps a permit, so a driver that is not waiting yet
        // still sees it.
        self.notify.notify_one();
    }

    /// The reason, once tripped.
    pub(crate) fn tripped(&self) -> Option<Trip> {
        self.why.get().copied()
    }

    /// Wait until tripped.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the permit stays until a wait completes.
    pub(crate) async fn wait(&self) -> Trip {
        loop {
            if let Some(why) = self.tripped() {
                return why;
            }
            self.notify.notified().await;
        }
    }
}

/// A stream whose incoming bytes pass through a [`FrameMeter`].
///
/// Once the meter trips, reads stop delivering bytes (they stay pending),
/// so that `h2` processes nothing more from the peer while the driver
/// sends GOAWAY; writes go on so the GOAWAY can leave.
#[derive(Debug)]
pub(crate) struct MeteredIo {
    inner: Stream,
    meter: FrameMeter,
    wire: Arc<Tripwire>,
}

impl MeteredIo {
    pub(crate) const fn new(inner: Stream, meter: FrameMeter, wire: Arc<Tripwire>) -> Self {
        Self { inner, meter, wire }
    }
}

impl AsyncRead for MeteredIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.wire.tripped().is_some() {
            return Poll::Pending;
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &polled {
            let now = tokio::time::Instant::now().into_std();
            if let Err(v) = this.meter.feed(&buf.filled()[before..], now) {
                this.wire.trip(Trip::Flood(v));
                // Hide the bytes that tripped the limit from `h2`.
                buf.set_filled(before);
                return Poll::Pending;
            }
        }
        polled
    }
}

write_through_inner!(MeteredIo);

/// The connection-wide watchers: the tripwire, and the keep-alive task
/// that pings the peer. Dropping it stops the task.
#[derive(Debug)]
pub(crate) struct Watch {
    pub(crate) wire: Arc<Tripwire>,
    keepalive: Option<tokio::task::JoinHandle<()>>,
}

impl Watch {
    pub(crate) const fn new(wire: Arc<Tripwire>) -> Self {
        Self {
            wire,
            keepalive: None,
        }
    }

    /// Ping the peer every `interval`; trip when an answer takes longer
    /// than `timeout` (RFC 9113 §6.7: a PING measures liveness).
    pub(crate) fn start_keepalive(
        &mut self,
        mut pings: h2::PingPong,
        interval: std::time::Duration,
        timeout: std::time::Duration,
    ) {
        let wire = self.wire.clone();
        self.keepalive = Some(tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let pong = pingora_timeout::timeout(timeout, pings.ping(h2::Ping::opaque()));
                match pong.await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => {
                        log::debug!("h2 keep-alive ping failed: {e}");
                        wire.trip(Trip::PingTimeout);
                        return;
                    }
                    Err(_) => {
                        wire.trip(Trip::PingTimeout);
                        return;
                    }
                }
            }
        }));
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Some(task) = self.keepalive.take() {
            task.abort();
        }
    }
}
