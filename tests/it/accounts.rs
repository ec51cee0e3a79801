//! The accounts surface's rules over JSON (parity over the other protocols is in
//! `accounts_parity.rs`, the seed's shapes in `seeds.rs`): every validation rule (refused
//! with its code, nothing stored), the managed policies, the dependency counts after every
//! kind of change, the deletes that are refused, organizations as the boundary, pagination
//! under concurrent change, and a policy delete racing an assignment that names it.

use std::collections::BTreeSet;
use std::sync::Arc;

use http::{Method, StatusCode};
use iamd::app::accounts::managed::managed_policy_id;
use serde_json::{Value, json};
use tokio::sync::Barrier;

use crate::support::{JsonReply, TestServer};

fn policy_body(name: &str) -> Value {
    json!({"name": name, "definitions": [{"effect": "allow", "resources": ["/workspaces/*/channels"], "actions": ["view"]}]})
}

async fn created(server: &TestServer, path: &str, body: Value) -> Value {
    let reply = server.json(Method::POST, path, Some(body)).await;
    assert_eq!(reply.status, StatusCode::CREATED, "POST {path}: {}", reply.body);
    reply.body
}

async fn create_policy(server: &TestServer, org: &str, name: &str) -> String {
    let body = created(server, &format!("/organizations/{org}/iam-policies"), policy_body(name)).await;
    body["id"].as_str().unwrap().to_owned()
}

async fn create_role(server: &TestServer, org: &str, name: &str, policies: &[&str]) -> String {
    let body =
        created(server, &format!("/organizations/{org}/iam-roles"), json!({"name": name, "policyIds": policies})).await;
    body["id"].as_str().unwrap().to_owned()
}

async fn assign(server: &TestServer, org: &str, principal: &str, roles: &[&str], policies: &[&str]) -> String {
    let body = json!({"principal": principal, "roleIds": roles, "policyIds": policies});
    let body = created(server, &format!("/organizations/{org}/iam-assignments"), body).await;
    body["id"].as_str().unwrap().to_owned()
}

async fn get(server: &TestServer, path: &str) -> JsonReply {
    server.json(Method::GET, path, None).await
}

