//! The listener's side of the limits: how many connections are open, what HTTP/1.1 and
//! HTTP/2 allow one client (streams, resets, header sizes), and how long a connection may
//! take to send its request headers or stay open with nothing in progress.
//!
//! hyper's own header-read timeout (HTTP/1.1 only) also runs while a kept-alive connection
//! waits for its next request, which would make the idle timeout the header timeout, and
//! HTTP/2 has neither. So each connection keeps its [`Activity`]: its reads say when a
//! request's head begins, the access log says when requests start and end, and [`Timed`]
//! closes the connection when the phase it is in has lasted too long:
//! - reading a head (from accept, or from the first byte after the last answer; for HTTP/2,
//!   until its connection preface arrives): `header_read_timeout`;
//! - nothing in progress: `idle_timeout`;
//! - a request in progress: no limit here; its deadline bounds it.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio::time::Sleep;

use super::activity::{Activity, Reads, Timeouts};
use super::dispatch;
use crate::config::Limits;
use crate::metrics::{Limit, Metrics};
use crate::observe::AccessLogService;

/// How long an idle connection may take to close gracefully before it is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// What a connection beyond the limit is answered before it is closed.
const REFUSED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
retry-after: 1\r\nconnection: close\r\ncontent-length: 82\r\n\r\n\
{\"code\":14,\"message\":\"iamd has its limit of connections open; retry\",\"details\":[]}";

pin_project_lite::pin_project! {
    /// A connection's reads, reported to its [`Activity`].
    struct Tracked {
        #[pin]
        stream: TcpStream,
        activity: Arc<Activity>,
        reads: Reads,
    }
}

impl AsyncRead for Tracked {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        ready!(this.stream.poll_read(cx, buf))?;
        if let Some(bytes) = buf.filled().get(before..).filter(|bytes| !bytes.is_empty()) {
            this.reads.read(bytes, this.activity);
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.project().stream.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().stream.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().stream.poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.project().stream.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

type Service = AccessLogService<dispatch::Dispatch>;
type Connection = auto::UpgradeableConnection<'static, TokioIo<Tracked>, TowerToHyperService<Service>, TokioExecutor>;

pin_project_lite::pin_project! {
    /// A connection under its phase's time limit. The timer is re-armed in the connection's
    /// own poll, right after the reads that may move the limit earlier; a limit that moved
    /// later is found when the timer fires early, and the timer is set again.
    struct Timed {
        #[pin]
        connection: Connection,
        #[pin]
        timer: Sleep,
        activity: Arc<Activity>,
        timeouts: Timeouts,
        metrics: Arc<Metrics>,
        // The connection timed out and is closing; it is dropped if not closed by then.
        closing: Option<Instant>,
    }
}

impl Timed {
    fn graceful_shutdown(self: Pin<&mut Self>) {
        self.project().connection.graceful_shutdown();
    }
}

impl Future for Timed {
    type Output = Result<(), Box<dyn std::error::Error + Send + Sync>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            if let Poll::Ready(done) = this.connection.as_mut().poll(cx) {
                return Poll::Ready(done);
            }
            if let Some(close_by) = *this.closing {
                if this.timer.deadline().into_std() != close_by {
                    this.timer.as_mut().reset(close_by.into());
                }
                // Dropping the connection closes it.
                ready!(this.timer.as_mut().poll(cx));
                return Poll::Ready(Ok(()));
            }
            let phase = this.activity.deadline(this.timeouts);
            if let Some((due, _)) = phase
                && due < this.timer.deadline().into_std()
            {
                this.timer.as_mut().reset(due.into());
            }
            ready!(this.timer.as_mut().poll(cx));
            // The timer fired: the phase may have moved on since it was set.
            let now = Instant::now();
            match this.activity.deadline(this.timeouts) {
                // Half a head: nothing to finish, and hyper would wait for the rest.
                Some((due, Limit::HeaderReadTimeout)) if due <= now => {
                    this.metrics.limited(Limit::HeaderReadTimeout);
                    return Poll::Ready(Ok(()));
                }
                // Idle: HTTP/2 says GOAWAY first, so the client opens no stream meanwhile.
                Some((due, limit)) if due <= now => {
                    this.metrics.limited(limit);
                    *this.closing = Some(now + CLOSE_GRACE);
                    this.connection.as_mut().graceful_shutdown();
                }
                Some((due, _)) => this.timer.as_mut().reset(due.into()),
                // A request is in progress: look again once it could have become idle.
                None => this.timer.as_mut().reset((now + this.timeouts.idle).into()),
            }
        }
    }
}

/// The listening socket, its accept queue as long as `max_connections` (the kernel caps it
/// at `net.core.somaxconn`): with the usual 1,024, a burst of new connections beyond it waits
/// in the client's SYN retransmissions, seconds, before the accept loop can take it.
pub fn listen(addr: std::net::SocketAddr, limits: &Limits) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(u32::try_from(limits.max_connections).unwrap_or(u32::MAX))
}

