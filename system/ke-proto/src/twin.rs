//! DeviceTwin payloads and topics (wire reference §6.2–§6.3, KubeEdge's
//! `edge/pkg/devicetwin/dttype`): the JSON that mappers, edgecore and cloudcore exchange about
//! devices, with KubeEdge's field names, and the MQTT topic grammar.
//!
//! - Mapper → edge (MQTT): [`TwinUpdate`] on `$hw/events/device/<ns>/<name>/twin/update`,
//!   an empty [`Base`] on `…/twin/get`, [`StateUpdate`] on `…/state/update`, a [`Base`] on
//!   `$hw/events/node/<node>/membership/get`.
//! - Edge → mapper (MQTT): [`TwinUpdate`] on `…/twin/update/result` and `…/twin/get/result`,
//!   [`TwinDelta`] on `…/twin/update/delta`, [`TwinDocument`] on `…/twin/update/document`,
//!   [`ErrorResult`] on a result topic when a request failed, [`MembershipList`] on
//!   `$hw/events/node/<node>/membership/get/result`, [`MembershipUpdate`] on
//!   `…/membership/updated`.
//! - Edge → cloud (websocket): [`TwinUpdate`] as resource `device/<ns>/<name>/twin/edge_updated`
//!   and [`DeviceStateUpdate`] (a JSON *string*) as `device/<ns>/<name>/state/update`, both
//!   operation `update`, source `twin`, group `resource`; the cloud confirms each with a
//!   `response` of `"OK"` (group `twin`) whose `parent_msg_id` is the report's id.
//! - Cloud → edge: [`MembershipUpdate`] as resource `membership` (group `twin`), and the Device
//!   object itself as `<ns>/device/<name>` (group `resource`); desired values are in its
//!   `spec.properties[].desired.value`.
//!
//! Input from mappers is parsed strictly ([`parse_twin_update`], [`parse_state_update`]):
//! unknown fields, keys and values outside KubeEdge's patterns are errors naming the field.
//! The types themselves accept unknown fields, so the cloud reading an edge's report
//! tolerates fields a newer edge adds (refusing them would make the edge resend forever).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Prefix of every device topic.
pub const DEVICE_TOPIC_PREFIX: &str = "$hw/events/device/";
/// Prefix of every node topic.
pub const NODE_TOPIC_PREFIX: &str = "$hw/events/node/";
/// `attr_type`/`metadata.type` of a deleted twin.
pub const TYPE_DELETED: &str = "deleted";
/// Longest twin key (KubeEdge's `^[a-zA-Z0-9-_.,:/@#]{1,128}$`).
pub const TWIN_KEY_MAX: usize = 128;
/// Longest twin value (KubeEdge's `{1,512}`).
pub const TWIN_VALUE_MAX: usize = 512;
/// Device states a mapper may report.
pub const DEVICE_STATES: [&str; 5] = ["online", "offline", "ok", "unknown", "unhealthy"];

/// `event_id` and `timestamp` (ms), present in every payload.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Base {
    /// Correlates a result with its request (free text; may be empty).
    #[serde(default)]
    pub event_id: String,
    /// Milliseconds since the epoch.
    #[serde(default)]
    pub timestamp: i64,
}

/// `{"timestamp": ms}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValueMetadata {
    /// When the value was set (ms).
    #[serde(default)]
    pub timestamp: i64,
}

/// An expected or actual value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TwinValue {
    /// The value (always a string on the wire).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// When it was set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<ValueMetadata>,
}

/// `{"cloud": n, "edge": n}`: how many times each side changed a value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TwinVersion {
    /// Changes made by the cloud.
    #[serde(default)]
    pub cloud: i64,
    /// Changes made at the edge.
    #[serde(default)]
    pub edge: i64,
}

/// `{"type": "..."}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypeMetadata {
    /// The value type (`string`, `int`, …) or `deleted`.
    #[serde(rename = "type", default)]
    pub kind: String,
}

/// One twin property (KubeEdge's `MsgTwin`); every field is optional on the wire.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MsgTwin {
    /// The desired value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<TwinValue>,
    /// The reported value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actual: Option<TwinValue>,
    /// Whether the property is optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optional: Option<bool>,
    /// The value type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<TypeMetadata>,
    /// Versions of the expected value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_version: Option<TwinVersion>,
    /// Versions of the actual value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actual_version: Option<TwinVersion>,
}

