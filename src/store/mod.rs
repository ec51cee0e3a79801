//! The durable store: an append-only event log plus current-state rows and the references
//! between objects, written in one transaction so a read sees every write that was answered.
//!
//! The store knows objects, not domains: an object is a kind, an id, a JSON state, an owner,
//! an optional name that is unique among the objects of its kind and parent, the objects it
//! references, and the per-object sequence of its events. An event records what changed (its
//! payload), never the whole object: the current-state row holds the object. What a state or
//! a payload means is the `model` layer's business, and nothing here branches on a kind.
//! Backends (embedded SQLite, the default, and PostgreSQL for several replicas) implement
//! [`Store`] and pass the same conformance suite (`conformance.rs`); [`open`] picks one from
//! the configuration.

#[cfg(test)]
pub(crate) mod conformance;
#[cfg(test)]
pub(crate) mod fixtures;
pub mod metered;
pub mod postgres;
pub mod sqlite;

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

/// An object's identity: its kind and its id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    pub kind: String,
    pub id: String,
}

impl ObjectKey {
    pub fn new(kind: impl Into<String>, id: impl Into<String>) -> ObjectKey {
        ObjectKey { kind: kind.into(), id: id.into() }
    }
}

/// An object as it stands after its latest event.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredObject {
    pub kind: String,
    pub id: String,
    /// The organization (or the instance) that owns the object.
    pub owner: String,
    /// The scope in which its name is unique ("" for top level).
    pub parent: String,
    pub name: Option<String>,
    /// The state, as JSON text.
    pub state: String,
    /// The sequence of the object's latest event; the first event is 1.
    pub sequence: u64,
    /// The time of the object's first event since it last came into existence.
    pub created_at: Micros,
    /// The time of the object's latest event.
    pub updated_at: Micros,
}

/// What a write expects of an object before it applies; what a guard asserts of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// No check.
    Any,
    /// The object must not exist (a create).
    Absent,
    /// The object must exist, at any sequence (a reference to it).
    Exists,
    /// The object must exist with exactly this latest sequence (optimistic concurrency).
    Sequence(u64),
}

impl Expect {
    /// Whether an object at `actual` (`None`: absent) meets the expectation.
    pub fn holds(self, actual: Option<u64>) -> bool {
        match self {
            Expect::Any => true,
            Expect::Absent => actual.is_none(),
            Expect::Exists => actual.is_some(),
            Expect::Sequence(n) => actual == Some(n),
        }
    }
}

/// What a write does to the current state.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Creates or replaces the object's current state.
    Put {
        owner: String,
        parent: String,
        name: Option<String>,
        /// JSON text.
        state: String,
        /// The objects it references from now on; `None` keeps the references it had.
        refs: Option<Vec<ObjectKey>>,
    },
    /// Removes the object's current state and its references. Its events stay, and a later
    /// `Put` continues its sequence. Refused while another object references it.
    Delete,
}

/// One event to append to one object, with the change it makes.
#[derive(Debug, Clone, PartialEq)]
pub struct Append {
    pub kind: String,
    pub id: String,
    pub expect: Expect,
    /// For example `org.added`, `org.policy.domain.changed`.
    pub event_type: String,
    /// What changed, never the whole object.
    pub payload: Value,
    pub change: Change,
}

/// An assertion about an object the request does not write, checked in the same transaction
/// as the writes (on PostgreSQL, under a shared lock that a write of the object takes
/// exclusively), so a concurrent write or delete of it serialises with the request, and
/// requests that only guard it do not serialise with each other.
#[derive(Debug, Clone, PartialEq)]
pub struct Guard {
    pub kind: String,
    pub id: String,
    pub expect: Expect,
}

/// One request's writes: all or nothing, in order, each later write seeing the earlier ones.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Who asked for the writes (a subject such as `user:local:admin`, or `system`).
    pub actor: String,
    pub writes: Vec<Append>,
    /// Checked against the objects as they were before the request's writes.
    pub guards: Vec<Guard>,
}

