//! The OpenID AuthZEN API against iamd's own Check, in one run: the same decision asked as an
//! AuthZEN evaluation (`POST /access/v1/evaluation`) and as `POST /v1/authz:check`, both JSON,
//! over HTTP/1.1 and over h2c, driven by h2load (`apt-get install nghttp2-client`) from a
//! process of its own. Then the latency of each AuthZEN search over 10,000 statements.
//!
//! The server holds `POLICIES` policies of `STATEMENTS` statements each over `USERS` users
//! (written through the API), so a decision finds a handful among 10,000 statements.
//! Throughput phases alternate between the two endpoints for `ROUNDS` rounds (an even number,
//! so each goes first as often as the other), and each ratio is the median of the per-round
//! ratios, both sides measured in the same round. h2load is one process on one core, so the
//! throughput carries its cost too; the server's CPU time per request is shown beside it.
//!
//! Run: `cargo bench --bench authzen`.

// A benchmark fails loudly: `expect` on setup steps is the clearest report.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::net::SocketAddr;
use std::process::Command;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

const POLICIES: usize = 100;
const STATEMENTS: usize = 100;
const USERS: usize = 200;
const DOCS: usize = 500;
const VERBS: [&str; 5] = ["read", "write", "share", "delete", "print"];
const ROUNDS: usize = 4;
const TOKEN: &str = "bench-bootstrap-token";

/// Requests per phase (`IAMD_BENCH_REQUESTS`): a fixed count, so the server's CPU time per
/// request is the phase's CPU time over it.
fn requests() -> u64 {
    std::env::var("IAMD_BENCH_REQUESTS").ok().and_then(|s| s.parse().ok()).unwrap_or(300_000)
}

/// CPU time this process (the server: h2load runs in its own) has used, in seconds.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // After the command's `(…)`, utime and stime are the 12th and 13th fields, in clock ticks.
    let rest = stat.rsplit_once(')').unwrap().1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

/// One phase's throughput and the server's CPU time per request.
#[derive(Clone, Copy)]
struct Phase {
    throughput: f64,
    cpu_us: f64,
}

type Http = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

async fn post(http: &Http, addr: SocketAddr, path: &str, body: &Value) -> Value {
    let request = http::Request::post(format!("http://{addr}{path}"))
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Full::new(Bytes::from(serde_json::to_vec(body).unwrap())))
        .unwrap();
    let response = http.request(request).await.expect("iamd answers");
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    assert!(status.is_success(), "{path}: {status} {}", String::from_utf8_lossy(&bytes));
    serde_json::from_slice(&bytes).unwrap()
}

