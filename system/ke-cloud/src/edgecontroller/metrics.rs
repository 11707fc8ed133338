//! EdgeController's counters (no global registry), rendered as Prometheus text.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    sync::{
        Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
};

/// EdgeController's counters; read them with [`Metrics::snapshot`] or
/// [`Metrics::to_prometheus`].
#[derive(Debug, Default)]
pub struct Metrics {
    pub(crate) inventories: AtomicU64,
    pub(crate) inventory_timeouts: AtomicU64,
    pub(crate) resync_sent: AtomicU64,
    pub(crate) resync_skipped: AtomicU64,
    pub(crate) resync_deleted: AtomicU64,
    pub(crate) downstream_sent: AtomicU64,
    pub(crate) downstream_refused: AtomicU64,
    pub(crate) upstream_handled: AtomicU64,
    pub(crate) upstream_forbidden: AtomicU64,
    pub(crate) upstream_failed: AtomicU64,
    pub(crate) watch_events: AtomicU64,
    pub(crate) nodes_marked_unknown: AtomicU64,
    pub(crate) twin_reports: AtomicU64,
    pub(crate) state_reports: AtomicU64,
    pub(crate) device_status_patches: AtomicU64,
    pub(crate) device_status_creates: AtomicU64,
    pub(crate) device_refusals: AtomicU64,
    /// Gauge: releases waiting for their delay.
    pub(crate) pending_releases: AtomicU64,
    /// API requests made by the controller, by verb.
    api_requests: Mutex<BTreeMap<&'static str, u64>>,
}

/// A copy of the counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// Inventories received from edges.
    pub inventories: u64,
    /// Connects after which no inventory came in time (full sends).
    pub inventory_timeouts: u64,
    /// Objects sent by resyncs (missing or changed at the edge).
    pub resync_sent: u64,
    /// Objects a resync did not send because the edge already held that version.
    pub resync_skipped: u64,
    /// Deletes sent by resyncs (the edge held objects it should no longer hold).
    pub resync_deleted: u64,
    /// Messages handed to CloudHub (syncs, live changes, replies).
    pub downstream_sent: u64,
    /// Messages CloudHub refused (queue full).
    pub downstream_refused: u64,
    /// Upstream requests handled.
    pub upstream_handled: u64,
    /// Upstream requests refused by node authorization.
    pub upstream_forbidden: u64,
    /// Upstream requests whose API call failed.
    pub upstream_failed: u64,
    /// Watch events processed.
    pub watch_events: u64,
    /// Nodes marked `Ready=Unknown` after the grace period without a session.
    pub nodes_marked_unknown: u64,
    /// Device twin reports (`twin/edge_updated`) received.
    pub twin_reports: u64,
    /// Device state reports (`state/update`) received.
    pub state_reports: u64,
    /// DeviceStatus merge patches made.
    pub device_status_patches: u64,
    /// DeviceStatus objects created.
    pub device_status_creates: u64,
    /// Device reports refused (unknown device, or a device of another node).
    pub device_refusals: u64,
    /// Configmaps, secrets and device models no longer referenced by a connected node and
    /// waiting out the release delay before the edge is told to drop them (a gauge).
    pub pending_releases: u64,
    /// API requests made, by verb (`get`, `create`, `patch`, `delete`, ...).
    pub api_requests: BTreeMap<String, u64>,
}

impl MetricsSnapshot {
    /// API requests that write (create, update, patch, delete).
    pub fn api_writes(&self) -> u64 {
        ["create", "update", "patch", "delete"]
            .iter()
            .filter_map(|v| self.api_requests.get(*v))
            .sum()
    }
}

impl Metrics {
    pub(crate) fn inc(&self, c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn add(&self, c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn sub(&self, c: &AtomicU64, n: u64) {
        c.fetch_sub(n, Ordering::Relaxed);
    }

    pub(crate) fn api(&self, verb: &'static str) {
        let mut m = self
            .api_requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *m.entry(verb).or_insert(0) += 1;
    }

    /// Releases waiting out their delay now (the gauge alone, without a snapshot).
    pub fn pending_releases(&self) -> u64 {
        self.pending_releases.load(Ordering::Relaxed)
    }

    /// A copy of every counter.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let api = self
            .api_requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(k, v)| ((*k).to_owned(), *v))
            .collect();
        MetricsSnapshot {
            inventories: g(&self.inventories),
            inventory_timeouts: g(&self.inventory_timeouts),
            resync_sent: g(&self.resync_sent),
            resync_skipped: g(&self.resync_skipped),
            resync_deleted: g(&self.resync_deleted),
            downstream_sent: g(&self.downstream_sent),
            downstream_refused: g(&self.downstream_refused),
            upstream_handled: g(&self.upstream_handled),
            upstream_forbidden: g(&self.upstream_forbidden),
            upstream_failed: g(&self.upstream_failed),
            watch_events: g(&self.watch_events),
            nodes_marked_unknown: g(&self.nodes_marked_unknown),
            twin_reports: g(&self.twin_reports),
            state_reports: g(&self.state_reports),
            device_status_patches: g(&self.device_status_patches),
            device_status_creates: g(&self.device_status_creates),
            device_refusals: g(&self.device_refusals),
            pending_releases: g(&self.pending_releases),
            api_requests: api,
        }
    }

