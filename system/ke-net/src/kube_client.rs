//! [`kube_client`]: a `kube::Client` whose connections go through a [`Transport`]
//! (feature `kube`).
//!
//! The client never opens its own sockets and never resolves names: every connection dials
//! the one fixed `server` address through the transport, then does a TLS handshake (rustls,
//! ring) that verifies the server against the given CA and `server_name`, offering ALPN
//! `h2` and `http/1.1`. Each request gets `Authorization: Bearer <token>` and is made
//! relative to `https://<server_name>:<port>`. So the same code runs the real kube client
//! on real sockets and, in the simulator, over turmoil.
//!
//! Built from parts instead of `kube::Config`, whose default stack dials with hyper's
//! `HttpConnector` (real DNS and sockets). Not included: kube's tracing layer, gzip, and
//! per-request read/write timeouts (long watches must not time out); a connection attempt
//! (dial plus handshake) is bounded by [`CONNECT_TIMEOUT`].

use crate::Transport;
use http::{HeaderValue, Request, Uri, header::AUTHORIZATION};
use hyper_util::{
    client::legacy::connect::{Connected, Connection},
    rt::{TokioExecutor, TokioIo, TokioTimer},
};
use kube::client::{Body, middleware::BaseUriLayer};
use rustls::pki_types::ServerName;
use std::{
    future::Future,
    io,
    net::{IpAddr, SocketAddr},
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};
use tokio_rustls::{TlsConnector, client::TlsStream};
use tower::{Service, ServiceBuilder};

/// The most time one connection attempt (dial plus TLS handshake) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The namespace requests use when none is given.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Why a client could not be built. None of these is retryable: the inputs are wrong.
#[derive(Debug, thiserror::Error)]
pub enum KubeClientError {
    /// `server_name` is neither a DNS name nor an IP address.
    #[error("invalid TLS server name {name:?}")]
    ServerName {
        /// The name given.
        name: String,
        /// The cause.
        #[source]
        source: rustls::pki_types::InvalidDnsNameError,
    },
    /// The CA bundle is not valid PEM.
    #[error("cannot parse the CA certificate PEM")]
    CaPem(#[source] io::Error),
    /// The CA bundle holds no certificate.
    #[error("the CA PEM holds no certificate")]
    NoCaCertificate,
    /// A CA certificate was rejected, or the TLS configuration failed.
    #[error("TLS configuration failed")]
    Tls(#[from] rustls::Error),
    /// The bearer token cannot be sent as a header value.
    #[error("the bearer token is not a valid header value")]
    Token(#[source] http::header::InvalidHeaderValue),
    /// The base URI built from `server_name` and the port is invalid.
    #[error("invalid base URI {uri:?}")]
    BaseUri {
        /// The URI text.
        uri: String,
        /// The cause.
        #[source]
        source: http::uri::InvalidUri,
    },
}

/// Builds a `kube::Client` that talks HTTPS to `server` through `transport`.
///
/// `server_name` is what the server certificate must name (a DNS name or an IP literal
/// such as `127.0.0.1`); it is also the host of the base URI. Must be called inside a
/// tokio runtime (the client spawns its request buffer task), and under turmoil inside the
/// host that will use the client.
pub fn kube_client<T: Transport>(
    transport: T,
    server: SocketAddr,
    server_name: &str,
    ca_pem: &str,
    bearer_token: &str,
) -> Result<kube::Client, KubeClientError> {
    let name = ServerName::try_from(server_name.to_owned()).map_err(|source| {
        KubeClientError::ServerName {
            name: server_name.to_owned(),
            source,
        }
    })?;
    let connector = TransportConnector {
        transport,
        server,
        name,
        tls: TlsConnector::from(Arc::new(tls_config(ca_pem)?)),
    };
    let mut token =
        HeaderValue::try_from(format!("Bearer {bearer_token}")).map_err(KubeClientError::Token)?;
    token.set_sensitive(true);
    let base = base_uri(server_name, server.port())?;
    let http = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .build::<_, Body>(connector);
    let svc = ServiceBuilder::new()
        .layer(BaseUriLayer::new(base))
        .map_request(move |mut req: Request<Body>| {
            req.headers_mut().insert(AUTHORIZATION, token.clone());
            req
        })
        .service(http);
    Ok(kube::Client::new(svc, DEFAULT_NAMESPACE))
}

/// `https://<server_name>:<port>`, with IPv6 literals bracketed.
fn base_uri(server_name: &str, port: u16) -> Result<Uri, KubeClientError> {
    let uri = match server_name.parse::<IpAddr>() {
        Ok(IpAddr::V6(ip)) => format!("https://[{ip}]:{port}"),
        _ => format!("https://{server_name}:{port}"),
    };
    uri.parse()
        .map_err(|source| KubeClientError::BaseUri { uri, source })
}

/// A rustls client configuration trusting only the certificates in `ca_pem`.
fn tls_config(ca_pem: &str) -> Result<rustls::ClientConfig, KubeClientError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
        roots.add(cert.map_err(KubeClientError::CaPem)?)?;
    }
    if roots.is_empty() {
        return Err(KubeClientError::NoCaCertificate);
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
}

/// The hyper connector: ignores the request URI, dials `server` through the transport and
/// does the TLS handshake for `name`.
#[derive(Clone)]
struct TransportConnector<T> {
    transport: T,
    server: SocketAddr,
    name: ServerName<'static>,
    tls: TlsConnector,
}

impl<T: Transport> Service<Uri> for TransportConnector<T> {
    type Response = TlsConn<T::Conn>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let dial = async {
                let tcp = this.transport.connect(this.server).await?;
                let tls = this.tls.connect(this.name, tcp).await?;
                Ok(TlsConn(TokioIo::new(tls)))
            };
            match tokio::time::timeout(CONNECT_TIMEOUT, dial).await {
                Ok(r) => r,
                Err(_) => {
                    tracing::debug!(server = %this.server, "kube client connect timed out");
                    Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "connect and TLS handshake timed out",
                    ))
                }
            }
        })
    }
}

