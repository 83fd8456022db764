//! The header store shared by requests and responses: the fields in wire
//! order with their original name case, plus an `http::HeaderMap` built
//! only when somebody asks for it.
//!
//! A proxy mostly forwards fields it never looks up, and the few it does
//! look up (framing, `Connection`, `Host`) are found faster by scanning a
//! dozen fields than by hashing every name into a map. So parsing only
//! records the fields; [`HeaderList::map`] builds the map on first use and
//! later changes keep it in step.
//!
//! For the same reason a parsed field's value stays a range of the
//! received head until somebody asks for it as a `HeaderValue`: making one
//! shares the head's buffer, which costs two atomic reference-count
//! operations (one now, one when it is dropped) per field, and forwarding
//! and the framing checks only need the bytes.

use super::known::{KnownSet, known_bit, same_name};
use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use pingora_error::{Error, ErrorType, Result};
use std::sync::OnceLock;

/// One field as it appears on the wire.
#[derive(Debug, Clone)]
struct Field {
    /// The name as written: a valid field name (token), any case.
    name: Bytes,
    /// The name's [known bit](known_bit), 0 for other names: lookups of a
    /// well-known name compare this instead of the bytes.
    bit: KnownSet,
    /// For a parsed field, where its value lies in the list's head.
    span: Option<Span>,
    /// The value: set from the start for a field added by code, made from
    /// `span` on first use for a parsed one.
    value: OnceLock<HeaderValue>,
}

/// Bytes `start..start + len` of a head.
#[derive(Debug, Clone, Copy)]
struct Span {
    start: u32,
    len: u32,
}

impl Span {
    const fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.start as usize + self.len as usize
    }
}

impl Field {
    fn new(name: Bytes, span: Option<Span>, value: OnceLock<HeaderValue>) -> Self {
        Self {
            bit: known_bit(&name),
            name,
            span,
            value,
        }
    }

    fn owned(name: Bytes, value: HeaderValue) -> Self {
        Self::new(name, None, OnceLock::from(value))
    }
}

/// A name being looked up, with its known bit worked out once.
#[derive(Clone, Copy)]
struct Wanted<'a> {
    name: &'a [u8],
    bit: KnownSet,
}

impl<'a> Wanted<'a> {
    fn new(name: &'a str) -> Self {
        let name = name.as_bytes();
        Self {
            name,
            bit: known_bit(name),
        }
    }

    /// Whether `field` has this name, in any case.
    fn matches(self, field: &Field) -> bool {
        if self.bit != 0 {
            field.bit == self.bit
        } else {
            // A field with a bit has a well-known name, which this is not.
            field.bit == 0 && same_name(&field.name, self.name)
        }
    }
}

/// A field value the HTTP/1 parser accepted, as a `HeaderValue`, without
/// checking its bytes a second time (that pass over every value of every
/// head cost about 2 % of a proxied request's user time).
#[allow(unsafe_code)]
fn parsed_value(value: Bytes) -> HeaderValue {
    // SAFETY: not a memory-safety matter; the contract is that the bytes
    // are valid in a header value. httparse (default config, no obsolete
    // line folding) accepts in a value exactly HTAB, SP to `~` and 0x80 to
    // 0xFF, the very set `HeaderValue` allows. The test
    // `httparse_values_are_valid_header_values` parses every byte, so a
    // parser upgrade that widens the set fails it. Debug builds check
    // anyway (`from_maybe_shared_unchecked` panics on invalid bytes there).
    unsafe { HeaderValue::from_maybe_shared_unchecked(value) }
}

