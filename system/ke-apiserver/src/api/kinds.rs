//! What differs between kinds: defaults on create, validation, and status handling.

use crate::registry::ResourceInfo;
use serde_json::{Value, json};

/// Fills defaults and resets status on create, as kube's registry strategies do.
pub(super) fn prepare_create(info: &ResourceInfo, obj: &mut Value, now: &str) {
    match (info.group.as_str(), info.kind.as_str()) {
        ("", "Pod") => {
            default_pod_spec(&mut obj["spec"]);
            obj["status"] = json!({"phase": "Pending", "qosClass": "BestEffort"});
        }
        ("", "Namespace") => obj["status"] = json!({"phase": "Active"}),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => crd_status(obj, now),
        _ if info.is_custom() && info.has_status => {
            if let Some(m) = obj.as_object_mut() {
                m.remove("status");
            }
        }
        _ => {}
    }
}

fn default_pod_spec(spec: &mut Value) {
    let Some(s) = spec.as_object_mut() else {
        return;
    };
    for (k, v) in [
        ("restartPolicy", json!("Always")),
        ("dnsPolicy", json!("ClusterFirst")),
        ("schedulerName", json!("default-scheduler")),
        ("terminationGracePeriodSeconds", json!(30)),
        ("securityContext", json!({})),
    ] {
        s.entry(k).or_insert(v);
    }
    for list in ["containers", "initContainers"] {
        let Some(cs) = s.get_mut(list).and_then(Value::as_array_mut) else {
            continue;
        };
        for c in cs.iter_mut().filter_map(Value::as_object_mut) {
            let image = c.get("image").and_then(Value::as_str).unwrap_or_default();
            let tag = image
                .rsplit('/')
                .next()
                .and_then(|x| x.split_once(':'))
                .map(|x| x.1);
            let pull = if matches!(tag, None | Some("latest")) {
                "Always"
            } else {
                "IfNotPresent"
            };
            c.entry("imagePullPolicy").or_insert(json!(pull));
            c.entry("terminationMessagePath")
                .or_insert(json!("/dev/termination-log"));
            c.entry("terminationMessagePolicy").or_insert(json!("File"));
            c.entry("resources").or_insert(json!({}));
        }
    }
}

fn crd_status(obj: &mut Value, now: &str) {
    let names = obj["spec"]["names"].clone();
    let cond = |t: &str, reason: &str, msg: &str| json!({"type": t, "status": "True", "lastTransitionTime": now, "reason": reason, "message": msg});
    let stored: Vec<Value> = obj["spec"]["versions"]
        .as_array()
        .map(|vs| {
            vs.iter()
                .filter(|v| v["storage"] == json!(true))
                .map(|v| v["name"].clone())
                .collect()
        })
        .unwrap_or_default();
    obj["status"] = json!({
        "acceptedNames": names,
        "storedVersions": stored,
        "conditions": [
            cond("NamesAccepted", "NoConflicts", "no conflicts found for the names"),
            cond("Established", "InitialNamesAccepted", "the initial names have been accepted"),
        ],
    });
}

/// Field errors `(path, message)` of an object about to be written.
pub(super) fn validate(info: &ResourceInfo, obj: &Value) -> Vec<(String, String)> {
    let mut errs = Vec::new();
    match (info.group.as_str(), info.kind.as_str()) {
        ("", "Pod") => validate_pod(obj, &mut errs),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => validate_crd(obj, &mut errs),
        _ => {}
    }
    errs
}

fn validate_pod(obj: &Value, errs: &mut Vec<(String, String)>) {
    let containers = obj["spec"]["containers"].as_array();
    if containers.is_none_or(Vec::is_empty) {
        errs.push(("spec.containers".into(), "Required value".into()));
    }
    for (i, c) in containers.into_iter().flatten().enumerate() {
        let name = c["name"].as_str().unwrap_or_default();
        if !crate::api::meta::is_dns_label(name) {
            errs.push((
                format!("spec.containers[{i}].name"),
                format!("Invalid value: \"{name}\""),
            ));
        }
        if c["image"].as_str().is_none_or(str::is_empty) {
            errs.push((
                format!("spec.containers[{i}].image"),
                "Required value".into(),
            ));
        }
    }
}

fn validate_crd(obj: &Value, errs: &mut Vec<(String, String)>) {
    let spec = &obj["spec"];
    let group = spec["group"].as_str().unwrap_or_default();
    let plural = spec["names"]["plural"].as_str().unwrap_or_default();
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    if group.is_empty() || !group.contains('.') {
        errs.push((
            "spec.group".into(),
            "should be a domain with at least one dot".into(),
        ));
    }
    if plural.is_empty() || spec["names"]["kind"].as_str().is_none_or(str::is_empty) {
        errs.push(("spec.names".into(), "plural and kind are required".into()));
    }
    if name != format!("{plural}.{group}") {
        errs.push((
            "metadata.name".into(),
            "must be spec.names.plural+\".\"+spec.group".to_string(),
        ));
    }
    if !matches!(spec["scope"].as_str(), Some("Namespaced" | "Cluster")) {
        errs.push((
            "spec.scope".into(),
            "Unsupported value: must be Namespaced or Cluster".into(),
        ));
    }
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    if versions
        .iter()
        .filter(|v| v["storage"] == json!(true))
        .count()
        != 1
    {
        errs.push((
            "spec.versions".into(),
            "must have exactly one version marked as storage".into(),
        ));
    }
}
