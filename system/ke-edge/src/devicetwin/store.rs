//! DeviceTwin's tables, in the MetaStore's database (KubeEdge's `device` and `device_twin`
//! columns, wire reference §3 of the research; values as KubeEdge stores them: versions and
//! value metadata as JSON text), plus `twin_outbox`: the reports waiting for the cloud's
//! confirmation, in order. Every change and the report it causes commit in one transaction, so
//! a crash loses neither and a refused report changes nothing.

use std::collections::BTreeMap;

use ke_proto::twin::{
    MemberDevice, MsgTwin, TYPE_DELETED, TwinValue, TwinVersion, TypeMetadata, ValueMetadata,
};
use rusqlite::{Connection, OptionalExtension, params};

use crate::metamanager::MetaStore;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS device (
    id TEXT NOT NULL PRIMARY KEY, name TEXT, description TEXT, state TEXT, last_online TEXT);
CREATE TABLE IF NOT EXISTS device_twin (
    id INTEGER PRIMARY KEY AUTOINCREMENT, deviceid TEXT NOT NULL, name TEXT NOT NULL,
    description TEXT, expected TEXT, actual TEXT, expected_meta TEXT, actual_meta TEXT,
    expected_version TEXT, actual_version TEXT, optional INTEGER, attr_type TEXT, metadata TEXT,
    UNIQUE (deviceid, name));
CREATE TABLE IF NOT EXISTS twin_outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, resource TEXT NOT NULL, content TEXT NOT NULL);
";

/// Why a twin store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("device twin store: {op}")]
    Sql {
        /// What was being done.
        op: &'static str,
        /// The cause.
        #[source]
        source: rusqlite::Error,
    },
}

type Result<T, E = StoreError> = std::result::Result<T, E>;

fn sql(op: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |source| StoreError::Sql { op, source }
}

/// A `device` row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceRow {
    /// `<ns>/<name>`.
    pub id: String,
    /// Device name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Last reported state (empty until reported).
    pub state: String,
    /// RFC 3339 time of the last `online`/`ok` state.
    pub last_online: String,
}

impl DeviceRow {
    /// As listed in membership messages (without twins).
    pub fn member(&self) -> MemberDevice {
        MemberDevice {
            id: self.id.clone(),
            name: self.name.clone(),
            description: self.description.clone(),
            state: self.state.clone(),
            last_online: self.last_online.clone(),
            twin: BTreeMap::new(),
        }
    }
}

/// A `device_twin` row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TwinRow {
    /// Expected (desired) value.
    pub expected: Option<String>,
    /// Actual (reported) value.
    pub actual: Option<String>,
    /// When the expected value was set.
    pub expected_meta: Option<ValueMetadata>,
    /// When the actual value was set.
    pub actual_meta: Option<ValueMetadata>,
    /// Versions of the expected value.
    pub expected_version: TwinVersion,
    /// Versions of the actual value.
    pub actual_version: TwinVersion,
    /// Optional property.
    pub optional: bool,
    /// Value type (`deleted` for a deleted twin).
    pub attr_type: String,
}

impl TwinRow {
    /// The wire form, with or without versions.
    pub fn to_msg(&self, versions: bool) -> MsgTwin {
        let value = |v: &Option<String>, m: &Option<ValueMetadata>| {
            v.as_ref().map(|v| TwinValue {
                value: Some(v.clone()),
                metadata: *m,
            })
        };
        MsgTwin {
            expected: value(&self.expected, &self.expected_meta),
            actual: value(&self.actual, &self.actual_meta),
            optional: Some(self.optional),
            metadata: Some(TypeMetadata {
                kind: self.attr_type.clone(),
            }),
            expected_version: versions.then_some(self.expected_version),
            actual_version: versions.then_some(self.actual_version),
        }
    }

    /// True if the expected value is set and differs from the actual one.
    pub fn has_delta(&self) -> bool {
        self.attr_type != TYPE_DELETED
            && self.expected.as_deref().is_some_and(|e| !e.is_empty())
            && self.expected != self.actual
    }
}

