//! [`PodManager`]: kubelet's pod workers in one task. It reconciles the pods the
//! [`MetaStore`] holds for this node with what the [`Runtime`] runs, applies restart policies
//! with a capped exponential back-off, and reports pod status.
//!
//! *Source of truth.* Messages from MetaManager are only triggers: for a pod message the
//! manager re-reads that pod from the store, for a configmap/secret message it refreshes the
//! volumes of the pods that use it and retries containers blocked on it. So ordering and
//! duplicates of messages do not matter, and a restart restores everything from SQLite
//! ([`PodManager::run`] starts with a full reconcile, after the runtime removed orphans).
//!
//! *Pod lifecycle.* A new pod gets a sandbox, then its containers start (each resolved by
//! `resolve`). A spec change (containers, volumes or restart policy) stops every container and
//! starts the new spec once all have exited; restart counts carry over. A pod with a
//! `deletionTimestamp` is stopped within its grace period and then reported as
//! [`PodReport::ReadyForRemoval`] (kubelet's final delete); a pod gone from the store is
//! stopped and its sandbox removed.
//!
//! *Restarts.* kubelet's CrashLoopBackOff: the first restart is immediate, then
//! [`Backoff::initial`] doubling up to [`Backoff::max`]; a container that ran for
//! [`Backoff::reset_after`] starts over at no delay. Monotonic time is `tokio::time`.
//!
//! *Reports.* Status changes mark the pod dirty; the report is computed when the bounded report
//! channel has room, so a slow consumer gets the latest status of each pod, never a backlog.
//!
//! *Shutdown.* All containers are stopped (grace [`PodManagerConfig::shutdown_grace`]); the
//! store is untouched, so the next start restores them.

use std::{
    collections::{BTreeMap, BTreeSet},
    future::Future,
    path::PathBuf,
    sync::Arc,
    time::Duration,
};

use ke_core::Clock;
use ke_proto::{Content, Message, Operation, ResourcePath, ResourceType};
use serde_json::{Value, json};
use tokio::{
    sync::mpsc,
    time::{Instant, sleep_until, timeout_at},
};
use tracing::{debug, info, warn};

use super::{
    Error,
    pod::{Lifecycle, Pod},
    resolve::{self, ConfigError},
    runtime::{AdoptedContainer, ContainerConfig, ContainerId, PullPolicy, Runtime, RuntimeEvent},
    spec::PodDef,
    status::{self, State, Terminated},
};
use crate::metamanager::MetaStore;

/// kubelet's container restart back-off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay before the second restart (the first is immediate). kubelet: 10 s.
    pub initial: Duration,
    /// Cap of the doubling delay. kubelet: 300 s.
    pub max: Duration,
    /// A container that ran this long before exiting restarts with no delay again.
    /// kubelet: 600 s (twice the cap).
    pub reset_after: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(10),
            max: Duration::from_secs(300),
            reset_after: Duration::from_secs(600),
        }
    }
}

impl Backoff {
    /// The delay before a restart at back-off `level` (0 for the first restart):
    /// `0, initial, 2·initial, 4·initial, …` capped at `max`.
    pub fn delay(&self, level: u32) -> Duration {
        match level {
            0 => Duration::ZERO,
            n => {
                let factor = 1u32.checked_shl(n - 1).unwrap_or(u32::MAX);
                self.initial.saturating_mul(factor).min(self.max)
            }
        }
    }
}

/// Configuration of the pod manager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodManagerConfig {
    /// This node's name: pods whose `spec.nodeName` differs are ignored.
    pub node_name: String,
    /// Data directory; volumes go to `<root_dir>/pods/<uid>/volumes/`.
    pub root_dir: PathBuf,
    /// The node's IP, reported as `hostIP`/`podIP` (process pods share the host network).
    pub node_ip: Option<String>,
    /// Restart back-off.
    pub backoff: Backoff,
    /// Cap on any stop grace period (a pod's `terminationGracePeriodSeconds` defaults to 30).
    pub grace_max: Duration,
    /// Grace given to containers when the manager shuts down.
    pub shutdown_grace: Duration,
    /// Retry interval for containers blocked on a missing configmap/secret or sandbox error.
    pub retry_interval: Duration,
}

