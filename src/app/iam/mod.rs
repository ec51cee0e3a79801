//! The IAM v2 surface (seed 003; Chef Automate's model with projects renamed tenants):
//! policies and their members, roles, tenants, and the objects iamd seeds at first start.
//! Validation follows Part B §2.4 and the errors §2.7; the `tenants` request header filters
//! what a request sees (§2.8).

pub mod managed;
pub mod policies;
pub mod roles;
pub mod tenants;

use std::collections::BTreeSet;

use super::{Actor, App, AppError, ErrorKind, Receipt, check_version};
use crate::kinds::iam_policy::IamPolicy;
use crate::kinds::iam_role::IamRole;
use crate::kinds::tenant::{ALL_TENANTS, TENANT_INDEX, Tenant, UNASSIGNED};
use crate::model::draft::Draft;
use crate::model::kind::{Key, Kind};
use crate::model::objects::{Obj, Objects};

/// Ids of policies and roles: 1–64 characters.
pub const MAX_ID: usize = 64;
/// Tenant ids: 1–48 characters, so `<id>-tenant-editors` fits in a policy id.
pub const MAX_TENANT_ID: usize = 48;

/// What the `tenants` request header lets a request see: every object, or those of the
/// named tenants (`(unassigned)` naming those of none).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum TenantFilter {
    #[default]
    All,
    Only(BTreeSet<String>),
}

impl TenantFilter {
    /// The header's comma-separated list, trimmed and de-duplicated; none, an empty one or
    /// `*` is every tenant.
    pub fn parse(header: Option<&str>) -> TenantFilter {
        let tenants: BTreeSet<String> = header
            .into_iter()
            .flat_map(|h| h.split(','))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect();
        if tenants.is_empty() || tenants.contains(ALL_TENANTS) {
            TenantFilter::All
        } else {
            TenantFilter::Only(tenants)
        }
    }

    /// Whether an object that belongs to `tenants` is visible.
    pub fn shows(&self, tenants: &[String]) -> bool {
        match self {
            TenantFilter::All => true,
            TenantFilter::Only(only) if tenants.is_empty() => only.contains(UNASSIGNED),
            TenantFilter::Only(only) => tenants.iter().any(|t| only.contains(t)),
        }
    }

    /// Whether the filter shows `tenant` itself.
    pub fn names(&self, tenant: &str) -> bool {
        match self {
            TenantFilter::All => true,
            TenantFilter::Only(only) => only.contains(tenant),
        }
    }

    /// Every object of kind `K` the filter shows, in creation order: the whole list, or
    /// what the tenant index holds for the named tenants, so a filtered list costs what it
    /// answers.
    fn list<K: Kind>(&self, objects: &Objects) -> Vec<Obj<K>> {
        match self {
            TenantFilter::All => objects.page::<K>("", None, false, usize::MAX),
            TenantFilter::Only(only) => {
                let keys: BTreeSet<&Key> = only
                    .iter()
                    .flat_map(|t| objects.lookup(TENANT_INDEX, t))
                    .filter(|key| key.kind == K::NAME)
                    .collect();
                in_list_order(keys.into_iter().filter_map(|key| objects.get::<K>(&key.id)).collect())
            }
        }
    }
}

/// Objects found by a lookup, in the order of their kind's list: creation time, then id.
fn in_list_order<K: Kind>(mut found: Vec<Obj<K>>) -> Vec<Obj<K>> {
    found.sort_by(|a, b| (a.meta.created_at, &a.id).cmp(&(b.meta.created_at, &b.id)));
    found
}

/// A required text field: at least one character that is not whitespace.
fn required(field: &str, what: &str, text: &str) -> Result<(), AppError> {
    if text.trim().is_empty() {
        return Err(AppError::invalid(
            field,
            format!("a {what} is required and must contain at least one non-whitespace character"),
        ));
    }
    Ok(())
}

