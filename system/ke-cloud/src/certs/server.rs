//! The certificate server (KubeEdge's `httpserver`, port 10002) over the transport seam:
//! `GET /ca.crt` returns the CA's DER; `GET /edge.crt` signs the DER CSR in the request body
//! for the node in the `NodeName` header, authorized either by `Authorization: Bearer <jwt>`
//! (the join token) or, for rotation, by the node's current client certificate.
//!
//! Statuses: 401 bad or expired token or untrusted certificate, 403 a certificate of another
//! node, 400 bad CSR / subject / header (with a one-line reason), 413 body too large.

use super::{
    CertAuthority,
    authority::{CsrError, EDGE_CERT_VALIDITY_DAYS, PeerError, valid_node_name},
};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::{body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::{GracefulShutdown, Watcher},
};
use ke_core::Clock;
use ke_net::{Listener, Stream};
use rcgen::ExtendedKeyUsagePurpose;
use rustls::pki_types::CertificateDer;
use std::{
    convert::Infallible,
    future::Future,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

/// Largest CSR body read (a P-256 CSR is under 1 KiB).
pub const CSR_BYTES_MAX: usize = 64 * 1024;
/// Connections served at once; further accepts wait.
pub const CONNECTIONS_MAX: usize = 1024;
/// Time allowed for the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed for a request's headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// Time connections get to finish after shutdown.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Counters of the certificate server (monotonic).
#[derive(Debug, Default)]
pub struct CertMetrics {
    /// Connections accepted (an edge's join uses one for both of its requests).
    pub connections: AtomicU64,
    /// `/ca.crt` responses.
    pub ca_served: AtomicU64,
    /// Certificates issued by `/edge.crt` (join and rotation).
    pub certs_issued: AtomicU64,
    /// `/edge.crt` requests refused.
    pub refused: AtomicU64,
}

impl CertMetrics {
    /// The counters in Prometheus text format.
    pub fn prometheus(&self) -> String {
        let mut out = String::new();
        for (name, help, v) in [
            (
                "cloudcore_certs_connections_total",
                "connections accepted by the certificate server",
                &self.connections,
            ),
            (
                "cloudcore_certs_ca_served_total",
                "CA certificate downloads",
                &self.ca_served,
            ),
            (
                "cloudcore_certs_issued_total",
                "edge certificates issued",
                &self.certs_issued,
            ),
            (
                "cloudcore_certs_refused_total",
                "edge certificate requests refused",
                &self.refused,
            ),
        ] {
            let v = v.load(Ordering::Relaxed);
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}\n"
            ));
        }
        out
    }
}

/// What the certificate server serves from.
pub struct CertServer {
    /// The CA that signs edge certificates.
    pub ca: Arc<CertAuthority>,
    /// Wall clock for token expiry and certificate validity.
    pub clock: Arc<dyn Clock>,
    /// Validity of issued edge certificates (`edgeCertSigningDuration`), in days.
    pub edge_cert_days: u32,
    /// Counters.
    pub metrics: CertMetrics,
}

impl std::fmt::Debug for CertServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertServer")
            .field("ca", &self.ca)
            .field("edge_cert_days", &self.edge_cert_days)
            .finish_non_exhaustive()
    }
}

impl CertServer {
    /// A server for `ca` issuing 365-day edge certificates.
    pub fn new(ca: Arc<CertAuthority>, clock: Arc<dyn Clock>) -> Self {
        Self {
            ca,
            clock,
            edge_cert_days: EDGE_CERT_VALIDITY_DAYS,
            metrics: CertMetrics::default(),
        }
    }
}

/// Serves `/ca.crt` and `/edge.crt` on `listener` until `shutdown` completes, then lets open
/// connections finish for up to [`DRAIN_TIMEOUT`]. `tls` comes from
/// [`super::cert_server_acceptor`].
pub async fn serve_certs<L: Listener>(
    mut listener: L,
    tls: TlsAcceptor,
    state: Arc<CertServer>,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(CONNECTIONS_MAX));
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            () = &mut shutdown => break,
            s = slots.clone().acquire_owned() => match s {
                Ok(s) => s,
                Err(_) => break,
            },
        };
        tokio::select! {
            () = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok((sock, peer)) => {
                    state.metrics.connections.fetch_add(1, Ordering::Relaxed);
                    let (tls, state, watcher) = (tls.clone(), state.clone(), graceful.watcher());
                    tokio::spawn(async move {
                        connection(sock, peer, tls, state, watcher).await;
                        drop(slot);
                    });
                }
                Err(e) => tracing::warn!(error = %e, "certificate server accept failed"),
            },
        }
    }
    tracing::info!("certificate server shutting down");
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("certificate server connections still open after drain; closing");
    }
}

