//! Sans-IO body encoders: what goes on the wire for each piece of body
//! under Content-Length, chunked or close-delimited framing.

use super::framing::Framing;
use bytes::{BufMut, BytesMut};
use http::header::HeaderMap;

/// Pieces of body at least this long are written from where they are,
/// after what is buffered, in one vectored write, instead of being copied
/// into the write buffer first (a pass over every byte of a large body);
/// shorter ones are copied, which costs less than a second buffer.
pub(crate) const COPY_LIMIT: usize = 4096;

/// Why body bytes could not be encoded. The message on the wire would be
/// wrong, so the connection must close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EncodeError {
    /// More bytes than the Content-Length announced.
    TooLong,
    /// The body ended before the announced Content-Length.
    TooShort,
}

impl EncodeError {
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Self::TooLong => "body longer than content-length",
            Self::TooShort => "body shorter than content-length",
        }
    }
}

/// A body encoder for one message.
#[derive(Debug)]
pub(crate) enum BodyEncoder {
    /// A message that has no body (HEAD, 1xx, 204, 304): bytes are dropped.
    Empty,
    Length {
        remaining: u64,
    },
    Chunked {
        finished: bool,
    },
    UntilClose,
}

impl BodyEncoder {
    pub(crate) const fn new(framing: Framing) -> Self {
        match framing {
            Framing::Empty => Self::Empty,
            Framing::Length(n) => Self::Length { remaining: n },
            Framing::Chunked => Self::Chunked { finished: false },
            Framing::UntilClose => Self::UntilClose,
        }
    }

    /// Append the wire form of `data` to `out`.
    /// Whether a piece of `len` bytes of body goes out as it is, from
    /// where it is (`Ok(true)`, and it is counted): at least
    /// [`COPY_LIMIT`] bytes under a framing that sends body bytes unchanged
    /// (Content-Length or until close). `Ok(false)`: pass it to
    /// [`encode`](Self::encode) instead (short pieces, chunked, no body).
    pub(crate) fn pass_through(&mut self, len: usize) -> Result<bool, EncodeError> {
        if len < COPY_LIMIT {
            return Ok(false);
        }
        match self {
            Self::Length { remaining } => {
                let len = len as u64;
                if len > *remaining {
                    return Err(EncodeError::TooLong);
                }
                *remaining -= len;
                Ok(true)
            }
            Self::UntilClose => Ok(true),
            Self::Empty | Self::Chunked { .. } => Ok(false),
        }
    }

    pub(crate) fn encode(&mut self, data: &[u8], out: &mut BytesMut) -> Result<(), EncodeError> {
        match self {
            Self::Empty => Ok(()),
            Self::Length { remaining } => {
                if data.len() as u64 > *remaining {
                    return Err(EncodeError::TooLong);
                }
                *remaining -= data.len() as u64;
                out.extend_from_slice(data);
                Ok(())
            }
            // An empty chunk would end the body (RFC 9112 §7.1), so empty
            // writes send nothing.
            Self::Chunked { .. } if data.is_empty() => Ok(()),
            Self::Chunked { finished: true } => Err(EncodeError::TooLong),
            Self::Chunked { .. } => {
                write_hex(data.len(), out);
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(data);
                out.extend_from_slice(b"\r\n");
                Ok(())
            }
            Self::UntilClose => {
                out.extend_from_slice(data);
                Ok(())
            }
        }
    }

    /// End the body, appending the last chunk and `trailers` when chunked.
    /// Trailers are dropped under other framings, which cannot carry them.
    pub(crate) fn finish(
        &mut self,
        trailers: Option<&HeaderMap>,
        out: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        match self {
            Self::Length { remaining } if *remaining > 0 => Err(EncodeError::TooShort),
            Self::Chunked { finished: false } => {
                out.extend_from_slice(b"0\r\n");
                for (name, value) in trailers.into_iter().flatten() {
                    out.extend_from_slice(name.as_str().as_bytes());
                    out.extend_from_slice(b": ");
                    out.extend_from_slice(value.as_bytes());
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"\r\n");
                *self = Self::Chunked { finished: true };
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Whether body bytes (or a chunked terminator) are still to be
    /// written.
    pub(crate) const fn expects_more(&self) -> bool {
        match self {
            Self::Empty | Self::Chunked { finished: true } => false,
            Self::Length { remaining } => *remaining > 0,
            Self::Chunked { finished: false } | Self::UntilClose => true,
        }
    }

    /// Whether the body on the wire is complete.
    pub(crate) const fn is_complete(&self) -> bool {
        match self {
            Self::Empty | Self::Chunked { finished: true } => true,
            Self::Length { remaining } => *remaining == 0,
            Self::Chunked { finished: false } | Self::UntilClose => false,
        }
    }
}

fn write_hex(mut n: usize, out: &mut BytesMut) {
    let mut digits = [0u8; 16];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b"0123456789abcdef"[n & 0xf];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.put_slice(&digits[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_long_pieces_under_unchanged_framings_pass_through() {
        let long = COPY_LIMIT;
        let mut e = BodyEncoder::new(Framing::Length(2 * long as u64));
        assert_eq!(e.pass_through(long - 1), Ok(false));
        assert_eq!(e.pass_through(long), Ok(true));
        // Counted: one more long piece fits, a third does not.
        assert_eq!(e.pass_through(long), Ok(true));
        assert_eq!(e.pass_through(long), Err(EncodeError::TooLong));
        assert_eq!(
            BodyEncoder::new(Framing::UntilClose).pass_through(long),
            Ok(true)
        );
        assert_eq!(
            BodyEncoder::new(Framing::Chunked).pass_through(long),
            Ok(false)
        );
        assert_eq!(
            BodyEncoder::new(Framing::Empty).pass_through(long),
            Ok(false)
        );
    }

    #[test]
    fn chunked_with_trailers() {
        let mut e = BodyEncoder::new(Framing::Chunked);
        let mut out = BytesMut::new();
        e.encode(b"hello world, this is 26 by", &mut out).unwrap();
        e.encode(b"", &mut out).unwrap();
        assert!(!e.is_complete());
        let mut t = HeaderMap::new();
        t.insert("grpc-status", "0".parse().unwrap());
        e.finish(Some(&t), &mut out).unwrap();
        assert_eq!(
            &out[..],
            b"1a\r\nhello world, this is 26 by\r\n0\r\ngrpc-status: 0\r\n\r\n"
        );
        assert!(e.is_complete());
        assert_eq!(e.encode(b"x", &mut out), Err(EncodeError::TooLong));
    }

    #[test]
    fn length_is_enforced() {
        let mut e = BodyEncoder::new(Framing::Length(3));
        let mut out = BytesMut::new();
        e.encode(b"ab", &mut out).unwrap();
        assert_eq!(e.finish(None, &mut out), Err(EncodeError::TooShort));
        assert_eq!(e.encode(b"cd", &mut out), Err(EncodeError::TooLong));
        e.encode(b"c", &mut out).unwrap();
        e.finish(None, &mut out).unwrap();
        assert_eq!(&out[..], b"abc");
        let mut empty = BodyEncoder::new(Framing::Empty);
        empty.encode(b"dropped", &mut out).unwrap();
        assert_eq!(&out[..], b"abc");
    }

    #[test]
    fn hex() {
        for (n, s) in [
            (0, "0"),
            (15, "f"),
            (16, "10"),
            (usize::MAX, "ffffffffffffffff"),
        ] {
            let mut out = BytesMut::new();
            write_hex(n, &mut out);
            assert_eq!(&out[..], s.as_bytes());
        }
    }
}
