//! JSON REST in front of the gRPC services. A request is matched against the route table
//! (built from the proto annotations), turned into the method's protobuf request, and sent
//! in-process through the same tower stack as a native gRPC call: authentication,
//! validation, limits and handlers are shared, and no loopback hop is made. The gRPC answer
//! becomes JSON with the method's success status, or an error in the grpc-gateway shape.

pub mod codec;
pub mod request;
pub mod routes;
pub mod status;
pub mod template;

#[cfg(test)]
mod tests;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Version, header};
use http_body_util::{BodyExt, Full, Limited};
use tonic::Code;
use tower::{Service, ServiceExt};

use crate::body::{ResponseBody, full};
use crate::config::Limits;
use crate::metrics::{Limit, Metrics};
use crate::observe::CallInfo;
use crate::server::deadline;
use routes::{Lookup, Route, RouteTable};

/// Request headers that become gRPC metadata (api-reference A.3); CORS lets browsers send
/// them.
pub static FORWARDED_HEADERS: [HeaderName; 6] = [
    header::AUTHORIZATION,
    HeaderName::from_static("tenants"),
    header::IF_MATCH,
    HeaderName::from_static(crate::CONSISTENCY_TOKEN),
    HeaderName::from_static("grpc-timeout"),
    HeaderName::from_static("x-request-id"),
];

const GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");

/// Response headers of the gRPC side that are framing, not metadata.
const GRPC_ONLY_HEADERS: [&str; 5] =
    ["content-type", "grpc-status", "grpc-message", "grpc-status-details-bin", "grpc-encoding"];

#[derive(Clone)]
pub struct Transcoder<S> {
    routes: Arc<RouteTable>,
    grpc: S,
    /// The body's size and depth, and the deadline it is read under.
    limits: Limits,
    metrics: Arc<Metrics>,
}

impl<S> Transcoder<S> {
    /// Counts the limits its requests reach in `metrics`.
    pub fn new(routes: Arc<RouteTable>, grpc: S, limits: Limits, metrics: Arc<Metrics>) -> Self {
        Transcoder { routes, grpc, limits, metrics }
    }
}

impl<S, B> Service<Request<B>> for Transcoder<S>
where
    S: Service<Request<tonic::body::Body>, Response = Response<ResponseBody>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let info = request.extensions().get::<CallInfo>().cloned();
            let response = match this.transcode(request).await {
                Ok(response) => response,
                Err(failure) => {
                    let status = match &info {
                        Some(info) => {
                            info.record(failure.status.code());
                            crate::request_id::stamp_status(&failure.status, info.request_id())
                        }
                        None => failure.status,
                    };
                    let mut response = status::error_response(&status, failure.http);
                    if let Some(allow) = failure.allow {
                        response.headers_mut().insert(header::ALLOW, allow);
                    }
                    response
                }
            };
            Ok(response)
        })
    }
}

/// A failure answered by the transcoder; `http` overrides the table for routing and
/// transport errors (404, 405, 413, 415).
struct Failure {
    status: tonic::Status,
    http: Option<StatusCode>,
    allow: Option<HeaderValue>,
}

impl From<tonic::Status> for Failure {
    fn from(status: tonic::Status) -> Self {
        Failure { status, http: None, allow: None }
    }
}

