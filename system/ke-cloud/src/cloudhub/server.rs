//! [`Hub`]: the bound listener and its accept loop.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use ke_net::{Listener, Transport};
use ke_proto::{Message, NodeId};
use tokio::{sync::mpsc, task::JoinSet};
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use super::{
    Error, HubConfig, HubEvent, HubHandle, Result, metrics::Refusal, session, state::Shared,
};

/// Pause after a failed `accept` (descriptor exhaustion, ...) before trying again.
const ACCEPT_RETRY_DELAY: Duration = Duration::from_millis(100);

/// The receiving ends a hub fills: what EdgeController consumes.
#[derive(Debug)]
pub struct HubOutputs {
    /// Upstream messages (everything but keepalives and ACKs), with the sending node. Bounded
    /// by [`HubConfig::upstream_buffer_max`]; when full, the sending node's connection waits.
    pub upstream: mpsc::Receiver<(NodeId, Message)>,
    /// Session events. Bounded by [`HubConfig::events_buffer_max`]; when full, events are
    /// dropped and counted (`cloudhub_events_dropped_total`), never waited on.
    pub events: mpsc::Receiver<HubEvent>,
}

/// A bound CloudHub, ready to [`run`](Hub::run).
pub struct Hub<T: Transport> {
    listener: T::Listener,
    acceptor: TlsAcceptor,
    shared: Arc<Shared>,
    addr: SocketAddr,
}

impl<T: Transport> std::fmt::Debug for Hub<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl<T: Transport> Hub<T> {
    /// Validates `cfg` and binds `addr` through `transport`. `tls` must require client
    /// certificates (a `WebPkiClientVerifier` over the KubeEdge CA): node authorization reads
    /// the node name from the verified client certificate.
    pub async fn bind(
        transport: T,
        addr: SocketAddr,
        tls: Arc<rustls::ServerConfig>,
        cfg: HubConfig,
    ) -> Result<(Self, HubOutputs)> {
        cfg.validate().map_err(Error::Config)?;
        let bind_err = |source| Error::Bind { addr, source };
        let listener = transport.bind(addr).await.map_err(bind_err)?;
        let local = listener.local_addr().map_err(bind_err)?;
        let (shared, upstream, events) = Shared::new(cfg);
        info!(addr = %local, node_limit = shared.cfg.node_limit, "cloudhub listening");
        let hub = Self {
            listener,
            acceptor: TlsAcceptor::from(tls),
            shared,
            addr: local,
        };
        Ok((hub, HubOutputs { upstream, events }))
    }

    /// The bound address (useful after binding port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// A handle for downstream sends and metrics; it stays usable after the hub stops.
    pub fn handle(&self) -> HubHandle {
        HubHandle {
            shared: self.shared.clone(),
        }
    }

    /// Accepts connections until `shutdown` completes, then closes every session (close frame
    /// "cloudhub shutting down") and waits up to [`HubConfig::drain_timeout`] for them.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        let shared = self.shared.clone();
        let conns_max = shared.cfg.node_limit + shared.cfg.handshakes_max;
        let mut conns = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
                accepted = self.listener.accept() => match accepted {
                    Ok((conn, peer)) if conns.len() >= conns_max => {
                        shared.counters.refused(Refusal::Overload);
                        debug!(%peer, conns = conns.len(), "too many connections; dropped");
                        drop(conn);
                    }
                    Ok((conn, peer)) => {
                        let acceptor = self.acceptor.clone();
                        conns.spawn(session::serve(shared.clone(), acceptor, conn, peer));
                    }
                    Err(e) => {
                        warn!(error = %e, "accept failed");
                        tokio::time::sleep(ACCEPT_RETRY_DELAY).await;
                    }
                },
            }
        }
        info!(sessions = conns.len(), "cloudhub shutting down");
        drop(self.listener);
        shared.shutdown.cancel();
        let drain = async { while conns.join_next().await.is_some() {} };
        if tokio::time::timeout(shared.cfg.drain_timeout, drain)
            .await
            .is_err()
        {
            warn!("sessions still open after the drain timeout; aborting them");
            conns.abort_all();
        }
    }
}