/// (rolesDependencyCount, usersDependencyCount) of a policy.
async fn policy_counts(server: &TestServer, org: &str, policy: &str) -> (i64, i64) {
    let reply = get(server, &format!("/organizations/{org}/iam-policies/{policy}")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    (reply.body["rolesDependencyCount"].as_i64().unwrap(), reply.body["usersDependencyCount"].as_i64().unwrap())
}

async fn role_users(server: &TestServer, org: &str, role: &str) -> i64 {
    let reply = get(server, &format!("/organizations/{org}/iam-roles/{role}")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.body["usersDependencyCount"].as_i64().unwrap()
}

/// Every object of the organization, and the length of the event log, to show that a
/// refused request changed nothing.
async fn everything(server: &TestServer, org: &str) -> Value {
    let mut all = serde_json::Map::new();
    for list in ["iam-policies", "iam-roles", "iam-assignments"] {
        all.insert(list.into(), get(server, &format!("/organizations/{org}/{list}?limit=100")).await.body);
    }
    let events = get(server, "/v1/events?limit=100").await.body["events"].as_array().unwrap().len();
    all.insert("events".into(), json!(events));
    Value::Object(all)
}

fn field(reply: &JsonReply) -> &str {
    let violations = reply.body["details"].as_array().unwrap().iter().find(|d| d.get("fieldViolations").is_some());
    violations.map_or("", |v| v["fieldViolations"][0]["field"].as_str().unwrap())
}

fn reason(reply: &JsonReply) -> &str {
    reply.body["details"][0]["reason"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn every_validation_rule_is_refused_with_its_field_and_changes_nothing() {
    let server = TestServer::start().await;
    let org = server.create_org("acme").await;
    let other = server.create_org("globex").await;
    let policy = create_policy(&server, &org, "p").await;
    let foreign = create_policy(&server, &other, "foreign").await;
    let role = create_role(&server, &org, "r", &[&policy]).await;
    let definition = |patch: Value| {
        let mut d = json!({"effect": "allow", "resources": ["/a"], "actions": ["view"]});
        d.as_object_mut().unwrap().extend(patch.as_object().unwrap().clone());
        json!({"name": "x", "definitions": [d]})
    };
    let policies = format!("/organizations/{org}/iam-policies");
    let roles = format!("/organizations/{org}/iam-roles");
    let assignments = format!("/organizations/{org}/iam-assignments");
    let long = "x".repeat(201);
    let cases: Vec<(&str, Method, String, Value, StatusCode, &str)> = vec![
        (
            "no name",
            Method::POST,
            policies.clone(),
            json!({"definitions": policy_body("x")["definitions"]}),
            StatusCode::BAD_REQUEST,
            "name",
        ),
        (
            "blank name",
            Method::POST,
            policies.clone(),
            json!({"name": "  ", "definitions": policy_body("x")["definitions"]}),
            StatusCode::BAD_REQUEST,
            "name",
        ),
        (
            "long name",
            Method::POST,
            policies.clone(),
            json!({"name": long, "definitions": policy_body("x")["definitions"]}),
            StatusCode::BAD_REQUEST,
            "name",
        ),
        (
            "no definitions",
            Method::POST,
            policies.clone(),
            json!({"name": "x"}),
            StatusCode::BAD_REQUEST,
            "definitions",
        ),
        (
            "effect",
            Method::POST,
            policies.clone(),
            definition(json!({"effect": "ALLOW"})),
            StatusCode::BAD_REQUEST,
            "definitions[0].effect",
        ),
        (
            "no effect",
            Method::POST,
            policies.clone(),
            definition(json!({"effect": ""})),
            StatusCode::BAD_REQUEST,
            "definitions[0].effect",
        ),
        (
            "action",
            Method::POST,
            policies.clone(),
            definition(json!({"actions": ["view", "read"]})),
            StatusCode::BAD_REQUEST,
            "definitions[0].actions[1]",
        ),
        (
            "no actions",
            Method::POST,
            policies.clone(),
            definition(json!({"actions": []})),
            StatusCode::BAD_REQUEST,
            "definitions[0].actions",
        ),
        (
            "twice",
            Method::POST,
            policies.clone(),
            definition(json!({"actions": ["view", "view"]})),
            StatusCode::BAD_REQUEST,
            "definitions[0].actions[1]",
        ),
        (
            "no resources",
            Method::POST,
            policies.clone(),
            definition(json!({"resources": []})),
            StatusCode::BAD_REQUEST,
            "definitions[0].resources",
        ),
        (
            "null resource",
            Method::POST,
            policies.clone(),
            definition(json!({"resources": [null]})),
            StatusCode::BAD_REQUEST,
            "definitions[0].resources[0]",
        ),
        (
            "relative path",
            Method::POST,
            policies.clone(),
            definition(json!({"resources": ["workspaces"]})),
            StatusCode::BAD_REQUEST,
            "definitions[0].resources[0]",
        ),
        (
            "partial wildcard",
            Method::POST,
            policies.clone(),
            definition(json!({"resources": ["/a", "/ws*"]})),
            StatusCode::BAD_REQUEST,
            "definitions[0].resources[1]",
        ),
        (
            "path variable",
            Method::POST,
            policies.clone(),
            definition(json!({"resources": ["/workspaces/{workspaceID}"]})),
            StatusCode::BAD_REQUEST,
            "definitions[0].resources[0]",
        ),
        (
            "placeholder operator",
            Method::POST,
            policies.clone(),
            definition(json!({"conditionsAll": [{"any": {"ANY_ADDITIONAL_PROPERTY": {}}}]})),
            StatusCode::BAD_REQUEST,
            "definitions[0].conditionsAll[0].any.ANY_ADDITIONAL_PROPERTY",
        ),
        (
            "quantifier",
            Method::POST,
            policies.clone(),
            definition(json!({"conditionsAll": [{"each": {"bool": {"k": "true"}}}]})),
            StatusCode::BAD_REQUEST,
            "definitions[0].conditionsAll[0].each",
        ),
        (
            "number",
            Method::POST,
            policies.clone(),
            definition(json!({"conditionsAll": [{"all": {"numericLessThan": {"size": "big"}}}]})),
            StatusCode::BAD_REQUEST,
            "definitions[0].conditionsAll[0].all.numericLessThan.size",
        ),
        (
            "not a string",
            Method::POST,
            policies.clone(),
            definition(json!({"conditionsAll": [{"all": {"numericLessThan": {"size": 3}}}]})),
            StatusCode::BAD_REQUEST,
            "definitions[0].conditionsAll[0].all.numericLessThan.size",
        ),
        (
            "null value",
            Method::POST,
            policies.clone(),
            definition(json!({"conditionsAll": [{"all": {"stringEquals": {"k": null}}}]})),
            StatusCode::BAD_REQUEST,
            "definitions[0].conditionsAll[0].all.stringEquals.k",
        ),
        (
            "bool",
            Method::POST,
            policies.clone(),
            definition(json!({"conditionsAll": [{"all": {"bool": {"mfa": "yes"}}}]})),
            StatusCode::BAD_REQUEST,
            "definitions[0].conditionsAll[0].all.bool.mfa",
        ),
        (
            "cidr",
            Method::POST,
            policies.clone(),
            definition(json!({"conditionsAll": [{"all": {"ipAddress": {"ip": "10.0.0.0/40"}}}]})),
            StatusCode::BAD_REQUEST,
            "definitions[0].conditionsAll[0].all.ipAddress.ip",
        ),
        (
            "date",
            Method::POST,
            policies.clone(),
            definition(json!({"conditionsAll": [{"all": {"dateBefore": {"at": "tomorrow"}}}]})),
            StatusCode::BAD_REQUEST,
            "definitions[0].conditionsAll[0].all.dateBefore.at",
        ),
        (
            "no operator",
            Method::POST,
            policies.clone(),
            definition(json!({"conditionsAll": [{"any": {}}]})),
            StatusCode::BAD_REQUEST,
            "definitions[0].conditionsAll[0].any",
        ),
        (
            "two quantifiers",
            Method::POST,
            policies.clone(),
            definition(json!({"conditionsAll": [{"any": {"bool": {"k": "true"}}, "all": {"bool": {"k": "true"}}}]})),
            StatusCode::BAD_REQUEST,
            "definitions[0].conditionsAll[0]",
        ),
        (
            "null group",
            Method::POST,
            policies.clone(),
            json!({"name": "x", "definitions": policy_body("x")["definitions"], "metadata": {"groups": [null]}}),
            StatusCode::BAD_REQUEST,
            "metadata.groups[0]",
        ),
        (
            "blank label",
            Method::POST,
            policies.clone(),
            json!({"name": "x", "definitions": policy_body("x")["definitions"], "metadata": {"clouds": [""]}}),
            StatusCode::BAD_REQUEST,
            "metadata.clouds[0]",
        ),
        (
            "unknown field",
            Method::POST,
            policies.clone(),
            json!({"name": "x", "definitions": policy_body("x")["definitions"], "owner": "me"}),
            StatusCode::BAD_REQUEST,
            "owner",
        ),
        (
            "unknown nested field",
            Method::POST,
            policies.clone(),
            definition(json!({"priority": 1})),
            StatusCode::BAD_REQUEST,
            "definitions[0].priority",
        ),
        ("duplicate name", Method::POST, policies.clone(), policy_body("p"), StatusCode::CONFLICT, ""),
        (
            "patch empty definitions",
            Method::PATCH,
            format!("{policies}/{policy}"),
            json!({"definitions": []}),
            StatusCode::BAD_REQUEST,
            "definitions",
        ),
        (
            "patch blank name",
            Method::PATCH,
            format!("{policies}/{policy}"),
            json!({"name": ""}),
            StatusCode::BAD_REQUEST,
            "name",
        ),
        (
            "patch metadata",
            Method::PATCH,
            format!("{policies}/{policy}"),
            json!({"metadata": {"apps": ["inbox"]}}),
            StatusCode::BAD_REQUEST,
            "metadata",
        ),
        (
            "patch mask",
            Method::PATCH,
            format!("{policies}/{policy}"),
            json!({"updateMask": "metadata"}),
            StatusCode::BAD_REQUEST,
            "updateMask",
        ),
        (
            "patch bad definition",
            Method::PATCH,
            format!("{policies}/{policy}"),
            definition(json!({"effect": "maybe"})),
            StatusCode::BAD_REQUEST,
            "definitions[0].effect",
        ),
        (
            "role without policies",
            Method::POST,
            roles.clone(),
            json!({"name": "x", "policyIds": []}),
            StatusCode::BAD_REQUEST,
            "policyIds",
        ),
        (
            "role with an unknown policy",
            Method::POST,
            roles.clone(),
            json!({"name": "x", "policyIds": [policy, "nope"]}),
            StatusCode::NOT_FOUND,
            "",
        ),
        (
            "role with another organization's policy",
            Method::POST,
            roles.clone(),
            json!({"name": "x", "policyIds": [foreign]}),
            StatusCode::NOT_FOUND,
            "",
        ),
        (
            "role naming a policy twice",
            Method::POST,
            roles.clone(),
            json!({"name": "x", "policyIds": [policy, policy]}),
            StatusCode::BAD_REQUEST,
            "policyIds[1]",
        ),
        (
            "duplicate role name",
            Method::POST,
            roles.clone(),
            json!({"name": "r", "policyIds": [policy]}),
            StatusCode::CONFLICT,
            "",
        ),
        (
            "patch role policies empty",
            Method::PATCH,
            format!("{roles}/{role}"),
            json!({"policyIds": []}),
            StatusCode::BAD_REQUEST,
            "policyIds",
        ),
        (
            "patch role unknown policy",
            Method::PATCH,
            format!("{roles}/{role}"),
            json!({"policyIds": ["nope"]}),
            StatusCode::NOT_FOUND,
            "",
        ),
        (
            "assignment of nothing",
            Method::POST,
            assignments.clone(),
            json!({"principal": "user:local:alice"}),
            StatusCode::BAD_REQUEST,
            "roleIds",
        ),
        (
            "assignment without principal",
            Method::POST,
            assignments.clone(),
            json!({"roleIds": [role]}),
            StatusCode::BAD_REQUEST,
            "principal",
        ),
        (
            "assignment of a bad principal",
            Method::POST,
            assignments.clone(),
            json!({"principal": "alice", "roleIds": [role]}),
            StatusCode::BAD_REQUEST,
            "principal",
        ),
        (
            "assignment of an unknown role",
            Method::POST,
            assignments.clone(),
            json!({"principal": "user:local:alice", "roleIds": ["nope"]}),
            StatusCode::NOT_FOUND,
            "",
        ),
        (
            "assignment of another organization's policy",
            Method::POST,
            assignments.clone(),
            json!({"principal": "user:oidc:alice", "policyIds": [foreign]}),
            StatusCode::NOT_FOUND,
            "",
        ),
        ("assignment patch", Method::PATCH, format!("{assignments}/x"), json!({}), StatusCode::METHOD_NOT_ALLOWED, ""),
    ];
    let before = everything(&server, &org).await;
    for (what, method, path, body, status, at) in cases {
        let reply = server.json(method.clone(), &path, Some(body)).await;
        assert_eq!(reply.status, status, "{what}: {method} {path}: {}", reply.body);
        assert_eq!(field(&reply), at, "{what}: {}", reply.body);
        assert!(!reply.body["message"].as_str().unwrap().is_empty(), "{what}");
    }
    assert_eq!(everything(&server, &org).await, before, "a refused request changed something");
    // Unknown fields are named, at any depth.
    for (body, name) in
        [(json!({"name": "x", "owner": "me"}), "owner"), (definition(json!({"priority": 1})), "priority")]
    {
        let reply = server.json(Method::POST, &policies, Some(body)).await;
        assert!(reply.body["message"].as_str().unwrap().contains(&format!("unknown field `{name}`")), "{}", reply.body);
    }
    // Query parameters: the limit's range, and no unknown ones.
    for query in ["limit=0", "limit=101", "limit=-1", "pageToken=forged", "order=asc"] {
        let reply = get(&server, &format!("{policies}?{query}")).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{query}: {}", reply.body);
    }
}

#[tokio::test]
async fn managed_policies_are_built_in_deterministic_and_read_only() {
    let server = TestServer::start().await;
    let org = server.create_org("acme").await;
    let policies = format!("/organizations/{org}/iam-policies");
    let list = get(&server, &policies).await.body;
    let managed: Vec<&Value> = list["results"].as_array().unwrap().iter().collect();
    assert_eq!(managed.len(), 2, "{list}");
    for (policy, (name, action)) in managed.iter().zip([("Full access", "any"), ("Read-only access", "view")]) {
        assert_eq!(policy["id"], managed_policy_id(&org, name).as_str());
        assert_eq!(
            (&policy["name"], &policy["type"], &policy["scope"]),
            (&json!(name), &json!("managed"), &json!("organization"))
        );
        assert_eq!(
            policy["definitions"],
            json!([{"effect": "allow", "resources": ["/**"], "actions": [action], "conditionsAll": []}])
        );
    }
    let full = managed_policy_id(&org, "Full access");
    let read_only = managed_policy_id(&org, "Read-only access");

    // Usable in roles and assignments.
    let role = create_role(&server, &org, "admins", &[&full]).await;
    assign(&server, &org, "user:local:alice", &[&role], &[&read_only]).await;
    assert_eq!(policy_counts(&server, &org, &full).await, (1, 1));
    assert_eq!(policy_counts(&server, &org, &read_only).await, (0, 1));

    // Read-only, whatever the request holds.
    let before = everything(&server, &org).await;
    for (method, body) in [
        (Method::PATCH, Some(json!({"name": "Mine"}))),
        (Method::PATCH, Some(json!({"definitions": []}))),
        (Method::DELETE, None),
    ] {
        let reply = server.json(method.clone(), &format!("{policies}/{read_only}"), body).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{method}: {}", reply.body);
        assert_eq!(reason(&reply), "MANAGED");
    }
    // Their names are taken in their organization.
    let reply = server.json(Method::POST, &policies, Some(policy_body("Full access"))).await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.body);
    assert_eq!(everything(&server, &org).await, before);

    // Another organization's have other ids; an organization that holds only them deletes
    // with them.
    let other = server.create_org("globex").await;
    assert_ne!(managed_policy_id(&other, "Full access"), full);
    let reply = server.json(Method::DELETE, &format!("/organizations/{other}"), None).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.body);
    let reply = get(
        &server,
        &format!("/v1/events?objectType=org_policy&objectId={}", managed_policy_id(&other, "Full access")),
    )
    .await;
    let types: Vec<&str> =
        reply.body["events"].as_array().unwrap().iter().map(|e| e["eventType"].as_str().unwrap()).collect();
    assert_eq!(types, ["org.iam.policy.added", "org.iam.policy.removed"]);
}

#[tokio::test]
async fn dependency_counts_follow_every_kind_of_change() {
    let server = TestServer::start().await;
    let org = server.create_org("acme").await;
    let p1 = create_policy(&server, &org, "p1").await;
    let p2 = create_policy(&server, &org, "p2").await;
    assert_eq!(policy_counts(&server, &org, &p1).await, (0, 0));

    // Roles count; users only through assignments.
    let r1 = create_role(&server, &org, "r1", &[&p1]).await;
    let r2 = create_role(&server, &org, "r2", &[&p1, &p2]).await;
    assert_eq!(policy_counts(&server, &org, &p1).await, (2, 0));
    assert_eq!(policy_counts(&server, &org, &p2).await, (1, 0));

    // Through a role, directly, and the same principal twice counts once.
    let alice_r1 = assign(&server, &org, "user:local:alice", &[&r1], &[]).await;
    assert_eq!((policy_counts(&server, &org, &p1).await, role_users(&server, &org, &r1).await), ((2, 1), 1));
    let bob_p1 = assign(&server, &org, "user:local:bob", &[], &[&p1]).await;
    let alice_r2 = assign(&server, &org, "user:local:alice", &[&r2], &[&p1]).await;
    assert_eq!(policy_counts(&server, &org, &p1).await, (2, 2));
    assert_eq!(policy_counts(&server, &org, &p2).await, (1, 1));
    let team = assign(&server, &org, "team:oidc:ops", &[&r2], &[]).await;
    assert_eq!(policy_counts(&server, &org, &p2).await, (1, 2));
    assert_eq!(role_users(&server, &org, &r2).await, 2);

    // A role that drops a policy takes its principals with it.
    let reply = server
        .json(Method::PATCH, &format!("/organizations/{org}/iam-roles/{r2}"), Some(json!({"policyIds": [p1]})))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["policyIds"], json!([p1]));
    assert_eq!(policy_counts(&server, &org, &p2).await, (0, 0));
    assert_eq!(policy_counts(&server, &org, &p1).await, (2, 3));

    // The lists count as the reads do.
    let list = get(&server, &format!("/organizations/{org}/iam-policies?reverse=true&limit=2")).await.body;
    let counts: Vec<(i64, i64)> = list["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["rolesDependencyCount"].as_i64().unwrap(), p["usersDependencyCount"].as_i64().unwrap()))
        .collect();
    assert_eq!(counts, [(0, 0), (2, 3)]);
    let roles = get(&server, &format!("/organizations/{org}/iam-roles")).await.body;
    let users: Vec<i64> =
        roles["results"].as_array().unwrap().iter().map(|r| r["usersDependencyCount"].as_i64().unwrap()).collect();
    assert_eq!(users, [1, 2]);

    // Deleting a role that reaches users through assignments is refused, naming them, and
    // counts nothing away; once its assignments go, so does it and what it reached.
    let reply = server.json(Method::DELETE, &format!("/organizations/{org}/iam-roles/{r2}"), None).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
    assert_eq!(reason(&reply), "STILL_REFERENCED");
    let message = reply.body["message"].as_str().unwrap();
    assert!(message.contains(&alice_r2) && message.contains(&team), "{message}");
    assert_eq!(policy_counts(&server, &org, &p1).await, (2, 3));
    for assignment in [&team, &alice_r2] {
        let reply =
            server.json(Method::DELETE, &format!("/organizations/{org}/iam-assignments/{assignment}"), None).await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.body);
    }
    assert_eq!(policy_counts(&server, &org, &p1).await, (2, 2));
    let reply = server.json(Method::DELETE, &format!("/organizations/{org}/iam-roles/{r2}"), None).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.body);
    assert_eq!(policy_counts(&server, &org, &p1).await, (1, 2));
    for assignment in [&alice_r1, &bob_p1] {
        server.json(Method::DELETE, &format!("/organizations/{org}/iam-assignments/{assignment}"), None).await;
    }
    assert_eq!(policy_counts(&server, &org, &p1).await, (1, 0));
}

