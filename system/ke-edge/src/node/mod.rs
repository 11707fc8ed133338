//! The node agent: KubeEdge's kubelet-fork node status role, driven by the cloud connection.
//!
//! - On every new session (EdgeHub publishes [`CloudState::Connected`]) it sends, first, the
//!   MetaStore's [`Inventory`](ke_proto::inventory::Inventory) (the cloud then sends only what
//!   changed), then the node registration: `insert` of `null/node/<node>` with the Node object.
//!   A reply `{"Object":…,"Err":null}` (or `AlreadyExists`) marks the node registered; an
//!   error or no reply within [`NodeConfig::register_retry`] sends it again.
//! - Once registered in the session: every [`NodeConfig::status_update_period`] a `patch` of
//!   `null/nodepatch/<node>` (a JSON string with the status: Ready condition, capacity,
//!   allocatable, nodeInfo, addresses), and every [`NodeConfig::lease_renew_period`] an
//!   `update` of `kube-node-lease/lease/<node>` (an `insert` after the cloud said `NotFound`).
//!   The first of each goes at once after the registration reply.
//! - Pod reports from edged: a status becomes an `update` of `<ns>/podstatus/<name>`
//!   (`{"UID","Name","Status"}`), a pod ready for removal a `delete` of `<ns>/pod/<name>` with
//!   grace 0 and a UID precondition.
//! - While disconnected nothing is sent (as KubeEdge, whose remote-only operations fail then);
//!   pod statuses wait, one per pod (the latest wins), and so do while the upstream channel is
//!   full. They go out after reconnecting, in round-robin key order.
//!
//! Every message has source `edged` and group `resource`; ids come from the given
//! [`MsgIdSource`], timestamps from the [`Clock`]. Replies reach the agent through its reply
//! channel (the daemon routes every downstream message with a `parent_msg_id` there); a reply
//! the cloud sends in ACK mode is ACKed.
//!
//! - `objects` (private): the JSON of the Node, the status patch, the Lease, DeleteOptions.
//! - `reply` (private): requests in flight and the reading of replies.
//! - [`metrics`]: counters and the `registered` flag.

pub mod metrics;
mod objects;
mod reply;
#[cfg(test)]
mod tests;

use std::{
    collections::{BTreeMap, VecDeque},
    future::Future,
    ops::Bound,
    sync::Arc,
    time::Duration,
};

use ke_core::Clock;
use ke_proto::{
    Content, Delivery, Group, Message, MsgIdSource, NULL_NAMESPACE, NodeId, Operation, Route,
    Source,
};
use time::OffsetDateTime;
use tokio::{
    sync::{mpsc, watch},
    time::{Instant, sleep_until},
};
use tracing::{Instrument, debug, info, info_span, warn};

pub use metrics::{NodeMetrics, NodeMetricsSnapshot};
pub use objects::{LEASE_NAMESPACE, format_micro_time, go_arch};

use self::reply::{Outcome, Pending, Request};
use crate::{
    config::{ConfigError, EdgeCoreConfig},
    edged::{PodReport, PodStatusReport},
    edgehub::CloudState,
    metamanager::MetaStore,
};

/// The `kubeletVersion` the node reports.
pub const KUBELET_VERSION: &str = "v1.32.0-kubeedge-edgefleet";

/// Control messages queued at most (registration, inventory, status, lease and ACKs of
/// replies); beyond it further ACKs are dropped (the cloud resends what it wants ACKed).
pub const OUTBOX_MAX: usize = 16;

/// The node's resources as reported in `status.capacity` and `status.allocatable`
/// (Kubernetes quantities).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeResources {
    /// CPUs (`"4"`, `"500m"`).
    pub cpu: String,
    /// Memory (`"8048564Ki"`, `"4Gi"`).
    pub memory: String,
    /// Most pods (`"110"`, kubelet's `maxPods`).
    pub pods: String,
}

