//! edgecore as a whole (`ke_edge::daemon`) with the cloud down: offline autonomy at start
//! (pods stored in SQLite run as real processes within seconds while nothing answers on the
//! cloud's port), clean shutdown (the processes are stopped), and start-up refusals.
//!
//! Certificates are made here with rcgen (a KubeEdge-style CA and a node certificate), as
//! `keadm join` would have left them on disk.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use ke_core::{Entropy, Seed};
use ke_edge::{
    config::{ConfigError, EdgeCoreConfig},
    daemon::{Deps, EdgeCore, EdgeCoreHandle, Error},
    edged::{ProcessConfig, ProcessRuntime},
    edgehub::CloudState,
    metamanager::MetaStore,
};
use ke_net::{Listener as _, TokioTransport, Transport as _};
use ke_proto::{Message, Route};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use serde_json::json;
use tokio::{sync::oneshot, task::JoinHandle, time::Instant};

/// Generous bound for anything involving real processes; never asserted on.
const PATIENCE: Duration = Duration::from_secs(30);

/// Writes a CA and a node certificate for `node` as `rootCA.crt`, `server.crt`, `server.key`.
fn write_credentials(dir: &Path, node: &str) {
    let alg = &rcgen::PKCS_ECDSA_P256_SHA256;
    let ca_key = KeyPair::generate_for(alg).expect("test fixture");
    let mut ca = CertificateParams::default();
    ca.distinguished_name = DistinguishedName::new();
    ca.distinguished_name.push(DnType::CommonName, "KubeEdge");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).expect("test fixture");
    let issuer = Issuer::from_ca_cert_der(ca_cert.der(), ca_key).expect("test fixture");
    let key = KeyPair::generate_for(alg).expect("test fixture");
    let mut p = CertificateParams::default();
    p.distinguished_name = DistinguishedName::new();
    p.distinguished_name
        .push(DnType::OrganizationName, "system:nodes");
    p.distinguished_name
        .push(DnType::CommonName, format!("system:node:{node}"));
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = p.signed_by(&key, &issuer).expect("test fixture");
    std::fs::write(dir.join("rootCA.crt"), ca_cert.pem()).expect("test fixture");
    std::fs::write(dir.join("server.crt"), cert.pem()).expect("test fixture");
    std::fs::write(dir.join("server.key"), key.serialize_pem()).expect("test fixture");
}

/// A port on which nothing listens: bound, then released.
async fn dead_port() -> u16 {
    let listener = TokioTransport
        .bind("127.0.0.1:0".parse().expect("test fixture"))
        .await
        .expect("test fixture");
    listener.local_addr().expect("test fixture").port()
}

/// edgecore.yaml for node `edge-1` under `dir`, with the cloud at 127.0.0.1:`port`.
fn config(dir: &Path, port: u16) -> EdgeCoreConfig {
    let mut cfg = EdgeCoreConfig::default();
    let path = |name: &str| dir.join(name).to_string_lossy().into_owned();
    cfg.database.data_source = path("db/edgecore.db");
    let hub = &mut cfg.modules.edge_hub;
    hub.websocket.server = format!("127.0.0.1:{port}");
    hub.http_server = format!("https://127.0.0.1:{port}");
    hub.tls_ca_file = path("certs/rootCA.crt");
    hub.tls_cert_file = path("certs/server.crt");
    hub.tls_private_key_file = path("certs/server.key");
    let flag = &mut cfg.modules.edged.tailored_kubelet_flag;
    flag.hostname_override = "edge-1".to_owned();
    flag.root_directory = path("kubelet");
    cfg
}

