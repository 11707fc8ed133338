//! The in-process kube client (`Server::in_process_client`): CRUD and watches go through the
//! router as over HTTPS (authenticated as the admin, counted in the request metrics), watches
//! end when the server stops, and requests after that fail instead of hanging.

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use ke_apiserver::{Deps, Server, ServerConfig, http::HttpState, store::StoreOptions};
use ke_core::{Entropy, Seed};
use ke_net::TokioTransport;
use kube::{
    Api, ResourceExt,
    api::{ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams},
};
use serde_json::json;
use std::{sync::Arc, time::Duration};
use tokio::{sync::oneshot, task::JoinHandle};

/// Bound on every single wait, only so that a broken server fails the test instead of hanging
/// it; nothing here asserts on how long anything takes.
const WAIT: Duration = Duration::from_secs(30);

struct Running {
    client: kube::Client,
    state: Arc<HttpState>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

/// A server on a free loopback port, serving, and an in-process client for it.
async fn start(dir: &std::path::Path) -> Running {
    start_with(dir, StoreOptions::default()).await
}

/// As [`start`], with the store's watch window and fan-out buffer given.
async fn start_with(dir: &std::path::Path, store: StoreOptions) -> Running {
    let mut cfg = ServerConfig::on_free_loopback_port(dir);
    cfg.store = store;
    let deps = Deps::with_system_clock(TokioTransport, Entropy::seeded(Seed(7), "in-process"));
    let server = Server::start(cfg, deps).await.expect("server starts");
    let client = server.in_process_client().expect("client");
    let state = server.state();
    let (stop, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(server.serve(async move {
        let _ = rx.await;
    }));
    Running {
        client,
        state,
        stop,
        task,
    }
}

fn configmap(name: &str, v: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {"v": v}}))
        .expect("configmap")
}

/// Goal: create, get, patch, list and watch work through the in-process client, a watch sees
/// the change made after it started, and the server's request metrics count every request by
/// verb, with none failing authentication.
#[tokio::test]
async fn in_process_client_creates_gets_patches_lists_and_watches() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = start(dir.path()).await;
    let api: Api<ConfigMap> = Api::default_namespaced(r.client.clone());

    let created = api
        .create(&PostParams::default(), &configmap("a", "1"))
        .await
        .expect("create");
    let rv = created.resource_version().expect("resourceVersion");
    let got = api.get("a").await.expect("get");
    assert_eq!(
        got.data.as_ref().and_then(|d| d.get("v")),
        Some(&"1".into())
    );

    let watch = api
        .watch(&WatchParams::default().timeout(60), &rv)
        .await
        .expect("watch starts");
    let mut watch = watch.boxed();

    let patch = Patch::Merge(json!({"data": {"v": "2"}}));
    let patched = api
        .patch("a", &PatchParams::default(), &patch)
        .await
        .expect("patch");
    assert_eq!(
        patched.data.as_ref().and_then(|d| d.get("v")),
        Some(&"2".into())
    );

    let list = api.list(&ListParams::default()).await.expect("list");
    let names: Vec<String> = list.items.iter().map(ResourceExt::name_any).collect();
    assert_eq!(names, ["a"]);

    let ev = tokio::time::timeout(WAIT, watch.try_next())
        .await
        .expect("a watch event in time")
        .expect("watch stream ok")
        .expect("watch stream open");
    match ev {
        WatchEvent::Modified(cm) => {
            assert_eq!(cm.name_any(), "a");
            assert_eq!(cm.resource_version(), patched.resource_version());
        }
        other => panic!("expected MODIFIED, got {other:?}"),
    }

    let by_verb = r.state.metrics.requests_by_verb();
    for verb in ["create", "get", "patch", "list", "watch"] {
        assert_eq!(by_verb.get(verb), Some(&1), "{verb} in {by_verb:?}");
    }
    assert_eq!(by_verb.get("error"), None, "no request failed: {by_verb:?}");

    drop(watch);
    let _ = r.stop.send(());
    tokio::time::timeout(WAIT, r.task)
        .await
        .expect("server stops in time")
        .expect("server task");
}

/// Goal: when the server stops serving, an open in-process watch ends (as an HTTP client's
/// does) instead of hanging, the server's shutdown does not wait on it, and later requests
/// fail at once.
#[tokio::test]
async fn in_process_watch_ends_when_the_server_stops() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = start(dir.path()).await;
    let api: Api<ConfigMap> = Api::default_namespaced(r.client.clone());
    api.create(&PostParams::default(), &configmap("a", "1"))
        .await
        .expect("create");
    let mut watch = api
        .watch(&WatchParams::default().timeout(290), "0")
        .await
        .expect("watch starts")
        .boxed();
    // The initial state first: the watch is open and being served.
    let first = tokio::time::timeout(WAIT, watch.try_next())
        .await
        .expect("initial event in time")
        .expect("watch stream ok");
    assert!(matches!(first, Some(WatchEvent::Added(_))), "{first:?}");

    let _ = r.stop.send(());
    tokio::time::timeout(WAIT, r.task)
        .await
        .expect("server stops in time")
        .expect("server task");
    let rest: Vec<_> = tokio::time::timeout(WAIT, watch.collect::<Vec<_>>())
        .await
        .expect("the watch ends when the server stops");
    assert!(rest.iter().all(Result::is_ok), "{rest:?}");

    let after = tokio::time::timeout(WAIT, api.get("a"))
        .await
        .expect("a request after shutdown answers in time");
    let err = after.expect_err("served after shutdown");
    assert!(err.to_string().contains("stopped"), "{err}");
}

