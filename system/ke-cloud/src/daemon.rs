//! [`CloudCore`]: cloudcore assembled from its modules, as the binary and the simulator run
//! it. [`CloudCore::start`] prepares everything that can fail (configuration, API access, the
//! CA and serving certificate, every listener) so a caller learns of a bad setup before
//! anything runs; [`CloudCore::run`] then serves until shutdown.
//!
//! API access: with `kubeAPIConfig.kubeConfig` empty, the embedded API server starts
//! in-process (its kubeconfig for kubectl is written to `<embedded.dataDir>/kubeconfig`, and
//! its HTTPS listener serves kubectl and other clients) and cloudcore's own kube client calls
//! its router directly ([`ke_apiserver::Server::in_process_client`]: no socket, TLS or HTTP
//! framing, same authentication, authorization and metrics). With a kubeconfig, the caller
//! builds the `kube::Client` ([`CloudCore::start_with_client`]); the `cloudcore` binary does
//! so with kube's own configuration loading (every kubeconfig auth method works).

use std::{future::Future, net::SocketAddr, path::PathBuf, sync::Arc};

use ke_core::Clock;
use ke_net::{Listener, Transport};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::{
    certs::{CertAuthority, CertServer, cert_server_acceptor, serve_certs},
    cloudhub::{Hub, HubConfig, HubHandle, HubOutputs},
    cloudstream::{CloudStream, StreamHandle},
    config::CloudCoreConfig,
    edgecontroller::{EdgeController, EdgeControllerConfig, Metrics as EcMetrics},
};

/// What cloudcore takes from its caller (sockets, wall clock, randomness).
pub use ke_core::Deps;

