//! Upstream requests from edges (KubeEdge's `controller/upstream.go`), with node
//! authorization: a node may read and change only its own Node and Lease, the pods bound to
//! it, and the configmaps and secrets those pods reference. Everything else gets an `error`
//! reply naming the refusal, and nothing is read or written.
//!
//! | resource type | ops | action |
//! |---|---|---|
//! | `node` | insert / update / query | create (edge label ensured) or patch labels / get |
//! | `nodepatch` | patch | strategic-merge patch of `nodes/<n>/status` |
//! | `nodestatus` | update | merge patch of `status` (KubeEdge's deprecated form) |
//! | `lease` | insert / update / query | create-or-update / get (`kube-node-lease`) |
//! | `podstatus` | update | merge patch of `pods/<p>/status`; unknown pod: delete sent down |
//! | `podpatch` | patch | strategic-merge patch of `pods/<p>/status` |
//! | `pod` | delete / query | delete with the UID precondition / get |
//! | `configmap`, `secret` | query | from the controller's cache |
//! | `event` | insert / update / patch | create (about the node or one of its pods) |
//! | `device/<ns>/<n>/twin/edge_updated` | update | merge patch of the DeviceStatus's twins |
//! | `device/<ns>/<n>/state/update` | update | merge patch of the DeviceStatus's state |
//! | `membership/detail` | get / query | the node's devices |
//!
//! The device rows (`devices`, with device support) answer as KubeEdge's DeviceController:
//! source `devicecontroller`, group `twin`; a node may report only for devices bound to it.

mod devices;

use std::sync::{Arc, Mutex, PoisonError};

use crate::devicecontroller::twins::TwinCache;

use k8s_openapi::api::{
    coordination::v1::Lease,
    core::v1::{Event, Node, Pod},
};
use ke_core::{Clock, Entropy};
use ke_proto::{Content, Message, NodeId, Operation, ResourcePath};
use kube::{
    Api, Resource as _,
    api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions},
};
use serde_json::{Value, json, value::RawValue};
use tracing::{debug, warn};

use super::{
    index::{Index, Kind},
    metrics::Metrics,
};
use crate::{cloudhub::HubHandle, config::Authorization};

/// The namespace of node leases.
pub(crate) const LEASE_NAMESPACE: &str = "kube-node-lease";
/// The label every edge node carries.
pub const EDGE_LABEL: &str = "node-role.kubernetes.io/edge";

/// Why a request failed; becomes the text of the `error` reply.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Refusal {
    #[error("forbidden: node {node} may not {what}")]
    Forbidden { node: String, what: String },
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("unsupported: {op} on resource type {kind}")]
    Unsupported { op: String, kind: String },
    #[error("not found: {0}")]
    NotFound(String),
    #[error("API request failed: {0}")]
    Api(#[from] kube::Error),
}

/// What a handled request answers.
enum Reply {
    /// `response` with this content.
    Content(Content),
    /// No reply (events).
    None,
    /// A DeviceController `response` (group `twin`) on this edge-relative resource.
    Device {
        resource: &'static str,
        content: Content,
    },
}

/// Handles upstream requests; cheap to clone (one per worker).
#[derive(Clone)]
pub(crate) struct Upstream {
    pub(crate) client: kube::Client,
    pub(crate) index: Arc<Mutex<Index>>,
    pub(crate) hub: HubHandle,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) entropy: Entropy,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) authz: Authorization,
    /// Device support (the device CRDs are installed and watched).
    pub(crate) devices: bool,
    /// Each device's twin list as last written.
    pub(crate) twins: Arc<TwinCache>,
}

/// The parts of a request's resource path.
struct Req<'a> {
    node: &'a str,
    msg: &'a Message,
    namespace: String,
    name: String,
}

