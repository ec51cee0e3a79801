//! The accounts surface (seed 004; Bird's Accounts API): an organization's IAM policies,
//! roles and assignments. Every object belongs to one organization and is found only
//! under it, so every method is NotFound when the organization is not there. Lists are the
//! organization's keyset pages; dependency counts are read off the referrer index, costing
//! what they count.

pub mod assignments;
pub mod definitions;
pub mod managed;
pub mod policies;
pub mod roles;

use std::collections::BTreeSet;

use super::organizations::{organization, organization_in};
use super::page::{ListId, PageRequest};
use super::{Actor, App, AppError, Receipt, changed_or_current, check_version};
use crate::kinds::assignment::Assignment;
use crate::kinds::org_policy::{Metadata, OrgPolicy};
use crate::kinds::org_role::OrgRole;
use crate::model::draft::Draft;
use crate::model::kind::{Key, Kind};
use crate::model::objects::{Obj, Objects};

/// Names of policies and roles: 1–200 characters.
const MAX_NAME: usize = 200;
const MAX_DESCRIPTION: usize = 1000;
/// Entries of each metadata list, and their length.
const MAX_LABELS: usize = 20;
const MAX_LABEL: usize = 100;

/// A kind of this surface.
trait Owned: Kind {
    /// How messages name it.
    const WHAT: &'static str;
    /// The `ErrorInfo` reason when it is not found.
    const NOT_FOUND: &'static str;
    /// Its list, for page tokens.
    const LIST: &'static str;
}

impl Owned for OrgPolicy {
    const WHAT: &'static str = "policy";
    const NOT_FOUND: &'static str = "POLICY_NOT_FOUND";
    const LIST: &'static str = "org_policies";
}

impl Owned for OrgRole {
    const WHAT: &'static str = "role";
    const NOT_FOUND: &'static str = "ROLE_NOT_FOUND";
    const LIST: &'static str = "org_roles";
}

impl Owned for Assignment {
    const WHAT: &'static str = "assignment";
    const NOT_FOUND: &'static str = "ASSIGNMENT_NOT_FOUND";
    const LIST: &'static str = "assignments";
}

/// The object of the organization, or NotFound: for a missing organization first, then for
/// an object that is missing or another organization's.
fn find<K: Owned>(objects: &Objects, org: &str, id: &str) -> Result<Obj<K>, AppError> {
    organization(objects, org)?;
    objects.get::<K>(id).filter(|o| &*o.meta.owner == org).ok_or_else(|| not_found::<K>(id))
}

/// [`find`], for a write that depends on the object and the organization.
fn find_in<K: Owned>(draft: &mut Draft<'_>, org: &str, id: &str) -> Result<Obj<K>, AppError> {
    organization_in(draft, org)?;
    draft.get::<K>(id).filter(|o| &*o.meta.owner == org).ok_or_else(|| not_found::<K>(id))
}

/// Objects of the organization a write names by id (a role's policies, an assignment's
/// roles), read through the draft so the write is guarded on them: unique, and each there,
/// else NotFound naming it.
fn all_of<K: Owned>(draft: &mut Draft<'_>, org: &str, field: &str, ids: &[String]) -> Result<(), AppError> {
    let mut seen = BTreeSet::new();
    for (i, id) in ids.iter().enumerate() {
        if !seen.insert(id.as_str()) {
            return Err(AppError::invalid(&format!("{field}[{i}]"), format!("`{id}` is listed more than once")));
        }
        if draft.get::<K>(id).is_none_or(|o| &*o.meta.owner != org) {
            return Err(AppError::not_found(
                K::NOT_FOUND,
                format!("{field}[{i}]: no {} with id `{id}` in organization `{org}`", K::WHAT),
            ));
        }
    }
    Ok(())
}

fn not_found<K: Owned>(id: &str) -> AppError {
    AppError::not_found(K::NOT_FOUND, format!("no {} with id `{id}` found in this organization", K::WHAT))
}

impl App {
    /// A page of the organization's objects of kind `K`, each as `view` shows it with the
    /// state it was read from.
    fn page_of<K: Owned, T>(
        &self,
        org: &str,
        page: &PageRequest<'_>,
        view: impl Fn(&Objects, Obj<K>) -> T,
    ) -> Result<(Vec<T>, Option<String>), AppError> {
        let objects = self.objects()?;
        organization(&objects, org)?;
        let list = ListId { list: K::LIST, scope: org };
        let query = self.pages.query(&list, page)?;
        let rows = objects.page::<K>(org, query.after(), query.reverse, query.fetch());
        let (rows, next) = self.pages.page(&list, &query, rows, |o| (o.meta.created_at, &o.id));
        Ok((rows.into_iter().map(|row| view(&objects, row)).collect(), next))
    }

