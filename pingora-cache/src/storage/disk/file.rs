//! The on-disk format of one entry: its file name and its fixed header.
//!
//! ```text
//! <dir>/<pp>/<primary hex>[.<variance hex>].<id hex>   one finished entry
//! <dir>/tmp/<id hex>.tmp                               an entry being written
//!
//! offset  size  field
//!      0     8  magic "PRSDISK1" (the 1 is the format version)
//!      8     8  entry id, u64 little endian (also in the file name)
//!     16    16  primary hash
//!     32     1  1 when a variance follows, else 0
//!     33    16  variance hash (zeros without one)
//!     49     3  zero
//!     52     4  meta length M, u32 LE (internal part length + 4 + both parts)
//!     56     8  body length B, u64 LE (all ones while the body is written)
//!     64     8  checksum: BLAKE2b-64 of bytes 0..64 and the M meta bytes
//!     72     M  meta: internal length u32 LE, internal part, header part
//!   72+M     B  body
//! ```
//!
//! A file is valid when its magic, name, checksum and length
//! (`72 + M + B`) all agree; anything else is deleted at start-up.

use crate::key::{CompactCacheKey, HashBinary, hex};
use crate::meta::CacheMeta;
use blake2::digest::consts::U8;
use blake2::{Blake2b, Digest};
use pingora_error::{Error, ErrorType, Result};
use std::path::{Path, PathBuf};

pub(super) const MAGIC: &[u8; 8] = b"PRSDISK1";
/// The fixed header's length: where the meta starts.
pub(super) const HEADER_LEN: usize = 72;
/// The body length written while the body is not finished.
const UNFINISHED: u64 = u64::MAX;
/// Where files being written live; all of it is deleted at start-up.
pub(super) const TMP_DIR: &str = "tmp";
/// The file that marks a directory as ours, so that start-up never
/// deletes files in a directory given by mistake.
pub(super) const MARKER: &str = "PINGORA_DISK_CACHE";
pub(super) const MARKER_TEXT: &[u8] = b"pingora-rs disk cache, format 1\n";

/// What the fixed header says about an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Header {
    pub(super) id: u64,
    pub(super) key: CompactCacheKey,
    pub(super) meta_len: u32,
    pub(super) body_len: u64,
}

impl Header {
    /// Where the body starts in the file.
    pub(super) fn body_offset(&self) -> u64 {
        HEADER_LEN as u64 + u64::from(self.meta_len)
    }

    /// The whole file's length once finished.
    pub(super) fn file_len(&self) -> u64 {
        self.body_offset().saturating_add(self.body_len)
    }

    /// The header bytes for `meta`; `body_len` `None` while unfinished.
    pub(super) fn encode(&self, meta: &[u8], finished: bool) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0..8].copy_from_slice(MAGIC);
        out[8..16].copy_from_slice(&self.id.to_le_bytes());
        out[16..32].copy_from_slice(&self.key.primary);
        if let Some(v) = &self.key.variance {
            out[32] = 1;
            out[33..49].copy_from_slice(v);
        }
        out[52..56].copy_from_slice(&self.meta_len.to_le_bytes());
        let body_len = if finished { self.body_len } else { UNFINISHED };
        out[56..64].copy_from_slice(&body_len.to_le_bytes());
        let sum = checksum(&out[..64], meta);
        out[64..72].copy_from_slice(&sum);
        out
    }

    /// Read a finished entry's header, checking its checksum over `meta`
    /// (the `meta_len` bytes that follow the header).
    pub(super) fn decode(head: &[u8], meta: &[u8]) -> Result<Self> {
        let corrupt = |why| Error::explain(ErrorType::InternalError, why);
        let Some(head) = head.first_chunk::<HEADER_LEN>() else {
            return Err(corrupt("disk cache file truncated"));
        };
        if &head[0..8] != MAGIC {
            return Err(corrupt("not a disk cache file"));
        }
        let u64_at = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&head[at..at + 8]);
            u64::from_le_bytes(b)
        };
        let mut primary = [0u8; 16];
        primary.copy_from_slice(&head[16..32]);
        let variance = (head[32] == 1).then(|| {
            let mut v = [0u8; 16];
            v.copy_from_slice(&head[33..49]);
            v
        });
        let mut meta_len = [0u8; 4];
        meta_len.copy_from_slice(&head[52..56]);
        let header = Self {
            id: u64_at(8),
            key: CompactCacheKey { primary, variance },
            meta_len: u32::from_le_bytes(meta_len),
            body_len: u64_at(56),
        };
        if header.body_len == UNFINISHED {
            return Err(corrupt("disk cache file unfinished"));
        }
        if meta.len() != header.meta_len as usize {
            return Err(corrupt("disk cache meta truncated"));
        }
        if head[64..72] != checksum(&head[..64], meta) {
            return Err(corrupt("disk cache file checksum mismatch"));
        }
        Ok(header)
    }
}

