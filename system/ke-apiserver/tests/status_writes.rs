//! Status writes by patch: the API server parses only the members a status write can change
//! (`Obj::with_status`). These tests hold that shortcut to what a whole-object write stores:
//! the same bytes, labels and selectable fields, the same refusals, nothing else changed.

use ke_apiserver::{
    api::{Api, ApiError, Part, WriteOpts},
    patch::{self, PatchType},
    registry::ResourceInfo,
    store::{Obj, Store, StoreOptions},
};
use ke_core::{Entropy, FixedClock, Seed};
use serde_json::{Value, json};
use std::sync::Arc;

fn api() -> (Api, Arc<ResourceInfo>) {
    let store = Store::open_in_memory(StoreOptions::default()).expect("a store");
    let clock = Arc::new(FixedClock::new(1_754_450_000));
    let api = Api::new(store, clock, Entropy::seeded(Seed(3), "status")).expect("the API");
    let pods = api.resource("", "v1", "pods").expect("pods are built in");
    (api, pods)
}

/// A pod whose text needs escapes, with labels, a status or none.
fn pod(name: &str, status: Option<Value>) -> Value {
    let mut p = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default",
                     "labels": {"app": "web", "tier": "a\"b"},
                     "annotations": {"note": "line\nbreak \u{e9} <&>"}},
        "spec": {"nodeName": "edge-1", "restartPolicy": "Always",
                 "containers": [{"name": "app", "image": "busybox:1.36",
                                 "command": ["sh", "-c", "echo \"hi\"\tthere"],
                                 "env": [{"name": "A", "value": "\\x"}]}]}
    });
    if let Some(s) = status {
        p["status"] = s;
    }
    p
}

fn create(api: &Api, pods: &ResourceInfo, body: Value) -> Arc<Obj> {
    api.create(pods, "default", body, WriteOpts::default())
        .expect("created")
        .obj
}

fn patch_status(
    api: &Api,
    pods: &ResourceInfo,
    name: &str,
    kind: PatchType,
    patch: &Value,
) -> Result<Arc<Obj>, ApiError> {
    let body = serde_json::to_vec(patch).expect("a Value serializes");
    api.patch(
        pods,
        "default",
        name,
        Part::Status,
        kind,
        &body,
        WriteOpts::default(),
    )
    .map(|w| w.obj)
}

/// What a status write must store: the stored object, parsed whole, patched the reference
/// way; its `status` put into the stored object, server fields dropped, the new version;
/// the whole written.
fn expected(before: &Obj, kind: PatchType, patch: &Value, rv: u64) -> Arc<Obj> {
    let mut v = before.value();
    let body = serde_json::to_vec(patch).expect("a Value serializes");
    let def = (kind == PatchType::Strategic).then_some("io.k8s.api.core.v1.Pod");
    let patched = patch::apply(kind, &v, &body, def).expect("the patch applies");
    v["status"] = patched["status"].clone();
    if let Some(m) = v["metadata"].as_object_mut() {
        m.remove("managedFields");
        m.remove("selfLink");
    }
    v["metadata"]["resourceVersion"] = json!(rv.to_string());
    Obj::from_value(rv, &v)
}

fn assert_same(got: &Obj, want: &Obj) {
    assert_eq!(
        std::str::from_utf8(&got.json).expect("stored text is UTF-8"),
        std::str::from_utf8(&want.json).expect("stored text is UTF-8")
    );
    assert_eq!(got.labels, want.labels);
    assert_eq!(got.fields, want.fields);
    assert_eq!(
        (&got.namespace, &got.name, got.rv),
        (&want.namespace, &want.name, want.rv)
    );
}

/// Goal: a strategic and a merge status patch store exactly what writing the whole patched
/// object stores: the same text (escapes in untouched members included), labels and
/// selectable fields, with `status.phase` and `status.podIP` taken from the new status.
#[test]
fn a_status_patch_stores_what_a_whole_write_stores() {
    let (api, pods) = api();
    let before = create(&api, &pods, pod("web", None));
    assert_eq!(before.field("status.phase"), Some("Pending"));
    let patch = json!({"status": {"phase": "Running", "podIP": "10.0.0.7", "conditions": [
        {"type": "Ready", "status": "False"}, {"type": "Initialized", "status": "True"}]}});
    let first = patch_status(&api, &pods, "web", PatchType::Strategic, &patch).unwrap();
    assert_same(
        &first,
        &expected(&before, PatchType::Strategic, &patch, before.rv + 1),
    );

    // Strategic merge: conditions merge by type, the rest is kept.
    let patch = json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}});
    let got = patch_status(&api, &pods, "web", PatchType::Strategic, &patch).unwrap();
    assert_same(
        &got,
        &expected(&first, PatchType::Strategic, &patch, first.rv + 1),
    );
    let conditions = &got.value()["status"]["conditions"];
    assert_eq!(conditions.as_array().map(Vec::len), Some(2), "{conditions}");
    assert_eq!(got.field("status.phase"), Some("Running"));
    assert_eq!(got.field("status.podIP"), Some("10.0.0.7"));
    assert_eq!(got.field("spec.nodeName"), Some("edge-1"));

    // A merge patch that removes a field and replaces the list.
    let patch = json!({"status": {"podIP": null, "conditions": [{"type": "X", "status": "U"}]}});
    let again = patch_status(&api, &pods, "web", PatchType::Merge, &patch).unwrap();
    assert_same(
        &again,
        &expected(&got, PatchType::Merge, &patch, got.rv + 1),
    );
    assert_eq!(again.field("status.podIP"), None);
    assert_eq!(api.get(&pods, "default", "web").unwrap().json, again.json);
}

