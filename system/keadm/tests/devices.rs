//! Issue #6's acceptance with real processes on loopback: Debian's `mosquitto` as the node's
//! broker, `keadm init` / `keadm join --mqtt-server`, the `mapper` binary, and kubectl for the
//! Device CRDs; and the same flow on edgecore's embedded broker (`--mqtt-mode 0`). Needs
//! `kubectl`, `mosquitto` and `mosquitto-clients` (ci/deps.sh installs the
//! latter two) and the workspace's binaries built.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a failed fixture step is a test failure"
)]
#![allow(
    clippy::disallowed_methods,
    reason = "real processes on real time: std's clock is the right one here"
)]
#![allow(
    clippy::zombie_processes,
    reason = "daemons are started detached, as keadm does; they are stopped by pid"
)]

mod common;

use std::{
    fs,
    io::{BufRead as _, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use common::*;
use serde_json::Value;

const DELTA: &str = "$hw/events/device/default/thermo/twin/update/delta";
const UPDATE: &str = "$hw/events/device/default/thermo/twin/update";
const RESULT: &str = "$hw/events/device/default/thermo/twin/update/result";

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn mosquitto_bin() -> PathBuf {
    ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .expect("mosquitto is not installed: run ci/deps.sh (Debian package mosquitto)")
}

/// Debian's mosquitto on a free loopback port, anonymous clients allowed.
fn broker(dir: &std::path::Path) -> (Proc, u16) {
    let port = free_port();
    let conf = dir.join("mosquitto.conf");
    fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"),
    )
    .unwrap();
    let child = Command::new(mosquitto_bin())
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("mosquitto to listen", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    (Proc(child), port)
}

/// `mosquitto_sub -v` on `topic`; every line it prints arrives on the receiver.
fn subscribe(port: u16, topic: &str) -> (Proc, mpsc::Receiver<String>) {
    let mut child = Command::new("mosquitto_sub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-q",
            "1",
            "-v",
            "-t",
            topic,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto_sub is not installed: run ci/deps.sh (mosquitto-clients)");
    let rx = lines_of(&mut child);
    // mosquitto_sub has no "subscribed" signal: publish probes on the topic until one comes
    // back, so nothing published afterwards can be missed.
    let deadline = Instant::now() + WAIT;
    'probe: for n in 0.. {
        assert!(
            Instant::now() < deadline,
            "mosquitto_sub never subscribed to {topic}"
        );
        let probe = format!("probe-{n}");
        publish(port, topic, &probe);
        while let Ok(line) = rx.recv_timeout(Duration::from_millis(300)) {
            if line.ends_with(&probe) {
                break 'probe;
            }
        }
    }
    (Proc(child), rx)
}

/// Every line `child` prints (trimmed), from a reader thread.
fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line.trim().to_owned()).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits for a line containing every one of `needles`.
fn expect_line(rx: &mpsc::Receiver<String>, needles: &[&str]) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no MQTT message containing {needles:?}"));
        if needles.iter().all(|n| line.contains(n)) {
            return line;
        }
    }
}

fn publish(port: u16, topic: &str, payload: &str) {
    let ok = Command::new("mosquitto_pub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-q",
            "1",
            "-t",
            topic,
            "-m",
            payload,
        ])
        .status()
        .unwrap()
        .success();
    assert!(ok, "mosquitto_pub {topic}");
}

fn reported(c: &Cluster, prop: &str) -> Option<String> {
    let out = c.kubectl(&["get", "devicestatus", "thermo", "-o", "json"]);
    let ds: Value = serde_json::from_slice(&out.stdout).ok()?;
    ds.pointer("/status/twins")?
        .as_array()?
        .iter()
        .find(|t| t["propertyName"] == prop)?
        .pointer("/reported/value")?
        .as_str()
        .map(str::to_owned)
}

const MODEL_AND_DEVICE: &str = "\
apiVersion: devices.kubeedge.io/v1beta1
kind: DeviceModel
metadata: {name: thermo-model}
spec:
  protocol: virtual
  properties:
  - {name: temperature, type: FLOAT, accessMode: ReadOnly}
  - {name: target, type: FLOAT, accessMode: ReadWrite}
