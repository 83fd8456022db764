//! Streaming base64 (RFC 4648, standard alphabet, padded) for the
//! gRPC-web text mode: the decoder takes input split anywhere, the encoder
//! turns each piece into complete, padded base64 so it can be sent at once.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Padding, in a decoded quantum.
const PAD: u8 = 64;

/// Input that is not base64.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct InvalidBase64;

/// The value of one base64 character; the URL-safe `-` and `_` are taken
/// too. `None` for anything else.
fn value(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' | b'-' => Some(62),
        b'/' | b'_' => Some(63),
        b'=' => Some(PAD),
        _ => None,
    }
}

/// Decodes base64 arriving in pieces of any length. Each group of four
/// characters stands alone, so padded chunks may follow each other (as
/// gRPC-web text clients may send them); whitespace is skipped.
#[derive(Debug, Default)]
pub(super) struct Decoder {
    quad: [u8; 4],
    len: usize,
}

impl Decoder {
    /// Decode `input`, appending the bytes to `out`; up to three
    /// characters wait for the next call.
    pub(super) fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), InvalidBase64> {
        out.reserve(input.len() / 4 * 3 + 3);
        for &c in input {
            if c.is_ascii_whitespace() {
                continue;
            }
            self.quad[self.len] = value(c).ok_or(InvalidBase64)?;
            self.len += 1;
            if self.len == 4 {
                self.len = 0;
                quantum(self.quad, out)?;
            }
        }
        Ok(())
    }

    /// The input ended: decode an unpadded last group of two or three
    /// characters.
    pub(super) fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), InvalidBase64> {
        let len = std::mem::take(&mut self.len);
        match len {
            0 => Ok(()),
            1 => Err(InvalidBase64),
            _ => {
                let mut quad = [PAD; 4];
                quad[..len].copy_from_slice(&self.quad[..len]);
                quantum(quad, out)
            }
        }
    }
}

/// Decode four character values (padding as [`PAD`]).
fn quantum(q: [u8; 4], out: &mut Vec<u8>) -> Result<(), InvalidBase64> {
    if q[0] == PAD || q[1] == PAD || (q[2] == PAD && q[3] != PAD) {
        return Err(InvalidBase64);
    }
    let n = u32::from(q[0]) << 18
        | u32::from(q[1]) << 12
        | u32::from(q[2] & 63) << 6
        | u32::from(q[3] & 63);
    let [_, a, b, c] = n.to_be_bytes();
    out.push(a);
    if q[2] != PAD {
        out.push(b);
        if q[3] != PAD {
            out.push(c);
        }
    }
    Ok(())
}

/// `input` as padded base64.
pub(super) fn encode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len().div_ceil(3) * 4);
    let char_at = |n: u32, shift: u32| ALPHABET[(n >> shift & 63) as usize];
    for group in input.chunks(3) {
        let mut bytes = [0; 3];
        bytes[..group.len()].copy_from_slice(group);
        let n = u32::from(bytes[0]) << 16 | u32::from(bytes[1]) << 8 | u32::from(bytes[2]);
        out.push(char_at(n, 18));
        out.push(char_at(n, 12));
        out.push(if group.len() > 1 { char_at(n, 6) } else { b'=' });
        out.push(if group.len() > 2 { char_at(n, 0) } else { b'=' });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_split(input: &[u8], split: usize) -> Result<Vec<u8>, InvalidBase64> {
        let mut d = Decoder::default();
        let mut out = Vec::new();
        for piece in input.chunks(split.max(1)) {
            d.decode(piece, &mut out)?;
        }
        d.finish(&mut out)?;
        Ok(out)
    }

    #[test]
    fn rfc4648_vectors() {
        let vectors: [(&[u8], &[u8]); 7] = [
            (b"", b""),
            (b"f", b"Zg=="),
            (b"fo", b"Zm8="),
            (b"foo", b"Zm9v"),
            (b"foob", b"Zm9vYg=="),
            (b"fooba", b"Zm9vYmE="),
            (b"foobar", b"Zm9vYmFy"),
        ];
        for (plain, coded) in vectors {
            assert_eq!(encode(plain), coded);
            for split in 1..=5 {
                assert_eq!(decode_split(coded, split).unwrap(), plain);
            }
        }
    }

    #[test]
    fn every_byte_round_trips_at_any_split() {
        let plain: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
        let coded = encode(&plain);
        for split in [1, 2, 3, 5, 7, 64, 1000] {
            assert_eq!(decode_split(&coded, split).unwrap(), plain);
        }
    }

    #[test]
    fn padded_chunks_may_follow_each_other() {
        let mut coded = encode(b"ab");
        coded.extend_from_slice(&encode(b"c"));
        coded.extend_from_slice(b"\r\n");
        coded.extend_from_slice(&encode(b"def"));
        assert_eq!(decode_split(&coded, 3).unwrap(), b"abcdef");
        // Unpadded at the very end is accepted.
        assert_eq!(decode_split(b"Zm8", 2).unwrap(), b"fo");
    }

    #[test]
    fn garbage_is_refused() {
        for bad in [&b"Zm9v!"[..], b"=Zm9", b"Z===", b"Zm=v", b"Zm9vY"] {
            assert_eq!(decode_split(bad, 2), Err(InvalidBase64), "{bad:?}");
        }
    }
}
