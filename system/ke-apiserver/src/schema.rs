//! OpenAPI v3 definitions of the built-in kinds, generated once from k8s-openapi's `schemars`
//! implementations and then shaped the way kube-apiserver publishes them.
//!
//! Generation uses `schemars`' OpenAPI 3.0 settings, so every reference is written
//! `#/components/schemas/<name>` and a reference that carries a description is wrapped as
//! `{"allOf": [{"$ref": ...}], "description": ...}`, exactly kube's form (kubectl explain and
//! `strategicpatch.PatchMetaFromOpenAPIV3` both read `allOf[0]`). On top of that this module
//! adds what kubectl's OpenAPI consumers look for:
//!
//! - `x-kubernetes-group-version-kind` (a list of `{group, kind, version}`) on each top-level kind
//!   and its list kind: kubectl explain and apply find a kind's schema by this extension;
//! - `x-kubernetes-patch-strategy` / `x-kubernetes-patch-merge-key` on every property for which
//!   [`crate::patch::patch_meta`] answers: kubectl apply builds strategic merge patches from them;
//! - `<Kind>List` definitions (k8s-openapi has a generic `List<T>` without a schema).

use crate::{patch, registry};
use k8s_openapi::{
    api::{coordination::v1 as coordination, core::v1 as core},
    apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiextensions,
    apimachinery::pkg::apis::meta::v1 as meta,
};
use schemars::generate::{SchemaGenerator, SchemaSettings};
use serde_json::{Map, Value, json};
use std::{collections::BTreeMap, sync::OnceLock};

/// Name of the group-version-kind extension.
pub const GVK: &str = "x-kubernetes-group-version-kind";

/// Prefix of every reference in the v3 definitions.
pub const REF_PREFIX: &str = "#/components/schemas/";

/// Definition name of `ObjectMeta`.
pub const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
/// Definition name of `ListMeta`.
pub const LIST_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta";
/// Definition name of `Status`.
pub const STATUS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";
/// Definition name of `DeleteOptions`.
pub const DELETE_OPTIONS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions";
/// Definition name of `Patch` (the request body of every PATCH operation).
pub const PATCH: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch";

/// All OpenAPI v3 definitions of the built-in types, keyed by definition name
/// (`io.k8s.api.core.v1.Pod`), with references written as `#/components/schemas/<name>`.
pub fn builtin_definitions() -> &'static BTreeMap<String, Value> {
    static DEFS: OnceLock<BTreeMap<String, Value>> = OnceLock::new();
    DEFS.get_or_init(generate)
}

/// The definition name referenced by `schema` (`$ref`, or the single `allOf` element's `$ref`).
pub fn ref_name(schema: &Value) -> Option<&str> {
    let r = schema.get("$ref").or_else(|| {
        let all_of = schema.get("allOf")?.as_array()?;
        match all_of.as_slice() {
            [only] => only.get("$ref"),
            _ => None,
        }
    })?;
    r.as_str()?.strip_prefix(REF_PREFIX)
}

/// A `{group, kind, version}` object as kube writes it in `x-kubernetes-group-version-kind`.
pub fn gvk_value(group: &str, version: &str, kind: &str) -> Value {
    json!({"group": group, "kind": kind, "version": version})
}

/// Runs the schema generator over every built-in kind and the meta types operations refer to.
fn generate() -> BTreeMap<String, Value> {
    let mut generator = SchemaSettings::openapi3()
        .with(|s| s.meta_schema = None)
        .into_generator();
    add_types(&mut generator);
    let mut defs: BTreeMap<String, Value> = generator.take_definitions(true).into_iter().collect();
    for info in registry::builtins() {
        if let registry::SchemaSource::Builtin(def) = info.schema {
            add_kind_extensions(&mut defs, def, &info.group, &info.version, &info.kind);
            let list = list_definition(def, &info.kind, &info.group, &info.version);
            defs.insert(format!("{def}List"), list);
        }
    }
    if let Some(Value::Object(status)) = defs.get_mut(STATUS) {
        status.insert(GVK.into(), json!([gvk_value("", "v1", "Status")]));
    }
    for (name, def) in &mut defs {
        add_patch_extensions(name, def);
    }
    defs
}

fn add_types(g: &mut SchemaGenerator) {
    g.subschema_for::<core::Namespace>();
    g.subschema_for::<core::Node>();
    g.subschema_for::<core::Pod>();
    g.subschema_for::<core::ConfigMap>();
    g.subschema_for::<core::Secret>();
    g.subschema_for::<core::Service>();
    g.subschema_for::<core::Endpoints>();
    g.subschema_for::<core::Event>();
    g.subschema_for::<core::ServiceAccount>();
    g.subschema_for::<coordination::Lease>();
    g.subschema_for::<apiextensions::CustomResourceDefinition>();
    g.subschema_for::<meta::ListMeta>();
    g.subschema_for::<meta::Status>();
    g.subschema_for::<meta::DeleteOptions>();
    g.subschema_for::<meta::Patch>();
}

fn add_kind_extensions(
    defs: &mut BTreeMap<String, Value>,
    def: &str,
    group: &str,
    version: &str,
    kind: &str,
) {
    if let Some(Value::Object(obj)) = defs.get_mut(def) {
        obj.insert(GVK.into(), json!([gvk_value(group, version, kind)]));
        // k8s-openapi marks `metadata` required (its Rust field is not optional); kube does
        // not, and kubectl explain would print it as `-required-`.
        if let Some(Value::Array(required)) = obj.get_mut("required") {
            required.retain(|r| r != "metadata");
            if required.is_empty() {
                obj.remove("required");
            }
        }
    }
}

