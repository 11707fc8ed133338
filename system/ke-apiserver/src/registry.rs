//! The resource registry: which kinds the server serves, under which group, version and
//! plural, and where each kind's schema comes from. Built-in kinds are fixed; custom resources
//! are added and removed as `CustomResourceDefinition` objects come and go.

use serde_json::Value;
use std::{
    collections::BTreeMap,
    sync::{Arc, RwLock},
};

/// Where a kind's schema comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum SchemaSource {
    /// A built-in kind: the OpenAPI definition name in k8s-openapi
    /// (e.g. `io.k8s.api.core.v1.Pod`).
    Builtin(&'static str),
    /// A custom resource: the served version's `openAPIV3Schema` (or `None` if the CRD
    /// gave none, which accepts anything).
    Crd(Option<Value>),
}

/// A column of a server-side table (`kubectl get` output) for a custom resource.
#[derive(Debug, Clone, PartialEq)]
pub struct PrinterColumn {
    /// Column header.
    pub name: String,
    /// OpenAPI type of the cell (`string`, `integer`, `date`, ...).
    pub type_: String,
    /// Simple JSONPath into the object (`.spec.nodeName`).
    pub json_path: String,
}

/// One served resource (group, version, plural).
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceInfo {
    /// API group; empty for the core group.
    pub group: String,
    /// API version within the group.
    pub version: String,
    /// Kind, e.g. `Pod`.
    pub kind: String,
    /// Lower-case plural used in URLs, e.g. `pods`.
    pub plural: String,
    /// Lower-case singular, e.g. `pod`.
    pub singular: String,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// Short names kubectl accepts (`po`, `no`, `cm`).
    pub short_names: Vec<String>,
    /// Categories (`all`).
    pub categories: Vec<String>,
    /// Whether the `status` subresource is served (and the main resource ignores status).
    pub has_status: bool,
    /// Schema source.
    pub schema: SchemaSource,
    /// Extra table columns (custom resources).
    pub printer_columns: Vec<PrinterColumn>,
}

impl ResourceInfo {
    /// `v1` or `group/version`, as written in `apiVersion`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// URL prefix of the group version without the leading slash: `api/v1` or `apis/g/v`.
    pub fn gv_path(&self) -> String {
        if self.group.is_empty() {
            format!("api/{}", self.version)
        } else {
            format!("apis/{}/{}", self.group, self.version)
        }
    }

    /// Whether this is a custom resource.
    pub fn is_custom(&self) -> bool {
        matches!(self.schema, SchemaSource::Crd(_))
    }

    /// The storage key prefix that groups all objects of this resource (independent of version,
    /// like etcd's `/registry/<group>/<plural>`).
    pub fn storage_prefix(&self) -> String {
        if self.group.is_empty() {
            format!("core/{}", self.plural)
        } else {
            format!("{}/{}", self.group, self.plural)
        }
    }
}

/// Key of a resource in the registry.
pub type ResourceKey = (String, String, String);

/// The set of served resources; cheap to read, updated when CRDs change.
#[derive(Debug, Default)]
pub struct Registry {
    resources: RwLock<BTreeMap<ResourceKey, Arc<ResourceInfo>>>,
}

impl Registry {
    /// A registry holding the built-in kinds.
    pub fn with_builtins() -> Self {
        let r = Self::default();
        for info in builtins() {
            r.insert(info);
        }
        r
    }

    /// Adds or replaces a resource.
    pub fn insert(&self, info: ResourceInfo) {
        let key = (
            info.group.clone(),
            info.version.clone(),
            info.plural.clone(),
        );
        self.write().insert(key, Arc::new(info));
    }

    /// Removes every version of `group`/`plural` (a deleted CRD).
    pub fn remove_custom(&self, group: &str, plural: &str) {
        self.write()
            .retain(|(g, _, p), info| !(g == group && p == plural && info.is_custom()));
    }