/// 10,000 statements: each names one verb on one document, a fifth of them under a condition,
/// one in 17 a DENY; a tenth of the policies are every local user's.
async fn seed(http: &Http, addr: SocketAddr) {
    for u in 0..USERS {
        let properties = if u.is_multiple_of(3) { json!({"clearance": "high"}) } else { json!({}) };
        post(http, addr, "/iam/users", &json!({"id": format!("u{u}"), "name": "u", "properties": properties})).await;
    }
    for p in 0..POLICIES {
        let statements: Vec<Value> = (0..STATEMENTS)
            .map(|s| {
                let n = p * STATEMENTS + s;
                let mut statement = json!({
                    "effect": if n.is_multiple_of(17) { "DENY" } else { "ALLOW" },
                    "actions": [format!("authzen:doc:{}", VERBS[n % VERBS.len()])],
                    "resources": [format!("authzen:doc:d{}", (n * 7) % DOCS)],
                    "tenants": ["*"],
                });
                if n.is_multiple_of(5) {
                    statement["conditionsAll"] = json!([{"all": {"stringEquals": {"subject.clearance": "high"}}}]);
                }
                statement
            })
            .collect();
        let members: Vec<String> = if p.is_multiple_of(10) {
            vec!["user:local:*".into()]
        } else {
            (0..4).map(|k| format!("user:local:u{}", (p * 4 + k) % USERS)).collect()
        };
        let policy =
            json!({"id": format!("p{p}"), "name": format!("p{p}"), "members": members, "statements": statements});
        post(http, addr, "/iam/policies", &policy).await;
    }
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
    let addr = server.addr;
    let http: Http = Client::builder(TokioExecutor::new()).build_http();
    runtime.block_on(seed(&http, addr));

    // One decision, asked both ways; both must allow it, so h2load's 200s are real answers.
    let evaluation = json!({
        "subject": {"type": "user", "id": "u4"},
        "action": {"name": "write"},
        "resource": {"type": "doc", "id": "d207"},
    });
    let check = json!({"subject": "user:local:u4", "action": "authzen:doc:write", "resource": "authzen:doc:d207"});
    let (authzen, checked) = runtime.block_on(async {
        (
            post(&http, addr, "/access/v1/evaluation", &evaluation).await,
            post(&http, addr, "/v1/authz:check", &check).await,
        )
    });
    assert_eq!((authzen["decision"].clone(), checked["allowed"].clone()), (json!(true), json!(true)));
    let evaluation_body = dir.path().join("evaluation.json");
    std::fs::write(&evaluation_body, evaluation.to_string()).unwrap();
    let check_body = dir.path().join("check.json");
    std::fs::write(&check_body, check.to_string()).unwrap();

    println!(
        "Decisions over 10,000 statements ({POLICIES} policies × {STATEMENTS}), {USERS} users; h2load, 1 thread, {ROUNDS} rounds of {} requests per phase.\n",
        requests()
    );
    println!(
        "| transport | load | AuthZEN evaluation (req/s, median round) | `/v1/authz:check` (req/s) | ratio, median of rounds | per round | server CPU µs/req, evaluation / check | target |"
    );
    println!("|---|---|---:|---:|---:|---|---:|---:|");
    let loads: [(&str, &[&str], &str); 2] = [
        ("HTTP/1.1", &["--h1", "-c", "32", "-m", "1"], "32 connections × 1"),
        ("h2c", &["-c", "4", "-m", "16"], "4 connections × 16"),
    ];
    for (transport, args, label) in loads {
        let (mut evaluations, mut checks, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        let (mut evaluation_cpu, mut check_cpu) = (Vec::new(), Vec::new());
        for round in 0..ROUNDS {
            // Alternate which goes first, so neither always runs on a warmer or colder machine.
            let mut pair = [("/access/v1/evaluation", &evaluation_body), ("/v1/authz:check", &check_body)];
            if round % 2 == 1 {
                pair.reverse();
            }
            let mut got = std::collections::HashMap::new();
            for (path, body) in pair {
                got.insert(path, h2load(&format!("http://{addr}{path}"), body, args));
            }
            let (e, c) = (got["/access/v1/evaluation"], got["/v1/authz:check"]);
            eprintln!(
                "  {transport} round {round}: evaluation {:.0} req/s ({:.1} µs CPU), check {:.0} req/s ({:.1} µs CPU)",
                e.throughput, e.cpu_us, c.throughput, c.cpu_us
            );
            evaluations.push(e.throughput);
            checks.push(c.throughput);
            ratios.push(e.throughput / c.throughput);
            evaluation_cpu.push(e.cpu_us);
            check_cpu.push(c.cpu_us);
        }
        let per_round: Vec<String> = ratios.iter().map(|r| format!("{r:.3}")).collect();
        println!(
            "| {transport} | {label} | {:.0} | {:.0} | **{:.3}** | {} | {:.1} / {:.1} | ≥ 0.95 |",
            median(&mut evaluations),
            median(&mut checks),
            median(&mut ratios),
            per_round.join(", "),
            median(&mut evaluation_cpu),
            median(&mut check_cpu),
        );
    }

    // Search latency, one request at a time, every page of 100.
    println!(
        "\nSearch latency over the same 10,000 statements, one request in flight, 200 requests each (HTTP/1.1):\n"
    );
    println!("| search | what it asks | results (first page) | p50 | p99 |");
    println!("|---|---|---:|---:|---:|");
    let searches = [
        (
            "subject",
            "/access/v1/search/subject",
            json!({"subject": {"type": "user"}, "action": {"name": "write"}, "resource": {"type": "doc", "id": "d207"}}),
            "which users may write d207",
        ),
        (
            "resource",
            "/access/v1/search/resource",
            json!({"subject": {"type": "user", "id": "u3"}, "action": {"name": "read"}, "resource": {"type": "doc"}}),
            "which documents u3 may read",
        ),
        (
            "action",
            "/access/v1/search/action",
            json!({"subject": {"type": "user", "id": "u4"}, "resource": {"type": "doc", "id": "d207"}}),
            "what u4 may do on d207",
        ),
    ];
    for (name, path, body, what) in searches {
        let (count, mut durations) = runtime.block_on(async {
            let count = post(&http, addr, path, &body).await["results"].as_array().unwrap().len();
            let mut durations = Vec::new();
            for _ in 0..200 {
                let started = Instant::now();
                post(&http, addr, path, &body).await;
                durations.push(started.elapsed().as_micros() as u64);
            }
            (count, durations)
        });
        durations.sort_unstable();
        let at = |q: f64| durations[((durations.len() as f64 * q) as usize).min(durations.len() - 1)];
        println!("| {name} | {what} | {count} | {} µs | {} µs |", at(0.5), at(0.99));
    }
    runtime.block_on(server.stop()).unwrap();
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// One closed-loop phase of `requests()` requests; fails on any non-2xx answer.
fn h2load(url: &str, body: &std::path::Path, load: &[&str]) -> Phase {
    let before = cpu_seconds();
    let output = Command::new("h2load")
        .args(["-t", "1"])
        .args(load)
        .args(["-n", &requests().to_string()])
        .args(["-H", "content-type: application/json"])
        .args(["-H", &format!("authorization: Bearer {TOKEN}")])
        .arg("-d")
        .arg(body)
        .arg(url)
        .output()
        .expect("h2load runs");
    let cpu = cpu_seconds() - before;
    let text = String::from_utf8_lossy(&output.stdout);
    let ok = text
        .lines()
        .find_map(|l| l.strip_prefix("status codes: "))
        .map(|l| l.split(", ").skip(1).all(|part| part.starts_with("0 ")))
        .unwrap_or(false);
    assert!(ok, "{url}: answers other than 2xx:\n{text}");
    // `finished in 5.00s, 62252.75 req/s, 3.80MB/s`
    let throughput = text
        .lines()
        .find_map(|l| l.strip_prefix("finished in "))
        .and_then(|l| l.split(", ").nth(1)?.strip_suffix(" req/s")?.parse().ok())
        .unwrap_or(0.0);
    Phase { throughput, cpu_us: cpu * 1e6 / requests() as f64 }
}
