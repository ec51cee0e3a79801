//! Differential tests: the indexed [`Engine`] against a naive evaluator written here from the
//! rules (lib.rs, A.7, Part B §2.5–§2.8), which scans every statement of every policy and
//! shares none of the engine's matching code.
//!
//! Vocabularies are small so that members, actions, resources, tenants, organizations and
//! conditions collide often: most cases hold matches, denies and near misses. The
//! `generators_reach_every_rule` test keeps that true.
//!
//! Searches are held to the same evaluator: every probed entity it allows is among the
//! candidates, and every candidate is one an ALLOW matches but for its tenants and conditions.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use iamd_engine::grammar::username;
use iamd_engine::{
    Assignment, Condition, Context, Criterion, Decision, Definition, Effect, Engine, Explanation, Feed,
    MAX_NEAR_MISSES, Match, NearMiss, Operator, OrgAction, OrgPolicy, OrgRole, Overlay, Policy, Quantifier, Request,
    Role, Source, Statement, Test, Value,
};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

// ---------------------------------------------------------------------------------------------
// The state: what an engine is fed, kept as plain maps.
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug, Default)]
struct World {
    policies: BTreeMap<String, Policy>,
    roles: BTreeMap<String, Role>,
    org_policies: BTreeMap<String, OrgPolicy>,
    org_roles: BTreeMap<String, OrgRole>,
    assignments: BTreeMap<String, Assignment>,
    /// Each team's members, as `put_team` was last given them.
    teams: BTreeMap<String, Vec<String>>,
}

/// One change to the state.
#[derive(Clone, Debug)]
enum Op {
    PutPolicy(String, Policy),
    RemovePolicy(String),
    PutRole(String, Role),
    RemoveRole(String),
    PutOrgPolicy(String, OrgPolicy),
    RemoveOrgPolicy(String),
    PutOrgRole(String, OrgRole),
    RemoveOrgRole(String),
    PutAssignment(String, Assignment),
    RemoveAssignment(String),
    PutTeam(String, Vec<String>),
    RemoveTeam(String),
}

impl World {
    fn apply(&mut self, op: &Op) {
        match op {
            Op::PutPolicy(id, p) => {
                self.policies.insert(id.clone(), p.clone());
            }
            Op::RemovePolicy(id) => {
                self.policies.remove(id);
            }
            Op::PutRole(id, r) => {
                self.roles.insert(id.clone(), r.clone());
            }
            Op::RemoveRole(id) => {
                self.roles.remove(id);
            }
            Op::PutOrgPolicy(id, p) => {
                self.org_policies.insert(id.clone(), p.clone());
            }
            Op::RemoveOrgPolicy(id) => {
                self.org_policies.remove(id);
            }
            Op::PutOrgRole(id, r) => {
                self.org_roles.insert(id.clone(), r.clone());
            }
            Op::RemoveOrgRole(id) => {
                self.org_roles.remove(id);
            }
            Op::PutAssignment(id, a) => {
                self.assignments.insert(id.clone(), a.clone());
            }
            Op::RemoveAssignment(id) => {
                self.assignments.remove(id);
            }
            Op::PutTeam(team, members) => {
                self.teams.insert(team.clone(), members.clone());
            }
            Op::RemoveTeam(team) => {
                self.teams.remove(team);
            }
        }
    }

    /// An engine built at once from this state; `roles_first` puts roles before the
    /// statements that name them, or after.
    fn engine(&self, roles_first: bool) -> Engine {
        let mut engine = Engine::new();
        let put_roles = |engine: &mut Engine| {
            for (id, role) in &self.roles {
                engine.put_role(id, role);
            }
        };
        if roles_first {
            put_roles(&mut engine);
        }
        for (id, policy) in &self.policies {
            engine.put_policy(id, policy);
        }
        if !roles_first {
            put_roles(&mut engine);
        }
        for (id, policy) in &self.org_policies {
            engine.put_org_policy(id, policy);
        }
        for (id, role) in &self.org_roles {
            engine.put_org_role(id, role);
        }
        for (id, assignment) in &self.assignments {
            engine.put_assignment(id, assignment);
        }
        for (team, members) in &self.teams {
            engine.put_team(team, members);
        }
        engine
    }
}

fn apply_to_engine(engine: &mut impl Feed, op: &Op) {
    match op {
        Op::PutPolicy(id, p) => engine.put_policy(id, p),
        Op::RemovePolicy(id) => engine.remove_policy(id),
        Op::PutRole(id, r) => engine.put_role(id, r),
        Op::RemoveRole(id) => engine.remove_role(id),
        Op::PutOrgPolicy(id, p) => engine.put_org_policy(id, p),
        Op::RemoveOrgPolicy(id) => engine.remove_org_policy(id),
        Op::PutOrgRole(id, r) => engine.put_org_role(id, r),
        Op::RemoveOrgRole(id) => engine.remove_org_role(id),
        Op::PutAssignment(id, a) => engine.put_assignment(id, a),
        Op::RemoveAssignment(id) => engine.remove_assignment(id),
        Op::PutTeam(team, members) => engine.put_team(team, members),
        Op::RemoveTeam(team) => engine.remove_team(team),
    }
}

/// A request that owns what it names.
#[derive(Clone, Debug)]
struct Req {
    subject: &'static str,
    teams: Vec<String>,
    action: &'static str,
    resource: &'static str,
    tenant: Option<&'static str>,
    organization: Option<&'static str>,
    context: Context,
}

impl Req {
    fn request(&self) -> Request<'_> {
        Request {
            subject: self.subject,
            teams: &self.teams,
            action: self.action,
            resource: self.resource,
            tenant: self.tenant,
            organization: self.organization,
            context: &self.context,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The naive evaluator: the rules, read literally, over every statement of every policy.
// ---------------------------------------------------------------------------------------------

const VARIABLE: &str = "${a2:username}";

/// The request subject, its request teams, and the teams that list the subject among their
/// members (exactly; one level).
fn subjects<'a>(world: &'a World, req: &'a Req) -> Vec<&'a str> {
    acting(world, req.subject, &req.teams)
}

/// `subject`, `teams`, and the teams that list `subject` among their members.
fn acting<'a>(world: &'a World, subject: &'a str, teams: &'a [String]) -> Vec<&'a str> {
    let mut out = vec![subject];
    out.extend(teams.iter().map(String::as_str));
    out.extend(world.teams.iter().filter(|(_, members)| members.iter().any(|m| m == subject)).map(|(t, _)| t.as_str()));
    out
}

/// §2.5: `*` every subject; `x:*` every subject starting with `x:`; else exact.
fn member_matches(member: &str, subject: &str) -> bool {
    if member == "*" {
        return true;
    }
    if member.ends_with(":*") {
        let stem = &member[..member.len() - 1];
        return subject.starts_with(stem);
    }
    member == subject
}

fn any_member_matches(members: &[String], subjects: &[&str]) -> bool {
    members.iter().any(|m| subjects.iter().any(|s| member_matches(m, s)))
}

/// §2.6 action patterns against a concrete action.
fn action_matches(pattern: &str, action: &str) -> bool {
    if pattern == "*" || pattern == action {
        return true;
    }
    let a: Vec<&str> = action.split(':').collect();
    let p: Vec<&str> = pattern.split(':').collect();
    if a.len() != 3 {
        return false;
    }
    let (s, t, v) = (a[0], a[1], a[2]);
    match p.len() {
        2 if p[0] == "*" => p[1] == v,
        2 if p[1] == "*" => p[0] == s,
        3 if p[1] == "*" => p[0] == s && p[2] == v,
        3 if p[2] == "*" => p[0] == s && p[1] == t,
        _ => false,
    }
}

/// The actions a statement grants or denies: its own and those of its role, if put.
fn statement_actions<'a>(world: &'a World, statement: &'a Statement) -> Vec<&'a str> {
    let mut out: Vec<&str> = statement.actions.iter().map(String::as_str).collect();
    if let Some(role) = statement.role.as_ref().and_then(|id| world.roles.get(id)) {
        out.extend(role.actions.iter().map(String::as_str));
    }
    out
}

/// §2.6 resource patterns against a concrete resource, for the request subject.
fn resource_matches(pattern: &str, resource: &str, subject: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let pattern = if pattern.contains(VARIABLE) {
        match username(subject) {
            Some(name) => pattern.replace(VARIABLE, name),
            None => return false,
        }
    } else {
        pattern.to_string()
    };
    if pattern.ends_with(":*") {
        let stem = &pattern[..pattern.len() - 1];
        return resource.starts_with(stem) && resource.len() > stem.len();
    }
    pattern == resource
}

fn tenant_applies(tenants: &[String], tenant: Option<&str>) -> bool {
    match tenant {
        Some(t) => tenants.iter().any(|x| x == t || x == "*"),
        None => !tenants.is_empty(),
    }
}

/// The IAM v2 criteria besides the member that a statement fails.
fn iam_failures(world: &World, statement: &Statement, req: &Req) -> Vec<Criterion> {
    let mut failed = Vec::new();
    if !statement_actions(world, statement).iter().any(|p| action_matches(p, req.action)) {
        failed.push(Criterion::Action);
    }
    if !statement.resources.iter().any(|p| resource_matches(p, req.resource, req.subject)) {
        failed.push(Criterion::Resource);
    }
    if !tenant_applies(&statement.tenants, req.tenant) {
        failed.push(Criterion::Tenant);
    }
    if !conditions_let_match(statement.effect, &statement.conditions, &req.context) {
        failed.push(Criterion::Condition);
    }
    failed
}

