//! What edgemark saw at its nodes' stores: the safety checkers (shared with the simulator)
//! and the sync latency of writes stamped by the load driver.
//!
//! Sync latency: `fleet run --mode real` stamps every object it writes with the annotation
//! `edgefleet.io/written-ms` (Unix milliseconds just before the request). When a node first
//! stores a pod, or stores a new write (a new stamp) of an object it already held, now minus
//! the stamp is one sample: API server, watch, EdgeController, CloudHub, the wire and the
//! edge's commit. Status updates keep the stamp and are not samples; neither is a
//! configmap's first arrival (it follows the pod that references it, not the write). Across
//! machines it is only as good as their clocks' agreement.

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
        let stamp = o.object.and_then(written_ms);
        let now = u64::try_from(SystemClock.now_millis()).unwrap_or(0);
        let mut g = self.lock();
        let seen = g.safety.observe(node, name, o);
        if let (Seen::Stored(_), Some(stamp)) = (seen, stamp) {
            let is_pod = o.key.contains("/pod/");
            let prev = g.stamped.insert((node, o.key.to_owned()), stamp);
            // A pod's first arrival, or a new write of an object the node already held. A
            // configmap's first arrival at a node is not a sample: the node needed it only
            // when a pod began to reference it, which may be long after it was written.
            let sample = match prev {
                Some(p) => p != stamp,
                None => is_pod,
            };
            if sample {
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

/// The write stamp annotation of an object's JSON text.
fn written_ms(text: &str) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct Obj {
        metadata: Option<Meta>,
    }
    #[derive(serde::Deserialize)]
    struct Meta {
        annotations: Option<std::collections::BTreeMap<String, serde_json::Value>>,
    }
    let obj: Obj = serde_json::from_str(text).ok()?;
    obj.metadata?
        .annotations?
        .get(WRITTEN_MS)?
        .as_str()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ke_edge::metamanager::Applied;
    use serde_json::json;

    fn write(m: &Marks, key: &str, rv: &str, stamp: u64, applied: &Applied) {
        let object = json!({
            "metadata": {"annotations": {WRITTEN_MS: stamp.to_string()}},
            "spec": {"nodeName": "n0"},
        });
        m.observe(
            0,
            "n0",
            &Observed {
                key,
                uid: Some("u"),
                resource_version: Some(rv),
                object: Some(&object.to_string()),
                applied,
                release: false,
            },
        );
    }

    /// Goal: a pod's first arrival and a configmap's new write are samples; a status update
    /// of the same pod and a configmap's first arrival are not.
    #[test]
    fn only_new_writes_are_sync_samples() {
        let m = Marks::new();
        let (ins, upd) = (Applied::Inserted, Applied::Updated);
        write(&m, "d/pod/p", "1", 100, &ins);
        write(&m, "d/pod/p", "2", 100, &upd);
        write(&m, "d/configmap/c", "3", 50, &ins);
        assert_eq!(m.summary().sync_ms.count, 1);
        write(&m, "d/configmap/c", "4", 200, &upd);
        let s = m.summary();
        assert_eq!((s.sync_ms.count, s.edge_writes), (2, 4));
        assert!(s.violations.is_empty());
    }
}
