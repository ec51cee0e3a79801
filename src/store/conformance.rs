//! The store contract, written once and run against every backend: SQLite always, PostgreSQL
//! when `IAMD_TEST_DATABASE_URL` names a server (each test in a scratch schema of its own;
//! without the variable each PostgreSQL test prints that it was skipped and passes, except
//! under CI, where it fails).
//!
//! Each behaviour is an `async fn(Arc<Harness>)`; [`conformance_suite!`] turns the list at
//! the bottom into one `#[tokio::test]` per backend and behaviour, named
//! `store::conformance::{sqlite,postgres}::<behaviour>`. A [`Backend`] is one empty database
//! of one kind plus the few raw operations the contract needs to look past the trait
//! (schema versions, statements the store must refuse, a database left by an older binary).
//! Backend-specific behaviour (SQLite's files and PRAGMAs, PostgreSQL's visibility watermark
//! and startup errors) is tested beside each backend.
//!
//! Run: `cargo test --lib store::conformance` (with `IAMD_TEST_DATABASE_URL` set for the
//! PostgreSQL half).

#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing, reason = "a failing test panics")]

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};
use tokio::sync::Barrier;
use tokio_postgres::types::ToSql;

use crate::store::fixtures::{batch, create, delete, guard, put, put_refs, settled, state};
use crate::store::postgres::testing::TestSchema;
use crate::store::postgres::{self as pg, PostgresStore};
use crate::store::sqlite::{self as lite, SqliteStore};
use crate::store::{
    Batch, Committed, Event, Expect, Located, LogCursor, Micros, ObjectKey, Store, StoreError, StoreResult,
    StoredObject,
};

// ---------------------------------------------------------------------------------------
// Harness

/// One database of one backend kind, empty until first opened.
#[async_trait]
pub(crate) trait Backend: Send + Sync {
    /// Opens the store on this database, creating and migrating the schema as needed. Each
    /// call opens the same database anew, as a restart or another replica would.
    async fn open(&self) -> StoreResult<Arc<dyn Store>>;
    /// Runs one statement outside the store: rows changed, or the database's message.
    async fn execute(&self, sql: &str) -> Result<u64, String>;
    /// The versions recorded in `schema_migrations`, in order.
    async fn versions(&self) -> Vec<i64>;
    /// The newest schema version this binary knows.
    fn latest_version(&self) -> i64;
    /// Creates the database at schema version 1 holding `events` and `objects`, the way a
    /// version-1 binary would have written them; answers the signing key it seeded.
    async fn create_at_first_version(&self, events: &[Event], objects: &[StoredObject]) -> Vec<u8>;
    /// Starts a transaction that appends `event` and puts `object` like a replica's write,
    /// and holds it open, on backends where a transaction can commit after a later one.
    async fn hold_open(&self, event: &Event, object: &StoredObject) -> Option<Box<dyn OpenWrite>>;
    /// The objects whose `refs` rows name `(kind, id)`, in key order, read past the store.
    async fn refs_to(&self, kind: &str, id: &str) -> Vec<ObjectKey>;
    async fn destroy(&self);
}

/// A write held open by [`Backend::hold_open`].
#[async_trait]
pub(crate) trait OpenWrite: Send {
    async fn commit(self: Box<Self>);
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    Sqlite,
    Postgres,
}

/// Makes fresh databases for one test and removes them afterwards.
pub(crate) struct Harness {
    target: Target,
    made: Mutex<Vec<Arc<dyn Backend>>>,
}

impl Harness {
    pub(crate) fn target(&self) -> Target {
        self.target
    }

    /// A fresh, empty database.
    pub(crate) async fn backend(&self) -> Arc<dyn Backend> {
        let backend: Arc<dyn Backend> = match self.target {
            Target::Sqlite => Arc::new(SqliteBackend { dir: tempfile::tempdir().unwrap() }),
            Target::Postgres => Arc::new(PostgresBackend {
                schema: TestSchema::create("conformance").await.expect("the harness checked the variable"),
            }),
        };
        self.made.lock().unwrap().push(Arc::clone(&backend));
        backend
    }

    /// A store on a fresh, empty database.
    pub(crate) async fn store(&self) -> Arc<dyn Store> {
        self.backend().await.open().await.unwrap()
    }
}

/// Runs one behaviour against one backend and removes its databases, pass or fail.
pub(crate) async fn run<F, Fut>(target: Target, name: &str, test: F)
where
    F: FnOnce(Arc<Harness>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    if let Target::Postgres = target
        && pg::testing::base_config(&format!("conformance `{name}`")).is_none()
    {
        return;
    }
    let harness = Arc::new(Harness { target, made: Mutex::new(Vec::new()) });
    let body = test(Arc::clone(&harness));
    let outcome = tokio::spawn(async move {
        if tokio::time::timeout(Duration::from_secs(120), body).await.is_err() {
            panic!("the test did not finish within 120 s");
        }
    })
    .await;
    let made = std::mem::take(&mut *harness.made.lock().unwrap());
    for backend in made {
        backend.destroy().await;
    }
    if let Err(e) = outcome {
        match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => panic!("{e}"),
        }
    }
}

struct SqliteBackend {
    dir: tempfile::TempDir,
}

impl SqliteBackend {
    fn raw(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.dir.path().join(lite::DB_FILE)).unwrap()
    }
}

#[async_trait]
impl Backend for SqliteBackend {
    async fn open(&self) -> StoreResult<Arc<dyn Store>> {
        let dir = self.dir.path().to_owned();
        let store = tokio::task::spawn_blocking(move || SqliteStore::open(&dir)).await.unwrap()?;
        Ok(Arc::new(store))
    }

    async fn execute(&self, sql: &str) -> Result<u64, String> {
        self.raw().execute(sql, []).map(|n| n as u64).map_err(|e| e.to_string())
    }

    async fn versions(&self) -> Vec<i64> {
        let raw = self.raw();
        let mut stmt = raw.prepare("SELECT version FROM schema_migrations ORDER BY version").unwrap();
        stmt.query_map([], |r| r.get(0)).unwrap().collect::<Result<_, _>>().unwrap()
    }

    fn latest_version(&self) -> i64 {
        lite::LATEST_VERSION
    }

    async fn create_at_first_version(&self, events: &[Event], objects: &[StoredObject]) -> Vec<u8> {
        lite::create_at_version(self.dir.path(), 1).unwrap();
        let raw = self.raw();
        for e in events {
            raw.execute(
                "INSERT INTO events (kind, object_id, sequence, event_type, payload, actor, owner, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                rusqlite::params![
                    e.kind,
                    e.object_id,
                    e.sequence as i64,
                    e.event_type,
                    e.payload.to_string(),
                    e.actor,
                    e.owner,
                    e.created_at
                ],
            )
            .unwrap();
        }
        for o in objects {
            raw.execute(
                "INSERT INTO objects (kind, id, owner, parent, name, state, sequence, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                rusqlite::params![
                    o.kind,
                    o.id,
                    o.owner,
                    o.parent,
                    o.name,
                    o.state,
                    o.sequence as i64,
                    o.created_at,
                    o.updated_at
                ],
            )
            .unwrap();
        }
        raw.query_row("SELECT signing_key FROM instance", [], |r| r.get(0)).unwrap()
    }

    async fn refs_to(&self, kind: &str, id: &str) -> Vec<ObjectKey> {
        let raw = self.raw();
        let mut stmt = raw
            .prepare(
                "SELECT from_kind, from_id FROM refs WHERE to_kind = ?1 AND to_id = ?2 ORDER BY from_kind, from_id",
            )
            .unwrap();
        let rows = stmt.query_map([kind, id], |r| Ok(ObjectKey { kind: r.get(0)?, id: r.get(1)? })).unwrap();
        rows.collect::<Result<_, _>>().unwrap()
    }

    async fn hold_open(&self, _: &Event, _: &StoredObject) -> Option<Box<dyn OpenWrite>> {
        // One writer: SQLite commits in position order.
        None
    }

    async fn destroy(&self) {}
}

struct PostgresBackend {
    schema: TestSchema,
}

