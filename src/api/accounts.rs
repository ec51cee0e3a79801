//! `iamd.accounts.v1`: `PolicyService`, `RoleService` and `AssignmentService`, an
//! organization's IAM policies, roles and assignments. Enum-like fields are lowercase strings
//! on the wire; conditions travel as `google.protobuf.Struct`, which the use cases read as
//! JSON.

use tonic::{Request, Response, Status};

use super::conditions::{condition, object};
use super::{Api, actor, if_match, respond, version, written};
use crate::app::AppError;
use crate::app::accounts::definitions::DefinitionInput;
use crate::app::accounts::policies::{PolicyInput, PolicyPatch, PolicyView};
use crate::app::accounts::roles::{RoleInput, RolePatch, RoleView};
use crate::app::page::PageRequest;
use crate::kinds::assignment::{Assignment, AssignmentState};
use crate::kinds::org_policy::{Definition, Metadata};
use crate::model::objects::Obj;
use crate::pb::iamd::accounts::v1 as pb;
use crate::pb::iamd::accounts::v1::assignment_service_server::AssignmentService;
use crate::pb::iamd::accounts::v1::policy_service_server::PolicyService;
use crate::pb::iamd::accounts::v1::role_service_server::RoleService;
use crate::wkt::{FieldMask, Timestamp};

/// The only scope this surface has.
const SCOPE: &str = "organization";

#[tonic::async_trait]
impl PolicyService for Api {
    async fn list_policies(
        &self,
        request: Request<pb::ListPoliciesRequest>,
    ) -> Result<Response<pb::ListPoliciesResponse>, Status> {
        let m = request.into_inner();
        let page = PageRequest { limit: m.limit, token: &m.page_token, reverse: m.reverse };
        let (policies, next_page_token) = self.app.list_org_policies(&m.organization_id, &page).await?;
        Ok(Response::new(pb::ListPoliciesResponse {
            results: policies.into_iter().map(policy).collect(),
            next_page_token,
        }))
    }

    async fn create_policy(
        &self,
        request: Request<pb::CreatePolicyRequest>,
    ) -> Result<Response<pb::CreatePolicyResponse>, Status> {
        let actor = actor(&request)?;
        let m = request.into_inner();
        let input = PolicyInput {
            name: m.name,
            description: m.description,
            definitions: definitions(m.definitions),
            metadata: metadata(m.metadata),
        };
        let done = self.app.create_org_policy(&actor, &m.organization_id, input).await?;
        Ok(written(done, |p| version(&p.policy), |p| pb::CreatePolicyResponse { policy: Some(policy(p)) }))
    }

    async fn get_policy(
        &self,
        request: Request<pb::GetPolicyRequest>,
    ) -> Result<Response<pb::GetPolicyResponse>, Status> {
        let m = request.get_ref();
        let found = self.app.org_policy(&m.organization_id, &m.policy_id).await?;
        let etag = version(&found.policy);
        Ok(respond(pb::GetPolicyResponse { policy: Some(policy(found)) }, etag, None))
    }

    async fn update_policy(
        &self,
        request: Request<pb::UpdatePolicyRequest>,
    ) -> Result<Response<pb::UpdatePolicyResponse>, Status> {
        let (actor, expected) = (actor(&request)?, if_match(request.metadata())?);
        let m = request.into_inner();
        let mask = Mask::of(m.update_mask, &["name", "description", "definitions"])?;
        let patch = PolicyPatch {
            name: mask.take("name", m.name),
            description: mask.take("description", m.description),
            definitions: mask.take("definitions", m.definitions).map(definitions),
        };
        let done = self.app.update_org_policy(&actor, &m.organization_id, &m.policy_id, patch, expected).await?;
        Ok(written(done, |p| version(&p.policy), |p| pb::UpdatePolicyResponse { policy: Some(policy(p)) }))
    }

    async fn delete_policy(
        &self,
        request: Request<pb::DeletePolicyRequest>,
    ) -> Result<Response<pb::DeletePolicyResponse>, Status> {
        let (actor, expected) = (actor(&request)?, if_match(request.metadata())?);
        let m = request.get_ref();
        let done = self.app.delete_org_policy(&actor, &m.organization_id, &m.policy_id, expected).await?;
        Ok(written(done, |_| None, |()| pb::DeletePolicyResponse {}))
    }
}

