//! Tests of the OpenAPI documents and of strict field validation.

use super::*;
use crate::registry::{self, SchemaSource};
use prost::Message as _;
use serde_json::json;

/// The `spec` schema of the test Device CRD.
fn device_spec_schema() -> Value {
    let property = json!({
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "reportCycle": {"type": "integer", "format": "int64"},
            "visitors": {"type": "object", "properties": {
                "protocolName": {"type": "string"},
                "configData": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}
        },
        "required": ["name"]
    });
    json!({
        "description": "DeviceSpec represents a single device instance.",
        "type": "object",
        "properties": {
            "deviceModelRef": {"type": "object", "properties": {"name": {"type": "string"}}},
            "nodeName": {"type": "string"},
            "properties": {"type": "array", "items": property},
            "protocol": {"type": "object", "properties": {
                "protocolName": {"type": "string"},
                "configData": {"type": "object", "additionalProperties": {"type": "string"}}}}
        }
    })
}

/// A Device CRD in the shape controller-gen writes (as KubeEdge's `devices.kubeedge.io`).
fn device_crd() -> Value {
    let schema = json!({
        "description": "Device is the Schema for the devices API",
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": device_spec_schema(),
            "status": {"type": "object", "properties": {
                "reportToCloud": {"type": "boolean"},
                "twins": {"type": "array", "items": {"type": "object",
                    "properties": {"propertyName": {"type": "string"}}}}}}
        }
    });
    let version = json!({
        "name": "v1beta1", "served": true, "storage": true,
        "subresources": {"status": {}},
        "schema": {"openAPIV3Schema": schema}
    });
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "devices.devices.kubeedge.io",
                     "annotations": {"controller-gen.kubebuilder.io/version": "v0.6.2"}},
        "spec": {
            "group": "devices.kubeedge.io",
            "names": {"kind": "Device", "listKind": "DeviceList", "plural": "devices",
                      "singular": "device", "shortNames": ["dev"]},
            "scope": "Namespaced",
            "versions": [version]
        }
    })
}

fn registry_with_device() -> Registry {
    let r = Registry::with_builtins();
    for info in registry::from_crd(&device_crd()) {
        r.insert(info);
    }
    r
}

fn pod_info() -> Arc<ResourceInfo> {
    Registry::with_builtins()
        .get("", "v1", "pods")
        .expect("pods are built in")
}

fn param_names(op: &Value) -> Vec<&str> {
    let params = op["parameters"].as_array().expect("parameters");
    params.iter().filter_map(|p| p["name"].as_str()).collect()
}

/// The core v1 document has a PATCH operation for Pod carrying its GVK, its action and the
/// `fieldValidation` query parameter kubectl's `QueryParamVerifierV3` looks for; every PATCH
/// of the document has it (Go iterates paths in random order).
#[test]
fn core_patch_operations_offer_field_validation() {
    let doc = v3_doc(&Registry::with_builtins(), "api/v1").expect("api/v1");
    assert_eq!(doc["openapi"], "3.0.0");
    let patch = &doc["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"];
    assert_eq!(
        patch[schema::GVK],
        json!({"group": "", "kind": "Pod", "version": "v1"})
    );
    assert_eq!(patch["x-kubernetes-action"], "patch");
    let fv = patch["parameters"]
        .as_array()
        .expect("params")
        .iter()
        .find(|p| p["name"] == "fieldValidation")
        .expect("fieldValidation");
    assert_eq!(fv["in"], "query");
    for (path, item) in doc["paths"].as_object().expect("paths") {
        if let Some(op) = item.get("patch") {
            assert!(param_names(op).contains(&"fieldValidation"), "{path}");
        }
    }
    let nodes = &doc["paths"]["/api/v1/nodes/{name}/status"]["put"];
    assert!(param_names(nodes).contains(&"fieldValidation"));
}

