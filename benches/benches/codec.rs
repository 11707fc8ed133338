//! Codec benchmarks: encode and decode of the frames CloudHub sends most (pod inserts) and the
//! edge sends most (keepalives). Throughput is in bytes of JSON frame.

use criterion::{Criterion, Throughput};
use ke_proto::{Message, Route, decode, encode, encode_into};
use serde_json::{Value, json};
use std::hint::black_box;

/// A pod as EdgeController sends it: two containers with env, mounts, probes and resources,
/// three volumes (configMap, secret, emptyDir), and a typical status.
fn pod() -> Value {
    let container = |name: &str, image: &str, port: u16| {
        json!({
            "name": name, "image": image, "imagePullPolicy": "IfNotPresent",
            "ports": [{"containerPort": port, "protocol": "TCP"}],
            "env": [
                {"name": "LOG_LEVEL", "value": "info"},
                {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                {"name": "API_TOKEN", "valueFrom":
                    {"secretKeyRef": {"name": "app-secret", "key": "token"}}}
            ],
            "resources": {"limits": {"cpu": "500m", "memory": "256Mi"},
                          "requests": {"cpu": "100m", "memory": "64Mi"}},
            "volumeMounts": [
                {"name": "config", "mountPath": "/etc/app", "readOnly": true},
                {"name": "secret", "mountPath": "/var/run/secrets/app", "readOnly": true},
                {"name": "cache", "mountPath": "/var/cache/app"}
            ],
            "livenessProbe": {"httpGet": {"path": "/healthz", "port": port},
                              "initialDelaySeconds": 10, "periodSeconds": 10},
            "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "File"
        })
    };
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": "sensor-gateway-7d9f8b6c5-x2k4q", "namespace": "factory-a",
            "uid": "5b0c1f7e-2a43-4c9e-9d1b-6f3e8a7c2d10", "resourceVersion": "8342117",
            "creationTimestamp": "2026-08-06T10:00:00Z",
            "labels": {"app": "sensor-gateway", "pod-template-hash": "7d9f8b6c5", "tier": "edge"},
            "annotations": {"kubeedge.io/revision": "3"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "name": "sensor-gateway-7d9f8b6c5", "uid": "0e6d5c4b-3a29-4817-b6f5-e4d3c2b1a098",
                "controller": true, "blockOwnerDeletion": true}]
        },
        "spec": {
            "nodeName": "edge-node-0042", "restartPolicy": "Always", "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "default", "terminationGracePeriodSeconds": 30,
            "containers": [
                container("gateway", "registry.example.com/edge/sensor-gateway:1.8.2", 8080),
                container("mqtt-bridge", "registry.example.com/edge/mqtt-bridge:0.9.1", 1883)
            ],
            "volumes": [
                {"name": "config", "configMap": {"name": "app-cfg", "defaultMode": 420}},
                {"name": "secret", "secret": {"secretName": "app-secret", "defaultMode": 420}},
                {"name": "cache", "emptyDir": {"sizeLimit": "128Mi"}}
            ],
            "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                             "effect": "NoExecute", "tolerationSeconds": 300}]
        },
        "status": {"phase": "Pending", "qosClass": "Burstable"}
    })
}

fn pod_insert() -> Message {
    let route = Route::new(
        "edgecontroller",
        "resource",
        "insert",
        "factory-a/pod/sensor-gateway",
    );
    Message::new(
        "5f0e9c1a-8d2b-4b7e-9a61-3c4d5e6f7a8b",
        1_754_450_000_123,
        route,
        pod(),
    )
    .with_resource_version("8342117")
}

fn bench_message(c: &mut Criterion, label: &str, msg: &Message) {
    let frame = encode(msg);
    let mut group = c.benchmark_group(label);
    group.throughput(Throughput::Bytes(frame.len() as u64));
    let mut buf = Vec::with_capacity(frame.len());
    group.bench_function("encode", |b| {
        b.iter(|| {
            buf.clear();
            encode_into(black_box(msg), &mut buf);
            black_box(buf.len())
        })
    });
    group.bench_function("decode", |b| b.iter(|| decode(black_box(&frame))));
    group.finish();
}

fn codec(c: &mut Criterion) {
    let insert = pod_insert();
    bench_message(
        c,
        &format!("pod_insert_{}B", encode(&insert).len()),
        &insert,
    );
    let keepalive = Message::keepalive(&mut || "4f1c0a2e-0000-4000-8000-000000000001".into(), 1);
    bench_message(
        c,
        &format!("keepalive_{}B", encode(&keepalive).len()),
        &keepalive,
    );
}

// Written out instead of `criterion_group!`/`criterion_main!`, whose generated `pub fn` trips
// the workspace's `missing_docs` lint.
fn main() {
    let mut c = Criterion::default().configure_from_args();
    codec(&mut c);
    c.final_summary();
}
