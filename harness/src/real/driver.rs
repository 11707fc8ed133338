//! The real-mode run: start the processes, wait for the fleet, apply the workload and the
//! faults at their times, sample the processes, check convergence and safety, and build the
//! report.

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use anyhow::Result;
use futures::{StreamExt as _, stream};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use ke_core::Clock as _;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;
use simulator::{
    Scenario,
    assemble::ack_percentiles_from,
    assemble::rates,
    devices::device_name,
    outcome::{
        CheckKind, CheckResult, DeviceFigures, Metrics, Outcome, Percentiles, RealFigures, Sample,
    },
    safety::{CHECKS, Violations},
    scenario::{Fault, Phase},
    workload::{
        DeviceApis, WRITTEN_MS, configmap_object, device_object, diff_holdings, model_object,
        pod_object, retry, snapshot_holdings,
    },
};
use tokio::time::Instant;

use super::{
    Progress, Threads,
    procs::{self, Cloud, Mark},
};

const NS: &str = "default";
/// Requests in flight at once (as the simulator's driver).
const CONCURRENCY: usize = 64;
/// Seconds between samples.
const SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// edgemark's `GET /state` (the fields the driver reads).
#[derive(Debug, Default, serde::Deserialize)]
struct MarkState {
    connected: usize,
    edge_writes: u64,
    violations: BTreeMap<String, Violations>,
    sync_ms: Percentiles,
    #[serde(default)]
    holdings: BTreeMap<String, simulator::workload::Holdings>,
    #[serde(default)]
    twin: TwinCounts,
}

/// edgemark's twin counters (`/state`'s `twin`).
#[derive(Debug, Default, Clone, Copy, serde::Deserialize)]
struct TwinCounts {
    published: u64,
    accepted: u64,
    refused: u64,
    confirmed: u64,
    outbox: u64,
}

impl TwinCounts {
    fn sum(states: &[MarkState]) -> Self {
        let mut t = Self::default();
        for s in states {
            t.published += s.twin.published;
            t.accepted += s.twin.accepted;
            t.refused += s.twin.refused;
            t.confirmed += s.twin.confirmed;
            t.outbox += s.twin.outbox;
        }
        t
    }
}

#[derive(Debug, Default)]
struct Book {
    /// Live pods: name → (node, slot).
    pods: BTreeMap<String, (usize, usize)>,
    generation: u64,
    series: Vec<Sample>,
    faults: Vec<(f64, String)>,
    checks: Vec<CheckResult>,
    /// Counters of cloudcore processes that were crashed (restarts reset them).
    base: BTreeMap<String, f64>,
    ack_base: Vec<u64>,
    cloud_cpu_base: f64,
    cloud_peak_rss: u64,
    marks_peak_rss: BTreeMap<usize, u64>,
    marks_cpu: BTreeMap<usize, f64>,
    queue_peak: u64,
    /// Confirmed twin reports, sampled every second (devices only).
    twin_series: Vec<Sample>,
    /// cloudcore's CPU seconds at each of those samples.
    twin_cpu: Vec<f64>,
    /// When the fleet was ready (seconds since the start).
    ready_t: Option<f64>,
    /// Device objects created.
    devices_created: usize,
}

/// One real-mode run.
pub(crate) struct Run {
    sc: Scenario,
    nodes: usize,
    names: Vec<String>,
    cloud: tokio::sync::Mutex<Cloud>,
    cloud_pid: AtomicU32,
    marks: Vec<Mark>,
    threads: Threads,
    pods: Api<Pod>,
    cms: Api<ConfigMap>,
    /// Devices and DeviceModels (scenarios with devices).
    dev: DeviceApis,
    book: Mutex<Book>,
    started: Instant,
}

fn now_ms() -> u64 {
    u64::try_from(ke_core::SystemClock.now_millis()).unwrap_or(0)
}

fn check(name: &str, kind: CheckKind, passed: bool, detail: String) -> CheckResult {
    CheckResult {
        name: name.to_owned(),
        kind,
        passed,
        detail,
    }
}

