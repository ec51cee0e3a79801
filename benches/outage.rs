//! PostgreSQL outage benchmark: recovery time after the database comes back, and the write
//! error rate while it is gone. One in-process iamd reaches a scratch schema through a TCP
//! proxy (`tests/it/proxy.rs`) under a steady load of `CreateOrganization` over native gRPC
//! (closed loop, each client its own h2c connection; a refused client waits 10 ms before its
//! next write, as a real one would back off). Each round: steady load, the proxy takes the
//! database away, then gives it back; measured per round:
//!
//! - the writes made while the database was away (begun after it went, answered before it
//!   came back): how many failed, with which codes;
//! - the writes in flight when it went: how many were acknowledged, how many refused;
//! - the latency of the failed writes (p50, p99, max): that they do not hang;
//! - from the restore to the first acknowledged write, and to the first `/readyz` 200
//!   (polled every 5 ms from the restore on);
//! - the write rate before the outage and after the recovery.
//!
//! Two ways to go away: `cut` (the database down: connections closed, new ones refused) for
//! `IAMD_BENCH_ROUNDS` rounds (3) of `IAMD_BENCH_OUTAGE_SECS` (3 s), then `stall` (its host
//! dark: connections silent, new ones never answered) for `IAMD_BENCH_STALL_ROUNDS` rounds
//! (1) of `IAMD_BENCH_STALL_SECS` (16 s, longer than the store's 5 s bound on a call plus its
//! 10 s bound on opening a connection, so that both show). At the end, the acknowledged
//! writes are looked up in the database, and the writes that landed although they were
//! refused (a commit whose answer was lost) are counted.
//!
//! Needs PostgreSQL: `IAMD_BENCH_DATABASE_URL` or `IAMD_TEST_DATABASE_URL`; without either it
//! says so and exits. Run: `cargo bench --bench outage` (see BENCHMARKS.md).

// A benchmark fails loudly: `expect` on setup steps is the clearest report.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use iamd::config::{Config, Secret};
use iamd::pb::iamd::accounts::v1 as pb;
use pb::organization_service_client::OrganizationServiceClient;
use tokio::sync::watch;

use proxy::Proxy;

mod common;
#[path = "../tests/it/proxy.rs"]
mod proxy;

const CLIENTS: usize = 8;
/// Load before the outage, and after the restore.
const STEADY: Duration = Duration::from_secs(2);
const PAUSE_AFTER_FAILURE: Duration = Duration::from_millis(10);
/// A client gives up on a write after this (it would count as DEADLINE_EXCEEDED or
/// CANCELLED); nothing should come near it.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

fn env_f64(name: &str, default: f64) -> f64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// One write, as its client saw it.
struct Call {
    began: Instant,
    ended: Instant,
    code: tonic::Code,
    id: Option<String>,
}

impl Call {
    fn ok(&self) -> bool {
        self.code == tonic::Code::Ok
    }
}

/// Every write a distinct name, across clients and rounds.
static NAMES: AtomicU64 = AtomicU64::new(0);

async fn writer(addr: std::net::SocketAddr, stop: watch::Receiver<bool>) -> Vec<Call> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .timeout(CLIENT_TIMEOUT)
        .connect()
        .await
        .unwrap();
    let mut client = OrganizationServiceClient::with_interceptor(channel, common::credential as common::Credential);
    let mut calls = Vec::new();
    while !*stop.borrow() {
        let n = NAMES.fetch_add(1, Ordering::Relaxed);
        let began = Instant::now();
        let answer = client
            .create_organization(pb::CreateOrganizationRequest { name: format!("outage-{n}"), domain: String::new() })
            .await;
        let ended = Instant::now();
        let (code, id) = match answer {
            Ok(reply) => (tonic::Code::Ok, reply.into_inner().organization.map(|o| o.id)),
            Err(status) => (status.code(), None),
        };
        calls.push(Call { began, ended, code, id });
        if code != tonic::Code::Ok {
            tokio::time::sleep(PAUSE_AFTER_FAILURE).await;
        }
    }
    calls
}

