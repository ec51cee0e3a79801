//! Organization IAM policies: list, create, read, change in part and delete. Managed
//! policies are read-only; a custom one cannot go while a role or an assignment names it.

use super::super::iam::managed::refuse_if_managed;
use super::super::organizations::{missing_commit, organization_in};
use super::super::page::PageRequest;
use super::super::{Actor, App, AppError, Receipt};
use super::definitions::{DefinitionInput, valid_definitions};
use super::{find, new_id, policy_counts, valid_description, valid_metadata, valid_name};
use crate::kinds::org_policy::{Definition, Metadata, OrgPolicy, OrgPolicyEvent, OrgPolicyState, PolicyType};
use crate::model::objects::{Obj, Objects};

/// A policy as a client creates it.
#[derive(Clone, Debug, Default)]
pub struct PolicyInput {
    pub name: String,
    pub description: String,
    pub definitions: Vec<DefinitionInput>,
    pub metadata: Metadata,
}

/// The changes of a PATCH: absent fields stay as they are.
#[derive(Clone, Debug, Default)]
pub struct PolicyPatch {
    pub name: Option<String>,
    pub description: Option<String>,
    pub definitions: Option<Vec<DefinitionInput>>,
}

/// A policy with its dependency counts.
#[derive(Clone, Debug)]
pub struct PolicyView {
    pub policy: Obj<OrgPolicy>,
    pub roles: usize,
    pub users: usize,
}

impl PolicyView {
    fn of(objects: &Objects, policy: Obj<OrgPolicy>) -> PolicyView {
        let (roles, users) = policy_counts(objects, &policy.key());
        PolicyView { policy, roles, users }
    }
}

impl App {
    pub async fn create_org_policy(
        &self,
        actor: &Actor,
        org: &str,
        input: PolicyInput,
    ) -> Result<Receipt<PolicyView>, AppError> {
        let state = OrgPolicyState {
            name: valid_name("policy", &input.name)?,
            description: valid_description(&input.description)?,
            policy_type: PolicyType::Organization,
            definitions: valid_definitions(&input.definitions)?,
            metadata: input.metadata,
        };
        valid_metadata(&state.metadata)?;
        let id = new_id();
        let ((), written) = self
            .write(actor, |draft| {
                organization_in(draft, org)?;
                Ok(draft.create::<OrgPolicy>(&id, org, OrgPolicyEvent::Added(state.clone()))?)
            })
            .await?;
        let policy = written.get::<OrgPolicy>(&id).ok_or_else(missing_commit)?;
        Ok(Receipt::of(PolicyView { policy, roles: 0, users: 0 }, &written))
    }

    pub async fn list_org_policies(
        &self,
        org: &str,
        page: &PageRequest<'_>,
    ) -> Result<(Vec<PolicyView>, Option<String>), AppError> {
        self.page_of(org, page, PolicyView::of)
    }

    pub async fn org_policy(&self, org: &str, id: &str) -> Result<PolicyView, AppError> {
        let objects = self.objects()?;
        let policy = find::<OrgPolicy>(&objects, org, id)?;
        Ok(PolicyView::of(&objects, policy))
    }

    pub async fn update_org_policy(
        &self,
        actor: &Actor,
        org: &str,
        id: &str,
        patch: PolicyPatch,
        expected: Option<u64>,
    ) -> Result<Receipt<PolicyView>, AppError> {
        // The body's verdict is answered once the policy is found: a managed policy is
        // refused whatever the body holds.
        let valid = valid_patch(&patch);
        let managed = |p: &Obj<OrgPolicy>| refuse_if_managed(p.policy_type == PolicyType::Managed, "policy", id);
        let receipt = self
            .change_owned::<OrgPolicy>(actor, org, id, expected, managed, |_, current| {
                let ValidPatch { name, description, definitions } = valid.clone()?;
                let event = OrgPolicyEvent::Changed {
                    name: name.filter(|name| *name != current.name),
                    description: description.filter(|d| *d != current.description),
                    definitions: definitions.filter(|d| *d != current.definitions),
                };
                let none = OrgPolicyEvent::Changed { name: None, description: None, definitions: None };
                Ok((event != none).then_some(event))
            })
            .await?;
        let objects = self.objects()?;
        Ok(receipt.map(|policy| PolicyView::of(&objects, policy)))
    }

    pub async fn delete_org_policy(
        &self,
        actor: &Actor,
        org: &str,
        id: &str,
        expected: Option<u64>,
    ) -> Result<Receipt<()>, AppError> {
        self.delete_owned::<OrgPolicy>(actor, org, id, expected, |p| {
            refuse_if_managed(p.policy_type == PolicyType::Managed, "policy", id)
        })
        .await
    }
}

/// What a PATCH sets, checked.
#[derive(Clone)]
struct ValidPatch {
    name: Option<String>,
    description: Option<String>,
    definitions: Option<Vec<Definition>>,
}

fn valid_patch(patch: &PolicyPatch) -> Result<ValidPatch, AppError> {
    Ok(ValidPatch {
        name: patch.name.as_deref().map(|name| valid_name("policy", name)).transpose()?,
        description: patch.description.as_deref().map(valid_description).transpose()?,
        definitions: patch.definitions.as_deref().map(valid_definitions).transpose()?,
    })
}