---
apiVersion: devices.kubeedge.io/v1beta1
kind: Device
metadata: {name: thermo, labels: {description: greenhouse}}
spec:
  deviceModelRef: {name: thermo-model}
  nodeName: edge-1
  protocol: {protocolName: virtual}
  properties:
  - name: temperature
    reportToCloud: true
  - name: target
    desired: {value: \"21\"}
";

/// Creates the model and device `thermo` with kubectl, waits for the first delta (the model's
/// desired target 21) on the broker at `port`, then sets the desired target to `value` with
/// kubectl and waits for that delta.
fn model_device_and_desired_delta(c: &Cluster, port: u16, value: &str) {
    let (_sub, deltas) = subscribe(port, DELTA);
    c.apply(MODEL_AND_DEVICE);
    expect_line(&deltas, &[r#""target":"21""#]);
    let patch = format!(
        r#"[{{"op":"replace","path":"/spec/properties/1/desired/value","value":"{value}"}}]"#
    );
    c.kubectl_ok(&["patch", "device", "thermo", "--type=json", "-p", &patch]);
    let line = expect_line(&deltas, &[&format!(r#""delta":{{"target":"{value}"}}"#)]);
    assert!(line.starts_with(DELTA), "{line}");
}

fn twin_update(value: &str) -> String {
    format!(
        r#"{{"event_id":"e{value}","timestamp":0,"twin":{{"temperature":{{"actual":{{"value":"{value}"}},"metadata":{{"type":"float"}}}}}}}}"#
    )
}

/// Goal: issue #6's acceptance lines 1–2 with real processes. Steps wait with deadlines.
#[test]
fn devices_end_to_end_with_mosquitto_kubectl_and_the_mapper() {
    let broker_dir = tempfile::tempdir().unwrap();
    let (_broker, port) = broker(broker_dir.path());
    let mqtt = format!("tcp://127.0.0.1:{port}");
    let c = setup_with(&["edge-1"], &["--mqtt-server", &mqtt]);
    let crds = c.kubectl_ok(&["get", "crd", "-o", "name"]);
    for crd in ["devices", "devicemodels", "devicestatuses"] {
        assert!(
            crds.contains(&format!("{crd}.devices.kubeedge.io")),
            "{crds}"
        );
    }
    // 1. DeviceModel and Device with kubectl; a desired value set with kubectl → delta on MQTT.
    model_device_and_desired_delta(&c, port, "25");
    // 2. The mapper reports a value → DeviceStatus; it applies the desired value too.
    let mapper = Command::new(bin("mapper"))
        .args([
            "--broker",
            &mqtt,
            "--device",
            "default/thermo",
            "--period",
            "0.5",
        ])
        .args(["virtual", "--property", "temperature=const:23.5"])
        .args(["--property", "target=actuator:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mapper = Proc(mapper);
    wait_for("the mapper's temperature in DeviceStatus", || {
        reported(&c, "temperature").as_deref() == Some("23.5")
    });
    wait_for("the applied target in DeviceStatus", || {
        reported(&c, "target").as_deref() == Some("25")
    });
    drop(mapper);
    // 3. A malformed payload: an error on the result topic, nothing changes.
    let (_rsub, results) = subscribe(port, RESULT);
    publish(
        port,
        UPDATE,
        r#"{"event_id":"bad","twin":{"temperature":{"actual":{"value":7}}}}"#,
    );
    let err = expect_line(&results, &[r#""event_id":"bad""#]);
    assert!(err.contains(r#""code":400"#), "{err}");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(reported(&c, "temperature").as_deref(), Some("23.5"));
    offline_reports_arrive_in_order(&c, port);
}

/// Goal: the same device flow with `mqttMode: 0` and no mosquitto running: edgecore's
/// embedded broker is the node's broker. Method: `keadm join --mqtt-mode 0
/// --mqtt-internal-server tcp://127.0.0.1:PORT`; `mosquitto_sub` on the embedded broker gets the
/// delta of a desired value set with kubectl, and the mapper, pointed at the embedded broker,
/// reports a value that appears in the DeviceStatus (and applies the desired one).
#[test]
fn devices_end_to_end_on_the_embedded_broker() {
    let port = free_port();
    let mqtt = format!("tcp://127.0.0.1:{port}");
    let c = setup_with(
        &["edge-1"],
        &["--mqtt-mode", "0", "--mqtt-internal-server", &mqtt],
    );
    model_device_and_desired_delta(&c, port, "26");
    let _mapper = Proc(
        Command::new(bin("mapper"))
            .args(["--broker", &mqtt, "--device", "default/thermo"])
            .args(["--period", "0.5", "virtual"])
            .args(["--property", "temperature=const:19.5"])
            .args(["--property", "target=actuator:0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for("the mapper's temperature in DeviceStatus", || {
        reported(&c, "temperature").as_deref() == Some("19.5")
    });
    wait_for("the applied target in DeviceStatus", || {
        reported(&c, "target").as_deref() == Some("26")
    });
}

/// While cloudcore is down, five values are published locally; after it is back every one
/// reaches the cloud (counted by its DeviceController) and DeviceStatus moves through them in
/// publication order to the last.
fn offline_reports_arrive_in_order(c: &Cluster, port: u16) {
    c.signal("cloudcore", "cloud", "-TERM");
    let (_rsub, results) = subscribe(port, RESULT);
    let values = ["30", "31", "32", "33", "34"];
    for v in values {
        publish(port, UPDATE, &twin_update(v));
        expect_line(&results, &[&format!(r#""event_id":"e{v}""#)]);
    }
    c.start("cloudcore", "cloud");
    // Watch from the first moment the API server answers.
    let mut watch = None;
    wait_for("the API server back", || {
        let ok = c
            .kubectl(&["get", "devicestatus", "thermo"])
            .status
            .success();
        if ok {
            watch = Some(c.watch_jsonpath(
                "devicestatus/thermo",
                r#"{.status.twins[?(@.propertyName=="temperature")].reported.value}{"\n"}"#,
            ));
        }
        ok
    });
    let (_w, seen) = watch.unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + WAIT;
    while got.last().map(String::as_str) != Some("34") {
        let left = deadline.saturating_duration_since(Instant::now());
        let v = seen
            .recv_timeout(left)
            .expect("the last offline value in DeviceStatus");
        if got.last() != Some(&v) {
            got.push(v);
        }
    }
    let order: Vec<usize> = got
        .iter()
        .filter_map(|v| values.iter().position(|x| x == v))
        .collect();
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "out of order: {got:?}"
    );
    wait_for("all five reports counted by cloudcore", || {
        c.cloud_metric("devicecontroller_twin_reports_total ") >= 5
    });
}

impl Cluster {
    /// `kubectl get -w -o jsonpath` of one object; each line printed arrives on the receiver.
    fn watch_jsonpath(&self, object: &str, path: &str) -> (Proc, mpsc::Receiver<String>) {
        let mut child = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(self.path("cloud/apiserver/kubeconfig"))
            .args(["get", object, "-w", "-o", &format!("jsonpath={path}")])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let rx = lines_of(&mut child);
        (Proc(child), rx)
    }
}
