//! Replays the seed pages' requests over JSON in a scripted order — create an organization,
//! 002 with `true`, 000 with `false`, 001, then the reset; and 004's create, list, get,
//! patch and delete — and checks that each answer has the keys and JSON types of the seed's
//! example, and 004's statuses.

use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::TestServer;

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/seeds/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// The keys and JSON types of a value, recursively; arrays by their first element.
fn shape(value: &Value) -> Value {
    match value {
        Value::Null => json!("null"),
        Value::Bool(_) => json!("bool"),
        Value::Number(_) => json!("number"),
        Value::String(_) => json!("string"),
        Value::Array(items) => json!([items.first().map(shape)]),
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), shape(v))).collect()),
    }
}

#[tokio::test]
async fn seed_requests_answer_in_the_seed_shapes() {
    let server = TestServer::start().await;
    let org = server.create_org("seed-org").await;

    // 002: Add Custom Org IAM Policy.
    let reply = server
        .json(
            Method::POST,
            &format!("/admin/v1/orgs/{org}/policies/orgiam"),
            Some(fixture("002_add_custom_org_iam_policy.request.json")),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(shape(&reply.body), shape(&fixture("002_add_custom_org_iam_policy.response.json")));
    assert_eq!(reply.body["details"]["resourceOwner"], org.as_str());

    // 000: Update Custom Org IAM Policy, to `false`.
    let reply = server
        .json(
            Method::PUT,
            &format!("/admin/v1/orgs/{org}/policies/orgiam"),
            Some(json!({"userLoginMustBeDomain": false})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(shape(&reply.body), shape(&fixture("000_update_custom_org_iam_policy.response.json")));
    assert_eq!(reply.body["details"]["sequence"], "2");

    // 001: Get Org IAM Policy, the instance default, untouched by the organization's own.
    let reply = server.json(Method::GET, "/admin/v1/policies/orgiam", None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(shape(&reply.body), shape(&fixture("001_get_org_iam_policy.response.json")));
    assert_eq!(reply.body["policy"]["userLoginMustBeDomain"], true);
    assert_eq!(reply.body["policy"]["isDefault"], true);

    // The organization reads its own `false`: ZITADEL omits false values, so only details.
    let reply = server.json(Method::GET, &format!("/admin/v1/orgs/{org}/policies/orgiam"), None).await;
    assert_eq!(reply.body, json!({"policy": {"details": reply.body["policy"]["details"].clone()}}));

    // The reset: the organization falls back to the default.
    let reply = server.json(Method::DELETE, &format!("/admin/v1/orgs/{org}/policies/orgiam"), None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(shape(&reply.body), shape(&fixture("000_update_custom_org_iam_policy.response.json")));
    assert_eq!(reply.body["details"]["sequence"], "3");
    let reply = server.json(Method::GET, &format!("/admin/v1/orgs/{org}/policies/orgiam"), None).await;
    assert_eq!(reply.body["policy"]["isDefault"], true);
    assert_eq!(reply.body["isDefault"], true);
    assert_eq!(reply.body["policy"]["userLoginMustBeDomain"], true);
}

/// The schema's free keys (a condition's operator and context key) spelled as the seed's
/// example spells them, so that only keys the schema fixes are compared.
fn with_schema_keys(value: &Value) -> Value {
    let mut value = value.clone();
    let conditions = value["definitions"]
        .as_array_mut()
        .into_iter()
        .flatten()
        .flat_map(|d| d["conditionsAll"].as_array_mut().map(|c| c.iter_mut()).into_iter().flatten());
    for condition in conditions {
        for tests in condition.as_object_mut().unwrap().values_mut() {
            let free: serde_json::Map<String, Value> = tests
                .as_object()
                .unwrap()
                .values()
                .map(|keys| {
                    let inner = keys.as_object().unwrap().values().next().cloned().unwrap();
                    ("ANY_ADDITIONAL_PROPERTY".to_owned(), json!({"ANY_ADDITIONAL_PROPERTY": inner}))
                })
                .collect();
            *tests = Value::Object(free);
        }
    }
    value
}

/// Seed 004's create body as its curl example sends it, with the placeholders filled in as
/// the issue says: a real resource, group and operator.
fn filled_create_body() -> Value {
    let mut body = fixture("004_create_policy.request.json");
    body["definitions"][0]["resources"] = json!(["/workspaces/*/channels"]);
    body["definitions"][0]["conditionsAll"] = json!([{"any": {"stringEquals": {"request.channel": "sms"}}}]);
    body["metadata"]["groups"] = json!(["support"]);
    body
}

#[tokio::test]
async fn seed_004_answers_in_the_seed_shapes_and_statuses() {
    let server = TestServer::start().await;
    let org = server.create_org("seed-org").await;
    let policies = format!("/organizations/{org}/iam-policies");
    let policy_shape = shape(&fixture("004_policy.response.json"));

    // The placeholders themselves are refused, naming the field.
    let verbatim = fixture("004_create_policy.request.json");
    let reply = server.json(Method::POST, &policies, Some(verbatim.clone())).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
    assert_eq!(reply.body["details"][1]["fieldViolations"][0]["field"], "definitions[0].resources[0]");
    assert!(reply.body["message"].as_str().unwrap().contains("definitions[0].resources[0]"), "{}", reply.body);
    let mut placeholder_operator = filled_create_body();
    placeholder_operator["definitions"][0]["conditionsAll"] = verbatim["definitions"][0]["conditionsAll"].clone();
    let reply = server.json(Method::POST, &policies, Some(placeholder_operator)).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
    assert_eq!(
        reply.body["details"][1]["fieldViolations"][0]["field"],
        "definitions[0].conditionsAll[0].any.ANY_ADDITIONAL_PROPERTY"
    );
    assert!(reply.body["message"].as_str().unwrap().contains("`ANY_ADDITIONAL_PROPERTY` is not an operator"));
    let mut null_group = filled_create_body();
    null_group["metadata"]["groups"] = json!([null]);
    let reply = server.json(Method::POST, &policies, Some(null_group)).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
    assert_eq!(reply.body["details"][1]["fieldViolations"][0]["field"], "metadata.groups[0]");

    // Create: 201 and the whole object.
    let reply = server.json(Method::POST, &policies, Some(filled_create_body())).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(shape(&with_schema_keys(&reply.body)), policy_shape);
    let created = reply.body;
    assert_eq!(created["type"], "organization");
    assert_eq!(created["scope"], "organization");
    assert_eq!(created["definitions"], filled_create_body()["definitions"]);
    assert_eq!(created["metadata"], json!({"clouds": ["platform"], "apps": ["inbox"], "groups": ["support"]}));
    let id = created["id"].as_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");

    // List: the seed's page; newest first, the custom policy leads. In creation order the
    // managed policies come first, and the last page has no token.
    let reply = server.json(Method::GET, &format!("{policies}?limit=1&reverse=true"), None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let mut page = reply.body.clone();
    page["results"][0] = with_schema_keys(&page["results"][0]);
    assert_eq!(shape(&page), shape(&fixture("004_list_policies.response.json")));
    assert_eq!(reply.body["results"][0], created);
    let reply = server.json(Method::GET, &format!("{policies}?limit=2"), None).await;
    assert_eq!(reply.body["results"][0]["type"], "managed");
    let next = reply.body["nextPageToken"].as_str().unwrap();
    let reply = server.json(Method::GET, &format!("{policies}?limit=2&pageToken={next}"), None).await;
    assert_eq!(reply.body["results"], json!([created]));
    assert!(reply.body.get("nextPageToken").is_none(), "absent on the last page: {}", reply.body);

    // Get: 200 and the same object.
    let reply = server.json(Method::GET, &format!("{policies}/{id}"), None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body, created);

    // Patch with the seed's body: its placeholder is refused; filled in, only the
    // definitions change.
    let patch = fixture("004_update_policy.request.json");
    let reply = server.json(Method::PATCH, &format!("{policies}/{id}"), Some(patch)).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
    let definitions = json!([{"effect": "deny", "resources": ["/workspaces/**"], "actions": ["delete"],
        "conditionsAll": [{"any": {"ipAddress": {"source.ip": "10.0.0.0/8"}}}]}]);
    let reply =
        server.json(Method::PATCH, &format!("{policies}/{id}"), Some(json!({"definitions": definitions}))).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(shape(&with_schema_keys(&reply.body)), policy_shape);
    assert_eq!(reply.body["definitions"], definitions);
    assert_eq!((&reply.body["name"], &reply.body["metadata"]), (&created["name"], &created["metadata"]));
    assert_eq!(reply.body["createdAt"], created["createdAt"]);
    assert_ne!(reply.body["updatedAt"], created["updatedAt"]);

    // Delete: 204, no body; then it is gone.
    let reply = server.json(Method::DELETE, &format!("{policies}/{id}"), None).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(reply.body, json!({}));
    assert!(reply.headers.get("content-type").is_none(), "a 204 has no body type");
    let reply = server.json(Method::GET, &format!("{policies}/{id}"), None).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.body);
}
