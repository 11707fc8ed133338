//! What each DeviceTwin input does to the tables, and what it publishes (pure over one
//! SQLite transaction; the task commits it, then publishes).
//!
//! - A Device object from the cloud (stored by MetaManager first) sets the device row and
//!   each property's *expected* value (`spec.properties[].desired.value`, version `cloud`+1 on
//!   every change); properties gone from the spec are removed. Published: membership
//!   `updated` for a new device, the `document` of what changed, the `delta` when any expected
//!   value differs from the actual one.
//! - A mapper's `twin/update` sets *actual* values (and expected ones if given; version
//!   `edge`+1 each) and queues an `edge_updated` report for the cloud; published: `result`,
//!   `document`, `delta`. A mapper's `state/update` sets the device state and queues a state
//!   report. A `twin/get` or `membership/get` publishes its result.
//! - A malformed request, an unknown device or a full outbox publish an [`ErrorResult`] on
//!   the request's result topic and change nothing (the transaction is dropped).

use std::collections::BTreeMap;

use ke_proto::twin::{
    self, DeviceRequest, DeviceStateUpdate, ErrorResult, MemberDevice, MembershipList,
    MembershipUpdate, MsgTwin, StateDevice, TwinDelta, TwinDoc, TwinDocument, TwinUpdate,
    ValueMetadata,
};
use rusqlite::Connection;
use serde_json::Value;

use super::store::{self, DeviceRow, StoreError, TwinRow};
use crate::eventbus::BusMessage;

/// A request refused: an error result with this code and reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {reason}")]
pub struct Refused {
    /// 400, 404, 500 or 503.
    pub code: u16,
    /// Why.
    pub reason: String,
}

impl From<StoreError> for Refused {
    fn from(e: StoreError) -> Self {
        Self {
            code: 500,
            reason: e.to_string(),
        }
    }
}

fn refused(code: u16, reason: impl Into<String>) -> Refused {
    Refused {
        code,
        reason: reason.into(),
    }
}

/// Time and ids for one input.
pub struct Ctx<'a> {
    /// This node.
    pub node: &'a str,
    /// Now, in ms.
    pub now_ms: i64,
    /// Now, RFC 3339.
    pub now_rfc3339: String,
    /// Makes event ids.
    pub ids: &'a mut dyn FnMut() -> String,
    /// Reports the outbox may hold.
    pub outbox_max: usize,
    /// Reports waiting when the transaction began.
    pub outbox_len: usize,
    /// Reports this transaction has queued.
    pub queued: usize,
}

fn publish<T: serde::Serialize>(topic: String, payload: &T) -> BusMessage {
    BusMessage {
        topic,
        payload: serde_json::to_vec(payload).unwrap_or_default(),
    }
}

/// The error result of a refused request.
pub fn error_result(topic: String, event_id: String, now_ms: i64, r: &Refused) -> BusMessage {
    publish(
        topic,
        &ErrorResult {
            event_id,
            timestamp: now_ms,
            code: r.code,
            reason: r.reason.clone(),
        },
    )
}

/// `(namespace, name)` of a Device object.
pub fn device_key(obj: &Value) -> Option<(String, String)> {
    let meta = obj.get("metadata")?;
    let ns = meta.get("namespace")?.as_str()?;
    let name = meta.get("name")?.as_str()?;
    Some((ns.to_owned(), name.to_owned()))
}

/// `spec.properties[]` as name → (desired value, type).
fn desired_of(obj: &Value) -> BTreeMap<String, (Option<String>, String)> {
    let props = obj
        .pointer("/spec/properties")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    props
        .iter()
        .filter_map(|p| {
            let name = p.get("name")?.as_str()?.to_owned();
            let desired = p.get("desired");
            let value = desired
                .and_then(|d| d.get("value"))
                .and_then(Value::as_str)
                .filter(|v| !v.is_empty())
                .map(str::to_owned);
            let kind = desired
                .and_then(|d| d.pointer("/metadata/type"))
                .and_then(Value::as_str)
                .unwrap_or("string")
                .to_owned();
            Some((name, (value, kind)))
        })
        .collect()
}

