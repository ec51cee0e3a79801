//! Honours `grpc-timeout` for every protocol (JSON forwards the header as metadata, or what is
//! left of it once a body was read, as [`Due`]), and gives a call that sends none the
//! configured default deadline, so no call waits without bound.
//! tonic's own server applies `grpc-timeout` in its transport, which iamd does not use, so it
//! lives here.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::{Request, Response};
use tower::{Layer, Service};

use crate::body::ResponseBody;

/// The moment a call must be answered by, fixed by a layer that read part of the request
/// before the call began (the transcoder, a JSON body): it stands for `grpc-timeout`.
#[derive(Clone, Copy, Debug)]
pub struct Due(pub Instant);

#[derive(Clone, Copy)]
pub struct DeadlineLayer {
    pub default: Duration,
}

impl<S> Layer<S> for DeadlineLayer {
    type Service = Deadline<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Deadline { inner, default: self.default }
    }
}

#[derive(Clone)]
pub struct Deadline<S> {
    inner: S,
    default: Duration,
}

impl<S, B> Service<Request<B>> for Deadline<S>
where
    S: Service<Request<B>, Response = Response<ResponseBody>>,
    S::Future: Send + 'static,
{
    type Response = Response<ResponseBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let timeout = match (request.extensions().get::<Due>(), request.headers().get("grpc-timeout")) {
            (Some(Due(due)), _) => Ok(due.saturating_duration_since(Instant::now())),
            (None, Some(value)) => parse(value.to_str().unwrap_or("")),
            (None, None) => Ok(self.default),
        };
        let future = self.inner.call(request);
        Box::pin(async move {
            match timeout {
                Err(text) => {
                    Ok(tonic::Status::invalid_argument(format!("`grpc-timeout: {text}` is not a valid timeout"))
                        .into_http())
                }
                Ok(limit) => match tokio::time::timeout(limit, future).await {
                    Ok(result) => result,
                    Err(_) => {
                        Ok(tonic::Status::deadline_exceeded(format!("the deadline of {limit:?} passed")).into_http())
                    }
                },
            }
        })
    }
}

/// `grpc-timeout` is 1 to 8 digits and a unit: H, M, S, m, u or n.
pub fn parse(text: &str) -> Result<Duration, String> {
    let invalid = || text.to_owned();
    let (digits, unit) = text.split_at(text.len().saturating_sub(1));
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    let n: u64 = digits.parse().map_err(|_| invalid())?;
    match unit {
        "H" => Ok(Duration::from_secs(n * 3600)),
        "M" => Ok(Duration::from_secs(n * 60)),
        "S" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_millis(n)),
        "u" => Ok(Duration::from_micros(n)),
        "n" => Ok(Duration::from_nanos(n)),
        _ => Err(invalid()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit_and_rejects_the_rest() {
        assert_eq!(parse("2S"), Ok(Duration::from_secs(2)));
        assert_eq!(parse("100m"), Ok(Duration::from_millis(100)));
        assert_eq!(parse("1H"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse("5M"), Ok(Duration::from_secs(300)));
        assert_eq!(parse("7u"), Ok(Duration::from_micros(7)));
        assert_eq!(parse("9n"), Ok(Duration::from_nanos(9)));
        for bad in ["", "S", "123456789S", "10x", "-1S", "1.5S"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    /// The code of a call to a service that never answers, and how long it took.
    async fn never_answered(request: Request<()>) -> (tonic::Code, Duration) {
        let never = tower::service_fn(|_: Request<()>| {
            std::future::pending::<Result<Response<ResponseBody>, std::convert::Infallible>>()
        });
        let mut deadline = DeadlineLayer { default: Duration::from_secs(3600) }.layer(never);
        let started = tokio::time::Instant::now();
        let Ok(response) = deadline.call(request).await;
        let code = response.headers().get("grpc-status").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        (tonic::Code::from_bytes(code.as_bytes()), started.elapsed())
    }

    #[tokio::test(start_paused = true)]
    async fn a_due_time_stands_for_the_header_and_the_default_for_neither() {
        let mut request = Request::new(());
        request.headers_mut().insert("grpc-timeout", http::HeaderValue::from_static("10S"));
        request.extensions_mut().insert(Due(Instant::now() + Duration::from_secs(2)));
        assert_eq!(never_answered(request).await, (tonic::Code::DeadlineExceeded, Duration::from_secs(2)));
        let mut request = Request::new(());
        request.headers_mut().insert("grpc-timeout", http::HeaderValue::from_static("10S"));
        assert_eq!(never_answered(request).await, (tonic::Code::DeadlineExceeded, Duration::from_secs(10)));
        assert_eq!(never_answered(Request::new(())).await, (tonic::Code::DeadlineExceeded, Duration::from_secs(3600)));
    }
}