impl<S> Transcoder<S>
where
    S: Service<Request<tonic::body::Body>, Response = Response<ResponseBody>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    async fn transcode<B>(self, request: Request<B>) -> Result<Response<ResponseBody>, Failure>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (mut parts, body) = request.into_parts();
        let (route, bindings) = match self.routes.lookup(&parts.method, parts.uri.path()) {
            Lookup::Found(route, bindings) => {
                // The route names the method: the method layer need not look it up again,
                // and a request refused before its gRPC call is logged with it too.
                if let Some(info) = parts.extensions.get::<CallInfo>() {
                    info.record_method(route.api.clone());
                }
                (route, bindings)
            }
            Lookup::MethodNotAllowed(methods) => {
                return Err(method_not_allowed(&parts.method, parts.uri.path(), &methods));
            }
            Lookup::NotFound => {
                return Err(Failure {
                    status: tonic::Status::not_found(format!("no method is served at `{}`", parts.uri.path())),
                    http: Some(StatusCode::NOT_FOUND),
                    allow: None,
                });
            }
        };

        // A body that is still arriving is read under the call's deadline, which the call
        // then has what is left of (`deadline::Due`): a client that sends its body slowly holds
        // the call no longer than one that is slow to take the answer. A `grpc-timeout` that
        // is not one is left for the gRPC side to refuse.
        // GET and DELETE mostly come without a body: nothing to read, no deadline to set.
        let body = if body.is_end_stream() {
            Bytes::new()
        } else {
            let timeout = match parts.headers.get(GRPC_TIMEOUT) {
                None => Some(self.limits.default_deadline),
                Some(value) => deadline::parse(value.to_str().unwrap_or_default()).ok(),
            };
            let reading = timeout.unwrap_or(self.limits.default_deadline);
            let due = Instant::now() + reading;
            if timeout.is_some() {
                parts.extensions.insert(deadline::Due(due));
            }
            match tokio::time::timeout_at(due.into(), read_body(body, self.limits.max_body_bytes)).await {
                Ok(read) => read.inspect_err(|failure| {
                    if failure.status.code() == Code::ResourceExhausted {
                        self.metrics.limited(Limit::BodyBytes);
                    }
                })?,
                Err(_) => {
                    let message = format!("the request body did not arrive within the deadline of {reading:?}");
                    return Err(tonic::Status::deadline_exceeded(message).into());
                }
            }
        };
        if let Err(e) = request::check_depth(&body, self.limits.max_json_depth) {
            self.metrics.limited(Limit::JsonDepth);
            return Err(bad_request(e));
        }
        let takes_body = !matches!(route.body, routes::BodyRule::None);
        if takes_body && route.api.json.json_body_required {
            require_json_body(&parts.headers, &body)?;
        }
        // A method without a body ignores one, whatever its type.
        let lax =
            if !body.is_empty() && takes_body { check_content_type(&parts.headers)? == BodyType::Lax } else { false };
        let read = || -> Result<serde_json::Value, request::RequestError> {
            let mut json = request::build(route, &bindings, parts.uri.query(), &body)?;
            if lax && !route.ignore_unknown() {
                request::drop_unknown_fields(&mut json, &route.input());
            }
            Ok(json)
        };
        // A body that is the whole message, with nothing from the path or query to merge in,
        // is read straight from its bytes; anything that reading refuses takes the general
        // path below, which reads it again and says what is wrong.
        let whole = matches!(route.body, routes::BodyRule::Whole)
            && route.method != Method::PATCH
            && route.path_fields.is_empty()
            && parts.uri.query().is_none_or(str::is_empty)
            && !lax;
        let direct = if whole { (route.codec.request_body)(&body).ok() } else { None };
        let decoded = match direct {
            Some(frame) => Ok(frame),
            None => (route.codec.request)(read().map_err(bad_request)?),
        };
        let frame = match decoded {
            Ok(frame) => frame,
            // Only a refused request pays for a second reading, to name the element at fault.
            Err(e) => {
                let field = match read() {
                    Ok(json) => {
                        request::refuse_null_elements(&json, &route.input()).map_err(bad_request)?;
                        (route.codec.refused_at)(json)
                    }
                    Err(_) => None,
                };
                let message = match &field {
                    Some(field) => format!("invalid request: `{field}`: {e}"),
                    None => format!("invalid request: {e}"),
                };
                return Err(bad_request(request::RequestError { field, message }));
            }
        };

        let grpc_request = grpc_request(route, &parts.headers, parts.extensions, frame);
        let Ok(response) = self.grpc.oneshot(grpc_request).await;
        let (head, grpc_body) = response.into_parts();
        if let Some(failed) = failure(&head.headers) {
            // Trailers-only answer: the call failed before any message.
            return Err(failed.into());
        }
        let (body, trailers) = read_answer(grpc_body).await?;
        let Some(code) = trailers.get("grpc-status") else {
            return Err(tonic::Status::internal("the gRPC answer carried no status").into());
        };
        if let Some(failed) = failed(code, &trailers) {
            return Err(failed.into());
        }
        let message = first_message(body)?;
        answer(route, &head.headers, &message)
    }
}

