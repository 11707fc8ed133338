//! Device support in an in-process cloudcore (embedded API server, CloudHub, EdgeController)
//! against a bare EdgeHub client that plays edge-1: CRDs at start, Device and DeviceModel
//! down, membership, twin and state reports up with node authorization.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a failed fixture step is a test failure"
)]

use std::{net::SocketAddr, sync::Arc, time::Duration};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use ke_cloud::{
    config::CloudCoreConfig,
    daemon::{CloudCore, Deps},
    devicecontroller::DeviceKind,
};
use ke_core::{Entropy, Seed, SystemClock};
use ke_edge::{
    certificate::{self, CertPaths},
    edgehub::{CloudState, EdgeHub, EdgeHubConfig},
};
use ke_net::TokioTransport;
use ke_proto::{
    Content, Group, Message, NodeId, Operation, Route, SequentialIds, Source, inventory::Inventory,
};
use kube::{
    Api,
    api::{DynamicObject, ListParams, PostParams},
};
use rustls::pki_types::ServerName;
use serde_json::{Value, json};
use tokio::{
    sync::{mpsc, oneshot},
    time::timeout,
};

const WAIT: Duration = Duration::from_secs(20);

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
    hub.websocket.address = "127.0.0.1".into();
    hub.websocket.port = free_port();
    hub.https.address = "127.0.0.1".into();
    hub.https.port = free_port();
    cfg
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Running {
    hub: SocketAddr,
    certs: SocketAddr,
    token: String,
    client: kube::Client,
    metrics: Arc<ke_cloud::edgecontroller::Metrics>,
    render: Arc<dyn Fn() -> String + Send + Sync>,
    stop: oneshot::Sender<()>,
    done: tokio::task::JoinHandle<Result<(), ke_cloud::daemon::Error>>,
}

/// Starts cloudcore on free ports with a kube client for its API server.
async fn start(dir: &std::path::Path) -> Running {
    start_with(dir, |_| {}).await
}

async fn start_with(dir: &std::path::Path, tweak: impl FnOnce(&mut CloudCoreConfig)) -> Running {
    let mut cfg = config(dir);
    tweak(&mut cfg);
    let deps = Deps::with_system_clock(TokioTransport, Entropy::seeded(Seed(7), "cloudcore"));
    let core = CloudCore::start(cfg, deps).await.unwrap();
    let kc = kube::config::Kubeconfig::read_from(core.kubeconfig_path().unwrap()).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    Running {
        hub: core.hub_addr(),
        certs: core.cert_addr().unwrap(),
        token: core.join_token(Duration::from_secs(3600)),
        client: kube::Client::try_from(config).unwrap(),
        metrics: core.controller_metrics(),
        render: core.metrics_renderer(),
        stop: tx,
        done: tokio::spawn(core.run(async {
            let _ = rx.await;
        })),
    }
}

struct Edge {
    down: mpsc::Receiver<Message>,
    up: mpsc::Sender<Message>,
    ids: SequentialIds,
    _stop: oneshot::Sender<()>,
}

