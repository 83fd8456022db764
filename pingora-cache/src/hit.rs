//! How to answer a request from a stored response: [`plan_hit`] picks
//! the head and which bytes of the body to send (a 304 for a matching
//! conditional, nothing for HEAD, a range, or the whole body).

use crate::conditional::{not_modified, to_304};
use crate::meta::CacheMeta;
use crate::range::{MultipartRanges, RangeType, range_header_filter};
use http::Method;
use pingora_core::header::{RequestHeader, ResponseHeader};
use pingora_error::Result;
use std::ops::Range;
use std::time::SystemTime;

/// Which bytes of the stored body a hit sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyPlan {
    /// No body: a 304, a 416, or a HEAD request.
    None,
    /// The whole body.
    Full,
    /// One range (end exclusive): [`seek`](crate::storage::HandleHit::seek)
    /// to it, then read to the end.
    Range(Range<u64>),
    /// Several ranges: for each, send
    /// [`part_header`](MultipartRanges::part_header), seek and send its
    /// bytes; then send [`trailer`](MultipartRanges::trailer).
    Multi(MultipartRanges),
}

/// The response to send for a hit: the head, and the body plan.
#[derive(Debug, Clone)]
pub struct HitPlan {
    /// The head to send, `Age` included.
    pub header: ResponseHeader,
    /// Which bytes of the stored body to send.
    pub body: BodyPlan,
}

/// Answer `req` from the stored response `meta` at `now`.
///
/// `body_len` is the stored body's length when known
/// ([`HandleHit::body_len`](crate::storage::HandleHit::body_len)); an
/// entry still filling has none, so it is served whole, without ranges
/// (and, if the origin sent no `Content-Length`, the proxy frames it as
/// chunked). With a known length, `Content-Length` is set to it.
///
/// Order (RFC 9110 §13.2.2): a matching `If-None-Match` /
/// `If-Modified-Since` gives a 304; then HEAD gets the head alone; then
/// `Range` (with `If-Range`) gives a 206 or 416.
///
/// # Errors
///
/// Never in practice: the fields set are valid.
///
/// # Examples
///
/// ```
/// use pingora_cache::hit::{plan_hit, BodyPlan};
/// use pingora_cache::CacheMeta;
/// use pingora_core::header::{RequestHeader, ResponseHeader};
/// use std::time::{Duration, SystemTime};
///
/// let now = SystemTime::now();
/// let mut stored = ResponseHeader::build(200, None).unwrap();
/// stored.insert_header("ETag", "\"v1\"").unwrap();
/// let meta = CacheMeta::new(now + Duration::from_secs(60), now, 0, 0, stored);
///
/// let mut req = RequestHeader::build("GET", b"/", None).unwrap();
/// req.insert_header("Range", "bytes=0-3").unwrap();
/// let plan = plan_hit(&req, &meta, now, Some(100)).unwrap();
/// assert_eq!(plan.header.status().as_u16(), 206);
/// assert_eq!(plan.body, BodyPlan::Range(0..4));
///
/// req.insert_header("If-None-Match", "\"v1\"").unwrap();
/// let plan = plan_hit(&req, &meta, now, Some(100)).unwrap();
/// assert_eq!(plan.header.status().as_u16(), 304);
/// assert_eq!(plan.body, BodyPlan::None);
/// ```
pub fn plan_hit(
    req: &RequestHeader,
    meta: &CacheMeta,
    now: SystemTime,
    body_len: Option<u64>,
) -> Result<HitPlan> {
    let is_304 = not_modified(req, meta.response_header());
    plan_hit_with(req, meta, now, body_len, is_304, |req, header, len| {
        range_header_filter(req, header, len)
    })
}