/// The status of a failed answer; `None` for OK or no status.
fn failure(headers: &HeaderMap) -> Option<tonic::Status> {
    failed(headers.get("grpc-status")?, headers)
}

/// The status of an answer whose `grpc-status` is `code`, if it failed. Most answers are
/// OK, and reading `code` alone is much cheaper than building a `Status`.
fn failed(code: &HeaderValue, headers: &HeaderMap) -> Option<tonic::Status> {
    if code.as_bytes() == b"0" {
        return None;
    }
    tonic::Status::from_header_map(headers).filter(|s| s.code() != Code::Ok)
}

fn answer(route: &Route, grpc_headers: &HeaderMap, message: &[u8]) -> Result<Response<ResponseBody>, Failure> {
    let internal = |e: codec::CodecError| tonic::Status::internal(e.to_string());
    let body = if route.success() == StatusCode::NO_CONTENT {
        Bytes::new()
    } else if let Some(field) = &route.response_body {
        match (route.codec.response_field)(message, field.json_name()).map_err(internal)? {
            Some(json) => Bytes::from(json),
            // A field the surface's JSON left out is at its zero value; answer that, not nothing.
            None => Bytes::from(
                serde_json::to_vec(&request::zero_json(field)).map_err(|e| tonic::Status::internal(e.to_string()))?,
            ),
        }
    } else {
        Bytes::from((route.codec.response)(message).map_err(internal)?)
    };
    let mut response = Response::new(full(body));
    *response.status_mut() = route.success();
    let headers = response.headers_mut();
    for (name, value) in grpc_headers {
        if !GRPC_ONLY_HEADERS.contains(&name.as_str()) {
            headers.append(name.clone(), value.clone());
        }
    }
    if route.success() != StatusCode::NO_CONTENT {
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    Ok(response)
}

fn grpc_request(
    route: &Route,
    headers: &HeaderMap,
    extensions: http::Extensions,
    frame: Bytes,
) -> Request<tonic::body::Body> {
    let mut request = Request::new(tonic::body::Body::new(Full::new(frame)));
    *request.method_mut() = Method::POST;
    *request.version_mut() = Version::HTTP_2;
    *request.extensions_mut() = extensions;
    *request.uri_mut() = route.grpc_uri.clone();
    let grpc_headers = request.headers_mut();
    grpc_headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    grpc_headers.insert(header::TE, HeaderValue::from_static("trailers"));
    // One pass over the few headers a request has, rather than a lookup per forwarded name.
    for (name, value) in headers {
        if FORWARDED_HEADERS.contains(name) {
            grpc_headers.append(name.clone(), value.clone());
        }
    }
    request
}

/// The data and trailers of the in-process gRPC answer. A unary answer is almost always one
/// data frame, which is kept as it is instead of being copied into a buffer.
async fn read_answer(mut body: ResponseBody) -> Result<(Bytes, HeaderMap), Failure> {
    let failed = |e: tonic::Status| tonic::Status::internal(format!("reading the gRPC answer failed: {e}"));
    let mut data: Option<Bytes> = None;
    let mut trailers = HeaderMap::new();
    while let Some(frame) = body.frame().await {
        match frame.map_err(failed)?.into_data() {
            Ok(chunk) => {
                data = Some(match data.take() {
                    None => chunk,
                    Some(previous) => {
                        let mut joined = BytesMut::with_capacity(previous.len() + chunk.len());
                        joined.put_slice(&previous);
                        joined.put_slice(&chunk);
                        joined.freeze()
                    }
                });
            }
            Err(frame) => {
                if let Ok(map) = frame.into_trailers() {
                    trailers = map;
                }
            }
        }
    }
    Ok((data.unwrap_or_default(), trailers))
}

/// The one message of a unary answer, unframed.
fn first_message(body: Bytes) -> Result<Bytes, Failure> {
    match crate::body::split_frame(body) {
        Ok((message, _)) => Ok(message),
        Err(_) => Err(tonic::Status::internal("the gRPC answer is not one uncompressed message").into()),
    }
}

async fn read_body<B>(body: B, max: usize) -> Result<Bytes, Failure>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    match Limited::new(body, max).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(Failure {
            status: tonic::Status::resource_exhausted(format!(
                "the request body is larger than the limit of {max} bytes"
            )),
            http: Some(StatusCode::PAYLOAD_TOO_LARGE),
            allow: None,
        }),
        Err(e) => Err(tonic::Status::invalid_argument(format!("the request body could not be read: {e}")).into()),
    }
}

