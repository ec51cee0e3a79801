//! Every method of the accounts surface (`iamd.accounts.v1`: PolicyService, RoleService,
//! AssignmentService) over gRPC, gRPC-web (binary and text) and JSON, as `parity.rs` does
//! for the other surfaces: the same request from the same state gives the same answer or
//! the same error on each protocol. The objects' ids are the server's, so each state is
//! made on every fresh server by `parity_with`'s setup and the request built from the ids
//! it answers; in the answers they read `<id0>`, `<id1>`, … in the order of `ids` below.

use http::{Method, StatusCode};
use iamd::app::accounts::managed::managed_policy_id;
use serde_json::{Value, json};
use tonic::Code;

use crate::parity::{UNKNOWN, parity_with};
use crate::support::{Rest, Rpc, TestServer, rpc};

const POLICIES: &str = "/organizations/{organization_id}/iam-policies";
const POLICY: &str = "/organizations/{organization_id}/iam-policies/{policy_id}";
const ROLES: &str = "/organizations/{organization_id}/iam-roles";
const ROLE: &str = "/organizations/{organization_id}/iam-roles/{role_id}";
const ASSIGNMENTS: &str = "/organizations/{organization_id}/iam-assignments";
const ASSIGNMENT: &str = "/organizations/{organization_id}/iam-assignments/{assignment_id}";

/// Where each object of a [`State`] stands in the ids its setup answers.
mod ids {
    /// The managed policies every organization has.
    pub const FULL: usize = 0;
    pub const READ_ONLY: usize = 1;
    /// The custom policy `p`.
    pub const CUSTOM: usize = 2;
    /// The role `r` of the custom policy.
    pub const ROLE: usize = 3;
    /// `user:local:alice` holds the role.
    pub const ALICE: usize = 4;
    /// `user:local:bob` holds the custom policy itself.
    pub const BOB: usize = 5;
    /// What a setup adds after a state's objects.
    pub const EXTRA: usize = 6;
    /// Globex's policy (`globex_policy`) after `State::Managed`.
    pub const GLOBEX: usize = 2;
    /// No object: a request names `UNKNOWN` in its place.
    pub const NONE: usize = usize::MAX;
}

/// The states the tests start from: each the one before and more.
#[derive(Clone, Copy, PartialEq, PartialOrd)]
enum State {
    /// A new organization: only its managed policies.
    Managed,
    /// And the custom policy `p`.
    Policy,
    /// And the role `r` of `p`.
    Role,
    /// And alice's assignment of `r` and bob's of `p`.
    Assigned,
}

/// How an answer names the object at `ids[i]`.
fn id(i: usize) -> String {
    format!("<id{i}>")
}

/// The setup of `state`: its objects, made over JSON, by their ids.
fn at(state: State) -> impl AsyncFn(&TestServer, &str) -> Vec<String> {
    async move |server: &TestServer, org: &str| build(server, org, state).await
}

/// `first`, and then `more` on the same server, whose ids follow `first`'s.
fn and<A, F>(first: A, more: F) -> impl AsyncFn(&TestServer, &str) -> Vec<String>
where
    A: AsyncFn(&TestServer, &str) -> Vec<String>,
    F: AsyncFn(&TestServer, &str, &[String]) -> Vec<String>,
{
    async move |server: &TestServer, org: &str| {
        let mut ids = first(server, org).await;
        ids.extend(more(server, org, &ids).await);
        ids
    }
}

async fn build(server: &TestServer, org: &str, state: State) -> Vec<String> {
    let mut ids = vec![managed_policy_id(org, "Full access"), managed_policy_id(org, "Read-only access")];
    if state >= State::Policy {
        ids.push(made(server, org, "iam-policies", policy_body("p")).await);
    }
    if state >= State::Role {
        ids.push(made(server, org, "iam-roles", role_body("r", &[&ids[ids::CUSTOM]])).await);
    }
    if state >= State::Assigned {
        let alice = json!({"principal": "user:local:alice", "roleIds": [ids[ids::ROLE]]});
        ids.push(made(server, org, "iam-assignments", alice).await);
        let bob = json!({"principal": "user:local:bob", "policyIds": [ids[ids::CUSTOM]]});
        ids.push(made(server, org, "iam-assignments", bob).await);
    }
    ids
}

/// `setup`, with the organization's id last, where the list helpers read it.
fn with_org<A>(setup: A) -> impl AsyncFn(&TestServer, &str) -> Vec<String>
where
    A: AsyncFn(&TestServer, &str) -> Vec<String>,
{
    async move |server: &TestServer, org: &str| {
        let mut ids = setup(server, org).await;
        ids.push(org.to_owned());
        ids
    }
}

