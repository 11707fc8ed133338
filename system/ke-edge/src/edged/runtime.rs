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

    /// Removes what a previous run left behind (processes, sandboxes) for pods not in `keep`,
    /// and stray processes of the pods in `keep` (they are started afresh). Called once, before
    /// any pod starts.
    fn remove_orphans(
        &mut self,
        keep: &BTreeSet<String>,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send;

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
