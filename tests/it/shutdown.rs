//! SIGTERM under load, on SQLite and on PostgreSQL: the `iamd` binary stops while clients
//! write and read over JSON on HTTP/1.1 keep-alive connections and over gRPC on h2. Each
//! request gets its whole answer or is refused before the server took it in (a refused
//! connection; a keep-alive connection closed before the request went out; on h2, a stream
//! the server's GOAWAY left out), never a cut answer or an error from a store that is
//! closing; the requests in flight when the signal came finish; the process exits 0 within
//! its grace period; and after a restart every answered write is there and no unanswered
//! one is.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use iamd::pb::iamd::accounts::v1 as accounts;
use prost::Message;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tonic::Code;
use tonic_types::StatusExt;

use crate::durability::{Process, client, sigterm, spawn_with};
use crate::support::{TOKEN, frame, rpc};

const GRACE: Duration = Duration::from_secs(5);
/// How long a load client goes on at most; the server is gone long before.
const LOAD_LIMIT: Duration = Duration::from_secs(15);

/// What one load client saw.
#[derive(Default)]
struct Tally {
    /// Organizations whose create was answered: (name, id).
    written: Vec<(String, String)>,
    /// Creates that went out and got no answer: the server must not have taken them in.
    unanswered: Vec<String>,
    reads: usize,
    /// Refusals before the request went out, connection refusals included.
    refused: usize,
    /// Whether the client ended on a refused connection (the server stopped listening).
    ended_refused: bool,
    failures: Vec<String>,
}

enum H1 {
    /// The whole answer.
    Answered(StatusCode, Value),
    /// The connection was closed before the request went out.
    NotSent,
    /// The request went out; the connection closed without an answer.
    Unanswered,
    /// A cut or malformed answer.
    Broken(String),
}

async fn h1_connect(addr: &str) -> Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(addr).await.ok()?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.ok()?;
    tokio::spawn(connection);
    Some(sender)
}

async fn h1_send(
    sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    request: Request<Full<Bytes>>,
) -> H1 {
    if sender.ready().await.is_err() {
        return H1::NotSent;
    }
    match sender.try_send_request(request).await {
        Ok(response) => {
            let status = response.status();
            match response.into_body().collect().await {
                Ok(body) => match serde_json::from_slice(&body.to_bytes()) {
                    Ok(value) => H1::Answered(status, value),
                    Err(e) => H1::Broken(format!("{status}: the body is not JSON: {e}")),
                },
                Err(e) => H1::Broken(format!("{status}: the body was cut: {e}")),
            }
        }
        Err(e) if e.message().is_some() => H1::NotSent,
        Err(_) => H1::Unanswered,
    }
}

fn json_request(addr: &str, method: Method, path: &str, body: Option<Value>) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr)
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", "application/json")
        .body(Full::new(body.map(|b| Bytes::from(b.to_string())).unwrap_or_default()))
        .unwrap()
}

/// Creates and reads organizations over JSON on one keep-alive connection at a time until
/// the server refuses connections.
async fn json_load(addr: String, worker: usize, seed: String, answered: Arc<AtomicUsize>) -> Tally {
    let mut tally = Tally::default();
    let started = Instant::now();
    let mut sender = None;
    let mut i = 0;
    while started.elapsed() < LOAD_LIMIT {
        let Some(connection) = sender.as_mut() else {
            match h1_connect(&addr).await {
                Some(connected) => sender = Some(connected),
                None => {
                    tally.refused += 1;
                    tally.ended_refused = true;
                    break;
                }
            }
            continue;
        };
        i += 1;
        let name = format!("json-{worker}-{i}");
        let (request, write) = if i % 2 == 0 {
            (json_request(&addr, Method::GET, &format!("/organizations/{seed}"), None), false)
        } else {
            (json_request(&addr, Method::POST, "/organizations", Some(json!({"name": name}))), true)
        };
        match h1_send(connection, request).await {
            H1::Answered(StatusCode::CREATED, body) if write && body["name"] == name.as_str() => {
                tally.written.push((name, body["id"].as_str().unwrap().to_owned()));
                answered.fetch_add(1, Ordering::Relaxed);
            }
            H1::Answered(StatusCode::OK, body) if !write && body["name"] == "seed" => {
                tally.reads += 1;
                answered.fetch_add(1, Ordering::Relaxed);
            }
            H1::Answered(status, body) => tally.failures.push(format!("{name}: answered {status}: {body}")),
            H1::NotSent => {
                tally.refused += 1;
                sender = None;
            }
            H1::Unanswered => {
                if write {
                    tally.unanswered.push(name);
                }
                tally.refused += 1;
                sender = None;
            }
            H1::Broken(why) => {
                tally.failures.push(format!("{name}: {why}"));
                sender = None;
            }
        }
    }
    tally
}

