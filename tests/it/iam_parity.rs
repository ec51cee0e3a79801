//! Every method of the IAM v2 surface over gRPC, gRPC-web (binary and text) and JSON, as
//! `parity.rs` does for the other surfaces: the same request from the same state gives the
//! same answer or the same error on each protocol.

use http::Method;
use serde_json::{Value, json};
use tonic::Code;

use crate::parity::{Step, parity};
use crate::support::{Rest, Rpc, rpc};

const TENANT1: Step =
    (Method::POST, "/iam/tenants", Some(r#"{"id":"tenant1","name":"Tenant one","skipPolicies":true}"#));
const TENANT2: Step =
    (Method::POST, "/iam/tenants", Some(r#"{"id":"tenant2","name":"Tenant two","skipPolicies":true}"#));
const MY_ROLE: Step =
    (Method::POST, "/iam/roles", Some(r#"{"id":"myRole","name":"My role","actions":["iam:policies:get"]}"#));
const POLICY: Step = (
    Method::POST,
    "/iam/policies",
    Some(
        r#"{"id":"p1","name":"One","members":["user:local:alice"],"statements":[{"role":"myRole","tenants":["tenant1"]}],"tenants":["tenant1"]}"#,
    ),
);

fn policy_p1(members: Value) -> Value {
    json!({"policy": {"name": "One", "id": "p1", "type": "CUSTOM", "members": members, "tenants": ["tenant1"],
        "statements": [{"effect": "ALLOW", "actions": [], "role": "myRole", "resources": ["*"], "tenants": ["tenant1"]}]}})
}

fn one<Req, Resp>(rpc: Rpc<Req, Resp>, method: Method, template: &'static str, id: &str) -> Rest<Req, Resp> {
    Rest::new(rpc, method, template).bind("id", id)
}

// ---- policies ----

#[tokio::test]
async fn create_policy() {
    let create = |id: &'static str, statements: Value| {
        move |_: &str| {
            Rest::new(rpc::CREATE_POLICY, Method::POST, "/iam/policies").body(json!({
                "id": id, "name": "One", "members": ["user:local:alice"], "statements": statements, "tenants": ["tenant1"]
            }))
        }
    };
    let statements = json!([{"role": "myRole", "tenants": ["tenant1"]}]);
    let answer = parity(&[TENANT1, MY_ROLE], create("p1", statements.clone()), Code::Ok).await;
    assert_eq!(answer, policy_p1(json!(["user:local:alice"])));
    let answer = parity(&[TENANT1, MY_ROLE, POLICY], create("p1", statements.clone()), Code::AlreadyExists).await;
    assert_eq!(answer["message"], "a policy with id `p1` already exists");
    let answer = parity(&[TENANT1], create("p1", statements), Code::InvalidArgument).await;
    assert_eq!(answer["reason"], "ROLE_NOT_FOUND");
    parity(&[MY_ROLE], create("p1", json!([{"role": "myRole", "tenants": ["tenant1"]}])), Code::NotFound).await;
    parity(&[TENANT1, MY_ROLE], create("p1", json!([])), Code::InvalidArgument).await;
}

#[tokio::test]
async fn list_policies() {
    let list = |tenants: &'static str| {
        move |_: &str| Rest::new(rpc::LIST_POLICIES, Method::GET, "/iam/policies").header("tenants", tenants)
    };
    let answer = parity(&[TENANT1, MY_ROLE, POLICY], list("*"), Code::Ok).await;
    let ids: Vec<&str> = answer["policies"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["administrator-access", "editor-access", "viewer-access", "p1"]);
    let answer = parity(&[TENANT1, MY_ROLE, POLICY], list("tenant1"), Code::Ok).await;
    assert_eq!(answer["policies"], json!([policy_p1(json!(["user:local:alice"]))["policy"]]));
}

#[tokio::test]
async fn get_policy() {
    let get = |id: &'static str| move |_: &str| one(rpc::GET_POLICY, Method::GET, "/iam/policies/{id}", id);
    assert_eq!(parity(&[TENANT1, MY_ROLE, POLICY], get("p1"), Code::Ok).await, policy_p1(json!(["user:local:alice"])));
    let answer = parity(&[], get("viewer-access"), Code::Ok).await;
    assert_eq!(
        answer,
        json!({"policy": {"name": "Viewers", "id": "viewer-access", "type": "MANAGED", "members": ["team:local:viewers"],
            "statements": [{"effect": "ALLOW", "actions": [], "role": "viewer", "resources": ["*"], "tenants": ["*"]}],
            "tenants": []}})
    );
    let answer = parity(&[], get("p1"), Code::NotFound).await;
    assert_eq!(answer["message"], "no policy with id `p1` found");
    // Hidden by the tenants filter: not found either.
    let hidden = |_: &str| one(rpc::GET_POLICY, Method::GET, "/iam/policies/{id}", "p1").header("tenants", "tenant2");
    parity(&[TENANT1, MY_ROLE, POLICY], hidden, Code::NotFound).await;
}

#[tokio::test]
async fn delete_policy() {
    let delete = |id: &'static str| move |_: &str| one(rpc::DELETE_POLICY, Method::DELETE, "/iam/policies/{id}", id);
    assert_eq!(parity(&[TENANT1, MY_ROLE, POLICY], delete("p1"), Code::Ok).await, json!({}));
    parity(&[], delete("p1"), Code::NotFound).await;
    let answer = parity(&[], delete("administrator-access"), Code::PermissionDenied).await;
    assert_eq!(answer["reason"], "MANAGED");
}

#[tokio::test]
async fn update_policy() {
    let update = |id: &'static str, body: Value| {
        move |_: &str| one(rpc::UPDATE_POLICY, Method::PUT, "/iam/policies/{id}", id).body(body.clone())
    };
    let body = json!({"name": "Renamed", "members": [], "statements": [{"actions": ["iam:roles:get"], "effect": "DENY", "tenants": ["*"]}]});
    let answer = parity(&[TENANT1, MY_ROLE, POLICY], update("p1", body.clone()), Code::Ok).await;
    assert_eq!(
        answer,
        json!({"policy": {"name": "Renamed", "id": "p1", "type": "CUSTOM", "members": [], "tenants": [],
            "statements": [{"effect": "DENY", "actions": ["iam:roles:get"], "role": "", "resources": ["*"], "tenants": ["*"]}]}})
    );
    parity(&[], update("p1", body.clone()), Code::NotFound).await;
    parity(&[], update("editor-access", body), Code::PermissionDenied).await;
}

#[tokio::test]
async fn get_policy_version() {
    let answer =
        parity(&[], |_| Rest::new(rpc::GET_POLICY_VERSION, Method::GET, "/iam/policy_version"), Code::Ok).await;
    assert_eq!(answer, json!({"version": {"major": "V2", "minor": "V1"}}));
}

#[tokio::test]
async fn list_policy_members() {
    let list =
        |id: &'static str| move |_: &str| one(rpc::LIST_POLICY_MEMBERS, Method::GET, "/iam/policies/{id}/members", id);
    assert_eq!(parity(&[], list("administrator-access"), Code::Ok).await, json!({"members": ["team:local:admins"]}));
    parity(&[], list("p1"), Code::NotFound).await;
}

#[tokio::test]
async fn replace_policy_members() {
    let replace = |id: &'static str, members: Value| {
        move |_: &str| {
            one(rpc::REPLACE_POLICY_MEMBERS, Method::PUT, "/iam/policies/{id}/members", id)
                .body(json!({"members": members}))
        }
    };
    let members = json!(["team:local:ops", "user:ldap:bob"]);
    assert_eq!(
        parity(&[TENANT1, MY_ROLE, POLICY], replace("p1", members.clone()), Code::Ok).await,
        json!({"members": members})
    );
    assert_eq!(parity(&[TENANT1, MY_ROLE, POLICY], replace("p1", json!([])), Code::Ok).await, json!({"members": []}));
    // Managed policies' members can change, but the admins stay administrators.
    assert_eq!(parity(&[], replace("viewer-access", members.clone()), Code::Ok).await, json!({"members": members}));
    let answer = parity(&[], replace("administrator-access", json!(["user:local:eve"])), Code::PermissionDenied).await;
    assert_eq!(answer["reason"], "PROTECTED");
    parity(&[], replace("p1", json!([])), Code::NotFound).await;
}

#[tokio::test]
async fn remove_policy_members() {
    let remove = |id: &'static str, members: Value| {
        move |_: &str| {
            one(rpc::REMOVE_POLICY_MEMBERS, Method::POST, "/iam/policies/{id}/members:remove", id)
                .body(json!({"members": members}))
        }
    };
    // A member that is not there is no error.
    let answer =
        parity(&[TENANT1, MY_ROLE, POLICY], remove("p1", json!(["user:local:alice", "token:ci"])), Code::Ok).await;
    assert_eq!(answer, json!({"members": []}));
    let answer = parity(&[], remove("administrator-access", json!([crate::iam::ADMINS])), Code::PermissionDenied).await;
    assert_eq!(answer["reason"], "PROTECTED");
    parity(&[TENANT1, MY_ROLE, POLICY], remove("p1", json!([])), Code::InvalidArgument).await;
}

#[tokio::test]
async fn add_policy_members() {
    let add = |members: Value| {
        move |_: &str| {
            one(rpc::ADD_POLICY_MEMBERS, Method::POST, "/iam/policies/{id}/members:add", "p1")
                .body(json!({"members": members}))
        }
    };
    // Insertion order; a member already present stays where it is.
    let answer =
        parity(&[TENANT1, MY_ROLE, POLICY], add(json!(["team:oidc:ops", "user:local:alice", "*"])), Code::Ok).await;
    assert_eq!(answer, json!({"members": ["user:local:alice", "team:oidc:ops", "*"]}));
    let answer = parity(&[TENANT1, MY_ROLE, POLICY], add(json!(["alice"])), Code::InvalidArgument).await;
    assert!(answer["message"].as_str().unwrap().starts_with("`alice` is not a member expression"), "{answer}");
}

// ---- roles ----

fn role(id: &str, name: &str, actions: Value) -> Value {
    json!({"role": {"name": name, "id": id, "type": "CUSTOM", "actions": actions, "tenants": []}})
}

#[tokio::test]
async fn create_role() {
    let create = |id: &'static str| {
        move |_: &str| {
            Rest::new(rpc::CREATE_ROLE, Method::POST, "/iam/roles")
                .body(json!({"id": id, "name": "My role", "actions": ["iam:policies:get"]}))
        }
    };
    assert_eq!(parity(&[], create("myRole"), Code::Ok).await, role("myRole", "My role", json!(["iam:policies:get"])));
    parity(&[MY_ROLE], create("myRole"), Code::AlreadyExists).await;
    parity(&[], create("my role"), Code::InvalidArgument).await;
}

