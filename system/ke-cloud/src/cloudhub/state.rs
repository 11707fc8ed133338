//! The hub's shared state and [`HubHandle`], the downstream API.
//!
//! One `std::sync::Mutex` guards the node map (queues and session slots); it is never held
//! across an `.await`, and every operation under it is O(log n) or bounded by a batch size.
//! Session events are emitted under the same lock, so their order matches the state changes.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

use ke_proto::{Limits, Message, NodeId, encode_text_with, strip_node_prefix};
use tokio::{
    sync::{Notify, mpsc},
    time::Instant,
};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{
    CloseReason, HubConfig, HubEvent, Queued, SendError,
    metrics::{Counters, Gauges, MetricsSnapshot, inc},
    queue::{Frame, NodeQueue, Poll, PushError, QueueLimits},
};

/// State shared by the accept loop, every session and every [`HubHandle`].
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) cfg: HubConfig,
    limits: QueueLimits,
    state: Mutex<State>,
    pub(crate) counters: Counters,
    events: mpsc::Sender<HubEvent>,
    /// Upstream messages to EdgeController; a full channel stalls the sending session only.
    pub(crate) upstream: mpsc::Sender<(NodeId, Message)>,
    /// Cancelled when the hub shuts down; every session token is a child of it.
    pub(crate) shutdown: CancellationToken,
}

#[derive(Debug, Default)]
struct State {
    nodes: BTreeMap<NodeId, Slot>,
    /// Nodes with a session.
    sessions: usize,
    /// Upgrades admitted under the node limit whose session is not registered yet.
    reserved: usize,
    next_session: u64,
    /// Orders offline queues for eviction (smaller = offline longer).
    offline_seq: u64,
}

#[derive(Debug)]
struct Slot {
    queue: NodeQueue,
    session: Option<SessionSlot>,
    offline_since: u64,
}

#[derive(Debug)]
struct SessionSlot {
    id: u64,
    cancel: CancellationToken,
    /// Wakes this session's writer when its queue has work.
    notify: Arc<Notify>,
}

/// What a registered session needs.
#[derive(Debug)]
pub(crate) struct Ticket {
    pub(crate) id: u64,
    pub(crate) cancel: CancellationToken,
    pub(crate) notify: Arc<Notify>,
}

/// A place under the node limit, held from admission until the session registers.
#[derive(Debug)]
pub(crate) struct Reservation {
    shared: Arc<Shared>,
    counted: bool,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.counted {
            self.shared.lock().reserved -= 1;
        }
    }
}

