//! Freshness lifetime and age (RFC 9111 §4.2), as pure functions of a
//! response head and the times the caller observed.
//!
//! Nothing here reads the clock: the caller passes the time it sent the
//! request, the time the response arrived and "now".

use crate::cache_control::{CacheControl, DELTA_SECONDS_MAX};
use http::StatusCode;
use pingora_core::header::ResponseHeader;
use std::time::{Duration, SystemTime};

/// Heuristic freshness (RFC 9111 §4.2.2): a fraction of the time since
/// `Last-Modified`, capped. Used only when a response has no explicit
/// freshness and its status code is heuristically cacheable (or it is
/// `public`).
///
/// # Examples
///
/// ```
/// use pingora_cache::Heuristic;
/// use std::time::Duration;
///
/// let h = Heuristic::new(10, Duration::from_secs(3600));
/// assert_eq!(h.lifetime(Duration::from_secs(1000)), Duration::from_secs(100));
/// assert_eq!(h.lifetime(Duration::from_secs(10 * 86400)), Duration::from_secs(3600));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heuristic {
    percent: u32,
    max: Duration,
}

impl Heuristic {
    /// `percent` of the time since `Last-Modified` (the RFC suggests 10),
    /// never more than `max`.
    pub const fn new(percent: u32, max: Duration) -> Self {
        Self { percent, max }
    }

    /// The lifetime for a response last modified `since_modified` ago.
    pub fn lifetime(&self, since_modified: Duration) -> Duration {
        let secs = since_modified
            .as_secs()
            .saturating_mul(u64::from(self.percent))
            / 100;
        Duration::from_secs(secs).min(self.max)
    }
}

/// Status codes a cache may store without explicit freshness
/// (RFC 9110 §15.1 "heuristically cacheable"), except 206: this cache
/// stores whole representations only.
pub fn is_heuristically_cacheable(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200 | 203 | 204 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// Parse an HTTP-date field (RFC 9110 §5.6.7) of `resp`: the first value;
/// `None` when absent. An unparsable value is `Some(Err(()))`.
fn header_date(resp: &ResponseHeader, name: &str) -> Option<Result<SystemTime, ()>> {
    let value = resp.get_header(name)?;
    Some(
        value
            .to_str()
            .ok()
            .and_then(|s| httpdate::parse_http_date(s.trim()).ok())
            .ok_or(()),
    )
}

/// The `Date` of a response, if present and valid.
pub fn date(resp: &ResponseHeader) -> Option<SystemTime> {
    header_date(resp, "date").and_then(Result::ok)
}

/// The `Last-Modified` of a response, if present and valid.
pub fn last_modified(resp: &ResponseHeader) -> Option<SystemTime> {
    header_date(resp, "last-modified").and_then(Result::ok)
}

/// The `Age` of a response in seconds (RFC 9111 §5.1): the first value;
/// an invalid one is ignored, an overflowing one is 2^31 (§1.2.2).
pub fn age_value(resp: &ResponseHeader) -> u32 {
    let Some(v) = resp.get_header("age") else {
        return 0;
    };
    let first = v
        .as_bytes()
        .split(|&b| b == b',')
        .next()
        .unwrap_or_default();
    let first = first.trim_ascii();
    if first.is_empty() || !first.iter().all(u8::is_ascii_digit) {
        return 0;
    }
    first
        .iter()
        .try_fold(0u32, |acc, d| {
            acc.checked_mul(10)?.checked_add(u32::from(d - b'0'))
        })
        .map_or(DELTA_SECONDS_MAX, |v| v.min(DELTA_SECONDS_MAX))
}

fn since(later: SystemTime, earlier: SystemTime) -> Duration {
    later.duration_since(earlier).unwrap_or_default()
}

/// The corrected initial age of a response (RFC 9111 §4.2.3): how old it
/// already was when it arrived, from `Age`, `Date` and the request and
/// response times.
///
/// # Examples
///
/// ```
/// use pingora_cache::freshness::corrected_initial_age;
/// use pingora_core::header::ResponseHeader;
/// use std::time::{Duration, UNIX_EPOCH};
///
/// let sent = UNIX_EPOCH + Duration::from_secs(1_000_000);
/// let arrived = sent + Duration::from_secs(2);
/// let mut resp = ResponseHeader::build(200, None).unwrap();
/// resp.insert_header("Age", "10").unwrap();
/// // age_value + response_delay = 12
/// assert_eq!(corrected_initial_age(&resp, sent, arrived), Duration::from_secs(12));
/// ```
pub fn corrected_initial_age(
    resp: &ResponseHeader,
    request_time: SystemTime,
    response_time: SystemTime,
) -> Duration {
    let apparent_age = date(resp).map_or(Duration::ZERO, |d| since(response_time, d));
    let response_delay = since(response_time, request_time);
    let corrected_age_value = Duration::from_secs(u64::from(age_value(resp))) + response_delay;
    apparent_age.max(corrected_age_value)
}

/// The current age of a stored response (RFC 9111 §4.2.3):
/// corrected initial age plus the time it has been resident.
pub fn current_age(
    resp: &ResponseHeader,
    request_time: SystemTime,
    response_time: SystemTime,
    now: SystemTime,
) -> Duration {
    corrected_initial_age(resp, request_time, response_time) + since(now, response_time)
}

/// Where a freshness lifetime came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifetimeSource {
    /// `s-maxage`.
    SMaxAge,
    /// `max-age`.
    MaxAge,
    /// `Expires` minus `Date`.
    Expires,
    /// A heuristic over `Last-Modified` (RFC 9111 §4.2.2).
    Heuristic,
}

