//! Use cases: what each API method does, in domain terms. No protobuf types and no SQL
//! here; handlers in `api/` convert, call these, and convert back. Reads answer from this
//! replica's typed state; every write is planned against it through a
//! [`Draft`](crate::model::draft::Draft) and committed as one batch of events.

pub mod domain_policy;
pub mod error;
pub mod history;
pub mod organizations;
pub mod page;

use std::sync::{Arc, RwLockReadGuard};
use std::time::Duration;

use crate::model::draft::Draft;
use crate::model::kind::Key;
use crate::model::objects::{Meta, Objects};
use crate::model::replica::{Replica, Written};
use crate::store::{Instance, Micros, StoreError};
pub use error::{AppError, ErrorKind};

/// How often a write whose plan went stale is planned again before it gives up; each retry
/// means another write to one of its objects succeeded meanwhile, so a request only runs
/// out under sustained contention on its objects.
const WRITE_ATTEMPTS: u32 = 100;

/// Who asked for a write, recorded with its event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor(pub String);

impl Actor {
    pub fn system() -> Actor {
        Actor("system".into())
    }
}

/// Where an object stands in the event log (ZITADEL's ObjectDetails).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Details {
    pub sequence: u64,
    pub created_at: Micros,
    pub changed_at: Micros,
    pub owner: String,
}

impl Details {
    pub fn of(meta: &Meta) -> Details {
        Details {
            sequence: meta.sequence,
            created_at: meta.created_at,
            changed_at: meta.updated_at,
            owner: meta.owner.to_string(),
        }
    }
}

/// What a write answers besides its result: the log position of its last event. Clients
/// send it back as a consistency token to read their own write on any replica.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt<T> {
    pub value: T,
    /// `None` when the write changed nothing and appended no event.
    pub position: Option<u64>,
}

impl<T> Receipt<T> {
    pub(crate) fn of(value: T, written: &Written) -> Receipt<T> {
        Receipt { value, position: written.position }
    }
}

/// Optimistic concurrency: a write that names the version it read (`If-Match`) fails with
/// ABORTED, changing nothing, when the object has moved on since.
pub(crate) fn check_version(expected: Option<u64>, current: &Meta, what: &str) -> Result<(), AppError> {
    match expected {
        Some(expected) if expected != current.sequence => Err(AppError::new(
            ErrorKind::Aborted,
            "VERSION_MISMATCH",
            format!("the {what} is at version \"{}\", not \"{expected}\"; read it again and retry", current.sequence),
        )),
        _ => Ok(()),
    }
}

/// The application: this replica's state of the store, and the facts of the instance.
pub struct App {
    replica: Arc<Replica>,
    instance: Instance,
    pages: page::PageSigner,
}

impl App {
    /// Opens the application on a replica, seeding what a new instance starts with.
    pub async fn new(replica: Arc<Replica>) -> Result<Arc<App>, AppError> {
        let instance = replica.store().instance().await?;
        let pages = page::PageSigner::new(&instance.signing_key)?;
        let app = App { replica, instance, pages };
        app.seed_default_domain_policy().await?;
        Ok(Arc::new(app))
    }

    /// The state, for reads; held only while a use case reads.
    fn objects(&self) -> Result<RwLockReadGuard<'_, Objects>, AppError> {
        Ok(self.replica.read()?)
    }

    /// Plans a write against this replica's state and commits it. Only a request that named
    /// a version (`If-Match`) fails for a version: when the plan or its commit finds the state
    /// stale (another request wrote one of its objects first, or this replica has not heard
    /// of an object yet), the objects it read are read again from the store and the plan is
    /// made again, so a write fails only for a real rule or a version it asked for.
    pub(crate) async fn write<T>(
        &self,
        actor: &Actor,
        mut plan: impl FnMut(&mut Draft<'_>) -> Result<T, AppError>,
    ) -> Result<(T, Written), AppError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (planned, reads) = {
                let objects = self.objects()?;
                let mut draft = Draft::new(&objects);
                let result = plan(&mut draft);
                let plan = draft.finish();
                let reads = plan.reads.clone();
                (result.map(|value| (value, plan)), reads)
            };
            let (value, plan) = match planned {
                Ok(planned) => planned,
                Err(error) => {
                    // A verdict of the state may be a verdict of a stale state: plan again if
                    // the objects it read stand otherwise now (the follower may have caught up
                    // meanwhile, or the store knows better).
                    if attempt < WRITE_ATTEMPTS && error.may_depend_on_state() {
                        let keys: Vec<Key> = reads.keys().cloned().collect();
                        self.replica.refresh(&keys).await?;
                        if reads.changed_in(&*self.objects()?) {
                            continue;
                        }
                    }
                    return Err(error);
                }
            };
            let stale = match self.replica.commit(&actor.0, plan).await {
                Ok(written) => return Ok((value, written)),
                Err(StoreError::NameTaken { kind, name }) => return Err(self.name_taken(&kind, &name)),
                Err(StoreError::Conflict { kind, id, .. }) => self.keys([(kind, id)]),
                Err(StoreError::Referenced { by, .. }) => self.keys(by.into_iter().map(|r| (r.kind, r.id))),
                Err(e) => return Err(e.into()),
            };
            if attempt >= WRITE_ATTEMPTS {
                return Err(AppError::new(
                    ErrorKind::Aborted,
                    "CONCURRENT_MODIFICATION",
                    "the objects of this request kept changing while it was written; retry",
                ));
            }
            let keys: Vec<Key> = reads.keys().cloned().chain(stale).collect();
            self.replica.refresh(&keys).await?;
            tokio::time::sleep(backoff(attempt)).await;
        }
    }

    fn keys(&self, keys: impl IntoIterator<Item = (String, String)>) -> Vec<Key> {
        let Ok(objects) = self.objects() else { return Vec::new() };
        let registry = objects.registry();
        keys.into_iter().filter_map(|(kind, id)| Some(Key::new(registry.intern(&kind)?, id))).collect()
    }

    fn name_taken(&self, kind: &str, name: &str) -> AppError {
        let reason = self.objects().map_or("NAME_TAKEN", |objects| objects.registry().name_taken(kind));
        let what = with_article(&error::label(kind));
        AppError::new(ErrorKind::AlreadyExists, reason, format!("{what} named `{name}` already exists"))
    }
}

/// `an organization`, `a domain policy`.
pub(crate) fn with_article(label: &str) -> String {
    let vowel = label.starts_with(['a', 'e', 'i', 'o', 'u']);
    format!("{} {label}", if vowel { "an" } else { "a" })
}

/// A short random pause before the next attempt, growing with the attempts, so writers that
/// collided do not collide again in step.
fn backoff(attempt: u32) -> Duration {
    let ceiling = 100 * u64::from(attempt.min(50));
    let jitter = getrandom::u32().map_or(ceiling / 2, |r| u64::from(r) % ceiling.max(1));
    Duration::from_micros(jitter)
}
