//! cloudcore as a library (issue #3, being built).
//!
//! - [`certs`]: the KubeEdge CA, join tokens, edge certificate signing and the certificate
//!   server (`/ca.crt`, `/edge.crt`, port 10002).
//! - [`cloudhub`]: the websocket hub (port 10000): mTLS sessions, keepalive, per-node queues,
//!   ACK and resend.
pub mod certs;
pub mod cloudhub;
