//! Model test of the store, driven through the API: random sequences of creates, updates and
//! merge patches (some carrying stale resourceVersions), deletes (some held by finalizers),
//! finalizer removals and dry runs, checked step by step against a simple model: the semantic
//! state of each object plus the log of accepted changes. At the end, watches and lists at
//! every past version must replay exactly that log, versions older than the window must be
//! `Gone`, and a store reopened from its file must hold the same objects and version.

use bytes::Bytes;
use ke_apiserver::{
    api::{Api, ApiError, Part, WriteOpts},
    patch::PatchType,
    registry::ResourceInfo,
    store::{
        Event, EventType, Obj, PageQuery, Store, StoreError, StoreOptions, Subscription, object_key,
    },
};
use ke_core::{Entropy, FixedClock, Seed};
use proptest::prelude::*;
use serde_json::{Value, json};
use std::{collections::BTreeMap, path::Path, sync::Arc};
use tokio::sync::broadcast::error::TryRecvError;

/// The resources the operations touch: two, so that versions interleave across prefixes.
const RESOURCES: [&str; 2] = ["configmaps", "secrets"];
/// Namespaces (both exist from the start), so namespace-filtered lists have work to do.
const NAMESPACES: [&str; 2] = ["default", "kube-public"];
/// Object names: few, so operations collide on the same objects.
const NAMES: [&str; 2] = ["a", "b"];
/// The finalizer some objects carry.
const FINALIZER: &str = "example.com/hold";

/// Which resourceVersion a conditional write carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RvMode {
    /// The object's current version: must succeed.
    Current,
    /// An older version: must be rejected with 409.
    Stale,
    /// None: an unconditional write.
    Absent,
}

/// One step of a run. `res` indexes [`RESOURCES`]; `key` indexes namespace x name.
#[derive(Debug, Clone)]
enum Op {
    Create {
        res: usize,
        key: usize,
        data: u8,
        finalizer: bool,
        dry_run: bool,
    },
    Update {
        res: usize,
        key: usize,
        data: u8,
        rv: RvMode,
    },
    Merge {
        res: usize,
        key: usize,
        data: u8,
        rv: RvMode,
    },
    Delete {
        res: usize,
        key: usize,
        rv: RvMode,
    },
    /// A JSON patch: `test` that `data.k` holds value `guess`, then replace it with `data`.
    Json {
        res: usize,
        key: usize,
        data: u8,
        guess: u8,
    },
    /// Remove the finalizers: by merge patch, or by a `PUT` of the object without them.
    DropFinalizers {
        res: usize,
        key: usize,
        via_put: bool,
    },
    /// Open a watch on `res` from `back` versions before the current one.
    Watch {
        res: usize,
        back: u8,
    },
}

/// What the model says about one object: the fields the operations change.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Sem {
    data: String,
    finalizer: bool,
    deleting: bool,
}

/// What the model expects of one operation.
#[derive(Debug, Clone, PartialEq)]
enum Expect {
    /// Refused with this HTTP code; nothing written.
    Rejected(u16),
    /// Accepted but nothing changed: the current object comes back, no version is taken.
    Unchanged,
    /// A dry run: the would-be object comes back, nothing is written.
    DryRun(Sem),
    /// Written: an event of this kind, the object now in this state.
    Changed(EventType, Sem),
}

/// One accepted change, as the model logged it.
#[derive(Debug, Clone)]
struct Logged {
    rv: u64,
    prefix: String,
    key: String,
    kind: EventType,
    json: Bytes,
    prev: Option<Bytes>,
}

/// The model: live objects (semantics and the exact bytes the API acknowledged) and the log.
#[derive(Debug, Default)]
struct Model {
    live: BTreeMap<(usize, String), (Sem, Bytes)>,
    log: Vec<Logged>,
    /// The largest resourceVersion handed out so far.
    rv: u64,
}

