//! Node agent behaviour under a paused tokio clock, with channels standing in for EdgeHub,
//! the router and edged.

use std::{sync::Arc, time::Duration};

use ke_core::FixedClock;
use ke_proto::{Content, Message, Route, SequentialIds};
use serde_json::{Value, json};
use tokio::{
    sync::{mpsc, oneshot, watch},
    task::JoinHandle,
    time::{Instant, timeout},
};

use super::{Error, NodeAgent, NodeConfig, NodeInputs, NodeMetrics};
use crate::{
    edged::{PodReport, PodStatusReport},
    edgehub::CloudState,
    metamanager::MetaStore,
};

struct Harness {
    cloud: watch::Sender<CloudState>,
    replies: mpsc::Sender<Message>,
    reports: mpsc::Sender<PodReport>,
    up: mpsc::Receiver<Message>,
    metrics: Arc<NodeMetrics>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), Error>>,
}

fn store_with_pod() -> MetaStore {
    let store = MetaStore::open_in_memory().unwrap();
    let pod = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "a", "namespace": "default", "uid": "uid-a", "resourceVersion": "7"},
        "spec": {"nodeName": "edge-1"}});
    let route = Route::new("edgecontroller", "resource", "insert", "default/pod/a");
    let msg = Message::new("m1", 0, route, pod).with_resource_version("7");
    store.apply(&msg).unwrap();
    store
}

/// Starts an agent for `edge-1` whose upstream channel holds `upstream_max` messages.
fn start(upstream_max: usize) -> Harness {
    let cfg = NodeConfig::new(ke_proto::NodeId::new("edge-1").unwrap());
    let clock = Arc::new(FixedClock::new(1_700_000_000));
    let agent = NodeAgent::new(
        cfg,
        store_with_pod(),
        clock,
        Box::new(SequentialIds::new("n")),
    );
    let metrics = agent.metrics();
    let (cloud, cloud_rx) = watch::channel(CloudState::Connecting);
    let (replies, replies_rx) = mpsc::channel(8);
    let (reports, reports_rx) = mpsc::channel(8);
    let (up_tx, up) = mpsc::channel(upstream_max);
    let (stop, stop_rx) = oneshot::channel();
    let inputs = NodeInputs {
        cloud: cloud_rx,
        replies: replies_rx,
        reports: reports_rx,
    };
    let task = tokio::spawn(agent.run(inputs, up_tx, async {
        let _ = stop_rx.await;
    }));
    Harness {
        cloud,
        replies,
        reports,
        up,
        metrics,
        stop: Some(stop),
        task,
    }
}

impl Harness {
    async fn next(&mut self) -> Message {
        timeout(Duration::from_secs(60), self.up.recv())
            .await
            .expect("a message within a minute")
            .expect("upstream open")
    }

    /// Nothing is sent within `d`.
    async fn quiet_for(&mut self, d: Duration) {
        if let Ok(msg) = timeout(d, self.up.recv()).await {
            panic!("unexpected message {msg:?}");
        }
    }

    fn connect(&self) {
        self.cloud.send_replace(CloudState::Connected);
    }

    fn disconnect(&self) {
        self.cloud.send_replace(CloudState::Disconnected {
            reason: "test".into(),
        });
    }

    async fn reply(&self, to: &Message, content: Content) {
        let route = Route::new("edgecontroller", "resource", "response", &to.route.resource);
        let msg = Message::new(format!("re-{}", to.header.id), 0, route, content)
            .with_parent(to.header.id.clone());
        self.replies.send(msg).await.unwrap();
    }

    /// Connects and answers the registration; returns after the inventory and registration.
    async fn connect_and_register(&mut self) {
        self.connect();
        assert_eq!(self.next().await.route.resource, "null/inventory/edge-1");
        let reg = self.next().await;
        assert_eq!(reg.route.resource, "null/node/edge-1");
        self.reply(&reg, Content::object_reply(reg.content.value().clone()))
            .await;
    }

    async fn stop(mut self) {
        let _ = self.stop.take().map(|s| s.send(()));
        self.task.await.unwrap().unwrap();
    }
}

fn status(name: &str, phase: &str) -> PodReport {
    PodReport::Status(PodStatusReport {
        namespace: "default".into(),
        name: name.into(),
        uid: format!("uid-{name}"),
        status: json!({"phase": phase}),
    })
}

