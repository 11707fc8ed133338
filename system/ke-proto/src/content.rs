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
use serde_json::{Map, Value, value::RawValue};
use std::{collections::BTreeMap, sync::OnceLock};
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
///
/// It is held as the JSON text it arrived as or was built from ([`Content::raw`]) and parsed
/// into a [`Value`] only when someone asks for one: a pod passing through a node's store or
/// CloudHub is copied as text, not built as a tree of maps (about 15 KiB of `Value` for 3 KiB
/// of text) and written back out. Built from a `Value`, it keeps that value. Either way the
/// JSON is the same; equality compares values.
#[derive(Clone)]
pub struct Content {
    /// The JSON text, when the content came as text.
    raw: Option<Box<RawValue>>,
    /// The value: set from the start when built from one, else parsed from `raw` on first use.
    value: OnceLock<Value>,
}

impl Content {
    /// Content holding `value`.
    pub fn new(value: Value) -> Self {
        Self {
            raw: None,
            value: OnceLock::from(value),
        }
    }

    /// Content holding JSON text as it is (checked to be JSON when it was made).
    pub fn raw(text: Box<RawValue>) -> Self {
        Self {
            raw: Some(text),
            value: OnceLock::new(),
        }
    }

    /// `null` content (a query carries no body).
    pub fn null() -> Self {
        Self::new(Value::Null)
    }

    /// Plain text content, e.g. `"OK"` or `"ping"`.
    pub fn text(s: impl Into<String>) -> Self {
        Self::new(Value::String(s.into()))
    }

    /// The `"OK"` content of an ACK.
    pub fn ok() -> Self {
        Self::text(OK_TEXT)
    }

    /// Object content from a JSON map.
    pub fn object(map: Map<String, Value>) -> Self {
        Self::new(Value::Object(map))
    }

    /// Content holding `value` serialised as JSON (objects for Kubernetes kinds), as text.
    pub fn from_serialize<T: Serialize + ?Sized>(value: &T) -> Result<Self, ContentError> {
        serde_json::value::to_raw_value(value)
            .map(Self::raw)
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
        Self::object(map)
    }

    /// The JSON value (parsed on first use when the content is text).
    pub fn value(&self) -> &Value {
        self.value.get_or_init(|| match &self.raw {
            // Text in a `RawValue` is JSON; the parser's depth limit is the same one the
            // text passed when it was read.
            Some(raw) => serde_json::from_str(raw.get()).unwrap_or(Value::Null),
            None => Value::Null,
        })
    }