/// The organization action a check names, if it names one.
fn org_action(action: &str) -> Option<OrgAction> {
    Some(match action {
        "view" => OrgAction::View,
        "create" => OrgAction::Create,
        "update" => OrgAction::Update,
        "delete" => OrgAction::Delete,
        _ => return None,
    })
}

fn org_action_covers(have: OrgAction, want: OrgAction) -> bool {
    have == OrgAction::Any || have == want
}

/// API path patterns: `*` one segment, `**` one or more; `/` has no segments.
fn path_matches(pattern: &str, path: &str) -> bool {
    fn segments(rest: &str) -> Vec<&str> {
        if rest.is_empty() { Vec::new() } else { rest.split('/').collect() }
    }
    fn go(pattern: &[&str], path: &[&str]) -> bool {
        match pattern.split_first() {
            None => path.is_empty(),
            Some((&"**", rest)) => (1..=path.len()).any(|k| go(rest, &path[k..])),
            Some((&"*", rest)) => !path.is_empty() && go(rest, &path[1..]),
            Some((literal, rest)) => path.first() == Some(literal) && go(rest, &path[1..]),
        }
    }
    let (Some(p), Some(r)) = (pattern.strip_prefix('/'), path.strip_prefix('/')) else { return false };
    go(&segments(p), &segments(r))
}

/// `*` any run of characters, the empty one too.
fn like(pattern: &[char], text: &[char]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some(('*', rest)) => (0..=text.len()).any(|k| like(rest, &text[k..])),
        Some((c, rest)) => text.first() == Some(c) && like(rest, &text[1..]),
    }
}

fn read_number(text: &str) -> Option<f64> {
    let n: f64 = text.trim().parse().ok()?;
    n.is_finite().then_some(n)
}

fn read_bool(text: &str) -> Option<bool> {
    match text {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

fn read_block(text: &str) -> Option<(IpAddr, usize)> {
    let (address, prefix) = match text.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (text, None),
    };
    let address: IpAddr = address.parse().ok()?;
    let max = if address.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => max,
        Some(p) if !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()) => p.parse::<usize>().ok()?,
        Some(_) => return None,
    };
    (prefix <= max).then_some((address, prefix))
}

fn octets(address: IpAddr) -> Vec<u8> {
    match address {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// Whether the first `prefix` bits agree, for addresses of one family.
fn in_block(address: IpAddr, block: IpAddr, prefix: usize) -> bool {
    if address.is_ipv4() != block.is_ipv4() {
        return false;
    }
    let (a, b) = (octets(address), octets(block));
    let bit = |bytes: &[u8], i: usize| (bytes[i / 8] >> (7 - i % 8)) & 1;
    (0..prefix).all(|i| bit(&a, i) == bit(&b, i))
}

fn read_date(text: &str) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    chrono::DateTime::parse_from_rfc3339(text).ok()
}

fn text_of(value: &Value) -> Option<&str> {
    match value {
        Value::String(s) => Some(s),
        _ => None,
    }
}

fn number_of(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) if n.is_finite() => Some(*n),
        Value::String(s) => read_number(s),
        _ => None,
    }
}

fn bool_of(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::String(s) => read_bool(s),
        _ => None,
    }
}

/// An operator's plain form, and whether it was its `…IfExists` form.
fn naive_form(operator: Operator) -> (Operator, bool) {
    use Operator::*;
    match operator {
        StringEqualsIfExists => (StringEquals, true),
        StringNotEqualsIfExists => (StringNotEquals, true),
        StringLikeIfExists => (StringLike, true),
        NumericEqualsIfExists => (NumericEquals, true),
        NumericLessThanIfExists => (NumericLessThan, true),
        NumericGreaterThanIfExists => (NumericGreaterThan, true),
        BoolIfExists => (Bool, true),
        IpAddressIfExists => (IpAddress, true),
        DateBeforeIfExists => (DateBefore, true),
        DateAfterIfExists => (DateAfter, true),
        plain => (plain, false),
    }
}

/// Whether a plain operator reads its operand.
fn operand_readable(operator: Operator, want: &str) -> bool {
    match operator {
        Operator::StringEquals | Operator::StringNotEquals | Operator::StringLike => true,
        Operator::NumericEquals | Operator::NumericLessThan | Operator::NumericGreaterThan => {
            read_number(want).is_some()
        }
        Operator::Bool => read_bool(want).is_some(),
        Operator::IpAddress => read_block(want).is_some(),
        Operator::DateBefore | Operator::DateAfter => read_date(want).is_some(),
        other => unreachable!("{other:?} is no plain form"),
    }
}

/// One test: `Some(holds)`, or `None` when it cannot be evaluated. An unreadable operand
/// never holds; a missing key, or a list or an object, holds for `…IfExists` and cannot be
/// evaluated otherwise; a present value is tested by the plain form.
fn test_outcome(test: &Test, context: &Context) -> Option<bool> {
    let (operator, if_exists) = naive_form(test.operator);
    let want = test.value.as_str();
    if !operand_readable(operator, want) {
        return None;
    }
    let have = match context.get(&test.key) {
        None | Some(Value::Composite) => return if_exists.then_some(true),
        Some(have) => have,
    };
    Some(match operator {
        Operator::StringEquals => text_of(have)? == want,
        Operator::StringNotEquals => text_of(have)? != want,
        Operator::StringLike => {
            let (p, t): (Vec<char>, Vec<char>) = (want.chars().collect(), text_of(have)?.chars().collect());
            like(&p, &t)
        }
        Operator::NumericEquals => number_of(have)? == read_number(want)?,
        Operator::NumericLessThan => number_of(have)? < read_number(want)?,
        Operator::NumericGreaterThan => number_of(have)? > read_number(want)?,
        Operator::Bool => bool_of(have)? == read_bool(want)?,
        Operator::IpAddress => {
            let (block, prefix) = read_block(want)?;
            let address: IpAddr = text_of(have)?.parse().ok()?;
            in_block(address, block, prefix)
        }
        Operator::DateBefore => read_date(text_of(have)?)? < read_date(want)?,
        Operator::DateAfter => read_date(text_of(have)?)? > read_date(want)?,
        other => unreachable!("{other:?} is no plain form"),
    })
}

/// A definition's conditions: `Some(all hold)`, or `None` when any test is unevaluable.
fn conditions_outcome(conditions: &[Condition], context: &Context) -> Option<bool> {
    let mut all = true;
    for condition in conditions {
        let outcomes: Vec<Option<bool>> = condition.tests.iter().map(|t| test_outcome(t, context)).collect();
        if outcomes.iter().any(Option::is_none) {
            return None;
        }
        let holds = match condition.quantifier {
            Quantifier::All => outcomes.iter().all(|o| *o == Some(true)),
            Quantifier::Any => outcomes.contains(&Some(true)),
        };
        all = all && holds;
    }
    // Every condition was read: an unevaluable test in a later one still counts.
    Some(all)
}

/// Fail closed: an unevaluable ALLOW does not match, an unevaluable DENY does.
fn conditions_let_match(effect: Effect, conditions: &[Condition], context: &Context) -> bool {
    conditions_outcome(conditions, context).unwrap_or(effect == Effect::Deny)
}

/// The organization criteria a definition of organization `org` fails.
fn org_failures(definition: &Definition, org: &str, req: &Req) -> Vec<Criterion> {
    let mut failed = Vec::new();
    if req.organization != Some(org) {
        failed.push(Criterion::Organization);
    }
    let covered = org_action(req.action).is_some_and(|a| definition.actions.iter().any(|d| org_action_covers(*d, a)));
    if !covered {
        failed.push(Criterion::Action);
    }
    if !req.resource.starts_with('/') || !definition.resources.iter().any(|p| path_matches(p, req.resource)) {
        failed.push(Criterion::Resource);
    }
    if !conditions_let_match(definition.effect, &definition.conditions, &req.context) {
        failed.push(Criterion::Condition);
    }
    failed
}

/// The organization policies an assignment holds: its own and its roles', those that exist
/// in its organization.
fn assignment_policies<'w>(world: &'w World, assignment: &'w Assignment) -> Vec<&'w str> {
    let mut ids: Vec<&str> = assignment.policies.iter().map(String::as_str).collect();
    for role in &assignment.roles {
        if let Some(role) = world.org_roles.get(role)
            && role.organization == assignment.organization
        {
            ids.extend(role.policies.iter().map(String::as_str));
        }
    }
    ids.retain(|id| world.org_policies.get(*id).is_some_and(|p| p.organization == assignment.organization));
    ids
}

/// The organization policies the subjects reach through assignments in `organization`, or
/// in any organization.
fn reached<'w>(world: &'w World, subjects: &[&str], organization: Option<&str>) -> BTreeSet<&'w str> {
    world
        .assignments
        .values()
        .filter(|a| organization.is_none_or(|o| a.organization == o))
        .filter(|a| subjects.iter().any(|s| member_matches(&a.principal, s)))
        .flat_map(|a| assignment_policies(world, a))
        .collect()
}

fn iam_match(id: &str, index: usize, effect: Effect) -> Match {
    Match { policy: Arc::from(id), statement: index, source: Source::Iam, effect }
}

fn org_match(id: &str, index: usize, org: &str, effect: Effect) -> Match {
    Match { policy: Arc::from(id), statement: index, source: Source::Organization(Arc::from(org)), effect }
}

