//! `iamd.authz.v1.AuthzService`: checks in, decisions out. Each answer names the state it
//! was decided against as a consistency token, in the body and, as a write's, in the
//! `x-iamd-consistency-token` header.

use iamd_engine as engine;
use pbjson_types::Struct;
use tonic::{Request, Response, Status};

use super::{Api, respond};
use crate::app::authz::{CheckInput, Decided};
use crate::pb::iamd::authz::v1 as pb;
use crate::pb::iamd::authz::v1::authz_service_server::AuthzService;

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
        let decision = answer_of(&answer.decision, position);
        Ok(respond(
            pb::ExplainResponse {
                allowed: decision.allowed,
                decision: decision.decision,
                reasons: decision.reasons,
                consistency_token: decision.consistency_token,
                matches: answer.matches.iter().map(to_match).collect(),
                near_misses: answer.near_misses.iter().map(near_miss).collect(),
            },
            None,
            Some(position),
        ))
    }

    async fn simulate(
        &self,
        _request: Request<pb::SimulateRequest>,
    ) -> Result<Response<pb::SimulateResponse>, Status> {
        Err(Status::unimplemented("simulation is being built"))
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
