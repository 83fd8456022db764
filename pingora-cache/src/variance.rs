//! `Vary` (RFC 9111 §4.1): which request fields select among the stored
//! variants of one cache key.
//!
//! A response with `Vary: Accept-Encoding` is stored under its key plus a
//! *variance*: a hash of the request's (normalised) `Accept-Encoding`.
//! A later request is served that variant only when its own fields hash
//! the same. `Vary: *` never matches, so such responses are not stored.

use crate::key::HashBinary;
use blake2::digest::consts::U16;
use blake2::{Blake2b, Digest};
use pingora_core::header::{RequestHeader, ResponseHeader};
use std::collections::BTreeMap;

/// Whether a response's `Vary` holds `*`, which never matches a later
/// request (RFC 9111 §4.1), so the response is never stored.
pub fn has_vary_star(resp: &ResponseHeader) -> bool {
    resp.get_header_values("vary")
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .any(|name| name.trim_ascii() == b"*")
}

/// The field names a response varies on: lowercased, sorted, without
/// duplicates; empty when it has no `Vary`.
pub fn vary_fields(resp: &ResponseHeader) -> Vec<String> {
    let mut names: Vec<String> = resp
        .get_header_values("vary")
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(|n| String::from_utf8_lossy(n.trim_ascii()).to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// Fields whose values are case-insensitive, so their case is dropped
/// when comparing (RFC 9111 §4.1 allows such normalisation).
const CASE_INSENSITIVE: &[&str] = &[
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
];

/// The normalised value of request field `name`: every line joined as one
/// list, each member trimmed, empty members dropped; lowercased for the
/// fields whose values are case-insensitive (`Accept`, `Accept-Charset`,
/// `Accept-Encoding`, `Accept-Language`). `None` when absent, which
/// differs from present-but-empty.
pub fn normalized_value(req: &RequestHeader, name: &str) -> Option<Vec<u8>> {
    let mut values = req.get_header_values(name).peekable();
    values.peek()?;
    let lower = CASE_INSENSITIVE
        .iter()
        .any(|n| n.eq_ignore_ascii_case(name));
    let mut out = Vec::new();
    for member in values
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|m| !m.is_empty())
    {
        if !out.is_empty() {
            out.push(b',');
        }
        // Runs of spaces inside a member are one space.
        let mut last_space = false;
        for &b in member {
            let space = b == b' ' || b == b'\t';
            if !(space && last_space) {
                out.push(if space {
                    b' '
                } else if lower {
                    b.to_ascii_lowercase()
                } else {
                    b
                });
            }
            last_space = space;
        }
    }
    Some(out)
}

/// Builds a variance hash from named values; the order values are added
/// in does not matter.
///
/// # Examples
///
/// ```
/// use pingora_cache::variance::VarianceBuilder;
///
/// let mut a = VarianceBuilder::new();
/// a.add_value("accept-encoding", b"gzip");
/// a.add_value("accept-language", b"en");
/// let mut b = VarianceBuilder::new();
/// b.add_value("accept-language", b"en");
/// b.add_value("accept-encoding", b"gzip");
/// assert_eq!(a.finalize(), b.finalize());
/// assert_eq!(VarianceBuilder::new().finalize(), None);
/// ```
#[derive(Debug, Default, Clone)]
pub struct VarianceBuilder {
    values: BTreeMap<String, Option<Vec<u8>>>,
}

impl VarianceBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add `name` (case-insensitive) with `value`.
    pub fn add_value(&mut self, name: &str, value: &[u8]) {
        self.values
            .insert(name.to_ascii_lowercase(), Some(value.to_vec()));
    }

    /// Add `name` as absent from the request (distinct from empty).
    pub fn add_absent(&mut self, name: &str) {
        self.values.insert(name.to_ascii_lowercase(), None);
    }

    /// The variance hash; `None` when nothing was added (no variance).
    pub fn finalize(self) -> Option<HashBinary> {
        if self.values.is_empty() {
            return None;
        }
        let mut h = Blake2b::<U16>::new();
        for (name, value) in &self.values {
            h.update((name.len() as u64).to_le_bytes());
            h.update(name.as_bytes());
            match value {
                None => h.update([0]),
                Some(v) => {
                    h.update([1]);
                    h.update((v.len() as u64).to_le_bytes());
                    h.update(v);
                }
            }
        }
        Some(h.finalize().into())
    }
}

