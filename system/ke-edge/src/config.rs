//! `edgecore.yaml`: KubeEdge's `edgecore.config.kubeedge.io/v1alpha2`, kind `EdgeCore`
//! (reference kubeedge-wire.md §8.1), restricted to what edgefleet implements.
//!
//! Key names are KubeEdge's (camelCase as in the real YAML). Every struct denies unknown keys:
//! a typo or an unsupported KubeEdge option is an error naming the key, its path and its line.
//! Every omitted key takes KubeEdge's default, documented on each `Default` impl.
//!
//! edgefleet extensions and deviations:
//! - `modules.edged.runtime` (extension): the pod runtime, `process` (default), `remote`
//!   (CRI: containerd at `tailoredKubeletConfig.containerRuntimeEndpoint`, KubeEdge's key) or
//!   `sim`.
//! - `modules.edged.tailoredKubeletFlag.hostnameOverride` (the node name) defaults to empty
//!   (KubeEdge: the host name) and must be set: `keadm join --edgenode-name` writes it.
//! - `monitorServer` (extension, top level): the Prometheus endpoint, the same shape as
//!   cloudcore's `commonConfig.monitorServer` plus `enable`.
//! - `modules.edgeHub.websocket.server` and `httpServer` default to `127.0.0.1:10000` and
//!   `https://127.0.0.1:10002` (KubeEdge: the host's IP); `keadm join` writes them.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The `apiVersion` of `edgecore.yaml`.
pub const API_VERSION: &str = "edgecore.config.kubeedge.io/v1alpha2";
/// The `kind` of `edgecore.yaml`.
pub const KIND: &str = "EdgeCore";

pub use ke_core::config::ConfigError;
use ke_core::config::{invalid, positive};

fn non_empty(field: &'static str, value: &str) -> Result<(), ConfigError> {
    if value.trim().is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    Ok(())
}

/// Parses a Go `time.Duration` string as KubeEdge writes them (`10s`, `5m0s`, `1h30m`,
/// `500ms`): a sequence of decimal numbers, each with a unit `ns`, `us`, `µs`, `ms`, `s`, `m`
/// or `h`. `0` alone is zero. Returns `None` for anything else.
pub fn parse_go_duration(text: &str) -> Option<Duration> {
    if text == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = text;
    let mut total = 0f64;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let number: f64 = rest.get(..number_len)?.parse().ok()?;
        rest = rest.get(number_len..)?;
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match rest.get(..unit_len)? {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += number * scale;
        rest = rest.get(unit_len..)?;
    }
    Duration::try_from_secs_f64(total).ok()
}

/// The whole `edgecore.yaml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "camelCase")]
pub struct EdgeCoreConfig {
    /// Must be [`API_VERSION`].
    pub api_version: String,
    /// Must be [`KIND`].
    pub kind: String,
    /// The MetaManager's SQLite database.
    pub database: Database,
    /// Per-module settings.
    pub modules: EdgeModules,
    /// `monitorServer` (edgefleet extension): the metrics endpoint.
    pub monitor_server: MonitorServer,
}

impl Default for EdgeCoreConfig {
    /// `apiVersion: edgecore.config.kubeedge.io/v1alpha2`, `kind: EdgeCore`, every section at
    /// its default.
    fn default() -> Self {
        Self {
            api_version: API_VERSION.to_owned(),
            kind: KIND.to_owned(),
            database: Database::default(),
            modules: EdgeModules::default(),
            monitor_server: MonitorServer::default(),
        }
    }
}

