//! PostgreSQL goes away under write load and comes back. Two in-process replicas reach the
//! test's schema through a TCP proxy (`proxy.rs`), which takes the database away for a few
//! seconds, either down (connections closed, new ones refused) or dark (connections silent,
//! new ones never answered). Meanwhile every write answers UNAVAILABLE (503 with a
//! `google.rpc.Status` body on JSON, `Code::Unavailable` on gRPC), never INTERNAL and never
//! after a hang: at once when the database is down, within the store's bounds when it is
//! dark. `/readyz` answers 503 while the database is gone and 200 once it is back; writes
//! succeed again without a restart, both followers resume, and every write either replica
//! acknowledged, before, during or after the outage, is on both. Skipped, saying so, when
//! `IAMD_TEST_DATABASE_URL` is unset (and fails in CI, like every PostgreSQL test).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use iamd::config::{Config, Secret};
use iamd::pb::iamd::accounts::v1 as pb;
use pb::organization_service_client::OrganizationServiceClient;
use serde_json::{Value, json};
use tokio::sync::watch;
use tonic_types::StatusExt;

use crate::proxy::{Proxy, database_addr};
use crate::replicas::Schema;
use crate::support::{TOKEN, TestServer, eventually};

/// How long after the restore writes and `/readyz` have to recover.
const RECOVERY_BOUND: Duration = Duration::from_secs(10);

/// Calls that start this soon after the cut may still have reached the database on a
/// connection the proxy was closing.
const CUT_SETTLES: Duration = Duration::from_millis(200);

/// Past this, a call that has not answered counts as hung (a test that hangs reports
/// nothing).
const HANG: Duration = Duration::from_secs(20);

/// One write of the load, as its client saw it.
#[derive(Debug)]
struct Call {
    writer: &'static str,
    began: Instant,
    took: Duration,
    outcome: Outcome,
}

impl Call {
    fn written(&self) -> bool {
        matches!(self.outcome, Outcome::Written(_))
    }
}

#[derive(Debug, PartialEq)]
enum Outcome {
    /// Acknowledged, with the new organization's id.
    Written(String),
    /// UNAVAILABLE, with the store's reason.
    Unavailable,
    /// Anything else: a failure of the test.
    Other(String),
}

/// Whether a JSON answer is the store's UNAVAILABLE as a `google.rpc.Status`.
fn is_store_unavailable(status: StatusCode, body: &Value) -> bool {
    let reason = body["details"].as_array().into_iter().flatten().any(|d| d["reason"] == "STORE_UNAVAILABLE");
    status == StatusCode::SERVICE_UNAVAILABLE
        && body["code"] == tonic::Code::Unavailable as i32
        && body["message"].is_string()
        && reason
}

/// Creates organizations over JSON until told to stop.
async fn json_writer(writer: &'static str, server: TestServer, stop: watch::Receiver<bool>) -> Vec<Call> {
    let mut calls = Vec::new();
    for i in 0.. {
        if *stop.borrow() {
            break;
        }
        let began = Instant::now();
        let reply =
            server.try_json(Method::POST, "/organizations", Some(json!({"name": format!("{writer}-{i}")}))).await;
        let took = began.elapsed();
        let outcome = match reply {
            Some(reply) if reply.status == StatusCode::CREATED => {
                Outcome::Written(reply.body["id"].as_str().unwrap().to_owned())
            }
            Some(reply) if is_store_unavailable(reply.status, &reply.body) => Outcome::Unavailable,
            Some(reply) => Outcome::Other(format!("{}: {}", reply.status, reply.body)),
            None => Outcome::Other("no answer: the connection to iamd failed".into()),
        };
        pause_after(&outcome).await;
        calls.push(Call { writer, began, took, outcome });
    }
    calls
}

/// Creates organizations over native gRPC, on one channel, until told to stop.
async fn grpc_writer(writer: &'static str, server: TestServer, stop: watch::Receiver<bool>) -> Vec<Call> {
    let endpoint = tonic::transport::Endpoint::from_shared(server.url("")).unwrap().timeout(HANG);
    let mut client = OrganizationServiceClient::new(endpoint.connect().await.unwrap());
    let mut calls = Vec::new();
    for i in 0.. {
        if *stop.borrow() {
            break;
        }
        let mut request =
            tonic::Request::new(pb::CreateOrganizationRequest { name: format!("{writer}-{i}"), domain: String::new() });
        request.metadata_mut().insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
        let began = Instant::now();
        let answer = client.create_organization(request).await;
        let took = began.elapsed();
        let outcome = match answer {
            Ok(reply) => Outcome::Written(reply.into_inner().organization.unwrap().id),
            Err(status)
                if status.code() == tonic::Code::Unavailable
                    && status.get_details_error_info().is_some_and(|info| info.reason == "STORE_UNAVAILABLE") =>
            {
                Outcome::Unavailable
            }
            Err(status) => Outcome::Other(format!("{status:?}")),
        };
        pause_after(&outcome).await;
        calls.push(Call { writer, began, took, outcome });
    }
    calls
}

