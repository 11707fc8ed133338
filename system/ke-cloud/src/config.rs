//! `cloudcore.yaml`: KubeEdge's `cloudcore.config.kubeedge.io/v1alpha1`, kind `CloudCore`
//! (reference kubeedge-wire.md §8.2), restricted to what edgefleet implements.
//!
//! Key names are KubeEdge's (camelCase as in the real YAML), so a `cloudcore.yaml` written for
//! KubeEdge that uses only these keys loads unchanged. Every struct denies unknown keys: a typo
//! or an unsupported KubeEdge option is an error naming the key, its path and its line.
//! Every omitted key takes KubeEdge's default, documented on each `Default` impl.
//!
//! edgefleet deviations from KubeEdge's defaults:
//! - `modules.cloudHub.authorization.enable` is `true` (KubeEdge: `false`) and `debug` is
//!   `false` (KubeEdge: `true`): node authorization is on by default (issue #3).
//! - `modules.cloudHub.advertiseAddress` defaults to `[127.0.0.1]` (KubeEdge: the first host
//!   IP), so the default configuration is valid on loopback.
//! - `kubeAPIConfig.kubeConfig` empty means "start the embedded API server in-process".

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The `apiVersion` of `cloudcore.yaml`.
pub const API_VERSION: &str = "cloudcore.config.kubeedge.io/v1alpha1";
/// The `kind` of `cloudcore.yaml`.
pub const KIND: &str = "CloudCore";

pub use ke_core::config::ConfigError;
use ke_core::config::{invalid, positive};

fn parse_ip(field: &'static str, value: &str) -> Result<(), ConfigError> {
    value
        .parse::<IpAddr>()
        .map(|_| ())
        .map_err(|_| invalid(field, format!("`{value}` is not an IP address")))
}

/// The whole `cloudcore.yaml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "camelCase")]
pub struct CloudCoreConfig {
    /// Must be [`API_VERSION`].
    pub api_version: String,
    /// Must be [`KIND`].
    pub kind: String,
    /// Settings shared by all modules.
    pub common_config: CommonConfig,
    /// How cloudcore reaches the Kubernetes API.
    #[serde(rename = "kubeAPIConfig")]
    pub kube_api_config: KubeApiConfig,
    /// Per-module settings.
    pub modules: CloudModules,
}

impl Default for CloudCoreConfig {
    /// `apiVersion: cloudcore.config.kubeedge.io/v1alpha1`, `kind: CloudCore`, every section at
    /// its default.
    fn default() -> Self {
        Self {
            api_version: API_VERSION.to_owned(),
            kind: KIND.to_owned(),
            common_config: CommonConfig::default(),
            kube_api_config: KubeApiConfig::default(),
            modules: CloudModules::default(),
        }
    }
}

/// The ports of a one-machine cloudcore ([`CloudCoreConfig::standalone`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StandalonePorts {
    /// CloudHub's websocket port (10000).
    pub websocket: u16,
    /// The certificate server's port (10002).
    pub cert: u16,
    /// The embedded API server's port, on 127.0.0.1 (6443).
    pub apiserver: u16,
    /// The metrics endpoint's port, on 127.0.0.1 (9091).
    pub metrics: u16,
    /// CloudStream's tunnel port (10004); the tunnel is enabled.
    pub tunnel: u16,
}

impl CloudCoreConfig {
    /// A cloudcore with everything under `dir`: the CA and serving certificates, and the
    /// embedded API server's data (its kubeconfig is `dir/apiserver/kubeconfig`). CloudHub and
    /// the certificate server listen on `advertise`; the API server and metrics on loopback.
    /// What `keadm init` writes, and what `fleet run --mode real` starts.
    pub fn standalone(dir: &std::path::Path, advertise: IpAddr, ports: StandalonePorts) -> Self {
        let p = |rel: &str| dir.join(rel).display().to_string();
        let mut cfg = Self::default();
        cfg.common_config.monitor_server.bind_address = format!("127.0.0.1:{}", ports.metrics);
        cfg.kube_api_config.embedded.data_dir = p("apiserver");
        cfg.kube_api_config.embedded.bind_address = format!("127.0.0.1:{}", ports.apiserver);
        let hub = &mut cfg.modules.cloud_hub;
        hub.advertise_address = vec![advertise.to_string()];
        hub.tls_ca_file = p("ca/rootCA.crt");
        hub.tls_ca_key_file = p("ca/rootCA.key");
        hub.tls_cert_file = p("certs/server.crt");
        hub.tls_private_key_file = p("certs/server.key");
        hub.websocket.address = advertise.to_string();
        hub.websocket.port = ports.websocket;
        hub.https.address = advertise.to_string();
        hub.https.port = ports.cert;
        cfg.modules.cloud_stream.enable = true;
        cfg.modules.cloud_stream.tunnel_port = ports.tunnel;
        cfg
    }

