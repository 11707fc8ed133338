//! [`ResourcePath`]: the slash-separated `route.resource` string, parsed.
//!
//! Forms (all edge-relative, i.e. as they travel on the wire):
//! - `<namespace>/<type>/<name>`: one object; namespace `null` means cluster-scoped (`None`);
//! - `<namespace>/<type>`: all objects of a type (list/query);
//! - `device/<ns>/<name>/<a>/<b>`: a device event from the edge (`twin/edge_updated`,
//!   `state/update`);
//! - `rule/<name>`, `ruleendpoint/<name>`: router rules;
//! - a bare type: `membership`, `twin`, `node` (keepalive), `membership/detail`, `k8s/ca.crt`.
//!
//! Inside CloudCore the same strings carry a `node/<nodeId>/` prefix ([`strip_node_prefix`],
//! [`ResourcePath::with_node_prefix`]). The two forms are ambiguous in general (a namespace may
//! be called `node`), so the caller says which one it holds.
//!
//! Parsing never fails and is lossless: whatever does not fit a structured form becomes
//! [`ResourcePath::Raw`], and `ResourcePath::parse(s).to_string() == s` for every `s`.

use std::{convert::Infallible, fmt, str::FromStr};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{ids::NodeId, names::ResourceType};

/// The namespace segment KubeEdge writes for cluster-scoped objects (`models.NullNamespace`).
pub const NULL_NAMESPACE: &str = "null";

/// The first segment of the cloud-internal prefix `node/<nodeId>/`.
pub const NODE_PREFIX: &str = "node";

/// A parsed `route.resource`. Build with the constructors to stay canonical (see module docs).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ResourcePath {
    /// `<namespace>/<type>[/<name>]`.
    Object {
        /// `None` for cluster-scoped objects (`null` on the wire).
        namespace: Option<String>,
        /// The resource type segment.
        kind: ResourceType,
        /// `None` addresses every object of the type.
        name: Option<String>,
    },
    /// `device/<namespace>/<name>/<kind>`, where `kind` has two segments.
    Device {
        /// Device namespace.
        namespace: String,
        /// Device name.
        name: String,
        /// `twin/edge_updated`, `state/update`, ...
        kind: ResourceType,
    },
    /// `rule/<name>` or `ruleendpoint/<name>`.
    Rule {
        /// [`ResourceType::Rule`] or [`ResourceType::RuleEndpoint`].
        kind: ResourceType,
        /// The rule name.
        name: String,
    },
    /// A bare type: `membership`, `twin`, `node`, `membership/detail`, `k8s/ca.crt`, ...
    Kind(ResourceType),
    /// Anything else, verbatim (MQTT topics, base64 topics, malformed paths).
    Raw(String),
}

impl ResourcePath {
    /// `<namespace>/<kind>/<name>` (namespace `None` or `"null"` is cluster-scoped).
    pub fn object(namespace: Option<&str>, kind: ResourceType, name: Option<&str>) -> Self {
        Self::Object {
            namespace: namespace
                .filter(|ns| *ns != NULL_NAMESPACE)
                .map(str::to_owned),
            kind,
            name: name.map(str::to_owned),
        }
    }

    /// Parses an edge-relative resource string. Never fails; see the module docs.
    pub fn parse(s: &str) -> Self {
        let parsed = parse_structured(s);
        match parsed {
            Some(p) if p.to_string() == s => p,
            _ => Self::Raw(s.to_owned()),
        }
    }

    /// Parses a cloud-internal `node/<nodeId>/<rest>` string into the node and the
    /// edge-relative rest. `None` if there is no node prefix or the rest is empty.
    pub fn parse_cloud(s: &str) -> Option<(NodeId, Self)> {
        let (node, rest) = strip_node_prefix(s)?;
        (!rest.is_empty()).then(|| (node, Self::parse(rest)))
    }

