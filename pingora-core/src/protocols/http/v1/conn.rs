//! The I/O half of an HTTP/1 connection: the stream, its read and write
//! buffers, and the timeouts around every read and write.
//!
//! The buffers cost memory only while there is something to hold: both
//! start empty, and a read that has to wait while holding no bytes gives
//! its buffer back for the wait (see [`Conn::read_lean`]). A connection
//! idle between requests, or not yet sent a byte, so holds no buffer at
//! all, and one that sent half a head holds about what it sent.

mod spare;

use super::H1Config;
use crate::protocols::Stream;
use bytes::BytesMut;
use pingora_error::{Error, ErrorType, Result};
use std::future::Future;
use std::io::IoSlice;
use std::pin::{Pin, pin};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How much room a body or response read asks for.
const READ_CHUNK: usize = 16 * 1024;
/// How much room the first read of a request head gets; a longer head
/// grows the buffer as it arrives. Most request heads fit (nginx starts
/// from the same size), and a buffer this small comes from the
/// allocator's per-thread cache.
const HEAD_CHUNK: usize = 1024;
/// The room the write buffer gets when it is first written to: enough
/// for a usual response head and a short body, and small enough to come
/// from the allocator's per-thread cache, since a kept-alive connection
/// gets it anew for each response. Longer ones grow it.
const WRITE_CHUNK: usize = 1024;
/// A head read asks for at least this much room, so that it never reads
/// a few bytes at a time into the end of a buffer.
const MIN_READ: usize = 256;
/// A buffer waiting with part of a head is cut down to its contents when
/// it holds less than half its size (and this much): it then grows again
/// by at least doubling, so however slowly a head arrives, it is copied
/// a bounded number of times.
const WAIT_SLACK: usize = 256;
/// After a connection is closed on an error, how long and how much we keep
/// reading and discarding so the peer gets our last response instead of a
/// reset (RFC 9112 §9.6 on closing with unread data).
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 256 * 1024;

/// A stream plus its buffers, allocated when first needed.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) stream: Stream,
    /// Bytes read but not yet consumed: the rest of a head, body bytes, or
    /// the next pipelined message.
    pub(crate) buf: BytesMut,
    /// Bytes waiting to be written. Server code writes through
    /// [`Conn::wbuf`], which gives a released buffer its room back.
    pub(crate) wbuf: BytesMut,
    /// How much of `wbuf` a flush that was cancelled wrote already.
    written: usize,
    pub(crate) config: H1Config,
}

impl Conn {
    pub(crate) fn new(stream: Stream, config: H1Config) -> Self {
        Self {
            stream,
            buf: BytesMut::new(),
            wbuf: BytesMut::new(),
            written: 0,
            config,
        }
    }

    /// Read more bytes into `buf`, waiting at most `wait`. `Ok(0)` means the
    /// peer closed its side.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: bytes are only added to `buf` by a completed read.
    pub(crate) async fn read_more(&mut self, wait: Duration) -> Result<usize> {
        self.buf.reserve(READ_CHUNK);
        let read = self.stream.read_buf(&mut self.buf);
        match self.config.bounded(wait, read).await {
            Ok(Ok(n)) => Ok(n),
            Ok(Err(e)) => Error::e_because(ErrorType::ReadError, "reading http/1", e),
            Err(_) => Error::e_explain(ErrorType::ReadTimedout, "reading http/1"),
        }
    }

    /// Read more bytes into `buf` with no timer of its own, for a caller
    /// that already bounds the whole wait (a response head read under the
    /// header timeout): a second timer would only cost a wheel slot per
    /// read. `Ok(0)` means the peer closed its side.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`read_more`](Self::read_more).
    pub(crate) async fn read_more_unbounded(&mut self) -> Result<usize> {
        self.buf.reserve(READ_CHUNK);
        match self.stream.read_buf(&mut self.buf).await {
            Ok(n) => Ok(n),
            Err(e) => Error::e_because(ErrorType::ReadError, "reading http/1", e),
        }
    }

    /// Read more of a request head into `buf`, waiting at most `wait`, as
    /// [`read_lean`](Self::read_lean) does. `Ok(0)` means the peer closed
    /// its side.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`read_more`](Self::read_more).
    pub(crate) async fn read_lean_bounded(&mut self, wait: Duration) -> Result<usize> {
        let deadline = Deadline::new(&self.config, wait);
        match deadline.bound(pin!(self.read_lean())).await {
            Ok(res) => res,
            Err(TimedOut) => Error::e_explain(ErrorType::ReadTimedout, "reading http/1"),
        }
    }

