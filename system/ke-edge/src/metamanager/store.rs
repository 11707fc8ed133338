//! [`MetaStore`]: the edge's SQLite copy of everything the cloud sent.
//!
//! Tables:
//! - `meta (key, type, value)`: KubeEdge's own table and columns (`edge/pkg/metamanager/dao`),
//!   so a KubeEdge tool can read the database;
//! - `meta_sync (key, uid, resource_version)`: the identity and version of each stored object,
//!   which makes writes ordered (an older version never replaces a newer one) and feeds the
//!   incremental resync ([`MetaStore::known_versions`]);
//! - `meta_tombstone (uid, key, resource_version)`: UIDs whose delete arrived, so a stale
//!   re-delivery of an insert or update cannot bring a deleted object back. Bounded by
//!   [`TOMBSTONES_MAX`], oldest first out.
//!
//! *Durability.* The database runs in WAL mode with `synchronous=NORMAL` by default: a
//! committed write survives a crash of the process (the WAL is in the OS page cache), but the
//! last commits may be lost if the *machine* loses power. [`Durability::Full`] fsyncs every
//! commit for that case. Every [`MetaStore::apply`] commits before it returns, so a caller that
//! ACKs afterwards never ACKs what a process crash could lose.
//!
//! *Blocking.* SQLite calls are synchronous and short (one small transaction), made on the
//! calling task like the API server's store; there is no `spawn_blocking` (house rule).

use std::{
    collections::BTreeMap,
    path::Path,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

use ke_proto::{ResourcePath, ResourceType};
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

use super::{
    Error, Result,
    change::{Age, Change, Write, age},
};

/// Tombstones kept; past this the oldest are forgotten. A tombstone only matters while the
/// cloud may still redeliver an old message for that UID (CloudHub resends for ~25 s, the
/// resync after a reconnect resends only live objects), so a few thousand deletes of history
/// is ample.
pub const TOMBSTONES_MAX: u32 = 10_000;

/// Parsed statements kept per connection (see `init`).
const STATEMENT_CACHE: usize = 64;

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
CREATE TABLE IF NOT EXISTS meta (
    key TEXT NOT NULL PRIMARY KEY, type TEXT NOT NULL, value TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS meta_type ON meta (type);
CREATE TABLE IF NOT EXISTS meta_sync (
    key TEXT NOT NULL PRIMARY KEY, uid TEXT NOT NULL, resource_version TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta_tombstone (
    uid TEXT NOT NULL PRIMARY KEY, key TEXT NOT NULL, resource_version TEXT NOT NULL);
";

/// How hard a commit is pushed to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// `synchronous=NORMAL`: commits survive a process crash, not a power loss.
    #[default]
    Normal,
    /// `synchronous=FULL`: every commit is fsynced; survives a power loss.
    Full,
}

/// The result of [`MetaStore::apply`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// A new object was stored.
    Inserted,
    /// A stored object was replaced by a newer version (or by a newer object of the same name
    /// with another UID, whose old UID became a tombstone).
    Updated,
    /// The object was removed and its UID remembered as a tombstone.
    Deleted,
    /// The same version is already stored (a redelivery): nothing was written.
    Unchanged,
    /// The message is older than the stored object: ignored.
    Stale {
        /// The stored resourceVersion.
        stored: String,
        /// The message's resourceVersion.
        incoming: String,
    },
    /// The UID was deleted earlier: the insert or update was ignored.
    Tombstoned,
    /// A delete for an object that is not stored under that UID: only the tombstone was
    /// recorded (or it already existed).
    Gone,
}

impl Applied {
    /// True if the stored state changed (so edged should hear of it).
    pub fn changed(&self) -> bool {
        matches!(self, Self::Inserted | Self::Updated | Self::Deleted)
    }
}

/// The edge's metadata database. Cheap to clone: clones share one connection, so the
/// MetaManager task writes and edged reads through the same handle.
#[derive(Clone)]
pub struct MetaStore {
    /// One connection; every use is a short synchronous call that never awaits while holding it.
    conn: Arc<Mutex<Connection>>,
    /// Told of every committed downstream write (see [`MetaStore::with_observer`]).
    observer: Option<Observer>,
}

/// A committed downstream write, as told to an observer.
#[derive(Debug, Clone, Copy)]
pub struct Observed<'a> {
    /// The edge-relative key (`<namespace>/<kind>/<name>`).
    pub key: &'a str,
    /// The object's UID, if the message carried one.
    pub uid: Option<&'a str>,
    /// The message's resourceVersion, if it carried one.
    pub resource_version: Option<&'a str>,
    /// The whole object's JSON text, for inserts and updates.
    pub object: Option<&'a str>,
    /// What the write did.
    pub applied: &'a Applied,
    /// The write was a release (a delete that leaves no tombstone: no pod of the node
    /// references the object any more).
    pub release: bool,
}

