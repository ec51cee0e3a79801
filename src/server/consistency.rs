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
use crate::model::replica::Replica;

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
        // A header that is not text is not a position either: refused as one.
        let token = token.to_str().unwrap_or("?").to_owned();
        // The inner service was made ready for this call; a clone takes its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let (replica, bound) = (self.replica.clone(), self.bound);
        Box::pin(async move {
            if let Err(refused) = crate::app::reach_token(&replica, crate::CONSISTENCY_TOKEN, &token, bound).await {
                return Ok(tonic::Status::from(refused).into_http());
            }
            inner.call(request).await
        })
    }
}
