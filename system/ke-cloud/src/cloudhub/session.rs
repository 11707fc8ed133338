//! One edge connection: TLS handshake, admission at the WebSocket upgrade, then a session of
//! two halves polled by one task: the reader (keepalive deadline, ACKs, upstream messages)
//! and the writer (the node's queue to the socket). Whichever half ends first ends the
//! session; a close frame with the reason is sent when the socket is still usable.

use std::{collections::VecDeque, net::SocketAddr, sync::Arc};

use futures::{SinkExt, StreamExt, stream::SplitSink, stream::SplitStream};
use ke_net::Stream;
use ke_proto::{DecodeError, Message, NodeId, Operation, decode_strict};
use tokio::{
    sync::mpsc,
    time::{Instant, sleep_until, timeout},
};
use tokio_rustls::{TlsAcceptor, server::TlsStream};
use tokio_tungstenite::{
    WebSocketStream, accept_hdr_async_with_config,
    tungstenite::{
        self, Error as WsError, Message as WsMessage,
        handshake::server::{ErrorResponse, Request, Response},
        protocol::{CloseFrame, WebSocketConfig, frame::coding::CloseCode},
    },
};
use tokio_util::sync::PollSender;
use tracing::{Instrument, debug, info, info_span, warn};

use super::{
    CloseReason,
    admission::{Identity, Refused, cert_node_name, identify},
    metrics::{Refusal, add, inc},
    state::{Reservation, Shared, Ticket},
};

type Ws<C> = WebSocketStream<TlsStream<C>>;

/// An admitted, upgraded connection.
struct Upgraded<C> {
    ws: Ws<C>,
    identity: Identity,
    reservation: Reservation,
}

/// Why a connection never became a session.
enum UpgradeError {
    Tls(std::io::Error),
    Refused(Refused),
    Ws(WsError),
}

/// Serves one accepted connection to its end.
pub(crate) async fn serve<C: Stream>(
    shared: Arc<Shared>,
    acceptor: TlsAcceptor,
    conn: C,
    peer: SocketAddr,
) {
    let span = info_span!("cloudhub_conn", %peer, node = tracing::field::Empty);
    async move {
        let limit = shared.cfg.handshake_timeout;
        let handshake = timeout(limit, upgrade(&shared, acceptor, conn));
        let upgraded = tokio::select! {
            r = handshake => r,
            () = shared.shutdown.cancelled() => return,
        };
        let upgraded = match upgraded {
            Ok(Ok(u)) => u,
            Ok(Err(e)) => return log_refusal(&shared, e),
            Err(_) => {
                shared.counters.refused(Refusal::Handshake);
                debug!("handshake timed out");
                return;
            }
        };
        let Upgraded {
            ws,
            identity,
            reservation,
        } = upgraded;
        let node = identity.node;
        tracing::Span::current().record("node", tracing::field::display(&node));
        let ticket = shared.register(&node, reservation);
        info!(project = %identity.project, session = ticket.id, "edge connected");
        let reason = run_session(&shared, ws, &node, &ticket).await;
        info!(session = ticket.id, %reason, "edge disconnected");
        shared.unregister(&node, ticket.id, reason);
    }
    .instrument(span)
    .await;
}

fn log_refusal(shared: &Shared, e: UpgradeError) {
    match e {
        UpgradeError::Refused(r) => {
            shared.counters.refused(r.kind);
            warn!(status = r.status.as_u16(), reason = %r.reason, "edge connection refused");
        }
        UpgradeError::Tls(e) => {
            shared.counters.refused(Refusal::Handshake);
            debug!(error = %e, "TLS handshake failed");
        }
        UpgradeError::Ws(e) => {
            shared.counters.refused(Refusal::Handshake);
            debug!(error = %e, "WebSocket upgrade failed");
        }
    }
}

async fn upgrade<C: Stream>(
    shared: &Arc<Shared>,
    acceptor: TlsAcceptor,
    conn: C,
) -> Result<Upgraded<C>, UpgradeError> {
    let tls = acceptor.accept(conn).await.map_err(UpgradeError::Tls)?;
    let cert_node = match tls.get_ref().1.peer_certificates() {
        Some([leaf, ..]) => cert_node_name(leaf),
        _ => Err("no client certificate".to_owned()),
    };
    let mut outcome: Option<Result<(Identity, Reservation), Refused>> = None;
    #[expect(
        clippy::result_large_err,
        reason = "the error type is tungstenite's Callback signature"
    )]
    let callback = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        let decided = admit(shared, req, &cert_node);
        let reply = match &decided {
            Ok(_) => Ok(resp),
            Err(refused) => Err(refused.response()),
        };
        outcome = Some(decided);
        reply
    };
    let accepted = accept_hdr_async_with_config(tls, callback, Some(ws_config(shared))).await;
    match (accepted, outcome) {
        (_, Some(Err(refused))) => Err(UpgradeError::Refused(refused)),
        (Ok(ws), Some(Ok((identity, reservation)))) => Ok(Upgraded {
            ws,
            identity,
            reservation,
        }),
        (Err(e), _) => Err(UpgradeError::Ws(e)),
        (Ok(_), None) => Err(UpgradeError::Ws(WsError::ConnectionClosed)),
    }
}

