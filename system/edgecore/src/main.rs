//! `edgecore`: KubeEdge's edge daemon.
//!
//! `edgecore --config FILE` runs EdgeHub (wss to CloudHub), MetaManager (SQLite), edged (the
//! pod runtime chosen by `modules.edged.runtime`: `process`, `remote` for containerd's CRI
//! socket, or `sim`) and the node agent until SIGINT or SIGTERM, then stops the pods (CRI
//! containers keep running and are adopted at the next start) and exits 0. `monitorServer.bindAddress` serves `/metrics`
//! (Prometheus) and `/healthz`. `edgecore --defaultconfig` prints the full default
//! configuration. A bad configuration prints one line naming the key and exits with 64; a
//! failure while running exits with 1.
//!
//! Host facts the library does not read itself: the node's capacity (`/proc/meminfo`, CPU
//! count) and, when `nodeIP` is empty, the local address of the route to the cloud.

use std::{net::SocketAddr, path::Path, process::ExitCode, sync::Arc};

use anyhow::Context as _;
use clap::Parser;
use ke_core::Entropy;
use ke_edge::{
    config::{EdgeCoreConfig, EdgedRuntime},
    daemon::{self, Deps, EdgeCore, EdgeCoreHandle},
    edged::{CriConfig, CriRuntime, ProcessConfig, ProcessRuntime, Runtime, SimConfig, SimRuntime},
    node::NodeResources,
};
use ke_net::{
    TokioTransport, Transport as _,
    process::{EX_USAGE, LogColour, UsageDetail, init_tracing, parse_args},
};
use tokio_util::sync::CancellationToken;

/// KubeEdge's edge daemon (edgefleet).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// edgecore.yaml to run with.
    #[arg(long, required_unless_present = "defaultconfig")]
    config: Option<std::path::PathBuf>,
    /// Print the full default configuration and exit.
    #[arg(long)]
    defaultconfig: bool,
}

/// Why edgecore exits non-zero.
enum Failure {
    /// Bad flags or configuration: one line, exit 64.
    Usage(String),
    /// A failure while starting or running: exit 1.
    Run(anyhow::Error),
}

