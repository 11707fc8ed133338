//! [`EdgeCore`]: the whole edge daemon assembled from an `edgecore.yaml` and its dependencies
//! (transport, clock, entropy), run until shutdown. The `edgecore` binary and the simulator
//! both run this.
//!
//! ```text
//!            ┌──────────── EdgeHub (wss to CloudHub) ◄─── upstream (one bounded channel) ◄──┐
//!  downstream│                                                                             │
//!            ▼                                                                             │
//!         router ── replies (parent_msg_id) ──► node agent ── inventory, registration,  ───┤
//!            │      twin: dropped (no DeviceTwin yet)     ▲  node status, lease, pod status │
//!            └── everything else ──► MetaManager ── ACKs ─┼────────────────────────────────┘
//!                                      │ (SQLite)         │ pod reports
//!                                      └── changes ──► PodManager (edged) ── Runtime
//! ```
//!
//! Start-up: the configuration is validated and the MetaStore opened in [`EdgeCore::new`];
//! [`EdgeCore::run`] then starts every task at once. Credentials: with no join token they are
//! loaded from `tlsCaFile`/`tlsCertFile`/`tlsPrivateKeyFile` (failure ends the start, the
//! operator must act); with a token, [`certificate::bootstrap`] reuses valid stored ones without
//! touching the network, or joins through `httpServer`, retrying with back-off while the cloud
//! is unreachable. Only EdgeHub waits for credentials: MetaManager and edged start at once and
//! restore the node's pods from SQLite, so a node restarted while the cloud is down runs its
//! pods within seconds (offline autonomy, wire reference §9).
//!
//! Shutdown: when `shutdown` resolves, or when any task ends on its own (a failure), every task
//! is told to stop; edged stops its containers. [`EdgeCore::run`] returns the first failure.
//!
//! `metaManager.enable` is ignored (MetaManager always runs); `edgeHub.enable: false` runs the
//! node offline; `edged.enable: false` runs no pods. `eventBus.mqttMode` 0 and 1 run the
//! embedded MQTT broker ([`crate::eventbus::broker`]) on `mqttServerInternal` (see
//! `event_bus_plan`).
//!
//! - `counted` (private): a runtime wrapper counting pod sandboxes (`edgecore_pods`).
//! - `handle` (private): [`EdgeCoreHandle`], status and Prometheus text while running.
//! - `tasks` (private): the hub task (credentials, then EdgeHub) and the downstream router.

mod counted;
mod handle;
mod tasks;

use std::{
    future::Future,
    net::SocketAddr,
    path::{Path, PathBuf},
    pin::Pin,
    sync::{Arc, OnceLock},
    time::Duration,
};

use ke_core::{Entropy, Seed};
use ke_net::Transport;
use ke_proto::{Message, MsgIdSource};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, error, info, info_span};

pub use handle::{EdgeCoreHandle, EdgeCoreStatus};
pub use tasks::{BOOTSTRAP_RETRY_INITIAL, BOOTSTRAP_RETRY_MAX};

use self::{
    counted::Counted,
    handle::Shared,
    tasks::{HubSetup, Join, Routes},
};
use crate::{
    certificate::{self, CertPaths, EdgeCredentials},
    config::{ConfigError, EdgeCoreConfig},
    devicetwin::{DeviceTwin, DeviceTwinConfig, TwinInputs},
    edged::{PodManager, PodManagerConfig, Runtime},
    edgehub::{CloudState, EdgeHubConfig},
    edgestream::{EdgeStream, EdgeStreamConfig},
    eventbus::{
        self, BusEnds,
        broker::{self, Broker, BrokerConfig},
        mqtt::MqttConfig,
    },
    metamanager::{MetaManager, MetaStore},
    node::{NodeAgent, NodeConfig, NodeInputs, NodeMetrics, NodeResources},
};

/// Downstream messages between EdgeHub and the router.
pub const DOWNSTREAM_QUEUE_MAX: usize = 256;
/// Messages from every producer (MetaManager's ACKs, the node agent) to EdgeHub.
pub const UPSTREAM_QUEUE_MAX: usize = 256;
/// Downstream messages from the router to MetaManager.
pub const META_QUEUE_MAX: usize = 256;
/// Replies from the router to the node agent.
pub const REPLIES_QUEUE_MAX: usize = 64;
/// Changes from MetaManager to edged.
pub const EDGED_QUEUE_MAX: usize = 128;
/// Pod reports from edged to the node agent (edged coalesces behind it).
pub const REPORTS_QUEUE_MAX: usize = 64;
/// Device messages from the router, and device writes from MetaManager, to DeviceTwin.
pub const TWIN_QUEUE_MAX: usize = 128;

