//! The workload driver (turmoil client `ctl`): waits for the fleet, runs the scenario's
//! phases through the real kube client at their times, then checks convergence against a
//! snapshot of the API server and records the safety verdicts.
//!
//! Every write the API server accepts is registered with the [`Trace`](crate::trace::Trace)
//! as expected at its node; its arrival there gives the sync latency.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use ke_apiserver::in_process::InProcess;
use ke_proto::ResourceType;
use kube::{
    Resource as _,
    api::{Api, DeleteParams, ListParams, PartialObjectMeta, Patch, PatchParams, PostParams},
};
use serde_json::{Value, json};

mod devices;

pub use devices::{DeviceApis, device_object, model_object};

use crate::{
    fleet::{self, Shared},
    outcome::{CheckKind, CheckResult},
    scenario::{DriverLink, Phase},
    trace::{Expect, NO_RESURRECTION},
};

const NS: &str = "default";
/// The annotation carrying the writer's Unix milliseconds (real mode's sync latency: the
/// load driver stamps its writes, edgemark reads the stamp when a node stores them).
pub const WRITTEN_MS: &str = "edgefleet.io/written-ms";
/// Requests in flight at once.
const CONCURRENCY: usize = 64;
/// Attempts per request while the API server is away.
const ATTEMPTS: u32 = 120;

#[derive(Debug, Clone)]
struct PodRec {
    node: u32,
    slot: usize,
}

#[derive(Debug, Default)]
struct State {
    /// Live pods by name.
    pods: BTreeMap<String, PodRec>,
    /// Latest resourceVersion of each configmap.
    cm_rv: Vec<u64>,
    generation: u64,
}

/// The driver.
pub struct Driver {
    sh: Arc<Shared>,
    client: kube::Client,
    pods: Api<Pod>,
    cms: Api<ConfigMap>,
    dev: devices::DeviceApis,
    state: Mutex<State>,
}

type HostResult = Result<(), Box<dyn std::error::Error>>;

