//! The UDP service's metrics (listed with the others in [`crate::metrics`]).

use crate::metrics::{counter, counters_by, enabled};
use prometheus::IntCounter;
use std::sync::LazyLock;

/// Why a datagram was dropped, as the `reason` label says it.
#[derive(Debug, Clone, Copy)]
pub(super) enum Dropped {
    /// Every handler slot was taken.
    Busy = 0,
    /// The handler ran past its timeout and was cancelled.
    Timeout = 1,
}

const REASONS: [&str; 2] = ["busy", "timeout"];

struct UdpMetrics {
    received: IntCounter,
    dropped: Vec<IntCounter>,
}

static UDP: LazyLock<UdpMetrics> = LazyLock::new(|| UdpMetrics {
    received: counter(
        "pingora_udp_datagrams_received_total",
        "Datagrams received by UDP services",
    ),
    dropped: counters_by(
        "pingora_udp_datagrams_dropped_total",
        "Datagrams a UDP service dropped: no free handler slot (busy), or its handler timed out",
        "reason",
        &REASONS,
    ),
});

pub(super) fn register() {
    LazyLock::force(&UDP);
}

pub(super) fn received() {
    if enabled() {
        UDP.received.inc();
    }
}

pub(super) fn dropped(reason: Dropped) {
    if enabled() {
        UDP.dropped[reason as usize].inc();
    }
}