#[tokio::test]
async fn list_roles() {
    let list = |_: &str| Rest::new(rpc::LIST_ROLES, Method::GET, "/iam/roles");
    let answer = parity(&[MY_ROLE], list, Code::Ok).await;
    let ids: Vec<&str> = answer["roles"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 5);
    assert!(ids.contains(&"myRole") && ids.contains(&"tenant-owner"), "{ids:?}");
}

#[tokio::test]
async fn get_role() {
    let get = |id: &'static str| move |_: &str| one(rpc::GET_ROLE, Method::GET, "/iam/roles/{id}", id);
    assert_eq!(
        parity(&[MY_ROLE], get("myRole"), Code::Ok).await,
        role("myRole", "My role", json!(["iam:policies:get"]))
    );
    let answer = parity(&[], get("owner"), Code::Ok).await;
    assert_eq!(answer["role"]["actions"], json!(["*"]));
    assert_eq!(answer["role"]["type"], "MANAGED");
    parity(&[], get("myRole"), Code::NotFound).await;
}

#[tokio::test]
async fn delete_role() {
    let delete = |id: &'static str| move |_: &str| one(rpc::DELETE_ROLE, Method::DELETE, "/iam/roles/{id}", id);
    assert_eq!(parity(&[TENANT1, MY_ROLE, POLICY], delete("myRole"), Code::Ok).await, json!({}));
    parity(&[], delete("myRole"), Code::NotFound).await;
    parity(&[], delete("viewer"), Code::PermissionDenied).await;
}

