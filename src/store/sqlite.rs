//! The embedded SQLite backend of the [`Store`].
//!
//! Owns one database file, `iamd.sqlite3`, in the directory given to [`SqliteStore::open`]:
//! its connections, its PRAGMAs, its versioned schema (the migrations embedded from
//! `migrations/sqlite/`), the instance row seeded by the first open, and the mapping of
//! SQLite failures onto [`StoreError`]. It knows objects and events, never what a state
//! means: that is the `app` layer's business, and nothing here may branch on a kind.
//!
//! rusqlite is synchronous. Writes go through one writer thread that owns the only write
//! connection and commits in groups: it takes every request waiting in its queue (up to
//! [`MAX_BATCH`]), applies each inside its own savepoint of one `BEGIN IMMEDIATE`
//! transaction, and commits them with one fsync (WAL, `synchronous=FULL`) before it answers
//! any of them. A request that fails is rolled back to its savepoint and answered with its
//! error; the others in the group still commit. Reads run on tokio's blocking pool, on one of
//! a few read-only connections, which WAL lets proceed while a write is in progress and which
//! see every transaction committed before they start.
//!
//! One writer means commit order is position order, so the log's cursor is the position
//! alone (epoch 0): nothing can commit later with a lower position.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, Row, Transaction, TransactionBehavior, params};
use tokio::sync::{Semaphore, mpsc, oneshot};
use uuid::Uuid;

use crate::store::{
    Append, Batch, Change, Committed, Event, Head, Instance, Located, LogCursor, Micros, Migration, ObjectKey,
    REFERRERS_NAMED, Snapshot, Store, StoreError, StoreResult, StoredObject,
};

/// The database file inside the store directory.
pub const DB_FILE: &str = "iamd.sqlite3";

/// The most append requests one group commit takes. Bounds the latency a request adds to the
/// others in its group and the work lost to a failed commit.
pub const MAX_BATCH: usize = 256;

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
        migrate(&mut writer, LATEST_VERSION).map_err(at)?;
        let instance = load_instance(&writer).map_err(at)?;
        sync_dir(dir, created_dir).map_err(at)?;

        let mut readers = Vec::new();
        for _ in 0..READERS {
            readers.push(open_connection(&path, true).map_err(at)?);
        }

        let commits = Arc::new(AtomicU64::new(0));
        let (jobs, queue) = mpsc::channel(QUEUE_DEPTH);
        let (done, writer_done) = oneshot::channel();
        let thread_commits = Arc::clone(&commits);
        std::thread::Builder::new()
            .name("iamd-sqlite-writer".into())
            .spawn(move || {
                // The receiver may be gone when nobody waits for the close; nothing to tell.
                let _ = done.send(run_writer(writer, queue, &thread_commits));
            })
            .map_err(|e| StoreError::Unavailable(format!("cannot start the store writer thread: {e}")))?;

        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path,
                instance,
                closed: AtomicBool::new(false),
                jobs: Mutex::new(Some(jobs)),
                writer_done: tokio::sync::Mutex::new(Some(writer_done)),
                commits,
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

    /// Queues a job for the writer thread.
    async fn submit(&self, job: Job) -> StoreResult<()> {
        let jobs = lock(&self.inner.jobs, "writer queue")?.clone().ok_or_else(closed)?;
        jobs.send(job).await.map_err(|_| self.writer_gone())
    }

    fn writer_gone(&self) -> StoreError {
        if self.inner.closed.load(Ordering::Acquire) {
            closed()
        } else {
            StoreError::Internal("the store writer thread stopped".into())
        }
    }

    /// Transactions the writer has committed since open; a group commit counts once.
    pub fn commit_count(&self) -> u64 {
        self.inner.commits.load(Ordering::Acquire)
    }

    /// Runs `f` on the write connection, between two group commits.
    #[cfg(test)]
    pub(crate) async fn with_writer<T: Send + 'static>(&self, f: impl FnOnce(&Connection) -> T + Send + 'static) -> T {
        let (tx, rx) = oneshot::channel();
        let job = Job::Inspect(Box::new(move |conn| {
            let _ = tx.send(f(conn));
        }));
        self.submit(job).await.map_err(|e| e.to_string()).expect("the writer takes the job");
        rx.await.expect("the writer runs the job")
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn instance(&self) -> StoreResult<Instance> {
        self.check_open()?;
        Ok(self.inner.instance.clone())
    }

    async fn append(&self, batch: Batch) -> StoreResult<Vec<Committed>> {
        self.check_open()?;
        if batch.writes.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, answer) = oneshot::channel();
        // Once queued, the write goes ahead even if this future is dropped: it commits as a
        // whole or not at all, and nobody hears which.
        self.submit(Job::Append(AppendRequest { batch, reply })).await?;
        answer.await.map_err(|_| self.writer_gone())?
    }

    async fn head(&self, kind: &str, id: &str) -> StoreResult<Head> {
        let (kind, id) = (kind.to_owned(), id.to_owned());
        self.read(move |conn| {
            // Both reads in one read transaction: a commit between them could pair "no row"
            // with the sequence of the event that created the row.
            let tx = conn.unchecked_transaction().map_err(db_err)?;
            select_head(&tx, &kind, &id)
        })
        .await
    }

    async fn snapshot(&self) -> StoreResult<Snapshot> {
        self.read(|conn| {
            // One read transaction: the rows and the last position come from one WAL snapshot,
            // and one writer commits in position order, so the rows reflect exactly the events
            // up to that position.
            let tx = conn.unchecked_transaction().map_err(db_err)?;
            let last: i64 =
                tx.query_row("SELECT COALESCE(MAX(position), 0) FROM events", [], |row| row.get(0)).map_err(db_err)?;
            let mut stmt = tx.prepare(&format!("SELECT {OBJECT_COLUMNS} FROM objects")).map_err(db_err)?;
            let objects = stmt.query_map([], object_from_row).map_err(db_err)?.collect::<rusqlite::Result<_>>();
            let position = u64::try_from(last).map_err(|e| StoreError::Internal(format!("log position: {e}")))?;
            Ok(Snapshot { cursor: LogCursor { epoch: 0, position }, objects: objects.map_err(db_err)? })
        })
        .await
    }

    async fn read_log(
        &self,
        object: Option<(&str, &str)>,
        after: LogCursor,
        limit: u32,
    ) -> StoreResult<Vec<Committed>> {
        let object = object.map(|(kind, id)| (kind.to_owned(), id.to_owned()));
        self.read(move |conn| select_log(conn, object.as_ref(), after, limit)).await
    }

    async fn locate(&self, position: u64) -> StoreResult<Located> {
        let Ok(sql_position) = i64::try_from(position) else {
            return Ok(Located::Beyond);
        };
        self.read(move |conn| {
            let last: i64 = conn
                .query_row("SELECT COALESCE(MAX(position), 0) FROM events", [], |row| row.get(0))
                .map_err(db_err)?;
            // Committed means readable: one writer commits in position order, without holes.
            Ok(if sql_position >= 1 && sql_position <= last {
                Located::At(LogCursor { epoch: 0, position })
            } else {
                Located::Beyond
            })
        })
        .await
    }

    async fn ping(&self) -> StoreResult<()> {
        self.read(|conn| {
            conn.query_row("SELECT 1", [], |row| row.get::<_, i64>(0)).map_err(db_err)?;
            Ok(())
        })
        .await
    }

    /// Waits for the reads in flight and the writes queued before this call, then closes
    /// every connection. Closing a closed store succeeds and does nothing.
    async fn close(&self) -> StoreResult<()> {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        // Holding every permit means every read connection is back in the idle list.
        if let Ok(permits) = self.inner.read_permits.acquire_many(READERS).await {
            permits.forget();
        }
        self.inner.read_permits.close();
        let inner = Arc::clone(&self.inner);
        let readers_closed = blocking(move || inner.close_readers()).await;
        // The writer drains its queue, then closes the write connection last: the last
        // connection to close checkpoints the WAL into the database file and removes it.
        drop(lock(&self.inner.jobs, "writer queue")?.take());
        let writer_done = self.inner.writer_done.lock().await.take();
        let writer_closed = match writer_done {
            Some(done) => {
                done.await.unwrap_or_else(|_| Err(StoreError::Internal("the store writer thread died".into())))
            }
            None => Ok(()),
        };
        readers_closed.and(writer_closed)
    }
}

