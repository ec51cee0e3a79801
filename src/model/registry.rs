//! The kinds one server knows. [`Registry`] erases each [`Kind`]'s types behind [`AnyKind`],
//! so the state, its indexes and the cascades of a delete work on every kind alike; typed
//! code reaches its own states again by downcasting.

use std::any::Any;
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;

use iamd_engine::{Engine, Feed};
use serde_json::Value;

use super::ModelError;
use super::kind::{Key, Kind, OnDelete, Term, decode_event, encode_event};

/// A typed state behind a shared pointer; only its kind knows its type.
pub type AnyState = Arc<dyn Any + Send + Sync>;

/// A state about to be written: the event that leads to it and what the store keeps of it.
pub(crate) struct Next {
    pub event_type: String,
    pub payload: Value,
    pub state: AnyState,
    pub json: String,
    pub name: Option<String>,
}

/// A [`Kind`] without its types.
pub(crate) trait AnyKind: Send + Sync {
    fn name_taken(&self) -> &'static str;
    fn hidden_fields(&self) -> &'static [&'static str];
    fn decode_state(&self, json: &str) -> Result<AnyState, ModelError>;
    /// The state a stored event leaves.
    fn apply(
        &self,
        id: &str,
        state: Option<&AnyState>,
        event_type: &str,
        payload: Value,
    ) -> Result<Option<AnyState>, ModelError>;
    /// The references of a state, besides its owner.
    fn references(&self, state: &AnyState) -> Vec<Key>;
    /// The lookup terms of a state.
    fn terms(&self, state: &AnyState) -> Vec<Term>;
    fn on_delete(&self, id: &str, state: &AnyState, target: &'static str) -> Result<OnDelete, ModelError>;
    /// The event that deletes an object of this kind in a cascade.
    fn removal(&self, id: &str, state: &AnyState) -> Result<(String, Value), ModelError>;
    /// What becomes of an object that drops its reference to `target`; `None` when its kind
    /// cannot drop it.
    fn detach(&self, id: &str, state: &AnyState, target: &Key) -> Result<Option<Detached>, ModelError>;
    /// Puts the state into the decision engine, or (`None`) takes the object out.
    fn decides(&self, id: &str, owner: &str, state: Option<&AnyState>, engine: &mut dyn Feed);
    /// The state's unique name (`Kind::name`), if its kind names objects.
    fn name(&self, state: &AnyState) -> Option<Box<str>>;
}

/// An object that dropped a reference: its next state, or nothing left of it (a policy
/// whose last statement named the deleted role), which is deleted by its kind's removal
/// event.
pub(crate) enum Detached {
    Changed(Next),
    Removed { event_type: String, payload: Value },
}

struct KindOf<K>(PhantomData<fn() -> K>);

fn typed<'a, K: Kind>(id: &str, state: &'a AnyState) -> Result<&'a K::State, ModelError> {
    state.downcast_ref::<K::State>().ok_or_else(|| ModelError::Apply {
        kind: K::NAME,
        id: id.to_owned(),
        message: "the state is of another kind".into(),
    })
}

/// The state an event leaves; errors name the object.
fn apply<K: Kind>(id: &str, state: Option<&K::State>, event: &K::Event) -> Result<Option<K::State>, ModelError> {
    K::apply(state, event).map_err(|message| ModelError::Apply { kind: K::NAME, id: id.to_owned(), message })
}

/// The state an event leaves, ready to be written; errors name the object.
pub(crate) fn next<K: Kind>(id: &str, state: Option<&K::State>, event: &K::Event) -> Result<Option<Next>, ModelError> {
    let Some(after) = apply::<K>(id, state, event)? else { return Ok(None) };
    let (event_type, payload) = encode_event::<K>(event)?;
    let json = serde_json::to_string(&after)
        .map_err(|e| ModelError::Codec { kind: K::NAME.to_owned(), message: e.to_string() })?;
    let name = K::name(&after).map(str::to_owned);
    Ok(Some(Next { event_type, payload, state: Arc::new(after), json, name }))
}

