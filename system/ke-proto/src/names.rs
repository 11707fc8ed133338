//! The closed vocabularies of a route: [`Operation`], [`Source`], [`Group`] and [`ResourceType`].
//!
//! KubeEdge's Go code uses bare strings for all four, and peers of other versions send names
//! this crate has never heard of, so every enum carries an `Other(String)` escape. The mapping
//! is lossless: `T::from(s).as_str() == s` for every string `s`.
//!
//! *Canonical form.* `Other` never holds a name that has its own variant (`From<&str>` makes
//! sure of that); a hand-built `Other("insert")` serialises as `"insert"` and decodes back as
//! `Insert`. The empty string is `Other("")`, which is also `Default` and means "absent" (a
//! route omits it on the wire, as Go's `omitempty` does).

/// Defines a string-backed enum with known variants plus `Other(String)`.
macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
            /// A name this crate does not know, kept verbatim.
            Other(String),
        }

        impl $name {
            /// Every known variant, in declaration order (used by tests and generators).
            pub const KNOWN: &'static [$name] = &[ $( $name::$variant, )+ ];

            /// The wire spelling.
            pub fn as_str(&self) -> &str {
                match self {
                    $( $name::$variant => $text, )+
                    $name::Other(s) => s.as_str(),
                }
            }

            /// True for the empty name (`Other("")`), which the wire omits.
            pub fn is_empty(&self) -> bool {
                self.as_str().is_empty()
            }

            /// The known variant spelled `s`, if any (no allocation).
            pub fn known(s: &str) -> Option<Self> {
                match s {
                    $( $text => Some($name::$variant), )+
                    _ => None,
                }
            }
        }

        impl Default for $name {
            fn default() -> Self {
                $name::Other(String::new())
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self::known(s).unwrap_or_else(|| $name::Other(s.to_owned()))
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self::known(&s).unwrap_or($name::Other(s))
            }
        }

        impl std::str::FromStr for $name {
            type Err = std::convert::Infallible;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Ok(Self::from(s))
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.as_str() == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
                ser.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
                de.deserialize_str(crate::names::NameVisitor::<$name>::new())
            }
        }
    };
}

/// Serde visitor shared by the string enums: borrows when it can, so known names never
/// allocate while decoding.
pub(crate) struct NameVisitor<T>(std::marker::PhantomData<T>);

impl<T> NameVisitor<T> {
    pub(crate) fn new() -> Self {
        Self(std::marker::PhantomData)
    }
}

impl<T: for<'a> From<&'a str> + From<String>> serde::de::Visitor<'_> for NameVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<T, E> {
        Ok(T::from(v))
    }

    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<T, E> {
        Ok(T::from(v))
    }
}

string_enum! {
    /// `route.operation`: what to do with the resource (beehive, edge, cloudhub, viaduct, CSI
    /// and node-task constants).
    Operation {
        /// `insert`: create (cloud→edge for new objects, edge→cloud for creates).
        Insert = "insert",
        /// `delete`.
        Delete = "delete",
        /// `query`: edge asks the cloud for an object.
        Query = "query",
        /// `update`.
        Update = "update",
        /// `patch`: content is a JSON string holding the patch.
        Patch = "patch",
        /// `upload`: MQTT payload forwarded to the cloud router (group `user`).
        Upload = "upload",
        /// `response`: reply or ACK; `parent_msg_id` names the request.
        Response = "response",
        /// `error`: error reply; content is the error text.
        Error = "error",
        /// `unhold-upgrade`.
        UnholdUpgrade = "unhold-upgrade",
        /// `keepalive`: edge heartbeat every 15 s.
        Keepalive = "keepalive",
        /// `connect` (edge-internal).
        Connect = "connect",
        /// `subscribe`.
        Subscribe = "subscribe",
        /// `unsubscribe`.
        Unsubscribe = "unsubscribe",
        /// `message`.
        Message = "message",
        /// `publish`.
        Publish = "publish",
        /// `get_result`.
        GetResult = "get_result",
        /// `start`.
        Start = "start",
        /// `stop`.
        Stop = "stop",
        /// `get` (device membership/twin get).
        Get = "get",
        /// `list`.
        List = "list",
        /// `detail`.
        Detail = "detail",
        /// `delta`.
        Delta = "delta",
        /// `document`.
        Document = "document",
        /// `updated`.
        Updated = "updated",
        /// `deleted`.
        Deleted = "deleted",
        /// `connected`: cloud-internal node connect event.
        Connected = "connected",
        /// `disconnected`: cloud-internal node disconnect event.
        Disconnected = "disconnected",
        /// `header`: viaduct control op.
        Header = "header",
        /// `config`: viaduct control op.
        Config = "config",
        /// `ping`: viaduct control op.
        Ping = "ping",
        /// `pong`: viaduct control op.
        Pong = "pong",
        /// `createvolume` (CSI, no ACK).
        CreateVolume = "createvolume",
        /// `deletevolume` (CSI, no ACK).
        DeleteVolume = "deletevolume",
        /// `controllerpublishvolume` (CSI, no ACK).
        ControllerPublishVolume = "controllerpublishvolume",
        /// `controllerunpublishvolume` (CSI, no ACK).
        ControllerUnpublishVolume = "controllerunpublishvolume",
        /// `applicationResponse` (MetaServer / dynamic controller, no ACK).
        ApplicationResponse = "applicationResponse",
        /// `prepull` (node task).
        Prepull = "prepull",
        /// `upgrade` (node task).
        Upgrade = "upgrade",
        /// `UpdateNodeActionStatus` (node task).
        UpdateNodeActionStatus = "UpdateNodeActionStatus",
    }
}

