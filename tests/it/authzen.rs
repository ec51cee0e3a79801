//! The OpenID AuthZEN 1.0 certification scenario against a live server: the fixture loaded
//! through iamd's own API by `tests/authzen/load-fixture.py`, then every request of the
//! Basic, Batch, Search and Discovery levels (`tests/authzen/scenario.json`, transcribed from
//! the working group's document) with its expected status, structure and decisions. Every
//! entity a search returns is sent again as an evaluation and must decide true.

use std::collections::HashMap;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::Full;
use iamd::config::Config;
use serde_json::{Value, json};
use tonic::Code;

use crate::parity::{Step, parity};
use crate::support::{Rest, TOKEN, TestServer, rpc};

/// Runs the fixture loader as a user would, against `server`.
pub async fn load_fixture(server: &TestServer) {
    let url = server.url("");
    let status = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/authzen/load-fixture.py"))
            .args(["--url", &url, "--token", TOKEN])
            .status()
    })
    .await
    .unwrap()
    .expect("python3 runs the fixture loader");
    assert!(status.success(), "the fixture loader failed: {status}");
}

/// What one request answered.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

async fn send(
    server: &TestServer,
    method: &str,
    path: &str,
    body: Option<Bytes>,
    content_type: Option<&str>,
    headers: &[(String, String)],
) -> Answer {
    let mut builder = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).unwrap())
        .uri(server.url(path))
        .header("authorization", format!("Bearer {TOKEN}"));
    if let Some(content_type) = content_type {
        builder = builder.header("content-type", content_type);
    }
    for (name, value) in headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let (status, headers, bytes) = server.raw(builder.body(Full::new(body.unwrap_or_default())).unwrap()).await;
    let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap_or(Value::Null) };
    Answer { status, headers, body }
}

/// One evaluation, as a PEP would send it.
async fn evaluate(server: &TestServer, request: Value) -> Value {
    let body = Bytes::from(serde_json::to_vec(&request).unwrap());
    let answer = send(server, "POST", "/access/v1/evaluation", Some(body), Some("application/json"), &[]).await;
    assert_eq!(answer.status, StatusCode::OK, "{request}: {}", answer.body);
    answer.body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_certification_scenario_passes_every_level() {
    let server = TestServer::start().await;
    load_fixture(&server).await;
    let scenario: Value = serde_json::from_str(include_str!("../authzen/scenario.json")).unwrap();
    let mut answered: HashMap<String, Value> = HashMap::new();
    let mut ran = 0;
    for case in scenario["cases"].as_array().unwrap() {
        let id = case["id"].as_str().unwrap();
        let expect = &case["expect"];
        let mut body = case.get("body").cloned();
        if let Some(from) = case.get("page_token_from").and_then(Value::as_str) {
            let token = answered.get(from).and_then(|b| b["page"]["next_token"].as_str()).unwrap_or("");
            if token.is_empty() {
                continue;
            }
            if let Some(body) = body.as_mut() {
                body["page"]["token"] = json!(token);
            }
        }
        let bytes = match (&body, case.get("raw_body").and_then(Value::as_str)) {
            (Some(body), _) => Some(Bytes::from(serde_json::to_vec(body).unwrap())),
            (None, Some(raw)) => Some(Bytes::from(raw.to_owned())),
            (None, None) => None,
        };
        let content_type = match case.get("content_type") {
            Some(Value::Null) => None,
            Some(value) => value.as_str(),
            None => bytes.as_ref().map(|_| "application/json"),
        };
        let headers: Vec<(String, String)> = case
            .get("headers")
            .and_then(Value::as_object)
            .map(|h| h.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned())).collect())
            .unwrap_or_default();
        let method = case["method"].as_str().unwrap();
        let path = case["path"].as_str().unwrap();
        let repeat = case.get("repeat").and_then(Value::as_u64).unwrap_or(1);
        let mut first: Option<Value> = None;
        for _ in 0..repeat {
            let answer = send(&server, method, path, bytes.clone(), content_type, &headers).await;
            check(&server, id, case, expect, &answer, &answered).await;
            if let Some(first) = &first {
                assert_eq!(first, &answer.body, "{id}: the same request answered differently");
            }
            first = Some(answer.body);
        }
        answered.insert(id.to_owned(), first.unwrap_or(Value::Null));
        ran += 1;
    }
    assert!(ran >= 70, "ran {ran} cases");
}

