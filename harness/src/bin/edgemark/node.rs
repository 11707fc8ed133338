//! One edgemark node: a real [`EdgeCore`] (EdgeHub over real TLS sockets, MetaManager on its
//! own in-memory SQLite, edged on the `sim` runtime) that joins with the token, plus a cut
//! switch: a cut node drops its EdgeCore (its connection closes, as when the edge machine
//! loses power or its link) and starts it again, with the same store and certificates, when
//! the cut ends.

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
use ke_edge::{
    config::EdgeCoreConfig,
    daemon::{Deps, EdgeCore},
    edged::{SimConfig, SimRuntime},
    metamanager::{MetaStore, Observed},
};
use ke_net::BoundTransport;
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
        cfg
    }

    /// Runs the node until the process ends: start, cut, start again.
    pub(crate) async fn run(self) {
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
