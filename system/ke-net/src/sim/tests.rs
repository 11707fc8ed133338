use super::*;
use crate::metrics::{self, HEADER_READ_TIMEOUT};
use std::{
    sync::{Arc, Mutex},
    time::Duration,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PORT: u16 = 7000;
const ROUNDS: u8 = 20;

/// What the client saw: (simulated time, echoed bytes) per round trip.
type Trace = Vec<(Duration, Vec<u8>)>;

/// Runs an echo server on host "server" and a client on "client" that sends ROUNDS
/// messages and records each reply with the simulated time it arrived.
fn echo_trace(seed: u64) -> Trace {
    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(Duration::from_millis(50))
        .build();
    sim.host("server", || async {
        let mut l = TurmoilTransport
            .bind(SocketAddr::from(([0, 0, 0, 0], PORT)))
            .await?;
        loop {
            let (mut s, _) = l.accept().await?;
            tokio::spawn(async move {
                let mut buf = [0u8; 64];
                loop {
                    let n = s.read(&mut buf).await.expect("read");
                    if n == 0 {
                        break;
                    }
                    s.write_all(&buf[..n]).await.expect("write");
                }
            });
        }
    });
    let trace = Arc::new(Mutex::new(Trace::new()));
    let out = trace.clone();
    sim.client("client", async move {
        let addr = SocketAddr::new(turmoil::lookup("server"), PORT);
        let mut c = TurmoilTransport.connect(addr).await?;
        for i in 0..ROUNDS {
            let msg = [b'm', i];
            c.write_all(&msg).await?;
            let mut got = [0u8; 2];
            c.read_exact(&mut got).await?;
            out.lock()
                .unwrap()
                .push((turmoil::sim_elapsed().unwrap(), got.to_vec()));
        }
        Ok(())
    });
    sim.run().unwrap();
    std::mem::take(&mut *trace.lock().unwrap())
}

/// Bytes sent from one simulated host arrive at the other and come back; the same seed
/// gives an identical trace (bytes and simulated arrival times), another seed a
/// different one (the random latencies drive the timings).
#[test]
fn turmoil_echo_is_deterministic() {
    let a = echo_trace(7);
    assert_eq!(a.len(), usize::from(ROUNDS));
    for (i, (_, bytes)) in a.iter().enumerate() {
        assert_eq!(bytes, &[b'm', u8::try_from(i).unwrap()]);
    }
    assert!(a.windows(2).all(|w| w[0].0 < w[1].0), "times must increase");
    let b = echo_trace(7);
    assert_eq!(a, b);
    let c = echo_trace(8);
    assert_ne!(a, c, "a different seed should change latencies");
}

/// The metrics endpoint runs over turmoil: a scrape works, and a client that sends no
/// request headers is disconnected after HEADER_READ_TIMEOUT of simulated time.
#[test]
fn metrics_over_turmoil_with_header_timeout() {
    let mut sim = turmoil::Builder::new()
        .simulation_duration(Duration::from_secs(60))
        .build();
    sim.host("server", || async {
        let l = TurmoilTransport
            .bind(SocketAddr::from(([0, 0, 0, 0], 9090)))
            .await?;
        let render: metrics::Render = Arc::new(|| "up 1\n".to_string());
        metrics::serve_metrics(l, render, std::future::pending()).await?;
        Ok(())
    });
    sim.client("scraper", async {
        let addr = SocketAddr::new(turmoil::lookup("server"), 9090);
        let mut c = TurmoilTransport.connect(addr).await?;
        c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await?;
        let mut resp = String::new();
        c.read_to_string(&mut resp).await?;
        assert!(resp.starts_with("HTTP/1.1 200 OK\r\n"), "{resp}");
        assert!(resp.ends_with("\r\n\r\nup 1\n"), "{resp}");

        let mut idle = TurmoilTransport.connect(addr).await?;
        let start = turmoil::sim_elapsed().unwrap();
        let mut buf = Vec::new();
        let n = idle.read_to_end(&mut buf).await.unwrap_or(0);
        let waited = turmoil::sim_elapsed().unwrap() - start;
        assert_eq!(n, 0);
        assert!(waited >= HEADER_READ_TIMEOUT, "closed after {waited:?}");
        assert!(
            waited < HEADER_READ_TIMEOUT + Duration::from_secs(1),
            "{waited:?}"
        );
        Ok(())
    });
    sim.run().unwrap();
}
