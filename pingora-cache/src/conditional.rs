//! Conditional requests: answering a client's `If-None-Match` /
//! `If-Modified-Since` from cache with 304 (RFC 9110 §13, RFC 9111
//! §4.3.2), revalidating a stored response with its validators (§4.3.1)
//! and folding a 304 into the stored header (§3.2, §4.3.4).

use crate::cache_control::CacheControl;
use crate::filters::{CacheMetaDefaults, RespCacheable, ResponseTimes, resp_cacheable};
use crate::freshness::{date, last_modified};
use crate::meta::CacheMeta;
use http::{Method, StatusCode};
use pingora_core::header::{RequestHeader, ResponseHeader};
use pingora_error::Result;

/// One entity-tag of a list: `(weak, opaque-tag with its quotes)`.
fn entity_tags(list: &[u8]) -> impl Iterator<Item = (bool, &[u8])> {
    let mut rest = list;
    std::iter::from_fn(move || {
        loop {
            rest = rest.trim_ascii_start();
            while let [b',', r @ ..] = rest {
                rest = r.trim_ascii_start();
            }
            if rest.is_empty() {
                return None;
            }
            let weak = rest.starts_with(b"W/");
            if weak {
                rest = &rest[2..];
            }
            if let [b'"', tail @ ..] = rest {
                // etagc excludes DQUOTE, so the next quote ends the tag.
                let end = tail
                    .iter()
                    .position(|&b| b == b'"')
                    .map_or(tail.len(), |p| p + 1);
                let tag = &rest[..(end + 1).min(rest.len())];
                rest = &tail[end.min(tail.len())..];
                return Some((weak, tag));
            }
            // Not an entity-tag: skip to the next comma.
            let skip = rest.iter().position(|&b| b == b',').unwrap_or(rest.len());
            rest = &rest[skip..];
        }
    })
}

fn opaque(etag: &[u8]) -> (bool, &[u8]) {
    let etag = etag.trim_ascii();
    match etag.strip_prefix(b"W/") {
        Some(rest) => (true, rest),
        None => (false, etag),
    }
}

/// Weak comparison of two entity-tags (RFC 9110 §8.8.3.2): equal
/// opaque-tags, whatever their weakness.
pub fn weak_match(a: &[u8], b: &[u8]) -> bool {
    opaque(a).1 == opaque(b).1
}

/// Strong comparison (RFC 9110 §8.8.3.2): both strong and equal.
pub fn strong_match(a: &[u8], b: &[u8]) -> bool {
    let (wa, oa) = opaque(a);
    let (wb, ob) = opaque(b);
    !wa && !wb && oa == ob
}

/// Whether a client request's conditionals let the cache answer 304 for
/// `stored` (RFC 9110 §13.2.2, RFC 9111 §4.3.2): `If-None-Match` (weak
/// comparison, `*` matches any) when present; otherwise, for GET and HEAD,
/// `If-Modified-Since` against the stored `Last-Modified`, else its `Date`.
/// Only a stored 200 is answered this way.
///
/// # Examples
///
/// ```
/// use pingora_cache::conditional::not_modified;
/// use pingora_core::header::{RequestHeader, ResponseHeader};
///
/// let mut stored = ResponseHeader::build(200, None).unwrap();
/// stored.insert_header("ETag", "\"v2\"").unwrap();
/// let mut req = RequestHeader::build("GET", b"/", None).unwrap();
/// req.insert_header("If-None-Match", "\"v1\", W/\"v2\"").unwrap();
/// assert!(not_modified(&req, &stored));
/// ```
pub fn not_modified(req: &RequestHeader, stored: &ResponseHeader) -> bool {
    if stored.status() != StatusCode::OK {
        return false;
    }
    let mut inm = req.get_header_values("if-none-match").peekable();
    if inm.peek().is_some() {
        let etag = stored.get_header("etag").map(|v| v.as_bytes());
        return inm.any(|line| {
            if line.as_bytes().trim_ascii() == b"*" {
                return true;
            }
            etag.is_some_and(|e| entity_tags(line.as_bytes()).any(|(_, t)| weak_match(t, e)))
        });
    }
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        return false;
    }
    let since = req
        .get_header("if-modified-since")
        .and_then(|v| v.to_str().ok())
        .and_then(|s| httpdate::parse_http_date(s.trim()).ok());
    let Some(since) = since else {
        return false;
    };
    last_modified(stored)
        .or_else(|| date(stored))
        .is_some_and(|modified| modified <= since)
}

/// Fields a 304 carries over from the 200 it stands for (RFC 9110
/// §15.4.5), with `Last-Modified` to guide caches downstream.
const NOT_MODIFIED_FIELDS: &[&str] = &[
    "cache-control",
    "content-location",
    "date",
    "etag",
    "expires",
    "vary",
    "last-modified",
];

/// The 304 head for a stored response.
///
/// # Errors
///
/// Never in practice: the fields are copied from a valid head.
pub fn to_304(stored: &ResponseHeader) -> Result<ResponseHeader> {
    let mut resp =
        ResponseHeader::build(StatusCode::NOT_MODIFIED, Some(NOT_MODIFIED_FIELDS.len()))?;
    resp.set_version(stored.version());
    for (name, value) in stored.wire_headers() {
        let lower = String::from_utf8_lossy(name).to_ascii_lowercase();
        if NOT_MODIFIED_FIELDS.contains(&lower.as_str()) {
            resp.append_header(String::from_utf8_lossy(name).as_ref(), value.clone())?;
        }
    }
    Ok(resp)
}

