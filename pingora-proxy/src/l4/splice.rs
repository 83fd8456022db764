//! The relay between two plain TCP sockets on Linux, adaptive: each
//! direction starts copying through a small buffer (a `recv` and a `send`
//! per message, the cheapest way to move a few bytes), and switches to
//! `splice(2)` for good once a read fills that buffer: from then on its
//! bytes go from the socket into a pipe and from the pipe into the other
//! socket, never through user space. Interactive traffic stays on the
//! copy; bulk transfers are spliced after their first [`COPY_BUF`] bytes.
//!
//! Driven by the runtime's readiness: every call is non-blocking inside
//! the sockets' `try_io`, so `EAGAIN` clears the readiness and the task
//! waits. A copied read shorter than the buffer drained the socket, so it
//! clears the readiness too (as the runtime's own reads do), saving the
//! `EAGAIN` probe; a spliced read cannot tell, since a pipe may fill up
//! before its byte capacity.
//!
//! Used only between two plain TCP sockets with no byte filter; the
//! copy loop ([`super::relay::copy`]) does the rest.

use super::relay::{Activity, Direction, io_error};
use nix::fcntl::{OFlag, SpliceFFlags, splice};
use pingora_error::{Error, Result};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, ready};
use tokio::io::Interest;
use tokio::net::TcpStream;

/// The copy buffer of a direction. A read that fills it switches the
/// direction to `splice(2)`.
pub(super) const COPY_BUF: usize = 16 * 1024;
/// The most bytes moved per `splice` into the pipe. The pipe holds at
/// most its capacity (64 KiB by default, [`PIPE_SIZE`] when the system
/// allows), so a call moves what fits.
const CHUNK: usize = 1 << 20;
/// The pipe capacity asked for: fewer calls per byte than the default
/// 64 KiB on fast links. Refused sizes keep the default.
const PIPE_SIZE: i32 = 256 * 1024;

/// The pipe of a spliced direction.
struct Pipe {
    read_end: OwnedFd,
    write_end: OwnedFd,
}

impl Pipe {
    fn new() -> io::Result<Self> {
        let (read_end, write_end) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
        let _ = nix::fcntl::fcntl(
            write_end.as_raw_fd(),
            nix::fcntl::FcntlArg::F_SETPIPE_SZ(PIPE_SIZE),
        );
        Ok(Self {
            read_end,
            write_end,
        })
    }
}

/// One direction: socket → buffer or pipe → socket.
struct Half {
    dir: Direction,
    buf: Box<[u8]>,
    /// Copied bytes of `buf` still to write.
    start: usize,
    end: usize,
    /// Set once the direction switched to `splice(2)`.
    pipe: Option<Pipe>,
    /// A pipe could not be made: copy to the end.
    copy_only: bool,
    /// Bytes in the pipe, not yet written out.
    in_pipe: usize,
    eof: bool,
    done: bool,
}

