//! The field names HTTP/1 framing and hop-by-hop handling look at on every
//! message, each with a bit, so a [`HeaderList`](super::HeaderList) can
//! remember which of them it holds and answer "is there a
//! `Transfer-Encoding`?" without scanning its fields.

/// A set of well-known field names, one bit each.
pub(crate) type KnownSet = u16;

pub(crate) const HOST: KnownSet = 1 << 0;
pub(crate) const CONTENT_LENGTH: KnownSet = 1 << 1;
pub(crate) const TRANSFER_ENCODING: KnownSet = 1 << 2;
pub(crate) const CONNECTION: KnownSet = 1 << 3;
pub(crate) const KEEP_ALIVE: KnownSet = 1 << 4;
pub(crate) const PROXY_CONNECTION: KnownSet = 1 << 5;
pub(crate) const TE: KnownSet = 1 << 6;
pub(crate) const UPGRADE: KnownSet = 1 << 7;
pub(crate) const EXPECT: KnownSet = 1 << 8;

/// Whether `a` and `b` are the same name in any case. Without early exit,
/// so the loop compiles to a few wide operations: names are short, and
/// this runs for every field looked up.
#[inline]
pub(crate) fn same_name(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).fold(0, |diff, (x, y)| {
            diff | (x.to_ascii_lowercase() ^ y.to_ascii_lowercase())
        }) == 0
}

