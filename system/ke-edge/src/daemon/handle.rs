//! [`EdgeCoreHandle`]: what the binary and the simulator read while edgecore runs (status and
//! Prometheus text), over state shared with the tasks.

use std::{
    fmt::Write as _,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
};

use ke_proto::Message;
use tokio::sync::{mpsc, watch};

use crate::{
    devicetwin::TwinMetrics,
    edgehub::{CloudState, EdgeHubMetrics},
    eventbus::broker::BrokerMetrics,
    node::NodeMetrics,
};

/// State the tasks update and the handle reads.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The cloud connection state as EdgeHub publishes it (forwarded, since EdgeHub exists
    /// only once credentials do).
    pub(crate) cloud: watch::Sender<CloudState>,
    /// EdgeHub's counters, once EdgeHub is built.
    pub(crate) hub: OnceLock<Arc<EdgeHubMetrics>>,
    /// The node agent's counters.
    pub(crate) node: Arc<NodeMetrics>,
    /// Pods with a sandbox.
    pub(crate) pods: Arc<AtomicU64>,
    /// The upstream channel, weakly (for its depth; it must not keep the channel open).
    pub(crate) upstream: mpsc::WeakSender<Message>,
    /// Downstream messages routed to MetaManager.
    pub(crate) routed_meta: AtomicU64,
    /// Downstream replies routed to the node agent.
    pub(crate) routed_replies: AtomicU64,
    /// Downstream device messages routed to DeviceTwin.
    pub(crate) routed_twin: AtomicU64,
    /// Downstream device messages dropped (DeviceTwin disabled).
    pub(crate) dropped_twin: AtomicU64,
    /// DeviceTwin's counters.
    pub(crate) twin: Arc<TwinMetrics>,
    /// The embedded MQTT broker's counters, once it listens (`mqttMode` 0 or 1).
    pub(crate) broker: OnceLock<Arc<BrokerMetrics>>,
    /// The node's client TLS configuration, once the hub task has credentials (EdgeStream
    /// dials with it).
    pub(crate) tls: watch::Sender<Option<Arc<rustls::ClientConfig>>>,
}

pub(crate) fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// A snapshot of edgecore's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeCoreStatus {
    /// The cloud accepted the node registration (once true, stays true).
    pub registered: bool,
    /// The cloud connection.
    pub cloud: CloudState,
    /// Pods with a running sandbox.
    pub pods: u64,
    /// Messages waiting in the upstream channel (EdgeHub's own outbox not included).
    pub upstream_queued: usize,
}

/// A handle on a running (or about to run) edgecore: cheap to clone.
#[derive(Debug, Clone)]
pub struct EdgeCoreHandle {
    pub(crate) shared: Arc<Shared>,
}

impl EdgeCoreHandle {
    /// The current state.
    pub fn status(&self) -> EdgeCoreStatus {
        let s = &self.shared;
        EdgeCoreStatus {
            registered: s.node.is_registered(),
            cloud: s.cloud.borrow().clone(),
            pods: s.pods.load(Ordering::Relaxed),
            upstream_queued: self.upstream_queued(),
        }
    }

    /// The cloud connection state, as a watch.
    pub fn cloud(&self) -> watch::Receiver<CloudState> {
        self.shared.cloud.subscribe()
    }

    /// The node agent's counters.
    pub fn node_metrics(&self) -> Arc<NodeMetrics> {
        self.shared.node.clone()
    }

    /// DeviceTwin's counters (zero while it does not run).
    pub fn twin_metrics(&self) -> Arc<TwinMetrics> {
        self.shared.twin.clone()
    }

    /// The embedded MQTT broker's counters, once it listens (`mqttMode` 0 or 1).
    pub fn broker_metrics(&self) -> Option<Arc<BrokerMetrics>> {
        self.shared.broker.get().cloned()
    }

    /// EdgeHub's counters, once EdgeHub runs (after the credentials are there).
    pub fn hub_metrics(&self) -> Option<Arc<EdgeHubMetrics>> {
        self.shared.hub.get().cloned()
    }

    fn upstream_queued(&self) -> usize {
        self.shared
            .upstream
            .upgrade()
            .map_or(0, |tx| tx.max_capacity() - tx.capacity())
    }

    /// Everything in the Prometheus text format: EdgeHub's counters, the node agent's, and
    /// `edgecore_node_registered`, `edgecore_cloud_connected`, `edgecore_pods`,
    /// `edgecore_upstream_queue_depth`, `edgecore_messages_in_total{route}`,
    /// `edgecore_messages_out_total`, and the embedded broker's `edgecore_mqtt_broker_*`
    /// when it runs.
    pub fn to_prometheus(&self) -> String {
        let s = &self.shared;
        let mut out = s.hub.get().map(|h| h.to_prometheus()).unwrap_or_default();
        out.push_str(&s.node.to_prometheus());
        let status = self.status();
        let gauges = [
            (
                "edgecore_node_registered",
                "1 once the cloud accepted the node registration.",
                u64::from(status.registered),
            ),
            (
                "edgecore_cloud_connected",
                "1 while a cloud session is up.",
                u64::from(status.cloud.is_connected()),
            ),
            ("edgecore_pods", "Pods with a running sandbox.", status.pods),
            (
                "edgecore_upstream_queue_depth",
                "Messages waiting in the upstream channel.",
                u64::try_from(status.upstream_queued).unwrap_or(u64::MAX),
            ),
        ];
        for (name, help, v) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP edgecore_messages_in_total Downstream messages by destination.\n\
             # TYPE edgecore_messages_in_total counter\n\
             edgecore_messages_in_total{{route=\"metamanager\"}} {}\n\
             edgecore_messages_in_total{{route=\"node\"}} {}\n\
             edgecore_messages_in_total{{route=\"devicetwin\"}} {}\n\
             edgecore_messages_in_total{{route=\"twin_dropped\"}} {}",
            get(&s.routed_meta),
            get(&s.routed_replies),
            get(&s.routed_twin),
            get(&s.dropped_twin),
        );
        out.push_str(&s.twin.to_prometheus());
        if let Some(broker) = s.broker.get() {
            out.push_str(&broker.to_prometheus());
        }
        let _ = writeln!(
            out,
            "# HELP edgecore_messages_out_total Upstream messages queued by the node agent.\n\
             # TYPE edgecore_messages_out_total counter\n\
             edgecore_messages_out_total {}",
            s.node.snapshot().messages_out
        );
        out
    }
}
