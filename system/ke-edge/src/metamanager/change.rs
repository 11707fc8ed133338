//! [`Change`]: a downstream cloud message read as a store write (pure, no SQLite).
//!
//! The key is the edge-relative resource path (`default/pod/web`, `null/node/edge-1`), the type
//! its resource type, the version the object's `metadata.resourceVersion` (falling back to the
//! header's `resourceversion`), the identity its `metadata.uid`.

use std::{borrow::Cow, cmp::Ordering};

use ke_proto::{Message, Operation, ResourcePath, content::members};
use serde_json::Value;

use super::Error;

/// What a message asks the store to do.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Write<'a> {
    /// Insert or update with this object's JSON text (borrowed from the message when its
    /// content arrived as the object's text, so a write neither parses nor copies it).
    Upsert(Cow<'a, str>),
    /// Remove the object; its UID is remembered as deleted.
    Delete,
    /// Remove the object, not remembering its UID (the cloud released it: the node no longer
    /// references it, see [`ke_proto::inventory::RELEASED_ANNOTATION`]).
    Release,
}

/// A message read as a store write.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Change<'a> {
    /// `meta.key`: the edge-relative resource path.
    pub(crate) key: String,
    /// `meta.type`: the resource type.
    pub(crate) kind: String,
    /// `metadata.uid`, if the content carries one.
    pub(crate) uid: Option<String>,
    /// The object's resourceVersion, if known.
    pub(crate) rv: Option<String>,
    /// Upsert or delete.
    pub(crate) write: Write<'a>,
}

impl<'a> Change<'a> {
    /// Reads `msg` as a write. Fails on operations that are not writes, on resources that do
    /// not name one object, and on upserts whose content is not a JSON object.
    pub(crate) fn from_message(msg: &'a Message) -> Result<Self, Error> {
        let op = &msg.route.operation;
        let is_delete = match op {
            Operation::Insert | Operation::Update => false,
            Operation::Delete => true,
            other => {
                return Err(Error::NotAWrite {
                    operation: other.as_str().to_owned(),
                });
            }
        };
        let body = content_object(msg);
        let head = body.as_ref().map(|(_, h)| h);
        let (key, kind) = object_key(msg, head.and_then(|h| h.name.as_deref()))?;
        let header_rv = Some(msg.header.resource_version.clone()).filter(|s| !s.is_empty());
        let uid = head.and_then(|h| h.uid.clone());
        let rv = head.and_then(|h| h.rv.clone()).or(header_rv);
        // The object's text moves into the write: no second copy of the content.
        let write = match (is_delete, body) {
            (true, Some((_, h))) if h.released => Write::Release,
            (true, _) => Write::Delete,
            (false, Some((text, _))) => Write::Upsert(text),
            (false, None) => {
                return Err(Error::NotAnObject {
                    msg_id: msg.header.id.clone(),
                });
            }
        };
        Ok(Self {
            key,
            kind,
            uid,
            rv,
            write,
        })
    }
}

/// What a write needs from an object's metadata (empty strings count as absent; values
/// that are not strings are ignored, as a lookup in the parsed object did).
#[derive(Debug, Default)]
struct Head {
    name: Option<String>,
    uid: Option<String>,
    rv: Option<String>,
    /// Annotated [`ke_proto::inventory::RELEASED_ANNOTATION`]`: "true"`.
    released: bool,
}

impl Head {
    /// The head of the object in `text`; `None` if the text is not a JSON object.
    fn of(text: &str) -> Option<Self> {
        let top = members(text)?;
        let Some(meta) = top.get("metadata").and_then(|m| members(m.get())) else {
            return Some(Self::default());
        };
        let string = |key: &str| {
            meta.get(key)
                .and_then(|r| serde_json::from_str::<String>(r.get()).ok())
                .filter(|s| !s.is_empty())
        };
        let released = meta
            .get("annotations")
            .and_then(|a| members(a.get()))
            .and_then(|a| a.get(ke_proto::inventory::RELEASED_ANNOTATION).copied())
            .is_some_and(|v| {
                serde_json::from_str::<Cow<'_, str>>(v.get()).is_ok_and(|s| s == "true")
            });
        Some(Self {
            name: string("name"),
            uid: string("uid"),
            rv: string("resourceVersion"),
            released,
        })
    }
}

