//! `pods/log` and `pods/exec`: resolve the pod, its node and container here, then hand the
//! stream to the [`PodStreams`] seam. Exec speaks the remotecommand WebSocket protocol
//! (`v5.channel.k8s.io`, `v4.channel.k8s.io`: binary messages whose first byte is the channel,
//! 0 stdin, 1 stdout, 2 stderr, 3 status, 4 resize, 255 close in v5). SPDY (kubectl's fallback,
//! a POST with `Upgrade: SPDY/3.1`) is not supported: such a request gets a 400 saying so.

use std::{collections::BTreeMap, sync::Arc};

use axum::{body::Body, extract::Request, response::Response};
use futures::{SinkExt, StreamExt};
use http::{HeaderValue, Method, StatusCode, header};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{
        Message as WsMessage,
        handshake::derive_accept_key,
        protocol::{CloseFrame, Role, frame::coding::CloseCode},
    },
};
use tokio_util::sync::CancellationToken;

use super::HttpState;
use crate::{
    api::ApiError,
    streams::{ExecRequest, ExecStream, LogRequest, PodRef, PodStreams, StreamError},
};

/// The exec subprotocols served, most preferred first.
const PROTOCOLS: &[&str] = &["v5.channel.k8s.io", "v4.channel.k8s.io"];

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::bad_request(msg)
}

fn unavailable(msg: String) -> ApiError {
    ApiError {
        code: 503,
        reason: "ServiceUnavailable",
        message: msg,
        details: None,
    }
}

fn stream_err(e: StreamError) -> ApiError {
    match e {
        StreamError::Unreachable(m) => unavailable(m),
        StreamError::Refused(m) => bad(m),
    }
}

/// Repeated query parameters (`command=a&command=b`) keep their order.
fn query_all(req: &Request) -> Vec<(String, String)> {
    req.uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

fn flag(q: &BTreeMap<String, String>, k: &str) -> bool {
    matches!(q.get(k).map(String::as_str), Some("true" | "1"))
}

/// The pod's node and container, as kube-apiserver resolves them.
fn resolve(
    st: &HttpState,
    ns: &str,
    name: &str,
    container: Option<&str>,
) -> Result<PodRef, ApiError> {
    let info = st.api.resource("", "v1", "pods")?;
    let obj = st.api.get(&info, ns, name)?;
    let pod: Value = serde_json::from_slice(&obj.json)
        .map_err(|e| ApiError::internal(format!("stored pod: {e}")))?;
    let names: Vec<String> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str().map(str::to_owned))
        .collect();
    let default = pod
        .pointer("/metadata/annotations/kubectl.kubernetes.io~1default-container")
        .and_then(Value::as_str);
    let container = match (container.filter(|c| !c.is_empty()), names.as_slice()) {
        (Some(c), _) if names.iter().any(|n| n == c) => c.to_owned(),
        (Some(c), _) => {
            return Err(bad(format!("container {c} is not valid for pod {name}")));
        }
        (None, [only]) => only.clone(),
        (None, _) if default.is_some_and(|d| names.iter().any(|n| n == d)) => {
            default.unwrap_or_default().to_owned()
        }
        (None, _) => {
            return Err(bad(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                names.join(" ")
            )));
        }
    };
    let node = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| bad(format!("pod {name} does not have a host assigned")))?;
    Ok(PodRef {
        node: node.to_owned(),
        namespace: ns.to_owned(),
        name: name.to_owned(),
        uid: pod
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .into(),
        container,
    })
}

fn seam(st: &HttpState, pod: &PodRef) -> Result<Arc<dyn PodStreams>, ApiError> {
    st.pod_streams().ok_or_else(|| {
        unavailable(format!(
            "cannot reach node {}: this API server has no connection to the nodes (no stream \
             proxy such as cloudcore's CloudStream is configured)",
            pod.node
        ))
    })
}

/// `GET .../pods/<name>/log`.
pub(super) async fn log(
    st: &Arc<HttpState>,
    ns: &str,
    name: &str,
    req: Request,
) -> Result<Response, ApiError> {
    if req.method() != Method::GET {
        return Err(ApiError::method_not_allowed(req.method().as_str()));
    }
    let q: BTreeMap<String, String> = query_all(&req).into_iter().collect();
    if flag(&q, "previous") {
        return Err(bad(
            "previous=true is not supported: the logs of terminated container instances are \
             not kept apart (output.log holds every run)",
        ));
    }
    if flag(&q, "timestamps") {
        return Err(bad("timestamps=true is not supported by edge log streams"));
    }
    let tail_lines = match q.get("tailLines") {
        None => None,
        Some(t) => match t.parse::<i64>() {
            Ok(n) if n < 0 => None,
            Ok(n) => Some(n.unsigned_abs()),
            Err(_) => return Err(bad(format!("tailLines: invalid value {t:?}"))),
        },
    };
    let pod = resolve(st, ns, name, q.get("container").map(String::as_str))?;
    let streams = seam(st, &pod)?;
    let follow = flag(&q, "follow");
    let body = streams
        .logs(LogRequest {
            pod,
            follow,
            tail_lines,
        })
        .await
        .map_err(stream_err)?;
    let stop = st.shutdown.clone();
    let body = body.take_until(async move { stop.cancelled().await });
    let mut r = Response::new(Body::from_stream(
        body.map(Ok::<_, std::convert::Infallible>),
    ));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(r)
}

