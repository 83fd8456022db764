//! [`CacheMeta`]: what a cache keeps about a stored response besides its
//! body, and the fresh/stale decisions over it.

use pingora_core::header::ResponseHeader;
use pingora_error::{Error, ErrorType, Result};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The metadata of a stored response: its header and its timeline.
///
/// `created` is when the response was generated, as far as the cache can
/// tell: the time it arrived minus its corrected initial age
/// (RFC 9111 §4.2.3), so that [`age`](Self::age) is the RFC's
/// `current_age` at any later time. `updated` moves on each successful
/// revalidation.
///
/// # Examples
///
/// ```
/// use pingora_cache::CacheMeta;
/// use pingora_core::header::ResponseHeader;
/// use std::time::{Duration, SystemTime};
///
/// let now = SystemTime::now();
/// let header = ResponseHeader::build(200, None).unwrap();
/// let meta = CacheMeta::new(now + Duration::from_secs(60), now, 10, 300, header);
/// assert!(meta.is_fresh(now));
/// assert!(!meta.is_fresh(now + Duration::from_secs(61)));
/// assert!(meta.can_serve_stale_while_revalidate(now + Duration::from_secs(65)));
/// assert!(meta.can_serve_stale_if_error(now + Duration::from_secs(300)));
/// assert_eq!(meta.age(now + Duration::from_secs(5)), Duration::from_secs(5));
/// ```
#[derive(Debug, Clone)]
pub struct CacheMeta {
    created: SystemTime,
    updated: SystemTime,
    fresh_until: SystemTime,
    stale_while_revalidate_sec: u32,
    stale_if_error_sec: u32,
    must_revalidate: bool,
    // Shared: a lookup hands out a copy of the metadata on every hit.
    header: Arc<ResponseHeader>,
}

/// Where a stored response stands at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Fresh: serve it.
    Fresh,
    /// Stale but inside its `stale-while-revalidate` window: serve it and
    /// refresh it in the background.
    StaleWhileRevalidate,
    /// Stale: revalidate before serving (it may still be served on an
    /// origin error, see [`CacheMeta::can_serve_stale_if_error`]).
    Stale,
}

impl CacheMeta {
    /// Metadata for `header`, fresh until `fresh_until`, created (and
    /// updated) at `created`, with the stale windows in seconds.
    pub fn new(
        fresh_until: SystemTime,
        created: SystemTime,
        stale_while_revalidate_sec: u32,
        stale_if_error_sec: u32,
        header: ResponseHeader,
    ) -> Self {
        Self {
            created,
            updated: created,
            fresh_until,
            stale_while_revalidate_sec,
            stale_if_error_sec,
            must_revalidate: false,
            header: Arc::new(header),
        }
    }

    /// When the response was generated (its age is measured from here).
    pub const fn created(&self) -> SystemTime {
        self.created
    }

    /// When the response was stored or last revalidated.
    pub const fn updated(&self) -> SystemTime {
        self.updated
    }

    /// The end of the freshness lifetime.
    pub const fn fresh_until(&self) -> SystemTime {
        self.fresh_until
    }

    /// The freshness lifetime: `fresh_until − created`.
    pub fn fresh_sec(&self) -> u64 {
        self.fresh_until
            .duration_since(self.created)
            .unwrap_or_default()
            .as_secs()
    }

    /// The `stale-while-revalidate` window, in seconds past `fresh_until`.
    pub const fn stale_while_revalidate_sec(&self) -> u32 {
        self.stale_while_revalidate_sec
    }

    /// The `stale-if-error` window, in seconds past `fresh_until`.
    pub const fn stale_if_error_sec(&self) -> u32 {
        self.stale_if_error_sec
    }

    /// Whether the response forbids serving it stale (`must-revalidate`,
    /// `proxy-revalidate` or `no-cache`): both windows are then ignored.
    pub const fn must_revalidate(&self) -> bool {
        self.must_revalidate
    }