/// Stores a pod whose one container writes its pid to `pid_file` and sleeps, as MetaManager
/// would have stored it before the restart.
fn store_pod(db: &Path, pid_file: &Path) {
    std::fs::create_dir_all(db.parent().expect("test fixture")).expect("test fixture");
    let store = MetaStore::open(db).expect("test fixture");
    let script = format!("echo $$$$ > {}; exec sleep 600", pid_file.display());
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default", "uid": "uid-web",
                     "resourceVersion": "5"},
        "spec": {"nodeName": "edge-1", "restartPolicy": "Always",
                 "terminationGracePeriodSeconds": 2,
                 "containers": [{"name": "main", "image": "busybox",
                                 "command": ["/bin/sh", "-c", script]}]},
    });
    let route = Route::new("edgecontroller", "resource", "insert", "default/pod/web");
    let msg = Message::new("m1", 0, route, pod).with_resource_version("5");
    assert!(store.apply(&msg).expect("test fixture").changed());
}

/// A running daemon.
struct Running {
    handle: EdgeCoreHandle,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), Error>>,
}

fn start(cfg: EdgeCoreConfig) -> Running {
    let root = PathBuf::from(&cfg.modules.edged.tailored_kubelet_flag.root_directory);
    let deps = Deps::with_system_clock(TokioTransport, Entropy::seeded(Seed(7), "daemon-test"));
    let runtime = ProcessRuntime::new(ProcessConfig::new(root));
    let core = EdgeCore::new(cfg, deps, runtime).expect("test fixture");
    let handle = core.handle();
    let (stop, stop_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(core.run(async move {
        let _ = stop_rx.await;
    }));
    Running {
        handle,
        stop: Some(stop),
        task,
    }
}

impl Running {
    async fn shutdown(mut self) {
        let _ = self.stop.take().map(|s| s.send(()));
        tokio::time::timeout(PATIENCE, self.task)
            .await
            .expect("edgecore stops in time")
            .expect("edgecore task")
            .expect("edgecore ends cleanly");
    }
}

/// Polls until `path` holds a pid; returns it.
async fn pid_in(path: &Path) -> u32 {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(pid) = std::fs::read_to_string(path)
            .ok()
            .and_then(|t| t.trim().parse().ok())
        {
            return pid;
        }
        assert!(Instant::now() < deadline, "no pid in {path:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// True if `pid` exists and is not a zombie.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').map(|(_, r)| r.trim_start().to_owned()))
        .is_some_and(|rest| !rest.starts_with('Z'))
}

async fn until_dead(pid: u32) {
    let deadline = Instant::now() + PATIENCE;
    while alive(pid) {
        assert!(Instant::now() < deadline, "process {pid} still alive");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until EdgeHub reports a failed dial.
async fn until_disconnected(handle: &EdgeCoreHandle) {
    let mut cloud = handle.cloud();
    let wait = cloud.wait_for(|s| matches!(s, CloudState::Disconnected { .. }));
    tokio::time::timeout(PATIENCE, wait)
        .await
        .expect("a dial fails in time")
        .expect("state published");
}

fn metric(text: &str, name: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ').map(str::to_owned))
}

/// Goal: with stored certificates and the cloud down, edgecore restores its pods from SQLite
/// as real processes within seconds, reports itself offline and unregistered, and stops the
/// processes on shutdown. Method: a pod in the database before start, a dead cloud port;
/// watch the pid file, the status, the metrics text, then shut down.
#[tokio::test]
async fn offline_start_restores_pods_and_shutdown_stops_them() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("certs")).unwrap();
    write_credentials(&dir.path().join("certs"), "edge-1");
    let cfg = config(dir.path(), dead_port().await);
    let pid_file = dir.path().join("web.pid");
    store_pod(Path::new(&cfg.database.data_source), &pid_file);

    let started = Instant::now();
    let edge = start(cfg);
    let pid = pid_in(&pid_file).await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "pod started after {:?}",
        started.elapsed()
    );
    assert!(alive(pid));
    until_disconnected(&edge.handle).await;
    let status = edge.handle.status();
    assert_eq!(status.pods, 1);
    assert!(!status.registered);
    assert!(!status.cloud.is_connected());
    let text = edge.handle.to_prometheus();
    assert_eq!(metric(&text, "edgecore_pods").as_deref(), Some("1"));
    assert_eq!(
        metric(&text, "edgecore_cloud_connected").as_deref(),
        Some("0")
    );
    assert_eq!(
        metric(&text, "edgecore_node_registered").as_deref(),
        Some("0")
    );
    assert_eq!(
        metric(&text, "edgehub_connects_total").as_deref(),
        Some("0")
    );

    edge.shutdown().await;
    until_dead(pid).await;
}

/// Goal: with a join token but no certificates and the cloud down, the bootstrap retries in
/// the background while the pods run. Method: as above without certificates; the pod starts,
/// no credentials get written, shutdown is clean.
#[tokio::test]
async fn bootstrap_retries_do_not_block_pods() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), dead_port().await);
    cfg.modules.edge_hub.token = format!("{}.aGVhZGVy.Ym9keQ.c2ln", "ab".repeat(32));
    let pid_file = dir.path().join("web.pid");
    store_pod(Path::new(&cfg.database.data_source), &pid_file);

    let edge = start(cfg);
    let pid = pid_in(&pid_file).await;
    assert!(alive(pid));
    assert!(
        edge.handle.hub_metrics().is_none(),
        "no EdgeHub without credentials"
    );
    assert!(!dir.path().join("certs/server.crt").exists());
    edge.shutdown().await;
    until_dead(pid).await;
}

