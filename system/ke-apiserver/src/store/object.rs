//! A stored object: its serialized bytes plus what selectors need, extracted once at write time.

use bytes::Bytes;
use serde_json::Value;
use std::{collections::BTreeMap, sync::Arc};

/// One stored object version. Immutable; shared between the live map, the watch window and
/// in-flight responses.
#[derive(Debug, Clone, PartialEq)]
pub struct Obj {
    /// The resourceVersion written into the object.
    pub rv: u64,
    /// Namespace (empty for cluster-scoped objects).
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The object as JSON bytes, exactly as served.
    pub json: Bytes,
    /// `metadata.labels`, for label selectors.
    pub labels: BTreeMap<String, String>,
    /// Values of selectable fields (`spec.nodeName`, `status.phase`, ...), for field selectors.
    pub fields: BTreeMap<&'static str, String>,
}

/// Fields every object can be selected by, beyond `metadata.name` and `metadata.namespace`.
const SELECTABLE: &[&str] = &[
    "spec.nodeName",
    "status.phase",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "status.podIP",
    "spec.unschedulable",
    "type",
    "reason",
    "involvedObject.kind",
    "involvedObject.name",
    "involvedObject.namespace",
    "involvedObject.uid",
    "status.nominatedNodeName",
];

impl Obj {
    /// Builds the stored form of `value`, which must already carry its final metadata.
    pub fn from_value(rv: u64, value: &Value) -> Arc<Self> {
        let meta = &value["metadata"];
        let labels = meta["labels"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        let mut fields = BTreeMap::new();
        for path in SELECTABLE {
            if let Some(v) = lookup(value, path) {
                fields.insert(*path, v);
            }
        }
        let json = Bytes::from(serde_json::to_vec(value).unwrap_or_default());
        Arc::new(Self {
            rv,
            namespace: meta["namespace"].as_str().unwrap_or_default().to_owned(),
            name: meta["name"].as_str().unwrap_or_default().to_owned(),
            json,
            labels,
            fields,
        })
    }

    /// Parses the stored bytes back into JSON.
    pub fn value(&self) -> Value {
        serde_json::from_slice(&self.json).unwrap_or(Value::Null)
    }

    /// The value of a selectable field, as a field selector compares it.
    pub fn field(&self, path: &str) -> Option<&str> {
        match path {
            "metadata.name" => Some(&self.name),
            "metadata.namespace" => Some(&self.namespace),
            _ => self.fields.get(path).map(String::as_str),
        }
    }
}

fn lookup(value: &Value, path: &str) -> Option<String> {
    let mut cur = value;
    for part in path.split('.') {
        cur = cur.get(part)?;
    }
    match cur {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}
