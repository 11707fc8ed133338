//! The controller's view of the cluster: pods and devices by node, the configmaps, secrets
//! and device models they reference. Pure (no I/O); the watch loop writes it and the upstream
//! workers read it for node authorization.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use ke_proto::Content;
use serde_json::Value;

/// A namespaced object's `(namespace, name)`.
pub(crate) type ObjKey = (String, String);

/// The kinds the controller sends down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Kind {
    Pod,
    ConfigMap,
    Secret,
    /// `devices.kubeedge.io` Device: bound to the node in its `spec.nodeName`.
    Device,
    /// `devices.kubeedge.io` DeviceModel: referenced by devices, like a configmap by pods.
    DeviceModel,
}

impl Kind {
    /// The KubeEdge resource type (`pod`, `configmap`, `secret`, `device`, `devicemodel`).
    pub(crate) fn resource_type(self) -> &'static str {
        match self {
            Self::Pod => "pod",
            Self::ConfigMap => "configmap",
            Self::Secret => "secret",
            Self::Device => "device",
            Self::DeviceModel => "devicemodel",
        }
    }

    /// True for kinds bound to a node (pods, devices); false for the kinds they reference.
    pub(crate) fn is_bound(self) -> bool {
        matches!(self, Self::Pod | Self::Device)
    }

    /// True for the device kinds (handled only with device support enabled).
    pub(crate) fn is_device(self) -> bool {
        matches!(self, Self::Device | Self::DeviceModel)
    }

    /// The kind for a KubeEdge resource type, if the controller manages it.
    pub(crate) fn from_resource_type(s: &str) -> Option<Self> {
        match s {
            "pod" => Some(Self::Pod),
            "configmap" => Some(Self::ConfigMap),
            "secret" => Some(Self::Secret),
            "device" => Some(Self::Device),
            "devicemodel" => Some(Self::DeviceModel),
            _ => None,
        }
    }
}

/// [`ke_proto::desired::same_desired`] of two stored objects, on their text when both are
/// held as text.
fn same_desired(a: &Content, b: &Content) -> bool {
    match (a.raw_text(), b.raw_text()) {
        (Some(x), Some(y)) => ke_proto::desired::same_desired_text(x, y)
            .unwrap_or_else(|| ke_proto::desired::same_desired(a.value(), b.value())),
        _ => ke_proto::desired::same_desired(a.value(), b.value()),
    }
}

/// A reference from a pod to a configmap or secret, or from a device to a device model.
pub(crate) type Ref = (Kind, String, String);

/// One object as the controller holds it: identity, version and the JSON sent down.
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    pub(crate) uid: String,
    pub(crate) rv: String,
    /// The oldest resourceVersion with the same desired content as this one (for pods: only
    /// status changed since, see [`ke_proto::desired`]); an edge holding it is current.
    pub(crate) desired_rv: String,
    /// The object: as JSON text for what is only sent down (pods, configmaps, secrets: a
    /// `Value` tree is about five times the text, and each message would copy it), parsed
    /// for devices, whose properties every twin report reads.
    pub(crate) json: Arc<Content>,
}

impl Stored {
    /// From any Kubernetes object (serialized with `apiVersion` and `kind`), kept as text.
    pub(crate) fn of<K: serde::Serialize + kube::Resource>(obj: &K) -> Self {
        let json = Content::from_serialize(obj).unwrap_or_default();
        Self::with_json(obj.meta(), json)
    }

    /// [`Stored::of`], kept parsed.
    pub(crate) fn of_parsed<K: serde::Serialize + kube::Resource>(obj: &K) -> Self {
        let json = Content::new(serde_json::to_value(obj).unwrap_or(Value::Null));
        Self::with_json(obj.meta(), json)
    }

    fn with_json(meta: &ObjectMeta, json: Content) -> Self {
        let rv = meta.resource_version.clone().unwrap_or_default();
        Self {
            uid: meta.uid.clone().unwrap_or_default(),
            desired_rv: rv.clone(),
            rv,
            json: Arc::new(json),
        }
    }