impl Half {
    fn new(dir: Direction) -> Self {
        Self {
            dir,
            buf: vec![0; COPY_BUF].into_boxed_slice(),
            start: 0,
            end: 0,
            pipe: None,
            copy_only: false,
            in_pipe: 0,
            eof: false,
            done: false,
        }
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
        from: &TcpStream,
        to: &TcpStream,
        activity: &Activity,
    ) -> Poll<Result<()>> {
        let flags = SpliceFFlags::SPLICE_F_NONBLOCK | SpliceFFlags::SPLICE_F_MOVE;
        loop {
            if self.done {
                return Poll::Ready(Ok(()));
            }
            if self.start < self.end {
                ready!(to.poll_write_ready(cx)).map_err(|e| self.error(e, false))?;
                match to.try_write(&self.buf[self.start..self.end]) {
                    Ok(0) => {
                        let e = io::Error::from(io::ErrorKind::WriteZero);
                        return Poll::Ready(Err(self.error(e, false)));
                    }
                    Ok(n) => self.start += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Poll::Ready(Err(self.error(e, false))),
                }
            } else if let (Some(pipe), true) = (&self.pipe, self.in_pipe > 0) {
                ready!(to.poll_write_ready(cx)).map_err(|e| self.error(e, false))?;
                let out = to.try_io(Interest::WRITABLE, || {
                    splice(&pipe.read_end, None, to, None, self.in_pipe, flags)
                        .map_err(io::Error::from)
                });
                match out {
                    Ok(0) => {
                        let e = io::Error::from(io::ErrorKind::WriteZero);
                        return Poll::Ready(Err(self.error(e, false)));
                    }
                    Ok(n) => self.in_pipe -= n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Poll::Ready(Err(self.error(e, false))),
                }
            } else if self.eof {
                // Half-close: the other side may still send. A socket
                // already gone has nothing to be told.
                let _ =
                    nix::sys::socket::shutdown(to.as_raw_fd(), nix::sys::socket::Shutdown::Write);
                self.done = true;
            } else if let Some(pipe) = &self.pipe {
                ready!(from.poll_read_ready(cx)).map_err(|e| self.error(e, true))?;
                // The pipe is empty here, so EAGAIN means the socket has
                // nothing to read (not that the pipe is full).
                let read = from.try_io(Interest::READABLE, || {
                    splice(from, None, &pipe.write_end, None, CHUNK, flags).map_err(io::Error::from)
                });
                match read {
                    Ok(0) => self.eof = true,
                    Ok(n) => {
                        self.in_pipe = n;
                        activity.moved(self.dir, n);
                        activity.spliced.store(true, Ordering::Relaxed);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Poll::Ready(Err(self.error(e, true))),
                }
            } else {
                let n = ready!(self.poll_copy_read(cx, from)).map_err(|e| self.error(e, true))?;
                if n == 0 {
                    self.eof = true;
                    continue;
                }
                activity.moved(self.dir, n);
                (self.start, self.end) = (0, n);
                if n == self.buf.len() && !self.copy_only {
                    match Pipe::new() {
                        Ok(pipe) => self.pipe = Some(pipe),
                        Err(e) => {
                            log::debug!("no pipe to splice, copying instead: {e}");
                            self.copy_only = true;
                        }
                    }
                }
            }
        }
    }

    /// Read into the buffer; a read shorter than the buffer drained the
    /// socket, and clears its readiness without an `EAGAIN` probe.
    fn poll_copy_read(
        &mut self,
        cx: &mut Context<'_>,
        from: &TcpStream,
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(from.poll_read_ready(cx))?;
            let buf = &mut self.buf;
            let mut drained = None;
            let read = from.try_io(Interest::READABLE, || {
                let fd = from.as_raw_fd();
                let n = nix::sys::socket::recv(fd, buf, nix::sys::socket::MsgFlags::empty())?;
                if n > 0 && n < buf.len() {
                    // Reported as WouldBlock so that try_io clears the
                    // readiness; the bytes are in `drained`.
                    drained = Some(n);
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                Ok(n)
            });
            if let Some(n) = drained {
                return Poll::Ready(Ok(n));
            }
            match read {
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    fn error(&self, e: io::Error, reading: bool) -> Box<Error> {
        io_error(self.dir, e, reading)
    }
}

/// Relay both ways between two TCP sockets until both directions ended,
/// passing each end of stream on as a half-close: copying while reads are
/// small, with `splice(2)` once a direction's read fills [`COPY_BUF`]
/// (copying on when no pipe can be made). Marks `activity` spliced once a
/// byte went through a pipe.
///
/// # Errors
///
/// The first read or write error.
pub(super) async fn relay(
    downstream: &TcpStream,
    upstream: &TcpStream,
    activity: &Activity,
) -> Result<()> {
    let mut to_up = Half::new(Direction::Upstream);
    let mut to_down = Half::new(Direction::Downstream);
    std::future::poll_fn(|cx| {
        let up = to_up.poll(cx, downstream, upstream, activity)?;
        let down = to_down.poll(cx, upstream, downstream, activity)?;
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
    use tokio::net::TcpListener;

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = TcpStream::connect(listener.local_addr().unwrap());
        let (a, b) = tokio::join!(a, listener.accept());
        (a.unwrap(), b.unwrap().0)
    }

    /// Write `payload` and half-close while reading to the end; what was read.
    async fn send_and_read_to_end(stream: &mut TcpStream, payload: &[u8]) -> Vec<u8> {
        let (mut r, mut w) = stream.split();
        let write = async {
            w.write_all(payload).await.unwrap();
            w.shutdown().await.unwrap();
        };
        let mut got = Vec::new();
        let read = r.read_to_end(&mut got);
        let ((), n) = tokio::join!(write, read);
        n.unwrap();
        got
    }

    /// Megabytes both ways at once, byte-exact, then a half-close each way.
    #[tokio::test]
    async fn splices_large_payloads_both_ways() {
        let (mut client, down) = pair().await;
        let (up, mut origin) = pair().await;
        let activity = Activity::new();
        let payload = |seed: u8, len: usize| -> Vec<u8> {
            (0..len)
                .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
                .collect()
        };
        let (sent_up, sent_down) = (payload(1, 3 << 20), payload(7, 5 << 20));
        let relay = relay(&down, &up, &activity);
        let client_side = send_and_read_to_end(&mut client, &sent_up);
        let origin_side = send_and_read_to_end(&mut origin, &sent_down);
        let (relayed, at_client, at_origin) = tokio::join!(relay, client_side, origin_side);
        relayed.unwrap();
        assert!(at_origin == sent_up, "upstream bytes differ");
        assert!(at_client == sent_down, "downstream bytes differ");
        assert_eq!(activity.from_downstream.load(Ordering::Relaxed), 3 << 20);
        assert_eq!(activity.from_upstream.load(Ordering::Relaxed), 5 << 20);
        assert!(activity.spliced.load(Ordering::Relaxed));
    }

    /// Small messages go through the copy buffer (nothing spliced); a bulk
    /// transfer switches its direction to splice, and small messages still
    /// pass after it, byte-exact, then a half-close.
    #[tokio::test]
    async fn small_messages_copy_and_bulk_switches_to_splice() {
        let (mut client, down) = pair().await;
        let (up, mut origin) = pair().await;
        let activity = Activity::new();
        let relay = relay(&down, &up, &activity);
        let bulk: Vec<u8> = (0..(COPY_BUF * 40)).map(|i| (i % 251) as u8).collect();
        let peers = async {
            for round in 0..20u8 {
                client.write_all(&[b'q', round]).await.unwrap();
                let mut q = [0; 2];
                origin.read_exact(&mut q).await.unwrap();
                assert_eq!(q, [b'q', round]);
                origin.write_all(&[b'a', round, round]).await.unwrap();
                let mut a = [0; 3];
                client.read_exact(&mut a).await.unwrap();
                assert_eq!(a, [b'a', round, round]);
            }
            assert!(
                !activity.spliced.load(Ordering::Relaxed),
                "small messages spliced"
            );
            let send = async { origin.write_all(&bulk).await.unwrap() };
            let mut got = vec![0; bulk.len()];
            let recv = async { client.read_exact(&mut got).await.unwrap() };
            tokio::join!(send, recv);
            assert!(got == bulk, "bulk bytes differ");
            assert!(activity.spliced.load(Ordering::Relaxed), "bulk not spliced");
            // Small again, both ways, after the switch.
            client.write_all(b"ping").await.unwrap();
            origin.write_all(b"pong").await.unwrap();
            client.shutdown().await.unwrap();
            origin.shutdown().await.unwrap();
            let (mut at_origin, mut at_client) = (Vec::new(), Vec::new());
            origin.read_to_end(&mut at_origin).await.unwrap();
            client.read_to_end(&mut at_client).await.unwrap();
            assert_eq!(
                (&at_origin[..], &at_client[..]),
                (&b"ping"[..], &b"pong"[..])
            );
        };
        let bounded = tokio::time::timeout(std::time::Duration::from_secs(20), async {
            tokio::join!(relay, peers)
        });
        let (relayed, ()) = bounded.await.expect("relay timed out");
        relayed.unwrap();
        assert_eq!(activity.from_downstream.load(Ordering::Relaxed), 40 + 4);
        let from_up = 60 + bulk.len() as u64 + 4;
        assert_eq!(activity.from_upstream.load(Ordering::Relaxed), from_up);
    }
}
