//! CloudHub and EdgeHub over real loopback TLS (ke-net `TokioTransport`, port 0, rcgen PKI).
//!
//! Timing uses real tokio time with intervals shrunk to tens or hundreds of milliseconds:
//! paused time auto-advances whenever the runtime waits on a real socket, which would fire
//! keepalive deadlines spuriously. Every wait is bounded by [`WAIT`].
#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a failed fixture step is a test failure"
)]

use std::{net::SocketAddr, sync::Arc, time::Duration};

use futures::{SinkExt, StreamExt};
use ke_cloud::cloudhub::{CloseReason, Hub, HubConfig, HubEvent, HubHandle, HubOutputs, Queued};
use ke_core::{Entropy, Seed};
use ke_edge::edgehub::{CloudState, EdgeHub, EdgeHubConfig, EdgeHubMetrics};
use ke_net::{TokioTransport, Transport};
use ke_proto::{Content, Group, Message, NodeId, Operation, Route, SequentialIds, Source};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};
use rustls::{
    ClientConfig, RootCertStore, ServerConfig,
    pki_types::{CertificateDer, PrivateKeyDer, ServerName},
    server::WebPkiClientVerifier,
};
use serde_json::json;
use tokio::{
    sync::{mpsc, oneshot, watch},
    task::JoinHandle,
    time::{sleep, timeout},
};
use tokio_rustls::{TlsConnector, client::TlsStream};
use tokio_tungstenite::{
    WebSocketStream, client_async,
    tungstenite::{self, Message as WsMessage, client::IntoClientRequest},
};

/// Upper bound of any single wait in these tests.
const WAIT: Duration = Duration::from_secs(10);
const RESEND: Duration = Duration::from_millis(200);

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}

// ---------------------------------------------------------------------------------------
// PKI: a CA, a server certificate for localhost, node client certificates.

struct Pki {
    ca: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
    server: Arc<ServerConfig>,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl Pki {
    fn new() -> Self {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "KubeEdge");
        let ca = ca_params.self_signed(&ca_key).unwrap().der().clone();
        let issuer = Issuer::new(ca_params, ca_key);
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "KubeEdge");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap().der().clone();
        let verifier = WebPkiClientVerifier::builder_with_provider(roots(&ca), provider())
            .build()
            .unwrap();
        let server = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![cert], PrivateKeyDer::Pkcs8(key.serialize_der().into()))
            .unwrap();
        Self {
            ca,
            issuer,
            server: Arc::new(server),
        }
    }

    /// A client config presenting a certificate with CN `system:node:<node>`.
    fn client(&self, node: &str) -> Arc<ClientConfig> {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("system:node:{node}"));
        params
            .distinguished_name
            .push(DnType::OrganizationName, "system:nodes");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap().der().clone();
        let cfg = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots(&self.ca))
            .with_client_auth_cert(vec![cert], PrivateKeyDer::Pkcs8(key.serialize_der().into()))
            .unwrap();
        Arc::new(cfg)
    }
}

fn roots(ca: &CertificateDer<'static>) -> Arc<RootCertStore> {
    let mut roots = RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    Arc::new(roots)
}

// ---------------------------------------------------------------------------------------
// Running a hub and an edge.

