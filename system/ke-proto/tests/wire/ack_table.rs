//! The §2.4 ACK vs no-ACK rules as a table: one row per rule (and per exception to a rule).

use ke_proto::{Delivery, Message, Route};
use serde_json::Value;

/// One downstream message and the decision CloudHub must take for it: (which rule the row
/// exercises, "source group operation resource", content as JSON text, resourceversion ("" =
/// absent), expected decision).
type Row = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    Delivery,
);

const POD: &str = r#"{"kind":"Pod","metadata":{"name":"p","uid":"u1"}}"#;
const DELETING_POD: &str = r#"{"kind":"Pod","metadata":{"name":"p","uid":"u1",
    "deletionTimestamp":"2026-01-01T00:00:00Z"}}"#;
const REPLY: &str = r#"{"Object":{},"Err":null}"#;
const OK: &str = r#""OK""#;
const STATUS_ERR: &str = r#"{"ErrStatus":{"code":404,"reason":"NotFound"}}"#;

use Delivery::{Ack, DropMissingResourceVersion as Drop, NoAck};

const ROWS: &[Row] = &[
    (
        "pod insert is ACK-mode",
        "edgecontroller resource insert default/pod/p",
        POD,
        "1",
        Ack,
    ),
    (
        "cloud-internal prefix gives the same answer",
        "edgecontroller resource insert node/edge-1/default/pod/p",
        POD,
        "1",
        Ack,
    ),
    (
        "configmap update is ACK-mode",
        "edgecontroller resource update default/configmap/c",
        "{}",
        "2",
        Ack,
    ),
    (
        "resource containing podlist",
        "edgecontroller resource update default/podlist",
        "[]",
        "3",
        NoAck,
    ),
    (
        "resource containing membership",
        "devicecontroller twin update node/edge-1/membership",
        "{}",
        "",
        NoAck,
    ),
    (
        "membership detail reply",
        "devicecontroller twin response membership/detail",
        "{}",
        "",
        NoAck,
    ),
    (
        "twin/cloud_updated",
        "devicecontroller twin update node/edge-1/device/ns/d1/twin/cloud_updated",
        "{}",
        "",
        NoAck,
    ),
    (
        "serviceaccounttoken",
        "edgecontroller resource response default/serviceaccounttoken/sa",
        "{}",
        "4",
        NoAck,
    ),
    (
        "k8s/ca.crt",
        "cloudhub resource response node/edge-1/k8s/ca.crt",
        r#""PEM""#,
        "",
        NoAck,
    ),
    (
        "CSI createvolume",
        "edgecontroller resource createvolume default/volume/v",
        "{}",
        "5",
        NoAck,
    ),
    (
        "CSI controllerunpublishvolume",
        "edgecontroller resource controllerunpublishvolume default/volume/v",
        "{}",
        "5",
        NoAck,
    ),
    (
        "applicationResponse",
        "dynamiccontroller resource applicationResponse default/watchapp/sync",
        "{}",
        "",
        NoAck,
    ),
    (
        "group user",
        "router user publish rule/r1",
        r#""x""#,
        "",
        NoAck,
    ),
    (
        "source taskmanager",
        "taskmanager taskmanager upgrade task/t1/node/edge-1",
        "{}",
        "",
        NoAck,
    ),
    (
        "source nodeupgradejobcontroller",
        "nodeupgradejobcontroller resource upgrade x",
        "{}",
        "",
        NoAck,
    ),
    (
        "response with OK",
        "devicecontroller twin response twin",
        OK,
        "",
        NoAck,
    ),
    (
        "response with an error value",
        "edgecontroller resource response default/configmap/c",
        STATUS_ERR,
        "",
        NoAck,
    ),
    (
        "response with an object falls through (configmap reply is ACK-mode)",
        "edgecontroller resource response default/configmap/c",
        "{\"kind\":\"ConfigMap\"}",
        "6",
        Ack,
    ),
    (
        "edgecontroller node update is ACK-mode",
        "edgecontroller resource update null/node/edge-1",
        "{}",
        "7",
        Ack,
    ),
    (
        "edgecontroller node, op != update",
        "edgecontroller resource delete node/edge-1/null/node/edge-1",
        "null",
        "",
        NoAck,
    ),
    (
        "edgecontroller node query reply",
        "edgecontroller resource response null/node/edge-1",
        "{\"kind\":\"Node\"}",
        "8",
        NoAck,
    ),
    (
        "edgecontroller lease",
        "edgecontroller resource response kube-node-lease/lease/edge-1",
        REPLY,
        "9",
        NoAck,
    ),
    (
        "edgecontroller nodepatch",
        "edgecontroller resource response null/nodepatch/edge-1",
        REPLY,
        "9",
        NoAck,
    ),
    (
        "edgecontroller podpatch",
        "edgecontroller resource response default/podpatch/p",
        REPLY,
        "9",
        NoAck,
    ),
    (
        "edgecontroller podstatus",
        "edgecontroller resource response default/podstatus/p",
        "{}",
        "",
        NoAck,
    ),
    (
        "edgecontroller certificatesigningrequest",
        "edgecontroller resource response null/certificatesigningrequest/c",
        "{\"kind\":\"CertificateSigningRequest\"}",
        "9",
        NoAck,
    ),
    (
        "edgecontroller pod + response",
        "edgecontroller resource response default/pod/p",
        POD,
        "9",
        NoAck,
    ),
    (
        "node exemption is edgecontroller-only",
        "dynamiccontroller resource insert null/node/edge-1",
        "{}",
        "10",
        Ack,
    ),
    (
        "service from dynamiccontroller",
        "dynamiccontroller resource insert default/service/s",
        "{}",
        "11",
        Ack,
    ),
    (
        "ACK-mode without rv is dropped",
        "edgecontroller resource update default/pod/p",
        POD,
        "",
        Drop,
    ),
    (
        "delete without rv is kept",
        "synccontroller resource delete default/pod/p",
        POD,
        "",
        Ack,
    ),
    (
        "deletionTimestamp without rv is kept",
        "edgecontroller resource update default/pod/p",
        DELETING_POD,
        "",
        Ack,
    ),
];

/// Goal: `delivery`/`needs_ack` implement every §2.4 rule. Method: build each row's message,
/// compare the decision with the table, and check `needs_ack` agrees with it.
#[test]
fn ack_rules() {
    for &(why, route, content, rv, want) in ROWS {
        let content: Value = serde_json::from_str(content).expect("row content is JSON");
        let parts: Vec<&str> = route.split(' ').collect();
        let [source, group, operation, resource] = parts[..] else {
            panic!("bad row {why}")
        };
        let route = Route::new(source, group, operation, resource);
        let msg = Message::new("m", 0, route, content).with_resource_version(rv);
        assert_eq!(msg.delivery(), want, "{why}");
        assert_eq!(msg.needs_ack(), want != NoAck, "{why}");
    }
}