/// Header fields in wire order, plus an `http::HeaderMap` of the same
/// fields once [`map`](Self::map) was called.
///
/// Invariant: when the map is built, it holds exactly the values of
/// `fields`, and the values of one name appear in it in the same order as
/// in `fields`. Every mutation goes through this type to keep that true.
#[derive(Debug, Clone, Default)]
pub(crate) struct HeaderList {
    fields: Vec<Field>,
    /// The received head the parsed fields' spans point into (empty for a
    /// list built by code).
    head: Bytes,
    /// Exactly the [well-known](super::known) names among `fields`, so a
    /// lookup of an absent one (most framing and hop-by-hop checks) needs
    /// no scan.
    known: KnownSet,
    /// Boxed: most heads never build it, and every head moves a few
    /// times on its way through a proxy.
    map: OnceLock<Box<HeaderMap>>,
}

/// Check a user-supplied name; return the lookup name and the bytes to
/// write.
fn split_name(name: &str) -> Result<(HeaderName, Bytes)> {
    let parsed = HeaderName::from_bytes(name.as_bytes())
        .map_err(|e| Error::because(ErrorType::InvalidHTTPHeader, "invalid header name", e))?;
    Ok((parsed, Bytes::copy_from_slice(name.as_bytes())))
}

fn to_value<V>(value: V) -> Result<HeaderValue>
where
    V: TryInto<HeaderValue>,
    V::Error: std::error::Error + Send + Sync + 'static,
{
    value
        .try_into()
        .map_err(|e| Error::because(ErrorType::InvalidHTTPHeader, "invalid header value", e))
}

impl HeaderList {
    pub(crate) fn with_capacity(n: usize) -> Self {
        Self {
            fields: Vec::with_capacity(n),
            head: Bytes::new(),
            known: 0,
            map: OnceLock::new(),
        }
    }

    /// Set the received head that the spans given to
    /// [`push_span`](Self::push_span) point into.
    pub(crate) fn set_head(&mut self, head: Bytes) {
        self.head = head;
    }

    /// The bytes of a field's value.
    fn bytes_of<'a>(&'a self, field: &'a Field) -> &'a [u8] {
        match field.span {
            Some(span) => self.head.get(span.range()).unwrap_or_default(),
            None => field.value.get().map_or(&[], HeaderValue::as_bytes),
        }
    }

    /// A field's value as a `HeaderValue`, made and kept on first use.
    fn value_of<'a>(&'a self, field: &'a Field) -> &'a HeaderValue {
        field.value.get_or_init(|| self.make_value(field))
    }

    /// A new `HeaderValue` of a field's value (sharing the head's buffer).
    fn make_value(&self, field: &Field) -> HeaderValue {
        match field.value.get() {
            Some(value) => value.clone(),
            None => self.value_at(field.span),
        }
    }

    /// The value at `span` of the head, as a `HeaderValue`.
    fn value_at(&self, span: Option<Span>) -> HeaderValue {
        match span {
            Some(span) if span.range().end <= self.head.len() => {
                parsed_value(self.head.slice(span.range()))
            }
            // Every field has a span or a value, and spans are in range.
            _ => HeaderValue::from_static(""),
        }
    }

    /// The lookup map, built from the fields on first use.
    pub(crate) fn map(&self) -> &HeaderMap {
        self.map.get_or_init(|| {
            let mut map = HeaderMap::with_capacity(self.fields.len());
            for field in &self.fields {
                // Names are checked when they are added; a name that does
                // not parse cannot be here.
                if let Ok(name) = HeaderName::from_bytes(&field.name) {
                    map.append(name, self.make_value(field));
                }
            }
            Box::new(map)
        })
    }

    /// Whether `wanted` is a well-known name none of the fields has: then
    /// there is nothing to scan for.
    const fn surely_absent(&self, wanted: Wanted<'_>) -> bool {
        wanted.bit != 0 && self.known & wanted.bit == 0
    }

    /// Whether any of the well-known names in `set` is present.
    pub(crate) const fn has_any(&self, set: KnownSet) -> bool {
        self.known & set != 0
    }

    /// The first value of `name` (any case), found by scanning the fields.
    pub(crate) fn get(&self, name: &str) -> Option<&HeaderValue> {
        self.named(name).next().map(|f| self.value_of(f))
    }

