//! Whether and how a shared cache may store a response (RFC 9111 §3),
//! as pure functions: [`resp_cacheable`] turns a response head into
//! [`RespCacheable`].

use crate::cache_control::{CacheControl, Cacheable};
use crate::freshness::{Heuristic, corrected_initial_age, freshness_lifetime};
use crate::meta::CacheMeta;
use http::{Method, StatusCode};
use pingora_core::header::{RequestHeader, ResponseHeader};
use std::time::{Duration, SystemTime};

/// Why a response is not cached.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoCacheReason {
    /// Caching was never turned on for the request.
    NeverEnabled,
    /// The request method is not cacheable (only GET and HEAD are).
    MethodNotCacheable,
    /// `Cache-Control: no-store`.
    NoStore,
    /// Unqualified `Cache-Control: private`.
    Private,
    /// `Vary: *` (RFC 9111 §4.1: it never matches).
    VaryStar,
    /// The request had `Authorization` and the response did not allow
    /// sharing it (RFC 9111 §3.5).
    Authorization,
    /// The response sets a cookie and the caller did not allow storing it.
    SetCookie,
    /// The status code is not storable (1xx, 206, 304) or not cacheable
    /// without explicit freshness.
    StatusNotCacheable,
    /// No explicit freshness, no heuristic and no default TTL applied, or
    /// stale on arrival with nothing to revalidate with.
    OriginNotCache,
    /// The body grew past the per-entry limit or the storage's budget.
    ResponseTooLarge,
    /// The storage failed.
    StorageError,
    /// A bug or an internal failure.
    InternalError,
    /// A cache lock waiter gave up and went to the origin itself.
    CacheLockTimeout,
    /// The decision is deferred (for example until the body is seen).
    Deferred,
    /// The upstream failed while the response was being written.
    UpstreamError,
    /// A reason the user names.
    Custom(&'static str),
}

impl NoCacheReason {
    /// A short name for logs.
    pub const fn as_str(&self) -> &'static str {
        match self {
            Self::NeverEnabled => "never_enabled",
            Self::MethodNotCacheable => "method_not_cacheable",
            Self::NoStore => "no_store",
            Self::Private => "private",
            Self::VaryStar => "vary_star",
            Self::Authorization => "authorization",
            Self::SetCookie => "set_cookie",
            Self::StatusNotCacheable => "status_not_cacheable",
            Self::OriginNotCache => "origin_not_cache",
            Self::ResponseTooLarge => "response_too_large",
            Self::StorageError => "storage_error",
            Self::InternalError => "internal_error",
            Self::CacheLockTimeout => "cache_lock_timeout",
            Self::Deferred => "deferred",
            Self::UpstreamError => "upstream_error",
            Self::Custom(s) => s,
        }
    }
}

/// The verdict on a response: store it with this metadata, or not, and why.
#[derive(Debug, Clone)]
pub enum RespCacheable {
    /// Store it.
    Cacheable(CacheMeta),
    /// Do not store it.
    Uncacheable(NoCacheReason),
}

impl RespCacheable {
    /// Whether the verdict is [`Cacheable`](Self::Cacheable).
    pub const fn is_cacheable(&self) -> bool {
        matches!(self, Self::Cacheable(_))
    }
}

/// Defaults and policy for responses that do not say everything
/// themselves.
///
/// The default: no TTL for responses without explicit freshness, no
/// heuristic, no stale windows, and responses with `Set-Cookie` not stored.
///
/// # Examples
///
/// ```
/// use pingora_cache::{CacheMetaDefaults, Heuristic};
/// use http::StatusCode;
/// use std::time::Duration;
///
/// fn ttl(status: StatusCode) -> Option<u32> {
///     (status == StatusCode::OK).then_some(60)
/// }
/// let defaults = CacheMetaDefaults::new(ttl, 10, 300)
///     .with_heuristic(Heuristic::new(10, Duration::from_secs(86400)))
///     .allow_set_cookie(false);
/// assert_eq!(defaults.fresh_sec(StatusCode::OK), Some(60));
/// ```
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct CacheMetaDefaults {
    fresh_sec_fn: fn(StatusCode) -> Option<u32>,
    stale_while_revalidate_sec: u32,
    stale_if_error_sec: u32,
    heuristic: Option<Heuristic>,
    allow_set_cookie: bool,
}

