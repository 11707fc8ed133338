//! What the daemons' `main` functions share (apiserver, cloudcore, edgecore, keadm):
//!
//! - [`parse_args`]: clap parsing where `--help`/`--version` exit 0 and a usage error is one
//!   line on stderr, `BIN: … (see --help)`, and exit code [`EX_USAGE`] (64).
//! - [`init_tracing`]: log lines on stderr, filtered by `RUST_LOG` (default `info`).
//! - [`runtime`] and [`run_on_workers`]: the multi-thread runtime (`--worker-threads`) and
//!   the daemon's future run as a task on its workers.
//! - [`shutdown_signal!`](crate::shutdown_signal): a future that completes on SIGTERM or
//!   SIGINT, built on [`stop_signal`].
//!
//! Binaries only (feature `process`): libraries take their stop future and their subscriber
//! from the caller, so that the simulator can drive them.

use std::{fmt, io, io::IsTerminal as _, process::ExitCode};

/// Exit code for bad usage: bad flags or a bad configuration (sysexits.h `EX_USAGE`).
pub const EX_USAGE: u8 = 64;

/// How much of a clap error its one usage line keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageDetail {
    /// The first line only (`the following required arguments were not provided:`).
    FirstLine,
    /// Every line up to clap's usage block, trimmed and joined by spaces, so that the line
    /// names e.g. the missing flag.
    UpToUsage,
}

/// A multi-thread runtime builder, every driver on, with `worker_threads` workers (default:
/// one per core). Fewer than the cores when other busy processes share the machine: each
/// wake-up of a task on another thread is a futex and a context switch.
pub fn runtime(worker_threads: Option<u16>) -> tokio::runtime::Builder {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    b.enable_all();
    if let Some(n) = worker_threads {
        b.worker_threads(usize::from(n));
    }
    b
}

/// Runs a daemon's future to completion as a task on `rt`'s workers, not on the calling
/// thread: polled by `block_on` it would run beside the workers, and every hand-off between
/// it and the tasks it spawns would cross threads. A panic of the task is the `Err`.
pub fn run_on_workers<F>(
    rt: &tokio::runtime::Runtime,
    fut: F,
) -> Result<F::Output, tokio::task::JoinError>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    rt.block_on(rt.spawn(fut))
}

/// Parses the command line into `A`. `Err` carries the code `main` should return at once:
/// after `--help` or `--version` (printed to stdout) 0; after a usage error, printed as one
/// line `BIN: REASON (see --help)` on stderr, [`EX_USAGE`].
pub fn parse_args<A: clap::Parser>(bin: &str, detail: UsageDetail) -> Result<A, ExitCode> {
    match A::try_parse() {
        Ok(args) => Ok(args),
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            Err(ExitCode::SUCCESS)
        }
        Err(e) => {
            let line = usage_line(&e.to_string(), detail);
            eprintln!("{bin}: {line} (see --help)");
            Err(ExitCode::from(EX_USAGE))
        }
    }
}

/// The reason in clap's error `text`, on one line, without clap's `error: ` prefix.
fn usage_line(text: &str, detail: UsageDetail) -> String {
    let line = match detail {
        UsageDetail::FirstLine => text.lines().next().unwrap_or_default().to_owned(),
        // clap puts details (e.g. the missing flag) on indented lines after the first; keep
        // everything up to the usage block.
        UsageDetail::UpToUsage => text
            .lines()
            .take_while(|l| !l.trim().is_empty())
            .map(str::trim)
            .collect::<Vec<_>>()
            .join(" "),
    };
    line.trim_start_matches("error: ").to_owned()
}

/// When log lines carry ANSI colours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogColour {
    /// Only when stderr is a terminal (so log files stay plain).
    IfTerminal,
    /// tracing-subscriber's default: always, unless `NO_COLOR` is set.
    UnlessNoColor,
}

/// Installs the global subscriber: human-readable lines on stderr, filtered by `RUST_LOG`
/// (`info` when unset or invalid). Call once, before the runtime starts.
pub fn init_tracing(colour: LogColour) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(io::stderr);
    match colour {
        LogColour::IfTerminal => builder.with_ansi(io::stderr().is_terminal()).init(),
        LogColour::UnlessNoColor => builder.init(),
    }
}

/// A signal that asks a daemon to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignal {
    /// SIGTERM (`kill`, service managers).
    Term,
    /// SIGINT (Ctrl-C).
    Int,
}

impl fmt::Display for StopSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Term => "SIGTERM",
            Self::Int => "SIGINT",
        })
    }
}

