//! DeviceTwin's cost per mapper report at the edge: parsing the payload, and the whole
//! `device_request` (rows updated and the report queued in one SQLite transaction, on a file
//! with `synchronous=NORMAL` as edgecore runs), followed by the removal a cloud confirmation
//! makes — the steady-state edge work per twin update.

use std::hint::black_box;

use criterion::{Criterion, Throughput};
use ke_edge::{
    devicetwin::{
        logic::{self, Ctx, Refused},
        store::{self, TwinStore},
    },
    metamanager::{Durability, MetaStore},
};
use ke_proto::twin::{DeviceRequest, parse_twin_update};
use serde_json::json;

const PAYLOAD: &[u8] = br#"{"event_id":"e1","timestamp":1700000000000,"twin":{"temperature":{"actual":{"value":"23.5","metadata":{"timestamp":1700000000000}},"metadata":{"type":"float"}},"target":{"actual":{"value":"21"},"metadata":{"type":"float"}}}}"#;

fn ctx<'a>(ids: &'a mut dyn FnMut() -> String) -> Ctx<'a> {
    Ctx {
        node: "edge-1",
        now_ms: 1_700_000_000_000,
        now_rfc3339: "2023-11-14T22:13:20Z".to_owned(),
        ids,
        outbox_max: 10_000,
        outbox_len: 0,
        queued: 0,
    }
}

fn bench_parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("twin");
    g.throughput(Throughput::Elements(1));
    g.bench_function("parse_mapper_update", |b| {
        b.iter(|| parse_twin_update(black_box(PAYLOAD)).expect("valid payload"));
    });
    g.finish();
}

fn bench_edge_update(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let meta = MetaStore::open_with(dir.path().join("edgecore.db"), Durability::Normal)
        .expect("open store");
    let twins = TwinStore::open(meta).expect("twin tables");
    let device = json!({
        "apiVersion": "devices.kubeedge.io/v1beta1", "kind": "Device",
        "metadata": {"name": "thermo", "namespace": "default", "uid": "u1"},
        "spec": {"nodeName": "edge-1", "properties": [
            {"name": "temperature"}, {"name": "target", "desired": {"value": "21"}}]}
    });
    let mut n = 0u64;
    let mut ids = move || {
        n += 1;
        format!("id-{n}")
    };
    twins
        .write(|tx| Ok::<_, Refused>(logic::sync_device(tx, &device, &mut ctx(&mut ids))?))
        .expect("device stored");
    let mut g = c.benchmark_group("twin");
    g.throughput(Throughput::Elements(1));
    g.bench_function("edge_update_commit_and_confirm", |b| {
        b.iter(|| {
            let req = ("default", "thermo", DeviceRequest::TwinUpdate);
            let published = twins
                .write(|tx| logic::device_request(tx, req, PAYLOAD, &mut ctx(&mut ids)))
                .expect("update accepted");
            let first = twins
                .read(store::first_report)
                .expect("read")
                .expect("queued");
            twins
                .write(|tx| Ok::<_, Refused>(store::remove_report(tx, first.seq)?))
                .expect("confirmed");
            published
        });
    });
    g.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench_parse(&mut c);
    bench_edge_update(&mut c);
    c.final_summary();
}
