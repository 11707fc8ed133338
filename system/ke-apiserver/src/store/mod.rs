//! Storage: SQLite (WAL) holds the current state durably; memory holds the same state for
//! reads plus a bounded window of recent change events for watches.
//!
//! Every write runs under one lock: it takes the next resourceVersion, commits the new state
//! with that version in one SQLite transaction (an object's version in its row; a delete's in
//! the counter row), and only then updates memory and publishes the event. So an acknowledged
//! write is on disk, resourceVersions strictly increase (also across restarts: the counter is
//! the larger of the counter row and the newest row), and watchers see events in
//! resourceVersion order.
//!
//! - [`object`]: the stored object form ([`Obj`]).

mod object;

pub use object::{Labels, Members, Obj};

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;
use std::{
    collections::{BTreeMap, VecDeque},
    ops::Bound,
    path::Path,
    sync::{Arc, Mutex, MutexGuard},
};
use tokio::sync::broadcast;

/// Storage failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed; nothing was changed.
    #[error("storage failed")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored row could not be decoded.
    #[error("stored object {key} is corrupt")]
    Corrupt {
        /// Storage key of the row.
        key: String,
        /// Decoder error.
        #[source]
        source: serde_json::Error,
    },
    /// Another store (another API server) has the database file open: one file serves
    /// one server at a time.
    #[error("the database {path} is in use by another API server")]
    InUse {
        /// The database file.
        path: std::path::PathBuf,
    },
    /// The store was closed (its API server stopped serving): nothing more is written.
    #[error("the store is closed: the API server has stopped")]
    Closed,
    /// The requested resourceVersion is older than the watch window.
    #[error("too old resource version: {requested} (oldest available {oldest})")]
    Gone {
        /// Requested resourceVersion.
        requested: u64,
        /// Oldest resourceVersion that can still be served.
        oldest: u64,
    },
}

/// What a change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Object created.
    Added,
    /// Object changed.
    Modified,
    /// Object removed.
    Deleted,
}

impl EventType {
    /// The watch event type string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

/// One change, as kept in the watch window and sent to watchers.
#[derive(Debug, Clone)]
pub struct Event {
    /// What happened.
    pub kind: EventType,
    /// Storage prefix of the resource (`core/pods`).
    pub prefix: Arc<str>,
    /// The object after the change (for deletes: its last state at the deletion's version).
    pub obj: Arc<Obj>,
    /// The object before the change.
    pub prev: Option<Arc<Obj>>,
}

impl Event {
    /// The resourceVersion of the change.
    pub fn rv(&self) -> u64 {
        self.obj.rv
    }
}

/// What a mutation closure decided.
#[derive(Debug)]
pub enum Mutation {
    /// Store this object (metadata already final, resourceVersion included).
    Put(Value),
    /// Remove the object; the value is its final state, sent with the DELETED event.
    Delete(Value),
    /// Store this object, already in its stored form (built with the version the closure
    /// was given, e.g. by [`Obj::with_status`]).
    PutBuilt(Arc<Obj>),
}

/// A new watch: events after the starting version that were already in the window, then live.
#[derive(Debug)]
pub struct Subscription {
    /// Events to send first.
    pub backlog: Vec<Arc<Event>>,
    /// Live events (all resources; the caller filters).
    pub rx: broadcast::Receiver<Arc<Event>>,
    /// The store's resourceVersion when the watch started.
    pub rv: u64,
}

/// What [`Store::list_page`] reads.
#[derive(Debug, Clone, Copy)]
pub struct PageQuery<'a> {
    /// Storage prefix of the resource (`core/pods`).
    pub prefix: &'a str,
    /// Only this namespace's objects.
    pub namespace: Option<&'a str>,
    /// The version to read at (default: now); older than the watch window is `Gone`.
    pub at: Option<u64>,
    /// Only keys after this one (a continue token's last key).
    pub after: Option<&'a str>,
    /// At most this many objects.
    pub limit: usize,
    /// Count every accepted object after the page in [`Page::rest`]; otherwise the count
    /// stops at the first one.
    pub count_rest: bool,
}

