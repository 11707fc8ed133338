//! The `devices.kubeedge.io/v1beta1` CustomResourceDefinitions in KubeEdge 1.23's shape
//! (`build/crds/devices/*.yaml`, reference §7), and their installation at cloudcore's start.
//!
//! The schemas declare the documented fields; free-form subtrees (`configData`, `visitors`,
//! `pushMethod`, `extensions`, …) keep unknown fields. None has a status subresource: KubeEdge
//! has none, and its DeviceController merge-patches the main resource (so does ours).

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{
    Api,
    api::{ObjectMeta, PostParams},
};
use serde_json::{Value, json};
use tokio::time::{Duration, sleep};
use tracing::{info, warn};

use super::{DeviceKind, GROUP, VERSION};
use crate::edgecontroller::Metrics;

/// How long to wait for an installed CRD to be `Established` before the watches start anyway.
const ESTABLISHED_WAIT: Duration = Duration::from_secs(10);
/// How often to look while waiting.
const ESTABLISHED_POLL: Duration = Duration::from_millis(200);

/// The three CRDs, in the order they are installed.
pub fn all() -> [CustomResourceDefinition; 3] {
    [
        crd(DeviceKind::DeviceModel),
        crd(DeviceKind::Device),
        crd(DeviceKind::DeviceStatus),
    ]
}

/// One CRD.
pub fn crd(kind: DeviceKind) -> CustomResourceDefinition {
    serde_json::from_value(crd_json(kind))
        .expect("invariant: the CRD JSON is built here and matches the apiextensions type")
}

/// One CRD as JSON.
pub fn crd_json(kind: DeviceKind) -> Value {
    let (schema, columns) = match kind {
        DeviceKind::Device => (device_schema(), device_columns()),
        DeviceKind::DeviceModel => (model_schema(), age_column()),
        DeviceKind::DeviceStatus => (status_schema(), status_columns()),
    };
    let singular = kind.kind().to_lowercase();
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{}.{GROUP}", kind.plural())},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": kind.kind(),
                "listKind": format!("{}List", kind.kind()),
                "plural": kind.plural(),
                "singular": singular,
            },
            "scope": "Namespaced",
            "versions": [{
                "name": VERSION,
                "served": true,
                "storage": true,
                "schema": {"openAPIV3Schema": schema},
                "additionalPrinterColumns": columns,
            }],
        },
    })
}

fn object(properties: Value) -> Value {
    json!({"type": "object", "properties": properties})
}

fn free_form() -> Value {
    json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true})
}

fn array_of(items: Value) -> Value {
    json!({"type": "array", "items": items})
}

fn string_map() -> Value {
    json!({"type": "object", "additionalProperties": {"type": "string"}})
}

fn root(description: &str, spec: Value, status: Value) -> Value {
    json!({
        "description": description,
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
    })
}

fn device_schema() -> Value {
    let property = object(json!({
        "name": {"type": "string"},
        "desired": object(json!({"value": {"type": "string"}, "metadata": string_map()})),
        "visitors": free_form(),
        "reportCycle": {"type": "integer", "format": "int64"},
        "collectCycle": {"type": "integer", "format": "int64"},
        "reportToCloud": {"type": "boolean"},
        "pushMethod": free_form(),
    }));
    let method = object(json!({
        "name": {"type": "string"},
        "description": {"type": "string"},
        "propertyNames": array_of(json!({"type": "string"})),
    }));
    let spec = object(json!({
        "deviceModelRef": object(json!({"name": {"type": "string"}})),
        "nodeName": {"type": "string"},
        "properties": array_of(property),
        "protocol": object(json!({
            "protocolName": {"type": "string"},
            "configData": free_form(),
        })),
        "methods": array_of(method),
        "stateReport": object(json!({
            "reportToCloud": {"type": "boolean"},
            "reportCycle": {"type": "integer", "format": "int64"},
        })),
    }));
    let status = object(json!({
        "reportToCloud": {"type": "boolean"},
        "reportCycle": {"type": "integer", "format": "int64"},
    }));
    root("Device is the Schema for the devices API", spec, status)
}

