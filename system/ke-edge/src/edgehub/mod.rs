//! EdgeHub: the edge end of the cloud<->edge channel (KubeEdge's `edge/pkg/edgehub`).
//!
//! A wss client with mutual TLS to CloudHub: headers `node_id`, `project_id`,
//! `ConnectionUse: msg`, path `/<projectID>/<nodeName>/events`; one JSON message per text
//! frame; a `keepalive` every [`EdgeHubConfig::heartbeat`]. Wire facts: `kubeedge-wire.md` §0,
//! §2.1–2.2.
//!
//! Module map:
//! - `backoff` (private): reconnect backoff (bounded, exponential, seeded jitter) and the
//!   upstream token bucket.
//! - `conn` (private): dialling (TCP through `ke-net`, TLS, upgrade) and one connected
//!   session (reader: frames to the downstream channel; writer: heartbeat and upstream).
//! - [`metrics`]: counters, as Prometheus text.
//!
//! # Contract with MetaManager
//! Downstream messages go to the bounded `downstream_tx` as they arrive; EdgeHub never ACKs.
//! MetaManager ACKs after persisting by sending the ACK (`Message::ack_for`) on the upstream
//! channel like any other upstream message. A full downstream channel stalls reading the
//! connection (the cloud then holds and resends its un-ACKed messages).
//!
//! # Offline behaviour
//! While disconnected, EdgeHub keeps draining the upstream channel into its own outbox
//! (bounded by [`EdgeHubConfig::upstream_queue_max`]; when full the oldest message is dropped
//! and counted), so producers never block on a missing cloud. After reconnecting the outbox is
//! sent first, in order, under the rate limit. ACKs dropped this way are harmless: the cloud
//! resends un-ACKed messages and MetaManager's writes are idempotent.
//!
//! # Liveness
//! KubeEdge's edge never notices a silent cloud. Here every heartbeat also sends a WebSocket
//! ping (which both our CloudHub and KubeEdge's gorilla server answer), and a connection with
//! no frame from the cloud for [`EdgeHubConfig::cloud_silence_max`] is dropped and redialled.

pub(crate) mod backoff;
mod conn;
pub mod metrics;

use std::{collections::VecDeque, future::Future, net::SocketAddr, sync::Arc, time::Duration};

use ke_core::{Clock, Entropy, SystemClock};
use ke_net::Transport;
use ke_proto::{Limits, Message, NodeId};
use rustls::pki_types::ServerName;
use tokio::{
    sync::{mpsc, watch},
    time::Instant,
};
use tokio_rustls::TlsConnector;
use tracing::{Instrument, info, info_span, warn};

pub use metrics::{EdgeHubMetrics, EdgeHubMetricsSnapshot};

use self::{
    backoff::{Backoff, TokenBucket},
    conn::SessionEnd,
};

/// KubeEdge's default `projectID` (`edgeHub.projectID`).
pub const DEFAULT_PROJECT_ID: &str = "e632aba927ea4ac2b575ec1603d56f10";

/// EdgeHub configuration; `Default` gives KubeEdge's values where KubeEdge has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeHubConfig {
    /// Keepalive period (`edgeHub.heartbeat`, 15 s). CloudHub drops a session after 30 s
    /// without one.
    pub heartbeat: Duration,
    /// Upstream messages per second (`edgeHub.messageQPS`, 30); 0 disables the limit.
    /// Keepalives are not counted.
    pub message_qps: u32,
    /// Token bucket size (`edgeHub.messageBurst`, 60).
    pub message_burst: u32,
    /// First reconnect delay (1 s); doubles per failed attempt, with jitter.
    pub reconnect_backoff_initial: Duration,
    /// Cap of the reconnect delay (30 s, KubeEdge's `2 × heartbeat` pause).
    pub reconnect_backoff_max: Duration,
    /// TCP + TLS + upgrade must finish within this (30 s, KubeEdge's handshake timeout).
    pub handshake_timeout: Duration,
    /// One frame write must finish within this (15 s, KubeEdge's `writeDeadline`).
    pub write_timeout: Duration,
    /// Longest time without any frame (pong included) from the cloud before redialling (45 s).
    pub cloud_silence_max: Duration,
    /// Upstream messages held while disconnected (1,024); the oldest is dropped beyond it.
    pub upstream_queue_max: usize,
    /// Frame size limit for both directions (8 MiB).
    pub frame_limits: Limits,
}

