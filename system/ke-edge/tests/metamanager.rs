//! MetaManager: the SQLite store (ordering, idempotence, tombstones, durability across a
//! reopen) and the task (ACK only after the commit, forwarding, local queries).

use std::{sync::Arc, time::Duration};

use ke_core::FixedClock;
use ke_edge::metamanager::{Applied, MetaManager, MetaStore};
use ke_proto::{Message, Operation, ResourceType, Route, SequentialIds};
use proptest::prelude::*;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

/// A downstream message from edgecontroller for a pod `name` with `uid` at version `rv`.
fn pod_msg(op: &str, name: &str, uid: &str, rv: u64) -> Message {
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "uid": uid,
                     "resourceVersion": rv.to_string()},
        "spec": {"nodeName": "edge-1", "containers": [{"name": "c", "image": "i"}]},
    });
    let route = Route::new(
        "edgecontroller",
        "resource",
        op,
        format!("default/pod/{name}"),
    );
    Message::new(format!("{op}-{name}-{uid}-{rv}"), 0, route, pod)
        .with_resource_version(rv.to_string())
}

fn rv_of(v: &Value) -> &str {
    v.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn temp_db() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("edgecore.db");
    (dir, path)
}

/// Goal: insert, update and delete land in the store. Method: apply each in turn and read the
/// pod back by get, list and pods_for_node.
#[test]
fn apply_insert_update_delete() {
    let store = MetaStore::open_in_memory().unwrap();
    assert_eq!(
        store.apply(&pod_msg("insert", "web", "u1", 5)).unwrap(),
        Applied::Inserted
    );
    assert_eq!(
        store.apply(&pod_msg("update", "web", "u1", 6)).unwrap(),
        Applied::Updated
    );
    let got = store
        .get("default", &ResourceType::Pod, "web")
        .unwrap()
        .unwrap();
    assert_eq!(rv_of(&got), "6");
    assert_eq!(
        store
            .list(Some("default"), &ResourceType::Pod)
            .unwrap()
            .len(),
        1
    );
    assert!(
        store
            .list(Some("other"), &ResourceType::Pod)
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.pods_for_node("edge-1").unwrap().len(), 1);
    assert!(store.pods_for_node("edge-2").unwrap().is_empty());
    assert_eq!(
        store.apply(&pod_msg("delete", "web", "u1", 7)).unwrap(),
        Applied::Deleted
    );
    assert_eq!(
        store.get("default", &ResourceType::Pod, "web").unwrap(),
        None
    );
    assert!(store.known_versions().unwrap().is_empty());
}

/// Goal: an older resourceVersion never overwrites a newer one, and the caller learns it.
/// Method: apply RV 9, then RV 8 of the same object; the store keeps 9 and reports Stale.
#[test]
fn older_rv_is_ignored_and_reported() {
    let store = MetaStore::open_in_memory().unwrap();
    store.apply(&pod_msg("update", "web", "u1", 9)).unwrap();
    let applied = store.apply(&pod_msg("update", "web", "u1", 8)).unwrap();
    assert_eq!(
        applied,
        Applied::Stale {
            stored: "9".into(),
            incoming: "8".into()
        }
    );
    assert!(!applied.changed());
    let got = store
        .get("default", &ResourceType::Pod, "web")
        .unwrap()
        .unwrap();
    assert_eq!(rv_of(&got), "9");
}

/// Goal: redelivery is a no-op. Method: apply the same insert twice and the same delete twice;
/// the second of each reports Unchanged and the versions summary is stable.
#[test]
fn redelivery_is_idempotent() {
    let store = MetaStore::open_in_memory().unwrap();
    let insert = pod_msg("insert", "web", "u1", 3);
    assert_eq!(store.apply(&insert).unwrap(), Applied::Inserted);
    let before = store.known_versions().unwrap();
    assert_eq!(store.apply(&insert).unwrap(), Applied::Unchanged);
    assert_eq!(store.known_versions().unwrap(), before);
    assert_eq!(before.get("u1").map(String::as_str), Some("3"));
    let delete = pod_msg("delete", "web", "u1", 4);
    assert_eq!(store.apply(&delete).unwrap(), Applied::Deleted);
    assert_eq!(store.apply(&delete).unwrap(), Applied::Unchanged);
}