/// A callback told of every write [`MetaStore::apply`] commits (the simulator's checkers and
/// latency figures); it runs after the commit, outside the connection lock.
pub type Observer = Arc<dyn Fn(Observed<'_>) + Send + Sync>;

impl std::fmt::Debug for MetaStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetaStore").finish_non_exhaustive()
    }
}

/// What is stored at a key: `(uid, resourceVersion)`, empty strings when unknown.
type Stored = (String, String);

impl MetaStore {
    /// Opens (creating if needed) the database at `path` with [`Durability::Normal`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, Durability::Normal)
    }

    /// Opens (creating if needed) the database at `path` with the given durability.
    pub fn open_with(path: impl AsRef<Path>, durability: Durability) -> Result<Self> {
        let path = path.as_ref();
        let conn = Connection::open(path).map_err(|source| Error::Open {
            path: path.to_owned(),
            source,
        })?;
        Self::init(conn, durability)
    }

    /// A database in memory (tests and simulated nodes that need no file).
    pub fn open_in_memory() -> Result<Self> {
        let conn = Connection::open_in_memory().map_err(sql("open in memory"))?;
        Self::init(conn, Durability::Normal)
    }

    fn init(conn: Connection, durability: Durability) -> Result<Self> {
        conn.execute_batch(SCHEMA).map_err(sql("create schema"))?;
        // MetaManager's and DeviceTwin's statements all stay parsed (rusqlite keeps 16 by
        // default; the two modules use about 25, and an evicted one is parsed again).
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        let sync = match durability {
            Durability::Normal => "NORMAL",
            Durability::Full => "FULL",
        };
        conn.pragma_update(None, "synchronous", sync)
            .map_err(sql("set synchronous"))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(sql("set busy timeout"))?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            observer: None,
        })
    }

    /// This store (sharing its connection) with `observer` told of every committed write made
    /// through it or its clones made afterwards.
    #[must_use]
    pub fn with_observer(mut self, observer: Observer) -> Self {
        self.observer = Some(observer);
        self
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the connection: other modules keep their tables in the same database
    /// (DeviceTwin), so one node has one SQLite file and one page cache.
    pub(crate) fn with_conn<R>(&self, f: impl FnOnce(&mut Connection) -> R) -> R {
        f(&mut self.lock())
    }

    /// Applies a downstream `insert`/`update`/`delete` and commits before returning.
    ///
    /// Idempotent: a redelivery (same version) and an older version write nothing; an insert
    /// or update of a deleted UID is refused. A delete naming another UID than the stored one
    /// leaves the stored object alone (KubeEdge's pod rule, applied to every type).
    pub fn apply(&self, msg: &ke_proto::Message) -> Result<Applied> {
        let change = Change::from_message(msg)?;
        let conn = self.lock();
        let sql_err = |op, source| Error::Sqlite { op, source };
        let applied = immediate(&conn, sql_err, |tx| match &change.write {
            Write::Upsert(obj) => upsert(tx, &change, obj),
            Write::Delete => delete(tx, &change),
            Write::Release => release(tx, &change),
        })?;
        drop(conn);
        if let Some(observe) = &self.observer {
            observe(Observed {
                key: &change.key,
                uid: change.uid.as_deref(),
                resource_version: change.rv.as_deref(),
                object: match &change.write {
                    Write::Upsert(obj) => Some(&**obj),
                    Write::Delete | Write::Release => None,
                },
                applied: &applied,
                release: matches!(change.write, Write::Release),
            });
        }
        Ok(applied)
    }

    /// The object at `<namespace>/<kind>/<name>` (`namespace` `"null"` for cluster-scoped).
    pub fn get(&self, namespace: &str, kind: &ResourceType, name: &str) -> Result<Option<Value>> {
        let key = ResourcePath::object(Some(namespace), kind.clone(), Some(name)).to_string();
        self.get_key(&key)
    }

    /// The object stored under an edge-relative key such as `default/pod/web`.
    pub fn get_key(&self, key: &str) -> Result<Option<Value>> {
        let raw = self.get_raw(key)?;
        raw.map(|text| parse_value(key, &text)).transpose()
    }

    /// The stored JSON text under `key`.
    pub(crate) fn get_raw(&self, key: &str) -> Result<Option<String>> {
        self.lock()
            .prepare_cached("SELECT value FROM meta WHERE key = ?1")
            .and_then(|mut st| st.query_row([key], |r| r.get(0)))
            .optional()
            .map_err(sql("get"))
    }

    /// Every object of `kind`, in one namespace or (`None`) all of them, ordered by key.
    pub fn list(&self, namespace: Option<&str>, kind: &ResourceType) -> Result<Vec<Value>> {
        self.list_raw(namespace, kind)?
            .into_iter()
            .map(|(key, text)| parse_value(&key, &text))
            .collect()
    }

    /// `(key, JSON text)` of every object of `kind`, optionally in one namespace.
    pub(crate) fn list_raw(
        &self,
        namespace: Option<&str>,
        kind: &ResourceType,
    ) -> Result<Vec<(String, String)>> {
        let prefix = namespace.map(|ns| {
            let ns_path = ResourcePath::object(Some(ns), kind.clone(), None);
            format!("{ns_path}/")
        });
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(
                "SELECT key, value FROM meta WHERE type = ?1
                 AND (?2 IS NULL OR substr(key, 1, length(?2)) = ?2) ORDER BY key",
            )
            .map_err(sql("list"))?;
        let rows = stmt
            .query_map(params![kind.as_str(), prefix], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })
            .map_err(sql("list"))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(sql("list"))
    }

    /// The pods bound to `node` (`spec.nodeName`), ordered by key: what edged runs, online or
    /// offline.
    pub fn pods_for_node(&self, node: &str) -> Result<Vec<Value>> {
        let pods = self.list(None, &ResourceType::Pod)?;
        Ok(pods
            .into_iter()
            .filter(|p| p.pointer("/spec/nodeName").and_then(Value::as_str) == Some(node))
            .collect())
    }

    /// What the edge holds, for the incremental resync: object UID (or key when the object has
    /// no UID) → resourceVersion (empty when unknown).
    pub fn known_versions(&self) -> Result<BTreeMap<String, String>> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached("SELECT key, uid, resource_version FROM meta_sync")
            .map_err(sql("known versions"))?;
        let rows = stmt
            .query_map([], |r| {
                let (key, uid, rv): (String, String, String) = (r.get(0)?, r.get(1)?, r.get(2)?);
                Ok((if uid.is_empty() { key } else { uid }, rv))
            })
            .map_err(sql("known versions"))?;
        rows.collect::<rusqlite::Result<BTreeMap<_, _>>>()
            .map_err(sql("known versions"))
    }

    /// What the edge holds, as the inventory it sends after each connect: every stored key
    /// with its UID and resourceVersion (empty strings when unknown), and for pods the
    /// digest of their desired content ([`ke_proto::desired`]: the cloud sends no status
    /// echoes, so a pod's resourceVersion here may be older than the cloud's).
    pub fn inventory(&self) -> Result<ke_proto::inventory::Inventory> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(
                "SELECT m.key, coalesce(s.uid, ''), coalesce(s.resource_version, ''),
                        CASE WHEN m.type = 'pod' THEN m.value END
                 FROM meta m LEFT JOIN meta_sync s ON s.key = m.key ORDER BY m.key",
            )
            .map_err(sql("inventory"))?;
        let rows = stmt
            .query_map([], |r| {
                let value: Option<String> = r.get(3)?;
                let digest = value
                    .and_then(|v| serde_json::from_str::<Value>(&v).ok())
                    .map(|v| ke_proto::desired::desired_digest(&v));
                let held = ke_proto::inventory::Held {
                    uid: r.get(1)?,
                    rv: r.get(2)?,
                    digest,
                };
                Ok((r.get::<_, String>(0)?, held))
            })
            .map_err(sql("inventory"))?;
        let objects = rows
            .collect::<rusqlite::Result<BTreeMap<_, _>>>()
            .map_err(sql("inventory"))?;
        Ok(ke_proto::inventory::Inventory { objects })
    }

    /// True if a delete of `uid` has been recorded (and not yet aged out).
    pub fn is_tombstoned(&self, uid: &str) -> Result<bool> {
        tombstoned(&self.lock(), uid)
    }
}

