//! Edged: the process runtime runs real child processes under the pod manager (env and
//! volumes from the MetaStore, restart policies, deletion, spec changes, restore after a
//! crash), and the back-off schedule under a paused clock with a fake runtime.
//!
//! Scripts write `$$$$` for the shell's pid: like kubelet, edged expands `$(VAR)` in
//! `command`/`args` and reduces `$$` to `$`.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use ke_core::FixedClock;
use ke_edge::{
    edged::{
        AdoptedContainer, Backoff, ContainerConfig, ContainerId, PodManager, PodManagerConfig,
        PodReport, ProcessConfig, ProcessRuntime, Runtime, RuntimeError, RuntimeEvent,
        SandboxConfig,
    },
    metamanager::MetaStore,
};
use ke_proto::{Message, Route};
use serde_json::{Value, json};
use tokio::{
    sync::{mpsc, oneshot},
    task::JoinHandle,
    time::Instant,
};

/// Generous bound for anything involving real processes; never asserted on.
const PATIENCE: Duration = Duration::from_secs(30);

/// A downstream message carrying `obj` (its resource built from kind and metadata).
fn msg_for(op: &str, kind: &str, obj: &Value) -> Message {
    let (ns, name) = (
        obj["metadata"]["namespace"].as_str().expect("namespace"),
        obj["metadata"]["name"].as_str().expect("name"),
    );
    let rv = obj["metadata"]["resourceVersion"].as_str().expect("rv");
    let route = Route::new(
        "edgecontroller",
        "resource",
        op,
        format!("{ns}/{kind}/{name}"),
    );
    Message::new(format!("{op}-{name}-{rv}"), 0, route, obj.clone()).with_resource_version(rv)
}

fn pod(name: &str, uid: &str, rv: u64, spec: Value) -> Value {
    let mut spec = spec;
    spec["nodeName"] = json!("edge-1");
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "uid": uid,
                     "resourceVersion": rv.to_string()},
        "spec": spec,
    })
}

fn configmap(name: &str, rv: u64, data: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default", "uid": format!("cm-{name}"),
                     "resourceVersion": rv.to_string()},
        "data": data,
    })
}

/// One shell container: `script` runs under `/bin/sh -c`.
fn shell_spec(policy: &str, script: &str, env: Value) -> Value {
    json!({
        "restartPolicy": policy,
        "terminationGracePeriodSeconds": 2,
        "containers": [{"name": "main", "image": "busybox",
                        "command": ["/bin/sh", "-c", script], "env": env}],
    })
}

/// A pod manager on the process runtime, running in a task.
struct Edge {
    store: MetaStore,
    root: PathBuf,
    tx: mpsc::Sender<Message>,
    reports: mpsc::Receiver<PodReport>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), ke_edge::edged::Error>>,
}

impl Edge {
    fn start(store: MetaStore, root: &Path) -> Self {
        let mut cfg = PodManagerConfig::new("edge-1", root);
        cfg.backoff = Backoff {
            initial: Duration::from_millis(20),
            max: Duration::from_millis(200),
            reset_after: Duration::from_secs(60),
        };
        cfg.grace_max = Duration::from_secs(2);
        cfg.shutdown_grace = Duration::from_secs(1);
        cfg.retry_interval = Duration::from_millis(50);
        let runtime = ProcessRuntime::new(ProcessConfig::new(root));
        let clock = Arc::new(FixedClock::new(1_754_450_000));
        let manager = PodManager::new(cfg, runtime, store.clone(), clock);
        let (tx, rx) = mpsc::channel(16);
        let (reports_tx, reports) = mpsc::channel(16);
        let (stop, stop_rx) = oneshot::channel::<()>();
        let task = tokio::spawn(manager.run(rx, reports_tx, async move {
            let _ = stop_rx.await;
        }));
        Self {
            store,
            root: root.to_owned(),
            tx,
            reports,
            stop: Some(stop),
            task,
        }
    }

