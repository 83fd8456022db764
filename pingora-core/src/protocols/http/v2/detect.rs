//! Telling cleartext HTTP/2 with prior knowledge (h2c) from HTTP/1 on the
//! same port, by the first bytes a client sends.
//!
//! An h2c client must open with the 24-byte connection preface
//! `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n` (RFC 9113 §3.4), which no HTTP/1
//! request starts with; the first byte that differs settles it, so an
//! HTTP/1 request costs at most one extra read.

use crate::protocols::{Digest, IO, Stream};
use bytes::{Buf, Bytes};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

/// The client connection preface (RFC 9113 §3.4).
pub(crate) const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Read the first bytes of `stream` and say whether they are the HTTP/2
/// preface. The bytes read are replayed to whoever reads the returned
/// stream next, so neither protocol misses them.
///
/// A client that sends nothing within `timeout`, closes, or fails a read
/// is taken as HTTP/1: the HTTP/1 session then sees the same silence,
/// close or error and handles it with its own timeouts. One that stops
/// part way into the preface is taken as HTTP/2, whose handshake timeout
/// then closes it.
pub async fn detect_h2c(mut stream: Stream, timeout: Duration) -> (bool, Stream) {
    let mut seen = Vec::with_capacity(PREFACE.len());
    let read = pingora_timeout::timeout(timeout, async {
        let mut buf = [0u8; 24];
        while seen.len() < PREFACE.len() {
            let want = PREFACE.len() - seen.len();
            match stream.read(&mut buf[..want]).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
            if !PREFACE.starts_with(&seen) {
                return false;
            }
        }
        true
    })
    .await;
    // A client that stopped part way into the preface is a slow or
    // stalling h2c client: the HTTP/2 handshake timeout deals with it.
    let is_h2 = read.unwrap_or(!seen.is_empty());
    if seen.is_empty() {
        return (is_h2, stream);
    }
    let rewound = Rewind {
        prefix: Bytes::from(seen),
        inner: stream,
    };
    (is_h2, Box::new(rewound))
}

/// A stream that first yields bytes already read from it.
#[derive(Debug)]
struct Rewind {
    prefix: Bytes,
    inner: Stream,
}

impl IO for Rewind {
    fn digest(&self) -> Option<&Digest> {
        self.inner.digest()
    }
}

impl AsyncRead for Rewind {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.prefix.has_remaining() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix[..n]);
            this.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

write_through_inner!(Rewind);

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    async fn detect(sent: &[u8], close: bool) -> (bool, Vec<u8>) {
        let (client, server) = tokio::io::duplex(1024);
        let mut client = client;
        client.write_all(sent).await.unwrap();
        if close {
            client.shutdown().await.unwrap();
        }
        let (h2, mut stream) = detect_h2c(Box::new(server), Duration::from_millis(50)).await;
        drop(client);
        let mut replay = Vec::new();
        stream.read_to_end(&mut replay).await.unwrap();
        (h2, replay)
    }

    #[tokio::test]
    async fn the_preface_is_h2_and_is_replayed() {
        let mut sent = PREFACE.to_vec();
        sent.extend_from_slice(b"\0\0\0\x04\0\0\0\0\0");
        let (h2, replay) = detect(&sent, true).await;
        assert!(h2);
        assert_eq!(replay, sent);
    }

    #[tokio::test]
    async fn an_http1_request_is_not_and_loses_no_byte() {
        let sent = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        let (h2, replay) = detect(sent, true).await;
        assert!(!h2);
        assert_eq!(replay, sent);
        // Even one that starts like the preface.
        let (h2, replay) = detect(b"PRI * HTTP/1.1\r\n", true).await;
        assert!(!h2);
        assert_eq!(replay, b"PRI * HTTP/1.1\r\n");
    }

    #[tokio::test]
    async fn silence_and_early_close_are_http1_a_stall_is_not() {
        let (h2, replay) = detect(b"", false).await;
        assert!(!h2);
        assert!(replay.is_empty());
        // A stall inside the preface goes to HTTP/2 and its timeouts.
        let (h2, replay) = detect(b"PRI * HT", false).await;
        assert!(h2);
        assert_eq!(replay, b"PRI * HT");
        let (h2, replay) = detect(b"", true).await;
        assert!(!h2);
        assert!(replay.is_empty());
    }
}
