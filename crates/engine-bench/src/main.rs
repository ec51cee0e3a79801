//! Decision-engine benchmark: iamd's [`iamd_engine::Engine`] against cedar-policy on an
//! equivalent policy set, in one run.
//!
//! **Workload** (seeded, [`fastrand`]). A fixed population: 2,000 users `user:local:uN`, each
//! in 0–2 of 200 teams `team:local:tN` (30 % none, 45 % one, 25 % two); 20 roles (`viewer`
//! = `*:get` + `*:list`, `editor`, `owner` = `*`, `iam-admin` = `iam:*`, … and 14 on one
//! type each); 90 actions `svc:type:verb` over 18 resource types, each type with 200 ids
//! `svc:type:idN`. For each size (50, 1k, 10k, 100k IAM v2 statements by default) a policy
//! set of exactly that many statements: policies of 1–4 statements with 1–8 members (75 %
//! users, 25 % teams; about 20 policies in all hold a wildcard member: `*`, `user:*`,
//! `user:local:*`, `team:*`, `team:local:*`); each statement ALLOW (90 %) or DENY, about one
//! resource type: its actions a role (12 %), a role and one pattern (4 %) or 1–3 patterns
//! (80 % exact, then `svc:type:*`, `svc:*:verb`, `*:verb`, `svc:*`, `*`), its 1–3 resources
//! 98.5 % exact ids, then `svc:type:*`, `svc:*` and `*`; tenants `*`. 5 % of the policies are
//! an exception to an earlier ALLOW (one of its members denied one of its patterns on one of
//! its resources). 10,000 requests per size, tenant none: 91 % uniform (a user with its
//! teams, an action, an id of the action's type), 7 % built from a random ALLOW statement
//! and 2 % from a random DENY (a member of it, an action and a resource it matches).
//!
//! **Measured**, per size:
//!
//! 1. **build**: every role and policy put into a fresh `Engine`, timed; the growth of VmRSS
//!    across it (after `malloc_trim`, so the memory the last size freed is not reused
//!    unseen). The engine is dropped after its size;
//! 2. **decide**: one round not timed, then `--rounds` rounds (5) over the requests, each
//!    `check` (and the drop of its `Decision`) timed alone with `Instant` into an HDR
//!    histogram (ns); a round's throughput is its requests over its wall time, the timer
//!    included; the round with the median p50 is reported;
//! 3. **check the answers**: a linear reference evaluator of the engine's rules decides as
//!    many requests as `--reference` statement evaluations allow (all of them up to 1k
//!    statements, 200 at 100k), and Cedar decides its share; every disagreement is counted
//!    and the first is printed;
//! 4. **Cedar** (10,000 requests at 50 and 1k, 1,000 at 10k by default; it evaluates every
//!    policy for each request, about 20 ms a decision at 10k, so 100k is skipped): the same
//!    policy set as one Cedar policy per statement (`permit`/`forbid`, the members, actions
//!    and resources in the scope when there is one of each, else `principal in [..]` and
//!    `resource in [..]` in a `when`), over one `Entities` store: users (parents: their teams
//!    and the groups of their member prefixes, `Group::"user:"`, `Group::"user:local:"`),
//!    teams (`Group::"team:"`, `Group::"team:local:"`), actions (parents: the four pattern
//!    forms that match them and every role one of whose patterns does; `*` is no
//!    constraint) and resources (`Resource::"svc:type:"` in `Resource::"svc:"`). Each
//!    `Authorizer::is_authorized` timed the same way, one round, after 100 not timed;
//! 5. **changes**: `put_policy` replacing an existing policy by a new one of the same
//!    generator, `put_policy` of a new id, `remove_policy` of those, and `put_role`
//!    replacing a role, each timed alone;
//! 6. **simulation**, over the engine as the changes left it: `--simulate` (100) proposed
//!    changes, each a `put_policy` of the same generator (half replacing a random policy,
//!    half of new ids) but every 50th a `put_role` of a random role with one more pattern.
//!    Timed alone with its drop: an [`Overlay`] of one `put_policy` (1,000 times), of the
//!    `put_policy` changes, of all of them, and of one `put_role` of the role the most
//!    policies name (200 times each; a role change moves the policies naming it into the
//!    overlay's delta). Then `check` through the overlay of all the changes and the engine's
//!    over the same requests, and `explain` over the first 1,000, in turns, by rounds as in
//!    step 2; and every request's overlay `Decision` against that of an `Engine` built at
//!    once from the policy set with the changes applied.
//!
//! Markdown goes to stdout, progress to stderr. Flags: `--sizes 50,1000`, `--requests N`,
//! `--cedar 50:10000,1000:10000,10000:1000` (size:requests; `--cedar none` skips Cedar),
//! `--changes N` (per kind of change, 1000), `--simulate N` (changes in an overlay, 100; 0 skips
//! the step), `--rounds N`, `--seed N`, `--reference N`,
//! `--extra-passes N` (untimed rounds of the checks after the timed ones, for a profiler),
//! `--dump-cedar DIR` (writes each size's Cedar policies to `DIR/cedar-<size>.cedar`).

// A benchmark fails loudly: `expect` on setup steps is the clearest report.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::hint::black_box;
use std::str::FromStr;
use std::time::{Duration, Instant};

use cedar_policy::{Authorizer, Context, Entities, Entity, EntityId, EntityTypeName, EntityUid, PolicySet};
use hdrhistogram::Histogram;
use iamd_engine::{Effect, Engine, Feed, Overlay, Policy, Request, Role, Statement};

// ---------------------------------------------------------------------------------------------
// The workload.

/// Resource types (`svc:type`) and their verbs: the action vocabulary is every `svc:type:verb`.
const TYPES: &[(&str, &str, &[&str])] = &[
    ("iam", "users", &["get", "list", "create", "update", "delete", "reset-password"]),
    ("iam", "teams", &["get", "list", "create", "update", "delete"]),
    ("iam", "policies", &["get", "list", "create", "update", "delete"]),
    ("iam", "roles", &["get", "list", "create", "update", "delete"]),
    ("iam", "tokens", &["get", "list", "create", "update", "delete", "rotate"]),
    ("iam", "projects", &["get", "list", "create", "update", "delete", "assign"]),
    ("infra", "nodes", &["get", "list", "create", "update", "delete", "rerun"]),
    ("infra", "clusters", &["get", "list", "create", "update", "delete"]),
    ("infra", "ingest", &["get", "list", "create", "delete"]),
    ("compliance", "reports", &["get", "list", "create", "delete", "export"]),
    ("compliance", "profiles", &["get", "list", "create", "update", "delete", "upload"]),
    ("compliance", "scans", &["get", "list", "create", "update", "delete", "run"]),
    ("secrets", "secrets", &["get", "list", "create", "update", "delete", "read-value"]),
    ("applications", "services", &["get", "list", "create", "update", "delete"]),
    ("event", "feeds", &["get", "list"]),
    ("notifications", "rules", &["get", "list", "create", "update", "delete"]),
    ("datafeed", "destinations", &["get", "list", "create", "update", "delete"]),
    ("system", "license", &["get", "update"]),
];

