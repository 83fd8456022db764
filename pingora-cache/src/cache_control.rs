//! The `Cache-Control` field (RFC 9111 §5.2), parsed once into typed
//! directives.
//!
//! The parser never fails: a field it cannot make sense of yields the
//! conservative reading the RFC asks for (an invalid or conflicting
//! `max-age` makes the response stale, an unknown directive is ignored,
//! a number too big to hold becomes 2^31, §1.2.2).

use pingora_core::header::{RequestHeader, ResponseHeader};

/// The value RFC 9111 §1.2.2 asks for when a delta-seconds overflows.
pub const DELTA_SECONDS_MAX: u32 = 1 << 31;

/// A list of field names, from `no-cache="a, b"` or `private="a"`.
pub type FieldNames = Vec<Box<str>>;

/// Whether `Cache-Control` alone decides that a response may be stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cacheable {
    /// `public` (and no `no-store`/`private`): storable even when the
    /// status code is not cacheable by default.
    Yes,
    /// `no-store`, or unqualified `private`: a shared cache must not store it.
    No,
    /// Nothing decisive: the status code and freshness decide.
    Default,
}

/// The parsed `Cache-Control` of a request or a response.
///
/// Directive names are case-insensitive; arguments may be tokens or
/// quoted strings (RFC 9111 §5.2: recipients accept both forms).
///
/// # Examples
///
/// ```
/// use pingora_cache::CacheControl;
/// use pingora_core::header::ResponseHeader;
///
/// let mut resp = ResponseHeader::build(200, None).unwrap();
/// resp.append_header("Cache-Control", "public, max-age=60").unwrap();
/// resp.append_header("cache-control", "s-maxage=\"300\", private=\"Set-Cookie\"").unwrap();
/// let cc = CacheControl::from_resp_headers(&resp).unwrap();
/// assert_eq!(cc.max_age(), Some(60));
/// assert_eq!(cc.fresh_sec(), Some(300)); // s-maxage wins in a shared cache
/// assert_eq!(cc.private_fields(), Some(&["set-cookie".into()][..]));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheControl {
    max_age: Option<u32>,
    s_maxage: Option<u32>,
    stale_while_revalidate: Option<u32>,
    stale_if_error: Option<u32>,
    min_fresh: Option<u32>,
    max_stale: Option<Option<u32>>,
    no_store: bool,
    no_cache: Option<FieldNames>,
    private: Option<FieldNames>,
    must_revalidate: bool,
    proxy_revalidate: bool,
    public: bool,
    immutable: bool,
    no_transform: bool,
    only_if_cached: bool,
    must_understand: bool,
}

impl CacheControl {
    /// Parse every `Cache-Control` field of a response; `None` when it has
    /// none.
    pub fn from_resp_headers(resp: &ResponseHeader) -> Option<Self> {
        Self::parse(
            resp.get_header_values("cache-control")
                .map(|v| v.as_bytes()),
        )
    }

    /// Parse every `Cache-Control` field of a request; `None` when it has
    /// none.
    pub fn from_req_headers(req: &RequestHeader) -> Option<Self> {
        Self::parse(req.get_header_values("cache-control").map(|v| v.as_bytes()))
    }

    /// Parse field values (each one line of `Cache-Control`, in order);
    /// `None` when there are none. Lines combine as one list (RFC 9110 §5.3).
    ///
    /// # Examples
    ///
    /// ```
    /// # use pingora_cache::CacheControl;
    /// let cc = CacheControl::parse([&b"max-age=5, max-age=7"[..]]).unwrap();
    /// assert_eq!(cc.max_age(), Some(0)); // conflicting duplicates: stale
    /// ```
    pub fn parse<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> Option<Self> {
        let mut cc = None;
        for value in values {
            let cc = cc.get_or_insert_with(Self::default);
            for (name, arg) in Directives::new(value) {
                cc.apply(&name, arg.as_deref());
            }
        }
        cc
    }