impl PodManagerConfig {
    /// kubelet-like defaults for `node_name` under `root_dir`.
    pub fn new(node_name: impl Into<String>, root_dir: impl Into<PathBuf>) -> Self {
        Self {
            node_name: node_name.into(),
            root_dir: root_dir.into(),
            node_ip: None,
            backoff: Backoff::default(),
            grace_max: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(5),
            retry_interval: Duration::from_secs(10),
        }
    }
}

/// A pod's status, ready to go upstream.
#[derive(Debug, Clone, PartialEq)]
pub struct PodStatusReport {
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.uid`.
    pub uid: String,
    /// The `v1.PodStatus` object.
    pub status: Value,
}

impl PodStatusReport {
    /// The content of a KubeEdge `podstatus` update: `{"UID","Name","Status"}`.
    pub fn podstatus_content(&self) -> Value {
        json!({"UID": self.uid, "Name": self.name, "Status": self.status})
    }
}

/// What the pod manager tells the rest of edgecore.
#[derive(Debug, Clone, PartialEq)]
pub enum PodReport {
    /// A pod's status changed.
    Status(PodStatusReport),
    /// A pod marked for deletion has no running container left: the cloud may remove it
    /// (kubelet's final delete with grace 0).
    ReadyForRemoval {
        /// `metadata.namespace`.
        namespace: String,
        /// `metadata.name`.
        name: String,
        /// `metadata.uid`.
        uid: String,
    },
}

/// One turn of the manager's loop.
#[expect(
    clippy::large_enum_variant,
    reason = "one short-lived value per loop turn; boxing would allocate per message"
)]
enum Step<'a> {
    Shutdown,
    Message(Option<Message>),
    Event(Option<RuntimeEvent>),
    Due,
    Report(Result<mpsc::Permit<'a, PodReport>, mpsc::error::SendError<()>>),
}

/// Reconciles the node's pods with a [`Runtime`] (see the module docs).
pub struct PodManager<R: Runtime> {
    cfg: PodManagerConfig,
    runtime: R,
    store: MetaStore,
    clock: Arc<dyn Clock>,
    /// Known pods by `<namespace>/<name>`.
    pods: BTreeMap<String, Pod>,
    /// Pods whose status may have changed since the last report.
    dirty: BTreeSet<String>,
    /// Pods to report as ready for removal.
    finals: BTreeSet<String>,
    /// Set once shutdown began: exits are final, nothing restarts.
    stopping: bool,
}

impl<R: Runtime> std::fmt::Debug for PodManager<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodManager")
            .field("runtime", &self.runtime.name())
            .field("pods", &self.pods.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl<R: Runtime> PodManager<R> {
    /// A manager running the pods of `store` on `runtime`.
    pub fn new(cfg: PodManagerConfig, runtime: R, store: MetaStore, clock: Arc<dyn Clock>) -> Self {
        Self {
            cfg,
            runtime,
            store,
            clock,
            pods: BTreeMap::new(),
            dirty: BTreeSet::new(),
            finals: BTreeSet::new(),
            stopping: false,
        }
    }

    /// Restores the node's pods from the store, then reconciles on every message from
    /// MetaManager (`rx`), container exit and back-off deadline until `shutdown` resolves;
    /// then stops all containers. Reports go to `reports`.
    pub async fn run(
        mut self,
        mut rx: mpsc::Receiver<Message>,
        reports: mpsc::Sender<PodReport>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), Error> {
        self.restore().await?;
        tokio::pin!(shutdown);
        let mut rx_open = true;
        loop {
            self.start_due().await;
            let due = self.next_due();
            let want_report = !self.dirty.is_empty() || !self.finals.is_empty();
            let step = tokio::select! {
                () = &mut shutdown => Step::Shutdown,
                msg = rx.recv(), if rx_open => Step::Message(msg),
                event = self.runtime.next_event() => Step::Event(event),
                () = sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => Step::Due,
                permit = reports.reserve(), if want_report => Step::Report(permit),
            };
            match step {
                Step::Shutdown => break,
                Step::Message(Some(msg)) => self.on_message(msg).await,
                Step::Message(None) => rx_open = false,
                Step::Event(Some(event)) => self.on_event(event).await,
                Step::Event(None) => return Err(Error::RuntimeClosed),
                Step::Due => {}
                Step::Report(Ok(permit)) => {
                    if let Some(report) = self.next_report() {
                        permit.send(report);
                    }
                }
                Step::Report(Err(_)) => return Err(Error::ReportsClosed),
            }
        }
        self.stop_all().await;
        Ok(())
    }

    /// Removes orphans of a previous run, then reconciles every pod of this node in the store.
    async fn restore(&mut self) -> Result<(), Error> {
        let pods = self.store.pods_for_node(&self.cfg.node_name)?;
        let defs: Vec<PodDef> = pods.into_iter().filter_map(PodDef::from_object).collect();
        let keep: BTreeSet<String> = defs.iter().map(|d| d.uid.clone()).collect();
        let adopted = match self.runtime.remove_orphans(&keep).await {
            Ok(adopted) => adopted,
            Err(e) => {
                warn!(error = %e, "removing orphaned containers failed");
                Vec::new()
            }
        };
        self.remove_stale_volumes(&keep);
        info!(
            pods = defs.len(),
            adopted = adopted.len(),
            runtime = self.runtime.name(),
            "restoring pods from the store"
        );
        for def in defs {
            let key = def.key();
            let desired = self.own(Some(def));
            self.sync_with(&key, desired).await;
        }
        for a in adopted {
            self.adopt(a).await;
        }
        Ok(())
    }

    /// Records a container instance that outlived the previous run as its container's live
    /// instance (no new start). One the pod no longer wants (pod stopping, container gone,
    /// another spec) is stopped instead; its attempt still counts, so the next instance gets a
    /// fresh attempt number.
    async fn adopt(&mut self, a: AdoptedContainer) {
        let runtime = self.runtime.name();
        let now_text = self.clock.now_rfc3339();
        let found = self
            .pods
            .iter_mut()
            .find(|(_, p)| p.def.uid == a.pod_uid)
            .map(|(k, p)| (k.clone(), p));
        let mut wanted = false;
        if let Some((key, pod)) = found {
            let same_spec = PodDef::spec_hash(&pod.fingerprint) == a.spec_hash;
            let active = pod.lifecycle == Lifecycle::Active && pod.sticky.is_none();
            if let Some(c) = pod.containers.iter_mut().find(|c| c.view.name == a.name) {
                c.attempts = c.attempts.max(a.attempt.saturating_add(1));
                if same_spec && active && c.id.is_none() {
                    let started_at = a.started_at.clone().unwrap_or(now_text);
                    c.started(a.id.clone(), runtime, started_at, Instant::now());
                    pod.sandbox_ready = true;
                    wanted = true;
                    info!(key, container = %a.name, id = %a.id, attempt = a.attempt, "container adopted");
                }
            }
            self.dirty.insert(key);
        }
        if !wanted {
            info!(id = %a.id, container = %a.name, "stopping a container the pod no longer wants");
            if let Err(e) = self
                .runtime
                .stop_container(&a.id, self.cfg.shutdown_grace)
                .await
            {
                warn!(error = %e, id = %a.id, "stopping container failed");
            }
        }
    }

    fn remove_stale_volumes(&self, keep: &BTreeSet<String>) {
        let Ok(entries) = std::fs::read_dir(self.cfg.root_dir.join("pods")) else {
            return;
        };
        for entry in entries.flatten() {
            let uid = entry.file_name().to_string_lossy().into_owned();
            if !keep.contains(&uid) {
                let _ = std::fs::remove_dir_all(entry.path().join("volumes"));
                let _ = std::fs::remove_dir(entry.path());
            }
        }
    }

    async fn on_message(&mut self, mut msg: Message) {
        if msg.is_reply() {
            return;
        }
        let ResourcePath::Object {
            namespace,
            kind,
            name: Some(name),
        } = msg.resource_path()
        else {
            return;
        };
        let ns = namespace.unwrap_or_default();
        match kind {
            ResourceType::Pod => {
                let key = format!("{ns}/{name}");
                // MetaManager forwards a change only after storing it, so the message carries
                // what the store now holds (or newer, if another change follows in the
                // channel: that one is forwarded too). Using it saves reading the pod back
                // from SQLite and parsing it again; content that is not a pod object falls
                // back to the store.
                let desired = match msg.route.operation {
                    Operation::Delete => None,
                    Operation::Insert | Operation::Update => {
                        match pod_object(std::mem::take(&mut msg.content))
                            .and_then(PodDef::from_object)
                        {
                            Some(def) if def.key() == key => self.own(Some(def)),
                            _ => self.desired(&key),
                        }
                    }
                    _ => self.desired(&key),
                };
                self.sync_with(&key, desired).await;
            }
            ResourceType::ConfigMap | ResourceType::Secret => {
                self.config_changed(&ns, &kind, &name);
            }
            _ => {}
        }
    }

    /// The pod at `key` as the store holds it for this node.
    fn desired(&self, key: &str) -> Option<PodDef> {
        let (ns, name) = key.split_once('/')?;
        let obj = match self.store.get(ns, &ResourceType::Pod, name) {
            Ok(obj) => obj?,
            Err(e) => {
                warn!(error = %e, key, "reading pod from the store failed");
                return None;
            }
        };
        self.own(PodDef::from_object(obj))
    }

    /// `def` if it is bound to this node.
    fn own(&self, def: Option<PodDef>) -> Option<PodDef> {
        def.filter(|d| d.spec.node_name.as_deref() == Some(self.cfg.node_name.as_str()))
    }

    /// Brings the pod at `key` in line with the store, given the pod as read from it
    /// (`None`: the store holds no pod of this node at `key`).
    async fn sync_with(&mut self, key: &str, desired: Option<PodDef>) {
        self.reconcile(key, desired).await;
        if self.settle(key).await {
            let desired = self.desired(key);
            self.reconcile(key, desired).await;
        }
    }

    async fn reconcile(&mut self, key: &str, desired: Option<PodDef>) {
        let Some(pod) = self.pods.get_mut(key) else {
            if let Some(def) = desired {
                // A pod already marked for deletion (e.g. found at restore) never starts; it is
                // tracked only to report it ready for removal.
                let deleting = def.deleting;
                self.create(def, &BTreeMap::new());
                if deleting {
                    self.begin_stop(key, Lifecycle::Terminating).await;
                }
            }
            return;
        };
        let next = match desired {
            None => Lifecycle::Removing,
            Some(def) if def.uid != pod.def.uid => Lifecycle::Removing,
            Some(def) if def.deleting => {
                pod.def = def;
                Lifecycle::Terminating
            }
            Some(def) if def.fingerprint() != pod.fingerprint => {
                info!(key, "pod spec changed; replacing containers");
                pod.next_def = Some(def);
                Lifecycle::Replacing
            }
            Some(def) => {
                pod.def = def;
                return;
            }
        };
        self.begin_stop(key, next).await;
    }

    /// Moves the pod to a stopping lifecycle and asks every live container to stop.
    async fn begin_stop(&mut self, key: &str, next: Lifecycle) {
        let Some(pod) = self.pods.get_mut(key) else {
            return;
        };
        if pod.lifecycle == Lifecycle::Removing || pod.lifecycle == next {
            return;
        }
        pod.lifecycle = next;
        let grace_secs = u64::try_from(pod.def.grace_seconds.unwrap_or(30)).unwrap_or(0);
        let grace = Duration::from_secs(grace_secs).min(self.cfg.grace_max);
        for c in &mut pod.containers {
            c.next_start = None;
            if let Some(id) = &c.id
                && let Err(e) = self.runtime.stop_container(id, grace).await
            {
                warn!(error = %e, %id, "stopping container failed");
            }
        }
        self.dirty.insert(key.to_owned());
    }

    /// Finishes a stopping pod once no container runs. True if the pod was removed (a
    /// successor in the store may need creating).
    async fn settle(&mut self, key: &str) -> bool {
        let Some(pod) = self.pods.get_mut(key) else {
            return false;
        };
        if self.stopping || pod.lifecycle == Lifecycle::Active || pod.has_live() {
            return false;
        }
        match pod.lifecycle {
            Lifecycle::Replacing => {
                let Some(def) = pod.next_def.take() else {
                    return false;
                };
                let carried = pod.counters();
                self.pods.remove(key);
                self.create(def, &carried);
                false
            }
            Lifecycle::Terminating => {
                if !pod.final_reported {
                    pod.final_reported = true;
                    pod.sticky = Some(pod.terminal_phase());
                    self.finals.insert(key.to_owned());
                    self.dirty.insert(key.to_owned());
                }
                false
            }
            Lifecycle::Removing => {
                let uid = pod.def.uid.clone();
                self.remove(key, &uid).await;
                true
            }
            Lifecycle::Active => false,
        }
    }

    async fn remove(&mut self, key: &str, uid: &str) {
        if let Err(e) = self.runtime.stop_pod(uid).await {
            warn!(error = %e, key, "removing sandbox failed");
        }
        let pod_dir = self.cfg.root_dir.join("pods").join(uid);
        let _ = std::fs::remove_dir_all(pod_dir.join("volumes"));
        let _ = std::fs::remove_dir(&pod_dir);
        self.pods.remove(key);
        self.dirty.remove(key);
        self.finals.remove(key);
        info!(key, uid, "pod removed");
    }

    /// Starts tracking `def`; its containers start at once. `carried` are restart counters of
    /// a previous spec, by container name.
    fn create(&mut self, def: PodDef, carried: &BTreeMap<String, (u32, u32)>) {
        if !def.spec.init_containers.is_empty() {
            warn!(pod = %def.key(), "init containers are not supported; skipping them");
        }
        let key = def.key();
        let pod = Pod::new(def, carried, self.clock.now_rfc3339(), Instant::now());
        info!(key, uid = %pod.def.uid, containers = pod.containers.len(), "pod added");
        self.pods.insert(key.clone(), pod);
        self.dirty.insert(key);
    }

    fn config_changed(&mut self, ns: &str, kind: &ResourceType, name: &str) {
        let now = Instant::now();
        for (key, pod) in &mut self.pods {
            if pod.def.namespace != ns || !resolve::references(&pod.def, kind, name) {
                continue;
            }
            debug!(key, %kind, name, "referenced config changed");
            if pod.volumes.is_some() {
                let dir = self
                    .cfg
                    .root_dir
                    .join("pods")
                    .join(&pod.def.uid)
                    .join("volumes");
                match resolve::materialise_volumes(&self.store, &pod.def, &dir) {
                    Ok(v) => pod.volumes = Some(v),
                    Err(e) => warn!(key, message = %e.message, "refreshing volumes failed"),
                }
            }
            if pod.lifecycle == Lifecycle::Active {
                for c in pod.containers.iter_mut().filter(|c| c.is_blocked()) {
                    c.next_start = Some(now);
                }
            }
        }
    }

    /// The earliest scheduled container start.
    fn next_due(&self) -> Option<Instant> {
        self.pods
            .values()
            .filter(|p| p.lifecycle == Lifecycle::Active)
            .flat_map(|p| p.containers.iter().filter_map(|c| c.next_start))
            .min()
    }

    /// Starts every container whose time has come.
    async fn start_due(&mut self) {
        if self.stopping {
            return;
        }
        let now = Instant::now();
        let due: Vec<(String, usize)> = self
            .pods
            .iter()
            .filter(|(_, p)| p.lifecycle == Lifecycle::Active && p.sticky.is_none())
            .flat_map(|(k, p)| {
                p.containers
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| c.next_start.is_some_and(|t| t <= now))
                    .map(|(i, _)| (k.clone(), i))
            })
            .collect();
        for (key, idx) in due {
            self.start_container(&key, idx).await;
            self.dirty.insert(key);
        }
    }

    /// Prepares sandbox, volumes and config for container `idx` of `key`; on success starts it.
    async fn start_container(&mut self, key: &str, idx: usize) {
        let retry = Instant::now() + self.cfg.retry_interval;
        let prepared = self.prepare(key, idx).await;
        let Some(pod) = self.pods.get_mut(key) else {
            return;
        };
        let Some(c) = pod.containers.get_mut(idx) else {
            return;
        };
        c.next_start = None;
        let cfg = match prepared {
            Ok(cfg) => cfg,
            Err(e) => {
                debug!(key, reason = e.reason, message = %e.message, "container blocked");
                c.block(e);
                c.next_start = Some(retry);
                return;
            }
        };
        c.attempts += 1;
        let sandbox = pod.sandbox_config();
        let started = self.runtime.start_container(&sandbox, &cfg).await;
        let now_text = self.clock.now_rfc3339();
        let runtime = self.runtime.name();
        let Some(c) = self
            .pods
            .get_mut(key)
            .and_then(|p| p.containers.get_mut(idx))
        else {
            return;
        };
        match started {
            Ok(id) => c.started(id, runtime, now_text, Instant::now()),
            Err(e) => {
                warn!(error = %e, key, container = %c.view.name, "container failed to start");
                let term = Terminated {
                    exit_code: 128,
                    signal: None,
                    reason: "StartError".to_owned(),
                    message: Some(e.to_string()),
                    started_at: None,
                    finished_at: now_text,
                    container_id: None,
                };
                self.exited(key, idx, term);
            }
        }
    }

    /// Sandbox, volumes, env and mounts for container `idx` of `key`.
    async fn prepare(&mut self, key: &str, idx: usize) -> Result<ContainerConfig, ConfigError> {
        let Some(pod) = self.pods.get_mut(key) else {
            return Err(resolve_gone());
        };
        if !pod.sandbox_ready {
            let sandbox = pod.sandbox_config();
            self.runtime
                .start_pod(&sandbox)
                .await
                .map_err(|e| ConfigError {
                    reason: resolve::CONTAINER_CREATING,
                    message: e.to_string(),
                })?;
            pod.sandbox_ready = true;
        }
        let volumes = match &pod.volumes {
            Some(v) => v.clone(),
            None => {
                let dir = self
                    .cfg
                    .root_dir
                    .join("pods")
                    .join(&pod.def.uid)
                    .join("volumes");
                let v = resolve::materialise_volumes(&self.store, &pod.def, &dir)?;
                pod.volumes = Some(v.clone());
                v
            }
        };
        let spec = pod.def.spec.containers.get(idx).ok_or_else(resolve_gone)?;
        let env = resolve::container_env(&self.store, &pod.def, spec, self.cfg.node_ip.as_deref())?;
        let mounts = resolve::container_mounts(spec, &volumes)?;
        let expand =
            |v: &[String]| -> Vec<String> { v.iter().map(|s| resolve::expand(s, &env)).collect() };
        Ok(ContainerConfig {
            name: spec.name.clone(),
            image: spec.image.clone(),
            command: expand(&spec.command),
            args: expand(&spec.args),
            env: env.clone(),
            mounts,
            working_dir: spec.working_dir.clone(),
            attempt: pod.containers.get(idx).map_or(0, |c| c.attempts),
            image_pull_policy: PullPolicy::from_spec(
                spec.image_pull_policy.as_deref(),
                &spec.image,
            ),
            spec_hash: PodDef::spec_hash(&pod.fingerprint),
        })
    }

    async fn on_event(&mut self, event: RuntimeEvent) {
        let RuntimeEvent::Exited {
            id,
            exit_code,
            signal,
        } = event;
        let Some((key, idx)) = self.find(&id) else {
            debug!(%id, "exit of an unknown container");
            return;
        };
        let finished_at = self.clock.now_rfc3339();
        let Some(c) = self
            .pods
            .get_mut(&key)
            .and_then(|p| p.containers.get_mut(idx))
        else {
            return;
        };
        let started_at = match &c.view.state {
            State::Running { started_at } => Some(started_at.clone()),
            _ => None,
        };
        let term = Terminated {
            exit_code,
            signal,
            reason: if exit_code == 0 { "Completed" } else { "Error" }.to_owned(),
            message: None,
            started_at,
            finished_at,
            container_id: c.view.container_id.clone(),
        };
        self.exited(&key, idx, term);
        if self.settle(&key).await {
            let desired = self.desired(&key);
            self.reconcile(&key, desired).await;
        }
    }

    fn find(&self, id: &ContainerId) -> Option<(String, usize)> {
        self.pods.iter().find_map(|(key, pod)| {
            let idx = pod
                .containers
                .iter()
                .position(|c| c.id.as_ref() == Some(id))?;
            Some((key.clone(), idx))
        })
    }

    /// Records an exit and applies the restart policy.
    fn exited(&mut self, key: &str, idx: usize, term: Terminated) {
        let now = Instant::now();
        let backoff = self.cfg.backoff;
        let stopping = self.stopping;
        let Some(pod) = self.pods.get_mut(key) else {
            return;
        };
        let (policy, pod_name) = (pod.def.spec.restart_policy, pod.def.key());
        let active = pod.lifecycle == Lifecycle::Active && !stopping;
        let Some(c) = pod.containers.get_mut(idx) else {
            return;
        };
        let ran = c.started.take().map(|s| now.saturating_duration_since(s));
        c.id = None;
        if !(active && policy.restarts(term.exit_code)) {
            c.view.state = State::Terminated(term);
        } else {
            if ran.is_some_and(|r| r >= backoff.reset_after) {
                c.backoff_level = 0;
            }
            let delay = backoff.delay(c.backoff_level);
            c.backoff_level = c.backoff_level.saturating_add(1);
            c.next_start = Some(now + delay);
            c.back_off(term, delay, &pod_name);
        }
        if active {
            let phase = status::phase(policy, &pod.views());
            if phase.is_terminal() {
                pod.sticky = Some(phase);
            }
        }
        self.dirty.insert(key.to_owned());
    }

    /// The next report: the latest status of a dirty pod (skipping unchanged ones), else a
    /// removal notice.
    fn next_report(&mut self) -> Option<PodReport> {
        while let Some(key) = self.dirty.pop_first() {
            let now = self.clock.now_rfc3339();
            let node_ip = self.cfg.node_ip.clone();
            let Some(pod) = self.pods.get_mut(&key) else {
                continue;
            };
            let status = pod.status(node_ip.as_deref(), &now);
            if pod.last_report.as_ref() == Some(&status) {
                continue;
            }
            pod.last_report = Some(status.clone());
            return Some(PodReport::Status(PodStatusReport {
                namespace: pod.def.namespace.clone(),
                name: pod.def.name.clone(),
                uid: pod.def.uid.clone(),
                status,
            }));
        }
        let key = self.finals.pop_first()?;
        let pod = self.pods.get(&key)?;
        Some(PodReport::ReadyForRemoval {
            namespace: pod.def.namespace.clone(),
            name: pod.def.name.clone(),
            uid: pod.def.uid.clone(),
        })
    }

    /// Stops every container and waits (bounded) for their exits; leaves them running if the
    /// runtime's containers outlive edgecore (they are adopted at the next start).
    async fn stop_all(&mut self) {
        self.stopping = true;
        if self.runtime.containers_outlive_edgecore() {
            info!(
                runtime = self.runtime.name(),
                "leaving containers running for the next start"
            );
            return;
        }
        let grace = self.cfg.shutdown_grace;
        let ids: Vec<ContainerId> = self
            .pods
            .values()
            .flat_map(|p| p.containers.iter().filter_map(|c| c.id.clone()))
            .collect();
        info!(containers = ids.len(), "stopping all containers");
        for id in &ids {
            if let Err(e) = self.runtime.stop_container(id, grace).await {
                warn!(error = %e, %id, "stopping container failed");
            }
        }
        let deadline = Instant::now() + grace + Duration::from_secs(2);
        while self.pods.values().any(Pod::has_live) {
            match timeout_at(deadline, self.runtime.next_event()).await {
                Ok(Some(event)) => self.on_event(event).await,
                Ok(None) | Err(_) => break,
            }
        }
    }
}

fn resolve_gone() -> ConfigError {
    ConfigError {
        reason: resolve::CONFIG_ERROR,
        message: "pod or container no longer exists".to_owned(),
    }
}

/// The pod object a message carries: its content, or the object in a JSON-string content.
fn pod_object(content: Content) -> Option<Value> {
    match content.into_value() {
        obj @ Value::Object(_) => Some(obj),
        Value::String(s) => serde_json::from_str::<Value>(&s)
            .ok()
            .filter(Value::is_object),
        _ => None,
    }
}