    /// True if the edge holding `uid` at `rv` holds this object's desired content.
    pub(crate) fn current_at(&self, uid: &str, rv: &str) -> bool {
        uid == self.uid && (rv == self.rv || rv == self.desired_rv)
    }
}

/// A pod or device: its state, node and references.
#[derive(Debug, Clone)]
pub(crate) struct BoundEntry {
    pub(crate) stored: Stored,
    pub(crate) node: String,
    pub(crate) refs: BTreeSet<Ref>,
}

/// An object a node should hold: its edge key (`<ns>/<type>/<name>`), kind and state.
#[derive(Debug, Clone)]
pub(crate) struct Wanted {
    pub(crate) kind: Kind,
    pub(crate) namespace: String,
    pub(crate) name: String,
    pub(crate) stored: Stored,
}

/// The edge key of an object: the edge-relative resource path, as MetaManager stores it.
pub(crate) fn edge_key(kind: Kind, namespace: &str, name: &str) -> String {
    format!("{namespace}/{}/{name}", kind.resource_type())
}

/// What the controller knows.
#[derive(Debug, Default)]
pub(crate) struct Index {
    pub(crate) pods: BTreeMap<ObjKey, BoundEntry>,
    /// Pod keys by `spec.nodeName` (every node, edge or not: a pod may arrive before its
    /// node is labelled).
    pub(crate) by_node: BTreeMap<String, BTreeSet<ObjKey>>,
    pub(crate) configmaps: BTreeMap<ObjKey, Stored>,
    pub(crate) secrets: BTreeMap<ObjKey, Stored>,
    /// Devices (empty without device support).
    pub(crate) devices: BTreeMap<ObjKey, BoundEntry>,
    /// Device keys by `spec.nodeName`.
    pub(crate) devices_by_node: BTreeMap<String, BTreeSet<ObjKey>>,
    /// Device models.
    pub(crate) models: BTreeMap<ObjKey, Stored>,
    /// Per node, how many of its pods (or devices) reference each configmap/secret (or
    /// device model).
    pub(crate) refs: BTreeMap<String, BTreeMap<Ref, u32>>,
}

/// What a pod or device change did to its node's references.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct RefChange {
    /// Newly referenced by a node (count 0 → 1).
    pub(crate) added: Vec<(String, Ref)>,
    /// No longer referenced by a node (count 1 → 0).
    pub(crate) removed: Vec<(String, Ref)>,
}

impl Index {
    /// Inserts or replaces a pod; returns the previous entry and the reference changes on its
    /// node.
    pub(crate) fn put_pod(&mut self, pod: &Pod) -> (Option<BoundEntry>, RefChange) {
        let key = obj_key(&pod.metadata);
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        let mut stored = Stored::of(pod);
        // KubeEdge's `PodManager.isPodUpdated`: a change of status alone is not news to the
        // edge (it reported the status); remember the version the edge needs.
        if let Some(old) = self.bound(Kind::Pod).get(&key).map(|e| &e.stored)
            && old.uid == stored.uid
            && same_desired(&old.json, &stored.json)
        {
            stored.desired_rv.clone_from(&old.desired_rv);
        }
        let entry = BoundEntry {
            stored,
            node,
            refs: pod
                .spec
                .as_ref()
                .map(|s| refs_of(&key.0, s))
                .unwrap_or_default(),
        };
        self.put_bound(Kind::Pod, key, entry)
    }

    /// Inserts or replaces a device (its JSON in `stored`): bound to `spec.nodeName`,
    /// referencing the model in `spec.deviceModelRef.name`.
    pub(crate) fn put_device(
        &mut self,
        key: ObjKey,
        stored: Stored,
    ) -> (Option<BoundEntry>, RefChange) {
        let node = crate::devicecontroller::node_name(stored.json.value()).to_owned();
        let refs = crate::devicecontroller::model_ref(stored.json.value())
            .map(|m| (Kind::DeviceModel, key.0.clone(), m.to_owned()))
            .into_iter()
            .collect();
        let entry = BoundEntry { stored, node, refs };
        self.put_bound(Kind::Device, key, entry)
    }

