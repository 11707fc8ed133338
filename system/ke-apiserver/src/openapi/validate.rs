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

use crate::{
    registry::{ResourceInfo, SchemaSource},
    schema::{self, OBJECT_META},
};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// JSON paths of the fields of `obj` not declared by the schema of `info`'s kind, sorted and
/// deduplicated. Kube reports each as `strict decoding error: unknown field "<path>"`.
pub fn unknown_fields(info: &ResourceInfo, obj: &Value) -> Vec<String> {
    walk_root(info, obj, None)
}

/// [`unknown_fields`] of `obj`, a changed version of `old` (the stored object a patch
/// applied to), in the top-level fields that differ from `old`'s: what is unchanged was
/// checked when it was written. A status patch of a pod walks its status, not its spec.
pub fn unknown_fields_changed(info: &ResourceInfo, obj: &Value, old: &Value) -> Vec<String> {
    walk_root(info, obj, old.as_object())
}

fn walk_root<'v>(
    info: &ResourceInfo,
    obj: &'v Value,
    old: Option<&'v Map<String, Value>>,
) -> Vec<String> {
    let mut walker = Walker {
        defs: schema::builtin_definitions(),
        found: BTreeSet::new(),
        path: Vec::new(),
        unchanged_root: old,
    };
    match &info.schema {
        SchemaSource::Builtin(def) => {
            if let Some(s) = walker.defs.get(*def) {
                walker.walk(s, obj, false);
            }
        }
        SchemaSource::Crd(None) => {}
        SchemaSource::Crd(Some(s)) => walker.walk_custom_root(s, obj),
    }
    walker.found.into_iter().collect()
}

/// One step of a field path: an object key or an array index.
#[derive(Clone, Copy)]
enum Seg<'v> {
    Key(&'v str),
    Index(usize),
}

/// Walks an object against a schema. The path to the current field is kept as a stack of
/// steps and written out only for an unknown field, so a valid object costs no string work.
struct Walker<'a, 'v> {
    defs: &'a BTreeMap<String, Value>,
    found: BTreeSet<String>,
    path: Vec<Seg<'v>>,
    /// The stored version of the root object: its top-level fields equal to the walked
    /// object's are skipped. Taken by the first object walked (the root).
    unchanged_root: Option<&'v Map<String, Value>>,
}

fn is_true(s: &Value, key: &str) -> bool {
    s.get(key).and_then(Value::as_bool).unwrap_or(false)
}

impl<'v> Walker<'_, 'v> {
    /// The current path as kube writes it: `spec.containers[0].imagee`.
    fn path_text(&self) -> String {
        let mut out = String::new();
        for seg in &self.path {
            match seg {
                Seg::Key(k) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(k);
                }
                Seg::Index(i) => {
                    out.push('[');
                    out.push_str(&i.to_string());
                    out.push(']');
                }
            }
        }
        out
    }

    /// Walks `value` against `schema`; `structural` is true inside a custom resource's own
    /// schema (a reference always leads to a built-in definition).
    fn walk(&mut self, schema: &Value, value: &'v Value, structural: bool) {
        if let Some(name) = schema::ref_name(schema) {
            if let Some(def) = self.defs.get(name) {
                self.walk(def, value, false);
            }
            return;
        }
        if is_true(schema, "x-kubernetes-int-or-string") {
            return;
        }
        match value {
            Value::Object(m) => self.walk_object(schema, m, structural),
            Value::Array(items) => {
                if let Some(item_schema) = schema.get("items").filter(|s| s.is_object()) {
                    for (i, v) in items.iter().enumerate() {
                        self.path.push(Seg::Index(i));
                        self.walk(item_schema, v, structural);
                        self.path.pop();
                    }
                }
            }
            _ => {}
        }
    }

    /// Walks a custom resource against its CRD's schema `s` as if against the kind's
    /// published schema ([`super::kinds::custom_kind_schema`]: `s` with `apiVersion`, `kind` and
    /// `metadata` declared over whatever `s` says of them), without building that schema:
    /// it is a copy of the whole CRD schema, which every write would pay for.
    fn walk_custom_root(&mut self, s: &Value, obj: &'v Value) {
        let Value::Object(m) = obj else { return };
        if !s.is_object() {
            // custom_kind_schema publishes a schema that keeps every field.
            return;
        }
        let props = s.get("properties").and_then(Value::as_object);
        let additional = s.get("additionalProperties");
        // The published schema always declares properties, so it is closed unless it
        // preserves unknown fields.
        let open = is_true(s, "x-kubernetes-preserve-unknown-fields");
        let old = self.unchanged_root.take();
        for (key, v) in m {
            if old.is_some_and(|o| o.get(key) == Some(v)) {
                continue;
            }
            self.path.push(Seg::Key(key));
            match key.as_str() {
                "apiVersion" | "kind" => {}
                "metadata" => {
                    if let Some(meta) = self.defs.get(OBJECT_META) {
                        self.walk(meta, v, false);
                    }
                }
                _ => self.walk_field(props, additional, open, false, key, v, true),
            }
            self.path.pop();
        }
    }

    fn walk_object(&mut self, s: &Value, m: &'v Map<String, Value>, structural: bool) {
        let props = s.get("properties").and_then(Value::as_object);
        let additional = s.get("additionalProperties");
        let preserve = is_true(s, "x-kubernetes-preserve-unknown-fields");
        let embedded = structural && is_true(s, "x-kubernetes-embedded-resource");
        let object_type = matches!(s.get("type").and_then(Value::as_str), None | Some("object"));
        // A built-in schema with no declared fields is free-form (RawExtension and the like).
        let closed = structural && object_type || props.is_some();
        let old = self.unchanged_root.take();
        for (key, v) in m {
            if old.is_some_and(|o| o.get(key) == Some(v)) {
                continue;
            }
            self.path.push(Seg::Key(key));
            self.walk_field(
                props,
                additional,
                preserve || !closed,
                embedded,
                key,
                v,
                structural,
            );
            self.path.pop();
        }
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "the parent schema's facts, passed down once"
    )]
    fn walk_field(
        &mut self,
        props: Option<&Map<String, Value>>,
        additional: Option<&Value>,
        open: bool,
        embedded: bool,
        key: &str,
        v: &'v Value,
        structural: bool,
    ) {
        if let Some(prop) = props.and_then(|ps| ps.get(key)) {
            self.walk(prop, v, structural);
            return;
        }
        if embedded && (key == "apiVersion" || key == "kind") {
            return;
        }
        if embedded && key == "metadata" {
            if let Some(meta) = self.defs.get(OBJECT_META) {
                self.walk(meta, v, false);
            }
            return;
        }
        match additional {
            Some(a @ Value::Object(_)) => self.walk(a, v, structural),
            Some(Value::Bool(true)) => {}
            _ if open => {}
            _ => {
                let p = self.path_text();
                self.found.insert(p);
            }
        }
    }
}
