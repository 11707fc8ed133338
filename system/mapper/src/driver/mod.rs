//! The [`Driver`] seam: how a mapper reads and writes a device's properties.
//!
//! - [`virtual_device`]: simulated sensors and actuators.
//! - [`modbus`]: Modbus TCP.

pub mod modbus;
pub mod virtual_device;

use crate::property::Property;

/// Why a read or write failed.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The property is not one of the device's.
    #[error("no property {0:?}")]
    Unknown(String),
    /// The property cannot be written.
    #[error("property {0:?} is read-only")]
    ReadOnly(String),
    /// The value does not fit the property.
    #[error("value {value:?} does not fit property {name:?}: {why}")]
    BadValue {
        /// The property.
        name: String,
        /// The value.
        value: String,
        /// What is wrong.
        why: &'static str,
    },
    /// The device did not answer, or answered with an exception. Retryable.
    #[error("device access failed: {0}")]
    Device(String),
}

/// Reads and writes one device's properties.
pub trait Driver: Send {
    /// The properties, in report order.
    fn properties(&self) -> &[Property];

    /// The current value of `name`, as the twin's string.
    fn read(&mut self, name: &str) -> impl Future<Output = Result<String, DriverError>> + Send;

    /// Sets `name` to `value`.
    fn write(
        &mut self,
        name: &str,
        value: &str,
    ) -> impl Future<Output = Result<(), DriverError>> + Send;
}

/// The property called `name`.
pub(crate) fn find<'a>(props: &'a [Property], name: &str) -> Result<&'a Property, DriverError> {
    props
        .iter()
        .find(|p| p.name == name)
        .ok_or_else(|| DriverError::Unknown(name.to_owned()))
}
