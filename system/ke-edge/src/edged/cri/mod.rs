//! [`CriRuntime`]: runs pods as containerd containers through the CRI `runtime.v1` API
//! (RuntimeService + ImageService) on containerd's unix socket, as kubelet does.
//!
//! - `api` (private): the generated messages and clients (`build.rs`, vendored proto).
//! - [`client`]: [`CriHandle`], the cloneable clients, with [`CriHandle::logs`] and
//!   [`CriHandle::exec_sync`] for CloudStream.
//! - [`logs`]: the CRI log file format.
//! - `adopt` (private): what [`Runtime::remove_orphans`] does after an edgecore restart.
//!
//! *Sandboxes.* `start_pod` is `RunPodSandbox` with the pod's name, namespace and UID as
//! metadata and labels (`io.kubernetes.pod.*`, kubelet's names, plus `edgefleet.io/node`),
//! logs under `<root>/pods/<uid>/logs/`, and the **node's network
//! namespace** (`NamespaceMode::NODE`): edgefleet has no CNI plugin, and pods on edge nodes
//! commonly use the host network anyway; so the hostname is the node's too (containerd
//! cannot set one without a private UTS namespace). PID and IPC namespaces are the pod's
//! own. The pause
//! image is containerd's `sandbox_image` setting.
//!
//! *Images.* No registry may be reachable from an edge node: `IfNotPresent` and `Never` use
//! the local image, and a missing one is a start error naming the image; `Always` calls
//! `PullImage` and a failed pull is the start error.
//!
//! *Containers.* `CreateContainer` (command, args, env, mounts, working dir, log path
//! `<name>/<attempt>.log`, labels with the pod UID, container name and spec hash) then
//! `StartContainer`. Exited instances of the same container are removed except the previous
//! one. Stops are `StopContainer` with the grace period, sent from a spawned task so the call
//! returns at once.
//!
//! *Exits.* containerd 1.6 has no `GetContainerEvents` (1.7 added it), so `next_event` polls
//! `ListContainers` every [`CriConfig::poll_interval`] and asks `ContainerStatus` for the exit
//! code of each instance that left the running state; found exits wait in a queue on `self`,
//! so a cancelled poll loses nothing.
//!
//! *Restarts of edgecore.* containerd owns the containers, so they keep running when
//! edgecore stops ([`Runtime::containers_outlive_edgecore`]); at the next start
//! `remove_orphans` finds this node's sandboxes and containers by label, removes those of
//! pods no longer stored, and returns the newest instance of each container of the kept pods
//! as adopted (an already exited one is then reported as an exit), so nothing is started
//! twice.

mod adopt;
mod api;
pub mod client;
pub mod logs;
pub mod streams;

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    path::PathBuf,
    time::Duration,
};

use tokio::time::{Interval, MissedTickBehavior};
use tracing::{debug, info, warn};

pub use client::{CriHandle, ExecSyncOutput, endpoint_path};

use super::runtime::{
    AdoptedContainer, ContainerConfig, ContainerId, PullPolicy, Runtime, RuntimeError,
    RuntimeEvent, SandboxConfig,
};
use api::{
    ContainerMetadata, ContainerState, CreateContainerRequest, ImageSpec, ImageStatusRequest,
    KeyValue, LinuxContainerConfig, LinuxContainerSecurityContext, LinuxPodSandboxConfig,
    LinuxSandboxSecurityContext, NamespaceMode, NamespaceOption, PodSandboxConfig,
    PodSandboxMetadata, PullImageRequest, RemoveContainerRequest, RemovePodSandboxRequest,
    RunPodSandboxRequest, StartContainerRequest, StopContainerRequest, StopPodSandboxRequest,
};
use client::rpc;

/// kubelet's label for the pod UID (also on sandboxes).
pub const LABEL_POD_UID: &str = "io.kubernetes.pod.uid";
/// kubelet's label for the pod name.
pub const LABEL_POD_NAME: &str = "io.kubernetes.pod.name";
/// kubelet's label for the pod namespace.
pub const LABEL_POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
/// kubelet's label for the container name.
pub const LABEL_CONTAINER: &str = "io.kubernetes.container.name";
/// The node whose edged made the sandbox or container (several nodes may share containerd).
pub const LABEL_NODE: &str = "edgefleet.io/node";
/// [`ContainerConfig::spec_hash`] of a container.
pub const LABEL_SPEC_HASH: &str = "edgefleet.io/spec-hash";