async fn check(
    server: &TestServer,
    id: &str,
    case: &Value,
    expect: &Value,
    answer: &Answer,
    answered: &HashMap<String, Value>,
) {
    let body = &answer.body;
    let expected_status = expect["status"].as_u64().unwrap() as u16;
    assert_eq!(answer.status.as_u16(), expected_status, "{id}: {body}");
    if let Some(sent) = case["headers"].get("X-Request-ID").and_then(Value::as_str) {
        assert_eq!(answer.headers.get("x-request-id").and_then(|v| v.to_str().ok()), Some(sent), "{id}");
    }
    if expected_status != 200 {
        // A.3's error body.
        assert!(body["code"].is_number() && body["message"].is_string(), "{id}: {body}");
        return;
    }
    let content_type = answer.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    assert!(content_type.starts_with("application/json"), "{id}: content type {content_type}");
    if let Some(context) = body.get("context") {
        assert!(context.is_object(), "{id}: context {context}");
    }
    let path = case["path"].as_str().unwrap();
    let single =
        path == "/access/v1/evaluation" || (path == "/access/v1/evaluations" && expect.get("evaluations").is_none());
    if single {
        assert!(body["decision"].is_boolean(), "{id}: {body}");
        if let Some(decision) = expect.get("decision") {
            assert_eq!(&body["decision"], decision, "{id}");
        }
    }
    if let Some(evaluations) = expect.get("evaluations") {
        let items = body["evaluations"].as_array().unwrap_or_else(|| panic!("{id}: no evaluations in {body}"));
        assert!(items.iter().all(|item| item["decision"].is_boolean()), "{id}: {body}");
        match evaluations {
            Value::Array(decisions) => {
                let got: Vec<&Value> = items.iter().map(|item| &item["decision"]).collect();
                assert_eq!(got, decisions.iter().collect::<Vec<_>>(), "{id}");
            }
            count => assert_eq!(items.len() as u64, count.as_u64().unwrap(), "{id}"),
        }
        assert!(body.get("decision").is_none(), "{id}: a batch answer has no top-level decision: {body}");
    }
    if path.starts_with("/access/v1/search/") {
        if let Some(like) = expect.get("results_like").and_then(Value::as_str) {
            assert_eq!(body["results"], answered[like]["results"], "{id}: not the results of {like}");
        }
        check_search(server, id, case, expect, body).await;
    }
    if let Some(metadata) = expect.get("metadata") {
        let base = server.url("");
        assert_eq!(body["policy_decision_point"], json!(base), "{id}: {body}");
        for name in metadata["required"].as_array().unwrap().iter().chain(metadata["optional_urls"].as_array().unwrap())
        {
            let url = body[name.as_str().unwrap()].as_str().unwrap_or_else(|| panic!("{id}: no {name} in {body}"));
            assert!(url.starts_with(&base), "{id}: {name} = {url}");
        }
        assert!(body.get("signed_metadata").is_none(), "{id}: {body}");
    }
}

async fn check_search(server: &TestServer, id: &str, case: &Value, expect: &Value, body: &Value) {
    let results = body["results"].as_array().unwrap_or_else(|| panic!("{id}: no results in {body}"));
    let page = &body["page"];
    assert!(page.is_object() && page["next_token"].is_string(), "{id}: page {page}");
    assert_eq!(page["count"], json!(results.len()), "{id}");
    if let Some(kind) = expect.get("results_type") {
        assert!(results.iter().all(|r| &r["type"] == kind && r["id"].is_string()), "{id}: {body}");
    }
    for wanted in expect["results_include"].as_array().into_iter().flatten() {
        assert!(results.contains(wanted), "{id}: {wanted} not in {body}");
    }
    for unwanted in expect["results_exclude"].as_array().into_iter().flatten() {
        assert!(!results.contains(unwanted), "{id}: {unwanted} in {body}");
    }
    if expect["results_empty"] == json!(true) {
        assert!(results.is_empty(), "{id}: {body}");
    }
    // Every result, sent back as an evaluation, is allowed.
    let request = &case["body"];
    let path = case["path"].as_str().unwrap();
    for result in results {
        let mut evaluation = json!({
            "subject": request["subject"],
            "action": request["action"],
            "resource": request["resource"],
            "context": request.get("context").cloned().unwrap_or(json!({})),
        });
        match path {
            "/access/v1/search/subject" => evaluation["subject"] = result.clone(),
            "/access/v1/search/resource" => evaluation["resource"] = result.clone(),
            _ => evaluation["action"] = result.clone(),
        }
        let answer = evaluate(server, evaluation.clone()).await;
        assert_eq!(answer["decision"], json!(true), "{id}: {result} was found but {evaluation} is denied");
    }
}

