//! The embedded SQLite backend of the [`Store`].
//!
//! Owns one database file, `iamd.sqlite3`, in the directory given to [`SqliteStore::open`]:
//! its connections, its PRAGMAs, its versioned schema (the migrations embedded from
//! `migrations/sqlite/`), the instance row seeded by the first open, and the mapping of
//! SQLite failures onto [`StoreError`]. It knows objects and events, never what a state
//! means: that is the `app` layer's business, and nothing here may branch on a kind.
//!
//! rusqlite is synchronous, so every call runs on tokio's blocking pool. Writes go one at a
//! time through a single connection, one `BEGIN IMMEDIATE` transaction per `append`, durable
//! (WAL, `synchronous=FULL`) before it is answered. Reads take one of a few read-only
//! connections, which WAL lets proceed while a write is in progress and which see every
//! transaction committed before they start.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, Row, Transaction, TransactionBehavior, params};
use serde_json::Value;
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::store::{
    Append, Change, Committed, Event, Expect, Instance, Micros, PageQuery, Store, StoreError, StoreResult, StoredObject,
};

/// The database file inside the store directory.
pub const DB_FILE: &str = "iamd.sqlite3";

/// The SQLite store. Cheap to share behind an `Arc`; all methods take `&self`.
pub struct SqliteStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").field("path", &self.inner.path).finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the store in `dir`, applies pending migrations and seeds the
    /// instance on first open. Blocks the calling thread: call it at startup, or from
    /// `spawn_blocking`.
    ///
    /// Fails with `Unavailable` when the directory or file cannot be opened, another process
    /// holds the write lock past the busy timeout, or the database was written by a newer
    /// binary.
    pub fn open(dir: &Path) -> StoreResult<SqliteStore> {
        let created_dir = !dir.exists();
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Unavailable(format!("cannot create store directory {}: {e}", dir.display())))?;
        let path = dir.join(DB_FILE);
        let at = |e: StoreError| with_context(e, &path);

        let mut writer = open_connection(&path, false).map_err(at)?;
        migrate(&mut writer).map_err(at)?;
        let instance = load_instance(&writer).map_err(at)?;
        sync_dir(dir, created_dir).map_err(at)?;

        let mut readers = Vec::new();
        for _ in 0..READERS {
            readers.push(open_connection(&path, true).map_err(at)?);
        }

        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path,
                instance,
                closed: AtomicBool::new(false),
                write_gate: Arc::new(Semaphore::new(1)),
                writer: Mutex::new(Some(writer)),
                read_permits: Arc::new(Semaphore::new(READERS as usize)),
                idle_readers: Mutex::new(readers),
            }),
        })
    }

    fn check_open(&self) -> StoreResult<()> {
        if self.inner.closed.load(Ordering::Acquire) { Err(closed()) } else { Ok(()) }
    }

    /// Runs `f` on a read connection on the blocking pool.
    async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        self.check_open()?;
        let inner = Arc::clone(&self.inner);
        // The permit moves into the closure: if the caller is dropped, the blocking task
        // still runs to the end and gives both the connection and the permit back.
        let permit = Arc::clone(&self.inner.read_permits).acquire_owned().await.map_err(|_| closed())?;
        blocking(move || {
            let conn = inner.take_reader()?;
            let result = f(&conn);
            inner.give_back_reader(conn);
            drop(permit);
            result
        })
        .await
    }

    /// Runs `f` on the write connection on the blocking pool.
    async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    {
        self.check_open()?;
        let inner = Arc::clone(&self.inner);
        let permit = Arc::clone(&self.inner.write_gate).acquire_owned().await.map_err(|_| closed())?;
        blocking(move || {
            let _permit = permit;
            let mut guard = lock(&inner.writer, "writer")?;
            let conn = guard.as_mut().ok_or_else(closed)?;
            // A transaction whose rollback failed would make every later BEGIN fail.
            if !conn.is_autocommit() {
                conn.execute_batch("ROLLBACK").map_err(db_err)?;
            }
            f(conn)
        })
        .await
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn instance(&self) -> StoreResult<Instance> {
        self.check_open()?;
        Ok(self.inner.instance.clone())
    }

    async fn append(&self, writes: Vec<Append>) -> StoreResult<Vec<Committed>> {
        if writes.is_empty() {
            self.check_open()?;
            return Ok(Vec::new());
        }
        self.write(move |conn| append_all(conn, &writes)).await
    }

    async fn get(&self, kind: &str, id: &str) -> StoreResult<Option<StoredObject>> {
        let (kind, id) = (kind.to_owned(), id.to_owned());
        self.read(move |conn| select_object(conn, &kind, &id)).await
    }

    async fn list(&self, kind: &str, parent: &str, page: &PageQuery) -> StoreResult<Vec<StoredObject>> {
        let (kind, parent, page) = (kind.to_owned(), parent.to_owned(), page.clone());
        self.read(move |conn| list_objects(conn, &kind, &parent, &page)).await
    }

    async fn events(&self, object: Option<(&str, &str)>, after: u64, limit: u32) -> StoreResult<Vec<Event>> {
        let object = object.map(|(kind, id)| (kind.to_owned(), id.to_owned()));
        self.read(move |conn| select_events(conn, object.as_ref(), after, limit)).await
    }

    async fn ping(&self) -> StoreResult<()> {
        self.read(|conn| {
            conn.query_row("SELECT 1", [], |row| row.get::<_, i64>(0)).map_err(db_err)?;
            Ok(())
        })
        .await
    }

    /// Waits for reads and the write in flight, then closes every connection. Closing a
    /// closed store succeeds and does nothing.
    async fn close(&self) -> StoreResult<()> {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        // Holding every permit means every read connection is back in the idle list.
        if let Ok(permits) = self.inner.read_permits.acquire_many(READERS).await {
            permits.forget();
        }
        self.inner.read_permits.close();
        // And for the writes queued before this call (the gate is first come, first served).
        if let Ok(permit) = self.inner.write_gate.acquire().await {
            permit.forget();
        }
        self.inner.write_gate.close();
        let inner = Arc::clone(&self.inner);
        blocking(move || inner.close_connections()).await
    }
}

// ---------------------------------------------------------------------------------------
// Connections

/// How long a connection waits for another one's lock (another process, or a checkpoint)
/// before the call fails with `Unavailable`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Read connections. Reads are the common case of an IAM service; a handful is enough
/// because each read is short and SQLite does the work on the calling thread.
const READERS: u32 = 4;

struct Inner {
    path: std::path::PathBuf,
    instance: Instance,
    closed: AtomicBool,
    /// One permit: queued writes wait here as parked tasks instead of each holding a
    /// blocking-pool thread on the mutex, which under a burst would starve the reads.
    write_gate: Arc<Semaphore>,
    /// `None` once closed. Uncontended behind the gate; a mutex still, so that a panic in a
    /// write shows up as poisoning.
    writer: Mutex<Option<Connection>>,
    /// One permit per read connection, so a waiting read parks a task rather than a
    /// blocking-pool thread.
    read_permits: Arc<Semaphore>,
    idle_readers: Mutex<Vec<Connection>>,
}

