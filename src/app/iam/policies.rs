//! IAM v2 policies: create, list, read, overwrite and delete, and their members. A
//! statement's role and tenants must exist when it is written, and the write is guarded on
//! them, so a delete racing it never leaves a dangling reference.

use super::super::access::may_assign_tenants;
use super::super::organizations::missing_commit;
use super::super::{Actor, App, AppError, Receipt, changed_or_current, check_version};
use super::managed::refuse_dropping_admins;
use super::{
    MAX_ID, TenantFilter, absent, find, find_in, required, tenants_exist, valid_id, valid_list, valid_own_tenants,
};
use crate::kinds::iam_policy::{Effect, IamPolicy, IamPolicyEvent, IamPolicyState, Origin, Statement};
use crate::kinds::iam_role::IamRole;
use crate::kinds::tenant::ALL_TENANTS;
use crate::model::draft::Draft;
use crate::model::objects::Obj;
use iamd_engine::grammar;

/// A policy as a client writes it: everything but its type.
#[derive(Clone, Debug, Default)]
pub struct PolicyInput {
    pub id: String,
    pub name: String,
    pub members: Vec<String>,
    pub statements: Vec<Statement>,
    pub tenants: Vec<String>,
}

/// How a members method changes the list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MembersChange {
    Replace,
    Add,
    Remove,
}

impl App {
    pub async fn create_policy(&self, actor: &Actor, input: PolicyInput) -> Result<Receipt<Obj<IamPolicy>>, AppError> {
        valid_id("id", "policy id", &input.id, MAX_ID)?;
        let state = valid_policy(&input, Origin::Custom)?;
        let id = input.id.as_str();
        let instance = self.instance.id.clone();
        let ((), written) = self
            .write(actor, |draft| {
                absent::<IamPolicy>(draft, id)?;
                may_assign_tenants(draft.engine(), actor, &[], &state.tenants)?;
                references_exist(draft, &state)?;
                draft.create::<IamPolicy>(id, &instance, IamPolicyEvent::Added(state.clone()))?;
                Ok(())
            })
            .await?;
        Ok(Receipt::of(written.get::<IamPolicy>(id).ok_or_else(missing_commit)?, &written))
    }

    pub async fn list_policies(&self, filter: &TenantFilter) -> Result<Vec<Obj<IamPolicy>>, AppError> {
        Ok(filter.list::<IamPolicy>(&*self.objects()?))
    }

    pub async fn policy(&self, id: &str, filter: &TenantFilter) -> Result<Obj<IamPolicy>, AppError> {
        find::<IamPolicy>(&*self.objects()?, id, filter)
    }

    /// Overwrites every field but the id and the type.
    pub async fn update_policy(
        &self,
        actor: &Actor,
        input: PolicyInput,
        filter: &TenantFilter,
        expected: Option<u64>,
    ) -> Result<Receipt<Obj<IamPolicy>>, AppError> {
        let id = input.id.as_str();
        // The body's verdict is answered only once the policy is found.
        let valid = valid_policy(&input, Origin::Custom);
        self.write_policy(actor, id, |draft| {
            let current = find_in::<IamPolicy>(draft, id, filter)?;
            check_version(expected, &current.meta, "policy")?;
            let next = valid.clone()?;
            may_assign_tenants(draft.engine(), actor, &current.tenants, &next.tenants)?;
            references_exist(draft, &next)?;
            let event = IamPolicyEvent::Changed {
                name: (next.name != current.name).then(|| next.name.clone()),
                members: (next.members != current.members).then(|| next.members.clone()),
                statements: (next.statements != current.statements).then(|| next.statements.clone()),
                tenants: (next.tenants != current.tenants).then(|| next.tenants.clone()),
            };
            Ok((current, event))
        })
        .await
    }

    pub async fn delete_policy(
        &self,
        actor: &Actor,
        id: &str,
        filter: &TenantFilter,
        expected: Option<u64>,
    ) -> Result<Receipt<()>, AppError> {
        self.delete_shown::<IamPolicy>(actor, id, filter, expected, |_| Ok(())).await
    }

    /// Replaces, adds or removes members; answers the policy with its resulting list. A
    /// member added twice or removed while absent changes nothing and is no error.
    pub async fn change_policy_members(
        &self,
        actor: &Actor,
        id: &str,
        how: MembersChange,
        members: Vec<String>,
        filter: &TenantFilter,
        expected: Option<u64>,
    ) -> Result<Receipt<Obj<IamPolicy>>, AppError> {
        if how != MembersChange::Replace && members.is_empty() {
            return Err(AppError::invalid("members", "at least one member is required"));
        }
        valid_list("members", &members, grammar::member)?;
        self.write_policy(actor, id, |draft| {
            let current = find_in::<IamPolicy>(draft, id, filter)?;
            check_version(expected, &current.meta, "policy")?;
            let (after, event) = match how {
                MembersChange::Replace => (
                    members.clone(),
                    IamPolicyEvent::Changed {
                        name: None,
                        members: Some(members.clone()),
                        statements: None,
                        tenants: None,
                    },
                ),
                MembersChange::Add => {
                    let new: Vec<String> = members.iter().filter(|m| !current.members.contains(m)).cloned().collect();
                    (
                        current.members.iter().chain(&new).cloned().collect(),
                        IamPolicyEvent::MembersAdded { members: new },
                    )
                }
                MembersChange::Remove => {
                    let gone: Vec<String> = members.iter().filter(|m| current.members.contains(m)).cloned().collect();
                    let after = current.members.iter().filter(|m| !gone.contains(m)).cloned().collect();
                    (after, IamPolicyEvent::MembersRemoved { members: gone })
                }
            };
            refuse_dropping_admins(id, &current.members, &after)?;
            // Adding members already there, or removing absent ones, records nothing.
            let event = if after == current.members { no_change() } else { event };
            Ok((current, event))
        })
        .await
    }