/// The content as a JSON object's text, with its head: the text as it arrived, or the text
/// of a string holding an object, or an object built locally written out.
fn content_object(msg: &Message) -> Option<(Cow<'_, str>, Head)> {
    let text = match msg.content.raw_text() {
        Some(t) if t.starts_with('{') => Cow::Borrowed(t),
        _ => match msg.content.value() {
            Value::String(s) => Cow::Borrowed(s.as_str()),
            v @ Value::Object(_) => Cow::Owned(v.to_string()),
            _ => return None,
        },
    };
    let head = Head::of(&text)?;
    Some((text, head))
}

/// `(key, type)` of the one object `msg` addresses; the name may come from the content when
/// the resource stops at the type (`default/pod`).
fn object_key(msg: &Message, body_name: Option<&str>) -> Result<(String, String), Error> {
    let no_key = || Error::NoKey {
        msg_id: msg.header.id.clone(),
        resource: msg.route.resource.clone(),
    };
    let ResourcePath::Object {
        namespace,
        kind,
        name,
    } = msg.resource_path()
    else {
        return Err(no_key());
    };
    let name = name.or_else(|| body_name.map(str::to_owned));
    let Some(name) = name.filter(|n| !n.is_empty() && !n.contains('/')) else {
        return Err(no_key());
    };
    let path = ResourcePath::object(namespace.as_deref(), kind.clone(), Some(&name));
    Ok((path.to_string(), kind.as_str().to_owned()))
}

/// How an incoming resourceVersion relates to the stored one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Age {
    /// Newer, or not comparable (then the last writer wins).
    Newer,
    /// The same version: a redelivery.
    Same,
    /// Older than what is stored.
    Older,
}

