//! Users, teams and tokens, and what they mean at the front door: secrets shown once and kept
//! nowhere, a token acting as its user with the user's teams, the protections that keep the
//! instance administrable, what a user's or a team's delete takes with it, the bootstrap (once,
//! even for two replicas racing on one empty database), a tenant owner's view, and
//! introspection.

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::durability::{client, spawn_logging};
use crate::support::{JsonReply, TOKEN, TestServer};

/// A request as the holder of `secret`.
async fn as_token(server: &TestServer, secret: &str, method: Method, path: &str, body: Option<Value>) -> JsonReply {
    server.json_with(method, path, body, &[("authorization", format!("Bearer {secret}"))]).await
}

async fn ok(server: &TestServer, method: Method, path: &str, body: Value) -> Value {
    let reply = server.json(method.clone(), path, Some(body)).await;
    assert!(reply.status.is_success(), "{method} {path}: {}", reply.body);
    reply.body
}

/// A token made by the administrator; its secret.
async fn token(server: &TestServer, body: Value) -> String {
    ok(server, Method::POST, "/iam/tokens", body).await["token"]["value"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_token_secret_is_answered_once_and_then_only_refused_or_accepted() {
    let server = TestServer::start().await;
    let created = ok(&server, Method::POST, "/iam/tokens", json!({"id": "ci", "name": "CI", "tenants": []})).await;
    let secret = created["token"]["value"].as_str().unwrap().to_owned();
    assert_eq!(secret.len(), 43, "32 random bytes, base64url");
    assert_eq!(created["token"]["active"], true);
    assert_eq!(created["token"]["userId"], "");
    let read = server.json(Method::GET, "/iam/tokens/ci", None).await.body;
    assert_eq!(read["token"]["value"], "");
    let listed = server.json(Method::GET, "/iam/tokens", None).await.body;
    assert!(listed["tokens"].as_array().unwrap().iter().all(|t| t["value"] == ""), "{listed}");
    let events = server.json(Method::GET, "/v1/events?limit=100", None).await.body.to_string();
    assert!(!events.contains(&secret) && !events.contains(TOKEN), "a secret in the history");

    // The token works, as `token:ci`, until it is deactivated, and again after.
    let denied = as_token(&server, &secret, Method::GET, "/iam/users", None).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN, "{}", denied.body);
    assert!(denied.body["message"].as_str().unwrap().contains("`token:ci` may not `iam:users:list` on `iam:users`"));
    ok(&server, Method::PUT, "/iam/tokens/ci", json!({"name": "CI", "active": false})).await;
    let inactive = as_token(&server, &secret, Method::GET, "/iam/users", None).await;
    assert_eq!(inactive.status, StatusCode::UNAUTHORIZED);
    assert_eq!(inactive.body["details"][0]["reason"], "TOKEN_INACTIVE", "{}", inactive.body);
    ok(&server, Method::PUT, "/iam/tokens/ci", json!({"name": "CI", "active": true})).await;
    assert_eq!(as_token(&server, &secret, Method::GET, "/iam/users", None).await.status, StatusCode::FORBIDDEN);
    ok(&server, Method::DELETE, "/iam/tokens/ci", json!({})).await;
    let deleted = as_token(&server, &secret, Method::GET, "/iam/users", None).await;
    assert_eq!(deleted.status, StatusCode::UNAUTHORIZED);
    assert!(!deleted.body.to_string().contains(&secret), "an error repeats the secret");

    // Expired tokens are refused; an expiry must lie ahead.
    let past = json!({"id": "old", "name": "Old", "expiresAt": "2020-01-01T00:00:00Z"});
    assert_eq!(server.json(Method::POST, "/iam/tokens", Some(past)).await.status, StatusCode::BAD_REQUEST);
    let dir = server.stop().await;
    let mut stored = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            stored.extend(std::fs::read(path).unwrap());
        }
    }
    let stored = String::from_utf8_lossy(&stored);
    assert!(stored.contains("iam.token.added"), "the store was read");
    assert!(!stored.contains(&secret) && !stored.contains(TOKEN), "a secret in the store's files");
}

