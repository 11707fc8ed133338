//! edgemark's control and metrics endpoint (see the crate docs for the routes).

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    net::SocketAddr,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use axum::{
    Json, Router,
    extract::{Query, State},
    http::StatusCode,
    response::IntoResponse,
    routing::{get, post},
};
use hyper_util::{rt::TokioIo, service::TowerToHyperService};
use ke_net::{Listener as _, TokioListener, Transport as _};
use serde::{Deserialize, Serialize};
use simulator::workload::{Holdings, held_objects};

use crate::{Fleet, marks::Summary};

pub(crate) async fn bind(addr: SocketAddr) -> anyhow::Result<TokioListener> {
    Ok(ke_net::TokioTransport.bind(addr).await?)
}

/// Serves the endpoint for the life of the process.
pub(crate) async fn serve(mut listener: TokioListener, fleet: Arc<Fleet>) {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .route("/state", get(state))
        .route("/cut", post(cut))
        .route("/twin/stop", post(twin_stop))
        .with_state(fleet);
    loop {
        match listener.accept().await {
            Ok((sock, peer)) => {
                let svc = TowerToHyperService::new(app.clone());
                tokio::spawn(async move {
                    let conn = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(sock), svc);
                    if let Err(e) = conn.await {
                        tracing::debug!(%peer, error = %e, "endpoint connection ended with error");
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "endpoint accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// `GET /state`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct StateReply {
    pub(crate) nodes: usize,
    pub(crate) connected: usize,
    /// Sessions begun, summed over nodes (first connects included).
    pub(crate) connects: u64,
    pub(crate) edge_writes: u64,
    pub(crate) violations: BTreeMap<String, simulator::safety::Violations>,
    pub(crate) sync_ms: simulator::outcome::Percentiles,
    /// Node name → what its store holds.
    pub(crate) holdings: BTreeMap<String, Holdings>,
    /// Twin report counters (with devices).
    #[serde(default)]
    pub(crate) twin: TwinCounts,
}

/// The twin reports of this process's nodes (restarts included).
#[derive(Debug, Default, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct TwinCounts {
    /// `twin/update`s the mappers published.
    pub(crate) published: u64,
    /// Accepted by DeviceTwin (queued in its outbox).
    pub(crate) accepted: u64,
    /// Refused by DeviceTwin.
    pub(crate) refused: u64,
    /// Twin and state reports the cloud confirmed.
    pub(crate) confirmed: u64,
    /// Reports waiting in the outboxes now.
    pub(crate) outbox: u64,
}

fn twin_counts(fleet: &Fleet) -> TwinCounts {
    let Some(b) = &fleet.book else {
        return TwinCounts::default();
    };
    TwinCounts {
        published: b.published.load(Ordering::Relaxed),
        accepted: b.accepted.load(Ordering::Relaxed),
        refused: b.refused.load(Ordering::Relaxed),
        confirmed: b.confirmed(),
        outbox: b.outbox(),
    }
}

/// `POST /twin/stop`: the mappers stop their periodic reports.
async fn twin_stop(State(fleet): State<Arc<Fleet>>) -> impl IntoResponse {
    match &fleet.book {
        Some(b) => {
            b.stop_reports.store(true, Ordering::Relaxed);
            (StatusCode::OK, "stopped\n")
        }
        None => (StatusCode::NOT_FOUND, "this edgemark runs no devices\n"),
    }
}

fn counts(fleet: &Fleet) -> (usize, u64) {
    let connected = fleet
        .ctls
        .iter()
        .filter(|c| c.connected.load(Ordering::Relaxed))
        .count();
    let connects = fleet
        .ctls
        .iter()
        .map(|c| c.connects.load(Ordering::Relaxed))
        .sum();
    (connected, connects)
}

/// `GET /state?brief=true` leaves the holdings out (cheap enough to poll often).
#[derive(Debug, Deserialize)]
struct StateQuery {
    #[serde(default)]
    brief: bool,
}

async fn state(State(fleet): State<Arc<Fleet>>, Query(q): Query<StateQuery>) -> Json<StateReply> {
    let (connected, connects) = counts(&fleet);
    let Summary {
        edge_writes,
        violations,
        sync_ms,
    } = fleet.marks.summary();
    let holdings = if q.brief {
        BTreeMap::new()
    } else {
        fleet
            .names
            .iter()
            .zip(&fleet.stores)
            .map(|(n, s)| (n.clone(), held_objects(s, None)))
            .collect()
    };
    Json(StateReply {
        nodes: fleet.names.len(),
        connected,
        connects,
        edge_writes,
        violations,
        sync_ms,
        holdings,
        twin: twin_counts(&fleet),
    })
}

async fn metrics(State(fleet): State<Arc<Fleet>>) -> impl IntoResponse {
    let (connected, connects) = counts(&fleet);
    let s = fleet.marks.summary();
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, kind: &str, v: f64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
        );
    };
    gauge(
        "edgemark_nodes",
        "Nodes in this process.",
        "gauge",
        fleet.names.len() as f64,
    );
    gauge(
        "edgemark_connected_nodes",
        "Nodes with a cloud session.",
        "gauge",
        connected as f64,
    );
    gauge(
        "edgemark_connects_total",
        "Sessions begun.",
        "counter",
        connects as f64,
    );
    gauge(
        "edgemark_edge_writes_total",
        "Committed downstream writes.",
        "counter",
        s.edge_writes as f64,
    );
    twin_metrics(&mut out, twin_counts(&fleet));
    let _ = writeln!(
        out,
        "# HELP edgemark_violations_total Safety violations by check.\n# TYPE edgemark_violations_total counter"
    );
    for (check, _) in simulator::safety::CHECKS {
        let n = s.violations.get(check).map_or(0, |v| v.count);
        let _ = writeln!(out, "edgemark_violations_total{{check=\"{check}\"}} {n}");
    }
    let _ = writeln!(
        out,
        "# HELP edgemark_sync_latency_ms Cloud-to-edge sync latency of stamped writes.\n# TYPE edgemark_sync_latency_ms summary"
    );
    for (q, v) in [
        ("0.5", s.sync_ms.p50),
        ("0.9", s.sync_ms.p90),
        ("0.99", s.sync_ms.p99),
    ] {
        let _ = writeln!(out, "edgemark_sync_latency_ms{{quantile=\"{q}\"}} {v}");
    }
    let _ = writeln!(out, "edgemark_sync_latency_ms_count {}", s.sync_ms.count);
    ([("content-type", ke_net::metrics::CONTENT_TYPE)], out)
}

/// The twin counters in Prometheus text.
fn twin_metrics(out: &mut String, t: TwinCounts) {
    let mut write = |name: &str, help: &str, kind: &str, v: u64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
        );
    };
    for (name, help, v) in [
        (
            "edgemark_twin_published_total",
            "Twin reports the virtual mappers published.",
            t.published,
        ),
        (
            "edgemark_twin_accepted_total",
            "Twin reports DeviceTwin accepted.",
            t.accepted,
        ),
        (
            "edgemark_twin_refused_total",
            "Twin reports DeviceTwin refused.",
            t.refused,
        ),
        (
            "edgemark_twin_confirmed_total",
            "Device reports the cloud confirmed.",
            t.confirmed,
        ),
    ] {
        write(name, help, "counter", v);
    }
    write(
        "edgemark_twin_outbox",
        "Device reports waiting in DeviceTwin outboxes.",
        "gauge",
        t.outbox,
    );
}

#[derive(Debug, Deserialize)]
struct CutQuery {
    share: f64,
    secs: u64,
}

/// `POST /cut`: cuts `share` of the nodes, spread evenly, for `secs`.
async fn cut(State(fleet): State<Arc<Fleet>>, Query(q): Query<CutQuery>) -> impl IntoResponse {
    if !(0.0..=1.0).contains(&q.share) {
        return (
            StatusCode::BAD_REQUEST,
            "share must be within 0..=1\n".to_owned(),
        );
    }
    let n = fleet.ctls.len();
    let want = (n as f64 * q.share).round() as usize;
    let chosen: Vec<usize> = (0..want).map(|k| k * n / want.max(1)).collect();
    for &i in &chosen {
        fleet.ctls[i].set_cut(true);
    }
    let ctls: Vec<_> = chosen.iter().map(|&i| fleet.ctls[i].clone()).collect();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(q.secs)).await;
        for c in ctls {
            c.set_cut(false);
        }
    });
    tracing::info!(nodes = chosen.len(), secs = q.secs, "cut");
    (StatusCode::OK, format!("{}\n", chosen.len()))
}