/// Errors of the CRI client.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The endpoint is not a unix socket path (fix the configuration).
    #[error("CRI endpoint `{endpoint}`: {reason}")]
    BadEndpoint {
        /// The endpoint as configured.
        endpoint: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The socket could not be reached (is containerd running there?).
    #[error("cannot connect to the CRI runtime at `{endpoint}`")]
    Connect {
        /// The endpoint.
        endpoint: String,
        /// The cause.
        #[source]
        source: tonic::transport::Error,
    },
    /// A CRI call failed.
    #[error("CRI {op} failed: {}", source.message())]
    Rpc {
        /// The call.
        op: &'static str,
        /// The gRPC status.
        #[source]
        source: Box<tonic::Status>,
    },
    /// A response lacked a field the call must return.
    #[error("CRI {op} returned no result")]
    Missing {
        /// The call.
        op: &'static str,
    },
    /// No instance of the container exists.
    #[error("pod {pod_uid} has no container {container}")]
    NoContainer {
        /// The pod UID.
        pod_uid: String,
        /// The container name.
        container: String,
    },
    /// The container's newest instance is not running.
    #[error("container {container} of pod {pod_uid} is not running")]
    NotRunning {
        /// The pod UID.
        pod_uid: String,
        /// The container name.
        container: String,
    },
    /// A log file could not be read.
    #[error("reading {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Configuration of the CRI runtime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CriConfig {
    /// `unix:///path/to/containerd.sock` (KubeEdge's `containerRuntimeEndpoint`).
    pub endpoint: String,
    /// This node's name (label `edgefleet.io/node`).
    pub node_name: String,
    /// Data directory; container logs go to `<root_dir>/pods/<uid>/logs/`.
    pub root_dir: PathBuf,
    /// How often container states are polled for exits.
    pub poll_interval: Duration,
    /// Deadline of one CRI call.
    pub call_timeout: Duration,
}

impl CriConfig {
    /// Defaults: 1 s polling, 30 s calls.
    pub fn new(
        endpoint: impl Into<String>,
        node_name: impl Into<String>,
        root_dir: impl Into<PathBuf>,
    ) -> Self {
        Self {
            endpoint: endpoint.into(),
            node_name: node_name.into(),
            root_dir: root_dir.into(),
            poll_interval: Duration::from_secs(1),
            call_timeout: Duration::from_secs(30),
        }
    }
}

/// The CRI runtime (see the module docs).
#[derive(Debug)]
pub struct CriRuntime {
    handle: CriHandle,
    root: PathBuf,
    /// Sandbox id by pod UID.
    sandboxes: BTreeMap<String, String>,
    /// Instances not yet reported as exited, with their pod UID.
    live: BTreeMap<ContainerId, String>,
    /// Exits found by a poll, not yet returned by `next_event` (bounded by `live`).
    found: VecDeque<RuntimeEvent>,
    poll: Interval,
}

impl CriRuntime {
    /// Connects to `cfg.endpoint` (failing at once if nothing answers CRI there).
    pub async fn connect(cfg: CriConfig) -> Result<Self, Error> {
        let handle = CriHandle::connect(&cfg.endpoint, &cfg.node_name, cfg.call_timeout).await?;
        let mut poll = tokio::time::interval(cfg.poll_interval.max(Duration::from_millis(10)));
        poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Ok(Self {
            handle,
            root: cfg.root_dir,
            sandboxes: BTreeMap::new(),
            live: BTreeMap::new(),
            found: VecDeque::new(),
            poll,
        })
    }

    /// A clone of the clients, for logs and exec.
    pub fn handle(&self) -> CriHandle {
        self.handle.clone()
    }

    fn log_dir(&self, uid: &str) -> PathBuf {
        self.root.join("pods").join(uid).join("logs")
    }

    fn labels(&self, pod: &SandboxConfig) -> HashMap<String, String> {
        HashMap::from([
            (LABEL_POD_UID.to_owned(), pod.uid.clone()),
            (LABEL_POD_NAME.to_owned(), pod.name.clone()),
            (LABEL_POD_NAMESPACE.to_owned(), pod.namespace.clone()),
            (LABEL_NODE.to_owned(), self.handle.node.clone()),
        ])
    }

