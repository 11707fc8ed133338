//! Acceptance: kube-rs `watcher`s against the embedded API server. A watcher sees every change
//! exactly once and in resourceVersion order, keeps going across a server restart on the same
//! data directory and address, and relists when its resourceVersion has left the watch window
//! (the server answers such a watch with a `410 Expired` ERROR event).

mod common;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use ke_apiserver::store::StoreOptions;
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams},
    runtime::{WatchStreamExt, watcher},
};
use serde_json::json;
use std::{collections::BTreeMap, pin::Pin, time::Duration};
use tokio::sync::mpsc;

/// Bound on every single wait, only so that a broken server fails the test instead of hanging
/// it; nothing here asserts on how long anything takes.
const WAIT: Duration = Duration::from_secs(60);

type Events = Pin<Box<dyn Stream<Item = Result<watcher::Event<ConfigMap>, watcher::Error>> + Send>>;

/// A kube-rs watcher as an operator would run it (default backoff between failed attempts).
fn events(api: &Api<ConfigMap>, cfg: watcher::Config) -> Events {
    watcher(api.clone(), cfg).default_backoff().boxed()
}

/// One change to one configmap, as the writer acknowledged it or as a watcher reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Change {
    Apply { name: String, v: String, rv: u64 },
    Delete { name: String, rv: u64 },
}

fn rv_of(cm: &ConfigMap) -> u64 {
    let rv = cm.resource_version().expect("object has a resourceVersion");
    rv.parse().expect("resourceVersion is a number")
}

fn v_of(cm: &ConfigMap) -> String {
    let data = cm.data.as_ref();
    data.and_then(|d| d.get("v")).cloned().unwrap_or_default()
}

fn apply_of(cm: &ConfigMap) -> Change {
    Change::Apply {
        name: cm.name_any(),
        v: v_of(cm),
        rv: rv_of(cm),
    }
}

async fn create(api: &Api<ConfigMap>, name: &str, v: &str) -> Change {
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": name}, "data": {"v": v}
    }))
    .expect("configmap");
    let cm = api
        .create(&PostParams::default(), &cm)
        .await
        .expect("create");
    apply_of(&cm)
}

async fn update(api: &Api<ConfigMap>, name: &str, v: &str) -> Change {
    let patch = Patch::Merge(json!({"data": {"v": v}}));
    let cm = api
        .patch(name, &PatchParams::default(), &patch)
        .await
        .expect("update");
    apply_of(&cm)
}

async fn delete(api: &Api<ConfigMap>, name: &str) -> Change {
    let out = api
        .delete(name, &DeleteParams::default())
        .await
        .expect("delete");
    let cm = out
        .left()
        .expect("an immediate delete returns the deleted object");
    Change::Delete {
        name: name.to_owned(),
        rv: rv_of(&cm),
    }
}

/// The server's current configmaps: name -> (resourceVersion, data.v).
async fn server_state(api: &Api<ConfigMap>) -> BTreeMap<String, (u64, String)> {
    let list = api.list(&ListParams::default()).await.expect("list");
    let state = list
        .items
        .iter()
        .map(|c| (c.name_any(), (rv_of(c), v_of(c))));
    state.collect()
}

async fn next_event(w: &mut Events) -> Result<watcher::Event<ConfigMap>, watcher::Error> {
    tokio::time::timeout(WAIT, w.next())
        .await
        .expect("the watcher reports something before the deadline")
        .expect("the watcher stream never ends")
}

/// The next `n` changes; any relist or error fails the test.
async fn take_changes(w: &mut Events, n: usize) -> Vec<Change> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        match next_event(w).await.expect("no watch error") {
            watcher::Event::Apply(cm) => out.push(apply_of(&cm)),
            watcher::Event::Delete(cm) => out.push(Change::Delete {
                name: cm.name_any(),
                rv: rv_of(&cm),
            }),
            other => panic!("unexpected relist event {other:?} after {out:?}"),
        }
    }
    out
}

