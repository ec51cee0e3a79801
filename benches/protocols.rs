//! Protocol benchmark: one read method (`GetOrganization`) over native gRPC, gRPC-web and
//! JSON REST against one in-process iamd, beside a bare tonic server whose handler returns
//! the same response with no work (the floor for this stack). Every protocol is driven over
//! h2c with the same load shape: `CONNECTIONS` HTTP/2 connections, each carrying
//! `STREAMS_PER_CONNECTION` requests in flight. Per-request latency goes into an HDR
//! histogram; the run prints markdown tables for BENCHMARKS.md and exits non-zero if any
//! request failed.
//!
//! Run: `cargo bench --bench protocols` (see BENCHMARKS.md for the knobs).

// A benchmark fails loudly: `expect` on setup steps is the clearest report.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::HashMap;
use std::error::Error;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use hdrhistogram::Histogram;
use http::{Method, Request, Response, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use prost::Message;
use tonic::{Status, body::Body};

use iamd::pb::iamd::accounts::v1 as pb;
use pb::organization_service_client::OrganizationServiceClient;
use pb::organization_service_server::{OrganizationService, OrganizationServiceServer};

/// HTTP/2 connections per protocol phase.
const CONNECTIONS: usize = 4;
/// Requests in flight on each connection (each one its own HTTP/2 stream).
const STREAMS_PER_CONNECTION: usize = 16;
/// Worker threads of the server runtime and of the load generator's runtime.
const SERVER_THREADS: usize = 2;
const CLIENT_THREADS: usize = 2;
/// Defaults, overridable with `IAMD_BENCH_SECS`, `IAMD_BENCH_WARMUP_SECS`, `IAMD_BENCH_ROUNDS`.
const MEASURE_SECS: f64 = 5.0;
const WARMUP_SECS: f64 = 1.0;
const ROUNDS: usize = 3;
/// The single-stream latency pass (1 connection x 1 request in flight), once per protocol.
const LATENCY_SECS: f64 = 3.0;

const GET_PATH: &str = "/iamd.accounts.v1.OrganizationService/GetOrganization";
/// Every request authenticates as the bootstrap administrator, as a client of a real
/// deployment would (the floor is sent it too, and ignores it).
const TOKEN: &str = "bench-bootstrap-token";
const AUTHORIZATION: &str = "Bearer bench-bootstrap-token";

/// A request with the administrator's credential.
fn authorized<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("authorization", tonic::metadata::MetadataValue::from_static(AUTHORIZATION));
    request
}

type BoxError = Box<dyn Error + Send + Sync>;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Proto {
    Bare,
    Grpc,
    GrpcWeb,
    Json,
}

impl Proto {
    const ALL: [Proto; 4] = [Proto::Bare, Proto::Grpc, Proto::GrpcWeb, Proto::Json];

    /// The `IAMD_BENCH_ONLY` spelling.
    fn key(self) -> &'static str {
        match self {
            Proto::Bare => "bare",
            Proto::Grpc => "grpc",
            Proto::GrpcWeb => "grpc-web",
            Proto::Json => "json",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Proto::Bare => "bare tonic (floor)",
            Proto::Grpc => "gRPC",
            Proto::GrpcWeb => "gRPC-web",
            Proto::Json => "JSON",
        }
    }
}

// ---------------------------------------------------------------------------------------
// The bare floor: a tonic server whose GetOrganization clones a prebuilt answer.

struct Bare {
    answer: pb::GetOrganizationResponse,
}

#[tonic::async_trait]
impl OrganizationService for Bare {
    async fn create_organization(
        &self,
        _: tonic::Request<pb::CreateOrganizationRequest>,
    ) -> Result<tonic::Response<pb::CreateOrganizationResponse>, Status> {
        Err(Status::unimplemented("bare floor: GetOrganization only"))
    }

    async fn list_organizations(
        &self,
        _: tonic::Request<pb::ListOrganizationsRequest>,
    ) -> Result<tonic::Response<pb::ListOrganizationsResponse>, Status> {
        Err(Status::unimplemented("bare floor: GetOrganization only"))
    }

    async fn get_organization(
        &self,
        _: tonic::Request<pb::GetOrganizationRequest>,
    ) -> Result<tonic::Response<pb::GetOrganizationResponse>, Status> {
        Ok(tonic::Response::new(self.answer.clone()))
    }

    async fn update_organization(
        &self,
        _: tonic::Request<pb::UpdateOrganizationRequest>,
    ) -> Result<tonic::Response<pb::UpdateOrganizationResponse>, Status> {
        Err(Status::unimplemented("bare floor: GetOrganization only"))
    }

    async fn delete_organization(
        &self,
        _: tonic::Request<pb::DeleteOrganizationRequest>,
    ) -> Result<tonic::Response<pb::DeleteOrganizationResponse>, Status> {
        Err(Status::unimplemented("bare floor: GetOrganization only"))
    }
}

