//! The REST paths and operations of a resource, in OpenAPI v3 form (the v2 document converts
//! them, see [`super::v2`]).
//!
//! kubectl reads two things here. `QueryParamVerifierV3` (cli-runtime
//! `query_param_verifier_v3.go`) takes the first PATCH operation whose
//! `x-kubernetes-group-version-kind` equals the object's GVK and looks for a parameter named
//! `fieldValidation`; finding it, kubectl leaves validation to the server (`?fieldValidation=
//! Strict`). Since Go ranges over paths in random order, every PATCH operation of a kind
//! (main resource and `/status`) lists it. kubectl explain (`explain/v2/templates/
//! plaintext.tmpl`) finds the GVK from the `get`/`post`/`put`/`patch`/`delete` operations of
//! `/<prefix>/<version>[/namespaces/{namespace}]/<plural>[/{name}]`, then the schema whose
//! `x-kubernetes-group-version-kind` list contains that exact `{group, kind, version}` map.

use crate::{
    registry::ResourceInfo,
    schema::{self, DELETE_OPTIONS, PATCH, REF_PREFIX, STATUS},
};
use serde_json::{Map, Value, json};

const FIELD_VALIDATION_DOC: &str = "fieldValidation instructs the server on how to handle objects \
    in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - \
    Ignore: This will ignore any unknown fields that are silently dropped from the object, and \
    will ignore all but the last duplicate field that the decoder encounters. This is the default \
    behavior prior to v1.23. - Warn: This will send a warning via the standard warning response \
    header for each unknown field that is dropped from the object, and for each duplicate field \
    that is encountered. The request will still succeed if there are no other errors, and will \
    only persist the last of any duplicate fields. This is the default in v1.23+ - Strict: This \
    will fail the request with a BadRequest error if any unknown fields would be dropped from the \
    object, or if any duplicate fields are present. The error returned from the server will \
    contain all unknown and duplicate fields encountered.";
const DRY_RUN_DOC: &str = "When present, indicates that modifications should not be persisted. An \
    invalid or unrecognized dryRun directive will result in an error response and no further \
    processing of the request. Valid values are: - All: all dry run stages will be processed";
const FIELD_MANAGER_DOC: &str = "fieldManager is a name associated with the actor or entity that \
    is making these changes. The value must be less than or 128 characters long, and only contain \
    printable characters, as defined by https://golang.org/pkg/unicode/#IsPrint.";

/// JSON media types of responses.
const PRODUCES: [&str; 2] = ["application/json", "application/yaml"];
/// Patch media types; strategic merge patch only for built-in kinds, as kube does.
const PATCH_TYPES: [&str; 4] = [
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
];

/// The paths of one resource, in order: collection, item, status, all-namespaces list.
pub(crate) fn resource_paths(info: &ResourceInfo, def: &str) -> Vec<(String, Value)> {
    let op = Ops::new(info, def);
    let base = format!("/{}", info.gv_path());
    let scope = if info.namespaced {
        "/namespaces/{namespace}"
    } else {
        ""
    };
    let collection = format!("{base}{scope}/{}", info.plural);
    let mut ns_params = Vec::new();
    if info.namespaced {
        ns_params.push(path_param(
            "namespace",
            "object name and auth scope, such as for teams and projects",
        ));
    }
    let mut name_params = vec![path_param("name", &format!("name of the {}", info.kind))];
    name_params.extend(ns_params.iter().cloned());
    let mut out = vec![
        (collection.clone(), op.collection(&ns_params)),
        (format!("{collection}/{{name}}"), op.item(&name_params)),
    ];
    if info.has_status {
        out.push((
            format!("{collection}/{{name}}/status"),
            op.status(&name_params),
        ));
    }
    if info.namespaced {
        out.push((format!("{base}/{}", info.plural), op.list_all_namespaces()));
    }
    out
}

/// Builds the operations of one resource.
struct Ops<'a> {
    info: &'a ResourceInfo,
    kind_ref: Value,
    list_ref: Value,
    /// `CoreV1`, `CoordinationV1`, `DevicesKubeedgeIoV1beta1`: the middle of operation ids.
    id_infix: String,
}

