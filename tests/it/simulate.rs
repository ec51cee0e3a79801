//! Simulation (`iamd.authz.v1.AuthzService/Simulate`, `POST /v1/authz:simulate`) over gRPC,
//! gRPC-web (binary and text) and JSON: proposed changes decide the checks and the recent
//! decisions as the state they would leave; nothing is stored; a change is refused with its
//! own method's error and its own method's permission.

use http::Method;
use iamd::pb::iamd::authz::v1 as authz;
use serde_json::{Value, json};
use tonic::Code;

use crate::support::{Outcome, PROTOCOLS, Protocol, Rest, TestServer, rpc};

fn simulate(body: Value) -> Rest<authz::SimulateRequest, authz::SimulateResponse> {
    Rest::new(rpc::SIMULATE, Method::POST, "/v1/authz:simulate").body(body)
}

/// Every protocol, gRPC-web as text too.
fn protocols() -> impl Iterator<Item = Protocol> {
    PROTOCOLS.into_iter().chain([Protocol::GrpcWebText])
}

async fn ok(server: &TestServer, method: Method, path: &str, body: Value) -> Value {
    let reply = server.json(method, path, Some(body)).await;
    assert!(reply.status.is_success(), "{path}: {}", reply.body);
    reply.body
}

/// `readers` lets alice and team `ops` read users; carol is in no policy.
async fn readers(server: &TestServer) {
    ok(
        server,
        Method::POST,
        "/iam/policies",
        json!({"id": "readers", "name": "Readers", "members": ["user:local:alice", "team:local:ops"],
               "statements": [{"effect": "ALLOW", "actions": ["iam:users:get"], "resources": ["iam:users:*"],
                               "tenants": ["*"]}]}),
    )
    .await;
}

fn check(subject: &str, action: &str, resource: &str) -> Value {
    json!({"subject": subject, "action": action, "resource": resource})
}

/// The state's position, as a check answers it.
async fn position(server: &TestServer) -> String {
    let answer =
        ok(server, Method::POST, "/v1/authz:check", check("user:local:x", "iam:users:get", "iam:users:y")).await;
    answer["consistencyToken"].as_str().unwrap().to_owned()
}

fn answer(outcome: Outcome) -> Value {
    match outcome {
        Outcome::Ok(value) => value,
        other => panic!("simulate failed: {other:?}"),
    }
}

/// A result's question and verdicts, without tokens.
fn verdict(result: &Value) -> Value {
    json!({
        "subject": result["check"]["subject"], "action": result["check"]["action"],
        "resource": result["check"]["resource"], "before": result["before"]["allowed"],
        "after": result["after"]["allowed"], "changed": result["changed"], "recent": result["recent"],
    })
}