impl Inner {
    fn take_reader(&self) -> StoreResult<Connection> {
        let idle = lock(&self.idle_readers, "reader pool")?.pop();
        match idle {
            Some(conn) => Ok(conn),
            // Only after a read panicked and lost its connection: replace it.
            None => open_connection(&self.path, true),
        }
    }

    fn give_back_reader(&self, conn: Connection) {
        if let Ok(mut idle) = self.idle_readers.lock() {
            idle.push(conn);
        }
    }

    fn close_connections(&self) -> StoreResult<()> {
        let mut first_error = None;
        let readers = std::mem::take(&mut *lock(&self.idle_readers, "reader pool")?);
        for conn in readers {
            if let Err((_, e)) = conn.close() {
                first_error.get_or_insert(db_err(e));
            }
        }
        // Closed last: the last connection to close checkpoints the WAL into the database
        // file and removes it.
        let writer = lock(&self.writer, "writer")?.take();
        if let Some(conn) = writer
            && let Err((_, e)) = conn.close()
        {
            first_error.get_or_insert(db_err(e));
        }
        first_error.map_or(Ok(()), Err)
    }
}

// ---------------------------------------------------------------------------------------
// Writes

fn append_all(conn: &mut Connection, writes: &[Append]) -> StoreResult<Vec<Committed>> {
    // IMMEDIATE takes the write lock up front, so the reads below cannot be invalidated by
    // another writer (another process on the same file) before this transaction commits.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db_err)?;
    let now = next_timestamp(&tx)?;
    let mut committed = Vec::with_capacity(writes.len());
    for write in writes {
        // An error drops `tx`, which rolls back everything the batch wrote so far.
        committed.push(apply(&tx, write, now)?);
    }
    tx.commit().map_err(db_err)?;
    Ok(committed)
}

/// The time of the transaction's events: the wall clock, but never before the newest event
/// in the log, so created_at is monotonic in position even if the clock steps back (across
/// restarts too, since it is read from the log rather than kept in memory).
fn next_timestamp(tx: &Transaction<'_>) -> StoreResult<Micros> {
    let last: Option<Micros> = tx
        .query_row("SELECT created_at FROM events ORDER BY position DESC LIMIT 1", [], |row| row.get(0))
        .optional()
        .map_err(db_err)?;
    let wall = chrono::Utc::now().timestamp_micros();
    Ok(last.map_or(wall, |last| last.max(wall)))
}

fn apply(tx: &Transaction<'_>, write: &Append, now: Micros) -> StoreResult<Committed> {
    let current = select_object(tx, &write.kind, &write.id)?;
    let actual = current.as_ref().map(|object| object.sequence);
    let expected = match write.expect {
        Expect::Any => true,
        Expect::Absent => actual.is_none(),
        Expect::Sequence(n) => actual == Some(n),
    };
    // Deleting what is not there is a conflict too: the caller's view of the object is stale.
    let deletes_nothing = matches!(write.change, Change::Delete) && current.is_none();
    if !expected || deletes_nothing {
        return Err(StoreError::Conflict {
            kind: write.kind.clone(),
            id: write.id.clone(),
            expected: write.expect,
            actual,
        });
    }

    // INVARIANT: a row's sequence is its object's latest event's; both are written here, in
    // one transaction. Without a row, the object may have been deleted and its log continues.
    let previous = match actual {
        Some(sequence) => sequence,
        None => last_event_sequence(tx, &write.kind, &write.id)?,
    };
    let sequence = previous
        .checked_add(1)
        .ok_or_else(|| StoreError::Internal(format!("`{}` `{}` ran out of sequence numbers", write.kind, write.id)))?;
    let sequence_sql = to_sql_int(sequence)?;

    tx.execute(
        "INSERT INTO events (kind, object_id, sequence, event_type, payload, actor, owner, \
         created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            write.kind,
            write.id,
            sequence_sql,
            write.event_type,
            to_json(&write.payload)?,
            write.actor,
            write.owner,
            now,
        ],
    )
    .map_err(db_err)?;
    let position = u64::try_from(tx.last_insert_rowid())
        .map_err(|e| StoreError::Internal(format!("negative event position: {e}")))?;
    let event = Event {
        position,
        kind: write.kind.clone(),
        object_id: write.id.clone(),
        sequence,
        event_type: write.event_type.clone(),
        payload: write.payload.clone(),
        actor: write.actor.clone(),
        owner: write.owner.clone(),
        created_at: now,
    };

    let object = match (&write.change, current) {
        (Change::Put { owner, parent, name, state }, current) => {
            let created_at = current.as_ref().map_or(now, |object| object.created_at);
            tx.execute(
                "INSERT INTO objects (kind, id, owner, parent, name, state, sequence, created_at, \
                 updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
                 ON CONFLICT (kind, id) DO UPDATE SET owner = excluded.owner, \
                 parent = excluded.parent, name = excluded.name, state = excluded.state, \
                 sequence = excluded.sequence, updated_at = excluded.updated_at",
                params![write.kind, write.id, owner, parent, name, to_json(state)?, sequence_sql, created_at, now,],
            )
            .map_err(|e| match name {
                Some(name) if is_name_conflict(&e) => {
                    StoreError::NameTaken { kind: write.kind.clone(), name: name.clone() }
                }
                _ => db_err(e),
            })?;
            StoredObject {
                kind: write.kind.clone(),
                id: write.id.clone(),
                owner: owner.clone(),
                parent: parent.clone(),
                name: name.clone(),
                state: state.clone(),
                sequence,
                created_at,
                updated_at: now,
            }
        }
        (Change::Delete, Some(mut object)) => {
            tx.execute("DELETE FROM objects WHERE kind = ?1 AND id = ?2", params![write.kind, write.id])
                .map_err(db_err)?;
            object.sequence = sequence;
            object.updated_at = now;
            object
        }
        (Change::Delete, None) => {
            return Err(StoreError::Internal("delete of a missing object passed the check".into()));
        }
    };
    Ok(Committed { event, object })
}

fn last_event_sequence(tx: &Transaction<'_>, kind: &str, id: &str) -> StoreResult<u64> {
    tx.query_row(
        "SELECT sequence FROM events WHERE kind = ?1 AND object_id = ?2 \
         ORDER BY sequence DESC LIMIT 1",
        params![kind, id],
        |row| u64_column(row, 0),
    )
    .optional()
    .map(|sequence| sequence.unwrap_or(0))
    .map_err(db_err)
}