#[async_trait]
impl Backend for PostgresBackend {
    async fn open(&self) -> StoreResult<Arc<dyn Store>> {
        Ok(Arc::new(PostgresStore::connect_with(self.schema.config()).await?))
    }

    async fn execute(&self, sql: &str) -> Result<u64, String> {
        self.schema.client().await.execute(sql, &[]).await.map_err(|e| match e.as_db_error() {
            Some(db) => db.message().to_owned(),
            None => e.to_string(),
        })
    }

    async fn versions(&self) -> Vec<i64> {
        let rows =
            self.schema.client().await.query("SELECT version FROM schema_migrations ORDER BY version", &[]).await;
        rows.unwrap().iter().map(|r| r.get(0)).collect()
    }

    fn latest_version(&self) -> i64 {
        pg::LATEST_VERSION
    }

    async fn create_at_first_version(&self, events: &[Event], objects: &[StoredObject]) -> Vec<u8> {
        pg::testing::create_at_version(&self.schema.config(), 1).await;
        let client = self.schema.client().await;
        for e in events {
            // Version 1 kept a snapshot with each event; what it held is gone from version 2.
            let sequence = e.sequence as i64;
            client
                .execute(
                    "INSERT INTO events (kind, object_id, sequence, event_type, payload, actor, owner, created_at, \
                     object_owner, parent, name, state, object_created_at, deleted) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $7, '', NULL, 'null', $8, false)",
                    &[
                        &e.kind,
                        &e.object_id as &(dyn ToSql + Sync),
                        &sequence,
                        &e.event_type,
                        &e.payload,
                        &e.actor,
                        &e.owner,
                        &e.created_at,
                    ],
                )
                .await
                .unwrap();
        }
        for o in objects {
            let sequence = o.sequence as i64;
            client
                .execute(
                    "INSERT INTO objects (kind, id, owner, parent, name, state, sequence, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6::text::jsonb, $7, $8, $9)",
                    &[
                        &o.kind,
                        &o.id as &(dyn ToSql + Sync),
                        &o.owner,
                        &o.parent,
                        &o.name,
                        &o.state,
                        &sequence,
                        &o.created_at,
                        &o.updated_at,
                    ],
                )
                .await
                .unwrap();
        }
        client.query_one("SELECT signing_key FROM instance", &[]).await.unwrap().get(0)
    }

    async fn refs_to(&self, kind: &str, id: &str) -> Vec<ObjectKey> {
        let sql = "SELECT from_kind, from_id FROM refs WHERE to_kind = $1 AND to_id = $2 ORDER BY from_kind, from_id";
        let rows = self.schema.client().await.query(sql, &[&kind, &id]).await.unwrap();
        rows.iter().map(|r| ObjectKey { kind: r.get(0), id: r.get(1) }).collect()
    }

    async fn hold_open(&self, e: &Event, o: &StoredObject) -> Option<Box<dyn OpenWrite>> {
        let client = self.schema.client().await;
        client.batch_execute("BEGIN").await.unwrap();
        let sequence = e.sequence as i64;
        let event: [&(dyn ToSql + Sync); 8] =
            [&e.kind, &e.object_id, &sequence, &e.event_type, &e.payload, &e.actor, &e.owner, &e.created_at];
        client.query_one(pg::INSERT_EVENT, &event).await.unwrap();
        let sequence = o.sequence as i64;
        let row: [&(dyn ToSql + Sync); 9] =
            [&o.kind, &o.id, &o.owner, &o.parent, &o.name, &o.state, &sequence, &o.created_at, &o.updated_at];
        client.execute(pg::UPSERT_OBJECT, &row).await.unwrap();
        Some(Box::new(PostgresOpenWrite { client }))
    }

    async fn destroy(&self) {
        self.schema.drop_schema().await;
    }
}

struct PostgresOpenWrite {
    client: tokio_postgres::Client,
}

#[async_trait]
impl OpenWrite for PostgresOpenWrite {
    async fn commit(self: Box<Self>) {
        self.client.batch_execute("COMMIT").await.unwrap();
    }
}

// ---------------------------------------------------------------------------------------
// Helpers

/// Waits until the log delivers every one of `positions`.
async fn settled_all(store: &dyn Store, positions: &[u64]) {
    for &position in positions {
        settled(store, position).await;
    }
}

/// The whole log (or one object's), once the event at `through` is readable: after
/// sequential writes, every earlier one is too.
async fn log_through(store: &dyn Store, object: Option<(&str, &str)>, through: u64) -> Vec<Committed> {
    settled(store, through).await;
    store.read_log(object, LogCursor::default(), u32::MAX).await.unwrap()
}

async fn event_count(store: &dyn Store, through: u64) -> usize {
    log_through(store, None, through).await.len()
}

fn positions(log: &[Committed]) -> Vec<u64> {
    log.iter().map(|c| c.event.position).collect()
}

fn assert_increasing(log: &[Committed]) {
    assert!(log.windows(2).all(|w| w[0].cursor < w[1].cursor), "cursors out of order: {log:?}");
}

// ---------------------------------------------------------------------------------------
// Writes and reads

pub(crate) async fn append_then_read_round_trips(h: Arc<Harness>) {
    let store = h.store().await;
    let value = json!({ "display": "Alice", "tags": [1, 2.5, null, true], "nested": { "a": "b", "0": [] } });
    let committed = store
        .append(batch(vec![put("user", "u1", Expect::Absent, "org-1", Some("alice"), value.clone())]))
        .await
        .unwrap();
    assert_eq!(committed.len(), 1);
    let c = &committed[0];
    assert_eq!(c.event.position, 1);
    assert_eq!(c.cursor.position, 1);
    assert_eq!(c.event.kind, "user");
    assert_eq!(c.event.object_id, "u1");
    assert_eq!(c.event.sequence, 1);
    assert_eq!(c.event.event_type, "user.put");
    assert_eq!(c.event.payload, json!({ "put": "u1" }));
    assert_eq!(c.event.actor, "user:local:admin");
    // The event's resource owner is the object's.
    assert_eq!(c.event.owner, "org-1");
    let object = store.head("user", "u1").await.unwrap().object.unwrap();
    assert_eq!(state(&object), value);
    let expected = StoredObject {
        kind: "user".into(),
        id: "u1".into(),
        owner: "org-1".into(),
        parent: "org-1".into(),
        name: Some("alice".into()),
        state: object.state.clone(),
        sequence: 1,
        created_at: c.event.created_at,
        updated_at: c.event.created_at,
    };
    assert_eq!(object, expected);
    assert_eq!(store.head("user", "u2").await.unwrap().object, None);
    assert_eq!(store.head("group", "u1").await.unwrap().object, None);
    assert_eq!(log_through(&*store, None, 1).await, committed);
    // The clock is microseconds since the epoch, near now.
    let now = chrono::Utc::now().timestamp_micros();
    assert!((now - c.event.created_at).abs() < 60_000_000, "{} vs {now}", c.event.created_at);
    store.ping().await.unwrap();
}

pub(crate) async fn sequence_increments_and_continues_after_delete(h: Arc<Harness>) {
    let store = h.store().await;
    let first = store.append(batch(vec![create("user", "u1", "", Some("a"))])).await.unwrap();
    let second = store
        .append(batch(vec![put("user", "u1", Expect::Sequence(1), "", Some("b"), json!({ "v": 2 }))]))
        .await
        .unwrap();
    assert_eq!(second[0].event.sequence, 2);
    // A replace keeps created_at and moves updated_at.
    let object = store.head("user", "u1").await.unwrap().object.unwrap();
    assert_eq!((object.sequence, object.created_at), (2, first[0].event.created_at));
    assert_eq!(object.updated_at, second[0].event.created_at);

    let deleted = store.append(batch(vec![delete("user", "u1", Expect::Sequence(2))])).await.unwrap();
    assert_eq!(deleted[0].event.sequence, 3);
    assert_eq!(deleted[0].event.event_type, "user.removed");
    // The delete's resource owner is the deleted object's.
    assert_eq!(deleted[0].event.owner, "org-1");
    let head = store.head("user", "u1").await.unwrap();
    assert_eq!((head.object, head.sequence), (None, 3));

    let again = store.append(batch(vec![create("user", "u1", "", Some("a"))])).await.unwrap();
    assert_eq!(again[0].event.sequence, 4);
    let object = store.head("user", "u1").await.unwrap().object.unwrap();
    assert_eq!((object.sequence, object.created_at), (4, again[0].event.created_at));
    assert!(object.created_at >= deleted[0].event.created_at);

    let log = log_through(&*store, Some(("user", "u1")), again[0].event.position).await;
    assert_eq!(log.iter().map(|c| c.event.sequence).collect::<Vec<_>>(), vec![1, 2, 3, 4]);
    assert_eq!(positions(&log), vec![1, 2, 3, 4]);
    assert!(log.windows(2).all(|w| w[0].event.created_at <= w[1].event.created_at));
    // Another object starts its own sequence at 1; one that never was has none.
    let other = store.append(batch(vec![create("user", "u2", "", None)])).await.unwrap();
    assert_eq!((other[0].event.sequence, other[0].event.position), (1, 5));
    assert_eq!(store.head("user", "never").await.unwrap().sequence, 0);
}