/// The system under test plus its model and the watches opened along the way.
struct Run {
    api: Api,
    infos: Vec<Arc<ResourceInfo>>,
    model: Model,
    window: usize,
    watches: Vec<(usize, u64, Subscription)>,
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let res = 0..RESOURCES.len();
    let key = 0..NAMESPACES.len() * NAMES.len();
    let rv = prop_oneof![
        Just(RvMode::Current),
        Just(RvMode::Stale),
        Just(RvMode::Absent)
    ];
    prop_oneof![
        6 => (res.clone(), key.clone(), 0..3u8, any::<bool>(), prop::bool::weighted(0.15))
            .prop_map(|(res, key, data, finalizer, dry_run)| Op::Create {
                res, key, data, finalizer, dry_run
            }),
        3 => (res.clone(), key.clone(), 0..3u8, rv.clone())
            .prop_map(|(res, key, data, rv)| Op::Update { res, key, data, rv }),
        3 => (res.clone(), key.clone(), 0..3u8, rv.clone())
            .prop_map(|(res, key, data, rv)| Op::Merge { res, key, data, rv }),
        3 => (res.clone(), key.clone(), rv).prop_map(|(res, key, rv)| Op::Delete { res, key, rv }),
        2 => (res.clone(), key.clone(), 0..3u8, 0..3u8)
            .prop_map(|(res, key, data, guess)| Op::Json { res, key, data, guess }),
        2 => (res.clone(), key, any::<bool>())
            .prop_map(|(res, key, via_put)| Op::DropFinalizers { res, key, via_put }),
        1 => (res, 0..24u8).prop_map(|(res, back)| Op::Watch { res, back }),
    ]
}

/// Store tuning for a run: a 16-event window (so `Gone` happens) or the default one.
fn options(small_window: bool) -> StoreOptions {
    StoreOptions {
        window_events_max: if small_window { 16 } else { 100_000 },
        fanout_buffer_max: 4096,
    }
}

fn new_api(store: Store) -> Api {
    let clock = Arc::new(FixedClock::new(1_754_450_000));
    Api::new(store, clock, Entropy::seeded(Seed(7), "store-model")).expect("the API starts")
}

fn namespace_and_name(key: usize) -> (&'static str, &'static str) {
    (NAMESPACES[key / NAMES.len()], NAMES[key % NAMES.len()])
}

fn data_value(data: u8) -> String {
    format!("dmFs{data}A==")
}

/// The semantic state of a stored object; also checks its embedded resourceVersion.
fn sem_of(obj: &Obj) -> Sem {
    let v = obj.value();
    let m = &v["metadata"];
    assert_eq!(
        m["resourceVersion"].as_str(),
        Some(obj.rv.to_string().as_str()),
        "metadata.resourceVersion is the stored version"
    );
    Sem {
        data: v["data"]["k"].as_str().unwrap_or_default().to_owned(),
        finalizer: m["finalizers"].as_array().is_some_and(|f| !f.is_empty()),
        deleting: m.get("deletionTimestamp").is_some(),
    }
}

impl Model {
    fn get(&self, res: usize, key: usize) -> Option<&(Sem, Bytes)> {
        let (ns, name) = namespace_and_name(key);
        self.live.get(&(res, object_key(ns, name)))
    }

