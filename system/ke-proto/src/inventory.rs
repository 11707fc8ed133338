//! The edge's inventory: edgefleet's incremental-resync message (not in KubeEdge).
//!
//! After every connect the edge sends what its MetaStore holds: per stored object its key (the
//! edge-relative resource path, `default/pod/web`), UID and resourceVersion.
//! The cloud compares it with the objects the node should hold and sends only the difference:
//! objects missing or older at the edge, and deletes for UIDs the edge holds that the cloud no
//! longer has for it. The state lives where it is already persisted (the edge commits before
//! it ACKs), so the resync costs no API-server writes; KubeEdge's ObjectSync CRs cost one
//! write per object per node (see ARCHITECTURE.md, "Incremental resync").
//!
//! Wire form: source `metamanager`, group `resource`, operation `insert`, resource
//! `null/inventory/<node>`, content `{"objects": {"<key>": {"uid": "<uid>", "rv": "<rv>"}, ...}}`
//! (pods add `"digest"`, see [`crate::desired`]). A stock KubeEdge
//! cloudcore routes it to its EdgeController, which ignores the unknown resource type; a stock
//! edgecore never sends it, and our cloudcore then falls back to sending everything.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{
    Content, ContentError, Group, Message, MsgIdSource, NULL_NAMESPACE, NodeId, Operation,
    ResourcePath, Route, Source,
};

/// Annotation on the content of a `delete` that *releases* an object rather than reporting
/// its deletion: a configmap or secret that no pod of the node references any more. The edge
/// drops its copy without remembering the UID as deleted, so a later reference brings it back.
pub const RELEASED_ANNOTATION: &str = "edgefleet.io/released";

/// The resource type of the inventory message.
pub const RESOURCE_TYPE: &str = "inventory";

/// What an edge holds, by key (the edge-relative resource path), ordered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inventory {
    /// Key → identity and version.
    pub objects: BTreeMap<String, Held>,
}

/// One object an edge holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Held {
    /// `metadata.uid` (empty when unknown).
    #[serde(default)]
    pub uid: String,
    /// `metadata.resourceVersion` (empty when unknown).
    #[serde(default)]
    pub rv: String,
    /// For pods: [`desired_digest`](crate::desired::desired_digest) of the stored object. The
    /// cloud sends no status echoes, so a pod's `rv` at the edge may be older than the cloud's
    /// while its content is current; equal digests say so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

/// Why a message is not a valid inventory.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// The resource is not `null/inventory/<node>`.
    #[error("resource {resource:?} is not null/inventory/<node>")]
    Resource {
        /// The resource string received.
        resource: String,
    },
    /// The content is not `{"objects": {...}}`.
    #[error("inventory content is malformed")]
    Content(#[source] ContentError),
}

impl Inventory {
    /// The message `node` sends after it connects.
    pub fn to_message(&self, node: &NodeId, ids: &mut dyn MsgIdSource, now_ms: i64) -> Message {
        let resource = format!("{NULL_NAMESPACE}/{RESOURCE_TYPE}/{}", node.as_str());
        let route = Route::new(
            Source::MetaManager,
            Group::Resource,
            Operation::Insert,
            resource,
        );
        let content = Content::from_serialize(self).unwrap_or_else(|_| Content::null());
        Message::new(ids.next_msg_id(), now_ms, route, content)
    }

    /// True if `msg` (edge-relative resource) is an inventory message.
    pub fn is_inventory(msg: &Message) -> bool {
        msg.resource_type()
            .is_some_and(|k| k.as_str() == RESOURCE_TYPE)
    }

    /// Reads an inventory message; returns the node it names and the inventory.
    pub fn from_message(msg: &Message) -> Result<(String, Self), InventoryError> {
        let bad = || InventoryError::Resource {
            resource: msg.route.resource.clone(),
        };
        let ResourcePath::Object {
            kind,
            name: Some(name),
            ..
        } = msg.resource_path()
        else {
            return Err(bad());
        };
        if kind.as_str() != RESOURCE_TYPE {
            return Err(bad());
        }
        let inv = msg.content.to_typed().map_err(InventoryError::Content)?;
        Ok((name, inv))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SequentialIds;

    #[test]
    fn round_trip_through_a_frame() {
        let node = NodeId::new("edge-1").unwrap();
        let mut inv = Inventory::default();
        let held = |uid: &str, rv: &str| Held {
            uid: uid.into(),
            rv: rv.into(),
            digest: (!rv.is_empty()).then(|| format!("d{rv}")),
        };
        inv.objects
            .insert("default/pod/a".into(), held("uid-a", "12"));
        inv.objects
            .insert("default/configmap/b".into(), held("uid-b", ""));
        let mut ids = SequentialIds::new("t");
        let msg = inv.to_message(&node, &mut ids, 5);
        assert_eq!(msg.route.resource, "null/inventory/edge-1");
        let decoded = crate::decode(&crate::encode(&msg)).unwrap();
        assert!(Inventory::is_inventory(&decoded));
        let (name, back) = Inventory::from_message(&decoded).unwrap();
        assert_eq!(name, "edge-1");
        assert_eq!(back, inv);
    }

    #[test]
    fn rejects_other_resources_and_bad_content() {
        let mut ids = SequentialIds::new("t");
        let route = Route::new(
            Source::MetaManager,
            Group::Resource,
            Operation::Insert,
            "null/node/e",
        );
        let msg = Message::new(ids.next_msg_id(), 0, route, Content::null());
        assert!(!Inventory::is_inventory(&msg));
        assert!(matches!(
            Inventory::from_message(&msg),
            Err(InventoryError::Resource { .. })
        ));
        let msg = msg
            .with_resource("null/inventory/e")
            .with_content(Content::text("x"));
        assert!(matches!(
            Inventory::from_message(&msg),
            Err(InventoryError::Content(_))
        ));
    }
}