#[tonic::async_trait]
impl RoleService for Api {
    async fn list_roles(
        &self,
        request: Request<pb::ListRolesRequest>,
    ) -> Result<Response<pb::ListRolesResponse>, Status> {
        let m = request.into_inner();
        let page = PageRequest { limit: m.limit, token: &m.page_token, reverse: m.reverse };
        let (roles, next_page_token) = self.app.list_org_roles(&m.organization_id, &page).await?;
        Ok(Response::new(pb::ListRolesResponse { results: roles.into_iter().map(role).collect(), next_page_token }))
    }

    async fn create_role(
        &self,
        request: Request<pb::CreateRoleRequest>,
    ) -> Result<Response<pb::CreateRoleResponse>, Status> {
        let actor = actor(&request)?;
        let m = request.into_inner();
        let input = RoleInput {
            name: m.name,
            description: m.description,
            policy_ids: m.policy_ids,
            metadata: metadata(m.metadata),
        };
        let done = self.app.create_org_role(&actor, &m.organization_id, input).await?;
        Ok(written(done, |r| version(&r.role), |r| pb::CreateRoleResponse { role: Some(role(r)) }))
    }

    async fn get_role(&self, request: Request<pb::GetRoleRequest>) -> Result<Response<pb::GetRoleResponse>, Status> {
        let m = request.get_ref();
        let found = self.app.org_role(&m.organization_id, &m.role_id).await?;
        let etag = version(&found.role);
        Ok(respond(pb::GetRoleResponse { role: Some(role(found)) }, etag, None))
    }

    async fn update_role(
        &self,
        request: Request<pb::UpdateRoleRequest>,
    ) -> Result<Response<pb::UpdateRoleResponse>, Status> {
        let (actor, expected) = (actor(&request)?, if_match(request.metadata())?);
        let m = request.into_inner();
        let mask = Mask::of(m.update_mask, &["name", "description", "policy_ids"])?;
        let patch = RolePatch {
            name: mask.take("name", m.name),
            description: mask.take("description", m.description),
            policy_ids: mask.take("policy_ids", m.policy_ids),
        };
        let done = self.app.update_org_role(&actor, &m.organization_id, &m.role_id, patch, expected).await?;
        Ok(written(done, |r| version(&r.role), |r| pb::UpdateRoleResponse { role: Some(role(r)) }))
    }

    async fn delete_role(
        &self,
        request: Request<pb::DeleteRoleRequest>,
    ) -> Result<Response<pb::DeleteRoleResponse>, Status> {
        let (actor, expected) = (actor(&request)?, if_match(request.metadata())?);
        let m = request.get_ref();
        let done = self.app.delete_org_role(&actor, &m.organization_id, &m.role_id, expected).await?;
        Ok(written(done, |_| None, |()| pb::DeleteRoleResponse {}))
    }
}

#[tonic::async_trait]
impl AssignmentService for Api {
    async fn list_assignments(
        &self,
        request: Request<pb::ListAssignmentsRequest>,
    ) -> Result<Response<pb::ListAssignmentsResponse>, Status> {
        let m = request.into_inner();
        let page = PageRequest { limit: m.limit, token: &m.page_token, reverse: m.reverse };
        let (assignments, next_page_token) = self.app.list_assignments(&m.organization_id, &page).await?;
        let results = assignments.iter().map(assignment).collect();
        Ok(Response::new(pb::ListAssignmentsResponse { results, next_page_token }))
    }

    async fn create_assignment(
        &self,
        request: Request<pb::CreateAssignmentRequest>,
    ) -> Result<Response<pb::CreateAssignmentResponse>, Status> {
        let actor = actor(&request)?;
        let m = request.into_inner();
        let state = AssignmentState { principal: m.principal, role_ids: m.role_ids, policy_ids: m.policy_ids };
        let done = self.app.create_assignment(&actor, &m.organization_id, state).await?;
        Ok(written(done, version, |a| pb::CreateAssignmentResponse { assignment: Some(assignment(&a)) }))
    }

    async fn get_assignment(
        &self,
        request: Request<pb::GetAssignmentRequest>,
    ) -> Result<Response<pb::GetAssignmentResponse>, Status> {
        let m = request.get_ref();
        let found = self.app.assignment(&m.organization_id, &m.assignment_id).await?;
        Ok(respond(pb::GetAssignmentResponse { assignment: Some(assignment(&found)) }, version(&found), None))
    }

