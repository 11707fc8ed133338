//! The KubeEdge CA: created or loaded from `rootCA.crt`/`rootCA.key`, it issues CloudCore's
//! serving certificate and the edges' client certificates, makes and checks join tokens, and
//! verifies the client certificate an edge presents to rotate.

use super::{
    Error,
    files::{CERT_MODE, KEY_MODE, read, write_atomic},
    keys::{P256Key, pem_encode},
    tls::unix_time,
    token::{JoinToken, TokenError, ca_cert_hash, verify_jwt},
};
use ke_core::Clock;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, DnValue, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PublicKeyData, SanType, SerialNumber,
};
use rustls::{
    RootCertStore,
    crypto::CryptoProvider,
    pki_types::{CertificateDer, PrivateKeyDer},
    server::{WebPkiClientVerifier, danger::ClientCertVerifier},
};
use sha2::{Digest, Sha256};
use std::{fmt, path::Path, sync::Arc, time::Duration};

/// CN of the KubeEdge CA.
pub const CA_COMMON_NAME: &str = "KubeEdge";
/// Validity of a new CA (KubeEdge: 100 years).
pub const CA_VALIDITY_DAYS: u32 = 100 * 365;
/// Default validity of edge certificates (`edgeCertSigningDuration`, 365 days).
pub const EDGE_CERT_VALIDITY_DAYS: u32 = 365;
/// CN prefix of an edge node certificate.
pub const NODE_CN_PREFIX: &str = "system:node:";
/// Organization of an edge node certificate.
pub const NODES_ORGANIZATION: &str = "system:nodes";
/// CA certificate file name (KubeEdge: `/etc/kubeedge/ca/rootCA.crt`).
pub const CA_CERT_FILE: &str = "rootCA.crt";
/// CA key file name (KubeEdge: `/etc/kubeedge/ca/rootCA.key`).
pub const CA_KEY_FILE: &str = "rootCA.key";

/// Why an edge's CSR was refused (HTTP 400, except [`CsrError::Sign`]).
#[derive(Debug, thiserror::Error)]
pub enum CsrError {
    /// The body is not a DER CSR with a valid self-signature.
    #[error("certificate request does not parse or its signature is invalid")]
    Parse(#[source] rcgen::Error),
    /// The node name is not a DNS-1123 subdomain.
    #[error("node name {0:?} is not a valid node name")]
    NodeName(String),
    /// The CSR asks for another identity than `system:node:<node>` in `system:nodes`.
    #[error(
        "certificate request subject (CN {cn:?}, O {org:?}) does not match node {node:?}: \
         expected CN \"system:node:{node}\" and O \"system:nodes\""
    )]
    Subject {
        /// The requesting node (the `NodeName` header).
        node: String,
        /// The CSR's CN.
        cn: Option<String>,
        /// The CSR's O.
        org: Option<String>,
    },
    /// The key is not ECDSA P-256 (KubeEdge's only key type).
    #[error("certificate request key is not ECDSA P-256")]
    KeyType,
    /// A requested extended key usage is not client or server authentication.
    #[error("unsupported extended key usage {0}")]
    Usage(i64),
    /// Signing failed (an internal error: HTTP 500).
    #[error("signing the certificate failed")]
    Sign(#[source] rcgen::Error),
}

/// Why a presented client certificate may not rotate as a node.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// No certificate was presented.
    #[error("no client certificate")]
    Missing,
    /// The chain does not verify against the CA (or is expired, or lacks clientAuth).
    #[error("client certificate is not trusted")]
    Untrusted(#[source] rustls::Error),
    /// The certificate is not a node certificate (`system:node:*` in `system:nodes`).
    #[error("client certificate (CN {cn:?}) is not a node certificate")]
    NotANode {
        /// The certificate's CN.
        cn: String,
    },
    /// The certificate belongs to another node than the one asking.
    #[error("client certificate is for node {cert_node:?}, not {node:?}")]
    WrongNode {
        /// The node asking (`NodeName` header).
        node: String,
        /// The node named by the certificate.
        cert_node: String,
    },
}

/// A certificate and its key issued by the CA (CloudCore's serving certificate).
pub struct IssuedCert {
    cert_der: CertificateDer<'static>,
    key: P256Key,
}

