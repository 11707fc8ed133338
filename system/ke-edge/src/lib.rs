//! edgecore as a library (issue #3, being built).
//!
//! - [`certificate`]: certificate bootstrap from a join token.
//! - [`edgehub`]: the websocket client to CloudHub: heartbeat, reconnect, upstream rate limit.
//! - [`metamanager`]: the SQLite store of everything received, persisted before the ACK.
//! - [`edged`]: pod runtimes (the `process` runtime).
//! - [`config`]: `edgecore.yaml` (KubeEdge's `EdgeCore` v1alpha2 keys), defaults and validation.
pub mod certificate;
pub mod config;
pub mod edged;
pub mod edgehub;
pub mod metamanager;
