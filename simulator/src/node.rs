//! One virtual edge node: a real [`EdgeCore`] (EdgeHub, MetaManager on its own in-memory
//! SQLite, edged on the `sim` runtime) supervised on a site host, plus the per-node fault
//! switch turmoil lacks (its faults act on whole hosts).
//!
//! - **Cut** ([`NodeCtl::set_cut`]): connects hang until their timeout; every connection that
//!   was open when the cut began is dead for good (reads never complete, writes vanish), as
//!   a turmoil partition leaves a stream (its TCP has no retransmit). A dead connection
//!   dropped during the cut is kept until the cut ends, so the cloud sees no FIN through a
//!   cut.
//! - **Crash** ([`NodeCtl::crash`]): the node's future is dropped (sockets close, pods
//!   vanish with their runtime) and started again after the down time with the same
//!   database and certificate files.

use std::{
    io,
    net::SocketAddr,
    path::PathBuf,
    pin::Pin,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use ke_core::{Entropy, Seed};
use ke_edge::{
    config::EdgeCoreConfig,
    daemon::{Deps, EdgeCore},
    edged::{SimConfig, SimRuntime},
    metamanager::MetaStore,
};
use ke_net::{Listener, Transport, TurmoilTransport, sim::TurmoilListener};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use turmoil::net::TcpStream;

use ke_edge::eventbus::{BusEnds, bus_pair};

use crate::{fleet::Shared, mapper::MapperSetup, trace::Trace};

/// Per-node fault switches and counters, shared with the run loop.
#[derive(Debug, Default)]
pub struct NodeCtl {
    cut: AtomicBool,
    /// Incremented when a cut begins; a stream born in an older epoch is dead.
    epoch: AtomicU64,
    /// Crash requested: the down time in ms (0: none).
    crash_ms: AtomicU64,
    wake: tokio::sync::Notify,
    graveyard: Mutex<Vec<TcpStream>>,
    /// Whether EdgeHub has a session now.
    pub connected: AtomicBool,
    /// Segment loss on the node's link, in parts per million (see [`NodeStream`]).
    loss_ppm: AtomicU64,
    /// Draws for the loss model (seeded per node).
    rng: Mutex<Option<ChaCha8Rng>>,
}

/// The retransmission stall a lost segment costs (Linux's initial RTO).
pub const RTO: Duration = Duration::from_secs(1);

impl NodeCtl {
    /// Sets the link's segment loss (0..=1), its draws seeded by `seed`.
    pub fn set_loss(&self, loss: f64, seed: u64) {
        let ppm = (loss.clamp(0.0, 1.0) * 1e6).round() as u64;
        self.loss_ppm.store(ppm, Ordering::Relaxed);
        *self.rng.lock().unwrap_or_else(PoisonError::into_inner) =
            Some(ChaCha8Rng::seed_from_u64(seed));
    }

    /// Whether the next segment is lost (and must be retransmitted).
    fn lose(&self) -> bool {
        let ppm = self.loss_ppm.load(Ordering::Relaxed);
        if ppm == 0 {
            return false;
        }
        let mut g = self.rng.lock().unwrap_or_else(PoisonError::into_inner);
        g.as_mut()
            .is_some_and(|r| r.random_range(0..1_000_000) < ppm)
    }

    /// Starts or ends a cut.
    pub fn set_cut(&self, cut: bool) {
        if cut {
            self.epoch.fetch_add(1, Ordering::Relaxed);
        }
        self.cut.store(cut, Ordering::Relaxed);
        if !cut {
            self.graveyard
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clear();
        }
    }

    /// Crashes the node; it restarts after `down`.
    pub fn crash(&self, down: Duration) {
        let ms = u64::try_from(down.as_millis()).unwrap_or(u64::MAX).max(1);
        self.crash_ms.store(ms, Ordering::Relaxed);
        self.wake.notify_one();
    }

    async fn crashed(&self) -> Duration {
        loop {
            let ms = self.crash_ms.swap(0, Ordering::Relaxed);
            if ms > 0 {
                return Duration::from_millis(ms);
            }
            self.wake.notified().await;
        }
    }
}

/// Fleet-wide wire counters (bytes through every node's sockets, TLS included).
#[derive(Debug, Default)]
pub struct Wire {
    /// Bytes the nodes received.
    pub down: AtomicU64,
    /// Bytes the nodes sent.
    pub up: AtomicU64,
}

/// turmoil sockets behind one node's fault switch.
#[derive(Debug, Clone)]
pub struct NodeTransport {
    ctl: Arc<NodeCtl>,
    wire: Arc<Wire>,
}

/// How long a connect attempt through a cut hangs before it fails.
const CUT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

impl Transport for NodeTransport {
    type Listener = NodeListener;
    type Conn = NodeStream;

    async fn bind(&self, addr: SocketAddr) -> io::Result<Self::Listener> {
        let inner = TurmoilTransport.bind(addr).await?;
        Ok(NodeListener {
            inner,
            transport: self.clone(),
        })
    }

    async fn connect(&self, addr: SocketAddr) -> io::Result<Self::Conn> {
        if self.ctl.cut.load(Ordering::Relaxed) {
            tokio::time::sleep(CUT_CONNECT_TIMEOUT).await;
            return Err(io::Error::new(io::ErrorKind::TimedOut, "site link cut"));
        }
        let s = TurmoilTransport.connect(addr).await?;
        Ok(self.wrap(s))
    }
}

impl NodeTransport {
    fn wrap(&self, s: TcpStream) -> NodeStream {
        NodeStream {
            inner: Some(s),
            ctl: self.ctl.clone(),
            wire: self.wire.clone(),
            epoch: self.ctl.epoch.load(Ordering::Relaxed),
            read_stall: None,
            write_stall: None,
            held: Vec::new(),
        }
    }
}

/// A listener whose connections go through the node's switch (unused by edge nodes, which
/// only dial; required by [`Transport`]).
#[derive(Debug)]
pub struct NodeListener {
    inner: TurmoilListener,
    transport: NodeTransport,
}

impl Listener for NodeListener {
    type Conn = NodeStream;

    async fn accept(&mut self) -> io::Result<(Self::Conn, SocketAddr)> {
        let (s, a) = self.inner.accept().await?;
        Ok((self.transport.wrap(s), a))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// A turmoil stream that dies when its node is cut, and models segment loss on a lossy link
/// as TCP does: a lost segment is retransmitted after [`RTO`], holding back everything
/// behind it (turmoil's own loss would kill the stream, as its TCP never retransmits).
#[derive(Debug)]
pub struct NodeStream {
    inner: Option<TcpStream>,
    ctl: Arc<NodeCtl>,
    wire: Arc<Wire>,
    epoch: u64,
    read_stall: Option<Pin<Box<tokio::time::Sleep>>>,
    write_stall: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Bytes read with a lost segment, released when its stall ends.
    held: Vec<u8>,
}

/// Waits out a pending stall, or starts one when the next segment is lost. Ready when the
/// segment may pass.
fn stall(
    slot: &mut Option<Pin<Box<tokio::time::Sleep>>>,
    ctl: &NodeCtl,
    cx: &mut Context<'_>,
) -> Poll<()> {
    if slot.is_none() && ctl.lose() {
        *slot = Some(Box::pin(tokio::time::sleep(RTO)));
    }
    if let Some(s) = slot.as_mut() {
        if s.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        *slot = None;
    }
    Poll::Ready(())
}

impl NodeStream {
    fn dead(&self) -> bool {
        self.ctl.epoch.load(Ordering::Relaxed) != self.epoch
    }
}

impl Drop for NodeStream {
    fn drop(&mut self) {
        if self.dead()
            && self.ctl.cut.load(Ordering::Relaxed)
            && let Some(s) = self.inner.take()
        {
            self.ctl
                .graveyard
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(s);
        }
    }
}

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "stream taken")
}

impl AsyncRead for NodeStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.dead() {
            return Poll::Pending;
        }
        let this = &mut *self;
        // Data that arrived with a lost segment waits out the retransmission.
        if let Some(st) = this.read_stall.as_mut() {
            if st.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            this.read_stall = None;
        }
        if !this.held.is_empty() {
            let n = this.held.len().min(buf.remaining());
            buf.put_slice(&this.held[..n]);
            this.held.drain(..n);
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let Some(s) = this.inner.as_mut() else {
            return Poll::Ready(Err(gone()));
        };
        let r = Pin::new(s).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        this.wire.down.fetch_add(n as u64, Ordering::Relaxed);
        if n > 0 && this.ctl.lose() {
            this.held.extend_from_slice(&buf.filled()[before..]);
            buf.set_filled(before);
            this.read_stall = Some(Box::pin(tokio::time::sleep(RTO)));
            return self.poll_read(cx, buf);
        }
        r
    }
}

