//! Strategic-merge metadata of the built-in types: patch strategies and merge keys, and the
//! type of each field, so that a patch can be walked alongside the object it changes.
//!
//! The strategies and merge keys are the `patchStrategy`/`patchMergeKey` struct tags of the Go
//! types at Kubernetes 1.32 (`k8s.io/api` v0.32.9 `core/v1/types.go`, `k8s.io/apimachinery`
//! v0.32.9 `pkg/apis/meta/v1/types.go`, `k8s.io/apiextensions-apiserver` v0.32.9
//! `pkg/apis/apiextensions/v1/types_jsonschema.go`; `coordination/v1` has none). The server
//! reads the Go tags, not the `x-kubernetes-list-type` markers, so neither do we.
//!
//! Field types come from [`crate::schema::builtin_definitions`] when it knows the definition,
//! else from a small fallback table that covers every path from a served kind to a field with
//! a strategy.

use crate::schema::builtin_definitions;
use serde_json::Value;

/// How a list or map field is merged by a strategic merge patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PatchMeta {
    /// `x-kubernetes-patch-strategy`: `merge`, `retainKeys`, `merge,retainKeys` or `replace`.
    pub strategy: &'static str,
    /// `x-kubernetes-patch-merge-key`: the field that identifies list elements (`name`).
    pub merge_key: Option<&'static str>,
}

impl PatchMeta {
    /// The strategy without `retainKeys` (which only matters to the client building the patch):
    /// `merge`, `replace` or empty.
    pub(crate) fn base_strategy(&self) -> &'static str {
        self.strategy
            .split(',')
            .find(|s| *s != "retainKeys")
            .unwrap_or("")
    }
}

/// Expands to the full OpenAPI definition name of a `core/v1` type.
macro_rules! core {
    ($t:literal) => {
        concat!("io.k8s.api.core.v1.", $t)
    };
}

/// Expands to the full OpenAPI definition name of a `meta/v1` type.
macro_rules! meta {
    ($t:literal) => {
        concat!("io.k8s.apimachinery.pkg.apis.meta.v1.", $t)
    };
}

/// Expands to the full OpenAPI definition name of an `apiextensions/v1` type.
macro_rules! apiext {
    ($t:literal) => {
        concat!(
            "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.",
            $t
        )
    };
}

/// `(definition, property, strategy, merge key)`, transcribed from the Go struct tags.
#[rustfmt::skip]
const STRATEGIES: &[(&str, &str, &str, Option<&str>)] = &[
    (meta!("ObjectMeta"), "ownerReferences", "merge", Some("uid")),
    (meta!("ObjectMeta"), "finalizers", "merge", None),
    (core!("PodSpec"), "volumes", "merge,retainKeys", Some("name")),
    (core!("PodSpec"), "initContainers", "merge", Some("name")),
    (core!("PodSpec"), "containers", "merge", Some("name")),
    (core!("PodSpec"), "ephemeralContainers", "merge", Some("name")),
    (core!("PodSpec"), "imagePullSecrets", "merge", Some("name")),
    (core!("PodSpec"), "hostAliases", "merge", Some("ip")),
    (core!("PodSpec"), "topologySpreadConstraints", "merge", Some("topologyKey")),
    (core!("PodSpec"), "schedulingGates", "merge", Some("name")),
    (core!("PodSpec"), "resourceClaims", "merge,retainKeys", Some("name")),
    (core!("Container"), "ports", "merge", Some("containerPort")),
    (core!("Container"), "env", "merge", Some("name")),
    (core!("Container"), "volumeMounts", "merge", Some("mountPath")),
    (core!("Container"), "volumeDevices", "merge", Some("devicePath")),
    // EphemeralContainer inlines EphemeralContainerCommon, whose tags match Container's.
    (core!("EphemeralContainer"), "ports", "merge", Some("containerPort")),
    (core!("EphemeralContainer"), "env", "merge", Some("name")),
    (core!("EphemeralContainer"), "volumeMounts", "merge", Some("mountPath")),
    (core!("EphemeralContainer"), "volumeDevices", "merge", Some("devicePath")),
    (core!("ContainerStatus"), "volumeMounts", "merge", Some("mountPath")),
    (core!("ContainerStatus"), "allocatedResourcesStatus", "merge", Some("name")),
    (core!("PodStatus"), "conditions", "merge", Some("type")),
    (core!("PodStatus"), "hostIPs", "merge", Some("ip")),
    (core!("PodStatus"), "podIPs", "merge", Some("ip")),
    (core!("PodStatus"), "resourceClaimStatuses", "merge,retainKeys", Some("name")),
    (core!("NodeSpec"), "podCIDRs", "merge", None),
    (core!("NodeStatus"), "conditions", "merge", Some("type")),
    (core!("NodeStatus"), "addresses", "merge", Some("type")),
    (core!("NamespaceStatus"), "conditions", "merge", Some("type")),
    (core!("ServiceSpec"), "ports", "merge", Some("port")),
    (core!("ServiceStatus"), "conditions", "merge", Some("type")),
    (core!("ServiceAccount"), "secrets", "merge", Some("name")),
    (core!("PersistentVolumeClaimStatus"), "conditions", "merge", Some("type")),
    (core!("ReplicationControllerStatus"), "conditions", "merge", Some("type")),
    (core!("ComponentStatus"), "conditions", "merge", Some("type")),
    (apiext!("JSONSchemaProps"), "x-kubernetes-validations", "merge", Some("rule")),
];