impl fmt::Debug for IssuedCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedCert").finish_non_exhaustive()
    }
}

impl IssuedCert {
    /// Certificate DER.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// Certificate PEM.
    pub fn cert_pem(&self) -> String {
        pem_encode("CERTIFICATE", &self.cert_der)
    }

    /// Key PEM (`EC PRIVATE KEY`, as KubeEdge writes `server.key`).
    pub fn key_pem(&self) -> String {
        self.key.sec1_pem()
    }

    /// The key for a rustls configuration.
    pub fn rustls_key(&self) -> PrivateKeyDer<'static> {
        self.key.rustls_key()
    }

    /// Writes the certificate to `crt` and the key (0600) to `key` (cloudcore.yaml's
    /// `tlsCertFile` and `tlsPrivateKeyFile`).
    pub fn save_files(&self, crt: &Path, key: &Path) -> Result<(), Error> {
        write_atomic(key, self.key_pem().as_bytes(), KEY_MODE)?;
        write_atomic(crt, self.cert_pem().as_bytes(), CERT_MODE)
    }

    /// Writes `server.crt` and `server.key` (0600) into `dir`.
    pub fn save(&self, dir: &Path) -> Result<(), Error> {
        write_atomic(&dir.join("server.key"), self.key_pem().as_bytes(), KEY_MODE)?;
        write_atomic(
            &dir.join("server.crt"),
            self.cert_pem().as_bytes(),
            CERT_MODE,
        )
    }
}

/// The certificate authority of one cluster.
pub struct CertAuthority {
    cert_der: CertificateDer<'static>,
    /// The key's SEC1 DER: the HMAC key of join tokens.
    key_sec1: Vec<u8>,
    key_pem: String,
    issuer: Issuer<'static, KeyPair>,
    roots: Arc<RootCertStore>,
    /// Verifies edge client certificates (chain to this CA, clientAuth, validity).
    verifier: Arc<dyn ClientCertVerifier>,
}

impl fmt::Debug for CertAuthority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertAuthority")
            .field("hash", &self.cert_hash())
            .finish_non_exhaustive()
    }
}

fn cert_err(what: &'static str) -> impl FnOnce(rcgen::Error) -> Error {
    move |source| Error::Cert { what, source }
}

fn validity(p: &mut CertificateParams, clock: &dyn Clock, days: u32) {
    let now = clock.now_utc();
    // An hour of slack for clocks that run a little behind the CA's.
    p.not_before = now - time::Duration::hours(1);
    p.not_after = now + time::Duration::days(i64::from(days));
}

/// A serial unique per key and issue time (rcgen's default depends on the key only, so a
/// re-issue for the same key would repeat it).
fn serial(public_key: &[u8], clock: &dyn Clock) -> SerialNumber {
    let mut h = Sha256::new();
    h.update(public_key);
    h.update(clock.now_utc().unix_timestamp_nanos().to_be_bytes());
    let mut b = h.finalize()[..16].to_vec();
    b[0] &= 0x7f;
    SerialNumber::from(b)
}

