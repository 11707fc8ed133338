//! The OpenAPI documents kubectl reads, and strict field validation.
//!
//! - `/openapi/v3`: [`Documents::v3_root`] lists one document per group version
//!   (`api/v1`, `apis/<group>/<version>`) with a `?hash=` that changes with its content;
//!   [`Documents::v3_doc`] is that OpenAPI 3.0 document: the REST paths of the group version's
//!   resources (see [`paths`](self) for what kubectl looks for) and the schemas they use.
//! - `/openapi/v2`: [`Documents::v2_json`] (Swagger 2.0) and [`Documents::v2_protobuf`] (the same
//!   document as gnostic's protobuf, [`proto`]), which kubectl downloads before validating a
//!   `create`/`apply`.
//! - [`unknown_fields`]: what `?fieldValidation=Strict` rejects.
//!
//! Caching: [`OpenApi::documents`] keeps the last [`Documents`] and reuses it while the
//! registry holds the very same resources (compared by `Arc` identity: the registry replaces
//! the `Arc` whenever a resource changes, and the cache holds the old ones, so an address can't
//! be reused). When a CRD changes, only the documents of group versions whose resources changed
//! are rebuilt; the built-in definitions, their v2 form and their protobuf encoding are
//! computed once per process. The free functions ([`v3_root`], [`v3_doc`], [`v2_json`],
//! [`v2_protobuf`]) build from scratch and suit tests and one-off use.
//!
//! Module map: `kinds` (definition names, custom resource schemas), `paths` (operations),
//! `v2` (Swagger 2.0 conversion), [`proto`] (protobuf encoding), `validate` (unknown fields).

mod kinds;
mod paths;
pub mod proto;
mod v2;
mod validate;

#[cfg(test)]
mod tests;

pub use validate::{unknown_fields, unknown_fields_changed};

use crate::{
    registry::{Registry, ResourceInfo},
    schema::{self, REF_PREFIX},
};
use bytes::Bytes;
use prost::Message as _;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, OnceLock},
};

/// Content type of the protobuf `/openapi/v2` response. Kube answers with this dotted form:
/// the `@v1.0` form kubectl puts in `Accept` is not a valid media type, and client-go fails
/// with "mime: unexpected content after media subtype" if the response carries it.
pub const V2_PROTOBUF_CONTENT_TYPE: &str =
    "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// `info.version` of every document.
const API_VERSION: &str = "v1.32.0";

/// Caches the documents of the registry's current resources.
#[derive(Debug, Default)]
pub struct OpenApi {
    /// The documents of the resources last seen; rebuilt when they change.
    current: Mutex<Option<Arc<Documents>>>,
}

impl OpenApi {
    /// A cache; the built-in parts (definitions, their v2 form and protobuf) are computed now.
    pub fn new() -> Self {
        let _ = builtin_v2_protobuf();
        let _ = builtin_v2_json();
        Self::default()
    }

    /// The documents of `registry`'s resources, rebuilt only if they changed since last call.
    /// Serve their serialized forms ([`Documents`]) to avoid serializing per request.
    pub fn documents(&self, registry: &Registry) -> Arc<Documents> {
        let resources = registry.all();
        let mut current = self
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(docs) = current.as_ref().filter(|d| same(&d.resources, &resources)) {
            return Arc::clone(docs);
        }
        let docs = Arc::new(Documents::build(resources, current.as_deref()));
        *current = Some(Arc::clone(&docs));
        docs
    }

    /// `/openapi/v3` (cached).
    pub fn v3_root(&self, registry: &Registry) -> Arc<Value> {
        Arc::clone(&self.documents(registry).v3_root)
    }

    /// `/openapi/v3/<gv_path>` (cached); `None` for an unknown group version.
    pub fn v3_doc(&self, registry: &Registry, gv_path: &str) -> Option<Arc<Value>> {
        self.documents(registry)
            .v3_doc(gv_path)
            .map(|d| Arc::clone(&d.doc))
    }

    /// `/openapi/v2` as JSON (cached).
    pub fn v2_json(&self, registry: &Registry) -> Arc<Value> {
        self.documents(registry).v2_value()
    }

    /// `/openapi/v2` as gnostic protobuf (cached).
    pub fn v2_protobuf(&self, registry: &Registry) -> Bytes {
        self.documents(registry).v2_protobuf.clone()
    }
}

fn same(a: &[Arc<ResourceInfo>], b: &[Arc<ResourceInfo>]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| Arc::ptr_eq(x, y))
}

/// One group version's OpenAPI v3 document.
#[derive(Debug, Clone)]
pub struct GroupVersionDoc {
    /// The resources it was built from.
    resources: Vec<Arc<ResourceInfo>>,
    /// The document.
    pub doc: Arc<Value>,
    /// The document, serialized as JSON.
    pub json: Bytes,
    /// Upper-case hex SHA-256 of `json`, the `hash` query parameter of its URL.
    pub hash: String,
}