impl Shared {
    /// The shared state and the receiving ends of the upstream and event channels.
    pub(crate) fn new(
        cfg: HubConfig,
    ) -> (
        Arc<Self>,
        mpsc::Receiver<(NodeId, Message)>,
        mpsc::Receiver<HubEvent>,
    ) {
        let (upstream, upstream_rx) = mpsc::channel(cfg.upstream_buffer_max);
        let (events, events_rx) = mpsc::channel(cfg.events_buffer_max);
        let shared = Arc::new(Self {
            limits: QueueLimits::from(&cfg),
            cfg,
            state: Mutex::new(State::default()),
            counters: Counters::default(),
            events,
            upstream,
            shutdown: CancellationToken::new(),
        });
        (shared, upstream_rx, events_rx)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes a place under the node limit for `node`, or returns the limit. A node that has a
    /// session is always admitted: its new session replaces the old one.
    pub(crate) fn reserve(self: &Arc<Self>, node: &NodeId) -> Result<Reservation, usize> {
        let mut st = self.lock();
        let has_session = st.nodes.get(node).is_some_and(|s| s.session.is_some());
        if has_session {
            return Ok(Reservation {
                shared: self.clone(),
                counted: false,
            });
        }
        if st.sessions + st.reserved >= self.cfg.node_limit {
            return Err(self.cfg.node_limit);
        }
        st.reserved += 1;
        Ok(Reservation {
            shared: self.clone(),
            counted: true,
        })
    }

    /// Makes `node`'s session current, closing (replacing) any previous one.
    pub(crate) fn register(&self, node: &NodeId, mut reservation: Reservation) -> Ticket {
        let mut guard = self.lock();
        let st = &mut *guard;
        if reservation.counted {
            st.reserved -= 1;
            reservation.counted = false;
        }
        st.next_session += 1;
        let id = st.next_session;
        if !st.nodes.contains_key(node) && !self.make_slot(st, node) {
            // Only reachable when sessions briefly exceed node_limit (a node whose old
            // session ended during its reconnect's upgrade): keep the admitted edge and
            // exceed the queue bound by one.
            warn!(%node, "all node queues belong to connected nodes; one over the bound");
            insert_slot(st, node, self.limits);
        }
        let slot = st.nodes.get_mut(node).expect("invariant: slot made above");
        let ticket = Ticket {
            id,
            cancel: self.shutdown.child_token(),
            notify: Arc::new(Notify::new()),
        };
        let old = slot.session.replace(SessionSlot {
            id,
            cancel: ticket.cancel.clone(),
            notify: ticket.notify.clone(),
        });
        slot.queue.reset_inflight();
        match old {
            Some(old) => {
                old.cancel.cancel();
                inc(&self.counters.sessions_replaced);
                info!(%node, old = old.id, new = id, "session replaced by a newer connection");
                self.emit(HubEvent::Disconnected {
                    node: node.clone(),
                    session: old.id,
                    reason: CloseReason::Replaced,
                });
            }
            None => st.sessions += 1,
        }
        self.emit(HubEvent::Connected {
            node: node.clone(),
            session: id,
        });
        ticket
    }

    /// Ends session `id` of `node` if it is still the current one.
    pub(crate) fn unregister(&self, node: &NodeId, id: u64, reason: CloseReason) {
        let mut guard = self.lock();
        let st = &mut *guard;
        st.offline_seq += 1;
        let seq = st.offline_seq;
        let Some(slot) = st.nodes.get_mut(node) else {
            return;
        };
        if slot.session.as_ref().is_none_or(|s| s.id != id) {
            return; // replaced: its Disconnected event was emitted then
        }
        slot.session = None;
        slot.offline_since = seq;
        slot.queue.reset_inflight();
        st.sessions -= 1;
        self.emit(HubEvent::Disconnected {
            node: node.clone(),
            session: id,
            reason,
        });
    }

    /// Adds a queue for `node`, evicting the queue of the node offline longest if at the
    /// bound. False if every queue belongs to a connected node.
    fn make_slot(&self, st: &mut State, node: &NodeId) -> bool {
        if st.nodes.len() >= self.cfg.node_queues_max {
            let victim = st
                .nodes
                .iter()
                .filter(|(_, s)| s.session.is_none())
                .min_by_key(|(_, s)| (!s.queue.is_empty(), s.offline_since))
                .map(|(n, _)| n.clone());
            let Some(victim) = victim else {
                return false;
            };
            st.nodes.remove(&victim);
            inc(&self.counters.queues_evicted);
            debug!(node = %victim, "evicted an offline node queue");
        }
        insert_slot(st, node, self.limits);
        true
    }

    /// Frames due for session `id` of `node` (none if it is no longer current) and the next
    /// timer deadline.
    pub(crate) fn poll(&self, node: &NodeId, id: u64, now: Instant) -> (Poll, Option<Instant>) {
        let mut st = self.lock();
        match st.nodes.get_mut(node) {
            Some(slot) if slot.session.as_ref().is_some_and(|s| s.id == id) => {
                let poll = slot.queue.poll(now, self.cfg.write_batch_max);
                (poll, slot.queue.next_deadline())
            }
            _ => (Poll::default(), None),
        }
    }

    /// Applies an ACK from `node`; true if it matched a queued message.
    pub(crate) fn ack(&self, node: &NodeId, acked_id: &str, now: Instant) -> bool {
        let mut st = self.lock();
        let Some(slot) = st.nodes.get_mut(node) else {
            return false;
        };
        let Some(latency) = slot.queue.ack(acked_id, now) else {
            return false;
        };
        self.counters.observe_ack(latency);
        if let Some(s) = &slot.session {
            s.notify.notify_one(); // the in-flight window may have opened
        }
        true
    }

    fn send(&self, node: &NodeId, mut msg: Message, reply: bool) -> Result<Queued, SendError> {
        if let Some((prefix_node, rest)) = strip_node_prefix(&msg.route.resource)
            && prefix_node == *node
        {
            msg.route.resource = rest.to_owned(); // KubeEdge's TrimMessage
        }
        let text = encoded(node, &msg, &self.cfg.frame_limits)?;
        let mut guard = self.lock();
        let st = &mut *guard;
        if !st.nodes.contains_key(node) && !self.make_slot(st, node) {
            return Err(SendError::TooManyNodes {
                node: node.clone(),
                max: self.cfg.node_queues_max,
            });
        }
        let slot = st
            .nodes
            .get_mut(node)
            .expect("invariant: slot exists or was made");
        let msg_id = msg.header.id.clone();
        let frame = Frame::new(msg, text);
        let pushed = if reply {
            slot.queue.push_noack(frame)
        } else {
            slot.queue.push(frame)
        };
        let queued = pushed.map_err(|e| match e {
            PushError::Full { queue, max } => SendError::QueueFull {
                node: node.clone(),
                queue,
                max,
            },
            PushError::MissingResourceVersion => SendError::MissingResourceVersion {
                node: node.clone(),
                msg_id,
            },
        })?;
        if queued != Queued::Superseded
            && let Some(s) = &slot.session
        {
            s.notify.notify_one();
        }
        Ok(queued)
    }

    /// Emits a session event without waiting: a full channel drops it (counted).
    fn emit(&self, event: HubEvent) {
        if let Err(e) = self.events.try_send(event) {
            inc(&self.counters.events_dropped);
            warn!(event = ?e.into_inner(), "event channel full or closed; event dropped");
        }
    }

    fn gauges(&self) -> Gauges {
        let st = self.lock();
        let mut g = Gauges {
            connected_nodes: st.sessions,
            node_queues: st.nodes.len(),
            ..Gauges::default()
        };
        for slot in st.nodes.values() {
            let (ack, noack, inflight) = slot.queue.depths();
            g.ack_queue_depth += ack;
            g.noack_queue_depth += noack;
            g.inflight += inflight;
        }
        g
    }
}

fn insert_slot(st: &mut State, node: &NodeId, limits: QueueLimits) {
    st.offline_seq += 1;
    let slot = Slot {
        queue: NodeQueue::new(limits),
        session: None,
        offline_since: st.offline_seq,
    };
    st.nodes.insert(node.clone(), slot);
}

/// The message's frame text, or why it cannot be sent.
fn encoded(node: &NodeId, msg: &Message, limits: &Limits) -> Result<String, SendError> {
    match encode_text_with(msg, limits) {
        Ok(text) => Ok(text),
        Err(ke_proto::EncodeError::TooLarge { len, max }) => Err(SendError::TooLarge {
            node: node.clone(),
            msg_id: msg.header.id.clone(),
            len,
            max,
        }),
    }
}

/// The downstream API of a hub: cheap to clone, usable from any task.
#[derive(Debug, Clone)]
pub struct HubHandle {
    pub(crate) shared: Arc<Shared>,
}

impl HubHandle {
    /// Queues `msg` for `node` without waiting. ACK-mode messages (see
    /// [`Message::needs_ack`]) go to the node's ACK store, where a newer version of the same
    /// object replaces an older one; the rest go to its no-ACK queue. A cloud-internal
    /// `node/<node>/` resource prefix is stripped. The node need not be connected: its queue
    /// is delivered when it connects.
    ///
    /// Backpressure policy: a full queue refuses with [`SendError::QueueFull`] (for this node
    /// only; other nodes are unaffected), counted in `cloudhub_send_rejected_total`. The
    /// caller may drop the message and rely on the resync at the node's next `Connected`.
    pub fn send(&self, node: &NodeId, msg: Message) -> Result<Queued, SendError> {
        self.send_inner(node, msg, false)
    }

