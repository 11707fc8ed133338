use super::*;
use crate::{TokioTransport, Transport};
use std::net::SocketAddr;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    sync::oneshot,
    task::JoinHandle,
};

/// A running endpoint on a real loopback port, with its shutdown trigger.
struct Running {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<io::Result<()>>,
}

async fn start() -> Running {
    let l = TokioTransport
        .bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = l.local_addr().unwrap();
    let (stop, rx) = oneshot::channel::<()>();
    let render: Render = Arc::new(|| "# TYPE up gauge\nup 1\n".to_string());
    let task = tokio::spawn(serve_metrics(l, render, async move {
        let _ = rx.await;
    }));
    Running { addr, stop, task }
}

/// Sends one raw request with `Connection: close` and returns the whole response text.
async fn raw(addr: SocketAddr, method: &str, path: &str) -> String {
    let mut c = TokioTransport.connect(addr).await.unwrap();
    let req = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    c.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).await.unwrap();
    out
}

fn body(resp: &str) -> &str {
    resp.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

/// GET /metrics answers 200 with the Prometheus content type and the renderer's output;
/// GET /healthz answers "ok".
#[tokio::test]
async fn metrics_and_healthz_answer_200() {
    let r = start().await;
    let m = raw(r.addr, "GET", "/metrics").await;
    assert!(m.starts_with("HTTP/1.1 200 OK\r\n"), "{m}");
    assert!(
        m.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4\r\n"),
        "{m}"
    );
    assert_eq!(body(&m), "# TYPE up gauge\nup 1\n");
    let h = raw(r.addr, "GET", "/healthz").await;
    assert!(h.starts_with("HTTP/1.1 200 OK\r\n"), "{h}");
    assert_eq!(body(&h), "ok");
    r.stop.send(()).unwrap();
    r.task.await.unwrap().unwrap();
}

/// An unknown path is 404; a non-GET method on a known path is 405 with `Allow: GET`.
#[tokio::test]
async fn unknown_path_404_and_wrong_method_405() {
    let r = start().await;
    let nf = raw(r.addr, "GET", "/nope").await;
    assert!(nf.starts_with("HTTP/1.1 404 Not Found\r\n"), "{nf}");
    let na = raw(r.addr, "POST", "/metrics").await;
    assert!(
        na.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
        "{na}"
    );
    assert!(na.to_ascii_lowercase().contains("allow: get\r\n"), "{na}");
    r.stop.send(()).unwrap();
    r.task.await.unwrap().unwrap();
}

/// A keep-alive connection serves several requests, and the renderer is called per scrape.
#[tokio::test]
async fn keep_alive_renders_each_scrape() {
    let l = TokioTransport
        .bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = l.local_addr().unwrap();
    let n = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let n2 = n.clone();
    let render: Render = Arc::new(move || {
        let v = n2.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        format!("scrapes {v}\n")
    });
    let (stop, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(serve_metrics(l, render, async move {
        let _ = rx.await;
    }));
    let mut c = TokioTransport.connect(addr).await.unwrap();
    c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let first = read_response(&mut c).await;
    assert!(first.ends_with("scrapes 1\n"), "{first}");
    c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut rest = String::new();
    c.read_to_string(&mut rest).await.unwrap();
    assert!(rest.ends_with("scrapes 2\n"), "{rest}");
    stop.send(()).unwrap();
    task.await.unwrap().unwrap();
}

/// Reads one response whose body is small and sized by content-length.
async fn read_response(c: &mut tokio::net::TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    for _ in 0..100 {
        let n = c.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed early");
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().unwrap())
                })
                .unwrap();
            if body.len() >= len {
                return text;
            }
        }
    }
    panic!("response did not complete");
}

/// Beyond CONNECTIONS_MAX open connections a new one is closed without an answer; once a
/// slot frees up, requests are served again.
#[tokio::test]
async fn connections_beyond_the_cap_are_dropped() {
    let r = start().await;
    let mut held = Vec::new();
    for _ in 0..CONNECTIONS_MAX {
        let mut c = TokioTransport.connect(r.addr).await.unwrap();
        // A full request without `Connection: close` proves the server took the
        // connection (it answered) and keeps it open.
        c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let resp = read_response(&mut c).await;
        assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
        held.push(c);
    }
    let mut extra = TokioTransport.connect(r.addr).await.unwrap();
    let _ = extra
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let mut out = Vec::new();
    // Either a clean EOF or a reset: the point is that no response arrives.
    let _ = extra.read_to_end(&mut out).await;
    assert!(out.is_empty(), "{}", String::from_utf8_lossy(&out));
    held.pop();
    let mut served = false;
    for _ in 0..200 {
        let resp = raw(r.addr, "GET", "/healthz").await;
        if resp.starts_with("HTTP/1.1 200") {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(served, "a freed slot was never reused");
    r.stop.send(()).unwrap();
    r.task.await.unwrap().unwrap();
}

/// After shutdown the server returns and the port no longer accepts connections.
#[tokio::test]
async fn shutdown_stops_accepting() {
    let r = start().await;
    assert!(
        raw(r.addr, "GET", "/healthz")
            .await
            .starts_with("HTTP/1.1 200")
    );
    r.stop.send(()).unwrap();
    r.task.await.unwrap().unwrap();
    assert!(TokioTransport.connect(r.addr).await.is_err());
}