impl Run {
    /// Runs the scenario to its end and returns the report.
    pub(crate) async fn execute(
        sc: Scenario,
        work: PathBuf,
        threads: Threads,
        progress: impl Fn(Progress) + Send + Sync + 'static,
    ) -> Result<Outcome> {
        let nodes = sc.fleet.nodes;
        let cloud = Cloud::start(&work.join("cloud"), nodes, threads.cloudcore).await?;
        let token = cloud.token()?;
        let periods = (
            sc.edge.heartbeat_s,
            sc.edge.status_update_period_s,
            sc.edge.lease_renew_period_s,
        );
        let marks =
            procs::start_marks(&work, &cloud, &token, &sc, periods, threads.edgemark).await?;
        let kc = kube::config::Kubeconfig::read_from(&cloud.kubeconfig)?;
        let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
        let client = kube::Client::try_from(cfg)?;
        let run = Arc::new(Self {
            names: (0..nodes).map(|i| format!("edge-{i}")).collect(),
            cloud_pid: AtomicU32::new(cloud.proc.pid()),
            cloud: tokio::sync::Mutex::new(cloud),
            marks,
            threads,
            pods: Api::namespaced(client.clone(), NS),
            dev: DeviceApis::new(client.clone()),
            cms: Api::namespaced(client, NS),
            book: Mutex::default(),
            started: Instant::now(),
            nodes,
            sc,
        });
        let sampler = tokio::spawn(run.clone().sample_loop(progress));
        let result = run.drive().await;
        sampler.abort();
        let outcome = run.outcome().await;
        result.map(|()| outcome)
    }