/// A group version's document holds every schema its operations and schemas refer to, and
/// the kind schemas kubectl explain looks up by GVK.
#[test]
fn group_version_documents_are_closed() {
    let r = registry_with_device();
    for gv in [
        "api/v1",
        "apis/coordination.k8s.io/v1",
        "apis/devices.kubeedge.io/v1beta1",
    ] {
        let doc = v3_doc(&r, gv).expect(gv);
        let schemas = doc["components"]["schemas"].as_object().expect("schemas");
        let mut refs = Vec::new();
        collect_refs(&doc, &mut refs);
        for name in refs {
            assert!(schemas.contains_key(&name), "{gv}: {name}");
        }
    }
    let core = v3_doc(&r, "api/v1").expect("api/v1");
    let pod = &core["components"]["schemas"]["io.k8s.api.core.v1.Pod"];
    assert!(
        pod["description"]
            .as_str()
            .is_some_and(|d| d.contains("containers"))
    );
    assert_eq!(
        pod[schema::GVK],
        json!([{"group": "", "kind": "Pod", "version": "v1"}])
    );
    assert!(v3_doc(&r, "apis/nope/v1").is_none());
}

/// A registered CRD gets its own document: the CRD schema with `metadata` pointing at
/// `ObjectMeta`, its GVK, a list kind, and paths without strategic merge patch.
#[test]
fn custom_resource_document() {
    let doc = v3_doc(&registry_with_device(), "apis/devices.kubeedge.io/v1beta1").expect("gv");
    let schemas = &doc["components"]["schemas"];
    let device = &schemas["io.kubeedge.devices.v1beta1.Device"];
    assert_eq!(device[schema::GVK][0]["group"], "devices.kubeedge.io");
    assert_eq!(device[schema::GVK][0]["kind"], "Device");
    assert_eq!(
        schema::ref_name(&device["properties"]["metadata"]),
        Some(schema::OBJECT_META)
    );
    assert!(device["properties"]["spec"]["properties"]["nodeName"].is_object());
    assert_eq!(
        schemas["io.kubeedge.devices.v1beta1.DeviceList"][schema::GVK][0]["kind"],
        "DeviceList"
    );
    let item =
        &doc["paths"]["/apis/devices.kubeedge.io/v1beta1/namespaces/{namespace}/devices/{name}"];
    assert!(param_names(&item["patch"]).contains(&"fieldValidation"));
    let types = item["patch"]["requestBody"]["content"]
        .as_object()
        .expect("content");
    assert!(!types.contains_key("application/strategic-merge-patch+json"));
    assert!(doc["paths"]["/apis/devices.kubeedge.io/v1beta1/devices"]["get"].is_object());
}

/// The `/openapi/v3` root lists every group version with a hash that changes only when that
/// group version's document does.
#[test]
fn root_lists_group_versions() {
    let plain = v3_root(&Registry::with_builtins());
    let with_crd = v3_root(&registry_with_device());
    let url = |root: &Value, gv: &str| root["paths"][gv]["serverRelativeURL"].clone();
    let core = url(&plain, "api/v1");
    assert!(
        core.as_str()
            .is_some_and(|u| u.starts_with("/openapi/v3/api/v1?hash="))
    );
    assert_eq!(core, url(&with_crd, "api/v1"));
    assert!(url(&plain, "apis/coordination.k8s.io/v1").is_string());
    assert!(url(&plain, "apis/devices.kubeedge.io/v1beta1").is_null());
    assert!(url(&with_crd, "apis/devices.kubeedge.io/v1beta1").is_string());
}

