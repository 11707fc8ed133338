//! [`HubConfig`]: CloudHub's knobs and bounds, each with its default.

use std::time::Duration;

use ke_proto::Limits;

/// CloudHub configuration. `Default` gives KubeEdge's values where KubeEdge has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubConfig {
    /// Most nodes with a session at once (`cloudHub.nodeLimit`, default 500). A new node over
    /// the limit is refused with `503` and the limit in the body; a reconnect of a node that
    /// already has a session is always admitted (it replaces the old session).
    pub node_limit: usize,
    /// A session ends if no `keepalive` arrives for this long (`keepaliveInterval`, 30 s).
    pub keepalive_interval: Duration,
    /// Refuse a connection whose `node_id` differs from its certificate's node name (on).
    pub node_authorization: bool,
    /// TLS handshake plus WebSocket upgrade must finish within this (30 s).
    pub handshake_timeout: Duration,
    /// A write (one batch of frames) stalled this long ends the session (30 s; KubeEdge's
    /// `writeTimeout`, which KubeEdge itself does not apply).
    pub write_timeout: Duration,
    /// An ACK-mode message is resent (same `msg_id`) this often until ACKed (5 s).
    pub ack_resend_interval: Duration,
    /// Sends of one ACK-mode message before it is re-queued with backoff (5: one send and four
    /// resends, as KubeEdge).
    pub ack_sends_max: u32,
    /// First delay before a message whose sends ran out is tried again (1 s); doubles on each
    /// further timeout of the same message.
    pub requeue_backoff_initial: Duration,
    /// Cap of that delay (60 s).
    pub requeue_backoff_max: Duration,
    /// Objects held in one node's ACK store (queued, in flight or backing off); 10,000.
    pub ack_objects_max: usize,
    /// Messages held in one node's no-ACK queue (1,024).
    pub noack_len_max: usize,
    /// ACK-mode messages sent to one node and not yet ACKed (128). Further ones wait in the
    /// store, where newer versions of the same object replace them.
    pub inflight_max: usize,
    /// Frames written per writer wake-up before queue state is re-read (64).
    pub write_batch_max: usize,
    /// Node queues kept at once, connected or not (2 × the default node limit: 1,000).
    pub node_queues_max: usize,
    /// Malformed upstream frames tolerated per session before it is closed (0: the first one
    /// closes the session, as a KubeEdge peer drops a connection it cannot read).
    pub malformed_frames_max: u32,
    /// Capacity of the upstream channel to EdgeController (4,096).
    pub upstream_buffer_max: usize,
    /// Upstream messages one session holds while that channel is full (64). The session
    /// keeps reading, so its ACKs and keepalives still count; it stops reading only when it
    /// holds this many (backpressure on that edge alone).
    pub session_held_max: usize,
    /// Capacity of the event channel; events beyond it are dropped and counted (1,024).
    pub events_buffer_max: usize,
    /// Connections in TLS/upgrade handshake at once, on top of `node_limit` sessions (128).
    pub handshakes_max: usize,
    /// Frame size limit, both directions (8 MiB).
    pub frame_limits: Limits,
    /// How long shutdown waits for sessions to close (5 s).
    pub drain_timeout: Duration,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            node_limit: 500,
            keepalive_interval: Duration::from_secs(30),
            node_authorization: true,
            handshake_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(30),
            ack_resend_interval: Duration::from_secs(5),
            ack_sends_max: 5,
            requeue_backoff_initial: Duration::from_secs(1),
            requeue_backoff_max: Duration::from_secs(60),
            ack_objects_max: 10_000,
            noack_len_max: 1024,
            inflight_max: 128,
            write_batch_max: 64,
            node_queues_max: 1000,
            malformed_frames_max: 0,
            upstream_buffer_max: 4096,
            session_held_max: 64,
            events_buffer_max: 1024,
            handshakes_max: 128,
            frame_limits: Limits::default(),
            drain_timeout: Duration::from_secs(5),
        }
    }
}

impl HubConfig {
    /// Checks that every bound is usable; the error names the offending field.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("node_limit", self.node_limit),
            ("ack_objects_max", self.ack_objects_max),
            ("noack_len_max", self.noack_len_max),
            ("inflight_max", self.inflight_max),
            ("write_batch_max", self.write_batch_max),
            ("node_queues_max", self.node_queues_max),
            ("upstream_buffer_max", self.upstream_buffer_max),
            ("session_held_max", self.session_held_max),
            ("events_buffer_max", self.events_buffer_max),
            (
                "frame_limits.frame_bytes_max",
                self.frame_limits.frame_bytes_max,
            ),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("{name} must be at least 1"));
        }
        let durations = [
            ("keepalive_interval", self.keepalive_interval),
            ("handshake_timeout", self.handshake_timeout),
            ("write_timeout", self.write_timeout),
            ("ack_resend_interval", self.ack_resend_interval),
            ("requeue_backoff_initial", self.requeue_backoff_initial),
        ];
        if let Some((name, _)) = durations.iter().find(|(_, d)| d.is_zero()) {
            return Err(format!("{name} must be positive"));
        }
        if self.ack_sends_max == 0 {
            return Err("ack_sends_max must be at least 1".into());
        }
        if self.node_queues_max < self.node_limit {
            return Err(format!(
                "node_queues_max ({}) must be at least node_limit ({})",
                self.node_queues_max, self.node_limit
            ));
        }
        if self.requeue_backoff_max < self.requeue_backoff_initial {
            return Err("requeue_backoff_max must be at least requeue_backoff_initial".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: defaults validate and each kind of bad value is named. Method: validate the
    /// default, then break one field at a time.
    #[test]
    fn validate_names_the_field() {
        assert_eq!(HubConfig::default().validate(), Ok(()));
        let cfg = HubConfig {
            inflight_max: 0,
            ..HubConfig::default()
        };
        assert!(cfg.validate().unwrap_err().contains("inflight_max"));
        let cfg = HubConfig {
            keepalive_interval: Duration::ZERO,
            ..HubConfig::default()
        };
        assert!(cfg.validate().unwrap_err().contains("keepalive_interval"));
        let cfg = HubConfig {
            node_queues_max: 10,
            ..HubConfig::default()
        };
        assert!(cfg.validate().unwrap_err().contains("node_queues_max"));
    }
}