    /// The JSON value, parsed now if it was not (and not kept: for content held long as
    /// text, where a parse is rare and its tree would outweigh the text).
    pub fn parsed(&self) -> Cow<'_, Value> {
        match (self.value.get(), &self.raw) {
            (Some(v), _) => Cow::Borrowed(v),
            (None, Some(raw)) => Cow::Owned(serde_json::from_str(raw.get()).unwrap_or(Value::Null)),
            (None, None) => Cow::Owned(Value::Null),
        }
    }

    /// The JSON value, by value (parsed straight from the text if it was not yet).
    pub fn into_value(mut self) -> Value {
        match (self.value.take(), &self.raw) {
            (Some(v), _) => v,
            (None, Some(raw)) => serde_json::from_str(raw.get()).unwrap_or(Value::Null),
            (None, None) => Value::Null,
        }
    }

    /// The JSON text when the content is held as text (as it arrived, or as it was built).
    pub fn raw_text(&self) -> Option<&str> {
        self.raw.as_deref().map(RawValue::get)
    }

    /// A string member of the content's `metadata` (`uid`, `name`, ...), if the content is
    /// an object that has one. Content held as text is scanned, not parsed into a `Value`.
    pub fn metadata_str(&self, field: &str) -> Option<String> {
        match self.text_metadata(field) {
            Some(raw) => serde_json::from_str(raw?.get()).ok(),
            None => self
                .value()
                .get("metadata")
                .and_then(|m| m.get(field))
                .and_then(Value::as_str)
                .map(str::to_owned),
        }
    }

    /// True if the content's `metadata` has member `field` and it is not `null`.
    pub fn has_metadata(&self, field: &str) -> bool {
        match self.text_metadata(field) {
            Some(raw) => raw.is_some_and(|r| r.get() != "null"),
            None => self
                .value()
                .get("metadata")
                .and_then(|m| m.get(field))
                .is_some_and(|v| !v.is_null()),
        }
    }

    /// True if the content's `metadata.annotations` has `key`.
    pub fn has_annotation(&self, key: &str) -> bool {
        match self.text_metadata("annotations") {
            Some(raw) => raw
                .and_then(|r| members(r.get()))
                .is_some_and(|a| a.contains_key(key)),
            None => self
                .value()
                .pointer("/metadata/annotations")
                .and_then(|a| a.get(key))
                .is_some(),
        }
    }

    /// For content held only as text (not parsed): `Some` of member `field` of its
    /// `metadata`, as it is in the text (`Some(None)` if there is none). `None` when the
    /// content has a parsed value to look in instead.
    fn text_metadata(&self, field: &str) -> Option<Option<&RawValue>> {
        let text = self.raw_text().filter(|_| self.value.get().is_none())?;
        let found = || {
            members(members(text)?.get("metadata")?.get())?
                .get(field)
                .copied()
        };
        Some(found())
    }

    /// The text if the content is a JSON string.
    pub fn as_str(&self) -> Option<&str> {
        if self.raw_text().is_some_and(|t| !t.starts_with('"')) {
            return None;
        }
        self.value().as_str()
    }

    /// True if the content is `null`.
    pub fn is_null(&self) -> bool {
        match self.raw_text() {
            Some(t) => t == "null",
            None => self.value().is_null(),
        }
    }

    /// True if the content is the string `"OK"`.
    pub fn is_ok_text(&self) -> bool {
        match self.raw_text() {
            Some(t) => t == "\"OK\"",
            None => self.as_str() == Some(OK_TEXT),
        }
    }

    /// Go's `GetContentData`: a string's own bytes, else the value's JSON.
    pub fn bytes(&self) -> Cow<'_, [u8]> {
        if let Some(s) = self.as_str() {
            return Cow::Borrowed(s.as_bytes());
        }
        match self.raw_text() {
            Some(t) => Cow::Borrowed(t.as_bytes()),
            None => Cow::Owned(
                serde_json::to_vec(self.value()).expect("invariant: a Value always serialises"),
            ),
        }
    }

    /// The content as JSON: a string is parsed as JSON-in-a-string, anything else is itself.
    pub fn content_json(&self) -> Result<Cow<'_, Value>, ContentError> {
        match self.value() {
            Value::String(s) => serde_json::from_str(s)
                .map(Cow::Owned)
                .map_err(ContentError::NotJson),
            other => Ok(Cow::Borrowed(other)),
        }
    }

    /// The content decoded into `T`, accepting both the object and the JSON-in-a-string form.
    /// Content held as text is decoded from the text, without a `Value` in between.
    pub fn to_typed<T: DeserializeOwned>(&self) -> Result<T, ContentError> {
        if let Some(v) = self.value.get() {
            return match v {
                Value::String(s) => serde_json::from_str(s).map_err(ContentError::Shape),
                other => T::deserialize(other).map_err(ContentError::Shape),
            };
        }
        match self.as_str() {
            Some(s) => serde_json::from_str(s).map_err(ContentError::Shape),
            None => {
                serde_json::from_str(self.raw_text().unwrap_or("null")).map_err(ContentError::Shape)
            }
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
        if let (Some(t), None) = (self.raw_text(), self.value.get()) {
            // Held as text: the top-level keys decide, nothing is parsed.
            return members(t)
                .is_some_and(|m| m.is_empty() || (m.len() == 1 && m.contains_key("ErrStatus")));
        }
        match self.value() {
            Value::Object(map) => {
                map.is_empty() || (map.len() == 1 && map.contains_key("ErrStatus"))
            }
            _ => false,
        }
    }
}

