//! Per-node delivery state and the incremental resync.
//!
//! For every node with a session the controller keeps `held`: what it believes the edge
//! stores (edge key → UID and resourceVersion). After a connect it waits for the edge's
//! [`Inventory`] (at most `inventory_wait`; a stock KubeEdge edgecore sends none, and then
//! `held` starts empty, which means "send everything"), sets `held` from it and sends only the
//! difference between `held` and what the node should hold: missing or changed objects, and
//! deletes for objects it should no longer hold. Afterwards every watch event for one of the
//! node's objects is compared with `held` the same way, so relists and repeated events send
//! nothing. Nothing here writes to the API server: the edge's copy is the sync record, and it
//! is committed before the edge ACKs.
//!
//! Devices and device models (with device support) travel the same way, sent by source
//! `devicecontroller`; referenced objects (configmaps, secrets, device models) always go
//! before the pods and devices that need them. Device membership changes are sent as
//! `membership` messages (group `twin`, no ACK) to nodes with a session.

use std::{
    collections::{BTreeMap, VecDeque},
    sync::Arc,
};

use ke_core::{Clock, Entropy};
use ke_proto::{
    Content, Group, Message, NodeId, Operation, Route, Source,
    inventory::{Inventory, RELEASED_ANNOTATION},
    twin::{MemberDevice, MembershipUpdate},
};
use serde_json::{Value, json};
use tokio::time::{Duration, Instant};
use tracing::{debug, info, warn};

use super::{
    index::{Index, Kind, Stored, edge_key},
    metrics::Metrics,
};
use crate::cloudhub::HubHandle;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Connected; waiting for the inventory until the deadline.
    Awaiting { deadline: Instant },
    /// The inventory arrived before the index finished its first list: reconcile when it
    /// has (reconciling against a partial index would delete the edge's live objects).
    Inventoried,
    /// Resynced; live changes flow.
    Live,
}

#[derive(Debug)]
struct NodeSync {
    session: u64,
    phase: Phase,
    /// Edge key → what the edge holds (as far as the controller knows).
    held: BTreeMap<String, Holding>,
    /// Edge key → when the edge is told to drop it: referenced objects no pod or device of
    /// the node needs any more, kept for `release_delay` in case one comes back.
    releasing: BTreeMap<String, Instant>,
}

/// One object as the edge holds it.
#[derive(Debug, Clone)]
struct Holding {
    uid: String,
    rv: String,
    /// The [`Stored::desired_rv`] of what was sent (empty when the holding came from an
    /// inventory): the edge's copy is current while the cloud's has the same.
    desired_rv: String,
    /// For a pod reported in an inventory: the digest of its desired content
    /// ([`ke_proto::desired`]), to recognise a pod that only missed status echoes.
    digest: Option<String>,
}

impl Holding {
    /// True if the edge's copy is current for `s`: the same version, or one the cloud
    /// skipped only status changes since, or (after an inventory) the same desired content.
    fn current_for(&self, kind: Kind, s: &Stored) -> bool {
        s.current_at(&self.uid, &self.rv)
            || (self.uid == s.uid && !self.desired_rv.is_empty() && self.desired_rv == s.desired_rv)
            || (kind == Kind::Pod
                && self.uid == s.uid
                && self
                    .digest
                    .as_ref()
                    .is_some_and(|d| *d == ke_proto::desired::desired_digest(&s.json.parsed())))
    }
}

/// One object change to deliver to a node.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target<'a> {
    pub(crate) kind: Kind,
    pub(crate) namespace: &'a str,
    pub(crate) name: &'a str,
}

/// The delivery side of the controller.
pub(crate) struct Sync {
    hub: HubHandle,
    clock: Arc<dyn Clock>,
    entropy: Entropy,
    metrics: Arc<Metrics>,
    inventory_wait: Duration,
    release_delay: Duration,
    /// Release deadlines in order (node, edge key); an entry whose node no longer has it at
    /// that deadline in `releasing` was cancelled.
    release_queue: VecDeque<(Instant, String, String)>,
    nodes: BTreeMap<String, NodeSync>,
    /// Inventory deadlines of the nodes still awaiting one (kept apart so finding the next
    /// deadline does not scan every node on every event).
    awaiting: BTreeMap<String, Instant>,
    /// The index holds every pod, configmap and secret (each watch finished its first list).
    index_ready: bool,
    /// Device support: device keys in inventories are managed (else left alone).
    devices: bool,
}

