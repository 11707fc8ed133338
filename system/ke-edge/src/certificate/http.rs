//! A minimal HTTPS client for the bootstrap requests: HTTP/1.1 (hyper's connection-level
//! client) over TLS over a [`Transport`] connection, bounded in time and response size. A
//! join sends both of its requests (`/ca.crt`, then `/edge.crt`) on one connection when the
//! server keeps it open (see [`super::bootstrap`]).

use super::Error;
use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::{Connection, SendRequest};
use hyper_util::rt::TokioIo;
use ke_net::Transport;
use rustls::{
    ClientConfig,
    pki_types::{CertificateDer, ServerName},
};
use std::{net::SocketAddr, sync::Arc, time::Duration};
use tokio_rustls::{TlsConnector, client::TlsStream};

/// Largest response body read (a certificate is under 2 KiB).
pub const RESPONSE_BYTES_MAX: usize = 64 * 1024;
/// Deadline of one request, and of opening a connection (TCP and TLS handshake).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// One GET request.
#[derive(Clone)]
pub(crate) struct Get {
    /// Request path (`/ca.crt`, `/edge.crt`).
    pub(crate) path: &'static str,
    /// Extra headers.
    pub(crate) headers: Vec<(&'static str, String)>,
    /// Body (KubeEdge sends the CSR in the body of a GET).
    pub(crate) body: Vec<u8>,
}

/// An open HTTP/1.1 connection to the certificate server.
pub(crate) struct Conn<S: ke_net::Stream> {
    sender: SendRequest<Full<Bytes>>,
    /// hyper's side of the connection: polled while a request is out.
    conn: Connection<TokioIo<TlsStream<S>>, Full<Bytes>>,
    /// `conn` has finished (the server closed): it is not polled again.
    conn_done: bool,
    /// The server's certificate chain as shown in the handshake (end entity first).
    chain: Vec<CertificateDer<'static>>,
    addr: SocketAddr,
    /// `Host` header.
    host: String,
}

/// Connects to `addr`, completes the TLS handshake with `tls` (the server's certificate must
/// name `server_name` if `tls` verifies it) and the HTTP/1.1 handshake.
pub(crate) async fn open<T: Transport>(
    transport: &T,
    tls: Arc<ClientConfig>,
    addr: SocketAddr,
    server_name: &str,
) -> Result<Conn<T::Conn>, Error> {
    let name = ServerName::try_from(server_name.to_owned())
        .map_err(|_| Error::InvalidServerName(server_name.to_owned()))?;
    let connect = async {
        let tcp = transport
            .connect(addr)
            .await
            .map_err(|source| Error::Connect { addr, source })?;
        let stream = TlsConnector::from(tls)
            .connect(name, tcp)
            .await
            .map_err(|source| Error::Handshake { addr, source })?;
        let chain = stream
            .get_ref()
            .1
            .peer_certificates()
            .map(<[CertificateDer<'static>]>::to_vec)
            .unwrap_or_default();
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(Error::Http)?;
        Ok::<_, Error>((sender, conn, chain))
    };
    let (sender, conn, chain) = tokio::time::timeout(REQUEST_TIMEOUT, connect)
        .await
        .map_err(|_| Error::Timeout {
            addr,
            path: "(connect)",
        })??;
    let host = match server_name.parse::<std::net::Ipv6Addr>() {
        Ok(_) => format!("[{server_name}]:{}", addr.port()),
        Err(_) => format!("{server_name}:{}", addr.port()),
    };
    Ok(Conn {
        sender,
        conn,
        conn_done: false,
        chain,
        addr,
        host,
    })
}

impl<S: ke_net::Stream> Conn<S> {
    /// The server's certificate chain from the handshake, end entity first.
    pub(crate) fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// The server address.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// True while another request can be sent (the server has not closed the connection).
    pub(crate) fn is_open(&self) -> bool {
        !self.conn_done && !self.sender.is_closed()
    }

    /// Sends `get` and returns the body of a 200 answer; any other status is
    /// [`Error::Refused`] with the server's one-line reason.
    pub(crate) async fn get(&mut self, get: Get) -> Result<Bytes, Error> {
        let (addr, path) = (self.addr, get.path);
        let (status, body) = tokio::time::timeout(REQUEST_TIMEOUT, self.exchange(get))
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

    async fn exchange(&mut self, get: Get) -> Result<(StatusCode, Bytes), Error> {
        let mut req = Request::builder()
            .method(Method::GET)
            .uri(get.path)
            .header(header::HOST, &self.host)
            .header(header::USER_AGENT, "edgecore");
        for (k, v) in &get.headers {
            req = req.header(*k, v);
        }
        let req = req
            .body(Full::new(Bytes::from(get.body)))
            .map_err(|e| Error::BadResponse(format!("building request: {e}")))?;
        let sender = &mut self.sender;
        let response = async move {
            sender.ready().await.map_err(Error::Http)?;
            let resp = sender.send_request(req).await.map_err(Error::Http)?;
            let status = resp.status();
            let body = Limited::new(resp.into_body(), RESPONSE_BYTES_MAX)
                .collect()
                .await
                .map_err(|e| Error::BadResponse(format!("reading response body: {e}")))?;
            Ok((status, body.to_bytes()))
        };
        drive(response, &mut self.conn, &mut self.conn_done).await
    }
}

/// Polls the request and the connection together. The connection may finish first (the
/// server closed after answering); the answer is then already in the request's channel.
async fn drive<R, C>(
    response: R,
    conn: &mut C,
    conn_done: &mut bool,
) -> Result<(StatusCode, Bytes), Error>
where
    R: Future<Output = Result<(StatusCode, Bytes), Error>>,
    C: Future<Output = Result<(), hyper::Error>> + Unpin,
{
    tokio::pin!(response);
    loop {
        tokio::select! {
            biased;
            r = &mut response => return r,
            c = &mut *conn, if !*conn_done => {
                *conn_done = true;
                c.map_err(Error::Http)?;
            }
        }
    }
}
