//! Use cases: what each API method does, in domain terms. No protobuf types and no SQL
//! here; handlers in `api/` convert, call these, and convert back. Reads answer from this
//! replica's typed state; every write is planned against it through a
//! [`Draft`](crate::model::draft::Draft) and committed as one batch of events.

pub mod access;
pub mod accounts;
pub mod authz;
pub mod authzen;
pub mod conditions;
pub mod domain_policy;
pub mod error;
pub mod history;
pub mod iam;
pub mod organizations;
pub mod page;
pub mod recent;
pub mod simulate;

use std::sync::{Arc, RwLockReadGuard};
use std::time::{Duration, Instant};

use crate::methods::MethodTable;
use crate::metrics::DecisionSource;
use crate::model::draft::Draft;
use crate::model::kind::{Key, Kind};
use crate::model::objects::{Meta, Obj, Objects};
use crate::model::replica::{Replica, WaitError, Written};
use crate::store::{Instance, Micros, StoreError};
pub use error::{AppError, ErrorKind};

/// How often a write whose plan went stale is planned again before it gives up; each retry
/// means another write to one of its objects succeeded meanwhile, so a request only runs
/// out under sustained contention on its objects.
const WRITE_ATTEMPTS: u32 = 100;

/// Who is asking, as the front door authenticated it: a subject (`user:local:alice`,
/// `token:ci`, `user:oidc:…`) and the teams its credential carries (OIDC groups; the teams
/// stored for a user the engine holds itself). The subject is recorded with each write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    pub subject: String,
    pub teams: Vec<String>,
}