/// Maps a rusqlite error to [`Error::Sqlite`] naming the operation.
fn sql(op: &'static str) -> impl FnOnce(rusqlite::Error) -> Error {
    move |source| Error::Sqlite { op, source }
}

fn parse_value(key: &str, text: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|source| Error::Corrupt {
        key: key.to_owned(),
        source,
    })
}

fn tombstoned(conn: &Connection, uid: &str) -> Result<bool> {
    conn.prepare_cached("SELECT 1 FROM meta_tombstone WHERE uid = ?1")
        .and_then(|mut st| st.query_row([uid], |_| Ok(())))
        .optional()
        .map(|r| r.is_some())
        .map_err(sql("read tombstone"))
}

/// Runs `f` in one `BEGIN IMMEDIATE` transaction, committed if `f` returns `Ok` and rolled
/// back otherwise; `sql_err` makes the caller's error of a failed BEGIN or COMMIT. Both
/// statements come from the statement cache: rusqlite's `Transaction` parses them again on
/// every write (5% of an edge's time under twin-report load).
pub(crate) fn immediate<T, E>(
    conn: &Connection,
    sql_err: impl Fn(&'static str, rusqlite::Error) -> E,
    f: impl FnOnce(&Connection) -> std::result::Result<T, E>,
) -> std::result::Result<T, E> {
    let run = |q: &str, op| {
        conn.prepare_cached(q)
            .and_then(|mut st| st.execute([]))
            .map_err(|e| sql_err(op, e))
    };
    run("BEGIN IMMEDIATE", "begin")?;
    let _unless_committed = RollbackGuard(conn);
    f(conn).and_then(|v| run("COMMIT", "commit").map(|_| v))
}

/// Rolls back the connection's open transaction when dropped, if one is still open: after
/// a failure of `f` or of COMMIT, and if `f` panics (the connection's mutex recovers from
/// poisoning, so a transaction left open would make every later BEGIN fail).
struct RollbackGuard<'c>(&'c Connection);

