//! A [`Runtime`] wrapper that counts pod sandboxes: the `edgecore_pods` gauge (kubelet's
//! `kubelet_running_pods`: pods with a running sandbox).

use std::{
    collections::BTreeSet,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use crate::edged::{
    AdoptedContainer, ContainerConfig, ContainerId, Runtime, RuntimeError, RuntimeEvent,
    SandboxConfig,
};

/// `R`, plus the set of pod UIDs with a sandbox, published as a gauge.
#[derive(Debug)]
pub(crate) struct Counted<R> {
    inner: R,
    sandboxes: BTreeSet<String>,
    gauge: Arc<AtomicU64>,
}

impl<R: Runtime> Counted<R> {
    pub(crate) fn new(inner: R, gauge: Arc<AtomicU64>) -> Self {
        Self {
            inner,
            sandboxes: BTreeSet::new(),
            gauge,
        }
    }

    fn publish(&self) {
        let n = u64::try_from(self.sandboxes.len()).unwrap_or(u64::MAX);
        self.gauge.store(n, Ordering::Relaxed);
    }
}

impl<R: Runtime> Runtime for Counted<R> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    async fn remove_orphans(
        &mut self,
        keep: &BTreeSet<String>,
    ) -> Result<Vec<AdoptedContainer>, RuntimeError> {
        let adopted = self.inner.remove_orphans(keep).await?;
        // An adopted container's pod has a running sandbox already.
        self.sandboxes
            .extend(adopted.iter().map(|a| a.pod_uid.clone()));
        self.publish();
        Ok(adopted)
    }

    fn containers_outlive_edgecore(&self) -> bool {
        self.inner.containers_outlive_edgecore()
    }

    async fn start_pod(&mut self, pod: &SandboxConfig) -> Result<(), RuntimeError> {
        self.inner.start_pod(pod).await?;
        self.sandboxes.insert(pod.uid.clone());
        self.publish();
        Ok(())
    }

    async fn start_container(
        &mut self,
        pod: &SandboxConfig,
        container: &ContainerConfig,
    ) -> Result<ContainerId, RuntimeError> {
        self.inner.start_container(pod, container).await
    }

    async fn stop_container(
        &mut self,
        id: &ContainerId,
        grace: Duration,
    ) -> Result<(), RuntimeError> {
        self.inner.stop_container(id, grace).await
    }

    async fn stop_pod(&mut self, uid: &str) -> Result<(), RuntimeError> {
        let result = self.inner.stop_pod(uid).await;
        self.sandboxes.remove(uid);
        self.publish();
        result
    }

    fn pod_status(&self, uid: &str) -> Vec<ContainerId> {
        self.inner.pod_status(uid)
    }

    fn streams(&self) -> Option<Arc<dyn crate::edged::ContainerStreams>> {
        self.inner.streams()
    }

    async fn next_event(&mut self) -> Option<RuntimeEvent> {
        self.inner.next_event().await
    }
}
