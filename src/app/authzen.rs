//! The OpenID AuthZEN Authorization API 1.0 on iamd's model: one mapping of AuthZEN's
//! subjects, resources and actions onto iamd's names (README "AuthZEN"), so the IAM v2
//! policies that answer `/v1/authz:check` answer AuthZEN too. Organization policies take no
//! part: they need an `organizationId` (A.7).
//!
//! - Subject `{type: "user", id}` is `user:local:<id>`, or `id` itself when it already is a
//!   subject (`user:oidc:ana`); `{type: "token", id}` is `token:<id>`, or the user the token
//!   names. Any other type names no subject iamd knows.
//! - Resource `{type: T, id: I}` is `authzen:T:I`, or `T:I` when `T` holds a `:`.
//! - Action `{name: N}` is `<the resource's mapped type>:N`, or `N` when it already is an
//!   action (`iam:users:get`).
//! - Properties become the context keys `subject.<key>`, `resource.<key>`, `action.<key>`;
//!   a stored user's properties come under the request's, and both over the request's own
//!   `context` keys of the same name.
//!
//! A search takes its candidates from the engine's indexes (the members, resources and
//! actions that matching statements name, and for a wildcard member the stored users or
//! tokens it covers, in name order from where the last page ended) and keeps each that the
//! ordinary decision allows, so every result evaluates true.

use std::collections::BTreeMap;
use std::iter::Peekable;
use std::time::Instant;

use iamd_engine::{Context, Engine, Request, Value, grammar};
use sha2::{Digest, Sha256};

use super::authz::Decided;
use super::page::ListId;
use super::recent::Recent;
use super::{App, AppError};
use crate::kinds::token::{ORDER_INDEX as TOKEN_ORDER, Token};
use crate::kinds::user::{LOCAL_USER, ORDER_INDEX as USER_ORDER, User, user_subject};
use crate::metrics::DecisionSource;
use crate::model::kind::Key;
use crate::model::objects::Objects;

/// How many items one batch evaluates.
pub const MAX_EVALUATIONS: usize = 100;
/// The page size of a search that names none.
pub const DEFAULT_SEARCH_LIMIT: u32 = 100;
pub const MAX_SEARCH_LIMIT: u32 = 1000;

/// An entity's properties, and a request's context: JSON values by key.
pub type Properties = BTreeMap<String, Value>;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Subject {
    pub kind: String,
    pub id: String,
    pub properties: Properties,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Resource {
    pub kind: String,
    pub id: String,
    pub properties: Properties,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Action {
    pub name: String,
    pub properties: Properties,
}

/// One evaluation as a request holds it. In a batch, an item's absent entity or context is
/// the request's, taken whole.
#[derive(Clone, Debug, Default)]
pub struct Evaluation {
    pub subject: Option<Subject>,
    pub action: Option<Action>,
    pub resource: Option<Resource>,
    pub context: Option<Properties>,
}

impl Evaluation {
    /// The item with the request's defaults where it has none of its own.
    fn over(&self, defaults: &Evaluation) -> Evaluation {
        Evaluation {
            subject: self.subject.clone().or_else(|| defaults.subject.clone()),
            action: self.action.clone().or_else(|| defaults.action.clone()),
            resource: self.resource.clone().or_else(|| defaults.resource.clone()),
            context: self.context.clone().or_else(|| defaults.context.clone()),
        }
    }
}

/// A decision, and what iamd says about it in the answer's `context`.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    pub decision: bool,
    pub note: Option<Note>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Note {
    /// `{"reason": …}`
    Reason(String),
    /// `{"error": {"status", "message"}}`: a batch item that could not be evaluated.
    Error { status: u16, message: String },
}

/// How a batch runs (specification §7.1.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Semantic {
    ExecuteAll,
    DenyOnFirstDeny,
    PermitOnFirstPermit,
}

impl Semantic {
    /// `options.evaluations_semantic`; empty is the default, `execute_all`.
    pub fn parse(text: &str) -> Result<Semantic, AppError> {
        match text {
            "" | "execute_all" => Ok(Semantic::ExecuteAll),
            "deny_on_first_deny" => Ok(Semantic::DenyOnFirstDeny),
            "permit_on_first_permit" => Ok(Semantic::PermitOnFirstPermit),
            other => Err(AppError::invalid(
                "options.evaluations_semantic",
                format!(
                    "`{other}` is not an evaluations semantic: use execute_all, deny_on_first_deny or permit_on_first_permit"
                ),
            )),
        }
    }

    /// The name of the semantic that stopped a batch at this verdict, if it does.
    fn stops_at(self, decision: bool) -> Option<&'static str> {
        match (self, decision) {
            (Semantic::DenyOnFirstDeny, false) => Some("deny_on_first_deny"),
            (Semantic::PermitOnFirstPermit, true) => Some("permit_on_first_permit"),
            _ => None,
        }
    }
}

