//! The PostgreSQL backend of the [`Store`], for several replicas sharing one database.
//!
//! Owns a connection pool to the database named by the URL given to
//! [`PostgresStore::connect`], its versioned schema (the migrations embedded from
//! `migrations/postgres/`, applied under an advisory lock so replicas starting together
//! migrate and seed the instance once), and the mapping of PostgreSQL failures onto
//! [`StoreError`]. Same model and semantics as the SQLite backend: an append-only event log
//! plus current-state rows, written in one transaction per `append`; timestamps come from the
//! database's clock, so every replica stamps events with the same clock.
//!
//! Writers of one object are serialised by a transaction-scoped advisory lock on the object
//! (which also covers objects that do not exist yet), taken in one global order so that two
//! requests never wait on each other crosswise. Writers of different objects run in parallel.
//! A request takes the lock of an object it only guards shared: requests that guard one
//! object (every create in an organization guards the organization) run in parallel, and a
//! write or delete of the guarded object, which takes it exclusively, waits for them and
//! they for it.
//!
//! # Reading the log without skipping late commits
//!
//! Positions come from a sequence and are taken when a transaction inserts, not when it
//! commits. Transaction A may take position 7, transaction B position 8, and B commit first.
//! A reader that goes by position alone sees 8, remembers "after 8", and never delivers 7
//! once A commits: the classic event-store trap. Serialising appends with a lock held until
//! commit would avoid it at the cost of all write concurrency.
//!
//! Instead each event records its transaction's id (`xid`, 64-bit `xid8`), and the log is read
//! in (xid, position) order, only below the watermark `pg_snapshot_xmin(pg_current_snapshot())`:
//! the oldest transaction id still running. Every transaction below it has finished, so the
//! events below it are final (committed and visible to the reading statement, or rolled back
//! and gone). A transaction still running has an xid at or above the watermark, and one that
//! starts later gets a higher xid still, so an event that becomes readable later always sorts
//! after every event already delivered. A follower that remembers its last [`LogCursor`] never
//! skips. The price: a transaction that stays open (here or in any other session of the
//! cluster) holds the watermark back, and events after it wait until it ends.
//!
//! # When the database goes away
//!
//! Every failure to reach the database is `Unavailable`, and no call waits for it long: a
//! database that went down closes the connections, which the pool then replaces, so calls
//! fail at once; one that went silent is waited for at most `ANSWER_TIMEOUT` per call (its
//! connection is then closed, not pooled again) and twice `CONNECT_TIMEOUT` per new
//! connection. Nothing needs restarting when it comes back: the pool opens new
//! connections, the listener reconnects, and followers resume from their cursors. A write
//! whose COMMIT went out and whose answer did not come back may have committed; it is
//! `Unavailable` too, never a clean failure (`commit_err`). The server, for its part, ends a
//! write's session left idle inside its transaction (`IDLE_IN_WRITE`), so a writer that
//! went silent mid-write holds its locks and the watermark for seconds, not hours.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use std::sync::Arc;

use tokio::sync::{Notify, watch};

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use sha2::{Digest, Sha256};
use tokio_postgres::error::{Severity, SqlState};
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};
use uuid::Uuid;

use crate::store::{
    Append, Batch, Change, Committed, Event, Head, Instance, Located, LogCursor, Micros, Migration, ObjectKey,
    REFERRERS_NAMED, Snapshot, Step, Store, StoreError, StoreResult, StoredObject,
};

/// Connections in the pool: enough for the write concurrency a replica needs, few enough for
/// several replicas to share a server's default `max_connections` (100).
pub const POOL_SIZE: usize = 16;

/// How long opening one connection may take before the call fails with `Unavailable`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a call waits for a free pooled connection.
const WAIT_TIMEOUT: Duration = Duration::from_secs(30);

/// How long one call (one append attempt, one read, a ping) waits for the database to
/// answer its statements before it fails with `Unavailable`. A database that went silent
/// (its host gone, the network to it down) tells the client nothing, so without a bound a
/// call would wait until TCP gives up, many minutes later. The connection is then closed,
/// not handed back to the pool, so the next call opens a new one instead of waiting on it
/// too. Opening one is bounded apart, by the pool (twice `CONNECT_TIMEOUT`, so that a
/// second host of the URL gets its turn). The snapshot a replica starts from is not
/// bounded: it reads every row.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// Makes the server end a write's session that sits inside its transaction waiting for the
/// next statement for longer than this. A write sends its statements in a few round trips
/// (BEGIN, the locks and reads pipelined, the writes pipelined, COMMIT) with only a little
/// computing between them, so nothing of iamd's waits this long; a client that went silent
/// mid-transaction does, and without the bound its transaction would hold its object locks
/// and the log's watermark (every replica's follower) until the server's TCP keepalive
/// noticed, by default hours later. `LOCAL`: for this transaction only, so a pooler that
/// shares sessions sees nothing of it.
const IDLE_IN_WRITE: &str = "SET LOCAL idle_in_transaction_session_timeout = '5s'";

/// Attempts of one `append` that hit a deadlock (or another transient conflict) before it
/// gives up with `Unavailable`.
const APPEND_ATTEMPTS: u32 = 5;

/// The advisory lock (two-int form, a key space apart from the one-bigint object locks) that
/// serialises migrations: "iamd", 1.
const MIGRATION_LOCK: (i32, i32) = (0x6961_6d64, 1);

