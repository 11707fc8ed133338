//! Real mode end to end: `fleet run --mode real` starts the real `cloudcore` binary (embedded
//! API server) and edgemark processes on loopback, runs the scenario over real mTLS
//! websockets, and writes the sim mode's report with the processes' cost. The same scenario
//! passes in sim mode.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a failed fixture step is a test failure"
)]

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use serde_json::Value;

fn fleet() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_fleet"));
    c.current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."));
    c
}

/// cloudcore is another package's binary: the workspace build puts it beside `fleet`.
fn cloudcore() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_BIN_EXE_fleet")).with_file_name("cloudcore");
    assert!(
        p.is_file(),
        "{} missing: run `cargo build --workspace` first",
        p.display()
    );
    p
}

fn report(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap()
}

fn check_passed(r: &Value, name: &str) -> bool {
    r["checks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["name"] == name && c["passed"] == true)
}

/// Goal: one scenario passes every check in real mode, and the report carries what the
/// processes cost. Method: `fleet run --mode real scenarios/dual-smoke.toml` (30 nodes over
/// real sockets; a third of them cut for 20 s; cloudcore SIGKILLed and restarted; a
/// rolling update), then read report.json.
#[test]
fn dual_smoke_passes_in_real_mode() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("real");
    let st = fleet()
        .args([
            "run",
            "--mode",
            "real",
            "scenarios/dual-smoke.toml",
            "--quiet",
        ])
        .arg("--out")
        .arg(&out)
        .env("CLOUDCORE_BIN", cloudcore())
        .env("EDGEMARK_BIN", env!("CARGO_BIN_EXE_edgemark"))
        .status()
        .unwrap();
    let r = report(&out);
    assert!(
        st.success(),
        "fleet run --mode real: {st}: {:#}",
        r["checks"]
    );
    assert_eq!(r["passed"], true);
    assert_eq!(r["nodes"], 30);
    assert_eq!(r["pods"], 60);
    for name in [
        "ready",
        "converged",
        "no_lost_updates",
        "no_resurrection",
        "own_objects_only",
        "hub_queues_bounded",
    ] {
        assert!(check_passed(&r, name), "check {name}: {:#}", r["checks"]);
    }
    let real = &r["real"];
    assert!(real["cloudcore_cpu_seconds"].as_f64().unwrap() > 0.0);
    assert!(real["cloudcore_peak_rss_bytes"].as_u64().unwrap() > 1 << 20);
    assert_eq!(real["cloudcore_restarts"], 1);
    assert_eq!(real["edgemark_processes"], 1);
    let m = &r["metrics"];
    assert!(
        m["sync_latency_ms"]["count"].as_u64().unwrap() >= 60,
        "{m:#}"
    );
    assert!(m["ack_latency_ms"]["count"].as_u64().unwrap() > 0, "{m:#}");
    assert!(
        m["api_requests"]["create"].as_u64().unwrap() >= 120,
        "{m:#}"
    );
    assert_eq!(m["faults"].as_array().unwrap().len(), 2);
    assert!(out.join("report.md").exists() && out.join("connected.svg").exists());
}

/// Goal: the same scenario passes in sim mode.
#[test]
fn dual_smoke_passes_in_sim_mode() {
    let tmp = tempfile::tempdir().unwrap();
    let st = fleet()
        .args(["run", "scenarios/dual-smoke.toml", "--quiet", "--out"])
        .arg(tmp.path())
        .status()
        .unwrap();
    assert!(st.success(), "fleet run: {st}");
    assert_eq!(report(tmp.path())["passed"], true);
}

/// Goal: a scenario with faults that have no real-mode form is refused before anything
/// starts, naming the fault. Method: ci-smoke (it partitions a site) in real mode.
#[test]
fn real_mode_refuses_site_faults() {
    let out = fleet()
        .args([
            "run",
            "--mode",
            "real",
            "scenarios/ci-smoke.toml",
            "--quiet",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("partition_sites") && err.contains("real-mode"),
        "{err}"
    );
}

/// Goal: devices run in real mode: the driver creates the Device objects, every edgemark
/// node's DeviceTwin takes its virtual mapper's reports, and every accepted report is
/// confirmed by the real cloudcore and lands in DeviceStatus. Method: 6 nodes × 3 devices
/// reporting every second for 15 s, then the mappers stop; read the report's checks and its
/// Devices figures (cloudcore's own DeviceStatus write counter included).
#[test]
fn devices_report_through_a_real_cloudcore() {
    let tmp = tempfile::tempdir().unwrap();
    let scenario = tmp.path().join("real-devices.toml");
    std::fs::write(
        &scenario,
        r#"
hold_s = 15
[fleet]
nodes = 6
sites = 1
devices_per_node = 3
[edge]
twin_report_period_s = 1
[[workload]]
kind = "create_devices"
at_s = 0
[checks]
converge_within_s = 120
ready_within_s = 120
"#,
    )
    .unwrap();
    let out = tmp.path().join("out");
    let st = fleet()
        .args(["run", "--mode", "real", "--quiet"])
        .arg(&scenario)
        .arg("--out")
        .arg(&out)
        .env("CLOUDCORE_BIN", cloudcore())
        .env("EDGEMARK_BIN", env!("CARGO_BIN_EXE_edgemark"))
        .status()
        .unwrap();
    let r = report(&out);
    assert!(
        st.success(),
        "fleet run --mode real: {st}: {:#}",
        r["checks"]
    );
    for name in ["ready", "converged", "twin_reports_confirmed"] {
        assert!(check_passed(&r, name), "check {name}: {:#}", r["checks"]);
    }
    let d = &r["metrics"]["devices"];
    assert_eq!(d["devices"], 18, "{d:#}");
    let accepted = d["mapper_reports_accepted"].as_u64().unwrap();
    // 18 devices, one report a second each for at least the 15 s hold.
    assert!(accepted >= 18 * 10, "{d:#}");
    assert_eq!(d["mapper_reports_refused"], 0, "{d:#}");
    // Confirmations cover the twin reports and each device's state report.
    assert!(
        d["reports_confirmed"].as_u64().unwrap() >= accepted,
        "{d:#}"
    );
    // Each accepted report changed a sensor reading: one DeviceStatus write each, at least.
    assert!(d["status_writes"].as_u64().unwrap() >= accepted, "{d:#}");
    assert!(d["confirmed_per_wall_s"].as_f64().unwrap() > 5.0, "{d:#}");
}

/// Goal: a device phase real mode cannot run yet is refused before anything starts, naming
/// the phase. Method: devices-10k (its `desired_churn`) in real mode.
#[test]
fn real_mode_refuses_device_phases_it_cannot_run() {
    let out = fleet()
        .args([
            "run",
            "--mode",
            "real",
            "scenarios/devices-10k.toml",
            "--quiet",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("desired_churn") && err.contains("real-mode"),
        "{err}"
    );
}