/// The variance of `req` against a stored (or fresh) response `resp`:
/// a hash of the request's normalised values of the fields `resp` varies
/// on; `None` when `resp` has no `Vary`.
///
/// Two requests get the same variance exactly when a cache may serve the
/// one's response to the other (RFC 9111 §4.1). Call it with the
/// response's header (not the request alone): the response names the
/// fields.
///
/// # Examples
///
/// ```
/// use pingora_cache::variance::variance_for;
/// use pingora_core::header::{RequestHeader, ResponseHeader};
///
/// let mut resp = ResponseHeader::build(200, None).unwrap();
/// resp.insert_header("Vary", "Accept-Encoding").unwrap();
/// let mut gzip = RequestHeader::build("GET", b"/", None).unwrap();
/// gzip.insert_header("Accept-Encoding", "GZIP,  br").unwrap();
/// let mut gzip2 = RequestHeader::build("GET", b"/", None).unwrap();
/// gzip2.insert_header("accept-encoding", "gzip, br").unwrap();
/// let plain = RequestHeader::build("GET", b"/", None).unwrap();
/// assert_eq!(variance_for(&resp, &gzip), variance_for(&resp, &gzip2));
/// assert_ne!(variance_for(&resp, &gzip), variance_for(&resp, &plain));
/// ```
pub fn variance_for(resp: &ResponseHeader, req: &RequestHeader) -> Option<HashBinary> {
    let fields = vary_fields(resp);
    let mut builder = VarianceBuilder::new();
    for name in &fields {
        match normalized_value(req, name) {
            Some(v) => builder.add_value(name, &v),
            None => builder.add_absent(name),
        }
    }
    builder.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(vary: &[&str]) -> ResponseHeader {
        let mut r = ResponseHeader::build(200, None).unwrap();
        for v in vary {
            r.append_header("Vary", *v).unwrap();
        }
        r
    }

    fn req(fields: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("GET", b"/", None).unwrap();
        for (n, v) in fields {
            r.append_header(n, *v).unwrap();
        }
        r
    }

    #[test]
    fn fields_and_star() {
        assert_eq!(
            vary_fields(&resp(&["Accept-Encoding, accept-encoding", "X-A"])),
            ["accept-encoding", "x-a"]
        );
        assert!(vary_fields(&resp(&[])).is_empty());
        assert!(has_vary_star(&resp(&["Accept", " * "])));
        assert!(!has_vary_star(&resp(&["Accept"])));
    }

    #[test]
    fn variance_rules() {
        let r = resp(&["Accept-Encoding", "X-Dev"]);
        let v = |f: &[(&str, &str)]| variance_for(&r, &req(f));
        // Several lines equal one joined line.
        assert_eq!(
            v(&[("Accept-Encoding", "gzip"), ("Accept-Encoding", "br")]),
            v(&[("Accept-Encoding", "gzip, br")])
        );
        // Case matters for fields not known to be case-insensitive.
        assert_ne!(v(&[("X-Dev", "A")]), v(&[("X-Dev", "a")]));
        // Absent differs from empty.
        assert_ne!(v(&[("X-Dev", "")]), v(&[]));
        // Fields the response does not name do not matter.
        assert_eq!(v(&[("Cookie", "1")]), v(&[]));
        // Order of members is kept (it can carry meaning).
        assert_ne!(
            v(&[("Accept-Encoding", "gzip, br")]),
            v(&[("Accept-Encoding", "br, gzip")])
        );
        assert_eq!(variance_for(&resp(&[]), &req(&[])), None);
    }
}