    /// Parses `cloudcore.yaml` text. Omitted keys take their defaults; an empty document is the
    /// default configuration. Does not [`validate`](Self::validate).
    pub fn from_yaml(text: &str) -> Result<Self, ConfigError> {
        ke_core::config::from_yaml("cloudcore", text)
    }

    /// The full configuration as YAML (what `cloudcore --defaultconfig` prints).
    pub fn to_yaml(&self) -> String {
        serde_yaml::to_string(self)
            .expect("invariant: config is plain structs, strings and numbers; always serializable")
    }

    /// Checks ranges and consistency: `apiVersion`/`kind`, non-zero ports and intervals,
    /// parseable addresses, `advertiseAddress` non-empty when CloudHub is enabled.
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
        self.common_config.validate()?;
        self.kube_api_config.validate()?;
        self.modules.cloud_hub.validate()?;
        if self.modules.cloud_stream.enable {
            positive(
                "modules.cloudStream.tunnelPort",
                u64::from(self.modules.cloud_stream.tunnel_port),
            )?;
        }
        self.modules.edge_controller.validate()
    }
}

/// `commonConfig`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "camelCase")]
pub struct CommonConfig {
    /// `tunnelPort`: the edge stream tunnel port (accepted for compatibility; CloudStream is
    /// not implemented yet).
    pub tunnel_port: u16,
    /// `monitorServer`: the Prometheus `/metrics` endpoint.
    pub monitor_server: MonitorServer,
}

impl Default for CommonConfig {
    /// `tunnelPort: 10350`, `monitorServer` at its default.
    fn default() -> Self {
        Self {
            tunnel_port: 10350,
            monitor_server: MonitorServer::default(),
        }
    }
}

impl CommonConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        positive("commonConfig.tunnelPort", u64::from(self.tunnel_port))?;
        self.monitor_server
            .bind_address
            .parse::<SocketAddr>()
            .map(|_| ())
            .map_err(|_| {
                invalid(
                    "commonConfig.monitorServer.bindAddress",
                    format!("`{}` is not IP:PORT", self.monitor_server.bind_address),
                )
            })
    }
}

/// `commonConfig.monitorServer`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "camelCase")]
pub struct MonitorServer {
    /// `bindAddress`: IP:PORT of the metrics endpoint.
    pub bind_address: String,
}

impl Default for MonitorServer {
    /// `bindAddress: 127.0.0.1:9091`.
    fn default() -> Self {
        Self {
            bind_address: "127.0.0.1:9091".to_owned(),
        }
    }
}

/// `kubeAPIConfig`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "camelCase")]
pub struct KubeApiConfig {
    /// `master`: API server URL, overriding the kubeconfig's server (empty: from kubeconfig).
    pub master: String,
    /// `kubeConfig`: path of a kubeconfig. Empty (edgefleet): start the embedded API server
    /// in-process and write its kubeconfig.
    pub kube_config: String,
    /// `contentType` of API requests.
    pub content_type: String,
    /// `qps`: client-side request rate limit.
    pub qps: f32,
    /// `burst`: client-side request burst.
    pub burst: u32,
    /// `embedded` (edgefleet extension): the in-process API server used when `kubeConfig` is
    /// empty.
    pub embedded: EmbeddedApiServer,
}

/// `kubeAPIConfig.embedded` (edgefleet extension).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "camelCase")]
pub struct EmbeddedApiServer {
    /// `dataDir`: database, serving certificate, admin token and `kubeconfig` for kubectl.
    pub data_dir: String,
    /// `bindAddress`: IP:PORT the API server listens on (HTTPS).
    pub bind_address: String,
}

impl Default for EmbeddedApiServer {
    /// `dataDir: /var/lib/edgefleet/apiserver`, `bindAddress: 127.0.0.1:6443`.
    fn default() -> Self {
        Self {
            data_dir: "/var/lib/edgefleet/apiserver".to_owned(),
            bind_address: "127.0.0.1:6443".to_owned(),
        }
    }
}

