//! Edged: runs the node's pods. kubelet's role, over a [`Runtime`] trait.
//!
//! - [`runtime`]: the CRI-shaped [`Runtime`] trait and what it is given ([`SandboxConfig`],
//!   [`ContainerConfig`], [`Mount`]) and reports ([`RuntimeEvent`]).
//! - [`process`]: [`ProcessRuntime`], which runs each container's command as a child process;
//!   how containers find their mounted files is documented there.
//! - [`cri`]: [`CriRuntime`], pods as containerd containers over the CRI gRPC API, with
//!   logs and exec ([`CriHandle`]).
//! - [`sim`]: [`SimRuntime`], in-memory containers for the fleet simulator (no processes, no
//!   files; behaviour from `EDGEFLEET_SIM_*` env, tokio time only).
//! - [`streams`]: [`ContainerStreams`], logs and exec for `kubectl logs`/`exec` (EdgeStream).
//! - [`process_streams`]: [`ProcessStreams`], the process runtime's logs (`output.log`) and exec
//!   (a host process: no isolation).
//! - [`manager`]: [`PodManager`], which reconciles the pods in the MetaStore with the runtime,
//!   applies restart policies with back-off and reports [`PodReport`]s.
//! - `spec` (private): serde mirrors of the pod spec fields edged reads.
//! - `resolve` (private): env (`envFrom`, `valueFrom`, `$(VAR)`) and configmap/secret volumes
//!   from the MetaStore, so they work offline.
//! - `status` (private): kubelet's phase, conditions and containerStatuses (pure).
//! - `pod` (private): per-pod and per-container state.
//!
//! Not yet: init containers, probes, resource limits.

#[cfg(unix)]
pub mod cri;
pub mod manager;
mod pod;
#[cfg(unix)]
pub mod process;
#[cfg(unix)]
pub mod process_streams;
mod resolve;
pub mod runtime;
pub mod sim;
mod spec;
mod status;
pub mod streams;

#[cfg(unix)]
pub use cri::{CriConfig, CriHandle, CriRuntime, ExecSyncOutput};
pub use manager::{Backoff, PodManager, PodManagerConfig, PodReport, PodStatusReport};
#[cfg(unix)]
pub use process::{ProcessConfig, ProcessRuntime};
#[cfg(unix)]
pub use process_streams::ProcessStreams;
pub use runtime::{
    AdoptedContainer, ContainerConfig, ContainerId, Mount, PullPolicy, Runtime, RuntimeError,
    RuntimeEvent, SandboxConfig,
};
pub use sim::{SimConfig, SimRuntime};
pub use streams::{ContainerStreams, ExecOutput, ExecProcess, StreamsError};

/// Errors that end the pod manager.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The MetaStore could not be read at startup (retry after fixing the database).
    #[error("reading pods from the meta store failed")]
    Store(#[from] crate::metamanager::Error),
    /// The runtime stopped delivering events (it shut down).
    #[error("the container runtime stopped reporting events")]
    RuntimeClosed,
    /// The receiver of pod reports is gone.
    #[error("the pod report channel is closed")]
    ReportsClosed,
}
