//! Every method of the admin and organization surfaces, over gRPC, gRPC-web (binary and
//! text) and JSON: the same request from the same starting state gives the same answer, or
//! the same error code, message and `ErrorInfo` reason, with the same `etag` and consistency
//! token, on each protocol. Each case is written once, in its REST form; the gRPC request is
//! derived from it (`Rest::message`). Each protocol gets a fresh server, so sequences,
//! positions and states line up.

use http::{Method, StatusCode};
use prost::Message;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tonic::Code;

use crate::support::{Outcome, PROTOCOLS, Protocol, Rest, Rpc, TestServer, normalize, rpc};

/// An organization id that names nothing.
pub const UNKNOWN: &str = "00000000-0000-4000-8000-000000000000";

/// A setup step over JSON; `{org}` stands for the organization created first.
pub type Step = (Method, &'static str, Option<&'static str>);

const ADD_ORG_IAM: Step =
    (Method::POST, "/admin/v1/orgs/{org}/policies/orgiam", Some(r#"{"userLoginMustBeDomain":true}"#));
const ADD_DOMAIN: Step = (
    Method::POST,
    "/admin/v1/orgs/{org}/policies/domain",
    Some(r#"{"userLoginMustBeDomain":false,"validateOrgDomains":true,"smtpSenderAddressMatchesInstanceDomain":false}"#),
);
const SECOND_ORG: Step = (Method::POST, "/organizations", Some(r#"{"name":"globex"}"#));

/// What one protocol answered, in the terms every protocol shares.
#[derive(Debug, PartialEq)]
struct Answer {
    /// The answer, normalized; or the error's code, message and `ErrorInfo` reason.
    outcome: Value,
    etag: Option<String>,
    token: Option<String>,
}

/// Runs one call on every protocol from the same state and returns the common answer.
pub async fn parity<Req, Resp>(setup: &[Step], rest: impl Fn(&str) -> Rest<Req, Resp>, expect: Code) -> Value
where
    Req: Message + DeserializeOwned + Send + Sync + 'static,
    Resp: Message + Default + Serialize + Send + Sync + 'static,
{
    let steps = async |server: &TestServer, org: &str| {
        for (method, path, body) in setup {
            let body = body.map(|b| serde_json::from_str(b).unwrap());
            let reply = server.json(method.clone(), &path.replace("{org}", org), body).await;
            assert!(reply.status.is_success(), "setup {method} {path}: {}", reply.body);
        }
        Vec::new()
    };
    parity_with(steps, |org, _| rest(org), expect).await
}

/// `parity` for a state that names objects by the ids the server made: `setup` runs on
/// each fresh server, after the organization `acme`, and answers the ids the request is
/// built from. In the common answer (and in error messages) those ids read `<id0>`,
/// `<id1>`, …, in `setup`'s order, so an answer shows which objects it names; other ids
/// read `<uuid>`.
pub async fn parity_with<Req, Resp>(
    setup: impl AsyncFn(&TestServer, &str) -> Vec<String>,
    rest: impl Fn(&str, &[String]) -> Rest<Req, Resp>,
    expect: Code,
) -> Value
where
    Req: Message + DeserializeOwned + Send + Sync + 'static,
    Resp: Message + Default + Serialize + Send + Sync + 'static,
{
    let mut answers: Vec<(Protocol, Answer)> = Vec::new();
    for protocol in PROTOCOLS.into_iter().chain([Protocol::GrpcWebText]) {
        let server = TestServer::start().await;
        let org = server.create_org("acme").await;
        let ids = setup(&server, &org).await;
        let rest = rest(&org, &ids);
        let (outcome, headers) = server.exchange(protocol, &rest).await;
        assert_eq!(outcome.code(), expect, "{protocol:?} {} {}: {outcome:?}", rest.method, rest.path());
        let outcome = match outcome {
            Outcome::Ok(value) => normalize(&name_ids(&value, &ids)),
            Outcome::Err { code, message, reason } => {
                assert!(reason.is_some(), "{protocol:?}: an error without a reason: {message}");
                let message = ids.iter().enumerate().fold(message, |m, (i, id)| m.replace(id, &format!("<id{i}>")));
                json!({"code": code as i32, "message": mask_ids(&message), "reason": reason})
            }
        };
        let header = |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_owned());
        let token = header(iamd::CONSISTENCY_TOKEN);
        if expect == Code::Ok && rest.method != Method::GET {
            assert!(
                token.is_some(),
                "{protocol:?} {} {}: a write without a consistency token",
                rest.method,
                rest.path()
            );
        }
        answers.push((protocol, Answer { outcome, etag: header("etag"), token }));
        server.stop().await;
    }
    let (first_protocol, first) = &answers[0];
    for (protocol, answer) in &answers[1..] {
        assert_eq!(answer, first, "{protocol:?} answered differently from {first_protocol:?}");
    }
    answers.swap_remove(0).1.outcome
}

/// `value` with every string that is one of `ids` written `<id{i}>`.
fn name_ids(value: &Value, ids: &[String]) -> Value {
    match value {
        Value::String(s) => match ids.iter().position(|id| id == s) {
            Some(i) => json!(format!("<id{i}>")),
            None => value.clone(),
        },
        Value::Array(items) => Value::Array(items.iter().map(|v| name_ids(v, ids)).collect()),
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), name_ids(v, ids))).collect()),
        other => other.clone(),
    }
}

