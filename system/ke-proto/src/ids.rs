//! Identifiers: the [`NodeId`] newtype and the [`MsgIdSource`] seam for message ids.
//!
//! This crate never makes ids itself (no UUIDs from the OS): callers pass a source, usually
//! backed by `ke_core::Entropy::uuid_v4`, or [`SequentialIds`] in tests.

use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The name of an edge node (the Kubernetes `Node` name and CloudHub's `node_id` header).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NodeId(String);

/// Why a string is not a [`NodeId`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NodeIdError {
    /// The id was empty.
    #[error("node id is empty")]
    Empty,
    /// The id contains `/`, which would break resource paths.
    #[error("node id {0:?} contains '/'")]
    Slash(String),
}

impl NodeId {
    /// Checks that `id` is usable as a resource path segment (non-empty, no `/`).
    pub fn new(id: impl Into<String>) -> Result<Self, NodeIdError> {
        let id = id.into();
        if id.is_empty() {
            Err(NodeIdError::Empty)
        } else if id.contains('/') {
            Err(NodeIdError::Slash(id))
        } else {
            Ok(Self(id))
        }
    }

    /// The node name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The node name, by value.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl TryFrom<String> for NodeId {
    type Error = NodeIdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl From<NodeId> for String {
    fn from(id: NodeId) -> Self {
        id.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for NodeId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Where new `msg_id`s come from. Implemented for every `FnMut() -> String`.
pub trait MsgIdSource {
    /// A fresh, unique message id (KubeEdge uses UUIDv4 strings).
    fn next_msg_id(&mut self) -> String;
}

impl<F: FnMut() -> String> MsgIdSource for F {
    fn next_msg_id(&mut self) -> String {
        self()
    }
}

/// Deterministic ids `<prefix>-<n>` for tests and simulations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SequentialIds {
    prefix: String,
    next: u64,
}

impl SequentialIds {
    /// Ids `<prefix>-1`, `<prefix>-2`, ...
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
            next: 1,
        }
    }
}

impl MsgIdSource for SequentialIds {
    fn next_msg_id(&mut self) -> String {
        let id = format!("{}-{}", self.prefix, self.next);
        self.next = self.next.wrapping_add(1);
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: id sources are deterministic and closures qualify. Method: draw from
    /// `SequentialIds` and from a closure through `&mut dyn MsgIdSource`.
    #[test]
    fn id_sources() {
        let mut seq = SequentialIds::new("m");
        let ids: &mut dyn MsgIdSource = &mut seq;
        assert_eq!(
            (ids.next_msg_id(), ids.next_msg_id()),
            ("m-1".to_owned(), "m-2".to_owned())
        );
        let mut n = 0;
        let mut closure = || {
            n += 1;
            format!("c{n}")
        };
        let ids: &mut dyn MsgIdSource = &mut closure;
        assert_eq!(ids.next_msg_id(), "c1");
    }

    /// Goal: `NodeId` accepts path segments only and serialises as a plain string. Method:
    /// valid, empty and slashed ids; serde round trip and rejection.
    #[test]
    fn node_id() {
        let id = NodeId::new("edge-1").expect("valid");
        assert_eq!(serde_json::to_string(&id).expect("json"), "\"edge-1\"");
        assert_eq!(
            serde_json::from_str::<NodeId>("\"edge-1\"").expect("parses"),
            id
        );
        assert!(serde_json::from_str::<NodeId>("\"a/b\"").is_err());
        assert_eq!(NodeId::new(""), Err(NodeIdError::Empty));
    }
}