impl MsgTwin {
    /// This twin without its versions (what results, deltas and documents carry).
    #[must_use]
    pub fn without_versions(&self) -> Self {
        Self {
            expected_version: None,
            actual_version: None,
            ..self.clone()
        }
    }

    /// The expected value, if any.
    pub fn expected_value(&self) -> Option<&str> {
        self.expected.as_ref().and_then(|v| v.value.as_deref())
    }

    /// The actual value, if any.
    pub fn actual_value(&self) -> Option<&str> {
        self.actual.as_ref().and_then(|v| v.value.as_deref())
    }

    /// True if `metadata.type` is `deleted`.
    pub fn is_deleted(&self) -> bool {
        self.metadata
            .as_ref()
            .is_some_and(|m| m.kind == TYPE_DELETED)
    }
}

/// A twin update, result, get result or cloud report: `{"event_id","timestamp","twin":{…}}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TwinUpdate {
    /// Event id (echoed in the result).
    #[serde(default)]
    pub event_id: String,
    /// Milliseconds since the epoch.
    #[serde(default)]
    pub timestamp: i64,
    /// Property name → twin.
    #[serde(default)]
    pub twin: BTreeMap<String, MsgTwin>,
}

/// `…/twin/update/delta`: the properties whose expected value differs from the actual one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TwinDelta {
    /// A new event id.
    pub event_id: String,
    /// Milliseconds since the epoch.
    pub timestamp: i64,
    /// Every live twin of the device (without versions).
    pub twin: BTreeMap<String, MsgTwin>,
    /// Property → expected value, for each property whose expected ≠ actual.
    pub delta: BTreeMap<String, String>,
}

/// One property in a [`TwinDocument`]: before and after.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TwinDoc {
    /// Before the change (`null` for a new property).
    pub last: Option<MsgTwin>,
    /// After the change (`null` after a delete).
    pub current: Option<MsgTwin>,
}

/// `…/twin/update/document`: every changed property, before and after.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TwinDocument {
    /// The request's event id.
    pub event_id: String,
    /// Milliseconds since the epoch.
    pub timestamp: i64,
    /// Property → before/after.
    pub twin: BTreeMap<String, TwinDoc>,
}

/// A failed request, published on the request's result topic.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorResult {
    /// The request's event id (empty if it could not be read).
    pub event_id: String,
    /// Milliseconds since the epoch.
    pub timestamp: i64,
    /// 400 bad request, 404 unknown device, 409 conflict, 500 internal, 503 queue full.
    pub code: u16,
    /// What was wrong.
    pub reason: String,
}

/// `…/state/update` from a mapper.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateUpdate {
    /// Event id.
    #[serde(default)]
    pub event_id: String,
    /// Milliseconds since the epoch.
    #[serde(default)]
    pub timestamp: i64,
    /// One of [`DEVICE_STATES`].
    pub state: String,
    /// Free attributes (ignored by edgecore, as KubeEdge).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes: Option<serde_json::Map<String, serde_json::Value>>,
}

/// The device inside a [`DeviceStateUpdate`] sent to the cloud.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateDevice {
    /// Device name.
    #[serde(default)]
    pub name: String,
    /// Its state.
    #[serde(default)]
    pub state: String,
    /// RFC 3339 time it was last online or ok (empty if never).
    #[serde(rename = "lastOnlineTime", default)]
    pub last_online_time: String,
}

/// Edge → cloud `…/state/update` (sent as a JSON string, as KubeEdge).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceStateUpdate {
    /// Event id.
    #[serde(default)]
    pub event_id: String,
    /// Milliseconds since the epoch.
    #[serde(default)]
    pub timestamp: i64,
    /// The device and its state.
    #[serde(default)]
    pub device: StateDevice,
}

/// A device in membership messages.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberDevice {
    /// `<ns>/<name>`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// Device name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Description (KubeEdge: the `description` label).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// State, if known.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub state: String,
    /// Last online time, if known.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub last_online: String,
    /// Twins, when listed at the edge.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub twin: BTreeMap<String, MsgTwin>,
}