// ---------------------------------------------------------------------------------------
// Connections

/// How long a connection waits for another one's lock (another process, or a checkpoint)
/// before the call fails with `Unavailable`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the writer waits for reads to let it fold the log back while the volume is
/// short of space; writes wait behind it.
const CHECKPOINT_WAIT: Duration = Duration::from_millis(100);

/// Read connections. Reads are the common case of an IAM service; a handful is enough
/// because each read is short and SQLite does the work on the calling thread.
const READERS: u32 = 4;

/// Append requests that may wait for the writer before `append` itself waits to queue.
const QUEUE_DEPTH: usize = 4 * MAX_BATCH;

struct Inner {
    path: PathBuf,
    instance: Instance,
    closed: AtomicBool,
    /// The writer thread's queue; `None` once closed. The thread stops when every sender is
    /// gone, after it has answered everything queued.
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    /// Answers once the writer thread has closed the write connection.
    writer_done: tokio::sync::Mutex<Option<oneshot::Receiver<StoreResult<()>>>>,
    /// Transactions committed by the writer.
    commits: Arc<AtomicU64>,
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
            // Only after a read panicked, or ended inside a transaction, and lost its
            // connection: replace it.
            None => open_connection(&self.path, true),
        }
    }

    fn give_back_reader(&self, conn: Connection) {
        // A read transaction whose rollback failed would pin the connection to its snapshot.
        if !conn.is_autocommit() {
            return;
        }
        if let Ok(mut idle) = self.idle_readers.lock() {
            idle.push(conn);
        }
    }

    fn close_readers(&self) -> StoreResult<()> {
        let mut first_error = None;
        let readers = std::mem::take(&mut *lock(&self.idle_readers, "reader pool")?);
        for conn in readers {
            if let Err((_, e)) = conn.close() {
                first_error.get_or_insert(db_err(e));
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

// ---------------------------------------------------------------------------------------
// The writer thread and group commit

enum Job {
    Append(AppendRequest),
    /// Test hook: runs between two group commits with the write connection.
    #[cfg(test)]
    Inspect(Box<dyn FnOnce(&Connection) + Send>),
}

struct AppendRequest {
    batch: Batch,
    reply: oneshot::Sender<StoreResult<Vec<Committed>>>,
}

impl AppendRequest {
    fn answer(self, result: StoreResult<Vec<Committed>>) {
        // The caller may have gone away; its write stands (or not) all the same.
        let _ = self.reply.send(result);
    }
}

/// The writer thread's loop: one group commit per turn, with every request that queued while
/// the previous one was being written. Returns when the queue is closed and drained.
fn run_writer(mut conn: Connection, mut queue: mpsc::Receiver<Job>, commits: &AtomicU64) -> StoreResult<()> {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut room = Room::new(&conn);
    while let Some(first) = queue.blocking_recv() {
        let mut next = Some(first);
        while let Some(job) = next.take() {
            match job {
                Job::Append(request) => batch.push(request),
                #[cfg(test)]
                Job::Inspect(f) => {
                    group_commit(&mut conn, std::mem::take(&mut batch), commits);
                    f(&conn);
                }
            }
            if batch.len() < MAX_BATCH {
                next = queue.try_recv().ok();
            }
        }
        group_commit(&mut conn, std::mem::take(&mut batch), commits);
        room.keep(&conn);
    }
    conn.close().map_err(|(_, e)| db_err(e))
}

/// Keeps the write-ahead log from taking the last free space of the volume.
///
/// SQLite folds the WAL back into the database file only once it holds 1000 pages (4 MB),
/// and until then every commit makes it longer. A checkpoint copies pages into the database
/// file, which needs room to grow: on a volume with less free space than the WAL grows to,
/// the WAL would take all of it and keep it, and the store would stay full, across restarts
/// too, holding far less data than the volume has room for (a 2 MB volume took 41
/// organizations). So while the volume has less than [`LOW_SPACE`] free, the writer folds
/// the WAL back after every group and truncates it, and the volume fills with data.
struct Room {
    /// The database file's directory; `None` for an in-memory database.
    dir: Option<PathBuf>,
    /// Whether the last look found the volume short of space.
    short: bool,
}

/// Below this much free space the writer folds the log back after every group: more than
/// SQLite's own checkpoints let the log grow to, and a large group besides.
const LOW_SPACE: u64 = 8 << 20;

impl Room {
    fn new(conn: &Connection) -> Room {
        let dir = conn.path().filter(|path| !path.is_empty()).map(|path| match Path::new(path).parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        });
        Room { dir, short: false }
    }

    fn keep(&mut self, conn: &Connection) {
        let Some(free) = self.dir.as_deref().and_then(free_bytes) else { return };
        let short = free < LOW_SPACE;
        if short != self.short {
            if short {
                tracing::warn!(free, "the store's volume is almost full: folding the log back after every write");
            } else {
                tracing::info!(free, "the store's volume has room again");
            }
            self.short = short;
        }
        if short {
            // TRUNCATE waits for the reads that started before the log was copied back, which
            // are short; then the log is empty and its space is the volume's again. Reads
            // that take longer, or a volume that leaves the database file no room for the
            // copy, leave the log as it is, and the next group tries again.
            let _ = conn.busy_timeout(CHECKPOINT_WAIT);
            if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())) {
                tracing::debug!(error = %e, "cannot fold the log back into the database");
            }
            if let Err(e) = conn.busy_timeout(BUSY_TIMEOUT) {
                tracing::warn!(error = %e, "cannot restore the store writer's busy timeout");
            }
        }
    }
}

