//! Every method of the admin and organization surfaces, over gRPC, gRPC-web and JSON: the
//! same request from the same starting state gives the same answer and the same error code
//! on each protocol. Each protocol gets a fresh server, so sequences and states line up.

use http::{Method, StatusCode};
use iamd::pb::iamd::accounts::v1 as accounts;
use iamd::pb::iamd::admin::v1 as admin;
use prost::Message;
use serde::Serialize;
use serde_json::{Value, json};
use tonic::Code;

use crate::support::{Outcome, PROTOCOLS, Protocol, Rest, TestServer, normalize};

/// An organization id that names nothing.
const UNKNOWN: &str = "00000000-0000-4000-8000-000000000000";

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

/// Runs one call on every protocol from the same state and returns the common answer.
pub async fn parity<Req, Resp>(
    setup: &[Step],
    rest: impl Fn(&str) -> Rest,
    request: impl Fn(&str) -> Req,
    expect: Code,
) -> Value
where
    Req: Message + Send + Sync + 'static,
    Resp: Message + Default + Serialize + Send + Sync + 'static,
{
    let mut answers: Vec<(Protocol, Value)> = Vec::new();
    for protocol in PROTOCOLS.into_iter().chain([Protocol::GrpcWebText]) {
        let server = TestServer::start().await;
        let org = server.create_org("acme").await;
        for (method, path, body) in setup {
            let body = body.map(|b| serde_json::from_str(b).unwrap());
            let reply = server.json(method.clone(), &path.replace("{org}", &org), body).await;
            assert!(reply.status.is_success(), "setup {method} {path}: {}", reply.body);
        }
        let rest = rest(&org);
        let outcome = server.call::<Req, Resp>(protocol, &rest, request(&org)).await;
        assert_eq!(outcome.code(), expect, "{protocol:?} {} {}: {outcome:?}", rest.method, rest.path);
        let answer = match outcome {
            Outcome::Ok(value) => normalize(&value),
            Outcome::Err { code, message } => json!({"code": code as i32, "message": mask_ids(&message)}),
        };
        answers.push((protocol, answer));
        server.stop().await;
    }
    let (first_protocol, first) = &answers[0];
    for (protocol, answer) in &answers[1..] {
        assert_eq!(answer, first, "{protocol:?} answered differently from {first_protocol:?}");
    }
    first.clone()
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
    let answer = parity::<_, admin::GetOrgIamPolicyResponse>(
        &[],
        |_| Rest::new("/iamd.admin.v1.AdminService/GetOrgIAMPolicy", Method::GET, "/admin/v1/policies/orgiam"),
        |_| admin::GetOrgIamPolicyRequest {},
        Code::Ok,
    )
    .await;
    assert_eq!(answer, json!({"policy": {"details": details("1"), "userLoginMustBeDomain": true, "isDefault": true}}));
}

#[tokio::test]
async fn update_org_iam_policy() {
    let rest = |_: &str| {
        Rest::new("/iamd.admin.v1.AdminService/UpdateOrgIAMPolicy", Method::PUT, "/admin/v1/policies/orgiam")
            .body(json!({"userLoginMustBeDomain": false}))
    };
    let answer = parity::<_, admin::UpdateOrgIamPolicyResponse>(
        &[],
        rest,
        |_| admin::UpdateOrgIamPolicyRequest { user_login_must_be_domain: false },
        Code::Ok,
    )
    .await;
    assert_eq!(answer, json!({"details": details("2")}));

    // The default starts with every setting true: asking for that again changes nothing.
    let same = |_: &str| {
        Rest::new("/iamd.admin.v1.AdminService/UpdateOrgIAMPolicy", Method::PUT, "/admin/v1/policies/orgiam")
            .body(json!({"userLoginMustBeDomain": true}))
    };
    let answer = parity::<_, admin::UpdateOrgIamPolicyResponse>(
        &[],
        same,
        |_| admin::UpdateOrgIamPolicyRequest { user_login_must_be_domain: true },
        Code::FailedPrecondition,
    )
    .await;
    assert_eq!(answer["message"], "the domain policy already has these settings");
}

