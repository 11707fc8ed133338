//! One log or exec session on the tunnel.

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use ke_proto::stream::{CLOSE_CONNECT, DATA, EXEC_CONNECT, ExecConnect, LogsConnect, StreamFrame};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;

use super::Ctx;
use crate::edged::{ExecOutput, ExecProcess};

pub(crate) type Ws<C> = WebSocketStream<TlsStream<C>>;

/// remotecommand channels.
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const STATUS: u8 = 3;
const STDIN: u8 = 0;
const CLOSE: u8 = 255;

pub(crate) struct Session {
    pub(crate) id: u64,
    pub(crate) ctx: Arc<Ctx>,
    /// Towards the cloud (the tunnel's writer).
    pub(crate) out: mpsc::Sender<Vec<u8>>,
    /// From the cloud; closed when the cloud removes the session.
    pub(crate) inbound: mpsc::Receiver<StreamFrame>,
}

/// The Status kubelet sends on the error channel when a command ends.
pub(crate) fn exit_status(command: &[String], code: i32) -> Vec<u8> {
    let v = if code == 0 {
        json!({"metadata": {}, "status": "Success"})
    } else {
        json!({"metadata": {}, "status": "Failure",
            "message": format!(
                "command terminated with non-zero exit code: error executing command {command:?}, exit code {code}"),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]}})
    };
    v.to_string().into_bytes()
}

fn tagged(channel: u8, data: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(data.len() + 1);
    v.push(channel);
    v.extend_from_slice(data);
    v
}

impl Session {
    async fn send(&self, kind: u64, data: Vec<u8>) -> bool {
        self.out
            .send(StreamFrame::new(self.id, kind, data).encode())
            .await
            .is_ok()
    }

    /// Serves the session opened by `open`; returns its id when done.
    pub(crate) async fn run(mut self, open: StreamFrame) -> u64 {
        let result = if open.kind == EXEC_CONNECT {
            match serde_json::from_slice::<ExecConnect>(&open.data) {
                Ok(req) => self.exec(req).await,
                Err(e) => Err(format!("malformed EXEC_CONNECT: {e}")),
            }
        } else {
            match serde_json::from_slice::<LogsConnect>(&open.data) {
                Ok(req) => self.logs(req).await,
                Err(e) => Err(format!("malformed LOGS_CONNECT: {e}")),
            }
        };
        match result {
            Ok(true) => {
                self.send(CLOSE_CONNECT, Vec::new()).await;
            }
            Ok(false) => {} // removed by the cloud
            Err(why) => {
                tracing::info!(connect_id = self.id, reason = %why, "stream session refused");
                self.send(CLOSE_CONNECT, why.into_bytes()).await;
            }
        }
        self.id
    }

    /// `Ok(true)`: ended by itself; `Ok(false)`: removed by the cloud.
    async fn logs(&mut self, req: LogsConnect) -> Result<bool, String> {
        let uid = self.ctx.check(&req.pod)?;
        let streams = self.ctx.streams()?.clone();
        let mut log = streams
            .logs(&uid, &req.pod.container, req.follow, req.tail_lines)
            .await
            .map_err(|e| e.to_string())?;
        if !self.send(DATA, Vec::new()).await {
            return Ok(false);
        }
        loop {
            tokio::select! {
                chunk = log.next() => match chunk {
                    Some(c) => if !self.send(DATA, c.to_vec()).await { return Ok(false) },
                    None => return Ok(true),
                },
                f = self.inbound.recv() => if f.is_none() { return Ok(false) },
            }
        }
    }

    async fn exec(&mut self, req: ExecConnect) -> Result<bool, String> {
        let uid = self.ctx.check(&req.pod)?;
        let streams = self.ctx.streams()?.clone();
        let ExecProcess {
            mut stdin,
            mut output,
        } = streams
            .exec(&uid, &req.pod.container, &req.command, req.stdin)
            .await
            .map_err(|e| e.to_string())?;
        if !self.send(DATA, Vec::new()).await {
            return Ok(false);
        }
        loop {
            tokio::select! {
                o = output.recv() => {
                    let data = match o {
                        Some(ExecOutput::Stdout(b)) => tagged(STDOUT, &b),
                        Some(ExecOutput::Stderr(b)) => tagged(STDERR, &b),
                        Some(ExecOutput::Exited(code)) => {
                            let status = tagged(STATUS, &exit_status(&req.command, code));
                            return Ok(self.send(DATA, status).await);
                        }
                        None => return Ok(true),
                    };
                    if !self.send(DATA, data).await {
                        return Ok(false);
                    }
                }
                f = self.inbound.recv() => match f {
                    None => return Ok(false),
                    Some(f) if f.kind == DATA => match f.data.split_first() {
                        Some((&STDIN, rest)) => {
                            if let Some(tx) = &stdin {
                                let _ = tx.send(Bytes::copy_from_slice(rest)).await;
                            }
                        }
                        Some((&CLOSE, [STDIN, ..])) => stdin = None,
                        _ => {}
                    },
                    Some(_) => {}
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: a non-zero exit becomes kubelet's NonZeroExitCode Status with the code as the
    /// ExitCode cause (what kubectl turns into its own exit code); 0 is Success.
    #[test]
    fn exit_statuses() {
        let cmd = vec!["sh".to_owned(), "-c".to_owned(), "exit 3".to_owned()];
        let v: serde_json::Value = serde_json::from_slice(&exit_status(&cmd, 3)).unwrap();
        assert_eq!(v["reason"], "NonZeroExitCode");
        assert_eq!(v["details"]["causes"][0]["message"], "3");
        let v: serde_json::Value = serde_json::from_slice(&exit_status(&cmd, 0)).unwrap();
        assert_eq!(v["status"], "Success");
    }
}