    fn apply(&mut self, name: &str, arg: Option<&str>) {
        match name {
            "max-age" => set_delta(&mut self.max_age, arg),
            "s-maxage" => set_delta(&mut self.s_maxage, arg),
            "stale-while-revalidate" => set_delta(&mut self.stale_while_revalidate, arg),
            "stale-if-error" => set_delta(&mut self.stale_if_error, arg),
            "min-fresh" => set_delta(&mut self.min_fresh, arg),
            "max-stale" => {
                // No argument: any staleness is acceptable (§5.2.1.2).
                self.max_stale = Some(arg.map(|a| parse_delta(a).unwrap_or(0)));
            }
            "no-store" => self.no_store = true,
            "no-cache" => merge_fields(&mut self.no_cache, arg),
            "private" => merge_fields(&mut self.private, arg),
            "must-revalidate" => self.must_revalidate = true,
            "proxy-revalidate" => self.proxy_revalidate = true,
            "public" => self.public = true,
            "immutable" => self.immutable = true,
            "no-transform" => self.no_transform = true,
            "only-if-cached" => self.only_if_cached = true,
            "must-understand" => self.must_understand = true,
            // Unknown extensions are ignored (§5.2.3).
            _ => {}
        }
    }

    /// `max-age`, in seconds.
    pub const fn max_age(&self) -> Option<u32> {
        self.max_age
    }

    /// `s-maxage`, in seconds.
    pub const fn s_maxage(&self) -> Option<u32> {
        self.s_maxage
    }

    /// The explicit freshness lifetime for a shared cache: `s-maxage`, else
    /// `max-age` (RFC 9111 §4.2.1).
    pub fn fresh_sec(&self) -> Option<u32> {
        self.s_maxage.or(self.max_age)
    }

    /// `stale-while-revalidate` (RFC 5861 §3), in seconds.
    pub const fn serve_stale_while_revalidate_sec(&self) -> Option<u32> {
        self.stale_while_revalidate
    }

    /// `stale-if-error` (RFC 5861 §4), in seconds.
    pub const fn serve_stale_if_error_sec(&self) -> Option<u32> {
        self.stale_if_error
    }

    /// `min-fresh` (a request directive), in seconds.
    pub const fn min_fresh(&self) -> Option<u32> {
        self.min_fresh
    }

    /// `max-stale` (a request directive): `Some(None)` without an argument
    /// (any staleness), `Some(Some(s))` with one.
    pub const fn max_stale(&self) -> Option<Option<u32>> {
        self.max_stale
    }

    /// `no-store`.
    pub const fn no_store(&self) -> bool {
        self.no_store
    }

    /// `no-cache`, qualified or not.
    pub const fn no_cache(&self) -> bool {
        self.no_cache.is_some()
    }

    /// The field names of a qualified `no-cache="…"` (lowercase); `None`
    /// without `no-cache`, empty when unqualified.
    pub fn no_cache_fields(&self) -> Option<&[Box<str>]> {
        self.no_cache.as_deref()
    }

    /// `private`, qualified or not.
    pub const fn private(&self) -> bool {
        self.private.is_some()
    }

    /// The field names of a qualified `private="…"` (lowercase); `None`
    /// without `private`, empty when unqualified.
    pub fn private_fields(&self) -> Option<&[Box<str>]> {
        self.private.as_deref()
    }

    /// `must-revalidate`.
    pub const fn must_revalidate(&self) -> bool {
        self.must_revalidate
    }

    /// `proxy-revalidate`.
    pub const fn proxy_revalidate(&self) -> bool {
        self.proxy_revalidate
    }

    /// `public`.
    pub const fn public(&self) -> bool {
        self.public
    }

    /// `immutable` (RFC 8246).
    pub const fn immutable(&self) -> bool {
        self.immutable
    }

    /// `no-transform`.
    pub const fn no_transform(&self) -> bool {
        self.no_transform
    }

    /// `only-if-cached` (a request directive).
    pub const fn only_if_cached(&self) -> bool {
        self.only_if_cached
    }

    /// `must-understand`.
    pub const fn must_understand(&self) -> bool {
        self.must_understand
    }

    /// Whether a shared cache may store the response as far as this field
    /// says: `no-store` and unqualified `private` forbid it; `public` allows
    /// it even for status codes not cacheable by default.
    pub fn is_cacheable(&self) -> Cacheable {
        let private_all = self.private.as_ref().is_some_and(Vec::is_empty);
        if self.no_store || private_all {
            Cacheable::No
        } else if self.public {
            Cacheable::Yes
        } else {
            Cacheable::Default
        }
    }

    /// Whether a response to a request with `Authorization` may be served
    /// from a shared cache (RFC 9111 §3.5: `must-revalidate`, `public` or
    /// `s-maxage`).
    pub const fn allow_caching_authorized_req(&self) -> bool {
        self.must_revalidate || self.public || self.s_maxage.is_some()
    }

    /// Whether a shared cache must not serve the response stale on its own
    /// account: `must-revalidate`, `proxy-revalidate`, or `no-cache`
    /// (RFC 9111 §4.2.4, §5.2.2.2, §5.2.2.8). Explicit `stale-*` windows
    /// are also off then.
    pub fn forbids_stale(&self) -> bool {
        self.must_revalidate || self.proxy_revalidate || self.no_cache.is_some()
    }
}

