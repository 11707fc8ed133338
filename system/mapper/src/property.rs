//! Property specifications: `NAME=KIND[:ARG…]` on the command line.
//!
//! Virtual device kinds: `const:V` (a fixed reading), `sine:BASE:AMPLITUDE:PERIOD_S`,
//! `random:MIN:MAX` (uniform, from the run's seed), `counter:START` (+1 per read),
//! `actuator:INITIAL` (writable; reads back what was last written).
//! Modbus kinds: `holding:ADDR` (read/write register), `input:ADDR` (read-only register),
//! `coil:ADDR` (read/write bit), `discrete:ADDR` (read-only bit).

use ke_proto::twin::valid_key;

/// What a property is.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// A fixed reading.
    Const(String),
    /// `base + amplitude * sin(2π t / period)`.
    Sine {
        /// Centre value.
        base: f64,
        /// Half the swing.
        amplitude: f64,
        /// Seconds per cycle.
        period_s: f64,
    },
    /// Uniform in `[min, max]`.
    Random {
        /// Lowest value.
        min: f64,
        /// Highest value.
        max: f64,
    },
    /// Counts up by one per read.
    Counter(i64),
    /// Writable; reads what was last written.
    Actuator(String),
    /// Modbus holding register (read/write).
    Holding(u16),
    /// Modbus input register (read-only).
    Input(u16),
    /// Modbus coil (read/write).
    Coil(u16),
    /// Modbus discrete input (read-only).
    Discrete(u16),
}

impl Kind {
    /// True if a desired value can be written to it.
    pub fn writable(&self) -> bool {
        matches!(self, Self::Actuator(_) | Self::Holding(_) | Self::Coil(_))
    }

    /// The twin value type it reports (`metadata.type`).
    pub fn value_type(&self) -> &'static str {
        match self {
            Self::Const(_) | Self::Actuator(_) => "string",
            Self::Sine { .. } | Self::Random { .. } => "float",
            Self::Counter(_) | Self::Holding(_) | Self::Input(_) => "int",
            Self::Coil(_) | Self::Discrete(_) => "boolean",
        }
    }

    /// True for the Modbus kinds.
    pub fn is_modbus(&self) -> bool {
        matches!(
            self,
            Self::Holding(_) | Self::Input(_) | Self::Coil(_) | Self::Discrete(_)
        )
    }
}

/// One property: its twin name and kind.
#[derive(Debug, Clone, PartialEq)]
pub struct Property {
    /// The twin (property) name.
    pub name: String,
    /// What it is.
    pub kind: Kind,
}

/// A specification that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("property {spec:?}: {why}")]
pub struct SpecError {
    /// The text given.
    pub spec: String,
    /// What is wrong.
    pub why: String,
}

impl std::str::FromStr for Property {
    type Err = SpecError;

    fn from_str(spec: &str) -> Result<Self, SpecError> {
        let err = |why: String| SpecError {
            spec: spec.to_owned(),
            why,
        };
        let (name, rest) = spec
            .split_once('=')
            .ok_or_else(|| err("want NAME=KIND[:ARG...]".to_owned()))?;
        if !valid_key(name) {
            return Err(err(
                "the name must be 1-128 of [a-zA-Z0-9-_.,:/@#]".to_owned()
            ));
        }
        let mut parts = rest.split(':');
        let kind = parts.next().unwrap_or_default();
        let args: Vec<&str> = parts.collect();
        Ok(Self {
            name: name.to_owned(),
            kind: kind_of(kind, &args).map_err(err)?,
        })
    }
}

/// `KIND` with its arguments.
fn kind_of(kind: &str, args: &[&str]) -> Result<Kind, String> {
    let num = |i: usize| -> Result<f64, String> {
        args.get(i)
            .and_then(|a| a.parse::<f64>().ok())
            .filter(|v| v.is_finite())
            .ok_or_else(|| format!("argument {} of {kind} must be a number", i + 1))
    };
    let want = |n: usize| -> Result<(), String> {
        (args.len() == n)
            .then_some(())
            .ok_or_else(|| format!("{kind} takes {n} argument(s)"))
    };
    Ok(match kind {
        "const" | "actuator" => {
            want(1)?;
            let v = args[0].to_owned();
            if v.is_empty() {
                return Err("the value must not be empty".to_owned());
            }
            if kind == "const" {
                Kind::Const(v)
            } else {
                Kind::Actuator(v)
            }
        }
        "sine" => {
            want(3)?;
            let period_s = num(2)?;
            if period_s <= 0.0 {
                return Err("the period must be positive".to_owned());
            }
            Kind::Sine {
                base: num(0)?,
                amplitude: num(1)?,
                period_s,
            }
        }
        "random" => {
            want(2)?;
            let (min, max) = (num(0)?, num(1)?);
            if min > max {
                return Err("min is above max".to_owned());
            }
            Kind::Random { min, max }
        }
        "counter" => {
            want(1)?;
            Kind::Counter(
                args[0]
                    .parse()
                    .map_err(|_| "counter wants an integer".to_owned())?,
            )
        }
        "holding" | "input" | "coil" | "discrete" => {
            want(1)?;
            let a: u16 = args[0]
                .parse()
                .map_err(|_| format!("{kind} wants a register address 0-65535"))?;
            match kind {
                "holding" => Kind::Holding(a),
                "input" => Kind::Input(a),
                "coil" => Kind::Coil(a),
                _ => Kind::Discrete(a),
            }
        }
        other => return Err(format!("unknown kind {other:?}")),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[test]
    fn specs_parse_and_bad_ones_say_why() {
        let p: Property = "temp=sine:20:5:60".parse().unwrap();
        assert_eq!(p.name, "temp");
        assert!(matches!(p.kind, Kind::Sine { period_s, .. } if period_s == 60.0));
        let p: Property = "setpoint=holding:3".parse().unwrap();
        assert_eq!(p.kind, Kind::Holding(3));
        assert!(p.kind.writable());
        assert!(!"t=input:1".parse::<Property>().unwrap().kind.writable());
        for (bad, why) in [
            ("temp", "NAME=KIND"),
            ("a b=const:1", "name"),
            ("t=sine:1:2", "takes 3"),
            ("t=sine:1:2:0", "positive"),
            ("t=random:5:1", "min is above max"),
            ("t=holding:70000", "address"),
            ("t=laser:1", "unknown kind"),
        ] {
            let e = bad.parse::<Property>().unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