fn model_schema() -> Value {
    let property = object(json!({
        "name": {"type": "string"},
        "description": {"type": "string"},
        "type": {"type": "string",
                 "enum": ["INT", "FLOAT", "DOUBLE", "STRING", "BOOLEAN", "BYTES", "STREAM"]},
        "accessMode": {"type": "string", "enum": ["ReadWrite", "ReadOnly"]},
        "minimum": {"type": "string"},
        "maximum": {"type": "string"},
        "unit": {"type": "string"},
        "visitors": free_form(),
    }));
    let spec = object(json!({
        "properties": array_of(property),
        "protocol": {"type": "string"},
        "protocolConfigData": free_form(),
    }));
    root(
        "DeviceModel is the Schema for the device model API",
        spec,
        free_form(),
    )
}

fn status_schema() -> Value {
    let property = object(json!({"value": {"type": "string"}, "metadata": string_map()}));
    let twin = object(json!({
        "propertyName": {"type": "string"},
        "reported": property.clone(),
        "observedDesired": property,
    }));
    let status = object(json!({
        "twins": array_of(twin),
        "state": {"type": "string"},
        "lastOnlineTime": {"type": "string"},
        "extensions": free_form(),
    }));
    root(
        "DeviceStatus is the Schema for the device status API",
        free_form(),
        status,
    )
}

fn column(name: &str, kind: &str, path: &str) -> Value {
    json!({"name": name, "type": kind, "jsonPath": path})
}

fn age_column() -> Value {
    json!([column("Age", "date", ".metadata.creationTimestamp")])
}

fn device_columns() -> Value {
    json!([
        column("Node", "string", ".spec.nodeName"),
        column("Model", "string", ".spec.deviceModelRef.name"),
        column("Age", "date", ".metadata.creationTimestamp"),
    ])
}

fn status_columns() -> Value {
    json!([
        column("State", "string", ".status.state"),
        column("Last Online", "string", ".status.lastOnlineTime"),
        column("Age", "date", ".metadata.creationTimestamp"),
    ])
}

/// Why the CRDs could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// The API server refused or failed a request.
    #[error("{verb} CustomResourceDefinition {name}")]
    Api {
        /// `get`, `create` or `replace`.
        verb: &'static str,
        /// The CRD's name.
        name: String,
        /// The cause.
        #[source]
        source: kube::Error,
    },
}

/// Installs the three CRDs: creates each one that is missing, replaces one whose spec differs
/// from ours (at its current resourceVersion), then waits (bounded) until all are
/// `Established`. API requests are counted in `metrics`.
pub async fn install(client: &kube::Client, metrics: &Metrics) -> Result<(), InstallError> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in all() {
        install_one(&api, crd, metrics).await?;
    }
    for crd in all() {
        let name = crd.metadata.name.unwrap_or_default();
        wait_established(&api, &name, metrics).await;
    }
    Ok(())
}

async fn install_one(
    api: &Api<CustomResourceDefinition>,
    mut crd: CustomResourceDefinition,
    metrics: &Metrics,
) -> Result<(), InstallError> {
    let name = crd.metadata.name.clone().unwrap_or_default();
    let err = |verb, source| InstallError::Api {
        verb,
        name: name.clone(),
        source,
    };
    metrics.api("get");
    let current = match api.get_opt(&name).await {
        Ok(c) => c,
        Err(e) => return Err(err("get", e)),
    };
    let Some(current) = current else {
        metrics.api("create");
        api.create(&PostParams::default(), &crd)
            .await
            .map_err(|e| err("create", e))?;
        info!(crd = %name, "installed");
        return Ok(());
    };
    let ours = serde_json::to_value(&crd.spec).unwrap_or(Value::Null);
    let theirs = serde_json::to_value(&current.spec).unwrap_or(Value::Null);
    // A status subresource would make the controller's merge patches of the main resource
    // drop `status`, so an otherwise equal CRD that has one is replaced too.
    if is_subset(&ours, &theirs) && !has_status_subresource(&theirs) {
        return Ok(());
    }
    crd.metadata = ObjectMeta {
        resource_version: current.metadata.resource_version.clone(),
        ..crd.metadata
    };
    metrics.api("update");
    api.replace(&name, &PostParams::default(), &crd)
        .await
        .map_err(|e| err("replace", e))?;
    info!(crd = %name, "replaced (its spec differed)");
    Ok(())
}