/// The events of one request are a microsecond apart in the order written, and after the
/// log's newest, so objects made together list in the order they were made.
pub(crate) async fn events_of_one_request_are_stamped_in_write_order(h: Arc<Harness>) {
    let store = h.store().await;
    let before = store.append(batch(vec![create("user", "u0", "", None)])).await.unwrap();
    let writes = ["u3", "u1", "u2"].map(|id| create("user", id, "", None));
    let committed = store.append(batch(writes.to_vec())).await.unwrap();
    let times: Vec<Micros> = committed.iter().map(|c| c.event.created_at).collect();
    assert_eq!(times, [times[0], times[0] + 1, times[0] + 2]);
    assert!(times[0] > before[0].event.created_at);
    for (id, time) in ["u3", "u1", "u2"].iter().zip(&times) {
        assert_eq!(store.head("user", id).await.unwrap().object.unwrap().created_at, *time);
    }
}

pub(crate) async fn absent_on_existing_object_conflicts_and_writes_nothing(h: Arc<Harness>) {
    let store = h.store().await;
    let before = store.append(batch(vec![create("org", "o1", "", Some("acme"))])).await.unwrap();
    let err = store
        .append(batch(vec![put("org", "o1", Expect::Absent, "", Some("acme"), json!({ "v": 9 }))]))
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
    assert_eq!(event_count(&*store, 1).await, 1);
    let object = store.head("org", "o1").await.unwrap().object.unwrap();
    assert_eq!((object.sequence, object.updated_at), (1, before[0].event.created_at));
}

pub(crate) async fn stale_or_missing_sequence_conflicts(h: Arc<Harness>) {
    let store = h.store().await;
    store.append(batch(vec![create("org", "o1", "", None)])).await.unwrap();
    let second = store.append(batch(vec![put("org", "o1", Expect::Sequence(1), "", None, json!(2))])).await.unwrap();

    let stale = store.append(batch(vec![put("org", "o1", Expect::Sequence(1), "", None, json!(3))])).await.unwrap_err();
    assert!(matches!(stale, StoreError::Conflict { expected: Expect::Sequence(1), actual: Some(2), .. }), "{stale:?}");
    let missing =
        store.append(batch(vec![put("org", "nope", Expect::Sequence(1), "", None, json!(1))])).await.unwrap_err();
    assert!(matches!(missing, StoreError::Conflict { expected: Expect::Sequence(1), actual: None, .. }), "{missing:?}");
    let stale_delete = store.append(batch(vec![delete("org", "o1", Expect::Sequence(7))])).await.unwrap_err();
    assert!(matches!(stale_delete, StoreError::Conflict { actual: Some(2), .. }), "{stale_delete:?}");
    // Deleting what is not there conflicts even without an expectation.
    let delete_missing = store.append(batch(vec![delete("org", "nope", Expect::Any)])).await.unwrap_err();
    assert!(
        matches!(delete_missing, StoreError::Conflict { expected: Expect::Any, actual: None, .. }),
        "{delete_missing:?}"
    );
    assert_eq!(event_count(&*store, second[0].event.position).await, 2);
    assert_eq!(state(&store.head("org", "o1").await.unwrap().object.unwrap()), json!(2));
    // Any replaces whatever is there, and creates what is not.
    let any = store.append(batch(vec![put("org", "o1", Expect::Any, "", None, json!(4))])).await.unwrap();
    assert_eq!(any[0].event.sequence, 3);
    let fresh = store.append(batch(vec![put("org", "o2", Expect::Any, "", None, json!(5))])).await.unwrap();
    assert_eq!(fresh[0].event.sequence, 1);
    // Exists needs the object, at any sequence.
    store.append(batch(vec![put("org", "o1", Expect::Exists, "", None, json!(6))])).await.unwrap();
    let gone = store.append(batch(vec![put("org", "nope", Expect::Exists, "", None, json!(1))])).await.unwrap_err();
    assert!(matches!(gone, StoreError::Conflict { expected: Expect::Exists, actual: None, .. }), "{gone:?}");
}

pub(crate) async fn failing_write_in_a_request_writes_nothing(h: Arc<Harness>) {
    let store = h.store().await;
    let existing = store.append(batch(vec![create("user", "existing", "org-1", Some("taken"))])).await.unwrap();
    let through = existing[0].event.position;

    // The second write's expectation fails.
    let err = store
        .append(batch(vec![create("user", "new", "org-1", Some("fresh")), create("user", "existing", "org-1", None)]))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { actual: Some(1), .. }), "{err:?}");
    assert_eq!(store.head("user", "new").await.unwrap().object, None);
    assert_eq!(event_count(&*store, through).await, 1);

    // The second write's name is taken.
    let err = store
        .append(batch(vec![
            create("user", "new", "org-1", Some("fresh")),
            create("user", "other", "org-1", Some("taken")),
        ]))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NameTaken { .. }), "{err:?}");
    assert_eq!(store.head("user", "new").await.unwrap().object, None);
    assert_eq!(store.head("user", "other").await.unwrap().object, None);
    assert_eq!(event_count(&*store, through).await, 1);

    // The failed requests left no sequence behind (positions may have holes on a backend
    // whose position counter is not transactional).
    let ok = store.append(batch(vec![create("user", "new", "org-1", Some("fresh"))])).await.unwrap();
    assert_eq!(ok[0].event.sequence, 1);
    assert!(ok[0].event.position > through);
    assert_eq!(log_through(&*store, None, ok[0].event.position).await.len(), 2);
}

pub(crate) async fn later_writes_in_a_request_see_earlier_ones(h: Arc<Harness>) {
    let store = h.store().await;
    let committed = store
        .append(batch(vec![
            create("group", "g1", "", Some("admins")),
            put("group", "g1", Expect::Sequence(1), "", Some("owners"), json!({ "v": 2 })),
            // The name freed by the rename is available to another object in the request.
            create("group", "g2", "", Some("admins")),
            delete("group", "g1", Expect::Sequence(2)),
            create("group", "g1", "", Some("owners")),
        ]))
        .await
        .unwrap();
    let summary: Vec<(&str, u64, u64)> =
        committed.iter().map(|c| (c.event.object_id.as_str(), c.event.sequence, c.event.position)).collect();
    assert_eq!(summary, vec![("g1", 1, 1), ("g1", 2, 2), ("g2", 1, 3), ("g1", 3, 4), ("g1", 4, 5)]);
    // One transaction, its events a microsecond apart.
    let start = committed[0].event.created_at;
    assert!(committed.iter().zip(start..).all(|(c, at)| c.event.created_at == at));
    assert_eq!(committed[3].event.event_type, "group.removed");
    let g1 = store.head("group", "g1").await.unwrap().object.unwrap();
    assert_eq!((g1.sequence, g1.name.as_deref()), (4, Some("owners")));
    let g2 = store.head("group", "g2").await.unwrap().object.unwrap();
    assert_eq!((g2.sequence, g2.name.as_deref()), (1, Some("admins")));
    assert_eq!(log_through(&*store, None, 5).await, committed);
}

