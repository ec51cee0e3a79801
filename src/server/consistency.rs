//! Consistency tokens, for every protocol: a request that carries
//! `x-iamd-consistency-token` (a log position another replica answered for a write) waits
//! until this replica's view has applied that position, for at most a bound, and is
//! UNAVAILABLE after it. A token this replica cannot parse is INVALID_ARGUMENT.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use tower::{Layer, Service};

use crate::store::view::View;
use crate::transcode::ResponseBody;

#[derive(Clone)]
pub struct ConsistencyLayer {
    pub view: Arc<View>,
    pub bound: Duration,
}

impl<S> Layer<S> for ConsistencyLayer {
    type Service = Consistency<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Consistency { inner, view: self.view.clone(), bound: self.bound }
    }
}

#[derive(Clone)]
pub struct Consistency<S> {
    inner: S,
    view: Arc<View>,
    bound: Duration,
}

impl<S, B> Service<Request<B>> for Consistency<S>
where
    S: Service<Request<B>, Response = Response<ResponseBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<ResponseBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let Some(token) = request.headers().get(crate::CONSISTENCY_TOKEN) else {
            return Box::pin(self.inner.call(request));
        };
        let position = token.to_str().ok().and_then(|t| t.trim().parse::<u64>().ok());
        // The inner service was made ready for this call; a clone takes its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let (view, bound) = (self.view.clone(), self.bound);
        Box::pin(async move {
            let Some(position) = position else {
                let status = tonic::Status::invalid_argument(format!(
                    "`{}` must be a log position, as a write answered it",
                    crate::CONSISTENCY_TOKEN
                ));
                return Ok(status.into_http());
            };
            if let Err(e) = view.wait_for(position, bound).await {
                tracing::debug!(error = %e, position, "consistency token not reached");
                let status = tonic::Status::unavailable(format!(
                    "this replica has not caught up with consistency token {position} within {bound:?}; retry"
                ));
                return Ok(status.into_http());
            }
            inner.call(request).await
        })
    }
}
