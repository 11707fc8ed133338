//! What of an object the edge needs: everything except its `status` and the metadata the API
//! server rewrites on every write (`resourceVersion`, `generation`, `managedFields`).
//!
//! KubeEdge's EdgeController does not send a pod to its node when only these changed
//! (`PodManager.isPodUpdated` in `cloud/pkg/edgecontroller/manager/pod.go`): the status came
//! from the edge in the first place, so sending it back (a "status echo") costs a message, an
//! ACK and a store write per status report and tells the edge nothing. [`same_desired`] is that
//! comparison. Because the edge then holds an older resourceVersion than the API server,
//! versions alone cannot say after a reconnect whether the edge is current; the inventory
//! carries [`desired_digest`] of each pod the edge holds, and the cloud compares it with the
//! digest of its own copy.
//!
//! The digest is the first 16 bytes (32 hex digits) of the SHA-256 of the object's compact
//! JSON with those fields removed and object keys in sorted order (serde_json's default map
//! is ordered), so the edge and the cloud compute it alike from any JSON of the same object.

use crate::content::members;
use serde::{Serialize, Serializer, ser::SerializeMap};
use serde_json::{Value, value::RawValue};
use sha2::{Digest, Sha256};
use std::borrow::Cow;

/// Metadata fields the API server changes on every write, ignored by the comparison.
const VOLATILE_METADATA: [&str; 3] = ["resourceVersion", "generation", "managedFields"];

/// True if `a` and `b` differ at most in `status`, `metadata.resourceVersion`,
/// `metadata.generation` and `metadata.managedFields`. Compares in place, no copies.
pub fn same_desired(a: &Value, b: &Value) -> bool {
    let (Some(x), Some(y)) = (a.as_object(), b.as_object()) else {
        return a == b;
    };
    let kept = |k: &&String| k.as_str() != "status";
    x.keys().filter(kept).eq(y.keys().filter(kept))
        && x.iter()
            .filter(|(k, _)| kept(k))
            .all(|(k, v)| match (k.as_str(), y.get(k)) {
                ("metadata", Some(w)) => same_metadata(v, w),
                (_, w) => w == Some(v),
            })
}

fn same_metadata(a: &Value, b: &Value) -> bool {
    let (Some(x), Some(y)) = (a.as_object(), b.as_object()) else {
        return a == b;
    };
    let kept = |k: &&String| !VOLATILE_METADATA.contains(&k.as_str());
    x.keys().filter(kept).eq(y.keys().filter(kept))
        && x.iter()
            .filter(|(k, _)| kept(k))
            .all(|(k, v)| y.get(k) == Some(v))
}

/// [`same_desired`] of two objects' JSON texts, comparing the members' text without parsing
/// them into `Value`s: exact for texts one serializer wrote (the same value, the same text,
/// as for two versions of one typed object). `None` if either text is not a JSON object.
pub fn same_desired_text(a: &str, b: &str) -> Option<bool> {
    let (x, y) = (members(a)?, members(b)?);
    let kept = |(k, _): &(&Cow<'_, str>, &&RawValue)| k.as_ref() != "status";
    let mut xs = x.iter().filter(kept);
    let mut ys = y.iter().filter(kept);
    loop {
        match (xs.next(), ys.next()) {
            (None, None) => return Some(true),
            (Some((k, v)), Some((l, w))) if k == l => {
                let same = if k.as_ref() == "metadata" {
                    same_metadata_text(v.get(), w.get())?
                } else {
                    v.get() == w.get()
                };
                if !same {
                    return Some(false);
                }
            }
            _ => return Some(false),
        }
    }
}

fn same_metadata_text(a: &str, b: &str) -> Option<bool> {
    let (x, y) = (members(a)?, members(b)?);
    let kept = |(k, _): &(&Cow<'_, str>, &&RawValue)| !VOLATILE_METADATA.contains(&k.as_ref());
    Some(
        x.iter()
            .filter(kept)
            .map(|(k, v)| (k, v.get()))
            .eq(y.iter().filter(kept).map(|(k, v)| (k, v.get()))),
    )
}

/// The digest of what of `obj` the edge needs (see the module docs): equal digests, equal
/// [`same_desired`] content. Streams the filtered JSON into the hash, no copy of `obj`.
pub fn desired_digest(obj: &Value) -> String {
    let mut h = HashWriter(Sha256::new());
    // Writing into a hash cannot fail, nor can serializing a `Value`.
    let _ = serde_json::to_writer(&mut h, &Filtered { v: obj, top: true });
    h.0.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `v` without `status` (at the top) and the volatile metadata (in `metadata`).
struct Filtered<'a> {
    v: &'a Value,
    top: bool,
}

impl Serialize for Filtered<'_> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let Some(m) = self.v.as_object() else {
            return self.v.serialize(ser);
        };
        let skip = |k: &str| {
            if self.top {
                k == "status"
            } else {
                VOLATILE_METADATA.contains(&k)
            }
        };
        let mut map = ser.serialize_map(None)?;
        for (k, v) in m.iter().filter(|(k, _)| !skip(k)) {
            if self.top && k == "metadata" {
                map.serialize_entry(k, &Filtered { v, top: false })?;
            } else {
                map.serialize_entry(k, v)?;
            }
        }
        map.end()
    }
}

