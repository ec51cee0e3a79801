//! What a request must pass before any protocol reads it: the header-list limit, and the
//! in-flight limit beyond which API requests are shed. The access log asks once per request,
//! as the outermost layer, so every protocol is held to the same numbers; the answer travels
//! in the call's `CallInfo` to where each protocol answers in its own form: the gate for gRPC
//! and gRPC-web (which tonic-web frames), the JSON branch before it reads a body. Shedding
//! costs a refused client one counter and one small answer, never a body read or a store call.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::{HeaderMap, HeaderValue, StatusCode};
use tonic_types::{ErrorDetails, StatusExt};

use crate::config::Limits;
use crate::metrics::Limit;

/// How long a shed client is asked to wait before it retries.
const RETRY_AFTER: Duration = Duration::from_secs(1);

pub struct Admission {
    in_flight: AtomicUsize,
    max_in_flight: usize,
    max_header_bytes: usize,
}

/// Why a request is refused before it is served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// More than `max` API requests are in flight.
    Busy { max: usize },
    /// The header list is `size` bytes, over `max`.
    HeadersTooLarge { size: usize, max: usize },
}

/// A request counted in flight until this drops.
pub struct Permit(Arc<Admission>);

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Admission {
    pub fn new(limits: &Limits) -> Arc<Admission> {
        Arc::new(Admission {
            in_flight: AtomicUsize::new(0),
            max_in_flight: limits.max_in_flight,
            max_header_bytes: limits.max_header_bytes,
        })
    }

    /// Admits a request with `headers`, or says why not. A refused request holds no permit.
    pub fn admit(self: &Arc<Self>, headers: &HeaderMap) -> Result<Permit, Refusal> {
        let size = header_list_size(headers);
        if size > self.max_header_bytes {
            return Err(Refusal::HeadersTooLarge { size, max: self.max_header_bytes });
        }
        // Counted first, so concurrent arrivals cannot all pass on one reading.
        if self.in_flight.fetch_add(1, Ordering::Relaxed) >= self.max_in_flight {
            self.in_flight.fetch_sub(1, Ordering::Relaxed);
            return Err(Refusal::Busy { max: self.max_in_flight });
        }
        Ok(Permit(self.clone()))
    }
}

/// The size of a header list as HTTP/2 counts it for SETTINGS_MAX_HEADER_LIST_SIZE (RFC 9113
/// §6.5.2): each field's name and value, plus 32.
fn header_list_size(headers: &HeaderMap) -> usize {
    headers.iter().map(|(name, value)| name.as_str().len() + value.len() + 32).sum()
}

impl Refusal {
    /// RESOURCE_EXHAUSTED with a reason, and for a shed request when to retry.
    pub fn status(self) -> tonic::Status {
        let (message, reason) = match self {
            Refusal::Busy { max } => {
                (format!("iamd is answering its limit of {max} requests at once; retry in a second"), "OVERLOADED")
            }
            Refusal::HeadersTooLarge { size, max } => (
                format!("the request headers are {size} bytes, larger than the limit of {max} bytes"),
                "HEADERS_TOO_LARGE",
            ),
        };
        let mut details = ErrorDetails::with_error_info(reason, crate::ERROR_DOMAIN, []);
        if let Refusal::Busy { .. } = self {
            details.set_retry_info(Some(RETRY_AFTER));
        }
        let mut status = tonic::Status::with_error_details(tonic::Code::ResourceExhausted, message, details);
        if let Refusal::Busy { .. } = self {
            status.metadata_mut().insert("retry-after", tonic::metadata::MetadataValue::from(RETRY_AFTER.as_secs()));
        }
        status
    }

    /// The limit that refused the call, as metrics count it.
    pub fn limit(self) -> Limit {
        match self {
            Refusal::Busy { .. } => Limit::InFlight,
            Refusal::HeadersTooLarge { .. } => Limit::HeaderBytes,
        }
    }

    /// The HTTP status a JSON client gets: 429, or 431 for headers.
    pub fn http(self) -> StatusCode {
        match self {
            Refusal::Busy { .. } => StatusCode::TOO_MANY_REQUESTS,
            Refusal::HeadersTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        }
    }

    /// `Retry-After` of a shed request.
    pub fn retry_after(self) -> Option<HeaderValue> {
        match self {
            Refusal::Busy { .. } => Some(HeaderValue::from(RETRY_AFTER.as_secs())),
            Refusal::HeadersTooLarge { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(max_in_flight: usize, max_header_bytes: usize) -> Arc<Admission> {
        Admission::new(&Limits { max_in_flight, max_header_bytes, ..Limits::default() })
    }

    #[test]
    fn admits_up_to_the_limit_and_again_once_a_permit_drops() {
        let admission = admission(2, 1024);
        let headers = HeaderMap::new();
        let a = admission.admit(&headers).unwrap();
        let _b = admission.admit(&headers).unwrap();
        assert_eq!(admission.admit(&headers).err(), Some(Refusal::Busy { max: 2 }));
        drop(a);
        assert!(admission.admit(&headers).is_ok());
    }

    #[test]
    fn counts_the_header_list_as_http2_does() {
        let mut headers = HeaderMap::new();
        headers.insert("x-a", HeaderValue::from_static("12345"));
        // 3 + 5 + 32
        assert_eq!(header_list_size(&headers), 40);
        assert!(admission(1, 40).admit(&headers).is_ok());
        let refused = admission(1, 39).admit(&headers).err();
        assert_eq!(refused, Some(Refusal::HeadersTooLarge { size: 40, max: 39 }));
        // A refused request leaves nothing counted in flight.
        let admission = admission(1, 39);
        assert!(admission.admit(&headers).is_err());
        assert!(admission.admit(&HeaderMap::new()).is_ok());
    }

    #[test]
    fn a_shed_request_says_when_to_retry() {
        let status = Refusal::Busy { max: 1 }.status();
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert_eq!(status.metadata().get("retry-after").unwrap(), "1");
        assert_eq!(status.get_details_retry_info().unwrap().retry_delay, Some(RETRY_AFTER));
        assert_eq!(Refusal::Busy { max: 1 }.http(), StatusCode::TOO_MANY_REQUESTS);
        let headers = Refusal::HeadersTooLarge { size: 2, max: 1 };
        assert_eq!(headers.http(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        assert!(headers.status().metadata().get("retry-after").is_none());
    }
}