    /// Looks a resource up by group, version and plural.
    pub fn get(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceInfo>> {
        let key = (group.to_owned(), version.to_owned(), plural.to_owned());
        self.read().get(&key).cloned()
    }

    /// Looks a resource up by `apiVersion` and kind.
    pub fn by_kind(&self, api_version: &str, kind: &str) -> Option<Arc<ResourceInfo>> {
        self.read()
            .values()
            .find(|r| r.kind == kind && r.api_version() == api_version)
            .cloned()
    }

    /// All resources, ordered by group, version, plural.
    pub fn all(&self) -> Vec<Arc<ResourceInfo>> {
        self.read().values().cloned().collect()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<ResourceKey, Arc<ResourceInfo>>> {
        self.resources
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<ResourceKey, Arc<ResourceInfo>>> {
        self.resources
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

struct Builtin {
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
    has_status: bool,
    def: &'static str,
}

const BUILTINS: &[Builtin] = &[
    b(
        "",
        "v1",
        "Namespace",
        "namespaces",
        false,
        &["ns"],
        true,
        "io.k8s.api.core.v1.Namespace",
    ),
    b(
        "",
        "v1",
        "Node",
        "nodes",
        false,
        &["no"],
        true,
        "io.k8s.api.core.v1.Node",
    ),
    b(
        "",
        "v1",
        "Pod",
        "pods",
        true,
        &["po"],
        true,
        "io.k8s.api.core.v1.Pod",
    ),
    b(
        "",
        "v1",
        "ConfigMap",
        "configmaps",
        true,
        &["cm"],
        false,
        "io.k8s.api.core.v1.ConfigMap",
    ),
    b(
        "",
        "v1",
        "Secret",
        "secrets",
        true,
        &[],
        false,
        "io.k8s.api.core.v1.Secret",
    ),
    b(
        "",
        "v1",
        "Service",
        "services",
        true,
        &["svc"],
        true,
        "io.k8s.api.core.v1.Service",
    ),
    b(
        "",
        "v1",
        "Endpoints",
        "endpoints",
        true,
        &["ep"],
        false,
        "io.k8s.api.core.v1.Endpoints",
    ),
    b(
        "",
        "v1",
        "Event",
        "events",
        true,
        &["ev"],
        false,
        "io.k8s.api.core.v1.Event",
    ),
    b(
        "",
        "v1",
        "ServiceAccount",
        "serviceaccounts",
        true,
        &["sa"],
        false,
        SA,
    ),
    b(
        "coordination.k8s.io",
        "v1",
        "Lease",
        "leases",
        true,
        &[],
        false,
        LEASE,
    ),
    b(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        false,
        &["crd", "crds"],
        true,
        CRD,
    ),
];

const SA: &str = "io.k8s.api.core.v1.ServiceAccount";
const LEASE: &str = "io.k8s.api.coordination.v1.Lease";
const CRD: &str =
    "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition";

#[expect(clippy::too_many_arguments, reason = "const table row constructor")]
const fn b(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
    has_status: bool,
    def: &'static str,
) -> Builtin {
    Builtin {
        group,
        version,
        kind,
        plural,
        namespaced,
        short,
        has_status,
        def,
    }
}

/// The built-in resources.
pub fn builtins() -> Vec<ResourceInfo> {
    BUILTINS
        .iter()
        .map(|x| ResourceInfo {
            group: x.group.into(),
            version: x.version.into(),
            kind: x.kind.into(),
            plural: x.plural.into(),
            singular: x.kind.to_lowercase(),
            namespaced: x.namespaced,
            short_names: x.short.iter().map(|s| (*s).to_owned()).collect(),
            categories: if matches!(x.kind, "Pod" | "Service") {
                vec!["all".into()]
            } else {
                vec![]
            },
            has_status: x.has_status,
            schema: SchemaSource::Builtin(x.def),
            printer_columns: vec![],
        })
        .collect()
}

/// Builds the served resources of a `CustomResourceDefinition` object (one per served version).
pub fn from_crd(crd: &Value) -> Vec<ResourceInfo> {
    let spec = &crd["spec"];
    let names = &spec["names"];
    let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let list = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let plural = s(&names["plural"]);
    let kind = s(&names["kind"]);
    let singular = match names["singular"].as_str() {
        Some(x) if !x.is_empty() => x.to_owned(),
        _ => kind.to_lowercase(),
    };
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    versions
        .iter()
        .filter(|v| v["served"].as_bool().unwrap_or(false))
        .map(|v| ResourceInfo {
            group: s(&spec["group"]),
            version: s(&v["name"]),
            kind: kind.clone(),
            plural: plural.clone(),
            singular: singular.clone(),
            namespaced: spec["scope"].as_str() != Some("Cluster"),
            short_names: list(&names["shortNames"]),
            categories: list(&names["categories"]),
            has_status: v["subresources"].get("status").is_some(),
            schema: SchemaSource::Crd(v["schema"].get("openAPIV3Schema").cloned()),
            printer_columns: printer_columns(&v["additionalPrinterColumns"]),
        })
        .collect()
}

fn printer_columns(v: &Value) -> Vec<PrinterColumn> {
    v.as_array()
        .map(|cols| {
            cols.iter()
                .map(|c| PrinterColumn {
                    name: c["name"].as_str().unwrap_or_default().to_owned(),
                    type_: c["type"].as_str().unwrap_or("string").to_owned(),
                    json_path: c["jsonPath"].as_str().unwrap_or_default().to_owned(),
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A CRD with two served versions and a status subresource registers both versions.
    #[test]
    fn crd_registers_served_versions() {
        let crd = json!({"spec": {"group": "devices.kubeedge.io", "scope": "Namespaced",
        "names": {"plural": "devices", "kind": "Device", "shortNames": ["dev"]},
        "versions": [
            {"name": "v1beta1", "served": true, "storage": true,
             "subresources": {"status": {}}, "schema": {"openAPIV3Schema": {"type": "object"}}},
            {"name": "v1alpha2", "served": false, "storage": false}
        ]}});
        let r = Registry::with_builtins();
        for info in from_crd(&crd) {
            r.insert(info);
        }
        let d = r
            .get("devices.kubeedge.io", "v1beta1", "devices")
            .expect("registered");
        assert!(d.namespaced && d.has_status && d.is_custom());
        assert_eq!(d.singular, "device");
        assert!(
            r.get("devices.kubeedge.io", "v1alpha2", "devices")
                .is_none()
        );
        r.remove_custom("devices.kubeedge.io", "devices");
        assert!(r.get("devices.kubeedge.io", "v1beta1", "devices").is_none());
        assert!(r.get("", "v1", "pods").is_some());
    }
}