/// Bytes the volume holding `dir` has free for an unprivileged writer.
#[cfg(unix)]
fn free_bytes(dir: &Path) -> Option<u64> {
    let stats = rustix::fs::statvfs(dir).ok()?;
    Some(stats.f_bavail.saturating_mul(stats.f_frsize))
}

#[cfg(not(unix))]
fn free_bytes(_dir: &Path) -> Option<u64> {
    None
}

/// Commits `requests` in one transaction, each inside its own savepoint, and answers every
/// one: with its events once the commit is durable, or with its own error. A failed commit
/// fails them all.
fn group_commit(conn: &mut Connection, requests: Vec<AppendRequest>, commits: &AtomicU64) {
    let mut pending = VecDeque::from(requests);
    'transaction: while !pending.is_empty() {
        if let Err(e) = begin(conn).map_err(|e| read_only_or(e, conn)) {
            for request in pending.drain(..) {
                request.answer(Err(e.clone()));
            }
            return;
        }
        // One clock reading for the whole group, each event a microsecond after the one
        // before it: requests are atomic one by one, time never goes back in position order,
        // and objects made in one write list in the order they were made.
        let mut clock = match next_timestamp(conn) {
            Ok(now) => now..,
            Err(e) => {
                let e = read_only_or(e, conn);
                rollback(conn);
                for request in pending.drain(..) {
                    request.answer(Err(e.clone()));
                }
                return;
            }
        };
        let mut applied: Vec<(AppendRequest, Vec<Committed>)> = Vec::with_capacity(pending.len());
        while let Some(request) = pending.pop_front() {
            match apply_in_savepoint(conn, &request.batch, &mut clock) {
                Ok(committed) => applied.push((request, committed)),
                Err(Failure::Request(e)) => request.answer(Err(read_only_or(e, conn))),
                Err(Failure::Transaction(e)) => {
                    let e = read_only_or(e, conn);
                    // SQLite gave up the whole transaction (an I/O error, a full disk): the
                    // requests applied before this one were rolled back too, through no
                    // fault of theirs, and go again in a fresh transaction. Each turn of
                    // the outer loop answers at least this request, so it ends.
                    rollback(conn);
                    request.answer(Err(e));
                    for (earlier, _) in applied.into_iter().rev() {
                        pending.push_front(earlier);
                    }
                    continue 'transaction;
                }
            }
        }
        if applied.is_empty() {
            rollback(conn);
            continue;
        }
        match conn.execute_batch("COMMIT") {
            Ok(()) => {
                commits.fetch_add(1, Ordering::AcqRel);
                for (request, committed) in applied {
                    request.answer(Ok(committed));
                }
            }
            Err(e) => {
                let e = read_only_or(db_err(e), conn);
                rollback(conn);
                for (request, _) in applied {
                    request.answer(Err(e.clone()));
                }
            }
        }
    }
}