impl EdgeCoreConfig {
    /// A node named `node` with its database, certificates and edged root under `dir`, the
    /// `sim` pod runtime, no metrics endpoint, reaching CloudHub at `websocket` (HOST:PORT)
    /// and the certificate server at `cert_server` (an `https://` URL) with join `token`.
    /// What the fleet simulator's and edgemark's virtual nodes run.
    pub fn virtual_node(
        dir: &std::path::Path,
        node: &str,
        websocket: String,
        cert_server: String,
        token: &str,
    ) -> Self {
        let p = |rel: &str| dir.join(rel).display().to_string();
        let mut cfg = Self::default();
        cfg.database.data_source = p("edgecore.db");
        cfg.monitor_server.enable = false;
        let hub = &mut cfg.modules.edge_hub;
        hub.tls_ca_file = p("ca/rootCA.crt");
        hub.tls_cert_file = p("certs/server.crt");
        hub.tls_private_key_file = p("certs/server.key");
        hub.websocket.server = websocket;
        hub.http_server = cert_server;
        token.clone_into(&mut hub.token);
        let edged = &mut cfg.modules.edged;
        node.clone_into(&mut edged.tailored_kubelet_flag.hostname_override);
        edged.tailored_kubelet_flag.root_directory = p("edged");
        edged.runtime = EdgedRuntime::Sim;
        // No MQTT broker in a simulated or load-test fleet (its client would open real
        // sockets outside the transport seam); devices there use an in-memory bus.
        cfg.modules.event_bus.enable = false;
        cfg.modules.device_twin.enable = false;
        cfg
    }

    /// Parses `edgecore.yaml` text. Omitted keys take their defaults; an empty document is the
    /// default configuration. Does not [`validate`](Self::validate).
    pub fn from_yaml(text: &str) -> Result<Self, ConfigError> {
        ke_core::config::from_yaml("edgecore", text)
    }

    /// The full configuration as YAML (what `edgecore --defaultconfig` prints).
    pub fn to_yaml(&self) -> String {
        serde_yaml::to_string(self)
            .expect("invariant: config is plain structs, strings, maps and numbers; serializable")
    }

    /// The node name (`modules.edged.tailoredKubeletFlag.hostnameOverride`).
    pub fn node_name(&self) -> &str {
        &self.modules.edged.tailored_kubelet_flag.hostname_override
    }

    /// Checks ranges and consistency: `apiVersion`/`kind`, the database driver, non-zero
    /// intervals and rates, a node name, parseable durations and MQTT settings.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.api_version != API_VERSION {
            return Err(invalid(
                "apiVersion",
                format!("expected `{API_VERSION}`, found `{}`", self.api_version),
            ));
        }
        if self.kind != KIND {
            return Err(invalid(
                "kind",
                format!("expected `{KIND}`, found `{}`", self.kind),
            ));
        }
        self.database.validate()?;
        self.modules.edge_hub.validate()?;
        self.modules.edged.validate()?;
        self.modules.event_bus.validate()?;
        let es = &self.modules.edge_stream;
        if es.enable && es.server.parse::<std::net::SocketAddr>().is_err() {
            return Err(invalid(
                "modules.edgeStream.server",
                format!("`{}` is not IP:PORT", es.server),
            ));
        }
        self.monitor_server.validate()
    }
}

/// `monitorServer` (edgefleet extension): the Prometheus `/metrics` endpoint of edgecore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "camelCase")]
pub struct MonitorServer {
    /// `enable`: whether the endpoint is served.
    pub enable: bool,
    /// `bindAddress`: `IP:PORT` of the endpoint.
    pub bind_address: String,
}

impl Default for MonitorServer {
    /// `enable: true`, `bindAddress: 127.0.0.1:10350`.
    fn default() -> Self {
        Self {
            enable: true,
            bind_address: "127.0.0.1:10350".to_owned(),
        }
    }
}

impl MonitorServer {
    /// `bindAddress` parsed, or `None` if it is not `IP:PORT`.
    pub fn bind_addr(&self) -> Option<std::net::SocketAddr> {
        self.bind_address.parse().ok()
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.enable && self.bind_addr().is_none() {
            return Err(invalid(
                "monitorServer.bindAddress",
                format!("`{}` is not IP:PORT", self.bind_address),
            ));
        }
        Ok(())
    }
}

/// `database`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "camelCase")]
pub struct Database {
    /// `driverName`: only `sqlite3`.
    pub driver_name: String,
    /// `aliasName`: the database alias (informational).
    pub alias_name: String,
    /// `dataSource`: path of the SQLite file.
    pub data_source: String,
}