// ---------------------------------------------------------------------------------------------
// Each method on every protocol: the same request from the same state, the same answer.
// ---------------------------------------------------------------------------------------------

/// The fixture's calls, as parity setup steps.
fn fixture() -> Vec<Step> {
    let fixture: Value = serde_json::from_str(include_str!("../authzen/fixture.json")).unwrap();
    fixture["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|call| {
            let path: &'static str = Box::leak(call["path"].as_str().unwrap().to_owned().into_boxed_str());
            let body: &'static str = Box::leak(call["body"].to_string().into_boxed_str());
            (Method::POST, path, Some(body))
        })
        .collect()
}

fn alice_reads(record: &str) -> Value {
    json!({
        "subject": {"type": "user", "id": "alice"},
        "action": {"name": "read"},
        "resource": {"type": "record", "id": record},
    })
}

#[tokio::test]
async fn evaluation_on_every_protocol() {
    let call = |body: Value| {
        move |_: &str| Rest::new(rpc::EVALUATION, Method::POST, "/access/v1/evaluation").body(body.clone())
    };
    assert_eq!(parity(&fixture(), call(alice_reads("record-1")), Code::Ok).await, json!({"decision": true}));
    let robot = json!({"subject": {"type": "robot", "id": "r2"}, "action": {"name": "read"}, "resource": {"type": "record", "id": "record-1"}});
    assert_eq!(
        parity(&fixture(), call(robot), Code::Ok).await,
        json!({"decision": false, "context": {"reason": "unknown subject type"}})
    );
    let missing = parity(&fixture(), call(json!({"action": {"name": "read"}})), Code::InvalidArgument).await;
    assert_eq!(missing["message"], "`subject` is required");
}

#[tokio::test]
async fn evaluations_on_every_protocol() {
    let call = |body: Value| {
        move |_: &str| Rest::new(rpc::EVALUATIONS, Method::POST, "/access/v1/evaluations").body(body.clone())
    };
    let batch = json!({
        "subject": {"type": "user", "id": "alice"},
        "action": {"name": "read"},
        "evaluations": [{"resource": {"type": "record", "id": "record-1"}}, {}],
    });
    let answer = parity(&fixture(), call(batch), Code::Ok).await;
    assert_eq!(answer["evaluations"][0], json!({"decision": true}));
    assert_eq!(answer["evaluations"][1]["decision"], false);
    // A JSON number, as `google.protobuf.Value` carries every number.
    assert_eq!(answer["evaluations"][1]["context"]["error"]["status"].as_f64(), Some(400.0));
    let bad = json!({"options": {"evaluations_semantic": "first_come"}, "evaluations": [{}]});
    parity(&fixture(), call(bad), Code::InvalidArgument).await;
}

#[tokio::test]
async fn searches_on_every_protocol() {
    let subjects = |body: Value| {
        move |_: &str| Rest::new(rpc::SUBJECT_SEARCH, Method::POST, "/access/v1/search/subject").body(body.clone())
    };
    let search = json!({"subject": {"type": "user"}, "action": {"name": "read"}, "resource": {"type": "record", "id": "record-1"}});
    let answer = parity(&fixture(), subjects(search), Code::Ok).await;
    assert_eq!(
        answer,
        json!({"page": {"next_token": "", "count": 3}, "results": [
            {"type": "user", "id": "admin"}, {"type": "user", "id": "alice"}, {"type": "user", "id": "bob"},
        ]})
    );
    parity(&fixture(), subjects(json!({"subject": {"type": "user"}})), Code::InvalidArgument).await;
    let resources = |body: Value| {
        move |_: &str| Rest::new(rpc::RESOURCE_SEARCH, Method::POST, "/access/v1/search/resource").body(body.clone())
    };
    let search =
        json!({"subject": {"type": "user", "id": "alice"}, "action": {"name": "read"}, "resource": {"type": "record"}});
    let answer = parity(&fixture(), resources(search), Code::Ok).await;
    assert_eq!(answer["results"], json!([{"type": "record", "id": "record-1"}, {"type": "record", "id": "record-2"}]));
    parity(&fixture(), resources(json!({"resource": {"type": "record"}})), Code::InvalidArgument).await;
    let actions = |body: Value| {
        move |_: &str| Rest::new(rpc::ACTION_SEARCH, Method::POST, "/access/v1/search/action").body(body.clone())
    };
    let search = json!({"subject": {"type": "user", "id": "alice"}, "resource": {"type": "record", "id": "record-1"}});
    let answer = parity(&fixture(), actions(search), Code::Ok).await;
    assert_eq!(answer["results"], json!([{"name": "read"}, {"name": "write"}]));
    parity(&fixture(), actions(json!({"subject": {"type": "user", "id": "alice"}})), Code::InvalidArgument).await;
}