/// Reads one complete initial list (Init, InitApply..., InitDone), skipping errors before it;
/// returns the objects listed and the errors skipped. kube 2.0 emits no `Init` for a streaming
/// list, so with `streaming` the first InitApply or InitDone starts the list.
async fn take_list_as(
    w: &mut Events,
    streaming: bool,
) -> (BTreeMap<String, (u64, String)>, Vec<watcher::Error>) {
    let (mut listed, mut errors, mut started) = (BTreeMap::new(), Vec::new(), false);
    loop {
        let ev = next_event(w).await;
        if streaming
            && matches!(
                ev,
                Ok(watcher::Event::InitApply(_) | watcher::Event::InitDone)
            )
        {
            started = true;
        }
        match ev {
            Err(e) if !started => errors.push(e),
            Err(e) => panic!("error inside a relist: {e}"),
            Ok(watcher::Event::Init) if !started => started = true,
            Ok(watcher::Event::InitApply(cm)) if started => {
                listed.insert(cm.name_any(), (rv_of(&cm), v_of(&cm)));
            }
            Ok(watcher::Event::InitDone) if started => return (listed, errors),
            Ok(other) => panic!("unexpected {other:?} (relist started: {started})"),
        }
    }
}

/// [`take_list_as`] for a list-then-watch watcher.
async fn take_list(w: &mut Events) -> (BTreeMap<String, (u64, String)>, Vec<watcher::Error>) {
    take_list_as(w, false).await
}

/// Creates 24 configmaps, updates every third and deletes every fourth, one at a time;
/// returns each change as acknowledged.
async fn churn(api: Api<ConfigMap>) -> Vec<Change> {
    let name = |i: usize| format!("cm-{i:02}");
    let mut made = Vec::new();
    for i in 0..24 {
        made.push(create(&api, &name(i), "created").await);
    }
    for i in (0..24).step_by(3) {
        made.push(update(&api, &name(i), &format!("updated-{i}")).await);
    }
    for i in (0..24).step_by(4) {
        made.push(delete(&api, &name(i)).await);
    }
    made
}

/// Changes made by [`churn`].
const CHURN_CHANGES: usize = 24 + 8 + 6;

/// Body of the in-order tests for one watcher configuration.
async fn every_change_in_order(cfg: watcher::Config) {
    let (_dir, s) = common::start().await;
    let api: Api<ConfigMap> = Api::namespaced(s.client().await, "default");
    for i in 0..3 {
        create(&api, &format!("existing-{i}"), "0").await;
    }
    let streaming = cfg.initial_list_strategy == watcher::InitialListStrategy::StreamingList;
    let mut w = events(&api, cfg);
    let (listed, errors) = take_list_as(&mut w, streaming).await;
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(listed, server_state(&api).await, "the initial list");

    let writer = tokio::spawn(churn(api.clone()));
    let got = take_changes(&mut w, CHURN_CHANGES).await;
    let made = writer.await.expect("writer");
    assert_eq!(
        got, made,
        "the watcher saw exactly the acknowledged changes, in order"
    );

    let sentinel = create(&api, "sentinel", "end").await;
    assert_eq!(take_changes(&mut w, 1).await, vec![sentinel]);
    s.stop().await;
}

/// Goal: a kube-rs watcher (list, then watch) sees every change, in order, exactly once.
/// Method: three configmaps exist; start a watcher and check its initial list against the
/// server. Then, while the watcher runs, create 24 configmaps, update every third and delete
/// every fourth, recording each acknowledged (name, data, resourceVersion). The watcher's
/// Apply/Delete events must equal that record exactly, with no relist or error; a sentinel
/// written afterwards must be the very next event (nothing extra was queued).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_sees_every_change_in_order() {
    every_change_in_order(watcher::Config::default()).await;
}

/// Goal: the same with the streaming-list strategy (`sendInitialEvents=true`): the initial
/// state arrives as watch events ended by an `initial-events-end` bookmark, then every change.
/// Method: as [`watcher_sees_every_change_in_order`], with `Config::streaming_lists()`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_list_watcher_sees_every_change_in_order() {
    every_change_in_order(watcher::Config::default().streaming_lists()).await;
}

