//! Optimistic concurrency on every protocol: reads and writes answer the object's version
//! as `etag`, writes take the version they expect as `If-Match`, and a stale one is ABORTED
//! (409 on JSON) and changes nothing. Writes answer their log position as the consistency
//! token.

use http::{HeaderMap, Method, StatusCode};
use iamd::pb::iamd::accounts::v1 as accounts;
use iamd::pb::iamd::admin::v1 as admin;
use serde_json::json;
use tonic::Code;

use crate::support::{Outcome, PROTOCOLS, Rest, TestServer, blind_renames, rpc};

fn etag(headers: &HeaderMap) -> &str {
    headers.get("etag").map(|v| v.to_str().unwrap()).unwrap_or_else(|| panic!("no etag in {headers:?}"))
}

fn token(headers: &HeaderMap) -> u64 {
    headers[iamd::CONSISTENCY_TOKEN].to_str().unwrap().parse().unwrap()
}

fn patch(
    org: &str,
    name: &str,
    if_match: &str,
) -> Rest<accounts::UpdateOrganizationRequest, accounts::UpdateOrganizationResponse> {
    Rest::new(rpc::UPDATE_ORGANIZATION, Method::PATCH, "/organizations/{organization_id}")
        .bind("organization_id", org)
        .body(json!({"name": name}))
        .select("organization")
        .header("if-match", if_match)
}

#[tokio::test]
async fn versions_guard_updates_and_deletes_on_every_protocol() {
    for protocol in PROTOCOLS {
        let server = TestServer::start().await;
        let org = server.create_org("acme").await;

        let get = Rest::new(rpc::GET_ORGANIZATION, Method::GET, "/organizations/{organization_id}")
            .bind("organization_id", &org)
            .select("organization");
        let (outcome, headers) = server.exchange(protocol, &get).await;
        assert_eq!(outcome.code(), Code::Ok);
        assert_eq!(etag(&headers), "\"1\"", "{protocol:?}");

        // The version read: accepted, and the answer carries the next one and a token.
        let (outcome, headers) = server.exchange(protocol, &patch(&org, "acme-2", "\"1\"")).await;
        assert_eq!(outcome.code(), Code::Ok, "{protocol:?}: {outcome:?}");
        assert_eq!(etag(&headers), "\"2\"");
        let first_token = token(&headers);

        // The same, now stale, version: ABORTED, nothing changes.
        let outcome = server.call(protocol, &patch(&org, "acme-3", "\"1\"")).await;
        let Outcome::Err { code, message, reason } = outcome else {
            panic!("{protocol:?}: a stale version was accepted")
        };
        assert_eq!((code, reason.as_deref()), (Code::Aborted, Some("VERSION_MISMATCH")));
        assert_eq!(message, "the organization is at version \"2\", not \"1\"; read it again and retry");
        let reply = server.json(Method::GET, &format!("/organizations/{org}"), None).await;
        assert_eq!(reply.body["name"], "acme-2");
        assert_eq!(reply.headers["etag"], "\"2\"");

        // Weak and bare forms of the version are understood; a later write has a later token.
        let (outcome, headers) = server.exchange(protocol, &patch(&org, "acme-3", "W/\"2\"")).await;
        assert_eq!(outcome.code(), Code::Ok);
        assert!(token(&headers) > first_token);
        let outcome = server.call(protocol, &patch(&org, "acme-4", "garbage")).await;
        assert_eq!(outcome.code(), Code::InvalidArgument);

        let delete = |version: &str| {
            Rest::new(rpc::DELETE_ORGANIZATION, Method::DELETE, "/organizations/{organization_id}")
                .bind("organization_id", &org)
                .success(StatusCode::NO_CONTENT)
                .header("if-match", version)
        };
        let outcome = server.call(protocol, &delete("\"2\"")).await;
        assert_eq!(outcome.code(), Code::Aborted);
        let (outcome, headers) = server.exchange(protocol, &delete("3")).await;
        assert_eq!(outcome.code(), Code::Ok, "{outcome:?}");
        assert!(headers.contains_key(iamd::CONSISTENCY_TOKEN));
        server.stop().await;
    }
}

#[tokio::test]
async fn policy_writes_take_versions_too() {
    let server = TestServer::start().await;
    let org = server.create_org("acme").await;
    let path = format!("/admin/v1/orgs/{org}/policies/domain");
    let added = server.json(Method::POST, &path, Some(json!({"userLoginMustBeDomain": true}))).await;
    assert_eq!(added.headers["etag"], "\"1\"");
    let body = json!({"userLoginMustBeDomain": false});
    let stale = server.json_with(Method::PUT, &path, Some(body.clone()), &[("if-match", "\"7\"".into())]).await;
    assert_eq!(stale.status, StatusCode::CONFLICT);
    assert_eq!(stale.body["code"], Code::Aborted as i32);
    assert_eq!(stale.body["details"][0]["reason"], "VERSION_MISMATCH");
    let fresh = server.json_with(Method::PUT, &path, Some(body), &[("if-match", "\"1\"".into())]).await;
    assert_eq!(fresh.status, StatusCode::OK, "{}", fresh.body);
    assert_eq!(fresh.headers["etag"], "\"2\"");

    let (result, _) = server
        .grpc_with::<_, admin::ResetCustomDomainPolicyToDefaultResponse>(
            "/iamd.admin.v1.AdminService/ResetCustomDomainPolicyToDefault",
            admin::ResetCustomDomainPolicyToDefaultRequest { org_id: org.clone() },
            &[("if-match", "\"1\"".into())],
        )
        .await;
    assert_eq!(result.unwrap_err().code(), Code::Aborted);
    let reply = server.json(Method::GET, &path, None).await;
    assert_eq!(reply.body["policy"].get("isDefault"), None, "the stale reset changed nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_updates_of_one_version_let_exactly_one_win() {
    let server = std::sync::Arc::new(TestServer::start().await);
    let org = server.create_org("race").await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (server, org) = (server.clone(), org.clone());
        tasks.push(tokio::spawn(async move {
            server
                .json_with(
                    Method::PATCH,
                    &format!("/organizations/{org}"),
                    Some(json!({"name": format!("race-{i}")})),
                    &[("if-match", "\"1\"".into())],
                )
                .await
                .status
        }));
    }
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::OK).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::CONFLICT).count(), 7, "{statuses:?}");
    let reply = server.json(Method::GET, &format!("/organizations/{org}"), None).await;
    assert_eq!(reply.headers["etag"], "\"2\"");
}

