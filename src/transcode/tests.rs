//! End-to-end tests of the JSON transcoder: real routes from the test descriptor set
//! (`tests/proto/iamd/echo/v1/echo.proto`, strict conventions, and
//! `tests/proto/iamd/echolax/v1/echo.proto`, lenient ones), a real tonic service behind
//! them, and HTTP requests in and out.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests")]

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use prost_reflect::DescriptorPool;
use serde_json::{Value, json};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};
use tower::ServiceExt;
use tower::util::BoxCloneSyncService;

use super::Transcoder;
use super::routes::RouteTable;
use crate::body::ResponseBody;
use crate::pb::iamd::echo::v1::echo_service_server::{EchoService, EchoServiceServer};
use crate::pb::iamd::echo::v1::{EchoRequest, EchoResponse};
use crate::pb::iamd::echolax::v1::lax_echo_service_server::{LaxEchoService, LaxEchoServiceServer};
use crate::pb::iamd::echolax::v1::{LaxEchoRequest, LaxEchoResponse};

// ---- the service behind the transcoder ----

/// Request metadata the echo service reports back, in this order. `cookie` and
/// `x-other` are listed so that a header forwarded by mistake would show.
const REPORTED_METADATA: [&str; 8] = [
    "authorization",
    "tenants",
    "if-match",
    "x-iamd-consistency-token",
    "x-request-id",
    "grpc-timeout",
    "cookie",
    "x-other",
];

/// Answers what it received; `fail-<n>` answers gRPC code `n`. Counts its calls and keeps
/// the last request, so tests can tell what reached the handler.
#[derive(Clone, Default)]
struct Echo {
    calls: Arc<AtomicUsize>,
    last: Arc<Mutex<Option<EchoRequest>>>,
}

impl Echo {
    fn reply(&self, request: tonic::Request<EchoRequest>) -> Result<tonic::Response<EchoResponse>, Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let metadata = reported_metadata(request.metadata());
        let request = request.into_inner();
        *self.last.lock().unwrap() = Some(request.clone());
        fail_if_asked(&request.id)?;
        let mut response =
            tonic::Response::new(EchoResponse { note: request.note.clone(), request: Some(request), metadata });
        response.metadata_mut().insert("etag", "7".parse().unwrap());
        Ok(response)
    }
}

fn reported_metadata(metadata: &tonic::metadata::MetadataMap) -> Vec<String> {
    let mut seen = Vec::new();
    for key in REPORTED_METADATA {
        for value in metadata.get_all(key) {
            seen.push(format!("{key}={}", value.to_str().unwrap()));
        }
    }
    seen
}

fn fail_if_asked(id: &str) -> Result<(), Status> {
    match id.strip_prefix("fail-").and_then(|n| n.parse::<i32>().ok()) {
        Some(code) => Err(Status::with_error_details(
            Code::from(code),
            "failing as asked",
            ErrorDetails::with_error_info("FAILING_AS_ASKED", "echo", [("id".to_owned(), id.to_owned())]),
        )),
        None => Ok(()),
    }
}

#[tonic::async_trait]
impl EchoService for Echo {
    async fn echo(&self, request: tonic::Request<EchoRequest>) -> Result<tonic::Response<EchoResponse>, Status> {
        self.reply(request)
    }
    async fn echo_nested(&self, request: tonic::Request<EchoRequest>) -> Result<tonic::Response<EchoResponse>, Status> {
        self.reply(request)
    }
    async fn echo_path(&self, request: tonic::Request<EchoRequest>) -> Result<tonic::Response<EchoResponse>, Status> {
        self.reply(request)
    }
    async fn echo_verb(&self, request: tonic::Request<EchoRequest>) -> Result<tonic::Response<EchoResponse>, Status> {
        self.reply(request)
    }
    async fn echo_any_verb(
        &self,
        request: tonic::Request<EchoRequest>,
    ) -> Result<tonic::Response<EchoResponse>, Status> {
        self.reply(request)
    }
    async fn echo_nothing(
        &self,
        request: tonic::Request<EchoRequest>,
    ) -> Result<tonic::Response<EchoResponse>, Status> {
        self.reply(request)
    }
}

#[tonic::async_trait]
impl LaxEchoService for Echo {
    async fn lax_echo(
        &self,
        request: tonic::Request<LaxEchoRequest>,
    ) -> Result<tonic::Response<LaxEchoResponse>, Status> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(tonic::Response::new(LaxEchoResponse { request: Some(request.into_inner()) }))
    }
}

// ---- the harness ----

type Grpc = BoxCloneSyncService<Request<tonic::body::Body>, Response<ResponseBody>, Infallible>;

static TABLE: LazyLock<Arc<RouteTable>> = LazyLock::new(|| {
    let pool = DescriptorPool::decode(crate::pb::TEST_FILE_DESCRIPTOR_SET).unwrap();
    Arc::new(RouteTable::from_methods(&crate::methods::MethodTable::from_pools(&[pool]).unwrap()).unwrap())
});

/// The request body limit of [`call`]; small, so the 413 tests stay small.
const MAX_BODY: usize = 1024;

struct Harness {
    echo: Echo,
    transcoder: Transcoder<Grpc>,
}

impl Harness {
    fn new(max_body: usize) -> Self {
        let echo = Echo::default();
        let routes = tonic::service::Routes::new(EchoServiceServer::new(echo.clone()))
            .add_service(LaxEchoServiceServer::new(echo.clone()));
        let grpc: Grpc = BoxCloneSyncService::new(routes);
        let limits = crate::config::Limits { max_body_bytes: max_body, ..Default::default() };
        Harness {
            echo,
            transcoder: Transcoder::new(TABLE.clone(), grpc, limits, Arc::new(crate::metrics::Metrics::off())),
        }
    }

    fn calls(&self) -> usize {
        self.echo.calls.load(Ordering::SeqCst)
    }

    fn last(&self) -> EchoRequest {
        self.echo.last.lock().unwrap().clone().expect("the handler was called")
    }