/// The PostgreSQL store. Cheap to share behind an `Arc`; all methods take `&self`.
pub struct PostgresStore {
    pool: Pool,
    instance: Instance,
    closed: AtomicBool,
    /// Counts `iamd_log` notifications (see [`listen`]); followers wait on it.
    log_grew: watch::Sender<u64>,
    /// Asks the announcer (see [`announce`]) to tell the other replicas that the log grew.
    announce: Arc<Notify>,
    /// Ends the listener when the store closes or is dropped.
    stop_listening: watch::Sender<bool>,
    /// The database, as `postgres://user@host:port/dbname`, without the password.
    target: String,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore").field("target", &self.target).finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/dbname`, or
    /// the `key=value` form), applies pending migrations and seeds the instance on first use.
    ///
    /// Fails with `Unavailable`, naming the database without its password, when the URL is
    /// not valid, the server cannot be reached, refuses the credentials, has no such
    /// database, or holds a schema newer than this binary.
    pub async fn connect(url: &str) -> StoreResult<PostgresStore> {
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Unavailable(format!("the database URL is not valid: {}", describe(&e))))?;
        PostgresStore::connect_with(config).await
    }

    /// [`PostgresStore::connect`] with a parsed configuration.
    pub async fn connect_with(mut config: tokio_postgres::Config) -> StoreResult<PostgresStore> {
        let target = crate::config::database_target(&config);
        let at = |e: StoreError| match e {
            StoreError::Unavailable(m) => StoreError::Unavailable(format!("PostgreSQL at {target}: {m}")),
            StoreError::Internal(m) => StoreError::Internal(format!("PostgreSQL at {target}: {m}")),
            other => other,
        };
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let listen_config = config.clone();
        let manager = Manager::from_config(config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(WAIT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT * 2))
            .build()
            .map_err(|e| at(StoreError::Internal(format!("cannot build the connection pool: {e}"))))?;

        let mut client = pool.get().await.map_err(pool_err).map_err(at)?;
        migrate(&mut client, LATEST_VERSION).await.map_err(at)?;
        let instance = load_instance(&client).await.map_err(at)?;
        drop(client);
        let (log_grew, _) = watch::channel(0);
        let (stop_listening, stopped) = watch::channel(false);
        // Notifications carry the announcing store's id, so a replica ignores its own.
        let me = Uuid::new_v4().simple().to_string();
        tokio::spawn(listen(listen_config, me.clone(), log_grew.clone(), stopped.clone()));
        let announce = Arc::new(Notify::new());
        tokio::spawn(self::announce(pool.clone(), me, announce.clone(), stopped));
        tracing::info!(database = %target, instance = %instance.id, "opened the PostgreSQL store");
        Ok(PostgresStore { pool, instance, closed: AtomicBool::new(false), log_grew, announce, stop_listening, target })
    }

    fn check_open(&self) -> StoreResult<()> {
        if self.closed.load(Ordering::Acquire) { Err(closed()) } else { Ok(()) }
    }

    async fn client(&self) -> StoreResult<deadpool_postgres::Object> {
        self.check_open()?;
        self.pool.get().await.map_err(pool_err)
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn instance(&self) -> StoreResult<Instance> {
        self.check_open()?;
        Ok(self.instance.clone())
    }

    async fn append(&self, batch: Batch) -> StoreResult<Vec<Committed>> {
        self.check_open()?;
        if batch.writes.is_empty() {
            return Ok(Vec::new());
        }
        // On its own task, so that a caller that goes away does not cut a transaction short
        // between statements: it commits as a whole or rolls back, and nobody hears which.
        let pool = self.pool.clone();
        match tokio::spawn(async move { append_with_retries(&pool, &batch).await }).await {
            Ok(result) => {
                if result.is_ok() {
                    self.announce.notify_one();
                }
                result
            }
            Err(e) if e.is_panic() => Err(StoreError::Internal("a store task panicked".into())),
            Err(_) => Err(StoreError::Unavailable("the runtime is shutting down".into())),
        }
    }

    async fn head(&self, kind: &str, id: &str) -> StoreResult<Head> {
        let client = self.client().await?;
        let answer = tokio::time::timeout(ANSWER_TIMEOUT, async {
            let stmt = client.prepare_cached(LOAD).await.map_err(pg_err)?;
            let row = client.query_one(&stmt, &[&kind, &id]).await.map_err(pg_err)?;
            Ok(head_from_row(kind, id, &row)?.0)
        })
        .await;
        answer.unwrap_or_else(|_| Err(silent(client, "reading an object")))
    }

    async fn snapshot(&self) -> StoreResult<Snapshot> {
        let mut client = self.client().await?;
        // One REPEATABLE READ snapshot for the rows and the watermark: every transaction below
        // its xmin had finished, so its events are in the rows; one at or above it may or may
        // not be, and the follower reads those again (see `Snapshot`).
        let tx = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(pg_err)?;
        let xmin = tx.query_one("SELECT pg_snapshot_xmin(pg_current_snapshot())::text", &[]).await.map_err(pg_err)?;
        let xmin = xid_column(&xmin, 0)?;
        let rows = tx.query(&format!("SELECT {OBJECT_COLUMNS}, kind, id FROM objects"), &[]).await.map_err(pg_err)?;
        let objects = rows
            .iter()
            .map(|row| {
                let (kind, id): (String, String) = (get(row, 7)?, get(row, 8)?);
                object_from_row(&kind, &id, row)
            })
            .collect::<StoreResult<Vec<_>>>()?;
        tx.commit().await.map_err(pg_err)?;
        // Positions stay below i64::MAX, so this cursor is just before every event of xmin.
        let cursor = LogCursor { epoch: xmin.saturating_sub(1), position: i64::MAX as u64 };
        Ok(Snapshot { cursor, objects })
    }

    async fn read_log(
        &self,
        object: Option<(&str, &str)>,
        after: LogCursor,
        limit: u32,
    ) -> StoreResult<Vec<Committed>> {
        let client = self.client().await?;
        let epoch = after.epoch.to_string();
        // Past the largest position a BIGSERIAL can hold there is nothing to return.
        let position = i64::try_from(after.position).unwrap_or(i64::MAX);
        let limit = i64::from(limit);
        // The watermark is taken by the same statement (READ COMMITTED: one snapshot per
        // statement) that reads the rows, so every event below it is visible to the read.
        let mut sql = format!(
            "SELECT {LOG_COLUMNS} FROM events \
             WHERE xid < pg_snapshot_xmin(pg_current_snapshot()) \
             AND (xid, position) > ($1::text::xid8, $2)"
        );
        if object.is_some() {
            sql.push_str(" AND kind = $4 AND object_id = $5");
        }
        sql.push_str(" ORDER BY xid, position LIMIT $3");
        let answer = tokio::time::timeout(ANSWER_TIMEOUT, async {
            let stmt = client.prepare_cached(&sql).await.map_err(pg_err)?;
            match object {
                Some((kind, id)) => client.query(&stmt, &[&epoch, &position, &limit, &kind, &id]).await,
                None => client.query(&stmt, &[&epoch, &position, &limit]).await,
            }
            .map_err(pg_err)
        })
        .await;
        let rows = answer.unwrap_or_else(|_| Err(silent(client, "reading the log")))?;
        rows.iter().map(committed_from_row).collect()
    }

    async fn locate(&self, position: u64) -> StoreResult<Located> {
        let Ok(sql_position) = i64::try_from(position) else {
            return Ok(Located::Beyond);
        };
        let client = self.client().await?;
        // The sequence's last value covers positions of transactions still running too: a
        // position above it was never handed out.
        let answer = tokio::time::timeout(ANSWER_TIMEOUT, async {
            let stmt = client
                .prepare_cached(
                    "SELECT (SELECT xid::text FROM events \
                             WHERE position = $1 AND xid < pg_snapshot_xmin(pg_current_snapshot())), \
                            COALESCE(pg_sequence_last_value(pg_get_serial_sequence('events', 'position')::regclass), 0)",
                )
                .await
                .map_err(pg_err)?;
            client.query_one(&stmt, &[&sql_position]).await.map_err(pg_err)
        })
        .await;
        let row = answer.unwrap_or_else(|_| Err(silent(client, "locating a position")))?;
        let last: i64 = get(&row, 1)?;
        if sql_position < 1 || sql_position > last {
            return Ok(Located::Beyond);
        }
        Ok(match get::<Option<&str>>(&row, 0)? {
            Some(_) => Located::At(LogCursor { epoch: xid_column(&row, 0)?, position }),
            None => Located::Pending,
        })
    }

    async fn ping(&self) -> StoreResult<()> {
        let client = self.client().await?;
        let answer = tokio::time::timeout(ANSWER_TIMEOUT, client.simple_query("SELECT 1")).await;
        answer.map_err(|_| silent(client, "a ping"))?.map_err(pg_err)?;
        Ok(())
    }

    /// Stops handing out connections and closes the idle ones; appends already running
    /// finish on theirs. Every commit was durable when it was answered, so there is nothing
    /// to flush. Closing a closed store succeeds and does nothing.
    async fn close(&self) -> StoreResult<()> {
        if !self.closed.swap(true, Ordering::AcqRel) {
            self.stop_listening.send_replace(true);
            self.pool.close();
        }
        Ok(())
    }

    fn log_grew(&self) -> Option<watch::Receiver<u64>> {
        Some(self.log_grew.subscribe())
    }
}

// ---------------------------------------------------------------------------------------
// Writes

/// Why one attempt at an append failed.
enum Failure {
    /// A transient conflict between transactions (deadlock, serialization failure): the
    /// whole request may go again.
    Retry(StoreError),
    Fail(StoreError),
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Failure {
        Failure::Fail(e)
    }
}