impl Default for Database {
    /// `driverName: sqlite3`, `aliasName: default`,
    /// `dataSource: /var/lib/kubeedge/edgecore.db`.
    fn default() -> Self {
        Self {
            driver_name: "sqlite3".to_owned(),
            alias_name: "default".to_owned(),
            data_source: "/var/lib/kubeedge/edgecore.db".to_owned(),
        }
    }
}

impl Database {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.driver_name != "sqlite3" {
            return Err(invalid(
                "database.driverName",
                format!("only `sqlite3` is supported, found `{}`", self.driver_name),
            ));
        }
        non_empty("database.dataSource", &self.data_source)
    }
}

/// `modules`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "camelCase")]
pub struct EdgeModules {
    /// `edgeHub`: the websocket client to CloudHub.
    pub edge_hub: EdgeHub,
    /// `edged`: the pod runtime.
    pub edged: Edged,
    /// `metaManager`: the SQLite store.
    pub meta_manager: Enable,
    /// `eventBus`: the MQTT bridge.
    pub event_bus: EventBus,
    /// `deviceTwin`: device twin state.
    pub device_twin: Enable,
    /// `edgeStream`: the tunnel to CloudStream for `kubectl logs`/`exec`.
    pub edge_stream: EdgeStream,
}

/// `modules.edgeStream` (KubeEdge's keys). The tunnel uses EdgeHub's CA and node certificate;
/// the `tlsTunnel*` keys are accepted for compatibility and not read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "camelCase")]
pub struct EdgeStream {
    /// `enable`: whether the tunnel is dialled.
    pub enable: bool,
    /// `server`: CloudStream's tunnel, `IP:PORT` (`keadm join` writes `<cloud>:10004`).
    pub server: String,
    /// `handshakeTimeout`: seconds for TCP + TLS + upgrade.
    pub handshake_timeout: u64,
    /// `readDeadline`: seconds without any frame (pings included) before redialling.
    pub read_deadline: u64,
    /// `writeDeadline`: seconds one frame write may take.
    pub write_deadline: u64,
    /// `tlsTunnelCAFile` (not read).
    #[serde(rename = "tlsTunnelCAFile")]
    pub tls_tunnel_ca_file: String,
    /// `tlsTunnelCertFile` (not read).
    pub tls_tunnel_cert_file: String,
    /// `tlsTunnelPrivateKeyFile` (not read).
    pub tls_tunnel_private_key_file: String,
}

impl Default for EdgeStream {
    /// `enable: false`, `server: 127.0.0.1:10004`, handshake 30 s, read 60 s, write 15 s.
    fn default() -> Self {
        Self {
            enable: false,
            server: "127.0.0.1:10004".to_owned(),
            handshake_timeout: 30,
            read_deadline: 60,
            write_deadline: 15,
            tls_tunnel_ca_file: String::new(),
            tls_tunnel_cert_file: String::new(),
            tls_tunnel_private_key_file: String::new(),
        }
    }
}

/// A module with only an `enable` switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "camelCase")]
pub struct Enable {
    /// `enable`: whether the module runs.
    pub enable: bool,
}

impl Default for Enable {
    /// `enable: true`.
    fn default() -> Self {
        Self { enable: true }
    }
}

/// `modules.edgeHub`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "camelCase")]
pub struct EdgeHub {
    /// `enable`: whether the hub client runs.
    pub enable: bool,
    /// `heartbeat`: seconds between keepalive messages.
    pub heartbeat: u64,
    /// `messageQPS`: upstream messages per second.
    #[serde(rename = "messageQPS")]
    pub message_qps: u32,
    /// `messageBurst`: upstream burst.
    pub message_burst: u32,
    /// `projectID`: the `project_id` header on the websocket handshake.
    #[serde(rename = "projectID")]
    pub project_id: String,
    /// `tlsCaFile`: CA certificate (PEM), fetched at bootstrap.
    pub tls_ca_file: String,
    /// `tlsCertFile`: the edge client certificate (PEM).
    pub tls_cert_file: String,
    /// `tlsPrivateKeyFile`: the edge client key (PEM).
    pub tls_private_key_file: String,
    /// `websocket`: the connection to CloudHub.
    pub websocket: EdgeHubWebsocket,
    /// `httpServer`: the certificate server URL (`https://IP:10002`).
    pub http_server: String,
    /// `token`: the join token; erased once certificates exist.
    pub token: String,
    /// `rotateCertificates`: renew the client certificate before it expires.
    pub rotate_certificates: bool,
}

