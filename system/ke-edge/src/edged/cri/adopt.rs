//! [`Runtime::remove_orphans`](super::Runtime::remove_orphans) for CRI: after an edgecore
//! restart, keep and adopt what belongs to stored pods, remove the rest.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use tracing::{info, warn};

use super::{
    CriRuntime, Error, LABEL_CONTAINER, LABEL_NODE, LABEL_POD_UID, LABEL_SPEC_HASH,
    api::{
        Container, ContainerState, ListPodSandboxRequest, PodSandboxFilter, PodSandboxState,
        StopContainerRequest,
    },
    client::{attempt_of, rpc},
};
use crate::edged::runtime::{AdoptedContainer, ContainerId};

impl CriRuntime {
    /// Removes this node's sandboxes of pods not in `keep` (and stale ones of kept pods), then
    /// adopts the newest instance of every container of the kept pods.
    pub(super) async fn adopt(
        &mut self,
        keep: &BTreeSet<String>,
    ) -> Result<Vec<AdoptedContainer>, Error> {
        self.sandboxes = self.keep_sandboxes(keep).await?;
        let ready: BTreeMap<&str, &str> = self
            .sandboxes
            .iter()
            .map(|(uid, id)| (id.as_str(), uid.as_str()))
            .collect();
        let mut groups: BTreeMap<(String, String), Vec<Container>> = BTreeMap::new();
        for c in self.handle.list_containers(None, HashMap::new()).await? {
            let Some(uid) = ready.get(c.pod_sandbox_id.as_str()) else {
                continue;
            };
            let name = c.labels.get(LABEL_CONTAINER).cloned().unwrap_or_default();
            groups.entry(((*uid).to_owned(), name)).or_default().push(c);
        }
        let mut adopted = Vec::new();
        for ((uid, name), mut instances) in groups {
            instances.sort_by_key(|c| (attempt_of(c), c.created_at));
            let Some(newest) = instances.pop() else {
                continue;
            };
            for older in instances {
                self.discard(&older).await;
            }
            if newest.state == ContainerState::ContainerCreated as i32
                || newest.state == ContainerState::ContainerUnknown as i32
            {
                self.discard(&newest).await;
                continue;
            }
            let a = self.adopted(uid, name, newest).await;
            info!(pod_uid = %a.pod_uid, container = %a.name, id = %a.id, attempt = a.attempt,
                "adopting container");
            self.live.insert(a.id.clone(), a.pod_uid.clone());
            adopted.push(a);
        }
        Ok(adopted)
    }

    /// This node's ready sandbox of each kept pod (the newest); every other sandbox of this
    /// node is stopped and removed, with the logs of pods no longer kept.
    async fn keep_sandboxes(
        &self,
        keep: &BTreeSet<String>,
    ) -> Result<BTreeMap<String, String>, Error> {
        let filter = PodSandboxFilter {
            label_selector: HashMap::from([(LABEL_NODE.to_owned(), self.handle.node.clone())]),
            ..PodSandboxFilter::default()
        };
        let req = ListPodSandboxRequest {
            filter: Some(filter),
        };
        let mut items = rpc(
            "ListPodSandbox",
            self.handle.runtime.clone().list_pod_sandbox(req).await,
        )?
        .items;
        items.sort_by_key(|s| std::cmp::Reverse(s.created_at));
        let mut kept = BTreeMap::new();
        for s in items {
            let uid = s.labels.get(LABEL_POD_UID).cloned().unwrap_or_default();
            let ready = s.state == PodSandboxState::SandboxReady as i32;
            if keep.contains(&uid) && ready && !kept.contains_key(&uid) {
                kept.insert(uid, s.id);
                continue;
            }
            info!(sandbox = %s.id, pod_uid = %uid, ready, "removing a sandbox no pod uses");
            if let Err(e) = self.remove_sandbox(&s.id).await {
                warn!(error = %e, sandbox = %s.id, "removing sandbox failed");
            }
            if !keep.contains(&uid) && !uid.is_empty() {
                let _ = std::fs::remove_dir_all(self.log_dir(&uid));
            }
        }
        Ok(kept)
    }

    /// Stops (if running) and removes an instance that is not adopted.
    async fn discard(&self, c: &Container) {
        if c.state == ContainerState::ContainerRunning as i32 {
            warn!(id = %c.id, "stopping a duplicate container instance");
            let req = StopContainerRequest {
                container_id: c.id.clone(),
                timeout: 0,
            };
            if let Err(e) = rpc(
                "StopContainer",
                self.handle.runtime.clone().stop_container(req).await,
            ) {
                warn!(error = %e, id = %c.id, "stopping container failed");
            }
        }
        self.remove_container(&c.id).await;
    }

    async fn adopted(&self, pod_uid: String, name: String, c: Container) -> AdoptedContainer {
        let started_at = match self.handle.container_status(&c.id).await {
            Ok(s) if s.started_at > 0 => rfc3339_of_nanos(s.started_at),
            _ => None,
        };
        AdoptedContainer {
            pod_uid,
            name,
            attempt: attempt_of(&c),
            spec_hash: c.labels.get(LABEL_SPEC_HASH).cloned().unwrap_or_default(),
            id: ContainerId(c.id),
            started_at,
        }
    }
}

/// A CRI timestamp (nanoseconds since the epoch) as Kubernetes writes times (RFC 3339,
/// seconds).
fn rfc3339_of_nanos(nanos: i64) -> Option<String> {
    let secs = nanos.div_euclid(1_000_000_000);
    let t = time::OffsetDateTime::from_unix_timestamp(secs).ok()?;
    t.format(&time::format_description::well_known::Rfc3339)
        .ok()
}

#[cfg(test)]
mod tests {
    /// Goal: CRI nanosecond times become Kubernetes' second-precision RFC 3339. Method: a
    /// known instant with a fractional second.
    #[test]
    fn nanos_to_rfc3339() {
        let t = super::rfc3339_of_nanos(1_700_000_000_123_456_789);
        assert_eq!(t.as_deref(), Some("2023-11-14T22:13:20Z"));
    }
}
