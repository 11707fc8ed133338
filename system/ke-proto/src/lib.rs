//! KubeEdge's cloud<->edge wire model, pure and sans-IO (no tokio, no I/O, no clock, no OS
//! randomness). What a compatible peer must match is in
//! `/work/shared/reference/kubeedge-wire.md` §0–§2; this crate is its executable form.
//!
//! Module map:
//! - [`message`]: [`Message`] = [`Header`] + [`Route`] + [`Content`] with beehive's exact JSON
//!   keys (`msg_id`, `parent_msg_id`, `timestamp`, `resourceversion`, `sync`, `type`;
//!   `route.{source,destination,group,operation,resource}`), plus Go's constructors
//!   ([`Message::response_to`], [`Message::ack_for`], [`Message::error_for`],
//!   [`Message::keepalive`]) and [`Message::validate`].
//! - [`names`]: the route vocabularies [`Operation`], [`Source`], [`Group`], [`ResourceType`];
//!   string enums with an `Other(String)` escape, lossless in both directions.
//! - [`content`]: [`Content`], the JSON body, with Go's `GetContentData` semantics
//!   ([`Content::bytes`]), JSON-in-a-string and base64 readers.
//! - [`resource`]: [`ResourcePath`], the parsed `route.resource` (`<ns>/<type>[/<name>]`,
//!   devices, rules, bare types, raw), and the cloud-internal `node/<id>/` prefix.
//! - [`ack`]: CloudHub's downstream ACK vs no-ACK rules ([`Message::needs_ack`],
//!   [`Message::delivery`]).
//! - [`codec`]: [`decode`] / [`encode`] of one frame, bounded by [`Limits`].
//! - [`inventory`]: the edge's inventory message (UID → resourceVersion) for incremental resync.
//! - [`desired`]: what of an object the edge needs (all but status and per-write metadata),
//!   compared in place or as a digest: the EdgeController sends no status echoes.
//! - [`stream`]: CloudStream/EdgeStream tunnel frames (`uvarint(connectID) uvarint(type) data`)
//!   and the JSON of their connect messages.
//! - [`ids`]: the [`NodeId`] newtype and the [`MsgIdSource`] seam (callers supply message ids).
//! - [`twin`]: DeviceTwin payloads (twin update/result/delta/document, state, membership) and
//!   the MQTT topic grammar shared by edgecore, cloudcore and mappers.

pub mod ack;
pub mod codec;
pub mod content;
pub mod desired;
pub mod ids;
pub mod inventory;
pub mod message;
pub mod names;
pub mod resource;
pub mod stream;
pub mod twin;

pub use ack::Delivery;
pub use codec::{
    DecodeError, EncodeError, FRAME_BYTES_MAX, Field, Limits, Malformation, decode, decode_strict,
    decode_with, encode, encode_into, encode_text, encode_text_with, encode_with,
};
pub use content::{Content, ContentError, OK_TEXT};
pub use ids::{MsgIdSource, NodeId, NodeIdError, SequentialIds};
pub use message::{Header, Message, Route};
pub use names::{Group, Operation, ResourceType, Source};
pub use resource::{NULL_NAMESPACE, ResourcePath, strip_node_prefix};