#[tokio::test]
async fn the_log_never_holds_a_secret_and_a_generated_bootstrap_token_is_printed_once() {
    let dir = tempfile::tempdir().unwrap();
    // No IAMD_BOOTSTRAP_TOKEN: iamd makes one and prints it once, on stderr.
    let mut process = spawn_logging(dir.path(), &[("IAMD_BOOTSTRAP_TOKEN", ""), ("IAMD_LOG", "debug")], Stdio::piped());
    let server = client(&process.addr);
    let stderr = process.child.stderr.take().unwrap();
    let (lines, received) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let mut log = Vec::new();
    let generated = loop {
        let line = received.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
        log.push(line.clone());
        if let Some(secret) =
            line.strip_prefix("iamd bootstrap token (shown once; send it as `Authorization: Bearer <token>`): ")
        {
            break secret.to_owned();
        }
    };
    assert_eq!(generated.len(), 43);
    let users = as_token(&server, &generated, Method::GET, "/iam/users", None).await;
    assert_eq!(users.status, StatusCode::OK, "{}", users.body);
    let made =
        as_token(&server, &generated, Method::POST, "/iam/tokens", Some(json!({"id": "ci", "name": "CI"}))).await;
    let secret = made.body["token"]["value"].as_str().unwrap().to_owned();
    as_token(&server, &secret, Method::GET, "/iam/users", None).await;
    as_token(&server, "wrong-secret", Method::GET, "/iam/users", None).await;
    let _ = process.child.kill();
    let _ = process.child.wait();
    reader.join().unwrap();
    log.extend(received.try_iter());
    let log = log.join("\n");
    assert_eq!(log.matches(&generated).count(), 1, "printed once");
    assert!(!log.contains(&secret), "a token secret in the log");
    assert!(!log.contains("wrong-secret"), "a presented credential in the log");
    assert!(log.contains("iamd.iam.v2.UserService/ListUsers"), "the log was read: {log}");
}