fn main() -> ExitCode {
    let args: Args = match parse_args("edgecore", UsageDetail::UpToUsage) {
        Ok(a) => a,
        Err(code) => return code,
    };
    if args.defaultconfig {
        let yaml = EdgeCoreConfig::default().to_yaml();
        #[expect(
            clippy::print_stdout,
            reason = "--defaultconfig prints the configuration"
        )]
        {
            print!("{yaml}");
        }
        return ExitCode::SUCCESS;
    }
    let Some(path) = args.config else {
        return usage("--config is required");
    };
    let cfg = match load(&path) {
        Ok(cfg) => cfg,
        Err(line) => return usage(&line),
    };
    init_tracing(LogColour::IfTerminal);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("edgecore: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cfg, &path)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(line)) => usage(&line),
        Err(Failure::Run(e)) => {
            tracing::error!(error = format!("{e:#}"), "edgecore failed");
            eprintln!("edgecore: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Prints `line` as the one-line usage error and returns exit code 64.
fn usage(line: &str) -> ExitCode {
    let line = line.replace('\n', " ");
    eprintln!("edgecore: {line}");
    ExitCode::from(EX_USAGE)
}

/// Reads, parses and validates the configuration; the error is the one line to print.
fn load(path: &Path) -> Result<EdgeCoreConfig, String> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let cfg = EdgeCoreConfig::from_yaml(&text).map_err(|e| format!("{shown}: {e}"))?;
    cfg.validate().map_err(|e| format!("{shown}: {e}"))?;
    Ok(cfg)
}

async fn run(mut cfg: EdgeCoreConfig, path: &Path) -> Result<(), Failure> {
    detect_node_ip(&mut cfg);
    if cfg.modules.edged.runtime == EdgedRuntime::Sim {
        let runtime = SimRuntime::new(SimConfig::default());
        return run_with(cfg, runtime, path).await;
    }
    let root = &cfg.modules.edged.tailored_kubelet_flag.root_directory;
    if cfg.modules.edged.runtime == EdgedRuntime::Remote {
        let endpoint = &cfg
            .modules
            .edged
            .tailored_kubelet_config
            .container_runtime_endpoint;
        let cri = CriConfig::new(endpoint.clone(), cfg.node_name(), root);
        let runtime = CriRuntime::connect(cri).await.map_err(|e| {
            Failure::Run(anyhow::Error::new(e).context(format!(
                "modules.edged.tailoredKubeletConfig.containerRuntimeEndpoint {endpoint}"
            )))
        })?;
        return run_with(cfg, runtime, path).await;
    }
    let runtime = ProcessRuntime::new(ProcessConfig::new(root));
    run_with(cfg, runtime, path).await
}

async fn run_with<R: Runtime>(cfg: EdgeCoreConfig, runtime: R, path: &Path) -> Result<(), Failure> {
    let deps = Deps::with_system_clock(TokioTransport, Entropy::from_os());
    let monitor = cfg.monitor_server.clone();
    let core = match EdgeCore::new(cfg, deps, runtime) {
        Ok(core) => core.with_resources(NodeResources::detect()),
        Err(daemon::Error::Config(e)) => {
            return Err(Failure::Usage(format!("{}: {e}", path.display())));
        }
        Err(e) => {
            return Err(Failure::Run(
                anyhow::Error::new(e).context("starting edgecore"),
            ));
        }
    };
    let stop = CancellationToken::new();
    let metrics = if monitor.enable {
        let addr = monitor.bind_addr().ok_or_else(|| {
            Failure::Usage(format!("{}: monitorServer.bindAddress", path.display()))
        })?;
        Some(bind_metrics(addr, core.handle(), stop.clone()).await?)
    } else {
        None
    };
    let signals = async {
        tokio::select! {
            () = ke_net::shutdown_signal!() => {}
            () = stop.cancelled() => {}
        }
        stop.cancel();
    };
    let daemon = async {
        let result = core.run(stop.cancelled()).await;
        stop.cancel();
        result
    };
    let serve = async {
        match metrics {
            Some(serve) => serve.await,
            None => Ok(()),
        }
    };
    let ((), result, served) = tokio::join!(signals, daemon, serve);
    if let Err(e) = served {
        tracing::warn!(error = %e, "metrics endpoint failed");
    }
    result.map_err(|e| Failure::Run(anyhow::Error::new(e).context("edgecore stopped")))
}

/// Binds the metrics endpoint (failing fast if the address is taken) and returns the serving
/// future.
async fn bind_metrics(
    addr: SocketAddr,
    handle: EdgeCoreHandle,
    stop: CancellationToken,
) -> Result<impl std::future::Future<Output = std::io::Result<()>>, Failure> {
    let listener = TokioTransport
        .bind(addr)
        .await
        .with_context(|| format!("binding monitorServer.bindAddress {addr}"))
        .map_err(Failure::Run)?;
    let render: Arc<dyn Fn() -> String + Send + Sync> = Arc::new(move || handle.to_prometheus());
    Ok(ke_net::serve_metrics(
        listener,
        render,
        stop.cancelled_owned(),
    ))
}

/// Without `nodeIP`, reports the local address of the route to the cloud: a connected UDP
/// socket sends nothing, but the kernel picks the source address a packet would use.
fn detect_node_ip(cfg: &mut EdgeCoreConfig) {
    let flag = &mut cfg.modules.edged.tailored_kubelet_flag;
    if !flag.node_ip.is_empty() {
        return;
    }
    let Ok(cloud) = cfg.modules.edge_hub.websocket.server.parse::<SocketAddr>() else {
        return;
    };
    let any = if cloud.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    if let Ok(socket) = std::net::UdpSocket::bind(any)
        && socket.connect(cloud).is_ok()
        && let Ok(local) = socket.local_addr()
        && !local.ip().is_unspecified()
    {
        flag.node_ip = local.ip().to_string();
        tracing::info!(node_ip = %flag.node_ip, "nodeIP not set; using the route to the cloud");
    }
}