/// Creates an object over JSON in `collection` of `org` and answers its id.
async fn made(server: &TestServer, org: &str, collection: &str, body: Value) -> String {
    let reply = server.json(Method::POST, &format!("/organizations/{org}/{collection}"), Some(body)).await;
    assert_eq!(reply.status, StatusCode::CREATED, "setup POST {collection}: {}", reply.body);
    reply.body["id"].as_str().unwrap().to_owned()
}

/// An organization `globex` with a policy `p` of its own, whose id follows the state's.
async fn globex_policy(server: &TestServer, _: &str, _: &[String]) -> Vec<String> {
    let globex = server.create_org("globex").await;
    vec![made(server, &globex, "iam-policies", policy_body("p")).await]
}

fn policy_body(name: &str) -> Value {
    json!({"name": name, "description": "d", "definitions": definitions(), "metadata": metadata()})
}

fn role_body(name: &str, policy_ids: &[&str]) -> Value {
    json!({"name": name, "description": "", "policyIds": policy_ids, "metadata": metadata()})
}

fn definitions() -> Value {
    json!([{"effect": "allow", "resources": ["/workspaces/*/channels"], "actions": ["any"],
        "conditionsAll": [{"any": {"stringEquals": {"request.channel": "sms"}}}]}])
}

fn metadata() -> Value {
    json!({"clouds": ["platform"], "apps": ["inbox"], "groups": ["support"]})
}

/// `value` with `fields` set.
fn with(mut value: Value, fields: Value) -> Value {
    for (field, v) in fields.as_object().unwrap() {
        value[field] = v.clone();
    }
    value
}

/// The custom policy `p` as the setup made it, named by `id`.
fn custom(id: &str) -> Value {
    json!({"id": id, "name": "p", "description": "d", "rolesDependencyCount": 0, "usersDependencyCount": 0,
        "createdAt": "<time>", "updatedAt": "<time>", "scope": "organization", "type": "organization",
        "metadata": metadata(), "definitions": definitions()})
}

/// A managed policy: `ids::FULL` or `ids::READ_ONLY`.
fn managed(i: usize) -> Value {
    let (name, description, action) = match i {
        ids::FULL => ("Full access", "Every action on every resource of the organization.", "any"),
        _ => ("Read-only access", "Viewing every resource of the organization.", "view"),
    };
    json!({"id": id(i), "name": name, "description": description, "rolesDependencyCount": 0,
        "usersDependencyCount": 0, "createdAt": "<time>", "updatedAt": "<time>", "scope": "organization",
        "type": "managed", "metadata": {"clouds": [], "apps": [], "groups": []},
        "definitions": [{"effect": "allow", "resources": ["/**"], "actions": [action], "conditionsAll": []}]})
}

fn role(id: &str, name: &str, policy_ids: Value, users: u32) -> Value {
    json!({"id": id, "name": name, "description": "", "policyIds": policy_ids, "type": "organization",
        "scope": "organization", "metadata": metadata(), "usersDependencyCount": users,
        "createdAt": "<time>", "updatedAt": "<time>"})
}

fn assignment(id: &str, principal: &str, role_ids: Value, policy_ids: Value) -> Value {
    json!({"id": id, "principal": principal, "roleIds": role_ids, "policyIds": policy_ids, "createdAt": "<time>"})
}

/// A call on a collection of the organization.
fn all<Req, Resp>(rpc: Rpc<Req, Resp>, method: Method, template: &'static str, org: &str) -> Rest<Req, Resp> {
    Rest::new(rpc, method, template).bind("organization_id", org)
}

/// A call on one object of the organization; `field` is the template's id variable.
fn one<Req, Resp>(
    rpc: Rpc<Req, Resp>,
    method: Method,
    (template, field): (&'static str, &'static str),
    org: &str,
    id: &str,
) -> Rest<Req, Resp> {
    all(rpc, method, template, org).bind(field, id)
}

const ONE_POLICY: (&str, &str) = (POLICY, "policy_id");
const ONE_ROLE: (&str, &str) = (ROLE, "role_id");
const ONE_ASSIGNMENT: (&str, &str) = (ASSIGNMENT, "assignment_id");

/// The error of an answer: its message and `ErrorInfo` reason.
fn error(answer: &Value) -> (&str, &str) {
    (answer["message"].as_str().unwrap(), answer["reason"].as_str().unwrap())
}

const NO_ORGANIZATION: (&str, &str) = ("organization `<uuid>` does not exist", "ORGANIZATION_NOT_FOUND");

// ---- lists: the same paging on all three ----

