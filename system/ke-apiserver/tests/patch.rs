//! Patch application: strategic merge patches shaped like the ones kubectl 1.32 sends, cases
//! ported from apimachinery's `strategicpatch/patch_test.go`, JSON and merge patches, error
//! classes, and round-trip properties.

use ke_apiserver::patch::{self, PatchError, PatchMeta, PatchType, patch_meta};
use proptest::prelude::*;
use serde_json::{Value, json};

const POD: &str = "io.k8s.api.core.v1.Pod";
const POD_SPEC: &str = "io.k8s.api.core.v1.PodSpec";
const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

/// Applies a strategic merge patch to `original` as an object of definition `def`, and checks
/// that the result carries no directive.
fn strategic(def: &str, original: &Value, patch: &Value) -> Value {
    let body = serde_json::to_vec(patch).expect("a Value serializes");
    let out = patch::apply(PatchType::Strategic, original, &body, Some(def));
    let out = out.unwrap_or_else(|e| panic!("patch {patch} failed: {e:?}"));
    assert_no_directives(&out);
    out
}

/// The error a strategic merge patch gives.
fn strategic_err(def: &str, original: &Value, patch: &Value) -> PatchError {
    let body = serde_json::to_vec(patch).expect("a Value serializes");
    patch::apply(PatchType::Strategic, original, &body, Some(def)).expect_err("patch must fail")
}

/// Panics if any object key in `v` is a strategic-merge directive.
fn assert_no_directives(v: &Value) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let directive = k == "$patch"
                    || k == "$retainKeys"
                    || k.starts_with("$setElementOrder")
                    || k.starts_with("$deleteFromPrimitiveList");
                assert!(!directive, "directive {k} left in result");
                assert_no_directives(v);
            }
        }
        Value::Array(a) => a.iter().for_each(assert_no_directives),
        _ => {}
    }
}

/// A pod with two containers and the usual trimmings.
fn pod() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default",
                     "labels": {"app": "web", "tier": "frontend"},
                     "finalizers": ["a.example/x", "b.example/y"]},
        "spec": {
            "containers": [
                {"name": "app", "image": "busybox:1.36", "command": ["sleep", "3600"],
                 "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                 "ports": [{"containerPort": 80, "protocol": "TCP"}]},
                {"name": "sidecar", "image": "envoy:1", "imagePullPolicy": "IfNotPresent"}
            ],
            "volumes": [{"name": "data", "emptyDir": {"medium": "Memory"}}]
        },
        "status": {"phase": "Running", "conditions": [
            {"type": "Ready", "status": "False"},
            {"type": "PodScheduled", "status": "True"}
        ]}
    })
}

/// Names of the pod's containers, in order.
fn container_names(pod: &Value) -> Vec<&str> {
    pod["spec"]["containers"]
        .as_array()
        .expect("containers is a list")
        .iter()
        .map(|c| c["name"].as_str().expect("containers have names"))
        .collect()
}

/// kubectl apply changing one container's image: the patch names the container and orders the
/// list; the container's other fields and the other container stay.
#[test]
fn apply_changes_image_and_keeps_other_fields() {
    let p = json!({"metadata": {"labels": {"tier": "web"}},
        "spec": {"$setElementOrder/containers": [{"name": "app"}, {"name": "sidecar"}],
                 "containers": [{"image": "busybox:1.37", "name": "app"}]}});
    let out = strategic(POD, &pod(), &p);
    let app = &out["spec"]["containers"][0];
    assert_eq!(app["image"], "busybox:1.37");
    assert_eq!(app["command"], json!(["sleep", "3600"]));
    assert_eq!(app["env"].as_array().unwrap().len(), 2);
    assert_eq!(container_names(&out), ["app", "sidecar"]);
    assert_eq!(
        out["metadata"]["labels"],
        json!({"app": "web", "tier": "web"})
    );
}

/// The brief's exact single-container patch: `$setElementOrder` lists only `app`, so the
/// server-only `sidecar` keeps its place after it.
#[test]
fn set_element_order_with_server_only_container() {
    let p = json!({"metadata": {"labels": {"tier": "web"}},
        "spec": {"$setElementOrder/containers": [{"name": "app"}],
                 "containers": [{"image": "busybox:1.37", "name": "app"}]}});
    let out = strategic(POD, &pod(), &p);
    assert_eq!(container_names(&out), ["app", "sidecar"]);
    assert_eq!(out["spec"]["containers"][1]["image"], "envoy:1");
}