/// A report waiting for the cloud: its outbox sequence number, resource and content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// Order of the report.
    pub seq: i64,
    /// `device/<ns>/<name>/twin/edge_updated` or `…/state/update`.
    pub resource: String,
    /// The content as sent (JSON text).
    pub content: String,
}

/// The twin tables of one node's database (a cheap handle on the MetaStore's connection).
#[derive(Debug, Clone)]
pub struct TwinStore {
    meta: MetaStore,
}

impl TwinStore {
    /// Creates the tables if needed.
    pub fn open(meta: MetaStore) -> Result<Self> {
        meta.with_conn(|c| c.execute_batch(SCHEMA))
            .map_err(sql("create twin schema"))?;
        Ok(Self { meta })
    }

    /// Runs `f` in one immediate transaction, committed if it returns `Ok`.
    pub fn write<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&Connection) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        let sql_err = |op, source| E::from(StoreError::Sql { op, source });
        self.meta
            .with_conn(|c| crate::metamanager::store::immediate(c, sql_err, f))
    }

    /// Runs `f` on the connection (reads).
    pub fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        self.meta.with_conn(|c| f(c))
    }
}

/// Runs a statement from the connection's statement cache (parsed once per connection, not
/// on every report).
fn exec<P: rusqlite::Params>(c: &Connection, sql: &str, params: P) -> rusqlite::Result<usize> {
    c.prepare_cached(sql)?.execute(params)
}

/// Reads one row with a statement from the connection's statement cache.
fn row<T, P: rusqlite::Params>(
    c: &Connection,
    sql: &str,
    params: P,
    f: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    c.prepare_cached(sql)?.query_row(params, f)
}

/// Every device, by id.
pub fn devices(c: &Connection) -> Result<BTreeMap<String, DeviceRow>> {
    let mut stmt = c
        .prepare_cached("SELECT id, name, description, state, last_online FROM device ORDER BY id")
        .map_err(sql("prepare devices"))?;
    let rows = stmt
        .query_map([], |r| {
            Ok(DeviceRow {
                id: r.get(0)?,
                name: r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                description: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                state: r.get::<_, Option<String>>(3)?.unwrap_or_default(),
                last_online: r.get::<_, Option<String>>(4)?.unwrap_or_default(),
            })
        })
        .map_err(sql("list devices"))?;
    let mut out = BTreeMap::new();
    for row in rows {
        let row = row.map_err(sql("read device"))?;
        out.insert(row.id.clone(), row);
    }
    Ok(out)
}

/// One device.
pub fn device(c: &Connection, id: &str) -> Result<Option<DeviceRow>> {
    row(
        c,
        "SELECT name, description, state, last_online FROM device WHERE id = ?1",
        [id],
        |r| {
            Ok(DeviceRow {
                id: id.to_owned(),
                name: r.get::<_, Option<String>>(0)?.unwrap_or_default(),
                description: r.get::<_, Option<String>>(1)?.unwrap_or_default(),
                state: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                last_online: r.get::<_, Option<String>>(3)?.unwrap_or_default(),
            })
        },
    )
    .optional()
    .map_err(sql("read device"))
}

/// Inserts or replaces a device row.
pub fn put_device(c: &Connection, d: &DeviceRow) -> Result<()> {
    exec(
        c,
        "INSERT INTO device (id, name, description, state, last_online) VALUES (?1,?2,?3,?4,?5)
         ON CONFLICT(id) DO UPDATE SET name=?2, description=?3, state=?4, last_online=?5",
        params![d.id, d.name, d.description, d.state, d.last_online],
    )
    .map_err(sql("write device"))?;
    Ok(())
}