/// A list from `setup`'s state, in the organization whose id its ids end with: the whole of
/// it is `results` (at least two); a page of one, newest first, and the page after the first
/// (its token read over JSON on each server); bad limits and tokens; an unknown organization.
async fn list_pages<Req, Resp, S>(
    rpc: Rpc<Req, Resp>,
    template: &'static str,
    setup: impl Fn() -> S,
    results: Vec<Value>,
) where
    Req: prost::Message + serde::de::DeserializeOwned + Send + Sync + 'static,
    Resp: prost::Message + Default + serde::Serialize + Send + Sync + 'static,
    S: AsyncFn(&TestServer, &str) -> Vec<String>,
{
    let list = |query: Vec<(&'static str, Value)>| {
        move |_: &str, ids: &[String]| {
            let rest = all(rpc, Method::GET, template, ids.last().unwrap());
            query.iter().fold(rest, |rest, (field, value)| rest.query(field, value.clone()))
        }
    };
    assert_eq!(parity_with(setup(), list(vec![]), Code::Ok).await, json!({"results": results}));

    let newest = parity_with(setup(), list(vec![("limit", json!(1)), ("reverse", json!(true))]), Code::Ok).await;
    assert_eq!(newest, json!({"results": [results.last().unwrap()], "nextPageToken": "<token>"}));

    // The page after the first, from the token the first answered; the last has no token.
    let first_page = async |server: &TestServer, _: &str, ids: &[String]| {
        let path = format!("{}?limit=1", template.replace("{organization_id}", ids.last().unwrap()));
        let reply = server.json(Method::GET, &path, None).await;
        vec![reply.body["nextPageToken"].as_str().unwrap().to_owned()]
    };
    let second = |_: &str, ids: &[String]| {
        let [.., org, token] = ids else { panic!("no organization and token in {ids:?}") };
        all(rpc, Method::GET, template, org).query("limit", json!(1)).query("pageToken", json!(token))
    };
    let mut page = json!({"results": [results[1]]});
    if results.len() > 2 {
        page["nextPageToken"] = json!("<token>");
    }
    assert_eq!(parity_with(and(setup(), first_page), second, Code::Ok).await, page);

    for (field, value) in [("limit", json!(0)), ("limit", json!(101)), ("pageToken", json!("forged"))] {
        let answer = parity_with(setup(), list(vec![(field, value)]), Code::InvalidArgument).await;
        assert_eq!(error(&answer).1, "INVALID_ARGUMENT", "{field}: {answer}");
    }
    let unknown = |_: &str, _: &[String]| all(rpc, Method::GET, template, UNKNOWN);
    assert_eq!(error(&parity_with(setup(), unknown, Code::NotFound).await), NO_ORGANIZATION);
}

// ---- policies ----

#[tokio::test]
async fn list_policies() {
    let results = vec![managed(ids::FULL), managed(ids::READ_ONLY), custom(&id(ids::CUSTOM))];
    list_pages(rpc::LIST_ORG_POLICIES, POLICIES, || with_org(at(State::Policy)), results).await;
    // The counts of each policy: the role lists `p`; alice holds it through the role, bob directly.
    let list = |_: &str, ids: &[String]| all(rpc::LIST_ORG_POLICIES, Method::GET, POLICIES, ids.last().unwrap());
    let answer = parity_with(with_org(at(State::Assigned)), list, Code::Ok).await;
    let counted = with(custom(&id(ids::CUSTOM)), json!({"rolesDependencyCount": 1, "usersDependencyCount": 2}));
    assert_eq!(answer, json!({"results": [managed(ids::FULL), managed(ids::READ_ONLY), counted]}));
}

#[tokio::test]
async fn create_policy() {
    let create = |body: Value| {
        move |org: &str, _: &[String]| {
            all(rpc::CREATE_ORG_POLICY, Method::POST, POLICIES, org)
                .body(body.clone())
                .success(StatusCode::CREATED)
                .select("policy")
        }
    };
    assert_eq!(parity_with(at(State::Managed), create(policy_body("p")), Code::Ok).await, custom("<uuid>"));
    // Names are trimmed, and unique per organization, managed ones included.
    let answer = parity_with(at(State::Managed), create(policy_body("  q ")), Code::Ok).await;
    assert_eq!(answer, with(custom("<uuid>"), json!({"name": "q"})));
    let answer = parity_with(at(State::Policy), create(policy_body("p")), Code::AlreadyExists).await;
    assert_eq!(error(&answer), ("an org policy named `p` already exists", "POLICY_NAME_TAKEN"));
    let answer = parity_with(at(State::Managed), create(policy_body("Full access")), Code::AlreadyExists).await;
    assert_eq!(error(&answer).1, "POLICY_NAME_TAKEN");
    // The same name in another organization is another policy.
    parity_with(and(at(State::Managed), globex_policy), create(policy_body("p")), Code::Ok).await;

    let bad =
        with(policy_body("p"), json!({"definitions": [{"effect": "ALLOW", "resources": ["/"], "actions": ["any"]}]}));
    let answer = parity_with(at(State::Managed), create(bad), Code::InvalidArgument).await;
    assert_eq!(error(&answer), ("the effect must be `allow` or `deny`, not `ALLOW`", "INVALID_ARGUMENT"));
    let answer = parity_with(at(State::Managed), create(policy_body(" ")), Code::InvalidArgument).await;
    assert_eq!(error(&answer), ("the policy name is required", "INVALID_ARGUMENT"));
    let answer = parity_with(
        at(State::Managed),
        create(with(policy_body("p"), json!({"definitions": []}))),
        Code::InvalidArgument,
    )
    .await;
    assert_eq!(error(&answer), ("a policy needs at least one definition", "INVALID_ARGUMENT"));

    let unknown = create(policy_body("p"));
    let answer = parity_with(at(State::Managed), move |_: &str, ids: &[String]| unknown(UNKNOWN, ids), Code::NotFound);
    assert_eq!(error(&answer.await), NO_ORGANIZATION);
}