/// Goal: a delete is remembered by UID, so a stale re-delivery cannot resurrect the object.
/// Method: insert, delete, then re-deliver the insert and an update with a *higher* RV for
/// the same UID: both are refused and the store stays empty; a new UID of the same name is
/// accepted.
#[test]
fn tombstone_blocks_resurrection() {
    let store = MetaStore::open_in_memory().unwrap();
    store.apply(&pod_msg("insert", "web", "u1", 3)).unwrap();
    store.apply(&pod_msg("delete", "web", "u1", 4)).unwrap();
    assert!(store.is_tombstoned("u1").unwrap());
    assert_eq!(
        store.apply(&pod_msg("insert", "web", "u1", 3)).unwrap(),
        Applied::Tombstoned
    );
    assert_eq!(
        store.apply(&pod_msg("update", "web", "u1", 10)).unwrap(),
        Applied::Tombstoned
    );
    assert_eq!(
        store.get("default", &ResourceType::Pod, "web").unwrap(),
        None
    );
    assert_eq!(
        store.apply(&pod_msg("insert", "web", "u2", 11)).unwrap(),
        Applied::Inserted
    );
}

/// Goal: a *released* object (a configmap no pod of the node references any more) is removed
/// without a tombstone, so a later reference brings the same UID back; a plain delete of the
/// same object would block it. Method: insert cm u1, release it, insert it again; then delete
/// it and try again.
#[test]
fn released_object_can_come_back_but_deleted_cannot() {
    let cm = |op: &str, rv: u64, released: bool| {
        let mut obj = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": "default", "uid": "u1",
                         "resourceVersion": rv.to_string()}});
        if released {
            obj["metadata"]["annotations"] =
                json!({ke_proto::inventory::RELEASED_ANNOTATION: "true"});
        }
        let route = Route::new("edgecontroller", "resource", op, "default/configmap/c");
        Message::new(format!("{op}-{rv}-{released}"), 0, route, obj)
            .with_resource_version(rv.to_string())
    };
    let store = MetaStore::open_in_memory().unwrap();
    store.apply(&cm("insert", 3, false)).unwrap();
    assert_eq!(
        store.apply(&cm("delete", 3, true)).unwrap(),
        Applied::Deleted
    );
    assert!(!store.is_tombstoned("u1").unwrap());
    assert!(
        store
            .get("default", &ResourceType::ConfigMap, "c")
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store.apply(&cm("insert", 3, false)).unwrap(),
        Applied::Inserted
    );
    assert_eq!(
        store.apply(&cm("delete", 4, false)).unwrap(),
        Applied::Deleted
    );
    assert!(store.is_tombstoned("u1").unwrap());
    assert_eq!(
        store.apply(&cm("insert", 3, false)).unwrap(),
        Applied::Tombstoned
    );
}

/// Goal: a recreated object (same name, new UID) is handled whatever the arrival order.
/// Method: store u1; the new u2 arrives before u1's delete: u2 replaces u1 and u1 becomes a
/// tombstone; the late delete of u1 leaves u2 alone; a late update of u1 is refused.
#[test]
fn recreated_object_survives_late_messages_of_the_old_uid() {
    let store = MetaStore::open_in_memory().unwrap();
    store.apply(&pod_msg("insert", "web", "u1", 3)).unwrap();
    assert_eq!(
        store.apply(&pod_msg("insert", "web", "u2", 8)).unwrap(),
        Applied::Updated
    );
    assert!(store.is_tombstoned("u1").unwrap());
    let late_delete = store.apply(&pod_msg("delete", "web", "u1", 5)).unwrap();
    assert!(!late_delete.changed(), "{late_delete:?}");
    assert_eq!(
        store.apply(&pod_msg("update", "web", "u1", 4)).unwrap(),
        Applied::Tombstoned
    );
    let got = store
        .get("default", &ResourceType::Pod, "web")
        .unwrap()
        .unwrap();
    assert_eq!(got["metadata"]["uid"], "u2");
}

