//! CloudHub: the cloud end of the cloud<->edge channel (KubeEdge's `cloud/pkg/cloudhub`).
//!
//! A wss server (mutual TLS, one JSON [`Message`] per text frame) that keeps one session per
//! edge node, checks each session's keepalive, and delivers downstream messages through a
//! per-node bounded queue with ACK and resend. Wire facts: `kubeedge-wire.md` §0, §2.1–2.4, §3.
//!
//! Module map:
//! - [`config`]: [`HubConfig`], every knob and bound with its default.
//! - `admission` (private): reading the upgrade request (`node_id`, `project_id`,
//!   `ConnectionUse`), node authorization against the client certificate, refusals as HTTP
//!   responses with a reason in the body.
//! - `queue` (private): the per-node queue, pure and clock-free: the ACK store keyed by object
//!   UID (coalescing by resourceVersion), the no-ACK queue, in-flight tracking and resends.
//! - `state` (private): the hub's shared state (sessions, queues, the node limit) and
//!   [`HubHandle`], the downstream API.
//! - `session` (private): one connection: TLS, upgrade, reader (keepalive, ACKs, upstream) and
//!   writer (queue to socket).
//! - [`metrics`]: counters, gauges and the ACK latency histogram, as Prometheus text.
//! - `server` (private): [`Hub`], the bound listener and its accept loop.
//!
//! # Policies (where this hub departs from KubeEdge, and why)
//! - *Refusals are explicit.* KubeEdge drops a connection over `nodeLimit` or failing
//!   authorization silently; here the upgrade is answered with `403` (node authorization) or
//!   `503` (node limit) or `400` (bad headers), with a plain-text body giving the reason.
//! - *Node authorization is on by default* (KubeEdge: off): the client certificate's CN must be
//!   `system:node:<node_id>`.
//! - *A malformed upstream frame does not end the session*: it is logged and counted
//!   (`cloudhub_malformed_frames_total`), because one bad frame from an otherwise healthy edge
//!   (a version skew in one message type) should not drop every other message. A session that
//!   sends more than [`HubConfig::malformed_frames_max`] malformed frames is closed with that
//!   reason. An oversized frame always closes the session (the peer is not speaking our
//!   protocol, and the bytes would otherwise have to be skipped).
//! - *Queues outlive sessions.* A node's queue is kept when its session ends, so an un-ACKed
//!   message is resent on the next session at once (KubeEdge drops the pool on reconnect and
//!   relies on its SyncController). Queues of offline nodes are bounded in number
//!   ([`HubConfig::node_queues_max`]); the one offline longest is evicted first.
//! - *Backpressure.* [`HubHandle::send`] never waits: a full queue returns
//!   [`SendError::QueueFull`] for that node only. Upstream, a full EdgeController channel stalls
//!   only the reading of that node's connection.

pub mod config;
pub mod metrics;

pub(crate) mod admission;
mod queue;
mod server;
mod session;
mod state;

use std::net::SocketAddr;

pub use config::HubConfig;
pub use ke_proto::{Message, NodeId};
pub use metrics::MetricsSnapshot;
pub use server::{Hub, HubOutputs};
pub use state::HubHandle;

/// Why the hub could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is inconsistent (see [`HubConfig::validate`]). Not retryable.
    #[error("invalid cloudhub configuration: {0}")]
    Config(String),
    /// The listen address could not be bound. Retryable once the address is free.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Result of hub setup.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why [`HubHandle::send`] refused a message. The message is not queued; nothing else about
/// the node or the hub changes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The node's queue is at its bound (ACK store objects or no-ACK messages). Retryable
    /// later; the resync on the node's next `Connected` event also covers it.
    #[error("queue of node {node} is full ({queue} queue, {max} entries)")]
    QueueFull {
        /// The node.
        node: NodeId,
        /// `ack` or `noack`.
        queue: &'static str,
        /// The bound in force.
        max: usize,
    },
    /// An ACK-mode message without a resourceversion that is not a delete (KubeEdge drops
    /// these silently). Not retryable.
    #[error("ACK-mode message {msg_id} for node {node} has no resourceversion")]
    MissingResourceVersion {
        /// The node.
        node: NodeId,
        /// The message id.
        msg_id: String,
    },
    /// The encoded message would exceed the frame limit the edge enforces. Not retryable.
    #[error("message {msg_id} for node {node} is {len} bytes, over the frame limit of {max}")]
    TooLarge {
        /// The node.
        node: NodeId,
        /// The message id.
        msg_id: String,
        /// Encoded length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Every queue slot is held by a connected node (or an offline one with queued work that
    /// cannot be evicted): no queue can be made for this node. Retryable.
    #[error("no queue for node {node}: {max} node queues exist")]
    TooManyNodes {
        /// The node.
        node: NodeId,
        /// [`HubConfig::node_queues_max`].
        max: usize,
    },
}

impl SendError {
    /// True if the same send may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::QueueFull { .. } | Self::TooManyNodes { .. })
    }
}

/// What [`HubHandle::send`] did with an accepted message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queued {
    /// Queued as a new entry.
    New,
    /// Replaced an older queued or in-flight message for the same object (coalesced).
    Replaced,
    /// Dropped because a newer (or deleted) state of the same object is already queued.
    Superseded,
}

/// A session lifecycle event, for EdgeController (KubeEdge's `connected`/`disconnected`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HubEvent {
    /// A session for `node` started.
    Connected {
        /// The node.
        node: NodeId,
        /// The session number (increasing over the hub's life).
        session: u64,
    },
    /// The session `session` of `node` ended.
    Disconnected {
        /// The node.
        node: NodeId,
        /// The session number.
        session: u64,
        /// Why it ended.
        reason: CloseReason,
    },
}

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// No `keepalive` within [`HubConfig::keepalive_interval`].
    KeepaliveTimeout,
    /// A newer connection for the same node took over.
    Replaced,
    /// The hub is shutting down.
    Shutdown,
    /// The edge closed the connection.
    PeerClosed,
    /// A frame exceeded the frame limit.
    Oversized,
    /// A malformed frame (more than [`HubConfig::malformed_frames_max`] of them).
    TooManyMalformed,
    /// A write did not complete within [`HubConfig::write_timeout`].
    WriteTimeout,
    /// Reading or writing the connection failed.
    Transport(String),
}

impl std::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::KeepaliveTimeout => f.write_str("keepalive timeout"),
            Self::Replaced => f.write_str("replaced by a newer connection for this node"),
            Self::Shutdown => f.write_str("cloudhub shutting down"),
            Self::PeerClosed => f.write_str("closed by the edge"),
            Self::Oversized => f.write_str("frame exceeds the frame size limit"),
            Self::TooManyMalformed => f.write_str("malformed frame"),
            Self::WriteTimeout => f.write_str("write timeout"),
            Self::Transport(e) => write!(f, "transport error: {e}"),
        }
    }
}