#[tokio::test]
async fn get_domain_policy() {
    let answer = parity::<_, admin::GetDomainPolicyResponse>(
        &[],
        |_| Rest::new("/iamd.admin.v1.AdminService/GetDomainPolicy", Method::GET, "/admin/v1/policies/domain"),
        |_| admin::GetDomainPolicyRequest {},
        Code::Ok,
    )
    .await;
    assert_eq!(
        answer,
        json!({"policy": {"details": details("1"), "userLoginMustBeDomain": true, "isDefault": true,
            "validateOrgDomains": true, "smtpSenderAddressMatchesInstanceDomain": true}})
    );
}

#[tokio::test]
async fn update_domain_policy() {
    let body = json!({"userLoginMustBeDomain": false, "validateOrgDomains": true, "smtpSenderAddressMatchesInstanceDomain": false});
    let answer = parity::<_, admin::UpdateDomainPolicyResponse>(
        &[],
        |_| {
            Rest::new("/iamd.admin.v1.AdminService/UpdateDomainPolicy", Method::PUT, "/admin/v1/policies/domain")
                .body(body.clone())
        },
        |_| admin::UpdateDomainPolicyRequest {
            user_login_must_be_domain: false,
            validate_org_domains: true,
            smtp_sender_address_matches_instance_domain: false,
        },
        Code::Ok,
    )
    .await;
    assert_eq!(answer, json!({"details": details("2")}));

    let all = json!({"userLoginMustBeDomain": true, "validateOrgDomains": true, "smtpSenderAddressMatchesInstanceDomain": true});
    parity::<_, admin::UpdateDomainPolicyResponse>(
        &[],
        |_| {
            Rest::new("/iamd.admin.v1.AdminService/UpdateDomainPolicy", Method::PUT, "/admin/v1/policies/domain")
                .body(all.clone())
        },
        |_| admin::UpdateDomainPolicyRequest {
            user_login_must_be_domain: true,
            validate_org_domains: true,
            smtp_sender_address_matches_instance_domain: true,
        },
        Code::FailedPrecondition,
    )
    .await;
}

// ---- admin: organization level, deprecated Org IAM view ----

fn org_iam(org: &str) -> String {
    format!("/admin/v1/orgs/{org}/policies/orgiam")
}

#[tokio::test]
async fn get_custom_org_iam_policy() {
    let rest = |org: &str| Rest::new("/iamd.admin.v1.AdminService/GetCustomOrgIAMPolicy", Method::GET, org_iam(org));
    let request = |org: &str| admin::GetCustomOrgIamPolicyRequest { org_id: org.into() };
    // Without its own policy the organization reads the default.
    let answer = parity::<_, admin::GetCustomOrgIamPolicyResponse>(&[], rest, request, Code::Ok).await;
    assert_eq!(
        answer,
        json!({"policy": {"details": details("1"), "userLoginMustBeDomain": true, "isDefault": true}, "isDefault": true})
    );
    // With its own: `isDefault` is false, so (zero values omitted) absent on this surface.
    let answer = parity::<_, admin::GetCustomOrgIamPolicyResponse>(&[ADD_DOMAIN], rest, request, Code::Ok).await;
    assert_eq!(answer, json!({"policy": {"details": details("1")}}));

    let unknown =
        |_: &str| Rest::new("/iamd.admin.v1.AdminService/GetCustomOrgIAMPolicy", Method::GET, org_iam(UNKNOWN));
    let answer = parity::<_, admin::GetCustomOrgIamPolicyResponse>(
        &[],
        unknown,
        |_| admin::GetCustomOrgIamPolicyRequest { org_id: UNKNOWN.into() },
        Code::NotFound,
    )
    .await;
    assert_eq!(answer["message"], "organization `<uuid>` does not exist");
}

#[tokio::test]
async fn add_custom_org_iam_policy() {
    let rest = |org: &str| {
        Rest::new("/iamd.admin.v1.AdminService/AddCustomOrgIAMPolicy", Method::POST, org_iam(org))
            .body(json!({"userLoginMustBeDomain": true}))
    };
    let request =
        |org: &str| admin::AddCustomOrgIamPolicyRequest { org_id: org.into(), user_login_must_be_domain: true };
    assert_eq!(
        parity::<_, admin::AddCustomOrgIamPolicyResponse>(&[], rest, request, Code::Ok).await,
        json!({"details": details("1")})
    );
    parity::<_, admin::AddCustomOrgIamPolicyResponse>(&[ADD_ORG_IAM], rest, request, Code::AlreadyExists).await;
    parity::<_, admin::AddCustomOrgIamPolicyResponse>(&[], |_| rest(UNKNOWN), |_| request(UNKNOWN), Code::NotFound)
        .await;
}