// ---------------------------------------------------------------------------------------
// The client side: raw hyper HTTP/2 connections, shared by every protocol.

/// A hyper h2c connection as a tower service, so the generated tonic client can use it.
#[derive(Clone)]
struct H2(SendRequest<Body>);

impl tower::Service<Request<Body>> for H2 {
    type Response = Response<Incoming>;
    type Error = hyper::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Incoming>, hyper::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), hyper::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        Box::pin(self.0.send_request(request))
    }
}

async fn connect(addr: SocketAddr) -> Result<H2, BoxError> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let (send, connection) =
        hyper::client::conn::http2::Builder::new(TokioExecutor::new()).handshake(TokioIo::new(tcp)).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(H2(send))
}

/// What every request needs, prebuilt once.
#[derive(Clone)]
struct Target {
    org_id: String,
    grpc_uri: Uri,
    grpc_web_uri: Uri,
    grpc_web_frame: Bytes,
    json_uri: Uri,
}

impl Target {
    fn new(addr: SocketAddr, org_id: &str) -> Target {
        let message = pb::GetOrganizationRequest { organization_id: org_id.to_owned() }.encode_to_vec();
        let mut frame = BytesMut::with_capacity(5 + message.len());
        frame.put_u8(0);
        frame.put_u32(u32::try_from(message.len()).expect("small message"));
        frame.put_slice(&message);
        Target {
            org_id: org_id.to_owned(),
            grpc_uri: format!("http://{addr}").parse().expect("origin"),
            grpc_web_uri: format!("http://{addr}{GET_PATH}").parse().expect("uri"),
            grpc_web_frame: frame.freeze(),
            json_uri: format!("http://{addr}/organizations/{org_id}").parse().expect("uri"),
        }
    }
}

/// One connection's client for one protocol; cloned for every stream on that connection.
#[derive(Clone)]
enum Caller {
    Grpc(OrganizationServiceClient<H2>, pb::GetOrganizationRequest, String),
    Http(H2, Proto, Target),
}

impl Caller {
    fn new(proto: Proto, connection: H2, target: &Target) -> Caller {
        match proto {
            Proto::Bare | Proto::Grpc => Caller::Grpc(
                OrganizationServiceClient::with_origin(connection, target.grpc_uri.clone()),
                pb::GetOrganizationRequest { organization_id: target.org_id.clone() },
                target.org_id.clone(),
            ),
            Proto::GrpcWeb | Proto::Json => Caller::Http(connection, proto, target.clone()),
        }
    }

    /// One request; `Ok` only for a complete, successful, well-formed answer.
    async fn call(&mut self) -> Result<(), String> {
        match self {
            Caller::Grpc(client, request, id) => {
                let response =
                    client.get_organization(authorized(request.clone())).await.map_err(|s| format!("gRPC: {s}"))?;
                check_org(response.get_ref(), id)
            }
            Caller::Http(h2, Proto::GrpcWeb, target) => {
                let request = Request::builder()
                    .method(Method::POST)
                    .uri(target.grpc_web_uri.clone())
                    .header(header::CONTENT_TYPE, "application/grpc-web+proto")
                    .header("x-grpc-web", "1")
                    .header(header::AUTHORIZATION, AUTHORIZATION)
                    .body(Body::new(Full::new(target.grpc_web_frame.clone())))
                    .map_err(|e| e.to_string())?;
                let response = send(h2, request).await?;
                check_grpc_web(response, &target.org_id).await
            }
            Caller::Http(h2, _, target) => {
                let request = Request::builder()
                    .method(Method::GET)
                    .uri(target.json_uri.clone())
                    .header(header::ACCEPT, "application/json")
                    .header(header::AUTHORIZATION, AUTHORIZATION)
                    .body(Body::empty())
                    .map_err(|e| e.to_string())?;
                let response = send(h2, request).await?;
                check_json(response, &target.org_id).await
            }
        }
    }
}

async fn send(h2: &mut H2, request: Request<Body>) -> Result<Response<Incoming>, String> {
    std::future::poll_fn(|cx| h2.0.poll_ready(cx)).await.map_err(|e| format!("connection: {e}"))?;
    h2.0.send_request(request).await.map_err(|e| format!("request: {e}"))
}

fn check_org(response: &pb::GetOrganizationResponse, id: &str) -> Result<(), String> {
    match &response.organization {
        Some(org) if org.id == id => Ok(()),
        other => Err(format!("unexpected organization: {other:?}")),
    }
}

