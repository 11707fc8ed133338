//! `fleet`: runs scenario files on the simulator and writes reports.
//!
//! - `fleet run SCENARIO [--seed N] [--nodes N] [--out DIR]`: one run; writes
//!   `reports/<scenario>/<seed>/` (or `--out`). Exit 0 passed, 127 crash, 128 a liveness
//!   check failed, 129 a safety check failed; a failure prints the command that reproduces it.
//! - `fleet determinism SCENARIO [--seed N] [--nodes N]`: runs twice, exit 1 if the digests
//!   differ.
//! - `fleet perf SCENARIO --nodes 1000,5000 [--seed N] [--out DIR]`: one run per size and a
//!   performance summary (`perf.md`, `perf.json`, `perf.svg`).

mod real;
mod report;
mod svg;

/// mimalloc: about a quarter of a large run's time went to the system allocator.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use ke_core_time::midnight;
use simulator::{RunOptions, Scenario, outcome::Outcome};

mod ke_core_time {
    /// Today's midnight (UTC): simulated time 0. The kube client checks the API server's
    /// certificate against the real clock, so the epoch must be recent.
    pub(crate) fn midnight() -> time::OffsetDateTime {
        use ke_core::Clock as _;
        ke_core::SystemClock
            .now_utc()
            .replace_time(time::Time::MIDNIGHT)
    }
}

#[derive(Parser, Debug)]
#[command(
    name = "fleet",
    version,
    about = "Runs edgefleet scenarios on the simulator"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args, Debug, Clone)]
struct Common {
    /// The scenario file.
    scenario: PathBuf,
    /// Seed (default: the scenario's).
    #[arg(long)]
    seed: Option<u64>,
    /// Hide the progress bar.
    #[arg(long)]
    quiet: bool,
    /// Also write the event log (the digest's input) to this file.
    #[arg(long)]
    events: Option<PathBuf>,
}

/// Where a scenario runs.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The simulator (turmoil), deterministic per seed.
    Sim,
    /// Real processes and sockets on this machine.
    Real,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run a scenario and write its report.
    Run {
        #[command(flatten)]
        common: Common,
        /// Fleet size (default: the scenario's).
        #[arg(long)]
        nodes: Option<usize>,
        /// Report directory (default: reports/<scenario>/<seed>, or
        /// reports/<scenario>/real-<nodes> in real mode).
        #[arg(long)]
        out: Option<PathBuf>,
        /// `sim`: the deterministic simulator. `real`: the cloudcore binary and edgemark
        /// processes on real sockets (needs `cloudcore` and `edgemark` beside `fleet`).
        #[arg(long, value_enum, default_value_t = Mode::Sim)]
        mode: Mode,
        /// Real mode: cloudcore's runtime worker threads (default: one per core).
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
        cloudcore_threads: Option<u16>,
        /// Real mode: each edgemark process's worker threads (default: half the cores,
        /// shared among them).
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
        edgemark_threads: Option<u16>,
    },
    /// Run a scenario twice with the same seed and compare digests.
    Determinism {
        #[command(flatten)]
        common: Common,
        /// Fleet size (default: the scenario's).
        #[arg(long)]
        nodes: Option<usize>,
    },
    /// Real mode at several fleet sizes: cost per node and a recommendation table.
    Capacity {
        #[command(flatten)]
        common: Common,
        /// Fleet sizes, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        nodes: Vec<usize>,
        /// Directory for the runs' reports and the capacity report (default:
        /// reports/capacity/<scenario>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Keep a size's existing real-mode report in the directory instead of running it
        /// again (resumes an interrupted sweep).
        #[arg(long)]
        reuse: bool,
    },
    /// Summarize existing run directories (each with a report.json) into perf.md/json/svg.
    PerfSummary {
        /// Where the summary goes.
        #[arg(long)]
        out: PathBuf,
        /// Run directories.
        runs: Vec<PathBuf>,
    },
    /// Run a scenario at several fleet sizes and summarize speed and memory.
    Perf {
        #[command(flatten)]
        common: Common,
        /// Fleet sizes, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        nodes: Vec<usize>,
        /// Directory for the runs' reports and the summary (default: reports/perf/<scenario>).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// mimalloc's settings for a simulation, each with the value `fleet` runs with: freed pages
/// stay mapped (`MIMALLOC_PURGE_DELAY=-1`) and no transparent huge pages
/// (`MIMALLOC_ALLOW_THP=0`). The third field says whether real mode's cloudcore and edgemark inherit the setting (see
/// [`FLEET_SET_VAR`]).
#[cfg(feature = "mimalloc")]
const MIMALLOC_VARS: [(&str, &str, bool); 2] = [
    ("MIMALLOC_PURGE_DELAY", "-1", true),
    ("MIMALLOC_ALLOW_THP", "0", false),
];

/// The variables of [`MIMALLOC_VARS`] that `fleet` set itself (comma-separated) and that
/// the processes it starts in real mode must not inherit. Real-mode devices-throughput runs
/// (2026-12-07) with huge pages off in cloudcore and edgemark (`MIMALLOC_ALLOW_THP=0`,
/// inherited from `fleet`) confirmed 2,821 and 2,894 twin reports/s at 258–263 µs of
/// cloudcore CPU each; with huge pages allowed, 3,115–4,416/s at 179–255 µs over three
/// runs, so the daemons keep mimalloc's default there. Whether `MIMALLOC_PURGE_DELAY=-1`
/// helps them is within this machine's run-to-run spread; it is passed on, and the
/// report's settings record what the daemons ran with.
pub(crate) const FLEET_SET_VAR: &str = "EDGEFLEET_FLEET_SET_MIMALLOC";

/// mimalloc's settings the daemons of real mode run with: each `MIMALLOC_*` variable they
/// inherit, or "defaults".
pub(crate) fn daemon_allocator_env() -> String {
    let own = std::env::var(FLEET_SET_VAR).ok();
    let kept: Vec<String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.to_string_lossy().into_owned())))
        .filter(|(k, _)| k.starts_with("MIMALLOC_") && !fleet_set(own.as_deref()).any(|n| n == k))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if kept.is_empty() {
        "mimalloc defaults".to_owned()
    } else {
        format!("mimalloc, {}", kept.join(" "))
    }
}

