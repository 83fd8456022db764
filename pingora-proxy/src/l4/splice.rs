//! Zero-copy relay on Linux: bytes go from one socket into a pipe and
//! from the pipe into the other socket with `splice(2)`, never through
//! user space. One pipe per direction. Driven by the runtime's readiness:
//! `splice` runs non-blocking (`SPLICE_F_NONBLOCK`) inside the sockets'
//! `try_io`, so a `EAGAIN` clears the readiness and the task waits.
//!
//! Used only between two plain TCP sockets with no byte filter; the
//! copy loop ([`super::relay::copy`]) does the rest.

use super::relay::{Activity, Direction};
use nix::fcntl::{OFlag, SpliceFFlags, splice};
use pingora_error::{Error, ErrorType, Result};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::task::{Context, Poll, ready};
use tokio::io::Interest;
use tokio::net::TcpStream;

/// The most bytes moved per `splice` into the pipe. The pipe holds at
/// most its capacity (64 KiB by default, [`PIPE_SIZE`] when the system
/// allows), so a call moves what fits.
const CHUNK: usize = 1 << 20;
/// The pipe capacity asked for: fewer calls per byte than the default
/// 64 KiB on fast links. Refused sizes keep the default.
const PIPE_SIZE: i32 = 256 * 1024;

/// One direction: socket → pipe → socket.
struct Half {
    dir: Direction,
    read_end: OwnedFd,
    write_end: OwnedFd,
    /// Bytes in the pipe, not yet written out.
    in_pipe: usize,
    eof: bool,
    done: bool,
}

impl Half {
    fn new(dir: Direction) -> io::Result<Self> {
        let (read_end, write_end) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
        let _ = nix::fcntl::fcntl(
            write_end.as_raw_fd(),
            nix::fcntl::FcntlArg::F_SETPIPE_SZ(PIPE_SIZE),
        );
        Ok(Self {
            dir,
            read_end,
            write_end,
            in_pipe: 0,
            eof: false,
            done: false,
        })
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
            if self.in_pipe > 0 {
                ready!(to.poll_write_ready(cx)).map_err(|e| self.error(e, false))?;
                let out = to.try_io(Interest::WRITABLE, || {
                    splice(&self.read_end, None, to, None, self.in_pipe, flags)
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
            } else {
                ready!(from.poll_read_ready(cx)).map_err(|e| self.error(e, true))?;
                // The pipe is empty here, so EAGAIN means the socket has
                // nothing to read (not that the pipe is full).
                let read = from.try_io(Interest::READABLE, || {
                    splice(from, None, &self.write_end, None, CHUNK, flags).map_err(io::Error::from)
                });
                match read {
                    Ok(0) => self.eof = true,
                    Ok(n) => {
                        self.in_pipe = n;
                        activity.moved(self.dir, n);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Poll::Ready(Err(self.error(e, true))),
                }
            }
        }
    }

    fn error(&self, e: io::Error, reading: bool) -> Box<Error> {
        let (etype, what) = if reading {
            (ErrorType::ReadError, "splicing from")
        } else {
            (ErrorType::WriteError, "splicing to")
        };
        let from_client = (self.dir == Direction::Upstream) == reading;
        let side = if from_client { "client" } else { "upstream" };
        let e = Error::because(etype, format!("{what} the {side} connection"), e);
        if from_client {
            e.into_down()
        } else {
            e.into_up()
        }
    }
}

/// Relay both ways between two TCP sockets with `splice(2)` until both
/// directions ended, passing each end of stream on as a half-close.
///
/// # Errors
///
/// [`ErrorType::SocketError`] when no pipe can be made (too many open
/// files), else the first read or write error.
pub(super) async fn relay(
    downstream: &TcpStream,
    upstream: &TcpStream,
    activity: &Activity,
) -> Result<()> {
    let pipes =
        Half::new(Direction::Upstream).and_then(|up| Ok((up, Half::new(Direction::Downstream)?)));
    let (mut to_up, mut to_down) =
        pipes.map_err(|e| Error::because(ErrorType::SocketError, "making a pipe to splice", e))?;
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
    use std::sync::atomic::Ordering;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = TcpStream::connect(listener.local_addr().unwrap());
        let (a, b) = tokio::join!(a, listener.accept());
        (a.unwrap(), b.unwrap().0)
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
        let client_side = async {
            let (mut r, mut w) = client.split();
            let write = async {
                w.write_all(&sent_up).await.unwrap();
                w.shutdown().await.unwrap();
            };
            let mut got = Vec::new();
            let read = r.read_to_end(&mut got);
            let ((), n) = tokio::join!(write, read);
            n.unwrap();
            got
        };
        let origin_side = async {
            let (mut r, mut w) = origin.split();
            let write = async {
                w.write_all(&sent_down).await.unwrap();
                w.shutdown().await.unwrap();
            };
            let mut got = Vec::new();
            let read = r.read_to_end(&mut got);
            let ((), n) = tokio::join!(write, read);
            n.unwrap();
            got
        };
        let (relayed, at_client, at_origin) = tokio::join!(relay, client_side, origin_side);
        relayed.unwrap();
        assert!(at_origin == sent_up, "upstream bytes differ");
        assert!(at_client == sent_down, "downstream bytes differ");
        assert_eq!(activity.from_downstream.load(Ordering::Relaxed), 3 << 20);
        assert_eq!(activity.from_upstream.load(Ordering::Relaxed), 5 << 20);
    }
}
