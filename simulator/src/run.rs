//! [`run`]: builds the world, steps turmoil, applies the fault timeline at its simulated
//! times, samples the fleet once a simulated second, and assembles the [`Outcome`].

use std::{
    collections::BTreeMap,
    panic::AssertUnwindSafe,
    path::PathBuf,
    sync::{Arc, PoisonError, atomic::Ordering},
    time::Duration,
};

use rand::{SeedableRng, seq::SliceRandom};
use rand_chacha::ChaCha8Rng;
use time::OffsetDateTime;

use crate::{
    fleet::{self, API, CLOUD, Shared, site_host},
    outcome::{CheckKind, CheckResult, Metrics, Outcome, Sample},
    scenario::{Fault, Scenario},
};

/// How a run is set up beyond its scenario.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The seed (overrides the scenario's).
    pub seed: u64,
    /// Fleet size (overrides the scenario's).
    pub nodes: Option<usize>,
    /// Where the run's files go (certificates, databases); removed by the caller.
    pub work_dir: PathBuf,
    /// Wall-clock epoch of simulated time 0 (certificates are checked against real time by
    /// the kube client, so use a recent instant).
    pub epoch: OffsetDateTime,
    /// Copy the event log (the digest's input) to this file.
    pub events: Option<PathBuf>,
    /// Free the simulated world when the run ends. `false` leaves it allocated, for a
    /// process that exits right after the run (the `fleet` binary): freeing thousands of
    /// nodes' tasks, databases and objects one by one takes seconds (about 4% of a
    /// 2,000-node run), and the kernel takes the memory back at exit at once.
    pub free_world: bool,
}

/// Progress, reported once a simulated second.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Simulated seconds so far.
    pub sim_seconds: f64,
    /// The run's limit in simulated seconds.
    pub limit_seconds: f64,
    /// Nodes connected.
    pub connected: u64,
    /// Nodes in all.
    pub nodes: u64,
    /// Writes not yet at their nodes.
    pub pending: u64,
}

/// One timed action of the fault timeline.
#[derive(Debug, Clone)]
enum Action {
    Partition(Vec<usize>),
    Repair(Vec<usize>),
    Hold(Vec<usize>),
    Release(Vec<usize>),
    Latency(Vec<usize>, Duration),
    RestoreLatency(Vec<usize>),
    Cut(Vec<usize>),
    Heal(Vec<usize>),
    CrashNodes(Vec<usize>, Duration),
    CrashCloud,
    StartCloud,
    CrashApi,
    StartApi,
}

struct Timeline {
    /// (ms after ready, order, action, label)
    actions: Vec<(u64, usize, Action, String)>,
    next: usize,
}

impl Timeline {
    fn new(sc: &Scenario, seed: u64) -> Self {
        let mut actions = Vec::new();
        let n = sc.fleet.nodes;
        let sites = sc.fleet.sites;
        let mut add = |t_s: u64, a: Action, label: String| {
            let order = actions.len();
            actions.push((t_s * 1000, order, a, label));
        };
        for (i, f) in sc.fault.iter().enumerate() {
            let rng = ChaCha8Rng::seed_from_u64(seed ^ (i as u64 + 1).wrapping_mul(0x9e37));
            expand(f, n, sites, rng, &mut add);
        }
        flaps(sc, &mut add);
        actions.sort_by_key(|(t, order, _, _)| (*t, *order));
        Self { actions, next: 0 }
    }
}