/// One page of a list.
#[derive(Debug)]
pub struct Page {
    /// The version the page is consistent at.
    pub rv: u64,
    /// The objects, in key order.
    pub items: Vec<Arc<Obj>>,
    /// Accepted objects after the page: all of them with `count_rest`, else 0 or 1.
    pub rest: usize,
}

impl Page {
    /// Takes the objects `keep` accepts, up to the query's limit, then counts the rest.
    fn fill<'a>(
        &mut self,
        objs: impl Iterator<Item = &'a Arc<Obj>>,
        q: &PageQuery<'_>,
        mut keep: impl FnMut(&Obj) -> bool,
    ) {
        for obj in objs {
            if !keep(obj) {
                continue;
            }
            if self.items.len() < q.limit {
                self.items.push(obj.clone());
            } else {
                self.rest += 1;
                if !q.count_rest {
                    break;
                }
            }
        }
    }
}

/// Tuning of the store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Events kept for watches from an older version.
    pub window_events_max: usize,
    /// Events buffered per watcher.
    pub fanout_buffer_max: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            window_events_max: ke_core::limits::WATCH_WINDOW_EVENTS_MAX,
            fanout_buffer_max: ke_core::limits::WATCH_FANOUT_BUFFER_MAX,
        }
    }
}

type Objects = BTreeMap<Arc<str>, BTreeMap<String, Arc<Obj>>>;

struct Inner {
    /// The database; `None` for a memory-only store (no second copy in SQLite).
    db: Option<Connection>,
    rv: u64,
    objects: Objects,
    window: VecDeque<Arc<Event>>,
    /// Every event with a version above `oldest` is in `window`.
    oldest: u64,
    /// [`Store::close`] was called: writes are refused.
    closed: bool,
}

/// The object store.
pub struct Store {
    inner: Mutex<Inner>,
    tx: broadcast::Sender<Arc<Event>>,
    opts: StoreOptions,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("rv", &self.current_rv())
            .finish()
    }
}

/// The database settings and tables.
///
/// - `locking_mode = EXCLUSIVE`, set before WAL: the API server is the database's only user,
///   so it takes the file lock once and keeps it, and the WAL index lives in process memory
///   (no `-shm` file). Without it every write took and released several POSIX locks (about
///   5.6 `fcntl` calls per write; 18% of cloudcore's system-call time under twin-report
///   load). Another process (the `sqlite3` shell) can open the file only once the server
///   has stopped.
/// - SQLite's default 2 MiB page cache, with the file memory-mapped (`mmap_size`, set before
///   these by [`Store::open`]: [`FILE_MMAP_BYTES`]).
///   Without the map, writes spread over a fleet's tens of thousands of objects missed a
///   2 MiB cache on nearly every write and read each page back from the OS (2.4 `pread`
///   calls per write); mapped, those reads are memory reads. A large cache (32 MiB before)
///   costs more than it saves: when B-tree balancing has parked a page under the lock-byte
///   page's number, the commit truncates the cache by visiting every cached page, and under
///   twin-report load that visit was 8.6% of cloudcore's CPU.
const SCHEMA: &str = "
PRAGMA locking_mode = EXCLUSIVE;
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
CREATE TABLE IF NOT EXISTS objects (
    prefix TEXT NOT NULL, key TEXT NOT NULL, rv INTEGER NOT NULL, value BLOB NOT NULL,
    PRIMARY KEY (prefix, key));
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL);
INSERT OR IGNORE INTO meta (k, v) VALUES ('rv', 0);
";

/// How much of a database file is memory-mapped (see [`SCHEMA`]); the map grows with the file
/// up to this.
const FILE_MMAP_BYTES: u64 = 1 << 30;

/// The resourceVersion counter of a database: the counter row (written by deletes, whose
/// version no row keeps) or the newest object's version, whichever is larger. No row when
/// the database has no counter (not a store).
const RV_SQL: &str =
    "SELECT max(v, coalesce((SELECT max(rv) FROM objects), 0)) FROM meta WHERE k = 'rv'";

/// The storage key of an object: `ns/name` or `name`.
pub fn object_key(namespace: &str, name: &str) -> String {
    if namespace.is_empty() {
        name.to_owned()
    } else {
        format!("{namespace}/{name}")
    }
}

