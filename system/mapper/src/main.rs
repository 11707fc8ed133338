//! `mapper`: a device mapper for edgefleet (and KubeEdge) edge nodes. It serves one device on
//! the node's MQTT broker: `mapper virtual` simulates the device, `mapper modbus` reaches a
//! Modbus TCP device. See the library docs for the topics and behaviour.

use std::{net::SocketAddr, process::ExitCode, sync::Arc, time::Duration};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use ke_core::{Entropy, Seed, SystemClock};
use ke_net::{
    TokioTransport, Transport as _,
    process::{LogColour, UsageDetail, init_tracing, parse_args},
};
use mapper::{
    driver::{modbus::ModbusDevice, virtual_device::VirtualDevice},
    property::Property,
    run::{MapperConfig, run},
};

/// A device mapper speaking KubeEdge's DeviceTwin topics.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The node's MQTT broker.
    #[arg(long, default_value = "tcp://127.0.0.1:1883", global = true)]
    broker: String,
    /// The device, NAMESPACE/NAME.
    #[arg(long, global = true, default_value = "")]
    device: String,
    /// Report period (seconds, may be fractional).
    #[arg(long, default_value_t = 1.0, global = true)]
    period: f64,
    /// MQTT QoS (0, 1, 2).
    #[arg(long, default_value_t = 1, global = true)]
    qos: u8,
    #[command(subcommand)]
    protocol: Protocol,
}

#[derive(Debug, Subcommand)]
enum Protocol {
    /// A simulated device: `--property NAME=const:V|sine:B:A:P|random:MIN:MAX|counter:N|actuator:V`.
    Virtual {
        /// A property (repeat).
        #[arg(long = "property", required = true)]
        properties: Vec<Property>,
        /// Seed of the random readings.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// A Modbus TCP device: `--property NAME=holding:ADDR|input:ADDR|coil:ADDR|discrete:ADDR`.
    Modbus {
        /// The device's Modbus TCP address, IP:PORT.
        #[arg(long)]
        server: SocketAddr,
        /// Modbus unit id.
        #[arg(long, default_value_t = 1)]
        unit: u8,
        /// A property (repeat).
        #[arg(long = "property", required = true)]
        properties: Vec<Property>,
    },
}

fn main() -> ExitCode {
    let args = match parse_args::<Args>("mapper", UsageDetail::UpToUsage) {
        Ok(a) => a,
        Err(code) => return code,
    };
    init_tracing(LogColour::IfTerminal);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mapper: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mapper: {e:#}");
            ExitCode::from(64)
        }
    }
}

fn config(args: &Args) -> anyhow::Result<MapperConfig> {
    let (namespace, name) = args
        .device
        .split_once('/')
        .filter(|(ns, n)| !ns.is_empty() && !n.is_empty() && !n.contains('/'))
        .context("--device wants NAMESPACE/NAME")?;
    let rest = args
        .broker
        .strip_prefix("tcp://")
        .context("--broker wants tcp://HOST:PORT")?;
    let (host, port) = rest
        .rsplit_once(':')
        .context("--broker wants tcp://HOST:PORT")?;
    let period = Duration::try_from_secs_f64(args.period)
        .ok()
        .filter(|d| !d.is_zero())
        .context("--period wants a positive number of seconds")?;
    anyhow::ensure!(args.qos <= 2, "--qos wants 0, 1 or 2");
    Ok(MapperConfig {
        host: host.to_owned(),
        port: port.parse().context("--broker port")?,
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        period,
        qos: args.qos,
    })
}

async fn serve(args: Args) -> anyhow::Result<()> {
    let cfg = config(&args)?;
    let clock = Arc::new(SystemClock);
    let stop = ke_net::shutdown_signal!();
    match args.protocol {
        Protocol::Virtual { properties, seed } => {
            if let Some(p) = properties.iter().find(|p| p.kind.is_modbus()) {
                anyhow::bail!("property {} is a Modbus kind; use `mapper modbus`", p.name);
            }
            let dev = VirtualDevice::new(properties, Entropy::seeded(Seed(seed), "mapper"));
            run(cfg, dev, clock, stop).await;
        }
        Protocol::Modbus {
            server,
            unit,
            properties,
        } => {
            if let Some(p) = properties.iter().find(|p| !p.kind.is_modbus()) {
                anyhow::bail!("property {} is not a Modbus kind", p.name);
            }
            let stream = TokioTransport
                .connect(server)
                .await
                .with_context(|| format!("connecting to the Modbus device at {server}"))?;
            let dev = ModbusDevice::attach(properties, stream, unit);
            run(cfg, dev, clock, stop).await;
        }
    }
    Ok(())
}
