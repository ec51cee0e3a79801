//! gRPC-web-text request bodies, decoded before tonic-web sees them.
//!
//! tonic-web decodes base64 four characters at a time as they arrive and answers INTERNAL
//! to whatever it cannot decode: the newline `base64` prints at the end, line-wrapped
//! base64, padding between two separately encoded chunks, or a client's garbage. This
//! layer sits in front of tonic-web on the gRPC-web branch: binary requests pass as they
//! are, and it decodes the bodies of text requests itself: ASCII whitespace anywhere is
//! skipped, each group of four may end padded (chunks may follow each other), a
//! final group may be left unpadded, and a group may be split across body frames. tonic-web
//! then gets binary gRPC-web; the answer stays text when the request's `accept` asks for it,
//! as before.
//!
//! Bytes that are not base64 are the client's fault, but tonic-web turns any body error
//! into INTERNAL. So the body keeps the INVALID_ARGUMENT it failed with, and the layer
//! answers that instead, trailers-only as tonic-web answers an error (HTTP 200,
//! `grpc-status` in the headers). A unary call has read its whole body before it answers,
//! so this always applies there; a streaming call that has begun to answer keeps
//! tonic-web's status.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use bytes::{Bytes, BytesMut};
use futures_util::future::Either;
use http::{HeaderMap, HeaderValue, Request, Response, header};
use http_body::{Body, Frame};
use tonic::codegen::StdError;
use tonic::{Code, Status};
use tower::{Layer, Service};

use crate::body::ResponseBody;
use crate::observe::CallInfo;

const TEXT: &str = "application/grpc-web-text";
const TEXT_PROTO: &str = "application/grpc-web-text+proto";

#[derive(Clone, Copy, Default)]
pub struct GrpcWebTextLayer;

impl<S> Layer<S> for GrpcWebTextLayer {
    type Service = GrpcWebText<S>;
    fn layer(&self, inner: S) -> Self::Service {
        GrpcWebText { inner }
    }
}

/// Binary gRPC-web, the common case, passes as it is; text is decoded on its way in.
#[derive(Clone)]
pub struct GrpcWebText<S> {
    inner: S,
}

type TextFuture<E> = Pin<Box<dyn Future<Output = Result<Response<ResponseBody>, E>> + Send>>;

impl<S, B, E> Service<Request<B>> for GrpcWebText<S>
where
    S: Service<Request<B>, Response = Response<ResponseBody>, Error = E>
        + Service<Request<Base64Body<B>>, Response = Response<ResponseBody>, Error = E>,
    <S as Service<Request<Base64Body<B>>>>::Future: Send + 'static,
    B: Body<Data = Bytes> + Unpin + Send + 'static,
    B::Error: Into<StdError>,
{
    type Response = Response<ResponseBody>;
    type Error = E;
    type Future = Either<<S as Service<Request<B>>>::Future, TextFuture<E>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), E>> {
        Service::<Request<B>>::poll_ready(&mut self.inner, cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // Exactly the content types tonic-web reads as text, and their binary twins: what
        // tonic-web does not take for gRPC-web at all, it answers itself.
        let binary = match content_type(request.headers()) {
            Some(TEXT) => "application/grpc-web",
            Some(TEXT_PROTO) => "application/grpc-web+proto",
            _ => return Either::Left(Service::<Request<B>>::call(&mut self.inner, request)),
        };
        let answer_type = match header_str(request.headers(), header::ACCEPT) {
            Some(TEXT | TEXT_PROTO) => TEXT_PROTO,
            _ => "application/grpc-web+proto",
        };
        let failure = Arc::new(OnceLock::new());
        let (mut parts, body) = request.into_parts();
        parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(binary));
        parts.headers.remove(header::CONTENT_LENGTH);
        let body = Base64Body {
            inner: body,
            decoder: Decoder::default(),
            failure: failure.clone(),
            info: parts.extensions.get::<CallInfo>().cloned(),
            done: false,
        };
        let future = Service::<Request<Base64Body<B>>>::call(&mut self.inner, Request::from_parts(parts, body));
        Either::Right(Box::pin(async move {
            let response = future.await?;
            Ok(match failure.get() {
                Some(status) => trailers_only(status, answer_type),
                None => response,
            })
        }))
    }
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn content_type(headers: &HeaderMap) -> Option<&str> {
    header_str(headers, header::CONTENT_TYPE)
}

