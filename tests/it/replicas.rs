//! Two iamd processes on one PostgreSQL database: writes on one are read on the other (after
//! the follower's lag, or at once with the consistency token), concurrent conflicting
//! updates give one success and one 409, and a replica killed mid-load loses no write it
//! answered. Skipped, saying so, when `IAMD_TEST_DATABASE_URL` is unset.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use serde_json::json;

use crate::durability::{Process, spawn_with};
use crate::support::{TestServer, blind_renames, eventually};

const TEN_SECONDS: Duration = Duration::from_secs(10);

/// A fresh schema in the test database, dropped when the test ends.
pub struct Schema {
    pub url: String,
    name: String,
    admin: tokio_postgres::Client,
}

impl Schema {
    pub async fn create() -> Option<Schema> {
        let Ok(base) = std::env::var("IAMD_TEST_DATABASE_URL") else {
            // CI provides the database: there, a skip would hide that nothing ran.
            assert!(std::env::var_os("CI").is_none(), "IAMD_TEST_DATABASE_URL is unset in CI");
            println!("replica test skipped: IAMD_TEST_DATABASE_URL is unset");
            return None;
        };
        let (admin, connection) = tokio_postgres::connect(&base, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        let name = format!("replicas_{}", uuid::Uuid::new_v4().simple());
        admin.batch_execute(&format!("CREATE SCHEMA {name}")).await.unwrap();
        let separator = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{separator}options=-c%20search_path%3D{name}");
        Some(Schema { url, name, admin })
    }

    pub async fn drop(self) {
        self.admin.batch_execute(&format!("DROP SCHEMA {} CASCADE", self.name)).await.unwrap();
    }
}

fn replica(schema: &Schema) -> (Process, TestServer) {
    let dir = tempfile::tempdir().unwrap();
    let process = spawn_with(dir.path(), &[("IAMD_DATABASE_URL", schema.url.as_str())]);
    let client = crate::durability::client(&process.addr);
    (process, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_one_database() {
    let Some(schema) = Schema::create().await else { return };
    let (mut process_a, a) = replica(&schema);
    let (mut process_b, b) = replica(&schema);

    // Without the token: B shows A's write soon after, by following the log.
    let id = a.create_org("written-on-a").await;
    let path = format!("/organizations/{id}");
    let lag = eventually("B sees A's write", TEN_SECONDS, async || {
        b.json(Method::GET, &path, None).await.status == StatusCode::OK
    })
    .await;
    println!("replica lag without a token: {lag:?}");

    // With the token: B answers it at once, waiting for its view if it must.
    let reply = a.json(Method::PATCH, &format!("/organizations/{id}"), Some(json!({"domain": "a.example"}))).await;
    let token = reply.headers[iamd::CONSISTENCY_TOKEN].to_str().unwrap().to_owned();
    let reply = b
        .json_with(Method::GET, &format!("/organizations/{id}"), None, &[(iamd::CONSISTENCY_TOKEN, token.clone())])
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["domain"], "a.example");
    assert_eq!(reply.headers["etag"], "\"2\"");

    // A token from the future: B refuses it at once, without waiting for a write that cannot come.
    let future = token.parse::<u64>().unwrap() + 1_000_000;
    let started = Instant::now();
    let reply = b
        .json_with(Method::GET, &format!("/organizations/{id}"), None, &[(iamd::CONSISTENCY_TOKEN, future.to_string())])
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
    assert_eq!(reply.body["code"], tonic::Code::OutOfRange as i32);
    assert!(started.elapsed() < Duration::from_secs(1), "B waited for a token from the future");

    // The same version updated on both replicas at once: one wins, one is told to retry.
    async fn update(client: &TestServer, id: &str, name: &str) -> crate::support::JsonReply {
        let if_match = [("if-match", "\"2\"".to_owned())];
        client.json_with(Method::PATCH, &format!("/organizations/{id}"), Some(json!({"name": name})), &if_match).await
    }
    let (on_a, on_b) = tokio::join!(update(&a, &id, "from-a"), update(&b, &id, "from-b"));
    let mut statuses = [on_a.status, on_b.status];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::CONFLICT], "{} / {}", on_a.body, on_b.body);

