//! EdgeController: pods bound to edge nodes, and the configmaps and secrets they reference,
//! go down to their node; node registration, node status, leases, pod status and events come
//! up (KubeEdge's `cloud/pkg/edgecontroller`, reference §4).
//!
//! - `index` (private): the cluster as the controller sees it, from three `kube` watches
//!   (pods, configmaps, secrets in every namespace; plus devices and device models with device
//!   support, see [`crate::devicecontroller`]): pods and devices by node and each node's
//!   references.
//! - `sync` (private): per-node delivery state and the incremental resync after a connect
//!   (the edge's inventory against what the node should hold; no API writes).
//! - `upstream` (private): edge requests (device reports included), with node authorization.
//! - [`metrics`], the counters.
//!
//! Which nodes get objects: a pod goes to the node in its `spec.nodeName` once that node has a
//! CloudHub session; CloudHub only admits nodes with a certificate signed by the KubeEdge CA,
//! so the `node-role.kubernetes.io/edge` label is not needed to decide it (edges set it on
//! registration). Pod updates are sent whatever changed, status included, so the edge's copy
//! carries the API server's resourceVersion and the resync can compare versions exactly.

mod index;
mod lifecycle;
pub mod metrics;
mod sync;
mod upstream;

use std::{
    collections::BTreeSet,
    future::Future,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use futures::{Stream, StreamExt, stream::BoxStream};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret};
use ke_core::{Clock, Entropy};
use ke_proto::{Message, NodeId, inventory::Inventory};
use kube::{
    Api, Resource,
    api::{DynamicObject, PostParams, TypeMeta},
    runtime::{WatchStreamExt, watcher},
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

pub use metrics::{Metrics, MetricsSnapshot};
pub use upstream::EDGE_LABEL;

use self::{
    index::{Index, Kind, ObjKey, Stored, obj_key},
    sync::{Sync, Target},
    upstream::Upstream,
};
use crate::{
    cloudhub::{HubEvent, HubHandle, HubOutputs},
    config::Authorization,
    devicecontroller::{self, DeviceKind, twins::TwinCache},
};

/// EdgeController settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeControllerConfig {
    /// How long after a connect to wait for the edge's inventory before sending everything
    /// (a stock KubeEdge edgecore sends none). Default 5 s.
    pub inventory_wait: Duration,
    /// How long a configmap, secret or device model no pod or device of a node references
    /// any more stays at the edge before it is released (a rolling update that deletes a pod
    /// before creating its replacement would otherwise release and resend it). Zero: at once.
    /// Default 10 s (`modules.edgeController.releaseDelaySeconds`).
    pub release_delay: Duration,
    /// Upstream workers; requests of one node always go to the same worker, in order.
    /// Default 16.
    pub upstream_workers: usize,
    /// Requests queued per worker (bounded; a full queue makes CloudHub's reader wait).
    /// Default 256.
    pub upstream_queue_max: usize,
    /// Node authorization (`modules.cloudHub.authorization`).
    pub authorization: Authorization,
    /// A node without a session for this long is marked `Ready=Unknown`
    /// (`modules.edgeController.nodeMonitorGracePeriod`). Default 40 s, as
    /// kube-controller-manager's `--node-monitor-grace-period`.
    pub node_monitor_grace: Duration,
    /// Device support (`modules.deviceController.enable`): install the device CRDs at start,
    /// watch devices and device models, handle device reports. Turned off for the run if the
    /// CRDs cannot be installed. Default true.
    pub devices: bool,
}

impl Default for EdgeControllerConfig {
    fn default() -> Self {
        Self {
            inventory_wait: Duration::from_secs(5),
            release_delay: Duration::from_secs(10),
            upstream_workers: 16,
            upstream_queue_max: 256,
            authorization: Authorization::default(),
            node_monitor_grace: Duration::from_secs(40),
            devices: true,
        }
    }
}

