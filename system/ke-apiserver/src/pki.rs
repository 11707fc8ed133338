//! Certificates and credentials in the data directory: a CA created on first start, a serving
//! certificate signed by it, the admin token, and a kubeconfig that uses them.

use ke_core::{Clock, Entropy};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use std::{
    fs,
    io::Write,
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
};

/// Failures while preparing credentials.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
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
}

/// The credentials of one API server.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// CA certificate (PEM).
    pub ca_pem: String,
    /// Serving certificate (PEM).
    pub cert_pem: String,
    /// Serving key (PEM, PKCS#8).
    pub key_pem: String,
    /// The admin bearer token.
    pub admin_token: String,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io {
        path: path.to_owned(),
        source,
    }
}

fn cert(what: &'static str) -> impl FnOnce(rcgen::Error) -> PkiError {
    move |source| PkiError::Cert { what, source }
}

/// Writes a file readable only by its owner, atomically: readers see the old or the new
/// content, never a half-written file (a temporary file is written, synced and renamed).
pub fn write_private(path: &Path, data: &[u8]) -> Result<(), PkiError> {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    let tmp = path.with_file_name(name);
    let mut f = fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io(&tmp))?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o600)).map_err(io(&tmp))?;
    f.write_all(data).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    fs::rename(&tmp, path).map_err(io(path))
}

fn validity(p: &mut CertificateParams, clock: &dyn Clock, days: i64) {
    let now = clock.now_utc();
    p.not_before = now - time::Duration::hours(1);
    p.not_after = now + time::Duration::days(days);
}

/// Loads the CA from `dir/pki` or creates it; then issues a fresh serving certificate for
/// `sans` (DNS names or IP addresses) and loads or creates the admin token.
pub fn load_or_create(
    dir: &Path,
    sans: &[String],
    clock: &dyn Clock,
    entropy: &Entropy,
) -> Result<Credentials, PkiError> {
    let pki = dir.join("pki");
    fs::create_dir_all(&pki).map_err(io(&pki))?;
    let (ca_crt, ca_key) = (pki.join("ca.crt"), pki.join("ca.key"));
    if !ca_crt.exists() || !ca_key.exists() {
        let (pem, key) = new_ca("edgefleet-ca", clock)?;
        write_private(&ca_key, key.as_bytes())?;
        fs::write(&ca_crt, pem.as_bytes()).map_err(io(&ca_crt))?;
    }
    let ca_pem = fs::read_to_string(&ca_crt).map_err(io(&ca_crt))?;
    let ca_key_pem = fs::read_to_string(&ca_key).map_err(io(&ca_key))?;
    let (cert_pem, key_pem) = issue_server_cert(&ca_pem, &ca_key_pem, sans, clock)?;
    write_private(&pki.join("apiserver.key"), key_pem.as_bytes())?;
    let crt = pki.join("apiserver.crt");
    fs::write(&crt, cert_pem.as_bytes()).map_err(io(&crt))?;
    let token_path = dir.join("admin.token");
    let admin_token = match fs::read_to_string(&token_path) {
        Ok(t) if !t.trim().is_empty() => t.trim().to_owned(),
        _ => {
            let mut b = [0u8; 32];
            entropy.fill(&mut b);
            let t = hex::encode(b);
            write_private(&token_path, t.as_bytes())?;
            t
        }
    };
    Ok(Credentials {
        ca_pem,
        cert_pem,
        key_pem,
        admin_token,
    })
}

/// A new self-signed CA: (certificate PEM, key PEM).
pub fn new_ca(common_name: &str, clock: &dyn Clock) -> Result<(String, String), PkiError> {
    let key = KeyPair::generate().map_err(cert("CA key"))?;
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    validity(&mut p, clock, 3650);
    let c = p.self_signed(&key).map_err(cert("CA certificate"))?;
    Ok((c.pem(), key.serialize_pem()))
}

fn issue_server_cert(
    ca_pem: &str,
    ca_key_pem: &str,
    sans: &[String],
    clock: &dyn Clock,
) -> Result<(String, String), PkiError> {
    let ca_key = KeyPair::from_pem(ca_key_pem).map_err(cert("CA key"))?;
    let issuer = Issuer::from_ca_cert_pem(ca_pem, ca_key).map_err(cert("CA certificate"))?;
    let key = KeyPair::generate().map_err(cert("serving key"))?;
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "edgefleet-apiserver");
    p.distinguished_name = dn;
    p.subject_alt_names = sans
        .iter()
        .map(|s| match s.parse::<std::net::IpAddr>() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => s
                .clone()
                .try_into()
                .map(SanType::DnsName)
                .map_err(cert("DNS name")),
        })
        .collect::<Result<_, _>>()?;
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    validity(&mut p, clock, 365);
    let c = p
        .signed_by(&key, &issuer)
        .map_err(cert("serving certificate"))?;
    Ok((c.pem(), key.serialize_pem()))
}

/// A kubeconfig for `server` (an `https://` URL) with the CA and a bearer token.
pub fn kubeconfig(server: &str, ca_pem: &str, token: &str, user: &str) -> String {
    use base64::Engine;
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: edgefleet\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\nusers:\n- name: {user}\n  user:\n    token: {token}\ncontexts:\n- name: edgefleet\n  context:\n    cluster: edgefleet\n    user: {user}\ncurrent-context: edgefleet\n"
    )
}