/// [`plan_hit`] with the two decisions a proxy lets its user make:
/// whether the request is answered `304` (`not_modified`, by default
/// [`not_modified`]), and which range is served (`range`, by default
/// [`range_header_filter`]; called only when the body length is known,
/// with the head to change and that length).
///
/// # Errors
///
/// What `range` returns; otherwise never in practice.
///
/// # Examples
///
/// ```
/// use pingora_cache::hit::{plan_hit_with, BodyPlan};
/// use pingora_cache::range::RangeType;
/// use pingora_cache::CacheMeta;
/// use pingora_core::header::{RequestHeader, ResponseHeader};
/// use std::time::SystemTime;
///
/// let now = SystemTime::now();
/// let meta = CacheMeta::new(now, now, 0, 0, ResponseHeader::build(200, None).unwrap());
/// let mut req = RequestHeader::build("GET", b"/", None).unwrap();
/// req.insert_header("Range", "bytes=0-3").unwrap();
/// // This cache never serves ranges.
/// let plan = plan_hit_with(&req, &meta, now, Some(10), false, |_, _, _| Ok(RangeType::None)).unwrap();
/// assert_eq!((plan.header.status().as_u16(), plan.body), (200, BodyPlan::Full));
/// ```
pub fn plan_hit_with(
    req: &RequestHeader,
    meta: &CacheMeta,
    now: SystemTime,
    body_len: Option<u64>,
    not_modified: bool,
    range: impl FnOnce(&RequestHeader, &mut ResponseHeader, u64) -> Result<RangeType>,
) -> Result<HitPlan> {
    let age = meta.age(now).as_secs().to_string();
    if not_modified {
        let mut header = to_304(meta.response_header())?;
        header.insert_header("Age", age)?;
        return Ok(HitPlan {
            header,
            body: BodyPlan::None,
        });
    }
    let mut header = meta.header_for_hit(now)?;
    if let Some(len) = body_len {
        // The bytes we hold are what we send, whatever the origin said.
        header.insert_header("Content-Length", len.to_string())?;
    }
    if *req.method() == Method::HEAD {
        return Ok(HitPlan {
            header,
            body: BodyPlan::None,
        });
    }
    let body = match body_len {
        None => BodyPlan::Full,
        Some(len) => match range(req, &mut header, len)? {
            RangeType::None => BodyPlan::Full,
            RangeType::Single(r) => BodyPlan::Range(r),
            RangeType::Multi(parts) => BodyPlan::Multi(parts),
            RangeType::Invalid => BodyPlan::None,
        },
    };
    Ok(HitPlan { header, body })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn at(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_000_000 + s)
    }

    fn meta(fields: &[(&str, &str)]) -> CacheMeta {
        let mut h = ResponseHeader::build(200, None).unwrap();
        for (n, v) in fields {
            h.append_header(n, *v).unwrap();
        }
        CacheMeta::new(at(60), at(0), 0, 0, h)
    }

    fn req(method: &str, fields: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build(method, b"/", None).unwrap();
        for (n, v) in fields {
            r.append_header(n, *v).unwrap();
        }
        r
    }

    #[test]
    fn plans() {
        let m = meta(&[
            ("ETag", "\"a\""),
            ("Content-Type", "text/plain"),
            ("Content-Length", "99"),
        ]);
        let plan = plan_hit(&req("GET", &[]), &m, at(7), Some(10)).unwrap();
        assert_eq!(plan.body, BodyPlan::Full);
        assert_eq!(plan.header.get_header("age").unwrap(), "7");
        assert_eq!(plan.header.get_header("content-length").unwrap(), "10");

        // HEAD: the head of the GET, no body, even with a Range.
        let plan = plan_hit(&req("HEAD", &[("Range", "bytes=0-1")]), &m, at(7), Some(10)).unwrap();
        assert_eq!(
            (plan.header.status().as_u16(), plan.body),
            (200, BodyPlan::None)
        );

        // 304 wins over Range; it carries Age and no body fields.
        let r = req("GET", &[("If-None-Match", "\"a\""), ("Range", "bytes=0-1")]);
        let plan = plan_hit(&r, &m, at(7), Some(10)).unwrap();
        assert_eq!(plan.header.status().as_u16(), 304);
        assert_eq!(plan.header.get_header("age").unwrap(), "7");
        assert!(!plan.header.has_header("content-type"));

        // 416, and multipart.
        let plan = plan_hit(&req("GET", &[("Range", "bytes=50-")]), &m, at(7), Some(10)).unwrap();
        assert_eq!(
            (plan.header.status().as_u16(), plan.body),
            (416, BodyPlan::None)
        );
        let plan = plan_hit(
            &req("GET", &[("Range", "bytes=0-0,5-")]),
            &m,
            at(7),
            Some(10),
        )
        .unwrap();
        let BodyPlan::Multi(parts) = plan.body else {
            panic!("multi");
        };
        assert_eq!(parts.ranges(), [0..1, 5..10]);

        // Still filling: whole body, no range.
        let plan = plan_hit(&req("GET", &[("Range", "bytes=0-1")]), &m, at(7), None).unwrap();
        assert_eq!(
            (plan.header.status().as_u16(), plan.body),
            (200, BodyPlan::Full)
        );
        // The origin's length is kept while the entry fills.
        assert_eq!(plan.header.get_header("content-length").unwrap(), "99");
        let bare = meta(&[]);
        let plan = plan_hit(&req("GET", &[]), &bare, at(7), None).unwrap();
        assert!(!plan.header.has_header("content-length"));
    }
}