impl Operation {
    /// True for the four CSI volume operations, which are never ACKed.
    pub fn is_volume_operation(&self) -> bool {
        matches!(
            self,
            Self::CreateVolume
                | Self::DeleteVolume
                | Self::ControllerPublishVolume
                | Self::ControllerUnpublishVolume
        )
    }
}

string_enum! {
    /// `route.source`: the sending module (cloud and edge module names).
    Source {
        /// `cloudhub`.
        CloudHub = "cloudhub",
        /// `edgecontroller`: pods, configmaps, secrets, nodes downstream.
        EdgeController = "edgecontroller",
        /// `devicecontroller`.
        DeviceController = "devicecontroller",
        /// `synccontroller`: resync after lost ACKs.
        SyncController = "synccontroller",
        /// `dynamiccontroller`.
        DynamicController = "dynamiccontroller",
        /// `policycontroller`.
        PolicyController = "policycontroller",
        /// `taskmanager` (cloud or edge; never ACKed downstream).
        TaskManager = "taskmanager",
        /// `nodeupgradejobcontroller` (never ACKed downstream).
        NodeUpgradeJobController = "nodeupgradejobcontroller",
        /// `cloudStream`.
        CloudStream = "cloudStream",
        /// `router`.
        Router = "router",
        /// `router_eventbus`.
        RouterEventBus = "router_eventbus",
        /// `router_servicebus`.
        RouterServiceBus = "router_servicebus",
        /// `edged`: the edge kubelet.
        Edged = "edged",
        /// `eventbus`.
        EventBus = "eventbus",
        /// `servicebus`.
        ServiceBus = "servicebus",
        /// `edgestream`.
        EdgeStream = "edgestream",
        /// `twin`: DeviceTwin.
        Twin = "twin",
        /// `websocket`: EdgeHub's module name (keepalives).
        Websocket = "websocket",
        /// `metamanager`.
        MetaManager = "metamanager",
        /// `metaserver`: routed to the dynamic controller upstream.
        MetaServer = "metaserver",
        /// `bus`: MQTT messages forwarded by EventBus.
        Bus = "bus",
    }
}

string_enum! {
    /// `route.group`: the destination module group.
    Group {
        /// `resource`: Kubernetes objects (MetaManager on the edge).
        Resource = "resource",
        /// `func`.
        Func = "func",
        /// `twin`: DeviceTwin.
        Twin = "twin",
        /// `user`: EventBus/ServiceBus traffic (never ACKed).
        User = "user",
        /// `meta`: MetaManager.
        Meta = "meta",
        /// `hub`: EdgeHub.
        Hub = "hub",
        /// `bus`: EventBus.
        Bus = "bus",
        /// `edged`.
        Edged = "edged",
        /// `edgestream`.
        EdgeStream = "edgestream",
        /// `taskmanager`.
        TaskManager = "taskmanager",
        /// `cloudhub` (cloud-internal).
        CloudHub = "cloudhub",
        /// `edgecontroller` (cloud-internal).
        EdgeController = "edgecontroller",
        /// `devicecontroller` (cloud-internal).
        DeviceController = "devicecontroller",
        /// `synccontroller` (cloud-internal).
        SyncController = "synccontroller",
        /// `dynamiccontroller` (cloud-internal).
        DynamicController = "dynamiccontroller",
    }
}

