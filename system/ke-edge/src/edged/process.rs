//! [`ProcessRuntime`]: runs each container's `command` + `args` as a child process of
//! edgecore (tokio::process; no threads). Images, resource limits and isolation are out of
//! scope: this is a process supervisor with Kubernetes semantics.
//!
//! *Layout.* `<root>/pods/<uid>/containers/<name>/` holds `output.log` (stdout and stderr,
//! appended across restarts), `pid` (for orphan cleanup) and `root/`, the container's working
//! directory, recreated empty at each start like a fresh writable layer.
//!
//! *How a container finds its mounts.* Processes share the host filesystem, so a mount cannot
//! appear at its absolute `mountPath`. Instead:
//! 1. each mount is a symlink at `root/<mountPath>` pointing at the materialised volume, and
//!    `$EDGEFLEET_ROOT` names `root/`; so `$EDGEFLEET_ROOT/etc/config/mode` always works, and
//!    so do relative paths, since `root/` is the working directory (`workingDir` is likewise
//!    taken relative to `root/`);
//! 2. in `command`, `args` and `env` values, a mount path standing as a whole path prefix
//!    (`/etc/config`, `/etc/config/mode`, but not `/x/etc/config` or `/etc/configs`) is
//!    rewritten to the host path, so an unmodified `cat /etc/config/mode` reads the volume.
//!    Paths a program builds at run time are not rewritten; use `$EDGEFLEET_ROOT` there.
//!
//! Nothing is ever created at an absolute host path: writing into `/etc` on the host because
//! a pod said so would be neither safe nor reversible.
//!
//! *Environment.* The child's environment is cleared, then: `PATH` (a default unless the pod
//! sets it), `HOSTNAME` (the pod name), the pod's env, and `EDGEFLEET_ROOT`,
//! `EDGEFLEET_POD_DIR`, `EDGEFLEET_CONTAINER_ID`.
//!
//! *Stopping and orphans.* Each container is the leader of its own process group; a stop sends
//! SIGTERM to the group, then SIGKILL after the grace period, and the group is SIGKILLed once
//! the main process exits (no stray children). If edgecore dies without stopping its pods,
//! the children live on; [`Runtime::remove_orphans`] finds them on the next start by their
//! `EDGEFLEET_POD_DIR` marker in `/proc/<pid>/environ` and kills them before the pods are
//! started again (Linux only).

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    os::unix::process::ExitStatusExt,
    path::{Component, Path, PathBuf},
    process::{ExitStatus, Stdio},
    time::Duration,
};

use rustix::process::{Pid, Signal, kill_process, kill_process_group};
use tokio::{
    process::{Child, Command},
    sync::{mpsc, oneshot},
};
use tracing::{debug, info, warn};

use super::process_streams::{Contexts, ExecContext, ProcessStreams};
use super::runtime::{
    AdoptedContainer, ContainerConfig, ContainerId, Mount, Runtime, RuntimeError, RuntimeEvent,
};
use crate::edged::runtime::SandboxConfig;

/// `PATH` given to containers that do not set one (the usual container image default).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The env var marking a process as belonging to a pod directory (orphan detection).
const POD_DIR_VAR: &str = "EDGEFLEET_POD_DIR";

/// Configuration of the process runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessConfig {
    /// Data directory; pods live under `<root_dir>/pods/<uid>/containers/`. Use the same root
    /// as the pod manager.
    pub root_dir: PathBuf,
    /// Exit events buffered before container supervisors wait for the manager.
    pub events_max: usize,
}

impl ProcessConfig {
    /// Defaults under `root_dir`: 256 buffered events.
    pub fn new(root_dir: impl Into<PathBuf>) -> Self {
        Self {
            root_dir: root_dir.into(),
            events_max: 256,
        }
    }
}

