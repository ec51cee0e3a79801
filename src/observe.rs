//! One structured log line per request, whatever the protocol, labelled by the gRPC method
//! the call reached (JSON included). The outer [`AccessLog`] layer starts the clock and logs
//! when the response body ends; the inner [`RecordStatus`] layer, which every protocol
//! passes, reads the gRPC status from the answer's headers or trailers into the request's
//! [`CallInfo`], where the method layer (for JSON, the transcoder) has put the method. The
//! transcoder records the status of the requests it answers itself.
//!
//! The same line counts the request in the server's [`Metrics`]. A call the client gave up
//! on (an HTTP/2 reset, a closed connection: the request body failed, or the answer was
//! dropped before it was sent) is logged and counted as CANCELLED, whatever the handler or
//! the transcoder made of the broken request, so error rates measure the server, not
//! clients hanging up.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use http::uri::Authority;
use http::{HeaderMap, HeaderValue, Request, Response, header};
use http_body::{Body, Frame, SizeHint};
use tonic::Code;
use tower::{Layer, Service};

use crate::body::ResponseBody;
use crate::methods::ApiMethod;
use crate::metrics::Metrics;
use crate::request_id::{self, REQUEST_ID};
use crate::server::activity::{ActiveRequest, Activity};
use crate::server::admission::{Admission, Permit, Refusal};

pub use crate::protocol::Protocol;

#[derive(Debug)]
enum Host {
    Authority(Authority),
    Header(HeaderValue),
}

/// Facts about one call, shared between the layers through request extensions.
#[derive(Clone, Debug)]
pub struct CallInfo(Arc<CallInner>);

#[derive(Debug)]
struct CallInner {
    protocol: Protocol,
    /// The host the client addressed, kept as it came (a reference to its bytes, not a
    /// parse): every request carries one and only the AuthZEN metadata reads it.
    host: Option<Host>,
    request_id: HeaderValue,
    method: OnceLock<Arc<ApiMethod>>,
    code: OnceLock<Code>,
    /// The client gave up on the call: its request body failed to arrive.
    cancelled: AtomicBool,
    /// Why the call is refused before it is served, if it is.
    refusal: Option<Refusal>,
}

impl CallInfo {
    pub fn new<B>(request: &Request<B>) -> Self {
        CallInfo::admitted(request, None)
    }

    /// A call that admission refused for `refusal`, or let in.
    fn admitted<B>(request: &Request<B>, refusal: Option<Refusal>) -> Self {
        let host = match request.uri().authority() {
            Some(authority) => Some(Host::Authority(authority.clone())),
            None => request.headers().get(header::HOST).cloned().map(Host::Header),
        };
        CallInfo(Arc::new(CallInner {
            protocol: Protocol::of(request.headers()),
            host,
            request_id: request_id::of(request.headers()),
            method: OnceLock::new(),
            code: OnceLock::new(),
            cancelled: AtomicBool::new(false),
            refusal,
        }))
    }

    /// Why the call is refused before it is served: where each protocol answers, it answers
    /// this instead.
    pub fn refusal(&self) -> Option<Refusal> {
        self.0.refusal
    }

    /// The answer to a call admission refused, wherever it is given: counted, recorded as the
    /// call's code, and stamped with its request id.
    pub fn refused(&self, refusal: Refusal, metrics: &Metrics) -> tonic::Status {
        metrics.limited(refusal.limit());
        self.record(Code::ResourceExhausted);
        request_id::stamp_status(&refusal.status(), self.request_id())
    }

    /// The call's id: the client's `x-request-id`, or one made for it.
    pub fn request_id(&self) -> &HeaderValue {
        &self.0.request_id
    }

    pub fn protocol(&self) -> Protocol {
        self.0.protocol
    }

    /// The host the client addressed (HTTP/2's `:authority`, HTTP/1.1's `Host`), to build
    /// absolute URLs of this server from; `None` when it names none or not a valid one.
    pub fn authority(&self) -> Option<Authority> {
        match self.0.host.as_ref()? {
            Host::Authority(authority) => Some(authority.clone()),
            Host::Header(value) => Authority::try_from(value.as_bytes()).ok(),
        }
    }

    /// Records the call's gRPC method; the first record wins.
    pub fn record_method(&self, method: Arc<ApiMethod>) {
        let _ = self.0.method.set(method);
    }

    /// The gRPC method the call reached, whatever its protocol.
    pub fn method(&self) -> Option<&Arc<ApiMethod>> {
        self.0.method.get()
    }

    /// Records the call's gRPC status; the first record wins.
    pub fn record(&self, code: Code) {
        let _ = self.0.code.set(code);
    }

