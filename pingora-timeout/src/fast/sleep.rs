//! The future of [`fast::sleep`](super::sleep).

use super::timer::Timer;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The future returned by [`fast::sleep`](super::sleep).
///
/// It holds a timer from its first poll until it completes or is dropped.
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct Sleep {
    timer: Timer,
}

impl Sleep {
    pub(crate) const fn new(timer: Timer) -> Self {
        Self { timer }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.get_mut().timer.poll_elapsed(cx)
    }
}
