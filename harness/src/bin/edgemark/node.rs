//! One edgemark node: a real [`EdgeCore`] (EdgeHub over real TLS sockets, MetaManager on its
//! own in-memory SQLite, edged on the `sim` runtime) that joins with the token, plus a cut
//! switch: a cut node drops its EdgeCore (its connection closes, as when the edge machine
//! loses power or its link) and starts it again, with the same store and certificates, when
//! the cut ends.
//!
//! With devices (`--devices-per-node`), DeviceTwin runs on an in-memory bus to the
//! simulator's virtual mapper (the same mapper, topics and payloads as in sim mode), which
//! reports every device's properties each period; EventBus stays off.

use std::{
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use ke_core::{Clock, Entropy, SystemClock};
use ke_edge::eventbus::bus_pair;
use ke_edge::{
    config::EdgeCoreConfig,
    daemon::{Deps, EdgeCore},
    edged::{SimConfig, SimRuntime},
    metamanager::{MetaStore, Observed},
};
use ke_net::BoundTransport;
use simulator::{devices::Book, mapper::MapperSetup};
use tokio::sync::Notify;

use crate::marks::Marks;

/// Where the nodes find the cloud and how they behave (shared by every node).
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) cloudcore: SocketAddr,
    pub(crate) cert_port: u16,
    pub(crate) token: String,
    pub(crate) heartbeat_s: u64,
    pub(crate) status_period: Duration,
    pub(crate) lease_period: Duration,
    /// Devices: the nodes run DeviceTwin and a virtual mapper.
    pub(crate) devices: Option<DevicePlan>,
}

/// What each node's virtual mapper does.
#[derive(Debug)]
pub(crate) struct DevicePlan {
    /// Every device reports every property once per period.
    pub(crate) period: Duration,
    /// Sensor properties (a fresh reading each report).
    pub(crate) sensors: Vec<String>,
    /// Actuator properties (their current value).
    pub(crate) actuators: Vec<String>,
    /// The process's device book (mapper counts, DeviceTwin counters).
    pub(crate) book: Arc<Book>,
}

/// One node's switches, shared with the control endpoint.
#[derive(Debug, Default)]
pub(crate) struct Ctl {
    pub(crate) connected: AtomicBool,
    pub(crate) cut: AtomicBool,
    pub(crate) wake: Notify,
    /// Sessions begun (the first connect included).
    pub(crate) connects: AtomicU64,
}

impl Ctl {
    pub(crate) fn set_cut(&self, cut: bool) {
        self.cut.store(cut, Ordering::Relaxed);
        self.wake.notify_one();
    }

    async fn until_cut(&self, cut: bool) {
        while self.cut.load(Ordering::Relaxed) != cut {
            self.wake.notified().await;
        }
    }
}

/// Everything one node needs to (re)start.
pub(crate) struct Node {
    /// Index within this process.
    pub(crate) index: u32,
    pub(crate) name: String,
    pub(crate) dir: PathBuf,
    pub(crate) source: Option<IpAddr>,
    pub(crate) ctl: Arc<Ctl>,
    pub(crate) store: MetaStore,
    pub(crate) plan: Arc<Plan>,
}

impl Node {
    /// The node's store, reporting every committed write to `marks`.
    pub(crate) fn store(index: u32, name: &str, marks: &Arc<Marks>) -> anyhow::Result<MetaStore> {
        let (marks, name) = (marks.clone(), name.to_owned());
        let observer = Arc::new(move |o: Observed<'_>| marks.observe(index, &name, &o));
        Ok(MetaStore::open_in_memory()?.with_observer(observer))
    }

    fn config(&self) -> EdgeCoreConfig {
        let cloud = self.plan.cloudcore;
        let mut cfg = EdgeCoreConfig::virtual_node(
            &self.dir,
            &self.name,
            cloud.to_string(),
            format!("https://{}:{}", cloud.ip(), self.plan.cert_port),
            &self.plan.token,
        );
        cfg.modules.edge_hub.heartbeat = self.plan.heartbeat_s;
        cfg.modules.device_twin.enable = self.plan.devices.is_some();
        cfg
    }

    /// This start's virtual mapper, and DeviceTwin's ends of its bus.
    fn mapper(&self, generation: u64) -> Option<(ke_edge::eventbus::BusEnds, MapperSetup)> {
        let d = self.plan.devices.as_ref()?;
        let (bus, ends) = bus_pair();
        let setup = MapperSetup {
            node: self.index,
            name: self.name.clone(),
            ends,
            book: d.book.clone(),
            clock: Arc::new(SystemClock),
            seed: u64::from(self.index) ^ generation.wrapping_mul(0x9e37_79b9_7f4a_7c15),
            period: d.period,
            sensors: d.sensors.clone(),
            actuators: d.actuators.clone(),
        };
        Some((bus, setup))
    }

    /// Runs the node until the process ends: start, cut, start again.
    pub(crate) async fn run(self) {
        let mut generation = 0u64;
        loop {
            self.ctl.until_cut(false).await;
            let clock: Arc<dyn Clock> = Arc::new(SystemClock);
            let deps = Deps {
                transport: BoundTransport {
                    source: self.source,
                },
                clock,
                entropy: Entropy::from_os(),
            };
            let runtime = SimRuntime::new(SimConfig::default());
            let (status, lease) = (self.plan.status_period, self.plan.lease_period);
            let core = match EdgeCore::with_store(self.config(), deps, runtime, self.store.clone())
            {
                Ok(c) => c.with_node_config(|n| {
                    n.status_update_period = status;
                    n.lease_renew_period = lease;
                }),
                Err(e) => {
                    tracing::error!(node = %self.name, error = %e, "edgecore did not start");
                    return;
                }
            };
            generation += 1;
            let (core, mapper) = match self.mapper(generation) {
                Some((bus, setup)) => {
                    let core = core.with_bus(bus);
                    if let Some(d) = &self.plan.devices {
                        d.book
                            .node_started(self.index, core.handle().twin_metrics());
                    }
                    (core, Some(simulator::mapper::run(setup)))
                }
                None => (core, None),
            };
            let mapper = async move {
                match mapper {
                    Some(m) => m.await,
                    None => std::future::pending().await,
                }
            };
            let cloud = core.handle().cloud();
            tokio::select! {
                biased;
                () = self.ctl.until_cut(true) => {
                    tracing::debug!(node = %self.name, "cut");
                }
                r = core.run(std::future::pending()) => {
                    let e = r.err().map(|e| e.to_string()).unwrap_or_default();
                    tracing::warn!(node = %self.name, error = %e, "edgecore stopped; restarting in 5 s");
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
                () = follow(&self.ctl, cloud) => {}
                () = mapper => {}
            }
            self.ctl.connected.store(false, Ordering::Relaxed);
        }
    }
}

/// Mirrors the session state into `ctl` (never returns).
async fn follow(ctl: &Ctl, mut cloud: tokio::sync::watch::Receiver<ke_edge::edgehub::CloudState>) {
    loop {
        let up = cloud.borrow_and_update().is_connected();
        if up && !ctl.connected.swap(true, Ordering::Relaxed) {
            ctl.connects.fetch_add(1, Ordering::Relaxed);
        } else if !up {
            ctl.connected.store(false, Ordering::Relaxed);
        }
        if cloud.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
