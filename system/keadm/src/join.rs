//! `keadm join`.

use std::{fs, net::SocketAddr, path::Path, path::PathBuf, time::Duration};

use anyhow::{Context as _, bail};
use clap::Args;
use ke_edge::config::{EdgeCoreConfig, EdgedRuntime};

use crate::{
    daemon::{EDGECORE, free_port, http_get, wait_ready},
    init::prepare_dir,
    say,
};

/// `keadm join` flags (KubeEdge's names and short forms).
#[derive(Debug, Args)]
pub(crate) struct JoinArgs {
    /// CloudHub's `IP:PORT`.
    #[arg(short = 'e', long)]
    cloudcore_ipport: String,
    /// The join token (`keadm gettoken`).
    #[arg(short = 't', long)]
    token: String,
    /// This node's name.
    #[arg(short = 'i', long)]
    edgenode_name: String,
    /// Where configuration, certificates, the database, pod files, pid and log files go.
    #[arg(long)]
    data_dir: PathBuf,
    /// The certificate server's port on the cloudcore host.
    #[arg(short = 's', long, default_value_t = 10002)]
    certport: u16,
    /// Extra node labels, `key=value[,key=value]`.
    #[arg(short = 'l', long, value_delimiter = ',')]
    labels: Vec<String>,
    /// The CRI endpoint of containerd, `unix:///PATH/containerd.sock`: pods run as containerd
    /// containers (`modules.edged.runtime: remote`). Without it, `--runtime` decides.
    #[arg(short = 'p', long)]
    remote_runtime_endpoint: Option<String>,
    /// CloudStream's tunnel port on the cloudcore host (`kubectl logs`/`exec`).
    #[arg(long, default_value_t = 10004)]
    tunnel_port: u16,
    /// Pod runtime (edgefleet): `process` runs each container's command; `sim` simulates.
    #[arg(long, default_value = "process")]
    runtime: String,
    /// Port of edgecore's metrics endpoint on 127.0.0.1 (default: a free one).
    #[arg(long)]
    metrics_port: Option<u16>,
    /// Seconds to wait for the node to be registered.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
    /// The external MQTT broker DeviceTwin and the mappers share
    /// (`modules.eventBus.mqttServerExternal`), `tcp://HOST:PORT`; used with `--mqtt-mode` 1
    /// and 2.
    #[arg(long, default_value = "tcp://127.0.0.1:1883")]
    mqtt_server: String,
    /// `modules.eventBus.mqttMode` (edgefleet; KubeEdge's keadm has no such flag): 0 runs
    /// edgecore's embedded broker on `--mqtt-internal-server` and DeviceTwin uses it (no
    /// mosquitto needed); 1 runs it and also uses `--mqtt-server`; 2 uses `--mqtt-server` only.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(0..=2))]
    mqtt_mode: u8,
    /// Where edgecore's embedded broker listens with `--mqtt-mode` 0 or 1
    /// (`modules.eventBus.mqttServerInternal`), `tcp://IP:PORT`.
    #[arg(long, default_value = "tcp://127.0.0.1:1884")]
    mqtt_internal_server: String,
    /// Run without DeviceTwin and EventBus (no MQTT connection; devices are not served).
    #[arg(long)]
    no_devices: bool,
}

fn edge_config(a: &JoinArgs, dir: &Path, metrics_port: u16) -> anyhow::Result<EdgeCoreConfig> {
    let p = |rel: &str| dir.join(rel).display().to_string();
    let (host, _) = a
        .cloudcore_ipport
        .rsplit_once(':')
        .with_context(|| format!("--cloudcore-ipport `{}` is not IP:PORT", a.cloudcore_ipport))?;
    let mut cfg = EdgeCoreConfig::default();
    cfg.database.data_source = p("edgecore.db");
    cfg.monitor_server.bind_address = format!("127.0.0.1:{metrics_port}");
    let hub = &mut cfg.modules.edge_hub;
    hub.tls_ca_file = p("ca/rootCA.crt");
    hub.tls_cert_file = p("certs/server.crt");
    hub.tls_private_key_file = p("certs/server.key");
    hub.websocket.server = a.cloudcore_ipport.clone();
    hub.http_server = format!("https://{host}:{}", a.certport);
    hub.token = a.token.clone();
    cfg.modules.edge_stream.enable = true;
    cfg.modules.edge_stream.server = format!("{host}:{}", a.tunnel_port);
    let edged = &mut cfg.modules.edged;
    edged.tailored_kubelet_flag.hostname_override = a.edgenode_name.clone();
    edged.tailored_kubelet_flag.root_directory = p("edged");
    for l in &a.labels {
        let (k, v) = l
            .split_once('=')
            .with_context(|| format!("label `{l}` is not key=value"))?;
        edged
            .tailored_kubelet_flag
            .node_labels
            .insert(k.to_owned(), v.to_owned());
    }
    cfg.modules.event_bus.mqtt_server_external = a.mqtt_server.clone();
    cfg.modules.event_bus.mqtt_server_internal = a.mqtt_internal_server.clone();
    cfg.modules.event_bus.mqtt_mode = a.mqtt_mode;
    cfg.modules.event_bus.enable = !a.no_devices;
    cfg.modules.device_twin.enable = !a.no_devices;
    let edged = &mut cfg.modules.edged;
    edged.runtime = match a.runtime.as_str() {
        "process" => EdgedRuntime::Process,
        "sim" => EdgedRuntime::Sim,
        other => bail!("--runtime `{other}`: expected process or sim"),
    };
    if let Some(ep) = &a.remote_runtime_endpoint {
        edged.runtime = EdgedRuntime::Remote;
        edged.tailored_kubelet_config.container_runtime_endpoint = ep.clone();
    }
    Ok(cfg)
}

pub(crate) async fn run(a: JoinArgs) -> anyhow::Result<()> {
    let dir = prepare_dir(&a.data_dir)?;
    let port = match a.metrics_port {
        Some(p) => p,
        None => free_port().await?,
    };
    let cfg = edge_config(&a, &dir, port)?;
    cfg.validate().context("the generated configuration")?;
    let cfg_path = EDGECORE.config_file(&dir);
    fs::write(&cfg_path, cfg.to_yaml())
        .with_context(|| format!("writing {}", cfg_path.display()))?;
    let pid = EDGECORE.spawn(&dir)?;
    let metrics = SocketAddr::from(([127, 0, 0, 1], port));
    wait_ready(
        EDGECORE,
        &dir,
        pid,
        Duration::from_secs(a.timeout),
        || async move {
            http_get(metrics, "/metrics").await.is_ok_and(|body| {
                body.lines()
                    .any(|l| l.trim() == "edgecore_node_registered 1")
            })
        },
    )
    .await?;
    say(&format!(
        "edgecore is running (pid {pid}) and node {} is registered; logs: {}",
        a.edgenode_name,
        EDGECORE.log_file(&dir).display()
    ));
    Ok(())
}