fn chosen_protocol(req: &Request) -> Option<&'static str> {
    let offered: Vec<String> = req
        .headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|p| p.trim().to_owned()))
        .collect();
    PROTOCOLS
        .iter()
        .copied()
        .find(|p| offered.iter().any(|o| o == p))
}

fn exec_request(
    req: &Request,
    pod_for: impl FnOnce(Option<&str>) -> Result<PodRef, ApiError>,
) -> Result<ExecRequest, ApiError> {
    let all = query_all(req);
    let command: Vec<String> = all
        .iter()
        .filter(|(k, _)| k == "command")
        .map(|(_, v)| v.clone())
        .collect();
    if command.is_empty() {
        return Err(bad("you must specify at least 1 command"));
    }
    let q: BTreeMap<String, String> = all.into_iter().collect();
    let pod = pod_for(q.get("container").map(String::as_str))?;
    Ok(ExecRequest {
        pod,
        command,
        stdin: flag(&q, "stdin"),
        tty: flag(&q, "tty"),
    })
}

/// `GET|POST .../pods/<name>/exec` with a WebSocket upgrade.
pub(super) async fn exec(
    st: &Arc<HttpState>,
    ns: &str,
    name: &str,
    mut req: Request,
) -> Result<Response, ApiError> {
    if !matches!(*req.method(), Method::GET | Method::POST) {
        return Err(ApiError::method_not_allowed(req.method().as_str()));
    }
    let exec = exec_request(&req, |c| resolve(st, ns, name, c))?;
    let streams = seam(st, &exec.pod)?;
    // Checked before the protocol: kubectl retries a refused WebSocket upgrade with SPDY, and
    // that retry must report the node's error, not only that SPDY is unsupported.
    streams.check(&exec.pod).map_err(stream_err)?;
    let upgrade = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if upgrade != "websocket" {
        return Err(bad(format!(
            "exec needs a WebSocket upgrade with subprotocol {} (got Upgrade: {upgrade:?}); \
             SPDY is not supported by this API server",
            PROTOCOLS.join(" or ")
        )));
    }
    let protocol = chosen_protocol(&req).ok_or_else(|| {
        bad(format!(
            "no supported remotecommand subprotocol offered; supported: {}",
            PROTOCOLS.join(", ")
        ))
    })?;
    let key = req
        .headers()
        .get(header::SEC_WEBSOCKET_KEY)
        .map(|k| derive_accept_key(k.as_bytes()))
        .ok_or_else(|| bad("missing Sec-WebSocket-Key"))?;
    let on_upgrade = hyper::upgrade::on(&mut req);
    let session = streams.exec(exec).await.map_err(stream_err)?;
    let stop = st.shutdown.clone();
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(io) => {
                let ws =
                    WebSocketStream::from_raw_socket(TokioIo::new(io), Role::Server, None).await;
                pump(ws, session, stop).await;
            }
            Err(e) => tracing::debug!(error = %e, "exec upgrade failed"),
        }
    });
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static(protocol),
    );
    if let Ok(v) = HeaderValue::from_str(&key) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    Ok(r)
}

/// Copies between the client's WebSocket and the session until either ends.
async fn pump<S>(ws: WebSocketStream<S>, session: ExecStream, stop: CancellationToken)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let ExecStream {
        mut input,
        mut output,
    } = session;
    let (mut tx, mut rx) = ws.split();
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            out = output.next() => match out {
                Some(data) => {
                    if tx.send(WsMessage::Binary(data)).await.is_err() {
                        return;
                    }
                }
                None => break,
            },
            msg = rx.next() => match msg {
                // Resize (4) and unknown channels are ignored.
                Some(Ok(WsMessage::Binary(data)))
                    if matches!(data.first(), Some(0 | 255))
                        && input.send(data.clone()).await.is_err() =>
                {
                    break;
                }
                Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
        }
    }
    let frame = CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    };
    let _ = tx.send(WsMessage::Close(Some(frame))).await;
}
