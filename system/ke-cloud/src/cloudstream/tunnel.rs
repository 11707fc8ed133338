//! Connected tunnels, their sessions, and [`StreamHandle`], the API server's way in.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use bytes::Bytes;
use futures::{
    SinkExt, StreamExt,
    future::{BoxFuture, ready},
    stream::BoxStream,
};
use ke_apiserver::streams::{ExecRequest, ExecStream, LogRequest, PodRef, PodStreams, StreamError};
use ke_proto::stream::{
    CLOSE_CONNECT, DATA, EXEC_CONNECT, ExecConnect, LOGS_CONNECT, LogsConnect, PodTarget,
    REMOVE_CONNECT, StreamFrame,
};
use tokio::sync::mpsc;
use tokio_util::sync::PollSender;

use super::{OPEN_TIMEOUT, SESSION_FRAMES_MAX, SESSION_STALL_MAX};

/// One connected edge's tunnel.
#[derive(Debug)]
pub(crate) struct Tunnel {
    /// Which connection this is (a reconnect replaces the entry; only its owner removes it).
    pub(crate) generation: u64,
    /// Encoded frames towards the edge (bounded: [`super::TUNNEL_QUEUE_MAX`]).
    pub(crate) out: mpsc::Sender<Vec<u8>>,
    /// Open sessions by connect id, each with its bounded inbound channel.
    sessions: Mutex<HashMap<u64, mpsc::Sender<StreamFrame>>>,
    next_id: AtomicU64,
}

impl Tunnel {
    pub(crate) fn new(generation: u64, out: mpsc::Sender<Vec<u8>>) -> Self {
        Self {
            generation,
            out,
            sessions: Mutex::default(),
            next_id: AtomicU64::new(1),
        }
    }

    fn remove(&self, id: u64) -> bool {
        self.sessions
            .lock()
            .map(|mut s| s.remove(&id).is_some())
            .unwrap_or(false)
    }

    /// Delivers a frame from the edge to its session. A session whose client does not take
    /// it within [`SESSION_STALL_MAX`] is closed at both ends.
    pub(crate) async fn deliver(&self, frame: StreamFrame) {
        let id = frame.connect_id;
        let last = frame.kind == CLOSE_CONNECT;
        let tx = self.sessions.lock().ok().and_then(|s| s.get(&id).cloned());
        let Some(tx) = tx else {
            if !last {
                let _ = self
                    .out
                    .try_send(StreamFrame::new(id, REMOVE_CONNECT, []).encode());
            }
            return;
        };
        let delivered = tx.send_timeout(frame, SESSION_STALL_MAX).await.is_ok();
        if last || !delivered {
            self.remove(id);
        }
        if !delivered && !last {
            tracing::debug!(
                connect_id = id,
                "stream client too slow or gone; session closed"
            );
            let _ = self
                .out
                .try_send(StreamFrame::new(id, REMOVE_CONNECT, []).encode());
        }
    }

    /// Ends every session (the tunnel went away): their channels close.
    pub(crate) fn close_all(&self) {
        if let Ok(mut s) = self.sessions.lock() {
            s.clear();
        }
    }
}

/// The tunnels of all connected nodes.
#[derive(Debug, Default)]
pub(crate) struct Tunnels {
    by_node: Mutex<HashMap<String, Arc<Tunnel>>>,
    generations: AtomicU64,
}

impl Tunnels {
    /// Registers `node`'s new tunnel, replacing (and closing the sessions of) an older one.
    pub(crate) fn register(&self, node: &str, out: mpsc::Sender<Vec<u8>>) -> Arc<Tunnel> {
        let g = self.generations.fetch_add(1, Ordering::Relaxed);
        let t = Arc::new(Tunnel::new(g, out));
        let old = self
            .by_node
            .lock()
            .ok()
            .and_then(|mut m| m.insert(node.to_owned(), t.clone()));
        if let Some(old) = old {
            old.close_all();
        }
        t
    }

    /// Removes `node`'s tunnel if it is still `t`.
    pub(crate) fn unregister(&self, node: &str, t: &Tunnel) {
        if let Ok(mut m) = self.by_node.lock()
            && m.get(node)
                .is_some_and(|cur| cur.generation == t.generation)
        {
            m.remove(node);
        }
        t.close_all();
    }

