//! The pod the API server benchmarks store: shaped like one a Deployment puts on an edge node
//! (one container with env, mounts, probe and resources; two volumes; owner reference,
//! labels, node name). About 1.5 KiB of JSON once the server has added its defaults, uid,
//! timestamps and version. Shared by the RSS probe and `benches/apiserver.rs`.

use serde_json::{Value, json};

/// Pod number `i` of a fleet: unique name, one of 500 edge nodes, one of 20 apps.
pub(crate) fn realistic_pod(i: usize) -> Value {
    let app = format!("sensor-gateway-{}", i % 20);
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": format!("{app}-7d9f8b6c5-{i:06}"),
            "labels": {"app": app, "pod-template-hash": "7d9f8b6c5", "tier": "edge"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "name": format!("{app}-7d9f8b6c5"), "uid": "0e6d5c4b-3a29-4817-b6f5-e4d3c2b1a098",
                "controller": true, "blockOwnerDeletion": true}]
        },
        "spec": {
            "nodeName": format!("edge-node-{:04}", i % 500),
            "serviceAccountName": "default",
            "containers": [{
                "name": "gateway", "image": "registry.example.com/edge/sensor-gateway:1.8.2",
                "env": [
                    {"name": "LOG_LEVEL", "value": "info"},
                    {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}
                ],
                "resources": {"limits": {"cpu": "500m", "memory": "256Mi"},
                              "requests": {"cpu": "100m", "memory": "64Mi"}},
                "volumeMounts": [
                    {"name": "config", "mountPath": "/etc/app", "readOnly": true},
                    {"name": "cache", "mountPath": "/var/cache/app"}
                ],
                "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080},
                                  "initialDelaySeconds": 10, "periodSeconds": 10}
            }],
            "volumes": [
                {"name": "config", "configMap": {"name": "app-cfg", "defaultMode": 420}},
                {"name": "cache", "emptyDir": {"sizeLimit": "128Mi"}}
            ]
        }
    })
}
