//! Streaming encoders and decoders: bytes in, bytes out, a piece at a
//! time.
//!
//! Each piece is flushed through (a sync flush for deflate, a flush for
//! brotli and zstd), so what the client receives for a piece decodes
//! without waiting for later ones and nothing but the codec's own window
//! and tables is kept between pieces: memory stays bounded whatever the
//! body size.

use super::Algorithm;
use bytes::Bytes;
use pingora_error::{Error, ErrorType, OrErr, Result};
use std::io::Write;

/// The brotli window: 2^22 bytes (4 MiB), the encoder's usual default.
const BROTLI_WINDOW_BITS: u32 = 22;
/// The brotli writers' internal buffer size.
const BROTLI_BUFFER: usize = 16 * 1024;

/// The most plain bytes one piece of upstream body may decode to: a
/// proxy reads pieces of tens of KiB, which text expands 5 to 20 times,
/// gzip at most about 1000 times.
pub(crate) const MAX_DECODED_PIECE: usize = 64 << 20;
/// How much coded input is decoded at a time before checking the output
/// against [`MAX_DECODED_PIECE`]: 256 bytes of zstd or brotli yield a few
/// MiB at most.
const DECODE_SLICE: usize = 256;

/// The largest level each algorithm takes; higher levels are clamped.
pub(crate) const fn max_level(alg: Algorithm) -> u32 {
    match alg {
        Algorithm::Gzip => 9,
        Algorithm::Brotli => 11,
        Algorithm::Zstd => 22,
    }
}

/// Take what a writer collected so far.
fn take(out: &mut Vec<u8>) -> Bytes {
    Bytes::from(std::mem::take(out))
}

/// A streaming compressor for one response body.
pub(crate) enum Encoder {
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    Brotli(Box<brotli::CompressorWriter<Vec<u8>>>),
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
}

impl Encoder {
    /// An encoder for `alg` at `level` (clamped to the algorithm's range;
    /// at least 1).
    ///
    /// # Errors
    ///
    /// When the codec cannot be set up (zstd out of memory).
    pub(crate) fn new(alg: Algorithm, level: u32) -> Result<Self> {
        let level = level.clamp(1, max_level(alg));
        Ok(match alg {
            Algorithm::Gzip => Self::Gzip(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::new(level),
            )),
            Algorithm::Brotli => Self::Brotli(Box::new(brotli::CompressorWriter::new(
                Vec::new(),
                BROTLI_BUFFER,
                level,
                BROTLI_WINDOW_BITS,
            ))),
            Algorithm::Zstd => {
                // `level` is at most 22: the cast cannot wrap.
                let encoder = zstd::stream::write::Encoder::new(Vec::new(), level as i32)
                    .or_err(ErrorType::InternalError, "setting up zstd")?;
                Self::Zstd(encoder)
            }
        })
    }

    /// Compress `piece` and return what can be sent for it now.
    ///
    /// # Errors
    ///
    /// When the codec fails (it does not on valid state).
    pub(crate) fn encode(&mut self, piece: &[u8]) -> Result<Bytes> {
        let res = match self {
            Self::Gzip(w) => w.write_all(piece).and_then(|()| w.flush()),
            Self::Brotli(w) => w.write_all(piece).and_then(|()| w.flush()),
            Self::Zstd(w) => w.write_all(piece).and_then(|()| w.flush()),
        };
        res.or_err(ErrorType::InternalError, "compressing a body piece")?;
        Ok(match self {
            Self::Gzip(w) => take(w.get_mut()),
            Self::Brotli(w) => take(w.get_mut()),
            Self::Zstd(w) => take(w.get_mut()),
        })
    }

    /// End the stream and return its last bytes.
    ///
    /// # Errors
    ///
    /// When the codec fails (it does not on valid state).
    pub(crate) fn finish(self) -> Result<Bytes> {
        let out = match self {
            Self::Gzip(w) => w.finish(),
            Self::Brotli(w) => Ok(w.into_inner()),
            Self::Zstd(w) => w.finish(),
        };
        out.map(Bytes::from)
            .or_err(ErrorType::InternalError, "ending a compressed body")
    }
}

/// A streaming decompressor for one upstream body.
pub(crate) enum Decoder {
    Gzip(flate2::write::GzDecoder<Vec<u8>>),
    Brotli(Box<brotli::DecompressorWriter<Vec<u8>>>),
    Zstd(zstd::stream::write::Decoder<'static, Vec<u8>>),
}

/// The error for an upstream body that does not decode.
fn bad_body(e: std::io::Error) -> Box<Error> {
    Error::because(ErrorType::InvalidHTTPHeader, "decoding an upstream body", e).into_up()
}

impl Decoder {
    /// A decoder for `alg`.
    ///
    /// # Errors
    ///
    /// When the codec cannot be set up (zstd out of memory).
    pub(crate) fn new(alg: Algorithm) -> Result<Self> {
        Ok(match alg {
            Algorithm::Gzip => Self::Gzip(flate2::write::GzDecoder::new(Vec::new())),
            Algorithm::Brotli => Self::Brotli(Box::new(brotli::DecompressorWriter::new(
                Vec::new(),
                BROTLI_BUFFER,
            ))),
            Algorithm::Zstd => Self::Zstd(
                zstd::stream::write::Decoder::new(Vec::new())
                    .or_err(ErrorType::InternalError, "setting up zstd")?,
            ),
        })
    }

