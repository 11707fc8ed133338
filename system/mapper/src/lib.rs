//! Device mappers: programs that sit between a device and edgecore's DeviceTwin, on the node's
//! MQTT broker, with KubeEdge's topics and payloads (wire reference §6).
//!
//! - [`property`]: what a mapper is told about each device property on its command line.
//! - [`driver`]: the [`Driver`] seam (read a property, write one) and its two protocols:
//!   [`driver::virtual_device`] (simulated sensors and actuators, seeded) and
//!   [`driver::modbus`] (Modbus TCP registers and coils through `tokio-modbus`).
//! - [`run`]: the loop: report every property's actual value every period on
//!   `…/twin/update`, apply what arrives on `…/twin/update/delta` to writable properties and
//!   report the result at once, report the device state (`online`, or `unhealthy` while the
//!   device does not answer).

pub mod driver;
pub mod property;
pub mod run;

pub use driver::Driver;
