//! [`TurmoilTransport`]: sockets on turmoil's simulated network (feature `turmoil`).
//!
//! Binding and connecting go through `turmoil::net`, so they must run inside a turmoil
//! host or client (`Sim::host`, `Sim::client`); outside one, turmoil panics. Addresses are
//! plain [`SocketAddr`]s: resolve a host name first with `turmoil::lookup("cloud")`.
//! Nothing here changes the simulation's determinism: turmoil's streams carry bytes in
//! simulated time, and the seed (`Builder::rng_seed`) fixes latencies and losses.
//!
//! Simulator settings that matter at scale (measured with turmoil 0.7.2, see
//! `turmoil-scale.md`):
//! - `Builder::tcp_capacity`: a host's TCP buffer size **and** the listener backlog. The
//!   default 64 panics ("server socket buffer full") when more connects arrive in one
//!   tick, so set it above the number of nodes that may connect to one host at once.
//! - `Builder::ephemeral_ports`: 16384 ports per host by default, which caps the
//!   connections one host can open (nodes multiplexed on one host each take one).
//! - `Builder::tick_duration`: 10 ms is the sweet spot; 1 ms costs 3–6× more.
//! - Host count: vanilla turmoil creates a link for every pair of hosts and scans all of
//!   them each step (cubic cost), so keep to about 20 hosts and multiplex nodes on them.
//! - turmoil TCP has no retransmit: any message loss (`fail_rate`) stalls a stream for
//!   good, so only the application's timeouts notice; partitions stall silently too.
//! - Build with `--cfg tokio_unstable` so turmoil seeds tokio's `select!` RNG.

use crate::{Listener, Transport};
use std::{io, net::SocketAddr};
use turmoil::net::{TcpListener, TcpStream};

/// Sockets on turmoil's simulated network. Usable only inside a turmoil host or client.
#[derive(Debug, Clone, Copy, Default)]
pub struct TurmoilTransport;

/// A turmoil TCP listener.
pub struct TurmoilListener(TcpListener);

impl std::fmt::Debug for TurmoilListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("TurmoilListener")
            .field(&self.0.local_addr().ok())
            .finish()
    }
}

impl Listener for TurmoilListener {
    type Conn = TcpStream;

    async fn accept(&mut self) -> io::Result<(Self::Conn, SocketAddr)> {
        self.0.accept().await
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

impl Transport for TurmoilTransport {
    type Listener = TurmoilListener;
    type Conn = TcpStream;

    async fn bind(&self, addr: SocketAddr) -> io::Result<Self::Listener> {
        Ok(TurmoilListener(TcpListener::bind(addr).await?))
    }

    async fn connect(&self, addr: SocketAddr) -> io::Result<Self::Conn> {
        TcpStream::connect(addr).await
    }
}

#[cfg(test)]
mod tests;