/// A client that was refused waits a little before it tries again, as a real one would.
async fn pause_after(outcome: &Outcome) {
    if !matches!(outcome, Outcome::Written(_)) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `/readyz`'s status, and how long it took to answer.
async fn readiness(server: &TestServer) -> (Option<StatusCode>, Duration) {
    let began = Instant::now();
    let answer = tokio::time::timeout(HANG, server.try_json(Method::GET, "/readyz", None)).await;
    let status = answer.ok().flatten().map(|reply| reply.status);
    (status, began.elapsed())
}

/// Every organization a replica lists.
async fn listed(server: &TestServer) -> HashSet<String> {
    let mut ids = HashSet::new();
    let mut query = "?limit=100".to_owned();
    loop {
        let page = server.json(Method::GET, &format!("/organizations{query}"), None).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        ids.extend(page.body["results"].as_array().unwrap().iter().map(|o| o["id"].as_str().unwrap().to_owned()));
        match page.body.get("nextPageToken").and_then(Value::as_str) {
            Some(token) => query = format!("?limit=100&pageToken={token}"),
            None => return ids,
        }
    }
}

/// How the database goes away, for how long, and what the test demands meanwhile.
struct Outage {
    go_away: fn(&Proxy),
    lasts: Duration,
    /// The longest any write or readiness probe may take to answer.
    answer_bound: Duration,
    /// At least this many writes of each client are refused, and this many probes made.
    refused: usize,
    probes: usize,
}

/// The database goes down: its connections close, new ones are refused. The store hears
/// it at once, so the writes meanwhile are refused at once (the bound is the store's 5 s
/// connect timeout and a margin, which a refused connection never waits for).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_answer_unavailable_while_postgres_is_down_and_resume_when_it_is_back() {
    let outage = Outage {
        go_away: Proxy::cut,
        lasts: Duration::from_secs(3),
        answer_bound: Duration::from_secs(7),
        refused: 5,
        probes: 10,
    };
    under_load(outage).await;
}

/// The database's host goes dark: iamd's connections stay open and go silent, new ones are
/// never answered. Nothing tells the store, so a write waits for the store's bound on one
/// database call (5 s) or on opening a connection (10 s), and is refused then; it never
/// hangs, and a silent connection is not handed out again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_answer_unavailable_while_postgres_is_unreachable_and_resume_when_it_is_back() {
    let outage = Outage {
        go_away: Proxy::stall,
        lasts: Duration::from_secs(12),
        answer_bound: Duration::from_secs(12),
        refused: 1,
        probes: 1,
    };
    under_load(outage).await;
}