/// Removes a device and its twins.
pub fn remove_device(c: &Connection, id: &str) -> Result<()> {
    exec(c, "DELETE FROM device_twin WHERE deviceid = ?1", [id]).map_err(sql("delete twins"))?;
    exec(c, "DELETE FROM device WHERE id = ?1", [id]).map_err(sql("delete device"))?;
    Ok(())
}

/// The twins of a device, by property name.
pub fn twins(c: &Connection, id: &str) -> Result<BTreeMap<String, TwinRow>> {
    let mut stmt = c
        .prepare_cached(
            "SELECT name, expected, actual, expected_meta, actual_meta, expected_version,
                    actual_version, optional, attr_type
             FROM device_twin WHERE deviceid = ?1 ORDER BY name",
        )
        .map_err(sql("prepare twins"))?;
    let rows = stmt
        .query_map([id], |r| {
            let json = |i: usize| -> rusqlite::Result<Option<String>> { r.get(i) };
            Ok((
                r.get::<_, String>(0)?,
                TwinRow {
                    expected: r.get(1)?,
                    actual: r.get(2)?,
                    expected_meta: parse(json(3)?),
                    actual_meta: parse(json(4)?),
                    expected_version: parse(json(5)?).unwrap_or_default(),
                    actual_version: parse(json(6)?).unwrap_or_default(),
                    optional: r.get::<_, Option<bool>>(7)?.unwrap_or(false),
                    attr_type: r.get::<_, Option<String>>(8)?.unwrap_or_default(),
                },
            ))
        })
        .map_err(sql("list twins"))?;
    rows.collect::<rusqlite::Result<_>>()
        .map_err(sql("read twin"))
}

fn parse<T: serde::de::DeserializeOwned>(text: Option<String>) -> Option<T> {
    text.and_then(|t| serde_json::from_str(&t).ok())
}

fn text<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// Inserts or replaces one twin.
pub fn put_twin(c: &Connection, id: &str, name: &str, t: &TwinRow) -> Result<()> {
    exec(
        c,
        "INSERT INTO device_twin (deviceid, name, expected, actual, expected_meta, actual_meta,
             expected_version, actual_version, optional, attr_type, metadata)
         VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,'{}')
         ON CONFLICT(deviceid, name) DO UPDATE SET expected=?3, actual=?4, expected_meta=?5,
             actual_meta=?6, expected_version=?7, actual_version=?8, optional=?9, attr_type=?10",
        params![
            id,
            name,
            t.expected,
            t.actual,
            t.expected_meta.as_ref().map(text),
            t.actual_meta.as_ref().map(text),
            text(&t.expected_version),
            text(&t.actual_version),
            t.optional,
            t.attr_type,
        ],
    )
    .map_err(sql("write twin"))?;
    Ok(())
}

/// Removes one twin.
pub fn remove_twin(c: &Connection, id: &str, name: &str) -> Result<()> {
    exec(
        c,
        "DELETE FROM device_twin WHERE deviceid = ?1 AND name = ?2",
        [id, name],
    )
    .map_err(sql("delete twin"))?;
    Ok(())
}

/// Appends a report to the outbox.
pub fn push_report(c: &Connection, resource: &str, content: &str) -> Result<()> {
    exec(
        c,
        "INSERT INTO twin_outbox (resource, content) VALUES (?1, ?2)",
        [resource, content],
    )
    .map_err(sql("queue report"))?;
    Ok(())
}

/// Reports waiting. The outbox is a queue (reports are appended, and leave only from the
/// front, confirmed one at a time), so its length is the span of its sequence numbers: two
/// lookups at the ends of the index. `COUNT(*)` reads every row, on every mapper update,
/// and was the largest single cost of an edge whose outbox had grown to a few hundred
/// (were a report ever removed from the middle, the span would overstate the length,
/// erring towards the bound).
pub fn outbox_len(c: &Connection) -> Result<usize> {
    // Two subqueries: SQLite answers a lone min() or max() from the index, not both at once.
    let sql_text = "SELECT coalesce((SELECT max(seq) FROM twin_outbox) \
                    - (SELECT min(seq) FROM twin_outbox) + 1, 0)";
    row(c, sql_text, [], |r| r.get::<_, i64>(0))
        .map(|n| usize::try_from(n).unwrap_or(0))
        .map_err(sql("count reports"))
}