/// The `<Kind>List` definition: k8s-openapi models lists with a generic type and no schema, so
/// its shape (the one every Kubernetes list has) is written here.
pub fn list_definition(item_def: &str, kind: &str, group: &str, version: &str) -> Value {
    json!({
        "description": format!("{kind}List is a list of {kind} objects."),
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": {"type": "string", "description": API_VERSION_DOC},
            "kind": {"type": "string", "description": KIND_DOC},
            "items": {
                "type": "array",
                "description": format!("List of {kind} objects."),
                "items": {"allOf": [{"$ref": format!("{REF_PREFIX}{item_def}")}], "default": {}},
            },
            "metadata": {
                "allOf": [{"$ref": format!("{REF_PREFIX}{LIST_META}")}],
                "default": {},
                "description": conventions!("Standard list metadata.", "types-kinds"),
            },
        },
        GVK: [gvk_value(group, version, &format!("{kind}List"))],
    })
}

/// A description ending in a link to a section of Kubernetes' API conventions, as kube's do.
macro_rules! conventions {
    ($text:literal, $anchor:literal) => {
        concat!(
            $text,
            " More info: https://git.k8s.io/community/contributors/devel/",
            "sig-architecture/api-conventions.md#",
            $anchor
        )
    };
}
pub(crate) use conventions;

/// Description of `apiVersion` as kube writes it.
pub const API_VERSION_DOC: &str = conventions!(
    "APIVersion defines the versioned schema of this representation of an object. Servers should \
    convert recognized schemas to the latest internal value, and may reject unrecognized values.",
    "resources"
);
/// Description of `kind` as kube writes it.
pub const KIND_DOC: &str = conventions!(
    "Kind is a string value representing the REST resource this object represents. Servers may \
    infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase.",
    "types-kinds"
);

/// Adds the strategic-merge-patch extensions [`patch::patch_meta`] knows to `def`'s properties.
fn add_patch_extensions(name: &str, def: &mut Value) {
    if let Some(Value::Object(props)) = def.get_mut("properties") {
        for (prop, schema) in props.iter_mut() {
            if let (Some(m), Value::Object(s)) = (patch::patch_meta(name, prop), schema) {
                insert_patch_meta(s, m);
            }
        }
    }
}

/// Writes one property's patch metadata as kube's extensions.
pub fn insert_patch_meta(schema: &mut Map<String, Value>, m: patch::PatchMeta) {
    schema.insert("x-kubernetes-patch-strategy".into(), m.strategy.into());
    if let Some(key) = m.merge_key {
        schema.insert("x-kubernetes-patch-merge-key".into(), key.into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every built-in kind of the registry has a definition under kube's name, with its
    /// description and its group-version-kind, and a list kind.
    #[test]
    fn builtin_kinds_are_defined() {
        let defs = builtin_definitions();
        for info in registry::builtins() {
            let registry::SchemaSource::Builtin(def) = info.schema else {
                continue;
            };
            let d = defs.get(def).unwrap_or_else(|| panic!("{def} missing"));
            assert!(
                d["description"].as_str().is_some_and(|s| !s.is_empty()),
                "{def}"
            );
            assert_eq!(d[GVK][0]["kind"], info.kind.as_str());
            assert_eq!(
                defs[&format!("{def}List")][GVK][0]["kind"],
                format!("{}List", info.kind)
            );
            let required = d["required"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default();
            assert!(!required.contains(&json!("metadata")), "{def}");
        }
        assert!(defs.contains_key(OBJECT_META) && defs.contains_key(PATCH));
        assert!(defs.contains_key("io.k8s.apimachinery.pkg.api.resource.Quantity"));
    }

    /// Every reference resolves to a definition, and references are written with kube's
    /// prefix (no dangling names, which kubectl's v2 parser would reject).
    #[test]
    fn references_resolve() {
        fn walk(v: &Value, defs: &BTreeMap<String, Value>) {
            match v {
                Value::Object(m) => {
                    if let Some(r) = m.get("$ref").and_then(Value::as_str) {
                        let name = r.strip_prefix(REF_PREFIX).expect("prefix");
                        assert!(defs.contains_key(name), "{name}");
                    }
                    m.values().for_each(|x| walk(x, defs));
                }
                Value::Array(a) => a.iter().for_each(|x| walk(x, defs)),
                _ => {}
            }
        }
        let defs = builtin_definitions();
        defs.values().for_each(|d| walk(d, defs));
    }

    /// A property with a description referencing another definition uses kube's `allOf` form,
    /// which `ref_name` resolves.
    #[test]
    fn described_refs_use_all_of() {
        let pod = &builtin_definitions()["io.k8s.api.core.v1.Pod"];
        let spec = &pod["properties"]["spec"];
        assert!(spec["description"].is_string());
        assert_eq!(ref_name(spec), Some("io.k8s.api.core.v1.PodSpec"));
    }

    /// Patch metadata is injected where `patch_meta` answers (the table may still be empty),
    /// and the injection writes kube's extension names.
    #[test]
    fn patch_extensions_follow_patch_meta() {
        let containers =
            &builtin_definitions()["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
        match patch::patch_meta("io.k8s.api.core.v1.PodSpec", "containers") {
            Some(m) => {
                assert_eq!(containers["x-kubernetes-patch-strategy"], m.strategy);
                assert_eq!(
                    containers["x-kubernetes-patch-merge-key"].as_str(),
                    m.merge_key
                );
            }
            None => assert!(containers.get("x-kubernetes-patch-strategy").is_none()),
        }
        let mut s = Map::new();
        insert_patch_meta(
            &mut s,
            patch::PatchMeta {
                strategy: "merge",
                merge_key: Some("name"),
            },
        );
        assert_eq!(
            Value::Object(s),
            json!({"x-kubernetes-patch-strategy": "merge",
            "x-kubernetes-patch-merge-key": "name"})
        );
    }
}
