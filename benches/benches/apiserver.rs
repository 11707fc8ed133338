//! API server benchmarks.
//!
//! - `apiserver_create`: `Api::create` of a small pod, on a SQLite file in a temporary
//!   directory and on an in-memory store; throughput in creates.
//! - `apiserver_list_10k_pods`: listing 10,000 realistic pods (about 1.5 KiB each): from the
//!   store (now, and at a past version, which rolls the window back), and over HTTPS through
//!   a running server with a kube-rs client (raw bytes, and decoded into `Pod`s, in one list
//!   and in kubectl's pages of 500); throughput in pods listed.
//! - `apiserver_watch_fanout`: 100 watchers of pods while merge patches change 100 pods per
//!   round; an iteration ends when every watcher has received every event of its round.
//!   Watchers are store subscriptions (`Store::watch`) or HTTPS watch streams through
//!   kube-rs. Throughput in events delivered (100 writes x 100 watchers per iteration); the
//!   writes are part of the cost, and `writes_only` (no watchers) shows how much.
//!
//! - `apiserver_status_patch`: `Api::patch` (merge) of `pods/<p>/status` round-robin over
//!   10,000 realistic pods, each patch a new Ready time (what an edge's status report or a
//!   DeviceController twin write costs the API server); SQLite file and in-memory store.
//!
//! Client and server share the machine's cores in the HTTPS cases.

#[path = "../src/bin/apiserver_rss/pods.rs"]
mod pods;

use criterion::{BatchSize, Criterion, Throughput};
use futures::{AsyncBufReadExt, StreamExt};
use http::Request;
use k8s_openapi::api::core::v1::Pod;
use ke_apiserver::{
    Deps, Server, ServerConfig,
    api::{Api, Part, WriteOpts},
    patch::PatchType,
    registry::ResourceInfo,
    store::{Store, StoreOptions},
};
use ke_core::{Entropy, Seed, SystemClock};
use ke_net::TokioTransport;
use serde_json::{Value, json};
use std::{
    hint::black_box,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};
use tokio::{
    runtime::Runtime,
    sync::{Notify, broadcast, oneshot},
    task::JoinHandle,
};

/// Pods in the list benchmarks.
const LIST_PODS: usize = 10_000;
/// Watchers in the fan-out benchmarks.
const WATCHERS: u64 = 100;
/// Writes (so events per watcher) per fan-out iteration.
const EVENTS_PER_ROUND: u64 = 100;
/// Namespace of the benchmark pods.
const NS: &str = "bench";

fn small_pod(name: String) -> Value {
    json!({"metadata": {"name": name, "labels": {"app": "bench"}},
        "spec": {"containers": [{"name": "app", "image": "busybox:1.36"}]}})
}

fn api_on(store: Store) -> Api {
    let entropy = Entropy::seeded(Seed(3), "apiserver-bench");
    Api::new(store, Arc::new(SystemClock), entropy).expect("the API starts")
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Creates namespace [`NS`] and `n` pods in it, made by `pod`.
fn fill(api: &Api, n: usize, pod: impl Fn(usize) -> Value) -> Arc<ResourceInfo> {
    let ns = api
        .resource("", "v1", "namespaces")
        .expect("namespaces are served");
    api.create(
        &ns,
        "",
        json!({"metadata": {"name": NS}}),
        WriteOpts::default(),
    )
    .expect("create the namespace");
    let pods = api.resource("", "v1", "pods").expect("pods are served");
    for i in 0..n {
        api.create(&pods, NS, pod(i), WriteOpts::default())
            .expect("create a pod");
    }
    pods
}

/// A running server on a temporary directory and an admin kube-rs client for it.
struct Running {
    api: Arc<Api>,
    client: kube::Client,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
    _dir: tempfile::TempDir,
}

async fn start_server() -> Running {
    let dir = tempfile::tempdir().expect("temporary directory");
    let cfg = ServerConfig::on_free_loopback_port(dir.path());
    let deps = Deps::with_system_clock(
        TokioTransport,
        Entropy::seeded(Seed(4), "apiserver-bench-server"),
    );
    let server = Server::start(cfg, deps).await.expect("the server starts");
    let kc = kube::config::Kubeconfig::read_from(server.kubeconfig_path()).expect("kubeconfig");
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("client config");
    let client = kube::Client::try_from(cfg).expect("client");
    let api = server.api();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.serve(async move {
        let _ = stopped.await;
    }));
    Running {
        api,
        client,
        stop,
        task,
        _dir: dir,
    }
}

