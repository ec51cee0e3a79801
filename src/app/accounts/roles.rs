//! Organization IAM roles: list, create, read, change in part and delete. A role's policies
//! are its organization's; a role cannot go while an assignment names it.

use super::super::organizations::{missing_commit, organization_in};
use super::super::page::PageRequest;
use super::super::{Actor, App, AppError, Receipt};
use super::{all_of, find, new_id, role_users, valid_description, valid_metadata, valid_name};
use crate::kinds::org_policy::{Metadata, OrgPolicy, PolicyType};
use crate::kinds::org_role::{OrgRole, OrgRoleEvent, OrgRoleState};
use crate::model::objects::{Obj, Objects};

/// A role as a client creates it.
#[derive(Clone, Debug, Default)]
pub struct RoleInput {
    pub name: String,
    pub description: String,
    pub policy_ids: Vec<String>,
    pub metadata: Metadata,
}

/// The changes of a PATCH: absent fields stay as they are.
#[derive(Clone, Debug, Default)]
pub struct RolePatch {
    pub name: Option<String>,
    pub description: Option<String>,
    pub policy_ids: Option<Vec<String>>,
}

/// A role with its dependency count.
#[derive(Clone, Debug)]
pub struct RoleView {
    pub role: Obj<OrgRole>,
    pub users: usize,
}

impl RoleView {
    fn of(objects: &Objects, role: Obj<OrgRole>) -> RoleView {
        let users = role_users(objects, &role.key());
        RoleView { role, users }
    }
}

impl App {
    pub async fn create_org_role(
        &self,
        actor: &Actor,
        org: &str,
        input: RoleInput,
    ) -> Result<Receipt<RoleView>, AppError> {
        let state = OrgRoleState {
            name: valid_name("role", &input.name)?,
            description: valid_description(&input.description)?,
            role_type: PolicyType::Organization,
            policy_ids: some_policies(input.policy_ids)?,
            metadata: input.metadata,
        };
        valid_metadata(&state.metadata)?;
        let id = new_id();
        let ((), written) = self
            .write(actor, |draft| {
                organization_in(draft, org)?;
                all_of::<OrgPolicy>(draft, org, "policyIds", &state.policy_ids)?;
                Ok(draft.create::<OrgRole>(&id, org, OrgRoleEvent::Added(state.clone()))?)
            })
            .await?;
        let role = written.get::<OrgRole>(&id).ok_or_else(missing_commit)?;
        Ok(Receipt::of(RoleView { role, users: 0 }, &written))
    }

    pub async fn list_org_roles(
        &self,
        org: &str,
        page: &PageRequest<'_>,
    ) -> Result<(Vec<RoleView>, Option<String>), AppError> {
        self.page_of(org, page, RoleView::of)
    }

    pub async fn org_role(&self, org: &str, id: &str) -> Result<RoleView, AppError> {
        let objects = self.objects()?;
        let role = find::<OrgRole>(&objects, org, id)?;
        Ok(RoleView::of(&objects, role))
    }

    pub async fn update_org_role(
        &self,
        actor: &Actor,
        org: &str,
        id: &str,
        patch: RolePatch,
        expected: Option<u64>,
    ) -> Result<Receipt<RoleView>, AppError> {
        let name = patch.name.as_deref().map(|name| valid_name("role", name)).transpose()?;
        let description = patch.description.as_deref().map(valid_description).transpose()?;
        let policy_ids = patch.policy_ids.map(some_policies).transpose()?;
        let receipt = self
            .change_owned::<OrgRole>(
                actor,
                org,
                id,
                expected,
                |_| Ok(()),
                |draft, current| {
                    if let Some(policy_ids) = &policy_ids {
                        all_of::<OrgPolicy>(draft, org, "policyIds", policy_ids)?;
                    }
                    let event = OrgRoleEvent::Changed {
                        name: name.clone().filter(|name| *name != current.name),
                        description: description.clone().filter(|d| *d != current.description),
                        policy_ids: policy_ids.clone().filter(|p| *p != current.policy_ids),
                    };
                    let none = OrgRoleEvent::Changed { name: None, description: None, policy_ids: None };
                    Ok((event != none).then_some(event))
                },
            )
            .await?;
        let objects = self.objects()?;
        Ok(receipt.map(|role| RoleView::of(&objects, role)))
    }

    pub async fn delete_org_role(
        &self,
        actor: &Actor,
        org: &str,
        id: &str,
        expected: Option<u64>,
    ) -> Result<Receipt<()>, AppError> {
        self.delete_owned::<OrgRole>(actor, org, id, expected, |_| Ok(())).await
    }
}

/// A role names at least one policy: a role of none grants nothing.
fn some_policies(policy_ids: Vec<String>) -> Result<Vec<String>, AppError> {
    if policy_ids.is_empty() {
        return Err(AppError::invalid("policyIds", "a role needs at least one policy"));
    }
    Ok(policy_ids)
}
