//! `iamd.authz.v1.AuthzService`: checks in, decisions out. Each answer names the state it
//! was decided against as a consistency token, in the body and, as a write's, in the
//! `x-iamd-consistency-token` header.

use std::future::Future;

use iamd_engine as engine;
use pbjson_types::Struct;
use tonic::{Request, Response, Status};

use super::{Api, admitted, respond};
use crate::app::AppError;
use crate::app::access::Admitted;
use crate::app::authz::{CheckInput, Decided};
use crate::app::simulate;
use crate::methods::Permission;
use crate::model::objects::Proposed;
use crate::pb::iamd::authz::v1 as pb;
use crate::pb::iamd::authz::v1::authz_service_server::{self, AuthzService};

#[tonic::async_trait]
impl AuthzService for Api {
    async fn check(&self, request: Request<pb::CheckRequest>) -> Result<Response<pb::CheckResponse>, Status> {
        let message = request.into_inner();
        let decided = self.app.check(&input(&message), &message.consistency_token).await?;
        Ok(respond(answer_of(&decided.answer, decided.position), None, Some(decided.position)))
    }

    async fn batch_check(
        &self,
        request: Request<pb::BatchCheckRequest>,
    ) -> Result<Response<pb::BatchCheckResponse>, Status> {
        let message = request.into_inner();
        let inputs: Vec<CheckInput> = message.checks.iter().map(input).collect();
        let Decided { answer, position } = self.app.batch_check(&inputs, &message.consistency_token).await?;
        let results = answer.iter().map(|d| answer_of(d, position)).collect();
        Ok(respond(pb::BatchCheckResponse { results }, None, Some(position)))
    }

    async fn explain(&self, request: Request<pb::ExplainRequest>) -> Result<Response<pb::ExplainResponse>, Status> {
        let check = request.into_inner().check.unwrap_or_default();
        let Decided { answer, position } = self.app.explain(&input(&check), &check.consistency_token).await?;
        Ok(respond(explanation_of(&answer, position), None, Some(position)))
    }

    /// Each change is its method's own handler, run as a rehearsal once the caller is found
    /// to hold that method's permission: the same validation, rules and errors, and no write.
    async fn simulate(&self, request: Request<pb::SimulateRequest>) -> Result<Response<pb::SimulateResponse>, Status> {
        let admitted = admitted(&request)?.clone();
        let message = request.into_inner();
        simulate::simulation_size(message.changes.len(), message.checks.len())?;
        self.app.wait_for_token(&message.consistency_token).await?;
        if message.recent {
            // Recent decisions say who asked what: Explain's permission reads them.
            let rule = self.permission_of(authz_service_server::SERVICE_NAME, "Explain")?;
            let header = admitted.tenants.header().clone();
            self.app
                .authorize(&admitted.actor, &rule.action, &rule.resource.text, header)
                .map_err(|e| in_field("recent", e.into()))?;
        }
        let mut changes = Vec::with_capacity(message.changes.len());
        for (i, change) in message.changes.into_iter().enumerate() {
            let at = format!("changes[{i}]");
            let change = change.change.ok_or_else(|| {
                Status::from(AppError::invalid(&at, "a change names one write, such as `createIamPolicy`"))
            })?;
            changes.push(self.rehearse(&admitted, change).await.map_err(|status| in_field(&at, status))?);
        }
        let checks: Vec<CheckInput> = message.checks.iter().map(input).collect();
        let Decided { answer, position } = self.app.simulate(&changes, &checks, message.recent).await?;
        let results: Vec<pb::SimulatedCheck> = answer
            .iter()
            .map(|simulated| pb::SimulatedCheck {
                check: Some(request_of(&simulated.check)),
                before: Some(answer_of(&simulated.before, position)),
                after: Some(explanation_of(&simulated.after, position)),
                changed: simulated.changed(),
                recent: simulated.recent,
            })
            .collect();
        let changed_count = results.iter().filter(|r| r.changed).count();
        let response = pb::SimulateResponse {
            results,
            changed_count: i32::try_from(changed_count).unwrap_or(i32::MAX),
            consistency_token: position.to_string(),
        };
        Ok(respond(response, None, Some(position)))
    }
}