impl Default for NodeResources {
    /// `cpu: "2"`, `memory: "4Gi"`, `pods: "110"`: fixed values, so simulated nodes are
    /// deterministic. Real hosts use [`NodeResources::detect`].
    fn default() -> Self {
        Self {
            cpu: "2".to_owned(),
            memory: "4Gi".to_owned(),
            pods: "110".to_owned(),
        }
    }
}

impl NodeResources {
    /// This host's CPUs (`available_parallelism`) and memory (`MemTotal` of `/proc/meminfo`);
    /// the defaults where they cannot be read. For real daemons only: the simulator sets its
    /// own values.
    pub fn detect() -> Self {
        let mut r = Self::default();
        if let Ok(n) = std::thread::available_parallelism() {
            r.cpu = n.get().to_string();
        }
        if let Some(kib) = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|text| meminfo_total_kib(&text))
        {
            r.memory = format!("{kib}Ki");
        }
        r
    }
}

/// `MemTotal` in KiB from `/proc/meminfo` text.
fn meminfo_total_kib(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Configuration of the node agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    /// The node name.
    pub node: NodeId,
    /// The InternalIP reported (`tailoredKubeletFlag.nodeIP`); none: only the Hostname.
    pub node_ip: Option<String>,
    /// Extra labels (`tailoredKubeletFlag.nodeLabels`), over the well-known ones.
    pub labels: BTreeMap<String, String>,
    /// Capacity and allocatable.
    pub resources: NodeResources,
    /// `nodeInfo.kubeletVersion`.
    pub kubelet_version: String,
    /// `nodeInfo.containerRuntimeVersion` (`process://`, `sim://`).
    pub container_runtime_version: String,
    /// Between node status patches (`nodeStatusUpdateFrequency`, 10 s).
    pub status_update_period: Duration,
    /// Between lease renewals (10 s, kubelet's renew interval for a 40 s lease).
    pub lease_renew_period: Duration,
    /// `spec.leaseDurationSeconds` (`nodeLeaseDurationSeconds`, 40).
    pub lease_duration_seconds: u32,
    /// A registration without a successful reply within this is sent again (10 s).
    pub register_retry: Duration,
    /// Requests remembered while waiting for their reply (1,024); older ones are forgotten.
    pub pending_replies_max: usize,
}

impl NodeConfig {
    /// KubeEdge's defaults for `node`: no InternalIP, no extra labels, default resources,
    /// runtime `process://`.
    pub fn new(node: NodeId) -> Self {
        Self {
            node,
            node_ip: None,
            labels: BTreeMap::new(),
            resources: NodeResources::default(),
            kubelet_version: KUBELET_VERSION.to_owned(),
            container_runtime_version: "process://".to_owned(),
            status_update_period: Duration::from_secs(10),
            lease_renew_period: Duration::from_secs(10),
            lease_duration_seconds: 40,
            register_retry: Duration::from_secs(10),
            pending_replies_max: 1024,
        }
    }

    /// The agent's configuration from `edgecore.yaml`: node name, `nodeIP`, `nodeLabels`,
    /// `nodeStatusUpdateFrequency`, `nodeLeaseDurationSeconds`; the runtime's name gives
    /// `containerRuntimeVersion` (`<runtime>://`).
    pub fn from_edgecore(cfg: &EdgeCoreConfig, runtime: &str) -> Result<Self, ConfigError> {
        let node = NodeId::new(cfg.node_name()).map_err(|e| {
            ke_core::config::invalid(
                "modules.edged.tailoredKubeletFlag.hostnameOverride",
                e.to_string(),
            )
        })?;
        let edged = &cfg.modules.edged;
        let flag = &edged.tailored_kubelet_flag;
        let mut out = Self::new(node);
        out.node_ip = Some(flag.node_ip.clone()).filter(|ip| !ip.is_empty());
        out.labels = flag.node_labels.clone();
        out.container_runtime_version = format!("{runtime}://");
        if let Some(period) = edged.tailored_kubelet_config.node_status_update_period() {
            out.status_update_period = period;
        }
        out.lease_duration_seconds = edged.tailored_kubelet_config.node_lease_duration_seconds;
        Ok(out)
    }
}