fn mask_ids(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some((i, candidate)) = rest
        .char_indices()
        .find_map(|(i, _)| rest.get(i..i + 36).filter(|c| uuid::Uuid::parse_str(c).is_ok()).map(|c| (i, c)))
    {
        out.push_str(&rest[..i]);
        out.push_str("<uuid>");
        rest = &rest[i + candidate.len()..];
    }
    out.push_str(rest);
    out
}

fn details(sequence: &str) -> Value {
    json!({"sequence": sequence, "creationDate": "<time>", "changeDate": "<time>", "resourceOwner": "<uuid>"})
}

// ---- admin: instance level ----

#[tokio::test]
async fn get_org_iam_policy() {
    let answer =
        parity(&[], |_| Rest::new(rpc::GET_ORG_IAM_POLICY, Method::GET, "/admin/v1/policies/orgiam"), Code::Ok).await;
    assert_eq!(answer, json!({"policy": {"details": details("1"), "userLoginMustBeDomain": true, "isDefault": true}}));
}

#[tokio::test]
async fn update_org_iam_policy() {
    let update = |value: bool| {
        move |_: &str| {
            Rest::new(rpc::UPDATE_ORG_IAM_POLICY, Method::PUT, "/admin/v1/policies/orgiam")
                .body(json!({"userLoginMustBeDomain": value}))
        }
    };
    assert_eq!(parity(&[], update(false), Code::Ok).await, json!({"details": details("2")}));
    // The default starts with every setting true: asking for that again changes nothing.
    let answer = parity(&[], update(true), Code::FailedPrecondition).await;
    assert_eq!(answer["message"], "the domain policy already has these settings");
}

#[tokio::test]
async fn get_domain_policy() {
    let answer =
        parity(&[], |_| Rest::new(rpc::GET_DOMAIN_POLICY, Method::GET, "/admin/v1/policies/domain"), Code::Ok).await;
    assert_eq!(
        answer,
        json!({"policy": {"details": details("1"), "userLoginMustBeDomain": true, "isDefault": true,
            "validateOrgDomains": true, "smtpSenderAddressMatchesInstanceDomain": true}})
    );
}

#[tokio::test]
async fn update_domain_policy() {
    let update = |body: Value| {
        move |_: &str| Rest::new(rpc::UPDATE_DOMAIN_POLICY, Method::PUT, "/admin/v1/policies/domain").body(body.clone())
    };
    let answer = parity(
        &[],
        update(json!({"userLoginMustBeDomain": false, "validateOrgDomains": true, "smtpSenderAddressMatchesInstanceDomain": false})),
        Code::Ok,
    )
    .await;
    assert_eq!(answer, json!({"details": details("2")}));
    parity(
        &[],
        update(json!({"userLoginMustBeDomain": true, "validateOrgDomains": true, "smtpSenderAddressMatchesInstanceDomain": true})),
        Code::FailedPrecondition,
    )
    .await;
}

// ---- admin: organization level, deprecated Org IAM view ----

fn org_iam<Req, Resp>(rpc: Rpc<Req, Resp>, method: Method, org: &str) -> Rest<Req, Resp> {
    Rest::new(rpc, method, "/admin/v1/orgs/{org_id}/policies/orgiam").bind("org_id", org)
}

#[tokio::test]
async fn get_custom_org_iam_policy() {
    let get = |org: &str| org_iam(rpc::GET_CUSTOM_ORG_IAM_POLICY, Method::GET, org);
    // Without its own policy the organization reads the default.
    let answer = parity(&[], get, Code::Ok).await;
    assert_eq!(
        answer,
        json!({"policy": {"details": details("1"), "userLoginMustBeDomain": true, "isDefault": true}, "isDefault": true})
    );
    // With its own: `isDefault` is false, so (zero values omitted) absent on this surface.
    let answer = parity(&[ADD_DOMAIN], get, Code::Ok).await;
    assert_eq!(answer, json!({"policy": {"details": details("1")}}));

    let answer = parity(&[], |_| get(UNKNOWN), Code::NotFound).await;
    assert_eq!(answer["message"], "organization `<uuid>` does not exist");
}

