//! edgecore as a library (issue #3, being built).
//!
//! - [`certificate`]: certificate bootstrap from a join token.
//! - [`edgehub`]: the websocket client to CloudHub: heartbeat, reconnect, upstream rate limit.
//! - [`edgestream`]: the tunnel to CloudStream for `kubectl logs`/`exec` of this node's pods.
//! - [`metamanager`]: the SQLite store of everything received, persisted before the ACK.
//! - [`edged`]: pod runtimes (the `process` runtime).
//! - [`config`]: `edgecore.yaml` (KubeEdge's `EdgeCore` v1alpha2 keys), defaults and validation.
//! - [`node`]: the node agent: inventory and registration on connect, node status, lease,
//!   pod status and final pod deletes upstream.
//! - [`devicetwin`]: device twins (SQLite), mapper requests, durable in-order reports to the
//!   cloud.
//! - [`eventbus`]: the MQTT side of DeviceTwin (a rumqttc client, or an in-memory bus).
//! - [`daemon`]: [`daemon::EdgeCore`], which assembles all of the above from an
//!   `edgecore.yaml` and runs it until shutdown.
pub mod certificate;
pub mod config;
pub mod daemon;
pub mod devicetwin;
pub mod edged;
pub mod edgehub;
pub mod edgestream;
pub mod eventbus;
pub mod metamanager;
pub mod node;
