//! A virtual device: sensors computed from the time since start (tokio time, so the
//! simulator's clock drives them) and a seeded random stream; actuators hold what was written.

use std::collections::BTreeMap;

use ke_core::Entropy;
use tokio::time::Instant;

use super::{Driver, DriverError, find};
use crate::property::{Kind, Property};

/// Simulated sensors and actuators.
#[derive(Debug)]
pub struct VirtualDevice {
    props: Vec<Property>,
    start: Instant,
    entropy: Entropy,
    /// Actuator values and counters, by property.
    state: BTreeMap<String, String>,
}

impl VirtualDevice {
    /// A device with `props` (Modbus kinds are refused by [`Self::new`]'s caller).
    pub fn new(props: Vec<Property>, entropy: Entropy) -> Self {
        let state = props
            .iter()
            .filter_map(|p| match &p.kind {
                Kind::Actuator(v) => Some((p.name.clone(), v.clone())),
                Kind::Counter(n) => Some((p.name.clone(), n.to_string())),
                _ => None,
            })
            .collect();
        Self {
            props,
            start: Instant::now(),
            entropy,
            state,
        }
    }

    fn value(&mut self, p: &Property) -> Result<String, DriverError> {
        let t = self.start.elapsed().as_secs_f64();
        Ok(match &p.kind {
            Kind::Const(v) => v.clone(),
            Kind::Sine {
                base,
                amplitude,
                period_s,
            } => format!(
                "{:.2}",
                base + amplitude * (std::f64::consts::TAU * t / period_s).sin()
            ),
            Kind::Random { min, max } => {
                // 53 random bits → [0, 1).
                let unit = (self.entropy.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
                format!("{:.2}", min + (max - min) * unit)
            }
            Kind::Counter(_) => {
                let slot = self.state.entry(p.name.clone()).or_default();
                let now: i64 = slot.parse().unwrap_or(0);
                *slot = (now + 1).to_string();
                now.to_string()
            }
            Kind::Actuator(_) => self.state.get(&p.name).cloned().unwrap_or_default(),
            _ => {
                return Err(DriverError::Device(format!(
                    "{} is a Modbus property",
                    p.name
                )));
            }
        })
    }
}

impl Driver for VirtualDevice {
    fn properties(&self) -> &[Property] {
        &self.props
    }

    async fn read(&mut self, name: &str) -> Result<String, DriverError> {
        let p = find(&self.props, name)?.clone();
        self.value(&p)
    }

    async fn write(&mut self, name: &str, value: &str) -> Result<(), DriverError> {
        let p = find(&self.props, name)?;
        if !p.kind.writable() {
            return Err(DriverError::ReadOnly(name.to_owned()));
        }
        self.state.insert(name.to_owned(), value.to_owned());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use ke_core::Seed;

    use super::*;

    fn device(seed: u64) -> VirtualDevice {
        let props = [
            "t=const:7",
            "n=counter:5",
            "a=actuator:off",
            "r=random:10:20",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        VirtualDevice::new(props, Entropy::seeded(Seed(seed), "mapper"))
    }

    #[tokio::test]
    async fn sensors_read_actuators_hold_what_was_written() {
        let mut d = device(1);
        assert_eq!(d.read("t").await.unwrap(), "7");
        assert_eq!(d.read("n").await.unwrap(), "5");
        assert_eq!(d.read("n").await.unwrap(), "6");
        assert_eq!(d.read("a").await.unwrap(), "off");
        d.write("a", "on").await.unwrap();
        assert_eq!(d.read("a").await.unwrap(), "on");
        assert!(matches!(
            d.write("t", "1").await,
            Err(DriverError::ReadOnly(_))
        ));
        assert!(matches!(d.read("x").await, Err(DriverError::Unknown(_))));
        let r: f64 = d.read("r").await.unwrap().parse().unwrap();
        assert!((10.0..=20.0).contains(&r));
        let again: f64 = device(1).read("r").await.unwrap().parse().unwrap();
        assert_eq!(r, again, "same seed, same readings");
    }
}
