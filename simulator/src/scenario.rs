//! Scenario files (`scenarios/*.toml`): the fleet, its network, the workload, the fault
//! timeline and the checks. Unknown fields are refused; a bad file gets an error naming the
//! file, the line and column, and the field.
//!
//! Times (`at_s`) count from the moment the whole fleet is connected ("ready"), so a
//! scenario means the same at any fleet size.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Why a scenario file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The TOML does not parse or does not fit the schema.
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line of the offending text.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong (names the field).
        message: String,
    },
    /// The values parse but make no sense together.
    #[error("{path}: {field}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The field, as a TOML path.
        field: String,
        /// What is wrong.
        message: String,
    },
}

/// One scenario.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Name used in reports (default: the file stem).
    #[serde(default)]
    pub name: String,
    /// Default seed (`--seed` overrides).
    #[serde(default = "one")]
    pub seed: u64,
    /// The simulation's tick in ms (turmoil steps; 10 ms measured best).
    #[serde(default = "ten")]
    pub tick_ms: u64,
    /// Longest run in simulated seconds, start-up included; a run still going then fails
    /// its liveness checks.
    #[serde(default = "default_limit")]
    pub limit_s: u64,
    /// Steady state: the run goes on at least this many seconds after the fleet is ready,
    /// even when the last phase or fault comes earlier (status and twin reports keep
    /// flowing; a throughput measurement's window). 0: no minimum.
    #[serde(default)]
    pub hold_s: u64,
    /// The fleet.
    pub fleet: Fleet,
    /// Cloud side settings.
    #[serde(default)]
    pub cloud: Cloud,
    /// Edge node settings (partial edgecore configuration).
    #[serde(default)]
    pub edge: Edge,
    /// Site links.
    #[serde(default)]
    pub network: Network,
    /// Workload phases, in any order (sorted by `at_s`).
    #[serde(default)]
    pub workload: Vec<Phase>,
    /// Faults, in any order (sorted by `at_s`).
    #[serde(default)]
    pub fault: Vec<Fault>,
    /// What must hold.
    #[serde(default)]
    pub checks: Checks,
}

fn one() -> u64 {
    1
}
fn ten() -> u64 {
    10
}
fn default_limit() -> u64 {
    3600
}

/// How cloudcore reaches the API server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApiLink {
    /// cloudcore's default deployment (no kubeconfig): the embedded API server, which
    /// cloudcore calls in-process (no TLS, HTTP/2 or socket between them). The workload
    /// driver and the checks do too unless `cloud.driver = "https"`. Never restarted, so
    /// its SQLite database is kept in memory (the same statements, no file writes).
    #[default]
    Embedded,
    /// An external API server (cloudcore given a kubeconfig), reached over HTTPS across the
    /// cloud↔API link: the link `network.cloud_api_latency_ms` slows and the server
    /// `restart_apiserver` restarts.
    External,
}

/// How the workload driver and the checks (the client `ctl`) reach the API server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriverLink {
    /// The embedded server's router called in-process, as cloudcore calls it: the driver is
    /// the scenario's load, not a part under test, so its requests cost the API server's
    /// handling (authentication, validation, SQLite, watches) but no TLS, HTTP/2 or link.
    /// The default with `cloud.apiserver = "embedded"`.
    InProcess,
    /// HTTPS across the simulated network, as kubectl: the API server also pays the TLS
    /// and HTTP/2 of its users. The only choice (and the default) with an external server.
    Https,
}

/// Cloud side settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Cloud {
    /// `embedded` (default) or `external`.
    pub apiserver: ApiLink,
    /// `in_process` or `https`; unset: `in_process` with the embedded server, `https` with
    /// an external one.
    pub driver: Option<DriverLink>,
}

impl Cloud {
    /// How the driver reaches the API server.
    #[must_use]
    pub fn driver_link(&self) -> DriverLink {
        match (self.driver, self.apiserver) {
            (Some(link), _) => link,
            (None, ApiLink::Embedded) => DriverLink::InProcess,
            (None, ApiLink::External) => DriverLink::Https,
        }
    }
}