/// A.7 by a scan of everything.
fn naive_check(world: &World, req: &Req) -> Decision {
    let subjects = subjects(world, req);
    // Each matching applying statement, with the tenants it speaks for.
    let mut allows: Vec<(Match, Vec<String>)> = Vec::new();
    let mut denies: Vec<(Match, Vec<String>)> = Vec::new();
    let mut record = |at: Match, tenants: Vec<String>| match at.effect {
        Effect::Allow => allows.push((at, tenants)),
        Effect::Deny => denies.push((at, tenants)),
    };
    for (id, policy) in &world.policies {
        if !any_member_matches(&policy.members, &subjects) {
            continue;
        }
        for (index, statement) in policy.statements.iter().enumerate() {
            if iam_failures(world, statement, req).is_empty() {
                record(iam_match(id, index, statement.effect), statement.tenants.clone());
            }
        }
    }
    if let (Some(org), Some(action)) = (req.organization, org_action(req.action))
        && req.resource.starts_with('/')
    {
        for id in reached(world, &subjects, Some(org)) {
            let policy = &world.org_policies[id];
            for (index, definition) in policy.definitions.iter().enumerate() {
                let matches = definition.actions.iter().any(|a| org_action_covers(*a, action))
                    && definition.resources.iter().any(|p| path_matches(p, req.resource))
                    && conditions_let_match(definition.effect, &definition.conditions, &req.context);
                if matches {
                    record(org_match(id, index, &policy.organization, definition.effect), vec!["*".to_string()]);
                }
            }
        }
    }
    let allowed = match req.tenant {
        Some(_) => !allows.is_empty() && denies.is_empty(),
        None => {
            let a: BTreeSet<&str> = allows.iter().flat_map(|(_, t)| t.iter().map(String::as_str)).collect();
            let d: BTreeSet<&str> = denies.iter().flat_map(|(_, t)| t.iter().map(String::as_str)).collect();
            !d.contains("*") && (a.contains("*") || a.iter().any(|t| *t != "*" && !d.contains(t)))
        }
    };
    let mut reasons: Vec<Match> = if allowed { allows } else { denies }
        .into_iter()
        .map(|(at, _)| at)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    reasons.dedup();
    Decision { allowed, reasons }
}

fn naive_explain(world: &World, req: &Req) -> Explanation {
    let decision = naive_check(world, req);
    let subjects = subjects(world, req);
    let mut matches = BTreeSet::new();
    let mut near = BTreeSet::new();
    let mut classify = |at: Match, failed: Vec<Criterion>| match failed.as_slice() {
        [] => {
            matches.insert(at);
        }
        [one] => {
            near.insert(NearMiss { statement: at, failed: *one });
        }
        _ => {}
    };
    for (id, policy) in &world.policies {
        if !any_member_matches(&policy.members, &subjects) {
            continue;
        }
        for (index, statement) in policy.statements.iter().enumerate() {
            classify(iam_match(id, index, statement.effect), iam_failures(world, statement, req));
        }
    }
    for id in reached(world, &subjects, None) {
        let policy = &world.org_policies[id];
        for (index, definition) in policy.definitions.iter().enumerate() {
            let at = org_match(id, index, &policy.organization, definition.effect);
            classify(at, org_failures(definition, &policy.organization, req));
        }
    }
    Explanation {
        decision,
        matches: matches.into_iter().collect(),
        near_misses: near.into_iter().take(MAX_NEAR_MISSES).collect(),
    }
}

/// Whether an IAM v2 ALLOW matches but for its tenants and conditions (no DENY taking it
/// away): what every search candidate must come from.
fn an_allow_matches(world: &World, subject: &str, teams: &[String], action: &str, resource: &str) -> bool {
    let subjects = acting(world, subject, teams);
    world.policies.values().filter(|policy| any_member_matches(&policy.members, &subjects)).any(|policy| {
        policy.statements.iter().any(|statement| {
            statement.effect == Effect::Allow
                && statement_actions(world, statement).iter().any(|p| action_matches(p, action))
                && statement.resources.iter().any(|p| resource_matches(p, resource, subject))
        })
    })
}

// ---------------------------------------------------------------------------------------------
// Vocabularies and generators.
// ---------------------------------------------------------------------------------------------

/// What generated states and checks are made of. A name listed twice is drawn twice as often.
struct Vocab {
    subjects: &'static [&'static str],
    teams: &'static [&'static str],
    /// What teams list as members: subjects, a team, and wildcard-looking ones that are not.
    team_members: &'static [&'static str],
    /// IAM v2 policy members.
    members: &'static [&'static str],
    /// Assignment principals.
    principals: &'static [&'static str],
    /// Actions checks name, IAM v2's and the organization surface's.
    actions: &'static [&'static str],
    org_actions: &'static [&'static str],
    action_patterns: &'static [&'static str],
    /// Colon resources and API paths checks name.
    resources: &'static [&'static str],
    paths: &'static [&'static str],
    resource_patterns: &'static [&'static str],
    path_patterns: &'static [&'static str],
    tenants: &'static [&'static str],
    request_tenants: &'static [&'static str],
    orgs: &'static [&'static str],
    iam_ids: &'static [&'static str],
    policies: std::ops::RangeInclusive<usize>,
    max_statements: usize,
    org_ids: &'static [&'static str],
    /// Ids assignments and organization roles name: ones that may exist, and one that never
    /// does.
    org_refs: &'static [&'static str],
    max_org_policies: usize,
}

/// Breadth: every shape of member, action, resource and path.
static WIDE: Vocab = Vocab {
    subjects: &[
        "user:local:alice",
        "user:local:bob",
        "user:ldap:alice",
        "token:t1",
        "tls:service:svc:cn1",
        "team:local:eng",
    ],
    teams: &["team:local:eng", "team:local:ops", "team:ldap:eng"],
    team_members: &[
        "user:local:alice",
        "user:local:alice",
        "user:local:bob",
        "user:ldap:alice",
        "token:t1",
        "team:local:eng",
        "user:*",
        "user:local:*",
    ],
    members: &[
        "*",
        "*",
        "user:*",
        "user:*",
        "user:local:*",
        "user:ldap:*",
        "team:*",
        "team:local:*",
        "token:*",
        "tls:*",
        "tls:service:svc:*",
        "user:local:alice",
        "user:local:bob",
        "user:ldap:alice",
        "team:local:eng",
        "team:local:ops",
        "team:ldap:eng",
        "token:t1",
        "tls:service:svc:cn1",
    ],
    principals: &[
        "*",
        "*",
        "user:*",
        "user:*",
        "user:local:*",
        "team:*",
        "team:local:*",
        "token:*",
        "user:local:alice",
        "user:ldap:alice",
        "team:local:eng",
        "team:ldap:eng",
        "tls:service:svc:cn1",
    ],
    // `myapp:Doc:v1.read` as OpenID AuthZEN names actions: upper case, digits and `.`.
    actions: &[
        "iam:users:get",
        "iam:users:list",
        "iam:policies:get",
        "infra:nodes:get",
        "infra:nodes:delete",
        "myapp:Doc:v1.read",
    ],
    org_actions: &["view", "create", "update", "delete"],
    action_patterns: &[
        "*",
        "*",
        "*",
        "*:get",
        "*:delete",
        "iam:*",
        "infra:*",
        "iam:*:get",
        "iam:*:list",
        "infra:*:delete",
        "iam:users:*",
        "iam:policies:*",
        "infra:nodes:*",
        "iam:users:get",
        "iam:users:list",
        "iam:policies:get",
        "infra:nodes:get",
        "infra:nodes:delete",
        "view",
        "myapp:Doc:v1.read",
        "myapp:*:v1.read",
        "myapp:Doc:*",
        "*:v1.read",
    ],
    resources: &[
        "iam",
        // No concrete resource (the service refuses it), but `iam:*` must not match it.
        "iam:",
        "iam:users",
        "iam:users:alice",
        "iam:users:bob",
        "iam:users:alice:keys",
        // What `${a2:username}` would wrongly become for team:local:eng or token:t1.
        "iam:users:eng",
        "iam:users:t1",
        "iam:policies:p1",
        "infra:nodes:n1",
        "infra:nodes:n1:disk",
    ],
    paths: &[
        "/",
        "/a",
        "/a/b",
        "/a/b/c",
        "/a/x/c",
        "/a/b/x/c",
        "/workspaces/w1/channels",
        "/workspaces/w1/channels/c1",
        "/workspaces/w1/channels/c1/messages",
    ],
    resource_patterns: &[
        "*",
        "*",
        "*",
        "iam:*",
        "iam:users:*",
        "infra:*",
        "infra:nodes:*",
        "iam",
        "iam:users",
        "iam:users:alice",
        "iam:users:bob",
        "infra:nodes:n1",
        "iam:users:${a2:username}",
        "iam:users:${a2:username}:*",
        "/a",
    ],
    path_patterns: &[
        "/",
        "/*",
        "/**",
        "/**",
        "/a",
        "/a/*",
        "/a/**",
        "/a/*/c",
        "/a/**/c",
        "/*/b/**",
        "/**/c",
        "/workspaces/*/channels",
        "/workspaces/*/channels/**",
        "a/**",
    ],
    tenants: &["t1", "t2", "*"],
    request_tenants: &["t1", "t2", "t3"],
    orgs: &["o1", "o1", "o1", "o1", "o1", "o1", "o1", "o1", "o2", "o3"],
    iam_ids: &["p0", "p1", "p2", "p3", "p4", "p5", "p6", "p7"],
    policies: 0..=7,
    max_statements: 3,
    org_ids: &["p0", "p1", "p2"],
    org_refs: &["p0", "p0", "p1", "p1", "p2", "p2", "p9"],
    max_org_policies: 3,
};