/// Goal: a request asking for a connection upgrade (exec, attach) is refused by the
/// in-process client before it reaches the router; it needs HTTPS.
#[tokio::test]
async fn in_process_client_refuses_upgrades() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = start(dir.path()).await;
    let req = http::Request::get("/api/v1/namespaces/default/pods/p/exec?command=true")
        .header(http::header::UPGRADE, "websocket")
        .header(http::header::CONNECTION, "Upgrade")
        .body(Vec::new())
        .expect("request");
    let res = r.client.request_text(req).await;
    let err = res.expect_err("an upgrade was attempted in-process");
    assert!(err.to_string().contains("cannot upgrade"), "{err}");
    assert_eq!(r.state.metrics.requests_by_verb().get("exec"), None);
    let _ = r.stop.send(());
    r.task.await.expect("server task");
}

/// Goal: a watcher that falls behind the server's fan-out buffer is not cut off while the
/// events it missed are still in the watch window: it gets every one of them, in order, with
/// no error (no relist of the collection). Once the window has moved past what it missed, it
/// gets `410 Expired` and the watch ends.
/// Method: fan-out buffer of 2 events per watcher, window of 10. The in-process client reads
/// the watch only when polled, so updates made without reading pile up behind it. 8 updates
/// unread, then read: 8 MODIFIED events with values 1..=8. Then 15 updates unread (the window
/// keeps only the newest 10): an ERROR event with code 410, and the stream ends.
#[tokio::test]
async fn a_lagging_watch_resumes_from_the_window_and_gets_410_only_past_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = StoreOptions {
        window_events_max: 10,
        fanout_buffer_max: 2,
    };
    let r = start_with(dir.path(), opts).await;
    let api: Api<ConfigMap> = Api::default_namespaced(r.client.clone());
    let made = api
        .create(&PostParams::default(), &configmap("a", "0"))
        .await
        .expect("create");
    let rv = made.resource_version().expect("resourceVersion");
    let mut watch = api
        .watch(&WatchParams::default().timeout(290), &rv)
        .await
        .expect("watch starts")
        .boxed();
    let update = |v: String| {
        let api = api.clone();
        async move {
            let p = json!({"data": {"v": v}});
            api.patch("a", &PatchParams::default(), &Patch::Merge(&p))
                .await
                .expect("patch");
        }
    };
    for v in 1..=8 {
        update(v.to_string()).await;
    }
    for want in 1..=8 {
        let ev = tokio::time::timeout(WAIT, watch.try_next())
            .await
            .expect("event in time")
            .expect("no error: the missed events come from the window");
        match ev {
            Some(WatchEvent::Modified(cm)) => {
                let v = cm.data.as_ref().and_then(|d| d.get("v")).cloned();
                assert_eq!(v.as_deref(), Some(want.to_string().as_str()));
            }
            other => panic!("expected update {want}, got {other:?}"),
        }
    }
    for v in 9..=23 {
        update(v.to_string()).await;
    }
    let ev = tokio::time::timeout(WAIT, watch.try_next())
        .await
        .expect("event in time")
        .expect("the ERROR event is a watch event");
    match ev {
        Some(WatchEvent::Error(e)) => {
            assert_eq!(e.code, 410, "{e:?}");
            assert_eq!(e.reason, "Expired", "{e:?}");
        }
        other => panic!("expected 410, got {other:?}"),
    }
    let rest: Vec<_> = tokio::time::timeout(WAIT, watch.collect::<Vec<_>>())
        .await
        .expect("the watch ends after 410");
    assert!(rest.is_empty(), "{rest:?}");
    let _ = r.stop.send(());
}

