//! Embedded Kubernetes-compatible API server.
//!
//! Real `kubectl` and kube-rs work against it: discovery, OpenAPI, CRUD with optimistic
//! concurrency, finalizers, patches, selectors, paging and watches with bookmarks.
//!
//! - [`server`]: TLS serving over the transport seam; start and graceful shutdown.
//! - [`in_process`]: a `kube::Client` for the same process that calls the router directly.
//! - [`http`]: routing, auth, encoding, watch streams, tables, metrics.
//! - [`api`]: Kubernetes semantics over the store.
//! - [`auth`]: bearer tokens.
//! - [`pki`]: CA, serving certificate, admin token, kubeconfig.
//! - [`registry`]: which resources are served.
//! - [`schema`]: OpenAPI definitions of the built-in kinds (from k8s-openapi) and their patch
//!   metadata (strategic-merge keys).
//! - [`openapi`]: the `/openapi/v2` and `/openapi/v3` documents kubectl reads.
//! - [`store`]: SQLite-backed object store with the in-memory watch window.
//! - [`selector`]: label and field selectors.
//! - [`patch`]: JSON patch, JSON merge patch and strategic merge patch.
//! - [`protobuf`]: decoding of Kubernetes protobuf request bodies into JSON.
//! - [`streams`]: the node-proxy seam ([`streams::PodStreams`]) behind `pods/log` and
//!   `pods/exec`.
pub mod api;
pub mod auth;
pub mod http;
pub mod in_process;
pub mod openapi;
pub mod patch;
pub mod pki;
pub mod protobuf;
pub mod registry;
pub mod schema;
pub mod selector;
pub mod server;
pub mod store;
pub mod streams;

pub use server::{Deps, Server, ServerConfig};