enum Failure {
    /// The request failed and was rolled back to its savepoint; the transaction goes on.
    Request(StoreError),
    /// The transaction is gone.
    Transaction(StoreError),
}

fn begin(conn: &mut Connection) -> StoreResult<()> {
    // A transaction left open by an earlier failure would make BEGIN fail.
    if !conn.is_autocommit() {
        conn.execute_batch("ROLLBACK").map_err(db_err)?;
    }
    // IMMEDIATE takes the write lock up front, so the reads below cannot be invalidated by
    // another writer (another process on the same file) before this transaction commits.
    conn.execute_batch("BEGIN IMMEDIATE").map_err(db_err)
}

fn rollback(conn: &mut Connection) {
    if !conn.is_autocommit()
        && let Err(e) = conn.execute_batch("ROLLBACK")
    {
        // `begin` tries again before the next transaction.
        tracing::warn!(error = %e, "store rollback failed");
    }
}

/// Applies one request's guards and writes, all or nothing, inside the open transaction.
fn apply_in_savepoint(
    conn: &mut Connection,
    batch: &Batch,
    clock: &mut std::ops::RangeFrom<Micros>,
) -> Result<Vec<Committed>, Failure> {
    conn.execute_batch("SAVEPOINT request").map_err(|e| Failure::Transaction(db_err(e)))?;
    let result = check_guards(conn, batch).and_then(|()| {
        batch.writes.iter().zip(clock).map(|(write, now)| apply(conn, write, &batch.actor, now)).collect()
    });
    match result {
        Ok(committed) => {
            conn.execute_batch("RELEASE request").map_err(|e| Failure::Transaction(db_err(e)))?;
            Ok(committed)
        }
        Err(e) if conn.is_autocommit() => Err(Failure::Transaction(e)),
        Err(e) => match conn.execute_batch("ROLLBACK TO request; RELEASE request") {
            Ok(()) => Err(Failure::Request(e)),
            Err(rollback) => Err(Failure::Transaction(db_err(rollback))),
        },
    }
}

/// The guards hold against the objects as the request found them. One writer means nothing
/// can change them before the request's transaction commits.
fn check_guards(conn: &Connection, batch: &Batch) -> StoreResult<()> {
    for guard in &batch.guards {
        let actual = conn
            .prepare_cached("SELECT sequence FROM objects WHERE kind = ?1 AND id = ?2")
            .and_then(|mut stmt| stmt.query_row(params![guard.kind, guard.id], |row| u64_column(row, 0)).optional())
            .map_err(db_err)?;
        guard.check(actual)?;
    }
    Ok(())
}

/// The time of a transaction's first event: the wall clock, but after the newest event in
/// the log, so created_at increases with position even if the clock steps back (across
/// restarts too, since it is read from the log rather than kept in memory).
fn next_timestamp(conn: &Connection) -> StoreResult<Micros> {
    let last: Option<Micros> = conn
        .query_row("SELECT created_at FROM events ORDER BY position DESC LIMIT 1", [], |row| row.get(0))
        .optional()
        .map_err(db_err)?;
    let wall = chrono::Utc::now().timestamp_micros();
    Ok(last.map_or(wall, |last| (last + 1).max(wall)))
}

fn apply(conn: &Connection, write: &Append, actor: &str, now: Micros) -> StoreResult<Committed> {
    let mut head = select_head(conn, &write.kind, &write.id)?;
    let step = write.step(&mut head, now)?;
    let sequence_sql = to_sql_int(step.sequence)?;

    conn.prepare_cached(
        "INSERT INTO events (kind, object_id, sequence, event_type, payload, actor, owner, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            write.kind,
            write.id,
            sequence_sql,
            write.event_type,
            write.payload.to_string(),
            actor,
            step.owner,
            now
        ])
    })
    .map_err(db_err)?;
    let position = u64::try_from(conn.last_insert_rowid())
        .map_err(|e| StoreError::Internal(format!("negative event position: {e}")))?;

    match &write.change {
        Change::Put { owner, parent, name, state, .. } => {
            conn.prepare_cached(
                "INSERT INTO objects (kind, id, owner, parent, name, state, sequence, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
                 ON CONFLICT (kind, id) DO UPDATE SET owner = excluded.owner, parent = excluded.parent, \
                 name = excluded.name, state = excluded.state, sequence = excluded.sequence, \
                 updated_at = excluded.updated_at",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![
                    write.kind,
                    write.id,
                    owner,
                    parent,
                    name,
                    state,
                    sequence_sql,
                    step.created_at,
                    now,
                ])
            })
            .map_err(|e| match name {
                Some(name) if is_name_conflict(&e) => {
                    StoreError::NameTaken { kind: write.kind.clone(), name: name.clone() }
                }
                _ => db_err(e),
            })?;
            if let Some(refs) = step.refs {
                replace_refs(conn, &write.kind, &write.id, refs)?;
            }
        }
        Change::Delete => {
            replace_refs(conn, &write.kind, &write.id, &[])?;
            let by = select_referrers(conn, &write.kind, &write.id, REFERRERS_NAMED)?;
            if !by.is_empty() {
                return Err(StoreError::Referenced { kind: write.kind.clone(), id: write.id.clone(), by });
            }
            conn.prepare_cached("DELETE FROM objects WHERE kind = ?1 AND id = ?2")
                .and_then(|mut stmt| stmt.execute(params![write.kind, write.id]))
                .map_err(db_err)?;
        }
    }

    let event = write.event(actor, &step.owner, position, step.sequence, now);
    Ok(Committed { cursor: LogCursor { epoch: 0, position }, event })
}