    fn get(&self, node: &str) -> Option<Arc<Tunnel>> {
        self.by_node.lock().ok()?.get(node).cloned()
    }

    /// Nodes with a tunnel (sorted).
    pub(crate) fn nodes(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .by_node
            .lock()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        v.sort();
        v
    }
}

/// An open session; dropping it tells the edge (REMOVE_CONNECT) unless the edge ended it.
struct Session {
    id: u64,
    tunnel: Arc<Tunnel>,
    rx: mpsc::Receiver<StreamFrame>,
    ended: bool,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.tunnel.remove(self.id);
        if !self.ended {
            let frame = StreamFrame::new(self.id, REMOVE_CONNECT, []).encode();
            let _ = self.tunnel.out.try_send(frame);
        }
    }
}

impl Session {
    /// The next DATA payload; `None` once the edge closed or the tunnel went away.
    async fn next_data(&mut self) -> Option<Bytes> {
        loop {
            let f = self.rx.recv().await?;
            match f.kind {
                DATA => return Some(Bytes::from(f.data)),
                CLOSE_CONNECT => {
                    self.ended = true;
                    return None;
                }
                _ => {}
            }
        }
    }

    fn into_stream(self) -> BoxStream<'static, Bytes> {
        futures::stream::unfold(self, |mut s| async move {
            let data = s.next_data().await?;
            Some((data, s))
        })
        .boxed()
    }
}

/// The API server's [`PodStreams`]: routes each session to the tunnel of the pod's node.
#[derive(Debug, Clone)]
pub struct StreamHandle {
    pub(crate) tunnels: Arc<Tunnels>,
}

fn target(pod: &PodRef) -> PodTarget {
    PodTarget {
        namespace: pod.namespace.clone(),
        name: pod.name.clone(),
        uid: pod.uid.clone(),
        container: pod.container.clone(),
    }
}

impl StreamHandle {
    /// Nodes with a connected tunnel, sorted.
    pub fn connected_nodes(&self) -> Vec<String> {
        self.tunnels.nodes()
    }

    fn tunnel(&self, node: &str) -> Result<Arc<Tunnel>, StreamError> {
        self.tunnels.get(node).ok_or_else(|| {
            StreamError::Unreachable(format!(
                "node {node} has no stream tunnel to cloudcore (is modules.edgeStream enabled \
                 on it, and is it connected?)"
            ))
        })
    }

    /// Opens a session on `node`'s tunnel and waits for the edge to accept it.
    async fn open(&self, node: &str, kind: u64, payload: Vec<u8>) -> Result<Session, StreamError> {
        let tunnel = self.tunnel(node)?;
        let id = tunnel.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(SESSION_FRAMES_MAX);
        if let Ok(mut s) = tunnel.sessions.lock() {
            s.insert(id, tx);
        }
        let mut session = Session {
            id,
            tunnel: tunnel.clone(),
            rx,
            ended: false,
        };
        let lost = || StreamError::Unreachable(format!("the stream tunnel of node {node} closed"));
        let frame = StreamFrame::new(id, kind, payload).encode();
        tokio::time::timeout(OPEN_TIMEOUT, tunnel.out.send(frame))
            .await
            .map_err(|_| lost())?
            .map_err(|_| lost())?;
        let first = tokio::time::timeout(OPEN_TIMEOUT, session.rx.recv())
            .await
            .map_err(|_| {
                StreamError::Unreachable(format!(
                    "node {node} did not answer within {OPEN_TIMEOUT:?}"
                ))
            })?;
        match first {
            Some(f) if f.kind == DATA && f.data.is_empty() => Ok(session),
            Some(f) if f.kind == CLOSE_CONNECT => {
                session.ended = true;
                let why = String::from_utf8_lossy(&f.data).into_owned();
                Err(StreamError::Refused(format!("node {node}: {why}")))
            }
            Some(_) => Err(StreamError::Refused(format!(
                "node {node}: unexpected first frame"
            ))),
            None => Err(lost()),
        }
    }
}

fn json(v: &impl serde::Serialize) -> Vec<u8> {
    serde_json::to_vec(v).expect("invariant: plain structs always serialize")
}

