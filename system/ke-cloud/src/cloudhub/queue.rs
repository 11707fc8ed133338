//! One node's downstream queue, pure and clock-free (the caller passes `now`).
//!
//! Two parts, as KubeEdge's `NodeMessagePool` (§3.2):
//! - the *ACK store*: ACK-mode messages keyed by object UID (group `resource`, not a
//!   `response`), otherwise by message id. A newer message for a key replaces the stored one
//!   only if its resourceVersion is larger and the stored one is not a delete; a delete always
//!   replaces; a send of an object replaces its pending release (edgefleet's addition). A replaced message that was in flight is forgotten (its late ACK is ignored) and
//!   the newer one is sent instead. Bounded by objects, not by messages.
//! - the *no-ACK queue*: sent once, in order, forgotten; bounded by messages.
//!
//! An ACK-mode entry moves Ready → InFlight (sent; resent with the same `msg_id` every
//! `ack_resend_interval` up to `ack_sends_max` sends) → Backoff (sends ran out; capped
//! exponential delay) → Ready. An ACK removes the entry in any state. At most `inflight_max`
//! entries are in flight, so a slow edge leaves the rest in the store, where they coalesce.
//! Resource versions that are not decimal integers compare as "newer" (Go panics on them).

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, VecDeque},
    sync::Arc,
};

use ke_proto::{Content, Delivery, Group, Message, Operation};
use tokio::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::{Queued, config::HubConfig};

/// The store key of an ACK-mode message.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Key {
    /// An object, by `metadata.uid`.
    Uid(String),
    /// Anything else, by `msg_id`.
    Msg(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Ready,
    InFlight { sends: u32, deadline: Instant },
    Backoff { until: Instant },
}

/// A queued message and its encoded text: encoded once when queued (the size check needs
/// it anyway), written as is at every send and resend.
///
/// The message is kept without its content: the text carries it to the edge, and what the
/// queue decides by (delivery mode, the object's UID, whether it deletes or releases) is read
/// once, here. A pod's content as a `Value` is about 15 KiB against 3 KiB of text, and it was
/// held until the edge's ACK: in a 5,000-node burst about 50,000 of them at once.
#[derive(Debug, Clone)]
pub(crate) struct Frame {
    /// Header and route (content emptied).
    pub(crate) msg: Arc<Message>,
    pub(crate) text: Utf8Bytes,
    delivery: Delivery,
    /// `metadata.uid` of a `resource` object that is not a response (the ACK-store key).
    uid: Option<Arc<str>>,
    delete: bool,
    release: bool,
}

impl Frame {
    pub(crate) fn new(mut msg: Message, text: String) -> Self {
        let uid = (msg.route.group == Group::Resource
            && msg.route.operation != Operation::Response)
            .then(|| msg.content.metadata_str("uid"))
            .flatten()
            .filter(|uid| !uid.is_empty())
            .map(Arc::from);
        let (delivery, delete, release) = (msg.delivery(), msg.is_delete(), msg.is_release());
        msg.content = Content::null();
        Self {
            msg: Arc::new(msg),
            text: Utf8Bytes::from(text),
            delivery,
            uid,
            delete,
            release,
        }
    }

    /// Encodes `msg` (tests and callers without a size limit).
    #[cfg(test)]
    pub(crate) fn encode(msg: Message) -> Self {
        let text = ke_proto::encode_text(&msg);
        Self::new(msg, text)
    }

    /// The message as sent, content included (decoded from the text).
    #[cfg(test)]
    pub(crate) fn sent(&self) -> Message {
        ke_proto::decode(self.text.as_bytes()).expect("invariant: the text was encoded here")
    }
}

#[derive(Debug)]
struct Entry {
    /// Shared with the frames handed out, so a (re)send copies neither object nor text.
    frame: Frame,
    rv: Option<u64>,
    delete: bool,
    /// A delete that is only a release (the object may be sent again).
    release: bool,
    state: State,
    /// Times this message ran out of sends (drives the backoff).
    timeouts: u32,
    /// First send of this `msg_id`, for the ACK latency.
    first_sent: Option<Instant>,
}

impl Entry {
    fn new(frame: Frame) -> Self {
        Self {
            rv: frame.msg.header.resource_version.parse().ok(),
            delete: frame.delete,
            release: frame.release,
            frame,
            state: State::Ready,
            timeouts: 0,
            first_sent: None,
        }
    }

    /// KubeEdge's store rule: deletes always win; nothing replaces a delete; otherwise the
    /// larger resourceVersion wins. One addition: a pending *release* is replaced by a later
    /// send of the object (the node needs it again; its version may be the same), or the
    /// edge would drop an object its new pod references.
    fn supersedes(&self, old: &Entry) -> bool {
        if self.delete {
            return true;
        }
        if old.delete {
            return old.release;
        }
        match (self.rv, old.rv) {
            (Some(new), Some(old)) => new > old,
            _ => true,
        }
    }
}