    /// Read more of a request head into `buf`, with no timer of its own,
    /// for a caller that already bounds the whole wait (a head read under
    /// the header timeout): a second timer would only cost a wheel slot
    /// per read. `Ok(0)` means the peer closed its side.
    ///
    /// Lean on memory while it waits: an empty `buf` starts at
    /// [`HEAD_CHUNK`] and grows as bytes come. While the read waits, a
    /// `buf` holding nothing is released, with `wbuf` when that is empty
    /// too, and one holding part of a head is cut to its contents. A
    /// client that keeps a connection idle, or sends a head slowly, so
    /// costs buffer memory in proportion to what it sent. The future is a
    /// few words: it is what every idle connection keeps.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`read_more`](Self::read_more).
    pub(crate) async fn read_lean(&mut self) -> Result<usize> {
        match std::future::poll_fn(|cx| self.poll_read_lean(cx)).await {
            Ok(n) => Ok(n),
            Err(e) => Error::e_because(ErrorType::ReadError, "reading http/1", e),
        }
    }

    fn poll_read_lean(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        if self.buf.capacity() == 0 {
            self.buf = spare::take(HEAD_CHUNK);
        } else if self.buf.capacity() - self.buf.len() < MIN_READ {
            // At least doubles a buffer that is (nearly) full, so a long
            // head takes a few reads, not one per kilobyte.
            self.buf.reserve(self.buf.len().max(HEAD_CHUNK));
        }
        // A fresh read future per poll: it holds only the two borrows,
        // which must end before the buffer can be released below.
        let polled = pin!(self.stream.read_buf(&mut self.buf)).poll(cx);
        if polled.is_pending() {
            release_for_wait(&mut self.buf, &mut self.wbuf);
        }
        polled
    }

    /// The write buffer, with room for a response head and a short body
    /// when it was released.
    pub(crate) fn wbuf(&mut self) -> &mut BytesMut {
        if self.wbuf.capacity() == 0 {
            self.wbuf = spare::take(WRITE_CHUNK);
        }
        &mut self.wbuf
    }

    /// Write and flush everything in `wbuf`, each write bounded by the
    /// write timeout. Nothing to write costs nothing: every write goes
    /// through here and ends flushed, so an empty `wbuf` leaves nothing
    /// buffered in the stream either.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the next call goes on from where a cancelled one
    /// stopped, so nothing is lost or sent twice.
    pub(crate) async fn flush_wbuf(&mut self) -> Result<()> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        self.write_out(&[]).await
    }

    /// Write `wbuf` and then `body` in one vectored write where the stream
    /// takes one, without copying `body` into `wbuf`; then flush. For large
    /// pieces of body, which a copy would cost a pass over every byte.
    /// Bounded by the write timeout, as [`flush_wbuf`](Self::flush_wbuf).
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: a cancelled call may have sent part of `body`, and
    /// the rest of it is not kept, so the message cannot be completed.
    pub(crate) async fn flush_with(&mut self, body: &[u8]) -> Result<()> {
        if !self.stream.is_write_vectored() {
            // A stream that would write the two one at a time (TLS: one
            // record each) gets them as one buffer.
            self.wbuf.extend_from_slice(body);
            return self.flush_wbuf().await;
        }
        self.write_out(body).await
    }

    /// Write what is left of `wbuf` (from `written` on), then `body`, and
    /// flush, under the write timeout. `wbuf` is written in place, not
    /// split off: a split would make the buffer shared, an atomic count to
    /// set up and drop on every write.
    async fn write_out(&mut self, body: &[u8]) -> Result<()> {
        let wait = self.config.write_timeout;
        let (stream, head, written) = (&mut self.stream, &self.wbuf, &mut self.written);
        let write = async {
            loop {
                let head_rest = head.get(*written..).unwrap_or_default();
                let body_rest = body
                    .get(written.saturating_sub(head.len())..)
                    .unwrap_or_default();
                let n = match (head_rest.is_empty(), body_rest.is_empty()) {
                    (true, true) => break,
                    (false, true) => stream.write(head_rest).await?,
                    (true, false) => stream.write(body_rest).await?,
                    (false, false) => {
                        let parts = [IoSlice::new(head_rest), IoSlice::new(body_rest)];
                        stream.write_vectored(&parts).await?
                    }
                };
                if n == 0 {
                    return Err(std::io::ErrorKind::WriteZero.into());
                }
                *written += n;
            }
            stream.flush().await
        };
        let res = self.config.bounded(wait, write).await;
        // Done, or failed for good (the connection is not used again).
        self.wbuf.clear();
        self.written = 0;
        match res {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Error::e_because(ErrorType::WriteError, "writing http/1", e),
            Err(_) => Error::e_explain(ErrorType::WriteTimedout, "writing http/1"),
        }
    }

    /// Close after an error: shut down our side, then read and discard for
    /// a short while so unread input does not turn into a reset that
    /// destroys the response we just sent.
    pub(crate) async fn linger_close(mut self) {
        let linger = async {
            if self.stream.shutdown().await.is_err() {
                return;
            }
            let mut seen = 0;
            while seen < LINGER_BYTES {
                self.buf.clear();
                match self.stream.read_buf(&mut self.buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => seen += n,
                }
            }
        };
        let _ = pingora_timeout::timeout(LINGER_TIME, linger).await;
    }
}