/// The oldest report waiting.
pub fn first_report(c: &Connection) -> Result<Option<Pending>> {
    row(
        c,
        "SELECT seq, resource, content FROM twin_outbox ORDER BY seq LIMIT 1",
        [],
        |r| {
            Ok(Pending {
                seq: r.get(0)?,
                resource: r.get(1)?,
                content: r.get(2)?,
            })
        },
    )
    .optional()
    .map_err(sql("read report"))
}

/// Removes a confirmed report.
pub fn remove_report(c: &Connection, seq: i64) -> Result<()> {
    exec(c, "DELETE FROM twin_outbox WHERE seq = ?1", [seq]).map_err(sql("remove report"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[test]
    fn rows_round_trip_and_the_outbox_keeps_order() {
        let store = TwinStore::open(MetaStore::open_in_memory().unwrap()).unwrap();
        let dev = DeviceRow {
            id: "default/thermo".into(),
            name: "thermo".into(),
            ..DeviceRow::default()
        };
        let twin = TwinRow {
            expected: Some("20".into()),
            actual: Some("18".into()),
            expected_meta: Some(ValueMetadata { timestamp: 7 }),
            expected_version: TwinVersion { cloud: 2, edge: 0 },
            attr_type: "int".into(),
            ..TwinRow::default()
        };
        store
            .write::<_, StoreError>(|tx| {
                put_device(tx, &dev)?;
                put_twin(tx, &dev.id, "temp", &twin)?;
                push_report(tx, "r1", "{}")?;
                push_report(tx, "r2", "{}")
            })
            .unwrap();
        let (devs, got) = store
            .read(|c| Ok((devices(c)?, twins(c, "default/thermo")?)))
            .unwrap();
        assert_eq!(devs["default/thermo"], dev);
        assert_eq!(got["temp"], twin);
        assert!(got["temp"].has_delta());
        let first = store.read(first_report).unwrap().unwrap();
        assert_eq!(first.resource, "r1");
        store
            .write::<_, StoreError>(|tx| remove_report(tx, first.seq))
            .unwrap();
        assert_eq!(store.read(first_report).unwrap().unwrap().resource, "r2");
        assert_eq!(store.read(outbox_len).unwrap(), 1);
        store
            .write::<_, StoreError>(|tx| remove_device(tx, &dev.id))
            .unwrap();
        assert!(store.read(|c| twins(c, &dev.id)).unwrap().is_empty());
    }

    /// Goal: the outbox length (read from the ends of its sequence) follows appends and
    /// confirmations, including an emptied outbox that fills again.
    /// Method: push three, confirm them in order, push two more.
    #[test]
    fn outbox_length_follows_the_queue() {
        let store = TwinStore::open(MetaStore::open_in_memory().unwrap()).unwrap();
        let len = || store.read(outbox_len).unwrap();
        let confirm = || {
            let first = store.read(first_report).unwrap().unwrap();
            store
                .write::<_, StoreError>(|tx| remove_report(tx, first.seq))
                .unwrap();
        };
        assert_eq!(len(), 0);
        for r in ["a", "b", "c"] {
            store
                .write::<_, StoreError>(|tx| push_report(tx, r, "{}"))
                .unwrap();
        }
        assert_eq!(len(), 3);
        confirm();
        assert_eq!(len(), 2);
        confirm();
        confirm();
        assert_eq!(len(), 0);
        store
            .write::<_, StoreError>(|tx| {
                push_report(tx, "d", "{}")?;
                push_report(tx, "e", "{}")
            })
            .unwrap();
        assert_eq!(len(), 2);
        assert_eq!(store.read(first_report).unwrap().unwrap().resource, "d");
    }
}