#[tokio::test]
async fn get_policy() {
    let get = |i: usize| {
        move |org: &str, ids: &[String]| {
            one(rpc::GET_ORG_POLICY, Method::GET, ONE_POLICY, org, &ids[i]).select("policy")
        }
    };
    let answer = parity_with(at(State::Assigned), get(ids::CUSTOM), Code::Ok).await;
    assert_eq!(answer, with(custom(&id(ids::CUSTOM)), json!({"rolesDependencyCount": 1, "usersDependencyCount": 2})));
    assert_eq!(parity_with(at(State::Managed), get(ids::READ_ONLY), Code::Ok).await, managed(ids::READ_ONLY));

    // Another organization's policy is not found in this one.
    let answer = parity_with(and(at(State::Managed), globex_policy), get(ids::GLOBEX), Code::NotFound).await;
    assert_eq!(error(&answer), ("no policy with id `<id2>` found in this organization", "POLICY_NOT_FOUND"));
    let unknown = |org: &str, _: &[String]| one(rpc::GET_ORG_POLICY, Method::GET, ONE_POLICY, org, UNKNOWN);
    let answer = parity_with(at(State::Managed), unknown, Code::NotFound).await;
    assert_eq!(error(&answer), ("no policy with id `<uuid>` found in this organization", "POLICY_NOT_FOUND"));
    let no_org = |_: &str, ids: &[String]| one(rpc::GET_ORG_POLICY, Method::GET, ONE_POLICY, UNKNOWN, &ids[ids::FULL]);
    assert_eq!(error(&parity_with(at(State::Managed), no_org, Code::NotFound).await), NO_ORGANIZATION);
}

/// A PATCH of the object at `ids[i]`, with `if_match` as the version it expects.
fn patch<Req, Resp>(
    rpc: Rpc<Req, Resp>,
    object: (&'static str, &'static str),
    select: &'static str,
    i: usize,
    body: Value,
    if_match: Option<&'static str>,
) -> impl Fn(&str, &[String]) -> Rest<Req, Resp> {
    move |org: &str, ids: &[String]| {
        let rest = one(rpc, Method::PATCH, object, org, &ids[i]).body(body.clone()).select(select);
        if_match.into_iter().fold(rest, |rest, version| rest.header("if-match", version))
    }
}

#[tokio::test]
async fn update_policy() {
    let update = |i: usize, body: Value| patch(rpc::UPDATE_ORG_POLICY, ONE_POLICY, "policy", i, body, None);
    let deny = json!([{"effect": "deny", "resources": ["/**"], "actions": ["delete", "update"], "conditionsAll": []}]);
    // Only the fields the body holds change.
    let answer =
        parity_with(at(State::Policy), update(ids::CUSTOM, json!({"name": "q", "definitions": deny})), Code::Ok).await;
    assert_eq!(answer, with(custom(&id(ids::CUSTOM)), json!({"name": "q", "definitions": deny})));
    // An empty value is a change only when the mask names it: on JSON the body's keys make the
    // mask, but a gRPC message cannot tell `""` from absent, so the body names the mask itself.
    let clear = json!({"description": "", "updateMask": "description"});
    let answer = parity_with(at(State::Policy), update(ids::CUSTOM, clear), Code::Ok).await;
    assert_eq!(answer, with(custom(&id(ids::CUSTOM)), json!({"description": ""})));
    let empty = json!({"definitions": [], "updateMask": "definitions"});
    let answer = parity_with(at(State::Policy), update(ids::CUSTOM, empty), Code::InvalidArgument).await;
    assert_eq!(error(&answer), ("a policy needs at least one definition", "INVALID_ARGUMENT"));
    let answer =
        parity_with(at(State::Policy), update(ids::CUSTOM, json!({"updateMask": "type"})), Code::InvalidArgument).await;
    assert_eq!(
        error(&answer),
        ("`type` cannot be changed; the fields are name, description, definitions", "INVALID_ARGUMENT")
    );

    // Optimistic concurrency: the policy is at version 1 once created.
    let rename =
        |version| patch(rpc::UPDATE_ORG_POLICY, ONE_POLICY, "policy", ids::CUSTOM, json!({"name": "q"}), version);
    let answer = parity_with(at(State::Policy), rename(Some("\"1\"")), Code::Ok).await;
    assert_eq!(answer, with(custom(&id(ids::CUSTOM)), json!({"name": "q"})));
    let answer = parity_with(at(State::Policy), rename(Some("\"7\"")), Code::Aborted).await;
    assert_eq!(
        error(&answer),
        ("the policy is at version \"1\", not \"7\"; read it again and retry", "VERSION_MISMATCH")
    );

    let answer =
        parity_with(at(State::Policy), update(ids::CUSTOM, json!({"name": "Full access"})), Code::AlreadyExists);
    assert_eq!(error(&answer.await), ("an org policy named `Full access` already exists", "POLICY_NAME_TAKEN"));
    // A managed policy is refused whatever the body holds.
    let answer = parity_with(at(State::Managed), update(ids::FULL, json!({"definitions": []})), Code::PermissionDenied);
    assert_eq!(
        error(&answer.await),
        ("the policy `<id0>` is managed by iamd: it cannot be changed or deleted", "MANAGED")
    );
    let answer =
        parity_with(and(at(State::Managed), globex_policy), update(ids::GLOBEX, json!({"name": "q"})), Code::NotFound)
            .await;
    assert_eq!(error(&answer).1, "POLICY_NOT_FOUND");
    let no_org = |_: &str, ids: &[String]| {
        one(rpc::UPDATE_ORG_POLICY, Method::PATCH, ONE_POLICY, UNKNOWN, &ids[ids::FULL]).body(json!({"name": "q"}))
    };
    assert_eq!(error(&parity_with(at(State::Managed), no_org, Code::NotFound).await), NO_ORGANIZATION);
}

