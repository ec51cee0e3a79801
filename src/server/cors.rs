//! CORS for what a browser may send (gRPC-web, JSON, health): preflights answered on every
//! path, and the headers that let a page of an allowed origin read an answer. The rules are
//! turned into header values once, at start; tower-http's layer cloned its configuration
//! and joined its `Vary` list again for every request, which cost about as much as the rest
//! of a gRPC-web call's handling in iamd.
//!
//! No credentials are ever allowed, so mirroring any origin (`*`) exposes nothing a token
//! does not.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use futures_util::future::{Either, Ready};
use http::header::{self, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use tower::{Layer, Service};

use crate::body::{ResponseBody, full};
use crate::transcode::FORWARDED_HEADERS;

/// Request headers a browser may send besides those the API reads
/// ([`FORWARDED_HEADERS`]): the body's type and what gRPC-web clients add.
const CLIENT_HEADERS: [&str; 4] = ["accept", "content-type", "x-grpc-web", "x-user-agent"];
/// Response headers a page may read.
const EXPOSE_HEADERS: [&str; 7] = [
    "grpc-status",
    "grpc-message",
    "grpc-status-details-bin",
    "etag",
    crate::CONSISTENCY_TOKEN,
    "x-request-id",
    "www-authenticate",
];
const ALLOW_METHODS: &str = "GET, POST, PUT, PATCH, DELETE, OPTIONS";
/// The answer depends on these request headers, for caches.
const VARY: &str = "origin, access-control-request-method, access-control-request-headers";
const MAX_AGE: Duration = Duration::from_secs(24 * 3600);

#[derive(Clone)]
pub struct CorsLayer {
    rules: Arc<Rules>,
}

struct Rules {
    /// `None`: any origin, mirrored.
    origins: Option<Vec<HeaderValue>>,
    allow_headers: HeaderValue,
    expose_headers: HeaderValue,
    max_age: HeaderValue,
}

impl CorsLayer {
    /// `*` among `origins` allows any origin; otherwise only the listed ones.
    pub fn new(origins: &[String]) -> CorsLayer {
        let origins = (!origins.iter().any(|o| o.trim() == "*"))
            .then(|| origins.iter().filter_map(|o| HeaderValue::from_str(o.trim()).ok()).collect());
        let forwarded = FORWARDED_HEADERS.iter().map(HeaderName::as_str);
        CorsLayer {
            rules: Arc::new(Rules {
                origins,
                allow_headers: list(CLIENT_HEADERS.into_iter().chain(forwarded)),
                expose_headers: list(EXPOSE_HEADERS.into_iter()),
                max_age: HeaderValue::from(MAX_AGE.as_secs()),
            }),
        }
    }
}

/// Header names as one comma-separated value.
fn list<'a>(names: impl Iterator<Item = &'a str>) -> HeaderValue {
    let joined = names.collect::<Vec<_>>().join(", ");
    // Header names are valid in a header value.
    HeaderValue::from_str(&joined).unwrap_or(HeaderValue::from_static(""))
}

impl Rules {
    /// The request's origin, when it is allowed.
    fn allowed<'a>(&self, origin: Option<&'a HeaderValue>) -> Option<&'a HeaderValue> {
        let origin = origin?;
        match &self.origins {
            None => Some(origin),
            Some(list) => list.contains(origin).then_some(origin),
        }
    }
}

impl<S> Layer<S> for CorsLayer {
    type Service = Cors<S>;
    fn layer(&self, inner: S) -> Cors<S> {
        Cors { inner, rules: self.rules.clone() }
    }
}

#[derive(Clone)]
pub struct Cors<S> {
    inner: S,
    rules: Arc<Rules>,
}

impl<S, B> Service<Request<B>> for Cors<S>
where
    S: Service<Request<B>, Response = Response<ResponseBody>, Error = Infallible>,
{
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = Either<Ready<Result<Response<ResponseBody>, Infallible>>, WithCors<S::Future>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let headers = request.headers();
        let allowed = self.rules.allowed(headers.get(header::ORIGIN)).cloned();
        let preflight =
            request.method() == Method::OPTIONS && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
        if preflight && headers.contains_key(header::ORIGIN) {
            return Either::Left(futures_util::future::ready(Ok(self.preflight(allowed))));
        }
        // Only what a cache may keep needs to say what it varies by.
        let vary = matches!(*request.method(), Method::GET | Method::HEAD);
        let readable = allowed.map(|origin| (origin, self.rules.expose_headers.clone()));
        Either::Right(WithCors { inner: self.inner.call(request), readable, vary })
    }
}

impl<S> Cors<S> {
    /// The answer to a preflight: what may be sent, to an allowed origin only.
    fn preflight(&self, allowed: Option<HeaderValue>) -> Response<ResponseBody> {
        let mut response = Response::new(full(bytes::Bytes::new()));
        *response.status_mut() = StatusCode::OK;
        let headers = response.headers_mut();
        headers.insert(header::VARY, HeaderValue::from_static(VARY));
        if let Some(origin) = allowed {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static(ALLOW_METHODS));
            headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, self.rules.allow_headers.clone());
            headers.insert(header::ACCESS_CONTROL_MAX_AGE, self.rules.max_age.clone());
        }
        response
    }
}

pin_project_lite::pin_project! {
    /// The inner answer, with what lets an allowed origin's page read it.
    pub struct WithCors<F> {
        #[pin]
        inner: F,
        // The allowed origin and what its page may read.
        readable: Option<(HeaderValue, HeaderValue)>,
        vary: bool,
    }
}

impl<F> Future for WithCors<F>
where
    F: Future<Output = Result<Response<ResponseBody>, Infallible>>,
{
    type Output = Result<Response<ResponseBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Ok(mut response) = ready!(this.inner.poll(cx));
        let headers = response.headers_mut();
        if *this.vary {
            headers.append(header::VARY, HeaderValue::from_static(VARY));
        }
        if let Some((origin, expose)) = this.readable.take() {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, expose);
        }
        Poll::Ready(Ok(response))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(text: &'static str) -> HeaderValue {
        HeaderValue::from_static(text)
    }

    #[test]
    fn any_origin_is_mirrored_and_a_list_is_kept_to() {
        let any = CorsLayer::new(&["*".into()]);
        assert_eq!(any.rules.allowed(Some(&origin("http://a.example"))), Some(&origin("http://a.example")));
        assert_eq!(any.rules.allowed(None), None);
        let listed = CorsLayer::new(&["http://a.example".into(), " http://b.example ".into()]);
        assert!(listed.rules.allowed(Some(&origin("http://b.example"))).is_some());
        assert!(listed.rules.allowed(Some(&origin("http://evil.example"))).is_none());
    }

    #[test]
    fn the_header_lists_are_valid_and_name_what_the_api_reads_and_answers() {
        let rules = CorsLayer::new(&["*".into()]).rules;
        let names = |value: &HeaderValue| value.to_str().unwrap().split(", ").map(str::to_owned).collect::<Vec<_>>();
        let allowed = names(&rules.allow_headers);
        assert!(FORWARDED_HEADERS.iter().all(|h| allowed.contains(&h.to_string())), "{allowed:?}");
        assert!(allowed.contains(&"x-grpc-web".to_owned()), "{allowed:?}");
        assert!(names(&rules.expose_headers).contains(&crate::CONSISTENCY_TOKEN.to_owned()));
        let fixed = [ALLOW_METHODS, VARY].map(HeaderValue::from_static);
        for list in [&rules.allow_headers, &rules.expose_headers].into_iter().chain(&fixed) {
            for name in names(list) {
                assert!(HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()).is_ok(), "{name}");
            }
        }
    }
}