/// How a JSON body is read: by the surface's conventions, or ignoring unknown fields.
#[derive(Debug, PartialEq, Eq)]
enum BodyType {
    Json,
    Lax,
}

/// JSON bodies may come as `application/json` (any parameters), its `+lax`/`+pretty`
/// variants, the form type `curl -d` sends, or with no content type at all.
fn check_content_type(headers: &HeaderMap) -> Result<BodyType, Failure> {
    let Some(essence) = media_type(headers) else { return Ok(BodyType::Json) };
    match essence.as_str() {
        "application/json+lax" => Ok(BodyType::Lax),
        "application/json" | "application/json+pretty" | "application/x-www-form-urlencoded" => Ok(BodyType::Json),
        other => Err(Failure {
            status: tonic::Status::invalid_argument(format!(
                "content type `{other}` is not supported; send application/json"
            )),
            http: Some(StatusCode::UNSUPPORTED_MEDIA_TYPE),
            allow: None,
        }),
    }
}

/// The stricter transport of a surface with `json_body_required` (the OpenID AuthZEN API):
/// the body is read only as `application/json`, parameters and case aside, and must be there;
/// anything else is 400.
fn require_json_body(headers: &HeaderMap, body: &Bytes) -> Result<(), Failure> {
    let message = match media_type(headers).as_deref() {
        Some("application/json") if body.is_empty() => "the request body is empty; send a JSON object".to_owned(),
        Some("application/json") => return Ok(()),
        Some(other) => format!("content type `{other}` is not accepted here; send application/json"),
        None => "the request has no content type; send application/json".to_owned(),
    };
    Err(bad_request(request::RequestError { field: None, message }))
}

/// The content type without its parameters, lowercased; `None` when there is none.
fn media_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?;
    Some(value.to_str().unwrap_or("").split(';').next().unwrap_or("").trim().to_ascii_lowercase())
}

fn method_not_allowed(method: &Method, path: &str, allowed: &[Method]) -> Failure {
    let list = allowed.iter().map(Method::as_str).collect::<Vec<_>>().join(", ");
    Failure {
        status: tonic::Status::unimplemented(format!("`{path}` does not answer {method}; it answers {list}")),
        http: Some(StatusCode::METHOD_NOT_ALLOWED),
        allow: HeaderValue::from_str(&list).ok(),
    }
}

fn bad_request(error: request::RequestError) -> Failure {
    use tonic_types::{ErrorDetails, StatusExt};
    let mut details = ErrorDetails::with_error_info("INVALID_REQUEST", crate::ERROR_DOMAIN, []);
    if let Some(field) = &error.field {
        details.add_bad_request_violation(field.clone(), error.message.clone());
    }
    tonic::Status::with_error_details(Code::InvalidArgument, error.message, details).into()
}