/// Why the node agent stopped other than by shutdown.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The upstream channel (EdgeHub) is closed. Not retryable.
    #[error("the upstream channel is closed: EdgeHub is gone")]
    UpstreamClosed,
}

/// What the agent listens to.
#[derive(Debug)]
pub struct NodeInputs {
    /// EdgeHub's connection state.
    pub cloud: watch::Receiver<CloudState>,
    /// Downstream replies (messages with a `parent_msg_id`).
    pub replies: mpsc::Receiver<Message>,
    /// Pod reports from edged.
    pub reports: mpsc::Receiver<PodReport>,
}

/// The node agent (see the module docs).
pub struct NodeAgent {
    cfg: NodeConfig,
    store: MetaStore,
    clock: Arc<dyn Clock>,
    ids: Box<dyn MsgIdSource + Send>,
    metrics: Arc<NodeMetrics>,
}

impl std::fmt::Debug for NodeAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeAgent")
            .field("node", &self.cfg.node)
            .finish_non_exhaustive()
    }
}

impl NodeAgent {
    /// An agent for `cfg.node`; `store` gives the inventory, `ids` the message ids.
    pub fn new(
        cfg: NodeConfig,
        store: MetaStore,
        clock: Arc<dyn Clock>,
        ids: Box<dyn MsgIdSource + Send>,
    ) -> Self {
        Self {
            cfg,
            store,
            clock,
            ids,
            metrics: Arc::new(NodeMetrics::default()),
        }
    }

    /// Counts into `metrics` (owned by the caller, e.g. a daemon handle that exists before the
    /// agent) instead of counters of its own.
    pub fn with_metrics(mut self, metrics: Arc<NodeMetrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// The counters and the `registered` flag (shared; they keep changing while `run` runs).
    pub fn metrics(&self) -> Arc<NodeMetrics> {
        self.metrics.clone()
    }

    /// Runs until `shutdown` resolves: sends on `upstream`, reads `inputs`. Fails only if
    /// `upstream` closes.
    pub async fn run(
        self,
        inputs: NodeInputs,
        upstream: mpsc::Sender<Message>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), Error> {
        let span = info_span!("node", node = %self.cfg.node);
        Runner::new(self)
            .run(inputs, upstream, shutdown)
            .instrument(span)
            .await
    }
}

/// A control message waiting for room upstream; built when sent, so its time is fresh.
#[derive(Debug)]
enum Control {
    Inventory,
    Register,
    NodeStatus,
    Lease,
    Ack(Box<Message>),
}

/// A pod ready for removal.
#[derive(Debug)]
struct PodRef {
    namespace: String,
    name: String,
    uid: String,
}

/// One turn of the loop.
enum Step<'a> {
    Shutdown,
    Cloud(bool),
    Send(Result<mpsc::Permit<'a, Message>, mpsc::error::SendError<()>>),
    Due,
    Reply(Option<Message>),
    Report(Option<PodReport>),
}

/// The agent's loop state.
struct Runner {
    agent: NodeAgent,
    /// Since when the node is Ready (the agent's start): the condition's transition time.
    ready_since: OffsetDateTime,
    connected: bool,
    /// The registration succeeded in this session.
    registered_here: bool,
    /// False after the cloud answered a lease update with `NotFound`: the next is an insert.
    lease_exists: bool,
    register_due: Option<Instant>,
    status_due: Option<Instant>,
    lease_due: Option<Instant>,
    outbox: VecDeque<Control>,
    /// Latest unsent status per pod key.
    statuses: BTreeMap<String, PodStatusReport>,
    /// Unsent final deletes per pod key.
    deletes: BTreeMap<String, PodRef>,
    /// The key of the last status sent (round robin).
    cursor: String,
    pending: Pending,
}

impl Runner {
    fn new(agent: NodeAgent) -> Self {
        let ready_since = agent.clock.now_utc();
        let pending = Pending::new(agent.cfg.pending_replies_max);
        Self {
            agent,
            ready_since,
            connected: false,
            registered_here: false,
            lease_exists: true,
            register_due: None,
            status_due: None,
            lease_due: None,
            outbox: VecDeque::new(),
            statuses: BTreeMap::new(),
            deletes: BTreeMap::new(),
            cursor: String::new(),
            pending,
        }
    }

