//! Watching an idle connection for signs it can no longer be used.

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::task::{Context, Poll, Waker};

use tokio::io::{AsyncRead, ReadBuf};

use crate::protocols::Stream;

/// A connection the pool can check while it is idle.
///
/// An idle connection should receive nothing: end of stream means the
/// upstream closed it, and bytes nobody asked for mean the protocol state
/// is unknown. Either way it must not be handed out again.
///
/// The pool polls with a waker that does nothing, and only when it wants
/// an answer (at [`ConnectionPool::get`](super::ConnectionPool::get) and
/// on each periodic sweep), so an implementation must report what it can
/// see at the time of the call rather than count on being woken. Tokio
/// sockets do: they remember readiness events until the next poll.
pub trait IdleWatch: Send + 'static {
    /// Poll the idle connection. `Ready` means it is unusable and will be
    /// dropped; `Pending` means it looks fine.
    fn poll_unusable(&mut self, cx: &mut Context<'_>) -> Poll<()>;
}

/// Whether `conn` is unusable now: one poll, with a no-op waker.
///
/// The poll runs outside tokio's cooperative budget: a caller whose task
/// has spent its budget would otherwise see every socket as `Pending`,
/// that is, as fine.
pub(super) fn unusable_now<C: IdleWatch>(conn: &mut C) -> bool {
    let mut cx = Context::from_waker(Waker::noop());
    let check = pin!(tokio::task::unconstrained(poll_fn(|cx| {
        conn.poll_unusable(cx)
    })));
    check.poll(&mut cx).is_ready()
}

impl<T: IdleWatch + ?Sized> IdleWatch for Box<T> {
    fn poll_unusable(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        (**self).poll_unusable(cx)
    }
}

impl IdleWatch for Stream {
    fn poll_unusable(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        poll_read_unusable(self, cx)
    }
}

/// [`IdleWatch::poll_unusable`] for any reader: any read outcome other
/// than "would block" (end of stream, a byte, an error) means unusable.
/// The byte read, if any, is lost, which is fine: the connection is
/// dropped anyway.
pub fn poll_read_unusable<R: AsyncRead + Unpin + ?Sized>(
    reader: &mut R,
    cx: &mut Context<'_>,
) -> Poll<()> {
    let mut byte = [0u8; 1];
    let mut buf = ReadBuf::new(&mut byte);
    match Pin::new(reader).poll_read(cx, &mut buf) {
        Poll::Pending => Poll::Pending,
        Poll::Ready(result) => {
            if let Err(e) = result {
                log::debug!("idle connection failed: {e}");
            } else if buf.filled().is_empty() {
                log::debug!("idle connection closed by the upstream");
            } else {
                log::debug!("idle connection received unsolicited data");
            }
            Poll::Ready(())
        }
    }
}