/// A DELETE of the object at `ids[i]` (in `org`, or `UNKNOWN` when not), with `if_match`
/// as the version it expects.
fn delete<Req, Resp>(
    rpc: Rpc<Req, Resp>,
    object: (&'static str, &'static str),
    i: usize,
    in_org: bool,
    if_match: Option<&'static str>,
) -> impl Fn(&str, &[String]) -> Rest<Req, Resp> {
    move |org: &str, ids: &[String]| {
        let org = if in_org { org } else { UNKNOWN };
        let rest = one(rpc, Method::DELETE, object, org, &ids[i]).success(StatusCode::NO_CONTENT);
        if_match.into_iter().fold(rest, |rest, version| rest.header("if-match", version))
    }
}

#[tokio::test]
async fn delete_policy() {
    let delete = |i: usize, in_org: bool, version| delete(rpc::DELETE_ORG_POLICY, ONE_POLICY, i, in_org, version);
    assert_eq!(parity_with(at(State::Policy), delete(ids::CUSTOM, true, None), Code::Ok).await, json!({}));
    assert_eq!(parity_with(at(State::Policy), delete(ids::CUSTOM, true, Some("\"1\"")), Code::Ok).await, json!({}));
    let answer = parity_with(at(State::Policy), delete(ids::CUSTOM, true, Some("W/\"2\"")), Code::Aborted).await;
    assert_eq!(error(&answer).1, "VERSION_MISMATCH");
    // A policy a role lists stays.
    let answer = parity_with(at(State::Role), delete(ids::CUSTOM, true, None), Code::FailedPrecondition).await;
    assert_eq!(error(&answer), ("the org policy `<id2>` is still in use by org role `<id3>`", "STILL_REFERENCED"));
    // So does one an assignment names.
    let answer = parity_with(at(State::Assigned), delete(ids::CUSTOM, true, None), Code::FailedPrecondition).await;
    assert_eq!(error(&answer).1, "STILL_REFERENCED");
    let answer = parity_with(at(State::Managed), delete(ids::READ_ONLY, true, None), Code::PermissionDenied).await;
    assert_eq!(error(&answer), ("the policy `<id1>` is managed by iamd: it cannot be changed or deleted", "MANAGED"));
    let answer =
        parity_with(and(at(State::Managed), globex_policy), delete(ids::GLOBEX, true, None), Code::NotFound).await;
    assert_eq!(error(&answer), ("no policy with id `<id2>` found in this organization", "POLICY_NOT_FOUND"));
    let answer = parity_with(at(State::Policy), delete(ids::CUSTOM, false, None), Code::NotFound).await;
    assert_eq!(error(&answer), NO_ORGANIZATION);
}

// ---- roles ----

#[tokio::test]
async fn list_roles() {
    // Alice holds `r`; `s` is of the managed policies and held by nobody.
    let s = async |server: &TestServer, org: &str, ids: &[String]| {
        vec![made(server, org, "iam-roles", role_body("s", &[&ids[ids::FULL], &ids[ids::READ_ONLY]])).await]
    };
    let results = vec![
        role(&id(ids::ROLE), "r", json!([id(ids::CUSTOM)]), 1),
        role(&id(ids::EXTRA), "s", json!([id(ids::FULL), id(ids::READ_ONLY)]), 0),
    ];
    list_pages(rpc::LIST_ORG_ROLES, ROLES, || with_org(and(at(State::Assigned), s)), results).await;
}

