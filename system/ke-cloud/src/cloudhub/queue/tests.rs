use super::*;
use ke_proto::{Content, Route, Source};
use serde_json::json;

fn limits() -> QueueLimits {
    QueueLimits {
        ack_objects_max: 3,
        noack_len_max: 2,
        inflight_max: 2,
        resend_interval: Duration::from_secs(5),
        sends_max: 3,
        backoff_initial: Duration::from_secs(1),
        backoff_max: Duration::from_secs(4),
    }
}

fn pod(id: &str, uid: &str, rv: u64, op: Operation) -> Message {
    let route = Route::new(Source::EdgeController, Group::Resource, op, "default/pod/p");
    let content = json!({"metadata": {"name": "p", "uid": uid, "resourceVersion": rv.to_string()}});
    Message::new(id, 0, route, Content::new(content)).with_resource_version(rv.to_string())
}

fn ids(poll: &Poll) -> Vec<&str> {
    poll.frames
        .iter()
        .map(|f| f.msg.header.id.as_str())
        .collect()
}

/// Goal: the ACK store coalesces by UID with KubeEdge's rules. Method: push updates with
/// rising and falling resource versions, then a delete, then an update after the delete, and
/// check what one poll sends.
#[test]
fn coalesces_by_uid_and_resource_version() {
    let mut q = NodeQueue::new(limits());
    let t = Instant::now();
    assert_eq!(
        q.push(Frame::encode(pod("a", "u1", 5, Operation::Update))),
        Ok(Queued::New)
    );
    assert_eq!(
        q.push(Frame::encode(pod("b", "u1", 7, Operation::Update))),
        Ok(Queued::Replaced)
    );
    assert_eq!(
        q.push(Frame::encode(pod("c", "u1", 6, Operation::Update))),
        Ok(Queued::Superseded)
    );
    assert_eq!(ids(&q.poll(t, 10)), ["b"]);
    // A delete replaces even an in-flight update; nothing replaces the delete.
    assert_eq!(
        q.push(Frame::encode(pod("d", "u1", 7, Operation::Delete))),
        Ok(Queued::Replaced)
    );
    assert_eq!(
        q.push(Frame::encode(pod("e", "u1", 9, Operation::Update))),
        Ok(Queued::Superseded)
    );
    assert_eq!(ids(&q.poll(t, 10)), ["d"]);
    assert_eq!(q.ack("b", t), None, "the replaced message's ACK is ignored");
    assert_eq!(
        q.ack("d", t + Duration::from_secs(1)),
        Some(Duration::from_secs(1))
    );
    assert!(q.is_empty());
}

/// Goal: resend with the same id, then backoff, then send again. Method: poll at the resend
/// deadlines without ACKing and follow the entry through its states.
#[test]
fn resend_then_backoff_then_retry() {
    let mut q = NodeQueue::new(limits());
    let t0 = Instant::now();
    q.push(Frame::encode(pod("a", "u1", 1, Operation::Insert)))
        .unwrap();
    assert_eq!(ids(&q.poll(t0, 10)), ["a"]);
    assert!(q.poll(t0 + Duration::from_secs(4), 10).frames.is_empty());
    let t5 = t0 + Duration::from_secs(5);
    let p = q.poll(t5, 10);
    assert_eq!((ids(&p), p.resends), (vec!["a"], 1));
    let t10 = t5 + Duration::from_secs(5);
    assert_eq!(ids(&q.poll(t10, 10)), ["a"]);
    // Third send was the last: the next deadline re-queues with a 1 s backoff.
    let t15 = t10 + Duration::from_secs(5);
    let p = q.poll(t15, 10);
    assert_eq!((p.frames.len(), p.timeouts), (0, 1));
    assert_eq!(q.next_deadline(), Some(t15 + Duration::from_secs(1)));
    assert_eq!(ids(&q.poll(t15 + Duration::from_secs(1), 10)), ["a"]);
    assert_eq!(
        q.ack("a", t15 + Duration::from_secs(2)),
        Some(Duration::from_secs(17))
    );
    assert_eq!(q.depths(), (0, 0, 0));
}

