//! Organizations: create, list, read, rename and delete. Names are unique per instance (the
//! store enforces it); ids are UUIDs made here. An organization is created with its managed
//! policies; deleting one takes those and its own domain policy with it, and is refused
//! while it holds custom policies, roles or assignments.

use super::accounts::managed::plan_managed_policies;
use super::page::{ListId, PageRequest};
use super::{Actor, App, AppError, Receipt, changed_or_current, check_version};
use crate::kinds::organization::{Organization, OrganizationEvent};
use crate::model::draft::Draft;
use crate::model::objects::{Obj, Objects};

const LIST: ListId<'static> = ListId { list: "organizations", scope: "" };
const MAX_NAME: usize = 200;

/// The changes of a PATCH: absent fields stay as they are.
#[derive(Default)]
pub struct OrganizationPatch {
    pub name: Option<String>,
    pub domain: Option<String>,
}

impl App {
    pub async fn create_organization(
        &self,
        actor: &Actor,
        name: &str,
        domain: &str,
    ) -> Result<Receipt<Obj<Organization>>, AppError> {
        let name = valid_name(name)?;
        let domain = valid_domain(domain)?;
        let id = uuid::Uuid::new_v4().to_string();
        let event = OrganizationEvent::Added { name, domain };
        let (_, written) = self
            .write(actor, |draft| {
                draft.create::<Organization>(&id, &id, event.clone())?;
                plan_managed_policies(draft, &id)
            })
            .await?;
        let organization = written.get::<Organization>(&id).ok_or_else(missing_commit)?;
        Ok(Receipt::of(organization, &written))
    }

    pub async fn list_organizations(
        &self,
        page: &PageRequest<'_>,
    ) -> Result<(Vec<Obj<Organization>>, Option<String>), AppError> {
        let query = self.pages.query(&LIST, page)?;
        let rows = self.objects()?.page::<Organization>("", query.after(), query.reverse, query.fetch());
        Ok(self.pages.page(&LIST, &query, rows, |o| (o.meta.created_at, &o.id)))
    }

    pub async fn organization(&self, id: &str) -> Result<Obj<Organization>, AppError> {
        organization(&*self.objects()?, id)
    }

    pub async fn update_organization(
        &self,
        actor: &Actor,
        id: &str,
        patch: OrganizationPatch,
        expected: Option<u64>,
    ) -> Result<Receipt<Obj<Organization>>, AppError> {
        let name = patch.name.as_deref().map(valid_name).transpose()?;
        let domain = patch.domain.as_deref().map(valid_domain).transpose()?;
        let (unchanged, written) = self
            .write(actor, |draft| {
                let current = organization_in(draft, id)?;
                check_version(expected, &current.meta, "organization")?;
                let name = name.clone().filter(|name| *name != current.name);
                let domain = domain.clone().filter(|domain| *domain != current.domain);
                if name.is_none() && domain.is_none() {
                    // Nothing to record: PATCH with the current values answers the current object.
                    return Ok(Some(current));
                }
                draft.change(&current, OrganizationEvent::Changed { name, domain })?;
                Ok(None)
            })
            .await?;
        changed_or_current(unchanged, &written, id)
    }

    /// Deletes the organization and, in the same transaction, what its objects' kinds say
    /// goes with it (its own domain policy).
    pub async fn delete_organization(
        &self,
        actor: &Actor,
        id: &str,
        expected: Option<u64>,
    ) -> Result<Receipt<()>, AppError> {
        let ((), written) = self
            .write(actor, |draft| {
                let current = organization_in(draft, id)?;
                check_version(expected, &current.meta, "organization")?;
                Ok(draft.delete(&current, OrganizationEvent::Removed {})?)
            })
            .await?;
        Ok(Receipt::of((), &written))
    }
}

/// The organization, or NotFound.
pub(super) fn organization(objects: &Objects, id: &str) -> Result<Obj<Organization>, AppError> {
    required(id)?;
    objects.get::<Organization>(id).ok_or_else(|| not_found(id))
}

/// The organization a write depends on, or NotFound.
pub(super) fn organization_in(draft: &mut Draft<'_>, id: &str) -> Result<Obj<Organization>, AppError> {
    required(id)?;
    draft.get::<Organization>(id).ok_or_else(|| not_found(id))
}

fn required(id: &str) -> Result<(), AppError> {
    if id.is_empty() {
        return Err(AppError::invalid("organizationId", "the organization id is required"));
    }
    Ok(())
}

fn valid_name(name: &str) -> Result<String, AppError> {
    let trimmed = name.trim();
    if trimmed.is_empty() {
        return Err(AppError::invalid("name", "the organization name is required"));
    }
    if trimmed.chars().count() > MAX_NAME {
        return Err(AppError::invalid("name", format!("the organization name is longer than {MAX_NAME} characters")));
    }
    Ok(trimmed.to_owned())
}

/// Empty, or a DNS name: labels of 1 to 63 letters, digits and inner hyphens, 253 at most.
fn valid_domain(domain: &str) -> Result<String, AppError> {
    let domain = domain.trim().to_ascii_lowercase();
    if domain.is_empty() {
        return Ok(domain);
    }
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    if domain.len() > 253 || !domain.split('.').all(label_ok) {
        return Err(AppError::invalid("domain", format!("`{domain}` is not a valid domain name")));
    }
    Ok(domain)
}

pub(super) fn not_found(id: &str) -> AppError {
    AppError::not_found("ORGANIZATION_NOT_FOUND", format!("organization `{id}` does not exist"))
}

pub(crate) fn missing_commit() -> AppError {
    AppError::new(super::ErrorKind::Internal, "INTERNAL", "the store answered no committed event")
}