/// A search's `page`.
#[derive(Clone, Debug, Default)]
pub struct PageIn {
    pub token: String,
    pub limit: Option<i32>,
}

/// One page of search results; `next_token` is empty on the last.
#[derive(Clone, Debug, PartialEq)]
pub struct Found<T> {
    pub results: Vec<T>,
    pub next_token: String,
}

impl<T> Default for Found<T> {
    fn default() -> Self {
        Found { results: Vec::new(), next_token: String::new() }
    }
}

/// A subject of iamd's names, and the stored user whose properties it carries.
struct Principal {
    subject: String,
    user: Option<String>,
}

/// A question in iamd's names.
struct Question<'a> {
    subject: &'a str,
    action: &'a str,
    resource: &'a str,
    context: &'a Context,
}

impl Question<'_> {
    fn request(&self) -> Request<'_> {
        Request {
            subject: self.subject,
            teams: &[],
            action: self.action,
            resource: self.resource,
            tenant: None,
            organization: None,
            context: self.context,
        }
    }

    fn allowed(&self, engine: &Engine) -> bool {
        engine.check(&self.request()).allowed
    }
}

impl App {
    /// Decides one evaluation; a missing entity or sub-field is INVALID_ARGUMENT.
    pub async fn evaluate(&self, evaluation: &Evaluation) -> Result<Decided<Verdict>, AppError> {
        let objects = self.objects()?;
        let started = Instant::now();
        let answer = evaluate(&objects, evaluation, &self.recent)?;
        self.metrics().decided(DecisionSource::Authzen, answer.decision, started.elapsed());
        Ok(Decided { answer, position: objects.position() })
    }

    /// Decides a batch against one state: each item over the defaults, in order, up to the
    /// item that decides it under `semantic`. An item that cannot be evaluated is a deny
    /// that says why; no items is one evaluation of the defaults.
    pub async fn evaluate_batch(
        &self,
        defaults: &Evaluation,
        items: &[Evaluation],
        semantic: Semantic,
    ) -> Result<Decided<Vec<Verdict>>, AppError> {
        if items.len() > MAX_EVALUATIONS {
            return Err(AppError::invalid(
                "evaluations",
                format!("a batch holds at most {MAX_EVALUATIONS} evaluations, not {}", items.len()),
            ));
        }
        let objects = self.objects()?;
        let mut verdicts = Vec::with_capacity(items.len());
        for item in items {
            let started = Instant::now();
            let mut verdict = evaluate(&objects, &item.over(defaults), &self.recent).unwrap_or_else(|error| Verdict {
                decision: false,
                note: Some(Note::Error { status: 400, message: error.message }),
            });
            self.metrics().decided(DecisionSource::Authzen, verdict.decision, started.elapsed());
            let stop = semantic.stops_at(verdict.decision);
            if let Some(reason) = stop {
                verdict.note = verdict.note.or(Some(Note::Reason(reason.to_owned())));
            }
            verdicts.push(verdict);
            if stop.is_some() {
                break;
            }
        }
        Ok(Decided { answer: verdicts, position: objects.position() })
    }

