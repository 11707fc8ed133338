//! The device book: what the virtual mappers reported and hold, what the driver wrote as
//! desired values, and the latencies between them. Shared by the mappers (on the site hosts),
//! the driver and the DeviceStatus observer (on `ctl`), and the run loop (samples).
//!
//! A mapper's report counts as *made* when DeviceTwin accepted it (its `twin/update/result`
//! came back): from then on DeviceTwin's durable outbox owns it, and the checks expect it in
//! the cloud. Reports whose result never came (the node crashed in between) stay *pending*:
//! the cloud may or may not have them, and either is correct.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use hdrhistogram::Histogram;
use ke_edge::devicetwin::TwinMetrics;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::{
    outcome::Percentiles,
    trace::{histogram, percentiles},
};

/// The device namespace (the fleet uses one).
pub const DEVICE_NS: &str = "default";
/// The DeviceModel every device names.
pub const MODEL: &str = "sim-model";
/// The actuators' value before any desired value is set.
pub const INITIAL_DESIRED: &str = "0";
/// Storage prefix of DeviceStatus objects in the API server.
pub const STATUS_PREFIX: &str = "devices.kubeedge.io/devicestatuses";

/// The name of device `j` of node `node`.
pub fn device_name(node: usize, j: usize) -> String {
    format!("dev-{node:05}-{j}")
}

/// One reported property value: the value and the mapper's timestamp (ms since the epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading {
    /// The value.
    pub value: String,
    /// When the mapper read it.
    pub ts: i64,
}

/// What the mapper knows of one device (kept across the node's crashes).
#[derive(Debug, Default, Clone)]
pub struct DeviceState {
    /// Per property, the last report DeviceTwin accepted.
    pub accepted: BTreeMap<String, Reading>,
    /// Reports sent whose result has not come (by event id): property → reading.
    pub pending: BTreeMap<String, BTreeMap<String, Reading>>,
    /// The actuators' current values.
    pub actuators: BTreeMap<String, String>,
}

/// Per-node mapper state, by device name.
pub type NodeDevices = BTreeMap<String, DeviceState>;

#[derive(Debug)]
struct Inner {
    nodes: Vec<NodeDevices>,
    /// (device, property, value) → simulated time the driver sent it.
    desired_sent: BTreeMap<(String, String, String), Duration>,
    /// (device, property) → the latest desired value the API server accepted.
    desired: BTreeMap<(String, String), String>,
    /// Desired value sent → the mapper applied it, ms.
    down: Histogram<u64>,
    /// Mapper report → DeviceStatus shows it, ms.
    up: Histogram<u64>,
    /// (device, property) → the newest reported timestamp seen in a DeviceStatus.
    status_seen: BTreeMap<(String, String), (i64, String)>,
    /// Twin metrics of each node's running EdgeCore.
    twin: Vec<Option<Arc<TwinMetrics>>>,
    /// First few regressions seen.
    regressions: Vec<String>,
    /// Running digest of device activity (reports accepted, desired values applied,
    /// DeviceStatus writes, with simulated times): too many to log one by one, folded into
    /// the event log once at the end.
    activity: Sha256,
    /// Per device: property changes (a new value or timestamp) in the reports DeviceTwin
    /// accepted, and in DeviceStatus writes. The cloud applies every report in order, so each
    /// accepted change must show up in a write (a report identical to the one before, which
    /// the 10 ms clock allows, changes nothing on either side).
    counts: BTreeMap<String, (u64, u64)>,
}

/// The book (see the module docs).
#[derive(Debug)]
pub struct Book {
    inner: Mutex<Inner>,
    /// Mappers stop their periodic reports (set when the workload is over, so the last value
    /// of every sensor is known; deltas are still applied).
    pub stop_reports: AtomicBool,
    /// Reports the mappers published.
    pub published: AtomicU64,
    /// Reports DeviceTwin accepted.
    pub accepted: AtomicU64,
    /// Reports DeviceTwin refused (error result).
    pub refused: AtomicU64,
    /// Desired values written.
    pub desired_writes: AtomicU64,
    /// DeviceStatus writes observed.
    pub status_writes: AtomicU64,
    /// DeviceStatus events the observer missed (it fell behind the API server's fan-out).
    pub observer_lagged: AtomicU64,
    /// Reports confirmed by crashed EdgeCore instances (their counters are gone).
    confirmed_base: AtomicU64,
    /// Regressions seen by the observer.
    pub regressions: AtomicU64,
    /// The devices were deleted (a `delete_devices` phase ran).
    pub deleted: AtomicBool,
}

