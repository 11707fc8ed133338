//! [`SimRuntime`]: a [`Runtime`] for the fleet simulator. No processes, no files, no tasks:
//! a container is a small in-memory record (a few hundred bytes), and its exit is a deadline
//! in `tokio::time`, so it runs under turmoil and under tokio's paused clock alike and is
//! deterministic.
//!
//! *Behaviour per container*, from the container's environment (`env`, after `envFrom` and
//! `$(VAR)` resolution, so a ConfigMap can drive it too); anything unset falls back to
//! [`SimConfig::defaults`] (by default: run until stopped):
//!
//! - `EDGEFLEET_SIM_EXIT_AFTER=5s`: exit by itself this long after starting (units `ms`,
//!   `s`, `m`, `h`; a whole number).
//! - `EDGEFLEET_SIM_EXIT_CODE=1`: the code of that exit (default 0).
//! - `EDGEFLEET_SIM_CRASH_ATTEMPTS=3`: only starts whose `attempt` is below this exit by
//!   themselves; later ones run until stopped (a crash loop that heals).
//! - `EDGEFLEET_SIM_STOP_AFTER=2s`: on a stop request, exit with code 0 after this long (a
//!   SIGTERM handler); beyond the grace period the container is killed at the grace period
//!   (code 137, signal 9). Unset: it dies of SIGTERM at once (code 143, signal 15).
//! - `EDGEFLEET_SIM_START_ERROR=msg`: starting fails with this message (kubelet's
//!   `StartError`; the restart policy then applies).
//!
//! Pod annotations are not consulted: the [`Runtime`] seam hands over the resolved container
//! only, and env is where a pod spec (or a ConfigMap through `envFrom`) says it.
//!
//! An unparsable value is a start error naming the variable, so a typo shows in the pod
//! status instead of being ignored.
//!
//! *Events.* Every live container that will exit has one entry in a deadline queue ordered
//! by (instant, id); [`Runtime::next_event`] sleeps until the first one and reports it. It
//! changes state only after the sleep completes, in the same poll, so it is cancel-safe.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::time::{Instant, sleep_until};
use tracing::{debug, info};

use super::runtime::{
    AdoptedContainer, ContainerConfig, ContainerId, Runtime, RuntimeError, RuntimeEvent,
    SandboxConfig,
};

/// Env var: exit by itself this long after starting.
pub const EXIT_AFTER: &str = "EDGEFLEET_SIM_EXIT_AFTER";
/// Env var: the code of a self-exit.
pub const EXIT_CODE: &str = "EDGEFLEET_SIM_EXIT_CODE";
/// Env var: only attempts below this number exit by themselves.
pub const CRASH_ATTEMPTS: &str = "EDGEFLEET_SIM_CRASH_ATTEMPTS";
/// Env var: how long a stop takes (a SIGTERM handler that exits 0).
pub const STOP_AFTER: &str = "EDGEFLEET_SIM_STOP_AFTER";
/// Env var: starting fails with this message.
pub const START_ERROR: &str = "EDGEFLEET_SIM_START_ERROR";

/// SIGTERM and SIGKILL numbers, as containerd reports them.
const SIGTERM: i32 = 15;
const SIGKILL: i32 = 9;

/// How a simulated container behaves (see the module docs for the env variables).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimBehaviour {
    /// Exit by itself this long after starting; `None`: run until stopped.
    pub exit_after: Option<Duration>,
    /// The exit code of a self-exit.
    pub exit_code: i32,
    /// Only attempts below this exit by themselves; `None`: every attempt does.
    pub crash_attempts: Option<u32>,
    /// Time to exit (code 0) after a stop request; `None`: die of SIGTERM at once.
    pub stop_after: Option<Duration>,
    /// Starting fails with this message.
    pub start_error: Option<String>,
}