impl Drop for RollbackGuard<'_> {
    fn drop(&mut self) {
        if !self.0.is_autocommit() {
            let _ = self.0.execute_batch("ROLLBACK");
        }
    }
}

/// `(uid, rv)` stored at `key`, or `None` if the key holds nothing. A `meta` row without a
/// `meta_sync` row (written by another tool) has unknown identity and version.
fn stored(tx: &Connection, key: &str) -> Result<Option<Stored>> {
    tx.prepare_cached(
        "SELECT coalesce(s.uid, ''), coalesce(s.resource_version, '')
         FROM meta m LEFT JOIN meta_sync s ON s.key = m.key WHERE m.key = ?1",
    )
    .and_then(|mut st| st.query_row([key], |r| Ok((r.get(0)?, r.get(1)?))))
    .optional()
    .map_err(sql("read stored"))
}

fn upsert(tx: &Connection, change: &Change, obj: &str) -> Result<Applied> {
    if let Some(uid) = &change.uid
        && tombstoned(tx, uid)?
    {
        return Ok(Applied::Tombstoned);
    }
    let Some((s_uid, s_rv)) = stored(tx, &change.key)? else {
        write_row(tx, change, obj)?;
        return Ok(Applied::Inserted);
    };
    let incoming = change.rv.as_deref();
    let same_uid = s_uid.is_empty() || change.uid.as_ref().is_none_or(|u| *u == s_uid);
    match age(incoming, non_empty(&s_rv)) {
        Age::Newer => {
            if !same_uid {
                // A newer object of the same name: the old UID is gone for good.
                add_tombstone(tx, &s_uid, &change.key, &s_rv)?;
            }
            write_row(tx, change, obj)?;
            Ok(Applied::Updated)
        }
        Age::Same if same_uid => Ok(Applied::Unchanged),
        Age::Same | Age::Older => Ok(Applied::Stale {
            stored: s_rv,
            incoming: incoming.unwrap_or_default().to_owned(),
        }),
    }
}