    /// Stores `obj` as MetaManager would and tells the manager.
    async fn apply(&self, op: &str, kind: &str, obj: &Value) {
        let msg = msg_for(op, kind, obj);
        assert!(self.store.apply(&msg).expect("apply").changed());
        self.tx.send(msg).await.expect("manager running");
    }

    /// Waits for a status report of pod `name` satisfying `pred`; returns that status.
    async fn status_where(&mut self, name: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let report = tokio::time::timeout_at(deadline, self.reports.recv())
                .await
                .unwrap_or_else(|_| panic!("no matching status for {name}"))
                .expect("manager running");
            if let PodReport::Status(s) = report
                && s.name == name
                && pred(&s.status)
            {
                return s.status;
            }
        }
    }

    async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task
            .await
            .expect("manager task")
            .expect("manager ends cleanly");
    }
}

fn phase(s: &Value) -> &str {
    s["phase"].as_str().unwrap_or_default()
}

fn condition(s: &Value, kind: &str) -> String {
    s["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == kind))
        .and_then(|c| c["status"].as_str())
        .unwrap_or_default()
        .to_owned()
}

/// Polls until `path` holds something `pred` accepts; returns the content.
async fn file_where(path: &Path, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && pred(&text)
        {
            return text;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {path:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// True if `pid` exists and is not a zombie.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().to_owned())
        })
        .is_some_and(|rest| !rest.starts_with('Z'))
}

async fn until_dead(pid: u32) {
    let deadline = Instant::now() + PATIENCE;
    while alive(pid) {
        assert!(Instant::now() < deadline, "process {pid} still alive");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn pids(text: &str) -> Vec<u32> {
    text.lines().filter_map(|l| l.trim().parse().ok()).collect()
}

/// Goal: a pod's process really runs with env from a configmap and reads a mounted configmap
/// file, is reported Running and Ready, and deleting the pod kills it and its children.
/// Method: store configmap + pod; the shell writes `$MODE` and `cat /etc/app/conf` to files
/// and records its pid and a background `sleep`'s pid; wait for files and status; delete the
/// pod and wait until both pids are gone.
#[tokio::test]
async fn process_pod_runs_with_configmap_env_and_volume_and_dies_on_delete() {
    let dir = tempfile::tempdir().unwrap();
    let mut edge = Edge::start(
        MetaStore::open_in_memory().unwrap(),
        &dir.path().join("data"),
    );
    let (out, out2, pidf) = (
        dir.path().join("out"),
        dir.path().join("out2"),
        dir.path().join("pids"),
    );
    let cm = configmap("app-cfg", 1, json!({"mode": "fast", "conf": "hello"}));
    edge.apply("insert", "configmap", &cm).await;
    let script = "echo \"$MODE\" > \"$OUT\"; cat /etc/app/conf > \"$OUT2\"; \
                  echo $$$$ > \"$PIDS\"; sleep 30 & echo $! >> \"$PIDS\"; wait";
    let env = json!([
        {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "app-cfg", "key": "mode"}}},
        {"name": "OUT", "value": out.to_str().unwrap()},
        {"name": "OUT2", "value": out2.to_str().unwrap()},
        {"name": "PIDS", "value": pidf.to_str().unwrap()},
    ]);
    let mut spec = shell_spec("Always", script, env);
    spec["volumes"] = json!([{"name": "cfg", "configMap": {"name": "app-cfg"}}]);
    spec["containers"][0]["volumeMounts"] = json!([{"name": "cfg", "mountPath": "/etc/app"}]);
    let web = pod("web", "uid-web", 2, spec);
    edge.apply("insert", "pod", &web).await;
    assert_eq!(file_where(&out, |t| !t.is_empty()).await, "fast\n");
    assert_eq!(file_where(&out2, |t| !t.is_empty()).await, "hello");
    let both = pids(&file_where(&pidf, |t| pids(t).len() == 2).await);
    let s = edge
        .status_where("web", |s| condition(s, "Ready") == "True")
        .await;
    assert_eq!(phase(&s), "Running");
    assert_eq!(s["containerStatuses"][0]["ready"], true);
    assert!(s["containerStatuses"][0]["state"]["running"]["startedAt"].is_string());
    assert!(both.iter().all(|p| alive(*p)));
    edge.apply("delete", "pod", &pod("web", "uid-web", 3, json!({})))
        .await;
    for pid in both {
        until_dead(pid).await;
    }
    let sandbox = edge.root.join("pods").join("uid-web");
    let deadline = Instant::now() + PATIENCE;
    while sandbox.exists() {
        assert!(Instant::now() < deadline, "sandbox not removed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    edge.shutdown().await;
}

/// Goal: OnFailure restarts a failing container, counting restarts and recording the exit.
/// Method: a container that exits 3; wait for a status whose restartCount ≥ 1 with
/// lastState.terminated.exitCode 3; the phase is not terminal.
#[tokio::test]
async fn on_failure_restarts_with_count_and_last_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let mut edge = Edge::start(MetaStore::open_in_memory().unwrap(), dir.path());
    edge.apply(
        "insert",
        "pod",
        &pod(
            "crash",
            "uid-crash",
            1,
            shell_spec("OnFailure", "exit 3", json!([])),
        ),
    )
    .await;
    let s = edge
        .status_where("crash", |s| {
            let c = &s["containerStatuses"][0];
            c["restartCount"].as_u64().unwrap_or(0) >= 1
                && c["lastState"]["terminated"]["exitCode"] == 3
        })
        .await;
    assert_eq!(
        s["containerStatuses"][0]["lastState"]["terminated"]["reason"],
        "Error"
    );
    assert!(["Running", "Pending"].contains(&phase(&s)), "{s}");
    edge.shutdown().await;
}

/// Goal: under restartPolicy Never, exit 3 makes the pod Failed and exit 0 Succeeded, with
/// no restart. Method: two pods; wait for each terminal phase; check the terminated state,
/// restartCount 0 and Ready=False.
#[tokio::test]
async fn never_policy_gives_failed_or_succeeded() {
    let dir = tempfile::tempdir().unwrap();
    let mut edge = Edge::start(MetaStore::open_in_memory().unwrap(), dir.path());
    edge.apply(
        "insert",
        "pod",
        &pod(
            "bad",
            "uid-bad",
            1,
            shell_spec("Never", "exit 3", json!([])),
        ),
    )
    .await;
    edge.apply(
        "insert",
        "pod",
        &pod(
            "good",
            "uid-good",
            2,
            shell_spec("Never", "exit 0", json!([])),
        ),
    )
    .await;
    let bad = edge.status_where("bad", |s| phase(s) == "Failed").await;
    let c = &bad["containerStatuses"][0];
    assert_eq!(
        (
            c["state"]["terminated"]["exitCode"].clone(),
            c["restartCount"].clone()
        ),
        (json!(3), json!(0))
    );
    assert_eq!(condition(&bad, "Ready"), "False");
    let good = edge.status_where("good", |s| phase(s) == "Succeeded").await;
    let c = &good["containerStatuses"][0];
    assert_eq!(c["state"]["terminated"]["reason"], "Completed");
    assert_eq!(c["restartCount"], 0);
    edge.shutdown().await;
}

/// Goal: a spec change kills the old process and starts the new spec. Method: v1 writes its
/// pid and sleeps; update the pod with a different script; the v1 pid dies, v2's output
/// appears and restartCount becomes 1.
#[tokio::test]
async fn spec_change_replaces_the_process() {
    let dir = tempfile::tempdir().unwrap();
    let mut edge = Edge::start(
        MetaStore::open_in_memory().unwrap(),
        &dir.path().join("data"),
    );
    let (pidf, out) = (dir.path().join("pid"), dir.path().join("out"));
    let env = json!([{"name": "P", "value": pidf.to_str().unwrap()},
                     {"name": "OUT", "value": out.to_str().unwrap()}]);
    let v1 = shell_spec("Always", "echo $$$$ > \"$P\"; exec sleep 30", env.clone());
    edge.apply("insert", "pod", &pod("app", "uid-app", 1, v1))
        .await;
    let old = pids(&file_where(&pidf, |t| pids(t).len() == 1).await)[0];
    let v2 = shell_spec("Always", "echo v2 > \"$OUT\"; exec sleep 30", env);
    edge.apply("update", "pod", &pod("app", "uid-app", 2, v2))
        .await;
    until_dead(old).await;
    assert_eq!(file_where(&out, |t| !t.is_empty()).await, "v2\n");
    edge.status_where("app", |s| {
        s["containerStatuses"][0]["restartCount"] == 1 && phase(s) == "Running"
    })
    .await;
    edge.shutdown().await;
}

/// Goal: a container blocked on a missing configmap reports CreateContainerConfigError and
/// starts as soon as the configmap arrives. Method: pod first, configmap later.
#[tokio::test]
async fn missing_configmap_blocks_until_it_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let mut edge = Edge::start(
        MetaStore::open_in_memory().unwrap(),
        &dir.path().join("data"),
    );
    let out = dir.path().join("out");
    let env = json!([
        {"name": "X", "valueFrom": {"configMapKeyRef": {"name": "late", "key": "x"}}},
        {"name": "OUT", "value": out.to_str().unwrap()},
    ]);
    let spec = shell_spec("Always", "echo \"$X\" > \"$OUT\"; exec sleep 30", env);
    edge.apply("insert", "pod", &pod("waiter", "uid-w", 1, spec))
        .await;
    let s = edge
        .status_where("waiter", |s| {
            s["containerStatuses"][0]["state"]["waiting"]["reason"] == "CreateContainerConfigError"
        })
        .await;
    assert_eq!(phase(&s), "Pending");
    edge.apply(
        "insert",
        "configmap",
        &configmap("late", 2, json!({"x": "arrived"})),
    )
    .await;
    assert_eq!(file_where(&out, |t| !t.is_empty()).await, "arrived\n");
    edge.shutdown().await;
}

/// Goal: offline autonomy: after edgecore dies without stopping its pods (task aborted, as
/// with kill -9), a new pod manager over the same SQLite file kills the orphaned process and
/// starts the pod again; a clean shutdown then stops it. Method: the container appends its
/// pid to a file and sleeps; abort manager 1; start manager 2 on a reopened store; wait for a
/// second pid, check the first is dead; shut down and check the second is dead.
#[tokio::test]
async fn restore_after_crash_restarts_pods_and_kills_orphans() {
    let dir = tempfile::tempdir().unwrap();
    let (db, root) = (dir.path().join("edgecore.db"), dir.path().join("data"));
    let starts = dir.path().join("starts");
    let env = json!([{"name": "S", "value": starts.to_str().unwrap()}]);
    let spec = shell_spec("Always", "echo $$$$ >> \"$S\"; exec sleep 30", env);
    let edge = Edge::start(MetaStore::open(&db).unwrap(), &root);
    edge.apply("insert", "pod", &pod("svc", "uid-svc", 1, spec))
        .await;
    let first = pids(&file_where(&starts, |t| pids(t).len() == 1).await)[0];
    edge.task.abort();
    let _ = edge.task.await;
    assert!(alive(first), "a crash leaves the process running");
    let edge2 = Edge::start(MetaStore::open(&db).unwrap(), &root);
    let all = pids(&file_where(&starts, |t| pids(t).len() == 2).await);
    until_dead(first).await;
    assert!(alive(all[1]));
    edge2.shutdown().await;
    until_dead(all[1]).await;
}

/// A runtime whose containers exit with code 1 the moment they start; records start times.
struct CrashingRuntime {
    starts: Arc<Mutex<Vec<Instant>>>,
    tx: mpsc::Sender<RuntimeEvent>,
    rx: mpsc::Receiver<RuntimeEvent>,
}

impl Runtime for CrashingRuntime {
    fn name(&self) -> &'static str {
        "crashing"
    }

    async fn remove_orphans(
        &mut self,
        _keep: &BTreeSet<String>,
    ) -> Result<Vec<AdoptedContainer>, RuntimeError> {
        Ok(Vec::new())
    }

    async fn start_pod(&mut self, _pod: &SandboxConfig) -> Result<(), RuntimeError> {
        Ok(())
    }

    async fn start_container(
        &mut self,
        pod: &SandboxConfig,
        c: &ContainerConfig,
    ) -> Result<ContainerId, RuntimeError> {
        self.starts.lock().expect("lock").push(Instant::now());
        let id = ContainerId(format!("{}-{}-{}", pod.uid, c.name, c.attempt));
        let exit = RuntimeEvent::Exited {
            id: id.clone(),
            exit_code: 1,
            signal: None,
        };
        self.tx.try_send(exit).expect("room for one exit");
        Ok(id)
    }

    async fn stop_container(
        &mut self,
        _id: &ContainerId,
        _g: Duration,
    ) -> Result<(), RuntimeError> {
        Ok(())
    }

    async fn stop_pod(&mut self, _uid: &str) -> Result<(), RuntimeError> {
        Ok(())
    }

    fn pod_status(&self, _uid: &str) -> Vec<ContainerId> {
        Vec::new()
    }

    async fn next_event(&mut self) -> Option<RuntimeEvent> {
        self.rx.recv().await
    }
}