fn is_name_conflict(e: &rusqlite::Error) -> bool {
    // SQLite names the constrained columns in the message; `objects.name` appears only in
    // the objects_name index (the primary key is kind, id).
    matches!(
        e,
        rusqlite::Error::SqliteFailure(failure, Some(message))
            if failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                && message.contains("objects.name")
    )
}

// ---------------------------------------------------------------------------------------
// Reads

const OBJECT_COLUMNS: &str = "kind, id, owner, parent, name, state, sequence, created_at, updated_at";
const EVENT_COLUMNS: &str = "position, kind, object_id, sequence, event_type, payload, actor, owner, created_at";

fn select_object(conn: &Connection, kind: &str, id: &str) -> StoreResult<Option<StoredObject>> {
    conn.query_row(
        &format!("SELECT {OBJECT_COLUMNS} FROM objects WHERE kind = ?1 AND id = ?2"),
        params![kind, id],
        object_from_row,
    )
    .optional()
    .map_err(db_err)
}

fn list_objects(conn: &Connection, kind: &str, parent: &str, page: &PageQuery) -> StoreResult<Vec<StoredObject>> {
    let (cmp, order) = if page.reverse { ("<", "DESC") } else { (">", "ASC") };
    let limit = i64::from(page.limit);
    // Row-value comparison keeps the keyset a range scan on objects_list.
    let mut sql = format!("SELECT {OBJECT_COLUMNS} FROM objects WHERE kind = ?1 AND parent = ?2");
    if page.after.is_some() {
        sql.push_str(&format!(" AND (created_at, id) {cmp} (?4, ?5)"));
    }
    sql.push_str(&format!(" ORDER BY created_at {order}, id {order} LIMIT ?3"));
    let mut stmt = conn.prepare(&sql).map_err(db_err)?;
    let rows = match &page.after {
        Some((created_at, id)) => stmt.query_map(params![kind, parent, limit, created_at, id], object_from_row),
        None => stmt.query_map(params![kind, parent, limit], object_from_row),
    }
    .map_err(db_err)?;
    rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db_err)
}

fn select_events(
    conn: &Connection,
    object: Option<&(String, String)>,
    after: u64,
    limit: u32,
) -> StoreResult<Vec<Event>> {
    // Past the largest position SQLite can hold there is nothing to return.
    let after = i64::try_from(after).unwrap_or(i64::MAX);
    let limit = i64::from(limit);
    match object {
        Some((kind, id)) => {
            // An object's sequence grows with position (both are assigned under the write
            // lock), so sequence order is position order and the (kind, object_id, sequence)
            // index serves it without a sort.
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT {EVENT_COLUMNS} FROM events WHERE kind = ?1 AND object_id = ?2 \
                     AND position > ?3 ORDER BY sequence LIMIT ?4"
                ))
                .map_err(db_err)?;
            let rows = stmt.query_map(params![kind, id, after, limit], event_from_row).map_err(db_err)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db_err)
        }
        None => {
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT {EVENT_COLUMNS} FROM events WHERE position > ?1 \
                     ORDER BY position LIMIT ?2"
                ))
                .map_err(db_err)?;
            let rows = stmt.query_map(params![after, limit], event_from_row).map_err(db_err)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db_err)
        }
    }
}

fn object_from_row(row: &Row<'_>) -> rusqlite::Result<StoredObject> {
    Ok(StoredObject {
        kind: row.get(0)?,
        id: row.get(1)?,
        owner: row.get(2)?,
        parent: row.get(3)?,
        name: row.get(4)?,
        state: json_column(row, 5)?,
        sequence: u64_column(row, 6)?,
        created_at: row.get(7)?,
        updated_at: row.get(8)?,
    })
}

fn event_from_row(row: &Row<'_>) -> rusqlite::Result<Event> {
    Ok(Event {
        position: u64_column(row, 0)?,
        kind: row.get(1)?,
        object_id: row.get(2)?,
        sequence: u64_column(row, 3)?,
        event_type: row.get(4)?,
        payload: json_column(row, 5)?,
        actor: row.get(6)?,
        owner: row.get(7)?,
        created_at: row.get(8)?,
    })
}

fn json_column(row: &Row<'_>, idx: usize) -> rusqlite::Result<Value> {
    let text = row.get_ref(idx)?.as_str()?;
    serde_json::from_str(text)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, Box::new(e)))
}

/// rusqlite reads u64 only with a feature this crate does not enable; positions and
/// sequences are never negative, so a negative value means a corrupt row.
fn u64_column(row: &Row<'_>, idx: usize) -> rusqlite::Result<u64> {
    let value: i64 = row.get(idx)?;
    u64::try_from(value)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Integer, Box::new(e)))
}

fn to_json(value: &Value) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Internal(format!("encoding JSON: {e}")))
}

fn to_sql_int(value: u64) -> StoreResult<i64> {
    i64::try_from(value).map_err(|_| StoreError::Internal(format!("{value} exceeds SQLite's range")))
}

// ---------------------------------------------------------------------------------------
// Opening and schema

struct Migration {
    version: i64,
    name: &'static str,
    sql: &'static str,
}

/// Every schema this binary knows, in version order. Never edit an applied migration; add
/// the next one.
const MIGRATIONS: &[Migration] =
    &[Migration { version: 1, name: "initial", sql: include_str!("migrations/sqlite/0001_initial.sql") }];

/// The migration whose transaction also seeds the instance row.
const INSTANCE_MIGRATION: i64 = 1;

fn open_connection(path: &Path, read_only: bool) -> StoreResult<Connection> {
    // NO_MUTEX: each connection is used by one thread at a time, guarded by our own locks.
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = Connection::open_with_flags(path, flags).map_err(db_err)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(db_err)?;
    if !read_only {
        // WAL is a property of the file and sticks once set; readers inherit it.
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0)).map_err(db_err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Unavailable(format!(
                "cannot switch the database to WAL mode (it stays in `{mode}` mode)"
            )));
        }
    }
    // FULL makes every commit fsync the WAL, so an answered write survives power loss; the
    // default in WAL mode (NORMAL) can lose the last commits.
    conn.pragma_update(None, "synchronous", "FULL").map_err(db_err)?;
    conn.pragma_update(None, "foreign_keys", "ON").map_err(db_err)?;
    Ok(conn)
}

