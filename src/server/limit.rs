//! One message-size limit for gRPC and gRPC-web, answered as RESOURCE_EXHAUSTED (JSON has
//! its own 413 in the transcoder). tonic's own decode limit answers OUT_OF_RANGE, so this
//! layer reads each frame header as the bytes pass and fails the body first; tonic keeps
//! a body error that is a `Status` as it is.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http::Request;
use http_body::{Body, Frame, SizeHint};
use tower::{Layer, Service};

#[derive(Clone, Copy)]
pub struct MessageLimitLayer {
    pub max: usize,
}

impl<S> Layer<S> for MessageLimitLayer {
    type Service = MessageLimit<S>;
    fn layer(&self, inner: S) -> Self::Service {
        MessageLimit { inner, max: self.max }
    }
}

#[derive(Clone)]
pub struct MessageLimit<S> {
    inner: S,
    max: usize,
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
        let max = self.max;
        let request =
            request.map(|body| tonic::body::Body::new(Limited { inner: body, max, header: Vec::new(), left: 0 }));
        Box::pin(self.inner.call(request))
    }
}

/// Passes bytes through while tracking frame boundaries: `left` bytes of the current
/// message remain, or a header of up to five bytes is being collected.
struct Limited {
    inner: tonic::body::Body,
    max: usize,
    header: Vec<u8>,
    left: usize,
}

impl Limited {
    fn check(&mut self, mut data: &[u8]) -> Result<(), tonic::Status> {
        while data.has_remaining() {
            if self.left > 0 {
                let skip = self.left.min(data.len());
                self.left -= skip;
                data.advance(skip);
                continue;
            }
            let take = (5 - self.header.len()).min(data.len());
            self.header.extend_from_slice(&data[..take]);
            data.advance(take);
            if let [_, a, b, c, d] = self.header[..] {
                let len = u32::from_be_bytes([a, b, c, d]) as usize;
                self.header.clear();
                if len > self.max {
                    return Err(tonic::Status::resource_exhausted(format!(
                        "the message is {len} bytes, larger than the limit of {} bytes",
                        self.max
                    )));
                }
                self.left = len;
            }
        }
        Ok(())
    }
}

impl Body for Limited {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        let poll = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &poll
            && let Some(data) = frame.data_ref()
        {
            let data = data.clone();
            if let Err(status) = self.check(&data) {
                return Poll::Ready(Some(Err(status)));
            }
        }
        poll
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limited(max: usize) -> Limited {
        Limited { inner: tonic::body::Body::empty(), max, header: Vec::new(), left: 0 }
    }

    fn frame(len: usize) -> Vec<u8> {
        let mut bytes = vec![0];
        bytes.extend_from_slice(&(len as u32).to_be_bytes());
        bytes.extend(std::iter::repeat_n(7u8, len));
        bytes
    }

    #[test]
    fn frames_up_to_the_limit_pass_in_any_chunking() {
        let stream: Vec<u8> = [frame(10), frame(0), frame(10)].concat();
        for chunk in [1, 2, 3, 5, 7, stream.len()] {
            let mut body = limited(10);
            for piece in stream.chunks(chunk) {
                assert!(body.check(piece).is_ok(), "chunk {chunk}");
            }
        }
    }

    #[test]
    fn a_header_over_the_limit_fails_before_the_message_arrives() {
        let mut body = limited(10);
        assert!(body.check(&frame(10)).is_ok());
        let big = frame(11);
        let error = body.check(&big[..5]).unwrap_err();
        assert_eq!(error.code(), tonic::Code::ResourceExhausted);
        // Split across chunks too.
        let mut body = limited(10);
        assert!(body.check(&big[..2]).is_ok());
        assert!(body.check(&big[2..5]).is_err());
    }
}