    /// Every counter in the Prometheus text format.
    pub fn to_prometheus(&self) -> String {
        let s = self.snapshot();
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        };
        counter(
            "edgecontroller_inventories_total",
            "Edge inventories received.",
            s.inventories,
        );
        counter(
            "edgecontroller_inventory_timeouts_total",
            "Connects without an inventory in time (everything sent).",
            s.inventory_timeouts,
        );
        counter(
            "edgecontroller_downstream_sent_total",
            "Messages handed to CloudHub.",
            s.downstream_sent,
        );
        counter(
            "edgecontroller_downstream_refused_total",
            "Messages CloudHub refused.",
            s.downstream_refused,
        );
        counter(
            "edgecontroller_upstream_handled_total",
            "Upstream requests handled.",
            s.upstream_handled,
        );
        counter(
            "edgecontroller_upstream_forbidden_total",
            "Upstream requests refused by node authorization.",
            s.upstream_forbidden,
        );
        counter(
            "edgecontroller_upstream_failed_total",
            "Upstream requests whose API call failed.",
            s.upstream_failed,
        );
        counter(
            "edgecontroller_watch_events_total",
            "Watch events processed.",
            s.watch_events,
        );
        device_counters(&mut out, &s);
        gauges(&mut out, &s);
        let _ = writeln!(
            out,
            "# HELP edgecontroller_resync_objects_total Objects considered by resyncs after connects.\n\
             # TYPE edgecontroller_resync_objects_total counter\n\
             edgecontroller_resync_objects_total{{result=\"sent\"}} {}\n\
             edgecontroller_resync_objects_total{{result=\"skipped\"}} {}\n\
             edgecontroller_resync_objects_total{{result=\"deleted\"}} {}",
            s.resync_sent, s.resync_skipped, s.resync_deleted
        );
        api_requests(&mut out, &s);
        out
    }
}

/// API requests by verb.
fn api_requests(out: &mut String, s: &MetricsSnapshot) {
    let _ = writeln!(
        out,
        "# HELP edgecontroller_api_requests_total API requests made by EdgeController.\n\
         # TYPE edgecontroller_api_requests_total counter"
    );
    for (verb, n) in &s.api_requests {
        let _ = writeln!(
            out,
            "edgecontroller_api_requests_total{{verb=\"{verb}\"}} {n}"
        );
    }
}

/// The gauges.
fn gauges(out: &mut String, s: &MetricsSnapshot) {
    let _ = writeln!(
        out,
        "# HELP edgecontroller_pending_releases Objects a node no longer references, waiting \
         out the release delay.\n# TYPE edgecontroller_pending_releases gauge\n\
         edgecontroller_pending_releases {}",
        s.pending_releases
    );
}

/// One counter in the Prometheus text format.
fn write_counter(out: &mut String, name: &str, help: &str, v: u64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
    );
}

/// The device counters (DeviceController's work, done by EdgeController's workers).
fn device_counters(out: &mut String, s: &MetricsSnapshot) {
    let mut counter = |name: &str, help: &str, v: u64| write_counter(out, name, help, v);
    counter(
        "devicecontroller_twin_reports_total",
        "Device twin reports (twin/edge_updated) received.",
        s.twin_reports,
    );
    counter(
        "devicecontroller_state_reports_total",
        "Device state reports (state/update) received.",
        s.state_reports,
    );
    counter(
        "devicecontroller_devicestatus_patches_total",
        "DeviceStatus merge patches made.",
        s.device_status_patches,
    );
    counter(
        "devicecontroller_devicestatus_creates_total",
        "DeviceStatus objects created.",
        s.device_status_creates,
    );
    counter(
        "devicecontroller_refusals_total",
        "Device reports refused (unknown device or a device of another node).",
        s.device_refusals,
    );
}
