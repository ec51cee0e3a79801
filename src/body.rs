//! The response body every layer of the server answers with, on every protocol: tonic's,
//! so gRPC answers pass through unchanged and the other protocols' answers fit beside them.

use bytes::Bytes;
use http_body_util::Full;

pub type ResponseBody = tonic::body::Body;

/// A body of these bytes.
pub fn full(bytes: impl Into<Bytes>) -> ResponseBody {
    ResponseBody::new(Full::new(bytes.into()))
}