impl SimBehaviour {
    /// `self` overridden by the `EDGEFLEET_SIM_*` entries of `env` (later entries win, as in
    /// Kubernetes). Errors name the variable whose value does not parse.
    pub fn with_env(&self, env: &[(String, String)]) -> Result<Self, String> {
        let mut b = self.clone();
        for (k, v) in env {
            let bad = || format!("{k}={v:?} is not valid");
            match k.as_str() {
                EXIT_AFTER => b.exit_after = Some(parse_duration(v).ok_or_else(bad)?),
                EXIT_CODE => b.exit_code = v.trim().parse().map_err(|_| bad())?,
                CRASH_ATTEMPTS => b.crash_attempts = Some(v.trim().parse().map_err(|_| bad())?),
                STOP_AFTER => b.stop_after = Some(parse_duration(v).ok_or_else(bad)?),
                START_ERROR => b.start_error = Some(v.clone()),
                _ => {}
            }
        }
        Ok(b)
    }
}

/// `250ms`, `5s`, `2m`, `1h` (a whole number and a unit).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = t.split_at(split);
    let n: u64 = n.parse().ok()?;
    match unit {
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => Some(Duration::from_secs(n.checked_mul(60)?)),
        "h" => Some(Duration::from_secs(n.checked_mul(3600)?)),
        _ => None,
    }
}

/// Configuration of the simulated runtime.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimConfig {
    /// Behaviour of containers whose env says nothing (default: run until stopped).
    pub defaults: SimBehaviour,
}

/// How a pending exit will be reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Exit {
    at: Instant,
    code: i32,
    signal: Option<i32>,
}

/// A container that has not reported its exit yet.
#[derive(Debug)]
struct Live {
    uid: String,
    stop_after: Option<Duration>,
    /// Its entry in the deadline queue, if it will exit.
    exit: Option<Exit>,
    /// A stop was requested (later stops are ignored, like a second SIGTERM).
    stopping: bool,
}

/// Counters a simulated runtime keeps, readable from outside the pod manager (checkers,
/// capacity reports, tests) through [`SimRuntime::counters`].
#[derive(Debug, Default)]
pub struct SimCounters {
    started: AtomicU64,
    exited: AtomicU64,
    removed: AtomicU64,
}

impl SimCounters {
    /// Containers started so far.
    pub fn started(&self) -> u64 {
        self.started.load(Ordering::Relaxed)
    }

    /// Exits reported so far.
    pub fn exited(&self) -> u64 {
        self.exited.load(Ordering::Relaxed)
    }

    /// Containers dropped without an exit event (orphans, removed sandboxes).
    pub fn removed(&self) -> u64 {
        self.removed.load(Ordering::Relaxed)
    }

    /// Containers currently alive (started, neither exited nor removed).
    pub fn live(&self) -> u64 {
        self.started()
            .saturating_sub(self.exited())
            .saturating_sub(self.removed())
    }
}

/// The simulated runtime (see the module docs).
#[derive(Debug, Default)]
pub struct SimRuntime {
    cfg: SimConfig,
    counters: Arc<SimCounters>,
    sandboxes: BTreeSet<String>,
    live: BTreeMap<ContainerId, Live>,
    /// Pending exits, earliest first.
    deadlines: BTreeSet<(Instant, ContainerId)>,
}

impl SimRuntime {
    /// An empty runtime.
    pub fn new(cfg: SimConfig) -> Self {
        Self {
            cfg,
            ..Self::default()
        }
    }

    /// A handle on this runtime's counters (shared; stays valid after the runtime moves
    /// into a pod manager).
    pub fn counters(&self) -> Arc<SimCounters> {
        self.counters.clone()
    }

    /// Sets or moves `id`'s exit.
    fn schedule(&mut self, id: &ContainerId, exit: Exit) {
        let Some(live) = self.live.get_mut(id) else {
            return;
        };
        if let Some(old) = live.exit.replace(exit) {
            self.deadlines.remove(&(old.at, id.clone()));
        }
        self.deadlines.insert((exit.at, id.clone()));
    }