impl Default for KubeApiConfig {
    /// `master: ""`, `kubeConfig: ""`, `contentType: application/vnd.kubernetes.protobuf`,
    /// `qps: 2500`, `burst: 5000`.
    fn default() -> Self {
        Self {
            master: String::new(),
            kube_config: String::new(),
            content_type: "application/vnd.kubernetes.protobuf".to_owned(),
            qps: 2500.0,
            burst: 5000,
            embedded: EmbeddedApiServer::default(),
        }
    }
}

impl KubeApiConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if !(self.qps.is_finite() && self.qps > 0.0) {
            return Err(invalid(
                "kubeAPIConfig.qps",
                "must be a number greater than 0",
            ));
        }
        positive("kubeAPIConfig.burst", u64::from(self.burst))?;
        if self.kube_config.is_empty() {
            let bind = &self.embedded.bind_address;
            bind.parse::<SocketAddr>().map_err(|_| {
                invalid(
                    "kubeAPIConfig.embedded.bindAddress",
                    format!("`{bind}` is not IP:PORT"),
                )
            })?;
            if self.embedded.data_dir.is_empty() {
                return Err(invalid(
                    "kubeAPIConfig.embedded.dataDir",
                    "must be set when kubeConfig is empty",
                ));
            }
        }
        match self.content_type.as_str() {
            "application/json" | "application/vnd.kubernetes.protobuf" => Ok(()),
            other => Err(invalid(
                "kubeAPIConfig.contentType",
                format!(
                    "`{other}` is neither application/json nor application/vnd.kubernetes.protobuf"
                ),
            )),
        }
    }
}

/// `modules`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "camelCase")]
pub struct CloudModules {
    /// `cloudHub`: the websocket hub and the certificate server.
    pub cloud_hub: CloudHub,
    /// `edgeController`: pods, configmaps, secrets and nodes down; statuses up.
    pub edge_controller: EdgeController,
    /// `syncController`: reliable incremental sync.
    pub sync_controller: Enable,
    /// `deviceController`: device CRDs to device twins.
    pub device_controller: Enable,
    /// `cloudStream`: the tunnel for `kubectl logs`/`exec` of edge pods.
    pub cloud_stream: CloudStream,
}

/// `modules.cloudStream` (KubeEdge's keys). The tunnel serves with CloudHub's CA and serving
/// certificate; the `tls*File` keys are accepted for compatibility and not read. `streamPort`
/// (the kubelet-style port an external kube-apiserver would dial) is not served: with the
/// embedded API server, streams go in-process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "camelCase")]
pub struct CloudStream {
    /// `enable`: whether the tunnel runs.
    pub enable: bool,
    /// `streamPort` (10003; not served).
    pub stream_port: u16,
    /// `tunnelPort`: where edges dial the tunnel (10004).
    pub tunnel_port: u16,
    /// `tlsTunnelCAFile` (not read).
    #[serde(rename = "tlsTunnelCAFile")]
    pub tls_tunnel_ca_file: String,
    /// `tlsTunnelCertFile` (not read).
    pub tls_tunnel_cert_file: String,
    /// `tlsTunnelPrivateKeyFile` (not read).
    pub tls_tunnel_private_key_file: String,
    /// `tlsStreamCAFile` (not read).
    #[serde(rename = "tlsStreamCAFile")]
    pub tls_stream_ca_file: String,
    /// `tlsStreamCertFile` (not read).
    pub tls_stream_cert_file: String,
    /// `tlsStreamPrivateKeyFile` (not read).
    pub tls_stream_private_key_file: String,
}