#[tokio::test]
async fn update_custom_org_iam_policy() {
    let rest = |value: bool| {
        move |org: &str| {
            Rest::new("/iamd.admin.v1.AdminService/UpdateCustomOrgIAMPolicy", Method::PUT, org_iam(org))
                .body(json!({"userLoginMustBeDomain": value}))
        }
    };
    let request = |value: bool| {
        move |org: &str| admin::UpdateCustomOrgIamPolicyRequest { org_id: org.into(), user_login_must_be_domain: value }
    };
    let answer =
        parity::<_, admin::UpdateCustomOrgIamPolicyResponse>(&[ADD_ORG_IAM], rest(false), request(false), Code::Ok)
            .await;
    assert_eq!(answer, json!({"details": details("2")}));
    // No own policy yet.
    parity::<_, admin::UpdateCustomOrgIamPolicyResponse>(&[], rest(false), request(false), Code::NotFound).await;
    // The same values again.
    parity::<_, admin::UpdateCustomOrgIamPolicyResponse>(
        &[ADD_ORG_IAM],
        rest(true),
        request(true),
        Code::FailedPrecondition,
    )
    .await;
}

#[tokio::test]
async fn reset_custom_org_iam_policy_to_default() {
    let rest = |org: &str| {
        Rest::new("/iamd.admin.v1.AdminService/ResetCustomOrgIAMPolicyToDefault", Method::DELETE, org_iam(org))
    };
    let request = |org: &str| admin::ResetCustomOrgIamPolicyToDefaultRequest { org_id: org.into() };
    let answer =
        parity::<_, admin::ResetCustomOrgIamPolicyToDefaultResponse>(&[ADD_ORG_IAM], rest, request, Code::Ok).await;
    assert_eq!(answer, json!({"details": details("2")}));
    parity::<_, admin::ResetCustomOrgIamPolicyToDefaultResponse>(&[], rest, request, Code::NotFound).await;
}

// ---- admin: organization level, domain policy ----

fn domain(org: &str) -> String {
    format!("/admin/v1/orgs/{org}/policies/domain")
}

#[tokio::test]
async fn get_custom_domain_policy() {
    let rest = |org: &str| Rest::new("/iamd.admin.v1.AdminService/GetCustomDomainPolicy", Method::GET, domain(org));
    let request = |org: &str| admin::GetCustomDomainPolicyRequest { org_id: org.into() };
    let answer = parity::<_, admin::GetCustomDomainPolicyResponse>(&[ADD_DOMAIN], rest, request, Code::Ok).await;
    assert_eq!(answer, json!({"policy": {"details": details("1"), "validateOrgDomains": true}}));
    let answer = parity::<_, admin::GetCustomDomainPolicyResponse>(&[], rest, request, Code::Ok).await;
    assert_eq!(answer["isDefault"], true);
    assert_eq!(answer["policy"]["isDefault"], true);
    parity::<_, admin::GetCustomDomainPolicyResponse>(&[], |_| rest(UNKNOWN), |_| request(UNKNOWN), Code::NotFound)
        .await;
}

#[tokio::test]
async fn add_custom_domain_policy() {
    let rest = |org: &str| {
        Rest::new("/iamd.admin.v1.AdminService/AddCustomDomainPolicy", Method::POST, domain(org))
            .body(json!({"userLoginMustBeDomain": true, "validateOrgDomains": false}))
    };
    let request = |org: &str| admin::AddCustomDomainPolicyRequest {
        org_id: org.into(),
        user_login_must_be_domain: true,
        validate_org_domains: false,
        smtp_sender_address_matches_instance_domain: false,
    };
    assert_eq!(
        parity::<_, admin::AddCustomDomainPolicyResponse>(&[], rest, request, Code::Ok).await,
        json!({"details": details("1")})
    );
    parity::<_, admin::AddCustomDomainPolicyResponse>(&[ADD_DOMAIN], rest, request, Code::AlreadyExists).await;
    parity::<_, admin::AddCustomDomainPolicyResponse>(&[], |_| rest(UNKNOWN), |_| request(UNKNOWN), Code::NotFound)
        .await;
}