    // Writes on A under load; A is killed; B has every write A answered.
    let writer = {
        let a = TestServer::attach(a.addr);
        tokio::spawn(async move {
            let mut answered = Vec::new();
            for i in 0..10_000 {
                let body = Some(json!({"name": format!("load-{i}")}));
                match a.try_json(Method::POST, "/organizations", body).await {
                    Some(reply) if reply.status == StatusCode::CREATED => {
                        answered.push(reply.body["id"].as_str().unwrap().to_owned())
                    }
                    _ => break,
                }
            }
            answered
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    process_a.child.kill().unwrap();
    process_a.child.wait().unwrap();
    let answered = writer.await.unwrap();
    assert!(answered.len() >= 10, "too few writes before the kill: {}", answered.len());
    let last = answered.last().unwrap();
    let path = format!("/organizations/{last}");
    eventually("B sees A's last answered write", TEN_SECONDS, async || {
        b.json(Method::GET, &path, None).await.status == StatusCode::OK
    })
    .await;
    for id in &answered {
        let reply = b.json(Method::GET, &format!("/organizations/{id}"), None).await;
        assert_eq!(reply.status, StatusCode::OK, "answered write {id} was lost");
    }

    process_b.child.kill().unwrap();
    process_b.child.wait().unwrap();
    schema.drop().await;
}

/// Blind writes racing on one object from two replicas of one database all succeed: a
/// replica whose state is behind the other's write reads the object again and retries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blind_writes_on_two_replicas_all_succeed() {
    let Some(schema) = Schema::create().await else { return };
    let (mut process_a, a) = replica(&schema);
    let (mut process_b, b) = replica(&schema);
    let id = a.create_org("raced").await;
    let clients = vec![TestServer::attach(a.addr), TestServer::attach(b.addr)];
    blind_renames(clients, &id, 80).await;
    // Every rename is one event, and both replicas end with the last one (each follows the
    // other's writes).
    let path = format!("/organizations/{id}");
    for replica in [&a, &b] {
        eventually("the replica has the last rename", TEN_SECONDS, async || {
            replica.json(Method::GET, &path, None).await.headers["etag"] == "\"161\""
        })
        .await;
    }
    for process in [&mut process_a, &mut process_b] {
        process.child.kill().unwrap();
        process.child.wait().unwrap();
    }
    schema.drop().await;
}

/// While a replica loads the current state the port answers liveness, and `/readyz` and the
/// API answer UNAVAILABLE; once it holds the state, both answer. The load is held back by a
/// lock on the objects table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_answers_once_the_state_is_loaded() {
    let Some(schema) = Schema::create().await else { return };
    // A first start creates the schema.
    let dir = tempfile::tempdir().unwrap();
    let config = |listen| iamd::config::Config {
        listen,
        database_url: Some(iamd::config::Secret::new(schema.url.clone())),
        ..crate::support::config(dir.path())
    };
    iamd::server::start(config("127.0.0.1:0".parse().unwrap())).await.unwrap().stop().await.unwrap();

    let (locker, connection) = tokio_postgres::connect(&schema.url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    locker.batch_execute("BEGIN; LOCK TABLE objects IN ACCESS EXCLUSIVE MODE").await.unwrap();
    let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(iamd::server::run(config(addr), async move {
        let _ = stopped.await;
    }));
    let client = TestServer::attach(addr);
    eventually("liveness answers", TEN_SECONDS, async || {
        client.try_json(Method::GET, "/healthz", None).await.map(|r| r.status) == Some(StatusCode::OK)
    })
    .await;
    let ready = client.json(Method::GET, "/readyz", None).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE, "{}", ready.body);
    let api = client.json(Method::GET, "/organizations", None).await;
    assert_eq!((api.status, api.body["code"].as_i64()), (StatusCode::SERVICE_UNAVAILABLE, Some(14)), "{}", api.body);
    let grpc = client
        .grpc::<_, iamd::pb::iamd::accounts::v1::ListOrganizationsResponse>(
            "/iamd.accounts.v1.OrganizationService/ListOrganizations",
            iamd::pb::iamd::accounts::v1::ListOrganizationsRequest::default(),
        )
        .await;
    assert_eq!(grpc.unwrap_err().code(), tonic::Code::Unavailable);
    // A browser is answered through CORS and in gRPC-web while the state loads, so it sees
    // UNAVAILABLE and retries rather than a CORS error.
    let origin = "http://page.example";
    let preflight = Request::builder()
        .method(Method::OPTIONS)
        .uri(client.url("/iamd.accounts.v1.OrganizationService/ListOrganizations"))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type, x-grpc-web")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (status, headers, _) = client.raw(preflight).await;
    assert!(status.is_success(), "{status}");
    assert_eq!(headers["access-control-allow-origin"], origin, "{headers:?}");
    assert!(headers["access-control-allow-headers"].to_str().unwrap().contains("x-grpc-web"), "{headers:?}");
    let web = iamd::pb::iamd::accounts::v1::ListOrganizationsRequest::default();
    let (answer, headers) = client
        .grpc_web_with::<_, iamd::pb::iamd::accounts::v1::ListOrganizationsResponse>(
            "/iamd.accounts.v1.OrganizationService/ListOrganizations",
            &web,
            false,
            &[("origin", origin.to_owned())],
        )
        .await;
    assert_eq!(answer.unwrap_err().0, tonic::Code::Unavailable);
    assert_eq!(headers["content-type"], "application/grpc-web+proto");
    assert_eq!(headers["access-control-allow-origin"], origin, "{headers:?}");
    assert!(headers["access-control-expose-headers"].to_str().unwrap().contains("grpc-status"), "{headers:?}");

    locker.batch_execute("COMMIT").await.unwrap();
    eventually("ready", TEN_SECONDS, async || client.json(Method::GET, "/readyz", None).await.status == StatusCode::OK)
        .await;
    assert_eq!(client.json(Method::GET, "/organizations", None).await.status, StatusCode::OK);
    stop.send(()).unwrap();
    running.await.unwrap().unwrap();
    schema.drop().await;
}

/// A role deleted on one replica while a policy naming it is written on the other, which may
/// not have heard of the delete yet: the store's guard orders the two, and neither replica
/// is left with a policy naming a role that is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_delete_on_one_replica_racing_a_policy_write_on_another_leaves_no_dangling_role() {
    let Some(schema) = Schema::create().await else { return };
    let (mut process_a, a) = replica(&schema);
    let (mut process_b, b) = replica(&schema);
    // A role B has not heard of yet is read from the store before B calls it unknown.
    for round in 0..5 {
        let role = format!("fresh{round}");
        let body = json!({"id": role, "name": role, "actions": ["iam:policies:get"]});
        assert_eq!(a.json(Method::POST, "/iam/roles", Some(body)).await.status, StatusCode::OK);
        let policy =
            json!({"id": format!("fresh{round}"), "name": "p", "statements": [{"role": role, "tenants": ["*"]}]});
        let written = b.json(Method::POST, "/iam/policies", Some(policy)).await;
        assert_eq!(written.status, StatusCode::OK, "round {round}: {}", written.body);
    }
    let (mut writes_first, mut deletes_first) = (0, 0);
    for round in 0..10 {
        let role = format!("r{round}");
        let body = json!({"id": role, "name": role, "actions": ["iam:policies:get"]});
        assert_eq!(a.json(Method::POST, "/iam/roles", Some(body)).await.status, StatusCode::OK);
        let path = format!("/iam/roles/{role}");
        eventually("B sees the role", TEN_SECONDS, async || {
            b.json(Method::GET, &path, None).await.status == StatusCode::OK
        })
        .await;
        let policy = json!({"id": format!("p{round}"), "name": "p", "statements": [{"role": role, "tenants": ["*"]}]});
        let (written, deleted) =
            tokio::join!(b.json(Method::POST, "/iam/policies", Some(policy)), a.json(Method::DELETE, &path, None));
        assert_eq!(deleted.status, StatusCode::OK, "round {round}: {}", deleted.body);
        match written.status {
            StatusCode::OK => writes_first += 1,
            StatusCode::BAD_REQUEST => {
                assert_eq!(written.body["details"][0]["reason"], "ROLE_NOT_FOUND", "{}", written.body);
                deletes_first += 1;
            }
            other => panic!("round {round}: {other}: {}", written.body),
        }
        // Written first, the policy went with the role's delete; either way it is gone on both.
        let policy_path = format!("/iam/policies/p{round}");
        for replica in [&a, &b] {
            eventually("the policy is gone", TEN_SECONDS, async || {
                replica.json(Method::GET, &policy_path, None).await.status == StatusCode::NOT_FOUND
            })
            .await;
        }
    }
    println!("the policy write went first {writes_first} times, the role's delete {deletes_first} times");
    process_a.child.kill().unwrap();
    process_b.child.kill().unwrap();
    schema.drop().await;
}