/// Eight bytes of `b` from `at`, as one word.
#[inline(always)]
fn word(b: &[u8], at: usize) -> u64 {
    let mut w = [0; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

/// Whether `a` equals `b`; the lengths are equal. Word-wide and without
/// early exit or call: names are short, and this runs for most fields.
#[inline(always)]
fn equal(a: &[u8], b: &[u8]) -> bool {
    let n = b.len();
    if n < 8 {
        return a.iter().zip(b).fold(0, |d, (x, y)| d | (x ^ y)) == 0;
    }
    // Whole words, then the last eight bytes (overlapping the previous).
    let mut diff = 0;
    let mut at = 0;
    while at + 8 <= n {
        diff |= word(a, at) ^ word(b, at);
        at += 8;
    }
    diff |= word(a, n - 8) ^ word(b, n - 8);
    diff == 0
}

/// What to set in a byte of a name so that it equals `lower`'s byte in
/// any case: bit 5 where `lower` has a letter, nothing elsewhere.
#[inline(always)]
const fn case_bit(lower: u8) -> u8 {
    if lower.is_ascii_lowercase() { 0x20 } else { 0 }
}

/// [`case_bit`] of the eight bytes of `lower` from `at`, as one word.
#[inline(always)]
fn case_bits(lower: &[u8], at: usize) -> u64 {
    let mut w = [0; 8];
    for (bit, &b) in w.iter_mut().zip(&lower[at..at + 8]) {
        *bit = case_bit(b);
    }
    u64::from_le_bytes(w)
}

/// Whether `name` is `lower` in any case; the lengths are equal. `lower`
/// holds only lowercase letters and `-`. Setting bit 5 of a byte maps
/// exactly the two cases of a letter onto the lowercase one, and nothing
/// is set where `lower` has `-`, so this is exact for any bytes (setting
/// it there too would take a CR for a `-`). `lower` is a literal at every
/// call, so the masks fold away.
#[inline(always)]
fn folds_to(name: &[u8], lower: &[u8]) -> bool {
    let n = lower.len();
    if n < 8 {
        return name
            .iter()
            .zip(lower)
            .fold(0, |d, (x, y)| d | ((x | case_bit(*y)) ^ y))
            == 0;
    }
    // Whole words, then the last eight bytes (overlapping the previous).
    let mut diff = 0;
    let mut at = 0;
    while at + 8 <= n {
        diff |= (word(name, at) | case_bits(lower, at)) ^ word(lower, at);
        at += 8;
    }
    diff |= (word(name, n - 8) | case_bits(lower, n - 8)) ^ word(lower, n - 8);
    diff == 0
}

/// The bit of `name` (any case), or 0 for a name not tracked here: a
/// length match and a comparison or two of a few words.
#[inline]
pub(crate) fn known_bit(name: &[u8]) -> KnownSet {
    let is = |lower: &[u8]| folds_to(name, lower);
    match name.len() {
        2 if is(b"te") => TE,
        4 if is(b"host") => HOST,
        6 if is(b"expect") => EXPECT,
        7 if is(b"upgrade") => UPGRADE,
        10 if is(b"connection") => CONNECTION,
        10 if is(b"keep-alive") => KEEP_ALIVE,
        14 if is(b"content-length") => CONTENT_LENGTH,
        16 if is(b"proxy-connection") => PROXY_CONNECTION,
        17 if is(b"transfer-encoding") => TRANSFER_ENCODING,
        _ => 0,
    }
}

/// The usual spellings of common field names (each in its usual case and
/// in lowercase) of this length and first byte.
fn usual_spellings(len: usize, first: u8) -> &'static [&'static [u8]] {
    match (len, first) {
        (2, b'T') => &[b"TE"],
        (2, b't') => &[b"te"],
        (3, b'A') => &[b"Age"],
        (3, b'V') => &[b"Via"],
        (3, b'a') => &[b"age"],
        (3, b'v') => &[b"via"],
        (4, b'D') => &[b"Date"],
        (4, b'E') => &[b"ETag"],
        (4, b'H') => &[b"Host"],
        (4, b'V') => &[b"Vary"],
        (4, b'd') => &[b"date"],
        (4, b'e') => &[b"etag"],
        (4, b'h') => &[b"host"],
        (4, b'v') => &[b"vary"],
        (5, b'R') => &[b"Range"],
        (5, b'r') => &[b"range"],
        (6, b'A') => &[b"Accept"],
        (6, b'C') => &[b"Cookie"],
        (6, b'E') => &[b"Expect"],
        (6, b'O') => &[b"Origin"],
        (6, b'P') => &[b"Pragma"],
        (6, b'S') => &[b"Server"],
        (6, b'a') => &[b"accept"],
        (6, b'c') => &[b"cookie"],
        (6, b'e') => &[b"expect"],
        (6, b'o') => &[b"origin"],
        (6, b'p') => &[b"pragma"],
        (6, b's') => &[b"server"],
        (7, b'R') => &[b"Referer"],
        (7, b'T') => &[b"Trailer"],
        (7, b'U') => &[b"Upgrade"],
        (7, b'r') => &[b"referer"],
        (7, b't') => &[b"trailer"],
        (7, b'u') => &[b"upgrade"],
        (8, b'L') => &[b"Location"],
        (8, b'P') => &[b"Priority"],
        (8, b'l') => &[b"location"],
        (8, b'p') => &[b"priority"],
        (9, b'X') => &[b"X-Real-Ip"],
        (9, b'x') => &[b"x-real-ip"],
        (10, b'C') => &[b"Connection"],
        (10, b'K') => &[b"Keep-Alive"],
        (10, b'S') => &[b"Set-Cookie"],
        (10, b'U') => &[b"User-Agent"],
        (10, b'c') => &[b"connection"],
        (10, b'k') => &[b"keep-alive"],
        (10, b's') => &[b"set-cookie"],
        (10, b'u') => &[b"user-agent"],
        (12, b'C') => &[b"Content-Type"],
        (12, b'M') => &[b"Max-Forwards"],
        (12, b'X') => &[b"X-Request-Id"],
        (12, b'c') => &[b"content-type"],
        (12, b'm') => &[b"max-forwards"],
        (12, b'x') => &[b"x-request-id"],
        (13, b'A') => &[b"Authorization", b"Accept-Ranges"],
        (13, b'C') => &[b"Cache-Control"],
        (13, b'I') => &[b"If-None-Match"],
        (13, b'L') => &[b"Last-Modified"],
        (13, b'a') => &[b"authorization", b"accept-ranges"],
        (13, b'c') => &[b"cache-control"],
        (13, b'i') => &[b"if-none-match"],
        (13, b'l') => &[b"last-modified"],
        (14, b'C') => &[b"Content-Length"],
        (14, b'c') => &[b"content-length"],
        (15, b'A') => &[b"Accept-Encoding", b"Accept-Language"],
        (15, b'X') => &[b"X-Forwarded-For"],
        (15, b'a') => &[b"accept-encoding", b"accept-language"],
        (15, b'x') => &[b"x-forwarded-for"],
        (16, b'C') => &[b"Content-Encoding"],
        (16, b'P') => &[b"Proxy-Connection"],
        (16, b'X') => &[b"X-Forwarded-Host"],
        (16, b'c') => &[b"content-encoding"],
        (16, b'p') => &[b"proxy-connection"],
        (16, b'x') => &[b"x-forwarded-host"],
        (17, b'I') => &[b"If-Modified-Since"],
        (17, b'T') => &[b"Transfer-Encoding"],
        (17, b'X') => &[b"X-Forwarded-Proto"],
        (17, b'i') => &[b"if-modified-since"],
        (17, b't') => &[b"transfer-encoding"],
        (17, b'x') => &[b"x-forwarded-proto"],
        (25, b'S') => &[b"Strict-Transport-Security"],
        (25, b's') => &[b"strict-transport-security"],
        (27, b'A') => &[b"Access-Control-Allow-Origin"],
        (27, b'a') => &[b"access-control-allow-origin"],
        _ => &[],
    }
}

/// `name` as a static byte string when it is spelt, case and all, as one
/// of the common field names. A head built from the wire then holds most
/// names without a reference into the read buffer, so parsing, copying
/// and dropping them counts no references (each count is an atomic
/// operation, and a proxied request made dozens).
pub(crate) fn static_spelling(name: &[u8]) -> Option<&'static [u8]> {
    let first = *name.first()?;
    usual_spellings(name.len(), first)
        .iter()
        .find(|usual| usual.len() == name.len() && equal(name, usual))
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usual_spellings_are_exact_and_valid_names() {
        let mut count = 0;
        for len in 0..64 {
            for first in 0..=255 {
                for usual in usual_spellings(len, first) {
                    assert_eq!((usual.len(), usual[0]), (len, first));
                    assert!(http::HeaderName::from_bytes(usual).is_ok());
                    assert_eq!(static_spelling(usual), Some(*usual));
                    // Any other byte anywhere makes another name.
                    for at in 0..len {
                        let mut other = usual.to_vec();
                        other[at] ^= 0x01;
                        assert_ne!(static_spelling(&other), Some(*usual));
                    }
                    count += 1;
                }
            }
        }
        assert!(count > 50);
        // Another case is kept as written, so not replaced.
        assert_eq!(static_spelling(b"CONTENT-LENGTH"), None);
        assert_eq!(static_spelling(b"X-Custom"), None);
        assert_eq!(static_spelling(b""), None);
    }

    #[test]
    fn every_tracked_name_has_its_own_bit_in_any_case() {
        let names = [
            ("te", TE),
            ("Host", HOST),
            ("EXPECT", EXPECT),
            ("upgrade", UPGRADE),
            ("Connection", CONNECTION),
            ("Keep-Alive", KEEP_ALIVE),
            ("content-length", CONTENT_LENGTH),
            ("Proxy-Connection", PROXY_CONNECTION),
            ("Transfer-Encoding", TRANSFER_ENCODING),
        ];
        let mut all = 0;
        for (name, bit) in names {
            assert_eq!(known_bit(name.as_bytes()), bit, "{name}");
            assert_eq!(bit.count_ones(), 1);
            assert_eq!(all & bit, 0, "{name} shares a bit");
            all |= bit;
        }
        for other in [
            "",
            "t",
            "tex",
            "hosts",
            "x-host",
            "connectionx",
            "keep_alive",
            "content-lengt",
        ] {
            assert_eq!(known_bit(other.as_bytes()), 0, "{other}");
        }
        // Any other byte in any position, short or long name, makes it
        // another name: a CR is not taken for a `-`.
        for (name, bit) in names {
            for at in 0..name.len() {
                for b in 0..=255_u8 {
                    let mut other = name.as_bytes().to_vec();
                    if other[at].eq_ignore_ascii_case(&b) {
                        continue;
                    }
                    other[at] = b;
                    assert_ne!(
                        known_bit(&other),
                        bit,
                        "{}",
                        String::from_utf8_lossy(&other)
                    );
                }
            }
        }
    }
}