/// When a wait ends, on the timers [`H1Config::coarse_timers`] picks.
///
/// Used with [`Deadline::bound`] instead of a timeout future wrapping the
/// read: that would hold the read future twice (once as an argument), in
/// every connection waiting for a request. The precise timer's state (a
/// tokio sleep, over a hundred bytes) is boxed; it serves tests.
#[derive(Debug)]
pub(crate) enum Deadline {
    Coarse(pingora_timeout::fast::Sleep),
    Precise(Pin<Box<pingora_timeout::Sleep>>),
}

/// A [`Deadline`] passed before the future it bounds completed.
#[derive(Debug)]
pub(crate) struct TimedOut;

impl Deadline {
    /// `wait` from the first poll of [`bound`](Self::bound)'s future.
    pub(crate) fn new(config: &H1Config, wait: Duration) -> Self {
        if config.coarse_timers {
            Self::Coarse(pingora_timeout::fast::sleep(wait))
        } else {
            Self::Precise(Box::pin(pingora_timeout::sleep(wait)))
        }
    }

    /// Run `fut` (pinned by the caller, so it is stored once) until it
    /// completes or the deadline passes; `fut` is polled first.
    pub(crate) fn bound<F: Future>(self, fut: Pin<&mut F>) -> Bounded<'_, F> {
        Bounded {
            fut,
            deadline: self,
        }
    }
}

/// The future of [`Deadline::bound`].
#[derive(Debug)]
pub(crate) struct Bounded<'a, F> {
    fut: Pin<&'a mut F>,
    deadline: Deadline,
}

impl<F: Future> Future for Bounded<'_, F> {
    type Output = std::result::Result<F::Output, TimedOut>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Poll::Ready(out) = this.fut.as_mut().poll(cx) {
            return Poll::Ready(Ok(out));
        }
        let passed = match &mut this.deadline {
            Deadline::Coarse(sleep) => Pin::new(sleep).poll(cx),
            Deadline::Precise(sleep) => sleep.as_mut().poll(cx),
        };
        passed.map(|()| Err(TimedOut))
    }
}