    /// The subjects of `subject.kind` allowed `action` on `resource`, in name order.
    pub async fn search_subjects(
        &self,
        subject: Option<&Subject>,
        action: Option<&Action>,
        resource: Option<&Resource>,
        context: &Properties,
        page: &PageIn,
    ) -> Result<Decided<Found<Subject>>, AppError> {
        let kind = searched_kind(subject.map(|s| &s.kind), "subject")?;
        let action = entity(action, "action")?;
        required(&action.name, "action.name")?;
        let resource = identified_resource(resource)?;
        let resource_name = resource_name(resource)?;
        let action_name = action_name(&action.name, &resource.kind)?;
        let fixed = context_of(context, &[("resource", &resource.properties), ("action", &action.properties)]);
        let list = SearchList::new("subject", kind, &[&action_name, &resource_name], &fixed);
        let (limit, after) = self.search_page(&list, page)?;
        let objects = self.objects()?;
        let engine = objects.engine();
        let candidates = engine.subject_candidates(&action_name, &resource_name);
        // The names of a kind, what wildcard members cover its stored objects, and the index
        // that walks those in name order.
        let (prefix, covered, stored): (&str, &[&str], Stored) = match kind {
            "user" => ("user:", &["*", "user:*", "user:local:*"], Stored::USERS),
            "token" => ("token:", &["*", "token:*"], Stored::TOKENS),
            _ => return Ok(Decided { answer: Found::default(), position: objects.position() }),
        };
        let named = candidates
            .subjects
            .range::<str, _>((after_bound(&after), std::ops::Bound::Unbounded))
            .filter(|name| name.starts_with(prefix))
            .cloned();
        let wildcard = covered.iter().any(|pattern| candidates.patterns.contains(*pattern));
        let stored = wildcard.then(|| stored.names_after(&objects, after.as_deref())).into_iter().flatten();
        let allowed = |name: &str| {
            let principal = principal_of_name(&objects, kind, name);
            let context = with_stored(&objects, &fixed, principal.user.as_deref(), &Properties::new());
            Question { subject: &principal.subject, action: &action_name, resource: &resource_name, context: &context }
                .allowed(engine)
        };
        let results = first_allowed(merged(named, stored), limit, allowed);
        let (names, next_token) = self.cut(&list, limit, results);
        let results = names.into_iter().map(|name| subject_of_name(kind, &name)).collect();
        Ok(Decided { answer: Found { results, next_token }, position: objects.position() })
    }

    /// The resources of `resource.kind` that `subject` is allowed `action` on, in name order.
    pub async fn search_resources(
        &self,
        subject: Option<&Subject>,
        action: Option<&Action>,
        resource: Option<&Resource>,
        context: &Properties,
        page: &PageIn,
    ) -> Result<Decided<Found<Resource>>, AppError> {
        let subject = identified_subject(subject)?;
        let action = entity(action, "action")?;
        required(&action.name, "action.name")?;
        let kind = searched_kind(resource.map(|r| &r.kind), "resource")?;
        let action_name = action_name(&action.name, kind)?;
        let objects = self.objects()?;
        let Some(principal) = principal(&objects, subject)? else {
            return Ok(Decided { answer: Found::default(), position: objects.position() });
        };
        let fixed = context_of(context, &[("action", &action.properties)]);
        let context = with_stored(&objects, &fixed, principal.user.as_deref(), &subject.properties);
        let list = SearchList::new("resource", kind, &[&principal.subject, &action_name], &context);
        let (limit, after) = self.search_page(&list, page)?;
        let engine = objects.engine();
        let prefix = format!("{}:", resource_type(kind));
        let candidates = engine.resource_candidates(&principal.subject, &[], &action_name);
        let of_kind = candidates
            .resources
            .range::<str, _>((after_bound(&after), std::ops::Bound::Unbounded))
            .filter(|name| name.strip_prefix(&prefix).is_some_and(|id| !id.is_empty()))
            .cloned();
        let allowed = |name: &str| {
            Question { subject: &principal.subject, action: &action_name, resource: name, context: &context }
                .allowed(engine)
        };
        let results = first_allowed(of_kind, limit, allowed);
        let (names, next_token) = self.cut(&list, limit, results);
        let results = names
            .into_iter()
            .map(|name| Resource {
                kind: kind.to_owned(),
                id: name.get(prefix.len()..).unwrap_or_default().to_owned(),
                properties: Properties::new(),
            })
            .collect();
        Ok(Decided { answer: Found { results, next_token }, position: objects.position() })
    }

