//! RSS probe of the API server. Starts the whole server (SQLite store, API, TLS listener) in a
//! temporary data directory, creates realistic pods in-process (100,000 by default, about
//! 1.5 KiB of JSON each, spread over 10 namespaces) and reads `VmRSS`/`VmHWM` from
//! `/proc/self/status`. Then it restarts the server in a fresh process on the same database
//! (open, load every object) and reads them again, so the second figure is what a restarted
//! server holds, not what the first process's allocator kept. Writes `rss.json` and `rss.md`.
//!
//! Usage: `apiserver_rss [--pods N] [--out DIR]` (defaults: 100000, `reports/apiserver`).
//! `apiserver_rss --load DATA_DIR` is the restarted process; it prints one JSON line.

mod pods;

use anyhow::{Context, Result, bail};
use ke_apiserver::{Deps, Server, ServerConfig, api::WriteOpts};
use ke_core::{Entropy, Seed};
use ke_net::TokioTransport;
use serde_json::{Value, json};
use std::{
    io::Write,
    path::{Path, PathBuf},
    process::Command,
    sync::Arc,
};
use tokio::{sync::oneshot, time::Instant};

/// Namespaces the pods are spread over.
const NAMESPACES: usize = 10;

/// What to do.
enum Mode {
    /// Create `pods` pods, restart, and write the reports to `out`.
    Fill { pods: usize, out: PathBuf },
    /// Be the restarted server on `dir` and print what it holds.
    Load { dir: PathBuf },
}

fn parse_args() -> Result<Mode> {
    let mut pods = 100_000;
    let mut out = PathBuf::from("reports/apiserver");
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--pods" => pods = value()?.parse().context("--pods takes a number")?,
            "--out" => out = PathBuf::from(value()?),
            "--load" => {
                return Ok(Mode::Load {
                    dir: PathBuf::from(value()?),
                });
            }
            other => bail!("unknown argument {other}; usage: apiserver_rss [--pods N] [--out DIR]"),
        }
    }
    Ok(Mode::Fill { pods, out })
}

/// `VmRSS` and `VmHWM` of this process, in KiB.
fn memory_kib() -> Result<(u64, u64)> {
    let status =
        std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    let field = |name: &str| -> Result<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|r| r.trim().trim_end_matches("kB").trim().parse().ok())
            .with_context(|| format!("{name} in /proc/self/status"))
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

/// Starts a server on `dir`, serving until the returned sender is used or dropped.
async fn start(
    dir: &Path,
) -> Result<(
    Arc<ke_apiserver::api::Api>,
    oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
)> {
    let cfg = ServerConfig::on_free_loopback_port(dir);
    let deps = Deps::with_system_clock(TokioTransport, Entropy::seeded(Seed(1), "apiserver-rss"));
    let server = Server::start(cfg, deps)
        .await
        .context("starting the API server")?;
    let api = server.api();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.serve(async move {
        let _ = stopped.await;
    }));
    Ok((api, stop, task))
}

/// Creates the namespaces and `n` pods; returns the seconds taken and the stored JSON bytes.
fn create_pods(api: &ke_apiserver::api::Api, n: usize) -> Result<(f64, usize)> {
    let ns = api.resource("", "v1", "namespaces")?;
    for s in 0..NAMESPACES {
        let body = json!({"metadata": {"name": format!("site-{s}")}});
        api.create(&ns, "", body, WriteOpts::default())?;
    }
    let pods = api.resource("", "v1", "pods")?;
    let started = Instant::now();
    let mut bytes = 0;
    for i in 0..n {
        let site = format!("site-{}", i % NAMESPACES);
        let w = api.create(&pods, &site, pods::realistic_pod(i), WriteOpts::default())?;
        bytes += w.obj.json.len();
    }
    Ok((started.elapsed().as_secs_f64(), bytes))
}

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).map_or(0, |m| m.len())
}

