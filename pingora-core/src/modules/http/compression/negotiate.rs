//! Content negotiation from `Accept-Encoding` (RFC 9110 §12.5.3).
//!
//! Each listed coding carries a weight (`q`, 0 to 1 in thousandths); `q=0`
//! refuses it, `*` stands for every coding not listed, and `identity` is
//! the unencoded body. The server picks the acceptable coding of highest
//! weight; on a tie we prefer brotli, then zstd, then gzip (smallest
//! output first for text at the levels proxies use).

use super::Algorithm;

/// A weight in thousandths: 1000 is `q=1`.
type Weight = u16;

/// What one `Accept-Encoding` field value allows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Accepted {
    /// The weight of each algorithm's own entry, in [`Algorithm::ALL`]
    /// order; `None` when it is not listed.
    listed: [Option<Weight>; 3],
    /// The weight of `*`, when listed.
    any: Option<Weight>,
    /// The weight of `identity`, when listed.
    identity: Option<Weight>,
}

impl Accepted {
    /// Parse the field values of every `Accept-Encoding` field of a
    /// request. Unknown codings (`deflate`, `compress`) and malformed
    /// entries are skipped.
    pub(crate) fn parse<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let mut out = Self::default();
        for value in values {
            for entry in value.split(|&b| b == b',') {
                let Some((coding, weight)) = parse_entry(entry) else {
                    continue;
                };
                if coding.eq_ignore_ascii_case(b"*") {
                    out.any = Some(weight);
                } else if coding.eq_ignore_ascii_case(b"identity") {
                    out.identity = Some(weight);
                } else if let Some(alg) = Algorithm::from_token(coding) {
                    out.listed[alg.index()] = Some(weight);
                }
            }
        }
        out
    }

    /// The weight the client gives `alg`: its own entry, else `*`'s, else
    /// 0 (not acceptable).
    fn weight(&self, alg: Algorithm) -> Weight {
        self.listed[alg.index()].or(self.any).unwrap_or(0)
    }

    /// The coding to answer with among those `enabled` allows, or `None`
    /// to leave the body unencoded: no enabled coding is acceptable, or
    /// the client listed `identity` with a higher weight than the best.
    pub(crate) fn choose(&self, enabled: impl Fn(Algorithm) -> bool) -> Option<Algorithm> {
        let mut best: Option<(Algorithm, Weight)> = None;
        // `ALL` is in tie-break preference order: a later algorithm must
        // weigh strictly more to win.
        for alg in Algorithm::ALL {
            let weight = self.weight(alg);
            if weight == 0 || !enabled(alg) {
                continue;
            }
            if best.is_none_or(|(_, w)| weight > w) {
                best = Some((alg, weight));
            }
        }
        let (alg, weight) = best?;
        match self.identity {
            Some(identity) if identity > weight => None,
            _ => Some(alg),
        }
    }
}

