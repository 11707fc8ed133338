//! Device reports from edges (KubeEdge 1.23's `devicecontroller/controller/upstream.go`),
//! handled by the EdgeController's upstream workers so one node's reports stay in order.
//!
//! A report is accepted only for a device in the index whose `spec.nodeName` is the sending
//! node; content is parsed before anything is written. The DeviceStatus (same name and
//! namespace, owned by the Device) is merge-patched, or created when missing. The answer is
//! KubeEdge's confirmation: a `response` of `"OK"` from `devicecontroller`, group `twin`,
//! resource `twin`, whose `parent_msg_id` is the report's id; a failure answers `error` and
//! the edge resends.
//!
//! Without a garbage collector (the embedded API server has none) a deleted Device leaves its
//! DeviceStatus behind; a new Device of that name adopts it on its first twin report (owner
//! reference replaced, the old twins dropped).

use std::sync::Arc;

use ke_proto::{
    Content, Group, Message, Operation, ResourceType, Source,
    twin::{DeviceStateUpdate, MembershipList, TwinUpdate},
};
use kube::{
    Api, Resource as _,
    api::{DynamicObject, Patch, PostParams},
};
use serde::Serialize;
use serde_json::{Value, json};

use super::{Refusal, Reply, Req, Upstream};
use crate::devicecontroller::{
    self, API_VERSION, DeviceKind,
    twins::{Twin, apply_report, twins_of},
};

/// The confirmation's resource (KubeEdge's `node/<node>/twin`, trimmed by CloudHub).
const TWIN_RESOURCE: &str = "twin";

impl Upstream {
    /// A `device/<ns>/<name>/<kind>` request.
    pub(super) async fn device_report(
        &self,
        kind: &ResourceType,
        req: &Req<'_>,
    ) -> Result<Reply, Refusal> {
        let op = &req.msg.route.operation;
        match (kind, op) {
            (ResourceType::TwinEdgeUpdated, Operation::Update) if self.devices => {
                self.twin_report(req).await
            }
            (ResourceType::StateUpdate, Operation::Update) if self.devices => {
                self.state_report(req).await
            }
            _ => Err(Refusal::Unsupported {
                op: op.to_string(),
                kind: format!("device/{kind}"),
            }),
        }
    }

    /// A DeviceController `response` to `req`.
    pub(super) fn device_response(
        &self,
        req: &Message,
        resource: &'static str,
        content: Content,
    ) -> Message {
        let mut ids = || self.entropy.uuid_v4();
        let mut msg = Message::response_to(req, content, &mut ids, self.clock.now_millis());
        msg.route.source = Source::DeviceController;
        msg.route.group = Group::Twin;
        msg.route.resource = resource.to_owned();
        msg
    }