/// Removes from `cmd`'s environment what `fleet` added for itself (see [`FLEET_SET_VAR`]).
pub(crate) fn without_fleet_env(cmd: &mut std::process::Command) -> &mut std::process::Command {
    remove_vars(cmd, std::env::var(FLEET_SET_VAR).ok().as_deref())
}

fn remove_vars<'c>(
    cmd: &'c mut std::process::Command,
    names: Option<&str>,
) -> &'c mut std::process::Command {
    for name in fleet_set(names) {
        cmd.env_remove(name);
    }
    cmd.env_remove(FLEET_SET_VAR)
}

/// The names in [`FLEET_SET_VAR`]'s value (comma-separated; none when unset).
fn fleet_set(value: Option<&str>) -> impl Iterator<Item = &str> {
    value
        .unwrap_or_default()
        .split(',')
        .filter(|n| !n.is_empty())
}

/// Sets [`MIMALLOC_VARS`] by re-executing once. mimalloc reads its settings at start-up,
/// before `main`, and setting them needs its `unsafe` option API, so `fleet` runs itself
/// again with the variables set. A value the user set is kept; if none is missing, or the
/// exec fails, the run goes on as it is.
/// - A simulation frees and allocates millions of messages; mimalloc (v3) gives pages it has
///   not used for a second back to the OS, and the kernel zeroes them again when they are
///   faulted back in: 7% of a 1,000-node run went to zeroing pages. Keeping them gave the
///   same digest and a third less system time; the peak RSS is unchanged because the peak is
///   what the run holds at once.
/// - With transparent huge pages the kernel zeroed 2 MiB at every first touch of a region,
///   and the run spent 5.4 s of system time against 2.1 s without them (2,000 nodes of
///   scale-5k, same digest, 2–5 s faster, 130 MiB less peak RSS).
#[cfg(feature = "mimalloc")]
fn tune_mimalloc() {
    use std::os::unix::process::CommandExt as _;
    let missing: Vec<_> = MIMALLOC_VARS
        .iter()
        .filter(|(name, _, _)| std::env::var_os(name).is_none())
        .collect();
    if missing.is_empty() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut cmd = std::process::Command::new(exe);
    cmd.args(std::env::args_os().skip(1));
    let own: Vec<&str> = missing
        .iter()
        .filter(|(_, _, inherited)| !inherited)
        .map(|(name, _, _)| *name)
        .collect();
    cmd.env(FLEET_SET_VAR, own.join(","));
    for (name, value, _) in missing {
        cmd.env(name, value);
    }
    let err = cmd.exec();
    eprintln!("fleet: could not re-execute with mimalloc's settings ({err}); going on");
}