impl AsyncWrite for NodeStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.dead() {
            return Poll::Ready(Ok(buf.len()));
        }
        let this = &mut *self;
        if stall(&mut this.write_stall, &this.ctl, cx).is_pending() {
            return Poll::Pending;
        }
        let Some(s) = self.inner.as_mut() else {
            return Poll::Ready(Err(gone()));
        };
        let r = Pin::new(s).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &r {
            self.wire.up.fetch_add(*n as u64, Ordering::Relaxed);
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.dead() {
            return Poll::Ready(Ok(()));
        }
        match self.inner.as_mut() {
            Some(s) => Pin::new(s).poll_flush(cx),
            None => Poll::Ready(Err(gone())),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.dead() {
            return Poll::Ready(Ok(()));
        }
        match self.inner.as_mut() {
            Some(s) => Pin::new(s).poll_shutdown(cx),
            None => Poll::Ready(Err(gone())),
        }
    }
}

/// Everything one virtual node needs to (re)start.
pub struct VirtualNode {
    /// Index in the fleet.
    pub index: u32,
    /// Node name.
    pub name: String,
    /// Certificates and edged's root.
    pub dir: PathBuf,
    /// Its switch.
    pub ctl: Arc<NodeCtl>,
    /// The run's shared state.
    pub shared: Arc<Shared>,
    /// Delay before the first start.
    pub start_after: Duration,
}