/// 200, one data frame holding the response message, then a trailer frame with grpc-status 0.
async fn check_grpc_web(response: Response<Incoming>, id: &str) -> Result<(), String> {
    let (head, body) = response.into_parts();
    if head.status != StatusCode::OK {
        return Err(format!("gRPC-web: HTTP {}", head.status));
    }
    if let Some(code) = head.headers.get("grpc-status").filter(|v| v.as_bytes() != b"0") {
        return Err(format!("gRPC-web: trailers-only answer, grpc-status {code:?}"));
    }
    let mut body = body.collect().await.map_err(|e| format!("gRPC-web body: {e}"))?.to_bytes();
    let mut message_ok = false;
    let mut status_ok = false;
    while body.len() >= 5 {
        let flag = body.get_u8();
        let len = body.get_u32() as usize;
        if body.len() < len {
            return Err("gRPC-web: truncated frame".into());
        }
        let payload = body.split_to(len);
        if flag & 0x80 == 0 {
            let message = pb::GetOrganizationResponse::decode(payload).map_err(|e| format!("gRPC-web decode: {e}"))?;
            check_org(&message, id)?;
            message_ok = true;
        } else {
            let trailers = std::str::from_utf8(&payload).map_err(|_| "gRPC-web: trailers are not UTF-8")?;
            for line in trailers.split("\r\n") {
                if let Some((name, value)) = line.split_once(':')
                    && name.trim().eq_ignore_ascii_case("grpc-status")
                {
                    if value.trim() != "0" {
                        return Err(format!("gRPC-web: grpc-status {} ({trailers:?})", value.trim()));
                    }
                    status_ok = true;
                }
            }
        }
    }
    match (message_ok, status_ok) {
        (true, true) => Ok(()),
        _ => Err(format!("gRPC-web: message {message_ok}, grpc-status:0 trailer {status_ok}")),
    }
}

/// 200 and a JSON organization with the expected id.
async fn check_json(response: Response<Incoming>, id: &str) -> Result<(), String> {
    let (head, body) = response.into_parts();
    let body = body.collect().await.map_err(|e| format!("JSON body: {e}"))?.to_bytes();
    if head.status != StatusCode::OK {
        return Err(format!("JSON: HTTP {}: {}", head.status, String::from_utf8_lossy(&body)));
    }
    let value: serde_json::Value = serde_json::from_slice(&body).map_err(|e| format!("JSON parse: {e}"))?;
    match value.get("id").and_then(|v| v.as_str()) {
        Some(got) if got == id => Ok(()),
        _ => Err(format!("JSON: unexpected body {value}")),
    }
}

// ---------------------------------------------------------------------------------------
// Load phases.

struct PhaseResult {
    proto: Proto,
    requests: u64,
    errors: u64,
    first_error: Option<String>,
    secs: f64,
    histogram: Histogram<u64>,
    /// CPU time of the server runtime's threads (workers and blocking pool) per request, µs.
    server_cpu_us: f64,
    /// CPU time of the load generator's threads per request, µs.
    client_cpu_us: f64,
    /// Cores kept busy by the whole process (server + load generator) during the phase.
    cores_busy: f64,
    /// Cores kept busy by everything else on the machine (other builds...) during the phase.
    other_cores: f64,
    /// How many times this phase was run again because other processes were busy.
    retries: usize,
}

impl PhaseResult {
    fn rps(&self) -> f64 {
        self.requests as f64 / self.secs
    }
    /// Server and load-generator CPU time per request, µs.
    fn cpu_us(&self) -> f64 {
        self.server_cpu_us + self.client_cpu_us
    }
    fn p(&self, q: f64) -> u64 {
        self.histogram.value_at_quantile(q)
    }
}

struct WorkerResult {
    histogram: Histogram<u64>,
    requests: u64,
    errors: u64,
    first_error: Option<String>,
    last_done: Instant,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds")
}

async fn worker(mut caller: Caller, measure_from: Instant, until: Instant) -> WorkerResult {
    let mut result =
        WorkerResult { histogram: histogram(), requests: 0, errors: 0, first_error: None, last_done: measure_from };
    loop {
        let start = Instant::now();
        if start >= until {
            break;
        }
        let outcome = caller.call().await;
        let done = Instant::now();
        if start < measure_from {
            continue;
        }
        result.last_done = done;
        match outcome {
            Ok(()) => {
                let micros = u64::try_from((done - start).as_micros()).unwrap_or(u64::MAX).max(1);
                result.histogram.saturating_record(micros);
                result.requests += 1;
            }
            Err(e) => {
                result.errors += 1;
                result.first_error.get_or_insert(e);
            }
        }
    }
    result
}

/// Other processes may use this many cores during a phase before it is run again.
const MAX_OTHER_CORES: f64 = 0.25;
/// How many times a disturbed phase is run again; the last attempt is kept whatever happened.
const RETRIES: usize = 2;

