//! Issue #7's CloudStream/EdgeStream acceptance with real processes on loopback: `keadm init`,
//! `keadm join` of edge-1, a pod run by the process runtime, then real `kubectl logs`,
//! `kubectl logs -f`, `kubectl logs -c`, and `kubectl exec` (WebSocket, `v5.channel.k8s.io`)
//! through the embedded API server → CloudStream → the node's tunnel → EdgeStream. Needs
//! `kubectl` on PATH and the workspace's binaries built.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a failed fixture step is a test failure"
)]
#![allow(
    clippy::disallowed_methods,
    reason = "real processes on real time: std's clock and a reader thread are right here"
)]
#![allow(
    clippy::zombie_processes,
    reason = "daemons are started detached, as keadm does; they are stopped by pid"
)]

mod common;

use std::{
    io::{BufRead, BufReader, Write as _},
    process::{Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use common::*;
use serde_json::Value;

const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: ticker}\nspec:\n  nodeName: edge-1\n  containers:\n  - name: app\n    image: busybox\n    command: [sh, -c, 'i=0; while true; do echo tick $i; i=$((i+1)); sleep 1; done']\n  - name: side\n    image: busybox\n    command: [sh, -c, 'echo side-line; exec sleep 3600']\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: elsewhere}\nspec:\n  nodeName: edge-2\n  containers:\n  - name: c\n    image: busybox\n    command: [sleep, '3600']\n";

fn running(c: &Cluster, name: &str) -> bool {
    let out = c.kubectl(&["get", "pod", name, "-o", "json"]);
    serde_json::from_slice::<Value>(&out.stdout)
        .is_ok_and(|p| p.pointer("/status/phase") == Some(&Value::from("Running")))
}

/// The highest `tick N` in `text`.
fn last_tick(text: &str) -> Option<u64> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("tick ")?.parse().ok())
        .max()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Goal: `kubectl logs` shows an edge pod's output, `-f` receives lines written after it
/// started, `-c` picks a container, `kubectl exec POD -- echo hi` prints `hi`, stdin reaches
/// an exec'd `cat`, a command's exit code 3 becomes kubectl's, and a pod whose node has no
/// tunnel or a pod that does not exist gives a clear error. Method: real keadm/kubectl
/// processes; every wait has a deadline.
#[test]
fn kubectl_logs_and_exec_reach_edge_pods() {
    let c = setup_with(&["edge-1"], &["--no-devices"]);
    c.apply(POD);
    wait_for("ticker running", || running(&c, "ticker"));
    let mut seen = 0;
    wait_for("kubectl logs to show tick 1", || {
        let out = c.kubectl(&["logs", "ticker"]);
        seen = last_tick(&String::from_utf8_lossy(&out.stdout)).unwrap_or(0);
        out.status.success() && seen >= 1
    });
    let side = c.kubectl_ok(&["logs", "-c", "side", "ticker"]);
    assert_eq!(side.trim(), "side-line");
    let tail = c.kubectl_ok(&["logs", "--tail=1", "ticker", "-c", "app"]);
    assert_eq!(tail.lines().count(), 1, "{tail}");

    follow(&c, seen);
    exec(&c);
    errors(&c);
}

/// `kubectl logs -f` sees a tick written after the logs already read.
fn follow(c: &Cluster, seen: u64) {
    let mut child = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(c.path("cloud/apiserver/kubeconfig"))
        .args(["logs", "-f", "ticker", "-c", "app"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + WAIT;
    let newer = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .expect("kubectl logs -f gave no newer line");
        if let Some(n) = last_tick(&line).filter(|n| *n > seen + 1) {
            break n;
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(newer > seen + 1);
}

fn exec(c: &Cluster) {
    let hi = c.kubectl_ok(&["exec", "ticker", "-c", "app", "--", "echo", "hi"]);
    assert_eq!(hi, "hi\n");
    let out = c.kubectl(&["exec", "ticker", "-c", "app", "--", "sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let mut cat = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(c.path("cloud/apiserver/kubeconfig"))
        .args(["exec", "-i", "ticker", "-c", "app", "--", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    cat.stdin
        .take()
        .unwrap()
        .write_all(b"from stdin\n")
        .unwrap();
    let out = cat.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "from stdin\n",
        "{}",
        stderr(&out)
    );
    let missing = c.kubectl(&["exec", "ticker", "-c", "app", "--", "/no/such/binary"]);
    assert!(!missing.status.success());
}

fn errors(c: &Cluster) {
    let wait = Duration::from_secs(20);
    let start = Instant::now();
    let out = c.kubectl(&["logs", "elsewhere"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("node edge-2"), "{}", stderr(&out));
    let out = c.kubectl(&["exec", "elsewhere", "--", "true"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("node edge-2"), "{}", stderr(&out));
    let out = c.kubectl(&["logs", "nope"]);
    assert!(stderr(&out).contains("not found"), "{}", stderr(&out));
    let out = c.kubectl(&["exec", "nope", "--", "true"]);
    assert!(stderr(&out).contains("not found"), "{}", stderr(&out));
    assert!(start.elapsed() < wait, "errors took {:?}", start.elapsed());
}