/// Goal: the in-flight window holds back later objects, which then coalesce; bounds refuse.
/// Method: window 2, three objects, an update of the third while it waits; store bound 3.
#[test]
fn inflight_window_and_bounds() {
    let mut q = NodeQueue::new(limits());
    let t = Instant::now();
    for (id, uid) in [("a", "u1"), ("b", "u2"), ("c", "u3")] {
        q.push(Frame::encode(pod(id, uid, 1, Operation::Insert)))
            .unwrap();
    }
    assert_eq!(
        q.push(Frame::encode(pod("x", "u4", 1, Operation::Insert))),
        Err(PushError::Full {
            queue: "ack",
            max: 3
        })
    );
    assert_eq!(ids(&q.poll(t, 10)), ["a", "b"]);
    assert_eq!(
        q.push(Frame::encode(pod("c2", "u3", 2, Operation::Update))),
        Ok(Queued::Replaced)
    );
    assert!(q.poll(t, 10).frames.is_empty());
    q.ack("a", t).unwrap();
    assert_eq!(ids(&q.poll(t, 10)), ["c2"]);
    let mut unrv = pod("n", "u9", 1, Operation::Update);
    unrv.header.resource_version.clear();
    assert_eq!(
        q.push(Frame::encode(unrv)),
        Err(PushError::MissingResourceVersion)
    );
}

/// Goal: no-ACK messages go once, in order, bounded; a session reset resends in-flight
/// messages first. Method: queue no-ACK keepalive-style messages and an ACK-mode pod.
#[test]
fn noack_and_reset() {
    let mut q = NodeQueue::new(limits());
    let t = Instant::now();
    let noack = |id: &str| {
        let route = Route::new(
            Source::EdgeController,
            Group::Resource,
            Operation::Update,
            "null/node/e",
        );
        Message::new(id, 0, route, Content::null())
    };
    q.push(Frame::encode(pod("a", "u1", 1, Operation::Insert)))
        .unwrap();
    assert_eq!(ids(&q.poll(t, 10)), ["a"]);
    q.push(Frame::encode(pod("b", "u2", 1, Operation::Insert)))
        .unwrap();
    let mut node_update = noack("n1");
    node_update.route.operation = Operation::Insert; // node insert from edgecontroller: no ACK
    q.push(Frame::encode(node_update)).unwrap();
    q.push(Frame::encode(noack("n2").with_resource("null/lease/e")))
        .unwrap();
    assert!(matches!(
        q.push(Frame::encode(noack("n3").with_resource("null/lease/e"))),
        Err(PushError::Full { queue: "noack", .. })
    ));
    q.reset_inflight();
    assert_eq!(ids(&q.poll(t, 10)), ["n1", "n2", "a", "b"]);
}

/// Goal: a configmap released from a node and referenced again before the release left the
/// queue reaches the node (the fleet simulator found it dropped: nothing replaced a delete,
/// and the resend carried the same resourceVersion). Method: queue a release, then an insert
/// of the same UID and version; the insert is what one poll sends. A real delete still wins.
#[test]
fn a_send_replaces_a_pending_release_but_not_a_delete() {
    let mut q = NodeQueue::new(limits());
    let t = Instant::now();
    let mut release = pod("r", "u1", 5, Operation::Delete);
    release.content = Content::new(json!({"metadata": {"name": "p", "uid": "u1",
        "annotations": {ke_proto::inventory::RELEASED_ANNOTATION: "true"}}}));
    assert!(release.is_release());
    assert_eq!(q.push(Frame::encode(release)), Ok(Queued::New));
    assert_eq!(
        q.push(Frame::encode(pod("i", "u1", 5, Operation::Insert))),
        Ok(Queued::Replaced)
    );
    assert_eq!(ids(&q.poll(t, 10)), ["i"]);
    let mut q = NodeQueue::new(limits());
    assert_eq!(
        q.push(Frame::encode(pod("d", "u2", 5, Operation::Delete))),
        Ok(Queued::New)
    );
    assert_eq!(
        q.push(Frame::encode(pod("i", "u2", 6, Operation::Insert))),
        Ok(Queued::Superseded)
    );
    assert_eq!(ids(&q.poll(t, 10)), ["d"]);
}