impl Sync {
    pub(crate) fn new(
        hub: HubHandle,
        clock: Arc<dyn Clock>,
        entropy: Entropy,
        metrics: Arc<Metrics>,
        inventory_wait: Duration,
        release_delay: Duration,
        devices: bool,
    ) -> Self {
        Self {
            hub,
            clock,
            entropy,
            metrics,
            inventory_wait,
            release_delay,
            release_queue: VecDeque::new(),
            nodes: BTreeMap::new(),
            awaiting: BTreeMap::new(),
            index_ready: false,
            devices,
        }
    }

    /// The index finished its first list of every kind: nodes whose inventory arrived
    /// meanwhile are reconciled now. Until then nothing is reconciled or expired.
    pub(crate) fn index_ready(&mut self, index: &Index) {
        if self.index_ready {
            return;
        }
        self.index_ready = true;
        let waiting: Vec<String> = self
            .nodes
            .iter()
            .filter(|(_, s)| s.phase == Phase::Inventoried)
            .map(|(n, _)| n.clone())
            .collect();
        info!(
            nodes = waiting.len(),
            "index complete; resyncing waiting nodes"
        );
        for node in waiting {
            if let Some(s) = self.nodes.get_mut(&node) {
                s.phase = Phase::Live;
            }
            self.reconcile(&node, index);
        }
    }

    /// A session started: wait for its inventory.
    pub(crate) fn connected(&mut self, node: &str, session: u64) {
        let deadline = Instant::now() + self.inventory_wait;
        let state = NodeSync {
            session,
            phase: Phase::Awaiting { deadline },
            held: BTreeMap::new(),
            releasing: BTreeMap::new(),
        };
        if let Some(old) = self.nodes.insert(node.to_owned(), state) {
            self.forget_releases(&old);
        }
        self.awaiting.insert(node.to_owned(), deadline);
    }

    /// A node's state is gone with its pending releases (the next resync releases at once).
    fn forget_releases(&self, old: &NodeSync) {
        let n = old.releasing.len() as u64;
        if n > 0 {
            self.metrics.sub(&self.metrics.pending_releases, n);
        }
    }

    /// A session ended (ignored if a newer one already started).
    pub(crate) fn disconnected(&mut self, node: &str, session: u64) {
        if self.nodes.get(node).is_some_and(|s| s.session == session) {
            if let Some(old) = self.nodes.remove(node) {
                self.forget_releases(&old);
            }
            self.awaiting.remove(node);
        }
    }

