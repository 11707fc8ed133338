//! Fixtures shared by keadm's process-level tests: a cloud and edges set up with `keadm` in a
//! temporary directory, kubectl against the embedded API server, and waiting with deadlines.
#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    thread::sleep,
    time::{Duration, Instant},
};

use serde_json::Value;

pub(crate) const WAIT: Duration = Duration::from_secs(40);

/// The daemon binary `name`: next to the keadm under test, or in `$EDGEFLEET_BIN_DIR` if set
/// (footprint measurements run release daemons from a debug test).
pub(crate) fn bin(name: &str) -> PathBuf {
    let keadm = PathBuf::from(env!("CARGO_BIN_EXE_keadm"));
    let p = match std::env::var_os("EDGEFLEET_BIN_DIR") {
        Some(dir) => PathBuf::from(dir).join(name),
        None => keadm.with_file_name(name),
    };
    assert!(
        p.is_file(),
        "{} missing: run `cargo build --workspace` first",
        p.display()
    );
    p
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub(crate) fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub(crate) fn keadm(args: &[&str]) -> String {
    String::from_utf8(run(Command::new(bin("keadm")).args(args)).stdout).unwrap()
}

pub(crate) struct Cluster {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) hub_port: u16,
    pub(crate) metrics_port: u16,
    pub(crate) cert_port: u16,
    pub(crate) tunnel_port: u16,
}

impl Cluster {
    pub(crate) fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub(crate) fn kubectl(&self, args: &[&str]) -> Output {
        Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(self.path("cloud/apiserver/kubeconfig"))
            .args(args)
            .output()
            .unwrap()
    }

    pub(crate) fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub(crate) fn apply(&self, yaml: &str) {
        let f = self.path("manifest.yaml");
        fs::write(&f, yaml).unwrap();
        self.kubectl_ok(&["apply", "-f", f.to_str().unwrap()]);
    }

    pub(crate) fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.extend(["-o", "json"]);
        serde_json::from_str(&self.kubectl_ok(&a)).unwrap()
    }

    pub(crate) fn pid(&self, rel: &str) -> Option<i32> {
        fs::read_to_string(self.path(rel)).ok()?.trim().parse().ok()
    }

    pub(crate) fn cloud_metric(&self, line_prefix: &str) -> u64 {
        let body = http_get(self.metrics_port, "/metrics");
        body.lines()
            .find_map(|l| l.strip_prefix(line_prefix))
            .map_or(0, |v| v.trim().parse().unwrap())
    }

    /// Starts a daemon the way keadm does (own process group, log appended, pid file).
    pub(crate) fn start(&self, name: &str, dir: &str) {
        use std::os::unix::process::CommandExt as _;
        let d = self.path(dir);
        let log = fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(d.join(format!("{name}.log")))
            .unwrap();
        let child = Command::new(bin(name))
            .arg("--config")
            .arg(d.join(format!("{name}.yaml")))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap();
        fs::write(d.join(format!("{name}.pid")), child.id().to_string()).unwrap();
    }

    pub(crate) fn signal(&self, name: &str, dir: &str, sig: &str) {
        let pid = self.pid(&format!("{dir}/{name}.pid")).unwrap();
        run(Command::new("kill").args([sig, &pid.to_string()]));
        wait_for(&format!("{name} in {dir} to exit"), || !alive(pid));
    }
}

/// A failed test must not leave daemons or pods behind: stop them (SIGTERM lets edgecore
/// stop its pods), then kill whatever is left, including pod processes by their pid files.
impl Drop for Cluster {
    fn drop(&mut self) {
        let daemons = [
            ("cloudcore", "cloud"),
            ("edgecore", "edge-1"),
            ("edgecore", "edge-2"),
        ];
        let pids: Vec<i32> = daemons
            .iter()
            .filter_map(|(n, d)| self.pid(&format!("{d}/{n}.pid")))
            .filter(|p| alive(*p))
            .collect();
        for p in &pids {
            let _ = Command::new("kill")
                .args(["-TERM", &p.to_string()])
                .status();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while pids.iter().any(|p| alive(*p)) && Instant::now() < deadline {
            sleep(Duration::from_millis(100));
        }
        let pods = fs::read_dir(self.path("pods"))
            .into_iter()
            .flatten()
            .flatten();
        let pod_pids = pods.filter_map(|e| {
            fs::read_to_string(e.path())
                .ok()?
                .trim()
                .parse::<i32>()
                .ok()
        });
        for p in pids.into_iter().chain(pod_pids).filter(|p| alive(*p)) {
            let _ = Command::new("kill")
                .args(["-KILL", &p.to_string()])
                .status();
        }
    }
}

pub(crate) fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read as _, Write as _};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    );
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

pub(crate) fn alive(pid: i32) -> bool {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    !stat.is_empty()
        && stat
            .rsplit_once(") ")
            .is_some_and(|(_, r)| !r.starts_with('Z'))
}

pub(crate) fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        sleep(Duration::from_millis(200));
    }
}

pub(crate) fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap_or_default().trim().to_owned()
}

/// `keadm init` on loopback, then `keadm join` of each of `nodes` with `join_args` added.
pub(crate) fn setup_with(nodes: &[&str], join_args: &[&str]) -> Cluster {
    let c = Cluster {
        dir: tempfile::tempdir().unwrap(),
        hub_port: free_port(),
        metrics_port: free_port(),
        cert_port: free_port(),
        tunnel_port: free_port(),
    };
    let (cert, api) = (c.cert_port.to_string(), free_port().to_string());
    let cloud = c.path("cloud");
    let out = keadm(&[
        "init",
        "--advertise-address",
        "127.0.0.1",
        "--data-dir",
        cloud.to_str().unwrap(),
        "--websocket-port",
        &c.hub_port.to_string(),
        "--cert-port",
        &cert,
        "--apiserver-port",
        &api,
        "--metrics-port",
        &c.metrics_port.to_string(),
        "--tunnel-port",
        &c.tunnel_port.to_string(),
    ]);
    assert!(
        out.contains("keadm join --cloudcore-ipport 127.0.0.1:"),
        "{out}"
    );
    let token = keadm(&["gettoken", "--data-dir", cloud.to_str().unwrap()]);
    for node in nodes {
        let dir = c.path(node);
        let ipport = format!("127.0.0.1:{}", c.hub_port);
        let tunnel = c.tunnel_port.to_string();
        let mut args = vec![
            "join",
            "--tunnel-port",
            &tunnel,
            "--cloudcore-ipport",
            &ipport,
            "--certport",
            &cert,
            "--token",
            token.trim(),
            "--edgenode-name",
            node,
            "--data-dir",
            dir.to_str().unwrap(),
        ];
        args.extend_from_slice(join_args);
        let out = keadm(&args);
        assert!(out.contains("is registered"), "{out}");
    }
    c
}

pub(crate) fn node_ready(n: &Value) -> bool {
    n.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}
