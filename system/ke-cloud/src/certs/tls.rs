//! TLS for the certificate server: Go's `ClientAuth: RequestClientCert` (a client certificate
//! is asked for but optional and not verified in the handshake; the handler verifies it, so a
//! refusal is an HTTP status with a reason rather than a TLS alert), and certificate validity
//! judged by the [`Clock`] seam instead of the host clock ([`ClockTime`], from ke-net, shared
//! with edgecore; re-exported here as before).

use super::{Error, IssuedCert, authority::provider};
use ke_core::Clock;
use rustls::{
    DigitallySignedStruct, DistinguishedName, SignatureScheme,
    client::danger::HandshakeSignatureValid,
    crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature},
    pki_types::{CertificateDer, UnixTime},
    server::danger::{ClientCertVerified, ClientCertVerifier},
};
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;

pub use ke_net::tls::{ClockTime, unix_time};

/// Asks for a client certificate, accepts any (or none), and still checks the handshake
/// signature so that a presented certificate proves possession of its key.
#[derive(Debug)]
struct RequestClientCert {
    hints: Vec<DistinguishedName>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for RequestClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
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

/// The certificate server's TLS: serving certificate `server` (sent alone, as Go does),
/// optional client certificates hinted at the CA `ca_der`, HTTP/1.1 only, TLS ≥ 1.2.
pub fn cert_server_acceptor(
    ca_der: &CertificateDer<'_>,
    server: &IssuedCert,
    clock: Arc<dyn Clock>,
) -> Result<TlsAcceptor, Error> {
    let provider = provider();
    let hints = x509_parser::parse_x509_certificate(ca_der)
        .map(|(_, c)| vec![DistinguishedName::from(c.subject().as_raw().to_vec())])
        .map_err(|_| Error::BadCa("certificate does not parse"))?;
    let verifier = Arc::new(RequestClientCert {
        hints,
        algorithms: provider.signature_verification_algorithms,
    });
    let mut cfg = rustls::ServerConfig::builder_with_details(provider, Arc::new(ClockTime(clock)))
        .with_safe_default_protocol_versions()
        .map_err(Error::Tls)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![server.cert_der().clone()], server.rustls_key())
        .map_err(Error::Tls)?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(cfg)))
}
