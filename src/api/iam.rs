//! `iamd.iam.v2`: `PolicyService`, `RoleService` and `TenantService`.

use super::conditions::{condition, object};
use crate::app::conditions::valid_conditions;
use tonic::{Request, Response, Status};

use super::{Api, actor, if_match, respond, tenants, version, written};
use crate::app::AppError;
use crate::app::iam::TenantFilter;
use crate::app::iam::policies::{MembersChange, PolicyInput};
use crate::app::iam::roles::RoleInput;
use crate::kinds::iam_policy::{Effect, IamPolicy, Origin, Statement};
use crate::kinds::iam_role::IamRole;
use crate::kinds::tenant::Tenant;
use crate::model::objects::Obj;
use crate::pb::iamd::iam::v2 as pb;
use crate::pb::iamd::iam::v2::policy_service_server::PolicyService;
use crate::pb::iamd::iam::v2::role_service_server::RoleService;
use crate::pb::iamd::iam::v2::tenant_service_server::TenantService;

#[tonic::async_trait]
impl PolicyService for Api {
    async fn create_policy(
        &self,
        request: Request<pb::CreatePolicyRequest>,
    ) -> Result<Response<pb::CreatePolicyResponse>, Status> {
        let actor = actor(&request)?;
        let m = request.into_inner();
        let input = PolicyInput {
            id: m.id,
            name: m.name,
            members: m.members,
            statements: statements(m.statements)?,
            tenants: m.tenants,
        };
        let done = self.app.create_policy(&actor, input).await?;
        Ok(written(done, version, |p| pb::CreatePolicyResponse { policy: Some(policy(&p)) }))
    }

    async fn list_policies(
        &self,
        request: Request<pb::ListPoliciesRequest>,
    ) -> Result<Response<pb::ListPoliciesResponse>, Status> {
        let policies = self.app.list_policies(&tenants(&request)?).await?;
        Ok(Response::new(pb::ListPoliciesResponse { policies: policies.iter().map(policy).collect() }))
    }

    async fn get_policy(
        &self,
        request: Request<pb::GetPolicyRequest>,
    ) -> Result<Response<pb::GetPolicyResponse>, Status> {
        let found = self.app.policy(&request.get_ref().id, &tenants(&request)?).await?;
        Ok(respond(pb::GetPolicyResponse { policy: Some(policy(&found)) }, version(&found), None))
    }

    async fn delete_policy(
        &self,
        request: Request<pb::DeletePolicyRequest>,
    ) -> Result<Response<pb::DeletePolicyResponse>, Status> {
        let (actor, expected, filter) = writer(&request)?;
        let done = self.app.delete_policy(&actor, &request.get_ref().id, &filter, expected).await?;
        Ok(written(done, |_| None, |()| pb::DeletePolicyResponse {}))
    }

    async fn update_policy(
        &self,
        request: Request<pb::UpdatePolicyRequest>,
    ) -> Result<Response<pb::UpdatePolicyResponse>, Status> {
        let (actor, expected, filter) = writer(&request)?;
        let m = request.into_inner();
        let input = PolicyInput {
            id: m.id,
            name: m.name,
            members: m.members,
            statements: statements(m.statements)?,
            tenants: m.tenants,
        };
        let done = self.app.update_policy(&actor, input, &filter, expected).await?;
        Ok(written(done, version, |p| pb::UpdatePolicyResponse { policy: Some(policy(&p)) }))
    }

    async fn get_policy_version(
        &self,
        _request: Request<pb::GetPolicyVersionRequest>,
    ) -> Result<Response<pb::GetPolicyVersionResponse>, Status> {
        use pb::version::VersionNumber;
        let version = pb::Version { major: VersionNumber::V2.into(), minor: VersionNumber::V1.into() };
        Ok(Response::new(pb::GetPolicyVersionResponse { version: Some(version) }))
    }

    async fn list_policy_members(
        &self,
        request: Request<pb::ListPolicyMembersRequest>,
    ) -> Result<Response<pb::ListPolicyMembersResponse>, Status> {
        let found = self.app.policy(&request.get_ref().id, &tenants(&request)?).await?;
        let etag = version(&found);
        Ok(respond(pb::ListPolicyMembersResponse { members: found.members.clone() }, etag, None))
    }