#[tokio::test]
async fn update_role() {
    let update = |id: &'static str| {
        move |_: &str| {
            one(rpc::UPDATE_ROLE, Method::PUT, "/iam/roles/{id}", id)
                .body(json!({"name": "Renamed", "actions": ["iam:*:list", "accounts:*"]}))
        }
    };
    assert_eq!(
        parity(&[MY_ROLE], update("myRole"), Code::Ok).await,
        role("myRole", "Renamed", json!(["iam:*:list", "accounts:*"]))
    );
    parity(&[], update("myRole"), Code::NotFound).await;
    parity(&[], update("owner"), Code::PermissionDenied).await;
}

// ---- tenants ----

fn tenant(id: &str, name: &str) -> Value {
    json!({"tenant": {"name": name, "id": id, "type": "CUSTOM"}})
}

#[tokio::test]
async fn create_tenant() {
    let create = |skip: bool| {
        move |_: &str| {
            Rest::new(rpc::CREATE_TENANT, Method::POST, "/iam/tenants")
                .body(json!({"id": "tenant1", "name": "Tenant one", "skipPolicies": skip}))
        }
    };
    assert_eq!(parity(&[], create(false), Code::Ok).await, tenant("tenant1", "Tenant one"));
    assert_eq!(parity(&[], create(true), Code::Ok).await, tenant("tenant1", "Tenant one"));
    parity(&[TENANT1], create(true), Code::AlreadyExists).await;
}