/// edge-1 joins and connects a bare EdgeHub, then sends an empty inventory (so the controller
/// sends at once instead of waiting for a stock edge's missing inventory).
async fn edge(dir: &std::path::Path, r: &Running) -> Edge {
    let paths = CertPaths::in_dir(&dir.join("edge-1"));
    let clock = Arc::new(SystemClock);
    let t = TokioTransport;
    let creds = certificate::bootstrap(
        &t,
        r.certs,
        "127.0.0.1",
        &r.token,
        "edge-1",
        &paths,
        clock.clone(),
    )
    .await
    .unwrap();
    let node = NodeId::new("edge-1").unwrap();
    let hub = EdgeHub::new(
        TokioTransport,
        r.hub,
        ServerName::try_from("127.0.0.1").unwrap(),
        creds.client_config(clock).unwrap(),
        node.clone(),
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
    let mut ids = SequentialIds::new("edge");
    up.send(Inventory::default().to_message(&node, &mut ids, 0))
        .await
        .unwrap();
    Edge {
        down,
        up,
        ids,
        _stop: stop,
    }
}

impl Edge {
    /// The next message from the cloud.
    async fn next(&mut self) -> Message {
        timeout(WAIT, self.down.recv())
            .await
            .expect("a message in time")
            .unwrap()
    }

    /// The reply to request `id`, skipping anything else.
    async fn reply_to(&mut self, id: &str) -> Message {
        loop {
            let m = self.next().await;
            if m.header.parent_id == id {
                return m;
            }
        }
    }

    async fn ack(&mut self, msg: &Message) {
        let ack = Message::ack_for(msg, &mut self.ids, 0);
        self.up.send(ack).await.unwrap();
    }

    async fn send(&mut self, id: &str, op: Operation, resource: &str, content: Content) {
        let route = Route::new(Source::Twin, Group::Resource, op, resource);
        self.up
            .send(Message::new(id, 0, route, content))
            .await
            .unwrap();
    }
}

fn api(r: &Running, kind: DeviceKind) -> Api<DynamicObject> {
    Api::namespaced_with(r.client.clone(), "default", &kind.api_resource())
}

async fn create(r: &Running, kind: DeviceKind, body: Value) -> DynamicObject {
    let obj: DynamicObject = serde_json::from_value(body).unwrap();
    api(r, kind)
        .create(&PostParams::default(), &obj)
        .await
        .unwrap()
}

fn device(name: &str, node: &str) -> Value {
    json!({"apiVersion": "devices.kubeedge.io/v1beta1", "kind": "Device",
        "metadata": {"name": name, "namespace": "default", "labels": {"description": "boiler"}},
        "spec": {"nodeName": node, "deviceModelRef": {"name": "thermo-model"},
            "protocol": {"protocolName": "modbus", "configData": {"slave": 1}},
            "properties": [{"name": "temp", "desired": {"value": "25", "metadata": {"type": "int"}},
                            "reportCycle": 1000, "reportToCloud": true}]}})
}

fn twin_report(value: &str, ts: i64) -> Value {
    json!({"event_id": format!("ev-{value}"), "timestamp": ts, "twin": {"temp": {
        "actual": {"value": value, "metadata": {"timestamp": ts}},
        "expected": {"value": "25"},
        "metadata": {"type": "int"}}}})
}

/// `status.twins` of DeviceStatus `name` (`None` if it does not exist).
async fn twins(r: &Running, name: &str) -> Option<Value> {
    let st = api(r, DeviceKind::DeviceStatus)
        .get_opt(name)
        .await
        .unwrap()?;
    Some(serde_json::to_value(st).unwrap()["status"]["twins"].clone())
}

/// Waits until the API server lists the three device CRDs (cloudcore installs them at start).
async fn crds_installed(r: &Running) {
    let crds: Api<CustomResourceDefinition> = Api::all(r.client.clone());
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let names: Vec<String> = crds
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter_map(|c| c.metadata.name)
            .collect();
        let want = [
            "devicemodels.devices.kubeedge.io",
            "devices.devices.kubeedge.io",
            "devicestatuses.devices.kubeedge.io",
        ];
        if want.iter().all(|w| names.iter().any(|n| n == w)) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "CRDs: {names:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Receives until the device model, the device and a membership message have arrived
/// (ACKing the two objects); returns them in arrival order.
async fn device_delivery(e: &mut Edge) -> Vec<Message> {
    let mut got: Vec<Message> = Vec::new();
    let done = |got: &[Message]| {
        [
            "default/devicemodel/thermo-model",
            "default/device/thermo",
            "membership",
        ]
        .iter()
        .all(|r| got.iter().any(|m| m.route.resource == *r))
    };
    while !done(&got) {
        let m = e.next().await;
        if got.iter().any(|g| g.route.resource == m.route.resource) {
            continue; // a resend
        }
        if m.route.group == Group::Resource {
            e.ack(&m).await;
        }
        got.push(m);
    }
    got
}

/// Goal: with the embedded API server, cloudcore installs the device CRDs at start and sends a
/// Device bound to edge-1 (after its DeviceModel) and a membership message; edge-1's twin
/// reports land in the DeviceStatus from the first one on, in order, each confirmed by an
/// `"OK"` response to the report; a report for another node's device and a malformed report
/// are answered `error` and write nothing; state reports and `membership/detail` work.
/// Method: a real cloudcore and a bare EdgeHub as edge-1; objects through the kube client;
/// reports sent as edgecore's DeviceTwin does (twin as an object, state as a JSON string).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_down_twins_up() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(dir.path()).await;
    crds_installed(&r).await;
    let mut e = edge(dir.path(), &r).await;
    let before = watch_events(&r);
    create(
        &r,
        DeviceKind::DeviceModel,
        json!({"apiVersion": "devices.kubeedge.io/v1beta1",
        "kind": "DeviceModel", "metadata": {"name": "thermo-model", "namespace": "default"},
        "spec": {"protocol": "modbus", "properties": [{"name": "temp", "type": "INT",
            "accessMode": "ReadWrite", "minimum": "0", "maximum": "100", "unit": "C"}]}}),
    )
    .await;
    // Models and devices come from two watches: a device is sent after its model only once
    // the model's event has reached the EdgeController (as a pod follows its configmaps), so
    // wait for that event before creating the devices.
    for _ in 0..500 {
        if watch_events(&r) > before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        watch_events(&r) > before,
        "the model's watch event never arrived"
    );
    create(&r, DeviceKind::Device, device("other", "edge-2")).await;
    let thermo = create(&r, DeviceKind::Device, device("thermo", "edge-1")).await;
    let got = device_delivery(&mut e).await;
    check_delivery(&got);

    twin_reports(&r, &mut e, &thermo).await;
    refusals(&r, &mut e).await;
    state_and_membership(&r, &mut e).await;
    device_deleted(&r, &mut e).await;
    device_recreated(&r, &mut e).await;
    let text = (r.render)();
    assert!(
        text.contains("devicecontroller_twin_reports_total 6"),
        "{text}"
    );
    assert!(text.contains("devicecontroller_refusals_total 1"), "{text}");
}

/// `edgecontroller_watch_events_total` from cloudcore's metrics.
fn watch_events(r: &Running) -> u64 {
    (r.render)()
        .lines()
        .find_map(|l| l.strip_prefix("edgecontroller_watch_events_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn check_delivery(got: &[Message]) {
    let at = |res: &str| got.iter().position(|m| m.route.resource == res).unwrap();
    let (model, dev) = (
        at("default/devicemodel/thermo-model"),
        at("default/device/thermo"),
    );
    assert!(model < dev, "the model goes first: {got:?}");
    for i in [model, dev] {
        let m = &got[i];
        assert_eq!(m.route.source, Source::DeviceController);
        assert_eq!(m.route.operation, Operation::Insert);
        assert!(
            !m.header.resource_version.is_empty(),
            "ACK mode needs the RV"
        );
        assert_eq!(
            m.content.value()["apiVersion"],
            "devices.kubeedge.io/v1beta1"
        );
    }
    assert_eq!(got[dev].content.value()["kind"], "Device");
    assert_eq!(got[model].content.value()["kind"], "DeviceModel");
    let mem = &got[at("membership")];
    assert_eq!(
        (
            mem.route.source.clone(),
            mem.route.group.clone(),
            mem.route.operation.clone()
        ),
        (Source::DeviceController, Group::Twin, Operation::Update)
    );
    let added = &mem.content.value()["added_devices"];
    assert_eq!(
        added,
        &json!([{"id": "default/thermo", "name": "thermo", "description": "boiler"}])
    );
    assert!(
        got.iter()
            .all(|m| m.route.resource != "default/device/other")
    );
}

async fn twin_reports(r: &Running, e: &mut Edge, thermo: &DynamicObject) {
    let res = "device/default/thermo/twin/edge_updated";
    e.send(
        "t1",
        Operation::Update,
        res,
        Content::new(twin_report("23", 1_700_000_000_000)),
    )
    .await;
    let ok = e.reply_to("t1").await;
    assert_eq!(ok.route.operation, Operation::Response, "{ok:?}");
    assert_eq!(
        (
            ok.route.source.clone(),
            ok.route.group.clone(),
            ok.route.resource.as_str()
        ),
        (Source::DeviceController, Group::Twin, "twin")
    );
    assert_eq!(ok.content.as_str(), Some("OK"));
    let t = twins(r, "thermo").await.unwrap();
    assert_eq!(
        t,
        json!([{"propertyName": "temp",
            "reported": {"value": "23", "metadata": {"timestamp": "1700000000000", "type": "int"}},
            "observedDesired": {"value": "25", "metadata": {"type": "int"}}}]),
        "the first report is written"
    );
    let st = api(r, DeviceKind::DeviceStatus)
        .get("thermo")
        .await
        .unwrap();
    let owner = &st.metadata.owner_references.unwrap()[0];
    assert_eq!(owner.uid, thermo.metadata.uid.clone().unwrap());
    assert_eq!(
        (owner.controller, owner.block_owner_deletion),
        (Some(true), Some(true))
    );
    // Two reports in a row, the second as a JSON string (both forms are accepted).
    e.send(
        "t2",
        Operation::Update,
        res,
        Content::new(twin_report("24", 1_700_000_001_000)),
    )
    .await;
    let as_text = twin_report("26", 1_700_000_002_000).to_string();
    e.send("t3", Operation::Update, res, Content::text(as_text))
        .await;
    assert_eq!(e.reply_to("t2").await.content.as_str(), Some("OK"));
    assert_eq!(e.reply_to("t3").await.content.as_str(), Some("OK"));
    let t = twins(r, "thermo").await.unwrap();
    assert_eq!(t[0]["reported"]["value"], "26", "the last report wins: {t}");
    let m = r.metrics.snapshot();
    assert_eq!((m.device_status_creates, m.device_status_patches), (1, 2));
}

async fn refusals(r: &Running, e: &mut Edge) {
    let other = "device/default/other/twin/edge_updated";
    e.send(
        "x1",
        Operation::Update,
        other,
        Content::new(twin_report("99", 1)),
    )
    .await;
    let m = e.reply_to("x1").await;
    assert_eq!(m.route.operation, Operation::Error);
    let text = m.content.as_str().unwrap_or_default();
    assert!(
        text.starts_with("forbidden: node edge-1 may not report for device default/other"),
        "{text}"
    );
    assert_eq!(twins(r, "other").await, None, "nothing written");
    let res = "device/default/thermo/twin/edge_updated";
    e.send("x2", Operation::Update, res, Content::text("{not json"))
        .await;
    let m = e.reply_to("x2").await;
    assert_eq!(m.route.operation, Operation::Error);
    assert!(
        m.content
            .as_str()
            .unwrap_or_default()
            .starts_with("bad request")
    );
    let t = twins(r, "thermo").await.unwrap();
    assert_eq!(t[0]["reported"]["value"], "26", "nothing written: {t}");
    let snap = r.metrics.snapshot();
    assert_eq!((snap.device_refusals, snap.upstream_forbidden), (1, 1));
}

async fn state_and_membership(r: &Running, e: &mut Edge) {
    let state = json!({"event_id": "s", "timestamp": 5,
        "device": {"name": "thermo", "state": "online", "lastOnlineTime": "2026-01-01T00:00:00Z"}});
    let res = "device/default/thermo/state/update";
    e.send(
        "s1",
        Operation::Update,
        res,
        Content::text(state.to_string()),
    )
    .await;
    assert_eq!(e.reply_to("s1").await.content.as_str(), Some("OK"));
    let st = api(r, DeviceKind::DeviceStatus)
        .get("thermo")
        .await
        .unwrap();
    let st = serde_json::to_value(st).unwrap();
    assert_eq!(st["status"]["state"], "online");
    assert_eq!(st["status"]["lastOnlineTime"], "2026-01-01T00:00:00Z");
    assert_eq!(
        st["status"]["twins"][0]["reported"]["value"], "26",
        "twins kept"
    );
    let detail = json!({"event_type": "group_membership_event", "event_id": "d1",
        "operation": "detail", "group_id": "edge-1", "timestamp": 1});
    e.send(
        "m1",
        Operation::Get,
        "membership/detail",
        Content::text(detail.to_string()),
    )
    .await;
    let m = e.reply_to("m1").await;
    assert_eq!(m.route.operation, Operation::Response, "{m:?}");
    assert_eq!(m.route.resource, "membership/detail");
    let v = m.content.value();
    assert_eq!(v["event_id"], "d1");
    assert_eq!(
        v["devices"],
        json!([{"id": "default/thermo", "name": "thermo", "description": "boiler"}])
    );
}

/// The device's delete, the model's release and a membership removal, whatever the order.
async fn device_deleted(r: &Running, e: &mut Edge) {
    let dp = kube::api::DeleteParams::default();
    api(r, DeviceKind::Device)
        .delete("thermo", &dp)
        .await
        .unwrap();
    let (mut device, mut model, mut membership) = (false, false, false);
    while !(device && model && membership) {
        let m = e.next().await;
        match m.route.resource.as_str() {
            "default/device/thermo" if m.route.operation == Operation::Delete => {
                assert!(!m.is_release(), "the device is gone: a real delete");
                device = true;
            }
            "default/devicemodel/thermo-model" if m.route.operation == Operation::Delete => {
                assert!(m.is_release(), "the model still exists: released");
                model = true;
            }
            "membership" => {
                let removed = &m.content.value()["removed_devices"];
                assert_eq!(removed[0]["id"], "default/thermo");
                membership = true;
            }
            _ => continue,
        }
        if m.route.group == Group::Resource {
            e.ack(&m).await;
        }
    }
}

/// A new Device of the same name (the embedded API server has no garbage collector, so the
/// old DeviceStatus is still there) adopts the DeviceStatus on its first report: the owner is
/// the new Device and the old twins are gone.
async fn device_recreated(r: &Running, e: &mut Edge) {
    let mut body = device("thermo", "edge-1");
    body["spec"]["properties"][0]["name"] = "pressure".into();
    let thermo = create(r, DeviceKind::Device, body).await;
    loop {
        let m = e.next().await;
        if m.route.group == Group::Resource {
            e.ack(&m).await;
        }
        if m.route.resource == "default/device/thermo" {
            break;
        }
    }
    let report = json!({"twin": {"pressure": {"actual": {"value": "3"}}}});
    let res = "device/default/thermo/twin/edge_updated";
    e.send("a1", Operation::Update, res, Content::new(report))
        .await;
    assert_eq!(e.reply_to("a1").await.content.as_str(), Some("OK"));
    let st = api(r, DeviceKind::DeviceStatus)
        .get("thermo")
        .await
        .unwrap();
    let owners = st.metadata.owner_references.clone().unwrap();
    assert_eq!(owners.len(), 1);
    assert_eq!(owners[0].uid, thermo.metadata.uid.clone().unwrap());
    let t = serde_json::to_value(st).unwrap()["status"]["twins"].clone();
    assert_eq!(
        t,
        json!([{"propertyName": "pressure", "reported": {"value": "3"}}])
    );
}

/// Goal: with `modules.deviceController.enable: false` no device CRD is installed, the
/// EdgeController does not wait for device watches (a pod still reaches its edge) and a twin
/// report is answered `error` (unsupported). Method: cloudcore with device support off; edge-1
/// connects; a pod for edge-1 is created; edge-1 sends a twin report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_support_off() {
    let dir = tempfile::tempdir().unwrap();
    let r = start_with(dir.path(), |c| c.modules.device_controller.enable = false).await;
    let mut e = edge(dir.path(), &r).await;
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(r.client.clone(), "default");
    let pod = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "namespace": "default"},
        "spec": {"nodeName": "edge-1", "containers": [{"name": "c", "image": "i"}]}}))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    loop {
        let m = e.next().await;
        if m.route.resource == "default/pod/p" {
            break;
        }
    }
    let crds: Api<CustomResourceDefinition> = Api::all(r.client.clone());
    let list = crds.list(&ListParams::default()).await.unwrap();
    assert!(list.items.is_empty(), "no device CRDs");
    let res = "device/default/thermo/twin/edge_updated";
    e.send(
        "t",
        Operation::Update,
        res,
        Content::new(twin_report("1", 1)),
    )
    .await;
    let m = e.reply_to("t").await;
    assert_eq!(m.route.operation, Operation::Error);
    assert!(
        m.content
            .as_str()
            .unwrap_or_default()
            .starts_with("unsupported"),
        "{m:?}"
    );
}

