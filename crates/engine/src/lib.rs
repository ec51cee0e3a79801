//! iamd's decision engine: "may this principal do this action on this resource", and why.
//!
//! The policies of both surfaces go into one [`Engine`], which keeps them compiled into an
//! index and changes it by each put or remove in work proportional to that change. A check
//! looks up only the statements its subject, action and resource can reach, so it costs
//! what it finds, never a scan of every statement.
//!
//! The rules (api-reference A.7, Part B §2.5–§2.8):
//!
//! - Default deny; an ALLOW grants; any matching DENY overrides every ALLOW; a condition that
//!   cannot be evaluated (a missing context key, a value its operator cannot read) makes an
//!   ALLOW not match and a DENY match. An `…IfExists` operator holds where its key is missing
//!   (or holds a list or an object, which conditions do not see), and otherwise tests as its
//!   plain form.
//! - The subject acts with its teams: those its request names, and those the engine holds as
//!   listing it ([`Engine::put_team`]). A team's members are exact subjects, not wildcards,
//!   and teams are one level: a team listed in another passes that one to none of its members.
//! - IAM v2 statements ([`Policy`]) apply to every check: a policy's member matches the
//!   subject or one of its teams exactly, or by a wildcard (`*`, `user:*`, `team:ldap:*`);
//!   an action pattern (inline, or a [`Role`]'s) matches the action by the §2.6 forms; a
//!   resource pattern matches the resource (`*` everything, `a:*` what lies below `a` but not
//!   `a`, `${a2:username}` the checking user's name); and its conditions, every one, hold on
//!   the check's [`Context`] (failing closed as above).
//! - Tenants scope IAM v2 statements: the authorized tenants are those of matching ALLOWs
//!   minus those of matching DENYs, `*` standing for every tenant. A check that names a tenant
//!   is allowed when that tenant is authorized; one that names none, when any is (a `*` that
//!   no `*` DENY removes counts, even when no tenant exists). Organization definitions are not
//!   scoped by tenant: they authorize, or deny, every tenant. [`Engine::tenants`] gives the
//!   authorized tenants as a set, for filtering lists by tenant.
//! - Organization definitions ([`OrgPolicy`]) apply only to checks that name their
//!   organization, reached through an [`Assignment`] whose principal matches the subject (or a
//!   team), directly or through an [`OrgRole`]; their actions are `view`, `create`, `update`,
//!   `delete` (`any` is all four), their resources API path patterns (`*` one segment, `**` one
//!   or more), and their conditions test the check's [`Context`].
//!
//! An [`Overlay`] lays proposed changes over an engine without copying it, and decides as
//! an engine holding them would: what a simulation asks before a change is saved.
//!
//! Searches ([`Engine::subject_candidates`], [`Engine::resource_candidates`],
//! [`Engine::action_candidates`]) run the IAM v2 rules backwards, from the indexes: they answer
//! candidates, which every entity the rules allow lies among, for the caller to confirm each by
//! a check.
//!
//! No IO, no async and no protobuf: the service feeds it from its typed state and asks it
//! questions, so it can be tested exhaustively and measured alone.

mod condition;
pub mod grammar;
mod index;
mod path;

use std::collections::BTreeMap;
use std::sync::Arc;

pub use condition::{Operator, Value, readable};
pub use index::{ActionCandidates, Engine, Overlay, ResourceCandidates, SubjectCandidates};
pub use path::path_pattern;

/// What the state's objects put into an engine and take out of it: an [`Engine`], or an
/// [`Overlay`] of proposed changes, which decides as an engine fed the same would.
pub trait Feed {
    /// Puts an IAM v2 policy, replacing the one of that id.
    fn put_policy(&mut self, id: &str, policy: &Policy);
    fn remove_policy(&mut self, id: &str);
    /// Puts an IAM v2 role, replacing the one of that id.
    fn put_role(&mut self, id: &str, role: &Role);
    fn remove_role(&mut self, id: &str);
    fn put_org_policy(&mut self, id: &str, policy: &OrgPolicy);
    fn remove_org_policy(&mut self, id: &str);
    fn put_org_role(&mut self, id: &str, role: &OrgRole);
    fn remove_org_role(&mut self, id: &str);
    fn put_assignment(&mut self, id: &str, assignment: &Assignment);
    fn remove_assignment(&mut self, id: &str);
    /// Puts a team's member subjects; none removes the team.
    fn put_team(&mut self, team: &str, members: &[String]);
    fn remove_team(&mut self, team: &str);
}

