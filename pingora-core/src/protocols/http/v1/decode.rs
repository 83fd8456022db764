//! Sans-IO body decoders: Content-Length, chunked (RFC 9112 §7.1) and
//! read-until-close.
//!
//! A decoder takes the connection's read buffer, removes what belongs to
//! the body and returns it as [`Decoded::Data`] (a zero-copy split of the
//! buffer). Bytes past the end of the body stay in the buffer: they are the
//! next pipelined message and must never be mixed into this one.

use super::framing::Framing;
use bytes::{Buf, Bytes, BytesMut};
use http::header::{HeaderMap, HeaderName, HeaderValue};

/// Cap on chunk-extension bytes over a whole body: extensions are skipped,
/// but a peer must not make us spin on them forever.
const MAX_EXTENSION_BYTES: usize = 64 * 1024;
/// Cap on fields in a trailer section.
const MAX_TRAILER_FIELDS: usize = 64;

/// What a decode step produced.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decoded {
    /// Body bytes.
    Data(Bytes),
    /// The buffer is used up; read more and call again.
    NeedMore,
    /// The body is complete.
    Done,
}

/// Why a body is invalid. Every case ends the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DecodeError {
    /// Bad chunked syntax (including invalid chunk sizes).
    Chunk(&'static str),
    /// The trailer section is malformed or over its limits.
    Trailers(&'static str),
    /// The peer closed before the body was complete.
    Incomplete,
    /// A chunked body announced more data than its limit (413).
    TooLarge,
}

impl DecodeError {
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Self::Chunk(why) | Self::Trailers(why) => why,
            Self::Incomplete => "connection closed before the body was complete",
            Self::TooLarge => "body too large",
        }
    }
}

/// A body decoder for one message.
#[derive(Debug)]
pub(crate) enum BodyDecoder {
    Length { remaining: u64 },
    Chunked(Chunked),
    UntilClose { closed: bool },
}

impl BodyDecoder {
    pub(crate) fn new(framing: Framing, max_trailer_bytes: usize) -> Self {
        match framing {
            Framing::Empty => Self::Length { remaining: 0 },
            Framing::Length(n) => Self::Length { remaining: n },
            Framing::Chunked => Self::Chunked(Chunked::new(max_trailer_bytes)),
            Framing::UntilClose => Self::UntilClose { closed: false },
        }
    }

    /// Refuse a chunked body whose data adds up to more than `max` bytes,
    /// as soon as a chunk size line announces it (before its data is
    /// read). A length-delimited body is the caller's to check against
    /// its Content-Length.
    pub(crate) fn with_body_limit(mut self, max: Option<u64>) -> Self {
        if let (Self::Chunked(c), Some(max)) = (&mut self, max) {
            c.budget = max;
        }
        self
    }

    /// Take the next piece of body out of `buf`.
    pub(crate) fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, DecodeError> {
        match self {
            Self::Length { remaining: 0 } | Self::UntilClose { closed: true } => Ok(Decoded::Done),
            Self::Length { remaining } => {
                if buf.is_empty() {
                    return Ok(Decoded::NeedMore);
                }
                let n = (*remaining).min(buf.len() as u64);
                *remaining -= n;
                Ok(Decoded::Data(buf.split_to(n as usize).freeze()))
            }
            Self::Chunked(chunked) => chunked.decode(buf),
            Self::UntilClose { .. } if buf.is_empty() => Ok(Decoded::NeedMore),
            Self::UntilClose { .. } => Ok(Decoded::Data(buf.split().freeze())),
        }
    }

    /// The peer closed its side: complete a read-until-close body, fail any
    /// other unfinished one.
    pub(crate) fn on_eof(&mut self) -> Result<Decoded, DecodeError> {
        match self {
            Self::UntilClose { closed } => {
                *closed = true;
                Ok(Decoded::Done)
            }
            _ if self.is_done() => Ok(Decoded::Done),
            _ => Err(DecodeError::Incomplete),
        }
    }

    pub(crate) fn is_done(&self) -> bool {
        match self {
            Self::Length { remaining } => *remaining == 0,
            Self::Chunked(c) => matches!(c.state, ChunkState::Done),
            Self::UntilClose { closed } => *closed,
        }
    }

    /// Trailers of a finished chunked body, if it had any.
    pub(crate) fn take_trailers(&mut self) -> Option<HeaderMap> {
        match self {
            Self::Chunked(c) => c.trailers.take(),
            _ => None,
        }
    }
}

/// Where the chunked decoder is. Line states step one byte at a time;
/// each step consumes the old state and returns the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Reading hex digits of the chunk size; `digits` seen so far.
    Size {
        size: u64,
        digits: u8,
    },
    /// Whitespace after the size, which must lead to an extension.
    SizeWs {
        size: u64,
    },
    /// Inside a chunk extension, skipped until CR.
    Ext {
        size: u64,
    },
    /// After the CR of a chunk-size line.
    SizeLf {
        size: u64,
    },
    /// Inside chunk data.
    Data {
        remaining: u64,
    },
    /// After chunk data: expecting CR, then LF.
    DataCr,
    DataLf,
    /// After the last chunk: the trailer section.
    Trailers,
    Done,
}

/// Chunked body decoder.
#[derive(Debug)]
pub(crate) struct Chunked {
    state: ChunkState,
    ext_bytes: usize,
    max_trailer_bytes: usize,
    trailers: Option<HeaderMap>,
    /// Data bytes the rest of the body may hold.
    budget: u64,
}

