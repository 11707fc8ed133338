//! What edgemark saw at its nodes' stores: the safety checkers (shared with the simulator)
//! and the sync latency of writes stamped by the load driver.
//!
//! Sync latency: `fleet run --mode real` stamps every object it writes with the annotation
//! `edgefleet.io/written-ms` (Unix milliseconds just before the request). The first time a node stores
//! an object with a new stamp, now minus the stamp is one sample: API server, watch,
//! EdgeController, CloudHub, the wire and the edge's commit. Across machines it is only as
//! good as their clocks' agreement.

use std::{
    collections::HashMap,
    sync::{Mutex, MutexGuard, PoisonError},
};

use hdrhistogram::Histogram;
use ke_core::{Clock, SystemClock};
use ke_edge::metamanager::Observed;
use serde::Serialize;
use simulator::{
    outcome::Percentiles,
    safety::{Safety, Seen, Violations},
    workload::WRITTEN_MS,
};

struct Inner {
    safety: Safety,
    sync: Histogram<u64>,
    /// Last stamp sampled per (node, key), so a redelivery or a status update of the same
    /// write is not sampled again.
    stamped: HashMap<(u32, String), u64>,
}

/// The marks of one edgemark process.
pub(crate) struct Marks {
    inner: Mutex<Inner>,
}

/// The verdicts and figures for the control endpoint.
#[derive(Debug, Serialize)]
pub(crate) struct Summary {
    pub(crate) edge_writes: u64,
    pub(crate) violations: std::collections::BTreeMap<String, Violations>,
    pub(crate) sync_ms: Percentiles,
}

impl Marks {
    pub(crate) fn new() -> Self {
        Self {
            inner: Mutex::new(Inner {
                safety: Safety::default(),
                sync: Histogram::new(3).expect("invariant: 3 significant figures is valid"),
                stamped: HashMap::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sees one committed write at node `node` (named `name`).
    pub(crate) fn observe(&self, node: u32, name: &str, o: &Observed<'_>) {
        let stamp = o
            .object
            .and_then(|v| v.pointer("/metadata/annotations"))
            .and_then(|a| a.get(WRITTEN_MS))
            .and_then(|v| v.as_str())
            .and_then(|v| v.parse::<u64>().ok());
        let now = u64::try_from(SystemClock.now_millis()).unwrap_or(0);
        let mut g = self.lock();
        let seen = g.safety.observe(node, name, o);
        if let (Seen::Stored(_), Some(stamp)) = (seen, stamp) {
            let key = (node, o.key.to_owned());
            if g.stamped.get(&key) != Some(&stamp) {
                g.stamped.insert(key, stamp);
                let _ = g.sync.record(now.saturating_sub(stamp));
            }
        } else if seen == Seen::Gone {
            g.stamped.remove(&(node, o.key.to_owned()));
        }
    }

    pub(crate) fn summary(&self) -> Summary {
        let g = self.lock();
        let h = &g.sync;
        let pct = |q: f64| {
            if h.is_empty() {
                0.0
            } else {
                h.value_at_percentile(q) as f64
            }
        };
        Summary {
            edge_writes: g.safety.writes(),
            violations: g
                .safety
                .violations()
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
            sync_ms: Percentiles {
                count: h.len(),
                p50: pct(50.0),
                p90: pct(90.0),
                p99: pct(99.0),
                max: h.max() as f64,
            },
        }
    }
}