fn checksum(head: &[u8], meta: &[u8]) -> [u8; 8] {
    let mut h = Blake2b::<U8>::new();
    h.update(head);
    h.update(meta);
    h.finalize().into()
}

/// The meta bytes of `meta`: internal length, internal part, header part.
pub(super) fn encode_meta(meta: &CacheMeta) -> Result<Vec<u8>> {
    let (internal, header) = meta.serialize()?;
    let internal_len = u32::try_from(internal.len())
        .map_err(|_| Error::explain(ErrorType::InternalError, "cache meta too large"))?;
    let mut out = Vec::with_capacity(4 + internal.len() + header.len());
    out.extend_from_slice(&internal_len.to_le_bytes());
    out.extend_from_slice(&internal);
    out.extend_from_slice(&header);
    Ok(out)
}

/// [`CacheMeta`] from the bytes [`encode_meta`] wrote.
pub(super) fn decode_meta(bytes: &[u8]) -> Result<CacheMeta> {
    let bad = || Error::explain(ErrorType::InternalError, "disk cache meta malformed");
    let (len, rest) = bytes.split_first_chunk::<4>().ok_or_else(bad)?;
    let len = u32::from_le_bytes(*len) as usize;
    if len > rest.len() {
        return Err(bad());
    }
    let (internal, header) = rest.split_at(len);
    CacheMeta::deserialize(internal, header)
}

/// The file name of a finished entry.
pub(super) fn file_name(key: &CompactCacheKey, id: u64) -> String {
    match &key.variance {
        None => format!("{}.{id:016x}", hex(&key.primary)),
        Some(v) => format!("{}.{}.{id:016x}", hex(&key.primary), hex(v)),
    }
}

/// The sub-directory of a finished entry: the primary hash's first byte,
/// so that no directory holds more than a 256th of the entries.
pub(super) fn sub_dir(primary: &HashBinary) -> String {
    format!("{:02x}", primary[0])
}

/// The path of a finished entry under `dir`.
pub(super) fn entry_path(dir: &Path, key: &CompactCacheKey, id: u64) -> PathBuf {
    dir.join(sub_dir(&key.primary)).join(file_name(key, id))
}

/// The path of an entry being written.
pub(super) fn tmp_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(TMP_DIR).join(format!("{id:016x}.tmp"))
}

fn parse_hash(s: &str) -> Option<HashBinary> {
    if s.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// The key and id a finished entry's file name says; `None` for a name
/// that is not ours.
pub(super) fn parse_name(name: &str) -> Option<(CompactCacheKey, u64)> {
    let mut parts = name.split('.');
    let primary = parse_hash(parts.next()?)?;
    let second = parts.next()?;
    let (variance, id) = match parts.next() {
        Some(id) => (Some(parse_hash(second)?), id),
        None => (None, second),
    };
    if parts.next().is_some() || id.len() != 16 {
        return None;
    }
    let id = u64::from_str_radix(id, 16).ok()?;
    Some((CompactCacheKey { primary, variance }, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let plain = CompactCacheKey {
            primary: [0xab; 16],
            variance: None,
        };
        let varied = CompactCacheKey {
            primary: [1; 16],
            variance: Some([2; 16]),
        };
        for key in [plain, varied] {
            let name = file_name(&key, 0x1234);
            assert_eq!(parse_name(&name), Some((key, 0x1234)));
        }
        assert_eq!(sub_dir(&[0xab; 16]), "ab");
        for bad in ["", "x", "abc.def", &format!("{}.zz", "00".repeat(16))] {
            assert_eq!(parse_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn header_round_trip_and_checks() {
        let h = Header {
            id: 7,
            key: CompactCacheKey {
                primary: [3; 16],
                variance: Some([4; 16]),
            },
            meta_len: 3,
            body_len: 10,
        };
        let bytes = h.encode(b"abc", true);
        assert_eq!(Header::decode(&bytes, b"abc").unwrap(), h);
        assert_eq!(h.file_len(), 72 + 3 + 10);
        assert!(Header::decode(&bytes, b"abd").is_err());
        assert!(Header::decode(&bytes[..40], b"abc").is_err());
        assert!(Header::decode(&h.encode(b"abc", false), b"abc").is_err());
        let mut flipped = bytes;
        flipped[20] ^= 1;
        assert!(Header::decode(&flipped, b"abc").is_err());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
        // Files on disk may be damaged: any bytes are an error or a
        // header, never a panic.
        #[test]
        fn arbitrary_files_never_panic(
            head in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..100),
            meta in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40),
            name in "[0-9a-f.]{0,80}",
        ) {
            let _ = Header::decode(&head, &meta);
            let _ = decode_meta(&meta);
            let _ = parse_name(&name);
        }
    }
}