fn admit(
    shared: &Arc<Shared>,
    req: &Request,
    cert_node: &Result<String, String>,
) -> Result<(Identity, Reservation), Refused> {
    let identity = identify(req.headers(), cert_node, shared.cfg.node_authorization)?;
    let reservation = shared
        .reserve(&identity.node)
        .map_err(|limit| Refused::node_limit(&identity.node, limit))?;
    Ok((identity, reservation))
}

fn ws_config(shared: &Shared) -> WebSocketConfig {
    let max = shared.cfg.frame_limits.frame_bytes_max;
    WebSocketConfig::default()
        .read_buffer_size(ke_core::limits::WS_READ_BUFFER_BYTES)
        .max_message_size(Some(max))
        .max_frame_size(Some(max))
}

async fn run_session<C: Stream>(
    shared: &Shared,
    ws: Ws<C>,
    node: &NodeId,
    ticket: &Ticket,
) -> CloseReason {
    let (mut sink, mut stream) = ws.split();
    let reason = tokio::select! {
        r = read_loop(shared, node, &mut stream) => r,
        r = write_loop(shared, node, ticket, &mut sink) => r,
        () = ticket.cancel.cancelled() => if shared.shutdown.is_cancelled() {
            CloseReason::Shutdown
        } else {
            CloseReason::Replaced
        },
    };
    close(shared, &mut sink, &mut stream, &reason).await;
    reason
}

/// Sends a close frame naming the reason, then reads until the edge's close reply (bounded),
/// so that unread data does not turn our close into a reset that could discard the frame.
async fn close<C: Stream>(
    shared: &Shared,
    sink: &mut SplitSink<Ws<C>, WsMessage>,
    stream: &mut SplitStream<Ws<C>>,
    reason: &CloseReason,
) {
    let code = match reason {
        CloseReason::PeerClosed | CloseReason::Transport(_) | CloseReason::WriteTimeout => return,
        CloseReason::Shutdown => CloseCode::Away,
        CloseReason::Oversized => CloseCode::Size,
        CloseReason::TooManyMalformed => CloseCode::Protocol,
        CloseReason::KeepaliveTimeout | CloseReason::Replaced => CloseCode::Policy,
    };
    let frame = CloseFrame {
        code,
        reason: reason.to_string().into(),
    };
    let limit = shared.cfg.write_timeout;
    if !matches!(
        timeout(limit, sink.send(WsMessage::Close(Some(frame)))).await,
        Ok(Ok(()))
    ) {
        return;
    }
    let drain = async {
        while let Some(Ok(m)) = stream.next().await {
            if m.is_close() {
                break;
            }
        }
    };
    let _ = timeout(limit.min(std::time::Duration::from_secs(2)), drain).await;
}

/// Upstream messages a session could not hand to EdgeController yet (its channel was full),
/// in arrival order. While any are held, new ones queue behind them (one node's messages stay
/// in order) and the reader keeps going for ACKs and keepalives until the bound is reached.
struct Held {
    msgs: VecDeque<Message>,
    tx: PollSender<(NodeId, Message)>,
    max: usize,
}

impl Held {
    fn new(shared: &Shared) -> Self {
        Self {
            msgs: VecDeque::new(),
            tx: PollSender::new(shared.upstream.clone()),
            max: shared.cfg.session_held_max.max(1),
        }
    }

    fn full(&self) -> bool {
        self.msgs.len() >= self.max
    }

    /// Hands `msg` on at once if nothing is held and the channel has room; holds it otherwise.
    fn forward(&mut self, shared: &Shared, node: &NodeId, msg: Message) {
        if !self.msgs.is_empty() {
            self.msgs.push_back(msg);
            return;
        }
        match shared.upstream.try_send((node.clone(), msg)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full((_, msg))) => {
                inc(&shared.counters.upstream_held);
                self.msgs.push_back(msg);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                debug!("upstream receiver gone; message dropped");
            }
        }
    }

    /// Waits for room in the channel, then hands on the oldest held message. Keeps its place
    /// in the channel's queue across cancellations (`PollSender` holds the reservation).
    async fn flush_one(&mut self, node: &NodeId) {
        let reserved = std::future::poll_fn(|cx| self.tx.poll_reserve(cx)).await;
        let Some(msg) = self.msgs.pop_front() else {
            self.tx.abort_send();
            return;
        };
        if reserved.is_err() || self.tx.send_item((node.clone(), msg)).is_err() {
            debug!("upstream receiver gone; held messages dropped");
            self.msgs.clear();
        }
    }
}