/// Compares resourceVersions as Kubernetes numbers (CloudHub parses them as `uint64`). Unknown
/// or non-numeric versions cannot be ordered: equal strings are the same, anything else wins.
pub(crate) fn age(incoming: Option<&str>, stored: Option<&str>) -> Age {
    let (Some(a), Some(b)) = (incoming, stored) else {
        return Age::Newer;
    };
    match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(x), Ok(y)) => match x.cmp(&y) {
            Ordering::Greater => Age::Newer,
            Ordering::Equal => Age::Same,
            Ordering::Less => Age::Older,
        },
        _ if a == b => Age::Same,
        _ => Age::Newer,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ke_proto::Route;
    use serde_json::json;

    fn msg(op: &str, resource: &str, content: Value) -> Message {
        Message::new(
            "m1",
            0,
            Route::new("edgecontroller", "resource", op, resource),
            content,
        )
    }

    /// Goal: keys, uids and versions are read the way the store needs them. Method: an insert
    /// with an RV in the content, a JSON-string update relying on the header RV, a delete
    /// without content, a list resource naming the object in its content.
    #[test]
    fn reads_messages_as_writes() {
        let pod = json!({"metadata": {"name": "web", "uid": "u1", "resourceVersion": "7"}});
        let m = msg("insert", "default/pod/web", pod.clone());
        let c = Change::from_message(&m).unwrap();
        assert!(
            matches!(&c.write, Write::Upsert(o) if serde_json::from_str::<Value>(o).unwrap() == pod)
        );
        assert_eq!(
            (c.key.as_str(), c.kind.as_str()),
            ("default/pod/web", "pod")
        );
        assert_eq!((c.uid.as_deref(), c.rv.as_deref()), (Some("u1"), Some("7")));
        let s = Value::String(json!({"metadata": {"name": "n"}}).to_string());
        let m = msg("update", "null/node/n", s).with_resource_version("9");
        let c = Change::from_message(&m).unwrap();
        assert_eq!(
            (c.key.as_str(), c.rv.as_deref()),
            ("null/node/n", Some("9"))
        );
        let m = msg("delete", "default/pod/web", Value::Null);
        let c = Change::from_message(&m).unwrap();
        assert_eq!((c.write, c.uid), (Write::Delete, None));
        let m = msg("insert", "default/pod", pod);
        let c = Change::from_message(&m).unwrap();
        assert_eq!(c.key, "default/pod/web");
    }

    /// Goal: content that arrived as text is stored as that text, borrowed from the message
    /// (no parse, no copy); the head is read from it: metadata values that are not strings
    /// or are empty count as absent, and the released annotation makes a delete a release.
    /// Method: decode frames, read them as writes.
    #[test]
    fn content_text_is_written_as_it_arrived() {
        let frame = |op: &str, content: &str| {
            format!(
                r#"{{"header":{{"msg_id":"m","resourceversion":"3"}},"route":{{"source":"edgecontroller","group":"resource","operation":"{op}","resource":"default/pod/web"}},"content":{content}}}"#
            )
        };
        let text = r#"{"metadata":{"name":"web","uid":7,"resourceVersion":"","labels":{"a":"\u00e9"}},"spec":{"nodeName":"n"},"z":[1, 2]}"#;
        let m = ke_proto::codec::decode(frame("insert", text).as_bytes()).unwrap();
        let c = Change::from_message(&m).unwrap();
        assert!(
            matches!(&c.write, Write::Upsert(Cow::Borrowed(t)) if *t == text),
            "{c:?}"
        );
        assert_eq!((c.uid, c.rv.as_deref()), (None, Some("3")));
        let released = format!(
            r#"{{"metadata":{{"name":"web","uid":"u","annotations":{{"{}":"true"}}}}}}"#,
            ke_proto::inventory::RELEASED_ANNOTATION
        );
        let m = ke_proto::codec::decode(frame("delete", &released).as_bytes()).unwrap();
        let c = Change::from_message(&m).unwrap();
        assert_eq!((c.write, c.uid.as_deref()), (Write::Release, Some("u")));
        let kept = released.replace("\"true\"", "\"false\"");
        let m = ke_proto::codec::decode(frame("delete", &kept).as_bytes()).unwrap();
        assert_eq!(Change::from_message(&m).unwrap().write, Write::Delete);
        let array = ke_proto::codec::decode(frame("insert", "[1]").as_bytes()).unwrap();
        assert!(matches!(
            Change::from_message(&array),
            Err(Error::NotAnObject { .. })
        ));
    }

    /// Goal: non-writes and nameless or bodiless upserts are refused. Method: one of each.
    #[test]
    fn refuses_what_is_not_a_write() {
        let q = msg("query", "default/pod/web", Value::Null);
        assert!(matches!(
            Change::from_message(&q),
            Err(Error::NotAWrite { .. })
        ));
        let nameless = msg("insert", "default/pod", json!({}));
        assert!(matches!(
            Change::from_message(&nameless),
            Err(Error::NoKey { .. })
        ));
        let text = msg("insert", "default/pod/web", Value::String("OK".into()));
        assert!(matches!(
            Change::from_message(&text),
            Err(Error::NotAnObject { .. })
        ));
    }

    /// Goal: version order follows uint64 order, unknowns are last-writer-wins. Method: table.
    #[test]
    fn version_age_table() {
        let cases = [
            (Some("10"), Some("9"), Age::Newer),
            (Some("9"), Some("10"), Age::Older),
            (Some("9"), Some("9"), Age::Same),
            (None, Some("9"), Age::Newer),
            (Some("9"), None, Age::Newer),
            (Some("x"), Some("x"), Age::Same),
            (Some("x"), Some("y"), Age::Newer),
        ];
        for (a, b, want) in cases {
            assert_eq!(age(a, b), want, "{a:?} vs {b:?}");
        }
    }
}
