//! Certificates and join tokens (KubeEdge `pkg/security`, `cloudhub/servers/httpserver`;
//! wire reference §2.6).
//!
//! - [`authority`]: [`CertAuthority`], the cluster CA (ECDSA P-256, CN `KubeEdge`, 100 years),
//!   loaded from or saved to `rootCA.crt`/`rootCA.key`; CloudCore's serving certificate; edge
//!   CSR signing (CN `system:node:<node>`, O `system:nodes`, clientAuth); verification of the
//!   client certificate an edge presents to rotate.
//! - [`token`]: [`JoinToken`], `<hex sha256(CA DER)>.<HS256 JWT>` keyed by the CA key's SEC1
//!   DER, `exp` = now + 2 × refresh interval.
//! - [`server`]: [`serve_certs`], the HTTPS server of `/ca.crt` and `/edge.crt` (port 10002)
//!   over the `ke-net` transport seam.
//! - [`tls`]: the server's TLS configuration (`RequestClientCert` semantics) and the rustls
//!   time source backed by the [`ke_core::Clock`] seam.
//! - `keys`: P-256 keys in PKCS#8 and SEC1 (KubeEdge's `EC PRIVATE KEY`) form.
//!
//! Key material always comes from ring's system randomness, never from a seeded stream: a
//! simulation run is reproducible in its events, not in its key bytes.

pub mod authority;
mod files;
mod keys;
pub mod server;
pub mod tls;
pub mod token;

pub use authority::{
    CA_CERT_FILE, CA_KEY_FILE, CertAuthority, CsrError, EDGE_CERT_VALIDITY_DAYS, IssuedCert,
    NODE_CN_PREFIX, NODES_ORGANIZATION, PeerError,
};
pub use keys::KeyError;
pub use server::{CertMetrics, CertServer, serve_certs};
pub use tls::{ClockTime, cert_server_acceptor, unix_time};
pub use token::{JoinToken, TOKEN_REFRESH_DEFAULT, TokenError, ca_cert_hash, verify_jwt};

use std::path::PathBuf;

/// Default port of the certificate server (`cloudHub.https.port`).
pub const CERT_SERVER_PORT: u16 = 10002;

/// Failures preparing or storing certificates. None is retryable without operator action.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("cannot use {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Certificate generation or parsing failed.
    #[error("certificate error in {what}")]
    Cert {
        /// What was being made.
        what: &'static str,
        /// The cause.
        #[source]
        source: rcgen::Error,
    },
    /// A private key could not be made or read.
    #[error("unusable private key ({what})")]
    Key {
        /// Which key.
        what: &'static str,
        /// The cause.
        #[source]
        source: KeyError,
    },
    /// The CA certificate or key is unusable.
    #[error("unusable CA: {0}")]
    BadCa(&'static str),
    /// A TLS configuration could not be built.
    #[error("TLS configuration failed")]
    Tls(#[source] rustls::Error),
}