/// Membership changes (cloud → edge `membership`, edge → mapper `…/membership/updated`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipUpdate {
    /// Event id.
    #[serde(default)]
    pub event_id: String,
    /// Milliseconds since the epoch.
    #[serde(default)]
    pub timestamp: i64,
    /// Devices added to the node (`null` when none, as Go marshals it).
    #[serde(default)]
    pub added_devices: Option<Vec<MemberDevice>>,
    /// Devices removed from the node.
    #[serde(default)]
    pub removed_devices: Option<Vec<MemberDevice>>,
}

/// `$hw/events/node/<node>/membership/get/result`: every device of the node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipList {
    /// The request's event id.
    pub event_id: String,
    /// Milliseconds since the epoch.
    pub timestamp: i64,
    /// The devices.
    pub devices: Vec<MemberDevice>,
}

/// What a device topic asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceRequest {
    /// `…/twin/update`: a mapper reports values.
    TwinUpdate,
    /// `…/twin/get`: a mapper asks for the twins.
    TwinGet,
    /// `…/state/update`: a mapper reports the device state.
    StateUpdate,
}

impl DeviceRequest {
    /// The topic suffix after `<ns>/<name>/`.
    pub fn suffix(self) -> &'static str {
        match self {
            Self::TwinUpdate => "twin/update",
            Self::TwinGet => "twin/get",
            Self::StateUpdate => "state/update",
        }
    }

    /// The topic its answer goes to.
    pub fn result_suffix(self) -> &'static str {
        match self {
            Self::TwinUpdate => "twin/update/result",
            Self::TwinGet => "twin/get/result",
            Self::StateUpdate => "state/update/result",
        }
    }
}

/// A request topic a mapper publishes to, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topic {
    /// `$hw/events/device/<ns>/<name>/<request>`.
    Device {
        /// Device namespace.
        namespace: String,
        /// Device name.
        name: String,
        /// What is asked.
        request: DeviceRequest,
    },
    /// `$hw/events/node/<node>/membership/get`.
    MembershipGet {
        /// The node named in the topic.
        node: String,
    },
}

impl Topic {
    /// Parses a request topic; `None` for anything else (results, deltas, other topics).
    pub fn parse(topic: &str) -> Option<Self> {
        if let Some(rest) = topic.strip_prefix(DEVICE_TOPIC_PREFIX) {
            let mut it = rest.splitn(3, '/');
            let (ns, name, tail) = (it.next()?, it.next()?, it.next()?);
            if ns.is_empty() || name.is_empty() {
                return None;
            }
            let request = [
                DeviceRequest::TwinUpdate,
                DeviceRequest::TwinGet,
                DeviceRequest::StateUpdate,
            ]
            .into_iter()
            .find(|r| r.suffix() == tail)?;
            return Some(Self::Device {
                namespace: ns.to_owned(),
                name: name.to_owned(),
                request,
            });
        }
        let rest = topic.strip_prefix(NODE_TOPIC_PREFIX)?;
        let node = rest.strip_suffix("/membership/get")?;
        (!node.is_empty() && !node.contains('/')).then(|| Self::MembershipGet {
            node: node.to_owned(),
        })
    }
}

/// `$hw/events/device/<ns>/<name>/<suffix>`.
pub fn device_topic(namespace: &str, name: &str, suffix: &str) -> String {
    format!("{DEVICE_TOPIC_PREFIX}{namespace}/{name}/{suffix}")
}

/// `$hw/events/node/<node>/<suffix>`.
pub fn node_topic(node: &str, suffix: &str) -> String {
    format!("{NODE_TOPIC_PREFIX}{node}/{suffix}")
}

/// The topic filters edgecore subscribes to (KubeEdge's, restricted to what DeviceTwin
/// handles; `twin/+` is one level, so edgecore's own results are not consumed again).
pub const SUBSCRIPTIONS: [&str; 3] = [
    "$hw/events/device/+/+/twin/+",
    "$hw/events/device/+/+/state/update",
    "$hw/events/node/+/membership/get",
];

