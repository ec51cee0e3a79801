//! Durable-write benchmark: `CreateOrganization` over native gRPC against an in-process
//! iamd, with 1 and with 16 concurrent clients (each its own h2c connection, one request in
//! flight), on SQLite (a data directory on disk, `synchronous=FULL`) and on PostgreSQL (when
//! `IAMD_BENCH_DATABASE_URL` or `IAMD_TEST_DATABASE_URL` names one; fsync as the server has
//! it, printed). A write counts once the server answered it, which is after its commit.
//! Then, on PostgreSQL, the replication lag: a write on replica A, polled on replica B until
//! B's view has it, with no consistency token.
//!
//! Run: `cargo bench --bench writes` (see BENCHMARKS.md).

// A benchmark fails loudly: `expect` on setup steps is the clearest report.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::scratch_schema;
use hdrhistogram::Histogram;
use iamd::config::{Config, Secret};
use iamd::pb::iamd::accounts::v1 as pb;
use pb::organization_service_client::OrganizationServiceClient;
use tonic::transport::Channel;

mod common;

const SECS: f64 = 5.0;
const WARMUP_SECS: f64 = 1.0;
const CLIENTS: [usize; 2] = [1, 16];
const LAG_SAMPLES: usize = 200;

fn secs(name: &str, default: f64) -> f64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

async fn channel(addr: std::net::SocketAddr) -> Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{addr}")).unwrap().connect().await.unwrap()
}

/// Every write a distinct name, across clients and phases.
static NAMES: AtomicU64 = AtomicU64::new(0);

async fn create(client: &mut OrganizationServiceClient<common::Authorized>) {
    let n = NAMES.fetch_add(1, Ordering::Relaxed);
    client
        .create_organization(pb::CreateOrganizationRequest { name: format!("bench-{n}"), domain: String::new() })
        .await
        .expect("a write failed");
}

/// Writes per second and latency with `clients` concurrent clients for `duration`.
async fn phase(addr: std::net::SocketAddr, clients: usize, duration: Duration) -> (f64, Histogram<u64>) {
    let mut tasks = Vec::new();
    let start = Instant::now() + Duration::from_millis(50);
    for _ in 0..clients {
        let mut client =
            OrganizationServiceClient::with_interceptor(channel(addr).await, common::credential as common::Credential);
        tasks.push(tokio::spawn(async move {
            let mut histogram = Histogram::<u64>::new(3).unwrap();
            tokio::time::sleep_until(start.into()).await;
            let mut count = 0u64;
            while start.elapsed() < duration {
                let began = Instant::now();
                create(&mut client).await;
                histogram.record(began.elapsed().as_micros() as u64).unwrap();
                count += 1;
            }
            (count, histogram)
        }));
    }
    let mut total = 0;
    let mut histogram = Histogram::<u64>::new(3).unwrap();
    for task in tasks {
        let (count, h) = task.await.unwrap();
        total += count;
        histogram.add(h).unwrap();
    }
    (total as f64 / duration.as_secs_f64(), histogram)
}

async fn measure(label: &str, config: Config, rows: &mut Vec<String>) {
    let server = iamd::server::start(config).await.expect("server start");
    let warmup = Duration::from_secs_f64(secs("IAMD_BENCH_WARMUP_SECS", WARMUP_SECS));
    let duration = Duration::from_secs_f64(secs("IAMD_BENCH_SECS", SECS));
    for clients in CLIENTS {
        phase(server.addr, clients, warmup).await;
        let (rate, histogram) = phase(server.addr, clients, duration).await;
        let row = format!(
            "| {label} | {clients} | {rate:.0} | {:.2} | {:.2} |",
            histogram.value_at_quantile(0.5) as f64 / 1000.0,
            histogram.value_at_quantile(0.99) as f64 / 1000.0
        );
        println!("{row}");
        rows.push(row);
    }
    server.stop().await.expect("server stop");
}