#[tokio::test]
async fn the_metadata_names_absolute_urls_from_the_host_or_the_configured_base() {
    let server = TestServer::start().await;
    let reply = server.json(Method::GET, "/.well-known/authzen-configuration", None).await;
    assert_eq!(reply.body["access_evaluation_endpoint"], json!(server.url("/access/v1/evaluation")));
    let configured = TestServer::start_in(tempfile::tempdir().unwrap(), |config| Config {
        public_url: Some("https://iam.example.com".into()),
        ..config
    })
    .await;
    let reply = configured.json(Method::GET, "/.well-known/authzen-configuration", None).await;
    assert_eq!(
        reply.body,
        json!({
            "policy_decision_point": "https://iam.example.com",
            "access_evaluation_endpoint": "https://iam.example.com/access/v1/evaluation",
            "access_evaluations_endpoint": "https://iam.example.com/access/v1/evaluations",
            "search_subject_endpoint": "https://iam.example.com/access/v1/search/subject",
            "search_resource_endpoint": "https://iam.example.com/access/v1/search/resource",
            "search_action_endpoint": "https://iam.example.com/access/v1/search/action",
        })
    );
    // The same document over native gRPC.
    let grpc: Result<iamd::pb::iamd::authzen::v1::GetConfigurationResponse, _> = configured
        .grpc(rpc::GET_AUTHZEN_CONFIGURATION.path, iamd::pb::iamd::authzen::v1::GetConfigurationRequest {})
        .await;
    assert_eq!(grpc.unwrap().search_action_endpoint, "https://iam.example.com/access/v1/search/action");
}

// ---------------------------------------------------------------------------------------------
// The mapping onto iamd's names, and the transport rules.
// ---------------------------------------------------------------------------------------------

async fn ok(server: &TestServer, method: Method, path: &str, body: Value) -> Value {
    let reply = server.json(method.clone(), path, Some(body)).await;
    assert!(reply.status.is_success(), "{method} {path}: {}", reply.body);
    reply.body
}

async fn decision(server: &TestServer, body: Value) -> bool {
    ok(server, Method::POST, "/access/v1/evaluation", body).await["decision"].as_bool().unwrap()
}

async fn policy(server: &TestServer, id: &str, members: &[&str], statement: Value) {
    let mut statement = statement;
    statement["effect"] = statement.get("effect").cloned().unwrap_or(json!("ALLOW"));
    statement["tenants"] = json!(["*"]);
    ok(
        server,
        Method::POST,
        "/iam/policies",
        json!({"id": id, "name": id, "members": members, "statements": [statement]}),
    )
    .await;
}

fn question(subject: Value, action: &str, resource: Value) -> Value {
    json!({"subject": subject, "action": {"name": action}, "resource": resource})
}

#[tokio::test]
async fn the_same_policies_answer_check_and_authzen() {
    let server = TestServer::start().await;
    load_fixture(&server).await;
    for user in ["alice", "bob", "carol"] {
        for action in ["read", "write", "delete"] {
            for record in ["record-1", "record-2", "record-3"] {
                let authzen = decision(
                    &server,
                    question(json!({"type": "user", "id": user}), action, json!({"type": "record", "id": record})),
                )
                .await;
                // Check reads no stored properties: its caller gives the context.
                let context = if user == "bob" { json!({"subject.role": "admin"}) } else { json!({}) };
                let check = json!({
                    "subject": format!("user:local:{user}"),
                    "action": format!("authzen:record:{action}"),
                    "resource": format!("authzen:record:{record}"),
                    "context": context,
                });
                let check = ok(&server, Method::POST, "/v1/authz:check", check).await;
                assert_eq!(check["allowed"], json!(authzen), "{user} {action} {record}");
            }
        }
    }
}