    pub fn code(&self) -> Option<Code> {
        self.0.code.get().copied()
    }

    fn cancel(&self) {
        self.0.cancelled.store(true, Ordering::Relaxed);
    }

    fn cancelled(&self) -> bool {
        self.0.cancelled.load(Ordering::Relaxed)
    }
}

/// The outer layer: admits each request (or says why not), and logs and counts one line per
/// request when its response body is done. The same line ends the request's share of the
/// in-flight limit and of its connection's activity.
#[derive(Clone)]
pub struct AccessLog {
    pub metrics: Arc<Metrics>,
    pub admission: Arc<Admission>,
}

impl<S> Layer<S> for AccessLog {
    type Service = AccessLogService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        AccessLogService { inner, metrics: self.metrics.clone(), admission: self.admission.clone(), connection: None }
    }
}

#[derive(Clone)]
pub struct AccessLogService<S> {
    inner: S,
    metrics: Arc<Metrics>,
    admission: Arc<Admission>,
    connection: Option<Arc<Activity>>,
}

impl<S: Clone> AccessLogService<S> {
    /// The service of one connection, which learns when its requests start and end.
    pub fn on_connection(&self, activity: Arc<Activity>) -> Self {
        AccessLogService { connection: Some(activity), ..self.clone() }
    }
}

impl<S, B> Service<Request<B>> for AccessLogService<S>
where
    S: Service<Request<Watched<B>>, Response = Response<ResponseBody>>,
    S::Future: Send + 'static,
{
    type Response = Response<ResponseBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let active = self.connection.as_ref().map(Activity::request_started);
        let (permit, refusal) = match self.admission.admit(request.headers()) {
            Ok(permit) => (Some(permit), None),
            Err(refusal) => (None, Some(refusal)),
        };
        let info = CallInfo::admitted(&request, refusal);
        let (mut parts, body) = request.into_parts();
        parts.extensions.insert(info.clone());
        self.metrics.started(info.protocol());
        let line = LogLine {
            started: Instant::now(),
            // Clones of these share their bytes; the line is formatted only if it is logged.
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            info: info.clone(),
            metrics: self.metrics.clone(),
            http_status: 0,
            answered: false,
            done: false,
            _permit: permit,
            _active: active,
        };
        let future = self.inner.call(Request::from_parts(parts, Watched { inner: body, info }));
        Box::pin(async move {
            let mut line = line;
            let mut response = future.await?;
            // On every answer, errors included, so a client can match its own id to one.
            response.headers_mut().insert(&REQUEST_ID, line.info.request_id().clone());
            line.http_status = response.status().as_u16();
            Ok(response.map(|body| ResponseBody::new(OnEnd { inner: body, line: Some(line) })))
        })
    }
}

pin_project_lite::pin_project! {
    /// A request body that marks its call cancelled when it fails: the client reset the
    /// stream or closed the connection before sending all of it.
    pub struct Watched<B> {
        #[pin]
        inner: B,
        info: CallInfo,
    }
}

impl<B: Body> Body for Watched<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.project();
        let poll = this.inner.poll_frame(cx);
        if let Poll::Ready(Some(Err(_))) = &poll {
            this.info.cancel();
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

struct LogLine {
    started: Instant,
    method: http::Method,
    uri: http::Uri,
    info: CallInfo,
    metrics: Arc<Metrics>,
    /// 0 until the service answered.
    http_status: u16,
    /// The answer's body went out to its end.
    answered: bool,
    done: bool,
    /// Released with the line: the request no longer counts in flight or keeps its
    /// connection busy.
    _permit: Option<Permit>,
    _active: Option<ActiveRequest>,
}

impl LogLine {
    fn emit(&mut self) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        // No answer, or one dropped before its end: the client went away first.
        let gone = self.http_status == 0 || !self.answered || self.info.cancelled();
        let code = if gone { Some(Code::Cancelled) } else { self.info.code() };
        let method = self.info.method();
        let elapsed = self.started.elapsed();
        // Liveness, readiness and metrics scrapes name no method and record no status: they
        // are not API calls, and only the in-flight gauge counts them.
        let call = method.is_some() || self.info.code().is_some();
        self.metrics.finished(self.info.protocol(), method.map(|m| &**m), code.filter(|_| call), elapsed);
        tracing::info!(
            target: "iamd::access",
            protocol = %self.info.protocol(),
            method = %method.map_or("", |m| m.path.trim_start_matches('/')),
            http_method = %self.method,
            path = %self.uri.path(),
            http_status = self.http_status,
            grpc_code = code.map(|c| c as i32),
            request_id = self.info.request_id().to_str().unwrap_or_default(),
            latency_us = elapsed.as_micros() as u64,
            "request"
        );
    }
}