/// Density: few names, many policies, so that most statements match or nearly match and the
/// near misses often reach their limit.
static NARROW: Vocab = Vocab {
    subjects: &["user:local:alice", "user:local:alice", "user:local:bob", "token:t1"],
    teams: &["team:local:eng"],
    team_members: &["user:local:alice", "user:local:alice", "user:local:bob", "token:t1", "user:*"],
    members: &["*", "user:*", "user:local:*", "user:local:alice", "user:local:bob", "team:local:eng"],
    principals: &["*", "*", "user:*", "user:local:alice", "team:local:eng", "token:t1"],
    actions: &["iam:users:get", "iam:users:list"],
    org_actions: &["view", "update"],
    action_patterns: &["*", "iam:*", "*:get", "iam:users:get", "iam:users:list", "view"],
    resources: &["iam:users:alice", "iam:users"],
    paths: &["/a/b", "/a"],
    resource_patterns: &["*", "iam:users:alice", "iam:users:${a2:username}", "iam:*", "iam:users", "/a/b"],
    path_patterns: &["/a/*", "/a/**", "/a", "/*/b", "/**"],
    tenants: &["t1", "t2", "*"],
    request_tenants: &["t1", "t2"],
    orgs: &["o1", "o1", "o1", "o1", "o1", "o2"],
    iam_ids: &["p00", "p01", "p02", "p03", "p04", "p05", "p06", "p07", "p08", "p09", "p10", "p11"],
    policies: 3..=12,
    max_statements: 3,
    org_ids: &["p0", "p1"],
    org_refs: &["p0", "p0", "p1", "p1", "p9"],
    max_org_policies: 2,
};

const ROLE_IDS: &[&str] = &["r0", "r1", "r2"];
const ROLE_REFS: &[&str] = &["r0", "r1", "r2", "r3"];
const ASSIGNMENT_IDS: &[&str] = &["a0", "a1", "a2", "a3"];
/// Keys contexts hold, `k1` most often.
const CONTEXT_KEYS: &[&str] = &["k1", "k1", "k2", "k3"];
/// Keys tests name: `k4` is in no context.
const TEST_KEYS: &[&str] = &["k1", "k1", "k1", "k2", "k2", "k3", ABSENT_KEY];
const ABSENT_KEY: &str = "k4";
// Instants apart by less than a microsecond (`…00.0000001Z` against `…00Z`) are among them:
// the rules compare instants as RFC 3339 writes them, to the nanosecond.
const CONTEXT_STRINGS: &[&str] = &[
    "sms",
    "email",
    "",
    "smsx",
    "10",
    " 10 ",
    "10.0",
    "5",
    "1e1",
    "ten",
    "NaN",
    "inf",
    "true",
    "false",
    "yes",
    "10.1.2.3",
    "10.1.2.2",
    "11.0.0.1",
    "10.0.0.0/8",
    "::1",
    "2001:db8::1",
    "::ffff:10.1.2.3",
    "2025-12-31T23:59:59Z",
    "2026-01-01T00:00:00Z",
    "2026-01-01T01:00:00+01:00",
    "2025-12-31T23:59:59.9999999Z",
    "2026-01-01T00:00:00.0000001Z",
    "2026-01-01T00:00:00.5Z",
    "tomorrow",
];
const STRING_OPERANDS: &[&str] = &["sms", "email", "", "s*", "sms*", "*sms*", "**", "*", "*s", "sm*x", "1*", "10"];
const NUMBER_OPERANDS: &[&str] = &["10", "10.5", " 5 ", "0", "-1", "1e1", "ten", "inf", ""];
const BOOL_OPERANDS: &[&str] = &["true", "false", "yes"];
const IP_OPERANDS: &[&str] = &[
    "10.0.0.0/8",
    "10.1.2.3",
    "10.1.2.3/32",
    "10.1.2.2/31",
    "0.0.0.0/0",
    "10.9.9.9/8",
    "11.0.0.0/7",
    "2001:db8::/32",
    "::/0",
    "10.0.0.0/33",
    "10.0.0.0/",
    "x",
];
const DATE_OPERANDS: &[&str] = &[
    "2026-01-01T00:00:00Z",
    "2025-12-31T23:59:59.9999999Z",
    "2026-01-01T00:00:00.0000001Z",
    "2026-01-01T01:00:00+01:00",
    "2026-01-01T00:00:00.5Z",
    "yesterday",
];

fn s(items: &'static [&'static str]) -> impl Strategy<Value = String> {
    select(items).prop_map(String::from)
}

/// Distinct ids and their values, the last of a repeated id winning (as puts do).
fn map_of<V: Strategy>(
    ids: &'static [&'static str],
    value: V,
    entries: std::ops::RangeInclusive<usize>,
) -> impl Strategy<Value = BTreeMap<String, V::Value>> {
    vec((s(ids), value), entries).prop_map(|pairs| pairs.into_iter().collect())
}

// `prop_oneof!` costs microseconds a draw in a debug build; these helpers cost far less.

fn effect() -> impl Strategy<Value = Effect> {
    select(&[Effect::Allow, Effect::Allow, Effect::Allow, Effect::Deny][..])
}

/// `value`, or with probability `p` its default (an empty list, `None`).
fn sometimes_default<S: Strategy>(p: f64, value: S) -> impl Strategy<Value = S::Value>
where
    S::Value: Default,
{
    (proptest::bool::weighted(p), value).prop_map(|(default, value)| if default { Default::default() } else { value })
}

/// `Some(value)` with probability `p`.
fn sometimes<S: Strategy>(p: f64, value: S) -> impl Strategy<Value = Option<S::Value>> {
    (proptest::bool::weighted(p), value).prop_map(|(some, value)| some.then_some(value))
}

fn statement(v: &'static Vocab) -> impl Strategy<Value = Statement> {
    (
        effect(),
        vec(s(v.action_patterns), 0..3),
        sometimes(0.3, s(ROLE_REFS)),
        sometimes_default(0.08, vec(s(v.resource_patterns), 1..3)),
        sometimes_default(0.1, vec(s(v.tenants), 1..3)),
        // Two statements in five hold conditions: more would leave too few near misses at the limit.
        prop_oneof![3 => Just(Vec::new()), 2 => vec(statement_condition(), 1..3)],
    )
        .prop_map(|(effect, actions, role, resources, tenants, conditions)| Statement {
            effect,
            actions,
            role,
            resources,
            tenants,
            conditions,
        })
}

fn policy(v: &'static Vocab) -> impl Strategy<Value = Policy> {
    (sometimes_default(0.06, vec(s(v.members), 1..3)), vec(statement(v), 1..=v.max_statements))
        .prop_map(|(members, statements)| Policy { members, statements })
}

fn role(v: &'static Vocab) -> impl Strategy<Value = Role> {
    vec(s(v.action_patterns), 0..3).prop_map(|actions| Role { actions })
}

fn operator() -> impl Strategy<Value = Operator> {
    select(Operator::ALL)
}

fn operands(operator: Operator) -> &'static [&'static str] {
    match naive_form(operator).0 {
        Operator::StringEquals | Operator::StringNotEquals | Operator::StringLike => STRING_OPERANDS,
        Operator::NumericEquals | Operator::NumericLessThan | Operator::NumericGreaterThan => NUMBER_OPERANDS,
        Operator::Bool => BOOL_OPERANDS,
        Operator::IpAddress => IP_OPERANDS,
        Operator::DateBefore | Operator::DateAfter => DATE_OPERANDS,
        other => unreachable!("{other:?} is no plain form"),
    }
}

fn test_strategy() -> impl Strategy<Value = Test> {
    (operator(), select(TEST_KEYS), any::<prop::sample::Index>(), proptest::bool::weighted(0.05)).prop_map(
        |(operator, key, index, foreign)| {
            // Mostly a value of the operator's own kind; now and then any string at all.
            let value = if foreign { index.get(CONTEXT_STRINGS) } else { index.get(operands(operator)) };
            Test { operator, key: key.into(), value: value.to_string() }
        },
    )
}

fn condition() -> impl Strategy<Value = Condition> {
    (select(&[Quantifier::All, Quantifier::Any][..]), sometimes_default(0.1, vec(test_strategy(), 1..3)))
        .prop_map(|(quantifier, tests)| Condition { quantifier, tests })
}

/// An IAM v2 statement's condition: as a definition's, or (three times in four) one `…IfExists`
/// test of the key no context holds, which holds; so that conditioned ALLOWs still grant often.
fn statement_condition() -> impl Strategy<Value = Condition> {
    let if_exists: Vec<Operator> = Operator::ALL.iter().copied().filter(|o| naive_form(*o).1).collect();
    let lenient = (select(if_exists), any::<prop::sample::Index>()).prop_map(|(operator, index)| {
        // An operand no validation would store never holds, even where the key is missing.
        let plain = naive_form(operator).0;
        let readable: Vec<&str> = operands(plain).iter().copied().filter(|o| operand_readable(plain, o)).collect();
        let test = Test { operator, key: ABSENT_KEY.into(), value: index.get(&readable).to_string() };
        Condition { quantifier: Quantifier::All, tests: vec![test] }
    });
    prop_oneof![3 => lenient, 1 => condition()]
}

fn org_action_strategy() -> impl Strategy<Value = OrgAction> {
    select(
        &[OrgAction::Any, OrgAction::Any, OrgAction::View, OrgAction::Create, OrgAction::Update, OrgAction::Delete][..],
    )
}