/// Every OpenAPI document of one set of resources, built and serialized once.
#[derive(Debug)]
pub struct Documents {
    resources: Vec<Arc<ResourceInfo>>,
    group_versions: BTreeMap<String, GroupVersionDoc>,
    v3_root: Arc<Value>,
    v3_root_json: Bytes,
    v2_json: Bytes,
    /// `v2_json` parsed, on first use.
    v2_value: OnceLock<Arc<Value>>,
    v2_protobuf: Bytes,
}

impl Documents {
    /// Builds the documents of `resources`, reusing `previous`'s group-version documents whose
    /// resources are unchanged.
    pub fn build(resources: Vec<Arc<ResourceInfo>>, previous: Option<&Documents>) -> Self {
        let mut group_versions = BTreeMap::new();
        for (gv, members) in by_group_version(&resources) {
            let reused = previous
                .and_then(|p| p.group_versions.get(&gv))
                .filter(|old| same(&old.resources, &members))
                .cloned();
            let doc = reused.unwrap_or_else(|| {
                let doc = gv_document(&members);
                let json = to_bytes(&doc);
                let hash = hex::encode_upper(Sha256::digest(&json));
                GroupVersionDoc {
                    resources: members,
                    doc: Arc::new(doc),
                    json,
                    hash,
                }
            });
            group_versions.insert(gv, doc);
        }
        let root = root_document(&group_versions);
        let (v2_json, v2_protobuf) = v2_documents(&resources);
        Self {
            resources,
            group_versions,
            v3_root_json: to_bytes(&root),
            v3_root: Arc::new(root),
            v2_json,
            v2_value: OnceLock::new(),
            v2_protobuf,
        }
    }

    /// `/openapi/v3`: one `serverRelativeURL` per group version,
    /// `{"paths": {"api/v1": {"serverRelativeURL": "/openapi/v3/api/v1?hash=…"}}}`.
    pub fn v3_root(&self) -> &Arc<Value> {
        &self.v3_root
    }

    /// [`Self::v3_root`] serialized.
    pub fn v3_root_json(&self) -> &Bytes {
        &self.v3_root_json
    }

    /// `/openapi/v3/<gv_path>` (`api/v1`, `apis/coordination.k8s.io/v1`), with its hash.
    pub fn v3_doc(&self, gv_path: &str) -> Option<&GroupVersionDoc> {
        self.group_versions.get(gv_path.trim_matches('/'))
    }

    /// `/openapi/v2` as JSON.
    pub fn v2_json(&self) -> &Bytes {
        &self.v2_json
    }

    /// `/openapi/v2` parsed (parsed once, on first call).
    pub fn v2_value(&self) -> Arc<Value> {
        let parse = || Arc::new(serde_json::from_slice(&self.v2_json).unwrap_or_default());
        Arc::clone(self.v2_value.get_or_init(parse))
    }

    /// `/openapi/v2` as `application/com.github.proto-openapi.spec.v2@v1.0+protobuf`.
    pub fn v2_protobuf(&self) -> &Bytes {
        &self.v2_protobuf
    }
}

/// The `/openapi/v3` discovery document of `registry` (built from scratch).
pub fn v3_root(registry: &Registry) -> Value {
    let docs = Documents::build(registry.all(), None);
    docs.v3_root.as_ref().clone()
}

/// The OpenAPI v3 document of one group version of `registry` (built from scratch).
pub fn v3_doc(registry: &Registry, gv_path: &str) -> Option<Value> {
    let resources = registry.all();
    let gv = gv_path.trim_matches('/');
    let members: Vec<_> = resources
        .into_iter()
        .filter(|r| r.gv_path() == gv)
        .collect();
    (!members.is_empty()).then(|| gv_document(&members))
}

/// The Swagger 2.0 document of `registry` (built from scratch).
pub fn v2_json(registry: &Registry) -> Value {
    serde_json::from_slice(&v2_documents(&registry.all()).0).unwrap_or_default()
}

/// The Swagger 2.0 document of `registry` as gnostic protobuf (built from scratch).
pub fn v2_protobuf(registry: &Registry) -> Vec<u8> {
    v2_documents(&registry.all()).1.to_vec()
}

fn to_bytes(v: &Value) -> Bytes {
    Bytes::from(serde_json::to_vec(v).unwrap_or_default())
}

fn by_group_version(resources: &[Arc<ResourceInfo>]) -> BTreeMap<String, Vec<Arc<ResourceInfo>>> {
    let mut out: BTreeMap<String, Vec<Arc<ResourceInfo>>> = BTreeMap::new();
    for r in resources {
        out.entry(r.gv_path()).or_default().push(Arc::clone(r));
    }
    out
}