    /// Sends one request; `None` when `uri` is not a valid URI.
    async fn try_raw(
        &self,
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Option<(StatusCode, HeaderMap, Bytes)> {
        let mut builder = Request::builder().method(Method::from_bytes(method.as_bytes()).unwrap()).uri(uri);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder.body(Full::new(body.into())).ok()?;
        let Ok(response) = self.transcoder.clone().oneshot(request).await;
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        Some((parts.status, parts.headers, bytes))
    }

    async fn raw(
        &self,
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> (StatusCode, HeaderMap, Bytes) {
        self.try_raw(method, uri, headers, body).await.unwrap_or_else(|| panic!("`{uri}` is not a valid URI"))
    }

    /// Sends one request and reads the answer as JSON (`Null` for an empty body).
    async fn call(
        &self,
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (StatusCode, HeaderMap, Value) {
        let (status, headers, bytes) = self.raw(method, uri, headers, body.to_owned()).await;
        let json = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                panic!("{method} {uri}: the answer is not JSON ({e}): {}", String::from_utf8_lossy(&bytes))
            })
        };
        (status, headers, json)
    }
}

/// One request through a fresh harness.
async fn call(method: &str, uri: &str, headers: &[(&str, &str)], body: &str) -> (StatusCode, HeaderMap, Value) {
    Harness::new(MAX_BODY).call(method, uri, headers, body).await
}

/// A GET that must succeed; the request message the handler echoed.
async fn echoed(uri: &str) -> Value {
    let (status, headers, body) = call("GET", uri, &[], "").await;
    assert_eq!(status, StatusCode::OK, "GET {uri}: {body}");
    assert_eq!(headers[header::CONTENT_TYPE], "application/json", "GET {uri}");
    body["request"].clone()
}

