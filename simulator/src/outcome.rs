//! [`Outcome`]: everything one run produced, as written to `report.json` (the harness renders
//! `report.md` and the SVG plots from it).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The result of one scenario run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outcome {
    /// Scenario name (the file stem).
    pub scenario: String,
    /// The run's seed.
    pub seed: u64,
    /// Every check passed and the run did not crash.
    pub passed: bool,
    /// Hex SHA-256 of the event log: equal for equal seed, scenario and binary.
    pub digest: String,
    /// Virtual edge nodes.
    pub nodes: usize,
    /// Pods in the fleet at the end of the workload.
    pub pods: usize,
    /// Simulated seconds run.
    pub sim_seconds: f64,
    /// Wall-clock seconds the run took.
    pub wall_seconds: f64,
    /// Peak resident set of the simulator process (`VmHWM`).
    pub peak_rss_bytes: u64,
    /// Events in the log the digest covers.
    pub events: u64,
    /// Each check, in the scenario's order.
    pub checks: Vec<CheckResult>,
    /// Measured figures.
    pub metrics: Metrics,
    /// Samples over simulated time (for the plots).
    pub series: Vec<Sample>,
    /// Set when the simulation itself failed (a panic or a host error): the run crashed.
    pub crash: Option<String>,
    /// Real mode only: what cloudcore and the edgemark processes cost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub real: Option<RealFigures>,
    /// The settings the run used (tick, hosts, nodes per host, versions), for reproduction.
    pub settings: BTreeMap<String, String>,
}

/// What a failed check means for the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckKind {
    /// Something that should have happened did not (convergence, liveness).
    Liveness,
    /// Something that must never happen did (lost update, resurrection, leak, bound exceeded).
    Safety,
}

/// One check's verdict.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckResult {
    /// The check's name (`converged`, `no_lost_updates`, ...).
    pub name: String,
    /// Liveness or safety.
    pub kind: CheckKind,
    /// Whether it held.
    pub passed: bool,
    /// What was measured, or the first counterexample.
    pub detail: String,
}

/// Percentiles of one latency distribution, in milliseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Percentiles {
    /// Values recorded.
    pub count: u64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest value.
    pub max: f64,
}

/// What a real-mode run cost, from `/proc` and cloudcore's metrics.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RealFigures {
    /// cloudcore's CPU time (user + system) over the run, all its processes (restarts
    /// included), seconds.
    pub cloudcore_cpu_seconds: f64,
    /// cloudcore's largest resident set, bytes.
    pub cloudcore_peak_rss_bytes: u64,
    /// That divided by the nodes.
    pub cloudcore_rss_per_node_bytes: f64,
    /// cloudcore CPU seconds per node-hour of the run.
    pub cloudcore_cpu_seconds_per_node_hour: f64,
    /// API server requests per node-minute.
    pub api_requests_per_node_minute: f64,
    /// Edgemark processes that held the fleet.
    pub edgemark_processes: usize,
    /// Their largest resident sets, summed, bytes.
    pub edgemark_peak_rss_bytes: u64,
    /// Their CPU time, summed, seconds.
    pub edgemark_cpu_seconds: f64,
    /// cloudcore restarts (crash faults).
    pub cloudcore_restarts: u32,
    /// cloudcore's runtime worker threads (0: not recorded, a report from before).
    #[serde(default)]
    pub cloudcore_threads: u16,
    /// Each edgemark process's runtime worker threads (0: not recorded).
    #[serde(default)]
    pub edgemark_threads: u16,
}

/// Measured figures of a run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Metrics {
    /// API-server write (or delete) → the object stored at its edge node, ms.
    pub sync_latency_ms: Percentiles,
    /// Cloud send → the edge's ACK received by the cloud, ms.
    pub ack_latency_ms: Percentiles,
    /// Connection lost → the node connected again, ms.
    pub reconnect_ms: Percentiles,
    /// Messages cloud → edge per node.
    pub messages_down_per_node: f64,
    /// Messages edge → cloud per node.
    pub messages_up_per_node: f64,
    /// Bytes cloud → edge per node (websocket payloads).
    pub bytes_down_per_node: f64,
    /// Bytes edge → cloud per node (websocket payloads).
    pub bytes_up_per_node: f64,
    /// API-server requests by verb (`get`, `list`, `watch`, `create`, `update`, `patch`,
    /// `delete`).
    pub api_requests: BTreeMap<String, u64>,
    /// Largest cloud hub queue depth seen (messages waiting for any one node).
    pub hub_queue_peak: u64,
    /// Faults applied, in order, with their simulated start time in seconds.
    pub faults: Vec<(f64, String)>,
    /// Device figures (scenarios with devices only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub devices: Option<DeviceFigures>,
}

