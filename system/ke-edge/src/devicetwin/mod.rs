//! DeviceTwin: the edge's device state (KubeEdge's `devicetwin` module), between the cloud,
//! the node's MetaStore and the mappers on the bus.
//!
//! ```text
//!  cloud ── Device objects ──► MetaManager (stores, ACKs) ── device writes ──┐
//!  cloud ── membership, report replies ──► router ───────────────────────────┤
//!                                                                            ▼
//!  mappers ◄── result/delta/document ── EventBus ◄──────────────────────► DeviceTwin
//!  mappers ── twin/update, state/update, twin/get ──► EventBus ──────────►   │ (SQLite:
//!                                                                            │ device, device_twin,
//!  cloud ◄── edge_updated / state reports, one at a time, in order ◄────────┘ twin_outbox)
//! ```
//!
//! Reports to the cloud are durable: each is committed to `twin_outbox` in the transaction
//! that made the change, and sent oldest first, one at a time, while the cloud is connected.
//! The next goes only after the cloud's `"OK"` (a `response` whose `parent_msg_id` is the
//! report's id); an `error` reply retries after [`DeviceTwinConfig::retry_after_error`], no
//! answer within [`DeviceTwinConfig::resend_after`] resends it, a reconnect starts again from
//! the oldest. So values reported while the node is offline reach the cloud after reconnect,
//! in order, none lost, and a value is never overtaken by an older one. When
//! [`DeviceTwinConfig::outbox_max`] reports wait, further mapper updates are refused (503 on
//! the result topic) and change nothing.
//!
//! Desired values come in the Device object (`spec.properties[].desired`), which CloudHub
//! delivers reliably and the incremental resync repairs after a reconnect; a `membership`
//! message (KubeEdge's cloud sends one when a device joins or leaves the node) only creates a
//! device row the object has not created yet. At start the tables are reconciled with the
//! Device objects in the MetaStore, so a crash between the two loses nothing.
//!
//! - `store` (public): the tables.
//! - `logic` (public): what each input changes and publishes.

pub mod logic;
pub mod store;