/// The cache returns the same documents while the registry is unchanged, and on a CRD change
/// rebuilds only the changed group versions.
#[test]
fn cache_follows_registry_changes() {
    let api = OpenApi::new();
    let r = Registry::with_builtins();
    let first = api.documents(&r);
    assert!(Arc::ptr_eq(&first, &api.documents(&r)));
    for info in registry::from_crd(&device_crd()) {
        r.insert(info);
    }
    let second = api.documents(&r);
    assert!(!Arc::ptr_eq(&first, &second));
    let core = |d: &Documents| {
        d.v3_doc("api/v1")
            .map(|g| Arc::clone(&g.doc))
            .expect("api/v1")
    };
    assert!(Arc::ptr_eq(&core(&first), &core(&second)));
    assert!(
        second
            .v3_doc("/apis/devices.kubeedge.io/v1beta1/")
            .is_some()
    );
    assert!(api.v3_doc(&r, "apis/devices.kubeedge.io/v1beta1").is_some());
    r.remove_custom("devices.kubeedge.io", "devices");
    assert!(api.v3_doc(&r, "apis/devices.kubeedge.io/v1beta1").is_none());
}

/// Checks a decoded v2 schema the way kube-openapi's `NewOpenAPIData` does, which fails the
/// whole download on any violation.
fn check_v2_schema(s: &proto::Schema, names: &[&str], at: &str) {
    let types = s
        .r#type
        .as_ref()
        .map(|t| t.value.clone())
        .unwrap_or_default();
    if !s.xref.is_empty() {
        let name = s
            .xref
            .strip_prefix(v2::V2_REF_PREFIX)
            .expect("#/definitions/ ref");
        assert!(names.contains(&name), "{at}: dangling {name}");
        assert!(
            types.is_empty() && s.properties.is_none(),
            "{at}: ref with type/properties"
        );
        return;
    }
    assert!(types.len() <= 1, "{at}: several types");
    let t = types.first().map(String::as_str).unwrap_or("");
    let known = [
        "", "object", "array", "string", "number", "integer", "boolean",
    ];
    assert!(known.contains(&t), "{at}: type {t}");
    if t == "array" {
        let items = s
            .items
            .as_ref()
            .map(|i| i.schema.as_slice())
            .unwrap_or_default();
        assert_eq!(items.len(), 1, "{at}: array items");
        check_v2_schema(&items[0], names, at);
    }
    for p in s.properties.iter().flat_map(|p| &p.additional_properties) {
        let v = p.value.as_ref().expect("property schema");
        check_v2_schema(v, names, &format!("{at}.{}", p.name));
    }
    if let Some(proto::AdditionalPropertiesOneof::Schema(a)) = s
        .additional_properties
        .as_ref()
        .and_then(|a| a.oneof.as_ref())
    {
        check_v2_schema(a, names, at);
    }
}

fn extension<'a>(ext: &'a [proto::NamedAny], name: &str) -> Option<Value> {
    let e: &'a proto::NamedAny = ext.iter().find(|e| e.name == name)?;
    serde_yaml::from_str(&e.value.as_ref()?.yaml).ok()
}