    async fn delete_assignment(
        &self,
        request: Request<pb::DeleteAssignmentRequest>,
    ) -> Result<Response<pb::DeleteAssignmentResponse>, Status> {
        let (actor, expected) = (actor(&request)?, if_match(request.metadata())?);
        let m = request.get_ref();
        let done = self.app.delete_assignment(&actor, &m.organization_id, &m.assignment_id, expected).await?;
        Ok(written(done, |_| None, |()| pb::DeleteAssignmentResponse {}))
    }
}

/// What a PATCH changes: the fields its update mask names, or without one (a gRPC client
/// that sent none), the fields it sets. A mask naming a field that cannot change is bad
/// input.
enum Mask {
    Named(Vec<String>),
    Set,
}

impl Mask {
    fn of(mask: Option<FieldMask>, allowed: &[&str]) -> Result<Mask, AppError> {
        let Some(paths) = mask.map(|m| m.paths).filter(|paths| !paths.is_empty()) else { return Ok(Mask::Set) };
        if let Some(unknown) = paths.iter().find(|p| !allowed.contains(&p.as_str())) {
            return Err(AppError::invalid(
                "updateMask",
                format!("`{unknown}` cannot be changed; the fields are {}", allowed.join(", ")),
            ));
        }
        Ok(Mask::Named(paths))
    }

    /// The field's new value, if the PATCH changes it.
    fn take<T: Default + PartialEq>(&self, field: &str, value: T) -> Option<T> {
        let changes = match self {
            Mask::Named(paths) => paths.iter().any(|p| p == field),
            Mask::Set => value != T::default(),
        };
        changes.then_some(value)
    }
}

fn definitions(definitions: Vec<pb::PolicyDefinition>) -> Vec<DefinitionInput> {
    let input = |d: pb::PolicyDefinition| DefinitionInput {
        effect: d.effect,
        actions: d.actions,
        resources: d.resources,
        conditions_all: d.conditions_all.into_iter().map(object).collect(),
    };
    definitions.into_iter().map(input).collect()
}

fn metadata(metadata: Option<pb::Metadata>) -> Metadata {
    let m = metadata.unwrap_or_default();
    Metadata { clouds: m.clouds, apps: m.apps, groups: m.groups }
}

fn metadata_pb(metadata: &Metadata) -> pb::Metadata {
    pb::Metadata { clouds: metadata.clouds.clone(), apps: metadata.apps.clone(), groups: metadata.groups.clone() }
}

fn definition(d: &Definition) -> pb::PolicyDefinition {
    pb::PolicyDefinition {
        effect: d.effect.as_str().to_owned(),
        resources: d.resources.clone(),
        actions: d.actions.iter().map(|a| a.as_str().to_owned()).collect(),
        conditions_all: d.conditions_all.iter().map(condition).collect(),
    }
}

fn policy(view: PolicyView) -> pb::Policy {
    let p = &view.policy;
    pb::Policy {
        id: p.id.to_string(),
        name: p.name.clone(),
        description: p.description.clone(),
        roles_dependency_count: count(view.roles),
        users_dependency_count: count(view.users),
        created_at: Some(Timestamp::from_micros(p.meta.created_at)),
        updated_at: Some(Timestamp::from_micros(p.meta.updated_at)),
        scope: SCOPE.to_owned(),
        r#type: p.policy_type.as_str().to_owned(),
        metadata: Some(metadata_pb(&p.metadata)),
        definitions: p.definitions.iter().map(definition).collect(),
    }
}

fn role(view: RoleView) -> pb::Role {
    let r = &view.role;
    pb::Role {
        id: r.id.to_string(),
        name: r.name.clone(),
        description: r.description.clone(),
        policy_ids: r.policy_ids.clone(),
        r#type: r.role_type.as_str().to_owned(),
        scope: SCOPE.to_owned(),
        metadata: Some(metadata_pb(&r.metadata)),
        users_dependency_count: count(view.users),
        created_at: Some(Timestamp::from_micros(r.meta.created_at)),
        updated_at: Some(Timestamp::from_micros(r.meta.updated_at)),
    }
}

fn assignment(a: &Obj<Assignment>) -> pb::Assignment {
    pb::Assignment {
        id: a.id.to_string(),
        principal: a.principal.clone(),
        role_ids: a.role_ids.clone(),
        policy_ids: a.policy_ids.clone(),
        created_at: Some(Timestamp::from_micros(a.meta.created_at)),
    }
}

/// Counts are `int32` on the wire, as the seed shows.
fn count(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}