/// Turn `req` into the request that revalidates `stored` (RFC 9111
/// §4.3.1): the client's own conditionals and `Range` are dropped (the
/// cache revalidates the whole stored response), then `If-None-Match`
/// carries the stored `ETag` and `If-Modified-Since` its `Last-Modified`.
/// Returns whether there was a validator to send.
///
/// # Errors
///
/// Never in practice: the values come from a valid head.
///
/// # Examples
///
/// ```
/// use pingora_cache::conditional::add_validators;
/// use pingora_core::header::{RequestHeader, ResponseHeader};
///
/// let mut stored = ResponseHeader::build(200, None).unwrap();
/// stored.insert_header("ETag", "\"abc\"").unwrap();
/// let mut req = RequestHeader::build("GET", b"/", None).unwrap();
/// req.insert_header("If-None-Match", "\"client\"").unwrap();
/// req.insert_header("Range", "bytes=0-1").unwrap();
/// assert!(add_validators(&mut req, &stored).unwrap());
/// assert_eq!(req.get_header("if-none-match").unwrap(), "\"abc\"");
/// assert!(!req.has_header("range"));
/// ```
pub fn add_validators(req: &mut RequestHeader, stored: &ResponseHeader) -> Result<bool> {
    for name in [
        "if-none-match",
        "if-modified-since",
        "if-match",
        "if-unmodified-since",
        "if-range",
        "range",
    ] {
        req.remove_header(name);
    }
    let mut any = false;
    if let Some(etag) = stored.get_header("etag") {
        req.insert_header("If-None-Match", etag.clone())?;
        any = true;
    }
    if let Some(lm) = stored.get_header("last-modified") {
        req.insert_header("If-Modified-Since", lm.clone())?;
        any = true;
    }
    Ok(any)
}

/// Whether a 304 is about `stored` (RFC 9111 §4.3.4): its `ETag`, if any,
/// matches the stored one; else its `Last-Modified`, if any, equals the
/// stored one. When it does not, the cache must fetch the full response.
pub fn not_modified_applies(stored: &ResponseHeader, not_modified: &ResponseHeader) -> bool {
    if let Some(new) = not_modified.get_header("etag") {
        return stored
            .get_header("etag")
            .is_some_and(|old| weak_match(old.as_bytes(), new.as_bytes()));
    }
    if let Some(new) = not_modified.get_header("last-modified") {
        return stored.get_header("last-modified") == Some(new);
    }
    true
}

/// Fields a 304 never changes in the stored response (RFC 9111 §3.2):
/// `Content-Length` and the fields that describe the stored body's bytes.
fn keeps_stored(name: &str) -> bool {
    matches!(
        name,
        "content-length" | "content-encoding" | "content-range" | "transfer-encoding"
    )
}

/// Fold the fields of a 304 into the stored header (RFC 9111 §3.2): each
/// field the 304 carries replaces the stored values of that name, except
/// hop-by-hop fields, `Content-Length`, `Content-Encoding`,
/// `Content-Range` and `Transfer-Encoding` (they describe the stored
/// body's bytes, which a 304 does not change).
///
/// # Errors
///
/// Never in practice: the values come from a valid head.
pub fn merge_not_modified(
    stored: &mut ResponseHeader,
    not_modified: &ResponseHeader,
) -> Result<()> {
    let mut update = not_modified.clone();
    update.remove_hop_by_hop_headers(false);
    let mut replaced: Vec<String> = Vec::new();
    for (name, value) in update.wire_headers() {
        let name = String::from_utf8_lossy(name).into_owned();
        let lower = name.to_ascii_lowercase();
        if keeps_stored(&lower) {
            continue;
        }
        if !replaced.contains(&lower) {
            stored.remove_header(&lower);
            replaced.push(lower);
        }
        stored.append_header(&name, value.clone())?;
    }
    Ok(())
}

/// The metadata of a stored response after a 304 (RFC 9111 §4.3.4): the
/// 304's fields merged into the stored header, then cacheability and
/// freshness decided again from the merged header, as for a new
/// response. `None` when the 304 is not about this response
/// ([`not_modified_applies`]): fetch it in full.
///
/// # Errors
///
/// Never in practice: see [`merge_not_modified`].
pub fn revalidated_meta(
    stored: &CacheMeta,
    not_modified: &ResponseHeader,
    authorization_present: bool,
    defaults: &CacheMetaDefaults,
    times: ResponseTimes,
) -> Result<Option<RespCacheable>> {
    if !not_modified_applies(stored.response_header(), not_modified) {
        return Ok(None);
    }
    let mut header = stored.response_header().clone();
    // The 304 is the newer response: its own `Date` and `Age` (or their
    // absence) date it, not the stored ones (§4.2.3).
    header.remove_header("date");
    header.remove_header("age");
    merge_not_modified(&mut header, not_modified)?;
    let cc = CacheControl::from_resp_headers(&header);
    Ok(Some(resp_cacheable(
        cc.as_ref(),
        header,
        authorization_present,
        defaults,
        times,
    )))
}

#[cfg(test)]
mod tests;
