//! The virtual mapper of one node: the simulator's stand-in for `system/mapper` (which talks
//! MQTT), on the node's in-memory bus (the adapter ends of `ke_edge::eventbus::bus_pair`),
//! with the same topics and payloads.
//!
//! - At start it asks DeviceTwin for the node's devices (`membership/get`) and follows
//!   `membership/updated`.
//! - Every `edge.twin_report_period_s` (each device at a seeded offset, plus up to 100 ms of
//!   seeded jitter) it publishes one `twin/update` per device with every property's actual
//!   value: sensors get a seeded reading, actuators their current value.
//! - A `twin/update/delta` sets each actuator it names and reports them at once.
//! - `twin/update/result` tells it whether DeviceTwin accepted a report (see
//!   [`crate::devices`]).
//!
//! Deterministic: tokio time only, one seeded ChaCha8 stream per node and start, no
//! threads. It keeps reporting while the node is cut off (DeviceTwin queues the reports).

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use ke_core::Clock;
use ke_edge::eventbus::{AdapterEnds, BusMessage};
use ke_proto::twin::{
    self, Base, MembershipList, MembershipUpdate, MsgTwin, StateUpdate, TwinDelta, TwinUpdate,
    TwinValue, TypeMetadata, ValueMetadata,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::time::Instant;

use crate::devices::{Book, DEVICE_NS, DeviceState, INITIAL_DESIRED, Reading};

/// What one node's mapper needs.
pub struct MapperSetup {
    /// Node index.
    pub node: u32,
    /// Node name.
    pub name: String,
    /// The bus.
    pub ends: AdapterEnds,
    /// The run's device book.
    pub book: Arc<Book>,
    /// Wall time (the reports' timestamps).
    pub clock: Arc<dyn Clock>,
    /// Seed of this start's stream.
    pub seed: u64,
    /// Report period.
    pub period: Duration,
    /// Sensor properties.
    pub sensors: Vec<String>,
    /// Actuator properties.
    pub actuators: Vec<String>,
}

struct Mapper {
    s: MapperSetup,
    rng: ChaCha8Rng,
    /// Known devices → next report time.
    due: BTreeMap<String, Instant>,
    seq: u64,
}

/// Runs the mapper; never returns (parks once the bus is gone: the node crashed).
pub async fn run(setup: MapperSetup) {
    let rng = ChaCha8Rng::seed_from_u64(setup.seed);
    let mut m = Mapper {
        s: setup,
        rng,
        due: BTreeMap::new(),
        seq: 0,
    };
    let topic = twin::node_topic(&m.s.name, "membership/get");
    let ask = Base {
        event_id: format!("{}-members", m.s.name),
        timestamp: m.s.clock.now_millis(),
    };
    if !m.send(topic, &ask).await {
        return std::future::pending().await;
    }
    loop {
        let next = m.next_due();
        tokio::select! {
            biased;
            msg = m.s.ends.outgoing.recv() => match msg {
                Some(msg) => m.on_message(&msg).await,
                None => return std::future::pending().await,
            },
            () = sleep_until(next), if next.is_some() => m.report_due().await,
        }
    }
}

async fn sleep_until(t: Option<Instant>) {
    if let Some(t) = t {
        tokio::time::sleep_until(t).await;
    }
}

impl Mapper {
    fn next_due(&self) -> Option<Instant> {
        if self.s.book.stop_reports.load(Ordering::Relaxed) {
            return None;
        }
        self.due.values().min().copied()
    }

    /// Publishes `payload` on `topic`; false when the bus is gone.
    async fn send<T: serde::Serialize>(&mut self, topic: String, payload: &T) -> bool {
        let payload = serde_json::to_vec(payload).unwrap_or_default();
        self.s
            .ends
            .incoming
            .send(BusMessage { topic, payload })
            .await
            .is_ok()
    }

    fn period(&self) -> Duration {
        self.s.period
    }

    /// Starts reporting `device` (at a seeded offset within the period).
    async fn know(&mut self, device: &str) {
        if self.due.contains_key(device) {
            return;
        }
        let period_ms = u64::try_from(self.period().as_millis()).unwrap_or(1).max(1);
        let offset = Duration::from_millis(self.rng.random_range(0..period_ms));
        self.due.insert(device.to_owned(), Instant::now() + offset);
        self.s.book.with_node(self.s.node, |n| {
            let st = n.entry(device.to_owned()).or_default();
            for a in &self.s.actuators {
                st.actuators
                    .entry(a.clone())
                    .or_insert_with(|| INITIAL_DESIRED.to_owned());
            }
        });
        let state = StateUpdate {
            event_id: self.event_id(device),
            timestamp: self.s.clock.now_millis(),
            state: "online".to_owned(),
            attributes: None,
        };
        let topic = twin::device_topic(DEVICE_NS, device, "state/update");
        self.send(topic, &state).await;
    }

    fn event_id(&mut self, device: &str) -> String {
        self.seq += 1;
        format!("{device}-{}-{}", self.s.seed % 10_000, self.seq)
    }

    async fn report_due(&mut self) {
        let now = Instant::now();
        let ready: Vec<String> = self
            .due
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(d, _)| d.clone())
            .collect();
        for device in ready {
            let jitter = Duration::from_millis(self.rng.random_range(0..100));
            self.due
                .insert(device.clone(), now + self.period() + jitter);
            let mut props = self.s.sensors.clone();
            props.extend(self.s.actuators.iter().cloned());
            if !self.report(&device, &props).await {
                return;
            }
        }
    }

    /// One reading of a sensor (seeded).
    fn read(&mut self) -> String {
        let tenths: u32 = self.rng.random_range(150..350);
        format!("{}.{}", tenths / 10, tenths % 10)
    }

    /// Publishes one `twin/update` of `device` with the actual values of `props`.
    async fn report(&mut self, device: &str, props: &[String]) -> bool {
        let now = self.s.clock.now_millis();
        let actuators = self
            .s
            .book
            .with_node(self.s.node, |n| n.get(device).map(|d| d.actuators.clone()))
            .unwrap_or_default();
        let mut twins = BTreeMap::new();
        let mut readings = BTreeMap::new();
        for p in props {
            let value = match actuators.get(p) {
                Some(v) => v.clone(),
                None => self.read(),
            };
            readings.insert(
                p.clone(),
                Reading {
                    value: value.clone(),
                    ts: now,
                },
            );
            twins.insert(p.clone(), actual(value, now));
        }
        let event_id = self.event_id(device);
        self.s.book.with_node(self.s.node, |n| {
            let st = n.entry(device.to_owned()).or_default();
            st.pending.insert(event_id.clone(), readings);
        });
        let update = TwinUpdate {
            event_id,
            timestamp: now,
            twin: twins,
        };
        self.s.book.published.fetch_add(1, Ordering::Relaxed);
        let topic = twin::device_topic(DEVICE_NS, device, "twin/update");
        self.send(topic, &update).await
    }

    async fn on_message(&mut self, msg: &BusMessage) {
        let t = msg.topic.as_str();
        if t.ends_with("/twin/update/result") {
            self.result(&msg.payload);
        } else if t.ends_with("/twin/update/delta") {
            if let Some(device) = device_of(t) {
                self.delta(device.to_owned(), &msg.payload).await;
            }
        } else if t.ends_with("/membership/updated") {
            let Ok(u) = serde_json::from_slice::<MembershipUpdate>(&msg.payload) else {
                return;
            };
            for d in u.added_devices.unwrap_or_default() {
                self.know(short(&d.id)).await;
            }
            for d in u.removed_devices.unwrap_or_default() {
                self.due.remove(short(&d.id));
            }
        } else if t.ends_with("/membership/get/result") {
            let Ok(list) = serde_json::from_slice::<MembershipList>(&msg.payload) else {
                return;
            };
            for d in list.devices {
                self.know(short(&d.id)).await;
            }
        }
    }

    /// A `twin/update/result`: accepted (a twin update) or refused (an error result).
    fn result(&mut self, payload: &[u8]) {
        let v: serde_json::Value = serde_json::from_slice(payload).unwrap_or_default();
        let Some(id) = v.get("event_id").and_then(|e| e.as_str()) else {
            return;
        };
        let ok = v.get("code").is_none();
        let book = &self.s.book;
        let device = book.with_node(self.s.node, |n| {
            for (name, st) in n.iter_mut() {
                if let Some(readings) = st.pending.remove(id) {
                    let changes = if ok { accept(st, readings) } else { 0 };
                    return Some((name.clone(), changes));
                }
            }
            None
        });
        if let Some((d, changes)) = device.filter(|_| ok) {
            book.report_accepted(&d, changes);
        }
        book.note(&[id.as_bytes(), &[u8::from(ok)]]);
        let counter = if ok { &book.accepted } else { &book.refused };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// A `twin/update/delta`: set the actuators it names, report them at once.
    async fn delta(&mut self, device: String, payload: &[u8]) {
        let Ok(delta) = serde_json::from_slice::<TwinDelta>(payload) else {
            return;
        };
        self.know(&device).await;
        let actuators: BTreeSet<&String> = self.s.actuators.iter().collect();
        let mut written = Vec::new();
        let now = turmoil::sim_elapsed().unwrap_or_default();
        for (prop, value) in &delta.delta {
            if !actuators.contains(prop) {
                continue;
            }
            self.s.book.with_node(self.s.node, |n| {
                let st = n.entry(device.clone()).or_default();
                st.actuators.insert(prop.clone(), value.clone());
            });
            self.s.book.desired_applied(&device, prop, value, now);
            written.push(prop.clone());
        }
        if !written.is_empty() {
            self.report(&device, &written).await;
        }
    }
}

/// The device name in a device topic `$hw/events/device/<ns>/<name>/...`.
fn device_of(topic: &str) -> Option<&str> {
    let rest = topic.strip_prefix(twin::DEVICE_TOPIC_PREFIX)?;
    rest.split('/').nth(1)
}

/// Records an accepted report; returns how many properties it changed.
fn accept(st: &mut DeviceState, readings: BTreeMap<String, Reading>) -> u64 {
    let mut changes = 0;
    for (p, r) in readings {
        match st.accepted.get(&p) {
            Some(old) if old.ts > r.ts || *old == r => {}
            _ => {
                st.accepted.insert(p, r);
                changes += 1;
            }
        }
    }
    changes
}

/// `name` of a device id `<ns>/<name>`.
fn short(id: &str) -> &str {
    id.split_once('/').map_or(id, |(_, n)| n)
}

fn actual(value: String, ts: i64) -> MsgTwin {
    MsgTwin {
        actual: Some(TwinValue {
            value: Some(value),
            metadata: Some(ValueMetadata { timestamp: ts }),
        }),
        metadata: Some(TypeMetadata {
            kind: "string".to_owned(),
        }),
        ..MsgTwin::default()
    }
}
