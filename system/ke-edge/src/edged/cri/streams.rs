//! [`ContainerStreams`] for the CRI runtime: `kubectl logs` from the CRI log file
//! ([`CriHandle::logs`]) and `kubectl exec` through CRI `ExecSync` ([`CriHandle::exec_sync`]).
//!
//! `ExecSync` returns the command's whole output when it ends, so an exec gets its stdout and
//! stderr as one chunk each, then its exit code; it has no stdin and is bounded by
//! [`EXEC_TIMEOUT`]. Streaming exec (CRI `Exec` and containerd's streaming server) is not
//! built: an exec that asks for stdin is refused with a message saying so.

use std::time::Duration;

use bytes::Bytes;
use futures::{FutureExt, StreamExt, future::BoxFuture, stream::BoxStream};
use tokio::sync::mpsc;
use tracing::warn;

use super::{CriHandle, Error};
use crate::edged::streams::{
    ContainerStreams, EXEC_OUTPUT_MAX, ExecOutput as Chunk, ExecProcess, StreamsError,
};

/// The longest an exec may run (CRI `ExecSync` timeout).
pub const EXEC_TIMEOUT: Duration = Duration::from_secs(300);

/// The CRI runtime's log and exec streams.
#[derive(Debug, Clone)]
pub struct CriStreams {
    handle: CriHandle,
}

impl CriStreams {
    /// Streams of the containers `handle` sees.
    pub fn new(handle: CriHandle) -> Self {
        Self { handle }
    }
}

fn streams_error(e: Error) -> StreamsError {
    match e {
        e @ (Error::NoContainer { .. } | Error::NotRunning { .. }) => {
            StreamsError::NotFound(e.to_string())
        }
        Error::Io { path, source } => StreamsError::Io {
            what: format!("reading {}", path.display()),
            source,
        },
        other => StreamsError::Io {
            what: other.to_string(),
            source: std::io::Error::other("CRI call failed"),
        },
    }
}

impl ContainerStreams for CriStreams {
    fn logs<'a>(
        &'a self,
        pod_uid: &'a str,
        container: &'a str,
        follow: bool,
        tail_lines: Option<u64>,
    ) -> BoxFuture<'a, Result<BoxStream<'static, Bytes>, StreamsError>> {
        async move {
            let lines = self
                .handle
                .logs(pod_uid, container, follow, tail_lines)
                .await
                .map_err(streams_error)?;
            // A read error ends the stream (kubectl sees the log end), and is logged.
            let chunks = lines
                .take_while(|r| {
                    if let Err(e) = r {
                        warn!(error = %e, "reading a CRI container log failed");
                    }
                    futures::future::ready(r.is_ok())
                })
                .filter_map(|r| futures::future::ready(r.ok()));
            Ok(chunks.boxed())
        }
        .boxed()
    }

    fn exec<'a>(
        &'a self,
        pod_uid: &'a str,
        container: &'a str,
        command: &'a [String],
        stdin: bool,
    ) -> BoxFuture<'a, Result<ExecProcess, StreamsError>> {
        async move {
            if stdin {
                return Err(StreamsError::Unsupported(
                    "exec with stdin is not supported by the CRI runtime (it runs commands \
                     with CRI ExecSync); run it without -i"
                        .to_owned(),
                ));
            }
            if command.is_empty() {
                return Err(StreamsError::Unsupported("exec needs a command".to_owned()));
            }
            let out = self
                .handle
                .exec_sync(pod_uid, container, command.to_vec(), EXEC_TIMEOUT)
                .await
                .map_err(streams_error)?;
            let (tx, rx) = mpsc::channel(EXEC_OUTPUT_MAX);
            // Three items fit the channel's bound, so these sends never wait.
            for chunk in [
                (!out.stdout.is_empty()).then(|| Chunk::Stdout(out.stdout)),
                (!out.stderr.is_empty()).then(|| Chunk::Stderr(out.stderr)),
                Some(Chunk::Exited(out.exit_code)),
            ]
            .into_iter()
            .flatten()
            {
                if tx.try_send(chunk).is_err() {
                    break;
                }
            }
            Ok(ExecProcess {
                stdin: None,
                output: rx,
            })
        }
        .boxed()
    }
}