/// What edgecore runs on: sockets, wall clock, randomness.
pub use ke_core::Deps;

/// Why edgecore did not start or stopped other than by shutdown.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is invalid. Not retryable: fix the file.
    #[error("invalid configuration")]
    Config(#[from] ConfigError),
    /// No usable credentials, or the join failed for good (wrong token or CA). Not retryable.
    #[error("edge credentials unusable")]
    Credentials(#[source] certificate::Error),
    /// A directory could not be created.
    #[error("cannot create {path}")]
    Io {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The MetaStore could not be opened, or MetaManager failed.
    #[error("meta store failed")]
    Store(#[source] crate::metamanager::Error),
    /// EdgeHub stopped.
    #[error("edgehub stopped")]
    EdgeHub(#[source] crate::edgehub::Error),
    /// Edged (the pod manager) stopped.
    #[error("edged stopped")]
    Edged(#[source] crate::edged::Error),
    /// The node agent stopped.
    #[error("node agent stopped")]
    Node(#[source] crate::node::Error),
    /// DeviceTwin could not start or stopped.
    #[error("device twin stopped")]
    Twin(#[source] crate::devicetwin::Error),
    /// The embedded MQTT broker (`mqttMode` 0 or 1) could not start. Not retryable: free the
    /// `mqttServerInternal` address or change it.
    #[error("the internal MQTT broker could not start")]
    Broker(#[source] broker::Error),
    /// A task's channel closed under it (another task ended).
    #[error("the {channel} channel closed")]
    ChannelClosed {
        /// Which channel.
        channel: &'static str,
    },
}

/// Runs edgecore from `cfg` until `shutdown` resolves: [`EdgeCore::new`] then
/// [`EdgeCore::run`].
pub async fn run<T: Transport, R: Runtime>(
    cfg: EdgeCoreConfig,
    deps: Deps<T>,
    runtime: R,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    EdgeCore::new(cfg, deps, runtime)?.run(shutdown).await
}

/// An assembled edgecore, ready to [`run`](Self::run) (see the module docs).
pub struct EdgeCore<T: Transport, R: Runtime> {
    cfg: EdgeCoreConfig,
    deps: Deps<T>,
    runtime: R,
    store: MetaStore,
    cloud_addr: SocketAddr,
    join: Option<Join>,
    node_cfg: NodeConfig,
    pod_cfg: PodManagerConfig,
    hub_cfg: EdgeHubConfig,
    upstream: (mpsc::Sender<Message>, mpsc::Receiver<Message>),
    shared: Arc<Shared>,
    /// DeviceTwin, when `modules.deviceTwin.enable`.
    twin: Option<DeviceTwin>,
    /// The brokers DeviceTwin's EventBus client connects to (none unless DeviceTwin and
    /// `modules.eventBus` run; unused when a bus was given).
    mqtt: Vec<MqttConfig>,
    /// The embedded broker's address and bounds (`mqttMode` 0 or 1).
    broker: Option<(SocketAddr, BrokerConfig)>,
    /// A bus given by the caller (the simulator's in-memory bus).
    bus: Option<BusEnds>,
    /// EdgeStream's settings, when `modules.edgeStream.enable`.
    stream_cfg: Option<EdgeStreamConfig>,
}

impl<T: Transport, R: Runtime> std::fmt::Debug for EdgeCore<T, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeCore")
            .field("node", &self.node_cfg.node)
            .field("cloud", &self.cloud_addr)
            .finish_non_exhaustive()
    }
}

impl<T: Transport, R: Runtime> EdgeCore<T, R> {
    /// Validates `cfg`, opens the MetaStore (creating its directory) and derives every
    /// component's configuration. `modules.edgeHub.websocket.server` (and `httpServer` when a
    /// token is set) must be IP addresses: names are not resolved. Without `nodeIP`, a node
    /// whose cloud is on a loopback address reports that address as its InternalIP.
    pub fn new(cfg: EdgeCoreConfig, deps: Deps<T>, runtime: R) -> Result<Self, Error> {
        cfg.validate()?;
        let store = open_store(Path::new(&cfg.database.data_source))?;
        Self::with_store(cfg, deps, runtime, store)
    }

    /// As [`Self::new`], on an already open MetaStore (`database.dataSource` is then unused):
    /// the simulator keeps each virtual node's database in memory across its crashes.
    pub fn with_store(
        cfg: EdgeCoreConfig,
        deps: Deps<T>,
        runtime: R,
        store: MetaStore,
    ) -> Result<Self, Error> {
        cfg.validate()?;
        let hub = &cfg.modules.edge_hub;
        let cloud_addr = ip_port("modules.edgeHub.websocket.server", &hub.websocket.server)?;
        let join = join_target(&cfg)?;
        let mut node_cfg = NodeConfig::from_edgecore(&cfg, runtime.name())?;
        if node_cfg.node_ip.is_none() && cloud_addr.ip().is_loopback() {
            node_cfg.node_ip = Some(cloud_addr.ip().to_string());
        }
        let root = &cfg.modules.edged.tailored_kubelet_flag.root_directory;
        let pod_cfg = PodManagerConfig::new(cfg.node_name(), root);
        let hub_cfg = hub_config(&cfg);
        let upstream = mpsc::channel(UPSTREAM_QUEUE_MAX);
        let (cloud, _) = watch::channel(CloudState::Connecting);
        let shared = Arc::new(Shared {
            cloud,
            hub: OnceLock::new(),
            node: Arc::new(NodeMetrics::default()),
            pods: Arc::default(),
            upstream: upstream.0.downgrade(),
            routed_meta: Default::default(),
            routed_replies: Default::default(),
            routed_twin: Default::default(),
            dropped_twin: Default::default(),
            twin: Arc::default(),
            broker: OnceLock::new(),
            tls: watch::channel(None).0,
        });
        let twin = if cfg.modules.device_twin.enable {
            let ids = ids_from(&deps.entropy, "devicetwin");
            let twin = DeviceTwin::new(
                store.clone(),
                cfg.node_name(),
                deps.clock.clone(),
                ids,
                DeviceTwinConfig::default(),
            )
            .map_err(Error::Twin)?;
            Some(twin.with_metrics(shared.twin.clone()))
        } else {
            None
        };
        let EventBusPlan { broker, mqtt } = event_bus_plan(&cfg, twin.is_some())?;
        let es = &cfg.modules.edge_stream;
        let stream_cfg = match es.enable && hub.enable {
            true => Some(EdgeStreamConfig::from_config(
                es,
                ip_port("modules.edgeStream.server", &es.server)?,
            )),
            false => None,
        };
        Ok(Self {
            cfg,
            deps,
            runtime,
            store,
            cloud_addr,
            join,
            node_cfg,
            pod_cfg,
            hub_cfg,
            upstream,
            shared,
            twin,
            mqtt,
            broker,
            bus: None,
            stream_cfg,
        })
    }

    /// DeviceTwin talks to mappers over `bus` instead of an MQTT broker (the simulator's
    /// in-memory bus; tests).
    #[must_use]
    pub fn with_bus(mut self, bus: BusEnds) -> Self {
        self.bus = Some(bus);
        self
    }

    /// Reports `resources` as the node's capacity (default: fixed values, see
    /// [`NodeResources::default`]; the binary passes [`NodeResources::detect`]).
    pub fn with_resources(mut self, resources: NodeResources) -> Self {
        self.node_cfg.resources = resources;
        self
    }

    /// Adjusts the node agent's configuration (the simulator shortens periods with it).
    /// edged reports the node agent's `node_ip` as the pods' host IP.
    pub fn with_node_config(mut self, f: impl FnOnce(&mut NodeConfig)) -> Self {
        f(&mut self.node_cfg);
        self
    }

    /// Adjusts edged's configuration (back-off, grace periods).
    pub fn with_pod_config(mut self, f: impl FnOnce(&mut PodManagerConfig)) -> Self {
        f(&mut self.pod_cfg);
        self
    }

    /// Adjusts EdgeHub's configuration (reconnect back-off, silence limit).
    pub fn with_hub_config(mut self, f: impl FnOnce(&mut EdgeHubConfig)) -> Self {
        f(&mut self.hub_cfg);
        self
    }

    /// The MetaStore (a shared handle).
    pub fn store(&self) -> &MetaStore {
        &self.store
    }

    /// A handle for status and metrics, valid before, during and after [`Self::run`].
    pub fn handle(&self) -> EdgeCoreHandle {
        EdgeCoreHandle {
            shared: self.shared.clone(),
        }
    }

    /// Runs every task until `shutdown` resolves or one fails (see the module docs).
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
        let span = info_span!("edgecore", node = %self.node_cfg.node);
        self.run_inner(shutdown).instrument(span).await
    }

    async fn run_inner(self, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
        let creds = self.initial_credentials()?;
        info!(
            cloud = %self.cloud_addr,
            runtime = self.runtime.name(),
            database = %self.cfg.database.data_source,
            "edgecore starting"
        );
        let stop = CancellationToken::new();
        let failed = OnceLock::new();
        let tasks = Tasks::build(self, creds);
        let watch_shutdown = async {
            tokio::select! {
                () = shutdown => info!("shutting down"),
                () = stop.cancelled() => {}
            }
            stop.cancel();
        };
        tokio::join!(watch_shutdown, tasks.run(&stop, &failed));
        info!("edgecore stopped");
        failed.into_inner().map_or(Ok(()), Err)
    }

    /// Credentials known at start: loaded ones, or (with a token) how to get them; `None`
    /// when EdgeHub is disabled.
    fn initial_credentials(&self) -> Result<Option<Result<EdgeCredentials, Join>>, Error> {
        if !self.cfg.modules.edge_hub.enable {
            return Ok(None);
        }
        if let Some(join) = &self.join {
            return Ok(Some(Err(join.clone())));
        }
        let paths = cert_paths(&self.cfg);
        match certificate::load(&paths, self.node_cfg.node.as_str(), &*self.deps.clock) {
            Ok(creds) => Ok(Some(Ok(creds))),
            Err(e) => {
                error!(error = %e, "no usable certificate and no join token");
                Err(Error::Credentials(e))
            }
        }
    }
}

/// Every task, wired, ready to run.
struct Tasks<T: Transport, R: Runtime> {
    hub: Option<HubSetup<T>>,
    meta: MetaManager,
    pods: Option<PodManager<Counted<R>>>,
    agent: NodeAgent,
    shared: Arc<Shared>,
    upstream: (mpsc::Sender<Message>, mpsc::Receiver<Message>),
    twin: Option<DeviceTwin>,
    bus: Option<BusEnds>,
    mqtt: Option<(Vec<MqttConfig>, eventbus::AdapterEnds)>,
    broker: Option<BrokerSetup<T>>,
    stream: Option<EdgeStream<T>>,
}

/// The embedded broker, to bind when the tasks start.
struct BrokerSetup<T: Transport> {
    transport: T,
    addr: SocketAddr,
    cfg: BrokerConfig,
}

impl<T: Transport, R: Runtime> Tasks<T, R> {
    fn build(core: EdgeCore<T, R>, creds: Option<Result<EdgeCredentials, Join>>) -> Self {
        let deps = core.deps;
        let broker = core.broker.map(|(addr, cfg)| BrokerSetup {
            transport: deps.transport.clone(),
            addr,
            cfg,
        });
        let clock = deps.clock.clone();
        let ids = |name: &str| ids_from(&deps.entropy, name);
        let meta = MetaManager::new(core.store.clone(), clock.clone(), ids("metamanager"));
        let agent = NodeAgent::new(
            core.node_cfg.clone(),
            core.store.clone(),
            clock.clone(),
            ids("node"),
        )
        .with_metrics(core.shared.node.clone());
        let mut pod_cfg = core.pod_cfg;
        pod_cfg.node_ip.clone_from(&core.node_cfg.node_ip);
        // Drawn only when EdgeStream runs, so other runs keep their seeded sequence.
        let stream = core.stream_cfg.map(|cfg| {
            EdgeStream::new(
                deps.transport.clone(),
                cfg,
                core.node_cfg.node.clone(),
                core.node_cfg.node_ip.clone(),
                core.store.clone(),
                core.runtime.streams(),
                Entropy::seeded(Seed(deps.entropy.next_u64()), "edgestream"),
            )
        });
        let runtime = Counted::new(core.runtime, core.shared.pods.clone());
        let edged_on = core.cfg.modules.edged.enable;
        let pods = edged_on.then(|| PodManager::new(pod_cfg, runtime, core.store, clock.clone()));
        let hub_entropy = Entropy::seeded(Seed(deps.entropy.next_u64()), "edgehub");
        let hub = creds.map(|creds| HubSetup {
            transport: deps.transport,
            clock,
            entropy: hub_entropy,
            node: core.node_cfg.node,
            project_id: core.cfg.modules.edge_hub.project_id.clone(),
            cloud_addr: core.cloud_addr,
            hub_cfg: core.hub_cfg,
            paths: cert_paths(&core.cfg),
            creds,
        });
        let (bus, mqtt) = match (core.bus, core.mqtt.is_empty()) {
            (Some(bus), _) => (Some(bus), None),
            (None, false) => {
                let (bus, adapter) = eventbus::bus_pair();
                (Some(bus), Some((core.mqtt, adapter)))
            }
            (None, true) => (None, None),
        };
        Self {
            hub,
            meta,
            pods,
            agent,
            shared: core.shared,
            upstream: core.upstream,
            twin: core.twin,
            bus,
            mqtt,
            broker,
            stream,
        }
    }

    async fn run(self, stop: &CancellationToken, failed: &OnceLock<Error>) {
        let (down_tx, down_rx) = mpsc::channel(DOWNSTREAM_QUEUE_MAX);
        let (meta_tx, meta_rx) = mpsc::channel(META_QUEUE_MAX);
        let (replies_tx, replies_rx) = mpsc::channel(REPLIES_QUEUE_MAX);
        let (edged_tx, edged_rx) = mpsc::channel(EDGED_QUEUE_MAX);
        let (reports_tx, reports_rx) = mpsc::channel(REPORTS_QUEUE_MAX);
        let (up_tx, up_rx) = self.upstream;
        let shared = self.shared;
        let hub = run_hub(self.hub, down_tx, up_rx, shared.clone(), stop);
        let (twin_tx, twin_rx) = mpsc::channel(TWIN_QUEUE_MAX);
        let (twin_dev_tx, twin_dev_rx) = mpsc::channel(TWIN_QUEUE_MAX);
        let twin_on = self.twin.is_some();
        let routes = Routes {
            meta: meta_tx,
            replies: replies_tx,
            twin: twin_on.then_some(twin_tx),
        };
        let router = tasks::route(down_rx, routes, shared.clone(), stop.clone());
        let meta = match twin_on {
            true => self.meta.with_twin(twin_dev_tx),
            false => self.meta,
        }
        .run(meta_rx, up_tx.clone(), edged_tx, stop.cancelled());
        let twin_inputs = TwinInputs {
            cloud: shared.cloud.subscribe(),
            from_cloud: twin_rx,
            devices: twin_dev_rx,
            bus: self.bus,
        };
        let bus = EventBusTasks {
            broker: self.broker,
            mqtt: self.mqtt,
            metrics: &shared.broker,
        };
        let twin = run_twin(self.twin, bus, twin_inputs, up_tx.clone(), stop);
        let pods = async {
            match self.pods {
                Some(pods) => pods.run(edged_rx, reports_tx, stop.cancelled()).await,
                None => {
                    stop.cancelled().await;
                    Ok(())
                }
            }
        };
        let inputs = NodeInputs {
            cloud: shared.cloud.subscribe(),
            replies: replies_rx,
            reports: reports_rx,
        };
        let agent = self.agent.run(inputs, up_tx, stop.cancelled());
        let stream = run_stream(self.stream, shared.tls.subscribe(), stop);
        let meta = async { meta.await.map_err(Error::Store) };
        let pods = async { pods.await.map_err(Error::Edged) };
        let agent = async { agent.await.map_err(Error::Node) };
        tokio::join!(
            guarded("edgehub", stop, failed, Box::pin(hub)),
            guarded("router", stop, failed, Box::pin(router)),
            guarded("metamanager", stop, failed, Box::pin(meta)),
            guarded("edged", stop, failed, Box::pin(pods)),
            guarded("node", stop, failed, Box::pin(agent)),
            guarded("devicetwin", stop, failed, Box::pin(twin)),
            guarded("edgestream", stop, failed, Box::pin(stream)),
        );
    }
}

/// The hub task (credentials, then EdgeHub), or just shutdown when EdgeHub is disabled.
async fn run_hub<T: Transport>(
    hub: Option<HubSetup<T>>,
    down_tx: mpsc::Sender<Message>,
    up_rx: mpsc::Receiver<Message>,
    shared: Arc<Shared>,
    stop: &CancellationToken,
) -> Result<(), Error> {
    match hub {
        Some(setup) => tasks::hub(setup, down_tx, up_rx, shared, stop.clone()).await,
        None => {
            stop.cancelled().await;
            Ok(())
        }
    }
}

/// EdgeStream until shutdown. It never stops edgecore: without it only logs and exec are
/// missing.
async fn run_stream<T: Transport>(
    stream: Option<EdgeStream<T>>,
    tls: watch::Receiver<Option<Arc<rustls::ClientConfig>>>,
    stop: &CancellationToken,
) -> Result<(), Error> {
    if let Some(s) = stream {
        // Boxed: the tunnel's futures would otherwise grow every edgecore future (the
        // simulator runs thousands on one thread's stack), EdgeStream enabled or not.
        Box::pin(s.run(tls, stop.clone())).await;
    }
    stop.cancelled().await;
    Ok(())
}

/// EventBus's parts: the embedded broker and the MQTT client.
struct EventBusTasks<'a, T: Transport> {
    broker: Option<BrokerSetup<T>>,
    mqtt: Option<(Vec<MqttConfig>, eventbus::AdapterEnds)>,
    /// Where the broker's counters are published for `/metrics`.
    metrics: &'a OnceLock<Arc<broker::BrokerMetrics>>,
}

/// The embedded broker, DeviceTwin and its MQTT adapter until shutdown (or just shutdown when
/// none runs). The broker is bound first, so the adapter's first connection to it succeeds;
/// a failed bind stops edgecore. The adapter ends only at shutdown, and DeviceTwin keeps
/// working while a broker is away.
async fn run_twin<T: Transport>(
    twin: Option<DeviceTwin>,
    bus: EventBusTasks<'_, T>,
    inputs: TwinInputs,
    upstream: mpsc::Sender<Message>,
    stop: &CancellationToken,
) -> Result<(), Error> {
    let broker = match bus.broker {
        Some(b) => {
            let broker = Broker::bind(&b.transport, b.addr, b.cfg)
                .await
                .map_err(Error::Broker)?;
            let _ = bus.metrics.set(broker.metrics());
            Some(broker)
        }
        None => None,
    };
    let broker = async {
        match broker {
            Some(broker) => broker.run(stop.cancelled()).await,
            None => stop.cancelled().await,
        }
    };
    let adapter = async {
        match bus.mqtt {
            Some((cfgs, ends)) => eventbus::mqtt::run(cfgs, ends, stop.cancelled()).await,
            None => stop.cancelled().await,
        }
    };
    let twin = async {
        match twin {
            Some(twin) => twin
                .run(inputs, upstream, stop.cancelled())
                .await
                .map_err(Error::Twin),
            None => {
                stop.cancelled().await;
                Ok(())
            }
        }
    };
    tokio::join!(broker, adapter, twin).2
}

/// What EventBus runs.
#[derive(Debug, PartialEq)]
struct EventBusPlan {
    /// The embedded broker's address and bounds (`mqttMode` 0 or 1).
    broker: Option<(SocketAddr, BrokerConfig)>,
    /// The brokers DeviceTwin's client connects to.
    mqtt: Vec<MqttConfig>,
}

/// What `modules.eventBus` asks for, as KubeEdge's EventBus does it
/// (`edge/pkg/eventbus/eventbus.go`): `mqttMode` 0 runs the internal broker on
/// `mqttServerInternal` and DeviceTwin's client connects to it; 2 connects to
/// `mqttServerExternal` only; 1 does both (internal broker, and a client on each broker).
/// The broker runs whenever EventBus does; the client only when DeviceTwin runs too.
fn event_bus_plan(cfg: &EdgeCoreConfig, twin_on: bool) -> Result<EventBusPlan, ConfigError> {
    let bus = &cfg.modules.event_bus;
    let mut plan = EventBusPlan {
        broker: None,
        mqtt: Vec::new(),
    };
    if !bus.enable {
        return Ok(plan);
    }
    let client = |field: &'static str, url: &str| {
        MqttConfig::from_url(url, cfg.node_name(), bus.mqtt_qos)
            .map_err(|e| ke_core::config::invalid(field, e.to_string()))
    };
    if bus.mqtt_mode <= 1 {
        let field = "modules.eventBus.mqttServerInternal";
        let addr = broker::listen_addr(&bus.mqtt_server_internal)
            .map_err(|reason| ke_core::config::invalid(field, reason))?;
        let queue = usize::try_from(bus.mqtt_session_queue_size)
            .expect("invariant: validate bounds mqttSessionQueueSize to 100,000");
        let broker_cfg = BrokerConfig {
            session_queue_max: queue,
            ..BrokerConfig::default()
        };
        plan.broker = Some((addr, broker_cfg));
        if twin_on {
            plan.mqtt.push(client(field, &bus.mqtt_server_internal)?);
        }
    }
    if bus.mqtt_mode >= 1 && twin_on {
        let field = "modules.eventBus.mqttServerExternal";
        plan.mqtt.push(client(field, &bus.mqtt_server_external)?);
    }
    Ok(plan)
}

/// Awaits a task; however it ends, every other task is told to stop. The first failure is
/// kept in `failed`.
/// `task` comes boxed: inline, every task's future would be stored twice over (as the
/// argument and as the awaited value) in one edgecore future of about 140 KiB, which each
/// simulated node's task then allocated and copied whole; boxed, each task's future is
/// allocated once at its own size (about 40 KiB in all).
async fn guarded(
    name: &'static str,
    stop: &CancellationToken,
    failed: &OnceLock<Error>,
    task: Pin<Box<impl Future<Output = Result<(), Error>>>>,
) {
    let result = task.await;
    if let Err(e) = result {
        if !stop.is_cancelled() {
            error!(task = name, error = %e, "task failed; stopping edgecore");
        }
        let _ = failed.set(e);
    }
    stop.cancel();
}

/// Message ids from a seeded stream of their own (drawn from `entropy` in a fixed order, so
/// the run stays deterministic however the tasks interleave).
fn ids_from(entropy: &Entropy, name: &str) -> Box<dyn MsgIdSource + Send> {
    let own = Entropy::seeded(Seed(entropy.next_u64()), name);
    Box::new(move || own.uuid_v4())
}

fn cert_paths(cfg: &EdgeCoreConfig) -> CertPaths {
    let hub = &cfg.modules.edge_hub;
    CertPaths {
        ca: PathBuf::from(&hub.tls_ca_file),
        cert: PathBuf::from(&hub.tls_cert_file),
        key: PathBuf::from(&hub.tls_private_key_file),
    }
}

fn hub_config(cfg: &EdgeCoreConfig) -> EdgeHubConfig {
    let hub = &cfg.modules.edge_hub;
    EdgeHubConfig {
        heartbeat: hub.heartbeat_interval(),
        message_qps: hub.message_qps,
        message_burst: hub.message_burst,
        handshake_timeout: Duration::from_secs(hub.websocket.handshake_timeout),
        write_timeout: Duration::from_secs(hub.websocket.write_deadline),
        ..EdgeHubConfig::default()
    }
}

/// `text` as `IP:PORT`.
fn ip_port(field: &'static str, text: &str) -> Result<SocketAddr, ConfigError> {
    text.parse().map_err(|_| {
        ke_core::config::invalid(
            field,
            format!("`{text}` is not IP:PORT (host names are not resolved)"),
        )
    })
}

/// The certificate server, when a join token is set.
fn join_target(cfg: &EdgeCoreConfig) -> Result<Option<Join>, ConfigError> {
    let hub = &cfg.modules.edge_hub;
    let token = hub.token.trim();
    if token.is_empty() || !hub.enable {
        return Ok(None);
    }
    let field = "modules.edgeHub.httpServer";
    let rest = hub.http_server.strip_prefix("https://").unwrap_or_default();
    let server = ip_port(field, rest.trim_end_matches('/'))?;
    Ok(Some(Join {
        server,
        token: token.to_owned(),
    }))
}

/// Opens the MetaStore at `path`, creating its directory.
fn open_store(path: &Path) -> Result<MetaStore, Error> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            path: dir.to_owned(),
            source,
        })?;
    }
    MetaStore::open(path).map_err(Error::Store)
}
