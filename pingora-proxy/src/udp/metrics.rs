//! The UDP proxy's counters: process-wide Prometheus metrics, and the same
//! counts per proxy for [`UdpProxy::stats`](super::UdpProxy::stats).

use pingora_core::metrics::{counter, counters_by, enabled, register};
use prometheus::{IntCounter, IntGauge};
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// Why the UDP proxy dropped a datagram (the `reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DropReason {
    /// A new client came while the proxy had its
    /// [maximum of sessions](super::UdpProxyOptions::max_sessions).
    SessionLimit,
    /// The session's queue toward the upstream was full.
    QueueFull,
    /// A datagram filter dropped it.
    Filtered,
    /// No upstream was chosen for its session, or it could not be reached.
    NoUpstream,
    /// Sending it failed or timed out.
    SendFailed,
    /// Its session ended before it was sent, or the proxy is shutting
    /// down and starts no new session.
    Closed,
}

impl DropReason {
    const ALL: [Self; 6] = [
        Self::SessionLimit,
        Self::QueueFull,
        Self::Filtered,
        Self::NoUpstream,
        Self::SendFailed,
        Self::Closed,
    ];

    /// The `reason` label's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SessionLimit => "session_limit",
            Self::QueueFull => "queue_full",
            Self::Filtered => "filtered",
            Self::NoUpstream => "no_upstream",
            Self::SendFailed => "send_failed",
            Self::Closed => "closed",
        }
    }

    /// The position in [`Self::ALL`], which lists the variants in order.
    const fn index(self) -> usize {
        self as usize
    }
}

struct Global {
    active: IntGauge,
    created: IntCounter,
    expired: IntCounter,
    dropped: Vec<IntCounter>,
}

static GLOBAL: LazyLock<Global> = LazyLock::new(|| {
    #[allow(clippy::expect_used)] // a constant name
    let active = IntGauge::new(
        "pingora_udp_proxy_sessions_active",
        "UDP proxy sessions open now",
    )
    .expect("a valid metric name");
    let reasons: Vec<&str> = DropReason::ALL.iter().map(|r| r.as_str()).collect();
    Global {
        active: register(active),
        created: counter(
            "pingora_udp_proxy_sessions_created_total",
            "UDP proxy sessions started",
        ),
        expired: counter(
            "pingora_udp_proxy_sessions_expired_total",
            "UDP proxy sessions ended by their idle timeout",
        ),
        dropped: counters_by(
            "pingora_udp_proxy_datagrams_dropped_total",
            "Datagrams the UDP proxy dropped, by reason",
            "reason",
            &reasons,
        ),
    }
});

/// The counts of one proxy: what its Prometheus metrics count, for this
/// proxy alone. Read through [`UdpProxy::stats`](super::UdpProxy::stats).
#[derive(Debug, Default)]
pub struct UdpProxyStats {
    active: AtomicU64,
    created: AtomicU64,
    expired: AtomicU64,
    dropped: [AtomicU64; 6],
}

impl UdpProxyStats {
    /// Sessions open now.
    pub fn sessions_active(&self) -> u64 {
        self.active.load(Ordering::Relaxed)
    }

    /// Sessions started so far.
    pub fn sessions_created(&self) -> u64 {
        self.created.load(Ordering::Relaxed)
    }

    /// Sessions ended by their idle timeout so far.
    pub fn sessions_expired(&self) -> u64 {
        self.expired.load(Ordering::Relaxed)
    }

    /// Datagrams dropped so far for `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped[reason.index()].load(Ordering::Relaxed)
    }

    pub(super) fn session_started(&self) {
        self.created.fetch_add(1, Ordering::Relaxed);
        self.active.fetch_add(1, Ordering::Relaxed);
        if enabled() {
            GLOBAL.created.inc();
            GLOBAL.active.inc();
        }
    }

    pub(super) fn session_ended(&self, expired: bool) {
        self.active.fetch_sub(1, Ordering::Relaxed);
        if expired {
            self.expired.fetch_add(1, Ordering::Relaxed);
        }
        if enabled() {
            GLOBAL.active.dec();
            if expired {
                GLOBAL.expired.inc();
            }
        }
    }

    pub(super) fn drop_datagrams(&self, reason: DropReason, n: u64) {
        if n == 0 {
            return;
        }
        self.dropped[reason.index()].fetch_add(n, Ordering::Relaxed);
        if enabled() {
            GLOBAL.dropped[reason.index()].inc_by(n);
        }
    }
}

/// Register the metrics, so a scrape shows them at zero before any
/// session.
pub(super) fn register_all() {
    LazyLock::force(&GLOBAL);
}