/// One `coding [; q=weight]` entry, trimmed; `None` when it is empty or its
/// weight is malformed (such an entry is ignored, as if not sent).
fn parse_entry(entry: &[u8]) -> Option<(&[u8], Weight)> {
    let mut parts = entry.split(|&b| b == b';');
    let coding = parts.next().map(<[u8]>::trim_ascii)?;
    if coding.is_empty() {
        return None;
    }
    let mut weight = 1000;
    for param in parts {
        let param = param.trim_ascii();
        let Some((name, value)) = param.split_at_checked(2) else {
            continue;
        };
        if name.eq_ignore_ascii_case(b"q=") {
            weight = parse_qvalue(value.trim_ascii())?;
        }
    }
    Some((coding, weight))
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`
/// (RFC 9110 §12.4.2), in thousandths.
fn parse_qvalue(value: &[u8]) -> Option<Weight> {
    let (int, frac) = match value.iter().position(|&b| b == b'.') {
        Some(dot) => (&value[..dot], &value[dot + 1..]),
        None => (value, &b""[..]),
    };
    if frac.len() > 3 || !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut thousandths: Weight = 0;
    for (i, digit) in frac.iter().enumerate() {
        thousandths += Weight::from(digit - b'0') * [100, 10, 1][i];
    }
    match int {
        b"0" => Some(thousandths),
        b"1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn choose(header: &str) -> Option<Algorithm> {
        Accepted::parse([header.as_bytes()]).choose(|_| true)
    }

    #[test]
    fn browsers_get_brotli() {
        assert_eq!(choose("gzip, deflate, br, zstd"), Some(Algorithm::Brotli));
        assert_eq!(choose("gzip, deflate, br"), Some(Algorithm::Brotli));
        assert_eq!(choose("gzip, zstd"), Some(Algorithm::Zstd));
        assert_eq!(choose("gzip"), Some(Algorithm::Gzip));
        assert_eq!(choose("x-gzip"), Some(Algorithm::Gzip));
        assert_eq!(choose("GZIP;Q=1.0"), Some(Algorithm::Gzip));
    }

    #[test]
    fn weights_decide_before_preference() {
        assert_eq!(choose("br;q=0, gzip"), Some(Algorithm::Gzip));
        assert_eq!(choose("br;q=0.5, gzip;q=0.8"), Some(Algorithm::Gzip));
        assert_eq!(choose("br;q=0.8, zstd;q=0.8, gzip"), Some(Algorithm::Gzip));
        assert_eq!(choose("gzip;q=0.001"), Some(Algorithm::Gzip));
        assert_eq!(choose("gzip;q=0, br;q=0, zstd;q=0"), None);
    }

    #[test]
    fn star_and_identity() {
        assert_eq!(choose("*"), Some(Algorithm::Brotli));
        assert_eq!(choose("*;q=0.5, br;q=0"), Some(Algorithm::Zstd));
        assert_eq!(choose("*;q=0"), None);
        assert_eq!(choose("identity"), None);
        assert_eq!(choose(""), None);
        assert_eq!(choose("deflate"), None);
        assert_eq!(choose("gzip;q=0.5, identity"), None);
        assert_eq!(choose("gzip, identity;q=0.5"), Some(Algorithm::Gzip));
        assert_eq!(choose("gzip, identity;q=0"), Some(Algorithm::Gzip));
    }

    #[test]
    fn malformed_entries_are_ignored() {
        assert_eq!(choose("br;q=2, gzip"), Some(Algorithm::Gzip));
        assert_eq!(choose("br;q=0.0001, gzip"), Some(Algorithm::Gzip));
        assert_eq!(choose("br;q=abc, gzip;q=1.000"), Some(Algorithm::Gzip));
        assert_eq!(choose(" , ;q=1, gzip ; q=0.3 "), Some(Algorithm::Gzip));
        assert_eq!(choose("br;level=3"), Some(Algorithm::Brotli));
    }

    #[test]
    fn only_enabled_algorithms_are_chosen() {
        let accepted = Accepted::parse([&b"br, gzip"[..]]);
        assert_eq!(
            accepted.choose(|a| a != Algorithm::Brotli),
            Some(Algorithm::Gzip)
        );
        assert_eq!(accepted.choose(|_| false), None);
    }

    #[test]
    fn several_fields_add_up() {
        let accepted = Accepted::parse([&b"gzip;q=0.5"[..], b"zstd"]);
        assert_eq!(accepted.choose(|_| true), Some(Algorithm::Zstd));
    }

    #[test]
    fn qvalues() {
        assert_eq!(parse_qvalue(b"1"), Some(1000));
        assert_eq!(parse_qvalue(b"1."), Some(1000));
        assert_eq!(parse_qvalue(b"0.25"), Some(250));
        assert_eq!(parse_qvalue(b"0.125"), Some(125));
        assert_eq!(parse_qvalue(b"1.5"), None);
        assert_eq!(parse_qvalue(b"0.1234"), None);
        assert_eq!(parse_qvalue(b""), None);
        assert_eq!(parse_qvalue(b"-0"), None);
    }
}