/// Applies pending migrations, one transaction each, and refuses a schema newer than this
/// binary's. The version check is repeated inside each transaction, so two processes opening
/// the same new file do not both apply a migration.
fn migrate(conn: &mut Connection) -> StoreResult<()> {
    let known = MIGRATIONS.last().map_or(0, |m| m.version);
    loop {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db_err)?;
        tx.execute_batch(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version    INTEGER PRIMARY KEY,
                 name       TEXT    NOT NULL,
                 applied_at INTEGER NOT NULL
             ) STRICT",
        )
        .map_err(db_err)?;
        let current: i64 = tx
            .query_row("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", [], |row| row.get(0))
            .map_err(db_err)?;
        if current > known {
            return Err(StoreError::Unavailable(format!(
                "database schema version {current} is newer than this binary knows (up to \
                 {known}); run a newer iamd or restore a backup made for this version"
            )));
        }
        let Some(migration) = MIGRATIONS.iter().find(|m| m.version > current) else {
            tx.commit().map_err(db_err)?;
            return Ok(());
        };
        let now = chrono::Utc::now().timestamp_micros();
        tx.execute_batch(migration.sql).map_err(|e| {
            StoreError::Internal(format!("migration {} ({}) failed: {e}", migration.version, migration.name))
        })?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
            params![migration.version, migration.name, now],
        )
        .map_err(db_err)?;
        if migration.version == INSTANCE_MIGRATION {
            seed_instance(&tx, now)?;
        }
        tx.commit().map_err(db_err)?;
        tracing::info!(version = migration.version, name = migration.name, "applied store migration");
    }
}

fn seed_instance(tx: &Transaction<'_>, now: Micros) -> StoreResult<()> {
    let id = Uuid::new_v4().to_string();
    // Two v4 UUIDs from the OS generator: 244 random bits (6 bits of each are fixed by the
    // UUID version and variant), plenty for an HMAC key, without another crate.
    let mut signing_key = Vec::with_capacity(32);
    signing_key.extend_from_slice(Uuid::new_v4().as_bytes());
    signing_key.extend_from_slice(Uuid::new_v4().as_bytes());
    tx.execute(
        "INSERT INTO instance (singleton, id, signing_key, created_at) VALUES (1, ?1, ?2, ?3)",
        params![id, signing_key, now],
    )
    .map_err(db_err)?;
    tracing::info!(instance = %id, "created store instance");
    Ok(())
}

fn load_instance(conn: &Connection) -> StoreResult<Instance> {
    conn.query_row("SELECT id, signing_key FROM instance WHERE singleton = 1", [], |row| {
        Ok(Instance { id: row.get(0)?, signing_key: row.get(1)? })
    })
    .optional()
    .map_err(db_err)?
    .ok_or_else(|| StoreError::Internal("the instance row is missing".into()))
}

/// Makes the new file's directory entry (and a new directory's) durable, which SQLite does
/// for its journals but not for the database file itself.
fn sync_dir(dir: &Path, created: bool) -> StoreResult<()> {
    let sync = |d: &Path| {
        std::fs::File::open(d)
            .and_then(|f| f.sync_all())
            .map_err(|e| StoreError::Unavailable(format!("cannot sync directory {}: {e}", d.display())))
    };
    sync(dir)?;
    if created && let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        sync(parent)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Plumbing

async fn blocking<T, F>(f: F) -> StoreResult<T>
where
    T: Send + 'static,
    F: FnOnce() -> StoreResult<T> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => Err(StoreError::Internal("a store task panicked".into())),
        Err(_) => Err(StoreError::Unavailable("the runtime is shutting down".into())),
    }
}

fn lock<'a, T>(mutex: &'a Mutex<T>, what: &str) -> StoreResult<MutexGuard<'a, T>> {
    mutex.lock().map_err(|_| StoreError::Internal(format!("the store {what} lock was poisoned by an earlier panic")))
}

fn closed() -> StoreError {
    StoreError::Unavailable("the store is closed".into())
}

fn db_err(e: rusqlite::Error) -> StoreError {
    let unavailable = matches!(
        e.sqlite_error_code(),
        Some(
            ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::CannotOpen
                | ErrorCode::NotADatabase
                | ErrorCode::PermissionDenied
                | ErrorCode::ReadOnly
                | ErrorCode::DiskFull
                | ErrorCode::SystemIoFailure
        )
    );
    if unavailable { StoreError::Unavailable(e.to_string()) } else { StoreError::Internal(e.to_string()) }
}

fn with_context(e: StoreError, path: &Path) -> StoreError {
    match e {
        StoreError::Unavailable(m) => StoreError::Unavailable(format!("{}: {m}", path.display())),
        StoreError::Internal(m) => StoreError::Internal(format!("{}: {m}", path.display())),
        other => other,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing, reason = "a failing test panics")]
mod tests {
    use super::*;
    use serde_json::json;

    fn put(kind: &str, id: &str, expect: Expect, parent: &str, name: Option<&str>, state: Value) -> Append {
        Append {
            kind: kind.into(),
            id: id.into(),
            expect,
            event_type: format!("{kind}.put"),
            payload: json!({ "put": id }),
            actor: "user:local:admin".into(),
            owner: "org-1".into(),
            change: Change::Put { owner: "org-1".into(), parent: parent.into(), name: name.map(str::to_owned), state },
        }
    }

    fn create(kind: &str, id: &str, parent: &str, name: Option<&str>) -> Append {
        put(kind, id, Expect::Absent, parent, name, json!({ "id": id }))
    }

    fn delete(kind: &str, id: &str, expect: Expect) -> Append {
        Append {
            kind: kind.into(),
            id: id.into(),
            expect,
            event_type: format!("{kind}.removed"),
            payload: json!({}),
            actor: "system".into(),
            owner: "org-1".into(),
            change: Change::Delete,
        }
    }

    async fn event_count(store: &SqliteStore) -> usize {
        store.events(None, 0, u32::MAX).await.unwrap().len()
    }

    fn open(dir: &Path) -> SqliteStore {
        SqliteStore::open(dir).unwrap()
    }