/// Why a message was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PushError {
    /// The named queue is at its bound.
    Full { queue: &'static str, max: usize },
    /// ACK-mode, not a delete, and no resourceversion.
    MissingResourceVersion,
}

/// The bounds and timings a queue needs, copied from [`HubConfig`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct QueueLimits {
    pub(crate) ack_objects_max: usize,
    pub(crate) noack_len_max: usize,
    pub(crate) inflight_max: usize,
    pub(crate) resend_interval: Duration,
    pub(crate) sends_max: u32,
    pub(crate) backoff_initial: Duration,
    pub(crate) backoff_max: Duration,
}

impl From<&HubConfig> for QueueLimits {
    fn from(cfg: &HubConfig) -> Self {
        Self {
            ack_objects_max: cfg.ack_objects_max,
            noack_len_max: cfg.noack_len_max,
            inflight_max: cfg.inflight_max,
            resend_interval: cfg.ack_resend_interval,
            sends_max: cfg.ack_sends_max,
            backoff_initial: cfg.requeue_backoff_initial,
            backoff_max: cfg.requeue_backoff_max,
        }
    }
}

/// What one [`NodeQueue::poll`] produced.
#[derive(Debug, Default)]
pub(crate) struct Poll {
    /// Frames to write, in order.
    pub(crate) frames: Vec<Frame>,
    /// How many of them are resends.
    pub(crate) resends: u64,
    /// Messages whose sends ran out (re-queued with backoff).
    pub(crate) timeouts: u64,
}

/// One node's queue.
#[derive(Debug)]
pub(crate) struct NodeQueue {
    entries: BTreeMap<Key, Entry>,
    /// Keys in state Ready, in send order (a key is here iff its state is Ready).
    ready: VecDeque<Key>,
    /// Resend deadlines (InFlight) and backoff ends (Backoff), one per such entry.
    timers: BTreeSet<(Instant, Key)>,
    /// `msg_id` of every entry sent at least once -> its key (lookup only).
    sent_ids: HashMap<String, Key>,
    inflight: usize,
    noack: VecDeque<Frame>,
    limits: QueueLimits,
}

impl NodeQueue {
    pub(crate) fn new(limits: QueueLimits) -> Self {
        Self {
            entries: BTreeMap::new(),
            ready: VecDeque::new(),
            timers: BTreeSet::new(),
            sent_ids: HashMap::new(),
            inflight: 0,
            noack: VecDeque::new(),
            limits,
        }
    }

    /// Queues a downstream message by its delivery mode.
    pub(crate) fn push(&mut self, frame: Frame) -> Result<Queued, PushError> {
        match frame.delivery {
            Delivery::NoAck => self.push_noack(frame),
            Delivery::DropMissingResourceVersion => Err(PushError::MissingResourceVersion),
            Delivery::Ack => self.push_ack(frame),
        }
    }

    /// Queues a message to be sent once, whatever its delivery mode (replies to edge
    /// requests: the requester retries, so they need no ACK).
    pub(crate) fn push_noack(&mut self, frame: Frame) -> Result<Queued, PushError> {
        if self.noack.len() >= self.limits.noack_len_max {
            return Err(PushError::Full {
                queue: "noack",
                max: self.limits.noack_len_max,
            });
        }
        self.noack.push_back(frame);
        Ok(Queued::New)
    }

    fn push_ack(&mut self, frame: Frame) -> Result<Queued, PushError> {
        let key = key_of(&frame);
        let incoming = Entry::new(frame);
        let Some(old) = self.entries.get(&key) else {
            if self.entries.len() >= self.limits.ack_objects_max {
                return Err(PushError::Full {
                    queue: "ack",
                    max: self.limits.ack_objects_max,
                });
            }
            self.entries.insert(key.clone(), incoming);
            self.ready.push_back(key);
            return Ok(Queued::New);
        };
        if !incoming.supersedes(old) {
            return Ok(Queued::Superseded);
        }
        let old = self
            .entries
            .insert(key.clone(), incoming)
            .expect("invariant: the key was just found");
        self.sent_ids.remove(&old.frame.msg.header.id);
        match old.state {
            State::Ready => {} // keeps its place in `ready`
            State::InFlight { deadline, .. } => {
                self.timers.remove(&(deadline, key.clone()));
                self.inflight -= 1;
                self.ready.push_back(key);
            }
            State::Backoff { until } => {
                self.timers.remove(&(until, key.clone()));
                self.ready.push_back(key);
            }
        }
        Ok(Queued::Replaced)
    }