impl PodStreams for StreamHandle {
    fn check(&self, pod: &PodRef) -> Result<(), StreamError> {
        self.tunnel(&pod.node).map(|_| ())
    }

    fn logs(
        &self,
        req: LogRequest,
    ) -> BoxFuture<'static, Result<BoxStream<'static, Bytes>, StreamError>> {
        let this = self.clone();
        Box::pin(async move {
            let payload = json(&LogsConnect {
                pod: target(&req.pod),
                follow: req.follow,
                tail_lines: req.tail_lines,
            });
            let s = this.open(&req.pod.node, LOGS_CONNECT, payload).await?;
            Ok(s.into_stream())
        })
    }

    fn exec(&self, req: ExecRequest) -> BoxFuture<'static, Result<ExecStream, StreamError>> {
        let this = self.clone();
        Box::pin(async move {
            let payload = json(&ExecConnect {
                pod: target(&req.pod),
                command: req.command,
                stdin: req.stdin,
                tty: req.tty,
            });
            let s = this.open(&req.pod.node, EXEC_CONNECT, payload).await?;
            let id = s.id;
            let input = PollSender::new(s.tunnel.out.clone())
                .sink_map_err(|_| StreamError::Unreachable("the stream tunnel closed".into()))
                .with(move |b: Bytes| ready(Ok(StreamFrame::new(id, DATA, b.to_vec()).encode())));
            Ok(ExecStream {
                input: Box::pin(input),
                output: s.into_stream(),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(node: &str) -> PodRef {
        PodRef {
            node: node.into(),
            namespace: "default".into(),
            name: "p".into(),
            uid: "u".into(),
            container: "c".into(),
        }
    }

    /// Goal: a session for a pod goes to the tunnel of the pod's node only: with only
    /// edge-2 connected, edge-1's pod is unreachable and nothing is written to edge-2.
    #[tokio::test]
    async fn sessions_go_only_to_the_pods_node() {
        let tunnels = Arc::new(Tunnels::default());
        let (tx, mut rx) = mpsc::channel(8);
        let _t = tunnels.register("edge-2", tx);
        let h = StreamHandle { tunnels };
        let req = LogRequest {
            pod: pod("edge-1"),
            follow: false,
            tail_lines: None,
        };
        let err = h.logs(req).await.err().unwrap();
        assert!(
            matches!(err, StreamError::Unreachable(ref m) if m.contains("edge-1")),
            "{err}"
        );
        assert!(
            rx.try_recv().is_err(),
            "edge-2 got a frame for edge-1's pod"
        );
    }

    /// Goal: the edge's refusal (CLOSE_CONNECT with a reason) becomes a Refused error, and an
    /// accepted log session yields the DATA payloads, then ends at CLOSE_CONNECT.
    #[tokio::test]
    async fn open_accept_data_close() {
        let tunnels = Arc::new(Tunnels::default());
        let (tx, mut rx) = mpsc::channel(8);
        let t = tunnels.register("edge-1", tx);
        let h = StreamHandle { tunnels };
        let edge = {
            let t = t.clone();
            async move {
                let f = StreamFrame::decode(&rx.recv().await.unwrap()).unwrap();
                assert_eq!(f.kind, LOGS_CONNECT);
                t.deliver(StreamFrame::new(
                    f.connect_id,
                    CLOSE_CONNECT,
                    b"no pod".to_vec(),
                ))
                .await;
                let f = StreamFrame::decode(&rx.recv().await.unwrap()).unwrap();
                for data in [&b""[..], b"hello\n"] {
                    t.deliver(StreamFrame::new(f.connect_id, DATA, data.to_vec()))
                        .await;
                }
                t.deliver(StreamFrame::new(f.connect_id, CLOSE_CONNECT, []))
                    .await;
            }
        };
        let client = async {
            let req = LogRequest {
                pod: pod("edge-1"),
                follow: false,
                tail_lines: None,
            };
            let err = h.logs(req.clone()).await.err().unwrap();
            assert_eq!(err, StreamError::Refused("node edge-1: no pod".into()));
            let out: Vec<Bytes> = h.logs(req).await.unwrap().collect().await;
            assert_eq!(out, vec![Bytes::from_static(b"hello\n")]);
        };
        tokio::join!(edge, client);
    }
}
