//! Certificate bootstrap from a join token, and rotation (KubeEdge
//! `edge/pkg/edgehub/certificate`; wire reference §2.6).
//!
//! [`bootstrap`]: if valid credentials of this node are stored, they are reused without
//! touching the network. Otherwise `GET /ca.crt` without verifying the server (the answer is
//! trusted only if its SHA-256 equals the token's prefix), a new P-256 key and a CSR with
//! subject `C=CN, O=system:nodes, L=Hangzhou, ST=Zhejiang, CN=system:node:<node>`, then
//! `GET /edge.crt` (CSR in the body, `Authorization: Bearer <jwt>`, `NodeName: <node>`) with
//! the server verified against the fetched CA. Nothing is written until the issued
//! certificate checked out. [`rotate`]: the same `/edge.crt` request over mutual TLS with the
//! current certificate instead of a token.
//!
//! - `http`: the one-request HTTP/1.1 client over TLS over the transport seam.
//! - `tls`: client TLS configurations (trust-on-first-download, verified, mutual).
//! - `store`: files, and the checks deciding whether stored credentials are usable.

mod http;
mod store;
mod tls;

use ke_core::Clock;
use ke_net::Transport;
use rcgen::{CertificateParams, DistinguishedName, DnType, DnValue, KeyPair, PublicKeyData};
use rustls::{
    ClientConfig,
    pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer},
};
use sha2::{Digest, Sha256};
use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
};
use time::OffsetDateTime;

pub use http::{REQUEST_TIMEOUT, RESPONSE_BYTES_MAX};

/// CN prefix of a node certificate.
pub const NODE_CN_PREFIX: &str = "system:node:";
/// Organization of a node certificate.
pub const NODES_ORGANIZATION: &str = "system:nodes";

/// Why the node has no credentials.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No usable stored credentials and no token to get new ones.
    #[error("no join token given and no usable certificate stored")]
    NoToken,
    /// The token is not `<64 hex digits>.<jwt>`.
    #[error("malformed join token: {0}")]
    MalformedToken(&'static str),
    /// The downloaded CA is not the one the token was made for (wrong cluster, or an
    /// impostor server). Not retryable.
    #[error("CA hash does not match the join token (token {token}, server CA {server})")]
    CaHashMismatch {
        /// Hash in the token.
        token: String,
        /// Hash of the CA the server sent.
        server: String,
    },
    /// The downloaded CA certificate does not parse.
    #[error("the certificate server sent an unusable CA certificate: {0}")]
    BadCa(String),
    /// The server name is neither a DNS name nor an IP address.
    #[error("invalid server name {0:?}")]
    InvalidServerName(String),
    /// The TCP connection failed. Retryable.
    #[error("cannot connect to the certificate server at {addr}")]
    Connect {
        /// Server address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The TLS handshake failed (for verified requests: the server's certificate is not
    /// from the CA). Retryable.
    #[error("TLS handshake with the certificate server at {addr} failed")]
    Handshake {
        /// Server address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// HTTP failed. Retryable.
    #[error("HTTP exchange with the certificate server failed")]
    Http(#[source] hyper::Error),
    /// No answer in time. Retryable.
    #[error("certificate server at {addr} did not answer {path} in time")]
    Timeout {
        /// Server address.
        addr: SocketAddr,
        /// Request path.
        path: &'static str,
    },
    /// The server answered with an error status (401: token refused or expired; 403:
    /// certificate of another node; 400: bad request).
    #[error("certificate server refused {path}: HTTP {status}: {reason}")]
    Refused {
        /// Request path.
        path: &'static str,
        /// HTTP status.
        status: u16,
        /// The server's reason.
        reason: String,
    },
    /// The answer is unusable (e.g. the issued certificate is not for this node or key).
    #[error("certificate server sent an unusable answer: {0}")]
    BadResponse(String),
    /// Stored credentials are unusable (missing, expired, for another node, key mismatch).
    #[error("stored credentials unusable: {0}")]
    Stored(String),
    /// A file could not be read or written.
    #[error("cannot use {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Key or CSR generation failed.
    #[error("cannot generate the key or CSR")]
    Key(#[source] rcgen::Error),
    /// A TLS configuration could not be built.
    #[error("TLS configuration failed")]
    Tls(#[source] rustls::Error),
}

impl Error {
    /// Whether trying again later may succeed (network trouble or a server error).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Connect { .. }
            | Self::Handshake { .. }
            | Self::Http(_)
            | Self::Timeout { .. } => true,
            Self::Refused { status, .. } => *status >= 500,
            _ => false,
        }
    }
}

/// Where the node's credentials live (KubeEdge: `tlsCaFile`, `tlsCertFile`,
/// `tlsPrivateKeyFile`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertPaths {
    /// CA certificate (PEM).
    pub ca: PathBuf,
    /// Node certificate (PEM).
    pub cert: PathBuf,
    /// Node key (PEM, PKCS#8, mode 0600).
    pub key: PathBuf,
}

impl CertPaths {
    /// `dir/rootCA.crt`, `dir/server.crt`, `dir/server.key`.
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            ca: dir.join("rootCA.crt"),
            cert: dir.join("server.crt"),
            key: dir.join("server.key"),
        }
    }
}