/// Goal: start-up refusals name the problem. Method: no certificates and no token (the
/// operator must act), and a host name as the cloud address (names are not resolved).
#[tokio::test]
async fn start_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), dead_port().await);
    let deps = || Deps::with_system_clock(TokioTransport, Entropy::seeded(Seed(1), "refusals"));
    let runtime = || ProcessRuntime::new(ProcessConfig::new(dir.path().join("kubelet")));
    let core = EdgeCore::new(cfg.clone(), deps(), runtime()).unwrap();
    let result = core.run(std::future::pending()).await;
    assert!(matches!(result, Err(Error::Credentials(_))), "{result:?}");

    let mut named = cfg;
    named.modules.edge_hub.websocket.server = "cloud.example:10000".to_owned();
    match EdgeCore::new(named, deps(), runtime()) {
        Err(Error::Config(ConfigError::Invalid { field, .. })) => {
            assert_eq!(field, "modules.edgeHub.websocket.server");
        }
        other => panic!("expected a config error, got {other:?}"),
    }
}

/// Goal: `mqttMode: 0` needs no external broker: edgecore runs its embedded broker on
/// `mqttServerInternal` and DeviceTwin's EventBus client connects to it; the broker's counters
/// are in `/metrics`; a non-`tcp://` URL is refused naming the key. Method: an offline
/// edgecore (EdgeHub and edged off); a rumqttc "mapper" on the internal port publishes a twin
/// update for an unknown device (repeated until DeviceTwin's client has subscribed) and
/// receives DeviceTwin's 404 on the result topic.
#[tokio::test]
async fn mqtt_mode_0_serves_mappers_on_the_embedded_broker() {
    let dir = tempfile::tempdir().unwrap();
    let port = dead_port().await;
    let mut cfg = config(dir.path(), dead_port().await);
    cfg.modules.edge_hub.enable = false;
    cfg.modules.edged.enable = false;
    cfg.modules.event_bus.mqtt_mode = 0;
    cfg.modules.event_bus.mqtt_server_internal = format!("tcp://127.0.0.1:{port}");
    cfg.modules.event_bus.mqtt_server_external = "tcp://127.0.0.1:1".to_owned();

    let mut bad = cfg.clone();
    bad.modules.event_bus.mqtt_server_internal = format!("ssl://127.0.0.1:{port}");
    let runtime = ProcessRuntime::new(ProcessConfig::new(dir.path().join("kubelet")));
    let deps = Deps::with_system_clock(TokioTransport, Entropy::seeded(Seed(3), "mqtt-mode-0"));
    match EdgeCore::new(bad, deps, runtime) {
        Err(Error::Config(ConfigError::Invalid { field, reason })) => {
            assert_eq!(field, "modules.eventBus.mqttServerInternal");
            assert!(reason.contains("tcp://"), "{reason}");
        }
        other => panic!("expected a config error, got {other:?}"),
    }

    let edge = start(cfg);
    let body = unknown_device_update_result(port).await;
    assert_eq!(body["code"], 404, "{body}");
    let text = edge.handle.to_prometheus();
    assert_eq!(
        metric(&text, "edgecore_mqtt_broker_clients").as_deref(),
        Some("2")
    );
    let published: u64 = metric(&text, "edgecore_mqtt_broker_messages_in_total")
        .unwrap()
        .parse()
        .unwrap();
    assert!(published >= 2, "the update and DeviceTwin's result: {text}");
    edge.shutdown().await;
}

