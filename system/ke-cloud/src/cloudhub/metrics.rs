//! CloudHub's metrics: counters kept in the hub (no global registry), gauges read from the
//! queues on demand, and the ACK latency histogram; rendered as Prometheus text by
//! [`MetricsSnapshot::to_prometheus`].

use std::{
    fmt::Write as _,
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

/// Upper bounds (seconds) of the ACK latency histogram buckets; `+Inf` is implied.
pub const ACK_LATENCY_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Why a connection was refused before the upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    BadRequest,
    Forbidden,
    NodeLimit,
    Handshake,
    Overload,
}

/// Live counters, shared by every session.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) messages_in: AtomicU64,
    pub(crate) messages_out: AtomicU64,
    pub(crate) resends: AtomicU64,
    pub(crate) acks: AtomicU64,
    pub(crate) ack_timeouts: AtomicU64,
    pub(crate) malformed_frames: AtomicU64,
    pub(crate) oversized_frames: AtomicU64,
    pub(crate) keepalive_timeouts: AtomicU64,
    pub(crate) sessions_replaced: AtomicU64,
    pub(crate) send_rejected: AtomicU64,
    pub(crate) events_dropped: AtomicU64,
    pub(crate) upstream_held: AtomicU64,
    pub(crate) queues_evicted: AtomicU64,
    refused: [AtomicU64; 5],
    latency_buckets: [AtomicU64; ACK_LATENCY_BUCKETS.len() + 1],
    latency_sum_micros: AtomicU64,
}

pub(crate) fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

pub(crate) fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

impl Counters {
    pub(crate) fn refused(&self, why: Refusal) {
        inc(&self.refused[why as usize]);
    }

    pub(crate) fn observe_ack(&self, latency: Duration) {
        inc(&self.acks);
        let secs = latency.as_secs_f64();
        let bucket = ACK_LATENCY_BUCKETS
            .iter()
            .position(|le| secs <= *le)
            .unwrap_or(ACK_LATENCY_BUCKETS.len());
        inc(&self.latency_buckets[bucket]);
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        add(&self.latency_sum_micros, micros);
    }

    pub(crate) fn snapshot(&self, gauges: Gauges) -> MetricsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        MetricsSnapshot {
            connected_nodes: gauges.connected_nodes,
            node_queues: gauges.node_queues,
            ack_queue_depth: gauges.ack_queue_depth,
            noack_queue_depth: gauges.noack_queue_depth,
            inflight: gauges.inflight,
            messages_in: get(&self.messages_in),
            messages_out: get(&self.messages_out),
            resends: get(&self.resends),
            acks: get(&self.acks),
            ack_timeouts: get(&self.ack_timeouts),
            malformed_frames: get(&self.malformed_frames),
            oversized_frames: get(&self.oversized_frames),
            keepalive_timeouts: get(&self.keepalive_timeouts),
            sessions_replaced: get(&self.sessions_replaced),
            send_rejected: get(&self.send_rejected),
            events_dropped: get(&self.events_dropped),
            upstream_held: get(&self.upstream_held),
            queues_evicted: get(&self.queues_evicted),
            refused_bad_request: get(&self.refused[Refusal::BadRequest as usize]),
            refused_forbidden: get(&self.refused[Refusal::Forbidden as usize]),
            refused_node_limit: get(&self.refused[Refusal::NodeLimit as usize]),
            refused_handshake: get(&self.refused[Refusal::Handshake as usize]),
            refused_overload: get(&self.refused[Refusal::Overload as usize]),
            ack_latency_buckets: self.latency_buckets.iter().map(get).collect(),
            ack_latency_sum: Duration::from_micros(get(&self.latency_sum_micros)),
        }
    }
}

/// Gauges computed from the hub state under its lock.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Gauges {
    pub(crate) connected_nodes: usize,
    pub(crate) node_queues: usize,
    pub(crate) ack_queue_depth: usize,
    pub(crate) noack_queue_depth: usize,
    pub(crate) inflight: usize,
}

/// A point-in-time copy of every CloudHub metric.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsSnapshot {
    /// Nodes with a session.
    pub connected_nodes: usize,
    /// Node queues held (connected and offline nodes).
    pub node_queues: usize,
    /// Objects in all ACK stores (queued, in flight or backing off).
    pub ack_queue_depth: usize,
    /// Messages in all no-ACK queues.
    pub noack_queue_depth: usize,
    /// ACK-mode messages sent and not yet ACKed.
    pub inflight: usize,
    /// Upstream frames decoded (keepalives and ACKs included).
    pub messages_in: u64,
    /// Downstream frames written (resends included).
    pub messages_out: u64,
    /// Resends of un-ACKed messages.
    pub resends: u64,
    /// ACKs matched to a queued message.
    pub acks: u64,
    /// Messages whose sends ran out and were re-queued with backoff.
    pub ack_timeouts: u64,
    /// Upstream frames that did not decode.
    pub malformed_frames: u64,
    /// Upstream frames over the size limit (each closed its session).
    pub oversized_frames: u64,
    /// Sessions ended for lack of keepalives.
    pub keepalive_timeouts: u64,
    /// Sessions replaced by a newer connection of the same node.
    pub sessions_replaced: u64,
    /// [`super::HubHandle::send`] calls refused.
    pub send_rejected: u64,
    /// Events dropped because the event channel was full.
    pub events_dropped: u64,
    /// Upstream messages a session had to hold because EdgeController's channel was full.
    pub upstream_held: u64,
    /// Offline node queues evicted to make room.
    pub queues_evicted: u64,
    /// Upgrades refused for bad headers (400).
    pub refused_bad_request: u64,
    /// Upgrades refused by node authorization (403).
    pub refused_forbidden: u64,
    /// Upgrades refused by the node limit (503).
    pub refused_node_limit: u64,
    /// Connections that failed or timed out in the TLS/WebSocket handshake.
    pub refused_handshake: u64,
    /// Connections dropped because too many handshakes were in progress.
    pub refused_overload: u64,
    /// ACK latency counts per bucket of [`ACK_LATENCY_BUCKETS`], plus the `+Inf` bucket (not
    /// cumulative).
    pub ack_latency_buckets: Vec<u64>,
    /// Sum of all ACK latencies.
    pub ack_latency_sum: Duration,
}

