//! iamd guards itself: one layer of the stack every protocol shares, in front of every
//! handler. It authenticates the caller (an API token as `Authorization: Bearer` or
//! `AccessKey`, or an OIDC JWT when a verifier is configured), reads the method's action and
//! resource from the method table, fills the resource's placeholders from the request
//! message, and asks the engine. No credential or a bad one is UNAUTHENTICATED; a denial is
//! PERMISSION_DENIED, naming the action and the resource. An admitted call carries
//! [`Admitted`] to its handler: who asks, and the tenants it may see. Methods without a rule
//! (health, reflection) stay open.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body_util::{BodyExt, Full};
use tower::{Layer, Service};

use crate::app::access::{Admitted, now, unauthenticated};
use crate::app::iam::HeaderFilter;
use crate::app::{Actor, App, AppError, ErrorKind};
use crate::body::{FrameError, ResponseBody};
use crate::methods::ApiMethod;
use crate::metrics::Credential;
use crate::observe::CallInfo;
use crate::oidc::Verifier;

#[derive(Clone)]
pub struct GuardLayer {
    pub app: Arc<App>,
    pub oidc: Option<Arc<Verifier>>,
}

impl<S> Layer<S> for GuardLayer {
    type Service = Guard<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Guard { inner, app: self.app.clone(), oidc: self.oidc.clone() }
    }
}

#[derive(Clone)]
pub struct Guard<S> {
    inner: S,
    app: Arc<App>,
    oidc: Option<Arc<Verifier>>,
}

impl<S> Service<Request<tonic::body::Body>> for Guard<S>
where
    S: Service<Request<tonic::body::Body>, Response = Response<ResponseBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<ResponseBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<tonic::body::Body>) -> Self::Future {
        let method = request.extensions().get::<CallInfo>().and_then(CallInfo::method).cloned();
        let Some(method) = method.filter(|m| m.permission().is_some()) else {
            return Box::pin(self.inner.call(request));
        };
        // The inner service was made ready for this call; a clone takes its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let (app, oidc) = (self.app.clone(), self.oidc.clone());
        Box::pin(async move {
            match admit(&app, oidc.as_deref(), &method, request).await {
                Ok(request) => inner.call(request).await,
                Err(refused) => Ok(refused.into_http()),
            }
        })
    }
}

/// The request, admitted, or why not.
async fn admit(
    app: &App,
    oidc: Option<&Verifier>,
    method: &ApiMethod,
    request: Request<tonic::body::Body>,
) -> Result<Request<tonic::body::Body>, tonic::Status> {
    let Some(rule) = method.permission() else { return Ok(request) };
    let actor = match authenticate(app, oidc, request.headers()).await {
        Ok(actor) => actor,
        Err((credential, refused)) => {
            if refused.kind == ErrorKind::Unauthenticated {
                app.metrics().authentication_failed(credential, refused.reason);
            }
            return Err(refused.into());
        }
    };
    let (request, resource) = if rule.resource.is_fixed() {
        (request, rule.resource.text.clone())
    } else {
        resource_of(method, request).await?
    };
    let header = HeaderFilter::parse(request.headers().get("tenants").and_then(|v| v.to_str().ok()));
    let tenants = app.authorize(&actor, &rule.action, &resource, header)?;
    let mut request = request;
    request.extensions_mut().insert(Admitted { actor, tenants });
    Ok(request)
}

/// Who the request's credential stands for, or why not and what kind of credential it was.
async fn authenticate(
    app: &App,
    oidc: Option<&Verifier>,
    headers: &HeaderMap,
) -> Result<Actor, (Credential, AppError)> {
    let Some(value) = headers.get(http::header::AUTHORIZATION) else {
        return Err((
            Credential::None,
            unauthenticated(
                "CREDENTIAL_MISSING",
                "this method needs a credential: send `Authorization: Bearer <token>`",
            ),
        ));
    };
    let malformed = || {
        (
            Credential::None,
            unauthenticated(
                "CREDENTIAL_MALFORMED",
                "send the credential as `Authorization: Bearer <token>` or `AccessKey <token>`",
            ),
        )
    };
    let value = value.to_str().map_err(|_| malformed())?.trim();
    let (scheme, credential) = value.split_once(' ').ok_or_else(malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") && !scheme.eq_ignore_ascii_case("accesskey") {
        return Err(malformed());
    }
    let credential = credential.trim();
    if credential.is_empty() {
        return Err(malformed());
    }
    if let Some(oidc) = oidc
        && Verifier::looks_like_jwt(credential)
    {
        let identity = oidc
            .verify(credential)
            .await
            .map_err(|e| (Credential::Oidc, unauthenticated(e.reason(), e.to_string())))?;
        return Ok(Actor { subject: identity.subject, teams: identity.teams });
    }
    app.authenticate_token(credential, now()).map_err(|e| (Credential::Token, e))
}

/// Reads the request's one message to fill the resource's placeholders, and puts it back.
async fn resource_of(
    method: &ApiMethod,
    request: Request<tonic::body::Body>,
) -> Result<(Request<tonic::body::Body>, String), tonic::Status> {
    let (parts, mut body) = request.into_parts();
    // The limit layer has bounded the body and refuses a malformed frame as it passes. A
    // unary message usually arrives as one chunk, kept as it is.
    let mut bytes = Bytes::new();
    let mut more: Option<bytes::BytesMut> = None;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else { continue };
        match more.as_mut() {
            Some(more) => more.extend_from_slice(&data),
            None if bytes.is_empty() => bytes = data,
            None => {
                let mut joined = bytes::BytesMut::from(&bytes[..]);
                joined.extend_from_slice(&data);
                more = Some(joined);
            }
        }
    }
    if let Some(more) = more {
        bytes = more.freeze();
    }
    let message = match crate::body::split_frame(bytes.clone()) {
        Ok((message, rest)) if rest.is_empty() => message,
        Err(FrameError::Compressed) => {
            return Err(tonic::Status::unimplemented("compressed request messages are not accepted"));
        }
        _ => return Err(tonic::Status::invalid_argument("the request must hold exactly one message")),
    };
    let resource = method.permission().and_then(|rule| rule.resource.fill_from_message(&message)).ok_or_else(|| {
        tonic::Status::invalid_argument(format!("the request is not a valid `{}` message", method.input().full_name()))
    })?;
    let request = Request::from_parts(parts, tonic::body::Body::new(Full::new(bytes)));
    Ok((request, resource))
}