/// Publishes a twin update for an unknown device on the broker at 127.0.0.1:`port` (again
/// every 300 ms, until edgecore's client has subscribed there) and returns DeviceTwin's
/// answer on the result topic.
async fn unknown_device_update_result(port: u16) -> serde_json::Value {
    let mut opts = rumqttc::MqttOptions::new("mapper", "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(30));
    let (client, mut events) = rumqttc::AsyncClient::new(opts, 16);
    let base = "$hw/events/device/default/nope/twin/update";
    client
        .subscribe(format!("{base}/result"), rumqttc::QoS::AtLeastOnce)
        .await
        .expect("test fixture");
    let update = r#"{"event_id":"e1","timestamp":0,"twin":{"t":{"actual":{"value":"1"}}}}"#;
    let deadline = Instant::now() + PATIENCE;
    let mut resend = tokio::time::interval(Duration::from_millis(300));
    let result = loop {
        assert!(Instant::now() < deadline, "no result from DeviceTwin");
        tokio::select! {
            _ = resend.tick() => {
                let _ = client.try_publish(base, rumqttc::QoS::AtLeastOnce, false, update);
            }
            ev = events.poll() => match ev {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => break p,
                Ok(_) => {}
                // The broker may not listen yet: rumqttc retries on the next poll.
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            },
        }
    };
    serde_json::from_slice(&result.payload).expect("DeviceTwin's result is JSON")
}

/// Goal: `mqttMode: 1` does what KubeEdge's does: the internal broker runs and DeviceTwin's
/// EventBus is a client of both brokers. Method: an embedded broker started by the test plays
/// the external one; a "mapper" on each broker gets DeviceTwin's answer to its request.
#[tokio::test]
async fn mqtt_mode_1_serves_both_brokers() {
    use ke_edge::eventbus::broker::{Broker, BrokerConfig};
    let dir = tempfile::tempdir().unwrap();
    let any = "127.0.0.1:0".parse().unwrap();
    let external = Broker::bind(&TokioTransport, any, BrokerConfig::default())
        .await
        .unwrap();
    let external_port = external.local_addr().port();
    let stop_external = tokio_util::sync::CancellationToken::new();
    let external = tokio::spawn(external.run(stop_external.clone().cancelled_owned()));
    let internal_port = dead_port().await;
    let mut cfg = config(dir.path(), dead_port().await);
    cfg.modules.edge_hub.enable = false;
    cfg.modules.edged.enable = false;
    let bus = &mut cfg.modules.event_bus;
    bus.mqtt_mode = 1;
    bus.mqtt_server_internal = format!("tcp://127.0.0.1:{internal_port}");
    bus.mqtt_server_external = format!("tcp://127.0.0.1:{external_port}");
    let edge = start(cfg);
    for port in [internal_port, external_port] {
        let body = unknown_device_update_result(port).await;
        assert_eq!(body["code"], 404, "on port {port}: {body}");
    }
    edge.shutdown().await;
    stop_external.cancel();
    external.await.unwrap();
}