impl VirtualNode {
    fn config(&self, cloud: &str, token: &str) -> EdgeCoreConfig {
        let mut cfg = EdgeCoreConfig::virtual_node(
            &self.dir,
            &self.name,
            format!("{cloud}:10000"),
            format!("https://{cloud}:10002"),
            token,
        );
        cfg.modules.edge_hub.heartbeat = self.shared.scenario.edge.heartbeat_s;
        // Devices: DeviceTwin runs on the in-memory bus (`with_bus`); EventBus stays off (its
        // MQTT client would open real sockets).
        cfg.modules.device_twin.enable = self.shared.scenario.has_devices();
        cfg
    }

    /// The node's virtual mapper for this start, and DeviceTwin's ends of its bus.
    fn mapper(&self, generation: u64) -> Option<(BusEnds, MapperSetup)> {
        let sc = &self.shared.scenario;
        if !sc.has_devices() {
            return None;
        }
        let (bus, ends) = bus_pair();
        let seed = self.shared.seed
            ^ u64::from(self.index).wrapping_mul(0x9e37_79b9_7f4a_7c15)
            ^ generation.wrapping_mul(0xd1b5_4a32_d192_ed03);
        let setup = MapperSetup {
            node: self.index,
            name: self.name.clone(),
            ends,
            book: self.shared.devices.clone(),
            clock: self.shared.clock(),
            seed,
            period: Duration::from_secs(sc.edge.twin_report_period_s),
            sensors: sc.edge.device_sensors.clone(),
            actuators: sc.edge.device_actuators.clone(),
        };
        Some((bus, setup))
    }

