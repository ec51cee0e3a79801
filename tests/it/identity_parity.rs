//! Every method of the identity services (users, teams, tokens, introspection) over gRPC,
//! gRPC-web (binary and text) and JSON: the same request from the same state gives the same
//! answer or the same error on each protocol.

use http::Method;
use serde_json::{Value, json};
use tonic::Code;

use crate::parity::{Step, parity};
use crate::support::{Rest, Rpc, rpc};

const TENANT1: Step = (Method::POST, "/iam/tenants", Some(r#"{"id":"t1","name":"One","skipPolicies":true}"#));
const ALICE: Step = (Method::POST, "/iam/users", Some(r#"{"id":"alice","name":"Alice"}"#));
const ENG: Step = (Method::POST, "/iam/teams", Some(r#"{"id":"eng","name":"Engineering","tenants":["t1"]}"#));
const ALICE_IN_ENG: Step = (Method::POST, "/iam/teams/eng/users:add", Some(r#"{"userIds":["alice"]}"#));
const CI: Step = (Method::POST, "/iam/tokens", Some(r#"{"id":"ci","name":"CI","tenants":["t1"]}"#));

fn one<Req, Resp>(rpc: Rpc<Req, Resp>, method: Method, template: &'static str, id: &str) -> Rest<Req, Resp> {
    Rest::new(rpc, method, template).bind("id", id)
}

fn alice(name: &str) -> Value {
    json!({"user": {"id": "alice", "name": name}})
}

fn eng(users: Value) -> Value {
    json!({"team": {"id": "eng", "name": "Engineering", "tenants": ["t1"]}, "users": users})
}

// ---- users ----

#[tokio::test]
async fn create_user() {
    let create = |id: &'static str| {
        move |_: &str| Rest::new(rpc::CREATE_USER, Method::POST, "/iam/users").body(json!({"id": id, "name": "Alice"}))
    };
    assert_eq!(parity(&[], create("alice"), Code::Ok).await, alice("Alice"));
    let taken = parity(&[ALICE], create("alice"), Code::AlreadyExists).await;
    assert_eq!(taken["reason"], "USER_ALREADY_EXISTS");
    let bad = parity(&[], create("al ice"), Code::InvalidArgument).await;
    assert!(bad["message"].as_str().unwrap().contains("`al ice` is not an id"), "{bad}");
}

#[tokio::test]
async fn list_users() {
    let answer = parity(&[ALICE], |_| Rest::new(rpc::LIST_USERS, Method::GET, "/iam/users"), Code::Ok).await;
    assert_eq!(answer, json!({"users": [{"id": "admin", "name": "Administrator"}, {"id": "alice", "name": "Alice"}]}));
}

#[tokio::test]
async fn get_user() {
    let get = |id: &'static str| move |_: &str| one(rpc::GET_USER, Method::GET, "/iam/users/{id}", id);
    assert_eq!(parity(&[ALICE], get("alice"), Code::Ok).await, alice("Alice"));
    let missing = parity(&[], get("alice"), Code::NotFound).await;
    assert_eq!(missing["message"], "no user with id `alice` found");
}

#[tokio::test]
async fn update_user() {
    let update = |name: &'static str| {
        move |_: &str| one(rpc::UPDATE_USER, Method::PUT, "/iam/users/{id}", "alice").body(json!({"name": name}))
    };
    assert_eq!(parity(&[ALICE], update("Alice B."), Code::Ok).await, alice("Alice B."));
    parity(&[ALICE], update(" "), Code::InvalidArgument).await;
    parity(&[], update("Alice"), Code::NotFound).await;
}

#[tokio::test]
async fn delete_user() {
    let delete = |id: &'static str| move |_: &str| one(rpc::DELETE_USER, Method::DELETE, "/iam/users/{id}", id);
    assert_eq!(parity(&[ALICE], delete("alice"), Code::Ok).await, alice("Alice"));
    parity(&[], delete("alice"), Code::NotFound).await;
    // The administrator may not delete itself: a DENY every local user has.
    parity(&[], delete("admin"), Code::PermissionDenied).await;
}

#[tokio::test]
async fn list_user_teams() {
    let list = |_: &str| one(rpc::LIST_USER_TEAMS, Method::GET, "/iam/users/{id}/teams", "alice");
    let answer = parity(&[TENANT1, ALICE, ENG, ALICE_IN_ENG], list, Code::Ok).await;
    assert_eq!(answer, json!({"teams": [eng(json!(null))["team"]]}));
    parity(&[], list, Code::NotFound).await;
}

// ---- teams ----

#[tokio::test]
async fn create_team() {
    let create = |tenants: Value| {
        move |_: &str| {
            Rest::new(rpc::CREATE_TEAM, Method::POST, "/iam/teams")
                .body(json!({"id": "eng", "name": "Engineering", "tenants": tenants}))
        }
    };
    assert_eq!(parity(&[TENANT1], create(json!(["t1"])), Code::Ok).await, json!({"team": eng(json!(null))["team"]}));
    parity(&[TENANT1, ENG], create(json!(["t1"])), Code::AlreadyExists).await;
    parity(&[], create(json!(["t1"])), Code::NotFound).await;
    parity(&[], create(json!(["*"])), Code::InvalidArgument).await;
}

#[tokio::test]
async fn list_teams() {
    let list = |tenants: &'static str| {
        move |_: &str| Rest::new(rpc::LIST_TEAMS, Method::GET, "/iam/teams").header("tenants", tenants)
    };
    let all = parity(&[TENANT1, ENG], list("*"), Code::Ok).await;
    let ids: Vec<&str> = all["teams"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["admins", "eng"]);
    assert_eq!(parity(&[TENANT1, ENG], list("t1"), Code::Ok).await, json!({"teams": [eng(json!(null))["team"]]}));
}

#[tokio::test]
async fn get_team() {
    let get = |_: &str| one(rpc::GET_TEAM, Method::GET, "/iam/teams/{id}", "eng");
    assert_eq!(parity(&[TENANT1, ENG], get, Code::Ok).await, json!({"team": eng(json!(null))["team"]}));
    parity(&[], get, Code::NotFound).await;
    let hidden = |_: &str| one(rpc::GET_TEAM, Method::GET, "/iam/teams/{id}", "eng").header("tenants", "(unassigned)");
    parity(&[TENANT1, ENG], hidden, Code::NotFound).await;
}

#[tokio::test]
async fn update_team() {
    let update = |tenants: Value| {
        move |_: &str| {
            one(rpc::UPDATE_TEAM, Method::PUT, "/iam/teams/{id}", "eng")
                .body(json!({"name": "Platform", "tenants": tenants}))
        }
    };
    let answer = parity(&[TENANT1, ENG], update(json!([])), Code::Ok).await;
    assert_eq!(answer, json!({"team": {"id": "eng", "name": "Platform", "tenants": []}}));
    parity(&[TENANT1, ENG], update(json!(["t2"])), Code::NotFound).await;
    parity(&[], update(json!([])), Code::NotFound).await;
}

#[tokio::test]
async fn delete_team() {
    let delete = |id: &'static str| move |_: &str| one(rpc::DELETE_TEAM, Method::DELETE, "/iam/teams/{id}", id);
    assert_eq!(parity(&[TENANT1, ENG], delete("eng"), Code::Ok).await, json!({"team": eng(json!(null))["team"]}));
    parity(&[], delete("eng"), Code::NotFound).await;
    let admins = parity(&[], delete("admins"), Code::FailedPrecondition).await;
    assert_eq!(admins["reason"], "PROTECTED");
}

#[tokio::test]
async fn list_team_users() {
    let list = |_: &str| one(rpc::LIST_TEAM_USERS, Method::GET, "/iam/teams/{id}/users", "eng");
    assert_eq!(parity(&[TENANT1, ALICE, ENG, ALICE_IN_ENG], list, Code::Ok).await, json!({"userIds": ["alice"]}));
    parity(&[], list, Code::NotFound).await;
}

#[tokio::test]
async fn add_team_users() {
    let add = |users: Value| {
        move |_: &str| {
            one(rpc::ADD_TEAM_USERS, Method::POST, "/iam/teams/{id}/users:add", "eng").body(json!({"userIds": users}))
        }
    };
    assert_eq!(
        parity(&[TENANT1, ALICE, ENG], add(json!(["alice", "admin"])), Code::Ok).await,
        json!({"userIds": ["alice", "admin"]})
    );
    let missing = parity(&[TENANT1, ENG], add(json!(["nobody"])), Code::NotFound).await;
    assert_eq!(missing["reason"], "USER_NOT_FOUND");
    parity(&[TENANT1, ENG], add(json!([])), Code::InvalidArgument).await;
}

#[tokio::test]
async fn remove_team_users() {
    let remove = |team: &'static str, users: Value| {
        move |_: &str| {
            one(rpc::REMOVE_TEAM_USERS, Method::POST, "/iam/teams/{id}/users:remove", team)
                .body(json!({"userIds": users}))
        }
    };
    let steps = [TENANT1, ALICE, ENG, ALICE_IN_ENG];
    assert_eq!(parity(&steps, remove("eng", json!(["alice", "carol"])), Code::Ok).await, json!({"userIds": []}));
    let admin = parity(&[], remove("admins", json!(["admin"])), Code::FailedPrecondition).await;
    assert_eq!(admin["reason"], "PROTECTED");
}

// ---- tokens ----

#[tokio::test]
async fn create_token() {
    let create =
        |body: Value| move |_: &str| Rest::new(rpc::CREATE_TOKEN, Method::POST, "/iam/tokens").body(body.clone());
    let body = json!({"id": "ci", "name": "CI", "tenants": ["t1"], "userId": "alice"});
    let answer = parity(&[TENANT1, ALICE], create(body), Code::Ok).await;
    assert_eq!(
        answer["token"],
        json!({"id": "ci", "name": "CI", "value": "<secret>", "active": true, "tenants": ["t1"], "userId": "alice",
            "createdAt": "<time>", "updatedAt": "<time>"})
    );
    parity(&[TENANT1, CI], create(json!({"id": "ci", "name": "CI"})), Code::AlreadyExists).await;
    parity(&[], create(json!({"id": "ci", "name": "CI", "userId": "alice"})), Code::NotFound).await;
    let past = json!({"id": "ci", "name": "CI", "expiresAt": "2001-01-01T00:00:00Z"});
    let answer = parity(&[], create(past), Code::InvalidArgument).await;
    assert_eq!(answer["message"], "a token's expiry must lie in the future");
}

#[tokio::test]
async fn list_tokens() {
    let list = |_: &str| Rest::new(rpc::LIST_TOKENS, Method::GET, "/iam/tokens");
    let answer = parity(&[TENANT1, CI], list, Code::Ok).await;
    let tokens = answer["tokens"].as_array().unwrap();
    let ids: Vec<&str> = tokens.iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["bootstrap", "ci"]);
    assert!(tokens.iter().all(|t| t["value"] == ""), "{answer}");
}

#[tokio::test]
async fn get_token() {
    let get = |_: &str| one(rpc::GET_TOKEN, Method::GET, "/iam/tokens/{id}", "ci");
    let answer = parity(&[TENANT1, CI], get, Code::Ok).await;
    assert_eq!(answer["token"]["value"], "", "a secret is answered only when made");
    parity(&[], get, Code::NotFound).await;
}

#[tokio::test]
async fn update_token() {
    let update =
        |body: Value| move |_: &str| one(rpc::UPDATE_TOKEN, Method::PUT, "/iam/tokens/{id}", "ci").body(body.clone());
    let answer = parity(&[TENANT1, CI], update(json!({"name": "Builds", "active": false})), Code::Ok).await;
    let token = &answer["token"];
    assert_eq!((&token["name"], &token["active"], &token["tenants"]), (&json!("Builds"), &json!(false), &json!([])));
    let moved =
        parity(&[TENANT1, CI, ALICE], update(json!({"name": "CI", "userId": "alice"})), Code::InvalidArgument).await;
    assert!(moved["message"].as_str().unwrap().contains("a token's user cannot change"), "{moved}");
    parity(&[], update(json!({"name": "CI"})), Code::NotFound).await;
}

#[tokio::test]
async fn delete_token() {
    let delete = |_: &str| one(rpc::DELETE_TOKEN, Method::DELETE, "/iam/tokens/{id}", "ci");
    assert_eq!(parity(&[TENANT1, CI], delete, Code::Ok).await, json!({}));
    parity(&[], delete, Code::NotFound).await;
}

// ---- introspection ----

#[tokio::test]
async fn introspect() {
    let introspect = |paths: Value| {
        move |_: &str| Rest::new(rpc::INTROSPECT, Method::POST, "/iam/introspect").body(json!({"paths": paths}))
    };
    let answer = parity(&[], introspect(json!(["/iam/tokens/ci", "/unknown"])), Code::Ok).await;
    assert_eq!(
        answer,
        json!({"endpoints": {
            "/iam/tokens/ci": {"get": true, "put": true, "post": false, "delete": true, "patch": false},
            "/unknown": {"get": false, "put": false, "post": false, "delete": false, "patch": false},
        }})
    );
    let bad = parity(&[], introspect(json!(["iam/users"])), Code::InvalidArgument).await;
    assert!(bad["message"].as_str().unwrap().contains("is not an API path"), "{bad}");
}