/// The first process: fill, measure, stop, and measure a restarted process.
async fn fill(n: usize) -> Result<Value> {
    let dir = tempfile::tempdir().context("temporary data directory")?;
    let (empty_rss, _) = memory_kib()?;
    let (api, stop, task) = start(dir.path()).await?;
    let (server_rss, _) = memory_kib()?;
    let (secs, bytes) = create_pods(&api, n)?;
    let (rss, hwm) = memory_kib()?;
    let _ = stop.send(());
    task.await.context("server task")?;
    drop(api);
    let db = dir.path().join("apiserver.db");
    let db_bytes = file_len(&db) + file_len(&dir.path().join("apiserver.db-wal"));
    let out = Command::new(std::env::current_exe().context("own path")?)
        .arg("--load")
        .arg(dir.path())
        .output()
        .context("running the restarted server")?;
    if !out.status.success() {
        bail!("restart failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let restart: Value = serde_json::from_slice(&out.stdout).context("restart report")?;
    Ok(json!({
        "pods": n,
        "avg_pod_json_bytes": bytes / n.max(1),
        "pod_json_bytes_total": bytes,
        "process_rss_before_server_kib": empty_rss,
        "server_started_rss_kib": server_rss,
        "create_seconds": secs,
        "creates_per_second": n as f64 / secs,
        "after_creates": {"vm_rss_kib": rss, "vm_hwm_kib": hwm},
        "database_bytes": db_bytes,
        "after_restart": restart,
    }))
}

/// The restarted process: open and load the store, then measure.
async fn load(dir: &Path) -> Result<Value> {
    let (before, _) = memory_kib()?;
    let started = Instant::now();
    let (api, stop, task) = start(dir).await?;
    let secs = started.elapsed().as_secs_f64();
    let pods = api.store.count("core/pods");
    let (rss, hwm) = memory_kib()?;
    let _ = stop.send(());
    task.await.context("server task")?;
    Ok(
        json!({"pods_loaded": pods, "load_seconds": secs, "process_rss_before_kib": before,
        "vm_rss_kib": rss, "vm_hwm_kib": hwm}),
    )
}

fn mib(kib: &Value) -> String {
    format!("{:.1}", kib.as_f64().unwrap_or_default() / 1024.0)
}

fn markdown(r: &Value) -> String {
    let n = r["pods"].as_f64().unwrap_or(1.0).max(1.0);
    let base = r["server_started_rss_kib"].as_f64().unwrap_or_default();
    let per_pod = |kib: &Value| (kib.as_f64().unwrap_or_default() - base) * 1024.0 / n;
    let a = &r["after_creates"];
    let b = &r["after_restart"];
    format!(
        "# API server RSS with {n} pods\n\n\
         Pods: {n}, average stored JSON {avg} B, database {db:.1} MiB; \
         created at {rate:.0} pods/s (in-process `Api::create`, SQLite file).\n\n\
         | state | VmRSS MiB | VmHWM MiB | RSS above the empty server, B/pod |\n\
         |---|---|---|---|\n\
         | empty server started | {s0} | | |\n\
         | after creating the pods | {r1} | {h1} | {p1:.0} |\n\
         | restarted (open + load) | {r2} | {h2} | {p2:.0} |\n\n\
         Restart loaded {loaded} pods in {ls:.2} s.\n",
        avg = r["avg_pod_json_bytes"],
        db = r["database_bytes"].as_f64().unwrap_or_default() / 1048576.0,
        rate = r["creates_per_second"].as_f64().unwrap_or_default(),
        s0 = mib(&r["server_started_rss_kib"]),
        r1 = mib(&a["vm_rss_kib"]),
        h1 = mib(&a["vm_hwm_kib"]),
        p1 = per_pod(&a["vm_rss_kib"]),
        r2 = mib(&b["vm_rss_kib"]),
        h2 = mib(&b["vm_hwm_kib"]),
        p2 = per_pod(&b["vm_rss_kib"]),
        loaded = b["pods_loaded"],
        ls = b["load_seconds"].as_f64().unwrap_or_default(),
    )
}

fn main() -> Result<()> {
    let mode = parse_args()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("tokio runtime")?;
    let mut stdout = std::io::stdout().lock();
    match mode {
        Mode::Load { dir } => {
            let report = rt.block_on(load(&dir))?;
            writeln!(stdout, "{report}")?;
        }
        Mode::Fill { pods, out } => {
            let report = rt.block_on(fill(pods))?;
            let md = markdown(&report);
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            let json = serde_json::to_string_pretty(&report)?;
            std::fs::write(out.join("rss.json"), json + "\n").context("writing rss.json")?;
            std::fs::write(out.join("rss.md"), &md).context("writing rss.md")?;
            write!(stdout, "{md}")?;
        }
    }
    Ok(())
}