/// A payload that is not a valid request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// Not JSON of the expected shape (the message names the field and position).
    #[error("malformed payload: {0}")]
    Json(String),
    /// A twin key outside `^[a-zA-Z0-9-_.,:/@#]{1,128}$`.
    #[error("invalid twin key {0:?}: want 1-128 of [a-zA-Z0-9-_.,:/@#]")]
    Key(String),
    /// A twin value longer than 512 bytes or empty.
    #[error("invalid value of twin {key:?}: want 1-512 bytes")]
    Value {
        /// The twin.
        key: String,
    },
    /// An update with no twin in it.
    #[error("no twin in the update")]
    Empty,
    /// A state outside [`DEVICE_STATES`].
    #[error("invalid state {0:?}: want one of online, offline, ok, unknown, unhealthy")]
    State(String),
}

/// True if `key` matches `^[a-zA-Z0-9-_.,:/@#]{1,128}$`.
pub fn valid_key(key: &str) -> bool {
    (1..=TWIN_KEY_MAX).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.,:/@#".contains(&b))
}

/// The fields a mapper may send, per level: a field outside them is refused at the edge
/// (the types themselves accept unknown fields, so the cloud tolerates a newer edge's).
/// The first key of object `v` not in `allowed`, as an error naming it and where it is
/// (`at`, only called for the error: valid payloads format nothing).
fn unknown_field(
    v: &serde_json::Value,
    allowed: &[&str],
    at: impl FnOnce() -> String,
) -> Option<String> {
    v.as_object()?
        .keys()
        .find(|k| !allowed.contains(&k.as_str()))
        .map(|k| format!("unknown field `{k}` in {}", at()))
}

fn strict_twin_update(v: &serde_json::Value) -> Option<String> {
    const TWIN: [&str; 6] = [
        "expected",
        "actual",
        "optional",
        "metadata",
        "expected_version",
        "actual_version",
    ];
    let top = ["event_id", "timestamp", "twin"];
    if let Some(e) = unknown_field(v, &top, || "the update".to_owned()) {
        return Some(e);
    }
    let twins = v.get("twin")?.as_object()?;
    twins.iter().find_map(|(key, t)| {
        let at = |f: &str| format!("twin {key:?}{f}");
        unknown_field(t, &TWIN, || at(""))
            .or_else(|| unknown_field(t.get("metadata")?, &["type"], || at(".metadata")))
            .or_else(|| {
                ["expected", "actual"].iter().find_map(|side| {
                    let val = t.get(*side)?;
                    unknown_field(val, &["value", "metadata"], || at(&format!(".{side}"))).or_else(
                        || {
                            let m = val.get("metadata")?;
                            unknown_field(m, &["timestamp"], || at(&format!(".{side}.metadata")))
                        },
                    )
                })
            })
            .or_else(|| {
                ["expected_version", "actual_version"].iter().find_map(|f| {
                    unknown_field(t.get(*f)?, &["cloud", "edge"], || at(&format!(".{f}")))
                })
            })
    })
}

/// Parses and validates a mapper's `…/twin/update` payload.
pub fn parse_twin_update(payload: &[u8]) -> Result<TwinUpdate, PayloadError> {
    let raw: serde_json::Value =
        serde_json::from_slice(payload).map_err(|e| PayloadError::Json(e.to_string()))?;
    if let Some(e) = strict_twin_update(&raw) {
        return Err(PayloadError::Json(e));
    }
    let update: TwinUpdate =
        serde_json::from_value(raw).map_err(|e| PayloadError::Json(e.to_string()))?;
    if update.twin.is_empty() {
        return Err(PayloadError::Empty);
    }
    for (key, twin) in &update.twin {
        if !valid_key(key) {
            return Err(PayloadError::Key(key.clone()));
        }
        for v in [twin.expected_value(), twin.actual_value()]
            .into_iter()
            .flatten()
        {
            if v.is_empty() || v.len() > TWIN_VALUE_MAX {
                return Err(PayloadError::Value { key: key.clone() });
            }
        }
    }
    Ok(update)
}

/// Parses and validates a mapper's `…/state/update` payload.
pub fn parse_state_update(payload: &[u8]) -> Result<StateUpdate, PayloadError> {
    let raw: serde_json::Value =
        serde_json::from_slice(payload).map_err(|e| PayloadError::Json(e.to_string()))?;
    let allowed = ["event_id", "timestamp", "state", "attributes"];
    if let Some(e) = unknown_field(&raw, &allowed, || "the state update".to_owned()) {
        return Err(PayloadError::Json(e));
    }
    let update: StateUpdate =
        serde_json::from_value(raw).map_err(|e| PayloadError::Json(e.to_string()))?;
    if !DEVICE_STATES.contains(&update.state.as_str()) {
        return Err(PayloadError::State(update.state));
    }
    Ok(update)
}