    async fn run(
        mut self,
        mut inputs: NodeInputs,
        upstream: mpsc::Sender<Message>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), Error> {
        tokio::pin!(shutdown);
        let (mut cloud_open, mut replies_open, mut reports_open) = (true, true, true);
        if inputs.cloud.borrow_and_update().is_connected() {
            self.on_connect();
        }
        loop {
            let due = self.next_due();
            let has_work = self.connected && self.has_work();
            let step = tokio::select! {
                biased;
                () = &mut shutdown => Step::Shutdown,
                r = inputs.cloud.changed(), if cloud_open => Step::Cloud(r.is_ok()),
                p = upstream.reserve(), if has_work => Step::Send(p),
                () = sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => Step::Due,
                m = inputs.replies.recv(), if replies_open => Step::Reply(m),
                r = inputs.reports.recv(), if reports_open => Step::Report(r),
            };
            match step {
                Step::Shutdown => return Ok(()),
                Step::Cloud(true) => {
                    let connected = inputs.cloud.borrow_and_update().is_connected();
                    self.on_cloud(connected);
                }
                Step::Cloud(false) => {
                    cloud_open = false;
                    self.on_cloud(false);
                }
                Step::Send(Ok(permit)) => {
                    if let Some(msg) = self.next_message() {
                        permit.send(msg);
                    }
                }
                Step::Send(Err(_)) => return Err(Error::UpstreamClosed),
                Step::Due => self.on_due(),
                Step::Reply(Some(msg)) => self.on_reply(&msg),
                Step::Reply(None) => replies_open = false,
                Step::Report(Some(report)) => self.on_report(report),
                Step::Report(None) => reports_open = false,
            }
        }
    }

    /// A state change. EdgeHub publishes `Connected` once per session, so every
    /// `Connected` seen is a new session, even if the states in between were missed.
    fn on_cloud(&mut self, connected: bool) {
        if connected {
            self.on_connect();
        } else if self.connected {
            info!("cloud disconnected; node status paused");
            self.reset_session(false);
        }
    }

    fn on_connect(&mut self) {
        info!("cloud connected; sending inventory and registration");
        self.reset_session(true);
        self.outbox.push_back(Control::Inventory);
        self.outbox.push_back(Control::Register);
    }

    fn reset_session(&mut self, connected: bool) {
        self.connected = connected;
        self.agent.metrics.set_connected(connected);
        self.registered_here = false;
        self.register_due = None;
        self.status_due = None;
        self.lease_due = None;
        self.outbox.clear();
        self.pending.clear();
    }

    fn has_work(&self) -> bool {
        !self.outbox.is_empty() || !self.deletes.is_empty() || !self.statuses.is_empty()
    }

    fn next_due(&self) -> Option<Instant> {
        if !self.connected {
            return None;
        }
        [self.register_due, self.status_due, self.lease_due]
            .into_iter()
            .flatten()
            .min()
    }

    fn on_due(&mut self) {
        let now = Instant::now();
        let passed = |d: Option<Instant>| d.is_some_and(|d| d <= now);
        if passed(self.register_due) {
            self.register_due = None;
            self.push_control(Control::Register);
        }
        if passed(self.status_due) {
            self.status_due = Some(now + self.agent.cfg.status_update_period);
            self.push_control(Control::NodeStatus);
        }
        if passed(self.lease_due) {
            self.lease_due = Some(now + self.agent.cfg.lease_renew_period);
            self.push_control(Control::Lease);
        }
    }