/// An object's resourceVersion as a number (0 when absent or not decimal).
pub fn rv_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> u64 {
    meta.resource_version
        .as_deref()
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// The driver's pods collection (`/api/v1/namespaces/<NS>/pods`).
fn pods_url() -> String {
    Pod::url_path(&(), Some(NS))
}

fn now() -> Duration {
    turmoil::sim_elapsed().unwrap_or_default()
}

/// Runs the driver to its end (the client `ctl`).
pub async fn drive(sh: Arc<Shared>) -> HostResult {
    let access = sh.api_access().await;
    let client = match sh.scenario.cloud.driver_link() {
        DriverLink::InProcess => InProcess::new(access.state.clone(), &access.token)?.into_client(),
        DriverLink::Https => fleet::client(&access)?,
    };
    let d = Driver {
        pods: Api::namespaced(client.clone(), NS),
        cms: Api::namespaced(client.clone(), NS),
        dev: devices::DeviceApis::new(client.clone()),
        client,
        sh,
        state: Mutex::default(),
    };
    let observer = async {
        if d.sh.scenario.has_devices() {
            devices::observe_status(&d.sh).await;
        }
        std::future::pending::<()>().await;
    };
    tokio::select! {
        biased;
        () = d.run() => {}
        () = observer => {}
    }
    Ok(())
}

impl Driver {
    async fn run(&self) {
        let Some(t0) = self.await_ready().await else {
            return;
        };
        let phases = self.sh.scenario.workload.clone();
        let runs = phases.iter().map(|p| self.phase(t0, p));
        futures::future::join_all(runs).await;
        let quiet = t0 + Duration::from_secs(self.sh.scenario.last_event_s());
        sleep_until(quiet).await;
        // The last sensor values are those reported before now.
        self.sh
            .devices
            .stop_reports
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.converge(quiet).await;
        if self.sh.scenario.has_devices() {
            let within = Duration::from_secs(self.sh.scenario.checks.converge_within_s);
            self.converge_devices(quiet + within).await;
        }
        self.safety();
    }
}

async fn sleep_until(t: Duration) {
    let left = t.saturating_sub(now());
    tokio::time::sleep(left).await;
}

/// Retries `f` every second while it fails (the API server may be restarting); `None` on
/// 404 and 409 (gone, or already there) or when the attempts run out.
pub async fn retry<T, F, Fut>(what: &str, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    for attempt in 0..ATTEMPTS {
        match f().await {
            Ok(v) => return Some(v),
            Err(kube::Error::Api(e)) if e.code == 409 || e.code == 404 => {
                tracing::debug!(what, code = e.code, "request refused");
                return None;
            }
            Err(e) => {
                tracing::debug!(what, attempt, error = %e, "request failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    tracing::warn!(what, "request failed for good");
    None
}

impl Driver {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn connected(&self) -> usize {
        let up =
            |n: &&Arc<crate::node::NodeCtl>| n.connected.load(std::sync::atomic::Ordering::Relaxed);
        self.sh.nodes.iter().filter(up).count()
    }

    async fn await_ready(&self) -> Option<Duration> {
        let limit = Duration::from_secs(self.sh.scenario.checks.ready_within_s);
        loop {
            if let Some(t) = self.sh.ready() {
                let detail = format!(
                    "{} nodes connected at {:.1} s",
                    self.sh.names.len(),
                    t.as_secs_f64()
                );
                self.sh
                    .check(check("ready", CheckKind::Liveness, true, detail));
                return Some(t);
            }
            if now() > limit {
                let up = self
                    .sh
                    .nodes
                    .iter()
                    .filter(|n| n.connected.load(std::sync::atomic::Ordering::Relaxed))
                    .count();
                let detail = format!(
                    "only {up} of {} nodes connected after {} s",
                    self.sh.names.len(),
                    limit.as_secs()
                );
                self.sh
                    .check(check("ready", CheckKind::Liveness, false, detail));
                return None;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn phase(&self, t0: Duration, p: &Phase) {
        sleep_until(t0 + Duration::from_secs(p.at_s())).await;
        self.sh.trace.event(format_args!("phase {p:?}"));
        match p {
            Phase::CreatePods {
                restart_every_s, ..
            } => self.create_all(*restart_every_s).await,
            Phase::RollingUpdate {
                batch,
                interval_s,
                restart_every_s,
                ..
            } => {
                self.rolling_update(*batch, *interval_s, *restart_every_s)
                    .await;
            }
            Phase::ConfigmapChurn {
                rounds, interval_s, ..
            } => self.churn(*rounds, *interval_s).await,
            Phase::CreateDevices { .. } => self.create_devices().await,
            Phase::DesiredChurn {
                rounds,
                share,
                interval_s,
                ..
            } => self.desired_churn(*rounds, *share, *interval_s).await,
            Phase::DeleteDevices { .. } => self.delete_devices().await,
        }
        self.sh.trace.event(format_args!("phase done"));
    }

    async fn create_all(&self, restart_every_s: u64) {
        let f = &self.sh.scenario.fleet;
        for k in 0..f.configmaps {
            let cm = configmap_object(k);
            let pp = PostParams::default();
            let made = retry("create configmap", || self.cms.create(&pp, &cm)).await;
            let rv = made.map_or(0, |c| rv_of(&c.metadata));
            self.lock().cm_rv.push(rv);
        }
        let all: Vec<(u32, usize)> = (0..self.sh.names.len())
            .flat_map(|i| (0..f.pods_per_node).map(move |j| (i as u32, j)))
            .collect();
        stream::iter(all)
            .map(|(node, slot)| self.create_pod(node, slot, 0, restart_every_s))
            .buffer_unordered(CONCURRENCY)
            .collect::<Vec<()>>()
            .await;
    }

    async fn create_pod(&self, node: u32, slot: usize, gen_: u64, restart_every_s: u64) {
        let f = &self.sh.scenario.fleet;
        let (name, pod) = pod_object(
            &self.sh.names[node as usize],
            slot,
            gen_,
            f.configmaps,
            restart_every_s,
        );
        let pp = PostParams::default();
        let sent = now();
        // The request `Api::create` makes, answered with the metadata only: the driver
        // reads only the version. Parsing whole typed Pods here and in `replace` cost 0.9%
        // of a 200-node run's instructions (callgrind).
        let url = pods_url();
        let body = serde_json::to_vec(&pod).unwrap_or_default();
        let create = || async {
            let req = kube::core::Request::new(url.as_str())
                .create(&pp, body.clone())
                .map_err(kube::Error::BuildRequest)?;
            self.client.request::<PartialObjectMeta<Pod>>(req).await
        };
        let Some(made) = retry("create pod", create).await else {
            return;
        };
        let rv = rv_of(&made.metadata);
        let key = format!("{NS}/pod/{name}");
        self.sh.trace.expect(node, key, Expect::AtLeast(rv), sent);
        let k = slot % self.sh.scenario.fleet.configmaps;
        let cm_rv = self.lock().cm_rv.get(k).copied().unwrap_or(0);
        self.sh.trace.expect(
            node,
            format!("{NS}/configmap/cfg-{k}"),
            Expect::AtLeast(cm_rv),
            sent,
        );
        self.lock().pods.insert(name, PodRec { node, slot });
    }

    async fn replace(&self, old: String, rec: PodRec, gen_: u64, restart_every_s: u64) {
        let dp = DeleteParams::default();
        let sent = now();
        // As `Api::delete`, without parsing the pod it answers with.
        let url = pods_url();
        let delete = || async {
            let req = kube::core::Request::new(url.as_str())
                .delete(&old, &dp)
                .map_err(kube::Error::BuildRequest)?;
            self.client.request_text(req).await
        };
        if retry("delete pod", delete).await.is_some() {
            self.sh
                .trace
                .expect(rec.node, format!("{NS}/pod/{old}"), Expect::Gone, sent);
        }
        self.lock().pods.remove(&old);
        self.create_pod(rec.node, rec.slot, gen_, restart_every_s)
            .await;
    }

    async fn rolling_update(&self, batch: usize, interval_s: u64, restart_every_s: u64) {
        let (old, gen_) = {
            let mut s = self.lock();
            s.generation += 1;
            (s.pods.clone(), s.generation)
        };
        let old: Vec<(String, PodRec)> = old.into_iter().collect();
        for chunk in old.chunks(batch.max(1)) {
            stream::iter(chunk.iter().cloned())
                .map(|(name, rec)| self.replace(name, rec, gen_, restart_every_s))
                .buffer_unordered(CONCURRENCY)
                .collect::<Vec<()>>()
                .await;
            tokio::time::sleep(Duration::from_secs(interval_s)).await;
        }
    }

    async fn churn(&self, rounds: u64, interval_s: u64) {
        let f = &self.sh.scenario.fleet;
        for round in 1..=rounds {
            for k in 0..f.configmaps {
                let patch = Patch::Merge(json!({"data": {"v": round.to_string()}}));
                let pp = PatchParams::default();
                let name = format!("cfg-{k}");
                let sent = now();
                let made = retry("patch configmap", || self.cms.patch(&name, &pp, &patch)).await;
                let Some(made) = made else { continue };
                let rv = rv_of(&made.metadata);
                if let Some(slot) = self.lock().cm_rv.get_mut(k) {
                    *slot = rv;
                }
                if k < f.pods_per_node {
                    for node in 0..self.sh.names.len() as u32 {
                        let key = format!("{NS}/configmap/{name}");
                        self.sh.trace.expect(node, key, Expect::AtLeast(rv), sent);
                    }
                }
            }
            tokio::time::sleep(Duration::from_secs(interval_s)).await;
        }
    }
}

fn check(name: &str, kind: CheckKind, passed: bool, detail: String) -> CheckResult {
    CheckResult {
        name: name.to_owned(),
        kind,
        passed,
        detail,
    }
}

/// What every node should hold: key → (uid, resourceVersion), by node index.
pub type Expected = BTreeMap<u32, Holdings>;

/// What one node holds or should hold: key (`<ns>/<type>/<name>`) → its holding.
pub type Holdings = BTreeMap<String, Holding>;

/// One object held (or to be held) by a node.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Holding {
    /// `metadata.uid`.
    pub uid: String,
    /// `metadata.resourceVersion`.
    pub rv: u64,
    /// For pods: [`ke_proto::desired::desired_digest`]. The cloud sends no status echoes, so
    /// a node may hold an older version of a pod with the same desired content: current.
    #[serde(default)]
    pub digest: Option<String>,
}

impl Holding {
    fn new(uid: String, rv: u64) -> Self {
        Self {
            uid,
            rv,
            digest: None,
        }
    }

    /// With the desired-content digest of `obj` (a pod).
    fn with_digest_of(mut self, obj: &Value) -> Self {
        self.digest = Some(ke_proto::desired::desired_digest(obj));
        self
    }

    /// True if holding `self` meets `want`: the same or a newer version, or the same object
    /// with the same desired content.
    fn meets(&self, want: &Holding) -> bool {
        self.rv >= want.rv
            || (self.uid == want.uid && want.digest.is_some() && self.digest == want.digest)
    }
}

/// The scenario's pod `slot` of node `node_name` in generation `gen_`: its name and object.
/// It reads configmap `cfg-<slot mod configmaps>` through an env var; a non-zero
/// `restart_every_s` makes the sim runtime's container exit that often (status churn).
pub fn pod_object(
    node_name: &str,
    slot: usize,
    gen_: u64,
    configmaps: usize,
    restart_every_s: u64,
) -> (String, Pod) {
    let name = format!("p-{node_name}-{slot}-g{gen_}");
    let cm = format!("cfg-{}", slot % configmaps.max(1));
    let mut env =
        vec![json!({"name": "V", "valueFrom": {"configMapKeyRef": {"name": cm, "key": "v"}}})];
    if restart_every_s > 0 {
        env.push(json!({"name": ke_edge::edged::sim::EXIT_AFTER, "value": format!("{restart_every_s}s")}));
    }
    let v = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "labels": {"app": format!("slot-{slot}")}},
        "spec": {"nodeName": node_name, "restartPolicy": "Always",
            "containers": [{"name": "app", "image": format!("registry.local/app:v{gen_}"), "env": env}]},
    });
    let pod = serde_json::from_value(v).expect("invariant: a literal pod deserializes");
    (name, pod)
}

/// The scenario's configmap `k` (`cfg-<k>`, data `v: "0"`).
pub fn configmap_object(k: usize) -> ConfigMap {
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some(format!("cfg-{k}"));
    cm.data = Some([("v".to_owned(), "0".to_owned())].into());
    cm
}

/// What each node should hold, from lists of the API server's pods and configmaps: its pods
/// and the configmaps they reference. `index` maps node names to their numbers; pods of
/// other nodes are skipped.
pub fn expected_holdings(pods: &[Pod], cms: &[ConfigMap], index: &BTreeMap<&str, u32>) -> Expected {
    let mut b = ExpectedBuilder::new(cms, index);
    b.add_pods(pods);
    b.expected
}

/// [`expected_holdings`] built a page of pods at a time.
struct ExpectedBuilder<'a> {
    cm: Holdings,
    index: &'a BTreeMap<&'a str, u32>,
    expected: Expected,
}

impl<'a> ExpectedBuilder<'a> {
    fn new(cms: &[ConfigMap], index: &'a BTreeMap<&'a str, u32>) -> Self {
        let cm = cms
            .iter()
            .map(|c| {
                let name = c.metadata.name.clone().unwrap_or_default();
                let uid = c.metadata.uid.clone().unwrap_or_default();
                (name, Holding::new(uid, rv_of(&c.metadata)))
            })
            .collect();
        Self {
            cm,
            index,
            expected: Expected::new(),
        }
    }

    fn add_pods(&mut self, pods: &[Pod]) {
        for p in pods {
            let node = p.spec.as_ref().and_then(|s| s.node_name.as_deref());
            let Some(&i) = node.and_then(|n| self.index.get(n)) else {
                continue;
            };
            let name = p.metadata.name.clone().unwrap_or_default();
            let held = self.expected.entry(i).or_default();
            let uid = p.metadata.uid.clone().unwrap_or_default();
            let h = Holding::new(uid, rv_of(&p.metadata));
            // One `Value` per pod serves both the digest and the configmap references.
            let v = serde_json::to_value(p).unwrap_or(Value::Null);
            let h = if v.is_null() { h } else { h.with_digest_of(&v) };
            held.insert(format!("{NS}/pod/{name}"), h);
            for c in referenced_configmaps(&v) {
                if let Some(v) = self.cm.get(&c) {
                    held.insert(format!("{NS}/configmap/{c}"), v.clone());
                }
            }
        }
    }
}

/// Pods per page of a snapshot's list. Larger than kubectl's 500: the embedded API server
/// reads each page of a consistent list from a copy of the kind's whole index, so a page
/// costs O(all pods), and 20 pages at 20,000 nodes keep that small.
pub const SNAPSHOT_PAGE: u32 = 10_000;

/// What each node should hold according to the API server now, with the list's
/// resourceVersion and the number of pods; `None` if the API server could not be listed.
///
/// The pods are listed in pages of [`SNAPSHOT_PAGE`] and folded in page by page. Every page
/// of a paged list is read at the first page's resourceVersion (the continue token carries
/// it), so the result is the same as one list's. At 20,000 nodes one list of all 200,000
/// pods, as text and then as typed objects, was the run's last and highest rise in memory.
/// A continue token that expired (410) restarts the list, once.
pub async fn snapshot_holdings(
    pods: &Api<Pod>,
    cms: &Api<ConfigMap>,
    index: &BTreeMap<&str, u32>,
) -> Option<(Expected, u64, usize)> {
    snapshot_holdings_paged(pods, cms, index, SNAPSHOT_PAGE).await
}

/// [`snapshot_holdings`] with `page` pods per page.
pub async fn snapshot_holdings_paged(
    pods: &Api<Pod>,
    cms: &Api<ConfigMap>,
    index: &BTreeMap<&str, u32>,
    page: u32,
) -> Option<(Expected, u64, usize)> {
    let all = ListParams::default();
    let cms = retry("list configmaps", || cms.list(&all)).await?;
    'restart: for _ in 0..2 {
        let mut b = ExpectedBuilder::new(&cms.items, index);
        let mut lp = ListParams::default().limit(page);
        let (mut rv, mut count) = (None, 0);
        loop {
            let page = match pods.list(&lp).await {
                Ok(p) => p,
                Err(kube::Error::Api(e)) if e.code == 410 && rv.is_some() => continue 'restart,
                Err(_) => retry("list pods", || pods.list(&lp)).await?,
            };
            rv.get_or_insert_with(|| {
                page.metadata
                    .resource_version
                    .as_deref()
                    .and_then(|r| r.parse().ok())
                    .unwrap_or(0)
            });
            count += page.items.len();
            b.add_pods(&page.items);
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(token) => lp = lp.continue_token(&token),
                None => return Some((b.expected, rv.unwrap_or(0), count)),
            }
        }
    }
    tracing::warn!("list pods: the continue token expired twice");
    None
}

/// One way a node's store differs from what it should hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Diff {
    /// Held at an older version than the API server's.
    Behind {
        /// The key.
        key: String,
        /// The version held.
        have: u64,
        /// The API server's version.
        want: u64,
    },
    /// Not held at all.
    Missing {
        /// The key.
        key: String,
        /// The object's UID.
        uid: String,
    },
    /// Held though the API server (as of its list version) has it no more for this node.
    Extra {
        /// The key.
        key: String,
        /// The UID held.
        uid: String,
        /// The version held.
        rv: u64,
    },
}