/// Makes `refs` the references of `(kind, id)`.
fn replace_refs(conn: &Connection, kind: &str, id: &str, refs: &[ObjectKey]) -> StoreResult<()> {
    conn.prepare_cached("DELETE FROM refs WHERE from_kind = ?1 AND from_id = ?2")
        .and_then(|mut stmt| stmt.execute(params![kind, id]))
        .map_err(db_err)?;
    let mut insert = conn
        .prepare_cached(
            "INSERT INTO refs (to_kind, to_id, from_kind, from_id) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
        )
        .map_err(db_err)?;
    for target in refs {
        insert.execute(params![target.kind, target.id, kind, id]).map_err(db_err)?;
    }
    Ok(())
}

fn select_referrers(conn: &Connection, kind: &str, id: &str, limit: i64) -> StoreResult<Vec<ObjectKey>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT from_kind, from_id FROM refs WHERE to_kind = ?1 AND to_id = ?2 \
             ORDER BY from_kind, from_id LIMIT ?3",
        )
        .map_err(db_err)?;
    let rows = stmt
        .query_map(params![kind, id, limit], |row| Ok(ObjectKey { kind: row.get(0)?, id: row.get(1)? }))
        .map_err(db_err)?;
    rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db_err)
}

/// One object's row and the sequence of its latest event: read it inside one transaction.
fn select_head(conn: &Connection, kind: &str, id: &str) -> StoreResult<Head> {
    let object = select_object(conn, kind, id)?;
    // INVARIANT: a row's sequence is its object's latest event's; both are written in one
    // transaction. Without a row, the object may have been deleted and its log continues.
    let sequence = match &object {
        Some(object) => object.sequence,
        None => last_event_sequence(conn, kind, id)?,
    };
    Ok(Head { object, sequence })
}

fn last_event_sequence(conn: &Connection, kind: &str, id: &str) -> StoreResult<u64> {
    conn.query_row(
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
const LOG_COLUMNS: &str = "position, kind, object_id, sequence, event_type, payload, actor, owner, created_at";

fn select_object(conn: &Connection, kind: &str, id: &str) -> StoreResult<Option<StoredObject>> {
    conn.prepare_cached(&format!("SELECT {OBJECT_COLUMNS} FROM objects WHERE kind = ?1 AND id = ?2"))
        .and_then(|mut stmt| stmt.query_row(params![kind, id], object_from_row).optional())
        .map_err(db_err)
}

fn select_log(
    conn: &Connection,
    object: Option<&(String, String)>,
    after: LogCursor,
    limit: u32,
) -> StoreResult<Vec<Committed>> {
    // Every cursor here has epoch 0; one with a later epoch is past the end of this log.
    if after.epoch > 0 {
        return Ok(Vec::new());
    }
    // Past the largest position SQLite can hold there is nothing to return.
    let after = i64::try_from(after.position).unwrap_or(i64::MAX);
    let limit = i64::from(limit);
    match object {
        Some((kind, id)) => {
            // An object's sequence grows with position (both are assigned by the one
            // writer), so sequence order is position order and the (kind, object_id,
            // sequence) index serves it without a sort.
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {LOG_COLUMNS} FROM events WHERE kind = ?1 AND object_id = ?2 \
                     AND position > ?3 ORDER BY sequence LIMIT ?4"
                ))
                .map_err(db_err)?;
            let rows = stmt.query_map(params![kind, id, after, limit], committed_from_row).map_err(db_err)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db_err)
        }
        None => {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {LOG_COLUMNS} FROM events WHERE position > ?1 ORDER BY position LIMIT ?2"
                ))
                .map_err(db_err)?;
            let rows = stmt.query_map(params![after, limit], committed_from_row).map_err(db_err)?;
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
        state: row.get(5)?,
        sequence: u64_column(row, 6)?,
        created_at: row.get(7)?,
        updated_at: row.get(8)?,
    })
}

/// A row of `LOG_COLUMNS`.
fn committed_from_row(row: &Row<'_>) -> rusqlite::Result<Committed> {
    let event = Event {
        position: u64_column(row, 0)?,
        kind: row.get(1)?,
        object_id: row.get(2)?,
        sequence: u64_column(row, 3)?,
        event_type: row.get(4)?,
        payload: json_column(row, 5)?,
        actor: row.get(6)?,
        owner: row.get(7)?,
        created_at: row.get(8)?,
    };
    Ok(Committed { cursor: LogCursor { epoch: 0, position: event.position }, event })
}

