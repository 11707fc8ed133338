//! The fleet simulator (issue #4): in one process, turmoil runs the embedded API server and
//! cloudcore on cloud hosts and thousands of real edgecores on a few site hosts, drives a
//! scenario's workload and fault timeline in simulated time, checks safety and liveness, and
//! returns an [`outcome::Outcome`].

pub mod outcome;