#[tokio::test]
async fn each_mapping_rule_names_what_iamd_decides() {
    let server = TestServer::start().await;
    // A subject that already has a §2.5 form is taken as it is.
    policy(
        &server,
        "oidc",
        &["user:oidc:ana"],
        json!({"actions": ["authzen:doc:read"], "resources": ["authzen:doc:d1"]}),
    )
    .await;
    let doc = json!({"type": "doc", "id": "d1"});
    assert!(decision(&server, question(json!({"type": "user", "id": "user:oidc:ana"}), "read", doc.clone())).await);
    assert!(!decision(&server, question(json!({"type": "user", "id": "ana"}), "read", doc.clone())).await);
    // A token is `token:<id>`; one that names a user is that user.
    ok(&server, Method::POST, "/iam/users", json!({"id": "dora", "name": "Dora"})).await;
    ok(&server, Method::POST, "/iam/tokens", json!({"id": "t-dora", "name": "Dora's", "userId": "dora"})).await;
    ok(&server, Method::POST, "/iam/tokens", json!({"id": "t-ci", "name": "CI"})).await;
    policy(
        &server,
        "dora",
        &["user:local:dora", "token:t-ci"],
        json!({"actions": ["authzen:doc:read"], "resources": ["authzen:doc:d2"]}),
    )
    .await;
    let d2 = json!({"type": "doc", "id": "d2"});
    assert!(decision(&server, question(json!({"type": "token", "id": "t-dora"}), "read", d2.clone())).await);
    assert!(decision(&server, question(json!({"type": "token", "id": "t-ci"}), "read", d2.clone())).await);
    assert!(!decision(&server, question(json!({"type": "token", "id": "t-other"}), "read", d2.clone())).await);
    // A resource type that holds a `:` is the prefix itself; AuthZEN action names such as
    // `can_read_todos` are valid in statements and checks.
    policy(
        &server,
        "todos",
        &["user:local:dora"],
        json!({"actions": ["myapp:todo:can_read_todos"], "resources": ["myapp:todo:*"]}),
    )
    .await;
    let todo = json!({"type": "myapp:todo", "id": "t9"});
    assert!(decision(&server, question(json!({"type": "user", "id": "dora"}), "can_read_todos", todo.clone())).await);
    // An action that already is iamd's is taken as it is: the administrator may get a user.
    let admin = json!({"type": "user", "id": "admin"});
    assert!(
        decision(&server, question(admin.clone(), "iam:users:get", json!({"type": "iam:users", "id": "dora"}))).await
    );
    // What no grammar allows is 400, naming the field.
    for (body, field) in [
        (question(json!({"type": "user", "id": "a*"}), "read", doc.clone()), "subject.id"),
        (question(admin.clone(), "read", json!({"type": "doc", "id": "d*"})), "resource"),
        (question(admin.clone(), "re ad", doc.clone()), "action.name"),
        (question(json!({"type": "", "id": "x"}), "read", doc.clone()), "subject.type"),
        (question(admin.clone(), "", doc.clone()), "action.name"),
        (question(admin.clone(), "read", json!({"type": "doc"})), "resource.id"),
    ] {
        let reply = server.json(Method::POST, "/access/v1/evaluation", Some(body.clone())).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}: {}", reply.body);
        let violation = &reply.body["details"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["fieldViolations"].is_array())
            .unwrap()["fieldViolations"][0];
        assert_eq!(violation["field"], field, "{body}: {}", reply.body);
    }
}

#[tokio::test]
async fn properties_come_from_the_request_over_the_stored_user_over_the_context() {
    let server = TestServer::start().await;
    ok(&server, Method::POST, "/iam/users", json!({"id": "eve", "name": "Eve", "properties": {"level": "gold"}})).await;
    let condition = json!([{"all": {"stringEquals": {"subject.level": "gold"}}}]);
    policy(
        &server,
        "gold",
        &["user:local:*"],
        json!({"actions": ["authzen:lounge:enter"], "resources": ["authzen:lounge:main"], "conditionsAll": condition}),
    )
    .await;
    let lounge = json!({"type": "lounge", "id": "main"});
    let eve = |properties: Value| json!({"type": "user", "id": "eve", "properties": properties});
    let ask = |subject: Value, context: Value| {
        let mut body = question(subject, "enter", lounge.clone());
        body["context"] = context;
        body
    };
    // Stored.
    assert!(decision(&server, ask(eve(json!({})), json!({}))).await);
    // The request's property wins over the stored one.
    assert!(!decision(&server, ask(eve(json!({"level": "silver"})), json!({}))).await);
    // Both win over a context key of the same name.
    assert!(decision(&server, ask(eve(json!({})), json!({"subject.level": "silver"}))).await);
    let frank = json!({"type": "user", "id": "frank"});
    assert!(!decision(&server, ask(frank.clone(), json!({}))).await);
    assert!(decision(&server, ask(frank, json!({"subject.level": "gold"}))).await);
    // Objects and lists are invisible to conditions: as if absent.
    assert!(!decision(&server, ask(eve(json!({"level": {"tier": "gold"}})), json!({}))).await);
    // The policy's condition is in its answer, and only where it was set.
    let stored = server.json(Method::GET, "/iam/policies/gold", None).await.body;
    assert_eq!(stored["policy"]["statements"][0]["conditionsAll"], condition);
    let plain = server.json(Method::GET, "/iam/policies/administrator-access", None).await.body;
    assert!(plain["policy"]["statements"][0].get("conditionsAll").is_none(), "{plain}");
}

