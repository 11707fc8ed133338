//! [`Change`]: a downstream cloud message read as a store write (pure, no SQLite).
//!
//! The key is the edge-relative resource path (`default/pod/web`, `null/node/edge-1`), the type
//! its resource type, the version the object's `metadata.resourceVersion` (falling back to the
//! header's `resourceversion`), the identity its `metadata.uid`.

use std::{borrow::Cow, cmp::Ordering};

use ke_proto::{Message, Operation, ResourcePath};
use serde_json::Value;

use super::Error;

/// What a message asks the store to do.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Write<'a> {
    /// Insert or update with this object (borrowed from the message when its content is the
    /// object itself, so a write copies nothing).
    Upsert(Cow<'a, Value>),
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
        let (key, kind) = object_key(msg, body.as_deref())?;
        let meta_str = |field: &str| {
            body.as_ref()
                .and_then(|b| b.pointer(&format!("/metadata/{field}")))
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let header_rv = Some(msg.header.resource_version.clone()).filter(|s| !s.is_empty());
        let (uid, rv) = (meta_str("uid"), meta_str("resourceVersion").or(header_rv));
        // The object moves into the write: no second copy of the content.
        let write = match (is_delete, body) {
            (true, Some(b)) if released(&b) => Write::Release,
            (true, _) => Write::Delete,
            (false, Some(obj)) => Write::Upsert(obj),
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

fn released(body: &Value) -> bool {
    let path = format!(
        "/metadata/annotations/{}",
        ke_proto::inventory::RELEASED_ANNOTATION.replace('/', "~1")
    );
    body.pointer(&path).and_then(Value::as_str) == Some("true")
}

/// The content as a JSON object: an object as is, or a string holding one.
fn content_object(msg: &Message) -> Option<Cow<'_, Value>> {
    let value = msg.content.content_json().ok()?;
    value.is_object().then_some(value)
}

/// `(key, type)` of the one object `msg` addresses; the name may come from the content when
/// the resource stops at the type (`default/pod`).
fn object_key(msg: &Message, body: Option<&Value>) -> Result<(String, String), Error> {
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
    let name = name.or_else(|| {
        body.and_then(|b| b.pointer("/metadata/name"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    });
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
        assert!(matches!(&c.write, Write::Upsert(Cow::Borrowed(o)) if **o == pod));
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