impl<K: Kind> AnyKind for KindOf<K> {
    fn name_taken(&self) -> &'static str {
        K::NAME_TAKEN
    }

    fn hidden_fields(&self) -> &'static [&'static str] {
        K::HIDDEN_FIELDS
    }

    fn decode_state(&self, json: &str) -> Result<AnyState, ModelError> {
        let state: K::State = serde_json::from_str(json)
            .map_err(|e| ModelError::Codec { kind: K::NAME.to_owned(), message: format!("state: {e}") })?;
        Ok(Arc::new(state))
    }

    fn apply(
        &self,
        id: &str,
        state: Option<&AnyState>,
        event_type: &str,
        payload: Value,
    ) -> Result<Option<AnyState>, ModelError> {
        let event = decode_event::<K>(event_type, payload)?;
        let before = state.map(|s| typed::<K>(id, s)).transpose()?;
        Ok(apply::<K>(id, before, &event)?.map(|after| Arc::new(after) as AnyState))
    }

    fn references(&self, state: &AnyState) -> Vec<Key> {
        state.downcast_ref::<K::State>().map(K::references).unwrap_or_default()
    }

    fn decides(&self, id: &str, owner: &str, state: Option<&AnyState>, engine: &mut dyn Feed) {
        match state {
            None => K::decides(id, owner, None, engine),
            Some(state) => {
                if let Some(state) = state.downcast_ref::<K::State>() {
                    K::decides(id, owner, Some(state), engine);
                }
            }
        }
    }

    fn name(&self, state: &AnyState) -> Option<Box<str>> {
        K::name(state.downcast_ref::<K::State>()?).map(Into::into)
    }

    fn terms(&self, state: &AnyState) -> Vec<Term> {
        state.downcast_ref::<K::State>().map(K::terms).unwrap_or_default()
    }

    fn on_delete(&self, id: &str, state: &AnyState, target: &'static str) -> Result<OnDelete, ModelError> {
        Ok(K::on_delete(typed::<K>(id, state)?, target))
    }

    fn removal(&self, id: &str, state: &AnyState) -> Result<(String, Value), ModelError> {
        encode_event::<K>(&K::removal(typed::<K>(id, state)?))
    }

    fn detach(&self, id: &str, state: &AnyState, target: &Key) -> Result<Option<Detached>, ModelError> {
        let state = typed::<K>(id, state)?;
        let Some(event) = K::detach(state, target) else { return Ok(None) };
        Ok(Some(match next::<K>(id, Some(state), &event)? {
            Some(next) => Detached::Changed(next),
            None => {
                let (event_type, payload) = encode_event::<K>(&K::removal(state))?;
                Detached::Removed { event_type, payload }
            }
        }))
    }
}

/// The kinds a server knows, and which of them owns objects (an object owned by one of
/// those references it, and is listed under it).
#[derive(Clone)]
pub struct Registry {
    kinds: HashMap<&'static str, Arc<dyn AnyKind>>,
    owner: &'static str,
    /// What the engine holds that no object stores (system statements), put into every
    /// state's engine before its objects.
    system: Vec<fn(&mut dyn Feed)>,
}

impl Registry {
    /// A registry whose objects are owned by the instance or by an object of kind `Owner`.
    pub fn new<Owner: Kind>() -> Registry {
        Registry { kinds: HashMap::new(), owner: Owner::NAME, system: Vec::new() }.with::<Owner>()
    }

    /// Adds a kind.
    pub fn with<K: Kind>(mut self) -> Registry {
        self.kinds.insert(K::NAME, Arc::new(KindOf::<K>(PhantomData)));
        self
    }

    /// Adds statements of the system's own, which no API lists or changes.
    pub fn with_system(mut self, put: fn(&mut dyn Feed)) -> Registry {
        self.system.push(put);
        self
    }

    /// An engine holding the system's statements.
    pub(crate) fn engine(&self) -> Engine {
        let mut engine = Engine::new();
        for put in &self.system {
            put(&mut engine);
        }
        engine
    }

    /// The kind whose objects own others.
    pub fn owner(&self) -> &'static str {
        self.owner
    }

    pub(crate) fn kind(&self, name: &str) -> Option<&dyn AnyKind> {
        self.kinds.get(name).map(|kind| &**kind)
    }

    /// The static name of a kind this registry knows.
    pub fn intern(&self, name: &str) -> Option<&'static str> {
        self.kinds.get_key_value(name).map(|(name, _)| *name)
    }

    /// The payload fields of a kind's events that the history leaves out.
    pub fn hidden_fields(&self, name: &str) -> &'static [&'static str] {
        self.kind(name).map_or(&[], |kind| kind.hidden_fields())
    }

    /// The `ErrorInfo` reason when the store refuses a name of this kind as taken.
    pub fn name_taken(&self, name: &str) -> &'static str {
        self.kind(name).map_or("NAME_TAKEN", |kind| kind.name_taken())
    }
}