fn main() -> ExitCode {
    #[cfg(feature = "mimalloc")]
    tune_mimalloc();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("fleet: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn dispatch(cli: Cli) -> Result<u8> {
    match cli.cmd {
        Cmd::Run {
            common,
            nodes,
            out,
            mode: Mode::Sim,
            cloudcore_threads,
            edgemark_threads,
        } => {
            if cloudcore_threads.is_some() || edgemark_threads.is_some() {
                anyhow::bail!(
                    "--cloudcore-threads and --edgemark-threads are for real mode (--mode real); the simulator runs on one thread"
                );
            }
            cmd_run(&common, nodes, out)
        }
        Cmd::Run {
            common,
            nodes,
            out,
            mode: Mode::Real,
            cloudcore_threads,
            edgemark_threads,
        } => cmd_run_real(&common, nodes, out, (cloudcore_threads, edgemark_threads)),
        Cmd::Determinism { common, nodes } => cmd_determinism(&common, nodes),
        Cmd::Perf { common, nodes, out } => cmd_perf(&common, &nodes, out),
        Cmd::Capacity {
            common,
            nodes,
            out,
            reuse,
        } => cmd_capacity(&common, &nodes, out, reuse),
        Cmd::PerfSummary { out, runs } => {
            let mut all = Vec::new();
            for dir in &runs {
                let text = std::fs::read_to_string(dir.join("report.json"))
                    .with_context(|| format!("reading {}", dir.join("report.json").display()))?;
                all.push(serde_json::from_str::<Outcome>(&text).context("parsing report.json")?);
            }
            report::write_perf(&all, &out)?;
            Ok(0)
        }
    }
}

fn load(path: &Path) -> Result<Scenario> {
    Ok(Scenario::load(path)?)
}

/// One run with a progress bar; the work directory is removed afterwards.
fn run_once(sc: &Scenario, seed: u64, nodes: Option<usize>, c: &Common) -> Result<Outcome> {
    let quiet = c.quiet;
    let work = tempfile::Builder::new()
        .prefix("fleet-")
        .tempdir_in(work_root())
        .context("creating the work directory")?;
    let opts = RunOptions {
        seed,
        nodes,
        work_dir: work.path().to_owned(),
        epoch: midnight(),
        events: c.events.clone(),
        // The process exits after writing the report.
        free_world: false,
    };
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(sc.limit_s)
    };
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{elapsed_precise}] sim {pos}s {wide_msg}")
            .context("progress template")?,
    );
    bar.set_prefix(format!("{} seed {seed}", sc.name));
    let outcome = simulator::run(sc, &opts, |p| {
        bar.set_position(p.sim_seconds as u64);
        bar.set_message(format!(
            "connected {}/{}  pending {}",
            p.connected, p.nodes, p.pending
        ));
    });
    bar.finish_and_clear();
    Ok(outcome)
}

/// Where the simulated nodes' files go: `$FLEET_WORK_DIR`, else `/dev/shm` when it is a
/// writable directory, else the system's temporary directory. The nodes' certificate files
/// are written the daemons' way (fsync, rename); on a disk that cost a quarter of a
/// 1,000-node run's CPU and most of its wall time, and nothing in a simulation needs them to
/// survive a power cut.
fn work_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("FLEET_WORK_DIR") {
        return PathBuf::from(dir);
    }
    let shm = Path::new("/dev/shm");
    let writable = std::fs::metadata(shm).is_ok_and(|m| m.is_dir() && !m.permissions().readonly());
    if writable {
        shm.to_owned()
    } else {
        std::env::temp_dir()
    }
}

fn repro(path: &Path, seed: u64, nodes: Option<usize>) -> String {
    let mut s = format!(
        "cargo run --release -p edgefleet-harness --bin fleet -- run {} --seed {seed}",
        path.display()
    );
    if let Some(n) = nodes {
        s.push_str(&format!(" --nodes {n}"));
    }
    s
}

fn summary(o: &Outcome) -> String {
    let speed = if o.wall_seconds > 0.0 {
        o.sim_seconds / o.wall_seconds
    } else {
        0.0
    };
    format!(
        "{} seed {}: {} — {} nodes, {} pods, {:.0} sim s in {:.1} wall s ({speed:.1}× real time), peak RSS {} MiB, digest {}",
        o.scenario,
        o.seed,
        if o.passed { "PASSED" } else { "FAILED" },
        o.nodes,
        o.pods,
        o.sim_seconds,
        o.wall_seconds,
        o.peak_rss_bytes / (1024 * 1024),
        &o.digest[..16.min(o.digest.len())],
    )
}

