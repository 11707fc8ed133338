//! The simulated world: host `api` runs the embedded API server, host `cloud` runs cloudcore
//! (reaching the API server through the real kube client), and hosts `site-0..` each run
//! their share of the virtual edge nodes. [`Shared`] is what the hosts, the workload driver
//! and the run loop share.
//!
//! The API server has a host of its own (rather than being embedded in cloudcore's) so a
//! scenario can restart one without the other; both run the same library code as the
//! daemons.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, Mutex, PoisonError, atomic::AtomicU64},
    time::Duration,
};

use ke_apiserver::{Server, ServerConfig, http::HttpState, in_process::InProcess};
use ke_cloud::{
    cloudhub::HubHandle,
    config::CloudCoreConfig,
    daemon::{CloudCore, Deps as CloudDeps},
    edgecontroller::Metrics as EcMetrics,
};
use ke_core::{Clock, Entropy, Seed};
use ke_edge::metamanager::MetaStore;
use ke_net::{TurmoilTransport, kube_client};
use time::OffsetDateTime;

use crate::{
    node::{NodeCtl, VirtualNode, Wire},
    scenario::{ApiLink, Scenario},
    trace::Trace,
};

/// The API server's host.
pub const API: &str = "api";
/// cloudcore's host.
pub const CLOUD: &str = "cloud";
/// The API server's port.
pub const API_PORT: u16 = 6443;

/// Wall time = a fixed epoch + simulated time (the same on every host, across restarts).
#[derive(Debug)]
struct SimClock {
    epoch: OffsetDateTime,
}

impl Clock for SimClock {
    fn now_utc(&self) -> OffsetDateTime {
        self.epoch + turmoil::sim_elapsed().unwrap_or_default()
    }
}

/// How clients reach the API server.
#[derive(Clone)]
pub struct ApiAccess {
    /// The API server's CA (PEM).
    pub ca: String,
    /// The admin bearer token.
    pub token: String,
    /// The running server's state (request counters).
    pub state: Arc<HttpState>,
}

type Slot<T> = Mutex<Option<T>>;

fn get<T: Clone>(slot: &Slot<T>) -> Option<T> {
    slot.lock().unwrap_or_else(PoisonError::into_inner).clone()
}

fn put<T>(slot: &Slot<T>, v: Option<T>) {
    *slot.lock().unwrap_or_else(PoisonError::into_inner) = v;
}

/// What hosts, driver and run loop share.
pub struct Shared {
    /// The scenario (with `--nodes` applied).
    pub scenario: Scenario,
    /// The run's seed.
    pub seed: u64,
    /// Event log, pending writes, safety observations.
    pub trace: Arc<Trace>,
    /// Wire byte counters.
    pub wire: Arc<Wire>,
    /// Per-node switches, by index.
    pub nodes: Vec<Arc<NodeCtl>>,
    /// Node names, by index.
    pub names: Vec<String>,
    /// Where files go (certificates, the API server's database).
    pub dir: PathBuf,
    /// Wall-clock epoch of simulated time 0.
    pub epoch: OffsetDateTime,
    token: Slot<String>,
    api: Slot<ApiAccess>,
    hub: Slot<HubHandle>,
    controller: Slot<Arc<EcMetrics>>,
    stores: Mutex<BTreeMap<u32, MetaStore>>,
    /// Simulated time the whole fleet was first connected.
    pub ready_at: Slot<Duration>,
    /// Checks recorded by the driver.
    pub checks: Mutex<Vec<crate::outcome::CheckResult>>,
    /// Final pod count.
    pub pods: AtomicU64,
    /// Devices: mapper state, desired values, latencies.
    pub devices: Arc<crate::devices::Book>,
    starts: AtomicU64,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

impl Shared {
    /// State for a run of `scenario` with `seed`, files under `dir`.
    pub fn new(scenario: Scenario, seed: u64, dir: PathBuf, epoch: OffsetDateTime) -> Self {
        let n = scenario.fleet.nodes;
        let names = (0..n).map(node_name).collect();
        let with_devices = if scenario.has_devices() { n } else { 0 };
        Self {
            scenario,
            seed,
            trace: Arc::default(),
            wire: Arc::default(),
            nodes: (0..n).map(|_| Arc::default()).collect(),
            names,
            dir,
            epoch,
            token: Mutex::default(),
            api: Mutex::default(),
            hub: Mutex::default(),
            controller: Mutex::default(),
            stores: Mutex::default(),
            ready_at: Mutex::default(),
            checks: Mutex::default(),
            pods: AtomicU64::new(0),
            devices: Arc::new(crate::devices::Book::new(with_devices)),
            starts: AtomicU64::new(0),
        }
    }