/// A database error from inside the append transaction.
fn append_err(e: tokio_postgres::Error) -> Failure {
    let retry = matches!(e.code(), Some(code) if *code == SqlState::T_R_DEADLOCK_DETECTED
        || *code == SqlState::T_R_SERIALIZATION_FAILURE
        // The object locks rule out two writers assigning one sequence or inserting one
        // row; should a writer that does not take them do it anyway, going again gives
        // the loser a proper Conflict.
        || (*code == SqlState::UNIQUE_VIOLATION
            && matches!(e.as_db_error().and_then(|d| d.constraint()),
                Some("events_kind_object_id_sequence_key" | "objects_pkey"))));
    if retry { Failure::Retry(pg_err(e)) } else { Failure::Fail(pg_err(e)) }
}

/// An error in answer to the COMMIT. The server refusing it (an `ERROR`, such as a
/// serialization failure) rolled the transaction back, as for any statement. Anything else
/// leaves the outcome unknown: the connection broke after the COMMIT went out, or the server
/// ended the session (a `FATAL`, which may follow a commit already made, as when a shutdown
/// cancels the wait for a synchronous standby). That is `Unavailable`, never a clean failure,
/// and never retried here: the retry would find its own write and answer a conflict. The
/// client that retries after `Unavailable` is told the same by the version it sends.
fn commit_err(e: tokio_postgres::Error) -> Failure {
    let refused = e.as_db_error().is_some_and(|db| db.parsed_severity() == Some(Severity::Error));
    if refused {
        return append_err(e);
    }
    Failure::Fail(StoreError::Unavailable(format!(
        "the connection ended while committing, so the write may or may not have been applied: {}",
        describe(&e)
    )))
}

async fn append_with_retries(pool: &Pool, batch: &Batch) -> StoreResult<Vec<Committed>> {
    let mut attempt = 1;
    loop {
        let mut client = pool.get().await.map_err(pool_err)?;
        let Ok(answer) = tokio::time::timeout(ANSWER_TIMEOUT, append_once(&mut client, batch)).await else {
            // Perhaps after the commit was sent: the write may or may not have landed.
            return Err(silent(client, "the write may or may not have been applied"));
        };
        match answer {
            Ok(committed) => return Ok(committed),
            Err(Failure::Fail(e)) => return Err(e),
            Err(Failure::Retry(e)) if attempt >= APPEND_ATTEMPTS => {
                return Err(StoreError::Unavailable(format!("the write kept conflicting ({attempt} attempts): {e}")));
            }
            Err(Failure::Retry(e)) => {
                tracing::debug!(attempt, error = %e, "append conflicted with another transaction; retrying");
                drop(client);
                tokio::time::sleep(Duration::from_millis(2 << attempt)).await;
                attempt += 1;
            }
        }
    }
}

/// One object's row (the first seven columns, then the latest event's sequence and time),
/// whether or not the row exists.
const LOAD: &str = "SELECT o.owner, o.parent, o.name, o.state::text, o.sequence, o.created_at, o.updated_at, \
                           l.sequence, l.created_at \
                    FROM (SELECT 1) AS one \
                    LEFT JOIN objects AS o ON o.kind = $1 AND o.id = $2 \
                    LEFT JOIN LATERAL (SELECT e.sequence, e.created_at FROM events AS e \
                                       WHERE e.kind = $1 AND e.object_id = $2 \
                                       ORDER BY e.sequence DESC LIMIT 1) AS l ON true";

pub(crate) const INSERT_EVENT: &str = "INSERT INTO events (kind, object_id, sequence, event_type, payload, actor, \
     owner, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING position, xid::text";

pub(crate) const UPSERT_OBJECT: &str = "INSERT INTO objects (kind, id, owner, parent, name, state, sequence, \
     created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6::text::jsonb, $7, $8, $9) \
     ON CONFLICT (kind, id) DO UPDATE SET owner = excluded.owner, parent = excluded.parent, \
     name = excluded.name, state = excluded.state, sequence = excluded.sequence, \
     updated_at = excluded.updated_at";

/// The transaction's time: the database's clock, never before the newest event.
const CLOCK: &str = "SELECT GREATEST((extract(epoch FROM clock_timestamp()) * 1000000)::int8, \
     COALESCE((SELECT created_at FROM events ORDER BY position DESC LIMIT 1), 0))";

/// Makes `($1, $2)` (kinds and ids) the references of `($3, $4)`: the ones dropped go, the
/// new ones come, the ones kept stay.
const REPLACE_REFS: &str = "WITH new (kind, id) AS (\
         SELECT kind COLLATE \"C\", id COLLATE \"C\" FROM unnest($1::text[], $2::text[]) AS t (kind, id)), \
     gone AS (DELETE FROM refs AS r WHERE r.from_kind = $3 AND r.from_id = $4 \
         AND NOT EXISTS (SELECT 1 FROM new WHERE new.kind = r.to_kind AND new.id = r.to_id)) \
     INSERT INTO refs (to_kind, to_id, from_kind, from_id) SELECT kind, id, $3, $4 FROM new ON CONFLICT DO NOTHING";

/// Deletes `($1, $2)` and its references, and answers the objects that still reference it
/// (up to `$3`): earlier statements of the transaction (a cascade's) are visible to it, the
/// deletes of its own statement are not, so it leaves out the object's own references.
const DELETE_OBJECT: &str = "WITH gone_refs AS (DELETE FROM refs WHERE from_kind = $1 AND from_id = $2), \
     gone AS (DELETE FROM objects WHERE kind = $1 AND id = $2) \
     SELECT from_kind, from_id FROM refs WHERE to_kind = $1 AND to_id = $2 \
     AND NOT (from_kind = $1 AND from_id = $2) ORDER BY from_kind, from_id LIMIT $3";

/// One write of a request, checked and ready to send.
struct Ready<'a> {
    write: &'a Append,
    step: Step<'a>,
    sequence_sql: i64,
    /// The time of its event.
    at: Micros,
}

/// What one pipelined statement answered.
enum Sent<'a> {
    Event(Result<Row, tokio_postgres::Error>),
    /// The object's row, and its name (to tell a taken name from other failures).
    Object(Result<u64, tokio_postgres::Error>, Option<&'a String>),
    Done(Result<u64, tokio_postgres::Error>),
    /// The objects still referencing a deleted one.
    Removed(Result<Vec<Row>, tokio_postgres::Error>),
}

/// A row of `LOAD`: the object's head, and the time of its latest event.
fn head_from_row(kind: &str, id: &str, row: &Row) -> StoreResult<(Head, Micros)> {
    let object = match get::<Option<i64>>(row, 4)? {
        Some(_) => Some(object_from_row(kind, id, row)?),
        None => None,
    };
    let sequence = get::<Option<i64>>(row, 7)?.map(to_u64).transpose()?.unwrap_or(0);
    Ok((Head { object, sequence }, get::<Option<i64>>(row, 8)?.unwrap_or(0)))
}