#[tokio::test]
async fn create_role() {
    let create = |name: &'static str, policies: Vec<usize>| {
        move |org: &str, ids: &[String]| {
            let policy_ids: Vec<&str> = policies.iter().map(|&i| ids.get(i).map_or(UNKNOWN, String::as_str)).collect();
            all(rpc::CREATE_ORG_ROLE, Method::POST, ROLES, org)
                .body(role_body(name, &policy_ids))
                .success(StatusCode::CREATED)
                .select("role")
        }
    };
    let answer = parity_with(at(State::Policy), create("r", vec![ids::CUSTOM, ids::FULL]), Code::Ok).await;
    assert_eq!(answer, role("<uuid>", "r", json!([id(ids::CUSTOM), id(ids::FULL)]), 0));
    let answer = parity_with(at(State::Role), create("r", vec![ids::FULL]), Code::AlreadyExists).await;
    assert_eq!(error(&answer), ("an org role named `r` already exists", "ROLE_NAME_TAKEN"));

    let answer = parity_with(at(State::Managed), create("r", vec![]), Code::InvalidArgument).await;
    assert_eq!(error(&answer), ("a role needs at least one policy", "INVALID_ARGUMENT"));
    let answer = parity_with(at(State::Managed), create("r", vec![ids::FULL, ids::FULL]), Code::InvalidArgument).await;
    assert_eq!(error(&answer), ("`<id0>` is listed more than once", "INVALID_ARGUMENT"));
    // A policy that is not there, or is another organization's.
    let answer = parity_with(at(State::Managed), create("r", vec![ids::FULL, ids::NONE]), Code::NotFound).await;
    assert_eq!(
        error(&answer),
        ("policyIds[1]: no policy with id `<uuid>` in organization `<uuid>`", "POLICY_NOT_FOUND")
    );
    let answer =
        parity_with(and(at(State::Managed), globex_policy), create("r", vec![ids::GLOBEX]), Code::NotFound).await;
    assert_eq!(
        error(&answer),
        ("policyIds[0]: no policy with id `<id2>` in organization `<uuid>`", "POLICY_NOT_FOUND")
    );
    let unknown = create("r", vec![ids::FULL]);
    let answer = parity_with(at(State::Managed), move |_: &str, ids: &[String]| unknown(UNKNOWN, ids), Code::NotFound);
    assert_eq!(error(&answer.await), NO_ORGANIZATION);
}

#[tokio::test]
async fn get_role() {
    let get =
        |org: &str, ids: &[String]| one(rpc::GET_ORG_ROLE, Method::GET, ONE_ROLE, org, &ids[ids::ROLE]).select("role");
    let answer = parity_with(at(State::Assigned), get, Code::Ok).await;
    assert_eq!(answer, role(&id(ids::ROLE), "r", json!([id(ids::CUSTOM)]), 1));
    let answer = parity_with(at(State::Role), get, Code::Ok).await;
    assert_eq!(answer, role(&id(ids::ROLE), "r", json!([id(ids::CUSTOM)]), 0));
    // A policy's id is no role's.
    let policy = |org: &str, ids: &[String]| one(rpc::GET_ORG_ROLE, Method::GET, ONE_ROLE, org, &ids[ids::CUSTOM]);
    let answer = parity_with(at(State::Role), policy, Code::NotFound).await;
    assert_eq!(error(&answer), ("no role with id `<id2>` found in this organization", "ROLE_NOT_FOUND"));
    let no_org = |_: &str, ids: &[String]| get(UNKNOWN, ids);
    assert_eq!(error(&parity_with(at(State::Role), no_org, Code::NotFound).await), NO_ORGANIZATION);
}

