//! The framework's own Prometheus metrics, in the `prometheus` crate's
//! default registry: serve them, with yours, from a
//! [Prometheus service](crate::services::listening::Service::prometheus_http_service).
//!
//! | metric | type | labels |
//! | --- | --- | --- |
//! | `pingora_downstream_connections_accepted_total` | counter | |
//! | `pingora_downstream_connections_open` | gauge (served or parked) | |
//! | `pingora_tls_handshakes_total` | counter | `result`: `ok`, `failed` |
//! | `pingora_http_requests_rejected_total` | counter (refused before any app: 400, 408, 413, 414, 431) | |
//! | `pingora_h2_streams_total` | counter (server streams accepted) | |
//! | `pingora_h2_goaways_sent_total` | counter | |
//! | `pingora_upstream_connect_seconds` | histogram (new connections) | |
//! | `pingora_upstream_connect_failures_total` | counter | `kind`: the error type |
//! | `pingora_upstream_pool_total` | counter | `result`: `hit`, `miss` |
//! | `pingora_udp_datagrams_received_total` | counter (by [UDP services](crate::services::udp)) | |
//! | `pingora_udp_datagrams_dropped_total` | counter | `reason`: `busy` (no free handler), `timeout` (handler cancelled) |
//!
//! The proxy adds its own (requests, durations, retries, cache); see
//! `pingora_proxy`. Every label has a small fixed set of values, so a
//! metric's series never grow with traffic.
//!
//! Recording costs an atomic add or two; [`set_enabled`]`(false)` turns
//! it off (the metrics stay registered, at zero).

/// The `prometheus` crate these metrics are registered with: register
/// yours through this path (or depend on the same version), else they go
/// to another crate's registry and never show in a scrape.
pub use prometheus;

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use std::sync::LazyLock;
use std::sync::atomic::{AtomicBool, Ordering};

static ENABLED: AtomicBool = AtomicBool::new(true);

/// Turn recording of the framework's metrics on or off (on by default),
/// for the whole process.
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Whether the framework records its metrics.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Register `metric` in the default registry; a clash with a metric of the
/// same name (registered by the program) is logged and the metric kept
/// unregistered rather than failing.
pub fn register<M: prometheus::core::Collector + Clone + 'static>(metric: M) -> M {
    register_in(prometheus::default_registry(), metric)
}

fn register_in<M: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    metric: M,
) -> M {
    if let Err(e) = registry.register(Box::new(metric.clone())) {
        log::warn!("metric not registered: {e}");
    }
    metric
}

/// A counter registered in the default registry; see [`register`].
///
/// # Panics
///
/// When `name` is not a valid metric name: names are constants of the
/// program.
pub fn counter(name: &str, help: &str) -> IntCounter {
    #[allow(clippy::expect_used)]
    let metric = IntCounter::new(name, help).expect("a valid metric name");
    register(metric)
}

/// A counter with one label registered in the default registry, resolved
/// for each of `values` (in that order); see [`register`].
///
/// # Panics
///
/// When `name` or `label` is invalid: they are constants of the program.
pub fn counters_by(name: &str, help: &str, label: &str, values: &[&str]) -> Vec<IntCounter> {
    #[allow(clippy::expect_used)]
    let vec = IntCounterVec::new(Opts::new(name, help), &[label]).expect("a valid metric name");
    let vec = register(vec);
    values
        .iter()
        .map(|v| vec.with_label_values(&[*v]))
        .collect()
}

/// A histogram registered in the default registry, with `buckets` (in
/// seconds, say); see [`register`].
///
/// # Panics
///
/// When `name` is invalid or `buckets` are not increasing: constants of
/// the program.
pub fn histogram(name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    #[allow(clippy::expect_used)]
    let metric =
        Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets)).expect("valid opts");
    register(metric)
}

/// Buckets for latencies from half a millisecond to a minute.
pub fn latency_buckets() -> Vec<f64> {
    vec![
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
        60.0,
    ]
}

/// The error types whose upstream connect failures are counted apart;
/// every other falls under `other`.
const CONNECT_KINDS: [&str; 6] = [
    "ConnectTimedout",
    "ConnectRefused",
    "ConnectError",
    "TLSHandshakeFailure",
    "TLSHandshakeTimedout",
    "other",
];