    /// Forbid (or allow) serving the response stale.
    pub fn set_must_revalidate(&mut self, must: bool) {
        self.must_revalidate = must;
    }

    /// The stored response header.
    pub fn response_header(&self) -> &ResponseHeader {
        &self.header
    }

    /// The stored response header, to change.
    pub fn response_header_mut(&mut self) -> &mut ResponseHeader {
        Arc::make_mut(&mut self.header)
    }

    /// Take the stored response header.
    pub fn into_response_header(self) -> ResponseHeader {
        Arc::unwrap_or_clone(self.header)
    }

    /// The stored header as it is served at `now`: with `Age` set to the
    /// current age in seconds (RFC 9111 §5.1).
    ///
    /// # Errors
    ///
    /// Never in practice: the value is a number.
    ///
    /// # Examples
    ///
    /// ```
    /// use pingora_cache::CacheMeta;
    /// use pingora_core::header::ResponseHeader;
    /// use std::time::{Duration, SystemTime};
    ///
    /// let t = SystemTime::now();
    /// let meta = CacheMeta::new(t, t, 0, 0, ResponseHeader::build(200, None).unwrap());
    /// let head = meta.header_for_hit(t + Duration::from_secs(42)).unwrap();
    /// assert_eq!(head.get_header("age").unwrap(), "42");
    /// ```
    pub fn header_for_hit(&self, now: SystemTime) -> Result<ResponseHeader> {
        let mut header = ResponseHeader::clone(&self.header);
        header.insert_header("Age", self.age(now).as_secs().to_string())?;
        Ok(header)
    }

    /// The current age at `now` (RFC 9111 §4.2.3), as sent in `Age`.
    pub fn age(&self, now: SystemTime) -> Duration {
        now.duration_since(self.created).unwrap_or_default()
    }

    /// Whether the response is fresh at `now`.
    pub fn is_fresh(&self, now: SystemTime) -> bool {
        now < self.fresh_until
    }

    fn within(&self, now: SystemTime, window_sec: u32) -> bool {
        !self.must_revalidate && now < self.fresh_until + Duration::from_secs(u64::from(window_sec))
    }

    /// Whether a stale response may be served at `now` while it is
    /// refreshed in the background (RFC 5861 §3).
    pub fn can_serve_stale_while_revalidate(&self, now: SystemTime) -> bool {
        self.within(now, self.stale_while_revalidate_sec)
    }

    /// Whether a stale response may be served at `now` because the origin
    /// failed (RFC 5861 §4).
    pub fn can_serve_stale_if_error(&self, now: SystemTime) -> bool {
        self.within(now, self.stale_if_error_sec)
    }

    /// Where the response stands at `now`.
    pub fn freshness(&self, now: SystemTime) -> Freshness {
        if self.is_fresh(now) {
            Freshness::Fresh
        } else if self.can_serve_stale_while_revalidate(now) {
            Freshness::StaleWhileRevalidate
        } else {
            Freshness::Stale
        }
    }

    /// After a successful revalidation at `now`: a new freshness end and
    /// age origin, and a new header (see
    /// [`merge_not_modified`](crate::conditional::merge_not_modified)).
    pub fn revalidated(&mut self, now: SystemTime, created: SystemTime, fresh_until: SystemTime) {
        self.updated = now;
        self.created = created;
        self.fresh_until = fresh_until;
    }

    /// Replace the stored header.
    pub fn set_response_header(&mut self, header: ResponseHeader) {
        self.header = Arc::new(header);
    }

    /// Change the stale windows.
    pub fn set_stale_windows(&mut self, while_revalidate_sec: u32, if_error_sec: u32) {
        self.stale_while_revalidate_sec = while_revalidate_sec;
        self.stale_if_error_sec = if_error_sec;
    }

    /// Set `fresh_until` (for example to expire an entry at once).
    pub fn set_fresh_until(&mut self, fresh_until: SystemTime) {
        self.fresh_until = fresh_until;
    }
}