async fn connection<S: Stream>(
    sock: S,
    peer: SocketAddr,
    tls: TlsAcceptor,
    state: Arc<CertServer>,
    watcher: Watcher,
) {
    let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(sock)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return tracing::debug!(%peer, error = %e, "TLS handshake failed"),
        Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
    };
    let chain: Arc<Vec<CertificateDer<'static>>> = Arc::new(
        stream
            .get_ref()
            .1
            .peer_certificates()
            .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
            .unwrap_or_default(),
    );
    let svc = service_fn(move |req| {
        let (state, chain) = (state.clone(), chain.clone());
        async move { Ok::<_, Infallible>(handle(&state, &chain, peer, req).await) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(stream), svc);
    if let Err(e) = watcher.watch(conn).await {
        tracing::debug!(%peer, error = %e, "certificate server connection ended with error");
    }
}

/// A refused request: status and a one-line reason (the body).
#[derive(Debug)]
struct Refusal {
    status: StatusCode,
    reason: String,
}

impl Refusal {
    fn new(status: StatusCode, reason: impl Into<String>) -> Self {
        Self {
            status,
            reason: reason.into(),
        }
    }
}

fn respond(status: StatusCode, content_type: &str, body: Bytes) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    if let Ok(v) = header::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r
}

fn text(status: StatusCode, reason: &str) -> Response<Full<Bytes>> {
    respond(
        status,
        "text/plain; charset=utf-8",
        Bytes::from(format!("{reason}\n")),
    )
}

async fn handle(
    state: &CertServer,
    chain: &[CertificateDer<'static>],
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let der = |b: &[u8]| {
        respond(
            StatusCode::OK,
            "application/octet-stream",
            Bytes::copy_from_slice(b),
        )
    };
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/ca.crt") => {
            state.metrics.ca_served.fetch_add(1, Ordering::Relaxed);
            der(state.ca.cert_der())
        }
        (&Method::GET, "/edge.crt") => match edge_cert(state, chain, req).await {
            Ok((node, cert)) => {
                state.metrics.certs_issued.fetch_add(1, Ordering::Relaxed);
                let rotation = !chain.is_empty();
                tracing::info!(%peer, %node, rotation, "edge certificate issued");
                der(&cert)
            }
            Err(r) => {
                state.metrics.refused.fetch_add(1, Ordering::Relaxed);
                let (status, reason) = (r.status, &r.reason);
                tracing::info!(%peer, %status, %reason, "edge certificate refused");
                text(r.status, &r.reason)
            }
        },
        (_, "/ca.crt" | "/edge.crt") => text(StatusCode::METHOD_NOT_ALLOWED, "use GET"),
        _ => text(StatusCode::NOT_FOUND, "not found"),
    }
}

fn header_str<'a>(req: &'a Request<Incoming>, name: &str) -> Result<Option<&'a str>, Refusal> {
    match req.headers().get(name) {
        None => Ok(None),
        Some(v) => v.to_str().map(|s| Some(s.trim())).map_err(|_| {
            Refusal::new(
                StatusCode::BAD_REQUEST,
                format!("header {name} is not visible ASCII"),
            )
        }),
    }
}

