//! The run's record: the event log (hashed into the digest as it grows), the writes still
//! on their way to their nodes (for sync latency and convergence), latency histograms, and
//! what the safety checkers saw at every edge write.
//!
//! Every entry carries simulated time only, so the same seed gives the same bytes.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    sync::{Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use hdrhistogram::Histogram;
use ke_edge::metamanager::Observed;
use sha2::{Digest, Sha256};

pub use crate::safety::{NO_LOST_UPDATES, NO_RESURRECTION, OWN_OBJECTS_ONLY};
use crate::{
    outcome::Percentiles,
    safety::{Safety, Seen, Violations},
};

/// What a write expects at its node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// The object at this resourceVersion or later.
    AtLeast(u64),
    /// The object gone.
    Gone,
}

#[derive(Debug)]
struct Pending {
    expect: Expect,
    since: Duration,
}

struct Inner {
    hasher: Sha256,
    events: u64,
    line: String,
    pending: BTreeMap<(u32, String), Pending>,
    /// When each node last committed a write of each key (a write can reach its node before
    /// the driver hears the API server's answer: cloudcore calls its embedded server
    /// in-process, the driver over the network).
    stored_at: BTreeMap<(u32, String), Duration>,
    sync: Histogram<u64>,
    sync_window: Histogram<u64>,
    reconnect: Histogram<u64>,
    safety: Safety,
    /// Where the event log is copied, if asked.
    log: Option<std::io::BufWriter<std::fs::File>>,
}

/// The run's shared record (one per run; hosts hold it through an `Arc`).
pub struct Trace {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for Trace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trace").finish_non_exhaustive()
    }
}

pub(crate) fn histogram() -> Histogram<u64> {
    Histogram::new(3).expect("invariant: 3 significant figures is a valid precision")
}

impl Default for Trace {
    fn default() -> Self {
        Self {
            inner: Mutex::new(Inner {
                hasher: Sha256::new(),
                events: 0,
                line: String::new(),
                pending: BTreeMap::new(),
                stored_at: BTreeMap::new(),
                sync: histogram(),
                sync_window: histogram(),
                reconnect: histogram(),
                safety: Safety::default(),
                log: None,
            }),
        }
    }
}

fn now() -> Duration {
    turmoil::sim_elapsed().unwrap_or_default()
}

impl Trace {
    /// A trace that also writes its event log to `file`.
    pub fn with_log(file: std::fs::File) -> Self {
        let t = Self::default();
        t.lock().log = Some(std::io::BufWriter::new(file));
        t
    }