const USERS: usize = 2_000;
const TEAMS: usize = 200;
/// Resource ids per type: `svc:type:id0` … `svc:type:id199`.
const IDS: usize = 200;
/// Policies whose members hold a wildcard (`*`, `user:*`, …): about this many at every size
/// (an organization has a handful of org-wide policies, not a fixed share of them).
const WILDCARD_POLICIES: f64 = 20.0;
const WILDCARD_MEMBERS: &[&str] = &["*", "user:*", "user:local:*", "team:*", "team:local:*"];
/// Requests built from a random ALLOW statement (its member, an action and a resource it
/// names); the rest are uniform over users, actions and the action type's resources.
const TARGETED_SHARE: f64 = 0.07;
/// Requests built the same way from a random DENY statement.
const DENY_TARGETED_SHARE: f64 = 0.02;
/// Policies that are an exception to an earlier ALLOW (see [`exception`]), of one statement.
const EXCEPTION_SHARE: f64 = 0.05;
const DENY_SHARE: f64 = 0.10;

struct Vocabulary {
    /// `svc:type:verb`, and the index of its type in [`TYPES`].
    actions: Vec<(String, usize)>,
}

impl Vocabulary {
    fn new() -> Vocabulary {
        let mut actions = Vec::new();
        for (t, (svc, kind, verbs)) in TYPES.iter().enumerate() {
            for verb in *verbs {
                actions.push((format!("{svc}:{kind}:{verb}"), t));
            }
        }
        Vocabulary { actions }
    }
}

struct Population {
    users: Vec<String>,
    teams: Vec<String>,
    /// Each user's teams (0–2), which its requests carry.
    user_teams: Vec<Vec<String>>,
    /// Users by team index.
    team_users: Vec<Vec<usize>>,
}

impl Population {
    fn new(rng: &mut fastrand::Rng) -> Population {
        let users: Vec<String> = (0..USERS).map(|i| format!("user:local:u{i}")).collect();
        let teams: Vec<String> = (0..TEAMS).map(|i| format!("team:local:t{i}")).collect();
        let mut user_teams = Vec::with_capacity(USERS);
        let mut team_users = vec![Vec::new(); TEAMS];
        for u in 0..USERS {
            let x = rng.f64();
            let count = if x < 0.30 {
                0
            } else if x < 0.75 {
                1
            } else {
                2
            };
            let mut mine: Vec<usize> = Vec::new();
            while mine.len() < count {
                let t = rng.usize(..TEAMS);
                if !mine.contains(&t) {
                    mine.push(t);
                }
            }
            for &t in &mine {
                team_users[t].push(u);
            }
            user_teams.push(mine.iter().map(|&t| teams[t].clone()).collect());
        }
        Population { users, teams, user_teams, team_users }
    }
}

fn pick<'a, T>(rng: &mut fastrand::Rng, items: &'a [T]) -> &'a T {
    &items[rng.usize(..items.len())]
}

fn roles(rng: &mut fastrand::Rng) -> Vec<(String, Role)> {
    let fixed: &[(&str, &[&str])] = &[
        ("viewer", &["*:get", "*:list"]),
        ("editor", &["*:get", "*:list", "*:create", "*:update"]),
        ("owner", &["*"]),
        ("iam-admin", &["iam:*"]),
        ("infra-operator", &["infra:*", "compliance:*:get"]),
        ("compliance-viewer", &["compliance:*:get", "compliance:*:list"]),
    ];
    let mut out: Vec<(String, Role)> = fixed
        .iter()
        .map(|(id, actions)| (id.to_string(), Role { actions: actions.iter().map(|a| a.to_string()).collect() }))
        .collect();
    for k in 0..14 {
        let (svc, kind, verbs) = *pick(rng, TYPES);
        let actions = if rng.f64() < 0.4 {
            vec![format!("{svc}:{kind}:*")]
        } else {
            let mut actions: Vec<String> =
                (0..2 + rng.usize(..3)).map(|_| format!("{svc}:{kind}:{}", pick(rng, verbs))).collect();
            actions.sort();
            actions.dedup();
            actions
        };
        out.push((format!("custom-{k}"), Role { actions }));
    }
    out
}

fn action_pattern(rng: &mut fastrand::Rng, t: usize) -> String {
    let (svc, kind, verbs) = TYPES[t];
    let verb = pick(rng, verbs);
    let x = rng.f64();
    if x < 0.80 {
        format!("{svc}:{kind}:{verb}")
    } else if x < 0.90 {
        format!("{svc}:{kind}:*")
    } else if x < 0.94 {
        format!("{svc}:*:{verb}")
    } else if x < 0.97 {
        format!("*:{verb}")
    } else if x < 0.99 {
        format!("{svc}:*")
    } else {
        "*".to_string()
    }
}

fn resource_pattern(rng: &mut fastrand::Rng, t: usize) -> String {
    let (svc, kind, _) = TYPES[t];
    let x = rng.f64();
    if x < 0.985 {
        format!("{svc}:{kind}:id{}", rng.usize(..IDS))
    } else if x < 0.995 {
        format!("{svc}:{kind}:*")
    } else if x < 0.998 {
        format!("{svc}:*")
    } else {
        "*".to_string()
    }
}

fn statement(rng: &mut fastrand::Rng, roles: &[(String, Role)]) -> Statement {
    let effect = if rng.f64() < DENY_SHARE { Effect::Deny } else { Effect::Allow };
    let t = rng.usize(..TYPES.len());
    let x = rng.f64();
    let (role, inline) = if x < 0.12 {
        (Some(pick(rng, roles).0.clone()), 0)
    } else if x < 0.16 {
        (Some(pick(rng, roles).0.clone()), 1)
    } else {
        (None, 1 + rng.usize(..3))
    };
    let mut actions: Vec<String> = (0..inline).map(|_| action_pattern(rng, t)).collect();
    actions.sort();
    actions.dedup();
    let x = rng.f64();
    let count = if x < 0.6 {
        1
    } else if x < 0.9 {
        2
    } else {
        3
    };
    let mut resources: Vec<String> = (0..count).map(|_| resource_pattern(rng, t)).collect();
    resources.sort();
    resources.dedup();
    Statement { effect, actions, role, resources, tenants: vec!["*".to_string()], conditions: Vec::new() }
}

fn members(rng: &mut fastrand::Rng, population: &Population, wildcard: bool) -> Vec<String> {
    let x = rng.f64();
    let count = if x < 0.45 {
        1
    } else if x < 0.70 {
        2
    } else if x < 0.85 {
        3
    } else {
        4 + rng.usize(..5)
    };
    let mut out: Vec<String> = Vec::with_capacity(count);
    if wildcard {
        out.push(pick(rng, WILDCARD_MEMBERS).to_string());
    }
    while out.len() < count {
        let member =
            if rng.f64() < 0.75 { pick(rng, &population.users).clone() } else { pick(rng, &population.teams).clone() };
        if !out.contains(&member) {
            out.push(member);
        }
    }
    out
}

fn policy(
    rng: &mut fastrand::Rng,
    population: &Population,
    roles: &[(String, Role)],
    statements: usize,
    wildcard_p: f64,
) -> Policy {
    let wildcard = rng.f64() < wildcard_p;
    Policy {
        members: members(rng, population, wildcard),
        statements: (0..statements).map(|_| statement(rng, roles)).collect(),
    }
}

/// Policies of 1–4 statements (2.5 on average), exactly `size` statements in all.
fn policies(
    rng: &mut fastrand::Rng,
    population: &Population,
    roles: &[(String, Role)],
    size: usize,
) -> Vec<(String, Policy)> {
    let wildcard_p = (WILDCARD_POLICIES / (size as f64 / 2.5)).min(0.1);
    let mut out: Vec<(String, Policy)> = Vec::new();
    let mut left = size;
    while left > 0 {
        if !out.is_empty()
            && rng.f64() < EXCEPTION_SHARE
            && let Some(exception) = exception(rng, &out)
        {
            left -= 1;
            out.push((format!("p{}", out.len()), exception));
            continue;
        }
        let n = (1 + rng.usize(..4)).min(left);
        left -= n;
        out.push((format!("p{}", out.len()), policy(rng, population, roles, n, wildcard_p)));
    }
    out
}