/// What the devices did: twin reports end to end, desired values down, and their latencies.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DeviceFigures {
    /// Devices in the fleet.
    pub devices: usize,
    /// `twin/update`s the virtual mappers published.
    pub mapper_reports: u64,
    /// Of those, accepted by DeviceTwin (queued in its durable outbox).
    pub mapper_reports_accepted: u64,
    /// Refused by DeviceTwin (unknown device, outbox full).
    pub mapper_reports_refused: u64,
    /// Twin and state reports the cloud confirmed ("OK"), every node.
    pub reports_confirmed: u64,
    /// DeviceStatus writes seen in the API server.
    pub status_writes: u64,
    /// Desired values written through the API server.
    pub desired_writes: u64,
    /// Reports confirmed per simulated second, averaged from the first device report to the
    /// end of the workload.
    pub confirmed_per_sim_s: f64,
    /// The largest one-second count.
    pub confirmed_per_sim_s_peak: f64,
    /// Reports confirmed per wall-clock second over the same window (the simulator runs the
    /// API server, cloudcore and every edgecore on one thread).
    pub confirmed_per_wall_s: f64,
    /// The largest rate over any 10 consecutive samples, per wall second.
    pub confirmed_per_wall_s_peak: f64,
    /// Desired value sent to the API server → the mapper applied it (cloud → edge), ms.
    pub desired_to_device_ms: Percentiles,
    /// Mapper read a value → DeviceStatus shows it (edge → cloud, outbox waits included), ms;
    /// one per DeviceStatus write that carries a new report.
    pub report_to_status_ms: Percentiles,
    /// Publications DeviceTwin dropped because its bus to the mapper was full.
    pub bus_dropped: u64,
    /// Real mode: cloudcore's CPU time (API server included) per confirmed report, µs, in
    /// steady state (the second half of the time reports flowed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloudcore_cpu_us_per_report: Option<f64>,
    /// Real mode: the best 10 s confirmed rate after the mappers stopped, while the edges'
    /// backlog drained (the load generator then needs less of the machine, so this is
    /// nearer what the one cloudcore sustains on its own), reports per wall second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_per_wall_s_peak: Option<f64>,
}

/// The fleet at one instant of simulated time.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Sample {
    /// Simulated seconds since the start.
    pub t: f64,
    /// Nodes with a live session at the cloud.
    pub connected: u64,
    /// Objects written in the API server and not yet stored at their node.
    pub pending: u64,
    /// Messages waiting in the cloud hub's queues, summed over nodes.
    pub queue_depth: u64,
    /// Median sync latency of objects that arrived since the previous sample, ms.
    pub sync_p50_ms: f64,
    /// 99th percentile of the same, ms.
    pub sync_p99_ms: f64,
    /// Resident set of the process at this sample.
    pub rss_bytes: u64,
    /// Wall-clock seconds since the run started (not part of the digest; shows which phase
    /// of a run costs the time).
    #[serde(default)]
    pub wall_s: f64,
    /// Twin reports the cloud confirmed so far (cumulative; devices only).
    #[serde(default)]
    pub twin_confirmed: u64,
}

impl Outcome {
    /// The exit code the harness uses: 0 passed, 127 crash, 128 a liveness check failed,
    /// 129 a safety check failed (safety wins over liveness).
    pub fn exit_code(&self) -> u8 {
        if self.crash.is_some() {
            return 127;
        }
        let failed = |k| self.checks.iter().any(|c| c.kind == k && !c.passed);
        if failed(CheckKind::Safety) {
            129
        } else if failed(CheckKind::Liveness) {
            128
        } else {
            0
        }
    }
}
