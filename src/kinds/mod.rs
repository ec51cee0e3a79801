//! The kinds of object iamd stores, one module each, and the registry the server runs with.
//! A new kind is a module here (its state, its events, how an event changes the state, what
//! it references) and one line in [`registry`].

pub mod domain_policy;
pub mod organization;

use crate::model::registry::Registry;

/// Every kind the server knows. Organizations own the objects of their surfaces.
pub fn registry() -> Registry {
    Registry::new::<organization::Organization>().with::<domain_policy::DomainPolicy>()
}
