//! Each limit of the server, crossed by one client while another is served: connections,
//! header-read and idle timeouts, HTTP/2 streams and resets, header size, requests in flight,
//! the default deadline, JSON depth and the body size. Timeouts are configured short here
//! so the tests stay quick; the defaults are checked in `config`.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use iamd::config::{Config, Limits};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tonic::Code;
use tonic_types::StatusExt;

use crate::support::{
    Outcome, PROTOCOLS, Protocol, Rest, TOKEN, TestServer, eventually, grpc_code, rpc, sample, scrape,
};

fn with(limits: impl FnOnce(&mut Limits)) -> impl FnOnce(Config) -> Config {
    move |mut config| {
        limits(&mut config.limits);
        config
    }
}

async fn start(limits: impl FnOnce(&mut Limits)) -> TestServer {
    TestServer::start_in(tempfile::tempdir().unwrap(), with(limits)).await
}

/// A cheap authorized call, answered on each protocol.
fn get_domain_policy()
-> Rest<iamd::pb::iamd::admin::v1::GetDomainPolicyRequest, iamd::pb::iamd::admin::v1::GetDomainPolicyResponse> {
    Rest::new(rpc::GET_DOMAIN_POLICY, Method::GET, "/admin/v1/policies/domain")
}

/// The normal client: answered on every protocol, each on a connection of its own.
async fn served(server: &TestServer) {
    for protocol in PROTOCOLS {
        let outcome = server.call(protocol, &get_domain_policy()).await;
        assert_eq!(outcome.code(), Code::Ok, "{protocol:?}: {outcome:?}");
    }
}

async fn limit_reached(server: &TestServer, limit: &str) -> f64 {
    sample(&scrape(server).await, &format!("iamd_limit_reached_total{{limit=\"{limit}\"}}"))
}

/// Reads until the server closes the connection; what it sent, and how long that took.
async fn until_closed(stream: &mut TcpStream, limit: Duration) -> (Vec<u8>, Duration) {
    let started = Instant::now();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at((started + limit).into(), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (seen, started.elapsed()),
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
            Err(_) => panic!("the connection was still open after {limit:?}"),
        }
    }
}

