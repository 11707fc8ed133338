//! The JSON the node agent sends (pure): the Node object of the registration, the node status
//! patch, the Lease and the pod DeleteOptions. Shapes follow kubelet's, as KubeEdge's
//! kubelet fork sends them (wire reference §4.2).

use ke_core::clock::format_rfc3339;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use super::NodeConfig;

/// The Go name of the architecture this binary runs on (`GOARCH`), as Kubernetes reports it in
/// `nodeInfo.architecture` and the `kubernetes.io/arch` label.
pub fn go_arch() -> &'static str {
    go_arch_of(std::env::consts::ARCH, cfg!(target_endian = "little"))
}

/// Maps a Rust `target_arch` to Go's `GOARCH`.
fn go_arch_of(rust_arch: &'static str, little_endian: bool) -> &'static str {
    match rust_arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" if little_endian => "ppc64le",
        "powerpc64" => "ppc64",
        "loongarch64" => "loong64",
        "mips64" if little_endian => "mips64le",
        "mips" if little_endian => "mipsle",
        other => other,
    }
}

/// Kubernetes `metav1.MicroTime` text: RFC 3339 with six fractional digits
/// (`2026-01-02T03:04:05.123456Z`), as a Lease's `renewTime` carries it.
pub fn format_micro_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let seconds = format_rfc3339(t);
    let micros = t.microsecond();
    match seconds.strip_suffix('Z') {
        Some(base) => format!("{base}.{micros:06}Z"),
        None => seconds,
    }
}

/// `metadata.labels` of the registered node: kubelet's well-known labels, KubeEdge's role
/// labels, then the configured `nodeLabels` (which may override the others).
fn labels(cfg: &NodeConfig) -> Map<String, Value> {
    let node = cfg.node.as_str();
    let mut labels = Map::new();
    for (k, v) in [
        ("node-role.kubernetes.io/edge", ""),
        ("node-role.kubernetes.io/agent", ""),
        ("kubernetes.io/hostname", node),
        ("kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", go_arch()),
        ("beta.kubernetes.io/os", "linux"),
        ("beta.kubernetes.io/arch", go_arch()),
    ] {
        labels.insert(k.to_owned(), Value::String(v.to_owned()));
    }
    for (k, v) in &cfg.labels {
        labels.insert(k.clone(), Value::String(v.clone()));
    }
    labels
}

/// `status.capacity` / `status.allocatable` (no reservations: both the same).
fn resources(cfg: &NodeConfig) -> Value {
    let r = &cfg.resources;
    json!({"cpu": r.cpu, "memory": r.memory, "pods": r.pods})
}

/// `status.nodeInfo`. Every field of `NodeSystemInfo` is required by the API schema, so the
/// unknown ones are empty strings, as kubelet sends them when it cannot read them.
fn node_info(cfg: &NodeConfig) -> Value {
    json!({
        "machineID": "",
        "systemUUID": "",
        "bootID": "",
        "kernelVersion": "",
        "osImage": "edgefleet",
        "containerRuntimeVersion": cfg.container_runtime_version,
        "kubeletVersion": cfg.kubelet_version,
        "kubeProxyVersion": "",
        "operatingSystem": "linux",
        "architecture": go_arch(),
    })
}

/// `status.addresses`: the InternalIP (when known) and the Hostname.
fn addresses(cfg: &NodeConfig) -> Value {
    let mut out = Vec::new();
    if let Some(ip) = cfg.node_ip.as_deref().filter(|ip| !ip.is_empty()) {
        out.push(json!({"type": "InternalIP", "address": ip}));
    }
    out.push(json!({"type": "Hostname", "address": cfg.node.as_str()}));
    Value::Array(out)
}

/// The Ready condition, heartbeat `now`, in Ready state since `ready_since`.
fn ready_condition(now: OffsetDateTime, ready_since: OffsetDateTime) -> Value {
    json!({
        "type": "Ready",
        "status": "True",
        "reason": "KubeletReady",
        "message": "kubelet is posting ready status",
        "lastHeartbeatTime": format_rfc3339(now),
        "lastTransitionTime": format_rfc3339(ready_since),
    })
}

/// The `status` object shared by the registration and the status patch.
fn status(cfg: &NodeConfig, now: OffsetDateTime, ready_since: OffsetDateTime) -> Value {
    json!({
        "conditions": [ready_condition(now, ready_since)],
        "capacity": resources(cfg),
        "allocatable": resources(cfg),
        "nodeInfo": node_info(cfg),
        "addresses": addresses(cfg),
    })
}

