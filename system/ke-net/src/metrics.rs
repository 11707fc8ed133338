//! A tiny plain-HTTP/1.1 server for a Prometheus scrape endpoint, over the transport seam.
//!
//! Routes: `GET /metrics` answers 200 with the text exposition format (whatever `render`
//! returns), `GET /healthz` answers 200 `ok`, any other path 404, any other method 405.
//!
//! Bounds: at most [`CONNECTIONS_MAX`] connections are served at once (further ones are
//! accepted and dropped at once, so a flood cannot grow memory), and a client has
//! [`HEADER_READ_TIMEOUT`] to send each request's headers; hyper applies that timeout to
//! idle keep-alive connections too, so an idle scraper cannot hold a slot forever.

use crate::Listener;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode, body::Incoming, header, service::service_fn};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
};
use std::{convert::Infallible, future::Future, io, sync::Arc, time::Duration};
use tokio::sync::Semaphore;

/// The most connections served at the same time; extra connections are dropped.
pub const CONNECTIONS_MAX: usize = 64;

/// How long a client may take to send a request's headers (also the keep-alive idle limit).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long open connections get to finish after shutdown before they are abandoned.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Pause after a failed accept (such as running out of file descriptors), so the loop
/// does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The content type of Prometheus' text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// The metrics renderer: called once per scrape.
pub type Render = Arc<dyn Fn() -> String + Send + Sync>;

/// Serves the metrics endpoint on `listener` until `shutdown` completes, then stops
/// accepting and gives open connections [`DRAIN_TIMEOUT`] to finish.
///
/// Errors: only when the listener cannot report its address at start. Accept failures are
/// logged and retried after a short pause, because they are usually transient (descriptor
/// exhaustion, a connection reset before it was accepted).
pub async fn serve_metrics<L: Listener>(
    mut listener: L,
    render: Arc<dyn Fn() -> String + Send + Sync>,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "metrics endpoint listening");
    let slots = Arc::new(Semaphore::new(CONNECTIONS_MAX));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok((sock, peer)) => match slots.clone().try_acquire_owned() {
                    Ok(permit) => serve_conn(sock, peer, permit, &render, &graceful),
                    // Debug, not warn: a flood must not flood the logs as well.
                    Err(_) => tracing::debug!(%peer, "metrics: too many connections; dropped"),
                },
                Err(e) => {
                    tracing::warn!(error = %e, "metrics: accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
        }
    }
    drop(listener);
    tracing::info!(%addr, "metrics endpoint shutting down");
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::debug!("metrics connections still open after the drain timeout; abandoning");
    }
    Ok(())
}

/// Serves one connection in its own task; the permit is held until it ends.
fn serve_conn<C: crate::Stream>(
    sock: C,
    peer: std::net::SocketAddr,
    permit: tokio::sync::OwnedSemaphorePermit,
    render: &Render,
    graceful: &GracefulShutdown,
) {
    let render = render.clone();
    let svc = service_fn(move |req: Request<Incoming>| {
        std::future::ready(Ok::<_, Infallible>(respond(&req, &render)))
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(sock), svc);
    let conn = graceful.watch(conn);
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(%peer, error = %e, "metrics connection ended with error");
        }
        drop(permit);
    });
}

/// Builds the response for `req` (the body is never read: no route takes one).
fn respond(req: &Request<Incoming>, render: &Render) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    let known = matches!(path, "/metrics" | "/healthz");
    if !known {
        return plain(StatusCode::NOT_FOUND, "text/plain", "not found\n".into());
    }
    if req.method() != Method::GET {
        let mut r = plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "method not allowed\n".into(),
        );
        r.headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET"));
        return r;
    }
    if path == "/healthz" {
        return plain(StatusCode::OK, "text/plain", "ok".into());
    }
    plain(StatusCode::OK, CONTENT_TYPE, render())
}

fn plain(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    r
}

#[cfg(test)]
mod tests;
