//! `edgemark`: many virtual edge nodes in one process, over real sockets, against a real
//! cloudcore. Each node is the edgecore library (EdgeHub with mutual TLS after a real join,
//! MetaManager on its own in-memory SQLite, edged on the `sim` runtime); only pods are
//! simulated. `fleet run --mode real` starts one edgemark per ~8,000 nodes; on a real
//! deployment several machines (or a Kubernetes Job, see README) each run one with their own
//! `--from`/`--count` range against one cloudcore.
//!
//! Control and metrics endpoint (`--listen`, plain HTTP):
//! - `GET /metrics`: Prometheus text (nodes, connected, sessions, edge writes, violations,
//!   sync latency quantiles).
//! - `GET /state`: JSON: the same figures plus, per node, every stored pod and configmap as
//!   key → [uid, resourceVersion] (what `fleet` compares with the API server).
//! - `POST /cut?share=S&secs=T`: cuts that share of the nodes (spread evenly) for T seconds:
//!   their EdgeCore stops, so the connection closes, and starts again afterwards.
//! - `POST /twin/stop`: the virtual mappers stop their periodic reports (the driver then
//!   waits for every accepted report to be confirmed).
//!
//! Devices (`--devices-per-node N`): each node runs DeviceTwin and the simulator's virtual
//! mapper on an in-memory bus; the mapper reports every device's properties each
//! `--twin-period` seconds. `/state` and `/metrics` then carry the twin counters.
//! - `GET /healthz`.
//!
//! Limits: one node holds one socket (two while joining); the open-file limit here is 20,000
//! per process, so keep `--count` under ~9,000 and run more processes. `--source-ips` spreads
//! the nodes' connections over several local addresses (loopback source-port exhaustion).

mod http;
mod marks;
mod node;

use std::{
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    process::ExitCode,
    sync::Arc,
    time::Duration,
};

use anyhow::Context as _;
use clap::Parser;
use ke_net::{
    Listener as _,
    process::{LogColour, UsageDetail, init_tracing, parse_args, runtime},
};

use crate::{
    marks::Marks,
    node::{Ctl, DevicePlan, Node, Plan},
};

/// mimalloc, as `fleet` (many small allocations per message).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Many virtual edge nodes over real sockets (edgefleet).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// CloudHub's websocket address, HOST:PORT.
    #[arg(long)]
    cloudcore: SocketAddr,
    /// The certificate server's port on the same host.
    #[arg(long, default_value_t = 10002)]
    cert_port: u16,
    /// Join token (`keadm gettoken`); default: the `EDGEMARK_TOKEN` environment variable
    /// (keeps it out of `ps`).
    #[arg(long)]
    token: Option<String>,
    /// Node names are PREFIX followed by the node's number.
    #[arg(long, default_value = "edge-")]
    prefix: String,
    /// Number of the first node.
    #[arg(long, default_value_t = 0)]
    from: u32,
    /// Nodes to run.
    #[arg(long)]
    count: u32,
    /// Runtime worker threads (default: one per core; see cloudcore's flag of that name).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    worker_threads: Option<u16>,
    /// Where each node's certificates go (a tmpfs is best: joins write files).
    #[arg(long)]
    data_dir: PathBuf,
    /// Local addresses to connect from, comma-separated; nodes take them in turn.
    #[arg(long, value_delimiter = ',')]
    source_ips: Vec<IpAddr>,
    /// Control and metrics endpoint.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Write the endpoint's bound address to this file once listening.
    #[arg(long)]
    addr_file: Option<PathBuf>,
    /// Nodes started per second (joins are the expensive part: key, CSR, two handshakes).
    #[arg(long, default_value_t = 200)]
    start_rate: u32,
    /// EdgeHub heartbeat, seconds.
    #[arg(long, default_value_t = 15)]
    heartbeat: u64,
    /// Node status report period, seconds (KubeEdge's large-scale setting: 60).
    #[arg(long, default_value_t = 60)]
    status_period: u64,
    /// Node lease renew period, seconds.
    #[arg(long, default_value_t = 60)]
    lease_period: u64,
    /// Devices per node (their Device objects are the driver's to create; 0: no
    /// DeviceTwin).
    #[arg(long, default_value_t = 0)]
    devices_per_node: u32,
    /// Every device reports each property once per this many seconds.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    twin_period: u64,
    /// Sensor properties of the devices' model, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "temperature")]
    device_sensors: Vec<String>,
    /// Actuator properties of the devices' model, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "target")]
    device_actuators: Vec<String>,
}