    /// Forgets `id` without an event (orphans, removed sandboxes).
    fn forget(&mut self, id: &ContainerId) {
        if let Some(l) = self.live.remove(id) {
            self.counters.removed.fetch_add(1, Ordering::Relaxed);
            if let Some(e) = l.exit {
                self.deadlines.remove(&(e.at, id.clone()));
            }
        }
    }

    /// Removes and reports the first exit if it is due.
    fn pop_due(&mut self, now: Instant) -> Option<RuntimeEvent> {
        let (at, id) = self.deadlines.first()?.clone();
        if at > now {
            return None;
        }
        self.deadlines.pop_first();
        let live = self
            .live
            .remove(&id)
            .expect("invariant: every deadline belongs to a live container");
        let exit = live
            .exit
            .expect("invariant: a queued container has an exit");
        self.counters.exited.fetch_add(1, Ordering::Relaxed);
        info!(%id, exit_code = exit.code, signal = ?exit.signal, "container exited");
        Some(RuntimeEvent::Exited {
            id,
            exit_code: exit.code,
            signal: exit.signal,
        })
    }
}

impl Runtime for SimRuntime {
    fn name(&self) -> &'static str {
        "sim"
    }

    async fn remove_orphans(
        &mut self,
        keep: &BTreeSet<String>,
    ) -> Result<Vec<AdoptedContainer>, RuntimeError> {
        // Containers of kept pods are started afresh, so every live container goes.
        let ids: Vec<ContainerId> = self.live.keys().cloned().collect();
        for id in &ids {
            self.forget(id);
        }
        self.sandboxes.retain(|uid| keep.contains(uid));
        Ok(Vec::new())
    }

    async fn start_pod(&mut self, pod: &SandboxConfig) -> Result<(), RuntimeError> {
        self.sandboxes.insert(pod.uid.clone());
        Ok(())
    }

    async fn start_container(
        &mut self,
        pod: &SandboxConfig,
        c: &ContainerConfig,
    ) -> Result<ContainerId, RuntimeError> {
        let start_err = |message: String| RuntimeError::Start {
            container: c.name.clone(),
            message,
            source: None,
        };
        if !self.sandboxes.contains(&pod.uid) {
            return Err(start_err("pod sandbox not started".into()));
        }
        let b = self.cfg.defaults.with_env(&c.env).map_err(start_err)?;
        if let Some(message) = b.start_error {
            return Err(start_err(message));
        }
        let id = ContainerId(format!("{}-{}-{}", pod.uid, c.name, c.attempt));
        self.forget(&id);
        self.live.insert(
            id.clone(),
            Live {
                uid: pod.uid.clone(),
                stop_after: b.stop_after,
                exit: None,
                stopping: false,
            },
        );
        self.counters.started.fetch_add(1, Ordering::Relaxed);
        let crashes = b.crash_attempts.is_none_or(|n| c.attempt < n);
        if let Some(after) = b.exit_after.filter(|_| crashes) {
            let exit = Exit {
                at: Instant::now() + after,
                code: b.exit_code,
                signal: None,
            };
            self.schedule(&id, exit);
        }
        info!(%id, pod = %pod.name, container = %c.name, "container started");
        Ok(id)
    }

    async fn stop_container(
        &mut self,
        id: &ContainerId,
        grace: Duration,
    ) -> Result<(), RuntimeError> {
        let Some(live) = self.live.get_mut(id) else {
            return Ok(());
        };
        if live.stopping {
            return Ok(());
        }
        live.stopping = true;
        let now = Instant::now();
        let stop = match live.stop_after {
            None => Exit {
                at: now,
                code: 128 + SIGTERM,
                signal: Some(SIGTERM),
            },
            Some(d) if d <= grace => Exit {
                at: now + d,
                code: 0,
                signal: None,
            },
            Some(_) => Exit {
                at: now + grace,
                code: 128 + SIGKILL,
                signal: Some(SIGKILL),
            },
        };
        // A self-exit due before the stop completes wins.
        if live.exit.is_none_or(|e| e.at > stop.at) {
            debug!(%id, ?grace, "stopping container");
            self.schedule(id, stop);
        }
        Ok(())
    }

    async fn stop_pod(&mut self, uid: &str) -> Result<(), RuntimeError> {
        let ids: Vec<ContainerId> = self
            .live
            .iter()
            .filter(|(_, l)| l.uid == uid)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &ids {
            debug!(%id, "container removed with its sandbox");
            self.forget(id);
        }
        self.sandboxes.remove(uid);
        Ok(())
    }

    fn pod_status(&self, uid: &str) -> Vec<ContainerId> {
        self.live
            .iter()
            .filter(|(_, l)| l.uid == uid)
            .map(|(id, _)| id.clone())
            .collect()
    }

    async fn next_event(&mut self) -> Option<RuntimeEvent> {
        loop {
            let now = Instant::now();
            if let Some(event) = self.pop_due(now) {
                return Some(event);
            }
            match self.deadlines.first() {
                Some((at, _)) => sleep_until(*at).await,
                // Nothing will exit until the manager starts or stops something, which
                // drops this future first.
                None => std::future::pending::<()>().await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        edged::{Backoff, PodManager, PodManagerConfig, PodReport},
        metamanager::MetaStore,
    };
    use ke_core::FixedClock;
    use ke_proto::{Message, Route};
    use serde_json::{Value, json};
    use std::sync::Arc;
    use tokio::sync::{mpsc, oneshot};

    fn pod_msg(op: &str, name: &str, rv: u64, policy: &str, env: Value) -> Message {
        let mut obj = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"),
                         "resourceVersion": rv.to_string()},
            "spec": {"nodeName": "edge-1", "restartPolicy": policy,
                     "terminationGracePeriodSeconds": 5,
                     "containers": [{"name": "main", "image": "sim", "env": env}]},
        });
        if op == "update-deleting" {
            obj["metadata"]["deletionTimestamp"] = json!("2025-08-06T03:13:20Z");
            obj["metadata"]["deletionGracePeriodSeconds"] = json!(5);
        }
        let op = op.trim_end_matches("-deleting");
        let route = Route::new(
            "edgecontroller",
            "resource",
            op,
            format!("default/pod/{name}"),
        );
        Message::new(format!("{op}-{name}-{rv}"), 0, route, obj)
            .with_resource_version(rv.to_string())
    }

    /// A pod manager on a SimRuntime with an in-memory store, driven by `msgs`.
    struct Edge {
        store: MetaStore,
        tx: mpsc::Sender<Message>,
        reports: mpsc::Receiver<PodReport>,
        stop: oneshot::Sender<()>,
        task: tokio::task::JoinHandle<Result<(), crate::edged::Error>>,
        counters: Arc<SimCounters>,
        _dir: tempfile::TempDir,
    }

    fn start_edge() -> Edge {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = PodManagerConfig::new("edge-1", dir.path());
        cfg.backoff = Backoff {
            initial: Duration::from_secs(10),
            max: Duration::from_secs(40),
            reset_after: Duration::from_secs(600),
        };
        let store = MetaStore::open_in_memory().unwrap();
        let clock = Arc::new(FixedClock::new(1_754_450_000));
        let rt = SimRuntime::new(SimConfig::default());
        let counters = rt.counters();
        let manager = PodManager::new(cfg, rt, store.clone(), clock);
        let (tx, rx) = mpsc::channel(16);
        let (reports_tx, reports) = mpsc::channel(64);
        let (stop, stop_rx) = oneshot::channel::<()>();
        let task = tokio::spawn(manager.run(rx, reports_tx, async move {
            let _ = stop_rx.await;
        }));
        Edge {
            store,
            tx,
            reports,
            stop,
            task,
            counters,
            _dir: dir,
        }
    }

    impl Edge {
        async fn apply(&self, msg: Message) {
            assert!(self.store.apply(&msg).unwrap().changed());
            self.tx.send(msg).await.unwrap();
        }

        /// The next report about `name` satisfying `pred` within `within` (virtual time).
        async fn report_where(
            &mut self,
            name: &str,
            within: Duration,
            pred: impl Fn(&PodReport) -> bool,
        ) -> PodReport {
            let deadline = Instant::now() + within;
            loop {
                let r = tokio::time::timeout_at(deadline, self.reports.recv())
                    .await
                    .unwrap_or_else(|_| panic!("no matching report for {name}"))
                    .unwrap();
                let about = match &r {
                    PodReport::Status(s) => s.name == name,
                    _ => true,
                };
                if about && pred(&r) {
                    return r;
                }
            }
        }

        async fn shutdown(self) {
            self.stop.send(()).unwrap();
            self.task.await.unwrap().unwrap();
        }
    }

    fn status(r: &PodReport) -> Option<&Value> {
        match r {
            PodReport::Status(s) => Some(&s.status),
            _ => None,
        }
    }

    fn main_status(r: &PodReport) -> Option<&Value> {
        status(r).map(|s| &s["containerStatuses"][0])
    }

    /// Goal: a default sim container runs until its pod is deleted. Method: paused clock;
    /// insert a pod, wait for phase Running, let an hour pass (still running, no restarts),
    /// then delete it from the store and expect its container to be stopped.
    #[tokio::test(start_paused = true)]
    async fn pod_runs_until_deleted() {
        let mut e = start_edge();
        e.apply(pod_msg("insert", "web", 1, "Always", json!([])))
            .await;
        let r = e
            .report_where("web", Duration::from_secs(5), |r| {
                status(r).is_some_and(|s| s["phase"] == "Running")
            })
            .await;
        assert_eq!(main_status(&r).unwrap()["restartCount"], 0);
        assert!(
            main_status(&r).unwrap()["containerID"]
                .as_str()
                .unwrap()
                .starts_with("sim://")
        );
        tokio::time::sleep(Duration::from_secs(3600)).await;
        while let Ok(r) = e.reports.try_recv() {
            assert_eq!(main_status(&r).unwrap()["restartCount"], 0, "{r:?}");
        }
        assert_eq!(e.counters.live(), 1);
        e.apply(pod_msg("delete", "web", 2, "Always", json!([])))
            .await;
        for _ in 0..100 {
            if e.counters.live() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(e.counters.live(), 0);
        assert_eq!((e.counters.started(), e.counters.exited()), (1, 1));
        e.shutdown().await;
    }

    /// Goal: EDGEFLEET_SIM_EXIT_AFTER/EXIT_CODE make a container crash; under restartPolicy
    /// Always it is restarted with kubelet's back-off and restartCount rises, and the exit
    /// code shows in lastState. Method: paused clock, exit after 5 s with code 3.
    #[tokio::test(start_paused = true)]
    async fn exiting_container_restarts_with_backoff() {
        let mut e = start_edge();
        let env = json!([{"name": EXIT_AFTER, "value": "5s"},
                         {"name": EXIT_CODE, "value": "3"}]);
        let t0 = Instant::now();
        e.apply(pod_msg("insert", "crash", 1, "Always", env)).await;
        let r = e
            .report_where("crash", Duration::from_secs(120), |r| {
                main_status(r).is_some_and(|c| c["restartCount"] == 3 && c["ready"] == true)
            })
            .await;
        // Runs of 5 s, restarts after 0, 10 and 20 s of back-off: the third restart is due
        // at 3·5 + 0 + 10 + 20 = 45 s.
        assert_eq!(t0.elapsed().as_secs(), 45, "{r:?}");
        let last = &main_status(&r).unwrap()["lastState"]["terminated"];
        assert_eq!(last["exitCode"], 3);
        e.shutdown().await;
    }

    /// Goal: a graceful delete waits for the container's SIGTERM handler. Method: paused
    /// clock; STOP_AFTER=2s, the pod gets a deletionTimestamp (grace 5 s); ReadyForRemoval
    /// comes 2 s later and the container exited with code 0.
    #[tokio::test(start_paused = true)]
    async fn graceful_delete_waits_for_stop() {
        let mut e = start_edge();
        let env = json!([{"name": STOP_AFTER, "value": "2s"}]);
        e.apply(pod_msg("insert", "db", 1, "Always", env.clone()))
            .await;
        e.report_where("db", Duration::from_secs(5), |r| {
            status(r).is_some_and(|s| s["phase"] == "Running")
        })
        .await;
        let t0 = Instant::now();
        e.apply(pod_msg("update-deleting", "db", 2, "Always", env))
            .await;
        e.report_where("db", Duration::from_secs(10), |r| {
            matches!(r, PodReport::ReadyForRemoval { .. })
        })
        .await;
        assert_eq!(t0.elapsed(), Duration::from_secs(2));
        assert_eq!(e.counters.live(), 0);
        e.shutdown().await;
    }

    /// Behaviour comes from env over defaults; bad values name the variable; durations
    /// take ms/s/m/h.
    #[test]
    fn behaviour_from_env() {
        let env = |k: &str, v: &str| vec![(k.to_owned(), v.to_owned())];
        let d = SimBehaviour::default();
        assert_eq!(d.with_env(&[]).unwrap(), d);
        let b = d.with_env(&env(EXIT_AFTER, "250ms")).unwrap();
        assert_eq!(b.exit_after, Some(Duration::from_millis(250)));
        let b = d.with_env(&env(CRASH_ATTEMPTS, "3")).unwrap();
        assert_eq!(b.crash_attempts, Some(3));
        assert!(
            d.with_env(&env(EXIT_CODE, "x"))
                .unwrap_err()
                .contains(EXIT_CODE)
        );
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("5d"), None);
    }

    /// A crash loop that heals: attempts below CRASH_ATTEMPTS exit, later ones keep running;
    /// a stop beyond the grace period kills (137, signal 9); a start error is reported.
    #[tokio::test(start_paused = true)]
    async fn runtime_crash_attempts_kill_and_start_error() {
        let mut rt = SimRuntime::new(SimConfig::default());
        let pod = SandboxConfig {
            namespace: "default".into(),
            name: "p".into(),
            uid: "u".into(),
        };
        rt.start_pod(&pod).await.unwrap();
        let mut c = ContainerConfig {
            name: "c".into(),
            image: "sim".into(),
            command: vec![],
            args: vec![],
            env: vec![
                (EXIT_AFTER.into(), "1s".into()),
                (CRASH_ATTEMPTS.into(), "1".into()),
                (STOP_AFTER.into(), "1m".into()),
            ],
            mounts: vec![],
            working_dir: None,
            attempt: 0,
            image_pull_policy: crate::edged::PullPolicy::Never,
            spec_hash: String::new(),
        };
        let first = rt.start_container(&pod, &c).await.unwrap();
        let ev = rt.next_event().await.unwrap();
        assert_eq!(
            ev,
            RuntimeEvent::Exited {
                id: first,
                exit_code: 0,
                signal: None
            }
        );
        c.attempt = 1;
        let second = rt.start_container(&pod, &c).await.unwrap();
        let quiet = tokio::time::timeout(Duration::from_secs(3600), rt.next_event()).await;
        assert!(quiet.is_err(), "attempt 1 must keep running");
        assert_eq!(rt.pod_status("u"), vec![second.clone()]);
        rt.stop_container(&second, Duration::from_secs(5))
            .await
            .unwrap();
        let t0 = Instant::now();
        let ev = rt.next_event().await.unwrap();
        assert_eq!(t0.elapsed(), Duration::from_secs(5));
        assert_eq!(
            ev,
            RuntimeEvent::Exited {
                id: second,
                exit_code: 137,
                signal: Some(9)
            }
        );
        c.env = vec![(START_ERROR.into(), "no image".into())];
        let err = rt.start_container(&pod, &c).await.unwrap_err();
        assert!(err.to_string().contains("no image"), "{err}");
        assert_eq!(rt.counters().live(), 0);
    }
}
