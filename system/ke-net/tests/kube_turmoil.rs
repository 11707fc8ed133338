//! The real kube client and the embedded API server on turmoil's simulated network: the
//! server runs on host "api", the client on host "client", both through
//! `TurmoilTransport`; the same run twice gives the same trace.
#![cfg(all(feature = "kube", feature = "turmoil"))]

use k8s_openapi::api::core::v1::ConfigMap;
use ke_apiserver::{Deps, Server, ServerConfig};
use ke_core::{Entropy, Seed};
use ke_net::{TurmoilTransport, kube_client};
use kube::api::{Api, ListParams, PostParams};
use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

const PORT: u16 = 6443;

/// What the client observed: (simulated time, step, detail).
type Trace = Vec<(Duration, &'static str, String)>;

/// Credentials the server host hands to the client host.
type Creds = Arc<Mutex<Option<(String, String)>>>;

fn run(seed: u64) -> Trace {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().to_owned();
    let creds: Creds = Arc::new(Mutex::new(None));
    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .simulation_duration(Duration::from_secs(60))
        .build();
    let host_creds = creds.clone();
    sim.host("api", move || {
        let data_dir = data_dir.clone();
        let creds = host_creds.clone();
        async move {
            let mut cfg = ServerConfig::new(data_dir);
            cfg.listen = SocketAddr::from(([0, 0, 0, 0], PORT));
            cfg.extra_sans = vec!["api".into()];
            let deps =
                Deps::with_system_clock(TurmoilTransport, Entropy::seeded(Seed(seed), "apiserver"));
            let server = Server::start(cfg, deps).await?;
            let c = server.credentials();
            *creds.lock().expect("lock") = Some((c.ca_pem.clone(), c.admin_token.clone()));
            server.serve(std::future::pending()).await;
            Ok(())
        }
    });
    let trace = Arc::new(Mutex::new(Trace::new()));
    let out = trace.clone();
    sim.client("client", async move {
        let log = |step, detail: String| {
            out.lock().expect("lock").push((
                turmoil::sim_elapsed().expect("inside the sim"),
                step,
                detail,
            ));
        };
        let mut got = None;
        for _ in 0..100 {
            got = creds.lock().expect("lock").clone();
            if got.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let (ca, token) = got.expect("the API server started");
        let server = SocketAddr::new(turmoil::lookup("api"), PORT);
        let client = kube_client(TurmoilTransport, server, "api", &ca, &token)?;
        let cms: Api<ConfigMap> = Api::namespaced(client, "default");
        for name in ["one", "two"] {
            let mut cm = ConfigMap::default();
            cm.metadata.name = Some(name.into());
            let c = cms.create(&PostParams::default(), &cm).await?;
            log(
                "created",
                format!("{name} rv={:?}", c.metadata.resource_version),
            );
        }
        let list = cms.list(&ListParams::default()).await?;
        let names: Vec<_> = list
            .items
            .iter()
            .filter_map(|c| c.metadata.name.clone())
            .collect();
        log("listed", names.join(","));
        Ok(())
    });
    sim.run().expect("simulation succeeds");
    drop(dir);
    std::mem::take(&mut *trace.lock().expect("lock"))
}

/// Creates two ConfigMaps and lists them over the simulated network; a second run with the
/// same seed yields the same steps at the same simulated times.
#[test]
fn kube_client_over_turmoil() {
    let a = run(3);
    assert_eq!(a.len(), 3, "{a:?}");
    assert_eq!(a[2].1, "listed");
    assert!(a[2].2.split(',').any(|n| n == "one"), "{a:?}");
    assert!(a[2].2.split(',').any(|n| n == "two"), "{a:?}");
    let b = run(3);
    assert_eq!(a, b);
}