/// §1.2.2 delta-seconds: 1*DIGIT, saturating at 2^31; `None` when invalid.
fn parse_delta(arg: &str) -> Option<u32> {
    if arg.is_empty() || !arg.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let v = arg
        .bytes()
        .try_fold(0u64, |acc, d| {
            let next = acc * 10 + u64::from(d - b'0');
            (next <= u64::from(DELTA_SECONDS_MAX)).then_some(next)
        })
        .unwrap_or(u64::from(DELTA_SECONDS_MAX));
    u32::try_from(v).ok()
}

/// Set a delta-seconds directive. A missing or invalid argument, or a
/// duplicate that disagrees with the first, makes it 0: §4.2.1 lets a cache
/// treat conflicting or invalid freshness information as stale.
fn set_delta(slot: &mut Option<u32>, arg: Option<&str>) {
    let v = arg.and_then(parse_delta).unwrap_or(0);
    *slot = match *slot {
        Some(old) if old != v => Some(0),
        _ => Some(v),
    };
}

/// Add the field names of `no-cache`/`private`. An unqualified directive
/// anywhere wins over qualified ones: it covers the whole response.
fn merge_fields(slot: &mut Option<FieldNames>, arg: Option<&str>) {
    let names: FieldNames = arg
        .map(|a| {
            a.split(',')
                .map(|n| n.trim().to_ascii_lowercase())
                .filter(|n| !n.is_empty())
                .map(String::into_boxed_str)
                .collect()
        })
        .unwrap_or_default();
    match slot {
        Some(existing) if existing.is_empty() => {}
        Some(_) if names.is_empty() => *slot = Some(Vec::new()),
        Some(existing) => existing.extend(names),
        None => *slot = Some(names),
    }
}

/// An iterator over the `name[=arg]` directives of one field value, names
/// lowercased, quoted arguments unescaped. Junk between directives is
/// skipped up to the next comma outside quotes.
struct Directives<'a> {
    rest: &'a [u8],
}

impl<'a> Directives<'a> {
    const fn new(value: &'a [u8]) -> Self {
        Self { rest: value }
    }

    fn skip_ows(&mut self) {
        while let [b' ' | b'\t', rest @ ..] = self.rest {
            self.rest = rest;
        }
    }

    /// Skip to just after the next comma that is not inside quotes.
    fn skip_to_comma(&mut self) {
        let mut quoted = false;
        let mut i = 0;
        while i < self.rest.len() {
            match self.rest[i] {
                b'"' => quoted = !quoted,
                b'\\' if quoted => i += 1,
                b',' if !quoted => {
                    self.rest = &self.rest[i + 1..];
                    return;
                }
                _ => {}
            }
            i += 1;
        }
        self.rest = &[];
    }

    fn token(&mut self) -> &'a [u8] {
        let end = self
            .rest
            .iter()
            .position(|&b| !is_tchar(b))
            .unwrap_or(self.rest.len());
        let (tok, rest) = self.rest.split_at(end);
        self.rest = rest;
        tok
    }

    /// A quoted-string after its opening quote; an unterminated one runs to
    /// the end of the value.
    fn quoted(&mut self) -> String {
        let mut out = Vec::new();
        let mut i = 0;
        while i < self.rest.len() {
            match self.rest[i] {
                b'"' => {
                    i += 1;
                    break;
                }
                b'\\' if i + 1 < self.rest.len() => {
                    out.push(self.rest[i + 1]);
                    i += 2;
                    continue;
                }
                b => out.push(b),
            }
            i += 1;
        }
        self.rest = &self.rest[i..];
        String::from_utf8_lossy(&out).into_owned()
    }
}

impl Iterator for Directives<'_> {
    type Item = (String, Option<String>);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            self.skip_ows();
            if self.rest.is_empty() {
                return None;
            }
            let name = self.token();
            if name.is_empty() {
                self.skip_to_comma();
                continue;
            }
            let name = String::from_utf8_lossy(name).to_ascii_lowercase();
            self.skip_ows();
            let arg = if let [b'=', rest @ ..] = self.rest {
                self.rest = rest;
                self.skip_ows();
                if let [b'"', rest @ ..] = self.rest {
                    self.rest = rest;
                    Some(self.quoted())
                } else {
                    Some(String::from_utf8_lossy(self.token()).into_owned())
                }
            } else {
                None
            };
            self.skip_to_comma();
            return Some((name, arg));
        }
    }
}

