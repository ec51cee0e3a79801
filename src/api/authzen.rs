//! `iamd.authzen.v1`: the OpenID AuthZEN Authorization API. Converts the specification's
//! messages to the use cases' and back; the mapping onto iamd's names is `app::authzen`'s.

use pbjson_types::value::Kind;
use pbjson_types::{Struct, Value};
use tonic::{Request, Response, Status};

use super::authz::context;
use super::{Api, respond};
use crate::app::authz::Decided;
use crate::app::authzen::{self as app, Found, Note, Semantic, Verdict};
use crate::observe::CallInfo;
use crate::pb::iamd::authzen::v1 as pb;
use crate::pb::iamd::authzen::v1::access_service_server::AccessService;
use crate::pb::iamd::authzen::v1::metadata_service_server::MetadataService;

#[tonic::async_trait]
impl AccessService for Api {
    async fn evaluation(
        &self,
        request: Request<pb::EvaluationRequest>,
    ) -> Result<Response<pb::EvaluationResponse>, Status> {
        let m = request.into_inner();
        let evaluation = evaluation(&m.subject, &m.action, &m.resource, &m.context);
        let decided = self.app.evaluate(&evaluation).await?;
        Ok(respond(answer(decided.answer), None, Some(decided.position)))
    }

    async fn evaluations(
        &self,
        request: Request<pb::EvaluationsRequest>,
    ) -> Result<Response<pb::EvaluationsResponse>, Status> {
        let m = request.into_inner();
        let semantic = Semantic::parse(m.options.as_ref().map_or("", |o| o.evaluations_semantic.as_str()))?;
        let defaults = evaluation(&m.subject, &m.action, &m.resource, &m.context);
        // Without items the endpoint is the single evaluation, errors and answer alike.
        if m.evaluations.is_empty() {
            let decided = self.app.evaluate(&defaults).await?;
            let single = answer(decided.answer);
            let response = pb::EvaluationsResponse {
                decision: Some(single.decision),
                context: single.context,
                evaluations: Vec::new(),
            };
            return Ok(respond(response, None, Some(decided.position)));
        }
        let items: Vec<app::Evaluation> = m
            .evaluations
            .iter()
            .map(|item| evaluation(&item.subject, &item.action, &item.resource, &item.context))
            .collect();
        let decided = self.app.evaluate_batch(&defaults, &items, semantic).await?;
        let evaluations = decided.answer.into_iter().map(answer).collect();
        Ok(respond(
            pb::EvaluationsResponse { decision: None, context: None, evaluations },
            None,
            Some(decided.position),
        ))
    }