/// Goal: the store survives closing and reopening the file. Method: write objects, drop the
/// store, reopen the same file and compare contents, the versions summary and the inventory
/// (a pod's entry with its desired-content digest).
#[test]
fn survives_reopen() {
    let (_dir, path) = temp_db();
    let before = {
        let store = MetaStore::open(&path).unwrap();
        store.apply(&pod_msg("insert", "a", "ua", 1)).unwrap();
        store.apply(&pod_msg("insert", "b", "ub", 2)).unwrap();
        store.apply(&pod_msg("delete", "b", "ub", 3)).unwrap();
        store.known_versions().unwrap()
    };
    let store = MetaStore::open(&path).unwrap();
    assert_eq!(store.known_versions().unwrap(), before);
    let inv = store.inventory().unwrap();
    let keys: Vec<&str> = inv.objects.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        ["default/pod/a"],
        "the deleted pod is not in the inventory"
    );
    assert_eq!(inv.objects["default/pod/a"].uid, "ua");
    assert_eq!(inv.objects["default/pod/a"].rv, "1");
    // A pod carries the digest of its desired content (the cloud sends no status echoes).
    let stored = store
        .get("default", &ResourceType::Pod, "a")
        .unwrap()
        .unwrap();
    assert_eq!(
        inv.objects["default/pod/a"].digest.as_deref(),
        Some(ke_proto::desired::desired_digest(&stored).as_str())
    );
    assert!(
        store
            .get("default", &ResourceType::Pod, "a")
            .unwrap()
            .is_some()
    );
    assert!(store.is_tombstoned("ub").unwrap());
    assert_eq!(
        store.apply(&pod_msg("insert", "b", "ub", 2)).unwrap(),
        Applied::Tombstoned
    );
}

/// One generated write: operation, object index, uid generation, resourceVersion.
fn write_strategy() -> impl Strategy<Value = (bool, u8, u8, u64)> {
    (any::<bool>(), 0u8..4, 0u8..2, 1u64..40)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Goal: every accepted apply is durable the moment `apply` returns (what makes ACK-after-
    /// apply safe), even if the process dies without closing the database. Method: apply a
    /// random sequence of inserts/deletes over a few names and UIDs, tracking in a model what
    /// each accepted write left; then leak the store (no close, no checkpoint, like a crash),
    /// reopen the file and compare every key with the model.
    #[test]
    fn every_accepted_apply_is_visible_after_reopen(
        writes in proptest::collection::vec(write_strategy(), 1..40)
    ) {
        let (_dir, path) = temp_db();
        let store = MetaStore::open(&path).unwrap();
        let mut model = std::collections::BTreeMap::new();
        for (is_delete, idx, generation, rv) in writes {
            let name = format!("p{idx}");
            let uid = format!("{name}-g{generation}");
            let msg = pod_msg(if is_delete { "delete" } else { "update" }, &name, &uid, rv);
            match store.apply(&msg).unwrap() {
                Applied::Inserted | Applied::Updated => {
                    model.insert(name, (uid, rv.to_string()));
                }
                Applied::Deleted => {
                    model.remove(&name);
                }
                _ => {}
            }
        }
        std::mem::forget(store);
        let reopened = MetaStore::open(&path).unwrap();
        for idx in 0u8..4 {
            let name = format!("p{idx}");
            let got = reopened.get("default", &ResourceType::Pod, &name).unwrap();
            let got = got.map(|v| {
                (v["metadata"]["uid"].as_str().unwrap().to_owned(), rv_of(&v).to_owned())
            });
            prop_assert_eq!(got, model.get(&name).cloned(), "{}", name);
        }
    }
}

/// A running MetaManager task with its channels.
struct Harness {
    tx: mpsc::Sender<Message>,
    ack_rx: mpsc::Receiver<Message>,
    edged_rx: mpsc::Receiver<Message>,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), ke_edge::metamanager::Error>>,
}

fn start(store: MetaStore) -> Harness {
    let (tx, rx) = mpsc::channel(8);
    let (ack_tx, ack_rx) = mpsc::channel(8);
    let (edged_tx, edged_rx) = mpsc::channel(8);
    let (stop, stop_rx) = oneshot::channel::<()>();
    let clock = Arc::new(FixedClock::new(1_754_450_000));
    let manager = MetaManager::new(store, clock, Box::new(SequentialIds::new("mm")));
    let task = tokio::spawn(manager.run(rx, ack_tx, edged_tx, async move {
        let _ = stop_rx.await;
    }));
    Harness {
        tx,
        ack_rx,
        edged_rx,
        stop,
        task,
    }
}

async fn recv(rx: &mut mpsc::Receiver<Message>) -> Message {
    tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .expect("message within the timeout")
        .expect("channel open")
}

