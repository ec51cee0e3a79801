//! The response body every layer of the server answers with, on every protocol: tonic's,
//! so gRPC answers pass through unchanged and the other protocols' answers fit beside them.

use bytes::Bytes;
use http_body_util::Full;

pub type ResponseBody = tonic::body::Body;

/// A body of these bytes.
pub fn full(bytes: impl Into<Bytes>) -> ResponseBody {
    ResponseBody::new(Full::new(bytes.into()))
}

/// Why a body does not start with a gRPC frame whose message can be read.
#[derive(Debug, PartialEq, Eq)]
pub enum FrameError {
    /// Fewer bytes than the frame's header says.
    Short,
    /// The frame is compressed.
    Compressed,
}

/// The message of the gRPC frame `bytes` starts with, and what follows it.
pub fn split_frame(mut bytes: Bytes) -> Result<(Bytes, Bytes), FrameError> {
    use bytes::Buf;
    if bytes.len() < 5 {
        return Err(FrameError::Short);
    }
    let compressed = bytes.get_u8();
    let length = bytes.get_u32() as usize;
    if compressed != 0 {
        return Err(FrameError::Compressed);
    }
    if bytes.len() < length {
        return Err(FrameError::Short);
    }
    let message = bytes.split_to(length);
    Ok((message, bytes))
}