fn delete(tx: &Connection, change: &Change) -> Result<Applied> {
    let rv = change.rv.clone().unwrap_or_default();
    let stored = stored(tx, &change.key)?;
    let matches = match (&stored, &change.uid) {
        (Some((s_uid, _)), Some(uid)) => s_uid.is_empty() || s_uid == uid,
        (Some(_), None) => true,
        (None, _) => false,
    };
    if let (Some((s_uid, s_rv)), true) = (&stored, matches) {
        tx.prepare_cached("DELETE FROM meta WHERE key = ?1")
            .and_then(|mut st| st.execute([&change.key]))
            .map_err(sql("delete"))?;
        tx.prepare_cached("DELETE FROM meta_sync WHERE key = ?1")
            .and_then(|mut st| st.execute([&change.key]))
            .map_err(sql("delete"))?;
        let uid = change.uid.as_deref().unwrap_or(s_uid);
        let rv = if rv.is_empty() { s_rv.as_str() } else { &rv };
        add_tombstone(tx, uid, &change.key, rv)?;
        return Ok(Applied::Deleted);
    }
    match &change.uid {
        Some(uid) if !tombstoned(tx, uid)? => {
            add_tombstone(tx, uid, &change.key, &rv)?;
            Ok(Applied::Gone)
        }
        Some(_) => Ok(Applied::Unchanged),
        None => Ok(Applied::Gone),
    }
}

/// Removes the stored object if it is the one named (same UID), without a tombstone.
fn release(tx: &Connection, change: &Change) -> Result<Applied> {
    let Some((s_uid, _)) = stored(tx, &change.key)? else {
        return Ok(Applied::Gone);
    };
    if change
        .uid
        .as_ref()
        .is_some_and(|u| !s_uid.is_empty() && *u != s_uid)
    {
        return Ok(Applied::Unchanged);
    }
    tx.prepare_cached("DELETE FROM meta WHERE key = ?1")
        .and_then(|mut st| st.execute([&change.key]))
        .map_err(sql("release"))?;
    tx.prepare_cached("DELETE FROM meta_sync WHERE key = ?1")
        .and_then(|mut st| st.execute([&change.key]))
        .map_err(sql("release"))?;
    Ok(Applied::Deleted)
}

fn non_empty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

fn write_row(tx: &Connection, change: &Change, text: &str) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO meta (key, type, value) VALUES (?1, ?2, ?3)
         ON CONFLICT (key) DO UPDATE SET type = excluded.type, value = excluded.value",
    )
    .and_then(|mut st| st.execute(params![change.key, change.kind, text]))
    .map_err(sql("write object"))?;
    tx.prepare_cached(
        "INSERT INTO meta_sync (key, uid, resource_version) VALUES (?1, ?2, ?3)
         ON CONFLICT (key) DO UPDATE SET uid = excluded.uid,
             resource_version = excluded.resource_version",
    )
    .and_then(|mut st| {
        st.execute(params![
            change.key,
            change.uid.as_deref().unwrap_or_default(),
            change.rv.as_deref().unwrap_or_default()
        ])
    })
    .map_err(sql("write version"))?;
    Ok(())
}