impl CertAuthority {
    /// A new self-signed CA: ECDSA P-256, CN `KubeEdge`, valid 100 years from `clock`.
    pub fn create(clock: &dyn Clock) -> Result<Self, Error> {
        let key = P256Key::generate().map_err(|source| Error::Key {
            what: "new CA key",
            source,
        })?;
        let mut p = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, CA_COMMON_NAME);
        p.distinguished_name = dn;
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
        ];
        p.serial_number = Some(serial(key.pair.public_key_raw(), clock));
        validity(&mut p, clock, CA_VALIDITY_DAYS);
        let cert = p
            .self_signed(&key.pair)
            .map_err(cert_err("CA certificate"))?;
        Self::assemble(cert.der().clone(), key)
    }

    /// A CA from PEM text: the certificate and its key (`EC PRIVATE KEY` or `PRIVATE KEY`).
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, Error> {
        let der = rustls_pemfile::certs(&mut cert_pem.as_bytes())
            .next()
            .ok_or(Error::BadCa("no certificate in the PEM data"))?
            .map_err(|_| Error::BadCa("certificate PEM does not parse"))?;
        let key = P256Key::from_pem(key_pem).map_err(|source| Error::Key {
            what: "CA key",
            source,
        })?;
        Self::assemble(der, key)
    }

    fn assemble(cert_der: CertificateDer<'static>, key: P256Key) -> Result<Self, Error> {
        let (_, x509) = x509_parser::parse_x509_certificate(&cert_der)
            .map_err(|_| Error::BadCa("certificate does not parse"))?;
        if !x509.is_ca() {
            return Err(Error::BadCa("certificate is not a CA"));
        }
        if x509.public_key().raw != key.pair.subject_public_key_info().as_slice() {
            return Err(Error::BadCa("the key does not belong to the certificate"));
        }
        let mut roots = RootCertStore::empty();
        roots.add(cert_der.clone()).map_err(Error::Tls)?;
        let roots = Arc::new(roots);
        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
            .build()
            .map_err(|e| Error::Tls(rustls::Error::General(e.to_string())))?;
        let key_pem = key.sec1_pem();
        let issuer = Issuer::from_ca_cert_der(&cert_der, key.pair).map_err(cert_err("CA"))?;
        Ok(Self {
            cert_der,
            key_sec1: key.sec1,
            key_pem,
            issuer,
            roots,
            verifier,
        })
    }

    /// Loads `rootCA.crt` and `rootCA.key` from `dir`.
    pub fn load(dir: &Path) -> Result<Self, Error> {
        let cert = read(&dir.join(CA_CERT_FILE))?;
        let key = read(&dir.join(CA_KEY_FILE))?;
        Self::from_pem(&cert, &key)
    }

    /// Loads the CA from `dir`, or creates one and saves it there when neither file exists.
    /// One file without the other is an error: silently replacing a CA would orphan every
    /// edge certificate it issued.
    pub fn load_or_create(dir: &Path, clock: &dyn Clock) -> Result<Self, Error> {
        let (crt, key) = (dir.join(CA_CERT_FILE), dir.join(CA_KEY_FILE));
        match (crt.exists(), key.exists()) {
            (true, true) => Self::load(dir),
            (false, false) => {
                let ca = Self::create(clock)?;
                ca.save(dir)?;
                Ok(ca)
            }
            _ => Err(Error::BadCa("only one of rootCA.crt and rootCA.key exists")),
        }
    }

    /// Loads the CA from the certificate and key files `crt` and `key` (cloudcore.yaml's
    /// `tlsCAFile` and `tlsCAKeyFile`), or creates one and writes both when neither exists.
    /// One without the other is an error, as in [`Self::load_or_create`].
    pub fn load_or_create_files(crt: &Path, key: &Path, clock: &dyn Clock) -> Result<Self, Error> {
        match (crt.exists(), key.exists()) {
            (true, true) => Self::from_pem(&read(crt)?, &read(key)?),
            (false, false) => {
                let ca = Self::create(clock)?;
                write_atomic(key, ca.key_pem.as_bytes(), KEY_MODE)?;
                write_atomic(crt, ca.cert_pem().as_bytes(), CERT_MODE)?;
                Ok(ca)
            }
            _ => Err(Error::BadCa(
                "only one of the CA certificate and key files exists",
            )),
        }
    }

    /// Loads an existing CA from its certificate and key files (what `keadm gettoken` and the
    /// load driver use to make join tokens for a cloudcore running elsewhere).
    pub fn load_files(crt: &Path, key: &Path) -> Result<Self, Error> {
        Self::from_pem(&read(crt)?, &read(key)?)
    }

    /// Writes `rootCA.key` (0600, SEC1 PEM as KubeEdge) and then `rootCA.crt` into `dir`.
    pub fn save(&self, dir: &Path) -> Result<(), Error> {
        write_atomic(&dir.join(CA_KEY_FILE), self.key_pem.as_bytes(), KEY_MODE)?;
        write_atomic(
            &dir.join(CA_CERT_FILE),
            self.cert_pem().as_bytes(),
            CERT_MODE,
        )
    }

    /// CloudHub's TLS: serving certificate `server`, client certificates required and
    /// verified against this CA (node authorization reads the node name from them), TLS ≥ 1.2,
    /// certificate validity checked against `clock`.
    pub fn hub_server_config(
        &self,
        server: &IssuedCert,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<rustls::ServerConfig>, Error> {
        let time = Arc::new(super::tls::ClockTime(clock));
        let cfg = rustls::ServerConfig::builder_with_details(provider(), time)
            .with_safe_default_protocol_versions()
            .map_err(Error::Tls)?
            .with_client_cert_verifier(self.verifier.clone())
            .with_single_cert(vec![server.cert_der().clone()], server.rustls_key())
            .map_err(Error::Tls)?;
        Ok(Arc::new(cfg))
    }

    /// The CA certificate (DER): what `/ca.crt` serves.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// The CA certificate (PEM).
    pub fn cert_pem(&self) -> String {
        pem_encode("CERTIFICATE", &self.cert_der)
    }

    /// The CA key as SEC1 DER (KubeEdge's `cakeydata`; the join-token HMAC key).
    pub fn key_der(&self) -> &[u8] {
        &self.key_sec1
    }

    /// Lowercase hex SHA-256 of the CA DER (the join-token prefix).
    pub fn cert_hash(&self) -> String {
        ca_cert_hash(&self.cert_der)
    }

    /// A root store holding only this CA (for verifying peers).
    pub fn root_store(&self) -> Arc<RootCertStore> {
        self.roots.clone()
    }

    /// A new join token, expiring at now + 2 × `refresh`.
    pub fn join_token(&self, clock: &dyn Clock, refresh: Duration) -> JoinToken {
        JoinToken::create(&self.cert_der, &self.key_sec1, clock, refresh)
    }

    /// Checks a full token (`<hash>.<jwt>`) against this CA.
    pub fn verify_token(&self, token: &JoinToken, clock: &dyn Clock) -> Result<(), TokenError> {
        token.verify(&self.cert_der, &self.key_sec1, clock)
    }

    /// Checks the bearer JWT an edge sends to `/edge.crt`.
    pub fn verify_bearer(&self, jwt: &str, clock: &dyn Clock) -> Result<(), TokenError> {
        verify_jwt(jwt, &self.key_sec1, clock)
    }

    /// CloudCore's serving certificate: CN and O `KubeEdge`, serverAuth, SANs = `sans`
    /// (advertise addresses and DNS names), a fresh P-256 key, valid `days` days.
    pub fn cloudcore_server_cert(
        &self,
        sans: &[String],
        clock: &dyn Clock,
        days: u32,
    ) -> Result<IssuedCert, Error> {
        let key = P256Key::generate().map_err(|source| Error::Key {
            what: "server key",
            source,
        })?;
        let mut p = CertificateParams::default();
        p.distinguished_name
            .push(DnType::CommonName, CA_COMMON_NAME);
        p.distinguished_name
            .push(DnType::OrganizationName, CA_COMMON_NAME);
        p.subject_alt_names = sans
            .iter()
            .map(|s| match s.parse::<std::net::IpAddr>() {
                Ok(ip) => Ok(SanType::IpAddress(ip)),
                Err(_) => s.clone().try_into().map(SanType::DnsName),
            })
            .collect::<Result<_, _>>()
            .map_err(cert_err("server certificate SAN"))?;
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        p.serial_number = Some(serial(key.pair.public_key_raw(), clock));
        validity(&mut p, clock, days);
        let cert = p
            .signed_by(&key.pair, &self.issuer)
            .map_err(cert_err("server certificate"))?;
        Ok(IssuedCert {
            cert_der: cert.der().clone(),
            key,
        })
    }

    /// Signs an edge's CSR as a clientAuth certificate valid `days` days. The CSR's subject
    /// must be CN `system:node:<node>`, O `system:nodes`: an edge never gets a certificate for
    /// another node's name. The CSR's subject and public key are kept.
    pub fn sign_edge_csr(
        &self,
        csr_der: &[u8],
        node: &str,
        days: u32,
        clock: &dyn Clock,
    ) -> Result<CertificateDer<'static>, CsrError> {
        self.sign_edge_csr_with_usages(
            csr_der,
            node,
            days,
            clock,
            &[ExtendedKeyUsagePurpose::ClientAuth],
        )
    }

    /// As [`Self::sign_edge_csr`], with explicit extended key usages (KubeEdge's
    /// `ExtKeyUsages` header; its stream server asks for serverAuth).
    pub fn sign_edge_csr_with_usages(
        &self,
        csr_der: &[u8],
        node: &str,
        days: u32,
        clock: &dyn Clock,
        usages: &[ExtendedKeyUsagePurpose],
    ) -> Result<CertificateDer<'static>, CsrError> {
        if !valid_node_name(node) {
            return Err(CsrError::NodeName(node.to_owned()));
        }
        let csr =
            CertificateSigningRequestParams::from_der(&csr_der.into()).map_err(CsrError::Parse)?;
        check_subject(&csr.params.distinguished_name, node)?;
        if csr.public_key.algorithm() != &rcgen::PKCS_ECDSA_P256_SHA256 {
            return Err(CsrError::KeyType);
        }
        let mut p = CertificateParams::default();
        p.distinguished_name = csr.params.distinguished_name.clone();
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        p.extended_key_usages = usages.to_vec();
        p.serial_number = Some(serial(csr.public_key.der_bytes(), clock));
        validity(&mut p, clock, days);
        let cert = p
            .signed_by(&csr.public_key, &self.issuer)
            .map_err(CsrError::Sign)?;
        Ok(cert.der().clone())
    }

    /// Checks a client certificate chain presented for rotation: it verifies against this CA
    /// at `clock`'s time with clientAuth, and names `node` (CN `system:node:<node>`, O
    /// `system:nodes`). Returns the node name on success.
    pub fn verify_edge_client(
        &self,
        chain: &[CertificateDer<'_>],
        node: &str,
        clock: &dyn Clock,
    ) -> Result<String, PeerError> {
        let (leaf, intermediates) = chain.split_first().ok_or(PeerError::Missing)?;
        self.verifier
            .verify_client_cert(leaf, intermediates, unix_time(clock))
            .map_err(PeerError::Untrusted)?;
        let cert_node = cert_node_name(leaf)?;
        if cert_node != node {
            return Err(PeerError::WrongNode {
                node: node.to_owned(),
                cert_node,
            });
        }
        Ok(cert_node)
    }
}