/// The actions of one fault.
fn expand(
    f: &Fault,
    n: usize,
    sites: usize,
    mut rng: ChaCha8Rng,
    add: &mut impl FnMut(u64, Action, String),
) {
    let t = f.at_s();
    let end = t + f.duration_s();
    let label = format!("{f:?}");
    match f {
        Fault::PartitionSites { sites: s, .. } => {
            add(t, Action::Partition(s.resolve(sites)), label);
            add(end, Action::Repair(s.resolve(sites)), "repair".into());
        }
        Fault::CutFleet { .. } => {
            add(t, Action::Partition((0..sites).collect()), label);
            add(end, Action::Repair((0..sites).collect()), "restore".into());
        }
        Fault::HoldSites { sites: s, .. } => {
            add(t, Action::Hold(s.resolve(sites)), label);
            add(end, Action::Release(s.resolve(sites)), "release".into());
        }
        Fault::LatencySpike {
            sites: s,
            latency_ms,
            ..
        } => {
            let d = Duration::from_millis(*latency_ms);
            add(t, Action::Latency(s.resolve(sites), d), label);
            add(
                end,
                Action::RestoreLatency(s.resolve(sites)),
                "latency back".into(),
            );
        }
        Fault::PartitionNodes {
            share,
            duration_s,
            crash_share,
            ..
        } => {
            let picked = pick(n, *share, &mut rng);
            let crash = pick_from(&picked, *crash_share, &mut rng);
            let third = duration_s / 3;
            add(t, Action::Cut(picked.clone()), label);
            let down = Duration::from_secs(third.clamp(1, 60));
            add(
                t + third,
                Action::CrashNodes(crash, down),
                "crash while cut".into(),
            );
            add(end, Action::Heal(picked), "heal".into());
        }
        Fault::CrashNodes { share, down_s, .. } => {
            let picked = pick(n, *share, &mut rng);
            let down = Duration::from_secs((*down_s).max(1));
            add(t, Action::CrashNodes(picked, down), label);
        }
        Fault::CrashCloudcore { .. } => {
            add(t, Action::CrashCloud, label);
            add(end, Action::StartCloud, "cloudcore back".into());
        }
        Fault::RestartApiserver { .. } => {
            add(t, Action::CrashApi, label);
            add(end, Action::StartApi, "apiserver back".into());
        }
    }
}

impl Timeline {
    fn due(&mut self, since_ready_ms: u64) -> Vec<(Action, String)> {
        let mut out = Vec::new();
        while let Some((t, _, a, l)) = self.actions.get(self.next) {
            if *t > since_ready_ms {
                break;
            }
            out.push((a.clone(), l.clone()));
            self.next += 1;
        }
        out
    }
}

fn flaps(sc: &Scenario, add: &mut impl FnMut(u64, Action, String)) {
    let until = sc.last_event_s();
    for link in &sc.network.site {
        let (Some(every), Some(down)) = (link.flap_every_s, link.flap_down_s) else {
            continue;
        };
        let sites = link.sites.resolve(sc.fleet.sites);
        let mut t = every;
        while every > 0 && t + down <= until.max(every) {
            add(
                t,
                Action::Partition(sites.clone()),
                format!("flap {sites:?}"),
            );
            add(t + down, Action::Repair(sites.clone()), "flap over".into());
            t += every;
        }
    }
}

/// `share` of `0..n`, picked by `rng`, sorted.
fn pick(n: usize, share: f64, rng: &mut ChaCha8Rng) -> Vec<usize> {
    let all: Vec<usize> = (0..n).collect();
    pick_from(&all, share, rng)
}

fn pick_from(from: &[usize], share: f64, rng: &mut ChaCha8Rng) -> Vec<usize> {
    let k = ((from.len() as f64) * share).round() as usize;
    let mut v = from.to_vec();
    v.shuffle(rng);
    v.truncate(k);
    v.sort_unstable();
    v
}

struct Loop<'a> {
    sim: turmoil::Sim<'a>,
    sh: Arc<Shared>,
    timeline: Timeline,
    series: Vec<Sample>,
    /// When the run started (wall clock), for the samples' `wall_s`.
    started: tokio::time::Instant,
    metrics: Metrics,
    api_base: BTreeMap<String, u64>,
    base_latency: (Duration, Duration),
}

fn ips(sites: &[usize]) -> Vec<String> {
    sites.iter().map(|&s| site_host(s)).collect()
}

