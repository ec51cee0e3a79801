//! The Check API (`iamd.authz.v1`: Check, BatchCheck, Explain) over gRPC, gRPC-web (binary
//! and text) and JSON: seed-shaped policies of both surfaces decide as A.7 says, with the
//! same answer on every protocol; writes are visible to the next check at once; bad input
//! gets its error.

use http::Method;
use iamd::pb::iamd::authz::v1 as authz;
use serde_json::{Value, json};
use tonic::Code;

use crate::parity::{UNKNOWN, parity_with};
use crate::support::{Outcome, PROTOCOLS, Rest, TestServer, rpc};

fn check(body: Value) -> Rest<authz::CheckRequest, authz::CheckResponse> {
    Rest::new(rpc::CHECK, Method::POST, "/v1/authz:check").body(body)
}

fn batch(body: Value) -> Rest<authz::BatchCheckRequest, authz::BatchCheckResponse> {
    Rest::new(rpc::BATCH_CHECK, Method::POST, "/v1/authz:batchCheck").body(body)
}

fn explain(body: Value) -> Rest<authz::ExplainRequest, authz::ExplainResponse> {
    Rest::new(rpc::EXPLAIN, Method::POST, "/v1/authz:explain").body(body).body_field("check")
}

async fn post(server: &TestServer, path: &str, body: Value) -> Value {
    let reply = server.json(Method::POST, path, Some(body)).await;
    assert!(reply.status.is_success(), "{path}: {}", reply.body);
    reply.body
}

/// IAM v2 policies shaped as seed 003's, and a DENY for every user, a self-service policy:
///
/// - `readers`: `user:local:newuser` and `team:local:newteam` get role `myRole`
///   (`iam:users:get|list`) in tenant `t1`, and `iam:teams:*` on `iam:teams:*` everywhere;
/// - `no-deletes`: every user is denied `*:delete`;
/// - `self`: local users may update `iam:users:${a2:username}`.
async fn iam_state(server: &TestServer) {
    for tenant in ["t1", "t2"] {
        post(server, "/iam/tenants", json!({"id": tenant, "name": tenant, "skipPolicies": true})).await;
    }
    post(
        server,
        "/iam/roles",
        json!({"id": "myRole", "name": "My role", "actions": ["iam:users:get", "iam:users:list"]}),
    )
    .await;
    post(
        server,
        "/iam/policies",
        json!({"id": "readers", "name": "Readers", "members": ["user:local:newuser", "team:local:newteam"],
               "statements": [
                   {"effect": "ALLOW", "role": "myRole", "tenants": ["t1"]},
                   {"effect": "ALLOW", "actions": ["iam:teams:*"], "resources": ["iam:teams:*"], "tenants": ["*"]}]}),
    )
    .await;
    post(
        server,
        "/iam/policies",
        json!({"id": "no-deletes", "name": "No deletes", "members": ["user:*"],
               "statements": [{"effect": "DENY", "actions": ["*:delete"], "tenants": ["*"]}]}),
    )
    .await;
    post(
        server,
        "/iam/policies",
        json!({"id": "self", "name": "Self", "members": ["user:local:*"],
               "statements": [{"effect": "ALLOW", "actions": ["iam:users:update"],
                               "resources": ["iam:users:${a2:username}"], "tenants": ["*"]}]}),
    )
    .await;
}

/// An organization policy shaped as seed 004's (`channels`: view and create channels when the
/// context's `request.channel` is `sms`; delete them never), its role `operators`, and
/// alice's assignment of the role. Answers [policy, role, assignment] ids.
async fn org_state(server: &TestServer, org: &str) -> Vec<String> {
    let policy = post(
        server,
        &format!("/organizations/{org}/iam-policies"),
        json!({"name": "channels", "definitions": [
            {"effect": "allow", "actions": ["view", "create"], "resources": ["/workspaces/*/channels/**"],
             "conditionsAll": [{"all": {"stringEquals": {"request.channel": "sms"}}}]},
            {"effect": "deny", "actions": ["delete"], "resources": ["/workspaces/*/channels/**"]}]}),
    )
    .await;
    let policy = policy["id"].as_str().unwrap().to_owned();
    let role =
        post(server, &format!("/organizations/{org}/iam-roles"), json!({"name": "operators", "policyIds": [policy]}))
            .await;
    let role = role["id"].as_str().unwrap().to_owned();
    let assignment = post(
        server,
        &format!("/organizations/{org}/iam-assignments"),
        json!({"principal": "user:local:alice", "roleIds": [role]}),
    )
    .await;
    vec![policy, role, assignment["id"].as_str().unwrap().to_owned()]
}