/// The crypto provider used everywhere here: the workspace's (ring, suites in Go's order).
pub(crate) fn provider() -> Arc<CryptoProvider> {
    ke_net::tls::provider()
}

/// The node named by a node certificate (CN `system:node:<node>`, O `system:nodes`).
fn cert_node_name(der: &CertificateDer<'_>) -> Result<String, PeerError> {
    let not_node = |cn: &str| PeerError::NotANode { cn: cn.to_owned() };
    let (_, x509) = x509_parser::parse_x509_certificate(der).map_err(|_| not_node(""))?;
    let subject = x509.subject();
    let cn = subject
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok())
        .unwrap_or("");
    let in_nodes = subject
        .iter_organization()
        .any(|a| a.as_str().ok() == Some(NODES_ORGANIZATION));
    match cn.strip_prefix(NODE_CN_PREFIX) {
        Some(name) if in_nodes && !name.is_empty() => Ok(name.to_owned()),
        _ => Err(not_node(cn)),
    }
}

fn dn_str(v: &DnValue) -> Option<String> {
    match v {
        DnValue::Utf8String(s) => Some(s.clone()),
        DnValue::PrintableString(s) => Some(s.as_str().to_owned()),
        DnValue::Ia5String(s) => Some(s.as_str().to_owned()),
        DnValue::TeletexString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

fn check_subject(dn: &DistinguishedName, node: &str) -> Result<(), CsrError> {
    let cn = dn.get(&DnType::CommonName).and_then(dn_str);
    let org = dn.get(&DnType::OrganizationName).and_then(dn_str);
    let want_cn = format!("{NODE_CN_PREFIX}{node}");
    if cn.as_deref() == Some(want_cn.as_str()) && org.as_deref() == Some(NODES_ORGANIZATION) {
        Ok(())
    } else {
        Err(CsrError::Subject {
            node: node.to_owned(),
            cn,
            org,
        })
    }
}

/// A Kubernetes node name: a DNS-1123 subdomain (lowercase alphanumerics, `-`, `.`).
pub fn valid_node_name(name: &str) -> bool {
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.';
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    !name.is_empty()
        && name.len() <= 253
        && name.chars().all(ok_char)
        && alnum(name.chars().next())
        && alnum(name.chars().last())
}