fn no_ttl(_: StatusCode) -> Option<u32> {
    None
}

impl Default for CacheMetaDefaults {
    fn default() -> Self {
        Self::new(no_ttl, 0, 0)
    }
}

impl CacheMetaDefaults {
    /// Defaults: `fresh_sec_fn` gives the TTL of a response with no
    /// explicit freshness by status (`None`: not cached), and the stale
    /// windows used when the response names none.
    pub const fn new(
        fresh_sec_fn: fn(StatusCode) -> Option<u32>,
        stale_while_revalidate_sec: u32,
        stale_if_error_sec: u32,
    ) -> Self {
        Self {
            fresh_sec_fn,
            stale_while_revalidate_sec,
            stale_if_error_sec,
            heuristic: None,
            allow_set_cookie: false,
        }
    }

    /// Turn on heuristic freshness from `Last-Modified` (RFC 9111 §4.2.2);
    /// it comes before `fresh_sec_fn`.
    pub const fn with_heuristic(mut self, heuristic: Heuristic) -> Self {
        self.heuristic = Some(heuristic);
        self
    }

    /// Store responses that carry `Set-Cookie` (shared with every client);
    /// off by default. A response that lists `set-cookie` in
    /// `private="…"` or `no-cache="…"` is stored without the field either way.
    pub const fn allow_set_cookie(mut self, allow: bool) -> Self {
        self.allow_set_cookie = allow;
        self
    }

    /// The default TTL for `status`.
    pub fn fresh_sec(&self, status: StatusCode) -> Option<u32> {
        (self.fresh_sec_fn)(status)
    }

    /// The default `stale-while-revalidate` window.
    pub const fn serve_stale_while_revalidate_sec(&self) -> u32 {
        self.stale_while_revalidate_sec
    }

    /// The default `stale-if-error` window.
    pub const fn serve_stale_if_error_sec(&self) -> u32 {
        self.stale_if_error_sec
    }
}

/// Whether a request may be answered from cache or fill it: GET and HEAD.
pub fn request_cacheable(req: &RequestHeader) -> bool {
    matches!(*req.method(), Method::GET | Method::HEAD)
}

/// Whether a request method is unsafe, so that a non-error response to it
/// invalidates the stored responses for its target (RFC 9111 §4.4).
pub fn is_unsafe_method(method: &Method) -> bool {
    !matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// Whether a response to `method` with `status` invalidates the stored
/// responses for the request's target (RFC 9111 §4.4): an unsafe method
/// and a non-error status (2xx or 3xx).
///
/// # Examples
///
/// ```
/// use pingora_cache::filters::invalidates;
/// use http::{Method, StatusCode};
///
/// assert!(invalidates(&Method::POST, StatusCode::OK));
/// assert!(!invalidates(&Method::POST, StatusCode::INTERNAL_SERVER_ERROR));
/// assert!(!invalidates(&Method::GET, StatusCode::OK));
/// ```
pub fn invalidates(method: &Method, status: StatusCode) -> bool {
    is_unsafe_method(method) && (status.is_success() || status.is_redirection())
}

/// When a response was asked for and received, for its age (RFC 9111
/// §4.2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseTimes {
    /// When the request was sent upstream.
    pub request_time: SystemTime,
    /// When the response header arrived.
    pub response_time: SystemTime,
}

impl ResponseTimes {
    /// Both times at once, for a response that took no time.
    pub const fn at(t: SystemTime) -> Self {
        Self {
            request_time: t,
            response_time: t,
        }
    }
}