impl Running {
    async fn shutdown(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// A store on a SQLite file in `dir` and one in memory, with their labels.
fn file_and_memory_stores(dir: &tempfile::TempDir) -> [(&'static str, Store); 3] {
    let file = Store::open(&dir.path().join("bench.db"), StoreOptions::default());
    let sqlite_memory = Store::open_sqlite_in_memory(StoreOptions::default());
    let memory = Store::open_in_memory(StoreOptions::default());
    [
        ("sqlite_file", file.expect("the store opens")),
        ("sqlite_in_memory", sqlite_memory.expect("the store opens")),
        ("in_memory", memory.expect("the store opens")),
    ]
}

fn bench_creates(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let stores = file_and_memory_stores(&dir);
    let mut g = c.benchmark_group("apiserver_create");
    g.throughput(Throughput::Elements(1));
    for (label, store) in stores {
        let api = api_on(store);
        let pods = api.resource("", "v1", "pods").expect("pods are served");
        let mut n = 0u64;
        let mut next = || {
            n += 1;
            small_pod(format!("pod-{n}"))
        };
        g.bench_function(format!("small_pod_{label}"), |b| {
            b.iter_batched(
                &mut next,
                |body| api.create(&pods, "default", body, WriteOpts::default()),
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

/// Pods patched round-robin in the status-patch benchmark.
const PATCH_PODS: usize = 10_000;

fn bench_status_patches(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let stores = file_and_memory_stores(&dir);
    let mut g = c.benchmark_group("apiserver_status_patch");
    g.throughput(Throughput::Elements(1));
    for (label, store) in stores {
        let api = api_on(store);
        let pods = fill(&api, PATCH_PODS, pods::realistic_pod);
        let names: Vec<String> = (0..PATCH_PODS)
            .map(|i| {
                let v = pods::realistic_pod(i);
                v["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect();
        let mut n = 0usize;
        g.bench_function(format!("pod_status_merge_{label}"), |b| {
            b.iter(|| {
                n += 1;
                let body = json!({"status": {"phase": "Running", "conditions": [
                    {"type": "Ready", "status": "True",
                     "lastTransitionTime": format!("2026-12-07T10:{:02}:{:02}Z", (n / 60) % 60, n % 60)}]}});
                let body = serde_json::to_vec(&body).expect("JSON");
                let name = &names[n % PATCH_PODS];
                api.patch(&pods, NS, name, Part::Status, PatchType::Merge, &body, WriteOpts::default())
                    .expect("the patch applies")
            })
        });
    }
    g.finish();
}

fn bench_lists(c: &mut Criterion, rt: &Runtime) {
    let srv = rt.block_on(start_server());
    fill(&srv.api, LIST_PODS, pods::realistic_pod);
    let store = &srv.api.store;
    let past = store.current_rv() - 1;
    let path = format!("/api/v1/namespaces/{NS}/pods");
    let typed: kube::Api<Pod> = kube::Api::namespaced(srv.client.clone(), NS);
    let mut g = c.benchmark_group("apiserver_list_10k_pods");
    g.throughput(Throughput::Elements(LIST_PODS as u64));
    g.bench_function("store_now", |b| {
        b.iter(|| {
            store
                .list("core/pods", Some(NS), None)
                .expect("list")
                .1
                .len()
        })
    });
    g.bench_function("store_at_past_rv", |b| {
        b.iter(|| {
            store
                .list("core/pods", Some(NS), Some(past))
                .expect("list")
                .1
                .len()
        })
    });
    g.bench_function("https_raw_bytes", |b| {
        b.iter(|| {
            let req = Request::get(path.as_str())
                .body(Vec::new())
                .expect("request");
            let body = rt
                .block_on(srv.client.request_text(req))
                .expect("list over HTTPS");
            black_box(body.len())
        })
    });
    // kubectl's way: pages of 500 (`--chunk-size`), each after the last one's continue token.
    g.bench_function("https_pages_of_500", |b| {
        b.iter(|| {
            let mut listed = 0;
            let mut lp = kube::api::ListParams::default().limit(500);
            loop {
                let page = rt.block_on(typed.list(&lp)).expect("page over HTTPS");
                listed += page.items.len();
                match page.metadata.continue_.filter(|c| !c.is_empty()) {
                    Some(c) => lp = lp.continue_token(&c),
                    None => break,
                }
            }
            assert_eq!(listed, LIST_PODS);
        })
    });
    g.bench_function("https_kube_typed", |b| {
        b.iter(|| {
            let list = rt
                .block_on(typed.list(&Default::default()))
                .expect("typed list");
            assert_eq!(list.items.len(), LIST_PODS);
        })
    });
    g.finish();
    rt.block_on(srv.shutdown());
}

/// Events delivered to all watchers so far, and a wake-up for whoever waits on a goal.
#[derive(Default)]
struct Delivered {
    count: AtomicU64,
    goal: AtomicU64,
    reached: Notify,
}

impl Delivered {
    fn add(&self, n: u64) {
        let now = self.count.fetch_add(n, Ordering::AcqRel) + n;
        if now >= self.goal.load(Ordering::Acquire) {
            self.reached.notify_one();
        }
    }

    /// Waits until `goal` events have been delivered in all.
    async fn wait_for(&self, goal: u64) {
        self.goal.store(goal, Ordering::Release);
        loop {
            let reached = self.reached.notified();
            if self.count.load(Ordering::Acquire) >= goal {
                return;
            }
            reached.await;
        }
    }
}

/// One round of writes: a merge patch to each of the first [`EVENTS_PER_ROUND`] pods.
fn write_round(api: &Api, pods: &ResourceInfo, round: u64) {
    let patch = serde_json::to_vec(&json!({"metadata": {"labels": {"round": round.to_string()}}}))
        .expect("a Value serializes");
    for i in 0..EVENTS_PER_ROUND {
        let name = format!("pod-{i}");
        api.patch(
            pods,
            NS,
            &name,
            Part::Main,
            PatchType::Merge,
            &patch,
            WriteOpts::default(),
        )
        .expect("patch");
    }
}

/// Benchmarks rounds of writes until `delivered` has seen `per_round` more events each.
fn bench_rounds(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    rt: &Runtime,
    (api, pods): (&Api, &ResourceInfo),
    delivered: &Delivered,
    per_round: u64,
) {
    let mut round = 0u64;
    g.bench_function(name, |b| {
        b.iter(|| {
            round += 1;
            let goal = delivered.count.load(Ordering::Acquire) + per_round;
            write_round(api, pods, round);
            rt.block_on(delivered.wait_for(goal));
        })
    });
}

/// A store subscriber that counts the pod events it receives.
async fn count_store_events(
    mut rx: broadcast::Receiver<Arc<ke_apiserver::store::Event>>,
    d: Arc<Delivered>,
) {
    loop {
        match rx.recv().await {
            Ok(ev) if &*ev.prefix == "core/pods" => d.add(1),
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(n)) => panic!("a watcher lagged by {n}"),
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

fn bench_store_fanout(c: &mut Criterion, rt: &Runtime) {
    let api = api_on(Store::open_in_memory(StoreOptions::default()).expect("the store opens"));
    let pods = fill(&api, EVENTS_PER_ROUND as usize, |i| {
        small_pod(format!("pod-{i}"))
    });
    let mut g = c.benchmark_group("apiserver_watch_fanout");
    g.throughput(Throughput::Elements(EVENTS_PER_ROUND));
    let nobody = Delivered::default();
    bench_rounds(&mut g, "writes_only", rt, (&api, &pods), &nobody, 0);
    let delivered = Arc::new(Delivered::default());
    let tasks: Vec<_> = (0..WATCHERS)
        .map(|_| {
            let sub = api
                .store
                .watch("core/pods", Some(api.store.current_rv()))
                .expect("watch");
            rt.spawn(count_store_events(sub.rx, delivered.clone()))
        })
        .collect();
    g.throughput(Throughput::Elements(EVENTS_PER_ROUND * WATCHERS));
    let per_round = EVENTS_PER_ROUND * WATCHERS;
    bench_rounds(
        &mut g,
        "store_subscribers_100",
        rt,
        (&api, &pods),
        &delivered,
        per_round,
    );
    g.finish();
    tasks.iter().for_each(JoinHandle::abort);
}

/// An HTTPS watch of the benchmark pods from version `rv`; counts the events it reads.
async fn count_http_events(client: kube::Client, rv: u64, d: Arc<Delivered>) {
    let path =
        format!("/api/v1/namespaces/{NS}/pods?watch=true&resourceVersion={rv}&timeoutSeconds=3600");
    let req = Request::get(path).body(Vec::new()).expect("request");
    let stream = client.request_stream(req).await.expect("the watch starts");
    let mut lines = stream.lines();
    while let Some(line) = lines.next().await {
        let line = line.expect("the watch stream reads");
        assert!(
            line.contains("\"type\":\"MODIFIED\""),
            "unexpected event: {line:.200}"
        );
        d.add(1);
    }
}

fn bench_http_fanout(c: &mut Criterion, rt: &Runtime) {
    let srv = rt.block_on(start_server());
    let pods = fill(&srv.api, EVENTS_PER_ROUND as usize, |i| {
        small_pod(format!("pod-{i}"))
    });
    let rv = srv.api.store.current_rv();
    let delivered = Arc::new(Delivered::default());
    for _ in 0..WATCHERS {
        rt.spawn(count_http_events(srv.client.clone(), rv, delivered.clone()));
    }
    // Until every watcher has its stream open: one event each.
    write_round(&srv.api, &pods, 0);
    rt.block_on(delivered.wait_for(EVENTS_PER_ROUND * WATCHERS));
    let mut g = c.benchmark_group("apiserver_watch_fanout");
    g.throughput(Throughput::Elements(EVENTS_PER_ROUND * WATCHERS));
    let per_round = EVENTS_PER_ROUND * WATCHERS;
    bench_rounds(
        &mut g,
        "https_watchers_100",
        rt,
        (&srv.api, &pods),
        &delivered,
        per_round,
    );
    g.finish();
    rt.block_on(srv.shutdown());
}

// Written out instead of `criterion_group!`/`criterion_main!`, whose generated `pub fn` trips
// the workspace's `missing_docs` lint.
fn main() {
    let mut c = Criterion::default().configure_from_args();
    let rt = runtime();
    bench_creates(&mut c);
    bench_status_patches(&mut c);
    bench_lists(&mut c, &rt);
    bench_store_fanout(&mut c, &rt);
    bench_http_fanout(&mut c, &rt);
    c.final_summary();
}
