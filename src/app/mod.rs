//! Use cases: what each API method does, in domain terms. No protobuf types and no SQL
//! here; handlers in `api/` convert, call these, and convert back. Every write is an
//! event appended through the [`Store`], checked against the object's current sequence.

pub mod domain_policy;
pub mod error;
pub mod organizations;
pub mod page;

use std::sync::Arc;

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

/// The application: the store and the facts of this instance.
pub struct App {
    store: Arc<dyn Store>,
    instance: Instance,
    pages: page::PageSigner,
}

impl App {
    /// Opens the application on a store, seeding what a new instance starts with.
    pub async fn new(store: Arc<dyn Store>) -> Result<Arc<App>, AppError> {
        let instance = store.instance().await?;
        let pages = page::PageSigner::new(&instance.signing_key)?;
        let app = App { store, instance, pages };
        app.seed_default_domain_policy().await?;
        Ok(Arc::new(app))
    }

    pub fn instance_id(&self) -> &str {
        &self.instance.id
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }
}
