//! The protocol layer end to end: health, reflection, CORS, limits, content types, query
//! rules, deadlines, error details and pagination, on a real server.

use base64::Engine;
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use iamd::pb::iamd::accounts::v1 as accounts;
use prost::Message;
use serde_json::{Value, json};
use tonic::Code;
use tonic_types::StatusExt;

use crate::support::{TOKEN, TestServer};

fn request(method: Method, server: &TestServer, path: &str) -> http::request::Builder {
    Request::builder().method(method).uri(server.url(path)).header("authorization", format!("Bearer {TOKEN}"))
}

async fn organization_count(server: &TestServer) -> usize {
    let reply = server.json(Method::GET, "/organizations?limit=100", None).await;
    reply.body["results"].as_array().unwrap().len()
}

#[tokio::test]
async fn liveness_readiness_and_grpc_health() {
    let server = TestServer::start().await;
    for path in ["/healthz", "/readyz"] {
        let reply = server.json(Method::GET, path, None).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.body, json!({"status": "SERVING"}));
    }
    let mut health = tonic_health::pb::health_client::HealthClient::new(server.channel().await);
    for service in ["", "iamd.admin.v1.AdminService", "iamd.accounts.v1.OrganizationService"] {
        let answer =
            health.check(tonic_health::pb::HealthCheckRequest { service: service.into() }).await.unwrap().into_inner();
        assert_eq!(answer.status, tonic_health::pb::health_check_response::ServingStatus::Serving as i32, "{service}");
    }
}

#[tokio::test]
async fn reflection_lists_every_service_in_v1_and_v1alpha() {
    use tokio_stream::StreamExt;
    let server = TestServer::start().await;
    let expected = ["grpc.health.v1.Health", "iamd.accounts.v1.OrganizationService", "iamd.admin.v1.AdminService"];

    let mut v1 =
        tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient::new(server.channel().await);
    let request = tonic_reflection::pb::v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(tonic_reflection::pb::v1::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    let mut answers = v1.server_reflection_info(tokio_stream::once(request)).await.unwrap().into_inner();
    let answer = answers.next().await.unwrap().unwrap();
    let Some(tonic_reflection::pb::v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        answer.message_response
    else {
        panic!("not a list")
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for service in expected {
        assert!(names.contains(&service.to_owned()), "v1 lists {names:?}");
    }

    let mut alpha =
        tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient::new(server.channel().await);
    let request = tonic_reflection::pb::v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest::FileContainingSymbol(
                "iamd.admin.v1.AdminService".into(),
            ),
        ),
    };
    let mut answers = alpha.server_reflection_info(tokio_stream::once(request)).await.unwrap().into_inner();
    let answer = answers.next().await.unwrap().unwrap();
    assert!(matches!(
        answer.message_response,
        Some(tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse::FileDescriptorResponse(_))
    ));
}

#[tokio::test]
async fn cors_preflight_is_answered_on_every_path() {
    let server = TestServer::start().await;
    for path in ["/iamd.accounts.v1.OrganizationService/CreateOrganization", "/organizations", "/no/such/path"] {
        let preflight = Request::builder()
            .method(Method::OPTIONS)
            .uri(server.url(path))
            .header("origin", "http://app.example")
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type,x-grpc-web,authorization")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let (status, headers, _) = server.raw(preflight).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(headers["access-control-allow-origin"], "http://app.example");
        let allowed = headers["access-control-allow-headers"].to_str().unwrap();
        assert!(allowed.contains("x-grpc-web") && allowed.contains("authorization"), "{allowed}");
    }
    // Actual requests expose the gRPC status headers to browsers.
    let (_, headers, _) = server
        .raw(
            request(Method::GET, &server, "/organizations")
                .header("origin", "http://app.example")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await;
    let exposed = headers["access-control-expose-headers"].to_str().unwrap();
    for header in ["grpc-status", "grpc-message", "grpc-status-details-bin", "etag", "x-iamd-consistency-token"] {
        assert!(exposed.contains(header), "{exposed}");
    }
}

#[tokio::test]
async fn cors_can_be_limited_to_listed_origins() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir, |c| iamd::config::Config {
        cors_allowed_origins: vec!["http://good.example".into()],
        ..c
    })
    .await;
    for (origin, allowed) in [("http://good.example", true), ("http://evil.example", false)] {
        let preflight = Request::builder()
            .method(Method::OPTIONS)
            .uri(server.url("/organizations"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let (_, headers, _) = server.raw(preflight).await;
        assert_eq!(headers.get("access-control-allow-origin").map(|v| v.to_str().unwrap()), allowed.then_some(origin));
    }
}

#[tokio::test]
async fn json_over_http1_never_reaches_the_grpc_web_layer() {
    // tonic-web answers 400 to any HTTP/1.1 request that is not gRPC-web; JSON must not go there.
    let server = TestServer::start().await;
    let (status, headers, body) = server
        .raw(
            request(Method::GET, &server, "/admin/v1/policies/domain")
                .version(http::Version::HTTP_11)
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_eq!(headers["content-type"], "application/json");
}

#[tokio::test]
async fn one_body_limit_for_every_protocol_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir, |c| {
        let mut c = c;
        c.limits.max_body_bytes = 1024;
        c
    })
    .await;
    let name = "n".repeat(2048);

    let reply = server.json(Method::POST, "/organizations", Some(json!({"name": name}))).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(reply.body["code"], Code::ResourceExhausted as i32);

    let request = accounts::CreateOrganizationRequest { name: name.clone(), domain: String::new() };
    let error = server
        .grpc::<_, accounts::CreateOrganizationResponse>(
            "/iamd.accounts.v1.OrganizationService/CreateOrganization",
            request.clone(),
        )
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::ResourceExhausted);
    let error = server
        .grpc_web::<_, accounts::CreateOrganizationResponse>(
            "/iamd.accounts.v1.OrganizationService/CreateOrganization",
            &request,
            false,
        )
        .await
        .unwrap_err();
    assert_eq!(error.0, Code::ResourceExhausted);

    assert_eq!(organization_count(&server).await, 0);
}

