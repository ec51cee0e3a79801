//! Decisions (A.7): Check, BatchCheck and Explain against this replica's decision engine,
//! which every change of a policy, role or assignment updates as it is installed. A check
//! names concrete values; wildcards where one belongs, or an organization this replica does
//! not hold, are refused before the engine is asked.

use std::time::Instant;

use iamd_engine::{Context, Decision, Explanation, OrgAction, Request, grammar};

use super::iam::{MAX_TENANT_ID, id_grammar};
use super::{App, AppError, organizations};
use crate::kinds::organization::Organization;
use crate::metrics::DecisionSource;
use crate::model::objects::Objects;

/// How many checks one BatchCheck decides.
pub const MAX_BATCH: usize = 100;

/// A check as the request holds it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CheckInput {
    pub subject: String,
    pub teams: Vec<String>,
    pub action: String,
    pub resource: String,
    /// Empty: any tenant.
    pub tenant: String,
    /// Empty: no organization.
    pub organization_id: String,
    pub context: Context,
}

impl CheckInput {
    pub fn request(&self) -> Request<'_> {
        Request {
            subject: &self.subject,
            teams: &self.teams,
            action: &self.action,
            resource: &self.resource,
            tenant: (!self.tenant.is_empty()).then_some(self.tenant.as_str()),
            organization: (!self.organization_id.is_empty()).then_some(self.organization_id.as_str()),
            context: &self.context,
        }
    }
}

/// An answer, with the log position of the state it was decided against.
#[derive(Clone, Debug)]
pub struct Decided<T> {
    pub answer: T,
    pub position: u64,
}

impl App {
    /// Decides one check.
    pub async fn check(&self, input: &CheckInput, token: &str) -> Result<Decided<Decision>, AppError> {
        valid_check("", input)?;
        self.wait_for_token(token).await?;
        let objects = self.objects()?;
        known_organization(&objects, "", input)?;
        let started = Instant::now();
        let answer = objects.engine().check(&input.request());
        self.decided(DecisionSource::Check, &input.request(), answer.allowed, started);
        Ok(Decided { answer, position: objects.position() })
    }

    /// Decides 1 to [`MAX_BATCH`] checks against one state, in their order.
    pub async fn batch_check(&self, inputs: &[CheckInput], token: &str) -> Result<Decided<Vec<Decision>>, AppError> {
        if inputs.is_empty() || inputs.len() > MAX_BATCH {
            return Err(AppError::invalid(
                "checks",
                format!("a batch holds 1 to {MAX_BATCH} checks, not {}", inputs.len()),
            ));
        }
        for (i, input) in inputs.iter().enumerate() {
            valid_check(&format!("checks[{i}]."), input)?;
        }
        self.wait_for_token(token).await?;
        let objects = self.objects()?;
        for (i, input) in inputs.iter().enumerate() {
            known_organization(&objects, &format!("checks[{i}]."), input)?;
        }
        let engine = objects.engine();
        let answers = inputs
            .iter()
            .map(|input| {
                let started = Instant::now();
                let answer = engine.check(&input.request());
                self.decided(DecisionSource::Check, &input.request(), answer.allowed, started);
                answer
            })
            .collect();
        Ok(Decided { answer: answers, position: objects.position() })
    }

    /// Decides one check and says why.
    pub async fn explain(&self, input: &CheckInput, token: &str) -> Result<Decided<Explanation>, AppError> {
        valid_check("", input)?;
        self.wait_for_token(token).await?;
        let objects = self.objects()?;
        known_organization(&objects, "", input)?;
        let started = Instant::now();
        let answer = objects.engine().explain(&input.request());
        self.decided(DecisionSource::Check, &input.request(), answer.decision.allowed, started);
        Ok(Decided { answer, position: objects.position() })
    }

    /// Waits until this replica holds the write that answered `token` (none: at once).
    pub async fn wait_for_token(&self, token: &str) -> Result<(), AppError> {
        if token.trim().is_empty() {
            return Ok(());
        }
        super::reach_token(&self.replica, "consistencyToken", token, self.consistency_wait).await
    }
}

/// A check names concrete values; `at` prefixes its fields within a batch.
pub(super) fn valid_check(at: &str, input: &CheckInput) -> Result<(), AppError> {
    let field = |name: &str| format!("{at}{name}");
    let refuse = |name: &str, message: String| Err(AppError::invalid(&field(name), message));
    if input.subject.is_empty() {
        return refuse("subject", "the subject is required, such as `user:local:alice`".into());
    }
    if let Some(message) = grammar::subject(&input.subject) {
        return refuse("subject", message);
    }
    for (i, team) in input.teams.iter().enumerate() {
        if let Some(message) = grammar::team(team) {
            return refuse(&format!("teams[{i}]"), message);
        }
    }
    let with_organization = !input.organization_id.is_empty();
    if input.action.is_empty() {
        return refuse("action", "the action is required, such as `iam:users:get`".into());
    }
    if !(with_organization && OrgAction::concrete(&input.action).is_some())
        && let Some(message) = grammar::concrete_action(&input.action)
    {
        let message = if with_organization {
            format!("{message}; or, with `organizationId`, one of `view`, `create`, `update`, `delete`")
        } else {
            message
        };
        return refuse("action", message);
    }
    if input.resource.is_empty() {
        return refuse("resource", "the resource is required, such as `iam:users:bob` or `/workspaces/w1`".into());
    }
    let resource = if input.resource.starts_with('/') {
        grammar::concrete_path(&input.resource)
    } else {
        grammar::concrete_resource(&input.resource)
    };
    if let Some(message) = resource {
        return refuse("resource", message);
    }
    if !input.tenant.is_empty()
        && let Some(message) = id_grammar(&input.tenant, MAX_TENANT_ID)
    {
        return refuse("tenant", format!("tenant {message}; leave it empty for any tenant"));
    }
    Ok(())
}

/// The organization a check names exists on this replica; in a batch, the message says which
/// check named it.
pub(super) fn known_organization(objects: &Objects, at: &str, input: &CheckInput) -> Result<(), AppError> {
    if input.organization_id.is_empty() || objects.get::<Organization>(&input.organization_id).is_some() {
        return Ok(());
    }
    let error = organizations::not_found(&input.organization_id);
    Err(if at.is_empty() {
        error
    } else {
        AppError { message: format!("{at}organizationId: {}", error.message), ..error }
    })
}