/// What a statement does when it matches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Effect {
    Allow,
    Deny,
}

/// An IAM v2 policy: its members, and statements that apply to each of them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    pub members: Vec<String>,
    pub statements: Vec<Statement>,
}

/// One statement of an IAM v2 policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Statement {
    pub effect: Effect,
    /// Action patterns of its own.
    pub actions: Vec<String>,
    /// A role whose actions it grants or denies too.
    pub role: Option<String>,
    /// Colon resource patterns; none match nothing.
    pub resources: Vec<String>,
    /// The tenants it applies to; `*` is every tenant, none is no tenant.
    pub tenants: Vec<String>,
    /// Every one must hold, as a definition's must; none always hold.
    pub conditions: Vec<Condition>,
}

/// An IAM v2 role: a named set of action patterns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Role {
    pub actions: Vec<String>,
}

/// What an organization definition covers; `any` is all four.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OrgAction {
    Any,
    View,
    Create,
    Update,
    Delete,
}

impl OrgAction {
    /// The action a check names by its spelling (`view`, …); `any` is not one a check names.
    pub fn concrete(text: &str) -> Option<OrgAction> {
        match text {
            "view" => Some(OrgAction::View),
            "create" => Some(OrgAction::Create),
            "update" => Some(OrgAction::Update),
            "delete" => Some(OrgAction::Delete),
            _ => None,
        }
    }

    /// Whether a definition naming `self` covers the check's `action`.
    pub fn covers(self, action: OrgAction) -> bool {
        self == OrgAction::Any || self == action
    }
}

/// How the tests of one condition combine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Quantifier {
    /// Every test holds.
    All,
    /// At least one test holds.
    Any,
}

/// One test of a condition: the context's value at `key` against `value`, by `operator`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Test {
    pub operator: Operator,
    pub key: String,
    /// As written: a string that the operator reads (a number, `true`, a CIDR block, a date).
    pub value: String,
}

/// One element of `conditionsAll`, of an organization definition or an IAM v2 statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Condition {
    pub quantifier: Quantifier,
    pub tests: Vec<Test>,
}

/// One definition of an organization policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Definition {
    pub effect: Effect,
    pub actions: Vec<OrgAction>,
    /// API path patterns.
    pub resources: Vec<String>,
    /// Every one must hold.
    pub conditions: Vec<Condition>,
}

/// An organization policy: definitions that apply within its organization to the principals
/// assigned it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrgPolicy {
    pub organization: String,
    pub definitions: Vec<Definition>,
}

/// An organization role: a named set of its organization's policies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrgRole {
    pub organization: String,
    pub policies: Vec<String>,
}

/// A principal (a member expression) holds roles and policies of one organization.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assignment {
    pub organization: String,
    pub principal: String,
    pub roles: Vec<String>,
    pub policies: Vec<String>,
}

/// A check's context: top-level keys, looked up verbatim (`request.channel` is one key).
pub type Context = BTreeMap<String, Value>;

/// One question.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    /// A concrete subject: `user:local:alice`, `token:t1`.
    pub subject: &'a str,
    /// Team subjects (`team:local:eng`) the subject acts with, besides the teams the engine
    /// holds as listing it.
    pub teams: &'a [String],
    /// A concrete action (`iam:users:get`), or with an organization `view`, `create`,
    /// `update` or `delete`.
    pub action: &'a str,
    /// A concrete colon resource, or an API path starting with `/`.
    pub resource: &'a str,
    pub tenant: Option<&'a str>,
    pub organization: Option<&'a str>,
    pub context: &'a Context,
}

