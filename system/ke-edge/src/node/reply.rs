//! Replies to the node agent's requests: which request a reply answers (a bounded table of
//! requests in flight) and whether it succeeded (pure).

use std::collections::{BTreeMap, VecDeque};

use ke_proto::{Message, Operation};
use serde_json::Value;

/// What a request in flight was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Request {
    /// The node registration (`insert` of `null/node/<node>`).
    Register,
    /// A node status patch.
    NodeStatus,
    /// A lease renewal (`update`) or creation (`insert`).
    Lease,
    /// A pod status update.
    PodStatus,
    /// A pod's final delete.
    PodDelete,
}

/// Requests waiting for their reply, by message id. Bounded: beyond `max` the oldest is
/// forgotten (its late reply is then logged as unmatched), so a cloud that never answers
/// cannot grow it.
#[derive(Debug)]
pub(crate) struct Pending {
    by_id: BTreeMap<String, Request>,
    order: VecDeque<String>,
    max: usize,
}

impl Pending {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            by_id: BTreeMap::new(),
            order: VecDeque::new(),
            max: max.max(1),
        }
    }

    /// Records that request `id` of kind `req` was sent.
    pub(crate) fn insert(&mut self, id: String, req: Request) {
        while self.by_id.len() >= self.max {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            self.by_id.remove(&oldest);
        }
        self.order.push_back(id.clone());
        self.by_id.insert(id, req);
    }

    /// The request `parent_id` answers, forgetting it.
    pub(crate) fn take(&mut self, parent_id: &str) -> Option<Request> {
        let req = self.by_id.remove(parent_id)?;
        // `order` keeps stale ids until they reach the front; prune them there so its length
        // stays within a small factor of the table's.
        while self
            .order
            .front()
            .is_some_and(|id| !self.by_id.contains_key(id))
        {
            self.order.pop_front();
        }
        if self.order.len() > self.max.saturating_mul(2) {
            self.order.retain(|id| self.by_id.contains_key(id));
        }
        Some(req)
    }

    /// Requests in flight.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Forgets everything (a new session: replies to the old one will not come).
    pub(crate) fn clear(&mut self) {
        self.by_id.clear();
        self.order.clear();
    }
}

/// How a request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Done (`"OK"`, or `{"Object":…,"Err":null}`).
    Ok,
    /// Refused: Kubernetes' `reason` (`AlreadyExists`, `NotFound`) when the cloud sent a
    /// `Status`, and a text for the log.
    Failed {
        /// `ErrStatus.reason`, empty when unknown.
        reason: String,
        /// What the cloud said.
        message: String,
    },
}

impl Outcome {
    /// True if the cloud said the object exists already (a re-registration).
    pub(crate) fn already_exists(&self) -> bool {
        matches!(self, Self::Failed { reason, .. } if reason == "AlreadyExists")
    }

    /// True if the cloud said the object does not exist.
    pub(crate) fn not_found(&self) -> bool {
        matches!(self, Self::Failed { reason, .. } if reason == "NotFound")
    }
}

/// Reads a reply: an `error` message fails with its text; `"OK"` succeeds; an object reply
/// succeeds unless `Err` holds a `Status` (`{"ErrStatus":…}`). As KubeEdge, an empty `Err`
/// (`{}`, how Go marshals a plain `error`) counts as success. Another text fails with it.
pub(crate) fn outcome(msg: &Message) -> Outcome {
    let failed = |reason: &str, message: String| Outcome::Failed {
        reason: reason.to_owned(),
        message,
    };
    if msg.route.operation == Operation::Error {
        let text = match msg.content.as_str() {
            Some(s) => s.to_owned(),
            None => msg.content.value().to_string(),
        };
        return failed("", text);
    }
    if msg.content.is_ok_text() {
        return Outcome::Ok;
    }
    let value = match msg.content.content_json() {
        Ok(v) => v.into_owned(),
        Err(_) => return failed("", msg.content.as_str().unwrap_or_default().to_owned()),
    };
    match value.get("Err") {
        Some(Value::Object(err)) => match err.get("ErrStatus") {
            Some(status) => failed(
                status.get("reason").and_then(Value::as_str).unwrap_or(""),
                status
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
            ),
            None => Outcome::Ok,
        },
        Some(Value::Null) | None if value.is_object() => Outcome::Ok,
        Some(Value::String(text)) if !text.is_empty() => failed("", text.clone()),
        Some(_) => Outcome::Ok,
        None => failed("", value.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ke_proto::{Content, Route};
    use serde_json::json;

    fn reply(op: &str, content: Content) -> Message {
        let route = Route::new("edgecontroller", "resource", op, "null/node/edge-1");
        Message::new("r", 0, route, content).with_parent("q")
    }

    /// Goal: replies are classified as KubeEdge's edge reads them. Method: a table of replies.
    #[test]
    fn outcomes() {
        let ok = |c: Value| outcome(&reply("response", Content::new(c)));
        assert_eq!(ok(json!("OK")), Outcome::Ok);
        assert_eq!(
            ok(json!({"Object": {"kind": "Node"}, "Err": null})),
            Outcome::Ok
        );
        assert_eq!(
            ok(json!({"Object": {"kind": "Node"}, "Err": {}})),
            Outcome::Ok
        );
        let exists = ok(json!({"Object": null, "Err": {"ErrStatus": {
            "reason": "AlreadyExists", "message": "nodes \"edge-1\" already exists", "code": 409}}}));
        assert!(exists.already_exists());
        let missing = ok(json!({"Object": null, "Err": {"ErrStatus": {"reason": "NotFound"}}}));
        assert!(missing.not_found());
        let err = outcome(&reply("error", Content::text("boom")));
        assert_eq!(
            err,
            Outcome::Failed {
                reason: String::new(),
                message: "boom".into()
            }
        );
        assert!(matches!(ok(json!("nope")), Outcome::Failed { .. }));
    }

    /// Goal: the table of requests in flight stays bounded and matches ids. Method: insert past
    /// the bound; the oldest is forgotten, the newest found once.
    #[test]
    fn pending_is_bounded() {
        let mut p = Pending::new(2);
        p.insert("a".into(), Request::Register);
        p.insert("b".into(), Request::Lease);
        p.insert("c".into(), Request::PodStatus);
        assert_eq!(p.len(), 2);
        assert_eq!(p.take("a"), None);
        assert_eq!(p.take("c"), Some(Request::PodStatus));
        assert_eq!(p.take("c"), None);
        for i in 0..100 {
            p.insert(format!("x{i}"), Request::NodeStatus);
            p.take(&format!("x{i}"));
        }
        assert!(p.order.len() <= 5, "order pruned: {}", p.order.len());
    }
}