    /// The fields named `name` (any case), in wire order.
    fn named<'s>(&'s self, name: &str) -> impl Iterator<Item = &'s Field> {
        let wanted = Wanted::new(name);
        let fields = if self.surely_absent(wanted) {
            &[][..]
        } else {
            &self.fields[..]
        };
        fields.iter().filter(move |f| wanted.matches(f))
    }

    /// Every value of `name` (any case), in wire order.
    pub(crate) fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a HeaderValue> {
        self.named(name).map(|f| self.value_of(f))
    }

    /// The bytes of every value of `name` (any case), in wire order: what
    /// the framing and hop-by-hop checks read, without making values.
    pub(crate) fn get_all_bytes<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> {
        self.named(name).map(|f| self.bytes_of(f))
    }

    /// Whether a field named `name` (any case) is present.
    pub(crate) fn contains(&self, name: &str) -> bool {
        self.named(name).next().is_some()
    }

    /// How many fields there are.
    pub(crate) const fn len(&self) -> usize {
        self.fields.len()
    }

    /// Add a field parsed from the wire. `name` must be a valid field name
    /// as received (the HTTP/1 parser checked it).
    pub(crate) fn push_parsed(&mut self, name: Bytes, value: HeaderValue) {
        if let Some(map) = self.map.get_mut()
            && let Ok(parsed) = HeaderName::from_bytes(&name)
        {
            map.append(parsed, value.clone());
        }
        let field = Field::owned(name, value);
        self.known |= field.bit;
        self.fields.push(field);
    }

    /// Add a field parsed from the wire whose value is `len` bytes at
    /// `start` of the head [`set_head`](Self::set_head) gives (before the
    /// value is first read). The HTTP/1 parser must have accepted the name
    /// and the value. Only for a list being built: the map must not exist
    /// yet.
    pub(crate) fn push_span(&mut self, name: Bytes, start: usize, len: usize) {
        // A head is far below 4 GiB (the head size limit); a span that does
        // not fit reads as empty rather than wrapping.
        let span = match (u32::try_from(start), u32::try_from(len)) {
            (Ok(start), Ok(len)) => Span { start, len },
            _ => Span { start: 0, len: 0 },
        };
        debug_assert!(
            self.map.get().is_none(),
            "push_span after the map was built"
        );
        let field = Field::new(name, Some(span), OnceLock::new());
        self.known |= field.bit;
        self.fields.push(field);
    }

    pub(crate) fn append<V>(&mut self, name: &str, value: V) -> Result<()>
    where
        V: TryInto<HeaderValue>,
        V::Error: std::error::Error + Send + Sync + 'static,
    {
        let (parsed, wire) = split_name(name)?;
        let value = to_value(value)?;
        if let Some(map) = self.map.get_mut() {
            map.append(parsed, value.clone());
        }
        let field = Field::owned(wire, value);
        self.known |= field.bit;
        self.fields.push(field);
        Ok(())
    }

    /// Replace every field of this name with one field. The new field takes
    /// the place of the first old one, so forwarding order is kept.
    pub(crate) fn insert<V>(&mut self, name: &str, value: V) -> Result<()>
    where
        V: TryInto<HeaderValue>,
        V::Error: std::error::Error + Send + Sync + 'static,
    {
        let (parsed, wire) = split_name(name)?;
        let value = to_value(value)?;
        if let Some(map) = self.map.get_mut() {
            map.insert(parsed, value.clone());
        }
        let field = Field::owned(wire, value);
        self.known |= field.bit;
        let wanted = Wanted::new(name);
        let Some(at) = self.fields.iter().position(|f| wanted.matches(f)) else {
            self.fields.push(field);
            return Ok(());
        };
        if self.fields[at + 1..].iter().any(|f| wanted.matches(f)) {
            let mut i = 0;
            self.fields.retain(|f| {
                let keep = i <= at || !wanted.matches(f);
                i += 1;
                keep
            });
        }
        self.fields[at] = field;
        Ok(())
    }

    /// Remove every field of this name, returning the first value.
    pub(crate) fn remove(&mut self, name: &str) -> Option<HeaderValue> {
        let wanted = Wanted::new(name);
        if self.surely_absent(wanted) {
            return None;
        }
        let at = self.fields.iter().position(|f| wanted.matches(f))?;
        // Every field of the name goes.
        self.known &= !wanted.bit;
        if let Some(map) = self.map.get_mut()
            && let Ok(parsed) = HeaderName::from_bytes(name.as_bytes())
        {
            map.remove(&parsed);
        }
        let first = self.fields.remove(at);
        if self.fields[at..].iter().any(|f| wanted.matches(f)) {
            self.fields.retain(|f| !wanted.matches(f));
        }
        let Field { span, value, .. } = first;
        Some(value.into_inner().unwrap_or_else(|| self.value_at(span)))
    }

    /// Keep only the fields for which `keep(name as written, value)` is
    /// true, in one pass.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&[u8], &HeaderValue) -> bool) {
        // Every value is made first: `keep` gets them by reference.
        for field in &self.fields {
            self.value_of(field);
        }
        self.retain_fields(|f| f.value.get().is_none_or(|v| keep(&f.name, v)));
    }

    /// Keep only the fields for which `keep(name as written, known bit)`
    /// is true, in one pass; each field's [known bit](known_bit) was worked
    /// out when it was added.
    pub(crate) fn retain_known(&mut self, mut keep: impl FnMut(&[u8], KnownSet) -> bool) {
        self.retain_fields(|f| keep(&f.name, f.bit));
    }

    fn retain_fields(&mut self, mut keep: impl FnMut(&Field) -> bool) {
        let before = self.fields.len();
        let mut known = 0;
        self.fields.retain(|f| {
            let kept = keep(f);
            if kept {
                known |= f.bit;
            }
            kept
        });
        self.known = known;
        if self.fields.len() != before {
            // Rebuilt from the fields on the next lookup.
            self.map = OnceLock::new();
        }
    }

    /// The fields in wire order: name as written, value.
    pub(crate) fn wire(&self) -> impl Iterator<Item = (&[u8], &HeaderValue)> {
        self.fields.iter().map(|f| (&f.name[..], self.value_of(f)))
    }

    /// Write `name: value\r\n` for every field, in wire order.
    pub(crate) fn write_to(&self, out: &mut bytes::BytesMut) {
        for field in &self.fields {
            out.extend_from_slice(&field.name);
            out.extend_from_slice(b": ");
            out.extend_from_slice(self.bytes_of(field));
            out.extend_from_slice(b"\r\n");
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &HeaderList) -> Vec<String> {
        list.wire()
            .map(|(n, v)| format!("{}={}", String::from_utf8_lossy(n), v.to_str().unwrap()))
            .collect()
    }

    #[test]
    fn insert_keeps_position_and_case() {
        let mut l = HeaderList::default();
        l.append("Host", "a").unwrap();
        l.append("X-Foo", "1").unwrap();
        l.append("Accept", "b").unwrap();
        l.append("x-foo", "2").unwrap();
        l.insert("X-FOO", "3").unwrap();
        assert_eq!(names(&l), ["Host=a", "X-FOO=3", "Accept=b"]);
        assert_eq!(l.map().get_all("x-foo").iter().count(), 1);
        assert_eq!(l.remove("host").unwrap(), "a");
        assert_eq!(names(&l), ["X-FOO=3", "Accept=b"]);
        assert!(l.remove("missing").is_none());
        assert!(l.remove("bad name").is_none());
    }

    /// The map, whenever it is built, holds exactly the fields' values.
    fn assert_map_matches(l: &HeaderList) {
        let from_map: usize = l.map().len();
        assert_eq!(from_map, l.len());
        for (name, value) in l.wire() {
            let name = std::str::from_utf8(name).unwrap();
            let in_map: Vec<_> = l.map().get_all(name).iter().collect();
            let in_list: Vec<_> = l.get_all(name).collect();
            assert_eq!(in_map, in_list, "{name}");
            assert!(in_list.contains(&value));
        }
    }

    #[test]
    fn lazy_map_follows_every_change() {
        // Each change made before and after the map is first built.
        for build_first in [false, true] {
            let mut l = HeaderList::default();
            l.push_parsed(Bytes::from_static(b"Host"), HeaderValue::from_static("a"));
            l.push_parsed(Bytes::from_static(b"X-A"), HeaderValue::from_static("1"));
            if build_first {
                assert_map_matches(&l);
            }
            l.append("x-a", "2").unwrap();
            l.insert("Accept", "*/*").unwrap();
            l.insert("X-a", "3").unwrap();
            assert_eq!(names(&l), ["Host=a", "X-a=3", "Accept=*/*"]);
            assert_map_matches(&l);
            assert_eq!(l.remove("HOST").unwrap(), "a");
            l.retain(|name, _| name != b"Accept");
            assert_eq!(names(&l), ["X-a=3"]);
            assert_map_matches(&l);
            assert_eq!(l.get("x-A").unwrap(), "3");
            assert!(l.contains("X-A") && !l.contains("accept"));
        }
    }

    /// What the fields say about `name`, by a plain scan.
    fn scanned(l: &HeaderList, name: &str) -> bool {
        l.wire()
            .any(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
    }

    #[test]
    fn known_names_stay_exact_through_every_change() {
        let tracked = [
            "Host",
            "Content-Length",
            "Transfer-Encoding",
            "Connection",
            "TE",
        ];
        let check = |l: &HeaderList| {
            for name in tracked {
                assert_eq!(l.contains(name), scanned(l, name), "{name}");
                assert_eq!(l.get(name).is_some(), scanned(l, name), "{name}");
            }
        };
        let mut l = HeaderList::default();
        check(&l);
        l.push_parsed(Bytes::from_static(b"HOST"), HeaderValue::from_static("a"));
        l.append("transfer-encoding", "chunked").unwrap();
        l.append("Transfer-Encoding", "chunked").unwrap();
        l.insert("te", "trailers").unwrap();
        check(&l);
        assert!(l.has_any(super::super::known::TE));
        assert_eq!(l.remove("Transfer-encoding").unwrap(), "chunked");
        check(&l);
        l.insert("Content-Length", "1").unwrap();
        l.retain(|name, _| !name.eq_ignore_ascii_case(b"host"));
        check(&l);
        assert!(!l.contains("host") && l.contains("content-length"));
        // A retain that removes nothing keeps what is there.
        l.retain(|_, _| true);
        check(&l);
        l.retain(|_, _| false);
        check(&l);
        assert!(!l.has_any(u16::MAX));
        l.append("Connection", "close").unwrap();
        check(&l);
    }

    #[test]
    fn a_name_that_only_folds_to_a_known_one_finds_nothing() {
        // Setting bit 5 of every byte would turn a CR into `-`; the bit of
        // a name must be exact, since lookups compare bits alone.
        let mut l = parsed("Content-Length: 5\nX-A: 1\n");
        for name in ["content\rlength", "Content\rLength"] {
            assert!(l.get(name).is_none());
            assert!(!l.contains(name));
            assert!(l.remove(name).is_none());
            assert!(l.insert(name, "9").is_err(), "not a valid name");
        }
        assert_eq!(names(&l), ["Content-Length=5", "X-A=1"]);
        assert_eq!(l.get("CONTENT-LENGTH").unwrap(), "5");
    }

    #[test]
    fn rejects_injection() {
        let mut l = HeaderList::default();
        assert!(l.append("X-A", "v\r\nEvil: 1").is_err());
        assert!(l.append("X A", "v").is_err());
        assert!(l.append("X:A", "v").is_err());
        assert_eq!(l.wire().count(), 0);
    }

    /// A list of the fields of `head` (`Name: value` lines), built the way
    /// the HTTP/1 parser builds one: values as spans of the head.
    fn parsed(head: &'static str) -> HeaderList {
        let mut l = HeaderList::with_capacity(4);
        let mut at = 0;
        for line in head.split_inclusive('\n') {
            let (name, _) = line.split_once(':').unwrap();
            let start = at + name.len() + 2;
            let end = at + line.trim_end().len();
            l.push_span(Bytes::copy_from_slice(name.as_bytes()), start, end - start);
            at += line.len();
        }
        l.set_head(Bytes::from(head.as_bytes().to_vec()));
        l
    }

    #[test]
    fn parsed_values_read_the_same_whichever_way_they_are_asked_for() {
        let l = parsed("Host: a.example\nX-Id: 7\nX-Id: 8\nConnection: close, X-Id\n");
        assert_eq!(l.len(), 4);
        let bytes: Vec<&[u8]> = l.get_all_bytes("x-id").collect();
        assert_eq!(bytes, [&b"7"[..], b"8"]);
        assert_eq!(l.get("host").unwrap(), "a.example");
        let values: Vec<_> = l.get_all("X-ID").collect();
        assert_eq!(values, ["7", "8"]);
        assert_eq!(
            names(&l),
            [
                "Host=a.example",
                "X-Id=7",
                "X-Id=8",
                "Connection=close, X-Id"
            ]
        );
        assert_map_matches(&l);
        let mut out = bytes::BytesMut::new();
        l.write_to(&mut out);
        assert_eq!(
            &out[..],
            b"Host: a.example\r\nX-Id: 7\r\nX-Id: 8\r\nConnection: close, X-Id\r\n"
        );
    }

    #[test]
    fn parsed_values_survive_changes_clones_and_the_original() {
        for build_map_first in [false, true] {
            let mut l = parsed("Host: h\nAccept: */*\nX-A: 1\n");
            if build_map_first {
                assert_map_matches(&l);
            }
            // Nothing was asked for as a value yet: removing makes one.
            assert_eq!(l.remove("accept").unwrap(), "*/*");
            l.append("X-A", "2").unwrap();
            l.insert("Host", "other").unwrap();
            let copy = l.clone();
            drop(l);
            assert_eq!(names(&copy), ["Host=other", "X-A=1", "X-A=2"]);
            assert_map_matches(&copy);
            let mut copy = copy;
            copy.retain(|_, v| v != "1");
            assert_eq!(names(&copy), ["Host=other", "X-A=2"]);
            assert_map_matches(&copy);
        }
    }

    #[test]
    fn hop_by_hop_removal_reads_parsed_values() {
        let mut l = parsed("Connection: keep-alive, X-Hop\nX-Hop: 1\nKeep-Alive: 5\nX-End: 2\n");
        l.remove_hop_by_hop(false);
        assert_eq!(names(&l), ["X-End=2"]);
    }

    #[test]
    fn a_span_outside_the_head_reads_as_empty() {
        let mut l = HeaderList::with_capacity(2);
        l.push_span(Bytes::from_static(b"X-A"), 2, 5);
        l.push_span(Bytes::from_static(b"X-B"), 1, 2);
        l.set_head(Bytes::from_static(b"abc"));
        assert_eq!(names(&l), ["X-A=", "X-B=bc"]);
        assert_eq!(l.get_all_bytes("x-a").next(), Some(&b""[..]));
        let mut out = bytes::BytesMut::new();
        l.write_to(&mut out);
        assert_eq!(&out[..], b"X-A: \r\nX-B: bc\r\n");
    }
}
