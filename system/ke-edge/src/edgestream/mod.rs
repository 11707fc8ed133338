//! EdgeStream: the edge end of CloudStream's tunnel (KubeEdge's `edge/pkg/edgestream`), for
//! `kubectl logs` and `kubectl exec` of this node's pods.
//!
//! Dials `wss://<server>/v1/kubeedge/connect` with the node's certificate (the one EdgeHub
//! uses) and KubeEdge's `SessionHostNameOverride`/`SessionInternalIP` headers, redialling with
//! seeded-jitter backoff. Each `LOGS_CONNECT`/`EXEC_CONNECT` becomes a session task on the
//! tunnel's `JoinSet` (all dropped with the tunnel). A session is served only for a pod in this
//! node's MetaStore, bound to this node, with the UID the API server named and the container
//! in its spec ([`authorize`]); otherwise the edge answers `CLOSE_CONNECT` with the reason.
//! The runtime's [`ContainerStreams`] does the work; a runtime without one (the simulator's)
//! refuses every session.
//!
//! - `session` (private): one log or exec session.

mod session;

use std::{collections::HashMap, net::SocketAddr, sync::Arc, time::Duration};

use futures::{SinkExt, StreamExt};
use ke_core::Entropy;
use ke_net::Transport;
use ke_proto::{
    NodeId, ResourceType,
    stream::{
        EXEC_CONNECT, HEADER_INTERNAL_IP, HEADER_NODE, LOGS_CONNECT, PodTarget, REMOVE_CONNECT,
        StreamFrame, TUNNEL_PATH,
    },
};
use rustls::pki_types::ServerName;
use serde_json::Value;
use tokio::{
    sync::{mpsc, watch},
    task::JoinSet,
    time::timeout,
};
use tokio_rustls::TlsConnector;
use tokio_tungstenite::{
    client_async_with_config,
    tungstenite::{Message as WsMessage, client::IntoClientRequest, http::HeaderValue},
};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::{edged::ContainerStreams, edgehub::backoff::Backoff, metamanager::MetaStore};

/// Frames queued towards the cloud (shared by all sessions of the tunnel).
pub const TUNNEL_QUEUE_MAX: usize = 256;
/// Frames queued from the cloud to one session (stdin).
pub const SESSION_QUEUE_MAX: usize = 32;
/// Sessions served at once per tunnel; more are refused.
pub const SESSIONS_MAX: usize = 128;
/// Largest tunnel frame accepted.
pub const FRAME_BYTES_MAX: usize = 1 << 20;

/// EdgeStream's settings.
#[derive(Debug, Clone)]
pub struct EdgeStreamConfig {
    /// CloudStream's tunnel.
    pub server: SocketAddr,
    /// TCP + TLS + upgrade limit.
    pub handshake_timeout: Duration,
    /// Longest silence from the cloud (it pings every 15 s).
    pub read_deadline: Duration,
    /// One frame write limit.
    pub write_deadline: Duration,
    /// First redial delay (doubles, with jitter).
    pub backoff_initial: Duration,
    /// Redial delay cap.
    pub backoff_max: Duration,
}

impl EdgeStreamConfig {
    /// From `modules.edgeStream` with `server` parsed.
    pub fn from_config(c: &crate::config::EdgeStream, server: SocketAddr) -> Self {
        Self {
            server,
            handshake_timeout: Duration::from_secs(c.handshake_timeout.max(1)),
            read_deadline: Duration::from_secs(c.read_deadline.max(20)),
            write_deadline: Duration::from_secs(c.write_deadline.max(1)),
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(30),
        }
    }
}

/// What every session needs.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub(crate) node: NodeId,
    pub(crate) store: MetaStore,
    pub(crate) streams: Option<Arc<dyn ContainerStreams>>,
}

/// The EdgeStream client of one node.
pub struct EdgeStream<T: Transport> {
    transport: T,
    cfg: EdgeStreamConfig,
    internal_ip: Option<String>,
    ctx: Arc<Ctx>,
    entropy: Entropy,
}

impl<T: Transport> std::fmt::Debug for EdgeStream<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeStream")
            .field("server", &self.cfg.server)
            .finish_non_exhaustive()
    }
}