/// Creates and reads organizations over gRPC, on one h2 channel, until the server is gone.
async fn grpc_load(addr: String, worker: usize, seed: String, answered: Arc<AtomicUsize>) -> Tally {
    let mut tally = Tally::default();
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}")).unwrap().connect_lazy();
    let mut grpc = tonic::client::Grpc::new(channel);
    let started = Instant::now();
    let mut i = 0;
    while started.elapsed() < LOAD_LIMIT {
        i += 1;
        let name = format!("grpc-{worker}-{i}");
        let write = i % 2 == 1;
        let answer = if write {
            let request = accounts::CreateOrganizationRequest { name: name.clone(), domain: String::new() };
            call(&mut grpc, rpc::CREATE_ORGANIZATION.path, request)
                .await
                .map(|r: accounts::CreateOrganizationResponse| r.organization.map(|o| (o.name, o.id)))
        } else {
            let request = accounts::GetOrganizationRequest { organization_id: seed.clone() };
            call(&mut grpc, rpc::GET_ORGANIZATION.path, request)
                .await
                .map(|r: accounts::GetOrganizationResponse| r.organization.map(|o| (o.name, o.id)))
        };
        match answer {
            Ok(Some((got, id))) if write && got == name => {
                tally.written.push((name, id));
                answered.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Some((got, _))) if !write && got == "seed" => {
                tally.reads += 1;
                answered.fetch_add(1, Ordering::Relaxed);
            }
            Ok(other) => tally.failures.push(format!("{name}: answered {other:?}")),
            // An answer of the server's own (it has an ErrorInfo): the server was up and
            // refused the work, which a stop must not make it do.
            Err(status) if status.get_details_error_info().is_some() => {
                tally.failures.push(format!("{name}: the server answered {status:?}"));
            }
            Err(status) if status.code() == Code::Unavailable || never_sent(&status) => {
                // REFUSED_STREAM, a refused connection, or a call the server's GOAWAY left
                // out: the server never took it in.
                if write {
                    tally.unanswered.push(name);
                }
                tally.refused += 1;
                if status.message().contains("connect") {
                    tally.ended_refused = true;
                    break;
                }
            }
            Err(status) => tally.failures.push(format!("{name}: {status:?}")),
        }
    }
    tally
}

/// Whether the server never took the call in, though tonic says other than UNAVAILABLE:
/// hyper gave it up before sending it, queued on a connection that closed (`Canceled`,
/// which tonic reports as CANCELLED), or it went out on a stream above the last one the
/// server's GOAWAY said it would process (RFC 9113 §6.8: not processed, safe to retry),
/// which tonic reports as INTERNAL.
fn never_sent(status: &tonic::Status) -> bool {
    let mut source = std::error::Error::source(status);
    while let Some(error) = source {
        if error.downcast_ref::<hyper::Error>().is_some_and(hyper::Error::is_canceled) {
            return status.code() == Code::Cancelled;
        }
        if let Some(h2) = error.downcast_ref::<h2::Error>() {
            return h2.is_go_away() && h2.is_remote() && h2.reason() == Some(h2::Reason::NO_ERROR);
        }
        source = error.source();
    }
    false
}

