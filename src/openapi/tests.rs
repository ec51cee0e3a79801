#![allow(clippy::unwrap_used, clippy::panic, reason = "a failing test panics")]

use std::collections::HashSet;

use serde_json::{Value, json};

use super::Document;
use crate::methods::MethodTable;
use crate::transcode::routes::RouteTable;

fn served() -> Value {
    let routes = RouteTable::from_methods(&MethodTable::served().unwrap()).unwrap();
    serde_json::from_slice(Document::new(&routes).as_bytes()).unwrap()
}

/// The document of the test services (echo), which use what the product's protos do not:
/// patterns, additional bindings, a body field, recursion.
fn echo() -> Value {
    let pool = prost_reflect::DescriptorPool::decode(crate::pb::TEST_FILE_DESCRIPTOR_SET).unwrap();
    let routes = RouteTable::from_methods(&MethodTable::from_pools(&[pool]).unwrap()).unwrap();
    serde_json::from_slice(Document::new(&routes).as_bytes()).unwrap()
}

fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let mut all = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            all.push((path.clone(), method.clone(), operation));
        }
    }
    all
}

/// Follows a `$ref` within the document.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(reference) => doc.pointer(reference.trim_start_matches('#')).unwrap(),
        None => schema,
    }
}

fn parameter<'a>(operation: &'a Value, name: &str) -> Option<&'a Value> {
    operation["parameters"].as_array()?.iter().find(|p| p["name"] == name)
}

#[test]
fn every_binding_is_an_operation_with_a_unique_id() {
    let doc = served();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    let routes = RouteTable::from_methods(&MethodTable::served().unwrap()).unwrap();
    let all = operations(&doc);
    assert_eq!(all.len(), routes.routes().len());
    let ids: HashSet<&str> = all.iter().map(|(_, _, op)| op["operationId"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), all.len(), "operation ids are unique");
    // Two packages have a PolicyService: those ids say which.
    assert!(ids.contains("iamd.iam.v2.PolicyService_CreatePolicy"));
    assert!(ids.contains("iamd.accounts.v1.PolicyService_CreatePolicy"));
    assert!(ids.contains("OrganizationService_CreateOrganization"));
}

#[test]
fn path_variables_go_by_their_json_names_and_verbs_stay_literal() {
    let doc = served();
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/admin/v1/orgs/{orgId}/policies/domain",
        "/organizations/{organizationId}",
        "/organizations/{organizationId}/iam-policies/{policyId}",
        "/v1/authz:check",
        "/iam/policies/{id}/members:add",
        "/.well-known/authzen-configuration",
    ] {
        assert!(paths.contains_key(path), "{path} is missing");
    }
    assert!(paths.keys().all(|p| !p.contains('_') || p.contains("policy_version")), "{:?}", paths.keys());
    let get = &doc["paths"]["/organizations/{organizationId}/iam-policies/{policyId}"]["get"];
    let org = parameter(get, "organizationId").unwrap();
    assert_eq!(org["in"], "path");
    assert_eq!(org["required"], true);
    assert_eq!(org["schema"]["type"], "string");
    assert!(get["x-iamd-permission"]["resource"].as_str().unwrap().contains("{organizationId}"));
    assert!(doc["paths"]["/v1/authz:check"]["post"].is_object());
}

#[test]
fn query_parameters_are_the_fields_path_and_body_leave() {
    let doc = served();
    let list = &doc["paths"]["/organizations"]["get"];
    let names: Vec<&str> = list["parameters"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["limit", "pageToken", "reverse"]);
    assert_eq!(parameter(list, "limit").unwrap()["in"], "query");
    // A whole body leaves nothing for the query.
    assert!(doc["paths"]["/organizations"]["post"]["parameters"].is_null());
    // 64-bit integers: read as a string or a number.
    let events = &doc["paths"]["/v1/events"]["get"];
    assert_eq!(parameter(events, "afterPosition").unwrap()["schema"]["type"], json!(["string", "integer"]));
}

