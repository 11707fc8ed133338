//! TLS client configurations for the bootstrap: one that trusts any server (only for the
//! single `/ca.crt` download, whose bytes are then checked against the join token's hash, as
//! KubeEdge does) and verified ones (the downloaded CA, optionally this node's certificate).
//! Certificate validity is judged by the [`Clock`] seam ([`ClockTime`], from ke-net, shared
//! with cloudcore).

use super::Error;
use ke_core::Clock;
use ke_net::ClockTime;
use rustls::{
    ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::{
        CryptoProvider, WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature,
    },
    pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime},
};
use std::sync::Arc;

/// The crypto provider: the workspace's (ring, suites in Go's order).
pub(crate) fn provider() -> Arc<CryptoProvider> {
    ke_net::tls::provider()
}

/// Accepts any server certificate. Used for exactly one request: `GET /ca.crt`, whose answer
/// is trusted only if its SHA-256 equals the join token's prefix. Handshake signatures are
/// still checked, so the peer at least holds the key of the certificate it showed.
#[derive(Debug)]
struct TrustOnFirstDownload {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for TrustOnFirstDownload {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The configuration for the `/ca.crt` download: no server verification.
pub(crate) fn unverified(clock: Arc<dyn Clock>) -> Result<Arc<ClientConfig>, Error> {
    let provider = provider();
    let verifier = Arc::new(TrustOnFirstDownload {
        algorithms: provider.signature_verification_algorithms,
    });
    let mut cfg = ClientConfig::builder_with_details(provider, Arc::new(ClockTime(clock)))
        .with_safe_default_protocol_versions()
        .map_err(Error::Tls)?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// A configuration that verifies the server against `ca_der` and, with `client`, presents
/// that certificate chain and key (mutual TLS).
pub(crate) fn verified(
    ca_der: &CertificateDer<'static>,
    client: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    clock: Arc<dyn Clock>,
    alpn: &[&[u8]],
) -> Result<Arc<ClientConfig>, Error> {
    let builder = ClientConfig::builder_with_details(provider(), Arc::new(ClockTime(clock)))
        .with_safe_default_protocol_versions()
        .map_err(Error::Tls)?
        .with_root_certificates(ca_roots(ca_der).map_err(Error::Tls)?);
    let mut cfg = match client {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(Error::Tls)?,
        None => builder.with_no_client_auth(),
    };
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(cfg))
}

/// A trust store holding only `ca_der` (the CA the join token names).
pub(crate) fn ca_roots(
    ca_der: &CertificateDer<'static>,
) -> Result<Arc<RootCertStore>, rustls::Error> {
    let mut roots = RootCertStore::empty();
    roots.add(ca_der.clone())?;
    Ok(Arc::new(roots))
}

/// Verifies, after the fact, the certificate chain a server showed in a handshake made with
/// [`unverified`]: it must lead to `ca_der` and name `server_name` at the clock's time, as a
/// handshake with [`verified`] would have required.
pub(crate) fn verify_server_chain(
    ca_der: &CertificateDer<'static>,
    chain: &[CertificateDer<'static>],
    server_name: &str,
    clock: &dyn Clock,
) -> Result<(), rustls::Error> {
    let (end_entity, intermediates) = chain
        .split_first()
        .ok_or(rustls::Error::NoCertificatesPresented)?;
    let name = ServerName::try_from(server_name.to_owned())
        .map_err(|_| rustls::Error::General(format!("invalid server name {server_name:?}")))?;
    let verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(ca_roots(ca_der)?, provider())
            .build()
            .map_err(|e| rustls::Error::General(format!("CA certificate unusable: {e}")))?;
    verifier.verify_server_cert(
        end_entity,
        intermediates,
        &name,
        &[],
        ke_net::tls::unix_time(clock),
    )?;
    Ok(())
}