/// Fleet shape.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fleet {
    /// Edge nodes in all (`--nodes` overrides).
    pub nodes: usize,
    /// Sites: turmoil hosts the nodes are spread over (each a failure domain).
    #[serde(default = "default_sites")]
    pub sites: usize,
    /// Pods per node, created by the first `create_pods` phase.
    #[serde(default)]
    pub pods_per_node: usize,
    /// Devices per node, created by the `create_devices` phase; each node then runs DeviceTwin
    /// and a virtual mapper for them on an in-memory bus.
    #[serde(default)]
    pub devices_per_node: usize,
    /// Nodes start spread evenly over this many seconds.
    #[serde(default = "ten")]
    pub start_spread_s: u64,
    /// Configmaps per namespace shared by the pods (pod `i` references `cfg-{i % n}`).
    #[serde(default = "one_usize")]
    pub configmaps: usize,
}

fn default_sites() -> usize {
    20
}
fn one_usize() -> usize {
    1
}

/// Edge node settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Edge {
    /// Node status report period (KubeEdge's 100k test: 60 s).
    pub status_update_period_s: u64,
    /// Lease renewal period.
    pub lease_renew_period_s: u64,
    /// EdgeHub keepalive period.
    pub heartbeat_s: u64,
    /// The virtual mapper reports every device's properties (one `twin/update` each) every
    /// this many seconds, each device at its own seeded offset within the period.
    pub twin_report_period_s: u64,
    /// Read-only properties of every device (the mapper reports seeded readings).
    pub device_sensors: Vec<String>,
    /// Writable properties of every device (the mapper applies desired values to them and
    /// reports them at once).
    pub device_actuators: Vec<String>,
}

impl Default for Edge {
    fn default() -> Self {
        Self {
            status_update_period_s: 60,
            lease_renew_period_s: 60,
            heartbeat_s: 15,
            twin_report_period_s: 10,
            device_sensors: vec!["temperature".to_owned()],
            device_actuators: vec!["target".to_owned()],
        }
    }
}

/// Site links.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Network {
    /// Smallest one-way latency, ms.
    pub latency_min_ms: u64,
    /// Largest one-way latency, ms (turmoil draws from an exponential curve in between).
    pub latency_max_ms: u64,
    /// Share of TCP segments lost on site links. Modeled as TCP recovers from it: each read
    /// or write of a node's stream is held back by a retransmission timeout (1 s) with this
    /// probability (turmoil's own loss would kill the stream: its TCP never retransmits).
    pub loss: f64,
    /// Overrides per site.
    pub site: Vec<SiteLink>,
    /// Fixed one-way latency between cloudcore and the API server, ms (default: like every
    /// link, `latency_min_ms..latency_max_ms`). cloudcore's upstream workers make one API
    /// call at a time each, so this latency bounds how many device reports one cloudcore
    /// turns into DeviceStatus writes per second.
    pub cloud_api_latency_ms: Option<u64>,
}

impl Default for Network {
    fn default() -> Self {
        Self {
            latency_min_ms: 1,
            latency_max_ms: 50,
            loss: 0.0,
            site: Vec::new(),
            cloud_api_latency_ms: None,
        }
    }
}

/// A site's link to the cloud.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteLink {
    /// The sites (indices from 0).
    pub sites: Sites,
    /// Largest one-way latency, ms.
    pub latency_max_ms: Option<u64>,
    /// Share of messages lost.
    pub loss: Option<f64>,
    /// The link goes down every this many seconds...
    pub flap_every_s: Option<u64>,
    /// ...for this many seconds.
    pub flap_down_s: Option<u64>,
}

/// Which sites: a list of indices or `"all"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Sites {
    /// `"all"`.
    All(AllSites),
    /// Indices.
    List(Vec<usize>),
}

/// The literal `"all"`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AllSites {
    /// Every site.
    All,
}

impl Sites {
    /// The indices below `n`.
    pub fn resolve(&self, n: usize) -> Vec<usize> {
        match self {
            Self::All(_) => (0..n).collect(),
            Self::List(v) => v.iter().copied().filter(|&i| i < n).collect(),
        }
    }
}

