//! The Modbus mapper against a real Modbus TCP server (tokio-modbus's server, with a small
//! register map) started by the test.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::{
    collections::BTreeMap,
    future,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

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