/// A node's credentials: the CA, its certificate and key.
pub struct EdgeCredentials {
    /// The node they belong to.
    pub node: String,
    /// CA certificate.
    pub ca_der: CertificateDer<'static>,
    /// Node certificate (CN `system:node:<node>`).
    pub cert_der: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
    /// Start of the certificate's validity.
    pub not_before: OffsetDateTime,
    /// End of the certificate's validity.
    pub not_after: OffsetDateTime,
    /// True when loaded from disk rather than freshly issued.
    pub reused: bool,
}

impl std::fmt::Debug for EdgeCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeCredentials")
            .field("node", &self.node)
            .field("not_after", &self.not_after)
            .field("reused", &self.reused)
            .finish_non_exhaustive()
    }
}

impl EdgeCredentials {
    /// The node's private key.
    pub fn key(&self) -> PrivateKeyDer<'static> {
        self.key.clone_key()
    }

    /// Mutual-TLS client configuration for CloudHub: verifies the server against the CA,
    /// presents this node's certificate; certificate times judged by `clock`.
    pub fn client_config(&self, clock: Arc<dyn Clock>) -> Result<Arc<ClientConfig>, Error> {
        tls::verified(
            &self.ca_der,
            Some((vec![self.cert_der.clone()], self.key())),
            clock,
            &[],
        )
    }

    /// Whether `fraction` (e.g. 0.7–0.9, jittered by the caller) of the certificate's
    /// lifetime has passed: KubeEdge rotates then.
    pub fn rotation_due(&self, clock: &dyn Clock, fraction: f64) -> bool {
        let life = self.not_after - self.not_before;
        clock.now_utc() >= self.not_before + life * fraction.clamp(0.0, 1.0)
    }
}

/// Loads and checks the stored credentials of `node` (no network).
pub fn load(paths: &CertPaths, node: &str, clock: &dyn Clock) -> Result<EdgeCredentials, Error> {
    store::load(paths, node, clock)
}

/// The `(CA hash, JWT)` halves of a join token.
fn split_token(token: &str) -> Result<(String, &str), Error> {
    let (hash, jwt) = token
        .trim()
        .split_once('.')
        .ok_or(Error::MalformedToken("no '.' after the CA hash"))?;
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::MalformedToken("CA hash is not 64 hex digits"));
    }
    if jwt.split('.').count() != 3 {
        return Err(Error::MalformedToken(
            "JWT is not three dot-separated parts",
        ));
    }
    Ok((hash.to_ascii_lowercase(), jwt))
}