impl Api {
    /// One change, rehearsed: what its writes would leave.
    async fn rehearse(&self, admitted: &Admitted, change: pb::change::Change) -> Result<Vec<Proposed>, Status> {
        use crate::pb::iamd::accounts::v1::assignment_service_server as assignments;
        use crate::pb::iamd::accounts::v1::policy_service_server as org_policies;
        use crate::pb::iamd::accounts::v1::role_service_server as org_roles;
        use crate::pb::iamd::iam::v2::policy_service_server as policies;
        use crate::pb::iamd::iam::v2::role_service_server as roles;
        use pb::change::Change as C;
        // The handler of `Method` of `service`'s `Trait`, rehearsed on `message`.
        macro_rules! rehearse {
            ($service:ident::$service_trait:ident, $method:literal, $handler:ident, $message:expr) => {
                self.rehearse_as(admitted, $service::SERVICE_NAME, $method, $message, |r| {
                    <Api as $service::$service_trait>::$handler(self, r)
                })
                .await
            };
        }
        match change {
            C::CreateIamPolicy(m) => rehearse!(policies::PolicyService, "CreatePolicy", create_policy, m),
            C::UpdateIamPolicy(m) => rehearse!(policies::PolicyService, "UpdatePolicy", update_policy, m),
            C::DeleteIamPolicy(m) => rehearse!(policies::PolicyService, "DeletePolicy", delete_policy, m),
            C::CreateIamRole(m) => rehearse!(roles::RoleService, "CreateRole", create_role, m),
            C::UpdateIamRole(m) => rehearse!(roles::RoleService, "UpdateRole", update_role, m),
            C::DeleteIamRole(m) => rehearse!(roles::RoleService, "DeleteRole", delete_role, m),
            C::CreateOrgPolicy(m) => rehearse!(org_policies::PolicyService, "CreatePolicy", create_policy, m),
            C::UpdateOrgPolicy(m) => rehearse!(org_policies::PolicyService, "UpdatePolicy", update_policy, m),
            C::DeleteOrgPolicy(m) => rehearse!(org_policies::PolicyService, "DeletePolicy", delete_policy, m),
            C::CreateOrgRole(m) => rehearse!(org_roles::RoleService, "CreateRole", create_role, m),
            C::UpdateOrgRole(m) => rehearse!(org_roles::RoleService, "UpdateRole", update_role, m),
            C::DeleteOrgRole(m) => rehearse!(org_roles::RoleService, "DeleteRole", delete_role, m),
            C::CreateAssignment(m) => {
                rehearse!(assignments::AssignmentService, "CreateAssignment", create_assignment, m)
            }
            C::DeleteAssignment(m) => {
                rehearse!(assignments::AssignmentService, "DeleteAssignment", delete_assignment, m)
            }
        }
    }

    /// Rehearses `call`, the handler of `service`'s `method`, on `message`, once the caller
    /// holds that method's permission (read from the method table, its resource filled from
    /// the message as the front door fills it), within the tenants that permission gives.
    async fn rehearse_as<M, R, F>(
        &self,
        admitted: &Admitted,
        service: &str,
        method: &str,
        message: M,
        call: impl FnOnce(Request<M>) -> F,
    ) -> Result<Vec<Proposed>, Status>
    where
        M: prost::Message,
        F: Future<Output = Result<Response<R>, Status>>,
    {
        let rule = self.permission_of(service, method)?;
        let resource = rule.resource.fill_from_message(&message.encode_to_vec()).ok_or_else(|| {
            Status::invalid_argument(format!("the change is not a valid `{service}.{method}` request"))
        })?;
        let header = admitted.tenants.header().clone();
        let tenants = self.app.authorize(&admitted.actor, &rule.action, &resource, header)?;
        let mut request = Request::new(message);
        request.extensions_mut().insert(Admitted { actor: admitted.actor.clone(), tenants });
        let (answer, proposed) = simulate::rehearse(call(request)).await;
        answer?;
        Ok(proposed)
    }

    /// The permission of `service`'s `method`, from the method table.
    fn permission_of(&self, service: &str, method: &str) -> Result<&Permission, Status> {
        let path = format!("/{service}/{method}");
        self.methods
            .get(&path)
            .and_then(|method| method.permission())
            .ok_or_else(|| Status::internal(format!("`{path}` has no rule in the method table")))
    }
}

/// The error of a change or of `recent`, saying which it was: the same code, reason and
/// details as its method gives.
fn in_field(at: &str, status: Status) -> Status {
    Status::with_details_and_metadata(
        status.code(),
        format!("{at}: {}", status.message()),
        status.details().to_vec().into(),
        status.metadata().clone(),
    )
}

