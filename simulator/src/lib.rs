//! The fleet simulator (issue #4): in one process, turmoil runs the embedded API server and
//! cloudcore on cloud hosts and thousands of real edgecores on a few site hosts, drives a
//! scenario's workload and fault timeline in simulated time, checks safety and liveness, and
//! returns an [`outcome::Outcome`].
//!
//! - [`scenario`]: the scenario files.
//! - [`fleet`]: the hosts and what they share.
//! - [`node`]: one virtual edge node and its fault switch.
//! - [`mapper`]: a node's virtual mapper on DeviceTwin's in-memory bus; [`devices`]: what
//!   the mappers reported and the driver desired, for the device checks.
//! - [`workload`]: the driver (phases, convergence, safety verdicts).
//! - [`trace`]: event log and digest, pending writes, latency, safety observations.
//! - [`run`]: the run loop and fault timeline; [`assemble`]: the outcome.

// turmoil seeds tokio's RNG (which decides `select!` order) only under tokio_unstable.
#[cfg(not(tokio_unstable))]
compile_error!("build with --cfg tokio_unstable (.cargo/config.toml sets it)");

pub mod assemble;
pub mod devices;
pub mod fleet;
pub mod mapper;
pub mod node;
pub mod outcome;
pub mod run;
pub mod safety;
pub mod scenario;
pub mod trace;
pub mod workload;

pub use run::{Progress, RunOptions, run};
pub use scenario::Scenario;
