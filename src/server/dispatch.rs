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
use std::time::Duration;

use http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use tower::{Layer, ServiceExt};
use tower_http::cors::{AllowOrigin, Cors, CorsLayer};

use super::consistency::{Consistency, ConsistencyLayer};
use super::deadline::{Deadline, DeadlineLayer};
use super::grpc_web_text::{GrpcWebText, GrpcWebTextLayer};
use super::limit::{MessageLimit, MessageLimitLayer};
use super::method::{IdentifyMethod, MethodLayer};
use crate::body::{ResponseBody, full};
use crate::methods::MethodTable;
use crate::observe::{Protocol, RecordStatus, RecordStatusService};
use crate::store::Store;
use crate::transcode::routes::RouteTable;
use crate::transcode::{Transcoder, status};

/// The inner stack every protocol shares. Named rather than boxed: cloning it per request
/// then clones a few `Arc`s instead of allocating a boxed service.
pub type GrpcService = IdentifyMethod<RecordStatusService<Deadline<Consistency<MessageLimit<tonic::service::Routes>>>>>;

/// The whole server below the access log.
pub type Service = Cors<Dispatch>;

#[derive(Clone)]
pub struct Dispatch {
    grpc: GrpcService,
    grpc_web: GrpcWebText<tonic_web::GrpcWebService<GrpcService>>,
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
    let dispatch = Dispatch {
        grpc_web: GrpcWebTextLayer.layer(tonic_web::GrpcWebLayer::new().layer(grpc.clone())),
        json: Transcoder::new(table, grpc.clone(), max_body),
        grpc,
        store,
    };
    cors(origins).layer(dispatch)
}

/// `*` mirrors any origin (no credentials are ever allowed, so this exposes nothing a
/// token does not); otherwise only the listed origins.
fn cors(origins: &[String]) -> CorsLayer {
    let allow_origin = if origins.iter().any(|o| o == "*") {
        AllowOrigin::mirror_request()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o.trim()).ok()))
    };
    let names = |list: &[&'static str]| list.iter().map(|n| HeaderName::from_static(n)).collect::<Vec<_>>();
    CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE, Method::OPTIONS])
        .allow_headers(names(&[
            "accept",
            "authorization",
            "content-type",
            "grpc-timeout",
            "if-match",
            "tenants",
            "x-grpc-web",
            "x-iamd-consistency-token",
            "x-request-id",
            "x-user-agent",
        ]))
        .expose_headers(names(&[
            "grpc-status",
            "grpc-message",
            "grpc-status-details-bin",
            "etag",
            "x-iamd-consistency-token",
            "x-request-id",
        ]))
        .max_age(Duration::from_secs(24 * 3600))
}

impl tower::Service<Request<Incoming>> for Dispatch {
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Incoming>) -> Self::Future {
        match Protocol::of(request.headers()) {
            Protocol::GrpcWeb => Box::pin(self.grpc_web.clone().oneshot(request)),
            Protocol::Grpc => Box::pin(self.grpc.clone().oneshot(request.map(tonic::body::Body::new))),
            Protocol::Json => match request.uri().path() {
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
