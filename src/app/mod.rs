//! Use cases: what each API method does, in domain terms. No protobuf types and no SQL
//! here; handlers in `api/` convert, call these, and convert back. Every write is an
//! event appended through the [`Store`], checked against the object's current sequence.

pub mod domain_policy;
pub mod error;
pub mod history;
pub mod organizations;
pub mod page;

use std::sync::Arc;

use crate::store::view::View;
use crate::store::{Instance, Micros, Store, StoredObject};
pub use error::{AppError, ErrorKind};

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
    pub fn of(object: &StoredObject) -> Details {
        Details {
            sequence: object.sequence,
            created_at: object.created_at,
            changed_at: object.updated_at,
            owner: object.owner.clone(),
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
    pub(crate) fn of(value: T, committed: &[crate::store::Committed]) -> Receipt<T> {
        Receipt { value, position: committed.iter().map(|c| c.event.position).max() }
    }
}

/// Optimistic concurrency: a write that names the version it read (`If-Match`) fails with
/// ABORTED, changing nothing, when the object has moved on since.
pub(crate) fn check_version(expected: Option<u64>, current: &StoredObject, what: &str) -> Result<(), AppError> {
    match expected {
        Some(expected) if expected != current.sequence => Err(AppError::new(
            ErrorKind::Aborted,
            "VERSION_MISMATCH",
            format!("the {what} is at version \"{}\", not \"{expected}\"; read it again and retry", current.sequence),
        )),
        _ => Ok(()),
    }
}

/// The application: the store, this replica's view of it, and the facts of the instance.
///
/// Answers to reads come from the `view`. Writes go through the `view` too (so this replica
/// reads its own writes at once), but the checks before a write read the backend `store`,
/// so a replica whose view lags never refuses a write on a version it has not seen yet.
pub struct App {
    store: Arc<dyn Store>,
    view: Arc<View>,
    instance: Instance,
    pages: page::PageSigner,
}

impl App {
    /// Opens the application on a store and its view, seeding what a new instance starts with.
    pub async fn new(store: Arc<dyn Store>, view: Arc<View>) -> Result<Arc<App>, AppError> {
        let instance = store.instance().await?;
        let pages = page::PageSigner::new(&instance.signing_key)?;
        let app = App { store, view, instance, pages };
        app.seed_default_domain_policy().await?;
        Ok(Arc::new(app))
    }
}