struct HashWriter(Sha256);

impl std::io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(rv: &str, phase: &str, image: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "default", "uid": "u1",
                "resourceVersion": rv, "generation": 1, "labels": {"app": "a"}},
            "spec": {"nodeName": "edge-1", "containers": [{"name": "c", "image": image}]},
            "status": {"phase": phase}})
    }

    /// Goal: the comparison of texts agrees with the comparison of values for texts written
    /// by one serializer. Method: every pair of the status-test objects, both ways.
    #[test]
    fn texts_compare_as_their_values() {
        let a = pod("1", "Pending", "app:v1");
        let mut variants = vec![
            a.clone(),
            pod("2", "Running", "app:v1"),
            pod("2", "Pending", "app:v2"),
        ];
        let mut v = a.clone();
        v["metadata"]["generation"] = json!(2);
        v["metadata"]["managedFields"] = json!([{"manager": "x"}]);
        variants.push(v);
        let mut v = a.clone();
        v["metadata"]["labels"]["app"] = json!("b");
        variants.push(v);
        let mut v = a.clone();
        v["metadata"]["deletionTimestamp"] = json!("2026-12-07T00:00:00Z");
        variants.push(v);
        let mut v = a.clone();
        v["zz"] = json!(1);
        variants.push(v);
        let mut v = a;
        v.as_object_mut().unwrap().remove("status");
        variants.push(v);
        for x in &variants {
            for y in &variants {
                let (tx, ty) = (x.to_string(), y.to_string());
                assert_eq!(
                    same_desired_text(&tx, &ty),
                    Some(same_desired(x, y)),
                    "{x} {y}"
                );
            }
        }
        assert_eq!(same_desired_text("[1]", "{}"), None);
    }

    /// Goal: a status report's echo is recognised, any other change is not. Method: the same
    /// pod with a new status and resourceVersion, then with a changed image, label,
    /// deletionTimestamp, an added top-level field, and a non-object.
    #[test]
    fn status_and_versions_are_not_desired_content() {
        let a = pod("1", "Pending", "app:v1");
        let echo = pod("2", "Running", "app:v1");
        assert!(same_desired(&a, &echo));
        assert_eq!(desired_digest(&a), desired_digest(&echo));
        let mut gen2 = echo.clone();
        gen2["metadata"]["generation"] = json!(2);
        gen2["metadata"]["managedFields"] = json!([{"manager": "x"}]);
        assert!(same_desired(&a, &gen2));
        assert_eq!(desired_digest(&a), desired_digest(&gen2));

        let image = pod("2", "Pending", "app:v2");
        let mut label = pod("2", "Pending", "app:v1");
        label["metadata"]["labels"]["app"] = json!("b");
        let mut deleting = pod("2", "Running", "app:v1");
        deleting["metadata"]["deletionTimestamp"] = json!("2026-12-07T00:00:00Z");
        let mut extra = pod("2", "Pending", "app:v1");
        extra["data"] = json!({});
        for other in [&image, &label, &deleting, &extra] {
            assert!(!same_desired(&a, other), "{other}");
            assert!(!same_desired(other, &a), "{other}");
            assert_ne!(desired_digest(&a), desired_digest(other), "{other}");
        }
        assert!(!same_desired(&a, &json!("p")));
        assert!(same_desired(&json!(1), &json!(1)));
    }

    /// Goal: the digest does not depend on how the JSON was written. Method: the same pod
    /// parsed from text with its keys in another order, and without a status at all.
    #[test]
    fn digest_is_independent_of_key_order_and_status() {
        let a = pod("7", "Running", "app:v1");
        let text = r#"{"status":{"phase":"Failed"},"spec":{"containers":[{"image":"app:v1","name":"c"}],
            "nodeName":"edge-1"},"metadata":{"labels":{"app":"a"},"uid":"u1","namespace":"default",
            "name":"p","resourceVersion":"3"},"kind":"Pod","apiVersion":"v1"}"#;
        let b: Value = serde_json::from_str(text).unwrap();
        assert_eq!(desired_digest(&a), desired_digest(&b));
        let mut bare = a.clone();
        bare.as_object_mut().unwrap().remove("status");
        assert_eq!(desired_digest(&a), desired_digest(&bare));
        assert_eq!(desired_digest(&a).len(), 32);
    }
}
