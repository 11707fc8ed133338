//! The embedded MQTT 3.1.1 broker (KubeEdge's internal broker, `mqttMode` 0 and 1): what
//! mappers and edgecore's own EventBus client connect to when the node runs no mosquitto.
//!
//! - [`Broker`]: binds through a [`Transport`] and accepts clients until shutdown; each
//!   connection is a task in a `JoinSet` the broker's future owns (dropped with it).
//! - `session` (private): one client connection: CONNECT, then packets both ways.
//! - [`topic`]: topic names, filters and matching, with `$` topics allowed.
//!
//! Packets are framed and encoded by rumqttc's MQTT 3.1.1 codec (`rumqttc::mqttbytes::v4`).
//! What is served: CONNECT/CONNACK (a second CONNECT with a connected client id takes the
//! session over: the older connection is closed), PUBLISH at QoS 0 and 1 (PUBACK), SUBSCRIBE /
//! SUBACK with `+` and `#`, UNSUBSCRIBE / UNSUBACK, PINGREQ / PINGRESP, DISCONNECT, and
//! keep-alive (a client silent for 1.5× its keep-alive is closed). A QoS 2 PUBLISH completes
//! its PUBREC / PUBREL / PUBCOMP exchange (a resent packet id before PUBREL is not delivered
//! twice) but is forwarded at QoS 1; subscriptions are granted at most QoS 1. Delivery QoS is
//! min(publish QoS, granted QoS). Not served: retained messages (the retain flag is ignored,
//! as KubeEdge runs its internal broker with `mqttRetain: false`), persistent sessions (every
//! session is clean; CONNACK says `session_present: false`), wills, authentication (the
//! broker is meant for loopback).
//!
//! Bounds ([`BrokerConfig`]): packet size ([`MQTT_PACKET_BYTES_MAX`]; a larger packet closes
//! that connection before its payload is read), connections, subscriptions per client, and
//! one outbound queue per client ([`BrokerConfig::session_queue_max`], KubeEdge's
//! `mqttSessionQueueSize`). A publication never waits for a subscriber: when a subscriber's
//! queue is full, the message is dropped for that subscriber and counted
//! (`edgecore_mqtt_broker_dropped_total`). A malformed packet closes only its own connection,
//! logged with the reason.

mod session;
pub mod topic;