impl ChunkState {
    /// One byte of a chunk-size line, RFC 9112 §7.1:
    /// `chunk-size [ chunk-ext ] CRLF`, with `chunk-ext = *( BWS ";" ... )`.
    /// Only CRLF ends the line: a bare LF is rejected because peers that
    /// disagree on line endings is how chunked smuggling works.
    fn step_line(self, b: u8) -> Result<Self, DecodeError> {
        match self {
            Self::Size { size, digits } => match (b as char).to_digit(16) {
                // 16 hex digits fill a u64; more would overflow.
                Some(_) if digits >= 16 => Err(DecodeError::Chunk("chunk size too large")),
                Some(d) => Ok(Self::Size {
                    size: (size << 4) | u64::from(d),
                    digits: digits + 1,
                }),
                None if digits == 0 => Err(DecodeError::Chunk("invalid chunk size")),
                None => Self::after_size(size, b),
            },
            Self::SizeWs { size } => match b {
                b' ' | b'\t' => Ok(self),
                b';' => Ok(Self::Ext { size }),
                _ => Err(DecodeError::Chunk("invalid chunk size")),
            },
            Self::Ext { size } => match b {
                b'\r' => Ok(Self::SizeLf { size }),
                b'\t' | b' '..=b'~' | 0x80.. => Ok(self),
                _ => Err(DecodeError::Chunk("invalid chunk extension")),
            },
            Self::SizeLf { size: 0 } if b == b'\n' => Ok(Self::Trailers),
            Self::SizeLf { size } if b == b'\n' => Ok(Self::Data { remaining: size }),
            Self::DataCr if b == b'\r' => Ok(Self::DataLf),
            Self::DataLf if b == b'\n' => Ok(Self::Size { size: 0, digits: 0 }),
            _ => Err(DecodeError::Chunk("invalid chunk line ending")),
        }
    }

    fn after_size(size: u64, b: u8) -> Result<Self, DecodeError> {
        match b {
            b'\r' => Ok(Self::SizeLf { size }),
            b';' => Ok(Self::Ext { size }),
            b' ' | b'\t' => Ok(Self::SizeWs { size }),
            _ => Err(DecodeError::Chunk("invalid chunk size")),
        }
    }
}

impl Chunked {
    fn new(max_trailer_bytes: usize) -> Self {
        Self {
            state: ChunkState::Size { size: 0, digits: 0 },
            ext_bytes: 0,
            max_trailer_bytes,
            trailers: None,
            budget: u64::MAX,
        }
    }

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Decoded, DecodeError> {
        loop {
            match self.state {
                ChunkState::Done => return Ok(Decoded::Done),
                ChunkState::Trailers => return self.trailers(buf),
                ChunkState::Data { remaining } => {
                    if buf.is_empty() {
                        return Ok(Decoded::NeedMore);
                    }
                    let n = remaining.min(buf.len() as u64);
                    self.state = if n == remaining {
                        ChunkState::DataCr
                    } else {
                        ChunkState::Data {
                            remaining: remaining - n,
                        }
                    };
                    return Ok(Decoded::Data(buf.split_to(n as usize).freeze()));
                }
                line_state => {
                    let Some(&b) = buf.first() else {
                        return Ok(Decoded::NeedMore);
                    };
                    buf.advance(1);
                    if matches!(line_state, ChunkState::Ext { .. }) {
                        self.ext_bytes += 1;
                        if self.ext_bytes > MAX_EXTENSION_BYTES {
                            return Err(DecodeError::Chunk("chunk extensions too long"));
                        }
                    }
                    self.state = line_state.step_line(b)?;
                    if let ChunkState::Data { remaining } = self.state {
                        self.budget = self
                            .budget
                            .checked_sub(remaining)
                            .ok_or(DecodeError::TooLarge)?;
                    }
                }
            }
        }
    }

    /// Parse the trailer section (RFC 9112 §7.1.2) once it is whole. It
    /// stays in `buf` until then, bounded by `max_trailer_bytes`.
    fn trailers(&mut self, buf: &mut BytesMut) -> Result<Decoded, DecodeError> {
        match (buf.first(), buf.get(1)) {
            (None, _) | (Some(b'\r'), None) => Ok(Decoded::NeedMore),
            (Some(b'\r'), Some(b'\n')) => {
                buf.advance(2);
                self.state = ChunkState::Done;
                Ok(Decoded::Done)
            }
            // The body must end in CRLF; a bare LF or stray CR is refused
            // for the same reason as in chunk lines.
            (Some(b'\r' | b'\n'), _) => Err(DecodeError::Chunk("invalid chunk line ending")),
            _ => self.parse_trailers(buf),
        }
    }

    fn parse_trailers(&mut self, buf: &mut BytesMut) -> Result<Decoded, DecodeError> {
        let mut slots = [httparse::EMPTY_HEADER; MAX_TRAILER_FIELDS];
        let parsed = httparse::parse_headers(buf, &mut slots)
            .map_err(|_| DecodeError::Trailers("malformed trailers"))?;
        let httparse::Status::Complete((len, fields)) = parsed else {
            if buf.len() > self.max_trailer_bytes {
                return Err(DecodeError::Trailers("trailers too large"));
            }
            return Ok(Decoded::NeedMore);
        };
        if len > self.max_trailer_bytes {
            return Err(DecodeError::Trailers("trailers too large"));
        }
        let mut map = HeaderMap::with_capacity(fields.len());
        for f in fields.iter() {
            let name = HeaderName::from_bytes(f.name.as_bytes())
                .map_err(|_| DecodeError::Trailers("malformed trailers"))?;
            let value = HeaderValue::from_bytes(f.value)
                .map_err(|_| DecodeError::Trailers("malformed trailers"))?;
            map.append(name, value);
        }
        buf.advance(len);
        self.trailers = Some(map);
        self.state = ChunkState::Done;
        Ok(Decoded::Done)
    }
}

#[cfg(test)]
mod tests;