#[tokio::test]
async fn update_tenant() {
    let update = |_: &str| {
        one(rpc::UPDATE_TENANT, Method::PUT, "/iam/tenants/{id}", "tenant1").body(json!({"name": "Tenant uno"}))
    };
    assert_eq!(parity(&[TENANT1], update, Code::Ok).await, tenant("tenant1", "Tenant uno"));
    parity(&[], update, Code::NotFound).await;
}

#[tokio::test]
async fn get_tenant() {
    let get = |_: &str| one(rpc::GET_TENANT, Method::GET, "/iam/tenants/{id}", "tenant1");
    assert_eq!(parity(&[TENANT1], get, Code::Ok).await, tenant("tenant1", "Tenant one"));
    parity(&[], get, Code::NotFound).await;
}

#[tokio::test]
async fn list_tenants() {
    let list = |tenants: &'static str| {
        move |_: &str| Rest::new(rpc::LIST_TENANTS, Method::GET, "/iam/tenants").header("tenants", tenants)
    };
    let answer = parity(&[TENANT1, TENANT2], list(""), Code::Ok).await;
    assert_eq!(
        answer,
        json!({"tenants": [tenant("tenant1", "Tenant one")["tenant"], tenant("tenant2", "Tenant two")["tenant"]]})
    );
    let answer = parity(&[TENANT1, TENANT2], list("tenant2"), Code::Ok).await;
    assert_eq!(answer, json!({"tenants": [tenant("tenant2", "Tenant two")["tenant"]]}));
}

#[tokio::test]
async fn delete_tenant() {
    let delete = |_: &str| one(rpc::DELETE_TENANT, Method::DELETE, "/iam/tenants/{id}", "tenant1");
    assert_eq!(parity(&[TENANT1, MY_ROLE, POLICY], delete, Code::Ok).await, json!({}));
    parity(&[], delete, Code::NotFound).await;
}