/// Adding an env var by name merges into the list; `$patch: delete` removes one by name.
#[test]
fn env_var_added_and_removed_by_name() {
    let p = json!({"spec": {"containers": [{"name": "app",
        "$setElementOrder/env": [{"name": "A"}, {"name": "C"}],
        "env": [{"name": "C", "value": "3"}, {"$patch": "delete", "name": "B"}]}]}});
    let out = strategic(POD, &pod(), &p);
    let env = &out["spec"]["containers"][0]["env"];
    assert_eq!(
        env,
        &json!([{"name": "A", "value": "1"}, {"name": "C", "value": "3"}])
    );
}

/// Without `$setElementOrder`, a new element goes before the server's elements (what
/// kube-apiserver's `mergeSortedSlice` does).
#[test]
fn new_list_element_without_order_goes_first() {
    let p = json!({"spec": {"containers": [{"name": "init", "image": "alpine"}]}});
    let out = strategic(POD, &pod(), &p);
    assert_eq!(container_names(&out), ["init", "app", "sidecar"]);
}

/// `$patch: delete` of a whole container, as kubectl apply sends when one is removed.
#[test]
fn container_deleted_by_directive() {
    let p = json!({"spec": {"$setElementOrder/containers": [{"name": "app"}],
        "containers": [{"$patch": "delete", "name": "sidecar"}]}});
    let out = strategic(POD, &pod(), &p);
    assert_eq!(container_names(&out), ["app"]);
}

/// `$retainKeys` on a volume switches its source: fields not retained are cleared.
#[test]
fn retain_keys_switches_volume_source() {
    let p = json!({"spec": {"$setElementOrder/volumes": [{"name": "data"}],
        "volumes": [{"$retainKeys": ["configMap", "name"], "configMap": {"name": "cfg"},
                     "name": "data"}]}});
    let out = strategic(POD, &pod(), &p);
    assert_eq!(
        out["spec"]["volumes"],
        json!([{"name": "data", "configMap": {"name": "cfg"}}])
    );
}

/// A patch field missing from `$retainKeys` is a malformed patch (400).
#[test]
fn retain_keys_must_cover_patch_fields() {
    let p = json!({"spec": {"volumes": [{"$retainKeys": ["name"], "hostPath": {"path": "/x"},
        "name": "data"}]}});
    let err = strategic_err(POD, &pod(), &p);
    assert!(matches!(err, PatchError::InvalidPatch { .. }), "{err:?}");
    assert_eq!(err.status_code(), 400);
}

/// `null` deletes a label (kubectl label foo-).
#[test]
fn null_deletes_label() {
    let out = strategic(
        POD,
        &pod(),
        &json!({"metadata": {"labels": {"tier": null}}}),
    );
    assert_eq!(out["metadata"]["labels"], json!({"app": "web"}));
}

/// Finalizers (strategy merge, no key) form a union; new values go first, duplicates once.
#[test]
fn finalizers_union() {
    let p = json!({"metadata": {"finalizers": ["c.example/z", "a.example/x"]}});
    let out = strategic(POD, &pod(), &p);
    assert_eq!(
        out["metadata"]["finalizers"],
        json!(["c.example/z", "a.example/x", "b.example/y"])
    );
}

/// `$deleteFromPrimitiveList/finalizers` removes values, as kubectl apply sends with the
/// remaining order.
#[test]
fn delete_from_primitive_list() {
    let p = json!({"metadata": {"$setElementOrder/finalizers": ["b.example/y"],
        "$deleteFromPrimitiveList/finalizers": ["a.example/x", "not-there"]}});
    let out = strategic(POD, &pod(), &p);
    assert_eq!(out["metadata"]["finalizers"], json!(["b.example/y"]));
}

/// `$deleteFromPrimitiveList` on a list the object does not have adds nothing.
#[test]
fn delete_from_missing_primitive_list() {
    let out = strategic(
        OBJECT_META,
        &json!({"name": "x"}),
        &json!({"$deleteFromPrimitiveList/finalizers": ["a"]}),
    );
    assert_eq!(out, json!({"name": "x"}));
}

