//! The TCP proxy's Prometheus metrics, next to the framework's
//! ([`pingora_core::metrics`], whose switch also turns these off):
//!
//! | metric | type | labels |
//! | --- | --- | --- |
//! | `pingora_tcp_sessions_total` | counter (sessions ended) | `result`: ok, error |
//! | `pingora_tcp_bytes_total` | counter | `direction`: from_downstream, from_upstream |
//! | `pingora_tcp_connect_failures_total` | counter | |
//! | `pingora_tcp_spliced_sessions_total` | counter (sessions that relayed bytes with `splice(2)`) | |

use super::TcpSession;
use pingora_core::metrics::{counter, counters_by, enabled};
use prometheus::IntCounter;
use std::sync::LazyLock;

struct TcpMetrics {
    /// ok, error.
    sessions: Vec<IntCounter>,
    /// from_downstream, from_upstream.
    bytes: Vec<IntCounter>,
    connect_failures: IntCounter,
    spliced: IntCounter,
}

static TCP: LazyLock<TcpMetrics> = LazyLock::new(|| TcpMetrics {
    sessions: counters_by(
        "pingora_tcp_sessions_total",
        "TCP proxy sessions ended, by whether an error ended them",
        "result",
        &["ok", "error"],
    ),
    bytes: counters_by(
        "pingora_tcp_bytes_total",
        "Bytes the TCP proxy received, by the side they came from",
        "direction",
        &["from_downstream", "from_upstream"],
    ),
    connect_failures: counter(
        "pingora_tcp_connect_failures_total",
        "Failed connects of the TCP proxy to its upstreams",
    ),
    spliced: counter(
        "pingora_tcp_spliced_sessions_total",
        "TCP proxy sessions that relayed bytes with splice(2)",
    ),
});

/// Count an ended session.
pub(super) fn session_done(session: &TcpSession, failed: bool) {
    if !enabled() {
        return;
    }
    let m = &*TCP;
    m.sessions[usize::from(failed)].inc();
    m.bytes[0].inc_by(session.bytes_from_downstream());
    m.bytes[1].inc_by(session.bytes_from_upstream());
    if session.spliced() {
        m.spliced.inc();
    }
}

/// Count a failed connect.
pub(super) fn connect_failed() {
    if enabled() {
        TCP.connect_failures.inc();
    }
}

/// Register the metrics now, so a scrape shows them at zero.
pub(super) fn register() {
    LazyLock::force(&TCP);
}
