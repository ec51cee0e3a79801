//! The durable store: an append-only event log plus current-state rows, written in one
//! transaction so a read sees every write that was answered.
//!
//! The store knows objects, not domains: an object is a kind, an id, a JSON state, an
//! optional name that is unique among the objects of its kind and parent, and the per-object
//! sequence of its events. What a state means is the `app` layer's business. Backends
//! (embedded SQLite, the default, and PostgreSQL for several replicas) implement [`Store`]
//! and pass the same conformance suite (`conformance.rs`); [`open`] picks one from the
//! configuration.

#[cfg(test)]
mod conformance;
pub mod postgres;
pub mod sqlite;
pub mod view;

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use crate::config::Config;

/// One numbered schema change of a backend, embedded in the binary. Each backend lists its
/// own, in version order from 1 without gaps, and refuses a database newer than its last.
pub(crate) struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

/// Microseconds since the Unix epoch, as the store keeps time.
pub type Micros = i64;

/// An object as it stands after its latest event.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredObject {
    pub kind: String,
    pub id: String,
    /// The organization (or the instance) that owns the object.
    pub owner: String,
    /// The scope that lists the object and in which its name is unique ("" for top level).
    pub parent: String,
    pub name: Option<String>,
    pub state: Value,
    /// The sequence of the object's latest event; the first event is 1.
    pub sequence: u64,
    /// The time of the object's first event since it last came into existence.
    pub created_at: Micros,
    /// The time of the object's latest event.
    pub updated_at: Micros,
}

/// What a write expects of the object before it applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// No check.
    Any,
    /// The object must not exist (a create).
    Absent,
    /// The object must exist with exactly this latest sequence (optimistic concurrency).
    Sequence(u64),
}

/// What a write does to the current state.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Creates or replaces the object's current state.
    Put { owner: String, parent: String, name: Option<String>, state: Value },
    /// Removes the object's current state. Its events stay, and a later `Put` continues its
    /// sequence.
    Delete,
}

/// One event to append, with the change it makes.
#[derive(Debug, Clone, PartialEq)]
pub struct Append {
    pub kind: String,
    pub id: String,
    pub expect: Expect,
    /// For example `org.added`, `org.policy.domain.changed`.
    pub event_type: String,
    pub payload: Value,
    /// Who asked for the write (a subject such as `user:local:admin`, or `system`).
    pub actor: String,
    /// The resource owner recorded with the event.
    pub owner: String,
    pub change: Change,
}

impl Append {
    /// Checks the write's expectation against the object's current state. A failed
    /// `Expect`, or a delete of what is not there (the caller's view is stale), is a Conflict.
    pub(crate) fn check(&self, current: Option<&StoredObject>) -> StoreResult<()> {
        let actual = current.map(|object| object.sequence);
        let expected = match self.expect {
            Expect::Any => true,
            Expect::Absent => actual.is_none(),
            Expect::Sequence(n) => actual == Some(n),
        };
        let deletes_nothing = matches!(self.change, Change::Delete) && current.is_none();
        if !expected || deletes_nothing {
            return Err(StoreError::Conflict {
                kind: self.kind.clone(),
                id: self.id.clone(),
                expected: self.expect,
                actual,
            });
        }
        Ok(())
    }

    /// The event this write appends at `position`, as the object's `sequence`-th, at `now`.
    pub(crate) fn event(&self, position: u64, sequence: u64, now: Micros) -> Event {
        Event {
            position,
            kind: self.kind.clone(),
            object_id: self.id.clone(),
            sequence,
            event_type: self.event_type.clone(),
            payload: self.payload.clone(),
            actor: self.actor.clone(),
            owner: self.owner.clone(),
            created_at: now,
        }
    }

