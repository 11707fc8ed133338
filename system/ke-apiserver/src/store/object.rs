//! A stored object: its serialized bytes plus what selectors need, extracted once at write time.

use bytes::Bytes;
use serde::Serialize;
use serde_json::{Map, Value, value::RawValue};
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
    /// `metadata.labels`, sorted by key, for label selectors (a boxed slice: a `BTreeMap` per
    /// object cost about 0.5 KiB even for three labels).
    pub labels: Labels,
    /// Values of selectable fields (`spec.nodeName`, `status.phase`, ...), sorted by path.
    pub fields: Box<[(&'static str, Box<str>)]>,
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
        Self::from_value_sized(rv, value, 0)
    }

    /// [`Obj::from_value`] with the size of the text expected, typically the length of the
    /// version it replaces. serde_json's writer starts at 128 bytes and doubles, so a 4 KiB
    /// pod was copied six times while it was written, and once more when the text was cut
    /// to size: the copies were 12% of the simulated API server's time in a pod burst. With
    /// room for the expected text plus an eighth, a status update is written in place and
    /// kept without a copy (shrinking a block by less than half stays in place).
    pub fn from_value_sized(rv: u64, value: &Value, expected_len: usize) -> Arc<Self> {
        let meta = &value["metadata"];
        let mut labels: Vec<(Box<str>, Box<str>)> = meta["labels"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.as_str().into(), v.as_str().unwrap_or_default().into()))
                    .collect()
            })
            .unwrap_or_default();
        labels.sort();
        let mut fields: Vec<(&'static str, Box<str>)> = SELECTABLE
            .iter()
            .filter_map(|path| lookup(value, path).map(|v| (*path, v.into_boxed_str())))
            .collect();
        fields.sort();
        // A boxed slice: `Bytes::from(Vec)` would keep the serializer's doubled capacity.
        let mut json = Vec::with_capacity(expected_len + expected_len / 8 + 128);
        if serde_json::to_writer(&mut json, value).is_err() {
            json.clear();
        }
        let json = json.into_boxed_slice();
        let json = Bytes::from(json);
        Arc::new(Self {
            rv,
            namespace: meta["namespace"].as_str().unwrap_or_default().to_owned(),
            name: meta["name"].as_str().unwrap_or_default().to_owned(),
            json,
            labels: Labels(labels.into_boxed_slice()),
            fields: fields.into_boxed_slice(),
        })
    }

    /// The next version of this object with only its status and metadata replaced (a
    /// status write): `members` are this object's own, `metadata` and `status` are written
    /// as given and every other member is copied as stored, without a parse. The text is the
    /// one [`Obj::from_value`] writes for the whole object; labels are kept and the status's
    /// selectable fields taken anew.
    pub fn with_status(
        &self,
        rv: u64,
        members: &Members<'_>,
        metadata: &Value,
        status: &Value,
    ) -> Arc<Self> {
        let mut out: BTreeMap<&str, Member<'_>> = members
            .0
            .iter()
            .map(|(k, v)| (*k, Member::Stored(v)))
            .collect();
        out.insert("metadata", Member::Parsed(metadata));
        out.insert("status", Member::Parsed(status));
        let len = self.json.len();
        let mut json = Vec::with_capacity(len + len / 8 + 128);
        if serde_json::to_writer(&mut json, &out).is_err() {
            json.clear();
        }
        let mut fields: Vec<(&'static str, Box<str>)> = self
            .fields
            .iter()
            .filter(|(path, _)| !path.starts_with("status."))
            .cloned()
            .chain(SELECTABLE.iter().filter_map(|path| {
                let rest = path.strip_prefix("status.")?;
                lookup(status, rest).map(|v| (*path, v.into_boxed_str()))
            }))
            .collect();
        fields.sort();
        Arc::new(Self {
            rv,
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            json: Bytes::from(json.into_boxed_slice()),
            labels: self.labels.clone(),
            fields: fields.into_boxed_slice(),
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
            _ => self
                .fields
                .binary_search_by(|(k, _)| (*k).cmp(path))
                .ok()
                .map(|i| &*self.fields[i].1),
        }
    }
}

/// A stored object's top-level members, each as stored (found, not parsed), for writes that
/// change a few members of a large object: a pod's status report need not parse its spec.
#[derive(Debug)]
pub struct Members<'a>(BTreeMap<&'a str, &'a RawValue>);

impl<'a> Members<'a> {
    /// The members of `obj`; `None` if its text is not an object or a key is escaped (then
    /// the caller parses the whole object).
    pub fn of(obj: &'a Obj) -> Option<Self> {
        serde_json::from_slice(&obj.json).ok().map(Self)
    }

    /// An object holding the members named in `keys` that are present, parsed.
    pub fn parse(&self, keys: &[&str]) -> Value {
        let mut m = Map::new();
        for k in keys {
            if let Some(raw) = self.0.get(k) {
                let v = serde_json::from_str(raw.get()).unwrap_or(Value::Null);
                m.insert((*k).to_owned(), v);
            }
        }
        Value::Object(m)
    }
}

/// One member of an object being written: copied as stored, or serialized.
#[derive(Serialize)]
#[serde(untagged)]
enum Member<'a> {
    Stored(&'a RawValue),
    Parsed(&'a Value),
}

/// Labels of an object, sorted by key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Labels(pub Box<[(Box<str>, Box<str>)]>);

impl Labels {
    /// The value of label `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(k, _)| (**k).cmp(key))
            .ok()
            .map(|i| &*self.0[i].1)
    }
}

impl From<BTreeMap<String, String>> for Labels {
    fn from(m: BTreeMap<String, String>) -> Self {
        Self(
            m.into_iter()
                .map(|(k, v)| (k.into_boxed_str(), v.into_boxed_str()))
                .collect(),
        )
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
