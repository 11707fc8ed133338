//! The node-proxy seam: how `pods/log` and `pods/exec` reach the node a pod runs on.
//!
//! kube-apiserver dials the kubelet; this server knows no nodes. Whoever assembles it (cloudcore
//! with CloudStream) sets a [`PodStreams`] with [`crate::Server::set_pod_streams`]; without one,
//! both subresources answer 503 with a Status naming the node, as a kube-apiserver does when the
//! kubelet is unreachable.

use bytes::Bytes;
use futures::{Sink, future::BoxFuture, stream::BoxStream};
use std::pin::Pin;

/// The pod a stream is for, resolved by the API server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRef {
    /// `spec.nodeName`.
    pub node: String,
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.uid`.
    pub uid: String,
    /// The container (defaulted when the pod has one).
    pub container: String,
}

/// A `pods/log` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRequest {
    /// Whose logs.
    pub pod: PodRef,
    /// `follow`.
    pub follow: bool,
    /// `tailLines`.
    pub tail_lines: Option<u64>,
}

/// A `pods/exec` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecRequest {
    /// Where to run.
    pub pod: PodRef,
    /// `command` (repeated).
    pub command: Vec<String>,
    /// `stdin`.
    pub stdin: bool,
    /// `tty`.
    pub tty: bool,
}

/// Why a stream could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// No connection to the node (not connected, or no tunnel at all). Retryable.
    #[error("{0}")]
    Unreachable(String),
    /// The node refused (unknown pod or container, unsupported request). Not retryable.
    #[error("{0}")]
    Refused(String),
}

/// Exec input: remotecommand channel-tagged messages (first byte 0 = stdin, 255 = close).
pub type ExecInput = Pin<Box<dyn Sink<Bytes, Error = StreamError> + Send>>;

/// An open exec session.
pub struct ExecStream {
    /// Towards the process.
    pub input: ExecInput,
    /// From the process: channel-tagged messages (1 stdout, 2 stderr, 3 status JSON); the
    /// stream ends when the session does.
    pub output: BoxStream<'static, Bytes>,
}

impl std::fmt::Debug for ExecStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecStream").finish_non_exhaustive()
    }
}

/// Opens log and exec streams on nodes. Dropping a returned stream closes the session at
/// the node.
pub trait PodStreams: Send + Sync + 'static {
    /// The container's log as bytes; ends at the end of the log unless `follow`.
    fn logs(
        &self,
        req: LogRequest,
    ) -> BoxFuture<'static, Result<BoxStream<'static, Bytes>, StreamError>>;

    /// Whether `pod`'s node can be reached at all, without starting anything (lets a request
    /// that will be refused for another reason still report an unreachable node first).
    fn check(&self, pod: &PodRef) -> Result<(), StreamError> {
        let _ = pod;
        Ok(())
    }

    /// Runs a command in the container.
    fn exec(&self, req: ExecRequest) -> BoxFuture<'static, Result<ExecStream, StreamError>>;
}