impl std::fmt::Display for Diff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Behind { key, have, want } => write!(f, "{key} at rv {have}, API has {want}"),
            Self::Missing { key, uid } => write!(f, "lacks {key} (uid {uid})"),
            Self::Extra { key, rv, .. } => write!(f, "still holds {key} (rv {rv})"),
        }
    }
}

/// How `held` differs from `want`. Objects held at a version newer than the API list
/// (`list_rv`) are not called extra: they were written after the list.
pub fn diff_holdings(want: &Holdings, held: &Holdings, list_rv: u64) -> Vec<Diff> {
    let mut out = Vec::new();
    for (key, w) in want {
        match held.get(key) {
            Some(have) if have.meets(w) => {}
            Some(have) => out.push(Diff::Behind {
                key: key.clone(),
                have: have.rv,
                want: w.rv,
            }),
            None => out.push(Diff::Missing {
                key: key.clone(),
                uid: w.uid.clone(),
            }),
        }
    }
    for (key, h) in held {
        if !want.contains_key(key) && h.rv <= list_rv {
            out.push(Diff::Extra {
                key: key.clone(),
                uid: h.uid.clone(),
                rv: h.rv,
            });
        }
    }
    out
}

/// A snapshot of the API server: what each node should hold and the list's version.
struct Snapshot {
    expected: Expected,
    rv: u64,
    pods: usize,
}

