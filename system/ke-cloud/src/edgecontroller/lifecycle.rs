//! Node lifecycle: a node whose session ended and did not come back within the grace period
//! gets `Ready=Unknown` (kube-controller-manager's node lifecycle controller does this in a
//! full cluster; with the embedded API server there is none, and without it `kubectl get
//! nodes` would show a vanished node Ready forever). The edge's next status report after it
//! reconnects sets `Ready=True` again.

use std::{collections::BTreeMap, sync::Arc};

use k8s_openapi::api::core::v1::Node;
use ke_core::Clock;
use kube::{
    Api,
    api::{Patch, PatchParams},
};
use serde_json::json;
use tokio::{
    sync::mpsc,
    time::{Duration, Instant},
};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::metrics::Metrics;
use crate::cloudhub::HubHandle;

/// A session change the lifecycle task hears of.
#[derive(Debug)]
pub(crate) enum Seen {
    Connected(String),
    Disconnected(String),
}

pub(crate) struct Lifecycle {
    pub(crate) client: kube::Client,
    pub(crate) hub: HubHandle,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) grace: Duration,
}

impl Lifecycle {
    /// Runs until `stop`: tracks disconnected nodes and marks those past the grace period.
    pub(crate) async fn run(self, mut rx: mpsc::Receiver<Seen>, stop: CancellationToken) {
        let mut due: BTreeMap<String, Instant> = BTreeMap::new();
        loop {
            let next = due.values().min().copied();
            tokio::select! {
                () = stop.cancelled() => return,
                seen = rx.recv() => match seen {
                    Some(Seen::Connected(n)) => { due.remove(&n); }
                    Some(Seen::Disconnected(n)) => { due.insert(n, Instant::now() + self.grace); }
                    None => return,
                },
                () = sleep_until(next), if next.is_some() => {
                    let now = Instant::now();
                    let expired: Vec<String> = due
                        .iter()
                        .filter(|(_, t)| **t <= now)
                        .map(|(n, _)| n.clone())
                        .collect();
                    for node in expired {
                        due.remove(&node);
                        self.mark_unknown(&node).await;
                    }
                }
            }
        }
    }

    async fn mark_unknown(&self, node: &str) {
        let connected = ke_proto::NodeId::new(node).is_ok_and(|id| self.hub.is_connected(&id));
        if connected {
            return;
        }
        let now = self.clock.now_rfc3339();
        let patch = json!({"status": {"conditions": [{
            "type": "Ready",
            "status": "Unknown",
            "reason": "NodeStatusUnknown",
            "message": "edgecore stopped posting node status (no CloudHub session).",
            "lastTransitionTime": now,
            "lastHeartbeatTime": now,
        }]}});
        let api: Api<Node> = Api::all(self.client.clone());
        self.metrics.api("patch");
        match api
            .patch_status(node, &PatchParams::default(), &Patch::Strategic(&patch))
            .await
        {
            Ok(_) => {
                info!(%node, grace = ?self.grace, "node not connected past the grace period: Ready=Unknown");
                self.metrics.inc(&self.metrics.nodes_marked_unknown);
            }
            Err(kube::Error::Api(ae)) if ae.code == 404 => {}
            Err(e) => warn!(%node, error = %e, "cannot mark the node Ready=Unknown"),
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at).await;
    }
}
