//! One port, three protocols: requests are routed by content type before anything protocol
//! specific sees them, and each protocol has its own branch. tonic-web answers 400 to any
//! HTTP/1.1 request that is not gRPC-web, so it only ever gets gRPC-web (text bodies decoded
//! in front of it, `grpc_web_text`); everything that is not gRPC goes to the transcoder. All
//! three reach the same inner stack (status recording, deadlines, consistency tokens, framing
//! and limits, authentication and authorization, then the services) through the gate, which
//! holds it once the state is loaded.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::Either;
use http::{HeaderValue, Request, Response, StatusCode, header};
use tower::{Layer, Service};

use super::admission::Refusal;
use super::consistency::{Consistency, ConsistencyLayer};
use super::console;
use super::cors::{Cors, CorsLayer};
use super::deadline::{Deadline, DeadlineLayer};
use super::gate;
use super::grpc_web_text::{GrpcWebText, GrpcWebTextLayer};
use super::guard::{Guard, GuardLayer};
use super::limit::{MessageLimit, MessageLimitLayer};
use super::method::{IdentifyMethod, MethodLayer};
use crate::body::{ResponseBody, full};
use crate::config::Limits;
use crate::methods::MethodTable;
use crate::metrics::Metrics;
use crate::observe::{CallInfo, Protocol, RecordStatus, RecordStatusService, Watched};
use crate::openapi::Document;
use crate::store::Store;
use crate::transcode::routes::RouteTable;
use crate::transcode::{Transcoder, status};

/// The inner stack every protocol shares. Named rather than boxed: the gate clones it once
/// per call, which clones a few `Arc`s instead of allocating a boxed service.
pub type GrpcService =
    IdentifyMethod<RecordStatusService<Deadline<Consistency<MessageLimit<Guard<tonic::service::Routes>>>>>>;

pub type Gate = gate::Gate<GrpcService>;

type GrpcWeb = Cors<GrpcWebText<tonic_web::GrpcWebService<Gate>>>;

/// Native gRPC goes straight to the gate: no browser speaks it, so CORS has nothing to say
/// to it (and its `Vary` headers would cost every answer). The other protocols, which a
/// browser may send, go through CORS first. Every branch is always ready, so each is
/// called in place, and the inner stack is cloned once per call, by the gate.
#[derive(Clone)]
pub struct Dispatch {
    grpc: Gate,
    grpc_web: GrpcWeb,
    json: Cors<Json>,
}

/// A request as the access log passes it on.
pub type Incoming = Watched<hyper::body::Incoming>;

/// Liveness, readiness, metrics, the OpenAPI document, the console, and the transcoder for
/// the rest.
#[derive(Clone)]
pub struct Json {
    transcoder: Transcoder<Gate>,
    gate: Gate,
    metrics: Arc<Metrics>,
    openapi: Document,
}

/// What the inner stack is built from, once the state is loaded.
pub struct Parts {
    pub routes: tonic::service::Routes,
    pub methods: Arc<MethodTable>,
    pub limit: MessageLimitLayer,
    /// The deadline of a call that names none.
    pub default_deadline: std::time::Duration,
    pub consistency: ConsistencyLayer,
    pub guard: GuardLayer,
}

/// The protocol layers, built before the state loads; `gate` holds the inner stack then.
pub fn build(
    gate: Gate,
    table: Arc<RouteTable>,
    limits: &Limits,
    origins: &[String],
    metrics: Arc<Metrics>,
) -> Dispatch {
    let cors = CorsLayer::new(origins);
    let grpc_web = cors.layer(GrpcWebTextLayer.layer(tonic_web::GrpcWebLayer::new().layer(gate.clone())));
    let openapi = Document::new(&table);
    let transcoder = Transcoder::new(table, gate.clone(), *limits, metrics.clone());
    let json = cors.layer(Json { transcoder, gate: gate.clone(), metrics, openapi });
    Dispatch { grpc: gate, grpc_web, json }
}