impl Default for EdgeHubConfig {
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_secs(15),
            message_qps: 30,
            message_burst: 60,
            reconnect_backoff_initial: Duration::from_secs(1),
            reconnect_backoff_max: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(15),
            cloud_silence_max: Duration::from_secs(45),
            upstream_queue_max: 1024,
            frame_limits: Limits::default(),
        }
    }
}

/// The state of the cloud connection, published on a watch channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloudState {
    /// Dialling (first attempt or after a backoff).
    Connecting,
    /// `cloud_connected`: a session is up.
    Connected,
    /// `cloud_disconnected`: the last session or attempt ended, for `reason` (for a refusal,
    /// the HTTP status and CloudHub's explanation).
    Disconnected {
        /// Why.
        reason: String,
    },
}

impl CloudState {
    /// True when a session is up.
    pub fn is_connected(&self) -> bool {
        matches!(self, Self::Connected)
    }
}

/// Why [`EdgeHub::run`] stopped other than by shutdown.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The downstream receiver (MetaManager) is gone, so nothing received can be delivered.
    /// Not retryable.
    #[error("downstream channel closed: MetaManager is gone")]
    DownstreamClosed,
}

/// The EdgeHub client of one node.
pub struct EdgeHub<T: Transport> {
    transport: T,
    cloud_addr: SocketAddr,
    server_name: ServerName<'static>,
    connector: TlsConnector,
    node_id: NodeId,
    project_id: String,
    cfg: EdgeHubConfig,
    clock: Arc<dyn Clock>,
    entropy: Entropy,
    state: watch::Sender<CloudState>,
    metrics: Arc<EdgeHubMetrics>,
}

impl<T: Transport> std::fmt::Debug for EdgeHub<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeHub")
            .field("cloud_addr", &self.cloud_addr)
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

impl<T: Transport> EdgeHub<T> {
    /// A client for `node_id` that dials `cloud_addr` through `transport` and checks the
    /// server certificate against `server_name`. `tls` carries the CA and this node's client
    /// certificate (CN `system:node:<node_id>`). Wall clock and randomness default to the
    /// system clock and OS-seeded entropy; the simulator sets both ([`Self::with_clock`],
    /// [`Self::with_entropy`]).
    pub fn new(
        transport: T,
        cloud_addr: SocketAddr,
        server_name: ServerName<'static>,
        tls: Arc<rustls::ClientConfig>,
        node_id: NodeId,
        project_id: impl Into<String>,
        cfg: EdgeHubConfig,
    ) -> Self {
        let (state, _) = watch::channel(CloudState::Connecting);
        Self {
            transport,
            cloud_addr,
            server_name,
            connector: TlsConnector::from(tls),
            node_id,
            project_id: project_id.into(),
            cfg,
            clock: Arc::new(SystemClock),
            entropy: Entropy::from_os(),
            state,
            metrics: Arc::new(EdgeHubMetrics::default()),
        }
    }

    /// Uses `clock` for message timestamps.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Uses `entropy` for message ids and reconnect jitter (seed it for determinism).
    pub fn with_entropy(mut self, entropy: Entropy) -> Self {
        self.entropy = entropy;
        self
    }

    /// The connection state (`Connected` = `cloud_connected`, `Disconnected` =
    /// `cloud_disconnected`).
    pub fn subscribe(&self) -> watch::Receiver<CloudState> {
        self.state.subscribe()
    }

    /// The counters (shared; they keep counting while `run` runs).
    pub fn metrics(&self) -> Arc<EdgeHubMetrics> {
        self.metrics.clone()
    }

    /// Runs until `shutdown` completes: dials, serves the session, redials with jittered,
    /// bounded exponential backoff. Received messages go to `downstream`; messages from
    /// `upstream` are sent to the cloud under the rate limit (held while disconnected, see the
    /// module docs). Returns `Err` only if `downstream` closes.
    pub async fn run(
        self,
        downstream: mpsc::Sender<Message>,
        upstream: mpsc::Receiver<Message>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), Error> {
        let span = info_span!("edgehub", node = %self.node_id, cloud = %self.cloud_addr);
        self.run_inner(downstream, upstream, shutdown)
            .instrument(span)
            .await
    }