/// Why the controller stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// CloudHub's upstream channel closed (the hub is gone). Not retryable.
    #[error("CloudHub's upstream channel closed")]
    HubClosed,
}

/// The EdgeController of one cloudcore.
pub struct EdgeController {
    client: kube::Client,
    hub: HubHandle,
    cfg: EdgeControllerConfig,
    clock: Arc<dyn Clock>,
    entropy: Entropy,
    metrics: Arc<Metrics>,
    index: Arc<Mutex<Index>>,
    twins: Arc<TwinCache>,
}

impl std::fmt::Debug for EdgeController {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeController")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl EdgeController {
    /// A controller reading the cluster through `client` and talking to edges through `hub`.
    pub fn new(
        client: kube::Client,
        hub: HubHandle,
        cfg: EdgeControllerConfig,
        clock: Arc<dyn Clock>,
        entropy: Entropy,
    ) -> Self {
        Self {
            client,
            hub,
            cfg,
            clock,
            entropy,
            metrics: Arc::new(Metrics::default()),
            index: Arc::new(Mutex::new(Index::default())),
            twins: Arc::new(TwinCache::default()),
        }
    }

    /// The counters (shared; they keep counting while `run` runs).
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// Runs until `shutdown` completes: watches the cluster, consumes CloudHub's upstream
    /// messages and session events from `hub_out`.
    pub async fn run(
        self,
        hub_out: HubOutputs,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), Error> {
        self.ensure_lease_namespace().await;
        let devices = self.install_devices().await;
        let stop = CancellationToken::new();
        let (inv_tx, inv_rx) = mpsc::channel(self.cfg.upstream_queue_max);
        let upstream = Upstream {
            client: self.client.clone(),
            index: self.index.clone(),
            hub: self.hub.clone(),
            clock: self.clock.clone(),
            entropy: self.entropy.clone(),
            metrics: self.metrics.clone(),
            authz: self.cfg.authorization,
            devices,
            twins: self.twins.clone(),
        };
        let workers = self.cfg.upstream_workers.max(1);
        let queue_max = self.cfg.upstream_queue_max.max(1);
        let dispatch = dispatch_upstream(hub_out.upstream, inv_tx, upstream, workers, queue_max);
        let (seen_tx, seen_rx) = mpsc::channel(queue_max);
        let lifecycle = lifecycle::Lifecycle {
            client: self.client.clone(),
            hub: self.hub.clone(),
            clock: self.clock.clone(),
            metrics: self.metrics.clone(),
            grace: self.cfg.node_monitor_grace,
        }
        .run(seen_rx, stop.clone());
        let main = async {
            tokio::join!(
                self.main_loop(hub_out.events, inv_rx, seen_tx, devices, stop.clone()),
                lifecycle
            );
        };
        tokio::pin!(shutdown, dispatch, main);
        tokio::select! {
            () = &mut shutdown => {
                stop.cancel();
                main.await;
                Ok(())
            }
            r = &mut dispatch => {
                stop.cancel();
                main.await;
                r
            }
            () = &mut main => Ok(()),
        }
    }

    /// Leases live in `kube-node-lease`; create it if the API server has none (the embedded
    /// one starts empty).
    async fn ensure_lease_namespace(&self) {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let mut ns = Namespace::default();
        ns.metadata.name = Some(upstream::LEASE_NAMESPACE.to_owned());
        self.metrics.api("create");
        match api.create(&PostParams::default(), &ns).await {
            Ok(_) => info!("created namespace kube-node-lease"),
            Err(kube::Error::Api(ae)) if ae.code == 409 => {}
            Err(e) => warn!(error = %e, "cannot create namespace kube-node-lease; leases may fail"),
        }
    }

