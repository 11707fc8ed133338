//! The daemon's own tasks: getting credentials then running EdgeHub (the "hub" task), and the
//! downstream router.

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use ke_core::{Clock, Entropy};
use ke_net::Transport;
use ke_proto::{Group, Message, NodeId};
use rustls::pki_types::ServerName;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{Error, handle::Shared};
use crate::{
    certificate::{self, CertPaths, EdgeCredentials},
    edgehub::{EdgeHub, EdgeHubConfig},
};

/// First delay between certificate bootstrap attempts; doubles up to [`BOOTSTRAP_RETRY_MAX`].
pub const BOOTSTRAP_RETRY_INITIAL: Duration = Duration::from_secs(1);
/// Longest delay between certificate bootstrap attempts.
pub const BOOTSTRAP_RETRY_MAX: Duration = Duration::from_secs(30);

/// Where and how to join when there are no stored credentials.
#[derive(Debug, Clone)]
pub(crate) struct Join {
    /// The certificate server (`httpServer`).
    pub(crate) server: SocketAddr,
    /// The join token.
    pub(crate) token: String,
}

/// What the hub task needs.
pub(crate) struct HubSetup<T: Transport> {
    pub(crate) transport: T,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) entropy: Entropy,
    pub(crate) node: NodeId,
    pub(crate) project_id: String,
    pub(crate) cloud_addr: SocketAddr,
    pub(crate) hub_cfg: EdgeHubConfig,
    pub(crate) paths: CertPaths,
    /// Credentials loaded at start, or how to get them.
    pub(crate) creds: Result<EdgeCredentials, Join>,
}

/// Gets credentials (bootstrapping with retries if needed), then runs EdgeHub until shutdown,
/// forwarding its connection state to `shared.cloud`.
pub(crate) async fn hub<T: Transport>(
    setup: HubSetup<T>,
    downstream: mpsc::Sender<Message>,
    upstream: mpsc::Receiver<Message>,
    shared: Arc<Shared>,
    stop: CancellationToken,
) -> Result<(), Error> {
    let creds = match setup.creds {
        Ok(creds) => creds,
        Err(ref join) => {
            let got = tokio::select! {
                () = stop.cancelled() => return Ok(()),
                got = bootstrap(&setup, join) => got,
            };
            got?
        }
    };
    let tls = creds
        .client_config(setup.clock.clone())
        .map_err(Error::Credentials)?;
    shared.tls.send_replace(Some(tls.clone()));
    let hub = EdgeHub::new(
        setup.transport,
        setup.cloud_addr,
        ServerName::IpAddress(setup.cloud_addr.ip().into()),
        tls,
        setup.node,
        setup.project_id,
        setup.hub_cfg,
    )
    .with_clock(setup.clock)
    .with_entropy(setup.entropy);
    let _ = shared.hub.set(hub.metrics());
    let mut state = hub.subscribe();
    let run = hub.run(downstream, upstream, stop.cancelled_owned());
    tokio::pin!(run);
    let mut state_open = true;
    loop {
        tokio::select! {
            result = &mut run => return result.map_err(Error::EdgeHub),
            changed = state.changed(), if state_open => match changed {
                Ok(()) => {
                    let now = state.borrow_and_update().clone();
                    shared.cloud.send_replace(now);
                }
                Err(_) => state_open = false,
            },
        }
    }
}

/// `certificate::bootstrap` until it succeeds, retrying retryable failures (the cloud is
/// unreachable or failing) with jittered exponential back-off.
async fn bootstrap<T: Transport>(
    setup: &HubSetup<T>,
    join: &Join,
) -> Result<EdgeCredentials, Error> {
    let server_name = join.server.ip().to_string();
    let mut delay = BOOTSTRAP_RETRY_INITIAL;
    loop {
        let result = certificate::bootstrap(
            &setup.transport,
            join.server,
            &server_name,
            &join.token,
            setup.node.as_str(),
            &setup.paths,
            setup.clock.clone(),
        )
        .await;
        match result {
            Ok(creds) => {
                info!(reused = creds.reused, "edge credentials ready");
                return Ok(creds);
            }
            Err(e) if e.is_retryable() => {
                let wait = jittered(delay, &setup.entropy);
                warn!(error = %e, retry_in_ms = wait.as_millis(), "certificate bootstrap failed");
                tokio::time::sleep(wait).await;
                delay = (delay * 2).min(BOOTSTRAP_RETRY_MAX);
            }
            Err(e) => return Err(Error::Credentials(e)),
        }
    }
}

/// `d` plus up to half of it, from the seeded stream.
fn jittered(d: Duration, entropy: &Entropy) -> Duration {
    let half_ms = u64::try_from(d.as_millis() / 2).unwrap_or(u64::MAX).max(1);
    d + Duration::from_millis(entropy.next_u64() % half_ms)
}

/// Where the router sends what.
pub(crate) struct Routes {
    pub(crate) meta: mpsc::Sender<Message>,
    pub(crate) replies: mpsc::Sender<Message>,
    /// DeviceTwin, if it runs.
    pub(crate) twin: Option<mpsc::Sender<Message>>,
}

/// True for what DeviceTwin handles: group `twin` (membership, the confirmations of its
/// reports) and any reply about a device (`device/<ns>/<name>/…`, error replies have no group).
fn is_twin_traffic(msg: &Message) -> bool {
    msg.route.group == Group::Twin || (msg.is_reply() && msg.route.resource.starts_with("device/"))
}

/// Routes downstream messages until shutdown or until EdgeHub is gone: device traffic to
/// DeviceTwin (dropped when it does not run), other replies (`parent_msg_id` set) to the node
/// agent, the rest to MetaManager. A full destination stalls the router, and so EdgeHub's reader (the cloud
/// then holds and resends its un-ACKed messages).
pub(crate) async fn route(
    mut downstream: mpsc::Receiver<Message>,
    routes: Routes,
    shared: Arc<Shared>,
    stop: CancellationToken,
) -> Result<(), Error> {
    loop {
        let msg = tokio::select! {
            biased;
            () = stop.cancelled() => return Ok(()),
            msg = downstream.recv() => match msg {
                Some(msg) => msg,
                None => return Ok(()),
            },
        };
        let (tx, channel) = if is_twin_traffic(&msg) {
            let Some(twin) = &routes.twin else {
                super::handle::inc(&shared.dropped_twin);
                debug!(resource = %msg.route.resource, "deviceTwin disabled; dropping twin message");
                continue;
            };
            super::handle::inc(&shared.routed_twin);
            (twin, "devicetwin")
        } else if msg.is_reply() {
            super::handle::inc(&shared.routed_replies);
            (&routes.replies, "node")
        } else {
            super::handle::inc(&shared.routed_meta);
            (&routes.meta, "metamanager")
        };
        if !send_or_stop(tx, msg, stop.cancelled()).await {
            return if stop.is_cancelled() {
                Ok(())
            } else {
                Err(Error::ChannelClosed { channel })
            };
        }
    }
}

/// Sends `msg` unless `stop` comes first; false if not sent.
async fn send_or_stop(
    tx: &mpsc::Sender<Message>,
    msg: Message,
    stop: impl Future<Output = ()>,
) -> bool {
    tokio::select! {
        biased;
        () = stop => false,
        sent = tx.send(msg) => sent.is_ok(),
    }
}