#[tokio::test]
async fn if_exists_operators_hold_where_the_key_is_missing() {
    let server = TestServer::start().await;
    let conditions = json!([
        {"all": {"numericLessThanIfExists": {"resource.size": "100"}}},
        {"all": {"boolIfExists": {"action.dry_run": "false"}}},
    ]);
    policy(
        &server,
        "small",
        &["user:local:*"],
        json!({"actions": ["authzen:file:upload"], "resources": ["authzen:file:*"], "conditionsAll": conditions}),
    )
    .await;
    let ask = |resource: Value, action: Value| json!({"subject": {"type": "user", "id": "gus"}, "action": action, "resource": resource});
    let file = |properties: Value| json!({"type": "file", "id": "f1", "properties": properties});
    let upload = |properties: Value| json!({"name": "upload", "properties": properties});
    assert!(decision(&server, ask(file(json!({})), upload(json!({})))).await);
    assert!(decision(&server, ask(file(json!({"size": 5})), upload(json!({"dry_run": false})))).await);
    assert!(!decision(&server, ask(file(json!({"size": 500})), upload(json!({})))).await);
    assert!(!decision(&server, ask(file(json!({})), upload(json!({"dry_run": true})))).await);
    // A value the operator cannot read fails closed, present or not.
    assert!(!decision(&server, ask(file(json!({"size": "big"})), upload(json!({})))).await);
    // Written values are read at write time.
    let bad = json!({"id": "bad", "name": "bad", "members": ["*"], "statements": [{"effect": "ALLOW", "actions": ["authzen:file:upload"], "resources": ["*"], "conditionsAll": [{"all": {"numericLessThanIfExists": {"k": "many"}}}]}]});
    let reply = server.json(Method::POST, "/iam/policies", Some(bad)).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
    assert_eq!(
        reply.body["details"][1]["fieldViolations"][0]["field"],
        "statements[0].conditionsAll[0].all.numericLessThanIfExists.k",
        "{}",
        reply.body
    );
}

#[tokio::test]
async fn a_batch_stops_where_its_semantic_says() {
    let server = TestServer::start().await;
    load_fixture(&server).await;
    let batch = |semantic: &str| {
        json!({
            "subject": {"type": "user", "id": "alice"},
            "action": {"name": "read"},
            "options": {"evaluations_semantic": semantic},
            "evaluations": [
                {"resource": {"type": "record", "id": "record-1"}},
                {"resource": {"type": "record", "id": "record-9"}},
                {"resource": {"type": "record", "id": "record-2"}},
            ],
        })
    };
    let decisions = |answer: Value| {
        answer["evaluations"].as_array().unwrap().iter().map(|e| e["decision"].as_bool().unwrap()).collect::<Vec<_>>()
    };
    let all = ok(&server, Method::POST, "/access/v1/evaluations", batch("execute_all")).await;
    assert_eq!(decisions(all), [true, false, true]);
    let deny = ok(&server, Method::POST, "/access/v1/evaluations", batch("deny_on_first_deny")).await;
    assert_eq!(deny["evaluations"][1]["context"], json!({"reason": "deny_on_first_deny"}));
    assert_eq!(decisions(deny), [true, false]);
    let permit = ok(&server, Method::POST, "/access/v1/evaluations", batch("permit_on_first_permit")).await;
    assert_eq!(decisions(permit), [true]);
    // An item's entity replaces the default whole: no merging of `type` and `id`.
    let replaced = json!({
        "subject": {"type": "user", "id": "alice"},
        "action": {"name": "read"},
        "resource": {"type": "record", "id": "record-1"},
        "evaluations": [{"resource": {"id": "record-2"}}],
    });
    let answer = ok(&server, Method::POST, "/access/v1/evaluations", replaced).await;
    assert_eq!(answer["evaluations"][0]["context"]["error"]["message"], "`resource.type` is required");
    // The whole request is refused for what no item can mend.
    let many: Vec<Value> = (0..101).map(|_| json!({})).collect();
    for (body, what) in [
        (json!({"evaluations": many}), "101 items"),
        (json!({"evaluations": {"resource": {}}}), "evaluations not an array"),
        (json!({"options": {"evaluations_semantic": "sometimes"}}), "an unknown semantic"),
        (json!({"evaluations": []}), "no items and no defaults"),
    ] {
        let reply = server.json(Method::POST, "/access/v1/evaluations", Some(body)).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{what}: {}", reply.body);
    }
}

