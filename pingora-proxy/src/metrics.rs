//! The proxy's Prometheus metrics, next to the framework's
//! ([`pingora_core::metrics`], whose switch also turns these off):
//!
//! | metric | type | labels |
//! | --- | --- | --- |
//! | `pingora_http_requests_total` | counter | `method`: GET, HEAD, POST, PUT, DELETE, other; `status`: 1xx to 5xx, or `none` (no response) |
//! | `pingora_http_request_duration_seconds` | histogram | |
//! | `pingora_http_requests_rate_limited_total` | counter (answered 429) | |
//! | `pingora_upstream_retries_total` | counter | |
//! | `pingora_cache_lookups_total` | counter (requests with caching enabled, at lookup) | `result`: hit, miss, stale, expired (revalidated at the origin), bypass (not a cacheable method), other |
//!
//! Requests the proxy makes itself (subrequests) are not counted.
//!
//! The UDP proxy's metrics are listed in [`crate::udp`].

use crate::Session;
use http::Method;
use pingora_cache::CachePhase;
use pingora_core::metrics::{counter, counters_by, enabled, histogram, latency_buckets, register};
use prometheus::{Histogram, IntCounter, IntCounterVec, Opts};
use std::sync::LazyLock;

const METHODS: [&str; 6] = ["GET", "HEAD", "POST", "PUT", "DELETE", "other"];
const STATUSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "none"];
const CACHE_RESULTS: [&str; 6] = ["hit", "miss", "stale", "expired", "bypass", "other"];

struct ProxyMetrics {
    /// By method, then status class.
    requests: Vec<Vec<IntCounter>>,
    duration: Histogram,
    rate_limited: IntCounter,
    retries: IntCounter,
    cache: Vec<IntCounter>,
}

static PROXY: LazyLock<ProxyMetrics> = LazyLock::new(|| {
    #[allow(clippy::expect_used)] // constant names
    let requests = IntCounterVec::new(
        Opts::new(
            "pingora_http_requests_total",
            "Requests served by the proxy, by method and status class",
        ),
        &["method", "status"],
    )
    .expect("a valid metric name");
    let requests = register(requests);
    let requests = METHODS
        .iter()
        .map(|m| {
            STATUSES
                .iter()
                .map(|s| requests.with_label_values(&[*m, *s]))
                .collect()
        })
        .collect();
    ProxyMetrics {
        requests,
        duration: histogram(
            "pingora_http_request_duration_seconds",
            "Time from a request's head to the end of its response",
            latency_buckets(),
        ),
        rate_limited: counter(
            "pingora_http_requests_rate_limited_total",
            "Requests answered 429 Too Many Requests",
        ),
        retries: counter(
            "pingora_upstream_retries_total",
            "Upstream attempts made again after a failure",
        ),
        cache: counters_by(
            "pingora_cache_lookups_total",
            "Requests with caching enabled, by how the cache served them",
            "result",
            &CACHE_RESULTS,
        ),
    }
});

fn method_index(method: &Method) -> usize {
    match *method {
        Method::GET => 0,
        Method::HEAD => 1,
        Method::POST => 2,
        Method::PUT => 3,
        Method::DELETE => 4,
        _ => 5,
    }
}

fn status_index(status: Option<u16>) -> usize {
    match status {
        Some(s @ 100..=599) => usize::from(s / 100 - 1),
        _ => 5,
    }
}

fn cache_index(phase: CachePhase) -> usize {
    match phase {
        CachePhase::Hit => 0,
        CachePhase::Miss => 1,
        CachePhase::Stale => 2,
        CachePhase::Expired => 3,
        CachePhase::Bypass => 4,
        _ => 5,
    }
}

/// Count a finished client request.
pub(crate) fn request_done(session: &Session) {
    if !enabled() || session.is_subrequest() {
        return;
    }
    let m = &*PROXY;
    let status = session.response_status();
    let method = method_index(session.req_header().method());
    m.requests[method][status_index(status)].inc();
    m.duration.observe(session.elapsed().as_secs_f64());
    if status == Some(429) {
        m.rate_limited.inc();
    }
}

/// Count a cache lookup of a client request, by the phase it led to.
pub(crate) fn cache_looked_up(session: &Session) {
    if enabled() && !session.is_subrequest() {
        PROXY.cache[cache_index(session.cache.phase())].inc();
    }
}

/// Count an upstream attempt made again.
pub(crate) fn retried() {
    if enabled() {
        PROXY.retries.inc();
    }
}

/// Register the proxy's metrics now, so a scrape shows them at zero.
pub(crate) fn register_proxy() {
    LazyLock::force(&PROXY);
}
