//! The real mode's processes: cloudcore (with its embedded API server) and the edgemark
//! processes, started as children on loopback; their logs go to files in the work directory.
//! Also what the harness reads from them: `/proc` figures and their HTTP endpoints.

use std::{
    fs,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::{Context as _, Result, bail};
use ke_cloud::config::{CloudCoreConfig, StandalonePorts};
use ke_net::{Listener as _, Transport as _};

/// Most nodes one edgemark process holds: one socket per node (two while joining) under the
/// 20,000 open files a process may have here.
pub(crate) const NODES_PER_EDGEMARK: usize = 8000;

/// A sibling binary of `fleet` (`$<NAME>_BIN` overrides), as keadm finds cloudcore.
pub(crate) fn binary(name: &str) -> Result<PathBuf> {
    let var = format!("{}_BIN", name.to_uppercase());
    if let Some(p) = std::env::var_os(&var) {
        return Ok(PathBuf::from(p));
    }
    let me = std::env::current_exe().context("finding the fleet binary")?;
    let p = me.with_file_name(name);
    if p.is_file() {
        return Ok(p);
    }
    bail!(
        "{name} not found next to {} (build it: cargo build --release -p {} ; or set {var})",
        me.display(),
        if name == "edgemark" {
            "edgefleet-harness"
        } else {
            name
        }
    )
}

/// A free TCP port on 127.0.0.1 (bound, read, released).
async fn free_port() -> Result<u16> {
    let l = ke_net::TokioTransport
        .bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .await?;
    Ok(l.local_addr()?.port())
}

/// A child process that is killed when dropped.
pub(crate) struct Proc {
    pub(crate) child: Child,
    pub(crate) log: PathBuf,
}

impl Proc {
    fn spawn(cmd: &mut Command, log: PathBuf) -> Result<Self> {
        let out = fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        let child = crate::without_fleet_env(cmd)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {:?}", cmd.get_program()))?;
        Ok(Self { child, log })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The log's last lines, for error messages.
    pub(crate) fn tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    pub(crate) fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILL and reap.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// cloudcore as a child process, and how to reach it.
pub(crate) struct Cloud {
    pub(crate) proc: Proc,
    pub(crate) dir: PathBuf,
    pub(crate) config: PathBuf,
    pub(crate) ws: SocketAddr,
    pub(crate) cert_port: u16,
    pub(crate) metrics: SocketAddr,
    pub(crate) kubeconfig: PathBuf,
    restarts: u32,
    /// Its `--worker-threads`.
    threads: u16,
}

impl Cloud {
    /// Writes the configuration under `dir` and starts cloudcore; returns once it is ready.
    pub(crate) async fn start(dir: &Path, nodes: usize, threads: u16) -> Result<Self> {
        fs::create_dir_all(dir)?;
        let ports = StandalonePorts {
            websocket: free_port().await?,
            cert: free_port().await?,
            apiserver: free_port().await?,
            metrics: free_port().await?,
            tunnel: free_port().await?,
        };
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let mut cfg = CloudCoreConfig::standalone(dir, ip, ports);
        cfg.modules.cloud_hub.node_limit = u32::try_from(nodes + 100).unwrap_or(u32::MAX);
        cfg.validate()
            .context("the generated cloudcore configuration")?;
        let config = dir.join("cloudcore.yaml");
        fs::write(&config, cfg.to_yaml())?;
        let proc = Self::spawn_proc(dir, &config, 0, threads)?;
        let mut cloud = Self {
            proc,
            dir: dir.to_owned(),
            config,
            ws: SocketAddr::new(ip, ports.websocket),
            cert_port: ports.cert,
            metrics: SocketAddr::new(ip, ports.metrics),
            kubeconfig: dir.join("apiserver").join("kubeconfig"),
            restarts: 0,
            threads,
        };
        cloud.wait_ready(Duration::from_secs(120)).await?;
        Ok(cloud)
    }

    fn spawn_proc(dir: &Path, config: &Path, n: u32, threads: u16) -> Result<Proc> {
        let log = dir.join(format!("cloudcore.{n}.log"));
        Proc::spawn(
            Command::new(binary("cloudcore")?)
                .arg("--config")
                .arg(config)
                .args(["--worker-threads", &threads.to_string()])
                .env("RUST_LOG", "warn"),
            log,
        )
    }

    async fn wait_ready(&mut self, limit: Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if self.kubeconfig.is_file() && get(self.metrics, "/healthz").await.is_ok() {
                return Ok(());
            }
            if !self.proc.alive() {
                bail!("cloudcore exited during startup:\n{}", self.proc.tail());
            }
            if tokio::time::Instant::now() > deadline {
                bail!("cloudcore not ready after {limit:?}:\n{}", self.proc.tail());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// SIGKILL (a crash: nothing is flushed), then after `down` a new process on the same
    /// configuration and data.
    pub(crate) async fn crash_restart(&mut self, down: Duration) -> Result<()> {
        self.proc.kill();
        tokio::time::sleep(down).await;
        self.restarts += 1;
        self.proc = Self::spawn_proc(&self.dir, &self.config, self.restarts, self.threads)?;
        self.wait_ready(Duration::from_secs(120)).await
    }

    /// A join token from the CA files (what `keadm gettoken` prints).
    pub(crate) fn token(&self) -> Result<String> {
        let text = fs::read_to_string(&self.config)?;
        let cfg = CloudCoreConfig::from_yaml(&text)?;
        let hub = &cfg.modules.cloud_hub;
        let ca = ke_cloud::certs::CertAuthority::load_files(
            Path::new(&hub.tls_ca_file),
            Path::new(&hub.tls_ca_key_file),
        )?;
        let clock = ke_core::SystemClock;
        Ok(ca.join_token(&clock, hub.token_refresh()).to_string())
    }

    pub(crate) async fn metrics_text(&self) -> Result<String> {
        get(self.metrics, "/metrics").await
    }
}

/// One edgemark process and its endpoint.
pub(crate) struct Mark {
    pub(crate) proc: Proc,
    pub(crate) addr: SocketAddr,
}

/// Starts edgemark processes for `nodes` nodes named `edge-<i>`, each dialling from its own
/// four loopback addresses (`127.0.<k+1>.1..=4`).
pub(crate) async fn start_marks(
    dir: &Path,
    cloud: &Cloud,
    token: &str,
    sc: &simulator::Scenario,
    periods: (u64, u64, u64),
    threads: u16,
) -> Result<Vec<Mark>> {
    let (heartbeat, status, lease) = periods;
    let nodes = sc.fleet.nodes;
    let bin = binary("edgemark")?;
    let mut marks = Vec::new();
    for (k, from) in (0..nodes).step_by(NODES_PER_EDGEMARK).enumerate() {
        let count = NODES_PER_EDGEMARK.min(nodes - from);
        let mdir = dir.join(format!("edgemark-{k}"));
        fs::create_dir_all(&mdir)?;
        let addr_file = mdir.join("addr");
        let sources: Vec<String> = (1..=4).map(|h| format!("127.0.{}.{h}", k + 1)).collect();
        let mut cmd = Command::new(&bin);
        cmd.arg("--cloudcore")
            .arg(cloud.ws.to_string())
            .arg("--cert-port")
            .arg(cloud.cert_port.to_string())
            .args(["--from", &from.to_string(), "--count", &count.to_string()])
            .arg("--data-dir")
            .arg(mdir.join("nodes"))
            .arg("--addr-file")
            .arg(&addr_file)
            .arg("--source-ips")
            .arg(sources.join(","))
            .args(["--heartbeat", &heartbeat.to_string()])
            .args(["--status-period", &status.to_string()])
            .args(["--lease-period", &lease.to_string()])
            .args(["--worker-threads", &threads.to_string()])
            .args([
                "--devices-per-node",
                &sc.fleet.devices_per_node.to_string(),
                "--twin-period",
                &sc.edge.twin_report_period_s.to_string(),
                "--device-sensors",
                &sc.edge.device_sensors.join(","),
                "--device-actuators",
                &sc.edge.device_actuators.join(","),
            ])
            .env("EDGEMARK_TOKEN", token)
            .env("RUST_LOG", "warn");
        let mut proc = Proc::spawn(&mut cmd, mdir.join("edgemark.log"))?;
        let addr = wait_addr(&addr_file, &mut proc).await?;
        marks.push(Mark { proc, addr });
    }
    Ok(marks)
}

async fn wait_addr(file: &Path, proc: &mut Proc) -> Result<SocketAddr> {
    for _ in 0..300 {
        if let Ok(text) = fs::read_to_string(file)
            && let Ok(a) = text.trim().parse()
        {
            return Ok(a);
        }
        if !proc.alive() {
            bail!("edgemark exited at start:\n{}", proc.tail());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("edgemark did not report its endpoint:\n{}", proc.tail())
}

/// `GET` on a local endpoint; the body when the status is 200.
pub(crate) async fn get(addr: SocketAddr, path: &str) -> Result<String> {
    call(addr, "GET", path).await
}

/// A request on a local endpoint; the body when the status is 200.
pub(crate) async fn call(addr: SocketAddr, method: &str, path: &str) -> Result<String> {
    let (status, body) =
        ke_net::process::http_request(addr, method, path, Duration::from_secs(60)).await?;
    if status != 200 {
        bail!("{method} {addr}{path}: HTTP {status}: {}", body.trim());
    }
    Ok(body)
}

/// CPU seconds (user + system) and resident bytes of a process, from `/proc`.
pub(crate) fn usage(pid: u32) -> Option<(f64, u64)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some((ticks / clock_ticks(), kib * 1024))
}

/// `sysconf(_SC_CLK_TCK)`: 100 on Linux everywhere that matters.
fn clock_ticks() -> f64 {
    100.0
}

/// A metric's value from Prometheus text (the first sample whose name and labels start
/// with `prefix`), 0 if absent.
pub(crate) fn metric(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit_once(' '))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0.0)
}

/// Sum of every sample of metric family `name` (all label sets).
pub(crate) fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum()
}