/// `(definition, property, definition of the property's value or list element)`: the paths
/// from the served kinds to every field in [`STRATEGIES`], used when
/// [`builtin_definitions`] does not know a definition.
#[rustfmt::skip]
const FIELD_TYPES: &[(&str, &str, &str)] = &[
    (core!("Pod"), "metadata", meta!("ObjectMeta")),
    (core!("Pod"), "spec", core!("PodSpec")),
    (core!("Pod"), "status", core!("PodStatus")),
    (core!("PodSpec"), "containers", core!("Container")),
    (core!("PodSpec"), "initContainers", core!("Container")),
    (core!("PodSpec"), "ephemeralContainers", core!("EphemeralContainer")),
    (core!("PodSpec"), "volumes", core!("Volume")),
    (core!("PodStatus"), "containerStatuses", core!("ContainerStatus")),
    (core!("PodStatus"), "initContainerStatuses", core!("ContainerStatus")),
    (core!("PodStatus"), "ephemeralContainerStatuses", core!("ContainerStatus")),
    (core!("Namespace"), "metadata", meta!("ObjectMeta")),
    (core!("Namespace"), "spec", core!("NamespaceSpec")),
    (core!("Namespace"), "status", core!("NamespaceStatus")),
    (core!("Node"), "metadata", meta!("ObjectMeta")),
    (core!("Node"), "spec", core!("NodeSpec")),
    (core!("Node"), "status", core!("NodeStatus")),
    (core!("Service"), "metadata", meta!("ObjectMeta")),
    (core!("Service"), "spec", core!("ServiceSpec")),
    (core!("Service"), "status", core!("ServiceStatus")),
    (core!("ConfigMap"), "metadata", meta!("ObjectMeta")),
    (core!("Secret"), "metadata", meta!("ObjectMeta")),
    (core!("Endpoints"), "metadata", meta!("ObjectMeta")),
    (core!("Event"), "metadata", meta!("ObjectMeta")),
    (core!("ServiceAccount"), "metadata", meta!("ObjectMeta")),
    ("io.k8s.api.coordination.v1.Lease", "metadata", meta!("ObjectMeta")),
    ("io.k8s.api.coordination.v1.Lease", "spec", "io.k8s.api.coordination.v1.LeaseSpec"),
    (apiext!("CustomResourceDefinition"), "metadata", meta!("ObjectMeta")),
    (apiext!("CustomResourceDefinition"), "spec", apiext!("CustomResourceDefinitionSpec")),
    (apiext!("CustomResourceDefinition"), "status", apiext!("CustomResourceDefinitionStatus")),
];

/// Patch metadata of property `prop` of the OpenAPI definition `def`
/// (e.g. `("io.k8s.api.core.v1.PodSpec", "containers")` → merge on `name`).
pub fn patch_meta(def: &str, prop: &str) -> Option<PatchMeta> {
    STRATEGIES
        .iter()
        .find(|(d, p, _, _)| *d == def && *p == prop)
        .map(|&(_, _, strategy, merge_key)| PatchMeta {
            strategy,
            merge_key,
        })
}

/// Where the walk is in the type tree: the type of the JSON object being merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Schema<'a> {
    /// No type information: maps merge, lists are replaced.
    Unknown,
    /// An object of the named definition.
    Struct(&'a str),
    /// A string-keyed map whose values are objects of the named definition.
    MapOf(&'a str),
}

impl<'a> Schema<'a> {
    /// The type of field `prop` (for a list: of its elements) and the field's patch metadata.
    pub(crate) fn field(self, prop: &str) -> (Schema<'a>, Option<PatchMeta>) {
        match self {
            Schema::Unknown => (Schema::Unknown, None),
            Schema::MapOf(def) => (Schema::Struct(def), None),
            Schema::Struct(def) => (field_type(def, prop), patch_meta(def, prop)),
        }
    }
}

/// The type of property `prop` of definition `def`, from the OpenAPI definitions if they
/// know it, else from [`FIELD_TYPES`].
fn field_type(def: &str, prop: &str) -> Schema<'static> {
    let from_defs = builtin_definitions()
        .get(def)
        .and_then(|d| d.get("properties"))
        .and_then(|p| p.get(prop))
        .map_or(Schema::Unknown, |s| schema_of(s, 0));
    if from_defs != Schema::Unknown {
        return from_defs;
    }
    FIELD_TYPES
        .iter()
        .find(|(d, p, _)| *d == def && *p == prop)
        .map_or(Schema::Unknown, |&(_, _, child)| Schema::Struct(child))
}