fn json_column(row: &Row<'_>, idx: usize) -> rusqlite::Result<serde_json::Value> {
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

fn to_sql_int(value: u64) -> StoreResult<i64> {
    i64::try_from(value).map_err(|_| StoreError::Internal(format!("{value} exceeds SQLite's range")))
}

// ---------------------------------------------------------------------------------------
// Opening and schema

/// Every schema this binary knows, in version order. Never edit an applied migration; add
/// the next one.
const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, name: "initial", sql: include_str!("migrations/sqlite/0001_initial.sql") },
    Migration { version: 2, name: "event_snapshots", sql: include_str!("migrations/sqlite/0002_event_snapshots.sql") },
    Migration {
        version: 3,
        name: "changes_and_refs",
        sql: include_str!("migrations/sqlite/0003_changes_and_refs.sql"),
    },
];

/// The newest schema version this binary knows.
pub const LATEST_VERSION: i64 = MIGRATIONS.len() as i64;

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
        let mode: String = retry_busy(|| conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0)))
            .map_err(db_err)?;
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

/// Runs `step` again while SQLite answers BUSY without having waited: it does so where
/// waiting could deadlock, such as switching a new file to WAL while another process opens
/// it too. Gives up after the busy timeout, like a step that waited.
fn retry_busy<T>(mut step: impl FnMut() -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    loop {
        match step() {
            Err(e)
                if matches!(e.sqlite_error_code(), Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked))
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            other => return other,
        }
    }
}