    /// `membership/detail`: the node's devices (KubeEdge 1.23 leaves this unanswered, so a
    /// stock edge re-asks every minute).
    pub(super) fn membership_detail(&self, req: &Req<'_>) -> Reply {
        let event_id = req
            .msg
            .content
            .content_json()
            .ok()
            .and_then(|v| v.get("event_id").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_default();
        let devices = self
            .lock()
            .devices_on(req.node)
            .into_iter()
            .map(|(k, e)| devicecontroller::member_device(&k.0, &k.1, e.stored.json.value()))
            .collect();
        let list = MembershipList {
            event_id,
            timestamp: self.clock.now_millis(),
            devices,
        };
        Reply::Device {
            resource: "membership/detail",
            content: Content::new(serde_json::to_value(&list).unwrap_or(Value::Null)),
        }
    }

    /// The UID and the object (shared, not copied) of the reported device, if `req.node` may
    /// report for it.
    fn reporting_device(&self, req: &Req<'_>) -> Result<(String, Arc<Content>), Refusal> {
        let idx = self.lock();
        let device = idx.devices.get(&(req.namespace.clone(), req.name.clone()));
        let ok = device.is_some_and(|d| d.node == req.node);
        let allowed = self.allow(req, ok, || {
            format!("report for device {}/{}", req.namespace, req.name)
        });
        if let Err(e) = allowed {
            self.metrics.inc(&self.metrics.device_refusals);
            return Err(e);
        }
        let device = device
            .ok_or_else(|| Refusal::NotFound(format!("device {}/{}", req.namespace, req.name)))?;
        Ok((device.stored.uid.clone(), device.stored.json.clone()))
    }

    async fn twin_report(&self, req: &Req<'_>) -> Result<Reply, Refusal> {
        self.metrics.inc(&self.metrics.twin_reports);
        let (uid, device) = self.reporting_device(req)?;
        let report: TwinUpdate = req
            .msg
            .content
            .to_typed()
            .map_err(|e| Refusal::BadRequest(format!("not a twin report: {e}")))?;
        let key = (req.namespace.clone(), req.name.clone());
        // Taken out of the cache (no copy) and put back once written; a failed write leaves
        // it out, so the next report reads the stored status again.
        let current = match self.twins.take(&key, &uid) {
            Some(twins) => Current {
                twins,
                exists: true,
                owned: true,
            },
            None => self.read_status(req, &uid).await?,
        };
        let mut twins = current.twins;
        let applied = apply_report(
            &mut twins,
            &report,
            &devicecontroller::property_names(device.value()),
        );
        if !current.exists || !current.owned || applied.changed {
            let w = Write {
                uid: &uid,
                status: &TwinsStatus { twins: &twins },
                exists: current.exists,
                adopt: current.exists && !current.owned,
            };
            self.write_status(req, w).await?;
        }
        self.twins.put(key, &uid, twins);
        Ok(confirmation())
    }

    async fn state_report(&self, req: &Req<'_>) -> Result<Reply, Refusal> {
        self.metrics.inc(&self.metrics.state_reports);
        let (uid, _) = self.reporting_device(req)?;
        let update: DeviceStateUpdate = req
            .msg
            .content
            .to_typed()
            .map_err(|e| Refusal::BadRequest(format!("not a state report: {e}")))?;
        if update.device.state.is_empty() {
            return Err(Refusal::BadRequest("state report without a state".into()));
        }
        let mut status = json!({ "state": update.device.state });
        if !update.device.last_online_time.is_empty() {
            status["lastOnlineTime"] = update.device.last_online_time.into();
        }
        let w = Write {
            uid: &uid,
            status: &status,
            exists: true,
            adopt: false,
        };
        self.write_status(req, w).await?;
        Ok(confirmation())
    }

    fn status_api(&self, namespace: &str) -> Api<DynamicObject> {
        let ar = DeviceKind::DeviceStatus.api_resource();
        Api::namespaced_with(self.client.clone(), namespace, &ar)
    }

    /// The DeviceStatus as stored: its twins (none if it belongs to an older Device of that
    /// name), whether it exists, and whether the Device with `uid` owns it.
    async fn read_status(&self, req: &Req<'_>, uid: &str) -> Result<Current, Refusal> {
        self.metrics.api("get");
        let found = self.status_api(&req.namespace).get_opt(&req.name).await?;
        let Some(obj) = found else {
            return Ok(Current {
                twins: Vec::new(),
                exists: false,
                owned: false,
            });
        };
        let owned = obj
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|o| o.uid == uid);
        let twins = if owned {
            twins_of(&serde_json::to_value(&obj).unwrap_or(Value::Null))
        } else {
            Vec::new()
        };
        Ok(Current {
            twins,
            exists: true,
            owned,
        })
    }