#[tokio::test]
async fn update_custom_domain_policy() {
    let rest = |org: &str| {
        Rest::new("/iamd.admin.v1.AdminService/UpdateCustomDomainPolicy", Method::PUT, domain(org))
            .body(json!({"userLoginMustBeDomain": true, "validateOrgDomains": true, "smtpSenderAddressMatchesInstanceDomain": true}))
    };
    let request = |org: &str| admin::UpdateCustomDomainPolicyRequest {
        org_id: org.into(),
        user_login_must_be_domain: true,
        validate_org_domains: true,
        smtp_sender_address_matches_instance_domain: true,
    };
    let answer = parity::<_, admin::UpdateCustomDomainPolicyResponse>(&[ADD_DOMAIN], rest, request, Code::Ok).await;
    assert_eq!(answer, json!({"details": details("2")}));
    parity::<_, admin::UpdateCustomDomainPolicyResponse>(&[], rest, request, Code::NotFound).await;
    // AddCustomOrgIAMPolicy forces the two newer settings on, so these values are no change.
    parity::<_, admin::UpdateCustomDomainPolicyResponse>(&[ADD_ORG_IAM], rest, request, Code::FailedPrecondition).await;
}

#[tokio::test]
async fn reset_custom_domain_policy_to_default() {
    let rest = |org: &str| {
        Rest::new("/iamd.admin.v1.AdminService/ResetCustomDomainPolicyToDefault", Method::DELETE, domain(org))
    };
    let request = |org: &str| admin::ResetCustomDomainPolicyToDefaultRequest { org_id: org.into() };
    let answer =
        parity::<_, admin::ResetCustomDomainPolicyToDefaultResponse>(&[ADD_DOMAIN], rest, request, Code::Ok).await;
    assert_eq!(answer, json!({"details": details("2")}));
    parity::<_, admin::ResetCustomDomainPolicyToDefaultResponse>(&[], rest, request, Code::NotFound).await;
    parity::<_, admin::ResetCustomDomainPolicyToDefaultResponse>(
        &[],
        |_| rest(UNKNOWN),
        |_| request(UNKNOWN),
        Code::NotFound,
    )
    .await;
}

// ---- organizations ----

fn organization(name: &str, domain: &str) -> Value {
    json!({"id": "<uuid>", "name": name, "domain": domain, "createdAt": "<time>", "updatedAt": "<time>"})
}

#[tokio::test]
async fn create_organization() {
    let rest = |name: &'static str| {
        move |_: &str| {
            Rest::new("/iamd.accounts.v1.OrganizationService/CreateOrganization", Method::POST, "/organizations")
                .body(json!({"name": name, "domain": "globex.example"}))
                .success(StatusCode::CREATED)
                .select("organization")
        }
    };
    let request = |name: &'static str| {
        move |_: &str| accounts::CreateOrganizationRequest { name: name.into(), domain: "globex.example".into() }
    };
    let answer =
        parity::<_, accounts::CreateOrganizationResponse>(&[], rest("globex"), request("globex"), Code::Ok).await;
    assert_eq!(answer, organization("globex", "globex.example"));
    let answer =
        parity::<_, accounts::CreateOrganizationResponse>(&[], rest("acme"), request("acme"), Code::AlreadyExists)
            .await;
    assert_eq!(answer["message"], "an organization named `acme` already exists");
    parity::<_, accounts::CreateOrganizationResponse>(&[], rest("  "), request("  "), Code::InvalidArgument).await;
}

