//! Real mode (`fleet run --mode real`): the same scenario file against the real `cloudcore`
//! binary (embedded API server) as a child process on loopback, with edgemark processes
//! holding the nodes over real mTLS websockets. The workload goes through the real kube
//! client; the report has the sim mode's format plus what the processes cost.
//!
//! What differs from sim mode:
//! - Time is real: `sim_seconds` is the run's wall time, and nothing is deterministic (the
//!   digest reads `real mode`).
//! - Faults that exist for real: `crash_cloudcore` (SIGKILL, restart after the down time),
//!   `cut_fleet`, `partition_nodes` and `crash_nodes` (edgemark stops those nodes' EdgeCore,
//!   so their connections close, and starts them again with their stores). Site faults and
//!   `restart_apiserver` have no real-mode form and are refused before the run starts.
//! - Sync latency: the driver stamps each write with `edgefleet.io/written-ms`; edgemark
//!   measures from the stamp to the edge's commit. With several edgemark processes each
//!   percentile is the largest of theirs.
//! - Not measured: reconnect time and bytes on the wire.

mod driver;
mod procs;

use std::{
    path::Path,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use anyhow::{Result, bail};
use simulator::{
    Scenario,
    outcome::Outcome,
    scenario::{Fault, Phase},
};

/// What the progress bar shows.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Progress {
    pub(crate) seconds: f64,
    pub(crate) connected: usize,
    pub(crate) nodes: usize,
}

/// Refuses scenarios whose faults have no real-mode form.
pub(crate) fn check_supported(sc: &Scenario) -> Result<()> {
    for f in &sc.fault {
        let name = match f {
            Fault::PartitionSites { .. } => "partition_sites",
            Fault::HoldSites { .. } => "hold_sites",
            Fault::LatencySpike { .. } => "latency_spike",
            Fault::RestartApiserver { .. } => "restart_apiserver",
            Fault::PartitionNodes { .. }
            | Fault::CrashNodes { .. }
            | Fault::CrashCloudcore { .. }
            | Fault::CutFleet { .. } => continue,
        };
        bail!(
            "scenario {}: fault `{name}` has no real-mode form (real mode applies crash_cloudcore, cut_fleet, partition_nodes and crash_nodes)",
            sc.name
        );
    }
    for p in &sc.workload {
        let name = match p {
            Phase::DesiredChurn { .. } => "desired_churn",
            Phase::DeleteDevices { .. } => "delete_devices",
            _ => continue,
        };
        bail!(
            "scenario {}: workload `{name}` has no real-mode form yet (real mode creates the devices and measures their twin reports); run it in the simulator",
            sc.name
        );
    }
    Ok(())
}

/// Runs `sc` for real in `work` (processes' files and logs); `progress` hears every second.
pub(crate) fn run(
    sc: &Scenario,
    work: &Path,
    progress: impl FnMut(Progress) + Send + 'static,
) -> Result<Outcome> {
    check_supported(sc)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let progress = Arc::new(Mutex::new(progress));
    let tell = move |p: Progress| {
        let mut f = progress.lock().unwrap_or_else(PoisonError::into_inner);
        f(p);
    };
    let out = rt.block_on(driver::Run::execute(sc.clone(), work.to_owned(), tell));
    rt.shutdown_timeout(Duration::from_secs(5));
    out
}