    /// Installs the device CRDs if device support is configured; false (device support off
    /// for this run) if it is not or the API server refuses.
    async fn install_devices(&self) -> bool {
        if !self.cfg.devices {
            return false;
        }
        match devicecontroller::crds::install(&self.client, &self.metrics).await {
            Ok(()) => true,
            Err(e) => {
                let cause = std::error::Error::source(&e).map(ToString::to_string);
                warn!(error = %e, cause, "cannot install the device CRDs; device support is off");
                false
            }
        }
    }

    async fn main_loop(
        self,
        mut events: mpsc::Receiver<HubEvent>,
        mut inventories: mpsc::Receiver<(NodeId, Inventory)>,
        seen: mpsc::Sender<lifecycle::Seen>,
        devices: bool,
        stop: CancellationToken,
    ) {
        let cfg = watcher::Config::default();
        let mut pods = watch::<Pod>(&self.client, cfg.clone());
        let mut cms = watch::<ConfigMap>(&self.client, cfg.clone());
        let mut secrets = watch::<Secret>(&self.client, cfg.clone());
        let mut device_watch = watch_devices(&self.client, DeviceKind::Device, &cfg, devices);
        let mut models = watch_devices(&self.client, DeviceKind::DeviceModel, &cfg, devices);
        let sync = Sync::new(
            self.hub.clone(),
            self.clock.clone(),
            self.entropy.clone(),
            self.metrics.clone(),
            self.cfg.inventory_wait,
            self.cfg.release_delay,
            devices,
        );
        let mut st = Loop {
            index: self.index.clone(),
            sync,
            metrics: self.metrics.clone(),
            relist: [None, None, None, None, None],
            // Without device support the device kinds count as listed.
            listed: [false, false, false, !devices, !devices],
            seen,
            twins: self.twins.clone(),
        };
        loop {
            let deadline = st.sync.next_deadline();
            tokio::select! {
                () = stop.cancelled() => return,
                Some(ev) = pods.next() => st.pod_event(ev),
                Some(ev) = cms.next() => st.object_event(Kind::ConfigMap, ev),
                Some(ev) = secrets.next() => st.object_event(Kind::Secret, ev),
                Some(ev) = device_watch.next() => st.device_event(ev),
                Some(ev) = models.next() => st.object_event(Kind::DeviceModel, ev),
                Some(ev) = events.recv() => st.hub_event(ev),
                Some((node, inv)) = inventories.recv() => {
                    let idx = lock(&st.index);
                    st.sync.inventory(node.as_str(), inv, &idx);
                }
                () = sleep_until(deadline), if deadline.is_some() => {
                    let idx = lock(&st.index);
                    st.sync.expire(&idx);
                }
            }
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    if let Some(d) = deadline {
        tokio::time::sleep_until(d).await;
    }
}

fn lock(index: &Mutex<Index>) -> std::sync::MutexGuard<'_, Index> {
    index.lock().unwrap_or_else(PoisonError::into_inner)
}

type WatchEvent<K> = Result<watcher::Event<K>, watcher::Error>;

fn watch<K>(
    client: &kube::Client,
    cfg: watcher::Config,
) -> impl Stream<Item = WatchEvent<K>> + Unpin
where
    K: Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned,
    K: Send + 'static,
{
    Box::pin(watcher(Api::<K>::all(client.clone()), cfg).default_backoff())
}

/// A watch of devices or device models (every object carries its `apiVersion` and `kind`,
/// which the edge needs), or a stream that never yields without device support.
fn watch_devices(
    client: &kube::Client,
    kind: DeviceKind,
    cfg: &watcher::Config,
    enabled: bool,
) -> BoxStream<'static, WatchEvent<DynamicObject>> {
    if !enabled {
        return futures::stream::pending().boxed();
    }
    let ar = kind.api_resource();
    let types = TypeMeta {
        api_version: ar.api_version.clone(),
        kind: ar.kind.clone(),
    };
    let api = Api::<DynamicObject>::all_with(client.clone(), &ar);
    watcher(api, cfg.clone())
        .default_backoff()
        .map(move |ev| {
            ev.map(|e| {
                e.modify(|o| {
                    o.types.get_or_insert_with(|| types.clone());
                })
            })
        })
        .boxed()
}