/// Checks that `target` is a pod this node may stream: in its store (`stored`), bound to
/// `node`, with the same UID, and with the container. The reason when not.
pub fn authorize(stored: Option<&Value>, node: &str, target: &PodTarget) -> Result<(), String> {
    let who = format!("pod {}/{}", target.namespace, target.name);
    let pod = stored.ok_or_else(|| format!("{who} is not on node {node}"))?;
    let bound = pod.pointer("/spec/nodeName").and_then(Value::as_str);
    if bound != Some(node) {
        return Err(format!("{who} is not bound to node {node}"));
    }
    let uid = pod
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !target.uid.is_empty() && uid != target.uid {
        return Err(format!(
            "{who} on node {node} has UID {uid}, not {}",
            target.uid
        ));
    }
    let has = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .is_some_and(|cs| cs.iter().any(|c| c["name"] == target.container.as_str()));
    if !has {
        return Err(format!("{who} has no container {}", target.container));
    }
    Ok(())
}

impl Ctx {
    /// [`authorize`] against the MetaStore; the pod's UID on this node.
    pub(crate) fn check(&self, target: &PodTarget) -> Result<String, String> {
        let pod = self
            .store
            .get(&target.namespace, &ResourceType::Pod, &target.name)
            .map_err(|e| format!("reading the meta store: {e}"))?;
        authorize(pod.as_ref(), self.node.as_str(), target)?;
        let uid = pod
            .as_ref()
            .and_then(|p| p.pointer("/metadata/uid"))
            .and_then(Value::as_str);
        Ok(uid.unwrap_or_default().to_owned())
    }

    pub(crate) fn streams(&self) -> Result<&Arc<dyn ContainerStreams>, String> {
        self.streams
            .as_ref()
            .ok_or_else(|| "this node's runtime does not serve logs or exec".to_owned())
    }
}

impl<T: Transport> EdgeStream<T> {
    /// A client for `node`, serving pods from `store` with `streams`.
    pub fn new(
        transport: T,
        cfg: EdgeStreamConfig,
        node: NodeId,
        internal_ip: Option<String>,
        store: MetaStore,
        streams: Option<Arc<dyn ContainerStreams>>,
        entropy: Entropy,
    ) -> Self {
        Self {
            transport,
            cfg,
            internal_ip,
            ctx: Arc::new(Ctx {
                node,
                store,
                streams,
            }),
            entropy,
        }
    }

