//! One port, three protocols: requests are routed by content type before anything protocol
//! specific sees them. tonic-web answers 400 to any HTTP/1.1 request that is not gRPC-web,
//! so it only ever gets gRPC-web (text bodies decoded in front of it, `grpc_web_text`);
//! everything that is not gRPC goes to the transcoder. All three reach the same inner stack
//! (status recording, deadlines, framing and limits, then the services).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::Either;
use http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use tower::{Layer, ServiceExt};

use super::consistency::{Consistency, ConsistencyLayer};
use super::cors::{Cors, CorsLayer};
use super::deadline::{Deadline, DeadlineLayer};
use super::grpc_web_text::{GrpcWebText, GrpcWebTextLayer};
use super::limit::{MessageLimit, MessageLimitLayer};
use super::method::{IdentifyMethod, MethodLayer};
use crate::body::{ResponseBody, full};
use crate::methods::MethodTable;
use crate::observe::{CallInfo, Protocol, RecordStatus, RecordStatusService};
use crate::store::Store;
use crate::transcode::routes::RouteTable;
use crate::transcode::{Transcoder, status};

/// The inner stack every protocol shares. Named rather than boxed: cloning it per request
/// then clones a few `Arc`s instead of allocating a boxed service.
pub type GrpcService = IdentifyMethod<RecordStatusService<Deadline<Consistency<MessageLimit<tonic::service::Routes>>>>>;

/// The whole server below the gate.
pub type Service = Dispatch;

/// Native gRPC goes straight to the inner stack: no browser speaks it, so CORS has nothing
/// to say to it (and its `Vary` headers would cost every answer). Everything else, which a
/// browser may send, goes through CORS first.
#[derive(Clone)]
pub struct Dispatch {
    grpc: GrpcService,
    web: Cors<WebDispatch>,
}

#[derive(Clone)]
pub struct WebDispatch {
    grpc_web: tonic_web::GrpcWebService<GrpcService>,
    /// The same, behind the decoding of text bodies.
    grpc_web_text: GrpcWebText<tonic_web::GrpcWebService<GrpcService>>,
    json: Transcoder<GrpcService>,
    store: Arc<dyn Store>,
}

/// What the stack is built from.
pub struct Parts {
    pub routes: tonic::service::Routes,
    pub methods: Arc<MethodTable>,
    pub table: Arc<RouteTable>,
    pub store: Arc<dyn Store>,
    pub limit: MessageLimitLayer,
    pub consistency: ConsistencyLayer,
}

pub fn build(parts: Parts, origins: &[String]) -> Service {
    let Parts { routes, methods, table, store, limit, consistency } = parts;
    let max_body = limit.max();
    let stack = tower::ServiceBuilder::new()
        .layer(MethodLayer { table: methods })
        .layer(RecordStatus)
        .layer(DeadlineLayer)
        .layer(consistency)
        .layer(limit)
        .service(routes);
    let grpc: GrpcService = stack;
    let web = WebDispatch {
        grpc_web: tonic_web::GrpcWebLayer::new().layer(grpc.clone()),
        grpc_web_text: GrpcWebTextLayer.layer(tonic_web::GrpcWebLayer::new().layer(grpc.clone())),
        json: Transcoder::new(table, grpc.clone(), max_body),
        store,
    };
    Dispatch { grpc, web: CorsLayer::new(origins).layer(web) }
}

impl tower::Service<Request<Incoming>> for Dispatch {
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = Either<
        tower::util::Oneshot<GrpcService, Request<tonic::body::Body>>,
        tower::util::Oneshot<Cors<WebDispatch>, Request<Incoming>>,
    >;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Incoming>) -> Self::Future {
        match protocol(&request) {
            Protocol::Grpc => Either::Left(self.grpc.clone().oneshot(request.map(tonic::body::Body::new))),
            _ => Either::Right(self.web.clone().oneshot(request)),
        }
    }
}

/// The protocol the access log found, or the headers say.
fn protocol<B>(request: &Request<B>) -> Protocol {
    match request.extensions().get::<CallInfo>() {
        Some(info) => info.protocol(),
        None => Protocol::of(request.headers()),
    }
}

impl tower::Service<Request<Incoming>> for WebDispatch {
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Incoming>) -> Self::Future {
        match protocol(&request) {
            // Binary bodies, the common case, go to tonic-web as they are.
            Protocol::GrpcWeb if is_text(request.headers()) => Box::pin(self.grpc_web_text.clone().oneshot(request)),
            Protocol::GrpcWeb => Box::pin(self.grpc_web.clone().oneshot(request)),
            Protocol::Grpc | Protocol::Json => match request.uri().path() {
                "/healthz" => Box::pin(async { Ok(serving()) }),
                "/readyz" => {
                    let store = self.store.clone();
                    Box::pin(async move { Ok(ready(&*store).await) })
                }
                // The transcoder is always ready and clones what it needs per call.
                _ => self.json.call(request),
            },
        }
    }
}

fn is_text(headers: &http::HeaderMap) -> bool {
    headers.get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/grpc-web-text"))
}

/// Liveness: the process answers.
fn serving() -> Response<ResponseBody> {
    let mut response = Response::new(full(&br#"{"status":"SERVING"}"#[..]));
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Readiness: the store answers.
async fn ready(store: &dyn Store) -> Response<ResponseBody> {
    match store.ping().await {
        Ok(()) => serving(),
        Err(e) => {
            tracing::warn!(error = %e, "not ready");
            status::error_response(
                &tonic::Status::unavailable("the store is not reachable"),
                Some(StatusCode::SERVICE_UNAVAILABLE),
            )
        }
    }
}
