//! One client connection: CONNECT within the deadline, then a loop that reads packets,
//! writes replies and queued deliveries, and watches keep-alive, takeover and shutdown.
//!
//! Reads and writes are both branches of one `select!`, so a client that does not read never
//! stops the broker from reading it (and answering its pings), and its deliveries wait in its
//! bounded queue. Replies wait in an output buffer; the loop stops taking deliveries while
//! that buffer holds more than [`DELIVER_BELOW`] bytes and stops reading the client while it
//! holds more than [`READ_BELOW`] (a client that sends but never reads is held back, not
//! buffered for without limit).

use std::{collections::BTreeSet, net::SocketAddr, sync::Arc, time::Duration};

use bytes::{Buf as _, BytesMut};
use ke_net::Stream;
use rumqttc::{
    ConnAck, ConnectReturnCode, Packet, PubAck, PubComp, PubRec, Publish, QoS, SubAck,
    SubscribeReasonCode, UnsubAck,
};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _, ReadHalf, WriteHalf},
    sync::mpsc,
    time::{Instant, sleep_until, timeout},
};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument as _, debug, info, info_span, warn};

use super::{Client, Delivery, Shared, inc, topic};

/// Deliveries are taken from the queue while fewer bytes than this wait to be written.
const DELIVER_BELOW: usize = 64 * 1024;
/// The client is read while fewer bytes than this wait to be written.
const READ_BELOW: usize = 2 * ke_core::limits::MQTT_PACKET_BYTES_MAX;
/// How long a closing connection may take to write what it still has (a CONNACK refusal,
/// replies before DISCONNECT).
const FLUSH_TIMEOUT: Duration = Duration::from_secs(1);
/// Bytes reserved in the input buffer before each read.
const READ_CHUNK: usize = 4 * 1024;

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
pub(super) enum End {
    /// The client sent DISCONNECT.
    #[error("client disconnected")]
    Disconnect,
    /// The client closed the socket.
    #[error("connection closed by the client")]
    Eof,
    /// Socket error.
    #[error("connection failed")]
    Io(#[source] std::io::Error),
    /// Nothing received for 1.5× the keep-alive.
    #[error("keep-alive expired (nothing received for {0:?})")]
    KeepAlive(Duration),
    /// Another connection took the client id.
    #[error("session taken over by a new connection with the same client id")]
    TakenOver,
    /// The broker is stopping.
    #[error("broker stopping")]
    Shutdown,
    /// No CONNECT in time.
    #[error("no CONNECT within {0:?}")]
    ConnectTimeout(Duration),
    /// A packet rumqttc's codec refused.
    #[error("malformed packet")]
    Malformed(#[source] rumqttc::Error),
    /// A packet over the size limit.
    #[error("packet of {size} bytes is over the {max}-byte limit")]
    TooLarge {
        /// Its remaining length.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// A packet a client must not send now (a second CONNECT, a server's packet, ...).
    #[error("unexpected {0} packet")]
    Unexpected(&'static str),
    /// A PUBLISH to an invalid topic name.
    #[error("invalid topic name {0:?}")]
    Topic(String),
    /// CONNECT refused (protocol version, client id); CONNACK said why.
    #[error("CONNECT refused: {0:?}")]
    Refused(ConnectReturnCode),
}

impl End {
    fn is_protocol_error(&self) -> bool {
        matches!(
            self,
            Self::Malformed(_)
                | Self::TooLarge { .. }
                | Self::Unexpected(_)
                | Self::Topic(_)
                | Self::Refused(_)
                | Self::ConnectTimeout(_)
        )
    }
}

/// Serves one accepted connection to its end.
pub(super) async fn serve<S: Stream>(shared: Arc<Shared>, conn: S, peer: SocketAddr) {
    let span = info_span!("mqtt", %peer, client = tracing::field::Empty);
    async move {
        let (rd, wr) = tokio::io::split(conn);
        let mut io = Io {
            rd,
            wr,
            inbuf: BytesMut::with_capacity(READ_CHUNK),
            outbuf: BytesMut::new(),
            max: shared.cfg.packet_bytes_max,
        };
        let end = match connect(&shared, &mut io).await {
            Ok(session) => session.run(io).await,
            Err(end) => {
                let _ = timeout(FLUSH_TIMEOUT, io.flush_all()).await;
                end
            }
        };
        if end.is_protocol_error() {
            inc(&shared.metrics.closed_protocol);
            let cause = std::error::Error::source(&end).map(ToString::to_string);
            warn!(reason = %end, ?cause, "MQTT connection closed");
        } else {
            debug!(reason = %end, "MQTT connection closed");
        }
    }
    .instrument(span)
    .await;
}

/// The socket halves and their buffers.
struct Io<S> {
    rd: ReadHalf<S>,
    wr: WriteHalf<S>,
    inbuf: BytesMut,
    outbuf: BytesMut,
    max: usize,
}

impl<S: Stream> Io<S> {
    /// The next complete packet in `inbuf`, if there is one.
    fn decode(&mut self) -> Result<Option<Packet>, End> {
        match Packet::read(&mut self.inbuf, self.max) {
            Ok(p) => Ok(Some(p)),
            Err(rumqttc::Error::InsufficientBytes(_)) => Ok(None),
            Err(rumqttc::Error::PayloadSizeLimitExceeded(size)) => Err(End::TooLarge {
                size,
                max: self.max,
            }),
            Err(e) => Err(End::Malformed(e)),
        }
    }

    /// Reads until one packet is complete.
    async fn read_packet(&mut self) -> Result<Packet, End> {
        loop {
            if let Some(p) = self.decode()? {
                return Ok(p);
            }
            self.inbuf.reserve(READ_CHUNK);
            match self.rd.read_buf(&mut self.inbuf).await {
                Ok(0) => return Err(End::Eof),
                Ok(_) => {}
                Err(e) => return Err(End::Io(e)),
            }
        }
    }

    fn put(&mut self, packet: &Packet) {
        packet
            .write(&mut self.outbuf, usize::MAX)
            .expect("invariant: the broker writes well-formed packets under 256 MiB");
    }

    async fn flush_all(&mut self) -> std::io::Result<()> {
        self.wr.write_all(&self.outbuf).await?;
        self.outbuf.clear();
        self.wr.flush().await
    }
}

/// Waits for CONNECT, registers the client (taking over an older connection with its id) and
/// answers CONNACK. Refusals get their CONNACK into `io.outbuf` first.
async fn connect<S: Stream>(shared: &Arc<Shared>, io: &mut Io<S>) -> Result<Session, End> {
    let limit = shared.cfg.connect_timeout;
    let first = match timeout(limit, io.read_packet()).await {
        Err(_) => return Err(End::ConnectTimeout(limit)),
        Ok(Err(End::Malformed(
            e @ (rumqttc::Error::InvalidProtocol | rumqttc::Error::InvalidProtocolLevel(_)),
        ))) => {
            let code = ConnectReturnCode::RefusedProtocolVersion;
            io.put(&Packet::ConnAck(ConnAck::new(code, false)));
            return Err(End::Malformed(e));
        }
        Ok(other) => other?,
    };
    let Packet::Connect(c) = first else {
        return Err(End::Unexpected("non-CONNECT first"));
    };
    let refuse = |io: &mut Io<S>, code| {
        io.put(&Packet::ConnAck(ConnAck::new(code, false)));
        Err(End::Refused(code))
    };
    if c.protocol != rumqttc::Protocol::V4 {
        return refuse(io, ConnectReturnCode::RefusedProtocolVersion);
    }
    // §3.1.3-8: an empty id is allowed only with a clean session; the server names it.
    if c.client_id.is_empty() && !c.clean_session {
        return refuse(io, ConnectReturnCode::BadClientId);
    }
    let session = Session::register(shared.clone(), c.client_id, c.keep_alive);
    tracing::Span::current().record("client", session.id.as_str());
    io.put(&Packet::ConnAck(ConnAck::new(
        ConnectReturnCode::Success,
        false,
    )));
    inc(&shared.metrics.clients);
    info!(keep_alive_s = c.keep_alive, "MQTT client connected");
    Ok(session)
}

/// What the loop woke up for.
enum Step {
    Read(std::io::Result<usize>),
    Wrote(std::io::Result<usize>),
    Deliver(Option<Delivery>),
    KeepAlive,
    TakenOver,
    Shutdown,
}

/// A registered client's connection state.
struct Session {
    shared: Arc<Shared>,
    id: String,
    conn: u64,
    rx: mpsc::Receiver<Delivery>,
    taken_over: CancellationToken,
    /// 1.5× the client's keep-alive; `None` when it asked for none.
    silence_max: Option<Duration>,
    next_pkid: u16,
    /// QoS 2 packet ids received and forwarded, awaiting PUBREL (at most 65,535).
    qos2_pending: BTreeSet<u16>,
}

impl Session {
    /// Registers the client under `id` (a name of the broker's when empty).
    fn register(shared: Arc<Shared>, id: String, keep_alive: u16) -> Self {
        let (tx, rx) = mpsc::channel(shared.cfg.session_queue_max);
        let taken_over = CancellationToken::new();
        let (conn, id) = {
            let mut state = shared.state();
            let conn = state.next_conn;
            state.next_conn += 1;
            let id = match id.is_empty() {
                true => format!("auto-{conn}"),
                false => id,
            };
            let client = Client {
                conn,
                tx,
                subs: Default::default(),
                taken_over: taken_over.clone(),
            };
            if let Some(old) = state.clients.insert(id.clone(), client) {
                info!("client id already connected; closing the older connection");
                old.taken_over.cancel();
            }
            (conn, id)
        };
        Self {
            shared,
            id,
            conn,
            rx,
            taken_over,
            silence_max: (keep_alive > 0).then(|| Duration::from_secs(keep_alive.into()) * 3 / 2),
            next_pkid: 0,
            qos2_pending: BTreeSet::new(),
        }
    }

    /// Serves packets until the connection ends, then unregisters.
    async fn run<S: Stream>(mut self, mut io: Io<S>) -> End {
        let end = self.serve(&mut io).await;
        {
            let mut state = self.shared.state();
            if state
                .clients
                .get(&self.id)
                .is_some_and(|c| c.conn == self.conn)
            {
                state.clients.remove(&self.id);
            }
        }
        self.shared
            .metrics
            .clients
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        if !matches!(end, End::Io(_) | End::Eof | End::TakenOver) {
            let _ = timeout(FLUSH_TIMEOUT, io.flush_all()).await;
        }
        end
    }

    async fn serve<S: Stream>(&mut self, io: &mut Io<S>) -> End {
        let mut last_read = Instant::now();
        loop {
            // Packets already buffered (CONNECT's read may have brought more) come first.
            loop {
                match io.decode() {
                    Ok(Some(packet)) => {
                        if let Err(end) = self.handle(packet, io) {
                            return end;
                        }
                    }
                    Ok(None) => break,
                    Err(end) => return end,
                }
            }
            let deadline = self.silence_max.map(|d| last_read + d);
            match self.next_step(io, deadline).await {
                Step::Read(Ok(0)) => return End::Eof,
                Step::Read(Ok(_)) => last_read = Instant::now(),
                Step::Read(Err(e)) | Step::Wrote(Err(e)) => return End::Io(e),
                Step::Wrote(Ok(n)) => {
                    io.outbuf.advance(n);
                    if io.outbuf.is_empty()
                        && let Err(e) = io.wr.flush().await
                    {
                        return End::Io(e);
                    }
                }
                Step::Deliver(Some(d)) => self.deliver(d, io),
                // The entry holding the sender is gone: taken over.
                Step::Deliver(None) | Step::TakenOver => return End::TakenOver,
                Step::KeepAlive => return End::KeepAlive(self.silence_max.unwrap_or_default()),
                Step::Shutdown => return End::Shutdown,
            }
        }
    }

    async fn next_step<S: Stream>(&mut self, io: &mut Io<S>, deadline: Option<Instant>) -> Step {
        let pending = io.outbuf.len();
        if pending < READ_BELOW {
            io.inbuf.reserve(READ_CHUNK);
        }
        let idle = async {
            match deadline {
                Some(d) => sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            () = self.shared.stop.cancelled() => Step::Shutdown,
            () = self.taken_over.cancelled() => Step::TakenOver,
            n = io.wr.write(&io.outbuf), if pending > 0 => Step::Wrote(n),
            n = io.rd.read_buf(&mut io.inbuf), if pending < READ_BELOW => Step::Read(n),
            d = self.rx.recv(), if pending < DELIVER_BELOW => Step::Deliver(d),
            () = idle => Step::KeepAlive,
        }
    }

    fn handle<S: Stream>(&mut self, packet: Packet, io: &mut Io<S>) -> Result<(), End> {
        match packet {
            Packet::Publish(p) => self.publish(p, io)?,
            // Deliveries are not resent within a connection, so nothing waits for the ACK.
            Packet::PubAck(_) => {}
            Packet::PubRel(r) => {
                self.qos2_pending.remove(&r.pkid);
                io.put(&Packet::PubComp(PubComp::new(r.pkid)));
            }
            Packet::Subscribe(s) => {
                let codes = self.subscribe(s.filters);
                io.put(&Packet::SubAck(SubAck::new(s.pkid, codes)));
            }
            Packet::Unsubscribe(u) => {
                self.unsubscribe(&u.topics);
                io.put(&Packet::UnsubAck(UnsubAck::new(u.pkid)));
            }
            Packet::PingReq => io.put(&Packet::PingResp),
            Packet::Disconnect => return Err(End::Disconnect),
            Packet::Connect(_) => return Err(End::Unexpected("second CONNECT")),
            Packet::PubRec(_) | Packet::PubComp(_) => {
                return Err(End::Unexpected("PUBREC/PUBCOMP (no QoS 2 is sent)"));
            }
            Packet::ConnAck(_) | Packet::SubAck(_) | Packet::UnsubAck(_) | Packet::PingResp => {
                return Err(End::Unexpected("server-to-client"));
            }
        }
        Ok(())
    }

    fn publish<S: Stream>(&mut self, p: Publish, io: &mut Io<S>) -> Result<(), End> {
        if !topic::valid_topic(&p.topic) {
            return Err(End::Topic(p.topic));
        }
        inc(&self.shared.metrics.messages_in);
        debug!(topic = %p.topic, qos = p.qos as u8, bytes = p.payload.len(), "publish");
        match p.qos {
            QoS::AtMostOnce => self.shared.route(&p.topic, &p.payload, QoS::AtMostOnce),
            QoS::AtLeastOnce => {
                self.shared.route(&p.topic, &p.payload, QoS::AtLeastOnce);
                io.put(&Packet::PubAck(PubAck::new(p.pkid)));
            }
            QoS::ExactlyOnce => {
                if self.qos2_pending.insert(p.pkid) {
                    self.shared.route(&p.topic, &p.payload, QoS::AtLeastOnce);
                }
                io.put(&Packet::PubRec(PubRec::new(p.pkid)));
            }
        }
        Ok(())
    }

    /// Registers each valid filter at min(requested, QoS 1); the SUBACK codes in order.
    fn subscribe(&mut self, filters: Vec<rumqttc::SubscribeFilter>) -> Vec<SubscribeReasonCode> {
        let max = self.shared.cfg.subscriptions_max;
        let mut state = self.shared.state();
        let Some(client) = state
            .clients
            .get_mut(&self.id)
            .filter(|c| c.conn == self.conn)
        else {
            // Taken over between two packets: this connection is about to close.
            return vec![SubscribeReasonCode::Failure; filters.len()];
        };
        let mut codes = Vec::with_capacity(filters.len());
        for f in filters {
            let room = client.subs.len() < max || client.subs.contains_key(&f.path);
            if !topic::valid_filter(&f.path) || !room {
                debug!(filter = %f.path, room, "subscription refused");
                codes.push(SubscribeReasonCode::Failure);
                continue;
            }
            let granted = match f.qos {
                QoS::AtMostOnce => QoS::AtMostOnce,
                QoS::AtLeastOnce | QoS::ExactlyOnce => QoS::AtLeastOnce,
            };
            debug!(filter = %f.path, qos = granted as u8, "subscribed");
            client.subs.insert(f.path, granted);
            codes.push(SubscribeReasonCode::Success(granted));
        }
        codes
    }

    fn unsubscribe(&mut self, filters: &[String]) {
        let mut state = self.shared.state();
        if let Some(client) = state
            .clients
            .get_mut(&self.id)
            .filter(|c| c.conn == self.conn)
        {
            for f in filters {
                client.subs.remove(f);
            }
        }
    }

    fn deliver<S: Stream>(&mut self, d: Delivery, io: &mut Io<S>) {
        let mut p = Publish::from_bytes(d.topic, d.qos, d.payload);
        if d.qos != QoS::AtMostOnce {
            self.next_pkid = self.next_pkid.checked_add(1).unwrap_or(1);
            p.pkid = self.next_pkid;
        }
        io.put(&Packet::Publish(p));
        inc(&self.shared.metrics.messages_out);
    }
}