/// Goal: on connect the inventory goes first, then the registration; the reply marks the node
/// registered and starts status patches and leases at once, then every 10 s. Method: paused
/// clock; read the upstream channel and check contents and spacing.
#[tokio::test(start_paused = true)]
async fn registration_then_status_and_lease_cadence() {
    let mut h = start(16);
    h.quiet_for(Duration::from_secs(30)).await;
    h.connect();
    let inv = h.next().await;
    assert_eq!(inv.route.operation.as_str(), "insert");
    assert_eq!(inv.content.value()["objects"]["default/pod/a"]["rv"], "7");
    let reg = h.next().await;
    assert_eq!(
        (reg.route.source.as_str(), reg.route.group.as_str()),
        ("edged", "resource")
    );
    assert_eq!(reg.route.operation.as_str(), "insert");
    assert_eq!(reg.content.value()["kind"], "Node");
    assert_eq!(
        reg.content.value()["status"]["nodeInfo"]["containerRuntimeVersion"],
        "process://"
    );
    h.quiet_for(Duration::from_secs(5)).await;
    assert!(!h.metrics.is_registered());

    h.reply(&reg, Content::object_reply(reg.content.value().clone()))
        .await;
    let patch = h.next().await;
    let t0 = Instant::now();
    assert_eq!(patch.route.operation.as_str(), "patch");
    assert_eq!(patch.route.resource, "null/nodepatch/edge-1");
    let body: Value = serde_json::from_str(patch.content.as_str().expect("a JSON string")).unwrap();
    let ready = &body["status"]["conditions"][0];
    assert_eq!(
        (&ready["type"], &ready["reason"]),
        (&json!("Ready"), &json!("KubeletReady"))
    );
    assert_eq!(ready["lastTransitionTime"], "2023-11-14T22:13:20Z");
    let lease = h.next().await;
    assert_eq!(lease.route.operation.as_str(), "update");
    assert_eq!(lease.route.resource, "kube-node-lease/lease/edge-1");
    assert_eq!(
        lease.content.value()["spec"]["renewTime"],
        "2023-11-14T22:13:20.000000Z"
    );
    assert_eq!(lease.content.value()["spec"]["leaseDurationSeconds"], 40);
    assert!(h.metrics.is_registered());

    let mut kinds = Vec::new();
    for _ in 0..4 {
        let m = h.next().await;
        kinds.push((
            m.route.operation.as_str().to_owned(),
            t0.elapsed().as_secs(),
        ));
    }
    kinds.sort();
    let want = [("patch", 10), ("patch", 20), ("update", 10), ("update", 20)];
    let want: Vec<(String, u64)> = want.iter().map(|(o, s)| ((*o).to_owned(), *s)).collect();
    assert_eq!(kinds, want);
    h.stop().await;
}

/// Goal: while disconnected no node status or lease goes out; a reconnect sends the inventory
/// and registration again. Method: register, disconnect, wait a minute, reconnect.
#[tokio::test(start_paused = true)]
async fn nothing_while_disconnected_and_reregisters() {
    let mut h = start(16);
    h.connect_and_register().await;
    h.next().await;
    h.next().await;
    h.disconnect();
    h.quiet_for(Duration::from_secs(60)).await;
    assert!(h.metrics.is_registered(), "registration is remembered");
    h.connect();
    assert_eq!(h.next().await.route.resource, "null/inventory/edge-1");
    assert_eq!(h.next().await.route.resource, "null/node/edge-1");
    assert_eq!(h.metrics.snapshot().registrations_sent, 2);
    h.stop().await;
}

/// Goal: pod statuses coalesce per pod while disconnected and go after reconnecting, the
/// latest of each pod once; a pod ready for removal gets the final delete instead of its
/// status. Method: report while disconnected, connect, drain.
#[tokio::test(start_paused = true)]
async fn pod_statuses_coalesce_while_disconnected() {
    let mut h = start(1);
    for phase in ["Pending", "Running", "Failed"] {
        h.reports.send(status("a", phase)).await.unwrap();
    }
    h.reports.send(status("b", "Running")).await.unwrap();
    h.reports.send(status("c", "Running")).await.unwrap();
    h.reports
        .send(PodReport::ReadyForRemoval {
            namespace: "default".into(),
            name: "c".into(),
            uid: "uid-c".into(),
        })
        .await
        .unwrap();
    h.quiet_for(Duration::from_secs(30)).await;
    assert_eq!(h.metrics.snapshot().pod_reports_waiting, 3);
    h.connect();
    h.next().await; // inventory
    h.next().await; // registration
    let del = h.next().await;
    assert_eq!(
        (del.route.operation.as_str(), del.route.resource.as_str()),
        ("delete", "default/pod/c")
    );
    assert_eq!(del.content.value()["preconditions"]["uid"], "uid-c");
    assert_eq!(del.content.value()["gracePeriodSeconds"], 0);
    let a = h.next().await;
    assert_eq!(a.route.resource, "default/podstatus/a");
    assert_eq!(a.route.operation.as_str(), "update");
    assert_eq!(a.content.value()["Status"]["phase"], "Failed");
    assert_eq!(a.content.value()["UID"], "uid-a");
    assert_eq!(h.next().await.route.resource, "default/podstatus/b");
    h.quiet_for(Duration::from_secs(5)).await;
    let s = h.metrics.snapshot();
    assert_eq!((s.pod_statuses_coalesced, s.pod_statuses_sent), (2, 2));
    assert_eq!(s.pod_reports_waiting, 0);
    h.stop().await;
}

/// Goal: a refused registration is retried; `AlreadyExists` counts as registered; a lease the
/// cloud does not have is created with `insert`. Method: answer with errors, watch the resends.
#[tokio::test(start_paused = true)]
async fn registration_retry_and_lease_creation() {
    let mut h = start(16);
    h.connect();
    h.next().await;
    let reg = h.next().await;
    h.reply(&reg, Content::text("node admission refused")).await;
    let t0 = Instant::now();
    let again = h.next().await;
    assert_eq!(again.route.resource, "null/node/edge-1");
    assert_eq!(t0.elapsed(), Duration::from_secs(10));
    assert!(!h.metrics.is_registered());
    let exists = json!({"Object": null, "Err": {"ErrStatus": {"reason": "AlreadyExists"}}});
    h.reply(&again, Content::new(exists)).await;
    h.next().await; // status patch
    let lease = h.next().await;
    assert!(h.metrics.is_registered());
    let missing = json!({"Object": null, "Err": {"ErrStatus": {"reason": "NotFound"}}});
    h.reply(&lease, Content::new(missing)).await;
    let create = h.next().await;
    assert_eq!(create.route.operation.as_str(), "insert");
    assert_eq!(create.route.resource, "kube-node-lease/lease/edge-1");
    assert_eq!(h.metrics.snapshot().requests_failed, 2);
    h.stop().await;
}