    /// The actions `subject` is allowed on `resource`, by name, in iamd's name order.
    pub async fn search_actions(
        &self,
        subject: Option<&Subject>,
        resource: Option<&Resource>,
        context: &Properties,
        page: &PageIn,
    ) -> Result<Decided<Found<Action>>, AppError> {
        let subject = identified_subject(subject)?;
        let resource = identified_resource(resource)?;
        let resource_name = resource_name(resource)?;
        let objects = self.objects()?;
        let Some(principal) = principal(&objects, subject)? else {
            return Ok(Decided { answer: Found::default(), position: objects.position() });
        };
        let fixed = context_of(context, &[("resource", &resource.properties)]);
        let context = with_stored(&objects, &fixed, principal.user.as_deref(), &subject.properties);
        let list = SearchList::new("action", &resource.kind, &[&principal.subject, &resource_name], &context);
        let (limit, after) = self.search_page(&list, page)?;
        let engine = objects.engine();
        let prefix = format!("{}:", resource_type(&resource.kind));
        let candidates = engine.action_candidates(&principal.subject, &[], &resource_name);
        // `<type>:<verb>`, one segment after the type.
        let of_kind = candidates
            .actions
            .range::<str, _>((after_bound(&after), std::ops::Bound::Unbounded))
            .filter(|name| name.strip_prefix(&prefix).is_some_and(|verb| !verb.is_empty() && !verb.contains(':')))
            .cloned();
        let allowed = |name: &str| {
            Question { subject: &principal.subject, action: name, resource: &resource_name, context: &context }
                .allowed(engine)
        };
        let results = first_allowed(of_kind, limit, allowed);
        let (names, next_token) = self.cut(&list, limit, results);
        let results = names
            .into_iter()
            .map(|name| Action {
                name: name.get(prefix.len()..).unwrap_or_default().to_owned(),
                properties: Properties::new(),
            })
            .collect();
        Ok(Decided { answer: Found { results, next_token }, position: objects.position() })
    }

    /// The page size and the name a page starts after. A token carries the size of the page
    /// it continues; a request may repeat it, not change it.
    fn search_page(&self, list: &SearchList, page: &PageIn) -> Result<(usize, Option<String>), AppError> {
        let limit = match page.limit {
            None => None,
            Some(n) if (1..=MAX_SEARCH_LIMIT as i32).contains(&n) => Some(n as u32),
            Some(n) => {
                return Err(AppError::invalid(
                    "page.limit",
                    format!("a page holds 1 to {MAX_SEARCH_LIMIT} results, not {n}"),
                ));
            }
        };
        if page.token.is_empty() {
            return Ok((limit.unwrap_or(DEFAULT_SEARCH_LIMIT) as usize, None));
        }
        let refused = || {
            AppError::invalid(
                "page.token",
                "the page token is not one this search answered: the entities, context and limit must stay the same",
            )
        };
        let (sealed_limit, last) = self.pages.open(&list.id(), false, &page.token).map_err(|_| refused())?;
        let sealed_limit: u32 = sealed_limit.parse().map_err(|_| refused())?;
        if limit.is_some_and(|limit| limit != sealed_limit) {
            return Err(refused());
        }
        Ok((sealed_limit as usize, Some(last)))
    }

    /// Cuts a page of `limit` from up to `limit + 1` results; the token continues after it.
    fn cut(&self, list: &SearchList, limit: usize, mut names: Vec<String>) -> (Vec<String>, String) {
        if names.len() <= limit {
            return (names, String::new());
        }
        names.truncate(limit);
        let token = names.last().map(|last| self.pages.seal(&list.id(), false, &limit.to_string(), last));
        (names, token.unwrap_or_default())
    }
}

/// Which search a token belongs to: its kind and a digest of everything it was asked with.
struct SearchList {
    list: String,
    digest: String,
}

impl SearchList {
    fn new(search: &str, kind: &str, names: &[&str], context: &Context) -> SearchList {
        let mut hash = Sha256::new();
        for part in [search, kind].iter().chain(names) {
            hash.update(part.as_bytes());
            hash.update([0]);
        }
        for (key, value) in context {
            hash.update(key.as_bytes());
            hash.update([0]);
            hash.update(format!("{value:?}").as_bytes());
            hash.update([0]);
        }
        let digest = hash.finalize().iter().take(16).map(|b| format!("{b:02x}")).collect();
        SearchList { list: format!("authzen.{search}"), digest }
    }

    fn id(&self) -> ListId<'_> {
        ListId { list: &self.list, scope: &self.digest }
    }
}

fn after_bound(after: &Option<String>) -> std::ops::Bound<&str> {
    match after {
        Some(last) => std::ops::Bound::Excluded(last.as_str()),
        None => std::ops::Bound::Unbounded,
    }
}

