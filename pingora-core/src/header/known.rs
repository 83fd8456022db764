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

/// Whether `name` is `lower` in any case; the lengths are equal. `lower`
/// holds only lowercase letters and `-`, so setting bit 5 of every byte of
/// `name` lowercases its letters and leaves `-` as it is. The only other
/// bytes it maps onto `lower`'s are control characters, which no field
/// name holds: a name that is not a valid field name at most gets a bit
/// no field has, and a lookup of it finds nothing, as it should.
#[inline(always)]
fn folds_to(name: &[u8], lower: &[u8]) -> bool {
    let n = lower.len();
    if n < 8 {
        return name
            .iter()
            .zip(lower)
            .fold(0, |d, (x, y)| d | ((x | 0x20) ^ y))
            == 0;
    }
    const CASE: u64 = 0x2020_2020_2020_2020;
    // Whole words, then the last eight bytes (overlapping the previous).
    let mut diff = 0;
    let mut at = 0;
    while at + 8 <= n {
        diff |= (word(name, at) | CASE) ^ word(lower, at);
        at += 8;
    }
    diff |= (word(name, n - 8) | CASE) ^ word(lower, n - 8);
    diff == 0
}

/// The bit of `name` (any case), or 0 for a name not tracked here: a
/// length match and a comparison or two of a few words.
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

#[cfg(test)]
mod tests {
    use super::*;

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
        // Any other printable byte in any position, short or long name,
        // makes it another name.
        for (name, bit) in names {
            for at in 0..name.len() {
                for b in 0x21..0x7f_u8 {
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
