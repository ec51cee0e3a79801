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
use prost_reflect::FieldDescriptor;
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
    let resource = method
        .permission()
        .and_then(|rule| rule.resource.fill(|path| field_text(&message, path).ok()))
        .ok_or_else(|| {
            tonic::Status::invalid_argument(format!(
                "the request is not a valid `{}` message",
                method.input().full_name()
            ))
        })?;
    let request = Request::from_parts(parts, tonic::body::Body::new(Full::new(bytes)));
    Ok((request, resource))
}

/// A message the wire format cannot read.
struct Malformed;

/// The text of a singular scalar field (`a.b` as fields) of an encoded message, its default
/// when absent; the last occurrence wins, as protobuf merges singular fields. Read straight
/// off the wire: a placeholder is usually one string of a small message, and decoding the
/// whole message into a dynamic one would cost more than the rest of the check.
fn field_text(message: &[u8], path: &[FieldDescriptor]) -> Result<String, Malformed> {
    let Some((field, rest)) = path.split_first() else { return Err(Malformed) };
    let number = u64::from(field.number());
    let mut found: Option<Wire<'_>> = None;
    let mut input = message;
    while !input.is_empty() {
        let key = varint(&mut input)?;
        let value = match key & 7 {
            0 => Wire::Varint(varint(&mut input)?),
            1 => {
                take(&mut input, 8)?;
                Wire::Fixed
            }
            2 => {
                let length = usize::try_from(varint(&mut input)?).map_err(|_| Malformed)?;
                Wire::Bytes(take(&mut input, length)?)
            }
            5 => {
                take(&mut input, 4)?;
                Wire::Fixed
            }
            _ => return Err(Malformed),
        };
        if key >> 3 == number {
            found = Some(value);
        }
    }
    if !rest.is_empty() {
        return match found {
            Some(Wire::Bytes(inner)) => field_text(inner, rest),
            None => field_text(&[], rest),
            Some(_) => Err(Malformed),
        };
    }
    use prost_reflect::Kind::*;
    Ok(match (field.kind(), found) {
        (String, Some(Wire::Bytes(text))) => std::str::from_utf8(text).map_err(|_| Malformed)?.to_owned(),
        (String, None) => std::string::String::new(),
        (Bool, Some(Wire::Varint(n))) => (n != 0).to_string(),
        (Bool, None) => "false".into(),
        (Int32 | Enum(_), Some(Wire::Varint(n))) => (n as i32).to_string(),
        (Int64, Some(Wire::Varint(n))) => (n as i64).to_string(),
        (Uint32, Some(Wire::Varint(n))) => (n as u32).to_string(),
        (Uint64, Some(Wire::Varint(n))) => n.to_string(),
        (Int32 | Int64 | Uint32 | Uint64 | Enum(_), None) => "0".into(),
        _ => return Err(Malformed),
    })
}

/// One field's value as the wire holds it.
enum Wire<'a> {
    Varint(u64),
    /// A fixed32 or fixed64, which no placeholder reads.
    Fixed,
    Bytes(&'a [u8]),
}

fn varint(input: &mut &[u8]) -> Result<u64, Malformed> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = input.split_first().ok_or(Malformed)?;
        *input = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(Malformed)
}

fn take<'a>(input: &mut &'a [u8], n: usize) -> Result<&'a [u8], Malformed> {
    if input.len() < n {
        return Err(Malformed);
    }
    let (taken, rest) = input.split_at(n);
    *input = rest;
    Ok(taken)
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;
    use crate::methods::MethodTable;

    fn fill(path: &str, message: &impl Message) -> Option<String> {
        let table = MethodTable::served().unwrap();
        let rule = table.get(path).unwrap().permission().unwrap();
        let bytes = message.encode_to_vec();
        rule.resource.fill(|fields| field_text(&bytes, fields).ok())
    }

    #[test]
    fn placeholders_are_read_off_the_wire_and_escaped() {
        use crate::pb::iamd::accounts::v1 as accounts;
        let get = accounts::GetPolicyRequest { organization_id: "o:1*".into(), policy_id: "p".into() };
        assert_eq!(
            fill("/iamd.accounts.v1.PolicyService/GetPolicy", &get).as_deref(),
            Some("accounts:organizations:o%3A1%2A:policies:p")
        );
        let empty = accounts::GetPolicyRequest::default();
        assert_eq!(
            fill("/iamd.accounts.v1.PolicyService/GetPolicy", &empty).as_deref(),
            Some("accounts:organizations::policies:")
        );
    }

    #[test]
    fn a_message_the_wire_format_cannot_read_is_malformed() {
        let table = MethodTable::served().unwrap();
        let rule = table.get("/iamd.accounts.v1.PolicyService/GetPolicy").unwrap().permission().unwrap();
        for bad in [&[0x0a, 0x05, b'a'][..], &[0x0a], &[0xff; 11], &[0x0b, 0x00], &[0x0a, 0x02, 0xff, 0xfe]] {
            assert!(rule.resource.fill(|fields| field_text(bad, fields).ok()).is_none(), "{bad:?}");
        }
    }
}
