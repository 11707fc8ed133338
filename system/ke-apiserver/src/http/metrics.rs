//! Request counters, rendered in the Prometheus text format at `/metrics`.

use crate::api::Api;
use std::{
    collections::BTreeMap,
    fmt::Write as _,
    sync::{
        Arc, Mutex,
        atomic::{AtomicI64, Ordering},
    },
};

/// Counters of one API server.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, String, u16), u64>>,
    watchers: Arc<AtomicI64>,
}

/// Counts a watcher while it lives.
#[derive(Debug)]
pub struct WatcherGuard(Arc<AtomicI64>);

impl Drop for WatcherGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    /// Counts one request.
    pub fn observe(&self, verb: &'static str, method: &str, code: u16) {
        let mut m = self
            .requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *m.entry((verb, method.to_owned(), code)).or_default() += 1;
    }

    /// Registers a watcher until the guard drops.
    pub fn watcher(&self) -> WatcherGuard {
        self.watchers.fetch_add(1, Ordering::Relaxed);
        WatcherGuard(self.watchers.clone())
    }

    /// Requests so far by verb (for reports).
    pub fn requests_by_verb(&self) -> BTreeMap<&'static str, u64> {
        let m = self
            .requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut out = BTreeMap::new();
        for ((verb, _, _), n) in m.iter() {
            *out.entry(*verb).or_default() += n;
        }
        out
    }

    /// The Prometheus text exposition.
    pub fn render(&self, api: &Api) -> String {
        let mut s = String::new();
        s.push_str("# HELP apiserver_request_total Requests by verb, method and code.\n");
        s.push_str("# TYPE apiserver_request_total counter\n");
        let m = self
            .requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for ((verb, method, code), n) in m.iter() {
            let _ = writeln!(
                s,
                "apiserver_request_total{{verb=\"{verb}\",method=\"{method}\",code=\"{code}\"}} {n}"
            );
        }
        drop(m);
        s.push_str(
            "# HELP apiserver_watchers Open watch streams.\n# TYPE apiserver_watchers gauge\n",
        );
        let _ = writeln!(
            s,
            "apiserver_watchers {}",
            self.watchers.load(Ordering::Relaxed)
        );
        s.push_str("# HELP apiserver_resource_version Latest resourceVersion.\n# TYPE apiserver_resource_version gauge\n");
        let _ = writeln!(s, "apiserver_resource_version {}", api.store.current_rv());
        s.push_str("# HELP apiserver_storage_objects Stored objects by resource.\n# TYPE apiserver_storage_objects gauge\n");
        let prefixes: std::collections::BTreeSet<String> = api
            .registry
            .all()
            .iter()
            .map(|r| r.storage_prefix())
            .collect();
        for p in prefixes {
            let n = api.store.count(&p);
            let _ = writeln!(s, "apiserver_storage_objects{{resource=\"{p}\"}} {n}");
        }
        s
    }
}
