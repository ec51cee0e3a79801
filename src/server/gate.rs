//! The inner stack's front door while the state loads: the listener is bound and the
//! protocol layers answer at once (liveness, CORS, gRPC-web framing, JSON routing), while
//! every call that would reach the inner stack answers UNAVAILABLE until the replica holds
//! the store's current state. It sits below the protocol layers, so a browser is answered
//! UNAVAILABLE through CORS and in its own protocol, and retries.
//!
//! For the same reason it answers the calls that admission refused (shed, or headers too
//! large) for gRPC and gRPC-web, in their own form; JSON answers them before reading a body.

use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use futures_util::future::{Either, Ready, ready};
use http::{Request, Response};
use tonic::Code;
use tower::{Service, ServiceExt};

use crate::body::ResponseBody;
use crate::metrics::Metrics;
use crate::observe::CallInfo;
use crate::store::Store;

pub struct Gate<S> {
    open: Arc<OnceLock<Open<S>>>,
    metrics: Arc<Metrics>,
}

struct Open<S> {
    stack: S,
    store: Arc<dyn Store>,
}

impl<S> Clone for Gate<S> {
    fn clone(&self) -> Self {
        Gate { open: self.open.clone(), metrics: self.metrics.clone() }
    }
}

impl<S> Gate<S> {
    /// A closed gate, which counts the refusals it answers in `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Gate { open: Arc::default(), metrics }
    }

    /// From now on every call goes to `stack`, and readiness asks `store`.
    pub fn open(&self, stack: S, store: Arc<dyn Store>) {
        let _ = self.open.set(Open { stack, store });
    }

    /// The store, once the state is loaded.
    pub fn store(&self) -> Option<&Arc<dyn Store>> {
        self.open.get().map(|open| &open.store)
    }
}

/// What every call is answered while the state loads.
pub fn loading() -> tonic::Status {
    tonic::Status::unavailable("iamd is starting: it is loading the current state; retry")
}

impl<S, B> Service<Request<B>> for Gate<S>
where
    S: Service<Request<B>, Response = Response<ResponseBody>> + Clone,
{
    type Response = Response<ResponseBody>;
    type Error = S::Error;
    type Future = Either<tower::util::Oneshot<S, Request<B>>, Ready<Result<Response<ResponseBody>, S::Error>>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let info = request.extensions().get::<CallInfo>();
        let refused = info.and_then(|info| Some((info, info.refusal()?)));
        let status = match (self.open.get(), refused) {
            (Some(_), Some((info, refusal))) => info.refused(refusal, &self.metrics),
            // The one clone of the inner stack a call makes.
            (Some(open), None) => return Either::Left(open.stack.clone().oneshot(request)),
            (None, _) => match info {
                Some(info) => {
                    info.record(Code::Unavailable);
                    crate::request_id::stamp_status(&loading(), info.request_id())
                }
                None => loading(),
            },
        };
        Either::Right(ready(Ok(status.into_http())))
    }
}
