//! The future of [`fast::timeout`](super::timeout).

use super::timer::Timer;
use crate::Elapsed;
use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

pin_project! {
    /// The future returned by [`fast::timeout`](super::timeout).
    ///
    /// It holds no timer until the guarded future first returns
    /// [`Poll::Pending`], and it releases its timer as soon as the future
    /// completes or the `Timeout` is dropped.
    #[derive(Debug)]
    #[must_use = "futures do nothing unless polled"]
    pub struct Timeout<F> {
        #[pin]
        future: F,
        timer: Timer,
    }
}

impl<F> Timeout<F> {
    pub(crate) const fn new(future: F, timer: Timer) -> Self {
        Self { future, timer }
    }

    /// The guarded future.
    pub const fn get_ref(&self) -> &F {
        &self.future
    }

    /// The guarded future, mutably.
    pub const fn get_mut(&mut self) -> &mut F {
        &mut self.future
    }

    /// Cancel the timeout and return the guarded future.
    pub fn into_inner(self) -> F {
        // Dropping the timer releases its slot in the wheel.
        let Self { future, timer: _ } = self;
        future
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        // The future goes first: one that is ready never pays for a timer
        // and never loses to a deadline that passed while it was not polled.
        if let Poll::Ready(out) = this.future.poll(cx) {
            let _ = this.timer.finish();
            return Poll::Ready(Ok(out));
        }
        this.timer.poll_elapsed(cx).map(|()| Err(Elapsed::new()))
    }
}