string_enum! {
    /// A resource type: the `<type>` segment of a resource path, or a whole well-known path
    /// such as `k8s/ca.crt` or `membership/detail`.
    ResourceType {
        /// `pod`.
        Pod = "pod",
        /// `event`.
        Event = "event",
        /// `configmap`.
        ConfigMap = "configmap",
        /// `serviceaccounttoken`.
        ServiceAccountToken = "serviceaccounttoken",
        /// `secret`.
        Secret = "secret",
        /// `node` (also the keepalive resource).
        Node = "node",
        /// `podlist`.
        PodList = "podlist",
        /// `podstatus` (legacy pod status update).
        PodStatus = "podstatus",
        /// `podpatch`: pod status strategic-merge patch.
        PodPatch = "podpatch",
        /// `nodestatus` (deprecated node status update).
        NodeStatus = "nodestatus",
        /// `nodepatch`: node status strategic-merge patch.
        NodePatch = "nodepatch",
        /// `rule`.
        Rule = "rule",
        /// `ruleendpoint`.
        RuleEndpoint = "ruleendpoint",
        /// `rulestatus`.
        RuleStatus = "rulestatus",
        /// `lease`.
        Lease = "lease",
        /// `serviceaccountaccess`.
        ServiceAccountAccess = "serviceaccountaccess",
        /// `certificatesigningrequest`.
        CertificateSigningRequest = "certificatesigningrequest",
        /// `k8s/ca.crt`: the edge asks for the Kubernetes CA.
        K8sCa = "k8s/ca.crt",
        /// `service`.
        Service = "service",
        /// `endpoints`.
        Endpoints = "endpoints",
        /// `persistentvolume`.
        PersistentVolume = "persistentvolume",
        /// `persistentvolumeclaim`.
        PersistentVolumeClaim = "persistentvolumeclaim",
        /// `volumeattachment`.
        VolumeAttachment = "volumeattachment",
        /// `volume` (CSI).
        Volume = "volume",
        /// `device`.
        Device = "device",
        /// `devicemodel`.
        DeviceModel = "devicemodel",
        /// `membership`: cloud→edge device membership.
        Membership = "membership",
        /// `membership/detail`: edge asks for its device membership.
        MembershipDetail = "membership/detail",
        /// `twin`.
        Twin = "twin",
        /// `twin/edge_updated`: edge→cloud twin sync.
        TwinEdgeUpdated = "twin/edge_updated",
        /// `twin/cloud_updated`: cloud→edge twin sync.
        TwinCloudUpdated = "twin/cloud_updated",
        /// `state/update`: edge→cloud device state.
        StateUpdate = "state/update",
    }
}

impl ResourceType {
    /// True for the known types spelled with a `/` (`k8s/ca.crt`, `twin/edge_updated`, ...).
    pub fn is_composite(&self) -> bool {
        self.as_str().contains('/')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: every known spelling maps to its own variant and back, and no two variants share
    /// a spelling. Method: walk `KNOWN` of each enum; check `Other` stays `Other`.
    #[test]
    fn known_names_are_distinct_and_round_trip() {
        fn check<T: Clone + PartialEq + std::fmt::Debug + for<'a> From<&'a str>>(
            known: &[T],
            as_str: fn(&T) -> &str,
        ) {
            let mut seen = std::collections::BTreeSet::new();
            for v in known {
                assert!(seen.insert(as_str(v).to_owned()), "duplicate {v:?}");
                assert_eq!(&T::from(as_str(v)), v);
            }
        }
        check(Operation::KNOWN, Operation::as_str);
        check(Source::KNOWN, Source::as_str);
        check(Group::KNOWN, Group::as_str);
        check(ResourceType::KNOWN, ResourceType::as_str);
        assert_eq!(
            Operation::from("Insert"),
            Operation::Other("Insert".to_owned())
        );
        assert!(Operation::default().is_empty());
        assert!(ResourceType::K8sCa.is_composite() && !ResourceType::Pod.is_composite());
    }
}
