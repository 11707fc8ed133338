//! Dialling CloudHub and serving one connected session.
//!
//! The session is two halves polled by one task: the reader (frames to the downstream
//! channel, silence deadline) and the writer (heartbeat plus ping, upstream messages under
//! the rate limit). Whichever ends first ends the session.

use std::future::Future;

use futures::{SinkExt, StreamExt, stream::SplitSink, stream::SplitStream};
use ke_net::Transport;
use ke_proto::{DecodeError, Message, decode_with, encode_with};
use tokio::{
    sync::mpsc,
    time::{Instant, MissedTickBehavior, interval, sleep_until, timeout},
};
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::{
    WebSocketStream, client_async_with_config,
    tungstenite::{
        self, Error as WsError, Message as WsMessage,
        client::IntoClientRequest,
        http::{HeaderValue, Request},
        protocol::{CloseFrame, WebSocketConfig, frame::coding::CloseCode},
    },
};
use tracing::{debug, warn};

use super::{
    EdgeHub, Upstream,
    backoff::TokenBucket,
    metrics::{self, inc},
};

pub(crate) type Ws<C> = WebSocketStream<TlsStream<C>>;

/// Why a dial failed. Every variant is retryable (with backoff).
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    #[error("TCP connect failed: {0}")]
    Tcp(#[source] std::io::Error),
    #[error("TLS handshake failed: {0}")]
    Tls(#[source] std::io::Error),
    #[error("cannot build the upgrade request: {0}")]
    Request(String),
    #[error("refused by cloudhub: HTTP {status}: {body}")]
    Refused { status: u16, body: String },
    #[error("WebSocket upgrade failed: {0}")]
    Upgrade(#[source] WsError),
    #[error("connect timed out")]
    Timeout,
}

/// How a session ended.
pub(crate) enum SessionEnd {
    Shutdown,
    DownstreamClosed,
    Lost(String),
}

impl<T: Transport> EdgeHub<T> {
    /// TCP through the transport, TLS, then the upgrade with KubeEdge's headers.
    pub(crate) async fn connect(&self) -> Result<Ws<T::Conn>, ConnectError> {
        let tcp = self
            .transport
            .connect(self.cloud_addr)
            .await
            .map_err(ConnectError::Tcp)?;
        let tls = self
            .connector
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(ConnectError::Tls)?;
        let request = self.upgrade_request()?;
        let max = self.cfg.frame_limits.frame_bytes_max;
        let ws_cfg = WebSocketConfig::default()
            .read_buffer_size(ke_core::limits::WS_READ_BUFFER_BYTES)
            .max_message_size(Some(max))
            .max_frame_size(Some(max));
        match client_async_with_config(request, tls, Some(ws_cfg)).await {
            Ok((ws, _)) => Ok(ws),
            Err(WsError::Http(resp)) => Err(ConnectError::Refused {
                status: resp.status().as_u16(),
                body: resp
                    .body()
                    .as_deref()
                    .map(|b| String::from_utf8_lossy(b).trim().to_owned())
                    .unwrap_or_default(),
            }),
            Err(e) => Err(ConnectError::Upgrade(e)),
        }
    }

    fn upgrade_request(&self) -> Result<Request<()>, ConnectError> {
        let host = self.server_name.to_str();
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.into_owned()
        };
        let url = format!(
            "wss://{host}:{}/{}/{}/events",
            self.cloud_addr.port(),
            self.project_id,
            self.node_id
        );
        let mut request = url
            .into_client_request()
            .map_err(|e| ConnectError::Request(e.to_string()))?;
        let value = |v: &str| {
            HeaderValue::from_str(v).map_err(|e| ConnectError::Request(format!("{v:?}: {e}")))
        };
        let headers = request.headers_mut();
        headers.insert("node_id", value(self.node_id.as_str())?);
        headers.insert("project_id", value(&self.project_id)?);
        headers.insert("connectionuse", value("msg")?);
        Ok(request)
    }

    /// Serves one session until it breaks, `shutdown` completes, or downstream closes.
    pub(crate) async fn session(
        &self,
        ws: Ws<T::Conn>,
        downstream: &mpsc::Sender<Message>,
        up: &mut Upstream,
        bucket: &mut TokenBucket,
        shutdown: &mut (impl Future<Output = ()> + Unpin),
    ) -> SessionEnd {
        let (mut sink, mut stream) = ws.split();
        let end = tokio::select! {
            biased;
            () = shutdown => SessionEnd::Shutdown,
            end = self.read_loop(&mut stream, downstream) => end,
            end = self.write_loop(&mut sink, up, bucket) => end,
        };
        if matches!(end, SessionEnd::Shutdown) {
            let frame = CloseFrame {
                code: CloseCode::Normal,
                reason: "edgecore shutting down".into(),
            };
            let send = sink.send(WsMessage::Close(Some(frame)));
            let _ = timeout(self.cfg.write_timeout, send).await;
        }
        end
    }

    async fn read_loop(
        &self,
        stream: &mut SplitStream<Ws<T::Conn>>,
        downstream: &mpsc::Sender<Message>,
    ) -> SessionEnd {
        let silence = self.cfg.cloud_silence_max;
        loop {
            let frame = tokio::select! {
                biased;
                frame = stream.next() => frame,
                () = sleep_until(Instant::now() + silence) => {
                    return SessionEnd::Lost(format!("no frame from cloudhub for {silence:?}"));
                }
            };
            let data = match frame {
                Some(Ok(WsMessage::Text(text))) => tungstenite::Bytes::from(text),
                Some(Ok(WsMessage::Binary(bytes))) => bytes,
                Some(Ok(WsMessage::Close(frame))) => {
                    let why = frame.map(|f| f.reason.to_string()).unwrap_or_default();
                    return SessionEnd::Lost(format!("closed by cloudhub: {why}"));
                }
                None => return SessionEnd::Lost("connection closed".into()),
                Some(Ok(_)) => continue, // ping, pong
                Some(Err(e)) => return SessionEnd::Lost(format!("read failed: {e}")),
            };
            match decode_with(&data, &self.cfg.frame_limits) {
                Ok(msg) => {
                    inc(&self.metrics.messages_in);
                    if downstream.send(msg).await.is_err() {
                        return SessionEnd::DownstreamClosed;
                    }
                }
                Err(e @ DecodeError::TooLarge { .. }) => {
                    return SessionEnd::Lost(format!("oversized frame from cloudhub: {e}"));
                }
                Err(e) => {
                    inc(&self.metrics.malformed_frames);
                    warn!(error = %e, bytes = data.len(), "malformed frame from cloudhub ignored");
                }
            }
        }
    }

    async fn write_loop(
        &self,
        sink: &mut SplitSink<Ws<T::Conn>, WsMessage>,
        up: &mut Upstream,
        bucket: &mut TokenBucket,
    ) -> SessionEnd {
        let mut heartbeat = interval(self.cfg.heartbeat);
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = heartbeat.tick() => {
                    let mut ids = || self.entropy.uuid_v4();
                    let keepalive = Message::keepalive(&mut ids, self.clock.now_millis());
                    if let Err(e) = self.write(sink, &keepalive).await {
                        return SessionEnd::Lost(e);
                    }
                    let ping = WsMessage::Ping(Default::default());
                    if let Err(e) = self.write_frame(sink, ping).await {
                        return SessionEnd::Lost(e);
                    }
                    inc(&self.metrics.keepalives);
                }
                msg = up.next() => {
                    bucket.take().await;
                    match self.write(sink, &msg).await {
                        Ok(()) => inc(&self.metrics.messages_out),
                        Err(e) => {
                            up.put_back(msg);
                            return SessionEnd::Lost(e);
                        }
                    }
                }
            }
        }
    }

    /// Writes one message; a message over the frame limit is dropped (counted), not sent.
    async fn write(
        &self,
        sink: &mut SplitSink<Ws<T::Conn>, WsMessage>,
        msg: &Message,
    ) -> Result<(), String> {
        let Ok(bytes) = encode_with(msg, &self.cfg.frame_limits) else {
            metrics::inc(&self.metrics.upstream_dropped);
            warn!(msg_id = %msg.header.id, "upstream message over the frame limit dropped");
            return Ok(());
        };
        let text = String::from_utf8(bytes).map_err(|e| format!("encoding: {e}"))?;
        debug!(msg_id = %msg.header.id, op = %msg.route.operation, "upstream");
        self.write_frame(sink, WsMessage::text(text)).await
    }

    async fn write_frame(
        &self,
        sink: &mut SplitSink<Ws<T::Conn>, WsMessage>,
        frame: WsMessage,
    ) -> Result<(), String> {
        match timeout(self.cfg.write_timeout, sink.send(frame)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("write failed: {e}")),
            Err(_) => Err(format!(
                "write timed out after {:?}",
                self.cfg.write_timeout
            )),
        }
    }
}