/// Runs a phase, again (up to `RETRIES` times) when other processes took a share of the CPUs.
#[allow(clippy::too_many_arguments)]
fn measured(
    client_rt: &tokio::runtime::Runtime,
    proto: Proto,
    addr: SocketAddr,
    org_id: &str,
    connections: usize,
    streams: usize,
    warmup: Duration,
    measure: Duration,
) -> Result<PhaseResult, BoxError> {
    let max_other = env_f64("IAMD_BENCH_MAX_OTHER_CORES", MAX_OTHER_CORES);
    let mut attempt = 0;
    loop {
        let mut r = client_rt.block_on(phase(proto, addr, org_id, connections, streams, warmup, measure))?;
        r.retries = attempt;
        // A phase with failed requests is kept, so that the failures are reported.
        if r.other_cores <= max_other || attempt == RETRIES || r.errors > 0 {
            return Ok(r);
        }
        attempt += 1;
        eprintln!(
            "  {} (concurrency {}): other processes kept {:.2} cores busy ({:.0} req/s); running it again ({attempt}/{RETRIES})",
            proto.name(),
            connections * streams,
            r.other_cores,
            r.rps()
        );
    }
}

/// Opens the connections (not timed), runs the warm-up, then measures.
async fn phase(
    proto: Proto,
    addr: SocketAddr,
    org_id: &str,
    connections: usize,
    streams: usize,
    warmup: Duration,
    measure: Duration,
) -> Result<PhaseResult, BoxError> {
    let target = Target::new(addr, org_id);
    let mut callers = Vec::with_capacity(connections);
    for _ in 0..connections {
        callers.push(Caller::new(proto, connect(addr).await?, &target));
    }
    let cpu_before = thread_cpu();
    let system_before = system_busy_ticks();
    let measure_from = Instant::now() + warmup;
    let until = measure_from + measure;
    let mut tasks = Vec::with_capacity(connections * streams);
    for caller in &callers {
        for _ in 0..streams {
            tasks.push(tokio::spawn(worker(caller.clone(), measure_from, until)));
        }
    }
    let mut total = histogram();
    let (mut requests, mut errors, mut first_error, mut last_done) = (0, 0, None, measure_from);
    for task in tasks {
        let r = task.await?;
        total.add(&r.histogram)?;
        requests += r.requests;
        errors += r.errors;
        if first_error.is_none() {
            first_error = r.first_error;
        }
        last_done = last_done.max(r.last_done);
    }
    let cpu_after = thread_cpu();
    let system_after = system_busy_ticks();
    let wall = (measure + warmup).as_secs_f64();
    // CPU counters cover warm-up too: scale by the share of the run that was measured.
    let share = measure.as_secs_f64() / (measure + warmup).as_secs_f64();
    let per_request = |prefix: &str| {
        let ticks = cpu_delta(&cpu_before, &cpu_after, prefix) as f64 * share;
        ticks * 1e6 / clock_ticks() as f64 / (requests + errors).max(1) as f64
    };
    Ok(PhaseResult {
        proto,
        requests,
        errors,
        first_error,
        secs: (last_done - measure_from).as_secs_f64().max(1e-9),
        histogram: total,
        server_cpu_us: per_request(SERVER_THREAD),
        client_cpu_us: per_request(CLIENT_THREAD),
        cores_busy: cpu_delta(&cpu_before, &cpu_after, "") as f64 / clock_ticks() as f64 / wall,
        other_cores: (system_after.saturating_sub(system_before) as f64
            - cpu_delta(&cpu_before, &cpu_after, "") as f64)
            .max(0.0)
            / clock_ticks() as f64
            / wall,
        retries: 0,
    })
}

// ---------------------------------------------------------------------------------------
// Per-thread CPU time from /proc (utime + stime in clock ticks), by thread name.

const SERVER_THREAD: &str = "bench-server";
const CLIENT_THREAD: &str = "bench-client";

fn clock_ticks() -> u64 {
    100 // USER_HZ; getconf CLK_TCK on Linux
}

/// tid -> (name, ticks) for every live thread of this process.
fn thread_cpu() -> HashMap<u64, (String, u64)> {
    let mut threads = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else { return threads };
    for entry in dir.flatten() {
        let Ok(tid) = entry.file_name().to_string_lossy().parse::<u64>() else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
        let name = stat[open + 1..close].to_owned();
        // After the name: state, ppid, ... ; utime and stime are fields 14 and 15 overall.
        let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
        let ticks = fields.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
            + fields.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        threads.insert(tid, (name, ticks));
    }
    threads
}

/// Busy ticks of the whole machine (every CPU, every process) from /proc/stat.
fn system_busy_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().next() else { return 0 };
    // cpu  user nice system idle iowait irq softirq steal ...
    let fields: Vec<u64> = line.split_whitespace().skip(1).filter_map(|v| v.parse().ok()).collect();
    [0, 1, 2, 5, 6, 7].iter().filter_map(|&i| fields.get(i)).sum()
}

