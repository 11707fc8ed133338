//! The `fleet` binary end to end: a scenario runs against the real cloudcore and API server
//! in the simulator, reports are written, the same seed gives the same digest in two
//! processes, and failures map to their exit codes with a reproduce command.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a failed fixture step is a test failure"
)]

use std::{path::Path, process::Command};

use serde_json::Value;

fn fleet() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_fleet"));
    c.current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."));
    c
}

fn report(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap()
}

/// Goal: the CI smoke scenario passes with its checks, writes every report file, and the
/// same seed run in a second process gives the same digest while another seed does not.
/// Method: `fleet run` three times (seeds 1, 1, 2) into temporary directories.
#[test]
fn ci_smoke_passes_and_is_deterministic_per_seed() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |seed: &str, dir: &str| {
        let out = tmp.path().join(dir);
        let st = fleet()
            .args([
                "run",
                "scenarios/ci-smoke.toml",
                "--quiet",
                "--seed",
                seed,
                "--out",
            ])
            .arg(&out)
            .status()
            .unwrap();
        assert!(st.success(), "fleet run seed {seed}: {st}");
        report(&out)
    };
    let a = run("1", "a");
    for f in [
        "report.md",
        "connected.svg",
        "sync-latency.svg",
        "queue-depth.svg",
    ] {
        assert!(tmp.path().join("a").join(f).exists(), "{f} written");
    }
    assert_eq!(a["passed"], true);
    assert_eq!(a["nodes"], 40);
    assert_eq!(a["pods"], 80);
    let checks = a["checks"].as_array().unwrap();
    for name in [
        "ready",
        "converged",
        "no_lost_updates",
        "no_resurrection",
        "own_objects_only",
    ] {
        let c = checks.iter().find(|c| c["name"] == name).unwrap();
        assert_eq!(c["passed"], true, "{c}");
    }
    assert!(a["metrics"]["sync_latency_ms"]["count"].as_u64().unwrap() > 80);
    let b = run("1", "b");
    assert_eq!(a["digest"], b["digest"], "same seed, same digest");
    assert_eq!(a["events"], b["events"]);
    let c = run("2", "c");
    assert_ne!(a["digest"], c["digest"], "another seed, another run");
}

/// Goal: a liveness failure exits 128 and prints the command that reproduces it. Method: a
/// scenario whose fleet cannot connect within its `ready_within_s` (nodes start over 60 s,
/// the check allows 5 s).
#[test]
fn a_liveness_failure_exits_128_with_the_reproduce_command() {
    let tmp = tempfile::tempdir().unwrap();
    let sc = tmp.path().join("slow.toml");
    std::fs::write(
        &sc,
        "limit_s = 120\n[fleet]\nnodes = 4\nsites = 2\nstart_spread_s = 60\n[checks]\nready_within_s = 5\n",
    )
    .unwrap();
    let out = fleet()
        .arg("run")
        .arg(&sc)
        .args(["--quiet", "--seed", "9", "--out"])
        .arg(tmp.path().join("r"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(128), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("check ready"), "{err}");
    assert!(
        err.contains("reproduce with:") && err.contains("--seed 9"),
        "{err}"
    );
    assert_eq!(report(&tmp.path().join("r"))["passed"], false);
}

/// Goal: a bad scenario file is refused before anything runs, naming file, line and field.
#[test]
fn a_bad_scenario_names_file_line_and_field() {
    let tmp = tempfile::tempdir().unwrap();
    let sc = tmp.path().join("bad.toml");
    std::fs::write(&sc, "[fleet]\nnodes = 4\nnodez = 5\n").unwrap();
    let out = fleet().arg("run").arg(&sc).arg("--quiet").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml:3:1") && err.contains("nodez"),
        "{err}"
    );
}