    /// The expected outcome of `op` in the current state.
    fn expect(&self, op: &Op) -> Expect {
        match *op {
            Op::Create {
                res,
                key,
                data,
                finalizer,
                dry_run,
            } => {
                if self.get(res, key).is_some() {
                    return Expect::Rejected(409);
                }
                let sem = Sem {
                    data: data_value(data),
                    finalizer,
                    deleting: false,
                };
                if dry_run {
                    Expect::DryRun(sem)
                } else {
                    Expect::Changed(EventType::Added, sem)
                }
            }
            Op::Update { res, key, data, rv } | Op::Merge { res, key, data, rv } => {
                match self.get(res, key) {
                    None => Expect::Rejected(404),
                    Some(_) if rv == RvMode::Stale => Expect::Rejected(409),
                    Some((s, _)) if s.data == data_value(data) => Expect::Unchanged,
                    Some((s, _)) => {
                        let sem = Sem {
                            data: data_value(data),
                            ..s.clone()
                        };
                        Expect::Changed(EventType::Modified, sem)
                    }
                }
            }
            Op::Delete { res, key, rv } => self.expect_delete(res, key, rv),
            Op::Json {
                res,
                key,
                data,
                guess,
            } => match self.get(res, key) {
                None => Expect::Rejected(404),
                Some((s, _)) if s.data != data_value(guess) => Expect::Rejected(422),
                Some(_) => self.expect(&Op::Merge {
                    res,
                    key,
                    data,
                    rv: RvMode::Absent,
                }),
            },
            Op::DropFinalizers { res, key, .. } => self.expect_drop_finalizers(res, key),
            Op::Watch { .. } => Expect::Unchanged,
        }
    }

    fn expect_drop_finalizers(&self, res: usize, key: usize) -> Expect {
        match self.get(res, key) {
            None => Expect::Rejected(404),
            Some((s, _)) if !s.finalizer => Expect::Unchanged,
            Some((s, _)) => {
                let kind = if s.deleting {
                    EventType::Deleted
                } else {
                    EventType::Modified
                };
                let sem = Sem {
                    finalizer: false,
                    ..s.clone()
                };
                Expect::Changed(kind, sem)
            }
        }
    }

    fn expect_delete(&self, res: usize, key: usize, rv: RvMode) -> Expect {
        match self.get(res, key) {
            None => Expect::Rejected(404),
            Some(_) if rv == RvMode::Stale => Expect::Rejected(409),
            Some((s, _)) if !s.finalizer => Expect::Changed(EventType::Deleted, s.clone()),
            Some((s, _)) if s.deleting => Expect::Unchanged,
            Some((s, _)) => Expect::Changed(
                EventType::Modified,
                Sem {
                    deleting: true,
                    ..s.clone()
                },
            ),
        }
    }

    /// Records an accepted change.
    fn record(&mut self, res: usize, kind: EventType, sem: Sem, obj: &Obj) {
        let key = object_key(&obj.namespace, &obj.name);
        let prev = match kind {
            EventType::Deleted => self.live.remove(&(res, key.clone())),
            _ => self
                .live
                .insert((res, key.clone()), (sem, obj.json.clone())),
        };
        self.log.push(Logged {
            rv: obj.rv,
            prefix: format!("core/{}", RESOURCES[res]),
            key,
            kind,
            json: obj.json.clone(),
            prev: prev.map(|p| p.1),
        });
        self.rv = obj.rv;
    }

    /// The objects under `prefix` (in `ns` if given) as of version `r`, by replaying the log.
    fn replay(&self, prefix: &str, ns: Option<&str>, r: u64) -> Vec<(String, Bytes)> {
        let mut state = BTreeMap::new();
        for e in self.log.iter().filter(|e| e.rv <= r && e.prefix == prefix) {
            match e.kind {
                EventType::Deleted => state.remove(&e.key),
                _ => state.insert(e.key.clone(), e.json.clone()),
            };
        }
        state
            .into_iter()
            .filter(|(k, _)| ns.is_none_or(|ns| k.starts_with(&format!("{ns}/"))))
            .collect()
    }
}

impl Run {
    fn new(store: Store, window: usize) -> Self {
        let api = new_api(store);
        let infos = RESOURCES
            .iter()
            .map(|r| api.resource("", "v1", r).expect("a built-in resource"))
            .collect();
        let rv = api.store.current_rv();
        let model = Model {
            rv,
            ..Model::default()
        };
        Self {
            api,
            infos,
            model,
            window,
            watches: Vec::new(),
        }
    }