/// Status conditions merge by `type` (a kubelet-style status patch).
#[test]
fn status_conditions_merge_by_type() {
    let p = json!({"status": {"conditions": [{"type": "Ready", "status": "True",
        "lastTransitionTime": "2025-01-01T00:00:00Z"}]}});
    let out = strategic(POD, &pod(), &p);
    assert_eq!(
        out["status"]["conditions"],
        json!([
            {"type": "Ready", "status": "True", "lastTransitionTime": "2025-01-01T00:00:00Z"},
            {"type": "PodScheduled", "status": "True"}
        ])
    );
}

/// Node addresses and conditions merge by `type`.
#[test]
fn node_status_merges_by_type() {
    let node = json!({"kind": "Node", "metadata": {"name": "n1"}, "status": {
        "addresses": [{"type": "InternalIP", "address": "10.0.0.1"},
                      {"type": "Hostname", "address": "n1"}],
        "conditions": [{"type": "Ready", "status": "Unknown"}]}});
    let p = json!({"status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.2"}],
        "conditions": [{"type": "MemoryPressure", "status": "False"}]}});
    let out = strategic("io.k8s.api.core.v1.Node", &node, &p);
    assert_eq!(
        out["status"]["addresses"],
        json!([
        {"type": "InternalIP", "address": "10.0.0.2"}, {"type": "Hostname", "address": "n1"}])
    );
    assert_eq!(out["status"]["conditions"].as_array().unwrap().len(), 2);
}

/// Service ports merge by `port`.
#[test]
fn service_ports_merge_by_port() {
    let svc = json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443}]}});
    let p = json!({"spec": {"$setElementOrder/ports": [{"port": 80}, {"port": 443}],
        "ports": [{"port": 80, "targetPort": 9090}]}});
    let out = strategic("io.k8s.api.core.v1.Service", &svc, &p);
    assert_eq!(
        out["spec"]["ports"],
        json!([{"port": 80, "targetPort": 9090}, {"port": 443}])
    );
}

/// A list without a strategy (container `command`) is replaced whole.
#[test]
fn list_without_strategy_replaced() {
    let p = json!({"spec": {"containers": [{"name": "app", "command": ["true"]}]}});
    let out = strategic(POD, &pod(), &p);
    assert_eq!(out["spec"]["containers"][0]["command"], json!(["true"]));
}

/// `$patch: replace` inside a list makes the patch elements the whole list.
#[test]
fn list_replace_directive() {
    let p = json!({"spec": {"containers": [{"$patch": "replace"},
        {"name": "only", "image": "x"}]}});
    let out = strategic(POD, &pod(), &p);
    assert_eq!(
        out["spec"]["containers"],
        json!([{"name": "only", "image": "x"}])
    );
}

/// `$patch: replace` on a map replaces it; `$patch: delete` empties it (as kube does).
#[test]
fn map_replace_and_delete_directives() {
    let p = json!({"metadata": {"labels": {"$patch": "replace", "new": "1"}}});
    let out = strategic(POD, &pod(), &p);
    assert_eq!(out["metadata"]["labels"], json!({"new": "1"}));
    let out = strategic(
        POD,
        &pod(),
        &json!({"metadata": {"labels": {"$patch": "delete"}}}),
    );
    assert_eq!(out["metadata"]["labels"], json!({}));
}

/// A patch element without its merge key cannot be merged (422).
#[test]
fn missing_merge_key_is_unprocessable() {
    let err = strategic_err(
        POD,
        &pod(),
        &json!({"spec": {"containers": [{"image": "x"}]}}),
    );
    assert!(matches!(err, PatchError::Unprocessable { .. }), "{err:?}");
    assert_eq!(err.status_code(), 422);
}

