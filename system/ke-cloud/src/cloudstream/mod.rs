//! CloudStream: `kubectl logs` and `kubectl exec` for edge pods (KubeEdge's
//! `cloud/pkg/cloudstream`).
//!
//! Each edge's EdgeStream dials the tunnel (`wss://<cloud>:<tunnelPort>/v1/kubeedge/connect`,
//! mutual TLS with its node certificate; the `SessionHostNameOverride` header must name the
//! certificate's node). Sessions are multiplexed over that one connection with KubeEdge's
//! framing ([`ke_proto::stream`]). [`StreamHandle`] is the embedded API server's
//! [`PodStreams`](ke_apiserver::streams::PodStreams): a session for a pod goes only to the
//! tunnel of the node the pod is bound to, and the edge checks the pod is one of its own.
//!
//! - `admission` (private): the upgrade check (path, node header against the certificate).
//! - `tunnel` (private): the table of connected tunnels and their sessions; [`StreamHandle`].
//! - `server` (private): the listener, TLS, upgrade, and one tunnel's read/write loops.
//!
//! Bounds: each session buffers [`SESSION_FRAMES_MAX`] frames from the edge; a client slower
//! than that holds up its node's tunnel for at most [`SESSION_STALL_MAX`], then its session is
//! closed (REMOVE_CONNECT). Each tunnel's outbound queue holds [`TUNNEL_QUEUE_MAX`] frames.
//! Not served: the kubelet-style stream port (`streamPort`, for an external kube-apiserver),
//! attach, port-forward, metrics.

mod admission;
mod server;
mod tunnel;

pub use server::CloudStream;
pub use tunnel::StreamHandle;

use std::time::Duration;

/// Frames buffered per session, from the edge towards the client.
pub const SESSION_FRAMES_MAX: usize = 64;
/// Frames queued per tunnel towards the edge.
pub const TUNNEL_QUEUE_MAX: usize = 256;
/// Longest wait for a slow client before its session is cut.
pub const SESSION_STALL_MAX: Duration = Duration::from_secs(10);
/// Longest wait for the edge to accept or refuse a session.
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// Ping period on each tunnel (the edge drops a silent tunnel).
pub const PING_INTERVAL: Duration = Duration::from_secs(15);
/// Largest tunnel frame accepted (one log chunk or exec output chunk is far smaller).
pub const FRAME_BYTES_MAX: usize = 1 << 20;

/// Why CloudStream could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The tunnel port could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}