/// The delta and document publications after a change of `id`'s twins; `all` is every twin
/// of the device as the transaction leaves it (the callers have it, so the twins are not
/// read and parsed again on every report).
fn after_change(
    id: &str,
    event_id: String,
    doc: BTreeMap<String, TwinDoc>,
    all: &BTreeMap<String, TwinRow>,
    ctx: &mut Ctx<'_>,
) -> Vec<BusMessage> {
    let (ns, name) = id.split_once('/').unwrap_or(("", id));
    let mut out = Vec::new();
    if !doc.is_empty() {
        let document = TwinDocument {
            event_id,
            timestamp: ctx.now_ms,
            twin: doc,
        };
        out.push(publish(
            twin::device_topic(ns, name, "twin/update/document"),
            &document,
        ));
    }
    let delta: BTreeMap<String, String> = all
        .iter()
        .filter(|(_, t)| t.has_delta())
        .map(|(k, t)| (k.clone(), t.expected.clone().unwrap_or_default()))
        .collect();
    if !delta.is_empty() {
        let msg = TwinDelta {
            event_id: (ctx.ids)(),
            timestamp: ctx.now_ms,
            twin: all
                .iter()
                .map(|(k, t)| (k.clone(), t.to_msg(false)))
                .collect(),
            delta,
        };
        out.push(publish(
            twin::device_topic(ns, name, "twin/update/delta"),
            &msg,
        ));
    }
    out
}

fn membership_updated(ctx: &mut Ctx<'_>, dev: MemberDevice, added: bool) -> BusMessage {
    let list = Some(vec![dev]);
    let update = MembershipUpdate {
        event_id: (ctx.ids)(),
        timestamp: ctx.now_ms,
        added_devices: if added { list.clone() } else { None },
        removed_devices: if added { None } else { list },
    };
    publish(twin::node_topic(ctx.node, "membership/updated"), &update)
}

/// A Device object stored (inserted or updated): sync the device and its expected values.
pub fn sync_device(
    c: &Connection,
    obj: &Value,
    ctx: &mut Ctx<'_>,
) -> Result<Vec<BusMessage>, StoreError> {
    let Some((ns, name)) = device_key(obj) else {
        return Ok(Vec::new());
    };
    let id = format!("{ns}/{name}");
    let description = obj
        .pointer("/metadata/labels/description")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let existing = store::device(c, &id)?;
    let mut out = Vec::new();
    let row = DeviceRow {
        id: id.clone(),
        name,
        description,
        ..existing.clone().unwrap_or_default()
    };
    store::put_device(c, &row)?;
    if existing.is_none() {
        out.push(membership_updated(ctx, row.member(), true));
    }
    let mut current = store::twins(c, &id)?;
    let mut doc = BTreeMap::new();
    let mut all = BTreeMap::new();
    for (prop, (desired, kind)) in desired_of(obj) {
        let last = current.remove(&prop);
        let mut row = last.clone().unwrap_or_default();
        let changed = desired.is_some() && desired != row.expected;
        if changed {
            row.expected = desired;
            row.expected_meta = Some(ValueMetadata {
                timestamp: ctx.now_ms,
            });
            row.expected_version.cloud += 1;
        }
        if row.attr_type != kind {
            row.attr_type = kind;
        }
        if changed || last.as_ref() != Some(&row) {
            store::put_twin(c, &id, &prop, &row)?;
            let doc_entry = TwinDoc {
                last: last.map(|t| t.to_msg(false)),
                current: Some(row.to_msg(false)),
            };
            doc.insert(prop.clone(), doc_entry);
        }
        all.insert(prop, row);
    }
    for (gone, row) in current {
        store::remove_twin(c, &id, &gone)?;
        let doc_entry = TwinDoc {
            last: Some(row.to_msg(false)),
            current: None,
        };
        doc.insert(gone, doc_entry);
    }
    let event_id = (ctx.ids)();
    out.extend(after_change(&id, event_id, doc, &all, ctx));
    Ok(out)
}