/// The version byte that starts [`CacheMeta::serialize`]'s first part.
const META_FORMAT: u8 = 1;

fn put_time(out: &mut Vec<u8>, t: SystemTime) {
    // Times before 1970 do not occur in HTTP; they are stored as 1970.
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    out.extend_from_slice(&d.as_secs().to_le_bytes());
    out.extend_from_slice(&d.subsec_nanos().to_le_bytes());
}

/// Reads fixed-size little-endian fields off the front of a slice.
struct Fields<'a>(&'a [u8]);

impl Fields<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N]> {
        let Some((head, rest)) = self.0.split_first_chunk::<N>() else {
            return Error::e_explain(ErrorType::InternalError, "cache meta truncated");
        };
        self.0 = rest;
        Ok(*head)
    }

    fn time(&mut self) -> Result<SystemTime> {
        let secs = u64::from_le_bytes(self.take()?);
        let nanos = u32::from_le_bytes(self.take()?);
        UNIX_EPOCH
            .checked_add(Duration::new(secs, nanos.min(999_999_999)))
            .ok_or_else(|| Error::explain(ErrorType::InternalError, "cache meta time out of range"))
    }
}

/// Parse the HTTP/1 head `write_h1` wrote: the status line, then one
/// `Name: value` line per field. Exact for what we write (names hold no
/// `:`, values no CR or LF), so the round trip keeps order, case and
/// every byte of the values.
fn parse_head(head: &[u8]) -> Result<ResponseHeader> {
    let bad = || Error::explain(ErrorType::InternalError, "cache meta header malformed");
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let status_line = lines.next().ok_or_else(bad)?;
    let mut parts = status_line.splitn(3, |&b| b == b' ');
    let version = match parts.next() {
        Some(b"HTTP/1.0") => http::Version::HTTP_10,
        Some(b"HTTP/1.1") => http::Version::HTTP_11,
        _ => return Err(bad()),
    };
    let status: u16 = parts
        .next()
        .and_then(|s| std::str::from_utf8(s).ok())
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    let mut header = ResponseHeader::build(status, None)?;
    header.set_version(version);
    if let Some(reason) = parts.next().and_then(|r| std::str::from_utf8(r).ok())
        && reason.as_bytes() != header.reason_phrase()
    {
        header.set_reason_phrase(reason)?;
    }
    for line in lines.take_while(|l| !l.is_empty()) {
        let colon = line.iter().position(|&b| b == b':').ok_or_else(bad)?;
        let name = std::str::from_utf8(&line[..colon]).map_err(|_| bad())?;
        let value = &line[colon + 1..];
        let value = value.strip_prefix(b" ").unwrap_or(value);
        header.append_header(name.to_owned(), value)?;
    }
    Ok(header)
}

impl CacheMeta {
    /// The metadata as bytes, for a storage that keeps it outside memory:
    /// a versioned binary part with the times and stale windows, and the
    /// response header in its HTTP/1 wire form (status line and fields,
    /// names with their case, in order). [`deserialize`](Self::deserialize)
    /// reads both back.
    ///
    /// The same shape as Pingora's (`(internal, header)`); the bytes are
    /// ours and not compressed.
    ///
    /// # Errors
    ///
    /// None today; the `Result` keeps Pingora's signature.
    ///
    /// # Examples
    ///
    /// ```
    /// use pingora_cache::CacheMeta;
    /// use pingora_core::header::ResponseHeader;
    /// use std::time::{Duration, SystemTime};
    ///
    /// let now = SystemTime::now();
    /// let mut header = ResponseHeader::build(200, None).unwrap();
    /// header.insert_header("Cache-Control", "max-age=60").unwrap();
    /// let meta = CacheMeta::new(now + Duration::from_secs(60), now, 5, 10, header);
    /// let (internal, head) = meta.serialize().unwrap();
    /// let back = CacheMeta::deserialize(&internal, &head).unwrap();
    /// assert_eq!(back.fresh_until(), meta.fresh_until());
    /// assert_eq!(back.response_header().get_header("cache-control").unwrap(), "max-age=60");
    /// ```
    pub fn serialize(&self) -> Result<(Vec<u8>, Vec<u8>)> {
        let mut internal = Vec::with_capacity(48);
        internal.push(META_FORMAT);
        put_time(&mut internal, self.created);
        put_time(&mut internal, self.updated);
        put_time(&mut internal, self.fresh_until);
        internal.extend_from_slice(&self.stale_while_revalidate_sec.to_le_bytes());
        internal.extend_from_slice(&self.stale_if_error_sec.to_le_bytes());
        internal.push(u8::from(self.must_revalidate));
        let mut head = bytes::BytesMut::with_capacity(256);
        self.header.write_h1(&mut head);
        Ok((internal, head.to_vec()))
    }