/// The protobuf `/openapi/v2` decodes back, passes the checks of kubectl's v2 parser, maps
/// kinds by their `x-kubernetes-group-version-kind` (YAML in `Any.yaml`), and offers
/// `fieldValidation` on PATCH for kubectl's v2 `QueryParamVerifier`.
#[test]
fn v2_protobuf_decodes_and_parses() {
    let bytes = v2_protobuf(&registry_with_device());
    let doc = proto::Document::decode(bytes.as_slice()).expect("decodes");
    assert_eq!(doc.swagger, "2.0");
    let defs = &doc
        .definitions
        .as_ref()
        .expect("definitions")
        .additional_properties;
    let names: Vec<&str> = defs.iter().map(|d| d.name.as_str()).collect();
    for d in defs {
        check_v2_schema(d.value.as_ref().expect("schema"), &names, &d.name);
    }
    let pod = defs
        .iter()
        .find(|d| d.name == "io.k8s.api.core.v1.Pod")
        .expect("Pod");
    let pod = pod.value.as_ref().expect("schema");
    assert!(pod.description.contains("containers"));
    let gvk = extension(&pod.vendor_extension, schema::GVK).expect("gvk");
    assert_eq!(gvk, json!([{"group": "", "kind": "Pod", "version": "v1"}]));
    assert!(names.contains(&"io.kubeedge.devices.v1beta1.Device"));
    let paths = &doc.paths.as_ref().expect("paths").path;
    let item = paths
        .iter()
        .find(|p| p.name == "/api/v1/namespaces/{namespace}/pods/{name}");
    let patch = item
        .and_then(|p| p.value.as_ref()?.patch.as_ref())
        .expect("patch");
    assert_eq!(
        extension(&patch.vendor_extension, schema::GVK),
        Some(json!({"group": "", "kind": "Pod", "version": "v1"}))
    );
    let has_fv = patch.parameters.iter().any(|p| {
        let Some(proto::ParametersItemOneof::Parameter(param)) = &p.oneof else {
            return false;
        };
        let Some(proto::ParameterOneof::NonBodyParameter(nb)) = &param.oneof else {
            return false;
        };
        matches!(&nb.oneof, Some(proto::NonBodyParameterOneof::QueryParameterSubSchema(q))
            if q.name == "fieldValidation" && q.r#in == "query")
    });
    assert!(has_fv);
}

/// The JSON `/openapi/v2` is the same document: same definitions and paths, `#/definitions/`
/// references, `fieldValidation` on PATCH.
#[test]
fn v2_json_matches_protobuf() {
    let r = registry_with_device();
    let json_doc = v2_json(&r);
    let pb = proto::Document::decode(v2_protobuf(&r).as_slice()).expect("decodes");
    let defs = json_doc["definitions"].as_object().expect("definitions");
    assert_eq!(
        defs.len(),
        pb.definitions
            .map(|d| d.additional_properties.len())
            .unwrap_or(0)
    );
    let paths = json_doc["paths"].as_object().expect("paths");
    assert_eq!(paths.len(), pb.paths.map(|p| p.path.len()).unwrap_or(0));
    assert_eq!(json_doc["swagger"], "2.0");
    let spec = &defs["io.k8s.api.core.v1.Pod"]["properties"]["spec"];
    assert_eq!(spec["$ref"], "#/definitions/io.k8s.api.core.v1.PodSpec");
    let patch = &paths["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"];
    assert!(param_names(patch).contains(&"fieldValidation"));
    assert!(param_names(patch).contains(&"body"));
}

/// Strict validation reports unknown fields at any depth in kube's path style, sorted.
#[test]
fn unknown_fields_of_a_pod() {
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "labels": {"a": "b"}, "annotations": {"x/y": "z"}, "bogus": 1},
        "spec": {"foo": true, "containers": [
            {"name": "a", "image": "busybox"},
            {"name": "b", "imagee": "busybox", "resources": {"limits": {"cpu": "1"}}}
        ]}
    });
    assert_eq!(
        unknown_fields(&pod_info(), &pod),
        vec!["metadata.bogus", "spec.containers[1].imagee", "spec.foo"]
    );
}

/// After a patch, only the top-level fields that differ from the stored object are checked
/// (the rest was checked when it was written), for built-in and custom kinds alike.
#[test]
fn unknown_fields_of_a_patch_are_those_it_changed() {
    let old = json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"foo": true, "containers": [{"name": "a", "image": "busybox"}]},
        "status": {"phase": "Pending"}
    });
    let mut new = old.clone();
    new["status"] = json!({"phase": "Running", "phasee": "x"});
    assert_eq!(
        unknown_fields_changed(&pod_info(), &new, &old),
        vec!["status.phasee"]
    );
    new["spec"]["bar"] = json!(1);
    assert_eq!(
        unknown_fields_changed(&pod_info(), &new, &old),
        vec!["spec.bar", "spec.foo", "status.phasee"]
    );
    assert!(unknown_fields_changed(&pod_info(), &old, &old).is_empty());
    let info = registry_with_device()
        .get("devices.kubeedge.io", "v1beta1", "devices")
        .expect("device");
    let dev = json!({"apiVersion": "devices.kubeedge.io/v1beta1", "kind": "Device",
        "metadata": {"name": "d", "nope": 1}, "spec": {"extra": 1}});
    let mut patched = dev.clone();
    patched["status"] = json!({"twins": [{"propertyName": "t", "reported": {}}]});
    assert_eq!(
        unknown_fields_changed(&info, &patched, &dev),
        vec!["status.twins[0].reported"]
    );
}