impl Upstream {
    /// Handles one request from `node` and sends the reply.
    pub(crate) async fn handle(&self, node: &NodeId, msg: Message) {
        if msg.is_reply() || msg.route.operation == Operation::Error {
            debug!(%node, op = %msg.route.operation, "reply from the edge; nothing to do");
            return;
        }
        let (namespace, kind, name, device) = match msg.resource_path() {
            ResourcePath::Object {
                namespace,
                kind,
                name,
            } => (
                namespace.unwrap_or_default(),
                kind,
                name.unwrap_or_default(),
                false,
            ),
            ResourcePath::Device {
                namespace,
                name,
                kind,
            } => (namespace, kind, name, true),
            _ => (
                String::new(),
                msg.route.resource.as_str().into(),
                String::new(),
                false,
            ),
        };
        let req = Req {
            node: node.as_str(),
            msg: &msg,
            namespace,
            name,
        };
        let result = if device {
            self.device_report(&kind, &req).await
        } else {
            self.dispatch(kind.as_str(), &req).await
        };
        self.metrics.inc(&self.metrics.upstream_handled);
        let reply = match result {
            Ok(Reply::Content(c)) => self.response(&msg, c),
            Ok(Reply::Device { resource, content }) => {
                self.device_response(&msg, resource, content)
            }
            Ok(Reply::None) => return,
            Err(e) => {
                match &e {
                    Refusal::Forbidden { .. } => {
                        warn!(%node, resource = %msg.route.resource, op = %msg.route.operation, reason = %e, "refused");
                        self.metrics.inc(&self.metrics.upstream_forbidden);
                    }
                    _ => {
                        debug!(%node, resource = %msg.route.resource, error = %e, "request failed");
                        self.metrics.inc(&self.metrics.upstream_failed);
                    }
                }
                self.error(&msg, &e.to_string())
            }
        };
        if self.hub.send_reply(node, reply).is_err() {
            self.metrics.inc(&self.metrics.downstream_refused);
        }
    }

    async fn dispatch(&self, kind: &str, req: &Req<'_>) -> Result<Reply, Refusal> {
        let op = &req.msg.route.operation;
        match (kind, op) {
            ("node", Operation::Insert) => self.register_node(req).await,
            ("node", Operation::Update) => self.update_node(req).await,
            ("node", Operation::Query) => self.get_node(req).await,
            ("nodepatch", Operation::Patch) => self.patch_node_status(req, true).await,
            ("nodestatus", Operation::Update) => self.patch_node_status(req, false).await,
            ("lease", Operation::Insert | Operation::Update) => self.put_lease(req).await,
            ("lease", Operation::Query) => self.get_lease(req).await,
            ("podstatus", Operation::Update) => self.pod_status(req).await,
            ("podpatch", Operation::Patch) => self.pod_patch(req).await,
            ("pod", Operation::Delete) => self.delete_pod(req).await,
            ("pod", Operation::Query) => self.get_pod(req),
            ("configmap", Operation::Query) => self.get_referenced(req, Kind::ConfigMap),
            ("secret", Operation::Query) => self.get_referenced(req, Kind::Secret),
            ("event", Operation::Insert | Operation::Update | Operation::Patch) => {
                self.create_event(req).await
            }
            ("membership/detail", Operation::Get | Operation::Query) if self.devices => {
                Ok(self.membership_detail(req))
            }
            _ => Err(Refusal::Unsupported {
                op: op.to_string(),
                kind: kind.to_owned(),
            }),
        }
    }

    /// Applies the authorization policy to a decision.
    fn allow(&self, req: &Req<'_>, ok: bool, what: impl FnOnce() -> String) -> Result<(), Refusal> {
        if ok || !self.authz.enable {
            return Ok(());
        }
        let refusal = Refusal::Forbidden {
            node: req.node.to_owned(),
            what: what(),
        };
        if self.authz.debug {
            warn!(reason = %refusal, "authorization debug mode: allowed anyway");
            return Ok(());
        }
        Err(refusal)
    }