#[tokio::test]
async fn update_role() {
    let update = |body: Value, version| patch(rpc::UPDATE_ORG_ROLE, ONE_ROLE, "role", ids::ROLE, body, version);
    let body = |ids: &[String]| json!({"name": "r2", "policyIds": [ids[ids::READ_ONLY], ids[ids::CUSTOM]]});
    // The request's policy ids come from the setup: build the body from them.
    let change = |version: Option<&'static str>| move |org: &str, ids: &[String]| update(body(ids), version)(org, ids);
    let renamed = role(&id(ids::ROLE), "r2", json!([id(ids::READ_ONLY), id(ids::CUSTOM)]), 1);
    assert_eq!(parity_with(at(State::Assigned), change(None), Code::Ok).await, renamed);
    assert_eq!(parity_with(at(State::Assigned), change(Some("\"1\"")), Code::Ok).await, renamed);
    let answer = parity_with(at(State::Assigned), change(Some("\"2\"")), Code::Aborted).await;
    assert_eq!(
        error(&answer),
        ("the role is at version \"1\", not \"2\"; read it again and retry", "VERSION_MISMATCH")
    );
    // Only the name: the policies stay.
    let answer = parity_with(at(State::Role), update(json!({"name": "r3"}), None), Code::Ok).await;
    assert_eq!(answer, role(&id(ids::ROLE), "r3", json!([id(ids::CUSTOM)]), 0));

    let answer = parity_with(at(State::Role), update(json!({"policyIds": [UNKNOWN]}), None), Code::NotFound).await;
    assert_eq!(
        error(&answer),
        ("policyIds[0]: no policy with id `<uuid>` in organization `<uuid>`", "POLICY_NOT_FOUND")
    );
    let empty = json!({"policyIds": [], "updateMask": "policyIds"});
    let answer = parity_with(at(State::Role), update(empty, None), Code::InvalidArgument).await;
    assert_eq!(error(&answer), ("a role needs at least one policy", "INVALID_ARGUMENT"));
    let another = async |server: &TestServer, org: &str, ids: &[String]| {
        vec![made(server, org, "iam-roles", role_body("s", &[&ids[ids::FULL]])).await]
    };
    let answer =
        parity_with(and(at(State::Role), another), update(json!({"name": "s"}), None), Code::AlreadyExists).await;
    assert_eq!(error(&answer), ("an org role named `s` already exists", "ROLE_NAME_TAKEN"));
    let missing = |org: &str, _: &[String]| {
        one(rpc::UPDATE_ORG_ROLE, Method::PATCH, ONE_ROLE, org, UNKNOWN).body(json!({"name": "s"}))
    };
    let answer = parity_with(at(State::Role), missing, Code::NotFound).await;
    assert_eq!(error(&answer), ("no role with id `<uuid>` found in this organization", "ROLE_NOT_FOUND"));
}

#[tokio::test]
async fn delete_role() {
    let delete = |in_org: bool, version| delete(rpc::DELETE_ORG_ROLE, ONE_ROLE, ids::ROLE, in_org, version);
    assert_eq!(parity_with(at(State::Role), delete(true, None), Code::Ok).await, json!({}));
    let answer = parity_with(at(State::Role), delete(true, Some("\"3\"")), Code::Aborted).await;
    assert_eq!(error(&answer).1, "VERSION_MISMATCH");
    // A role alice holds stays.
    let answer = parity_with(at(State::Assigned), delete(true, None), Code::FailedPrecondition).await;
    assert_eq!(error(&answer), ("the org role `<id3>` is still in use by assignment `<id4>`", "STILL_REFERENCED"));
    // Once the role is gone, it is not found.
    let gone = async |server: &TestServer, org: &str, ids: &[String]| {
        let reply =
            server.json(Method::DELETE, &format!("/organizations/{org}/iam-roles/{}", ids[ids::ROLE]), None).await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.body);
        Vec::new()
    };
    let answer = parity_with(and(at(State::Role), gone), delete(true, None), Code::NotFound).await;
    assert_eq!(error(&answer), ("no role with id `<id3>` found in this organization", "ROLE_NOT_FOUND"));
    assert_eq!(error(&parity_with(at(State::Role), delete(false, None), Code::NotFound).await), NO_ORGANIZATION);
}

// ---- assignments ----

#[tokio::test]
async fn list_assignments() {
    let results = vec![
        assignment(&id(ids::ALICE), "user:local:alice", json!([id(ids::ROLE)]), json!([])),
        assignment(&id(ids::BOB), "user:local:bob", json!([]), json!([id(ids::CUSTOM)])),
    ];
    list_pages(rpc::LIST_ASSIGNMENTS, ASSIGNMENTS, || with_org(at(State::Assigned)), results).await;
}