/// An error answered the way tonic-web answers one before any message.
fn trailers_only(status: &Status, content_type: &'static str) -> Response<ResponseBody> {
    let mut response = status.clone().into_http::<ResponseBody>();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// The request body, base64-decoded frame by frame. tonic-web takes it as it is, so the
/// request body is boxed once, by tonic-web, not once more here.
pub struct Base64Body<B> {
    inner: B,
    decoder: Decoder,
    /// Where the layer finds the client's error after the call.
    failure: Arc<OnceLock<Status>>,
    /// The access log's record of the call: the client's error is the call's status, not the
    /// INTERNAL tonic-web makes of it.
    info: Option<CallInfo>,
    done: bool,
}

impl<B> Base64Body<B> {
    fn fail(&mut self, message: String) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let mut status = Status::invalid_argument(message);
        if let Some(info) = &self.info {
            info.record(Code::InvalidArgument);
            status = crate::request_id::stamp_status(&status, info.request_id());
        }
        let _ = self.failure.set(status.clone());
        self.done = true;
        Poll::Ready(Some(Err(status)))
    }
}

impl<B> Body for Base64Body<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<StdError>,
{
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        loop {
            if self.done {
                return Poll::Ready(None);
            }
            let frame = match Pin::new(&mut self.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(frame))) => frame,
                Poll::Ready(Some(Err(e))) => {
                    self.done = true;
                    return Poll::Ready(Some(Err(Status::from_error(e.into()))));
                }
                Poll::Ready(None) => {
                    self.done = true;
                    let mut out = BytesMut::new();
                    return match self.decoder.finish(&mut out) {
                        Err(message) => self.fail(message),
                        Ok(()) if out.is_empty() => Poll::Ready(None),
                        Ok(()) => Poll::Ready(Some(Ok(Frame::data(out.freeze())))),
                    };
                }
            };
            let data = match frame.into_data() {
                Ok(data) => data,
                // HTTP trailers are not base64; they pass as they are.
                Err(frame) => return Poll::Ready(Some(Ok(frame))),
            };
            let mut out = BytesMut::with_capacity(data.len() / 4 * 3 + 3);
            if let Err(message) = self.decoder.feed(&data, &mut out) {
                return self.fail(message);
            }
            // A frame of whitespace, or less than a group, decodes to nothing yet.
            if !out.is_empty() {
                return Poll::Ready(Some(Ok(Frame::data(out.freeze()))));
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        // A group still open must be decoded or refused first.
        self.done || (self.inner.is_end_stream() && self.decoder.filled == 0)
    }
}

/// The standard alphabet. Padding is optional (a final group may lack it), and bits past the
/// last byte of a group are ignored, as browsers' `atob` ignores them.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Base64 as a stream, whatever the frames it comes in. The base64 crate decodes whole texts
/// only, so this scan leaves whitespace out, ends a text at each padded group (another may
/// follow), keeps up to three characters of a group for the next frame, and says where the
/// input goes wrong.
#[derive(Default)]
struct Decoder {
    /// Characters of a group not yet complete, `=` included.
    partial: [u8; 3],
    filled: usize,
    /// `=` among them; only the last one or two of a group may be `=`.
    padding: usize,
    /// Bytes read, for error messages.
    offset: usize,
}

impl Decoder {
    fn feed(&mut self, input: &[u8], out: &mut BytesMut) -> Result<(), String> {
        // This frame's characters after the group the last one left open, whitespace left out.
        let mut text = Vec::with_capacity(self.filled + input.len());
        text.extend_from_slice(self.partial.get(..self.filled).unwrap_or_default());
        for &byte in input {
            let at = self.offset;
            self.offset += 1;
            match byte {
                _ if byte.is_ascii_whitespace() => continue,
                b'=' if text.len() % 4 < 2 => {
                    return Err(error(at, "`=` before the third character of a group of four"));
                }
                b'=' => self.padding += 1,
                _ if !(byte.is_ascii_alphanumeric() || byte == b'+' || byte == b'/') => {
                    let shown = [byte].escape_ascii().to_string();
                    return Err(error(at, &format!("`{shown}` is not a base64 character")));
                }
                _ if self.padding > 0 => return Err(error(at, "a character after `=` in a group of four")),
                _ => {}
            }
            text.push(byte);
            if self.padding > 0 && text.len() % 4 == 0 {
                decode(&text, out, self.offset)?;
                text.clear();
                self.padding = 0;
            }
        }
        let (groups, rest) = text.split_at(text.len() - text.len() % 4);
        decode(groups, out, self.offset)?;
        if let Some(partial) = self.partial.get_mut(..rest.len()) {
            partial.copy_from_slice(rest);
        }
        self.filled = rest.len();
        Ok(())
    }

    /// The end of the body: a final group may lack its padding, but one character is no
    /// byte at all.
    fn finish(&mut self, out: &mut BytesMut) -> Result<(), String> {
        if self.filled - self.padding == 1 {
            return Err(error(self.offset, "the body ends one character into a group of four"));
        }
        let partial = self.partial;
        decode(partial.get(..self.filled).unwrap_or_default(), out, self.offset)
    }
}