#[tokio::test]
async fn deletes_are_refused_while_something_depends_on_the_object() {
    let server = TestServer::start().await;
    let org = server.create_org("acme").await;
    let policy = create_policy(&server, &org, "p").await;
    // The role names a managed policy too, which would go with the organization: the
    // organization's refusal still names its own dependents.
    let role = create_role(&server, &org, "r", &[&policy, &managed_policy_id(&org, "Full access")]).await;
    let assignment = assign(&server, &org, "user:local:alice", &[&role], &[]).await;
    let before = everything(&server, &org).await;

    let refusals = [
        (format!("/organizations/{org}/iam-policies/{policy}"), vec![role.clone()]),
        (format!("/organizations/{org}/iam-roles/{role}"), vec![assignment.clone()]),
        (format!("/organizations/{org}"), vec![org.clone(), policy.clone(), role.clone(), assignment.clone()]),
    ];
    for (path, dependents) in refusals {
        let reply = server.json(Method::DELETE, &path, None).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{path}: {}", reply.body);
        assert_eq!((reply.body["code"].as_i64(), reason(&reply)), (Some(9), "STILL_REFERENCED"));
        let message = reply.body["message"].as_str().unwrap();
        for dependent in dependents {
            assert!(message.contains(&dependent), "{path}: {message} does not name {dependent}");
        }
    }
    assert_eq!(everything(&server, &org).await, before);

    // In order, each goes; then the organization, with its managed policies.
    for path in [
        format!("/organizations/{org}/iam-assignments/{assignment}"),
        format!("/organizations/{org}/iam-roles/{role}"),
        format!("/organizations/{org}/iam-policies/{policy}"),
        format!("/organizations/{org}"),
    ] {
        let reply = server.json(Method::DELETE, &path, None).await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT, "{path}: {}", reply.body);
    }
    let reply = get(&server, &format!("/organizations/{org}/iam-policies")).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.body);
}