#[tokio::test]
async fn add_custom_org_iam_policy() {
    let add = |org: &str| {
        org_iam(rpc::ADD_CUSTOM_ORG_IAM_POLICY, Method::POST, org).body(json!({"userLoginMustBeDomain": true}))
    };
    assert_eq!(parity(&[], add, Code::Ok).await, json!({"details": details("1")}));
    parity(&[ADD_ORG_IAM], add, Code::AlreadyExists).await;
    parity(&[], |_| add(UNKNOWN), Code::NotFound).await;
}

#[tokio::test]
async fn update_custom_org_iam_policy() {
    let update = |value: bool| {
        move |org: &str| {
            org_iam(rpc::UPDATE_CUSTOM_ORG_IAM_POLICY, Method::PUT, org).body(json!({"userLoginMustBeDomain": value}))
        }
    };
    assert_eq!(parity(&[ADD_ORG_IAM], update(false), Code::Ok).await, json!({"details": details("2")}));
    // No own policy yet.
    parity(&[], update(false), Code::NotFound).await;
    // The same values again.
    parity(&[ADD_ORG_IAM], update(true), Code::FailedPrecondition).await;
}

#[tokio::test]
async fn reset_custom_org_iam_policy_to_default() {
    let reset = |org: &str| org_iam(rpc::RESET_CUSTOM_ORG_IAM_POLICY, Method::DELETE, org);
    assert_eq!(parity(&[ADD_ORG_IAM], reset, Code::Ok).await, json!({"details": details("2")}));
    parity(&[], reset, Code::NotFound).await;
}

// ---- admin: organization level, domain policy ----

fn domain<Req, Resp>(rpc: Rpc<Req, Resp>, method: Method, org: &str) -> Rest<Req, Resp> {
    Rest::new(rpc, method, "/admin/v1/orgs/{org_id}/policies/domain").bind("org_id", org)
}

#[tokio::test]
async fn get_custom_domain_policy() {
    let get = |org: &str| domain(rpc::GET_CUSTOM_DOMAIN_POLICY, Method::GET, org);
    let answer = parity(&[ADD_DOMAIN], get, Code::Ok).await;
    assert_eq!(answer, json!({"policy": {"details": details("1"), "validateOrgDomains": true}}));
    let answer = parity(&[], get, Code::Ok).await;
    assert_eq!(answer["isDefault"], true);
    assert_eq!(answer["policy"]["isDefault"], true);
    parity(&[], |_| get(UNKNOWN), Code::NotFound).await;
}

#[tokio::test]
async fn add_custom_domain_policy() {
    let add = |org: &str| {
        domain(rpc::ADD_CUSTOM_DOMAIN_POLICY, Method::POST, org)
            .body(json!({"userLoginMustBeDomain": true, "validateOrgDomains": false}))
    };
    assert_eq!(parity(&[], add, Code::Ok).await, json!({"details": details("1")}));
    parity(&[ADD_DOMAIN], add, Code::AlreadyExists).await;
    parity(&[], |_| add(UNKNOWN), Code::NotFound).await;
}

#[tokio::test]
async fn update_custom_domain_policy() {
    let update = |org: &str| {
        domain(rpc::UPDATE_CUSTOM_DOMAIN_POLICY, Method::PUT, org).body(
            json!({"userLoginMustBeDomain": true, "validateOrgDomains": true, "smtpSenderAddressMatchesInstanceDomain": true}),
        )
    };
    assert_eq!(parity(&[ADD_DOMAIN], update, Code::Ok).await, json!({"details": details("2")}));
    parity(&[], update, Code::NotFound).await;
    // AddCustomOrgIAMPolicy forces the two newer settings on, so these values are no change.
    parity(&[ADD_ORG_IAM], update, Code::FailedPrecondition).await;
}

#[tokio::test]
async fn reset_custom_domain_policy_to_default() {
    let reset = |org: &str| domain(rpc::RESET_CUSTOM_DOMAIN_POLICY, Method::DELETE, org);
    assert_eq!(parity(&[ADD_DOMAIN], reset, Code::Ok).await, json!({"details": details("2")}));
    parity(&[], reset, Code::NotFound).await;
    parity(&[], |_| reset(UNKNOWN), Code::NotFound).await;
}

// ---- organizations ----

fn organization(name: &str, domain: &str) -> Value {
    json!({"id": "<uuid>", "name": name, "domain": domain, "createdAt": "<time>", "updatedAt": "<time>"})
}

#[tokio::test]
async fn create_organization() {
    let create = |name: &'static str| {
        move |_: &str| {
            Rest::new(rpc::CREATE_ORGANIZATION, Method::POST, "/organizations")
                .body(json!({"name": name, "domain": "globex.example"}))
                .success(StatusCode::CREATED)
                .select("organization")
        }
    };
    assert_eq!(parity(&[], create("globex"), Code::Ok).await, organization("globex", "globex.example"));
    let answer = parity(&[], create("acme"), Code::AlreadyExists).await;
    assert_eq!(answer["message"], "an organization named `acme` already exists");
    parity(&[], create("  "), Code::InvalidArgument).await;
}

