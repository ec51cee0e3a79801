//! Organizations: create, list, read, rename and delete. Names are unique per instance (the
//! store enforces it); ids are UUIDs made here.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::page::{ListId, PageRequest};
use super::{Actor, App, AppError, ErrorKind, Receipt, check_version, domain_policy};
use crate::store::{Append, Change, Expect, Micros, Store, StoreError, StoredObject};

pub const KIND: &str = "organization";
const LIST: ListId<'static> = ListId { list: "organizations", scope: "" };
const MAX_NAME: usize = 200;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Organization {
    pub id: String,
    pub name: String,
    pub domain: String,
    pub created_at: Micros,
    pub updated_at: Micros,
    pub sequence: u64,
}

/// What the store keeps as the organization's state.
#[derive(Serialize, Deserialize)]
struct State {
    name: String,
    domain: String,
}

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
    ) -> Result<Receipt<Organization>, AppError> {
        let name = valid_name(name)?;
        let domain = valid_domain(domain)?;
        let id = uuid::Uuid::new_v4().to_string();
        let state = State { name: name.clone(), domain };
        let committed = self
            .view
            .append(vec![Append {
                kind: KIND.into(),
                id: id.clone(),
                expect: Expect::Absent,
                event_type: "org.added".into(),
                payload: json!({"name": state.name, "domain": state.domain}),
                actor: actor.0.clone(),
                owner: id.clone(),
                change: Change::Put {
                    owner: id.clone(),
                    parent: String::new(),
                    name: Some(name.clone()),
                    state: to_json(&state)?,
                },
            }])
            .await
            .map_err(|e| name_taken(e, &name))?;
        let object = committed.first().map(|c| &c.object).ok_or_else(missing_commit)?;
        Ok(Receipt::of(from_object(object)?, &committed))
    }

    pub async fn list_organizations(
        &self,
        page: &PageRequest<'_>,
    ) -> Result<(Vec<Organization>, Option<String>), AppError> {
        let query = self.pages.query(&LIST, page)?;
        let rows = self.view.list(KIND, "", &query).await?;
        let (rows, next) = self.pages.page(&LIST, &query, rows);
        let organizations = rows.iter().map(from_object).collect::<Result<_, _>>()?;
        Ok((organizations, next))
    }

    pub async fn organization(&self, id: &str) -> Result<Organization, AppError> {
        from_object(&self.organization_object(&*self.view, id).await?)
    }

    /// The stored organization, or NotFound; the admin surface uses it to check `orgId`.
    pub(crate) async fn organization_object(&self, source: &dyn Store, id: &str) -> Result<StoredObject, AppError> {
        if id.is_empty() {
            return Err(AppError::invalid("organizationId", "the organization id is required"));
        }
        source.get(KIND, id).await?.ok_or_else(|| not_found(id))
    }

    pub async fn update_organization(
        &self,
        actor: &Actor,
        id: &str,
        patch: OrganizationPatch,
        expected: Option<u64>,
    ) -> Result<Receipt<Organization>, AppError> {
        let current = self.organization_object(&*self.store, id).await?;
        check_version(expected, &current, "organization")?;
        let mut state: State = from_json(&current)?;
        let mut changed = serde_json::Map::new();
        if let Some(name) = patch.name {
            let name = valid_name(&name)?;
            if name != state.name {
                changed.insert("name".into(), json!(name));
                state.name = name;
            }
        }
        if let Some(domain) = patch.domain {
            let domain = valid_domain(&domain)?;
            if domain != state.domain {
                changed.insert("domain".into(), json!(domain));
                state.domain = domain;
            }
        }
        if changed.is_empty() {
            // Nothing to record: PATCH with the current values answers the current object.
            return Ok(Receipt { value: from_object(&current)?, position: None });
        }
        let committed = self
            .view
            .append(vec![Append {
                kind: KIND.into(),
                id: id.into(),
                expect: Expect::Sequence(current.sequence),
                event_type: "org.changed".into(),
                payload: serde_json::Value::Object(changed),
                actor: actor.0.clone(),
                owner: id.into(),
                change: Change::Put {
                    owner: id.into(),
                    parent: String::new(),
                    name: Some(state.name.clone()),
                    state: to_json(&state)?,
                },
            }])
            .await
            .map_err(|e| name_taken(e, &state.name))?;
        let object = committed.first().map(|c| &c.object).ok_or_else(missing_commit)?;
        Ok(Receipt::of(from_object(object)?, &committed))
    }

    /// Deletes the organization and, in the same transaction, its own domain policy.
    pub async fn delete_organization(
        &self,
        actor: &Actor,
        id: &str,
        expected: Option<u64>,
    ) -> Result<Receipt<()>, AppError> {
        let current = self.organization_object(&*self.store, id).await?;
        check_version(expected, &current, "organization")?;
        let mut writes = Vec::new();
        if let Some(policy) = self.store.get(domain_policy::KIND, id).await? {
            writes.push(domain_policy::removal(actor, &policy));
        }
        writes.push(Append {
            kind: KIND.into(),
            id: id.into(),
            expect: Expect::Sequence(current.sequence),
            event_type: "org.removed".into(),
            payload: json!({}),
            actor: actor.0.clone(),
            owner: id.into(),
            change: Change::Delete,
        });
        let committed = self.view.append(writes).await?;
        Ok(Receipt::of((), &committed))
    }
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

fn not_found(id: &str) -> AppError {
    AppError::not_found("ORGANIZATION_NOT_FOUND", format!("organization `{id}` does not exist"))
}

fn name_taken(error: StoreError, name: &str) -> AppError {
    match error {
        StoreError::NameTaken { .. } => AppError::new(
            ErrorKind::AlreadyExists,
            "ORGANIZATION_NAME_TAKEN",
            format!("an organization named `{name}` already exists"),
        ),
        other => other.into(),
    }
}

fn from_object(object: &StoredObject) -> Result<Organization, AppError> {
    let state: State = from_json(object)?;
    Ok(Organization {
        id: object.id.clone(),
        name: state.name,
        domain: state.domain,
        created_at: object.created_at,
        updated_at: object.updated_at,
        sequence: object.sequence,
    })
}

pub(crate) fn from_json<T: for<'de> Deserialize<'de>>(object: &StoredObject) -> Result<T, AppError> {
    serde_json::from_value(object.state.clone()).map_err(|e| {
        tracing::error!(kind = %object.kind, id = %object.id, error = %e, "stored state does not parse");
        AppError::new(ErrorKind::Internal, "INTERNAL", "an internal error occurred")
    })
}

pub(crate) fn to_json<T: Serialize>(state: &T) -> Result<serde_json::Value, AppError> {
    serde_json::to_value(state)
        .map_err(|e| AppError::new(ErrorKind::Internal, "INTERNAL", format!("state encoding failed: {e}")))
}

pub(crate) fn missing_commit() -> AppError {
    AppError::new(ErrorKind::Internal, "INTERNAL", "the store answered no committed event")
}