/// Goal: a device CRD that differs from cloudcore's (here: someone gave it a status
/// subresource, which would make the controller's merge patches drop `status`) is replaced at
/// the next start. Method: start, change the Device CRD through the API, stop, start again on
/// the same data directory, read the CRD.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_crd_is_replaced_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let r = start(dir.path()).await;
    crds_installed(&r).await;
    let crds: Api<CustomResourceDefinition> = Api::all(r.client.clone());
    let name = "devices.devices.kubeedge.io";
    let mut crd = crds.get(name).await.unwrap();
    crd.spec.versions[0].subresources = serde_json::from_value(json!({"status": {}})).unwrap();
    crds.replace(name, &PostParams::default(), &crd)
        .await
        .unwrap();
    let status = |c: &CustomResourceDefinition| {
        c.spec.versions[0]
            .subresources
            .as_ref()
            .is_some_and(|s| s.status.is_some())
    };
    assert!(status(&crds.get(name).await.unwrap()));
    drop(r.stop);
    r.done.await.unwrap().unwrap();
    let r = start(dir.path()).await;
    let crds: Api<CustomResourceDefinition> = Api::all(r.client.clone());
    let deadline = tokio::time::Instant::now() + WAIT;
    while status(&crds.get(name).await.unwrap()) {
        assert!(tokio::time::Instant::now() < deadline, "never replaced");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(r.metrics.snapshot().api_requests.get("update"), Some(&1));
}