/// An exception to an earlier ALLOW: one of its members denied one of its action patterns
/// (or its role) on one of its resources.
fn exception(rng: &mut fastrand::Rng, earlier: &[(String, Policy)]) -> Option<Policy> {
    let (_, allow) = pick(rng, earlier);
    let statement = pick(rng, &allow.statements);
    if statement.effect != Effect::Allow {
        return None;
    }
    let (actions, role) = match (statement.actions.is_empty(), &statement.role) {
        (false, _) => (vec![pick(rng, &statement.actions).clone()], None),
        (true, role) => (Vec::new(), role.clone()),
    };
    Some(Policy {
        members: vec![pick(rng, &allow.members).clone()],
        statements: vec![Statement {
            effect: Effect::Deny,
            actions,
            role,
            resources: vec![pick(rng, &statement.resources).clone()],
            tenants: vec!["*".to_string()],
            conditions: Vec::new(),
        }],
    })
}

/// One request: a user (with its teams), a concrete action, a concrete resource.
#[derive(Clone)]
struct Req {
    user: usize,
    action: String,
    resource: String,
}

fn concrete_resource(rng: &mut fastrand::Rng, pattern: &str) -> String {
    if pattern == "*" {
        let (svc, kind, _) = pick(rng, TYPES);
        return format!("{svc}:{kind}:id{}", rng.usize(..IDS));
    }
    match pattern.strip_suffix('*') {
        None => pattern.to_string(),
        Some(prefix) => {
            let below: Vec<&(&str, &str, &[&str])> =
                TYPES.iter().filter(|(svc, kind, _)| format!("{svc}:{kind}:").starts_with(prefix)).collect();
            let (svc, kind, _) = pick(rng, &below);
            format!("{svc}:{kind}:id{}", rng.usize(..IDS))
        }
    }
}

fn requests(
    rng: &mut fastrand::Rng,
    count: usize,
    population: &Population,
    vocabulary: &Vocabulary,
    roles: &[(String, Role)],
    policies: &[(String, Policy)],
) -> Vec<Req> {
    let role_actions: HashMap<&str, &[String]> =
        roles.iter().map(|(id, r)| (id.as_str(), r.actions.as_slice())).collect();
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        let x = rng.f64();
        let wanted = if x < TARGETED_SHARE {
            Effect::Allow
        } else if x < TARGETED_SHARE + DENY_TARGETED_SHARE {
            Effect::Deny
        } else {
            let (action, t) = pick(rng, &vocabulary.actions);
            let (svc, kind, _) = TYPES[*t];
            out.push(Req {
                user: rng.usize(..USERS),
                action: action.clone(),
                resource: format!("{svc}:{kind}:id{}", rng.usize(..IDS)),
            });
            continue;
        };
        // A policy set without such a statement gets no targeted request of that kind.
        if let Some(req) =
            (0..10_000).find_map(|_| targeted(rng, wanted, population, vocabulary, &role_actions, policies))
        {
            out.push(req);
        }
    }
    out
}

/// A request that a random statement of the `wanted` effect matches, or `None` when the
/// statement drawn is of the other effect (or names a team without users).
fn targeted(
    rng: &mut fastrand::Rng,
    wanted: Effect,
    population: &Population,
    vocabulary: &Vocabulary,
    role_actions: &HashMap<&str, &[String]>,
    policies: &[(String, Policy)],
) -> Option<Req> {
    let (_, policy) = pick(rng, policies);
    let statement = pick(rng, &policy.statements);
    if statement.effect != wanted {
        return None;
    }
    let member = pick(rng, &policy.members);
    let user = match member.as_str() {
        "*" | "user:*" | "user:local:*" => rng.usize(..USERS),
        "team:*" | "team:local:*" => {
            let team = pick(rng, &population.team_users);
            *team.get(rng.usize(..team.len().max(1)))?
        }
        m if m.starts_with("team:") => {
            let t = population.teams.iter().position(|t| t == m)?;
            let team = &population.team_users[t];
            *team.get(rng.usize(..team.len().max(1)))?
        }
        m => population.users.iter().position(|u| u == m)?,
    };
    let mut patterns: Vec<&str> = statement.actions.iter().map(String::as_str).collect();
    if let Some(role) = statement.role.as_deref().and_then(|r| role_actions.get(r)) {
        patterns.extend(role.iter().map(String::as_str));
    }
    let pattern = *pick(rng, &patterns);
    let matching: Vec<&String> =
        vocabulary.actions.iter().map(|(a, _)| a).filter(|a| action_matches(pattern, a)).collect();
    let action = (*matching.get(rng.usize(..matching.len().max(1)))?).clone();
    let pattern: &String = pick(rng, &statement.resources);
    let resource = concrete_resource(rng, pattern);
    Some(Req { user, action, resource })
}

// ---------------------------------------------------------------------------------------------
// A linear reference of the engine's rules for IAM v2 (member, action, resource; every
// statement's tenants are `*` and no request names one, so: some ALLOW and no DENY).

fn member_matches(member: &str, subject: &str) -> bool {
    match member.strip_suffix('*') {
        Some(prefix) => (prefix.is_empty() || prefix.ends_with(':')) && subject.starts_with(prefix),
        None => member == subject,
    }
}

fn action_matches(pattern: &str, action: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let have: Vec<&str> = action.split(':').collect();
    let want: Vec<&str> = pattern.split(':').collect();
    match (want.as_slice(), have.as_slice()) {
        (["*", verb], [_, _, v]) => verb == v,
        ([service, "*"], [s, _, _]) => service == s,
        ([service, "*", verb], [s, _, v]) => service == s && verb == v,
        ([service, kind, "*"], [s, t, _]) => service == s && kind == t,
        _ => pattern == action,
    }
}

fn resource_matches(pattern: &str, resource: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    match pattern.strip_suffix('*') {
        Some(prefix) => resource.len() > prefix.len() && resource.starts_with(prefix),
        None => pattern == resource,
    }
}

/// The statements (policy id, index) that match, and the decision.
fn reference(
    policies: &[(String, Policy)],
    role_actions: &HashMap<&str, &[String]>,
    subjects: &[&str],
    action: &str,
    resource: &str,
) -> (bool, Vec<(String, usize)>) {
    let mut allow = false;
    let mut deny = false;
    let mut matched = Vec::new();
    for (id, policy) in policies {
        if !policy.members.iter().any(|m| subjects.iter().any(|s| member_matches(m, s))) {
            continue;
        }
        for (index, statement) in policy.statements.iter().enumerate() {
            let role = statement.role.as_deref().and_then(|r| role_actions.get(r)).copied().unwrap_or_default();
            let action_ok = statement.actions.iter().chain(role).any(|p| action_matches(p, action));
            if action_ok && statement.resources.iter().any(|p| resource_matches(p, resource)) {
                match statement.effect {
                    Effect::Allow => allow = true,
                    Effect::Deny => deny = true,
                }
                matched.push((id.clone(), index));
            }
        }
    }
    (allow && !deny, matched)
}

// ---------------------------------------------------------------------------------------------
// The same policy set in Cedar.

fn uid(kind: &str, id: &str) -> EntityUid {
    let kind = EntityTypeName::from_str(kind).expect("entity type name");
    EntityUid::from_type_name_and_id(kind, EntityId::new(id))
}