async fn both(server: &TestServer, org: &str) -> Vec<String> {
    iam_state(server).await;
    org_state(server, org).await
}

fn iam(policy: &str, statement: i32, effect: &str) -> Value {
    json!({"policyId": policy, "statementIndex": statement, "effect": effect, "organizationId": ""})
}

fn org(statement: i32, effect: &str) -> Value {
    json!({"policyId": "<id0>", "statementIndex": statement, "effect": effect, "organizationId": "<uuid>"})
}

/// What a check answers, without its consistency token (each case's is checked to be the
/// same on every protocol by the harness).
fn decision(answer: &Value) -> Value {
    json!({"allowed": answer["allowed"], "decision": answer["decision"], "reasons": answer["reasons"]})
}

fn allowed(reasons: Vec<Value>) -> Value {
    json!({"allowed": true, "decision": "ALLOW", "reasons": reasons})
}

fn denied(reasons: Vec<Value>) -> Value {
    json!({"allowed": false, "decision": "DENY", "reasons": reasons})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_shaped_iam_policies_decide_as_a7_says_on_every_protocol() {
    let cases = [
        // A role's action in the statement's tenant; not in another.
        (
            json!({"subject": "user:local:newuser", "action": "iam:users:get", "resource": "iam:users:bob", "tenant": "t1"}),
            allowed(vec![iam("readers", 0, "ALLOW")]),
        ),
        (
            json!({"subject": "user:local:newuser", "action": "iam:users:get", "resource": "iam:users:bob", "tenant": "t2"}),
            denied(vec![]),
        ),
        // A check naming no tenant is allowed when any tenant is.
        (
            json!({"subject": "user:local:newuser", "action": "iam:users:get", "resource": "iam:users:bob"}),
            allowed(vec![iam("readers", 0, "ALLOW")]),
        ),
        // Through a team the request names.
        (
            json!({"subject": "user:local:someone", "teams": ["team:local:newteam"], "action": "iam:users:list",
                "resource": "iam:users", "tenant": "t1"}),
            allowed(vec![iam("readers", 0, "ALLOW")]),
        ),
        // `a:*` is what lies below `a`, not `a`.
        (
            json!({"subject": "user:local:newuser", "action": "iam:teams:get", "resource": "iam:teams:eng"}),
            allowed(vec![iam("readers", 1, "ALLOW")]),
        ),
        (json!({"subject": "user:local:newuser", "action": "iam:teams:get", "resource": "iam:teams"}), denied(vec![])),
        // A DENY anywhere overrides every ALLOW.
        (
            json!({"subject": "user:local:newuser", "action": "iam:teams:delete", "resource": "iam:teams:eng"}),
            denied(vec![iam("no-deletes", 0, "DENY")]),
        ),
        // `${a2:username}` is the checking user's name.
        (
            json!({"subject": "user:local:carol", "action": "iam:users:update", "resource": "iam:users:carol"}),
            // And iamd's own statement that local users may rename themselves.
            allowed(vec![iam("self", 0, "ALLOW"), iam("~system-local-users", 0, "ALLOW")]),
        ),
        (
            json!({"subject": "user:local:carol", "action": "iam:users:update", "resource": "iam:users:dave"}),
            denied(vec![]),
        ),
        // The managed administrator policy grants team `admins` everything, but its own
        // DENY and every user's still hold.
        (
            json!({"subject": "user:local:root", "teams": ["team:local:admins"], "action": "accounts:organizations:update",
                "resource": "accounts:organizations:o1"}),
            allowed(vec![iam("administrator-access", 0, "ALLOW")]),
        ),
        (
            json!({"subject": "user:local:root", "teams": ["team:local:admins"], "action": "iam:policies:delete",
                "resource": "iam:policies:readers"}),
            denied(vec![iam("no-deletes", 0, "DENY")]),
        ),
        // A token is not a user: neither `user:*` nor `${a2:username}` reach it.
        (json!({"subject": "token:ci", "action": "iam:users:update", "resource": "iam:users:ci"}), denied(vec![])),
    ];
    for (body, want) in cases {
        let answer = parity_with(
            async |server: &TestServer, org: &str| both(server, org).await,
            |_, _| check(body.clone()),
            Code::Ok,
        )
        .await;
        assert_eq!(decision(&answer), want, "{body}");
        assert!(answer["consistencyToken"].as_str().unwrap().parse::<u64>().unwrap() > 0, "{answer}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_shaped_organization_policies_decide_through_assignments_on_every_protocol() {
    let sms = json!({"request.channel": "sms"});
    let cases = [
        (
            json!({"subject": "user:local:alice", "action": "view", "resource": "/workspaces/w1/channels/c1",
                "organizationId": "{org}", "context": sms}),
            allowed(vec![org(0, "ALLOW")]),
        ),
        // The condition fails, or cannot be evaluated (fail closed).
        (
            json!({"subject": "user:local:alice", "action": "create", "resource": "/workspaces/w1/channels/c1",
                "organizationId": "{org}", "context": {"request.channel": "email"}}),
            denied(vec![]),
        ),
        (
            json!({"subject": "user:local:alice", "action": "view", "resource": "/workspaces/w1/channels/c1",
                "organizationId": "{org}"}),
            denied(vec![]),
        ),
        // `**` is one segment or more.
        (
            json!({"subject": "user:local:alice", "action": "view", "resource": "/workspaces/w1/channels",
                "organizationId": "{org}", "context": sms}),
            denied(vec![]),
        ),
        (
            json!({"subject": "user:local:alice", "action": "delete", "resource": "/workspaces/w1/channels/c1",
                "organizationId": "{org}", "context": sms}),
            denied(vec![org(1, "DENY")]),
        ),
        // Only within the organization the check names, and only for who is assigned.
        (
            json!({"subject": "user:local:alice", "action": "iam:users:get", "resource": "/workspaces/w1/channels/c1",
                "context": sms}),
            denied(vec![]),
        ),
        (
            json!({"subject": "user:local:bob", "action": "view", "resource": "/workspaces/w1/channels/c1",
                "organizationId": "{org}", "context": sms}),
            denied(vec![]),
        ),
        // An instance owner acts on every organization.
        (
            json!({"subject": "user:local:root", "teams": ["team:local:admins"], "action": "update",
                "resource": "/workspaces/w1", "organizationId": "{org}"}),
            allowed(vec![iam("administrator-access", 0, "ALLOW")]),
        ),
    ];
    for (body, want) in cases {
        let answer = parity_with(
            async |server: &TestServer, org: &str| both(server, org).await,
            |org, _| check(with_org(&body, org)),
            Code::Ok,
        )
        .await;
        assert_eq!(decision(&answer), want, "{body}");
    }
}

/// `body` with `{org}` standing for the organization.
fn with_org(body: &Value, org: &str) -> Value {
    serde_json::from_str(&body.to_string().replace("{org}", org)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_check_answers_in_the_order_of_its_checks() {
    let body = json!({"checks": [
        {"subject": "user:local:newuser", "action": "iam:users:get", "resource": "iam:users:bob", "tenant": "t1"},
        {"subject": "user:local:newuser", "action": "iam:teams:delete", "resource": "iam:teams:eng"},
        {"subject": "user:local:alice", "action": "view", "resource": "/workspaces/w/channels/c",
         "organizationId": "{org}", "context": {"request.channel": "sms"}},
        {"subject": "user:local:nobody", "action": "iam:users:get", "resource": "iam:users:bob"}]});
    let answer = parity_with(
        async |server: &TestServer, org: &str| both(server, org).await,
        |org, _| batch(with_org(&body, org)),
        Code::Ok,
    )
    .await;
    let results: Vec<Value> = answer["results"].as_array().unwrap().iter().map(decision).collect();
    assert_eq!(
        results,
        [
            allowed(vec![iam("readers", 0, "ALLOW")]),
            denied(vec![iam("no-deletes", 0, "DENY")]),
            allowed(vec![org(0, "ALLOW")]),
            denied(vec![]),
        ]
    );
    let tokens: Vec<&Value> = answer["results"].as_array().unwrap().iter().map(|r| &r["consistencyToken"]).collect();
    assert!(tokens.windows(2).all(|w| w[0] == w[1]), "one state for every check: {tokens:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_names_the_deciding_statements_and_the_near_misses() {
    // IAM v2: in tenant t2 the role's statement misses by its tenant, the DENY of every
    // user by its action; the others miss by two criteria.
    let body = json!({"subject": "user:local:newuser", "action": "iam:users:get", "resource": "iam:users:bob",
                      "tenant": "t2"});
    let answer = parity_with(
        async |server: &TestServer, org: &str| both(server, org).await,
        |_, _| explain(body.clone()),
        Code::Ok,
    )
    .await;
    assert_eq!(decision(&answer), denied(vec![]));
    assert_eq!(answer["matches"], json!([]));
    assert_eq!(
        answer["nearMisses"],
        json!([
            {"policyId": "no-deletes", "statementIndex": 0, "effect": "DENY", "organizationId": "", "failed": "ACTION"},
            {"policyId": "readers", "statementIndex": 0, "effect": "ALLOW", "organizationId": "", "failed": "TENANT"},
            // iamd's own: a local user reads itself, not others.
            {"policyId": "~system-local-users", "statementIndex": 0, "effect": "ALLOW", "organizationId": "", "failed": "RESOURCE"},
        ])
    );

    // Organizations: without the context the ALLOW misses by its condition, the DENY by its
    // action, and so does every user's DENY of `*:delete` (a UUID sorts before `no-deletes`).
    let body = json!({"subject": "user:local:alice", "action": "view", "resource": "/workspaces/w/channels/c",
                      "organizationId": "{org}"});
    let answer = parity_with(
        async |server: &TestServer, org: &str| both(server, org).await,
        |org, _| explain(with_org(&body, org)),
        Code::Ok,
    )
    .await;
    assert_eq!(decision(&answer), denied(vec![]));
    let miss = |statement: i32, effect: &str, failed: &str| {
        let mut miss = org(statement, effect);
        miss["failed"] = json!(failed);
        miss
    };
    let no_deletes = json!({"policyId": "no-deletes", "statementIndex": 0, "effect": "DENY", "organizationId": "", "failed": "ACTION"});
    assert_eq!(answer["nearMisses"], json!([miss(0, "ALLOW", "CONDITION"), miss(1, "DENY", "ACTION"), no_deletes]));
    let body = json!({"subject": "user:local:alice", "action": "delete", "resource": "/workspaces/w/channels/c",
                      "organizationId": "{org}", "context": {"request.channel": "sms"}});
    let answer = parity_with(
        async |server: &TestServer, org: &str| both(server, org).await,
        |org, _| explain(with_org(&body, org)),
        Code::Ok,
    )
    .await;
    assert_eq!(decision(&answer), denied(vec![org(1, "DENY")]));
    assert_eq!(answer["matches"], json!([org(1, "DENY")]));
    // `*:delete` names a verb of `service:type:verb` actions, not an organization's `delete`.
    assert_eq!(answer["nearMisses"], json!([miss(0, "ALLOW", "ACTION"), no_deletes]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_checks_get_their_error_on_every_protocol() {
    let ok = json!({"subject": "user:local:a", "action": "iam:users:get", "resource": "iam:users:b"});
    let with = |key: &str, value: Value| {
        let mut body = ok.clone();
        body[key] = value;
        body
    };
    let invalid = [
        with("subject", json!("")),
        with("subject", json!("user:*")),
        with("subject", json!("user:github:a")),
        with("teams", json!(["team:local:*"])),
        with("teams", json!(["user:local:b"])),
        with("action", json!("")),
        with("action", json!("iam:users:*")),
        with("action", json!("view")),
        with("resource", json!("")),
        with("resource", json!("iam:users:*")),
        with("resource", json!("iam:users:${a2:username}")),
        with("resource", json!("/workspaces/*")),
        with("tenant", json!("*")),
        with("consistencyToken", json!("soon")),
    ];
    for body in invalid {
        let answer = parity_with(none, |_, _| check(body.clone()), Code::InvalidArgument).await;
        assert_eq!(answer["reason"], "INVALID_ARGUMENT", "{body}");
    }
    let answer = parity_with(
        none,
        |_, _| batch(json!({"checks": [ok.clone(), with("action", json!("iam:users:*"))]})),
        Code::InvalidArgument,
    )
    .await;
    assert_eq!(answer["reason"], "INVALID_ARGUMENT");
    let unknown = with("organizationId", json!(UNKNOWN));
    let answer = parity_with(none, |_, _| check(unknown.clone()), Code::NotFound).await;
    assert_eq!(answer["reason"], "ORGANIZATION_NOT_FOUND");
    parity_with(none, |_, _| explain(unknown.clone()), Code::NotFound).await;
    let beyond = with("consistencyToken", json!("999999999"));
    let answer = parity_with(none, |_, _| check(beyond.clone()), Code::OutOfRange).await;
    assert_eq!(answer["reason"], "TOKEN_BEYOND_LOG");
    for checks in [Vec::new(), vec![ok.clone(); 101]] {
        let answer = parity_with(none, |_, _| batch(json!({"checks": checks.clone()})), Code::InvalidArgument).await;
        assert!(answer["message"].as_str().unwrap().contains("1 to 100 checks"), "{answer}");
    }
}

/// No state beyond the organization every parity case starts with.
async fn none(_: &TestServer, _: &str) -> Vec<String> {
    Vec::new()
}

/// The field a refusal names, on every protocol (the `BadRequest` detail JSON carries).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_names_the_field_and_a_context_must_be_an_object() {
    let server = TestServer::start().await;
    let reply = server
        .json(
            Method::POST,
            "/v1/authz:batchCheck",
            Some(json!({"checks": [
                {"subject": "user:local:a", "action": "iam:users:get", "resource": "iam:users:b"},
                {"subject": "user:local:a", "action": "iam:users:*", "resource": "iam:users:b"}]})),
        )
        .await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    let violations = reply.body["details"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["@type"] == "type.googleapis.com/google.rpc.BadRequest")
        .map(|d| d["fieldViolations"][0]["field"].clone());
    assert_eq!(violations, Some(json!("checks[1].action")), "{}", reply.body);
    let reply = server
        .json(
            Method::POST,
            "/v1/authz:check",
            Some(json!({"subject": "user:local:a", "action": "iam:users:get", "resource": "iam:users:b", "context": "x"})),
        )
        .await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(reply.body["message"].as_str().unwrap().contains("context"), "{}", reply.body);
    server.stop().await;
}

/// One server, each protocol in turn: a write answers only once this replica's engine holds
/// it, so the next check sees it, and a deleted role stops granting at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_is_visible_to_the_next_check_and_a_deleted_role_stops_granting_at_once() {
    let server = TestServer::start().await;
    let org = server.create_org("acme").await;
    for (i, protocol) in PROTOCOLS.into_iter().enumerate() {
        let role = format!("role{i}");
        let subject = format!("user:local:u{i}");
        let ask = check(json!({"subject": subject, "action": "iam:nodes:get", "resource": "iam:nodes:n1"}));
        let decided = async || match server.call(protocol, &ask).await {
            Outcome::Ok(answer) => answer["allowed"].as_bool().unwrap(),
            other => panic!("{protocol:?}: {other:?}"),
        };
        assert!(!decided().await, "{protocol:?}");
        post(&server, "/iam/roles", json!({"id": role, "name": role, "actions": ["iam:nodes:get"]})).await;
        post(
            &server,
            "/iam/policies",
            json!({"id": format!("p{i}"), "name": format!("p{i}"), "members": [subject],
                   "statements": [{"effect": "ALLOW", "role": role, "tenants": ["*"]}]}),
        )
        .await;
        assert!(decided().await, "{protocol:?}: the policy just written grants");
        let reply = server.json(Method::DELETE, &format!("/iam/roles/{role}"), None).await;
        assert!(reply.status.is_success(), "{}", reply.body);
        assert!(!decided().await, "{protocol:?}: the deleted role grants nothing");

        // Organizations: an assignment grants at once, and its delete takes it back.
        let ask = check(json!({"subject": subject, "action": "view", "resource": "/anything",
                               "organizationId": org}));
        let decided = async || match server.call(protocol, &ask).await {
            Outcome::Ok(answer) => answer["allowed"].as_bool().unwrap(),
            other => panic!("{protocol:?}: {other:?}"),
        };
        assert!(!decided().await);
        let full = iamd::app::accounts::managed::managed_policy_id(&org, "Read-only access");
        let assignment = post(
            &server,
            &format!("/organizations/{org}/iam-assignments"),
            json!({"principal": subject, "policyIds": [full]}),
        )
        .await;
        assert!(decided().await, "{protocol:?}: the assignment just written grants");
        let path = format!("/organizations/{org}/iam-assignments/{}", assignment["id"].as_str().unwrap());
        assert!(server.json(Method::DELETE, &path, None).await.status.is_success());
        assert!(!decided().await, "{protocol:?}: the deleted assignment grants nothing");
    }
    server.stop().await;
}