impl<'a> Ops<'a> {
    fn new(info: &'a ResourceInfo, def: &str) -> Self {
        let group = if info.group.is_empty() {
            "core"
        } else {
            info.group.trim_end_matches(".k8s.io")
        };
        let id_infix = group
            .split(['.', '-'])
            .chain([info.version.as_str()])
            .map(capitalize)
            .collect();
        Self {
            info,
            kind_ref: schema_ref(def),
            list_ref: schema_ref(&format!("{def}List")),
            id_infix,
        }
    }

    fn collection(&self, params: &[Value]) -> Value {
        json!({
            "parameters": with_pretty(params),
            "get": self.op("list", "list", "", &self.list_ref, list_params(), None),
            "post": self.op("create", "post", "", &self.kind_ref, write_params(false),
                Some(body(&["*/*"], &self.kind_ref))),
            "delete": self.op("deleteCollection", "deletecollection", "", &schema_ref(STATUS),
                delete_params(), Some(body(&["*/*"], &schema_ref(DELETE_OPTIONS)))),
        })
    }

    fn item(&self, params: &[Value]) -> Value {
        json!({
            "parameters": with_pretty(params),
            "get": self.op("read", "get", "", &self.kind_ref, vec![], None),
            "put": self.op("replace", "put", "", &self.kind_ref, write_params(false),
                Some(body(&["*/*"], &self.kind_ref))),
            "patch": self.op("patch", "patch", "", &self.kind_ref, write_params(true),
                Some(self.patch_body())),
            "delete": self.op("delete", "delete", "", &self.kind_ref, delete_params(),
                Some(body(&["*/*"], &schema_ref(DELETE_OPTIONS)))),
        })
    }

    fn status(&self, params: &[Value]) -> Value {
        json!({
            "parameters": with_pretty(params),
            "get": self.op("read", "get", "Status", &self.kind_ref, vec![], None),
            "put": self.op("replace", "put", "Status", &self.kind_ref, write_params(false),
                Some(body(&["*/*"], &self.kind_ref))),
            "patch": self.op("patch", "patch", "Status", &self.kind_ref, write_params(true),
                Some(self.patch_body())),
        })
    }

    fn list_all_namespaces(&self) -> Value {
        let mut get = self.op(
            "list",
            "list",
            "ForAllNamespaces",
            &self.list_ref,
            list_params(),
            None,
        );
        if let Some(id) = get.get_mut("operationId") {
            *id = format!("list{}{}ForAllNamespaces", self.id_infix, self.info.kind).into();
        }
        json!({"parameters": with_pretty(&[]), "get": get})
    }

    fn patch_body(&self) -> Value {
        let types = if self.info.is_custom() {
            &PATCH_TYPES[..3]
        } else {
            &PATCH_TYPES[..]
        };
        body(types, &schema_ref(PATCH))
    }

    /// One operation: id, GVK, action, parameters, request body and responses.
    fn op(
        &self,
        verb: &str,
        action: &str,
        suffix: &str,
        response: &Value,
        params: Vec<Value>,
        request: Option<Value>,
    ) -> Value {
        let namespaced = if self.info.namespaced {
            "Namespaced"
        } else {
            ""
        };
        let kind = &self.info.kind;
        let mut op = json!({
            "tags": [format!("{}_{}", self.info.group, self.info.version)],
            "description": format!("{verb} {} of kind {kind}", self.info.plural),
            "operationId": format!("{verb}{}{namespaced}{kind}{suffix}", self.id_infix),
            "parameters": params,
            "responses": responses(action, response),
            "x-kubernetes-action": action,
            (schema::GVK): schema::gvk_value(&self.info.group, &self.info.version, kind),
        });
        if let (Some(request), Value::Object(m)) = (request, &mut op) {
            m.insert("requestBody".into(), request);
        }
        op
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// `{"$ref": "#/components/schemas/<def>"}`.
pub(crate) fn schema_ref(def: &str) -> Value {
    json!({"$ref": format!("{REF_PREFIX}{def}")})
}

fn content(types: &[&str], schema: &Value) -> Value {
    let m: Map<String, Value> = types
        .iter()
        .map(|t| ((*t).to_owned(), json!({"schema": schema})))
        .collect();
    Value::Object(m)
}

fn body(types: &[&str], schema: &Value) -> Value {
    json!({"required": true, "content": content(types, schema)})
}

fn responses(action: &str, schema: &Value) -> Value {
    let ok = json!({"description": "OK", "content": content(&PRODUCES, schema)});
    let mut r = Map::new();
    r.insert("200".into(), ok.clone());
    match action {
        "post" | "put" | "patch" => {
            r.insert(
                "201".into(),
                json!({"description": "Created", "content": content(&PRODUCES, schema)}),
            );
        }
        "delete" => {
            r.insert(
                "202".into(),
                json!({"description": "Accepted", "content": content(&PRODUCES, schema)}),
            );
        }
        _ => {}
    }
    if action == "post" {
        r.insert(
            "202".into(),
            json!({"description": "Accepted", "content": content(&PRODUCES, schema)}),
        );
    }
    r.insert("401".into(), json!({"description": "Unauthorized"}));
    Value::Object(r)
}

fn query(name: &str, ty: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "description": description,
           "schema": {"type": ty, "uniqueItems": true}})
}

