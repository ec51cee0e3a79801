//! Honours `grpc-timeout` for every protocol (JSON forwards the header as metadata), and gives
//! a call that sends none the configured default deadline, so no call waits without bound.
//! tonic's own server applies `grpc-timeout` in its transport, which iamd does not use, so it
//! lives here.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use tower::{Layer, Service};

use crate::body::ResponseBody;

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
        let timeout = match request.headers().get("grpc-timeout") {
            Some(value) => parse(value.to_str().unwrap_or("")),
            None => Ok(self.default),
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

/// `timeout` as `grpc-timeout`, rounded down to what eight digits of its unit can say.
pub fn encode(timeout: Duration) -> http::HeaderValue {
    const MAX: u128 = 99_999_999;
    let micros = timeout.as_micros();
    let text = if micros <= MAX {
        format!("{micros}u")
    } else if timeout.as_millis() <= MAX {
        format!("{}m", timeout.as_millis())
    } else {
        format!("{}S", timeout.as_secs().min(MAX as u64))
    };
    http::HeaderValue::try_from(text).unwrap_or(http::HeaderValue::from_static("99999999S"))
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

    #[test]
    fn encodes_what_parse_reads_back() {
        for timeout in [Duration::from_micros(1), Duration::from_millis(1500), Duration::from_secs(30)] {
            let encoded = encode(timeout);
            assert_eq!(parse(encoded.to_str().unwrap()), Ok(timeout), "{encoded:?}");
        }
        // Too long for microseconds: milliseconds, rounded down.
        let long = Duration::from_secs(3600) + Duration::from_micros(1);
        assert_eq!(encode(long), "3600000m");
    }
}
