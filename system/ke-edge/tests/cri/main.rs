//! edged's CRI runtime against a real containerd (a private instance per test, see
//! `support/containerd.rs`): pods run as containerd containers, logs and exec work, exits
//! restart per restartPolicy with a growing restartCount, and a restarted pod manager adopts
//! the running containers instead of starting duplicates.

#[path = "../support/containerd.rs"]
mod containerd;

use std::{collections::HashMap, sync::Arc, time::Duration};

use containerd::{BUSYBOX, Containerd};
use futures::StreamExt as _;
use ke_core::FixedClock;
use ke_edge::{
    edged::{
        Backoff, ContainerConfig, CriConfig, CriHandle, CriRuntime, PodManager, PodManagerConfig,
        PodReport, PullPolicy, Runtime, RuntimeEvent, SandboxConfig,
    },
    metamanager::MetaStore,
};
use ke_proto::{Message, Route};
use serde_json::{Value, json};
use tokio::{sync::mpsc, time::Instant};
use tokio_util::sync::CancellationToken;

const PATIENCE: Duration = Duration::from_secs(60);

fn cri_config(ctrd: &Containerd, root: &std::path::Path) -> CriConfig {
    let mut cfg = CriConfig::new(ctrd.endpoint(), "edge-1", root);
    cfg.poll_interval = Duration::from_millis(200);
    cfg
}

fn sandbox(uid: &str) -> SandboxConfig {
    SandboxConfig {
        namespace: "default".into(),
        name: format!("pod-{uid}"),
        uid: uid.into(),
    }
}

fn container(name: &str, image: &str, script: &str, attempt: u32) -> ContainerConfig {
    ContainerConfig {
        name: name.into(),
        image: image.into(),
        command: vec!["sh".into(), "-c".into(), script.into()],
        args: vec![],
        env: vec![("GREETING".into(), "hello from env".into())],
        mounts: vec![],
        working_dir: None,
        attempt,
        image_pull_policy: PullPolicy::IfNotPresent,
        spec_hash: "h".into(),
    }
}

async fn next_exit(rt: &mut CriRuntime) -> (String, i32) {
    match tokio::time::timeout(PATIENCE, rt.next_event()).await {
        Ok(Some(RuntimeEvent::Exited { id, exit_code, .. })) => (id.0, exit_code),
        other => panic!("no exit event: {other:?}"),
    }
}

/// Goal: the runtime drives containerd through CRI: a sandbox and a container start from a
/// local image, its output is readable through `logs` (tail and follow), `exec_sync` runs in
/// it, a stop is reported as an exit, a missing image and a bad endpoint are clear errors.
/// Method: a private containerd; `ctr tasks ls` shows the container running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_runs_logs_execs_and_stops() {
    let ctrd = Containerd::start();
    let root = tempfile::tempdir().unwrap();
    let mut rt = CriRuntime::connect(cri_config(&ctrd, root.path()))
        .await
        .unwrap();
    let handle = rt.handle();
    let pod = sandbox("u1");
    rt.start_pod(&pod).await.unwrap();
    let script = "echo one; echo \"$GREETING\"; echo oops >&2; exec sleep 1000";
    let id = rt
        .start_container(&pod, &container("main", BUSYBOX, script, 0))
        .await
        .unwrap();
    assert!(ctrd.running_tasks().contains(&id.0), "{}", ctrd.log());
    assert_eq!(rt.pod_status("u1"), vec![id.clone()]);
    check_logs_and_exec(&handle).await;

    // A followed log ends when the container exits.
    let follow = handle.logs("u1", "main", true, Some(0)).await.unwrap();
    rt.stop_container(&id, Duration::from_secs(1))
        .await
        .unwrap();
    let (exited, code) = next_exit(&mut rt).await;
    assert_eq!(exited, id.0);
    assert_eq!(
        code, 137,
        "sleep has no TERM handler as PID 1: killed after the grace"
    );
    let rest = tokio::time::timeout(PATIENCE, follow.collect::<Vec<_>>())
        .await
        .unwrap();
    assert!(rest.iter().all(Result::is_ok));

    let absent = container("other", "edgefleet.local/absent:1", "true", 0);
    let err = rt.start_container(&pod, &absent).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("edgefleet.local/absent:1") && text.contains("not present"),
        "{text}"
    );
    rt.stop_pod("u1").await.unwrap();
    assert!(
        ctrd.running_tasks().is_empty(),
        "sandbox stopped: {:?}",
        ctrd.running_tasks()
    );
    check_bad_endpoints(root.path()).await;
}

