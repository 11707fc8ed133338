//! cloudcore assembled in-process (embedded API server, CloudHub, certificate server,
//! EdgeController) against a real EdgeHub client: node authorization of upstream requests.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a failed fixture step is a test failure"
)]

use std::{net::SocketAddr, sync::Arc, time::Duration};

use k8s_openapi::api::core::v1::{Pod, Secret};
use ke_cloud::{
    config::CloudCoreConfig,
    daemon::{CloudCore, Deps},
};
use ke_core::{Entropy, Seed, SystemClock};
use ke_edge::{
    certificate::{self, CertPaths},
    edgehub::{CloudState, EdgeHub, EdgeHubConfig},
};
use ke_net::TokioTransport;
use ke_proto::{Content, Group, Message, NodeId, Operation, Route, Source};
use kube::{Api, api::PostParams};
use rustls::pki_types::ServerName;
use tokio::{
    sync::{mpsc, oneshot},
    time::timeout,
};

const WAIT: Duration = Duration::from_secs(20);

fn local0() -> String {
    "127.0.0.1".to_owned()
}

fn config(dir: &std::path::Path) -> CloudCoreConfig {
    let p = |rel: &str| dir.join(rel).display().to_string();
    let mut cfg = CloudCoreConfig::default();
    cfg.common_config.monitor_server.bind_address = "127.0.0.1:0".into();
    cfg.kube_api_config.embedded.data_dir = p("apiserver");
    cfg.kube_api_config.embedded.bind_address = "127.0.0.1:0".into();
    let hub = &mut cfg.modules.cloud_hub;
    hub.tls_ca_file = p("ca/rootCA.crt");
    hub.tls_ca_key_file = p("ca/rootCA.key");
    hub.tls_cert_file = p("certs/server.crt");
    hub.tls_private_key_file = p("certs/server.key");
    hub.websocket.address = local0();
    hub.websocket.port = 1; // replaced below: port 0 is refused by validate()
    hub.https.address = local0();
    hub.https.port = 2;
    cfg
}

struct Running {
    core_hub: SocketAddr,
    client: kube::Client,
    metrics: Arc<ke_cloud::edgecontroller::Metrics>,
    _stop: oneshot::Sender<()>,
}

/// Starts cloudcore on free ports and returns a kube client for its API server.
async fn start(dir: &std::path::Path) -> (Running, String, SocketAddr) {
    start_with(dir, |_| {}).await
}

async fn start_with(
    dir: &std::path::Path,
    tweak: impl FnOnce(&mut CloudCoreConfig),
) -> (Running, String, SocketAddr) {
    let mut cfg = config(dir);
    tweak(&mut cfg);
    cfg.modules.cloud_hub.websocket.port = free_port();
    cfg.modules.cloud_hub.https.port = free_port();
    let deps = Deps::with_system_clock(TokioTransport, Entropy::seeded(Seed(1), "cloudcore"));
    let core = CloudCore::start(cfg, deps).await.unwrap();
    let token = core.join_token(Duration::from_secs(3600));
    let cert_addr = core.cert_addr().unwrap();
    let kc = kube::config::Kubeconfig::read_from(core.kubeconfig_path().unwrap()).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    let running = Running {
        core_hub: core.hub_addr(),
        client,
        metrics: core.controller_metrics(),
        _stop: {
            let (tx, rx) = oneshot::channel::<()>();
            tokio::spawn(core.run(async {
                let _ = rx.await;
            }));
            tx
        },
    };
    (running, token, cert_addr)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Edge {
    down: mpsc::Receiver<Message>,
    up: mpsc::Sender<Message>,
    _stop: oneshot::Sender<()>,
}

/// edge-1 joins with the token and connects a bare EdgeHub (no MetaManager: the test reads
/// what arrives).
async fn edge(dir: &std::path::Path, r: &Running, token: &str, certs: SocketAddr) -> Edge {
    let paths = CertPaths::in_dir(&dir.join("edge-1"));
    let clock = Arc::new(SystemClock);
    let creds = certificate::bootstrap(
        &TokioTransport,
        certs,
        "127.0.0.1",
        token,
        "edge-1",
        &paths,
        clock.clone(),
    )
    .await
    .unwrap();
    let hub = EdgeHub::new(
        TokioTransport,
        r.core_hub,
        ServerName::try_from("127.0.0.1").unwrap(),
        creds.client_config(clock).unwrap(),
        NodeId::new("edge-1").unwrap(),
        "proj",
        EdgeHubConfig::default(),
    );
    let mut state = hub.subscribe();
    let (down_tx, down) = mpsc::channel(64);
    let (up, up_rx) = mpsc::channel(64);
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(hub.run(down_tx, up_rx, async {
        let _ = stopped.await;
    }));
    timeout(WAIT, state.wait_for(CloudState::is_connected))
        .await
        .unwrap()
        .unwrap();
    Edge {
        down,
        up,
        _stop: stop,
    }
}

fn query(id: &str, resource: &str) -> Message {
    let route = Route::new(
        Source::MetaManager,
        Group::Resource,
        Operation::Query,
        resource,
    );
    Message::new(id, 0, route, Content::null())
}

/// The reply to request `id`, skipping anything else the cloud sends.
async fn reply_to(edge: &mut Edge, id: &str) -> Message {
    timeout(WAIT, async {
        loop {
            let m = edge.down.recv().await.unwrap();
            if m.header.parent_id == id {
                return m;
            }
        }
    })
    .await
    .expect("a reply in time")
}

fn secret(name: &str) -> Secret {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": "default"},
        "stringData": {"k": "v"},
    }))
    .unwrap()
}