/// RFC 9110 §5.6.2 tchar.
const fn is_tchar(b: u8) -> bool {
    matches!(b,
        b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_'
        | b'`' | b'|' | b'~' | b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cc(s: &str) -> CacheControl {
        CacheControl::parse([s.as_bytes()]).unwrap()
    }

    #[test]
    fn table() {
        // (input, max-age, s-maxage, no-store, public, private fields)
        let rows: &[(&str, Option<u32>, Option<u32>, bool)] = &[
            ("max-age=60", Some(60), None, false),
            ("MAX-AGE=60", Some(60), None, false),
            ("max-age = 60", Some(60), None, false),
            ("max-age=\"60\"", Some(60), None, false),
            ("max-age=60, max-age=60", Some(60), None, false),
            ("max-age=60, max-age=30", Some(0), None, false),
            ("max-age=abc", Some(0), None, false),
            ("max-age=-1", Some(0), None, false),
            ("max-age", Some(0), None, false),
            (
                "max-age=99999999999999999999",
                Some(DELTA_SECONDS_MAX),
                None,
                false,
            ),
            ("s-maxage=10, max-age=5", Some(5), Some(10), false),
            ("no-store", None, None, true),
            ("foo=\"a,max-age=3\", no-store", None, None, true),
            ("%%%, max-age=2", Some(2), None, false),
            ("unknown, x=y, max-age=2 junk", Some(2), None, false),
            ("", None, None, false),
            (",,, ,", None, None, false),
            ("max-age=\"5", Some(5), None, false),
        ];
        for &(input, max_age, s_maxage, no_store) in rows {
            let c = cc(input);
            assert_eq!(c.max_age(), max_age, "{input}");
            assert_eq!(c.s_maxage(), s_maxage, "{input}");
            assert_eq!(c.no_store(), no_store, "{input}");
        }
    }

    #[test]
    fn field_lists() {
        let c = cc("private=\"Set-Cookie, X-User\", no-cache=Authorization");
        assert_eq!(
            c.private_fields(),
            Some(&["set-cookie".into(), "x-user".into()][..])
        );
        assert_eq!(c.no_cache_fields(), Some(&["authorization".into()][..]));
        assert_eq!(c.is_cacheable(), Cacheable::Default);
        // An unqualified directive covers the whole response.
        let c = cc("private=\"a\", private");
        assert_eq!(c.private_fields(), Some(&[][..]));
        assert_eq!(c.is_cacheable(), Cacheable::No);
        let c = cc("private, private=\"a\"");
        assert_eq!(c.private_fields(), Some(&[][..]));
    }

    #[test]
    fn flags_and_decisions() {
        let c = cc("public, must-revalidate, proxy-revalidate, immutable, no-transform");
        assert!(c.public() && c.must_revalidate() && c.proxy_revalidate());
        assert!(c.immutable() && c.no_transform());
        assert_eq!(c.is_cacheable(), Cacheable::Yes);
        assert!(c.allow_caching_authorized_req());
        assert!(c.forbids_stale());
        let c = cc("public, no-store");
        assert_eq!(c.is_cacheable(), Cacheable::No);
        let c = cc("max-age=1, stale-while-revalidate=30, stale-if-error=600");
        assert_eq!(c.serve_stale_while_revalidate_sec(), Some(30));
        assert_eq!(c.serve_stale_if_error_sec(), Some(600));
        assert!(!c.allow_caching_authorized_req());
        assert!(!c.forbids_stale());
        let c = cc("max-stale, min-fresh=3, only-if-cached");
        assert_eq!(c.max_stale(), Some(None));
        assert_eq!(c.min_fresh(), Some(3));
        assert!(c.only_if_cached());
    }

    #[test]
    fn several_lines_combine() {
        let c = CacheControl::parse([&b"public"[..], b"max-age=3"]).unwrap();
        assert!(c.public());
        assert_eq!(c.max_age(), Some(3));
        assert!(CacheControl::parse(std::iter::empty()).is_none());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = CacheControl::parse([&bytes[..]]);
        }

        #[test]
        fn max_age_round_trips(n in any::<u64>(), junk in "x-[a-z]{0,10}") {
            let c = cc(&format!("{junk}, max-age={n}, {junk}=\"x,y\""));
            let want = u32::try_from(n.min(u64::from(DELTA_SECONDS_MAX))).unwrap();
            prop_assert_eq!(c.max_age(), Some(want));
        }
    }
}
