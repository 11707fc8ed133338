//! The transport seam. Code in `system/` never names `tokio::net`; it is handed a
//! [`Transport`] and binds or connects through it, so the same server code runs on real
//! sockets (the daemons) and on turmoil's simulated network (the fleet simulator).
//!
//! - [`Transport`]: bind a [`Listener`], connect a stream.
//! - [`TokioTransport`]: real TCP sockets; [`BoundTransport`]: the same, dialled from a chosen
//!   local address.
//! - `TurmoilTransport` (feature `turmoil`): turmoil's simulated network (module `sim`).
//! - `kube_client` (feature `kube`): a `kube::Client` whose connections use a transport.
//! - [`metrics`]: a tiny HTTP/1.1 server for a Prometheus endpoint ([`serve_metrics`]).
//! - `tls` (feature `tls`): `ClockTime`, a rustls time source backed by ke-core's `Clock`.
//! - `process` (feature `process`): what the daemons' `main` functions share: stop on
//!   SIGTERM/SIGINT, log set-up, clap usage errors as exit 64.
//! - [`connect_unix`]: a node-local unix socket (edged's CRI runtime dials containerd).

pub mod metrics;

#[cfg(feature = "kube")]
pub mod kube_client;
#[cfg(feature = "process")]
pub mod process;
#[cfg(feature = "turmoil")]
pub mod sim;
#[cfg(feature = "tls")]
pub mod tls;

#[cfg(feature = "kube")]
pub use kube_client::{KubeClientError, kube_client};
pub use metrics::serve_metrics;
#[cfg(feature = "turmoil")]
pub use sim::{TurmoilListener, TurmoilTransport};
#[cfg(feature = "tls")]
pub use tls::ClockTime;

use std::{future::Future, io, net::SocketAddr};
use tokio::io::{AsyncRead, AsyncWrite};

/// Connects to the unix socket at `path`. Node-local only (containerd's CRI socket): it never
/// crosses the cloud–edge link, so it stays outside [`Transport`] and the simulator.
#[cfg(unix)]
pub async fn connect_unix(path: &std::path::Path) -> io::Result<tokio::net::UnixStream> {
    tokio::net::UnixStream::connect(path).await
}

/// A byte stream: what a transport's connections are.
pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Stream for T {}

/// A bound listening socket.
pub trait Listener: Send + 'static {
    /// The accepted connection type.
    type Conn: Stream;
    /// Waits for the next connection.
    fn accept(&mut self) -> impl Future<Output = io::Result<(Self::Conn, SocketAddr)>> + Send;
    /// The address actually bound (useful after binding port 0).
    fn local_addr(&self) -> io::Result<SocketAddr>;
}

/// Where sockets come from.
pub trait Transport: Clone + Send + Sync + 'static {
    /// Listening socket type.
    type Listener: Listener<Conn = Self::Conn>;
    /// Connection type, for both accepted and dialled connections.
    type Conn: Stream;
    /// Binds a listener on `addr`.
    fn bind(&self, addr: SocketAddr) -> impl Future<Output = io::Result<Self::Listener>> + Send;
    /// Connects to `addr`.
    fn connect(&self, addr: SocketAddr) -> impl Future<Output = io::Result<Self::Conn>> + Send;
}

/// Real TCP through tokio.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioTransport;

/// A tokio TCP listener.
#[derive(Debug)]
pub struct TokioListener(tokio::net::TcpListener);

impl Listener for TokioListener {
    type Conn = tokio::net::TcpStream;

    async fn accept(&mut self) -> io::Result<(Self::Conn, SocketAddr)> {
        let (s, a) = self.0.accept().await?;
        // Small request/response exchanges (API calls, hub frames) must not wait for Nagle.
        s.set_nodelay(true)?;
        Ok((s, a))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

impl Transport for TokioTransport {
    type Listener = TokioListener;
    type Conn = tokio::net::TcpStream;

    #[allow(
        clippy::disallowed_methods,
        reason = "ke-net is the one crate that opens sockets"
    )]
    async fn bind(&self, addr: SocketAddr) -> io::Result<Self::Listener> {
        Ok(TokioListener(tokio::net::TcpListener::bind(addr).await?))
    }

    #[allow(
        clippy::disallowed_methods,
        reason = "ke-net is the one crate that opens sockets"
    )]
    async fn connect(&self, addr: SocketAddr) -> io::Result<Self::Conn> {
        let s = tokio::net::TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        Ok(s)
    }
}

/// Real TCP dialled from a chosen local address (port picked by the kernel), or from
/// whatever the kernel picks when `source` is `None`. Many clients on
/// one machine (edgemark's thousands of nodes) spread over several loopback addresses
/// (`127.0.1.1`, `127.0.1.2`, ...) this way, so they do not run out of ephemeral ports to
/// one server address. Listening is as [`TokioTransport`].
#[derive(Debug, Clone, Copy)]
pub struct BoundTransport {
    /// The local address connections are made from.
    pub source: Option<std::net::IpAddr>,
}

impl Transport for BoundTransport {
    type Listener = TokioListener;
    type Conn = tokio::net::TcpStream;

    async fn bind(&self, addr: SocketAddr) -> io::Result<Self::Listener> {
        TokioTransport.bind(addr).await
    }

    async fn connect(&self, addr: SocketAddr) -> io::Result<Self::Conn> {
        let Some(source) = self.source else {
            return TokioTransport.connect(addr).await;
        };
        let socket = match source {
            std::net::IpAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            std::net::IpAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
        };
        socket.bind(SocketAddr::new(source, 0))?;
        let s = socket.connect(addr).await?;
        s.set_nodelay(true)?;
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A connection from a bound transport comes from its source address.
    #[tokio::test]
    async fn bound_transport_dials_from_its_source_address() {
        let mut l = TokioTransport
            .bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let addr = l.local_addr().unwrap();
        let source: std::net::IpAddr = "127.0.1.7".parse().unwrap();
        let dial = tokio::spawn(async move {
            let t = BoundTransport {
                source: Some(source),
            };
            let mut c = t.connect(addr).await.unwrap();
            c.write_all(b"x").await.unwrap();
        });
        let (_, peer) = l.accept().await.unwrap();
        assert_eq!(peer.ip(), source);
        dial.await.unwrap();
    }

    /// Bytes written on a dialled connection arrive on the accepted one.
    #[tokio::test]
    async fn tokio_transport_round_trip() {
        let t = TokioTransport;
        let mut l = t.bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = l.local_addr().unwrap();
        let dial = tokio::spawn(async move {
            let mut c = t.connect(addr).await.unwrap();
            c.write_all(b"hello").await.unwrap();
        });
        let (mut s, _) = l.accept().await.unwrap();
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hello");
        dial.await.unwrap();
    }
}