    /// The current stored form of an object, or a fresh body for one that does not exist.
    fn body_for(&self, res: usize, key: usize, data: u8, rv: RvMode) -> Value {
        let (ns, name) = namespace_and_name(key);
        let current = self.api.get(&self.infos[res], ns, name).ok();
        let mut body = current
            .as_ref()
            .map_or_else(|| json!({"metadata": {"name": name}}), |o| o.value());
        body["data"] = json!({"k": data_value(data)});
        let m = body["metadata"]
            .as_object_mut()
            .expect("metadata is an object");
        match (rv, &current) {
            (RvMode::Stale, Some(o)) => {
                m.insert("resourceVersion".into(), json!((o.rv - 1).to_string()));
            }
            (RvMode::Absent, _) => {
                m.remove("resourceVersion");
            }
            _ => {}
        }
        body
    }

    /// The resourceVersion a conditional patch or delete carries (None: unconditional).
    fn precondition(&self, res: usize, key: usize, rv: RvMode) -> Option<String> {
        let (ns, name) = namespace_and_name(key);
        let current = self.api.get(&self.infos[res], ns, name).ok();
        match (rv, current) {
            (RvMode::Current, Some(o)) => Some(o.rv.to_string()),
            (RvMode::Stale, Some(o)) => Some((o.rv - 1).to_string()),
            (RvMode::Stale, None) => Some("1".into()),
            _ => None,
        }
    }

    /// Runs `op` against the API.
    fn execute(&self, op: &Op) -> Result<Arc<Obj>, ApiError> {
        let opts = WriteOpts::default();
        match *op {
            Op::Create {
                res,
                key,
                data,
                finalizer,
                dry_run,
            } => {
                let (ns, name) = namespace_and_name(key);
                let mut body = json!({"metadata": {"name": name}, "data": {"k": data_value(data)}});
                if finalizer {
                    body["metadata"]["finalizers"] = json!([FINALIZER]);
                }
                let opts = WriteOpts { dry_run, ..opts };
                self.api
                    .create(&self.infos[res], ns, body, opts)
                    .map(|w| w.obj)
            }
            Op::Update { res, key, data, rv } => {
                let (ns, name) = namespace_and_name(key);
                let body = self.body_for(res, key, data, rv);
                self.api
                    .update(&self.infos[res], ns, name, Part::Main, body, opts)
                    .map(|w| w.obj)
            }
            Op::Merge { res, key, data, rv } => {
                let mut patch = json!({"data": {"k": data_value(data)}});
                if let Some(rv) = self.precondition(res, key, rv) {
                    patch["metadata"] = json!({"resourceVersion": rv});
                }
                self.patch(res, key, PatchType::Merge, &patch)
            }
            Op::Delete { res, key, rv } => {
                let (ns, name) = namespace_and_name(key);
                let options = self.precondition(res, key, rv).map_or(
                    Value::Null,
                    |rv| json!({"preconditions": {"resourceVersion": rv}}),
                );
                self.api.delete(&self.infos[res], ns, name, &options, false)
            }
            Op::Json {
                res,
                key,
                data,
                guess,
            } => {
                let patch = json!([
                    {"op": "test", "path": "/data/k", "value": data_value(guess)},
                    {"op": "replace", "path": "/data/k", "value": data_value(data)},
                ]);
                self.patch(res, key, PatchType::Json, &patch)
            }
            Op::DropFinalizers {
                res,
                key,
                via_put: false,
            } => self.patch(
                res,
                key,
                PatchType::Merge,
                &json!({"metadata": {"finalizers": null}}),
            ),
            Op::DropFinalizers {
                res,
                key,
                via_put: true,
            } => self.put_without_finalizers(res, key),
            Op::Watch { .. } => unreachable!("watches are not writes"),
        }
    }