/// An id of a policy or role (1–64) or a tenant (1–48): letters, digits, `_` and `-`.
pub(crate) fn id_grammar(text: &str, max: usize) -> Option<String> {
    let ok =
        (1..=max).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    (!ok).then(|| format!("`{text}` is not an id: use 1 to {max} letters, digits, `_` or `-`"))
}

/// An id in a request: required, then in the id grammar.
fn valid_id(field: &str, what: &str, id: &str, max: usize) -> Result<(), AppError> {
    required(field, what, id)?;
    match id_grammar(id, max) {
        Some(message) => Err(AppError::invalid(field, format!("the {what}: {message}"))),
        None => Ok(()),
    }
}

/// A list whose entries must be unique and each pass `check`; violations name the entry.
fn valid_list(field: &str, entries: &[String], check: impl Fn(&str) -> Option<String>) -> Result<(), AppError> {
    let mut seen = BTreeSet::new();
    for (i, entry) in entries.iter().enumerate() {
        let at = format!("{field}[{i}]");
        if !seen.insert(entry.as_str()) {
            return Err(AppError::invalid(&at, format!("`{entry}` is listed more than once in `{field}`")));
        }
        if let Some(message) = check(entry) {
            return Err(AppError::invalid(&at, message));
        }
    }
    Ok(())
}

/// The tenants a policy or role belongs to: unique tenant ids; neither `*` nor
/// `(unassigned)` (send an empty list instead).
fn valid_own_tenants(field: &str, tenants: &[String]) -> Result<(), AppError> {
    valid_list(field, tenants, |tenant| match tenant {
        ALL_TENANTS => Some(format!("`*` is not allowed in `{field}`; it means every tenant only in a statement")),
        UNASSIGNED => Some(format!("`{UNASSIGNED}` is not allowed in `{field}`; send an empty list instead")),
        _ => id_grammar(tenant, MAX_TENANT_ID).map(|m| format!("tenant {m}")),
    })
}