/// Logs (all, tail) and exec in the running container `main` of pod `u1`.
async fn check_logs_and_exec(handle: &CriHandle) {
    let deadline = Instant::now() + PATIENCE;
    let text = loop {
        let stream = handle.logs("u1", "main", false, None).await.expect("logs");
        let chunks: Vec<_> = stream.collect().await;
        let text: Vec<u8> = chunks
            .into_iter()
            .flat_map(|c| c.expect("chunk").to_vec())
            .collect();
        let text = String::from_utf8(text).expect("utf-8");
        if text.lines().count() >= 3 || Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort_unstable();
    assert_eq!(lines, ["hello from env", "one", "oops"], "{text:?}");
    let tail: Vec<_> = handle
        .logs("u1", "main", false, Some(1))
        .await
        .expect("logs")
        .collect()
        .await;
    let tail: Vec<u8> = tail
        .into_iter()
        .flat_map(|c| c.expect("chunk").to_vec())
        .collect();
    assert_eq!(tail.iter().filter(|b| **b == b'\n').count(), 1, "{tail:?}");
    let exec = |cmd: &[&str]| {
        let cmd = cmd.iter().map(|s| (*s).to_owned()).collect();
        handle.exec_sync("u1", "main", cmd, Duration::from_secs(10))
    };
    let out = exec(&["echo", "hi"]).await.expect("exec");
    assert_eq!((&out.stdout[..], out.exit_code), (&b"hi\n"[..], 0));
    let out = exec(&["sh", "-c", "echo err >&2; exit 3"])
        .await
        .expect("exec");
    assert_eq!((&out.stderr[..], out.exit_code), (&b"err\n"[..], 3));
}

/// Endpoints that are not a CRI socket are clear errors.
async fn check_bad_endpoints(root: &std::path::Path) {
    let missing = format!("unix://{}/nothing.sock", root.display());
    let err = CriRuntime::connect(CriConfig::new(missing, "n", root))
        .await
        .expect_err("no socket");
    assert!(err.to_string().contains("nothing.sock"), "{err}");
    let tcp = CriConfig::new("tcp://127.0.0.1:1", "n", root);
    let err = CriRuntime::connect(tcp).await.expect_err("not unix");
    assert!(err.to_string().contains("only unix://"), "{err}");
}

fn pod(name: &str, uid: &str, policy: &str, script: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "uid": uid, "resourceVersion": "1"},
        "spec": {
            "nodeName": "edge-1",
            "restartPolicy": policy,
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "main", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
                            "command": ["sh", "-c", script]}],
        },
    })
}

fn msg_for(obj: &Value) -> Message {
    let name = obj["metadata"]["name"].as_str().expect("test step");
    let route = Route::new(
        "edgecontroller",
        "resource",
        "insert",
        format!("default/pod/{name}"),
    );
    Message::new(format!("insert-{name}"), 0, route, obj.clone()).with_resource_version("1")
}

/// A pod manager over the CRI runtime, in a task.
struct Edge {
    reports: mpsc::Receiver<PodReport>,
    tx: mpsc::Sender<Message>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), ke_edge::edged::Error>>,
    latest: HashMap<String, Value>,
}

impl Edge {
    async fn start(ctrd: &Containerd, store: &MetaStore, root: &std::path::Path) -> Self {
        let mut cfg = PodManagerConfig::new("edge-1", root);
        cfg.backoff = Backoff {
            initial: Duration::from_millis(200),
            max: Duration::from_secs(1),
            reset_after: Duration::from_secs(60),
        };
        let rt = CriRuntime::connect(cri_config(ctrd, root))
            .await
            .expect("test step");
        assert!(rt.containers_outlive_edgecore());
        let clock = Arc::new(FixedClock::new(1_754_450_000));
        let manager = PodManager::new(cfg, rt, store.clone(), clock);
        let (tx, rx) = mpsc::channel(16);
        let (reports_tx, reports) = mpsc::channel(16);
        let stop = CancellationToken::new();
        let task = tokio::spawn(manager.run(rx, reports_tx, stop.clone().cancelled_owned()));
        Self {
            reports,
            tx,
            stop,
            task,
            latest: HashMap::new(),
        }
    }

    async fn apply(&self, store: &MetaStore, obj: &Value) {
        let msg = msg_for(obj);
        store.apply(&msg).expect("test step");
        self.tx.send(msg).await.expect("test step");
    }