    fn patch(
        &self,
        res: usize,
        key: usize,
        kind: PatchType,
        patch: &Value,
    ) -> Result<Arc<Obj>, ApiError> {
        let (ns, name) = namespace_and_name(key);
        let body = serde_json::to_vec(patch).expect("a Value serializes");
        let info = &self.infos[res];
        let opts = WriteOpts::default();
        self.api
            .patch(info, ns, name, Part::Main, kind, &body, opts)
            .map(|w| w.obj)
    }

    /// A read-modify-write `PUT` that drops the finalizers (kube's usual controller pattern).
    fn put_without_finalizers(&self, res: usize, key: usize) -> Result<Arc<Obj>, ApiError> {
        let (ns, name) = namespace_and_name(key);
        let info = &self.infos[res];
        let mut body = match self.api.get(info, ns, name) {
            Ok(o) => o.value(),
            Err(_) => json!({"metadata": {"name": name}}),
        };
        if let Some(m) = body["metadata"].as_object_mut() {
            m.remove("finalizers");
        }
        let opts = WriteOpts::default();
        self.api
            .update(info, ns, name, Part::Main, body, opts)
            .map(|w| w.obj)
    }

    /// Applies one operation and checks it against the model.
    fn step(&mut self, op: &Op) {
        if let Op::Watch { res, back } = *op {
            return self.open_watch(res, back);
        }
        let expect = self.model.expect(op);
        let before = self.api.store.current_rv();
        assert_eq!(
            before, self.model.rv,
            "the store's version is the last one handed out"
        );
        let out = self.execute(op);
        let res = match *op {
            Op::Create { res, .. } | Op::Update { res, .. } | Op::Merge { res, .. } => res,
            Op::Json { res, .. } | Op::Delete { res, .. } => res,
            Op::DropFinalizers { res, .. } | Op::Watch { res, .. } => res,
        };
        match (&expect, out) {
            (Expect::Rejected(code), Err(e)) => assert_eq!(e.code, *code, "{op:?}: {e}"),
            (Expect::Unchanged, Ok(obj)) => {
                let (sem, json) = self.model_obj(res, &obj);
                assert_eq!(sem_of(&obj), sem, "{op:?}: unchanged object");
                assert_eq!(obj.json, json, "{op:?}: the current object comes back");
            }
            (Expect::DryRun(sem), Ok(obj)) => {
                assert_eq!(&sem_of(&obj), sem, "{op:?}: dry-run result");
                let (ns, name) = (&obj.namespace, &obj.name);
                assert!(
                    self.api.get(&self.infos[res], ns, name).is_err(),
                    "dry run stored"
                );
            }
            (Expect::Changed(kind, sem), Ok(obj)) => {
                assert!(
                    obj.rv > self.model.rv,
                    "{op:?}: version {} not above {}",
                    obj.rv,
                    self.model.rv
                );
                assert_eq!(&sem_of(&obj), sem, "{op:?}: written object");
                assert_eq!(self.api.store.current_rv(), obj.rv, "{op:?}: store version");
                self.model.record(res, *kind, sem.clone(), &obj);
                return;
            }
            (want, got) => panic!("{op:?}: expected {want:?}, got {got:?}"),
        }
        assert_eq!(
            self.api.store.current_rv(),
            before,
            "{op:?}: version advanced without a write"
        );
    }

    fn model_obj(&self, res: usize, obj: &Obj) -> (Sem, Bytes) {
        let key = object_key(&obj.namespace, &obj.name);
        self.model
            .live
            .get(&(res, key))
            .cloned()
            .expect("the model holds the object")
    }

    /// Opens a watch mid-run; its live events are checked at the end.
    fn open_watch(&mut self, res: usize, back: u8) {
        let prefix = format!("core/{}", RESOURCES[res]);
        let from = self.api.store.current_rv().saturating_sub(u64::from(back));
        match self.api.store.watch(&prefix, Some(from)) {
            Ok(sub) => {
                assert!(
                    from >= self.expected_oldest(),
                    "watch from {from} should be Gone"
                );
                self.watches.push((res, from, sub));
            }
            Err(StoreError::Gone { requested, oldest }) => {
                assert_eq!((requested, oldest), (from, self.expected_oldest()));
            }
            Err(e) => panic!("watch failed: {e}"),
        }
    }