#[test]
fn deprecated_methods_and_fields_say_so() {
    let doc = served();
    assert_eq!(doc["paths"]["/admin/v1/policies/orgiam"]["get"]["deprecated"], true);
    assert_eq!(doc["paths"]["/admin/v1/orgs/{orgId}/policies/orgiam"]["delete"]["deprecated"], true);
    assert!(doc["paths"]["/admin/v1/policies/domain"]["get"]["deprecated"].is_null());
    let answer = &doc["components"]["schemas"]["iamd.admin.v1.GetCustomDomainPolicyResponse"];
    assert_eq!(answer["properties"]["isDefault"]["deprecated"], true);
}

#[test]
fn open_methods_need_no_credential_and_guarded_ones_say_what() {
    let doc = served();
    let configuration = &doc["paths"]["/.well-known/authzen-configuration"]["get"];
    assert_eq!(configuration["security"], json!([]));
    assert!(configuration["responses"]["401"].is_null() && configuration["responses"]["403"].is_null());
    assert!(configuration["x-iamd-permission"].is_null());
    let get = &doc["paths"]["/organizations/{organizationId}"]["get"];
    assert!(get["security"].is_null(), "the global Bearer or AccessKey applies");
    assert_eq!(get["x-iamd-permission"]["action"], "accounts:organizations:get");
    assert!(get["responses"]["401"].is_object() && get["responses"]["403"].is_object());
    assert_eq!(doc["security"], json!([{ "Bearer": [] }, { "AccessKey": [] }]));
    assert_eq!(doc["components"]["securitySchemes"]["AccessKey"]["name"], "Authorization");
}