    /// Runs the node for the rest of the simulation: start, crash, restart.
    pub async fn run(self) {
        tokio::time::sleep(self.start_after).await;
        let store = match MetaStore::open_in_memory() {
            Ok(s) => s.with_observer(self.observer()),
            Err(e) => {
                tracing::error!(node = %self.name, error = %e, "cannot open the store");
                return;
            }
        };
        self.shared.register_store(self.index, store.clone());
        let mut generation = 0u64;
        loop {
            let token = self.shared.join_token().await;
            let cloud = turmoil::lookup(crate::fleet::CLOUD).to_string();
            let core = self.core(&cloud, &token, store.clone(), generation);
            generation += 1;
            let core = match core {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(node = %self.name, error = %e, "edgecore did not start");
                    return;
                }
            };
            let (core, mapper) = match self.mapper(generation - 1) {
                Some((bus, setup)) => {
                    let core = core.with_bus(bus);
                    let twin = core.handle().twin_metrics();
                    self.shared.devices.node_started(self.index, twin);
                    (core, Some(crate::mapper::run(setup)))
                }
                None => (core, None),
            };
            let mapper = async move {
                match mapper {
                    Some(m) => m.await,
                    None => std::future::pending().await,
                }
            };
            let watch = self.watch_session(core.handle().cloud());
            tokio::select! {
                biased;
                down = self.ctl.crashed() => {
                    self.ctl.connected.store(false, Ordering::Relaxed);
                    self.shared.trace.event(format_args!("{} crashed", self.name));
                    tokio::time::sleep(down).await;
                    self.shared.trace.event(format_args!("{} restarts", self.name));
                }
                r = core.run(std::future::pending()) => {
                    let e = r.err().map(|e| e.to_string()).unwrap_or_default();
                    self.shared.trace.event(format_args!("{} stopped: {e}", self.name));
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
                () = watch => {}
                () = mapper => {}
            }
        }
    }

    fn core(
        &self,
        cloud: &str,
        token: &str,
        store: MetaStore,
        generation: u64,
    ) -> Result<EdgeCore<NodeTransport, SimRuntime>, ke_edge::daemon::Error> {
        let deps = Deps {
            transport: NodeTransport {
                ctl: self.ctl.clone(),
                wire: self.shared.wire.clone(),
            },
            clock: self.shared.clock(),
            entropy: Entropy::seeded(
                Seed(self.shared.seed),
                &format!("{}/{generation}", self.name),
            ),
        };
        let cfg = self.config(cloud, token);
        let edge = &self.shared.scenario.edge;
        let (status, lease) = (edge.status_update_period_s, edge.lease_renew_period_s);
        Ok(
            EdgeCore::with_store(cfg, deps, SimRuntime::new(SimConfig::default()), store)?
                .with_node_config(|n| {
                    n.status_update_period = Duration::from_secs(status);
                    n.lease_renew_period = Duration::from_secs(lease);
                }),
        )
    }

    fn observer(&self) -> ke_edge::metamanager::Observer {
        let (index, name, trace) = (self.index, self.name.clone(), self.shared.trace.clone());
        Arc::new(move |o| trace.observe(index, &name, o))
    }

    /// Follows the node's session state (never returns).
    async fn watch_session(
        &self,
        mut cloud: tokio::sync::watch::Receiver<ke_edge::edgehub::CloudState>,
    ) {
        let trace: &Trace = &self.shared.trace;
        let mut lost: Option<Duration> = None;
        loop {
            let up = cloud.borrow_and_update().is_connected();
            let was = self.ctl.connected.swap(up, Ordering::Relaxed);
            let t = turmoil::sim_elapsed().unwrap_or_default();
            if up && !was {
                if let Some(l) = lost.take() {
                    trace.reconnected(l);
                }
                trace.event(format_args!("{} connected", self.name));
            } else if !up && was {
                lost = Some(t);
                trace.event(format_args!("{} disconnected", self.name));
            }
            if cloud.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}
