//! DeviceTwin end to end inside one process: Device objects through MetaManager's forward,
//! mapper requests on an in-memory bus, reports to a fake cloud on the upstream channel.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::{sync::Arc, time::Duration};

use ke_core::FixedClock;
use ke_edge::{
    devicetwin::{DeviceTwin, DeviceTwinConfig, TwinInputs, store},
    edgehub::CloudState,
    eventbus::{AdapterEnds, BusMessage, bus_pair},
    metamanager::MetaStore,
};
use ke_proto::{Content, Group, Message, Operation, Route, SequentialIds, Source};
use serde_json::{Value, json};
use tokio::{
    sync::{mpsc, watch},
    time::timeout,
};

const NODE: &str = "edge-1";

struct Rig {
    bus: AdapterEnds,
    cloud: watch::Sender<CloudState>,
    from_cloud: mpsc::Sender<Message>,
    devices: mpsc::Sender<Message>,
    upstream: mpsc::Receiver<Message>,
    meta: MetaStore,
}

fn device(rv: &str, desired: &str) -> Message {
    let obj = json!({
        "apiVersion": "devices.kubeedge.io/v1beta1", "kind": "Device",
        "metadata": {"name": "thermo", "namespace": "default", "uid": "u1", "resourceVersion": rv},
        "spec": {"nodeName": NODE, "deviceModelRef": {"name": "thermo-model"},
                 "properties": [{"name": "target", "desired": {"value": desired}},
                                {"name": "temp"}]}
    });
    let route = Route::new(
        Source::DeviceController,
        Group::Resource,
        Operation::Update,
        "default/device/thermo",
    );
    Message::new(format!("d{rv}"), 0, route, Content::new(obj))
}

fn start(cfg: DeviceTwinConfig, connected: bool) -> Rig {
    let meta = MetaStore::open_in_memory().unwrap();
    let clock = Arc::new(FixedClock::new(1_700_000_000));
    let ids = Box::new(SequentialIds::new("twin"));
    let twin = DeviceTwin::new(meta.clone(), NODE, clock, ids, cfg).unwrap();
    let (ends, adapter) = bus_pair();
    let state = if connected {
        CloudState::Connected
    } else {
        CloudState::Connecting
    };
    let (cloud, cloud_rx) = watch::channel(state);
    let (from_cloud, from_cloud_rx) = mpsc::channel(16);
    let (devices, devices_rx) = mpsc::channel(16);
    let (up_tx, upstream) = mpsc::channel(16);
    let inputs = TwinInputs {
        cloud: cloud_rx,
        from_cloud: from_cloud_rx,
        devices: devices_rx,
        bus: Some(ends),
    };
    tokio::spawn(twin.run(inputs, up_tx, std::future::pending()));
    Rig {
        bus: adapter,
        cloud,
        from_cloud,
        devices,
        upstream,
        meta,
    }
}

impl Rig {
    async fn next_pub(&mut self, suffix: &str) -> Value {
        loop {
            let m = timeout(Duration::from_secs(5), self.bus.outgoing.recv())
                .await
                .expect("a publication")
                .unwrap();
            if m.topic.ends_with(suffix) {
                return serde_json::from_slice(&m.payload).unwrap();
            }
        }
    }

    async fn mapper(&self, suffix: &str, payload: &str) {
        let msg = BusMessage {
            topic: format!("$hw/events/device/default/thermo/{suffix}"),
            payload: payload.as_bytes().to_vec(),
        };
        self.bus.incoming.send(msg).await.unwrap();
    }

    async fn report(&mut self) -> Message {
        timeout(Duration::from_secs(5), self.upstream.recv())
            .await
            .expect("a report")
            .unwrap()
    }

    async fn confirm(&self, report: &Message) {
        let route = Route::new(
            Source::DeviceController,
            Group::Twin,
            Operation::Response,
            "twin",
        );
        let ok = Message::new("c", 0, route, Content::ok()).with_parent(report.header.id.clone());
        self.from_cloud.send(ok).await.unwrap();
    }

    fn outbox(&self) -> usize {
        let s = store::TwinStore::open(self.meta.clone()).unwrap();
        s.read(store::outbox_len).unwrap()
    }
}

fn actual(v: &str) -> String {
    format!(
        r#"{{"event_id":"e-{v}","timestamp":1,"twin":{{"temp":{{"actual":{{"value":"{v}"}},"metadata":{{"type":"int"}}}}}}}}"#
    )
}

#[tokio::test]
async fn desired_values_from_the_device_object_publish_a_delta() {
    let mut rig = start(DeviceTwinConfig::default(), true);
    rig.devices.send(device("1", "21")).await.unwrap();
    let added = rig.next_pub("/membership/updated").await;
    assert_eq!(added["added_devices"][0]["id"], "default/thermo");
    let delta = rig.next_pub("/twin/update/delta").await;
    assert_eq!(delta["delta"], json!({"target": "21"}));
    rig.devices.send(device("2", "22")).await.unwrap();
    let doc = rig.next_pub("/twin/update/document").await;
    assert_eq!(doc["twin"]["target"]["last"]["expected"]["value"], "21");
    assert_eq!(doc["twin"]["target"]["current"]["expected"]["value"], "22");
    let delta = rig.next_pub("/twin/update/delta").await;
    assert_eq!(delta["delta"]["target"], "22");
}