fn matches(result: &Value) -> Vec<(String, String)> {
    let list = result["after"]["matches"].as_array().unwrap();
    list.iter().map(|m| (m["policyId"].as_str().unwrap().into(), m["effect"].as_str().unwrap().into())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proposed_deny_shows_the_decisions_it_would_flip_and_stores_nothing() {
    let server = TestServer::start().await;
    readers(&server).await;
    // Decisions made before: a check, and an AuthZEN evaluation, for two subjects.
    ok(&server, Method::POST, "/v1/authz:check", check("user:local:alice", "iam:users:get", "iam:users:bob")).await;
    ok(
        &server,
        Method::POST,
        "/access/v1/evaluation",
        json!({"subject": {"type": "user", "id": "dave"}, "action": {"name": "get"},
               "resource": {"type": "iam:users", "id": "bob"}}),
    )
    .await;
    let before = position(&server).await;
    let deny = json!({"createIamPolicy": {"id": "no-reads", "name": "No reads", "members": ["user:local:alice"],
        "statements": [{"effect": "DENY", "actions": ["iam:users:get"], "resources": ["*"], "tenants": ["*"]}]}});
    let body = json!({
        "changes": [deny],
        "checks": [check("user:local:alice", "iam:users:get", "iam:users:carol"),
                   check("user:local:eve", "iam:users:get", "iam:users:carol"),
                   json!({"subject": "user:local:zed", "teams": ["team:local:ops"], "action": "iam:users:get",
                          "resource": "iam:users:carol"})],
        "recent": true,
    });
    let mut seen = Vec::new();
    for protocol in protocols() {
        let answer = answer(server.call(protocol, &simulate(body.clone())).await);
        let results = answer["results"].as_array().unwrap();
        let asked: Vec<Value> = results.iter().filter(|r| r["recent"] == false).map(verdict).collect();
        assert_eq!(
            asked,
            [
                json!({"subject": "user:local:alice", "action": "iam:users:get", "resource": "iam:users:carol",
                       "before": true, "after": false, "changed": true, "recent": false}),
                json!({"subject": "user:local:eve", "action": "iam:users:get", "resource": "iam:users:carol",
                       "before": false, "after": false, "changed": false, "recent": false}),
                json!({"subject": "user:local:zed", "action": "iam:users:get", "resource": "iam:users:carol",
                       "before": true, "after": true, "changed": false, "recent": false}),
            ],
            "{protocol:?}: {answer}"
        );
        // After: the proposed DENY and the ALLOW it overrides, as Explain names them.
        let first = &results[0];
        assert_eq!(
            matches(first),
            [("no-reads".to_owned(), "DENY".to_owned()), ("readers".to_owned(), "ALLOW".to_owned())],
            "{protocol:?}"
        );
        assert_eq!(first["after"]["reasons"][0]["policyId"], "no-reads", "{protocol:?}");
        assert_eq!(first["before"]["reasons"][0]["policyId"], "readers", "{protocol:?}");
        // Among the recent decisions: alice's check flips; dave's evaluation does not; and
        // the front door's own, such as this admin's calls, are there too.
        let recent: Vec<Value> = results.iter().filter(|r| r["recent"] == true).map(verdict).collect();
        let alice = recent.iter().find(|r| r["subject"] == "user:local:alice").unwrap_or_else(|| panic!("{answer}"));
        assert_eq!((&alice["resource"], &alice["changed"]), (&json!("iam:users:bob"), &json!(true)), "{protocol:?}");
        let dave = recent.iter().find(|r| r["subject"] == "user:local:dave").unwrap_or_else(|| panic!("{answer}"));
        assert_eq!(dave["changed"], false, "{protocol:?}");
        // The front door's own question when this test created `readers`.
        let created = recent.iter().any(|r| r["action"] == "iam:policies:create" && r["resource"] == "iam:policies");
        assert!(created, "{protocol:?}: {recent:?}");
        let changed = results.iter().filter(|r| r["changed"] == true).count();
        assert_eq!(answer["changedCount"], json!(changed), "{protocol:?}");
        assert_eq!(changed, 2, "{protocol:?}: alice's check and her recent one: {answer}");
        seen.push(asked);
    }
    assert!(seen.windows(2).all(|w| w[0] == w[1]));
    // Nothing was stored: no new position, no new policy.
    assert_eq!(position(&server).await, before);
    assert_eq!(server.json(Method::GET, "/iam/policies/no-reads", None).await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_only_granting_policy_shows_the_loss() {
    let server = TestServer::start().await;
    readers(&server).await;
    let org = server.create_org("acme").await;
    let policy = ok(
        &server,
        Method::POST,
        &format!("/organizations/{org}/iam-policies"),
        json!({"name": "viewers", "definitions": [{"effect": "allow", "actions": ["view"], "resources": ["/**"]}]}),
    )
    .await;
    let policy = policy["id"].as_str().unwrap().to_owned();
    let assignment = ok(
        &server,
        Method::POST,
        &format!("/organizations/{org}/iam-assignments"),
        json!({"principal": "user:local:bob", "policyIds": [policy]}),
    )
    .await;
    let assignment = assignment["id"].as_str().unwrap().to_owned();
    let before = position(&server).await;
    let view = json!({"subject": "user:local:bob", "action": "view", "resource": "/w/1", "organizationId": org});
    let body = json!({
        "changes": [{"deleteIamPolicy": {"id": "readers"}},
                    {"deleteAssignment": {"organizationId": org, "assignmentId": assignment}},
                    {"createAssignment": {"organizationId": org, "principal": "user:local:carol", "policyIds": [policy]}}],
        "checks": [check("user:local:alice", "iam:users:get", "iam:users:carol"), view,
                   json!({"subject": "user:local:carol", "action": "view", "resource": "/w/1", "organizationId": org})],
    });
    for protocol in protocols() {
        let answer = answer(server.call(protocol, &simulate(body.clone())).await);
        let got: Vec<(Value, Value, Value)> = answer["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["check"]["subject"].clone(), r["before"]["allowed"].clone(), r["after"]["allowed"].clone()))
            .collect();
        assert_eq!(
            got,
            [
                (json!("user:local:alice"), json!(true), json!(false)),
                (json!("user:local:bob"), json!(true), json!(false)),
                (json!("user:local:carol"), json!(false), json!(true)),
            ],
            "{protocol:?}: {answer}"
        );
        assert_eq!(answer["changedCount"], 3, "{protocol:?}");
        assert!(answer["results"][0]["after"]["matches"].as_array().unwrap().is_empty(), "{answer}");
        let carol = &answer["results"][2]["after"]["matches"][0];
        assert_eq!((&carol["policyId"], &carol["organizationId"]), (&json!(policy), &json!(org)), "{answer}");
    }
    assert_eq!(position(&server).await, before);
    assert_eq!(server.json(Method::GET, "/iam/policies/readers", None).await.status, 200);
    let kept = server.json(Method::GET, &format!("/organizations/{org}/iam-assignments/{assignment}"), None).await;
    assert_eq!(kept.status, 200, "{}", kept.body);
}

/// What `rest`, the method itself, answers: its code and reason.
async fn method_error<Req, Resp>(server: &TestServer, protocol: Protocol, rest: &Rest<Req, Resp>) -> (Code, String)
where
    Req: prost::Message + serde::de::DeserializeOwned + Send + Sync + 'static,
    Resp: prost::Message + Default + serde::Serialize + Send + Sync + 'static,
{
    match server.call(protocol, rest).await {
        Outcome::Err { code, reason, .. } => (code, reason.unwrap_or_default()),
        Outcome::Ok(value) => panic!("{protocol:?}: the method took it: {value}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_changes_get_their_methods_errors() {
    use iamd::pb::iamd::{accounts::v1 as accounts, iam::v2 as iam};
    let server = TestServer::start().await;
    readers(&server).await;
    let org = server.create_org("acme").await;
    let create = |body: Value| {
        Rest::<iam::CreatePolicyRequest, iam::CreatePolicyResponse>::new(
            crate::support::Rpc::new("/iamd.iam.v2.PolicyService/CreatePolicy"),
            Method::POST,
            "/iam/policies",
        )
        .body(body)
    };
    let bad_member = json!({"id": "bad", "name": "Bad", "members": ["nobody"],
        "statements": [{"effect": "ALLOW", "actions": ["iam:users:get"], "resources": ["*"], "tenants": ["*"]}]});
    let taken = json!({"id": "readers", "name": "Again", "members": [],
        "statements": [{"effect": "ALLOW", "actions": ["iam:users:get"], "resources": ["*"], "tenants": ["*"]}]});
    let unknown_role = json!({"id": "r", "name": "R", "members": [],
        "statements": [{"effect": "ALLOW", "role": "no-such-role", "tenants": ["*"]}]});
    let before = position(&server).await;
    for protocol in protocols() {
        for body in [&bad_member, &taken, &unknown_role] {
            let want = method_error(&server, protocol, &create(body.clone())).await;
            let change = json!({"changes": [{"createIamPolicy": body}]});
            match server.call(protocol, &simulate(change)).await {
                Outcome::Err { code, reason, message } => {
                    assert_eq!((code, reason.unwrap_or_default()), want, "{protocol:?} {body}: {message}");
                    assert!(message.starts_with("changes[0]: "), "{protocol:?}: {message}");
                }
                Outcome::Ok(value) => panic!("{protocol:?}: simulated an invalid change: {value}"),
            }
        }
        // A name its organization holds already, which only the store enforces on a write.
        let taken = json!({"organizationId": org, "name": "Full access",
            "definitions": [{"effect": "allow", "actions": ["view"], "resources": ["/**"]}]});
        let method = Rest::<accounts::CreatePolicyRequest, accounts::CreatePolicyResponse>::new(
            crate::support::Rpc::new("/iamd.accounts.v1.PolicyService/CreatePolicy"),
            Method::POST,
            "/organizations/{organization_id}/iam-policies",
        )
        .bind("organization_id", org.clone())
        .body(json!({"name": "Full access",
            "definitions": [{"effect": "allow", "actions": ["view"], "resources": ["/**"]}]}));
        let want = method_error(&server, protocol, &method).await;
        assert_eq!(want.0, Code::AlreadyExists, "{protocol:?}");
        match server.call(protocol, &simulate(json!({"changes": [{"createOrgPolicy": taken}]}))).await {
            Outcome::Err { code, reason, .. } => assert_eq!((code, reason.unwrap_or_default()), want, "{protocol:?}"),
            Outcome::Ok(value) => panic!("{protocol:?}: simulated a name that is taken: {value}"),
        }
        // A delete of what is not there, and of a managed policy.
        for (id, want) in [("missing", Code::NotFound), ("administrator-access", Code::PermissionDenied)] {
            let change = json!({"changes": [{"deleteIamPolicy": {"id": id}}]});
            let outcome = server.call(protocol, &simulate(change)).await;
            assert_eq!(outcome.code(), want, "{protocol:?} {id}: {outcome:?}");
        }
        // A change with nothing in it, two changes of one object, and too many.
        let empty = server.call(protocol, &simulate(json!({"changes": [{}]}))).await;
        assert_eq!(empty.code(), Code::InvalidArgument, "{protocol:?}: {empty:?}");
        let twice = json!({"changes": [{"deleteIamPolicy": {"id": "readers"}},
                                        {"updateIamPolicy": {"id": "readers", "name": "R", "members": [],
                                         "statements": [{"effect": "ALLOW", "actions": ["a:b:c"], "tenants": ["*"]}]}}]});
        let twice = server.call(protocol, &simulate(twice)).await;
        assert_eq!(twice.code(), Code::InvalidArgument, "{protocol:?}: {twice:?}");
        let many: Vec<Value> = (0..101).map(|i| json!({"deleteIamPolicy": {"id": format!("p{i}")}})).collect();
        let many = server.call(protocol, &simulate(json!({"changes": many}))).await;
        assert_eq!(many.code(), Code::InvalidArgument, "{protocol:?}: {many:?}");
    }
    assert_eq!(position(&server).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_without_a_changes_permission_is_refused() {
    let server = TestServer::start().await;
    readers(&server).await;
    let token = ok(&server, Method::POST, "/iam/tokens", json!({"id": "sim", "name": "Simulator"})).await;
    let secret = token["token"]["value"].as_str().unwrap().to_owned();
    ok(
        &server,
        Method::POST,
        "/iam/policies",
        json!({"id": "simulators", "name": "Simulators", "members": ["token:sim"],
               "statements": [{"effect": "ALLOW", "actions": ["authz:decisions:simulate", "iam:roles:create"],
                               "resources": ["*"], "tenants": ["*"]}]}),
    )
    .await;
    let as_sim = |body: Value| simulate(body).header("authorization", format!("Bearer {secret}"));
    let deny = json!({"createIamPolicy": {"id": "no-reads", "name": "No reads", "members": ["user:local:alice"],
        "statements": [{"effect": "DENY", "actions": ["iam:users:get"], "resources": ["*"], "tenants": ["*"]}]}});
    let role = json!({"createIamRole": {"id": "readers2", "name": "Readers", "actions": ["iam:users:get"]}});
    let alice = check("user:local:alice", "iam:users:get", "iam:users:carol");
    for protocol in protocols() {
        // Checks alone, and a change it may make: answered.
        let allowed = server.call(protocol, &as_sim(json!({"changes": [role], "checks": [alice]}))).await;
        assert_eq!(allowed.code(), Code::Ok, "{protocol:?}: {allowed:?}");
        // A change it may not make, and the recent decisions it may not read.
        for (body, missing) in [
            (json!({"changes": [role, deny], "checks": [alice]}), "iam:policies:create"),
            (json!({"checks": [alice], "recent": true}), "authz:decisions:explain"),
        ] {
            match server.call(protocol, &as_sim(body.clone())).await {
                Outcome::Err { code, message, reason } => {
                    assert_eq!(
                        (code, reason.as_deref()),
                        (Code::PermissionDenied, Some("PERMISSION_DENIED")),
                        "{message}"
                    );
                    assert!(message.contains(missing), "{protocol:?}: {message}");
                }
                other => panic!("{protocol:?} {body}: {other:?}"),
            }
        }
    }
    // Without the method's own permission.
    let plain = ok(&server, Method::POST, "/iam/tokens", json!({"id": "plain", "name": "Plain"})).await;
    let plain = plain["token"]["value"].as_str().unwrap().to_owned();
    for protocol in protocols() {
        let rest = simulate(json!({"checks": [alice]})).header("authorization", format!("Bearer {plain}"));
        let outcome = server.call(protocol, &rest).await;
        assert_eq!(outcome.code(), Code::PermissionDenied, "{protocol:?}: {outcome:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_change_is_rehearsed_under_its_methods_rule() {
    let server = TestServer::start().await;
    readers(&server).await;
    ok(&server, Method::POST, "/iam/roles", json!({"id": "reader", "name": "Reader", "actions": ["iam:users:get"]}))
        .await;
    let org = server.create_org("acme").await;
    let id = |v: Value| v["id"].as_str().unwrap().to_owned();
    let definitions = json!([{"effect": "allow", "actions": ["view"], "resources": ["/**"]}]);
    let policies = format!("/organizations/{org}/iam-policies");
    let policy = id(ok(&server, Method::POST, &policies, json!({"name": "viewers", "definitions": definitions})).await);
    let spare = id(ok(&server, Method::POST, &policies, json!({"name": "spare", "definitions": definitions})).await);
    let roles = format!("/organizations/{org}/iam-roles");
    let role = id(ok(&server, Method::POST, &roles, json!({"name": "viewing", "policyIds": [policy]})).await);
    let spare_role = id(ok(&server, Method::POST, &roles, json!({"name": "spare", "policyIds": [policy]})).await);
    let assignments = format!("/organizations/{org}/iam-assignments");
    let assignment =
        id(ok(&server, Method::POST, &assignments, json!({"principal": "user:local:bob", "roleIds": [role]})).await);
    let statements = json!([{"effect": "ALLOW", "actions": ["iam:teams:get"], "resources": ["*"], "tenants": ["*"]}]);
    let changes = [
        json!({"createIamPolicy": {"id": "new", "name": "New", "members": ["user:local:carol"], "statements": statements}}),
        json!({"updateIamPolicy": {"id": "readers", "name": "Readers", "members": [], "statements": statements}}),
        json!({"deleteIamPolicy": {"id": "readers"}}),
        json!({"createIamRole": {"id": "writer", "name": "Writer", "actions": ["iam:users:update"]}}),
        json!({"updateIamRole": {"id": "reader", "name": "Reader", "actions": ["iam:users:list"]}}),
        json!({"deleteIamRole": {"id": "reader"}}),
        json!({"createOrgPolicy": {"organizationId": org, "name": "more", "definitions": definitions}}),
        json!({"updateOrgPolicy": {"organizationId": org, "policyId": policy, "name": "watchers"}}),
        json!({"deleteOrgPolicy": {"organizationId": org, "policyId": spare}}),
        json!({"createOrgRole": {"organizationId": org, "name": "more", "policyIds": [policy]}}),
        json!({"updateOrgRole": {"organizationId": org, "roleId": role, "name": "watching"}}),
        json!({"deleteOrgRole": {"organizationId": org, "roleId": spare_role}}),
        json!({"createAssignment": {"organizationId": org, "principal": "user:local:carol", "policyIds": [policy]}}),
        json!({"deleteAssignment": {"organizationId": org, "assignmentId": assignment}}),
    ];
    let bob = json!({"subject": "user:local:bob", "action": "view", "resource": "/w/1", "organizationId": org});
    let before = position(&server).await;
    for protocol in protocols() {
        for change in &changes {
            let outcome = server.call(protocol, &simulate(json!({"changes": [change], "checks": [bob]}))).await;
            let answer = match outcome {
                Outcome::Ok(answer) => answer,
                other => panic!("{protocol:?} {change}: {other:?}"),
            };
            // Only taking bob's assignment away changes what bob may do.
            let flipped = change.get("deleteAssignment").is_some();
            assert_eq!(answer["results"][0]["changed"], flipped, "{protocol:?} {change}: {answer}");
        }
    }
    assert_eq!(position(&server).await, before);
}
