//! IAM v2 roles: create, list, read, overwrite and delete. Deleting a role takes it out of
//! every statement that names it, drops the statements that then grant nothing, and deletes
//! the policies left without statements, in one transaction (the kinds' Detach rule).

use super::super::access::may_assign_tenants;
use super::super::organizations::missing_commit;
use super::super::{Actor, App, AppError, Receipt, changed_or_current, check_version};
use super::{
    MAX_ID, TenantFilter, absent, find, find_in, required, tenants_exist, valid_id, valid_list, valid_own_tenants,
};
use crate::kinds::iam_policy::Origin;
use crate::kinds::iam_role::{IamRole, IamRoleEvent, IamRoleState};
use crate::model::objects::Obj;
use iamd_engine::grammar;

/// A role as a client writes it.
#[derive(Clone, Debug, Default)]
pub struct RoleInput {
    pub id: String,
    pub name: String,
    pub actions: Vec<String>,
    pub tenants: Vec<String>,
}

impl App {
    pub async fn create_role(&self, actor: &Actor, input: RoleInput) -> Result<Receipt<Obj<IamRole>>, AppError> {
        valid_id("id", "role id", &input.id, MAX_ID)?;
        let state = valid_role(&input)?;
        let id = input.id.as_str();
        let instance = self.instance.id.clone();
        let ((), written) = self
            .write(actor, |draft| {
                absent::<IamRole>(draft, id)?;
                may_assign_tenants(draft.engine(), actor, &[], &state.tenants)?;
                tenants_exist(draft, state.tenants.iter())?;
                draft.create::<IamRole>(id, &instance, IamRoleEvent::Added(state.clone()))?;
                Ok(())
            })
            .await?;
        Ok(Receipt::of(written.get::<IamRole>(id).ok_or_else(missing_commit)?, &written))
    }

    pub async fn list_roles(&self, filter: &TenantFilter) -> Result<Vec<Obj<IamRole>>, AppError> {
        Ok(filter.list::<IamRole>(&*self.objects()?))
    }

    pub async fn role(&self, id: &str, filter: &TenantFilter) -> Result<Obj<IamRole>, AppError> {
        find::<IamRole>(&*self.objects()?, id, filter)
    }

    /// Overwrites every field but the id and the type.
    pub async fn update_role(
        &self,
        actor: &Actor,
        input: RoleInput,
        filter: &TenantFilter,
        expected: Option<u64>,
    ) -> Result<Receipt<Obj<IamRole>>, AppError> {
        let id = input.id.as_str();
        let valid = valid_role(&input);
        let (unchanged, written) = self
            .write(actor, |draft| {
                let current = find_in::<IamRole>(draft, id, filter)?;
                check_version(expected, &current.meta, "role")?;
                let next = valid.clone()?;
                may_assign_tenants(draft.engine(), actor, &current.tenants, &next.tenants)?;
                tenants_exist(draft, next.tenants.iter())?;
                if next == *current.state {
                    return Ok(Some(current));
                }
                let event = IamRoleEvent::Changed {
                    name: (next.name != current.name).then(|| next.name.clone()),
                    actions: (next.actions != current.actions).then(|| next.actions.clone()),
                    tenants: (next.tenants != current.tenants).then(|| next.tenants.clone()),
                };
                draft.change(&current, event)?;
                Ok(None)
            })
            .await?;
        changed_or_current(unchanged, &written, id)
    }

    /// Deletes a custom role and, in the same transaction, what goes with it (see the
    /// module's comment).
    pub async fn delete_role(
        &self,
        actor: &Actor,
        id: &str,
        filter: &TenantFilter,
        expected: Option<u64>,
    ) -> Result<Receipt<()>, AppError> {
        self.delete_shown::<IamRole>(actor, id, filter, expected, |_| Ok(())).await
    }
}

fn valid_role(input: &RoleInput) -> Result<IamRoleState, AppError> {
    required("name", "role name", &input.name)?;
    if input.actions.is_empty() {
        return Err(AppError::invalid("actions", "a role needs at least one action"));
    }
    valid_list("actions", &input.actions, grammar::action)?;
    valid_own_tenants("tenants", &input.tenants)?;
    Ok(IamRoleState {
        name: input.name.clone(),
        origin: Origin::Custom,
        actions: input.actions.clone(),
        tenants: input.tenants.clone(),
    })
}
