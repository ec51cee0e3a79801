//! The IAM v2 surface's rules over JSON, the protocol every case shares (parity over the
//! others is in `iam_parity.rs`): the seed 003 request, every validation rule of Part B §2.4
//! (each refused with its code and nothing changed), the cascades of a role's and a tenant's
//! delete, the `tenants` filter, the managed objects, and a role delete racing a policy write
//! that names the role.

use std::sync::Arc;

use http::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::Barrier;

use crate::support::{JsonReply, TestServer, gateway_status};

pub const ADMINS: &str = "team:local:admins";

const SEED_BODY: &str = include_str!("../fixtures/seeds/003_update_policy.request.json");

async fn ok(server: &TestServer, method: Method, path: &str, body: Value) -> Value {
    let reply = server.json(method.clone(), path, Some(body)).await;
    assert_eq!(reply.status, StatusCode::OK, "{method} {path}: {}", reply.body);
    reply.body
}

async fn tenant(server: &TestServer, id: &str, skip_policies: bool) {
    ok(server, Method::POST, "/iam/tenants", json!({"id": id, "name": id, "skipPolicies": skip_policies})).await;
}

async fn role(server: &TestServer, id: &str, tenants: Value) {
    ok(
        server,
        Method::POST,
        "/iam/roles",
        json!({"id": id, "name": id, "actions": ["iam:policies:get"], "tenants": tenants}),
    )
    .await;
}

async fn policy(server: &TestServer, id: &str, statements: Value, tenants: Value) {
    let body = json!({"id": id, "name": id, "statements": statements, "tenants": tenants});
    ok(server, Method::POST, "/iam/policies", body).await;
}

async fn get(server: &TestServer, path: &str) -> JsonReply {
    server.json(Method::GET, path, None).await
}

/// Everything the surface holds, to show that a refused request changed nothing.
async fn everything(server: &TestServer) -> Value {
    let mut all = serde_json::Map::new();
    for list in ["policies", "roles", "tenants"] {
        all.insert(list.into(), get(server, &format!("/iam/{list}")).await.body);
    }
    Value::Object(all)
}