/// Applies pending migrations up to `target`, one transaction each, and refuses a schema
/// newer than this binary's. The version check is repeated inside each transaction, so two
/// processes opening the same new file do not both apply a migration.
fn migrate(conn: &mut Connection, target: i64) -> StoreResult<()> {
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
        if current > LATEST_VERSION {
            return Err(StoreError::Unavailable(format!(
                "database schema version {current} is newer than this binary knows (up to \
                 {LATEST_VERSION}); run a newer iamd or restore a backup made for this version"
            )));
        }
        let Some(migration) = MIGRATIONS.iter().find(|m| m.version > current && m.version <= target) else {
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

/// Creates the database in `dir` at schema `version`, as the binary of that version left it,
/// for tests of the migrations that follow.
#[cfg(test)]
pub(crate) fn create_at_version(dir: &Path, version: i64) -> StoreResult<()> {
    std::fs::create_dir_all(dir).map_err(|e| StoreError::Unavailable(e.to_string()))?;
    let mut conn = open_connection(&dir.join(DB_FILE), false)?;
    migrate(&mut conn, version)?;
    conn.close().map_err(|(_, e)| db_err(e))
}

fn seed_instance(tx: &Transaction<'_>, now: Micros) -> StoreResult<()> {
    let id = Uuid::new_v4().to_string();
    tx.execute(
        "INSERT INTO instance (singleton, id, signing_key, created_at) VALUES (1, ?1, ?2, ?3)",
        params![id, crate::store::new_signing_key()?, now],
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

/// A full volume is `Full` and a read-only one `ReadOnly`, so clients hear which; the other
/// failures of the file, its locks and the volume are `Unavailable`, the rest `Internal`.
fn db_err(e: rusqlite::Error) -> StoreError {
    let moved = matches!(&e, rusqlite::Error::SqliteFailure(failure, _)
        if failure.extended_code == rusqlite::ffi::SQLITE_READONLY_DBMOVED);
    match e.sqlite_error_code() {
        Some(ErrorCode::DiskFull) => StoreError::Full(e.to_string()),
        // The file was moved or deleted under the connection: not a read-only volume.
        Some(ErrorCode::ReadOnly) if moved => StoreError::Unavailable(e.to_string()),
        Some(ErrorCode::ReadOnly) => StoreError::ReadOnly(e.to_string()),
        Some(
            ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::CannotOpen
            | ErrorCode::NotADatabase
            | ErrorCode::PermissionDenied
            | ErrorCode::SystemIoFailure,
        ) => StoreError::Unavailable(e.to_string()),
        _ => StoreError::Internal(e.to_string()),
    }
}

/// SQLite reports a write that a read-only volume refused (EROFS: a file system the kernel
/// stopped writing after an error, say) as a plain I/O error; whether the database file can
/// still be opened for writing tells which it was.
fn read_only_or(e: StoreError, conn: &Connection) -> StoreError {
    let refused = |path: &str| {
        matches!(std::fs::OpenOptions::new().write(true).open(path),
            Err(e) if e.kind() == std::io::ErrorKind::ReadOnlyFilesystem)
    };
    match e {
        StoreError::Unavailable(message) if conn.path().is_some_and(refused) => StoreError::ReadOnly(message),
        other => other,
    }
}

fn with_context(e: StoreError, path: &Path) -> StoreError {
    match e {
        StoreError::Unavailable(m) => StoreError::Unavailable(format!("{}: {m}", path.display())),
        StoreError::Internal(m) => StoreError::Internal(format!("{}: {m}", path.display())),
        StoreError::Full(m) => StoreError::Full(format!("{}: {m}", path.display())),
        StoreError::ReadOnly(m) => StoreError::ReadOnly(format!("{}: {m}", path.display())),
        other => other,
    }
}

/// What only the SQLite backend promises: its file, PRAGMAs, group commit, gap-free positions
/// and crash durability. The contract both backends share is in `conformance.rs`.
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing, reason = "a failing test panics")]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::store::Expect;
    use crate::store::fixtures::{batch, create, put};

    fn open(dir: &Path) -> SqliteStore {
        SqliteStore::open(dir).unwrap()
    }

    async fn whole_log(store: &SqliteStore) -> Vec<Committed> {
        store.read_log(None, LogCursor::default(), u32::MAX).await.unwrap()
    }

    #[tokio::test]
    async fn a_file_that_is_not_a_database_is_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(DB_FILE), vec![b'x'; 4096]).unwrap();
        let err = SqliteStore::open(dir.path()).unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(ref m) if m.contains(DB_FILE)), "{err:?}");
    }

    #[tokio::test]
    async fn the_store_directory_is_created_and_closing_folds_the_wal_back() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a").join("b");
        let store = open(&nested);
        store.append(batch(vec![create("org", "o1", "", None)])).await.unwrap();
        assert!(nested.join(DB_FILE).exists());
        store.close().await.unwrap();
        assert!(!nested.join(format!("{DB_FILE}-wal")).exists());
        let raw = Connection::open(nested.join(DB_FILE)).unwrap();
        let mode: String = raw.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal");
    }

    #[tokio::test]
    async fn reads_proceed_while_another_writer_holds_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        store.append(batch(vec![create("org", "o1", "", None)])).await.unwrap();
        let mut other = Connection::open(dir.path().join(DB_FILE)).unwrap();
        let tx = other.transaction_with_behavior(TransactionBehavior::Immediate).unwrap();
        tx.execute("INSERT INTO objects (kind, id, owner, parent, name, state, sequence, created_at, updated_at) VALUES ('org', 'o2', '', '', NULL, '{}', 1, 0, 0)", []).unwrap();
        // WAL: the read neither waits for the lock nor sees the uncommitted row.
        let started = std::time::Instant::now();
        assert_eq!(store.head("org", "o1").await.unwrap().object.unwrap().sequence, 1);
        assert_eq!(store.head("org", "o2").await.unwrap().object, None);
        store.ping().await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(1));
        tx.rollback().unwrap();
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
        assert_eq!(store.with_writer(settings).await, expected);
        let readers = store.inner.idle_readers.lock().unwrap();
        assert_eq!(readers.len(), 4);
        for reader in readers.iter() {
            assert_eq!(settings(reader), expected);
            assert!(reader.execute("DELETE FROM objects", []).is_err());
        }
    }

    /// One writer commits in position order: positions have no holes, even after failed
    /// requests, and time follows position order.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn positions_are_gap_free_and_time_follows_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(open(dir.path()));
        store.append(batch(vec![create("org", "o1", "", Some("taken"))])).await.unwrap();
        let tasks: Vec<_> = (0..64)
            .map(|i| {
                let store = Arc::clone(&store);
                tokio::spawn(async move {
                    let name = if i % 4 == 0 { "taken".to_owned() } else { format!("n{i}") };
                    store.append(batch(vec![create("org", &format!("x{i}"), "", Some(&name))])).await
                })
            })
            .collect();
        let mut ok = 0;
        for task in tasks {
            ok += usize::from(task.await.unwrap().is_ok());
        }
        assert_eq!(ok, 48);
        let log = whole_log(&store).await;
        assert_eq!(log.iter().map(|c| c.event.position).collect::<Vec<_>>(), (1..=49).collect::<Vec<u64>>());
        assert!(log.windows(2).all(|w| w[0].event.created_at <= w[1].event.created_at));
        assert!(log.iter().all(|c| c.cursor == LogCursor { epoch: 0, position: c.event.position }));
        // No cursor of another epoch exists here.
        assert_eq!(store.read_log(None, LogCursor { epoch: 1, position: 0 }, 10).await.unwrap(), vec![]);
    }

    /// Group commit: appenders that arrive while a commit is being written share the next
    /// one, so 16 busy appenders need far fewer commits (fsyncs) than writes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_appends_share_commits() {
        const APPENDERS: usize = 16;
        const WRITES_EACH: usize = 50;
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(open(dir.path()));
        let before = store.commit_count();
        let tasks: Vec<_> = (0..APPENDERS)
            .map(|t| {
                let store = Arc::clone(&store);
                tokio::spawn(async move {
                    for n in 0..WRITES_EACH {
                        store.append(batch(vec![create("org", &format!("o{t}-{n}"), "", None)])).await.unwrap();
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let writes = (APPENDERS * WRITES_EACH) as u64;
        let commits = store.commit_count() - before;
        assert_eq!(whole_log(&store).await.len() as u64, writes);
        assert!(commits < writes / 2, "{commits} commits for {writes} writes");
        store.close().await.unwrap();
    }

    /// A request in a group whose commit fails is answered with the failure, like the rest of
    /// its group; a request after it commits normally.
    #[tokio::test]
    async fn a_failed_commit_fails_its_group_and_the_next_group_commits() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        store.append(batch(vec![create("org", "o1", "", None)])).await.unwrap();
        // Another connection holds a read transaction open on the old snapshot and a write
        // lock past the busy timeout would be slow to test; instead make COMMIT itself fail
        // with a deferred foreign key violation, which only COMMIT checks.
        store
            .with_writer(|conn| {
                conn.execute_batch(
                    "CREATE TABLE probe (id INTEGER PRIMARY KEY, parent INTEGER REFERENCES probe (id) DEFERRABLE INITIALLY DEFERRED);
                     CREATE TRIGGER probe_on_event AFTER INSERT ON events WHEN NEW.object_id = 'doomed'
                     BEGIN INSERT INTO probe (id, parent) VALUES (NEW.position, -1); END;",
                )
                .unwrap();
            })
            .await;
        let err = store.append(batch(vec![create("org", "doomed", "", None)])).await.unwrap_err();
        assert!(matches!(err, StoreError::Internal(ref m) if m.contains("FOREIGN KEY")), "{err:?}");
        assert_eq!(store.head("org", "doomed").await.unwrap().object, None);
        let next = store.append(batch(vec![create("org", "o2", "", None)])).await.unwrap();
        assert_eq!(next[0].event.position, 2);
        assert_eq!(whole_log(&store).await.len(), 2);
    }

    /// A database without room for a write (its page limit here, as a full volume would
    /// leave it) refuses that write as `Full` and keeps no trace of it; a write that fits
    /// still commits, reads go on, and once there is room the same writer takes the refused
    /// write.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_database_refuses_what_does_not_fit_and_takes_it_once_there_is_room() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(open(dir.path()));
        store.append(batch(vec![create("org", "o1", "", None)])).await.unwrap();
        store
            .with_writer(|conn| {
                let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0)).unwrap();
                conn.pragma_update(None, "max_page_count", pages + 8).unwrap();
            })
            .await;
        let big = || put("org", "big", Expect::Absent, "", None, json!({ "blob": "x".repeat(256 * 1024) }));
        // Both at once, likely in one group: the one that fits commits all the same.
        let (refused, fits) = tokio::join!(
            store.append(batch(vec![create("org", "o2", "", None), big()])),
            store.append(batch(vec![create("org", "o3", "", None)])),
        );
        assert!(matches!(refused, Err(StoreError::Full(ref m)) if m.contains("full")), "{refused:?}");
        assert_eq!(fits.unwrap()[0].event.position, 2);
        // No trace of the refused request, neither of its write that fitted.
        assert_eq!(store.head("org", "big").await.unwrap(), Head { object: None, sequence: 0 });
        assert_eq!(store.head("org", "o2").await.unwrap(), Head { object: None, sequence: 0 });
        let log = whole_log(&store).await;
        assert_eq!(log.iter().map(|c| c.event.object_id.as_str()).collect::<Vec<_>>(), ["o1", "o3"]);
        assert_eq!(store.snapshot().await.unwrap().objects.len(), 2);

        store.with_writer(|conn| conn.pragma_update(None, "max_page_count", i64::from(u32::MAX - 1)).unwrap()).await;
        let committed = store.append(batch(vec![create("org", "o2", "", None), big()])).await.unwrap();
        assert_eq!(committed.iter().map(|c| c.event.position).collect::<Vec<_>>(), [3, 4]);
        assert_eq!(store.head("org", "big").await.unwrap().object.unwrap().sequence, 1);
        store.close().await.unwrap();
    }

    const CRASH_DIR: &str = "IAMD_STORE_CRASH_DIR";

    /// The writer half of `answered_writes_survive_sigkill`; does nothing unless run by it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn crash_child() {
        let Some(dir) = std::env::var_os(CRASH_DIR) else {
            return;
        };
        let store = Arc::new(open(Path::new(&dir)));
        // Several appenders at once, so answered writes come from shared group commits.
        let tasks: Vec<_> = (0..4)
            .map(|t| {
                let store = Arc::clone(&store);
                tokio::spawn(async move {
                    for i in 0..100_000 {
                        let id = format!("obj-{t}-{i}");
                        store.append(batch(vec![create("org", &id, "", None)])).await.unwrap();
                        use std::io::Write;
                        let mut out = std::io::stdout().lock();
                        writeln!(out, "answered {id}").unwrap();
                        out.flush().unwrap();
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
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
                if answered.len() == 200 {
                    break;
                }
            }
        }
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        assert_eq!(answered.len(), 200, "the child test `{child_test}` did not write");
        assert!(!status.success());

        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let store = open(dir.path());
            for id in &answered {
                let object = store.head("org", id).await.unwrap().object;
                assert_eq!(object.map(|o| o.sequence), Some(1), "{id} was answered but lost");
            }
            // Whatever committed after the last answer is whole: rows and events agree.
            let log = whole_log(&store).await;
            assert!(log.len() >= 200);
            for c in &log {
                let object = store.head("org", &c.event.object_id).await.unwrap().object;
                assert_eq!(object.map(|o| o.sequence), Some(c.event.sequence), "{}", c.event.object_id);
            }
        });
    }

    #[test]
    fn migrations_are_numbered_from_one_without_gaps() {
        for (i, migration) in MIGRATIONS.iter().enumerate() {
            assert_eq!(migration.version, i64::try_from(i).unwrap() + 1, "{}", migration.name);
        }
        assert_eq!(LATEST_VERSION, 3);
    }

    #[test]
    fn log_queries_use_indexes() {
        let dir = tempfile::tempdir().unwrap();
        drop(SqliteStore::open(dir.path()).unwrap());
        let raw = Connection::open(dir.path().join(DB_FILE)).unwrap();
        let plan = |sql: &str| -> String {
            let mut stmt = raw.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let rows: Vec<String> =
                stmt.query_map([], |r| r.get::<_, String>(3)).unwrap().map(Result::unwrap).collect();
            rows.join("; ")
        };
        let object_log = plan(&format!(
            "SELECT {LOG_COLUMNS} FROM events WHERE kind = 'u' AND object_id = 'a' AND position > 3 ORDER BY sequence LIMIT 5"
        ));
        assert!(object_log.contains("INDEX") && !object_log.contains("TEMP B-TREE"), "{object_log}");
        let log = plan(&format!("SELECT {LOG_COLUMNS} FROM events WHERE position > 3 ORDER BY position LIMIT 5"));
        assert!(log.contains("INTEGER PRIMARY KEY") && !log.contains("TEMP B-TREE"), "{log}");
    }
}