/// Routes CloudHub's upstream messages: inventories to the main loop, the rest to the worker
/// owning the node (stable FNV hash of the name, so one node's requests stay in order).
async fn dispatch_upstream(
    mut upstream_rx: mpsc::Receiver<(NodeId, Message)>,
    inv_tx: mpsc::Sender<(NodeId, Inventory)>,
    handler: Upstream,
    workers: usize,
    queue_max: usize,
) -> Result<(), Error> {
    let mut txs = Vec::with_capacity(workers);
    let mut tasks = Vec::with_capacity(workers);
    for _ in 0..workers {
        let (tx, mut rx) = mpsc::channel::<(NodeId, Message)>(queue_max);
        let h = handler.clone();
        txs.push(tx);
        tasks.push(async move {
            while let Some((node, msg)) = rx.recv().await {
                h.handle(&node, msg).await;
            }
        });
    }
    let route = async {
        while let Some((node, msg)) = upstream_rx.recv().await {
            if Inventory::is_inventory(&msg) {
                forward_inventory(&inv_tx, node, &msg, &handler).await;
                continue;
            }
            let i = usize::try_from(fnv(node.as_str()) % workers as u64).unwrap_or(0);
            if txs[i].send((node, msg)).await.is_err() {
                break;
            }
        }
        drop(txs);
    };
    futures::future::join(route, futures::future::join_all(tasks)).await;
    Err(Error::HubClosed)
}

async fn forward_inventory(
    inv_tx: &mpsc::Sender<(NodeId, Inventory)>,
    node: NodeId,
    msg: &Message,
    handler: &Upstream,
) {
    match Inventory::from_message(msg) {
        Ok((named, inv)) if named == node.as_str() => {
            let _ = inv_tx.send((node, inv)).await;
        }
        Ok((named, _)) => {
            warn!(%node, %named, "inventory names another node; refused");
            handler.metrics.inc(&handler.metrics.upstream_forbidden);
        }
        Err(e) => warn!(%node, error = %e, "malformed inventory; ignored"),
    }
}

/// FNV-1a: a stable hash (std's is seeded per process, which would break determinism).
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The main loop's state.
struct Loop {
    index: Arc<Mutex<Index>>,
    sync: Sync,
    metrics: Arc<Metrics>,
    /// Keys seen during a relist, per kind (pod, configmap, secret, device, devicemodel).
    relist: [Option<BTreeSet<ObjKey>>; 5],
    /// Kinds whose watch finished a first list (same order).
    listed: [bool; 5],
    /// Session changes for the node lifecycle task (dropped when it lags: it is advisory).
    seen: mpsc::Sender<lifecycle::Seen>,
    /// Twin lists of the upstream workers (a deleted device's entry goes).
    twins: Arc<TwinCache>,
}

fn slot(kind: Kind) -> usize {
    match kind {
        Kind::Pod => 0,
        Kind::ConfigMap => 1,
        Kind::Secret => 2,
        Kind::Device => 3,
        Kind::DeviceModel => 4,
    }
}

impl Loop {
    fn hub_event(&mut self, ev: HubEvent) {
        match ev {
            HubEvent::Connected { node, session } => {
                debug!(%node, session, "connected; waiting for its inventory");
                self.sync.connected(node.as_str(), session);
                let _ = self
                    .seen
                    .try_send(lifecycle::Seen::Connected(node.into_string()));
            }
            HubEvent::Disconnected { node, session, .. } => {
                self.sync.disconnected(node.as_str(), session);
                let _ = self
                    .seen
                    .try_send(lifecycle::Seen::Disconnected(node.into_string()));
            }
        }
    }