impl Batch {
    /// Writes without guards.
    pub fn new(actor: impl Into<String>, writes: Vec<Append>) -> Batch {
        Batch { actor: actor.into(), writes, guards: Vec::new() }
    }
}

/// What one write does to its object, worked out here once for every backend.
pub(crate) struct Step<'a> {
    /// The sequence of the write's event.
    pub sequence: u64,
    /// The event's resource owner: the new owner of a put, the current one of a delete.
    pub owner: String,
    /// The row's created_at after a put: kept by a replace, now for a create.
    pub created_at: Micros,
    /// The references a put stores in place of the object's `refs` rows; `None` leaves the
    /// rows as they are. A new object has no rows (its delete removed them), so an empty
    /// list is `None` for it.
    pub refs: Option<&'a [ObjectKey]>,
}

impl Append {
    /// Checks the write's expectation against `head` (the object as the request's earlier
    /// writes left it) and moves `head` past the write. A failed `Expect`, or a delete of
    /// what is not there (the caller's view is stale), is a Conflict.
    pub(crate) fn step(&self, head: &mut Head, now: Micros) -> StoreResult<Step<'_>> {
        let current = head.object.as_ref();
        let actual = current.map(|object| object.sequence);
        let deletes_nothing = matches!(self.change, Change::Delete) && current.is_none();
        if !self.expect.holds(actual) || deletes_nothing {
            return Err(StoreError::Conflict {
                kind: self.kind.clone(),
                id: self.id.clone(),
                expected: self.expect,
                actual,
            });
        }
        let sequence = head.sequence.checked_add(1).ok_or_else(|| {
            StoreError::Internal(format!("`{}` `{}` ran out of sequence numbers", self.kind, self.id))
        })?;
        let created_at = current.map_or(now, |object| object.created_at);
        let (owner, refs, object) = match &self.change {
            Change::Put { owner, parent, name, state, refs } => {
                let refs = refs.as_deref().filter(|refs| current.is_some() || !refs.is_empty());
                let object = StoredObject {
                    kind: self.kind.clone(),
                    id: self.id.clone(),
                    owner: owner.clone(),
                    parent: parent.clone(),
                    name: name.clone(),
                    state: state.clone(),
                    sequence,
                    created_at,
                    updated_at: now,
                };
                (owner.clone(), refs, Some(object))
            }
            Change::Delete => (current.map(|object| object.owner.clone()).unwrap_or_default(), None, None),
        };
        *head = Head { object, sequence };
        Ok(Step { sequence, owner, created_at, refs })
    }

    /// The event this write appends at `position`, as the object's `sequence`-th, at `now`.
    pub(crate) fn event(&self, actor: &str, owner: &str, position: u64, sequence: u64, now: Micros) -> Event {
        Event {
            position,
            kind: self.kind.clone(),
            object_id: self.id.clone(),
            sequence,
            event_type: self.event_type.clone(),
            payload: self.payload.clone(),
            actor: actor.to_owned(),
            owner: owner.to_owned(),
            created_at: now,
        }
    }
}

impl Guard {
    pub(crate) fn check(&self, actual: Option<u64>) -> StoreResult<()> {
        if self.expect.holds(actual) {
            Ok(())
        } else {
            Err(StoreError::Conflict { kind: self.kind.clone(), id: self.id.clone(), expected: self.expect, actual })
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
    /// The object's owner.
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

/// One event with its place in the log: what `append` answers and what the log delivers.
#[derive(Debug, Clone, PartialEq)]
pub struct Committed {
    pub cursor: LogCursor,
    pub event: Event,
}

/// The current state of every object, and the place in the log from which a follower picks
/// up what the rows do not reflect yet.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// INVARIANT: every event at or before `cursor` is reflected in `objects`; an event after
    /// it may be reflected already (on PostgreSQL, a transaction that committed before the
    /// snapshot while an older one was still running), and is then at or below its object's
    /// sequence in `objects`, so a follower that skips those applies nothing twice.
    pub cursor: LogCursor,
    pub objects: Vec<StoredObject>,
}

/// One object's row if it exists, and the sequence of its latest event either way.
#[derive(Debug, Clone, PartialEq)]
pub struct Head {
    pub object: Option<StoredObject>,
    /// 0 when the object never had an event.
    pub sequence: u64,
}

/// Where a log position stands, for consistency tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Located {
    /// The log delivers it, at this cursor.
    At(LogCursor),
    /// Taken, but not delivered yet: still committing, held behind an older transaction, or
    /// never to come (a rolled-back transaction's position).
    Pending,
    /// Past the last position the store has handed out: no write ever answered it.
    Beyond,
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
        f.debug_struct("Instance").field("id", &self.id).field("signing_key", &"<redacted>").finish()
    }
}