#[tokio::test]
async fn list_organizations() {
    let list = |query: Vec<(&'static str, Value)>| {
        move |_: &str| {
            let rest = Rest::new(rpc::LIST_ORGANIZATIONS, Method::GET, "/organizations");
            query.iter().fold(rest, |rest, (field, value)| rest.query(field, value.clone()))
        }
    };
    let answer = parity(&[SECOND_ORG], list(vec![("limit", json!(1)), ("reverse", json!(true))]), Code::Ok).await;
    assert_eq!(answer["results"], json!([organization("globex", "")]));
    assert!(answer["nextPageToken"].is_string());
    let answer = parity(&[SECOND_ORG], list(vec![]), Code::Ok).await;
    // The last page has no `nextPageToken`, even though this surface emits zero values.
    assert_eq!(answer, json!({"results": [organization("acme", ""), organization("globex", "")]}));
    parity(&[], list(vec![("limit", json!(0))]), Code::InvalidArgument).await;
    parity(&[], list(vec![("pageToken", json!("forged"))]), Code::InvalidArgument).await;
}

fn one_organization<Req, Resp>(rpc: Rpc<Req, Resp>, method: Method, org: &str) -> Rest<Req, Resp> {
    Rest::new(rpc, method, "/organizations/{organization_id}").bind("organization_id", org)
}

#[tokio::test]
async fn get_organization() {
    let get = |org: &str| one_organization(rpc::GET_ORGANIZATION, Method::GET, org).select("organization");
    assert_eq!(parity(&[], get, Code::Ok).await, organization("acme", ""));
    parity(&[], |_| get(UNKNOWN), Code::NotFound).await;
}

#[tokio::test]
async fn update_organization() {
    let update = |body: Value| {
        move |org: &str| {
            one_organization(rpc::UPDATE_ORGANIZATION, Method::PATCH, org).body(body.clone()).select("organization")
        }
    };
    // Only the fields present change.
    let answer = parity(&[], update(json!({"domain": "acme.example"})), Code::Ok).await;
    assert_eq!(answer, organization("acme", "acme.example"));
    parity(&[SECOND_ORG], update(json!({"name": "globex"})), Code::AlreadyExists).await;
    parity(&[], update(json!({"domain": "not a domain"})), Code::InvalidArgument).await;
    let unknown = update(json!({"name": "x"}));
    parity(&[], move |_| unknown(UNKNOWN), Code::NotFound).await;
}

#[tokio::test]
async fn delete_organization() {
    let delete =
        |org: &str| one_organization(rpc::DELETE_ORGANIZATION, Method::DELETE, org).success(StatusCode::NO_CONTENT);
    assert_eq!(parity(&[ADD_DOMAIN], delete, Code::Ok).await, json!({}));
    parity(&[], |_| delete(UNKNOWN), Code::NotFound).await;
}

#[test]
fn the_grpc_request_is_derived_from_the_rest_form() {
    use iamd::pb::iamd::accounts::v1 as accounts;
    use iamd::pb::iamd::history::v1 as history;
    let update = one_organization(rpc::UPDATE_ORGANIZATION, Method::PATCH, "o 1").body(json!({"domain": "d"}));
    assert_eq!(update.path(), "/organizations/o%201");
    assert_eq!(
        update.message(),
        accounts::UpdateOrganizationRequest { organization_id: "o 1".into(), name: None, domain: Some("d".into()) }
    );
    let list = Rest::new(rpc::LIST_EVENTS, Method::GET, "/v1/events")
        .query("objectType", json!("organization"))
        .query("afterPosition", json!(2))
        .query("limit", json!(0));
    assert_eq!(list.path(), "/v1/events?objectType=organization&afterPosition=2&limit=0");
    assert_eq!(
        list.message(),
        history::ListEventsRequest {
            object_type: "organization".into(),
            after_position: 2,
            limit: Some(0),
            ..Default::default()
        }
    );
    // A body of the whole message, with the path's field beside it.
    let add = domain(rpc::ADD_CUSTOM_DOMAIN_POLICY, Method::POST, "o1")
        .body(json!({"userLoginMustBeDomain": true, "smtpSenderAddressMatchesInstanceDomain": true}));
    assert_eq!(add.path(), "/admin/v1/orgs/o1/policies/domain");
    assert_eq!(
        add.message(),
        iamd::pb::iamd::admin::v1::AddCustomDomainPolicyRequest {
            org_id: "o1".into(),
            user_login_must_be_domain: true,
            validate_org_domains: false,
            smtp_sender_address_matches_instance_domain: true,
        }
    );
}
