//! Resource path forms (§1.4) and the cloud-internal node prefix.

use ke_proto::{NodeId, ResourcePath, ResourceType, strip_node_prefix};

fn obj(ns: Option<&str>, kind: ResourceType, name: Option<&str>) -> ResourcePath {
    ResourcePath::object(ns, kind, name)
}

/// Goal: every form of §1.4 parses to its structured variant and formats back verbatim.
/// Method: a table of (string, expected path).
#[test]
fn forms_parse_and_format() {
    let device = |kind| ResourcePath::Device {
        namespace: "ns".to_owned(),
        name: "dev".to_owned(),
        kind,
    };
    let cases = [
        (
            "default/pod/nginx",
            obj(Some("default"), ResourceType::Pod, Some("nginx")),
        ),
        (
            "null/node/edge-1",
            obj(None, ResourceType::Node, Some("edge-1")),
        ),
        ("default/pod", obj(Some("default"), ResourceType::Pod, None)),
        (
            "kube-node-lease/lease/edge-1",
            obj(Some("kube-node-lease"), ResourceType::Lease, Some("edge-1")),
        ),
        (
            "ns/widget/w",
            obj(
                Some("ns"),
                ResourceType::Other("widget".to_owned()),
                Some("w"),
            ),
        ),
        (
            "device/ns/dev/twin/edge_updated",
            device(ResourceType::TwinEdgeUpdated),
        ),
        (
            "device/ns/dev/state/update",
            device(ResourceType::StateUpdate),
        ),
        ("membership", ResourcePath::Kind(ResourceType::Membership)),
        ("twin", ResourcePath::Kind(ResourceType::Twin)),
        ("node", ResourcePath::Kind(ResourceType::Node)),
        (
            "membership/detail",
            ResourcePath::Kind(ResourceType::MembershipDetail),
        ),
        ("k8s/ca.crt", ResourcePath::Kind(ResourceType::K8sCa)),
        (
            "rule/r1",
            ResourcePath::Rule {
                kind: ResourceType::Rule,
                name: "r1".to_owned(),
            },
        ),
        (
            "ruleendpoint/e",
            ResourcePath::Rule {
                kind: ResourceType::RuleEndpoint,
                name: "e".to_owned(),
            },
        ),
        ("", ResourcePath::Raw(String::new())),
        ("a//b", ResourcePath::Raw("a//b".to_owned())),
        (
            "$hw/events/upload/x/y/z",
            ResourcePath::Raw("$hw/events/upload/x/y/z".to_owned()),
        ),
        ("/default/pod", ResourcePath::Raw("/default/pod".to_owned())),
    ];
    for (text, want) in cases {
        let got = ResourcePath::parse(text);
        assert_eq!(got, want, "parse {text:?}");
        assert_eq!(got.to_string(), text, "format {text:?}");
    }
}

/// Goal: accessors read the parts of each form. Method: inspect an object, a cluster-scoped
/// object, a device and a bare type.
#[test]
fn accessors() {
    let p = ResourcePath::parse("default/configmap/app-cfg");
    assert_eq!(
        (p.namespace(), p.kind(), p.name()),
        (
            Some("default"),
            Some(&ResourceType::ConfigMap),
            Some("app-cfg")
        )
    );
    let n = ResourcePath::parse("null/node/edge-1");
    assert_eq!((n.namespace(), n.name()), (None, Some("edge-1")));
    let d = ResourcePath::parse("device/ns/dev/twin/edge_updated");
    assert_eq!((d.namespace(), d.name()), (Some("ns"), Some("dev")));
    assert_eq!(ResourcePath::parse("twin").name(), None);
    assert_eq!(ResourcePath::parse("a//b").kind(), None);
}

/// Goal: the cloud-internal prefix is added and stripped losslessly, for object, device-style
/// and bare-node resources; strings without it are refused. Method: round-trip and edge cases.
#[test]
fn node_prefix() {
    let node = NodeId::new("edge-1").expect("valid id");
    let pod = ResourcePath::parse("default/pod/nginx");
    let cloud = pod.with_node_prefix(&node);
    assert_eq!(cloud, "node/edge-1/default/pod/nginx");
    assert_eq!(
        strip_node_prefix(&cloud),
        Some((node.clone(), "default/pod/nginx"))
    );
    assert_eq!(ResourcePath::parse_cloud(&cloud), Some((node.clone(), pod)));

    let membership = ResourcePath::Kind(ResourceType::Membership).with_node_prefix(&node);
    assert_eq!(membership, "node/edge-1/membership");
    let (id, rest) = ResourcePath::parse_cloud(&membership).expect("prefixed");
    assert_eq!(
        (id, rest),
        (node.clone(), ResourcePath::Kind(ResourceType::Membership))
    );

    assert_eq!(strip_node_prefix("node/edge-1"), Some((node, "")));
    assert_eq!(ResourcePath::parse_cloud("node/edge-1"), None);
    assert_eq!(strip_node_prefix("node//x"), None);
    assert_eq!(strip_node_prefix("nodes/edge-1/x"), None);
    assert_eq!(strip_node_prefix("default/pod/x"), None);
    assert!(NodeId::new("").is_err() && NodeId::new("a/b").is_err());
}