/// Records `uid` as deleted and ages out the oldest tombstones past [`TOMBSTONES_MAX`].
fn add_tombstone(tx: &Connection, uid: &str, key: &str, rv: &str) -> Result<()> {
    if uid.is_empty() {
        return Ok(());
    }
    tx.prepare_cached(
        "INSERT OR REPLACE INTO meta_tombstone (uid, key, resource_version) VALUES (?1, ?2, ?3)",
    )
    .and_then(|mut st| st.execute(params![uid, key, rv]))
    .map_err(sql("write tombstone"))?;
    tx.prepare_cached(
        "DELETE FROM meta_tombstone WHERE rowid <=
         (SELECT rowid FROM meta_tombstone ORDER BY rowid DESC LIMIT 1 OFFSET ?1)",
    )
    .and_then(|mut st| st.execute([TOMBSTONES_MAX]))
    .map_err(sql("age out tombstones"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: `immediate` commits what `f` wrote when it succeeds and keeps nothing of it when
    /// it fails, and the connection is usable for the next transaction either way. Method: a
    /// successful write, a write followed by an error, a COMMIT-time failure (a deferred
    /// foreign key check), a panic inside `f`, each followed by a read.
    #[test]
    fn immediate_commits_or_keeps_nothing() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "PRAGMA foreign_keys = ON; CREATE TABLE p (k TEXT PRIMARY KEY);
             CREATE TABLE c (k TEXT REFERENCES p (k) DEFERRABLE INITIALLY DEFERRED);",
        )
        .unwrap();
        let err = |op, source| Error::Sqlite { op, source };
        let count = |t: &str| -> i64 {
            conn.query_row(&format!("SELECT count(*) FROM {t}"), [], |r| r.get(0))
                .unwrap()
        };
        immediate(&conn, err, |c| {
            c.execute("INSERT INTO p VALUES ('a')", [])
                .map_err(sql("insert"))
        })
        .unwrap();
        assert_eq!(count("p"), 1);
        let failed: Result<()> = immediate(&conn, err, |c| {
            c.execute("INSERT INTO p VALUES ('b')", [])
                .map_err(sql("insert"))?;
            Err(Error::Sqlite {
                op: "caller",
                source: rusqlite::Error::InvalidQuery,
            })
        });
        assert!(failed.is_err());
        assert_eq!(count("p"), 1, "the failed transaction's row is gone");
        let at_commit = immediate(&conn, err, |c| {
            c.execute("INSERT INTO c VALUES ('nobody')", [])
                .map_err(sql("insert"))
        });
        assert!(matches!(at_commit, Err(Error::Sqlite { op: "commit", .. })));
        assert!(conn.is_autocommit(), "no transaction left open");
        assert_eq!(count("c"), 0);
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _: Result<()> = immediate(&conn, err, |c| {
                c.execute("INSERT INTO p VALUES ('p')", [])
                    .map_err(sql("insert"))?;
                panic!("a bug in the caller")
            });
        }));
        assert!(panicked.is_err());
        assert!(conn.is_autocommit(), "a panic leaves no transaction open");
        immediate(&conn, err, |c| {
            c.execute("INSERT INTO p VALUES ('c')", [])
                .map_err(sql("insert"))
        })
        .unwrap();
        assert_eq!(count("p"), 2);
    }

    /// Goal: tombstones are bounded and age out oldest first. Method: record
    /// `TOMBSTONES_MAX + 5` tombstones in one transaction; the count stays at the bound, the
    /// first five are gone and the last one is kept.
    #[test]
    fn tombstones_are_bounded() {
        let store = MetaStore::open_in_memory().unwrap();
        {
            let mut conn = store.lock();
            let tx = conn.transaction().unwrap();
            for i in 0..TOMBSTONES_MAX + 5 {
                add_tombstone(&tx, &format!("u{i}"), "default/pod/p", "1").unwrap();
            }
            tx.commit().unwrap();
        }
        let count: u32 = store
            .lock()
            .query_row("SELECT count(*) FROM meta_tombstone", [], |r| r.get(0))
            .unwrap();
        assert_eq!(count, TOMBSTONES_MAX);
        assert!(!store.is_tombstoned("u4").unwrap());
        assert!(store.is_tombstoned("u5").unwrap());
        assert!(
            store
                .is_tombstoned(&format!("u{}", TOMBSTONES_MAX + 4))
                .unwrap()
        );
    }
}