fn definition(v: &'static Vocab) -> impl Strategy<Value = Definition> {
    (
        effect(),
        sometimes_default(0.08, vec(org_action_strategy(), 1..3)),
        sometimes_default(0.08, vec(s(v.path_patterns), 1..3)),
        sometimes_default(0.6, vec(condition(), 1..3)),
    )
        .prop_map(|(effect, actions, resources, conditions)| Definition { effect, actions, resources, conditions })
}

fn org_policy(v: &'static Vocab) -> impl Strategy<Value = OrgPolicy> {
    (s(v.orgs), vec(definition(v), 1..4))
        .prop_map(|(organization, definitions)| OrgPolicy { organization, definitions })
}

fn org_role(v: &'static Vocab) -> impl Strategy<Value = OrgRole> {
    (s(v.orgs), vec(s(v.org_refs), 0..3)).prop_map(|(organization, policies)| OrgRole { organization, policies })
}

fn assignment(v: &'static Vocab) -> impl Strategy<Value = Assignment> {
    (s(v.orgs), s(v.principals), vec(s(ROLE_REFS), 0..3), vec(s(v.org_refs), 1..3))
        .prop_map(|(organization, principal, roles, policies)| Assignment { organization, principal, roles, policies })
}

fn world(v: &'static Vocab) -> impl Strategy<Value = World> {
    (
        map_of(v.iam_ids, policy(v), v.policies.clone()),
        map_of(ROLE_IDS, role(v), 0..=3),
        sometimes_default(0.1, map_of(v.org_ids, org_policy(v), 1..=v.max_org_policies)),
        map_of(ROLE_IDS, org_role(v), 0..=2),
        sometimes_default(0.1, map_of(ASSIGNMENT_IDS, assignment(v), 1..=4)),
        map_of(v.teams, vec(s(v.team_members), 0..4), 0..=3),
    )
        .prop_map(|(policies, roles, org_policies, org_roles, assignments, teams)| World {
            policies,
            roles,
            org_policies,
            org_roles,
            assignments,
            teams,
        })
}

fn value() -> impl Strategy<Value = Value> {
    // Strings most often: every operator reads one.
    const KINDS: &[u8] = &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 2, 2, 3, 4];
    (
        select(KINDS),
        select(CONTEXT_STRINGS),
        select(&[10.0, 5.0, 10.5, -1.0, 0.0, f64::NAN, f64::INFINITY][..]),
        any::<bool>(),
    )
        .prop_map(|(kind, text, number, boolean)| match kind {
            0 => Value::String(text.into()),
            1 => Value::Number(number),
            2 => Value::Bool(boolean),
            3 => Value::Null,
            _ => Value::Composite,
        })
}

fn context() -> impl Strategy<Value = Context> {
    map_of(CONTEXT_KEYS, value(), 0..=4)
}

fn request(v: &'static Vocab) -> impl Strategy<Value = Req> {
    let tenant = sometimes(0.75, select(v.request_tenants));
    let organization = sometimes(0.8, select(v.orgs));
    // Most checks look like one surface's, some mix the two.
    let target = (
        select(&[0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 3][..]),
        select(v.actions),
        select(v.org_actions),
        select(v.resources),
        select(v.paths),
    )
        .prop_map(|(shape, action, org_action, resource, path)| match shape {
            0 => (action, resource),
            1 => (org_action, path),
            2 => (org_action, resource),
            _ => (action, path),
        });
    (select(v.subjects), vec(s(v.teams), 0..2), target, tenant, organization, context()).prop_map(
        |(subject, teams, (action, resource), tenant, organization, context)| Req {
            subject,
            teams,
            action,
            resource,
            tenant,
            organization,
            context,
        },
    )
}

fn op(v: &'static Vocab) -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (s(v.iam_ids), policy(v)).prop_map(|(id, p)| Op::PutPolicy(id, p)),
        2 => s(v.iam_ids).prop_map(Op::RemovePolicy),
        2 => (s(ROLE_IDS), role(v)).prop_map(|(id, r)| Op::PutRole(id, r)),
        1 => s(ROLE_IDS).prop_map(Op::RemoveRole),
        3 => (s(v.org_ids), org_policy(v)).prop_map(|(id, p)| Op::PutOrgPolicy(id, p)),
        1 => s(v.org_ids).prop_map(Op::RemoveOrgPolicy),
        2 => (s(ROLE_IDS), org_role(v)).prop_map(|(id, r)| Op::PutOrgRole(id, r)),
        1 => s(ROLE_IDS).prop_map(Op::RemoveOrgRole),
        3 => (s(ASSIGNMENT_IDS), assignment(v)).prop_map(|(id, a)| Op::PutAssignment(id, a)),
        1 => s(ASSIGNMENT_IDS).prop_map(Op::RemoveAssignment),
        2 => team_op(v),
    ]
}

/// A team's put or remove; member lists are short and drawn from few names, so that a put
/// usually keeps some members, adds some and drops some.
fn team_op(v: &'static Vocab) -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (s(v.teams), vec(s(v.team_members), 0..5)).prop_map(|(team, members)| Op::PutTeam(team, members)),
        1 => s(v.teams).prop_map(Op::RemoveTeam),
    ]
}

/// A state and checks of it, from either vocabulary.
fn scenario() -> impl Strategy<Value = (World, Vec<Req>)> {
    prop_oneof![(world(&WIDE), vec(request(&WIDE), 1..5)), (world(&NARROW), vec(request(&NARROW), 1..5)),]
}

// ---------------------------------------------------------------------------------------------
// Comparisons.
// ---------------------------------------------------------------------------------------------

fn config(cases: u32) -> Config {
    Config {
        cases,
        // No regression files in the source tree: a failure prints its minimal case.
        failure_persistence: None,
        // ChaCha is most of a case's time in a debug build; this needs no cryptography.
        rng_algorithm: RngAlgorithm::XorShift,
        ..Config::default()
    }
}

/// The engine's `check` and `explain` against the naive evaluator's, and its `tenants`
/// against its own `check`.
fn agree(engine: &Engine, world: &World, req: &Req) -> Result<(), TestCaseError> {
    let want = naive_explain(world, req);
    let request = req.request();
    let decision = engine.check(&request);
    prop_assert_eq!(&decision, &want.decision, "check() for {:#?}", req);
    let explanation = engine.explain(&request);
    prop_assert_eq!(&explanation.decision, &want.decision, "explain().decision for {:#?}", req);
    prop_assert_eq!(&explanation.matches, &want.matches, "explain().matches for {:#?}", req);
    prop_assert_eq!(&explanation.near_misses, &want.near_misses, "explain().near_misses for {:#?}", req);
    tenants_agree(engine, req)
}

/// Every tenant a generated statement or check names (`*` too, which a client may send), and
/// one that none does.
const PROBED_TENANTS: &[&str] = &["t1", "t2", "t3", "*", UNUSED_TENANT];
const UNUSED_TENANT: &str = "t-unused";

/// `tenants()` answers as `check()` does in each probed tenant and in none, whatever the
/// request's own tenant; and `all()` exactly when every probed tenant is permitted (the
/// probes name every tenant a statement can, and one none does).
fn tenants_agree(engine: &Engine, req: &Req) -> Result<(), TestCaseError> {
    let tenants = engine.tenants(&req.request());
    let in_tenant = |tenant| Req { tenant, ..req.clone() };
    prop_assert_eq!(&engine.tenants(&in_tenant(None).request()), &tenants, "tenants() reads the tenant: {:#?}", req);
    let any = engine.check(&in_tenant(None).request()).allowed;
    prop_assert_eq!(tenants.any(), any, "any() against check() with no tenant: {:?} for {:#?}", tenants, req);
    for &tenant in PROBED_TENANTS {
        let allowed = engine.check(&in_tenant(Some(tenant)).request()).allowed;
        prop_assert_eq!(tenants.permits(tenant), allowed, "permits({}): {:?} for {:#?}", tenant, tenants, req);
    }
    let every = PROBED_TENANTS.iter().all(|t| tenants.permits(t));
    prop_assert_eq!(tenants.all(), every, "all(): {:?} for {:#?}", tenants, req);
    prop_assert!(!tenants.all() || tenants.any(), "all() without any(): {:?}", tenants);
    // A list exactly when a tenant no statement names is refused, and then the list is what
    // is permitted.
    match tenants.named() {
        Some(named) => {
            let permitted: Vec<&str> = PROBED_TENANTS.iter().copied().filter(|t| tenants.permits(t)).collect();
            let mut listed = named.clone();
            listed.sort_unstable();
            listed.dedup();
            prop_assert_eq!(&listed, &named, "named() is sorted, each once: {:?}", tenants);
            prop_assert!(named.iter().all(|t| permitted.contains(t)), "named() not permitted: {:?}", tenants);
            prop_assert!(permitted.iter().all(|t| named.contains(t)), "permitted, not named(): {:?}", tenants);
            prop_assert_eq!(named.is_empty(), !tenants.any(), "named() and any(): {:?}", tenants);
        }
        None => prop_assert!(tenants.permits(UNUSED_TENANT), "no named() but refuses the rest: {:?}", tenants),
    }
    Ok(())
}

/// How many cases each property runs: 240,000 in all.
const MAIN_CASES: u32 = 100_000;
const INCREMENTAL_CASES: u32 = 20_000;
const TEAM_CASES: u32 = 10_000;
const CONDITION_CASES: u32 = 100_000;
const SEARCH_CASES: u32 = 10_000;
const OVERLAY_CASES: u32 = 20_000;