#[tokio::test]
async fn list_organizations() {
    let rest = |query: &'static str| {
        move |_: &str| {
            Rest::new(
                "/iamd.accounts.v1.OrganizationService/ListOrganizations",
                Method::GET,
                format!("/organizations{query}"),
            )
        }
    };
    let answer = parity::<_, accounts::ListOrganizationsResponse>(
        &[SECOND_ORG],
        rest("?limit=1&reverse=true"),
        |_| accounts::ListOrganizationsRequest { limit: Some(1), page_token: String::new(), reverse: true },
        Code::Ok,
    )
    .await;
    assert_eq!(answer["results"], json!([organization("globex", "")]));
    assert!(answer["nextPageToken"].is_string());
    let answer = parity::<_, accounts::ListOrganizationsResponse>(
        &[SECOND_ORG],
        rest(""),
        |_| accounts::ListOrganizationsRequest::default(),
        Code::Ok,
    )
    .await;
    // The last page has no `nextPageToken`, even though this surface emits zero values.
    assert_eq!(answer, json!({"results": [organization("acme", ""), organization("globex", "")]}));
    parity::<_, accounts::ListOrganizationsResponse>(
        &[],
        rest("?limit=0"),
        |_| accounts::ListOrganizationsRequest { limit: Some(0), ..Default::default() },
        Code::InvalidArgument,
    )
    .await;
    parity::<_, accounts::ListOrganizationsResponse>(
        &[],
        rest("?pageToken=forged"),
        |_| accounts::ListOrganizationsRequest { page_token: "forged".into(), ..Default::default() },
        Code::InvalidArgument,
    )
    .await;
}

#[tokio::test]
async fn get_organization() {
    let rest = |org: &str| {
        Rest::new("/iamd.accounts.v1.OrganizationService/GetOrganization", Method::GET, format!("/organizations/{org}"))
            .select("organization")
    };
    let request = |org: &str| accounts::GetOrganizationRequest { organization_id: org.into() };
    assert_eq!(
        parity::<_, accounts::GetOrganizationResponse>(&[], rest, request, Code::Ok).await,
        organization("acme", "")
    );
    parity::<_, accounts::GetOrganizationResponse>(&[], |_| rest(UNKNOWN), |_| request(UNKNOWN), Code::NotFound).await;
}

#[tokio::test]
async fn update_organization() {
    let rest = |body: Value| {
        move |org: &str| {
            Rest::new(
                "/iamd.accounts.v1.OrganizationService/UpdateOrganization",
                Method::PATCH,
                format!("/organizations/{org}"),
            )
            .body(body.clone())
            .select("organization")
        }
    };
    // Only the fields present change.
    let answer = parity::<_, accounts::UpdateOrganizationResponse>(
        &[],
        rest(json!({"domain": "acme.example"})),
        |org| accounts::UpdateOrganizationRequest {
            organization_id: org.into(),
            name: None,
            domain: Some("acme.example".into()),
        },
        Code::Ok,
    )
    .await;
    assert_eq!(answer, organization("acme", "acme.example"));
    parity::<_, accounts::UpdateOrganizationResponse>(
        &[SECOND_ORG],
        rest(json!({"name": "globex"})),
        |org| accounts::UpdateOrganizationRequest {
            organization_id: org.into(),
            name: Some("globex".into()),
            domain: None,
        },
        Code::AlreadyExists,
    )
    .await;
    parity::<_, accounts::UpdateOrganizationResponse>(
        &[],
        rest(json!({"domain": "not a domain"})),
        |org| accounts::UpdateOrganizationRequest {
            organization_id: org.into(),
            name: None,
            domain: Some("not a domain".into()),
        },
        Code::InvalidArgument,
    )
    .await;
    let unknown = |_: &str| {
        Rest::new(
            "/iamd.accounts.v1.OrganizationService/UpdateOrganization",
            Method::PATCH,
            format!("/organizations/{UNKNOWN}"),
        )
        .body(json!({"name": "x"}))
        .select("organization")
    };
    parity::<_, accounts::UpdateOrganizationResponse>(
        &[],
        unknown,
        |_| accounts::UpdateOrganizationRequest {
            organization_id: UNKNOWN.into(),
            name: Some("x".into()),
            domain: None,
        },
        Code::NotFound,
    )
    .await;
}

#[tokio::test]
async fn delete_organization() {
    let rest = |org: &str| {
        Rest::new(
            "/iamd.accounts.v1.OrganizationService/DeleteOrganization",
            Method::DELETE,
            format!("/organizations/{org}"),
        )
        .success(StatusCode::NO_CONTENT)
    };
    let request = |org: &str| accounts::DeleteOrganizationRequest { organization_id: org.into() };
    assert_eq!(
        parity::<_, accounts::DeleteOrganizationResponse>(&[ADD_DOMAIN], rest, request, Code::Ok).await,
        json!({})
    );
    parity::<_, accounts::DeleteOrganizationResponse>(&[], |_| rest(UNKNOWN), |_| request(UNKNOWN), Code::NotFound)
        .await;
}