fn explanation_of(answer: &engine::Explanation, position: u64) -> pb::ExplainResponse {
    let decision = answer_of(&answer.decision, position);
    pb::ExplainResponse {
        allowed: decision.allowed,
        decision: decision.decision,
        reasons: decision.reasons,
        consistency_token: decision.consistency_token,
        matches: answer.matches.iter().map(to_match).collect(),
        near_misses: answer.near_misses.iter().map(near_miss).collect(),
    }
}

/// A check as the answer names it.
fn request_of(check: &CheckInput) -> pb::CheckRequest {
    use pbjson_types::value::Kind;
    let fields = check
        .context
        .iter()
        .map(|(key, value)| {
            let kind = match value {
                engine::Value::Null => Kind::NullValue(0),
                engine::Value::Bool(b) => Kind::BoolValue(*b),
                engine::Value::Number(n) => Kind::NumberValue(*n),
                engine::Value::String(s) => Kind::StringValue(s.clone()),
                // What conditions do not see, kept as what it was: a list or an object.
                engine::Value::Composite => Kind::StructValue(Struct::default()),
            };
            (key.clone(), pbjson_types::Value { kind: Some(kind) })
        })
        .collect();
    pb::CheckRequest {
        subject: check.subject.clone(),
        teams: check.teams.clone(),
        action: check.action.clone(),
        resource: check.resource.clone(),
        tenant: check.tenant.clone(),
        organization_id: check.organization_id.clone(),
        context: (!check.context.is_empty()).then_some(Struct { fields }),
        consistency_token: String::new(),
    }
}

fn input(message: &pb::CheckRequest) -> CheckInput {
    CheckInput {
        subject: message.subject.clone(),
        teams: message.teams.clone(),
        action: message.action.clone(),
        resource: message.resource.clone(),
        tenant: message.tenant.clone(),
        organization_id: message.organization_id.clone(),
        context: message.context.as_ref().map(context).unwrap_or_default(),
    }
}

/// The top-level keys of a `Struct`, as the engine reads them.
pub(super) fn context(fields: &Struct) -> engine::Context {
    use pbjson_types::value::Kind;
    fields
        .fields
        .iter()
        .map(|(key, value)| {
            let value = match &value.kind {
                None | Some(Kind::NullValue(_)) => engine::Value::Null,
                Some(Kind::BoolValue(b)) => engine::Value::Bool(*b),
                Some(Kind::NumberValue(n)) => engine::Value::Number(*n),
                Some(Kind::StringValue(s)) => engine::Value::String(s.clone()),
                Some(Kind::StructValue(_) | Kind::ListValue(_)) => engine::Value::Composite,
            };
            (key.clone(), value)
        })
        .collect()
}

fn answer_of(decision: &engine::Decision, position: u64) -> pb::CheckResponse {
    pb::CheckResponse {
        allowed: decision.allowed,
        decision: if decision.allowed { pb::Decision::Allow } else { pb::Decision::Deny } as i32,
        reasons: decision.reasons.iter().map(to_match).collect(),
        consistency_token: position.to_string(),
    }
}

fn effect(effect: engine::Effect) -> i32 {
    match effect {
        engine::Effect::Allow => pb::r#match::Effect::Allow as i32,
        engine::Effect::Deny => pb::r#match::Effect::Deny as i32,
    }
}

fn organization(source: &engine::Source) -> String {
    match source {
        engine::Source::Iam => String::new(),
        engine::Source::Organization(id) => id.to_string(),
    }
}

fn to_match(at: &engine::Match) -> pb::Match {
    pb::Match {
        policy_id: at.policy.to_string(),
        statement_index: i32::try_from(at.statement).unwrap_or(i32::MAX),
        effect: effect(at.effect),
        organization_id: organization(&at.source),
    }
}

fn near_miss(miss: &engine::NearMiss) -> pb::NearMiss {
    use pb::near_miss::Criterion as C;
    let failed = match miss.failed {
        engine::Criterion::Action => C::Action,
        engine::Criterion::Resource => C::Resource,
        engine::Criterion::Tenant => C::Tenant,
        engine::Criterion::Organization => C::Organization,
        engine::Criterion::Condition => C::Condition,
    };
    let at = to_match(&miss.statement);
    pb::NearMiss {
        policy_id: at.policy_id,
        statement_index: at.statement_index,
        effect: at.effect,
        organization_id: at.organization_id,
        failed: failed as i32,
    }
}
