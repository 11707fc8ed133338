//! Server-side tables (`meta.k8s.io/v1` `Table`): what `kubectl get` prints.

use crate::{registry::ResourceInfo, store::Obj};
use serde_json::{Value, json};
use time::OffsetDateTime;

/// Whether the `Accept` header asks for a Table.
pub fn wants_table(accept: &str) -> bool {
    accept
        .split(',')
        .next()
        .is_some_and(|first| first.contains("as=Table"))
}

fn col(name: &str, type_: &str, priority: i64) -> Value {
    let format = if name == "Name" { "name" } else { "" };
    json!({"name": name, "type": type_, "format": format, "description": "", "priority": priority})
}

/// Column definitions for a resource.
pub fn columns(info: &ResourceInfo) -> Vec<Value> {
    let mut cols = vec![col("Name", "string", 0)];
    match (info.group.as_str(), info.kind.as_str()) {
        ("", "Pod") => {
            cols.extend([
                col("Ready", "string", 0),
                col("Status", "string", 0),
                col("Restarts", "string", 0),
                col("Age", "string", 0),
                col("IP", "string", 1),
                col("Node", "string", 1),
            ]);
        }
        ("", "Node") => {
            cols.extend([
                col("Status", "string", 0),
                col("Roles", "string", 0),
                col("Age", "string", 0),
                col("Version", "string", 0),
            ]);
        }
        ("", "Namespace") => cols.extend([col("Status", "string", 0), col("Age", "string", 0)]),
        ("", "ConfigMap") | ("", "Secret") => {
            cols.extend([col("Data", "integer", 0), col("Age", "string", 0)]);
        }
        _ => {
            for c in &info.printer_columns {
                cols.push(col(&c.name, &c.type_, 0));
            }
            cols.push(col("Age", "string", 0));
        }
    }
    cols
}

/// One row: the cells of `columns(info)` for `v`.
pub fn row(info: &ResourceInfo, obj: &Obj, now: OffsetDateTime) -> Value {
    let v = obj.value();
    let age = age(&v, now);
    let mut cells = vec![json!(obj.name)];
    match (info.group.as_str(), info.kind.as_str()) {
        ("", "Pod") => cells.extend(pod_cells(&v, age)),
        ("", "Node") => cells.extend(node_cells(&v, age)),
        ("", "Namespace") => cells.extend([v["status"]["phase"].clone(), json!(age)]),
        ("", "ConfigMap") | ("", "Secret") => {
            let n = ["data", "binaryData", "stringData"]
                .iter()
                .filter_map(|k| v[*k].as_object().map(serde_json::Map::len))
                .sum::<usize>();
            cells.extend([json!(n), json!(age)]);
        }
        _ => {
            for c in &info.printer_columns {
                cells.push(json_path(&v, &c.json_path));
            }
            cells.push(json!(age));
        }
    }
    let mut meta = v["metadata"].clone();
    if let Some(m) = meta.as_object_mut() {
        m.remove("managedFields");
    }
    json!({"cells": cells, "object": {"kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1", "metadata": meta}})
}

fn pod_cells(v: &Value, age: String) -> Vec<Value> {
    let total = v["spec"]["containers"].as_array().map_or(0, Vec::len);
    let statuses = v["status"]["containerStatuses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let ready = statuses
        .iter()
        .filter(|s| s["ready"] == json!(true))
        .count();
    let restarts: i64 = statuses
        .iter()
        .filter_map(|s| s["restartCount"].as_i64())
        .sum();
    let mut status = v["status"]["phase"]
        .as_str()
        .unwrap_or("Pending")
        .to_owned();
    for s in &statuses {
        if let Some(r) = s["state"]["waiting"]["reason"].as_str() {
            status = r.to_owned();
        } else if let Some(r) = s["state"]["terminated"]["reason"].as_str() {
            status = r.to_owned();
        }
    }
    if v["metadata"].get("deletionTimestamp").is_some() {
        status = "Terminating".into();
    }
    vec![
        json!(format!("{ready}/{total}")),
        json!(status),
        json!(restarts.to_string()),
        json!(age),
        json!(v["status"]["podIP"].as_str().unwrap_or("<none>")),
        json!(v["spec"]["nodeName"].as_str().unwrap_or("<none>")),
    ]
}

fn node_cells(v: &Value, age: String) -> Vec<Value> {
    let ready = v["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
        .map(|c| c["status"].as_str().unwrap_or("Unknown").to_owned());
    let mut status = match ready.as_deref() {
        Some("True") => "Ready".to_owned(),
        _ => "NotReady".to_owned(),
    };
    if v["spec"]["unschedulable"] == json!(true) {
        status.push_str(",SchedulingDisabled");
    }
    let roles: Vec<&str> = v["metadata"]["labels"]
        .as_object()
        .map(|m| {
            m.keys()
                .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/"))
                .collect()
        })
        .unwrap_or_default();
    let roles = if roles.is_empty() {
        "<none>".to_owned()
    } else {
        roles.join(",")
    };
    let version = v["status"]["nodeInfo"]["kubeletVersion"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    vec![json!(status), json!(roles), json!(age), json!(version)]
}

/// Evaluates a simple JSONPath (`.spec.nodeName`, `.status.conditions[0].type`).
fn json_path(v: &Value, path: &str) -> Value {
    let mut cur = v;
    for part in path
        .trim_start_matches('.')
        .split('.')
        .filter(|p| !p.is_empty())
    {
        let (key, idx) = match part.split_once('[') {
            Some((k, rest)) => (k, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (part, None),
        };
        cur = &cur[key];
        if let Some(i) = idx {
            cur = &cur[i];
        }
    }
    cur.clone()
}

/// Kubernetes' short age format (`45s`, `12m`, `5h`, `3d`).
fn age(v: &Value, now: OffsetDateTime) -> String {
    let Some(ts) = v["metadata"]["creationTimestamp"].as_str() else {
        return "<unknown>".into();
    };
    let Ok(t) = OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339) else {
        return "<unknown>".into();
    };
    let s = (now - t).whole_seconds().max(0);
    match s {
        0..120 => format!("{s}s"),
        120..7_200 => format!("{}m", s / 60),
        7_200..172_800 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// A Table of `objs`.
pub fn table(
    info: &ResourceInfo,
    objs: &[std::sync::Arc<Obj>],
    list_meta: Value,
    now: OffsetDateTime,
) -> Value {
    let rows: Vec<Value> = objs.iter().map(|o| row(info, o, now)).collect();
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta,
        "columnDefinitions": columns(info), "rows": rows})
}