fn cmd_run(c: &Common, nodes: Option<usize>, out: Option<PathBuf>) -> Result<u8> {
    let sc = load(&c.scenario)?;
    let seed = c.seed.unwrap_or(sc.seed);
    let o = run_once(&sc, seed, nodes, c)?;
    let dir = out.unwrap_or_else(|| Path::new("reports").join(&sc.name).join(seed.to_string()));
    let cmd = repro(&c.scenario, seed, nodes);
    report::write_reports(&o, &dir, &cmd)?;
    eprintln!("{}", summary(&o));
    for ch in o.checks.iter().filter(|ch| !ch.passed) {
        eprintln!("  check {} ({:?}) failed: {}", ch.name, ch.kind, ch.detail);
    }
    if let Some(crash) = &o.crash {
        eprintln!("  crashed: {crash}");
    }
    eprintln!("report: {}", dir.join("report.md").display());
    let code = o.exit_code();
    if code != 0 {
        eprintln!("reproduce with: {cmd}");
    }
    Ok(code)
}

fn cmd_run_real(
    c: &Common,
    nodes: Option<usize>,
    out: Option<PathBuf>,
    threads: (Option<u16>, Option<u16>),
) -> Result<u8> {
    let mut sc = load(&c.scenario)?;
    if let Some(n) = nodes {
        sc.fleet.nodes = n;
    }
    real::check_supported(&sc)?;
    let threads = real::Threads::for_machine(sc.fleet.nodes, threads.0, threads.1);
    let work = tempfile::Builder::new()
        .prefix("fleet-real-")
        .tempdir_in(work_root())
        .context("creating the work directory")?;
    let bar = if c.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new_spinner()
    };
    bar.set_style(
        ProgressStyle::with_template("{prefix} [{elapsed_precise}] {wide_msg}")
            .context("progress template")?,
    );
    bar.set_prefix(format!("{} real mode", sc.name));
    let b = bar.clone();
    let o = real::run(&sc, work.path(), threads, move |p| {
        b.set_message(format!(
            "connected {}/{}  {:.0} s",
            p.connected, p.nodes, p.seconds
        ));
        b.tick();
    })?;
    bar.finish_and_clear();
    let dir = out.unwrap_or_else(|| {
        Path::new("reports")
            .join(&sc.name)
            .join(format!("real-{}", sc.fleet.nodes))
    });
    let mut cmd = format!(
        "cargo build --release -p cloudcore -p edgefleet-harness && target/release/fleet run --mode real {}",
        c.scenario.display()
    );
    if let Some(n) = nodes {
        cmd.push_str(&format!(" --nodes {n}"));
    }
    cmd.push_str(&format!(
        " --cloudcore-threads {} --edgemark-threads {}",
        threads.cloudcore, threads.edgemark
    ));
    report::write_reports(&o, &dir, &cmd)?;
    eprintln!("{}", summary(&o));
    if let Some(r) = &o.real {
        eprintln!(
            "  cloudcore: {:.1} CPU s, peak RSS {} MiB ({:.0} KiB per node); edgemark: {} processes, {} MiB",
            r.cloudcore_cpu_seconds,
            r.cloudcore_peak_rss_bytes >> 20,
            r.cloudcore_rss_per_node_bytes / 1024.0,
            r.edgemark_processes,
            r.edgemark_peak_rss_bytes >> 20
        );
    }
    for ch in o.checks.iter().filter(|ch| !ch.passed) {
        eprintln!("  check {} ({:?}) failed: {}", ch.name, ch.kind, ch.detail);
    }
    eprintln!("report: {}", dir.join("report.md").display());
    let code = o.exit_code();
    if code != 0 {
        eprintln!("reproduce with: {cmd}");
    }
    Ok(code)
}

/// Runs `fleet run` in a child process and reads its report. A seed replays only in a
/// fresh process: tokio's task ids are process-wide, and they decide the order in which a
/// crashed host's tasks (and their sockets) are dropped.
fn run_child(c: &Common, seed: u64, nodes: Option<usize>, out: &Path) -> Result<Outcome> {
    run_child_in(c, seed, nodes, out, Mode::Sim)
}

fn run_child_in(
    c: &Common,
    seed: u64,
    nodes: Option<usize>,
    out: &Path,
    mode: Mode,
) -> Result<Outcome> {
    let me = std::env::current_exe().context("finding the fleet binary")?;
    let mut cmd = std::process::Command::new(&me);
    cmd.arg("run");
    if mode == Mode::Real {
        cmd.args(["--mode", "real"]);
    }
    cmd.arg(&c.scenario).arg("--seed").arg(seed.to_string());
    cmd.arg("--out").arg(out);
    if let Some(n) = nodes {
        cmd.arg("--nodes").arg(n.to_string());
    }
    if c.quiet {
        cmd.arg("--quiet");
    }
    if let Some(events) = &c.events {
        cmd.arg("--events").arg(events);
    }
    let status = cmd.status().context("running fleet run")?;
    let text = std::fs::read_to_string(out.join("report.json"))
        .with_context(|| format!("reading {} (fleet run: {status})", out.display()))?;
    serde_json::from_str(&text).context("parsing report.json")
}

