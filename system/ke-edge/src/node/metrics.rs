//! The node agent's counters (owned by the agent, no global registry) and the `registered`
//! flag.

use std::{
    fmt::Write as _,
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
};

/// Live node agent counters.
#[derive(Debug, Default)]
pub struct NodeMetrics {
    registered: AtomicBool,
    connected: AtomicBool,
    pub(crate) registrations_sent: AtomicU64,
    pub(crate) node_status_sent: AtomicU64,
    pub(crate) leases_sent: AtomicU64,
    pub(crate) pod_statuses_sent: AtomicU64,
    pub(crate) pod_statuses_coalesced: AtomicU64,
    pub(crate) pod_deletes_sent: AtomicU64,
    pub(crate) messages_out: AtomicU64,
    pub(crate) requests_failed: AtomicU64,
    pub(crate) replies_unmatched: AtomicU64,
    pod_reports_waiting: AtomicU64,
}

pub(crate) fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// A copy of the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NodeMetricsSnapshot {
    /// The cloud accepted the node registration (once true, stays true).
    pub registered: bool,
    /// The agent sees a cloud session.
    pub connected: bool,
    /// Registrations sent (one per session, plus retries).
    pub registrations_sent: u64,
    /// Node status patches sent.
    pub node_status_sent: u64,
    /// Lease renewals sent.
    pub leases_sent: u64,
    /// Pod status updates sent.
    pub pod_statuses_sent: u64,
    /// Pod statuses replaced by a newer one before they could be sent.
    pub pod_statuses_coalesced: u64,
    /// Final pod deletes sent.
    pub pod_deletes_sent: u64,
    /// Every message the agent put upstream (inventory included, ACKs excluded).
    pub messages_out: u64,
    /// Requests the cloud refused.
    pub requests_failed: u64,
    /// Replies to no request in flight (late, or from an earlier session).
    pub replies_unmatched: u64,
    /// Pod statuses and deletes waiting to be sent.
    pub pod_reports_waiting: u64,
}

impl NodeMetrics {
    /// True once the cloud accepted the node registration.
    pub fn is_registered(&self) -> bool {
        self.registered.load(Ordering::Relaxed)
    }

    /// True while the agent sees a cloud session.
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    pub(crate) fn set_registered(&self) {
        self.registered.store(true, Ordering::Relaxed);
    }

    pub(crate) fn set_connected(&self, connected: bool) {
        self.connected.store(connected, Ordering::Relaxed);
    }

    pub(crate) fn set_pod_reports_waiting(&self, n: usize) {
        let n = u64::try_from(n).unwrap_or(u64::MAX);
        self.pod_reports_waiting.store(n, Ordering::Relaxed);
    }

    /// A copy of the counters.
    pub fn snapshot(&self) -> NodeMetricsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        NodeMetricsSnapshot {
            registered: self.is_registered(),
            connected: self.is_connected(),
            registrations_sent: get(&self.registrations_sent),
            node_status_sent: get(&self.node_status_sent),
            leases_sent: get(&self.leases_sent),
            pod_statuses_sent: get(&self.pod_statuses_sent),
            pod_statuses_coalesced: get(&self.pod_statuses_coalesced),
            pod_deletes_sent: get(&self.pod_deletes_sent),
            messages_out: get(&self.messages_out),
            requests_failed: get(&self.requests_failed),
            replies_unmatched: get(&self.replies_unmatched),
            pod_reports_waiting: get(&self.pod_reports_waiting),
        }
    }

    /// The counters in the Prometheus text exposition format (`edgecore_node_*`).
    pub fn to_prometheus(&self) -> String {
        let s = self.snapshot();
        let mut out = String::new();
        let counters = [
            (
                "registrations_sent_total",
                "Node registrations sent.",
                s.registrations_sent,
            ),
            (
                "status_updates_total",
                "Node status patches sent.",
                s.node_status_sent,
            ),
            ("lease_updates_total", "Lease renewals sent.", s.leases_sent),
            (
                "pod_statuses_sent_total",
                "Pod status updates sent.",
                s.pod_statuses_sent,
            ),
            (
                "pod_statuses_coalesced_total",
                "Pod statuses replaced before sending.",
                s.pod_statuses_coalesced,
            ),
            (
                "pod_deletes_sent_total",
                "Final pod deletes sent.",
                s.pod_deletes_sent,
            ),
            (
                "requests_failed_total",
                "Requests the cloud refused.",
                s.requests_failed,
            ),
            (
                "replies_unmatched_total",
                "Replies to no request in flight.",
                s.replies_unmatched,
            ),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(
                out,
                "# HELP edgecore_node_{name} {help}\n# TYPE edgecore_node_{name} counter\n\
                 edgecore_node_{name} {v}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP edgecore_node_pod_reports_waiting Pod reports waiting to be sent.\n\
             # TYPE edgecore_node_pod_reports_waiting gauge\n\
             edgecore_node_pod_reports_waiting {}",
            s.pod_reports_waiting
        );
        out
    }
}
