//! Range requests served from a stored full response (RFC 9110 §14):
//! parsing `Range` against a known length, `If-Range`, and the 206 or 416
//! head.

use crate::conditional::strong_match;
use crate::freshness::last_modified;
use http::{Method, StatusCode};
use pingora_core::header::{RequestHeader, ResponseHeader};
use pingora_error::Result;
use std::ops::Range;

/// More ranges than this in one request are not worth the framing: the
/// full response is sent instead (RFC 9110 §14.2 lets a server ignore
/// `Range`).
pub const MAX_RANGES: usize = 16;

/// What to do with a request's `Range`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeType {
    /// No usable `Range`: send the full response.
    None,
    /// One satisfiable range (end exclusive): send a 206.
    Single(Range<u64>),
    /// Several satisfiable ranges, in request order: send a 206
    /// `multipart/byteranges` framed by this.
    Multi(MultipartRanges),
    /// Syntactically valid but unsatisfiable: send a 416.
    Invalid,
}

/// Parse one range-spec against `len`; `Err` on bad syntax, `Ok(None)`
/// when unsatisfiable.
fn parse_spec(spec: &[u8], len: u64) -> std::result::Result<Option<Range<u64>>, ()> {
    let spec = spec.trim_ascii();
    let dash = spec.iter().position(|&b| b == b'-').ok_or(())?;
    let (first, last) = (&spec[..dash], &spec[dash + 1..]);
    let num = |s: &[u8]| -> std::result::Result<u64, ()> {
        if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
            return Err(());
        }
        // Digits too many to hold are beyond any length: saturate.
        Ok(s.iter()
            .try_fold(0u64, |acc, d| {
                acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
            })
            .unwrap_or(u64::MAX))
    };
    if first.is_empty() {
        // suffix-range: the last N bytes.
        let n = num(last)?;
        if n == 0 || len == 0 {
            return Ok(None);
        }
        return Ok(Some(len.saturating_sub(n)..len));
    }
    let start = num(first)?;
    let end = if last.is_empty() {
        u64::MAX
    } else {
        let end = num(last)?;
        if end < start {
            return Err(());
        }
        end
    };
    if start >= len {
        return Ok(None);
    }
    Ok(Some(start..end.saturating_add(1).min(len)))
}

/// Parse a `Range` value against a representation of `len` bytes
/// (RFC 9110 §14.1.2, §14.2).
///
/// Not `bytes=`, bad syntax, too many or overlapping ranges: `None`
/// (serve in full). No satisfiable range: `Invalid` (416).
///
/// # Examples
///
/// ```
/// use pingora_cache::range::{parse_range_header, RangeType};
///
/// assert_eq!(parse_range_header(b"bytes=0-499", 10_000), RangeType::Single(0..500));
/// assert_eq!(parse_range_header(b"bytes=-500", 10_000), RangeType::Single(9500..10_000));
/// assert_eq!(parse_range_header(b"bytes=9500-", 10_000), RangeType::Single(9500..10_000));
/// let RangeType::Multi(parts) = parse_range_header(b"bytes=0-0,-1", 10_000) else { panic!() };
/// assert_eq!(parts.ranges(), [0..1, 9999..10_000]);
/// assert_eq!(parse_range_header(b"bytes=20000-", 10_000), RangeType::Invalid);
/// assert_eq!(parse_range_header(b"items=0-1", 10_000), RangeType::None);
/// ```
pub fn parse_range_header(range: &[u8], len: u64) -> RangeType {
    let range = range.trim_ascii();
    let Some(eq) = range.iter().position(|&b| b == b'=') else {
        return RangeType::None;
    };
    if !range[..eq].trim_ascii().eq_ignore_ascii_case(b"bytes") {
        return RangeType::None;
    }
    let mut ranges = Vec::new();
    let mut specs = 0;
    for spec in range[eq + 1..].split(|&b| b == b',') {
        if spec.trim_ascii().is_empty() {
            continue;
        }
        specs += 1;
        if specs > MAX_RANGES {
            return RangeType::None;
        }
        match parse_spec(spec, len) {
            Err(()) => return RangeType::None,
            Ok(None) => {}
            Ok(Some(r)) => ranges.push(r),
        }
    }
    if specs == 0 {
        return RangeType::None;
    }
    match ranges.len() {
        0 => RangeType::Invalid,
        1 => RangeType::Single(ranges.swap_remove(0)),
        _ => {
            let mut sorted = ranges.clone();
            sorted.sort_by_key(|r| r.start);
            // Overlapping ranges are a known amplification trick (§14.2):
            // send the whole thing once instead.
            if sorted.windows(2).any(|w| w[1].start < w[0].end) {
                return RangeType::None;
            }
            RangeType::Multi(MultipartRanges::new(ranges, len))
        }
    }
}

/// Whether `If-Range` lets the `Range` apply to `stored` (RFC 9110
/// §13.1.5): absent, or a strong ETag match, or a date exactly equal to
/// the stored `Last-Modified`.
fn if_range_holds(req: &RequestHeader, stored: &ResponseHeader) -> bool {
    let Some(cond) = req.get_header("if-range") else {
        return true;
    };
    let cond = cond.as_bytes().trim_ascii();
    if cond.starts_with(b"\"") || cond.starts_with(b"W/") {
        return stored
            .get_header("etag")
            .is_some_and(|e| strong_match(cond, e.as_bytes()));
    }
    let date = std::str::from_utf8(cond)
        .ok()
        .and_then(|s| httpdate::parse_http_date(s).ok());
    date.is_some() && date == last_modified(stored)
}

