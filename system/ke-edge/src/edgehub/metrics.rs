//! EdgeHub's counters (owned by the hub, no global registry) and their Prometheus text.

use std::{
    fmt::Write as _,
    sync::atomic::{AtomicU64, Ordering},
};

/// Live EdgeHub counters.
#[derive(Debug, Default)]
pub struct EdgeHubMetrics {
    pub(crate) connects: AtomicU64,
    pub(crate) disconnects: AtomicU64,
    pub(crate) messages_in: AtomicU64,
    pub(crate) messages_out: AtomicU64,
    pub(crate) keepalives: AtomicU64,
    pub(crate) malformed_frames: AtomicU64,
    pub(crate) upstream_dropped: AtomicU64,
}

pub(crate) fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// A copy of the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EdgeHubMetricsSnapshot {
    /// Sessions established.
    pub connects: u64,
    /// Sessions lost (shutdown excluded).
    pub disconnects: u64,
    /// Downstream messages delivered to the downstream channel.
    pub messages_in: u64,
    /// Upstream messages written (keepalives excluded).
    pub messages_out: u64,
    /// Keepalives written.
    pub keepalives: u64,
    /// Downstream frames that did not decode (ignored).
    pub malformed_frames: u64,
    /// Upstream messages dropped: outbox full while disconnected, or too large to send.
    pub upstream_dropped: u64,
}

impl EdgeHubMetrics {
    /// A copy of the counters.
    pub fn snapshot(&self) -> EdgeHubMetricsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        EdgeHubMetricsSnapshot {
            connects: get(&self.connects),
            disconnects: get(&self.disconnects),
            messages_in: get(&self.messages_in),
            messages_out: get(&self.messages_out),
            keepalives: get(&self.keepalives),
            malformed_frames: get(&self.malformed_frames),
            upstream_dropped: get(&self.upstream_dropped),
        }
    }

    /// The counters in the Prometheus text exposition format.
    pub fn to_prometheus(&self) -> String {
        let s = self.snapshot();
        let mut out = String::new();
        for (name, help, v) in [
            (
                "edgehub_connects_total",
                "Sessions established.",
                s.connects,
            ),
            ("edgehub_disconnects_total", "Sessions lost.", s.disconnects),
            (
                "edgehub_messages_in_total",
                "Downstream messages received.",
                s.messages_in,
            ),
            (
                "edgehub_messages_out_total",
                "Upstream messages sent.",
                s.messages_out,
            ),
            ("edgehub_keepalives_total", "Keepalives sent.", s.keepalives),
            (
                "edgehub_malformed_frames_total",
                "Downstream frames ignored.",
                s.malformed_frames,
            ),
            (
                "edgehub_upstream_dropped_total",
                "Upstream messages dropped.",
                s.upstream_dropped,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        }
        out
    }
}