fn lock(m: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Book {
    /// A book for `nodes` nodes.
    pub fn new(nodes: usize) -> Self {
        Self {
            inner: Mutex::new(Inner {
                nodes: vec![NodeDevices::new(); nodes],
                desired_sent: BTreeMap::new(),
                desired: BTreeMap::new(),
                down: histogram(),
                up: histogram(),
                status_seen: BTreeMap::new(),
                twin: vec![None; nodes],
                regressions: Vec::new(),
                activity: Sha256::new(),
                counts: BTreeMap::new(),
            }),
            stop_reports: AtomicBool::new(false),
            published: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            desired_writes: AtomicU64::new(0),
            status_writes: AtomicU64::new(0),
            observer_lagged: AtomicU64::new(0),
            confirmed_base: AtomicU64::new(0),
            regressions: AtomicU64::new(0),
            deleted: AtomicBool::new(false),
        }
    }

    /// Folds one device event into the activity digest.
    pub fn note(&self, parts: &[&[u8]]) {
        let mut g = lock(&self.inner);
        let t = ms(turmoil::sim_elapsed().unwrap_or_default());
        g.activity.update(t.to_le_bytes());
        for p in parts {
            g.activity.update((p.len() as u64).to_le_bytes());
            g.activity.update(p);
        }
    }

    /// The activity digest so far (hex, 16 digits).
    pub fn activity(&self) -> String {
        let d = lock(&self.inner).activity.clone().finalize();
        hex::encode(&d[..8])
    }

    /// DeviceTwin accepted a report of `device` that changed `changes` properties.
    pub fn report_accepted(&self, device: &str, changes: u64) {
        lock(&self.inner)
            .counts
            .entry(device.to_owned())
            .or_default()
            .0 += changes;
    }

    /// Devices with fewer DeviceStatus writes than accepted reports: (how many, first few).
    pub fn unseen_reports(&self) -> (u64, Vec<String>) {
        let g = lock(&self.inner);
        let mut first = Vec::new();
        let mut n = 0;
        for (d, (acc, seen)) in &g.counts {
            if seen < acc {
                n += 1;
                if first.len() < 3 {
                    first.push(format!(
                        "{d}: {acc} property changes accepted, {seen} in DeviceStatus"
                    ));
                }
            }
        }
        (n, first)
    }

    /// Runs `f` on node `node`'s device states.
    pub fn with_node<T>(&self, node: u32, f: impl FnOnce(&mut NodeDevices) -> T) -> T {
        let mut g = lock(&self.inner);
        let n = g
            .nodes
            .get_mut(node as usize)
            .expect("invariant: node indices come from the fleet");
        f(n)
    }

    /// Node `node` started an EdgeCore with these counters.
    pub fn node_started(&self, node: u32, metrics: Arc<TwinMetrics>) {
        let mut g = lock(&self.inner);
        let old = g.twin[node as usize].replace(metrics);
        if let Some(old) = old {
            let n = old.reports_confirmed.load(Ordering::Relaxed);
            self.confirmed_base.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Reports confirmed by the cloud so far, every node and restart.
    pub fn confirmed(&self) -> u64 {
        let g = lock(&self.inner);
        let live: u64 = g
            .twin
            .iter()
            .flatten()
            .map(|m| m.reports_confirmed.load(Ordering::Relaxed))
            .sum();
        live + self.confirmed_base.load(Ordering::Relaxed)
    }

    /// Reports waiting in DeviceTwin outboxes now.
    pub fn outbox(&self) -> u64 {
        let g = lock(&self.inner);
        g.twin
            .iter()
            .flatten()
            .map(|m| m.outbox.load(Ordering::Relaxed))
            .sum()
    }

    /// Publications DeviceTwin dropped (its bus to the mapper was full).
    pub fn publish_dropped(&self) -> u64 {
        let g = lock(&self.inner);
        g.twin
            .iter()
            .flatten()
            .map(|m| m.publish_dropped.load(Ordering::Relaxed))
            .sum()
    }

    /// The driver is about to write `value` as `device`'s desired `property`.
    pub fn desired_sent(&self, device: &str, property: &str, value: &str, at: Duration) {
        let mut g = lock(&self.inner);
        let key = (device.to_owned(), property.to_owned(), value.to_owned());
        g.desired_sent.insert(key, at);
        self.desired_writes.fetch_add(1, Ordering::Relaxed);
    }

    /// The API server accepted `value` as `device`'s desired `property`.
    pub fn desired_set(&self, device: &str, property: &str, value: &str) {
        let mut g = lock(&self.inner);
        g.desired
            .insert((device.to_owned(), property.to_owned()), value.to_owned());
    }

    /// The latest desired value of `device`'s `property`, if one was set.
    pub fn desired(&self, device: &str, property: &str) -> Option<String> {
        let g = lock(&self.inner);
        g.desired
            .get(&(device.to_owned(), property.to_owned()))
            .cloned()
    }

    /// A mapper applied `value` to `device`'s `property` at `at`.
    pub fn desired_applied(&self, device: &str, property: &str, value: &str, at: Duration) {
        let mut g = lock(&self.inner);
        let key = (device.to_owned(), property.to_owned(), value.to_owned());
        g.activity.update(ms(at).to_le_bytes());
        g.activity.update(format!("{key:?}").as_bytes());
        if let Some(sent) = g.desired_sent.remove(&key) {
            let _ = g.down.record(ms(at.saturating_sub(sent)));
        }
    }

    /// Desired values sent and not yet applied by their mapper.
    pub fn desired_pending(&self) -> usize {
        lock(&self.inner).desired_sent.len()
    }

    /// A DeviceStatus object was written (its JSON), at `now_ms` (epoch ms).
    pub fn status_written(&self, status: &Value, now_ms: i64) {
        self.status_writes.fetch_add(1, Ordering::Relaxed);
        let Some(name) = status.pointer("/metadata/name").and_then(Value::as_str) else {
            return;
        };
        let twins = status.pointer("/status/twins").and_then(Value::as_array);
        let mut g = lock(&self.inner);
        // One latency per write: the newest report it carries (a report sets every property
        // it names with the same timestamp).
        let mut newest: Option<i64> = None;
        let mut changes = 0;
        for t in twins.into_iter().flatten() {
            let Some(prop) = t.get("propertyName").and_then(Value::as_str) else {
                continue;
            };
            let Some(ts) = reported_ts(t) else { continue };
            let value = t.pointer("/reported/value").and_then(Value::as_str);
            let value = value.unwrap_or_default();
            let key = (name.to_owned(), prop.to_owned());
            match g.status_seen.get(&key) {
                Some((s, v)) if *s == ts && v == value => {}
                Some(&(s, _)) if s > ts => {
                    self.regressions.fetch_add(1, Ordering::Relaxed);
                    if g.regressions.len() < 5 {
                        g.regressions
                            .push(format!("{name}/{prop}: reported {ts} after {s}"));
                    }
                }
                _ => {
                    newest = newest.max(Some(ts));
                    changes += 1;
                    g.status_seen.insert(key, (ts, value.to_owned()));
                }
            }
        }
        if let Some(ts) = newest {
            g.counts.entry(name.to_owned()).or_default().1 += changes;
            g.activity.update(now_ms.to_le_bytes());
            g.activity.update(name.as_bytes());
            g.activity.update(ts.to_le_bytes());
            let _ =
                g.up.record(u64::try_from(now_ms.saturating_sub(ts)).unwrap_or(0));
        }
    }

    /// The first few regressions seen.
    pub fn regression_samples(&self) -> Vec<String> {
        lock(&self.inner).regressions.clone()
    }

    /// (desired → applied, report → DeviceStatus) percentiles, ms.
    pub fn latencies(&self) -> (Percentiles, Percentiles) {
        let g = lock(&self.inner);
        (percentiles(&g.down), percentiles(&g.up))
    }
}

/// `reported.metadata.timestamp` of a DeviceStatus twin entry.
fn reported_ts(twin: &Value) -> Option<i64> {
    twin.pointer("/reported/metadata/timestamp")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
}

/// `reported` of `property` in a DeviceStatus: (value, timestamp).
pub fn reported(status: &Value, property: &str) -> Option<Reading> {
    let twins = status.pointer("/status/twins").and_then(Value::as_array)?;
    let t = twins
        .iter()
        .find(|t| t.get("propertyName").and_then(Value::as_str) == Some(property))?;
    let value = t.pointer("/reported/value").and_then(Value::as_str)?;
    Some(Reading {
        value: value.to_owned(),
        ts: reported_ts(t).unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test")]

    use serde_json::json;

    use super::*;

    fn status(name: &str, value: &str, ts: i64) -> Value {
        json!({"metadata": {"name": name}, "status": {"twins": [
            {"propertyName": "temperature",
             "reported": {"value": value, "metadata": {"timestamp": ts.to_string()}}}]}})
    }

    /// Goal: the observer records report → status latency once per new report, ignores a
    /// rewrite of the same report, and counts a report that goes back as a regression.
    /// Method: four writes of one device's status.
    #[test]
    fn status_writes_give_latency_and_regressions() {
        let b = Book::new(1);
        b.status_written(&status("d", "20.1", 1_000), 1_250);
        b.status_written(&status("d", "20.1", 1_000), 1_400);
        b.status_written(&status("d", "20.2", 2_000), 2_100);
        assert_eq!(b.regressions.load(Ordering::Relaxed), 0);
        b.status_written(&status("d", "20.1", 1_000), 2_200);
        assert_eq!(b.regressions.load(Ordering::Relaxed), 1);
        let (_, up) = b.latencies();
        assert_eq!(up.count, 2);
        assert_eq!(up.max, 250.0);
        let r = reported(&status("d", "7", 5), "temperature").unwrap();
        assert_eq!((r.value.as_str(), r.ts), ("7", 5));
    }

    /// Goal: cloud → edge latency is recorded once per desired value, from send to apply.
    #[test]
    fn desired_latency_is_send_to_apply() {
        let b = Book::new(1);
        b.desired_sent("d", "target", "1", Duration::from_millis(100));
        assert_eq!(b.desired_pending(), 1);
        b.desired_applied("d", "target", "1", Duration::from_millis(350));
        b.desired_applied("d", "target", "1", Duration::from_millis(900));
        let (down, _) = b.latencies();
        assert_eq!((down.count, down.max), (1, 250.0));
        assert_eq!(b.desired_pending(), 0);
    }
}
