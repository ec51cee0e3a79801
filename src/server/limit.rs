//! One message-size limit for gRPC and gRPC-web, answered as RESOURCE_EXHAUSTED (JSON has
//! its own 413 in the transcoder), and the framing of every request stream checked as it
//! passes. tonic answers INTERNAL to a body that ends inside a frame, to a frame flag it does
//! not know and to a unary call without its message, and its own decode limit answers
//! OUT_OF_RANGE; all of these are the client's fault. So this layer reads each frame header
//! as the bytes pass and fails the body first with the right code: tonic keeps a body error
//! that is a `Status` as it is. It sits in the inner stack, below tonic-web, so native gRPC
//! and gRPC-web (binary or text, once decoded) are held to the same rules.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http::Request;
use http_body::{Body, Frame, SizeHint};
use tower::{Layer, Service};

use crate::metrics::{Limit, Metrics};
use crate::observe::CallInfo;

#[derive(Clone)]
pub struct MessageLimitLayer {
    max: usize,
    metrics: Arc<Metrics>,
}

impl MessageLimitLayer {
    pub fn new(max: usize, metrics: Arc<Metrics>) -> Self {
        MessageLimitLayer { max, metrics }
    }
}

impl<S> Layer<S> for MessageLimitLayer {
    type Service = MessageLimit<S>;
    fn layer(&self, inner: S) -> Self::Service {
        MessageLimit { inner, max: self.max, metrics: self.metrics.clone() }
    }
}

#[derive(Clone)]
pub struct MessageLimit<S> {
    inner: S,
    max: usize,
    metrics: Arc<Metrics>,
}

impl<S> Service<Request<tonic::body::Body>> for MessageLimit<S>
where
    S: Service<Request<tonic::body::Body>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<tonic::body::Body>) -> Self::Future {
        let rules = Rules {
            max: self.max,
            // The method layer above named the call; a method that does not stream its request
            // takes exactly one message.
            one_message: request
                .extensions()
                .get::<CallInfo>()
                .and_then(CallInfo::method)
                .is_some_and(|m| m.takes_one_message()),
            // tonic refuses an encoding it does not support before it reads the body.
            compressed: request.headers().get("grpc-encoding").is_some_and(|v| v != "identity"),
        };
        let metrics = self.metrics.clone();
        let request = request.map(|body| tonic::body::Body::new(Limited::new(body, rules).counted(metrics)));
        Box::pin(self.inner.call(request))
    }
}

/// What a request stream must keep to.
#[derive(Clone, Copy)]
struct Rules {
    max: usize,
    /// Exactly one message, as a method that does not stream its request takes.
    one_message: bool,
    /// The request names a `grpc-encoding`, so a message may be compressed.
    compressed: bool,
}

/// Passes bytes through while tracking frame boundaries: `left` bytes of the current
/// message remain, or a header of up to five bytes is being collected.
struct Limited {
    inner: tonic::body::Body,
    rules: Rules,
    header: [u8; 5],
    /// Bytes of `header` collected so far.
    header_len: usize,
    left: usize,
    /// Frame headers read so far.
    messages: usize,
    /// An error has been answered; the stream is over.
    failed: bool,
    /// Where a message over the limit is counted.
    metrics: Option<Arc<Metrics>>,
}

impl Limited {
    fn new(inner: tonic::body::Body, rules: Rules) -> Self {
        Limited { inner, rules, header: [0; 5], header_len: 0, left: 0, messages: 0, failed: false, metrics: None }
    }

    fn counted(self, metrics: Arc<Metrics>) -> Self {
        Limited { metrics: Some(metrics), ..self }
    }

    fn check(&mut self, mut data: &[u8]) -> Result<(), tonic::Status> {
        while data.has_remaining() {
            if self.left > 0 {
                let skip = self.left.min(data.len());
                self.left -= skip;
                data.advance(skip);
                continue;
            }
            let take = (5 - self.header_len).min(data.len());
            if let Some(slot) = self.header.get_mut(self.header_len..self.header_len + take) {
                slot.copy_from_slice(&data[..take]);
            }
            self.header_len += take;
            data.advance(take);
            if self.header_len == 5 {
                let [flag, a, b, c, d] = self.header;
                let len = u32::from_be_bytes([a, b, c, d]) as usize;
                self.header_len = 0;
                self.messages += 1;
                match flag {
                    0 => {}
                    1 if self.rules.compressed => {}
                    1 => {
                        return Err(tonic::Status::invalid_argument(
                            "a message is marked compressed, but the request names no grpc-encoding",
                        ));
                    }
                    other => {
                        return Err(tonic::Status::invalid_argument(format!(
                            "a message frame starts with flag byte {other}; only 0 and 1 are defined"
                        )));
                    }
                }
                if self.rules.one_message && self.messages > 1 {
                    return Err(tonic::Status::invalid_argument(
                        "the method takes one request message, and the request carries more",
                    ));
                }
                if len > self.rules.max {
                    if let Some(metrics) = &self.metrics {
                        metrics.limited(Limit::BodyBytes);
                    }
                    return Err(tonic::Status::resource_exhausted(format!(
                        "the message is {len} bytes, larger than the limit of {} bytes",
                        self.rules.max
                    )));
                }
                self.left = len;
            }
        }
        Ok(())
    }

