//! Turns the run's shared state into its [`Outcome`]: the checks the driver recorded plus
//! the bounds the run loop watched, and the metrics.

use std::{
    collections::BTreeMap,
    sync::{PoisonError, atomic::Ordering},
    time::Duration,
};

use ke_cloud::cloudhub::metrics::{ACK_LATENCY_BUCKETS, MetricsSnapshot};

use crate::{
    fleet::Shared,
    outcome::{CheckKind, CheckResult, DeviceFigures, Metrics, Outcome, Percentiles, Sample},
    scenario::Scenario,
};

/// What the run loop hands over.
#[derive(Debug)]
pub struct Ended {
    /// Set if the simulation crashed.
    pub crash: Option<String>,
    /// Simulated time reached.
    pub sim: Duration,
    /// Wall seconds.
    pub wall: f64,
    /// Samples.
    pub series: Vec<Sample>,
    /// Metrics gathered by the loop (faults, queue peak).
    pub metrics: Metrics,
    /// API requests of API server instances that crashed.
    pub api_base: BTreeMap<String, u64>,
}

/// Percentiles (upper bucket bounds, ms; the overflow bucket reads as the largest bound)
/// from CloudHub's ACK latency histogram.
fn ack_percentiles(m: &MetricsSnapshot) -> Percentiles {
    ack_percentiles_from(&m.ack_latency_buckets)
}

/// The same from bucket counts (not cumulative) of `ACK_LATENCY_BUCKETS` plus `+Inf`.
pub fn ack_percentiles_from(buckets: &[u64]) -> Percentiles {
    let total: u64 = buckets.iter().sum();
    let at = |q: f64| {
        let want = (total as f64 * q).ceil() as u64;
        let mut seen = 0;
        for (i, n) in buckets.iter().enumerate() {
            seen += n;
            if seen >= want.max(1) {
                // The +Inf bucket reads as the largest bound (JSON has no infinity, and
                // serde_json would write `null`, which no reader parses back as a number).
                let bound = ACK_LATENCY_BUCKETS.get(i).or(ACK_LATENCY_BUCKETS.last());
                return bound.map_or(0.0, |s| s * 1000.0);
            }
        }
        0.0
    };
    if total == 0 {
        return Percentiles::default();
    }
    Percentiles {
        count: total,
        p50: at(0.5),
        p90: at(0.9),
        p99: at(0.99),
        max: at(1.0),
    }
}

fn bound_checks(sh: &Shared, sc: &Scenario, metrics: &Metrics, peak_rss: u64) -> Vec<CheckResult> {
    let q = metrics.hub_queue_peak;
    let max = sc.checks.hub_queue_max;
    let mut out = vec![CheckResult {
        name: "hub_queues_bounded".into(),
        kind: CheckKind::Safety,
        passed: q <= max,
        detail: format!("peak CloudHub queue depth {q} (bound {max})"),
    }];
    let mib = peak_rss / (1024 * 1024);
    if sc.checks.rss_max_mib > 0 {
        out.push(CheckResult {
            name: "memory_bounded".into(),
            kind: CheckKind::Safety,
            passed: mib <= sc.checks.rss_max_mib,
            detail: format!(
                "peak RSS {mib} MiB for {} nodes (bound {} MiB)",
                sh.nodes.len(),
                sc.checks.rss_max_mib
            ),
        });
    }
    out
}

/// Device figures from the book and the samples.
fn device_figures(sh: &Shared, sc: &Scenario, series: &[Sample]) -> DeviceFigures {
    let b = &sh.devices;
    let get = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    let (down, up) = b.latencies();
    let (sim_rate, sim_peak, wall_rate, wall_peak) = rates(series, sh.ready(), sc);
    DeviceFigures {
        devices: sc.fleet.nodes * sc.fleet.devices_per_node,
        mapper_reports: get(&b.published),
        mapper_reports_accepted: get(&b.accepted),
        mapper_reports_refused: get(&b.refused),
        reports_confirmed: b.confirmed(),
        status_writes: get(&b.status_writes),
        desired_writes: get(&b.desired_writes),
        confirmed_per_sim_s: sim_rate,
        confirmed_per_sim_s_peak: sim_peak,
        confirmed_per_wall_s: wall_rate,
        confirmed_per_wall_s_peak: wall_peak,
        desired_to_device_ms: down,
        report_to_status_ms: up,
        bus_dropped: b.publish_dropped(),
        cloudcore_cpu_us_per_report: None,
        drain_per_wall_s_peak: None,
    }
}