/// What one round measured.
struct Round {
    mode: &'static str,
    outage: Duration,
    /// Writes begun and answered while the database was away, and how many of them failed.
    during: usize,
    failed: usize,
    codes: BTreeMap<String, usize>,
    /// Writes in flight when the database went: acknowledged, refused.
    at_cut: (usize, usize),
    failed_latency: Histogram<u64>,
    first_write: Option<Duration>,
    /// How long that first write itself took.
    first_write_took: Option<Duration>,
    ready: Option<Duration>,
    rate_before: f64,
    rate_after: f64,
    acknowledged: Vec<String>,
}

async fn readyz(http: &Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>, addr: &str) -> bool {
    let request = http::Request::get(format!("http://{addr}/readyz")).body(Full::new(Bytes::new())).unwrap();
    matches!(http.request(request).await, Ok(response) if response.status() == http::StatusCode::OK)
}

async fn round(addr: std::net::SocketAddr, proxy: &Proxy, mode: &'static str, outage: Duration) -> Round {
    let http = Client::builder(TokioExecutor::new()).build_http();
    let (stop, stopped) = watch::channel(false);
    let writers: Vec<_> = (0..CLIENTS).map(|_| tokio::spawn(writer(addr, stopped.clone()))).collect();
    tokio::time::sleep(STEADY).await;

    let cut_at = Instant::now();
    match mode {
        "cut" => proxy.cut(),
        _ => proxy.stall(),
    }
    tokio::time::sleep(outage).await;
    let restored_at = Instant::now();
    proxy.restore();
    let mut ready = None;
    while restored_at.elapsed() < STEADY {
        if readyz(&http, &addr.to_string()).await {
            ready = Some(restored_at.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep_until((restored_at + STEADY).into()).await;
    stop.send_replace(true);
    let mut calls = Vec::new();
    for writer in writers {
        calls.extend(writer.await.unwrap());
    }

    let during: Vec<&Call> = calls.iter().filter(|c| c.began >= cut_at && c.ended <= restored_at).collect();
    let mut codes = BTreeMap::new();
    for call in during.iter().filter(|c| !c.ok()) {
        *codes.entry(format!("{:?}", call.code)).or_insert(0) += 1;
    }
    let in_flight = calls.iter().filter(|c| c.began < cut_at && c.ended > cut_at);
    let at_cut = in_flight.fold((0, 0), |(ok, failed), c| if c.ok() { (ok + 1, failed) } else { (ok, failed + 1) });
    let mut failed_latency = Histogram::<u64>::new(3).unwrap();
    for call in calls.iter().filter(|c| !c.ok()) {
        failed_latency.record((call.ended - call.began).as_micros() as u64).unwrap();
    }
    let first = calls.iter().filter(|c| c.ok() && c.ended > restored_at).min_by_key(|c| c.ended);
    let first_write = first.map(|c| c.ended - restored_at);
    let first_write_took = first.map(|c| c.ended - c.began);
    // The rate over the second half of each steady phase, away from the transitions.
    let half = STEADY / 2;
    let rate = |from: Instant, to: Instant| {
        calls.iter().filter(|c| c.ok() && c.ended >= from && c.ended < to).count() as f64 / (to - from).as_secs_f64()
    };
    let rate_before = rate(cut_at - half, cut_at);
    let rate_after = rate(restored_at + half, restored_at + STEADY);
    Round {
        mode,
        outage,
        during: during.len(),
        failed: during.iter().filter(|c| !c.ok()).count(),
        codes,
        at_cut,
        failed_latency,
        first_write,
        first_write_took,
        ready,
        rate_before,
        rate_after,
        acknowledged: calls.into_iter().filter_map(|c| c.id).collect(),
    }
}

fn ms(d: Option<Duration>) -> String {
    d.map_or_else(|| "never".to_owned(), |d| format!("{:.1}", d.as_secs_f64() * 1000.0))
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let url = std::env::var("IAMD_BENCH_DATABASE_URL").or_else(|_| std::env::var("IAMD_TEST_DATABASE_URL"));
        let Ok(url) = url else {
            println!("outage benchmark skipped: set IAMD_BENCH_DATABASE_URL or IAMD_TEST_DATABASE_URL");
            return;
        };
        let rounds = env_f64("IAMD_BENCH_ROUNDS", 3.0).max(0.0) as usize;
        let outage = Duration::from_secs_f64(env_f64("IAMD_BENCH_OUTAGE_SECS", 3.0));
        let stall_rounds = env_f64("IAMD_BENCH_STALL_ROUNDS", 1.0).max(0.0) as usize;
        let stall = Duration::from_secs_f64(env_f64("IAMD_BENCH_STALL_SECS", 16.0));

        let (admin, schema_url, schema) = common::scratch_schema(&url).await;
        let version: String = admin.query_one("SHOW server_version", &[]).await.unwrap().get(0);
        let fsync: String = admin.query_one("SHOW fsync", &[]).await.unwrap().get(0);
        println!(
            "PostgreSQL outage: {CLIENTS} gRPC clients writing through a proxy; PostgreSQL {version}, fsync={fsync}; \
             {} cores",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        let proxy = Proxy::start(proxy::database_addr(&url).await.expect("the database address")).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let config = Config { database_url: Some(Secret::new(proxy.url(&schema_url))), ..common::config(dir.path()) };
        let server = iamd::server::start(config).await.expect("server start");
        let count = async || -> i64 {
            let sql = format!("SELECT count(*) FROM {schema}.objects WHERE kind = 'organization'");
            admin.query_one(&sql, &[]).await.unwrap().get(0)
        };
        let stored_before = count().await;

        let plan =
            std::iter::repeat_n(("cut", outage), rounds).chain(std::iter::repeat_n(("stall", stall), stall_rounds));
        let mut results = Vec::new();
        for (mode, length) in plan {
            let r = round(server.addr, &proxy, mode, length).await;
            eprintln!(
                "{mode} {:.0} s: {}/{} failed during, first write {} ms, ready {} ms",
                length.as_secs_f64(),
                r.failed,
                r.during,
                ms(r.first_write),
                ms(r.ready)
            );
            results.push(r);
        }
        server.stop().await.expect("server stop");

        let acknowledged: Vec<&String> = results.iter().flat_map(|r| &r.acknowledged).collect();
        let unique: std::collections::HashSet<&String> = acknowledged.iter().copied().collect();
        let stored = count().await - stored_before;
        let sql = format!("SELECT id FROM {schema}.objects WHERE kind = 'organization'");
        let ids: std::collections::HashSet<String> =
            admin.query(&sql, &[]).await.unwrap().iter().map(|row| row.get(0)).collect();
        let lost = unique.iter().filter(|id| !ids.contains(id.as_str())).count();
        admin.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")).await.unwrap();

        println!(
            "\n| outage | length s | writes during | failed during | codes | in flight at the cut: acked / refused \
             | failed p50 / p99 / max ms | first write after restore ms (its own latency) \
             | /readyz 200 after restore ms | writes/s before / after |\n|---|---|---|---|---|---|---|---|---|---|"
        );
        for r in &results {
            let codes: Vec<String> = r.codes.iter().map(|(code, n)| format!("{code} {n}")).collect();
            let q = |q: f64| r.failed_latency.value_at_quantile(q) as f64 / 1000.0;
            println!(
                "| {} | {:.0} | {} | {} ({:.1} %) | {} | {} / {} | {:.1} / {:.1} / {:.1} | {} ({}) | {} | {:.0} / {:.0} |",
                r.mode,
                r.outage.as_secs_f64(),
                r.during,
                r.failed,
                100.0 * r.failed as f64 / r.during.max(1) as f64,
                codes.join(", "),
                r.at_cut.0,
                r.at_cut.1,
                q(0.5),
                q(0.99),
                r.failed_latency.max() as f64 / 1000.0,
                ms(r.first_write),
                ms(r.first_write_took),
                ms(r.ready),
                r.rate_before,
                r.rate_after
            );
        }
        println!(
            "\n{} writes acknowledged, {lost} of them missing from the database; {} organizations stored: {} \
             of them landed although they were refused (a commit whose answer was lost)",
            unique.len(),
            stored,
            stored - unique.len() as i64
        );
    });
}
