//! The port's front while the state loads: the listener is bound first, so liveness answers
//! at once; `/readyz` and every API call answer UNAVAILABLE (503 on JSON) until the replica
//! holds the store's current state, then every request goes to the stack.

use std::convert::Infallible;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use futures_util::future::{Either, Ready, ready};
use http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use tower::{Service, ServiceExt};

use super::dispatch;
use crate::body::{ResponseBody, full};
use crate::observe::Protocol;
use crate::transcode::status;

#[derive(Clone, Default)]
pub struct Gate {
    stack: Arc<OnceLock<dispatch::Service>>,
}

impl Gate {
    /// From now on every request goes to `stack`.
    pub fn open(&self, stack: dispatch::Service) {
        let _ = self.stack.set(stack);
    }
}

type StackFuture = tower::util::Oneshot<dispatch::Service, Request<Incoming>>;

impl Service<Request<Incoming>> for Gate {
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = Either<StackFuture, Ready<Result<Response<ResponseBody>, Infallible>>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Incoming>) -> Self::Future {
        match self.stack.get() {
            Some(stack) => Either::Left(stack.clone().oneshot(request)),
            None => Either::Right(ready(Ok(starting(&request)))),
        }
    }
}

fn starting(request: &Request<Incoming>) -> Response<ResponseBody> {
    let unavailable = tonic::Status::unavailable("iamd is starting: it is loading the current state; retry");
    match (Protocol::of(request.headers()), request.uri().path()) {
        (Protocol::Json, "/healthz") => {
            let mut response = Response::new(full(&br#"{"status":"SERVING"}"#[..]));
            response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            response
        }
        (Protocol::Json, _) => status::error_response(&unavailable, Some(StatusCode::SERVICE_UNAVAILABLE)),
        _ => unavailable.into_http(),
    }
}
