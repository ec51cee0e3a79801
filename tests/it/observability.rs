//! What operators read: `/metrics` counts every protocol under the gRPC method, random paths
//! add no series, a call the client abandons counts as CANCELLED on each protocol; every
//! answer carries a request id, and every error's `ErrorInfo` carries the same.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{Full, StreamBody};
use hyper::body::Frame;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use prost::Message;
use serde_json::{Value, json};
use tonic::Code;
use tonic_types::StatusExt;

use crate::support::{Outcome, PROTOCOLS, Protocol, Rest, TOKEN, TestServer, eventually, frame, rpc, sample, scrape};

const GET_DOMAIN_POLICY: &str = "iamd.admin.v1.AdminService/GetDomainPolicy";
const CHECK: &str = "iamd.authz.v1.AuthzService/Check";

fn label(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Grpc => "grpc",
        Protocol::GrpcWeb | Protocol::GrpcWebText => "grpc_web",
        Protocol::Json => "json",
    }
}

fn requests(method: &str, protocol: Protocol, code: &str) -> String {
    format!("iamd_requests_total{{method=\"{method}\",protocol=\"{}\",code=\"{code}\"}}", label(protocol))
}

/// Every series the page lists, without values.
fn series(page: &str) -> BTreeSet<String> {
    page.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.rsplit_once(' ').map(|(series, _)| series.to_owned()))
        .collect()
}

#[tokio::test]
async fn every_protocol_is_counted_under_the_grpc_method() {
    let server = TestServer::start().await;
    let before = scrape(&server).await;
    let get = Rest::new(rpc::GET_DOMAIN_POLICY, Method::GET, "/admin/v1/policies/domain");
    for protocol in PROTOCOLS {
        assert_eq!(server.call(protocol, &get).await.code(), Code::Ok, "{protocol:?}");
    }
    // A refused call is counted with its code.
    let unauthenticated = Rest::new(rpc::GET_DOMAIN_POLICY, Method::GET, "/admin/v1/policies/domain")
        .header("authorization", "Bearer not-a-token");
    for protocol in PROTOCOLS {
        assert_eq!(server.call(protocol, &unauthenticated).await.code(), Code::Unauthenticated, "{protocol:?}");
    }
    let after = scrape(&server).await;
    for protocol in PROTOCOLS {
        for code in ["OK", "UNAUTHENTICATED"] {
            let series = requests(GET_DOMAIN_POLICY, protocol, code);
            assert_eq!(sample(&after, &series) - sample(&before, &series), 1.0, "{series}\n{after}");
        }
        let count = format!(
            "iamd_request_duration_seconds_count{{method=\"{GET_DOMAIN_POLICY}\",protocol=\"{}\"}}",
            label(protocol)
        );
        assert_eq!(sample(&after, &count) - sample(&before, &count), 2.0, "{count}");
    }
    let failures = "iamd_authentication_failures_total{credential=\"token\",reason=\"TOKEN_UNKNOWN\"}";
    assert_eq!(sample(&after, failures) - sample(&before, failures), 3.0, "{after}");
    // Each admitted call was one decision of the guard.
    let allowed = "iamd_decisions_total{source=\"guard\",decision=\"allow\"}";
    assert!(sample(&after, allowed) - sample(&before, allowed) >= 3.0, "{after}");
    assert!(sample(&after, "iamd_store_operation_duration_seconds_count{operation=\"snapshot\"}") >= 1.0);
    assert!(after.contains("iamd_build_info{version=\""));
    server.stop().await;
}

#[tokio::test]
async fn random_unknown_paths_add_no_series() {
    let server = TestServer::start().await;
    let unknown = |n: u64| format!("/{}/x{}/{}", n * 7919 % 1000, n, n.wrapping_mul(0x9e37_79b9) % 99_991);
    let grpc = |n: u64| format!("/pkg{n}.Service{n}/Method{n}");
    let probe = async |n: u64| {
        let method = [Method::GET, Method::POST, Method::DELETE, Method::PUT][(n % 4) as usize].clone();
        let reply = server.json_with(method, &unknown(n), None, &[]).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND);
        let status = server.grpc_body(&grpc(n), frame(b"")).await;
        assert_eq!(status.code(), Code::Unimplemented);
    };
    // The first of each kind may add its one series.
    probe(0).await;
    let before = series(&scrape(&server).await);
    for n in 1..=500 {
        probe(n).await;
    }
    let after = series(&scrape(&server).await);
    assert_eq!(after, before, "new series: {:?}", after.difference(&before).collect::<Vec<_>>());
    let page = scrape(&server).await;
    assert_eq!(sample(&page, &requests("unknown", Protocol::Json, "NOT_FOUND")), 501.0);
    assert_eq!(sample(&page, &requests("unknown", Protocol::Grpc, "UNIMPLEMENTED")), 501.0);
    server.stop().await;
}