    fn put_bound(
        &mut self,
        kind: Kind,
        key: ObjKey,
        entry: BoundEntry,
    ) -> (Option<BoundEntry>, RefChange) {
        let mut change = RefChange::default();
        let old = self.bound_mut(kind).insert(key.clone(), entry.clone());
        if let Some(old) = &old {
            self.unlink(kind, &key, old, &mut change);
        }
        self.link(kind, &key, &entry, &mut change);
        (old, change)
    }

    /// Removes a pod or device; returns it and the references its node lost.
    pub(crate) fn remove_bound(
        &mut self,
        kind: Kind,
        key: &ObjKey,
    ) -> Option<(BoundEntry, RefChange)> {
        let old = self.bound_mut(kind).remove(key)?;
        let mut change = RefChange::default();
        self.unlink(kind, key, &old, &mut change);
        Some((old, change))
    }

    /// The pods or the devices.
    pub(crate) fn bound(&self, kind: Kind) -> &BTreeMap<ObjKey, BoundEntry> {
        match kind {
            Kind::Device => &self.devices,
            _ => &self.pods,
        }
    }

    fn bound_mut(&mut self, kind: Kind) -> &mut BTreeMap<ObjKey, BoundEntry> {
        match kind {
            Kind::Device => &mut self.devices,
            _ => &mut self.pods,
        }
    }

    fn by_node_mut(&mut self, kind: Kind) -> &mut BTreeMap<String, BTreeSet<ObjKey>> {
        match kind {
            Kind::Device => &mut self.devices_by_node,
            _ => &mut self.by_node,
        }
    }

    fn link(&mut self, kind: Kind, key: &ObjKey, entry: &BoundEntry, change: &mut RefChange) {
        if entry.node.is_empty() {
            return;
        }
        self.by_node_mut(kind)
            .entry(entry.node.clone())
            .or_default()
            .insert(key.clone());
        let counts = self.refs.entry(entry.node.clone()).or_default();
        for r in &entry.refs {
            let c = counts.entry(r.clone()).or_insert(0);
            *c += 1;
            if *c == 1 {
                let item = (entry.node.clone(), r.clone());
                if let Some(i) = change.removed.iter().position(|x| *x == item) {
                    change.removed.remove(i);
                } else {
                    change.added.push(item);
                }
            }
        }
    }

    fn unlink(&mut self, kind: Kind, key: &ObjKey, entry: &BoundEntry, change: &mut RefChange) {
        if entry.node.is_empty() {
            return;
        }
        let by_node = self.by_node_mut(kind);
        if let Some(keys) = by_node.get_mut(&entry.node) {
            keys.remove(key);
            if keys.is_empty() {
                by_node.remove(&entry.node);
            }
        }
        let Some(counts) = self.refs.get_mut(&entry.node) else {
            return;
        };
        for r in &entry.refs {
            if let Some(c) = counts.get_mut(r) {
                *c -= 1;
                if *c == 0 {
                    counts.remove(r);
                    change.removed.push((entry.node.clone(), r.clone()));
                }
            }
        }
        if counts.is_empty() {
            self.refs.remove(&entry.node);
        }
    }

    /// The configmap, secret or device model map for `kind`.
    pub(crate) fn objects(&self, kind: Kind) -> Option<&BTreeMap<ObjKey, Stored>> {
        match kind {
            Kind::ConfigMap => Some(&self.configmaps),
            Kind::Secret => Some(&self.secrets),
            Kind::DeviceModel => Some(&self.models),
            Kind::Pod | Kind::Device => None,
        }
    }

    /// The configmap, secret or device model map for `kind`, mutable.
    pub(crate) fn objects_mut(&mut self, kind: Kind) -> Option<&mut BTreeMap<ObjKey, Stored>> {
        match kind {
            Kind::ConfigMap => Some(&mut self.configmaps),
            Kind::Secret => Some(&mut self.secrets),
            Kind::DeviceModel => Some(&mut self.models),
            Kind::Pod | Kind::Device => None,
        }
    }

    /// True if a pod (or device) on `node` references `r`.
    pub(crate) fn node_references(&self, node: &str, r: &Ref) -> bool {
        self.refs.get(node).is_some_and(|c| c.contains_key(r))
    }