/// What a workload phase does.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Phase {
    /// Create the configmaps and `fleet.pods_per_node` pods on every node.
    CreatePods {
        /// Start, seconds after ready.
        at_s: u64,
        /// Pods whose containers exit and restart every this many seconds (pod status churn:
        /// every restart is a status report up, a status patch and a watch event; no pod
        /// update goes down, as KubeEdge sends no status-only changes);
        /// 0: they run until stopped.
        #[serde(default)]
        restart_every_s: u64,
    },
    /// Replace every pod by one with a new template (new name, new image), `batch` at a time.
    RollingUpdate {
        /// Start, seconds after ready.
        at_s: u64,
        /// As in `create_pods`, for the new pods.
        #[serde(default)]
        restart_every_s: u64,
        /// Pods replaced per step.
        batch: usize,
        /// Seconds between steps.
        #[serde(default)]
        interval_s: u64,
    },
    /// Change every configmap `rounds` times, `interval_s` apart.
    ConfigmapChurn {
        /// Start, seconds after ready.
        at_s: u64,
        /// How many changes of each.
        rounds: u64,
        /// Seconds between rounds.
        interval_s: u64,
    },
    /// Create one DeviceModel per namespace the fleet uses and `fleet.devices_per_node`
    /// Devices on every node (`spec.nodeName`), each actuator with a desired value.
    CreateDevices {
        /// Start, seconds after ready.
        at_s: u64,
    },
    /// Set a new desired value of every actuator on a share of the devices (picked by the
    /// seed, again each round), `rounds` times, `interval_s` apart.
    DesiredChurn {
        /// Start, seconds after ready.
        at_s: u64,
        /// How many rounds.
        rounds: u64,
        /// Share of devices changed per round, 0..=1.
        #[serde(default = "one_f64")]
        share: f64,
        /// Seconds between rounds.
        #[serde(default)]
        interval_s: u64,
    },
    /// Delete every Device (their DeviceStatus objects go with them).
    DeleteDevices {
        /// Start, seconds after ready.
        at_s: u64,
    },
}

fn one_f64() -> f64 {
    1.0
}

/// What a fault does.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// Cut sites from the cloud (messages dropped) for `duration_s`.
    PartitionSites {
        /// Start, seconds after ready.
        at_s: u64,
        /// Which sites.
        sites: Sites,
        /// How long.
        duration_s: u64,
    },
    /// Cut a share of all nodes (picked by the seed) for `duration_s`; some of them may
    /// crash-restart while cut.
    PartitionNodes {
        /// Start, seconds after ready.
        at_s: u64,
        /// Share of nodes, 0..=1.
        share: f64,
        /// How long.
        duration_s: u64,
        /// Share of the cut nodes that crash and restart (database kept) while cut.
        #[serde(default)]
        crash_share: f64,
    },
    /// Hold sites' messages (delivered late, in a burst, on release).
    HoldSites {
        /// Start, seconds after ready.
        at_s: u64,
        /// Which sites.
        sites: Sites,
        /// How long.
        duration_s: u64,
    },
    /// Raise sites' latency.
    LatencySpike {
        /// Start, seconds after ready.
        at_s: u64,
        /// Which sites.
        sites: Sites,
        /// The one-way latency during the spike, ms.
        latency_ms: u64,
        /// How long.
        duration_s: u64,
    },
    /// Crash a share of nodes (their database kept) and restart them after `down_s`.
    CrashNodes {
        /// Start, seconds after ready.
        at_s: u64,
        /// Share of nodes, 0..=1.
        share: f64,
        /// Down time.
        down_s: u64,
    },
    /// Crash cloudcore and start it again after `down_s`.
    CrashCloudcore {
        /// Start, seconds after ready.
        at_s: u64,
        /// Down time.
        down_s: u64,
    },
    /// Crash the API server and start it again after `down_s` (its data kept).
    RestartApiserver {
        /// Start, seconds after ready.
        at_s: u64,
        /// Down time.
        down_s: u64,
    },
    /// Cut the whole fleet from the cloud and restore it at once.
    CutFleet {
        /// Start, seconds after ready.
        at_s: u64,
        /// How long.
        duration_s: u64,
    },
}

impl Phase {
    /// Start, seconds after ready.
    pub fn at_s(&self) -> u64 {
        match self {
            Self::CreatePods { at_s, .. }
            | Self::RollingUpdate { at_s, .. }
            | Self::ConfigmapChurn { at_s, .. }
            | Self::CreateDevices { at_s }
            | Self::DesiredChurn { at_s, .. }
            | Self::DeleteDevices { at_s } => *at_s,
        }
    }
}

impl Fault {
    /// Start, seconds after ready.
    pub fn at_s(&self) -> u64 {
        match self {
            Self::PartitionSites { at_s, .. }
            | Self::PartitionNodes { at_s, .. }
            | Self::HoldSites { at_s, .. }
            | Self::LatencySpike { at_s, .. }
            | Self::CrashNodes { at_s, .. }
            | Self::CrashCloudcore { at_s, .. }
            | Self::RestartApiserver { at_s, .. }
            | Self::CutFleet { at_s, .. } => *at_s,
        }
    }

