//! The convergence snapshot (`workload::snapshot_holdings`) against the embedded API server:
//! listed in pages, it holds exactly what one list holds.

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use ke_apiserver::{Deps, Server, ServerConfig};
use ke_core::{Entropy, Seed};
use ke_net::TokioTransport;
use kube::{
    Api,
    api::{DeleteParams, ListParams, PostParams},
};
use serde_json::json;
use simulator::workload::{expected_holdings, snapshot_holdings_paged};
use std::collections::BTreeMap;

fn pod(name: &str, node: &str, cm: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox",
            "env": [{"name": "V", "valueFrom": {"configMapKeyRef": {"name": cm, "key": "v"}}}]}]}
    }))
    .expect("pod")
}

/// Goal: a snapshot listed two pods at a time equals the holdings computed from one list
/// (same pods, configmaps, versions and digests; same list version and count), including
/// pods of nodes outside the fleet being skipped. Method: seven pods on three nodes (one
/// not in the index) and two configmaps in an embedded API server, one pod deleted so the
/// versions are not contiguous; then both ways compared.
#[tokio::test]
async fn a_paged_snapshot_equals_one_list() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = ServerConfig::on_free_loopback_port(dir.path());
    let deps = Deps::with_system_clock(TokioTransport, Entropy::seeded(Seed(5), "snapshot"));
    let server = Server::start(cfg, deps).await.expect("server starts");
    let client = server.in_process_client().expect("client");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    let pp = PostParams::default();
    for c in ["cm-a", "cm-b"] {
        let cm: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": c}, "data": {"v": c}}))
                .expect("configmap");
        cms.create(&pp, &cm).await.expect("create configmap");
    }
    let placed = [
        ("p1", "n0", "cm-a"),
        ("p2", "n1", "cm-b"),
        ("p3", "n2", "cm-a"),
        ("p4", "n0", "cm-b"),
        ("p5", "other", "cm-a"),
        ("p6", "n1", "cm-a"),
        ("p7", "n2", "cm-b"),
        ("p8", "n0", "cm-a"),
    ];
    for (name, node, cm) in placed {
        pods.create(&pp, &pod(name, node, cm))
            .await
            .expect("create pod");
    }
    pods.delete("p4", &DeleteParams::default())
        .await
        .expect("delete pod");
    let index: BTreeMap<&str, u32> = [("n0", 0), ("n1", 1), ("n2", 2)].into_iter().collect();

    let all = ListParams::default();
    let one_pods = pods.list(&all).await.expect("list pods");
    let one_cms = cms.list(&all).await.expect("list configmaps");
    let want = expected_holdings(&one_pods.items, &one_cms.items, &index);
    let want_rv: u64 = one_pods
        .metadata
        .resource_version
        .as_deref()
        .and_then(|r| r.parse().ok())
        .expect("list version");

    let (got, rv, count) = snapshot_holdings_paged(&pods, &cms, &index, 2)
        .await
        .expect("snapshot");
    assert_eq!(got, want);
    assert_eq!((rv, count), (want_rv, one_pods.items.len()));
    assert_eq!(count, 7);
    assert_eq!(
        got.get(&0).map(|h| h.keys().cloned().collect::<Vec<_>>()),
        Some(vec![
            "default/configmap/cm-a".to_owned(),
            "default/pod/p1".to_owned(),
            "default/pod/p8".to_owned(),
        ]),
        "n0: p1, p8 and cm-a (p4, its only user of cm-b, was deleted)"
    );
    assert!(
        got.values()
            .flat_map(BTreeMap::keys)
            .all(|k| !k.ends_with("/p5")),
        "the pod of a node outside the fleet is skipped"
    );
}