    /// Metadata from the two parts [`serialize`](Self::serialize) made.
    ///
    /// # Errors
    ///
    /// [`ErrorType::InternalError`] when either part is truncated,
    /// malformed or of an unknown format version.
    pub fn deserialize(internal: &[u8], header: &[u8]) -> Result<Self> {
        let mut f = Fields(internal);
        if f.take::<1>()? != [META_FORMAT] {
            return Error::e_explain(ErrorType::InternalError, "unknown cache meta format");
        }
        let created = f.time()?;
        let updated = f.time()?;
        let fresh_until = f.time()?;
        let stale_while_revalidate_sec = u32::from_le_bytes(f.take()?);
        let stale_if_error_sec = u32::from_le_bytes(f.take()?);
        let must_revalidate = f.take::<1>()? != [0];
        Ok(Self {
            created,
            updated,
            fresh_until,
            stale_while_revalidate_sec,
            stale_if_error_sec,
            must_revalidate,
            header: Arc::new(parse_head(header)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(s)
    }

    #[test]
    fn windows_and_must_revalidate() {
        let h = ResponseHeader::build(200, None).unwrap();
        let mut m = CacheMeta::new(at(160), at(100), 10, 100, h);
        assert_eq!(m.fresh_sec(), 60);
        assert_eq!(m.freshness(at(159)), Freshness::Fresh);
        assert_eq!(m.freshness(at(160)), Freshness::StaleWhileRevalidate);
        assert_eq!(m.freshness(at(170)), Freshness::Stale);
        assert!(m.can_serve_stale_if_error(at(259)));
        assert!(!m.can_serve_stale_if_error(at(260)));
        m.set_must_revalidate(true);
        assert_eq!(m.freshness(at(160)), Freshness::Stale);
        assert!(!m.can_serve_stale_if_error(at(161)));
        assert!(m.is_fresh(at(150)));
        m.revalidated(at(300), at(299), at(400));
        assert_eq!(m.updated(), at(300));
        assert_eq!(m.age(at(301)), Duration::from_secs(2));
        assert_eq!(m.age(at(1)), Duration::ZERO);
    }

    #[test]
    fn serialize_round_trip() {
        let mut h = ResponseHeader::build(203, None).unwrap();
        h.set_reason_phrase("Fine Enough").unwrap();
        h.append_header("X-Case", " spaced value ").unwrap();
        h.append_header("set-cookie", "a=1").unwrap();
        h.append_header("Set-Cookie", "b=2:3").unwrap();
        let mut m = CacheMeta::new(at(160), at(100), 10, 100, h);
        m.set_must_revalidate(true);
        m.revalidated(at(120) + Duration::from_nanos(7), at(110), at(200));
        let (internal, head) = m.serialize().unwrap();
        let back = CacheMeta::deserialize(&internal, &head).unwrap();
        assert_eq!(back.created(), m.created());
        assert_eq!(back.updated(), m.updated());
        assert_eq!(back.fresh_until(), m.fresh_until());
        assert_eq!(back.stale_while_revalidate_sec(), 10);
        assert_eq!(back.stale_if_error_sec(), 100);
        assert!(back.must_revalidate());
        let fields = |m: &CacheMeta| {
            m.response_header()
                .wire_headers()
                .map(|(n, v)| (n.to_vec(), v.as_bytes().to_vec()))
                .collect::<Vec<_>>()
        };
        assert_eq!(fields(&back), fields(&m));
        assert_eq!(back.response_header().reason_phrase(), b"Fine Enough");
        assert_eq!(back.response_header().status(), 203);
        // Truncated or foreign bytes are errors, never panics.
        for cut in 0..internal.len() {
            assert!(CacheMeta::deserialize(&internal[..cut], &head).is_err());
        }
        let mut other = internal.clone();
        other[0] = 9;
        assert!(CacheMeta::deserialize(&other, &head).is_err());
        assert!(CacheMeta::deserialize(&internal, b"garbage").is_err());
        assert!(CacheMeta::deserialize(&internal, b"HTTP/1.1 200 OK\r\nno colon\r\n").is_err());
    }

    // Stored metadata is read back from files that a crash or a disk may
    // have damaged: any bytes give a value or an error, never a panic,
    // and what serialize writes always reads back.
    mod props {
        use super::*;
        use proptest::prelude::*;

        fn valid() -> (Vec<u8>, Vec<u8>) {
            let mut h = ResponseHeader::build(200, None).unwrap();
            h.append_header("Cache-Control", "max-age=60").unwrap();
            h.append_header("ETag", "\"v1\"").unwrap();
            CacheMeta::new(at(160), at(100), 1, 2, h)
                .serialize()
                .unwrap()
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]
            #[test]
            fn arbitrary_bytes_never_panic(
                internal in proptest::collection::vec(any::<u8>(), 0..64),
                head in proptest::collection::vec(any::<u8>(), 0..128),
            ) {
                let _ = CacheMeta::deserialize(&internal, &head);
                let (good_internal, good_head) = valid();
                let _ = CacheMeta::deserialize(&good_internal, &head);
                let _ = CacheMeta::deserialize(&internal, &good_head);
            }

            #[test]
            fn mutated_bytes_never_panic(at_byte in any::<usize>(), byte in any::<u8>(), cut in any::<usize>()) {
                let (internal, mut head) = valid();
                let i = at_byte % head.len();
                head[i] = byte;
                head.truncate(cut % (head.len() + 1));
                let _ = CacheMeta::deserialize(&internal, &head);
            }

            #[test]
            fn round_trips(
                status in 100u16..600,
                fields in proptest::collection::vec(("[A-Za-z][A-Za-z0-9-]{0,12}", "[ -~]{0,20}"), 0..8),
                secs in 0u64..(1 << 40),
                windows in (any::<u32>(), any::<u32>()),
            ) {
                let mut h = ResponseHeader::build(status, None).unwrap();
                for (n, v) in &fields {
                    h.append_header(n.clone(), v.as_str()).unwrap();
                }
                let m = CacheMeta::new(at(secs + 10), at(secs), windows.0, windows.1, h);
                let (internal, head) = m.serialize().unwrap();
                let back = CacheMeta::deserialize(&internal, &head).unwrap();
                prop_assert_eq!(back.fresh_until(), m.fresh_until());
                prop_assert_eq!(back.stale_if_error_sec(), windows.1);
                prop_assert_eq!(back.response_header().status(), m.response_header().status());
                let wire = |m: &CacheMeta| {
                    m.response_header()
                        .wire_headers()
                        .map(|(n, v)| (n.to_vec(), v.as_bytes().to_vec()))
                        .collect::<Vec<_>>()
                };
                prop_assert_eq!(wire(&back), wire(&m));
            }
        }
    }
}
