//! Device support (KubeEdge 1.23's DeviceController, reference §7 and the wire notes in §6),
//! done the edgefleet way: the Device and DeviceModel objects ride the EdgeController's index,
//! per-node `held` versions and incremental resync, and the edge's twin and state reports are
//! handled by the EdgeController's upstream workers (so one node's reports stay in order).
//!
//! - [`crds`]: the three `devices.kubeedge.io/v1beta1` CustomResourceDefinitions (Device,
//!   DeviceModel, DeviceStatus) and their installation at start.
//! - [`twins`]: `DeviceStatus.status.twins` and how an edge's twin report changes it.
//! - This file: the resource descriptions and what the controller reads from a Device.
//!
//! What goes where:
//! - Down: a Device goes to the node in its `spec.nodeName` as `<ns>/device/<name>`; the
//!   DeviceModel it names in `spec.deviceModelRef.name` (same namespace) goes first as
//!   `<ns>/devicemodel/<name>`, and is released when no device of the node names it any more.
//!   Both are sent by source `devicecontroller`, group `resource`, in ACK mode. A device that
//!   joins or leaves a node also produces a `membership` message (group `twin`) for stock
//!   KubeEdge edges.
//! - Up: `device/<ns>/<name>/twin/edge_updated` merge-patches the DeviceStatus's twins,
//!   `device/<ns>/<name>/state/update` its state; `membership/detail` is answered with the
//!   node's devices. KubeEdge 1.23 answers nothing to the latter, and writes an empty value
//!   on a property's first report (`findOrCreateTwinByName` returns a pointer to a copy); here
//!   the first report is written as sent.

pub mod crds;
pub mod twins;

use ke_proto::twin::MemberDevice;
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::Value;

/// The API group of the device CRDs.
pub const GROUP: &str = "devices.kubeedge.io";
/// The served and stored version.
pub const VERSION: &str = "v1beta1";
/// `apiVersion` of every device object.
pub const API_VERSION: &str = "devices.kubeedge.io/v1beta1";
/// The label whose value becomes a device's description in membership messages (KubeEdge's
/// `createDevice`).
pub const DESCRIPTION_LABEL: &str = "description";

/// The three kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DeviceKind {
    /// `Device` (`devices`).
    Device,
    /// `DeviceModel` (`devicemodels`).
    DeviceModel,
    /// `DeviceStatus` (`devicestatuses`).
    DeviceStatus,
}

impl DeviceKind {
    /// The kind name.
    pub fn kind(self) -> &'static str {
        match self {
            Self::Device => "Device",
            Self::DeviceModel => "DeviceModel",
            Self::DeviceStatus => "DeviceStatus",
        }
    }

    /// The plural resource name.
    pub fn plural(self) -> &'static str {
        match self {
            Self::Device => "devices",
            Self::DeviceModel => "devicemodels",
            Self::DeviceStatus => "devicestatuses",
        }
    }

    /// The description kube's dynamic API needs.
    pub fn api_resource(self) -> ApiResource {
        let gvk = GroupVersionKind::gvk(GROUP, VERSION, self.kind());
        ApiResource::from_gvk_with_plural(&gvk, self.plural())
    }
}

/// `spec.nodeName` of a Device (empty if unset).
pub fn node_name(device: &Value) -> &str {
    device
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// `spec.deviceModelRef.name` of a Device, if set.
pub fn model_ref(device: &Value) -> Option<&str> {
    device
        .pointer("/spec/deviceModelRef/name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
}

/// The property names in a Device's `spec.properties`, in spec order (borrowed: a report
/// checks its few properties against them).
pub fn property_names(device: &Value) -> Vec<&str> {
    device
        .pointer("/spec/properties")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("name").and_then(Value::as_str))
        .collect()
}

/// A device as membership messages describe it: id `<ns>/<name>`, name, and the
/// `description` label.
pub fn member_device(namespace: &str, name: &str, device: &Value) -> MemberDevice {
    let description = device
        .pointer("/metadata/labels")
        .and_then(|l| l.get(DESCRIPTION_LABEL))
        .and_then(Value::as_str)
        .unwrap_or_default();
    MemberDevice {
        id: format!("{namespace}/{name}"),
        name: name.to_owned(),
        description: description.to_owned(),
        ..MemberDevice::default()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Goal: the fields the controller reads from a Device come from KubeEdge's paths.
    /// Method: one Device with every field set, one with none.
    #[test]
    fn reads_device_fields() {
        let d = json!({"metadata": {"labels": {"description": "boiler"}},
            "spec": {"nodeName": "edge-1", "deviceModelRef": {"name": "m"},
                     "properties": [{"name": "temp"}, {"name": "rpm"}, {"desired": {}}]}});
        assert_eq!(node_name(&d), "edge-1");
        assert_eq!(model_ref(&d), Some("m"));
        assert_eq!(property_names(&d), ["temp", "rpm"]);
        let m = member_device("default", "d1", &d);
        assert_eq!(
            (m.id.as_str(), m.name.as_str(), m.description.as_str()),
            ("default/d1", "d1", "boiler")
        );
        let empty = json!({"spec": {"deviceModelRef": {"name": ""}}});
        assert_eq!((node_name(&empty), model_ref(&empty)), ("", None));
        assert!(property_names(&empty).is_empty());
    }

    /// Goal: the dynamic API descriptions name the CRDs' group, version and plurals.
    #[test]
    fn api_resources_match_the_crds() {
        let ar = DeviceKind::DeviceStatus.api_resource();
        assert_eq!(
            (
                ar.api_version.as_str(),
                ar.kind.as_str(),
                ar.plural.as_str()
            ),
            (API_VERSION, "DeviceStatus", "devicestatuses")
        );
    }
}