/// What a watcher has told its consumer so far, maintained as a kube reflector would, with
/// the check that no object's reported resourceVersion ever goes backwards.
#[derive(Debug, Default)]
struct View {
    /// The watcher's picture: name -> (resourceVersion, data.v).
    objects: BTreeMap<String, (u64, String)>,
    /// A relist in progress (between Init and InitDone).
    relist: Option<BTreeMap<String, (u64, String)>>,
    /// Newest resourceVersion ever reported per name, deletions included.
    newest: BTreeMap<String, u64>,
    /// Completed (re)lists, the initial one included.
    lists: usize,
    /// Errors the watcher reported (expected while the server is down).
    errors: Vec<String>,
}

impl View {
    /// A live change must be strictly newer than anything reported for that object (so it is
    /// not an old change delivered again); a relisted object must not be older.
    fn saw(&mut self, name: &str, rv: u64, live: bool) {
        let newest = self.newest.get(name).copied().unwrap_or(0);
        let ok = if live { rv > newest } else { rv >= newest };
        assert!(
            ok,
            "{name}: reported rv {rv} after {newest} (live: {live}); {self:?}"
        );
        self.newest.insert(name.to_owned(), rv);
    }

    fn apply(&mut self, ev: watcher::Event<ConfigMap>) {
        match ev {
            watcher::Event::Init => self.relist = Some(BTreeMap::new()),
            watcher::Event::InitApply(cm) => {
                self.saw(&cm.name_any(), rv_of(&cm), false);
                let relist = self.relist.as_mut().expect("InitApply inside a relist");
                relist.insert(cm.name_any(), (rv_of(&cm), v_of(&cm)));
            }
            watcher::Event::InitDone => {
                self.objects = self.relist.take().expect("InitDone ends a relist");
                self.lists += 1;
            }
            watcher::Event::Apply(cm) => {
                self.saw(&cm.name_any(), rv_of(&cm), true);
                self.objects.insert(cm.name_any(), (rv_of(&cm), v_of(&cm)));
            }
            watcher::Event::Delete(cm) => {
                self.saw(&cm.name_any(), rv_of(&cm), true);
                self.objects.remove(&cm.name_any());
            }
        }
    }

    /// Feeds events from `rx` until `done` holds.
    async fn until(&mut self, rx: &mut mpsc::Receiver<Reported>, done: impl Fn(&View) -> bool) {
        let fed = tokio::time::timeout(WAIT, async {
            while !done(self) {
                match rx.recv().await.expect("watcher task runs") {
                    Ok(ev) => self.apply(ev),
                    Err(e) => self.errors.push(e.to_string()),
                }
            }
        })
        .await;
        assert!(
            fed.is_ok(),
            "condition not reached; watcher view: {self:#?}"
        );
    }
}

type Reported = Result<watcher::Event<ConfigMap>, watcher::Error>;

/// Runs a watcher in its own task, forwarding everything it reports.
fn spawn_watcher(api: &Api<ConfigMap>) -> (tokio::task::JoinHandle<()>, mpsc::Receiver<Reported>) {
    let (tx, rx) = mpsc::channel(4096);
    let mut w = events(api, watcher::Config::default());
    let task = tokio::spawn(async move {
        while let Some(ev) = w.next().await {
            if tx.send(ev).await.is_err() {
                return;
            }
        }
    });
    (task, rx)
}