/// `User::"user:local:u1"`, `Team::"team:local:t1"`, a member wildcard as the group of its
/// prefix (`Group::"user:"`), `*` as no constraint (`None`).
fn cedar_member(member: &str) -> Option<String> {
    match member.strip_suffix('*') {
        Some("") => None,
        Some(prefix) => Some(format!("Group::\"{prefix}\"")),
        None if member.starts_with("team:") => Some(format!("Team::\"{member}\"")),
        None => Some(format!("User::\"{member}\"")),
    }
}

/// An action pattern or role as the action (group) it names; `*` as no constraint.
fn cedar_action(pattern: &str) -> Option<String> {
    (pattern != "*").then(|| format!("Action::\"{pattern}\""))
}

/// A resource pattern: exact, or the group of its `:*` prefix; `*` as no constraint.
fn cedar_resource(pattern: &str) -> Option<String> {
    match pattern.strip_suffix('*') {
        Some("") => None,
        Some(prefix) => Some(format!("Resource::\"{prefix}\"")),
        None => Some(format!("Resource::\"{pattern}\"")),
    }
}

/// Every target as a Cedar UID, or `None` when one of them is unconstrained.
fn all_or_none(targets: impl Iterator<Item = Option<String>>) -> Option<Vec<String>> {
    targets.collect()
}

/// One Cedar policy per statement: `permit` or `forbid`, its members, actions and resources
/// in the scope when there is one of each, else in `when { … in [..] }`.
fn cedar_policies(policies: &[(String, Policy)]) -> String {
    let mut text = String::new();
    for (id, policy) in policies {
        let members = all_or_none(policy.members.iter().map(|m| cedar_member(m)));
        for (index, statement) in policy.statements.iter().enumerate() {
            let effect = match statement.effect {
                Effect::Allow => "permit",
                Effect::Deny => "forbid",
            };
            let mut conditions = Vec::new();
            let principal = match &members {
                None => "principal".to_string(),
                Some(list) if list.len() == 1 => {
                    if list[0].starts_with("User::") {
                        format!("principal == {}", list[0])
                    } else {
                        format!("principal in {}", list[0])
                    }
                }
                Some(list) => {
                    conditions.push(format!("principal in [{}]", list.join(", ")));
                    "principal".to_string()
                }
            };
            let actions = all_or_none(
                statement
                    .actions
                    .iter()
                    .map(|a| cedar_action(a))
                    .chain(statement.role.iter().map(|r| Some(format!("Action::\"role:{r}\"")))),
            );
            let action = match actions {
                None => "action".to_string(),
                // A concrete action is a leaf: `==` says the same as `in`, and costs Cedar less.
                Some(list) if list.len() == 1 && statement.role.is_none() && !list[0].contains('*') => {
                    format!("action == {}", list[0])
                }
                Some(list) if list.len() == 1 => format!("action in {}", list[0]),
                Some(list) => format!("action in [{}]", list.join(", ")),
            };
            let resources = all_or_none(statement.resources.iter().map(|r| cedar_resource(r)));
            let resource = match resources {
                None => "resource".to_string(),
                Some(list) if list.len() == 1 && !statement.resources[0].ends_with('*') => {
                    format!("resource == {}", list[0])
                }
                Some(list) if list.len() == 1 => format!("resource in {}", list[0]),
                Some(list) => {
                    conditions.push(format!("resource in [{}]", list.join(", ")));
                    "resource".to_string()
                }
            };
            let _ = write!(text, "@id(\"{id}#{index}\")\n{effect} ({principal}, {action}, {resource})");
            if !conditions.is_empty() {
                let _ = write!(text, "\nwhen {{ {} }}", conditions.join(" && "));
            }
            text.push_str(";\n");
        }
    }
    text
}

fn group_uids(subject: &str) -> HashSet<EntityUid> {
    subject.bytes().enumerate().filter(|(_, b)| *b == b':').map(|(i, _)| uid("Group", &subject[..=i])).collect()
}

/// Users (parents: their teams and the groups of their member prefixes), teams (their
/// prefix groups), actions (every pattern form that matches them and every role holding
/// such a pattern), resources (their `svc:type:` and `svc:` groups).
fn cedar_entities(population: &Population, vocabulary: &Vocabulary, roles: &[(String, Role)]) -> Entities {
    let mut entities = Vec::new();
    let mut groups: HashSet<EntityUid> = HashSet::new();
    for (u, user) in population.users.iter().enumerate() {
        let mut parents = group_uids(user);
        groups.extend(parents.iter().cloned());
        parents.extend(population.user_teams[u].iter().map(|t| uid("Team", t)));
        entities.push(Entity::new_no_attrs(uid("User", user), parents));
    }
    for team in &population.teams {
        let parents = group_uids(team);
        groups.extend(parents.iter().cloned());
        entities.push(Entity::new_no_attrs(uid("Team", team), parents));
    }
    entities.extend(groups.into_iter().map(|g| Entity::new_no_attrs(g, HashSet::new())));
    let mut action_groups: HashSet<EntityUid> = HashSet::new();
    for (action, _) in &vocabulary.actions {
        let mut parts = action.split(':');
        let (Some(s), Some(t), Some(v)) = (parts.next(), parts.next(), parts.next()) else { continue };
        let mut parents: HashSet<EntityUid> =
            [format!("*:{v}"), format!("{s}:*"), format!("{s}:*:{v}"), format!("{s}:{t}:*")]
                .iter()
                .map(|p| uid("Action", p))
                .collect();
        for (id, role) in roles {
            if role.actions.iter().any(|p| action_matches(p, action)) {
                parents.insert(uid("Action", &format!("role:{id}")));
            }
        }
        action_groups.extend(parents.iter().cloned());
        entities.push(Entity::new_no_attrs(uid("Action", action), parents));
    }
    entities.extend(action_groups.into_iter().map(|g| Entity::new_no_attrs(g, HashSet::new())));
    let mut services = HashSet::new();
    for (svc, kind, _) in TYPES {
        let service = uid("Resource", &format!("{svc}:"));
        let kind_group = uid("Resource", &format!("{svc}:{kind}:"));
        if services.insert(service.clone()) {
            entities.push(Entity::new_no_attrs(service.clone(), HashSet::new()));
        }
        entities.push(Entity::new_no_attrs(kind_group.clone(), [service].into_iter().collect()));
        for i in 0..IDS {
            let resource = uid("Resource", &format!("{svc}:{kind}:id{i}"));
            entities.push(Entity::new_no_attrs(resource, [kind_group.clone()].into_iter().collect()));
        }
    }
    Entities::from_entities(entities, None).expect("entities")
}

// ---------------------------------------------------------------------------------------------
// Measurement.

unsafe extern "C" {
    /// glibc: give freed heap memory back to the kernel, so RSS growth is the new state's.
    fn malloc_trim(pad: usize) -> i32;
}

fn rss_bytes() -> u64 {
    // SAFETY: malloc_trim only walks glibc's own arenas.
    unsafe {
        malloc_trim(0);
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Busy CPU ticks of the machine (`/proc/stat`) and of this process (`/proc/self/stat`).
fn ticks() -> (u64, u64) {
    let machine = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            let line = s.lines().next()?.to_string();
            let fields: Vec<u64> = line.split_whitespace().skip(1).filter_map(|f| f.parse().ok()).collect();
            // user nice system idle iowait irq softirq steal: busy is all but idle and iowait.
            Some(fields.iter().take(8).enumerate().filter(|(i, _)| *i != 3 && *i != 4).map(|(_, v)| v).sum())
        })
        .unwrap_or(0);
    let own = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1.to_string();
            let fields: Vec<u64> = rest.split_whitespace().filter_map(|f| f.parse().ok()).collect();
            // After the command: state is not a number, so utime and stime are the 11th and 12th.
            Some(fields.get(10)? + fields.get(11)?)
        })
        .unwrap_or(0);
    (machine, own)
}

