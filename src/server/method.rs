//! Names each call's gRPC method once, in the stack every protocol shares, so nothing below
//! or in the access log is labelled by a raw REST path. The method has one home, the call's
//! [`CallInfo`], which the layers below and the access log read. JSON reaches this layer as
//! the transcoder's in-process gRPC call, named already by the route it matched, so its path
//! is not looked up again. A path that names no method passes unlabelled; the router answers
//! it UNIMPLEMENTED.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::Request;
use tower::{Layer, Service};

use crate::methods::MethodTable;
use crate::observe::CallInfo;

#[derive(Clone)]
pub struct MethodLayer {
    pub table: Arc<MethodTable>,
}

impl<S> Layer<S> for MethodLayer {
    type Service = IdentifyMethod<S>;
    fn layer(&self, inner: S) -> Self::Service {
        IdentifyMethod { inner, table: self.table.clone() }
    }
}

#[derive(Clone)]
pub struct IdentifyMethod<S> {
    inner: S,
    table: Arc<MethodTable>,
}

impl<S, B> Service<Request<B>> for IdentifyMethod<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        // A call that did not pass the access log (an embedder's) still gets its record.
        if request.extensions().get::<CallInfo>().is_none() {
            let info = CallInfo::new(&request);
            request.extensions_mut().insert(info);
        }
        if let Some(info) = request.extensions().get::<CallInfo>()
            && info.method().is_none()
            && let Some(method) = self.table.get(request.uri().path())
        {
            info.record_method(method.clone());
        }
        self.inner.call(request)
    }
}
