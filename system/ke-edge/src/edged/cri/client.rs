//! [`CriHandle`]: the gRPC clients to the CRI socket, cloneable, plus what does not need the
//! runtime's state: container look-ups by pod UID labels, [`CriHandle::logs`] and
//! [`CriHandle::exec_sync`].

use std::{collections::HashMap, path::PathBuf, time::Duration};

use bytes::Bytes;
use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint};
use tracing::info;

use super::{
    Error, LABEL_CONTAINER, LABEL_NODE, LABEL_POD_UID,
    api::{
        ContainerFilter, ContainerState, ContainerStatus, ContainerStatusRequest, ExecSyncRequest,
        ListContainersRequest, VersionRequest, image_service_client::ImageServiceClient,
        runtime_service_client::RuntimeServiceClient,
    },
};

/// The output of [`CriHandle::exec_sync`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecSyncOutput {
    /// What the command wrote to stdout.
    pub stdout: Bytes,
    /// What the command wrote to stderr.
    pub stderr: Bytes,
    /// Its exit code.
    pub exit_code: i32,
}

/// The CRI clients of one node (cloneable; clones share the connection).
#[derive(Debug, Clone)]
pub struct CriHandle {
    pub(super) runtime: RuntimeServiceClient<Channel>,
    pub(super) images: ImageServiceClient<Channel>,
    /// The node whose containers this handle sees (label `edgefleet.io/node`).
    pub(super) node: String,
    /// Deadline of ordinary calls (image pulls get ten times as long).
    pub(super) call_timeout: Duration,
}

/// The socket path of a CRI endpoint: `unix:///path` or an absolute path.
pub fn endpoint_path(endpoint: &str) -> Result<PathBuf, Error> {
    let bad = |reason: &str| Error::BadEndpoint {
        endpoint: endpoint.to_owned(),
        reason: reason.to_owned(),
    };
    let path = match endpoint.split_once("://") {
        Some(("unix", path)) => path,
        Some((scheme, _)) => {
            return Err(bad(&format!(
                "scheme `{scheme}` is not supported (only unix:// sockets)"
            )));
        }
        None => endpoint,
    };
    if !path.starts_with('/') {
        return Err(bad("the socket path must be absolute"));
    }
    Ok(PathBuf::from(path))
}

impl CriHandle {
    /// Connects to the CRI socket at `endpoint` and checks it answers CRI `Version`.
    pub async fn connect(
        endpoint: &str,
        node: &str,
        call_timeout: Duration,
    ) -> Result<Self, Error> {
        let path = endpoint_path(endpoint)?;
        let connect_err = |source| Error::Connect {
            endpoint: endpoint.to_owned(),
            source,
        };
        // The URI is not dialled: the connector opens the unix socket.
        let channel = Endpoint::from_static("http://cri.sock")
            .timeout(call_timeout)
            .connect_timeout(call_timeout)
            .connect_with_connector(tower::service_fn(move |_| {
                let path = path.clone();
                async move { ke_net::connect_unix(&path).await.map(TokioIo::new) }
            }))
            .await
            .map_err(connect_err)?;
        let handle = Self {
            runtime: RuntimeServiceClient::new(channel.clone()),
            images: ImageServiceClient::new(channel),
            node: node.to_owned(),
            call_timeout,
        };
        let version = handle
            .runtime
            .clone()
            .version(VersionRequest::default())
            .await
            .map_err(|source| Error::Rpc {
                op: "Version",
                source: Box::new(source),
            })?
            .into_inner();
        info!(
            endpoint,
            runtime = %version.runtime_name,
            version = %version.runtime_version,
            api = %version.runtime_api_version,
            "connected to the CRI runtime"
        );
        Ok(handle)
    }