    /// Flushes the event log copy.
    pub fn flush(&self) {
        if let Some(log) = self.lock().log.as_mut() {
            let _ = std::io::Write::flush(log);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends one event (at simulated time `t`) to the log.
    pub fn event_at(&self, t: Duration, what: std::fmt::Arguments<'_>) {
        let mut g = self.lock();
        let inner = &mut *g;
        inner.line.clear();
        let _ = writeln!(inner.line, "{} {what}", t.as_millis());
        inner.hasher.update(inner.line.as_bytes());
        inner.events += 1;
        if let Some(log) = inner.log.as_mut() {
            let _ = std::io::Write::write_all(log, inner.line.as_bytes());
        }
    }

    /// Appends one event at the current simulated time (inside a host or client).
    pub fn event(&self, what: std::fmt::Arguments<'_>) {
        self.event_at(now(), what);
    }

    /// Records that the API server accepted a write `node` must see, sent at `since` (the
    /// simulated time the driver sent the request: real mode's stamp is taken then too).
    /// If the node already holds what the write asks for, its sync latency is the time of
    /// the node's last commit of that key since `since`.
    pub fn expect(&self, node: u32, key: String, expect: Expect, since: Duration) {
        let mut g = self.lock();
        let key = (node, key);
        let held = g.safety.held(key.0, &key.1).map(|(_, rv)| *rv);
        let done = match expect {
            Expect::AtLeast(want) => held.is_some_and(|rv| rv >= want),
            Expect::Gone => held.is_none(),
        };
        if done {
            g.pending.remove(&key);
            let at = g.stored_at.get(&key).copied().filter(|at| *at >= since);
            if let Some(at) = at {
                record_sync(&mut g, at - since);
            }
        } else {
            g.pending.insert(key, Pending { expect, since });
        }
    }

    /// Writes still on their way.
    pub fn pending(&self) -> u64 {
        self.lock().pending.len() as u64
    }

    /// The first few writes still on their way, described.
    pub fn pending_sample(&self) -> Vec<String> {
        let g = self.lock();
        let t = now();
        g.pending
            .iter()
            .take(3)
            .map(|((n, k), p)| {
                let age = t.saturating_sub(p.since).as_secs();
                format!("node {n} {k} {:?} for {age} s", p.expect)
            })
            .collect()
    }

    /// A node's session went down at `lost` and came back now.
    pub fn reconnected(&self, lost: Duration) {
        let ms = now().saturating_sub(lost).as_millis();
        let _ = self
            .lock()
            .reconnect
            .record(u64::try_from(ms).unwrap_or(u64::MAX));
    }

    /// Sees one committed write at node `node` (named `name`).
    pub fn observe(&self, node: u32, name: &str, o: Observed<'_>) {
        let t = now();
        let mut g = self.lock();
        let seen = g.safety.observe(node, name, &o);
        let key = (node, o.key.to_owned());
        let done = match (seen, g.pending.get(&key)) {
            (Seen::Stored(rv), Some(p)) => matches!(p.expect, Expect::AtLeast(want) if rv >= want),
            (Seen::Gone, Some(p)) => p.expect == Expect::Gone,
            _ => false,
        };
        if done {
            arrived(&mut g, &key, t);
        }
        g.stored_at.insert(key, t);
        drop(g);
        let rv = o.resource_version.and_then(|r| r.parse::<u64>().ok());
        self.event_at(
            t,
            format_args!("{name} {:?} {} rv={}", o.applied, o.key, rv.unwrap_or(0)),
        );
    }

    /// A safety violation seen outside an edge write.
    pub fn violation(&self, check: &'static str, detail: String) {
        self.lock().safety.violation(check, detail);
    }

    /// Violations seen so far, by check.
    pub fn violations(&self) -> BTreeMap<&'static str, Violations> {
        self.lock()
            .safety
            .violations()
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect()
    }

    /// The highest resourceVersion node `node` ever stored at `key`, and its UID.
    pub fn held(&self, node: u32, key: &str) -> Option<(String, u64)> {
        self.lock().safety.held(node, key).cloned()
    }

    /// Whether (node, UID) was deleted for good at the edge.
    pub fn was_deleted(&self, node: u32, uid: &str) -> bool {
        self.lock().safety.was_deleted(node, uid)
    }

    /// Sync latency of the writes that arrived since the last call: (p50, p99) in ms.
    pub fn take_window(&self) -> (f64, f64) {
        let mut g = self.lock();
        let w = (pct(&g.sync_window, 50.0), pct(&g.sync_window, 99.0));
        g.sync_window.reset();
        w
    }

    /// Percentiles of sync latency and reconnect time.
    pub fn latencies(&self) -> (Percentiles, Percentiles) {
        let g = self.lock();
        (percentiles(&g.sync), percentiles(&g.reconnect))
    }

    /// Hex SHA-256 of the event log so far, and its length.
    pub fn digest(&self) -> (String, u64) {
        let g = self.lock();
        (hex::encode(g.hasher.clone().finalize()), g.events)
    }

    /// Edge writes observed (every committed downstream message).
    pub fn edge_writes(&self) -> u64 {
        self.lock().safety.writes()
    }
}

fn arrived(g: &mut Inner, key: &(u32, String), t: Duration) {
    if let Some(p) = g.pending.remove(key) {
        record_sync(g, t.saturating_sub(p.since));
    }
}

fn record_sync(g: &mut Inner, took: Duration) {
    let ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
    let _ = g.sync.record(ms);
    let _ = g.sync_window.record(ms);
}

fn pct(h: &Histogram<u64>, q: f64) -> f64 {
    if h.is_empty() {
        0.0
    } else {
        h.value_at_percentile(q) as f64
    }
}

pub(crate) fn percentiles(h: &Histogram<u64>) -> Percentiles {
    Percentiles {
        count: h.len(),
        p50: pct(h, 50.0),
        p90: pct(h, 90.0),
        p99: pct(h, 99.0),
        max: h.max() as f64,
    }
}