impl Actor {
    /// iamd itself, for what it seeds.
    pub fn system() -> Actor {
        Actor { subject: "system".into(), teams: Vec::new() }
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

    pub(crate) fn map<U>(self, f: impl FnOnce(T) -> U) -> Receipt<U> {
        Receipt { value: f(self.value), position: self.position }
    }
}

/// Waits until `replica` holds the write that answered `token` (a log position), for at most
/// `bound`: the one reading of a consistency token, whether it comes as the
/// `x-iamd-consistency-token` header of any call or as a check's `consistencyToken` (`field`
/// names where). A token that is not a position is INVALID_ARGUMENT; one past the store's last
/// position, OUT_OF_RANGE at once; one not reached in time, UNAVAILABLE.
pub async fn reach_token(replica: &Replica, field: &str, token: &str, bound: Duration) -> Result<(), AppError> {
    let token = token.trim();
    let Ok(position) = token.parse::<u64>() else {
        return Err(AppError::invalid(
            field,
            format!("`{token}` is not a consistency token: send the log position a write or a check answered"),
        ));
    };
    match replica.wait_for(position, bound).await {
        Ok(()) => Ok(()),
        Err(WaitError::Beyond) => Err(AppError::new(
            ErrorKind::OutOfRange,
            "TOKEN_BEYOND_LOG",
            format!("consistency token {position} is past the end of the event log; send a token a write answered"),
        )),
        Err(WaitError::Late) => Err(AppError::new(
            ErrorKind::Unavailable,
            "TOKEN_NOT_REACHED",
            format!("this replica has not caught up with consistency token {position} within {bound:?}; retry"),
        )),
        Err(WaitError::Store(e)) => Err(e.into()),
    }
}

/// The answer of a write that may have found nothing to change: the object as it stood
/// (no event, so no position), or as the write left it.
pub(crate) fn changed_or_current<K: Kind>(
    unchanged: Option<Obj<K>>,
    written: &Written,
    id: &str,
) -> Result<Receipt<Obj<K>>, AppError> {
    match unchanged {
        Some(current) => Ok(Receipt { value: current, position: None }),
        None => Ok(Receipt::of(written.get::<K>(id).ok_or_else(organizations::missing_commit)?, written)),
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
    tokens: access::TokenDigester,
    decisions: access::Decisions,
    /// The questions of the last decisions, for simulations.
    recent: recent::Recent,
    /// How long a read that carries a consistency token waits for this replica to reach it.
    consistency_wait: Duration,
}

impl App {
    /// Opens the application on a replica, seeding what a new instance starts with (the
    /// managed roles are named with the actions of `methods`).
    pub async fn new(
        replica: Arc<Replica>,
        methods: &MethodTable,
        consistency_wait: Duration,
    ) -> Result<Arc<App>, AppError> {
        let instance = replica.store().instance().await?;
        let pages = page::PageSigner::new(&instance.signing_key)?;
        let tokens = access::TokenDigester::new(&instance.signing_key)?;
        let app = App {
            replica,
            instance,
            pages,
            tokens,
            decisions: Default::default(),
            recent: Default::default(),
            consistency_wait,
        };
        app.seed_default_domain_policy().await?;
        app.seed_iam(methods).await?;
        app.seed_org_policies().await?;
        Ok(Arc::new(app))
    }

    /// The state, for reads; held only while a use case reads.
    fn objects(&self) -> Result<RwLockReadGuard<'_, Objects>, AppError> {
        Ok(self.replica.read()?)
    }

    /// The server's metrics.
    pub fn metrics(&self) -> &crate::metrics::Metrics {
        self.replica.metrics()
    }

    /// Counts a decision, and keeps its question among the recent ones.
    fn decided(&self, source: DecisionSource, request: &iamd_engine::Request<'_>, allowed: bool, started: Instant) {
        self.metrics().decided(source, allowed, started.elapsed());
        self.recent.record(request);
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
        if let Some(rehearsed) = self.rehearsed_write(&mut plan) {
            return rehearsed;
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (planned, reads) = {
                let objects = self.objects()?;
                let mut draft = Draft::new(&objects);
                let result = plan(&mut draft);
                let mut plan = draft.finish();
                let reads = std::mem::take(&mut plan.reads);
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
            let stale = match self.replica.commit(&actor.subject, plan).await {
                Ok(written) => return Ok((value, written)),
                Err(StoreError::NameTaken { kind, name }) => {
                    let reason = self.replica.registry().name_taken(&kind);
                    return Err(error::name_taken(reason, &kind, &name));
                }
                Err(e) => match self.stale_objects(&e) {
                    Some(stale) => stale,
                    None => return Err(e.into()),
                },
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

    /// The objects a commit found this replica stale on, when reading them again can
    /// change the plan: not for an error of another sort, nor for an object of a kind this
    /// server does not know (it would be refused again the same way).
    fn stale_objects(&self, error: &StoreError) -> Option<Vec<Key>> {
        let registry = self.replica.registry();
        let key = |kind: &str, id: &str| Some(Key::new(registry.intern(kind)?, id));
        match error {
            StoreError::Conflict { kind, id, .. } => Some(vec![key(kind, id)?]),
            StoreError::Referenced { by, .. } => by.iter().map(|r| key(&r.kind, &r.id)).collect(),
            _ => None,
        }
    }
}

/// A short random pause before the next attempt, growing with the attempts, so writers that
/// collided do not collide again in step.
fn backoff(attempt: u32) -> Duration {
    let ceiling = 100 * u64::from(attempt.min(50));
    let jitter = getrandom::u32().map_or(ceiling / 2, |r| u64::from(r) % ceiling.max(1));
    Duration::from_micros(jitter)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::config::Config;
    use crate::store::{Append, Batch, Change, Expect, ObjectKey};

    /// A delete refused for a referrer of a kind this server does not know (one a newer
    /// version wrote) is answered as refused at once: reading that referrer again cannot
    /// change the plan, so the write loop does not spend its attempts on it.
    #[tokio::test]
    async fn a_delete_refused_for_a_referrer_of_an_unknown_kind_is_answered_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::open(&Config::for_data_dir(dir.path())).await.unwrap();
        let replica = Replica::open(store.clone(), crate::kinds::registry(), Duration::from_millis(20)).await.unwrap();
        let app = App::new(replica, &MethodTable::served().unwrap(), Duration::from_secs(2)).await.unwrap();
        let id = app.create_organization(&Actor::system(), "acme", "").await.unwrap().value.id.to_string();
        let newer = Append {
            kind: "workflow".into(),
            id: "w1".into(),
            expect: Expect::Absent,
            event_type: "workflow.added".into(),
            payload: json!({}),
            change: Change::Put {
                owner: id.clone(),
                parent: id.clone(),
                name: None,
                state: "{}".into(),
                refs: Some(vec![ObjectKey::new("organization", &id)]),
            },
        };
        store.append(Batch::new("newer", vec![newer])).await.unwrap();

        let refused = app.delete_organization(&Actor::system(), &id, None).await.unwrap_err();
        assert_eq!((refused.kind, refused.reason), (ErrorKind::FailedPrecondition, "STILL_REFERENCED"), "{refused}");
        assert!(refused.message.contains("workflow `w1`"), "{refused}");
        assert!(app.organization(&id).await.is_ok());
    }
}