fn sha256_hex(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

/// Gets this node's credentials: reuses stored ones when they are valid for `node` (and, with
/// a token, come from the token's CA); otherwise joins with `token` through the certificate
/// server at `server` (whose certificate must name `server_name`) and stores the result.
pub async fn bootstrap<T: Transport>(
    transport: &T,
    server: SocketAddr,
    server_name: &str,
    token: &str,
    node: &str,
    paths: &CertPaths,
    clock: Arc<dyn Clock>,
) -> Result<EdgeCredentials, Error> {
    let token = token.trim();
    let parsed = if token.is_empty() {
        None
    } else {
        Some(split_token(token)?)
    };
    match store::load(paths, node, &*clock) {
        Ok(c)
            if parsed
                .as_ref()
                .is_none_or(|(h, _)| *h == sha256_hex(&c.ca_der)) =>
        {
            tracing::info!(%node, not_after = %c.not_after, "using stored edge certificate");
            return Ok(c);
        }
        Ok(_) => tracing::info!(%node, "stored certificate is from another CA; joining again"),
        Err(e) => tracing::info!(%node, reason = %e, "no usable stored certificate; joining"),
    }
    let (hash, jwt) = parsed.ok_or(Error::NoToken)?;
    // One connection for both requests: it is opened trusting any server, and once the CA is
    // downloaded and matches the token, the certificate the server showed in that handshake
    // must verify against the CA for `server_name`, as the second handshake would have
    // checked (the handshake's signature already proved the server holds that certificate's
    // key). That saves a TCP and TLS handshake per join, two round trips on a slow link.
    let mut conn = http::open(
        transport,
        tls::unverified(clock.clone())?,
        server,
        server_name,
    )
    .await?;
    let ca_der = fetch_ca(&mut conn, &hash).await?;
    tls::verify_server_chain(&ca_der, conn.chain(), server_name, &*clock).map_err(|e| {
        Error::Handshake {
            addr: conn.addr(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        }
    })?;
    let auth = Some(format!("Bearer {jwt}"));
    let target = Target {
        server,
        server_name,
        node,
    };
    let creds = request_cert(
        transport,
        &target,
        ca_der,
        auth,
        Client::Reuse(Box::new(conn)),
        clock,
    )
    .await?;
    tracing::info!(%node, not_after = %creds.0.not_after, "edge certificate issued");
    store::save(paths, &creds.0, &creds.1)?;
    Ok(creds.0)
}

/// Renews this node's certificate over mutual TLS with the current (valid) one: a new key,
/// `GET /edge.crt` without a token, then the new key and certificate replace the old ones.
pub async fn rotate<T: Transport>(
    transport: &T,
    server: SocketAddr,
    server_name: &str,
    node: &str,
    paths: &CertPaths,
    clock: Arc<dyn Clock>,
) -> Result<EdgeCredentials, Error> {
    let current = store::load(paths, node, &*clock)?;
    let client = Client::Mtls(vec![current.cert_der.clone()], current.key());
    let target = Target {
        server,
        server_name,
        node,
    };
    let (creds, key_pem) = request_cert(
        transport,
        &target,
        current.ca_der.clone(),
        None,
        client,
        clock,
    )
    .await?;
    store::save(paths, &creds, &key_pem)?;
    tracing::info!(%node, not_after = %creds.not_after, "edge certificate rotated");
    Ok(creds)
}

/// Downloads `/ca.crt` on `conn` (whose server is not verified yet) and accepts it only if
/// its hash is `hash` (the token prefix).
async fn fetch_ca<S: ke_net::Stream>(
    conn: &mut http::Conn<S>,
    hash: &str,
) -> Result<CertificateDer<'static>, Error> {
    let get = http::Get {
        path: "/ca.crt",
        headers: Vec::new(),
        body: Vec::new(),
    };
    let der = conn.get(get).await?;
    let got = sha256_hex(&der);
    if got != hash {
        return Err(Error::CaHashMismatch {
            token: hash.to_owned(),
            server: got,
        });
    }
    x509_parser::parse_x509_certificate(&der).map_err(|e| Error::BadCa(e.to_string()))?;
    Ok(CertificateDer::from(der.to_vec()))
}

/// How `/edge.crt` reaches the server.
enum Client<S: ke_net::Stream> {
    /// On the join's connection, whose server was verified against the CA; a new verified
    /// connection if the server closed it.
    Reuse(Box<http::Conn<S>>),
    /// A new connection presenting this chain and key (mutual TLS: rotation).
    Mtls(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>),
}

/// Where a certificate request goes and for whom.
struct Target<'a> {
    server: SocketAddr,
    server_name: &'a str,
    node: &'a str,
}