pub(crate) async fn names_are_unique_per_kind_and_parent(h: Arc<Harness>) {
    let store = h.store().await;
    store.append(batch(vec![create("user", "u1", "org-1", Some("alice"))])).await.unwrap();

    let err = store.append(batch(vec![create("user", "u2", "org-1", Some("alice"))])).await.unwrap_err();
    match err {
        StoreError::NameTaken { kind, name } => assert_eq!((kind.as_str(), name.as_str()), ("user", "alice")),
        other => panic!("expected NameTaken, got {other:?}"),
    }
    assert_eq!(event_count(&*store, 1).await, 1);
    // A replace of another object onto the taken name fails the same way.
    store.append(batch(vec![create("user", "u3", "org-1", Some("carol"))])).await.unwrap();
    let err =
        store.append(batch(vec![put("user", "u3", Expect::Any, "org-1", Some("alice"), json!({}))])).await.unwrap_err();
    assert!(matches!(err, StoreError::NameTaken { .. }), "{err:?}");
    assert_eq!(store.head("user", "u3").await.unwrap().object.unwrap().name.as_deref(), Some("carol"));

    // Same name under another parent or of another kind is fine, and so are many unnamed.
    store.append(batch(vec![create("user", "u4", "org-2", Some("alice"))])).await.unwrap();
    store.append(batch(vec![create("group", "g1", "org-1", Some("alice"))])).await.unwrap();
    store.append(batch(vec![create("user", "u5", "org-1", None), create("user", "u6", "org-1", None)])).await.unwrap();
    // Names compare by bytes: case and accents make other names.
    store
        .append(batch(vec![create("user", "u7", "org-1", Some("Alice")), create("user", "u8", "org-1", Some("alicé"))]))
        .await
        .unwrap();
    // Re-putting an object with its own name is not a collision.
    store
        .append(batch(vec![put("user", "u1", Expect::Sequence(1), "org-1", Some("alice"), json!({ "v": 2 }))]))
        .await
        .unwrap();
    // A deleted object frees its name.
    store.append(batch(vec![delete("user", "u1", Expect::Any)])).await.unwrap();
    store.append(batch(vec![create("user", "u2", "org-1", Some("alice"))])).await.unwrap();
    assert_eq!(store.head("user", "u2").await.unwrap().object.unwrap().name.as_deref(), Some("alice"));
}

// ---------------------------------------------------------------------------------------
// The log

pub(crate) async fn read_log_in_cursor_order_with_and_without_object_filter(h: Arc<Harness>) {
    let store = h.store().await;
    store.append(batch(vec![create("user", "a", "", None)])).await.unwrap();
    store.append(batch(vec![create("user", "b", "", None)])).await.unwrap();
    store.append(batch(vec![put("user", "a", Expect::Sequence(1), "", None, json!(2))])).await.unwrap();
    store.append(batch(vec![create("group", "a", "", None)])).await.unwrap();
    store.append(batch(vec![delete("user", "a", Expect::Sequence(2))])).await.unwrap();

    let all = log_through(&*store, None, 5).await;
    let summary: Vec<(u64, &str, &str, u64)> = all
        .iter()
        .map(|c| (c.event.position, c.event.kind.as_str(), c.event.object_id.as_str(), c.event.sequence))
        .collect();
    assert_eq!(
        summary,
        vec![(1, "user", "a", 1), (2, "user", "b", 1), (3, "user", "a", 2), (4, "group", "a", 1), (5, "user", "a", 3)]
    );
    assert_increasing(&all);
    assert!(all.iter().all(|c| c.cursor.position == c.event.position));
    assert!(all.windows(2).all(|w| w[0].event.created_at <= w[1].event.created_at));

    // Paging by cursor: `after` is exclusive and `limit` caps the page.
    let cursor = |i: usize| all[i - 1].cursor;
    let read = |object: Option<(&'static str, &'static str)>, after: LogCursor, limit: u32| {
        let store = Arc::clone(&store);
        async move { positions(&store.read_log(object, after, limit).await.unwrap()) }
    };
    assert_eq!(read(None, cursor(2), 2).await, vec![3, 4]);
    assert_eq!(read(None, cursor(5), 10).await, Vec::<u64>::new());
    assert_eq!(read(None, LogCursor { epoch: u64::MAX, position: u64::MAX }, 10).await, Vec::<u64>::new());
    assert_eq!(read(None, LogCursor::default(), 0).await, Vec::<u64>::new());
    let mut paged = Vec::new();
    let mut after = LogCursor::default();
    loop {
        let page = store.read_log(None, after, 2).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.cursor;
        paged.extend(page);
    }
    assert_eq!(paged, all);

    // One object's events, in the same order.
    assert_eq!(read(Some(("user", "a")), LogCursor::default(), 10).await, vec![1, 3, 5]);
    assert_eq!(read(Some(("user", "a")), cursor(1), 10).await, vec![3, 5]);
    assert_eq!(read(Some(("user", "a")), cursor(2), 10).await, vec![3, 5]);
    assert_eq!(read(Some(("user", "a")), LogCursor::default(), 2).await, vec![1, 3]);
    assert_eq!(read(Some(("user", "a")), cursor(3), 1).await, vec![5]);
    assert_eq!(read(Some(("group", "a")), LogCursor::default(), 10).await, vec![4]);
    assert_eq!(read(Some(("user", "zzz")), LogCursor::default(), 10).await, Vec::<u64>::new());
    assert_eq!(read(Some(("user", "a")), LogCursor::default(), 0).await, Vec::<u64>::new());
}

/// The log holds each event as its append answered it: what changed (the payload), who,
/// when, and the object's owner, never a copy of the object.
pub(crate) async fn read_log_carries_what_append_answered(h: Arc<Harness>) {
    let store = h.store().await;
    let mut answered = Vec::new();
    answered.extend(store.append(batch(vec![create("org", "o1", "", Some("acme"))])).await.unwrap());
    let mut member_added = put("user", "u1", Expect::Sequence(1), "o1", Some("alice"), json!({ "roles": ["admin"] }));
    member_added.payload = json!({ "rolesAdded": ["admin"] });
    answered.extend(
        store
            .append(batch(vec![
                put("user", "u1", Expect::Absent, "o1", Some("alice"), json!({ "roles": [] })),
                member_added,
                put("org", "o1", Expect::Sequence(1), "", Some("acme-2"), json!({ "renamed": true })),
            ]))
            .await
            .unwrap(),
    );
    tokio::time::sleep(Duration::from_millis(2)).await;
    answered.extend(store.append(batch(vec![delete("user", "u1", Expect::Sequence(2))])).await.unwrap());
    answered
        .extend(store.append(batch(vec![put("user", "u1", Expect::Absent, "o1", None, json!(null))])).await.unwrap());

    let last = answered.last().unwrap().event.position;
    let log = log_through(&*store, None, last).await;
    assert_eq!(log, answered);
    assert_eq!(log[2].event.payload, json!({ "rolesAdded": ["admin"] }));
    assert_eq!(log[2].event.owner, "org-1");
    assert_eq!(log[4].event.event_type, "user.removed");
    assert_eq!(
        log_through(&*store, Some(("user", "u1")), last).await,
        answered.iter().filter(|c| c.event.kind == "user").cloned().collect::<Vec<_>>()
    );
    // The current state is in the rows: the re-created object starts over.
    let u1 = store.head("user", "u1").await.unwrap().object.unwrap();
    assert_eq!((u1.sequence, u1.name.clone(), state(&u1)), (4, None, json!(null)));
    assert_eq!(u1.created_at, log[5].event.created_at);
}