/// Two replicas through the proxy under write load; the database goes away and comes back.
async fn under_load(outage: Outage) {
    let Some(schema) = Schema::create().await else { return };
    let proxy = Proxy::start(database_addr(&schema.url).await.unwrap()).await.unwrap();
    let url = proxy.url(&schema.url);
    let replica = async || {
        let url = url.clone();
        let dir = tempfile::tempdir().unwrap();
        TestServer::start_in(dir, move |config| Config { database_url: Some(Secret::new(url)), ..config }).await
    };
    let a = replica().await;
    let b = replica().await;

    // The load: two JSON clients and a gRPC client on A, a JSON client on B.
    let (stop, stopped) = watch::channel(false);
    let writers = vec![
        tokio::spawn(json_writer("json-a1", TestServer::attach(a.addr), stopped.clone())),
        tokio::spawn(json_writer("json-a2", TestServer::attach(a.addr), stopped.clone())),
        tokio::spawn(grpc_writer("grpc-a", TestServer::attach(a.addr), stopped.clone())),
        tokio::spawn(json_writer("json-b", TestServer::attach(b.addr), stopped.clone())),
    ];
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // The database goes away. Both replicas say so, and keep saying it.
    let cut_at = Instant::now();
    (outage.go_away)(&proxy);
    let probe = async |name: &str, server: &TestServer| {
        let mut probes = 0;
        tokio::time::sleep(CUT_SETTLES).await;
        while cut_at.elapsed() < outage.lasts {
            let (status, took) = readiness(server).await;
            assert!(took < outage.answer_bound, "{name}'s /readyz took {took:?} during the outage");
            assert_eq!(status, Some(StatusCode::SERVICE_UNAVAILABLE), "{name}'s /readyz during the outage");
            probes += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        probes
    };
    let probes = tokio::join!(probe("A", &a), probe("B", &b));
    assert!(probes.0.min(probes.1) >= outage.probes, "too few readiness probes during the outage: {probes:?}");

    // The database is back: both replicas become ready by themselves.
    let restored_at = Instant::now();
    proxy.restore();
    for (name, server) in [("A", &a), ("B", &b)] {
        eventually(&format!("{name} is ready again"), RECOVERY_BOUND, async || {
            readiness(server).await.0 == Some(StatusCode::OK)
        })
        .await;
    }
    let ready_after = restored_at.elapsed();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.send_replace(true);
    let mut calls = Vec::new();
    for writer in writers {
        calls.extend(writer.await.unwrap());
    }

    // No write failed otherwise than UNAVAILABLE, and none took long to answer.
    let others: Vec<&Call> = calls.iter().filter(|c| matches!(c.outcome, Outcome::Other(_))).collect();
    assert!(others.is_empty(), "writes answered neither success nor UNAVAILABLE: {others:#?}");
    let slowest = calls.iter().max_by_key(|c| c.took).unwrap();
    assert!(slowest.took < outage.answer_bound, "a write took {:?} to answer: {slowest:?}", slowest.took);
    let slowest_refusal = calls.iter().filter(|c| c.outcome == Outcome::Unavailable).map(|c| c.took).max();

    let mut acknowledged = Vec::new();
    for writer in ["json-a1", "json-a2", "grpc-a", "json-b"] {
        let mine: Vec<&Call> = calls.iter().filter(|c| c.writer == writer).collect();
        let before = mine.iter().filter(|c| c.began + c.took < cut_at && c.written()).count();
        assert!(before > 0, "{writer} wrote nothing before the outage");
        // Every write made while the database was away answered UNAVAILABLE.
        let during = |c: &&Call| c.began > cut_at + CUT_SETTLES && c.began + c.took < restored_at;
        let succeeded: Vec<&Call> = mine.iter().copied().filter(|c| during(c) && c.written()).collect();
        assert!(succeeded.is_empty(), "{writer}: writes succeeded while the database was away: {succeeded:?}");
        let ended_during = |c: &&Call| c.began + c.took > cut_at && c.began + c.took < restored_at;
        let refused = mine.iter().filter(|c| ended_during(c) && c.outcome == Outcome::Unavailable).count();
        assert!(refused >= outage.refused, "{writer} was refused only {refused} times during the outage");
        // After the restore the writes succeed again by themselves, and keep succeeding.
        let first = mine.iter().find(|c| c.began >= restored_at && c.written());
        let first = first.unwrap_or_else(|| panic!("{writer} wrote nothing after the restore"));
        let recovered = first.began + first.took - restored_at;
        assert!(recovered < RECOVERY_BOUND, "{writer} wrote again only {recovered:?} after the restore");
        let settled = first.began + first.took + Duration::from_millis(500);
        let failed: Vec<&Call> = mine.iter().copied().filter(|c| c.began > settled && !c.written()).collect();
        assert!(failed.is_empty(), "{writer}: writes failed well after the recovery: {failed:?}");
        println!(
            "{writer}: {before} written before the outage, {refused} refused during it, writing again \
             {recovered:?} after the restore"
        );
        acknowledged.extend(mine.iter().filter_map(|c| match &c.outcome {
            Outcome::Written(id) => Some(id.clone()),
            _ => None,
        }));
    }
    println!(
        "{} writes, {} acknowledged; readiness probes during the outage {probes:?}; both replicas ready \
         {ready_after:?} after the restore; slowest refusal {slowest_refusal:?}",
        calls.len(),
        acknowledged.len()
    );

    // Both followers resumed: a write on each after the outage shows on the other.
    let (on_a, on_b) = (a.create_org("after-on-a").await, b.create_org("after-on-b").await);
    for (name, server, id) in [("B", &b, &on_a), ("A", &a, &on_b)] {
        let path = format!("/organizations/{id}");
        eventually(&format!("{name}'s follower resumed"), RECOVERY_BOUND, async || {
            server.json(Method::GET, &path, None).await.status == StatusCode::OK
        })
        .await;
    }
    // Nothing acknowledged was lost, on either replica.
    for (name, server) in [("A", &a), ("B", &b)] {
        let held = listed(server).await;
        let lost: Vec<&String> = acknowledged.iter().filter(|id| !held.contains(*id)).collect();
        assert!(lost.is_empty(), "{name} lacks {} acknowledged writes: {lost:?}", lost.len());
    }

    a.stop().await;
    b.stop().await;
    drop(proxy);
    schema.drop().await;
}