#[tokio::test]
async fn a_user_may_rename_itself_but_not_give_itself_properties() {
    let server = TestServer::start().await;
    ok(&server, Method::POST, "/iam/users", json!({"id": "hal", "name": "Hal"})).await;
    let token =
        ok(&server, Method::POST, "/iam/tokens", json!({"id": "t-hal", "name": "Hal's", "userId": "hal"})).await;
    let hal = [("authorization", format!("Bearer {}", token["token"]["value"].as_str().unwrap()))];
    let rename = server.json_with(Method::PUT, "/iam/users/hal", Some(json!({"name": "Hal 9000"})), &hal).await;
    assert_eq!(rename.status, StatusCode::OK, "{}", rename.body);
    let promote = json!({"name": "Hal 9000", "properties": {"role": "admin"}});
    let reply = server.json_with(Method::PUT, "/iam/users/hal", Some(promote.clone()), &hal).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.body);
    assert!(reply.body["message"].as_str().unwrap().contains("iam:userProperties:update"), "{}", reply.body);
    // The owner may; and a bad key is refused with its name.
    let promoted = ok(&server, Method::PUT, "/iam/users/hal", promote).await;
    assert_eq!(promoted["user"]["properties"], json!({"role": "admin"}));
    let reply =
        server.json(Method::PUT, "/iam/users/hal", Some(json!({"name": "Hal", "properties": {"a b": "c"}}))).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
    // A user without properties shows none, as Chef's users do.
    let admin = server.json(Method::GET, "/iam/users/admin", None).await.body;
    assert_eq!(admin, json!({"user": {"id": "admin", "name": "Administrator"}}));
}

#[tokio::test]
async fn search_pages_carry_their_limit_and_refuse_changed_requests() {
    let server = TestServer::start().await;
    load_fixture(&server).await;
    let search = |page: Value| json!({"subject": {"type": "user"}, "action": {"name": "read"}, "resource": {"type": "record", "id": "record-1"}, "page": page});
    let first = ok(&server, Method::POST, "/access/v1/search/subject", search(json!({"limit": 2}))).await;
    assert_eq!(first["results"], json!([{"type": "user", "id": "admin"}, {"type": "user", "id": "alice"}]));
    let token = first["page"]["next_token"].as_str().unwrap().to_owned();
    assert!(!token.is_empty());
    // Without a limit, the token's.
    let second = ok(&server, Method::POST, "/access/v1/search/subject", search(json!({"token": token}))).await;
    assert_eq!(second, json!({"page": {"next_token": "", "count": 1}, "results": [{"type": "user", "id": "bob"}]}));
    let same =
        ok(&server, Method::POST, "/access/v1/search/subject", search(json!({"token": token, "limit": 2}))).await;
    assert_eq!(same, second);
    let mut forged = token.clone().into_bytes();
    forged[10] = if forged[10] == b'A' { b'B' } else { b'A' };
    let mut changed = search(json!({"token": token}));
    changed["resource"]["id"] = json!("record-2");
    let mut with_context = search(json!({"token": token}));
    with_context["context"] = json!({"ip": "10.0.0.1"});
    for (body, what) in [
        (search(json!({"token": token, "limit": 3})), "another limit"),
        (changed, "another resource"),
        (with_context, "another context"),
        (search(json!({"token": String::from_utf8(forged).unwrap()})), "a forged token"),
        (search(json!({"limit": 0})), "limit 0"),
        (search(json!({"limit": 1001})), "limit 1001"),
    ] {
        let reply = server.json(Method::POST, "/access/v1/search/subject", Some(body)).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{what}: {}", reply.body);
    }
}