pub(crate) async fn locate_finds_readable_positions(h: Arc<Harness>) {
    let store = h.store().await;
    assert_eq!(store.locate(1).await.unwrap(), Located::Beyond);
    let committed =
        store.append(batch(vec![create("org", "o1", "", None), create("org", "o2", "", None)])).await.unwrap();
    for c in &committed {
        assert_eq!(settled(&*store, c.event.position).await, c.cursor);
        assert_eq!(store.locate(c.event.position).await.unwrap(), Located::At(c.cursor));
    }
    // Events in one request share an epoch and keep position order.
    assert_eq!(committed[0].cursor.epoch, committed[1].cursor.epoch);
    assert!(committed[0].cursor < committed[1].cursor);
    let later = store.append(batch(vec![create("org", "o3", "", Some("taken"))])).await.unwrap();
    assert!(settled(&*store, later[0].event.position).await > committed[1].cursor);
    assert_eq!(store.locate(0).await.unwrap(), Located::Beyond);
    // Past the last position handed out: no write ever answered it.
    assert_eq!(store.locate(later[0].event.position + 1).await.unwrap(), Located::Beyond);
    assert_eq!(store.locate(u64::MAX).await.unwrap(), Located::Beyond);
    // A failed request leaves no event behind for its position. PostgreSQL takes one before
    // the taken name fails the row's upsert; SQLite's rollback gives it back.
    let taken = store.append(batch(vec![create("org", "o4", "", Some("taken"))])).await.unwrap_err();
    assert!(matches!(taken, StoreError::NameTaken { .. }), "{taken:?}");
    let next = store.append(batch(vec![create("org", "o4", "", None)])).await.unwrap();
    let skipped = later[0].event.position + 1..next[0].event.position;
    assert_eq!(skipped.is_empty(), h.target() == Target::Sqlite, "{skipped:?}");
    for position in skipped {
        assert_eq!(store.locate(position).await.unwrap(), Located::Pending);
    }
    // The log after a cursor is exactly what followed it.
    let cursor = settled(&*store, next[0].event.position).await;
    let after = store.read_log(None, committed[1].cursor, 10).await.unwrap();
    assert_eq!(after.iter().map(|c| c.cursor).collect::<Vec<_>>(), vec![later[0].cursor, cursor]);
}

// ---------------------------------------------------------------------------------------
// Concurrency

pub(crate) async fn concurrent_appends_all_land(h: Arc<Harness>) {
    let store = h.store().await;
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
                    .append(batch(vec![put("user", &id, expect, "org-1", Some(&name), json!({ "n": n }))]))
                    .await
                    .unwrap();
                assert_eq!(c[0].event.sequence, n + 1);
                positions.push(c[0].event.position);
                // Reads interleave with the writes and see what was answered.
                assert_eq!(store.head("user", &id).await.unwrap().object.unwrap().sequence, n + 1);
            }
            positions
        }));
    }
    let mut all_positions = Vec::new();
    for task in tasks {
        let mine = task.await.unwrap();
        assert!(mine.windows(2).all(|w| w[0] < w[1]));
        all_positions.extend(mine);
    }
    all_positions.sort_unstable();
    all_positions.dedup();
    assert_eq!(all_positions.len(), 500);

    settled_all(&*store, &all_positions).await;
    let log = store.read_log(None, LogCursor::default(), 1000).await.unwrap();
    assert_eq!(log.len(), 500);
    assert_increasing(&log);
    assert_eq!(
        {
            let mut p = positions(&log);
            p.sort_unstable();
            p
        },
        all_positions
    );
    for t in 0..50 {
        let id = format!("obj-{t}");
        let object = store.head("user", &id).await.unwrap().object.unwrap();
        assert_eq!((object.sequence, state(&object)), (10, json!({ "n": 9 })));
        let mine = store.read_log(Some(("user", &id)), LogCursor::default(), 100).await.unwrap();
        assert_eq!(mine.iter().map(|c| c.event.sequence).collect::<Vec<_>>(), (1..=10).collect::<Vec<u64>>());
        // Per object, time never goes back.
        assert!(mine.windows(2).all(|w| w[0].event.created_at <= w[1].event.created_at));
        assert_eq!(mine.last().map(|c| c.event.created_at), Some(object.updated_at));
    }
    let rows = store.snapshot().await.unwrap().objects;
    assert_eq!(rows.iter().filter(|o| o.kind == "user" && o.parent == "org-1").count(), 50);
    store.close().await.unwrap();
}

/// Two writers holding the same sequence race to replace one object: exactly one wins, the
/// other is told of the conflict with the winner's sequence. Then both race to create one
/// object, and two objects race for one name.
pub(crate) async fn racing_writers_exactly_one_wins(h: Arc<Harness>) {
    let store = h.store().await;
    for round in 0..20 {
        let id = format!("o{round}");
        store.append(batch(vec![create("org", &id, "", None)])).await.unwrap();
        let barrier = Arc::new(Barrier::new(2));
        let racers: Vec<_> = (0..2)
            .map(|racer| {
                let (store, barrier, id) = (Arc::clone(&store), Arc::clone(&barrier), id.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    store
                        .append(batch(vec![put("org", &id, Expect::Sequence(1), "", None, json!({ "racer": racer }))]))
                        .await
                })
            })
            .collect();
        let mut won = Vec::new();
        for (racer, task) in racers.into_iter().enumerate() {
            match task.await.unwrap() {
                Ok(c) => won.push((racer, c[0].event.sequence)),
                Err(StoreError::Conflict { expected: Expect::Sequence(1), actual: Some(2), .. }) => {}
                Err(other) => panic!("round {round}: {other:?}"),
            }
        }
        assert_eq!(won.len(), 1, "round {round}: {won:?}");
        let (winner, sequence) = won[0];
        assert_eq!(sequence, 2);
        assert_eq!(state(&store.head("org", &id).await.unwrap().object.unwrap()), json!({ "racer": winner }));
    }

    for round in 0..10 {
        let barrier = Arc::new(Barrier::new(3));
        let racers: Vec<_> = (0..3)
            .map(|racer| {
                let (store, barrier) = (Arc::clone(&store), Arc::clone(&barrier));
                tokio::spawn(async move {
                    barrier.wait().await;
                    // The same new id, and for the others one new name.
                    let same_id = store.append(batch(vec![create("user", &format!("new-{round}"), "p", None)])).await;
                    let same_name = store
                        .append(batch(vec![create(
                            "group",
                            &format!("g-{round}-{racer}"),
                            "p",
                            Some(&format!("n{round}")),
                        )]))
                        .await;
                    (same_id.is_ok(), same_name)
                })
            })
            .collect();
        let (mut ids_won, mut names_won) = (0, 0);
        for task in racers {
            let (id_won, name) = task.await.unwrap();
            ids_won += usize::from(id_won);
            match name {
                Ok(_) => names_won += 1,
                Err(StoreError::NameTaken { .. }) => {}
                Err(other) => panic!("round {round}: {other:?}"),
            }
        }
        assert_eq!((ids_won, names_won), (1, 1), "round {round}");
    }
}

/// Requests that fail next to others (as they may, sharing a group commit) fail alone.
pub(crate) async fn a_failing_request_does_not_fail_its_neighbours(h: Arc<Harness>) {
    let store = h.store().await;
    store.append(batch(vec![create("org", "taken", "", Some("taken-name"))])).await.unwrap();
    let barrier = Arc::new(Barrier::new(32));
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let (store, barrier) = (Arc::clone(&store), Arc::clone(&barrier));
            tokio::spawn(async move {
                let request = match i % 8 {
                    // A conflict on an object that exists.
                    3 => vec![create("org", &format!("fine-{i}"), "", None), create("org", "taken", "", None)],
                    // A conflict on one that does not.
                    5 => vec![put("org", &format!("missing-{i}"), Expect::Sequence(4), "", None, json!(i))],
                    // A name that is taken.
                    7 => vec![create("org", &format!("fine-{i}"), "", Some("taken-name"))],
                    _ => vec![
                        create("org", &format!("fine-{i}"), "", Some(&format!("n-{i}"))),
                        create("user", &format!("u-{i}"), "", None),
                    ],
                };
                barrier.wait().await;
                (i, store.append(batch(request)).await)
            })
        })
        .collect();
    let mut written = vec![1];
    for task in tasks {
        let (i, result) = task.await.unwrap();
        match (i % 8, result) {
            (3 | 5, Err(StoreError::Conflict { .. })) | (7, Err(StoreError::NameTaken { .. })) => {
                assert_eq!(
                    store.head("org", &format!("fine-{i}")).await.unwrap().object,
                    None,
                    "request {i} half applied"
                );
            }
            (3 | 5 | 7, other) => panic!("request {i} should have failed: {other:?}"),
            (_, Ok(committed)) => {
                assert_eq!(committed.len(), 2);
                written.extend(committed.iter().map(|c| c.event.position));
                assert!(store.head("user", &format!("u-{i}")).await.unwrap().object.is_some());
            }
            (_, Err(e)) => panic!("request {i} failed with its neighbours: {e:?}"),
        }
    }
    settled_all(&*store, &written).await;
    let log = store.read_log(None, LogCursor::default(), 1000).await.unwrap();
    assert_eq!(log.len(), 1 + 2 * 20);
    assert_increasing(&log);
}