#[tokio::test]
async fn a_token_that_names_a_user_acts_as_that_user_with_its_teams() {
    let server = TestServer::start().await;
    ok(&server, Method::POST, "/iam/users", json!({"id": "alice", "name": "Alice"})).await;
    ok(&server, Method::POST, "/iam/teams", json!({"id": "eng", "name": "Engineering"})).await;
    ok(&server, Method::POST, "/iam/teams/eng/users:add", json!({"userIds": ["alice"]})).await;
    let statement =
        |actions: Value| json!([{"effect": "ALLOW", "actions": actions, "resources": ["*"], "tenants": ["*"]}]);
    ok(
        &server,
        Method::POST,
        "/iam/policies",
        json!({"id": "eng-reads", "name": "Eng", "members": ["team:local:eng"],
            "statements": statement(json!(["iam:users:list", "iam:tokens:create"]))}),
    )
    .await;
    let alice = token(&server, json!({"id": "alice-cli", "name": "CLI", "userId": "alice"})).await;
    let users = as_token(&server, &alice, Method::GET, "/iam/users", None).await;
    assert_eq!(users.status, StatusCode::OK, "alice acts with her team: {}", users.body);
    let history = server.json(Method::GET, "/v1/events?objectType=team&objectId=eng", None).await.body;
    assert!(history["events"].as_array().unwrap().iter().all(|e| e["actor"] == "user:local:admin"), "{history}");

    // She may make tokens, but not ones that act as someone: that needs
    // `iam:users:tokens:create` on the user, which only owners have.
    let own = as_token(&server, &alice, Method::POST, "/iam/tokens", Some(json!({"id": "mine", "name": "Mine"}))).await;
    assert_eq!(own.status, StatusCode::OK, "{}", own.body);
    let writes = server.json(Method::GET, "/v1/events?objectType=token&objectId=mine", None).await.body;
    assert_eq!(writes["events"][0]["actor"], "user:local:alice", "the history records the authenticated subject");
    let as_admin = json!({"id": "sneaky", "name": "Sneaky", "userId": "admin"});
    let refused = as_token(&server, &alice, Method::POST, "/iam/tokens", Some(as_admin)).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert!(refused.body["message"].as_str().unwrap().contains("iam:users:tokens:create"), "{}", refused.body);
    assert_eq!(server.json(Method::GET, "/iam/tokens/sneaky", None).await.status, StatusCode::NOT_FOUND);

    // A token's user never changes.
    let moved =
        server.json(Method::PUT, "/iam/tokens/alice-cli", Some(json!({"name": "CLI", "userId": "admin"}))).await;
    assert_eq!(moved.status, StatusCode::BAD_REQUEST, "{}", moved.body);
    assert_eq!(moved.body["details"][1]["fieldViolations"][0]["field"], "userId", "{}", moved.body);
    let unknown =
        server.json(Method::POST, "/iam/tokens", Some(json!({"id": "x", "name": "X", "userId": "nobody"}))).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{}", unknown.body);

    // Local users read and rename themselves, and no one else.
    let me = as_token(&server, &alice, Method::GET, "/iam/users/alice", None).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    let teams = as_token(&server, &alice, Method::GET, "/iam/users/alice/teams", None).await;
    assert_eq!(teams.body["teams"][0]["id"], "eng", "{}", teams.body);
    let other = as_token(&server, &alice, Method::GET, "/iam/users/admin", None).await;
    assert_eq!(other.status, StatusCode::FORBIDDEN);
    let gone = as_token(&server, &alice, Method::DELETE, "/iam/users/alice", None).await;
    assert_eq!(gone.status, StatusCode::FORBIDDEN, "nobody deletes themselves: {}", gone.body);

    // Out of the team, her token acts without its grant.
    ok(&server, Method::POST, "/iam/teams/eng/users:remove", json!({"userIds": ["alice"]})).await;
    assert_eq!(as_token(&server, &alice, Method::GET, "/iam/users", None).await.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn nobody_can_lock_the_instance_out() {
    let server = TestServer::start().await;
    // A second administrator, who would otherwise be allowed anything.
    ok(&server, Method::POST, "/iam/users", json!({"id": "root", "name": "Root"})).await;
    ok(&server, Method::POST, "/iam/teams/admins/users:add", json!({"userIds": ["root"]})).await;
    let root = token(&server, json!({"id": "root", "name": "Root", "userId": "root"})).await;
    for (method, path, body) in [
        (Method::DELETE, "/iam/users/admin", None),
        (Method::DELETE, "/iam/teams/admins", None),
        (Method::POST, "/iam/teams/admins/users:remove", Some(json!({"userIds": ["admin"]}))),
    ] {
        let reply = as_token(&server, &root, method.clone(), path, body).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{method} {path}: {}", reply.body);
        assert_eq!(reply.body["code"], 9, "FAILED_PRECONDITION: {}", reply.body);
        assert_eq!(reply.body["details"][0]["reason"], "PROTECTED", "{}", reply.body);
    }
    let dropped = server
        .json(
            Method::POST,
            "/iam/policies/administrator-access/members:remove",
            Some(json!({"members": ["team:local:admins"]})),
        )
        .await;
    assert_eq!(dropped.status, StatusCode::FORBIDDEN, "{}", dropped.body);
    // The managed policies and roles stay as iamd made them, even for their owner.
    for (method, path) in [(Method::DELETE, "/iam/policies/viewer-access"), (Method::DELETE, "/iam/roles/owner")] {
        let reply = server.json(method.clone(), path, None).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{method} {path}: {}", reply.body);
        assert_eq!(reply.body["details"][0]["reason"], "MANAGED", "{}", reply.body);
    }
    // Nobody deletes themselves either, administrators included.
    let myself = server.json(Method::DELETE, "/iam/users/admin", None).await;
    assert_eq!(myself.status, StatusCode::FORBIDDEN, "{}", myself.body);
    // Still the administrator.
    assert_eq!(
        server.json(Method::GET, "/iam/teams/admins/users", None).await.body["userIds"],
        json!(["admin", "root"])
    );
    assert_eq!(server.json(Method::GET, "/iam/users", None).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_deleted_user_leaves_no_grant_behind_and_a_deleted_team_no_member() {
    let server = TestServer::start().await;
    let org = server.create_org("acme").await;
    ok(&server, Method::POST, "/iam/users", json!({"id": "alice", "name": "Alice"})).await;
    ok(&server, Method::POST, "/iam/teams", json!({"id": "eng", "name": "Engineering"})).await;
    ok(&server, Method::POST, "/iam/teams/eng/users:add", json!({"userIds": ["alice"]})).await;
    ok(
        &server,
        Method::POST,
        "/iam/policies/viewer-access/members:add",
        json!({"members": ["user:local:alice", "team:local:eng", "user:local:alice2"]}),
    )
    .await;
    let secret = token(&server, json!({"id": "alice-cli", "name": "CLI", "userId": "alice"})).await;
    let policy = ok(
        &server,
        Method::POST,
        &format!("/organizations/{org}/iam-policies"),
        json!({"name": "Readers", "definitions": [{"effect": "allow", "actions": ["view"], "resources": ["/**"]}]}),
    )
    .await;
    let assignments = format!("/organizations/{org}/iam-assignments");
    let exact =
        ok(&server, Method::POST, &assignments, json!({"principal": "user:local:alice", "policyIds": [policy["id"]]}))
            .await;
    let wildcard =
        ok(&server, Method::POST, &assignments, json!({"principal": "user:local:*", "policyIds": [policy["id"]]}))
            .await;

    let deleted = server.json(Method::DELETE, "/iam/users/alice", None).await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);
    assert_eq!(deleted.body["user"]["id"], "alice");
    assert_eq!(
        as_token(&server, &secret, Method::GET, "/iam/users/alice", None).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(server.json(Method::GET, "/iam/tokens/alice-cli", None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(server.json(Method::GET, "/iam/teams/eng/users", None).await.body["userIds"], json!([]));
    let members = server.json(Method::GET, "/iam/policies/viewer-access/members", None).await.body;
    assert_eq!(members["members"], json!(["team:local:viewers", "team:local:eng", "user:local:alice2"]));
    let exact_path = format!("{assignments}/{}", exact["id"].as_str().unwrap());
    assert_eq!(server.json(Method::GET, &exact_path, None).await.status, StatusCode::NOT_FOUND);
    let wildcard_path = format!("{assignments}/{}", wildcard["id"].as_str().unwrap());
    assert_eq!(server.json(Method::GET, &wildcard_path, None).await.status, StatusCode::OK, "only exact principals go");

    let team = server.json(Method::DELETE, "/iam/teams/eng", None).await;
    assert_eq!(team.status, StatusCode::OK, "{}", team.body);
    let members = server.json(Method::GET, "/iam/policies/viewer-access/members", None).await.body;
    assert_eq!(members["members"], json!(["team:local:viewers", "user:local:alice2"]));
}

#[tokio::test]
async fn a_tenant_owner_sees_and_changes_only_its_tenant() {
    let server = TestServer::start().await;
    ok(&server, Method::POST, "/iam/tenants", json!({"id": "t1", "name": "One"})).await;
    ok(&server, Method::POST, "/iam/tenants", json!({"id": "t2", "name": "Two", "skipPolicies": true})).await;
    ok(&server, Method::POST, "/iam/users", json!({"id": "carol", "name": "Carol"})).await;
    ok(&server, Method::POST, "/iam/policies/t1-tenant-owners/members:add", json!({"members": ["user:local:carol"]}))
        .await;
    let statements = json!([{"effect": "ALLOW", "actions": ["iam:roles:get"], "tenants": ["*"]}]);
    for (id, tenants) in [("in-t1", json!(["t1"])), ("in-t2", json!(["t2"])), ("in-both", json!(["t1", "t2"]))] {
        ok(
            &server,
            Method::POST,
            "/iam/policies",
            json!({"id": id, "name": id, "statements": statements, "tenants": tenants}),
        )
        .await;
    }
    let carol = token(&server, json!({"id": "carol", "name": "Carol", "userId": "carol"})).await;
    let ids = |reply: &JsonReply| -> Vec<String> {
        reply.body["policies"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap().to_owned()).collect()
    };
    let listed = as_token(&server, &carol, Method::GET, "/iam/policies", None).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    assert_eq!(ids(&listed), ["t1-tenant-owners", "t1-tenant-editors", "t1-tenant-viewers", "in-t1", "in-both"]);
    let header = [("authorization", format!("Bearer {carol}")), ("tenants", "t2".to_owned())];
    let asked = server.json_with(Method::GET, "/iam/policies", None, &header).await;
    assert_eq!(asked.status, StatusCode::FORBIDDEN, "nothing authorized in t2: {}", asked.body);
    assert_eq!(as_token(&server, &carol, Method::GET, "/iam/policies/in-t2", None).await.status, StatusCode::NOT_FOUND);
    let members = json!({"members": ["user:local:dave"]});
    let mine = as_token(&server, &carol, Method::POST, "/iam/policies/in-t1/members:add", Some(members.clone())).await;
    assert_eq!(mine.status, StatusCode::OK, "{}", mine.body);
    let theirs = as_token(&server, &carol, Method::POST, "/iam/policies/in-t2/members:add", Some(members)).await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND, "{}", theirs.body);
    // She may put what she makes into her tenant, never into another.
    let team = |tenants: Value| Some(json!({"id": "crew", "name": "Crew", "tenants": tenants}));
    let create_teams =
        json!([{"effect": "ALLOW", "actions": ["iam:teams:create"], "resources": ["iam:teams"], "tenants": ["*"]}]);
    ok(
        &server,
        Method::POST,
        "/iam/policies",
        json!({"id": "teams", "name": "Teams", "members": ["user:local:carol"], "statements": create_teams}),
    )
    .await;
    let into_t2 = as_token(&server, &carol, Method::POST, "/iam/teams", team(json!(["t2"]))).await;
    assert_eq!(into_t2.status, StatusCode::FORBIDDEN, "{}", into_t2.body);
    assert!(into_t2.body["message"].as_str().unwrap().contains("iam:tenants:assign"), "{}", into_t2.body);
    let into_t1 = as_token(&server, &carol, Method::POST, "/iam/teams", team(json!(["t1"]))).await;
    assert_eq!(into_t1.status, StatusCode::OK, "{}", into_t1.body);
    let tenants = as_token(&server, &carol, Method::GET, "/iam/tenants", None).await;
    assert_eq!(tenants.body["tenants"].as_array().unwrap().len(), 1, "{}", tenants.body);
}

#[tokio::test]
async fn introspection_says_what_the_caller_may_call() {
    let server = TestServer::start().await;
    ok(&server, Method::POST, "/iam/tenants", json!({"id": "t1", "name": "One"})).await;
    ok(&server, Method::POST, "/iam/users", json!({"id": "carol", "name": "Carol"})).await;
    ok(&server, Method::POST, "/iam/policies/t1-tenant-owners/members:add", json!({"members": ["user:local:carol"]}))
        .await;
    let carol = token(&server, json!({"id": "carol", "name": "Carol", "userId": "carol"})).await;
    let paths = json!({"paths": ["/iam/policies", "/iam/policies/t1-tenant-owners/members", "/iam/users", "/iam/users/carol", "/nowhere"]});
    let answer = as_token(&server, &carol, Method::POST, "/iam/introspect", Some(paths.clone())).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let endpoints = &answer.body["endpoints"];
    let no = json!({"get": false, "put": false, "post": false, "delete": false, "patch": false});
    assert_eq!(
        endpoints["/iam/policies"],
        json!({"get": true, "put": false, "post": false, "delete": false, "patch": false})
    );
    assert_eq!(
        endpoints["/iam/policies/t1-tenant-owners/members"],
        json!({"get": true, "put": true, "post": false, "delete": false, "patch": false})
    );
    assert_eq!(endpoints["/iam/users"], no);
    assert_eq!(
        endpoints["/iam/users/carol"],
        json!({"get": true, "put": true, "post": false, "delete": false, "patch": false})
    );
    assert_eq!(endpoints["/nowhere"], no);
    let admin = server.json(Method::POST, "/iam/introspect", Some(paths)).await.body;
    assert_eq!(
        admin["endpoints"]["/iam/users"],
        json!({"get": true, "put": false, "post": true, "delete": false, "patch": false})
    );
    assert_eq!(admin["endpoints"]["/iam/users/carol"]["delete"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_racing_on_one_empty_database_bootstrap_once() {
    let Some(schema) = crate::replicas::Schema::create().await else { return };
    let start = |secret: &'static str| {
        let url = schema.url.clone();
        async move {
            let dir = tempfile::tempdir().unwrap();
            TestServer::start_in(dir, move |c| iamd::config::Config {
                database_url: Some(url.as_str().into()),
                bootstrap_token: Some(secret.into()),
                ..c
            })
            .await
        }
    };
    let (a, b) = tokio::join!(start("secret-of-a"), start("secret-of-b"));
    let works = async |secret: &str| {
        let mut on = Vec::new();
        for server in [&a, &b] {
            let reply = as_token(server, secret, Method::GET, "/iam/users", None).await;
            on.push(reply.status == StatusCode::OK);
        }
        on
    };
    let (with_a, with_b) = (works("secret-of-a").await, works("secret-of-b").await);
    assert!(
        (with_a == [true, true] && with_b == [false, false]) || (with_a == [false, false] && with_b == [true, true]),
        "one bootstrap token, on both replicas: {with_a:?} {with_b:?}"
    );
    let winner = if with_a[0] { "secret-of-a" } else { "secret-of-b" };
    let events = as_token(&a, winner, Method::GET, "/v1/events?objectType=bootstrap&objectId=instance", None).await;
    assert_eq!(events.body["events"].as_array().unwrap().len(), 1, "{}", events.body);
    let tokens = as_token(&a, winner, Method::GET, "/iam/tokens", None).await.body;
    assert_eq!(tokens["tokens"].as_array().unwrap().len(), 1, "{tokens}");
    // The bootstrap token can go; a later start does not bring it back.
    let gone = as_token(&a, winner, Method::DELETE, "/iam/tokens/bootstrap", None).await;
    assert_eq!(gone.status, StatusCode::OK, "{}", gone.body);
    a.stop().await;
    b.stop().await;
    let again = start(if winner == "secret-of-a" { "secret-of-a" } else { "secret-of-b" }).await;
    assert_eq!(as_token(&again, winner, Method::GET, "/iam/users", None).await.status, StatusCode::UNAUTHORIZED);
    again.stop().await;
    schema.drop().await;
}

#[tokio::test]
async fn a_team_granted_one_organization_runs_it_and_no_other() {
    let server = TestServer::start().await;
    let acme = server.create_org("acme").await;
    let globex = server.create_org("globex").await;
    ok(&server, Method::POST, "/iam/users", json!({"id": "alice", "name": "Alice"})).await;
    ok(&server, Method::POST, "/iam/teams", json!({"id": "acme-admins", "name": "Acme admins"})).await;
    ok(&server, Method::POST, "/iam/teams/acme-admins/users:add", json!({"userIds": ["alice"]})).await;
    // As README.md says.
    let resources = json!([
        format!("accounts:organizations:{acme}"),
        format!("accounts:organizations:{acme}:*"),
        format!("admin:domainPolicies:{acme}")
    ]);
    let statements = json!([{"effect": "ALLOW", "actions": ["accounts:*", "admin:domainPolicies:*"], "tenants": ["*"], "resources": resources}]);
    let policy = json!({"id": "acme-admins", "name": "Acme administrators", "members": ["team:local:acme-admins"], "statements": statements});
    ok(&server, Method::POST, "/iam/policies", policy).await;
    let alice = token(&server, json!({"id": "alice", "name": "Alice", "userId": "alice"})).await;

    let definitions =
        json!({"name": "Readers", "definitions": [{"effect": "allow", "actions": ["view"], "resources": ["/**"]}]});
    for (method, path, body, status) in [
        (Method::PATCH, format!("/organizations/{acme}"), Some(json!({"name": "acme-2"})), StatusCode::OK),
        (Method::POST, format!("/organizations/{acme}/iam-policies"), Some(definitions.clone()), StatusCode::CREATED),
        (Method::GET, format!("/admin/v1/orgs/{acme}/policies/domain"), None, StatusCode::OK),
        (Method::PATCH, format!("/organizations/{globex}"), Some(json!({"name": "mine"})), StatusCode::FORBIDDEN),
        (Method::POST, format!("/organizations/{globex}/iam-policies"), Some(definitions), StatusCode::FORBIDDEN),
        (Method::GET, "/organizations".to_owned(), None, StatusCode::FORBIDDEN),
        (Method::GET, "/iam/policies".to_owned(), None, StatusCode::FORBIDDEN),
    ] {
        let reply = as_token(&server, &alice, method.clone(), &path, body).await;
        assert_eq!(reply.status, status, "{method} {path}: {}", reply.body);
    }
}
