//! The [`Runtime`] seam between the pod manager and whatever runs containers.
//!
//! Shaped after the CRI `RuntimeService` (a containerd runtime implements it in #7): a pod
//! sandbox is started and stopped as a unit ([`Runtime::start_pod`] ≈ `RunPodSandbox`,
//! [`Runtime::stop_pod`] ≈ `StopPodSandbox` + `RemovePodSandbox`), containers one by one
//! ([`Runtime::start_container`] ≈ `CreateContainer` + `StartContainer`,
//! [`Runtime::stop_container`] ≈ `StopContainer`), exits arrive as events
//! ([`Runtime::next_event`] ≈ `GetContainerEvents`). Policy (restart, backoff, status) stays in
//! the pod manager, as in kubelet; the runtime only executes.
//!
//! Everything a runtime needs is resolved before the call: env values (configmaps, secrets,
//! `$(VAR)` expansion), and volumes as host paths ([`Mount`]).

use std::{collections::BTreeSet, fmt, future::Future, path::PathBuf, time::Duration};

/// A container instance id, unique per start (a restart gets a new id).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ContainerId(pub String);

impl fmt::Display for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The pod a sandbox is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxConfig {
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.uid`: identifies the sandbox.
    pub uid: String,
}

/// One volume mount, resolved to a path on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Where the container expects it (`volumeMounts[].mountPath`, absolute).
    pub container_path: String,
    /// The materialised volume (or its `subPath`) on the host.
    pub host_path: PathBuf,
    /// `volumeMounts[].readOnly`.
    pub read_only: bool,
}

/// A container to start, fully resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerConfig {
    /// `containers[].name`.
    pub name: String,
    /// `containers[].image` (the process runtime ignores it).
    pub image: String,
    /// `command`, `$(VAR)`-expanded.
    pub command: Vec<String>,
    /// `args`, `$(VAR)`-expanded.
    pub args: Vec<String>,
    /// The environment in Kubernetes order (`envFrom`, then `env`); later entries win.
    pub env: Vec<(String, String)>,
    /// Volume mounts.
    pub mounts: Vec<Mount>,
    /// `workingDir`, if set.
    pub working_dir: Option<String>,
    /// Which start of this container this is (0 for the first): part of the instance id.
    pub attempt: u32,
    /// `imagePullPolicy` (Kubernetes' default when unset: `Always` for `:latest` or no tag,
    /// else `IfNotPresent`). Runtimes without images ignore it.
    pub image_pull_policy: PullPolicy,
    /// A short hash of the pod spec parts that decide replacement (containers, volumes,
    /// restart policy): a runtime that keeps containers across restarts labels them with it,
    /// so a container started for an older spec is not adopted.
    pub spec_hash: String,
}

/// `imagePullPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    /// Pull at every start.
    Always,
    /// Pull only if the image is not present locally.
    IfNotPresent,
    /// Never pull: a missing image is a start error.
    Never,
}

impl PullPolicy {
    /// Parses `imagePullPolicy`; an empty or unknown value takes Kubernetes' default for
    /// `image`: `Always` when the tag is `latest` or missing (and no digest), else
    /// `IfNotPresent`.
    pub fn from_spec(policy: Option<&str>, image: &str) -> Self {
        match policy {
            Some("Always") => Self::Always,
            Some("IfNotPresent") => Self::IfNotPresent,
            Some("Never") => Self::Never,
            _ => {
                let name = image.rsplit('/').next().unwrap_or(image);
                let tag = name.split_once(':').map(|(_, t)| t);
                if image.contains('@') || tag.is_some_and(|t| t != "latest") {
                    Self::IfNotPresent
                } else {
                    Self::Always
                }
            }
        }
    }
}

/// A container instance that outlived a previous run of edgecore (a CRI runtime keeps its
/// containers when kubelet or edgecore restarts). The pod manager records it as the
/// container's live instance instead of starting a new one. If the instance has already
/// exited, the runtime reports that exit through [`Runtime::next_event`] afterwards, so the
/// restart policy applies as usual.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdoptedContainer {
    /// `metadata.uid` of the pod.
    pub pod_uid: String,
    /// `containers[].name`.
    pub name: String,
    /// The instance.
    pub id: ContainerId,
    /// Which start of the container it was (its restart count).
    pub attempt: u32,
    /// [`ContainerConfig::spec_hash`] it was started with.
    pub spec_hash: String,
    /// When it started (RFC 3339), if known.
    pub started_at: Option<String>,
}