    /// The nodes whose pods (or devices) reference `r`, sorted.
    pub(crate) fn nodes_referencing(&self, r: &Ref) -> Vec<String> {
        self.refs
            .iter()
            .filter(|(_, c)| c.contains_key(r))
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// The devices bound to `node`, sorted by key.
    pub(crate) fn devices_on(&self, node: &str) -> Vec<(&ObjKey, &BoundEntry)> {
        self.devices_by_node
            .get(node)
            .into_iter()
            .flatten()
            .filter_map(|k| self.devices.get_key_value(k))
            .collect()
    }

    /// Everything `node` should hold, by edge key.
    pub(crate) fn wanted(&self, node: &str) -> BTreeMap<String, Wanted> {
        let mut out = BTreeMap::new();
        for kind in [Kind::Pod, Kind::Device] {
            let by_node = match kind {
                Kind::Device => &self.devices_by_node,
                _ => &self.by_node,
            };
            for key in by_node.get(node).into_iter().flatten() {
                if let Some(p) = self.bound(kind).get(key) {
                    let w = wanted(kind, key, &p.stored);
                    out.insert(edge_key(kind, &key.0, &key.1), w);
                }
            }
        }
        for (kind, ns, name) in self.refs.get(node).into_iter().flat_map(|c| c.keys()) {
            let key = (ns.clone(), name.clone());
            if let Some(s) = self.objects(*kind).and_then(|m| m.get(&key)) {
                out.insert(edge_key(*kind, ns, name), wanted(*kind, &key, s));
            }
        }
        out
    }
}

fn wanted(kind: Kind, key: &ObjKey, stored: &Stored) -> Wanted {
    Wanted {
        kind,
        namespace: key.0.clone(),
        name: key.1.clone(),
        stored: stored.clone(),
    }
}

/// `(namespace, name)` of an object.
pub(crate) fn obj_key(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> ObjKey {
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

/// The configmaps and secrets a pod references (KubeEdge's `manager/location.go`): volumes
/// (configMap, secret, projected), `envFrom`, `env[].valueFrom` and `imagePullSecrets`, in
/// every container, init container and ephemeral container.
pub(crate) fn refs_of(ns: &str, spec: &PodSpec) -> BTreeSet<Ref> {
    let ns_free = |kind: Kind, name: &str| (kind, ns.to_owned(), name.to_owned());
    let mut out = BTreeSet::new();
    for v in spec.volumes.iter().flatten() {
        if let Some(cm) = &v.config_map {
            out.insert(ns_free(Kind::ConfigMap, &cm.name));
        }
        if let Some(name) = v.secret.as_ref().and_then(|s| s.secret_name.as_deref()) {
            out.insert(ns_free(Kind::Secret, name));
        }
        for src in v.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
            if let Some(cm) = &src.config_map {
                out.insert(ns_free(Kind::ConfigMap, &cm.name));
            }
            if let Some(s) = &src.secret {
                out.insert(ns_free(Kind::Secret, &s.name));
            }
        }
    }
    for s in spec.image_pull_secrets.iter().flatten() {
        out.insert(ns_free(Kind::Secret, &s.name));
    }
    let containers = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten());
    for c in containers {
        container_refs(ns, c, &mut out);
    }
    for c in spec.ephemeral_containers.iter().flatten() {
        for e in c.env_from.iter().flatten() {
            env_from_refs(ns, e, &mut out);
        }
    }
    out
}

fn container_refs(ns: &str, c: &Container, out: &mut BTreeSet<Ref>) {
    for e in c.env_from.iter().flatten() {
        env_from_refs(ns, e, out);
    }
    for e in c.env.iter().flatten() {
        let Some(from) = &e.value_from else { continue };
        if let Some(k) = &from.config_map_key_ref {
            out.insert((Kind::ConfigMap, ns.to_owned(), k.name.clone()));
        }
        if let Some(k) = &from.secret_key_ref {
            out.insert((Kind::Secret, ns.to_owned(), k.name.clone()));
        }
    }
}

fn env_from_refs(ns: &str, e: &k8s_openapi::api::core::v1::EnvFromSource, out: &mut BTreeSet<Ref>) {
    if let Some(cm) = &e.config_map_ref {
        out.insert((Kind::ConfigMap, ns.to_owned(), cm.name.clone()));
    }
    if let Some(s) = &e.secret_ref {
        out.insert((Kind::Secret, ns.to_owned(), s.name.clone()));
    }
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use serde_json::json;

    use super::*;

    /// A stored object from its JSON (uid and rv given).
    pub(crate) fn stored(uid: &str, rv: &str, json: Value) -> Stored {
        Stored {
            uid: uid.to_owned(),
            rv: rv.to_owned(),
            desired_rv: rv.to_owned(),
            json: Arc::new(Content::new(json)),
        }
    }

    pub(crate) fn device(name: &str, node: &str, model: &str, rv: &str) -> (ObjKey, Stored) {
        let json = json!({"apiVersion": "devices.kubeedge.io/v1beta1", "kind": "Device",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"nodeName": node, "deviceModelRef": {"name": model}}});
        let key = ("default".to_owned(), name.to_owned());
        (key, stored(&format!("uid-{name}"), rv, json))
    }

