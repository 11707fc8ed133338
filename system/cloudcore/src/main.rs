//! `cloudcore`: KubeEdge's cloud daemon.
//!
//! `cloudcore --config FILE` runs CloudHub (wss, port 10000), the certificate server (port
//! 10002), EdgeController and, when `kubeAPIConfig.kubeConfig` is empty, the embedded API
//! server, until SIGINT or SIGTERM. `cloudcore --defaultconfig` prints the full default
//! configuration. A bad configuration prints one line naming the key and exits with 64.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context as _;
use clap::Parser;
use ke_cloud::{
    config::CloudCoreConfig,
    daemon::{CloudCore, Deps},
};
use ke_core::Entropy;
use ke_net::{
    TokioTransport,
    process::{
        EX_USAGE, LogColour, UsageDetail, init_tracing, parse_args, run_on_workers, runtime,
    },
};

/// mimalloc (see Cargo.toml): many small allocations per message.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// KubeEdge's cloud daemon (edgefleet).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// cloudcore.yaml to run with.
    #[arg(long, required_unless_present = "defaultconfig")]
    config: Option<PathBuf>,
    /// Print the full default configuration and exit.
    #[arg(long)]
    defaultconfig: bool,
    /// Runtime worker threads (default: one per core). Fewer than the cores when other busy
    /// processes share the machine: every wake-up of a task on another thread is a futex
    /// and a context switch (one thread cut cloudcore's CPU per twin report by a quarter
    /// beside a load generator on two cores).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    worker_threads: Option<u16>,
}

/// A failure before anything ran: bad flags or a bad configuration.
struct Usage(String);

fn main() -> ExitCode {
    let args: Args = match parse_args("cloudcore", UsageDetail::FirstLine) {
        Ok(a) => a,
        Err(code) => return code,
    };
    if args.defaultconfig {
        let yaml = CloudCoreConfig::default().to_yaml();
        #[expect(
            clippy::print_stdout,
            reason = "--defaultconfig prints the configuration"
        )]
        {
            print!("{yaml}");
        }
        return ExitCode::SUCCESS;
    }
    let cfg = match load(args.config.as_deref()) {
        Ok(cfg) => cfg,
        Err(Usage(line)) => {
            eprintln!("cloudcore: {line}");
            return ExitCode::from(EX_USAGE);
        }
    };
    init_tracing(LogColour::IfTerminal);
    let rt = match runtime(args.worker_threads).build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cloudcore: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // On the workers: polled by `block_on`, EdgeController (with the embedded API server's
    // handlers) ran beside the workers running CloudHub's sessions, and each report and its
    // confirmation crossed threads twice.
    let result = run_on_workers(&rt, run(cfg))
        .unwrap_or_else(|e| Err(anyhow::anyhow!("the cloudcore task failed: {e}")));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "cloudcore failed");
            eprintln!("cloudcore: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load(path: Option<&std::path::Path>) -> Result<CloudCoreConfig, Usage> {
    let path = path.ok_or_else(|| Usage("--config is required".into()))?;
    let text = std::fs::read_to_string(path)
        .map_err(|e| Usage(format!("cannot read {}: {e}", path.display())))?;
    let cfg =
        CloudCoreConfig::from_yaml(&text).map_err(|e| Usage(format!("{}: {e}", path.display())))?;
    cfg.validate()
        .map_err(|e| Usage(format!("{}: {e}", path.display())))?;
    Ok(cfg)
}

async fn run(cfg: CloudCoreConfig) -> anyhow::Result<()> {
    let deps = Deps::with_system_clock(TokioTransport, Entropy::from_os());
    let external = cfg.kube_api_config.kube_config.clone();
    let core = if external.is_empty() {
        CloudCore::start(cfg, deps)
            .await
            .context("starting cloudcore")?
    } else {
        let client = external_client(&external, &cfg.kube_api_config.master).await?;
        CloudCore::start_with_client(cfg, deps, client)
            .await
            .context("starting cloudcore")?
    };
    tracing::info!(
        hub = %core.hub_addr(),
        certs = ?core.cert_addr(),
        metrics = ?core.metrics_addr(),
        kubeconfig = ?core.kubeconfig_path(),
        "cloudcore ready"
    );
    core.run(ke_net::shutdown_signal!())
        .await
        .context("cloudcore stopped")
}

/// A kube client from a kubeconfig file (every auth method kube supports). This is the one
/// place cloudcore lets a library dial by itself: an external API server is never simulated.
async fn external_client(path: &str, master: &str) -> anyhow::Result<kube::Client> {
    let kc =
        kube::config::Kubeconfig::read_from(path).with_context(|| format!("reading {path}"))?;
    let mut config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .with_context(|| format!("loading {path}"))?;
    if !master.is_empty() {
        config.cluster_url = master
            .parse()
            .with_context(|| format!("kubeAPIConfig.master `{master}`"))?;
    }
    kube::Client::try_from(config).context("building the kube client")
}