/// A valid pod using maps, quantities, int-or-string ports and timestamps has no unknown field.
#[test]
fn valid_pod_has_no_unknown_fields() {
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "namespace": "d", "labels": {"app": "web"},
                     "creationTimestamp": null, "annotations": {"k": "v"}},
        "spec": {
            "nodeSelector": {"node": "edge-1"},
            "containers": [{
                "name": "app", "image": "busybox:1.36", "command": ["sleep", "1"],
                "env": [{"name": "MODE", "value": "one"}],
                "ports": [{"containerPort": 80}],
                "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}, "requests": {"cpu": 1}},
                "livenessProbe": {"httpGet": {"path": "/", "port": "http"}}
            }]
        },
        "status": {"phase": "Pending"}
    });
    assert_eq!(unknown_fields(&pod_info(), &pod), Vec::<String>::new());
}

/// Custom resources follow structural pruning: undeclared fields are unknown, except under
/// `x-kubernetes-preserve-unknown-fields` and `additionalProperties`; `metadata` is checked
/// as `ObjectMeta`; a CRD without schema accepts anything.
#[test]
fn unknown_fields_of_a_custom_resource() {
    let info = registry_with_device()
        .get("devices.kubeedge.io", "v1beta1", "devices")
        .expect("device");
    let dev = json!({
        "apiVersion": "devices.kubeedge.io/v1beta1", "kind": "Device",
        "metadata": {"name": "d", "labels": {"a": "b"}, "nope": 1},
        "spec": {
            "nodeName": "edge-1", "extra": 1,
            "deviceModelRef": {"name": "m", "kind": "x"},
            "properties": [{"name": "t", "visitors": {"protocolName": "modbus",
                "configData": {"anything": {"goes": 1}}}}],
            "protocol": {"configData": {"k": "v"}}
        },
        "status": {"twins": [{"propertyName": "t", "reported": {}}]}
    });
    assert_eq!(
        unknown_fields(&info, &dev),
        vec![
            "metadata.nope",
            "spec.deviceModelRef.kind",
            "spec.extra",
            "status.twins[0].reported",
        ]
    );
    // A field beside spec and status is unknown; `metadata` is ObjectMeta even where the
    // CRD's own schema declares it as a bare object (as controller-gen writes it).
    let mut top = dev.clone();
    top["extra"] = json!(1);
    top["metadata"] = json!({"name": "d", "labels": {"a": "b"}});
    let mut bare_meta = (*info).clone();
    if let SchemaSource::Crd(Some(s)) = &mut bare_meta.schema {
        s["properties"]["metadata"] = json!({"type": "object"});
    }
    assert_eq!(
        unknown_fields(&bare_meta, &top),
        vec![
            "extra",
            "spec.deviceModelRef.kind",
            "spec.extra",
            "status.twins[0].reported",
        ]
    );
    let mut schemaless = (*info).clone();
    schemaless.schema = SchemaSource::Crd(None);
    assert!(unknown_fields(&schemaless, &dev).is_empty());
}

/// A controller-gen CRD manifest is valid under the strict `CustomResourceDefinition` schema
/// (its `x-kubernetes-*` keys are declared properties of `JSONSchemaProps`).
#[test]
fn crd_manifest_is_strictly_valid() {
    let crds = Registry::with_builtins();
    let info = crds
        .get("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        .expect("crd");
    assert_eq!(unknown_fields(&info, &device_crd()), Vec::<String>::new());
    let mut bad = device_crd();
    bad["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["typo"] = json!(1);
    assert_eq!(
        unknown_fields(&info, &bad),
        vec!["spec.versions[0].schema.openAPIV3Schema.typo"]
    );
}