/// How long a write on replica A takes to show on replica B without a token.
async fn replication_lag(url: &str) -> Histogram<u64> {
    let dir_a = tempfile::tempdir().unwrap();
    let dir_b = tempfile::tempdir().unwrap();
    let config =
        |dir: &tempfile::TempDir| Config { database_url: Some(Secret::new(url)), ..common::config(dir.path()) };
    let a = iamd::server::start(config(&dir_a)).await.unwrap();
    let b = iamd::server::start(config(&dir_b)).await.unwrap();
    let mut on_a =
        OrganizationServiceClient::with_interceptor(channel(a.addr).await, common::credential as common::Credential);
    let mut on_b =
        OrganizationServiceClient::with_interceptor(channel(b.addr).await, common::credential as common::Credential);
    let mut histogram = Histogram::<u64>::new(3).unwrap();
    // Writes spaced by a varying pause, so they do not fall into step with B's polling.
    let mut jitter = 0x2545_f491_4f6c_dd1d_u64;
    for i in 0..LAG_SAMPLES {
        jitter ^= jitter << 13;
        jitter ^= jitter >> 7;
        jitter ^= jitter << 17;
        tokio::time::sleep(Duration::from_micros(jitter % 60_000)).await;
        let created = on_a
            .create_organization(pb::CreateOrganizationRequest { name: format!("lag-{i}"), domain: String::new() })
            .await
            .unwrap()
            .into_inner();
        let id = created.organization.unwrap().id;
        let written = Instant::now();
        loop {
            let read = on_b.get_organization(pb::GetOrganizationRequest { organization_id: id.clone() }).await;
            if read.is_ok() {
                break;
            }
            assert!(written.elapsed() < Duration::from_secs(10), "B never saw the write");
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        histogram.record(written.elapsed().as_micros() as u64).unwrap();
    }
    a.stop().await.unwrap();
    b.stop().await.unwrap();
    histogram
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        println!("durable writes: CreateOrganization over gRPC, {SECS} s per phase after {WARMUP_SECS} s warm-up");
        let mut rows = Vec::new();

        // On the repository's disk, not a tmpfs, so synchronous=FULL really syncs.
        let base = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
        let dir = tempfile::tempdir_in(&base).unwrap();
        measure("SQLite", common::config(dir.path()), &mut rows).await;

        let url = std::env::var("IAMD_BENCH_DATABASE_URL").or_else(|_| std::env::var("IAMD_TEST_DATABASE_URL"));
        let Ok(url) = url else {
            println!("PostgreSQL skipped: set IAMD_BENCH_DATABASE_URL or IAMD_TEST_DATABASE_URL");
            return;
        };
        let (admin, schema_url, schema) = scratch_schema(&url).await;
        let fsync: String = admin.query_one("SHOW fsync", &[]).await.unwrap().get(0);
        let sync_commit: String = admin.query_one("SHOW synchronous_commit", &[]).await.unwrap().get(0);
        println!("PostgreSQL: fsync={fsync} synchronous_commit={sync_commit}");
        let pg_dir = tempfile::tempdir().unwrap();
        let config = Config { database_url: Some(Secret::new(&schema_url)), ..common::config(pg_dir.path()) };
        measure("PostgreSQL", config, &mut rows).await;
        admin.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")).await.unwrap();

        println!("\n| store | clients | writes/s | p50 ms | p99 ms |\n|---|---|---|---|---|");
        for row in &rows {
            println!("{row}");
        }

        let (admin, schema_url, schema) = scratch_schema(&url).await;
        let lag = replication_lag(&schema_url).await;
        println!(
            "\nreplication lag without a token ({LAG_SAMPLES} writes, two replicas, default --follow-interval): \
             p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            lag.value_at_quantile(0.5) as f64 / 1000.0,
            lag.value_at_quantile(0.99) as f64 / 1000.0,
            lag.max() as f64 / 1000.0
        );
        admin.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")).await.unwrap();
    });
}
