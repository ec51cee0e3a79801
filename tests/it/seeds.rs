//! Replays the seed pages' requests over JSON in a scripted order — create an organization,
//! 002 with `true`, 000 with `false`, 001, then the reset — and checks that each answer has
//! the keys and JSON types of the seed's example.

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
