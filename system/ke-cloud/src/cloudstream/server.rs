//! The tunnel listener: TLS with client certificates, the upgrade, one task per tunnel.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use futures::{SinkExt, StreamExt};
use ke_net::{Listener, Stream, Transport};
use ke_proto::stream::StreamFrame;
use tokio::{sync::mpsc, task::JoinSet, time::MissedTickBehavior};
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::{
    accept_hdr_async_with_config,
    tungstenite::{
        Message as WsMessage,
        handshake::server::{ErrorResponse, Request, Response},
        http,
        protocol::WebSocketConfig,
    },
};
use tracing::{Instrument, debug, info, info_span, warn};

use super::{
    Error, FRAME_BYTES_MAX, PING_INTERVAL, TUNNEL_QUEUE_MAX,
    admission::admit,
    tunnel::{StreamHandle, Tunnel, Tunnels},
};
use crate::cloudhub::admission::cert_node_name;

/// TLS handshake plus upgrade must finish within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// Tunnels (and handshakes) served at once.
const CONNS_MAX: usize = 100_000;

/// A bound tunnel server, ready to [`run`](Self::run).
pub struct CloudStream<T: Transport> {
    listener: T::Listener,
    acceptor: TlsAcceptor,
    tunnels: Arc<Tunnels>,
    addr: SocketAddr,
}

impl<T: Transport> std::fmt::Debug for CloudStream<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudStream")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl<T: Transport> CloudStream<T> {
    /// Binds the tunnel port. `tls` must require client certificates from the KubeEdge CA
    /// (CloudHub's server configuration): the tunnel's node comes from the certificate.
    pub async fn bind(
        transport: &T,
        addr: SocketAddr,
        tls: Arc<rustls::ServerConfig>,
    ) -> Result<Self, Error> {
        let bind_err = |source| Error::Bind { addr, source };
        let listener = transport.bind(addr).await.map_err(bind_err)?;
        let addr = listener.local_addr().map_err(bind_err)?;
        info!(%addr, "cloudstream tunnel listening");
        Ok(Self {
            listener,
            acceptor: TlsAcceptor::from(tls),
            tunnels: Arc::default(),
            addr,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The [`PodStreams`](ke_apiserver::streams::PodStreams) for the API server.
    pub fn handle(&self) -> StreamHandle {
        StreamHandle {
            tunnels: self.tunnels.clone(),
        }
    }

    /// Accepts tunnels until `shutdown` completes; then every tunnel is dropped.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        let mut conns = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
                accepted = self.listener.accept() => match accepted {
                    Ok((conn, _)) if conns.len() >= CONNS_MAX => drop(conn),
                    Ok((conn, peer)) => {
                        let span = info_span!("cloudstream_tunnel", %peer);
                        let fut = serve(self.tunnels.clone(), self.acceptor.clone(), conn);
                        conns.spawn(fut.instrument(span));
                    }
                    Err(e) => {
                        warn!(error = %e, "tunnel accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
            }
        }
        conns.abort_all();
    }
}

#[expect(
    clippy::result_large_err,
    reason = "the error type is tungstenite's Callback signature"
)]
fn refuse(status: http::StatusCode, why: &str) -> Result<Response, ErrorResponse> {
    let mut r = http::Response::new(Some(format!("{why}\n")));
    *r.status_mut() = status;
    Err(r)
}

type Ws<C> = tokio_tungstenite::WebSocketStream<tokio_rustls::server::TlsStream<C>>;

/// TLS, then the upgrade, admitted only for the certificate's node.
async fn upgrade<C: Stream>(acceptor: TlsAcceptor, conn: C) -> Result<(String, Ws<C>), String> {
    let tls = acceptor.accept(conn).await.map_err(|e| e.to_string())?;
    let cert_node = match tls.get_ref().1.peer_certificates() {
        Some([leaf, ..]) => cert_node_name(leaf),
        _ => Err("no client certificate".to_owned()),
    };
    let mut node = None;
    #[expect(
        clippy::result_large_err,
        reason = "the error type is tungstenite's Callback signature"
    )]
    let callback =
        |req: &Request, resp: Response| match admit(req.uri().path(), req.headers(), &cert_node) {
            Ok(n) => {
                node = Some(n);
                Ok(resp)
            }
            Err((status, why)) => {
                warn!(status = status.as_u16(), reason = %why, "tunnel refused");
                refuse(status, &why)
            }
        };
    let cfg = WebSocketConfig::default()
        .max_message_size(Some(FRAME_BYTES_MAX))
        .max_frame_size(Some(FRAME_BYTES_MAX));
    let ws = accept_hdr_async_with_config(tls, callback, Some(cfg))
        .await
        .map_err(|e| e.to_string())?;
    node.map(|n| (n, ws)).ok_or_else(|| "no node".to_owned())
}

async fn serve<C: Stream>(tunnels: Arc<Tunnels>, acceptor: TlsAcceptor, conn: C) {
    let (node, ws) = match tokio::time::timeout(HANDSHAKE_TIMEOUT, upgrade(acceptor, conn)).await {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => return debug!(error = %e, "tunnel handshake failed"),
        Err(_) => return debug!("tunnel handshake timed out"),
    };
    let (out_tx, out_rx) = mpsc::channel::<Vec<u8>>(TUNNEL_QUEUE_MAX);
    let tunnel = tunnels.register(&node, out_tx);
    info!(%node, "stream tunnel connected");
    let why = pump(&tunnel, ws, out_rx).await;
    tunnels.unregister(&node, &tunnel);
    info!(%node, reason = %why, "stream tunnel disconnected");
}

/// Writes queued frames (and pings), delivers read frames, until either side fails.
async fn pump<C: Stream>(
    tunnel: &Tunnel,
    ws: Ws<C>,
    mut out_rx: mpsc::Receiver<Vec<u8>>,
) -> String {
    let (mut sink, mut stream) = ws.split();
    let write = async {
        let mut ping = tokio::time::interval(PING_INTERVAL);
        ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            let msg = tokio::select! {
                m = out_rx.recv() => match m {
                    Some(bytes) => WsMessage::Binary(bytes.into()),
                    None => return,
                },
                _ = ping.tick() => WsMessage::Ping(Default::default()),
            };
            if sink.send(msg).await.is_err() {
                return;
            }
        }
    };
    let read = async {
        while let Some(Ok(msg)) = stream.next().await {
            let data = match msg {
                WsMessage::Binary(b) => b,
                WsMessage::Close(_) => return "closed by the edge".to_owned(),
                _ => continue,
            };
            match StreamFrame::decode(&data) {
                Ok(frame) => tunnel.deliver(frame).await,
                Err(e) => return format!("malformed frame: {e}"),
            }
        }
        "connection lost".to_owned()
    };
    tokio::select! {
        why = read => why,
        () = write => "write failed".to_owned(),
    }
}
