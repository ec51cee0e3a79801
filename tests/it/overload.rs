//! The `iamd` binary, on its default limits, under more than it may take: a well-behaved
//! client is never shed; twice the in-flight limit of concurrent calls gets only answers and
//! sheds, each within 10 s, and the memory it took comes back; 5,000 connections that each
//! send half a header are all closed by the header timeout while a normal client is served.
//! The server runs as its own process, so its memory and file descriptors are its own.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tonic::Code;

use crate::durability::{Process, spawn_with, stop};
use crate::support::{TOKEN, grpc_code, rpc};

/// The server's resident memory (heap and mapped code alike), in KiB.
fn rss_kib(process: &Process) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", process.child.id())).unwrap();
    let line = status.lines().find(|line| line.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// The test opens thousands of sockets: as many as the hard limit allows.
fn raise_open_files() {
    let got = rlimit::increase_nofile_limit(u64::MAX).unwrap();
    assert!(got >= 12_000, "the open-file limit is {got}; this test needs 12000");
}

/// What the calls of one phase got.
#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    shed: AtomicU64,
    /// Anything else: a failure of the test.
    other: AtomicU64,
    slowest_micros: AtomicU64,
}

impl Tally {
    fn record(&self, outcome: Result<(), Code>, took: Duration, what: &str) {
        match outcome {
            Ok(()) => self.ok.fetch_add(1, Ordering::Relaxed),
            Err(Code::ResourceExhausted) => self.shed.fetch_add(1, Ordering::Relaxed),
            Err(code) => {
                eprintln!("{what}: {code:?}");
                self.other.fetch_add(1, Ordering::Relaxed)
            }
        };
        self.slowest_micros.fetch_max(took.as_micros() as u64, Ordering::Relaxed);
    }

    fn get(&self) -> (u64, u64, u64, Duration) {
        let slowest = Duration::from_micros(self.slowest_micros.load(Ordering::Relaxed));
        (
            self.ok.load(Ordering::Relaxed),
            self.shed.load(Ordering::Relaxed),
            self.other.load(Ordering::Relaxed),
            slowest,
        )
    }
}

type SlowBody = http_body_util::StreamBody<
    tokio_stream::wrappers::ReceiverStream<Result<hyper::body::Frame<Bytes>, std::convert::Infallible>>,
>;

/// How long each gRPC caller takes to send its message: the time a slow client holds a call
/// in flight, which is what the limit counts.
const SEND_TIME: Duration = Duration::from_secs(1);

/// One gRPC call whose message arrives after [`SEND_TIME`]; its code.
async fn slow_call(
    client: &hyper_util::client::legacy::Client<HttpConnector, SlowBody>,
    addr: &str,
) -> Result<(), Code> {
    let (send, frames) = tokio::sync::mpsc::channel(1);
    let request = Request::post(format!("http://{addr}{}", rpc::GET_DOMAIN_POLICY.path))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(http_body_util::StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(frames)))
        .unwrap();
    let message = async move {
        tokio::time::sleep(SEND_TIME).await;
        // An empty GetDomainPolicyRequest, framed; refused once the call was answered.
        let _ = send.send(Ok(hyper::body::Frame::data(Bytes::from_static(&[0, 0, 0, 0, 0])))).await;
    };
    let (response, ()) = tokio::join!(client.request(request), message);
    match grpc_code(response.map_err(|_| Code::Unavailable)?).await {
        Some(Code::Ok) => Ok(()),
        Some(code) => Err(code),
        None => Err(Code::Unknown),
    }
}