    /// How long the fault lasts, seconds.
    pub fn duration_s(&self) -> u64 {
        match self {
            Self::PartitionSites { duration_s, .. }
            | Self::PartitionNodes { duration_s, .. }
            | Self::HoldSites { duration_s, .. }
            | Self::LatencySpike { duration_s, .. }
            | Self::CutFleet { duration_s, .. } => *duration_s,
            Self::CrashNodes { down_s, .. }
            | Self::CrashCloudcore { down_s, .. }
            | Self::RestartApiserver { down_s, .. } => *down_s,
        }
    }
}

/// What must hold.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Checks {
    /// Every node holds exactly its objects within this many seconds after the last fault
    /// and workload phase ended.
    pub converge_within_s: u64,
    /// The fleet connects within this many seconds of the start.
    pub ready_within_s: u64,
    /// Largest cloud hub queue depth allowed (messages for any one node).
    pub hub_queue_max: u64,
    /// Peak resident memory of the simulator process allowed, MiB (0: unchecked).
    pub rss_max_mib: u64,
}

impl Default for Checks {
    fn default() -> Self {
        Self {
            converge_within_s: 300,
            ready_within_s: 600,
            hub_queue_max: 10_000,
            rss_max_mib: 0,
        }
    }
}

impl Scenario {
    /// Reads and validates `path`; `name` defaults to the file stem.
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.to_owned(),
            source,
        })?;
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("scenario");
        Self::parse(&text, path, stem)
    }

    /// Parses `text` (from `path`, for messages).
    pub fn parse(text: &str, path: &Path, stem: &str) -> Result<Self, ScenarioError> {
        let mut s: Self = toml::from_str(text).map_err(|e| {
            let (line, column) = e
                .span()
                .map_or((1, 1), |span| line_column(text, span.start));
            ScenarioError::Parse {
                path: path.to_owned(),
                line,
                column,
                message: e.message().trim().to_owned(),
            }
        })?;
        if s.name.is_empty() {
            stem.clone_into(&mut s.name);
        }
        s.workload.sort_by_key(Phase::at_s);
        s.fault.sort_by_key(Fault::at_s);
        s.validate()
            .map_err(|(field, message)| ScenarioError::Invalid {
                path: path.to_owned(),
                field,
                message,
            })?;
        Ok(s)
    }

    fn validate(&self) -> Result<(), (String, String)> {
        let bad = |f: &str, m: &str| Err((f.to_owned(), m.to_owned()));
        let f = &self.fleet;
        if f.nodes == 0 {
            return bad("fleet.nodes", "must be at least 1");
        }
        if f.sites == 0 || f.sites > 64 {
            return bad(
                "fleet.sites",
                "must be 1..=64 (turmoil's cost grows with hosts³)",
            );
        }
        if f.configmaps == 0 {
            return bad("fleet.configmaps", "must be at least 1");
        }
        if self.tick_ms == 0 || self.tick_ms > 1000 {
            return bad("tick_ms", "must be 1..=1000");
        }
        let n = &self.network;
        if n.latency_min_ms > n.latency_max_ms {
            return bad("network.latency_min_ms", "is above latency_max_ms");
        }
        if !(0.0..=1.0).contains(&n.loss) {
            return bad("network.loss", "must be within 0..=1");
        }
        for (i, l) in n.site.iter().enumerate() {
            if l.loss.is_some_and(|x| !(0.0..=1.0).contains(&x)) {
                return bad(&format!("network.site[{i}].loss"), "must be within 0..=1");
            }
            if l.flap_every_s.is_some() != l.flap_down_s.is_some() {
                return bad(
                    &format!("network.site[{i}]"),
                    "flap_every_s and flap_down_s go together",
                );
            }
        }
        self.validate_devices()?;
        self.validate_timeline()
    }

    /// Whether the fleet has devices (DeviceTwin and the virtual mapper run on every node).
    pub fn has_devices(&self) -> bool {
        self.fleet.devices_per_node > 0
    }

    fn validate_devices(&self) -> Result<(), (String, String)> {
        let bad = |f: &str, m: &str| Err((f.to_owned(), m.to_owned()));
        let e = &self.edge;
        let phase = |want: fn(&Phase) -> bool| self.workload.iter().filter(|p| want(p)).count();
        let creates = phase(|p| matches!(p, Phase::CreateDevices { .. }));
        let others =
            phase(|p| matches!(p, Phase::DesiredChurn { .. } | Phase::DeleteDevices { .. }));
        if self.fleet.devices_per_node > 10_000 {
            return bad("fleet.devices_per_node", "must be at most 10000");
        }
        if !self.has_devices() {
            if creates + others > 0 {
                return bad("workload", "device phases need fleet.devices_per_node > 0");
            }
            return Ok(());
        }
        if creates != 1 {
            return bad(
                "workload",
                "a fleet with devices needs exactly one create_devices phase",
            );
        }
        if e.twin_report_period_s == 0 {
            return bad("edge.twin_report_period_s", "must be at least 1");
        }
        let all: Vec<&String> = e.device_sensors.iter().chain(&e.device_actuators).collect();
        if all.is_empty() {
            return bad(
                "edge.device_sensors",
                "a device needs at least one property",
            );
        }
        for (i, name) in all.iter().enumerate() {
            if !ke_proto::twin::valid_key(name) || name.len() > 63 {
                return bad(
                    "edge.device_sensors",
                    &format!("property {name:?}: want 1-63 of [a-zA-Z0-9-_.,:/@#]"),
                );
            }
            if all[..i].contains(name) {
                return bad("edge.device_actuators", &format!("property {name:?} twice"));
            }
        }
        let t0 = self
            .workload
            .iter()
            .find(|p| matches!(p, Phase::CreateDevices { .. }));
        let t0 = t0.map_or(0, Phase::at_s);
        for (i, p) in self.workload.iter().enumerate() {
            match p {
                Phase::DesiredChurn { share, at_s, .. } => {
                    if !(0.0..=1.0).contains(share) {
                        return bad(&format!("workload[{i}].share"), "must be within 0..=1");
                    }
                    if e.device_actuators.is_empty() {
                        return bad("edge.device_actuators", "desired_churn needs an actuator");
                    }
                    if *at_s < t0 {
                        return bad(&format!("workload[{i}].at_s"), "is before create_devices");
                    }
                }
                Phase::DeleteDevices { at_s } if *at_s < t0 => {
                    return bad(&format!("workload[{i}].at_s"), "is before create_devices");
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn validate_timeline(&self) -> Result<(), (String, String)> {
        let external = self.cloud.apiserver == ApiLink::External;
        if external && self.cloud.driver == Some(DriverLink::InProcess) {
            return Err((
                "cloud.driver".to_owned(),
                "an external API server is reached over HTTPS; `in_process` needs cloud.apiserver = \"embedded\"".to_owned(),
            ));
        }
        if !external && self.network.cloud_api_latency_ms.is_some() {
            return Err((
                "network.cloud_api_latency_ms".to_owned(),
                "the embedded API server has no link to slow; set cloud.apiserver = \"external\""
                    .to_owned(),
            ));
        }
        for (i, fault) in self.fault.iter().enumerate() {
            if !external && matches!(fault, Fault::RestartApiserver { .. }) {
                return Err((
                    format!("fault[{i}]"),
                    "restart_apiserver restarts an external API server; set cloud.apiserver = \"external\" (the embedded one restarts with cloudcore: crash_cloudcore)".to_owned(),
                ));
            }
            let share = match fault {
                Fault::PartitionNodes {
                    share, crash_share, ..
                } => [*share, *crash_share],
                Fault::CrashNodes { share, .. } => [*share, 0.0],
                _ => [0.0, 0.0],
            };
            if share.iter().any(|s| !(0.0..=1.0).contains(s)) {
                return Err((
                    format!("fault[{i}].share"),
                    "shares must be within 0..=1".to_owned(),
                ));
            }
        }
        let creates = self
            .workload
            .iter()
            .filter(|p| matches!(p, Phase::CreatePods { .. }))
            .count();
        if creates > 1 {
            return Err((
                "workload".to_owned(),
                "at most one create_pods phase".to_owned(),
            ));
        }
        Ok(())
    }

    /// When the last fault or workload phase ends, seconds after ready (an estimate for
    /// phases whose length depends on the fleet: steps × interval).
    pub fn last_event_s(&self) -> u64 {
        let faults = self.fault.iter().map(|f| f.at_s() + f.duration_s());
        let phases = self.workload.iter().map(|p| match p {
            Phase::ConfigmapChurn {
                at_s,
                rounds,
                interval_s,
            }
            | Phase::DesiredChurn {
                at_s,
                rounds,
                interval_s,
                ..
            } => at_s + rounds * interval_s,
            _ => p.at_s(),
        });
        faults.chain(phases).max().unwrap_or(0).max(self.hold_s)
    }
}

/// 1-based line and column of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |nl| before.len() - nl - 1)
        + 1;
    (line, column)
}

#[cfg(test)]
mod tests;
