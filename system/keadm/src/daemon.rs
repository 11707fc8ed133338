//! Starting, finding and stopping the daemons keadm runs in the background.

use std::{
    fs,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::{Context as _, bail};
use ke_net::Transport as _;
use rustix::process::{Pid, Signal};

/// A daemon keadm manages: its binary name and its files in the data dir.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Daemon {
    pub(crate) name: &'static str,
}

pub(crate) const CLOUDCORE: Daemon = Daemon { name: "cloudcore" };
pub(crate) const EDGECORE: Daemon = Daemon { name: "edgecore" };

impl Daemon {
    pub(crate) fn pid_file(self, dir: &Path) -> PathBuf {
        dir.join(format!("{}.pid", self.name))
    }

    pub(crate) fn log_file(self, dir: &Path) -> PathBuf {
        dir.join(format!("{}.log", self.name))
    }

    pub(crate) fn config_file(self, dir: &Path) -> PathBuf {
        dir.join(format!("{}.yaml", self.name))
    }

    /// The binary: `$<NAME>_BIN`, else next to keadm, else on `PATH`.
    pub(crate) fn binary(self) -> PathBuf {
        let var = format!("{}_BIN", self.name.to_uppercase());
        if let Some(p) = std::env::var_os(var) {
            return PathBuf::from(p);
        }
        if let Ok(me) = std::env::current_exe()
            && let Some(dir) = me.parent()
        {
            let p = dir.join(self.name);
            if p.is_file() {
                return p;
            }
        }
        PathBuf::from(self.name)
    }

    /// The pid in the pid file, if the file exists and that process is alive.
    pub(crate) fn running(self, dir: &Path) -> Option<i32> {
        let text = fs::read_to_string(self.pid_file(dir)).ok()?;
        let pid: i32 = text.trim().parse().ok()?;
        alive(pid).then_some(pid)
    }

    /// Starts the daemon detached (own process group, stdio to the log file) with
    /// `--config <dir>/<name>.yaml`, and writes the pid file.
    pub(crate) fn spawn(self, dir: &Path) -> anyhow::Result<i32> {
        if let Some(pid) = self.running(dir) {
            bail!(
                "{} is already running from {} (pid {pid}); run `keadm reset --data-dir {}` first",
                self.name,
                dir.display(),
                dir.display()
            );
        }
        let log_path = self.log_file(dir);
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("opening {}", log_path.display()))?;
        let err = log.try_clone().context("duplicating the log file")?;
        let bin = self.binary();
        let child = {
            use std::os::unix::process::CommandExt as _;
            Command::new(&bin)
                .arg("--config")
                .arg(self.config_file(dir))
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(err)
                .process_group(0)
                .spawn()
                .with_context(|| format!("starting {}", bin.display()))?
        };
        let pid = i32::try_from(child.id()).context("pid out of range")?;
        fs::write(self.pid_file(dir), format!("{pid}\n")).context("writing the pid file")?;
        // The child is not waited for: it outlives keadm. Its exit status is reaped by init.
        drop(child);
        Ok(pid)
    }

    /// The last lines of the log, for error messages.
    pub(crate) fn log_tail(self, dir: &Path) -> String {
        let text = fs::read_to_string(self.log_file(dir)).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// Stops the daemon: SIGTERM, then SIGKILL after `grace`. True if one was running.
    pub(crate) async fn stop(self, dir: &Path, grace: Duration) -> bool {
        let Some(pid) = self.running(dir) else {
            return false;
        };
        signal(pid, Signal::TERM);
        let deadline = tokio::time::Instant::now() + grace;
        while alive(pid) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if alive(pid) {
            signal(pid, Signal::KILL);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        true
    }
}

fn signal(pid: i32, sig: Signal) {
    if let Some(pid) = Pid::from_raw(pid) {
        let _ = rustix::process::kill_process(pid, sig);
    }
}

/// True if a process `pid` exists and is not a zombie.
pub(crate) fn alive(pid: i32) -> bool {
    let Some(p) = Pid::from_raw(pid) else {
        return false;
    };
    if rustix::process::test_kill_process(p).is_err() {
        return false;
    }
    // A zombie (exited, not yet reaped) still answers kill(0).
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat
        .rsplit_once(") ")
        .and_then(|(_, rest)| rest.chars().next());
    state != Some('Z')
}

/// `GET path` over plain HTTP/1.1 on `addr`; the body if the status is 200.
pub(crate) async fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<String> {
    let (status, body) =
        ke_net::process::http_request(addr, "GET", path, Duration::from_secs(5)).await?;
    if status != 200 {
        bail!("HTTP {status}");
    }
    Ok(body)
}

/// Polls `ready` every 200 ms until it returns true, the daemon dies, or `timeout` passes.
pub(crate) async fn wait_ready<F, Fut>(
    d: Daemon,
    dir: &Path,
    pid: i32,
    timeout: Duration,
    mut ready: F,
) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if ready().await {
            return Ok(());
        }
        if !alive(pid) {
            bail!(
                "{} exited during startup; the end of {}:\n{}",
                d.name,
                d.log_file(dir).display(),
                d.log_tail(dir)
            );
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "{} did not become ready within {timeout:?}; the end of {}:\n{}",
                d.name,
                d.log_file(dir).display(),
                d.log_tail(dir)
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A free TCP port on 127.0.0.1 (bound, then released).
pub(crate) async fn free_port() -> anyhow::Result<u16> {
    let l = ke_net::TokioTransport
        .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .context("finding a free port")?;
    Ok(ke_net::Listener::local_addr(&l)?.port())
}
