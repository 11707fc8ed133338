//! [`ProcessStreams`]: logs and exec for the process runtime.
//!
//! Logs are read from `output.log` (stdout and stderr of every run of the container, in
//! order); `follow` polls the file for growth every [`FOLLOW_POLL`]. Exec spawns the command
//! as another host process with the container's resolved environment, working directory and
//! mount-path rewriting, as the container itself got them. **There is no isolation**: the
//! process runtime has none, so an exec runs on the host as edgecore's user, like the
//! container does. No TTY.

use std::{
    collections::BTreeMap,
    fs,
    io::{Read, Seek, SeekFrom},
    path::PathBuf,
    process::Stdio,
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use futures::{FutureExt, StreamExt, future::BoxFuture, stream::BoxStream};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWriteExt},
    process::Command,
    sync::mpsc,
};

use super::streams::{ContainerStreams, EXEC_OUTPUT_MAX, ExecOutput, ExecProcess, StreamsError};

/// How often a followed log is checked for new bytes.
pub const FOLLOW_POLL: Duration = Duration::from_millis(200);
/// Bytes read from a log (or a pipe) at a time.
const CHUNK_BYTES: usize = 32 * 1024;

/// How a container was started: what an exec in it gets.
#[derive(Debug, Clone)]
pub(crate) struct ExecContext {
    /// The full environment (PATH, HOSTNAME, the pod's env, EDGEFLEET_*), rewritten.
    pub(crate) env: Vec<(String, String)>,
    /// The working directory.
    pub(crate) cwd: PathBuf,
    /// Mount path → host path rewrites for argv.
    pub(crate) subst: Vec<(String, String)>,
}

/// Exec contexts of running containers by (pod uid, container name).
pub(crate) type Contexts = Arc<Mutex<BTreeMap<(String, String), ExecContext>>>;

/// The process runtime's [`ContainerStreams`] (see the module docs).
#[derive(Debug, Clone)]
pub struct ProcessStreams {
    pub(crate) root: PathBuf,
    pub(crate) contexts: Contexts,
}

impl ProcessStreams {
    fn log_path(&self, uid: &str, container: &str) -> PathBuf {
        self.root
            .join("pods")
            .join(uid)
            .join("containers")
            .join(container)
            .join("output.log")
    }
}

/// The offset where the last `n` lines of `file` start.
fn tail_offset(file: &mut fs::File, n: u64) -> std::io::Result<u64> {
    let len = file.seek(SeekFrom::End(0))?;
    let mut pos = len;
    let mut newlines = 0u64;
    let mut buf = vec![0u8; CHUNK_BYTES];
    // A final newline ends the last line; it does not start another.
    let mut skip_last = true;
    while pos > 0 {
        let take = usize::try_from(pos.min(CHUNK_BYTES as u64)).unwrap_or(CHUNK_BYTES);
        pos -= take as u64;
        file.seek(SeekFrom::Start(pos))?;
        file.read_exact(&mut buf[..take])?;
        for i in (0..take).rev() {
            if buf[i] != b'\n' {
                skip_last = false;
                continue;
            }
            if skip_last {
                skip_last = false;
                continue;
            }
            newlines += 1;
            if newlines == n {
                return Ok(pos + i as u64 + 1);
            }
        }
    }
    Ok(0)
}

struct LogState {
    file: fs::File,
    follow: bool,
    buf: Vec<u8>,
}

async fn next_chunk(mut s: LogState) -> Option<(Bytes, LogState)> {
    loop {
        match s.file.read(&mut s.buf) {
            Ok(0) if s.follow => tokio::time::sleep(FOLLOW_POLL).await,
            Ok(0) | Err(_) => return None,
            Ok(n) => {
                let chunk = Bytes::copy_from_slice(&s.buf[..n]);
                return Some((chunk, s));
            }
        }
    }
}

impl ContainerStreams for ProcessStreams {
    fn logs<'a>(
        &'a self,
        pod_uid: &'a str,
        container: &'a str,
        follow: bool,
        tail_lines: Option<u64>,
    ) -> BoxFuture<'a, Result<BoxStream<'static, Bytes>, StreamsError>> {
        futures::future::ready(self.open_log(pod_uid, container, follow, tail_lines)).boxed()
    }

    fn exec<'a>(
        &'a self,
        pod_uid: &'a str,
        container: &'a str,
        command: &'a [String],
        stdin: bool,
    ) -> BoxFuture<'a, Result<ExecProcess, StreamsError>> {
        futures::future::ready(self.start_exec(pod_uid, container, command, stdin)).boxed()
    }
}

