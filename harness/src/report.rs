//! Renders an [`Outcome`] as `report.json`, `report.md` and SVG plots, and a performance
//! summary across runs at different fleet sizes (`perf.md`, `perf.json`, `perf.svg`).

mod capacity;
mod markdown;
mod perf;
#[cfg(test)]
mod tests;

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use simulator::outcome::Outcome;

use crate::svg::{self, Marker, Plot, Series};

pub(crate) use capacity::write_capacity;
pub(crate) use perf::write_perf;

/// Name of the connected-nodes plot.
const CONNECTED_SVG: &str = "connected.svg";
/// Name of the sync-latency plot.
const SYNC_SVG: &str = "sync-latency.svg";
/// Name of the queue-depth plot.
const QUEUE_SVG: &str = "queue-depth.svg";
/// Name of the twin-report plot (runs with devices only).
const TWIN_SVG: &str = "twin-reports.svg";

/// Writes `report.json`, `report.md`, `connected.svg`, `sync-latency.svg` and
/// `queue-depth.svg` for `outcome` into `dir` (created if missing); `repro` is the command line
/// that reproduces the run. Returns the paths written, in that order.
pub(crate) fn write_reports(
    outcome: &Outcome,
    dir: &Path,
    repro: &str,
) -> anyhow::Result<Vec<PathBuf>> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let json = serde_json::to_string_pretty(outcome).context("serializing the outcome")?;
    let md = markdown::render(outcome, repro).context("rendering report.md")?;
    let mut files = vec![
        ("report.json", json + "\n"),
        ("report.md", md),
        (CONNECTED_SVG, render_svg(&connected_plot(outcome))?),
        (SYNC_SVG, render_svg(&sync_plot(outcome))?),
        (QUEUE_SVG, render_svg(&queue_plot(outcome))?),
    ];
    if outcome.metrics.devices.is_some() {
        files.push((TWIN_SVG, render_svg(&twin_plot(outcome))?));
    }
    files
        .iter()
        .map(|(name, contents)| write_file(&dir.join(name), contents))
        .collect()
}

/// Writes `contents` to `path`, naming the path in the error.
fn write_file(path: &Path, contents: &str) -> anyhow::Result<PathBuf> {
    fs::write(path, contents).with_context(|| format!("writing {}", path.display()))?;
    Ok(path.to_path_buf())
}

/// One plot as an SVG document.
fn render_svg(plot: &Plot) -> anyhow::Result<String> {
    svg::render(std::slice::from_ref(plot)).with_context(|| format!("rendering {}", plot.title))
}

/// A series of `f(sample)` over simulated time.
fn series(outcome: &Outcome, name: &str, f: impl Fn(&simulator::outcome::Sample) -> f64) -> Series {
    Series {
        name: name.to_owned(),
        points: outcome.series.iter().map(|s| (s.t, f(s))).collect(),
    }
}

/// Connected nodes over time, with a marker at each fault's start.
fn connected_plot(outcome: &Outcome) -> Plot {
    Plot {
        title: format!("Connected nodes ({} nodes)", outcome.nodes),
        x_label: "simulated time (s)".to_owned(),
        y_label: "connected nodes".to_owned(),
        series: vec![series(outcome, "connected", |s| count(s.connected))],
        markers: outcome
            .metrics
            .faults
            .iter()
            .map(|(t, label)| Marker {
                x: *t,
                label: label.clone(),
            })
            .collect(),
    }
}

/// Sync latency p50 and p99 over time.
fn sync_plot(outcome: &Outcome) -> Plot {
    Plot {
        title: "Sync latency".to_owned(),
        x_label: "simulated time (s)".to_owned(),
        y_label: "latency (ms)".to_owned(),
        series: vec![
            series(outcome, "p50", |s| s.sync_p50_ms),
            series(outcome, "p99", |s| s.sync_p99_ms),
        ],
        markers: Vec::new(),
    }
}

/// Hub queue depth and objects pending delivery over time.
fn queue_plot(outcome: &Outcome) -> Plot {
    Plot {
        title: "Hub queue depth and pending objects".to_owned(),
        x_label: "simulated time (s)".to_owned(),
        y_label: "messages / objects".to_owned(),
        series: vec![
            series(outcome, "queue depth", |s| count(s.queue_depth)),
            series(outcome, "pending", |s| count(s.pending)),
        ],
        markers: Vec::new(),
    }
}

/// Twin reports confirmed by the cloud per simulated second.
fn twin_plot(outcome: &Outcome) -> Plot {
    let points = outcome
        .series
        .windows(2)
        .map(|w| {
            let n = w[1].twin_confirmed.saturating_sub(w[0].twin_confirmed);
            (w[1].t, count(n) / (w[1].t - w[0].t).max(1e-9))
        })
        .collect();
    Plot {
        title: "Twin reports confirmed by the cloud".to_owned(),
        x_label: "simulated time (s)".to_owned(),
        y_label: "reports per simulated second".to_owned(),
        series: vec![Series {
            name: "confirmed/s".to_owned(),
            points,
        }],
        markers: outcome
            .metrics
            .faults
            .iter()
            .map(|(t, label)| Marker {
                x: *t,
                label: label.clone(),
            })
            .collect(),
    }
}

/// A counter as `f64` for plotting (exact below 2^53, which every count here is).
fn count(n: u64) -> f64 {
    n as f64
}

/// Bytes in MiB.
fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Simulated seconds per wall-clock second (`None` when the wall time is zero).
fn speed(outcome: &Outcome) -> Option<f64> {
    let s = outcome.sim_seconds / outcome.wall_seconds;
    (outcome.wall_seconds > 0.0 && s.is_finite()).then_some(s)
}

/// `value` with `decimals` decimals, or `n/a`.
fn fixed(value: Option<f64>, decimals: usize) -> String {
    value
        .filter(|v| v.is_finite())
        .map_or_else(|| "n/a".to_owned(), |v| format!("{:.*}", decimals, v + 0.0))
}