use std::{
    fmt::Write as _,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use ke_core::Clock;
use ke_proto::{
    Content, Group, Message, MsgIdSource, Operation, ResourceType, Route, Source,
    twin::{self, MembershipUpdate, Topic},
};
use serde_json::Value;
use tokio::{
    sync::{mpsc, watch},
    time::Instant,
};
use tracing::{debug, info, warn};

use self::{
    logic::{Ctx, Refused},
    store::{StoreError, TwinStore},
};
use crate::{
    edgehub::CloudState,
    eventbus::{BUS_PAYLOAD_MAX, BusEnds, BusMessage},
    metamanager::MetaStore,
};

/// DeviceTwin's settings.
#[derive(Debug, Clone)]
pub struct DeviceTwinConfig {
    /// Reports that may wait for the cloud before mapper updates are refused.
    pub outbox_max: usize,
    /// A report not answered within this is sent again.
    pub resend_after: Duration,
    /// Delay before resending a report the cloud refused.
    pub retry_after_error: Duration,
}

impl Default for DeviceTwinConfig {
    /// 10,000 reports, resend after 10 s, retry after an error in 2 s.
    fn default() -> Self {
        Self {
            outbox_max: 10_000,
            resend_after: Duration::from_secs(10),
            retry_after_error: Duration::from_secs(2),
        }
    }
}

/// Why DeviceTwin stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Its tables could not be created or read at start.
    #[error("device twin store failed")]
    Store(#[from] StoreError),
    /// The upstream channel closed (EdgeHub is gone).
    #[error("the upstream channel closed")]
    UpstreamClosed,
}

/// DeviceTwin's counters.
#[derive(Debug, Default)]
pub struct TwinMetrics {
    /// Mapper requests handled (twin/state updates and gets).
    pub requests: AtomicU64,
    /// Mapper requests refused with an error result.
    pub refused: AtomicU64,
    /// Reports sent to the cloud (resends included).
    pub reports_sent: AtomicU64,
    /// Reports the cloud confirmed.
    pub reports_confirmed: AtomicU64,
    /// Publications handed to the bus.
    pub published: AtomicU64,
    /// Publications dropped because the bus was full or absent.
    pub publish_dropped: AtomicU64,
    /// Reports waiting (gauge).
    pub outbox: AtomicU64,
}

impl TwinMetrics {
    fn inc(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters in the Prometheus text format (`edgecore_twin_*`).
    pub fn to_prometheus(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let rows = [
            (
                "requests_total",
                "counter",
                "Mapper requests handled.",
                get(&self.requests),
            ),
            (
                "refused_total",
                "counter",
                "Mapper requests refused with an error result.",
                get(&self.refused),
            ),
            (
                "reports_sent_total",
                "counter",
                "Twin and state reports sent to the cloud, resends included.",
                get(&self.reports_sent),
            ),
            (
                "reports_confirmed_total",
                "counter",
                "Reports the cloud confirmed.",
                get(&self.reports_confirmed),
            ),
            (
                "published_total",
                "counter",
                "Publications handed to the event bus.",
                get(&self.published),
            ),
            (
                "publish_dropped_total",
                "counter",
                "Publications dropped: the event bus was full or absent.",
                get(&self.publish_dropped),
            ),
            (
                "outbox",
                "gauge",
                "Reports waiting for the cloud.",
                get(&self.outbox),
            ),
        ];
        let mut out = String::new();
        for (name, kind, help, v) in rows {
            let _ = writeln!(
                out,
                "# HELP edgecore_twin_{name} {help}\n# TYPE edgecore_twin_{name} {kind}\nedgecore_twin_{name} {v}"
            );
        }
        out
    }
}

/// What DeviceTwin reads.
#[derive(Debug)]
pub struct TwinInputs {
    /// The cloud connection state.
    pub cloud: watch::Receiver<CloudState>,
    /// Group `twin` messages and replies to reports, from the router.
    pub from_cloud: mpsc::Receiver<Message>,
    /// Device and DeviceModel writes MetaManager committed.
    pub devices: mpsc::Receiver<Message>,
    /// The bus, if EventBus runs.
    pub bus: Option<BusEnds>,
}

/// The report in flight.
#[derive(Debug, Clone)]
struct InFlight {
    seq: i64,
    msg_id: String,
    deadline: Instant,
}

/// The DeviceTwin task.
pub struct DeviceTwin {
    store: TwinStore,
    meta: MetaStore,
    node: String,
    clock: Arc<dyn Clock>,
    ids: Box<dyn MsgIdSource + Send>,
    cfg: DeviceTwinConfig,
    metrics: Arc<TwinMetrics>,
    /// Reports in the outbox, counted as committed transactions add and confirmations
    /// remove them (read from the table at start): checking the bound and the gauge no
    /// longer query the table twice per report.
    outbox_len: usize,
}

impl std::fmt::Debug for DeviceTwin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceTwin")
            .field("node", &self.node)
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

/// The sending side's state.
#[derive(Debug, Default)]
struct Outbox {
    connected: bool,
    inflight: Option<InFlight>,
    retry_at: Option<Instant>,
}

impl Outbox {
    fn deadline(&self) -> Option<Instant> {
        self.inflight.as_ref().map(|f| f.deadline).or(self.retry_at)
    }
}

impl DeviceTwin {
    /// DeviceTwin for `node` over the MetaStore's database (creates its tables).
    pub fn new(
        meta: MetaStore,
        node: impl Into<String>,
        clock: Arc<dyn Clock>,
        ids: Box<dyn MsgIdSource + Send>,
        cfg: DeviceTwinConfig,
    ) -> Result<Self, Error> {
        let store = TwinStore::open(meta.clone())?;
        let outbox_len = store.read(store::outbox_len)?;
        Ok(Self {
            store,
            meta,
            node: node.into(),
            clock,
            ids,
            cfg,
            metrics: Arc::default(),
            outbox_len,
        })
    }

    /// Uses `metrics` for the counters (shared with the daemon's handle).
    #[must_use]
    pub fn with_metrics(mut self, metrics: Arc<TwinMetrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// The twin tables.
    pub fn store(&self) -> &TwinStore {
        &self.store
    }

    /// Runs until `shutdown` resolves. Fails if the upstream channel closes.
    pub async fn run(
        mut self,
        mut inputs: TwinInputs,
        upstream: mpsc::Sender<Message>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), Error> {
        self.reconcile(inputs.bus.as_ref())?;
        self.refresh_outbox_gauge();
        let mut out = Outbox {
            connected: inputs.cloud.borrow().is_connected(),
            ..Outbox::default()
        };
        let (mut bus_in, bus_out) = match inputs.bus {
            Some(b) => (Some(b.incoming), Some(b.outgoing)),
            None => (None, None),
        };
        tokio::pin!(shutdown);
        let mut cloud_open = true;
        loop {
            self.pump(&mut out, &upstream).await?;
            let deadline = out.deadline();
            tokio::select! {
                biased;
                () = &mut shutdown => return Ok(()),
                changed = inputs.cloud.changed(), if cloud_open => {
                    if changed.is_err() {
                        cloud_open = false;
                        continue;
                    }
                    out.connected = inputs.cloud.borrow_and_update().is_connected();
                    out.inflight = None;
                    out.retry_at = None;
                }
                Some(msg) = inputs.from_cloud.recv() => self.on_cloud(&msg, &mut out, bus_out.as_ref()),
                Some(msg) = inputs.devices.recv() => self.device_write(&msg, bus_out.as_ref()),
                Some(msg) = recv(&mut bus_in) => self.on_bus(&msg, bus_out.as_ref()),
                () = sleep_until(deadline), if deadline.is_some() => {
                    if out.inflight.take().is_some() {
                        debug!("report unanswered; sending it again");
                    }
                    out.retry_at = None;
                }
            }
        }
    }

    fn ctx_parts(&self) -> (i64, String) {
        (self.clock.now_millis(), self.clock.now_rfc3339())
    }

    /// Runs `f` with a [`Ctx`] in one transaction; publishes what it returns if it committed.
    fn change<T>(
        &mut self,
        bus: Option<&mpsc::Sender<BusMessage>>,
        f: impl FnOnce(&rusqlite::Connection, &mut Ctx<'_>) -> Result<T, Refused>,
        publications: impl FnOnce(T) -> Vec<BusMessage>,
    ) -> Result<(), Refused> {
        let (now_ms, now_rfc3339) = self.ctx_parts();
        let ids = &mut self.ids;
        let mut next_id = || ids.next_msg_id();
        let mut ctx = Ctx {
            node: &self.node,
            now_ms,
            now_rfc3339,
            ids: &mut next_id,
            outbox_max: self.cfg.outbox_max,
            outbox_len: self.outbox_len,
            queued: 0,
        };
        let got = self.store.write(|tx| f(tx, &mut ctx))?;
        self.outbox_len += ctx.queued;
        self.refresh_outbox_gauge();
        for msg in publications(got) {
            self.publish(bus, msg);
        }
        Ok(())
    }

    fn refresh_outbox_gauge(&self) {
        let n = u64::try_from(self.outbox_len).unwrap_or(u64::MAX);
        self.metrics.outbox.store(n, Ordering::Relaxed);
    }

    fn publish(&self, bus: Option<&mpsc::Sender<BusMessage>>, msg: BusMessage) {
        match bus.map(|b| b.try_send(msg)) {
            Some(Ok(())) => TwinMetrics::inc(&self.metrics.published),
            _ => TwinMetrics::inc(&self.metrics.publish_dropped),
        }
    }

    /// Makes the tables match the Device objects in the MetaStore.
    fn reconcile(&mut self, bus: Option<&BusEnds>) -> Result<(), Error> {
        let objects = self
            .meta
            .list(None, &ResourceType::Device)
            .map_err(|e| {
                warn!(error = %e, "cannot list devices; starting from the twin tables");
            })
            .unwrap_or_default();
        let known = self.store.read(store::devices)?;
        let bus = bus.map(|b| &b.outgoing);
        let mut live = std::collections::BTreeSet::new();
        for obj in &objects {
            if let Some((ns, name)) = logic::device_key(obj) {
                live.insert(format!("{ns}/{name}"));
            }
            let r = self.change(bus, |tx, ctx| Ok(logic::sync_device(tx, obj, ctx)?), |p| p);
            if let Err(e) = r {
                warn!(error = %e, "cannot sync a stored device");
            }
        }
        for id in known.keys().filter(|id| !live.contains(*id)) {
            let r = self.change(bus, |tx, ctx| Ok(logic::remove_device(tx, id, ctx)?), |p| p);
            if let Err(e) = r {
                warn!(error = %e, %id, "cannot remove a stale device");
            }
        }
        info!(devices = live.len(), "device twins ready");
        Ok(())
    }

    /// A Device write MetaManager committed.
    fn device_write(&mut self, msg: &Message, bus: Option<&mpsc::Sender<BusMessage>>) {
        if msg.resource_type() != Some(ResourceType::Device) {
            return;
        }
        let r = if msg.route.operation == Operation::Delete {
            let path = msg.resource_path();
            let (Some(ns), Some(name)) = (path.namespace(), path.name()) else {
                return;
            };
            let id = format!("{ns}/{name}");
            self.change(
                bus,
                |tx, ctx| Ok(logic::remove_device(tx, &id, ctx)?),
                |p| p,
            )
        } else {
            let obj = msg.content.value().clone();
            self.change(bus, |tx, ctx| Ok(logic::sync_device(tx, &obj, ctx)?), |p| p)
        };
        if let Err(e) = r {
            warn!(error = %e, resource = %msg.route.resource, "device twin update failed");
        }
    }

    /// A publication from a mapper.
    fn on_bus(&mut self, msg: &BusMessage, bus: Option<&mpsc::Sender<BusMessage>>) {
        TwinMetrics::inc(&self.metrics.requests);
        let Some(topic) = Topic::parse(&msg.topic) else {
            debug!(topic = %msg.topic, "not a device request; ignored");
            return;
        };
        let (result_topic, r) = match topic {
            Topic::Device {
                namespace,
                name,
                request,
            } => {
                let topic = twin::device_topic(&namespace, &name, request.result_suffix());
                let r = if msg.payload.len() > BUS_PAYLOAD_MAX {
                    Err(Refused {
                        code: 400,
                        reason: format!("payload over {BUS_PAYLOAD_MAX} bytes"),
                    })
                } else {
                    let req = (namespace.as_str(), name.as_str(), request);
                    self.change(
                        bus,
                        |tx, ctx| logic::device_request(tx, req, &msg.payload, ctx),
                        |p| p,
                    )
                };
                (topic, r)
            }
            Topic::MembershipGet { node } if node == self.node => {
                let topic = twin::node_topic(&node, "membership/get/result");
                let r = self.change(
                    bus,
                    |tx, ctx| Ok(logic::membership_get(tx, &msg.payload, ctx)?),
                    |p| vec![p],
                );
                (topic, r)
            }
            Topic::MembershipGet { node } => {
                debug!(%node, "membership request for another node; ignored");
                return;
            }
        };
        if let Err(refused) = r {
            TwinMetrics::inc(&self.metrics.refused);
            debug!(topic = %msg.topic, error = %refused, "mapper request refused");
            let err = logic::error_result(
                result_topic,
                twin::event_id_of(&msg.payload),
                self.clock.now_millis(),
                &refused,
            );
            self.publish(bus, err);
        }
    }

    /// A message from the cloud: a reply to the report in flight, or a membership change.
    fn on_cloud(
        &mut self,
        msg: &Message,
        out: &mut Outbox,
        bus: Option<&mpsc::Sender<BusMessage>>,
    ) {
        if msg.is_reply() {
            let Some(f) = out
                .inflight
                .clone()
                .filter(|f| f.msg_id == msg.header.parent_id)
            else {
                debug!(parent = %msg.header.parent_id, "reply to no report in flight; ignored");
                return;
            };
            out.inflight = None;
            if msg.route.operation == Operation::Response && msg.content.is_ok_text() {
                let r = self
                    .store
                    .write::<_, StoreError>(|tx| store::remove_report(tx, f.seq));
                match r {
                    Ok(()) => self.outbox_len = self.outbox_len.saturating_sub(1),
                    Err(e) => {
                        warn!(error = %e, "cannot remove a confirmed report; it will be sent again");
                    }
                }
                TwinMetrics::inc(&self.metrics.reports_confirmed);
                self.refresh_outbox_gauge();
            } else {
                warn!(reply = %msg.content.value(), "the cloud refused a device report; retrying");
                out.retry_at = Some(Instant::now() + self.cfg.retry_after_error);
            }
            return;
        }
        let res = msg.route.resource.as_str();
        if res == "membership" || res.ends_with("/membership") {
            self.membership(msg, bus);
        }
    }

    /// KubeEdge's membership message: devices it adds get a row if their object has not
    /// arrived yet; devices it removes go if no object holds them.
    fn membership(&mut self, msg: &Message, bus: Option<&mpsc::Sender<BusMessage>>) {
        let update: MembershipUpdate = match content_json(msg) {
            Some(u) => u,
            None => {
                warn!(msg_id = %msg.header.id, "malformed membership message; ignored");
                return;
            }
        };
        let meta = self.meta.clone();
        let r = self.change(
            bus,
            |tx, ctx| {
                let mut out = Vec::new();
                for d in update.added_devices.unwrap_or_default() {
                    if store::device(tx, &d.id)?.is_none() && !d.id.is_empty() {
                        let row = store::DeviceRow {
                            id: d.id.clone(),
                            name: d.name.clone(),
                            description: d.description.clone(),
                            ..store::DeviceRow::default()
                        };
                        store::put_device(tx, &row)?;
                    }
                }
                for d in update.removed_devices.unwrap_or_default() {
                    let (ns, name) = d.id.split_once('/').unwrap_or(("", &d.id));
                    let held = meta.get(ns, &ResourceType::Device, name).ok().flatten();
                    if held.is_none() {
                        out.extend(logic::remove_device(tx, &d.id, ctx)?);
                    }
                }
                Ok(out)
            },
            |p| p,
        );
        if let Err(e) = r {
            warn!(error = %e, "membership update failed");
        }
    }

    /// Sends the oldest report if the cloud is there and nothing is in flight.
    async fn pump(
        &mut self,
        out: &mut Outbox,
        upstream: &mpsc::Sender<Message>,
    ) -> Result<(), Error> {
        let now = Instant::now();
        if !out.connected || out.inflight.is_some() || out.retry_at.is_some_and(|t| t > now) {
            return Ok(());
        }
        out.retry_at = None;
        let Some(report) = self.store.read(store::first_report)? else {
            return Ok(());
        };
        let content: Value = serde_json::from_str(&report.content).unwrap_or(Value::Null);
        let route = Route::new(
            Source::Twin,
            Group::Resource,
            Operation::Update,
            report.resource,
        );
        let msg_id = self.ids.next_msg_id();
        let msg = Message::new(
            msg_id.clone(),
            self.clock.now_millis(),
            route,
            Content::new(content),
        );
        upstream
            .send(msg)
            .await
            .map_err(|_| Error::UpstreamClosed)?;
        TwinMetrics::inc(&self.metrics.reports_sent);
        out.inflight = Some(InFlight {
            seq: report.seq,
            msg_id,
            deadline: now + self.cfg.resend_after,
        });
        Ok(())
    }
}

/// The content as `T`, whether sent as a JSON object or a JSON string holding one.
fn content_json<T: serde::de::DeserializeOwned>(msg: &Message) -> Option<T> {
    match msg.content.value() {
        Value::String(s) => serde_json::from_str(s).ok(),
        v => serde_json::from_value(v.clone()).ok(),
    }
}

async fn recv(rx: &mut Option<mpsc::Receiver<BusMessage>>) -> Option<BusMessage> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    if let Some(d) = deadline {
        tokio::time::sleep_until(d).await;
    }
}