/// A Device object deleted: drop the device and its twins.
pub fn remove_device(
    c: &Connection,
    id: &str,
    ctx: &mut Ctx<'_>,
) -> Result<Vec<BusMessage>, StoreError> {
    let Some(row) = store::device(c, id)? else {
        return Ok(Vec::new());
    };
    store::remove_device(c, id)?;
    Ok(vec![membership_updated(ctx, row.member(), false)])
}

/// A mapper's request on a device topic.
pub fn device_request(
    c: &Connection,
    (ns, name, request): (&str, &str, DeviceRequest),
    payload: &[u8],
    ctx: &mut Ctx<'_>,
) -> Result<Vec<BusMessage>, Refused> {
    let id = format!("{ns}/{name}");
    let dev = store::device(c, &id)?
        .ok_or_else(|| refused(404, format!("device {id} is not on node {}", ctx.node)))?;
    match request {
        DeviceRequest::TwinUpdate => twin_update(c, &dev, payload, ctx),
        DeviceRequest::TwinGet => {
            let twins = store::twins(c, &id)?;
            let result = TwinUpdate {
                event_id: twin::event_id_of(payload),
                timestamp: ctx.now_ms,
                twin: twins
                    .iter()
                    .map(|(k, t)| (k.clone(), t.to_msg(false)))
                    .collect(),
            };
            Ok(vec![publish(
                twin::device_topic(ns, name, request.result_suffix()),
                &result,
            )])
        }
        DeviceRequest::StateUpdate => state_update(c, dev, payload, ctx),
    }
}

fn check_outbox(ctx: &Ctx<'_>) -> Result<(), Refused> {
    if ctx.outbox_len + ctx.queued >= ctx.outbox_max {
        return Err(refused(
            503,
            format!(
                "{} reports wait for the cloud; try again later",
                ctx.outbox_max
            ),
        ));
    }
    Ok(())
}