/// Apply a request's `Range` to a full 200 response of `len` bytes that
/// is about to be served from cache: turn `resp` into the 206 (single
/// range) or 416 head, or leave it as is. Only GET is ranged; `If-Range`
/// is honoured. For [`RangeType::Multi`] the head becomes a 206
/// `multipart/byteranges` whose body [`MultipartRanges`] frames.
///
/// # Errors
///
/// Never in practice: the new field values are valid.
///
/// # Examples
///
/// ```
/// use pingora_cache::range::{range_header_filter, RangeType};
/// use pingora_core::header::{RequestHeader, ResponseHeader};
///
/// let mut req = RequestHeader::build("GET", b"/", None).unwrap();
/// req.insert_header("Range", "bytes=2-5").unwrap();
/// let mut resp = ResponseHeader::build(200, None).unwrap();
/// resp.insert_header("Content-Length", "10").unwrap();
/// let range = range_header_filter(&req, &mut resp, 10).unwrap();
/// assert_eq!(range, RangeType::Single(2..6));
/// assert_eq!(resp.status().as_u16(), 206);
/// assert_eq!(resp.get_header("content-range").unwrap(), "bytes 2-5/10");
/// assert_eq!(resp.get_header("content-length").unwrap(), "4");
/// ```
pub fn range_header_filter(
    req: &RequestHeader,
    resp: &mut ResponseHeader,
    len: u64,
) -> Result<RangeType> {
    if *req.method() != Method::GET || resp.status() != StatusCode::OK {
        return Ok(RangeType::None);
    }
    let Some(range) = req.get_header("range") else {
        return Ok(RangeType::None);
    };
    if !if_range_holds(req, resp) {
        return Ok(RangeType::None);
    }
    let mut parsed = parse_range_header(range.as_bytes(), len);
    match &mut parsed {
        RangeType::None => {}
        RangeType::Single(r) => {
            resp.set_status(StatusCode::PARTIAL_CONTENT)?;
            let cr = format!("bytes {}-{}/{len}", r.start, r.end - 1);
            resp.insert_header("Content-Range", cr)?;
            resp.insert_header("Content-Length", (r.end - r.start).to_string())?;
        }
        RangeType::Multi(parts) => {
            if let Some(ct) = resp.get_header("content-type") {
                parts.set_part_content_type(ct.as_bytes());
            }
            resp.set_status(StatusCode::PARTIAL_CONTENT)?;
            resp.insert_header("Content-Type", parts.content_type())?;
            resp.insert_header("Content-Length", parts.body_len().to_string())?;
            resp.remove_header("content-range");
        }
        RangeType::Invalid => {
            resp.set_status(StatusCode::RANGE_NOT_SATISFIABLE)?;
            resp.insert_header("Content-Range", format!("bytes */{len}"))?;
            resp.insert_header("Content-Length", "0")?;
        }
    }
    Ok(parsed)
}

/// The framing of a `multipart/byteranges` body (RFC 9110 §14.6): the
/// header of each part and the closing delimiter. The boundary is derived
/// from the ranges and length, so building it twice gives the same bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultipartRanges {
    ranges: Vec<Range<u64>>,
    len: u64,
    boundary: String,
    content_type: Option<Vec<u8>>,
}

impl MultipartRanges {
    /// The framing for `ranges` of a `len`-byte representation.
    pub fn new(ranges: Vec<Range<u64>>, len: u64) -> Self {
        let seed = ranges.iter().fold(len, |acc, r| {
            acc.rotate_left(7) ^ r.start.wrapping_mul(31) ^ r.end
        });
        Self {
            ranges,
            len,
            boundary: format!("pingora-byteranges-{seed:016x}"),
            content_type: None,
        }
    }

    /// The ranges, in request order (end exclusive).
    pub fn ranges(&self) -> &[Range<u64>] {
        &self.ranges
    }

    /// Set the `Content-Type` of the representation, sent in each part.
    pub fn set_part_content_type(&mut self, content_type: &[u8]) {
        self.content_type = Some(content_type.to_vec());
    }

    /// The `Content-Type` of the 206.
    pub fn content_type(&self) -> String {
        format!("multipart/byteranges; boundary={}", self.boundary)
    }

    /// The bytes to send before the part for `range`.
    pub fn part_header(&self, range: &Range<u64>) -> Vec<u8> {
        let mut h = format!("\r\n--{}\r\n", self.boundary).into_bytes();
        if let Some(ct) = &self.content_type {
            h.extend_from_slice(b"Content-Type: ");
            h.extend_from_slice(ct);
            h.extend_from_slice(b"\r\n");
        }
        let cr = format!(
            "Content-Range: bytes {}-{}/{}\r\n\r\n",
            range.start,
            range.end.saturating_sub(1),
            self.len
        );
        h.extend_from_slice(cr.as_bytes());
        h
    }

    /// The bytes to send after the last part.
    pub fn trailer(&self) -> Vec<u8> {
        format!("\r\n--{}--\r\n", self.boundary).into_bytes()
    }

    /// The length of the whole body.
    pub fn body_len(&self) -> u64 {
        let parts: u64 = self
            .ranges
            .iter()
            .map(|r| self.part_header(r).len() as u64 + (r.end - r.start))
            .sum();
        parts + self.trailer().len() as u64
    }
}

#[cfg(test)]
mod tests;