    #[tokio::test]
    async fn append_then_get_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let state = json!({ "display": "Alice", "tags": [1, 2.5, null, true], "nested": { "a": "b" } });
        let committed =
            store.append(vec![put("user", "u1", Expect::Absent, "org-1", Some("alice"), state.clone())]).await.unwrap();
        assert_eq!(committed.len(), 1);
        let c = &committed[0];
        assert_eq!(c.event.position, 1);
        assert_eq!(c.event.kind, "user");
        assert_eq!(c.event.object_id, "u1");
        assert_eq!(c.event.sequence, 1);
        assert_eq!(c.event.event_type, "user.put");
        assert_eq!(c.event.payload, json!({ "put": "u1" }));
        assert_eq!(c.event.actor, "user:local:admin");
        assert_eq!(c.event.owner, "org-1");
        let expected = StoredObject {
            kind: "user".into(),
            id: "u1".into(),
            owner: "org-1".into(),
            parent: "org-1".into(),
            name: Some("alice".into()),
            state,
            sequence: 1,
            created_at: c.event.created_at,
            updated_at: c.event.created_at,
        };
        assert_eq!(c.object, expected);
        assert_eq!(store.get("user", "u1").await.unwrap(), Some(expected));
        assert_eq!(store.get("user", "u2").await.unwrap(), None);
        assert_eq!(store.get("group", "u1").await.unwrap(), None);
        assert_eq!(store.events(None, 0, 10).await.unwrap(), vec![c.event.clone()]);
        store.ping().await.unwrap();
    }

    #[tokio::test]
    async fn sequence_increments_and_continues_after_delete() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let first = store.append(vec![create("user", "u1", "", Some("a"))]).await.unwrap();
        let second =
            store.append(vec![put("user", "u1", Expect::Sequence(1), "", Some("b"), json!({ "v": 2 }))]).await.unwrap();
        assert_eq!(second[0].event.sequence, 2);
        assert_eq!(second[0].object.sequence, 2);
        // A replace keeps created_at and moves updated_at.
        assert_eq!(second[0].object.created_at, first[0].object.created_at);
        assert_eq!(second[0].object.updated_at, second[0].event.created_at);

        let deleted = store.append(vec![delete("user", "u1", Expect::Sequence(2))]).await.unwrap();
        assert_eq!(deleted[0].event.sequence, 3);
        assert_eq!(deleted[0].event.event_type, "user.removed");
        // The state just before the delete, stamped with the delete event.
        assert_eq!(deleted[0].object.state, json!({ "v": 2 }));
        assert_eq!(deleted[0].object.name.as_deref(), Some("b"));
        assert_eq!(deleted[0].object.sequence, 3);
        assert_eq!(deleted[0].object.created_at, first[0].object.created_at);
        assert_eq!(deleted[0].object.updated_at, deleted[0].event.created_at);
        assert_eq!(store.get("user", "u1").await.unwrap(), None);

        let again = store.append(vec![create("user", "u1", "", Some("a"))]).await.unwrap();
        assert_eq!(again[0].event.sequence, 4);
        assert_eq!(again[0].object.sequence, 4);
        assert_eq!(again[0].object.created_at, again[0].event.created_at);
        assert!(again[0].object.created_at >= deleted[0].event.created_at);

        let log = store.events(Some(("user", "u1")), 0, 100).await.unwrap();
        let seqs: Vec<u64> = log.iter().map(|e| e.sequence).collect();
        let positions: Vec<u64> = log.iter().map(|e| e.position).collect();
        assert_eq!(seqs, vec![1, 2, 3, 4]);
        assert_eq!(positions, vec![1, 2, 3, 4]);
        // Another object starts its own sequence at 1.
        let other = store.append(vec![create("user", "u2", "", None)]).await.unwrap();
        assert_eq!((other[0].event.sequence, other[0].event.position), (1, 5));
    }

    #[tokio::test]
    async fn absent_on_existing_object_conflicts_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let before = store.append(vec![create("org", "o1", "", Some("acme"))]).await.unwrap();
        let err = store
            .append(vec![put("org", "o1", Expect::Absent, "", Some("acme"), json!({ "v": 9 }))])
            .await
            .unwrap_err();
        match err {
            StoreError::Conflict { kind, id, expected, actual } => {
                assert_eq!((kind.as_str(), id.as_str()), ("org", "o1"));
                assert_eq!(expected, Expect::Absent);
                assert_eq!(actual, Some(1));
            }
            other => panic!("expected a conflict, got {other:?}"),
        }
        assert_eq!(event_count(&store).await, 1);
        assert_eq!(store.get("org", "o1").await.unwrap(), Some(before[0].object.clone()));
    }

    #[tokio::test]
    async fn stale_or_missing_sequence_conflicts() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        store.append(vec![create("org", "o1", "", None)]).await.unwrap();
        store.append(vec![put("org", "o1", Expect::Sequence(1), "", None, json!(2))]).await.unwrap();

        let stale = store.append(vec![put("org", "o1", Expect::Sequence(1), "", None, json!(3))]).await.unwrap_err();
        assert!(
            matches!(stale, StoreError::Conflict { expected: Expect::Sequence(1), actual: Some(2), .. }),
            "{stale:?}"
        );
        let missing =
            store.append(vec![put("org", "nope", Expect::Sequence(1), "", None, json!(1))]).await.unwrap_err();
        assert!(
            matches!(missing, StoreError::Conflict { expected: Expect::Sequence(1), actual: None, .. }),
            "{missing:?}"
        );
        let stale_delete = store.append(vec![delete("org", "o1", Expect::Sequence(7))]).await.unwrap_err();
        assert!(matches!(stale_delete, StoreError::Conflict { actual: Some(2), .. }), "{stale_delete:?}");
        // Deleting what is not there conflicts even without an expectation.
        let delete_missing = store.append(vec![delete("org", "nope", Expect::Any)]).await.unwrap_err();
        assert!(
            matches!(delete_missing, StoreError::Conflict { expected: Expect::Any, actual: None, .. }),
            "{delete_missing:?}"
        );
        assert_eq!(event_count(&store).await, 2);
        assert_eq!(store.get("org", "o1").await.unwrap().unwrap().state, json!(2));
        // Any replaces whatever is there.
        let any = store.append(vec![put("org", "o1", Expect::Any, "", None, json!(4))]).await.unwrap();
        assert_eq!(any[0].object.sequence, 3);
    }

    #[tokio::test]
    async fn failing_write_in_a_batch_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        store.append(vec![create("user", "existing", "org-1", Some("taken"))]).await.unwrap();

        // The second write's expectation fails.
        let err = store
            .append(vec![create("user", "new", "org-1", Some("fresh")), create("user", "existing", "org-1", None)])
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict { actual: Some(1), .. }), "{err:?}");
        assert_eq!(store.get("user", "new").await.unwrap(), None);
        assert_eq!(event_count(&store).await, 1);

        // The second write's name is taken.
        let err = store
            .append(vec![
                create("user", "new", "org-1", Some("fresh")),
                create("user", "other", "org-1", Some("taken")),
            ])
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::NameTaken { .. }), "{err:?}");
        assert_eq!(store.get("user", "new").await.unwrap(), None);
        assert_eq!(store.get("user", "other").await.unwrap(), None);
        assert_eq!(event_count(&store).await, 1);

        // The failed batches consumed no positions or sequences.
        let ok = store.append(vec![create("user", "new", "org-1", Some("fresh"))]).await.unwrap();
        assert_eq!((ok[0].event.position, ok[0].event.sequence), (2, 1));
    }

    #[tokio::test]
    async fn later_writes_in_a_batch_see_earlier_ones() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let committed = store
            .append(vec![
                create("group", "g1", "", Some("admins")),
                put("group", "g1", Expect::Sequence(1), "", Some("owners"), json!({ "v": 2 })),
                // The name freed by the rename is available to another object in the batch.
                create("group", "g2", "", Some("admins")),
                delete("group", "g1", Expect::Sequence(2)),
                create("group", "g1", "", Some("owners")),
            ])
            .await
            .unwrap();
        let summary: Vec<(&str, u64, u64)> =
            committed.iter().map(|c| (c.event.object_id.as_str(), c.event.sequence, c.event.position)).collect();
        assert_eq!(summary, vec![("g1", 1, 1), ("g1", 2, 2), ("g2", 1, 3), ("g1", 3, 4), ("g1", 4, 5)]);
        // One transaction, one timestamp.
        assert!(committed.iter().all(|c| c.event.created_at == committed[0].event.created_at));
        assert_eq!(committed[3].object.state, json!({ "v": 2 }));
        let g1 = store.get("group", "g1").await.unwrap().unwrap();
        assert_eq!((g1.sequence, g1.name.as_deref()), (4, Some("owners")));
        let g2 = store.get("group", "g2").await.unwrap().unwrap();
        assert_eq!((g2.sequence, g2.name.as_deref()), (1, Some("admins")));
    }

    #[tokio::test]
    async fn names_are_unique_per_kind_and_parent() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        store.append(vec![create("user", "u1", "org-1", Some("alice"))]).await.unwrap();

        let err = store.append(vec![create("user", "u2", "org-1", Some("alice"))]).await.unwrap_err();
        match err {
            StoreError::NameTaken { kind, name } => {
                assert_eq!((kind.as_str(), name.as_str()), ("user", "alice"))
            }
            other => panic!("expected NameTaken, got {other:?}"),
        }
        assert_eq!(event_count(&store).await, 1);
        // A replace of another object onto the taken name fails the same way.
        store.append(vec![create("user", "u3", "org-1", Some("carol"))]).await.unwrap();
        let err =
            store.append(vec![put("user", "u3", Expect::Any, "org-1", Some("alice"), json!({}))]).await.unwrap_err();
        assert!(matches!(err, StoreError::NameTaken { .. }), "{err:?}");
        assert_eq!(store.get("user", "u3").await.unwrap().unwrap().name.as_deref(), Some("carol"));

        // Same name under another parent or of another kind is fine, and so are many unnamed.
        store.append(vec![create("user", "u4", "org-2", Some("alice"))]).await.unwrap();
        store.append(vec![create("group", "g1", "org-1", Some("alice"))]).await.unwrap();
        store.append(vec![create("user", "u5", "org-1", None), create("user", "u6", "org-1", None)]).await.unwrap();
        // Re-putting an object with its own name is not a collision.
        store
            .append(vec![put("user", "u1", Expect::Sequence(1), "org-1", Some("alice"), json!({ "v": 2 }))])
            .await
            .unwrap();
        // A deleted object frees its name.
        store.append(vec![delete("user", "u1", Expect::Any)]).await.unwrap();
        let reused = store.append(vec![create("user", "u2", "org-1", Some("alice"))]).await.unwrap();
        assert_eq!(reused[0].object.name.as_deref(), Some("alice"));
    }

    async fn page_through(store: &SqliteStore, reverse: bool, limit: u32) -> Vec<Vec<String>> {
        let mut pages = Vec::new();
        let mut after = None;
        loop {
            let page = store.list("user", "org-1", &PageQuery { after: after.clone(), reverse, limit }).await.unwrap();
            if page.is_empty() {
                return pages;
            }
            let last = page.last().unwrap();
            after = Some((last.created_at, last.id.clone()));
            pages.push(page.into_iter().map(|o| o.id).collect());
        }
    }

    #[tokio::test]
    async fn list_pages_by_created_at_then_id() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        // One batch gives its objects one created_at: the tie is broken by id.
        let first = store
            .append(vec![
                create("user", "m", "org-1", None),
                create("user", "k", "org-1", None),
                create("user", "l", "org-1", None),
            ])
            .await
            .unwrap();
        assert!(first.iter().all(|c| c.object.created_at == first[0].object.created_at));
        tokio::time::sleep(Duration::from_millis(3)).await;
        store.append(vec![create("user", "b", "org-1", None), create("user", "a", "org-1", None)]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(3)).await;
        store.append(vec![create("user", "f", "org-1", None)]).await.unwrap();
        // Not listed: another parent, another kind.
        store.append(vec![create("user", "c", "org-2", None), create("group", "d", "org-1", None)]).await.unwrap();
        // A replace does not move an object in the order.
        tokio::time::sleep(Duration::from_millis(3)).await;
        store.append(vec![put("user", "k", Expect::Sequence(1), "org-1", None, json!({ "v": 2 }))]).await.unwrap();

        let ascending = ["k", "l", "m", "a", "b", "f"];
        assert_eq!(page_through(&store, false, 2).await, vec![vec!["k", "l"], vec!["m", "a"], vec!["b", "f"]]);
        assert_eq!(page_through(&store, false, 4).await, vec![vec!["k", "l", "m", "a"], vec!["b", "f"]]);
        assert_eq!(page_through(&store, false, 100).await, vec![ascending.to_vec()]);
        assert_eq!(page_through(&store, true, 4).await, vec![vec!["f", "b", "a", "m"], vec!["l", "k"]]);
        assert_eq!(page_through(&store, true, 1).await.concat(), ["f", "b", "a", "m", "l", "k"]);

        // `after` is exclusive, also inside a group of equal created_at.
        let l = store.get("user", "l").await.unwrap().unwrap();
        let after_l = PageQuery { after: Some((l.created_at, "l".into())), reverse: false, limit: 10 };
        let ids: Vec<String> = store.list("user", "org-1", &after_l).await.unwrap().into_iter().map(|o| o.id).collect();
        assert_eq!(ids, ["m", "a", "b", "f"]);
        let before_l = PageQuery { after: Some((l.created_at, "l".into())), reverse: true, limit: 10 };
        let ids: Vec<String> =
            store.list("user", "org-1", &before_l).await.unwrap().into_iter().map(|o| o.id).collect();
        assert_eq!(ids, ["k"]);
        let none = PageQuery { after: None, reverse: false, limit: 0 };
        assert!(store.list("user", "org-1", &none).await.unwrap().is_empty());
        assert!(
            store
                .list("user", "org-9", &PageQuery { after: None, reverse: false, limit: 10 })
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn events_filter_by_object_and_position() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        store.append(vec![create("user", "a", "", None)]).await.unwrap();
        store.append(vec![create("user", "b", "", None)]).await.unwrap();
        store.append(vec![put("user", "a", Expect::Sequence(1), "", None, json!(2))]).await.unwrap();
        store.append(vec![create("group", "a", "", None)]).await.unwrap();
        store.append(vec![delete("user", "a", Expect::Sequence(2))]).await.unwrap();

        let all = store.events(None, 0, 100).await.unwrap();
        let summary: Vec<(u64, &str, &str, u64)> =
            all.iter().map(|e| (e.position, e.kind.as_str(), e.object_id.as_str(), e.sequence)).collect();
        assert_eq!(
            summary,
            vec![
                (1, "user", "a", 1),
                (2, "user", "b", 1),
                (3, "user", "a", 2),
                (4, "group", "a", 1),
                (5, "user", "a", 3)
            ]
        );
        assert!(all.windows(2).all(|w| w[0].created_at <= w[1].created_at));

        let positions = |events: Vec<Event>| events.into_iter().map(|e| e.position).collect::<Vec<_>>();
        assert_eq!(positions(store.events(None, 2, 2).await.unwrap()), vec![3, 4]);
        assert_eq!(positions(store.events(None, 5, 10).await.unwrap()), Vec::<u64>::new());
        assert_eq!(positions(store.events(None, u64::MAX, 10).await.unwrap()), Vec::<u64>::new());
        assert_eq!(positions(store.events(Some(("user", "a")), 0, 10).await.unwrap()), vec![1, 3, 5]);
        assert_eq!(positions(store.events(Some(("user", "a")), 1, 10).await.unwrap()), vec![3, 5]);
        assert_eq!(positions(store.events(Some(("user", "a")), 0, 2).await.unwrap()), vec![1, 3]);
        assert_eq!(positions(store.events(Some(("user", "a")), 3, 1).await.unwrap()), vec![5]);
        assert_eq!(positions(store.events(Some(("group", "a")), 0, 10).await.unwrap()), vec![4]);
        assert_eq!(positions(store.events(Some(("user", "zzz")), 0, 10).await.unwrap()), Vec::<u64>::new());
        assert_eq!(positions(store.events(None, 0, 0).await.unwrap()), Vec::<u64>::new());
    }

    #[tokio::test]
    async fn instance_is_stable_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let first = store.instance().await.unwrap();
        let parsed = Uuid::parse_str(&first.id).unwrap();
        assert_eq!(parsed.get_version_num(), 4);
        assert_eq!(first.signing_key.len(), 32);
        assert_ne!(first.signing_key[..16], first.signing_key[16..]);
        store.close().await.unwrap();

        let reopened = open(dir.path());
        assert_eq!(reopened.instance().await.unwrap(), first);
        reopened.close().await.unwrap();

        let other_dir = tempfile::tempdir().unwrap();
        let other = open(other_dir.path());
        let other_instance = other.instance().await.unwrap();
        assert_ne!(other_instance.id, first.id);
        assert_ne!(other_instance.signing_key, first.signing_key);
    }

    #[tokio::test]
    async fn instance_row_and_events_cannot_change() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let instance = store.instance().await.unwrap();
        store.append(vec![create("org", "o1", "", None)]).await.unwrap();
        store.close().await.unwrap();
        let raw = Connection::open(dir.path().join(DB_FILE)).unwrap();
        let refused = |sql: &str| match raw.execute(sql, []) {
            Err(e) => e.to_string(),
            Ok(n) => panic!("`{sql}` changed {n} rows"),
        };
        assert_eq!(refused("UPDATE instance SET id = 'x'"), "the instance row is immutable");
        assert_eq!(refused("DELETE FROM instance"), "the instance row is immutable");
        assert!(refused("INSERT INTO instance VALUES (2, 'x', x'00', 0)").contains("CHECK"));
        assert_eq!(refused("UPDATE events SET actor = 'x'"), "events are append-only");
        assert_eq!(refused("DELETE FROM events"), "events are append-only");
        drop(raw);
        let store = open(dir.path());
        assert_eq!(store.instance().await.unwrap(), instance);
        assert_eq!(event_count(&store).await, 1);
    }

    #[tokio::test]
    async fn data_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a").join("b");
        let store = open(&nested);
        let written =
            store.append(vec![create("org", "o1", "", Some("acme")), create("org", "o2", "", None)]).await.unwrap();
        store.append(vec![delete("org", "o2", Expect::Sequence(1))]).await.unwrap();
        let events = store.events(None, 0, 100).await.unwrap();
        store.close().await.unwrap();
        assert!(nested.join(DB_FILE).exists());

        let store = open(&nested);
        assert_eq!(store.get("org", "o1").await.unwrap(), Some(written[0].object.clone()));
        assert_eq!(store.get("org", "o2").await.unwrap(), None);
        assert_eq!(store.events(None, 0, 100).await.unwrap(), events);
        // Positions and sequences continue; the clock does not go back.
        let next = store.append(vec![create("org", "o2", "", None)]).await.unwrap();
        assert_eq!((next[0].event.position, next[0].event.sequence), (4, 3));
        assert!(next[0].event.created_at >= events[2].created_at);

        let raw = Connection::open(nested.join(DB_FILE)).unwrap();
        let versions: Vec<i64> = raw
            .prepare("SELECT version FROM schema_migrations ORDER BY version")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(versions, vec![1]);
        let mode: String = raw.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal");
    }

    #[tokio::test]
    async fn newer_schema_refuses_to_open() {
        let dir = tempfile::tempdir().unwrap();
        open(dir.path()).close().await.unwrap();
        let raw = Connection::open(dir.path().join(DB_FILE)).unwrap();
        raw.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'future', 0)", []).unwrap();
        drop(raw);

        match SqliteStore::open(dir.path()) {
            Err(StoreError::Unavailable(message)) => {
                assert!(message.contains("schema version 999 is newer"), "{message}");
                assert!(message.contains("up to 1"), "{message}");
            }
            other => panic!("expected Unavailable, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_file_that_is_not_a_database_is_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(DB_FILE), vec![b'x'; 4096]).unwrap();
        let err = SqliteStore::open(dir.path()).unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(ref m) if m.contains(DB_FILE)), "{err:?}");
    }

    #[tokio::test]
    async fn closed_store_is_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        store.append(vec![create("org", "o1", "", None)]).await.unwrap();
        store.close().await.unwrap();
        let unavailable = |r: StoreError| matches!(r, StoreError::Unavailable(ref m) if m.contains("closed"));
        assert!(unavailable(store.get("org", "o1").await.unwrap_err()));
        assert!(unavailable(store.append(vec![create("org", "o2", "", None)]).await.unwrap_err()));
        assert!(unavailable(store.append(vec![]).await.unwrap_err()));
        assert!(unavailable(store.ping().await.unwrap_err()));
        assert!(unavailable(store.instance().await.unwrap_err()));
        assert!(unavailable(store.events(None, 0, 1).await.unwrap_err()));
        assert!(unavailable(
            store.list("org", "", &PageQuery { after: None, reverse: false, limit: 1 }).await.unwrap_err()
        ));
        store.close().await.unwrap();
        // Closing folded the WAL back into the database file.
        assert!(!dir.path().join(format!("{DB_FILE}-wal")).exists());
    }

    #[tokio::test]
    async fn reads_proceed_while_another_writer_holds_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        store.append(vec![create("org", "o1", "", None)]).await.unwrap();
        let mut other = Connection::open(dir.path().join(DB_FILE)).unwrap();
        let tx = other.transaction_with_behavior(TransactionBehavior::Immediate).unwrap();
        tx.execute("INSERT INTO objects (kind, id, owner, parent, name, state, sequence, created_at, updated_at) VALUES ('org', 'o2', '', '', NULL, '{}', 1, 0, 0)", []).unwrap();
        // WAL: the read neither waits for the lock nor sees the uncommitted row.
        let started = std::time::Instant::now();
        assert_eq!(store.get("org", "o1").await.unwrap().unwrap().sequence, 1);
        assert_eq!(store.get("org", "o2").await.unwrap(), None);
        store.ping().await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(1));
        tx.rollback().unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_appends_all_land() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(open(dir.path()));
        let mut tasks = Vec::new();
        for t in 0..50 {
            let store = Arc::clone(&store);
            tasks.push(tokio::spawn(async move {
                let id = format!("obj-{t}");
                let mut positions = Vec::new();
                for n in 0..10u64 {
                    let expect = if n == 0 { Expect::Absent } else { Expect::Sequence(n) };
                    let name = format!("name-{t}-{n}");
                    let c = store
                        .append(vec![put("user", &id, expect, "org-1", Some(&name), json!({ "n": n }))])
                        .await
                        .unwrap();
                    assert_eq!(c[0].event.sequence, n + 1);
                    positions.push(c[0].event.position);
                    // Reads interleave with the writes and see what was answered.
                    assert_eq!(store.get("user", &id).await.unwrap().unwrap().sequence, n + 1);
                }
                positions
            }));
        }
        let mut positions = Vec::new();
        for task in tasks {
            let mine = task.await.unwrap();
            assert!(mine.windows(2).all(|w| w[0] < w[1]));
            positions.extend(mine);
        }
        positions.sort_unstable();
        assert_eq!(positions, (1..=500).collect::<Vec<u64>>());

        let log = store.events(None, 0, 1000).await.unwrap();
        assert_eq!(log.len(), 500);
        assert!(log.windows(2).all(|w| w[0].position < w[1].position && w[0].created_at <= w[1].created_at));
        for t in 0..50 {
            let id = format!("obj-{t}");
            let object = store.get("user", &id).await.unwrap().unwrap();
            assert_eq!((object.sequence, object.state.clone()), (10, json!({ "n": 9 })));
            let seqs: Vec<u64> =
                store.events(Some(("user", &id)), 0, 100).await.unwrap().iter().map(|e| e.sequence).collect();
            assert_eq!(seqs, (1..=10).collect::<Vec<u64>>());
        }
        let listed = store.list("user", "org-1", &PageQuery { after: None, reverse: false, limit: 100 }).await.unwrap();
        assert_eq!(listed.len(), 50);
        store.close().await.unwrap();
    }

    #[tokio::test]
    async fn connections_are_durable_and_wal() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let settings = |conn: &Connection| -> (String, i64, i64, i64) {
            (
                conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap(),
                conn.query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap(),
                conn.query_row("PRAGMA foreign_keys", [], |r| r.get(0)).unwrap(),
                conn.query_row("PRAGMA busy_timeout", [], |r| r.get(0)).unwrap(),
            )
        };
        // synchronous 2 = FULL.
        let expected = ("wal".to_owned(), 2, 1, 5000);
        {
            let writer = store.inner.writer.lock().unwrap();
            assert_eq!(settings(writer.as_ref().unwrap()), expected);
        }
        let readers = store.inner.idle_readers.lock().unwrap();
        assert_eq!(readers.len(), 4);
        for reader in readers.iter() {
            assert_eq!(settings(reader), expected);
            assert!(reader.execute("DELETE FROM objects", []).is_err());
        }
    }

    const CRASH_DIR: &str = "IAMD_STORE_CRASH_DIR";

    /// The writer half of `answered_writes_survive_sigkill`; does nothing unless run by it.
    #[tokio::test]
    async fn crash_child() {
        let Some(dir) = std::env::var_os(CRASH_DIR) else {
            return;
        };
        let store = open(Path::new(&dir));
        for i in 0..100_000 {
            let id = format!("obj-{i}");
            store.append(vec![create("org", &id, "", None)]).await.unwrap();
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            writeln!(out, "answered {id}").unwrap();
            out.flush().unwrap();
        }
    }

    #[test]
    fn answered_writes_survive_sigkill() {
        use std::io::BufRead;
        let dir = tempfile::tempdir().unwrap();
        // Test names leave out the crate name.
        let module = module_path!().split_once("::").unwrap().1;
        let child_test = format!("{module}::crash_child");
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", &child_test, "--nocapture", "--test-threads=1"])
            .env(CRASH_DIR, dir.path())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut answered = Vec::new();
        for line in std::io::BufReader::new(stdout).lines() {
            if let Some(id) = line.unwrap().strip_prefix("answered ") {
                answered.push(id.to_owned());
                if answered.len() == 50 {
                    break;
                }
            }
        }
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        assert_eq!(answered.len(), 50, "the child test `{child_test}` did not write");
        assert!(!status.success());

        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let store = open(dir.path());
            for id in &answered {
                let object = store.get("org", id).await.unwrap();
                assert_eq!(object.map(|o| o.sequence), Some(1), "{id} was answered but lost");
            }
            // Whatever committed after the last answer is whole: rows and events agree.
            let events = store.events(None, 0, u32::MAX).await.unwrap();
            assert!(events.len() >= 50);
            for (i, event) in events.iter().enumerate() {
                assert_eq!(event.object_id, format!("obj-{i}"));
                assert!(store.get("org", &event.object_id).await.unwrap().is_some());
            }
        });
    }

    #[test]
    fn migrations_are_numbered_from_one_without_gaps() {
        for (i, migration) in MIGRATIONS.iter().enumerate() {
            assert_eq!(migration.version, i64::try_from(i).unwrap() + 1, "{}", migration.name);
        }
        assert_eq!(MIGRATIONS.last().unwrap().version, 1);
    }

    #[test]
    fn list_and_event_queries_use_indexes() {
        let dir = tempfile::tempdir().unwrap();
        drop(SqliteStore::open(dir.path()).unwrap());
        let raw = Connection::open(dir.path().join(DB_FILE)).unwrap();
        let plan = |sql: &str| -> String {
            let mut stmt = raw.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let rows: Vec<String> =
                stmt.query_map([], |r| r.get::<_, String>(3)).unwrap().map(Result::unwrap).collect();
            rows.join("; ")
        };
        let list = plan(&format!(
            "SELECT {OBJECT_COLUMNS} FROM objects WHERE kind = 'u' AND parent = 'p' AND (created_at, id) > (1, 'a') ORDER BY created_at DESC, id DESC LIMIT 5"
        ));
        assert!(list.contains("objects_list") && !list.contains("TEMP B-TREE"), "{list}");
        let events = plan(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE kind = 'u' AND object_id = 'a' AND position > 3 ORDER BY sequence LIMIT 5"
        ));
        assert!(events.contains("INDEX") && !events.contains("TEMP B-TREE"), "{events}");
    }
}
