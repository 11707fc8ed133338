//! Frame codec: one [`Message`] per WebSocket frame, as plain JSON (no length prefix, no
//! protobuf; KubeEdge's `WSLaneWithoutPack`).
//!
//! Check, then parse: the frame length is checked against [`Limits`] before any parsing, and
//! parsing is serde_json's (recursion-limited, so deep nesting is an error, not a stack
//! overflow). Decoding never panics.
//!
//! *Missing fields.* [`decode`] accepts what Go accepts: missing keys and `null` become zero
//! values (an empty `msg_id`, timestamp 0). Routing code that needs an id and an operation
//! calls [`Message::validate`] or decodes with [`decode_strict`], which report
//! [`DecodeError::MissingField`]. Rejecting in `decode` itself would make us stricter than a Go
//! peer, and a frame that Go would route would be dropped here.

use std::fmt;

use serde_json::error::Category;
use thiserror::Error;

use crate::message::Message;

/// Largest frame accepted by default (8 MiB; the bound lives in `ke_core::limits`).
pub use ke_core::limits::FRAME_BYTES_MAX;

/// Codec result.
pub type Result<T, E = DecodeError> = std::result::Result<T, E>;

/// Bounds applied by the codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest frame, in bytes, that is decoded or encoded; larger ones are rejected before
    /// parsing.
    pub frame_bytes_max: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            frame_bytes_max: FRAME_BYTES_MAX,
        }
    }
}

/// A required message field, named by its JSON path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// `header.msg_id`.
    MsgId,
    /// `route.operation`.
    Operation,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::MsgId => "header.msg_id",
            Self::Operation => "route.operation",
        })
    }
}

/// What kind of malformation serde_json found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Malformation {
    /// Not JSON at all (bad token, invalid UTF-8, trailing bytes, nesting too deep).
    Syntax,
    /// JSON of the wrong shape (top level not an object, `timestamp` not an integer, ...).
    Schema,
}

/// Why a frame could not be decoded. None of these is retryable: the same bytes fail again.
#[derive(Debug, Error)]
pub enum DecodeError {
    /// The frame exceeds [`Limits::frame_bytes_max`]; it was not parsed.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Frame length in bytes.
        len: usize,
        /// The limit in force.
        max: usize,
    },
    /// The frame ends inside a JSON value (empty or cut short).
    #[error("frame of {len} bytes ends before the JSON value does")]
    Truncated {
        /// Frame length in bytes.
        len: usize,
    },
    /// The frame is not a well-formed message.
    #[error("malformed frame ({kind:?}) at line {line}, column {column}")]
    Malformed {
        /// Syntax or schema.
        kind: Malformation,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// serde_json's description.
        #[source]
        source: serde_json::Error,
    },
    /// A field Go would default silently is missing (from [`Message::validate`]).
    #[error("message has no {0}")]
    MissingField(Field),
}

impl DecodeError {
    fn from_json(source: serde_json::Error, len: usize) -> Self {
        let kind = match source.classify() {
            Category::Eof => return Self::Truncated { len },
            Category::Data => Malformation::Schema,
            Category::Syntax | Category::Io => Malformation::Syntax,
        };
        Self::Malformed {
            kind,
            line: source.line(),
            column: source.column(),
            source,
        }
    }
}

/// Why a message could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EncodeError {
    /// The encoded frame would exceed [`Limits::frame_bytes_max`], so a peer would refuse it.
    #[error("encoded frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Encoded length in bytes.
        len: usize,
        /// The limit in force.
        max: usize,
    },
}

/// Decodes one frame with the default [`Limits`].
pub fn decode(frame: &[u8]) -> Result<Message> {
    decode_with(frame, &Limits::default())
}

/// Decodes one frame, rejecting frames over `limits.frame_bytes_max` before parsing.
pub fn decode_with(frame: &[u8], limits: &Limits) -> Result<Message> {
    if frame.len() > limits.frame_bytes_max {
        return Err(DecodeError::TooLarge {
            len: frame.len(),
            max: limits.frame_bytes_max,
        });
    }
    let msg: Message =
        serde_json::from_slice(frame).map_err(|e| DecodeError::from_json(e, frame.len()))?;
    msg.content
        .check_depth()
        .map_err(|e| DecodeError::from_json(e, frame.len()))?;
    Ok(msg)
}

/// [`decode_with`], then [`Message::validate`].
pub fn decode_strict(frame: &[u8], limits: &Limits) -> Result<Message> {
    let msg = decode_with(frame, limits)?;
    msg.validate()?;
    Ok(msg)
}

/// Encodes a message as a JSON frame.
pub fn encode(msg: &Message) -> Vec<u8> {
    let mut buf = Vec::with_capacity(256);
    encode_into(msg, &mut buf);
    buf
}

/// Appends the JSON frame of `msg` to `buf` (reuse one buffer per connection).
pub fn encode_into(msg: &Message, buf: &mut Vec<u8>) {
    serde_json::to_writer(buf, msg)
        .expect("invariant: writing to a Vec cannot fail and every Message serialises");
}

/// Encodes a message as text, for WebSocket text frames (what Go's `WriteJSON` sends).
pub fn encode_text(msg: &Message) -> String {
    serde_json::to_string(msg).expect("invariant: every Message serialises")
}

/// Encodes a message as text, refusing a frame the peer's decoder would reject (the text a
/// sender keeps for its first write and every resend).
pub fn encode_text_with(msg: &Message, limits: &Limits) -> Result<String, EncodeError> {
    let text = encode_text(msg);
    fits(text.len(), limits)?;
    Ok(text)
}

/// Encodes a message, refusing a frame the peer's decoder would reject.
pub fn encode_with(msg: &Message, limits: &Limits) -> Result<Vec<u8>, EncodeError> {
    let buf = encode(msg);
    fits(buf.len(), limits)?;
    Ok(buf)
}

/// A frame of `len` bytes is within the peer's limit.
fn fits(len: usize, limits: &Limits) -> Result<(), EncodeError> {
    if len > limits.frame_bytes_max {
        return Err(EncodeError::TooLarge {
            len,
            max: limits.frame_bytes_max,
        });
    }
    Ok(())
}