fn ids(list: &Value) -> Vec<&str> {
    list.as_array().unwrap().iter().map(|o| o["id"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn the_seed_request_overwrites_a_policy_and_answers_it_whole() {
    let server = TestServer::start().await;
    for id in ["tenant1", "tenant2", "exampleTenant"] {
        tenant(&server, id, true).await;
    }
    role(&server, "myRole", json!([])).await;
    policy(&server, "seed", json!([{"actions": ["iam:roles:list"], "tenants": ["*"]}]), json!(["tenant1"])).await;
    let seed: Value = serde_json::from_str(SEED_BODY).unwrap();

    let reply = server.json(Method::PUT, "/iam/policies/seed", Some(seed.clone())).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let mut expected = seed.clone();
    expected["id"] = json!("seed");
    expected["type"] = json!("CUSTOM");
    for statement in expected["statements"].as_array_mut().unwrap() {
        // Every field is answered: no inline actions, and the default resource.
        statement["actions"] = json!([]);
        statement["resources"] = json!(["*"]);
    }
    assert_eq!(reply.body, json!({"policy": expected}));
    assert_eq!(get(&server, "/iam/policies/seed").await.body, reply.body);

    let missing = server.json(Method::PUT, "/iam/policies/nope", Some(seed.clone())).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "{}", missing.body);

    let mut extra = seed.clone();
    extra["color"] = json!("blue");
    let before = everything(&server).await;
    let refused = server.json(Method::PUT, "/iam/policies/seed", Some(extra.clone())).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(refused.body["message"].as_str().unwrap().contains("color"), "{}", refused.body);
    assert_eq!(everything(&server).await, before);

    extra["name"] = json!("Lax");
    extra["statements"][0]["weight"] = json!(3);
    let lax = server
        .raw(
            http::Request::put(server.url("/iam/policies/seed"))
                .header("content-type", "application/json+lax")
                .header("authorization", format!("Bearer {}", crate::support::TOKEN))
                .body(http_body_util::Full::new(bytes::Bytes::from(extra.to_string())))
                .unwrap(),
        )
        .await;
    assert_eq!(lax.0, StatusCode::OK, "{:?}", lax.2);
    assert_eq!(get(&server, "/iam/policies/seed").await.body["policy"]["name"], "Lax");
}

/// One case per rule: the request, and the gRPC code it is refused with.
fn refusals() -> Vec<(&'static str, Method, &'static str, Value, tonic::Code)> {
    use tonic::Code::{AlreadyExists, InvalidArgument, NotFound};
    let statement = json!({"role": "viewer", "tenants": ["*"]});
    let policy = |patch: Value| {
        let mut body = json!({"id": "new", "name": "New", "statements": [statement.clone()]});
        for (key, value) in patch.as_object().unwrap() {
            body[key] = value.clone();
        }
        body
    };
    let with_statement = |patch: Value| {
        let mut s = statement.clone();
        for (key, value) in patch.as_object().unwrap() {
            s[key] = value.clone();
        }
        policy(json!({"statements": [s]}))
    };
    let post = Method::POST;
    vec![
        ("blank policy id", post.clone(), "/iam/policies", policy(json!({"id": "  "})), InvalidArgument),
        ("policy id pattern", post.clone(), "/iam/policies", policy(json!({"id": "has space"})), InvalidArgument),
        ("policy id too long", post.clone(), "/iam/policies", policy(json!({"id": "x".repeat(65)})), InvalidArgument),
        ("blank policy name", post.clone(), "/iam/policies", policy(json!({"name": " "})), InvalidArgument),
        ("no statements", post.clone(), "/iam/policies", policy(json!({"statements": []})), InvalidArgument),
        (
            "neither role nor actions",
            post.clone(),
            "/iam/policies",
            with_statement(json!({"role": ""})),
            InvalidArgument,
        ),
        (
            "statement without tenants",
            post.clone(),
            "/iam/policies",
            with_statement(json!({"tenants": []})),
            InvalidArgument,
        ),
        (
            "role id pattern",
            post.clone(),
            "/iam/policies",
            with_statement(json!({"role": "no:colons"})),
            InvalidArgument,
        ),
        (
            "duplicate actions",
            post.clone(),
            "/iam/policies",
            with_statement(json!({"actions": ["iam:a:get", "iam:a:get"]})),
            InvalidArgument,
        ),
        (
            "action grammar",
            post.clone(),
            "/iam/policies",
            with_statement(json!({"actions": ["iam:policies"]})),
            InvalidArgument,
        ),
        (
            "duplicate resources",
            post.clone(),
            "/iam/policies",
            with_statement(json!({"resources": ["iam:x", "iam:x"]})),
            InvalidArgument,
        ),
        (
            "resource grammar",
            post.clone(),
            "/iam/policies",
            with_statement(json!({"resources": ["iam:p*"]})),
            InvalidArgument,
        ),
        (
            "duplicate statement tenants",
            post.clone(),
            "/iam/policies",
            with_statement(json!({"tenants": ["*", "*"]})),
            InvalidArgument,
        ),
        ("effect", post.clone(), "/iam/policies", with_statement(json!({"effect": "MAYBE"})), InvalidArgument),
        (
            "duplicate members",
            post.clone(),
            "/iam/policies",
            policy(json!({"members": ["user:local:a", "user:local:a"]})),
            InvalidArgument,
        ),
        (
            "member grammar",
            post.clone(),
            "/iam/policies",
            policy(json!({"members": ["user:github:a"]})),
            InvalidArgument,
        ),
        ("blank policy tenant", post.clone(), "/iam/policies", policy(json!({"tenants": [""]})), InvalidArgument),
        (
            "unassigned as a tenant",
            post.clone(),
            "/iam/policies",
            policy(json!({"tenants": ["(unassigned)"]})),
            InvalidArgument,
        ),
        (
            "star as a policy's tenant",
            post.clone(),
            "/iam/policies",
            policy(json!({"tenants": ["*"]})),
            InvalidArgument,
        ),
        (
            "duplicate policy tenants",
            post.clone(),
            "/iam/policies",
            policy(json!({"tenants": ["t1", "t1"]})),
            InvalidArgument,
        ),
        ("type from the client", post.clone(), "/iam/policies", policy(json!({"type": "MANAGED"})), InvalidArgument),
        ("unknown role", post.clone(), "/iam/policies", with_statement(json!({"role": "ghost"})), InvalidArgument),
        (
            "unknown statement tenant",
            post.clone(),
            "/iam/policies",
            with_statement(json!({"tenants": ["ghost"]})),
            NotFound,
        ),
        ("unknown policy tenant", post.clone(), "/iam/policies", policy(json!({"tenants": ["ghost"]})), NotFound),
        ("duplicate policy id", post.clone(), "/iam/policies", policy(json!({"id": "p1"})), AlreadyExists),
        (
            "update without statements",
            Method::PUT,
            "/iam/policies/p1",
            json!({"name": "x", "statements": []}),
            InvalidArgument,
        ),
        ("update of a missing policy", Method::PUT, "/iam/policies/ghost", policy(json!({})), NotFound),
        ("add no members", post.clone(), "/iam/policies/p1/members:add", json!({"members": []}), InvalidArgument),
        (
            "add a bad member",
            post.clone(),
            "/iam/policies/p1/members:add",
            json!({"members": ["team:local:"]}),
            InvalidArgument,
        ),
        ("remove no members", post.clone(), "/iam/policies/p1/members:remove", json!({"members": []}), InvalidArgument),
        (
            "replace with duplicates",
            Method::PUT,
            "/iam/policies/p1/members",
            json!({"members": ["*", "*"]}),
            InvalidArgument,
        ),
        (
            "blank role id",
            post.clone(),
            "/iam/roles",
            json!({"id": "", "name": "r", "actions": ["*"]}),
            InvalidArgument,
        ),
        (
            "blank role name",
            post.clone(),
            "/iam/roles",
            json!({"id": "r", "name": "", "actions": ["*"]}),
            InvalidArgument,
        ),
        (
            "role without actions",
            post.clone(),
            "/iam/roles",
            json!({"id": "r", "name": "r", "actions": []}),
            InvalidArgument,
        ),
        (
            "duplicate role actions",
            post.clone(),
            "/iam/roles",
            json!({"id": "r", "name": "r", "actions": ["*", "*"]}),
            InvalidArgument,
        ),
        (
            "role action grammar",
            post.clone(),
            "/iam/roles",
            json!({"id": "r", "name": "r", "actions": ["9am:x:y"]}),
            InvalidArgument,
        ),
        (
            "star as a role's tenant",
            post.clone(),
            "/iam/roles",
            json!({"id": "r", "name": "r", "actions": ["*"], "tenants": ["*"]}),
            InvalidArgument,
        ),
        (
            "unknown role tenant",
            post.clone(),
            "/iam/roles",
            json!({"id": "r", "name": "r", "actions": ["*"], "tenants": ["ghost"]}),
            NotFound,
        ),
        (
            "duplicate role id",
            post.clone(),
            "/iam/roles",
            json!({"id": "viewer", "name": "r", "actions": ["*"]}),
            AlreadyExists,
        ),
        (
            "tenant id too long",
            post.clone(),
            "/iam/tenants",
            json!({"id": "t".repeat(49), "name": "t"}),
            InvalidArgument,
        ),
        ("tenant id pattern", post.clone(), "/iam/tenants", json!({"id": "t.1", "name": "t"}), InvalidArgument),
        ("blank tenant name", post.clone(), "/iam/tenants", json!({"id": "t2", "name": "  "}), InvalidArgument),
        ("duplicate tenant id", post, "/iam/tenants", json!({"id": "t1", "name": "t"}), AlreadyExists),
    ]
}

#[tokio::test]
async fn each_validation_rule_refuses_its_case_and_changes_nothing() {
    let server = TestServer::start().await;
    tenant(&server, "t1", true).await;
    policy(&server, "p1", json!([{"role": "viewer", "tenants": ["t1"]}]), json!([])).await;
    let before = everything(&server).await;
    for (rule, method, path, body, code) in refusals() {
        let reply = server.json(method.clone(), path, Some(body.clone())).await;
        assert_eq!(reply.status, gateway_status(code), "{rule}: {method} {path} {body}: {}", reply.body);
        assert_eq!(reply.body["code"], code as i32, "{rule}");
        let message = reply.body["message"].as_str().unwrap();
        assert!(!message.is_empty() && !message.contains("internal"), "{rule}: {message}");
        assert_eq!(everything(&server).await, before, "{rule} changed something");
    }
    // The violations name the field at fault.
    let reply = server
        .json(Method::POST, "/iam/policies", Some(json!({"id": "n", "name": "n", "statements": [{"role": "viewer", "tenants": ["*"], "actions": ["bad"]}]})))
        .await;
    let violation = &reply.body["details"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["fieldViolations"].is_array())
        .unwrap()["fieldViolations"][0];
    assert_eq!(violation["field"], "statements[0].actions[0]", "{}", reply.body);
}

#[tokio::test]
async fn deleting_a_role_takes_it_out_of_statements_and_empties_what_it_leaves() {
    let server = TestServer::start().await;
    role(&server, "r1", json!([])).await;
    role(&server, "r2", json!([])).await;
    let keeps = json!([
        {"role": "r1", "tenants": ["*"]},
        {"role": "r1", "actions": ["iam:roles:get"], "tenants": ["*"]},
        {"role": "r2", "tenants": ["*"]}
    ]);
    policy(&server, "keeps", keeps, json!([])).await;
    policy(&server, "goes", json!([{"role": "r1", "tenants": ["*"]}]), json!([])).await;
    let untouched = get(&server, "/iam/policies/viewer-access").await.body;

    let reply = server.json(Method::DELETE, "/iam/roles/r1", None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let token = reply.headers[iamd::CONSISTENCY_TOKEN].to_str().unwrap().parse::<u64>().unwrap();

    assert_eq!(get(&server, "/iam/roles/r1").await.status, StatusCode::NOT_FOUND);
    assert_eq!(get(&server, "/iam/policies/goes").await.status, StatusCode::NOT_FOUND);
    let kept = get(&server, "/iam/policies/keeps").await.body;
    assert_eq!(
        kept["policy"]["statements"],
        json!([
            {"effect": "ALLOW", "actions": ["iam:roles:get"], "role": "", "resources": ["*"], "tenants": ["*"]},
            {"effect": "ALLOW", "actions": [], "role": "r2", "resources": ["*"], "tenants": ["*"]}
        ])
    );
    assert_eq!(get(&server, "/iam/policies/viewer-access").await.body, untouched);

    // One transaction: the three events end at the delete's token, each saying what changed.
    let events = get(&server, &format!("/v1/events?afterPosition={}&limit=100", token - 3)).await.body;
    let events: Vec<(String, String, Value)> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (e["objectId"].as_str().unwrap().into(), e["eventType"].as_str().unwrap().into(), e["payload"].clone())
        })
        .collect();
    assert_eq!(
        events,
        [
            ("goes".into(), "iam.policy.removed".into(), json!({})),
            ("keeps".into(), "iam.policy.role.removed".into(), json!({"role": "r1"})),
            ("r1".into(), "iam.role.removed".into(), json!({})),
        ]
    );
}

#[tokio::test]
async fn deleting_a_tenant_takes_it_out_of_policies_statements_and_roles() {
    let server = TestServer::start().await;
    tenant(&server, "t1", true).await;
    tenant(&server, "t2", true).await;
    role(&server, "r", json!(["t1", "t2"])).await;
    let statements = json!([{"role": "viewer", "tenants": ["t1"]}, {"role": "editor", "tenants": ["t1", "t2"]}]);
    policy(&server, "keeps", statements, json!(["t1"])).await;
    policy(&server, "goes", json!([{"role": "viewer", "tenants": ["t1"]}]), json!(["t2"])).await;
    policy(&server, "everywhere", json!([{"role": "viewer", "tenants": ["*"]}]), json!([])).await;
    // A tenant made with its policies.
    tenant(&server, "t3", false).await;
    let owners = get(&server, "/iam/policies/t3-tenant-owners").await.body;
    assert_eq!(
        owners,
        json!({"policy": {"name": "t3 Tenant Owners", "id": "t3-tenant-owners", "type": "CUSTOM", "members": [],
            "statements": [{"effect": "ALLOW", "actions": [], "role": "tenant-owner", "resources": ["*"], "tenants": ["t3"]}],
            "tenants": ["t3"]}})
    );
    let everywhere = get(&server, "/iam/policies/everywhere").await.body;

    assert_eq!(server.json(Method::DELETE, "/iam/tenants/t1", None).await.status, StatusCode::OK);
    let kept = get(&server, "/iam/policies/keeps").await.body["policy"].clone();
    assert_eq!(kept["tenants"], json!([]));
    assert_eq!(
        kept["statements"],
        json!([{"effect": "ALLOW", "actions": [], "role": "editor", "resources": ["*"], "tenants": ["t2"]}])
    );
    assert_eq!(get(&server, "/iam/policies/goes").await.status, StatusCode::NOT_FOUND);
    assert_eq!(get(&server, "/iam/roles/r").await.body["role"]["tenants"], json!(["t2"]));
    assert_eq!(get(&server, "/iam/policies/everywhere").await.body, everywhere);

    assert_eq!(server.json(Method::DELETE, "/iam/tenants/t3", None).await.status, StatusCode::OK);
    for suffix in ["owners", "editors", "viewers"] {
        let reply = get(&server, &format!("/iam/policies/t3-tenant-{suffix}")).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{suffix}");
    }
    assert_eq!(ids(&get(&server, "/iam/tenants").await.body["tenants"]), ["t2"]);
}

#[tokio::test]
async fn the_tenants_header_filters_lists_and_hides_what_it_filters_out() {
    let server = TestServer::start().await;
    tenant(&server, "t1", true).await;
    tenant(&server, "t2", true).await;
    policy(&server, "p1", json!([{"role": "viewer", "tenants": ["t1"]}]), json!(["t1"])).await;
    policy(&server, "p2", json!([{"role": "viewer", "tenants": ["t2"]}]), json!(["t2"])).await;
    policy(&server, "p12", json!([{"role": "viewer", "tenants": ["*"]}]), json!(["t2", "t1"])).await;
    policy(&server, "none", json!([{"role": "viewer", "tenants": ["*"]}]), json!([])).await;
    role(&server, "r1", json!(["t1"])).await;

    let list = async |path: &str, tenants: &str| {
        let reply = server.json_with(Method::GET, path, None, &[("tenants", tenants.into())]).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        reply.body
    };
    let policies = |body: Value| ids(&body["policies"]).into_iter().map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(policies(list("/iam/policies", "t1").await), ["p1", "p12"]);
    assert_eq!(policies(list("/iam/policies", " t2 , t1,t2").await), ["p1", "p2", "p12"]);
    assert_eq!(
        policies(list("/iam/policies", "(unassigned)").await),
        ["administrator-access", "editor-access", "viewer-access", "none"]
    );
    assert_eq!(policies(list("/iam/policies", "*").await).len(), 7);
    assert_eq!(ids(&list("/iam/roles", "t1").await["roles"]), ["r1"]);
    assert!(ids(&list("/iam/roles", "t2").await["roles"]).is_empty());
    assert_eq!(ids(&list("/iam/tenants", "t2,ghost").await["tenants"]), ["t2"]);

    // Out of the filter: NotFound on get, update, members and delete, and nothing changes.
    let hidden = [("tenants", "t2".to_string())];
    let body = json!({"name": "x", "statements": [{"role": "viewer", "tenants": ["*"]}]});
    for (method, path, body) in [
        (Method::GET, "/iam/policies/p1", None),
        (Method::PUT, "/iam/policies/p1", Some(body.clone())),
        (Method::POST, "/iam/policies/p1/members:add", Some(json!({"members": ["*"]}))),
        (Method::DELETE, "/iam/policies/p1", None),
        (Method::GET, "/iam/roles/r1", None),
        (Method::GET, "/iam/tenants/t1", None),
    ] {
        let reply = server.json_with(method.clone(), path, body, &hidden).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{method} {path}: {}", reply.body);
    }
    assert_eq!(get(&server, "/iam/policies/p1").await.body["policy"]["name"], "p1");
    let reply = server.json_with(Method::PUT, "/iam/policies/p1", Some(body), &[("tenants", "t1".into())]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
}

#[tokio::test]
async fn managed_objects_are_seeded_once_and_only_their_members_change() {
    let server = TestServer::start().await;
    let policies = get(&server, "/iam/policies").await.body;
    assert_eq!(ids(&policies["policies"]), ["administrator-access", "editor-access", "viewer-access"]);
    let roles = get(&server, "/iam/roles").await.body;
    let mut role_ids = ids(&roles["roles"]);
    role_ids.sort();
    assert_eq!(role_ids, ["editor", "owner", "tenant-owner", "viewer"]);
    for object in policies["policies"].as_array().unwrap().iter().chain(roles["roles"].as_array().unwrap()) {
        assert_eq!(object["type"], "MANAGED", "{object}");
    }
    let actions = |id: &str| {
        let role = roles["roles"].as_array().unwrap().iter().find(|r| r["id"] == id).unwrap();
        role["actions"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_owned()).collect::<Vec<_>>()
    };
    assert_eq!(actions("owner"), ["*"]);
    assert!(actions("viewer").contains(&"accounts:organizations:get".to_owned()));
    assert!(actions("viewer").iter().all(|a| (a.ends_with(":get") || a.ends_with(":list")) && !a.starts_with("iam:")));
    assert!(actions("editor").contains(&"admin:domainPolicies:update".to_owned()));
    assert!(actions("tenant-owner").contains(&"iam:policyMembers:*".to_owned()));

    // Their definitions are refused whatever the body, valid or not.
    for (method, path, body) in [
        (
            Method::PUT,
            "/iam/policies/administrator-access",
            Some(json!({"name": "x", "statements": [{"role": "owner", "tenants": ["*"]}]})),
        ),
        (Method::PUT, "/iam/policies/viewer-access", Some(json!({}))),
        (Method::DELETE, "/iam/policies/editor-access", None),
        (Method::PUT, "/iam/roles/owner", Some(json!({"name": "x", "actions": ["*"]}))),
        (Method::PUT, "/iam/roles/tenant-owner", Some(json!({"actions": []}))),
        (Method::DELETE, "/iam/roles/viewer", None),
    ] {
        let reply = server.json(method.clone(), path, body).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{method} {path}: {}", reply.body);
        assert_eq!(reply.body["details"][0]["reason"], "MANAGED");
    }

    // Their members change; the admins stay administrators.
    let added =
        ok(&server, Method::POST, "/iam/policies/editor-access/members:add", json!({"members": ["user:local:eve"]}))
            .await;
    assert_eq!(added, json!({"members": ["team:local:editors", "user:local:eve"]}));
    for (method, path, members) in [
        (Method::POST, "/iam/policies/administrator-access/members:remove", json!([ADMINS])),
        (Method::PUT, "/iam/policies/administrator-access/members", json!(["user:local:root"])),
    ] {
        let reply = server.json(method, path, Some(json!({"members": members}))).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{path}: {}", reply.body);
        assert_eq!(reply.body["details"][0]["reason"], "PROTECTED");
    }
    let replaced = ok(
        &server,
        Method::PUT,
        "/iam/policies/administrator-access/members",
        json!({"members": ["user:local:root", ADMINS]}),
    )
    .await;
    assert_eq!(replaced["members"], json!(["user:local:root", ADMINS]));

    // Seeded once: a restart keeps the members as they are and adds nothing.
    let before = everything(&server).await;
    let dir = server.stop().await;
    let server = TestServer::start_in(dir, |c| c).await;
    assert_eq!(everything(&server).await, before);
}

/// A role's delete racing a policy write that names the role: one of the two goes first,
/// and no policy is left naming a role that is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_delete_racing_a_policy_write_that_names_it_leaves_no_dangling_role() {
    let server = Arc::new(TestServer::start().await);
    policy(&server, "existing", json!([{"role": "viewer", "tenants": ["*"]}]), json!([])).await;
    let (mut writes_first, mut deletes_first) = (0, 0);
    for round in 0..20 {
        let role_id = format!("r{round}");
        role(&server, &role_id, json!([])).await;
        let barrier = Arc::new(Barrier::new(3));
        let statement = json!([{"role": role_id, "tenants": ["*"]}]);
        let writers = [
            (
                Method::POST,
                "/iam/policies".to_owned(),
                json!({"id": format!("p{round}"), "name": "p", "statements": statement}),
            ),
            (Method::PUT, "/iam/policies/existing".to_owned(), json!({"name": "e", "statements": statement})),
            (Method::DELETE, format!("/iam/roles/{role_id}"), Value::Null),
        ];
        let tasks: Vec<_> = writers
            .into_iter()
            .map(|(method, path, body)| {
                let (server, barrier) = (server.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    server.json(method, &path, (!body.is_null()).then_some(body)).await
                })
            })
            .collect();
        let mut replies = Vec::new();
        for task in tasks {
            replies.push(task.await.unwrap());
        }
        assert_eq!(replies[2].status, StatusCode::OK, "round {round}: the delete: {}", replies[2].body);
        for reply in &replies[..2] {
            match reply.status {
                StatusCode::OK => writes_first += 1,
                // Planned after the delete: the role is unknown.
                StatusCode::BAD_REQUEST => {
                    assert_eq!(reply.body["details"][0]["reason"], "ROLE_NOT_FOUND", "{}", reply.body);
                    deletes_first += 1;
                }
                other => panic!("round {round}: {other}: {}", reply.body),
            }
        }
        // Whatever the order, nothing names the deleted role.
        for policy in get(&server, "/iam/policies").await.body["policies"].as_array().unwrap() {
            for statement in policy["statements"].as_array().unwrap() {
                assert_ne!(statement["role"], role_id.as_str(), "round {round}: {policy}");
            }
        }
        if get(&server, "/iam/policies/existing").await.status == StatusCode::NOT_FOUND {
            policy(&server, "existing", json!([{"role": "viewer", "tenants": ["*"]}]), json!([])).await;
        }
    }
    println!("policy writes went first {writes_first} times, the role's delete {deletes_first} times");
}

