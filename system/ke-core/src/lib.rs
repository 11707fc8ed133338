//! Pure types shared by every edgefleet crate. No tokio, no I/O.
//!
//! - [`clock`]: the wall-clock seam (`Clock`) used for Kubernetes timestamps.
//! - [`config`]: shared YAML configuration loading and errors.
//! - [`entropy`]: seeded, named random streams (`Seed`, `Entropy`).
//! - [`limits`]: every bound of the system in one place.

pub mod clock;
pub mod config;
pub mod deps;
pub mod entropy;
pub mod limits;

pub use clock::{Clock, FixedClock, SystemClock};
pub use deps::Deps;
pub use entropy::{Entropy, Seed};