fn cmd_determinism(c: &Common, nodes: Option<usize>) -> Result<u8> {
    let sc = load(&c.scenario)?;
    let seed = c.seed.unwrap_or(sc.seed);
    let dir = tempfile::Builder::new()
        .prefix("fleet-determinism-")
        .tempdir()
        .context("creating a directory for the two reports")?;
    let with_suffix = |x: &str| {
        let mut c = c.clone();
        c.events = c.events.map(|p| p.with_extension(x));
        c
    };
    let a = run_child(&with_suffix("a"), seed, nodes, &dir.path().join("a"))?;
    let b = run_child(&with_suffix("b"), seed, nodes, &dir.path().join("b"))?;
    if a.digest == b.digest && a.events == b.events {
        eprintln!(
            "deterministic: both runs gave digest {} over {} events",
            a.digest, a.events
        );
        Ok(a.exit_code())
    } else {
        eprintln!(
            "NOT deterministic: {} ({} events) vs {} ({} events)",
            a.digest, a.events, b.digest, b.events
        );
        let cmd = repro(&c.scenario, seed, nodes).replacen(" -- run ", " -- determinism ", 1);
        eprintln!(
            "reproduce with: {cmd} --events /tmp/events (then diff /tmp/events.a /tmp/events.b)"
        );
        Ok(1)
    }
}

fn cmd_capacity(c: &Common, sizes: &[usize], out: Option<PathBuf>, reuse: bool) -> Result<u8> {
    let sc = load(&c.scenario)?;
    real::check_supported(&sc)?;
    let dir = out.unwrap_or_else(|| Path::new("reports").join("capacity").join(&sc.name));
    let mut all = Vec::new();
    let mut worst = 0;
    for &n in sizes {
        let run_dir = dir.join(format!("{n}-nodes"));
        let kept = reuse
            .then(|| std::fs::read_to_string(run_dir.join("report.json")).ok())
            .flatten()
            .and_then(|t| serde_json::from_str::<Outcome>(&t).ok())
            .filter(|o| o.real.is_some() && o.nodes == n);
        let o = match kept {
            Some(o) => o,
            None => run_child_in(c, sc.seed, Some(n), &run_dir, Mode::Real)?,
        };
        worst = worst.max(o.exit_code());
        all.push(o);
        report::write_capacity(&all, &dir)?;
    }
    eprintln!("capacity report: {}", dir.join("capacity.md").display());
    Ok(worst)
}

fn cmd_perf(c: &Common, sizes: &[usize], out: Option<PathBuf>) -> Result<u8> {
    let sc = load(&c.scenario)?;
    let seed = c.seed.unwrap_or(sc.seed);
    let dir = out.unwrap_or_else(|| Path::new("reports").join("perf").join(&sc.name));
    let mut all = Vec::new();
    let mut worst = 0;
    for &n in sizes {
        // One process per size: peak RSS (VmHWM) never goes down within a process.
        let o = run_child(c, seed, Some(n), &dir.join(format!("{n}-nodes")))?;
        worst = worst.max(o.exit_code());
        all.push(o);
        report::write_perf(&all, &dir)?;
    }
    eprintln!("summary: {}", dir.join("perf.md").display());
    Ok(worst)
}

#[cfg(test)]
mod env_tests {
    /// Goal: what `fleet` set for itself is removed from a child's environment, and nothing
    /// else is: a variable the user set (not listed) stays as the child would inherit it.
    #[test]
    fn children_lose_only_what_fleet_set() {
        let mut cmd = std::process::Command::new("true");
        super::remove_vars(&mut cmd, Some("MIMALLOC_ALLOW_THP"));
        let envs: Vec<_> = cmd.get_envs().collect();
        assert!(
            envs.contains(&("MIMALLOC_ALLOW_THP".as_ref(), None)),
            "{envs:?}"
        );
        assert!(
            envs.contains(&(super::FLEET_SET_VAR.as_ref(), None)),
            "{envs:?}"
        );
        assert!(
            !envs.iter().any(|(k, _)| *k == "MIMALLOC_PURGE_DELAY"),
            "{envs:?}"
        );
        let mut plain = std::process::Command::new("true");
        super::remove_vars(&mut plain, None);
        assert_eq!(plain.get_envs().count(), 1, "only the marker");
    }
}
