//! Embedded Kubernetes-compatible API server.
//!
//! - [`registry`]: which resources are served.
//! - [`schema`]: OpenAPI definitions of the built-in kinds (from k8s-openapi) and their patch
//!   metadata (strategic-merge keys).
//! - [`openapi`]: the `/openapi/v2` and `/openapi/v3` documents kubectl reads.
//! - [`patch`]: JSON patch, JSON merge patch and strategic merge patch.
pub mod openapi;
pub mod patch;
pub mod registry;
pub mod schema;