/// One transaction (READ COMMITTED): lock the objects, read them, check the guards and then
/// every expectation as the earlier writes of the request leave the objects, write, commit.
/// Dropping the transaction on an error rolls it back.
///
/// Statements are pipelined: the locks, the reads and the clock go in one round trip, and
/// every write of the request in a second one (the server runs them in the order sent, so
/// each sees the earlier ones); then the commit. A write whose rows say it must fail (a name
/// taken, a deleted object still referenced) fails the whole request before the commit.
async fn append_once(client: &mut deadpool_postgres::Object, batch: &Batch) -> Result<Vec<Committed>, Failure> {
    let tx = client.transaction().await.map_err(append_err)?;
    let (lock, load, clock, insert_event, upsert_object, replace_refs, delete_object) = tokio::try_join!(
        tx.prepare_cached(
            "SELECT CASE WHEN written THEN pg_advisory_xact_lock(k) ELSE pg_advisory_xact_lock_shared(k) END \
             FROM unnest($1::int8[], $2::bool[]) AS l (k, written)"
        ),
        tx.prepare_cached(LOAD),
        tx.prepare_cached(CLOCK),
        tx.prepare_cached(INSERT_EVENT),
        tx.prepare_cached(UPSERT_OBJECT),
        tx.prepare_cached(REPLACE_REFS),
        tx.prepare_cached(DELETE_OBJECT),
    )
    .map_err(append_err)?;

    // One global order (the keys sorted) so that two requests never hold one lock each
    // while waiting for the other's. Advisory locks cover objects that have no row yet,
    // which a row lock (SELECT ... FOR UPDATE) cannot. What a request writes it locks
    // exclusively, what it only guards shared: guards of one object do not wait for each
    // other, and a write or delete of it waits for them.
    let mut targets: Vec<(&str, &str)> = Vec::new();
    let mut locks: Vec<(i64, bool)> = Vec::new();
    let writes = batch.writes.iter().map(|w| ((w.kind.as_str(), w.id.as_str()), true));
    let guards = batch.guards.iter().map(|g| ((g.kind.as_str(), g.id.as_str()), false));
    for (key, written) in writes.chain(guards) {
        if !targets.contains(&key) {
            targets.push(key);
        }
        locks.push((lock_key(key.0, key.1), written));
    }
    // Per key, a write sorts before a guard: the lock kept is exclusive if either writes.
    locks.sort_by_key(|&(key, written)| (key, !written));
    locks.dedup_by_key(|&mut (key, _)| key);
    let (keys, written): (Vec<i64>, Vec<bool>) = locks.into_iter().unzip();
    // Read under the locks: the server runs the reads after the lock is granted, and each
    // sees every commit made before it started, including the previous lock holder's.
    let lock_params: [&(dyn ToSql + Sync); 2] = [&keys, &written];
    let load_params: Vec<[&(dyn ToSql + Sync); 2]> =
        targets.iter().map(|(kind, id)| [kind as &(dyn ToSql + Sync), id as &(dyn ToSql + Sync)]).collect();
    let (_, _, rows, clock_row) = tokio::try_join!(
        tx.batch_execute(IDLE_IN_WRITE),
        tx.execute(&lock, &lock_params),
        futures_util::future::try_join_all(load_params.iter().map(|params| tx.query_one(&load, params))),
        tx.query_one(&clock, &[]),
    )
    .map_err(append_err)?;
    let mut heads: HashMap<(&str, &str), Head> = HashMap::with_capacity(targets.len());
    let mut latest: Micros = 0;
    for (key, row) in targets.iter().zip(&rows) {
        let (head, last_at) = head_from_row(key.0, key.1, row)?;
        latest = latest.max(last_at);
        heads.insert(*key, head);
    }
    for guard in &batch.guards {
        let head = heads.get(&(guard.kind.as_str(), guard.id.as_str()));
        guard.check(head.and_then(|h| h.object.as_ref()).map(|o| o.sequence))?;
    }
    // The transaction's time, from the database's clock (the one clock every replica
    // shares), never before the newest event of the log or of an object written here: per
    // object and for sequential writes, time does not go back. Each event of the request is
    // a microsecond after the one before it, so objects made in one write list in the order
    // they were made.
    let now: Micros = get::<i64>(&clock_row, 0)?.max(latest);

    // Every expectation is checked against the objects as the earlier writes leave them,
    // before anything is sent.
    let mut ready = Vec::with_capacity(batch.writes.len());
    for (write, at) in batch.writes.iter().zip(now..) {
        let head = heads
            .get_mut(&(write.kind.as_str(), write.id.as_str()))
            .ok_or_else(|| StoreError::Internal("an object of the request was not loaded".into()))?;
        let step = write.step(head, at)?;
        ready.push(Ready { write, sequence_sql: to_i64(step.sequence)?, step, at });
    }

    let mut sent: Vec<Pin<Box<dyn Future<Output = Sent<'_>> + Send + '_>>> = Vec::new();
    let mut counts = Vec::with_capacity(ready.len());
    for Ready { write, step, sequence_sql, at } in &ready {
        let before = sent.len();
        let event: Vec<&(dyn ToSql + Sync)> = vec![
            &write.kind,
            &write.id,
            sequence_sql,
            &write.event_type,
            &write.payload,
            &batch.actor,
            &step.owner,
            at,
        ];
        let insert_event = &insert_event;
        let tx = &tx;
        sent.push(Box::pin(async move { Sent::Event(tx.query_one(insert_event, &event).await) }));
        match &write.change {
            Change::Put { owner, parent, name, state, .. } => {
                let row: Vec<&(dyn ToSql + Sync)> =
                    vec![&write.kind, &write.id, owner, parent, name, state, sequence_sql, &step.created_at, at];
                let upsert_object = &upsert_object;
                sent.push(Box::pin(async move { Sent::Object(tx.execute(upsert_object, &row).await, name.as_ref()) }));
                if let Some(refs) = step.refs {
                    let kinds: Vec<&str> = refs.iter().map(|r| r.kind.as_str()).collect();
                    let ids: Vec<&str> = refs.iter().map(|r| r.id.as_str()).collect();
                    let replace_refs = &replace_refs;
                    sent.push(Box::pin(async move {
                        Sent::Done(tx.execute(replace_refs, &[&kinds, &ids, &write.kind, &write.id]).await)
                    }));
                }
            }
            Change::Delete => {
                let delete_object = &delete_object;
                sent.push(Box::pin(async move {
                    Sent::Removed(tx.query(delete_object, &[&write.kind, &write.id, &REFERRERS_NAMED]).await)
                }));
            }
        }
        counts.push(sent.len() - before);
    }
    // Polled together, so every statement goes out before the first answer is read.
    let mut answers = futures_util::future::join_all(sent).await.into_iter();

    let mut committed = Vec::with_capacity(ready.len());
    for (Ready { write, step, at, .. }, count) in ready.iter().zip(counts) {
        let mut cursor = None;
        for answer in answers.by_ref().take(count) {
            match answer {
                Sent::Event(row) => {
                    let row = row.map_err(append_err)?;
                    cursor = Some(LogCursor { epoch: xid_column(&row, 1)?, position: to_u64(get::<i64>(&row, 0)?)? });
                }
                Sent::Object(Err(e), Some(name)) if is_name_conflict(&e) => {
                    return Err(Failure::Fail(StoreError::NameTaken { kind: write.kind.clone(), name: name.clone() }));
                }
                Sent::Object(result, _) | Sent::Done(result) => {
                    result.map_err(append_err)?;
                }
                Sent::Removed(rows) => {
                    let rows = rows.map_err(append_err)?;
                    if !rows.is_empty() {
                        let by = rows
                            .iter()
                            .map(|row| Ok(ObjectKey { kind: get(row, 0)?, id: get(row, 1)? }))
                            .collect::<StoreResult<Vec<_>>>()?;
                        let (kind, id) = (write.kind.clone(), write.id.clone());
                        return Err(Failure::Fail(StoreError::Referenced { kind, id, by }));
                    }
                }
            }
        }
        let cursor = cursor.ok_or_else(|| StoreError::Internal("a write answered no event".into()))?;
        let event = write.event(&batch.actor, &step.owner, cursor.position, step.sequence, *at);
        committed.push(Committed { cursor, event });
    }

    tx.commit().await.map_err(commit_err)?;
    Ok(committed)
}