/// Confirmed reports per simulated and per wall second (mean, peak), over the samples from
/// the first confirmed report to the end of the workload.
pub fn rates(series: &[Sample], ready: Option<Duration>, sc: &Scenario) -> (f64, f64, f64, f64) {
    let end = ready.unwrap_or_default().as_secs_f64() + sc.last_event_s() as f64;
    let w: Vec<&Sample> = series
        .iter()
        .skip_while(|s| s.twin_confirmed == 0)
        .take_while(|s| s.t <= end + 1.0)
        .collect();
    let (Some(a), Some(z)) = (w.first(), w.last()) else {
        return (0.0, 0.0, 0.0, 0.0);
    };
    let n = z.twin_confirmed.saturating_sub(a.twin_confirmed) as f64;
    let per = |d: f64| if d > 0.0 { n / d } else { 0.0 };
    let sim_peak = w
        .windows(2)
        .map(|p| {
            p[1].twin_confirmed.saturating_sub(p[0].twin_confirmed) as f64
                / (p[1].t - p[0].t).max(1e-9)
        })
        .fold(0.0, f64::max);
    let wall_peak = w
        .windows(11)
        .map(|p| {
            let d = p[10].twin_confirmed.saturating_sub(p[0].twin_confirmed) as f64;
            d / (p[10].wall_s - p[0].wall_s).max(1e-9)
        })
        .fold(0.0, f64::max);
    (
        per(z.t - a.t),
        sim_peak,
        per(z.wall_s - a.wall_s),
        wall_peak,
    )
}

/// Builds the outcome.
pub fn outcome(sh: &Shared, sc: &Scenario, end: Ended) -> Outcome {
    let peak_rss = crate::run::proc_status("VmHWM:");
    let mut metrics = end.metrics;
    let (sync, reconnect) = sh.trace.latencies();
    metrics.sync_latency_ms = sync;
    metrics.reconnect_ms = reconnect;
    let n = sh.nodes.len().max(1) as f64;
    if let Some(hub) = sh.hub() {
        let m = hub.metrics();
        metrics.ack_latency_ms = ack_percentiles(&m);
        metrics.messages_down_per_node = m.messages_out as f64 / n;
        metrics.messages_up_per_node = m.messages_in as f64 / n;
    }
    metrics.bytes_down_per_node = sh.wire.down.load(Ordering::Relaxed) as f64 / n;
    metrics.bytes_up_per_node = sh.wire.up.load(Ordering::Relaxed) as f64 / n;
    let mut api = end.api_base;
    if let Some(a) = sh.api_now() {
        for (verb, k) in a.state.metrics.requests_by_verb() {
            *api.entry(verb.to_owned()).or_default() += k;
        }
    }
    metrics.api_requests = api;
    if sc.has_devices() {
        metrics.devices = Some(device_figures(sh, sc, &end.series));
    }
    let mut checks = sh
        .checks
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    checks.extend(bound_checks(sh, sc, &metrics, peak_rss));
    for c in &checks {
        sh.trace
            .event_at(end.sim, format_args!("verdict {} {}", c.name, c.passed));
    }
    let (digest, events) = sh.trace.digest();
    let passed = end.crash.is_none() && checks.iter().all(|c| c.passed);
    let settings = [
        ("tick_ms", sc.tick_ms.to_string()),
        ("sites", sc.fleet.sites.to_string()),
        (
            "nodes_per_site",
            (sc.fleet.nodes.div_ceil(sc.fleet.sites)).to_string(),
        ),
        ("hosts", (sc.fleet.sites + 3).to_string()),
        ("tls", "rustls (real handshakes, OS randomness)".to_owned()),
        ("simulator", env!("CARGO_PKG_VERSION").to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    Outcome {
        scenario: sc.name.clone(),
        seed: sh.seed,
        passed,
        digest,
        nodes: sc.fleet.nodes,
        pods: sh.pods.load(Ordering::Relaxed) as usize,
        sim_seconds: end.sim.as_secs_f64(),
        wall_seconds: end.wall,
        peak_rss_bytes: peak_rss,
        events,
        checks,
        metrics,
        series: end.series,
        crash: end.crash,
        real: None,
        settings,
    }
}
