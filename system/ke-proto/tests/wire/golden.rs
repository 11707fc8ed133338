//! Golden frames: Appendix A of the wire reference, with its `…` placeholders filled in.

use ke_proto::{
    Content, DecodeError, Delivery, Field, Group, Limits, Message, Operation, ResourcePath,
    ResourceType, Route, Source, decode, decode_strict, encode,
};
use serde_json::{Value, json};

pub(crate) const KEEPALIVE: &str = r#"{
 "header":{"msg_id":"4f1c0a2e-0000-4000-8000-000000000001","timestamp":1754450000000},
 "route":{"source":"websocket","group":"resource","operation":"keepalive","resource":"node"},
 "content":"ping"}"#;

pub(crate) const POD_INSERT: &str = r#"{
 "header":{"msg_id":"a1","timestamp":1754450000123,"resourceversion":"83421"},
 "route":{"source":"edgecontroller","group":"resource","operation":"insert",
  "resource":"default/pod/nginx"},
 "content":{"apiVersion":"v1","kind":"Pod","metadata":{"name":"nginx","namespace":"default",
  "uid":"0b9f6a6e-1","resourceVersion":"83421"},"spec":{"nodeName":"edge-1"},"status":{}}}"#;

pub(crate) const POD_ACK: &str = r#"{
 "header":{"msg_id":"b2","parent_msg_id":"a1","timestamp":1754450000456},
 "route":{"source":"edgecontroller","group":"resource","operation":"response",
  "resource":"default/pod/nginx"},
 "content":"OK"}"#;

pub(crate) const NODE_PATCH: &str = r#"{"header":{"msg_id":"c3","timestamp":1754450001000},
 "route":{"source":"edged","group":"meta","operation":"patch","resource":"null/nodepatch/edge-1"},
 "content":"{\"status\":{\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\"}]}}"}"#;

pub(crate) const NODE_PATCH_REPLY: &str = r#"{
 "header":{"msg_id":"d4","parent_msg_id":"c3","timestamp":1754450001050,
  "resourceversion":"90001"},
 "route":{"source":"edgecontroller","group":"resource","operation":"response",
  "resource":"null/nodepatch/edge-1"},
 "content":{"Object":{"apiVersion":"v1","kind":"Node",
  "metadata":{"name":"edge-1","resourceVersion":"90001"}},"Err":null}}"#;

pub(crate) const CONFIGMAP_QUERY: &str = r#"{"header":{"msg_id":"e5","timestamp":1754450002000},
 "route":{"source":"edged","group":"meta","operation":"query",
  "resource":"default/configmap/app-cfg"},"content":null}"#;

/// Every golden frame, for tests that mutate them.
pub(crate) const ALL: [&str; 6] = [
    KEEPALIVE,
    POD_INSERT,
    POD_ACK,
    NODE_PATCH,
    NODE_PATCH_REPLY,
    CONFIGMAP_QUERY,
];

/// Decodes `frame`, checks that re-encoding gives the same JSON value, returns the message.
fn decode_and_reencode(frame: &str) -> Message {
    let msg = decode(frame.as_bytes()).expect("golden frame decodes");
    let original: Value = serde_json::from_str(frame).expect("golden frame is JSON");
    let reencoded: Value = serde_json::from_slice(&encode(&msg)).expect("encode gives JSON");
    assert_eq!(reencoded, original, "re-encoding changed the frame");
    msg
}

/// Goal: the keepalive frame maps to the typed route and equals `Message::keepalive`. Method:
/// decode, compare fields and the constructor's output with the same id and time.
#[test]
fn keepalive() {
    let msg = decode_and_reencode(KEEPALIVE);
    assert_eq!(msg.route.source, Source::Websocket);
    assert_eq!(msg.route.group, Group::Resource);
    assert_eq!(msg.route.operation, Operation::Keepalive);
    assert_eq!(msg.resource_path(), ResourcePath::Kind(ResourceType::Node));
    assert!(msg.is_keepalive() && !msg.is_reply());
    let mut ids = || "4f1c0a2e-0000-4000-8000-000000000001".to_owned();
    assert_eq!(Message::keepalive(&mut ids, 1_754_450_000_000), msg);
}

/// Goal: the pod insert is an ACK-mode object message and its ACK is exactly what
/// `Message::ack_for` builds. Method: decode both, compare typed fields and the constructor.
#[test]
fn pod_insert_and_ack() {
    let insert = decode_and_reencode(POD_INSERT);
    assert_eq!(insert.header.resource_version, "83421");
    assert_eq!(insert.route.source, Source::EdgeController);
    assert_eq!(insert.route.operation, Operation::Insert);
    let path = ResourcePath::object(Some("default"), ResourceType::Pod, Some("nginx"));
    assert_eq!(insert.resource_path(), path);
    assert_eq!(insert.content.value()["spec"]["nodeName"], "edge-1");
    assert_eq!(insert.delivery(), Delivery::Ack);

    let ack = decode_and_reencode(POD_ACK);
    assert!(ack.content.is_ok_text() && ack.is_reply());
    assert_eq!(
        Message::ack_for(&insert, &mut || "b2".to_owned(), 1_754_450_000_456),
        ack
    );
    assert!(!ack.needs_ack());
}

