//! CloudHub's downstream delivery rules (§2.4, `noAckRequired` in
//! `cloud/pkg/cloudhub/dispatcher/message_dispatcher.go`): which cloud→edge messages wait for
//! an ACK and are resent, and which are sent once.
//!
//! The rules work on either resource form: substring rules see the same text, and the type is
//! read by [`Message::resource_type`], which understands both the cloud-internal and the
//! edge-relative form.

use crate::{
    message::Message,
    names::{Group, Operation, ResourceType, Source},
};

/// How CloudHub sends a downstream message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Delivery {
    /// Sent once, forgotten (no-ACK queue, keyed by message id).
    NoAck,
    /// Sent, then resent every 5 s until the edge ACKs it (ACK queue, keyed by object UID).
    Ack,
    /// ACK-mode but without a resourceversion and not a delete: Go drops it silently.
    DropMissingResourceVersion,
}

impl Message {
    /// True if CloudHub would send this downstream message in ACK mode (the inverse of Go's
    /// `noAckRequired`).
    pub fn needs_ack(&self) -> bool {
        !self.no_ack_required()
    }

    /// The full downstream decision, including the resourceversion requirement of ACK mode.
    pub fn delivery(&self) -> Delivery {
        if !self.needs_ack() {
            Delivery::NoAck
        } else if self.header.resource_version.is_empty() && !self.is_delete() {
            Delivery::DropMissingResourceVersion
        } else {
            Delivery::Ack
        }
    }

    /// Go's `isDeleteMessage`: operation `delete`, or an object whose
    /// `metadata.deletionTimestamp` is set.
    pub fn is_delete(&self) -> bool {
        self.route.operation == Operation::Delete || self.content.has_metadata("deletionTimestamp")
    }

    /// True for a *release*: a delete marked [`crate::inventory::RELEASED_ANNOTATION`] (the
    /// object still exists; the node merely no longer needs it, so it may come back).
    pub fn is_release(&self) -> bool {
        self.route.operation == Operation::Delete
            && self
                .content
                .has_annotation(crate::inventory::RELEASED_ANNOTATION)
    }

    fn no_ack_required(&self) -> bool {
        const NO_ACK_SUBSTRINGS: [&str; 5] = [
            "podlist",
            "membership",
            "twin/cloud_updated",
            "serviceaccounttoken",
            "k8s/ca.crt",
        ];
        let route = &self.route;
        if NO_ACK_SUBSTRINGS.iter().any(|s| route.resource.contains(s))
            || route.operation.is_volume_operation()
            || route.operation == Operation::ApplicationResponse
            || route.group == Group::User
            || route.source == Source::TaskManager
            || route.source == Source::NodeUpgradeJobController
        {
            return true;
        }
        if route.operation == Operation::Response
            && (self.content.is_ok_text() || self.content.is_error_value())
        {
            return true;
        }
        route.source == Source::EdgeController && self.edgecontroller_no_ack()
    }

    /// The `edgecontroller` exceptions: nodes (except updates), leases, patches, status
    /// updates, CSRs, and pod replies.
    fn edgecontroller_no_ack(&self) -> bool {
        let op = &self.route.operation;
        match self.resource_type() {
            Some(ResourceType::Node) => *op != Operation::Update,
            Some(
                ResourceType::Lease
                | ResourceType::NodePatch
                | ResourceType::PodPatch
                | ResourceType::PodStatus
                | ResourceType::CertificateSigningRequest,
            ) => true,
            Some(ResourceType::Pod) => *op == Operation::Response,
            _ => false,
        }
    }
}
