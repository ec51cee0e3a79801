//! Assignments: list, create, read and delete. An assignment names at least one role or
//! policy, all of its own organization; its principal is a member expression that need not
//! name an existing user or team.

use super::super::organizations::{missing_commit, organization_in};
use super::super::page::PageRequest;
use super::super::{Actor, App, AppError, Receipt};
use super::{all_of, find, new_id};
use crate::kinds::assignment::{Assignment, AssignmentEvent, AssignmentState};
use crate::kinds::org_policy::OrgPolicy;
use crate::kinds::org_role::OrgRole;
use crate::model::objects::Obj;
use iamd_engine::grammar;

impl App {
    pub async fn create_assignment(
        &self,
        actor: &Actor,
        org: &str,
        state: AssignmentState,
    ) -> Result<Receipt<Obj<Assignment>>, AppError> {
        if state.principal.trim().is_empty() {
            return Err(AppError::invalid("principal", "the principal is required, such as `user:local:alice`"));
        }
        if let Some(message) = grammar::member(&state.principal) {
            return Err(AppError::invalid("principal", message));
        }
        if state.role_ids.is_empty() && state.policy_ids.is_empty() {
            return Err(AppError::invalid("roleIds", "an assignment needs at least one of `roleIds` and `policyIds`"));
        }
        let id = new_id();
        let ((), written) = self
            .write(actor, |draft| {
                organization_in(draft, org)?;
                all_of::<OrgRole>(draft, org, "roleIds", &state.role_ids)?;
                all_of::<OrgPolicy>(draft, org, "policyIds", &state.policy_ids)?;
                Ok(draft.create::<Assignment>(&id, org, AssignmentEvent::Added(state.clone()))?)
            })
            .await?;
        Ok(Receipt::of(written.get::<Assignment>(&id).ok_or_else(missing_commit)?, &written))
    }

    pub async fn list_assignments(
        &self,
        org: &str,
        page: &PageRequest<'_>,
    ) -> Result<(Vec<Obj<Assignment>>, Option<String>), AppError> {
        self.page_of::<Assignment, _>(org, page, |_, assignment| assignment)
    }

    pub async fn assignment(&self, org: &str, id: &str) -> Result<Obj<Assignment>, AppError> {
        find::<Assignment>(&*self.objects()?, org, id)
    }

    pub async fn delete_assignment(
        &self,
        actor: &Actor,
        org: &str,
        id: &str,
        expected: Option<u64>,
    ) -> Result<Receipt<()>, AppError> {
        self.delete_owned::<Assignment>(actor, org, id, expected, |_| Ok(())).await
    }
}