/// Ported from patch_test.go ("set elements order in a list with server-only items" 1–3):
/// the three-way patch applied to the current list.
#[test]
fn set_element_order_server_only_items_ported() {
    let names = |v: &Value| -> Vec<i64> {
        v["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_i64().unwrap())
            .collect()
    };
    let order = |ns: &[i64]| -> Value { ns.iter().map(|n| json!({"name": n})).collect() };
    let cases: [(&[i64], &[i64], &[i64]); 3] = [
        (&[1, 3, 4, 2, 9], &[4, 2, 3, 1], &[4, 2, 3, 1, 9]),
        (&[1, 2, 9, 3, 4], &[2, 1, 4, 3], &[2, 1, 9, 4, 3]),
        (
            &[1, 2, 7, 9, 8, 3, 4],
            &[2, 1, 4, 3],
            &[2, 1, 7, 9, 8, 4, 3],
        ),
    ];
    for (current, set_order, want) in cases {
        let cur = json!({"containers": order(current)});
        let p = json!({"$setElementOrder/containers": order(set_order)});
        assert_eq!(
            names(&strategic(POD_SPEC, &cur, &p)),
            want,
            "current {current:?}"
        );
    }
}

/// Ported: a `$setElementOrder` naming an element that exists nowhere is ignored for it.
#[test]
fn set_element_order_with_unknown_item_ported() {
    let cur = json!({"containers": [{"name": "1"}, {"name": "3"}]});
    let p = json!({"$setElementOrder/containers": [{"name": "3"}, {"name": "2"}, {"name": "1"}],
        "containers": [{"name": "3", "value": 3}, {"name": "1", "value": 1}]});
    let out = strategic(POD_SPEC, &cur, &p);
    assert_eq!(
        out["containers"],
        json!([{"name": "3", "value": 3}, {"name": "1", "value": 1}])
    );
    let cur = json!({"finalizers": ["1", "3"]});
    let p = json!({"$setElementOrder/finalizers": ["3", "2", "1"]});
    assert_eq!(
        strategic(OBJECT_META, &cur, &p)["finalizers"],
        json!(["3", "1"])
    );
}

/// Ported: the patch list must follow `$setElementOrder`'s order, else the patch is refused.
#[test]
fn set_element_order_mismatch_ported() {
    let cur = json!({"containers": [{"name": "1"}, {"name": "3"}, {"name": "2"}]});
    let p = json!({"$setElementOrder/containers": [{"name": "1"}, {"name": "2"}, {"name": "3"}],
        "containers": [{"name": "3", "value": 3}, {"name": "1", "value": 1}]});
    let err = strategic_err(POD_SPEC, &cur, &p);
    assert_eq!(err.status_code(), 400, "{err:?}");
}

/// Ported: `$deleteFromPrimitiveList` works on a list without merge strategy too.
#[test]
fn delete_from_non_merging_primitive_list_ported() {
    let cur = json!({"containers": [{"name": "a", "args": ["1", "2", "3"]}]});
    let p = json!({"containers": [{"name": "a", "$deleteFromPrimitiveList/args": ["2"]}]});
    let out = strategic(POD_SPEC, &cur, &p);
    assert_eq!(out["containers"][0]["args"], json!(["1", "3"]));
}

/// Unknown definitions merge maps and replace lists; unknown `$` keys that are not
/// directives (e.g. `$schema` in a CRD schema) are ordinary fields.
#[test]
fn unknown_definition_replaces_lists() {
    let cur = json!({"data": {"a": "1"}, "items": [1, 2], "$schema": "x"});
    let p = json!({"data": {"b": "2"}, "items": [3]});
    let out = strategic("io.k8s.api.core.v1.ConfigMap", &cur, &p);
    assert_eq!(
        out,
        json!({"data": {"a": "1", "b": "2"}, "items": [3], "$schema": "x"})
    );
}

/// Directives inside values that are new to the object are resolved, not copied.
#[test]
fn directives_in_new_values_are_resolved() {
    let cur = json!({"metadata": {"name": "x"}});
    let p = json!({"spec": {"$setElementOrder/containers": [{"name": "a"}],
        "containers": [{"name": "a", "$setElementOrder/env": [{"name": "E"}],
            "env": [{"name": "E", "value": "1"}, {"$patch": "delete", "name": "F"}]}]}});
    let out = strategic(POD, &cur, &p);
    assert_eq!(
        out["spec"],
        json!({"containers": [{"name": "a", "env": [{"name": "E", "value": "1"}]}]})
    );
}

/// Malformed bodies are 400-class for every patch type; a non-object strategic patch too.
#[test]
fn malformed_bodies_are_bad_requests() {
    let pod = pod();
    for kind in [PatchType::Json, PatchType::Merge, PatchType::Strategic] {
        let err = patch::apply(kind, &pod, b"{not json", Some(POD)).unwrap_err();
        assert!(
            matches!(err, PatchError::MalformedBody(_)),
            "{kind:?}: {err:?}"
        );
        assert_eq!(err.status_code(), 400);
    }
    let err = patch::apply(PatchType::Strategic, &pod, b"[1]", Some(POD)).unwrap_err();
    assert_eq!(err.status_code(), 400);
    let err = patch::apply(
        PatchType::Json,
        &pod,
        br#"[{"op":"frob","path":"/a"}]"#,
        None,
    );
    assert_eq!(err.unwrap_err().status_code(), 400);
    let bad = json!({"metadata": {"labels": {"$patch": "explode"}}});
    assert_eq!(strategic_err(POD, &pod, &bad).status_code(), 400);
}

/// Custom resources (no definition) refuse strategic merge patches with 415; apply is not
/// implemented.
#[test]
fn crd_strategic_and_apply_unsupported() {
    let err = patch::apply(PatchType::Strategic, &pod(), b"{}", None).unwrap_err();
    assert!(matches!(err, PatchError::StrategicUnsupported));
    assert_eq!(err.status_code(), 415);
    let err = patch::apply(PatchType::Apply, &pod(), b"{}", Some(POD)).unwrap_err();
    assert!(matches!(err, PatchError::Unsupported(PatchType::Apply)));
}

/// Merge patch (kubectl patch --type merge; kubectl apply on custom resources): lists are
/// replaced whole, `null` deletes.
#[test]
fn merge_patch_replaces_lists() {
    let p = json!({"metadata": {"labels": {"app": null}},
        "spec": {"containers": [{"name": "solo", "image": "x"}]}});
    let body = serde_json::to_vec(&p).unwrap();
    let out = patch::apply(PatchType::Merge, &pod(), &body, None).unwrap();
    assert_eq!(
        out["spec"]["containers"],
        json!([{"name": "solo", "image": "x"}])
    );
    assert_eq!(out["metadata"]["labels"], json!({"tier": "frontend"}));
}

/// JSON patch add/replace/remove apply in order; a failed `test` or missing path is 422
/// and changes nothing.
#[test]
fn json_patch_operations_and_failures() {
    let ops = json!([
        {"op": "add", "path": "/metadata/labels/new", "value": "1"},
        {"op": "replace", "path": "/spec/containers/0/image", "value": "busybox:1.37"},
        {"op": "remove", "path": "/spec/containers/1"},
        {"op": "test", "path": "/metadata/name", "value": "web"}
    ]);
    let out = patch::apply(
        PatchType::Json,
        &pod(),
        &serde_json::to_vec(&ops).unwrap(),
        None,
    )
    .unwrap();
    assert_eq!(out["metadata"]["labels"]["new"], "1");
    assert_eq!(container_names(&out), ["app"]);
    assert_eq!(out["spec"]["containers"][0]["image"], "busybox:1.37");
    for ops in [
        json!([{"op": "test", "path": "/metadata/name", "value": "other"}]),
        json!([{"op": "remove", "path": "/metadata/nope"}]),
        json!([{"op": "replace", "path": "/spec/containers/7/image", "value": "x"}]),
    ] {
        let body = serde_json::to_vec(&ops).unwrap();
        let err = patch::apply(PatchType::Json, &pod(), &body, None).unwrap_err();
        assert!(
            matches!(err, PatchError::JsonPatchFailed(_)),
            "{ops}: {err:?}"
        );
        assert_eq!(err.status_code(), 422);
    }
}

/// Errors become API errors with kube's code and reason, the cause in the message.
#[test]
fn errors_become_api_errors() {
    let ops = br#"[{"op": "test", "path": "/metadata/name", "value": "other"}]"#;
    let err = patch::apply(PatchType::Json, &pod(), ops, None)
        .unwrap_err()
        .into_api_error();
    assert_eq!((err.code, err.reason), (422, "Invalid"));
    assert!(err.message.contains("/metadata/name"), "{}", err.message);
    let err = patch::apply(PatchType::Strategic, &pod(), b"{}", None).unwrap_err();
    let err = err.into_api_error();
    assert_eq!((err.code, err.reason), (415, "UnsupportedMediaType"));
    let err = patch::apply(PatchType::Merge, &pod(), b"nope", None).unwrap_err();
    assert_eq!(err.into_api_error().reason, "BadRequest");
}

/// Content types map to patch types, parameters ignored.
#[test]
fn content_types() {
    let cases = [
        ("application/json-patch+json", Some(PatchType::Json)),
        ("application/merge-patch+json", Some(PatchType::Merge)),
        (
            "application/strategic-merge-patch+json; charset=utf-8",
            Some(PatchType::Strategic),
        ),
        ("application/apply-patch+yaml", Some(PatchType::Apply)),
        ("application/json", None),
    ];
    for (ct, want) in cases {
        assert_eq!(PatchType::from_content_type(ct), want, "{ct}");
    }
}

/// Spot checks of the merge-key table against the Go struct tags.
#[test]
fn patch_meta_table() {
    let m = |strategy, merge_key| {
        Some(PatchMeta {
            strategy,
            merge_key,
        })
    };
    assert_eq!(patch_meta(POD_SPEC, "containers"), m("merge", Some("name")));
    assert_eq!(
        patch_meta(POD_SPEC, "volumes"),
        m("merge,retainKeys", Some("name"))
    );
    assert_eq!(patch_meta(POD_SPEC, "hostAliases"), m("merge", Some("ip")));
    assert_eq!(
        patch_meta("io.k8s.api.core.v1.Container", "ports"),
        m("merge", Some("containerPort"))
    );
    assert_eq!(
        patch_meta("io.k8s.api.core.v1.Container", "volumeMounts"),
        m("merge", Some("mountPath"))
    );
    assert_eq!(
        patch_meta(OBJECT_META, "ownerReferences"),
        m("merge", Some("uid"))
    );
    assert_eq!(patch_meta(OBJECT_META, "finalizers"), m("merge", None));
    assert_eq!(
        patch_meta("io.k8s.api.core.v1.ServiceAccount", "secrets"),
        m("merge", Some("name"))
    );
    assert_eq!(patch_meta("io.k8s.api.core.v1.Container", "command"), None);
    assert_eq!(
        patch_meta("io.k8s.api.core.v1.NamespaceSpec", "finalizers"),
        None
    );
}

/// A JSON object with small keys (never `$`-prefixed) and, when `nulls` is false, no nulls.
fn object(nulls: bool) -> impl Strategy<Value = Value> {
    let scalar = prop_oneof![
        any::<bool>().prop_map(Value::from),
        (-5i64..5).prop_map(Value::from),
        "[a-c]{0,2}".prop_map(Value::from),
    ];
    let leaf = if nulls {
        prop_oneof![scalar, Just(Value::Null)].boxed()
    } else {
        scalar.boxed()
    };
    let tree = leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
            prop::collection::btree_map("[a-d]{1,2}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    prop::collection::btree_map("[a-d]{1,2}", tree, 0..4)
        .prop_map(|m| Value::Object(m.into_iter().collect()))
}

/// The RFC 7386 merge patch that turns `a` into `b` (`b` without nulls).
fn merge_diff(a: &Value, b: &Value) -> Value {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            let mut out = serde_json::Map::new();
            for k in a.keys().filter(|k| !b.contains_key(*k)) {
                out.insert(k.clone(), Value::Null);
            }
            for (k, bv) in b {
                match a.get(k) {
                    Some(av) if av == bv => {}
                    Some(av) if av.is_object() && bv.is_object() => {
                        out.insert(k.clone(), merge_diff(av, bv));
                    }
                    _ => {
                        out.insert(k.clone(), bv.clone());
                    }
                }
            }
            Value::Object(out)
        }
        _ => b.clone(),
    }
}

proptest! {
    /// JSON patch: `diff(a, b)` from the json-patch crate applied to `a` yields `b`.
    #[test]
    fn json_patch_of_diff_round_trips(a in object(true), b in object(true)) {
        let body = serde_json::to_vec(&json_patch::diff(&a, &b)).unwrap();
        prop_assert_eq!(patch::apply(PatchType::Json, &a, &body, None).unwrap(), b);
    }

    /// Merge patch: the merge diff of `a` and `b` applied to `a` yields `b`; a strategic merge
    /// patch on a type without metadata behaves identically.
    #[test]
    fn merge_patch_of_diff_round_trips(a in object(true), b in object(false)) {
        let body = serde_json::to_vec(&merge_diff(&a, &b)).unwrap();
        prop_assert_eq!(&patch::apply(PatchType::Merge, &a, &body, None).unwrap(), &b);
        let def = Some("io.k8s.example.v1.Unknown");
        prop_assert_eq!(&patch::apply(PatchType::Strategic, &a, &body, def).unwrap(), &b);
    }
}