    /// Waits until the latest status of `name` satisfies `pred`.
    async fn status_where(&mut self, name: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(s) = self.latest.get(name)
                && pred(s)
            {
                return s.clone();
            }
            let report = tokio::time::timeout_at(deadline, self.reports.recv())
                .await
                .unwrap_or_else(|_| {
                    panic!("no matching status for {name}: {:?}", self.latest.get(name))
                })
                .expect("manager running");
            if let PodReport::Status(s) = report {
                self.latest.insert(s.name, s.status);
            }
        }
    }

    async fn shutdown(self) {
        self.stop.cancel();
        self.task.await.expect("test step").expect("test step");
    }
}

fn main_status(s: &Value) -> &Value {
    &s["containerStatuses"][0]
}

fn restarts(s: &Value) -> u64 {
    main_status(s)["restartCount"].as_u64().unwrap_or(0)
}

fn running(s: &Value) -> bool {
    main_status(s)["state"]["running"].is_object()
}

/// Goal: restart policies and restart counts with real containers, and adoption across a
/// restart of the pod manager. Method: `crash` (Always, exits 1 after 0.3 s) must restart
/// with restartCount ≥ 2; `once` (OnFailure, exits 0) and `never` (Never, exits 2) must not
/// restart; `steady` (Always, sleeps) must keep running. The manager then shuts down (the
/// containers keep running) and a new manager over a new runtime connection adopts `steady`:
/// same containerID, restartCount 0, and containerd still runs exactly one `main` instance
/// for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_policies_counts_and_adoption() {
    let ctrd = Containerd::start();
    let root = tempfile::tempdir().unwrap();
    let store = MetaStore::open(root.path().join("edge.db")).unwrap();
    let mut edge = Edge::start(&ctrd, &store, root.path()).await;
    let steady_id = first_run(&mut edge, &store).await;
    edge.shutdown().await;
    let raw_id = steady_id.trim_start_matches("containerd://").to_owned();
    assert!(
        ctrd.running_tasks().contains(&raw_id),
        "kept running across the shutdown"
    );

    let mut edge = Edge::start(&ctrd, &store, root.path()).await;
    let s = edge.status_where("steady", running).await;
    assert_eq!(
        main_status(&s)["containerID"],
        steady_id.as_str(),
        "adopted, not restarted"
    );
    assert_eq!(restarts(&s), 0);
    let s = edge.status_where("never", |s| s["phase"] == "Failed").await;
    assert_eq!(
        restarts(&s),
        0,
        "an exited Never container is not restarted after adoption"
    );
    let s = edge.status_where("crash", |s| restarts(s) >= 3).await;
    assert!(restarts(&s) >= 3, "the count continues after adoption: {s}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let handle = CriRuntime::connect(cri_config(&ctrd, root.path()))
        .await
        .unwrap()
        .handle();
    let hi = vec!["echo".to_owned(), "hi".to_owned()];
    let out = handle
        .exec_sync("uid-steady", "main", hi, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(&out.stdout[..], b"hi\n");
    // ListContainers: exactly one running `main` for steady (the adopted one), at most one
    // for crash, none for the finished pods.
    let steady = handle.running("uid-steady").await.unwrap();
    assert_eq!(steady, [("main".to_owned(), raw_id.clone())]);
    assert!(handle.running("uid-crash").await.unwrap().len() <= 1);
    assert!(handle.running("uid-never").await.unwrap().is_empty());
    assert!(handle.running("uid-once").await.unwrap().is_empty());
    edge.shutdown().await;
}

/// The four pods of the first run, up to their expected states; the containerID of steady.
async fn first_run(edge: &mut Edge, store: &MetaStore) -> String {
    edge.apply(
        store,
        &pod("crash", "uid-crash", "Always", "sleep 0.3; exit 1"),
    )
    .await;
    edge.apply(store, &pod("once", "uid-once", "OnFailure", "echo done"))
        .await;
    edge.apply(store, &pod("never", "uid-never", "Never", "exit 2"))
        .await;
    edge.apply(
        store,
        &pod("steady", "uid-steady", "Always", "exec sleep 1000"),
    )
    .await;
    let s = edge.status_where("crash", |s| restarts(s) >= 2).await;
    assert_eq!(
        main_status(&s)["lastState"]["terminated"]["exitCode"],
        1,
        "{s}"
    );
    let s = edge
        .status_where("once", |s| s["phase"] == "Succeeded")
        .await;
    assert_eq!(restarts(&s), 0);
    let s = edge.status_where("never", |s| s["phase"] == "Failed").await;
    assert_eq!(restarts(&s), 0);
    assert_eq!(main_status(&s)["state"]["terminated"]["exitCode"], 2);
    let s = edge.status_where("steady", running).await;
    let steady_id = main_status(&s)["containerID"]
        .as_str()
        .expect("containerID")
        .to_owned();
    assert!(steady_id.starts_with("containerd://"), "{steady_id}");
    steady_id
}