/// Every tenant named exists (`*` is every tenant), each read through the draft so that
/// the write is guarded on it; else NotFound, naming the missing ones (§2.4).
fn tenants_exist<'t>(draft: &mut Draft<'_>, tenants: impl Iterator<Item = &'t String>) -> Result<(), AppError> {
    let mut missing = BTreeSet::new();
    for tenant in tenants.filter(|t| *t != ALL_TENANTS) {
        if draft.get::<Tenant>(tenant).is_none() {
            missing.insert(tenant.as_str());
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let list = missing.iter().map(|t| format!("`{t}`")).collect::<Vec<_>>().join(", ");
    Err(AppError::not_found(
        "TENANT_NOT_FOUND",
        format!("tenants cannot be modified because tenant(s) {list} do not exist"),
    ))
}

/// A kind of this surface, which the `tenants` filter may hide.
trait Filtered: Kind {
    /// How messages name it.
    const WHAT: &'static str;
    /// The `ErrorInfo` reason when it is not found.
    const NOT_FOUND: &'static str;
    /// The `ErrorInfo` reason when a create finds its id taken.
    const ALREADY_EXISTS: &'static str;
    /// Whether the filter lets a request see the object.
    fn shown(id: &str, state: &Self::State, filter: &TenantFilter) -> bool;
}

impl Filtered for IamPolicy {
    const WHAT: &'static str = "policy";
    const NOT_FOUND: &'static str = "POLICY_NOT_FOUND";
    const ALREADY_EXISTS: &'static str = "POLICY_ALREADY_EXISTS";
    fn shown(_: &str, policy: &Self::State, filter: &TenantFilter) -> bool {
        filter.shows(&policy.tenants)
    }
}

impl Filtered for IamRole {
    const WHAT: &'static str = "role";
    const NOT_FOUND: &'static str = "ROLE_NOT_FOUND";
    const ALREADY_EXISTS: &'static str = "ROLE_ALREADY_EXISTS";
    fn shown(_: &str, role: &Self::State, filter: &TenantFilter) -> bool {
        filter.shows(&role.tenants)
    }
}

impl Filtered for Tenant {
    const WHAT: &'static str = "tenant";
    const NOT_FOUND: &'static str = "TENANT_NOT_FOUND";
    const ALREADY_EXISTS: &'static str = "TENANT_ALREADY_EXISTS";
    fn shown(id: &str, _: &Self::State, filter: &TenantFilter) -> bool {
        filter.names(id)
    }
}

/// The object, unless it does not exist or the filter hides it: NotFound either way
/// (§2.8). A blank id is bad input.
fn find<K: Filtered>(objects: &Objects, id: &str, filter: &TenantFilter) -> Result<Obj<K>, AppError> {
    required("id", &format!("{} id", K::WHAT), id)?;
    objects.get::<K>(id).filter(|o| K::shown(id, &o.state, filter)).ok_or_else(|| not_found::<K>(id))
}

/// [`find`], for a write that depends on the object.
fn find_in<K: Filtered>(draft: &mut Draft<'_>, id: &str, filter: &TenantFilter) -> Result<Obj<K>, AppError> {
    required("id", &format!("{} id", K::WHAT), id)?;
    draft.get::<K>(id).filter(|o| K::shown(id, &o.state, filter)).ok_or_else(|| not_found::<K>(id))
}

/// A create's id is free: AlreadyExists when an object of kind `K` holds it, whatever the
/// filter hides.
fn absent<K: Filtered>(draft: &mut Draft<'_>, id: &str) -> Result<(), AppError> {
    match draft.get::<K>(id) {
        Some(_) => Err(AppError::new(
            ErrorKind::AlreadyExists,
            K::ALREADY_EXISTS,
            format!("a {} with id `{id}` already exists", K::WHAT),
        )),
        None => Ok(()),
    }
}

impl App {
    /// Deletes an object the filter shows, once `may_go` allows it, with what its referrers'
    /// kinds say goes with it.
    async fn delete_shown<K: Filtered>(
        &self,
        actor: &Actor,
        id: &str,
        filter: &TenantFilter,
        expected: Option<u64>,
        may_go: impl Fn(&Obj<K>) -> Result<(), AppError>,
    ) -> Result<Receipt<()>, AppError> {
        let ((), written) = self
            .write(actor, |draft| {
                let current = find_in::<K>(draft, id, filter)?;
                may_go(&current)?;
                check_version(expected, &current.meta, K::WHAT)?;
                Ok(draft.delete(&current, K::removal(&current.state))?)
            })
            .await?;
        Ok(Receipt::of((), &written))
    }
}

fn not_found<K: Filtered>(id: &str) -> AppError {
    AppError::not_found(K::NOT_FOUND, format!("no {} with id `{id}` found", K::WHAT))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tenants_header_is_a_trimmed_list_and_star_or_nothing_is_every_tenant() {
        assert_eq!(TenantFilter::parse(None), TenantFilter::All);
        assert_eq!(TenantFilter::parse(Some(" , ")), TenantFilter::All);
        assert_eq!(TenantFilter::parse(Some("*")), TenantFilter::All);
        let only = TenantFilter::parse(Some(" t1 ,t2,t1"));
        assert_eq!(only, TenantFilter::Only(["t1".to_string(), "t2".to_string()].into()));
        assert!(only.shows(&["t2".into(), "t9".into()]));
        assert!(!only.shows(&["t9".into()]));
        assert!(!only.shows(&[]));
        assert!(TenantFilter::parse(Some("(unassigned)")).shows(&[]));
    }

    #[test]
    fn ids_are_letters_digits_underscores_and_dashes() {
        for good in ["myRole", "viewer", "a", "tenant_1-x", &"x".repeat(64)] {
            assert_eq!(id_grammar(good, 64), None, "{good}");
        }
        for bad in ["", "has space", "a:b", "ü", "*", &"x".repeat(65)] {
            assert!(id_grammar(bad, 64).is_some(), "{bad}");
        }
        assert!(id_grammar(&"x".repeat(49), 48).is_some());
    }
}