    async fn subject_search(
        &self,
        request: Request<pb::SubjectSearchRequest>,
    ) -> Result<Response<pb::SubjectSearchResponse>, Status> {
        let m = request.into_inner();
        let decided = self
            .app
            .search_subjects(
                m.subject.as_ref().map(subject).as_ref(),
                m.action.as_ref().map(action).as_ref(),
                m.resource.as_ref().map(resource).as_ref(),
                &m.context.as_ref().map(context).unwrap_or_default(),
                &page(m.page.as_ref()),
            )
            .await?;
        Ok(page_of(
            decided,
            |s| pb::Subject { r#type: s.kind, id: s.id, properties: None },
            |page, results| pb::SubjectSearchResponse { page, results },
        ))
    }

    async fn resource_search(
        &self,
        request: Request<pb::ResourceSearchRequest>,
    ) -> Result<Response<pb::ResourceSearchResponse>, Status> {
        let m = request.into_inner();
        let decided = self
            .app
            .search_resources(
                m.subject.as_ref().map(subject).as_ref(),
                m.action.as_ref().map(action).as_ref(),
                m.resource.as_ref().map(resource).as_ref(),
                &m.context.as_ref().map(context).unwrap_or_default(),
                &page(m.page.as_ref()),
            )
            .await?;
        Ok(page_of(
            decided,
            |r| pb::Resource { r#type: r.kind, id: r.id, properties: None },
            |page, results| pb::ResourceSearchResponse { page, results },
        ))
    }

    async fn action_search(
        &self,
        request: Request<pb::ActionSearchRequest>,
    ) -> Result<Response<pb::ActionSearchResponse>, Status> {
        let m = request.into_inner();
        let decided = self
            .app
            .search_actions(
                m.subject.as_ref().map(subject).as_ref(),
                m.resource.as_ref().map(resource).as_ref(),
                &m.context.as_ref().map(context).unwrap_or_default(),
                &page(m.page.as_ref()),
            )
            .await?;
        Ok(page_of(
            decided,
            |a| pb::Action { name: a.name, properties: None },
            |page, results| pb::ActionSearchResponse { page, results },
        ))
    }
}

#[tonic::async_trait]
impl MetadataService for Api {
    async fn get_configuration(
        &self,
        request: Request<pb::GetConfigurationRequest>,
    ) -> Result<Response<pb::GetConfigurationResponse>, Status> {
        let base = match &self.public_url {
            Some(url) => url.to_string(),
            // The plaintext listener: the host the client addressed, over http.
            None => {
                let authority = request.extensions().get::<CallInfo>().and_then(CallInfo::authority);

                let authority = authority.ok_or_else(|| {
                    Status::failed_precondition(
                        "the request names no host to build this server's URLs from; start iamd with --public-url",
                    )
                })?;
                format!("http://{authority}")
            }
        };
        let endpoint = |path: &str| format!("{base}{path}");
        Ok(Response::new(pb::GetConfigurationResponse {
            access_evaluation_endpoint: endpoint("/access/v1/evaluation"),
            access_evaluations_endpoint: endpoint("/access/v1/evaluations"),
            search_subject_endpoint: endpoint("/access/v1/search/subject"),
            search_resource_endpoint: endpoint("/access/v1/search/resource"),
            search_action_endpoint: endpoint("/access/v1/search/action"),
            policy_decision_point: base,
        }))
    }
}

/// The entities of a request or of a batch item; each absent one stays absent.
fn evaluation(
    subject_in: &Option<pb::Subject>,
    action_in: &Option<pb::Action>,
    resource_in: &Option<pb::Resource>,
    context_in: &Option<Struct>,
) -> app::Evaluation {
    app::Evaluation {
        subject: subject_in.as_ref().map(subject),
        action: action_in.as_ref().map(action),
        resource: resource_in.as_ref().map(resource),
        context: context_in.as_ref().map(context),
    }
}

fn subject(s: &pb::Subject) -> app::Subject {
    app::Subject {
        kind: s.r#type.clone(),
        id: s.id.clone(),
        properties: s.properties.as_ref().map(context).unwrap_or_default(),
    }
}

fn resource(r: &pb::Resource) -> app::Resource {
    app::Resource {
        kind: r.r#type.clone(),
        id: r.id.clone(),
        properties: r.properties.as_ref().map(context).unwrap_or_default(),
    }
}

fn action(a: &pb::Action) -> app::Action {
    app::Action { name: a.name.clone(), properties: a.properties.as_ref().map(context).unwrap_or_default() }
}

fn page(page: Option<&pb::PageRequest>) -> app::PageIn {
    page.map(|p| app::PageIn { token: p.token.clone(), limit: p.limit }).unwrap_or_default()
}

/// A search's answer: its results in the specification's form, `page` first, and the state
/// it was decided against.
fn page_of<T, P, M>(
    decided: Decided<Found<T>>,
    result: impl Fn(T) -> P,
    answer: impl FnOnce(Option<pb::PageResponse>, Vec<P>) -> M,
) -> Response<M> {
    let Decided { answer: found, position } = decided;
    let results: Vec<P> = found.results.into_iter().map(result).collect();
    let count = i32::try_from(results.len()).unwrap_or(i32::MAX);
    let page = pb::PageResponse { next_token: found.next_token, count };
    respond(answer(Some(page), results), None, Some(position))
}

fn answer(verdict: Verdict) -> pb::EvaluationResponse {
    let context = verdict.note.map(|note| match note {
        Note::Reason(reason) => object([("reason", string(reason))]),
        Note::Error { status, message } => object([(
            "error",
            Value { kind: Some(Kind::StructValue(object([("status", number(status)), ("message", string(message))]))) },
        )]),
    });
    pb::EvaluationResponse { decision: verdict.decision, context }
}

fn object<const N: usize>(fields: [(&str, Value); N]) -> Struct {
    Struct { fields: fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect() }
}

fn string(text: String) -> Value {
    Value { kind: Some(Kind::StringValue(text)) }
}

fn number(n: u16) -> Value {
    Value { kind: Some(Kind::NumberValue(f64::from(n))) }
}