    /// Every event is one version, so the window of `window` events starts this far back.
    fn expected_oldest(&self) -> u64 {
        self.api
            .store
            .current_rv()
            .saturating_sub(self.window as u64)
    }

    /// End-of-run checks: the window start, lists and watches at every version.
    fn check_history(&mut self) {
        let current = self.api.store.current_rv();
        let oldest = self.api.store.oldest_rv();
        assert_eq!(oldest, self.expected_oldest(), "window start");
        for resource in RESOURCES {
            let prefix = format!("core/{resource}");
            for r in 0..oldest {
                assert_gone(
                    self.api.store.list(&prefix, None, Some(r)).map(|_| ()),
                    r,
                    oldest,
                );
                assert_gone(
                    self.api.store.watch(&prefix, Some(r)).map(|_| ()),
                    r,
                    oldest,
                );
            }
            for r in oldest..=current {
                self.check_list_at(&prefix, r);
                let sub = self
                    .api
                    .store
                    .watch(&prefix, Some(r))
                    .expect("watch in the window");
                self.check_watch(&prefix, r, sub);
            }
        }
        for (res, from, sub) in std::mem::take(&mut self.watches) {
            self.check_watch(&format!("core/{}", RESOURCES[res]), from, sub);
        }
    }

    fn check_list_at(&self, prefix: &str, r: u64) {
        for ns in [None, Some(NAMESPACES[0]), Some(NAMESPACES[1])] {
            let (at, objs) = self
                .api
                .store
                .list(prefix, ns, Some(r))
                .expect("list in the window");
            assert_eq!(at, r, "list at {r} is consistent at {r}");
            let got: Vec<(String, Bytes)> = objs
                .iter()
                .map(|o| (object_key(&o.namespace, &o.name), o.json.clone()))
                .collect();
            let want = self.model.replay(prefix, ns, r);
            assert_eq!(got, want, "list {prefix} {ns:?} at {r}");
            // The same list read in pages of one, each after the last key of the one before,
            // with the rest counted; and again keeping only the objects named "b".
            for only_b in [false, true] {
                let want: Vec<&(String, Bytes)> = want
                    .iter()
                    .filter(|(k, _)| !only_b || k.ends_with("/b"))
                    .collect();
                let mut paged = Vec::new();
                let mut after: Option<String> = None;
                loop {
                    let q = PageQuery {
                        prefix,
                        namespace: ns,
                        at: Some(r),
                        after: after.as_deref(),
                        limit: 1,
                        count_rest: true,
                    };
                    let page = self
                        .api
                        .store
                        .list_page(&q, |o| !only_b || o.name == "b")
                        .expect("page in the window");
                    assert_eq!(page.rv, r, "page at {r} is consistent at {r}");
                    assert!(page.items.len() <= 1, "a page holds at most its limit");
                    let Some(o) = page.items.first() else {
                        assert_eq!(page.rest, 0, "an empty page has nothing after it");
                        break;
                    };
                    let key = object_key(&o.namespace, &o.name);
                    paged.push((key.clone(), o.json.clone()));
                    assert_eq!(
                        page.rest,
                        want.len() - paged.len(),
                        "rest after {key} ({prefix} {ns:?} at {r}, only b: {only_b})"
                    );
                    after = Some(key);
                }
                let want: Vec<(String, Bytes)> = want.into_iter().cloned().collect();
                assert_eq!(
                    paged, want,
                    "paged list {prefix} {ns:?} at {r}, only b: {only_b}"
                );
            }
        }
    }