/// Decides one evaluation, keeping its question among the `recent` ones.
fn evaluate(objects: &Objects, evaluation: &Evaluation, recent: &Recent) -> Result<Verdict, AppError> {
    let subject = identified_subject(evaluation.subject.as_ref())?;
    let action = entity(evaluation.action.as_ref(), "action")?;
    required(&action.name, "action.name")?;
    let resource = identified_resource(evaluation.resource.as_ref())?;
    let resource_name = resource_name(resource)?;
    let action_name = action_name(&action.name, &resource.kind)?;
    let Some(principal) = principal(objects, subject)? else {
        return Ok(Verdict { decision: false, note: Some(Note::Reason("unknown subject type".into())) });
    };
    let empty = Properties::new();
    let fixed = context_of(
        evaluation.context.as_ref().unwrap_or(&empty),
        &[("resource", &resource.properties), ("action", &action.properties)],
    );
    let context = with_stored(objects, &fixed, principal.user.as_deref(), &subject.properties);
    let question =
        Question { subject: &principal.subject, action: &action_name, resource: &resource_name, context: &context };
    recent.record(&question.request());
    Ok(Verdict { decision: question.allowed(objects.engine()), note: None })
}

fn entity<'a, T>(value: Option<&'a T>, field: &str) -> Result<&'a T, AppError> {
    value.ok_or_else(|| AppError::invalid(field, format!("`{field}` is required")))
}

fn required(value: &str, field: &str) -> Result<(), AppError> {
    if value.is_empty() {
        return Err(AppError::invalid(field, format!("`{field}` is required")));
    }
    Ok(())
}

fn identified_subject(subject: Option<&Subject>) -> Result<&Subject, AppError> {
    let subject = entity(subject, "subject")?;
    required(&subject.kind, "subject.type")?;
    required(&subject.id, "subject.id")?;
    Ok(subject)
}

fn identified_resource(resource: Option<&Resource>) -> Result<&Resource, AppError> {
    let resource = entity(resource, "resource")?;
    required(&resource.kind, "resource.type")?;
    required(&resource.id, "resource.id")?;
    Ok(resource)
}

/// The searched entity's type: required, while its id is ignored.
fn searched_kind<'a>(kind: Option<&'a String>, field: &str) -> Result<&'a str, AppError> {
    let kind = kind.ok_or_else(|| AppError::invalid(field, format!("`{field}` is required")))?;
    required(kind, &format!("{field}.type"))?;
    Ok(kind)
}

/// `authzen:T`, or `T` itself when it holds a `:`.
fn resource_type(kind: &str) -> String {
    if kind.contains(':') { kind.to_owned() } else { ["authzen:", kind].concat() }
}

fn resource_name(resource: &Resource) -> Result<String, AppError> {
    // Every decision names one; `concat` skips the formatting machinery.
    let name = [&resource_type(&resource.kind), ":", &resource.id].concat();
    match grammar::concrete_resource(&name) {
        None => Ok(name),
        Some(message) => Err(AppError::invalid("resource", format!("resource `{name}`: {message}"))),
    }
}

fn action_name(name: &str, resource_kind: &str) -> Result<String, AppError> {
    if name.contains(':') && grammar::concrete_action(name).is_none() {
        return Ok(name.to_owned());
    }
    let mapped = [&resource_type(resource_kind), ":", name].concat();
    match grammar::concrete_action(&mapped) {
        None => Ok(mapped),
        Some(message) => Err(AppError::invalid("action.name", format!("action `{mapped}`: {message}"))),
    }
}

/// The subject an AuthZEN subject names, or `None` for a type iamd does not know.
fn principal(objects: &Objects, subject: &Subject) -> Result<Option<Principal>, AppError> {
    let name = match subject.kind.as_str() {
        "user" if subject.id.contains(':') && grammar::subject(&subject.id).is_none() => subject.id.clone(),
        "user" => user_subject(&subject.id),
        "token" => ["token:", &subject.id].concat(),
        _ => return Ok(None),
    };
    if let Some(message) = grammar::subject(&name) {
        return Err(AppError::invalid("subject.id", format!("subject `{name}`: {message}")));
    }
    Ok(Some(principal_of_name(objects, &subject.kind, &name)))
}