    /// Waits for the node's TLS configuration (set once EdgeHub has credentials), then keeps a
    /// tunnel up until `stop`.
    pub async fn run(
        self,
        mut tls: watch::Receiver<Option<Arc<rustls::ClientConfig>>>,
        stop: CancellationToken,
    ) {
        let cfg = tokio::select! {
            () = stop.cancelled() => return,
            c = tls.wait_for(Option::is_some) => match c {
                Ok(c) => c.clone(),
                Err(_) => return,
            },
        };
        let Some(cfg) = cfg else { return };
        let connector = TlsConnector::from(cfg);
        let mut backoff = Backoff::new(
            self.cfg.backoff_initial,
            self.cfg.backoff_max,
            self.entropy.clone(),
        );
        loop {
            let dial = timeout(self.cfg.handshake_timeout, self.connect(&connector));
            let result = tokio::select! {
                () = stop.cancelled() => return,
                r = dial => r,
            };
            match result {
                Ok(Ok(ws)) => {
                    info!(server = %self.cfg.server, "stream tunnel connected");
                    backoff.reset();
                    let why = tokio::select! {
                        () = stop.cancelled() => return,
                        why = self.serve(ws) => why,
                    };
                    warn!(reason = %why, "stream tunnel lost");
                }
                Ok(Err(e)) => warn!(error = %e, "stream tunnel dial failed"),
                Err(_) => warn!("stream tunnel dial timed out"),
            }
            let delay = backoff.next_delay();
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(delay) => {}
            }
        }
    }

    async fn connect(&self, connector: &TlsConnector) -> Result<session::Ws<T::Conn>, String> {
        let tcp = self
            .transport
            .connect(self.cfg.server)
            .await
            .map_err(|e| e.to_string())?;
        let name = ServerName::IpAddress(self.cfg.server.ip().into());
        let tls = connector
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())?;
        let host = match self.cfg.server {
            SocketAddr::V4(a) => a.to_string(),
            SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
        };
        let mut req = format!("wss://{host}{TUNNEL_PATH}")
            .into_client_request()
            .map_err(|e| e.to_string())?;
        let value = |v: &str| HeaderValue::from_str(v).map_err(|e| e.to_string());
        req.headers_mut()
            .insert(HEADER_NODE, value(self.ctx.node.as_str())?);
        if let Some(ip) = &self.internal_ip {
            req.headers_mut().insert(HEADER_INTERNAL_IP, value(ip)?);
        }
        let ws_cfg = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .max_message_size(Some(FRAME_BYTES_MAX))
            .max_frame_size(Some(FRAME_BYTES_MAX));
        match client_async_with_config(req, tls, Some(ws_cfg)).await {
            Ok((ws, _)) => Ok(ws),
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                let body = resp.body().as_deref().map(String::from_utf8_lossy);
                Err(format!(
                    "refused: HTTP {}: {}",
                    resp.status(),
                    body.unwrap_or_default().trim()
                ))
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// Serves one tunnel until it breaks; the reason.
    async fn serve(&self, ws: session::Ws<T::Conn>) -> String {
        let (mut sink, mut stream) = ws.split();
        let (out_tx, mut out_rx) = mpsc::channel::<Vec<u8>>(TUNNEL_QUEUE_MAX);
        let mut sessions: HashMap<u64, mpsc::Sender<StreamFrame>> = HashMap::new();
        let mut tasks = JoinSet::new();
        let write_deadline = self.cfg.write_deadline;
        let write = async {
            while let Some(bytes) = out_rx.recv().await {
                let send = sink.send(WsMessage::Binary(bytes.into()));
                match timeout(write_deadline, send).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return format!("write failed: {e}"),
                    Err(_) => return "write timed out".to_owned(),
                }
            }
            "writer closed".to_owned()
        };
        let read = async {
            loop {
                let msg = tokio::select! {
                    m = timeout(self.cfg.read_deadline, stream.next()) => m,
                    Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                        if let Ok(id) = done {
                            sessions.remove(&id);
                        }
                        continue;
                    }
                };
                let data = match msg {
                    Err(_) => return "no frame from the cloud within the read deadline".into(),
                    Ok(None) => return "connection closed".to_owned(),
                    Ok(Some(Err(e))) => return format!("read failed: {e}"),
                    Ok(Some(Ok(WsMessage::Binary(b)))) => b,
                    Ok(Some(Ok(WsMessage::Close(_)))) => return "closed by cloudstream".into(),
                    Ok(Some(Ok(_))) => continue,
                };
                let frame = match StreamFrame::decode(&data) {
                    Ok(f) => f,
                    Err(e) => return format!("malformed frame: {e}"),
                };
                self.dispatch(frame, &mut sessions, &mut tasks, &out_tx)
                    .await;
            }
        };
        tokio::select! {
            why = read => why,
            why = write => why,
        }
    }

    async fn dispatch(
        &self,
        frame: StreamFrame,
        sessions: &mut HashMap<u64, mpsc::Sender<StreamFrame>>,
        tasks: &mut JoinSet<u64>,
        out: &mpsc::Sender<Vec<u8>>,
    ) {
        let id = frame.connect_id;
        match frame.kind {
            LOGS_CONNECT | EXEC_CONNECT => {
                if sessions.len() >= SESSIONS_MAX || sessions.contains_key(&id) {
                    let why = format!("too many sessions on this node (limit {SESSIONS_MAX})");
                    let f = StreamFrame::new(id, ke_proto::stream::CLOSE_CONNECT, why);
                    let _ = out.send(f.encode()).await;
                    return;
                }
                let (tx, rx) = mpsc::channel(SESSION_QUEUE_MAX);
                sessions.insert(id, tx);
                let s = session::Session {
                    id,
                    ctx: self.ctx.clone(),
                    out: out.clone(),
                    inbound: rx,
                };
                tasks.spawn(s.run(frame));
            }
            REMOVE_CONNECT => {
                debug!(connect_id = id, "session removed by the cloud");
                sessions.remove(&id);
            }
            _ => {
                if let Some(tx) = sessions.get(&id)
                    && tx.send(frame).await.is_err()
                {
                    sessions.remove(&id);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn target(uid: &str, container: &str) -> PodTarget {
        PodTarget {
            namespace: "default".into(),
            name: "web".into(),
            uid: uid.into(),
            container: container.into(),
        }
    }

    /// Goal: an edge serves only its own pods: edge-2 refuses edge-1's pod (absent from its
    /// store, or present but bound elsewhere); a UID or container mismatch is refused too.
    #[test]
    fn a_node_streams_only_its_own_pods() {
        let pod = json!({"metadata": {"uid": "u1"},
            "spec": {"nodeName": "edge-1", "containers": [{"name": "app"}]}});
        assert_eq!(
            authorize(Some(&pod), "edge-1", &target("u1", "app")),
            Ok(())
        );
        let e = authorize(None, "edge-2", &target("u1", "app")).unwrap_err();
        assert!(e.contains("not on node edge-2"), "{e}");
        let e = authorize(Some(&pod), "edge-2", &target("u1", "app")).unwrap_err();
        assert!(e.contains("not bound to node edge-2"), "{e}");
        assert!(authorize(Some(&pod), "edge-1", &target("u2", "app")).is_err());
        assert!(authorize(Some(&pod), "edge-1", &target("u1", "db")).is_err());
    }
}
