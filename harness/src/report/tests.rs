//! Report rendering: files written, JSON round trip, Markdown content, SVG shape,
//! determinism, empty input.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use simulator::outcome::{CheckKind, CheckResult, Metrics, Outcome, Percentiles, Sample};

use super::{write_perf, write_reports};

const REPRO: &str = "fleet run scenarios/partition.yaml --seed 7 --nodes 100";

fn outcome(nodes: usize, samples: usize) -> Outcome {
    let series = (0..samples)
        .map(|i| Sample {
            t: i as f64 * 0.5,
            connected: (nodes - i.min(nodes)) as u64,
            pending: (i * 3) as u64,
            queue_depth: (i * 2) as u64,
            sync_p50_ms: 1.5 + i as f64,
            sync_p99_ms: 9.25 + 2.0 * i as f64,
            rss_bytes: 64 << 20,
            wall_s: i as f64 * 0.1,
            twin_confirmed: (i * 10) as u64,
        })
        .collect();
    Outcome {
        scenario: "partition".into(),
        seed: 7,
        passed: false,
        digest: "ab12cd".into(),
        nodes,
        pods: nodes * 10,
        sim_seconds: 120.0,
        wall_seconds: 4.0,
        peak_rss_bytes: (nodes as u64) << 20,
        events: 12_345,
        checks: vec![
            CheckResult {
                name: "converged".into(),
                kind: CheckKind::Liveness,
                passed: true,
                detail: "all 1000 pods at their nodes after 3.2 s".into(),
            },
            CheckResult {
                name: "no_lost_updates".into(),
                kind: CheckKind::Safety,
                passed: false,
                detail: "pod a|b lost <update>".into(),
            },
        ],
        metrics: Metrics {
            sync_latency_ms: Percentiles {
                count: 1000,
                p50: 2.5,
                p90: 7.0,
                p99: 12.0,
                max: 40.0,
            },
            api_requests: BTreeMap::from([("list".into(), 3), ("watch".into(), 100)]),
            hub_queue_peak: 17,
            faults: vec![
                (1.0, "partition edge-3 & edge-4".into()),
                (2.5, "heal".into()),
            ],
            ..Metrics::default()
        },
        series,
        crash: None,
        real: None,
        settings: BTreeMap::from([("tick".into(), "1ms".into())]),
    }
}

fn read(dir: &Path, name: &str) -> String {
    fs::read_to_string(dir.join(name)).unwrap()
}

/// Asserts `svg` looks like an SVG document with at least `lines` polylines.
fn assert_svg(svg: &str, lines: usize) {
    assert!(svg.starts_with("<svg "), "{svg}");
    assert!(svg.trim_end().ends_with("</svg>"));
    assert_eq!(svg.matches("<polyline").count(), lines, "{svg}");
    assert!(!svg.contains("NaN") && !svg.contains("inf"));
}

#[test]
fn writes_every_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("out");
    let paths = write_reports(&outcome(4, 6), &dir, REPRO).unwrap();
    let names = [
        "report.json",
        "report.md",
        "connected.svg",
        "sync-latency.svg",
        "queue-depth.svg",
    ];
    assert_eq!(paths, names.map(|n| dir.join(n)));
    assert!(paths.iter().all(|p| p.is_file()));
}

#[test]
fn json_round_trips() {
    let tmp = tempfile::tempdir().unwrap();
    let o = outcome(4, 6);
    write_reports(&o, tmp.path(), REPRO).unwrap();
    let text = read(tmp.path(), "report.json");
    assert!(text.ends_with("}\n"));
    let back: Outcome = serde_json::from_str(&text).unwrap();
    assert_eq!(
        serde_json::to_value(&back).unwrap(),
        serde_json::to_value(&o).unwrap()
    );
}

#[test]
fn markdown_has_checks_and_repro() {
    let tmp = tempfile::tempdir().unwrap();
    write_reports(&outcome(4, 6), tmp.path(), REPRO).unwrap();
    let md = read(tmp.path(), "report.md");
    assert!(md.starts_with("# partition — seed 7"));
    assert!(md.contains("**FAIL** (exit code 129)"));
    assert!(md.contains("| `converged` | liveness | ✓ |"));
    assert!(md.contains("| `no_lost_updates` | safety | ✗ | pod a\\|b lost &lt;update&gt; |"));
    assert!(md.contains("| Speed | 30.0× real time |"));
    assert!(md.contains("| watch | 100 |"));
    assert!(md.contains("- 1.0 s: partition edge-3 & edge-4"));
    assert!(md.contains(&format!("```sh\n{REPRO}\n```")));
    assert!(md.contains("](connected.svg)"));
}