/// A container that has not reported its exit yet.
#[derive(Debug)]
struct Live {
    uid: String,
    /// The container's name (its exec context is dropped at its exit).
    name: String,
    /// Asks the supervisor to stop the process (with this grace); taken on first use.
    stop: Option<oneshot::Sender<Duration>>,
}

/// The process runtime (see the module docs).
#[derive(Debug)]
pub struct ProcessRuntime {
    root: PathBuf,
    events_tx: mpsc::Sender<RuntimeEvent>,
    events_rx: mpsc::Receiver<RuntimeEvent>,
    live: BTreeMap<ContainerId, Live>,
    /// How running containers were started, for exec.
    contexts: Contexts,
}

impl ProcessRuntime {
    /// A runtime keeping its files under `cfg.root_dir`.
    pub fn new(cfg: ProcessConfig) -> Self {
        let (events_tx, events_rx) = mpsc::channel(cfg.events_max.max(1));
        Self {
            root: cfg.root_dir,
            events_tx,
            events_rx,
            live: BTreeMap::new(),
            contexts: Contexts::default(),
        }
    }

    /// Logs and exec for this runtime's containers.
    pub fn streams(&self) -> ProcessStreams {
        ProcessStreams {
            root: self.root.clone(),
            contexts: self.contexts.clone(),
        }
    }

    fn pods_dir(&self) -> PathBuf {
        self.root.join("pods")
    }

    fn pod_dir(&self, uid: &str) -> PathBuf {
        self.pods_dir().join(uid)
    }

    fn spawn(
        &self,
        pod: &SandboxConfig,
        c: &ContainerConfig,
        id: &ContainerId,
    ) -> Result<Child, RuntimeError> {
        let start_err = |message: String, source: Option<std::io::Error>| RuntimeError::Start {
            container: c.name.clone(),
            message,
            source,
        };
        let pod_dir = self.pod_dir(&pod.uid);
        let cdir = pod_dir.join("containers").join(&c.name);
        let root = prepare_root(&cdir, &c.mounts).map_err(|(m, e)| start_err(m, e))?;
        let cwd = match &c.working_dir {
            Some(dir) => {
                let dir = root.join(relative(dir).map_err(|m| start_err(m, None))?);
                fs::create_dir_all(&dir).map_err(|e| start_err("working dir".into(), Some(e)))?;
                dir
            }
            None => root.clone(),
        };
        let subst = substitutions(&c.mounts, &root);
        let argv: Vec<String> = c
            .command
            .iter()
            .chain(&c.args)
            .map(|a| substitute(a, &subst))
            .collect();
        let Some((program, args)) = argv.split_first() else {
            return Err(start_err(
                "no command given (images are not run)".into(),
                None,
            ));
        };
        let log =
            open_log(&cdir.join("output.log")).map_err(|e| start_err("log".into(), Some(e)))?;
        let mut cmd = Command::new(program);
        cmd.args(args)
            .env_clear()
            .env("PATH", DEFAULT_PATH)
            .env("HOSTNAME", &pod.name)
            .envs(c.env.iter().map(|(k, v)| (k, substitute(v, &subst))))
            .env("EDGEFLEET_ROOT", &root)
            .env(POD_DIR_VAR, &pod_dir)
            .env("EDGEFLEET_CONTAINER_ID", &id.0)
            .current_dir(&cwd)
            .stdin(Stdio::null())
            .stdout(log.0)
            .stderr(log.1)
            .process_group(0)
            .kill_on_drop(false);
        let child = cmd
            .spawn()
            .map_err(|e| start_err(format!("exec {program}: {e}"), Some(e)))?;
        let mut env = vec![
            ("PATH".to_owned(), DEFAULT_PATH.to_owned()),
            ("HOSTNAME".to_owned(), pod.name.clone()),
        ];
        env.extend(
            c.env
                .iter()
                .map(|(k, v)| (k.clone(), substitute(v, &subst))),
        );
        env.push(("EDGEFLEET_ROOT".into(), root.display().to_string()));
        env.push((POD_DIR_VAR.into(), pod_dir.display().to_string()));
        let context = ExecContext { env, cwd, subst };
        if let Ok(mut m) = self.contexts.lock() {
            m.insert((pod.uid.clone(), c.name.clone()), context);
        }
        if let Some(pid) = child.id()
            && let Err(e) = fs::write(cdir.join("pid"), pid.to_string())
        {
            warn!(error = %e, %id, "cannot record pid");
        }
        Ok(child)
    }
}