impl MetricsSnapshot {
    /// The snapshot in the Prometheus text exposition format.
    pub fn to_prometheus(&self) -> String {
        let mut s = String::new();
        let gauges = [
            (
                "cloudhub_connected_nodes",
                "Nodes with a session.",
                self.connected_nodes,
            ),
            (
                "cloudhub_node_queues",
                "Node queues held.",
                self.node_queues,
            ),
            (
                "cloudhub_inflight_messages",
                "Sent, not yet ACKed.",
                self.inflight,
            ),
        ];
        for (name, help, v) in gauges {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
        let _ = writeln!(
            s,
            "# HELP cloudhub_queue_depth Queued downstream entries.\n\
             # TYPE cloudhub_queue_depth gauge\n\
             cloudhub_queue_depth{{queue=\"ack\"}} {}\n\
             cloudhub_queue_depth{{queue=\"noack\"}} {}",
            self.ack_queue_depth, self.noack_queue_depth
        );
        self.write_counters(&mut s);
        self.write_histogram(&mut s);
        s
    }

    fn write_counters(&self, s: &mut String) {
        let mut counter = |name: &str, help: &str, v: u64| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        };
        counter(
            "cloudhub_messages_in_total",
            "Upstream frames decoded.",
            self.messages_in,
        );
        counter(
            "cloudhub_messages_out_total",
            "Downstream frames written.",
            self.messages_out,
        );
        counter(
            "cloudhub_resends_total",
            "Resends of un-ACKed messages.",
            self.resends,
        );
        counter("cloudhub_acks_total", "ACKs received.", self.acks);
        let (name, v) = ("cloudhub_ack_timeouts_total", self.ack_timeouts);
        counter(name, "Messages re-queued after their last send.", v);
        let (name, v) = ("cloudhub_malformed_frames_total", self.malformed_frames);
        counter(name, "Upstream frames that did not decode.", v);
        let (name, v) = ("cloudhub_oversized_frames_total", self.oversized_frames);
        counter(name, "Upstream frames over the size limit.", v);
        let (name, v) = ("cloudhub_keepalive_timeouts_total", self.keepalive_timeouts);
        counter(name, "Sessions ended without keepalive.", v);
        let (name, v) = ("cloudhub_sessions_replaced_total", self.sessions_replaced);
        counter(name, "Sessions replaced by a newer one.", v);
        counter(
            "cloudhub_send_rejected_total",
            "Downstream sends refused.",
            self.send_rejected,
        );
        counter(
            "cloudhub_events_dropped_total",
            "Session events dropped.",
            self.events_dropped,
        );
        counter(
            "cloudhub_upstream_held_total",
            "Upstream messages held while EdgeController's channel was full.",
            self.upstream_held,
        );
        let (name, v) = ("cloudhub_queues_evicted_total", self.queues_evicted);
        counter(name, "Offline node queues evicted.", v);
        let name = "cloudhub_refused_connections_total";
        let _ = writeln!(
            s,
            "# HELP {name} Connections refused.\n# TYPE {name} counter"
        );
        for (reason, v) in [
            ("bad_request", self.refused_bad_request),
            ("forbidden", self.refused_forbidden),
            ("node_limit", self.refused_node_limit),
            ("handshake", self.refused_handshake),
            ("overload", self.refused_overload),
        ] {
            let _ = writeln!(s, "{name}{{reason=\"{reason}\"}} {v}");
        }
    }

    fn write_histogram(&self, s: &mut String) {
        let name = "cloudhub_ack_latency_seconds";
        let _ = writeln!(
            s,
            "# HELP {name} Time from first send to ACK.\n# TYPE {name} histogram"
        );
        let mut cumulative = 0u64;
        for (i, count) in self.ack_latency_buckets.iter().enumerate() {
            cumulative += count;
            match ACK_LATENCY_BUCKETS.get(i) {
                Some(le) => {
                    let _ = writeln!(s, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
                }
                None => {
                    let _ = writeln!(s, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
                }
            }
        }
        let _ = writeln!(s, "{name}_sum {}", self.ack_latency_sum.as_secs_f64());
        let _ = writeln!(s, "{name}_count {cumulative}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: the histogram lands latencies in the right buckets and renders cumulatively.
    /// Method: observe 3 ms, 3 ms and 40 s, render, and check the bucket lines.
    #[test]
    fn ack_latency_histogram() {
        let c = Counters::default();
        c.observe_ack(Duration::from_millis(3));
        c.observe_ack(Duration::from_millis(3));
        c.observe_ack(Duration::from_secs(40));
        let text = c.snapshot(Gauges::default()).to_prometheus();
        assert!(text.contains("cloudhub_ack_latency_seconds_bucket{le=\"0.005\"} 2"));
        assert!(text.contains("cloudhub_ack_latency_seconds_bucket{le=\"30\"} 2"));
        assert!(text.contains("cloudhub_ack_latency_seconds_bucket{le=\"+Inf\"} 3"));
        assert!(text.contains("cloudhub_ack_latency_seconds_count 3"));
        assert!(text.contains("cloudhub_acks_total 3"));
    }
}