impl Default for EdgeHub {
    /// `enable: true`, `heartbeat: 15`, `messageQPS: 30`, `messageBurst: 60`,
    /// `projectID: e632aba927ea4ac2b575ec1603d56f10`,
    /// `tlsCaFile: /etc/kubeedge/ca/rootCA.crt`, `tlsCertFile: /etc/kubeedge/certs/server.crt`,
    /// `tlsPrivateKeyFile: /etc/kubeedge/certs/server.key`, `websocket` at its default,
    /// `httpServer: https://127.0.0.1:10002`, `token: ""`, `rotateCertificates: true`.
    fn default() -> Self {
        Self {
            enable: true,
            heartbeat: 15,
            message_qps: 30,
            message_burst: 60,
            project_id: "e632aba927ea4ac2b575ec1603d56f10".to_owned(),
            tls_ca_file: "/etc/kubeedge/ca/rootCA.crt".to_owned(),
            tls_cert_file: "/etc/kubeedge/certs/server.crt".to_owned(),
            tls_private_key_file: "/etc/kubeedge/certs/server.key".to_owned(),
            websocket: EdgeHubWebsocket::default(),
            http_server: "https://127.0.0.1:10002".to_owned(),
            token: String::new(),
            rotate_certificates: true,
        }
    }
}

impl EdgeHub {
    /// `heartbeat` as a duration.
    pub fn heartbeat_interval(&self) -> Duration {
        Duration::from_secs(self.heartbeat)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        positive("modules.edgeHub.heartbeat", self.heartbeat)?;
        positive("modules.edgeHub.messageQPS", u64::from(self.message_qps))?;
        positive(
            "modules.edgeHub.messageBurst",
            u64::from(self.message_burst),
        )?;
        if !self.enable {
            return Ok(());
        }
        non_empty("modules.edgeHub.projectID", &self.project_id)?;
        if !self.http_server.starts_with("https://") {
            return Err(invalid(
                "modules.edgeHub.httpServer",
                format!("`{}` is not an https:// URL", self.http_server),
            ));
        }
        self.websocket.validate()
    }
}

/// `modules.edgeHub.websocket`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "camelCase")]
pub struct EdgeHubWebsocket {
    /// `enable`: connect over websocket (the only transport implemented).
    pub enable: bool,
    /// `server`: CloudHub's `HOST:PORT`.
    pub server: String,
    /// `handshakeTimeout`: seconds allowed for TLS and websocket handshakes.
    pub handshake_timeout: u64,
    /// `readDeadline`: seconds allowed for one frame read.
    pub read_deadline: u64,
    /// `writeDeadline`: seconds allowed for one frame write.
    pub write_deadline: u64,
}

impl Default for EdgeHubWebsocket {
    /// `enable: true`, `server: 127.0.0.1:10000`, `handshakeTimeout: 30`, `readDeadline: 15`,
    /// `writeDeadline: 15`.
    fn default() -> Self {
        Self {
            enable: true,
            server: "127.0.0.1:10000".to_owned(),
            handshake_timeout: 30,
            read_deadline: 15,
            write_deadline: 15,
        }
    }
}

impl EdgeHubWebsocket {
    fn validate(&self) -> Result<(), ConfigError> {
        if !self.enable {
            return Err(invalid(
                "modules.edgeHub.websocket.enable",
                "websocket is the only transport; it must be enabled",
            ));
        }
        let port_ok = self.server.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
        });
        if !port_ok {
            return Err(invalid(
                "modules.edgeHub.websocket.server",
                format!("`{}` is not HOST:PORT", self.server),
            ));
        }
        positive(
            "modules.edgeHub.websocket.handshakeTimeout",
            self.handshake_timeout,
        )?;
        positive("modules.edgeHub.websocket.readDeadline", self.read_deadline)?;
        positive(
            "modules.edgeHub.websocket.writeDeadline",
            self.write_deadline,
        )
    }
}