impl Runtime for ProcessRuntime {
    fn name(&self) -> &'static str {
        "process"
    }

    fn streams(&self) -> Option<std::sync::Arc<dyn super::streams::ContainerStreams>> {
        Some(std::sync::Arc::new(ProcessRuntime::streams(self)))
    }

    async fn remove_orphans(
        &mut self,
        keep: &BTreeSet<String>,
    ) -> Result<Vec<AdoptedContainer>, RuntimeError> {
        let pods_dir = self.pods_dir();
        // Stray processes of kept pods die too: they are started afresh (nothing is adopted).
        kill_marked_processes(&pods_dir);
        let Ok(entries) = fs::read_dir(&pods_dir) else {
            return Ok(Vec::new());
        };
        for entry in entries.flatten() {
            let uid = entry.file_name().to_string_lossy().into_owned();
            if !keep.contains(&uid) {
                remove_sandbox_dir(&entry.path()).map_err(|source| RuntimeError::Sandbox {
                    uid,
                    op: "remove orphaned sandbox",
                    source,
                })?;
            }
        }
        Ok(Vec::new())
    }

    async fn start_pod(&mut self, pod: &SandboxConfig) -> Result<(), RuntimeError> {
        fs::create_dir_all(self.pod_dir(&pod.uid).join("containers")).map_err(|source| {
            RuntimeError::Sandbox {
                uid: pod.uid.clone(),
                op: "create sandbox",
                source,
            }
        })
    }

    async fn start_container(
        &mut self,
        pod: &SandboxConfig,
        c: &ContainerConfig,
    ) -> Result<ContainerId, RuntimeError> {
        let id = ContainerId(format!("{}-{}-{}", pod.uid, c.name, c.attempt));
        let child = self.spawn(pod, c, &id)?;
        let pgid = child
            .id()
            .and_then(|p| i32::try_from(p).ok())
            .and_then(Pid::from_raw);
        info!(%id, pid = ?pgid, pod = %pod.name, container = %c.name, "container started");
        let (stop_tx, stop_rx) = oneshot::channel();
        tokio::spawn(supervise(
            child,
            pgid,
            id.clone(),
            stop_rx,
            self.events_tx.clone(),
        ));
        self.live.insert(
            id.clone(),
            Live {
                uid: pod.uid.clone(),
                name: c.name.clone(),
                stop: Some(stop_tx),
            },
        );
        Ok(id)
    }

    async fn stop_container(
        &mut self,
        id: &ContainerId,
        grace: Duration,
    ) -> Result<(), RuntimeError> {
        if let Some(stop) = self.live.get_mut(id).and_then(|l| l.stop.take()) {
            debug!(%id, ?grace, "stopping container");
            // A closed receiver means the process already exited; its event is on the way.
            let _ = stop.send(grace);
        }
        Ok(())
    }

    async fn stop_pod(&mut self, uid: &str) -> Result<(), RuntimeError> {
        remove_sandbox_dir(&self.pod_dir(uid)).map_err(|source| RuntimeError::Sandbox {
            uid: uid.to_owned(),
            op: "remove sandbox",
            source,
        })
    }

    fn pod_status(&self, uid: &str) -> Vec<ContainerId> {
        self.live
            .iter()
            .filter(|(_, l)| l.uid == uid)
            .map(|(id, _)| id.clone())
            .collect()
    }

    async fn next_event(&mut self) -> Option<RuntimeEvent> {
        let event = self.events_rx.recv().await?;
        let RuntimeEvent::Exited { id, .. } = &event;
        if let Some(live) = self.live.remove(id)
            && let Ok(mut m) = self.contexts.lock()
        {
            m.remove(&(live.uid, live.name));
        }
        Some(event)
    }
}