fn twin_update(
    c: &Connection,
    dev: &DeviceRow,
    payload: &[u8],
    ctx: &mut Ctx<'_>,
) -> Result<Vec<BusMessage>, Refused> {
    let update = twin::parse_twin_update(payload).map_err(|e| refused(400, e.to_string()))?;
    check_outbox(ctx)?;
    let mut current = store::twins(c, &dev.id)?;
    let (mut result, mut report, mut doc) = (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
    let mut updated = BTreeMap::new();
    for (key, t) in &update.twin {
        let last = current.remove(key);
        if t.is_deleted() {
            store::remove_twin(c, &dev.id, key)?;
            report.insert(key.clone(), t.clone());
            let entry = TwinDoc {
                last: last.map(|l| l.to_msg(false)),
                current: None,
            };
            doc.insert(key.clone(), entry);
            continue;
        }
        let row = apply_edge(last.clone().unwrap_or_default(), t, ctx.now_ms);
        store::put_twin(c, &dev.id, key, &row)?;
        result.insert(key.clone(), row.to_msg(false));
        report.insert(key.clone(), row.to_msg(true));
        let entry = TwinDoc {
            last: last.map(|l| l.to_msg(false)),
            current: Some(row.to_msg(false)),
        };
        doc.insert(key.clone(), entry);
        updated.insert(key.clone(), row);
    }
    // Every twin as the transaction leaves it: the untouched ones and the updated ones.
    current.append(&mut updated);
    let report = TwinUpdate {
        event_id: (ctx.ids)(),
        timestamp: ctx.now_ms,
        twin: report,
    };
    let (ns, name) = dev.id.split_once('/').unwrap_or(("", &dev.id));
    let resource = format!("device/{ns}/{name}/twin/edge_updated");
    let content = serde_json::to_string(&report).unwrap_or_default();
    store::push_report(c, &resource, &content)?;
    ctx.queued += 1;
    let result = TwinUpdate {
        event_id: update.event_id.clone(),
        timestamp: ctx.now_ms,
        twin: result,
    };
    let mut out = vec![publish(
        twin::device_topic(ns, name, DeviceRequest::TwinUpdate.result_suffix()),
        &result,
    )];
    out.extend(after_change(&dev.id, update.event_id, doc, &current, ctx));
    Ok(out)
}

/// A twin row after a mapper's update of it.
fn apply_edge(mut row: TwinRow, t: &MsgTwin, now_ms: i64) -> TwinRow {
    let stamp = |v: &Option<ke_proto::twin::TwinValue>| ValueMetadata {
        timestamp: v
            .as_ref()
            .and_then(|v| v.metadata)
            .map_or(now_ms, |m| m.timestamp),
    };
    if let Some(a) = t.actual_value() {
        row.actual = Some(a.to_owned());
        row.actual_meta = Some(stamp(&t.actual));
        row.actual_version.edge += 1;
    }
    if let Some(e) = t.expected_value() {
        row.expected = Some(e.to_owned());
        row.expected_meta = Some(stamp(&t.expected));
        row.expected_version.edge += 1;
    }
    if let Some(kind) = t
        .metadata
        .as_ref()
        .map(|m| &m.kind)
        .filter(|k| !k.is_empty())
    {
        row.attr_type.clone_from(kind);
    }
    if row.attr_type.is_empty() {
        row.attr_type = "string".to_owned();
    }
    if let Some(o) = t.optional {
        row.optional = o;
    }
    row
}

fn state_update(
    c: &Connection,
    mut dev: DeviceRow,
    payload: &[u8],
    ctx: &mut Ctx<'_>,
) -> Result<Vec<BusMessage>, Refused> {
    let update = twin::parse_state_update(payload).map_err(|e| refused(400, e.to_string()))?;
    check_outbox(ctx)?;
    dev.state.clone_from(&update.state);
    if matches!(update.state.as_str(), "online" | "ok") {
        dev.last_online.clone_from(&ctx.now_rfc3339);
    }
    store::put_device(c, &dev)?;
    let report = DeviceStateUpdate {
        event_id: (ctx.ids)(),
        timestamp: ctx.now_ms,
        device: StateDevice {
            name: dev.name.clone(),
            state: dev.state.clone(),
            last_online_time: dev.last_online.clone(),
        },
    };
    let (ns, name) = dev.id.split_once('/').unwrap_or(("", &dev.id));
    // KubeEdge sends the state report's content as a JSON string.
    let inner = serde_json::to_string(&report).unwrap_or_default();
    let content = serde_json::to_string(&Value::String(inner)).unwrap_or_default();
    store::push_report(c, &format!("device/{ns}/{name}/state/update"), &content)?;
    ctx.queued += 1;
    let result = DeviceStateUpdate {
        event_id: update.event_id,
        ..report
    };
    Ok(vec![publish(
        twin::device_topic(ns, name, DeviceRequest::StateUpdate.result_suffix()),
        &result,
    )])
}

/// A mapper's `membership/get` for this node: every device with its twins.
pub fn membership_get(
    c: &Connection,
    payload: &[u8],
    ctx: &Ctx<'_>,
) -> Result<BusMessage, StoreError> {
    let mut devices = Vec::new();
    for row in store::devices(c)?.into_values() {
        let mut member = row.member();
        member.twin = store::twins(c, &row.id)?
            .iter()
            .map(|(k, t)| (k.clone(), t.to_msg(false)))
            .collect();
        devices.push(member);
    }
    let list = MembershipList {
        event_id: twin::event_id_of(payload),
        timestamp: ctx.now_ms,
        devices,
    };
    Ok(publish(
        twin::node_topic(ctx.node, "membership/get/result"),
        &list,
    ))
}
