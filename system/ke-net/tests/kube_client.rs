//! `kube_client` against the embedded API server: the real kube client, with every
//! connection made through a `Transport` (real sockets here; turmoil in `kube_turmoil`).
#![cfg(feature = "kube")]

use k8s_openapi::api::core::v1::ConfigMap;
use ke_apiserver::{Deps, Server, ServerConfig};
use ke_core::{Entropy, Seed};
use ke_net::{KubeClientError, TokioTransport, kube_client};
use kube::api::{Api, ListParams, PostParams};
use std::{collections::BTreeMap, net::SocketAddr};
use tokio::sync::oneshot;

struct Running {
    addr: SocketAddr,
    ca_pem: String,
    token: String,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

async fn start() -> Running {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = ServerConfig::on_free_loopback_port(dir.path());
    let deps =
        Deps::with_system_clock(TokioTransport, Entropy::seeded(Seed(1), "kube-client-test"));
    let server = Server::start(cfg, deps).await.expect("server starts");
    let addr = server.local_addr();
    let creds = server.credentials().clone();
    let (stop, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(server.serve(async move {
        let _ = rx.await;
    }));
    Running {
        addr,
        ca_pem: creds.ca_pem,
        token: creds.admin_token,
        stop,
        task,
        _dir: dir,
    }
}

fn config_map(name: &str) -> ConfigMap {
    ConfigMap {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([("k".to_string(), name.to_string())])),
        ..Default::default()
    }
}

/// A client built over TokioTransport, verifying the server by its IP literal, creates a
/// ConfigMap and lists it back with its data.
#[tokio::test]
async fn create_and_list_config_map() {
    let r = start().await;
    let client = kube_client(TokioTransport, r.addr, "127.0.0.1", &r.ca_pem, &r.token).unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let created = cms
        .create(&PostParams::default(), &config_map("via-transport"))
        .await
        .unwrap();
    assert!(created.metadata.uid.is_some());
    let list = cms.list(&ListParams::default()).await.unwrap();
    let found: Vec<_> = list
        .items
        .iter()
        .filter(|c| c.metadata.name.as_deref() == Some("via-transport"))
        .collect();
    assert_eq!(found.len(), 1);
    assert_eq!(
        found[0].data.as_ref().unwrap().get("k").map(String::as_str),
        Some("via-transport")
    );
    // Also a DNS name on the serving certificate works (no DNS lookup happens).
    let by_name = kube_client(TokioTransport, r.addr, "localhost", &r.ca_pem, &r.token).unwrap();
    let got = Api::<ConfigMap>::namespaced(by_name, "default")
        .get("via-transport")
        .await
        .unwrap();
    assert_eq!(got.metadata.uid, created.metadata.uid);
    r.stop.send(()).unwrap();
    r.task.await.unwrap();
}

/// A wrong token is rejected by the server (401); a name not on the serving certificate
/// fails the TLS handshake; a CA that did not sign the server is not trusted.
#[tokio::test]
async fn wrong_token_name_or_ca_fail() {
    let r = start().await;
    let bad_token = kube_client(TokioTransport, r.addr, "127.0.0.1", &r.ca_pem, "nope").unwrap();
    let e = Api::<ConfigMap>::namespaced(bad_token, "default")
        .list(&ListParams::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&e, kube::Error::Api(s) if s.code == 401),
        "expected 401, got {e:?}"
    );
    let bad_name =
        kube_client(TokioTransport, r.addr, "other.example", &r.ca_pem, &r.token).unwrap();
    let e = Api::<ConfigMap>::namespaced(bad_name, "default")
        .list(&ListParams::default())
        .await
        .unwrap_err();
    assert!(
        matches!(e, kube::Error::HyperError(_) | kube::Error::Service(_)),
        "{e:?}"
    );
    let other = start().await;
    let bad_ca = kube_client(TokioTransport, r.addr, "127.0.0.1", &other.ca_pem, &r.token).unwrap();
    let e = Api::<ConfigMap>::namespaced(bad_ca, "default")
        .list(&ListParams::default())
        .await
        .unwrap_err();
    assert!(
        matches!(e, kube::Error::HyperError(_) | kube::Error::Service(_)),
        "{e:?}"
    );
    assert!(matches!(
        kube_client(TokioTransport, r.addr, "127.0.0.1", "not pem", &r.token),
        Err(KubeClientError::NoCaCertificate)
    ));
    for s in [r, other] {
        s.stop.send(()).unwrap();
        s.task.await.unwrap();
    }
}