/// Installs handlers for SIGTERM and SIGINT (on first poll) and waits for either. `Err` if a
/// handler cannot be installed. Needs a tokio runtime with I/O enabled.
pub async fn stop_signal() -> io::Result<StopSignal> {
    use tokio::signal::unix::{SignalKind, signal};
    // Both are installed before either failure is reported, as the daemons always did.
    let (term, int) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    );
    let (mut term, mut int) = (term?, int?);
    Ok(tokio::select! {
        _ = term.recv() => StopSignal::Term,
        _ = int.recv() => StopSignal::Int,
    })
}

/// A future that completes on SIGTERM or SIGINT, logging which at INFO (`SIGTERM`,
/// `SIGINT`); if the handlers cannot be installed it logs an error and never completes (stop
/// with SIGKILL). What the daemons pass as their shutdown future.
///
/// A macro rather than a function so that those log lines carry the calling binary's target
/// (`cloudcore: SIGTERM`), not ke-net's.
#[macro_export]
macro_rules! shutdown_signal {
    () => {
        async {
            match $crate::process::stop_signal().await {
                ::core::result::Result::Ok($crate::process::StopSignal::Term) => {
                    $crate::process::__private::tracing::info!("SIGTERM")
                }
                ::core::result::Result::Ok($crate::process::StopSignal::Int) => {
                    $crate::process::__private::tracing::info!("SIGINT")
                }
                ::core::result::Result::Err(_) => {
                    $crate::process::__private::tracing::error!(
                        "cannot install signal handlers; stop with SIGKILL"
                    );
                    ::std::future::pending::<()>().await
                }
            }
        }
    };
}

/// What [`shutdown_signal!`](crate::shutdown_signal) expands to; not an API.
#[doc(hidden)]
pub mod __private {
    pub use tracing;
}

/// A plain-HTTP/1.1 request to a local endpoint (metrics, health, a tool's control API):
/// `Connection: close`, no body, the whole response read. Returns the status code and the
/// body. For daemons' and tools' own endpoints on loopback, not a general HTTP client.
pub async fn http_request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    timeout: std::time::Duration,
) -> io::Result<(u16, String)> {
    use crate::Transport as _;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let exchange = async {
        let mut s = crate::TokioTransport.connect(addr).await?;
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        s.write_all(req.as_bytes()).await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        Ok::<_, io::Error>(buf)
    };
    let buf = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| {
            io::Error::new(io::ErrorKind::TimedOut, format!("{addr}{path}: timed out"))
        })??;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{addr}{path}: not an HTTP response"),
            )
        })?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Ok((status, body))
}

/// The payload of a chunked body (hyper chunks bodies of unknown length).
fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// A command line like the daemons'.
    #[derive(Debug, Parser)]
    struct Args {
        /// Required.
        #[arg(long)]
        data_dir: String,
        /// A number.
        #[arg(long, default_value_t = 1)]
        count: u32,
    }

    fn error_text(argv: &[&str]) -> String {
        let Err(e) = Args::try_parse_from(argv) else {
            panic!("{argv:?} parsed");
        };
        assert!(e.use_stderr(), "{argv:?}");
        e.to_string()
    }

    /// Goal: a clap usage error becomes one line without `error: `; `UpToUsage` keeps the
    /// indented details (the missing flag), `FirstLine` does not.
    /// Method: real clap errors for a missing flag, an unknown flag and a bad value.
    #[test]
    fn usage_errors_become_one_line() {
        let missing = error_text(&["bin"]);
        assert_eq!(
            usage_line(&missing, UsageDetail::FirstLine),
            "the following required arguments were not provided:"
        );
        assert_eq!(
            usage_line(&missing, UsageDetail::UpToUsage),
            "the following required arguments were not provided: --data-dir <DATA_DIR>"
        );
        for detail in [UsageDetail::FirstLine, UsageDetail::UpToUsage] {
            let unknown = usage_line(&error_text(&["bin", "--data-dir", "d", "--bogus"]), detail);
            assert_eq!(unknown, "unexpected argument '--bogus' found");
            let bad = usage_line(&error_text(&["bin", "--data-dir=d", "--count=x"]), detail);
            assert!(
                bad.starts_with("invalid value 'x' for '--count <COUNT>'"),
                "{bad}"
            );
            assert!(!bad.contains('\n'), "{bad}");
        }
    }

    /// Goal: the signal names in the log lines. Method: format both.
    #[test]
    fn signals_display_as_their_names() {
        assert_eq!(StopSignal::Term.to_string(), "SIGTERM");
        assert_eq!(StopSignal::Int.to_string(), "SIGINT");
    }
}