    async fn run_inner(
        self,
        downstream: mpsc::Sender<Message>,
        upstream: mpsc::Receiver<Message>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), Error> {
        tokio::pin!(shutdown);
        let cfg = &self.cfg;
        let mut up = Upstream::new(upstream, cfg.upstream_queue_max, self.metrics.clone());
        let mut bucket = TokenBucket::new(cfg.message_qps, cfg.message_burst);
        let mut backoff = Backoff::new(
            cfg.reconnect_backoff_initial,
            cfg.reconnect_backoff_max,
            self.entropy.clone(),
        );
        loop {
            self.state.send_replace(CloudState::Connecting);
            let dial = tokio::time::timeout(cfg.handshake_timeout, self.connect());
            let Some(dialled) = up.drain_while(dial, &mut shutdown).await else {
                return Ok(());
            };
            match dialled.unwrap_or(Err(conn::ConnectError::Timeout)) {
                Ok(ws) => {
                    let started = Instant::now();
                    self.state.send_replace(CloudState::Connected);
                    metrics::inc(&self.metrics.connects);
                    info!("connected to cloudhub");
                    let end = self
                        .session(ws, &downstream, &mut up, &mut bucket, &mut shutdown)
                        .await;
                    let reason = match end {
                        SessionEnd::Shutdown => return Ok(()),
                        SessionEnd::DownstreamClosed => return Err(Error::DownstreamClosed),
                        SessionEnd::Lost(reason) => reason,
                    };
                    metrics::inc(&self.metrics.disconnects);
                    warn!(%reason, "disconnected from cloudhub");
                    self.state.send_replace(CloudState::Disconnected { reason });
                    if started.elapsed() >= cfg.reconnect_backoff_max {
                        backoff.reset();
                    }
                }
                Err(e) => {
                    warn!(error = %e, "cannot connect to cloudhub");
                    let reason = e.to_string();
                    self.state.send_replace(CloudState::Disconnected { reason });
                }
            }
            let delay = backoff.next_delay();
            if up
                .drain_while(tokio::time::sleep(delay), &mut shutdown)
                .await
                .is_none()
            {
                return Ok(());
            }
        }
    }
}

/// The upstream side: the caller's channel plus the outbox held while disconnected.
pub(crate) struct Upstream {
    rx: mpsc::Receiver<Message>,
    /// False once every sender is gone.
    open: bool,
    outbox: VecDeque<Message>,
    max: usize,
    metrics: Arc<EdgeHubMetrics>,
}

impl Upstream {
    fn new(rx: mpsc::Receiver<Message>, max: usize, metrics: Arc<EdgeHubMetrics>) -> Self {
        Self {
            rx,
            open: true,
            outbox: VecDeque::new(),
            max: max.max(1),
            metrics,
        }
    }

    /// Holds `msg` for the next session, dropping the oldest held message when full.
    fn hold(&mut self, msg: Message) {
        if self.outbox.len() >= self.max {
            self.outbox.pop_front();
            metrics::inc(&self.metrics.upstream_dropped);
        }
        self.outbox.push_back(msg);
    }

    /// Puts back a message whose send failed, ahead of the rest (unless full: it is the
    /// oldest, so it is the one dropped).
    fn put_back(&mut self, msg: Message) {
        if self.outbox.len() >= self.max {
            metrics::inc(&self.metrics.upstream_dropped);
        } else {
            self.outbox.push_front(msg);
        }
    }

    /// The next message to send: held ones first, then the channel. Cancel-safe.
    async fn next(&mut self) -> Message {
        if let Some(msg) = self.outbox.pop_front() {
            return msg;
        }
        if self.open {
            match self.rx.recv().await {
                Some(msg) => return msg,
                None => self.open = false,
            }
        }
        std::future::pending().await
    }

    /// Awaits `fut` while holding whatever arrives upstream; `None` if `shutdown` came first.
    async fn drain_while<F: Future>(
        &mut self,
        fut: F,
        shutdown: &mut (impl Future<Output = ()> + Unpin),
    ) -> Option<F::Output> {
        tokio::pin!(fut);
        loop {
            tokio::select! {
                biased;
                () = &mut *shutdown => return None,
                out = &mut fut => return Some(out),
                msg = self.rx.recv(), if self.open => match msg {
                    Some(msg) => self.hold(msg),
                    None => self.open = false,
                },
            }
        }
    }
}