/// A 400 in the `google.rpc.Status` shape that names `field` in its message and in a
/// BadRequest field violation.
fn assert_names_field(what: &str, status: StatusCode, body: &Value, field: &str) {
    assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {body}");
    assert_eq!(body["code"], 3, "{what}: {body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(message.contains(&format!("`{field}`")), "{what}: the message does not name `{field}`: {message}");
    let details = body["details"].as_array().unwrap();
    let bad_request = details
        .iter()
        .find(|d| d["@type"] == "type.googleapis.com/google.rpc.BadRequest")
        .unwrap_or_else(|| panic!("{what}: no BadRequest detail: {body}"));
    assert_eq!(bad_request["fieldViolations"][0]["field"], field, "{what}: {body}");
    assert_eq!(bad_request["fieldViolations"][0]["description"], message, "{what}");
    assert!(
        details.iter().any(|d| d["@type"] == "type.googleapis.com/google.rpc.ErrorInfo"
            && d["reason"] == "INVALID_REQUEST"
            && d["domain"] == crate::ERROR_DOMAIN),
        "{what}: no ErrorInfo: {body}"
    );
}

/// An error answer the transcoder gave itself: the HTTP status, the gRPC code and JSON.
fn assert_error(what: &str, status: StatusCode, headers: &HeaderMap, body: &Value, http: u16, code: i32) {
    assert_eq!(status.as_u16(), http, "{what}: {body}");
    assert_eq!(headers[header::CONTENT_TYPE], "application/json", "{what}");
    assert_eq!(body["code"], code, "{what}: {body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: {body}");
    assert!(body["details"].is_array(), "{what}: {body}");
}

fn allowed(headers: &HeaderMap) -> Vec<String> {
    let mut methods: Vec<String> =
        headers[header::ALLOW].to_str().unwrap().split(',').map(|m| m.trim().to_owned()).collect();
    methods.sort();
    methods
}

// ---- routes and path templates ----

#[tokio::test]
async fn simple_variable_binds_the_path_segment() {
    let (status, headers, body) = call("GET", "/v1/echo/b1", &[], "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    assert_eq!(body["request"]["id"], "b1");
}

#[tokio::test]
async fn path_values_are_percent_decoded() {
    let cases = [
        ("/v1/echo/a%20b", "a b"),
        ("/v1/echo/j%C3%B6rg", "jörg"),
        ("/v1/echo/a%2Fb", "a/b"),
        ("/v1/echo/a+b", "a+b"),
        ("/v1/echo/%25", "%"),
        ("/v1/echo/a:b", "a:b"),
        // Multi-segment variables keep reserved characters as written (http.proto's
        // default), so the segments stay visible.
        ("/v1/files/a%2Fb/c%20d", "a%2Fb/c d"),
        ("/v1/files/a%3Ab%2C%25", "a%3Ab%2C%"),
        ("/v1/files/%E6%97%A5/x", "日/x"),
    ];
    for (uri, id) in cases {
        assert_eq!(echoed(uri).await["id"], id, "{uri}");
    }
    // A malformed escape matches no template.
    for uri in ["/v1/echo/%zz", "/v1/echo/a%2", "/v1/echo/%FF", "/v1/files/a/%C3"] {
        let (status, headers, body) = call("GET", uri, &[], "").await;
        assert_error(uri, status, &headers, &body, 404, 5);
    }
}

#[tokio::test]
async fn nested_variable_with_a_pattern() {
    let request = echoed("/v1/shelves/s1/books/b1").await;
    assert_eq!(request["note"]["text"], "shelves/s1");
    assert_eq!(request["id"], "b1");
    // The rest of the nested message is still open to the query.
    let request = echoed("/v1/shelves/s%201/books/b1?note.stars=2").await;
    assert_eq!(request["note"], json!({"text": "shelves/s 1", "stars": 2}));
    for uri in ["/v1/shelves/s1/x/books/b1", "/v1/shelves/books/b1", "/v1/racks/s1/books/b1"] {
        let (status, headers, body) = call("GET", uri, &[], "").await;
        assert_error(uri, status, &headers, &body, 404, 5);
    }
}

#[tokio::test]
async fn double_star_binds_the_rest_of_the_path() {
    assert_eq!(echoed("/v1/files/a/b/c").await["id"], "a/b/c");
    assert_eq!(echoed("/v1/files/a").await["id"], "a");
    assert_eq!(echoed("/v1/files/a:b/c").await["id"], "a:b/c");
    // Zero segments too, as http.proto says of `**`.
    assert_eq!(echoed("/v1/files").await["id"], "");
    for uri in ["/v1/files/", "/v1/files/a//b"] {
        let (status, headers, body) = call("GET", uri, &[], "").await;
        assert_error(uri, status, &headers, &body, 404, 5);
    }
}

#[tokio::test]
async fn custom_verb_answers_the_response_body_with_its_status() {
    let harness = Harness::new(MAX_BODY);
    let (status, headers, body) =
        harness.call("POST", "/v1/echo/v1:note", &[], r#"{"note":{"text":"hi","stars":4}}"#).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    // Only the `note` field of EchoResponse, not the whole message.
    assert_eq!(body, json!({"text": "hi", "stars": 4}));
    assert_eq!(harness.last().id, "v1");
    assert_eq!(harness.calls(), 1);
}

#[tokio::test]
async fn an_unset_response_body_field_answers_its_zero_value() {
    // EchoVerb answers `note`, which the request left unset: `{}`, as grpc-gateway, not `null`.
    let (status, _, body) = call("POST", "/v1/echo/v1:note", &[], "{}").await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body, json!({}));
}

#[tokio::test]
async fn a_get_ignores_its_body_whatever_its_content_type() {
    let (status, _, body) = call("GET", "/v1/echo/g", &[("content-type", "text/plain")], "ignored").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["request"]["id"], "g");
}

#[tokio::test]
async fn verb_template_wins_over_the_plain_one_and_is_not_required_elsewhere() {
    let harness = Harness::new(MAX_BODY);
    // GET has no verb binding: `:note` is data of `/v1/echo/{id}`.
    let (status, _, body) = harness.call("GET", "/v1/echo/x:note", &[], "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["request"]["id"], "x:note");
    // GET has `/v1/{id=**}:verb`, which takes its verb from the more literal `/v1/echo/{id}`.
    let (status, _, body) = harness.call("GET", "/v1/echo/x:verb", &[], "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["request"]["id"], "echo/x");
    // Another verb is no verb at all, and POST is not served at `/v1/echo/{id}`.
    let (status, headers, body) = harness.call("POST", "/v1/echo/x:other", &[], "{}").await;
    assert_error("POST :other", status, &headers, &body, 405, 12);
    assert_eq!(allowed(&headers), ["DELETE", "GET", "PATCH"]);
    assert_eq!(harness.calls(), 2);
}

#[tokio::test]
async fn additional_binding_with_the_whole_body() {
    let harness = Harness::new(MAX_BODY);
    let (status, _, body) = harness
        .call("POST", "/v1/echo", &[], r#"{"id":"b","count":3,"tags":["x","y"],"unsigned_big":"12","color":2}"#)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let request = &body["request"];
    assert_eq!(request["id"], "b");
    assert_eq!(request["count"], 3);
    assert_eq!(request["tags"], json!(["x", "y"]));
    assert_eq!(request["unsignedBig"], "12");
    assert_eq!(request["color"], "COLOR_BLUE");
    // An empty body is an empty message.
    let (status, _, body) = harness.call("POST", "/v1/echo", &[], "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["request"]["id"], "");
    assert_eq!(harness.calls(), 2);
}

#[tokio::test]
async fn additional_binding_with_a_body_field() {
    let harness = Harness::new(MAX_BODY);
    let (status, _, body) =
        harness.call("PUT", "/v1/echo/i1/note?count=2", &[], r#"{"text":"t","stars":5,"inner":{"text":"u"}}"#).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let request = &body["request"];
    assert_eq!(request["id"], "i1");
    assert_eq!(request["count"], 2);
    assert_eq!(request["note"], json!({"text": "t", "stars": 5, "inner": {"text": "u", "stars": 0}}));
    // The body is the note, not the request: a request field there is unknown to Note.
    let (status, _, body) = harness.call("PUT", "/v1/echo/i1/note", &[], r#"{"count":1}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["message"].as_str().unwrap().contains("count"), "{body}");
    assert_eq!(harness.calls(), 1);
}

#[tokio::test]
async fn get_ignores_a_body() {
    let harness = Harness::new(MAX_BODY);
    let (status, _, body) = harness.call("GET", "/v1/echo/x", &[], r#"{"id":"y","count":5}"#).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["request"]["id"], "x");
    assert_eq!(body["request"]["count"], 0);
    // Even one that is not JSON.
    let (status, _, body) = harness.call("DELETE", "/v1/echo/x", &[], "{not json").await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(harness.last().id, "x");
}

#[tokio::test]
async fn path_values_override_the_body() {
    let harness = Harness::new(MAX_BODY);
    let (status, _, _) = harness.call("POST", "/v1/echo/from-path:note", &[], r#"{"id":"from-body","count":4}"#).await;
    assert_eq!(status, StatusCode::CREATED);
    let last = harness.last();
    assert_eq!(last.id, "from-path");
    assert_eq!(last.count, 4);
}

// ---- query parameters ----

#[tokio::test]
async fn query_parameters_set_fields() {
    // (query, JSON pointer into the echoed request, expected value)
    let cases: &[(&str, &str, Value)] = &[
        ("count=7", "/count", json!(7)),
        ("count=-7", "/count", json!(-7)),
        ("big=9007199254740993", "/big", json!("9007199254740993")),
        ("big=-5", "/big", json!("-5")),
        ("unsigned_big=18446744073709551615", "/unsignedBig", json!("18446744073709551615")),
        ("unsignedBig=3", "/unsignedBig", json!("3")),
        ("flag=true", "/flag", json!(true)),
        ("flag=false", "/flag", json!(false)),
        ("ratio=1.5", "/ratio", json!(1.5)),
        ("ratio=-2", "/ratio", json!(-2.0)),
        ("note.text=x", "/note/text", json!("x")),
        ("note.text=x&note.stars=3", "/note", json!({"text": "x", "stars": 3})),
        ("note.inner.text=y", "/note/inner/text", json!("y")),
        (
            "note.inner.stars=1&note.text=z",
            "/note",
            json!({"text": "z", "stars": 0, "inner": {"text": "", "stars": 1}}),
        ),
        ("tags=a&tags=b", "/tags", json!(["a", "b"])),
        ("tags=a&count=1&tags=b", "/tags", json!(["a", "b"])),
        ("tags=", "/tags", json!([""])),
        ("numbers=1&numbers=2", "/numbers", json!([1, 2])),
        ("color=COLOR_RED", "/color", json!("COLOR_RED")),
        ("color=2", "/color", json!("COLOR_BLUE")),
        ("color=0", "/color", json!("COLOR_UNSPECIFIED")),
        ("colors=COLOR_RED&colors=2", "/colors", json!(["COLOR_RED", "COLOR_BLUE"])),
        ("at=2024-01-02T03:04:05Z", "/at", json!("2024-01-02T03:04:05Z")),
        ("at=2024-01-02T04:04:05.25%2B01:00", "/at", json!("2024-01-02T03:04:05.250Z")),
        ("wait=1.5s", "/wait", json!("1.500s")),
        ("wrapped=5", "/wrapped", json!(5)),
        ("limit=0", "/limit", json!(0)),
        ("limit=9", "/limit", json!(9)),
        // Form decoding of values and keys.
        ("note.text=a+b%20c", "/note/text", json!("a b c")),
        ("note.text=%2B1", "/note/text", json!("+1")),
        ("note.text=a%3Db%26c", "/note/text", json!("a=b&c")),
        ("note.text=%C3%A9%E6%97%A5", "/note/text", json!("é日")),
        ("note%2Etext=k", "/note/text", json!("k")),
        // Empty pairs are skipped.
        ("&&count=4&", "/count", json!(4)),
    ];
    for (query, pointer, expected) in cases {
        let request = echoed(&format!("/v1/echo/q?{query}")).await;
        assert_eq!(request.pointer(pointer), Some(expected), "?{query}: {request}");
        assert_eq!(request["id"], "q", "?{query}");
    }
}

#[tokio::test]
async fn a_patch_names_the_fields_its_body_holds_in_the_update_mask() {
    let (status, _, body) = call("PATCH", "/v1/echo/e1", &[], r#"{"tags": [], "count": 0, "id": "x"}"#).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["request"]["updateMask"], "tags,count", "path fields stay out: {body}");
    assert_eq!(body["request"]["id"], "e1");
    let (_, _, body) = call("PATCH", "/v1/echo/e1", &[], r#"{"tags": ["a"], "updateMask": "note.text"}"#).await;
    assert_eq!(body["request"]["updateMask"], "note.text", "a mask the client sent stands");
    let (_, _, body) = call("PATCH", "/v1/echo/e1", &[], "{}").await;
    assert_eq!(body["request"]["updateMask"], Value::Null, "{body}");
    let (_, _, body) = call("POST", "/v1/echo", &[], r#"{"tags": []}"#).await;
    assert_eq!(body["request"]["updateMask"], Value::Null, "only a PATCH: {body}");
    let (status, _, body) = call("PATCH", "/v1/echo/e1", &[], r#"{"unknown": 1}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "the codec refuses what the mask leaves out: {body}");
}

#[tokio::test]
async fn a_null_in_a_list_is_refused_naming_the_element() {
    for (json, field) in [
        (r#"{"tags": ["a", null]}"#, "tags[1]"),
        (r#"{"notes": [{"text": "a"}, null]}"#, "notes[1]"),
        (r#"{"note": {"inner": {"text": "a"}}, "notes": [{"inner": {"text": "b"}}, {"text": "c"}, null]}"#, "notes[2]"),
    ] {
        let (status, _, body) = call("POST", "/v1/echo", &[], json).await;
        assert_names_field(json, status, &body, field);
    }
}

#[tokio::test]
async fn optional_fields_keep_presence() {
    let absent = echoed("/v1/echo/q").await;
    assert!(absent.get("limit").is_none(), "{absent}");
    let zero = echoed("/v1/echo/q?limit=0").await;
    assert_eq!(zero.get("limit"), Some(&json!(0)), "{zero}");
}

#[tokio::test]
async fn query_errors_name_the_parameter() {
    // (method, uri, body, the parameter named)
    let cases = [
        ("GET", "/v1/echo/x?bogus=1", "", "bogus"),
        ("GET", "/v1/echo/x?note.bogus=1", "", "note.bogus"),
        ("GET", "/v1/echo/x?count.x=1", "", "count.x"),
        ("GET", "/v1/echo/x?count=abc", "", "count"),
        ("GET", "/v1/echo/x?count=99999999999", "", "count"),
        ("GET", "/v1/echo/x?count=1.5", "", "count"),
        ("GET", "/v1/echo/x?flag=maybe", "", "flag"),
        ("GET", "/v1/echo/x?flag=1", "", "flag"),
        ("GET", "/v1/echo/x?big=1.5", "", "big"),
        ("GET", "/v1/echo/x?unsigned_big=-1", "", "unsigned_big"),
        ("GET", "/v1/echo/x?ratio=abc", "", "ratio"),
        ("GET", "/v1/echo/x?ratio=1e999", "", "ratio"),
        ("GET", "/v1/echo/x?color=COLOR_GREEN", "", "color"),
        ("GET", "/v1/echo/x?color=9", "", "color"),
        ("GET", "/v1/echo/x?colors=RED", "", "colors"),
        ("GET", "/v1/echo/x?numbers=1&numbers=x", "", "numbers"),
        ("GET", "/v1/echo/x?wrapped=abc", "", "wrapped"),
        ("GET", "/v1/echo/x?note=x", "", "note"),
        ("GET", "/v1/echo/x?note.inner=x", "", "note.inner"),
        ("GET", "/v1/echo/x?labels=x", "", "labels"),
        ("GET", "/v1/echo/x?labels.k=v", "", "labels.k"),
        ("GET", "/v1/echo/x?id=other", "", "id"),
        ("GET", "/v1/echo/x?count=1&count=2", "", "count"),
        ("GET", "/v1/echo/x?unsigned_big=1&unsignedBig=2", "", "unsignedBig"),
        ("GET", "/v1/echo/x?note.text=a&note.text=b", "", "note.text"),
        ("GET", "/v1/echo/x?limit=1&limit=1", "", "limit"),
        ("GET", "/v1/echo/x?tags=%FF", "", "tags"),
        ("GET", "/v1/echo/x?%FF=1", "", "%FF"),
        ("GET", "/v1/shelves/s1/books/b?note.text=x", "", "note.text"),
        ("GET", "/v1/files/a/b?id=c", "", "id"),
        ("PUT", "/v1/echo/x/note?note.stars=1", "{}", "note.stars"),
        ("PUT", "/v1/echo/x/note?id=y", "{}", "id"),
        // `body: "*"` leaves nothing to the query on the strict surface.
        ("POST", "/v1/echo?count=1", "{}", "count"),
        ("POST", "/v1/echo?bogus=1", "{}", "bogus"),
        ("POST", "/v1/echo/x:note?tags=a", "{}", "tags"),
    ];
    let harness = Harness::new(MAX_BODY);
    for (method, uri, body, field) in cases {
        let (status, headers, json) = harness.call(method, uri, &[], body).await;
        assert_eq!(headers[header::CONTENT_TYPE], "application/json", "{method} {uri}");
        assert_names_field(&format!("{method} {uri}"), status, &json, field);
    }
    assert_eq!(harness.calls(), 0, "no invalid request reaches the handler");
}

#[tokio::test]
async fn invalid_well_known_type_values_are_400() {
    let harness = Harness::new(MAX_BODY);
    for query in ["at=yesterday", "at=2024-01-02T03:04:05+01:00", "wait=soon"] {
        let (status, headers, body) = harness.call("GET", &format!("/v1/echo/x?{query}"), &[], "").await;
        assert_error(query, status, &headers, &body, 400, 3);
    }
    assert_eq!(harness.calls(), 0);
}

// ---- the lenient surface ----

#[tokio::test]
async fn lenient_surface_ignores_unknown_parameters_and_fields() {
    let harness = Harness::new(MAX_BODY);
    let (status, _, body) = harness.call("GET", "/v1/lax/x?bogus=1&count=2&note.bogus=3&big=5", &[], "").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Zero values are omitted on this surface; 64-bit integers are still strings.
    assert_eq!(body, json!({"request": {"id": "x", "count": 2, "big": "5"}}));

    let (status, _, body) = harness
        .call("POST", "/v1/lax", &[], r#"{"id":"y","bogus":{"deep":[1]},"note":{"text":"t","extra":true}}"#)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"request": {"id": "y", "note": {"text": "t"}}}));

    // Query parameters on a `body: "*"` binding are unknown, so ignored here.
    let (status, _, body) = harness.call("POST", "/v1/lax?count=3", &[], r#"{"id":"z"}"#).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"request": {"id": "z"}}));
    assert_eq!(harness.calls(), 3);
}

#[tokio::test]
async fn lenient_surface_still_rejects_wrong_values() {
    let harness = Harness::new(MAX_BODY);
    for (uri, field) in [("/v1/lax/x?count=abc", "count"), ("/v1/lax/x?id=y", "id"), ("/v1/lax/x?note=y", "note")] {
        let (status, _, body) = harness.call("GET", uri, &[], "").await;
        assert_names_field(uri, status, &body, field);
    }
    let (status, headers, body) = harness.call("POST", "/v1/lax", &[], r#"{"count":"x"}"#).await;
    assert_error("lax body", status, &headers, &body, 400, 3);
    assert_eq!(harness.calls(), 0);
}

// ---- answers ----

#[tokio::test]
async fn no_content_has_no_body_and_no_content_type() {
    let harness = Harness::new(MAX_BODY);
    let (status, headers, bytes) = harness.raw("DELETE", "/v1/echo/gone", &[], "").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(bytes.is_empty(), "{bytes:?}");
    assert!(headers.get(header::CONTENT_TYPE).is_none(), "{headers:?}");
    assert_eq!(headers["etag"], "7");
    assert_eq!(harness.last().id, "gone");
}

#[tokio::test]
async fn strict_surface_emits_zero_values() {
    let (status, _, body) = call("GET", "/v1/echo/z", &[], "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({
            "request": {
                "id": "z",
                "count": 0,
                "big": "0",
                "flag": false,
                "tags": [],
                "color": "COLOR_UNSPECIFIED",
                "ratio": 0.0,
                "unsignedBig": "0",
                "numbers": [],
                "colors": [],
                "labels": {},
                "notes": [],
            },
            "metadata": [],
        })
    );
}

#[tokio::test]
async fn wire_forms_of_64_bit_integers_and_timestamps() {
    let harness = Harness::new(MAX_BODY);
    let uri = "/v1/echo/w?big=-9007199254740993&unsigned_big=18446744073709551615&at=2024-11-15T21:46:14.039Z";
    let (status, _, bytes) = harness.raw("GET", uri, &[], "").await;
    assert_eq!(status, StatusCode::OK);
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    assert!(text.contains(r#""big":"-9007199254740993""#), "{text}");
    assert!(text.contains(r#""unsignedBig":"18446744073709551615""#), "{text}");
    assert!(text.contains(r#""at":"2024-11-15T21:46:14.039Z""#), "{text}");
    let last = harness.last();
    assert_eq!((last.big, last.unsigned_big), (-9_007_199_254_740_993, u64::MAX));
    // A timestamp comes back with the digits it went in with: none cut, none added.
    for at in ["2024-11-15T21:46:14Z", "2024-11-15T21:46:14.039123Z", "2024-11-15T21:46:14.039123456Z"] {
        let (status, _, body) = harness.call("GET", &format!("/v1/echo/w?at={at}"), &[], "").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["request"]["at"], at);
    }
    // The body accepts 64-bit integers as strings and as numbers.
    let (status, _, body) = harness.call("POST", "/v1/echo", &[], r#"{"big":"12","unsignedBig":13}"#).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!((body["request"]["big"].clone(), body["request"]["unsignedBig"].clone()), (json!("12"), json!("13")));
}

#[tokio::test]
async fn request_headers_become_metadata_and_others_do_not() {
    let headers = [
        ("authorization", "Bearer t0ken"),
        ("tenants", "t1"),
        ("tenants", "t2"),
        ("if-match", "\"3\""),
        ("x-iamd-consistency-token", "c1"),
        ("x-request-id", "r1"),
        ("grpc-timeout", "5S"),
        ("cookie", "session=1"),
        ("x-other", "y"),
    ];
    let (status, _, body) = call("GET", "/v1/echo/h", &headers, "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["metadata"],
        json!([
            "authorization=Bearer t0ken",
            "tenants=t1",
            "tenants=t2",
            "if-match=\"3\"",
            "x-iamd-consistency-token=c1",
            "x-request-id=r1",
            "grpc-timeout=5S",
        ])
    );
}

#[tokio::test]
async fn response_metadata_becomes_headers_without_grpc_framing() {
    let (status, headers, _) = call("GET", "/v1/echo/m", &[], "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["etag"], "7");
    assert_eq!(headers.get_all(header::CONTENT_TYPE).iter().count(), 1);
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    for name in ["grpc-status", "grpc-message", "grpc-status-details-bin"] {
        assert!(headers.get(name).is_none(), "{name}: {headers:?}");
    }
}

// ---- errors ----

#[tokio::test]
async fn every_grpc_code_maps_as_grpc_gateway() {
    let table = [
        (1, 499),
        (2, 500),
        (3, 400),
        (4, 504),
        (5, 404),
        (6, 409),
        (7, 403),
        (8, 429),
        (9, 400),
        (10, 409),
        (11, 400),
        (12, 501),
        (13, 500),
        (14, 503),
        (15, 500),
        (16, 401),
    ];
    let harness = Harness::new(MAX_BODY);
    for (code, http) in table {
        let uri = format!("/v1/echo/fail-{code}");
        let (status, headers, body) = harness.call("GET", &uri, &[], "").await;
        assert_eq!(status.as_u16(), http, "code {code}: {body}");
        assert_eq!(headers[header::CONTENT_TYPE], "application/json", "code {code}");
        assert_eq!(
            body,
            json!({
                "code": code,
                "message": "failing as asked",
                "details": [{
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "FAILING_AS_ASKED",
                    "domain": "echo",
                    "metadata": {"id": format!("fail-{code}")},
                }],
            }),
            "code {code}"
        );
        assert_eq!(headers.get(header::WWW_AUTHENTICATE).is_some(), code == 16, "code {code}");
    }
    assert_eq!(harness.calls(), table.len());
}

#[tokio::test]
async fn errors_replace_the_success_status_and_the_response_body() {
    let (status, headers, body) = call("DELETE", "/v1/echo/fail-5", &[], "").await;
    assert_error("DELETE", status, &headers, &body, 404, 5);
    let (status, headers, body) = call("POST", "/v1/echo/fail-6:note", &[], "{}").await;
    assert_error("verb", status, &headers, &body, 409, 6);
    assert_eq!(body["message"], "failing as asked");
}

#[tokio::test]
async fn unknown_path_is_404() {
    for uri in ["/v2/nothing", "/", "/v1/echo/", "/v1/echo/a/b/c/d", "/V1/echo/x"] {
        let (status, headers, body) = call("GET", uri, &[], "").await;
        assert_error(uri, status, &headers, &body, 404, 5);
        assert!(body["message"].as_str().unwrap().contains(uri), "{body}");
    }
}

#[tokio::test]
async fn wrong_method_is_405_with_allow() {
    let harness = Harness::new(MAX_BODY);
    let cases: [(&str, &str, &[&str]); 4] = [
        ("PUT", "/v1/echo/x", &["DELETE", "GET", "PATCH"]),
        ("GET", "/v1/echo", &["POST"]),
        ("GET", "/v1/echo/x/note", &["PUT"]),
        ("PUT", "/v1/echo/x:note", &["DELETE", "GET", "PATCH", "POST"]),
    ];
    for (method, uri, allow) in cases {
        let (status, headers, body) = harness.call(method, uri, &[], "").await;
        assert_error(&format!("{method} {uri}"), status, &headers, &body, 405, 12);
        assert_eq!(allowed(&headers), allow, "{method} {uri}");
    }
    assert_eq!(harness.calls(), 0);
}

/// `application/json+lax` ignores unknown fields at every depth on a surface that refuses
/// them, and keeps every known one.
#[tokio::test]
async fn lax_json_drops_unknown_fields_where_the_surface_refuses_them() {
    let harness = Harness::new(MAX_BODY);
    let body = r#"{"count":2,"bogus":1,"note":{"text":"t","extra":[1],"inner":{"stars":3,"deep":{}}},"at":"2026-01-01T00:00:00Z"}"#;
    let (status, headers, answer) = harness.call("POST", "/v1/echo", &[], body).await;
    assert_error("strict", status, &headers, &answer, 400, 3);
    assert!(answer["message"].as_str().unwrap().contains("bogus"), "{answer}");

    let lax = [("content-type", "application/json+lax")];
    let (status, _, answer) = harness.call("POST", "/v1/echo", &lax, body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["request"]["count"], 2);
    assert_eq!(answer["request"]["note"]["text"], "t");
    assert_eq!(answer["request"]["note"]["inner"]["stars"], 3);
    assert_eq!(answer["request"]["at"], "2026-01-01T00:00:00Z");
    // Bad values of known fields are still refused.
    let (status, headers, answer) = harness.call("POST", "/v1/echo", &lax, r#"{"count":"x","bogus":1}"#).await;
    assert_error("lax, bad value", status, &headers, &answer, 400, 3);
}

#[tokio::test]
async fn content_types() {
    let harness = Harness::new(MAX_BODY);
    let accepted: [&[(&str, &str)]; 6] = [
        &[],
        &[("content-type", "application/json")],
        &[("content-type", "application/json; charset=utf-8")],
        &[("content-type", "Application/JSON")],
        &[("content-type", "application/json+lax")],
        &[("content-type", "application/x-www-form-urlencoded")],
    ];
    for headers in accepted {
        let (status, _, body) = harness.call("POST", "/v1/echo", headers, r#"{"count":1}"#).await;
        assert_eq!(status, StatusCode::OK, "{headers:?}: {body}");
        assert_eq!(body["request"]["count"], 1, "{headers:?}");
    }
    assert_eq!(harness.calls(), accepted.len());
    for content_type in ["text/plain", "application/xml", "application/jsonx", "application/grpc-web+json"] {
        let (status, headers, body) =
            harness.call("POST", "/v1/echo", &[("content-type", content_type)], r#"{"count":1}"#).await;
        assert_error(content_type, status, &headers, &body, 415, 3);
        assert!(body["message"].as_str().unwrap().contains(content_type), "{body}");
    }
    assert_eq!(harness.calls(), accepted.len(), "a 415 does not reach the handler");
    // Without a body the content type does not matter.
    let (status, _, _) = harness.call("GET", "/v1/echo/x", &[("content-type", "text/plain")], "").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn body_over_the_limit_is_413_and_never_reaches_the_handler() {
    let harness = Harness::new(MAX_BODY);
    let big = format!(r#"{{"tags":["{}"]}}"#, "x".repeat(MAX_BODY));
    let (status, headers, body) = harness.call("POST", "/v1/echo", &[], &big).await;
    assert_error("too large", status, &headers, &body, 413, 8);
    assert!(body["message"].as_str().unwrap().contains("1024"), "{body}");
    // Also on a binding that would ignore the body.
    let (status, headers, body) = harness.call("GET", "/v1/echo/x", &[], &big).await;
    assert_error("too large GET", status, &headers, &body, 413, 8);
    assert_eq!(harness.calls(), 0);
    // Exactly at the limit is fine.
    let mut exact = String::from(r#"{"count":2}"#);
    exact.push_str(&" ".repeat(MAX_BODY - exact.len()));
    let (status, _, body) = harness.call("POST", "/v1/echo", &[], &exact).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(harness.calls(), 1);
}

#[tokio::test]
async fn malformed_bodies_are_400() {
    // (method, uri, body, a part of the message)
    let cases = [
        ("POST", "/v1/echo", r#"{"count":"#, "not valid JSON"),
        ("POST", "/v1/echo", r#"{"count":1}}"#, "not valid JSON"),
        ("POST", "/v1/echo", "[1,2]", "must be a JSON object"),
        ("POST", "/v1/echo", r#""x""#, "must be a JSON object"),
        ("POST", "/v1/echo", "null", "must be a JSON object"),
        ("POST", "/v1/echo", r#"{"count":"x"}"#, "invalid request"),
        ("POST", "/v1/echo", r#"{"flag":"yes"}"#, "invalid request"),
        ("POST", "/v1/echo", r#"{"tags":"a"}"#, "invalid request"),
        ("POST", "/v1/echo", r#"{"color":"COLOR_GREEN"}"#, "COLOR_GREEN"),
        ("POST", "/v1/echo", r#"{"bogus":1}"#, "bogus"),
        ("POST", "/v1/echo", r#"{"note":{"bogus":1}}"#, "bogus"),
        ("POST", "/v1/echo/x:note", r#"{"bogus":1}"#, "bogus"),
        ("PUT", "/v1/echo/x/note", r#"{"bogus":1}"#, "bogus"),
        ("PUT", "/v1/echo/x/note", r#"{"text":"#, "not valid JSON"),
        ("PUT", "/v1/echo/x/note", r#""x""#, "invalid request"),
    ];
    let harness = Harness::new(MAX_BODY);
    for (method, uri, body, part) in cases {
        let (status, headers, json) = harness.call(method, uri, &[], body).await;
        let what = format!("{method} {uri} {body}");
        assert_error(&what, status, &headers, &json, 400, 3);
        assert!(json["message"].as_str().unwrap().contains(part), "{what}: {json}");
        assert_eq!(json["details"][0]["@type"], "type.googleapis.com/google.rpc.ErrorInfo", "{what}");
        assert_eq!(json["details"][0]["reason"], "INVALID_REQUEST", "{what}");
    }
    assert_eq!(harness.calls(), 0);
}

// ---- robustness ----

/// A tiny deterministic generator (Knuth's MMIX LCG), so the test needs no crate.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> usize {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        usize::try_from(self.0 >> 33).unwrap()
    }

    /// True once in `n` draws.
    fn one_in(&mut self, n: usize) -> bool {
        self.next().is_multiple_of(n)
    }

    fn pick<'a, T: ?Sized>(&mut self, items: &[&'a T]) -> &'a T {
        items[self.next() % items.len()]
    }
}

/// Characters and escapes for path segments and query values: reserved characters,
/// escapes (some malformed, some not UTF-8) and non-ASCII, written raw (escaped before
/// sending, as `http` demands) and escaped.
const ATOMS: [&str; 24] = [
    "a",
    "b1",
    "0",
    "-1",
    "1.5",
    "true",
    "%",
    "%2",
    "%2F",
    "%2f",
    "%25",
    "%zz",
    "%FF",
    "%C3",
    "%C3%A9",
    "%E6%97%A5",
    "+",
    "=",
    "&",
    "/",
    ":",
    "é",
    "日",
    "~",
];
/// Query parameter names: fields of every kind, both spellings, and wrong ones.
const KEYS: [&str; 26] = [
    "count",
    "big",
    "flag",
    "tags",
    "color",
    "colors",
    "note",
    "note.text",
    "note.inner.stars",
    "labels",
    "labels.k",
    "at",
    "wait",
    "wrapped",
    "limit",
    "ratio",
    "unsigned_big",
    "unsignedBig",
    "numbers",
    "id",
    "bogus",
    "note%2Etext",
    "",
    "%FF",
    "count.x",
    "t%C3%A9",
];
/// Values the fields accept, so that many generated requests succeed.
const VALUES: [&str; 12] = [
    "1",
    "-7",
    "true",
    "COLOR_RED",
    "2",
    "x",
    "2024-01-02T03:04:05Z",
    "1.5s",
    "",
    "18446744073709551615",
    "NaN",
    "a+b%20c",
];
/// Where generated requests go: (before the segment, after it, the method the template
/// answers, whether it has a variable segment).
const SHAPES: [(&str, &str, &str, bool); 9] = [
    ("/v1/echo/", "", "GET", true),
    ("/v1/echo/", "", "DELETE", true),
    ("/v1/echo/", ":note", "POST", true),
    ("/v1/echo/", "/note", "PUT", true),
    ("/v1/files/", "", "GET", true),
    ("/v1/shelves/", "/books/b", "GET", true),
    ("/v1/lax/", "", "GET", true),
    ("/v1/echo", "", "POST", false),
    ("/v1/lax", "", "POST", false),
];
const METHODS: [&str; 5] = ["GET", "POST", "PUT", "DELETE", "PATCH"];
const BODIES: [&str; 6] = ["", "{}", r#"{"note":{"text":"t"}}"#, r#"{"count":"#, "[]", r#"{"id":"b","tags":["x"]}"#];
const CONTENT_TYPES: [&str; 4] = ["application/json", "", "", "text/plain"];

/// Atoms that keep a path segment one well-formed segment.
const CLEAN_ATOMS: [&str; 12] = ["a", "b1", "0", "%20", "%C3%A9", "é", "日", "+", "=", ":", "~", "%25"];

/// `1..=max` atoms that keep a path segment whole.
fn clean_atoms(rng: &mut Lcg, max: usize) -> String {
    (0..=rng.next() % max).map(|_| rng.pick(&CLEAN_ATOMS)).collect()
}

/// `1..=max` atoms.
fn atoms(rng: &mut Lcg, max: usize) -> String {
    (0..=rng.next() % max).map(|_| rng.pick(&ATOMS)).collect()
}

/// A method and a URI, mostly one that some template matches.
fn generated_request(rng: &mut Lcg) -> (&'static str, String) {
    let (before, after, natural, variable) = SHAPES[rng.next() % SHAPES.len()];
    let method = if rng.one_in(4) { rng.pick(&METHODS) } else { natural };
    let mut uri = String::from(before);
    if variable {
        // Mostly one well-formed segment; sometimes anything, `/`, `%zz` and `%FF` included.
        let segment = if rng.one_in(4) { atoms(rng, 3) } else { clean_atoms(rng, 3) };
        uri.push_str(&segment);
    }
    uri.push_str(after);
    if !rng.one_in(4) {
        let pairs: Vec<String> = (0..rng.next() % 4)
            .map(|_| {
                let key = rng.pick(&KEYS);
                match rng.next() % 5 {
                    0 => key.to_owned(),
                    1 => format!("{key}={}", atoms(rng, 3)),
                    _ => format!("{key}={}", rng.pick(&VALUES)),
                }
            })
            .collect();
        uri.push('?');
        uri.push_str(&pairs.join(if rng.one_in(8) { "&&" } else { "&" }));
    }
    // Raw non-ASCII is not a valid URI for `http`; escape it as a client would, and
    // leave everything else, malformed escapes included, as generated.
    let uri = uri
        .chars()
        .map(|c| {
            let mut buf = [0; 4];
            let text = c.encode_utf8(&mut buf);
            if c.is_ascii() {
                text.to_owned()
            } else {
                percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
            }
        })
        .collect();
    (method, uri)
}

#[tokio::test]
async fn generated_requests_never_panic_and_always_answer_json() {
    let harness = Harness::new(MAX_BODY);
    let mut rng = Lcg(0x1a2b_3c4d);
    let (mut unparsable, mut successes, mut client_errors) = (0, 0, 0);
    for _ in 0..3000 {
        let (method, uri) = generated_request(&mut rng);
        let body = rng.pick(&BODIES);
        let content_type = rng.pick(&CONTENT_TYPES);
        let headers: &[(&str, &str)] = if content_type.is_empty() { &[] } else { &[("content-type", content_type)] };
        let Some((status, headers, bytes)) = harness.try_raw(method, &uri, headers, body.to_owned()).await else {
            unparsable += 1;
            continue;
        };
        let what = format!("{method} {uri} {body:?} ({content_type})");
        assert!(status.is_success() || status.is_client_error(), "{what}: {status} {bytes:?}");
        if status == StatusCode::NO_CONTENT {
            assert!(bytes.is_empty(), "{what}");
            successes += 1;
            continue;
        }
        assert_eq!(headers[header::CONTENT_TYPE], "application/json", "{what}");
        let json: Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{what}: {e}: {bytes:?}"));
        if status.is_success() {
            // EchoVerb answers only `note`, which is `null` when the request had none.
            assert!(json.is_object() || (uri.contains(":note") && json.is_null()), "{what}: {json}");
            successes += 1;
        } else {
            assert!(json["code"].as_i64().is_some_and(|c| c != 0), "{what}: {json}");
            assert!(json["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: {json}");
            client_errors += 1;
        }
    }
    // The generator must reach the handler and the error paths alike, or this proves little.
    assert_eq!(unparsable, 0, "every generated URI is valid");
    assert!(successes > 300 && client_errors > 300, "{successes} successes, {client_errors} client errors");
    assert_eq!(harness.calls(), successes, "every success, and only those, reached the handler");
}
