//! A minimal HTTPS client for the two bootstrap requests: one `GET` per connection, HTTP/1.1
//! (hyper's connection-level client) over TLS over a [`Transport`] connection, bounded in time
//! and response size.

use super::Error;
use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use ke_net::Transport;
use rustls::{ClientConfig, pki_types::ServerName};
use std::{net::SocketAddr, sync::Arc, time::Duration};
use tokio_rustls::TlsConnector;

/// Largest response body read (a certificate is under 2 KiB).
pub const RESPONSE_BYTES_MAX: usize = 64 * 1024;
/// Deadline of one request, connection and handshake included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// One GET request.
pub(crate) struct Get<'a> {
    /// Request path (`/ca.crt`, `/edge.crt`).
    pub(crate) path: &'static str,
    /// Extra headers.
    pub(crate) headers: Vec<(&'static str, String)>,
    /// Body (KubeEdge sends the CSR in the body of a GET).
    pub(crate) body: Vec<u8>,
    /// Where and whom to ask.
    pub(crate) addr: SocketAddr,
    /// Name the server certificate must carry (and the `Host` header).
    pub(crate) server_name: &'a str,
}

/// Sends `get` and returns the body of a 200 answer; any other status is
/// [`Error::Refused`] with the server's one-line reason.
pub(crate) async fn get<T: Transport>(
    transport: &T,
    tls: Arc<ClientConfig>,
    get: Get<'_>,
) -> Result<Bytes, Error> {
    let (addr, path) = (get.addr, get.path);
    let (status, body) = tokio::time::timeout(REQUEST_TIMEOUT, exchange(transport, tls, get))
        .await
        .map_err(|_| Error::Timeout { addr, path })??;
    if status == StatusCode::OK {
        return Ok(body);
    }
    let mut reason = String::from_utf8_lossy(&body).trim().to_owned();
    reason.truncate(500);
    Err(Error::Refused {
        path,
        status: status.as_u16(),
        reason,
    })
}

async fn exchange<T: Transport>(
    transport: &T,
    tls: Arc<ClientConfig>,
    get: Get<'_>,
) -> Result<(StatusCode, Bytes), Error> {
    let name = ServerName::try_from(get.server_name.to_owned())
        .map_err(|_| Error::InvalidServerName(get.server_name.to_owned()))?;
    let tcp = transport
        .connect(get.addr)
        .await
        .map_err(|source| Error::Connect {
            addr: get.addr,
            source,
        })?;
    let stream = TlsConnector::from(tls)
        .connect(name, tcp)
        .await
        .map_err(|source| Error::Handshake {
            addr: get.addr,
            source,
        })?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(Error::Http)?;
    let host = match get.server_name.parse::<std::net::Ipv6Addr>() {
        Ok(_) => format!("[{}]:{}", get.server_name, get.addr.port()),
        Err(_) => format!("{}:{}", get.server_name, get.addr.port()),
    };
    let mut req = Request::builder()
        .method(Method::GET)
        .uri(get.path)
        .header(header::HOST, host)
        .header(header::USER_AGENT, "edgecore");
    for (k, v) in &get.headers {
        req = req.header(*k, v);
    }
    let req = req
        .body(Full::new(Bytes::from(get.body)))
        .map_err(|e| Error::BadResponse(format!("building request: {e}")))?;
    let response = async move {
        let resp = sender.send_request(req).await.map_err(Error::Http)?;
        let status = resp.status();
        let body = Limited::new(resp.into_body(), RESPONSE_BYTES_MAX)
            .collect()
            .await
            .map_err(|e| Error::BadResponse(format!("reading response body: {e}")))?;
        Ok((status, body.to_bytes()))
    };
    drive(response, conn).await
}

/// Polls the request and the connection together. The connection may finish first (the
/// server closed after answering); the answer is then already in the request's channel.
async fn drive<R, C>(response: R, conn: C) -> Result<(StatusCode, Bytes), Error>
where
    R: Future<Output = Result<(StatusCode, Bytes), Error>>,
    C: Future<Output = Result<(), hyper::Error>>,
{
    tokio::pin!(response, conn);
    let mut conn_done = false;
    loop {
        tokio::select! {
            biased;
            r = &mut response => return r,
            c = &mut conn, if !conn_done => {
                c.map_err(Error::Http)?;
                conn_done = true;
            }
        }
    }
}
