//! The `edgecore` binary: `--defaultconfig` round trip, bad configurations (exit 64, one line
//! naming the key), and a real run offline (EdgeHub disabled) serving `/metrics`, stopped by
//! SIGTERM with exit 0.

use std::{
    io::{Read as _, Write as _},
    path::Path,
    process::{Command, Output, Stdio},
    time::Duration,
};

use ke_edge::config::EdgeCoreConfig;

fn edgecore() -> Command {
    Command::new(env!("CARGO_BIN_EXE_edgecore"))
}

fn run_with_config(text: &str) -> Output {
    let dir = tempfile::tempdir().expect("test fixture");
    let path = dir.path().join("edgecore.yaml");
    std::fs::write(&path, text).expect("test fixture");
    edgecore()
        .arg("--config")
        .arg(&path)
        .output()
        .expect("test fixture")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Goal: `--defaultconfig` prints the full default configuration, which parses back to the
/// defaults. Method: run it, parse stdout, compare.
#[test]
fn defaultconfig_round_trips() {
    let out = edgecore().arg("--defaultconfig").output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("monitorServer:"), "{text}");
    assert!(text.contains("hostnameOverride:"), "{text}");
    assert_eq!(
        EdgeCoreConfig::from_yaml(&text).unwrap(),
        EdgeCoreConfig::default()
    );
}

/// Goal: bad configurations exit 64 with one line naming the key. Method: an out-of-range
/// value, an unknown key, a missing node name, an unknown runtime, a missing file.
#[test]
fn bad_config_exits_64_naming_the_key() {
    let named = "modules:\n  edged:\n    tailoredKubeletFlag:\n      hostnameOverride: edge-1\n";
    let cases = [
        (
            format!("{named}  edgeHub:\n    heartbeat: 0\n"),
            "modules.edgeHub.heartbeat",
        ),
        (format!("{named}  edgeHub:\n    hartbeat: 15\n"), "hartbeat"),
        ("kind: EdgeCore\n".to_owned(), "hostnameOverride"),
        (
            "modules:\n  edged:\n    runtime: docker\n    tailoredKubeletFlag:\n      \
             hostnameOverride: edge-1\n"
                .to_owned(),
            "runtime",
        ),
        (
            format!("{named}monitorServer:\n  bindAddress: nowhere\n"),
            "monitorServer.bindAddress",
        ),
    ];
    for (text, key) in cases {
        let out = run_with_config(&text);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(64), "for {text:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
        assert!(err.contains(key), "{key} not named in {err}");
    }
    let out = edgecore()
        .args(["--config", "/nonexistent/edgecore.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(stderr(&out).contains("cannot read"), "{}", stderr(&out));
}

/// A free local port (bound, then released).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("test fixture");
    l.local_addr().expect("test fixture").port()
}

/// GET `path` on `port`; the whole response, or `None` if nothing listens yet.
fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

fn offline_config(dir: &Path, port: u16) -> String {
    let d = dir.display();
    format!(
        "database:\n  dataSource: {d}/db/edgecore.db\n\
         monitorServer:\n  bindAddress: 127.0.0.1:{port}\n\
         modules:\n  edgeHub:\n    enable: false\n  edged:\n    tailoredKubeletFlag:\n      \
         hostnameOverride: edge-1\n      rootDirectory: {d}/kubelet\n"
    )
}

/// Goal: edgecore runs (offline: EdgeHub disabled, so no certificates are needed), serves its
/// metrics, and SIGTERM stops it cleanly with exit 0. Method: start the binary, poll
/// `/metrics`, send SIGTERM with `kill`, wait.
#[test]
fn serves_metrics_and_exits_0_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let path = dir.path().join("edgecore.yaml");
    std::fs::write(&path, offline_config(dir.path(), port)).unwrap();
    let mut child = edgecore()
        .arg("--config")
        .arg(&path)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut metrics = None;
    for _ in 0..300 {
        if let Some(text) = http_get(port, "/metrics") {
            metrics = Some(text);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let metrics = metrics.expect("metrics endpoint up within 15 s");
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    assert!(metrics.contains("edgecore_cloud_connected 0"), "{metrics}");
    assert!(metrics.contains("edgecore_pods 0"), "{metrics}");
    assert!(metrics.contains("edgecore_node_registered 0"), "{metrics}");

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let mut waited = None;
    for _ in 0..300 {
        if let Some(status) = child.try_wait().unwrap() {
            waited = Some(status);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let Some(status) = waited else {
        let _ = child.kill();
        panic!("edgecore did not exit within 15 s of SIGTERM");
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
    assert!(err.contains("SIGTERM"), "{err}");
    assert!(dir.path().join("db/edgecore.db").exists());
}