impl Drop for LogLine {
    fn drop(&mut self) {
        self.emit();
    }
}

/// A body that runs its log line when the last frame has gone out (or the body is dropped).
struct OnEnd {
    inner: ResponseBody,
    line: Option<LogLine>,
}

impl Drop for OnEnd {
    fn drop(&mut self) {
        // An empty body or one whose last frame went out may be dropped without a final poll.
        if let Some(line) = self.line.as_mut() {
            line.answered |= self.inner.is_end_stream();
        }
    }
}

impl Body for OnEnd {
    type Data = bytes::Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let poll = Pin::new(&mut self.inner).poll_frame(cx);
        let ended = match &poll {
            Poll::Ready(None) => true,
            Poll::Ready(Some(Ok(frame))) => frame.is_trailers() || self.inner.is_end_stream(),
            _ => false,
        };
        if ended && let Some(mut line) = self.line.take() {
            // Dropping the line logs it.
            line.answered = true;
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

/// The inner layer: copies the gRPC status of every answer into the call's [`CallInfo`], and
/// puts the request id into a failed answer's `ErrorInfo`.
#[derive(Clone, Copy, Default)]
pub struct RecordStatus;

impl<S> Layer<S> for RecordStatus {
    type Service = RecordStatusService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RecordStatusService { inner }
    }
}

#[derive(Clone)]
pub struct RecordStatusService<S> {
    inner: S,
}

impl<S, B> Service<Request<B>> for RecordStatusService<S>
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
        let info = request.extensions().get::<CallInfo>().cloned();
        let future = self.inner.call(request);
        Box::pin(async move {
            let mut response = future.await?;
            let Some(info) = info else { return Ok(response) };
            if let Some(code) = code_of(response.headers()) {
                info.record(code);
                if code != Code::Ok {
                    request_id::stamp_headers(response.headers_mut(), info.request_id());
                }
                return Ok(response);
            }
            Ok(response.map(|body| ResponseBody::new(Trailers { inner: body, info })))
        })
    }
}

fn code_of(headers: &HeaderMap) -> Option<Code> {
    headers.get("grpc-status").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<i32>().ok()).map(Code::from_i32)
}

struct Trailers {
    inner: ResponseBody,
    info: CallInfo,
}

impl Body for Trailers {
    type Data = bytes::Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut poll = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &mut poll
            && let Some(trailers) = frame.trailers_mut()
            && let Some(code) = code_of(trailers)
        {
            self.info.record(code);
            if code != Code::Ok {
                request_id::stamp_headers(trailers, self.info.request_id());
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

/// Installs the process's log subscriber: one line per event on `writer`, fields as
/// `name=value` ([`PlainFields`]), `filter` deciding what is logged. The binary and the
/// benchmarks install the same one, so a benchmark pays what a server pays for its logs.
pub fn init_logging<W>(filter: tracing_subscriber::EnvFilter, ansi: bool, writer: W)
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .fmt_fields(PlainFields)
        .with_writer(writer)
        .init();
}

/// Fields as `name=value`, separated by spaces, the message without its name, control
/// characters escaped. tracing-subscriber's default does the same but styles every name and
/// `=` through its ANSI painter even when colours are off, which cost the access log line
/// (every request writes one) about as much as the rest of the request's handling in iamd.
pub struct PlainFields;

impl<'writer> tracing_subscriber::fmt::FormatFields<'writer> for PlainFields {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        writer: tracing_subscriber::fmt::format::Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        let mut visitor = PlainVisitor { writer, first: true, result: Ok(()) };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct PlainVisitor<'writer> {
    writer: tracing_subscriber::fmt::format::Writer<'writer>,
    first: bool,
    result: fmt::Result,
}

impl PlainVisitor<'_> {
    fn field(&mut self, field: &tracing::field::Field, value: impl FnOnce(&mut Escaped<'_, '_>) -> fmt::Result) {
        let name = field.name();
        // Log records bridged from the `log` crate carry their metadata as `log.*` fields.
        if self.result.is_err() || name.starts_with("log.") {
            return;
        }
        let first = std::mem::replace(&mut self.first, false);
        self.result = write_field(&mut self.writer, first, name, value);
    }
}

fn write_field(
    writer: &mut tracing_subscriber::fmt::format::Writer<'_>,
    first: bool,
    name: &str,
    value: impl FnOnce(&mut Escaped<'_, '_>) -> fmt::Result,
) -> fmt::Result {
    if !first {
        writer.write_char(' ')?;
    }
    if name != "message" {
        writer.write_str(name.strip_prefix("r#").unwrap_or(name))?;
        writer.write_char('=')?;
    }
    value(&mut Escaped(writer))
}

impl tracing::field::Visit for PlainVisitor<'_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.field(field, |w| fmt::Write::write_str(w, value));
    }

    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.field(field, |w| fmt::Write::write_fmt(w, format_args!("{value}")));
    }

    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.field(field, |w| fmt::Write::write_fmt(w, format_args!("{value}")));
    }

    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.field(field, |w| fmt::Write::write_str(w, if value { "true" } else { "false" }));
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
        self.field(field, |w| fmt::Write::write_fmt(w, format_args!("{value:?}")));
    }
}

