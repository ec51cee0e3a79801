//! End-to-end `Check` over native gRPC: an in-process iamd on embedded SQLite holding
//! `POLICIES` IAM v2 policies (written through the API), driven by tonic clients over h2c.
//!
//! 1. Closed loop, `CONNECTIONS` x `STREAMS` requests in flight: the maximum throughput.
//! 2. Open loop at half of it (and a quarter): requests start on a fixed schedule (not when the previous one
//!    answers, so a slow answer cannot hide the queue behind it), each timed from its send
//!    into an HDR histogram.
//!
//! Run: `cargo bench --bench check` (`IAMD_BENCH_SECS` sets each phase's length, 5 s).

// A benchmark fails loudly: `expect` on setup steps is the clearest report.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use iamd::pb::iamd::authz::v1 as authz;
use iamd::pb::iamd::iam::v2 as iam;
use tonic::transport::Channel;

const POLICIES: usize = 1_000;
const CONNECTIONS: usize = 4;
const STREAMS: usize = 16;
const SUBJECTS: usize = 200;

fn secs() -> f64 {
    std::env::var("IAMD_BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(5.0)
}

/// A check of a random subject, action and resource: some are allowed, most are not.
fn request(i: u64) -> authz::CheckRequest {
    let n = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    authz::CheckRequest {
        subject: format!("user:local:u{}", n % SUBJECTS as u64),
        action: ["infra:nodes:get", "infra:nodes:delete", "iam:users:list"][(n >> 8) as usize % 3].into(),
        resource: format!("infra:nodes:n{}", (n >> 16) % 50),
        ..Default::default()
    }
}

fn main() {
    // The server and the load generator on runtimes of their own, as two processes would be.
    let server_runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let client_runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = server_runtime
        .block_on(iamd::server::start(iamd::config::Config::for_data_dir(dir.path())))
        .expect("iamd starts");
    let clients = client_runtime.handle().clone();
    client_runtime.block_on(run(server.addr, clients));
    server_runtime.block_on(server.stop()).unwrap();
}

async fn run(addr: std::net::SocketAddr, runtime: tokio::runtime::Handle) {
    let url = format!("http://{addr}");
    let mut channels = Vec::new();
    for _ in 0..CONNECTIONS {
        channels.push(Channel::from_shared(url.clone()).unwrap().connect().await.unwrap());
    }
    let mut policies = iam::policy_service_client::PolicyServiceClient::new(channels[0].clone());
    for p in 0..POLICIES {
        let statement = |effect: i32, actions: Vec<String>, resources: Vec<String>| iam::Statement {
            effect,
            actions,
            resources,
            tenants: vec!["*".into()],
            ..Default::default()
        };
        let request = iam::CreatePolicyRequest {
            id: format!("p{p}"),
            name: format!("p{p}"),
            members: vec![format!("user:local:u{}", p % SUBJECTS)],
            statements: vec![
                statement(0, vec!["infra:nodes:*".into()], vec![format!("infra:nodes:n{}", p % 50)]),
                statement(1, vec!["infra:nodes:delete".into()], vec!["infra:nodes:*".into()]),
            ],
            ..Default::default()
        };
        policies.create_policy(request).await.expect("a policy is written");
    }
    let clients: Vec<_> =
        channels.iter().map(|c| authz::authz_service_client::AuthzServiceClient::new(c.clone())).collect();

    let phase = Duration::from_secs_f64(secs());
    // Warm up, then the closed loop.
    closed_loop(&clients, Duration::from_secs(1)).await;
    let (done, elapsed, allowed) = closed_loop(&clients, phase).await;
    let max = done as f64 / elapsed.as_secs_f64();
    println!("| phase | requests | throughput (req/s) | p50 | p99 | p99.9 | max | allowed |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    println!("| closed loop, {CONNECTIONS} x {STREAMS} in flight | {done} | {max:.0} | | | | | {allowed} |");

    for (share, label) in [(2.0, "half"), (4.0, "a quarter")] {
        let rate = max / share;
        let histogram = open_loop(&clients, rate, phase, runtime.clone()).await;
        let us = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
        println!(
            "| open loop at {rate:.0} req/s ({label}) | {} | {rate:.0} | {:.0} µs | {:.0} µs | {:.0} µs | {:.0} µs | |",
            histogram.len(),
            us(0.5),
            us(0.99),
            us(0.999),
            histogram.max() as f64 / 1000.0
        );
    }
}

type Client = authz::authz_service_client::AuthzServiceClient<Channel>;

async fn closed_loop(clients: &[Client], length: Duration) -> (u64, Duration, u64) {
    let next = Arc::new(AtomicU64::new(0));
    let allowed = Arc::new(AtomicU64::new(0));
    let end = Instant::now() + length;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client in clients {
        for _ in 0..STREAMS {
            let (mut client, next, allowed) = (client.clone(), next.clone(), allowed.clone());
            tasks.push(tokio::spawn(async move {
                while Instant::now() < end {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let answer = client.check(request(i)).await.expect("a check answers").into_inner();
                    if answer.allowed {
                        allowed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
    }
    for task in tasks {
        task.await.unwrap();
    }
    (next.load(Ordering::Relaxed), started.elapsed(), allowed.load(Ordering::Relaxed))
}

/// Sends `rate` checks a second for `length`, paced by an OS thread (whose sleeps are finer
/// than tokio's millisecond timer, so requests do not leave in bursts), each timed from its
/// send.
async fn open_loop(clients: &[Client], rate: f64, length: Duration, runtime: tokio::runtime::Handle) -> Histogram<u64> {
    let interval = Duration::from_secs_f64(1.0 / rate);
    let total = (rate * length.as_secs_f64()) as u64;
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel::<u64>();
    let clients = clients.to_vec();
    let pacer = std::thread::spawn(move || {
        let start = Instant::now();
        for i in 0..total {
            let due = start + interval.mul_f64(i as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            let mut client = clients[i as usize % clients.len()].clone();
            let sender = sender.clone();
            runtime.spawn(async move {
                let sent = Instant::now();
                client.check(request(i)).await.expect("a check answers");
                let _ = sender.send(sent.elapsed().as_nanos() as u64);
            });
        }
    });
    let mut histogram = Histogram::<u64>::new_with_bounds(1_000, 60_000_000_000, 3).unwrap();
    while let Some(nanos) = receiver.recv().await {
        histogram.record(nanos.max(1_000)).unwrap();
    }
    pacer.join().unwrap();
    histogram
}