#[tokio::test]
async fn the_organization_is_the_boundary_of_every_method() {
    let server = TestServer::start().await;
    let org = server.create_org("acme").await;
    let other = server.create_org("globex").await;
    let policy = create_policy(&server, &org, "p").await;
    let role = create_role(&server, &org, "r", &[&policy]).await;
    let assignment = assign(&server, &org, "user:local:alice", &[&role], &[]).await;
    // The same name in another organization is another policy.
    create_policy(&server, &other, "p").await;

    let missing = "00000000-0000-4000-8000-000000000000";
    let calls = [
        (Method::GET, "iam-policies".to_owned(), None),
        (Method::POST, "iam-policies".to_owned(), Some(policy_body("q"))),
        (Method::GET, format!("iam-policies/{policy}"), None),
        (Method::PATCH, format!("iam-policies/{policy}"), Some(json!({"name": "q"}))),
        (Method::DELETE, format!("iam-policies/{policy}"), None),
        (Method::GET, "iam-roles".to_owned(), None),
        (Method::POST, "iam-roles".to_owned(), Some(json!({"name": "q", "policyIds": [policy]}))),
        (Method::GET, format!("iam-roles/{role}"), None),
        (Method::PATCH, format!("iam-roles/{role}"), Some(json!({"name": "q"}))),
        (Method::DELETE, format!("iam-roles/{role}"), None),
        (Method::GET, "iam-assignments".to_owned(), None),
        (Method::POST, "iam-assignments".to_owned(), Some(json!({"principal": "user:local:bob", "roleIds": [role]}))),
        (Method::GET, format!("iam-assignments/{assignment}"), None),
        (Method::DELETE, format!("iam-assignments/{assignment}"), None),
    ];
    let before = everything(&server, &org).await;
    for (method, path, body) in calls {
        // No such organization: NotFound for the organization, lists included.
        let reply = server.json(method.clone(), &format!("/organizations/{missing}/{path}"), body.clone()).await;
        assert_eq!(
            (reply.status, reason(&reply)),
            (StatusCode::NOT_FOUND, "ORGANIZATION_NOT_FOUND"),
            "{method} {path}"
        );
        // Another organization's objects are not found under this one.
        if path.contains('/') {
            let reply = server.json(method.clone(), &format!("/organizations/{other}/{path}"), body).await;
            assert_eq!(reply.status, StatusCode::NOT_FOUND, "{method} {path}: {}", reply.body);
            assert!(reason(&reply).ends_with("_NOT_FOUND"), "{}", reply.body);
        }
    }
    assert_eq!(everything(&server, &org).await, before);
}