#[tokio::test]
async fn bad_input_is_a_clear_4xx_and_changes_nothing() {
    let server = TestServer::start().await;
    let post = |content_type: &'static str, body: &'static str| {
        request(Method::POST, &server, "/organizations")
            .header("content-type", content_type)
            .body(Full::new(Bytes::from(body)))
            .unwrap()
    };
    let cases = [
        (
            post("text/plain", r#"{"name":"a"}"#),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "content type `text/plain` is not supported",
        ),
        (post("application/json", r#"{"name":"#), StatusCode::BAD_REQUEST, "not valid JSON"),
        (post("application/json", r#"["a"]"#), StatusCode::BAD_REQUEST, "must be a JSON object"),
        (post("application/json", r#"{"name":7}"#), StatusCode::BAD_REQUEST, "invalid request"),
        (post("application/json", r#"{"name":"a","bogus":1}"#), StatusCode::BAD_REQUEST, "bogus"),
    ];
    for (request, status, text) in cases {
        let (got, headers, body) = server.raw(request).await;
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(got, status, "{body}");
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(body["code"], Code::InvalidArgument as i32, "{body}");
        assert!(body["message"].as_str().unwrap().contains(text), "{body}");
    }
    assert_eq!(organization_count(&server).await, 0);

    // `curl -d` sends the form content type; it is read as JSON.
    let (status, _, body) = server.raw(post("application/x-www-form-urlencoded", r#"{"name":"curl"}"#)).await;
    assert_eq!(status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&body));
}

#[tokio::test]
async fn unknown_fields_and_parameters_follow_each_surface() {
    let server = TestServer::start().await;
    // Admin (ZITADEL): ignored.
    let reply = server.json(Method::GET, "/admin/v1/policies/domain?bogus=1", None).await;
    assert_eq!(reply.status, StatusCode::OK);
    let reply = server
        .json(Method::PUT, "/admin/v1/policies/domain", Some(json!({"bogus": 1, "validateOrgDomains": true})))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    // Accounts (Bird): 400 naming the field.
    let reply = server.json(Method::GET, "/organizations?bogus=1", None).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.body["message"], "unknown query parameter `bogus`");
    assert_eq!(reply.body["details"][1]["fieldViolations"][0]["field"], "bogus");
    // Both spellings of a field name are accepted.
    let reply = server.json(Method::GET, "/organizations?limit=1&page_token=", None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
}

#[tokio::test]
async fn errors_carry_a_stable_reason_on_every_protocol() {
    let server = TestServer::start().await;
    let missing = "00000000-0000-4000-8000-000000000000";
    let reply = server.json(Method::GET, &format!("/organizations/{missing}"), None).await;
    assert_eq!(reply.body["details"][0]["@type"], "type.googleapis.com/google.rpc.ErrorInfo");
    assert_eq!(reply.body["details"][0]["reason"], "ORGANIZATION_NOT_FOUND");
    assert_eq!(reply.body["details"][0]["domain"], "iamd");

    let status = server
        .grpc::<_, accounts::GetOrganizationResponse>(
            "/iamd.accounts.v1.OrganizationService/GetOrganization",
            accounts::GetOrganizationRequest { organization_id: missing.into() },
        )
        .await
        .unwrap_err();
    assert_eq!(status.get_details_error_info().unwrap().reason, "ORGANIZATION_NOT_FOUND");

    let reply = server.json(Method::GET, "/organizations?limit=500", None).await;
    assert_eq!(reply.body["details"][1]["fieldViolations"][0]["field"], "limit");
}

#[tokio::test]
async fn grpc_timeout_is_read_on_every_protocol() {
    let server = TestServer::start().await;
    let (status, _, body) = server
        .raw(
            request(Method::GET, &server, "/admin/v1/policies/domain")
                .header("grpc-timeout", "soon")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{}", String::from_utf8_lossy(&body));
    let (status, _, _) = server
        .raw(
            request(Method::GET, &server, "/admin/v1/policies/domain")
                .header("grpc-timeout", "5S")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let mut client = tonic::client::Grpc::new(server.channel().await);
    client.ready().await.unwrap();
    let mut call = tonic::Request::new(iamd::pb::iamd::admin::v1::GetDomainPolicyRequest {});
    call.metadata_mut().insert("grpc-timeout", "soon".parse().unwrap());
    let error = client
        .unary(
            call,
            http::uri::PathAndQuery::from_static("/iamd.admin.v1.AdminService/GetDomainPolicy"),
            tonic_prost::ProstCodec::<_, iamd::pb::iamd::admin::v1::GetDomainPolicyResponse>::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn pages_follow_creation_order_with_keyset_tokens() {
    let server = TestServer::start().await;
    let mut created = Vec::new();
    for i in 0..23 {
        created.push(server.create_org(&format!("org-{i:02}")).await);
    }
    let walk = |reverse: bool| {
        let server = &server;
        async move {
            let mut seen = Vec::new();
            let mut token = String::new();
            loop {
                let reply = server
                    .json(Method::GET, &format!("/organizations?limit=10&reverse={reverse}&pageToken={token}"), None)
                    .await;
                assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
                seen.extend(
                    reply.body["results"].as_array().unwrap().iter().map(|o| o["id"].as_str().unwrap().to_owned()),
                );
                match reply.body.get("nextPageToken") {
                    Some(next) => token = next.as_str().unwrap().to_owned(),
                    None => break,
                }
            }
            seen
        }
    };
    assert_eq!(walk(false).await, created);
    let mut reversed = created.clone();
    reversed.reverse();
    assert_eq!(walk(true).await, reversed);

    let first = server.json(Method::GET, "/organizations?limit=10", None).await;
    let token = first.body["nextPageToken"].as_str().unwrap().to_owned();
    // A token of the other direction is refused.
    let reply =
        server.json(Method::GET, &format!("/organizations?limit=10&reverse=true&pageToken={token}"), None).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    // Deleting the row a token points at does not invalidate it.
    let deleted = server.json(Method::DELETE, &format!("/organizations/{}", created[9]), None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let reply = server.json(Method::GET, &format!("/organizations?limit=10&pageToken={token}"), None).await;
    assert_eq!(reply.body["results"][0]["id"], created[10].as_str());
}

/// The canonical proto3 JSON form of a timestamp, written out apart from the server's: UTC,
/// `Z`, and the fewest of 0, 3, 6 or 9 fractional digits that hold the nanoseconds.
fn canonical(ts: &iamd::wkt::Timestamp) -> String {
    let whole = chrono::DateTime::from_timestamp(ts.seconds, 0).unwrap().format("%Y-%m-%dT%H:%M:%S");
    let nanos = ts.nanos;
    let fraction = match nanos {
        0 => String::new(),
        n if n % 1_000_000 == 0 => format!(".{:03}", n / 1_000_000),
        n if n % 1_000 == 0 => format!(".{:06}", n / 1_000),
        n => format!(".{n:09}"),
    };
    format!("{whole}{fraction}Z")
}

#[tokio::test]
async fn json_prints_the_timestamps_grpc_carries() {
    let server = TestServer::start().await;
    let id = server.create_org("clock").await;
    let path = "/iamd.accounts.v1.OrganizationService/GetOrganization";
    let get = accounts::GetOrganizationRequest { organization_id: id.clone() };
    let grpc =
        server.grpc::<_, accounts::GetOrganizationResponse>(path, get.clone()).await.unwrap().organization.unwrap();
    let web = server.grpc_web::<_, accounts::GetOrganizationResponse>(path, &get, false).await.unwrap();
    assert_eq!(web.organization.as_ref(), Some(&grpc), "gRPC-web carries what gRPC does");
    let json = server.json(Method::GET, &format!("/organizations/{id}"), None).await;
    assert_eq!(json.status, StatusCode::OK, "{}", json.body);
    for (field, value) in [("createdAt", grpc.created_at), ("updatedAt", grpc.updated_at)] {
        let value = value.unwrap();
        // The store keeps microseconds, so that is what every protocol carries.
        assert_eq!(value.nanos % 1_000, 0, "{field}: {value:?}");
        assert_eq!(json.body[field], canonical(&value), "{field}: {}", json.body);
    }
}

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const CREATE: &str = "/iamd.accounts.v1.OrganizationService/CreateOrganization";

/// One message framed as gRPC frames it: flag 0, the big-endian length, the bytes.
fn framed(name: &str) -> Vec<u8> {
    let message = accounts::CreateOrganizationRequest { name: name.into(), domain: String::new() }.encode_to_vec();
    crate::support::frame(&message).to_vec()
}

#[tokio::test]
async fn malformed_bodies_are_invalid_argument_on_every_protocol() {
    let server = TestServer::start().await;
    let whole = framed("framed");
    let with_flag = |flag: u8| {
        let mut frame = whole.clone();
        frame[0] = flag;
        frame
    };
    let cases = [
        ("a frame header cut short", whole[..3].to_vec()),
        ("a length past the end of the body", whole[..whole.len() - 1].to_vec()),
        ("no message", Vec::new()),
        ("two messages to a unary method", [whole.clone(), whole.clone()].concat()),
        ("a compressed message without grpc-encoding", with_flag(1)),
        ("an unknown frame flag", with_flag(2)),
    ];
    for (what, body) in cases {
        let status = server.grpc_body(CREATE, Bytes::from(body.clone())).await;
        assert_eq!(status.code(), Code::InvalidArgument, "gRPC, {what}: {status:?}");
        for text in [false, true] {
            let sent = if text { Bytes::from(B64.encode(&body)) } else { Bytes::from(body.clone()) };
            let (code, message) =
                server.grpc_web_body::<accounts::CreateOrganizationResponse>(CREATE, sent, text).await.unwrap_err();
            assert_eq!(code, Code::InvalidArgument, "gRPC-web (text: {text}), {what}: {message}");
        }
    }
    // JSON has no framing of its own; a body that is not JSON is the client's fault just the same.
    for body in [&b"{\"name\":"[..], b"\xff\xfe", &whole] {
        let (status, _, answer) = server
            .raw(
                request(Method::POST, &server, "/organizations")
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::copy_from_slice(body)))
                    .unwrap(),
            )
            .await;
        let answer: Value = serde_json::from_slice(&answer).unwrap();
        assert_eq!((status, &answer["code"]), (StatusCode::BAD_REQUEST, &json!(3)), "{body:?}: {answer}");
    }
    assert_eq!(organization_count(&server).await, 0, "nothing malformed was stored");
}

#[tokio::test]
async fn grpc_web_text_skips_whitespace_and_refuses_what_is_not_base64() {
    let server = TestServer::start().await;
    // Long enough that wrapping at 76 characters splits it.
    let name = |i: usize| format!("{i}-{}", "n".repeat(80));
    let encoded = |i: usize| B64.encode(framed(&name(i)));
    let wrapped = |text: String, width: usize, eol: &str| {
        text.as_bytes().chunks(width).map(|l| format!("{}{eol}", String::from_utf8_lossy(l))).collect::<String>()
    };
    let accepted = [
        format!("{}\n", encoded(0)),
        format!("{}\r\n", encoded(1)),
        format!(" \t{}\n\n", encoded(2)),
        wrapped(encoded(3), 76, "\r\n"),
        wrapped(encoded(4), 5, "\n"),
        // Two chunks, each padded: the first frame byte, then the rest.
        format!("{}\n{}", B64.encode(&framed(&name(5))[..1]), B64.encode(&framed(&name(5))[1..])),
    ];
    for (i, body) in accepted.into_iter().enumerate() {
        let answer = server
            .grpc_web_body::<accounts::CreateOrganizationResponse>(CREATE, Bytes::from(body.clone()), true)
            .await
            .unwrap_or_else(|e| panic!("{body:?}: {e:?}"));
        assert_eq!(answer.organization.unwrap().name, name(i), "{body:?}");
    }
    let created = organization_count(&server).await;

    let valid = encoded(9);
    for body in [
        format!("{valid}!"),
        format!("{}*{}", &valid[..8], &valid[8..]),
        format!("{valid}A"),
        format!("AA=A{valid}"),
        valid.replace('A', "\u{e9}"),
    ] {
        let (status, headers, answer) = server.grpc_web_send(CREATE, Bytes::from(body.clone()), true, &[]).await;
        // As tonic-web answers an error before any message: HTTP 200, the status in the headers.
        assert_eq!(status, StatusCode::OK, "{body:?}");
        assert_eq!(headers["grpc-status"], "3", "{body:?}: {headers:?}");
        assert_eq!(headers["content-type"], "application/grpc-web-text+proto");
        let message = percent_encoding::percent_decode(headers["grpc-message"].as_bytes()).decode_utf8_lossy();
        assert!(message.starts_with("the gRPC-web-text request body is not base64"), "{message}");
        assert!(answer.is_empty(), "{answer:?}");
    }
    assert_eq!(organization_count(&server).await, created, "nothing refused was stored");
}

/// The access log names the gRPC method a call reached on every protocol, JSON included,
/// and labels nothing by its REST path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_log_names_the_grpc_method_on_every_protocol() {
    use std::io::BufRead;

    let dir = tempfile::tempdir().unwrap();
    let mut process = crate::durability::spawn_logging(
        dir.path(),
        &[("IAMD_LOG", "warn,iamd::access=info")],
        std::process::Stdio::piped(),
    );
    let stderr = process.child.stderr.take().unwrap();
    let lines =
        std::thread::spawn(move || std::io::BufReader::new(stderr).lines().map_while(Result::ok).collect::<Vec<_>>());
    let server = crate::durability::client(&process.addr);
    let org = server.create_org("logged").await;
    let get = accounts::GetOrganizationRequest { organization_id: org.clone() };
    let path = "/iamd.accounts.v1.OrganizationService/GetOrganization";
    server.grpc::<_, accounts::GetOrganizationResponse>(path, get.clone()).await.unwrap();
    server.grpc_web::<_, accounts::GetOrganizationResponse>(path, &get, false).await.unwrap();
    assert_eq!(server.json(Method::GET, &format!("/organizations/{org}"), None).await.status, StatusCode::OK);
    assert_eq!(server.json(Method::GET, "/no/such/path", None).await.status, StatusCode::NOT_FOUND);
    let refused = server.json(Method::POST, "/organizations", Some(json!({"bogus": 1}))).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    crate::durability::stop(process);
    let lines = lines.join().unwrap();
    let of = |protocol: &str, what: &str| {
        lines.iter().filter(|l| l.contains(&format!("protocol={protocol} ")) && l.contains(what)).count()
    };
    let method = "method=iamd.accounts.v1.OrganizationService/GetOrganization";
    assert_eq!((of("grpc", method), of("grpc-web", method), of("json", method)), (1, 1, 1), "{lines:#?}");
    // The route names the method, so a request refused before its gRPC call is labelled too.
    let create = "method=iamd.accounts.v1.OrganizationService/CreateOrganization";
    assert_eq!(of("json", &format!("{create} http_method=POST path=/organizations http_status=201")), 1, "{lines:#?}");
    assert_eq!(of("json", &format!("{create} http_method=POST path=/organizations http_status=400")), 1, "{lines:#?}");
    // A JSON request that reached no method is logged without one.
    let unmatched: Vec<&String> = lines.iter().filter(|l| l.contains("path=/no/such/path")).collect();
    assert_eq!(unmatched.len(), 1, "{lines:#?}");
    assert!(unmatched[0].contains("method= ") || unmatched[0].contains("method=\"\""), "{}", unmatched[0]);
}
