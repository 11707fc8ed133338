//! The performance summary across runs of one scenario at different fleet sizes:
//! `perf.md`, `perf.json` and `perf.svg`.

use std::fmt::{self, Write as _};
use std::fs;
use std::path::Path;

use anyhow::Context as _;
use serde::Serialize;
use simulator::outcome::Outcome;

use super::{count, fixed, mib, speed, write_file};
use crate::svg::{self, Plot, Series};

/// One run's row of the summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct PerfRow {
    scenario: String,
    seed: u64,
    nodes: usize,
    pods: usize,
    sim_seconds: f64,
    wall_seconds: f64,
    /// Wall-clock seconds per simulated second (`None` when nothing was simulated).
    wall_per_sim: Option<f64>,
    /// Simulated seconds per wall-clock second (`None` when the wall time is zero).
    speed: Option<f64>,
    peak_rss_mib: f64,
    /// Peak RSS divided by the node count, KiB (`None` for no nodes).
    rss_per_node_kib: Option<f64>,
    passed: bool,
}

impl PerfRow {
    fn new(o: &Outcome) -> Self {
        let wall_per_sim = o.wall_seconds / o.sim_seconds;
        let per_node = count(o.peak_rss_bytes) / 1024.0 / count(o.nodes as u64);
        Self {
            scenario: o.scenario.clone(),
            seed: o.seed,
            nodes: o.nodes,
            pods: o.pods,
            sim_seconds: o.sim_seconds,
            wall_seconds: o.wall_seconds,
            wall_per_sim: (o.sim_seconds > 0.0 && wall_per_sim.is_finite()).then_some(wall_per_sim),
            speed: speed(o),
            peak_rss_mib: mib(o.peak_rss_bytes),
            rss_per_node_kib: (o.nodes > 0 && per_node.is_finite()).then_some(per_node),
            passed: o.passed,
        }
    }
}

/// Writes `perf.md`, `perf.json` and `perf.svg` into `dir` (created if missing) for `reports`:
/// runs of the same scenario at different node counts, shown in order of node count.
pub(crate) fn write_perf(reports: &[Outcome], dir: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut rows: Vec<PerfRow> = reports.iter().map(PerfRow::new).collect();
    // Stable: runs with equal node counts keep their given order.
    rows.sort_by_key(|r| r.nodes);
    let json = serde_json::to_string_pretty(&rows).context("serializing perf.json")?;
    write_file(&dir.join("perf.json"), &(json + "\n"))?;
    let md = markdown(&rows).context("rendering perf.md")?;
    write_file(&dir.join("perf.md"), &md)?;
    let svg = svg::render(&plots(&rows)).context("rendering perf.svg")?;
    write_file(&dir.join("perf.svg"), &svg)?;
    Ok(())
}

fn markdown(rows: &[PerfRow]) -> Result<String, fmt::Error> {
    let mut names: Vec<&str> = rows.iter().map(|r| r.scenario.as_str()).collect();
    names.dedup();
    let mut out = String::new();
    writeln!(out, "# Performance: {}\n", names.join(", "))?;
    if rows.is_empty() {
        writeln!(out, "No runs.")?;
        return Ok(out);
    }
    writeln!(
        out,
        "| Nodes | Pods | Sim s | Wall s | Wall s per sim s | × real time | Peak RSS MiB | RSS per node KiB | Passed |"
    )?;
    writeln!(out, "|--:|--:|--:|--:|--:|--:|--:|--:|:-:|")?;
    for r in rows {
        writeln!(
            out,
            "| {} | {} | {:.1} | {:.2} | {} | {} | {:.1} | {} | {} |",
            r.nodes,
            r.pods,
            r.sim_seconds,
            r.wall_seconds,
            fixed(r.wall_per_sim, 4),
            fixed(r.speed, 1),
            r.peak_rss_mib,
            fixed(r.rss_per_node_kib, 1),
            if r.passed { "✓" } else { "✗" }
        )?;
    }
    writeln!(out, "\n![Speed and memory by fleet size](perf.svg)")?;
    Ok(out)
}

fn plots(rows: &[PerfRow]) -> [Plot; 2] {
    let nodes = |r: &PerfRow| count(r.nodes as u64);
    let speed = Series {
        name: "× real time".to_owned(),
        points: rows
            .iter()
            .filter_map(|r| r.speed.map(|s| (nodes(r), s)))
            .collect(),
    };
    let rss = Series {
        name: "peak RSS (MiB)".to_owned(),
        points: rows.iter().map(|r| (nodes(r), r.peak_rss_mib)).collect(),
    };
    [
        Plot {
            title: "Speed".to_owned(),
            x_label: "nodes".to_owned(),
            y_label: "× real time".to_owned(),
            series: vec![speed],
            markers: Vec::new(),
        },
        Plot {
            title: "Memory".to_owned(),
            x_label: "nodes".to_owned(),
            y_label: "peak RSS (MiB)".to_owned(),
            series: vec![rss],
            markers: Vec::new(),
        },
    ]
}