/// Accepts connections until `stop`, then waits up to `grace` for in-flight requests.
pub async fn accept(
    listener: TcpListener,
    service: Service,
    limits: &Limits,
    metrics: Arc<Metrics>,
    grace: Duration,
    mut stop: oneshot::Receiver<()>,
) {
    let builder = builder(limits);
    let timeouts = Timeouts { header_read: limits.header_read_timeout, idle: limits.idle_timeout };
    let open = Arc::new(AtomicUsize::new(0));
    // Each connection holds a receiver; all of them gone means every connection closed.
    let (stopping, stopped) = watch::channel(());
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: keep serving the others.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut stop => break,
        };
        if open.load(Ordering::Relaxed) >= limits.max_connections {
            metrics.limited(Limit::Connections);
            refuse(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        let activity = Activity::new();
        let io = TokioIo::new(Tracked { stream, activity: activity.clone(), reads: Reads::default() });
        let service = TowerToHyperService::new(service.on_connection(activity.clone()));
        let connection = builder.serve_connection_with_upgrades(io, service).into_owned();
        let timer = tokio::time::sleep_until((activity.born() + timeouts.header_read).into());
        let timed = Timed { connection, timer, activity, timeouts, metrics: metrics.clone(), closing: None };
        let open = Counted::new(&open, &metrics);
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            let _open = open;
            tokio::pin!(timed);
            let done = tokio::select! {
                done = timed.as_mut() => Some(done),
                _ = stopped.changed() => None,
            };
            let done = match done {
                Some(done) => done,
                None => {
                    timed.as_mut().graceful_shutdown();
                    timed.await
                }
            };
            if let Err(e) = done {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    drop(stopped);
    tracing::info!("stopping: waiting for in-flight requests");
    let _ = stopping.send(());
    if tokio::time::timeout(grace, stopping.closed()).await.is_err() {
        tracing::warn!(?grace, "in-flight requests did not finish in time");
    }
}

/// The HTTP/1.1 and HTTP/2 settings that bound one client. The header limits here are eight
/// times the configured one: a backstop against headers the server should not even hold
/// (answered 431 by the transport, with no body), while the admission layer answers the
/// configured limit exactly, in each protocol's own form.
fn builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let backstop = limits.max_header_bytes.saturating_mul(8);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // HTTP/1.1 reads a head into its buffer: a head that fills it is answered 431.
    builder.http1().max_buf_size(backstop.max(8192));
    builder
        .http2()
        .max_concurrent_streams(limits.max_concurrent_streams)
        .max_pending_accept_reset_streams(limits.max_pending_resets)
        .max_local_error_reset_streams(limits.max_error_resets)
        .max_header_list_size(u32::try_from(backstop).unwrap_or(u32::MAX));
    builder
}

/// Answers a connection over the limit 503 and closes it, without waiting on the client.
fn refuse(stream: TcpStream) {
    // Reading what already arrived first keeps the close from resetting the answer away.
    let mut scratch = [0u8; 4096];
    let _ = stream.try_read(&mut scratch);
    let _ = stream.try_write(REFUSED);
}

/// An open connection, counted until it drops.
struct Counted {
    open: Arc<AtomicUsize>,
    metrics: Arc<Metrics>,
}

impl Counted {
    fn new(open: &Arc<AtomicUsize>, metrics: &Arc<Metrics>) -> Counted {
        open.fetch_add(1, Ordering::Relaxed);
        metrics.connections(1);
        Counted { open: open.clone(), metrics: metrics.clone() }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
        self.metrics.connections(-1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_is_a_complete_answer() {
        let text = std::str::from_utf8(REFUSED).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())), "{head}");
        let status: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(status["code"], 14);
    }
}