    /// The sandbox config of `pod` (the same at every call, as CRI expects).
    fn sandbox_config(&self, pod: &SandboxConfig) -> PodSandboxConfig {
        let namespaces = NamespaceOption {
            network: NamespaceMode::Node as i32,
            pid: NamespaceMode::Pod as i32,
            ipc: NamespaceMode::Pod as i32,
            ..NamespaceOption::default()
        };
        PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: pod.name.clone(),
                uid: pod.uid.clone(),
                namespace: pod.namespace.clone(),
                attempt: 0,
            }),
            // The node's network namespace brings the node's UTS namespace: containerd
            // refuses a hostname then (as kubelet does for hostNetwork pods, none is set).
            hostname: String::new(),
            log_directory: self.log_dir(&pod.uid).display().to_string(),
            labels: self.labels(pod),
            linux: Some(LinuxPodSandboxConfig {
                security_context: Some(LinuxSandboxSecurityContext {
                    namespace_options: Some(namespaces),
                    ..LinuxSandboxSecurityContext::default()
                }),
                ..LinuxPodSandboxConfig::default()
            }),
            ..PodSandboxConfig::default()
        }
    }

    /// The image reference to create from, per the pull policy.
    async fn ensure_image(
        &self,
        image: &str,
        policy: PullPolicy,
        sandbox: &PodSandboxConfig,
    ) -> Result<String, String> {
        let spec = ImageSpec {
            image: image.to_owned(),
            ..ImageSpec::default()
        };
        if policy == PullPolicy::Always {
            let mut req = tonic::Request::new(PullImageRequest {
                image: Some(spec),
                auth: None,
                sandbox_config: Some(sandbox.clone()),
            });
            req.set_timeout(self.handle.call_timeout * 10);
            let pulled = rpc(
                "PullImage",
                self.handle.images.clone().pull_image(req).await,
            )
            .map_err(|e| format!("pulling image {image} (imagePullPolicy Always): {e}"))?;
            return Ok(pulled.image_ref);
        }
        let req = ImageStatusRequest {
            image: Some(spec),
            verbose: false,
        };
        let status = rpc(
            "ImageStatus",
            self.handle.images.clone().image_status(req).await,
        )
        .map_err(|e| e.to_string())?;
        match status.image {
            Some(found) => Ok(found.id),
            None => Err(format!(
                "image {image} is not present on the node and imagePullPolicy {policy:?} \
                 does not pull it; import it into containerd's k8s.io namespace"
            )),
        }
    }

    /// Removes exited instances of container `name` in `sandbox` except the previous one
    /// (`attempt - 1`, kept for its logs), and any left with the same attempt.
    async fn remove_old(&self, sandbox: &str, uid: &str, name: &str, attempt: u32) {
        let labels = HashMap::from([
            (LABEL_POD_UID.to_owned(), uid.to_owned()),
            (LABEL_CONTAINER.to_owned(), name.to_owned()),
        ]);
        let Ok(list) = self.handle.list_containers(Some(sandbox), labels).await else {
            return;
        };
        for c in list {
            let a = client::attempt_of(&c);
            let old = a == attempt || a.saturating_add(1) < attempt;
            if old && c.state != ContainerState::ContainerRunning as i32 {
                self.remove_container(&c.id).await;
            }
        }
    }

    async fn remove_container(&self, id: &str) {
        let req = RemoveContainerRequest {
            container_id: id.to_owned(),
        };
        if let Err(e) = rpc(
            "RemoveContainer",
            self.handle.runtime.clone().remove_container(req).await,
        ) {
            warn!(error = %e, id, "removing container failed");
        }
    }

    /// Stops and removes sandbox `id` (with its containers).
    async fn remove_sandbox(&self, id: &str) -> Result<(), Error> {
        let mut rt = self.handle.runtime.clone();
        let stop = StopPodSandboxRequest {
            pod_sandbox_id: id.to_owned(),
        };
        rpc("StopPodSandbox", rt.stop_pod_sandbox(stop).await)?;
        let remove = RemovePodSandboxRequest {
            pod_sandbox_id: id.to_owned(),
        };
        rpc("RemovePodSandbox", rt.remove_pod_sandbox(remove).await)?;
        Ok(())
    }

    /// The CRI container config of `c` in `pod`.
    fn container_config(
        &self,
        pod: &SandboxConfig,
        c: &ContainerConfig,
        image: String,
    ) -> api::ContainerConfig {
        let mut labels = self.labels(pod);
        labels.insert(LABEL_CONTAINER.to_owned(), c.name.clone());
        labels.insert(LABEL_SPEC_HASH.to_owned(), c.spec_hash.clone());
        let namespaces = NamespaceOption {
            network: NamespaceMode::Node as i32,
            pid: NamespaceMode::Container as i32,
            ipc: NamespaceMode::Pod as i32,
            ..NamespaceOption::default()
        };
        api::ContainerConfig {
            metadata: Some(ContainerMetadata {
                name: c.name.clone(),
                attempt: c.attempt,
            }),
            image: Some(ImageSpec {
                image,
                ..ImageSpec::default()
            }),
            command: c.command.clone(),
            args: c.args.clone(),
            working_dir: c.working_dir.clone().unwrap_or_default(),
            envs: c
                .env
                .iter()
                .map(|(k, v)| KeyValue {
                    key: k.clone(),
                    value: v.clone().into_bytes(),
                })
                .collect(),
            mounts: c
                .mounts
                .iter()
                .map(|m| api::Mount {
                    container_path: m.container_path.clone(),
                    host_path: m.host_path.display().to_string(),
                    readonly: m.read_only,
                    ..api::Mount::default()
                })
                .collect(),
            labels,
            log_path: format!("{}/{}.log", c.name, c.attempt),
            linux: Some(LinuxContainerConfig {
                security_context: Some(LinuxContainerSecurityContext {
                    namespace_options: Some(namespaces),
                    ..LinuxContainerSecurityContext::default()
                }),
                ..LinuxContainerConfig::default()
            }),
            ..api::ContainerConfig::default()
        }
    }

    /// Image, clean-up, create and start; the CRI container id.
    async fn create_and_start(
        &mut self,
        pod: &SandboxConfig,
        c: &ContainerConfig,
    ) -> Result<String, String> {
        self.start_pod(pod).await.map_err(|e| e.to_string())?;
        let sandbox_id = self
            .sandboxes
            .get(&pod.uid)
            .cloned()
            .ok_or("the pod has no sandbox")?;
        let sandbox = self.sandbox_config(pod);
        let image = self
            .ensure_image(&c.image, c.image_pull_policy, &sandbox)
            .await?;
        self.remove_old(&sandbox_id, &pod.uid, &c.name, c.attempt)
            .await;
        let dir = self.log_dir(&pod.uid).join(&c.name);
        std::fs::create_dir_all(&dir).map_err(|e| format!("log dir {}: {e}", dir.display()))?;
        let req = CreateContainerRequest {
            pod_sandbox_id: sandbox_id,
            config: Some(self.container_config(pod, c, image)),
            sandbox_config: Some(sandbox),
        };
        let mut rt = self.handle.runtime.clone();
        let id = rpc("CreateContainer", rt.create_container(req).await)
            .map_err(|e| e.to_string())?
            .container_id;
        let start = StartContainerRequest {
            container_id: id.clone(),
        };
        if let Err(e) = rpc("StartContainer", rt.start_container(start).await) {
            self.remove_container(&id).await;
            return Err(e.to_string());
        }
        Ok(id)
    }

    /// Polls the instances in `live`; exits go to `found`.
    async fn poll_exits(&mut self) -> Result<(), Error> {
        let list = self.handle.list_containers(None, HashMap::new()).await?;
        let running: std::collections::BTreeSet<&str> = list
            .iter()
            .filter(|c| {
                c.state == ContainerState::ContainerRunning as i32
                    || c.state == ContainerState::ContainerCreated as i32
            })
            .map(|c| c.id.as_str())
            .collect();
        let gone: Vec<ContainerId> = self
            .live
            .keys()
            .filter(|id| !running.contains(id.0.as_str()))
            .cloned()
            .collect();
        for id in gone {
            let exit_code = match self.handle.container_status(&id.0).await {
                Ok(s) => s.exit_code,
                // Removed behind our back: report it killed.
                Err(e) => {
                    debug!(error = %e, %id, "status of a vanished container");
                    137
                }
            };
            info!(%id, exit_code, "container exited");
            self.live.remove(&id);
            self.found.push_back(RuntimeEvent::Exited {
                id,
                exit_code,
                signal: None,
            });
        }
        Ok(())
    }
}