/// Goal: the first status of an object stored without one (a node) is written in its
/// place among the members, as a whole write does; selectable fields stay.
#[test]
fn a_first_status_is_written_as_a_whole_write_does() {
    let (api, _) = api();
    let nodes = api.resource("", "v1", "nodes").expect("nodes are built in");
    let body = json!({"apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "edge-1", "labels": {"node-role.kubernetes.io/edge": ""}},
        "spec": {"unschedulable": true}});
    let before = api
        .create(&nodes, "", body, WriteOpts::default())
        .unwrap()
        .obj;
    let text = std::str::from_utf8(&before.json).unwrap();
    assert!(!text.contains("status"), "created without a status: {text}");
    let patch = json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}});
    let bytes = serde_json::to_vec(&patch).unwrap();
    let got = api
        .patch(
            &nodes,
            "",
            "edge-1",
            Part::Status,
            PatchType::Strategic,
            &bytes,
            WriteOpts::default(),
        )
        .unwrap()
        .obj;
    let mut v = before.value();
    v["status"] = patch["status"].clone();
    v["metadata"]["resourceVersion"] = json!((before.rv + 1).to_string());
    assert_same(&got, &Obj::from_value(before.rv + 1, &v));
    assert_eq!(got.field("spec.unschedulable"), Some("true"));
    let text = std::str::from_utf8(&got.json).unwrap();
    assert!(
        text.ends_with(r#""status":{"conditions":[{"status":"True","type":"Ready"}]}}"#),
        "{text}"
    );
}

/// Goal: a status write changes only the status: spec, labels and annotations in the patch
/// are ignored, a patch that leaves the status as it is writes nothing (the version stays),
/// and a stale resourceVersion in the patch is a conflict.
#[test]
fn a_status_patch_changes_only_the_status_and_checks_the_version() {
    let (api, pods) = api();
    let before = create(&api, &pods, pod("web", Some(json!({"phase": "Pending"}))));
    let patch = json!({"metadata": {"labels": {"app": "other"}, "annotations": null},
                       "spec": {"nodeName": "edge-2", "restartPolicy": "Never"},
                       "status": {"phase": "Running"}});
    let got = patch_status(&api, &pods, "web", PatchType::Strategic, &patch).unwrap();
    let want = expected(
        &before,
        PatchType::Strategic,
        &json!({"status": {"phase": "Running"}}),
        before.rv + 1,
    );
    assert_same(&got, &want);
    assert_eq!(got.labels.get("app"), Some("web"));
    assert_eq!(got.field("spec.nodeName"), Some("edge-1"));
    assert_eq!(got.field("spec.restartPolicy"), Some("Always"));

    let same = json!({"status": {"phase": "Running"}});
    let unchanged = patch_status(&api, &pods, "web", PatchType::Merge, &same).unwrap();
    assert_eq!((unchanged.rv, &unchanged.json), (got.rv, &got.json));
    assert_eq!(api.store.current_rv(), got.rv, "no version was used");

    let stale = json!({"metadata": {"resourceVersion": before.rv.to_string()},
                       "status": {"phase": "Failed"}});
    let err = patch_status(&api, &pods, "web", PatchType::Merge, &stale).unwrap_err();
    assert_eq!(err.code, 409, "{err:?}");
    assert_eq!(api.get(&pods, "default", "web").unwrap().json, got.json);
}

/// Goal: the shortcut (merge patch) and the whole-object path (JSON patch) of the same
/// status change store the same text, and a JSON patch may still test a spec path.
#[test]
fn json_and_merge_status_patches_agree() {
    let (api, pods) = api();
    let a = create(&api, &pods, pod("a", Some(json!({"phase": "Pending"}))));
    let b = create(&api, &pods, pod("b", Some(json!({"phase": "Pending"}))));
    let merged = patch_status(
        &api,
        &pods,
        "a",
        PatchType::Merge,
        &json!({"status": {"phase": "Running", "hostIP": "192.0.2.1"}}),
    )
    .unwrap();
    let ops = json!([
        {"op": "test", "path": "/spec/nodeName", "value": "edge-1"},
        {"op": "replace", "path": "/status/phase", "value": "Running"},
        {"op": "add", "path": "/status/hostIP", "value": "192.0.2.1"}
    ]);
    let patched = patch_status(&api, &pods, "b", PatchType::Json, &ops).unwrap();
    let strip = |o: &Obj, name: &str, rv: u64| {
        std::str::from_utf8(&o.json)
            .unwrap()
            .replace(&format!(r#""name":"{name}""#), "NAME")
            .replace(&format!(r#""resourceVersion":"{rv}""#), "RV")
            .replace(
                &format!(
                    r#""uid":"{}""#,
                    o.value()["metadata"]["uid"].as_str().unwrap()
                ),
                "UID",
            )
    };
    assert_eq!(
        strip(&merged, "a", merged.rv),
        strip(&patched, "b", patched.rv)
    );
    assert_ne!((a.rv, b.rv), (merged.rv, patched.rv));
}