impl Store {
    /// Opens (creating if needed) the database at `path` and loads it into memory.
    pub fn open(path: &Path, opts: StoreOptions) -> Result<Self, StoreError> {
        let db = Connection::open(path)?;
        db.execute_batch(&format!("PRAGMA mmap_size = {FILE_MMAP_BYTES};"))?;
        Self::from_connection(db, opts).map_err(|e| match e {
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(f, _))
                if f.code == rusqlite::ErrorCode::DatabaseBusy =>
            {
                StoreError::InUse {
                    path: path.to_owned(),
                }
            }
            other => other,
        })
    }

    /// A store on an in-memory SQLite database: every write runs the same statements and
    /// transactions as on a file, and nothing survives the store.
    ///
    /// The database is a private file of SQLite's `memdb` VFS (a name without a leading `/`
    /// is not shared), not `:memory:`. In a `:memory:` database every page lives in the
    /// page cache, and SQLite's B-tree balancing, when it reorders sibling pages, parks one
    /// under the lock-byte page's number (page 262,145): the commit then truncates the
    /// cache past the database's end by visiting every cached page. With 20,000 pods that
    /// was 6% of a 2,000-node simulation. Over `memdb` the pager keeps only a small cache
    /// (SQLite's default 2 MiB: pages it drops are a `memcpy` away), so that visit is short.
    pub fn open_sqlite_in_memory(opts: StoreOptions) -> Result<Self, StoreError> {
        use rusqlite::OpenFlags;
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let db = Connection::open_with_flags("file:apiserver?vfs=memdb", flags)?;
        // memdb keeps its journal in memory whatever SCHEMA asks.
        Self::from_connection(db, opts)
    }

    /// A store that lives only in memory (tests, simulator nodes that need no durability).
    pub fn open_in_memory(opts: StoreOptions) -> Result<Self, StoreError> {
        let (tx, _) = broadcast::channel(opts.fanout_buffer_max.max(1));
        let inner = Inner {
            db: None,
            rv: 0,
            objects: BTreeMap::new(),
            window: VecDeque::new(),
            oldest: 0,
            closed: false,
        };
        Ok(Self {
            inner: Mutex::new(inner),
            tx,
            opts,
        })
    }

    /// A store on `db` (SQLite's default page cache for files and `memdb` alike).
    fn from_connection(db: Connection, opts: StoreOptions) -> Result<Self, StoreError> {
        db.execute_batch(SCHEMA)?;
        let objects = load_objects(&db)?;
        // The counter (see `RV_SQL`), from the rows just loaded rather than a second scan.
        let deleted: u64 = db.query_row("SELECT v FROM meta WHERE k = 'rv'", [], |r| r.get(0))?;
        let newest = objects
            .values()
            .flat_map(BTreeMap::values)
            .map(|o| o.rv)
            .max()
            .unwrap_or(0);
        let rv = deleted.max(newest);
        let (tx, _) = broadcast::channel(opts.fanout_buffer_max.max(1));
        let inner = Inner {
            db: Some(db),
            rv,
            objects,
            window: VecDeque::new(),
            oldest: rv,
            closed: false,
        };
        Ok(Self {
            inner: Mutex::new(inner),
            tx,
            opts,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Closes the database (releasing its file lock, so a new store can open the file in
    /// this process while clients of this one still hold it) and refuses every later write
    /// with [`StoreError::Closed`]. Reads keep answering from memory.
    pub fn close(&self) {
        let mut inner = self.lock();
        inner.closed = true;
        inner.db = None;
    }

    /// The latest resourceVersion.
    pub fn current_rv(&self) -> u64 {
        self.lock().rv
    }

    /// The oldest resourceVersion a watch can start from.
    pub fn oldest_rv(&self) -> u64 {
        self.lock().oldest
    }

    /// Reads one object.
    pub fn get(&self, prefix: &str, key: &str) -> Option<Arc<Obj>> {
        self.lock()
            .objects
            .get(prefix)
            .and_then(|m| m.get(key))
            .cloned()
    }

    /// Number of objects under `prefix`.
    pub fn count(&self, prefix: &str) -> usize {
        self.lock().objects.get(prefix).map_or(0, BTreeMap::len)
    }

    /// Lists the objects under `prefix` (in `namespace` if given), ordered by key, as of `at`
    /// (default: now). Returns the version the list is consistent at.
    pub fn list(
        &self,
        prefix: &str,
        namespace: Option<&str>,
        at: Option<u64>,
    ) -> Result<(u64, Vec<Arc<Obj>>), StoreError> {
        let page = self.list_page(
            &PageQuery {
                prefix,
                namespace,
                at,
                after: None,
                limit: usize::MAX,
                count_rest: false,
            },
            |_| true,
        )?;
        Ok((page.rv, page.items))
    }

    /// One page of a list: the objects under `q.prefix` (in `q.namespace` if given) whose key
    /// sorts after `q.after`, as of `q.at` (default: now), that `keep` accepts, in key order,
    /// at most `q.limit` of them.
    ///
    /// A page costs the page plus the changes made since `q.at`, not the whole resource: the
    /// live index is read from `q.after` on, and each key changed since `q.at` reads its
    /// version of then from the watch window. (It used to copy the whole index per page,
    /// which made `kubectl get` in chunks of 500 quadratic in the number of objects.)
    pub fn list_page(
        &self,
        q: &PageQuery<'_>,
        keep: impl FnMut(&Obj) -> bool,
    ) -> Result<Page, StoreError> {
        let inner = self.lock();
        let empty = BTreeMap::new();
        let live = inner.objects.get(q.prefix).unwrap_or(&empty);
        let ns_start = q.namespace.map(|ns| format!("{ns}/"));
        // The first key that may be listed, and whether it is itself excluded.
        let lower: Bound<&str> = match (q.after, ns_start.as_deref()) {
            (Some(a), Some(s)) if a < s => Bound::Included(s),
            (Some(a), _) => Bound::Excluded(a),
            (None, Some(s)) => Bound::Included(s),
            (None, None) => Bound::Unbounded,
        };
        let in_range = |k: &str| {
            ns_start.as_deref().is_none_or(|s| k.starts_with(s))
                && match lower {
                    Bound::Included(l) => k >= l,
                    Bound::Excluded(l) => k > l,
                    Bound::Unbounded => true,
                }
        };
        let rv = match q.at {
            Some(r) if r < inner.rv => {
                if r < inner.oldest {
                    return Err(StoreError::Gone {
                        requested: r,
                        oldest: inner.oldest,
                    });
                }
                r
            }
            _ => inner.rv,
        };
        let now = live
            .range::<str, _>((lower, Bound::Unbounded))
            .take_while(|(k, _)| ns_start.as_deref().is_none_or(|s| k.starts_with(s)));
        let then = states_at(&inner.window, q.prefix, rv, in_range);
        let mut page = Page {
            rv,
            items: Vec::with_capacity(q.limit.min(live.len())),
            rest: 0,
        };
        if then.is_empty() {
            page.fill(now.map(|(_, o)| o), q, keep);
        } else {
            page.fill(merged_at(now, then), q, keep);
        }
        Ok(page)
    }

    /// Atomically reads the object at `prefix`/`key`, lets `f` decide its new state given the
    /// next resourceVersion, and commits that decision. With `dry_run` nothing is written and
    /// the version does not advance. Returns the stored object (None when `f` gave up).
    pub fn mutate<E>(
        &self,
        prefix: &str,
        key: &str,
        dry_run: bool,
        f: impl FnOnce(Option<&Arc<Obj>>, u64) -> Result<Option<Mutation>, E>,
    ) -> Result<Option<Arc<Obj>>, MutateError<E>> {
        let mut inner = self.lock();
        if inner.closed {
            return Err(MutateError::Store(StoreError::Closed));
        }
        let prev = inner.objects.get(prefix).and_then(|m| m.get(key)).cloned();
        let rv = inner.rv + 1;
        let Some(m) = f(prev.as_ref(), rv).map_err(MutateError::Rejected)? else {
            return Ok(None);
        };
        let expected_len = prev.as_ref().map_or(0, |p| p.json.len());
        let added_or = |k| if prev.is_none() { EventType::Added } else { k };
        let (kind, obj) = match m {
            Mutation::Put(v) => (
                added_or(EventType::Modified),
                Obj::from_value_sized(rv, &v, expected_len),
            ),
            Mutation::Delete(v) => (
                EventType::Deleted,
                Obj::from_value_sized(rv, &v, expected_len),
            ),
            Mutation::PutBuilt(o) => {
                debug_assert_eq!(o.rv, rv, "a built object carries the version it was given");
                (added_or(EventType::Modified), o)
            }
        };
        if dry_run {
            return Ok(Some(obj));
        }
        if let Some(db) = inner.db.as_mut() {
            persist(db, prefix, key, kind, &obj).map_err(MutateError::Store)?;
        }
        inner.rv = rv;
        let prefix: Arc<str> = Arc::from(prefix);
        let live = inner.objects.entry(prefix.clone()).or_default();
        if kind == EventType::Deleted {
            live.remove(key);
        } else {
            live.insert(key.to_owned(), obj.clone());
        }
        let ev = Arc::new(Event {
            kind,
            prefix,
            obj: obj.clone(),
            prev,
        });
        self.publish(&mut inner, ev);
        Ok(Some(obj))
    }

    fn publish(&self, inner: &mut Inner, ev: Arc<Event>) {
        inner.window.push_back(ev.clone());
        while inner.window.len() > self.opts.window_events_max {
            if let Some(old) = inner.window.pop_front() {
                inner.oldest = old.rv();
            }
        }
        // No receivers is fine: nobody is watching.
        let _ = self.tx.send(ev);
    }

    /// Starts a watch from version `from` (None: from now, with the current objects under
    /// `prefix` sent first as ADDED events).
    pub fn watch(&self, prefix: &str, from: Option<u64>) -> Result<Subscription, StoreError> {
        let inner = self.lock();
        let rx = self.tx.subscribe();
        let backlog = match from {
            None => inner
                .objects
                .get(prefix)
                .map(|m| {
                    let p: Arc<str> = Arc::from(prefix);
                    m.values()
                        .map(|o| {
                            Arc::new(Event {
                                kind: EventType::Added,
                                prefix: p.clone(),
                                obj: o.clone(),
                                prev: None,
                            })
                        })
                        .collect()
                })
                .unwrap_or_default(),
            Some(r) if r < inner.oldest => {
                return Err(StoreError::Gone {
                    requested: r,
                    oldest: inner.oldest,
                });
            }
            Some(r) => inner
                .window
                .iter()
                .filter(|e| e.rv() > r && &*e.prefix == prefix)
                .cloned()
                .collect(),
        };
        Ok(Subscription {
            backlog,
            rx,
            rv: inner.rv,
        })
    }
}

/// Failure of [`Store::mutate`].
#[derive(Debug, thiserror::Error)]
pub enum MutateError<E> {
    /// The closure refused the change.
    #[error("change rejected")]
    Rejected(E),
    /// Storage failed; nothing changed.
    #[error(transparent)]
    Store(StoreError),
}

fn persist(
    db: &Connection,
    prefix: &str,
    key: &str,
    kind: EventType,
    obj: &Obj,
) -> Result<(), StoreError> {
    // BEGIN and COMMIT from the statement cache: `Connection::transaction` parses both
    // statements again on every write.
    db.prepare_cached("BEGIN")?.execute([])?;
    // Nothing of a failed write stays: the transaction is rolled back (a failed COMMIT can
    // leave it open), also on a panic, after which the store's lock is still used.
    let _unless_committed = RollbackGuard(db);
    write_rows(db, prefix, key, kind, obj)?;
    db.prepare_cached("COMMIT")?.execute([])?;
    Ok(())
}

/// Rolls back the connection's open transaction when dropped, if one is still open.
struct RollbackGuard<'c>(&'c Connection);

impl Drop for RollbackGuard<'_> {
    fn drop(&mut self) {
        if !self.0.is_autocommit() {
            let _ = self.0.execute_batch("ROLLBACK");
        }
    }
}

fn write_rows(
    tx: &Connection,
    prefix: &str,
    key: &str,
    kind: EventType,
    obj: &Obj,
) -> rusqlite::Result<()> {
    {
        if kind == EventType::Deleted {
            let mut st = tx.prepare_cached("DELETE FROM objects WHERE prefix = ?1 AND key = ?2")?;
            st.execute(params![prefix, key])?;
        } else {
            let mut st = tx.prepare_cached(
                "INSERT INTO objects (prefix, key, rv, value) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (prefix, key) DO UPDATE SET rv = excluded.rv, value = excluded.value",
            )?;
            let rv = i64::try_from(obj.rv).unwrap_or(i64::MAX);
            st.execute(params![prefix, key, rv, &obj.json[..]])?;
        }
        // The counter row is written only by deletes: any other write leaves its version in
        // its own row, and the counter is the larger of the row and every object's version
        // (`RV_SQL`). One page less per commit (the API server's commit was 4% of a
        // simulated fleet's time, mostly writing WAL pages).
        if kind == EventType::Deleted {
            let mut st = tx.prepare_cached("UPDATE meta SET v = ?1 WHERE k = 'rv'")?;
            st.execute(params![i64::try_from(obj.rv).unwrap_or(i64::MAX)])?;
        }
    }
    Ok(())
}

fn load_objects(db: &Connection) -> Result<Objects, StoreError> {
    let mut st = db.prepare("SELECT prefix, key, rv, value FROM objects")?;
    let mut rows = st.query([])?;
    let mut out: Objects = BTreeMap::new();
    while let Some(row) = rows.next()? {
        let prefix: String = row.get(0)?;
        let key: String = row.get(1)?;
        let rv: u64 = row.get(2)?;
        let bytes: Vec<u8> = row.get(3)?;
        let value: Value =
            serde_json::from_slice(&bytes).map_err(|source| StoreError::Corrupt {
                key: format!("{prefix}/{key}"),
                source,
            })?;
        out.entry(Arc::from(prefix.as_str()))
            .or_default()
            .insert(key, Obj::from_value_sized(rv, &value, bytes.len()));
    }
    Ok(out)
}

/// The keys under `prefix` that `wanted` accepts and that changed after version `rv`, each
/// with its state at `rv` (None: it did not exist then). Walking back from the newest change,
/// the oldest change after `rv` is seen last, and its `prev` is the state at `rv`.
fn states_at<'a>(
    window: &'a VecDeque<Arc<Event>>,
    prefix: &str,
    rv: u64,
    wanted: impl Fn(&str) -> bool,
) -> BTreeMap<String, Option<&'a Arc<Obj>>> {
    let mut then = BTreeMap::new();
    for ev in window.iter().rev().take_while(|e| e.rv() > rv) {
        if &*ev.prefix != prefix {
            continue;
        }
        let key = object_key(&ev.obj.namespace, &ev.obj.name);
        if wanted(&key) {
            then.insert(key, ev.prev.as_ref());
        }
    }
    then
}