    /// The cloud-internal form `node/<nodeId>/<self>`.
    pub fn with_node_prefix(&self, node: &NodeId) -> String {
        format!("{NODE_PREFIX}/{node}/{self}")
    }

    /// The namespace of an object or device path (`None` when cluster-scoped or not an object).
    pub fn namespace(&self) -> Option<&str> {
        match self {
            Self::Object { namespace, .. } => namespace.as_deref(),
            Self::Device { namespace, .. } => Some(namespace),
            _ => None,
        }
    }

    /// The resource type, if the path has one.
    pub fn kind(&self) -> Option<&ResourceType> {
        match self {
            Self::Object { kind, .. }
            | Self::Device { kind, .. }
            | Self::Rule { kind, .. }
            | Self::Kind(kind) => Some(kind),
            Self::Raw(_) => None,
        }
    }

    /// The object, device or rule name, if the path has one.
    pub fn name(&self) -> Option<&str> {
        match self {
            Self::Object { name, .. } => name.as_deref(),
            Self::Device { name, .. } | Self::Rule { name, .. } => Some(name),
            Self::Kind(_) | Self::Raw(_) => None,
        }
    }
}

/// Splits a cloud-internal `node/<nodeId>/<rest>` into the node and `<rest>` (`""` for a bare
/// `node/<nodeId>`, the resource of connect events). `None` if the prefix is absent.
pub fn strip_node_prefix(resource: &str) -> Option<(NodeId, &str)> {
    let rest = resource.strip_prefix(NODE_PREFIX)?.strip_prefix('/')?;
    let (id, rest) = rest.split_once('/').unwrap_or((rest, ""));
    let node = NodeId::new(id).ok()?;
    Some((node, rest))
}

/// The structured reading of `s`, or `None` if no form fits.
fn parse_structured(s: &str) -> Option<ResourcePath> {
    let segs: Vec<&str> = s.split('/').collect();
    if segs.iter().any(|seg| seg.is_empty()) {
        return None;
    }
    if segs.len() == 1 || ResourceType::known(s).is_some_and(|k| k.is_composite()) {
        return Some(ResourcePath::Kind(ResourceType::from(s)));
    }
    match segs.as_slice() {
        ["device", ns, name, a, b] => Some(ResourcePath::Device {
            namespace: (*ns).to_owned(),
            name: (*name).to_owned(),
            kind: ResourceType::from(format!("{a}/{b}")),
        }),
        [kind @ ("rule" | "ruleendpoint"), name] => Some(ResourcePath::Rule {
            kind: ResourceType::from(*kind),
            name: (*name).to_owned(),
        }),
        [ns, kind] => Some(ResourcePath::object(
            Some(ns),
            ResourceType::from(*kind),
            None,
        )),
        [ns, kind, name] => Some(ResourcePath::object(
            Some(ns),
            ResourceType::from(*kind),
            Some(name),
        )),
        _ => None,
    }
}

impl fmt::Display for ResourcePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Object {
                namespace,
                kind,
                name,
            } => {
                let ns = namespace.as_deref().unwrap_or(NULL_NAMESPACE);
                write!(f, "{ns}/{kind}")?;
                match name {
                    Some(name) => write!(f, "/{name}"),
                    None => Ok(()),
                }
            }
            Self::Device {
                namespace,
                name,
                kind,
            } => write!(f, "device/{namespace}/{name}/{kind}"),
            Self::Rule { kind, name } => write!(f, "{kind}/{name}"),
            Self::Kind(kind) => f.write_str(kind.as_str()),
            Self::Raw(s) => f.write_str(s),
        }
    }
}

impl FromStr for ResourcePath {
    type Err = Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self::parse(s))
    }
}

impl From<&str> for ResourcePath {
    fn from(s: &str) -> Self {
        Self::parse(s)
    }
}

impl Serialize for ResourcePath {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        ser.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ResourcePath {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        let s = String::deserialize(de)?;
        Ok(Self::parse(&s))
    }
}