    /// Writes the status into the device's DeviceStatus: a merge patch if it exists, else (or
    /// if it was gone) a create owned by the Device, falling back to a patch if one appeared.
    async fn write_status<S: Serialize + Sync>(
        &self,
        req: &Req<'_>,
        w: Write<'_, S>,
    ) -> Result<(), Refusal> {
        let owner = w.adopt.then(|| owner_references(req, w.uid));
        if w.exists && self.merge_status(req, w.status, owner.as_ref()).await? {
            return Ok(());
        }
        if self.create_status(req, w.uid, w.status).await?
            || self.merge_status(req, w.status, owner.as_ref()).await?
        {
            return Ok(());
        }
        Err(Refusal::NotFound(format!(
            "devicestatus {}/{}",
            req.namespace, req.name
        )))
    }

    /// Merge-patches `{"status": status}` (and the owner references when adopting); false if
    /// the DeviceStatus does not exist.
    async fn merge_status<S: Serialize + Sync>(
        &self,
        req: &Req<'_>,
        status: &S,
        owner: Option<&Value>,
    ) -> Result<bool, Refusal> {
        // Serialized straight into the request body (no intermediate `Value`).
        let patch = StatusPatch {
            status,
            metadata: owner.map(|o| OwnerMeta {
                owner_references: o,
            }),
        };
        self.metrics.api("patch");
        let ar = DeviceKind::DeviceStatus.api_resource();
        let url = DynamicObject::url_path(&ar, Some(&req.namespace));
        match self
            .patch_raw(url, &req.name, None, &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {
                self.metrics.inc(&self.metrics.device_status_patches);
                Ok(true)
            }
            Err(kube::Error::Api(ae)) if ae.code == 404 => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Creates the DeviceStatus with `status`, owned by the Device (`uid`); false if it
    /// already exists.
    async fn create_status<S: Serialize + Sync>(
        &self,
        req: &Req<'_>,
        uid: &str,
        status: &S,
    ) -> Result<bool, Refusal> {
        let obj = json!({
            "apiVersion": API_VERSION,
            "kind": DeviceKind::DeviceStatus.kind(),
            "metadata": {
                "name": req.name,
                "namespace": req.namespace,
                "ownerReferences": owner_references(req, uid),
            },
            "status": status,
        });
        let obj: DynamicObject = serde_json::from_value(obj)
            .map_err(|e| Refusal::BadRequest(format!("DeviceStatus: {e}")))?;
        self.metrics.api("create");
        let api = self.status_api(&req.namespace);
        match api.create(&PostParams::default(), &obj).await {
            Ok(_) => {
                self.metrics.inc(&self.metrics.device_status_creates);
                Ok(true)
            }
            Err(kube::Error::Api(ae)) if ae.code == 409 => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

/// The DeviceStatus as read before a twin report.
struct Current {
    twins: Vec<Twin>,
    exists: bool,
    owned: bool,
}

/// `status` of a twin report's write: `{"twins": [...]}`.
#[derive(Serialize)]
struct TwinsStatus<'a> {
    twins: &'a [Twin],
}

/// The body of a DeviceStatus merge patch.
#[derive(Serialize)]
struct StatusPatch<'a, S> {
    status: &'a S,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<OwnerMeta<'a>>,
}

/// `metadata` of a patch that adopts a DeviceStatus.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OwnerMeta<'a> {
    owner_references: &'a Value,
}

/// A status write.
struct Write<'a, S> {
    /// The Device's UID (its owner).
    uid: &'a str,
    /// What goes under `status`.
    status: &'a S,
    /// The DeviceStatus is believed to exist.
    exists: bool,
    /// It exists but belongs to an older Device of that name: take it over.
    adopt: bool,
}

/// The DeviceStatus's owner: the Device, as its controller (KubeEdge's
/// `getOrCreateDeviceStatusForDevice`).
fn owner_references(req: &Req<'_>, uid: &str) -> Value {
    json!([{
        "apiVersion": API_VERSION,
        "kind": DeviceKind::Device.kind(),
        "name": req.name,
        "uid": uid,
        "controller": true,
        "blockOwnerDeletion": true,
    }])
}

/// KubeEdge's confirmation of a device report.
fn confirmation() -> Reply {
    Reply::Device {
        resource: TWIN_RESOURCE,
        content: Content::ok(),
    }
}
