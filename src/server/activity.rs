//! One connection's phase, as its reads and its requests move it: reading a request's head,
//! serving requests, or idle. The connection's timer (`connection::Timed`) reads it to know
//! which time limit applies and since when; it holds only atomics, as the reads, the requests
//! (through the access log) and the timer may run on different threads.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::metrics::Limit;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Not reading a head.
const NONE: u64 = u64::MAX;

/// One connection's phase, shared by its reads, its requests and its timer.
pub struct Activity {
    born: Instant,
    /// Requests in progress.
    active: AtomicUsize,
    /// When the last request in progress ended, in ms since `born`.
    idle_since: AtomicU64,
    /// When the head being read began, in ms since `born`; [`NONE`] when none is.
    head_since: AtomicU64,
}

/// What a connection's reads have shown: whether it speaks HTTP/2. Owned by its reader, so
/// a read of an HTTP/2 connection touches no shared state.
#[derive(Default)]
pub struct Reads {
    seen: bool,
    /// The first bytes were the HTTP/2 preface: later reads are frames, not heads.
    http2: bool,
}

impl Reads {
    /// Bytes arrived: the first ones tell HTTP/2 (idle once its preface is in) from
    /// HTTP/1.1, where the first ones after the last answer begin the next head.
    pub fn read(&mut self, bytes: &[u8], activity: &Activity) {
        if !std::mem::replace(&mut self.seen, true) {
            self.http2 = bytes.starts_with(PREFACE);
            if self.http2 {
                activity.idle_since.store(activity.millis(Instant::now()), Ordering::Release);
                activity.head_since.store(NONE, Ordering::Release);
            }
        } else if !self.http2 {
            activity.head_bytes();
        }
    }
}

impl Activity {
    pub fn new() -> Arc<Activity> {
        Arc::new(Activity {
            born: Instant::now(),
            active: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            // A new connection owes its first head (or preface).
            head_since: AtomicU64::new(0),
        })
    }

    /// When the connection was accepted.
    pub fn born(&self) -> Instant {
        self.born
    }

    fn millis(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.born).as_millis()).unwrap_or(NONE - 1)
    }

    /// A request's head has arrived; the connection is busy until the guard drops.
    pub fn request_started(self: &Arc<Self>) -> ActiveRequest {
        self.active.fetch_add(1, Ordering::AcqRel);
        self.head_since.store(NONE, Ordering::Release);
        ActiveRequest(self.clone())
    }

    /// HTTP/1.1 bytes arrived: with nothing in progress, they begin the next head.
    fn head_bytes(&self) {
        if self.active.load(Ordering::Acquire) == 0 && self.head_since.load(Ordering::Acquire) == NONE {
            self.head_since.store(self.millis(Instant::now()), Ordering::Release);
        }
    }

    /// When the current phase runs out, and which limit that is; `None` while a request is
    /// in progress.
    pub fn deadline(&self, limits: &Timeouts) -> Option<(Instant, Limit)> {
        if self.active.load(Ordering::Acquire) > 0 {
            return None;
        }
        let at = |ms: u64, limit: Duration| self.born + Duration::from_millis(ms) + limit;
        match self.head_since.load(Ordering::Acquire) {
            NONE => Some((at(self.idle_since.load(Ordering::Acquire), limits.idle), Limit::IdleTimeout)),
            head => Some((at(head, limits.header_read), Limit::HeaderReadTimeout)),
        }
    }
}

/// A request in progress on a connection.
pub struct ActiveRequest(Arc<Activity>);

impl Drop for ActiveRequest {
    fn drop(&mut self) {
        let activity = &self.0;
        // Stamped before the count falls, so the timer never reads a stale idle start.
        activity.idle_since.store(activity.millis(Instant::now()), Ordering::Release);
        activity.active.fetch_sub(1, Ordering::AcqRel);
    }
}

#[derive(Clone, Copy)]
pub struct Timeouts {
    pub header_read: Duration,
    pub idle: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUTS: Timeouts = Timeouts { header_read: Duration::from_secs(10), idle: Duration::from_secs(60) };

    #[test]
    fn a_new_connection_owes_its_head() {
        let activity = Activity::new();
        let (due, limit) = activity.deadline(&TIMEOUTS).unwrap();
        assert_eq!((due, limit), (activity.born + TIMEOUTS.header_read, Limit::HeaderReadTimeout));
        // Half a head does not reset the clock.
        let mut reads = Reads::default();
        reads.read(b"GET / HTTP/1.1\r\n", &activity);
        reads.read(b"host: a\r\n", &activity);
        assert_eq!(activity.deadline(&TIMEOUTS).unwrap().1, Limit::HeaderReadTimeout);
        assert_eq!(activity.deadline(&TIMEOUTS).unwrap().0, due);
    }

    #[test]
    fn http1_phases_follow_requests_and_the_next_head() {
        let activity = Activity::new();
        let mut reads = Reads::default();
        reads.read(b"GET / HTTP/1.1\r\nhost: a\r\n\r\n", &activity);
        let request = activity.request_started();
        assert!(activity.deadline(&TIMEOUTS).is_none());
        // Body bytes while a request is in progress begin no head.
        reads.read(b"body", &activity);
        drop(request);
        assert_eq!(activity.deadline(&TIMEOUTS).unwrap().1, Limit::IdleTimeout);
        reads.read(b"GET /next", &activity);
        assert_eq!(activity.deadline(&TIMEOUTS).unwrap().1, Limit::HeaderReadTimeout);
        let _next = activity.request_started();
        assert!(activity.deadline(&TIMEOUTS).is_none());
    }

    #[test]
    fn http2_after_its_preface_is_idle_between_streams() {
        let activity = Activity::new();
        let mut first = PREFACE.to_vec();
        first.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
        let mut reads = Reads::default();
        reads.read(&first, &activity);
        assert_eq!(activity.deadline(&TIMEOUTS).unwrap().1, Limit::IdleTimeout);
        // Frames between streams (pings, window updates) are not heads.
        reads.read(&[0, 0, 8, 6, 0, 0, 0, 0, 0], &activity);
        assert_eq!(activity.deadline(&TIMEOUTS).unwrap().1, Limit::IdleTimeout);
        let a = activity.request_started();
        let b = activity.request_started();
        drop(a);
        assert!(activity.deadline(&TIMEOUTS).is_none());
        drop(b);
        assert_eq!(activity.deadline(&TIMEOUTS).unwrap().1, Limit::IdleTimeout);
    }
}