fn cpu_delta(before: &HashMap<u64, (String, u64)>, after: &HashMap<u64, (String, u64)>, prefix: &str) -> u64 {
    after
        .iter()
        .filter(|(_, (name, _))| name.starts_with(prefix))
        .map(|(tid, (_, ticks))| ticks.saturating_sub(before.get(tid).map_or(0, |(_, t)| *t)))
        .sum()
}

// ---------------------------------------------------------------------------------------

/// `IAMD_BENCH_METRICS=off` runs iamd without metrics, to measure what counting costs.
fn metrics_on() -> bool {
    std::env::var("IAMD_BENCH_METRICS").map_or(true, |v| v != "off")
}

fn env_f64(name: &str, default: f64) -> f64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The median (the lower middle one for an even count).
fn median_of(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[(values.len() - 1) / 2]
}

/// One table row; the CPU columns only mean something when the CPUs are saturated.
fn row(r: &PhaseResult, concurrency: usize, cpu: bool) -> String {
    let cpu = |v: f64| if cpu { format!("{v:.1}") } else { "–".to_owned() };
    format!(
        "| {} | {} | {:.0} | {} | {} | {} | {} | {} | {:.2} | {} |",
        r.proto.name(),
        concurrency,
        r.rps(),
        r.p(0.50),
        r.p(0.99),
        r.p(0.999),
        cpu(r.server_cpu_us),
        cpu(r.client_cpu_us),
        r.other_cores,
        r.errors
    )
}

/// The targets: numerator, denominator, minimum ratio of their req/s.
const RATIOS: [(&str, Proto, Proto, f64); 3] = [
    ("JSON / gRPC", Proto::Json, Proto::Grpc, 0.95),
    ("gRPC-web / gRPC", Proto::GrpcWeb, Proto::Grpc, 0.97),
    ("gRPC / bare tonic", Proto::Grpc, Proto::Bare, 0.70),
];

const TABLE_HEAD: &str = "| protocol | concurrency | req/s | p50 µs | p99 µs | p99.9 µs | server CPU µs/req | client CPU µs/req | other load (cores) | errors |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|";