/// Reads the event id of a payload that may be malformed (for the error result).
pub fn event_id_of(payload: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(payload)
        .ok()
        .and_then(|v| v.get("event_id")?.as_str().map(str::to_owned))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[test]
    fn request_topics_parse_and_results_do_not() {
        assert_eq!(
            Topic::parse("$hw/events/device/default/thermo/twin/update"),
            Some(Topic::Device {
                namespace: "default".into(),
                name: "thermo".into(),
                request: DeviceRequest::TwinUpdate
            })
        );
        assert_eq!(
            Topic::parse("$hw/events/node/edge-1/membership/get"),
            Some(Topic::MembershipGet {
                node: "edge-1".into()
            })
        );
        for other in [
            "$hw/events/device/default/thermo/twin/update/result",
            "$hw/events/device/default/thermo/twin/update/delta",
            "$hw/events/device//thermo/twin/update",
            "$hw/events/node/a/b/membership/get",
            "sensors/temp",
        ] {
            assert_eq!(Topic::parse(other), None, "{other}");
        }
    }

    #[test]
    fn a_mapper_update_parses_with_kubeedge_field_names() {
        let u = parse_twin_update(
            br#"{"event_id":"e1","timestamp":5,"twin":{"temp":{"actual":{"value":"23","metadata":{"timestamp":4}},"metadata":{"type":"int"}}}}"#,
        )
        .unwrap();
        assert_eq!(u.event_id, "e1");
        assert_eq!(u.twin["temp"].actual_value(), Some("23"));
        assert_eq!(u.twin["temp"].metadata.as_ref().unwrap().kind, "int");
        let back = serde_json::to_value(&u).unwrap();
        assert_eq!(back["twin"]["temp"]["actual"]["value"], "23");
        assert!(back["twin"]["temp"].get("expected").is_none());
    }

    #[test]
    fn bad_payloads_are_errors_naming_what_is_wrong() {
        let cases: [(&[u8], &str); 6] = [
            (b"{not json", "malformed"),
            (
                br#"{"twin":{"t":{"actual":{"value":"1"},"colour":1}}}"#,
                "colour",
            ),
            (br#"{"twin":{}}"#, "no twin"),
            (
                br#"{"twin":{"bad key!":{"actual":{"value":"1"}}}}"#,
                "bad key!",
            ),
            (br#"{"twin":{"t":{"actual":{"value":""}}}}"#, "1-512"),
            (br#"{"twin":{"t":{"actual":{"value":5}}}}"#, "malformed"),
        ];
        for (payload, want) in cases {
            let err = parse_twin_update(payload).unwrap_err().to_string();
            assert!(err.contains(want), "{err} lacks {want}");
        }
        let nested = br#"{"twin":{"t":{"actual":{"value":"1","metadata":{"timestamp":1,"x":2}}}}}"#;
        let err = parse_twin_update(nested).unwrap_err().to_string();
        assert!(
            err.contains("`x`") && err.contains("actual.metadata"),
            "{err}"
        );
        let lenient: TwinUpdate =
            serde_json::from_slice(br#"{"twin":{"t":{"actual":{"value":"1"},"new":1}},"more":2}"#)
                .unwrap();
        assert_eq!(lenient.twin["t"].actual_value(), Some("1"));
        let err = parse_state_update(br#"{"state":"online","mood":"good"}"#).unwrap_err();
        assert!(err.to_string().contains("mood"));
        let err = parse_state_update(br#"{"state":"melting"}"#).unwrap_err();
        assert_eq!(err, PayloadError::State("melting".into()));
        assert_eq!(event_id_of(br#"{"event_id":"x","twin":5}"#), "x");
    }

    #[test]
    fn keys_follow_kubeedge_pattern() {
        assert!(valid_key("temperature-1.a:b/c@d#e,f_g"));
        assert!(!valid_key(""));
        assert!(!valid_key(&"k".repeat(129)));
        assert!(!valid_key("a b"));
    }
}