/// True if every field of `ours` has the same value in `theirs` (the API server may default
/// fields we leave out, so a stored CRD is a superset of what we sent).
fn is_subset(ours: &Value, theirs: &Value) -> bool {
    match (ours, theirs) {
        (Value::Object(a), Value::Object(b)) => a
            .iter()
            .all(|(k, v)| b.get(k).is_some_and(|w| is_subset(v, w))),
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(v, w)| is_subset(v, w))
        }
        _ => ours == theirs,
    }
}

fn has_status_subresource(spec: &Value) -> bool {
    spec["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|v| v.pointer("/subresources/status").is_some())
}

fn established(crd: &CustomResourceDefinition) -> bool {
    crd.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
        })
}

async fn wait_established(api: &Api<CustomResourceDefinition>, name: &str, metrics: &Metrics) {
    let deadline = tokio::time::Instant::now() + ESTABLISHED_WAIT;
    loop {
        metrics.api("get");
        if let Ok(Some(crd)) = api.get_opt(name).await
            && established(&crd)
        {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            warn!(crd = %name, "not Established in time; the watches will retry");
            return;
        }
        sleep(ESTABLISHED_POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: each CRD is namespaced, served and stored at v1beta1 without a status
    /// subresource, and its schema covers the documented fields, keeping unknown fields only
    /// in the free-form subtrees. Method: walk the built JSON.
    #[test]
    fn crds_have_kubeedge_shape() {
        for kind in [
            DeviceKind::Device,
            DeviceKind::DeviceModel,
            DeviceKind::DeviceStatus,
        ] {
            let c = crd_json(kind);
            assert_eq!(c["spec"]["scope"], "Namespaced");
            assert_eq!(c["spec"]["names"]["plural"], kind.plural());
            let v = &c["spec"]["versions"][0];
            assert_eq!(
                (v["served"].clone(), v["storage"].clone()),
                (true.into(), true.into())
            );
            assert!(v.get("subresources").is_none(), "{kind:?}");
            let parsed = crd(kind);
            assert_eq!(
                parsed.metadata.name.as_deref(),
                Some(format!("{}.devices.kubeedge.io", kind.plural()).as_str())
            );
        }
        let d = crd_json(DeviceKind::Device);
        let s = &d["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
        let prop = &s["properties"]["properties"]["items"]["properties"];
        assert_eq!(
            prop["desired"]["properties"]["metadata"]["additionalProperties"]["type"],
            "string"
        );
        assert_eq!(
            prop["pushMethod"]["x-kubernetes-preserve-unknown-fields"],
            true
        );
        assert_eq!(
            s["properties"]["protocol"]["properties"]["configData"]["x-kubernetes-preserve-unknown-fields"],
            true
        );
        assert_eq!(
            s["properties"]["deviceModelRef"]["properties"]["name"]["type"],
            "string"
        );
        let st = crd_json(DeviceKind::DeviceStatus);
        let status =
            &st["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"];
        let twin = &status["properties"]["twins"]["items"]["properties"];
        assert_eq!(
            twin["observedDesired"]["properties"]["value"]["type"],
            "string"
        );
        assert_eq!(
            status["properties"]["extensions"]["x-kubernetes-preserve-unknown-fields"],
            true
        );
        let cols = &d["spec"]["versions"][0]["additionalPrinterColumns"];
        assert_eq!(cols[0]["jsonPath"], ".spec.nodeName");
    }

    /// Goal: a stored CRD the server defaulted counts as ours; a changed one does not.
    #[test]
    fn subset_comparison() {
        let ours = json!({"a": 1, "v": [{"x": true}]});
        assert!(is_subset(
            &ours,
            &json!({"a": 1, "b": 2, "v": [{"x": true, "y": 0}]})
        ));
        assert!(!is_subset(&ours, &json!({"a": 2, "v": [{"x": true}]})));
        assert!(!is_subset(&ours, &json!({"a": 1, "v": []})));
        let spec = json!({"versions": [{"name": "v1beta1", "subresources": {"status": {}}}]});
        assert!(has_status_subresource(&spec));
        assert!(!has_status_subresource(
            &crd_json(DeviceKind::Device)["spec"]
        ));
    }
}