use std::{
    fmt::Write as _,
    future::Future,
    net::SocketAddr,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use ke_core::limits::{MQTT_CONNECTIONS_MAX, MQTT_PACKET_BYTES_MAX, MQTT_SUBSCRIPTIONS_MAX};
use ke_net::{Listener, Transport};
use rumqttc::QoS;
use std::collections::BTreeMap;
use tokio::{sync::mpsc, task::JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// KubeEdge's default `mqttSessionQueueSize`: messages waiting for one client.
pub const SESSION_QUEUE_DEFAULT: usize = 100;
/// Pause after a failed `accept` (descriptor exhaustion, ...) before trying again.
const ACCEPT_RETRY_DELAY: Duration = Duration::from_millis(100);
/// How long sessions get to close their sockets at shutdown before they are aborted.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(1);

/// The broker's bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerConfig {
    /// Messages waiting for one client (KubeEdge's `mqttSessionQueueSize`, default 100);
    /// further ones are dropped for that client.
    pub session_queue_max: usize,
    /// Largest packet read (remaining length).
    pub packet_bytes_max: usize,
    /// Connections served at once.
    pub connections_max: usize,
    /// Topic filters one client may hold.
    pub subscriptions_max: usize,
    /// How long a new connection may take to send CONNECT.
    pub connect_timeout: Duration,
}

impl Default for BrokerConfig {
    /// Queue [`SESSION_QUEUE_DEFAULT`], packets [`MQTT_PACKET_BYTES_MAX`], connections
    /// [`MQTT_CONNECTIONS_MAX`], subscriptions [`MQTT_SUBSCRIPTIONS_MAX`], CONNECT within 10 s.
    fn default() -> Self {
        Self {
            session_queue_max: SESSION_QUEUE_DEFAULT,
            packet_bytes_max: MQTT_PACKET_BYTES_MAX,
            connections_max: MQTT_CONNECTIONS_MAX,
            subscriptions_max: MQTT_SUBSCRIPTIONS_MAX,
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// Why the broker could not start. Not retryable without operator action (the address is
/// taken or not local).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// The broker's counters, read by edgecore's `/metrics`.
#[derive(Debug, Default)]
pub struct BrokerMetrics {
    clients: AtomicU64,
    connections: AtomicU64,
    refused: AtomicU64,
    closed_protocol: AtomicU64,
    messages_in: AtomicU64,
    messages_out: AtomicU64,
    dropped: AtomicU64,
}

/// A snapshot of [`BrokerMetrics`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BrokerCounters {
    /// Clients connected now (CONNACK sent, not yet gone).
    pub clients: u64,
    /// Connections accepted.
    pub connections: u64,
    /// Connections closed at accept (over [`BrokerConfig::connections_max`]).
    pub refused: u64,
    /// Connections closed for a malformed, oversized or unexpected packet.
    pub closed_protocol: u64,
    /// PUBLISH packets received.
    pub messages_in: u64,
    /// PUBLISH packets written to subscribers.
    pub messages_out: u64,
    /// Messages dropped for a subscriber whose queue was full.
    pub dropped: u64,
}

fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl BrokerMetrics {
    /// The current values.
    pub fn snapshot(&self) -> BrokerCounters {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        BrokerCounters {
            clients: get(&self.clients),
            connections: get(&self.connections),
            refused: get(&self.refused),
            closed_protocol: get(&self.closed_protocol),
            messages_in: get(&self.messages_in),
            messages_out: get(&self.messages_out),
            dropped: get(&self.dropped),
        }
    }

    /// The counters in the Prometheus text format (`edgecore_mqtt_broker_*`).
    pub fn to_prometheus(&self) -> String {
        let c = self.snapshot();
        let rows = [
            ("clients", "gauge", "MQTT clients connected.", c.clients),
            (
                "connections_total",
                "counter",
                "Connections accepted.",
                c.connections,
            ),
            (
                "refused_total",
                "counter",
                "Connections over the limit.",
                c.refused,
            ),
            (
                "protocol_errors_total",
                "counter",
                "Connections closed for a malformed, oversized or unexpected packet.",
                c.closed_protocol,
            ),
            (
                "messages_in_total",
                "counter",
                "PUBLISH packets received.",
                c.messages_in,
            ),
            (
                "messages_out_total",
                "counter",
                "Messages sent to subscribers.",
                c.messages_out,
            ),
            (
                "dropped_total",
                "counter",
                "Messages dropped for a subscriber whose queue was full.",
                c.dropped,
            ),
        ];
        let mut out = String::new();
        for (name, kind, help, v) in rows {
            let name = format!("edgecore_mqtt_broker_{name}");
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
            );
        }
        out
    }
}

/// A message queued for one subscriber.
#[derive(Debug)]
struct Delivery {
    topic: String,
    payload: Bytes,
    qos: QoS,
}

/// A connected client, as routing sees it.
#[derive(Debug)]
struct Client {
    /// Which connection holds the client id (a takeover replaces it).
    conn: u64,
    /// The connection's outbound queue.
    tx: mpsc::Sender<Delivery>,
    /// Filter → granted QoS. Ordered: delivery walks it.
    subs: BTreeMap<String, QoS>,
    /// Cancelled when another connection takes the client id over.
    taken_over: CancellationToken,
}

/// Every connected client by client id; ordered, so deliveries happen in a fixed order.
#[derive(Debug, Default)]
struct State {
    clients: BTreeMap<String, Client>,
    next_conn: u64,
}

/// State shared by the accept loop and the sessions.
#[derive(Debug)]
struct Shared {
    cfg: BrokerConfig,
    metrics: Arc<BrokerMetrics>,
    /// Held only for short, non-async sections (no await while locked).
    state: Mutex<State>,
    /// Cancelled at shutdown.
    stop: CancellationToken,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `payload` for every client with a filter matching `topic`, at min(`qos`, the
    /// highest granted QoS among its matching filters). Never waits: a full queue drops the
    /// message for that client.
    fn route(&self, topic: &str, payload: &Bytes, qos: QoS) {
        let state = self.state();
        for (id, client) in &state.clients {
            let granted = client
                .subs
                .iter()
                .filter(|(filter, _)| topic::matches(topic, filter))
                .map(|(_, q)| *q as u8)
                .max();
            let Some(granted) = granted else { continue };
            let qos = rumqttc::qos(granted.min(qos as u8))
                .expect("invariant: the minimum of two QoS values is a QoS");
            let delivery = Delivery {
                topic: topic.to_owned(),
                payload: payload.clone(),
                qos,
            };
            match client.tx.try_send(delivery) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    inc(&self.metrics.dropped);
                    debug!(client = %id, topic, "subscriber queue full; message dropped for it");
                }
                // The session is ending; it unregisters itself.
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
    }
}

/// A bound broker, ready to [`run`](Self::run).
pub struct Broker<T: Transport> {
    listener: T::Listener,
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl<T: Transport> std::fmt::Debug for Broker<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl<T: Transport> Broker<T> {
    /// Binds `addr` through `transport`.
    pub async fn bind(transport: &T, addr: SocketAddr, cfg: BrokerConfig) -> Result<Self, Error> {
        let bind_err = |source| Error::Bind { addr, source };
        let listener = transport.bind(addr).await.map_err(bind_err)?;
        let local = listener.local_addr().map_err(bind_err)?;
        if !local.ip().is_loopback() {
            warn!(addr = %local, "MQTT broker beyond loopback: it has no authentication");
        }
        info!(addr = %local, queue = cfg.session_queue_max, "MQTT broker listening");
        let shared = Arc::new(Shared {
            cfg,
            metrics: Arc::default(),
            state: Mutex::default(),
            stop: CancellationToken::new(),
        });
        Ok(Self {
            listener,
            addr: local,
            shared,
        })
    }

    /// Counts into `metrics` (edgecore's, so `/metrics` shows them) instead of its own.
    #[must_use]
    pub fn with_metrics(mut self, metrics: Arc<BrokerMetrics>) -> Self {
        Arc::get_mut(&mut self.shared)
            .expect("invariant: no session runs before `run`")
            .metrics = metrics;
        self
    }

    /// The bound address (useful after binding port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The broker's counters; valid after it stops.
    pub fn metrics(&self) -> Arc<BrokerMetrics> {
        self.shared.metrics.clone()
    }

    /// Accepts clients until `shutdown` completes, then closes every connection (waiting up
    /// to a second for them, then aborting the rest).
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let shared = self.shared;
        let mut listener = self.listener;
        let mut conns = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
                accepted = listener.accept() => match accepted {
                    Ok((conn, peer)) if conns.len() >= shared.cfg.connections_max => {
                        inc(&shared.metrics.refused);
                        warn!(%peer, conns = conns.len(), "too many MQTT connections; closed");
                        drop(conn);
                    }
                    Ok((conn, peer)) => {
                        inc(&shared.metrics.connections);
                        conns.spawn(session::serve(shared.clone(), conn, peer));
                    }
                    Err(e) => {
                        warn!(error = %e, "MQTT accept failed");
                        tokio::time::sleep(ACCEPT_RETRY_DELAY).await;
                    }
                },
            }
        }
        info!(clients = conns.len(), "MQTT broker stopping");
        drop(listener);
        shared.stop.cancel();
        let drain = async { while conns.join_next().await.is_some() {} };
        if tokio::time::timeout(DRAIN_TIMEOUT, drain).await.is_err() {
            conns.abort_all();
        }
    }
}

/// The listening address in an `mqttServerInternal` URL, `tcp://IP:PORT` (names are not
/// resolved). The error is the reason, for a config error naming the key.
pub fn listen_addr(url: &str) -> Result<SocketAddr, String> {
    let rest = url
        .strip_prefix("tcp://")
        .ok_or_else(|| format!("`{url}` is not tcp://IP:PORT (only tcp:// is served)"))?;
    rest.trim_end_matches('/')
        .parse()
        .map_err(|_| format!("`{url}` is not tcp://IP:PORT (host names are not resolved)"))
}