/// Goal: edge-1 may read a secret only when one of its own pods references it; a refusal is an
/// `error` reply naming the reason, counted, and reveals nothing. Method: secrets s-other
/// (unreferenced) and s-mine (referenced by a pod on edge-1) and s-theirs (referenced by a pod
/// on edge-2); edge-1 queries all three, and asks for edge-2's node and lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_reads_only_secrets_its_pods_reference() {
    let dir = tempfile::tempdir().unwrap();
    let (r, token, certs) = start(dir.path()).await;
    let secrets: Api<Secret> = Api::namespaced(r.client.clone(), "default");
    for s in ["s-other", "s-mine", "s-theirs"] {
        secrets
            .create(&PostParams::default(), &secret(s))
            .await
            .unwrap();
    }
    let pods: Api<Pod> = Api::namespaced(r.client.clone(), "default");
    for (pod, node, s) in [("p1", "edge-1", "s-mine"), ("p2", "edge-2", "s-theirs")] {
        let p: Pod = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": pod, "namespace": "default"},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "i",
                "env": [{"name": "K", "valueFrom": {"secretKeyRef": {"name": s, "key": "k"}}}]}]},
        }))
        .unwrap();
        pods.create(&PostParams::default(), &p).await.unwrap();
    }
    let mut e = edge(dir.path(), &r, &token, certs).await;
    // The controller learns of the pods through its watches: ask for s-mine until allowed.
    let (mut early_refusals, mut attempts) = (0, 0);
    let mine = loop {
        e.up.send(query("q-mine", "default/secret/s-mine"))
            .await
            .unwrap();
        let m = reply_to(&mut e, "q-mine").await;
        if m.route.operation == Operation::Response {
            break m;
        }
        // Before the watches list the pod the node is refused (forbidden); before they list
        // the secret, it is not found (not a refusal).
        let text = m.content.as_str().unwrap_or_default();
        if text.starts_with("forbidden") {
            early_refusals += 1;
        }
        attempts += 1;
        assert!(attempts < 50, "s-mine never allowed: {m:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let name = mine.content.value().pointer("/metadata/name");
    assert_eq!(name.and_then(|v| v.as_str()), Some("s-mine"));
    for (id, resource) in [
        ("q-other", "default/secret/s-other"),
        ("q-theirs", "default/secret/s-theirs"),
        ("q-node", "null/node/edge-2"),
        ("q-lease", "kube-node-lease/lease/edge-2"),
    ] {
        e.up.send(query(id, resource)).await.unwrap();
        let m = reply_to(&mut e, id).await;
        assert_eq!(m.route.operation, Operation::Error, "{resource}: {m:?}");
        let text = m.content.as_str().unwrap_or_default().to_owned();
        assert!(
            text.starts_with("forbidden: node edge-1 may not"),
            "{resource}: {text}"
        );
        assert!(!text.contains("\"v\""), "no secret data in a refusal");
    }
    let forbidden = r.metrics.snapshot().upstream_forbidden;
    assert_eq!(forbidden, 4 + early_refusals);
}

/// Registers edge-1 and reports it Ready, as edgecore's node agent does.
async fn register_ready(e: &mut Edge) {
    let node = serde_json::json!({"apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "edge-1"},
        "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]}});
    let route = Route::new(
        Source::Edged,
        Group::Resource,
        Operation::Insert,
        "null/node/edge-1",
    );
    e.up.send(Message::new("reg", 0, route, node))
        .await
        .unwrap();
    assert_eq!(
        reply_to(e, "reg").await.route.operation,
        Operation::Response
    );
    let patch =
        r#"{"status":{"conditions":[{"type":"Ready","status":"True","reason":"KubeletReady"}]}}"#;
    let route = Route::new(
        Source::Edged,
        Group::Resource,
        Operation::Patch,
        "null/nodepatch/edge-1",
    );
    e.up.send(Message::new("st", 0, route, Content::text(patch)))
        .await
        .unwrap();
    assert_eq!(reply_to(e, "st").await.route.operation, Operation::Response);
}

/// Goal: a node whose edge went away is marked `Ready=Unknown` after the grace period (there
/// is no controller manager with the embedded API server), not before. Method: grace 2 s;
/// edge-1 registers and reports Ready; its EdgeHub stops; the node stays Ready for the first
/// second, then turns Unknown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vanished_node_turns_unknown_after_the_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let (r, token, certs) = start_with(dir.path(), |c| {
        c.modules.edge_controller.node_monitor_grace_period = 2;
    })
    .await;
    let mut e = edge(dir.path(), &r, &token, certs).await;
    register_ready(&mut e).await;
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(r.client.clone());
    let ready = |n: &k8s_openapi::api::core::v1::Node| {
        let cs = n
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default();
        cs.into_iter()
            .find(|c| c.type_ == "Ready")
            .map(|c| c.status)
    };
    assert_eq!(
        ready(&nodes.get("edge-1").await.unwrap()).as_deref(),
        Some("True")
    );
    drop(e);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        ready(&nodes.get("edge-1").await.unwrap()).as_deref(),
        Some("True"),
        "not before the grace period"
    );
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if ready(&nodes.get("edge-1").await.unwrap()).as_deref() == Some("Unknown") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never marked Unknown"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(r.metrics.snapshot().nodes_marked_unknown, 1);
}