    fn book(&self) -> MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn t(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    async fn drive(&self) -> Result<()> {
        let Some(t0) = self.await_ready().await else {
            return Ok(());
        };
        let phases = self.sc.workload.iter().map(|p| self.phase(t0, p));
        let faults = self.sc.fault.iter().map(|f| self.fault(t0, f));
        let (_, faults) = futures::join!(
            futures::future::join_all(phases),
            futures::future::join_all(faults)
        );
        faults.into_iter().collect::<Result<Vec<()>>>()?;
        let quiet = t0 + Duration::from_secs(self.sc.last_event_s());
        tokio::time::sleep_until(quiet).await;
        self.converge(quiet).await;
        if self.sc.has_devices() {
            self.drain_twin_reports().await;
        }
        self.safety().await;
        Ok(())
    }

    async fn mark_states(&self, brief: bool) -> Vec<MarkState> {
        let path = if brief { "/state?brief=true" } else { "/state" };
        let mut out = Vec::new();
        for m in &self.marks {
            match procs::get(m.addr, path).await {
                Ok(body) => out.push(serde_json::from_str(&body).unwrap_or_default()),
                Err(e) => {
                    tracing::warn!(error = %e, "edgemark state");
                    out.push(MarkState::default());
                }
            }
        }
        out
    }

    async fn connected(&self) -> usize {
        self.mark_states(true)
            .await
            .iter()
            .map(|s| s.connected)
            .sum()
    }

    async fn await_ready(&self) -> Option<Instant> {
        let limit = Duration::from_secs(self.sc.checks.ready_within_s);
        loop {
            let up = self.connected().await;
            if up == self.nodes {
                self.book().ready_t = Some(self.t());
                let detail = format!("{up} nodes connected at {:.1} s", self.t());
                self.book()
                    .checks
                    .push(check("ready", CheckKind::Liveness, true, detail));
                return Some(Instant::now());
            }
            if self.started.elapsed() > limit {
                let detail = format!(
                    "only {up} of {} nodes connected after {} s",
                    self.nodes,
                    limit.as_secs()
                );
                self.book()
                    .checks
                    .push(check("ready", CheckKind::Liveness, false, detail));
                return None;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

// ---- workload ---------------------------------------------------------------------------

impl Run {
    async fn phase(&self, t0: Instant, p: &Phase) {
        tokio::time::sleep_until(t0 + Duration::from_secs(p.at_s())).await;
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
            // Refused before the run starts (`real::check_supported`).
            Phase::DesiredChurn { .. } | Phase::DeleteDevices { .. } => {
                unreachable!("invariant: real mode refuses these device phases")
            }
        }
    }

    async fn create_all(&self, restart_every_s: u64) {
        let f = &self.sc.fleet;
        for k in 0..f.configmaps {
            let mut cm = configmap_object(k);
            stamp(&mut cm.metadata);
            let pp = PostParams::default();
            let _ = retry("create configmap", || self.cms.create(&pp, &cm)).await;
        }
        let all: Vec<(usize, usize)> = (0..self.nodes)
            .flat_map(|i| (0..f.pods_per_node).map(move |j| (i, j)))
            .collect();
        stream::iter(all)
            .map(|(node, slot)| self.create_pod(node, slot, 0, restart_every_s))
            .buffer_unordered(CONCURRENCY)
            .collect::<Vec<()>>()
            .await;
    }

    async fn create_pod(&self, node: usize, slot: usize, gen_: u64, restart_every_s: u64) {
        let f = &self.sc.fleet;
        let (name, mut pod) =
            pod_object(&self.names[node], slot, gen_, f.configmaps, restart_every_s);
        stamp(&mut pod.metadata);
        let pp = PostParams::default();
        if retry("create pod", || self.pods.create(&pp, &pod))
            .await
            .is_some()
        {
            self.book().pods.insert(name, (node, slot));
        }
    }

    async fn rolling_update(&self, batch: usize, interval_s: u64, restart_every_s: u64) {
        let (old, gen_) = {
            let mut b = self.book();
            b.generation += 1;
            (b.pods.clone(), b.generation)
        };
        let old: Vec<(String, (usize, usize))> = old.into_iter().collect();
        for chunk in old.chunks(batch.max(1)) {
            stream::iter(chunk.iter().cloned())
                .map(|(name, (node, slot))| async move {
                    let dp = DeleteParams::default();
                    let _ = retry("delete pod", || self.pods.delete(&name, &dp)).await;
                    self.book().pods.remove(&name);
                    self.create_pod(node, slot, gen_, restart_every_s).await;
                })
                .buffer_unordered(CONCURRENCY)
                .collect::<Vec<()>>()
                .await;
            tokio::time::sleep(Duration::from_secs(interval_s)).await;
        }
    }

    async fn churn(&self, rounds: u64, interval_s: u64) {
        for round in 1..=rounds {
            for k in 0..self.sc.fleet.configmaps {
                let mut stamped = serde_json::Map::new();
                stamped.insert(WRITTEN_MS.to_owned(), json!(now_ms().to_string()));
                let patch = Patch::Merge(json!({
                    "metadata": {"annotations": stamped},
                    "data": {"v": round.to_string()},
                }));
                let pp = PatchParams::default();
                let name = format!("cfg-{k}");
                let _ = retry("patch configmap", || self.cms.patch(&name, &pp, &patch)).await;
            }
            tokio::time::sleep(Duration::from_secs(interval_s)).await;
        }
    }
}

/// Stamps an object with the writer's clock (edgemark's sync latency).
fn stamp(meta: &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) {
    meta.annotations
        .get_or_insert_default()
        .insert(WRITTEN_MS.to_owned(), now_ms().to_string());
}

// ---- faults -----------------------------------------------------------------------------

impl Run {
    async fn fault(&self, t0: Instant, f: &Fault) -> Result<()> {
        tokio::time::sleep_until(t0 + Duration::from_secs(f.at_s())).await;
        let what = format!("{f:?}");
        self.book().faults.push((self.t(), what));
        match f {
            Fault::CrashCloudcore { down_s, .. } => {
                self.before_cloud_crash().await;
                let mut cloud = self.cloud.lock().await;
                cloud.crash_restart(Duration::from_secs(*down_s)).await?;
                self.cloud_pid.store(cloud.proc.pid(), Ordering::Relaxed);
            }
            Fault::CutFleet { duration_s, .. } => self.cut(1.0, *duration_s).await?,
            Fault::PartitionNodes {
                share, duration_s, ..
            } => self.cut(*share, *duration_s).await?,
            Fault::CrashNodes { share, down_s, .. } => self.cut(*share, *down_s).await?,
            other => anyhow::bail!("no real-mode form for {other:?}"),
        }
        Ok(())
    }

    async fn cut(&self, share: f64, secs: u64) -> Result<()> {
        for m in &self.marks {
            procs::call(m.addr, "POST", &format!("/cut?share={share}&secs={secs}")).await?;
        }
        Ok(())
    }

    /// cloudcore's metrics text and CPU seconds so far.
    async fn cloud_now(&self) -> (String, f64) {
        let text = self
            .cloud
            .lock()
            .await
            .metrics_text()
            .await
            .unwrap_or_default();
        let pid = self.cloud_pid.load(Ordering::Relaxed);
        (text, procs::usage(pid).map_or(0.0, |(c, _)| c))
    }

    /// Keeps the counters of a cloudcore about to be killed (its successor starts at zero).
    async fn before_cloud_crash(&self) {
        let (text, cpu) = self.cloud_now().await;
        let mut b = self.book();
        for (k, v) in counters(&text) {
            *b.base.entry(k).or_default() += v;
        }
        add_buckets(&mut b.ack_base, &ack_buckets(&text));
        b.cloud_cpu_base += cpu;
    }
}

// ---- sampling ---------------------------------------------------------------------------

impl Run {
    async fn sample_loop(self: Arc<Self>, progress: impl Fn(Progress)) {
        let mut next = Instant::now();
        loop {
            let states = self.mark_states(true).await;
            let connected: usize = states.iter().map(|s| s.connected).sum();
            if self.sc.has_devices() {
                let t = self.t();
                let twin_confirmed = TwinCounts::sum(&states).confirmed;
                let pid = self.cloud_pid.load(Ordering::Relaxed);
                let cpu = procs::usage(pid).map_or(0.0, |(c, _)| c);
                let mut b = self.book();
                let cpu = cpu + b.cloud_cpu_base;
                b.twin_cpu.push(cpu);
                b.twin_series.push(Sample {
                    t,
                    wall_s: t,
                    twin_confirmed,
                    ..Sample::default()
                });
            }
            progress(Progress {
                seconds: self.t(),
                connected,
                nodes: self.nodes,
            });
            if Instant::now() >= next {
                next += SAMPLE_EVERY;
                self.sample(&states, connected).await;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    async fn sample(&self, states: &[MarkState], connected: usize) {
        let text = match self.cloud.try_lock() {
            Ok(c) => c.metrics_text().await.unwrap_or_default(),
            Err(_) => String::new(), // restarting
        };
        let queue = procs::metric_sum(&text, "cloudhub_queue_depth") as u64;
        let pid = self.cloud_pid.load(Ordering::Relaxed);
        let rss = procs::usage(pid).map_or(0, |(_, r)| r);
        let sync = merged_sync(states);
        let mut b = self.book();
        b.queue_peak = b.queue_peak.max(queue);
        b.cloud_peak_rss = b.cloud_peak_rss.max(rss);
        for (k, m) in self.marks.iter().enumerate() {
            if let Some((cpu, rss)) = procs::usage(m.proc.pid()) {
                let peak = b.marks_peak_rss.entry(k).or_default();
                *peak = (*peak).max(rss);
                b.marks_cpu.insert(k, cpu);
            }
        }
        let t = self.t();
        b.series.push(Sample {
            t,
            connected: connected as u64,
            pending: 0,
            queue_depth: queue,
            sync_p50_ms: sync.p50,
            sync_p99_ms: sync.p99,
            rss_bytes: rss,
            wall_s: t,
            twin_confirmed: TwinCounts::sum(states).confirmed,
        });
    }
}

/// The marks' sync latencies as one: counts added, each percentile the largest.
fn merged_sync(states: &[MarkState]) -> Percentiles {
    let mut p = Percentiles::default();
    for s in states {
        p.count += s.sync_ms.count;
        p.p50 = p.p50.max(s.sync_ms.p50);
        p.p90 = p.p90.max(s.sync_ms.p90);
        p.p99 = p.p99.max(s.sync_ms.p99);
        p.max = p.max.max(s.sync_ms.max);
    }
    p
}

/// The counters the report adds across cloudcore restarts: messages and API requests.
fn counters(text: &str) -> Vec<(String, f64)> {
    let mut out = vec![
        (
            "messages_out".to_owned(),
            procs::metric(text, "cloudhub_messages_out_total"),
        ),
        (
            "messages_in".to_owned(),
            procs::metric(text, "cloudhub_messages_in_total"),
        ),
        (
            "device_status_writes".to_owned(),
            procs::metric(text, "devicecontroller_devicestatus_patches_total")
                + procs::metric(text, "devicecontroller_devicestatus_creates_total"),
        ),
    ];
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("apiserver_request_total{verb=\"") else {
            continue;
        };
        let verb = rest.split('"').next().unwrap_or_default();
        let n: f64 = line
            .rsplit_once(' ')
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0.0);
        out.push((format!("api:{verb}"), n));
    }
    out
}

/// CloudHub's ACK latency histogram as per-bucket counts (not cumulative).
fn ack_buckets(text: &str) -> Vec<u64> {
    let cumulative: Vec<u64> = text
        .lines()
        .filter(|l| l.starts_with("cloudhub_ack_latency_seconds_bucket{"))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse().ok()))
        .collect();
    let mut prev = 0;
    cumulative
        .into_iter()
        .map(|c: u64| {
            let n = c.saturating_sub(prev);
            prev = c;
            n
        })
        .collect()
}

fn add_buckets(into: &mut Vec<u64>, from: &[u64]) {
    if into.len() < from.len() {
        into.resize(from.len(), 0);
    }
    for (a, b) in into.iter_mut().zip(from) {
        *a += b;
    }
}

// ---- checks -----------------------------------------------------------------------------

impl Run {
    async fn converge(&self, quiet: Instant) {
        let within = Duration::from_secs(self.sc.checks.converge_within_s);
        let index: BTreeMap<&str, u32> = self
            .names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), u32::try_from(i).unwrap_or(u32::MAX)))
            .collect();
        loop {
            let (diffs, first, offline) = self.differences(&index).await;
            if diffs == 0 && offline == 0 {
                let took = quiet.elapsed().as_secs_f64();
                let detail = format!(
                    "every node connected and matched the API server {took:.1} s after the last fault or phase"
                );
                self.book()
                    .checks
                    .push(check("converged", CheckKind::Liveness, true, detail));
                return;
            }
            if quiet.elapsed() >= within {
                let detail = format!(
                    "not converged {} s after the last fault or phase: {offline} nodes offline, {diffs} differences {first:?}",
                    within.as_secs()
                );
                self.book()
                    .checks
                    .push(check("converged", CheckKind::Liveness, false, detail));
                return;
            }
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
    }

    /// Compares every node's store with a fresh list of the API server:
    /// (differences, the first few, nodes offline).
    async fn differences(&self, index: &BTreeMap<&str, u32>) -> (u64, Vec<String>, usize) {
        let Some((expected, list_rv, _)) = snapshot_holdings(&self.pods, &self.cms, index).await
        else {
            return (
                u64::MAX,
                vec!["the API server could not be listed".into()],
                0,
            );
        };
        let states = self.mark_states(false).await;
        let offline = self.nodes - states.iter().map(|s| s.connected).sum::<usize>();
        let (mut count, mut first) = (0u64, Vec::new());
        let empty = BTreeMap::new();
        for (i, name) in self.names.iter().enumerate() {
            let want = expected
                .get(&u32::try_from(i).unwrap_or(u32::MAX))
                .unwrap_or(&empty);
            let held = states
                .iter()
                .find_map(|s| s.holdings.get(name))
                .unwrap_or(&empty);
            for d in diff_holdings(want, held, list_rv) {
                count += 1;
                if first.len() < 3 {
                    first.push(format!("{name}: {d}"));
                }
            }
        }
        (count, first, offline)
    }

    async fn safety(&self) {
        let states = self.mark_states(true).await;
        let writes: u64 = states.iter().map(|s| s.edge_writes).sum();
        let mut seen: BTreeMap<String, Violations> = BTreeMap::new();
        for s in &states {
            for (k, v) in &s.violations {
                let e = seen.entry(k.clone()).or_default();
                e.count += v.count;
                e.first
                    .extend(v.first.iter().take(5 - e.first.len().min(5)).cloned());
            }
        }
        let mut b = self.book();
        for (name, what) in CHECKS {
            let (passed, detail) = match seen.get(name) {
                None => (true, format!("{what} ({writes} edge writes checked)")),
                Some(v) => (
                    false,
                    format!("{} violations, first: {:?}", v.count, v.first),
                ),
            };
            b.checks
                .push(check(name, CheckKind::Safety, passed, detail));
        }
    }
}

// ---- report -----------------------------------------------------------------------------

impl Run {
    async fn final_counters(&self) -> (BTreeMap<String, f64>, Vec<u64>, f64) {
        let (text, cpu) = self.cloud_now().await;
        let b = self.book();
        let mut all = b.base.clone();
        for (k, v) in counters(&text) {
            *all.entry(k).or_default() += v;
        }
        let mut acks = b.ack_base.clone();
        add_buckets(&mut acks, &ack_buckets(&text));
        (all, acks, b.cloud_cpu_base + cpu)
    }