    /// Queues a reply to an edge request (`parent_msg_id` set) to be sent once: the edge's
    /// requester retries, so replies need no ACK and no resourceVersion (KubeEdge would drop an
    /// ACK-mode error reply for lacking one). Same backpressure as [`Self::send`].
    pub fn send_reply(&self, node: &NodeId, msg: Message) -> Result<Queued, SendError> {
        self.send_inner(node, msg, true)
    }

    fn send_inner(&self, node: &NodeId, msg: Message, reply: bool) -> Result<Queued, SendError> {
        let result = self.shared.send(node, msg, reply);
        if let Err(e) = &result {
            inc(&self.shared.counters.send_rejected);
            debug!(error = %e, "downstream send refused");
        }
        result
    }

    /// True if `node` has a session.
    pub fn is_connected(&self, node: &NodeId) -> bool {
        self.shared
            .lock()
            .nodes
            .get(node)
            .is_some_and(|s| s.session.is_some())
    }

    /// The nodes with a session, sorted.
    pub fn connected_nodes(&self) -> Vec<NodeId> {
        let st = self.shared.lock();
        st.nodes
            .iter()
            .filter(|(_, s)| s.session.is_some())
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// A copy of every metric.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.shared.counters.snapshot(self.shared.gauges())
    }

    /// Every metric in the Prometheus text format.
    pub fn metrics_text(&self) -> String {
        self.metrics().to_prometheus()
    }
}

/// A hub without a server, for the controllers' unit tests: open a session for a node and
/// take the frames its queue would write.
#[cfg(test)]
impl HubHandle {
    pub(crate) fn for_tests() -> Self {
        let (shared, _, _) = Shared::new(HubConfig::default());
        Self { shared }
    }

    /// Opens a session for `node`; returns its id.
    pub(crate) fn test_connect(&self, node: &NodeId) -> u64 {
        let reservation = self
            .shared
            .reserve(node)
            .expect("invariant: tests stay under the node limit");
        self.shared.register(node, reservation).id
    }

    /// The messages due for session `id` of `node` now, in send order.
    pub(crate) fn test_frames(&self, node: &NodeId, id: u64) -> Vec<Message> {
        let (poll, _) = self.shared.poll(node, id, Instant::now());
        poll.frames.iter().map(Frame::sent).collect()
    }
}