/// 10,000 statements: every search finds exactly what deciding each candidate one by one
/// allows, page after page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn searches_over_ten_thousand_statements_find_what_one_by_one_decisions_allow() {
    let server = TestServer::start().await;
    const USERS: usize = 40;
    const DOCS: usize = 150;
    const VERBS: [&str; 5] = ["read", "write", "share", "delete", "print"];
    for u in 0..USERS {
        let properties = if u.is_multiple_of(3) { json!({"clearance": "high"}) } else { json!({}) };
        ok(&server, Method::POST, "/iam/users", json!({"id": format!("u{u}"), "name": "u", "properties": properties}))
            .await;
    }
    for p in 0..100usize {
        let statements: Vec<Value> = (0..100usize)
            .map(|s| {
                let n = p * 100 + s;
                let mut statement = json!({
                    "effect": if n.is_multiple_of(17) { "DENY" } else { "ALLOW" },
                    "actions": [format!("authzen:doc:{}", VERBS[n % VERBS.len()])],
                    "resources": [format!("authzen:doc:d{}", (n * 7) % DOCS)],
                    "tenants": ["*"],
                });
                if n.is_multiple_of(5) {
                    statement["conditionsAll"] = json!([{"all": {"stringEquals": {"subject.clearance": "high"}}}]);
                }
                statement
            })
            .collect();
        let members: Vec<String> = if p.is_multiple_of(10) {
            vec!["user:local:*".into()]
        } else {
            (0..3).map(|k| format!("user:local:u{}", (p * 3 + k) % USERS)).collect()
        };
        ok(
            &server,
            Method::POST,
            "/iam/policies",
            json!({"id": format!("p{p}"), "name": format!("p{p}"), "members": members, "statements": statements}),
        )
        .await;
    }
    let user = |u: usize| json!({"type": "user", "id": format!("u{u}")});
    let doc = |d: usize| json!({"type": "doc", "id": format!("d{d}")});
    // Every page of a search, with a small limit.
    async fn all_pages(server: &TestServer, path: &str, body: Value) -> Vec<Value> {
        let mut results = Vec::new();
        let mut body = body;
        body["page"] = json!({"limit": 7});
        loop {
            let answer = ok(server, Method::POST, path, body.clone()).await;
            results.extend(answer["results"].as_array().unwrap().iter().cloned());
            let token = answer["page"]["next_token"].as_str().unwrap().to_owned();
            if token.is_empty() {
                return results;
            }
            body["page"] = json!({"token": token});
        }
    }
    for (verb, d) in [("read", 0), ("write", 7), ("share", 14), ("print", 149)] {
        let found = all_pages(
            &server,
            "/access/v1/search/subject",
            json!({"subject": {"type": "user"}, "action": {"name": verb}, "resource": doc(d)}),
        )
        .await;
        let mut expected = Vec::new();
        for u in 0..USERS {
            if decision(&server, question(user(u), verb, doc(d))).await {
                expected.push(user(u));
            }
        }
        expected.sort_by_key(|u| format!("user:local:{}", u["id"].as_str().unwrap()));
        let found: Vec<Value> = found.into_iter().filter(|u| u["id"] != "admin").collect();
        assert_eq!(found, expected, "subjects allowed to {verb} d{d}");
    }
    for (u, verb) in [(0, "read"), (4, "write"), (9, "delete")] {
        let found = all_pages(
            &server,
            "/access/v1/search/resource",
            json!({"subject": user(u), "action": {"name": verb}, "resource": {"type": "doc"}}),
        )
        .await;
        let mut expected = Vec::new();
        for d in 0..DOCS {
            if decision(&server, question(user(u), verb, doc(d))).await {
                expected.push(doc(d));
            }
        }
        expected.sort_by_key(|d| format!("authzen:doc:{}", d["id"].as_str().unwrap()));
        assert_eq!(found, expected, "what u{u} may {verb}");
    }
    for (u, d) in [(0, 0), (3, 21), (12, 98)] {
        let found =
            all_pages(&server, "/access/v1/search/action", json!({"subject": user(u), "resource": doc(d)})).await;
        let mut expected = Vec::new();
        for verb in VERBS {
            if decision(&server, question(user(u), verb, doc(d))).await {
                expected.push(json!({"name": verb}));
            }
        }
        expected.sort_by_key(|a| format!("authzen:doc:{}", a["name"].as_str().unwrap()));
        assert_eq!(found, expected, "what u{u} may do on d{d}");
    }
}