/// `modules.edged.runtime` (edgefleet extension): which pod runtime edged uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EdgedRuntime {
    /// Runs each container's command and args as a child process.
    #[default]
    Process,
    /// Simulated pods (the simulator's runtime).
    Sim,
    /// A CRI runtime (containerd) at `tailoredKubeletConfig.containerRuntimeEndpoint`.
    Remote,
}

/// `modules.edged`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "camelCase")]
pub struct Edged {
    /// `enable`: whether edged runs.
    pub enable: bool,
    /// `registerNodeNamespace`: namespace of the node registration.
    pub register_node_namespace: String,
    /// `tailoredKubeletFlag`: kubelet flags KubeEdge keeps.
    pub tailored_kubelet_flag: TailoredKubeletFlag,
    /// `tailoredKubeletConfig`: kubelet configuration KubeEdge keeps.
    pub tailored_kubelet_config: TailoredKubeletConfig,
    /// `runtime` (edgefleet extension): the pod runtime.
    pub runtime: EdgedRuntime,
}

impl Default for Edged {
    /// `enable: true`, `registerNodeNamespace: default`, the kubelet sections at their
    /// defaults, `runtime: process`.
    fn default() -> Self {
        Self {
            enable: true,
            register_node_namespace: "default".to_owned(),
            tailored_kubelet_flag: TailoredKubeletFlag::default(),
            tailored_kubelet_config: TailoredKubeletConfig::default(),
            runtime: EdgedRuntime::Process,
        }
    }
}

impl Edged {
    fn validate(&self) -> Result<(), ConfigError> {
        non_empty(
            "modules.edged.tailoredKubeletFlag.hostnameOverride",
            &self.tailored_kubelet_flag.hostname_override,
        )?;
        non_empty(
            "modules.edged.registerNodeNamespace",
            &self.register_node_namespace,
        )?;
        non_empty(
            "modules.edged.tailoredKubeletFlag.rootDirectory",
            &self.tailored_kubelet_flag.root_directory,
        )?;
        let config = &self.tailored_kubelet_config;
        match config.node_status_update_period() {
            Some(d) if !d.is_zero() => {}
            _ => {
                return Err(invalid(
                    "modules.edged.tailoredKubeletConfig.nodeStatusUpdateFrequency",
                    format!(
                        "`{}` is not a positive duration such as `10s`",
                        config.node_status_update_frequency
                    ),
                ));
            }
        }
        if self.runtime == EdgedRuntime::Remote {
            let ep = &config.container_runtime_endpoint;
            let path = ep.strip_prefix("unix://").unwrap_or(ep);
            if !path.starts_with('/') || (ep.contains("://") && !ep.starts_with("unix://")) {
                return Err(invalid(
                    "modules.edged.tailoredKubeletConfig.containerRuntimeEndpoint",
                    format!("`{ep}` is not unix:///ABSOLUTE/PATH (only unix sockets)"),
                ));
            }
        }
        positive(
            "modules.edged.tailoredKubeletConfig.nodeLeaseDurationSeconds",
            u64::from(config.node_lease_duration_seconds),
        )
    }
}

/// `modules.edged.tailoredKubeletFlag`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "camelCase")]
pub struct TailoredKubeletFlag {
    /// `hostnameOverride`: the node name (= the websocket `node_id`).
    pub hostname_override: String,
    /// `nodeIP`: the node's reported InternalIP (empty: detected).
    #[serde(rename = "nodeIP")]
    pub node_ip: String,
    /// `rootDirectory`: where pod volumes are materialised.
    pub root_directory: String,
    /// `nodeLabels`: extra labels on the registered node.
    pub node_labels: BTreeMap<String, String>,
}

impl Default for TailoredKubeletFlag {
    /// `hostnameOverride: ""` (must be set), `nodeIP: ""`, `rootDirectory: /var/lib/kubelet`,
    /// `nodeLabels: {}`.
    fn default() -> Self {
        Self {
            hostname_override: String::new(),
            node_ip: String::new(),
            root_directory: "/var/lib/kubelet".to_owned(),
            node_labels: BTreeMap::new(),
        }
    }
}

