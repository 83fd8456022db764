//! The state one fast timeout or sleep keeps: armed lazily, released on drop.

use super::driver::{Armed, Timers};
use super::wheel::Key;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

/// A timer that arms itself on its first poll.
pub(crate) struct Timer {
    timers: &'static Timers,
    state: State,
}

enum State {
    /// Not polled yet: the clock starts at the first poll.
    Unarmed(Duration),
    /// Waiting in the wheel.
    Armed(Key),
    /// The wheel could not take the timer (see [`Armed::Unavailable`]), so
    /// tokio's timer keeps the promise instead.
    Fallback(Pin<Box<tokio::time::Sleep>>),
    /// Fired, or released because the guarded future finished.
    Done,
}

impl Timer {
    /// A timer for `duration` on the given timers.
    pub(crate) const fn new(timers: &'static Timers, duration: Duration) -> Self {
        Self {
            timers,
            state: State::Unarmed(duration),
        }
    }

    /// Arm the timer if needed and report whether it has fired.
    pub(crate) fn poll_elapsed(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        match &mut self.state {
            State::Unarmed(duration) if duration.is_zero() => self.finish(),
            State::Unarmed(duration) => {
                let duration = *duration;
                match self.timers.register(duration, cx.waker()) {
                    Armed::Waiting(key) => {
                        self.state = State::Armed(key);
                        Poll::Pending
                    }
                    Armed::Unavailable => {
                        self.state = State::Fallback(Box::pin(tokio::time::sleep(duration)));
                        self.poll_elapsed(cx)
                    }
                }
            }
            State::Armed(key) => {
                if self.timers.refresh(key, cx.waker()) {
                    // `refresh` released the fired entry already.
                    self.state = State::Done;
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            }
            State::Fallback(sleep) => {
                std::task::ready!(sleep.as_mut().poll(cx));
                self.finish()
            }
            State::Done => Poll::Ready(()),
        }
    }

    /// Release whatever the timer holds; it reports elapsed from now on.
    pub(crate) fn finish(&mut self) -> Poll<()> {
        match &self.state {
            // Most timeouts guard a future that was ready at once: nothing
            // to release, and nothing to drop (writing `Done` over a
            // `Duration` needs no drop glue, unlike a `replace`).
            State::Unarmed(_) => self.state = State::Done,
            State::Done => {}
            State::Armed(_) | State::Fallback(_) => self.release(),
        }
        Poll::Ready(())
    }

    /// Give back the wheel entry or the fallback sleep.
    fn release(&mut self) {
        if let State::Armed(key) = std::mem::replace(&mut self.state, State::Done) {
            self.timers.cancel(&key);
        }
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        // Frees the slot and the task's waker now, not at the deadline: a
        // finished task must not stay allocated for the rest of its timeout.
        if let State::Armed(_) | State::Fallback(_) = self.state {
            self.release();
        }
    }
}

impl std::fmt::Debug for Timer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.state {
            State::Unarmed(_) => "unarmed",
            State::Armed(_) => "armed",
            State::Fallback(_) => "fallback",
            State::Done => "done",
        };
        f.debug_struct("Timer").field("state", &state).finish()
    }
}