async fn connect(server: &TestServer) -> TcpStream {
    TcpStream::connect(server.addr).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_a_header_is_cut_off_by_the_header_read_timeout() {
    let server = start(|l| l.header_read_timeout = Duration::from_millis(800)).await;
    let started = Instant::now();
    let mut slow = connect(&server).await;
    slow.write_all(b"GET /admin/v1/policies/domain HTTP/1.1\r\nhost: iamd\r\n").await.unwrap();
    // A connection that says nothing at all owes its head just the same, and so does an
    // HTTP/2 client that never finishes its preface.
    let mut silent = connect(&server).await;
    let mut half_preface = connect(&server).await;
    half_preface.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    served(&server).await;
    for stream in [&mut slow, &mut silent, &mut half_preface] {
        until_closed(stream, Duration::from_secs(5)).await;
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(800), "closed before the timeout: {took:?}");
    }
    served(&server).await;
    assert!(limit_reached(&server, "header_read_timeout").await >= 3.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_alive_connection_waits_for_its_next_request_until_the_idle_timeout() {
    let server = start(|l| {
        l.header_read_timeout = Duration::from_millis(500);
        l.idle_timeout = Duration::from_millis(2000);
    })
    .await;
    let mut stream = connect(&server).await;
    let request =
        format!("GET /admin/v1/policies/domain HTTP/1.1\r\nhost: iamd\r\nauthorization: Bearer {TOKEN}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 4096];
    let n = stream.read(&mut answer).await.unwrap();
    assert!(answer[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&answer[..n]));
    // Idle longer than the header timeout: still open, and answers the next request.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stream.write_all(request.as_bytes()).await.unwrap();
    let n = stream.read(&mut answer).await.unwrap();
    assert!(answer[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&answer[..n]));
    let (_, took) = until_closed(&mut stream, Duration::from_secs(6)).await;
    assert!(took >= Duration::from_millis(1500), "closed before the idle timeout: {took:?}");

    // HTTP/2: the preface is in, no stream is open: GOAWAY, then closed.
    let mut h2 = H2::handshake(&server).await;
    let frames = h2.frames_until_closed(Duration::from_secs(6)).await;
    assert!(frames.iter().any(|f| f.kind == GOAWAY), "{frames:?}");
    served(&server).await;
    assert!(limit_reached(&server, "idle_timeout").await >= 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_over_the_limit_is_answered_503_and_closed() {
    let server = start(|l| l.max_connections = 20).await;
    // The normal client's connection, and one to watch the server on, are open before the
    // limit is reached.
    let mut normal = connect(&server).await;
    let mut observer = connect(&server).await;
    let mut held = Vec::new();
    for _ in 0..18 {
        held.push(connect(&server).await);
    }
    eventually("20 connections open", Duration::from_secs(5), async || {
        sample(&metrics_over(&mut observer).await, "iamd_connections_open") >= 20.0
    })
    .await;
    let mut refused = connect(&server).await;
    let (answer, _) = until_closed(&mut refused, Duration::from_secs(5)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 503 Service Unavailable"), "{answer}");
    assert!(answer.contains("retry-after: 1"), "{answer}");
    let status: Value = serde_json::from_str(answer.split_once("\r\n\r\n").unwrap().1).unwrap();
    assert_eq!(status["code"], Code::Unavailable as i32);

    // The connection that was already open is answered.
    let (answer, _) = get_over(&mut normal, "/admin/v1/policies/domain").await;
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&answer));
    drop(held);
    eventually("the held connections closed", Duration::from_secs(5), async || {
        sample(&metrics_over(&mut observer).await, "iamd_connections_open") <= 2.0
    })
    .await;
    served(&server).await;
    assert!(limit_reached(&server, "connections").await >= 1.0);
}

/// One GET on a kept-alive HTTP/1.1 connection; the whole answer.
async fn get_over(stream: &mut TcpStream, path: &str) -> (Vec<u8>, Duration) {
    let request = format!("GET {path} HTTP/1.1\r\nhost: iamd\r\nauthorization: Bearer {TOKEN}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    until_closed_or_answered(stream).await
}

/// The metrics page, read on a connection already open.
async fn metrics_over(stream: &mut TcpStream) -> String {
    let (answer, _) = get_over(stream, "/metrics").await;
    String::from_utf8(answer).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_streams_beyond_the_limit_are_refused_and_a_reset_flood_closes_the_connection() {
    let server = start(|l| {
        l.max_concurrent_streams = 4;
        l.max_error_resets = 8;
    })
    .await;
    let mut h2 = H2::handshake(&server).await;
    let settings = h2.settings.clone();
    assert!(settings.contains(&(SETTINGS_MAX_CONCURRENT_STREAMS, 4)), "{settings:?}");
    // Four streams stay open (their bodies never end); the fifth is refused.
    for id in [1, 3, 5, 7, 9] {
        h2.open(id, false).await;
    }
    let reset = h2.next_frame_where(|f| f.kind == RST_STREAM).await.unwrap();
    assert_eq!((reset.stream, reset.error_code()), (9, REFUSED_STREAM));
    // A client that keeps opening refused streams spends the error resets: GOAWAY. Sent in
    // one small write, which the server reads whole: it closes with nothing left unread,
    // so the close is no reset that could discard the GOAWAY before this side reads it.
    let more: Vec<u8> = (11..35).step_by(2).flat_map(|id| h2.headers_frame(id, false)).collect();
    h2.stream.write_all(&more).await.unwrap();
    let frames = h2.frames_until_closed(Duration::from_secs(5)).await;
    let goaway = frames.iter().find(|f| f.kind == GOAWAY).unwrap_or_else(|| panic!("{frames:?}"));
    assert_eq!(goaway.goaway_code(), ENHANCE_YOUR_CALM);
    served(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rapid_reset_flood_closes_the_connection() {
    // HEADERS then RST_STREAM, in one write, over and over (CVE-2023-44487): 50 pairs,
    // enough to pass the limit, in one small write the server reads whole (see above).
    let flood = |h2: &H2| -> Vec<u8> {
        (1..100u32)
            .step_by(2)
            .flat_map(|id| [h2.headers_frame(id, true), frame(RST_STREAM, 0, id, &CANCEL.to_be_bytes())].concat())
            .collect()
    };
    let server = start(|l| l.max_pending_resets = 20).await;
    let mut h2 = H2::handshake(&server).await;
    h2.stream.write_all(&flood(&h2)).await.unwrap();
    let frames = h2.frames_until_closed(Duration::from_secs(5)).await;
    let goaway = frames.iter().find(|f| f.kind == GOAWAY).unwrap_or_else(|| panic!("{frames:?}"));
    assert_eq!(goaway.goaway_code(), ENHANCE_YOUR_CALM);
    served(&server).await;

    // The setting is the server's: allowed more, the same flood leaves the connection open,
    // and it answers a PING after it.
    let lenient = start(|l| l.max_pending_resets = 1000).await;
    let mut h2 = H2::handshake(&lenient).await;
    let mut flood = flood(&h2);
    flood.extend(frame(PING, 0, 0, b"12345678"));
    h2.stream.write_all(&flood).await.unwrap();
    let pong = h2.next_frame_where(|f| f.kind == PING || f.kind == GOAWAY).await.unwrap();
    assert_eq!((pong.kind, pong.flags & ACK), (PING, ACK), "{pong:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_over_the_limit_are_refused_on_every_protocol() {
    let server = start(|l| l.max_header_bytes = 4096).await;
    let big = "x".repeat(5000);
    let rest = get_domain_policy().header("x-padding", big.clone());
    for protocol in [Protocol::Grpc, Protocol::GrpcWeb] {
        match server.call(protocol, &rest).await {
            Outcome::Err { code, message, reason } => {
                assert_eq!(code, Code::ResourceExhausted, "{protocol:?}: {message}");
                assert_eq!(reason.as_deref(), Some("HEADERS_TOO_LARGE"), "{protocol:?}");
                assert!(message.contains("larger than the limit of 4096 bytes"), "{message}");
            }
            ok => panic!("{protocol:?}: {ok:?}"),
        }
    }
    let reply = server.json_with(Method::GET, "/admin/v1/policies/domain", None, &[("x-padding", big)]).await;
    assert_eq!(reply.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "{}", reply.body);
    assert_eq!(reply.body["code"], Code::ResourceExhausted as i32);
    assert!(reply.body["message"].as_str().unwrap().contains("4096 bytes"), "{}", reply.body);
    // So are health and metrics requests: the limit is the server's, not the API's.
    let (status, _, _) = server
        .raw(Request::get(server.url("/healthz")).header("x-padding", "y".repeat(5000)).body(Full::default()).unwrap())
        .await;
    assert_eq!(status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    // Headers many times the limit are refused by the transport before any is kept.
    let (status, _, _) = server
        .raw(
            Request::get(server.url("/healthz"))
                .header("x-padding", "y".repeat(100_000))
                .body(Full::default())
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    served(&server).await;
    assert!(limit_reached(&server, "header_bytes").await >= 4.0);
}

/// A JSON write whose body never arrives: it is in flight until the server gives up on it.
async fn hanging_write(server: &TestServer) -> TcpStream {
    let mut stream = connect(server).await;
    let head = format!(
        "POST /organizations HTTP/1.1\r\nhost: iamd\r\nauthorization: Bearer {TOKEN}\r\n\
         content-type: application/json\r\ncontent-length: 100\r\n\r\n{{"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_beyond_the_in_flight_limit_are_shed_with_retry_after() {
    let server = start(|l| l.max_in_flight = 4).await;
    let mut hanging = Vec::new();
    for _ in 0..4 {
        hanging.push(hanging_write(&server).await);
    }
    eventually("4 requests in flight", Duration::from_secs(5), async || {
        let page = scrape(&server).await;
        // The scrape counts itself.
        sample(&page, "iamd_requests_in_flight{protocol=\"json\"}") >= 5.0
    })
    .await;
    for protocol in PROTOCOLS {
        let (outcome, headers) = server.exchange(protocol, &get_domain_policy()).await;
        match outcome {
            Outcome::Err { code, reason, .. } => {
                assert_eq!(code, Code::ResourceExhausted, "{protocol:?}");
                assert_eq!(reason.as_deref(), Some("OVERLOADED"), "{protocol:?}");
            }
            ok => panic!("{protocol:?}: {ok:?}"),
        }
        assert_eq!(headers.get("retry-after").map(|v| v.to_str().unwrap()), Some("1"), "{protocol:?}: {headers:?}");
    }
    // gRPC clients read when to retry from the details too.
    let (result, _) = server
        .grpc_with::<_, iamd::pb::iamd::admin::v1::GetDomainPolicyResponse>(
            rpc::GET_DOMAIN_POLICY.path,
            iamd::pb::iamd::admin::v1::GetDomainPolicyRequest::default(),
            &[],
        )
        .await;
    let status = result.unwrap_err();
    assert_eq!(status.get_details_retry_info().unwrap().retry_delay, Some(Duration::from_secs(1)));
    // Operators still see health, readiness and metrics.
    for path in ["/healthz", "/readyz", "/metrics"] {
        let (status, _, _) = server.raw(Request::get(server.url(path)).body(Full::default()).unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    drop(hanging);
    eventually("served again once the load is gone", Duration::from_secs(5), async || {
        server.call(Protocol::Json, &get_domain_policy()).await.code() == Code::Ok
    })
    .await;
    served(&server).await;
    assert!(limit_reached(&server, "in_flight").await >= 4.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_without_grpc_timeout_gets_the_default_deadline() {
    let server = start(|l| l.default_deadline = Duration::from_millis(700)).await;
    // JSON: the body never completes; the call ends at the deadline, not never.
    let mut json = hanging_write(&server).await;
    let (answer, took) = until_closed_or_answered(&mut json).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 504"), "{answer}");
    assert!(answer.contains("\"code\":4"), "{answer}");
    assert!(took < Duration::from_secs(5), "{took:?}");

    // gRPC: a call whose message never comes.
    let (code, took) = grpc_without_a_message(&server, None).await;
    assert_eq!(code, Some(Code::DeadlineExceeded));
    assert!(took < Duration::from_secs(5), "{took:?}");
    // A client's own grpc-timeout still wins, longer or shorter.
    let (code, took) = grpc_without_a_message(&server, Some("2S")).await;
    assert_eq!(code, Some(Code::DeadlineExceeded));
    assert!(took >= Duration::from_millis(1800), "{took:?}");
    let (_, took) = grpc_without_a_message(&server, Some("100m")).await;
    assert!(took < Duration::from_millis(600), "{took:?}");
    served(&server).await;
}

/// A gRPC call over HTTP/2 whose request body never ends: its code, and when.
async fn grpc_without_a_message(server: &TestServer, timeout: Option<&str>) -> (Option<Code>, Duration) {
    let (_open, frames) = tokio::sync::mpsc::channel::<Result<hyper::body::Frame<Bytes>, std::convert::Infallible>>(1);
    let body = http_body_util::StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(frames));
    let client =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).http2_only(true).build_http();
    let mut request = Request::post(server.url(rpc::GET_DOMAIN_POLICY.path))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("authorization", format!("Bearer {TOKEN}"));
    if let Some(timeout) = timeout {
        request = request.header("grpc-timeout", timeout);
    }
    let started = Instant::now();
    let response = client.request(request.body(body).unwrap()).await.unwrap();
    (grpc_code(response).await, started.elapsed())
}

/// The first answer on a connection, read until the server has sent all of it.
async fn until_closed_or_answered(stream: &mut TcpStream) -> (Vec<u8>, Duration) {
    let started = Instant::now();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !answered(&seen) {
        match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await.unwrap() {
            Ok(0) | Err(_) => break,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
    (seen, started.elapsed())
}

fn answered(seen: &[u8]) -> bool {
    let text = String::from_utf8_lossy(seen);
    let Some((head, body)) = text.split_once("\r\n\r\n") else { return false };
    let length = head
        .lines()
        .find_map(|line| line.to_ascii_lowercase().strip_prefix("content-length: ").map(|n| n.trim().parse().unwrap()));
    length.is_some_and(|n: usize| body.len() >= n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_nested_deeper_than_the_limit_is_refused() {
    let server = start(|l| l.max_json_depth = 8).await;
    // `depth` arrays inside the body's object.
    let nested = |depth: usize| -> Value { (0..depth).fold(json!(1), |inner, _| json!([inner])) };
    let deep = server.json(Method::POST, "/organizations", Some(json!({"name": nested(8)}))).await;
    assert_eq!(deep.status, StatusCode::BAD_REQUEST, "{}", deep.body);
    assert!(deep.body["message"].as_str().unwrap().contains("deeper than 8 levels"), "{}", deep.body);
    // At the limit, the body is read and refused for what it says, not for its depth.
    let at_limit = server.json(Method::POST, "/organizations", Some(json!({"name": nested(7)}))).await;
    assert_eq!(at_limit.status, StatusCode::BAD_REQUEST, "{}", at_limit.body);
    assert!(!at_limit.body["message"].as_str().unwrap().contains("deeper"), "{}", at_limit.body);
    served(&server).await;
    assert!(limit_reached(&server, "json_depth").await >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_limit_is_refused_on_every_protocol() {
    let server = start(|l| l.max_body_bytes = 1024).await;
    let body = json!({"name": "x".repeat(2000)});
    let rest = Rest::new(rpc::CREATE_ORGANIZATION, Method::POST, "/organizations").body(body.clone());
    for protocol in [Protocol::Grpc, Protocol::GrpcWeb] {
        let outcome = server.call(protocol, &rest).await;
        assert_eq!(outcome.code(), Code::ResourceExhausted, "{protocol:?}: {outcome:?}");
    }
    // JSON says 413, as A.3 has it, with the same code.
    let reply = server.json(Method::POST, "/organizations", Some(body)).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", reply.body);
    assert_eq!(reply.body["code"], Code::ResourceExhausted as i32);
    served(&server).await;
    assert!(limit_reached(&server, "body_bytes").await >= 3.0);
}

// A minimal HTTP/2 client that can do what a well-behaved one will not: exceed the stream
// limit, reset streams as fast as it opens them, never send a body.

const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const ACK: u8 = 0x1;
const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 0x3;
const REFUSED_STREAM: u32 = 0x7;
const CANCEL: u32 = 0x8;
const ENHANCE_YOUR_CALM: u32 = 0xb;

#[derive(Debug)]
struct H2Frame {
    kind: u8,
    flags: u8,
    stream: u32,
    payload: Vec<u8>,
}

impl H2Frame {
    fn error_code(&self) -> u32 {
        u32::from_be_bytes(self.payload[..4].try_into().unwrap())
    }

    fn goaway_code(&self) -> u32 {
        u32::from_be_bytes(self.payload[4..8].try_into().unwrap())
    }
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = len.to_be_bytes()[1..].to_vec();
    out.extend([kind, flags]);
    out.extend(stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// An HPACK integer with an `n`-bit prefix under `first` (RFC 7541 §5.1).
fn hpack_int(out: &mut Vec<u8>, first: u8, n: u32, mut value: usize) {
    let max = (1usize << n) - 1;
    if value < max {
        out.push(first | value as u8);
        return;
    }
    out.push(first | max as u8);
    value -= max;
    while value >= 128 {
        out.push((value % 128) as u8 | 0x80);
        value /= 128;
    }
    out.push(value as u8);
}

/// A literal field without indexing, new name, no Huffman (RFC 7541 §6.2.2).
fn hpack_field(out: &mut Vec<u8>, name: &str, value: &str) {
    out.push(0);
    hpack_int(out, 0, 7, name.len());
    out.extend_from_slice(name.as_bytes());
    hpack_int(out, 0, 7, value.len());
    out.extend_from_slice(value.as_bytes());
}

struct H2 {
    stream: TcpStream,
    settings: Vec<(u16, u32)>,
    buffered: Vec<u8>,
    authority: String,
}

impl H2 {
    async fn handshake(server: &TestServer) -> H2 {
        let mut stream = connect(server).await;
        let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        hello.extend(frame(SETTINGS, 0, 0, &[]));
        stream.write_all(&hello).await.unwrap();
        let mut h2 = H2 { stream, settings: Vec::new(), buffered: Vec::new(), authority: server.addr.to_string() };
        let settings = h2.next_frame_where(|f| f.kind == SETTINGS && f.flags & ACK == 0).await.unwrap();
        h2.settings = settings
            .payload
            .chunks(6)
            .map(|c| (u16::from_be_bytes([c[0], c[1]]), u32::from_be_bytes([c[2], c[3], c[4], c[5]])))
            .collect();
        h2.stream.write_all(&frame(SETTINGS, ACK, 0, &[])).await.unwrap();
        h2
    }

    /// A gRPC call's HEADERS, with the bootstrap token.
    fn headers_frame(&self, id: u32, end_stream: bool) -> Vec<u8> {
        let mut block = Vec::new();
        let authorization = format!("Bearer {TOKEN}");
        let fields = [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", rpc::GET_DOMAIN_POLICY.path),
            (":authority", self.authority.as_str()),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
            ("authorization", authorization.as_str()),
        ];
        for (name, value) in fields {
            hpack_field(&mut block, name, value);
        }
        let flags = END_HEADERS | if end_stream { END_STREAM } else { 0 };
        frame(HEADERS, flags, id, &block)
    }

    async fn open(&mut self, id: u32, end_stream: bool) {
        let headers = self.headers_frame(id, end_stream);
        self.stream.write_all(&headers).await.unwrap();
    }

    async fn next_frame(&mut self, limit: Duration) -> Option<H2Frame> {
        let deadline = Instant::now() + limit;
        loop {
            if self.buffered.len() >= 9 {
                let len = u32::from_be_bytes([0, self.buffered[0], self.buffered[1], self.buffered[2]]) as usize;
                if self.buffered.len() >= 9 + len {
                    let rest = self.buffered.split_off(9 + len);
                    let bytes = std::mem::replace(&mut self.buffered, rest);
                    let stream = u32::from_be_bytes(bytes[5..9].try_into().unwrap()) & 0x7fff_ffff;
                    return Some(H2Frame { kind: bytes[3], flags: bytes[4], stream, payload: bytes[9..].to_vec() });
                }
            }
            let mut buf = [0u8; 16 * 1024];
            match tokio::time::timeout_at(deadline.into(), self.stream.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return None,
                Ok(Ok(n)) => self.buffered.extend_from_slice(&buf[..n]),
                Err(_) => panic!("no frame within {limit:?}"),
            }
        }
    }

    async fn next_frame_where(&mut self, wanted: impl Fn(&H2Frame) -> bool) -> Option<H2Frame> {
        while let Some(frame) = self.next_frame(Duration::from_secs(10)).await {
            if wanted(&frame) {
                return Some(frame);
            }
        }
        None
    }

    async fn frames_until_closed(&mut self, limit: Duration) -> Vec<H2Frame> {
        let deadline = Instant::now() + limit;
        let mut frames = Vec::new();
        while let Some(frame) = self.next_frame(deadline.saturating_duration_since(Instant::now())).await {
            frames.push(frame);
        }
        frames
    }
}