/// An organization policy deleted on one replica while an assignment naming it is created on
/// the other: exactly one of them succeeds, on both replicas the outcome is the same, and no
/// assignment names a policy that is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_org_policy_delete_on_one_replica_racing_an_assignment_on_another_leaves_no_dangling_policy() {
    let Some(schema) = Schema::create().await else { return };
    let (mut process_a, a) = replica(&schema);
    let (mut process_b, b) = replica(&schema);
    let org = a.create_org("acme").await;
    let (mut assigned_first, mut deleted_first) = (0, 0);
    for round in 0..10 {
        let body = json!({"name": format!("p{round}"),
            "definitions": [{"effect": "allow", "resources": ["/**"], "actions": ["view"]}]});
        let created = a.json(Method::POST, &format!("/organizations/{org}/iam-policies"), Some(body)).await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
        let path = format!("/organizations/{org}/iam-policies/{}", created.body["id"].as_str().unwrap());
        eventually("B sees the policy", TEN_SECONDS, async || {
            b.json(Method::GET, &path, None).await.status == StatusCode::OK
        })
        .await;
        let assignment = json!({"principal": "user:local:alice", "policyIds": [created.body["id"]]});
        let assignments = format!("/organizations/{org}/iam-assignments");
        let (assigned, deleted) =
            tokio::join!(b.json(Method::POST, &assignments, Some(assignment)), a.json(Method::DELETE, &path, None));
        let expected = match (assigned.status, deleted.status) {
            (StatusCode::CREATED, StatusCode::BAD_REQUEST) => {
                assigned_first += 1;
                StatusCode::OK
            }
            (StatusCode::NOT_FOUND, StatusCode::NO_CONTENT) => {
                deleted_first += 1;
                StatusCode::NOT_FOUND
            }
            other => panic!("round {round}: assignment {} and delete {}: {}", other.0, other.1, assigned.body),
        };
        for replica in [&a, &b] {
            eventually("both replicas agree", TEN_SECONDS, async || {
                replica.json(Method::GET, &path, None).await.status == expected
            })
            .await;
        }
    }
    println!("the assignment went first {assigned_first} times, the policy's delete {deleted_first} times");
    process_a.child.kill().unwrap();
    process_b.child.kill().unwrap();
    schema.drop().await;
}