struct RunningHub {
    handle: HubHandle,
    out: HubOutputs,
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl RunningHub {
    async fn start(pki: &Pki, cfg: HubConfig, addr: SocketAddr) -> Self {
        let (hub, out) = Hub::bind(TokioTransport, addr, pki.server.clone(), cfg)
            .await
            .unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = hub.handle();
        let addr = hub.local_addr();
        let task = tokio::spawn(hub.run(async {
            let _ = stopped.await;
        }));
        Self {
            handle,
            out,
            addr,
            stop,
            task,
        }
    }

    async fn stop(self) -> HubHandle {
        let _ = self.stop.send(());
        timeout(WAIT, self.task).await.unwrap().unwrap();
        self.handle
    }

    async fn event(&mut self) -> HubEvent {
        timeout(WAIT, self.out.events.recv())
            .await
            .expect("event in time")
            .expect("event channel open")
    }
}

fn hub_cfg() -> HubConfig {
    HubConfig {
        keepalive_interval: Duration::from_millis(800),
        ack_resend_interval: RESEND,
        handshake_timeout: Duration::from_secs(5),
        write_timeout: Duration::from_secs(5),
        drain_timeout: Duration::from_secs(2),
        ..HubConfig::default()
    }
}

/// A configuration whose keepalive never expires during a test (for raw clients).
fn patient_hub_cfg() -> HubConfig {
    HubConfig {
        keepalive_interval: Duration::from_secs(30),
        ..hub_cfg()
    }
}

fn edge_cfg() -> EdgeHubConfig {
    EdgeHubConfig {
        heartbeat: Duration::from_millis(100),
        reconnect_backoff_initial: Duration::from_millis(50),
        reconnect_backoff_max: Duration::from_millis(300),
        handshake_timeout: Duration::from_secs(5),
        write_timeout: Duration::from_secs(5),
        cloud_silence_max: Duration::from_secs(3),
        ..EdgeHubConfig::default()
    }
}

struct Edge {
    down: mpsc::Receiver<Message>,
    up: mpsc::Sender<Message>,
    state: watch::Receiver<CloudState>,
    metrics: Arc<EdgeHubMetrics>,
    _stop: oneshot::Sender<()>,
}

impl Edge {
    fn start(pki: &Pki, addr: SocketAddr, cert_node: &str, node: &str, cfg: EdgeHubConfig) -> Self {
        let hub = EdgeHub::new(
            TokioTransport,
            addr,
            ServerName::try_from("localhost").unwrap(),
            pki.client(cert_node),
            NodeId::new(node).unwrap(),
            "proj",
            cfg,
        )
        .with_entropy(Entropy::seeded(Seed(7), &format!("{node}/edgehub")));
        let state = hub.subscribe();
        let metrics = hub.metrics();
        let (down_tx, down) = mpsc::channel(64);
        let (up, up_rx) = mpsc::channel(64);
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(hub.run(down_tx, up_rx, async {
            let _ = stopped.await;
        }));
        Self {
            down,
            up,
            state,
            metrics,
            _stop: stop,
        }
    }

    async fn wait_state(&mut self, pred: impl FnMut(&CloudState) -> bool) -> CloudState {
        timeout(WAIT, self.state.wait_for(pred))
            .await
            .expect("state in time")
            .expect("edgehub alive")
            .clone()
    }

    async fn recv(&mut self) -> Message {
        timeout(WAIT, self.down.recv())
            .await
            .expect("downstream message in time")
            .expect("edgehub alive")
    }

    /// ACKs `msg` as MetaManager would after persisting it.
    async fn ack(&self, msg: &Message) {
        let mut ids = SequentialIds::new("ack");
        self.up
            .send(Message::ack_for(msg, &mut ids, 0))
            .await
            .unwrap();
    }
}

fn pod(id: &str, uid: &str, rv: u64) -> Message {
    let route = Route::new(
        Source::EdgeController,
        Group::Resource,
        Operation::Update,
        "default/pod/nginx",
    );
    let content = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "nginx", "namespace": "default", "uid": uid,
                     "resourceVersion": rv.to_string()},
        "spec": {"nodeName": "edge-1"}
    });
    Message::new(id, 0, route, Content::new(content)).with_resource_version(rv.to_string())
}

fn node(name: &str) -> NodeId {
    NodeId::new(name).unwrap()
}

async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------------------------------
// Raw clients, for what EdgeHub would never send.

type RawWs = WebSocketStream<TlsStream<<TokioTransport as Transport>::Conn>>;

async fn raw_connect(
    pki: &Pki,
    addr: SocketAddr,
    cert_node: &str,
    node_id: &str,
) -> Result<RawWs, tungstenite::Error> {
    let tcp = TokioTransport.connect(addr).await.unwrap();
    let tls = TlsConnector::from(pki.client(cert_node))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let url = format!("wss://localhost:{}/proj/{node_id}/events", addr.port());
    let mut req = url.into_client_request().unwrap();
    req.headers_mut()
        .insert("node_id", node_id.parse().unwrap());
    req.headers_mut()
        .insert("project_id", "proj".parse().unwrap());
    req.headers_mut()
        .insert("ConnectionUse", "msg".parse().unwrap());
    client_async(req, tls).await.map(|(ws, _)| ws)
}