/// Give back what a connection waiting for bytes does not need: an empty
/// buffer, and the room of one holding part of a head.
fn release_for_wait(buf: &mut BytesMut, wbuf: &mut BytesMut) {
    if buf.is_empty() {
        spare::give_back(std::mem::take(buf));
    } else if buf.capacity() > 2 * buf.len() + WAIT_SLACK {
        *buf = BytesMut::from(&buf[..]);
    }
    if wbuf.is_empty() {
        spare::give_back(std::mem::take(wbuf));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// A flush cancelled while the peer reads nothing goes on where it
    /// stopped: the peer gets every byte once, in order.
    #[tokio::test]
    async fn a_cancelled_flush_resumes_without_loss_or_repeat() {
        // Room for 1 KiB in flight, so a 64 KiB write stops part way.
        let (ours, mut peer) = tokio::io::duplex(1024);
        let mut conn = Conn::new(Box::new(ours), H1Config::default());
        let message: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
        conn.wbuf.extend_from_slice(&message);
        let cancelled = tokio::time::timeout(Duration::from_millis(20), conn.flush_wbuf()).await;
        assert!(cancelled.is_err(), "the flush should still wait for room");
        assert!(conn.written > 0 && conn.written < message.len());
        // More is queued behind the unsent part, then everything goes.
        conn.wbuf.extend_from_slice(b"tail");
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            let mut chunk = [0; 4096];
            while got.len() < 64 * 1024 + 4 {
                let n = peer.read(&mut chunk).await.unwrap();
                assert!(n > 0);
                got.extend_from_slice(&chunk[..n]);
            }
            got
        });
        conn.flush_wbuf().await.unwrap();
        let got = reader.await.unwrap();
        assert_eq!(&got[..message.len()], &message[..]);
        assert_eq!(&got[message.len()..], b"tail");
        assert!(conn.wbuf.is_empty() && conn.written == 0);
        // Nothing left to write: returns at once.
        conn.flush_wbuf().await.unwrap();
    }

    /// Waiting, an empty buffer is let go, and one holding a little is cut
    /// to size; one at least half full is kept as it is, so a head that
    /// arrives a byte at a time is not copied once per byte.
    #[test]
    fn a_waiting_read_keeps_only_what_it_holds() {
        let mut buf = BytesMut::with_capacity(HEAD_CHUNK);
        let mut wbuf = BytesMut::with_capacity(WRITE_CHUNK);
        release_for_wait(&mut buf, &mut wbuf);
        assert_eq!((buf.capacity(), wbuf.capacity()), (0, 0));

        buf.reserve(HEAD_CHUNK);
        buf.extend_from_slice(b"GET / HT");
        release_for_wait(&mut buf, &mut wbuf);
        assert_eq!((buf.len(), buf.capacity()), (8, 8));

        let mut half_full = BytesMut::with_capacity(2 * HEAD_CHUNK);
        half_full.extend_from_slice(&[b'a'; HEAD_CHUNK]);
        let before = half_full.as_ptr();
        // Written but not yet flushed bytes are kept too.
        wbuf.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        release_for_wait(&mut half_full, &mut wbuf);
        assert_eq!(half_full.as_ptr(), before, "copied needlessly");
        assert_eq!(wbuf.len(), 17);
    }

    /// An in-memory stream that writes one buffer at a time, as TLS does.
    #[derive(Debug)]
    struct OneBufferAtATime(tokio::io::DuplexStream);

    impl tokio::io::AsyncRead for OneBufferAtATime {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.0).poll_read(cx, buf)
        }
    }

    impl tokio::io::AsyncWrite for OneBufferAtATime {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            Pin::new(&mut self.0).poll_write(cx, buf)
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.0).poll_flush(cx)
        }

        fn poll_shutdown(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.0).poll_shutdown(cx)
        }
    }

    impl crate::protocols::IO for OneBufferAtATime {}

    /// What is buffered goes first, then the body, whole, over a stream
    /// that takes vectored writes (TCP) and one that does not.
    #[tokio::test]
    async fn flush_with_sends_the_buffer_then_the_body() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut tcp_peer, _) = listener.accept().await.unwrap();
        let (mem, mut mem_peer) = tokio::io::duplex(1 << 20);
        let body: Vec<u8> = (0..256 * 1024).map(|i| (i % 253) as u8).collect();
        let streams: [(Stream, bool); 2] = [
            (
                Box::new(crate::protocols::l4::L4Stream::from_tcp(tcp)),
                true,
            ),
            (Box::new(OneBufferAtATime(mem)), false),
        ];
        for (stream, vectored) in streams {
            assert_eq!(stream.is_write_vectored(), vectored);
            let mut conn = Conn::new(stream, H1Config::default());
            conn.wbuf.extend_from_slice(b"head;");
            let expected = [&b"head;"[..], &body].concat();
            let sent = body.clone();
            let writer = tokio::spawn(async move {
                conn.flush_with(&sent).await.unwrap();
                assert!(conn.wbuf.is_empty() && conn.written == 0);
                conn.flush_with(b"").await.unwrap();
            });
            let mut got = vec![0; expected.len()];
            if vectored {
                tcp_peer.read_exact(&mut got).await.unwrap();
            } else {
                mem_peer.read_exact(&mut got).await.unwrap();
            }
            writer.await.unwrap();
            assert!(got == expected, "bytes differ (vectored: {vectored})");
        }
    }
}