    async fn replace_policy_members(
        &self,
        request: Request<pb::ReplacePolicyMembersRequest>,
    ) -> Result<Response<pb::ReplacePolicyMembersResponse>, Status> {
        let (actor, expected, filter) = writer(&request)?;
        let m = request.into_inner();
        let done =
            self.app.change_policy_members(&actor, &m.id, MembersChange::Replace, m.members, &filter, expected).await?;
        Ok(written(done, version, |p| pb::ReplacePolicyMembersResponse { members: p.members.clone() }))
    }

    async fn remove_policy_members(
        &self,
        request: Request<pb::RemovePolicyMembersRequest>,
    ) -> Result<Response<pb::RemovePolicyMembersResponse>, Status> {
        let (actor, expected, filter) = writer(&request)?;
        let m = request.into_inner();
        let done =
            self.app.change_policy_members(&actor, &m.id, MembersChange::Remove, m.members, &filter, expected).await?;
        Ok(written(done, version, |p| pb::RemovePolicyMembersResponse { members: p.members.clone() }))
    }

    async fn add_policy_members(
        &self,
        request: Request<pb::AddPolicyMembersRequest>,
    ) -> Result<Response<pb::AddPolicyMembersResponse>, Status> {
        let (actor, expected, filter) = writer(&request)?;
        let m = request.into_inner();
        let done =
            self.app.change_policy_members(&actor, &m.id, MembersChange::Add, m.members, &filter, expected).await?;
        Ok(written(done, version, |p| pb::AddPolicyMembersResponse { members: p.members.clone() }))
    }
}

#[tonic::async_trait]
impl RoleService for Api {
    async fn create_role(
        &self,
        request: Request<pb::CreateRoleRequest>,
    ) -> Result<Response<pb::CreateRoleResponse>, Status> {
        let actor = actor(&request)?;
        let m = request.into_inner();
        let input = RoleInput { id: m.id, name: m.name, actions: m.actions, tenants: m.tenants };
        let done = self.app.create_role(&actor, input).await?;
        Ok(written(done, version, |r| pb::CreateRoleResponse { role: Some(role(&r)) }))
    }

    async fn list_roles(
        &self,
        request: Request<pb::ListRolesRequest>,
    ) -> Result<Response<pb::ListRolesResponse>, Status> {
        let roles = self.app.list_roles(&tenants(&request)?).await?;
        Ok(Response::new(pb::ListRolesResponse { roles: roles.iter().map(role).collect() }))
    }

    async fn get_role(&self, request: Request<pb::GetRoleRequest>) -> Result<Response<pb::GetRoleResponse>, Status> {
        let found = self.app.role(&request.get_ref().id, &tenants(&request)?).await?;
        Ok(respond(pb::GetRoleResponse { role: Some(role(&found)) }, version(&found), None))
    }

    async fn delete_role(
        &self,
        request: Request<pb::DeleteRoleRequest>,
    ) -> Result<Response<pb::DeleteRoleResponse>, Status> {
        let (actor, expected, filter) = writer(&request)?;
        let done = self.app.delete_role(&actor, &request.get_ref().id, &filter, expected).await?;
        Ok(written(done, |_| None, |()| pb::DeleteRoleResponse {}))
    }

    async fn update_role(
        &self,
        request: Request<pb::UpdateRoleRequest>,
    ) -> Result<Response<pb::UpdateRoleResponse>, Status> {
        let (actor, expected, filter) = writer(&request)?;
        let m = request.into_inner();
        let input = RoleInput { id: m.id, name: m.name, actions: m.actions, tenants: m.tenants };
        let done = self.app.update_role(&actor, input, &filter, expected).await?;
        Ok(written(done, version, |r| pb::UpdateRoleResponse { role: Some(role(&r)) }))
    }
}

#[tonic::async_trait]
impl TenantService for Api {
    async fn create_tenant(
        &self,
        request: Request<pb::CreateTenantRequest>,
    ) -> Result<Response<pb::CreateTenantResponse>, Status> {
        let actor = actor(&request)?;
        let m = request.into_inner();
        let done = self.app.create_tenant(&actor, &m.id, &m.name, m.skip_policies).await?;
        Ok(written(done, version, |t| pb::CreateTenantResponse { tenant: Some(tenant(&t)) }))
    }

