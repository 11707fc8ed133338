//! [`MetaManager`]: the task between EdgeHub and edged.
//!
//! Per downstream `insert`/`update`/`delete` (KubeEdge's `process.go` order, with the ACK
//! moved before the forward so the cloud's resend timer is not held up by edged):
//! 1. apply it to the [`MetaStore`] (committed when `apply` returns);
//! 2. if CloudHub waits for an ACK ([`Message::needs_ack`]), send `response`/`"OK"` on the
//!    ACK channel: the ACK can only follow a commit;
//! 3. if the store changed and the object is a pod, configmap or secret, forward the message
//!    to edged; a device or device model, to DeviceTwin (when it runs).
//!
//! A store error sends no ACK (the cloud resends); a message that is not a valid write gets an
//! `error` reply instead. A `query` (from edged, or any module) is answered from SQLite, as
//! KubeEdge answers pod/node queries and everything while offline: content is a JSON array of
//! JSON strings, one per object; a query without a name lists the type in every namespace
//! (KubeEdge's `QueryMeta("type", …)`). Remote queries while connected are not done here yet.

use std::{future::Future, sync::Arc};

use ke_core::Clock;
use ke_proto::{Content, Message, MsgIdSource, Operation, ResourcePath, ResourceType, Source};
use serde_json::Value;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::{Error, MetaStore, Result};

/// The MetaManager task's state: the store, and where ids and timestamps come from.
pub struct MetaManager {
    store: MetaStore,
    clock: Arc<dyn Clock>,
    ids: Box<dyn MsgIdSource + Send>,
    /// Where Device and DeviceModel writes go (DeviceTwin), if it runs.
    twin: Option<mpsc::Sender<Message>>,
}

impl std::fmt::Debug for MetaManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetaManager")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl MetaManager {
    /// A manager over `store`; `ids` makes the ids of ACKs and replies.
    pub fn new(store: MetaStore, clock: Arc<dyn Clock>, ids: Box<dyn MsgIdSource + Send>) -> Self {
        Self {
            store,
            clock,
            ids,
            twin: None,
        }
    }

    /// Forwards committed Device and DeviceModel writes to DeviceTwin through `tx`.
    #[must_use]
    pub fn with_twin(mut self, tx: mpsc::Sender<Message>) -> Self {
        self.twin = Some(tx);
        self
    }

    /// The store (a shared handle).
    pub fn store(&self) -> &MetaStore {
        &self.store
    }

    /// Runs until `shutdown` resolves or `rx` closes. `ack_tx` carries ACKs and error replies
    /// to EdgeHub; `edged_tx` carries forwarded changes and query replies to edged. Fails only
    /// if `ack_tx` closes (EdgeHub is gone).
    pub async fn run(
        mut self,
        mut rx: mpsc::Receiver<Message>,
        ack_tx: mpsc::Sender<Message>,
        edged_tx: mpsc::Sender<Message>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<()> {
        tokio::pin!(shutdown);
        loop {
            let msg = tokio::select! {
                biased;
                () = &mut shutdown => return Ok(()),
                msg = rx.recv() => match msg {
                    Some(msg) => msg,
                    None => return Ok(()),
                },
            };
            self.handle(msg, &ack_tx, &edged_tx).await?;
        }
    }

    async fn handle(
        &mut self,
        msg: Message,
        ack_tx: &mpsc::Sender<Message>,
        edged_tx: &mpsc::Sender<Message>,
    ) -> Result<()> {
        match &msg.route.operation {
            Operation::Insert | Operation::Update | Operation::Delete
                if msg.route.source != Source::Edged =>
            {
                self.apply_downstream(msg, ack_tx, edged_tx).await
            }
            Operation::Query => {
                let reply = self.answer_query(&msg);
                forward(edged_tx, reply).await;
                Ok(())
            }
            op => {
                debug!(%op, resource = %msg.route.resource, "metamanager ignores message");
                Ok(())
            }
        }
    }

    async fn apply_downstream(
        &mut self,
        msg: Message,
        ack_tx: &mpsc::Sender<Message>,
        edged_tx: &mpsc::Sender<Message>,
    ) -> Result<()> {
        let applied = match self.store.apply(&msg) {
            Ok(applied) => applied,
            Err(e) if e.is_malformed() => {
                warn!(error = %e, msg_id = %msg.header.id, "refusing downstream message");
                let now = self.now();
                let reply = Message::error_for(&msg, e.to_string(), &mut *self.ids, now);
                return send_ack(ack_tx, reply).await;
            }
            Err(e) => {
                warn!(error = %e, msg_id = %msg.header.id, "store failed; not acknowledging");
                return Ok(());
            }
        };
        debug!(?applied, resource = %msg.route.resource, "applied");
        if msg.needs_ack() {
            let now = self.now();
            let ack = Message::ack_for(&msg, &mut *self.ids, now);
            send_ack(ack_tx, ack).await?;
        }
        if applied.changed() && is_for_edged(&msg) {
            forward(edged_tx, msg).await;
        } else if let Some(twin) = self.twin.as_ref().filter(|_| applied.changed())
            && is_for_twin(&msg)
        {
            forward(twin, msg).await;
        }
        Ok(())
    }

    /// The local answer to a `query`: the matching objects as a JSON array of JSON strings.
    fn answer_query(&mut self, msg: &Message) -> Message {
        let found = match msg.resource_path() {
            ResourcePath::Object {
                name: Some(_),
                ref kind,
                ..
            } if !kind.is_empty() => self
                .store
                .get_raw(&msg.route.resource)
                .map(|v| v.into_iter().collect::<Vec<_>>()),
            ResourcePath::Object {
                name: None,
                ref kind,
                ..
            } => self
                .store
                .list_raw(None, kind)
                .map(|rows| rows.into_iter().map(|(_, v)| v).collect()),
            _ => Err(Error::NoKey {
                msg_id: msg.header.id.clone(),
                resource: msg.route.resource.clone(),
            }),
        };
        let now = self.now();
        match found {
            Ok(texts) => {
                let items: Vec<Value> = texts.into_iter().map(Value::String).collect();
                Message::response_to(msg, Content::new(Value::Array(items)), &mut *self.ids, now)
            }
            Err(e) => Message::error_for(msg, e.to_string(), &mut *self.ids, now),
        }
    }

    fn now(&self) -> i64 {
        self.clock.now_millis()
    }
}

/// Pods, configmaps and secrets are what edged acts on (node objects are not forwarded, as in
/// KubeEdge).
fn is_for_edged(msg: &Message) -> bool {
    matches!(
        msg.resource_type(),
        Some(ResourceType::Pod | ResourceType::ConfigMap | ResourceType::Secret)
    )
}

/// Devices and device models are what DeviceTwin acts on.
fn is_for_twin(msg: &Message) -> bool {
    matches!(
        msg.resource_type(),
        Some(ResourceType::Device | ResourceType::DeviceModel)
    )
}

async fn send_ack(ack_tx: &mpsc::Sender<Message>, msg: Message) -> Result<()> {
    ack_tx
        .send(msg)
        .await
        .map_err(|_| Error::ChannelClosed { channel: "ack" })
}

/// Edged may be absent (not started, or stopped): the store already holds the change and edged
/// reconciles from it on start, so a closed channel is logged, not fatal.
async fn forward(edged_tx: &mpsc::Sender<Message>, msg: Message) {
    if edged_tx.send(msg).await.is_err() {
        debug!("edged channel closed; change stays in the store");
    }
}
