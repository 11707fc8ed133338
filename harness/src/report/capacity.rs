//! The capacity report (`fleet capacity`): real-mode runs of one scenario at several fleet
//! sizes, a least-squares line per cost (cloudcore memory, CPU, API requests) and a
//! recommendation table. `capacity.md`, `capacity.json`, `capacity.svg`.

use std::fmt::{self, Write as _};
use std::path::Path;

use anyhow::Context as _;
use serde::Serialize;
use simulator::outcome::Outcome;

use super::write_file;
use crate::svg::{self, Plot, Series};

/// One measured run.
#[derive(Debug, Clone, Serialize)]
struct Point {
    nodes: usize,
    passed: bool,
    wall_seconds: f64,
    cloudcore_peak_rss_mib: f64,
    cloudcore_cpu_cores: f64,
    api_requests_per_second: f64,
    edgemark_rss_mib: f64,
    sync_p99_ms: f64,
    ack_p99_ms: f64,
}

/// `y = base + per_node × nodes`, fitted by least squares.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub(crate) struct Line {
    pub(crate) base: f64,
    pub(crate) per_node: f64,
}

impl Line {
    /// The least-squares line through `points`; a single point gives a line through 0.
    pub(crate) fn fit(points: &[(f64, f64)]) -> Self {
        let n = points.len() as f64;
        if points.len() < 2 {
            let (x, y) = points.first().copied().unwrap_or((1.0, 0.0));
            return Self {
                base: 0.0,
                per_node: if x > 0.0 { y / x } else { 0.0 },
            };
        }
        let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
        let my = points.iter().map(|p| p.1).sum::<f64>() / n;
        let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
        let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
        let per_node = if sxx > 0.0 { sxy / sxx } else { 0.0 };
        Self {
            base: my - per_node * mx,
            per_node,
        }
    }

    pub(crate) fn at(self, nodes: f64) -> f64 {
        self.base + self.per_node * nodes
    }
}

#[derive(Debug, Serialize)]
struct Capacity {
    scenario: String,
    points: Vec<Point>,
    memory_mib: Line,
    cpu_cores: Line,
    api_rps: Line,
    largest_measured: usize,
}

impl Point {
    fn new(o: &Outcome) -> Option<Self> {
        let r = o.real.as_ref()?;
        let wall = o.wall_seconds.max(1e-9);
        let api: u64 = o.metrics.api_requests.values().sum();
        Some(Self {
            nodes: o.nodes,
            passed: o.passed,
            wall_seconds: o.wall_seconds,
            cloudcore_peak_rss_mib: r.cloudcore_peak_rss_bytes as f64 / 1048576.0,
            cloudcore_cpu_cores: r.cloudcore_cpu_seconds / wall,
            api_requests_per_second: api as f64 / wall,
            edgemark_rss_mib: r.edgemark_peak_rss_bytes as f64 / 1048576.0,
            sync_p99_ms: o.metrics.sync_latency_ms.p99,
            ack_p99_ms: o.metrics.ack_latency_ms.p99,
        })
    }
}

/// Nodes one cloudcore is recommended for: KubeEdge's own test ran 20,000 per cloudcore
/// (100,000 on 5); beyond the largest measured size the table says it is extrapolated.
const NODES_PER_CLOUDCORE: f64 = 20_000.0;
/// Headroom over the fitted means (bursts, rollouts, restarts).
const HEADROOM: f64 = 1.5;

/// Writes the capacity report for real-mode `runs` of one scenario into `dir`.
pub(crate) fn write_capacity(runs: &[Outcome], dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut points: Vec<Point> = runs.iter().filter_map(Point::new).collect();
    points.sort_by_key(|p| p.nodes);
    let xy = |f: fn(&Point) -> f64| -> Vec<(f64, f64)> {
        points.iter().map(|p| (p.nodes as f64, f(p))).collect()
    };
    let cap = Capacity {
        scenario: runs.first().map(|o| o.scenario.clone()).unwrap_or_default(),
        memory_mib: Line::fit(&xy(|p| p.cloudcore_peak_rss_mib)),
        cpu_cores: Line::fit(&xy(|p| p.cloudcore_cpu_cores)),
        api_rps: Line::fit(&xy(|p| p.api_requests_per_second)),
        largest_measured: points.last().map_or(0, |p| p.nodes),
        points,
    };
    let json = serde_json::to_string_pretty(&cap).context("serializing capacity.json")?;
    write_file(&dir.join("capacity.json"), &(json + "\n"))?;
    write_file(
        &dir.join("capacity.md"),
        &markdown(&cap).context("rendering capacity.md")?,
    )?;
    let svg = svg::render(&plots(&cap)).context("rendering capacity.svg")?;
    write_file(&dir.join("capacity.svg"), &svg)?;
    Ok(())
}

