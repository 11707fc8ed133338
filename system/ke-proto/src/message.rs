//! [`Message`] = [`Header`] + [`Route`] + [`Content`]: beehive's `model.Message` with its exact
//! JSON keys, plus the constructors KubeEdge uses (`NewRespByMessage`, `NewErrorMessage`).
//!
//! *Decoding follows Go's `encoding/json`*: missing keys and `null` values become zero values,
//! unknown keys are ignored. Two Go quirks are *not* copied: Go matches keys
//! case-insensitively and lets a duplicate key overwrite the first; here keys are exact and a
//! duplicate is a decode error. Neither happens with a Go peer, which writes each key once in
//! its declared spelling. [`Message::validate`] reports what Go would silently accept.

use serde::{Deserialize, Deserializer, Serialize, de::Visitor};

use crate::{
    codec::{DecodeError, Field},
    content::Content,
    ids::MsgIdSource,
    names::{Group, Operation, ResourceType, Source},
    resource::ResourcePath,
};

/// One cloud<->edge message (one WebSocket frame).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct Message {
    /// Ids, timestamp and resource version.
    #[serde(default, deserialize_with = "nullable")]
    pub header: Header,
    /// Who sent it, to which group, what to do, on which resource. (Key `route`, not `router`.)
    #[serde(default, deserialize_with = "nullable")]
    pub route: Route,
    /// The body; `null` when absent.
    #[serde(default)]
    pub content: Content,
}

/// `header`: Go's `MessageHeader`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct Header {
    /// `msg_id`: UUIDv4 string; always written, even when empty (as Go does).
    #[serde(rename = "msg_id", default, deserialize_with = "nullable")]
    pub id: String,
    /// `parent_msg_id`: the request this message answers; omitted when empty.
    #[serde(
        rename = "parent_msg_id",
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "nullable"
    )]
    pub parent_id: String,
    /// `timestamp`: milliseconds since the Unix epoch; always written.
    #[serde(default, deserialize_with = "nullable")]
    pub timestamp: i64,
    /// `resourceversion`: the object's resourceVersion (decimal); omitted when empty.
    #[serde(
        rename = "resourceversion",
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "nullable"
    )]
    pub resource_version: String,
    /// `sync`: beehive's in-process request flag; omitted when false (Go clears it before a
    /// WebSocket write, so it is never set on the wire in practice).
    #[serde(
        default,
        skip_serializing_if = "is_false",
        deserialize_with = "nullable"
    )]
    pub sync: bool,
    /// `type`: beehive context type (`channel`, `unixsocket`); empty on the wire.
    #[serde(
        rename = "type",
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "nullable"
    )]
    pub message_type: String,
}

/// `route`: Go's `MessageRoute`. Every field is omitted when empty, as Go's `omitempty` does.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self")]
pub struct Route {
    /// `source`: the sending module.
    #[serde(
        default,
        skip_serializing_if = "Source::is_empty",
        deserialize_with = "nullable"
    )]
    pub source: Source,
    /// `destination`: unused between cloud and edge.
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "nullable"
    )]
    pub destination: String,
    /// `group`: the destination module group.
    #[serde(
        default,
        skip_serializing_if = "Group::is_empty",
        deserialize_with = "nullable"
    )]
    pub group: Group,
    /// `operation`.
    #[serde(
        default,
        skip_serializing_if = "Operation::is_empty",
        deserialize_with = "nullable"
    )]
    pub operation: Operation,
    /// `resource`: slash-separated path; parse with [`Message::resource_path`].
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "nullable"
    )]
    pub resource: String,
}

/// Implements the serde traits through the `remote = "Self"` derives, decoding from JSON
/// objects only: serde's derive would also accept `[…]` (fields by position), which Go refuses.
macro_rules! object_only_serde {
    ($($ty:ident),+) => {$(
        impl Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
                $ty::serialize(self, ser)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
                $ty::deserialize(ObjectOnly(de))
            }
        }
    )+};
}

object_only_serde!(Message, Header, Route);

/// A deserializer adaptor that asks for a map whatever the visitor wants.
struct ObjectOnly<D>(D);

impl<'de, D: Deserializer<'de>> Deserializer<'de> for ObjectOnly<D> {
    type Error = D::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_map(visitor)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct enum
        identifier ignored_any
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Go leaves a field at its zero value when the JSON holds `null`; so do we.
fn nullable<'de, D, T>(de: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Option::<T>::deserialize(de).map(Option::unwrap_or_default)
}

impl Route {
    /// A route with the four fields every message sets.
    pub fn new(
        source: impl Into<Source>,
        group: impl Into<Group>,
        operation: impl Into<Operation>,
        resource: impl Into<String>,
    ) -> Self {
        Self {
            source: source.into(),
            destination: String::new(),
            group: group.into(),
            operation: operation.into(),
            resource: resource.into(),
        }
    }
}

