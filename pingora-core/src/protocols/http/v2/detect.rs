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
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};

/// The client connection preface (RFC 9113 §3.4).
pub(crate) const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// How much of the preface makes a connection HTTP/2: its request line.
/// Bytes that match it and then differ are a broken HTTP/2 preface, not
/// an HTTP/1 request (to HTTP/1 it would be an unsupported version).
const PREFACE_LINE: usize = b"PRI * HTTP/2.0".len();

/// An empty SETTINGS frame (the server preface, RFC 9113 §3.4), then a
/// GOAWAY with last stream 0 and PROTOCOL_ERROR (RFC 9113 §6.8, §7).
const PREFACE_ERROR: [u8; 26] = [
    0, 0, 0, 0x4, 0, 0, 0, 0, 0, //
    0, 0, 8, 0x7, 0, 0, 0, 0, 0, //
    0, 0, 0, 0, 0, 0, 0, 0x1,
];

/// What the first bytes of a cleartext connection said.
#[derive(Debug)]
#[non_exhaustive]
pub enum Detected {
    /// Not HTTP/2: serve HTTP/1 on the stream, which replays the bytes
    /// read.
    Http1(Stream),
    /// The HTTP/2 preface (or a client that stalled inside it): serve
    /// HTTP/2 on the stream, which replays the bytes read.
    Http2(Stream),
    /// A preface that started like HTTP/2's and then went wrong. It was
    /// answered as the connection error RFC 9113 §3.4 calls for (SETTINGS
    /// and GOAWAY with PROTOCOL_ERROR) and the connection closed.
    BadPreface,
}

/// Which protocol a client connection speaks: HTTP/2 when TLS's ALPN
/// chose `h2`; otherwise, when `h2c` is on, what its first bytes say
/// ([`detect_h2c`], under `timeout`); otherwise HTTP/1.
///
/// The sniffing is boxed: a server keeps the future that called this for
/// the connection's whole life, and should not carry its size.
pub async fn detect(stream: Stream, h2c: bool, timeout: Duration) -> Detected {
    if super::negotiated_h2(&stream) {
        Detected::Http2(stream)
    } else if h2c {
        Box::pin(detect_h2c(stream, timeout)).await
    } else {
        Detected::Http1(stream)
    }
}

/// Read the first bytes of `stream` and tell HTTP/2 with prior knowledge
/// from HTTP/1. The bytes read are replayed to whoever reads the returned
/// stream next, so neither protocol misses them.
///
/// A client that sends nothing within `timeout`, closes, or fails a read
/// is taken as HTTP/1: the HTTP/1 session then sees the same silence,
/// close or error and handles it with its own timeouts. One that stops
/// part way into the preface is taken as HTTP/2, whose handshake timeout
/// then closes it. Bytes that begin `PRI * HTTP/2.0` and then differ from
/// the preface get an HTTP/2 connection error, see
/// [`Detected::BadPreface`].
pub async fn detect_h2c(mut stream: Stream, timeout: Duration) -> Detected {
    let mut seen = Vec::with_capacity(PREFACE.len());
    let read = pingora_timeout::timeout(timeout, async {
        let mut buf = [0u8; 24];
        while seen.len() < PREFACE.len() {
            let want = PREFACE.len() - seen.len();
            match stream.read(&mut buf[..want]).await {
                Ok(0) | Err(_) => return Some(false),
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
            if !PREFACE.starts_with(&seen) {
                let matched = seen.iter().zip(PREFACE).take_while(|(a, b)| a == b);
                return if matched.count() >= PREFACE_LINE {
                    None
                } else {
                    Some(false)
                };
            }
        }
        Some(true)
    })
    .await;
    // A client that stopped part way into the preface is a slow or
    // stalling h2c client: the HTTP/2 handshake timeout deals with it.
    let is_h2 = match read {
        Ok(Some(is_h2)) => is_h2,
        Err(_) => !seen.is_empty(),
        Ok(None) => {
            let _ = pingora_timeout::timeout(timeout, async {
                stream.write_all(&PREFACE_ERROR).await?;
                stream.shutdown().await
            })
            .await;
            return Detected::BadPreface;
        }
    };
    if !seen.is_empty() {
        stream = Box::new(Rewind {
            prefix: Bytes::from(seen),
            inner: stream,
        });
    }
    if is_h2 {
        Detected::Http2(stream)
    } else {
        Detected::Http1(stream)
    }
}

/// `stream` without the layer [`detect_h2c`] put over it to replay the
/// bytes it read, once they have all been read again; any other stream
/// as it is. Lets a server find the socket under an HTTP/1 connection
/// that was sniffed for h2c (to park it while idle).
pub(crate) fn unwrap_replayed(stream: Stream) -> Stream {
    let spent = (&*stream as &dyn std::any::Any)
        .downcast_ref::<Rewind>()
        .is_some_and(|r| !r.prefix.has_remaining());
    if !spent {
        return stream;
    }
    let any: Box<dyn std::any::Any> = stream;
    match any.downcast::<Rewind>() {
        Ok(rewind) => rewind.inner,
        // Checked above: never taken.
        Err(_) => Box::new(tokio::io::duplex(1).0),
    }
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
        let detected = detect_h2c(Box::new(server), Duration::from_millis(50)).await;
        let (h2, mut stream) = match detected {
            Detected::Http1(s) => (false, s),
            Detected::Http2(s) => (true, s),
            Detected::BadPreface => panic!("bad preface"),
        };
        drop(client);
        let mut replay = Vec::new();
        stream.read_to_end(&mut replay).await.unwrap();
        (h2, replay)
    }

    #[tokio::test]
    async fn a_broken_preface_is_an_h2_connection_error() {
        for sent in [
            &b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n"[..],
            b"PRI * HTTP/2.0\n\n",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\r",
        ] {
            let (mut client, server) = tokio::io::duplex(1024);
            client.write_all(sent).await.unwrap();
            let detected = detect_h2c(Box::new(server), Duration::from_secs(5)).await;
            assert!(matches!(detected, Detected::BadPreface));
            let mut answer = Vec::new();
            client.read_to_end(&mut answer).await.unwrap();
            assert_eq!(answer, PREFACE_ERROR);
            // The GOAWAY: type 7, error code PROTOCOL_ERROR (1).
            assert_eq!((answer[12], &answer[22..]), (7, &[0, 0, 0, 1][..]));
        }
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
