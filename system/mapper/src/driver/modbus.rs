//! Modbus TCP: each property is a holding or input register (an unsigned 16-bit integer, as
//! decimal text) or a coil or discrete input (`true`/`false`). The connection comes from the
//! caller (a `ke_net::Transport`), so it is made the same
//! way as every other socket in the system. A failed request marks the device `unhealthy`
//! (see [`crate::run`]); the connection is not re-dialled (restart the mapper).

use tokio_modbus::{
    client::{Context, Reader as _, Writer as _},
    slave::Slave,
};

use super::{Driver, DriverError, find};
use crate::property::{Kind, Property};

/// A Modbus TCP device.
pub struct ModbusDevice {
    props: Vec<Property>,
    ctx: Context,
}

impl std::fmt::Debug for ModbusDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModbusDevice")
            .field("props", &self.props)
            .finish_non_exhaustive()
    }
}

impl ModbusDevice {
    /// Over an open connection (`stream`) to the device, unit id `unit`.
    pub fn attach<S>(props: Vec<Property>, stream: S, unit: u8) -> Self
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + std::fmt::Debug + 'static,
    {
        let ctx = tokio_modbus::client::tcp::attach_slave(stream, Slave(unit));
        Self { props, ctx }
    }
}

fn device_err(e: impl std::fmt::Display) -> DriverError {
    DriverError::Device(e.to_string())
}

fn first<T: Copy>(v: &[T]) -> Result<T, DriverError> {
    v.first().copied().ok_or_else(|| device_err("empty answer"))
}

impl Driver for ModbusDevice {
    fn properties(&self) -> &[Property] {
        &self.props
    }

    async fn read(&mut self, name: &str) -> Result<String, DriverError> {
        let kind = find(&self.props, name)?.kind.clone();
        let ctx = &mut self.ctx;
        let text = match kind {
            Kind::Holding(a) => first(
                &ctx.read_holding_registers(a, 1)
                    .await
                    .map_err(device_err)?
                    .map_err(device_err)?,
            )?
            .to_string(),
            Kind::Input(a) => first(
                &ctx.read_input_registers(a, 1)
                    .await
                    .map_err(device_err)?
                    .map_err(device_err)?,
            )?
            .to_string(),
            Kind::Coil(a) => first(
                &ctx.read_coils(a, 1)
                    .await
                    .map_err(device_err)?
                    .map_err(device_err)?,
            )?
            .to_string(),
            Kind::Discrete(a) => first(
                &ctx.read_discrete_inputs(a, 1)
                    .await
                    .map_err(device_err)?
                    .map_err(device_err)?,
            )?
            .to_string(),
            _ => return Err(device_err(format!("{name} is not a Modbus property"))),
        };
        Ok(text)
    }

    async fn write(&mut self, name: &str, value: &str) -> Result<(), DriverError> {
        let kind = find(&self.props, name)?.kind.clone();
        let bad = |why| DriverError::BadValue {
            name: name.to_owned(),
            value: value.to_owned(),
            why,
        };
        let ctx = &mut self.ctx;
        match kind {
            Kind::Holding(a) => {
                let word: u16 = value
                    .trim()
                    .parse()
                    .map_err(|_| bad("want an integer 0-65535"))?;
                ctx.write_single_register(a, word)
                    .await
                    .map_err(device_err)?
                    .map_err(device_err)
            }
            Kind::Coil(a) => {
                let bit = match value.trim() {
                    "true" | "1" | "on" => true,
                    "false" | "0" | "off" => false,
                    _ => return Err(bad("want true or false")),
                };
                ctx.write_single_coil(a, bit)
                    .await
                    .map_err(device_err)?
                    .map_err(device_err)
            }
            _ => Err(DriverError::ReadOnly(name.to_owned())),
        }
    }
}