    /// Decompress `piece` and return the plain bytes it yields.
    ///
    /// The piece is fed a slice at a time, so that a body that expands
    /// beyond [`MAX_DECODED_PIECE`] for one piece (a decompression bomb:
    /// zstd and brotli describe long runs in a few bytes) is refused
    /// after at most a slice's worth of output past the limit.
    ///
    /// # Errors
    ///
    /// When the bytes are not valid for the coding, or expand too much.
    pub(crate) fn decode(&mut self, piece: &[u8]) -> Result<Bytes> {
        for slice in piece.chunks(DECODE_SLICE) {
            let res = match self {
                Self::Gzip(w) => w.write_all(slice).and_then(|()| w.flush()),
                Self::Brotli(w) => w.write_all(slice).and_then(|()| w.flush()),
                Self::Zstd(w) => w.write_all(slice).and_then(|()| w.flush()),
            };
            res.map_err(bad_body)?;
            let out = match self {
                Self::Gzip(w) => w.get_ref().len(),
                Self::Brotli(w) => w.get_ref().len(),
                Self::Zstd(w) => w.get_ref().len(),
            };
            if out > MAX_DECODED_PIECE {
                return Err(Error::explain(
                    ErrorType::InvalidHTTPHeader,
                    "an upstream body piece expands past the decoding limit",
                )
                .into_up());
            }
        }
        Ok(match self {
            Self::Gzip(w) => take(w.get_mut()),
            Self::Brotli(w) => take(w.get_mut()),
            Self::Zstd(w) => take(w.get_mut()),
        })
    }

    /// The end of the body: the last plain bytes.
    ///
    /// # Errors
    ///
    /// When the body stopped in the middle of the coded stream.
    pub(crate) fn finish(self) -> Result<Bytes> {
        let out = match self {
            Self::Gzip(w) => w.finish(),
            Self::Brotli(w) => w.into_inner().map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "truncated brotli")
            }),
            Self::Zstd(mut w) => w.flush().map(|()| w.into_inner()),
        };
        out.map(Bytes::from).map_err(bad_body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn decode_with_std_readers(alg: Algorithm, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        match alg {
            Algorithm::Gzip => flate2::read::GzDecoder::new(data).read_to_end(&mut out),
            Algorithm::Brotli => brotli::Decompressor::new(data, 4096).read_to_end(&mut out),
            Algorithm::Zstd => zstd::stream::read::Decoder::new(data)
                .unwrap()
                .read_to_end(&mut out),
        }
        .unwrap();
        out
    }

    #[test]
    fn each_piece_decodes_on_its_own_and_the_whole_round_trips() {
        let text: Vec<u8> = (0..20_000)
            .flat_map(|i| format!("{{\"id\":{i},\"name\":\"item {i}\"}},").into_bytes())
            .collect();
        for alg in Algorithm::ALL {
            let mut enc = Encoder::new(alg, 5).unwrap();
            let mut dec = Decoder::new(alg).unwrap();
            let mut wire = Vec::new();
            let mut plain = Vec::new();
            let mut consumed = 0;
            for piece in text.chunks(7_000) {
                let out = enc.encode(piece).unwrap();
                // Flushed: the decoder gets every byte of this piece back.
                let back = dec.decode(&out).unwrap();
                plain.extend_from_slice(&back);
                assert_eq!(plain.len(), consumed + piece.len(), "{alg:?}");
                consumed += piece.len();
                wire.extend_from_slice(&out);
            }
            let tail = enc.finish().unwrap();
            wire.extend_from_slice(&tail);
            plain.extend_from_slice(&dec.decode(&tail).unwrap());
            plain.extend_from_slice(&dec.finish().unwrap());
            assert_eq!(plain, text, "{alg:?}");
            assert!(wire.len() < text.len() / 4, "{alg:?}: {}", wire.len());
            assert_eq!(decode_with_std_readers(alg, &wire), text, "{alg:?}");
        }
    }

    #[test]
    fn a_decompression_bomb_is_refused() {
        // 256 MiB of zeros: zstd codes them in a few KiB.
        let zeros = vec![0u8; 1 << 20];
        let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        for _ in 0..256 {
            enc.write_all(&zeros).unwrap();
        }
        let bomb = enc.finish().unwrap();
        assert!(bomb.len() < 64 * 1024, "{}", bomb.len());
        let mut dec = Decoder::new(Algorithm::Zstd).unwrap();
        assert!(dec.decode(&bomb).is_err());
        // Below the limit, the same kind of body decodes.
        let small = zstd::encode_all(&zeros[..], 3).unwrap();
        let mut dec = Decoder::new(Algorithm::Zstd).unwrap();
        assert_eq!(dec.decode(&small).unwrap().len(), zeros.len());
    }

    #[test]
    fn levels_are_clamped() {
        for alg in Algorithm::ALL {
            for level in [0, 1, 100] {
                let mut enc = Encoder::new(alg, level).unwrap();
                let mut wire = enc.encode(b"hello hello hello").unwrap().to_vec();
                wire.extend_from_slice(&enc.finish().unwrap());
                assert_eq!(decode_with_std_readers(alg, &wire), b"hello hello hello");
            }
        }
    }

    #[test]
    fn garbage_and_truncation_are_errors() {
        for alg in Algorithm::ALL {
            let mut dec = Decoder::new(alg).unwrap();
            let garbage = dec.decode(b"this is not compressed at all, not at all");
            assert!(garbage.is_err() || dec.finish().is_err(), "{alg:?}");
        }
        let mut enc = Encoder::new(Algorithm::Gzip, 6).unwrap();
        let wire = enc.encode(&[b'a'; 1000]).unwrap();
        let mut dec = Decoder::new(Algorithm::Gzip).unwrap();
        dec.decode(&wire).unwrap();
        assert!(dec.finish().is_err(), "gzip without its trailer");
    }
}