/// Waits for the child (or a stop request), cleans up its process group, reports the exit.
/// If the runtime is dropped without stopping it, the process keeps running (as after a crash
/// of edgecore) and is found by `remove_orphans` next time.
async fn supervise(
    mut child: Child,
    pgid: Option<Pid>,
    id: ContainerId,
    mut stop_rx: oneshot::Receiver<Duration>,
    events: mpsc::Sender<RuntimeEvent>,
) {
    let status = tokio::select! {
        status = child.wait() => status,
        grace = &mut stop_rx => match grace {
            Ok(grace) => terminate(&mut child, pgid, grace).await,
            Err(_) => child.wait().await,
        },
    };
    signal_group(pgid, Signal::KILL);
    let (exit_code, signal) = match status {
        Ok(status) => exit_of(status),
        Err(e) => {
            warn!(error = %e, %id, "waiting for container failed");
            (128, None)
        }
    };
    info!(%id, exit_code, ?signal, "container exited");
    let _ = events
        .send(RuntimeEvent::Exited {
            id,
            exit_code,
            signal,
        })
        .await;
}

/// SIGTERM to the group, SIGKILL after `grace`.
async fn terminate(
    child: &mut Child,
    pgid: Option<Pid>,
    grace: Duration,
) -> std::io::Result<ExitStatus> {
    signal_group(pgid, Signal::TERM);
    match tokio::time::timeout(grace, child.wait()).await {
        Ok(status) => status,
        Err(_) => {
            signal_group(pgid, Signal::KILL);
            child.wait().await
        }
    }
}

fn signal_group(pgid: Option<Pid>, signal: Signal) {
    if let Some(pgid) = pgid {
        // ESRCH (group already gone) is the normal case after a clean exit.
        let _ = kill_process_group(pgid, signal);
    }
}

/// `(exit code, signal)` as containerd reports them: a signal death is `128 + signal`.
pub(super) fn exit_of(status: ExitStatus) -> (i32, Option<i32>) {
    match (status.code(), status.signal()) {
        (Some(code), _) => (code, None),
        (None, Some(sig)) => (128 + sig, Some(sig)),
        (None, None) => (128, None),
    }
}

/// Recreates `<cdir>/root` with one symlink per mount.
fn prepare_root(
    cdir: &Path,
    mounts: &[Mount],
) -> Result<PathBuf, (String, Option<std::io::Error>)> {
    let root = cdir.join("root");
    let io = |what: &str| {
        let what = what.to_owned();
        move |e: std::io::Error| (what, Some(e))
    };
    if root.exists() {
        fs::remove_dir_all(&root).map_err(io("clear root"))?;
    }
    fs::create_dir_all(&root).map_err(io("create root"))?;
    for m in mounts {
        let rel = relative(&m.container_path).map_err(|msg| (msg, None))?;
        if rel.as_os_str().is_empty() {
            return Err(("cannot mount over /".to_owned(), None));
        }
        let link = root.join(rel);
        if let Some(parent) = link.parent() {
            fs::create_dir_all(parent).map_err(io("create mount parent"))?;
        }
        std::os::unix::fs::symlink(&m.host_path, &link).map_err(io("link mount"))?;
    }
    Ok(root)
}

/// An absolute container path as a relative one; `..` is refused.
fn relative(path: &str) -> Result<PathBuf, String> {
    let mut out = PathBuf::new();
    for comp in Path::new(path).components() {
        match comp {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(c) => out.push(c),
            Component::ParentDir | Component::Prefix(_) => {
                return Err(format!("path {path:?} may not contain '..'"));
            }
        }
    }
    Ok(out)
}