    fn own_node(&self, req: &Req<'_>) -> Result<(), Refusal> {
        self.allow(req, req.name == req.node, || {
            format!("touch node {}", req.name)
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// True if pod `<ns>/<name>` is bound to the requesting node (and has `uid`, if given).
    fn pod_on_node(&self, req: &Req<'_>, uid: Option<&str>) -> bool {
        let idx = self.lock();
        idx.pods
            .get(&(req.namespace.clone(), req.name.clone()))
            .is_some_and(|p| p.node == req.node && uid.is_none_or(|u| u == p.stored.uid))
    }

    fn content(req: &Req<'_>) -> Result<Value, Refusal> {
        req.msg
            .content
            .content_json()
            .map(std::borrow::Cow::into_owned)
            .map_err(|e| Refusal::BadRequest(format!("content is not JSON: {e}")))
    }

    async fn register_node(&self, req: &Req<'_>) -> Result<Reply, Refusal> {
        let mut node: Node = serde_json::from_value(Self::content(req)?)
            .map_err(|e| Refusal::BadRequest(format!("not a Node: {e}")))?;
        let name = node.metadata.name.clone().unwrap_or_default();
        self.allow(req, name == req.node, || format!("register node {name}"))?;
        node.metadata
            .labels
            .get_or_insert_default()
            .insert(EDGE_LABEL.to_owned(), String::new());
        let api: Api<Node> = Api::all(self.client.clone());
        self.metrics.api("create");
        let created = match api.create(&PostParams::default(), &node).await {
            Ok(n) => n,
            Err(kube::Error::Api(ae)) if ae.code == 409 => {
                let labels = node.metadata.labels.clone().unwrap_or_default();
                let patch = json!({"metadata": {"labels": labels}});
                self.metrics.api("patch");
                api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await?
            }
            Err(e) => return Err(e.into()),
        };
        Ok(object_reply(&created))
    }

    async fn update_node(&self, req: &Req<'_>) -> Result<Reply, Refusal> {
        self.own_node(req)?;
        let body = Self::content(req)?;
        let meta = json!({"metadata": {
            "labels": body.pointer("/metadata/labels").cloned().unwrap_or(Value::Null),
            "annotations": body.pointer("/metadata/annotations").cloned().unwrap_or(Value::Null),
        }});
        let api: Api<Node> = Api::all(self.client.clone());
        self.metrics.api("patch");
        api.patch(&req.name, &PatchParams::default(), &Patch::Merge(&meta))
            .await?;
        Ok(Reply::Content(Content::ok()))
    }

    async fn get_node(&self, req: &Req<'_>) -> Result<Reply, Refusal> {
        self.own_node(req)?;
        let api: Api<Node> = Api::all(self.client.clone());
        self.metrics.api("get");
        let node = api.get(&req.name).await?;
        Ok(Reply::Content(Content::new(to_json(&node))))
    }

    async fn patch_node_status(&self, req: &Req<'_>, strategic: bool) -> Result<Reply, Refusal> {
        self.own_node(req)?;
        // The body goes into the patch as it came: no tree of `Value`s in between.
        let text = json_text(&req.msg.content)?;
        let bad = |e: serde_json::Error| Refusal::BadRequest(format!("content is not JSON: {e}"));
        let url = Node::url_path(&(), None);
        self.metrics.api("patch");
        let node = if strategic {
            let body: &RawValue = serde_json::from_str(&text).map_err(bad)?;
            self.patch_raw(url, &req.name, Some("status"), &Patch::Strategic(body))
                .await?
        } else {
            let item: NodeStatusItem<'_> = serde_json::from_str(&text).map_err(bad)?;
            let patch = StatusPatch {
                status: item.status.unwrap_or(RawValue::NULL),
            };
            self.patch_raw(url, &req.name, Some("status"), &Patch::Merge(&patch))
                .await?
        };
        Ok(text_reply(&node))
    }

    async fn put_lease(&self, req: &Req<'_>) -> Result<Reply, Refusal> {
        let own = req.namespace == LEASE_NAMESPACE && req.name == req.node;
        self.allow(req, own, || {
            format!("write lease {}/{}", req.namespace, req.name)
        })?;
        let mut lease: Lease = req
            .msg
            .content
            .to_typed()
            .map_err(|e| Refusal::BadRequest(format!("not a Lease: {e}")))?;
        lease.metadata.name = Some(req.name.clone());
        lease.metadata.namespace = Some(req.namespace.clone());
        lease.metadata.resource_version = None;
        let url = Lease::url_path(&(), Some(&req.namespace));
        let patch = json!({"spec": lease.spec});
        self.metrics.api("patch");
        match self
            .patch_raw(url, &req.name, None, &Patch::Merge(&patch))
            .await
        {
            Err(kube::Error::Api(ae)) if ae.code == 404 => {
                self.metrics.api("create");
                let api: Api<Lease> = Api::namespaced(self.client.clone(), &req.namespace);
                Ok(object_reply(
                    &api.create(&PostParams::default(), &lease).await?,
                ))
            }
            other => Ok(text_reply(&other?)),
        }
    }

    async fn get_lease(&self, req: &Req<'_>) -> Result<Reply, Refusal> {
        let own = req.namespace == LEASE_NAMESPACE && req.name == req.node;
        self.allow(req, own, || {
            format!("read lease {}/{}", req.namespace, req.name)
        })?;
        let api: Api<Lease> = Api::namespaced(self.client.clone(), &req.namespace);
        self.metrics.api("get");
        let lease = api.get(&req.name).await?;
        Ok(object_reply(&lease))
    }

    /// A `response` as KubeEdge's EdgeController builds it: source `edgecontroller`, group
    /// `resource`, the request's resource, the object's resourceVersion when there is one.
    fn response(&self, req: &Message, content: Content) -> Message {
        let mut ids = || self.entropy.uuid_v4();
        let rv = content
            .value()
            .pointer("/Object/metadata/resourceVersion")
            .or_else(|| content.value().pointer("/metadata/resourceVersion"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let mut msg = Message::response_to(req, content, &mut ids, self.clock.now_millis());
        msg.route.source = ke_proto::Source::EdgeController;
        msg.route.group = ke_proto::Group::Resource;
        msg.with_resource_version(rv)
    }

    fn error(&self, req: &Message, text: &str) -> Message {
        let mut ids = || self.entropy.uuid_v4();
        Message::error_for(req, text, &mut ids, self.clock.now_millis())
    }
}

fn to_json<K: serde::Serialize>(obj: &K) -> Value {
    serde_json::to_value(obj).unwrap_or(Value::Null)
}

fn object_reply<K: serde::Serialize>(obj: &K) -> Reply {
    Reply::Content(Content::object_reply(to_json(obj)))
}

/// The reply for an object the API server answered with as text.
fn text_reply(text: &str) -> Reply {
    Reply::Content(Content::object_reply(
        serde_json::from_str(text).unwrap_or(Value::Null),
    ))
}

impl Upstream {
    async fn pod_status(&self, req: &Req<'_>) -> Result<Reply, Refusal> {
        // Read from the content's text: each status goes into its patch as it came, without
        // a tree of `Value`s built, copied and written out again.
        let text = json_text(&req.msg.content)?;
        let bad = |e: serde_json::Error| Refusal::BadRequest(format!("not pod statuses: {e}"));
        let items: Vec<PodStatusItem<'_>> = if text.trim_start().starts_with('[') {
            serde_json::from_str(&text).map_err(bad)?
        } else {
            vec![serde_json::from_str(&text).map_err(bad)?]
        };
        for item in items {
            let uid = lenient_str(item.uid).unwrap_or_default();
            let name = lenient_str(item.name).unwrap_or_else(|| req.name.clone());
            let one = Req {
                name: name.clone(),
                namespace: req.namespace.clone(),
                ..*req
            };
            match self.pod_owner(&one) {
                Some((owner, pod_uid)) if owner == req.node && pod_uid == uid => {}
                Some((owner, _)) if owner != req.node => {
                    self.allow(&one, false, || {
                        format!("update status of pod {}/{name}", one.namespace)
                    })?;
                }
                // Unknown here, or another pod of that name now: the edge holds a pod the
                // cloud deleted while it was away. KubeEdge answers OK and sends the delete.
                _ => {
                    self.evict(&one, &uid);
                    continue;
                }
            }
            let url = Pod::url_path(&(), Some(&one.namespace));
            self.metrics.api("patch");
            // No status clears it, as the parsed form did.
            let patch = StatusPatch {
                status: item.status.unwrap_or(RawValue::NULL),
            };
            self.patch_raw(url, &name, Some("status"), &Patch::Merge(&patch))
                .await?;
        }
        Ok(Reply::Content(Content::ok()))
    }

    /// Patches `<url>/<name>[/<subresource>]`: the request kube's `Api::patch` makes, with
    /// the object the server answers as text, not parsed into a typed object. Status
    /// reports and leases are most upstream requests, and the parse into a typed object,
    /// its conversion back to JSON for the reply and the drops cost about as much as the
    /// patch itself in the API server.
    async fn patch_raw<P: serde::Serialize>(
        &self,
        url: String,
        name: &str,
        subresource: Option<&str>,
        patch: &Patch<P>,
    ) -> Result<String, kube::Error> {
        let pp = PatchParams::default();
        let request = kube::core::Request::new(url);
        let request = match subresource {
            Some(sub) => request.patch_subresource(sub, name, &pp, patch),
            None => request.patch(name, &pp, patch),
        }
        .map_err(kube::Error::BuildRequest)?;
        self.client.request_text(request).await
    }

    /// The node and UID of pod `<ns>/<name>`, if the controller knows it.
    fn pod_owner(&self, req: &Req<'_>) -> Option<(String, String)> {
        self.lock()
            .pods
            .get(&(req.namespace.clone(), req.name.clone()))
            .map(|p| (p.node.clone(), p.stored.uid.clone()))
    }

    /// Sends the edge a delete for a pod the cloud no longer has.
    fn evict(&self, req: &Req<'_>, uid: &str) {
        let key = format!("{}/pod/{}", req.namespace, req.name);
        let route = ke_proto::Route::new(
            ke_proto::Source::EdgeController,
            ke_proto::Group::Resource,
            Operation::Delete,
            key,
        );
        let stub = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"namespace": req.namespace, "name": req.name, "uid": uid}});
        let msg = Message::new(
            self.entropy.uuid_v4(),
            self.clock.now_millis(),
            route,
            Content::new(stub),
        );
        if let Ok(node) = NodeId::new(req.node) {
            let _ = self.hub.send(&node, msg);
        }
    }

    async fn pod_patch(&self, req: &Req<'_>) -> Result<Reply, Refusal> {
        let ok = self.pod_on_node(req, None);
        self.allow(req, ok, || {
            format!("patch pod {}/{}", req.namespace, req.name)
        })?;
        let body = Self::content(req)?;
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &req.namespace);
        self.metrics.api("patch");
        let pod = api
            .patch_status(&req.name, &PatchParams::default(), &Patch::Strategic(&body))
            .await?;
        Ok(object_reply(&pod))
    }

    async fn delete_pod(&self, req: &Req<'_>) -> Result<Reply, Refusal> {
        let ok = self.pod_on_node(req, None);
        self.allow(req, ok, || {
            format!("delete pod {}/{}", req.namespace, req.name)
        })?;
        let body = Self::content(req).unwrap_or(Value::Null);
        let uid = body
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: uid.map(|uid| Preconditions {
                uid: Some(uid),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &req.namespace);
        self.metrics.api("delete");
        match api.delete(&req.name, &dp).await {
            Ok(_) => Ok(Reply::Content(Content::ok())),
            Err(kube::Error::Api(ae)) if ae.code == 404 => Ok(Reply::Content(Content::ok())),
            Err(e) => Err(e.into()),
        }
    }

    fn get_pod(&self, req: &Req<'_>) -> Result<Reply, Refusal> {
        let ok = self.pod_on_node(req, None);
        self.allow(req, ok, || {
            format!("read pod {}/{}", req.namespace, req.name)
        })?;
        let idx = self.lock();
        let pod = idx
            .pods
            .get(&(req.namespace.clone(), req.name.clone()))
            .ok_or_else(|| Refusal::NotFound(format!("pod {}/{}", req.namespace, req.name)))?;
        Ok(Reply::Content((*pod.stored.json).clone()))
    }

    /// A configmap or secret, only if a pod of the node references it.
    fn get_referenced(&self, req: &Req<'_>, kind: Kind) -> Result<Reply, Refusal> {
        let r = (kind, req.namespace.clone(), req.name.clone());
        let idx = self.lock();
        let ok = idx.node_references(req.node, &r);
        self.allow(req, ok, || {
            format!(
                "read {} {}/{}: no pod of this node references it",
                kind.resource_type(),
                req.namespace,
                req.name
            )
        })?;
        let obj = idx
            .objects(kind)
            .and_then(|m| m.get(&(r.1.clone(), r.2.clone())))
            .ok_or_else(|| {
                Refusal::NotFound(format!("{} {}/{}", kind.resource_type(), r.1, r.2))
            })?;
        Ok(Reply::Content((*obj.json).clone()))
    }

    async fn create_event(&self, req: &Req<'_>) -> Result<Reply, Refusal> {
        let mut body = Self::content(req)?;
        if req.msg.route.operation == Operation::Patch
            && let Some(ev) = body.get("event").cloned()
        {
            body = ev;
        }
        let mut event: Event = serde_json::from_value(body)
            .map_err(|e| Refusal::BadRequest(format!("not an Event: {e}")))?;
        let about = &event.involved_object;
        let kind = about.kind.as_deref().unwrap_or_default();
        let name = about.name.clone().unwrap_or_default();
        let ok = match kind {
            "Node" => name == req.node,
            "Pod" => {
                let ns = about.namespace.clone().unwrap_or_default();
                let probe = Req {
                    namespace: ns,
                    name,
                    ..*req
                };
                self.pod_on_node(&probe, None)
            }
            _ => false,
        };
        self.allow(req, ok, || {
            format!(
                "record an event about {kind} {}",
                about.name.as_deref().unwrap_or_default()
            )
        })?;
        let ns = if req.namespace.is_empty() || req.namespace == "null" {
            "default".to_owned()
        } else {
            req.namespace.clone()
        };
        event.metadata.namespace = Some(ns.clone());
        event.metadata.resource_version = None;
        if event.metadata.name.is_none() {
            event.metadata.name = Some(format!("{}.{}", req.node, self.entropy.suffix(10)));
        }
        let api: Api<Event> = Api::namespaced(self.client.clone(), &ns);
        self.metrics.api("create");
        api.create(&PostParams::default(), &event).await?;
        Ok(Reply::None)
    }
}

/// One pod's status in a `podstatus` update (KubeEdge's `edgeapi.PodStatusRequest`), each
/// member as it is in the text.
#[derive(serde::Deserialize)]
struct PodStatusItem<'a> {
    #[serde(rename = "UID", default, borrow)]
    uid: Option<&'a RawValue>,
    #[serde(rename = "Name", default, borrow)]
    name: Option<&'a RawValue>,
    #[serde(rename = "Status", default, borrow)]
    status: Option<&'a RawValue>,
}

/// A node status update (KubeEdge's `edgeapi.NodeStatusRequest`): its status as it is in
/// the text.
#[derive(serde::Deserialize)]
struct NodeStatusItem<'a> {
    #[serde(rename = "Status", default, borrow)]
    status: Option<&'a RawValue>,
}

/// The merge patch of a pod's or node's status, the status copied as it came.
#[derive(serde::Serialize)]
struct StatusPatch<'a> {
    status: &'a RawValue,
}

/// A member that should be a string: its text if it is one (other JSON counts as absent,
/// as a lookup in the parsed object did).
fn lenient_str(raw: Option<&RawValue>) -> Option<String> {
    raw.and_then(|r| serde_json::from_str(r.get()).ok())
}

/// The content as JSON text: the text it came as, or the JSON inside a string content, or
/// the value written out (content built locally).
fn json_text(content: &Content) -> Result<std::borrow::Cow<'_, str>, Refusal> {
    use std::borrow::Cow;
    if let Some(t) = content.raw_text().filter(|t| !t.starts_with('"')) {
        return Ok(Cow::Borrowed(t));
    }
    match content.value() {
        Value::String(s) => serde_json::from_str::<&RawValue>(s)
            .map(|_| Cow::Borrowed(s.as_str()))
            .map_err(|e| Refusal::BadRequest(format!("content is not JSON: {e}"))),
        v => Ok(Cow::Owned(v.to_string())),
    }
}