impl Default for CloudStream {
    /// `enable: false` (KubeEdge's default; `keadm init` turns it on), ports 10003/10004.
    fn default() -> Self {
        Self {
            enable: false,
            stream_port: 10003,
            tunnel_port: 10004,
            tls_tunnel_ca_file: String::new(),
            tls_tunnel_cert_file: String::new(),
            tls_tunnel_private_key_file: String::new(),
            tls_stream_ca_file: String::new(),
            tls_stream_cert_file: String::new(),
            tls_stream_private_key_file: String::new(),
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

/// `modules.cloudHub`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "camelCase")]
pub struct CloudHub {
    /// `enable`: whether the hub and the certificate server run.
    pub enable: bool,
    /// `keepaliveInterval`: seconds without a message from a node before its session closes.
    pub keepalive_interval: u64,
    /// `nodeLimit`: the most edge nodes connected at once; more are refused.
    pub node_limit: u32,
    /// `tlsCAFile`: CA certificate (PEM).
    #[serde(rename = "tlsCAFile")]
    pub tls_ca_file: String,
    /// `tlsCAKeyFile`: CA private key (PEM).
    #[serde(rename = "tlsCAKeyFile")]
    pub tls_ca_key_file: String,
    /// `tlsCertFile`: the hub's server certificate (PEM).
    pub tls_cert_file: String,
    /// `tlsPrivateKeyFile`: the hub's server private key (PEM).
    pub tls_private_key_file: String,
    /// `writeTimeout`: seconds allowed for one frame write to a node.
    pub write_timeout: u64,
    /// `advertiseAddress`: IPs edges use to reach cloudcore; SANs of the server certificate.
    pub advertise_address: Vec<String>,
    /// `dnsNames`: extra DNS SANs of the server certificate.
    pub dns_names: Vec<String>,
    /// `edgeCertSigningDuration`: validity of signed edge certificates, in days.
    pub edge_cert_signing_duration: u64,
    /// `tokenRefreshDuration`: hours between join-token regenerations.
    pub token_refresh_duration: u64,
    /// `websocket`: the hub listener.
    pub websocket: Listener,
    /// `https`: the certificate server listener.
    pub https: Listener,
    /// `authorization`: node authorization.
    pub authorization: Authorization,
}

impl Default for CloudHub {
    /// `enable: true`, `keepaliveInterval: 30`, `nodeLimit: 500`,
    /// `tlsCAFile: /etc/kubeedge/ca/rootCA.crt`, `tlsCAKeyFile: /etc/kubeedge/ca/rootCA.key`,
    /// `tlsCertFile: /etc/kubeedge/certs/server.crt`,
    /// `tlsPrivateKeyFile: /etc/kubeedge/certs/server.key`, `writeTimeout: 30`,
    /// `advertiseAddress: [127.0.0.1]` (edgefleet), `dnsNames: []`,
    /// `edgeCertSigningDuration: 365`, `tokenRefreshDuration: 12`,
    /// `websocket: {enable: true, address: 0.0.0.0, port: 10000}`,
    /// `https: {enable: true, address: 0.0.0.0, port: 10002}`, `authorization` at its default.
    fn default() -> Self {
        Self {
            enable: true,
            keepalive_interval: 30,
            node_limit: 500,
            tls_ca_file: "/etc/kubeedge/ca/rootCA.crt".to_owned(),
            tls_ca_key_file: "/etc/kubeedge/ca/rootCA.key".to_owned(),
            tls_cert_file: "/etc/kubeedge/certs/server.crt".to_owned(),
            tls_private_key_file: "/etc/kubeedge/certs/server.key".to_owned(),
            write_timeout: 30,
            advertise_address: vec!["127.0.0.1".to_owned()],
            dns_names: Vec::new(),
            edge_cert_signing_duration: 365,
            token_refresh_duration: 12,
            websocket: Listener::with_port(10000),
            https: Listener::with_port(10002),
            authorization: Authorization::default(),
        }
    }
}

impl CloudHub {
    /// `keepaliveInterval` as a duration.
    pub fn keepalive(&self) -> Duration {
        Duration::from_secs(self.keepalive_interval)
    }

    /// `writeTimeout` as a duration.
    pub fn write_timeout(&self) -> Duration {
        Duration::from_secs(self.write_timeout)
    }

    /// `edgeCertSigningDuration` as a duration.
    pub fn edge_cert_validity(&self) -> Duration {
        Duration::from_secs(self.edge_cert_signing_duration.saturating_mul(24 * 3600))
    }

    /// `tokenRefreshDuration` as a duration.
    pub fn token_refresh(&self) -> Duration {
        Duration::from_secs(self.token_refresh_duration.saturating_mul(3600))
    }

    fn validate(&self) -> Result<(), ConfigError> {
        const P: &str = "modules.cloudHub";
        positive(
            "modules.cloudHub.keepaliveInterval",
            self.keepalive_interval,
        )?;
        positive("modules.cloudHub.nodeLimit", u64::from(self.node_limit))?;
        positive("modules.cloudHub.writeTimeout", self.write_timeout)?;
        positive(
            "modules.cloudHub.edgeCertSigningDuration",
            self.edge_cert_signing_duration,
        )?;
        positive(
            "modules.cloudHub.tokenRefreshDuration",
            self.token_refresh_duration,
        )?;
        if self.enable && self.advertise_address.is_empty() {
            return Err(invalid(
                "modules.cloudHub.advertiseAddress",
                format!("must list at least one IP when {P} is enabled"),
            ));
        }
        for address in &self.advertise_address {
            parse_ip("modules.cloudHub.advertiseAddress", address)?;
        }
        if let Some(name) = self.dns_names.iter().find(|n| n.is_empty()) {
            return Err(invalid(
                "modules.cloudHub.dnsNames",
                format!("empty name `{name}`"),
            ));
        }
        self.websocket.validate(
            "modules.cloudHub.websocket.address",
            "modules.cloudHub.websocket.port",
        )?;
        self.https.validate(
            "modules.cloudHub.https.address",
            "modules.cloudHub.https.port",
        )?;
        if self.enable
            && self.websocket.enable
            && self.https.enable
            && self.websocket.port == self.https.port
        {
            return Err(invalid(
                "modules.cloudHub.https.port",
                format!("{} is also the websocket port", self.https.port),
            ));
        }
        Ok(())
    }
}

/// `modules.cloudHub.websocket` and `modules.cloudHub.https`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "camelCase")]
pub struct Listener {
    /// `enable`: whether the listener runs.
    pub enable: bool,
    /// `address`: IP to bind.
    pub address: String,
    /// `port`: TCP port to bind.
    pub port: u16,
}

impl Default for Listener {
    /// `enable: true`, `address: 0.0.0.0`, `port: 10000` (the websocket hub's).
    fn default() -> Self {
        Self::with_port(10000)
    }
}

impl Listener {
    fn with_port(port: u16) -> Self {
        Self {
            enable: true,
            address: "0.0.0.0".to_owned(),
            port,
        }
    }

    /// The address to bind, or `None` if `address` is not an IP (rejected by `validate`).
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        let ip = self.address.parse::<IpAddr>().ok()?;
        Some(SocketAddr::new(ip, self.port))
    }

    fn validate(&self, address: &'static str, port: &'static str) -> Result<(), ConfigError> {
        parse_ip(address, &self.address)?;
        positive(port, u64::from(self.port))
    }
}

/// `modules.cloudHub.authorization`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "camelCase")]
pub struct Authorization {
    /// `enable`: check that a connection's `node_id` matches its certificate and that each
    /// message touches only the node's own objects.
    pub enable: bool,
    /// `debug`: log refusals instead of enforcing them.
    pub debug: bool,
}

impl Default for Authorization {
    /// `enable: true`, `debug: false` (edgefleet; KubeEdge: `false` and `true`).
    fn default() -> Self {
        Self {
            enable: true,
            debug: false,
        }
    }
}

/// `modules.edgeController`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "camelCase")]
pub struct EdgeController {
    /// `enable`: whether the controller runs.
    pub enable: bool,
    /// `nodeUpdateFrequency`: seconds between node status updates expected from edges.
    pub node_update_frequency: u64,
    /// `nodeMonitorGracePeriod` (edgefleet extension): seconds a node may be without a
    /// CloudHub session before it is marked `Ready=Unknown` (kube-controller-manager's
    /// `--node-monitor-grace-period`; the embedded API server has no controller manager).
    pub node_monitor_grace_period: u64,
    /// `releaseDelaySeconds` (edgefleet extension): seconds a configmap, secret or device
    /// model no pod or device of a node references any more stays at the edge before it is
    /// released; 0 releases at once.
    pub release_delay_seconds: u64,
}

impl Default for EdgeController {
    /// `enable: true`, `nodeUpdateFrequency: 10`, `nodeMonitorGracePeriod: 40`,
    /// `releaseDelaySeconds: 10`.
    fn default() -> Self {
        Self {
            enable: true,
            node_update_frequency: 10,
            node_monitor_grace_period: 40,
            release_delay_seconds: 10,
        }
    }
}

impl EdgeController {
    fn validate(&self) -> Result<(), ConfigError> {
        positive(
            "modules.edgeController.nodeUpdateFrequency",
            self.node_update_frequency,
        )?;
        positive(
            "modules.edgeController.nodeMonitorGracePeriod",
            self.node_monitor_grace_period,
        )
    }
}