pub(crate) struct CoreMetrics {
    accepted: IntCounter,
    open: IntGauge,
    tls: Vec<IntCounter>,
    rejected: IntCounter,
    h2_streams: IntCounter,
    h2_goaways: IntCounter,
    connect_seconds: Histogram,
    connect_failures: Vec<IntCounter>,
    pool: Vec<IntCounter>,
    proxy_rejected: Vec<IntCounter>,
    filtered: IntCounter,
}

static CORE: LazyLock<CoreMetrics> = LazyLock::new(|| {
    #[allow(clippy::expect_used)]
    let open = IntGauge::new(
        "pingora_downstream_connections_open",
        "Client connections open now: being served or parked idle",
    )
    .expect("a valid metric name");
    CoreMetrics {
        accepted: counter(
            "pingora_downstream_connections_accepted_total",
            "Client connections accepted",
        ),
        open: register(open),
        tls: counters_by(
            "pingora_tls_handshakes_total",
            "Server TLS handshakes, by result",
            "result",
            &["ok", "failed"],
        ),
        rejected: counter(
            "pingora_http_requests_rejected_total",
            "Requests refused before any app or phase saw them (malformed, too large, too slow)",
        ),
        h2_streams: counter(
            "pingora_h2_streams_total",
            "HTTP/2 streams accepted from clients",
        ),
        h2_goaways: counter(
            "pingora_h2_goaways_sent_total",
            "HTTP/2 GOAWAY frames sent to clients",
        ),
        connect_seconds: histogram(
            "pingora_upstream_connect_seconds",
            "Time to open a new upstream connection, TLS included",
            latency_buckets(),
        ),
        connect_failures: counters_by(
            "pingora_upstream_connect_failures_total",
            "Failed upstream connects, by error type",
            "kind",
            &CONNECT_KINDS,
        ),
        pool: counters_by(
            "pingora_upstream_pool_total",
            "Upstream sessions taken from the pool (hit) or newly connected (miss)",
            "result",
            &["hit", "miss"],
        ),
        proxy_rejected: counters_by(
            "pingora_proxy_protocol_rejected_total",
            "Connections from trusted senders closed for their PROXY protocol header, by reason",
            "reason",
            &crate::listeners::proxy_protocol::Rejected::ALL,
        ),
        filtered: counter(
            "pingora_connections_filtered_total",
            "Connections dropped by a connection filter before TLS or the app",
        ),
    }
});

/// Run `f` on the framework's metrics when recording is on.
#[inline]
fn record(f: impl FnOnce(&CoreMetrics)) {
    if enabled() {
        f(&CORE);
    }
}

pub(crate) fn connection_accepted() {
    record(|m| {
        m.accepted.inc();
        m.open.inc();
    });
}

pub(crate) fn connection_closed() {
    record(|m| m.open.dec());
}

pub(crate) fn tls_handshake(ok: bool) {
    record(|m| m.tls[usize::from(!ok)].inc());
}

pub(crate) fn request_rejected() {
    record(|m| m.rejected.inc());
}

pub(crate) fn h2_stream_accepted() {
    record(|m| m.h2_streams.inc());
}

pub(crate) fn h2_goaway_sent() {
    record(|m| m.h2_goaways.inc());
}

pub(crate) fn upstream_connected(seconds: f64) {
    record(|m| m.connect_seconds.observe(seconds));
}

pub(crate) fn upstream_connect_failed(kind: &pingora_error::ErrorType) {
    record(|m| {
        let name = kind.as_str();
        let last = CONNECT_KINDS.len() - 1;
        let index = CONNECT_KINDS[..last]
            .iter()
            .position(|k| *k == name)
            .unwrap_or(last);
        m.connect_failures[index].inc();
    });
}

pub(crate) fn upstream_pool(hit: bool) {
    record(|m| m.pool[usize::from(!hit)].inc());
}

pub(crate) fn proxy_header_rejected(reason: usize) {
    record(|m| {
        if let Some(counter) = m.proxy_rejected.get(reason) {
            counter.inc();
        }
    });
}

pub(crate) fn connection_filtered() {
    record(|m| m.filtered.inc());
}

/// The framework's metrics are registered before the first scrape, so a
/// scrape shows them at zero rather than not at all.
pub(crate) fn register_core() {
    LazyLock::force(&CORE);
}