async fn call<Req, Resp>(
    grpc: &mut tonic::client::Grpc<tonic::transport::Channel>,
    path: &'static str,
    request: Req,
) -> Result<Resp, tonic::Status>
where
    Req: Message + Send + Sync + 'static,
    Resp: Message + Default + Send + Sync + 'static,
{
    grpc.ready().await.map_err(|e| tonic::Status::unavailable(format!("connect: {e}")))?;
    let mut request = tonic::Request::new(request);
    request.metadata_mut().insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    let path = http::uri::PathAndQuery::from_static(path);
    grpc.unary(request, path, tonic_prost::ProstCodec::<Req, Resp>::default()).await.map(tonic::Response::into_inner)
}

/// A JSON create whose body arrives in two halves, the second after the stop signal.
struct SlowJson {
    stream: TcpStream,
    rest: Vec<u8>,
}

impl SlowJson {
    async fn start(addr: &str, name: &str) -> SlowJson {
        let body = json!({"name": name}).to_string().into_bytes();
        let (first, rest) = body.split_at(body.len() / 2);
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let head = format!(
            "POST /organizations HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {TOKEN}\r\n\
             content-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(first).await.unwrap();
        SlowJson { stream, rest: rest.to_vec() }
    }

    /// Sends the rest and reads the whole answer: its organization's id.
    async fn finish(mut self, name: &str) -> String {
        self.stream.write_all(&self.rest).await.unwrap();
        let mut answer = Vec::new();
        self.stream.read_to_end(&mut answer).await.unwrap();
        let answer = String::from_utf8(answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
        let (_, body) = answer.split_once("\r\n\r\n").unwrap();
        let body: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("a cut answer ({e}): {answer}"));
        assert_eq!(body["name"], name, "{answer}");
        body["id"].as_str().unwrap().to_owned()
    }
}

type Sender = tokio::sync::mpsc::Sender<Result<http_body::Frame<Bytes>, std::convert::Infallible>>;
type Streaming = http_body_util::StreamBody<
    tokio_stream::wrappers::ReceiverStream<Result<http_body::Frame<Bytes>, std::convert::Infallible>>,
>;

/// A gRPC create on h2 whose message arrives in two halves, the second after the signal.
struct SlowGrpc {
    rest: Bytes,
    sender: Sender,
    answer: tokio::task::JoinHandle<(StatusCode, Bytes, Option<http::HeaderMap>)>,
}

impl SlowGrpc {
    async fn start(addr: &str, name: &str) -> SlowGrpc {
        let message = accounts::CreateOrganizationRequest { name: name.into(), domain: String::new() };
        let whole = frame(&message.encode_to_vec());
        let (sender, receiver) = tokio::sync::mpsc::channel(4);
        sender.send(Ok(http_body::Frame::data(whole.slice(..whole.len() / 2)))).await.unwrap();
        let body = http_body_util::StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(receiver));
        let request = Request::post(format!("http://{addr}{}", rpc::CREATE_ORGANIZATION.path))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .header("authorization", format!("Bearer {TOKEN}"))
            .body(body)
            .unwrap();
        let http2 = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .http2_only(true)
            .build_http::<Streaming>();
        let answer = tokio::spawn(async move {
            let response = http2.request(request).await.unwrap();
            let status = response.status();
            let body = response.into_body().collect().await.unwrap();
            let trailers = body.trailers().cloned();
            (status, body.to_bytes(), trailers)
        });
        // The request is in flight once the server has its headers and half its message.
        tokio::time::sleep(Duration::from_millis(50)).await;
        SlowGrpc { rest: whole.slice(whole.len() / 2..), sender, answer }
    }

    async fn finish(self, name: &str) -> String {
        self.sender.send(Ok(http_body::Frame::data(self.rest))).await.unwrap();
        drop(self.sender);
        let (status, body, trailers) = self.answer.await.unwrap();
        assert_eq!(status, StatusCode::OK);
        let trailers = trailers.expect("a gRPC answer ends in trailers");
        assert_eq!(trailers.get("grpc-status").map(|v| v.to_str().unwrap()), Some("0"), "{trailers:?}");
        assert!(body.len() > 5, "no message: {body:?}");
        let answer = accounts::CreateOrganizationResponse::decode(body.slice(5..)).unwrap();
        let organization = answer.organization.unwrap();
        assert_eq!(organization.name, name);
        organization.id
    }
}