fn path_param(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "description": description,
           "schema": {"type": "string", "uniqueItems": true}})
}

fn with_pretty(params: &[Value]) -> Value {
    let mut v = params.to_vec();
    v.push(query(
        "pretty",
        "string",
        "If 'true', then the output is pretty printed.",
    ));
    Value::Array(v)
}

/// Parameters of POST, PUT and PATCH; `fieldValidation` is the one kubectl checks for.
fn write_params(patch: bool) -> Vec<Value> {
    let mut v = vec![
        query("dryRun", "string", DRY_RUN_DOC),
        query("fieldManager", "string", FIELD_MANAGER_DOC),
        query("fieldValidation", "string", FIELD_VALIDATION_DOC),
    ];
    if patch {
        v.push(query(
            "force",
            "boolean",
            "Force is going to \"force\"Apply requests. It means user \
            will re-acquire conflicting fields owned by other people. Force flag must be unset \
            for non-apply patch requests.",
        ));
    }
    v
}

fn delete_params() -> Vec<Value> {
    vec![
        query("dryRun", "string", DRY_RUN_DOC),
        query(
            "gracePeriodSeconds",
            "integer",
            "The duration in seconds before the object should be deleted.",
        ),
        query(
            "propagationPolicy",
            "string",
            "Whether and how garbage collection will be performed: 'Orphan', 'Background' or \
                'Foreground'.",
        ),
    ]
}

fn list_params() -> Vec<Value> {
    [
        (
            "allowWatchBookmarks",
            "boolean",
            "allowWatchBookmarks requests watch events with type \
            \"BOOKMARK\".",
        ),
        (
            "continue",
            "string",
            "The continue option should be set when retrieving more results \
            from the server.",
        ),
        (
            "fieldSelector",
            "string",
            "A selector to restrict the list of returned objects by their \
            fields. Defaults to everything.",
        ),
        (
            "labelSelector",
            "string",
            "A selector to restrict the list of returned objects by their \
            labels. Defaults to everything.",
        ),
        (
            "limit",
            "integer",
            "limit is a maximum number of responses to return for a list call.",
        ),
        (
            "resourceVersion",
            "string",
            "resourceVersion sets a constraint on what resource versions \
            a request may be served from.",
        ),
        (
            "resourceVersionMatch",
            "string",
            "resourceVersionMatch determines how resourceVersion is \
            applied to list calls.",
        ),
        (
            "sendInitialEvents",
            "boolean",
            "`sendInitialEvents=true` may be set together with \
            `watch=true`.",
        ),
        (
            "timeoutSeconds",
            "integer",
            "Timeout for the list/watch call.",
        ),
        (
            "watch",
            "boolean",
            "Watch for changes to the described resources and return them as a \
            stream of add, update, and remove notifications.",
        ),
    ]
    .iter()
    .map(|(n, t, d)| query(n, t, d))
    .collect()
}
