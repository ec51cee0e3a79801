//! End-to-end `Check` over native gRPC: an in-process iamd on embedded SQLite holding
//! `POLICIES` IAM v2 policies (written through the API), driven by h2load (nghttp2's load
//! tool, `apt-get install nghttp2-client`): a C event loop in a process of its own, so the
//! load costs the two cores this machine has as little as it can.
//!
//! Each phase is a closed loop of `CONNECTIONS` h2c connections with `m` requests in flight on
//! each, for `IAMD_BENCH_SECS` (5 s); h2load logs every request's duration, from which the
//! percentiles come. The largest `m` gives the maximum throughput; the smaller ones show the
//! latency at a fraction of it. (An open loop paced by h2load's `--rps` is not used: its timer
//! releases requests in millisecond bursts, so it measures the bursts.)
//!
//! Run: `cargo bench --bench check`.

// A benchmark fails loudly: `expect` on setup steps is the clearest report.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::process::Command;

use iamd::pb::iamd::authz::v1 as authz;
use iamd::pb::iamd::iam::v2 as iam;
use prost::Message;

const POLICIES: usize = 1_000;
const SUBJECTS: usize = 200;
const CONNECTIONS: usize = 4;
const IN_FLIGHT: [usize; 5] = [1, 2, 4, 8, 16];

fn secs() -> f64 {
    std::env::var("IAMD_BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(5.0)
}

/// Every check authenticates as the bootstrap administrator, whom the front door then
/// authorizes for `authz:decisions:check`, as for any client.
const TOKEN: &str = "bench-bootstrap-token";

fn authorized<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let value = format!("Bearer {TOKEN}").parse().expect("a header value");
    request.metadata_mut().insert("authorization", value);
    request
}

fn main() {
    if Command::new("h2load").arg("--version").output().is_err() {
        eprintln!("h2load is not installed (apt-get install nghttp2-client); nothing measured");
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config =
        iamd::config::Config { bootstrap_token: Some(TOKEN.into()), ..iamd::config::Config::for_data_dir(dir.path()) };
    let server = runtime.block_on(iamd::server::start(config)).expect("iamd starts");
    let url = format!("http://{}/iamd.authz.v1.AuthzService/Check", server.addr);
    runtime.block_on(seed(server.addr));

    // One check that a policy allows: `u7` may get node `n7` (policy `p7`), and every
    // policy's DENY of deletes is looked at too.
    let check = authz::CheckRequest {
        subject: "user:local:u7".into(),
        action: "infra:nodes:get".into(),
        resource: "infra:nodes:n7".into(),
        ..Default::default()
    };
    // h2load sees HTTP statuses only: the check is asked once first, so a refused one fails here.
    let answer = runtime.block_on(async {
        let channel = tonic::transport::Channel::from_shared(format!("http://{}", server.addr)).unwrap();
        let mut client = authz::authz_service_client::AuthzServiceClient::new(channel.connect().await.unwrap());
        client.check(authorized(check.clone())).await.expect("the check answers").into_inner()
    });
    assert!(answer.allowed, "{answer:?}");
    let message = check.encode_to_vec();
    let mut frame = vec![0u8];
    frame.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
    frame.extend_from_slice(&message);
    let body = dir.path().join("check.bin");
    std::fs::write(&body, frame).unwrap();

    println!("| in flight | throughput (req/s) | p50 | p99 | p99.9 | max | failed |");
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    let mut phases = Vec::new();
    for m in IN_FLIGHT {
        let phase = h2load(&url, &body, m, dir.path());
        println!(
            "| {} × {m} | {:.0} | {} µs | {} µs | {} µs | {} µs | {} |",
            CONNECTIONS, phase.throughput, phase.p50, phase.p99, phase.p999, phase.max, phase.failed
        );
        phases.push((m, phase));
    }
    let max = phases.iter().map(|(_, p)| p.throughput).fold(0.0, f64::max);
    if let Some((m, at_half)) = phases.iter().find(|(_, p)| p.throughput >= max / 2.0) {
        println!(
            "\nmaximum {max:.0} req/s; the first phase at half of it or more: {CONNECTIONS} × {m}, {:.0} req/s, p99 {} µs",
            at_half.throughput, at_half.p99
        );
    }
    runtime.block_on(server.stop()).unwrap();
}

/// `POLICIES` policies over `SUBJECTS` users: each allows its user every `infra:nodes` action
/// on one node and denies deletes of every node.
async fn seed(addr: std::net::SocketAddr) {
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap();
    let mut policies = iam::policy_service_client::PolicyServiceClient::new(channel);
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
        policies.create_policy(authorized(request)).await.expect("a policy is written");
    }
}

struct Phase {
    throughput: f64,
    p50: u64,
    p99: u64,
    p999: u64,
    max: u64,
    failed: u64,
}

/// One closed-loop phase: `CONNECTIONS` × `m` requests in flight.
fn h2load(url: &str, body: &std::path::Path, m: usize, dir: &std::path::Path) -> Phase {
    let log = dir.join(format!("h2load-{m}.log"));
    let secs = secs();
    let output = Command::new("h2load")
        .args(["-t", "1", "-c", &CONNECTIONS.to_string(), "-m", &m.to_string()])
        .args(["-D", &format!("{secs}"), "--warm-up-time", "1"])
        .args(["-H", "content-type: application/grpc", "-H", "te: trailers"])
        .args(["-H", &format!("authorization: Bearer {TOKEN}")])
        .arg("-d")
        .arg(body)
        .arg(format!("--log-file={}", log.display()))
        .arg(url)
        .output()
        .expect("h2load runs");
    let text = String::from_utf8_lossy(&output.stdout);
    // `finished in 5.00s, 62252.75 req/s, 3.80MB/s`
    let throughput = text
        .lines()
        .find_map(|l| l.strip_prefix("finished in "))
        .and_then(|l| l.split(", ").nth(1)?.strip_suffix(" req/s")?.parse().ok())
        .unwrap_or(0.0);
    let failed = text
        .lines()
        .find_map(|l| l.strip_prefix("requests: "))
        .and_then(|l| l.split(", ").find_map(|part| part.strip_suffix(" failed")))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(u64::MAX);
    // Each line: start (µs since the run began), HTTP status, duration (µs).
    let mut durations: Vec<u64> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .filter_map(|line| line.split('\t').nth(2)?.parse().ok())
        .collect();
    durations.sort_unstable();
    let at = |q: f64| durations[((durations.len() as f64 * q) as usize).min(durations.len() - 1)];
    Phase {
        throughput,
        p50: at(0.5),
        p99: at(0.99),
        p999: at(0.999),
        max: durations.last().copied().unwrap_or(0),
        failed,
    }
}