/// Sends `NOTIFY iamd_log` after appends commit, on its own, outside the write transaction:
/// PostgreSQL serialises the commits of notifying transactions, and a NOTIFY inside each
/// write cost a quarter of the write throughput. Requests that arrive while one NOTIFY is in
/// flight are answered by the next one, so there is at most one a round trip.
async fn announce(pool: Pool, me: String, requested: Arc<Notify>, mut stop: watch::Receiver<bool>) {
    let statement = format!("NOTIFY iamd_log, '{me}'");
    loop {
        tokio::select! {
            () = requested.notified() => {}
            _ = stop.changed() => return,
        }
        let sent = async {
            let client = pool.get().await.map_err(pool_err)?;
            let answer = tokio::time::timeout(ANSWER_TIMEOUT, client.batch_execute(&statement)).await;
            answer.map_err(|_| silent(client, "announcing a commit"))?.map_err(pg_err)
        };
        if let Err(e) = sent.await {
            // The other replicas' polling still finds the write.
            tracing::debug!(error = %e, "could not announce a commit");
        }
    }
}

/// Keeps one connection that LISTENs on `iamd_log` (every replica's [`announce`] notifies it
/// after its appends commit) and counts the notifications in `grew`, so followers read the
/// log when it grows instead of at their next poll. A lost connection is made again after a
/// pause; notifications missed meanwhile are caught by the followers' polling, and a
/// reconnect counts as growth so they look at once.
async fn listen(config: tokio_postgres::Config, me: String, grew: watch::Sender<u64>, mut stop: watch::Receiver<bool>) {
    loop {
        let session = async {
            // Bounded like the pool's: the socket connect has its own timeout, the startup
            // exchange that follows does not, and a silent server would hold it forever.
            let Ok(connected) = tokio::time::timeout(CONNECT_TIMEOUT * 2, config.connect(NoTls)).await else {
                tracing::debug!("the log listener timed out connecting");
                return Ok(());
            };
            let (client, mut connection) = connected?;
            // The connection must be polled for LISTEN to be answered, so both run together.
            let notifications = async {
                while let Some(message) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                    if let tokio_postgres::AsyncMessage::Notification(note) = message?
                        && note.payload() != me
                    {
                        grew.send_modify(|count| *count += 1);
                    }
                }
                Ok::<(), tokio_postgres::Error>(())
            };
            let subscribe = async {
                client.batch_execute("LISTEN iamd_log").await?;
                grew.send_modify(|count| *count += 1);
                std::future::pending::<Result<(), tokio_postgres::Error>>().await
            };
            // Whichever ends first ends the session: a lost connection, or a failed LISTEN.
            tokio::select! {
                result = notifications => result,
                result = subscribe => result,
            }
        };
        tokio::select! {
            result = session => {
                if let Err(e) = result {
                    tracing::debug!(error = %describe(&e), "the log listener lost its connection");
                }
            }
            _ = stop.changed() => return,
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.changed() => return,
        }
    }
}

/// The advisory lock key of one object: 64 bits of SHA-256 over kind and id. A collision
/// only makes two objects' writers take turns.
fn lock_key(kind: &str, id: &str) -> i64 {
    let digest = Sha256::new().chain_update(kind).chain_update([0u8]).chain_update(id).finalize();
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(digest.get(..8).unwrap_or(&[0; 8]));
    i64::from_be_bytes(bytes)
}

fn is_name_conflict(e: &tokio_postgres::Error) -> bool {
    e.as_db_error().is_some_and(|d| *d.code() == SqlState::UNIQUE_VIOLATION && d.constraint() == Some("objects_name"))
}

// ---------------------------------------------------------------------------------------
// Reads

// The xid goes out as text under another name: `ORDER BY xid` must sort by the xid8 column,
// and an output column called `xid` would take its place there (and sort as text).
const LOG_COLUMNS: &str =
    "position, kind, object_id, sequence, event_type, payload, actor, owner, created_at, xid::text AS epoch";

/// The columns `object_from_row` reads, in its order.
const OBJECT_COLUMNS: &str = "owner, parent, name, state::text, sequence, created_at, updated_at";

/// A row whose first seven columns are `OBJECT_COLUMNS`.
fn object_from_row(kind: &str, id: &str, row: &Row) -> StoreResult<StoredObject> {
    Ok(StoredObject {
        kind: kind.to_owned(),
        id: id.to_owned(),
        owner: get(row, 0)?,
        parent: get(row, 1)?,
        name: get(row, 2)?,
        state: get(row, 3)?,
        sequence: to_u64(get(row, 4)?)?,
        created_at: get(row, 5)?,
        updated_at: get(row, 6)?,
    })
}

/// A row of `LOG_COLUMNS`.
fn committed_from_row(row: &Row) -> StoreResult<Committed> {
    let event = Event {
        position: to_u64(get(row, 0)?)?,
        kind: get(row, 1)?,
        object_id: get(row, 2)?,
        sequence: to_u64(get(row, 3)?)?,
        event_type: get(row, 4)?,
        payload: get(row, 5)?,
        actor: get(row, 6)?,
        owner: get(row, 7)?,
        created_at: get(row, 8)?,
    };
    Ok(Committed { cursor: LogCursor { epoch: xid_column(row, 9)?, position: event.position }, event })
}

fn get<'a, T: tokio_postgres::types::FromSql<'a>>(row: &'a Row, idx: usize) -> StoreResult<T> {
    row.try_get(idx).map_err(|e| StoreError::Internal(format!("reading column {idx}: {}", describe(&e))))
}

/// An `xid8` selected as text: there is no binary mapping for it in tokio-postgres.
fn xid_column(row: &Row, idx: usize) -> StoreResult<u64> {
    let text: &str = get(row, idx)?;
    text.parse().map_err(|e| StoreError::Internal(format!("transaction id `{text}`: {e}")))
}

fn to_u64(value: i64) -> StoreResult<u64> {
    u64::try_from(value).map_err(|_| StoreError::Internal(format!("negative sequence or position {value}")))
}

fn to_i64(value: u64) -> StoreResult<i64> {
    i64::try_from(value).map_err(|_| StoreError::Internal(format!("{value} exceeds PostgreSQL's BIGINT")))
}

// ---------------------------------------------------------------------------------------
// Opening and schema

/// Every schema this binary knows, in version order. Never edit an applied migration; add
/// the next one.
const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, name: "initial", sql: include_str!("migrations/postgres/0001_initial.sql") },
    Migration {
        version: 2,
        name: "changes_and_refs",
        sql: include_str!("migrations/postgres/0002_changes_and_refs.sql"),
    },
];

/// The newest schema version this binary knows.
pub const LATEST_VERSION: i64 = MIGRATIONS.len() as i64;

/// The migration whose transaction also seeds the instance row.
const INSTANCE_MIGRATION: i64 = 1;

/// Applies pending migrations up to `target` in one transaction, under an advisory lock, and
/// refuses a schema newer than this binary's. A replica that starts while another migrates
/// waits for the lock, then finds the work done: the instance is seeded exactly once.
async fn migrate(client: &mut tokio_postgres::Client, target: i64) -> StoreResult<()> {
    let tx = client.transaction().await.map_err(pg_err)?;
    tx.execute("SELECT pg_advisory_xact_lock($1, $2)", &[&MIGRATION_LOCK.0, &MIGRATION_LOCK.1])
        .await
        .map_err(pg_err)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    BIGINT PRIMARY KEY,
             name       TEXT   NOT NULL,
             applied_at BIGINT NOT NULL
         )",
    )
    .await
    .map_err(pg_err)?;
    let current: i64 = get(
        &tx.query_one("SELECT COALESCE(MAX(version), 0)::int8 FROM schema_migrations", &[]).await.map_err(pg_err)?,
        0,
    )?;
    if current > LATEST_VERSION {
        return Err(StoreError::Unavailable(format!(
            "database schema version {current} is newer than this binary knows (up to {LATEST_VERSION}); \
             run a newer iamd or restore a backup made for this version"
        )));
    }
    for migration in MIGRATIONS.iter().filter(|m| m.version > current && m.version <= target) {
        tx.batch_execute(migration.sql).await.map_err(|e| {
            StoreError::Internal(format!(
                "migration {} ({}) failed: {}",
                migration.version,
                migration.name,
                describe(&e)
            ))
        })?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) \
             VALUES ($1, $2, (extract(epoch FROM clock_timestamp()) * 1000000)::int8)",
            &[&migration.version, &migration.name],
        )
        .await
        .map_err(pg_err)?;
        if migration.version == INSTANCE_MIGRATION {
            seed_instance(&tx).await?;
        }
        tracing::info!(version = migration.version, name = migration.name, "applying store migration");
    }
    tx.commit().await.map_err(pg_err)
}