impl Driver {
    async fn snapshot(&self) -> Option<Snapshot> {
        let index: BTreeMap<&str, u32> = self
            .sh
            .names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i as u32))
            .collect();
        let (expected, rv, pods) = snapshot_holdings(&self.pods, &self.cms, &index).await?;
        Some(Snapshot { expected, rv, pods })
    }

    /// Differences between the snapshot and the nodes' stores: (count, first few).
    fn compare(&self, snap: &Snapshot) -> (u64, Vec<String>) {
        let mut count = 0;
        let mut first = Vec::new();
        let mut note = |d: String| {
            count += 1;
            if first.len() < 3 {
                first.push(d);
            }
        };
        let empty = BTreeMap::new();
        for i in 0..self.sh.names.len() as u32 {
            let want = snap.expected.get(&i).unwrap_or(&empty);
            let name = &self.sh.names[i as usize];
            let Some(store) = self.sh.store(i) else {
                note(format!("{name}: not started"));
                continue;
            };
            let held = held_objects(&store, Some(want));
            for d in diff_holdings(want, &held, snap.rv) {
                if let Diff::Extra { key, uid, .. } = &d
                    && self.sh.trace.was_deleted(i, uid)
                {
                    self.sh.trace.violation(
                        NO_RESURRECTION,
                        format!("{name}: holds {key} after deleting it"),
                    );
                }
                note(format!("{name}: {d}"));
            }
        }
        (count, first)
    }

    async fn converge(&self, quiet: Duration) {
        let within = Duration::from_secs(self.sh.scenario.checks.converge_within_s);
        let deadline = quiet + within;
        let Some(snap) = self.snapshot().await else {
            let detail = "the API server could not be listed".to_owned();
            self.sh
                .check(check("converged", CheckKind::Liveness, false, detail));
            return;
        };
        self.sh
            .pods
            .store(snap.pods as u64, std::sync::atomic::Ordering::Relaxed);
        loop {
            let pending = self.sh.trace.pending();
            let offline = self.sh.nodes.len() - self.connected();
            // Comparing every store is the expensive part: only once nothing is in flight
            // and no release waits out its delay (or at the deadline, to say what differs).
            let settled = pending == 0 && offline == 0 && self.sh.pending_releases() == 0;
            let (diffs, first) = if settled || now() >= deadline {
                self.compare(&snap)
            } else {
                (u64::MAX, Vec::new())
            };
            if diffs == 0 && pending == 0 && offline == 0 {
                let took = now().saturating_sub(quiet).as_secs_f64();
                let detail = format!(
                    "every node connected and matched the API server {took:.1} s after the last fault or phase"
                );
                self.sh
                    .check(check("converged", CheckKind::Liveness, true, detail));
                return;
            }
            if now() >= deadline {
                let detail = format!(
                    "not converged {} s after the last fault or phase: {offline} nodes offline, {diffs} differences {first:?}, {pending} writes not arrived {:?}",
                    within.as_secs(),
                    self.sh.trace.pending_sample()
                );
                self.sh
                    .check(check("converged", CheckKind::Liveness, false, detail));
                return;
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }

    fn safety(&self) {
        let seen = self.sh.trace.violations();
        let writes = self.sh.trace.edge_writes();
        for (name, what) in crate::safety::CHECKS {
            let detail = match seen.get(name) {
                None => format!("{what} ({writes} edge writes checked)"),
                Some(v) => format!("{} violations, first: {:?}", v.count, v.first),
            };
            self.sh.check(check(
                name,
                CheckKind::Safety,
                !seen.contains_key(name),
                detail,
            ));
        }
    }
}

/// Names of the configmaps a pod's containers reference.
/// The configmaps a pod (as JSON) reads through `env[].valueFrom.configMapKeyRef`.
fn referenced_configmaps(v: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let containers = v.pointer("/spec/containers").and_then(Value::as_array);
    for c in containers.into_iter().flatten() {
        let env = c.get("env").and_then(Value::as_array);
        for e in env.into_iter().flatten() {
            if let Some(n) = e
                .pointer("/valueFrom/configMapKeyRef/name")
                .and_then(Value::as_str)
            {
                out.insert(n.to_owned());
            }
        }
    }
    out
}

/// The pods and configmaps in `store`, each pod with its desired-content digest; given
/// `want`, only the pods held at an older version than wanted get one (the digest is most
/// of the comparison's cost).
pub fn held_objects(store: &ke_edge::metamanager::MetaStore, want: Option<&Holdings>) -> Holdings {
    let mut out = BTreeMap::new();
    for (kind, word) in [
        (ResourceType::Pod, "pod"),
        (ResourceType::ConfigMap, "configmap"),
    ] {
        for v in store.list(None, &kind).unwrap_or_default() {
            let m = |p: &str| {
                v.pointer(p)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            let key = format!(
                "{}/{word}/{}",
                m("/metadata/namespace"),
                m("/metadata/name")
            );
            let rv = m("/metadata/resourceVersion").parse().unwrap_or(0);
            let h = Holding::new(m("/metadata/uid"), rv);
            let needed = want.is_none_or(|w| w.get(&key).is_some_and(|w| w.rv > h.rv));
            let h = match kind {
                ResourceType::Pod if needed => h.with_digest_of(&v),
                _ => h,
            };
            out.insert(key, h);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: the convergence comparison accepts a pod held at an older version with the same
    /// desired content (the cloud sends no status echoes) and nothing else older. Method: the
    /// API's pod with a newer status, held at an older version with the same spec, then with
    /// an older image; a configmap held at an older version; a missing and an extra key.
    #[test]
    fn an_older_pod_with_the_same_desired_content_is_current() {
        let (_, pod) = pod_object("edge-1", 0, 1, 1, 0);
        let with = |rv: &str, phase: &str, p: &Pod| {
            let mut v = serde_json::to_value(p).unwrap();
            v["metadata"]["uid"] = json!("u1");
            v["metadata"]["resourceVersion"] = json!(rv);
            v["status"] = json!({"phase": phase});
            let h = Holding::new("u1".into(), rv.parse().unwrap());
            h.with_digest_of(&v)
        };
        let key = format!("{NS}/pod/p");
        let want: Holdings = [
            (key.clone(), with("9", "Running", &pod)),
            (format!("{NS}/configmap/cfg-0"), Holding::new("c".into(), 5)),
            (
                format!("{NS}/configmap/cfg-1"),
                Holding::new("c1".into(), 2),
            ),
        ]
        .into();
        let mut held: Holdings = [
            (key.clone(), with("4", "Pending", &pod)),
            (format!("{NS}/configmap/cfg-0"), Holding::new("c".into(), 5)),
            (format!("{NS}/configmap/gone"), Holding::new("g".into(), 3)),
        ]
        .into();
        let diffs = diff_holdings(&want, &held, 10);
        assert_eq!(
            diffs,
            [
                Diff::Missing {
                    key: format!("{NS}/configmap/cfg-1"),
                    uid: "c1".into()
                },
                Diff::Extra {
                    key: format!("{NS}/configmap/gone"),
                    uid: "g".into(),
                    rv: 3
                },
            ]
        );
        let (_, old_image) = pod_object("edge-1", 0, 0, 1, 0);
        held.insert(key.clone(), with("4", "Running", &old_image));
        held.insert(format!("{NS}/configmap/cfg-0"), Holding::new("c".into(), 4));
        let behind: Vec<_> = diff_holdings(&want, &held, 10)
            .into_iter()
            .filter(|d| matches!(d, Diff::Behind { .. }))
            .collect();
        assert_eq!(behind.len(), 2, "{behind:?}");
    }
}
