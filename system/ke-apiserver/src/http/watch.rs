//! Watch streams: newline-delimited JSON events, filtered by namespace and selectors, with
//! bookmarks, a deadline, and a `410 Gone` error event when the watcher falls behind.

use super::{HttpState, Query, header_str, selectors, table};
use crate::{
    api::{ApiError, store_err},
    registry::ResourceInfo,
    selector::Selectors,
    store::{Event, EventType, Obj},
};
use axum::{body::Body, response::Response};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, header};
use serde_json::{Value, json};
use std::{collections::VecDeque, sync::Arc, time::Duration};
use tokio::{sync::broadcast, time::Instant};

/// How often an idle watch that asked for bookmarks gets one.
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(10);
/// Longest watch when the client set no `timeoutSeconds` (kube: 30–60 minutes).
const WATCH_TIMEOUT_MAX: Duration = Duration::from_secs(1800);

struct Watch {
    st: Arc<HttpState>,
    info: Arc<ResourceInfo>,
    prefix: String,
    ns: Option<String>,
    sel: Selectors,
    backlog: VecDeque<Arc<Event>>,
    rx: broadcast::Receiver<Arc<Event>>,
    last_rv: u64,
    bookmarks: bool,
    initial_end: bool,
    table: bool,
    deadline: Instant,
    next_bookmark: Instant,
    done: bool,
    _guard: super::metrics::WatcherGuard,
}

/// Starts a watch response.
pub(super) fn serve(
    st: Arc<HttpState>,
    info: Arc<ResourceInfo>,
    ns: Option<String>,
    q: &Query,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let sel = selectors(q)?;
    let initial = q.get("sendInitialEvents").map(String::as_str) == Some("true");
    let from = match q.get("resourceVersion").map(String::as_str) {
        None | Some("" | "0") => None,
        Some(_) if initial => None,
        Some(r) => Some(
            r.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {r:?}")))?,
        ),
    };
    let prefix = info.storage_prefix();
    let now = Instant::now();
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map_or(WATCH_TIMEOUT_MAX, |s| {
            Duration::from_secs(s).min(WATCH_TIMEOUT_MAX)
        });
    let sub = st.api.store.watch(&prefix, from);
    let (backlog, rx, rv, gone) = match sub {
        Ok(s) => (s.backlog.into(), s.rx, s.rv, None),
        Err(e @ crate::store::StoreError::Gone { .. }) => {
            let rx = st.api.store.watch(&prefix, None).map_err(store_err)?.rx;
            (VecDeque::new(), rx, 0, Some(store_err(e)))
        }
        Err(e) => return Err(store_err(e)),
    };
    let w = Watch {
        table: table::wants_table(header_str(headers, header::ACCEPT)),
        _guard: st.metrics.watcher(),
        st,
        info,
        prefix,
        ns,
        sel,
        backlog,
        rx,
        last_rv: rv,
        bookmarks: q.get("allowWatchBookmarks").map(String::as_str) == Some("true"),
        initial_end: initial,
        deadline: now + timeout,
        next_bookmark: now + BOOKMARK_INTERVAL,
        done: false,
    };
    let first: Option<Bytes> = gone.map(|e| line("ERROR", &e.status()));
    let stream = futures::stream::unfold((w, first), |(mut w, first)| async move {
        if let Some(b) = first {
            w.done = true;
            return Some((Ok::<_, std::convert::Infallible>(b), (w, None)));
        }
        w.next().await.map(|b| (Ok(b), (w, None)))
    });
    let mut r = Response::new(Body::from_stream(stream));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(r)
}

fn line(kind: &str, obj: &Value) -> Bytes {
    let mut s = json!({"type": kind, "object": obj}).to_string();
    s.push('\n');
    Bytes::from(s)
}

impl Watch {
    async fn next(&mut self) -> Option<Bytes> {
        loop {
            if self.done {
                return None;
            }
            if let Some(ev) = self.backlog.pop_front() {
                if let Some(b) = self.render(&ev) {
                    return Some(b);
                }
                continue;
            }
            if self.initial_end {
                self.initial_end = false;
                return Some(self.bookmark(true));
            }
            tokio::select! {
                () = self.st.shutdown.cancelled() => return None,
                () = tokio::time::sleep_until(self.deadline) => return None,
                () = tokio::time::sleep_until(self.next_bookmark), if self.bookmarks => {
                    self.next_bookmark = Instant::now() + BOOKMARK_INTERVAL;
                    return Some(self.bookmark(false));
                }
                r = self.rx.recv() => match r {
                    Ok(ev) => {
                        self.last_rv = self.last_rv.max(ev.rv());
                        if *ev.prefix == *self.prefix
                            && let Some(b) = self.render(&ev) {
                                return Some(b);
                            }
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        // Every event up to `last_rv` was received; the missed ones are newer.
                        // Resume from the watch window, as the client would by watching again
                        // from its last version (kube-apiserver closes a slow watcher and the
                        // client does that): no relist of the whole collection. Only when
                        // the window has moved past them does the client get 410 and relist.
                        match self.st.api.store.watch(&self.prefix, Some(self.last_rv)) {
                            Ok(sub) => {
                                tracing::debug!(missed = n, from = self.last_rv, "watcher fell behind; resuming from the window");
                                self.backlog = sub.backlog.into();
                                self.rx = sub.rx;
                                self.last_rv = sub.rv;
                            }
                            Err(_) => {
                                self.done = true;
                                tracing::warn!(missed = n, "watcher fell behind the window; closing with 410");
                                let e = ApiError::gone("watcher fell behind the event stream; relist");
                                return Some(line("ERROR", &e.status()));
                            }
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
            }
        }
    }

    fn selected(&self, o: &Obj) -> bool {
        self.ns.as_deref().is_none_or(|ns| o.namespace == ns) && self.sel.matches(o)
    }

    /// The event as this watcher sees it: an object entering the selection is ADDED, one
    /// leaving it is DELETED.
    fn render(&self, ev: &Event) -> Option<Bytes> {
        let now = self.selected(&ev.obj);
        let before = ev.prev.as_ref().is_some_and(|p| self.selected(p));
        let kind = match (ev.kind, before, now) {
            (EventType::Added, _, true) => EventType::Added,
            (EventType::Modified, true, true) => EventType::Modified,
            (EventType::Modified, false, true) => EventType::Added,
            (EventType::Modified, true, false) => EventType::Deleted,
            (EventType::Deleted, _, true) => EventType::Deleted,
            _ => return None,
        };
        if self.table {
            let meta = json!({"resourceVersion": ev.obj.rv.to_string()});
            let t = table::table(
                &self.info,
                std::slice::from_ref(&ev.obj),
                meta,
                self.st.api.clock().now_utc(),
            );
            return Some(line(kind.as_str(), &t));
        }
        let mut out = Vec::with_capacity(ev.obj.json.len() + 40);
        out.extend_from_slice(b"{\"type\":\"");
        out.extend_from_slice(kind.as_str().as_bytes());
        out.extend_from_slice(b"\",\"object\":");
        out.extend_from_slice(&ev.obj.json);
        out.extend_from_slice(b"}\n");
        Some(Bytes::from(out))
    }

    fn bookmark(&self, initial_end: bool) -> Bytes {
        let mut meta = json!({"resourceVersion": self.last_rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let obj = json!({"kind": self.info.kind, "apiVersion": self.info.api_version(), "metadata": meta});
        line("BOOKMARK", &obj)
    }
}