/// A TLS connection as hyper sees it; reports whether ALPN chose HTTP/2.
struct TlsConn<C>(TokioIo<TlsStream<C>>);

impl<C: crate::Stream> Connection for TlsConn<C> {
    fn connected(&self) -> Connected {
        let (_, session) = self.0.inner().get_ref();
        if session.alpn_protocol() == Some(b"h2") {
            Connected::new().negotiated_h2()
        } else {
            Connected::new()
        }
    }
}

impl<C: crate::Stream> hyper::rt::Read for TlsConn<C> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        hyper::rt::Read::poll_read(Pin::new(&mut self.0), cx, buf)
    }
}

impl<C: crate::Stream> hyper::rt::Write for TlsConn<C> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        hyper::rt::Write::poll_write(Pin::new(&mut self.0), cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        hyper::rt::Write::poll_flush(Pin::new(&mut self.0), cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        hyper::rt::Write::poll_shutdown(Pin::new(&mut self.0), cx)
    }

    fn is_write_vectored(&self) -> bool {
        hyper::rt::Write::is_write_vectored(&self.0)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        hyper::rt::Write::poll_write_vectored(Pin::new(&mut self.0), cx, bufs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// IPv4 and DNS names go into the base URI as they are, IPv6 literals in brackets.
    #[test]
    fn base_uri_forms() {
        assert_eq!(
            base_uri("127.0.0.1", 6443).unwrap().to_string(),
            "https://127.0.0.1:6443/"
        );
        assert_eq!(
            base_uri("api.example", 443).unwrap().to_string(),
            "https://api.example:443/"
        );
        assert_eq!(
            base_uri("::1", 6443).unwrap().to_string(),
            "https://[::1]:6443/"
        );
    }

    /// A CA bundle without certificates is refused, as is an invalid server name.
    #[tokio::test]
    async fn bad_inputs_are_refused() {
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let r = kube_client(crate::TokioTransport, addr, "127.0.0.1", "", "t");
        assert!(matches!(r, Err(KubeClientError::NoCaCertificate)));
        let r = kube_client(crate::TokioTransport, addr, "not a name!", "", "t");
        assert!(matches!(r, Err(KubeClientError::ServerName { .. })));
    }
}
