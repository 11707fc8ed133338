//! The safety checkers over committed edge writes, shared by the simulator's trace and by
//! edgemark (real mode): per node and key the highest version stored, the UIDs deleted for
//! good, and the violations seen. Pure: the caller passes each [`Observed`] write.
//!
//! - `no_lost_updates`: a key's stored resourceVersion never goes back (same UID).
//! - `no_resurrection`: a UID deleted for good (not merely released) is never stored again.
//! - `own_objects_only`: a node stores only pods whose `spec.nodeName` is that node.

use std::collections::{BTreeMap, BTreeSet};

use ke_edge::metamanager::{Applied, Observed};

/// A stored object went back to an older version.
pub const NO_LOST_UPDATES: &str = "no_lost_updates";
/// A deleted object came back.
pub const NO_RESURRECTION: &str = "no_resurrection";
/// A node received another node's pod.
pub const OWN_OBJECTS_ONLY: &str = "own_objects_only";

/// The three checks with what a pass means, in report order.
pub const CHECKS: [(&str, &str); 3] = [
    (
        NO_LOST_UPDATES,
        "no stored object went back to an older version",
    ),
    (NO_RESURRECTION, "no deleted object came back"),
    (OWN_OBJECTS_ONLY, "every node stored only pods bound to it"),
];

const VIOLATIONS_KEPT: usize = 5;

/// Safety violations of one kind: how many, and the first few.
#[derive(Debug, Default, Clone, serde::Serialize, serde::Deserialize)]
pub struct Violations {
    /// How many were seen.
    pub count: u64,
    /// The first few, described.
    pub first: Vec<String>,
}

/// What one write left at its key, for whoever waits for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// The key now holds this resourceVersion.
    Stored(u64),
    /// The key is now empty.
    Gone,
    /// Nothing changed.
    Nothing,
}

/// The checkers' state for a set of nodes (numbered by the caller).
#[derive(Debug, Default)]
pub struct Safety {
    /// Per node and key: the UID and the highest resourceVersion the edge stored.
    held: BTreeMap<(u32, String), (String, u64)>,
    /// (node, UID) deleted at the edge for good (not released).
    deleted: BTreeSet<(u32, String)>,
    violations: BTreeMap<&'static str, Violations>,
    writes: u64,
}

impl Safety {
    /// Checks one committed write at node `node` (named `name`).
    pub fn observe(&mut self, node: u32, name: &str, o: &Observed<'_>) -> Seen {
        self.writes += 1;
        let key = (node, o.key.to_owned());
        match o.applied {
            Applied::Inserted | Applied::Updated => {
                let rv = o
                    .resource_version
                    .and_then(|r| r.parse::<u64>().ok())
                    .unwrap_or(0);
                self.upserted(key, name, rv, o);
                Seen::Stored(rv)
            }
            Applied::Deleted | Applied::Gone => {
                if !o.release
                    && let Some(uid) = o.uid
                {
                    self.deleted.insert((node, uid.to_owned()));
                }
                if !o.release || matches!(o.applied, Applied::Deleted) {
                    self.held.remove(&key);
                }
                Seen::Gone
            }
            Applied::Unchanged | Applied::Stale { .. } | Applied::Tombstoned => Seen::Nothing,
        }
    }

    fn upserted(&mut self, key: (u32, String), name: &str, rv: u64, o: &Observed<'_>) {
        let uid = o.uid.unwrap_or_default();
        if self.deleted.contains(&(key.0, uid.to_owned())) {
            let d = format!("{name}: {} uid {uid} stored again after its delete", key.1);
            self.violation(NO_RESURRECTION, d);
        }
        if o.key.contains("/pod/") {
            let bound = o.object.and_then(node_name);
            let bound = bound.as_deref();
            if bound != Some(name) {
                let d = format!("{name} stored {} bound to {bound:?}", key.1);
                self.violation(OWN_OBJECTS_ONLY, d);
            }
        }
        if let Some((held_uid, held_rv)) = self.held.get(&key)
            && held_uid == uid
            && *held_rv > rv
        {
            let d = format!("{name}: {} went back from rv {held_rv} to {rv}", key.1);
            self.violation(NO_LOST_UPDATES, d);
        }
        self.held.insert(key, (uid.to_owned(), rv));
    }