    async fn update_tenant(
        &self,
        request: Request<pb::UpdateTenantRequest>,
    ) -> Result<Response<pb::UpdateTenantResponse>, Status> {
        let (actor, expected, filter) = writer(&request)?;
        let m = request.into_inner();
        let done = self.app.update_tenant(&actor, &m.id, &m.name, &filter, expected).await?;
        Ok(written(done, version, |t| pb::UpdateTenantResponse { tenant: Some(tenant(&t)) }))
    }

    async fn get_tenant(
        &self,
        request: Request<pb::GetTenantRequest>,
    ) -> Result<Response<pb::GetTenantResponse>, Status> {
        let found = self.app.tenant(&request.get_ref().id, &tenants(&request)?).await?;
        Ok(respond(pb::GetTenantResponse { tenant: Some(tenant(&found)) }, version(&found), None))
    }

    async fn list_tenants(
        &self,
        request: Request<pb::ListTenantsRequest>,
    ) -> Result<Response<pb::ListTenantsResponse>, Status> {
        let tenants = self.app.list_tenants(&tenants(&request)?).await?;
        Ok(Response::new(pb::ListTenantsResponse { tenants: tenants.iter().map(tenant).collect() }))
    }

    async fn delete_tenant(
        &self,
        request: Request<pb::DeleteTenantRequest>,
    ) -> Result<Response<pb::DeleteTenantResponse>, Status> {
        let (actor, expected, filter) = writer(&request)?;
        let done = self.app.delete_tenant(&actor, &request.get_ref().id, &filter, expected).await?;
        Ok(written(done, |_| None, |()| pb::DeleteTenantResponse {}))
    }
}

/// What every write of an existing object reads: who asks, the version it expects, and what
/// it may see.
pub(super) fn writer<T>(request: &Request<T>) -> Result<(crate::app::Actor, Option<u64>, TenantFilter), Status> {
    Ok((actor(request)?, if_match(request.metadata())?, tenants(request)?))
}

fn statements(statements: Vec<pb::Statement>) -> Result<Vec<Statement>, AppError> {
    statements
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let effect = match pb::statement::Effect::try_from(s.effect) {
                Ok(pb::statement::Effect::Allow) => Effect::Allow,
                Ok(pb::statement::Effect::Deny) => Effect::Deny,
                Err(_) => {
                    let message = format!("statement {i} has the effect {}; use ALLOW or DENY", s.effect);
                    return Err(AppError::invalid(&format!("statements[{i}].effect"), message));
                }
            };
            let conditions: Vec<serde_json::Value> = s.conditions_all.into_iter().map(object).collect();
            let conditions_all = valid_conditions(&format!("statements[{i}].conditionsAll"), &conditions)?;
            Ok(Statement {
                effect,
                actions: s.actions,
                role: s.role,
                resources: s.resources,
                tenants: s.tenants,
                conditions_all,
            })
        })
        .collect()
}

fn origin(origin: Origin) -> i32 {
    match origin {
        Origin::Managed => pb::Type::Managed.into(),
        Origin::Custom => pb::Type::Custom.into(),
    }
}

fn policy(policy: &Obj<IamPolicy>) -> pb::Policy {
    pb::Policy {
        name: policy.name.clone(),
        id: policy.id.to_string(),
        r#type: origin(policy.origin),
        members: policy.members.clone(),
        statements: policy
            .statements
            .iter()
            .map(|s| pb::Statement {
                effect: match s.effect {
                    Effect::Allow => pb::statement::Effect::Allow.into(),
                    Effect::Deny => pb::statement::Effect::Deny.into(),
                },
                actions: s.actions.clone(),
                role: s.role.clone(),
                resources: s.resources.clone(),
                tenants: s.tenants.clone(),
                conditions_all: s.conditions_all.iter().map(condition).collect(),
            })
            .collect(),
        tenants: policy.tenants.clone(),
    }
}

fn role(role: &Obj<IamRole>) -> pb::Role {
    pb::Role {
        name: role.name.clone(),
        id: role.id.to_string(),
        r#type: origin(role.origin),
        actions: role.actions.clone(),
        tenants: role.tenants.clone(),
    }
}

fn tenant(tenant: &Obj<Tenant>) -> pb::Tenant {
    pb::Tenant { name: tenant.name.clone(), id: tenant.id.to_string(), r#type: origin(tenant.origin) }
}
