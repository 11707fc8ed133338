//! The Modbus mapper against a real Modbus TCP server (tokio-modbus's server, with a small
//! register map) started by the test.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::{
    collections::BTreeMap,
    future,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use std::net::TcpListener as TcpListenerStd;

use ke_net::{TokioTransport, Transport as _};
use mapper::{
    Driver as _,
    driver::{DriverError, modbus::ModbusDevice},
};
use tokio::net::TcpListener;
use tokio_modbus::{
    ExceptionCode, Request, Response,
    server::tcp::{Server, accept_tcp_connection},
};

/// Registers and coils by address.
#[derive(Default)]
struct Map {
    holding: BTreeMap<u16, u16>,
    input: BTreeMap<u16, u16>,
    coils: BTreeMap<u16, bool>,
}

#[derive(Clone)]
struct Plc(Arc<Mutex<Map>>);

impl tokio_modbus::server::Service for Plc {
    type Request = Request<'static>;
    type Response = Response;
    type Exception = ExceptionCode;
    type Future = future::Ready<Result<Response, ExceptionCode>>;

    fn call(&self, req: Request<'static>) -> Self::Future {
        let mut m = self.0.lock().unwrap();
        let one = |v: Option<&u16>| v.copied().ok_or(ExceptionCode::IllegalDataAddress);
        let r = match req {
            Request::ReadHoldingRegisters(a, 1) => {
                one(m.holding.get(&a)).map(|v| Response::ReadHoldingRegisters(vec![v]))
            }
            Request::ReadInputRegisters(a, 1) => {
                one(m.input.get(&a)).map(|v| Response::ReadInputRegisters(vec![v]))
            }
            Request::ReadCoils(a, 1) => m
                .coils
                .get(&a)
                .map(|v| Response::ReadCoils(vec![*v]))
                .ok_or(ExceptionCode::IllegalDataAddress),
            Request::WriteSingleRegister(a, v) if m.holding.contains_key(&a) => {
                m.holding.insert(a, v);
                Ok(Response::WriteSingleRegister(a, v))
            }
            Request::WriteSingleCoil(a, v) if m.coils.contains_key(&a) => {
                m.coils.insert(a, v);
                Ok(Response::WriteSingleCoil(a, v))
            }
            _ => Err(ExceptionCode::IllegalFunction),
        };
        future::ready(r)
    }
}

async fn start(plc: Plc) -> SocketAddr {
    #[allow(
        clippy::disallowed_methods,
        reason = "tokio-modbus's server takes a tokio listener"
    )]
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = Server::new(listener);
    tokio::spawn(async move {
        let on_connected = |stream, peer| {
            let plc = plc.clone();
            async move { accept_tcp_connection(stream, peer, move |_| Ok(Some(plc.clone()))) }
        };
        let _ = server.serve(&on_connected, |_| {}).await;
    });
    addr
}

#[tokio::test]
async fn reads_and_writes_registers_and_coils_of_a_real_modbus_server() {
    let map = Map {
        holding: BTreeMap::from([(1, 20)]),
        input: BTreeMap::from([(0, 215)]),
        coils: BTreeMap::from([(5, false)]),
    };
    let plc = Plc(Arc::new(Mutex::new(map)));
    let addr = start(plc.clone()).await;
    let props = [
        "temp=input:0",
        "setpoint=holding:1",
        "fan=coil:5",
        "ghost=holding:9",
    ]
    .iter()
    .map(|s| s.parse().unwrap())
    .collect();
    let stream = TokioTransport.connect(addr).await.unwrap();
    let mut dev = ModbusDevice::attach(props, stream, 1);
    assert_eq!(dev.read("temp").await.unwrap(), "215");
    assert_eq!(dev.read("setpoint").await.unwrap(), "20");
    dev.write("setpoint", "23").await.unwrap();
    assert_eq!(
        plc.0.lock().unwrap().holding[&1],
        23,
        "the server holds the new value"
    );
    assert_eq!(dev.read("setpoint").await.unwrap(), "23");
    dev.write("fan", "on").await.unwrap();
    assert_eq!(dev.read("fan").await.unwrap(), "true");
    assert!(matches!(
        dev.write("temp", "1").await,
        Err(DriverError::ReadOnly(_))
    ));
    assert!(matches!(
        dev.write("setpoint", "hot").await,
        Err(DriverError::BadValue { .. })
    ));
    // An address the device does not have: its exception comes back as a device error.
    let err = dev.read("ghost").await.unwrap_err();
    assert!(matches!(err, DriverError::Device(_)), "{err}");
    // And the connection still works afterwards.
    assert_eq!(dev.read("temp").await.unwrap(), "215");
}