// ---------------------------------------------------------------------------------------
// Guards and references

pub(crate) async fn guards_hold_in_the_writes_transaction(h: Arc<Harness>) {
    let store = h.store().await;
    store.append(batch(vec![create("org", "o1", "", None)])).await.unwrap();
    let guarded = |expect: Expect, id: &str| Batch {
        actor: "system".into(),
        writes: vec![create("user", id, "o1", None)],
        guards: vec![guard("org", "o1", expect)],
    };
    store.append(guarded(Expect::Exists, "u1")).await.unwrap();
    store.append(guarded(Expect::Sequence(1), "u2")).await.unwrap();
    let stale = store.append(guarded(Expect::Sequence(7), "u3")).await.unwrap_err();
    assert!(
        matches!(&stale, StoreError::Conflict { kind, expected: Expect::Sequence(7), actual: Some(1), .. } if kind == "org"),
        "{stale:?}"
    );
    let missing = Batch { guards: vec![guard("org", "nope", Expect::Exists)], ..guarded(Expect::Any, "u4") };
    let missing = store.append(missing).await.unwrap_err();
    assert!(matches!(&missing, StoreError::Conflict { id, actual: None, .. } if id == "nope"), "{missing:?}");
    // A failed guard writes nothing.
    assert_eq!(store.head("user", "u3").await.unwrap().object, None);
    assert_eq!(store.head("user", "u4").await.unwrap().object, None);
    // Guards see the objects as the request found them: not an object it creates itself.
    let own = Batch {
        guards: vec![guard("org", "o2", Expect::Exists)],
        ..Batch::new("system", vec![create("org", "o2", "", None)])
    };
    assert!(matches!(store.append(own).await.unwrap_err(), StoreError::Conflict { actual: None, .. }));
    let through = store.append(batch(vec![create("org", "o3", "", None)])).await.unwrap();
    assert_eq!(event_count(&*store, through[0].event.position).await, 4);
}

pub(crate) async fn a_referenced_object_cannot_be_deleted(h: Arc<Harness>) {
    let backend = h.backend().await;
    let store = backend.open().await.unwrap();
    store.append(batch(vec![create("role", "r1", "", None), create("role", "r2", "", None)])).await.unwrap();
    store
        .append(batch(vec![put_refs("policy", "p1", Expect::Absent, &[("role", "r1"), ("role", "r2")])]))
        .await
        .unwrap();
    store.append(batch(vec![put_refs("policy", "p2", Expect::Absent, &[("role", "r1")])])).await.unwrap();
    assert_eq!(
        backend.refs_to("role", "r1").await,
        vec![ObjectKey::new("policy", "p1"), ObjectKey::new("policy", "p2")]
    );

    let refused = store.append(batch(vec![delete("role", "r1", Expect::Sequence(1))])).await.unwrap_err();
    match refused {
        StoreError::Referenced { kind, id, by } => {
            assert_eq!((kind.as_str(), id.as_str()), ("role", "r1"));
            assert_eq!(by, vec![ObjectKey::new("policy", "p1"), ObjectKey::new("policy", "p2")]);
        }
        other => panic!("expected Referenced, got {other:?}"),
    }
    assert!(store.head("role", "r1").await.unwrap().object.is_some());

    // A put without `refs` keeps them; with, replaces them.
    store.append(batch(vec![put("policy", "p2", Expect::Sequence(1), "", None, json!({ "v": 2 }))])).await.unwrap();
    assert_eq!(backend.refs_to("role", "r1").await.len(), 2);
    store.append(batch(vec![put_refs("policy", "p2", Expect::Sequence(2), &[("role", "r2")])])).await.unwrap();
    assert_eq!(backend.refs_to("role", "r1").await, vec![ObjectKey::new("policy", "p1")]);
    // Deleting the referrer first, in the same request, frees the referenced object.
    store
        .append(batch(vec![delete("policy", "p1", Expect::Sequence(1)), delete("role", "r1", Expect::Sequence(1))]))
        .await
        .unwrap();
    assert_eq!(backend.refs_to("role", "r2").await, vec![ObjectKey::new("policy", "p2")]);
    // The other way round it is refused, and nothing of the request is written.
    let refused = store
        .append(batch(vec![delete("role", "r2", Expect::Sequence(1)), delete("policy", "p2", Expect::Sequence(3))]))
        .await
        .unwrap_err();
    assert!(matches!(refused, StoreError::Referenced { .. }), "{refused:?}");
    assert!(store.head("policy", "p2").await.unwrap().object.is_some());
}

/// A delete racing a write that starts to reference the deleted object: exactly one of the
/// two wins, and an object never references one that is gone.
pub(crate) async fn a_delete_racing_a_reference_leaves_no_dangling_reference(h: Arc<Harness>) {
    let store = h.store().await;
    let (mut deletes_won, mut references_won) = (0, 0);
    for round in 0..40 {
        let target = format!("t{round}");
        store.append(batch(vec![create("role", &target, "", None)])).await.unwrap();
        let barrier = Arc::new(Barrier::new(2));
        let reference = {
            let (store, barrier, target) = (Arc::clone(&store), Arc::clone(&barrier), target.clone());
            tokio::spawn(async move {
                let write = Batch {
                    guards: vec![guard("role", &target, Expect::Exists)],
                    ..batch(vec![put_refs("policy", &format!("p{round}"), Expect::Absent, &[("role", &target)])])
                };
                barrier.wait().await;
                store.append(write).await
            })
        };
        let removal = {
            let (store, barrier, target) = (Arc::clone(&store), Arc::clone(&barrier), target.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                store.append(batch(vec![delete("role", &target, Expect::Sequence(1))])).await
            })
        };
        match (reference.await.unwrap(), removal.await.unwrap()) {
            (Ok(_), Err(StoreError::Referenced { .. })) => references_won += 1,
            (Err(StoreError::Conflict { actual: None, .. }), Ok(_)) => deletes_won += 1,
            other => panic!("round {round}: {other:?}"),
        }
        let policy = store.head("policy", &format!("p{round}")).await.unwrap().object;
        let role = store.head("role", &target).await.unwrap().object;
        assert_eq!(policy.is_some(), role.is_some(), "round {round}: a dangling reference");
    }
    // Which side wins is up to the scheduler; both usually do in some rounds.
    println!("the delete won {deletes_won} rounds, the reference {references_won}");
}

// ---------------------------------------------------------------------------------------
// Starting from state

