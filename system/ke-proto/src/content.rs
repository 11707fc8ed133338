//! [`Content`]: a message body, any JSON value, with KubeEdge's reading conventions.
//!
//! Go keeps `content` as `interface{}`. Three encodings meet on the wire, and receivers must
//! accept them all:
//! - an object (a Kubernetes object, `{"Object":…,"Err":…}`, a twin payload);
//! - a JSON *string holding JSON* (patches, device state, the membership-detail request);
//! - a base64 string (Go `[]byte` values marshal that way), or plain text (`"OK"`, `"ping"`).
//!
//! [`Content::bytes`] follows Go's `GetContentData`: a string is taken as raw bytes, anything
//! else is re-marshalled. Go's `json.Marshal` escapes `<`, `>` and `&` as `\u003c`...; this crate
//! does not, which is the same JSON to any decoder.

use std::borrow::Cow;

use base64::Engine as _;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::{Map, Value};
use thiserror::Error;

/// The `"OK"` text of an ACK and of successful status updates (`MessageSuccessfulContent`).
pub const OK_TEXT: &str = "OK";

/// Why content could not be read in the requested form.
#[derive(Debug, Error)]
pub enum ContentError {
    /// The content is a string, but not one holding JSON.
    #[error("content string is not JSON")]
    NotJson(#[source] serde_json::Error),
    /// The content (or the JSON inside its string) does not have the expected shape.
    #[error("content does not match the expected type")]
    Shape(#[source] serde_json::Error),
    /// A value could not be turned into JSON.
    #[error("value cannot be represented as JSON content")]
    Serialize(#[source] serde_json::Error),
    /// Base64 was requested but the content is not a string.
    #[error("content is not a string, so it cannot hold base64")]
    NotString,
    /// The content string is not valid standard base64.
    #[error("content string is not valid base64")]
    Base64(#[source] base64::DecodeError),
}

/// A message body: any JSON value (`null` when absent).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Content(pub Value);

impl Content {
    /// `null` content (a query carries no body).
    pub fn null() -> Self {
        Self(Value::Null)
    }

    /// Plain text content, e.g. `"OK"` or `"ping"`.
    pub fn text(s: impl Into<String>) -> Self {
        Self(Value::String(s.into()))
    }

    /// The `"OK"` content of an ACK.
    pub fn ok() -> Self {
        Self::text(OK_TEXT)
    }

    /// Object content from a JSON map.
    pub fn object(map: Map<String, Value>) -> Self {
        Self(Value::Object(map))
    }

    /// Content holding `value` serialised as a JSON value (objects for Kubernetes kinds).
    pub fn from_serialize<T: Serialize + ?Sized>(value: &T) -> Result<Self, ContentError> {
        serde_json::to_value(value)
            .map(Self)
            .map_err(ContentError::Serialize)
    }

    /// Content holding `value` as a JSON *string* containing JSON (how patches travel).
    pub fn json_string<T: Serialize + ?Sized>(value: &T) -> Result<Self, ContentError> {
        serde_json::to_string(value)
            .map(Self::text)
            .map_err(ContentError::Serialize)
    }

    /// Content holding `bytes` as standard padded base64 (how Go marshals `[]byte`).
    pub fn base64(bytes: &[u8]) -> Self {
        Self::text(base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    /// The `{"Object":…,"Err":null}` body of a successful object reply.
    pub fn object_reply(object: Value) -> Self {
        let mut map = Map::new();
        map.insert("Object".to_owned(), object);
        map.insert("Err".to_owned(), Value::Null);
        Self(Value::Object(map))
    }

    /// The JSON value.
    pub fn value(&self) -> &Value {
        &self.0
    }

    /// The JSON value, by value.
    pub fn into_value(self) -> Value {
        self.0
    }

    /// The text if the content is a JSON string.
    pub fn as_str(&self) -> Option<&str> {
        self.0.as_str()
    }

    /// True if the content is `null`.
    pub fn is_null(&self) -> bool {
        self.0.is_null()
    }

    /// True if the content is the string `"OK"`.
    pub fn is_ok_text(&self) -> bool {
        self.as_str() == Some(OK_TEXT)
    }

    /// Go's `GetContentData`: a string's own bytes, else the value re-marshalled as JSON.
    pub fn bytes(&self) -> Cow<'_, [u8]> {
        match &self.0 {
            Value::String(s) => Cow::Borrowed(s.as_bytes()),
            other => {
                Cow::Owned(serde_json::to_vec(other).expect("invariant: a Value always serialises"))
            }
        }
    }

    /// The content as JSON: a string is parsed as JSON-in-a-string, anything else is itself.
    pub fn content_json(&self) -> Result<Cow<'_, Value>, ContentError> {
        match &self.0 {
            Value::String(s) => serde_json::from_str(s)
                .map(Cow::Owned)
                .map_err(ContentError::NotJson),
            other => Ok(Cow::Borrowed(other)),
        }
    }

    /// The content decoded into `T`, accepting both the object and the JSON-in-a-string form.
    pub fn to_typed<T: DeserializeOwned>(&self) -> Result<T, ContentError> {
        match &self.0 {
            Value::String(s) => serde_json::from_str(s).map_err(ContentError::Shape),
            other => T::deserialize(other).map_err(ContentError::Shape),
        }
    }

    /// The bytes of a Go `[]byte` field: the content string decoded from standard base64.
    pub fn decode_base64(&self) -> Result<Vec<u8>, ContentError> {
        let text = self.as_str().ok_or(ContentError::NotString)?;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(ContentError::Base64)
    }

    /// True if the content looks like a marshalled Go `error` value (§2.4 / Appendix B):
    /// `{}` (a plain error) or an object whose only key is `ErrStatus` (a `*StatusError`).
    pub fn is_error_value(&self) -> bool {
        match &self.0 {
            Value::Object(map) => {
                map.is_empty() || (map.len() == 1 && map.contains_key("ErrStatus"))
            }
            _ => false,
        }
    }
}

impl From<Value> for Content {
    fn from(v: Value) -> Self {
        Self(v)
    }
}

impl From<Content> for Value {
    fn from(c: Content) -> Self {
        c.0
    }
}

impl From<&str> for Content {
    fn from(s: &str) -> Self {
        Self::text(s)
    }
}

impl From<String> for Content {
    fn from(s: String) -> Self {
        Self::text(s)
    }
}

impl AsRef<Value> for Content {
    fn as_ref(&self) -> &Value {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Goal: `bytes` follows Go's `GetContentData`. Method: a string yields its own bytes
    /// (no quotes), an object and `null` are re-marshalled.
    #[test]
    fn bytes_follow_get_content_data() {
        assert_eq!(&*Content::text("{\"a\":1}").bytes(), b"{\"a\":1}");
        assert_eq!(&*Content(json!({"a": 1})).bytes(), b"{\"a\":1}");
        assert_eq!(&*Content::null().bytes(), b"null");
    }

    /// Goal: `content_json` and `to_typed` accept both the object and the JSON-in-a-string
    /// form. Method: decode the same patch from both forms and compare; plain text is NotJson.
    #[test]
    fn json_in_a_string_and_object_agree() {
        let obj = Content(json!({"status": {"phase": "Running"}}));
        let s = Content::json_string(&json!({"status": {"phase": "Running"}})).expect("json");
        assert_eq!(
            obj.content_json().expect("obj"),
            s.content_json().expect("str")
        );
        let v: Value = s.to_typed().expect("typed");
        assert_eq!(v["status"]["phase"], "Running");
        assert!(matches!(
            Content::ok().content_json(),
            Err(ContentError::NotJson(_))
        ));
    }

    /// Goal: base64 helpers invert each other and reject non-strings. Method: round-trip
    /// arbitrary bytes; decode a number and bad text.
    #[test]
    fn base64_round_trip() {
        let c = Content::base64(&[0, 1, 2, 255]);
        assert_eq!(c.as_str(), Some("AAEC/w=="));
        assert_eq!(c.decode_base64().expect("b64"), vec![0, 1, 2, 255]);
        assert!(matches!(
            Content(json!(1)).decode_base64(),
            Err(ContentError::NotString)
        ));
        assert!(matches!(
            Content::text("%%").decode_base64(),
            Err(ContentError::Base64(_))
        ));
    }

    /// Goal: error values are recognised as Go marshals them. Method: `{}` and
    /// `{"ErrStatus":…}` are errors; an object reply and `"OK"` are not.
    #[test]
    fn error_value_shapes() {
        assert!(Content(json!({})).is_error_value());
        assert!(Content(json!({"ErrStatus": {"code": 404}})).is_error_value());
        assert!(!Content::object_reply(json!({"kind": "Node"})).is_error_value());
        assert!(!Content::ok().is_error_value());
    }
}