/// Debian's mosquitto on a free port (installed by ci/deps.sh).
struct Broker {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn broker() -> Broker {
    let l = TcpListenerStd::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\n"),
    )
    .unwrap();
    let bin = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
        .into_iter()
        .find(|p| std::path::Path::new(p).is_file())
        .expect("mosquitto is not installed: run ci/deps.sh");
    let child = std::process::Command::new(bin)
        .arg("-c")
        .arg(&conf)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..100 {
        if TokioTransport
            .connect(([127, 0, 0, 1], port).into())
            .await
            .is_ok()
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    Broker {
        child,
        port,
        _dir: dir,
    }
}

/// The whole mapper: Modbus registers reported on `…/twin/update` through a real broker, and
/// a delta written into the device's holding register.
#[tokio::test]
async fn the_modbus_mapper_reports_registers_and_applies_deltas_over_mqtt() {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

    let map = Map {
        holding: BTreeMap::from([(1, 20)]),
        input: BTreeMap::from([(0, 215)]),
        ..Map::default()
    };
    let plc = Plc(Arc::new(Mutex::new(map)));
    let addr = start(plc.clone()).await;
    let b = broker().await;
    let props = ["temp=input:0", "setpoint=holding:1"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    let stream = TokioTransport.connect(addr).await.unwrap();
    let dev = ModbusDevice::attach(props, stream, 1);
    let cfg = mapper::run::MapperConfig {
        host: "127.0.0.1".into(),
        port: b.port,
        namespace: "default".into(),
        name: "plc".into(),
        period: std::time::Duration::from_millis(200),
        qos: 1,
    };
    let clock = Arc::new(ke_core::SystemClock);
    tokio::spawn(mapper::run::run(cfg, dev, clock, std::future::pending()));
    let (client, mut events) = AsyncClient::new(MqttOptions::new("test", "127.0.0.1", b.port), 64);
    client
        .subscribe(
            "$hw/events/device/default/plc/twin/update",
            QoS::AtLeastOnce,
        )
        .await
        .unwrap();
    let mut next_update = async || loop {
        let ev = tokio::time::timeout(std::time::Duration::from_secs(10), events.poll())
            .await
            .expect("an MQTT event")
            .unwrap();
        if let Event::Incoming(Packet::Publish(p)) = ev {
            return serde_json::from_slice::<serde_json::Value>(&p.payload).unwrap();
        }
    };
    let update = next_update().await;
    assert_eq!(update["twin"]["temp"]["actual"]["value"], "215");
    assert_eq!(update["twin"]["temp"]["metadata"]["type"], "int");
    let delta = r#"{"event_id":"d1","timestamp":0,"twin":{},"delta":{"setpoint":"23"}}"#;
    client
        .publish(
            "$hw/events/device/default/plc/twin/update/delta",
            QoS::AtLeastOnce,
            false,
            delta,
        )
        .await
        .unwrap();
    loop {
        let u = next_update().await;
        if u["twin"]["setpoint"]["actual"]["value"] == "23" {
            break;
        }
    }
    assert_eq!(
        plc.0.lock().unwrap().holding[&1],
        23,
        "the register was written"
    );
}
