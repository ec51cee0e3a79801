//! The kinds of object iamd stores, one module each, and the registry the server runs with.
//! A new kind is a module here (its state, its events, how an event changes the state, what
//! it references) and one line in [`registry`].

pub mod assignment;
pub mod bootstrap;
pub mod condition;
pub mod domain_policy;
pub mod iam_policy;
pub mod iam_role;
pub mod org_policy;
pub mod org_role;
pub mod organization;
pub mod origin;
pub mod system;
pub mod team;
pub mod tenant;
pub mod token;
pub mod user;

use crate::model::registry::Registry;

/// Every kind the server knows, and the system's own statements. Organizations own the
/// objects of their surfaces (domain settings, and the accounts surface's policies, roles and
/// assignments); the IAM v2 surface's and the identities belong to the instance.
pub fn registry() -> Registry {
    Registry::new::<organization::Organization>()
        .with::<domain_policy::DomainPolicy>()
        .with::<iam_policy::IamPolicy>()
        .with::<iam_role::IamRole>()
        .with::<tenant::Tenant>()
        .with::<org_policy::OrgPolicy>()
        .with::<org_role::OrgRole>()
        .with::<assignment::Assignment>()
        .with::<user::User>()
        .with::<team::Team>()
        .with::<token::Token>()
        .with::<bootstrap::Bootstrap>()
        .with_system(system::put)
}