/// A JSON object's members as they are in its text (each value found, not parsed), by key;
/// `None` if the text is not an object. The one way this crate's readers look into JSON
/// text without building a `Value`.
pub fn members(text: &str) -> Option<BTreeMap<Cow<'_, str>, &RawValue>> {
    serde_json::from_str(text).ok()
}

/// serde_json's nesting limit, which parsing a whole frame used to apply to its content.
const DEPTH_MAX: usize = 127;

impl Content {
    /// Checks that content held as text nests no deeper than a parse into a [`Value`]
    /// allows (a raw value is captured without that limit). The error is the parser's own.
    pub fn check_depth(&self) -> Result<(), serde_json::Error> {
        let Some(text) = self.raw_text() else {
            return Ok(());
        };
        if nesting(text.as_bytes()) < DEPTH_MAX {
            return Ok(());
        }
        serde_json::from_str::<Value>(text).map(drop)
    }
}

/// The deepest nesting of arrays and objects in JSON text (strings skipped, found with
/// `memchr`: most of a Kubernetes object's text is in strings, keys included).
fn nesting(text: &[u8]) -> usize {
    let (mut depth, mut max, mut i) = (0usize, 0usize, 0usize);
    while let Some(&b) = text.get(i) {
        i += 1;
        match b {
            b'"' => loop {
                match memchr::memchr2(b'"', b'\\', text.get(i..).unwrap_or_default()) {
                    Some(j) if text.get(i + j) == Some(&b'\\') => i += j + 2,
                    Some(j) => {
                        i += j + 1;
                        break;
                    }
                    None => return max,
                }
            },
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

impl Default for Content {
    fn default() -> Self {
        Self::null()
    }
}

impl PartialEq for Content {
    fn eq(&self, other: &Self) -> bool {
        match (self.raw_text(), other.raw_text()) {
            (Some(a), Some(b)) if a == b => true,
            _ => self.value() == other.value(),
        }
    }
}

impl std::fmt::Debug for Content {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.value.get(), self.raw_text()) {
            (Some(v), _) => f.debug_tuple("Content").field(v).finish(),
            (None, Some(t)) => f.debug_tuple("Content").field(&t).finish(),
            (None, None) => f.write_str("Content(null)"),
        }
    }
}

impl Serialize for Content {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.raw {
            Some(raw) => raw.serialize(s),
            None => self.value().serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Content {
    /// Keeps the text: nothing is parsed beyond finding where the value ends.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Box::<RawValue>::deserialize(d).map(Self::raw)
    }
}

impl From<Value> for Content {
    fn from(v: Value) -> Self {
        Self::new(v)
    }
}

impl From<Content> for Value {
    fn from(c: Content) -> Self {
        c.into_value()
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
        self.value()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Goal: text content is kept as it came and turns into the same value however it is
    /// read: `value`, `parsed`, `into_value` (before and after a `value`), `to_typed`, and
    /// it encodes as the same text. Method: one object with escapes and spacing.
    #[test]
    fn text_content_reads_as_its_value() {
        let text = r#"{"b": [1, 2.5, "\u00e9"], "a": {"x": null}}"#;
        let want: Value = serde_json::from_str(text).unwrap();
        let c: Content = serde_json::from_str(text).unwrap();
        assert_eq!(c.raw_text(), Some(text));
        assert_eq!(serde_json::to_string(&c).unwrap(), text);
        assert_eq!(*c.parsed(), want);
        assert_eq!(c.clone().into_value(), want);
        assert_eq!(c.to_typed::<BTreeMap<String, Value>>().unwrap().len(), 2);
        assert_eq!(c.value(), &want);
        assert_eq!(c.clone().into_value(), want);
        assert_eq!(c, Content::new(want));
    }

    /// Goal: metadata lookups answer the same for content held as text and as a value.
    /// Method: each lookup on both forms of the same objects.
    #[test]
    fn metadata_lookups_agree_on_text_and_value() {
        let objects = [
            r#"{"metadata":{"uid":"u1","deletionTimestamp":"2026-12-07T00:00:00Z","annotations":{"a/b":"x"}}}"#,
            r#"{"metadata":{"uid":7,"deletionTimestamp":null,"annotations":{}}}"#,
            r#"{"metadata":"odd"}"#,
            r#"{"kind":"Pod"}"#,
            r#""text""#,
            "[1]",
        ];
        for text in objects {
            let raw: Content = serde_json::from_str(text).unwrap();
            let parsed = Content::new(raw.parsed().into_owned());
            for c in [&raw, &parsed] {
                assert_eq!(
                    c.metadata_str("uid").as_deref(),
                    (text.contains(r#""u1""#)).then_some("u1"),
                    "{text}"
                );
                assert_eq!(
                    c.has_metadata("deletionTimestamp"),
                    text.contains("Z\""),
                    "{text}"
                );
                assert_eq!(c.has_annotation("a/b"), text.contains("a/b"), "{text}");
            }
        }
    }

    /// Goal: the nesting scan skips strings and counts arrays and objects.
    #[test]
    fn nesting_counts_brackets_outside_strings() {
        assert_eq!(nesting(br#"{"a":[1,{"b":"[[[{"}],"c":"\\\"["}"#), 3);
        assert_eq!(nesting(b"\"x\""), 0);
        assert_eq!(nesting(br#"["\\",["#), 2);
        assert_eq!(nesting(br#"[["unterminated \"#), 2);
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let c: Content = serde_json::from_str(&deep).unwrap();
        assert!(c.check_depth().is_err());
        let ok: Content = serde_json::from_str("[[1],{\"a\":[]}]").unwrap();
        assert!(ok.check_depth().is_ok());
    }

    /// Goal: `bytes` follows Go's `GetContentData`. Method: a string yields its own bytes
    /// (no quotes), an object and `null` are re-marshalled.
    #[test]
    fn bytes_follow_get_content_data() {
        assert_eq!(&*Content::text("{\"a\":1}").bytes(), b"{\"a\":1}");
        assert_eq!(&*Content::new(json!({"a": 1})).bytes(), b"{\"a\":1}");
        assert_eq!(&*Content::null().bytes(), b"null");
    }

    /// Goal: `content_json` and `to_typed` accept both the object and the JSON-in-a-string
    /// form. Method: decode the same patch from both forms and compare; plain text is NotJson.
    #[test]
    fn json_in_a_string_and_object_agree() {
        let obj = Content::new(json!({"status": {"phase": "Running"}}));
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
            Content::new(json!(1)).decode_base64(),
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
        for (text, want) in [
            ("{}", true),
            (r#"{"ErrStatus":{"code":404}}"#, true),
            (r#"{"ErrStatus":1,"x":2}"#, false),
            (r#"{"metadata":{}}"#, false),
            ("[]", false),
            ("\"{}\"", false),
        ] {
            let c: Content = serde_json::from_str(text).unwrap();
            assert_eq!(c.is_error_value(), want, "{text}");
            assert_eq!(
                Content::new(c.parsed().into_owned()).is_error_value(),
                want,
                "{text}"
            );
        }
        assert!(Content::new(json!({})).is_error_value());
        assert!(Content::new(json!({"ErrStatus": {"code": 404}})).is_error_value());
        assert!(!Content::object_reply(json!({"kind": "Node"})).is_error_value());
        assert!(!Content::ok().is_error_value());
    }
}
