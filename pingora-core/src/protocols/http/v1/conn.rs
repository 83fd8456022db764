//! The I/O half of an HTTP/1 connection: the stream, its reused read and
//! write buffers, and the timeouts around every read and write.

use super::H1Config;
use crate::protocols::Stream;
use bytes::BytesMut;
use pingora_error::{Error, ErrorType, Result};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How much room each read asks for.
const READ_CHUNK: usize = 16 * 1024;
/// After a connection is closed on an error, how long and how much we keep
/// reading and discarding so the peer gets our last response instead of a
/// reset (RFC 9112 §9.6 on closing with unread data).
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 256 * 1024;

/// A stream plus the buffers that live as long as the connection.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) stream: Stream,
    /// Bytes read but not yet consumed: the rest of a head, body bytes, or
    /// the next pipelined message.
    pub(crate) buf: BytesMut,
    /// Bytes waiting to be written.
    pub(crate) wbuf: BytesMut,
    pub(crate) config: H1Config,
}

impl Conn {
    pub(crate) fn new(stream: Stream, config: H1Config) -> Self {
        Self {
            stream,
            buf: BytesMut::with_capacity(READ_CHUNK),
            wbuf: BytesMut::with_capacity(READ_CHUNK),
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
    /// that already bounds the whole wait (a head read under the header
    /// timeout): a second timer would only cost a wheel slot per read.
    /// `Ok(0)` means the peer closed its side.
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

    /// Write and flush everything in `wbuf`, each write bounded by the
    /// write timeout. Nothing to write costs nothing: every write goes
    /// through here and ends flushed, so an empty `wbuf` leaves nothing
    /// buffered in the stream either.
    pub(crate) async fn flush_wbuf(&mut self) -> Result<()> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        let data = self.wbuf.split();
        let wait = self.config.write_timeout;
        let write = async {
            self.stream.write_all(&data).await?;
            self.stream.flush().await
        };
        let res = self.config.bounded(wait, write).await;
        // Once `data` is gone, the next write into `wbuf` reclaims its room.
        drop(data);
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