async fn seed_instance(tx: &tokio_postgres::Transaction<'_>) -> StoreResult<()> {
    let id = Uuid::new_v4().to_string();
    tx.execute(
        "INSERT INTO instance (singleton, id, signing_key, created_at) \
         VALUES (1, $1, $2, (extract(epoch FROM clock_timestamp()) * 1000000)::int8)",
        &[&id, &crate::store::new_signing_key()?],
    )
    .await
    .map_err(pg_err)?;
    tracing::info!(instance = %id, "created store instance");
    Ok(())
}

async fn load_instance(client: &tokio_postgres::Client) -> StoreResult<Instance> {
    let row =
        client.query_opt("SELECT id, signing_key FROM instance WHERE singleton = 1", &[]).await.map_err(pg_err)?;
    let row = row.ok_or_else(|| StoreError::Internal("the instance row is missing".into()))?;
    Ok(Instance { id: get(&row, 0)?, signing_key: get(&row, 1)? })
}

// ---------------------------------------------------------------------------------------
// Errors

fn closed() -> StoreError {
    StoreError::Unavailable("the store is closed".into())
}

/// A call whose connection did not answer within [`ANSWER_TIMEOUT`]: the connection is
/// closed rather than handed back to the pool, where the next call would wait on it too.
fn silent(client: deadpool_postgres::Object, doing: &str) -> StoreError {
    drop(deadpool_postgres::Object::take(client));
    StoreError::Unavailable(format!("the database did not answer within {ANSWER_TIMEOUT:?} ({doing})"))
}

fn pool_err(e: PoolError) -> StoreError {
    match e {
        PoolError::Backend(e) => pg_err(e),
        PoolError::Closed => closed(),
        PoolError::Timeout(deadpool_postgres::TimeoutType::Wait) => {
            StoreError::Unavailable(format!("no database connection came free within {WAIT_TIMEOUT:?}"))
        }
        PoolError::Timeout(_) => StoreError::Unavailable("timed out connecting to the database".into()),
        other => StoreError::Internal(format!("connection pool: {other}")),
    }
}

/// A full disk is `Full`. Connection, other resource, operator and authentication failures
/// (and a missing database) are `Unavailable`; so is any failure without a server error (I/O,
/// a closed connection, a timeout), and the server's end of a session left idle inside a
/// write (`IDLE_IN_WRITE`). Anything else the server reports is `Internal`.
fn pg_err(e: tokio_postgres::Error) -> StoreError {
    let message = describe(&e);
    let Some(code) = e.code() else {
        return StoreError::Unavailable(message);
    };
    if *code == SqlState::DISK_FULL {
        return StoreError::Full(message);
    }
    let class = code.code().get(..2).unwrap_or_default();
    let unavailable = matches!(class, "08" | "28" | "53" | "57" | "58" | "3D")
        || *code == SqlState::T_R_DEADLOCK_DETECTED
        || *code == SqlState::T_R_SERIALIZATION_FAILURE
        || *code == SqlState::IDLE_IN_TRANSACTION_SESSION_TIMEOUT;
    if unavailable { StoreError::Unavailable(message) } else { StoreError::Internal(message) }
}

/// The error with its causes; a server error as its message and SQLSTATE.
fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut text = format!("{} (SQLSTATE {})", db.message(), db.code().code());
        if let Some(detail) = db.detail() {
            text.push_str(&format!("; {detail}"));
        }
        return text;
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

// ---------------------------------------------------------------------------------------
// Test support: scratch schemas on the test server

/// A scratch schema on the server named by `IAMD_TEST_DATABASE_URL`, for one test: the
/// store's connections put it first on their `search_path`, so each test has its own tables.
#[cfg(test)]
pub(crate) mod testing {
    use std::io::Write;

    use super::*;

    pub(crate) const URL_VAR: &str = "IAMD_TEST_DATABASE_URL";

    /// The test server's configuration, or `None` (and a note on stderr, past the test
    /// harness's capture) when the variable is unset.
    pub(crate) fn base_config(what: &str) -> Option<tokio_postgres::Config> {
        match std::env::var(URL_VAR) {
            Ok(url) => Some(url.parse().expect("IAMD_TEST_DATABASE_URL is a valid PostgreSQL URL")),
            Err(_) => {
                // CI provides the server: there, a skip would hide that nothing ran.
                assert!(std::env::var_os("CI").is_none(), "{URL_VAR} is unset in CI");
                let _ = writeln!(std::io::stderr(), "postgres {what} skipped: {URL_VAR} is unset");
                None
            }
        }
    }

    /// A raw connection, outside any pool.
    pub(crate) async fn connect(config: &tokio_postgres::Config) -> tokio_postgres::Client {
        let (client, connection) = config.connect(NoTls).await.expect("the test server answers");
        tokio::spawn(async move {
            let _ = connection.await;
        });
        client
    }

    pub(crate) struct TestSchema {
        base: tokio_postgres::Config,
        pub(crate) name: String,
    }

    impl TestSchema {
        pub(crate) async fn create(what: &str) -> Option<TestSchema> {
            let base = base_config(what)?;
            let name = format!("iamd_test_{}", Uuid::new_v4().simple());
            connect(&base).await.batch_execute(&format!("CREATE SCHEMA {name}")).await.expect("CREATE SCHEMA");
            Some(TestSchema { base, name })
        }

        /// The server's configuration with this schema first on the search path.
        pub(crate) fn config(&self) -> tokio_postgres::Config {
            let mut config = self.base.clone();
            config.options(format!("-c search_path={}", self.name));
            config
        }

        pub(crate) async fn client(&self) -> tokio_postgres::Client {
            connect(&self.config()).await
        }

        pub(crate) async fn drop_schema(&self) {
            let dropped = connect(&self.base).await.batch_execute(&format!("DROP SCHEMA {} CASCADE", self.name)).await;
            if let Err(e) = dropped {
                let _ = writeln!(std::io::stderr(), "could not drop test schema {}: {e}", self.name);
            }
        }
    }