/// Goal: a list read in pages through the HTTP handler is the list of when its first page was
/// read, whatever changes in between: pages after the first show neither the objects created,
/// changed nor deleted since, and they end where it ends. `remainingItemCount` counts what is
/// left when nothing is filtered and is absent with a label selector (as kube-apiserver),
/// while `continue` still tells that there is more.
#[tokio::test]
async fn pages_are_one_consistent_list_and_count_the_rest_only_unfiltered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = start(dir.path()).await;
    let api: Api<ConfigMap> = Api::default_namespaced(r.client.clone());
    for i in 0..10 {
        let mut cm = configmap(&format!("cm-{i}"), "old");
        if i % 2 == 0 {
            cm.metadata.labels = Some([("even".to_owned(), "yes".to_owned())].into());
        }
        api.create(&PostParams::default(), &cm)
            .await
            .expect("create");
    }
    let first = api
        .list(&ListParams::default().limit(3))
        .await
        .expect("first page");
    assert_eq!(names(&first), ["cm-0", "cm-1", "cm-2"]);
    assert_eq!(first.metadata.remaining_item_count, Some(7));
    // Changes after the first page: one past the page changed, one deleted, one created.
    let patch = Patch::Merge(json!({"data": {"v": "new"}}));
    api.patch("cm-5", &PatchParams::default(), &patch)
        .await
        .expect("patch");
    api.delete("cm-7", &Default::default())
        .await
        .expect("delete");
    api.create(&PostParams::default(), &configmap("cm-35", "new"))
        .await
        .expect("create after the first page");
    let mut listed = names(&first);
    listed.extend(rest_of_list(&api, &first).await);
    let want: Vec<String> = (0..10).map(|i| format!("cm-{i}")).collect();
    assert_eq!(
        listed, want,
        "the list of the first page's version, in key order"
    );

    let even = api
        .list(&ListParams::default().labels("even=yes").limit(2))
        .await
        .expect("filtered page");
    assert_eq!(names(&even), ["cm-0", "cm-2"]);
    assert_eq!(even.metadata.remaining_item_count, None);
    assert!(
        even.metadata
            .continue_
            .as_deref()
            .is_some_and(|c| !c.is_empty()),
        "more even configmaps follow"
    );
    let _ = r.stop.send(());
    tokio::time::timeout(WAIT, r.task)
        .await
        .expect("server stops")
        .expect("server task");
}

fn names(l: &kube::api::ObjectList<ConfigMap>) -> Vec<String> {
    l.items.iter().map(ResourceExt::name_any).collect()
}

/// The names on the pages after `first` (pages of 3), checking that each page is read at the
/// first page's version and shows the configmaps as they were then (`v` = "old").
async fn rest_of_list(
    api: &Api<ConfigMap>,
    first: &kube::api::ObjectList<ConfigMap>,
) -> Vec<String> {
    let mut listed = Vec::new();
    let mut token = first.metadata.continue_.clone();
    while let Some(t) = token.filter(|t| !t.is_empty()) {
        let page = api
            .list(&ListParams::default().limit(3).continue_token(&t))
            .await
            .expect("next page");
        assert_eq!(
            page.metadata.resource_version, first.metadata.resource_version,
            "every page is read at the first page's version"
        );
        for cm in &page.items {
            assert_eq!(
                cm.data
                    .as_ref()
                    .and_then(|d| d.get("v"))
                    .map(String::as_str),
                Some("old"),
                "{} as of the first page",
                cm.name_any()
            );
        }
        listed.extend(names(&page));
        token = page.metadata.continue_.clone();
    }
    listed
}

/// Goal: a continue token that is not one of ours gets 400, and one whose version has left
/// the watch window gets 410 with kube-apiserver's advice to start a new list; a fresh list
/// then works. Method: a window of 10 events; a first page of 2, then 12 writes, then the
/// token.
#[tokio::test]
async fn bad_or_expired_continue_tokens_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = StoreOptions {
        window_events_max: 10,
        ..StoreOptions::default()
    };
    let r = start_with(dir.path(), opts).await;
    let api: Api<ConfigMap> = Api::default_namespaced(r.client.clone());
    for i in 0..4 {
        api.create(&PostParams::default(), &configmap(&format!("cm-{i}"), "0"))
            .await
            .expect("create");
    }
    let bad = api
        .list(&ListParams::default().limit(2).continue_token("not-a-token"))
        .await
        .expect_err("a malformed token is refused");
    assert!(
        matches!(&bad, kube::Error::Api(ae) if ae.code == 400 && ae.message.contains("continue")),
        "{bad:?}"
    );
    let first = api
        .list(&ListParams::default().limit(2))
        .await
        .expect("first page");
    let token = first.metadata.continue_.clone().expect("more pages");
    for i in 0..12 {
        let patch = Patch::Merge(json!({"data": {"v": i.to_string()}}));
        api.patch("cm-0", &PatchParams::default(), &patch)
            .await
            .expect("patch");
    }
    let gone = api
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await
        .expect_err("the token's version left the window");
    assert!(
        matches!(&gone, kube::Error::Api(ae) if ae.code == 410
            && ae.message.contains("start a new list")),
        "{gone:?}"
    );
    let again = api.list(&ListParams::default()).await.expect("a new list");
    assert_eq!(names(&again), ["cm-0", "cm-1", "cm-2", "cm-3"]);
    let _ = r.stop.send(());
    tokio::time::timeout(WAIT, r.task)
        .await
        .expect("server stops")
        .expect("server task");
}