/// A fresh key and a CSR for `node`: `(key, CSR DER)`.
fn key_and_csr(node: &str) -> Result<(KeyPair, Vec<u8>), Error> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(Error::Key)?;
    let mut dn = DistinguishedName::new();
    // Go's order (C, O, L, ST, CN) and string type (PrintableString where possible).
    let cn = format!("{NODE_CN_PREFIX}{node}");
    for (ty, v) in [
        (DnType::CountryName, "CN"),
        (DnType::OrganizationName, NODES_ORGANIZATION),
        (DnType::LocalityName, "Hangzhou"),
        (DnType::StateOrProvinceName, "Zhejiang"),
        (DnType::CommonName, cn.as_str()),
    ] {
        let value = v
            .try_into()
            .map(DnValue::PrintableString)
            .unwrap_or_else(|_| DnValue::Utf8String(v.to_owned()));
        dn.push(ty, value);
    }
    let mut p = CertificateParams::default();
    p.distinguished_name = dn;
    let csr = p.serialize_request(&key).map_err(Error::Key)?;
    Ok((key, csr.der().to_vec()))
}

/// `GET /edge.crt` with a new CSR, authorized by `auth` (bearer) or `client` (mutual TLS),
/// the server verified against `ca_der`. Checks the issued certificate; returns the
/// credentials and the key PEM.
async fn request_cert<T: Transport>(
    transport: &T,
    target: &Target<'_>,
    ca_der: CertificateDer<'static>,
    auth: Option<String>,
    client: Client<T::Conn>,
    clock: Arc<dyn Clock>,
) -> Result<(EdgeCredentials, String), Error> {
    let (key, csr) = key_and_csr(target.node)?;
    let mut headers = vec![("NodeName", target.node.to_owned())];
    headers.extend(auth.map(|a| ("Authorization", a)));
    let get = http::Get {
        path: "/edge.crt",
        headers,
        body: csr,
    };
    let (reuse, mtls) = match client {
        Client::Reuse(conn) => (Some(*conn).filter(http::Conn::is_open), None),
        Client::Mtls(chain, key) => (None, Some((chain, key))),
    };
    let answer = match reuse {
        // A server may close the connection after answering (`Connection: close`, a proxy),
        // which shows only when the next request is sent: then the CSR goes on a new one.
        Some(mut conn) => match conn.get(get.clone()).await {
            Err(Error::Http(e)) => {
                tracing::debug!(error = %e, "certificate server closed the join's connection; reconnecting");
                None
            }
            r => Some(r?),
        },
        None => None,
    };
    let answer = match answer {
        Some(a) => a,
        None => {
            let config = tls::verified(&ca_der, mtls, clock.clone(), &[b"http/1.1"])?;
            let mut conn = http::open(transport, config, target.server, target.server_name).await?;
            conn.get(get).await?
        }
    };
    let cert_der = CertificateDer::from(answer.to_vec());
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let (not_before, not_after) = store::check(
        target.node,
        &ca_der,
        &cert_der,
        &key.subject_public_key_info(),
        &*clock,
    )
    .map_err(|e| match e {
        Error::Stored(why) => Error::BadResponse(why),
        e => e,
    })?;
    let creds = EdgeCredentials {
        node: target.node.to_owned(),
        ca_der,
        cert_der,
        key: key_der,
        not_before,
        not_after,
        reused: false,
    };
    Ok((creds, key.serialize_pem()))
}
