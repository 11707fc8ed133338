//! Strict field validation: the fields of an object its kind's schema does not declare.
//!
//! Built-in kinds follow Go's strict JSON decoding (sigs.k8s.io/json): a field is unknown when
//! the struct has no such field; maps (`additionalProperties`) take any key; a schema that
//! declares neither properties nor additionalProperties (`RawExtension`, `FieldsV1`, `JSON`,
//! `IntOrString`, `Quantity`) takes anything. Custom resources follow kube's structural pruning
//! (apiextensions `pruning/algorithm.go`): an object without `properties`,
//! `additionalProperties` or `x-kubernetes-preserve-unknown-fields` keeps no field, and
//! `x-kubernetes-embedded-resource` objects keep `apiVersion`, `kind` and `metadata`. Paths are
//! written like kube's errors: `spec.containers[0].imagee`.

use super::kinds;
use crate::{
    registry::{ResourceInfo, SchemaSource},
    schema::{self, OBJECT_META},
};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// JSON paths of the fields of `obj` not declared by the schema of `info`'s kind, sorted and
/// deduplicated. Kube reports each as `strict decoding error: unknown field "<path>"`.
pub fn unknown_fields(info: &ResourceInfo, obj: &Value) -> Vec<String> {
    let mut walker = Walker {
        defs: schema::builtin_definitions(),
        found: BTreeSet::new(),
    };
    match &info.schema {
        SchemaSource::Builtin(def) => {
            if let Some(s) = walker.defs.get(*def) {
                walker.walk(s, obj, "", false);
            }
        }
        SchemaSource::Crd(None) => {}
        SchemaSource::Crd(Some(s)) => {
            let kind = kinds::custom_kind_schema(info, Some(s));
            walker.walk(&kind, obj, "", true);
        }
    }
    walker.found.into_iter().collect()
}

struct Walker<'a> {
    defs: &'a BTreeMap<String, Value>,
    found: BTreeSet<String>,
}

fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn is_true(s: &Value, key: &str) -> bool {
    s.get(key).and_then(Value::as_bool).unwrap_or(false)
}

impl Walker<'_> {
    /// Walks `value` against `schema`; `structural` is true inside a custom resource's own
    /// schema (a reference always leads to a built-in definition).
    fn walk(&mut self, schema: &Value, value: &Value, path: &str, structural: bool) {
        if let Some(name) = schema::ref_name(schema) {
            if let Some(def) = self.defs.get(name) {
                self.walk(def, value, path, false);
            }
            return;
        }
        if is_true(schema, "x-kubernetes-int-or-string") {
            return;
        }
        match value {
            Value::Object(m) => self.walk_object(schema, m, path, structural),
            Value::Array(items) => {
                if let Some(item_schema) = schema.get("items").filter(|s| s.is_object()) {
                    for (i, v) in items.iter().enumerate() {
                        self.walk(item_schema, v, &format!("{path}[{i}]"), structural);
                    }
                }
            }
            _ => {}
        }
    }

    fn walk_object(&mut self, s: &Value, m: &Map<String, Value>, path: &str, structural: bool) {
        let props = s.get("properties").and_then(Value::as_object);
        let additional = s.get("additionalProperties");
        let preserve = is_true(s, "x-kubernetes-preserve-unknown-fields");
        let embedded = structural && is_true(s, "x-kubernetes-embedded-resource");
        let object_type = matches!(s.get("type").and_then(Value::as_str), None | Some("object"));
        // A built-in schema with no declared fields is free-form (RawExtension and the like).
        let closed = structural && object_type || props.is_some();
        for (key, v) in m {
            let p = child(path, key);
            if let Some(prop) = props.and_then(|ps| ps.get(key)) {
                self.walk(prop, v, &p, structural);
                continue;
            }
            if embedded && (key == "apiVersion" || key == "kind") {
                continue;
            }
            if embedded && key == "metadata" {
                if let Some(meta) = self.defs.get(OBJECT_META) {
                    self.walk(meta, v, &p, false);
                }
                continue;
            }
            match additional {
                Some(a @ Value::Object(_)) => self.walk(a, v, &p, structural),
                Some(Value::Bool(true)) => {}
                _ if preserve || !closed => {}
                _ => {
                    self.found.insert(p);
                }
            }
        }
    }
}