/// `streams` gRPC callers on each of `connections` connections, and `json` JSON callers on
/// a keep-alive connection each, calling until `for_how_long` has passed.
async fn load(addr: &str, connections: usize, streams: usize, json: usize, for_how_long: Duration) -> Arc<Tally> {
    let tally = Arc::new(Tally::default());
    let until = Instant::now() + for_how_long;
    let mut callers = Vec::new();
    for _ in 0..connections {
        // A client of its own is a connection of its own.
        let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .http2_only(true)
            .build_http::<SlowBody>();
        for _ in 0..streams {
            let (client, tally, addr) = (client.clone(), tally.clone(), addr.to_owned());
            callers.push(tokio::spawn(async move {
                while Instant::now() < until {
                    let started = Instant::now();
                    let outcome = slow_call(&client, &addr).await;
                    tally.record(outcome, started.elapsed(), "grpc");
                }
            }));
        }
    }
    for _ in 0..json {
        let (addr, tally) = (addr.to_owned(), tally.clone());
        callers.push(tokio::spawn(async move {
            let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .pool_max_idle_per_host(1)
                .build_http::<Full<Bytes>>();
            while Instant::now() < until {
                let request = Request::get(format!("http://{addr}/admin/v1/policies/domain"))
                    .header("authorization", format!("Bearer {TOKEN}"))
                    .body(Full::default())
                    .unwrap();
                let started = Instant::now();
                let outcome = match client.request(request).await {
                    Ok(response) => {
                        let status = response.status();
                        let retry_after = response.headers().contains_key("retry-after");
                        let _ = response.into_body().collect().await;
                        match status {
                            StatusCode::OK => Ok(()),
                            StatusCode::TOO_MANY_REQUESTS if retry_after => Err(Code::ResourceExhausted),
                            _ => Err(Code::Unknown),
                        }
                    }
                    Err(_) => Err(Code::Unavailable),
                };
                tally.record(outcome, started.elapsed(), "json");
            }
        }));
    }
    for caller in callers {
        caller.await.unwrap();
    }
    tally
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twice_the_in_flight_limit_gets_only_answers_and_sheds_and_memory_comes_back() {
    raise_open_files();
    let dir = tempfile::tempdir().unwrap();
    let process = spawn_with(dir.path(), &[("IAMD_LOG", "error")]);
    let addr = process.addr.clone();
    // Warm: the state is loaded, the allocator has its pages.
    load(&addr, 2, 8, 4, Duration::from_millis(500)).await;
    let before = rss_kib(&process);

    // A well-behaved client: 8 connections × 16 streams, far below the limit.
    let (ok, shed, other, slowest) = load(&addr, 8, 16, 0, Duration::from_secs(2)).await.get();
    assert_eq!((shed, other), (0, 0), "a well-behaved client was shed or failed ({ok} answered)");
    assert!(ok > 0);
    assert!(slowest < Duration::from_secs(10), "{slowest:?}");

    // Twice the default limit of 1,024 in flight: 16 connections × 112 slow streams, and 256
    // JSON clients.
    let (ok, shed, other, slowest) = load(&addr, 16, 112, 256, Duration::from_secs(4)).await.get();
    eprintln!("at twice the limit: {ok} answered, {shed} shed, slowest {slowest:?}");
    assert_eq!(other, 0, "answers other than success and RESOURCE_EXHAUSTED / 429");
    assert!(ok > 0 && shed > 0, "{ok} answered, {shed} shed: the limit was not reached");
    assert!(slowest < Duration::from_secs(10), "{slowest:?}");

    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = rss_kib(&process);
    eprintln!("RSS before {before} KiB, after {after} KiB");
    assert!(after * 2 <= before * 3, "RSS grew from {before} KiB to {after} KiB");
    stop(process);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_half_headers_are_all_closed_while_a_normal_client_is_served() {
    raise_open_files();
    const SLOW: usize = 5_000;
    let timeout = Duration::from_secs(3);
    let dir = tempfile::tempdir().unwrap();
    let process = spawn_with(dir.path(), &[("IAMD_LOG", "error"), ("IAMD_HEADER_READ_TIMEOUT", "3s")]);
    let addr = process.addr.clone();

    // The normal client asks every 50 ms throughout, on a connection of its own.
    let served = Arc::new(Tally::default());
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let normal = {
        let (addr, served, done) = (addr.clone(), served.clone(), done.clone());
        tokio::spawn(async move {
            let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<Full<Bytes>>();
            while !done.load(Ordering::Relaxed) {
                let request = Request::builder()
                    .method(Method::GET)
                    .uri(format!("http://{addr}/admin/v1/policies/domain"))
                    .header("authorization", format!("Bearer {TOKEN}"))
                    .body(Full::default())
                    .unwrap();
                let started = Instant::now();
                let outcome = match client.request(request).await {
                    Ok(response) if response.status() == StatusCode::OK => Ok(()),
                    Ok(response) => Err(Code::from_i32(response.status().as_u16() as i32)),
                    Err(_) => Err(Code::Unavailable),
                };
                served.record(outcome, started.elapsed(), "normal client");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };

    // Half a header each, opened in batches the listen queue can take.
    let started = Instant::now();
    let mut watchers = Vec::with_capacity(SLOW);
    for batch in 0..SLOW / 250 {
        let mut opening = Vec::new();
        for _ in 0..250 {
            let addr = addr.clone();
            opening.push(tokio::spawn(async move {
                // Before the connect: the server's timer starts when it accepts, which is later.
                let opened = Instant::now();
                let mut stream = TcpStream::connect(&addr).await.unwrap();
                stream.write_all(b"GET /admin/v1/policies/domain HTTP/1.1\r\nhost: iamd\r\n").await.unwrap();
                // Closed by the server: a read answers the end of the stream (or a reset).
                let mut buf = [0u8; 64];
                let closed = tokio::time::timeout(Duration::from_secs(20), stream.read(&mut buf)).await;
                match closed {
                    Ok(Ok(0)) | Ok(Err(_)) => Some(opened.elapsed()),
                    _ => None,
                }
            }));
        }
        watchers.extend(opening);
        if batch % 4 == 3 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let opened_in = started.elapsed();
    let mut closed = Vec::with_capacity(SLOW);
    for watcher in watchers {
        closed.push(watcher.await.unwrap());
    }
    done.store(true, Ordering::Relaxed);
    normal.await.unwrap();

    let open_still = closed.iter().filter(|c| c.is_none()).count();
    assert_eq!(open_still, 0, "{open_still} of {SLOW} slow connections were still open after 20 s");
    let latest = closed.iter().flatten().max().copied().unwrap_or_default();
    let earliest = closed.iter().flatten().min().copied().unwrap_or_default();
    eprintln!("{SLOW} slow connections opened in {opened_in:?}; closed after {earliest:?} to {latest:?}");
    // The timeout, plus a second to close gracefully, plus scheduling on a loaded machine.
    assert!(earliest >= timeout - Duration::from_millis(100), "closed before the timeout: {earliest:?}");
    assert!(latest <= timeout + Duration::from_secs(4), "closed late: {latest:?}");
    let (ok, _, failed, slowest) = served.get();
    eprintln!("normal client: {ok} answered, slowest {slowest:?}");
    assert_eq!(failed, 0, "the normal client was refused");
    assert!(ok >= 10, "the normal client got only {ok} answers");
    stop(process);
}