/// Goal: a watcher keeps working across a server restart; changes made after the restart
/// arrive, changes made before it are not delivered again as new, and its final picture equals
/// the server's state.
/// Method: server on a free port; a watcher (in its own task, never restarted) and a client
/// from the first kubeconfig. Make changes, stop the server, start a new one on the same data
/// directory and the same address, make more changes with the same client. Every live event
/// must be strictly newer than what was reported before for that object (a relist may repeat
/// an object at the same version, never an older one); the watcher's picture must reach the
/// server's state, and a sentinel written last must arrive as well.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_resumes_across_server_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let any_port = "127.0.0.1:0".parse().expect("address");
    let s1 = common::start_in(dir.path(), any_port, StoreOptions::default()).await;
    let addr = s1.addr;
    let api: Api<ConfigMap> = Api::namespaced(s1.client().await, "default");
    let (task, mut rx) = spawn_watcher(&api);
    let mut view = View::default();
    view.until(&mut rx, |v| v.lists == 1).await;

    for i in 0..5 {
        create(&api, &format!("before-{i}"), "1").await;
    }
    update(&api, "before-1", "2").await;
    delete(&api, "before-2").await;
    let want = server_state(&api).await;
    view.until(&mut rx, |v| v.objects == want).await;

    s1.stop().await;
    let s2 = common::start_in(dir.path(), addr, StoreOptions::default()).await;
    assert_eq!(s2.addr, addr, "restarted on the same address");
    for i in 0..5 {
        create(&api, &format!("after-{i}"), "1").await;
    }
    update(&api, "before-0", "3").await;
    delete(&api, "before-3").await;
    let want = server_state(&api).await;
    view.until(&mut rx, |v| v.objects == want).await;

    create(&api, "sentinel", "end").await;
    view.until(&mut rx, |v| v.objects.contains_key("sentinel"))
        .await;
    assert_eq!(view.objects, server_state(&api).await, "{view:#?}");
    task.abort();
    s2.stop().await;
}

/// Goal: a watcher that missed changes while its server was away relists after the restart
/// and ends with the server's state.
/// Method: as [`watcher_resumes_across_server_restart`], but between stopping the first server
/// and restarting on its address, a second server on another port (same data directory) takes
/// changes the watcher cannot see. After the restart the watch window is empty and starts
/// above the watcher's version, so the watcher must get 410 and relist: its picture must equal
/// the server's state, no object may go back in version, and a later change arrives live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_relists_after_restart_with_missed_changes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let any_port: std::net::SocketAddr = "127.0.0.1:0".parse().expect("address");
    let s1 = common::start_in(dir.path(), any_port, StoreOptions::default()).await;
    let addr = s1.addr;
    let api: Api<ConfigMap> = Api::namespaced(s1.client().await, "default");
    let (task, mut rx) = spawn_watcher(&api);
    let mut view = View::default();
    for i in 0..3 {
        create(&api, &format!("before-{i}"), "1").await;
    }
    let want = server_state(&api).await;
    view.until(&mut rx, |v| v.lists == 1 && v.objects == want)
        .await;
    s1.stop().await;

    let elsewhere = common::start_in(dir.path(), any_port, StoreOptions::default()).await;
    let other: Api<ConfigMap> = Api::namespaced(elsewhere.client().await, "default");
    create(&other, "missed-0", "1").await;
    update(&other, "before-0", "2").await;
    delete(&other, "before-1").await;
    elsewhere.stop().await;

    let s2 = common::start_in(dir.path(), addr, StoreOptions::default()).await;
    let want = server_state(&api).await;
    view.until(&mut rx, |v| v.lists >= 2 && v.objects == want)
        .await;
    let live = update(&api, "before-2", "live").await;
    view.until(&mut rx, |v| {
        v.newest.get("before-2") == Some(&rv_of_change(&live))
    })
    .await;
    assert_eq!(view.objects, server_state(&api).await, "{view:#?}");
    assert_eq!(view.lists, 2, "exactly one relist: {view:#?}");
    task.abort();
    s2.stop().await;
}

fn rv_of_change(c: &Change) -> u64 {
    match c {
        Change::Apply { rv, .. } | Change::Delete { rv, .. } => *rv,
    }
}

/// Next item of a raw watch stream, with the hang guard.
async fn next_raw<S>(st: &mut S) -> Option<kube::Result<WatchEvent<ConfigMap>>>
where
    S: Stream<Item = kube::Result<WatchEvent<ConfigMap>>> + Unpin,
{
    tokio::time::timeout(WAIT, st.next())
        .await
        .expect("the watch answers before the deadline")
}