/// The cores other processes kept busy between two [`ticks`] readings (USER_HZ = 100).
fn other_cores(from: (u64, u64), to: (u64, u64), elapsed: Duration) -> f64 {
    let other = (to.0.saturating_sub(from.0)).saturating_sub(to.1.saturating_sub(from.1));
    other as f64 / 100.0 / elapsed.as_secs_f64()
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000_000, 3).expect("histogram")
}

struct Timing {
    hist: Histogram<u64>,
    total: Duration,
    count: usize,
}

impl Timing {
    fn throughput(&self) -> f64 {
        self.count as f64 / self.total.as_secs_f64()
    }

    fn q(&self, q: f64) -> u64 {
        self.hist.value_at_quantile(q)
    }

    /// `count | p50 | p99 | max` (µs), the cells every timing table ends with.
    fn cells(&self) -> String {
        format!("{} | {} | {} | {}", self.count, us(self.q(0.5)), us(self.q(0.99)), us(self.hist.max()))
    }
}

/// Nanoseconds, printed as µs with a precision that suits them.
fn us(ns: u64) -> String {
    let us = ns as f64 / 1000.0;
    if us < 10.0 {
        format!("{us:.2}")
    } else if us < 1000.0 {
        format!("{us:.1}")
    } else {
        format!("{us:.0}")
    }
}

fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 10.0 { format!("{ms:.2} ms") } else { format!("{ms:.0} ms") }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn rate(per_sec: f64) -> String {
    if per_sec >= 1e6 {
        format!("{:.2} M/s", per_sec / 1e6)
    } else if per_sec >= 1e3 {
        format!("{:.1} k/s", per_sec / 1e3)
    } else {
        format!("{per_sec:.0} /s")
    }
}

fn time_each<T>(items: &[T], mut f: impl FnMut(&T) -> bool, out: &mut Vec<bool>) -> Timing {
    let mut hist = histogram();
    out.clear();
    let start = Instant::now();
    for item in items {
        let t0 = Instant::now();
        let allowed = f(item);
        let t1 = Instant::now();
        hist.saturating_record((t1 - t0).as_nanos() as u64);
        out.push(black_box(allowed));
    }
    Timing { hist, total: start.elapsed(), count: items.len() }
}

fn build(roles: &[(String, Role)], policies: &[(String, Policy)]) -> Engine {
    let mut engine = Engine::new();
    for (id, role) in roles {
        engine.put_role(id, role);
    }
    for (id, policy) in policies {
        engine.put_policy(id, policy);
    }
    engine
}

// ---------------------------------------------------------------------------------------------
// Simulation: proposed changes in an overlay.

/// Times each overlay of one change is built, and each of the others.
const OVERLAY_ONES: usize = 1_000;
const OVERLAY_BUILDS: usize = 200;
/// Requests each `explain` decides.
const EXPLAINED: usize = 1_000;

/// One proposed change.
enum Change {
    Policy(String, Policy),
    Role(String, Role),
}

impl Change {
    fn apply(&self, feed: &mut impl Feed) {
        match self {
            Change::Policy(id, policy) => feed.put_policy(id, policy),
            Change::Role(id, role) => feed.put_role(id, role),
        }
    }
}

/// An overlay of `changes` over `engine`, built and dropped: what a simulation pays first.
fn overlay_build(engine: &Engine, changes: &[&Change]) -> bool {
    let mut overlay = Overlay::new(engine);
    for change in changes {
        change.apply(&mut overlay);
    }
    black_box(&overlay);
    true
}

/// `role` with one more pattern.
fn widened(role: &Role) -> Role {
    let mut role = role.clone();
    role.actions.push("event:feeds:get".to_string());
    role
}

/// Replaces the item of id `id` in `list`, or adds it.
fn upsert<T>(list: &mut Vec<(String, T)>, id: &str, value: T) {
    match list.iter_mut().find(|(i, _)| i == id) {
        Some(item) => item.1 = value,
        None => list.push((id.to_string(), value)),
    }
}

fn request<'a>(population: &'a Population, context: &'a iamd_engine::Context, r: &'a Req) -> Request<'a> {
    Request {
        subject: &population.users[r.user],
        teams: &population.user_teams[r.user],
        action: &r.action,
        resource: &r.resource,
        tenant: None,
        organization: None,
        context,
    }
}

/// One round of each not timed, then `rounds` rounds of `base` and of `overlay` in turn, each
/// call timed alone; for each, the round with the median p50.
fn paired_rounds<T>(
    items: &[T],
    rounds: usize,
    mut base: impl FnMut(&T) -> bool,
    mut overlay: impl FnMut(&T) -> bool,
) -> (Timing, Timing) {
    let mut sink = Vec::new();
    time_each(items, &mut base, &mut sink);
    time_each(items, &mut overlay, &mut sink);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..rounds.max(1) {
        a.push(time_each(items, &mut base, &mut sink));
        b.push(time_each(items, &mut overlay, &mut sink));
    }
    (median_round(a), median_round(b))
}

fn median_round(mut rounds: Vec<Timing>) -> Timing {
    rounds.sort_by_key(|t| t.q(0.5));
    rounds.swap_remove(rounds.len() / 2)
}

struct Args {
    sizes: Vec<usize>,
    requests: usize,
    cedar: BTreeMap<usize, usize>,
    changes: usize,
    /// Changes in a simulation's overlay; 0 skips the step.
    simulate: usize,
    seed: u64,
    reference: usize,
    extra_passes: usize,
    rounds: usize,
    /// A folder to write each size's Cedar policy set to, for reading.
    dump_cedar: Option<String>,
}

fn parse_list(text: &str) -> Vec<usize> {
    text.split(',').filter(|s| !s.is_empty()).map(|s| s.trim().replace('_', "").parse().expect("a number")).collect()
}

fn args() -> Args {
    let mut args = Args {
        sizes: vec![50, 1_000, 10_000, 100_000],
        requests: 10_000,
        cedar: [(50, 10_000), (1_000, 10_000), (10_000, 1_000)].into_iter().collect(),
        changes: 1_000,
        simulate: 100,
        seed: 2026,
        reference: 20_000_000,
        extra_passes: 0,
        rounds: 5,
        dump_cedar: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} wants a value"));
        match flag.as_str() {
            "--sizes" => args.sizes = parse_list(&value),
            "--requests" => args.requests = value.parse().expect("--requests N"),
            "--cedar" if value == "none" => args.cedar.clear(),
            "--cedar" => {
                args.cedar = value
                    .split(',')
                    .map(|pair| {
                        let (size, count) = pair.split_once(':').expect("--cedar size:requests,…");
                        (size.parse().expect("a size"), count.parse().expect("a request count"))
                    })
                    .collect();
            }
            "--changes" => args.changes = value.parse().expect("--changes N"),
            "--simulate" => args.simulate = value.parse().expect("--simulate N"),
            "--seed" => args.seed = value.parse().expect("--seed N"),
            "--reference" => args.reference = value.parse().expect("--reference N"),
            "--extra-passes" => args.extra_passes = value.parse().expect("--extra-passes N"),
            "--rounds" => args.rounds = value.parse().expect("--rounds N"),
            "--dump-cedar" => args.dump_cedar = Some(value),
            _ => panic!(
                "unknown flag {flag}; flags: --sizes --requests --cedar --changes --simulate --seed --reference --extra-passes --rounds --dump-cedar"
            ),
        }
    }
    args
}