/// Goal: the restart back-off is kubelet's CrashLoopBackOff: first restart immediate, then
/// doubling from `initial`, capped at `max`; the status says CrashLoopBackOff meanwhile.
/// Method: paused tokio clock (virtual, exact time), a runtime whose containers die at once;
/// collect 7 start instants and compare the gaps with the policy (initial 1 s, max 8 s).
#[tokio::test(start_paused = true)]
async fn crash_loop_backoff_doubles_and_caps() {
    let starts = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = mpsc::channel(4);
    let runtime = CrashingRuntime {
        starts: starts.clone(),
        tx,
        rx,
    };
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = PodManagerConfig::new("edge-1", dir.path());
    cfg.backoff = Backoff {
        initial: Duration::from_secs(1),
        max: Duration::from_secs(8),
        reset_after: Duration::from_secs(600),
    };
    let store = MetaStore::open_in_memory().unwrap();
    let p = pod(
        "loop",
        "uid-loop",
        1,
        shell_spec("Always", "false", json!([])),
    );
    store.apply(&msg_for("insert", "pod", &p)).unwrap();
    let clock = Arc::new(FixedClock::new(1_754_450_000));
    let manager = PodManager::new(cfg, runtime, store, clock);
    let (_tx, mgr_rx) = mpsc::channel(4);
    let (reports_tx, mut reports) = mpsc::channel(64);
    let (stop, stop_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(manager.run(mgr_rx, reports_tx, async move {
        let _ = stop_rx.await;
    }));
    let mut saw_backoff = false;
    for _ in 0..1_000 {
        if starts.lock().unwrap().len() >= 7 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        while let Ok(PodReport::Status(s)) = reports.try_recv() {
            let reason = &s.status["containerStatuses"][0]["state"]["waiting"]["reason"];
            saw_backoff |= reason == "CrashLoopBackOff";
        }
    }
    let starts = starts.lock().unwrap().clone();
    let gaps: Vec<u64> = starts.windows(2).map(|w| (w[1] - w[0]).as_secs()).collect();
    assert_eq!(gaps[..6], [0, 1, 2, 4, 8, 8]);
    assert!(saw_backoff);
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
}
