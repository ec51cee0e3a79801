//! What a kind of object is. Each kind implements [`Kind`] in its own module and is listed
//! once in the server's [`crate::model::registry::Registry`]; the state, the indexes, the
//! cascades and the builders work from that alone.

use std::sync::Arc;

use iamd_engine::Feed;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::ModelError;

/// An object's identity in memory: its kind's name (static, from the registry) and its id.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub kind: &'static str,
    pub id: Arc<str>,
}

impl Key {
    pub fn new(kind: &'static str, id: impl Into<Arc<str>>) -> Key {
        Key { kind, id: id.into() }
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} `{}`", self.kind, self.id)
    }
}

/// What the delete of a referenced object does to an object that references it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnDelete {
    /// The delete is refused while this object references it (FailedPrecondition, naming
    /// the referrers).
    Restrict,
    /// This object is deleted first, in the same transaction.
    Cascade,
    /// This object drops the reference (its [`Kind::detach`] event), in the same transaction.
    Detach,
}

/// A lookup term: the object is found under `(index, value)`, for example the policies
/// naming member `user:local:alice` under `("member", "user:local:alice")`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Term {
    pub index: &'static str,
    pub value: Arc<str>,
}

impl Term {
    pub fn new(index: &'static str, value: impl Into<Arc<str>>) -> Term {
        Term { index, value: value.into() }
    }
}

/// A kind of object.
///
/// Events are serde enums tagged adjacently, `#[serde(tag = "type", content = "payload")]`,
/// with each variant renamed to its event type (`org.added`): the store keeps the type and
/// the payload apart, and a payload says what changed, never the whole object.
///
/// INVARIANT: `apply` is a pure function of the state and the event. The writing replica
/// and every follower compute an object's next state with it, so they agree.
pub trait Kind: Send + Sync + 'static {
    /// The kind as stored, for example `organization`, `domain_policy`; messages print it
    /// with spaces.
    const NAME: &'static str;
    /// The `ErrorInfo` reason when the store refuses a name as taken.
    const NAME_TAKEN: &'static str = "NAME_TAKEN";

    /// Fields of its event payloads that the history never shows (a token's digest): the
    /// store and the followers need them, a reader of the audit trail does not.
    const HIDDEN_FIELDS: &'static [&'static str] = &[];

    type State: Serialize + DeserializeOwned + Send + Sync + 'static;
    type Event: Serialize + DeserializeOwned + Send + Sync + 'static;

    /// The state `event` leaves: from nothing (a create), to nothing (a delete), or from one
    /// state to the next. An event that does not fit the state is an error.
    fn apply(state: Option<&Self::State>, event: &Self::Event) -> Result<Option<Self::State>, String>;

    /// The event that deletes the object, when a cascade deletes it.
    fn removal(state: &Self::State) -> Self::Event;

    /// The name that is unique among the kind's objects of one parent, if it has one.
    fn name(_state: &Self::State) -> Option<&str> {
        None
    }

    /// The objects this one references, besides its owner.
    fn references(_state: &Self::State) -> Vec<Key> {
        Vec::new()
    }

    /// The lookup terms the object is found under.
    fn terms(_state: &Self::State) -> Vec<Term> {
        Vec::new()
    }

    /// What deleting a referenced object of kind `target` (the owner included) does to this
    /// one, as it stands: an organization's built-in policies go with it, its custom ones
    /// hold its delete back.
    fn on_delete(_state: &Self::State, _target: &'static str) -> OnDelete {
        OnDelete::Restrict
    }

    /// The event that drops the reference to `target`, for [`OnDelete::Detach`]. When it
    /// leaves nothing (a policy whose last statement named a deleted role), the object is
    /// deleted instead, by its [`Kind::removal`] event.
    fn detach(_state: &Self::State, _target: &Key) -> Option<Self::Event> {
        None
    }

    /// What the object puts into the decision engine, under its id: its state, or (`None`)
    /// that it is gone. `owner` is the organization or the instance that owns it. Every path
    /// that changes the state (load, follow, own writes) calls it, so the engine always
    /// decides by the state this replica holds.
    fn decides(_id: &str, _owner: &str, _state: Option<&Self::State>, _engine: &mut dyn Feed) {}
}

/// An event as the store keeps it: its type and its payload.
pub fn encode_event<K: Kind>(event: &K::Event) -> Result<(String, Value), ModelError> {
    let codec = |message: String| ModelError::Codec { kind: K::NAME.to_owned(), message };
    let value = serde_json::to_value(event).map_err(|e| codec(e.to_string()))?;
    let Value::Object(mut map) = value else {
        return Err(codec("an event is not tagged with its type".into()));
    };
    let event_type = match map.remove("type") {
        Some(Value::String(event_type)) => event_type,
        _ => return Err(codec("an event is not tagged with its type".into())),
    };
    let payload = map.remove("payload").unwrap_or_else(|| Value::Object(Default::default()));
    Ok((event_type, payload))
}

/// The typed event of a stored type and payload.
pub fn decode_event<K: Kind>(event_type: &str, payload: Value) -> Result<K::Event, ModelError> {
    let mut map = serde_json::Map::with_capacity(2);
    map.insert("type".into(), Value::String(event_type.to_owned()));
    map.insert("payload".into(), payload);
    serde_json::from_value(Value::Object(map))
        .map_err(|e| ModelError::Codec { kind: K::NAME.to_owned(), message: format!("event `{event_type}`: {e}") })
}