#[tokio::test]
async fn create_assignment() {
    let create = |principal: &'static str, roles: Vec<usize>, policies: Vec<usize>| {
        move |org: &str, ids: &[String]| {
            let named = |list: &[usize]| -> Vec<String> {
                list.iter().map(|&i| ids.get(i).cloned().unwrap_or_else(|| UNKNOWN.to_owned())).collect()
            };
            all(rpc::CREATE_ASSIGNMENT, Method::POST, ASSIGNMENTS, org)
                .body(json!({"principal": principal, "roleIds": named(&roles), "policyIds": named(&policies)}))
                .success(StatusCode::CREATED)
                .select("assignment")
        }
    };
    let answer =
        parity_with(at(State::Role), create("team:oidc:ops", vec![ids::ROLE], vec![ids::READ_ONLY]), Code::Ok).await;
    assert_eq!(answer, assignment("<uuid>", "team:oidc:ops", json!([id(ids::ROLE)]), json!([id(ids::READ_ONLY)])));
    // The counts follow.
    let then = async |server: &TestServer, org: &str, ids: &[String]| {
        let body = json!({"principal": "user:local:carol", "policyIds": [ids[ids::FULL]]});
        made(server, org, "iam-assignments", body).await;
        Vec::new()
    };
    let get = |org: &str, ids: &[String]| {
        one(rpc::GET_ORG_POLICY, Method::GET, ONE_POLICY, org, &ids[ids::FULL]).select("policy")
    };
    let answer = parity_with(and(at(State::Managed), then), get, Code::Ok).await;
    assert_eq!(answer, with(managed(ids::FULL), json!({"usersDependencyCount": 1})));

    // A role that is not there, or a policy's id as a role's.
    let answer =
        parity_with(at(State::Role), create("user:local:alice", vec![ids::NONE], vec![]), Code::NotFound).await;
    assert_eq!(error(&answer), ("roleIds[0]: no role with id `<uuid>` in organization `<uuid>`", "ROLE_NOT_FOUND"));
    let answer =
        parity_with(at(State::Role), create("user:local:alice", vec![ids::ROLE, ids::CUSTOM], vec![]), Code::NotFound)
            .await;
    assert_eq!(error(&answer), ("roleIds[1]: no role with id `<id2>` in organization `<uuid>`", "ROLE_NOT_FOUND"));
    let answer =
        parity_with(at(State::Role), create("user:local:alice", vec![], vec![ids::NONE]), Code::NotFound).await;
    assert_eq!(error(&answer).1, "POLICY_NOT_FOUND");

    let answer = parity_with(at(State::Role), create("user:local:alice", vec![], vec![]), Code::InvalidArgument).await;
    assert_eq!(error(&answer), ("an assignment needs at least one of `roleIds` and `policyIds`", "INVALID_ARGUMENT"));
    let answer = parity_with(at(State::Role), create("alice", vec![ids::ROLE], vec![]), Code::InvalidArgument).await;
    assert!(error(&answer).0.starts_with("`alice` is not a member expression"), "{answer}");
    let answer = parity_with(at(State::Role), create("", vec![ids::ROLE], vec![]), Code::InvalidArgument).await;
    assert_eq!(error(&answer), ("the principal is required, such as `user:local:alice`", "INVALID_ARGUMENT"));
    let unknown = create("user:local:alice", vec![ids::FULL], vec![]);
    let answer = parity_with(at(State::Managed), move |_: &str, ids: &[String]| unknown(UNKNOWN, ids), Code::NotFound);
    assert_eq!(error(&answer.await), NO_ORGANIZATION);
}

#[tokio::test]
async fn get_assignment() {
    let get = |i: usize, in_org: bool| {
        move |org: &str, ids: &[String]| {
            let org = if in_org { org } else { UNKNOWN };
            one(rpc::GET_ASSIGNMENT, Method::GET, ONE_ASSIGNMENT, org, &ids[i]).select("assignment")
        }
    };
    let answer = parity_with(at(State::Assigned), get(ids::BOB, true), Code::Ok).await;
    assert_eq!(answer, assignment(&id(ids::BOB), "user:local:bob", json!([]), json!([id(ids::CUSTOM)])));
    let answer = parity_with(at(State::Assigned), get(ids::ROLE, true), Code::NotFound).await;
    assert_eq!(error(&answer), ("no assignment with id `<id3>` found in this organization", "ASSIGNMENT_NOT_FOUND"));
    assert_eq!(error(&parity_with(at(State::Assigned), get(ids::ALICE, false), Code::NotFound).await), NO_ORGANIZATION);
}

#[tokio::test]
async fn delete_assignment() {
    let delete = |i: usize, in_org: bool, version| delete(rpc::DELETE_ASSIGNMENT, ONE_ASSIGNMENT, i, in_org, version);
    assert_eq!(parity_with(at(State::Assigned), delete(ids::ALICE, true, None), Code::Ok).await, json!({}));
    assert_eq!(parity_with(at(State::Assigned), delete(ids::BOB, true, Some("\"1\"")), Code::Ok).await, json!({}));
    let answer = parity_with(at(State::Assigned), delete(ids::BOB, true, Some("\"5\"")), Code::Aborted).await;
    assert_eq!(
        error(&answer),
        ("the assignment is at version \"1\", not \"5\"; read it again and retry", "VERSION_MISMATCH")
    );
    let answer = parity_with(at(State::Assigned), delete(ids::ROLE, true, None), Code::NotFound).await;
    assert_eq!(error(&answer), ("no assignment with id `<id3>` found in this organization", "ASSIGNMENT_NOT_FOUND"));
    let answer = parity_with(at(State::Assigned), delete(ids::ALICE, false, None), Code::NotFound).await;
    assert_eq!(error(&answer), NO_ORGANIZATION);
    // An If-Match that is no version is bad input.
    let answer =
        parity_with(at(State::Assigned), delete(ids::ALICE, true, Some("latest")), Code::InvalidArgument).await;
    assert_eq!(
        error(&answer),
        ("`latest` is not a version; send the etag you read, such as \"3\"", "INVALID_ARGUMENT")
    );
}