    /// Writes `plan`'s event unless it changes nothing, and answers the policy as it is then.
    async fn write_policy(
        &self,
        actor: &Actor,
        id: &str,
        mut plan: impl FnMut(&mut Draft<'_>) -> Result<(Obj<IamPolicy>, IamPolicyEvent), AppError>,
    ) -> Result<Receipt<Obj<IamPolicy>>, AppError> {
        let (unchanged, written) = self
            .write(actor, |draft| {
                let (current, event) = plan(draft)?;
                if event == no_change() {
                    return Ok(Some(current));
                }
                draft.change(&current, event)?;
                Ok(None)
            })
            .await?;
        changed_or_current(unchanged, &written, id)
    }
}

fn no_change() -> IamPolicyEvent {
    IamPolicyEvent::Changed { name: None, members: None, statements: None, tenants: None }
}

/// The policy a client's input describes, or the first rule it breaks (§2.4).
pub(super) fn valid_policy(input: &PolicyInput, origin: Origin) -> Result<IamPolicyState, AppError> {
    required("name", "policy name", &input.name)?;
    valid_list("members", &input.members, grammar::member)?;
    if input.statements.is_empty() {
        return Err(AppError::invalid("statements", "a policy needs at least one statement"));
    }
    let statements =
        input.statements.iter().enumerate().map(|(i, s)| valid_statement(i, s)).collect::<Result<_, _>>()?;
    valid_own_tenants("tenants", &input.tenants)?;
    Ok(IamPolicyState {
        name: input.name.clone(),
        origin,
        members: input.members.clone(),
        statements,
        tenants: input.tenants.clone(),
    })
}

fn valid_statement(i: usize, statement: &Statement) -> Result<Statement, AppError> {
    let field = |name: &str| format!("statements[{i}].{name}");
    if !statement.role.is_empty()
        && let Some(message) = super::id_grammar(&statement.role, MAX_ID)
    {
        return Err(AppError::invalid(&field("role"), format!("role {message}")));
    }
    valid_list(&field("actions"), &statement.actions, grammar::action)?;
    if statement.role.is_empty() && statement.actions.is_empty() {
        return Err(AppError::invalid(
            &field("role"),
            format!("statement {i} names neither a role nor actions; a statement needs a role, actions, or both"),
        ));
    }
    valid_list(&field("resources"), &statement.resources, grammar::resource)?;
    if statement.tenants.is_empty() {
        return Err(AppError::invalid(
            &field("tenants"),
            format!("statement {i} has no tenants; policy statements must include tenants (`*` for every tenant)"),
        ));
    }
    valid_list(&field("tenants"), &statement.tenants, |tenant| {
        (tenant != ALL_TENANTS)
            .then(|| super::id_grammar(tenant, super::MAX_TENANT_ID).map(|m| format!("tenant {m}")))
            .flatten()
    })?;
    let resources = if statement.resources.is_empty() { vec!["*".to_owned()] } else { statement.resources.clone() };
    Ok(Statement { resources, ..statement.clone() })
}

/// The roles and tenants the policy names exist, each read through the draft so the write
/// is guarded on it: an unknown role is bad input (InvalidArgument), an unknown tenant
/// NotFound (§2.4).
fn references_exist(draft: &mut Draft<'_>, policy: &IamPolicyState) -> Result<(), AppError> {
    for (i, statement) in policy.statements.iter().enumerate() {
        if !statement.role.is_empty() && draft.get::<IamRole>(&statement.role).is_none() {
            let message = format!("statement {i} names the role `{}`, which does not exist", statement.role);
            return Err(AppError::invalid(&format!("statements[{i}].role"), message)
                .with_reason("ROLE_NOT_FOUND")
                .by_state());
        }
    }
    tenants_exist(draft, policy.tenants.iter().chain(policy.statements.iter().flat_map(|s| &s.tenants)))
}

/// A statement granting `role` on one tenant, as a new tenant's policies have.
pub(super) fn allow_role_on(role: &str, tenant: &str) -> Statement {
    Statement {
        effect: Effect::Allow,
        actions: Vec::new(),
        role: role.to_owned(),
        resources: vec!["*".to_owned()],
        tenants: vec![tenant.to_owned()],
        conditions_all: Vec::new(),
    }
}