impl Loop<'_> {
    fn apply(&mut self, a: Action, label: String, t: Duration) {
        self.sh.trace.event_at(t, format_args!("fault {label}"));
        if !matches!(
            a,
            Action::Repair(_)
                | Action::Release(_)
                | Action::RestoreLatency(_)
                | Action::Heal(_)
                | Action::StartCloud
                | Action::StartApi
        ) {
            self.metrics.faults.push((t.as_secs_f64(), label));
        }
        match a {
            Action::Partition(s) => ips(&s)
                .iter()
                .for_each(|h| self.sim.partition(CLOUD, h.as_str())),
            Action::Repair(s) => ips(&s)
                .iter()
                .for_each(|h| self.sim.repair(CLOUD, h.as_str())),
            Action::Hold(s) => ips(&s)
                .iter()
                .for_each(|h| self.sim.hold(CLOUD, h.as_str())),
            Action::Release(s) => ips(&s)
                .iter()
                .for_each(|h| self.sim.release(CLOUD, h.as_str())),
            Action::Latency(s, d) => {
                for h in ips(&s) {
                    self.sim.set_link_latency(CLOUD, h.as_str(), d);
                }
            }
            Action::RestoreLatency(s) => {
                for h in ips(&s) {
                    self.sim
                        .set_link_latency(CLOUD, h.as_str(), self.base_latency.0);
                    self.sim
                        .set_link_max_message_latency(CLOUD, h.as_str(), self.base_latency.1);
                }
            }
            Action::Cut(nodes) => nodes.iter().for_each(|&i| self.sh.nodes[i].set_cut(true)),
            Action::Heal(nodes) => nodes.iter().for_each(|&i| self.sh.nodes[i].set_cut(false)),
            Action::CrashNodes(nodes, down) => {
                nodes.iter().for_each(|&i| self.sh.nodes[i].crash(down))
            }
            Action::CrashCloud => {
                self.sim.crash(CLOUD);
                self.sh.cloud_down();
            }
            Action::StartCloud => self.sim.bounce(CLOUD),
            Action::CrashApi => {
                if let Some(a) = self.sh.api_now() {
                    for (verb, n) in a.state.metrics.requests_by_verb() {
                        *self.api_base.entry(verb.to_owned()).or_default() += n;
                    }
                }
                self.sim.crash(API);
                self.sh.api_down();
            }
            Action::StartApi => self.sim.bounce(API),
        }
    }

    fn connected(&self) -> u64 {
        self.sh
            .nodes
            .iter()
            .filter(|n| n.connected.load(Ordering::Relaxed))
            .count() as u64
    }

    fn sample(&mut self, t: Duration) -> Sample {
        let (p50, p99) = self.sh.trace.take_window();
        let queue = self.sh.hub().map_or(0, |h| {
            let m = h.metrics();
            (m.ack_queue_depth + m.noack_queue_depth) as u64
        });
        self.metrics.hub_queue_peak = self.metrics.hub_queue_peak.max(queue);
        let s = Sample {
            t: t.as_secs_f64(),
            connected: self.connected(),
            pending: self.sh.trace.pending(),
            queue_depth: queue,
            sync_p50_ms: p50,
            sync_p99_ms: p99,
            rss_bytes: proc_status("VmRSS:"),
            wall_s: self.started.elapsed().as_secs_f64(),
            twin_confirmed: self.sh.devices.confirmed(),
        };
        self.series.push(s.clone());
        s
    }

    /// Steps until the driver ends or the limit passes. `Err` is a crash.
    fn drive(&mut self, mut progress: impl FnMut(Progress)) -> Result<(), String> {
        let limit = Duration::from_secs(self.sh.scenario.limit_s);
        let nodes = self.sh.nodes.len() as u64;
        let mut next_sample = Duration::ZERO;
        loop {
            let done = self.sim.step().map_err(|e| chain(&*e))?;
            let t = self.sim.elapsed();
            if done {
                return Ok(());
            }
            if self.sh.ready().is_none() && t >= next_sample && self.connected() == nodes {
                *self
                    .sh
                    .ready_at
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(t);
                self.sh.trace.event_at(t, format_args!("fleet ready"));
            }
            if let Some(ready) = self.sh.ready() {
                let since = u64::try_from((t - ready).as_millis()).unwrap_or(u64::MAX);
                for (a, label) in self.timeline.due(since) {
                    self.apply(a, label, t);
                }
            }
            if t >= next_sample {
                next_sample += Duration::from_secs(1);
                let s = self.sample(t);
                progress(Progress {
                    sim_seconds: s.t,
                    limit_seconds: limit.as_secs_f64(),
                    connected: s.connected,
                    nodes,
                    pending: s.pending,
                });
            }
            if t >= limit {
                let detail = format!(
                    "the run reached its limit of {} simulated s",
                    limit.as_secs()
                );
                self.sh.check(CheckResult {
                    name: "finished".into(),
                    kind: CheckKind::Liveness,
                    passed: false,
                    detail,
                });
                return Ok(());
            }
        }
    }
}

