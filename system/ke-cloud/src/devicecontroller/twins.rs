//! `DeviceStatus.status.twins` (KubeEdge's `v1beta1.Twin`) and how an edge's
//! `twin/edge_updated` report changes it (`upstream.go`, `findOrCreateTwinByName`).
//!
//! A JSON merge patch replaces arrays, so the controller patches the device's whole twin list
//! and keeps it per device ([`TwinCache`]); entries whose property left `spec.properties` are
//! dropped on the next report (KubeEdge's `removeTwinWithNameChanged`).

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Mutex, PoisonError},
};

use ke_proto::twin::{MsgTwin, TwinUpdate, TwinValue};
use serde::{Deserialize, Serialize};

/// A reported or observed-desired value: `{value, metadata}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TwinProperty {
    /// The value.
    #[serde(default)]
    pub value: String,
    /// `timestamp` (ms, decimal) and `type`, when the edge sent them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

/// One entry of `status.twins`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Twin {
    /// The property (a name in the Device's `spec.properties`).
    #[serde(default)]
    pub property_name: String,
    /// The value the device reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported: Option<TwinProperty>,
    /// The desired value the edge last saw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_desired: Option<TwinProperty>,
}

/// The twin list of a DeviceStatus object (`status.twins`; empty when absent or unreadable).
pub fn twins_of(device_status: &serde_json::Value) -> Vec<Twin> {
    device_status
        .pointer("/status/twins")
        .cloned()
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default()
}

fn property(value: Option<&TwinValue>, twin: &MsgTwin) -> Option<TwinProperty> {
    let value = value?;
    let v = value.value.clone()?;
    let mut metadata = BTreeMap::new();
    if let Some(ts) = value.metadata.map(|m| m.timestamp).filter(|ts| *ts != 0) {
        metadata.insert("timestamp".to_owned(), ts.to_string());
    }
    if let Some(kind) = twin.metadata.as_ref().filter(|m| !m.kind.is_empty()) {
        metadata.insert("type".to_owned(), kind.kind.clone());
    }
    Some(TwinProperty { value: v, metadata })
}

/// What [`apply_report`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// How many reported properties were applied (the others are not in the spec).
    pub properties: usize,
    /// True if the list changed (an entry dropped or added, or a value or its metadata new).
    pub changed: bool,
}

/// Sets `slot` to `value` if that changes it; true if it did.
fn set_if_new(slot: &mut Option<TwinProperty>, value: Option<TwinProperty>) -> bool {
    match value {
        Some(v) if slot.as_ref() != Some(&v) => {
            *slot = Some(v);
            true
        }
        _ => false,
    }
}

/// Applies a report to `twins`: drops entries whose property is not in `properties`, then for
/// each reported property that is, sets `reported` from `actual` and `observedDesired` from
/// `expected` (each only when the report carries a value), adding the entry if new (in the
/// report's property order).
pub fn apply_report(twins: &mut Vec<Twin>, report: &TwinUpdate, properties: &[&str]) -> Applied {
    let known = |name: &str| properties.contains(&name);
    let before = twins.len();
    twins.retain(|t| known(&t.property_name));
    let mut changed = twins.len() != before;
    let mut applied = 0;
    for (name, msg) in &report.twin {
        if !known(name) {
            continue;
        }
        applied += 1;
        let i = match twins.iter().position(|t| &t.property_name == name) {
            Some(i) => i,
            None => {
                twins.push(Twin {
                    property_name: name.clone(),
                    ..Twin::default()
                });
                changed = true;
                twins.len() - 1
            }
        };
        let entry = &mut twins[i];
        changed |= set_if_new(&mut entry.reported, property(msg.actual.as_ref(), msg));
        changed |= set_if_new(
            &mut entry.observed_desired,
            property(msg.expected.as_ref(), msg),
        );
    }
    Applied {
        properties: applied,
        changed,
    }
}

/// A device's twin list as last written, with the UID of the Device it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedTwins {
    /// The Device's UID (a recreated device starts over).
    pub device_uid: String,
    /// `status.twins` as last written.
    pub twins: Vec<Twin>,
}

/// Per-device twin lists, shared by the upstream workers (a device's reports come from its
/// node, whose requests one worker handles in order). Entries go when the Device is deleted.
///
/// A hash map: it is only looked up, never iterated, so its order cannot leak into a run.
/// Every twin report takes and puts back an entry; in a `BTreeMap` of 50,000 devices those
/// two walks compared about 16 long, shared-prefix names each and were 4.5% of cloudcore's
/// CPU under twin load.
#[derive(Debug, Default)]
pub struct TwinCache {
    devices: Mutex<HashMap<(String, String), CachedTwins>>,
}

impl TwinCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), CachedTwins>> {
        self.devices.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes the cached list of device `key` out of the cache (no copy), if it belongs to the
    /// Device with `uid`; [`TwinCache::put`] puts it back once written. A list that belongs to
    /// an older Device of that name is dropped.
    pub fn take(&self, key: &(String, String), uid: &str) -> Option<Vec<Twin>> {
        self.lock()
            .remove(key)
            .filter(|c| c.device_uid == uid)
            .map(|c| c.twins)
    }