    /// A watch from `from` delivers exactly the logged changes after `from`, in order.
    fn check_watch(&self, prefix: &str, from: u64, sub: Subscription) {
        let got = drain(sub, prefix);
        let want: Vec<&Logged> = self
            .model
            .log
            .iter()
            .filter(|e| e.prefix == prefix && e.rv > from)
            .collect();
        assert_eq!(
            got.len(),
            want.len(),
            "watch {prefix} from {from}: event count"
        );
        for (g, w) in got.iter().zip(want) {
            let key = object_key(&g.obj.namespace, &g.obj.name);
            assert_eq!(
                (g.rv(), g.kind, &key),
                (w.rv, w.kind, &w.key),
                "watch from {from}"
            );
            assert_eq!(g.obj.json, w.json, "watch from {from}: object at {}", w.rv);
            assert_eq!(
                g.prev.as_ref().map(|p| &p.json),
                w.prev.as_ref(),
                "prev at {}",
                w.rv
            );
        }
    }
}

/// The backlog then every live event buffered so far, for `prefix` only.
fn drain(sub: Subscription, prefix: &str) -> Vec<Arc<Event>> {
    let Subscription {
        backlog, mut rx, ..
    } = sub;
    let mut out = backlog;
    loop {
        match rx.try_recv() {
            Ok(ev) if &*ev.prefix == prefix => out.push(ev),
            Ok(_) => {}
            Err(TryRecvError::Empty) => break,
            Err(e) => panic!("watch lost events: {e}"),
        }
    }
    out
}

fn assert_gone(r: Result<(), StoreError>, requested: u64, oldest: u64) {
    match r {
        Err(StoreError::Gone {
            requested: q,
            oldest: o,
        }) => assert_eq!((q, o), (requested, oldest)),
        other => panic!("version {requested} (oldest {oldest}): expected Gone, got {other:?}"),
    }
}

/// Everything a reopened store must match: each prefix's objects and the version.
fn snapshot(store: &Store) -> (u64, Vec<Vec<Arc<Obj>>>) {
    let prefixes = ["core/namespaces", "core/configmaps", "core/secrets"];
    let lists = prefixes
        .iter()
        .map(|p| store.list(p, None, None).expect("list now").1)
        .collect();
    (store.current_rv(), lists)
}