proptest! {
    #![proptest_config(config(MAIN_CASES))]

    /// A state built at once, then several checks of it.
    #[test]
    fn engine_decides_as_the_naive_evaluator((world, requests) in scenario(), roles_first in any::<bool>()) {
        let engine = world.engine(roles_first);
        for req in &requests {
            agree(&engine, &world, req)?;
        }
    }
}

/// A sequence of changes, a check after each, and checks of the final state.
fn history() -> impl Strategy<Value = (Vec<Op>, Vec<Req>, Vec<Req>)> {
    prop_oneof![
        (vec(op(&WIDE), 1..20), vec(request(&WIDE), 20), vec(request(&WIDE), 1..4)),
        (vec(op(&NARROW), 1..20), vec(request(&NARROW), 20), vec(request(&NARROW), 1..4)),
    ]
}

proptest! {
    #![proptest_config(config(INCREMENTAL_CASES))]

    /// A state built by a random sequence of puts, replaces and removes decides as the naive
    /// evaluator at every step, and at the end as an engine built at once from the final state.
    #[test]
    fn incremental_engine_decides_as_one_built_at_once((ops, probes, finals) in history()) {
        let mut world = World::default();
        let mut engine = Engine::new();
        for (op, probe) in ops.iter().zip(&probes) {
            world.apply(op);
            apply_to_engine(&mut engine, op);
            agree(&engine, &world, probe)?;
        }
        let fresh = world.engine(true);
        prop_assert_eq!(engine.len(), fresh.len());
        for req in &finals {
            same_as_fresh(&engine, &fresh, &world, req)?;
        }
    }
}

/// An engine changed step by step against one built at once from the final state, searches
/// too, and both against the naive evaluator.
fn same_as_fresh(engine: &Engine, fresh: &Engine, world: &World, req: &Req) -> Result<(), TestCaseError> {
    let request = req.request();
    prop_assert_eq!(engine.check(&request), fresh.check(&request), "incremental vs at once: {:#?}", req);
    prop_assert_eq!(engine.explain(&request), fresh.explain(&request), "incremental vs at once: {:#?}", req);
    prop_assert_eq!(engine.tenants(&request), fresh.tenants(&request), "incremental vs at once: {:#?}", req);
    let (subject, teams, action, resource) = (req.subject, &req.teams, req.action, req.resource);
    prop_assert_eq!(
        engine.subject_candidates(action, resource),
        fresh.subject_candidates(action, resource),
        "subject search, incremental vs at once: {:#?}",
        req
    );
    prop_assert_eq!(
        engine.resource_candidates(subject, teams, action),
        fresh.resource_candidates(subject, teams, action),
        "resource search, incremental vs at once: {:#?}",
        req
    );
    prop_assert_eq!(
        engine.action_candidates(subject, teams, resource),
        fresh.action_candidates(subject, teams, resource),
        "action search, incremental vs at once: {:#?}",
        req
    );
    // Searches of an engine built at once are held to the naive evaluator by their own property.
    agree(engine, world, req)?;
    agree(fresh, world, req)
}

/// A state, changes to lay over it, and checks of the result.
fn overlaid() -> impl Strategy<Value = (World, Vec<Op>, Vec<Req>)> {
    prop_oneof![
        (world(&WIDE), vec(op(&WIDE), 1..12), vec(request(&WIDE), 1..6)),
        (world(&NARROW), vec(op(&NARROW), 1..12), vec(request(&NARROW), 1..6)),
    ]
}

proptest! {
    #![proptest_config(config(OVERLAY_CASES))]

    /// Changes laid over an engine decide, and explain, as an engine built at once from the
    /// state they leave, and as the naive evaluator; the engine beneath is left as it was.
    #[test]
    fn an_overlay_decides_as_the_state_it_proposes((start, ops, requests) in overlaid(), roles_first in any::<bool>()) {
        let base = start.engine(roles_first);
        let mut overlay = Overlay::new(&base);
        let mut world = start.clone();
        for op in &ops {
            world.apply(op);
            apply_to_engine(&mut overlay, op);
        }
        let fresh = world.engine(!roles_first);
        for req in &requests {
            let request = req.request();
            prop_assert_eq!(overlay.check(&request), fresh.check(&request), "overlay vs at once: {:#?}", req);
            prop_assert_eq!(overlay.explain(&request), fresh.explain(&request), "overlay vs at once: {:#?}", req);
            let want = naive_explain(&world, req);
            prop_assert_eq!(&overlay.check(&request), &want.decision, "overlay vs naive: {:#?}", req);
            agree(&base, &start, req)?;
        }
    }
}

/// A state, then a run of team puts and removes over few teams and members, then checks.
fn team_history() -> impl Strategy<Value = (World, Vec<Op>, Vec<Req>)> {
    prop_oneof![
        (world(&WIDE), vec(team_op(&WIDE), 1..30), vec(request(&WIDE), 1..6)),
        (world(&NARROW), vec(team_op(&NARROW), 1..30), vec(request(&NARROW), 1..6)),
    ]
}

proptest! {
    #![proptest_config(config(TEAM_CASES))]

    /// Team memberships changed one team at a time decide as the naive evaluator given the
    /// final memberships, and as an engine built at once from them.
    #[test]
    fn team_memberships_changed_incrementally_decide_as_the_final_ones((start, ops, requests) in team_history()) {
        let mut world = start;
        let mut engine = world.engine(true);
        for op in &ops {
            world.apply(op);
            apply_to_engine(&mut engine, op);
        }
        let fresh = world.engine(false);
        for req in &requests {
            same_as_fresh(&engine, &fresh, &world, req)?;
        }
    }
}

/// One `*` assignment and, for a DENY, an ALLOW of everything beside it, so that the decision
/// turns on the tested definition's conditions.
fn condition_world(effect: Effect, conditions: Vec<Condition>) -> World {
    let mut world = World::default();
    let everything = Definition {
        effect: Effect::Allow,
        actions: vec![OrgAction::Any],
        resources: vec!["/**".into()],
        conditions: Vec::new(),
    };
    let tested = Definition { effect, actions: vec![OrgAction::Any], resources: vec!["/**".into()], conditions };
    let definitions = match effect {
        Effect::Allow => vec![tested],
        Effect::Deny => vec![everything, tested],
    };
    world.org_policies.insert("p0".into(), OrgPolicy { organization: "o1".into(), definitions });
    world.assignments.insert(
        "a0".into(),
        Assignment { organization: "o1".into(), principal: "*".into(), roles: Vec::new(), policies: vec!["p0".into()] },
    );
    world
}

proptest! {
    #![proptest_config(config(CONDITION_CASES))]

    /// Conditions alone: every operator against every kind of context value, for an ALLOW and
    /// a DENY, with the decision resting on them.
    #[test]
    fn conditions_decide_as_the_naive_evaluator(
        effect in effect(),
        conditions in vec(condition(), 1..3),
        context in context(),
        tenant in proptest::option::of(select(WIDE.request_tenants)),
    ) {
        let world = condition_world(effect, conditions);
        let engine = world.engine(true);
        let req = Req {
            subject: "user:local:alice",
            teams: Vec::new(),
            action: "update",
            resource: "/a/b",
            tenant,
            organization: Some("o1"),
            context,
        };
        agree(&engine, &world, &req)?;
    }
}

// ---------------------------------------------------------------------------------------------
// Searches: every entity a check allows is a candidate, and every candidate comes from an ALLOW
// that matches but for its tenants and conditions.
// ---------------------------------------------------------------------------------------------

/// The users `${a2:username}` may stand for, beside the vocabularies' subjects: each provider's,
/// for each name a resource holds.
const PROBED_USERS: &[&str] = &[
    "user:local:alice",
    "user:ldap:alice",
    "user:saml:alice",
    "user:oidc:alice",
    "user:local:bob",
    "user:ldap:bob",
    "user:saml:bob",
    "user:oidc:bob",
    "user:local:eng",
    "user:oidc:eng",
    "user:local:t1",
    "user:saml:t1",
];

/// Concrete entries of some vocabularies' lists.
fn concrete(lists: &[&'static [&'static str]]) -> BTreeSet<&'static str> {
    lists
        .iter()
        .flat_map(|list| list.iter().copied())
        .filter(|text| !text.contains('*') && !text.contains("${"))
        .collect()
}

/// Every concrete subject a policy or a team names, and the users `${a2:username}` stands for.
fn probed_subjects() -> BTreeSet<&'static str> {
    let mut probes =
        concrete(&[WIDE.subjects, WIDE.teams, WIDE.team_members, WIDE.members, NARROW.subjects, NARROW.teams]);
    probes.extend(concrete(&[NARROW.team_members, NARROW.members, PROBED_USERS]));
    probes
}

fn probed_resources() -> BTreeSet<&'static str> {
    concrete(&[
        WIDE.resources,
        WIDE.paths,
        WIDE.resource_patterns,
        NARROW.resources,
        NARROW.paths,
        NARROW.resource_patterns,
    ])
}

fn probed_actions() -> BTreeSet<&'static str> {
    concrete(&[
        WIDE.actions,
        WIDE.org_actions,
        WIDE.action_patterns,
        NARROW.actions,
        NARROW.org_actions,
        NARROW.action_patterns,
    ])
}

/// An entity a member or resource pattern (`*`, `a:*`) matches, that no vocabulary names.
fn instance_below(pattern: &str) -> String {
    format!("{}zz-probe", pattern.strip_suffix('*').unwrap_or(pattern))
}