#[tokio::test]
async fn mapper_values_reach_the_cloud_one_at_a_time_in_order() {
    let mut rig = start(DeviceTwinConfig::default(), true);
    rig.devices.send(device("1", "21")).await.unwrap();
    rig.next_pub("/membership/updated").await;
    for v in ["1", "2", "3"] {
        rig.mapper("twin/update", &actual(v)).await;
        let result = rig.next_pub("/twin/update/result").await;
        assert_eq!(result["event_id"], format!("e-{v}"));
        assert_eq!(result["twin"]["temp"]["actual"]["value"], v);
    }
    for v in ["1", "2", "3"] {
        let report = rig.report().await;
        assert_eq!(
            report.route.resource,
            "device/default/thermo/twin/edge_updated"
        );
        let twin = &report.content.value()["twin"]["temp"];
        assert_eq!(twin["actual"]["value"], v);
        assert_eq!(twin["actual_version"]["edge"], v.parse::<i64>().unwrap());
        // The next report waits for this one's confirmation.
        assert!(rig.upstream.try_recv().is_err());
        rig.confirm(&report).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(rig.outbox(), 0);
}

#[tokio::test]
async fn reports_made_offline_go_after_reconnect_and_unanswered_ones_are_resent() {
    let cfg = DeviceTwinConfig {
        resend_after: Duration::from_millis(200),
        ..DeviceTwinConfig::default()
    };
    let mut rig = start(cfg, false);
    rig.devices.send(device("1", "21")).await.unwrap();
    for v in ["7", "8"] {
        rig.mapper("twin/update", &actual(v)).await;
        rig.next_pub("/twin/update/result").await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        rig.upstream.try_recv().is_err(),
        "nothing goes while offline"
    );
    assert_eq!(rig.outbox(), 2);
    rig.cloud.send_replace(CloudState::Connected);
    let first = rig.report().await;
    assert_eq!(
        first.content.value()["twin"]["temp"]["actual"]["value"],
        "7"
    );
    // No answer: the same report again (never the newer one first).
    let again = rig.report().await;
    assert_eq!(
        again.content.value()["twin"]["temp"]["actual"]["value"],
        "7"
    );
    rig.confirm(&again).await;
    let second = rig.report().await;
    assert_eq!(
        second.content.value()["twin"]["temp"]["actual"]["value"],
        "8"
    );
}

#[tokio::test]
async fn malformed_or_unknown_requests_get_an_error_result_and_change_nothing() {
    let mut rig = start(DeviceTwinConfig::default(), true);
    rig.devices.send(device("1", "21")).await.unwrap();
    rig.next_pub("/membership/updated").await;
    rig.mapper(
        "twin/update",
        r#"{"event_id":"bad","twin":{"temp":{"actual":{"value":5}}}}"#,
    )
    .await;
    let err = rig.next_pub("/twin/update/result").await;
    assert_eq!(err["code"], 400);
    assert_eq!(err["event_id"], "bad");
    assert!(err["reason"].as_str().unwrap().contains("malformed"));
    rig.mapper("state/update", r#"{"state":"melting"}"#).await;
    let err = rig.next_pub("/state/update/result").await;
    assert_eq!(err["code"], 400);
    let other = BusMessage {
        topic: "$hw/events/device/default/nope/twin/update".into(),
        payload: actual("1").into_bytes(),
    };
    rig.bus.incoming.send(other).await.unwrap();
    let err = rig.next_pub("/nope/twin/update/result").await;
    assert_eq!(err["code"], 404);
    rig.mapper("twin/get", r#"{"event_id":"g"}"#).await;
    let got = rig.next_pub("/twin/get/result").await;
    assert_eq!(got["event_id"], "g");
    assert!(got["twin"]["temp"].get("actual").is_none(), "{got}");
    assert_eq!(rig.outbox(), 0);
    assert!(rig.upstream.try_recv().is_err());
}

#[tokio::test]
async fn a_full_outbox_refuses_updates_with_503() {
    let cfg = DeviceTwinConfig {
        outbox_max: 2,
        ..DeviceTwinConfig::default()
    };
    let mut rig = start(cfg, false);
    rig.devices.send(device("1", "21")).await.unwrap();
    for v in ["1", "2"] {
        rig.mapper("twin/update", &actual(v)).await;
        rig.next_pub("/twin/update/result").await;
    }
    rig.mapper("twin/update", &actual("3")).await;
    let err = rig.next_pub("/twin/update/result").await;
    assert_eq!(err["code"], 503);
    rig.mapper("twin/get", "{}").await;
    let got = rig.next_pub("/twin/get/result").await;
    assert_eq!(got["twin"]["temp"]["actual"]["value"], "2");
    // A confirmed report makes room for exactly one more.
    rig.cloud.send_replace(CloudState::Connected);
    let first = rig.report().await;
    rig.confirm(&first).await;
    let second = rig.report().await;
    assert_eq!(rig.outbox(), 1);
    rig.mapper("twin/update", &actual("4")).await;
    let ok = rig.next_pub("/twin/update/result").await;
    assert_eq!(ok["twin"]["temp"]["actual"]["value"], "4", "{ok}");
    rig.mapper("twin/update", &actual("5")).await;
    let err = rig.next_pub("/twin/update/result").await;
    assert_eq!(err["code"], 503, "{err}");
    assert_eq!(rig.outbox(), 2);
    drop(second);
}