impl ProcessStreams {
    fn open_log(
        &self,
        pod_uid: &str,
        container: &str,
        follow: bool,
        tail_lines: Option<u64>,
    ) -> Result<BoxStream<'static, Bytes>, StreamsError> {
        let path = self.log_path(pod_uid, container);
        let io = |source| StreamsError::Io {
            what: format!("reading the log of container {container}"),
            source,
        };
        let mut file = fs::File::open(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => StreamsError::NotFound(format!(
                "container {container} has no log yet (not started on this node)"
            )),
            _ => io(e),
        })?;
        let start = match tail_lines {
            Some(n) => tail_offset(&mut file, n).map_err(io)?,
            None => 0,
        };
        file.seek(SeekFrom::Start(start)).map_err(io)?;
        let state = LogState {
            file,
            follow,
            buf: vec![0; CHUNK_BYTES],
        };
        Ok(futures::stream::unfold(state, next_chunk).boxed())
    }

    fn start_exec(
        &self,
        pod_uid: &str,
        container: &str,
        command: &[String],
        stdin: bool,
    ) -> Result<ExecProcess, StreamsError> {
        let key = (pod_uid.to_owned(), container.to_owned());
        let ctx = self
            .contexts
            .lock()
            .ok()
            .and_then(|m| m.get(&key).cloned())
            .ok_or_else(|| {
                StreamsError::NotFound(format!("container {container} is not running"))
            })?;
        let argv: Vec<String> = command
            .iter()
            .map(|a| super::process::substitute(a, &ctx.subst))
            .collect();
        let Some((program, args)) = argv.split_first() else {
            return Err(StreamsError::Unsupported("no command given".into()));
        };
        let mut cmd = Command::new(program);
        cmd.args(args)
            .env_clear()
            .envs(ctx.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&ctx.cwd)
            .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let child = cmd.spawn().map_err(|source| StreamsError::Io {
            what: format!("exec {program:?} in container {container}"),
            source,
        })?;
        let (out_tx, out_rx) = mpsc::channel(EXEC_OUTPUT_MAX);
        let (in_tx, in_rx) = mpsc::channel(EXEC_OUTPUT_MAX);
        // The process runtime supervises containers on tasks too: each child needs a poller.
        tokio::spawn(drive(child, in_rx, out_tx));
        Ok(ExecProcess {
            stdin: stdin.then_some(in_tx),
            output: out_rx,
        })
    }
}

async fn pipe<R: AsyncRead + Unpin>(
    r: Option<R>,
    tx: mpsc::Sender<ExecOutput>,
    wrap: fn(Bytes) -> ExecOutput,
) {
    let Some(mut r) = r else { return };
    let mut buf = vec![0u8; CHUNK_BYTES];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if tx
                    .send(wrap(Bytes::copy_from_slice(&buf[..n])))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    }
}

/// Copies stdin in and stdout/stderr out until the process ends, then reports its exit. If
/// the output receiver goes away the process is killed (dropped with `kill_on_drop`).
async fn drive(
    mut child: tokio::process::Child,
    mut stdin_rx: mpsc::Receiver<Bytes>,
    tx: mpsc::Sender<ExecOutput>,
) {
    let mut stdin = child.stdin.take();
    let out = pipe(child.stdout.take(), tx.clone(), ExecOutput::Stdout);
    let err = pipe(child.stderr.take(), tx.clone(), ExecOutput::Stderr);
    let feed = async {
        while let Some(data) = stdin_rx.recv().await {
            let Some(w) = stdin.as_mut() else { break };
            if w.write_all(&data).await.is_err() {
                break;
            }
        }
        drop(stdin.take());
        // Stdin ending does not end the process; its exit does.
        std::future::pending::<()>().await;
    };
    let gone = tx.clone();
    let work = async {
        let ((), (), status) = tokio::join!(out, err, child.wait());
        status
    };
    let status = tokio::select! {
        s = work => s,
        () = feed => return,
        () = gone.closed() => return,
    };
    let code = match status {
        Ok(s) => super::process::exit_of(s).0,
        Err(_) => 128,
    };
    let _ = tx.send(ExecOutput::Exited(code)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: `tail_offset` finds the start of the last n lines, with or without a final
    /// newline, and 0 when the file has fewer lines.
    #[test]
    fn tail_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log");
        for (text, n, want) in [
            ("a\nb\nc\n", 1, "c\n"),
            ("a\nb\nc\n", 2, "b\nc\n"),
            ("a\nb\nc", 1, "c"),
            ("a\nb\nc\n", 9, "a\nb\nc\n"),
            ("", 3, ""),
        ] {
            fs::write(&p, text).unwrap();
            let mut f = fs::File::open(&p).unwrap();
            let off = tail_offset(&mut f, n).unwrap();
            assert_eq!(&text[usize::try_from(off).unwrap()..], want, "{text:?} {n}");
        }
    }
}