fn main() -> ExitCode {
    let args: Args = match parse_args("edgemark", UsageDetail::UpToUsage) {
        Ok(a) => a,
        Err(code) => return code,
    };
    init_tracing(LogColour::IfTerminal);
    // Worker threads get the main thread's 8 MiB: an EdgeCore's poll nests deeply, and in
    // a debug build (the tests' `fleet run --mode real`) tokio's default 2 MiB overflowed.
    let rt = match runtime(args.worker_threads)
        .thread_stack_size(8 << 20)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("edgemark: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("edgemark: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The fleet of this process, shared with the endpoint.
pub(crate) struct Fleet {
    pub(crate) names: Vec<String>,
    pub(crate) ctls: Vec<Arc<Ctl>>,
    pub(crate) stores: Vec<ke_edge::metamanager::MetaStore>,
    pub(crate) marks: Arc<Marks>,
    /// The device book, with devices.
    pub(crate) book: Option<Arc<simulator::devices::Book>>,
}

async fn run(a: Args) -> anyhow::Result<()> {
    std::fs::create_dir_all(&a.data_dir)
        .with_context(|| format!("creating {}", a.data_dir.display()))?;
    let token = match a.token.clone() {
        Some(t) => t,
        None => std::env::var("EDGEMARK_TOKEN")
            .context("no join token: pass --token or set EDGEMARK_TOKEN")?,
    };
    let book =
        (a.devices_per_node > 0).then(|| Arc::new(simulator::devices::Book::new(a.count as usize)));
    let devices = book.clone().map(|book| DevicePlan {
        period: Duration::from_secs(a.twin_period),
        sensors: a.device_sensors.clone(),
        actuators: a.device_actuators.clone(),
        book,
    });
    let plan = Arc::new(Plan {
        cloudcore: a.cloudcore,
        cert_port: a.cert_port,
        token,
        heartbeat_s: a.heartbeat,
        status_period: Duration::from_secs(a.status_period),
        lease_period: Duration::from_secs(a.lease_period),
        devices,
    });
    let marks = Arc::new(Marks::new());
    let mut fleet = Fleet {
        names: Vec::new(),
        ctls: Vec::new(),
        stores: Vec::new(),
        marks: marks.clone(),
        book,
    };
    for i in 0..a.count {
        let name = format!("{}{}", a.prefix, a.from + i);
        fleet.stores.push(Node::store(i, &name, &marks)?);
        fleet.ctls.push(Arc::new(Ctl::default()));
        fleet.names.push(name);
    }
    let fleet = Arc::new(fleet);
    let listener = http::bind(a.listen).await?;
    let bound = listener.local_addr()?;
    if let Some(f) = &a.addr_file {
        std::fs::write(f, bound.to_string()).with_context(|| format!("writing {}", f.display()))?;
    }
    tracing::info!(%bound, nodes = a.count, "edgemark endpoint listening");
    tokio::spawn(http::serve(listener, fleet.clone()));
    let gap = Duration::from_secs(1) / a.start_rate.max(1);
    for (i, name) in fleet.names.iter().enumerate() {
        let source = (!a.source_ips.is_empty()).then(|| a.source_ips[i % a.source_ips.len()]);
        let node = Node {
            index: u32::try_from(i).unwrap_or(u32::MAX),
            name: name.clone(),
            dir: a.data_dir.join(name),
            source,
            ctl: fleet.ctls[i].clone(),
            store: fleet.stores[i].clone(),
            plan: plan.clone(),
        };
        tokio::spawn(node.run());
        tokio::time::sleep(gap).await;
    }
    ke_net::shutdown_signal!().await;
    Ok(())
}