/// The objects of a version, in key order: the live entries `now` merged with the states of
/// the keys changed since (`then`, from [`states_at`]), which replace the live ones.
fn merged_at<'a>(
    now: impl Iterator<Item = (&'a String, &'a Arc<Obj>)>,
    then: BTreeMap<String, Option<&'a Arc<Obj>>>,
) -> impl Iterator<Item = &'a Arc<Obj>> {
    let mut now = now.peekable();
    let mut then = then.into_iter().peekable();
    std::iter::from_fn(move || {
        loop {
            let obj = match (now.peek(), then.peek()) {
                (None, None) => return None,
                (Some((k, _)), Some((c, _))) if k.as_str() == c.as_str() => {
                    now.next();
                    then.next().and_then(|(_, o)| o)
                }
                (Some((k, _)), Some((c, _))) if k.as_str() > c.as_str() => {
                    then.next().and_then(|(_, o)| o)
                }
                (Some(_), _) => now.next().map(|(_, o)| o),
                (None, Some(_)) => then.next().and_then(|(_, o)| o),
            };
            if obj.is_some() {
                return obj;
            }
        }
    })
}

/// Reads the persisted resourceVersion counter of a database file (durability checks).
pub fn read_rv(path: &Path) -> Result<Option<u64>, StoreError> {
    let db = Connection::open(path)?;
    Ok(db.query_row(RV_SQL, [], |r| r.get(0)).optional()?)
}
