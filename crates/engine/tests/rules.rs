//! The decision rules (lib.rs, A.7, Part B §2.5–§2.8), one hand-written case at a time: a small
//! state, one check, and the decision (and, where it says more, the reasons and near misses)
//! that the rules call for.
//!
//! Each `#[test]` is a table of cases on one topic; it runs every case and reports every one
//! that fails, by name.

use std::collections::BTreeSet;
use std::sync::Arc;

use iamd_engine::{
    Assignment, Condition, Context, Criterion, Definition, Effect, Engine, Feed, MAX_NEAR_MISSES, Match, NearMiss,
    Operator, OrgAction, OrgPolicy, OrgRole, Policy, Quantifier, Request, Role, Source, Statement, Test, Value,
};

// ---------------------------------------------------------------------------------------------
// Building states and checks.
// ---------------------------------------------------------------------------------------------

/// One change to an engine.
#[derive(Clone, Debug)]
enum Op {
    Policy(&'static str, Policy),
    RemovePolicy(&'static str),
    Role(&'static str, Role),
    RemoveRole(&'static str),
    OrgPolicy(&'static str, OrgPolicy),
    RemoveOrgPolicy(&'static str),
    OrgRole(&'static str, OrgRole),
    RemoveOrgRole(&'static str),
    Assignment(&'static str, Assignment),
    RemoveAssignment(&'static str),
    Team(&'static str, Vec<String>),
    RemoveTeam(&'static str),
}

impl Op {
    fn apply(&self, engine: &mut Engine) {
        match self {
            Op::Policy(id, p) => engine.put_policy(id, p),
            Op::RemovePolicy(id) => engine.remove_policy(id),
            Op::Role(id, r) => engine.put_role(id, r),
            Op::RemoveRole(id) => engine.remove_role(id),
            Op::OrgPolicy(id, p) => engine.put_org_policy(id, p),
            Op::RemoveOrgPolicy(id) => engine.remove_org_policy(id),
            Op::OrgRole(id, r) => engine.put_org_role(id, r),
            Op::RemoveOrgRole(id) => engine.remove_org_role(id),
            Op::Assignment(id, a) => engine.put_assignment(id, a),
            Op::RemoveAssignment(id) => engine.remove_assignment(id),
            Op::Team(team, members) => engine.put_team(team, members),
            Op::RemoveTeam(team) => engine.remove_team(team),
        }
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn statement(effect: Effect, actions: &[&str], resources: &[&str], tenants: &[&str]) -> Statement {
    Statement {
        effect,
        actions: strings(actions),
        role: None,
        resources: strings(resources),
        tenants: strings(tenants),
        conditions: Vec::new(),
    }
}

fn allow(actions: &[&str], resources: &[&str], tenants: &[&str]) -> Statement {
    statement(Effect::Allow, actions, resources, tenants)
}

fn deny(actions: &[&str], resources: &[&str], tenants: &[&str]) -> Statement {
    statement(Effect::Deny, actions, resources, tenants)
}

fn with_role(mut statement: Statement, role: &str) -> Statement {
    statement.role = Some(role.into());
    statement
}

fn with_conditions(mut statement: Statement, conditions: Vec<Condition>) -> Statement {
    statement.conditions = conditions;
    statement
}

/// An IAM v2 policy `id` of these members and statements.
fn iam(id: &'static str, members: &[&str], statements: Vec<Statement>) -> Op {
    Op::Policy(id, Policy { members: strings(members), statements })
}

fn role(id: &'static str, actions: &[&str]) -> Op {
    Op::Role(id, Role { actions: strings(actions) })
}

fn definition(effect: Effect, actions: &[OrgAction], resources: &[&str], conditions: Vec<Condition>) -> Definition {
    Definition { effect, actions: actions.to_vec(), resources: strings(resources), conditions }
}

fn org_allow(actions: &[OrgAction], resources: &[&str]) -> Definition {
    definition(Effect::Allow, actions, resources, Vec::new())
}

fn org_deny(actions: &[OrgAction], resources: &[&str]) -> Definition {
    definition(Effect::Deny, actions, resources, Vec::new())
}

fn org_policy(id: &'static str, organization: &str, definitions: Vec<Definition>) -> Op {
    Op::OrgPolicy(id, OrgPolicy { organization: organization.into(), definitions })
}

fn org_role(id: &'static str, organization: &str, policies: &[&str]) -> Op {
    Op::OrgRole(id, OrgRole { organization: organization.into(), policies: strings(policies) })
}

fn assign(id: &'static str, organization: &str, principal: &str, roles: &[&str], policies: &[&str]) -> Op {
    Op::Assignment(
        id,
        Assignment {
            organization: organization.into(),
            principal: principal.into(),
            roles: strings(roles),
            policies: strings(policies),
        },
    )
}

/// Team `team` of these members.
fn team(team: &'static str, members: &[&str]) -> Op {
    Op::Team(team, strings(members))
}

fn test(operator: Operator, key: &str, value: &str) -> Test {
    Test { operator, key: key.into(), value: value.into() }
}

fn all(tests: Vec<Test>) -> Condition {
    Condition { quantifier: Quantifier::All, tests }
}

fn any(tests: Vec<Test>) -> Condition {
    Condition { quantifier: Quantifier::Any, tests }
}

fn text(value: &str) -> Value {
    Value::String(value.into())
}

const ALICE: &str = "user:local:alice";
const ALL: &[OrgAction] = &[OrgAction::Any];

/// A check: by default alice asks `iam:users:get` on `iam:users:alice` in tenant `t1`.
#[derive(Clone, Debug)]
struct Check {
    subject: &'static str,
    teams: Vec<String>,
    action: &'static str,
    resource: &'static str,
    tenant: Option<&'static str>,
    organization: Option<&'static str>,
    context: Context,
}

fn check(subject: &'static str, action: &'static str, resource: &'static str) -> Check {
    Check {
        subject,
        teams: Vec::new(),
        action,
        resource,
        tenant: Some("t1"),
        organization: None,
        context: Context::new(),
    }
}

/// alice's `iam:users:get` on `iam:users:alice` in `t1`.
fn get() -> Check {
    check(ALICE, "iam:users:get", "iam:users:alice")
}

/// alice's organization check: `action` on `path` in `o1`.
fn org_check(action: &'static str, path: &'static str) -> Check {
    check(ALICE, action, path).org(Some("o1"))
}

impl Check {
    fn tenant(mut self, tenant: Option<&'static str>) -> Check {
        self.tenant = tenant;
        self
    }

    fn org(mut self, organization: Option<&'static str>) -> Check {
        self.organization = organization;
        self
    }

    fn teams(mut self, teams: &[&str]) -> Check {
        self.teams = strings(teams);
        self
    }

    fn with(mut self, key: &str, value: Value) -> Check {
        self.context.insert(key.into(), value);
        self
    }

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

fn iam_at(policy: &str, statement: usize, effect: Effect) -> Match {
    Match { policy: Arc::from(policy), statement, source: Source::Iam, effect }
}

fn org_at(policy: &str, statement: usize, organization: &str, effect: Effect) -> Match {
    Match { policy: Arc::from(policy), statement, source: Source::Organization(Arc::from(organization)), effect }
}

fn near(statement: Match, failed: Criterion) -> NearMiss {
    NearMiss { statement, failed }
}

/// One row of a table.
struct Case {
    name: String,
    ops: Vec<Op>,
    check: Check,
    allowed: bool,
    reasons: Option<Vec<Match>>,
    matches: Option<Vec<Match>>,
    near_misses: Option<Vec<NearMiss>>,
}

fn case(name: impl Into<String>, ops: Vec<Op>, check: Check, allowed: bool) -> Case {
    Case { name: name.into(), ops, check, allowed, reasons: None, matches: None, near_misses: None }
}

impl Case {
    fn reasons(mut self, reasons: Vec<Match>) -> Case {
        self.reasons = Some(reasons);
        self
    }

    fn matches(mut self, matches: Vec<Match>) -> Case {
        self.matches = Some(matches);
        self
    }

    fn near_misses(mut self, near_misses: Vec<NearMiss>) -> Case {
        self.near_misses = Some(near_misses);
        self
    }
}

/// Runs every case and fails with all that went wrong.
fn run(cases: Vec<Case>) {
    let mut failures = Vec::new();
    for case in &cases {
        let mut engine = Engine::new();
        for op in &case.ops {
            op.apply(&mut engine);
        }
        let request = case.check.request();
        let decision = engine.check(&request);
        let explanation = engine.explain(&request);
        let mut wrong = Vec::new();
        if decision.allowed != case.allowed {
            wrong.push(format!("allowed: got {}, want {}", decision.allowed, case.allowed));
        }
        if let Some(reasons) = &case.reasons
            && decision.reasons != *reasons
        {
            wrong.push(format!("reasons: got {:?}, want {reasons:?}", decision.reasons));
        }
        if explanation.decision != decision {
            wrong.push(format!("explain().decision {:?} differs from check() {decision:?}", explanation.decision));
        }
        if let Some(matches) = &case.matches
            && explanation.matches != *matches
        {
            wrong.push(format!("matches: got {:?}, want {matches:?}", explanation.matches));
        }
        if let Some(near_misses) = &case.near_misses
            && explanation.near_misses != *near_misses
        {
            wrong.push(format!("near misses: got {:?}, want {near_misses:?}", explanation.near_misses));
        }
        if !wrong.is_empty() {
            failures.push(format!("- {}:\n    {}", case.name, wrong.join("\n    ")));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

use Effect::{Allow, Deny};

// ---------------------------------------------------------------------------------------------
// Default deny, allow, deny.
// ---------------------------------------------------------------------------------------------

#[test]
fn deny_by_default_allow_grants_and_deny_overrides() {
    let grant = || iam("p1", &[ALICE], vec![allow(&["iam:users:get"], &["iam:users:alice"], &["t1"])]);
    run(vec![
        case("nothing stored: denied", vec![], get(), false).reasons(vec![]).matches(vec![]).near_misses(vec![]),
        case("nothing stored, no tenant: denied", vec![], get().tenant(None), false).reasons(vec![]),
        case("a matching ALLOW grants", vec![grant()], get(), true).reasons(vec![iam_at("p1", 0, Allow)]),
        case(
            "a DENY overrides the ALLOW, and is the reason",
            vec![grant(), iam("p2", &[ALICE], vec![deny(&["iam:users:get"], &["iam:users:alice"], &["t1"])])],
            get(),
            false,
        )
        .reasons(vec![iam_at("p2", 0, Deny)])
        .matches(vec![iam_at("p1", 0, Allow), iam_at("p2", 0, Deny)]),
        case(
            "a DENY in the same policy overrides too",
            vec![iam(
                "p1",
                &[ALICE],
                vec![allow(&["*"], &["*"], &["t1"]), deny(&["iam:users:get"], &["iam:users:alice"], &["t1"])],
            )],
            get(),
            false,
        )
        .reasons(vec![iam_at("p1", 1, Deny)]),
        case(
            "a DENY in another tenant does not override",
            vec![grant(), iam("p2", &[ALICE], vec![deny(&["*"], &["*"], &["t2"])])],
            get(),
            true,
        )
        .reasons(vec![iam_at("p1", 0, Allow)]),
        case(
            "a DENY for another action does not override",
            vec![grant(), iam("p2", &[ALICE], vec![deny(&["iam:users:list"], &["*"], &["t1"])])],
            get(),
            true,
        ),
        case(
            "a DENY for another member does not override",
            vec![grant(), iam("p2", &["user:local:bob"], vec![deny(&["*"], &["*"], &["*"])])],
            get(),
            true,
        ),
        case("an ALLOW of another tenant does not grant", vec![grant()], get().tenant(Some("t2")), false)
            .reasons(vec![]),
        case(
            "a DENY with nothing allowed: denied, the DENY the reason",
            vec![iam("p2", &[ALICE], vec![deny(&["*"], &["*"], &["t1"])])],
            get(),
            false,
        )
        .reasons(vec![iam_at("p2", 0, Deny)]),
        case(
            "every matching ALLOW is a reason, in policy and statement order, once",
            vec![
                iam(
                    "p2",
                    &[ALICE, "user:*"],
                    vec![allow(&["*"], &["*"], &["t1"]), allow(&["iam:*"], &["iam:*"], &["t1"])],
                ),
                iam("p1", &["*"], vec![allow(&["iam:users:get", "*"], &["*", "iam:users:alice"], &["t1", "*"])]),
            ],
            get(),
            true,
        )
        .reasons(vec![iam_at("p1", 0, Allow), iam_at("p2", 0, Allow), iam_at("p2", 1, Allow)]),
        case(
            "a policy put again replaces the old one",
            vec![grant(), iam("p1", &[ALICE], vec![allow(&["iam:users:list"], &["*"], &["t1"])])],
            get(),
            false,
        ),
        case("a removed policy no longer grants", vec![grant(), Op::RemovePolicy("p1")], get(), false),
        case(
            "a removed DENY no longer overrides",
            vec![grant(), iam("p2", &["*"], vec![deny(&["*"], &["*"], &["*"])]), Op::RemovePolicy("p2")],
            get(),
            true,
        ),
    ]);
}

// ---------------------------------------------------------------------------------------------
// Members (§2.5).
// ---------------------------------------------------------------------------------------------

#[test]
fn members_match_exactly_or_by_wildcard() {
    let grant_to = |member: &str| iam("p1", &[member], vec![allow(&["*"], &["*"], &["*"])]);
    let rows: &[(&str, &'static str, bool)] = &[
        ("*", "user:local:alice", true),
        ("*", "token:t1", true),
        ("*", "tls:service:svc:cn1", true),
        ("*", "team:local:eng", true),
        ("user:*", "user:local:alice", true),
        ("user:*", "user:ldap:bob", true),
        ("user:*", "team:local:eng", false),
        ("user:*", "token:t1", false),
        ("user:local:*", "user:local:alice", true),
        ("user:local:*", "user:ldap:alice", false),
        ("user:ldap:*", "user:ldap:alice", true),
        ("team:*", "team:local:eng", true),
        ("team:*", "user:local:alice", false),
        ("team:local:*", "team:local:eng", true),
        ("team:local:*", "team:ldap:eng", false),
        ("token:*", "token:t1", true),
        ("token:*", "user:local:alice", false),
        ("tls:*", "tls:service:svc:cn1", true),
        ("tls:service:*", "tls:service:svc", true),
        ("tls:service:svc:*", "tls:service:svc:cn1", true),
        ("tls:service:svc:*", "tls:service:other:cn1", false),
        ("user:local:alice", "user:local:alice", true),
        ("user:local:alice", "user:local:bob", false),
        ("user:local:alice", "user:ldap:alice", false),
        ("user:local:alice", "user:local:alice2", false),
        ("token:t1", "token:t1", true),
        ("token:t1", "token:t2", false),
    ];
    let mut cases: Vec<Case> = rows
        .iter()
        .map(|&(member, subject, allowed)| {
            let name = format!("member {member} {} {subject}", if allowed { "matches" } else { "does not match" });
            case(name, vec![grant_to(member)], check(subject, "iam:users:get", "iam:users:x"), allowed)
        })
        .collect();
    cases.push(case(
        "a policy with no members matches no one",
        vec![iam("p1", &[], vec![allow(&["*"], &["*"], &["*"])])],
        get(),
        false,
    ));
    cases.push(case(
        "any one of several members suffices",
        vec![iam("p1", &["token:t9", "user:local:*"], vec![allow(&["*"], &["*"], &["*"])])],
        get(),
        true,
    ));
    run(cases);
}

#[test]
fn teams_come_from_the_request_and_from_the_engine() {
    let grant_to = |member: &str| iam("p1", &[member], vec![allow(&["*"], &["*"], &["*"])]);
    run(vec![
        case(
            "an exact team member, by the request's team",
            vec![grant_to("team:local:eng")],
            get().teams(&["team:local:eng"]),
            true,
        ),
        case("team:* by the request's team", vec![grant_to("team:*")], get().teams(&["team:ldap:ops"]), true),
        case(
            "team:local:* by the request's team",
            vec![grant_to("team:local:*")],
            get().teams(&["team:local:eng"]),
            true,
        ),
        case(
            "team:local:* not by an ldap team",
            vec![grant_to("team:local:*")],
            get().teams(&["team:ldap:eng"]),
            false,
        ),
        case(
            "a team the request does not name",
            vec![grant_to("team:local:eng")],
            get().teams(&["team:local:ops"]),
            false,
        ),
        case(
            "one of several request teams",
            vec![grant_to("team:local:eng")],
            get().teams(&["team:local:ops", "team:local:eng"]),
            true,
        ),
        case(
            "an exact team that lists the subject",
            vec![grant_to("team:local:eng"), team("team:local:eng", &[ALICE])],
            get(),
            true,
        ),
        case(
            "team:local:* by a team that lists the subject",
            vec![grant_to("team:local:*"), team("team:local:ops", &[ALICE])],
            get(),
            true,
        ),
        case(
            "a team that lists another subject does not apply",
            vec![grant_to("team:local:eng"), team("team:local:eng", &["user:local:bob"])],
            get(),
            false,
        ),
        case(
            "one of a team's several members",
            vec![grant_to("team:local:eng"), team("team:local:eng", &["user:local:bob", ALICE, "token:t1"])],
            get(),
            true,
        ),
        case(
            "a team put with no members lists no one",
            vec![grant_to("team:local:eng"), team("team:local:eng", &[ALICE]), team("team:local:eng", &[])],
            get(),
            false,
        ),
        case(
            "a removed team lists no one",
            vec![grant_to("team:local:eng"), team("team:local:eng", &[ALICE]), Op::RemoveTeam("team:local:eng")],
            get(),
            false,
        ),
        case(
            "removing a team the engine never held changes nothing",
            vec![grant_to("team:local:eng"), team("team:local:eng", &[ALICE]), Op::RemoveTeam("team:local:ops")],
            get(),
            true,
        ),
        case(
            "putting a team replaces its members: alice leaves",
            vec![
                grant_to("team:local:eng"),
                team("team:local:eng", &[ALICE, "user:local:bob"]),
                team("team:local:eng", &["user:local:bob"]),
            ],
            get(),
            false,
        ),
        case(
            "putting a team replaces its members: bob stays",
            vec![
                grant_to("team:local:eng"),
                team("team:local:eng", &[ALICE, "user:local:bob"]),
                team("team:local:eng", &["user:local:bob", "token:t1"]),
            ],
            check("user:local:bob", "iam:users:get", "iam:users:alice"),
            true,
        ),
        case(
            "putting a team replaces its members: alice joins",
            vec![
                grant_to("team:local:eng"),
                team("team:local:eng", &["user:local:bob"]),
                team("team:local:eng", &["user:local:bob", ALICE]),
            ],
            get(),
            true,
        ),
        case(
            "a member listed twice is held once, and leaves at once",
            vec![
                grant_to("team:local:eng"),
                team("team:local:eng", &[ALICE, ALICE]),
                team("team:local:eng", &["token:t1"]),
            ],
            get(),
            false,
        ),
        case(
            "changing one team leaves the subject's other teams",
            vec![
                grant_to("team:local:eng"),
                team("team:local:eng", &[ALICE]),
                team("team:local:ops", &[ALICE]),
                Op::RemoveTeam("team:local:ops"),
            ],
            get(),
            true,
        ),
        case(
            "a team's members are exact subjects: user:* lists no user",
            vec![grant_to("team:local:eng"), team("team:local:eng", &["user:*", "user:local:*", "*"])],
            get(),
            false,
        ),
        case(
            "teams are one level: a team listed in another passes it to none of its members",
            vec![
                grant_to("team:local:admins"),
                team("team:local:admins", &["team:local:eng"]),
                team("team:local:eng", &[ALICE]),
            ],
            get(),
            false,
        ),
        case(
            "a team listed in another acts with it when it is the subject",
            vec![grant_to("team:local:admins"), team("team:local:admins", &["team:local:eng"])],
            check("team:local:eng", "iam:users:get", "iam:users:alice"),
            true,
        ),
        case(
            "a request's team is not looked up as a member",
            vec![grant_to("team:local:admins"), team("team:local:admins", &["team:local:eng"])],
            get().teams(&["team:local:eng"]),
            false,
        ),
        case(
            "held teams add to the request's",
            vec![grant_to("team:local:eng"), team("team:local:eng", &[ALICE])],
            get().teams(&["team:local:ops"]),
            true,
        ),
        case(
            "a DENY to the team overrides an ALLOW to the user",
            vec![
                grant_to(ALICE),
                iam("p2", &["team:local:eng"], vec![deny(&["*"], &["*"], &["*"])]),
                team("team:local:eng", &[ALICE]),
            ],
            get(),
            false,
        )
        .reasons(vec![iam_at("p2", 0, Deny)]),
        case(
            "${a2:username} is the subject's name, never a team's",
            vec![iam("p1", &["team:local:eng"], vec![allow(&["*"], &["iam:users:${a2:username}"], &["*"])])],
            check("token:t1", "iam:users:get", "iam:users:eng").teams(&["team:local:eng"]),
            false,
        ),
    ]);
}

// ---------------------------------------------------------------------------------------------
// Actions (§2.6) and roles.
// ---------------------------------------------------------------------------------------------

#[test]
fn actions_match_by_every_shape() {
    let rows: &[(&str, &'static str, bool)] = &[
        ("*", "iam:users:get", true),
        ("*", "infra:nodes:delete", true),
        ("*", "view", true),
        ("*:get", "iam:users:get", true),
        ("*:get", "infra:nodes:get", true),
        ("*:get", "iam:users:list", false),
        ("*:delete", "delete", false),
        ("iam:*", "iam:users:get", true),
        ("iam:*", "iam:policies:list", true),
        ("iam:*", "infra:nodes:get", false),
        ("iam:*:get", "iam:users:get", true),
        ("iam:*:get", "iam:policies:get", true),
        ("iam:*:get", "iam:users:list", false),
        ("iam:*:get", "infra:users:get", false),
        ("iam:users:*", "iam:users:get", true),
        ("iam:users:*", "iam:users:delete", true),
        ("iam:users:*", "iam:policies:get", false),
        ("iam:users:*", "infra:users:get", false),
        ("iam:users:get", "iam:users:get", true),
        ("iam:users:get", "iam:users:list", false),
        ("iam:users:get", "iam:policies:get", false),
        ("view", "view", true),
        ("view", "update", false),
        // OpenID AuthZEN's names: upper case, digits, `_`, `-` and `.` are ordinary characters.
        ("authzen:record:can_read_todos", "authzen:record:can_read_todos", true),
        ("authzen:record:can_read_todos", "authzen:record:can_read_todo", false),
        ("authzen:*", "authzen:record:can_read_todos", true),
        ("authzen:record:*", "authzen:record:can_read_todos", true),
        ("authzen:*:can_read_todos", "authzen:record:can_read_todos", true),
        ("*:can_read_todos", "authzen:record:can_read_todos", true),
        ("myapp:Doc:v1.read", "myapp:Doc:v1.read", true),
        ("myapp:Doc:*", "myapp:Doc:v1.read", true),
        ("myapp:*:v1.read", "myapp:Doc:v1.read", true),
        ("*:v1.read", "myapp:Doc:v1.read", true),
        ("my-app.v2:*", "my-app.v2:T_1:x", true),
        // Case matters, and `.` is no wildcard.
        ("myapp:doc:*", "myapp:Doc:v1.read", false),
        ("Myapp:*", "myapp:Doc:v1.read", false),
        ("*:v1.read", "myapp:Doc:v1-read", false),
        ("*:v1.read", "myapp:Doc:v1xread", false),
        ("myapp:Doc:v1.read", "myapp:Doc:v1.reads", false),
        ("myapp:*:v1.read", "myapp:Doc:v1.write", false),
    ];
    let mut cases: Vec<Case> = rows
        .iter()
        .map(|&(pattern, action, allowed)| {
            let name = format!("action {pattern} {} {action}", if allowed { "matches" } else { "does not match" });
            let ops = vec![iam("p1", &[ALICE], vec![allow(&[pattern], &["*"], &["*"])])];
            case(name, ops, check(ALICE, action, "iam:users:alice"), allowed)
        })
        .collect();
    cases.push(case(
        "any one of a statement's actions suffices",
        vec![iam("p1", &[ALICE], vec![allow(&["infra:*", "iam:users:get"], &["*"], &["*"])])],
        get(),
        true,
    ));
    cases.push(case(
        "a statement with no actions matches none",
        vec![iam("p1", &[ALICE], vec![allow(&[], &["*"], &["*"])])],
        get(),
        false,
    ));
    run(cases);
}

#[test]
fn roles_grant_their_actions_while_they_exist() {
    let by_role = |role_id: &str| iam("p1", &[ALICE], vec![with_role(allow(&[], &["*"], &["t1"]), role_id)]);
    run(vec![
        case("a role's action grants", vec![role("r1", &["iam:users:get"]), by_role("r1")], get(), true)
            .reasons(vec![iam_at("p1", 0, Allow)]),
        case("a role's pattern grants", vec![role("r1", &["iam:*:get"]), by_role("r1")], get(), true),
        case("a role of `*` grants everything", vec![role("r1", &["*"]), by_role("r1")], get(), true),
        case(
            "a role's other actions do not grant",
            vec![role("r1", &["iam:users:list", "infra:*"]), by_role("r1")],
            get(),
            false,
        ),
        case("a role never put grants nothing", vec![by_role("r1")], get(), false),
        case(
            "a role put after the statement starts granting",
            vec![by_role("r1"), role("r1", &["iam:users:get"])],
            get(),
            true,
        ),
        case(
            "a removed role stops granting",
            vec![role("r1", &["iam:users:get"]), by_role("r1"), Op::RemoveRole("r1")],
            get(),
            false,
        ),
        case(
            "a removed role put again grants again",
            vec![role("r1", &["iam:users:get"]), by_role("r1"), Op::RemoveRole("r1"), role("r1", &["*"])],
            get(),
            true,
        ),
        case(
            "a role replaced without the action stops granting",
            vec![role("r1", &["iam:users:get"]), by_role("r1"), role("r1", &["iam:users:list"])],
            get(),
            false,
        ),
        case(
            "a role replaced with the action starts granting",
            vec![role("r1", &["iam:users:list"]), by_role("r1"), role("r1", &["iam:users:get"])],
            get(),
            true,
        ),
        case(
            "another role's removal changes nothing",
            vec![role("r1", &["iam:users:get"]), role("r2", &["iam:users:get"]), by_role("r1"), Op::RemoveRole("r2")],
            get(),
            true,
        ),
        case(
            "a removed role leaves the statement's own actions",
            vec![
                role("r1", &["iam:users:list"]),
                iam("p1", &[ALICE], vec![with_role(allow(&["iam:users:get"], &["*"], &["t1"]), "r1")]),
                Op::RemoveRole("r1"),
            ],
            get(),
            true,
        ),
        case(
            "a role's action and the statement's own, the same pattern, then the role removed",
            vec![
                role("r1", &["iam:users:get"]),
                iam("p1", &[ALICE], vec![with_role(allow(&["iam:users:get"], &["*"], &["t1"]), "r1")]),
                Op::RemoveRole("r1"),
            ],
            get(),
            true,
        ),
        case(
            "a DENY through a role overrides",
            vec![
                role("r1", &["iam:users:*"]),
                iam("p1", &[ALICE], vec![allow(&["*"], &["*"], &["t1"])]),
                iam("p2", &[ALICE], vec![with_role(deny(&[], &["*"], &["t1"]), "r1")]),
            ],
            get(),
            false,
        )
        .reasons(vec![iam_at("p2", 0, Deny)]),
        case(
            "a removed role stops granting though another statement keeps its pattern",
            vec![
                role("r1", &["iam:users:get"]),
                iam("p2", &["user:local:bob"], vec![allow(&["iam:users:get"], &["*"], &["t1"])]),
                by_role("r1"),
                Op::RemoveRole("r1"),
            ],
            get(),
            false,
        ),
        case(
            "a role replaced stops granting though another role keeps the pattern",
            vec![
                role("r1", &["iam:users:get"]),
                role("r2", &["iam:users:get"]),
                by_role("r1"),
                role("r1", &["iam:users:list"]),
            ],
            get(),
            false,
        ),
        case(
            "a role's pattern shared with a removed policy still grants",
            vec![
                role("r1", &["iam:users:get"]),
                iam("p2", &["user:local:bob"], vec![allow(&["iam:users:get"], &["*"], &["t1"])]),
                by_role("r1"),
                Op::RemovePolicy("p2"),
            ],
            get(),
            true,
        ),
        case(
            "an IAM v2 role is not an organization role of the same id",
            vec![
                org_role("r1", "o1", &["op1"]),
                org_policy("op1", "o1", vec![org_allow(ALL, &["/**"])]),
                by_role("r1"),
            ],
            get(),
            false,
        ),
    ]);
}

// ---------------------------------------------------------------------------------------------
// Resources (§2.6).
// ---------------------------------------------------------------------------------------------

#[test]
fn resources_match_by_every_shape() {
    let rows: &[(&str, &'static str, &'static str, bool)] = &[
        ("*", ALICE, "iam:users:alice", true),
        ("*", ALICE, "iam", true),
        ("*", ALICE, "/a/b", true),
        ("iam:users:alice", ALICE, "iam:users:alice", true),
        ("iam:users:alice", ALICE, "iam:users:bob", false),
        ("iam:users:alice", ALICE, "iam:users:alice:keys", false),
        ("iam:users", ALICE, "iam:users:alice", false),
        ("a:*", ALICE, "a:b", true),
        ("a:*", ALICE, "a:b:c", true),
        ("a:*", ALICE, "a", false),
        ("a:*", ALICE, "ab:c", false),
        ("a:*", ALICE, "b:a:c", false),
        ("a:b:*", ALICE, "a:b:c", true),
        ("a:b:*", ALICE, "a:b", false),
        ("a:b:*", ALICE, "a:c:d", false),
        ("iam:users:${a2:username}", ALICE, "iam:users:alice", true),
        ("iam:users:${a2:username}", ALICE, "iam:users:bob", false),
        ("iam:users:${a2:username}", "user:ldap:bob", "iam:users:bob", true),
        ("iam:users:${a2:username}", "token:alice", "iam:users:alice", false),
        ("iam:users:${a2:username}", "team:local:alice", "iam:users:alice", false),
        ("iam:users:${a2:username}", "tls:service:alice", "iam:users:alice", false),
        ("iam:users:${a2:username}:*", ALICE, "iam:users:alice:keys", true),
        ("iam:users:${a2:username}:*", ALICE, "iam:users:alice", false),
        ("iam:users:${a2:username}:*", ALICE, "iam:users:bob:keys", false),
        ("iam:${a2:username}:${a2:username}", ALICE, "iam:alice:alice", true),
        ("/a/b", ALICE, "/a/b", true),
    ];
    let mut cases: Vec<Case> = rows
        .iter()
        .map(|&(pattern, subject, resource, allowed)| {
            let name = format!(
                "resource {pattern} {} {resource} for {subject}",
                if allowed { "matches" } else { "does not match" }
            );
            let ops = vec![iam("p1", &["*"], vec![allow(&["*"], &[pattern], &["*"])])];
            case(name, ops, check(subject, "iam:users:get", resource), allowed)
        })
        .collect();
    cases.push(case(
        "no resources match nothing",
        vec![iam("p1", &["*"], vec![allow(&["*"], &[], &["*"])])],
        get(),
        false,
    ));
    cases.push(case(
        "any one of a statement's resources suffices",
        vec![iam("p1", &["*"], vec![allow(&["*"], &["infra:*", "iam:users:alice"], &["*"])])],
        get(),
        true,
    ));
    run(cases);
}

/// §2.6: `a:*` is what lies below `a` and never `a`; the rules put it as "longer than `a:`".
/// `a:` is no concrete resource (grammar::concrete_resource refuses it), so the service never
/// asks this; `check` and `explain` must still agree on it (they once did not: `check` allowed).
#[test]
fn a_prefix_pattern_never_matches_its_bare_prefix() {
    run(vec![
        case(
            "a:* does not match `a:`",
            vec![iam("p1", &["*"], vec![allow(&["*"], &["a:*"], &["*"])])],
            check(ALICE, "iam:users:get", "a:"),
            false,
        )
        .matches(vec![])
        .near_misses(vec![near(iam_at("p1", 0, Allow), Criterion::Resource)]),
    ]);
}

// ---------------------------------------------------------------------------------------------
// Tenants (§2.8).
// ---------------------------------------------------------------------------------------------

#[test]
fn tenants_scope_iam_statements() {
    let p = |id: &'static str, statement: Statement| iam(id, &[ALICE], vec![statement]);
    let a = |tenants: &[&str]| allow(&["*"], &["*"], tenants);
    let d = |tenants: &[&str]| deny(&["*"], &["*"], tenants);
    run(vec![
        case("an ALLOW of t1 grants in t1", vec![p("p1", a(&["t1"]))], get(), true),
        case("an ALLOW of t1 does not grant in t2", vec![p("p1", a(&["t1"]))], get().tenant(Some("t2")), false),
        case("an ALLOW of t1 and t2 grants in t2", vec![p("p1", a(&["t1", "t2"]))], get().tenant(Some("t2")), true),
        case("an ALLOW of * grants in any tenant", vec![p("p1", a(&["*"]))], get().tenant(Some("t9")), true),
        case("an ALLOW of no tenant grants in none", vec![p("p1", a(&[]))], get(), false),
        case("an ALLOW of no tenant grants no tenant-less check", vec![p("p1", a(&[]))], get().tenant(None), false),
        case("a DENY of no tenant never applies", vec![p("p1", a(&["t1"])), p("p2", d(&[]))], get(), true),
        case(
            "a DENY of no tenant never applies to a tenant-less check",
            vec![p("p1", a(&["t1"])), p("p2", d(&[]))],
            get().tenant(None),
            true,
        ),
        case("a DENY of * overrides in t1", vec![p("p1", a(&["t1"])), p("p2", d(&["*"]))], get(), false)
            .reasons(vec![iam_at("p2", 0, Deny)]),
        case("a DENY of t2 does not override in t1", vec![p("p1", a(&["*"])), p("p2", d(&["t2"]))], get(), true),
        case("a DENY of t1 overrides an ALLOW of * in t1", vec![p("p1", a(&["*"])), p("p2", d(&["t1"]))], get(), false),
        case("tenant-less: an ALLOW of t1 authorizes", vec![p("p1", a(&["t1"]))], get().tenant(None), true)
            .reasons(vec![iam_at("p1", 0, Allow)]),
        case(
            "tenant-less: an ALLOW of * authorizes with no tenant existing",
            vec![p("p1", a(&["*"]))],
            get().tenant(None),
            true,
        ),
        case(
            "tenant-less: a DENY of the only allowed tenant denies",
            vec![p("p1", a(&["t1"])), p("p2", d(&["t1"]))],
            get().tenant(None),
            false,
        )
        .reasons(vec![iam_at("p2", 0, Deny)]),
        case(
            "tenant-less: a DENY of t2 leaves t1 authorized",
            vec![p("p1", a(&["t1"])), p("p2", d(&["t2"]))],
            get().tenant(None),
            true,
        ),
        case(
            "tenant-less: one of two allowed tenants denied leaves the other",
            vec![p("p1", a(&["t1", "t2"])), p("p2", d(&["t1"]))],
            get().tenant(None),
            true,
        ),
        case(
            "tenant-less: allowed tenants from two ALLOWs, both denied",
            vec![p("p1", a(&["t1"])), p("p3", a(&["t2"])), p("p2", d(&["t1", "t2"]))],
            get().tenant(None),
            false,
        ),
        case(
            "tenant-less: a DENY of * overrides an ALLOW of *",
            vec![p("p1", a(&["*"])), p("p2", d(&["*"]))],
            get().tenant(None),
            false,
        )
        .reasons(vec![iam_at("p2", 0, Deny)]),
        case(
            "tenant-less: a DENY of * overrides an ALLOW of t1",
            vec![p("p1", a(&["t1"])), p("p2", d(&["*"]))],
            get().tenant(None),
            false,
        ),
        case(
            "tenant-less: a DENY of t1 does not remove an ALLOW of *",
            vec![p("p1", a(&["*"])), p("p2", d(&["t1"]))],
            get().tenant(None),
            true,
        )
        .reasons(vec![iam_at("p1", 0, Allow)]),
        case("tenant-less: a DENY alone denies", vec![p("p2", d(&["t1"]))], get().tenant(None), false)
            .reasons(vec![iam_at("p2", 0, Deny)]),
    ]);
}

/// The tenants a row wants authorized: a list, or every tenant but a list.
#[derive(Clone, Copy, Debug)]
enum Want {
    Only(&'static [&'static str]),
    AllBut(&'static [&'static str]),
}

use Want::{AllBut, Only};

/// Tenants each row is probed in: the ones rows name, and `t9`, which none does.
const PROBES: &[&str] = &["t1", "t2", "t3", "t9", "*"];

/// One row of the authorized-tenants table.
struct TenantsCase {
    name: &'static str,
    ops: Vec<Op>,
    check: Check,
    want: Want,
}

fn tenants_case(name: &'static str, ops: Vec<Op>, check: Check, want: Want) -> TenantsCase {
    TenantsCase { name, ops, check, want }
}

/// Runs every row: `tenants()` permits, names and says `any()` and `all()` as the row wants,
/// whatever the request's own tenant, and agrees with `check()` in each probe and in none.
fn run_tenants(cases: Vec<TenantsCase>) {
    let mut failures = Vec::new();
    for case in &cases {
        let mut engine = Engine::new();
        for op in &case.ops {
            op.apply(&mut engine);
        }
        let tenants = engine.tenants(&case.check.request());
        let (permits, any, all, named): (&dyn Fn(&str) -> bool, _, _, _) = match case.want {
            Only(listed) => (&|t| listed.contains(&t), !listed.is_empty(), false, Some(listed.to_vec())),
            AllBut(listed) => (&|t| !listed.contains(&t), true, listed.is_empty(), None),
        };
        let mut wrong = Vec::new();
        for &tenant in PROBES {
            if tenants.permits(tenant) != permits(tenant) {
                wrong.push(format!("permits({tenant}): got {}", tenants.permits(tenant)));
            }
            let allowed = engine.check(&case.check.clone().tenant(Some(tenant)).request()).allowed;
            if allowed != tenants.permits(tenant) {
                wrong.push(format!("check() in {tenant} is {allowed}, permits() is not"));
            }
        }
        if tenants.any() != any {
            wrong.push(format!("any(): got {}, want {any}", tenants.any()));
        }
        if tenants.all() != all {
            wrong.push(format!("all(): got {}, want {all}", tenants.all()));
        }
        if tenants.named() != named {
            wrong.push(format!("named(): got {:?}, want {named:?}", tenants.named()));
        }
        let allowed = engine.check(&case.check.clone().tenant(None).request()).allowed;
        if allowed != tenants.any() {
            wrong.push(format!("check() in no tenant is {allowed}, any() is not"));
        }
        for tenant in [None, Some("t1"), Some("t2"), Some("t3")] {
            if engine.tenants(&case.check.clone().tenant(tenant).request()) != tenants {
                wrong.push(format!("differs for a check in {tenant:?}"));
            }
        }
        if !wrong.is_empty() {
            failures.push(format!("- {}:\n    {}", case.name, wrong.join("\n    ")));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

#[test]
fn the_authorized_tenants_are_those_allowed_minus_those_denied() {
    let p = |id: &'static str, statement: Statement| iam(id, &[ALICE], vec![statement]);
    let a = |tenants: &[&str]| allow(&["*"], &["*"], tenants);
    let d = |tenants: &[&str]| deny(&["*"], &["*"], tenants);
    let org = |definition: Definition| {
        vec![org_policy("op1", "o1", vec![definition]), assign("a1", "o1", ALICE, &[], &["op1"])]
    };
    let view = || org_check("view", "/a/b");
    let sms = || vec![all(vec![test(Operator::StringEquals, "channel", "sms")])];
    run_tenants(vec![
        tenants_case("nothing stored: none", vec![], get(), Only(&[])),
        tenants_case("an ALLOW of t1 and t2: those", vec![p("p1", a(&["t2", "t1"]))], get(), Only(&["t1", "t2"])),
        tenants_case(
            "ALLOWs of a tenant twice name it once",
            vec![p("p1", a(&["t1"])), p("p2", a(&["t1", "t1"]))],
            get(),
            Only(&["t1"]),
        ),
        tenants_case(
            "an ALLOW of t1 and t2, a DENY of t1: t2",
            vec![p("p1", a(&["t1", "t2"])), p("p2", d(&["t1"]))],
            get(),
            Only(&["t2"]),
        ),
        tenants_case(
            "ALLOWs of t1 and t2, a DENY of both: none",
            vec![p("p1", a(&["t1"])), p("p3", a(&["t2"])), p("p2", d(&["t1", "t2"]))],
            get(),
            Only(&[]),
        ),
        tenants_case("an ALLOW of *: every tenant", vec![p("p1", a(&["*"]))], get(), AllBut(&[])),
        tenants_case(
            "an ALLOW of * beside named ones: every tenant",
            vec![p("p1", a(&["t1", "*"])), p("p2", a(&["t2"]))],
            get(),
            AllBut(&[]),
        ),
        tenants_case(
            "an ALLOW of *, a DENY of t1: every tenant but t1",
            vec![p("p1", a(&["*"])), p("p2", d(&["t1"]))],
            get(),
            AllBut(&["t1"]),
        ),
        tenants_case(
            "an ALLOW of *, a DENY of *: none",
            vec![p("p1", a(&["*"])), p("p2", d(&["*"]))],
            get(),
            Only(&[]),
        ),
        tenants_case(
            "an ALLOW of t1, a DENY of *: none",
            vec![p("p1", a(&["t1"])), p("p2", d(&["*"]))],
            get(),
            Only(&[]),
        ),
        tenants_case("an ALLOW of no tenant: none", vec![p("p1", a(&[]))], get(), Only(&[])),
        tenants_case(
            "a DENY of no tenant cuts nothing",
            vec![p("p1", a(&["t1"])), p("p2", d(&[]))],
            get(),
            Only(&["t1"]),
        ),
        tenants_case("a DENY alone: none", vec![p("p2", d(&["t1"]))], get(), Only(&[])),
        tenants_case(
            "only matching statements count",
            vec![
                p("p1", allow(&["iam:users:list"], &["*"], &["t1"])),
                p("p2", allow(&["iam:users:get"], &["iam:users:alice"], &["t2"])),
                p("p3", deny(&["*"], &["iam:users:bob"], &["t2"])),
            ],
            get(),
            Only(&["t2"]),
        ),
        tenants_case(
            "the request's tenant is ignored",
            vec![p("p1", a(&["t2"]))],
            get().tenant(Some("t1")),
            Only(&["t2"]),
        ),
        tenants_case(
            "through a team that lists the subject",
            vec![iam("p1", &["team:local:eng"], vec![a(&["t1"])]), team("team:local:eng", &[ALICE])],
            get(),
            Only(&["t1"]),
        ),
        tenants_case(
            "a conditioned ALLOW of t1 whose condition holds: t1",
            vec![p("p1", with_conditions(a(&["t1"]), sms()))],
            get().with("channel", text("sms")),
            Only(&["t1"]),
        ),
        tenants_case(
            "a conditioned ALLOW of * whose condition fails: none",
            vec![p("p1", with_conditions(a(&["*"]), sms()))],
            get().with("channel", text("email")),
            Only(&[]),
        ),
        tenants_case(
            "a conditioned ALLOW of * that cannot be evaluated: none",
            vec![p("p1", with_conditions(a(&["*"]), sms()))],
            get(),
            Only(&[]),
        ),
        tenants_case(
            "an ALLOW of *, a conditioned DENY of t1 that cannot be evaluated: every tenant but t1",
            vec![p("p1", a(&["*"])), p("p2", with_conditions(d(&["t1"]), sms()))],
            get(),
            AllBut(&["t1"]),
        ),
        tenants_case(
            "an ALLOW of *, a conditioned DENY of * whose condition fails: every tenant",
            vec![p("p1", a(&["*"])), p("p2", with_conditions(d(&["*"]), sms()))],
            get().with("channel", text("email")),
            AllBut(&[]),
        ),
        tenants_case(
            "an ALLOW of t1 and t2, a conditioned DENY of t2 whose condition holds: t1",
            vec![p("p1", a(&["t1", "t2"])), p("p2", with_conditions(d(&["t2"]), sms()))],
            get().with("channel", text("sms")),
            Only(&["t1"]),
        ),
        tenants_case("an organization ALLOW: every tenant", org(org_allow(ALL, &["/**"])), view(), AllBut(&[])),
        tenants_case(
            "an organization ALLOW, an IAM v2 DENY of t1: every tenant but t1",
            [org(org_allow(ALL, &["/**"])), vec![p("p2", d(&["t1"]))]].concat(),
            view(),
            AllBut(&["t1"]),
        ),
        tenants_case(
            "an organization DENY: none",
            [org(org_deny(ALL, &["/**"])), vec![p("p1", a(&["*"]))]].concat(),
            view(),
            Only(&[]),
        ),
        tenants_case(
            "organization definitions need the check's organization",
            [org(org_allow(ALL, &["/**"])), vec![p("p1", a(&["t1"]))]].concat(),
            view().org(None),
            Only(&["t1"]),
        ),
    ]);
}

// ---------------------------------------------------------------------------------------------
// Organization definitions (Part B §3).
// ---------------------------------------------------------------------------------------------

#[test]
fn organization_definitions_apply_through_assignments_in_their_organization() {
    let policy = || org_policy("op1", "o1", vec![org_allow(&[OrgAction::View], &["/a/**"])]);
    let direct = || assign("a1", "o1", ALICE, &[], &["op1"]);
    let view = || org_check("view", "/a/b");
    let reason = || vec![org_at("op1", 0, "o1", Allow)];
    run(vec![
        case("assigned directly: allowed", vec![policy(), direct()], view(), true).reasons(reason()),
        case("assigned directly, tenant-less: allowed", vec![policy(), direct()], view().tenant(None), true)
            .reasons(reason()),
        case("assigned directly, any tenant: allowed", vec![policy(), direct()], view().tenant(Some("t9")), true),
        case("without an organization: denied", vec![policy(), direct()], view().org(None), false).reasons(vec![]),
        case("in another organization: denied", vec![policy(), direct()], view().org(Some("o2")), false),
        case("not assigned: denied", vec![policy()], view(), false),
        case(
            "assigned to someone else: denied",
            vec![policy(), assign("a1", "o1", "user:local:bob", &[], &["op1"])],
            view(),
            false,
        ),
        case("an assignment removed: denied", vec![policy(), direct(), Op::RemoveAssignment("a1")], view(), false),
        case(
            "an assignment replaced by one of another principal: denied",
            vec![policy(), direct(), assign("a1", "o1", "user:local:bob", &[], &["op1"])],
            view(),
            false,
        ),
        case("a policy removed: denied", vec![policy(), direct(), Op::RemoveOrgPolicy("op1")], view(), false),
        case("a policy put after the assignment: allowed", vec![direct(), policy()], view(), true),
        case(
            "assigned through a role: allowed",
            vec![policy(), org_role("or1", "o1", &["op1"]), assign("a1", "o1", ALICE, &["or1"], &[])],
            view(),
            true,
        )
        .reasons(reason()),
        case(
            "through a role put after the assignment: allowed",
            vec![policy(), assign("a1", "o1", ALICE, &["or1"], &[]), org_role("or1", "o1", &["op1"])],
            view(),
            true,
        ),
        case(
            "through a removed role: denied",
            vec![
                policy(),
                org_role("or1", "o1", &["op1"]),
                assign("a1", "o1", ALICE, &["or1"], &[]),
                Op::RemoveOrgRole("or1"),
            ],
            view(),
            false,
        ),
        case(
            "through a role put again without the policy: denied",
            vec![
                policy(),
                org_role("or1", "o1", &["op1"]),
                assign("a1", "o1", ALICE, &["or1"], &[]),
                org_role("or1", "o1", &[]),
            ],
            view(),
            false,
        ),
        case(
            "a policy put again in another organization: denied",
            vec![policy(), direct(), org_policy("op1", "o2", vec![org_allow(ALL, &["/**"])])],
            view(),
            false,
        ),
        case(
            "through a role of another organization: denied",
            vec![policy(), org_role("or1", "o2", &["op1"]), assign("a1", "o1", ALICE, &["or1"], &[])],
            view(),
            false,
        ),
        case(
            "a policy of another organization, assigned in o1: denied in o1",
            vec![org_policy("op2", "o2", vec![org_allow(ALL, &["/**"])]), assign("a1", "o1", ALICE, &[], &["op2"])],
            view(),
            false,
        ),
        case(
            "a policy of another organization, assigned in o1: denied in o2",
            vec![org_policy("op2", "o2", vec![org_allow(ALL, &["/**"])]), assign("a1", "o1", ALICE, &[], &["op2"])],
            view().org(Some("o2")),
            false,
        ),
        case(
            "a policy of another organization through a role of o1: denied",
            vec![
                org_policy("op2", "o2", vec![org_allow(ALL, &["/**"])]),
                org_role("or1", "o1", &["op2"]),
                assign("a1", "o1", ALICE, &["or1"], &[]),
            ],
            view(),
            false,
        ),
        case(
            "an assignment in o2 does not reach o1",
            vec![policy(), assign("a1", "o2", ALICE, &[], &["op1"])],
            view(),
            false,
        ),
        case("a principal of *", vec![policy(), assign("a1", "o1", "*", &[], &["op1"])], view(), true),
        case("a principal of user:*", vec![policy(), assign("a1", "o1", "user:*", &[], &["op1"])], view(), true),
        case(
            "a principal of user:local:*",
            vec![policy(), assign("a1", "o1", "user:local:*", &[], &["op1"])],
            view(),
            true,
        ),
        case(
            "a principal of user:ldap:*",
            vec![policy(), assign("a1", "o1", "user:ldap:*", &[], &["op1"])],
            view(),
            false,
        ),
        case(
            "a principal of the request's team",
            vec![policy(), assign("a1", "o1", "team:local:eng", &[], &["op1"])],
            view().teams(&["team:local:eng"]),
            true,
        ),
        case(
            "a principal of team:local:* by a held team",
            vec![policy(), assign("a1", "o1", "team:local:*", &[], &["op1"]), team("team:local:eng", &[ALICE])],
            view(),
            true,
        ),
        case("another action: denied", vec![policy(), direct()], org_check("update", "/a/b"), false),
        case(
            "`any` covers view, create, update and delete",
            vec![org_policy("op1", "o1", vec![org_allow(ALL, &["/a/**"])]), direct()],
            org_check("delete", "/a/b"),
            true,
        ),
        case(
            "one of several actions",
            vec![
                org_policy("op1", "o1", vec![org_allow(&[OrgAction::Create, OrgAction::Update], &["/a/**"])]),
                direct(),
            ],
            org_check("update", "/a/b"),
            true,
        ),
        case(
            "no actions cover nothing",
            vec![org_policy("op1", "o1", vec![org_allow(&[], &["/a/**"])]), direct()],
            view(),
            false,
        ),
        case(
            "`any` is not an action a check names",
            vec![org_policy("op1", "o1", vec![org_allow(ALL, &["/**"])]), direct()],
            org_check("any", "/a/b"),
            false,
        ),
        case(
            "an IAM v2 action is not an organization action",
            vec![org_policy("op1", "o1", vec![org_allow(ALL, &["/**"])]), direct()],
            org_check("iam:users:get", "/a/b"),
            false,
        ),
        case(
            "a colon resource is not a path",
            vec![org_policy("op1", "o1", vec![org_allow(ALL, &["/**"])]), direct()],
            org_check("view", "iam:users:alice"),
            false,
        ),
        case(
            "an organization DENY overrides an organization ALLOW",
            vec![
                org_policy("op1", "o1", vec![org_allow(ALL, &["/**"]), org_deny(&[OrgAction::View], &["/a/*"])]),
                direct(),
            ],
            view(),
            false,
        )
        .reasons(vec![org_at("op1", 1, "o1", Deny)]),
        case(
            "an organization DENY overrides an IAM v2 ALLOW",
            vec![
                iam("p1", &[ALICE], vec![allow(&["*"], &["*"], &["*"])]),
                org_policy("op1", "o1", vec![org_deny(ALL, &["/**"])]),
                direct(),
            ],
            view(),
            false,
        )
        .reasons(vec![org_at("op1", 0, "o1", Deny)]),
        case(
            "tenant-less: an organization DENY denies every tenant",
            vec![
                iam("p1", &[ALICE], vec![allow(&["*"], &["*"], &["t1", "t2"])]),
                org_policy("op1", "o1", vec![org_deny(ALL, &["/**"])]),
                direct(),
            ],
            view().tenant(None),
            false,
        ),
        case(
            "an IAM v2 DENY overrides an organization ALLOW",
            vec![policy(), direct(), iam("p1", &[ALICE], vec![deny(&["view"], &["/a/b"], &["t1"])])],
            view(),
            false,
        )
        .reasons(vec![iam_at("p1", 0, Deny)]),
        case(
            "tenant-less: an organization ALLOW survives an IAM v2 DENY of t1",
            vec![policy(), direct(), iam("p1", &[ALICE], vec![deny(&["view"], &["/a/b"], &["t1"])])],
            view().tenant(None),
            true,
        )
        .reasons(reason()),
        case(
            "reasons come from both surfaces, in order",
            vec![policy(), direct(), iam("p1", &[ALICE], vec![allow(&["*"], &["*"], &["t1"])])],
            view(),
            true,
        )
        // By policy id first: `op1` before `p1`.
        .reasons(vec![org_at("op1", 0, "o1", Allow), iam_at("p1", 0, Allow)]),
        case(
            "a policy reached twice is a reason once",
            vec![policy(), direct(), org_role("or1", "o1", &["op1"]), assign("a2", "o1", "*", &["or1"], &["op1"])],
            view(),
            true,
        )
        .reasons(reason()),
        case(
            "an organization policy is not an IAM v2 policy of the same id",
            vec![
                org_policy("p1", "o1", vec![org_allow(ALL, &["/**"])]),
                assign("a1", "o1", ALICE, &[], &["p1"]),
                Op::RemovePolicy("p1"),
            ],
            view(),
            true,
        ),
    ]);
}

#[test]
fn the_instance_owner_acts_on_every_organization() {
    let owner = || iam("p1", &["user:local:owner"], vec![allow(&["*"], &["*"], &["*"])]);
    let as_owner = |organization: Option<&'static str>| check("user:local:owner", "delete", "/a/b").org(organization);
    run(vec![
        case("an IAM v2 */* statement allows an organization check", vec![owner()], as_owner(Some("o1")), true)
            .reasons(vec![iam_at("p1", 0, Allow)]),
        case("in any organization", vec![owner()], as_owner(Some("o9")), true),
        case("and tenant-less", vec![owner()], as_owner(Some("o2")).tenant(None), true),
        case(
            "unless an organization DENY reaches the owner",
            vec![
                owner(),
                org_policy("op1", "o1", vec![org_deny(ALL, &["/**"])]),
                assign("a1", "o1", "*", &[], &["op1"]),
            ],
            as_owner(Some("o1")),
            false,
        ),
        case(
            "that DENY is of o1 only",
            vec![
                owner(),
                org_policy("op1", "o1", vec![org_deny(ALL, &["/**"])]),
                assign("a1", "o1", "*", &[], &["op1"]),
            ],
            as_owner(Some("o2")),
            true,
        ),
    ]);
}

#[test]
fn path_patterns_take_one_segment_or_one_or_more() {
    let rows: &[(&str, &'static str, bool)] = &[
        ("/", "/", true),
        ("/", "/a", false),
        ("/*", "/a", true),
        ("/*", "/", false),
        ("/*", "/a/b", false),
        ("/**", "/a", true),
        ("/**", "/a/b/c", true),
        ("/**", "/", false),
        ("/a", "/a", true),
        ("/a", "/a/b", false),
        ("/a", "/A", false),
        ("/a/*", "/a/b", true),
        ("/a/*", "/a", false),
        ("/a/*", "/a/b/c", false),
        ("/a/**", "/a/b", true),
        ("/a/**", "/a/b/c", true),
        ("/a/**", "/a", false),
        ("/a/*/c", "/a/b/c", true),
        ("/a/*/c", "/a/b/x/c", false),
        ("/a/**/c", "/a/b/c", true),
        ("/a/**/c", "/a/b/x/c", true),
        ("/a/**/c", "/a/c", false),
        ("/**/c", "/a/b/c", true),
        ("/**/c", "/c", false),
        ("/workspaces/*/channels/**", "/workspaces/w1/channels/c1", true),
        ("/workspaces/*/channels/**", "/workspaces/w1/channels", false),
        ("a/**", "/a/b", false),
    ];
    let cases = rows
        .iter()
        .map(|&(pattern, path, allowed)| {
            let name = format!("path {pattern} {} {path}", if allowed { "matches" } else { "does not match" });
            let ops = vec![
                org_policy("op1", "o1", vec![org_allow(ALL, &[pattern])]),
                assign("a1", "o1", ALICE, &[], &["op1"]),
            ];
            case(name, ops, org_check("view", path), allowed)
        })
        .collect();
    run(cases);
}

// ---------------------------------------------------------------------------------------------
// Conditions (A.5), failing closed.
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq)]
enum Outcome {
    Holds,
    Fails,
    /// The key is missing, or a value cannot be read.
    Unknown,
}

/// For one test: an ALLOW holding it grants only when it holds; a DENY holding it (beside an
/// ALLOW of everything) denies when it holds and when it cannot be evaluated.
fn condition_cases(name: &str, conditions: Vec<Condition>, check: Check, outcome: Outcome) -> Vec<Case> {
    let assigned = || assign("a1", "o1", "*", &[], &["op1"]);
    let allowing =
        vec![org_policy("op1", "o1", vec![definition(Allow, ALL, &["/**"], conditions.clone())]), assigned()];
    let denying = vec![
        org_policy("op1", "o1", vec![org_allow(ALL, &["/**"]), definition(Deny, ALL, &["/**"], conditions)]),
        assigned(),
    ];
    let explained = |effect: Effect, matched: bool| {
        let at = org_at("op1", usize::from(effect == Deny), "o1", effect);
        if matched { (vec![at], vec![]) } else { (vec![], vec![near(at, Criterion::Condition)]) }
    };
    let (allow_matches, allow_near) = explained(Allow, outcome == Outcome::Holds);
    let (mut deny_matches, deny_near) = explained(Deny, outcome != Outcome::Fails);
    deny_matches.insert(0, org_at("op1", 0, "o1", Allow));
    vec![
        case(format!("ALLOW if {name}: {outcome:?}"), allowing, check.clone(), outcome == Outcome::Holds)
            .matches(allow_matches)
            .near_misses(allow_near),
        case(format!("DENY if {name}: {outcome:?}"), denying, check, outcome == Outcome::Fails)
            .matches(deny_matches)
            .near_misses(deny_near),
    ]
}

/// The same for an IAM v2 statement: an ALLOW holding the conditions grants only when they
/// hold; a DENY holding them (beside an ALLOW of everything) denies when they hold and when
/// they cannot be evaluated; and the authorized tenants agree.
fn iam_condition_cases(name: &str, conditions: Vec<Condition>, check: Check, outcome: Outcome) -> Vec<Case> {
    let conditioned = |effect: Effect| with_conditions(statement(effect, &["*"], &["*"], &["t1"]), conditions.clone());
    let allowing = vec![iam("p1", &[ALICE], vec![conditioned(Allow)])];
    let denying = vec![iam("p1", &[ALICE], vec![allow(&["*"], &["*"], &["*"]), conditioned(Deny)])];
    let explained = |effect: Effect, matched: bool| {
        let at = iam_at("p1", usize::from(effect == Deny), effect);
        if matched { (vec![at], vec![]) } else { (vec![], vec![near(at, Criterion::Condition)]) }
    };
    let (allow_matches, allow_near) = explained(Allow, outcome == Outcome::Holds);
    let (mut deny_matches, deny_near) = explained(Deny, outcome != Outcome::Fails);
    deny_matches.insert(0, iam_at("p1", 0, Allow));
    vec![
        case(format!("IAM v2 ALLOW if {name}: {outcome:?}"), allowing, check.clone(), outcome == Outcome::Holds)
            .matches(allow_matches)
            .near_misses(allow_near),
        case(format!("IAM v2 DENY if {name}: {outcome:?}"), denying, check, outcome == Outcome::Fails)
            .matches(deny_matches)
            .near_misses(deny_near),
    ]
}

/// Each row on both surfaces: an organization definition's conditions, and an IAM v2
/// statement's.
fn one_test_cases(rows: &[(Operator, &str, Option<Value>, Outcome)]) -> Vec<Case> {
    rows.iter()
        .flat_map(|(operator, operand, value, outcome)| {
            let (mut org, mut iam) = (org_check("update", "/a/b"), get());
            if let Some(value) = value {
                org = org.with("k", value.clone());
                iam = iam.with("k", value.clone());
            }
            let name = format!("{operator:?} {operand:?} against {value:?}");
            let conditions = vec![all(vec![test(*operator, "k", operand)])];
            let mut cases = condition_cases(&name, conditions.clone(), org, *outcome);
            cases.extend(iam_condition_cases(&name, conditions, iam, *outcome));
            cases
        })
        .collect()
}

#[test]
fn each_condition_operator_holds_fails_or_cannot_be_evaluated() {
    use Operator::*;
    use Outcome::*;
    let n = Value::Number;
    let rows: Vec<(Operator, &str, Option<Value>, Outcome)> = vec![
        (StringEquals, "sms", Some(text("sms")), Holds),
        (StringEquals, "sms", Some(text("SMS")), Fails),
        (StringEquals, "", Some(text("")), Holds),
        (StringEquals, "5", Some(n(5.0)), Unknown),
        (StringEquals, "true", Some(Value::Bool(true)), Unknown),
        (StringEquals, "sms", Some(Value::Null), Unknown),
        (StringEquals, "sms", Some(Value::Composite), Unknown),
        (StringEquals, "sms", None, Unknown),
        (StringNotEquals, "sms", Some(text("email")), Holds),
        (StringNotEquals, "sms", Some(text("sms")), Fails),
        (StringNotEquals, "sms", Some(Value::Bool(false)), Unknown),
        (StringNotEquals, "sms", None, Unknown),
        (StringLike, "s*x", Some(text("smsx")), Holds),
        (StringLike, "s*x", Some(text("sx")), Holds),
        (StringLike, "s*x", Some(text("sms")), Fails),
        (StringLike, "*", Some(text("")), Holds),
        (StringLike, "a*c*e", Some(text("abcde")), Holds),
        (StringLike, "a*c", Some(text("abcd")), Fails),
        (StringLike, "sms", Some(text("sms")), Holds),
        (StringLike, "sms", Some(text("smsx")), Fails),
        (StringLike, "*", Some(Value::Null), Unknown),
        (StringLike, "*", None, Unknown),
        (NumericEquals, "10", Some(n(10.0)), Holds),
        (NumericEquals, "10", Some(text("10.0")), Holds),
        (NumericEquals, "10", Some(text(" 10 ")), Holds),
        (NumericEquals, " 10 ", Some(n(10.0)), Holds),
        (NumericEquals, "1e1", Some(n(10.0)), Holds),
        (NumericEquals, "10", Some(n(11.0)), Fails),
        (NumericEquals, "10", Some(text("ten")), Unknown),
        (NumericEquals, "10", Some(text("NaN")), Unknown),
        (NumericEquals, "10", Some(n(f64::NAN)), Unknown),
        (NumericEquals, "10", Some(Value::Bool(true)), Unknown),
        (NumericEquals, "ten", Some(n(10.0)), Unknown),
        (NumericEquals, "inf", Some(n(10.0)), Unknown),
        (NumericEquals, "10", None, Unknown),
        (NumericLessThan, "10", Some(n(5.0)), Holds),
        (NumericLessThan, "10", Some(n(10.0)), Fails),
        (NumericLessThan, "10", Some(n(11.0)), Fails),
        (NumericLessThan, "10.5", Some(text("10")), Holds),
        (NumericLessThan, "0", Some(n(-1.0)), Holds),
        (NumericLessThan, "10", Some(Value::Null), Unknown),
        (NumericLessThan, "10", None, Unknown),
        (NumericGreaterThan, "10", Some(n(11.0)), Holds),
        (NumericGreaterThan, "10", Some(n(10.0)), Fails),
        (NumericGreaterThan, "10", Some(n(9.0)), Fails),
        (NumericGreaterThan, "10", Some(Value::Composite), Unknown),
        (NumericGreaterThan, "", Some(n(1.0)), Unknown),
        (NumericGreaterThan, "10", None, Unknown),
        (Bool, "true", Some(Value::Bool(true)), Holds),
        (Bool, "true", Some(text("true")), Holds),
        (Bool, "false", Some(Value::Bool(false)), Holds),
        (Bool, "false", Some(Value::Bool(true)), Fails),
        (Bool, "true", Some(text("false")), Fails),
        (Bool, "true", Some(text("yes")), Unknown),
        (Bool, "true", Some(text("TRUE")), Unknown),
        (Bool, "true", Some(n(1.0)), Unknown),
        (Bool, "yes", Some(Value::Bool(true)), Unknown),
        (Bool, "true", None, Unknown),
        (IpAddress, "10.0.0.0/8", Some(text("10.1.2.3")), Holds),
        (IpAddress, "10.0.0.0/8", Some(text("11.1.2.3")), Fails),
        (IpAddress, "10.9.9.9/8", Some(text("10.1.2.3")), Holds),
        (IpAddress, "11.0.0.0/7", Some(text("10.1.2.3")), Holds),
        (IpAddress, "11.0.0.0/7", Some(text("12.1.2.3")), Fails),
        (IpAddress, "10.1.2.3", Some(text("10.1.2.3")), Holds),
        (IpAddress, "10.1.2.3", Some(text("10.1.2.4")), Fails),
        (IpAddress, "0.0.0.0/0", Some(text("1.2.3.4")), Holds),
        (IpAddress, "2001:db8::/32", Some(text("2001:db8::1")), Holds),
        (IpAddress, "2001:db8::/32", Some(text("2001:db9::1")), Fails),
        (IpAddress, "::/0", Some(text("::1")), Holds),
        (IpAddress, "10.0.0.0/8", Some(text("::1")), Fails),
        (IpAddress, "::/0", Some(text("10.1.2.3")), Fails),
        (IpAddress, "10.0.0.0/8", Some(text("::ffff:10.1.2.3")), Fails),
        (IpAddress, "10.0.0.0/8", Some(text("10.0.0.0/8")), Unknown),
        (IpAddress, "10.0.0.0/8", Some(text("x")), Unknown),
        (IpAddress, "10.0.0.0/8", Some(n(10.0)), Unknown),
        (IpAddress, "10.0.0.0/33", Some(text("10.1.2.3")), Unknown),
        (IpAddress, "10.0.0.0/", Some(text("10.1.2.3")), Unknown),
        (IpAddress, "x", Some(text("10.1.2.3")), Unknown),
        (IpAddress, "10.0.0.0/8", None, Unknown),
        (DateBefore, "2026-01-01T00:00:00Z", Some(text("2025-12-31T23:59:59Z")), Holds),
        (DateBefore, "2026-01-01T00:00:00Z", Some(text("2025-12-31T23:59:59.999Z")), Holds),
        (DateBefore, "2026-01-01T00:00:00Z", Some(text("2026-01-01T00:00:00Z")), Fails),
        (DateBefore, "2026-01-01T00:00:00Z", Some(text("2026-01-01T01:00:00+01:00")), Fails),
        (DateBefore, "2026-01-01T00:00:00Z", Some(text("2026-01-01T00:30:00+01:00")), Holds),
        (DateBefore, "2026-01-01T00:00:00Z", Some(text("2026-01-02T00:00:00Z")), Fails),
        (DateBefore, "2026-01-01T00:00:00Z", Some(text("tomorrow")), Unknown),
        (DateBefore, "2026-01-01T00:00:00Z", Some(Value::Null), Unknown),
        (DateBefore, "yesterday", Some(text("2025-12-31T23:59:59Z")), Unknown),
        (DateBefore, "2026-01-01T00:00:00Z", None, Unknown),
        (DateAfter, "2026-01-01T00:00:00Z", Some(text("2026-01-01T00:00:01Z")), Holds),
        (DateAfter, "2026-01-01T00:00:00Z", Some(text("2026-01-01T00:00:00.5Z")), Holds),
        (DateAfter, "2026-01-01T00:00:00Z", Some(text("2026-01-01T00:00:00Z")), Fails),
        (DateAfter, "2026-01-01T00:00:00Z", Some(text("2025-12-31T23:59:59Z")), Fails),
        (DateAfter, "2026-01-01T00:00:00Z", Some(Value::Bool(true)), Unknown),
        (DateAfter, "2026-01-01T00:00:00Z", Some(text("2026-13-01T00:00:00Z")), Unknown),
        (DateAfter, "2026-01-01T00:00:00Z", None, Unknown),
    ];
    run(one_test_cases(&rows));
}

/// `…IfExists`: holds where the key is missing, or holds a list or an object (which conditions
/// do not see); elsewhere tests as the plain form, unreadable values unknown as ever.
#[test]
fn if_exists_operators_hold_where_the_key_is_missing() {
    use Operator::*;
    use Outcome::*;
    let n = Value::Number;
    let rows: Vec<(Operator, &str, Option<Value>, Outcome)> = vec![
        (StringEqualsIfExists, "sms", None, Holds),
        (StringEqualsIfExists, "sms", Some(Value::Composite), Holds),
        (StringEqualsIfExists, "sms", Some(text("sms")), Holds),
        (StringEqualsIfExists, "sms", Some(text("SMS")), Fails),
        (StringEqualsIfExists, "5", Some(n(5.0)), Unknown),
        // `null` is a value, not a missing key.
        (StringEqualsIfExists, "sms", Some(Value::Null), Unknown),
        (StringNotEqualsIfExists, "sms", None, Holds),
        (StringNotEqualsIfExists, "sms", Some(text("email")), Holds),
        (StringNotEqualsIfExists, "sms", Some(text("sms")), Fails),
        (StringNotEqualsIfExists, "sms", Some(Value::Bool(false)), Unknown),
        (StringLikeIfExists, "s*x", None, Holds),
        (StringLikeIfExists, "s*x", Some(text("smsx")), Holds),
        (StringLikeIfExists, "s*x", Some(text("sms")), Fails),
        (StringLikeIfExists, "*", Some(Value::Null), Unknown),
        (NumericEqualsIfExists, "10", None, Holds),
        (NumericEqualsIfExists, "10", Some(Value::Composite), Holds),
        (NumericEqualsIfExists, "10", Some(text("10.0")), Holds),
        (NumericEqualsIfExists, "10", Some(n(11.0)), Fails),
        (NumericEqualsIfExists, "10", Some(text("ten")), Unknown),
        (NumericEqualsIfExists, "10", Some(n(f64::NAN)), Unknown),
        // An operand validation would refuse never holds, not even where the key is missing.
        (NumericEqualsIfExists, "ten", None, Unknown),
        (NumericLessThanIfExists, "10", None, Holds),
        (NumericLessThanIfExists, "10", Some(n(5.0)), Holds),
        (NumericLessThanIfExists, "10", Some(n(10.0)), Fails),
        (NumericGreaterThanIfExists, "10", None, Holds),
        (NumericGreaterThanIfExists, "10", Some(n(11.0)), Holds),
        (NumericGreaterThanIfExists, "10", Some(n(9.0)), Fails),
        (NumericGreaterThanIfExists, "10", Some(Value::Bool(true)), Unknown),
        (BoolIfExists, "true", None, Holds),
        (BoolIfExists, "true", Some(Value::Composite), Holds),
        (BoolIfExists, "true", Some(Value::Bool(true)), Holds),
        (BoolIfExists, "true", Some(text("true")), Holds),
        (BoolIfExists, "false", Some(text("false")), Holds),
        (BoolIfExists, "true", Some(Value::Bool(false)), Fails),
        (BoolIfExists, "true", Some(text("false")), Fails),
        (BoolIfExists, "true", Some(text("yes")), Unknown),
        (BoolIfExists, "true", Some(n(1.0)), Unknown),
        (BoolIfExists, "yes", None, Unknown),
        (IpAddressIfExists, "10.0.0.0/8", None, Holds),
        (IpAddressIfExists, "10.0.0.0/8", Some(text("10.1.2.3")), Holds),
        (IpAddressIfExists, "10.0.0.0/8", Some(text("11.1.2.3")), Fails),
        (IpAddressIfExists, "10.0.0.0/8", Some(text("x")), Unknown),
        (IpAddressIfExists, "10.0.0.0/33", None, Unknown),
        (DateBeforeIfExists, "2026-01-01T00:00:00Z", None, Holds),
        (DateBeforeIfExists, "2026-01-01T00:00:00Z", Some(text("2025-12-31T23:59:59Z")), Holds),
        (DateBeforeIfExists, "2026-01-01T00:00:00Z", Some(text("2026-01-01T00:00:00Z")), Fails),
        (DateBeforeIfExists, "2026-01-01T00:00:00Z", Some(text("tomorrow")), Unknown),
        (DateAfterIfExists, "2026-01-01T00:00:00Z", None, Holds),
        (DateAfterIfExists, "2026-01-01T00:00:00Z", Some(Value::Composite), Holds),
        (DateAfterIfExists, "2026-01-01T00:00:00Z", Some(text("2026-01-01T00:00:00.0000001Z")), Holds),
        (DateAfterIfExists, "2026-01-01T00:00:00Z", Some(text("2025-12-31T23:59:59Z")), Fails),
        (DateAfterIfExists, "2026-01-01T00:00:00Z", Some(Value::Null), Unknown),
        // A plain operator on a list or an object: as on a missing key.
        (StringEquals, "sms", Some(Value::Composite), Unknown),
        (Bool, "true", Some(Value::Composite), Unknown),
    ];
    run(one_test_cases(&rows));
}

/// RFC 3339 instants may carry nanoseconds; the rules compare the instants
/// (`ctx > value`, `ctx < value`), not their microseconds (which the engine once did).
#[test]
fn dates_compare_below_the_microsecond() {
    use Operator::*;
    use Outcome::*;
    let rows: Vec<(Operator, &str, Option<Value>, Outcome)> = vec![
        (DateAfter, "2026-01-01T00:00:00Z", Some(text("2026-01-01T00:00:00.0000001Z")), Holds),
        (DateBefore, "2026-01-01T00:00:00.0000001Z", Some(text("2026-01-01T00:00:00Z")), Holds),
        (DateBefore, "2026-01-01T00:00:00.000000999Z", Some(text("2026-01-01T00:00:00.000000001Z")), Holds),
    ];
    run(one_test_cases(&rows));
}

#[test]
fn conditions_combine_and_fail_closed() {
    let eq = |key: &str, value: &str| test(Operator::StringEquals, key, value);
    let update = || org_check("update", "/a/b");
    let ctx = || update().with("a", text("1")).with("b", text("3"));
    let mut cases = Vec::new();
    let mut add = |name: &str, conditions: Vec<Condition>, check: Check, outcome: Outcome| {
        let iam = Check { action: "iam:users:get", resource: "iam:users:alice", organization: None, ..check.clone() };
        cases.extend(condition_cases(name, conditions.clone(), check, outcome));
        cases.extend(iam_condition_cases(name, conditions, iam, outcome));
    };
    add("no conditions", vec![], update(), Outcome::Holds);
    add("all of two, both hold", vec![all(vec![eq("a", "1"), eq("b", "3")])], ctx(), Outcome::Holds);
    add("all of two, one fails", vec![all(vec![eq("a", "1"), eq("b", "2")])], ctx(), Outcome::Fails);
    add("any of two, one holds", vec![any(vec![eq("a", "1"), eq("b", "2")])], ctx(), Outcome::Holds);
    add("any of two, none holds", vec![any(vec![eq("a", "2"), eq("b", "2")])], ctx(), Outcome::Fails);
    add("an `all` of no tests", vec![all(vec![])], update(), Outcome::Holds);
    add("an `any` of no tests", vec![any(vec![])], update(), Outcome::Fails);
    add(
        "conditionsAll: every condition must hold",
        vec![any(vec![eq("a", "1"), eq("b", "2")]), all(vec![eq("b", "2")])],
        ctx(),
        Outcome::Fails,
    );
    add(
        "conditionsAll: both hold",
        vec![any(vec![eq("a", "1"), eq("b", "2")]), all(vec![eq("b", "3")])],
        ctx(),
        Outcome::Holds,
    );
    add(
        "a missing key under `any`, though another test holds",
        vec![any(vec![eq("a", "1"), eq("missing", "1")])],
        ctx(),
        Outcome::Unknown,
    );
    add(
        "a missing key under `all`, though another test fails",
        vec![all(vec![eq("a", "2"), eq("missing", "1")])],
        ctx(),
        Outcome::Unknown,
    );
    add(
        "a missing key in a later condition, after one that fails",
        vec![all(vec![eq("a", "2")]), all(vec![eq("missing", "1")])],
        ctx(),
        Outcome::Unknown,
    );
    add(
        "an unreadable value in an earlier condition, before one that holds",
        vec![all(vec![test(Operator::NumericEquals, "a", "ten")]), all(vec![eq("a", "1")])],
        ctx(),
        Outcome::Unknown,
    );
    add(
        "keys are verbatim: a dotted key is one key",
        vec![all(vec![eq("request.channel", "sms")])],
        update().with("request.channel", text("sms")),
        Outcome::Holds,
    );
    add(
        "keys are verbatim: no nesting",
        vec![all(vec![eq("request.channel", "sms")])],
        update().with("request", Value::Composite),
        Outcome::Unknown,
    );
    let present = |key: &str| test(Operator::StringEqualsIfExists, key, "1");
    add(
        "an `…IfExists` test of a missing key, under `all`",
        vec![all(vec![present("missing")])],
        ctx(),
        Outcome::Holds,
    );
    add(
        "an `…IfExists` test of a missing key beside one that fails, under `any`",
        vec![any(vec![present("missing"), eq("b", "2")])],
        ctx(),
        Outcome::Holds,
    );
    add(
        "an `…IfExists` test of a missing key beside one that fails, under `all`",
        vec![all(vec![present("missing"), eq("b", "2")])],
        ctx(),
        Outcome::Fails,
    );
    add("an `…IfExists` test of a present key is the plain one", vec![all(vec![present("b")])], ctx(), Outcome::Fails);
    add(
        "an `…IfExists` test holds, a plain one of a missing key still fails closed",
        vec![all(vec![present("missing")]), all(vec![eq("missing", "1")])],
        ctx(),
        Outcome::Unknown,
    );
    run(cases);
}

// ---------------------------------------------------------------------------------------------
// Explanations: every match, and the near misses.
// ---------------------------------------------------------------------------------------------

#[test]
fn near_misses_name_the_one_criterion_that_failed() {
    // Matches alice's get of iam:users:alice in t1 on every criterion.
    let fits = || allow(&["iam:users:get"], &["iam:users:alice"], &["t1"]);
    let one = |statement: Statement| iam("p1", &[ALICE], vec![statement]);
    let at = || iam_at("p1", 0, Allow);
    let org_fits = || org_allow(&[OrgAction::Update], &["/a/*"]);
    let org_one = |definition: Definition| {
        vec![org_policy("op1", "o1", vec![definition]), assign("a1", "o1", ALICE, &[], &["op1"])]
    };
    let org_at0 = || org_at("op1", 0, "o1", Allow);
    let update = || org_check("update", "/a/b");
    let condition = || vec![all(vec![test(Operator::StringEquals, "channel", "sms")])];
    run(vec![
        case("a full match is a match, not a near miss", vec![one(fits())], get(), true)
            .matches(vec![at()])
            .near_misses(vec![]),
        case(
            "IAM v2: the action alone fails",
            vec![one(allow(&["iam:users:list"], &["iam:users:alice"], &["t1"]))],
            get(),
            false,
        )
        .matches(vec![])
        .near_misses(vec![near(at(), Criterion::Action)]),
        case(
            "IAM v2: a removed role's action fails",
            vec![
                role("r1", &["iam:users:get"]),
                one(with_role(allow(&[], &["*"], &["t1"]), "r1")),
                Op::RemoveRole("r1"),
            ],
            get(),
            false,
        )
        .near_misses(vec![near(at(), Criterion::Action)]),
        case(
            "IAM v2: the resource alone fails",
            vec![one(allow(&["iam:users:get"], &["iam:users:bob"], &["t1"]))],
            get(),
            false,
        )
        .near_misses(vec![near(at(), Criterion::Resource)]),
        case(
            "IAM v2: no resources fail the resource",
            vec![one(allow(&["iam:users:get"], &[], &["t1"]))],
            get(),
            false,
        )
        .near_misses(vec![near(at(), Criterion::Resource)]),
        case(
            "IAM v2: the tenant alone fails",
            vec![one(allow(&["iam:users:get"], &["iam:users:alice"], &["t2"]))],
            get(),
            false,
        )
        .near_misses(vec![near(at(), Criterion::Tenant)]),
        case(
            "IAM v2: no tenants fail a tenant-less check's tenant",
            vec![one(allow(&["iam:users:get"], &["iam:users:alice"], &[]))],
            get().tenant(None),
            false,
        )
        .near_misses(vec![near(at(), Criterion::Tenant)]),
        case(
            "IAM v2: two criteria failed is no near miss",
            vec![one(allow(&["iam:users:list"], &["iam:users:bob"], &["t1"]))],
            get(),
            false,
        )
        .matches(vec![])
        .near_misses(vec![]),
        case(
            "IAM v2: three criteria failed is no near miss",
            vec![one(allow(&["iam:users:list"], &["iam:users:bob"], &["t2"]))],
            get(),
            false,
        )
        .near_misses(vec![]),
        case(
            "IAM v2: a member that does not match is no near miss",
            vec![iam("p1", &["user:local:bob"], vec![fits()])],
            get(),
            false,
        )
        .matches(vec![])
        .near_misses(vec![]),
        case(
            "IAM v2: a member matched by a team counts",
            vec![
                iam("p1", &["team:local:eng"], vec![allow(&["iam:users:list"], &["iam:users:alice"], &["t1"])]),
                team("team:local:eng", &[ALICE]),
            ],
            get(),
            false,
        )
        .near_misses(vec![near(at(), Criterion::Action)]),
        case(
            "IAM v2: the condition alone fails",
            vec![one(with_conditions(fits(), condition()))],
            get().with("channel", text("email")),
            false,
        )
        .matches(vec![])
        .near_misses(vec![near(at(), Criterion::Condition)]),
        case(
            "IAM v2: an ALLOW's condition that cannot be evaluated",
            vec![one(with_conditions(fits(), condition()))],
            get(),
            false,
        )
        .near_misses(vec![near(at(), Criterion::Condition)]),
        case(
            "IAM v2: a condition that holds is a match",
            vec![one(with_conditions(fits(), condition()))],
            get().with("channel", text("sms")),
            true,
        )
        .matches(vec![at()])
        .near_misses(vec![]),
        case(
            "IAM v2: a DENY's condition that cannot be evaluated matches",
            vec![one(with_conditions(deny(&["iam:users:get"], &["iam:users:alice"], &["t1"]), condition()))],
            get(),
            false,
        )
        .reasons(vec![iam_at("p1", 0, Deny)])
        .matches(vec![iam_at("p1", 0, Deny)])
        .near_misses(vec![]),
        case(
            "IAM v2: a DENY's condition that fails",
            vec![one(with_conditions(deny(&["iam:users:get"], &["iam:users:alice"], &["t1"]), condition()))],
            get().with("channel", text("email")),
            false,
        )
        .reasons(vec![])
        .near_misses(vec![near(iam_at("p1", 0, Deny), Criterion::Condition)]),
        case(
            "IAM v2: the condition and the action failed is no near miss",
            vec![one(with_conditions(allow(&["iam:users:list"], &["iam:users:alice"], &["t1"]), condition()))],
            get().with("channel", text("email")),
            false,
        )
        .near_misses(vec![]),
        case(
            "IAM v2: the condition and the tenant failed is no near miss",
            vec![one(with_conditions(allow(&["iam:users:get"], &["iam:users:alice"], &["t2"]), condition()))],
            get(),
            false,
        )
        .near_misses(vec![]),
        case(
            "IAM v2: a near-missing DENY, and the matching ALLOW",
            vec![iam("p1", &[ALICE], vec![fits(), deny(&["iam:users:get"], &["iam:users:alice"], &["t2"])])],
            get(),
            true,
        )
        .matches(vec![at()])
        .near_misses(vec![near(iam_at("p1", 1, Deny), Criterion::Tenant)]),
        case("org: a full match is a match", org_one(org_fits()), update(), true)
            .matches(vec![org_at0()])
            .near_misses(vec![]),
        case("org: no organization named fails the organization", org_one(org_fits()), update().org(None), false)
            .matches(vec![])
            .near_misses(vec![near(org_at0(), Criterion::Organization)]),
        case("org: another organization fails the organization", org_one(org_fits()), update().org(Some("o2")), false)
            .near_misses(vec![near(org_at0(), Criterion::Organization)]),
        case("org: another action fails the action", org_one(org_fits()), org_check("view", "/a/b"), false)
            .near_misses(vec![near(org_at0(), Criterion::Action)]),
        case("org: an IAM v2 action fails the action", org_one(org_fits()), org_check("iam:users:get", "/a/b"), false)
            .near_misses(vec![near(org_at0(), Criterion::Action)]),
        case("org: another path fails the resource", org_one(org_fits()), org_check("update", "/a/b/c"), false)
            .near_misses(vec![near(org_at0(), Criterion::Resource)]),
        case(
            "org: a colon resource fails the resource",
            org_one(org_fits()),
            org_check("update", "iam:users:alice"),
            false,
        )
        .near_misses(vec![near(org_at0(), Criterion::Resource)]),
        case(
            "org: a condition that fails",
            org_one(definition(Allow, &[OrgAction::Update], &["/a/*"], condition())),
            update().with("channel", text("email")),
            false,
        )
        .near_misses(vec![near(org_at0(), Criterion::Condition)]),
        case(
            "org: an ALLOW's condition that cannot be evaluated",
            org_one(definition(Allow, &[OrgAction::Update], &["/a/*"], condition())),
            update(),
            false,
        )
        .near_misses(vec![near(org_at0(), Criterion::Condition)]),
        case(
            "org: a DENY's condition that cannot be evaluated matches",
            org_one(definition(Deny, &[OrgAction::Update], &["/a/*"], condition())),
            update(),
            false,
        )
        .reasons(vec![org_at("op1", 0, "o1", Deny)])
        .matches(vec![org_at("op1", 0, "o1", Deny)])
        .near_misses(vec![]),
        case(
            "org: a DENY's condition that fails",
            org_one(definition(Deny, &[OrgAction::Update], &["/a/*"], condition())),
            update().with("channel", text("email")),
            false,
        )
        .reasons(vec![])
        .near_misses(vec![near(org_at("op1", 0, "o1", Deny), Criterion::Condition)]),
        case(
            "org: the organization and the action failed is no near miss",
            org_one(org_fits()),
            org_check("view", "/a/b").org(None),
            false,
        )
        .near_misses(vec![]),
        case(
            "org: reached in o2 while checking o1, a near miss by organization",
            vec![org_policy("op2", "o2", vec![org_fits()]), assign("a1", "o2", ALICE, &[], &["op2"])],
            update(),
            false,
        )
        .near_misses(vec![near(org_at("op2", 0, "o2", Allow), Criterion::Organization)]),
        case(
            "org: reached through a role, a near miss",
            vec![
                org_policy("op1", "o1", vec![org_fits()]),
                org_role("or1", "o1", &["op1"]),
                assign("a1", "o1", ALICE, &["or1"], &[]),
            ],
            update().org(None),
            false,
        )
        .near_misses(vec![near(org_at0(), Criterion::Organization)]),
        case(
            "org: not assigned is no near miss",
            vec![org_policy("op1", "o1", vec![org_fits()]), assign("a1", "o1", "user:local:bob", &[], &["op1"])],
            update(),
            false,
        )
        .near_misses(vec![]),
        case(
            "org: a policy of another organization than its assignment is no near miss",
            vec![org_policy("op2", "o2", vec![org_fits()]), assign("a1", "o1", ALICE, &[], &["op2"])],
            update(),
            false,
        )
        .near_misses(vec![]),
        case(
            "both surfaces, in Match order",
            vec![
                iam("p2", &[ALICE], vec![allow(&["update"], &["/a/b"], &["t2"]), allow(&["*"], &["/a/b"], &["t1"])]),
                org_policy("p1", "o1", vec![org_fits(), org_allow(&[OrgAction::View], &["/a/*"])]),
                assign("a1", "o1", ALICE, &[], &["p1"]),
            ],
            update(),
            true,
        )
        .reasons(vec![org_at("p1", 0, "o1", Allow), iam_at("p2", 1, Allow)])
        .matches(vec![org_at("p1", 0, "o1", Allow), iam_at("p2", 1, Allow)])
        .near_misses(vec![
            near(org_at("p1", 1, "o1", Allow), Criterion::Action),
            near(iam_at("p2", 0, Allow), Criterion::Tenant),
        ]),
    ]);
}

#[test]
fn near_misses_stop_at_the_limit() {
    const IDS: [&str; 12] = ["p00", "p01", "p02", "p03", "p04", "p05", "p06", "p07", "p08", "p09", "p10", "p11"];
    assert_eq!(MAX_NEAR_MISSES, 10);
    // Twelve policies each missing on the action, put in reverse order.
    let ops: Vec<Op> = IDS
        .iter()
        .rev()
        .map(|id| iam(id, &[ALICE], vec![allow(&["iam:users:list"], &["iam:users:alice"], &["t1"])]))
        .collect();
    let first_ten: Vec<NearMiss> =
        IDS.iter().take(MAX_NEAR_MISSES).map(|id| near(iam_at(id, 0, Allow), Criterion::Action)).collect();
    // One policy with twelve statements, each missing on a criterion of its own.
    let statements: Vec<Statement> = (0..12)
        .map(|i| match i % 3 {
            0 => allow(&["iam:users:list"], &["iam:users:alice"], &["t1"]),
            1 => allow(&["iam:users:get"], &["iam:users:bob"], &["t1"]),
            _ => allow(&["iam:users:get"], &["iam:users:alice"], &["t2"]),
        })
        .collect();
    let criteria = [Criterion::Action, Criterion::Resource, Criterion::Tenant];
    let ten_of_one: Vec<NearMiss> =
        (0..MAX_NEAR_MISSES).map(|i| near(iam_at("p1", i, Allow), criteria[i % 3])).collect();
    // Nine near misses: all are listed.
    let nine: Vec<Op> = IDS
        .iter()
        .take(9)
        .map(|id| iam(id, &[ALICE], vec![allow(&["iam:users:list"], &["iam:users:alice"], &["t1"])]))
        .collect();
    let all_nine: Vec<NearMiss> = IDS.iter().take(9).map(|id| near(iam_at(id, 0, Allow), Criterion::Action)).collect();
    run(vec![
        case("twelve near misses: the first ten, in policy order", ops.clone(), get(), false).near_misses(first_ten),
        case(
            "twelve near misses of one policy: its first ten statements",
            vec![iam("p1", &[ALICE], statements)],
            get(),
            false,
        )
        .near_misses(ten_of_one),
        case("nine near misses: all nine", nine, get(), false).near_misses(all_nine),
        case(
            "matches are not limited",
            IDS.iter().map(|id| iam(id, &[ALICE], vec![allow(&["*"], &["*"], &["*"])])).collect(),
            get(),
            true,
        )
        .matches(IDS.iter().map(|id| iam_at(id, 0, Allow)).collect()),
    ]);
}

// ---------------------------------------------------------------------------------------------
// Searches: candidates from the IAM v2 ALLOWs.
// ---------------------------------------------------------------------------------------------

/// The candidates a search answers: concrete entities, and patterns.
type Found = (BTreeSet<String>, BTreeSet<String>);

/// One row of a search table: a state, a search of it, and what it must find.
struct SearchCase {
    name: String,
    ops: Vec<Op>,
    search: Box<dyn Fn(&Engine) -> Found>,
    concrete: &'static [&'static str],
    patterns: &'static [&'static str],
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Who may do `action` on `resource`.
fn subjects_of(
    name: &str,
    ops: Vec<Op>,
    (action, resource): (&'static str, &'static str),
    subjects: &'static [&'static str],
    patterns: &'static [&'static str],
) -> SearchCase {
    let search = Box::new(move |engine: &Engine| {
        let found = engine.subject_candidates(action, resource);
        (found.subjects, found.patterns)
    });
    SearchCase { name: name.into(), ops, search, concrete: subjects, patterns }
}

/// What `subject`, with `teams`, may do `action` on.
fn resources_of(
    name: &str,
    ops: Vec<Op>,
    (subject, teams, action): (&'static str, &'static [&'static str], &'static str),
    resources: &'static [&'static str],
    patterns: &'static [&'static str],
) -> SearchCase {
    let search = Box::new(move |engine: &Engine| {
        let found = engine.resource_candidates(subject, &strings(teams), action);
        (found.resources, found.patterns)
    });
    SearchCase { name: name.into(), ops, search, concrete: resources, patterns }
}

/// What `subject`, with `teams`, may do on `resource`.
fn actions_of(
    name: &str,
    ops: Vec<Op>,
    (subject, teams, resource): (&'static str, &'static [&'static str], &'static str),
    actions: &'static [&'static str],
    patterns: &'static [&'static str],
) -> SearchCase {
    let search = Box::new(move |engine: &Engine| {
        let found = engine.action_candidates(subject, &strings(teams), resource);
        (found.actions, found.patterns)
    });
    SearchCase { name: name.into(), ops, search, concrete: actions, patterns }
}

fn run_search(cases: Vec<SearchCase>) {
    let mut failures = Vec::new();
    for case in &cases {
        let mut engine = Engine::new();
        for op in &case.ops {
            op.apply(&mut engine);
        }
        let (concrete, patterns) = (case.search)(&engine);
        let mut wrong = Vec::new();
        if concrete != set(case.concrete) {
            wrong.push(format!("concrete: got {concrete:?}, want {:?}", case.concrete));
        }
        if patterns != set(case.patterns) {
            wrong.push(format!("patterns: got {patterns:?}, want {:?}", case.patterns));
        }
        if !wrong.is_empty() {
            failures.push(format!("- {}:\n    {}", case.name, wrong.join("\n    ")));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

const BOB: &str = "user:local:bob";
const GET_ALICE: (&str, &str) = ("iam:users:get", "iam:users:alice");

#[test]
fn subject_search_finds_the_members_of_the_matching_allows() {
    let grant = |members: &[&str], actions: &[&str], resources: &[&str]| {
        iam("p1", members, vec![allow(actions, resources, &["t1"])])
    };
    let mine = || grant(&[ALICE], &["iam:users:get"], &["iam:users:alice"]);
    let by_name = |members: &[&str]| grant(members, &["iam:users:get"], &["iam:users:${a2:username}"]);
    let every_provider: &[&str] = &["user:ldap:alice", "user:local:alice", "user:oidc:alice", "user:saml:alice"];
    run_search(vec![
        subjects_of("nothing stored: none", vec![], GET_ALICE, &[], &[]),
        subjects_of("an exact member", vec![mine()], GET_ALICE, &[ALICE], &[]),
        subjects_of("another action: none", vec![mine()], ("iam:users:list", "iam:users:alice"), &[], &[]),
        subjects_of("another resource: none", vec![mine()], ("iam:users:get", "iam:users:bob"), &[], &[]),
        subjects_of("a removed policy: none", vec![mine(), Op::RemovePolicy("p1")], GET_ALICE, &[], &[]),
        subjects_of(
            "a DENY gives none, nor takes any away",
            vec![
                iam("p2", &[BOB], vec![deny(&["*"], &["*"], &["*"])]),
                iam("p3", &[ALICE], vec![deny(&["*"], &["*"], &["*"])]),
                mine(),
            ],
            GET_ALICE,
            &[ALICE],
            &[],
        ),
        subjects_of(
            "every member of the policy, wildcards as patterns",
            vec![grant(&[ALICE, "token:t1", "*", "user:local:*", "tls:service:svc:*"], &["*"], &["*"])],
            GET_ALICE,
            &[ALICE, "token:t1"],
            &["*", "tls:service:svc:*", "user:local:*"],
        ),
        subjects_of(
            "every matching statement's policy",
            vec![mine(), iam("p2", &[BOB], vec![allow(&["iam:*"], &["iam:users:*"], &["*"])])],
            GET_ALICE,
            &[ALICE, BOB],
            &[],
        ),
        subjects_of(
            "tenants and conditions are left to the check",
            vec![iam(
                "p1",
                &[ALICE],
                vec![with_conditions(
                    allow(&["iam:users:get"], &["iam:users:alice"], &[]),
                    vec![all(vec![test(Operator::StringEquals, "channel", "sms")])],
                )],
            )],
            GET_ALICE,
            &[ALICE],
            &[],
        ),
        subjects_of(
            "by every action shape",
            vec![
                iam("p1", &["token:a"], vec![allow(&["*:get"], &["*"], &["*"])]),
                iam("p2", &["token:b"], vec![allow(&["iam:*"], &["*"], &["*"])]),
                iam("p3", &["token:c"], vec![allow(&["iam:*:get"], &["*"], &["*"])]),
                iam("p4", &["token:d"], vec![allow(&["iam:users:*"], &["*"], &["*"])]),
                iam("p5", &["token:e"], vec![allow(&["iam:users:list", "iam:*:list"], &["*"], &["*"])]),
            ],
            GET_ALICE,
            &["token:a", "token:b", "token:c", "token:d"],
            &[],
        ),
        subjects_of(
            "by every resource shape",
            vec![
                iam("p1", &["token:a"], vec![allow(&["*"], &["iam:*"], &["*"])]),
                iam("p2", &["token:b"], vec![allow(&["*"], &["iam:users:*"], &["*"])]),
                iam("p3", &["token:c"], vec![allow(&["*"], &["iam:users"], &["*"])]),
                iam("p4", &["token:d"], vec![allow(&["*"], &["iam:users:alice:*"], &["*"])]),
                iam("p5", &["token:e"], vec![allow(&["*"], &["infra:*", "iam:users:alice"], &["*"])]),
            ],
            GET_ALICE,
            &["token:a", "token:b", "token:e"],
            &[],
        ),
        subjects_of(
            "through a role, while it holds the action",
            vec![role("r1", &["iam:users:*"]), iam("p1", &[ALICE], vec![with_role(allow(&[], &["*"], &["*"]), "r1")])],
            GET_ALICE,
            &[ALICE],
            &[],
        ),
        subjects_of(
            "through a removed role: none",
            vec![
                role("r1", &["iam:users:*"]),
                iam("p1", &[ALICE], vec![with_role(allow(&[], &["*"], &["*"]), "r1")]),
                Op::RemoveRole("r1"),
            ],
            GET_ALICE,
            &[],
            &[],
        ),
        subjects_of(
            "a team member: the team, and the members the engine holds of it",
            vec![grant(&["team:local:eng"], &["*"], &["*"]), team("team:local:eng", &[ALICE, BOB])],
            GET_ALICE,
            &[ALICE, BOB, "team:local:eng"],
            &[],
        ),
        subjects_of(
            "a team the engine does not hold: the team alone",
            vec![grant(&["team:local:eng"], &["*"], &["*"]), team("team:local:ops", &[ALICE])],
            GET_ALICE,
            &["team:local:eng"],
            &[],
        ),
        subjects_of(
            "a wildcard member: the members of every team it matches",
            vec![
                grant(&["team:local:*"], &["*"], &["*"]),
                team("team:local:eng", &[ALICE]),
                team("team:local:ops", &["token:t1"]),
                team("team:ldap:eng", &[BOB]),
            ],
            GET_ALICE,
            &[ALICE, "token:t1"],
            &["team:local:*"],
        ),
        subjects_of(
            "teams are one level: a team's team, not its members",
            vec![
                grant(&["team:local:admins"], &["*"], &["*"]),
                team("team:local:admins", &["team:local:eng"]),
                team("team:local:eng", &[ALICE]),
            ],
            GET_ALICE,
            &["team:local:admins", "team:local:eng"],
            &[],
        ),
        subjects_of(
            "a member who left the team is no longer one",
            vec![
                grant(&["team:local:eng"], &["*"], &["*"]),
                team("team:local:eng", &[ALICE, BOB]),
                team("team:local:eng", &[BOB]),
            ],
            GET_ALICE,
            &[BOB, "team:local:eng"],
            &[],
        ),
        subjects_of(
            "${a2:username}: a wildcard member stands for the users of that name",
            vec![by_name(&["user:*"])],
            GET_ALICE,
            every_provider,
            &[],
        ),
        subjects_of(
            "${a2:username}: `*` too, and no pattern",
            vec![by_name(&["*", "token:t1", "team:local:eng"])],
            GET_ALICE,
            every_provider,
            &[],
        ),
        subjects_of(
            "${a2:username}: a provider's wildcard, that provider's user",
            vec![by_name(&["user:ldap:*"])],
            GET_ALICE,
            &["user:ldap:alice"],
            &[],
        ),
        subjects_of(
            "${a2:username}: exact members of that name only",
            vec![by_name(&[ALICE, BOB, "user:ldap:alicia"])],
            GET_ALICE,
            &[ALICE],
            &[],
        ),
        subjects_of(
            "${a2:username}: the users of that name a team lists",
            vec![
                by_name(&["team:local:eng"]),
                team("team:local:eng", &[BOB, "user:ldap:alice"]),
                team("team:local:ops", &[ALICE]),
            ],
            GET_ALICE,
            &["user:ldap:alice"],
            &[],
        ),
        subjects_of(
            "${a2:username}: a resource no name fills: none",
            vec![by_name(&["user:*"])],
            ("iam:users:get", "iam:users:alice:keys"),
            &[],
            &[],
        ),
        subjects_of(
            "${a2:username}: a prefix pattern names the user below it",
            vec![grant(&["user:*"], &["*"], &["iam:users:${a2:username}:*"])],
            ("iam:users:get", "iam:users:alice:keys"),
            every_provider,
            &[],
        ),
        subjects_of(
            "${a2:username} twice: one name for both",
            vec![grant(&["user:local:*"], &["*"], &["iam:${a2:username}:${a2:username}"])],
            ("iam:users:get", "iam:alice:alice"),
            &[ALICE],
            &[],
        ),
        subjects_of(
            "${a2:username} twice: two names, none",
            vec![grant(&["user:local:*"], &["*"], &["iam:${a2:username}:${a2:username}"])],
            ("iam:users:get", "iam:alice:bob"),
            &[],
            &[],
        ),
        subjects_of(
            "${a2:username} beside a pattern that matches without it: every member",
            vec![grant(&["user:*", BOB], &["*"], &["iam:users:${a2:username}", "iam:*"])],
            GET_ALICE,
            &[BOB],
            &["user:*"],
        ),
        subjects_of(
            "AuthZEN action names",
            vec![grant(&[ALICE], &["authzen:record:*"], &["todo:1"])],
            ("authzen:record:can_read_todos", "todo:1"),
            &[ALICE],
            &[],
        ),
        subjects_of(
            "organization definitions take no part",
            vec![org_policy("op1", "o1", vec![org_allow(ALL, &["/**"])]), assign("a1", "o1", ALICE, &[], &["op1"])],
            ("view", "/a/b"),
            &[],
            &[],
        ),
    ]);
}

#[test]
fn resource_search_finds_the_resources_of_the_reached_allows() {
    let grant = |members: &[&str], actions: &[&str], resources: &[&str]| {
        iam("p1", members, vec![allow(actions, resources, &["t1"])])
    };
    const GET: (&str, &[&str], &str) = (ALICE, &[], "iam:users:get");
    run_search(vec![
        resources_of("nothing stored: none", vec![], GET, &[], &[]),
        resources_of(
            "exact patterns as resources, `*` and prefixes as patterns",
            vec![grant(&[ALICE], &["iam:users:get"], &["iam:users:alice", "iam:users", "iam:*", "*", "/a/b"])],
            GET,
            &["/a/b", "iam:users", "iam:users:alice"],
            &["*", "iam:*"],
        ),
        resources_of(
            "${a2:username} filled with the subject's name",
            vec![grant(&["user:*"], &["*"], &["iam:users:${a2:username}", "iam:users:${a2:username}:*"])],
            GET,
            &["iam:users:alice"],
            &["iam:users:alice:*"],
        ),
        resources_of(
            "${a2:username}: a subject with no name, none",
            vec![grant(&["*"], &["*"], &["iam:users:${a2:username}", "iam:x"])],
            ("token:t1", &[], "iam:users:get"),
            &["iam:x"],
            &[],
        ),
        resources_of(
            "${a2:username}: a team's name is not the subject's",
            vec![grant(&["team:local:eng"], &["*"], &["iam:users:${a2:username}"])],
            ("token:t1", &["team:local:eng"], "iam:users:get"),
            &[],
            &[],
        ),
        resources_of("another action: none", vec![grant(&[ALICE], &["iam:users:list"], &["iam:x"])], GET, &[], &[]),
        resources_of("another member: none", vec![grant(&[BOB, "user:ldap:*"], &["*"], &["iam:x"])], GET, &[], &[]),
        resources_of(
            "a DENY gives none, nor takes any away",
            vec![
                grant(&[ALICE], &["*"], &["iam:x"]),
                iam("p2", &[ALICE], vec![deny(&["*"], &["iam:x", "iam:y"], &["*"])]),
            ],
            GET,
            &["iam:x"],
            &[],
        ),
        resources_of(
            "tenants and conditions are left to the check",
            vec![iam(
                "p1",
                &[ALICE],
                vec![with_conditions(
                    allow(&["*"], &["iam:x"], &[]),
                    vec![all(vec![test(Operator::Bool, "mfa", "true")])],
                )],
            )],
            GET,
            &["iam:x"],
            &[],
        ),
        resources_of(
            "through wildcard members, request teams and held teams",
            vec![
                iam("p1", &["user:local:*"], vec![allow(&["*"], &["iam:a"], &["*"])]),
                iam("p2", &["team:local:ops"], vec![allow(&["*"], &["iam:b"], &["*"])]),
                iam("p3", &["team:local:eng"], vec![allow(&["*"], &["iam:c"], &["*"])]),
                iam("p4", &["team:local:other"], vec![allow(&["*"], &["iam:d"], &["*"])]),
                team("team:local:eng", &[ALICE]),
            ],
            (ALICE, &["team:local:ops"], "iam:users:get"),
            &["iam:a", "iam:b", "iam:c"],
            &[],
        ),
        resources_of(
            "through a role",
            vec![
                role("r1", &["iam:*:get"]),
                iam("p1", &[ALICE], vec![with_role(allow(&[], &["iam:x"], &["*"]), "r1")]),
                iam("p2", &[ALICE], vec![with_role(allow(&[], &["iam:y"], &["*"]), "r2")]),
            ],
            GET,
            &["iam:x"],
            &[],
        ),
        resources_of(
            "AuthZEN action names",
            vec![grant(&[ALICE], &["myapp:Doc:v1.read"], &["myapp:docs:d1"])],
            (ALICE, &[], "myapp:Doc:v1.read"),
            &["myapp:docs:d1"],
            &[],
        ),
        resources_of(
            "organization definitions take no part",
            vec![org_policy("op1", "o1", vec![org_allow(ALL, &["/a/b"])]), assign("a1", "o1", ALICE, &[], &["op1"])],
            (ALICE, &[], "view"),
            &[],
            &[],
        ),
    ]);
}

#[test]
fn action_search_finds_the_actions_of_the_reached_allows() {
    let grant = |members: &[&str], actions: &[&str], resources: &[&str]| {
        iam("p1", members, vec![allow(actions, resources, &["t1"])])
    };
    const ON_ALICE: (&str, &[&str], &str) = (ALICE, &[], "iam:users:alice");
    run_search(vec![
        actions_of("nothing stored: none", vec![], ON_ALICE, &[], &[]),
        actions_of(
            "concrete actions as actions, wildcards as patterns",
            vec![grant(&[ALICE], &["iam:users:get", "iam:*", "*:list", "*", "iam:*:get", "iam:users:*"], &["*"])],
            ON_ALICE,
            &["iam:users:get"],
            &["*", "*:list", "iam:*", "iam:*:get", "iam:users:*"],
        ),
        actions_of(
            "a role's actions too",
            vec![
                role("r1", &["iam:users:delete", "infra:*"]),
                iam("p1", &[ALICE], vec![with_role(allow(&["iam:users:get"], &["iam:users:*"], &["*"]), "r1")]),
            ],
            ON_ALICE,
            &["iam:users:delete", "iam:users:get"],
            &["infra:*"],
        ),
        actions_of(
            "a role put after the statement, then replaced",
            vec![
                iam("p1", &[ALICE], vec![with_role(allow(&[], &["*"], &["*"]), "r1")]),
                role("r1", &["iam:users:delete"]),
                role("r1", &["iam:users:list"]),
            ],
            ON_ALICE,
            &["iam:users:list"],
            &[],
        ),
        actions_of(
            "by every resource shape",
            vec![
                iam("p1", &[ALICE], vec![allow(&["a:b:c"], &["iam:*"], &["*"])]),
                iam("p2", &[ALICE], vec![allow(&["a:b:d"], &["iam:users:alice"], &["*"])]),
                iam("p3", &[ALICE], vec![allow(&["a:b:e"], &["iam:users:${a2:username}"], &["*"])]),
                iam("p4", &[ALICE], vec![allow(&["a:b:f"], &["iam:users:alice:*", "iam:users"], &["*"])]),
                iam("p5", &[ALICE], vec![allow(&["a:b:g"], &["*"], &["*"])]),
            ],
            ON_ALICE,
            &["a:b:c", "a:b:d", "a:b:e", "a:b:g"],
            &[],
        ),
        actions_of(
            "${a2:username}: another subject's name, none",
            vec![grant(&["*"], &["a:b:c"], &["iam:users:${a2:username}"])],
            (BOB, &[], "iam:users:alice"),
            &[],
            &[],
        ),
        actions_of(
            "another member or resource: none",
            vec![
                grant(&[BOB], &["a:b:c"], &["*"]),
                iam("p2", &[ALICE], vec![allow(&["a:b:d"], &["iam:users:bob"], &["*"])]),
            ],
            ON_ALICE,
            &[],
            &[],
        ),
        actions_of(
            "a DENY gives none, nor takes any away",
            vec![
                grant(&[ALICE], &["a:b:c"], &["*"]),
                iam("p2", &[ALICE], vec![deny(&["a:b:c", "a:b:d"], &["*"], &["*"])]),
            ],
            ON_ALICE,
            &["a:b:c"],
            &[],
        ),
        actions_of(
            "through request teams and held teams, tenants and conditions aside",
            vec![
                iam("p1", &["team:local:ops"], vec![allow(&["a:b:c"], &["*"], &[])]),
                iam(
                    "p2",
                    &["team:local:*"],
                    vec![with_conditions(
                        allow(&["a:b:d"], &["*"], &["t9"]),
                        vec![any(vec![test(Operator::StringEquals, "k", "v")])],
                    )],
                ),
                iam("p3", &["team:ldap:*"], vec![allow(&["a:b:e"], &["*"], &["*"])]),
                team("team:local:eng", &[ALICE]),
            ],
            (ALICE, &["team:local:ops"], "iam:users:alice"),
            &["a:b:c", "a:b:d"],
            &[],
        ),
        actions_of(
            "AuthZEN action names",
            vec![grant(
                &[ALICE],
                &["authzen:record:can_read_todos", "myapp:Doc:v1.read", "myapp:*:v2.read"],
                &["todo:*"],
            )],
            (ALICE, &[], "todo:1"),
            &["authzen:record:can_read_todos", "myapp:Doc:v1.read"],
            &["myapp:*:v2.read"],
        ),
        actions_of(
            "organization definitions take no part",
            vec![org_policy("op1", "o1", vec![org_allow(ALL, &["/a/b"])]), assign("a1", "o1", ALICE, &[], &["op1"])],
            (ALICE, &[], "/a/b"),
            &[],
            &[],
        ),
    ]);
}
