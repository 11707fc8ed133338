//! `apiserver`: the embedded Kubernetes-compatible API server as a daemon.
//!
//! `apiserver --data-dir DIR [--listen 127.0.0.1:6443]` serves HTTPS until SIGINT or SIGTERM.
//! On first start it creates a CA, an admin token and `DIR/kubeconfig`. Bad flags or an
//! unusable data directory print one line and exit with code 64 (EX_USAGE).

use anyhow::Context as _;
use clap::Parser;
use ke_apiserver::{Deps, Server, ServerConfig};
use ke_core::Entropy;
use ke_net::{
    TokioTransport,
    process::{EX_USAGE, LogColour, UsageDetail, init_tracing, parse_args},
};
use std::{net::SocketAddr, path::PathBuf, process::ExitCode};

/// Embedded Kubernetes-compatible API server (SQLite storage, HTTPS, bearer tokens).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Directory for the database, certificates, admin token and kubeconfig.
    #[arg(long)]
    data_dir: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:6443")]
    listen: SocketAddr,
    /// Extra DNS names or IP addresses for the serving certificate (repeatable).
    #[arg(long = "tls-san")]
    tls_san: Vec<String>,
}

fn main() -> ExitCode {
    let args: Args = match parse_args("apiserver", UsageDetail::UpToUsage) {
        Ok(a) => a,
        Err(code) => return code,
    };
    init_tracing(LogColour::UnlessNoColor);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("apiserver: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("apiserver: {e:#}");
            ExitCode::from(EX_USAGE)
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let mut cfg = ServerConfig::new(&args.data_dir);
    cfg.listen = args.listen;
    cfg.extra_sans = args.tls_san;
    let deps = Deps::with_system_clock(TokioTransport, Entropy::from_os());
    let server = Server::start(cfg, deps).await.context("starting")?;
    tracing::info!(kubeconfig = %server.kubeconfig_path().display(), "ready");
    server.serve(ke_net::shutdown_signal!()).await;
    Ok(())
}