    /// The earliest inventory deadline, if any node is waiting.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        if !self.index_ready {
            return None;
        }
        let inventory = self.awaiting.values().min().copied();
        let release = self.release_queue.front().map(|(at, _, _)| *at);
        match (inventory, release) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Nodes whose inventory did not come in time get everything (a stock edgecore).
    pub(crate) fn expire(&mut self, index: &Index) {
        if !self.index_ready {
            return;
        }
        let now = Instant::now();
        let late: Vec<String> = self
            .awaiting
            .iter()
            .filter(|(_, deadline)| **deadline <= now)
            .map(|(n, _)| n.clone())
            .collect();
        for node in late {
            self.awaiting.remove(&node);
            info!(%node, "no inventory from the edge; sending everything");
            self.metrics.inc(&self.metrics.inventory_timeouts);
            if let Some(s) = self.nodes.get_mut(&node) {
                s.phase = Phase::Live;
                s.held.clear();
            }
            self.reconcile(&node, index);
        }
        self.release_due(now, index);
    }

    /// Sends the releases whose delay ran out and that nothing re-referenced meanwhile.
    fn release_due(&mut self, now: Instant, index: &Index) {
        while let Some((at, _, _)) = self.release_queue.front() {
            if *at > now {
                break;
            }
            let Some((at, node, key)) = self.release_queue.pop_front() else {
                break;
            };
            let Some(state) = self.nodes.get_mut(&node) else {
                continue;
            };
            if state.releasing.get(&key) != Some(&at) {
                continue;
            }
            state.releasing.remove(&key);
            self.metrics.sub(&self.metrics.pending_releases, 1);
            let Some((kind, ns, name)) = split_key(&key) else {
                continue;
            };
            let r = (kind, ns.to_owned(), name.to_owned());
            if index.node_references(&node, &r) {
                continue;
            }
            // Still in the cluster: released (no tombstone); gone meanwhile: deleted.
            let exists = index
                .objects(kind)
                .is_some_and(|m| m.contains_key(&(r.1.clone(), r.2.clone())));
            let t = Target {
                kind,
                namespace: ns,
                name,
            };
            self.deliver(&node, t, None, exists);
        }
    }

    /// The edge's inventory arrived: resync the node.
    pub(crate) fn inventory(&mut self, node: &str, inv: Inventory, index: &Index) {
        let Some(state) = self.nodes.get_mut(node) else {
            debug!(%node, "inventory from a node without a session; ignored");
            return;
        };
        self.awaiting.remove(node);
        let devices = self.devices;
        state.held = inv
            .objects
            .into_iter()
            .filter(|(key, _)| managed(key, devices))
            .map(|(key, h)| {
                let held = Holding {
                    uid: h.uid,
                    rv: h.rv,
                    desired_rv: String::new(),
                    digest: h.digest,
                };
                (key, held)
            })
            .collect();
        self.metrics.inc(&self.metrics.inventories);
        if !self.index_ready {
            state.phase = Phase::Inventoried;
            debug!(%node, "inventory kept until the index is complete");
            return;
        }
        state.phase = Phase::Live;
        self.reconcile(node, index);
    }

    /// Sends `node` the difference between what it holds and what it should hold.
    fn reconcile(&mut self, node: &str, index: &Index) {
        let wanted = index.wanted(node);
        let held_keys: Vec<String> = match self.nodes.get(node) {
            Some(s) => s.held.keys().cloned().collect(),
            None => return,
        };
        let (mut sent, mut skipped, mut deleted) = (0u64, 0u64, 0u64);
        // What pods and devices reference first, so an edge never holds a dangling reference.
        let referenced = wanted.values().filter(|w| !w.kind.is_bound());
        for w in referenced.chain(wanted.values().filter(|w| w.kind.is_bound())) {
            let t = Target {
                kind: w.kind,
                namespace: &w.namespace,
                name: &w.name,
            };
            match self.deliver(node, t, Some(&w.stored), false) {
                Outcome::Sent => sent += 1,
                Outcome::Skipped => skipped += 1,
                Outcome::Deleted | Outcome::NotSent => {}
            }
        }
        for key in held_keys.iter().filter(|k| !wanted.contains_key(*k)) {
            let Some((kind, ns, name)) = split_key(key) else {
                continue;
            };
            // Still in the cluster but no longer the node's: released, not deleted.
            let exists = index
                .objects(kind)
                .is_some_and(|m| m.contains_key(&(ns.to_owned(), name.to_owned())));
            let t = Target {
                kind,
                namespace: ns,
                name,
            };
            if self.deliver(node, t, None, exists) == Outcome::Deleted {
                deleted += 1;
            }
        }
        let m = &self.metrics;
        m.add(&m.resync_sent, sent);
        m.add(&m.resync_skipped, skipped);
        m.add(&m.resync_deleted, deleted);
        info!(%node, sent, skipped, deleted, "resynced");
    }

    /// A watch event for one of `node`'s objects (`None`: it was deleted).
    pub(crate) fn changed(&mut self, node: &str, t: Target<'_>, obj: Option<&Stored>) {
        if self.nodes.get(node).is_some_and(|s| s.phase == Phase::Live) {
            self.deliver(node, t, obj, false);
        }
    }

    /// A configmap or secret the node's pods no longer reference: after `release_delay`
    /// (unless a pod references it again meanwhile, as when a rolling update deletes a pod
    /// before creating its replacement) the edge drops its copy (a delete marked
    /// [`RELEASED_ANNOTATION`], which leaves no tombstone).
    pub(crate) fn released(&mut self, node: &str, t: Target<'_>) {
        let Some(state) = self.nodes.get_mut(node).filter(|s| s.phase == Phase::Live) else {
            return;
        };
        if self.release_delay.is_zero() {
            self.deliver(node, t, None, true);
            return;
        }
        let key = edge_key(t.kind, t.namespace, t.name);
        if !state.held.contains_key(&key) {
            return;
        }
        let at = Instant::now() + self.release_delay;
        if state.releasing.insert(key.clone(), at).is_none() {
            self.metrics.inc(&self.metrics.pending_releases);
        }
        self.release_queue.push_back((at, node.to_owned(), key));
    }

    /// Sends the object (or its delete, or release) unless the edge already holds exactly
    /// that.
    fn deliver(
        &mut self,
        node: &str,
        t: Target<'_>,
        obj: Option<&Stored>,
        release: bool,
    ) -> Outcome {
        let key = edge_key(t.kind, t.namespace, t.name);
        let Some(state) = self.nodes.get_mut(node) else {
            return Outcome::NotSent;
        };
        // Whatever happens to the object now supersedes a pending release.
        if state.releasing.remove(&key).is_some() {
            self.metrics.sub(&self.metrics.pending_releases, 1);
        }
        let Some(state) = self.nodes.get(node) else {
            return Outcome::NotSent;
        };
        let held = state.held.get(&key);
        let (msg, next) = match (obj, held) {
            (Some(s), Some(h)) if h.current_for(t.kind, s) => {
                if h.desired_rv != s.desired_rv {
                    // Current by content: from now on by version (no digest per event).
                    let h = Holding {
                        uid: h.uid.clone(),
                        rv: h.rv.clone(),
                        desired_rv: s.desired_rv.clone(),
                        digest: None,
                    };
                    if let Some(state) = self.nodes.get_mut(node) {
                        state.held.insert(key, h);
                    }
                }
                return Outcome::Skipped;
            }
            (Some(s), held) => {
                let op = match (t.kind, held) {
                    (Kind::Secret, _) | (_, Some(_)) => Operation::Update,
                    (_, None) => Operation::Insert,
                };
                // Pods, configmaps and secrets are held as text: a copy of it.
                let content = (*s.json).clone();
                let msg = self.message(t.kind, op, &key, content, &s.rv);
                let h = Holding {
                    uid: s.uid.clone(),
                    rv: s.rv.clone(),
                    desired_rv: s.desired_rv.clone(),
                    digest: None,
                };
                (msg, Some(h))
            }
            (None, Some(h)) => {
                let stub = delete_stub(t, &h.uid, release);
                let msg = self.message(t.kind, Operation::Delete, &key, Content::new(stub), &h.rv);
                (msg, None)
            }
            (None, None) => return Outcome::Skipped,
        };
        let deleting = next.is_none();
        if !self.send(node, msg) {
            return Outcome::NotSent;
        }
        if let Some(state) = self.nodes.get_mut(node) {
            match next {
                Some(v) => state.held.insert(key, v),
                None => state.held.remove(&key),
            };
        }
        if deleting {
            Outcome::Deleted
        } else {
            Outcome::Sent
        }
    }

    fn message(&self, kind: Kind, op: Operation, key: &str, content: Content, rv: &str) -> Message {
        let source = if kind.is_device() {
            Source::DeviceController
        } else {
            Source::EdgeController
        };
        let route = Route::new(source, Group::Resource, op, key);
        Message::new(
            self.entropy.uuid_v4(),
            self.clock.now_millis(),
            route,
            content,
        )
        .with_resource_version(rv)
    }

    /// Tells a node with a session that a device joined (`added`) or left it: a `membership`
    /// message (KubeEdge's `deviceAdded`/`deviceDeleted`), for stock KubeEdge edges.
    pub(crate) fn membership(&self, node: &str, added: bool, device: MemberDevice) {
        if !self.nodes.contains_key(node) {
            return;
        }
        let mut update = MembershipUpdate {
            event_id: self.entropy.uuid_v4(),
            timestamp: self.clock.now_millis(),
            ..MembershipUpdate::default()
        };
        if added {
            update.added_devices = Some(vec![device]);
        } else {
            update.removed_devices = Some(vec![device]);
        }
        let route = Route::new(
            Source::DeviceController,
            Group::Twin,
            Operation::Update,
            "membership",
        );
        let content = serde_json::to_value(&update).unwrap_or(Value::Null);
        let msg = Message::new(
            self.entropy.uuid_v4(),
            self.clock.now_millis(),
            route,
            Content::new(content),
        );
        self.send(node, msg);
    }

    /// Sends a message that is not an object sync (a reply, an eviction).
    pub(crate) fn send(&self, node: &str, msg: Message) -> bool {
        let Ok(id) = NodeId::new(node) else {
            return false;
        };
        match self.hub.send(&id, msg) {
            Ok(_) => {
                self.metrics.inc(&self.metrics.downstream_sent);
                true
            }
            Err(e) => {
                warn!(%node, error = %e, "downstream send refused; the next resync repairs it");
                self.metrics.inc(&self.metrics.downstream_refused);
                false
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Sent,
    Skipped,
    Deleted,
    NotSent,
}

/// True for edge keys of the kinds the controller manages (`<ns>/pod|configmap|secret/<n>`,
/// and `<ns>/device|devicemodel/<n>` with device support).
fn managed(key: &str, devices: bool) -> bool {
    split_key(key).is_some_and(|(kind, _, _)| devices || !kind.is_device())
}

fn split_key(key: &str) -> Option<(Kind, &str, &str)> {
    let mut it = key.splitn(3, '/');
    let (ns, kind, name) = (it.next()?, it.next()?, it.next()?);
    let kind = Kind::from_resource_type(kind)?;
    (!name.is_empty() && !name.contains('/')).then_some((kind, ns, name))
}

/// The content of a delete: enough for MetaManager to find the object and check its UID.
fn delete_stub(t: Target<'_>, uid: &str, release: bool) -> Value {
    let (api_version, kind) = match t.kind {
        Kind::Pod => ("v1", "Pod"),
        Kind::ConfigMap => ("v1", "ConfigMap"),
        Kind::Secret => ("v1", "Secret"),
        Kind::Device => (crate::devicecontroller::API_VERSION, "Device"),
        Kind::DeviceModel => (crate::devicecontroller::API_VERSION, "DeviceModel"),
    };
    let mut stub = json!({
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"namespace": t.namespace, "name": t.name, "uid": uid},
    });
    if release {
        stub["metadata"]["annotations"] = json!({ RELEASED_ANNOTATION: "true" });
    }
    stub
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use ke_core::{Entropy, FixedClock, Seed};
    use ke_proto::inventory::Held;
    use serde_json::json;

    use super::*;
    use crate::edgecontroller::index::tests::{device, stored};

    const NODE: &str = "edge-1";

    /// Model `m` (rv 1) and device `d1` on edge-1 naming it (rv 2).
    fn index() -> Index {
        let mut idx = Index::default();
        let model = json!({"apiVersion": "devices.kubeedge.io/v1beta1", "kind": "DeviceModel",
            "metadata": {"name": "m", "namespace": "default", "uid": "um"}});
        idx.models
            .insert(("default".into(), "m".into()), stored("um", "1", model));
        let (k, s) = device("d1", NODE, "m", "2");
        idx.put_device(k, s);
        idx
    }

    /// A Sync with device support `devices`, releases at once, and edge-1 connected; the
    /// hub and session id.
    fn setup(devices: bool) -> (Sync, HubHandle, u64) {
        setup_with(devices, Duration::ZERO)
    }

    fn setup_with(devices: bool, release_delay: Duration) -> (Sync, HubHandle, u64) {
        let hub = HubHandle::for_tests();
        let node = NodeId::new(NODE).unwrap();
        let session = hub.test_connect(&node);
        let mut sync = Sync::new(
            hub.clone(),
            Arc::new(FixedClock::new(1_700_000_000)),
            Entropy::seeded(Seed(3), "sync"),
            Arc::new(Metrics::default()),
            Duration::from_secs(5),
            release_delay,
            devices,
        );
        sync.connected(NODE, session);
        (sync, hub, session)
    }

    fn inventory(held: &[(&str, &str, &str)]) -> Inventory {
        let objects = held
            .iter()
            .map(|(k, uid, rv)| {
                let h = Held {
                    uid: (*uid).to_owned(),
                    rv: (*rv).to_owned(),
                    digest: None,
                };
                ((*k).to_owned(), h)
            })
            .collect();
        Inventory { objects }
    }

    fn summary(frames: &[Message]) -> Vec<(String, String, String)> {
        frames
            .iter()
            .map(|m| {
                let op = m.route.operation.to_string();
                (
                    op,
                    m.route.resource.clone(),
                    m.header.resource_version.clone(),
                )
            })
            .collect()
    }

    /// Goal: an edge holding nothing gets the device model, then the device that names it,
    /// both from `devicecontroller` with their resourceVersions (ACK mode) and full objects.
    /// Method: an empty inventory against an index with one model and one device.
    #[tokio::test]
    async fn device_and_model_are_delivered_model_first() {
        let (mut sync, hub, session) = setup(true);
        let idx = index();
        sync.index_ready(&idx);
        sync.inventory(NODE, inventory(&[]), &idx);
        let frames = hub.test_frames(&NodeId::new(NODE).unwrap(), session);
        assert_eq!(
            summary(&frames),
            [
                ("insert".into(), "default/devicemodel/m".into(), "1".into()),
                ("insert".into(), "default/device/d1".into(), "2".into()),
            ]
        );
        assert!(
            frames
                .iter()
                .all(|m| m.route.source == Source::DeviceController)
        );
        assert_eq!(frames[1].content.value()["kind"], "Device");
        assert_eq!(sync.metrics.snapshot().resync_sent, 2);
    }

    /// Goal: the resync sends only what differs: an unchanged model is skipped, a changed
    /// device updated, a device the node no longer has deleted; a model no device names any
    /// more is released (a delete marked released). Method: an inventory with the model at
    /// its version, the device at an older one and a stale device; then `released`.
    #[tokio::test]
    async fn resync_skips_unchanged_devices_and_models() {
        let (mut sync, hub, session) = setup(true);
        let idx = index();
        sync.index_ready(&idx);
        let held = [
            ("default/devicemodel/m", "um", "1"),
            ("default/device/d1", "uid-d1", "1"),
            ("default/device/gone", "uid-gone", "7"),
        ];
        sync.inventory(NODE, inventory(&held), &idx);
        let node = NodeId::new(NODE).unwrap();
        let frames = hub.test_frames(&node, session);
        assert_eq!(
            summary(&frames),
            [
                ("update".into(), "default/device/d1".into(), "2".into()),
                ("delete".into(), "default/device/gone".into(), "7".into()),
            ]
        );
        assert_eq!(
            frames[1].content.value()["apiVersion"],
            "devices.kubeedge.io/v1beta1"
        );
        let m = sync.metrics.snapshot();
        assert_eq!(
            (m.resync_sent, m.resync_skipped, m.resync_deleted),
            (1, 1, 1)
        );
        let t = Target {
            kind: Kind::DeviceModel,
            namespace: "default",
            name: "m",
        };
        sync.released(NODE, t);
        let frames = hub.test_frames(&node, session);
        assert_eq!(frames.len(), 1);
        assert!(frames[0].is_release(), "{:?}", frames[0]);
    }

    /// Goal: a pod whose status alone changed is not sent back to its node (KubeEdge's
    /// `isPodUpdated`), any other change is; after a reconnect, an edge holding an older
    /// version with the same desired content (its inventory digest) gets nothing and is then
    /// tracked by version, one with other content gets the pod. Method: versions 1..5 of one
    /// pod through the index (status-only changes at 2, 4 and 5), two reconnects.
    #[tokio::test]
    async fn status_echoes_are_not_sent() {
        use k8s_openapi::api::core::v1::Pod;
        let (mut sync, hub, session) = setup(false);
        let mut idx = Index::default();
        sync.index_ready(&idx);
        sync.inventory(NODE, inventory(&[]), &idx);
        let node = NodeId::new(NODE).unwrap();
        let pod = |rv: &str, phase: &str, image: &str| -> Pod {
            serde_json::from_value(json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "p", "namespace": "default", "uid": "up", "resourceVersion": rv},
                "spec": {"nodeName": NODE, "containers": [{"name": "c", "image": image}]},
                "status": {"phase": phase}}))
            .unwrap()
        };
        let key = ("default".to_owned(), "p".to_owned());
        let t = Target {
            kind: Kind::Pod,
            namespace: "default",
            name: "p",
        };
        let put = |idx: &mut Index, sync: &mut Sync, p: Pod| {
            idx.put_pod(&p);
            let s = idx.bound(Kind::Pod).get(&key).unwrap().stored.clone();
            sync.changed(NODE, t, Some(&s));
            s
        };
        let sent = |session| summary(&hub.test_frames(&node, session));
        let at =
            |op: &str, rv: &str| vec![(op.to_owned(), "default/pod/p".to_owned(), rv.to_owned())];
        put(&mut idx, &mut sync, pod("1", "Pending", "app:v1"));
        assert_eq!(sent(session), at("insert", "1"));
        let echo = put(&mut idx, &mut sync, pod("2", "Running", "app:v1"));
        assert_eq!((echo.rv.as_str(), echo.desired_rv.as_str()), ("2", "1"));
        assert!(sent(session).is_empty(), "a status echo was sent");
        put(&mut idx, &mut sync, pod("3", "Running", "app:v2"));
        assert_eq!(sent(session), at("update", "3"));
        let v4 = put(&mut idx, &mut sync, pod("4", "Failed", "app:v2"));
        assert!(sent(session).is_empty());

        // Reconnect holding version 3 (its digest equals version 4's): nothing to send. (The
        // hub redelivers unACKed frames to a new session, so count what Sync sent.)
        let digest = |p: &Pod| ke_proto::desired::desired_digest(&serde_json::to_value(p).unwrap());
        let reconnect = |sync: &mut Sync, rv: &str, d: String| {
            let s = hub.test_connect(&node);
            sync.connected(NODE, s);
            let mut inv = inventory(&[("default/pod/p", "up", rv)]);
            inv.objects.get_mut("default/pod/p").unwrap().digest = Some(d);
            sync.inventory(NODE, inv, &idx);
            let m = sync.metrics.snapshot();
            (m.resync_sent, m.resync_skipped)
        };
        let s2 = reconnect(&mut sync, "3", digest(&pod("3", "Running", "app:v2")));
        assert_eq!(s2, (0, 1), "a current pod was resent");
        assert_eq!(v4.desired_rv, "3");
        // Holding version 1 (other content): the current version goes down.
        let s3 = reconnect(&mut sync, "1", digest(&pod("1", "Pending", "app:v1")));
        assert_eq!(s3, (1, 1));
        // Tracked by version again: a status change sends nothing, an image change does.
        let before = sync.metrics.snapshot().downstream_sent;
        put(&mut idx, &mut sync, pod("5", "Running", "app:v2"));
        assert_eq!(sync.metrics.snapshot().downstream_sent, before);
        put(&mut idx, &mut sync, pod("6", "Running", "app:v3"));
        assert_eq!(sync.metrics.snapshot().downstream_sent, before + 1);
    }

    /// Goal: an object a node stops referencing is released only after the delay, and not
    /// at all if the node references it again meanwhile (a rolling update's delete before
    /// create); a pending release is a gauge. Method: paused time, the model of `index()`
    /// held by edge-1; `released`, then the device sent again within the delay; `released`
    /// again and the delay run out; then a release of an object deleted meanwhile.
    #[tokio::test(start_paused = true)]
    async fn releases_wait_out_the_delay() {
        let delay = Duration::from_secs(10);
        let (mut sync, hub, session) = setup_with(true, delay);
        let mut idx = index();
        sync.index_ready(&idx);
        let held = [
            ("default/devicemodel/m", "um", "1"),
            ("default/device/d1", "uid-d1", "2"),
        ];
        sync.inventory(NODE, inventory(&held), &idx);
        let node = NodeId::new(NODE).unwrap();
        assert!(hub.test_frames(&node, session).is_empty());
        let model = Target {
            kind: Kind::DeviceModel,
            namespace: "default",
            name: "m",
        };
        let pending = |sync: &Sync| sync.metrics.snapshot().pending_releases;

        // Released, then needed again (sent or skipped as held) within the delay: nothing.
        sync.released(NODE, model);
        assert_eq!(pending(&sync), 1);
        assert!(sync.next_deadline().is_some());
        tokio::time::advance(Duration::from_secs(4)).await;
        let stored = idx.models[&("default".to_owned(), "m".to_owned())].clone();
        sync.changed(NODE, model, Some(&stored));
        assert_eq!(pending(&sync), 0);
        tokio::time::advance(delay).await;
        sync.expire(&idx);
        assert!(
            hub.test_frames(&node, session).is_empty(),
            "re-referenced yet released"
        );

        // Released and not needed again: the release goes after the delay, not before.
        sync.released(NODE, model);
        tokio::time::advance(delay - Duration::from_secs(1)).await;
        sync.expire(&idx);
        assert!(hub.test_frames(&node, session).is_empty(), "released early");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(sync.next_deadline().is_some_and(|d| d <= Instant::now()));
        // The index still has the device referencing it: kept.
        sync.expire(&idx);
        assert!(
            hub.test_frames(&node, session).is_empty(),
            "released while referenced"
        );
        assert_eq!(pending(&sync), 0);
        idx.remove_bound(Kind::Device, &("default".to_owned(), "d1".to_owned()));
        sync.released(NODE, model);
        tokio::time::advance(delay).await;
        sync.expire(&idx);
        let frames = hub.test_frames(&node, session);
        assert_eq!(frames.len(), 1);
        assert!(frames[0].is_release(), "{:?}", frames[0]);
        assert_eq!(pending(&sync), 0);
        assert_eq!(sync.next_deadline(), None);
    }

    /// Goal: an object deleted from the cluster while its release waits is deleted at the
    /// edge (with a tombstone), not released; a disconnect forgets pending releases (the
    /// next resync releases at once). Method: paused time, a device d2 naming model `m`,
    /// then d2 and the model gone; a second pending release and a disconnect.
    #[tokio::test(start_paused = true)]
    async fn a_release_of_a_deleted_object_is_a_delete() {
        let delay = Duration::from_secs(10);
        let (mut sync, hub, session) = setup_with(true, delay);
        let mut idx = index();
        idx.remove_bound(Kind::Device, &("default".to_owned(), "d1".to_owned()));
        sync.index_ready(&idx);
        sync.inventory(
            NODE,
            inventory(&[("default/devicemodel/m", "um", "1")]),
            &idx,
        );
        let node = NodeId::new(NODE).unwrap();
        let pending = |sync: &Sync| sync.metrics.snapshot().pending_releases;
        let stored = idx.models[&("default".to_owned(), "m".to_owned())].clone();
        let (k, s) = device("d2", NODE, "m", "5");
        idx.put_device(k, s.clone());
        let dev = Target {
            kind: Kind::Device,
            namespace: "default",
            name: "d2",
        };
        sync.changed(NODE, dev, Some(&s));
        let _ = hub.test_frames(&node, session);
        let cm_like = Target {
            kind: Kind::DeviceModel,
            namespace: "default",
            name: "m",
        };
        sync.changed(NODE, cm_like, Some(&stored));
        idx.remove_bound(Kind::Device, &("default".to_owned(), "d2".to_owned()));
        sync.released(NODE, cm_like);
        idx.models.clear();
        tokio::time::advance(delay).await;
        sync.expire(&idx);
        // (The hub also resends d2's unACKed insert by now.)
        let frames: Vec<_> = hub
            .test_frames(&node, session)
            .into_iter()
            .filter(|m| m.route.resource == "default/devicemodel/m")
            .collect();
        assert_eq!(
            summary(&frames),
            [("delete".into(), "default/devicemodel/m".into(), "1".into())]
        );
        assert!(!frames[0].is_release());

        // A disconnect forgets pending releases (the next resync releases at once).
        sync.changed(NODE, cm_like, Some(&stored));
        sync.released(NODE, cm_like);
        assert_eq!(pending(&sync), 1);
        sync.disconnected(NODE, session);
        assert_eq!(pending(&sync), 0);
    }

    /// Goal: without device support the device keys an edge holds are left alone (not
    /// deleted), and nothing device-related is sent. Method: devices off, an inventory with a
    /// device and a model, an index without devices.
    #[tokio::test]
    async fn device_keys_are_ignored_without_device_support() {
        let (mut sync, hub, session) = setup(false);
        let idx = Index::default();
        sync.index_ready(&idx);
        let held = [
            ("default/devicemodel/m", "um", "1"),
            ("default/device/d1", "u", "1"),
        ];
        sync.inventory(NODE, inventory(&held), &idx);
        assert!(
            hub.test_frames(&NodeId::new(NODE).unwrap(), session)
                .is_empty()
        );
    }

    /// Goal: a membership message names the device under `added_devices` (the other list
    /// null, as Go marshals it), goes only to a node with a session, without ACK.
    /// Method: `membership` for edge-1 (connected) and edge-9 (not).
    #[tokio::test]
    async fn membership_goes_to_connected_nodes() {
        let (sync, hub, session) = setup(true);
        let dev = crate::devicecontroller::member_device("default", "d1", &json!({}));
        sync.membership("edge-9", true, dev.clone());
        sync.membership(NODE, true, dev);
        let frames = hub.test_frames(&NodeId::new(NODE).unwrap(), session);
        assert_eq!(frames.len(), 1);
        let m = &frames[0];
        assert_eq!(m.route.resource, "membership");
        assert_eq!(m.route.group, Group::Twin);
        assert!(!m.needs_ack());
        let v = m.content.value();
        assert_eq!(
            v["added_devices"],
            json!([{"id": "default/d1", "name": "d1"}])
        );
        assert!(v["removed_devices"].is_null());
        assert!(!hub.is_connected(&NodeId::new("edge-9").unwrap()));
        assert_eq!(sync.metrics.snapshot().downstream_sent, 1);
    }
}