    /// Queues `c` unless the same kind is queued already (ACKs: unless the outbox is full).
    fn push_control(&mut self, c: Control) {
        let same = |q: &Control| std::mem::discriminant(q) == std::mem::discriminant(&c);
        match c {
            Control::Ack(_) if self.outbox.len() >= OUTBOX_MAX => {
                debug!("outbox full; dropping the ACK of a reply");
            }
            Control::Ack(_) => self.outbox.push_back(c),
            _ if self.outbox.iter().any(same) => {}
            _ => self.outbox.push_back(c),
        }
    }

    fn on_report(&mut self, report: PodReport) {
        match report {
            PodReport::Status(s) => {
                let key = format!("{}/{}", s.namespace, s.name);
                if self.statuses.insert(key, s).is_some() {
                    metrics::inc(&self.agent.metrics.pod_statuses_coalesced);
                }
            }
            PodReport::ReadyForRemoval {
                namespace,
                name,
                uid,
            } => {
                let key = format!("{namespace}/{name}");
                self.statuses.remove(&key);
                let pod = PodRef {
                    namespace,
                    name,
                    uid,
                };
                self.deletes.insert(key, pod);
            }
        }
        self.update_waiting();
    }

    fn update_waiting(&self) {
        let waiting = self.statuses.len() + self.deletes.len();
        self.agent.metrics.set_pod_reports_waiting(waiting);
    }

    fn on_reply(&mut self, msg: &Message) {
        if msg.delivery() == Delivery::Ack {
            let now = self.agent.clock.now_millis();
            let ack = Message::ack_for(msg, &mut *self.agent.ids, now);
            self.push_control(Control::Ack(Box::new(ack)));
        }
        let Some(req) = self.pending.take(&msg.header.parent_id) else {
            metrics::inc(&self.agent.metrics.replies_unmatched);
            debug!(parent = %msg.header.parent_id, "reply to no request in flight");
            return;
        };
        let outcome = reply::outcome(msg);
        match req {
            Request::Register => self.on_register_reply(&outcome),
            Request::Lease if outcome.not_found() => {
                info!("the cloud has no lease for this node; creating it");
                self.lease_exists = false;
                self.lease_due = self.connected.then(Instant::now);
            }
            Request::Lease if outcome == Outcome::Ok => self.lease_exists = true,
            _ => {}
        }
        if let Outcome::Failed { reason, message } = outcome
            && !(req == Request::Register && reason == "AlreadyExists")
        {
            metrics::inc(&self.agent.metrics.requests_failed);
            warn!(request = ?req, %reason, %message, "the cloud refused a request");
        }
    }

    fn on_register_reply(&mut self, outcome: &Outcome) {
        if *outcome != Outcome::Ok && !outcome.already_exists() {
            return;
        }
        if !self.agent.metrics.is_registered() {
            info!("node registered");
        }
        self.agent.metrics.set_registered();
        if self.connected && !self.registered_here {
            self.registered_here = true;
            self.register_due = None;
            let now = Instant::now();
            self.status_due = Some(now);
            self.lease_due = Some(now);
        }
    }

    /// The next message to send: control messages first, then pod deletes, then statuses.
    fn next_message(&mut self) -> Option<Message> {
        while let Some(c) = self.outbox.pop_front() {
            if let Some(msg) = self.control_message(c) {
                return Some(msg);
            }
        }
        let msg = if let Some((_, pod)) = self.deletes.pop_first() {
            let msg = self.pod_delete(&pod);
            self.track(&msg, Request::PodDelete);
            metrics::inc(&self.agent.metrics.pod_deletes_sent);
            msg
        } else {
            let report = self.next_status()?;
            let msg = self.pod_status(&report);
            self.track(&msg, Request::PodStatus);
            metrics::inc(&self.agent.metrics.pod_statuses_sent);
            msg
        };
        self.update_waiting();
        Some(msg)
    }