impl Message {
    /// A message with the given id, timestamp (ms), route and content.
    pub fn new(
        id: impl Into<String>,
        timestamp_ms: i64,
        route: Route,
        content: impl Into<Content>,
    ) -> Self {
        let header = Header {
            id: id.into(),
            timestamp: timestamp_ms,
            ..Header::default()
        };
        Self {
            header,
            route,
            content: content.into(),
        }
    }

    /// Sets `parent_msg_id`.
    pub fn with_parent(mut self, parent_id: impl Into<String>) -> Self {
        self.header.parent_id = parent_id.into();
        self
    }

    /// Sets `resourceversion`.
    pub fn with_resource_version(mut self, rv: impl Into<String>) -> Self {
        self.header.resource_version = rv.into();
        self
    }

    /// Sets the header `type`.
    pub fn with_type(mut self, message_type: impl Into<String>) -> Self {
        self.header.message_type = message_type.into();
        self
    }

    /// Replaces the content.
    pub fn with_content(mut self, content: impl Into<Content>) -> Self {
        self.content = content.into();
        self
    }

    /// Replaces the resource string.
    pub fn with_resource(mut self, resource: impl Into<String>) -> Self {
        self.route.resource = resource.into();
        self
    }

    /// The edge keepalive: `websocket`/`resource`/`keepalive` on resource `node`, content `"ping"`.
    pub fn keepalive(ids: &mut dyn MsgIdSource, timestamp_ms: i64) -> Self {
        let route = Route::new(
            Source::Websocket,
            Group::Resource,
            Operation::Keepalive,
            "node",
        );
        Self::new(
            ids.next_msg_id(),
            timestamp_ms,
            route,
            Content::text("ping"),
        )
    }

    /// Go's `NewRespByMessage`: new id, `parent_msg_id` = request id, operation `response`,
    /// same source, group, resource and header `type`.
    pub fn response_to(
        req: &Message,
        content: impl Into<Content>,
        ids: &mut dyn MsgIdSource,
        timestamp_ms: i64,
    ) -> Self {
        let route = Route {
            operation: Operation::Response,
            destination: String::new(),
            ..req.route.clone()
        };
        Self::new(ids.next_msg_id(), timestamp_ms, route, content)
            .with_parent(req.header.id.clone())
            .with_type(req.header.message_type.clone())
    }

    /// The ACK of a received message: [`Message::response_to`] with content `"OK"`.
    pub fn ack_for(msg: &Message, ids: &mut dyn MsgIdSource, timestamp_ms: i64) -> Self {
        Self::response_to(msg, Content::ok(), ids, timestamp_ms)
    }

    /// Go's `NewErrorMessage`: new id, `parent_msg_id` = request id, operation `error`, same
    /// resource, content = `text`. Like Go, source and group are left empty.
    pub fn error_for(
        req: &Message,
        text: impl Into<String>,
        ids: &mut dyn MsgIdSource,
        timestamp_ms: i64,
    ) -> Self {
        let route = Route {
            operation: Operation::Error,
            resource: req.route.resource.clone(),
            ..Route::default()
        };
        Self::new(ids.next_msg_id(), timestamp_ms, route, Content::text(text))
            .with_parent(req.header.id.clone())
    }

    /// True for the edge heartbeat (operation `keepalive`), which CloudHub checks first.
    pub fn is_keepalive(&self) -> bool {
        self.route.operation == Operation::Keepalive
    }

    /// True if the message answers another (`parent_msg_id` set): the edge hands such frames to
    /// the waiting requester instead of MetaManager.
    pub fn is_reply(&self) -> bool {
        !self.header.parent_id.is_empty()
    }

    /// `route.resource` parsed as an edge-relative path.
    pub fn resource_path(&self) -> ResourcePath {
        ResourcePath::parse(&self.route.resource)
    }

    /// The resource type as CloudHub reads it: segment 3 of a cloud-internal
    /// `node/<id>/<ns>/<type>/…` path, segment 1 of an edge-relative `<ns>/<type>[/<name>]`.
    pub fn resource_type(&self) -> Option<ResourceType> {
        let segs: Vec<&str> = self.route.resource.split('/').collect();
        let seg = match segs.as_slice() {
            ["node", _, _, kind, ..] => kind,
            [_, kind] | [_, kind, _] => kind,
            _ => return None,
        };
        (!seg.is_empty()).then(|| ResourceType::from(*seg))
    }

    /// Checks what Go accepts silently: a message must have a `msg_id` and an `operation`.
    pub fn validate(&self) -> Result<(), DecodeError> {
        if self.header.id.is_empty() {
            return Err(DecodeError::MissingField(Field::MsgId));
        }
        if self.route.operation.is_empty() {
            return Err(DecodeError::MissingField(Field::Operation));
        }
        Ok(())
    }
}