/// Goal: a JSON-in-a-string patch is readable as JSON and its `{"Object","Err"}` reply is
/// EdgeController's reply shape and is sent without ACK. Method: decode both and compare.
#[test]
fn node_patch_and_reply() {
    let patch = decode_and_reencode(NODE_PATCH);
    assert_eq!(patch.route.source, Source::Edged);
    assert_eq!(patch.route.group, Group::Meta);
    assert_eq!(patch.route.operation, Operation::Patch);
    assert_eq!(
        patch.resource_path(),
        ResourcePath::object(None, ResourceType::NodePatch, Some("edge-1"))
    );
    let body = patch.content.content_json().expect("JSON in a string");
    assert_eq!(body["status"]["conditions"][0]["type"], "Ready");
    assert_eq!(
        &*patch.content.bytes(),
        patch.content.as_str().expect("string").as_bytes()
    );

    let reply = decode_and_reencode(NODE_PATCH_REPLY);
    let object = json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "edge-1", "resourceVersion": "90001"}
    });
    // EdgeController replies with `NewMessage(req.id).BuildRouter(edgecontroller, resource, ...)`.
    let route = Route::new(
        Source::EdgeController,
        Group::Resource,
        "response",
        &*patch.route.resource,
    );
    let built = Message::new(
        "d4",
        1_754_450_001_050,
        route,
        Content::object_reply(object),
    )
    .with_parent(&*patch.header.id)
    .with_resource_version("90001");
    assert_eq!(built, reply);
    assert_eq!(reply.header.parent_id, patch.header.id);
    assert_eq!(reply.delivery(), Delivery::NoAck);
}

/// Goal: a query with `null` content decodes, and the cloud's reply to it is ACK-mode, so the
/// edge ACKs the reply with `parent_msg_id` = the reply's id. Method: decode, build the reply
/// and the ACK, check the ACK-mode decision and the parent ids.
#[test]
fn configmap_query_reply_is_acked() {
    let query = decode_and_reencode(CONFIGMAP_QUERY);
    assert!(query.content.is_null());
    assert_eq!(query.resource_type(), Some(ResourceType::ConfigMap));
    let cm = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "app-cfg", "namespace": "default"}
    });
    let route = Route::new(
        Source::EdgeController,
        Group::Resource,
        "response",
        &*query.route.resource,
    );
    let reply = Message::new("f6", 1, route, cm)
        .with_parent(&*query.header.id)
        .with_resource_version("777");
    assert_eq!(reply.header.parent_id, "e5");
    assert_eq!(reply.delivery(), Delivery::Ack);
    let ack = Message::ack_for(&reply, &mut || "g7".to_owned(), 2);
    assert_eq!(ack.header.parent_id, "f6");
    assert_eq!(ack.route.operation, Operation::Response);
    assert!(!ack.needs_ack());
}

/// Goal: decoding is as lenient as Go's: unknown keys ignored, `null` fields zeroed, missing
/// fields defaulted; `validate`/`decode_strict` report the missing id and operation. Method:
/// decode hand-written frames and inspect.
#[test]
fn lenient_decode_and_validate() {
    let frame = br#"{"header":{"msg_id":null,"timestamp":5,"extra":1},"router":{"x":1},
        "route":{"source":"websocket","resource":null,"future":"field"},"future":[1,2]}"#;
    let msg = decode(frame).expect("unknown keys and nulls are tolerated");
    assert_eq!(msg.header.id, "");
    assert_eq!(msg.header.timestamp, 5);
    assert_eq!(msg.route.source, Source::Websocket);
    assert!(msg.route.resource.is_empty() && msg.content.is_null());
    assert!(matches!(
        msg.validate(),
        Err(DecodeError::MissingField(Field::MsgId))
    ));

    let no_op = br#"{"header":{"msg_id":"x"},"route":{}}"#;
    let err = decode_strict(no_op, &Limits::default()).expect_err("no operation");
    assert!(matches!(err, DecodeError::MissingField(Field::Operation)));
    assert!(
        decode(b"{}")
            .expect("empty object decodes")
            .validate()
            .is_err()
    );
}

/// Goal: encoding omits exactly what Go omits. Method: encode an all-default message and one
/// with an unknown operation and `sync` set; compare with the expected JSON.
#[test]
fn omitempty_matches_go() {
    let empty: Value = serde_json::from_slice(&encode(&Message::default())).expect("json");
    assert_eq!(
        empty,
        json!({"header":{"msg_id":"","timestamp":0},"route":{},"content":null})
    );

    let mut msg = Message::new("i", 9, Route::new("x-mod", "", "frobnicate", ""), "c");
    msg.header.sync = true;
    msg.route.destination = "d".to_owned();
    let v: Value = serde_json::from_slice(&encode(&msg)).expect("json");
    let want = json!({"header":{"msg_id":"i","timestamp":9,"sync":true},
        "route":{"source":"x-mod","destination":"d","operation":"frobnicate"},"content":"c"});
    assert_eq!(v, want);
    assert_eq!(
        msg.route.operation,
        Operation::Other("frobnicate".to_owned())
    );
}

/// Goal: `error_for` follows Go's `NewErrorMessage` (no source or group). Method: build one
/// for the configmap query and compare with the expected frame.
#[test]
fn error_message_shape() {
    let query = decode(CONFIGMAP_QUERY.as_bytes()).expect("decodes");
    let err = Message::error_for(&query, "not found", &mut || "h8".to_owned(), 3);
    let v: Value = serde_json::from_slice(&encode(&err)).expect("json");
    let want = json!({"header":{"msg_id":"h8","parent_msg_id":"e5","timestamp":3},
        "route":{"operation":"error","resource":"default/configmap/app-cfg"},
        "content":"not found"});
    assert_eq!(v, want);
}