/// An error with its causes, `a: b: c`.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// `field` of /proc/self/status, in bytes (0 where unknown).
pub fn proc_status(field: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn build(sc: &Scenario, sh: &Arc<Shared>) -> turmoil::Sim<'static> {
    let net = &sc.network;
    let sim = turmoil::Builder::new()
        .rng_seed(sh.seed)
        .simulation_duration(Duration::from_secs(sc.limit_s + 60))
        .tick_duration(Duration::from_millis(sc.tick_ms))
        .min_message_latency(Duration::from_millis(net.latency_min_ms))
        .max_message_latency(Duration::from_millis(net.latency_max_ms))
        .tcp_capacity((sc.fleet.nodes * 4).max(4096))
        .ephemeral_ports(1024..=65535)
        .build();
    let mut sim = sim;
    fleet::add_api(&mut sim, sh);
    fleet::add_cloud(&mut sim, sh);
    fleet::add_sites(&mut sim, sh);
    if let Some(ms) = net.cloud_api_latency_ms {
        let d = Duration::from_millis(ms);
        sim.set_link_latency(CLOUD, API, d);
        sim.set_link_max_message_latency(CLOUD, API, d);
    }
    let mut loss = vec![net.loss; sc.fleet.sites];
    for link in &net.site {
        for s in link.sites.resolve(sc.fleet.sites) {
            let h = site_host(s);
            if let Some(ms) = link.latency_max_ms {
                sim.set_link_max_message_latency(CLOUD, h.as_str(), Duration::from_millis(ms));
            }
            if let Some(l) = link.loss {
                loss[s] = l;
            }
        }
    }
    for (i, ctl) in sh.nodes.iter().enumerate() {
        let l = loss[sh.site_of(i)];
        if l > 0.0 {
            ctl.set_loss(l, sh.seed ^ (i as u64).wrapping_mul(0x2545_f491_4f6c_dd1d));
        }
    }
    let d = sh.clone();
    sim.client("ctl", async move { crate::workload::drive(d).await });
    sim
}

/// Runs `scenario` (see the module docs); `progress` hears once a simulated second.
pub fn run(scenario: &Scenario, opts: &RunOptions, progress: impl FnMut(Progress)) -> Outcome {
    let started = tokio::time::Instant::now();
    let mut sc = scenario.clone();
    if let Some(n) = opts.nodes {
        sc.fleet.nodes = n;
    }
    sc.seed = opts.seed;
    let mut shared = Shared::new(sc.clone(), opts.seed, opts.work_dir.clone(), opts.epoch);
    if let Some(file) = opts
        .events
        .as_ref()
        .and_then(|p| std::fs::File::create(p).ok())
    {
        shared.trace = Arc::new(crate::trace::Trace::with_log(file));
    }
    let sh = Arc::new(shared);
    sh.trace.event_at(
        Duration::ZERO,
        format_args!(
            "scenario {} seed {} nodes {} sites {} tick {} ms",
            sc.name, opts.seed, sc.fleet.nodes, sc.fleet.sites, sc.tick_ms
        ),
    );
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
        simulate(&sc, &sh, opts, started, progress)
    }));
    let wall = started.elapsed().as_secs_f64();
    let (crash, sim_t, series, metrics, api_base) = match result {
        Ok((r, t, s, m, b)) => (r.err(), t, s, m, b),
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "panic".to_owned());
            (
                Some(format!("panic: {msg}")),
                Duration::ZERO,
                Vec::new(),
                Metrics::default(),
                BTreeMap::new(),
            )
        }
    };
    let end = crate::assemble::Ended {
        crash,
        sim: sim_t,
        wall,
        series,
        metrics,
        api_base,
    };
    let outcome = crate::assemble::outcome(&sh, &sc, end);
    sh.trace.flush();
    outcome
}

/// What a run's loop leaves: its end, the simulated time, the samples, the metrics and the
/// API server's request counts at the start of each phase.
type Simulated = (
    Result<(), String>,
    Duration,
    Vec<Sample>,
    Metrics,
    BTreeMap<String, u64>,
);

/// Builds the world and drives it to the end; the world is freed or left allocated as
/// `opts.free_world` says.
fn simulate(
    sc: &Scenario,
    sh: &Arc<Shared>,
    opts: &RunOptions,
    started: tokio::time::Instant,
    progress: impl FnMut(Progress),
) -> Simulated {
    let mut lp = Loop {
        sim: build(sc, sh),
        sh: sh.clone(),
        timeline: Timeline::new(sc, opts.seed),
        series: Vec::new(),
        started,
        metrics: Metrics::default(),
        api_base: BTreeMap::new(),
        base_latency: (
            Duration::from_millis(sc.network.latency_min_ms),
            Duration::from_millis(sc.network.latency_max_ms),
        ),
    };
    let r = lp.drive(progress);
    let t = lp.sim.elapsed();
    let Loop {
        sim,
        series,
        metrics,
        api_base,
        ..
    } = lp;
    if !opts.free_world {
        std::mem::forget(sim);
    }
    (r, t, series, metrics, api_base)
}
