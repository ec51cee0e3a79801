//! The object model, between the store (rows and events, knowing no kind) and the use cases
//! (`app`): what a kind of object is, the replica's typed and indexed state of every object,
//! and the builders that turn a use case's intent into the store's writes.
//!
//! - [`kind`]: the [`kind::Kind`] trait. A kind is defined in one place: its typed state, its
//!   events, how an event changes the state, its name, what it references and what happens to
//!   it when a referenced object goes.
//! - [`registry`]: the kinds a server knows, type-erased, so the state and the cascades work
//!   on every kind without per-kind code.
//! - [`objects`]: the typed state of every object with its secondary indexes (children by
//!   parent in list order, referrers by referenced object, lookup terms), pure and synchronous.
//! - [`replica`]: one replica's [`objects::Objects`], loaded from the store's current state
//!   and kept current by following the log; commits writes and answers consistency tokens.
//! - [`draft`]: one request's writes being planned: create, change, delete (with cascades),
//!   guards on what they reference.
//!
//! No protobuf and no SQL here.

pub mod draft;
pub mod kind;
pub mod objects;
pub mod registry;
pub mod replica;

#[cfg(test)]
mod tests;

/// A fault of the model, not of the client: an event that does not apply to its object, a
/// state that does not decode, or a delete that other objects still stand in the way of.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// An event that does not fit the object it is applied to.
    #[error("`{kind}` `{id}`: {message}")]
    Apply { kind: &'static str, id: String, message: String },
    /// A state or event that does not encode or decode.
    #[error("`{kind}`: {message}")]
    Codec { kind: String, message: String },
    /// A delete of an object that others reference without a cascade.
    #[error("`{}` `{}` is still referenced by {} objects", .target.kind, .target.id, .by.len())]
    StillReferenced { target: kind::Key, by: Vec<kind::Key> },
    /// A request that writes one object twice, which the builders do not support.
    #[error("`{kind}` `{id}` is written twice in one request")]
    WrittenTwice { kind: &'static str, id: String },
}