/// A token that names a user is that user; a local user carries its stored properties.
fn principal_of_name(objects: &Objects, kind: &str, name: &str) -> Principal {
    if kind == "token"
        && let Some(id) = name.strip_prefix("token:")
        && let Some(token) = objects.get::<Token>(id)
        && !token.user.is_empty()
    {
        return Principal { subject: user_subject(&token.user), user: Some(token.user.clone()) };
    }
    let user = name.strip_prefix(LOCAL_USER).map(str::to_owned);
    Principal { subject: name.to_owned(), user }
}

/// Up to `limit + 1` of `names`, in order, that `allowed` keeps: a page and whether another
/// follows.
fn first_allowed(names: impl Iterator<Item = String>, limit: usize, allowed: impl Fn(&str) -> bool) -> Vec<String> {
    names.filter(|name| allowed(name)).take(limit + 1).collect()
}

/// A result in the request's form: `user:local:ana` is `{user, ana}`, another user subject
/// keeps its name as the id, `token:t1` is `{token, t1}`.
fn subject_of_name(kind: &str, name: &str) -> Subject {
    let id = match kind {
        "user" => name.strip_prefix(LOCAL_USER).unwrap_or(name),
        _ => name.strip_prefix("token:").unwrap_or(name),
    };
    Subject { kind: kind.to_owned(), id: id.to_owned(), properties: Properties::new() }
}

/// The request's context with the entities' properties as `<entity>.<key>` over it.
fn context_of(context: &Properties, entities: &[(&str, &Properties)]) -> Context {
    let mut merged: Context = context.clone();
    for (entity, properties) in entities {
        for (key, value) in properties.iter() {
            merged.insert([entity, ".", key].concat(), value.clone());
        }
    }
    merged
}

/// `fixed` with the subject's properties: a stored user's, then the request's over them.
fn with_stored(objects: &Objects, fixed: &Context, user: Option<&str>, request: &Properties) -> Context {
    let mut context = fixed.clone();
    if let Some(stored) = user.and_then(|id| objects.get::<User>(id)) {
        for (key, value) in &stored.properties {
            context.insert(["subject.", key].concat(), Value::String(value.clone()));
        }
    }
    for (key, value) in request {
        context.insert(["subject.", key].concat(), value.clone());
    }
    context
}

/// A kind whose stored objects a wildcard member covers, walked in id order through the
/// kind's order term.
struct Stored {
    /// Its subjects are `<prefix><id>`, so they sort as their ids do.
    prefix: &'static str,
    kind: &'static str,
    order: &'static str,
}

impl Stored {
    const USERS: Stored =
        Stored { prefix: LOCAL_USER, kind: <User as crate::model::kind::Kind>::NAME, order: USER_ORDER };
    const TOKENS: Stored =
        Stored { prefix: "token:", kind: <Token as crate::model::kind::Kind>::NAME, order: TOKEN_ORDER };

    /// The subjects after `after`, in name order, from where it stands.
    fn names_after<'a>(&self, objects: &'a Objects, after: Option<&str>) -> impl Iterator<Item = String> + 'a {
        let start = match after {
            // Before every subject of the kind.
            None => Some(None),
            Some(last) if last < self.prefix => Some(None),
            // After `last`'s id, or (`None`) past every subject of the kind.
            Some(last) => last.strip_prefix(self.prefix).map(|id| Some(Key::new(self.kind, id))),
        };
        let prefix = self.prefix;
        let order = self.order;
        start
            .into_iter()
            .flat_map(move |start| objects.lookup_after(order, "", start))
            .map(move |key| [prefix, &key.id].concat())
    }
}

/// Two ascending streams of names as one, each name once.
fn merged(a: impl Iterator<Item = String>, b: impl Iterator<Item = String>) -> impl Iterator<Item = String> {
    struct Merge<A: Iterator<Item = String>, B: Iterator<Item = String>>(Peekable<A>, Peekable<B>);
    impl<A: Iterator<Item = String>, B: Iterator<Item = String>> Iterator for Merge<A, B> {
        type Item = String;
        fn next(&mut self) -> Option<String> {
            match (self.0.peek(), self.1.peek()) {
                (Some(x), Some(y)) if x == y => {
                    self.1.next();
                    self.0.next()
                }
                (Some(x), Some(y)) if x < y => self.0.next(),
                (Some(_), Some(_)) | (None, _) => self.1.next(),
                (Some(_), None) => self.0.next(),
            }
        }
    }
    Merge(a.peekable(), b.peekable())
}