/// `modules.edged.tailoredKubeletConfig`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "camelCase")]
pub struct TailoredKubeletConfig {
    /// `nodeStatusUpdateFrequency`: Go duration between node status reports.
    pub node_status_update_frequency: String,
    /// `nodeLeaseDurationSeconds`: the node lease duration.
    pub node_lease_duration_seconds: u32,
    /// `containerRuntimeEndpoint`: the CRI socket, used with `runtime: remote`.
    pub container_runtime_endpoint: String,
}

impl Default for TailoredKubeletConfig {
    /// `nodeStatusUpdateFrequency: 10s`, `nodeLeaseDurationSeconds: 40`,
    /// `containerRuntimeEndpoint: unix:///run/containerd/containerd.sock`.
    fn default() -> Self {
        Self {
            node_status_update_frequency: "10s".to_owned(),
            node_lease_duration_seconds: 40,
            container_runtime_endpoint: "unix:///run/containerd/containerd.sock".to_owned(),
        }
    }
}

impl TailoredKubeletConfig {
    /// `nodeStatusUpdateFrequency` parsed, or `None` if it is not a Go duration.
    pub fn node_status_update_period(&self) -> Option<Duration> {
        parse_go_duration(&self.node_status_update_frequency)
    }
}

/// `modules.eventBus`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "camelCase")]
pub struct EventBus {
    /// `enable`: whether the MQTT bridge runs.
    pub enable: bool,
    /// `mqttServerExternal`: URL of the external broker.
    pub mqtt_server_external: String,
    /// `mqttServerInternal`: URL of the internal broker.
    pub mqtt_server_internal: String,
    /// `mqttQOS`: QoS of published messages (0, 1 or 2).
    #[serde(rename = "mqttQOS")]
    pub mqtt_qos: u8,
    /// `mqttMode`: 0 internal broker, 1 both, 2 external broker.
    pub mqtt_mode: u8,
    /// `mqttSessionQueueSize`: messages the internal broker queues for one client; further
    /// ones are dropped for that client (1 to [`MQTT_SESSION_QUEUE_MAX`]).
    pub mqtt_session_queue_size: u32,
}

/// Largest `mqttSessionQueueSize` accepted.
pub const MQTT_SESSION_QUEUE_MAX: u32 = 100_000;

impl Default for EventBus {
    /// `enable: true`, `mqttServerExternal: tcp://127.0.0.1:1883`,
    /// `mqttServerInternal: tcp://127.0.0.1:1884`, `mqttQOS: 0`, `mqttMode: 2`,
    /// `mqttSessionQueueSize: 100` (KubeEdge's defaults).
    fn default() -> Self {
        Self {
            enable: true,
            mqtt_server_external: "tcp://127.0.0.1:1883".to_owned(),
            mqtt_server_internal: "tcp://127.0.0.1:1884".to_owned(),
            mqtt_qos: 0,
            mqtt_mode: 2,
            mqtt_session_queue_size: 100,
        }
    }
}

impl EventBus {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.mqtt_qos > 2 {
            return Err(invalid(
                "modules.eventBus.mqttQOS",
                format!("{} is not 0, 1 or 2", self.mqtt_qos),
            ));
        }
        if self.mqtt_mode > 2 {
            return Err(invalid(
                "modules.eventBus.mqttMode",
                format!("{} is not 0, 1 or 2", self.mqtt_mode),
            ));
        }
        if !(1..=MQTT_SESSION_QUEUE_MAX).contains(&self.mqtt_session_queue_size) {
            return Err(invalid(
                "modules.eventBus.mqttSessionQueueSize",
                format!(
                    "{} is not between 1 and {MQTT_SESSION_QUEUE_MAX}",
                    self.mqtt_session_queue_size
                ),
            ));
        }
        if self.enable && self.mqtt_mode < 2 {
            non_empty(
                "modules.eventBus.mqttServerInternal",
                &self.mqtt_server_internal,
            )?;
        }
        if self.enable && self.mqtt_mode > 0 {
            non_empty(
                "modules.eventBus.mqttServerExternal",
                &self.mqtt_server_external,
            )?;
        }
        Ok(())
    }
}