/// A concrete action an action pattern (§2.6) matches, that no vocabulary names.
fn action_instance(pattern: &str) -> String {
    match pattern.split(':').collect::<Vec<_>>()[..] {
        ["*"] => "zz:zz:zz".to_string(),
        ["*", verb] => format!("zz:zz:{verb}"),
        [service, "*"] => format!("{service}:zz:zz"),
        _ => pattern.replace('*', "zz"),
    }
}

/// The three searches of `req`'s entities. Sound: every probed entity that the naive
/// evaluator allows (with the request's tenant and context, and no organization, whose
/// definitions searches do not read) is covered; for subjects, checked with no request teams,
/// which a subject search cannot know. Precise: every candidate, and an entity of every
/// candidate pattern, is one an ALLOW matches but for its tenants and conditions.
fn searches_agree(engine: &Engine, world: &World, req: &Req) -> Result<(), TestCaseError> {
    let probe = |subject, teams: &[String], action, resource| Req {
        subject,
        teams: teams.to_vec(),
        action,
        resource,
        organization: None,
        ..req.clone()
    };
    let (subject, teams, action, resource) = (req.subject, req.teams.as_slice(), req.action, req.resource);

    let found = engine.subject_candidates(action, resource);
    for probed in probed_subjects() {
        if naive_check(world, &probe(probed, &[], action, resource)).allowed {
            prop_assert!(found.covers(probed), "subject search misses {}: {:?} for {:#?}", probed, found, req);
        }
    }
    let instances = found.patterns.iter().map(|p| instance_below(p));
    for candidate in found.subjects.iter().cloned().chain(instances) {
        prop_assert!(
            an_allow_matches(world, &candidate, &[], action, resource),
            "subject search finds {} no ALLOW matches: {:?} for {:#?}",
            candidate,
            found,
            req
        );
    }

    let found = engine.resource_candidates(subject, teams, action);
    for probed in probed_resources() {
        if naive_check(world, &probe(subject, teams, action, probed)).allowed {
            prop_assert!(found.covers(probed), "resource search misses {}: {:?} for {:#?}", probed, found, req);
        }
    }
    let instances = found.patterns.iter().map(|p| instance_below(p));
    for candidate in found.resources.iter().cloned().chain(instances) {
        prop_assert!(
            an_allow_matches(world, subject, teams, action, &candidate),
            "resource search finds {} no ALLOW matches: {:?} for {:#?}",
            candidate,
            found,
            req
        );
    }

    let found = engine.action_candidates(subject, teams, resource);
    for probed in probed_actions() {
        if naive_check(world, &probe(subject, teams, probed, resource)).allowed {
            prop_assert!(found.covers(probed), "action search misses {}: {:?} for {:#?}", probed, found, req);
        }
    }
    let instances = found.patterns.iter().map(|p| action_instance(p));
    for candidate in found.actions.iter().cloned().chain(instances) {
        prop_assert!(
            an_allow_matches(world, subject, teams, &candidate, resource),
            "action search finds {} no ALLOW matches: {:?} for {:#?}",
            candidate,
            found,
            req
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(SEARCH_CASES))]

    /// A state built at once, then the searches of several checks' entities.
    #[test]
    fn searches_find_every_allowed_entity_and_only_what_allows_name(
        (world, requests) in scenario(),
        roles_first in any::<bool>(),
    ) {
        let engine = world.engine(roles_first);
        for req in &requests {
            searches_agree(&engine, &world, req)?;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The generators are worth running: they reach every rule often.
// ---------------------------------------------------------------------------------------------

#[derive(Default, Debug)]
struct Coverage {
    checks: usize,
    allowed: usize,
    denied_by_deny: usize,
    denied_by_default: usize,
    iam_reasons: usize,
    org_reasons: usize,
    org_deny_reasons: usize,
    tenantless_allowed: usize,
    tenantless_denied_by_deny: usize,
    unevaluable: usize,
    role_matches: usize,
    variable_matches: usize,
    team_matches: usize,
    held_team_matches: usize,
    /// The authorized tenants' shapes: every tenant, every one but some, some, none.
    tenants_every: usize,
    tenants_all_but: usize,
    tenants_some: usize,
    tenants_none: usize,
    near: BTreeMap<String, usize>,
    truncated: usize,
    /// IAM v2 statements with conditions: the reasons of an ALLOW and of a DENY.
    conditioned_allows: usize,
    conditioned_denies: usize,
    /// A DENY that matched because its conditions could not be evaluated.
    unevaluable_iam_denies: usize,
    /// An `…IfExists` test of a statement or definition that held on a missing key, or on a
    /// list or an object.
    if_exists_missing: usize,
    if_exists_composite: usize,
    /// Searches' probes the naive evaluator allows, which the candidates must cover.
    searched_subjects: usize,
    /// Allowed only through a team the engine holds as listing the subject.
    searched_subjects_by_team: usize,
    /// Allowed only through a `${a2:username}` pattern.
    searched_subjects_by_name: usize,
    searched_resources: usize,
    searched_actions: usize,
}

#[test]
fn generators_reach_every_rule() {
    let mut runner = TestRunner::new_with_rng(config(1), TestRng::deterministic_rng(RngAlgorithm::XorShift));
    let strategy = scenario();
    let mut seen = Coverage::default();
    let (subjects, resources, actions) = (probed_subjects(), probed_resources(), probed_actions());
    for _ in 0..2_000 {
        let (world, requests) = strategy.new_tree(&mut runner).expect("a case").current();
        let without_teams = World { teams: BTreeMap::new(), ..world.clone() };
        let mut without_names = world.clone();
        for statement in without_names.policies.values_mut().flat_map(|p| &mut p.statements) {
            statement.resources.retain(|r| !r.contains(VARIABLE));
        }
        for req in &requests {
            let e = naive_explain(&world, req);
            seen.checks += 1;
            match (e.decision.allowed, e.decision.reasons.is_empty(), req.tenant.is_none()) {
                (true, _, tenantless) => {
                    seen.allowed += 1;
                    seen.tenantless_allowed += usize::from(tenantless);
                }
                (false, true, _) => seen.denied_by_default += 1,
                (false, false, tenantless) => {
                    seen.denied_by_deny += 1;
                    seen.tenantless_denied_by_deny += usize::from(tenantless);
                }
            }
            for reason in &e.decision.reasons {
                match (&reason.source, reason.effect) {
                    (Source::Iam, _) => seen.iam_reasons += 1,
                    (Source::Organization(_), Effect::Allow) => seen.org_reasons += 1,
                    (Source::Organization(_), Effect::Deny) => seen.org_deny_reasons += 1,
                }
            }
            for at in &e.matches {
                let Some(statement) = world
                    .policies
                    .get(&*at.policy)
                    .and_then(|p| p.statements.get(at.statement))
                    .filter(|_| at.source == Source::Iam)
                else {
                    continue;
                };
                let inline = statement.actions.iter().any(|p| action_matches(p, req.action));
                seen.role_matches += usize::from(!inline);
                seen.variable_matches += usize::from(
                    statement
                        .resources
                        .iter()
                        .all(|r| r.contains(VARIABLE) || !resource_matches(r, req.resource, req.subject)),
                );
                let members = &world.policies[&*at.policy].members;
                let direct = members.iter().any(|m| member_matches(m, req.subject));
                seen.team_matches += usize::from(!direct);
                let by_request = req.teams.iter().any(|t| members.iter().any(|m| member_matches(m, t)));
                seen.held_team_matches += usize::from(!direct && !by_request);
            }
            for n in &e.near_misses {
                let kind = match n.statement.source {
                    Source::Iam => "iam",
                    Source::Organization(_) => "org",
                };
                *seen.near.entry(format!("{kind} {:?}", n.failed)).or_default() += 1;
            }
            seen.truncated += usize::from(e.near_misses.len() == MAX_NEAR_MISSES);
            let permits = |tenant| naive_check(&world, &Req { tenant: Some(tenant), ..req.clone() }).allowed;
            let permitted = PROBED_TENANTS.iter().filter(|t| permits(t)).count();
            match (permits(UNUSED_TENANT), permitted) {
                (true, n) if n == PROBED_TENANTS.len() => seen.tenants_every += 1,
                (true, _) => seen.tenants_all_but += 1,
                (false, 0) => seen.tenants_none += 1,
                (false, _) => seen.tenants_some += 1,
            }
            let unevaluable = world
                .org_policies
                .values()
                .flat_map(|p| &p.definitions)
                .any(|d| conditions_outcome(&d.conditions, &req.context).is_none());
            seen.unevaluable += usize::from(unevaluable);
            for at in e.decision.reasons.iter().filter(|at| at.source == Source::Iam) {
                let statement = &world.policies[&*at.policy].statements[at.statement];
                if statement.conditions.is_empty() {
                    continue;
                }
                match at.effect {
                    Effect::Allow => seen.conditioned_allows += 1,
                    Effect::Deny => seen.conditioned_denies += 1,
                }
                let unknown = conditions_outcome(&statement.conditions, &req.context).is_none();
                seen.unevaluable_iam_denies += usize::from(at.effect == Effect::Deny && unknown);
            }
            let every_test = || {
                let iam = world.policies.values().flat_map(|p| &p.statements).flat_map(|s| &s.conditions);
                let org = world.org_policies.values().flat_map(|p| &p.definitions).flat_map(|d| &d.conditions);
                iam.chain(org).flat_map(|c| &c.tests)
            };
            let if_exists_on = |kind: fn(Option<&Value>) -> bool| {
                every_test().any(|test| {
                    naive_form(test.operator).1
                        && kind(req.context.get(&test.key))
                        && test_outcome(test, &req.context) == Some(true)
                })
            };
            seen.if_exists_missing += usize::from(if_exists_on(|value| value.is_none()));
            seen.if_exists_composite += usize::from(if_exists_on(|value| value == Some(&Value::Composite)));
            let bare = |subject, action, resource| Req {
                subject,
                teams: Vec::new(),
                action,
                resource,
                organization: None,
                ..req.clone()
            };
            for subject in &subjects {
                let probe = bare(subject, req.action, req.resource);
                if naive_check(&world, &probe).allowed {
                    seen.searched_subjects += 1;
                    seen.searched_subjects_by_team += usize::from(!naive_check(&without_teams, &probe).allowed);
                    seen.searched_subjects_by_name += usize::from(!naive_check(&without_names, &probe).allowed);
                }
            }
            let with_teams = |action, resource| Req { teams: req.teams.clone(), ..bare(req.subject, action, resource) };
            for resource in &resources {
                seen.searched_resources += usize::from(naive_check(&world, &with_teams(req.action, resource)).allowed);
            }
            for action in &actions {
                seen.searched_actions += usize::from(naive_check(&world, &with_teams(action, req.resource)).allowed);
            }
        }
    }
    println!("{seen:#?}");
    let enough = seen.checks / 100;
    assert!(seen.allowed > seen.checks / 5, "{seen:#?}");
    for (what, count) in [
        ("denied by a DENY", seen.denied_by_deny),
        ("denied by default", seen.denied_by_default),
        ("IAM v2 reasons", seen.iam_reasons),
        ("organization ALLOW reasons", seen.org_reasons),
        ("organization DENY reasons", seen.org_deny_reasons),
        ("tenant-less allowed", seen.tenantless_allowed),
        ("tenant-less denied by a DENY", seen.tenantless_denied_by_deny),
        ("unevaluable conditions", seen.unevaluable),
        ("matches through a role", seen.role_matches),
        ("matches through ${a2:username}", seen.variable_matches),
        ("matches through a team", seen.team_matches),
        ("matches through a team that lists the subject", seen.held_team_matches),
        ("authorized in every tenant", seen.tenants_every),
        ("authorized in every tenant but some", seen.tenants_all_but),
        ("authorized in some tenants", seen.tenants_some),
        ("authorized in none", seen.tenants_none),
        ("conditioned IAM v2 ALLOW reasons", seen.conditioned_allows),
        ("conditioned IAM v2 DENY reasons", seen.conditioned_denies),
        ("IAM v2 DENYs matching by unevaluable conditions", seen.unevaluable_iam_denies),
        ("…IfExists holding on a missing key", seen.if_exists_missing),
        ("…IfExists holding on a list or an object", seen.if_exists_composite),
        ("subjects a search must find", seen.searched_subjects),
        ("… through a team the engine holds", seen.searched_subjects_by_team),
        ("… through ${a2:username}", seen.searched_subjects_by_name),
        ("resources a search must find", seen.searched_resources),
        ("actions a search must find", seen.searched_actions),
    ] {
        assert!(count > enough, "{what}: {seen:#?}");
    }
    assert!(seen.truncated > seen.checks / 500, "near misses at the limit: {seen:#?}");
    for kind in [
        "iam Action",
        "iam Resource",
        "iam Tenant",
        "iam Condition",
        "org Organization",
        "org Action",
        "org Resource",
        "org Condition",
    ] {
        assert!(seen.near.get(kind).copied().unwrap_or(0) > enough, "{kind}: {seen:#?}");
    }
}

/// `tenants_agree` can say `all()` is right only if its probes name every tenant a statement
/// can, and one that none does.
#[test]
fn probed_tenants_cover_every_vocabulary() {
    for v in [&WIDE, &NARROW] {
        for tenant in v.tenants.iter().chain(v.request_tenants) {
            assert!(PROBED_TENANTS.contains(tenant), "{tenant} is not probed");
            assert_ne!(*tenant, UNUSED_TENANT);
        }
    }
}

/// The naive evaluator's own building blocks, against the rules' examples.
#[test]
fn naive_evaluator_reads_the_rules() {
    assert!(member_matches("*", "token:t1"));
    assert!(member_matches("user:*", "user:local:alice"));
    assert!(member_matches("user:local:*", "user:local:alice"));
    assert!(!member_matches("user:local:*", "user:ldap:alice"));
    assert!(!member_matches("user:local:alice", "user:local:bob"));
    assert!(action_matches("*", "view"));
    assert!(action_matches("*:get", "iam:users:get"));
    assert!(!action_matches("*:get", "get"));
    assert!(action_matches("iam:*", "iam:users:get"));
    assert!(action_matches("iam:*:get", "iam:users:get"));
    assert!(!action_matches("iam:*:get", "iam:users:list"));
    assert!(action_matches("iam:users:*", "iam:users:list"));
    assert!(!action_matches("iam:users:*", "iam:policies:list"));
    assert!(action_matches("view", "view"));
    assert!(resource_matches("*", "/a", "token:t1"));
    assert!(resource_matches("a:*", "a:b", "token:t1"));
    assert!(resource_matches("a:*", "a:b:c", "token:t1"));
    assert!(!resource_matches("a:*", "a", "token:t1"));
    assert!(!resource_matches("a:*", "a:", "token:t1"));
    assert!(resource_matches("iam:users:${a2:username}", "iam:users:alice", "user:local:alice"));
    assert!(!resource_matches("iam:users:${a2:username}", "iam:users:alice", "token:alice"));
    assert!(path_matches("/", "/"));
    assert!(!path_matches("/**", "/"));
    assert!(path_matches("/a/**/c", "/a/x/y/c"));
    assert!(!path_matches("/a/**/c", "/a/c"));
    assert!(path_matches("/a/*", "/a/b"));
    assert!(!path_matches("/a/*", "/a/b/c"));
    assert!(!path_matches("a/**", "/a/b"));
    assert!(like(&['*'], &[]));
    assert!(like(&"a*c*e".chars().collect::<Vec<_>>(), &"abcde".chars().collect::<Vec<_>>()));
    assert!(!like(&"a*c".chars().collect::<Vec<_>>(), &"abcd".chars().collect::<Vec<_>>()));
    let block = |t: &str| read_block(t).expect("a block");
    let ip = |t: &str| t.parse::<IpAddr>().expect("an address");
    let (b, p) = block("10.0.0.0/8");
    assert!(in_block(ip("10.255.0.1"), b, p));
    assert!(!in_block(ip("11.0.0.1"), b, p));
    assert!(!in_block(ip("::ffff:10.0.0.1"), b, p));
    let (b, p) = block("11.0.0.0/7");
    assert!(in_block(ip("10.0.0.1"), b, p));
    assert!(!in_block(ip("12.0.0.1"), b, p));
    assert_eq!(read_block("10.0.0.0/33"), None);
    assert_eq!(read_block("10.0.0.0/"), None);
    assert_eq!(read_number(" 10 "), Some(10.0));
    assert_eq!(read_number("inf"), None);
    let t = |operator, value: &str, have: Value| {
        let test = Test { operator, key: "k".into(), value: value.into() };
        test_outcome(&test, &[("k".to_string(), have)].into_iter().collect())
    };
    let v = |text: &str| Value::String(text.into());
    assert_eq!(t(Operator::DateAfter, "2026-01-01T00:00:00Z", v("2026-01-01T00:00:00.0000001Z")), Some(true));
    assert_eq!(t(Operator::DateBefore, "2026-01-01T00:00:00Z", v("2026-01-01T01:00:00+01:00")), Some(false));
    assert_eq!(t(Operator::NumericLessThan, "10", Value::Number(5.0)), Some(true));
    assert_eq!(t(Operator::NumericLessThan, "10", Value::Number(f64::NAN)), None);
    assert_eq!(t(Operator::Bool, "true", v("yes")), None);
    assert_eq!(t(Operator::StringEquals, "5", Value::Number(5.0)), None);
    assert_eq!(t(Operator::IpAddress, "10.0.0.0/8", v("::1")), Some(false));
    assert_eq!(t(Operator::StringEqualsIfExists, "sms", Value::Composite), Some(true));
    assert_eq!(t(Operator::StringEqualsIfExists, "sms", v("email")), Some(false));
    assert_eq!(t(Operator::StringEqualsIfExists, "sms", Value::Null), None);
    assert_eq!(t(Operator::Bool, "true", Value::Composite), None);
    let missing = |operator, value: &str| {
        test_outcome(&Test { operator, key: "missing".into(), value: value.into() }, &Context::new())
    };
    assert_eq!(missing(Operator::BoolIfExists, "true"), Some(true));
    assert_eq!(missing(Operator::NumericEqualsIfExists, "ten"), None);
    assert_eq!(missing(Operator::Bool, "true"), None);
    assert_eq!(action_instance("*"), "zz:zz:zz");
    assert_eq!(action_instance("*:get"), "zz:zz:get");
    assert_eq!(action_instance("iam:*"), "iam:zz:zz");
    assert_eq!(action_instance("iam:*:get"), "iam:zz:get");
    assert_eq!(action_instance("iam:users:*"), "iam:users:zz");
    assert_eq!(instance_below("user:local:*"), "user:local:zz-probe");
    assert_eq!(instance_below("*"), "zz-probe");
}