    /// The object as this write leaves it at `sequence` and time `now` (for a delete: as it
    /// was, with the delete's sequence and time), and whether the write deleted it. Every
    /// backend stores exactly this as the current row and as the event's snapshot.
    pub(crate) fn outcome(
        &self,
        current: Option<StoredObject>,
        sequence: u64,
        now: Micros,
    ) -> StoreResult<(StoredObject, bool)> {
        match (&self.change, current) {
            (Change::Put { owner, parent, name, state }, current) => Ok((
                StoredObject {
                    kind: self.kind.clone(),
                    id: self.id.clone(),
                    owner: owner.clone(),
                    parent: parent.clone(),
                    name: name.clone(),
                    state: state.clone(),
                    sequence,
                    created_at: current.as_ref().map_or(now, |object| object.created_at),
                    updated_at: now,
                },
                false,
            )),
            (Change::Delete, Some(before)) => Ok((StoredObject { sequence, updated_at: now, ..before }, true)),
            (Change::Delete, None) => Err(StoreError::Internal("delete of a missing object passed the check".into())),
        }
    }
}

/// An appended event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Position in the instance-wide log, unique and increasing in the order positions were
    /// taken. On a shared database a transaction may commit after one with a higher
    /// position, so readers of the whole log go by [`LogCursor`], not by position alone.
    pub position: u64,
    pub kind: String,
    pub object_id: String,
    pub sequence: u64,
    pub event_type: String,
    pub payload: Value,
    pub actor: String,
    pub owner: String,
    pub created_at: Micros,
}

/// A reader's place in the log. Backends deliver events in cursor order and guarantee that
/// no event becomes readable later with a cursor at or before one already delivered, so a
/// follower that remembers its last cursor never skips an event that committed late.
/// SQLite commits in position order and uses `epoch` 0; PostgreSQL uses the writing
/// transaction's id as `epoch` and delivers only transactions older than every one still
/// running (the `pg_snapshot_xmin` watermark).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LogCursor {
    pub epoch: u64,
    pub position: u64,
}

/// One event with the object state it left behind: what `append` answers and what the log
/// delivers to followers.
#[derive(Debug, Clone, PartialEq)]
pub struct Committed {
    pub cursor: LogCursor,
    pub event: Event,
    /// The state after the change; for a delete, the state just before it (with the delete
    /// event's sequence and time).
    pub object: StoredObject,
    /// The event removed the object.
    pub deleted: bool,
}

/// A page request in (created_at, id) order.
#[derive(Debug, Clone, PartialEq)]
pub struct PageQuery {
    /// Only objects strictly after this key in the requested direction.
    pub after: Option<(Micros, String)>,
    /// Newest first.
    pub reverse: bool,
    pub limit: u32,
}

/// Facts written once when the store is first created, the same on every replica.
#[derive(Clone, PartialEq)]
pub struct Instance {
    pub id: String,
    /// Key for signing page tokens; `Debug` leaves it out.
    pub signing_key: Vec<u8>,
}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance").field("id", &self.id).field("signing_key", &format_args!("..")).finish()
    }
}

/// The page-token signing key of a new instance: 32 bytes from the OS random source, drawn
/// once when the instance row is written and kept for the life of the store, so tokens
/// stay valid across restarts and on every replica.
pub(crate) fn new_signing_key() -> StoreResult<Vec<u8>> {
    let mut key = vec![0; 32];
    getrandom::fill(&mut key).map_err(|e| StoreError::Internal(format!("the OS random source failed: {e}")))?;
    Ok(key)
}