fn main() -> Result<(), BoxError> {
    let level = std::env::var("IAMD_BENCH_LOG").unwrap_or_else(|_| "info".to_owned());
    iamd::observe::init_logging(tracing_subscriber::EnvFilter::new(&level), false, std::io::sink);
    if let Ok(which) = std::env::var(SERVE) {
        return serve_only(&which);
    }
    if let Ok(requests) = std::env::var("IAMD_BENCH_INSTRUCTIONS") {
        return count_instructions(requests.parse()?, &level);
    }
    let measure = Duration::from_secs_f64(env_f64("IAMD_BENCH_SECS", MEASURE_SECS));
    let warmup = Duration::from_secs_f64(env_f64("IAMD_BENCH_WARMUP_SECS", WARMUP_SECS));
    let rounds = env_f64("IAMD_BENCH_ROUNDS", ROUNDS as f64).max(1.0) as usize;
    let latency_secs = Duration::from_secs_f64(env_f64("IAMD_BENCH_LATENCY_SECS", LATENCY_SECS));
    // `IAMD_BENCH_ONLY=grpc,json` runs a subset (for profiling); ratios need both sides.
    let selected: Vec<Proto> = match std::env::var("IAMD_BENCH_ONLY") {
        Ok(list) => Proto::ALL.into_iter().filter(|p| list.split(',').any(|k| k.trim() == p.key())).collect(),
        Err(_) => Proto::ALL.to_vec(),
    };
    if selected.is_empty() {
        return Err("IAMD_BENCH_ONLY names none of bare, grpc, grpc-web, json".into());
    }

    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(SERVER_THREADS)
        .thread_name(SERVER_THREAD)
        // Idle blocking threads must outlive a phase, or their CPU time would be lost.
        .thread_keep_alive(Duration::from_secs(3600))
        .enable_all()
        .build()?;
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(CLIENT_THREADS)
        .thread_name(CLIENT_THREAD)
        .enable_all()
        .build()?;

    let data_dir = tempfile::tempdir()?;
    let config = iamd::config::Config {
        bootstrap_token: Some(TOKEN.into()),
        metrics: metrics_on(),
        ..iamd::config::Config::for_data_dir(data_dir.path())
    };
    let server = server_rt.block_on(iamd::server::start(config))?;
    let iamd_addr = server.addr;

    // One organization, created over native gRPC; its GetOrganization answer is the floor's.
    let (org_id, answer) = client_rt.block_on(async {
        let mut client =
            OrganizationServiceClient::with_origin(connect(iamd_addr).await?, Target::new(iamd_addr, "").grpc_uri);
        let created = client
            .create_organization(authorized(pb::CreateOrganizationRequest {
                name: "Bench Organization".into(),
                domain: "bench.example.com".into(),
            }))
            .await?
            .into_inner();
        let id = created.organization.ok_or("CreateOrganization returned no organization")?.id;
        // Reads are answered from a view that follows the log: give it a moment to catch up.
        let mut tries = 0;
        let answer = loop {
            match client.get_organization(authorized(pb::GetOrganizationRequest { organization_id: id.clone() })).await
            {
                Ok(answer) => break answer.into_inner(),
                Err(status) if status.code() == tonic::Code::NotFound && tries < 100 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(status) => return Err(status.into()),
            }
        };
        Ok::<_, BoxError>((id, answer))
    })?;

    let bare_addr = server_rt.block_on(async {
        let incoming = tonic::transport::server::TcpIncoming::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?
            .with_nodelay(Some(true));
        let addr = incoming.local_addr()?;
        let router = tonic::transport::Server::builder().add_service(OrganizationServiceServer::new(Bare { answer }));
        tokio::spawn(async move {
            if let Err(e) = router.serve_with_incoming(incoming).await {
                eprintln!("bare server failed: {e}");
            }
        });
        Ok::<_, BoxError>(addr)
    })?;
    let addr_of = |proto: Proto| if proto == Proto::Bare { bare_addr } else { iamd_addr };

    let concurrency = CONNECTIONS * STREAMS_PER_CONNECTION;
    eprintln!(
        "iamd {iamd_addr} (organization {org_id}), bare tonic {bare_addr}; log level `{level}` (to a sink); {CONNECTIONS} h2c connections x \
         {STREAMS_PER_CONNECTION} streams = {concurrency} in flight; warm-up {warmup:?}, measure {measure:?}, {rounds} rounds; \
         nproc {}",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    // What the rest of the machine is doing before we start (other builds share the CPUs).
    let idle_before = system_busy_ticks();
    std::thread::sleep(Duration::from_secs(1));
    let busy_before_start = system_busy_ticks().saturating_sub(idle_before) as f64 / clock_ticks() as f64;
    eprintln!("machine busy before the run: {busy_before_start:.2} cores");

    let started = Instant::now();
    let mut rounds_done: Vec<HashMap<Proto, PhaseResult>> = Vec::new();
    let mut failed = false;
    for round in 0..rounds {
        // Rotate the order so no protocol always runs first or last.
        let mut order = selected.clone();
        order.rotate_left(round % selected.len());
        let mut this_round = HashMap::new();
        for proto in order {
            let r = measured(
                &client_rt,
                proto,
                addr_of(proto),
                &org_id,
                CONNECTIONS,
                STREAMS_PER_CONNECTION,
                warmup,
                measure,
            )?;
            eprintln!(
                "  round {} {:<18} {:>8.0} req/s  p50 {:>5} µs  p99 {:>6} µs  server {:>5.1} µs/req  client {:>5.1} µs/req  cores busy {:.2} (others {:.2})  errors {}",
                round + 1,
                proto.name(),
                r.rps(),
                r.p(0.5),
                r.p(0.99),
                r.server_cpu_us,
                r.client_cpu_us,
                r.cores_busy,
                r.other_cores,
                r.errors
            );
            if let Some(e) = &r.first_error {
                eprintln!("    first error: {e}");
                failed = true;
            }
            this_round.insert(proto, r);
        }
        rounds_done.push(this_round);
    }

    let mut latency = Vec::new();
    for &proto in selected.iter().filter(|_| !latency_secs.is_zero()) {
        let r = measured(&client_rt, proto, addr_of(proto), &org_id, 1, 1, warmup.min(latency_secs), latency_secs)?;
        if let Some(e) = &r.first_error {
            eprintln!("  latency {}: first error: {e}", proto.name());
            failed = true;
        }
        latency.push(r);
    }
    let elapsed = started.elapsed();

    let _ = server_rt.block_on(server.stop());

    let retried: usize = rounds_done.iter().flat_map(|r| r.values()).chain(&latency).map(|r| r.retries).sum();
    let errors: u64 = rounds_done.iter().flat_map(|r| r.values()).map(|r| r.errors).sum::<u64>()
        + latency.iter().map(|r| r.errors).sum::<u64>();

    println!();
    println!(
        "Log level `{level}` (IAMD_BENCH_LOG), formatted to a sink; metrics {} (IAMD_BENCH_METRICS). Load: {CONNECTIONS} h2c connections x \
         {STREAMS_PER_CONNECTION} streams = {concurrency} requests in flight per protocol; warm-up {}s, measured {}s \
         per phase, {rounds} rounds; {SERVER_THREADS} server + {CLIENT_THREADS} load-generator threads on {} CPUs; \
         total {:.0}s; other processes kept {busy_before_start:.2} cores busy just before the run. Each \
         concurrency-{concurrency} row is that protocol's median round by req/s. {retried} phase runs were \
         discarded and run again because other processes kept more than {:.2} cores busy.",
        if metrics_on() { "on" } else { "off" },
        warmup.as_secs_f64(),
        measure.as_secs_f64(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        elapsed.as_secs_f64(),
        env_f64("IAMD_BENCH_MAX_OTHER_CORES", MAX_OTHER_CORES)
    );
    println!();
    println!("{TABLE_HEAD}");
    for proto in &selected {
        let mut results: Vec<&PhaseResult> = rounds_done.iter().filter_map(|r| r.get(proto)).collect();
        results.sort_by(|a, b| a.rps().total_cmp(&b.rps()));
        println!("{}", row(results[(results.len() - 1) / 2], concurrency, true));
    }
    for r in &latency {
        println!("{}", row(r, 1, false));
    }
    println!();
    println!(
        "| ratio (concurrency {concurrency}) | req/s ratio, median of rounds | per round | ratio predicted by CPU µs/req (server + client) | target | holds |\n|---|---:|---|---:|---:|---|"
    );
    for (name, a, b, target) in RATIOS {
        let paired: Vec<(f64, f64)> = rounds_done
            .iter()
            .filter_map(|r| Some((r.get(&a)?, r.get(&b)?)))
            .map(|(a, b)| (a.rps() / b.rps(), b.cpu_us() / a.cpu_us()))
            .collect();
        if paired.is_empty() {
            continue;
        }
        let by_rps = median_of(paired.iter().map(|p| p.0).collect());
        let by_cpu = median_of(paired.iter().map(|p| p.1).collect());
        let per_round = paired.iter().map(|p| format!("{:.3}", p.0)).collect::<Vec<_>>().join(", ");
        println!(
            "| {name} | {by_rps:.3} | {per_round} | {by_cpu:.3} | ≥ {target:.2} | {} |",
            if by_rps >= target { "yes" } else { "**no**" }
        );
    }
    println!();

    if failed || errors > 0 {
        eprintln!("FAILED: some requests did not get a successful answer");
        std::process::exit(1);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Instructions per request, counted by callgrind: the same on a busy machine as on an idle
// one, so a change shows in it however noisy the wall-clock run is.

/// In a child: serve only `iamd` or `bare`, print `addr <address>`, stop when stdin closes.
const SERVE: &str = "IAMD_BENCH_SERVE";
const BARE_ORG: &str = "00000000-0000-4000-8000-00000000bare";

fn serve_only(which: &str) -> Result<(), BoxError> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(SERVER_THREADS).enable_all().build()?;
    runtime.block_on(async {
        let data_dir = tempfile::tempdir()?;
        let stop: Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = ()>>>> = match which {
            "iamd" => {
                // No follower polls while instructions are counted: one replica, its own writes.
                let config = iamd::config::Config {
                    follow_interval: Duration::from_secs(3600),
                    bootstrap_token: Some(TOKEN.into()),
                    metrics: metrics_on(),
                    ..iamd::config::Config::for_data_dir(data_dir.path())
                };
                let server = iamd::server::start(config).await?;
                println!("addr {}", server.addr);
                Box::new(move || Box::pin(async move { drop(server.stop().await) }))
            }
            _ => {
                let organization =
                    pb::Organization { id: BARE_ORG.into(), name: "Bench Organization".into(), ..Default::default() };
                let answer = pb::GetOrganizationResponse { organization: Some(organization) };
                let incoming = tonic::transport::server::TcpIncoming::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?
                    .with_nodelay(Some(true));
                println!("addr {}", incoming.local_addr()?);
                let router =
                    tonic::transport::Server::builder().add_service(OrganizationServiceServer::new(Bare { answer }));
                let task = tokio::spawn(router.serve_with_incoming(incoming));
                Box::new(move || Box::pin(async move { task.abort() }))
            }
        };
        let _ = tokio::task::spawn_blocking(|| std::io::stdin().read_line(&mut String::new())).await;
        stop().await;
        Ok(())
    })
}

/// `requests` requests of each protocol against a server running under callgrind, counting
/// the server's instructions (every thread) for exactly those requests.
fn count_instructions(requests: usize, level: &str) -> Result<(), BoxError> {
    use std::io::BufRead;

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(CLIENT_THREADS).enable_all().build()?;
    // `IAMD_BENCH_CALLGRIND_DIR` keeps the dumps, for callgrind_annotate.
    let kept = std::env::var("IAMD_BENCH_CALLGRIND_DIR").ok();
    let scratch = tempfile::tempdir()?;
    let out_dir = kept.as_deref().map_or_else(|| scratch.path().to_owned(), std::path::PathBuf::from);
    let mut counts: HashMap<Proto, f64> = HashMap::new();
    for (which, protos) in [("bare", vec![Proto::Bare]), ("iamd", vec![Proto::Grpc, Proto::GrpcWeb, Proto::Json])] {
        let mut child = std::process::Command::new("valgrind")
            .args(["--tool=callgrind", "--dump-instr=no", "--collect-systime=no"])
            .arg(format!("--callgrind-out-file={}/{which}.out", out_dir.display()))
            .arg(std::env::current_exe()?)
            .arg("--bench")
            .env(SERVE, which)
            .env("IAMD_BENCH_LOG", level)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        let pid = child.id().to_string();
        // The server says it is listening first; the child's own line follows.
        let lines = std::io::BufReader::new(child.stdout.take().ok_or("no stdout")?).lines();
        let addr = lines
            .map_while(Result::ok)
            .find_map(|line| line.strip_prefix("addr ").map(str::to_owned))
            .ok_or("the child ended without an address")?;
        let addr: SocketAddr = addr.parse()?;
        let org_id = if which == "bare" {
            BARE_ORG.to_owned()
        } else {
            runtime.block_on(async {
                let mut client =
                    OrganizationServiceClient::with_origin(connect(addr).await?, Target::new(addr, "").grpc_uri);
                let created = client
                    .create_organization(authorized(pb::CreateOrganizationRequest {
                        name: "Bench Organization".into(),
                        domain: String::new(),
                    }))
                    .await?
                    .into_inner();
                Ok::<_, BoxError>(created.organization.ok_or("no organization")?.id)
            })?
        };
        for proto in protos {
            runtime.block_on(fixed(proto, addr, &org_id, requests / 5))?;
            callgrind_control(&["--zero", &pid])?;
            runtime.block_on(fixed(proto, addr, &org_id, requests))?;
            callgrind_control(&[&format!("--dump={}", proto.key()), &pid])?;
            let total = newest_total(&out_dir)?;
            counts.insert(proto, total as f64 / requests as f64);
            eprintln!("  {:<18} {:>10.0} instructions per request", proto.name(), total as f64 / requests as f64);
        }
        drop(child.stdin.take());
        child.wait()?;
    }
    println!();
    println!(
        "Instructions per request on the server (every thread), counted by callgrind over {requests} requests per protocol after {} not counted; log level `{level}`.",
        requests / 5
    );
    println!();
    println!("| protocol | instructions per request |\n|---|---:|");
    for proto in Proto::ALL {
        if let Some(count) = counts.get(&proto) {
            println!("| {} | {count:.0} |", proto.name());
        }
    }
    println!();
    // The server's side alone: the wall-clock ratios, whose targets these are not, also
    // carry each protocol's client, which shares the CPUs.
    println!("| ratio | inverse ratio of server instructions |\n|---|---:|");
    for (name, a, b, _) in RATIOS {
        if let (Some(a), Some(b)) = (counts.get(&a), counts.get(&b)) {
            println!("| {name} | {:.3} |", b / a);
        }
    }
    Ok(())
}

/// Exactly `requests` requests, 4 connections x 4 streams.
async fn fixed(proto: Proto, addr: SocketAddr, org_id: &str, requests: usize) -> Result<(), BoxError> {
    let target = Target::new(addr, org_id);
    let left = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(requests));
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let caller = Caller::new(proto, connect(addr).await?, &target);
        for _ in 0..4 {
            let (mut caller, left) = (caller.clone(), left.clone());
            tasks.push(tokio::spawn(async move {
                while left
                    .fetch_update(std::sync::atomic::Ordering::AcqRel, std::sync::atomic::Ordering::Acquire, |n| {
                        n.checked_sub(1)
                    })
                    .is_ok()
                {
                    caller.call().await?;
                }
                Ok::<_, String>(())
            }));
        }
    }
    for task in tasks {
        task.await?.map_err(|e| format!("{}: {e}", proto.name()))?;
    }
    Ok(())
}

fn callgrind_control(args: &[&str]) -> Result<(), BoxError> {
    let status = std::process::Command::new("callgrind_control")
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()?;
    if !status.success() {
        return Err(format!("callgrind_control {args:?} failed").into());
    }
    Ok(())
}

/// The `totals:` of the newest callgrind dump in `dir`.
fn newest_total(dir: &std::path::Path) -> Result<u64, BoxError> {
    let newest = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .max_by_key(|(modified, _)| *modified)
        .ok_or("no callgrind dump")?
        .1;
    let text = std::fs::read_to_string(&newest)?;
    text.lines()
        .find_map(|l| l.strip_prefix("totals:").or_else(|| l.strip_prefix("summary:")))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| format!("no totals in {}", newest.display()).into())
}
