//! cloudcore as a library (issue #3, being built).
//!
//! - [`certs`]: the KubeEdge CA, join tokens, edge certificate signing and the certificate
//!   server (`/ca.crt`, `/edge.crt`, port 10002).
//! - [`cloudhub`]: the websocket hub (port 10000): mTLS sessions, keepalive, per-node queues,
//!   ACK and resend.
//! - [`cloudstream`]: the stream tunnel (port 10004) for `kubectl logs`/`exec` of edge pods.
//! - [`config`]: `cloudcore.yaml` (KubeEdge's `CloudCore` v1alpha1 keys), defaults and validation.
//! - [`daemon`]: cloudcore assembled from its modules.
//! - [`devicecontroller`]: the device CRDs, and device twins and membership (run by the
//!   EdgeController's watches and workers).
//! - [`edgecontroller`]: objects down to their nodes, node requests up.
pub mod certs;
pub mod cloudhub;
pub mod cloudstream;
pub mod config;
pub mod daemon;
pub mod devicecontroller;
pub mod edgecontroller;