/// The status and body of a refused upgrade.
fn refusal(result: Result<RawWs, tungstenite::Error>) -> (u16, String) {
    match result {
        Err(tungstenite::Error::Http(resp)) => {
            let body = resp.body().clone().unwrap_or_default();
            (resp.status().as_u16(), String::from_utf8(body).unwrap())
        }
        Err(e) => panic!("expected an HTTP refusal, got {e}"),
        Ok(_) => panic!("expected an HTTP refusal, got a session"),
    }
}

/// Reads until a close frame and returns its reason.
async fn close_reason(ws: &mut RawWs) -> String {
    timeout(WAIT, async {
        loop {
            match ws.next().await {
                Some(Ok(WsMessage::Close(frame))) => {
                    return frame.map(|f| f.reason.to_string()).unwrap_or_default();
                }
                Some(Ok(_)) => {}
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    })
    .await
    .expect("close frame in time")
}

fn localhost0() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

// ---------------------------------------------------------------------------------------

/// Goal: an EdgeHub joins, the hub reports `Connected`, a pod sent with `HubHandle::send`
/// reaches the edge, and heartbeats keep the session past the keepalive interval. Method:
/// real EdgeHub (100 ms heartbeat) against a hub with an 800 ms keepalive; wait 2 s.
#[tokio::test]
async fn edge_connects_and_receives_a_pod() {
    init_tracing();
    let pki = Pki::new();
    let mut hub = RunningHub::start(&pki, hub_cfg(), localhost0()).await;
    let mut edge = Edge::start(&pki, hub.addr, "edge-1", "edge-1", edge_cfg());
    let edge_1 = node("edge-1");
    assert!(matches!(hub.event().await, HubEvent::Connected { node, .. } if node == edge_1));
    edge.wait_state(CloudState::is_connected).await;
    assert_eq!(
        hub.handle.send(&node("edge-1"), pod("m1", "u1", 5)),
        Ok(Queued::New)
    );
    let got = edge.recv().await;
    assert_eq!(got.header.id, "m1");
    assert_eq!(got.route.resource, "default/pod/nginx");
    assert_eq!(got.header.resource_version, "5");
    sleep(Duration::from_secs(2)).await;
    assert!(hub.handle.is_connected(&node("edge-1")));
    assert!(
        hub.out.events.try_recv().is_err(),
        "no disconnect while heartbeats flow"
    );
    let m = hub.handle.metrics();
    assert_eq!(m.connected_nodes, 1);
    assert!(m.messages_in >= 10, "keepalives counted: {}", m.messages_in);
    assert!(edge.metrics.snapshot().keepalives >= 10);
    assert!(
        hub.handle
            .metrics_text()
            .contains("cloudhub_connected_nodes 1")
    );
}

/// Goal: an ACK stops the resends and is recorded, and is not passed upstream. Method:
/// receive the pod, ACK it through EdgeHub's upstream channel, wait for the hub to count the
/// ACK, then watch four resend intervals for further copies.
#[tokio::test]
async fn ack_stops_resend() {
    init_tracing();
    let pki = Pki::new();
    let mut hub = RunningHub::start(&pki, hub_cfg(), localhost0()).await;
    let mut edge = Edge::start(&pki, hub.addr, "edge-1", "edge-1", edge_cfg());
    hub.event().await;
    hub.handle
        .send(&node("edge-1"), pod("m1", "u1", 5))
        .unwrap();
    let got = edge.recv().await;
    edge.ack(&got).await;
    let handle = hub.handle.clone();
    eventually("the ACK", || handle.metrics().acks == 1).await;
    while edge.down.try_recv().is_ok() {} // a resend that crossed the ACK
    sleep(RESEND * 4).await;
    assert!(edge.down.try_recv().is_err(), "no resend after the ACK");
    let m = hub.handle.metrics();
    assert_eq!((m.inflight, m.ack_queue_depth), (0, 0));
    assert_eq!(m.ack_latency_buckets.iter().sum::<u64>(), 1);
    assert!(
        hub.out.upstream.try_recv().is_err(),
        "ACKs are consumed by the hub"
    );
}

/// Goal: while EdgeController's channel is full a session still applies ACKs and does not
/// time the edge out, and its upstream messages arrive later, in order. Method: a channel of
/// one and two held messages per session; nobody reads the channel. The edge sends two
/// messages (one in the channel, one held), ACKs a pod (counted at once), sends a third (the
/// session is now full and stops reading) and waits past the keepalive interval; then the
/// channel is drained.
#[tokio::test]
async fn acks_pass_while_the_upstream_channel_is_full() {
    init_tracing();
    let pki = Pki::new();
    let cfg = HubConfig {
        upstream_buffer_max: 1,
        session_held_max: 2,
        ..hub_cfg()
    };
    let mut hub = RunningHub::start(&pki, cfg, localhost0()).await;
    let mut edge = Edge::start(&pki, hub.addr, "edge-1", "edge-1", edge_cfg());
    hub.event().await;
    let route = Route::new(
        Source::Edged,
        Group::Meta,
        Operation::Update,
        "default/podstatus/p",
    );
    let up = |i: u32| Message::new(format!("up-{i}"), 0, route.clone(), Content::text("{}"));
    edge.up.send(up(1)).await.unwrap();
    edge.up.send(up(2)).await.unwrap();
    let handle = hub.handle.clone();
    eventually("a held message", || handle.metrics().upstream_held == 1).await;
    hub.handle
        .send(&node("edge-1"), pod("m1", "u1", 5))
        .unwrap();
    let got = edge.recv().await;
    edge.ack(&got).await;
    eventually("the ACK behind a full channel", || {
        handle.metrics().acks == 1
    })
    .await;
    edge.up.send(up(3)).await.unwrap();
    sleep(hub_cfg().keepalive_interval * 2).await;
    for i in 1..=3 {
        let (from, got) = timeout(WAIT, hub.out.upstream.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!((from, got.header.id), (node("edge-1"), format!("up-{i}")));
    }
    sleep(hub_cfg().keepalive_interval * 2).await;
    assert!(
        hub.out.events.try_recv().is_err(),
        "the session survived: no event after Connected"
    );
    let m = hub.handle.metrics();
    assert_eq!((m.keepalive_timeouts, m.connected_nodes), (0, 1));
}

/// Goal: without an ACK the same message (same `msg_id`) is resent. Method: never ACK; expect
/// at least three copies of `m1` and the resend counter to move.
#[tokio::test]
async fn unacked_message_is_resent_with_the_same_id() {
    init_tracing();
    let pki = Pki::new();
    let mut hub = RunningHub::start(&pki, hub_cfg(), localhost0()).await;
    let mut edge = Edge::start(&pki, hub.addr, "edge-1", "edge-1", edge_cfg());
    hub.event().await;
    hub.handle
        .send(&node("edge-1"), pod("m1", "u1", 5))
        .unwrap();
    for _ in 0..3 {
        assert_eq!(edge.recv().await.header.id, "m1");
    }
    assert!(hub.handle.metrics().resends >= 2);
}

/// Goal: two updates of one object queued while the edge is slow coalesce, so only the newer
/// resourceVersion is delivered. Method: an in-flight window of one, held by an un-ACKed pod
/// A; then X rv 5 and X rv 7 are queued (the second replaces the first); ACK A and collect
/// what follows.
#[tokio::test]
async fn updates_coalesce_while_the_edge_is_slow() {
    init_tracing();
    let pki = Pki::new();
    let cfg = HubConfig {
        inflight_max: 1,
        ..hub_cfg()
    };
    let mut hub = RunningHub::start(&pki, cfg, localhost0()).await;
    let mut edge = Edge::start(&pki, hub.addr, "edge-1", "edge-1", edge_cfg());
    hub.event().await;
    let n = node("edge-1");
    hub.handle.send(&n, pod("a1", "uid-a", 1)).unwrap();
    let a = edge.recv().await;
    assert_eq!(hub.handle.send(&n, pod("x5", "uid-x", 5)), Ok(Queued::New));
    assert_eq!(
        hub.handle.send(&n, pod("x7", "uid-x", 7)),
        Ok(Queued::Replaced)
    );
    assert_eq!(
        hub.handle.send(&n, pod("x6", "uid-x", 6)),
        Ok(Queued::Superseded)
    );
    sleep(RESEND * 2).await; // the edge is "slow": A stays un-ACKed for a while
    edge.ack(&a).await;
    let mut seen = Vec::new();
    loop {
        let m = edge.recv().await;
        seen.push(m.header.id.clone());
        if m.header.id == "x7" {
            assert_eq!(m.header.resource_version, "7");
            edge.ack(&m).await;
            break;
        }
    }
    assert!(
        seen.iter().all(|id| id == "a1" || id == "x7"),
        "delivered: {seen:?}"
    );
    let handle = hub.handle.clone();
    eventually("both ACKs", || handle.metrics().acks == 2).await;
}

/// Goal: node authorization refuses a `node_id` that differs from the certificate's node,
/// with 403 and the reason, both to a raw client and as EdgeHub's disconnect reason.
/// Method: certificate of edge-1, header `node_id: edge-2`.
#[tokio::test]
async fn node_id_must_match_the_certificate() {
    init_tracing();
    let pki = Pki::new();
    let mut hub = RunningHub::start(&pki, hub_cfg(), localhost0()).await;
    let (status, body) = refusal(raw_connect(&pki, hub.addr, "edge-1", "edge-2").await);
    assert_eq!(status, 403);
    assert!(
        body.contains("\"edge-2\"") && body.contains("\"edge-1\""),
        "{body}"
    );
    let mut edge = Edge::start(&pki, hub.addr, "edge-1", "edge-2", edge_cfg());
    let state = edge
        .wait_state(|s| matches!(s, CloudState::Disconnected { .. }))
        .await;
    let CloudState::Disconnected { reason } = state else {
        unreachable!()
    };
    assert!(
        reason.contains("HTTP 403") && reason.contains("node authorization"),
        "{reason}"
    );
    assert!(hub.handle.metrics().refused_forbidden >= 2);
    assert!(hub.out.events.try_recv().is_err(), "no session was created");
}

/// Goal: `nodeLimit` refuses a node beyond it with 503 and a body naming the limit, while a
/// reconnect of an admitted node still replaces its session. Method: limit 1; edge-1 via
/// EdgeHub, then raw edge-2 (refused) and raw edge-1 (admitted).
#[tokio::test]
async fn node_limit_refuses_with_the_reason() {
    init_tracing();
    let pki = Pki::new();
    let cfg = HubConfig {
        node_limit: 1,
        ..patient_hub_cfg()
    };
    let mut hub = RunningHub::start(&pki, cfg, localhost0()).await;
    let _edge = Edge::start(&pki, hub.addr, "edge-1", "edge-1", edge_cfg());
    hub.event().await;
    let (status, body) = refusal(raw_connect(&pki, hub.addr, "edge-2", "edge-2").await);
    assert_eq!(status, 503);
    assert!(
        body.contains("node limit") && body.contains("nodeLimit 1"),
        "{body}"
    );
    assert_eq!(hub.handle.metrics().refused_node_limit, 1);
    let _again = raw_connect(&pki, hub.addr, "edge-1", "edge-1")
        .await
        .unwrap();
    assert!(matches!(
        hub.event().await,
        HubEvent::Disconnected {
            reason: CloseReason::Replaced,
            ..
        }
    ));
    assert!(matches!(hub.event().await, HubEvent::Connected { .. }));
}

/// Goal: a session without keepalives ends after `keepalive_interval`, not before, and the
/// edge is told why. Method: a raw client that sends nothing; 800 ms interval.
#[tokio::test]
async fn keepalive_timeout_ends_the_session() {
    init_tracing();
    let pki = Pki::new();
    let mut hub = RunningHub::start(&pki, hub_cfg(), localhost0()).await;
    let started = tokio::time::Instant::now();
    let mut ws = raw_connect(&pki, hub.addr, "edge-1", "edge-1")
        .await
        .unwrap();
    assert!(matches!(hub.event().await, HubEvent::Connected { .. }));
    assert_eq!(close_reason(&mut ws).await, "keepalive timeout");
    assert!(
        started.elapsed() >= Duration::from_millis(700),
        "{:?}",
        started.elapsed()
    );
    match hub.event().await {
        HubEvent::Disconnected { reason, .. } => assert_eq!(reason, CloseReason::KeepaliveTimeout),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(hub.handle.metrics().keepalive_timeouts, 1);
    assert!(!hub.handle.is_connected(&node("edge-1")));
}

/// Goal: a second connection for the same node replaces the first (last connection wins):
/// the first is closed with the reason, events are ordered, traffic goes to the second.
/// Method: two raw clients for edge-1, then a pod.
#[tokio::test]
async fn second_connection_replaces_the_first() {
    init_tracing();
    let pki = Pki::new();
    let mut hub = RunningHub::start(&pki, patient_hub_cfg(), localhost0()).await;
    let mut first = raw_connect(&pki, hub.addr, "edge-1", "edge-1")
        .await
        .unwrap();
    let HubEvent::Connected { session: s1, .. } = hub.event().await else {
        panic!("expected Connected")
    };
    let mut second = raw_connect(&pki, hub.addr, "edge-1", "edge-1")
        .await
        .unwrap();
    assert_eq!(
        hub.event().await,
        HubEvent::Disconnected {
            node: node("edge-1"),
            session: s1,
            reason: CloseReason::Replaced
        }
    );
    assert!(matches!(hub.event().await, HubEvent::Connected { session, .. } if session > s1));
    assert!(close_reason(&mut first).await.contains("replaced"));
    hub.handle
        .send(&node("edge-1"), pod("m1", "u1", 1))
        .unwrap();
    let frame = timeout(WAIT, second.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let msg = ke_proto::decode(&frame.into_data()).unwrap();
    assert_eq!(msg.header.id, "m1");
    let m = hub.handle.metrics();
    assert_eq!((m.connected_nodes, m.sessions_replaced), (1, 1));
}

/// Goal: with the default configuration a malformed upstream frame closes only that
/// connection, with the reason: another node's session is untouched. Method: edge-1 and
/// edge-2 connect raw; edge-1 sends `not json{`.
#[tokio::test]
async fn malformed_frame_closes_only_that_connection() {
    init_tracing();
    let pki = Pki::new();
    let mut hub = RunningHub::start(&pki, patient_hub_cfg(), localhost0()).await;
    let mut ws1 = raw_connect(&pki, hub.addr, "edge-1", "edge-1")
        .await
        .unwrap();
    hub.event().await;
    let _ws2 = raw_connect(&pki, hub.addr, "edge-2", "edge-2")
        .await
        .unwrap();
    hub.event().await;
    ws1.send(WsMessage::text("not json{")).await.unwrap();
    match hub.event().await {
        HubEvent::Disconnected {
            node: n, reason, ..
        } => {
            assert_eq!(n, node("edge-1"));
            assert_eq!(reason, CloseReason::TooManyMalformed);
            assert_eq!(reason.to_string(), "malformed frame");
        }
        other => panic!("unexpected {other:?}"),
    }
    let m = hub.handle.metrics();
    assert_eq!(m.malformed_frames, 1);
    assert!(hub.handle.is_connected(&node("edge-2")));
    assert!(!hub.handle.is_connected(&node("edge-1")));
}

/// Goal: with `malformed_frames_max` raised, malformed frames are logged and counted and do
/// not end the session; the next good message is delivered upstream. Method: a tolerance of
/// 2; a raw client sends `not json{`, an object missing `msg_id`, then a pod status update.
#[tokio::test]
async fn tolerated_malformed_frames_are_counted_and_the_session_survives() {
    init_tracing();
    let pki = Pki::new();
    let cfg = HubConfig {
        malformed_frames_max: 2,
        ..patient_hub_cfg()
    };
    let mut hub = RunningHub::start(&pki, cfg, localhost0()).await;
    let mut ws = raw_connect(&pki, hub.addr, "edge-1", "edge-1")
        .await
        .unwrap();
    hub.event().await;
    ws.send(WsMessage::text("not json{")).await.unwrap();
    ws.send(WsMessage::text(r#"{"route":{"operation":"update"}}"#))
        .await
        .unwrap();
    let route = Route::new(
        Source::Edged,
        Group::Meta,
        Operation::Update,
        "default/podstatus/p",
    );
    let status = Message::new("up-1", 0, route, Content::text("{}"));
    ws.send(WsMessage::text(ke_proto::encode_text(&status)))
        .await
        .unwrap();
    let (from, got) = timeout(WAIT, hub.out.upstream.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((from, got), (node("edge-1"), status));
    let m = hub.handle.metrics();
    assert_eq!(m.malformed_frames, 2);
    assert!(hub.handle.is_connected(&node("edge-1")));
    assert!(hub.out.events.try_recv().is_err(), "no disconnect");
}

/// Goal: a frame over the size limit closes only that session, with the reason. Method:
/// 4 KiB limit, a 10 KiB text frame from a raw client.
#[tokio::test]
async fn oversized_frame_closes_the_session() {
    init_tracing();
    let pki = Pki::new();
    let mut cfg = patient_hub_cfg();
    cfg.frame_limits.frame_bytes_max = 4096;
    let mut hub = RunningHub::start(&pki, cfg, localhost0()).await;
    let mut ws = raw_connect(&pki, hub.addr, "edge-1", "edge-1")
        .await
        .unwrap();
    hub.event().await;
    let _ = ws.send(WsMessage::text("x".repeat(10 * 1024))).await;
    match hub.event().await {
        HubEvent::Disconnected { reason, .. } => assert_eq!(reason, CloseReason::Oversized),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(hub.handle.metrics().oversized_frames, 1);
}

/// Goal: EdgeHub reconnects after the hub restarts and then delivers, in order, the upstream
/// messages queued while it was away; its outbox is bounded (oldest dropped). Method: stop
/// the hub, wait for `Disconnected`, queue four messages with an outbox of three, start a new
/// hub on the same address, read its upstream channel.
#[tokio::test]
async fn edgehub_reconnects_and_flushes_upstream_after_hub_restart() {
    init_tracing();
    let pki = Pki::new();
    let mut hub = RunningHub::start(&pki, hub_cfg(), localhost0()).await;
    let addr = hub.addr;
    let cfg = EdgeHubConfig {
        upstream_queue_max: 3,
        ..edge_cfg()
    };
    let mut edge = Edge::start(&pki, addr, "edge-1", "edge-1", cfg);
    hub.event().await;
    edge.wait_state(CloudState::is_connected).await;
    hub.stop().await;
    let state = edge
        .wait_state(|s| matches!(s, CloudState::Disconnected { .. }))
        .await;
    assert!(format!("{state:?}").contains("shutting down"), "{state:?}");
    let route = Route::new(
        Source::Edged,
        Group::Meta,
        Operation::Update,
        "default/podstatus/p",
    );
    for i in 1..=4 {
        let msg = Message::new(format!("up-{i}"), 0, route.clone(), Content::text("{}"));
        edge.up.send(msg).await.unwrap();
    }
    let metrics = edge.metrics.clone();
    eventually("the outbox to drop the oldest", || {
        metrics.snapshot().upstream_dropped == 1
    })
    .await;
    let mut hub = RunningHub::start(&pki, hub_cfg(), addr).await;
    assert!(matches!(hub.event().await, HubEvent::Connected { .. }));
    for i in 2..=4 {
        let (from, got) = timeout(WAIT, hub.out.upstream.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!((from, got.header.id), (node("edge-1"), format!("up-{i}")));
    }
    assert_eq!(edge.metrics.snapshot().connects, 2);
}