/// Decide whether a shared cache may store `resp`, and with which
/// metadata (RFC 9111 §3, §4.2).
///
/// `cc` is the response's parsed `Cache-Control`;
/// `authorization_present` whether the request carried `Authorization`.
/// The stored header loses its hop-by-hop fields and the fields named by
/// `private="…"` or `no-cache="…"` (§5.2.2.4, §5.2.2.7).
///
/// # Examples
///
/// ```
/// use pingora_cache::{resp_cacheable, CacheControl, CacheMetaDefaults, RespCacheable, ResponseTimes};
/// use pingora_core::header::ResponseHeader;
/// use std::time::SystemTime;
///
/// let mut resp = ResponseHeader::build(200, None).unwrap();
/// resp.insert_header("Cache-Control", "max-age=60").unwrap();
/// let cc = CacheControl::from_resp_headers(&resp);
/// let now = SystemTime::now();
/// let verdict = resp_cacheable(cc.as_ref(), resp, false, &CacheMetaDefaults::default(), ResponseTimes::at(now));
/// let RespCacheable::Cacheable(meta) = verdict else { panic!() };
/// assert_eq!(meta.fresh_sec(), 60);
/// ```
pub fn resp_cacheable(
    cc: Option<&CacheControl>,
    mut resp: ResponseHeader,
    authorization_present: bool,
    defaults: &CacheMetaDefaults,
    times: ResponseTimes,
) -> RespCacheable {
    use NoCacheReason as R;
    use RespCacheable::Uncacheable;
    let status = resp.status();
    if status.is_informational() || matches!(status.as_u16(), 206 | 304) {
        return Uncacheable(R::StatusNotCacheable);
    }
    if let Some(cc) = cc {
        if cc.is_cacheable() == Cacheable::No {
            return Uncacheable(if cc.no_store() {
                R::NoStore
            } else {
                R::Private
            });
        }
        if authorization_present && !cc.allow_caching_authorized_req() {
            return Uncacheable(R::Authorization);
        }
    } else if authorization_present {
        return Uncacheable(R::Authorization);
    }
    if crate::variance::has_vary_star(&resp) {
        return Uncacheable(R::VaryStar);
    }
    // Fields the response itself says must not be shared.
    for list in cc
        .iter()
        .flat_map(|c| [c.private_fields(), c.no_cache_fields()])
    {
        for name in list.unwrap_or_default() {
            resp.remove_header(&**name);
        }
    }
    if resp.has_header("set-cookie") && !defaults.allow_set_cookie {
        return Uncacheable(R::SetCookie);
    }
    // Unqualified no-cache: storable, but stale from the start so that
    // every use revalidates (§5.2.2.4).
    let unqualified_no_cache = cc.and_then(CacheControl::no_cache_fields) == Some(&[]);
    let heuristic = defaults.heuristic.as_ref();
    let lifetime = if unqualified_no_cache {
        Duration::ZERO
    } else if let Some((life, _)) = freshness_lifetime(cc, &resp, times.response_time, heuristic) {
        life
    } else if let Some(s) = defaults.fresh_sec(status) {
        Duration::from_secs(u64::from(s))
    } else {
        return Uncacheable(R::OriginNotCache);
    };
    let forbids_stale = cc.is_some_and(CacheControl::forbids_stale);
    let (swr, sie) = stale_windows(cc, defaults, forbids_stale);
    let has_validator = resp.has_header("etag") || resp.has_header("last-modified");
    if lifetime.is_zero() && !has_validator && swr == 0 && sie == 0 {
        return Uncacheable(R::OriginNotCache);
    }
    let initial_age = corrected_initial_age(&resp, times.request_time, times.response_time);
    let created = times
        .response_time
        .checked_sub(initial_age)
        .unwrap_or(times.response_time);
    resp.remove_hop_by_hop_headers(false);
    let fresh_until = created.checked_add(lifetime).unwrap_or(times.response_time);
    let mut meta = CacheMeta::new(fresh_until, created, swr, sie, resp);
    meta.set_must_revalidate(forbids_stale);
    RespCacheable::Cacheable(meta)
}

/// The stale-while-revalidate and stale-if-error windows, in seconds.
fn stale_windows(
    cc: Option<&CacheControl>,
    defaults: &CacheMetaDefaults,
    forbids_stale: bool,
) -> (u32, u32) {
    if forbids_stale {
        return (0, 0);
    }
    // s-maxage carries proxy-revalidate for shared caches (§5.2.2.10):
    // no stale serving on the cache's own defaults, only in the windows
    // the response grants explicitly (RFC 5861).
    let (default_swr, default_sie) = if cc.and_then(CacheControl::s_maxage).is_some() {
        (0, 0)
    } else {
        (
            defaults.stale_while_revalidate_sec,
            defaults.stale_if_error_sec,
        )
    };
    (
        cc.and_then(CacheControl::serve_stale_while_revalidate_sec)
            .unwrap_or(default_swr),
        cc.and_then(CacheControl::serve_stale_if_error_sec)
            .unwrap_or(default_sie),
    )
}

#[cfg(test)]
mod tests;