fn root_document(gvs: &BTreeMap<String, GroupVersionDoc>) -> Value {
    let paths: Map<String, Value> = gvs
        .iter()
        .map(|(gv, d)| {
            let url = format!("/openapi/v3/{gv}?hash={}", d.hash);
            (gv.clone(), json!({"serverRelativeURL": url}))
        })
        .collect();
    json!({"paths": paths})
}

/// The OpenAPI v3 document of one group version's resources.
fn gv_document(resources: &[Arc<ResourceInfo>]) -> Value {
    let mut paths = Map::new();
    let mut schemas = BTreeMap::new();
    let mut wanted = Vec::new();
    for r in resources {
        let def = kinds::definition_name(r);
        for (path, item) in paths::resource_paths(r, &def) {
            collect_refs(&item, &mut wanted);
            paths.insert(path, item);
        }
        for (name, s) in kinds::custom_definitions(r) {
            collect_refs(&s, &mut wanted);
            schemas.insert(name, s);
        }
    }
    let builtin = schema::builtin_definitions();
    while let Some(name) = wanted.pop() {
        if schemas.contains_key(&name) {
            continue;
        }
        if let Some(def) = builtin.get(&name) {
            collect_refs(def, &mut wanted);
            schemas.insert(name, def.clone());
        }
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": API_VERSION},
        "paths": paths,
        "components": {"schemas": schemas},
    })
}

/// Appends the definition names `v` refers to.
fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(r) = m.get("$ref").and_then(Value::as_str)
                && let Some(name) = r.strip_prefix(REF_PREFIX)
            {
                out.push(name.to_owned());
            }
            m.values().for_each(|x| collect_refs(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| collect_refs(x, out)),
        _ => {}
    }
}

/// The built-in definitions in v2 form.
fn builtin_v2_definitions() -> &'static Map<String, Value> {
    static DEFS: OnceLock<Map<String, Value>> = OnceLock::new();
    DEFS.get_or_init(|| {
        schema::builtin_definitions()
            .iter()
            .map(|(k, v)| (k.clone(), v2::schema_v2(v)))
            .collect()
    })
}

/// The built-in v2 definitions as JSON object members (`"name":{…},…`, no braces).
fn builtin_v2_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        let whole = serde_json::to_string(builtin_v2_definitions()).unwrap_or_default();
        let inner = whole.strip_prefix('{').and_then(|s| s.strip_suffix('}'));
        inner.unwrap_or_default().to_owned()
    })
}

/// A protobuf `Document` holding only the built-in v2 definitions. Protobuf merges repeated
/// occurrences of a message field, so appending these bytes to an encoded `Document` adds the
/// definitions to it: the large built-in part is encoded once per process.
fn builtin_v2_protobuf() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let defs = proto::named_schemas(builtin_v2_definitions());
        let doc = proto::Document {
            definitions: Some(proto::Definitions {
                additional_properties: defs,
            }),
            ..Default::default()
        };
        doc.encode_to_vec()
    })
}

/// The Swagger 2.0 document of `resources` as JSON and as protobuf.
fn v2_documents(resources: &[Arc<ResourceInfo>]) -> (Bytes, Bytes) {
    let mut paths = Map::new();
    let mut custom = Map::new();
    let builtin = builtin_v2_definitions();
    for r in resources {
        let def = kinds::definition_name(r);
        for (path, item) in paths::resource_paths(r, &def) {
            paths.insert(path, v2::path_item_v2(&item));
        }
        for (name, s) in kinds::custom_definitions(r) {
            if !builtin.contains_key(&name) {
                custom.insert(name, v2::schema_v2(&s));
            }
        }
    }
    let info = json!({"title": "Kubernetes", "version": API_VERSION});
    let mut members = builtin_v2_json().to_owned();
    for (name, s) in &custom {
        if !members.is_empty() {
            members.push(',');
        }
        members.push_str(&Value::String(name.clone()).to_string());
        members.push(':');
        members.push_str(&s.to_string());
    }
    let json = format!(
        r#"{{"swagger":"2.0","info":{info},"paths":{},"definitions":{{{members}}}}}"#,
        Value::Object(paths.clone())
    );
    let head = proto::Document {
        swagger: "2.0".into(),
        info: Some(proto::Info {
            title: "Kubernetes".into(),
            version: API_VERSION.into(),
            description: String::new(),
        }),
        paths: Some(proto::Paths {
            vendor_extension: Vec::new(),
            path: paths
                .iter()
                .map(|(k, v)| proto::NamedPathItem {
                    name: k.clone(),
                    value: Some(proto::path_item(v)),
                })
                .collect(),
        }),
        definitions: (!custom.is_empty()).then(|| proto::Definitions {
            additional_properties: proto::named_schemas(&custom),
        }),
        ..Default::default()
    };
    let mut pb = head.encode_to_vec();
    pb.extend_from_slice(builtin_v2_protobuf());
    (Bytes::from(json), Bytes::from(pb))
}