/// Where a statement comes from.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    /// An IAM v2 policy.
    Iam,
    /// An organization policy of this organization.
    Organization(Arc<str>),
}

/// A statement (or an organization definition), by its policy and its place in it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Match {
    pub policy: Arc<str>,
    pub statement: usize,
    pub source: Source,
    pub effect: Effect,
}

/// The answer to a check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// The statements that decided, in policy and statement order: when allowed, the
    /// matching ALLOWs; when denied, the matching DENYs (none when nothing allowed).
    pub reasons: Vec<Match>,
}

/// The tenants a request is authorized in (Part B §2.8): the tenants of its matching ALLOWs
/// minus those of its matching DENYs, `*` standing for every tenant and an organization
/// definition for every tenant. From [`Engine::tenants`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tenants {
    scope: Scope,
}

/// A set of tenants, or its complement: a `*` ALLOW with named DENYs is every tenant but those.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Scope {
    /// These tenants; sorted, each once.
    Only(Box<[Arc<str>]>),
    /// Every tenant, named or not, but these; sorted, each once.
    AllBut(Box<[Arc<str>]>),
}

impl Tenants {
    /// Whether the request is authorized in `tenant`: what [`Engine::check`] decides for it
    /// with that tenant.
    pub fn permits(&self, tenant: &str) -> bool {
        match &self.scope {
            Scope::Only(listed) => contains(listed, tenant),
            Scope::AllBut(listed) => !contains(listed, tenant),
        }
    }

    /// Whether the request is authorized in some tenant, or in every one when none exists:
    /// what [`Engine::check`] decides for it with no tenant.
    pub fn any(&self) -> bool {
        match &self.scope {
            Scope::Only(listed) => !listed.is_empty(),
            Scope::AllBut(_) => true,
        }
    }

    /// Whether the request is authorized in every tenant, named or not: a `*` ALLOW (or an
    /// organization ALLOW) that no `*` DENY cuts, and no DENY of a named tenant. A list
    /// filtered by [`Tenants::permits`] would then keep everything.
    pub fn all(&self) -> bool {
        matches!(&self.scope, Scope::AllBut(listed) if listed.is_empty())
    }

    /// The tenants it names (in order, each once), when it is authorized in those alone: a
    /// list filtered by [`Tenants::permits`] keeps only objects of these, so it may look them
    /// up by tenant. `None` when it is authorized in every tenant but some (an ALLOW of `*`),
    /// which no list names.
    pub fn named(&self) -> Option<Vec<&str>> {
        match &self.scope {
            Scope::Only(listed) => Some(listed.iter().map(|t| &**t).collect()),
            Scope::AllBut(_) => None,
        }
    }

    /// These tenants alone; `listed` sorted, each once.
    fn only(listed: Vec<Arc<str>>) -> Tenants {
        Tenants { scope: Scope::Only(listed.into()) }
    }

    /// Every tenant but these; `listed` sorted, each once.
    fn all_but(listed: Vec<Arc<str>>) -> Tenants {
        Tenants { scope: Scope::AllBut(listed.into()) }
    }
}

fn contains(sorted: &[Arc<str>], tenant: &str) -> bool {
    sorted.binary_search_by(|t| (**t).cmp(tenant)).is_ok()
}

/// The one criterion a near miss failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Criterion {
    Action,
    Resource,
    Tenant,
    Organization,
    Condition,
}

/// A statement whose member matched and exactly one other criterion did not.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NearMiss {
    pub statement: Match,
    pub failed: Criterion,
}

/// The answer to a check, with every statement that matched and the closest that did not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Explanation {
    pub decision: Decision,
    /// Every matching statement, in policy and statement order.
    pub matches: Vec<Match>,
    /// At most [`MAX_NEAR_MISSES`], in policy and statement order.
    pub near_misses: Vec<NearMiss>,
}

/// How many near misses an explanation lists.
pub const MAX_NEAR_MISSES: usize = 10;