/// Goal: a watch from a resourceVersion still in the window replays exactly the newer events;
/// one from a version older than the window gets `410 Expired` as an ERROR event, then ends.
/// Method: window of 5 events; create a configmap and update it 10 times (consecutive
/// versions). Watch from the 5th-newest-but-one version: the 5 newest updates, in order. Watch
/// from one version older: an ERROR event with code 410 and reason Expired, and the stream ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_from_expired_version_gets_410() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = StoreOptions {
        window_events_max: 5,
        ..StoreOptions::default()
    };
    let s = common::start_in(dir.path(), "127.0.0.1:0".parse().expect("addr"), opts).await;
    let api: Api<ConfigMap> = Api::namespaced(s.client().await, "default");
    let mut made = vec![create(&api, "cm", "0").await];
    for i in 1..=10 {
        made.push(update(&api, "cm", &i.to_string()).await);
    }
    let rvs: Vec<u64> = made.iter().map(rv_of_change).collect();
    assert!(
        rvs.windows(2).all(|w| w[1] == w[0] + 1),
        "consecutive: {rvs:?}"
    );

    let oldest = rvs[10 - 5];
    let mut st = api
        .watch(&WatchParams::default(), &oldest.to_string())
        .await
        .expect("watch from the oldest version in the window")
        .boxed();
    for want in &made[6..] {
        match next_raw(&mut st).await {
            Some(Ok(WatchEvent::Modified(cm))) => assert_eq!(&apply_of(&cm), want),
            other => panic!("expected {want:?}, got {other:?}"),
        }
    }

    let mut st = api
        .watch(&WatchParams::default(), &(oldest - 1).to_string())
        .await
        .expect("the watch request itself succeeds")
        .boxed();
    match next_raw(&mut st).await {
        Some(Ok(WatchEvent::Error(e))) => {
            assert_eq!((e.code, e.reason.as_str()), (410, "Expired"), "{e:?}");
        }
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }
    assert!(
        next_raw(&mut st).await.is_none(),
        "the stream ends after 410"
    );
    s.stop().await;
}

/// Open watch streams on the server, from `/metrics`.
async fn open_watches(client: &kube::Client) -> i64 {
    let req = http::Request::get("/metrics")
        .body(Vec::new())
        .expect("request");
    let text = client.request_text(req).await.expect("GET /metrics");
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("apiserver_watchers "));
    line.expect("apiserver_watchers gauge")
        .parse()
        .expect("gauge value")
}

/// Goal: a kube-rs watcher whose resourceVersion falls out of the window relists and ends up
/// with the server's state.
/// Method: window of 5 events; a watcher with a 1 s server-side watch timeout has listed and
/// is watching. The test stops polling it and waits until the server has closed that watch
/// (its open-watch gauge drops to 0 — a condition, not a sleep), then makes 10 changes. When
/// polled again the watcher re-watches from its old version, gets 410, and must emit Init,
/// InitApply..., InitDone with exactly the server's state, then see a later change live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_relists_after_410() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = StoreOptions {
        window_events_max: 5,
        ..StoreOptions::default()
    };
    let s = common::start_in(dir.path(), "127.0.0.1:0".parse().expect("addr"), opts).await;
    let client = s.client().await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    for i in 0..3 {
        create(&api, &format!("cm-{i}"), "0").await;
    }
    let mut w = events(&api, watcher::Config::default().timeout(1));
    let (listed, _) = take_list(&mut w).await;
    assert_eq!(listed, server_state(&api).await);
    // One live event puts the watcher in its watching state with an open stream.
    let made = update(&api, "cm-0", "1").await;
    assert_eq!(take_changes(&mut w, 1).await, vec![made]);

    let closed = tokio::time::timeout(WAIT, async {
        while open_watches(&client).await > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    closed
        .await
        .expect("the server ends the watch after its timeout");
    for i in 3..8 {
        create(&api, &format!("cm-{i}"), "0").await;
        update(&api, &format!("cm-{i}"), "1").await;
    }
    delete(&api, "cm-1").await;

    let (relisted, errors) = take_list(&mut w).await;
    let gone = |e: &watcher::Error| matches!(e, watcher::Error::WatchError(r) if r.code == 410);
    assert!(
        errors.iter().any(gone),
        "the relist follows a 410: {errors:?}"
    );
    assert_eq!(relisted, server_state(&api).await);
    let later = update(&api, "cm-2", "2").await;
    assert_eq!(take_changes(&mut w, 1).await, vec![later]);
    s.stop().await;
}