/// The object type a property schema describes: `$ref`, `allOf: [{$ref}]`, array `items`
/// (the element type) or `additionalProperties` (a map of that type). `depth` stops
/// pathological nesting.
fn schema_of(schema: &'static Value, depth: u8) -> Schema<'static> {
    if depth > 4 {
        return Schema::Unknown;
    }
    if let Some(name) = ref_name(schema) {
        return Schema::Struct(name);
    }
    if let Some(first) = schema.get("allOf").and_then(|a| a.get(0)) {
        return schema_of(first, depth + 1);
    }
    if let Some(items) = schema.get("items") {
        return match schema_of(items, depth + 1) {
            Schema::Struct(name) => Schema::Struct(name),
            _ => Schema::Unknown,
        };
    }
    if let Some(values) = schema.get("additionalProperties")
        && let Schema::Struct(name) = schema_of(values, depth + 1)
    {
        return Schema::MapOf(name);
    }
    Schema::Unknown
}

/// The definition name a `$ref` points at (`#/components/schemas/<name>` or any other prefix
/// ending in `/`).
fn ref_name(schema: &'static Value) -> Option<&'static str> {
    let target = schema.get("$ref")?.as_str()?;
    Some(target.rsplit('/').next().unwrap_or(target))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every row of the strategy table names a property that exists in the OpenAPI
    /// definitions, so a typo cannot silently disable a merge key. Skipped while the
    /// definitions are empty.
    #[test]
    fn strategies_name_real_properties() {
        let defs = builtin_definitions();
        for (def, prop, _, _) in STRATEGIES {
            // Types no served kind reaches (PersistentVolumeClaimStatus, ...) are not generated.
            let Some(schema) = defs.get(*def) else {
                continue;
            };
            assert!(
                schema["properties"].get(*prop).is_some(),
                "{def}.{prop} missing"
            );
        }
    }

    /// The fallback field-type table agrees with the OpenAPI definitions wherever both answer.
    #[test]
    fn fallback_field_types_match_definitions() {
        for (def, prop, child) in FIELD_TYPES {
            let from_defs = builtin_definitions()
                .get(*def)
                .and_then(|d| d["properties"].get(*prop))
                .map_or(Schema::Unknown, |s| schema_of(s, 0));
            assert!(
                from_defs == Schema::Unknown || from_defs == Schema::Struct(child),
                "{def}.{prop}: definitions say {from_defs:?}, table says {child}"
            );
        }
    }

    /// Every strategy a patch of a served kind can reach through the OpenAPI definitions
    /// (through objects, maps and merging lists; replaced lists never merge their elements)
    /// is also reachable through the fallback table, so patches merge the same before the
    /// definitions exist.
    #[test]
    fn fallback_reaches_every_relevant_strategy() {
        use std::collections::BTreeSet;
        let kinds: Vec<&'static str> = crate::registry::builtins()
            .into_iter()
            .filter_map(|r| match r.schema {
                crate::registry::SchemaSource::Builtin(def) => Some(def),
                crate::registry::SchemaSource::Crd(_) => None,
            })
            .collect();
        let reach = |next: &dyn Fn(&str) -> Vec<&'static str>| {
            let mut seen: BTreeSet<&'static str> = kinds.iter().copied().collect();
            let mut todo = kinds.clone();
            while let Some(def) = todo.pop() {
                todo.extend(next(def).into_iter().filter(|c| seen.insert(c)));
            }
            seen
        };
        let via_defs = reach(&|def| {
            let Some(props) = builtin_definitions()
                .get(def)
                .and_then(|d| d["properties"].as_object())
            else {
                return vec![];
            };
            props
                .iter()
                .filter(|(p, s)| {
                    s.get("items").is_none()
                        || patch_meta(def, p).is_some_and(|m| m.base_strategy() == "merge")
                })
                .filter_map(|(_, s)| match schema_of(s, 0) {
                    Schema::Struct(c) | Schema::MapOf(c) => Some(c),
                    Schema::Unknown => None,
                })
                .collect()
        });
        let via_table = reach(&|def| {
            FIELD_TYPES
                .iter()
                .filter(|(d, _, _)| *d == def)
                .map(|(_, _, c)| *c)
                .collect()
        });
        for (def, prop, _, _) in STRATEGIES {
            assert!(
                !via_defs.contains(def) || via_table.contains(def),
                "{def}.{prop} unreached"
            );
        }
    }

    /// `retainKeys` is stripped from the strategy the server acts on.
    #[test]
    fn base_strategy_drops_retain_keys() {
        let meta = PatchMeta {
            strategy: "merge,retainKeys",
            merge_key: Some("name"),
        };
        assert_eq!(meta.base_strategy(), "merge");
        assert_eq!(
            PatchMeta {
                strategy: "retainKeys",
                merge_key: None
            }
            .base_strategy(),
            ""
        );
    }
}