fn open_log(path: &Path) -> std::io::Result<(fs::File, fs::File)> {
    let file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let dup = file.try_clone()?;
    Ok((file, dup))
}

/// `(mount path, host path)` pairs, longest mount path first (so `/a/b` wins over `/a`).
fn substitutions(mounts: &[Mount], root: &Path) -> Vec<(String, String)> {
    let mut subst: Vec<(String, String)> = mounts
        .iter()
        .filter(|m| m.container_path.len() > 1)
        .map(|m| {
            let path = m.container_path.trim_end_matches('/').to_owned();
            let host = root.join(path.trim_start_matches('/'));
            (path, host.to_string_lossy().into_owned())
        })
        .collect();
    subst.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
    subst
}

fn is_path_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | '~')
}

/// Rewrites mount paths that stand as whole path prefixes in `s` (see the module docs).
pub(crate) fn substitute(s: &str, subst: &[(String, String)]) -> String {
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let prev_ok = s[..i].chars().next_back().is_none_or(|c| !is_path_char(c));
        let hit = subst.iter().find(|(from, _)| {
            prev_ok
                && s[i..].starts_with(from.as_str())
                && s[i + from.len()..]
                    .chars()
                    .next()
                    .is_none_or(|c| c == '/' || !is_path_char(c))
        });
        if let Some((from, to)) = hit {
            out.push_str(to);
            i += from.len();
        } else if let Some(c) = s[i..].chars().next() {
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// SIGKILLs every process whose environment says it belongs to a pod under `pods_dir`.
fn kill_marked_processes(pods_dir: &Path) {
    let Ok(procs) = fs::read_dir("/proc") else {
        return;
    };
    let marker = format!("{POD_DIR_VAR}={}/", pods_dir.display());
    let own = std::process::id();
    for entry in procs.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == own {
            continue;
        }
        let Ok(environ) = fs::read(entry.path().join("environ")) else {
            continue;
        };
        let marked = environ
            .split(|b| *b == 0)
            .any(|var| var.starts_with(marker.as_bytes()));
        if marked && let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
            info!(
                pid = pid.as_raw_nonzero().get(),
                "killing orphaned container process"
            );
            let _ = kill_process(pid, Signal::KILL);
        }
    }
}

/// Removes the runtime's part of a sandbox (`containers/`), then the pod directory if empty.
fn remove_sandbox_dir(pod_dir: &Path) -> std::io::Result<()> {
    let containers = pod_dir.join("containers");
    if containers.exists() {
        fs::remove_dir_all(&containers)?;
    }
    let _ = fs::remove_dir(pod_dir);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: mount paths are rewritten only as whole path prefixes. Method: table over
    /// commands with the mount at start, inside quotes, as a prefix of a longer name, inside
    /// another path, and a nested mount that must win over its parent.
    #[test]
    fn substitution_respects_path_boundaries() {
        let s = vec![
            ("/etc/app/sub".to_owned(), "/R/etc/app/sub".to_owned()),
            ("/etc/app".to_owned(), "/R/etc/app".to_owned()),
        ];
        let cases = [
            ("cat /etc/app/mode", "cat /R/etc/app/mode"),
            ("cat '/etc/app'", "cat '/R/etc/app'"),
            ("X=/etc/app;", "X=/R/etc/app;"),
            ("/etc/apps", "/etc/apps"),
            ("/x/etc/app", "/x/etc/app"),
            ("/etc/app/sub/f", "/R/etc/app/sub/f"),
            ("échec /etc/app", "échec /R/etc/app"),
        ];
        for (input, want) in cases {
            assert_eq!(substitute(input, &s), want, "{input}");
        }
    }

    /// Goal: container paths are confined. Method: `..` is refused, absolute paths become
    /// relative.
    #[test]
    fn relative_paths_are_confined() {
        assert_eq!(relative("/etc/app").unwrap(), PathBuf::from("etc/app"));
        assert!(relative("/etc/../../x").is_err());
    }
}