    async fn outcome(&self) -> Outcome {
        let (counters, acks, cloud_cpu) = self.final_counters().await;
        let states = self.mark_states(true).await;
        let devices = self
            .sc
            .has_devices()
            .then(|| self.device_figures(&states, &counters));
        let wall = self.t();
        let n = self.nodes.max(1) as f64;
        let api_requests = api_requests(&counters);
        let api_total: u64 = api_requests.values().sum();
        let mut b = self.book();
        let metrics = Metrics {
            sync_latency_ms: merged_sync(&states),
            ack_latency_ms: ack_percentiles_from(&acks),
            messages_down_per_node: counters.get("messages_out").copied().unwrap_or(0.0) / n,
            messages_up_per_node: counters.get("messages_in").copied().unwrap_or(0.0) / n,
            api_requests,
            hub_queue_peak: b.queue_peak,
            faults: std::mem::take(&mut b.faults),
            devices,
            ..Metrics::default()
        };
        checks_bounds(&self.sc, &mut b, self.nodes);
        let real = RealFigures {
            cloudcore_cpu_seconds: cloud_cpu,
            cloudcore_peak_rss_bytes: b.cloud_peak_rss,
            cloudcore_rss_per_node_bytes: b.cloud_peak_rss as f64 / n,
            cloudcore_cpu_seconds_per_node_hour: cloud_cpu / n / (wall / 3600.0).max(1e-9),
            api_requests_per_node_minute: api_total as f64 / n / (wall / 60.0).max(1e-9),
            edgemark_processes: self.marks.len(),
            cloudcore_threads: self.threads.cloudcore,
            edgemark_threads: self.threads.edgemark,
            edgemark_peak_rss_bytes: b.marks_peak_rss.values().sum(),
            edgemark_cpu_seconds: b.marks_cpu.values().sum(),
            cloudcore_restarts: u32::try_from(
                self.sc
                    .fault
                    .iter()
                    .filter(|f| matches!(f, Fault::CrashCloudcore { .. }))
                    .count(),
            )
            .unwrap_or(0),
        };
        let checks = std::mem::take(&mut b.checks);
        let passed = checks.iter().all(|c| c.passed);
        let pods = b.pods.len();
        let settings = settings(self.marks.len());
        Outcome {
            scenario: self.sc.name.clone(),
            seed: self.sc.seed,
            passed,
            digest: "real mode (not deterministic)".into(),
            nodes: self.nodes,
            pods,
            sim_seconds: wall,
            wall_seconds: wall,
            peak_rss_bytes: b.cloud_peak_rss,
            events: 0,
            checks,
            metrics,
            series: std::mem::take(&mut b.series),
            crash: None,
            real: Some(real),
            settings,
        }
    }
}

// ---- devices ----------------------------------------------------------------------------

fn dynamic(v: serde_json::Value) -> Result<kube::api::DynamicObject> {
    Ok(serde_json::from_value(v)?)
}

impl Run {
    /// Creates the fleet's DeviceModel (once cloudcore has installed the CRDs) and every
    /// node's devices, named as in sim mode.
    async fn create_devices(&self) {
        let model = match dynamic(model_object(&self.sc)) {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(error = %e, "device model");
                return;
            }
        };
        let pp = PostParams::default();
        for attempt in 0..60 {
            match self.dev.models.create(&pp, &model).await {
                Ok(_) | Err(kube::Error::Api(kube::core::ErrorResponse { code: 409, .. })) => break,
                Err(e) => {
                    tracing::debug!(attempt, error = %e, "model not created yet (CRDs?)");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
        let per = self.sc.fleet.devices_per_node;
        let all: Vec<(usize, usize)> = (0..self.nodes)
            .flat_map(|i| (0..per).map(move |j| (i, j)))
            .collect();
        let created: usize = stream::iter(all)
            .map(|(i, j)| async move {
                let name = device_name(i, j);
                let Ok(obj) = dynamic(device_object(&self.sc, &self.names[i], &name)) else {
                    return 0;
                };
                let pp = PostParams::default();
                usize::from(
                    retry("create device", || self.dev.devices.create(&pp, &obj))
                        .await
                        .is_some(),
                )
            })
            .buffer_unordered(CONCURRENCY)
            .collect::<Vec<usize>>()
            .await
            .into_iter()
            .sum();
        self.book().devices_created = created;
    }

    /// Stops the mappers' periodic reports and waits until every report DeviceTwin accepted
    /// has been confirmed by the cloud (outboxes empty), up to `converge_within_s`.
    async fn drain_twin_reports(&self) {
        for m in &self.marks {
            if let Err(e) = procs::call(m.addr, "POST", "/twin/stop").await {
                tracing::warn!(error = %e, "stopping the mappers");
            }
        }
        let within = Duration::from_secs(self.sc.checks.converge_within_s);
        let start = Instant::now();
        loop {
            let t = TwinCounts::sum(&self.mark_states(true).await);
            let done = t.outbox == 0 && t.confirmed >= t.accepted;
            if done || start.elapsed() >= within {
                let took = start.elapsed().as_secs_f64();
                let detail = if done {
                    format!(
                        "all {} reports DeviceTwin accepted were confirmed by the cloud ({took:.1} s after the mappers stopped); {} published, {} refused",
                        t.accepted, t.published, t.refused
                    )
                } else {
                    format!(
                        "{} reports still waiting in the outboxes {} s after the mappers stopped ({} accepted, {} confirmed)",
                        t.outbox,
                        within.as_secs(),
                        t.accepted,
                        t.confirmed
                    )
                };
                self.book().checks.push(check(
                    "twin_reports_confirmed",
                    CheckKind::Liveness,
                    done,
                    detail,
                ));
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// The device figures: counts from edgemark and cloudcore, rates over the one-second
    /// samples from the first confirmed report to the end of the workload.
    fn device_figures(
        &self,
        states: &[MarkState],
        counters: &BTreeMap<String, f64>,
    ) -> DeviceFigures {
        let t = TwinCounts::sum(states);
        let b = self.book();
        let ready = b.ready_t.map(Duration::from_secs_f64);
        let (_, _, rate, peak) = rates(&b.twin_series, ready, &self.sc);
        let end = b.ready_t.unwrap_or_default() + self.sc.last_event_s() as f64;
        let cpu_per_report = steady_cpu_per_report(&b.twin_series, &b.twin_cpu, end);
        let drain_peak = drain_peak(&b.twin_series, end);
        let status_writes = counters.get("device_status_writes").copied().unwrap_or(0.0) as u64;
        DeviceFigures {
            devices: b.devices_created,
            mapper_reports: t.published,
            mapper_reports_accepted: t.accepted,
            mapper_reports_refused: t.refused,
            reports_confirmed: t.confirmed,
            status_writes,
            confirmed_per_sim_s: rate,
            confirmed_per_sim_s_peak: peak,
            confirmed_per_wall_s: rate,
            confirmed_per_wall_s_peak: peak,
            cloudcore_cpu_us_per_report: cpu_per_report,
            drain_per_wall_s_peak: drain_peak,
            ..DeviceFigures::default()
        }
    }
}

/// cloudcore's CPU µs per confirmed report in steady state: over the second half of the
/// samples from the first confirmed report to `end` (device creation and start-up are over
/// by then; the mappers have not stopped).
fn steady_cpu_per_report(series: &[Sample], cpu: &[f64], end: f64) -> Option<f64> {
    let window: Vec<(u64, f64)> = series
        .iter()
        .zip(cpu)
        .skip_while(|(s, _)| s.twin_confirmed == 0)
        .take_while(|(s, _)| s.t <= end)
        .map(|(s, c)| (s.twin_confirmed, *c))
        .collect();
    let half = &window[window.len() / 2..];
    let (a, z) = (half.first()?, half.last()?);
    let reports = z.0.checked_sub(a.0).filter(|n| *n > 0)?;
    Some((z.1 - a.1) * 1e6 / reports as f64)
}

/// The best confirmed rate over 10 s (11 one-second samples) after `end`, when the mappers
/// have stopped and the edges send their backlog; `None` with fewer samples.
fn drain_peak(series: &[Sample], end: f64) -> Option<f64> {
    let after: Vec<&Sample> = series.iter().filter(|s| s.t > end).collect();
    after
        .windows(11)
        .map(|w| {
            let n = w[10].twin_confirmed.saturating_sub(w[0].twin_confirmed) as f64;
            n / (w[10].wall_s - w[0].wall_s).max(1e-9)
        })
        .reduce(f64::max)
}

/// API-server requests by verb, from the counters.
fn api_requests(counters: &BTreeMap<String, f64>) -> BTreeMap<String, u64> {
    counters
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("api:")
                .map(|verb| (verb.to_owned(), *v as u64))
        })
        .collect()
}

fn settings(marks: usize) -> BTreeMap<String, String> {
    [
        ("mode", "real".to_owned()),
        ("edgemark_processes", marks.to_string()),
        ("tls", "rustls, mutual TLS after a real join".to_owned()),
        ("daemon_allocator", crate::daemon_allocator_env()),
        (
            "not_measured",
            "reconnect time, bytes on the wire".to_owned(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// `hub_queues_bounded` and, when set, `memory_bounded` (on cloudcore's peak RSS).
fn checks_bounds(sc: &Scenario, b: &mut Book, nodes: usize) {
    let (q, max) = (b.queue_peak, sc.checks.hub_queue_max);
    b.checks.push(check(
        "hub_queues_bounded",
        CheckKind::Safety,
        q <= max,
        format!("peak CloudHub queue depth {q} (bound {max})"),
    ));
    if sc.checks.rss_max_mib > 0 {
        let mib = b.cloud_peak_rss / (1024 * 1024);
        b.checks.push(check(
            "memory_bounded",
            CheckKind::Safety,
            mib <= sc.checks.rss_max_mib,
            format!(
                "cloudcore peak RSS {mib} MiB for {nodes} nodes (bound {} MiB)",
                sc.checks.rss_max_mib
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: steady-state CPU per report uses the second half of the reporting window only
    /// (start-up's CPU is left out) and stops at the end of the workload. Method: reports
    /// start at t = 2; the first samples carry start-up CPU; after `end` the CPU jumps.
    #[test]
    fn steady_cpu_per_report_uses_the_late_window() {
        let confirmed = [0u64, 0, 100, 200, 300, 400, 500, 600, 700, 800];
        let series: Vec<Sample> = confirmed
            .iter()
            .enumerate()
            .map(|(i, &c)| Sample {
                t: i as f64,
                twin_confirmed: c,
                ..Sample::default()
            })
            .collect();
        // 50 CPU s of start-up, then 0.01 s per second (100 reports): 100 µs per report.
        let mut cpu: Vec<f64> = (0..10).map(|i| 50.0 + 0.01 * f64::from(i)).collect();
        cpu[9] = 99.0;
        let us = steady_cpu_per_report(&series, &cpu, 8.0).unwrap();
        assert!((us - 100.0).abs() < 1e-6, "{us}");
        assert_eq!(steady_cpu_per_report(&series[..2], &cpu[..2], 8.0), None);
    }

    /// Goal: the drain rate is the best 10 s after the end of the workload, not before it.
    /// Method: 100 reports/s up to t = 10 (the end), then 300/s for 11 s, then 50/s; and a
    /// drain too short for one window.
    #[test]
    fn drain_peak_is_the_best_ten_seconds_after_the_end() {
        let mut c = 0u64;
        let series: Vec<Sample> = (0..40)
            .map(|i| {
                c += match i {
                    1..=10 => 100,
                    11..=21 => 300,
                    _ => 50,
                };
                Sample {
                    t: f64::from(i),
                    wall_s: f64::from(i),
                    twin_confirmed: c,
                    ..Sample::default()
                }
            })
            .collect();
        let peak = drain_peak(&series, 10.0).unwrap();
        assert!((peak - 300.0).abs() < 1e-9, "{peak}");
        assert_eq!(drain_peak(&series[..15], 10.0), None);
    }

    /// Goal: the ACK histogram and counters are read back from cloudcore's exposition.
    #[test]
    fn prometheus_text_is_read_back() {
        let text = "# HELP x\n\
            cloudhub_ack_latency_seconds_bucket{le=\"0.005\"} 2\n\
            cloudhub_ack_latency_seconds_bucket{le=\"0.01\"} 5\n\
            cloudhub_ack_latency_seconds_bucket{le=\"+Inf\"} 6\n\
            cloudhub_messages_out_total 42\n\
            apiserver_request_total{verb=\"create\",method=\"POST\",code=\"201\"} 7\n\
            apiserver_request_total{verb=\"create\",method=\"POST\",code=\"409\"} 1\n";
        assert_eq!(ack_buckets(text), vec![2, 3, 1]);
        let c: BTreeMap<String, f64> =
            counters(text)
                .into_iter()
                .fold(BTreeMap::new(), |mut m, (k, v)| {
                    *m.entry(k).or_default() += v;
                    m
                });
        assert_eq!(c["messages_out"], 42.0);
        assert_eq!(c["api:create"], 8.0);
        let mut base = vec![1, 1];
        add_buckets(&mut base, &[2, 3, 1]);
        assert_eq!(base, vec![3, 4, 1]);
    }
}