struct Row {
    size: usize,
    policies: usize,
    build: Duration,
    rss: u64,
    allowed: usize,
    requests: usize,
    iamd: Timing,
    /// Agreeing, sampled, how many of those a DENY matched, and of those an ALLOW too.
    reference: (usize, usize, usize, usize),
    round_p50s: Vec<u64>,
    /// Cores other processes kept busy during the build and the rounds.
    other_load: f64,
    cedar: Option<CedarRow>,
}

struct CedarRow {
    parse: Duration,
    rss: u64,
    timing: Timing,
    agree: usize,
    errors: usize,
}

struct SimulationRow {
    size: usize,
    /// What the overlay holds, the base policies its role changes move into its delta, and
    /// its builds.
    builds: Vec<(String, usize, Timing)>,
    /// The `Engine` built at once with the changes, for the agreement.
    fresh_build: Duration,
    /// The engine's and the overlay's.
    check: (Timing, Timing),
    explain: (Timing, Timing),
    agree: usize,
    /// Cores other processes kept busy during the step.
    other_load: f64,
}

struct ChangeRow {
    size: usize,
    replace: Timing,
    add: Timing,
    remove: Timing,
    role: Timing,
}

fn main() {
    let args = args();
    let idle_from = (ticks(), Instant::now());
    std::thread::sleep(Duration::from_secs(1));
    let before_run = other_cores(idle_from.0, ticks(), idle_from.1.elapsed());
    let run_from = ticks();
    let total = Instant::now();
    let mut rng = fastrand::Rng::with_seed(args.seed);
    let vocabulary = Vocabulary::new();
    let population = Population::new(&mut rng);
    let roles = roles(&mut rng);
    let role_actions: HashMap<&str, &[String]> =
        roles.iter().map(|(id, r)| (id.as_str(), r.actions.as_slice())).collect();
    let context = iamd_engine::Context::new();

    // What the timer itself costs: two `Instant::now()` around nothing.
    let mut nothing = Vec::new();
    let timer = time_each(&[(); 100_000], |_| true, &mut nothing);

    let cedar_entities = (!args.cedar.is_empty()).then(|| cedar_entities(&population, &vocabulary, &roles));
    let authorizer = Authorizer::new();

    let mut rows = Vec::new();
    let mut changes = Vec::new();
    let mut simulations = Vec::new();
    let mut first_disagreement: Option<String> = None;
    for &size in &args.sizes {
        let mut rng = fastrand::Rng::with_seed(args.seed ^ (size as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut policies = policies(&mut rng, &population, &roles, size);
        let reqs = requests(&mut rng, args.requests, &population, &vocabulary, &roles, &policies);
        eprintln!("size {size}: {} policies, {} requests", policies.len(), reqs.len());

        let size_from = (ticks(), Instant::now());
        let before = rss_bytes();
        let t = Instant::now();
        let mut engine = build(&roles, &policies);
        let build_time = t.elapsed();
        let rss = rss_bytes().saturating_sub(before);
        assert_eq!(engine.len(), size);
        eprintln!("  iamd build {} , RSS +{}", ms(build_time), mib(rss));

        let check = |r: &Req| {
            let request = Request {
                subject: &population.users[r.user],
                teams: &population.user_teams[r.user],
                action: &r.action,
                resource: &r.resource,
                tenant: None,
                organization: None,
                context: &context,
            };
            engine.check(&request).allowed
        };
        let mut decisions = Vec::new();
        time_each(&reqs, check, &mut decisions); // warm-up, not kept
        let mut rounds: Vec<Timing> =
            (0..args.rounds.max(1)).map(|_| time_each(&reqs, check, &mut decisions)).collect();
        rounds.sort_by_key(|t| t.q(0.5));
        let round_p50s: Vec<u64> = rounds.iter().map(|t| t.q(0.5)).collect();
        let iamd = rounds.swap_remove(rounds.len() / 2);
        let other_load = other_cores(size_from.0, ticks(), size_from.1.elapsed());
        for _ in 0..args.extra_passes {
            for r in &reqs {
                black_box(check(r));
            }
        }
        let allowed = decisions.iter().filter(|d| **d).count();
        eprintln!("  iamd p50 {} µs, p99 {} µs, {}", us(iamd.q(0.5)), us(iamd.q(0.99)), rate(iamd.throughput()));

        // The linear reference, on as many requests as its budget allows.
        let sample = (args.reference / size.max(1)).clamp(1, reqs.len());
        let mut agree = 0;
        let mut matches = 0;
        let mut denied = 0;
        let mut overridden = 0;
        for (r, &decided) in reqs.iter().zip(&decisions).take(sample) {
            let mut subjects: Vec<&str> = vec![&population.users[r.user]];
            subjects.extend(population.user_teams[r.user].iter().map(String::as_str));
            let (expected, matched) = reference(&policies, &role_actions, &subjects, &r.action, &r.resource);
            matches += matched.len();
            let effect_of = |(id, index): &(String, usize)| {
                policies.iter().find(|(p, _)| p == id).map(|(_, p)| p.statements[*index].effect)
            };
            if matched.iter().any(|m| effect_of(m) == Some(Effect::Deny)) {
                denied += 1;
                if matched.iter().any(|m| effect_of(m) == Some(Effect::Allow)) {
                    overridden += 1;
                }
            }
            if expected == decided {
                agree += 1;
            } else if first_disagreement.is_none() {
                first_disagreement = Some(format!(
                    "size {size}: reference {expected}, iamd {decided} for {subjects:?} {} {}; matching statements {matched:?}",
                    r.action, r.resource
                ));
            }
        }
        eprintln!(
            "  reference agrees on {agree} of {sample}; {:.2} matching statements per request",
            matches as f64 / sample as f64
        );

        let cedar = match (args.cedar.get(&size), &cedar_entities) {
            (Some(&count), Some(entities)) => {
                let count = count.min(reqs.len());
                let before = rss_bytes();
                let t = Instant::now();
                let text = cedar_policies(&policies);
                if let Some(dir) = &args.dump_cedar {
                    let path = std::path::Path::new(dir).join(format!("cedar-{size}.cedar"));
                    std::fs::write(&path, &text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                }
                let set = PolicySet::from_str(&text).unwrap_or_else(|e| panic!("cedar policies: {e:?}"));
                let parse = t.elapsed();
                drop(text);
                let rss = rss_bytes().saturating_sub(before);
                assert_eq!(set.policies().count(), size);
                let cedar_reqs: Vec<cedar_policy::Request> = reqs[..count]
                    .iter()
                    .map(|r| {
                        cedar_policy::Request::new(
                            uid("User", &population.users[r.user]),
                            uid("Action", &r.action),
                            uid("Resource", &r.resource),
                            Context::empty(),
                            None,
                        )
                        .expect("cedar request")
                    })
                    .collect();
                let mut errors = 0;
                let mut cedar_decisions = Vec::new();
                let warm = count.min(100);
                time_each(
                    &cedar_reqs[..warm],
                    |r| authorizer.is_authorized(r, &set, entities).decision() == cedar_policy::Decision::Allow,
                    &mut cedar_decisions,
                );
                let timing = time_each(
                    &cedar_reqs,
                    |r| {
                        let response = authorizer.is_authorized(r, &set, entities);
                        errors += response.diagnostics().errors().count();
                        response.decision() == cedar_policy::Decision::Allow
                    },
                    &mut cedar_decisions,
                );
                let mut agree = 0;
                for (i, (c, d)) in cedar_decisions.iter().zip(&decisions).enumerate() {
                    if c == d {
                        agree += 1;
                    } else if first_disagreement.is_none() {
                        let r = &reqs[i];
                        first_disagreement = Some(format!(
                            "size {size}: Cedar {c}, iamd {d} for {} {:?} {} {}",
                            population.users[r.user], population.user_teams[r.user], r.action, r.resource
                        ));
                    }
                }
                eprintln!(
                    "  cedar ({count} requests) p50 {} µs, p99 {} µs, {}, agree {agree}/{count}",
                    us(timing.q(0.5)),
                    us(timing.q(0.99)),
                    rate(timing.throughput())
                );
                Some(CedarRow { parse, rss, timing, agree, errors })
            }
            _ => None,
        };

        let mut held_roles = roles.clone();
        if args.changes > 0 {
            let fresh: Vec<Policy> = (0..args.changes * 2)
                .map(|_| {
                    let n = 1 + rng.usize(..4);
                    policy(&mut rng, &population, &roles, n, 0.0)
                })
                .collect();
            let targets: Vec<usize> = (0..args.changes).map(|_| rng.usize(..policies.len())).collect();
            let mut sink = Vec::new();
            let items: Vec<(usize, &Policy)> = targets.iter().copied().zip(&fresh[..args.changes]).collect();
            let replace = time_each(
                &items,
                |(target, policy)| {
                    engine.put_policy(&policies[*target].0, policy);
                    true
                },
                &mut sink,
            );
            let new_ids: Vec<(String, &Policy)> =
                fresh[args.changes..].iter().enumerate().map(|(i, p)| (format!("new{i}"), p)).collect();
            let add = time_each(
                &new_ids,
                |(id, policy)| {
                    engine.put_policy(id, policy);
                    true
                },
                &mut sink,
            );
            let remove = time_each(
                &new_ids,
                |(id, _)| {
                    engine.remove_policy(id);
                    true
                },
                &mut sink,
            );
            let role_changes: Vec<(String, Role)> = (0..args.changes)
                .map(|i| {
                    let (id, role) = &roles[i % roles.len()];
                    let mut role = role.clone();
                    // Alternate between the role with one more pattern and the role itself.
                    if (i / roles.len()).is_multiple_of(2) {
                        role.actions.push("event:feeds:get".to_string());
                    }
                    (id.clone(), role)
                })
                .collect();
            let role = time_each(
                &role_changes,
                |(id, role)| {
                    engine.put_role(id, role);
                    true
                },
                &mut sink,
            );
            eprintln!(
                "  changes: replace p50 {} µs, add {} µs, remove {} µs, role {} µs",
                us(replace.q(0.5)),
                us(add.q(0.5)),
                us(remove.q(0.5)),
                us(role.q(0.5))
            );
            changes.push(ChangeRow { size, replace, add, remove, role });
            // What the engine now holds, for the simulation's fresh engine.
            for (target, policy) in items {
                policies[target].1 = policy.clone();
            }
            for (id, role) in role_changes {
                upsert(&mut held_roles, &id, role);
            }
        }

        if args.simulate > 0 {
            let step_from = (ticks(), Instant::now());
            let proposed: Vec<Change> = (0..args.simulate)
                .map(|i| {
                    if i % 50 == 49 {
                        let (id, role) = pick(&mut rng, &held_roles);
                        return Change::Role(id.clone(), widened(role));
                    }
                    let id = if i % 2 == 0 { pick(&mut rng, &policies).0.clone() } else { format!("sim{i}") };
                    let n = 1 + rng.usize(..4);
                    Change::Policy(id, policy(&mut rng, &population, &roles, n, 0.0))
                })
                .collect();
            let names = |p: &Policy, roles: &[&str]| {
                p.statements.iter().any(|s| s.role.as_deref().is_some_and(|r| roles.contains(&r)))
            };
            let moved = |roles: &[&str]| policies.iter().filter(|(_, p)| names(p, roles)).count();
            let Some((top, top_role)) = held_roles.iter().max_by_key(|(id, _)| moved(&[id.as_str()])) else {
                panic!("no roles");
            };
            let top_change = Change::Role(top.clone(), widened(top_role));
            let all: Vec<&Change> = proposed.iter().collect();
            let puts: Vec<&Change> = all.iter().copied().filter(|c| matches!(c, Change::Policy(..))).collect();
            let changed_roles: Vec<&str> = proposed
                .iter()
                .filter_map(|c| match c {
                    Change::Role(id, _) => Some(id.as_str()),
                    Change::Policy(..) => None,
                })
                .collect();
            let ones: Vec<&Change> = puts.iter().copied().cycle().take(OVERLAY_ONES).collect();
            let mut sink = Vec::new();
            overlay_build(&engine, &all); // warm-up, not kept
            let repeat = [(); OVERLAY_BUILDS];
            let builds = vec![
                ("1 put_policy".to_string(), 0, time_each(&ones, |c| overlay_build(&engine, &[*c]), &mut sink)),
                (
                    format!("{} put_policy", puts.len()),
                    0,
                    time_each(&repeat, |_| overlay_build(&engine, &puts), &mut sink),
                ),
                (
                    format!("{} changes: those and {} put_role", all.len(), changed_roles.len()),
                    moved(&changed_roles),
                    time_each(&repeat, |_| overlay_build(&engine, &all), &mut sink),
                ),
                (
                    format!("1 put_role of `{top}`, the role most policies name"),
                    moved(&[top.as_str()]),
                    time_each(&repeat, |_| overlay_build(&engine, &[&top_change]), &mut sink),
                ),
            ];

            let (mut after_policies, mut after_roles) = (policies.clone(), held_roles.clone());
            for change in &proposed {
                match change {
                    Change::Policy(id, policy) => upsert(&mut after_policies, id, policy.clone()),
                    Change::Role(id, role) => upsert(&mut after_roles, id, role.clone()),
                }
            }
            let t = Instant::now();
            let fresh = build(&after_roles, &after_policies);
            let fresh_build = t.elapsed();

            let mut overlay = Overlay::new(&engine);
            for change in &proposed {
                change.apply(&mut overlay);
            }
            let check = paired_rounds(
                &reqs,
                args.rounds,
                |r| engine.check(&request(&population, &context, r)).allowed,
                |r| overlay.check(&request(&population, &context, r)).allowed,
            );
            let explain = paired_rounds(
                &reqs[..reqs.len().min(EXPLAINED)],
                args.rounds,
                |r| engine.explain(&request(&population, &context, r)).decision.allowed,
                |r| overlay.explain(&request(&population, &context, r)).decision.allowed,
            );
            let mut agree = 0;
            for r in &reqs {
                let q = request(&population, &context, r);
                let (simulated, built) = (overlay.check(&q), fresh.check(&q));
                if simulated == built {
                    agree += 1;
                } else if first_disagreement.is_none() {
                    first_disagreement = Some(format!(
                        "size {size}: overlay {simulated:?}, fresh engine {built:?} for {} {} {}",
                        q.subject, q.action, q.resource
                    ));
                }
            }
            eprintln!(
                "  simulation: overlay of {} built p50 {} µs; check p50 {} µs (engine {} µs); agree {agree}/{}",
                all.len(),
                us(builds[2].2.q(0.5)),
                us(check.1.q(0.5)),
                us(check.0.q(0.5)),
                reqs.len()
            );
            let other_load = other_cores(step_from.0, ticks(), step_from.1.elapsed());
            simulations.push(SimulationRow { size, builds, fresh_build, check, explain, agree, other_load });
        }
        drop(engine);
        rows.push(Row {
            size,
            policies: policies.len(),
            build: build_time,
            rss,
            allowed,
            requests: reqs.len(),
            iamd,
            reference: (agree, sample, denied, overridden),
            round_p50s,
            other_load,
            cedar,
        });
    }

    let load = (before_run, other_cores(run_from, ticks(), total.elapsed()));
    print_report(&args, &rows, &changes, &simulations, &timer, load, first_disagreement.as_deref(), total.elapsed());
}

// One table after another, each from its own rows.
#[allow(clippy::too_many_arguments)]
fn print_report(
    args: &Args,
    rows: &[Row],
    changes: &[ChangeRow],
    simulations: &[SimulationRow],
    timer: &Timing,
    load: (f64, f64),
    disagreement: Option<&str>,
    total: Duration,
) {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Seed {}; {} requests per size; {USERS} users, {TEAMS} teams, 20 roles, {} actions over {} types × {IDS} ids. \
         The timer alone (two `Instant::now()`): p50 {} ns, p99 {} ns. Total run {:.0} s. \
         Other processes kept {:.2} cores busy in the second before the run and {:.2} during it.\n",
        args.seed,
        args.requests,
        Vocabulary::new().actions.len(),
        TYPES.len(),
        timer.q(0.5),
        timer.q(0.99),
        total.as_secs_f64(),
        load.0,
        load.1
    );
    let _ = writeln!(
        out,
        "| statements | policies | iamd build | iamd RSS | allowed | iamd p50 µs | p99 µs | p99.9 µs | max µs | iamd throughput | \
         Cedar requests | Cedar p50 µs | Cedar p99 µs | Cedar throughput | iamd / Cedar | agree with Cedar | agree with reference |"
    );
    let _ = writeln!(out, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        let allowed = format!("{:.1} %", 100.0 * row.allowed as f64 / row.requests as f64);
        let (cedar_n, cp50, cp99, ctp, ratio, agree) = match &row.cedar {
            Some(c) => (
                c.timing.count.to_string(),
                us(c.timing.q(0.5)),
                us(c.timing.q(0.99)),
                rate(c.timing.throughput()),
                format!("{:.0}×", row.iamd.throughput() / c.timing.throughput()),
                format!("{} / {}", c.agree, c.timing.count),
            ),
            None => ("skipped".into(), "–".into(), "–".into(), "–".into(), "–".into(), "–".into()),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {allowed} | {} | {} | {} | {} | {} | {cedar_n} | {cp50} | {cp99} | {ctp} | {ratio} | {agree} | {} / {} ({} with a DENY, {} of them over an ALLOW) |",
            row.size,
            row.policies,
            ms(row.build),
            mib(row.rss),
            us(row.iamd.q(0.5)),
            us(row.iamd.q(0.99)),
            us(row.iamd.q(0.999)),
            us(row.iamd.hist.max()),
            rate(row.iamd.throughput()),
            row.reference.0,
            row.reference.1,
            row.reference.2,
            row.reference.3,
        );
    }
    let cedar_plan: Vec<String> = rows
        .iter()
        .map(|r| match &r.cedar {
            Some(c) => format!("{} requests at {}", c.timing.count, r.size),
            None => format!("skipped at {}", r.size),
        })
        .collect();
    let _ = writeln!(
        out,
        "\nCedar evaluates every policy for every request, so it decides fewer requests at the larger sizes \
         (the first ones of the same list): {}.",
        cedar_plan.join(", ")
    );
    let _ = writeln!(
        out,
        "\niamd's columns are the median of {} rounds by p50 (each round every request once, after one \
         round not timed). p50 of each round, µs:\n",
        args.rounds.max(1)
    );
    for row in rows {
        let p50s: Vec<String> = row.round_p50s.iter().map(|&ns| us(ns)).collect();
        let _ = writeln!(
            out,
            "- {} statements: {} (other processes kept {:.2} cores busy over the build and the rounds)",
            row.size,
            p50s.join(", "),
            row.other_load
        );
    }
    if rows.iter().any(|r| r.cedar.is_some()) {
        let _ = writeln!(out, "\n| statements | Cedar policy set parse | its RSS | Cedar errors |");
        let _ = writeln!(out, "|---:|---:|---:|---:|");
        for row in rows {
            if let Some(c) = &row.cedar {
                let _ = writeln!(out, "| {} | {} | {} | {} |", row.size, ms(c.parse), mib(c.rss), c.errors);
            }
        }
    }
    if !changes.is_empty() {
        let _ = writeln!(
            out,
            "\n| statements | change | count | p50 µs | p99 µs | max µs |\n|---:|---|---:|---:|---:|---:|"
        );
        for c in changes {
            for (name, t) in [
                ("put_policy replacing one", &c.replace),
                ("put_policy of a new id", &c.add),
                ("remove_policy", &c.remove),
                ("put_role replacing one", &c.role),
            ] {
                let _ = writeln!(out, "| {} | {name} | {} |", c.size, t.cells());
            }
        }
    }
    if !simulations.is_empty() {
        let _ = writeln!(
            out,
            "\n| statements | overlay of | base policies moved into its delta | builds | p50 µs | p99 µs | max µs |\n\
             |---:|---|---:|---:|---:|---:|---:|"
        );
        for s in simulations {
            for (what, moved, t) in &s.builds {
                let _ = writeln!(out, "| {} | {what} | {moved} | {} |", s.size, t.cells());
            }
            let _ = writeln!(
                out,
                "| {} | (an `Engine` built at once with the changes) | – | 1 | {} | – | – |",
                s.size,
                us(s.fresh_build.as_nanos() as u64)
            );
        }
        let _ = writeln!(
            out,
            "\n| statements | call | requests | engine p50 µs | engine p99 µs | overlay p50 µs | overlay p99 µs | \
             overlay / engine p50 | overlay / engine p99 | agree with the engine built with the changes |\n\
             |---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        let ratio = |a: u64, b: u64| format!("{:.2}×", a as f64 / b as f64);
        for s in simulations {
            for (call, (base, overlay), agree) in [
                ("check", &s.check, format!("{} / {}", s.agree, s.check.0.count)),
                ("explain", &s.explain, "–".to_string()),
            ] {
                let _ = writeln!(
                    out,
                    "| {} | {call} | {} | {} | {} | {} | {} | {} | {} | {agree} |",
                    s.size,
                    base.count,
                    us(base.q(0.5)),
                    us(base.q(0.99)),
                    us(overlay.q(0.5)),
                    us(overlay.q(0.99)),
                    ratio(overlay.q(0.5), base.q(0.5)),
                    ratio(overlay.q(0.99), base.q(0.99))
                );
            }
        }
        let loads: Vec<String> = simulations.iter().map(|s| format!("{:.2} at {}", s.other_load, s.size)).collect();
        let _ = writeln!(
            out,
            "\nThe median of {} rounds by p50 for each call, the engine's and the overlay's in turn. \
             Other processes kept these cores busy over the step: {}.",
            args.rounds.max(1),
            loads.join(", ")
        );
    }
    match disagreement {
        Some(d) => {
            let _ = writeln!(out, "\nFirst disagreement: {d}");
        }
        None => {
            let _ = writeln!(
                out,
                "\nNo disagreement: iamd, Cedar and the reference decided every request they shared alike."
            );
        }
    }
    print!("{out}");
}