/// Goal: the ACK is sent only after the write is committed. Method: run the task on a file
/// database; when the ACK is observed, read the object through a *second* connection to the
/// same file (which sees only committed data) and check the ACK's shape; the change is then
/// forwarded to edged.
#[tokio::test]
async fn ack_is_sent_only_after_commit() {
    let (_dir, path) = temp_db();
    let mut h = start(MetaStore::open(&path).unwrap());
    let msg = pod_msg("insert", "web", "u1", 5);
    h.tx.send(msg.clone()).await.unwrap();
    let ack = recv(&mut h.ack_rx).await;
    let observer = MetaStore::open(&path).unwrap();
    let row = observer.get("default", &ResourceType::Pod, "web").unwrap();
    assert!(row.is_some(), "row committed before the ACK");
    assert_eq!(ack.header.parent_id, msg.header.id);
    assert_eq!(ack.route.operation, Operation::Response);
    assert_eq!(ack.route.resource, "default/pod/web");
    assert!(ack.content.is_ok_text());
    let forwarded = recv(&mut h.edged_rx).await;
    assert_eq!(forwarded.header.id, msg.header.id);
    h.stop.send(()).unwrap();
    h.task.await.unwrap().unwrap();
}

/// Goal: ACK and forwarding follow the rules: a stale redelivery is ACKed (so the cloud stops
/// resending) but not forwarded; a no-ACK message (node insert) is stored, not ACKed, not
/// forwarded. Method: send an update, its stale predecessor, a node insert, then a configmap
/// marker; observe the ACK and edged channels in order.
#[tokio::test]
async fn stale_is_acked_not_forwarded_and_no_ack_messages_get_none() {
    let store = MetaStore::open_in_memory().unwrap();
    let mut h = start(store.clone());
    h.tx.send(pod_msg("update", "web", "u1", 9)).await.unwrap();
    h.tx.send(pod_msg("update", "web", "u1", 8)).await.unwrap();
    let node = Message::new(
        "node-1",
        0,
        Route::new("edgecontroller", "resource", "insert", "null/node/edge-1"),
        json!({"metadata": {"name": "edge-1", "uid": "n1", "resourceVersion": "1"}}),
    );
    assert!(!node.needs_ack());
    h.tx.send(node).await.unwrap();
    let cm = Message::new(
        "cm-1",
        0,
        Route::new(
            "edgecontroller",
            "resource",
            "insert",
            "default/configmap/cfg",
        ),
        json!({"metadata": {"name": "cfg", "uid": "c1", "resourceVersion": "2"},
               "data": {"k": "v"}}),
    )
    .with_resource_version("2");
    h.tx.send(cm).await.unwrap();
    let acks: Vec<String> = [
        recv(&mut h.ack_rx).await,
        recv(&mut h.ack_rx).await,
        recv(&mut h.ack_rx).await,
    ]
    .iter()
    .map(|m| m.header.parent_id.clone())
    .collect();
    assert_eq!(
        acks,
        ["update-web-u1-9", "update-web-u1-8", "cm-1"].map(String::from)
    );
    let fwd = [recv(&mut h.edged_rx).await, recv(&mut h.edged_rx).await];
    assert_eq!(
        fwd.map(|m| m.header.id),
        ["update-web-u1-9", "cm-1"].map(String::from)
    );
    assert!(
        store
            .get("null", &ResourceType::Node, "edge-1")
            .unwrap()
            .is_some()
    );
    h.stop.send(()).unwrap();
    h.task.await.unwrap().unwrap();
}

/// Goal: edged's queries are answered from SQLite. Method: store two pods and a configmap,
/// query one configmap by name and the pod type without a name; the replies carry the
/// request id as parent and a JSON array of JSON strings.
#[tokio::test]
async fn queries_are_answered_locally() {
    let store = MetaStore::open_in_memory().unwrap();
    store.apply(&pod_msg("insert", "a", "ua", 1)).unwrap();
    store.apply(&pod_msg("insert", "b", "ub", 2)).unwrap();
    let mut h = start(store);
    let q = |id: &str, resource: &str| {
        Message::new(
            id,
            0,
            Route::new("edged", "meta", "query", resource),
            Value::Null,
        )
    };
    h.tx.send(q("q1", "default/pod")).await.unwrap();
    h.tx.send(q("q2", "default/configmap/missing"))
        .await
        .unwrap();
    let r1 = recv(&mut h.edged_rx).await;
    assert_eq!(r1.header.parent_id, "q1");
    assert_eq!(r1.route.operation, Operation::Response);
    let items = r1.content.value().as_array().unwrap();
    let names: Vec<String> = items
        .iter()
        .map(|s| serde_json::from_str::<Value>(s.as_str().unwrap()).unwrap())
        .map(|v| v["metadata"]["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["a", "b"]);
    let r2 = recv(&mut h.edged_rx).await;
    assert_eq!(
        (r2.header.parent_id.as_str(), r2.content.value()),
        ("q2", &json!([]))
    );
    h.stop.send(()).unwrap();
    h.task.await.unwrap().unwrap();
}