    pub(crate) fn model_ref(node: &str, model: &str) -> (String, Ref) {
        let r = (Kind::DeviceModel, "default".to_owned(), model.to_owned());
        (node.to_owned(), r)
    }

    /// Goal: a device model belongs to a node while at least one of the node's devices names
    /// it, like a configmap its pods reference; a device moving to another node releases the
    /// model on the old node and references it on the new one. Method: two devices of edge-1
    /// naming model `m`; remove one, move the other, remove it.
    #[test]
    fn device_models_follow_the_devices_of_a_node() {
        let mut idx = Index::default();
        let (k1, s1) = device("d1", "edge-1", "m", "1");
        let (k2, s2) = device("d2", "edge-1", "m", "2");
        let (_, change) = idx.put_device(k1.clone(), s1);
        assert_eq!(change.added, vec![model_ref("edge-1", "m")]);
        let (_, change) = idx.put_device(k2.clone(), s2);
        assert_eq!(change, RefChange::default(), "already referenced");
        let (_, change) = idx.remove_bound(Kind::Device, &k1).unwrap();
        assert_eq!(change, RefChange::default(), "d2 still names it");
        let (_, s2b) = device("d2", "edge-2", "m", "3");
        let (old, change) = idx.put_device(k2.clone(), s2b);
        assert_eq!(old.unwrap().node, "edge-1");
        assert_eq!(change.removed, vec![model_ref("edge-1", "m")]);
        assert_eq!(change.added, vec![model_ref("edge-2", "m")]);
        assert!(idx.devices_on("edge-1").is_empty());
        assert_eq!(idx.devices_on("edge-2").len(), 1);
        let (_, change) = idx.remove_bound(Kind::Device, &k2).unwrap();
        assert_eq!(change.removed, vec![model_ref("edge-2", "m")]);
        assert!(idx.refs.is_empty() && idx.devices_by_node.is_empty());
    }

    /// Goal: what a node should hold includes its devices and the models they name (only
    /// models that exist), under the edge keys `<ns>/device/<n>` and `<ns>/devicemodel/<n>`.
    /// Method: devices on two nodes, one naming a missing model.
    #[test]
    fn wanted_lists_devices_and_their_models() {
        let mut idx = Index::default();
        let model = json!({"kind": "DeviceModel", "metadata": {"name": "m"}});
        idx.models
            .insert(("default".into(), "m".into()), stored("um", "1", model));
        for (name, node, m) in [
            ("d1", "edge-1", "m"),
            ("d2", "edge-1", "gone"),
            ("d3", "edge-2", "m"),
        ] {
            let (k, s) = device(name, node, m, "2");
            idx.put_device(k, s);
        }
        let keys: Vec<String> = idx.wanted("edge-1").into_keys().collect();
        assert_eq!(
            keys,
            [
                "default/device/d1",
                "default/device/d2",
                "default/devicemodel/m"
            ]
        );
        assert!(idx.node_references("edge-2", &model_ref("edge-2", "m").1));
        assert!(!idx.node_references("edge-2", &model_ref("edge-2", "gone").1));
    }
}