type Sender = tokio::sync::mpsc::Sender<Result<Frame<Bytes>, Infallible>>;
type Streaming = StreamBody<tokio_stream::wrappers::ReceiverStream<Result<Frame<Bytes>, Infallible>>>;

/// A body whose first bytes are sent and whose rest never comes, while the sender lives.
fn half_sent(first: Bytes) -> (Sender, Streaming) {
    let (sender, receiver) = tokio::sync::mpsc::channel(4);
    sender.try_send(Ok(Frame::data(first))).unwrap();
    (sender, StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(receiver)))
}

/// Starts a Check whose body never ends, on `protocol`, and gives up on it: HTTP/2 resets
/// the stream, HTTP/1.1 closes the connection.
async fn abandon_check(server: &TestServer, protocol: Protocol) {
    let message = iamd::pb::iamd::authz::v1::CheckRequest {
        subject: "user:local:alice".into(),
        action: "iam:users:get".into(),
        resource: "iam:users:bob".into(),
        ..Default::default()
    };
    let whole = frame(&message.encode_to_vec());
    let (path, content_type, first) = match protocol {
        Protocol::Grpc => (format!("/{CHECK}"), "application/grpc", whole.slice(..whole.len() / 2)),
        Protocol::GrpcWeb | Protocol::GrpcWebText => {
            (format!("/{CHECK}"), "application/grpc-web+proto", whole.slice(..whole.len() / 2))
        }
        Protocol::Json => ("/v1/authz:check".to_owned(), "application/json", Bytes::from_static(b"{\"subject\":")),
    };
    let (sender, body) = half_sent(first);
    let mut request = Request::post(server.url(&path))
        .header("content-type", content_type)
        .header("authorization", format!("Bearer {TOKEN}"));
    if protocol == Protocol::Grpc {
        request = request.header("te", "trailers");
    }
    let request = request.body(body).unwrap();
    let mut client = Client::builder(TokioExecutor::new());
    client.http2_only(protocol == Protocol::Grpc);
    let client = client.build_http::<Streaming>();
    let answered = tokio::time::timeout(Duration::from_millis(300), client.request(request)).await;
    assert!(answered.is_err(), "{protocol:?}: the server answered a request it has not read");
    drop(client);
    drop(sender);
}

#[tokio::test]
async fn a_call_the_client_abandons_counts_as_cancelled_on_each_protocol() {
    let server = TestServer::start().await;
    for protocol in PROTOCOLS {
        abandon_check(&server, protocol).await;
        let series = requests(CHECK, protocol, "CANCELLED");
        eventually(&format!("{series} counted"), Duration::from_secs(5), async || {
            sample(&scrape(&server).await, &series) == 1.0
        })
        .await;
    }
    // Nothing else was made of them: not the client's fault, not the server's.
    let page = scrape(&server).await;
    let check_series: Vec<&str> =
        page.lines().filter(|l| l.starts_with("iamd_requests_total") && l.contains(CHECK)).collect();
    assert_eq!(check_series.len(), 3, "{check_series:?}");
    // The only request in flight was the scrape itself.
    for protocol in PROTOCOLS {
        let in_flight = sample(&page, &format!("iamd_requests_in_flight{{protocol=\"{}\"}}", label(protocol)));
        assert_eq!(in_flight, if protocol == Protocol::Json { 1.0 } else { 0.0 }, "{protocol:?}");
    }
    server.stop().await;
}

#[tokio::test]
async fn metrics_can_be_turned_off() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir, |config| iamd::config::Config { metrics: false, ..config }).await;
    let request = Request::get(server.url("/metrics")).body(Full::new(Bytes::new())).unwrap();
    let (status, _, _) = server.raw(request).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    server.stop().await;
}

/// The `requestId` of the `ErrorInfo` in a base64 `google.rpc.Status`.
fn request_id_in_details(details: &[u8]) -> Option<String> {
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    let status = tonic_types::pb::Status::decode(engine.decode(details).ok()?.as_slice()).ok()?;
    let any = status.details.iter().find(|any| any.type_url == "type.googleapis.com/google.rpc.ErrorInfo")?;
    tonic_types::pb::ErrorInfo::decode(any.value.as_slice()).ok()?.metadata.get("requestId").cloned()
}