#[tokio::test]
async fn patch_changes_what_it_names_and_versions_guard_writes() {
    let server = TestServer::start().await;
    let org = server.create_org("acme").await;
    let policies = format!("/organizations/{org}/iam-policies");
    let body = json!({"name": "p", "description": "first", "definitions": policy_body("p")["definitions"],
        "metadata": {"clouds": ["platform"], "apps": [], "groups": []}});
    let first = created(&server, &policies, body).await;
    let id = first["id"].as_str().unwrap();
    let path = format!("{policies}/{id}");

    let reply = server.json(Method::PATCH, &path, Some(json!({"description": "second"}))).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let etag = reply.headers.get("etag").unwrap().to_str().unwrap().to_owned();
    assert_eq!((&reply.body["description"], &reply.body["name"]), (&json!("second"), &json!("p")));
    assert_eq!((&reply.body["definitions"], &reply.body["metadata"]), (&first["definitions"], &first["metadata"]));
    // An empty description is a change when the body names it.
    let reply = server.json(Method::PATCH, &path, Some(json!({"description": ""}))).await;
    assert_eq!(reply.body["description"], "");
    // The same values again record nothing.
    let reply = server.json(Method::PATCH, &path, Some(json!({"name": "p"}))).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.headers.get("x-iamd-consistency-token").is_none(), "an unchanged PATCH wrote an event");

    // A stale version is refused and changes nothing; the current one goes through.
    let stale = [("if-match", etag.clone())];
    let reply = server.json_with(Method::PATCH, &path, Some(json!({"name": "q"})), &stale).await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.body);
    let reply = server.json_with(Method::DELETE, &path, None, &stale).await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{}", reply.body);
    let current = get(&server, &path).await.headers.get("etag").unwrap().to_str().unwrap().to_owned();
    let reply = server.json_with(Method::PATCH, &path, Some(json!({"name": "q"})), &[("if-match", current)]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let current = reply.headers.get("etag").unwrap().to_str().unwrap().to_owned();
    let reply = server.json_with(Method::DELETE, &path, None, &[("if-match", current)]).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.body);

    // The history says what changed, each event only that.
    let reply = get(&server, &format!("/v1/events?objectType=org_policy&objectId={id}")).await;
    let events: Vec<(&str, &Value)> = reply.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["eventType"].as_str().unwrap(), &e["payload"]))
        .collect();
    assert_eq!(events.len(), 5, "{}", reply.body);
    assert_eq!(events[1], ("org.iam.policy.changed", &json!({"description": "second"})));
    assert_eq!(events[3], ("org.iam.policy.changed", &json!({"name": "q"})));
    assert_eq!(events[4].0, "org.iam.policy.removed");
}