    fn pod_event(&mut self, ev: WatchEvent<Pod>) {
        let Some(ev) = self.watch_event(Kind::Pod, ev) else {
            return;
        };
        match ev {
            Change::Apply(pod) => self.pod_applied(&pod),
            Change::Delete(key) => self.pod_deleted(&key),
        }
    }

    fn object_event<K>(&mut self, kind: Kind, ev: WatchEvent<K>)
    where
        K: Resource + serde::Serialize,
    {
        let Some(ev) = self.watch_event(kind, ev) else {
            return;
        };
        let index = self.index.clone();
        let mut idx = lock(&index);
        let (key, stored) = match ev {
            Change::Apply(obj) => {
                let key = obj_key(obj.meta());
                let stored = Stored::of(&obj);
                if let Some(m) = idx.objects_mut(kind) {
                    m.insert(key.clone(), stored.clone());
                }
                (key, Some(stored))
            }
            Change::Delete(key) => {
                if let Some(m) = idx.objects_mut(kind) {
                    m.remove(&key);
                }
                (key, None)
            }
        };
        let r = (kind, key.0.clone(), key.1.clone());
        for node in idx.nodes_referencing(&r) {
            let t = Target {
                kind,
                namespace: &key.0,
                name: &key.1,
            };
            self.sync.changed(&node, t, stored.as_ref());
        }
    }

    fn pod_applied(&mut self, pod: &Pod) {
        let key = obj_key(&pod.metadata);
        let index = self.index.clone();
        let mut idx = lock(&index);
        let (old, change) = idx.put_pod(pod);
        self.bound_applied(&idx, Kind::Pod, &key, old.as_ref(), &change);
    }

    fn device_event(&mut self, ev: WatchEvent<DynamicObject>) {
        let Some(ev) = self.watch_event(Kind::Device, ev) else {
            return;
        };
        match ev {
            Change::Apply(device) => {
                let key = obj_key(device.meta());
                let index = self.index.clone();
                let mut idx = lock(&index);
                let (old, change) = idx.put_device(key.clone(), Stored::of_parsed(&device));
                self.bound_applied(&idx, Kind::Device, &key, old.as_ref(), &change);
            }
            Change::Delete(key) => self.bound_deleted(Kind::Device, &key),
        }
    }

    /// A pod or device was put into the index: newly referenced objects go first, then the
    /// object itself to its node (and a delete to the node it left), then releases.
    fn bound_applied(
        &mut self,
        idx: &Index,
        kind: Kind,
        key: &ObjKey,
        old: Option<&index::BoundEntry>,
        change: &index::RefChange,
    ) {
        for (node, (kind, ns, name)) in &change.added {
            let stored = idx
                .objects(*kind)
                .and_then(|m| m.get(&(ns.clone(), name.clone())));
            if let Some(stored) = stored {
                let t = Target {
                    kind: *kind,
                    namespace: ns,
                    name,
                };
                self.sync.changed(node, t, Some(stored));
            }
        }
        let t = Target {
            kind,
            namespace: &key.0,
            name: &key.1,
        };
        let entry = idx.bound(kind).get(key).filter(|e| !e.node.is_empty());
        let old = old.filter(|o| !o.node.is_empty());
        let moved = old.map(|o| &o.node) != entry.map(|e| &e.node);
        if let Some(old) = old.filter(|_| moved) {
            self.sync.changed(&old.node, t, None);
            self.membership(kind, &old.node, false, key, &old.stored);
        }
        if let Some(entry) = entry {
            self.sync.changed(&entry.node, t, Some(&entry.stored));
            if moved {
                self.membership(kind, &entry.node, true, key, &entry.stored);
            }
        }
        self.send_removed(&change.removed);
    }

    fn pod_deleted(&mut self, key: &ObjKey) {
        self.bound_deleted(Kind::Pod, key);
    }