/// Something the runtime observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuntimeEvent {
    /// A container's main process ended (by itself or stopped).
    Exited {
        /// The instance.
        id: ContainerId,
        /// Exit code; `128 + signal` when killed by a signal (as containerd reports).
        exit_code: i32,
        /// The signal that ended it, if any.
        signal: Option<i32>,
    },
}

/// Why a runtime call failed.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The container could not be started (missing binary, permission). kubelet reports this as
    /// `StartError`; the restart policy then applies.
    #[error("starting container {container} failed: {message}")]
    Start {
        /// The container name.
        container: String,
        /// What went wrong, for the status message.
        message: String,
        /// The OS error, if any.
        #[source]
        source: Option<std::io::Error>,
    },
    /// A sandbox operation (directories, cleanup) failed.
    #[error("pod sandbox {uid}: {op} failed")]
    Sandbox {
        /// The pod UID.
        uid: String,
        /// The operation.
        op: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// A container runtime. All methods return promptly: stopping only *starts* the stop, and the
/// exit arrives later through [`Runtime::next_event`].
pub trait Runtime: Send {
    /// A short name for logs and `containerID` (`process`, `containerd`, `sim`).
    fn name(&self) -> &'static str;

    /// Removes what a previous run left behind (processes, sandboxes) for pods not in `keep`.
    /// For the pods in `keep`, a runtime whose containers outlive edgecore (CRI) returns the
    /// instances it adopts (see [`AdoptedContainer`]); the others remove stray processes and
    /// return nothing, and those pods are started afresh. Called once, before any pod starts.
    fn remove_orphans(
        &mut self,
        keep: &BTreeSet<String>,
    ) -> impl Future<Output = Result<Vec<AdoptedContainer>, RuntimeError>> + Send;

    /// True if containers keep running when edgecore stops (CRI: containerd owns them, as it
    /// does across kubelet restarts); the pod manager then leaves them running at shutdown
    /// and adopts them at the next start. False (the default): they are stopped.
    fn containers_outlive_edgecore(&self) -> bool {
        false
    }

    /// Creates the pod sandbox (idempotent).
    fn start_pod(
        &mut self,
        pod: &SandboxConfig,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send;

    /// Starts one container in a started sandbox.
    fn start_container(
        &mut self,
        pod: &SandboxConfig,
        container: &ContainerConfig,
    ) -> impl Future<Output = Result<ContainerId, RuntimeError>> + Send;

    /// Asks a container to stop: SIGTERM-like first, forced after `grace`. Unknown or already
    /// exited ids are ignored.
    fn stop_container(
        &mut self,
        id: &ContainerId,
        grace: Duration,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send;

    /// Removes the sandbox of a pod whose containers have all exited.
    fn stop_pod(&mut self, uid: &str) -> impl Future<Output = Result<(), RuntimeError>> + Send;

    /// Ids of the containers of pod `uid` that have not exited yet.
    fn pod_status(&self, uid: &str) -> Vec<ContainerId>;

    /// Log and exec streams of this runtime's containers (`kubectl logs`/`exec` through
    /// EdgeStream); `None` when the runtime has none.
    fn streams(&self) -> Option<std::sync::Arc<dyn super::streams::ContainerStreams>> {
        None
    }

    /// The next event; `None` when the runtime can report no more (shut down). Must be
    /// cancel-safe: the pod manager polls it in a `select!` and drops it when another branch
    /// wins, and no event may be lost then.
    fn next_event(&mut self) -> impl Future<Output = Option<RuntimeEvent>> + Send;
}

#[cfg(test)]
mod tests {
    use super::PullPolicy;

    /// Goal: Kubernetes' `imagePullPolicy` default. Method: table of explicit policies and of
    /// images with no tag, `latest`, a tag, a registry port and a digest.
    #[test]
    fn pull_policy_defaults_like_kubernetes() {
        let cases = [
            (Some("Never"), "busybox", PullPolicy::Never),
            (Some("Always"), "busybox:1", PullPolicy::Always),
            (Some("IfNotPresent"), "busybox", PullPolicy::IfNotPresent),
            (None, "busybox", PullPolicy::Always),
            (None, "busybox:latest", PullPolicy::Always),
            (None, "busybox:1.36", PullPolicy::IfNotPresent),
            (None, "registry:5000/busybox", PullPolicy::Always),
            (None, "registry:5000/busybox:1", PullPolicy::IfNotPresent),
            (None, "busybox@sha256:abc", PullPolicy::IfNotPresent),
        ];
        for (policy, image, want) in cases {
            assert_eq!(
                PullPolicy::from_spec(policy, image),
                want,
                "{policy:?} {image}"
            );
        }
    }
}