    /// Records the list just written.
    pub fn put(&self, key: (String, String), uid: &str, twins: Vec<Twin>) {
        let entry = CachedTwins {
            device_uid: uid.to_owned(),
            twins,
        };
        self.lock().insert(key, entry);
    }

    /// Forgets a device (deleted, or its status could not be written).
    pub fn remove(&self, key: &(String, String)) {
        self.lock().remove(key);
    }

    /// How many devices are cached.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True if no device is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use serde_json::json;

    use super::*;

    fn report(v: serde_json::Value) -> TwinUpdate {
        serde_json::from_value(v).unwrap()
    }

    /// Goal: the first report of a property is written with its value and metadata (KubeEdge
    /// writes empty values the first time); properties outside the spec are ignored.
    /// Method: an empty list, a report of `temp` (actual with timestamp and type, expected
    /// without metadata) and of `ghost`.
    #[test]
    fn first_report_is_written() {
        let mut twins = Vec::new();
        let r = report(json!({"event_id": "e", "timestamp": 1, "twin": {
            "temp": {"actual": {"value": "23", "metadata": {"timestamp": 1700}},
                     "expected": {"value": "25"}, "metadata": {"type": "int"}},
            "ghost": {"actual": {"value": "1"}}}}));
        let applied = apply_report(&mut twins, &r, &["temp"]);
        assert_eq!((applied.properties, applied.changed), (1, true));
        let got = serde_json::to_value(&twins).unwrap();
        assert_eq!(
            got,
            json!([{"propertyName": "temp",
                "reported": {"value": "23", "metadata": {"timestamp": "1700", "type": "int"}},
                "observedDesired": {"value": "25", "metadata": {"type": "int"}}}])
        );
    }

    /// Goal: a later report changes only what it carries, keeps the other entries and drops
    /// entries whose property left the spec. Method: two entries, `rpm` removed from the spec,
    /// a report of `temp`'s actual value only.
    #[test]
    fn later_reports_merge_and_drop_removed_properties() {
        let mut twins: Vec<Twin> = serde_json::from_value(json!([
            {"propertyName": "temp", "reported": {"value": "1"},
             "observedDesired": {"value": "5"}},
            {"propertyName": "rpm", "reported": {"value": "900"}}]))
        .unwrap();
        let r = report(json!({"twin": {"temp": {"actual": {"value": "2"}}}}));
        let applied = apply_report(&mut twins, &r, &["temp"]);
        assert_eq!((applied.properties, applied.changed), (1, true));
        assert_eq!(twins.len(), 1);
        assert_eq!(twins[0].reported.as_ref().unwrap().value, "2");
        assert_eq!(twins[0].observed_desired.as_ref().unwrap().value, "5");
    }

    /// Goal: a report that repeats what the list holds changes nothing (no write follows);
    /// a dropped entry alone is a change. Method: the same report applied twice, then the
    /// spec without one of two properties and a report of the other.
    #[test]
    fn unchanged_reports_are_recognised() {
        let mut twins = Vec::new();
        let r = report(json!({"twin": {"temp": {"actual": {"value": "7"}}}}));
        assert!(apply_report(&mut twins, &r, &["temp", "rpm"]).changed);
        assert!(!apply_report(&mut twins, &r, &["temp", "rpm"]).changed);
        let rpm = report(json!({"twin": {"rpm": {"actual": {"value": "9"}}}}));
        assert!(apply_report(&mut twins, &rpm, &["temp", "rpm"]).changed);
        assert!(!apply_report(&mut twins, &rpm, &["temp", "rpm"]).changed);
        let applied = apply_report(&mut twins, &rpm, &["rpm"]);
        assert_eq!((applied.properties, applied.changed), (1, true));
        assert_eq!(twins.len(), 1);
    }

    /// Goal: the cache answers only for the Device it was filled for, and hands its list out
    /// without a copy. Method: put, take with another UID, put, take with the same, remove.
    #[test]
    fn cache_is_per_device_uid() {
        let c = TwinCache::default();
        let key = ("default".to_owned(), "d".to_owned());
        c.put(key.clone(), "u1", vec![Twin::default()]);
        assert_eq!(c.take(&key, "u2"), None, "another device's list");
        assert!(c.is_empty(), "a list of an older device is dropped");
        c.put(key.clone(), "u1", vec![Twin::default()]);
        assert_eq!(c.take(&key, "u1").map(|t| t.len()), Some(1));
        assert!(c.is_empty(), "taken until put back");
        c.put(key.clone(), "u1", Vec::new());
        c.remove(&key);
        assert!(c.is_empty());
        let status = json!({"status": {"twins": [{"propertyName": "a"}]}});
        assert_eq!(twins_of(&status)[0].property_name, "a");
        assert!(twins_of(&json!({})).is_empty());
    }
}