/// 250 policies walked 7 at a time, forward and newest first, while other requests insert
/// and delete between the pages: nothing is seen twice, and everything that existed
/// throughout the walk is seen.
#[tokio::test]
async fn pages_walk_every_policy_once_while_the_list_changes() {
    let server = TestServer::start().await;
    let org = server.create_org("acme").await;
    let policies = format!("/organizations/{org}/iam-policies");
    let mut all = vec![managed_policy_id(&org, "Full access"), managed_policy_id(&org, "Read-only access")];
    let managed = all.clone();
    for i in 0..248 {
        all.push(create_policy(&server, &org, &format!("p{i:03}")).await);
    }
    for reverse in [false, true] {
        let at_start = all.clone();
        let mut seen: Vec<String> = Vec::new();
        let mut deleted = BTreeSet::new();
        let mut token: Option<String> = None;
        let mut round = 0;
        loop {
            let query = match &token {
                Some(token) => format!("?limit=7&reverse={reverse}&pageToken={token}"),
                None => format!("?limit=7&reverse={reverse}"),
            };
            let page = get(&server, &format!("{policies}{query}")).await;
            assert_eq!(page.status, StatusCode::OK, "{}", page.body);
            let results = page.body["results"].as_array().unwrap();
            assert!(results.len() <= 7);
            seen.extend(results.iter().map(|p| p["id"].as_str().unwrap().to_owned()));
            // Between pages: a new policy, the delete of one not seen yet, and the delete of
            // the page's last row, the key its token holds.
            round += 1;
            all.push(create_policy(&server, &org, &format!("new-{reverse}-{round}")).await);
            let unseen = at_start.iter().find(|id| !seen.contains(id) && !deleted.contains(*id));
            let custom = |id: &&String| !managed.contains(*id);
            let doomed: Vec<String> = unseen.into_iter().chain(seen.last()).filter(custom).cloned().collect();
            for id in doomed {
                if deleted.insert(id.clone()) {
                    let reply = server.json(Method::DELETE, &format!("{policies}/{id}"), None).await;
                    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.body);
                }
            }
            match page.body.get("nextPageToken") {
                Some(next) => token = Some(next.as_str().unwrap().to_owned()),
                None => break,
            }
        }
        let unique: BTreeSet<&String> = seen.iter().collect();
        assert_eq!(unique.len(), seen.len(), "an item was seen twice (reverse: {reverse})");
        let throughout: Vec<&String> = at_start.iter().filter(|id| !deleted.contains(*id)).collect();
        for id in &throughout {
            assert!(seen.contains(id), "{id} existed throughout and was missed (reverse: {reverse})");
        }
        assert!(throughout.len() > 150, "the walk deleted too much to prove anything: {}", throughout.len());
        all.retain(|id| !deleted.contains(id));
    }
}