/// The freshness lifetime of a response for a shared cache
/// (RFC 9111 §4.2.1): `s-maxage`, else `max-age`, else `Expires − Date`
/// (an invalid `Expires`, such as `0`, means already expired), else the
/// heuristic when one is given and the status allows it. `None` when
/// nothing gives a lifetime.
///
/// # Examples
///
/// ```
/// use pingora_cache::{freshness::freshness_lifetime, CacheControl};
/// use pingora_core::header::ResponseHeader;
/// use std::time::{Duration, SystemTime};
///
/// let mut resp = ResponseHeader::build(200, None).unwrap();
/// resp.insert_header("Date", "Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
/// resp.insert_header("Expires", "Sun, 06 Nov 1994 08:59:37 GMT").unwrap();
/// let (life, _) = freshness_lifetime(None, &resp, SystemTime::now(), None).unwrap();
/// assert_eq!(life, Duration::from_secs(600));
/// ```
pub fn freshness_lifetime(
    cc: Option<&CacheControl>,
    resp: &ResponseHeader,
    response_time: SystemTime,
    heuristic: Option<&Heuristic>,
) -> Option<(Duration, LifetimeSource)> {
    if let Some(cc) = cc {
        if let Some(s) = cc.s_maxage() {
            return Some((secs(s), LifetimeSource::SMaxAge));
        }
        if let Some(s) = cc.max_age() {
            return Some((secs(s), LifetimeSource::MaxAge));
        }
    }
    let date_value = date(resp).unwrap_or(response_time);
    if let Some(expires) = header_date(resp, "expires") {
        let life = expires.map_or(Duration::ZERO, |e| since(e, date_value));
        return Some((life, LifetimeSource::Expires));
    }
    let heuristic = heuristic?;
    let public = cc.is_some_and(CacheControl::public);
    if !public && !is_heuristically_cacheable(resp.status()) {
        return None;
    }
    let modified = last_modified(resp)?;
    Some((
        heuristic.lifetime(since(date_value, modified)),
        LifetimeSource::Heuristic,
    ))
}

fn secs(s: u32) -> Duration {
    Duration::from_secs(u64::from(s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn at(s: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(s)
    }

    fn resp(fields: &[(&str, &str)]) -> ResponseHeader {
        let mut r = ResponseHeader::build(200, None).unwrap();
        for (n, v) in fields {
            r.append_header(n, *v).unwrap();
        }
        r
    }

    fn date_str(t: SystemTime) -> String {
        httpdate::fmt_http_date(t)
    }

    #[test]
    fn age_follows_rfc_9111_4_2_3() {
        // Origin generated it at 1000; it sat 5s in an upstream cache
        // (Age: 5); we sent at 1003 and got it at 1006.
        let r = resp(&[("Date", &date_str(at(1000))), ("Age", "5")]);
        // apparent = 6, corrected_age_value = 5 + 3 = 8 -> 8
        assert_eq!(corrected_initial_age(&r, at(1003), at(1006)), secs(8));
        assert_eq!(current_age(&r, at(1003), at(1006), at(1016)), secs(18));
        // A Date in the future (clock skew) gives apparent age 0.
        let r = resp(&[("Date", &date_str(at(2000)))]);
        assert_eq!(corrected_initial_age(&r, at(1000), at(1001)), secs(1));
        // Bad Age values are ignored; huge ones saturate.
        assert_eq!(age_value(&resp(&[("Age", "x")])), 0);
        assert_eq!(age_value(&resp(&[("Age", "7, 9")])), 7);
        assert_eq!(
            age_value(&resp(&[("Age", "99999999999")])),
            DELTA_SECONDS_MAX
        );
    }

    #[test]
    fn lifetime_precedence() {
        let now = at(1_000_000);
        let cc = |s: &str| CacheControl::parse([s.as_bytes()]);
        let r = resp(&[
            ("Date", &date_str(now)),
            ("Expires", &date_str(now + secs(50))),
            ("Last-Modified", &date_str(now - secs(1000))),
        ]);
        let h = Heuristic::new(10, secs(86400));
        let life = |c: Option<&str>, hh| freshness_lifetime(cc_opt(c).as_ref(), &r, now, hh);
        fn cc_opt(c: Option<&str>) -> Option<CacheControl> {
            c.and_then(|c| CacheControl::parse([c.as_bytes()]))
        }
        assert_eq!(
            life(Some("s-maxage=7, max-age=3"), None),
            Some((secs(7), LifetimeSource::SMaxAge))
        );
        assert_eq!(
            life(Some("max-age=3"), None),
            Some((secs(3), LifetimeSource::MaxAge))
        );
        assert_eq!(life(None, None), Some((secs(50), LifetimeSource::Expires)));
        let r2 = resp(&[("Last-Modified", &date_str(now - secs(1000)))]);
        assert_eq!(freshness_lifetime(None, &r2, now, None), None);
        assert_eq!(
            freshness_lifetime(None, &r2, now, Some(&h)),
            Some((secs(100), LifetimeSource::Heuristic))
        );
        // Heuristics only for heuristically cacheable statuses, unless public.
        let mut r3 = r2.clone();
        r3.set_status(StatusCode::FOUND).unwrap();
        assert_eq!(freshness_lifetime(None, &r3, now, Some(&h)), None);
        let public = cc("public").unwrap();
        assert!(freshness_lifetime(Some(&public), &r3, now, Some(&h)).is_some());
        // Expires: 0 is in the past.
        let r4 = resp(&[("Expires", "0")]);
        assert_eq!(
            freshness_lifetime(None, &r4, now, Some(&h)),
            Some((Duration::ZERO, LifetimeSource::Expires))
        );
    }

    #[test]
    fn rfc_example_dates_parse() {
        // The three date formats of RFC 9110 §5.6.7.
        for d in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(date(&resp(&[("Date", d)])), Some(at(784_111_777)), "{d}");
        }
    }
}