    /// A clock on simulated time.
    pub fn clock(&self) -> Arc<dyn Clock> {
        Arc::new(SimClock { epoch: self.epoch })
    }

    /// Seeded entropy for a named component's `n`th start.
    pub fn entropy_for(&self, name: &str) -> Entropy {
        let n = self
            .starts
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Entropy::seeded(Seed(self.seed), &format!("{name}/{n}"))
    }

    /// Waits (in simulated time) for cloudcore's join token.
    pub async fn join_token(&self) -> String {
        loop {
            if let Some(t) = get(&self.token) {
                return t;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits for the API server's credentials.
    pub async fn api_access(&self) -> ApiAccess {
        loop {
            if let Some(a) = get(&self.api) {
                return a;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The running API server's access, if up.
    pub fn api_now(&self) -> Option<ApiAccess> {
        get(&self.api)
    }

    /// Forgets the API server (it crashed).
    pub fn api_down(&self) {
        put(&self.api, None);
    }

    /// The running CloudHub, if up.
    pub fn hub(&self) -> Option<HubHandle> {
        get(&self.hub)
    }

    /// Releases EdgeController is holding back for their delay (0 when cloudcore is down:
    /// its successor resyncs every node).
    pub fn pending_releases(&self) -> u64 {
        get(&self.controller).map_or(0, |m| m.pending_releases())
    }

    /// Forgets cloudcore (it crashed).
    pub fn cloud_down(&self) {
        put(&self.hub, None);
        put(&self.controller, None);
    }

    /// Registers a node's store (for the convergence check).
    pub fn register_store(&self, node: u32, store: MetaStore) {
        self.stores
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(node, store);
    }

    /// A node's store.
    pub fn store(&self, node: u32) -> Option<MetaStore> {
        self.stores
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&node)
            .cloned()
    }

    /// When the fleet was ready.
    pub fn ready(&self) -> Option<Duration> {
        get(&self.ready_at)
    }

    /// Records a check's verdict.
    pub fn check(&self, c: crate::outcome::CheckResult) {
        self.trace.event(format_args!(
            "check {} passed={} {}",
            c.name, c.passed, c.detail
        ));
        self.checks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(c);
    }

    /// Index of the site node `i` lives on.
    pub fn site_of(&self, i: usize) -> usize {
        i * self.scenario.fleet.sites / self.scenario.fleet.nodes
    }
}

/// The name of node `i`.
pub fn node_name(i: usize) -> String {
    format!("edge-{i:05}")
}

/// The name of site `s`'s host.
pub fn site_host(s: usize) -> String {
    format!("site-{s}")
}

type HostResult = Result<(), Box<dyn std::error::Error>>;

/// Adds the API server's host.
pub fn add_api(sim: &mut turmoil::Sim<'_>, sh: &Arc<Shared>) {
    let sh = sh.clone();
    sim.host(API, move || {
        let sh = sh.clone();
        async move {
            let ip = turmoil::lookup(API);
            let mut cfg = ServerConfig::new(sh.dir.join("apiserver"));
            cfg.listen = SocketAddr::new([0, 0, 0, 0].into(), API_PORT);
            cfg.extra_sans = vec![ip.to_string()];
            // Embedded: never restarted (the scenario check refuses `restart_apiserver`), so
            // its SQLite needs no file; external: a restart reopens the file.
            cfg.database_in_memory = sh.scenario.cloud.apiserver == ApiLink::Embedded;
            let deps = ke_apiserver::Deps {
                transport: TurmoilTransport,
                clock: sh.clock(),
                entropy: sh.entropy_for(API),
            };
            let server = Server::start(cfg, deps).await?;
            let creds = server.credentials();
            let access = ApiAccess {
                ca: creds.ca_pem.clone(),
                token: creds.admin_token.clone(),
                state: server.state(),
            };
            put(&sh.api, Some(access));
            sh.trace.event(format_args!("apiserver up"));
            server.serve(std::future::pending()).await;
            HostResult::Ok(())
        }
    });
}

/// A kube client for the API server (from inside a host or client).
pub fn client(access: &ApiAccess) -> Result<kube::Client, ke_net::KubeClientError> {
    let ip = turmoil::lookup(API);
    kube_client(
        TurmoilTransport,
        SocketAddr::new(ip, API_PORT),
        &ip.to_string(),
        &access.ca,
        &access.token,
    )
}

fn cloud_config(sh: &Shared, ip: &str) -> CloudCoreConfig {
    let dir = sh.dir.join("cloud");
    let p = |rel: &str| dir.join(rel).display().to_string();
    let mut cfg = CloudCoreConfig::default();
    cfg.common_config.monitor_server.bind_address = "0.0.0.0:9091".into();
    let hub = &mut cfg.modules.cloud_hub;
    hub.advertise_address = vec![ip.to_owned()];
    hub.tls_ca_file = p("ca/rootCA.crt");
    hub.tls_ca_key_file = p("ca/rootCA.key");
    hub.tls_cert_file = p("certs/server.crt");
    hub.tls_private_key_file = p("certs/server.key");
    hub.node_limit = u32::try_from(sh.scenario.fleet.nodes + 100).unwrap_or(u32::MAX);
    cfg
}

/// Adds cloudcore's host.
pub fn add_cloud(sim: &mut turmoil::Sim<'_>, sh: &Arc<Shared>) {
    let sh = sh.clone();
    sim.host(CLOUD, move || {
        let sh = sh.clone();
        async move {
            let ip = turmoil::lookup(CLOUD).to_string();
            let access = sh.api_access().await;
            // Embedded: the router of the server on the API host, called from this host's
            // tasks (one process, as cloudcore's embedded server); external: HTTPS.
            let kube = match sh.scenario.cloud.apiserver {
                ApiLink::Embedded => {
                    InProcess::new(access.state.clone(), &access.token)?.into_client()
                }
                ApiLink::External => client(&access)?,
            };
            let deps = CloudDeps {
                transport: TurmoilTransport,
                clock: sh.clock(),
                entropy: sh.entropy_for(CLOUD),
            };
            let core = CloudCore::start_with_client(cloud_config(&sh, &ip), deps, kube).await?;
            put(
                &sh.token,
                Some(core.join_token(Duration::from_secs(24 * 3600))),
            );
            put(&sh.hub, Some(core.hub_handle()));
            put(&sh.controller, Some(core.controller_metrics()));
            sh.trace.event(format_args!("cloudcore up"));
            core.run(std::future::pending()).await?;
            HostResult::Ok(())
        }
    });
}

/// Adds every site host with its nodes.
pub fn add_sites(sim: &mut turmoil::Sim<'_>, sh: &Arc<Shared>) {
    let f = &sh.scenario.fleet;
    let spread = Duration::from_secs(f.start_spread_s);
    let n = f.nodes;
    for s in 0..f.sites {
        let members: Vec<usize> = (0..n).filter(|&i| sh.site_of(i) == s).collect();
        let sh = sh.clone();
        sim.host(site_host(s), move || {
            let (sh, members) = (sh.clone(), members.clone());
            async move {
                for i in members {
                    let index = u32::try_from(i).unwrap_or(u32::MAX);
                    let start_after = spread.mul_f64(i as f64 / n as f64);
                    let node = VirtualNode {
                        index,
                        name: sh.names[i].clone(),
                        dir: sh.dir.join("nodes").join(&sh.names[i]),
                        ctl: sh.nodes[i].clone(),
                        shared: sh.clone(),
                        start_after,
                    };
                    tokio::task::spawn_local(node.run());
                }
                std::future::pending::<()>().await;
                HostResult::Ok(())
            }
        });
    }
}