async fn read_loop<C: Stream>(
    shared: &Shared,
    node: &NodeId,
    stream: &mut SplitStream<Ws<C>>,
) -> CloseReason {
    let cfg = &shared.cfg;
    let mut deadline = Instant::now() + cfg.keepalive_interval;
    let mut malformed = 0u32;
    let mut held = Held::new(shared);
    loop {
        let reading = !held.full();
        let frame = tokio::select! {
            biased;
            () = held.flush_one(node), if !held.msgs.is_empty() => {
                if !reading {
                    // We did not read while full: the edge's keepalives may be waiting.
                    deadline = deadline.max(Instant::now() + cfg.keepalive_interval);
                }
                continue;
            }
            frame = stream.next(), if reading => frame,
            () = sleep_until(deadline), if reading => {
                inc(&shared.counters.keepalive_timeouts);
                warn!(interval = ?cfg.keepalive_interval, "no keepalive from the edge");
                return CloseReason::KeepaliveTimeout;
            }
        };
        let data = match frame {
            Some(Ok(WsMessage::Text(text))) => tungstenite::Bytes::from(text),
            Some(Ok(WsMessage::Binary(bytes))) => bytes,
            Some(Ok(WsMessage::Close(_))) | None => return CloseReason::PeerClosed,
            Some(Ok(_)) => continue, // ping, pong (answered by tungstenite)
            Some(Err(WsError::Capacity(e))) => {
                inc(&shared.counters.oversized_frames);
                warn!(error = %e, "oversized frame from the edge");
                return CloseReason::Oversized;
            }
            Some(Err(e)) => return CloseReason::Transport(e.to_string()),
        };
        match decode_strict(&data, &cfg.frame_limits) {
            Ok(msg) => {
                inc(&shared.counters.messages_in);
                if msg.is_keepalive() {
                    deadline = Instant::now() + cfg.keepalive_interval;
                } else if let Some(msg) = apply_ack(shared, node, msg) {
                    held.forward(shared, node, msg);
                }
            }
            Err(e @ DecodeError::TooLarge { .. }) => {
                inc(&shared.counters.oversized_frames);
                warn!(error = %e, "oversized frame from the edge");
                return CloseReason::Oversized;
            }
            Err(e) => {
                inc(&shared.counters.malformed_frames);
                malformed += 1;
                if malformed > cfg.malformed_frames_max {
                    warn!(error = %e, bytes = data.len(), malformed, "malformed frame; closing this session");
                    return CloseReason::TooManyMalformed;
                }
                warn!(error = %e, bytes = data.len(), malformed, "malformed frame ignored");
            }
        }
    }
}

/// ACKs are applied to the queue at once (they never wait behind upstream traffic); any
/// other message is returned, to go to EdgeController.
fn apply_ack(shared: &Shared, node: &NodeId, msg: Message) -> Option<Message> {
    if msg.route.operation == Operation::Response {
        let parent = &msg.header.parent_id;
        if !parent.is_empty() && shared.ack(node, parent, Instant::now()) {
            debug!(acked = %parent, "ack");
            return None;
        }
        if msg.content.is_ok_text() {
            debug!(acked = %parent, "ack for no queued message (already acked or replaced)");
            return None;
        }
    }
    Some(msg)
}

async fn write_loop<C: Stream>(
    shared: &Shared,
    node: &NodeId,
    ticket: &Ticket,
    sink: &mut SplitSink<Ws<C>, WsMessage>,
) -> CloseReason {
    loop {
        let (poll, next) = shared.poll(node, ticket.id, Instant::now());
        add(&shared.counters.resends, poll.resends);
        add(&shared.counters.ack_timeouts, poll.timeouts);
        if poll.frames.is_empty() {
            match next {
                Some(at) => tokio::select! {
                    () = ticket.notify.notified() => {}
                    () = sleep_until(at) => {}
                },
                None => ticket.notify.notified().await,
            }
            continue;
        }
        let n = poll.frames.len() as u64;
        let batch = async {
            for frame in &poll.frames {
                sink.feed(WsMessage::Text(frame.text.clone())).await?;
            }
            sink.flush().await
        };
        match timeout(shared.cfg.write_timeout, batch).await {
            Ok(Ok(())) => add(&shared.counters.messages_out, n),
            Ok(Err(e)) => return CloseReason::Transport(e.to_string()),
            Err(_) => return CloseReason::WriteTimeout,
        }
    }
}