/// A snapshot and the log after its cursor account for every event once: every event at or
/// before the cursor is in the rows, and every event the rows lack comes after it, one that
/// commits late included.
pub(crate) async fn a_snapshot_and_the_log_after_it_miss_nothing(h: Arc<Harness>) {
    let backend = h.backend().await;
    let store = backend.open().await.unwrap();
    for i in 0..5 {
        store.append(batch(vec![create("tally", &format!("t{i}"), "", None)])).await.unwrap();
        for n in 1..8 {
            let write = put("tally", &format!("t{i}"), Expect::Sequence(n), "", None, json!({ "n": n }));
            store.append(batch(vec![write])).await.unwrap();
        }
    }
    // A writer that takes its position now and commits after a later writer (PostgreSQL).
    let late_event = Event {
        position: 0,
        kind: "tally".into(),
        object_id: "late".into(),
        sequence: 1,
        event_type: "tally.put".into(),
        payload: json!({}),
        actor: "system".into(),
        owner: "org-1".into(),
        created_at: 1,
    };
    let late_row = StoredObject {
        kind: "tally".into(),
        id: "late".into(),
        owner: "org-1".into(),
        parent: String::new(),
        name: None,
        state: "{}".into(),
        sequence: 1,
        created_at: 1,
        updated_at: 1,
    };
    let held = backend.hold_open(&late_event, &late_row).await;
    let after = store.append(batch(vec![create("tally", "after", "", None)])).await.unwrap();
    let snapshot = store.snapshot().await.unwrap();
    if let Some(held) = held {
        held.commit().await;
    }
    let last = store.append(batch(vec![create("tally", "last", "", None)])).await.unwrap();
    let whole = log_through(&*store, None, last[0].event.position).await;
    let followed = store.read_log(None, snapshot.cursor, 10_000).await.unwrap();

    let row = |kind: &str, id: &str| snapshot.objects.iter().find(|o| o.kind == kind && o.id == id);
    let reflected = |e: &Event| row(&e.kind, &e.object_id).is_some_and(|o| o.sequence >= e.sequence);
    for c in &whole {
        if c.cursor <= snapshot.cursor {
            assert!(reflected(&c.event), "event {} is before the cursor but not in the rows", c.event.position);
        }
        if !reflected(&c.event) {
            assert!(followed.contains(c), "event {} is in neither the rows nor the log after them", c.event.position);
        }
    }
    assert_eq!(row("tally", "t3").map(|o| o.sequence), Some(8));
    assert!(row("tally", "after").is_some());
    assert!(followed.iter().any(|c| c.event.object_id == "last"));
    if whole.iter().any(|c| c.event.object_id == "late") {
        assert!(row("tally", "late").is_none(), "the held write was not committed at the snapshot");
        assert!(followed.iter().any(|c| c.event.object_id == "late"), "the late commit was skipped");
    }
    // The history of the rows is not replayed. (On PostgreSQL the cursor sits below every
    // transaction running at the snapshot, other tests' included, so how much comes again
    // depends on them.)
    if h.target() == Target::Sqlite {
        assert_eq!(followed.iter().map(|c| c.event.object_id.as_str()).collect::<Vec<_>>(), ["last"]);
    }
    assert!(after[0].cursor <= snapshot.cursor || followed.iter().any(|c| c.cursor == after[0].cursor));
}

// ---------------------------------------------------------------------------------------
// Instance, lifecycle and migrations

pub(crate) async fn instance_is_stable_across_reopen(h: Arc<Harness>) {
    let backend = h.backend().await;
    let store = backend.open().await.unwrap();
    let first = store.instance().await.unwrap();
    let parsed = uuid::Uuid::parse_str(&first.id).unwrap();
    assert_eq!(parsed.get_version_num(), 4);
    assert_eq!(first.signing_key.len(), 32);
    assert_ne!(first.signing_key[..16], first.signing_key[16..]);
    store.close().await.unwrap();

    // The key is drawn once: a reopened store keeps it, so page tokens stay valid.
    let reopened = backend.open().await.unwrap();
    assert_eq!(reopened.instance().await.unwrap(), first);
    reopened.close().await.unwrap();

    let other = h.store().await.instance().await.unwrap();
    assert_ne!(other.id, first.id);
    assert_ne!(other.signing_key, first.signing_key);
    // From the OS random source, not two v4 UUIDs: both keys would look like UUIDs by
    // chance with a probability of 2^-24.
    assert!(!(looks_like_two_uuids(&first.signing_key) && looks_like_two_uuids(&other.signing_key)));
}

/// Whether 32 bytes have the version (4) and variant (10) bits of two v4 UUIDs, as the
/// signing keys that stores created before they used the OS random source directly do.
pub(crate) fn looks_like_two_uuids(key: &[u8]) -> bool {
    key.len() == 32 && key.chunks(16).all(|uuid| uuid[6] >> 4 == 4 && uuid[8] >> 6 == 0b10)
}

pub(crate) async fn instance_row_and_events_cannot_change(h: Arc<Harness>) {
    let backend = h.backend().await;
    let store = backend.open().await.unwrap();
    let instance = store.instance().await.unwrap();
    store.append(batch(vec![create("org", "o1", "", None)])).await.unwrap();
    store.close().await.unwrap();
    let refused = |sql: &'static str| {
        let backend = Arc::clone(&backend);
        async move {
            match backend.execute(sql).await {
                Err(e) => e,
                Ok(n) => panic!("`{sql}` changed {n} rows"),
            }
        }
    };
    assert!(refused("UPDATE instance SET id = 'x'").await.contains("the instance row is immutable"));
    assert!(refused("DELETE FROM instance").await.contains("the instance row is immutable"));
    let duplicate = "INSERT INTO instance (singleton, id, signing_key, created_at) \
                     SELECT 2, id, signing_key, created_at FROM instance";
    assert!(refused(duplicate).await.to_lowercase().contains("check constraint"));
    assert!(refused("UPDATE events SET actor = 'x'").await.contains("events are append-only"));
    assert!(refused("DELETE FROM events").await.contains("events are append-only"));
    let store = backend.open().await.unwrap();
    assert_eq!(store.instance().await.unwrap(), instance);
    assert_eq!(event_count(&*store, 1).await, 1);
}

pub(crate) async fn data_survives_reopen(h: Arc<Harness>) {
    let backend = h.backend().await;
    let store = backend.open().await.unwrap();
    let written =
        store.append(batch(vec![create("org", "o1", "", Some("acme")), create("org", "o2", "", None)])).await.unwrap();
    store.append(batch(vec![delete("org", "o2", Expect::Sequence(1))])).await.unwrap();
    let log = log_through(&*store, None, 3).await;
    let before = store.head("org", "o1").await.unwrap().object;
    store.close().await.unwrap();

    let store = backend.open().await.unwrap();
    assert_eq!(store.head("org", "o1").await.unwrap().object, before);
    assert_eq!(before.map(|o| o.updated_at), Some(written[0].event.created_at));
    assert_eq!(store.head("org", "o2").await.unwrap().object, None);
    assert_eq!(log_through(&*store, None, 3).await, log);
    // Positions and sequences continue; the clock does not go back.
    let next = store.append(batch(vec![create("org", "o2", "", None)])).await.unwrap();
    assert_eq!((next[0].event.position, next[0].event.sequence), (4, 3));
    assert!(next[0].event.created_at >= log[2].event.created_at);
    assert!(next[0].cursor > log[2].cursor);
    assert_eq!(backend.versions().await, (1..=backend.latest_version()).collect::<Vec<_>>());
}

pub(crate) async fn migrates_an_empty_database(h: Arc<Harness>) {
    let backend = h.backend().await;
    let store = backend.open().await.unwrap();
    assert_eq!(backend.versions().await, (1..=backend.latest_version()).collect::<Vec<_>>());
    assert_eq!(store.instance().await.unwrap().signing_key.len(), 32);
    assert_eq!(store.read_log(None, LogCursor::default(), 10).await.unwrap(), vec![]);
    assert_eq!(store.locate(1).await.unwrap(), Located::Beyond);
    assert_eq!(store.snapshot().await.unwrap().objects, vec![]);

    // Opening again applies nothing twice.
    store.close().await.unwrap();
    backend.open().await.unwrap();
    assert_eq!(backend.versions().await, (1..=backend.latest_version()).collect::<Vec<_>>());
}

/// Two replicas (or processes) starting together on an empty database: one migrates and
/// seeds the instance, the other waits and finds it done.
pub(crate) async fn concurrent_opens_migrate_once(h: Arc<Harness>) {
    let backend = h.backend().await;
    let (a, b, c) = tokio::join!(backend.open(), backend.open(), backend.open());
    let (a, b, c) = (a.unwrap(), b.unwrap(), c.unwrap());
    let instance = a.instance().await.unwrap();
    assert_eq!(b.instance().await.unwrap(), instance);
    assert_eq!(c.instance().await.unwrap(), instance);
    assert_eq!(backend.versions().await, (1..=backend.latest_version()).collect::<Vec<_>>());
    // And they share one log.
    let written = a.append(batch(vec![create("org", "o1", "", None)])).await.unwrap();
    b.append(batch(vec![put("org", "o1", Expect::Sequence(1), "", None, json!(2))])).await.unwrap();
    assert_eq!(c.head("org", "o1").await.unwrap().object.unwrap().sequence, 2);
    assert_eq!(log_through(&*c, None, 2).await[0], written[0]);
}

