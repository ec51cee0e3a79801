//! The IAM v2 surface (seed 003; Chef Automate's model with projects renamed tenants):
//! policies and their members, roles, tenants, the identities (users, teams, tokens), and
//! the objects iamd seeds at first start.
//! Validation follows Part B §2.4 and the errors §2.7; the `tenants` request header filters
//! what a request sees (§2.8).

pub mod bootstrap;
pub mod managed;
pub mod policies;
pub mod roles;
pub mod teams;
pub mod tenants;
pub mod tokens;
pub mod users;

use std::collections::BTreeSet;
use std::sync::Arc;

use iamd_engine::Tenants;

use super::{Actor, App, AppError, ErrorKind, Receipt, check_version};
use crate::kinds::iam_policy::IamPolicy;
use crate::kinds::iam_role::IamRole;
use crate::kinds::team::Team;
use crate::kinds::tenant::{ALL_TENANTS, TENANT_INDEX, Tenant, UNASSIGNED};
use crate::kinds::token::Token;
use crate::kinds::user::User;
use crate::model::draft::Draft;
use crate::model::kind::{Key, Kind};
use crate::model::objects::{Obj, Objects};

/// Ids of policies and roles: 1–64 characters.
pub const MAX_ID: usize = 64;
/// Tenant ids: 1–48 characters, so `<id>-tenant-editors` fits in a policy id.
pub const MAX_TENANT_ID: usize = 48;

/// What the `tenants` request header asks to see: every tenant, or the named ones
/// (`(unassigned)` naming objects of none).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum HeaderFilter {
    #[default]
    All,
    Only(BTreeSet<String>),
}

impl HeaderFilter {
    /// The header's comma-separated list, trimmed and de-duplicated; none, an empty one or
    /// `*` is every tenant.
    pub fn parse(header: Option<&str>) -> HeaderFilter {
        let tenants: BTreeSet<String> = header
            .into_iter()
            .flat_map(|h| h.split(','))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect();
        if tenants.is_empty() || tenants.contains(ALL_TENANTS) {
            HeaderFilter::All
        } else {
            HeaderFilter::Only(tenants)
        }
    }

    fn names(&self, tenant: &str) -> bool {
        match self {
            HeaderFilter::All => true,
            HeaderFilter::Only(only) => only.contains(tenant),
        }
    }
}

/// What a request may see of tenant-scoped objects: the tenants its header asks for, of
/// those the caller is authorized in for the call's action (§2.8). An object outside them is
/// not listed, and reading or changing it is NotFound.
#[derive(Clone, Debug, Default)]
pub struct TenantFilter {
    header: HeaderFilter,
    /// `None`: every tenant (iamd's own writes, and tests of the use cases).
    authorized: Option<Arc<Tenants>>,
}

impl TenantFilter {
    pub fn new(header: HeaderFilter, authorized: Option<Arc<Tenants>>) -> TenantFilter {
        TenantFilter { header, authorized }
    }

    /// Only what the header asks for.
    pub fn parse(header: Option<&str>) -> TenantFilter {
        TenantFilter::new(HeaderFilter::parse(header), None)
    }

    /// What the `tenants` header asked for.
    pub fn header(&self) -> &HeaderFilter {
        &self.header
    }

    /// Whether the request may see `tenant` itself.
    pub fn names(&self, tenant: &str) -> bool {
        self.header.names(tenant) && self.authorized.as_ref().is_none_or(|a| a.permits(tenant))
    }

    /// Whether an object that belongs to `tenants` is visible.
    pub fn shows(&self, tenants: &[String]) -> bool {
        if tenants.is_empty() {
            return self.names(UNASSIGNED);
        }
        tenants.iter().any(|t| self.names(t))
    }

    /// Every tenant, so nothing is filtered.
    fn everything(&self) -> bool {
        self.header == HeaderFilter::All && self.authorized.as_ref().is_none_or(|a| a.all())
    }

    /// The tenants the visible objects are among, when fewer than all: the header's, else
    /// those the caller is authorized in by name.
    fn named(&self) -> Option<Vec<&str>> {
        match &self.header {
            HeaderFilter::Only(only) => Some(only.iter().map(String::as_str).filter(|t| self.names(t)).collect()),
            // Authorized in named tenants alone, so never in `(unassigned)`, which no
            // statement can name.
            HeaderFilter::All => self.authorized.as_ref()?.named(),
        }
    }

    /// Every object of kind `K` the filter shows, in creation order: the whole list, or what
    /// the tenant index holds for the tenants it names, so a filtered list costs what it
    /// answers.
    fn list<K: Filtered>(&self, objects: &Objects) -> Vec<Obj<K>> {
        let shown = |o: &Obj<K>| K::shown(&o.id, &o.state, self);
        if self.everything() {
            return objects.page::<K>("", None, false, usize::MAX);
        }
        let Some(named) = self.named() else {
            let mut all = objects.page::<K>("", None, false, usize::MAX);
            all.retain(|o| shown(o));
            return all;
        };
        let keys: BTreeSet<&Key> =
            named.iter().flat_map(|t| objects.lookup(TENANT_INDEX, t)).filter(|key| key.kind == K::NAME).collect();
        let found = keys.into_iter().filter_map(|key| objects.get::<K>(&key.id)).filter(|o| shown(o)).collect();
        in_list_order(found)
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

impl Filtered for User {
    const WHAT: &'static str = "user";
    const NOT_FOUND: &'static str = "USER_NOT_FOUND";
    const ALREADY_EXISTS: &'static str = "USER_ALREADY_EXISTS";
    fn shown(_: &str, _: &Self::State, _: &TenantFilter) -> bool {
        true
    }
}

impl Filtered for Team {
    const WHAT: &'static str = "team";
    const NOT_FOUND: &'static str = "TEAM_NOT_FOUND";
    const ALREADY_EXISTS: &'static str = "TEAM_ALREADY_EXISTS";
    fn shown(_: &str, team: &Self::State, filter: &TenantFilter) -> bool {
        filter.shows(&team.tenants)
    }
}

impl Filtered for Token {
    const WHAT: &'static str = "token";
    const NOT_FOUND: &'static str = "TOKEN_NOT_FOUND";
    const ALREADY_EXISTS: &'static str = "TOKEN_ALREADY_EXISTS";
    fn shown(_: &str, token: &Self::State, filter: &TenantFilter) -> bool {
        filter.shows(&token.tenants)
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
        assert_eq!(HeaderFilter::parse(None), HeaderFilter::All);
        assert_eq!(HeaderFilter::parse(Some(" , ")), HeaderFilter::All);
        assert_eq!(HeaderFilter::parse(Some("*")), HeaderFilter::All);
        assert_eq!(
            HeaderFilter::parse(Some(" t1 ,t2,t1")),
            HeaderFilter::Only(["t1".to_string(), "t2".to_string()].into())
        );
        let only = TenantFilter::parse(Some(" t1 ,t2,t1"));
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