    /// Creates the schema at `version`, as the binary of that version left it.
    pub(crate) async fn create_at_version(config: &tokio_postgres::Config, version: i64) {
        migrate(&mut connect(config).await, version).await.expect("migrations apply");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing, reason = "a failing test panics")]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::testing::TestSchema;
    use super::*;
    use crate::store::Expect;
    use crate::store::fixtures::{batch, create, guard, put, settled};

    #[tokio::test]
    async fn another_stores_commit_signals_that_the_log_grew() {
        let Some(schema) = TestSchema::create("log signal test").await else {
            return;
        };
        let reader = PostgresStore::connect_with(schema.config()).await.unwrap();
        let writer = PostgresStore::connect_with(schema.config()).await.unwrap();
        let mut grew = reader.log_grew().unwrap();
        // The listener counts its own LISTEN as growth: from then on it hears every commit.
        tokio::time::timeout(Duration::from_secs(5), grew.wait_for(|count| *count >= 1)).await.unwrap().unwrap();
        let _ = grew.borrow_and_update();
        writer.append(batch(vec![create("org", "signalled", "", None)])).await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), grew.changed()).await.expect("no notification").unwrap();
        reader.close().await.unwrap();
        writer.close().await.unwrap();
    }

    /// The classic trap: a transaction takes a position, a later one takes a higher position
    /// and commits first. Delivering by position would hand out the higher one, move the
    /// reader past the lower one and skip it once its transaction commits.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_late_commit_with_a_lower_position_is_not_skipped() {
        let Some(schema) = TestSchema::create("late-commit test").await else {
            return;
        };
        let store = Arc::new(PostgresStore::connect_with(schema.config()).await.unwrap());
        let first = store.append(batch(vec![create("org", "before", "", None)])).await.unwrap();
        let start = settled(&*store, first[0].event.position).await;
        assert_eq!(store.read_log(None, start, 100).await.unwrap(), vec![]);

        // The slow writer: a transaction that appends and stays open.
        let mut raw = schema.client().await;
        let slow = raw.transaction().await.unwrap();
        let row = slow
            .query_one(
                "INSERT INTO events (kind, object_id, sequence, event_type, payload, actor, owner, created_at) \
                 VALUES ('org', 'slow', 1, 'org.added', '{}', 'system', 'org-1', 0) \
                 RETURNING position, xid::text",
                &[],
            )
            .await
            .unwrap();
        let slow_position = u64::try_from(row.get::<_, i64>(0)).unwrap();
        let slow_xid: u64 = row.get::<_, &str>(1).parse().unwrap();

        // The fast writer takes a higher position and commits first.
        let fast = store.append(batch(vec![create("org", "fast", "", None)])).await.unwrap();
        assert!(fast[0].event.position > slow_position);
        assert!(fast[0].cursor.epoch > slow_xid);
        // Readable by position now, so a position-ordered reader would deliver it and move
        // past `slow_position`. The watermark holds it back instead.
        assert!(store.head("org", "fast").await.unwrap().object.is_some());
        for _ in 0..5 {
            assert_eq!(store.read_log(None, start, 100).await.unwrap(), vec![]);
            assert_eq!(store.locate(fast[0].event.position).await.unwrap(), Located::Pending);
            assert_eq!(store.locate(slow_position).await.unwrap(), Located::Pending);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        slow.commit().await.unwrap();
        settled(&*store, fast[0].event.position).await;
        let delivered = store.read_log(None, start, 100).await.unwrap();
        let order: Vec<(u64, u64)> = delivered.iter().map(|c| (c.cursor.epoch, c.event.position)).collect();
        assert_eq!(order, vec![(slow_xid, slow_position), (fast[0].cursor.epoch, fast[0].event.position)]);
        assert_eq!(delivered[1], fast[0]);
        assert_eq!(store.locate(slow_position).await.unwrap(), Located::At(delivered[0].cursor));
        store.close().await.unwrap();
        schema.drop_schema().await;
    }

    /// Requests that only guard an object (every create in an organization guards it) take its
    /// lock shared, so they do not wait for each other; a write of the object takes it
    /// exclusively and waits for them, and they for it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn guards_of_one_object_share_its_lock_and_its_writes_wait_for_them() {
        let Some(schema) = TestSchema::create("shared guard lock test").await else {
            return;
        };
        let store = Arc::new(PostgresStore::connect_with(schema.config()).await.unwrap());
        store.append(batch(vec![create("org", "o1", "", None)])).await.unwrap();
        let guarded = |id: &str| Batch {
            guards: vec![guard("org", "o1", Expect::Exists)],
            ..batch(vec![create("user", id, "o1", None)])
        };
        let mut raw = schema.client().await;
        let pause = Duration::from_millis(300);

        // Another request guarding o1, held open with the lock it took.
        let other_guard = raw.transaction().await.unwrap();
        other_guard.execute("SELECT pg_advisory_xact_lock_shared($1)", &[&lock_key("org", "o1")]).await.unwrap();
        let answered = tokio::time::timeout(Duration::from_secs(5), store.append(guarded("u1"))).await;
        answered.expect("a guard waited for another guard of the same object").unwrap();
        let write = tokio::spawn({
            let store = Arc::clone(&store);
            async move { store.append(batch(vec![put("org", "o1", Expect::Sequence(1), "", None, json!(2))])).await }
        });
        tokio::time::sleep(pause).await;
        assert!(!write.is_finished(), "a write of the object did not wait for its guard");
        other_guard.commit().await.unwrap();
        assert_eq!(write.await.unwrap().unwrap()[0].event.sequence, 2);

        // Another request writing o1, held open with the lock it took.
        let other_write = raw.transaction().await.unwrap();
        other_write.execute("SELECT pg_advisory_xact_lock($1)", &[&lock_key("org", "o1")]).await.unwrap();
        let guarding = tokio::spawn({
            let store = Arc::clone(&store);
            async move { store.append(guarded("u2")).await }
        });
        tokio::time::sleep(pause).await;
        assert!(!guarding.is_finished(), "a guard did not wait for a write of its object");
        other_write.commit().await.unwrap();
        guarding.await.unwrap().unwrap();
        store.close().await.unwrap();
        schema.drop_schema().await;
    }

    /// A rolled-back transaction leaves a hole in the positions and nothing else.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_rolled_back_transaction_holds_the_log_only_while_it_runs() {
        let Some(schema) = TestSchema::create("rollback test").await else {
            return;
        };
        let store = PostgresStore::connect_with(schema.config()).await.unwrap();
        let mut raw = schema.client().await;
        let doomed = raw.transaction().await.unwrap();
        doomed
            .execute(
                "INSERT INTO events (kind, object_id, sequence, event_type, payload, actor, owner, created_at) \
                 VALUES ('org', 'doomed', 1, 'org.added', '{}', 'system', 'org-1', 0)",
                &[],
            )
            .await
            .unwrap();
        let after = store.append(batch(vec![create("org", "after", "", None)])).await.unwrap();
        assert_eq!(store.locate(after[0].event.position).await.unwrap(), Located::Pending);
        doomed.rollback().await.unwrap();
        let cursor = settled(&store, after[0].event.position).await;
        let log = store.read_log(None, LogCursor::default(), 100).await.unwrap();
        assert_eq!(log.iter().map(|c| c.cursor).collect::<Vec<_>>(), vec![cursor]);
        schema.drop_schema().await;
    }

    /// Cursor order is numeric in the xid, across a change in digit count too (text order
    /// would put 10 before 9).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_log_is_in_numeric_transaction_id_order() {
        let Some(schema) = TestSchema::create("xid order test").await else {
            return;
        };
        let store = PostgresStore::connect_with(schema.config()).await.unwrap();
        // Transaction ids long finished, given by hand: the later position has the older xid.
        schema
            .client()
            .await
            .batch_execute(
                "INSERT INTO events (xid, kind, object_id, sequence, event_type, payload, actor, owner, created_at) VALUES \
                 ('10', 'org', 'a', 1, 'org.added', '{}', 'system', 'o', 0); \
                 INSERT INTO events (xid, kind, object_id, sequence, event_type, payload, actor, owner, created_at) VALUES \
                 ('9', 'org', 'b', 1, 'org.added', '{}', 'system', 'o', 0);",
            )
            .await
            .unwrap();
        let log = store.read_log(None, LogCursor::default(), 10).await.unwrap();
        let cursors: Vec<(u64, u64)> = log.iter().map(|c| (c.cursor.epoch, c.cursor.position)).collect();
        assert_eq!(cursors, vec![(9, 2), (10, 1)]);
        let after_first = store.read_log(None, log[0].cursor, 10).await.unwrap();
        assert_eq!(after_first.iter().map(|c| c.cursor).collect::<Vec<_>>(), vec![log[1].cursor]);
        assert_eq!(store.locate(2).await.unwrap(), Located::At(log[0].cursor));
        schema.drop_schema().await;
    }

    /// A proxy to the test server for one store: it passes every connection through until
    /// it is armed; then the first connection to send COMMIT has it delivered, the server's
    /// answer swallowed, and is closed. The write committed and its writer cannot know.
    async fn commit_answer_lost(upstream: std::net::SocketAddr) -> (std::net::SocketAddr, Arc<AtomicBool>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let armed = Arc::new(AtomicBool::new(false));
        let armed_here = armed.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let mut server = tokio::net::TcpStream::connect(upstream).await.unwrap();
                let armed = armed_here.clone();
                tokio::spawn(async move {
                    let (mut up, mut down) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
                    let mut sent = Vec::new();
                    loop {
                        tokio::select! {
                            n = client.read(&mut up) => {
                                let Ok(n @ 1..) = n else { return };
                                server.write_all(&up[..n]).await.unwrap();
                                sent.extend_from_slice(&up[..n]);
                                let commit = sent.windows(7).any(|w| w == b"COMMIT\0");
                                sent.drain(..sent.len().saturating_sub(6));
                                if commit && armed.swap(false, Ordering::AcqRel) {
                                    break;
                                }
                            }
                            n = server.read(&mut down) => {
                                let Ok(n @ 1..) = n else { return };
                                if client.write_all(&down[..n]).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                    // The server's answer, read to its end (CommandComplete "COMMIT"), never passed on.
                    let mut answer = Vec::new();
                    while !answer.windows(7).any(|w| w == b"COMMIT\0") {
                        let Ok(n @ 1..) = server.read(&mut down).await else { break };
                        answer.extend_from_slice(&down[..n]);
                    }
                });
            }
        });
        (addr, armed)
    }

    /// The ambiguous commit: the COMMIT reached the server, which committed, and its answer
    /// never came back. The append is `Unavailable` (the client retries), not a clean
    /// failure; the write is in the store; and the retry is refused by its own write's
    /// version instead of writing it twice.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_commit_whose_answer_is_lost_is_unavailable_and_its_retry_conflicts() {
        let Some(schema) = TestSchema::create("lost commit answer test").await else {
            return;
        };
        let direct = schema.config();
        let host = match direct.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
            other => panic!("the test server must be reached over TCP, not {other:?}"),
        };
        let port = direct.get_ports().first().copied().unwrap_or(5432);
        let upstream = tokio::net::lookup_host((host.as_str(), port)).await.unwrap().next().unwrap();
        let (proxy, armed) = commit_answer_lost(upstream).await;
        let mut through = tokio_postgres::Config::new();
        through.host(proxy.ip().to_string()).port(proxy.port());
        through.user(direct.get_user().unwrap_or("postgres")).dbname(direct.get_dbname().unwrap_or("postgres"));
        through.options(direct.get_options().unwrap_or_default());
        if let Some(password) = direct.get_password() {
            through.password(password);
        }
        let store = PostgresStore::connect_with(through).await.unwrap();

        armed.store(true, Ordering::Release);
        let lost = store.append(batch(vec![create("org", "ambiguous", "", None)])).await.unwrap_err();
        let StoreError::Unavailable(message) = &lost else { panic!("expected Unavailable, got {lost:?}") };
        assert!(message.contains("may or may not have been applied"), "{message}");
        assert!(!armed.load(Ordering::Acquire), "the proxy saw no COMMIT");

        let reader = PostgresStore::connect_with(direct).await.unwrap();
        let landed = reader.head("org", "ambiguous").await.unwrap();
        assert_eq!(landed.object.map(|o| o.sequence), Some(1), "the commit did not land");
        let retried = store.append(batch(vec![create("org", "ambiguous", "", None)])).await.unwrap_err();
        assert!(matches!(retried, StoreError::Conflict { actual: Some(1), .. }), "{retried:?}");
        // The log delivers only below the oldest open transaction on the server, which
        // another test's may hold a moment longer: once, when it does.
        let mut logged = 0;
        for _ in 0..100 {
            logged = reader.read_log(Some(("org", "ambiguous")), LogCursor::default(), 10).await.unwrap().len();
            if logged > 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(logged, 1);
        store.close().await.unwrap();
        reader.close().await.unwrap();
        schema.drop_schema().await;
    }

    #[tokio::test]
    async fn an_unreachable_server_is_unavailable_and_named_without_the_password() {
        // Port 1 on the loopback: nothing listens, the connection is refused at once.
        let err = PostgresStore::connect("postgres://iamd:s3cret@127.0.0.1:1/iamd").await.unwrap_err();
        let StoreError::Unavailable(message) = err else { panic!("expected Unavailable, got {err:?}") };
        assert!(message.contains("PostgreSQL at postgres://iamd@127.0.0.1:1/iamd"), "{message}");
        assert!(message.contains("error connecting to server"), "{message}");
        assert!(!message.contains("s3cret"), "{message}");
    }

    #[tokio::test]
    async fn an_invalid_url_is_unavailable_without_echoing_it() {
        let err = PostgresStore::connect("postgres://iamd:s3cret@127.0.0.1:notaport/iamd").await.unwrap_err();
        let StoreError::Unavailable(message) = err else { panic!("expected Unavailable, got {err:?}") };
        assert!(message.contains("the database URL is not valid"), "{message}");
        assert!(!message.contains("s3cret"), "{message}");
    }

    #[tokio::test]
    async fn a_missing_database_or_role_is_unavailable_with_the_cause() {
        let Some(base) = testing::base_config("startup error test") else {
            return;
        };
        let mut missing_db = base.clone();
        missing_db.dbname("iamd_no_such_database");
        let err = PostgresStore::connect_with(missing_db).await.unwrap_err();
        let StoreError::Unavailable(message) = err else { panic!("expected Unavailable, got {err:?}") };
        assert!(message.contains("/iamd_no_such_database"), "{message}");
        assert!(message.contains("database \"iamd_no_such_database\" does not exist"), "{message}");

        // The test server trusts every password, so an unknown role stands in for wrong
        // credentials: both are refused at authentication (SQLSTATE class 28).
        let mut bad_role = base.clone();
        bad_role.user("iamd_no_such_role").password("s3cret");
        let err = PostgresStore::connect_with(bad_role).await.unwrap_err();
        let StoreError::Unavailable(message) = err else { panic!("expected Unavailable, got {err:?}") };
        assert!(message.contains("iamd_no_such_role@"), "{message}");
        assert!(message.contains("SQLSTATE 28"), "{message}");
        assert!(!message.contains("s3cret"), "{message}");
    }

    #[test]
    fn targets_are_described_without_passwords() {
        let config: tokio_postgres::Config = "postgres://u:pw@db.example:6432/iam".parse().unwrap();
        assert_eq!(crate::config::database_target(&config), "postgres://u@db.example:6432/iam");
        let config: tokio_postgres::Config = "host=/run/postgresql user=me password=pw".parse().unwrap();
        assert_eq!(crate::config::database_target(&config), "postgres://me@/run/postgresql:5432/me");
    }

    #[test]
    fn lock_keys_separate_kind_from_id() {
        assert_ne!(lock_key("ab", "c"), lock_key("a", "bc"));
        assert_eq!(lock_key("org", "o1"), lock_key("org", "o1"));
    }

    #[test]
    fn migrations_are_numbered_from_one_without_gaps() {
        for (i, migration) in MIGRATIONS.iter().enumerate() {
            assert_eq!(migration.version, i64::try_from(i).unwrap() + 1, "{}", migration.name);
        }
        assert_eq!(LATEST_VERSION, 2);
    }
}