    /// The pending status after the cursor, wrapping around.
    fn next_status(&mut self) -> Option<PodStatusReport> {
        let after = (Bound::Excluded(self.cursor.clone()), Bound::Unbounded);
        let key = self
            .statuses
            .range(after)
            .next()
            .or_else(|| self.statuses.iter().next())
            .map(|(k, _)| k.clone())?;
        let report = self.statuses.remove(&key)?;
        self.cursor = key;
        Some(report)
    }

    fn control_message(&mut self, c: Control) -> Option<Message> {
        let metrics = self.agent.metrics.clone();
        let msg = match c {
            Control::Inventory => return self.inventory(),
            Control::Ack(msg) => return Some(*msg),
            Control::Register => {
                self.register_due = Some(Instant::now() + self.agent.cfg.register_retry);
                metrics::inc(&metrics.registrations_sent);
                let msg = self.register();
                self.track(&msg, Request::Register);
                msg
            }
            Control::NodeStatus => {
                metrics::inc(&metrics.node_status_sent);
                let msg = self.node_status();
                self.track(&msg, Request::NodeStatus);
                msg
            }
            Control::Lease => {
                metrics::inc(&metrics.leases_sent);
                let msg = self.lease();
                self.track(&msg, Request::Lease);
                msg
            }
        };
        Some(msg)
    }

    fn track(&mut self, msg: &Message, req: Request) {
        self.pending.insert(msg.header.id.clone(), req);
        metrics::inc(&self.agent.metrics.messages_out);
    }

    fn message(&mut self, op: Operation, resource: String, content: Content) -> Message {
        let route = Route::new(Source::Edged, Group::Resource, op, resource);
        let id = self.agent.ids.next_msg_id();
        Message::new(id, self.agent.clock.now_millis(), route, content)
    }

    fn inventory(&mut self) -> Option<Message> {
        match self.agent.store.inventory() {
            Ok(inv) => {
                let now = self.agent.clock.now_millis();
                let msg = inv.to_message(&self.agent.cfg.node, &mut *self.agent.ids, now);
                debug!(objects = inv.objects.len(), "sending inventory");
                metrics::inc(&self.agent.metrics.messages_out);
                Some(msg)
            }
            Err(e) => {
                warn!(error = %e, "cannot read the inventory; the cloud will send everything");
                None
            }
        }
    }

    fn register(&mut self) -> Message {
        let node = objects::node_object(
            &self.agent.cfg,
            self.agent.clock.now_utc(),
            self.ready_since,
        );
        let resource = format!("{NULL_NAMESPACE}/node/{}", self.agent.cfg.node);
        self.message(Operation::Insert, resource, Content::new(node))
    }

    fn node_status(&mut self) -> Message {
        let now = self.agent.clock.now_utc();
        let patch = objects::status_patch(&self.agent.cfg, now, self.ready_since);
        let content = Content::text(patch.to_string());
        let resource = format!("{NULL_NAMESPACE}/nodepatch/{}", self.agent.cfg.node);
        self.message(Operation::Patch, resource, content)
    }

    fn lease(&mut self) -> Message {
        let lease = objects::lease(&self.agent.cfg, self.agent.clock.now_utc());
        let op = if self.lease_exists {
            Operation::Update
        } else {
            Operation::Insert
        };
        let resource = format!("{LEASE_NAMESPACE}/lease/{}", self.agent.cfg.node);
        self.message(op, resource, Content::new(lease))
    }

    fn pod_status(&mut self, r: &PodStatusReport) -> Message {
        let resource = format!("{}/podstatus/{}", r.namespace, r.name);
        self.message(
            Operation::Update,
            resource,
            Content::new(r.podstatus_content()),
        )
    }

    fn pod_delete(&mut self, pod: &PodRef) -> Message {
        let resource = format!("{}/pod/{}", pod.namespace, pod.name);
        let content = Content::new(objects::delete_options(&pod.uid));
        self.message(Operation::Delete, resource, content)
    }
}