/// A writer that escapes control characters, so that a value cannot forge a line or steer a
/// terminal.
struct Escaped<'a, 'writer>(&'a mut tracing_subscriber::fmt::format::Writer<'writer>);

impl fmt::Write for Escaped<'_, '_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        if !text.bytes().any(|b| b.is_ascii_control()) {
            return self.0.write_str(text);
        }
        for c in text.chars() {
            if c.is_ascii_control() { write!(self.0, "{}", c.escape_default())? } else { self.0.write_char(c)? }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failing test panics")]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().map_err(|_| std::io::Error::other("poisoned"))?.extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A subscriber that formats as the server does, into what it returns.
    fn capture() -> (Captured, impl tracing::Subscriber) {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .fmt_fields(PlainFields)
            .with_writer(move || writer.clone())
            .finish();
        (captured, subscriber)
    }

    /// The log lines of one request through the access log, answered by `answer`.
    fn logged(
        request: Request<http_body_util::Full<bytes::Bytes>>,
        answer: Response<ResponseBody>,
    ) -> (String, Response<ResponseBody>) {
        let (captured, subscriber) = capture();
        let metrics = Arc::new(Metrics::off());
        let answer = std::sync::Mutex::new(Some(answer));
        let inner = tower::service_fn(move |_: Request<Watched<http_body_util::Full<bytes::Bytes>>>| {
            let answer = answer.lock().ok().and_then(|mut a| a.take()).unwrap_or_default();
            std::future::ready(Ok::<_, std::convert::Infallible>(answer))
        });
        let admission = crate::server::admission::Admission::new(&crate::config::Limits::default());
        let mut service = AccessLog { metrics, admission }.layer(inner);
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let response = tracing::subscriber::with_default(subscriber, || {
            runtime.block_on(async {
                let response = service.call(request).await.unwrap();
                let (parts, body) = response.into_parts();
                let bytes = http_body_util::BodyExt::collect(body).await.unwrap().to_bytes();
                Response::from_parts(parts, crate::body::full(bytes))
            })
        });
        let bytes = captured.0.lock().map(|b| b.clone()).unwrap_or_default();
        (String::from_utf8(bytes).unwrap_or_default(), response)
    }

    #[test]
    fn the_log_line_and_the_answer_carry_the_request_id() {
        let request = |id: Option<&str>| {
            let mut request = Request::get("/v1/x");
            if let Some(id) = id {
                request = request.header("x-request-id", id);
            }
            request.body(http_body_util::Full::new(bytes::Bytes::new())).unwrap()
        };
        let (line, response) = logged(request(Some("ticket-9")), Response::new(crate::body::full("{}")));
        assert!(line.contains(" request_id=ticket-9 "), "{line}");
        assert_eq!(response.headers()["x-request-id"], "ticket-9");

        let (line, response) = logged(request(None), Response::new(crate::body::full("{}")));
        let id = response.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
        assert!(line.contains(&format!(" request_id={id} ")), "{line}");
    }

    #[test]
    fn fields_print_as_name_equals_value_with_control_characters_escaped() {
        let (captured, subscriber) = capture();
        tracing::subscriber::with_default(subscriber, || {
            let path = "/a\nfake line\u{1b}[31m";
            tracing::info!(protocol = %Protocol::Json, status = 200u64, code = Some(5), path, ok = true, "request");
        });
        let bytes = captured.0.lock().map(|b| b.clone()).unwrap_or_default();
        let text = String::from_utf8(bytes).unwrap_or_default();
        assert!(
            text.ends_with("request protocol=json status=200 code=5 path=/a\\nfake line\\u{1b}[31m ok=true\n"),
            "{text}"
        );
        assert_eq!(text.lines().count(), 1);
    }
}
