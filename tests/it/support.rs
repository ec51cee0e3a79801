//! The test harness: a real iamd on 127.0.0.1:0 with its own data directory, and real
//! clients for each protocol: tonic over h2c, gRPC-web framing over HTTP/1.1, and HTTP/JSON.

use std::marker::PhantomData;
use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use iamd::config::Config;
use iamd::server::RunningServer;
use prost::Message;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tempfile::TempDir;
use tonic::Code;
use tonic::codegen::http::uri::PathAndQuery;
use tonic_types::StatusExt;

pub const TOKEN: &str = "test-bootstrap-token";

/// The page `/metrics` answers, which needs no credential.
pub async fn scrape(server: &TestServer) -> String {
    let request = Request::get(server.url("/metrics")).body(Full::new(Bytes::new())).unwrap();
    let (status, headers, body) = server.raw(request).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    String::from_utf8(body.to_vec()).unwrap()
}

/// The value of one series, 0 when the page does not list it.
pub fn sample(page: &str, series: &str) -> f64 {
    page.lines()
        .find_map(|line| line.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .map_or(0.0, |value| value.parse().unwrap())
}

/// The gRPC code of an answer over HTTP/2: from its headers (a trailers-only answer) or its
/// trailers; `None` when it has neither.
pub async fn grpc_code(response: http::Response<hyper::body::Incoming>) -> Option<Code> {
    if let Some(code) = response.headers().get("grpc-status") {
        return Some(Code::from_bytes(code.as_bytes()));
    }
    let collected = response.into_body().collect().await.ok()?;
    collected.trailers().and_then(|t| t.get("grpc-status")).map(|code| Code::from_bytes(code.as_bytes()))
}

/// The `authorization` a request sends: the bootstrap admin's, unless `extra` names one
/// (an empty value sends none); the other extra headers go as they are.
fn credential<'a>(extra: &'a [(&'a str, String)]) -> (Option<String>, impl Iterator<Item = &'a (&'a str, String)>) {
    let named = extra.iter().find(|(name, _)| name.eq_ignore_ascii_case("authorization"));
    let credential = match named {
        Some((_, value)) if value.is_empty() => None,
        Some((_, value)) => Some(value.clone()),
        None => Some(format!("Bearer {TOKEN}")),
    };
    (credential, extra.iter().filter(|(name, _)| !name.eq_ignore_ascii_case("authorization")))
}

pub type Http = Client<HttpConnector, Full<Bytes>>;

pub struct TestServer {
    pub addr: SocketAddr,
    server: Option<RunningServer>,
    pub dir: TempDir,
    http: Http,
}

/// The protocols every method answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Grpc,
    GrpcWeb,
    GrpcWebText,
    Json,
}

pub const PROTOCOLS: [Protocol; 3] = [Protocol::Grpc, Protocol::GrpcWeb, Protocol::Json];

/// What a call answered, in protocol-neutral terms.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The answer as proto3 JSON (for JSON: the body; for gRPC: the message through pbjson).
    Ok(Value),
    Err {
        code: Code,
        message: String,
        /// The `google.rpc.ErrorInfo` reason of the status details, if any.
        reason: Option<String>,
    },
}

impl Outcome {
    pub fn code(&self) -> Code {
        match self {
            Outcome::Ok(_) => Code::Ok,
            Outcome::Err { code, .. } => *code,
        }
    }
}

pub struct JsonReply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

/// A server's configuration in `dir`, on its embedded defaults, with the test's token.
pub fn config(dir: &std::path::Path) -> Config {
    Config { bootstrap_token: Some(TOKEN.into()), ..Config::for_data_dir(dir) }
}

impl TestServer {
    pub async fn start() -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        TestServer::start_in(dir, |c| c).await
    }

    pub async fn start_in(dir: TempDir, configure: impl FnOnce(Config) -> Config) -> TestServer {
        let config = configure(config(dir.path()));
        let server = iamd::server::start(config).await.unwrap();
        TestServer {
            addr: server.addr,
            server: Some(server),
            dir,
            http: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// A client for a server running elsewhere (another process).
    pub fn attach(addr: SocketAddr) -> TestServer {
        TestServer {
            addr,
            server: None,
            dir: tempfile::tempdir().unwrap(),
            http: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// Like `json`, but a connection failure is `None` instead of a panic.
    pub async fn try_json(&self, method: Method, path: &str, body: Option<Value>) -> Option<JsonReply> {
        let request = Request::builder()
            .method(method)
            .uri(self.url(path))
            .header("authorization", format!("Bearer {TOKEN}"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.map(|b| b.to_string()).unwrap_or_default())))
            .unwrap();
        let response = self.http.request(request).await.ok()?;
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.ok()?.to_bytes();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Some(JsonReply { status: parts.status, headers: parts.headers, body })
    }

    /// Stops the server cleanly and hands back its data directory.
    pub async fn stop(mut self) -> TempDir {
        if let Some(server) = self.server.take() {
            server.stop().await.unwrap();
        }
        self.dir
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn channel(&self) -> tonic::transport::Channel {
        tonic::transport::Endpoint::from_shared(self.url(""))
            .unwrap()
            .timeout(Duration::from_secs(10))
            .connect()
            .await
            .unwrap()
    }

    /// Any HTTP request; the body is sent as is.
    pub async fn raw(&self, request: Request<Full<Bytes>>) -> (StatusCode, HeaderMap, Bytes) {
        let response = self.http.request(request).await.unwrap();
        let (parts, body) = response.into_parts();
        (parts.status, parts.headers, body.collect().await.unwrap().to_bytes())
    }

    /// A JSON request with the bootstrap token; an empty answer reads as `{}`.
    pub async fn json(&self, method: Method, path: &str, body: Option<Value>) -> JsonReply {
        self.json_with(method, path, body, &[]).await
    }

    /// `json` with extra request headers.
    pub async fn json_with(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        extra: &[(&str, String)],
    ) -> JsonReply {
        let mut builder = Request::builder().method(method).uri(self.url(path));
        let (credential, extra) = credential(extra);
        if let Some(credential) = credential {
            builder = builder.header("authorization", credential);
        }
        for (name, value) in extra {
            builder = builder.header(*name, value);
        }
        let bytes = match body {
            Some(body) => {
                builder = builder.header("content-type", "application/json");
                Bytes::from(serde_json::to_vec(&body).unwrap())
            }
            None => Bytes::new(),
        };
        let (status, headers, bytes) = self.raw(builder.body(Full::new(bytes)).unwrap()).await;
        let body = if bytes.is_empty() {
            json!({})
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("answer is not JSON ({e}): {}", String::from_utf8_lossy(&bytes)))
        };
        JsonReply { status, headers, body }
    }

    /// Creates an organization over JSON and returns its id.
    pub async fn create_org(&self, name: &str) -> String {
        let reply = self.json(Method::POST, "/organizations", Some(json!({"name": name}))).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        reply.body["id"].as_str().unwrap().to_owned()
    }

    /// A unary call over native gRPC with tonic's client.
    pub async fn grpc<Req, Resp>(&self, path: &str, request: Req) -> Result<Resp, tonic::Status>
    where
        Req: Message + Send + Sync + 'static,
        Resp: Message + Default + Send + Sync + 'static,
    {
        self.grpc_with(path, request, &[]).await.0
    }

    /// `grpc` with extra request metadata; also answers the response metadata.
    pub async fn grpc_with<Req, Resp>(
        &self,
        path: &str,
        request: Req,
        extra: &[(&str, String)],
    ) -> (Result<Resp, tonic::Status>, HeaderMap)
    where
        Req: Message + Send + Sync + 'static,
        Resp: Message + Default + Send + Sync + 'static,
    {
        let mut client = tonic::client::Grpc::new(self.channel().await);
        client.ready().await.unwrap();
        let mut request = tonic::Request::new(request);
        let (credential, extra) = credential(extra);
        if let Some(credential) = credential {
            request.metadata_mut().insert("authorization", credential.parse().unwrap());
        }
        for (name, value) in extra {
            let key = tonic::metadata::MetadataKey::from_bytes(name.as_bytes()).unwrap();
            request.metadata_mut().insert(key, value.parse().unwrap());
        }
        let path = PathAndQuery::try_from(path).unwrap();
        match client.unary(request, path, tonic_prost::ProstCodec::<Req, Resp>::default()).await {
            Ok(response) => {
                let (metadata, message, _) = response.into_parts();
                (Ok(message), metadata.into_headers())
            }
            Err(status) => {
                let headers = status.metadata().clone().into_headers();
                (Err(status), headers)
            }
        }
    }

    /// A unary call with gRPC-web framing over HTTP/1.1 (binary, or base64 text).
    pub async fn grpc_web<Req, Resp>(&self, path: &str, request: &Req, text: bool) -> Result<Resp, (Code, String)>
    where
        Req: Message,
        Resp: Message + Default,
    {
        self.grpc_web_with(path, request, text, &[]).await.0
    }

    /// `grpc_web` with extra request headers; also answers the response headers.
    pub async fn grpc_web_with<Req, Resp>(
        &self,
        path: &str,
        request: &Req,
        text: bool,
        extra: &[(&str, String)],
    ) -> (Result<Resp, (Code, String)>, HeaderMap)
    where
        Req: Message,
        Resp: Message + Default,
    {
        let (status, headers, body) = self.grpc_web_raw(path, &request.encode_to_vec(), text, extra).await;
        (decode_grpc_web(status, &headers, body, text), headers)
    }

    pub async fn grpc_web_raw(
        &self,
        path: &str,
        message: &[u8],
        text: bool,
        extra: &[(&str, String)],
    ) -> (StatusCode, HeaderMap, Bytes) {
        let frame = frame(message);
        let body = if text { Bytes::from(base64::engine::general_purpose::STANDARD.encode(&frame)) } else { frame };
        self.grpc_web_send(path, body, text, extra).await
    }

    /// A gRPC-web request with the body exactly as given: the framing, and for text the
    /// base64, are the caller's.
    pub async fn grpc_web_send(
        &self,
        path: &str,
        body: Bytes,
        text: bool,
        extra: &[(&str, String)],
    ) -> (StatusCode, HeaderMap, Bytes) {
        let content_type = if text { "application/grpc-web-text" } else { "application/grpc-web+proto" };
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(self.url(path))
            .version(http::Version::HTTP_11)
            .header("content-type", content_type)
            .header("accept", content_type)
            .header("x-grpc-web", "1");
        let (credential, extra) = credential(extra);
        if let Some(credential) = credential {
            request = request.header("authorization", credential);
        }
        for (name, value) in extra {
            request = request.header(*name, value);
        }
        self.raw(request.body(Full::new(body)).unwrap()).await
    }

    /// `grpc_web_send`, answered as `grpc_web` answers.
    pub async fn grpc_web_body<Resp: Message + Default>(
        &self,
        path: &str,
        body: Bytes,
        text: bool,
    ) -> Result<Resp, (Code, String)> {
        let (status, headers, answer) = self.grpc_web_send(path, body, text, &[]).await;
        decode_grpc_web(status, &headers, answer, text)
    }

    /// A native gRPC request (h2c) with the body exactly as given; answers the status.
    pub async fn grpc_body(&self, path: &str, body: Bytes) -> tonic::Status {
        self.grpc_body_with(path, body, &[]).await
    }

    /// `grpc_body` with extra request headers.
    pub async fn grpc_body_with(&self, path: &str, body: Bytes, extra: &[(&str, String)]) -> tonic::Status {
        let client: Http = Client::builder(TokioExecutor::new()).http2_only(true).build_http();
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(self.url(path))
            .header("content-type", "application/grpc")
            .header("te", "trailers");
        let (credential, extra) = credential(extra);
        if let Some(credential) = credential {
            request = request.header("authorization", credential);
        }
        for (name, value) in extra {
            request = request.header(*name, value);
        }
        let (parts, body) = client.request(request.body(Full::new(body)).unwrap()).await.unwrap().into_parts();
        let trailers = body.collect().await.unwrap().trailers().cloned().unwrap_or_default();
        // A trailers-only answer carries the status in the headers; a success, in the trailers.
        tonic::Status::from_header_map(&parts.headers)
            .or_else(|| tonic::Status::from_header_map(&trailers))
            .expect("a gRPC answer has a status")
    }
}

/// The status code of a gRPC-web answer, whatever its message.
pub fn grpc_web_code(status: StatusCode, headers: &HeaderMap, body: Bytes) -> Code {
    match decode_grpc_web_status::<()>(status, headers, body, false) {
        Ok(()) => Code::Ok,
        Err((code, _, _)) => code,
    }
}

fn decode_grpc_web<Resp: Message + Default>(
    status: StatusCode,
    headers: &HeaderMap,
    body: Bytes,
    text: bool,
) -> Result<Resp, (Code, String)> {
    decode_grpc_web_status(status, headers, body, text).map_err(|(code, message, _)| (code, message))
}

/// A gRPC-web answer: the message, or the code, message and `ErrorInfo` reason.
fn decode_grpc_web_status<Resp: Message + Default>(
    status: StatusCode,
    headers: &HeaderMap,
    body: Bytes,
    text: bool,
) -> Result<Resp, (Code, String, Option<String>)> {
    assert_eq!(status, StatusCode::OK, "gRPC-web answers errors in trailers, with HTTP 200");
    let body = if text { decode_text(&body) } else { body };
    let header = |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_owned());
    // A trailers-only answer carries the status in the headers.
    let (message, trailers) = match header("grpc-status") {
        Some(_) => (
            None,
            ["grpc-status", "grpc-message", "grpc-status-details-bin"]
                .into_iter()
                .filter_map(|name| header(name).map(|value| (name.to_owned(), value)))
                .collect(),
        ),
        None => parse_grpc_web(body),
    };
    let code = Code::from_i32(trailers.get("grpc-status").map(|v| v.parse().unwrap()).unwrap_or(2));
    if code != Code::Ok {
        let message = decode_message(trailers.get("grpc-message").map(String::as_str).unwrap_or(""));
        let reason = trailers.get("grpc-status-details-bin").and_then(|details| error_reason(details));
        return Err((code, message, reason));
    }
    Ok(Resp::decode(message.unwrap_or_default()).unwrap())
}

/// The `ErrorInfo` reason in `grpc-status-details-bin`: a base64 `google.rpc.Status`
/// (gRPC leaves out the padding).
fn error_reason(details: &str) -> Option<String> {
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    let status = tonic_types::pb::Status::decode(engine.decode(details).unwrap().as_slice()).unwrap();
    status
        .details
        .iter()
        .find(|any| any.type_url == "type.googleapis.com/google.rpc.ErrorInfo")
        .map(|any| tonic_types::pb::ErrorInfo::decode(any.value.as_slice()).unwrap().reason)
}

impl TestServer {
    /// One call over one protocol; gRPC sends the message of the REST form (`Rest::message`).
    pub async fn call<Req, Resp>(&self, protocol: Protocol, rest: &Rest<Req, Resp>) -> Outcome
    where
        Req: Message + DeserializeOwned + Send + Sync + 'static,
        Resp: Message + Default + Serialize + Send + Sync + 'static,
    {
        self.exchange(protocol, rest).await.0
    }

    /// `call` that also answers the response headers (gRPC: the response metadata).
    pub async fn exchange<Req, Resp>(&self, protocol: Protocol, rest: &Rest<Req, Resp>) -> (Outcome, HeaderMap)
    where
        Req: Message + DeserializeOwned + Send + Sync + 'static,
        Resp: Message + Default + Serialize + Send + Sync + 'static,
    {
        let answered = |result: Result<Resp, (Code, String, Option<String>)>| match result {
            Ok(message) => Outcome::Ok(rest.as_json(serde_json::to_value(&message).unwrap())),
            Err((code, message, reason)) => Outcome::Err { code, message, reason },
        };
        let extra = &rest.headers;
        let path = rest.rpc.path;
        match protocol {
            Protocol::Grpc => {
                let (result, headers) = self.grpc_with::<Req, Resp>(path, rest.message(), extra).await;
                let result = result.map_err(|status| {
                    let reason = status.get_details_error_info().map(|info| info.reason);
                    (status.code(), status.message().to_owned(), reason)
                });
                (answered(result), headers)
            }
            Protocol::GrpcWeb | Protocol::GrpcWebText => {
                let text = protocol == Protocol::GrpcWebText;
                let message = rest.message().encode_to_vec();
                let (status, headers, body) = self.grpc_web_raw(path, &message, text, extra).await;
                (answered(decode_grpc_web_status(status, &headers, body, text)), headers)
            }
            Protocol::Json => {
                let reply = self.json_with(rest.method.clone(), &rest.path(), rest.body.clone(), extra).await;
                let headers = reply.headers.clone();
                if reply.status.is_success() {
                    assert_eq!(reply.status, rest.success, "{} {}", rest.method, rest.path());
                    (Outcome::Ok(reply.body), headers)
                } else {
                    let code = Code::from_i32(reply.body["code"].as_i64().unwrap() as i32);
                    assert_eq!(reply.status, gateway_status(code), "HTTP status of {code:?}: {}", reply.body);
                    assert_eq!(reply.headers["content-type"], "application/json");
                    let details = reply.body["details"].as_array().unwrap_or_else(|| panic!("{}", reply.body));
                    let reason = details
                        .iter()
                        .find(|detail| detail["@type"] == "type.googleapis.com/google.rpc.ErrorInfo")
                        .map(|info| info["reason"].as_str().unwrap().to_owned());
                    let message = reply.body["message"].as_str().unwrap().to_owned();
                    (Outcome::Err { code, message, reason }, headers)
                }
            }
        }
    }
}

/// A gRPC method, typed by its request and response messages.
pub struct Rpc<Req, Resp> {
    pub path: &'static str,
    messages: PhantomData<fn(Req) -> Resp>,
}

impl<Req, Resp> Rpc<Req, Resp> {
    pub const fn new(path: &'static str) -> Self {
        Rpc { path, messages: PhantomData }
    }
}

impl<Req, Resp> Clone for Rpc<Req, Resp> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<Req, Resp> Copy for Rpc<Req, Resp> {}

/// The methods the tests call.
pub mod rpc {
    use iamd::pb::iamd::accounts::v1 as accounts;
    use iamd::pb::iamd::admin::v1 as admin;
    use iamd::pb::iamd::authz::v1 as authz;
    use iamd::pb::iamd::authzen::v1 as authzen;
    use iamd::pb::iamd::history::v1 as history;
    use iamd::pb::iamd::iam::v2 as iam;

    use super::Rpc;

    macro_rules! rpcs {
        ($($name:ident: $req:ty => $resp:ty = $path:literal;)*) => {
            $(pub const $name: Rpc<$req, $resp> = Rpc::new($path);)*
        };
    }

    rpcs! {
        CHECK: authz::CheckRequest => authz::CheckResponse = "/iamd.authz.v1.AuthzService/Check";
        BATCH_CHECK: authz::BatchCheckRequest => authz::BatchCheckResponse
            = "/iamd.authz.v1.AuthzService/BatchCheck";
        EXPLAIN: authz::ExplainRequest => authz::ExplainResponse = "/iamd.authz.v1.AuthzService/Explain";
        SIMULATE: authz::SimulateRequest => authz::SimulateResponse = "/iamd.authz.v1.AuthzService/Simulate";
        EVALUATION: authzen::EvaluationRequest => authzen::EvaluationResponse
            = "/iamd.authzen.v1.AccessService/Evaluation";
        EVALUATIONS: authzen::EvaluationsRequest => authzen::EvaluationsResponse
            = "/iamd.authzen.v1.AccessService/Evaluations";
        SUBJECT_SEARCH: authzen::SubjectSearchRequest => authzen::SubjectSearchResponse
            = "/iamd.authzen.v1.AccessService/SubjectSearch";
        RESOURCE_SEARCH: authzen::ResourceSearchRequest => authzen::ResourceSearchResponse
            = "/iamd.authzen.v1.AccessService/ResourceSearch";
        ACTION_SEARCH: authzen::ActionSearchRequest => authzen::ActionSearchResponse
            = "/iamd.authzen.v1.AccessService/ActionSearch";
        GET_AUTHZEN_CONFIGURATION: authzen::GetConfigurationRequest => authzen::GetConfigurationResponse
            = "/iamd.authzen.v1.MetadataService/GetConfiguration";
        GET_ORG_IAM_POLICY: admin::GetOrgIamPolicyRequest => admin::GetOrgIamPolicyResponse
            = "/iamd.admin.v1.AdminService/GetOrgIAMPolicy";
        UPDATE_ORG_IAM_POLICY: admin::UpdateOrgIamPolicyRequest => admin::UpdateOrgIamPolicyResponse
            = "/iamd.admin.v1.AdminService/UpdateOrgIAMPolicy";
        GET_DOMAIN_POLICY: admin::GetDomainPolicyRequest => admin::GetDomainPolicyResponse
            = "/iamd.admin.v1.AdminService/GetDomainPolicy";
        UPDATE_DOMAIN_POLICY: admin::UpdateDomainPolicyRequest => admin::UpdateDomainPolicyResponse
            = "/iamd.admin.v1.AdminService/UpdateDomainPolicy";
        GET_CUSTOM_ORG_IAM_POLICY: admin::GetCustomOrgIamPolicyRequest => admin::GetCustomOrgIamPolicyResponse
            = "/iamd.admin.v1.AdminService/GetCustomOrgIAMPolicy";
        ADD_CUSTOM_ORG_IAM_POLICY: admin::AddCustomOrgIamPolicyRequest => admin::AddCustomOrgIamPolicyResponse
            = "/iamd.admin.v1.AdminService/AddCustomOrgIAMPolicy";
        UPDATE_CUSTOM_ORG_IAM_POLICY: admin::UpdateCustomOrgIamPolicyRequest => admin::UpdateCustomOrgIamPolicyResponse
            = "/iamd.admin.v1.AdminService/UpdateCustomOrgIAMPolicy";
        RESET_CUSTOM_ORG_IAM_POLICY: admin::ResetCustomOrgIamPolicyToDefaultRequest
            => admin::ResetCustomOrgIamPolicyToDefaultResponse
            = "/iamd.admin.v1.AdminService/ResetCustomOrgIAMPolicyToDefault";
        GET_CUSTOM_DOMAIN_POLICY: admin::GetCustomDomainPolicyRequest => admin::GetCustomDomainPolicyResponse
            = "/iamd.admin.v1.AdminService/GetCustomDomainPolicy";
        ADD_CUSTOM_DOMAIN_POLICY: admin::AddCustomDomainPolicyRequest => admin::AddCustomDomainPolicyResponse
            = "/iamd.admin.v1.AdminService/AddCustomDomainPolicy";
        UPDATE_CUSTOM_DOMAIN_POLICY: admin::UpdateCustomDomainPolicyRequest
            => admin::UpdateCustomDomainPolicyResponse
            = "/iamd.admin.v1.AdminService/UpdateCustomDomainPolicy";
        RESET_CUSTOM_DOMAIN_POLICY: admin::ResetCustomDomainPolicyToDefaultRequest
            => admin::ResetCustomDomainPolicyToDefaultResponse
            = "/iamd.admin.v1.AdminService/ResetCustomDomainPolicyToDefault";
        CREATE_ORGANIZATION: accounts::CreateOrganizationRequest => accounts::CreateOrganizationResponse
            = "/iamd.accounts.v1.OrganizationService/CreateOrganization";
        LIST_ORGANIZATIONS: accounts::ListOrganizationsRequest => accounts::ListOrganizationsResponse
            = "/iamd.accounts.v1.OrganizationService/ListOrganizations";
        GET_ORGANIZATION: accounts::GetOrganizationRequest => accounts::GetOrganizationResponse
            = "/iamd.accounts.v1.OrganizationService/GetOrganization";
        UPDATE_ORGANIZATION: accounts::UpdateOrganizationRequest => accounts::UpdateOrganizationResponse
            = "/iamd.accounts.v1.OrganizationService/UpdateOrganization";
        DELETE_ORGANIZATION: accounts::DeleteOrganizationRequest => accounts::DeleteOrganizationResponse
            = "/iamd.accounts.v1.OrganizationService/DeleteOrganization";
        LIST_ORG_POLICIES: accounts::ListPoliciesRequest => accounts::ListPoliciesResponse
            = "/iamd.accounts.v1.PolicyService/ListPolicies";
        CREATE_ORG_POLICY: accounts::CreatePolicyRequest => accounts::CreatePolicyResponse
            = "/iamd.accounts.v1.PolicyService/CreatePolicy";
        GET_ORG_POLICY: accounts::GetPolicyRequest => accounts::GetPolicyResponse
            = "/iamd.accounts.v1.PolicyService/GetPolicy";
        UPDATE_ORG_POLICY: accounts::UpdatePolicyRequest => accounts::UpdatePolicyResponse
            = "/iamd.accounts.v1.PolicyService/UpdatePolicy";
        DELETE_ORG_POLICY: accounts::DeletePolicyRequest => accounts::DeletePolicyResponse
            = "/iamd.accounts.v1.PolicyService/DeletePolicy";
        LIST_ORG_ROLES: accounts::ListRolesRequest => accounts::ListRolesResponse
            = "/iamd.accounts.v1.RoleService/ListRoles";
        CREATE_ORG_ROLE: accounts::CreateRoleRequest => accounts::CreateRoleResponse
            = "/iamd.accounts.v1.RoleService/CreateRole";
        GET_ORG_ROLE: accounts::GetRoleRequest => accounts::GetRoleResponse
            = "/iamd.accounts.v1.RoleService/GetRole";
        UPDATE_ORG_ROLE: accounts::UpdateRoleRequest => accounts::UpdateRoleResponse
            = "/iamd.accounts.v1.RoleService/UpdateRole";
        DELETE_ORG_ROLE: accounts::DeleteRoleRequest => accounts::DeleteRoleResponse
            = "/iamd.accounts.v1.RoleService/DeleteRole";
        LIST_ASSIGNMENTS: accounts::ListAssignmentsRequest => accounts::ListAssignmentsResponse
            = "/iamd.accounts.v1.AssignmentService/ListAssignments";
        CREATE_ASSIGNMENT: accounts::CreateAssignmentRequest => accounts::CreateAssignmentResponse
            = "/iamd.accounts.v1.AssignmentService/CreateAssignment";
        GET_ASSIGNMENT: accounts::GetAssignmentRequest => accounts::GetAssignmentResponse
            = "/iamd.accounts.v1.AssignmentService/GetAssignment";
        DELETE_ASSIGNMENT: accounts::DeleteAssignmentRequest => accounts::DeleteAssignmentResponse
            = "/iamd.accounts.v1.AssignmentService/DeleteAssignment";
        LIST_EVENTS: history::ListEventsRequest => history::ListEventsResponse
            = "/iamd.history.v1.HistoryService/ListEvents";
        CREATE_POLICY: iam::CreatePolicyRequest => iam::CreatePolicyResponse
            = "/iamd.iam.v2.PolicyService/CreatePolicy";
        LIST_POLICIES: iam::ListPoliciesRequest => iam::ListPoliciesResponse
            = "/iamd.iam.v2.PolicyService/ListPolicies";
        GET_POLICY: iam::GetPolicyRequest => iam::GetPolicyResponse = "/iamd.iam.v2.PolicyService/GetPolicy";
        DELETE_POLICY: iam::DeletePolicyRequest => iam::DeletePolicyResponse
            = "/iamd.iam.v2.PolicyService/DeletePolicy";
        UPDATE_POLICY: iam::UpdatePolicyRequest => iam::UpdatePolicyResponse
            = "/iamd.iam.v2.PolicyService/UpdatePolicy";
        GET_POLICY_VERSION: iam::GetPolicyVersionRequest => iam::GetPolicyVersionResponse
            = "/iamd.iam.v2.PolicyService/GetPolicyVersion";
        LIST_POLICY_MEMBERS: iam::ListPolicyMembersRequest => iam::ListPolicyMembersResponse
            = "/iamd.iam.v2.PolicyService/ListPolicyMembers";
        REPLACE_POLICY_MEMBERS: iam::ReplacePolicyMembersRequest => iam::ReplacePolicyMembersResponse
            = "/iamd.iam.v2.PolicyService/ReplacePolicyMembers";
        REMOVE_POLICY_MEMBERS: iam::RemovePolicyMembersRequest => iam::RemovePolicyMembersResponse
            = "/iamd.iam.v2.PolicyService/RemovePolicyMembers";
        ADD_POLICY_MEMBERS: iam::AddPolicyMembersRequest => iam::AddPolicyMembersResponse
            = "/iamd.iam.v2.PolicyService/AddPolicyMembers";
        CREATE_ROLE: iam::CreateRoleRequest => iam::CreateRoleResponse = "/iamd.iam.v2.RoleService/CreateRole";
        LIST_ROLES: iam::ListRolesRequest => iam::ListRolesResponse = "/iamd.iam.v2.RoleService/ListRoles";
        GET_ROLE: iam::GetRoleRequest => iam::GetRoleResponse = "/iamd.iam.v2.RoleService/GetRole";
        DELETE_ROLE: iam::DeleteRoleRequest => iam::DeleteRoleResponse = "/iamd.iam.v2.RoleService/DeleteRole";
        UPDATE_ROLE: iam::UpdateRoleRequest => iam::UpdateRoleResponse = "/iamd.iam.v2.RoleService/UpdateRole";
        CREATE_TENANT: iam::CreateTenantRequest => iam::CreateTenantResponse
            = "/iamd.iam.v2.TenantService/CreateTenant";
        UPDATE_TENANT: iam::UpdateTenantRequest => iam::UpdateTenantResponse
            = "/iamd.iam.v2.TenantService/UpdateTenant";
        GET_TENANT: iam::GetTenantRequest => iam::GetTenantResponse = "/iamd.iam.v2.TenantService/GetTenant";
        LIST_TENANTS: iam::ListTenantsRequest => iam::ListTenantsResponse
            = "/iamd.iam.v2.TenantService/ListTenants";
        DELETE_TENANT: iam::DeleteTenantRequest => iam::DeleteTenantResponse
            = "/iamd.iam.v2.TenantService/DeleteTenant";
        CREATE_USER: iam::CreateUserRequest => iam::CreateUserResponse = "/iamd.iam.v2.UserService/CreateUser";
        LIST_USERS: iam::ListUsersRequest => iam::ListUsersResponse = "/iamd.iam.v2.UserService/ListUsers";
        GET_USER: iam::GetUserRequest => iam::GetUserResponse = "/iamd.iam.v2.UserService/GetUser";
        UPDATE_USER: iam::UpdateUserRequest => iam::UpdateUserResponse = "/iamd.iam.v2.UserService/UpdateUser";
        DELETE_USER: iam::DeleteUserRequest => iam::DeleteUserResponse = "/iamd.iam.v2.UserService/DeleteUser";
        LIST_USER_TEAMS: iam::ListUserTeamsRequest => iam::ListUserTeamsResponse
            = "/iamd.iam.v2.UserService/ListUserTeams";
        CREATE_TEAM: iam::CreateTeamRequest => iam::CreateTeamResponse = "/iamd.iam.v2.TeamService/CreateTeam";
        LIST_TEAMS: iam::ListTeamsRequest => iam::ListTeamsResponse = "/iamd.iam.v2.TeamService/ListTeams";
        GET_TEAM: iam::GetTeamRequest => iam::GetTeamResponse = "/iamd.iam.v2.TeamService/GetTeam";
        UPDATE_TEAM: iam::UpdateTeamRequest => iam::UpdateTeamResponse = "/iamd.iam.v2.TeamService/UpdateTeam";
        DELETE_TEAM: iam::DeleteTeamRequest => iam::DeleteTeamResponse = "/iamd.iam.v2.TeamService/DeleteTeam";
        LIST_TEAM_USERS: iam::ListTeamUsersRequest => iam::ListTeamUsersResponse
            = "/iamd.iam.v2.TeamService/ListTeamUsers";
        ADD_TEAM_USERS: iam::AddTeamUsersRequest => iam::AddTeamUsersResponse
            = "/iamd.iam.v2.TeamService/AddTeamUsers";
        REMOVE_TEAM_USERS: iam::RemoveTeamUsersRequest => iam::RemoveTeamUsersResponse
            = "/iamd.iam.v2.TeamService/RemoveTeamUsers";
        CREATE_TOKEN: iam::CreateTokenRequest => iam::CreateTokenResponse = "/iamd.iam.v2.TokenService/CreateToken";
        LIST_TOKENS: iam::ListTokensRequest => iam::ListTokensResponse = "/iamd.iam.v2.TokenService/ListTokens";
        GET_TOKEN: iam::GetTokenRequest => iam::GetTokenResponse = "/iamd.iam.v2.TokenService/GetToken";
        UPDATE_TOKEN: iam::UpdateTokenRequest => iam::UpdateTokenResponse = "/iamd.iam.v2.TokenService/UpdateToken";
        DELETE_TOKEN: iam::DeleteTokenRequest => iam::DeleteTokenResponse = "/iamd.iam.v2.TokenService/DeleteToken";
        INTROSPECT: iam::IntrospectRequest => iam::IntrospectResponse
            = "/iamd.iam.v2.IntrospectionService/Introspect";
    }
}

/// One call written once, in its REST form: the HTTP method, the path template of the
/// method's `google.api.http` binding (written out here, apart from the server's), the
/// values of its `{field}` variables, query parameters and the JSON body. The gRPC request
/// is derived from it: body, variables and query as one JSON object, read by the message's
/// pbjson `Deserialize`, so the protocols cannot be sent different requests.
pub struct Rest<Req, Resp> {
    pub rpc: Rpc<Req, Resp>,
    pub method: Method,
    template: &'static str,
    bindings: Vec<(&'static str, String)>,
    query: Vec<(&'static str, Value)>,
    pub body: Option<Value>,
    pub success: StatusCode,
    /// `response_body`: the field of the gRPC answer that JSON answers alone.
    pub select: Option<&'static str>,
    /// Sent with the call on every protocol (as metadata on gRPC).
    pub headers: Vec<(&'static str, String)>,
    /// The binding's `body` field, when the JSON body is one field of the message.
    body_field: Option<&'static str>,
}

impl<Req, Resp> Rest<Req, Resp> {
    pub fn new(rpc: Rpc<Req, Resp>, method: Method, template: &'static str) -> Self {
        Rest {
            rpc,
            method,
            template,
            bindings: Vec::new(),
            query: Vec::new(),
            body: None,
            success: StatusCode::OK,
            select: None,
            headers: Vec::new(),
            body_field: None,
        }
    }

    /// The JSON body is the message's field `field` (`body: "check"`), not the message.
    pub fn body_field(mut self, field: &'static str) -> Self {
        self.body_field = Some(field);
        self
    }

    /// The value of the path variable `{field}`.
    pub fn bind(mut self, field: &'static str, value: impl Into<String>) -> Self {
        assert!(self.template.contains(&format!("{{{field}}}")), "`{}` has no `{{{field}}}`", self.template);
        self.bindings.push((field, value.into()));
        self
    }

    /// A query parameter; its JSON value is what the message's field gets.
    pub fn query(mut self, field: &'static str, value: Value) -> Self {
        self.query.push((field, value));
        self
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn body(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }

    pub fn success(mut self, status: StatusCode) -> Self {
        self.success = status;
        self
    }

    pub fn select(mut self, field: &'static str) -> Self {
        self.select = Some(field);
        self
    }

    /// The request path: the template with its variables bound, then the query.
    pub fn path(&self) -> String {
        let escape = |text: &str| percent_encoding::utf8_percent_encode(text, URL_VALUE).to_string();
        let mut path = self.template.to_owned();
        for (field, value) in &self.bindings {
            path = path.replace(&format!("{{{field}}}"), &escape(value));
        }
        assert!(!path.contains('{'), "`{path}`: a path variable is not bound");
        let query: Vec<String> = self
            .query
            .iter()
            .map(|(field, value)| match value {
                Value::String(text) => format!("{field}={}", escape(text)),
                other => format!("{field}={other}"),
            })
            .collect();
        if !query.is_empty() {
            path.push('?');
            path.push_str(&query.join("&"));
        }
        path
    }

    /// The gRPC request of this call.
    pub fn message(&self) -> Req
    where
        Req: DeserializeOwned,
    {
        let mut fields = match (&self.body, self.body_field) {
            (Some(body), Some(field)) => [(field.to_owned(), body.clone())].into_iter().collect(),
            (body, _) => match body {
                Some(Value::Object(body)) => body.clone(),
                Some(other) => panic!("a body must be a JSON object, not {other}"),
                None => serde_json::Map::new(),
            },
        };
        for (field, value) in &self.bindings {
            fields.insert((*field).to_owned(), Value::String(value.clone()));
        }
        for (field, value) in &self.query {
            fields.insert((*field).to_owned(), value.clone());
        }
        let fields = Value::Object(fields);
        serde_json::from_value(fields.clone())
            .unwrap_or_else(|e| panic!("{fields} is not a request of {}: {e}", self.rpc.path))
    }

    /// What JSON answers for this gRPC answer: nothing for 204, the selected field, or all.
    fn as_json(&self, value: Value) -> Value {
        match self.select {
            _ if self.success == StatusCode::NO_CONTENT => json!({}),
            Some(field) => value.get(field).cloned().unwrap_or(Value::Null),
            None => value,
        }
    }
}

/// One uncompressed gRPC message frame: a zero flag byte, the length, the message.
pub fn frame(message: &[u8]) -> Bytes {
    let mut frame = BytesMut::with_capacity(5 + message.len());
    frame.put_u8(0);
    frame.put_u32(message.len() as u32);
    frame.put_slice(message);
    frame.freeze()
}

/// Renames of one organization from `clients` at once, `each` per client, none naming a
/// version; every one must succeed.
pub async fn blind_renames(clients: Vec<TestServer>, org: &str, each: usize) {
    let mut tasks = Vec::new();
    for (c, client) in clients.into_iter().map(std::sync::Arc::new).enumerate() {
        for t in 0..4 {
            let (client, org) = (client.clone(), org.to_owned());
            tasks.push(tokio::spawn(async move {
                for i in 0..each / 4 {
                    let body = Some(json!({"name": format!("renamed-{c}-{t}-{i}")}));
                    let reply = client.json(Method::PATCH, &format!("/organizations/{org}"), body).await;
                    assert!(reply.status == StatusCode::OK, "{}: {}", reply.status, reply.body);
                }
            }));
        }
    }
    for task in tasks {
        task.await.unwrap();
    }
}

/// Waits for `done` to hold, asking every 10 ms; fails the test, naming `what`, when it
/// does not within `limit`. Answers how long it took.
pub async fn eventually(what: &str, limit: Duration, mut done: impl AsyncFnMut() -> bool) -> Duration {
    let started = std::time::Instant::now();
    while !done().await {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    started.elapsed()
}

/// What a path segment or query value keeps unescaped: RFC 3986 unreserved characters.
const URL_VALUE: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// grpc-gateway's code -> HTTP table, written out independently of the server's.
pub fn gateway_status(code: Code) -> StatusCode {
    let n = match code {
        Code::Ok => 200,
        Code::Cancelled => 499,
        Code::Unknown | Code::Internal | Code::DataLoss => 500,
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => 400,
        Code::DeadlineExceeded => 504,
        Code::NotFound => 404,
        Code::AlreadyExists | Code::Aborted => 409,
        Code::PermissionDenied => 403,
        Code::ResourceExhausted => 429,
        Code::Unimplemented => 501,
        Code::Unavailable => 503,
        Code::Unauthenticated => 401,
    };
    StatusCode::from_u16(n).unwrap()
}

/// Splits a gRPC-web body into its message and its trailer frame.
fn parse_grpc_web(mut body: Bytes) -> (Option<Bytes>, std::collections::HashMap<String, String>) {
    let mut message = None;
    let mut trailers = std::collections::HashMap::new();
    while body.remaining() >= 5 {
        let flag = body.get_u8();
        let len = body.get_u32() as usize;
        let payload = body.split_to(len);
        if flag & 0x80 != 0 {
            for line in String::from_utf8(payload.to_vec()).unwrap().split("\r\n").filter(|l| !l.is_empty()) {
                let (k, v) = line.split_once(':').unwrap();
                trailers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
            }
        } else {
            message = Some(payload);
        }
    }
    (message, trailers)
}

/// grpc-web-text: each chunk is base64 on its own (with its own padding), so decode it group by
/// group of four characters.
fn decode_text(body: &[u8]) -> Bytes {
    let mut out = Vec::new();
    for group in body.chunks(4) {
        out.extend(base64::engine::general_purpose::STANDARD.decode(group).unwrap());
    }
    Bytes::from(out)
}

fn decode_message(text: &str) -> String {
    percent_encoding::percent_decode_str(text).decode_utf8_lossy().into_owned()
}

/// Replaces what differs between runs (ids, times) so answers from separate servers compare.
pub fn normalize(value: &Value) -> Value {
    match value {
        Value::String(s) if uuid::Uuid::parse_str(s).is_ok() => json!("<uuid>"),
        Value::String(s) if chrono::DateTime::parse_from_rfc3339(s).is_ok() => {
            assert!(s.ends_with('Z'), "timestamps end in Z: {s}");
            json!("<time>")
        }
        Value::Array(items) => Value::Array(items.iter().map(normalize).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    // Page tokens hold ids and times, so they differ between servers too; so
                    // does a new API token's secret.
                    let v = match (k.as_str(), v) {
                        ("nextPageToken", _) => json!("<token>"),
                        ("value", Value::String(secret)) if secret.len() == 43 => json!("<secret>"),
                        _ => normalize(v),
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        other => other.clone(),
    }
}
