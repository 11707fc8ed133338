//! [`InProcess`]: a `kube::Client` transport that hands each request straight to the API
//! server's router, for a client living in the same process as the server (cloudcore with
//! its embedded API server). No socket, TLS or HTTP framing: the request and the streaming
//! response body are passed as values.
//!
//! What the router sees is what it sees over HTTPS: the same method, path, query, headers
//! and body, with `Authorization: Bearer <admin token>` added, so every request is
//! authenticated and authorized like any client's and counted in the request metrics. The
//! router reads nothing that a connection sets (no peer address, `ConnectInfo` or TLS
//! information); the URI is in origin form (`/api/v1/...?...`), as HTTP/1.1 delivers it.
//!
//! Differences from a socket:
//! - Upgrades are refused (a request with an `Upgrade` header or `CONNECT`): there is no
//!   connection to hand over, so `pods/exec` and attach need HTTPS. Refusing before the
//!   router runs keeps an exec session from being opened on an edge for nothing.
//! - Once the server stops serving (its shutdown token is cancelled, as at the end of
//!   [`Server::serve`](crate::Server::serve)), new requests fail as a closed listener would
//!   (`ConnectionRefused`); open watches end as they do for HTTP clients, since the watch
//!   streams watch the same token.
//! - Before `serve` runs, requests are already answered (over HTTPS they would wait).
//! - The handler runs in the caller's task; dropping the request future drops it, as a
//!   stream reset does over HTTP/2 (the API's writes are synchronous, so a write is whole
//!   or not done).
//! - The client keeps the API (and its store) alive for as long as it lives.

use crate::http::HttpState;
use axum::body::Body;
use http::{HeaderValue, Method, Request, Response, header};
use std::{
    convert::Infallible,
    future::Future,
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};
use tokio_util::sync::CancellationToken;
use tower::Service;

/// The namespace an in-process client uses when none is given.
pub const DEFAULT_NAMESPACE: &str = "default";

/// A tower service answering `kube::Client` requests with the API server's router.
#[derive(Clone)]
pub struct InProcess {
    router: axum::Router,
    token: HeaderValue,
    shutdown: CancellationToken,
}

impl std::fmt::Debug for InProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcess").finish_non_exhaustive()
    }
}

impl InProcess {
    /// Serves requests with `state`'s router, authenticated as the holder of `bearer_token`.
    ///
    /// # Errors
    /// The token cannot be sent as a header value.
    pub fn new(
        state: Arc<HttpState>,
        bearer_token: &str,
    ) -> Result<Self, header::InvalidHeaderValue> {
        let mut token = HeaderValue::try_from(format!("Bearer {bearer_token}"))?;
        token.set_sensitive(true);
        Ok(Self {
            shutdown: state.shutdown.clone(),
            router: crate::http::router(state),
            token,
        })
    }

    /// A `kube::Client` over this service, with [`DEFAULT_NAMESPACE`]. Must be called inside
    /// a tokio runtime (the client spawns its request buffer task).
    pub fn into_client(self) -> kube::Client {
        kube::Client::new(self, DEFAULT_NAMESPACE)
    }
}

type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<Response<Body>, io::Error>> + Send + 'static>>;

impl Service<Request<kube::client::Body>> for InProcess {
    type Response = Response<Body>;
    type Error = io::Error;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), io::Error>> {
        // The router is always ready.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<kube::client::Body>) -> ResponseFuture {
        if self.shutdown.is_cancelled() {
            return refused(
                io::ErrorKind::ConnectionRefused,
                "the API server has stopped",
            );
        }
        if req.method() == Method::CONNECT || req.headers().contains_key(header::UPGRADE) {
            return refused(
                io::ErrorKind::Unsupported,
                "the in-process API client cannot upgrade connections (exec, attach): use HTTPS",
            );
        }
        let mut req = req.map(Body::new);
        req.headers_mut()
            .insert(header::AUTHORIZATION, self.token.clone());
        let fut = Service::<Request<Body>>::call(&mut self.router, req);
        Box::pin(async move { fut.await.map_err(|e: Infallible| match e {}) })
    }
}

fn refused(kind: io::ErrorKind, why: &'static str) -> ResponseFuture {
    Box::pin(std::future::ready(Err(io::Error::new(kind, why))))
}