impl Runtime for CriRuntime {
    fn name(&self) -> &'static str {
        "containerd"
    }

    fn streams(&self) -> Option<std::sync::Arc<dyn crate::edged::ContainerStreams>> {
        Some(std::sync::Arc::new(streams::CriStreams::new(self.handle())))
    }

    async fn remove_orphans(
        &mut self,
        keep: &std::collections::BTreeSet<String>,
    ) -> Result<Vec<AdoptedContainer>, RuntimeError> {
        self.adopt(keep).await.map_err(|e| RuntimeError::Sandbox {
            uid: "*".to_owned(),
            op: "list sandboxes and containers",
            source: std::io::Error::other(e),
        })
    }

    fn containers_outlive_edgecore(&self) -> bool {
        true
    }

    async fn start_pod(&mut self, pod: &SandboxConfig) -> Result<(), RuntimeError> {
        if self.sandboxes.contains_key(&pod.uid) {
            return Ok(());
        }
        let sandbox_err = |op, e: Error| RuntimeError::Sandbox {
            uid: pod.uid.clone(),
            op,
            source: std::io::Error::other(e),
        };
        let dir = self.log_dir(&pod.uid);
        std::fs::create_dir_all(&dir).map_err(|source| RuntimeError::Sandbox {
            uid: pod.uid.clone(),
            op: "create log directory",
            source,
        })?;
        let req = RunPodSandboxRequest {
            config: Some(self.sandbox_config(pod)),
            runtime_handler: String::new(),
        };
        let mut req = tonic::Request::new(req);
        req.set_timeout(self.handle.call_timeout * 4);
        let resp = self.handle.runtime.clone().run_pod_sandbox(req).await;
        let id = rpc("RunPodSandbox", resp)
            .map_err(|e| sandbox_err("RunPodSandbox", e))?
            .pod_sandbox_id;
        info!(uid = %pod.uid, pod = %pod.name, sandbox = %id, "pod sandbox running");
        self.sandboxes.insert(pod.uid.clone(), id);
        Ok(())
    }

    async fn start_container(
        &mut self,
        pod: &SandboxConfig,
        c: &ContainerConfig,
    ) -> Result<ContainerId, RuntimeError> {
        let id = self
            .create_and_start(pod, c)
            .await
            .map_err(|message| RuntimeError::Start {
                container: c.name.clone(),
                message,
                source: None,
            })?;
        info!(%id, pod = %pod.name, container = %c.name, attempt = c.attempt, "container started");
        let id = ContainerId(id);
        self.live.insert(id.clone(), pod.uid.clone());
        Ok(id)
    }

    async fn stop_container(
        &mut self,
        id: &ContainerId,
        grace: Duration,
    ) -> Result<(), RuntimeError> {
        if !self.live.contains_key(id) {
            return Ok(());
        }
        let mut rt = self.handle.runtime.clone();
        let req = StopContainerRequest {
            container_id: id.0.clone(),
            timeout: i64::try_from(grace.as_secs()).unwrap_or(i64::MAX),
        };
        let deadline = grace + self.handle.call_timeout;
        let id = id.clone();
        // StopContainer blocks for up to the grace period; the exit is found by polling.
        tokio::spawn(async move {
            let mut req = tonic::Request::new(req);
            req.set_timeout(deadline);
            if let Err(e) = rpc("StopContainer", rt.stop_container(req).await) {
                warn!(error = %e, %id, "stopping container failed");
            }
        });
        Ok(())
    }

    async fn stop_pod(&mut self, uid: &str) -> Result<(), RuntimeError> {
        if let Some(id) = self.sandboxes.remove(uid) {
            self.remove_sandbox(&id)
                .await
                .map_err(|e| RuntimeError::Sandbox {
                    uid: uid.to_owned(),
                    op: "remove sandbox",
                    source: std::io::Error::other(e),
                })?;
        }
        let _ = std::fs::remove_dir_all(self.log_dir(uid));
        Ok(())
    }

    fn pod_status(&self, uid: &str) -> Vec<ContainerId> {
        self.live
            .iter()
            .filter(|(_, u)| *u == uid)
            .map(|(id, _)| id.clone())
            .collect()
    }

    async fn next_event(&mut self) -> Option<RuntimeEvent> {
        loop {
            if let Some(event) = self.found.pop_front() {
                return Some(event);
            }
            self.poll.tick().await;
            if self.live.is_empty() {
                continue;
            }
            if let Err(e) = self.poll_exits().await {
                warn!(error = %e, "polling container states failed");
            }
        }
    }
}