/// The answer's `x-request-id` and the `requestId` of its error's `ErrorInfo`, on `protocol`.
async fn ids_of(server: &TestServer, protocol: Protocol, sent: Option<&str>) -> (String, Option<String>) {
    let extra: Vec<(&str, String)> = sent.map(|id| ("x-request-id", id.to_owned())).into_iter().collect();
    // No organization is named `missing`: NOT_FOUND, with an ErrorInfo of its own.
    let rest = Rest::new(rpc::GET_CUSTOM_DOMAIN_POLICY, Method::GET, "/admin/v1/orgs/{org_id}/policies/domain")
        .bind("org_id", "missing");
    match protocol {
        Protocol::Grpc => {
            let (result, headers) = server
                .grpc_with::<_, iamd::pb::iamd::admin::v1::GetCustomDomainPolicyResponse>(
                    rest.rpc.path,
                    rest.message(),
                    &extra,
                )
                .await;
            let status = result.unwrap_err();
            assert_eq!(status.code(), Code::NotFound);
            let in_error = status.get_details_error_info().and_then(|info| info.metadata.get("requestId").cloned());
            (headers["x-request-id"].to_str().unwrap().to_owned(), in_error)
        }
        Protocol::GrpcWeb | Protocol::GrpcWebText => {
            let (_, headers, body) =
                server.grpc_web_raw(rest.rpc.path, &rest.message().encode_to_vec(), false, &extra).await;
            let details = match headers.get("grpc-status-details-bin") {
                Some(details) => details.as_bytes().to_vec(),
                None => trailer(&body, "grpc-status-details-bin").unwrap_or_default().into_bytes(),
            };
            (headers["x-request-id"].to_str().unwrap().to_owned(), request_id_in_details(&details))
        }
        Protocol::Json => {
            let reply = server.json_with(Method::GET, &rest.path(), None, &extra).await;
            assert_eq!(reply.status, StatusCode::NOT_FOUND);
            let details = reply.body["details"].as_array().unwrap();
            let info = details.iter().find(|d| d["@type"] == "type.googleapis.com/google.rpc.ErrorInfo").unwrap();
            let in_error = info["metadata"]["requestId"].as_str().map(str::to_owned);
            (reply.headers["x-request-id"].to_str().unwrap().to_owned(), in_error)
        }
    }
}

/// A header of a gRPC-web body's trailer frame.
fn trailer(body: &[u8], name: &str) -> Option<String> {
    let mut rest = body;
    while rest.len() >= 5 {
        let length = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
        let (head, tail) = rest.split_at(5);
        let (payload, tail) = tail.split_at(length.min(tail.len()));
        if head[0] & 0x80 != 0 {
            let text = String::from_utf8_lossy(payload);
            return text.split("\r\n").find_map(|line| {
                let (key, value) = line.split_once(':')?;
                key.trim().eq_ignore_ascii_case(name).then(|| value.trim().to_owned())
            });
        }
        rest = tail;
    }
    None
}

#[tokio::test]
async fn every_answer_carries_a_request_id_and_every_error_the_same_one() {
    let server = TestServer::start().await;
    let mut generated = BTreeSet::new();
    for protocol in PROTOCOLS {
        let (answered, in_error) = ids_of(&server, protocol, Some("report-4711")).await;
        assert_eq!(answered, "report-4711", "{protocol:?}");
        assert_eq!(in_error.as_deref(), Some("report-4711"), "{protocol:?}");

        let (answered, in_error) = ids_of(&server, protocol, None).await;
        assert!(uuid::Uuid::parse_str(&answered).is_ok(), "{protocol:?}: {answered}");
        assert_eq!(in_error.as_deref(), Some(answered.as_str()), "{protocol:?}");
        generated.insert(answered);

        // A successful answer carries one too.
        let get = Rest::new(rpc::GET_DOMAIN_POLICY, Method::GET, "/admin/v1/policies/domain");
        let (outcome, headers) = server.exchange(protocol, &get).await;
        assert!(matches!(outcome, Outcome::Ok(_)), "{protocol:?}");
        assert!(headers.contains_key("x-request-id"), "{protocol:?}: {headers:?}");
    }
    assert_eq!(generated.len(), 3, "ids repeat: {generated:?}");

    // So do refusals made before the inner stack: a gRPC-web-text body that is not base64 ...
    let extra = [("x-request-id", "text-1".to_owned())];
    let (_, headers, body) =
        server.grpc_web_send(rpc::GET_DOMAIN_POLICY.path, Bytes::from_static(b"*not base64*"), true, &extra).await;
    let details = match headers.get("grpc-status-details-bin") {
        Some(details) => details.as_bytes().to_vec(),
        None => trailer(&body, "grpc-status-details-bin").unwrap_or_default().into_bytes(),
    };
    assert_eq!(request_id_in_details(&details).as_deref(), Some("text-1"), "{headers:?}");

    // ... and the transcoder's own, where an unusable id is replaced.
    let reply = server.json_with(Method::GET, "/no/such/path", None, &[("x-request-id", "x".repeat(200))]).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let id = reply.headers["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    let details = reply.body["details"].as_array().unwrap();
    assert!(details.iter().any(|d| d["metadata"]["requestId"] == json!(id)), "{}", reply.body);
    server.stop().await;
}

#[tokio::test]
async fn a_metrics_scrape_is_open_and_answers_get_only() {
    let server = TestServer::start().await;
    let page = scrape(&server).await;
    assert!(page.contains("# TYPE iamd_requests_total counter"));
    let post = Request::post(server.url("/metrics")).body(Full::new(Bytes::new())).unwrap();
    let (status, _, body) = server.raw(post).await;
    assert!(status.is_client_error(), "{status}");
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert!(body["code"].is_number());
    server.stop().await;
}