    fn bound_deleted(&mut self, kind: Kind, key: &ObjKey) {
        if kind == Kind::Device {
            self.twins.remove(key);
        }
        let mut idx = lock(&self.index);
        let Some((old, change)) = idx.remove_bound(kind, key) else {
            return;
        };
        drop(idx);
        if !old.node.is_empty() {
            let t = Target {
                kind,
                namespace: &key.0,
                name: &key.1,
            };
            self.sync.changed(&old.node, t, None);
            self.membership(kind, &old.node, false, key, &old.stored);
        }
        self.send_removed(&change.removed);
    }

    /// A device joined or left `node` (nothing for pods).
    fn membership(&self, kind: Kind, node: &str, added: bool, key: &ObjKey, stored: &Stored) {
        if kind == Kind::Device {
            let device = devicecontroller::member_device(&key.0, &key.1, stored.json.value());
            self.sync.membership(node, added, device);
        }
    }

    /// Configmaps, secrets and device models a node's pods (devices) no longer reference are
    /// released at the edge, so a node holds only what it may read.
    fn send_removed(&mut self, removed: &[(String, index::Ref)]) {
        for (node, (kind, ns, name)) in removed {
            let t = Target {
                kind: *kind,
                namespace: ns,
                name,
            };
            self.sync.released(node, t);
        }
    }

    /// Turns a watcher event into an apply or a delete, tracking relists: keys not seen
    /// between `Init` and `InitDone` were deleted while the watch was down.
    fn watch_event<K: Resource>(&mut self, kind: Kind, ev: WatchEvent<K>) -> Option<Change<K>> {
        self.metrics.inc(&self.metrics.watch_events);
        let ev = match ev {
            Ok(ev) => ev,
            Err(e) => {
                warn!(kind = kind.resource_type(), error = %e, "watch failed; retrying");
                return None;
            }
        };
        let seen = &mut self.relist[slot(kind)];
        match ev {
            watcher::Event::Apply(obj) => Some(Change::Apply(obj)),
            watcher::Event::Delete(obj) => Some(Change::Delete(obj_key(obj.meta()))),
            watcher::Event::Init => {
                *seen = Some(BTreeSet::new());
                None
            }
            watcher::Event::InitApply(obj) => {
                if let Some(s) = seen.as_mut() {
                    s.insert(obj_key(obj.meta()));
                }
                Some(Change::Apply(obj))
            }
            watcher::Event::InitDone => {
                let seen = seen.take().unwrap_or_default();
                self.finish_relist(kind, &seen);
                self.listed[slot(kind)] = true;
                if self.listed.iter().all(|l| *l) {
                    let index = self.index.clone();
                    self.sync.index_ready(&lock(&index));
                }
                None
            }
        }
    }

    fn finish_relist(&mut self, kind: Kind, seen: &BTreeSet<ObjKey>) {
        let gone: Vec<ObjKey> = {
            let idx = lock(&self.index);
            match kind {
                Kind::Pod | Kind::Device => idx
                    .bound(kind)
                    .keys()
                    .filter(|k| !seen.contains(*k))
                    .cloned()
                    .collect(),
                _ => idx
                    .objects(kind)
                    .map(|m| m.keys().filter(|k| !seen.contains(*k)).cloned().collect())
                    .unwrap_or_default(),
            }
        };
        for key in gone {
            match kind {
                Kind::Pod | Kind::Device => self.bound_deleted(kind, &key),
                _ => self.object_gone(kind, key),
            }
        }
    }

    fn object_gone(&mut self, kind: Kind, key: ObjKey) {
        self.object_event::<ConfigMap>(kind, Ok(watcher::Event::Delete(stub(&key))));
    }
}

/// A configmap carrying only a namespace and a name (stands for any deleted object's key).
fn stub(key: &ObjKey) -> ConfigMap {
    let mut cm = ConfigMap::default();
    cm.metadata.namespace = Some(key.0.clone());
    cm.metadata.name = Some(key.1.clone());
    cm
}

enum Change<K> {
    Apply(K),
    Delete(ObjKey),
}