/// Why cloudcore could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is invalid.
    #[error("invalid configuration")]
    Config(#[from] ke_core::config::ConfigError),
    /// The embedded API server failed to start.
    #[error("embedded API server")]
    ApiServer(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The kube client for the embedded API server could not be built.
    #[error("kube client")]
    Client(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The CA or the serving certificate.
    #[error("certificates")]
    Certs(#[from] crate::certs::Error),
    /// CloudHub failed to start.
    #[error("cloudhub")]
    Hub(#[from] crate::cloudhub::Error),
    /// Binding a listener failed.
    #[error("binding {what} on {addr}")]
    Bind {
        /// Which listener.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// CloudStream failed to start.
    #[error("cloudstream")]
    Stream(#[from] crate::cloudstream::Error),
    /// EdgeController stopped.
    #[error("edgecontroller")]
    Controller(#[from] crate::edgecontroller::Error),
}

/// A started cloudcore, ready to [`run`](Self::run).
pub struct CloudCore<T: Transport> {
    apiserver: Option<ke_apiserver::Server<T>>,
    kubeconfig: Option<PathBuf>,
    hub: Hub<T>,
    hub_out: HubOutputs,
    stream: Option<CloudStream<T>>,
    certs: Option<(T::Listener, TlsAcceptor, Arc<CertServer>)>,
    controller: EdgeController,
    metrics_listener: Option<T::Listener>,
    ca: Arc<CertAuthority>,
    clock: Arc<dyn Clock>,
}

impl<T: Transport> std::fmt::Debug for CloudCore<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudCore")
            .field("hub", &self.hub.local_addr())
            .field("kubeconfig", &self.kubeconfig)
            .finish_non_exhaustive()
    }
}

fn parse_addr(what: &'static str, s: &str) -> Result<SocketAddr, Error> {
    s.parse().map_err(|_| {
        Error::Config(ke_core::config::invalid(
            what,
            format!("`{s}` is not IP:PORT"),
        ))
    })
}

impl<T: Transport> CloudCore<T> {
    /// Starts the embedded API server (`kubeAPIConfig.kubeConfig` must be empty) and prepares
    /// the rest.
    pub async fn start(cfg: CloudCoreConfig, deps: Deps<T>) -> Result<Self, Error> {
        cfg.validate()?;
        let emb = &cfg.kube_api_config.embedded;
        let listen = parse_addr("kubeAPIConfig.embedded.bindAddress", &emb.bind_address)?;
        let mut scfg = ke_apiserver::ServerConfig::new(&emb.data_dir);
        scfg.listen = listen;
        scfg.extra_sans = cfg.modules.cloud_hub.advertise_address.clone();
        let adeps = ke_apiserver::Deps {
            transport: deps.transport.clone(),
            clock: deps.clock.clone(),
            entropy: deps.entropy.fork("apiserver"),
        };
        let server = ke_apiserver::Server::start(scfg, adeps)
            .await
            .map_err(|e| Error::ApiServer(Box::new(e)))?;
        let addr = server.local_addr();
        // In-process: requests go straight into the server's router (no loopback TLS+HTTP/2,
        // which cost about a quarter of cloudcore's CPU per status patch).
        let client = server
            .in_process_client()
            .map_err(|e| Error::Client(Box::new(e)))?;
        let kubeconfig = server.kubeconfig_path().to_owned();
        let mut core = Self::start_with_client(cfg, deps, client).await?;
        if let Some(h) = core.stream_handle() {
            server.set_pod_streams(Arc::new(h));
        }
        info!(kubeconfig = %kubeconfig.display(), api = %addr, "embedded API server ready");
        core.kubeconfig = Some(kubeconfig);
        core.apiserver = Some(server);
        Ok(core)
    }

    /// Prepares cloudcore around an existing kube client (an external API server).
    pub async fn start_with_client(
        cfg: CloudCoreConfig,
        deps: Deps<T>,
        client: kube::Client,
    ) -> Result<Self, Error> {
        cfg.validate()?;
        let hubc = &cfg.modules.cloud_hub;
        let ca = Arc::new(CertAuthority::load_or_create_files(
            std::path::Path::new(&hubc.tls_ca_file),
            std::path::Path::new(&hubc.tls_ca_key_file),
            &*deps.clock,
        )?);
        let mut sans = hubc.advertise_address.clone();
        sans.extend(hubc.dns_names.iter().cloned());
        let server_cert = ca.cloudcore_server_cert(&sans, &*deps.clock, 365)?;
        server_cert.save_files(
            std::path::Path::new(&hubc.tls_cert_file),
            std::path::Path::new(&hubc.tls_private_key_file),
        )?;
        let tls = ca.hub_server_config(&server_cert, deps.clock.clone())?;
        let stream = bind_stream(&cfg, &deps.transport, &tls).await?;
        let hub_addr = parse_addr(
            "modules.cloudHub.websocket",
            &format!("{}:{}", hubc.websocket.address, hubc.websocket.port),
        )?;
        let (hub, hub_out) =
            Hub::bind(deps.transport.clone(), hub_addr, tls, hub_config(&cfg)).await?;
        let certs = if hubc.https.enable {
            let addr = parse_addr(
                "modules.cloudHub.https",
                &format!("{}:{}", hubc.https.address, hubc.https.port),
            )?;
            let l = bind(&deps.transport, "certificate server", addr).await?;
            let acceptor = cert_server_acceptor(ca.cert_der(), &server_cert, deps.clock.clone())?;
            let mut state = CertServer::new(ca.clone(), deps.clock.clone());
            state.edge_cert_days =
                u32::try_from(hubc.edge_cert_signing_duration).unwrap_or(u32::MAX);
            Some((l, acceptor, Arc::new(state)))
        } else {
            None
        };
        let mon = &cfg.common_config.monitor_server.bind_address;
        let mon = parse_addr("commonConfig.monitorServer.bindAddress", mon)?;
        let metrics_listener = Some(bind(&deps.transport, "metrics server", mon).await?);
        let controller = EdgeController::new(
            client,
            hub.handle(),
            controller_config(&cfg),
            deps.clock.clone(),
            deps.entropy.fork("edgecontroller"),
        );
        Ok(Self {
            apiserver: None,
            kubeconfig: None,
            hub,
            hub_out,
            stream,
            certs,
            controller,
            metrics_listener,
            ca,
            clock: deps.clock,
        })
    }

    /// CloudHub's address.
    pub fn hub_addr(&self) -> SocketAddr {
        self.hub.local_addr()
    }

    /// CloudStream's tunnel address, if it runs.
    pub fn stream_addr(&self) -> Option<SocketAddr> {
        self.stream.as_ref().map(CloudStream::local_addr)
    }

    /// CloudStream's [`PodStreams`](ke_apiserver::streams::PodStreams), if it runs (set on the
    /// embedded API server by [`Self::start`]; an in-process external server can take it).
    pub fn stream_handle(&self) -> Option<StreamHandle> {
        self.stream.as_ref().map(CloudStream::handle)
    }

    /// The certificate server's address, if it runs.
    pub fn cert_addr(&self) -> Option<SocketAddr> {
        self.certs
            .as_ref()
            .and_then(|(l, _, _)| l.local_addr().ok())
    }

    /// The metrics endpoint's address.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    /// The embedded API server's address, if it runs.
    pub fn api_addr(&self) -> Option<SocketAddr> {
        self.apiserver
            .as_ref()
            .map(ke_apiserver::Server::local_addr)
    }

    /// The embedded API server's kubeconfig (for kubectl), if it runs.
    pub fn kubeconfig_path(&self) -> Option<&std::path::Path> {
        self.kubeconfig.as_deref()
    }

    /// A join token for edges (valid for `tokenRefreshDuration`).
    pub fn join_token(&self, refresh: std::time::Duration) -> String {
        self.ca.join_token(&*self.clock, refresh).to_string()
    }

    /// CloudHub's handle (downstream sends, metrics).
    pub fn hub_handle(&self) -> HubHandle {
        self.hub.handle()
    }

    /// EdgeController's counters.
    pub fn controller_metrics(&self) -> Arc<EcMetrics> {
        self.controller.metrics()
    }

    /// Every cloudcore metric (CloudHub, EdgeController, certificate server, and the embedded
    /// API server's when it runs one) as Prometheus text.
    pub fn metrics_renderer(&self) -> Arc<dyn Fn() -> String + Send + Sync> {
        let hub = self.hub.handle();
        let ec = self.controller.metrics();
        let certs = self.certs.as_ref().map(|(_, _, s)| s.clone());
        let api = self.apiserver.as_ref().map(ke_apiserver::Server::state);
        Arc::new(move || {
            let mut out = hub.metrics_text();
            out.push_str(&ec.to_prometheus());
            if let Some(c) = &certs {
                out.push_str(&c.metrics.prometheus());
            }
            if let Some(a) = &api {
                out.push_str(&a.metrics.render(&a.api));
            }
            out
        })
    }

    /// Serves until `shutdown` completes, then stops every module.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
        let stop = CancellationToken::new();
        let render = self.metrics_renderer();
        let s = || {
            let t = stop.clone();
            async move { t.cancelled().await }
        };
        let api = async {
            if let Some(server) = self.apiserver {
                server.serve(s()).await;
            }
        };
        let certs = async {
            if let Some((l, acceptor, state)) = self.certs {
                serve_certs(l, acceptor, state, s()).await;
            }
        };
        let metrics = async {
            if let Some(l) = self.metrics_listener
                && let Err(e) = ke_net::metrics::serve_metrics(l, render, s()).await
            {
                tracing::warn!(error = %e, "metrics server stopped");
            }
        };
        let stream = async {
            if let Some(st) = self.stream {
                // Boxed so the tunnel's futures do not grow cloudcore's future.
                Box::pin(st.run(s())).await;
            }
        };
        let hub = self.hub.run(s());
        let controller = self.controller.run(self.hub_out, s());
        let all = async {
            let (r, (), (), (), (), ()) =
                tokio::join!(controller, hub, api, certs, metrics, stream);
            r
        };
        tokio::pin!(all, shutdown);
        tokio::select! {
            () = &mut shutdown => {
                info!("cloudcore shutting down");
                stop.cancel();
                all.await?;
            }
            r = &mut all => r?,
        }
        Ok(())
    }
}

/// CloudStream's tunnel on CloudHub's address, with CloudHub's TLS (client certificates from
/// the KubeEdge CA), when `modules.cloudStream.enable`.
async fn bind_stream<T: Transport>(
    cfg: &CloudCoreConfig,
    transport: &T,
    tls: &Arc<rustls::ServerConfig>,
) -> Result<Option<CloudStream<T>>, Error> {
    let cs = &cfg.modules.cloud_stream;
    if !cs.enable {
        return Ok(None);
    }
    let hubc = &cfg.modules.cloud_hub;
    let addr = parse_addr(
        "modules.cloudStream.tunnelPort",
        &format!("{}:{}", hubc.websocket.address, cs.tunnel_port),
    )?;
    Ok(Some(CloudStream::bind(transport, addr, tls.clone()).await?))
}

async fn bind<T: Transport>(
    t: &T,
    what: &'static str,
    addr: SocketAddr,
) -> Result<T::Listener, Error> {
    t.bind(addr)
        .await
        .map_err(|source| Error::Bind { what, addr, source })
}

/// CloudHub settings from `modules.cloudHub`.
fn hub_config(cfg: &CloudCoreConfig) -> HubConfig {
    let h = &cfg.modules.cloud_hub;
    let node_limit = usize::try_from(h.node_limit).unwrap_or(usize::MAX);
    let defaults = HubConfig::default();
    HubConfig {
        node_limit,
        // Queues of offline nodes are kept too: room for every node the limit admits, and
        // as many again that went away (found by the fleet simulator: a nodeLimit above the
        // default queue bound made cloudcore refuse to start).
        node_queues_max: defaults.node_queues_max.max(node_limit.saturating_mul(2)),
        keepalive_interval: h.keepalive(),
        write_timeout: h.write_timeout(),
        node_authorization: h.authorization.enable && !h.authorization.debug,
        ..defaults
    }
}

/// EdgeController's settings from cloudcore.yaml.
fn controller_config(cfg: &CloudCoreConfig) -> EdgeControllerConfig {
    let secs = std::time::Duration::from_secs;
    let ec = &cfg.modules.edge_controller;
    EdgeControllerConfig {
        authorization: cfg.modules.cloud_hub.authorization,
        node_monitor_grace: secs(ec.node_monitor_grace_period),
        release_delay: secs(ec.release_delay_seconds),
        upstream_workers: upstream_workers(cfg.modules.cloud_hub.node_limit),
        devices: cfg.modules.device_controller.enable,
        ..EdgeControllerConfig::default()
    }
}

/// EdgeController's upstream workers for a node limit. Each edge request is one API call and
/// one node's requests stay in order on one worker, so upstream throughput is workers ÷ API
/// latency: a fixed pool that suits 500 nodes stalls 5,000 (found by the fleet simulator: the
/// full channel held up every session's reader, ACKs waited 30 s and everything was resent).
/// KubeEdge scales its workers with `nodeLimit` too (`AdjustCloudCoreConfig`; its 100k-node
/// test ran 20,000 pod-status workers for 30,000 nodes per cloudcore). One per 8 nodes, at
/// least the default, at most 4,096.
fn upstream_workers(node_limit: u32) -> usize {
    let per_limit = usize::try_from(node_limit / 8).unwrap_or(usize::MAX);
    per_limit.clamp(EdgeControllerConfig::default().upstream_workers, 4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: any `nodeLimit` gives a valid CloudHub configuration (a limit above the default
    /// queue bound used to stop cloudcore at start).
    #[test]
    fn a_large_node_limit_gives_a_valid_hub_config() {
        let mut cfg = CloudCoreConfig::default();
        for limit in [1, 500, 1000, 5000, 100_000] {
            cfg.modules.cloud_hub.node_limit = limit;
            let hub = hub_config(&cfg);
            assert_eq!(hub.validate(), Ok(()), "nodeLimit {limit}");
            assert!(hub.node_queues_max >= hub.node_limit);
        }
    }

    /// Goal: EdgeController's upstream workers grow with the node limit, within bounds.
    #[test]
    fn upstream_workers_scale_with_the_node_limit() {
        let default = EdgeControllerConfig::default().upstream_workers;
        assert_eq!(upstream_workers(1), default);
        assert_eq!(upstream_workers(100), default);
        assert_eq!(upstream_workers(500), 62);
        assert_eq!(upstream_workers(5000), 625);
        assert_eq!(upstream_workers(1_000_000), 4096);
        assert!(upstream_workers(2000) > upstream_workers(1000));
    }
}