/// Cloneable so one failure can answer every request it failed (a group commit).
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// An `Expect` did not hold; nothing was written.
    #[error("`{kind}` `{id}` is at sequence {actual:?}, expected {expected:?}")]
    Conflict { kind: String, id: String, expected: Expect, actual: Option<u64> },
    /// A `Put` named a name that another object of the kind and parent holds.
    #[error("a `{kind}` named `{name}` already exists")]
    NameTaken { kind: String, name: String },
    /// The backing database cannot be reached or refused the work.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Anything else; the message is for logs, not clients.
    #[error("store failure: {0}")]
    Internal(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A backend of the store. All methods are cancel-safe from the caller's view: a write either
/// commits as a whole or not at all.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The instance facts, created on first open.
    async fn instance(&self) -> StoreResult<Instance>;

    /// Appends the events in order in one transaction and applies their changes. If any
    /// `Expect` fails or a name is taken, nothing is written.
    async fn append(&self, writes: Vec<Append>) -> StoreResult<Vec<Committed>>;

    /// The current state of one object, if it exists.
    async fn get(&self, kind: &str, id: &str) -> StoreResult<Option<StoredObject>>;

    /// Objects of a kind under one parent, in (created_at, id) order.
    async fn list(&self, kind: &str, parent: &str, page: &PageQuery) -> StoreResult<Vec<StoredObject>>;

    /// Committed events after `after` in cursor order, of one object (kind, id) or of all.
    /// Only events that no running transaction can precede are delivered.
    async fn read_log(&self, object: Option<(&str, &str)>, after: LogCursor, limit: u32)
    -> StoreResult<Vec<Committed>>;

    /// The cursor of the event at `position` once `read_log` delivers it; `None` while it is
    /// not (yet) deliverable or does not exist. Consistency tokens wait on this.
    async fn cursor_of(&self, position: u64) -> StoreResult<Option<LogCursor>>;

    /// Succeeds when the database answers.
    async fn ping(&self) -> StoreResult<()>;

    /// Changes whenever the log may have grown by another replica's write, for backends that
    /// can tell; followers read the log at once instead of at their next poll.
    fn log_grew(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        None
    }

    /// Flushes and closes; later calls fail with `Unavailable`.
    async fn close(&self) -> StoreResult<()>;
}

/// Opens the configured backend: PostgreSQL when a database URL is set, else SQLite in the
/// data directory. Creates and migrates the schema and seeds the instance on first use.
pub async fn open(config: &Config) -> StoreResult<Arc<dyn Store>> {
    match &config.database_url {
        Some(url) => Ok(Arc::new(postgres::PostgresStore::connect(url.expose()).await?)),
        None => {
            let dir = config.data_dir.clone();
            match tokio::task::spawn_blocking(move || sqlite::SqliteStore::open(&dir)).await {
                Ok(store) => Ok(Arc::new(store?)),
                Err(e) => Err(StoreError::Internal(format!("opening the SQLite store: {e}"))),
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, reason = "a failing test panics")]
mod tests {
    use super::*;
    use crate::config::DatabaseUrl;

    #[test]
    fn the_signing_key_is_never_printed() {
        let instance = Instance { id: "i-1".into(), signing_key: vec![0xab; 32] };
        let printed = format!("{instance:?} {instance:#?}");
        assert!(printed.contains("i-1") && !printed.contains("171") && !printed.contains("ab"), "{printed}");
    }

    #[test]
    fn a_new_signing_key_is_32_random_bytes() {
        let keys: Vec<Vec<u8>> = (0..8).map(|_| new_signing_key().unwrap()).collect();
        assert!(keys.iter().all(|key| key.len() == 32));
        for (i, key) in keys.iter().enumerate() {
            assert!(keys.iter().skip(i + 1).all(|other| other != key), "two keys are equal");
        }
        // Not two v4 UUIDs, whose version and variant bits are fixed: all eight keys would
        // have them by chance with a probability of 2^-96.
        assert!(!keys.iter().all(|key| conformance::looks_like_two_uuids(key)));
    }

    #[tokio::test]
    async fn open_picks_sqlite_without_a_database_url() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&Config::for_data_dir(dir.path())).await.unwrap();
        store.ping().await.unwrap();
        assert!(dir.path().join(sqlite::DB_FILE).exists());
        store.close().await.unwrap();
    }

    #[tokio::test]
    async fn open_picks_postgres_with_a_database_url() {
        let Some(schema) = postgres::testing::TestSchema::create("store::open test").await else {
            return;
        };
        let base = std::env::var(postgres::testing::URL_VAR).unwrap();
        let separator = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{separator}options=-c%20search_path%3D{}", schema.name);
        let dir = tempfile::tempdir().unwrap();
        let config = Config { database_url: Some(DatabaseUrl::new(url)), ..Config::for_data_dir(dir.path()) };
        let store = open(&config).await.unwrap();
        store.ping().await.unwrap();
        let id = store.instance().await.unwrap().id;
        let row = schema.client().await.query_one("SELECT id FROM instance", &[]).await.unwrap();
        assert_eq!(row.get::<_, String>(0), id);
        assert!(!dir.path().join(sqlite::DB_FILE).exists());
        store.close().await.unwrap();
        schema.drop_schema().await;
    }
}