/// A check that carries a write's consistency token sees that write on any replica: a grant
/// written on A, and its role's delete, decide on B at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_with_a_writes_token_sees_that_write_on_another_replica() {
    let Some(schema) = Schema::create().await else { return };
    let (mut process_a, a) = replica(&schema);
    let (mut process_b, b) = replica(&schema);
    let ask = async |token: &str| {
        let body = json!({"subject": "user:local:ann", "action": "infra:nodes:get", "resource": "infra:nodes:n1",
                          "consistencyToken": token});
        let reply = b.json(Method::POST, "/v1/authz:check", Some(body)).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        let answered = reply.body["consistencyToken"].as_str().unwrap().parse::<u64>().unwrap();
        assert!(answered >= token.parse::<u64>().unwrap(), "B decided on a state older than the token");
        reply.body["allowed"].as_bool().unwrap()
    };
    let token = |reply: &crate::support::JsonReply| reply.headers[iamd::CONSISTENCY_TOKEN].to_str().unwrap().to_owned();
    for round in 0..5 {
        let role = format!("nodes-{round}");
        let reply = a
            .json(Method::POST, "/iam/roles", Some(json!({"id": role, "name": role, "actions": ["infra:nodes:get"]})))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        let policy = json!({"id": format!("p-{round}"), "name": format!("p-{round}"), "members": ["user:local:ann"],
                            "statements": [{"effect": "ALLOW", "role": role, "tenants": ["*"]}]});
        let reply = a.json(Method::POST, "/iam/policies", Some(policy)).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        assert!(ask(&token(&reply)).await, "round {round}: B did not see A's grant");
        let reply = a.json(Method::DELETE, &format!("/iam/roles/{role}"), None).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        assert!(!ask(&token(&reply)).await, "round {round}: B still grants A's deleted role");
    }
    for process in [&mut process_a, &mut process_b] {
        process.child.kill().unwrap();
        process.child.wait().unwrap();
    }
    schema.drop().await;
}