/// Appends the bytes of `text`: whole groups, the last of them perhaps padded, or a final
/// group without its padding.
fn decode(text: &[u8], out: &mut BytesMut, offset: usize) -> Result<(), String> {
    if text.is_empty() {
        return Ok(());
    }
    let start = out.len();
    out.resize(start + text.len().div_ceil(4) * 3, 0);
    // The scan let through only what the crate decodes; an error here would be a bug of ours.
    let written = BASE64
        .decode_slice(text, out.get_mut(start..).unwrap_or_default())
        .map_err(|e| error(offset, &e.to_string()))?;
    out.truncate(start + written);
    Ok(())
}

fn error(at: usize, what: &str) -> String {
    format!("the gRPC-web-text request body is not base64: {what}, at byte {at}")
}

#[cfg(test)]
mod tests {
    use http_body_util::{BodyExt, StreamBody};

    use super::*;

    const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

    fn decode_in_pieces(text: &[u8], piece: usize) -> Result<Vec<u8>, String> {
        let mut decoder = Decoder::default();
        let mut out = BytesMut::new();
        for chunk in text.chunks(piece.max(1)) {
            decoder.feed(chunk, &mut out)?;
        }
        decoder.finish(&mut out)?;
        Ok(out.to_vec())
    }

    fn decode(text: &str) -> Result<Vec<u8>, String> {
        decode_in_pieces(text.as_bytes(), text.len())
    }

    #[test]
    fn decodes_what_encoders_print_in_any_chunking() {
        let message: Vec<u8> = (0u8..=255).chain(0..17).collect();
        let encoded = B64.encode(&message);
        let wrapped: String =
            encoded.as_bytes().chunks(76).map(|line| format!("{}\r\n", String::from_utf8_lossy(line))).collect();
        for text in [encoded.clone(), format!("{encoded}\n"), format!(" \t{encoded}\r\n"), wrapped] {
            for piece in [1, 2, 3, 5, 7, 64, text.len()] {
                assert_eq!(decode_in_pieces(text.as_bytes(), piece).as_deref(), Ok(&message[..]), "{piece}");
            }
        }
    }

    #[test]
    fn padded_chunks_may_follow_each_other_and_the_last_may_go_unpadded() {
        let text = format!("{}{}\n{}", B64.encode(b"a"), B64.encode(b"bc"), B64.encode(b"def"));
        assert_eq!(decode(&text).unwrap(), b"abcdef");
        assert_eq!(decode("YWJjZA").unwrap(), b"abcd");
        assert_eq!(decode("YWJjZGU").unwrap(), b"abcde");
        assert_eq!(decode("YWJjZGU=").unwrap(), b"abcde");
        // Bits past the last byte are ignored, as `atob` ignores them.
        assert_eq!(decode("YR==").unwrap(), b"a");
        assert_eq!(decode("").unwrap(), b"");
        assert_eq!(decode(" \r\n").unwrap(), b"");
    }

    #[test]
    fn anything_else_is_refused_with_where_it_was() {
        for (text, says) in [
            ("YWJj!", "`!` is not a base64 character, at byte 4"),
            ("YW-j", "`-` is not a base64 character"),
            ("YWJj\u{e9}", "`\\xc3` is not a base64 character"),
            ("YWJjZ", "ends one character into a group"),
            ("Y===", "`=` before the third character"),
            ("=YWJ", "`=` before the third character"),
            ("YW=j", "a character after `=`"),
            ("YWJjZA==ZA=x", "a character after `=`"),
        ] {
            let error = decode(text).unwrap_err();
            assert!(error.contains(says), "{text}: {error}");
            assert!(error.starts_with("the gRPC-web-text request body is not base64: "), "{error}");
        }
    }

    fn body(frames: &[&'static str]) -> Base64Body<tonic::body::Body> {
        let frames: Vec<Result<Frame<Bytes>, Status>> =
            frames.iter().map(|f| Ok(Frame::data(Bytes::from_static(f.as_bytes())))).collect();
        Base64Body {
            inner: tonic::body::Body::new(StreamBody::new(tokio_stream::iter(frames))),
            decoder: Decoder::default(),
            failure: Arc::new(OnceLock::new()),
            info: None,
            done: false,
        }
    }

    #[tokio::test]
    async fn the_body_decodes_across_frames_and_keeps_its_error() {
        let collected = body(&["AAAA", "AAVo\r", "\nZWxsbw", "==\n"]).collect().await.unwrap().to_bytes();
        assert_eq!(&collected[..], b"\0\0\0\0\x05hello");
        let failing = body(&["AAAA", "AA*A"]);
        let failure = failing.failure.clone();
        let error = failing.collect().await.unwrap_err();
        assert_eq!(error.code(), Code::InvalidArgument);
        assert_eq!(failure.get().map(Status::code), Some(Code::InvalidArgument));
    }
}