    /// Changes an object of the organization, once `may_change` allows it, by the event
    /// `plan` makes of it; `None` changes nothing and answers the object as it is.
    async fn change_owned<K: Owned>(
        &self,
        actor: &Actor,
        org: &str,
        id: &str,
        expected: Option<u64>,
        may_change: impl Fn(&Obj<K>) -> Result<(), AppError>,
        mut plan: impl FnMut(&mut Draft<'_>, &Obj<K>) -> Result<Option<K::Event>, AppError>,
    ) -> Result<Receipt<Obj<K>>, AppError> {
        let (unchanged, written) = self
            .write(actor, |draft| {
                let current = find_in::<K>(draft, org, id)?;
                may_change(&current)?;
                check_version(expected, &current.meta, K::WHAT)?;
                match plan(draft, &current)? {
                    None => Ok(Some(current)),
                    Some(event) => {
                        draft.change(&current, event)?;
                        Ok(None)
                    }
                }
            })
            .await?;
        changed_or_current(unchanged, &written, id)
    }

    /// Deletes an object of the organization, once `may_go` allows it; what still
    /// references it holds the delete back.
    async fn delete_owned<K: Owned>(
        &self,
        actor: &Actor,
        org: &str,
        id: &str,
        expected: Option<u64>,
        may_go: impl Fn(&Obj<K>) -> Result<(), AppError>,
    ) -> Result<Receipt<()>, AppError> {
        let ((), written) = self
            .write(actor, |draft| {
                let current = find_in::<K>(draft, org, id)?;
                may_go(&current)?;
                check_version(expected, &current.meta, K::WHAT)?;
                Ok(draft.delete(&current, K::removal(&current.state))?)
            })
            .await?;
        Ok(Receipt::of((), &written))
    }
}

/// How many roles list a policy, and how many distinct principals it reaches: assigned it
/// directly, or a role that lists it. Read off the referrer index: the policy's referrers,
/// and the referrers of those that are roles.
pub fn policy_counts(objects: &Objects, policy: &Key) -> (usize, usize) {
    let mut roles = 0;
    let mut principals = BTreeSet::new();
    for referrer in objects.referrers(policy) {
        match referrer.kind {
            OrgRole::NAME => {
                roles += 1;
                principals.extend(assigned(objects, referrer));
            }
            Assignment::NAME => principals.extend(principal(objects, referrer)),
            _ => {}
        }
    }
    (roles, principals.len())
}

/// How many distinct principals a role is assigned to.
pub fn role_users(objects: &Objects, role: &Key) -> usize {
    assigned(objects, role).collect::<BTreeSet<_>>().len()
}

/// The principals of the assignments that reference `key`.
fn assigned<'a>(objects: &'a Objects, key: &'a Key) -> impl Iterator<Item = String> + 'a {
    objects.referrers(key).filter(|r| r.kind == Assignment::NAME).filter_map(|r| principal(objects, r))
}

fn principal(objects: &Objects, assignment: &Key) -> Option<String> {
    objects.get::<Assignment>(&assignment.id).map(|a| a.principal.clone())
}

/// A policy's or role's name: required, at most 200 characters, trimmed.
fn valid_name(what: &str, name: &str) -> Result<String, AppError> {
    let trimmed = name.trim();
    if trimmed.is_empty() {
        return Err(AppError::invalid("name", format!("the {what} name is required")));
    }
    if trimmed.chars().count() > MAX_NAME {
        return Err(AppError::invalid("name", format!("the {what} name is longer than {MAX_NAME} characters")));
    }
    Ok(trimmed.to_owned())
}

fn valid_description(description: &str) -> Result<String, AppError> {
    if description.chars().count() > MAX_DESCRIPTION {
        return Err(AppError::invalid(
            "description",
            format!("the description is longer than {MAX_DESCRIPTION} characters"),
        ));
    }
    Ok(description.to_owned())
}

/// Labels: at most 20 per list, each 1–100 characters, none twice.
fn valid_metadata(metadata: &Metadata) -> Result<(), AppError> {
    for (list, labels) in [("clouds", &metadata.clouds), ("apps", &metadata.apps), ("groups", &metadata.groups)] {
        let field = format!("metadata.{list}");
        if labels.len() > MAX_LABELS {
            return Err(AppError::invalid(&field, format!("at most {MAX_LABELS} entries")));
        }
        let mut seen = BTreeSet::new();
        for (i, label) in labels.iter().enumerate() {
            let at = format!("{field}[{i}]");
            if label.trim().is_empty() || label.chars().count() > MAX_LABEL {
                return Err(AppError::invalid(&at, format!("an entry has 1 to {MAX_LABEL} characters")));
            }
            if !seen.insert(label.as_str()) {
                return Err(AppError::invalid(&at, format!("`{label}` is listed more than once")));
            }
        }
    }
    Ok(())
}

/// A new object's id: a random UUID.
fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}