fn markdown(c: &Capacity) -> Result<String, fmt::Error> {
    let mut out = String::new();
    writeln!(out, "# Capacity: {}\n", c.scenario)?;
    writeln!(
        out,
        "Real mode (`fleet capacity`): the cloudcore binary with its embedded API server and \
         edgemark processes on one machine, one run per fleet size. Measured figures are \
         cloudcore's own (edgemark's are listed apart).\n"
    )?;
    writeln!(out, "## Measured\n")?;
    writeln!(
        out,
        "| nodes | passed | wall s | cloudcore peak RSS MiB | cloudcore cores | API req/s | sync p99 ms | ACK p99 ms | edgemark RSS MiB |"
    )?;
    writeln!(out, "|--:|:-:|--:|--:|--:|--:|--:|--:|--:|")?;
    for p in &c.points {
        writeln!(
            out,
            "| {} | {} | {:.0} | {:.0} | {:.2} | {:.0} | {:.0} | {:.0} | {:.0} |",
            p.nodes,
            if p.passed { "yes" } else { "no" },
            p.wall_seconds,
            p.cloudcore_peak_rss_mib,
            p.cloudcore_cpu_cores,
            p.api_requests_per_second,
            p.sync_p99_ms,
            p.ack_p99_ms,
            p.edgemark_rss_mib
        )?;
    }
    writeln!(out, "\n## Fitted cost per node (least squares)\n")?;
    let per = |l: Line| format!("{:.4} per node + {:.1}", l.per_node, l.base);
    writeln!(out, "- cloudcore memory, MiB: {}", per(c.memory_mib))?;
    writeln!(
        out,
        "  ({:.0} KiB per node)",
        c.memory_mib.per_node * 1024.0
    )?;
    writeln!(out, "- cloudcore CPU, cores: {}", per(c.cpu_cores))?;
    writeln!(
        out,
        "  ({:.2} CPU-seconds per node-hour)",
        c.cpu_cores.per_node * 3600.0
    )?;
    writeln!(out, "- API requests per second: {}", per(c.api_rps))?;
    writeln!(
        out,
        "  ({:.2} per node-minute)\n",
        c.api_rps.per_node * 60.0
    )?;
    recommendations(&mut out, c)?;
    Ok(out)
}

fn recommendations(out: &mut String, c: &Capacity) -> fmt::Result {
    writeln!(out, "## Recommendation (this workload)\n")?;
    writeln!(
        out,
        "Fitted means × {HEADROOM} headroom, at most {NODES_PER_CLOUDCORE:.0} nodes per cloudcore \
         (KubeEdge's large-scale test ran 20,000 per cloudcore). Rows above {} nodes are \
         extrapolated.\n",
        c.largest_measured
    )?;
    writeln!(
        out,
        "| nodes | cloudcores | cores each | memory each (GiB) | API req/s total | |"
    )?;
    writeln!(out, "|--:|--:|--:|--:|--:|---|")?;
    for n in [1_000usize, 5_000, 10_000, 20_000, 50_000, 100_000] {
        let clouds = (n as f64 / NODES_PER_CLOUDCORE).ceil().max(1.0);
        let each = n as f64 / clouds;
        let cores = (c.cpu_cores.at(each) * HEADROOM).max(0.5);
        let mem = (c.memory_mib.at(each) * HEADROOM / 1024.0).max(0.25);
        let api = c.api_rps.at(n as f64).max(0.0);
        let how = if n <= c.largest_measured {
            "measured range"
        } else {
            "extrapolated"
        };
        writeln!(
            out,
            "| {n} | {clouds:.0} | {cores:.1} | {mem:.1} | {api:.0} | {how} |"
        )?;
    }
    writeln!(out)
}

fn plots(c: &Capacity) -> [Plot; 2] {
    let measured = |name: &str, f: fn(&Point) -> f64| Series {
        name: name.to_owned(),
        points: c.points.iter().map(|p| (p.nodes as f64, f(p))).collect(),
    };
    let fitted = |name: &str, l: Line| Series {
        name: name.to_owned(),
        points: [0.0, c.largest_measured as f64]
            .iter()
            .map(|&x| (x, l.at(x)))
            .collect(),
    };
    [
        Plot {
            title: "cloudcore memory".to_owned(),
            x_label: "nodes".to_owned(),
            y_label: "peak RSS (MiB)".to_owned(),
            series: vec![
                measured("measured", |p| p.cloudcore_peak_rss_mib),
                fitted("fit", c.memory_mib),
            ],
            markers: Vec::new(),
        },
        Plot {
            title: "cloudcore CPU".to_owned(),
            x_label: "nodes".to_owned(),
            y_label: "cores (mean over the run)".to_owned(),
            series: vec![
                measured("measured", |p| p.cloudcore_cpu_cores),
                fitted("fit", c.cpu_cores),
            ],
            markers: Vec::new(),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: the fit recovers a line, and a single point gives a line through 0.
    #[test]
    fn least_squares_recovers_a_line() {
        let l = Line::fit(&[(1000.0, 150.0), (2000.0, 250.0), (4000.0, 450.0)]);
        assert!(
            (l.per_node - 0.1).abs() < 1e-9 && (l.base - 50.0).abs() < 1e-6,
            "{l:?}"
        );
        assert!((l.at(10_000.0) - 1050.0).abs() < 1e-6);
        let one = Line::fit(&[(500.0, 100.0)]);
        assert_eq!(
            one,
            Line {
                base: 0.0,
                per_node: 0.2
            }
        );
    }
}