/// Authorizes, reads the CSR and signs it: `(node, certificate DER)`.
async fn edge_cert(
    state: &CertServer,
    chain: &[CertificateDer<'static>],
    req: Request<Incoming>,
) -> Result<(String, CertificateDer<'static>), Refusal> {
    let node = header_str(&req, "nodename")?
        .filter(|n| !n.is_empty())
        .ok_or_else(|| Refusal::new(StatusCode::BAD_REQUEST, "missing header NodeName"))?
        .to_owned();
    if !valid_node_name(&node) {
        let reason = format!("NodeName {node:?} is not a valid node name");
        return Err(Refusal::new(StatusCode::BAD_REQUEST, reason));
    }
    authorize(state, chain, &req, &node)?;
    let usages = usages(header_str(&req, "extkeyusages")?)?;
    let csr = read_body(req).await?;
    let cert = state
        .ca
        .sign_edge_csr_with_usages(&csr, &node, state.edge_cert_days, &*state.clock, &usages)
        .map_err(|e| match e {
            CsrError::Sign(_) => Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
            e => Refusal::new(StatusCode::BAD_REQUEST, e.to_string()),
        })?;
    Ok((node, cert))
}

/// A presented client certificate decides (rotation); otherwise the bearer token must.
fn authorize(
    state: &CertServer,
    chain: &[CertificateDer<'static>],
    req: &Request<Incoming>,
    node: &str,
) -> Result<(), Refusal> {
    if !chain.is_empty() {
        return match state.ca.verify_edge_client(chain, node, &*state.clock) {
            Ok(_) => Ok(()),
            Err(e @ (PeerError::WrongNode { .. } | PeerError::NotANode { .. })) => {
                Err(Refusal::new(StatusCode::FORBIDDEN, e.to_string()))
            }
            Err(e) => {
                let reason = match &e {
                    PeerError::Untrusted(cause) => format!("{e}: {cause}"),
                    _ => e.to_string(),
                };
                Err(Refusal::new(StatusCode::UNAUTHORIZED, reason))
            }
        };
    }
    let unauthorized = |r: String| Refusal::new(StatusCode::UNAUTHORIZED, r);
    let auth = header_str(req, "authorization")?
        .ok_or_else(|| unauthorized("missing Authorization: Bearer <token>".into()))?;
    let jwt = match auth.split_once(' ') {
        Some((scheme, jwt)) if scheme.eq_ignore_ascii_case("bearer") => jwt.trim(),
        _ => return Err(unauthorized("Authorization is not a bearer token".into())),
    };
    state
        .ca
        .verify_bearer(jwt, &*state.clock)
        .map_err(|e| unauthorized(e.to_string()))
}

/// KubeEdge's optional `ExtKeyUsages` header: a JSON array of Go `x509.ExtKeyUsage` numbers
/// (1 serverAuth, 2 clientAuth). Absent: clientAuth.
fn usages(h: Option<&str>) -> Result<Vec<ExtendedKeyUsagePurpose>, Refusal> {
    let bad = |r: String| Refusal::new(StatusCode::BAD_REQUEST, r);
    let Some(h) = h.filter(|h| !h.is_empty()) else {
        return Ok(vec![ExtendedKeyUsagePurpose::ClientAuth]);
    };
    let nums: Vec<i64> = serde_json::from_str(h).map_err(|_| {
        bad(format!(
            "header ExtKeyUsages {h:?} is not a JSON array of numbers"
        ))
    })?;
    let mut out = Vec::new();
    for n in nums {
        let u = match n {
            1 => ExtendedKeyUsagePurpose::ServerAuth,
            2 => ExtendedKeyUsagePurpose::ClientAuth,
            n => return Err(bad(CsrError::Usage(n).to_string())),
        };
        if !out.contains(&u) {
            out.push(u);
        }
    }
    if out.is_empty() {
        out.push(ExtendedKeyUsagePurpose::ClientAuth);
    }
    Ok(out)
}

async fn read_body(req: Request<Incoming>) -> Result<Vec<u8>, Refusal> {
    match Limited::new(req.into_body(), CSR_BYTES_MAX).collect().await {
        Ok(b) => {
            let b = b.to_bytes();
            if b.is_empty() {
                Err(Refusal::new(
                    StatusCode::BAD_REQUEST,
                    "empty body: expected a DER CSR",
                ))
            } else {
                Ok(b.to_vec())
            }
        }
        Err(e) if e.is::<LengthLimitError>() => Err(Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("CSR larger than {CSR_BYTES_MAX} bytes"),
        )),
        Err(e) => Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            format!("reading body: {e}"),
        )),
    }
}