/// Cloneable so one failure can answer every request it failed (a group commit).
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// An `Expect` of a write or a guard did not hold; nothing was written.
    #[error("`{kind}` `{id}` is at sequence {actual:?}, expected {expected:?}")]
    Conflict { kind: String, id: String, expected: Expect, actual: Option<u64> },
    /// A `Put` named a name that another object of the kind and parent holds.
    #[error("a `{kind}` named `{name}` already exists")]
    NameTaken { kind: String, name: String },
    /// A `Delete` of an object that other objects still reference; nothing was written.
    #[error("`{kind}` `{id}` is still referenced by {by:?}")]
    Referenced { kind: String, id: String, by: Vec<ObjectKey> },
    /// The backing database cannot be reached or refused the work.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The volume the database lives on has no room for the write; nothing was written.
    /// Reads go on, and writes succeed again once space is freed.
    #[error("store full: {0}")]
    Full(String),
    /// The volume the database lives on (or the database itself) refuses writes; nothing
    /// was written. Reads go on.
    #[error("store read-only: {0}")]
    ReadOnly(String),
    /// Anything else; the message is for logs, not clients.
    #[error("store failure: {0}")]
    Internal(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// How many referrers a refused delete names.
pub(crate) const REFERRERS_NAMED: i64 = 10;

/// A backend of the store. All methods are cancel-safe from the caller's view: a write either
/// commits as a whole or not at all.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The instance facts, created on first open.
    async fn instance(&self) -> StoreResult<Instance>;

    /// Checks the guards, then appends the events in order in one transaction and applies
    /// their changes. If a guard or an `Expect` fails, a name is taken or a deleted object is
    /// still referenced, nothing is written. `Unavailable` does not say that nothing was
    /// written: a database that went away after the commit was sent may have committed it.
    /// The client is told to retry, and the retry learns it from the version it expects.
    async fn append(&self, batch: Batch) -> StoreResult<Vec<Committed>>;

    /// One object's row and latest sequence: what a replica needs to catch up on one object
    /// without following the log.
    async fn head(&self, kind: &str, id: &str) -> StoreResult<Head>;

    /// Every current object and the log cursor they reflect, read in one consistent snapshot.
    async fn snapshot(&self) -> StoreResult<Snapshot>;

    /// Committed events after `after` in cursor order, of one object (kind, id) or of all.
    /// Only events that no running transaction can precede are delivered.
    async fn read_log(&self, object: Option<(&str, &str)>, after: LogCursor, limit: u32)
    -> StoreResult<Vec<Committed>>;

    /// Where the event at log `position` stands. Consistency tokens wait on this.
    async fn locate(&self, position: u64) -> StoreResult<Located>;

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

/// A new instance's page-signing key: 32 bytes from the operating system's random source.
pub(crate) fn new_signing_key() -> StoreResult<Vec<u8>> {
    let mut key = vec![0u8; 32];
    getrandom::fill(&mut key)
        .map_err(|e| StoreError::Unavailable(format!("the operating system's random source failed: {e}")))?;
    Ok(key)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, reason = "a failing test panics")]
mod tests {
    use super::*;
    use crate::config::Secret;

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
        let config = Config { database_url: Some(Secret::new(url)), ..Config::for_data_dir(dir.path()) };
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