    /// The stream may end here: between frames, with a message if it needs one.
    fn may_end(&self) -> bool {
        self.header_len == 0 && self.left == 0 && !(self.rules.one_message && self.messages == 0)
    }

    /// What is wrong with the stream if it ended here.
    fn end_error(&self) -> Option<tonic::Status> {
        if self.may_end() {
            return None;
        }
        if self.header_len > 0 || self.left > 0 {
            return Some(tonic::Status::invalid_argument(format!(
                "the request ends inside a message frame: {} more bytes were announced",
                if self.left > 0 { self.left } else { 5 - self.header_len }
            )));
        }
        Some(tonic::Status::invalid_argument("the request carries no message; the method takes one"))
    }
}

impl Body for Limited {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        if self.failed {
            return Poll::Ready(None);
        }
        let poll = Pin::new(&mut self.inner).poll_frame(cx);
        let error = match &poll {
            Poll::Ready(Some(Ok(frame))) => frame.data_ref().and_then(|data| self.check(data).err()),
            Poll::Ready(None) => self.end_error(),
            _ => None,
        };
        if let Some(status) = error {
            self.failed = true;
            return Poll::Ready(Some(Err(status)));
        }
        poll
    }

    fn is_end_stream(&self) -> bool {
        // Not over while the end would still be an error to answer (an empty body included).
        self.failed || (self.inner.is_end_stream() && self.may_end())
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;
    use tonic::Code;

    use super::*;

    const STREAM: Rules = Rules { max: 10, one_message: false, compressed: false };
    const UNARY: Rules = Rules { max: 10, one_message: true, compressed: false };

    fn limited(rules: Rules) -> Limited {
        Limited::new(tonic::body::Body::empty(), rules)
    }

    fn frame(len: usize) -> Vec<u8> {
        let mut bytes = vec![0];
        bytes.extend_from_slice(&(len as u32).to_be_bytes());
        bytes.extend(std::iter::repeat_n(7u8, len));
        bytes
    }

    /// Everything a body of `bytes` answers, read as tonic reads it.
    async fn read(bytes: Vec<u8>, rules: Rules) -> Result<usize, tonic::Status> {
        let inner = tonic::body::Body::new(http_body_util::Full::new(Bytes::from(bytes)));
        let collected = Limited::new(inner, rules).collect().await?;
        Ok(collected.to_bytes().len())
    }

    #[test]
    fn frames_up_to_the_limit_pass_in_any_chunking() {
        let stream: Vec<u8> = [frame(10), frame(0), frame(10)].concat();
        for chunk in [1, 2, 3, 5, 7, stream.len()] {
            let mut body = limited(STREAM);
            for piece in stream.chunks(chunk) {
                assert!(body.check(piece).is_ok(), "chunk {chunk}");
            }
            assert!(body.end_error().is_none(), "chunk {chunk}");
        }
    }

    #[test]
    fn a_header_over_the_limit_fails_before_the_message_arrives() {
        let mut body = limited(STREAM);
        assert!(body.check(&frame(10)).is_ok());
        let big = frame(11);
        let error = body.check(&big[..5]).unwrap_err();
        assert_eq!(error.code(), Code::ResourceExhausted);
        // Split across chunks too.
        let mut body = limited(STREAM);
        assert!(body.check(&big[..2]).is_ok());
        assert!(body.check(&big[2..5]).is_err());
    }

    #[tokio::test]
    async fn a_stream_that_ends_inside_a_frame_is_invalid_argument() {
        for bytes in [vec![0, 0, 0], vec![0, 0, 0, 0, 4, 1, 2], [frame(2), vec![0]].concat()] {
            let error = read(bytes.clone(), STREAM).await.unwrap_err();
            assert_eq!(error.code(), Code::InvalidArgument, "{bytes:?}: {error:?}");
            assert!(error.message().starts_with("the request ends inside a message frame"), "{error:?}");
        }
        assert_eq!(read([frame(2), frame(0)].concat(), STREAM).await.unwrap(), 12);
    }

    #[tokio::test]
    async fn unknown_flags_and_compression_without_an_encoding_are_invalid_argument() {
        for flag in [1, 2, 0x80, 0xff] {
            let mut bytes = frame(1);
            bytes[0] = flag;
            let error = read(bytes, STREAM).await.unwrap_err();
            assert_eq!(error.code(), Code::InvalidArgument, "flag {flag}: {error:?}");
        }
        let mut compressed = frame(1);
        compressed[0] = 1;
        assert!(read(compressed, Rules { compressed: true, ..STREAM }).await.is_ok());
    }

    #[tokio::test]
    async fn a_unary_request_is_exactly_one_message() {
        assert_eq!(read(frame(3), UNARY).await.unwrap(), 8);
        for bytes in [Vec::new(), [frame(1), frame(1)].concat()] {
            let error = read(bytes.clone(), UNARY).await.unwrap_err();
            assert_eq!(error.code(), Code::InvalidArgument, "{bytes:?}: {error:?}");
        }
        // An empty body is not over before it has said so.
        assert!(!limited(UNARY).is_end_stream());
        assert!(limited(STREAM).is_end_stream());
        assert_eq!(read(Vec::new(), STREAM).await.unwrap(), 0);
    }
}
