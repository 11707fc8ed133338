//! `keadm init` and `keadm gettoken`.

use std::{
    fs,
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use anyhow::Context as _;
use clap::Args;
use ke_cloud::{
    certs::CertAuthority,
    config::{CloudCoreConfig, StandalonePorts},
};
use ke_core::{Clock, SystemClock};

use crate::{
    daemon::{CLOUDCORE, http_get, wait_ready},
    say,
};

/// `keadm init` flags.
#[derive(Debug, Args)]
pub(crate) struct InitArgs {
    /// The IP edges use to reach cloudcore (in its certificate; the listeners bind it).
    #[arg(long)]
    advertise_address: IpAddr,
    /// Where configuration, certificates, the API server's data, pid and log files go.
    #[arg(long)]
    data_dir: PathBuf,
    /// CloudHub's websocket port.
    #[arg(long, default_value_t = 10000)]
    websocket_port: u16,
    /// The certificate server's port.
    #[arg(long, default_value_t = 10002)]
    cert_port: u16,
    /// The embedded API server's port (on 127.0.0.1).
    #[arg(long, default_value_t = 6443)]
    apiserver_port: u16,
    /// The metrics endpoint's port (on 127.0.0.1).
    #[arg(long, default_value_t = 9091)]
    metrics_port: u16,
    /// CloudStream's tunnel port (edges dial it for `kubectl logs`/`exec`).
    #[arg(long, default_value_t = 10004)]
    tunnel_port: u16,
    /// Seconds to wait for cloudcore to become ready.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
}

/// Absolute form of `dir`, created if missing.
pub(crate) fn prepare_dir(dir: &Path) -> anyhow::Result<PathBuf> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    dir.canonicalize()
        .with_context(|| format!("resolving {}", dir.display()))
}

fn cloud_config(a: &InitArgs, dir: &Path) -> CloudCoreConfig {
    let ports = StandalonePorts {
        websocket: a.websocket_port,
        cert: a.cert_port,
        apiserver: a.apiserver_port,
        metrics: a.metrics_port,
        tunnel: a.tunnel_port,
    };
    CloudCoreConfig::standalone(dir, a.advertise_address, ports)
}

pub(crate) async fn run(a: InitArgs) -> anyhow::Result<()> {
    let dir = prepare_dir(&a.data_dir)?;
    let cfg = cloud_config(&a, &dir);
    cfg.validate().context("the generated configuration")?;
    let cfg_path = CLOUDCORE.config_file(&dir);
    fs::write(&cfg_path, cfg.to_yaml())
        .with_context(|| format!("writing {}", cfg_path.display()))?;
    let pid = CLOUDCORE.spawn(&dir)?;
    let metrics = SocketAddr::from(([127, 0, 0, 1], a.metrics_port));
    let kubeconfig = dir.join("apiserver").join("kubeconfig");
    wait_ready(CLOUDCORE, &dir, pid, Duration::from_secs(a.timeout), || {
        let kc = kubeconfig.clone();
        async move { kc.is_file() && http_get(metrics, "/healthz").await.is_ok() }
    })
    .await?;
    let token = token(&dir)?;
    say(&format!(
        "cloudcore is running (pid {pid}); logs: {}",
        CLOUDCORE.log_file(&dir).display()
    ));
    say(&format!("kubeconfig: {}", kubeconfig.display()));
    say("To join an edge node, run on it:");
    say(&format!(
        "  keadm join --cloudcore-ipport {}:{} --token {token} --edgenode-name <NAME> --data-dir <DIR>",
        a.advertise_address, a.websocket_port
    ));
    Ok(())
}

/// A join token from the CA under `dir` (valid for cloudcore's `tokenRefreshDuration`).
fn token(dir: &Path) -> anyhow::Result<String> {
    let cfg_path = CLOUDCORE.config_file(dir);
    let text = fs::read_to_string(&cfg_path).with_context(|| {
        format!(
            "reading {} (was `keadm init` run with this --data-dir?)",
            cfg_path.display()
        )
    })?;
    let cfg = CloudCoreConfig::from_yaml(&text).context("parsing cloudcore.yaml")?;
    let hub = &cfg.modules.cloud_hub;
    let ca =
        CertAuthority::load_files(Path::new(&hub.tls_ca_file), Path::new(&hub.tls_ca_key_file))
            .context("loading the CA")?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    Ok(ca.join_token(&*clock, hub.token_refresh()).to_string())
}

pub(crate) fn gettoken(dir: &Path) -> anyhow::Result<()> {
    let dir = dir
        .canonicalize()
        .with_context(|| format!("resolving {}", dir.display()))?;
    say(&token(&dir)?);
    Ok(())
}