/// A database written by a version-1 binary opens with this one: migrated, its objects, their
/// references and its log readable, the log continuing.
pub(crate) async fn opens_a_database_written_by_the_first_version(h: Arc<Harness>) {
    let t0: Micros = 1_700_000_000_000_000;
    let row = |id: &str, parent: &str, name: &str, state: Value, sequence: u64, created_at: Micros, at: Micros| {
        StoredObject {
            kind: if parent.is_empty() { "organization" } else { "user" }.into(),
            id: id.into(),
            owner: "o1".into(),
            parent: parent.into(),
            name: Some(name.into()),
            state: state.to_string(),
            sequence,
            created_at,
            updated_at: at,
        }
    };
    let event = |position: u64, kind: &str, id: &str, sequence: u64, event_type: &str, at: Micros| Event {
        position,
        kind: kind.into(),
        object_id: id.into(),
        sequence,
        event_type: event_type.into(),
        payload: json!({ "n": position }),
        actor: "user:local:admin".into(),
        owner: "o1".into(),
        created_at: at,
    };
    let events = vec![
        event(1, "organization", "o1", 1, "organization.added", t0),
        event(2, "organization", "o2", 1, "organization.added", t0 + 1),
        event(3, "organization", "o1", 2, "organization.changed", t0 + 2),
        event(4, "user", "u1", 1, "user.added", t0 + 3),
        event(5, "organization", "o2", 2, "organization.removed", t0 + 4),
    ];
    // Versions before 3 wrote no parent for an organization's domain policy, which shares
    // the organization's id.
    let policy = StoredObject {
        kind: "domain_policy".into(),
        parent: String::new(),
        name: None,
        ..row("o1", "o1", "", json!({ "validateOrgDomains": true }), 1, t0 + 1, t0 + 1)
    };
    let objects = vec![
        row("o1", "", "acme", json!({ "name": "acme", "v": 2 }), 2, t0, t0 + 2),
        row("u1", "o1", "alice", json!({ "name": "alice" }), 1, t0 + 3, t0 + 3),
        policy,
    ];
    let backend = h.backend().await;
    let signing_key = backend.create_at_first_version(&events, &objects).await;
    assert_eq!(backend.versions().await, vec![1]);

    let store = backend.open().await.unwrap();
    assert_eq!(backend.versions().await, (1..=backend.latest_version()).collect::<Vec<_>>());
    // Page tokens signed before the upgrade stay valid.
    assert_eq!(store.instance().await.unwrap().signing_key, signing_key);
    let o1 = store.head("organization", "o1").await.unwrap().object.unwrap();
    assert_eq!(
        (o1.sequence, o1.created_at, o1.updated_at, state(&o1)),
        (2, t0, t0 + 2, json!({ "name": "acme", "v": 2 }))
    );
    let o2 = store.head("organization", "o2").await.unwrap();
    assert_eq!((o2.object, o2.sequence), (None, 2));
    assert_eq!(store.head("user", "u1").await.unwrap().object.map(|u| u.parent), Some("o1".to_owned()));
    let mut rows: Vec<(String, String, String)> =
        store.snapshot().await.unwrap().objects.into_iter().map(|o| (o.kind, o.id, o.parent)).collect();
    rows.sort();
    let row = |kind: &str, id: &str, parent: &str| (kind.to_owned(), id.to_owned(), parent.to_owned());
    assert_eq!(rows, [row("domain_policy", "o1", "o1"), row("organization", "o1", ""), row("user", "u1", "o1")]);
    // What an organization owns references it, so it cannot go before them.
    assert_eq!(
        backend.refs_to("organization", "o1").await,
        vec![ObjectKey::new("domain_policy", "o1"), ObjectKey::new("user", "u1")]
    );
    assert_eq!(backend.refs_to("organization", "o2").await, vec![]);

    let read = log_through(&*store, None, 5).await;
    assert_eq!(read.iter().map(|c| c.event.clone()).collect::<Vec<_>>(), events);
    assert_increasing(&read);

    // The log, sequences and clock continue.
    let next = store
        .append(batch(vec![put("organization", "o1", Expect::Sequence(2), "", Some("acme"), json!({ "v": 3 }))]))
        .await
        .unwrap();
    assert_eq!((next[0].event.position, next[0].event.sequence), (6, 3));
    assert_eq!(store.head("organization", "o1").await.unwrap().object.unwrap().created_at, t0);
    assert!(next[0].event.created_at >= t0 + 4);
    let again = store.append(batch(vec![create("organization", "o2", "", Some("beta"))])).await.unwrap();
    assert_eq!(again[0].event.sequence, 3);
    assert_eq!(log_through(&*store, Some(("organization", "o1")), 7).await.len(), 3);
    let refused = store.append(batch(vec![delete("organization", "o1", Expect::Sequence(3))])).await.unwrap_err();
    assert!(
        matches!(&refused, StoreError::Referenced { by, .. } if by.len() == 2 && by[1] == ObjectKey::new("user", "u1")),
        "{refused:?}"
    );
}

pub(crate) async fn newer_schema_refuses_to_open(h: Arc<Harness>) {
    let backend = h.backend().await;
    backend.open().await.unwrap().close().await.unwrap();
    backend
        .execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'future', 0)")
        .await
        .unwrap();
    match backend.open().await.map(|_| ()) {
        Err(StoreError::Unavailable(message)) => {
            assert!(message.contains("schema version 999 is newer"), "{message}");
            assert!(message.contains(&format!("up to {}", backend.latest_version())), "{message}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

pub(crate) async fn closed_store_is_unavailable(h: Arc<Harness>) {
    let store = h.store().await;
    store.append(batch(vec![create("org", "o1", "", None)])).await.unwrap();
    store.close().await.unwrap();
    let unavailable = |r: StoreError| matches!(r, StoreError::Unavailable(ref m) if m.contains("closed"));
    assert!(unavailable(store.append(batch(vec![create("org", "o2", "", None)])).await.unwrap_err()));
    assert!(unavailable(store.append(batch(vec![])).await.unwrap_err()));
    assert!(unavailable(store.ping().await.unwrap_err()));
    assert!(unavailable(store.instance().await.unwrap_err()));
    assert!(unavailable(store.read_log(None, LogCursor::default(), 1).await.unwrap_err()));
    assert!(unavailable(store.locate(1).await.unwrap_err()));
    assert!(unavailable(store.snapshot().await.unwrap_err()));
    assert!(unavailable(store.head("org", "o1").await.unwrap_err()));
    store.close().await.unwrap();
}

/// One `#[tokio::test]` per backend and behaviour: the module that invokes it holds the
/// behaviours and has `run` and `Target` in scope (the model's replica tests use it too).
macro_rules! conformance_suite {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::run(super::Target::Sqlite, stringify!($test), super::$test).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::run(super::Target::Postgres, stringify!($test), super::$test).await;
                }
            )*
        }
    };
}

pub(crate) use conformance_suite;

conformance_suite!(
    append_then_read_round_trips,
    sequence_increments_and_continues_after_delete,
    events_of_one_request_are_stamped_in_write_order,
    absent_on_existing_object_conflicts_and_writes_nothing,
    stale_or_missing_sequence_conflicts,
    failing_write_in_a_request_writes_nothing,
    later_writes_in_a_request_see_earlier_ones,
    names_are_unique_per_kind_and_parent,
    read_log_in_cursor_order_with_and_without_object_filter,
    read_log_carries_what_append_answered,
    locate_finds_readable_positions,
    concurrent_appends_all_land,
    racing_writers_exactly_one_wins,
    a_failing_request_does_not_fail_its_neighbours,
    guards_hold_in_the_writes_transaction,
    a_referenced_object_cannot_be_deleted,
    a_delete_racing_a_reference_leaves_no_dangling_reference,
    a_snapshot_and_the_log_after_it_miss_nothing,
    instance_is_stable_across_reopen,
    instance_row_and_events_cannot_change,
    data_survives_reopen,
    migrates_an_empty_database,
    concurrent_opens_migrate_once,
    opens_a_database_written_by_the_first_version,
    newer_schema_refuses_to_open,
    closed_store_is_unavailable,
);
