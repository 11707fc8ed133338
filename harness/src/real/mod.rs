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

/// Runtime worker threads of the processes (their `--worker-threads`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Threads {
    /// cloudcore's.
    pub(crate) cloudcore: u16,
    /// Each edgemark process's.
    pub(crate) edgemark: u16,
}

impl Threads {
    /// Worker threads for cloudcore and each of `marks` edgemark processes on `cores` cores,
    /// where not set: cloudcore one per core (it is what is measured, and its EdgeController
    /// and CloudHub halves work in parallel), the edgemarks half the cores between them (at
    /// least one each). Every process taking a thread per core oversubscribed the machine:
    /// each wake-up of a task on another thread then costs a futex and a context switch. On
    /// two cores (devices-throughput, 2,000 nodes, 60 s held): 2 + 2 threads gave 2,833
    /// confirmed reports/s at 293 µs of cloudcore CPU each, 1 + 1 gave 3,700/s at 202 µs,
    /// 2 + 1 gave 4,435/s at 164 µs.
    pub(crate) fn plan(
        cores: usize,
        marks: usize,
        cloudcore: Option<u16>,
        edgemark: Option<u16>,
    ) -> Self {
        let fit = |n: usize| u16::try_from(n.max(1)).unwrap_or(u16::MAX);
        Self {
            cloudcore: cloudcore.unwrap_or_else(|| fit(cores)),
            edgemark: edgemark.unwrap_or_else(|| fit(cores / 2 / marks.max(1))),
        }
    }

    /// [`Threads::plan`] for `nodes` nodes on this machine.
    pub(crate) fn for_machine(nodes: usize, cloudcore: Option<u16>, edgemark: Option<u16>) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let marks = nodes.div_ceil(procs::NODES_PER_EDGEMARK);
        Self::plan(cores, marks, cloudcore, edgemark)
    }
}

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
    threads: Threads,
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
    let out = rt.block_on(driver::Run::execute(
        sc.clone(),
        work.to_owned(),
        threads,
        tell,
    ));
    rt.shutdown_timeout(Duration::from_secs(5));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: by default cloudcore gets a thread per core and the edgemark processes share
    /// half the cores, never zero; a flag overrides its own part only.
    /// Method: one, two and eight cores, one and three edgemarks, with and without flags.
    #[test]
    fn threads_split_the_cores() {
        let t = |c, e| Threads {
            cloudcore: c,
            edgemark: e,
        };
        assert_eq!(Threads::plan(2, 1, None, None), t(2, 1));
        assert_eq!(Threads::plan(8, 1, None, None), t(8, 4));
        assert_eq!(Threads::plan(8, 3, None, None), t(8, 1));
        assert_eq!(Threads::plan(1, 2, None, None), t(1, 1));
        assert_eq!(Threads::plan(8, 1, Some(6), None), t(6, 4));
        assert_eq!(Threads::plan(2, 1, Some(1), Some(2)), t(1, 2));
        assert_eq!(Threads::plan(2, 1, None, Some(3)), t(2, 3));
    }
}
