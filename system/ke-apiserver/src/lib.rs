//! Embedded Kubernetes-compatible API server.
//!
//! - [`registry`]: which resources are served.
pub mod registry;