/// Policy deletes and assignments naming those policies, all sent at once: for each policy
/// one of the two wins and the other is refused (the assignment NotFound, or the delete for
/// its dependent), so no assignment ever names a policy that is gone.
#[tokio::test]
async fn a_policy_delete_racing_an_assignment_that_names_it_leaves_no_dangling_reference() {
    const POLICIES: usize = 40;
    let server = Arc::new(TestServer::start().await);
    let org = server.create_org("acme").await;
    let mut policies = Vec::new();
    for i in 0..POLICIES {
        policies.push(create_policy(&server, &org, &format!("p{i}")).await);
    }
    let barrier = Arc::new(Barrier::new(2 * POLICIES));
    let mut races = Vec::new();
    for policy in &policies {
        let delete = {
            let (server, barrier) = (server.clone(), barrier.clone());
            let path = format!("/organizations/{org}/iam-policies/{policy}");
            tokio::spawn(async move {
                barrier.wait().await;
                server.json(Method::DELETE, &path, None).await.status
            })
        };
        let assignment = {
            let (server, barrier) = (server.clone(), barrier.clone());
            let path = format!("/organizations/{org}/iam-assignments");
            let body = json!({"principal": "user:local:alice", "policyIds": [policy]});
            tokio::spawn(async move {
                barrier.wait().await;
                server.json(Method::POST, &path, Some(body)).await
            })
        };
        races.push((policy, delete, assignment));
    }
    for (policy, delete, assignment) in races {
        let (deleted, assigned) = (delete.await.unwrap(), assignment.await.unwrap());
        let exists =
            get(&server, &format!("/organizations/{org}/iam-policies/{policy}")).await.status == StatusCode::OK;
        match (deleted, assigned.status) {
            (StatusCode::NO_CONTENT, StatusCode::NOT_FOUND) => {
                assert!(!exists);
            }
            (StatusCode::BAD_REQUEST, StatusCode::CREATED) => {
                assert!(exists);
                assert_eq!(policy_counts(&server, &org, policy).await, (0, 1));
            }
            other => panic!("{policy}: delete {} and assignment {} ({})", other.0, other.1, assigned.body),
        }
    }
    // Every assignment the list holds names a policy that is there.
    let list = get(&server, &format!("/organizations/{org}/iam-assignments?limit=100")).await.body;
    for assignment in list["results"].as_array().unwrap() {
        let policy = assignment["policyIds"][0].as_str().unwrap();
        let reply = get(&server, &format!("/organizations/{org}/iam-policies/{policy}")).await;
        assert_eq!(reply.status, StatusCode::OK, "an assignment names the deleted policy {policy}");
    }
}