#[test]
fn success_statuses_come_from_the_method_option() {
    let doc = served();
    let create = &doc["paths"]["/organizations"]["post"]["responses"];
    let created = &create["201"]["content"]["application/json"]["schema"];
    assert_eq!(created["$ref"], "#/components/schemas/iamd.accounts.v1.Organization");
    assert!(create["200"].is_null());
    let delete = &doc["paths"]["/organizations/{organizationId}"]["delete"]["responses"];
    assert!(delete["204"].is_object() && delete["204"]["content"].is_null());
    let error = &delete["404"];
    assert_eq!(
        resolve(&doc, error)["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/google.rpc.Status"
    );
    assert!(delete["415"].is_null(), "no body, so no content type to refuse");
    assert!(doc["paths"]["/organizations"]["post"]["responses"]["415"].is_object());
}

#[test]
fn schemas_keep_each_surfaces_conventions() {
    let doc = served();
    let schemas = &doc["components"]["schemas"];
    // Accounts: zero values emitted (so required in answers), unknown fields refused.
    let organization = &schemas["iamd.accounts.v1.Organization"];
    assert_eq!(organization["required"], json!(["id", "name", "domain"]));
    assert_eq!(organization["properties"]["createdAt"]["format"], "date-time");
    assert_eq!(organization["properties"]["id"]["description"], "A UUID made by the server.");
    let page = &schemas["iamd.accounts.v1.ListOrganizationsResponse"];
    assert_eq!(page["required"], json!(["results"]), "nextPageToken is absent on the last page");
    let body = &doc["paths"]["/organizations"]["post"]["requestBody"]["content"]["application/json"]["schema"];
    assert_eq!(resolve(&doc, body)["additionalProperties"], false);
    // A path variable is not in the body too.
    let patch = &doc["paths"]["/organizations/{organizationId}"]["patch"]["requestBody"]["content"]["application/json"];
    assert!(patch["schema"]["properties"]["organizationId"].is_null());
    assert!(patch["schema"]["properties"]["name"].is_object());
    // Admin: zero values omitted, unknown fields ignored, uint64 as a string.
    let details = &schemas["iamd.admin.v1.ObjectDetails"];
    assert!(details["required"].is_null());
    assert_eq!(details["properties"]["sequence"]["type"], "string");
    assert!(schemas["iamd.admin.v1.UpdateDomainPolicyRequest-input"]["additionalProperties"].is_null());
    // IAM v2: enums by name; in answers only names, in requests numbers too.
    let statement = &schemas["iamd.iam.v2.Statement"];
    assert_eq!(statement["properties"]["effect"]["enum"], json!(["ALLOW", "DENY"]));
    assert_eq!(schemas["iamd.iam.v2.Statement-input"]["properties"]["effect"]["enum"], json!(["ALLOW", "DENY", 0, 1]));
    // Left out while empty, so never required.
    assert!(!statement["required"].as_array().unwrap().contains(&json!("conditionsAll")));
    assert!(statement["required"].as_array().unwrap().contains(&json!("actions")));
    let user = &schemas["iamd.iam.v2.User"];
    assert_eq!(user["properties"]["properties"]["additionalProperties"]["type"], "string");
    // The summary is the method's comment.
    assert_eq!(doc["paths"]["/organizations/{organizationId}"]["get"]["summary"], "Returns one organization.");
}

#[test]
fn authzen_has_its_own_conventions() {
    let doc = served();
    let schemas = &doc["components"]["schemas"];
    let options = &schemas["iamd.authzen.v1.EvaluationsOptions-input"];
    assert!(options["properties"]["evaluations_semantic"].is_object());
    assert!(options["additionalProperties"].is_null(), "unknown fields are ignored");
    let configuration = &schemas["iamd.authzen.v1.GetConfigurationResponse"];
    assert!(configuration["required"].as_array().unwrap().contains(&json!("policy_decision_point")));
    let evaluation = &doc["paths"]["/access/v1/evaluation"]["post"];
    assert_eq!(evaluation["requestBody"]["required"], true);
    assert!(evaluation["responses"]["415"].is_null(), "a wrong content type is 400");
    assert!(evaluation["responses"]["400"].is_object());
    assert!(evaluation["description"].as_str().unwrap().contains("application/json"));
}

#[test]
fn patterns_bindings_body_fields_and_recursion() {
    let doc = echo();
    let paths = doc["paths"].as_object().unwrap();
    let nested = &paths["/v1/{note.text}/books/{id}"]["get"];
    assert_eq!(parameter(nested, "note.text").unwrap()["schema"]["pattern"], "^shelves/[^/]+$");
    assert!(paths.contains_key("/v1/{id}:verb"));
    assert!(paths.contains_key("/v1/files/{id}"));
    // The main rule and its additional bindings.
    let ids: Vec<&str> = ["get", "patch"]
        .iter()
        .filter_map(|m| paths["/v1/echo/{id}"][*m]["operationId"].as_str())
        .chain(paths["/v1/echo"]["post"]["operationId"].as_str())
        .chain(paths["/v1/echo/{id}/note"]["put"]["operationId"].as_str())
        .collect();
    assert_eq!(ids, ["EchoService_Echo", "EchoService_Echo_4", "EchoService_Echo_2", "EchoService_Echo_3"]);
    // A body field is the body; the other fields may come from the query.
    let note = &paths["/v1/echo/{id}/note"]["put"];
    let body = &note["requestBody"]["content"]["application/json"]["schema"];
    assert_eq!(body["$ref"], "#/components/schemas/iamd.echo.v1.Note-input");
    assert!(parameter(note, "count").is_some() && parameter(note, "note.text").is_none());
    // Query parameters through a singular message, not into a message met already.
    let get = &paths["/v1/echo/{id}"]["get"];
    assert!(parameter(get, "note.stars").is_some());
    assert!(parameter(get, "note.inner.text").is_none());
    assert!(parameter(get, "labels").is_none() && parameter(get, "notes").is_none());
    assert_eq!(parameter(get, "tags").unwrap()["schema"]["type"], "array");
    assert_eq!(parameter(get, "wrapped").unwrap()["schema"]["type"], "integer");
    assert_eq!(parameter(get, "big").unwrap()["schema"]["type"], json!(["string", "integer"]));
    // A message that holds itself refers to its own component.
    let note = &doc["components"]["schemas"]["iamd.echo.v1.Note"];
    assert_eq!(note["properties"]["inner"]["$ref"], "#/components/schemas/iamd.echo.v1.Note");
    let request = &doc["components"]["schemas"]["iamd.echo.v1.EchoRequest"];
    assert_eq!(request["properties"]["wait"]["pattern"], "^-?[0-9]+(\\.[0-9]{1,9})?s$");
}