#[test]
fn svgs_have_a_line_per_series_and_markers() {
    let tmp = tempfile::tempdir().unwrap();
    write_reports(&outcome(4, 6), tmp.path(), REPRO).unwrap();
    let connected = read(tmp.path(), "connected.svg");
    assert_svg(&connected, 1);
    assert!(connected.contains("partition edge-3 &amp; edge-4"));
    assert_eq!(connected.matches("stroke-dasharray").count(), 2);
    assert_svg(&read(tmp.path(), "sync-latency.svg"), 2);
    assert_svg(&read(tmp.path(), "queue-depth.svg"), 2);
}

#[test]
fn output_is_deterministic() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let o = outcome(4, 6);
    let first = write_reports(&o, &a, REPRO).unwrap();
    write_reports(&o, &b, REPRO).unwrap();
    for p in first {
        let name = p.file_name().unwrap();
        assert_eq!(
            fs::read(&p).unwrap(),
            fs::read(b.join(name)).unwrap(),
            "{p:?}"
        );
    }
}

#[test]
fn empty_and_single_sample_series() {
    let tmp = tempfile::tempdir().unwrap();
    let mut o = outcome(4, 0);
    o.metrics = Metrics::default();
    o.wall_seconds = 0.0;
    write_reports(&o, tmp.path(), REPRO).unwrap();
    let connected = read(tmp.path(), "connected.svg");
    assert_svg(&connected, 0);
    assert!(connected.contains("no data"));
    assert!(read(tmp.path(), "report.md").contains("| Speed | n/a |"));

    write_reports(&outcome(4, 1), tmp.path(), REPRO).unwrap();
    assert_svg(&read(tmp.path(), "sync-latency.svg"), 2);
}

#[test]
fn perf_summary() {
    let tmp = tempfile::tempdir().unwrap();
    let runs = [outcome(1000, 3), outcome(10, 3), outcome(100, 3)];
    write_perf(&runs, tmp.path()).unwrap();
    let md = read(tmp.path(), "perf.md");
    let rows: Vec<&str> = md.lines().filter(|l| l.starts_with("| 1")).collect();
    assert_eq!(rows.len(), 3, "{md}");
    assert!(rows[0].starts_with("| 10 | 100 | 120.0 | 4.00 | 0.0333 | 30.0 | 10.0 | 1024.0 | ✗ |"));
    assert!(rows[2].starts_with("| 1000 |"));
    let json: serde_json::Value = serde_json::from_str(&read(tmp.path(), "perf.json")).unwrap();
    assert_eq!(json[1]["nodes"], 100);
    assert_svg(&read(tmp.path(), "perf.svg"), 2);

    let again = tmp.path().join("again");
    write_perf(&runs, &again).unwrap();
    assert_eq!(read(tmp.path(), "perf.svg"), read(&again, "perf.svg"));

    write_perf(&[], &tmp.path().join("none")).unwrap();
    assert!(read(&tmp.path().join("none"), "perf.md").contains("No runs."));
}

/// Goal: a run with devices gets its Devices section and the twin-report plot; one without
/// gets neither. Method: the fixture with and without device figures.
#[test]
fn devices_section_and_plot_only_with_devices() {
    let tmp = tempfile::tempdir().unwrap();
    let mut o = outcome(4, 6);
    let paths = write_reports(&o, tmp.path(), REPRO).unwrap();
    assert_eq!(paths.len(), 5);
    assert!(!read(tmp.path(), "report.md").contains("## Devices"));
    o.metrics.devices = Some(simulator::outcome::DeviceFigures {
        devices: 40,
        reports_confirmed: 1234,
        confirmed_per_sim_s: 20.0,
        confirmed_per_wall_s: 10_500.4,
        drain_per_wall_s_peak: Some(8_123.6),
        ..Default::default()
    });
    let dir = tmp.path().join("dev");
    let paths = write_reports(&o, &dir, REPRO).unwrap();
    assert_eq!(paths.last().unwrap(), &dir.join("twin-reports.svg"));
    let md = read(&dir, "report.md");
    assert!(md.contains("## Devices"), "{md}");
    assert!(
        md.contains("| Reports confirmed by the cloud | 1234 |"),
        "{md}"
    );
    assert!(
        md.contains("| Confirmed per wall second (mean / peak 10 s) | 10500 / 0 |"),
        "{md}"
    );
    assert!(
        md.contains("(backlog draining, best 10 s) | 8124 |"),
        "{md}"
    );
    assert!(md.contains("![Twin reports](twin-reports.svg)"));
    assert_svg(&read(&dir, "twin-reports.svg"), 1);
}
