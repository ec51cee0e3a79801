//! Consistency tokens, for every protocol: a request that carries
//! `x-iamd-consistency-token` (a log position a replica answered for a write) waits until
//! this replica holds that write, for at most a bound, and is UNAVAILABLE after it. A token
//! this replica cannot parse is INVALID_ARGUMENT; one past the store's last position
//! (no write ever answered it) is OUT_OF_RANGE at once, so a made-up token costs one lookup.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use tower::{Layer, Service};

use crate::body::ResponseBody;
use crate::model::replica::{Replica, WaitError};

#[derive(Clone)]
pub struct ConsistencyLayer {
    pub replica: Arc<Replica>,
    pub bound: Duration,
}

impl<S> Layer<S> for ConsistencyLayer {
    type Service = Consistency<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Consistency { inner, replica: self.replica.clone(), bound: self.bound }
    }
}

#[derive(Clone)]
pub struct Consistency<S> {
    inner: S,
    replica: Arc<Replica>,
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
        let (replica, bound) = (self.replica.clone(), self.bound);
        Box::pin(async move {
            let Some(position) = position else {
                let status = tonic::Status::invalid_argument(format!(
                    "`{}` must be a log position, as a write answered it",
                    crate::CONSISTENCY_TOKEN
                ));
                return Ok(status.into_http());
            };
            let refused = match replica.wait_for(position, bound).await {
                Ok(()) => None,
                Err(WaitError::Beyond) => Some(tonic::Status::out_of_range(format!(
                    "consistency token {position} is past the end of the event log; send a token a write answered"
                ))),
                Err(WaitError::Late) => Some(tonic::Status::unavailable(format!(
                    "this replica has not caught up with consistency token {position} within {bound:?}; retry"
                ))),
                Err(WaitError::Store(e)) => {
                    tracing::warn!(error = %e, position, "cannot look up a consistency token");
                    Some(tonic::Status::unavailable("the store is unavailable; retry later"))
                }
            };
            if let Some(status) = refused {
                return Ok(status.into_http());
            }
            inner.call(request).await
        })
    }
}