/// The inner stack.
pub fn stack(parts: Parts) -> GrpcService {
    let Parts { routes, methods, limit, default_deadline, consistency, guard } = parts;
    tower::ServiceBuilder::new()
        .layer(MethodLayer { table: methods })
        .layer(RecordStatus)
        .layer(DeadlineLayer { default: default_deadline })
        .layer(consistency)
        .layer(limit)
        .layer(guard)
        .service(routes)
}

type BranchFuture<S> = <S as Service<Request<Incoming>>>::Future;

impl Service<Request<Incoming>> for Dispatch {
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = Either<
        <Gate as Service<Request<tonic::body::Body>>>::Future,
        Either<BranchFuture<GrpcWeb>, BranchFuture<Cors<Json>>>,
    >;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Incoming>) -> Self::Future {
        // The access log has read the protocol already.
        let protocol = match request.extensions().get::<CallInfo>() {
            Some(info) => info.protocol(),
            None => Protocol::of(request.headers()),
        };
        match protocol {
            Protocol::Grpc => Either::Left(self.grpc.call(request.map(tonic::body::Body::new))),
            Protocol::GrpcWeb => Either::Right(Either::Left(self.grpc_web.call(request))),
            Protocol::Json => Either::Right(Either::Right(self.json.call(request))),
        }
    }
}

impl Service<Request<Incoming>> for Json {
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Incoming>) -> Self::Future {
        // Operators still see health, readiness and metrics while API calls are shed.
        if let Some(info) = request.extensions().get::<CallInfo>()
            && let Some(refusal) = info.refusal()
            && (matches!(refusal, Refusal::HeadersTooLarge { .. })
                || !matches!(request.uri().path(), "/healthz" | "/readyz" | "/metrics"))
        {
            return Box::pin(std::future::ready(Ok(self.refuse(info, refusal))));
        }
        match request.uri().path() {
            "/healthz" => Box::pin(async { Ok(serving()) }),
            "/metrics" if self.metrics.enabled() && request.method() == http::Method::GET => {
                Box::pin(std::future::ready(Ok(metrics_page(&self.metrics))))
            }
            "/readyz" => {
                let store = self.gate.store().cloned();
                Box::pin(async move { Ok(ready(store.as_deref()).await) })
            }
            "/openapi.json" if request.method() == http::Method::GET => {
                let response = self.openapi.response();
                Box::pin(async { Ok(response) })
            }
            path if console::serves(path) => {
                let response = console::answer(request.method(), path, request.headers());
                Box::pin(std::future::ready(Ok(response)))
            }
            // The transcoder is always ready and clones what it needs per call.
            _ => self.transcoder.call(request),
        }
    }
}

impl Json {
    /// Answers a call that admission refused, before reading its body.
    fn refuse(&self, info: &CallInfo, refusal: Refusal) -> Response<ResponseBody> {
        let status = info.refused(refusal, &self.metrics);
        let mut response = status::error_response(&status, Some(refusal.http()));
        if let Some(retry_after) = refusal.retry_after() {
            response.headers_mut().insert(header::RETRY_AFTER, retry_after);
        }
        response
    }
}

/// Liveness: the process answers.
fn serving() -> Response<ResponseBody> {
    let mut response = Response::new(full(&br#"{"status":"SERVING"}"#[..]));
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// The Prometheus text exposition of the server's metrics.
fn metrics_page(metrics: &Metrics) -> Response<ResponseBody> {
    let mut response = Response::new(full(metrics.render()));
    let content_type = HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8");
    response.headers_mut().insert(header::CONTENT_TYPE, content_type);
    response
}

/// Readiness: the state is loaded (there is a store) and the store answers.
async fn ready(store: Option<&dyn Store>) -> Response<ResponseBody> {
    let unavailable = |status: &tonic::Status| status::error_response(status, Some(StatusCode::SERVICE_UNAVAILABLE));
    let Some(store) = store else { return unavailable(&gate::loading()) };
    match store.ping().await {
        Ok(()) => serving(),
        Err(e) => {
            tracing::warn!(error = %e, "not ready");
            unavailable(&tonic::Status::unavailable("the store is not reachable"))
        }
    }
}
