//! The node's credentials on disk (`rootCA.crt`, `server.crt`, `server.key`, PEM) and the
//! checks that decide whether they can be used: the certificate chains to the CA at the
//! clock's time with clientAuth, names this node, and belongs to the key next to it.

use super::{CertPaths, EdgeCredentials, Error, NODE_CN_PREFIX, NODES_ORGANIZATION, tls};
use ke_core::Clock;
use rustls::{
    pki_types::{CertificateDer, PrivateKeyDer},
    server::WebPkiClientVerifier,
};
use std::{
    fs,
    io::Write,
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::Path,
};
use time::OffsetDateTime;

/// File mode of the private key.
const KEY_MODE: u32 = 0o600;
/// File mode of certificates.
const CERT_MODE: u32 = 0o644;

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_owned(),
        source,
    }
}

/// Writes `data` to `path` with `mode` atomically (temporary file, sync, rename).
pub(crate) fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<(), Error> {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    let tmp = path.with_file_name(name);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    let mut f = fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io_err(&tmp))?;
    // The creation mode is filtered by the umask and ignored for an existing file.
    fs::set_permissions(&tmp, fs::Permissions::from_mode(mode)).map_err(io_err(&tmp))?;
    f.write_all(data).map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    fs::rename(&tmp, path).map_err(io_err(path))
}

/// PEM text for `der` under `label`.
pub(crate) fn pem_encode(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Writes the CA, then the key, then the certificate (the key/certificate pair is checked
/// on load, so a crash between the two writes is detected, not trusted).
pub(crate) fn save(paths: &CertPaths, creds: &EdgeCredentials, key_pem: &str) -> Result<(), Error> {
    write_atomic(
        &paths.ca,
        pem_encode("CERTIFICATE", &creds.ca_der).as_bytes(),
        CERT_MODE,
    )?;
    write_atomic(&paths.key, key_pem.as_bytes(), KEY_MODE)?;
    write_atomic(
        &paths.cert,
        pem_encode("CERTIFICATE", &creds.cert_der).as_bytes(),
        CERT_MODE,
    )
}

fn first_cert(path: &Path) -> Result<CertificateDer<'static>, Error> {
    let text = fs::read(path).map_err(io_err(path))?;
    rustls_pemfile::certs(&mut text.as_slice())
        .next()
        .and_then(Result::ok)
        .ok_or_else(|| Error::Stored(format!("{} holds no PEM certificate", path.display())))
}

fn key(path: &Path) -> Result<PrivateKeyDer<'static>, Error> {
    let text = fs::read(path).map_err(io_err(path))?;
    rustls_pemfile::private_key(&mut text.as_slice())
        .ok()
        .flatten()
        .ok_or_else(|| Error::Stored(format!("{} holds no PEM private key", path.display())))
}

/// Loads and checks the stored credentials of `node`.
pub(crate) fn load(
    paths: &CertPaths,
    node: &str,
    clock: &dyn Clock,
) -> Result<EdgeCredentials, Error> {
    let ca_der = first_cert(&paths.ca)?;
    let cert_der = first_cert(&paths.cert)?;
    let key = key(&paths.key)?;
    let spki = public_key_of(&key)?;
    let (not_before, not_after) = check(node, &ca_der, &cert_der, &spki, clock)?;
    Ok(EdgeCredentials {
        node: node.to_owned(),
        ca_der,
        cert_der,
        key,
        not_before,
        not_after,
        reused: true,
    })
}

/// The public key (SubjectPublicKeyInfo DER) of a stored private key.
fn public_key_of(key: &PrivateKeyDer<'static>) -> Result<Vec<u8>, Error> {
    let signer = rustls::crypto::ring::sign::any_ecdsa_type(key)
        .map_err(|e| Error::Stored(format!("private key unusable: {e}")))?;
    signer
        .public_key()
        .map(|spki| spki.as_ref().to_vec())
        .ok_or_else(|| Error::Stored("private key has no public key".into()))
}

/// Checks that `cert_der` is a valid node certificate of `node` under `ca_der` at `clock`'s
/// time, for the key whose public key is `spki` (SubjectPublicKeyInfo DER). Returns its
/// validity window.
pub(crate) fn check(
    node: &str,
    ca_der: &CertificateDer<'static>,
    cert_der: &CertificateDer<'static>,
    spki: &[u8],
    clock: &dyn Clock,
) -> Result<(OffsetDateTime, OffsetDateTime), Error> {
    let bad = |why: String| Error::Stored(why);
    let roots = tls::ca_roots(ca_der).map_err(|e| bad(format!("CA certificate unusable: {e}")))?;
    let verifier = WebPkiClientVerifier::builder_with_provider(roots, tls::provider())
        .build()
        .map_err(|e| bad(format!("CA certificate unusable: {e}")))?;
    verifier
        .verify_client_cert(cert_der, &[], ke_net::tls::unix_time(clock))
        .map_err(|e| bad(format!("certificate does not verify against the CA: {e}")))?;
    let (_, x509) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|_| bad("certificate does not parse".into()))?;
    let subject = x509.subject();
    let cn = subject
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok())
        .unwrap_or("");
    let want = format!("{NODE_CN_PREFIX}{node}");
    let in_nodes = subject
        .iter_organization()
        .any(|a| a.as_str().ok() == Some(NODES_ORGANIZATION));
    if cn != want || !in_nodes {
        return Err(bad(format!(
            "certificate CN {cn:?} is not {want:?} in {NODES_ORGANIZATION}"
        )));
    }
    if spki != x509.public_key().raw {
        return Err(bad("private key does not belong to the certificate".into()));
    }
    let v = x509.validity();
    Ok((v.not_before.to_datetime(), v.not_after.to_datetime()))
}