/// Reopens the database at `path` and checks it against `before`; then one more write must
/// take a version above every earlier one.
fn check_reopen(path: &Path, before: &(u64, Vec<Vec<Arc<Obj>>>)) {
    let api = new_api(Store::open(path, options(false)).expect("the store reopens"));
    assert_eq!(
        &snapshot(&api.store),
        before,
        "objects and version survive a restart"
    );
    let rv = before.0;
    assert_eq!(api.store.oldest_rv(), rv, "the watch window starts empty");
    assert_gone(
        api.store.watch("core/configmaps", Some(rv - 1)).map(|_| ()),
        rv - 1,
        rv,
    );
    let info = api
        .resource("", "v1", "configmaps")
        .expect("configmaps are served");
    let body = json!({"metadata": {"name": "after-restart"}});
    let w = api
        .create(&info, "default", body, WriteOpts::default())
        .expect("create");
    assert!(
        w.obj.rv > rv,
        "a write after restart takes {} > {rv}",
        w.obj.rv
    );
    assert_eq!(api.store.current_rv(), w.obj.rv);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Goal: versions strictly increase, rejected writes and no-ops take none, and watches
    /// and lists at any version in the window replay the acknowledged changes exactly.
    /// Method: random operations through the API on an in-memory store, memory-only or on
    /// an in-memory SQLite database (the simulator's embedded server), window 16 or the
    /// default, each checked against the model; then a list and a watch at every version,
    /// `Gone` below the window, and the watches opened mid-run drained and compared.
    #[test]
    fn store_matches_model(
        small_window in any::<bool>(),
        sqlite in any::<bool>(),
        ops in prop::collection::vec(op_strategy(), 1..120),
    ) {
        let opts = options(small_window);
        let window = opts.window_events_max;
        let store = if sqlite {
            Store::open_sqlite_in_memory(opts).unwrap()
        } else {
            Store::open_in_memory(opts).unwrap()
        };
        let mut run = Run::new(store, window);
        for op in &ops {
            run.step(op);
        }
        run.check_history();
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    /// Goal: a restart loses nothing and reuses no version.
    /// Method: random operations on a store in a temporary file, checked against the model;
    /// drop it, reopen the file, compare every object (bytes, version, selector fields) and
    /// the version counter, and check the next write takes a larger version.
    #[test]
    fn reopen_keeps_objects_and_version(ops in prop::collection::vec(op_strategy(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("apiserver.db");
        let mut run = Run::new(Store::open(&path, options(false)).unwrap(), 100_000);
        for op in &ops {
            run.step(op);
        }
        run.check_history();
        let before = snapshot(&run.api.store);
        drop(run);
        assert_eq!(ke_apiserver::store::read_rv(&path).unwrap(), Some(before.0));
        check_reopen(&path, &before);
    }
}

/// Goal: one database file has one API server: while a store has the file open (exclusive
/// locking), a second store on it is refused, saying so, instead of sharing it; once the
/// first is closed (as its server does when it stops serving) the file opens again with
/// everything in it, and the closed store refuses writes. Method: a store on a temporary
/// file with one namespace written; open the file again, close the first store, open
/// again, read the namespace, write through the closed one.
#[test]
fn a_database_file_serves_one_store_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("apiserver.db");
    let api = new_api(Store::open(&path, options(false)).unwrap());
    let ns = api.resource("", "v1", "namespaces").unwrap();
    api.create(
        &ns,
        "",
        json!({"metadata": {"name": "kept"}}),
        WriteOpts::default(),
    )
    .unwrap();
    let second = Store::open(&path, options(false));
    match second {
        Err(e @ StoreError::InUse { .. }) => {
            assert!(
                e.to_string().contains("in use by another API server"),
                "{e}"
            );
        }
        other => panic!("a second store on an open file: {other:?}"),
    }
    api.store.close();
    let again = Store::open(&path, options(false)).unwrap();
    assert!(again.get(&ns.storage_prefix(), "kept").is_some());
    let late = api.create(
        &ns,
        "",
        json!({"metadata": {"name": "late"}}),
        WriteOpts::default(),
    );
    assert!(late.is_err(), "a closed store writes nothing");
    assert!(
        api.store.get(&ns.storage_prefix(), "kept").is_some(),
        "reads still answer"
    );
}

/// Goal: every in-memory SQLite store (the simulator's API server; `memdb` files) has its
/// own database, even with several in one process at once. Method: write a namespace
/// through one store, open a second while the first is open and check it starts empty
/// and takes its own writes, then open a third after both are dropped.
#[test]
fn in_memory_sqlite_stores_share_nothing() {
    let first = new_api(Store::open_sqlite_in_memory(options(false)).unwrap());
    let ns = first.resource("", "v1", "namespaces").unwrap();
    let prefix = ns.storage_prefix();
    first
        .create(
            &ns,
            "",
            json!({"metadata": {"name": "one"}}),
            WriteOpts::default(),
        )
        .unwrap();
    let second = new_api(Store::open_sqlite_in_memory(options(false)).unwrap());
    assert!(
        second.store.get(&prefix, "one").is_none(),
        "the second store starts empty"
    );
    assert!(second.store.current_rv() < first.store.current_rv());
    second
        .create(
            &ns,
            "",
            json!({"metadata": {"name": "two"}}),
            WriteOpts::default(),
        )
        .unwrap();
    assert!(first.store.get(&prefix, "two").is_none());
    assert!(first.store.get(&prefix, "one").is_some());
    drop((first, second));
    let third = Store::open_sqlite_in_memory(options(false)).unwrap();
    assert_eq!(third.current_rv(), 0, "nothing survives a store");
}