/// Waits for the process to exit, at most `limit`.
async fn exit_within(process: &mut Process, limit: Duration) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = process.child.try_wait().unwrap() {
            return status;
        }
        assert!(started.elapsed() < limit, "iamd still runs {limit:?} after SIGTERM");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_finishes_what_is_in_flight_and_refuses_the_rest_cleanly() {
    sigterm_under_load(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_on_postgresql() {
    let Some(schema) = crate::replicas::Schema::create().await else { return };
    sigterm_under_load(&[("IAMD_DATABASE_URL", schema.url.as_str())]).await;
    schema.drop().await;
}

/// The load, the signal and the checks, on the store `env` names (SQLite when it names none).
async fn sigterm_under_load(env: &[(&str, &str)]) {
    let dir = tempfile::tempdir().unwrap();
    let grace = format!("{}s", GRACE.as_secs());
    let mut with_grace = env.to_vec();
    with_grace.push(("IAMD_SHUTDOWN_GRACE", grace.as_str()));
    let mut process = spawn_with(dir.path(), &with_grace);
    let addr = process.addr.clone();
    let seed = client(&addr).create_org("seed").await;

    let mut slow_json = Vec::new();
    for i in 0..3 {
        let name = format!("slow-json-{i}");
        slow_json.push((SlowJson::start(&addr, &name).await, name));
    }
    let slow_grpc = SlowGrpc::start(&addr, "slow-grpc").await;
    let answered = Arc::new(AtomicUsize::new(0));
    let mut load = Vec::new();
    for worker in 0..3 {
        load.push(tokio::spawn(json_load(addr.clone(), worker, seed.clone(), answered.clone())));
        load.push(tokio::spawn(grpc_load(addr.clone(), worker, seed.clone(), answered.clone())));
    }
    // The signal comes once the load is well under way, however fast this machine is.
    crate::support::eventually("load under way", LOAD_LIMIT, async || answered.load(Ordering::Relaxed) >= 60).await;

    sigterm(&process);
    let signalled = Instant::now();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The requests in flight when the signal came are answered in full.
    let mut finished = Vec::new();
    for (slow, name) in slow_json {
        finished.push((name.clone(), slow.finish(&name).await));
    }
    finished.push(("slow-grpc".to_owned(), slow_grpc.finish("slow-grpc").await));
    let exit = exit_within(&mut process, GRACE).await;
    assert!(exit.success(), "iamd exited with {exit:?} on SIGTERM");
    let stopped_after = signalled.elapsed();
    assert!(stopped_after < GRACE, "iamd took {stopped_after:?} to stop");

    let mut written = finished.clone();
    let mut unanswered = Vec::new();
    let (mut reads, mut refused) = (0, 0);
    for task in load {
        let tally = task.await.unwrap();
        assert!(tally.failures.is_empty(), "{:#?}", tally.failures);
        assert!(tally.ended_refused, "a load client did not end on a refused connection");
        written.extend(tally.written);
        unanswered.extend(tally.unanswered);
        reads += tally.reads;
        refused += tally.refused;
    }
    println!(
        "stopped {stopped_after:?} after SIGTERM: {} writes and {reads} reads answered, {refused} refused, {} unanswered writes",
        written.len(),
        unanswered.len()
    );

    let process = spawn_with(dir.path(), env);
    let api = client(&process.addr);
    for (name, id) in &written {
        let reply = api.json(Method::GET, &format!("/organizations/{id}"), None).await;
        assert_eq!((reply.status, &reply.body["name"]), (StatusCode::OK, &json!(name)), "answered {name} was lost");
    }
    let mut names = Vec::new();
    let mut token = String::new();
    loop {
        let reply = api.json(Method::GET, &format!("/organizations?limit=100&pageToken={token}"), None).await;
        for org in reply.body["results"].as_array().unwrap() {
            names.push(org["name"].as_str().unwrap().to_owned());
        }
        match reply.body["nextPageToken"].as_str() {
            Some(next) => token = next.to_owned(),
            None => break,
        }
    }
    for name in &unanswered {
        assert!(!names.contains(name), "{name} was written, but its client got no answer");
    }
    assert_eq!(names.len(), written.len() + 1, "the seed and the answered writes, nothing else");
    crate::durability::stop(process);
}