/// The Node object of the registration (`insert` of `null/node/<node>`).
pub(crate) fn node_object(
    cfg: &NodeConfig,
    now: OffsetDateTime,
    ready_since: OffsetDateTime,
) -> Value {
    let mut status = status(cfg, now, ready_since);
    status["daemonEndpoints"] = json!({"kubeletEndpoint": {"Port": 10350}});
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": cfg.node.as_str(), "labels": labels(cfg)},
        "spec": {},
        "status": status,
    })
}

/// The node status patch (`patch` of `null/nodepatch/<node>`; sent as a JSON string).
pub(crate) fn status_patch(
    cfg: &NodeConfig,
    now: OffsetDateTime,
    ready_since: OffsetDateTime,
) -> Value {
    json!({"status": status(cfg, now, ready_since)})
}

/// The node's Lease (`update` of `kube-node-lease/lease/<node>`), renewed `now`.
pub(crate) fn lease(cfg: &NodeConfig, now: OffsetDateTime) -> Value {
    json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": cfg.node.as_str(), "namespace": LEASE_NAMESPACE},
        "spec": {
            "holderIdentity": cfg.node.as_str(),
            "leaseDurationSeconds": cfg.lease_duration_seconds,
            "renewTime": format_micro_time(now),
        },
    })
}

/// The namespace of node leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";

/// kubelet's final pod delete: grace 0, only if the UID is still `uid`.
pub(crate) fn delete_options(uid: &str) -> Value {
    json!({
        "kind": "DeleteOptions",
        "apiVersion": "v1",
        "gracePeriodSeconds": 0,
        "preconditions": {"uid": uid},
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::NodeResources;
    use ke_proto::NodeId;

    fn cfg() -> NodeConfig {
        let mut cfg = NodeConfig::new(NodeId::new("edge-1").unwrap());
        cfg.node_ip = Some("10.0.0.7".into());
        cfg.resources = NodeResources {
            cpu: "4".into(),
            memory: "8Gi".into(),
            pods: "110".into(),
        };
        cfg.labels.insert("zone".into(), "a".into());
        cfg
    }

    /// Goal: Go's GOARCH names. Method: map the common Rust arches.
    #[test]
    fn go_arch_names() {
        assert_eq!(go_arch_of("x86_64", true), "amd64");
        assert_eq!(go_arch_of("aarch64", true), "arm64");
        assert_eq!(go_arch_of("powerpc64", true), "ppc64le");
        assert_eq!(go_arch_of("riscv64", true), "riscv64");
    }

    /// Goal: MicroTime has six fractional digits. Method: format a time 123.456 µs past a second.
    #[test]
    fn micro_time() {
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_000_123_456).unwrap();
        assert_eq!(format_micro_time(t), "2023-11-14T22:13:20.000123Z");
    }

    /// Goal: the Node object carries what the cloud and kubectl read. Method: build it and check
    /// labels, resources, addresses, nodeInfo and the Ready condition.
    #[test]
    fn node_object_shape() {
        let now = OffsetDateTime::from_unix_timestamp(1_700_000_100).unwrap();
        let since = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let node = node_object(&cfg(), now, since);
        assert_eq!(node["kind"], "Node");
        assert_eq!(node["metadata"]["name"], "edge-1");
        let labels = &node["metadata"]["labels"];
        assert_eq!(labels["node-role.kubernetes.io/edge"], "");
        assert_eq!(labels["node-role.kubernetes.io/agent"], "");
        assert_eq!(labels["kubernetes.io/hostname"], "edge-1");
        assert_eq!(labels["kubernetes.io/arch"], go_arch());
        assert_eq!(labels["zone"], "a");
        let status = &node["status"];
        assert_eq!(status["capacity"]["cpu"], "4");
        assert_eq!(status["allocatable"]["pods"], "110");
        assert_eq!(status["addresses"][0]["address"], "10.0.0.7");
        assert_eq!(status["addresses"][1]["type"], "Hostname");
        assert_eq!(status["nodeInfo"]["operatingSystem"], "linux");
        let ready = &status["conditions"][0];
        assert_eq!(ready["status"], "True");
        assert_eq!(ready["lastHeartbeatTime"], "2023-11-14T22:15:00Z");
        assert_eq!(ready["lastTransitionTime"], "2023-11-14T22:13:20Z");
    }
}