    /// The frames due at `now` (at most `batch_max`): resends first, then no-ACK messages,
    /// then new ACK-mode sends while fewer than `inflight_max` are in flight.
    pub(crate) fn poll(&mut self, now: Instant, batch_max: usize) -> Poll {
        let mut out = Poll::default();
        self.fire_timers(now, batch_max, &mut out);
        while out.frames.len() < batch_max {
            let Some(frame) = self.noack.pop_front() else {
                break;
            };
            out.frames.push(frame);
        }
        while out.frames.len() < batch_max && self.inflight < self.limits.inflight_max {
            let Some(key) = self.ready.pop_front() else {
                break;
            };
            self.start_send(key, now, &mut out);
        }
        out
    }

    fn fire_timers(&mut self, now: Instant, batch_max: usize, out: &mut Poll) {
        while out.frames.len() < batch_max {
            match self.timers.first() {
                Some((at, _)) if *at <= now => {}
                _ => return,
            }
            let (_, key) = self
                .timers
                .pop_first()
                .expect("invariant: first() was Some");
            let limits = self.limits;
            let entry = self
                .entries
                .get_mut(&key)
                .expect("invariant: every timer belongs to an entry");
            match entry.state {
                State::InFlight { sends, .. } if sends < limits.sends_max => {
                    let deadline = now + limits.resend_interval;
                    entry.state = State::InFlight {
                        sends: sends + 1,
                        deadline,
                    };
                    out.frames.push(entry.frame.clone());
                    out.resends += 1;
                    self.timers.insert((deadline, key));
                }
                State::InFlight { .. } => {
                    entry.timeouts = entry.timeouts.saturating_add(1);
                    let until = now + backoff(&limits, entry.timeouts);
                    entry.state = State::Backoff { until };
                    self.inflight -= 1;
                    out.timeouts += 1;
                    self.timers.insert((until, key));
                }
                State::Backoff { .. } => {
                    entry.state = State::Ready;
                    self.ready.push_back(key);
                }
                State::Ready => unreachable!("invariant: Ready entries have no timer"),
            }
        }
    }

    fn start_send(&mut self, key: Key, now: Instant, out: &mut Poll) {
        let entry = self
            .entries
            .get_mut(&key)
            .expect("invariant: keys in `ready` have entries");
        let deadline = now + self.limits.resend_interval;
        entry.state = State::InFlight { sends: 1, deadline };
        entry.first_sent.get_or_insert(now);
        out.frames.push(entry.frame.clone());
        self.sent_ids
            .insert(entry.frame.msg.header.id.clone(), key.clone());
        self.inflight += 1;
        self.timers.insert((deadline, key));
    }

    /// Handles an ACK (`parent_msg_id` = `acked_id`): removes the entry and returns the time
    /// since its first send, or `None` if no queued message has that id (already ACKed, or
    /// replaced by a newer version).
    pub(crate) fn ack(&mut self, acked_id: &str, now: Instant) -> Option<Duration> {
        let key = self.sent_ids.remove(acked_id)?;
        let entry = self
            .entries
            .remove(&key)
            .expect("invariant: sent ids belong to entries");
        match entry.state {
            State::Ready => self.ready.retain(|k| *k != key),
            State::InFlight { deadline, .. } => {
                self.timers.remove(&(deadline, key));
                self.inflight -= 1;
            }
            State::Backoff { until } => {
                self.timers.remove(&(until, key));
            }
        }
        entry.first_sent.map(|t| now.saturating_duration_since(t))
    }

    /// After a session ends: every in-flight message becomes Ready again, ahead of the rest
    /// and in the order it was sent, so the next session resends it at once (same `msg_id`).
    pub(crate) fn reset_inflight(&mut self) {
        let inflight: Vec<(Instant, Key)> = self
            .timers
            .iter()
            .filter(|(_, k)| matches!(self.entries[k].state, State::InFlight { .. }))
            .cloned()
            .collect();
        for (at, key) in inflight.into_iter().rev() {
            self.timers.remove(&(at, key.clone()));
            if let Some(entry) = self.entries.get_mut(&key) {
                entry.state = State::Ready;
            }
            self.ready.push_front(key);
        }
        self.inflight = 0;
    }

    /// The earliest resend or backoff deadline.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.timers.first().map(|(at, _)| *at)
    }

    /// `(ACK store objects, no-ACK messages, in flight)`.
    pub(crate) fn depths(&self) -> (usize, usize, usize) {
        (self.entries.len(), self.noack.len(), self.inflight)
    }

    /// True if nothing is queued.
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.noack.is_empty()
    }
}

fn key_of(frame: &Frame) -> Key {
    match &frame.uid {
        Some(uid) => Key::Uid(uid.to_string()),
        None => Key::Msg(frame.msg.header.id.clone()),
    }
}

fn backoff(limits: &QueueLimits, timeouts: u32) -> Duration {
    let factor = 1u32 << timeouts.saturating_sub(1).min(16);
    limits
        .backoff_initial
        .saturating_mul(factor)
        .min(limits.backoff_max)
}

#[cfg(test)]
mod tests;