#[tokio::test]
async fn consistency_tokens_on_every_protocol() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir, |c| iamd::config::Config {
        consistency_wait: std::time::Duration::from_millis(200),
        ..c
    })
    .await;
    let created = server.json(Method::POST, "/organizations", Some(json!({"name": "tokened"}))).await;
    let id = created.body["id"].as_str().unwrap().to_owned();
    let written = token(&created.headers);
    let get = |token: String| {
        Rest::new(rpc::GET_ORGANIZATION, Method::GET, "/organizations/{organization_id}")
            .bind("organization_id", &id)
            .select("organization")
            .header(iamd::CONSISTENCY_TOKEN, token)
    };
    for protocol in PROTOCOLS {
        let outcome = server.call(protocol, &get(written.to_string())).await;
        assert_eq!(outcome.code(), Code::Ok, "{protocol:?}");
        let outcome = server.call(protocol, &get("soon".into())).await;
        assert_eq!(outcome.code(), Code::InvalidArgument, "{protocol:?}");
        // A position no write was answered at is refused at once, without waiting.
        let started = std::time::Instant::now();
        let outcome = server.call(protocol, &get((written + 1000).to_string())).await;
        assert_eq!(outcome.code(), Code::OutOfRange, "{protocol:?}");
        assert!(started.elapsed() < std::time::Duration::from_millis(200), "waited for a token that cannot come");
    }
}

/// Writes that name no version never fail for a race they did not ask about: eight clients
/// renaming one organization at once all succeed, each rename one event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blind_writes_racing_on_one_object_all_succeed() {
    let server = TestServer::start().await;
    let org = server.create_org("raced").await;
    let clients = (0..2).map(|_| TestServer::attach(server.addr)).collect();
    blind_renames(clients, &org, 100).await;
    let reply = server.json(Method::GET, &format!("/organizations/{org}"), None).await;
    assert_eq!(reply.headers["etag"], "\"201\"", "every rename is one event");
}

/// A write guarded on an object it references (an organization's own domain policy on the
/// organization) never fails for changes of that object; a delete of the organization
/// racing the policy's creation never leaves a policy behind without its organization.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guarded_writes_survive_renames_and_never_outlive_their_organization() {
    let server = std::sync::Arc::new(TestServer::start().await);
    let org = server.create_org("guarded").await;
    let renames = {
        let (addr, org) = (server.addr, org.clone());
        tokio::spawn(async move { blind_renames(vec![TestServer::attach(addr)], &org, 40).await })
    };
    let policy = format!("/admin/v1/orgs/{org}/policies/domain");
    for i in 0..10 {
        let body = json!({"userLoginMustBeDomain": i % 2 == 0});
        let added = server.json(Method::POST, &policy, Some(body.clone())).await;
        assert_eq!(added.status, StatusCode::OK, "{}", added.body);
        let reset = server.json(Method::DELETE, &policy, None).await;
        assert_eq!(reset.status, StatusCode::OK, "{}", reset.body);
    }
    renames.await.unwrap();

    let mut policy_first = 0;
    for round in 0..20 {
        let org = server.create_org(&format!("doomed-{round}")).await;
        let path = format!("/admin/v1/orgs/{org}/policies/domain");
        let add = {
            let (server, path) = (server.clone(), path.clone());
            tokio::spawn(
                async move { server.json(Method::POST, &path, Some(json!({"userLoginMustBeDomain": true}))).await },
            )
        };
        let delete = {
            let (server, org) = (server.clone(), org.clone());
            tokio::spawn(async move { server.json(Method::DELETE, &format!("/organizations/{org}"), None).await })
        };
        let (add, delete) = (add.await.unwrap(), delete.await.unwrap());
        // Either the policy came first and went with its organization, or the organization
        // went first and the policy found none.
        assert_eq!(delete.status, StatusCode::NO_CONTENT, "{}", delete.body);
        assert!(matches!(add.status, StatusCode::OK | StatusCode::NOT_FOUND), "{}: {}", add.status, add.body);
        // The policy's own history (its reads answer NOT_FOUND once the organization is
        // gone, whatever the store holds): created only before the delete, and removed with it.
        let history = format!("/v1/events?objectType=domain_policy&objectId={org}");
        let events = server.json(Method::GET, &history, None).await.body["events"].clone();
        let types: Vec<&str> = events.as_array().unwrap().iter().map(|e| e["eventType"].as_str().unwrap()).collect();
        match add.status {
            StatusCode::OK => {
                assert_eq!(types, ["org.policy.domain.added", "org.policy.domain.removed"], "round {round}");
                policy_first += 1;
            }
            _ => assert_eq!(types, Vec::<&str>::new(), "round {round}"),
        }
    }
    println!("the policy came first in {policy_first} of 20 rounds");
}