    /// Records a violation seen outside an edge write.
    pub fn violation(&mut self, check: &'static str, detail: String) {
        let v = self.violations.entry(check).or_default();
        v.count += 1;
        if v.first.len() < VIOLATIONS_KEPT {
            v.first.push(detail);
        }
    }

    /// Violations seen so far, by check.
    pub fn violations(&self) -> &BTreeMap<&'static str, Violations> {
        &self.violations
    }

    /// The UID and highest resourceVersion node `node` stored at `key`.
    pub fn held(&self, node: u32, key: &str) -> Option<&(String, u64)> {
        self.held.get(&(node, key.to_owned()))
    }

    /// Whether (node, UID) was deleted for good at the edge.
    pub fn was_deleted(&self, node: u32, uid: &str) -> bool {
        self.deleted.contains(&(node, uid.to_owned()))
    }

    /// Writes checked.
    pub fn writes(&self) -> u64 {
        self.writes
    }

    /// A check's verdict, as the reports word it: `(passed, detail)`.
    pub fn verdict(&self, check: &str, what: &str) -> (bool, String) {
        match self.violations.get(check) {
            None => (
                true,
                format!("{what} ({} edge writes checked)", self.writes),
            ),
            Some(v) => (
                false,
                format!("{} violations, first: {:?}", v.count, v.first),
            ),
        }
    }
}

/// `spec.nodeName` of a pod's JSON text, read without parsing the rest of it.
fn node_name(text: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Pod {
        spec: Option<Spec>,
    }
    #[derive(serde::Deserialize)]
    struct Spec {
        #[serde(rename = "nodeName")]
        node_name: Option<String>,
    }
    serde_json::from_str::<Pod>(text).ok()?.spec?.node_name
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test")]

    use super::*;
    use serde_json::json;

    fn write<'a>(
        key: &'a str,
        uid: &'a str,
        rv: &'a str,
        object: &'a str,
        applied: &'a Applied,
    ) -> Observed<'a> {
        Observed {
            key,
            uid: Some(uid),
            resource_version: Some(rv),
            object: Some(object),
            applied,
            release: false,
        }
    }

    /// Goal: each checker fires on its violation and not on normal traffic.
    #[test]
    fn each_checker_fires_on_its_violation() {
        let mut s = Safety::default();
        let mine = json!({"spec": {"nodeName": "n0"}}).to_string();
        let theirs = json!({"spec": {"nodeName": "n1"}}).to_string();
        let (ins, upd, del) = (Applied::Inserted, Applied::Updated, Applied::Deleted);
        assert_eq!(
            s.observe(0, "n0", &write("d/pod/a", "u1", "5", &mine, &ins)),
            Seen::Stored(5)
        );
        s.observe(0, "n0", &write("d/pod/a", "u1", "7", &mine, &upd));
        assert!(s.violations().is_empty());
        s.observe(0, "n0", &write("d/pod/a", "u1", "6", &mine, &upd));
        assert_eq!(s.violations()[NO_LOST_UPDATES].count, 1);
        s.observe(0, "n0", &write("d/pod/b", "u2", "8", &theirs, &ins));
        assert_eq!(s.violations()[OWN_OBJECTS_ONLY].count, 1);
        let gone = s.observe(0, "n0", &write("d/pod/a", "u1", "9", &mine, &del));
        assert_eq!(gone, Seen::Gone);
        assert!(s.was_deleted(0, "u1") && s.held(0, "d/pod/a").is_none());
        s.observe(0, "n0", &write("d/pod/a", "u1", "10", &mine, &ins));
        assert_eq!(s.violations()[NO_RESURRECTION].count, 1);
        assert_eq!(s.writes(), 6);
        let (passed, detail) = s.verdict(NO_RESURRECTION, "x");
        assert!(!passed && detail.starts_with("1 violations"), "{detail}");
    }
}
