//! [`ContainerStreams`]: what EdgeStream asks of a runtime for `kubectl logs` and
//! `kubectl exec`. Kept small so a CRI runtime implements it from its `logs` and `exec_sync`
//! calls (an `exec_sync` result becomes one stdout chunk, one stderr chunk and the exit).

use std::fmt;

use bytes::Bytes;
use futures::{future::BoxFuture, stream::BoxStream};
use tokio::sync::mpsc;

/// Output chunks buffered per exec before the process's pipes are no longer read.
pub const EXEC_OUTPUT_MAX: usize = 32;

/// Something an exec'd process produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecOutput {
    /// Bytes on stdout.
    Stdout(Bytes),
    /// Bytes on stderr.
    Stderr(Bytes),
    /// The process ended with this code (`128 + signal` when killed); the last item.
    Exited(i32),
}

/// A running exec.
#[derive(Debug)]
pub struct ExecProcess {
    /// Its stdin, when asked for; dropping it closes stdin.
    pub stdin: Option<mpsc::Sender<Bytes>>,
    /// Its output, ending with [`ExecOutput::Exited`]. Dropping it kills the process.
    pub output: mpsc::Receiver<ExecOutput>,
}

/// Why a log or exec stream could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum StreamsError {
    /// No such container (or it never ran here).
    #[error("{0}")]
    NotFound(String),
    /// The runtime cannot do this (a TTY, the simulated runtime).
    #[error("{0}")]
    Unsupported(String),
    /// Starting the process or reading the log failed.
    #[error("{what}: {source}")]
    Io {
        /// What was attempted.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Log and exec streams of a runtime's containers.
pub trait ContainerStreams: Send + Sync + fmt::Debug {
    /// The container's log: the last `tail_lines` lines (all without), then, with `follow`,
    /// what is appended until the stream is dropped. Asynchronous because a CRI runtime asks
    /// containerd where the log is; errors arrive before the first chunk.
    fn logs<'a>(
        &'a self,
        pod_uid: &'a str,
        container: &'a str,
        follow: bool,
        tail_lines: Option<u64>,
    ) -> BoxFuture<'a, Result<BoxStream<'static, Bytes>, StreamsError>>;

    /// Runs `command` in the container's context.
    fn exec<'a>(
        &'a self,
        pod_uid: &'a str,
        container: &'a str,
        command: &'a [String],
        stdin: bool,
    ) -> BoxFuture<'a, Result<ExecProcess, StreamsError>>;
}