    /// This node's containers matching `labels` (ours only: label `edgefleet.io/node`).
    pub(super) async fn list_containers(
        &self,
        sandbox: Option<&str>,
        mut labels: HashMap<String, String>,
    ) -> Result<Vec<super::api::Container>, Error> {
        labels.insert(LABEL_NODE.to_owned(), self.node.clone());
        let filter = ContainerFilter {
            pod_sandbox_id: sandbox.unwrap_or_default().to_owned(),
            label_selector: labels,
            ..ContainerFilter::default()
        };
        let req = ListContainersRequest {
            filter: Some(filter),
        };
        let resp = self.runtime.clone().list_containers(req).await;
        Ok(rpc("ListContainers", resp)?.containers)
    }

    /// The status of container `id`.
    pub(super) async fn container_status(&self, id: &str) -> Result<ContainerStatus, Error> {
        let req = ContainerStatusRequest {
            container_id: id.to_owned(),
            verbose: false,
        };
        let resp = rpc(
            "ContainerStatus",
            self.runtime.clone().container_status(req).await,
        )?;
        resp.status.ok_or(Error::Missing {
            op: "ContainerStatus",
        })
    }

    /// The newest instance (highest attempt) of container `name` of pod `pod_uid`.
    pub(super) async fn newest(
        &self,
        pod_uid: &str,
        name: &str,
    ) -> Result<super::api::Container, Error> {
        let labels = HashMap::from([
            (LABEL_POD_UID.to_owned(), pod_uid.to_owned()),
            (LABEL_CONTAINER.to_owned(), name.to_owned()),
        ]);
        let list = self.list_containers(None, labels).await?;
        list.into_iter()
            .max_by_key(|c| (attempt_of(c), c.created_at))
            .ok_or_else(|| Error::NoContainer {
                pod_uid: pod_uid.to_owned(),
                container: name.to_owned(),
            })
    }

    /// This node's running containers of pod `pod_uid` (CRI `ListContainers`), as
    /// `(container name, container id)`, sorted.
    pub async fn running(&self, pod_uid: &str) -> Result<Vec<(String, String)>, Error> {
        let labels = HashMap::from([(LABEL_POD_UID.to_owned(), pod_uid.to_owned())]);
        let mut out: Vec<(String, String)> = self
            .list_containers(None, labels)
            .await?
            .into_iter()
            .filter(|c| c.state == ContainerState::ContainerRunning as i32)
            .map(|c| {
                let name = c.labels.get(LABEL_CONTAINER).cloned().unwrap_or_default();
                (name, c.id)
            })
            .collect();
        out.sort();
        Ok(out)
    }

    /// Runs `cmd` in the running container `container` of pod `pod_uid` and waits for it
    /// (CRI `ExecSync`), at most `timeout`.
    pub async fn exec_sync(
        &self,
        pod_uid: &str,
        container: &str,
        cmd: Vec<String>,
        timeout: Duration,
    ) -> Result<ExecSyncOutput, Error> {
        let c = self.newest(pod_uid, container).await?;
        if c.state != ContainerState::ContainerRunning as i32 {
            return Err(Error::NotRunning {
                pod_uid: pod_uid.to_owned(),
                container: container.to_owned(),
            });
        }
        let secs = i64::try_from(timeout.as_secs().max(1)).unwrap_or(i64::MAX);
        let mut req = tonic::Request::new(ExecSyncRequest {
            container_id: c.id,
            cmd,
            timeout: secs,
        });
        req.set_timeout(timeout + self.call_timeout);
        let out = rpc("ExecSync", self.runtime.clone().exec_sync(req).await)?;
        Ok(ExecSyncOutput {
            stdout: Bytes::from(out.stdout),
            stderr: Bytes::from(out.stderr),
            exit_code: out.exit_code,
        })
    }
}

/// The attempt of a listed container (its metadata).
pub(super) fn attempt_of(c: &super::api::Container) -> u32 {
    c.metadata.as_ref().map_or(0, |m| m.attempt)
}

/// The response of a call, or [`Error::Rpc`] naming it.
pub(super) fn rpc<T>(
    op: &'static str,
    r: Result<tonic::Response<T>, tonic::Status>,
) -> Result<T, Error> {
    r.map(tonic::Response::into_inner)
        .map_err(|source| Error::Rpc {
            op,
            source: Box::new(source),
        })
}