/// Versions and tokens as on the other surfaces: every single-object answer carries its
/// version, a stale `If-Match` is ABORTED and changes nothing, and an effect number outside
/// the enum (only gRPC can send one) is bad input naming the field.
#[tokio::test]
async fn versions_guard_iam_writes_and_grpc_effects_are_checked() {
    use iamd::pb::iamd::iam::v2 as pb;
    let server = TestServer::start().await;
    policy(&server, "p1", json!([{"role": "viewer", "tenants": ["*"]}]), json!([])).await;
    let read = get(&server, "/iam/policies/p1").await;
    assert_eq!(read.headers["etag"], "\"1\"");
    let add = json!({"members": ["user:local:a"]});
    let stale = server
        .json_with(Method::POST, "/iam/policies/p1/members:add", Some(add.clone()), &[("if-match", "\"7\"".into())])
        .await;
    assert_eq!(stale.status, StatusCode::CONFLICT, "{}", stale.body);
    assert_eq!(stale.body["details"][0]["reason"], "VERSION_MISMATCH");
    assert_eq!(get(&server, "/iam/policies/p1/members").await.body, json!({"members": []}));
    let fresh = server
        .json_with(Method::POST, "/iam/policies/p1/members:add", Some(add), &[("if-match", "\"1\"".into())])
        .await;
    assert_eq!(fresh.status, StatusCode::OK, "{}", fresh.body);
    assert_eq!(fresh.headers["etag"], "\"2\"");
    assert!(fresh.headers.contains_key(iamd::CONSISTENCY_TOKEN));
    // Adding a member already there writes nothing: same version, no token.
    let again =
        server.json(Method::POST, "/iam/policies/p1/members:add", Some(json!({"members": ["user:local:a"]}))).await;
    assert_eq!(again.headers["etag"], "\"2\"");
    assert!(!again.headers.contains_key(iamd::CONSISTENCY_TOKEN));

    let request = pb::CreatePolicyRequest {
        id: "p2".into(),
        name: "p2".into(),
        statements: vec![pb::Statement {
            effect: 7,
            role: "viewer".into(),
            tenants: vec!["*".into()],
            ..Default::default()
        }],
        ..Default::default()
    };
    let refused = server
        .grpc::<_, pb::CreatePolicyResponse>("/iamd.iam.v2.PolicyService/CreatePolicy", request)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(refused.message().contains("effect 7"), "{}", refused.message());
    assert_eq!(get(&server, "/iam/policies/p2").await.status, StatusCode::NOT_FOUND);
}
