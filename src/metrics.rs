//! The server's Prometheus metrics, served at `GET /metrics` in the text exposition format.
//!
//! Every series is a slot fixed at start: requests are counted per method of the method
//! table (plus one `unknown` slot for paths that name none), protocol and gRPC code, so a
//! scan of random paths can add no series and counting a request is one atomic add per
//! counter, never a map lookup or a lock. Only the authentication failure reasons are kept in
//! a map, keyed by `&'static str`, so they too come from a fixed set. A slot that never moved
//! is left out of the page, as Prometheus clients do for label sets never seen.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use tonic::Code;

use crate::methods::{ApiMethod, MethodTable};
use crate::protocol::{CODE_NAMES, Protocol};

/// Upper bounds of the latency buckets, in microseconds: 25 µs to 10 s.
const BUCKETS_MICROS: [u64; 18] = [
    25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000, 10_000_000,
];

/// The store operations that are timed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreOp {
    Instance,
    Append,
    Head,
    Snapshot,
    ReadLog,
    Locate,
    Ping,
}

impl StoreOp {
    const ALL: [StoreOp; 7] = [
        StoreOp::Instance,
        StoreOp::Append,
        StoreOp::Head,
        StoreOp::Snapshot,
        StoreOp::ReadLog,
        StoreOp::Locate,
        StoreOp::Ping,
    ];

    fn name(self) -> &'static str {
        match self {
            StoreOp::Instance => "instance",
            StoreOp::Append => "append",
            StoreOp::Head => "head",
            StoreOp::Snapshot => "snapshot",
            StoreOp::ReadLog => "read_log",
            StoreOp::Locate => "locate",
            StoreOp::Ping => "ping",
        }
    }
}

/// Who asked the decision engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecisionSource {
    /// The Check API: Check, BatchCheck, Explain.
    Check,
    /// iamd guarding its own methods.
    Guard,
    /// The AuthZEN API.
    Authzen,
}

impl DecisionSource {
    const ALL: [DecisionSource; 3] = [DecisionSource::Check, DecisionSource::Guard, DecisionSource::Authzen];

    fn name(self) -> &'static str {
        match self {
            DecisionSource::Check => "check",
            DecisionSource::Guard => "guard",
            DecisionSource::Authzen => "authzen",
        }
    }
}

/// The credential an authentication failure was about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Credential {
    /// None was sent, or not in a form iamd reads.
    None,
    /// An API token.
    Token,
    /// An OIDC JWT.
    Oidc,
}

impl Credential {
    fn name(self) -> &'static str {
        match self {
            Credential::None => "none",
            Credential::Token => "token",
            Credential::Oidc => "oidc",
        }
    }
}

/// A limit a client reached; each is counted where it is enforced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// A connection beyond `max_connections`, answered 503 and closed.
    Connections,
    /// A connection that did not send its request headers (or HTTP/2 preface) in time.
    HeaderReadTimeout,
    /// A connection closed after `idle_timeout` with no request in progress.
    IdleTimeout,
    /// An API request shed beyond `max_in_flight`.
    InFlight,
    /// A request whose header list is over `max_header_bytes`.
    HeaderBytes,
    /// A request body or message over `max_body_bytes`.
    BodyBytes,
    /// A JSON body nested deeper than `max_json_depth`.
    JsonDepth,
}

impl Limit {
    const ALL: [Limit; 7] = [
        Limit::Connections,
        Limit::HeaderReadTimeout,
        Limit::IdleTimeout,
        Limit::InFlight,
        Limit::HeaderBytes,
        Limit::BodyBytes,
        Limit::JsonDepth,
    ];

    fn name(self) -> &'static str {
        match self {
            Limit::Connections => "connections",
            Limit::HeaderReadTimeout => "header_read_timeout",
            Limit::IdleTimeout => "idle_timeout",
            Limit::InFlight => "in_flight",
            Limit::HeaderBytes => "header_bytes",
            Limit::BodyBytes => "body_bytes",
            Limit::JsonDepth => "json_depth",
        }
    }
}

/// Counts in fixed latency buckets, plus their sum.
struct Histogram {
    /// Per bucket, not cumulative; the last one is `+Inf`.
    buckets: [AtomicU64; BUCKETS_MICROS.len() + 1],
    sum_micros: AtomicU64,
}

impl Histogram {
    fn new() -> Histogram {
        Histogram { buckets: std::array::from_fn(|_| AtomicU64::new(0)), sum_micros: AtomicU64::new(0) }
    }

    fn observe(&self, elapsed: Duration) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let bucket = BUCKETS_MICROS.partition_point(|&bound| bound < micros);
        if let Some(slot) = self.buckets.get(bucket) {
            slot.fetch_add(1, Ordering::Relaxed);
        }
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    /// The `_bucket`, `_sum` and `_count` lines, with `labels` (`a="b",` or empty) first.
    fn write(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (bucket, bound) in self.buckets.iter().zip(BUCKETS_MICROS.iter().map(Some).chain([None])) {
            cumulative += bucket.load(Ordering::Relaxed);
            match bound {
                Some(&micros) => {
                    let _ = writeln!(out, "{name}_bucket{{{labels}le=\"{}\"}} {cumulative}", seconds(micros));
                }
                None => {
                    let _ = writeln!(out, "{name}_bucket{{{labels}le=\"+Inf\"}} {cumulative}");
                }
            }
        }
        let labels = labels.trim_end_matches(',');
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", seconds(self.sum_micros.load(Ordering::Relaxed)));
        let _ = writeln!(out, "{name}_count{{{labels}}} {cumulative}");
    }
}

fn seconds(micros: u64) -> f64 {
    micros as f64 / 1e6
}

/// The server's metrics. One per server, so servers in one process (tests) count apart.
pub struct Metrics {
    enabled: bool,
    /// The `method` label of each slot: the method table's paths, then `unknown`.
    methods: Vec<String>,
    /// Per method, protocol and code.
    requests: Box<[AtomicU64]>,
    /// Per method and protocol.
    latency: Box<[Histogram]>,
    in_flight: [AtomicI64; 3],
    store: [Histogram; StoreOp::ALL.len()],
    store_errors: [AtomicU64; StoreOp::ALL.len()],
    follower_lag_micros: AtomicU64,
    follower_events: AtomicU64,
    follower_errors: AtomicU64,
    /// Per source, denied then allowed.
    decisions: [[AtomicU64; 2]; DecisionSource::ALL.len()],
    decision_latency: [Histogram; DecisionSource::ALL.len()],
    authentication_failures: Mutex<BTreeMap<(Credential, &'static str), u64>>,
    limits: [AtomicU64; Limit::ALL.len()],
    connections_open: AtomicI64,
}

impl Metrics {
    /// Slots for every method of `table`; when not `enabled`, nothing is counted and
    /// [`Metrics::enabled`] says so to the server, which then serves no `/metrics`.
    pub fn new(table: &MethodTable, enabled: bool) -> Metrics {
        let mut methods: Vec<String> = table.iter().map(|m| m.path.trim_start_matches('/').to_owned()).collect();
        methods.push("unknown".to_owned());
        let slots = if enabled { methods.len() * Protocol::ALL.len() } else { 0 };
        Metrics {
            enabled,
            requests: (0..slots * CODE_NAMES.len()).map(|_| AtomicU64::new(0)).collect(),
            latency: (0..slots).map(|_| Histogram::new()).collect(),
            methods,
            in_flight: std::array::from_fn(|_| AtomicI64::new(0)),
            store: std::array::from_fn(|_| Histogram::new()),
            store_errors: std::array::from_fn(|_| AtomicU64::new(0)),
            follower_lag_micros: AtomicU64::new(0),
            follower_events: AtomicU64::new(0),
            follower_errors: AtomicU64::new(0),
            decisions: std::array::from_fn(|_| [AtomicU64::new(0), AtomicU64::new(0)]),
            decision_latency: std::array::from_fn(|_| Histogram::new()),
            authentication_failures: Mutex::new(BTreeMap::new()),
            limits: std::array::from_fn(|_| AtomicU64::new(0)),
            connections_open: AtomicI64::new(0),
        }
    }

    /// Metrics that count nothing, for a store or an application run outside a server.
    pub fn off() -> Metrics {
        Metrics::new(&MethodTable::default(), false)
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// A request began.
    pub fn started(&self, protocol: Protocol) {
        if self.enabled {
            self.in_flight[protocol as usize].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A request that [`Metrics::started`] ended, with its method (`None`: no method matched)
    /// and gRPC code (`None`: not an API call, which is not counted).
    pub fn finished(&self, protocol: Protocol, method: Option<&ApiMethod>, code: Option<Code>, elapsed: Duration) {
        if !self.enabled {
            return;
        }
        let protocol = protocol as usize;
        self.in_flight[protocol].fetch_sub(1, Ordering::Relaxed);
        let Some(code) = code else { return };
        let unknown = self.methods.len() - 1;
        let method = method.map_or(unknown, |m| m.index).min(unknown);
        let slot = method * Protocol::ALL.len() + protocol;
        if let Some(counter) = self.requests.get(slot * CODE_NAMES.len() + (code as usize).min(CODE_NAMES.len() - 1)) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(histogram) = self.latency.get(slot) {
            histogram.observe(elapsed);
        }
    }

    /// A store operation took `elapsed`, and failed or not.
    pub fn store_operation(&self, op: StoreOp, elapsed: Duration, failed: bool) {
        if !self.enabled {
            return;
        }
        let slot = op as usize;
        self.store[slot].observe(elapsed);
        if failed {
            self.store_errors[slot].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The follower applied `events`, the newest of them written `lag` ago (zero when the log
    /// held nothing new).
    pub fn followed(&self, events: usize, lag: Duration) {
        if self.enabled {
            self.follower_events.fetch_add(events as u64, Ordering::Relaxed);
            let micros = u64::try_from(lag.as_micros()).unwrap_or(u64::MAX);
            self.follower_lag_micros.store(micros, Ordering::Relaxed);
        }
    }

    /// The follower could not read the log.
    pub fn follower_failed(&self) {
        if self.enabled {
            self.follower_errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The engine decided, in `elapsed`.
    pub fn decided(&self, source: DecisionSource, allowed: bool, elapsed: Duration) {
        if self.enabled {
            let slot = source as usize;
            self.decisions[slot][usize::from(allowed)].fetch_add(1, Ordering::Relaxed);
            self.decision_latency[slot].observe(elapsed);
        }
    }

    /// A credential was refused; `reason` is its `ErrorInfo` reason.
    pub fn authentication_failed(&self, credential: Credential, reason: &'static str) {
        if !self.enabled {
            return;
        }
        if let Ok(mut failures) = self.authentication_failures.lock() {
            *failures.entry((credential, reason)).or_default() += 1;
        }
    }

    /// A client reached `limit`.
    pub fn limited(&self, limit: Limit) {
        if self.enabled {
            self.limits[limit as usize].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A connection opened (`1`) or closed (`-1`).
    pub fn connections(&self, change: i64) {
        if self.enabled {
            self.connections_open.fetch_add(change, Ordering::Relaxed);
        }
    }

    /// The page `/metrics` answers.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        self.render_requests(&mut out);
        self.render_store(&mut out);
        self.render_decisions(&mut out);
        self.render_authentication(&mut out);
        self.render_limits(&mut out);
        out.push_str("# HELP iamd_build_info The running build of iamd.\n# TYPE iamd_build_info gauge\n");
        let _ = writeln!(out, "iamd_build_info{{version=\"{}\"}} 1", env!("CARGO_PKG_VERSION"));
        out
    }

    fn render_requests(&self, out: &mut String) {
        header(out, "iamd_requests_total", "counter", "Requests answered, by gRPC method, protocol and gRPC code.");
        for (method, name) in self.methods.iter().enumerate() {
            for (p, protocol) in Protocol::ALL.iter().enumerate() {
                let slot = (method * Protocol::ALL.len() + p) * CODE_NAMES.len();
                for (c, code) in CODE_NAMES.iter().enumerate() {
                    let count = self.requests.get(slot + c).map_or(0, |n| n.load(Ordering::Relaxed));
                    if count > 0 {
                        let protocol = label(*protocol);
                        let _ = writeln!(
                            out,
                            "iamd_requests_total{{method=\"{name}\",protocol=\"{protocol}\",code=\"{code}\"}} {count}"
                        );
                    }
                }
            }
        }
        header(out, "iamd_request_duration_seconds", "histogram", "Time to answer a request, by method and protocol.");
        for (method, name) in self.methods.iter().enumerate() {
            for (p, protocol) in Protocol::ALL.iter().enumerate() {
                let Some(histogram) = self.latency.get(method * Protocol::ALL.len() + p) else { continue };
                if histogram.count() > 0 {
                    let labels = format!("method=\"{name}\",protocol=\"{}\",", label(*protocol));
                    histogram.write(out, "iamd_request_duration_seconds", &labels);
                }
            }
        }
        header(
            out,
            "iamd_requests_in_flight",
            "gauge",
            "Requests being answered, by protocol; a scrape counts itself.",
        );
        for (protocol, gauge) in Protocol::ALL.iter().zip(&self.in_flight) {
            let _ = writeln!(
                out,
                "iamd_requests_in_flight{{protocol=\"{}\"}} {}",
                label(*protocol),
                gauge.load(Ordering::Relaxed)
            );
        }
    }

    fn render_store(&self, out: &mut String) {
        header(out, "iamd_store_operation_duration_seconds", "histogram", "Time a store operation took, by operation.");
        for op in StoreOp::ALL {
            let histogram = &self.store[op as usize];
            if histogram.count() > 0 {
                histogram.write(out, "iamd_store_operation_duration_seconds", &format!("operation=\"{}\",", op.name()));
            }
        }
        header(out, "iamd_store_errors_total", "counter", "Store operations that failed, by operation.");
        for op in StoreOp::ALL {
            let _ = writeln!(
                out,
                "iamd_store_errors_total{{operation=\"{}\"}} {}",
                op.name(),
                self.store_errors[op as usize].load(Ordering::Relaxed)
            );
        }
        header(
            out,
            "iamd_follower_lag_seconds",
            "gauge",
            "Age of the newest event the follower applied when it applied it; 0 when it found none new.",
        );
        let _ =
            writeln!(out, "iamd_follower_lag_seconds {}", seconds(self.follower_lag_micros.load(Ordering::Relaxed)));
        header(out, "iamd_follower_events_total", "counter", "Events the follower read from the log.");
        let _ = writeln!(out, "iamd_follower_events_total {}", self.follower_events.load(Ordering::Relaxed));
        header(out, "iamd_follower_errors_total", "counter", "Times the follower could not read the log.");
        let _ = writeln!(out, "iamd_follower_errors_total {}", self.follower_errors.load(Ordering::Relaxed));
    }

    fn render_decisions(&self, out: &mut String) {
        header(out, "iamd_decisions_total", "counter", "Decisions of the engine, by who asked and the decision.");
        for source in DecisionSource::ALL {
            for (decision, count) in ["deny", "allow"].iter().zip(&self.decisions[source as usize]) {
                let _ = writeln!(
                    out,
                    "iamd_decisions_total{{source=\"{}\",decision=\"{decision}\"}} {}",
                    source.name(),
                    count.load(Ordering::Relaxed)
                );
            }
        }
        header(out, "iamd_decision_duration_seconds", "histogram", "Time the engine took to decide, by who asked.");
        for source in DecisionSource::ALL {
            let histogram = &self.decision_latency[source as usize];
            histogram.write(out, "iamd_decision_duration_seconds", &format!("source=\"{}\",", source.name()));
        }
    }

    fn render_limits(&self, out: &mut String) {
        header(out, "iamd_connections_open", "gauge", "Client connections open.");
        let _ = writeln!(out, "iamd_connections_open {}", self.connections_open.load(Ordering::Relaxed));
        header(out, "iamd_limit_reached_total", "counter", "Times a client reached a limit, by limit.");
        for limit in Limit::ALL {
            let count = self.limits[limit as usize].load(Ordering::Relaxed);
            let _ = writeln!(out, "iamd_limit_reached_total{{limit=\"{}\"}} {count}", limit.name());
        }
    }

    fn render_authentication(&self, out: &mut String) {
        header(
            out,
            "iamd_authentication_failures_total",
            "counter",
            "Credentials refused, by kind of credential and ErrorInfo reason.",
        );
        let failures = self.authentication_failures.lock().map(|f| f.clone()).unwrap_or_default();
        for ((credential, reason), count) in failures {
            let _ = writeln!(
                out,
                "iamd_authentication_failures_total{{credential=\"{}\",reason=\"{reason}\"}} {count}",
                credential.name()
            );
        }
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// The `protocol` label.
fn label(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Grpc => "grpc",
        Protocol::GrpcWeb => "grpc_web",
        Protocol::Json => "json",
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failing test panics")]
mod tests {
    use super::*;

    fn table() -> MethodTable {
        MethodTable::served().unwrap()
    }

    #[test]
    fn a_request_is_counted_under_its_method_protocol_and_code() {
        let table = table();
        let metrics = Metrics::new(&table, true);
        let method = table.get("/iamd.admin.v1.AdminService/GetDomainPolicy").unwrap();
        metrics.started(Protocol::Json);
        metrics.finished(Protocol::Json, Some(method), Some(Code::NotFound), Duration::from_micros(300));
        metrics.started(Protocol::GrpcWeb);
        metrics.finished(Protocol::GrpcWeb, None, Some(Code::Unimplemented), Duration::from_secs(20));
        let page = metrics.render();
        assert!(
            page.contains(
                "iamd_requests_total{method=\"iamd.admin.v1.AdminService/GetDomainPolicy\",protocol=\"json\",code=\"NOT_FOUND\"} 1\n"
            ),
            "{page}"
        );
        assert!(
            page.contains("iamd_requests_total{method=\"unknown\",protocol=\"grpc_web\",code=\"UNIMPLEMENTED\"} 1\n")
        );
        let prefix = "iamd_request_duration_seconds_bucket{method=\"iamd.admin.v1.AdminService/GetDomainPolicy\",protocol=\"json\",";
        assert!(page.contains(&format!("{prefix}le=\"0.00025\"}} 0\n")), "{page}");
        assert!(page.contains(&format!("{prefix}le=\"0.0005\"}} 1\n")), "{page}");
        assert!(page.contains(&format!("{prefix}le=\"+Inf\"}} 1\n")), "{page}");
        // Beyond the last bound, only +Inf holds it.
        let unknown = "iamd_request_duration_seconds_bucket{method=\"unknown\",protocol=\"grpc_web\",";
        assert!(page.contains(&format!("{unknown}le=\"10\"}} 0\n")), "{page}");
        assert!(page.contains(&format!("{unknown}le=\"+Inf\"}} 1\n")), "{page}");
        assert!(page.contains("iamd_requests_in_flight{protocol=\"json\"} 0\n"));
        // Slots that never moved are left out.
        assert_eq!(page.matches("iamd_requests_total{").count(), 2, "{page}");
    }

    #[test]
    fn every_line_is_a_comment_or_a_sample_with_a_number() {
        let table = table();
        let metrics = Metrics::new(&table, true);
        metrics.store_operation(StoreOp::Append, Duration::from_micros(40), true);
        metrics.decided(DecisionSource::Guard, true, Duration::from_micros(2));
        metrics.authentication_failed(Credential::Token, "TOKEN_UNKNOWN");
        metrics.followed(3, Duration::from_millis(7));
        let page = metrics.render();
        for line in page.lines() {
            if line.starts_with('#') {
                assert!(line.starts_with("# HELP iamd_") || line.starts_with("# TYPE iamd_"), "{line}");
                continue;
            }
            let (series, value) = line.rsplit_once(' ').unwrap();
            assert!(series.starts_with("iamd_"), "{line}");
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
        assert!(page.contains("iamd_store_errors_total{operation=\"append\"} 1\n"));
        assert!(page.contains("iamd_store_operation_duration_seconds_count{operation=\"append\"} 1\n"));
        assert!(page.contains("iamd_decisions_total{source=\"guard\",decision=\"allow\"} 1\n"));
        assert!(page.contains("iamd_authentication_failures_total{credential=\"token\",reason=\"TOKEN_UNKNOWN\"} 1\n"));
        assert!(page.contains("iamd_follower_lag_seconds 0.007\n"));
        assert!(page.contains("iamd_follower_events_total 3\n"));
        assert!(page.contains("iamd_build_info{version=\""));
    }

    #[test]
    fn metrics_that_are_off_count_nothing() {
        let table = table();
        let metrics = Metrics::new(&table, false);
        let method = table.get("/iamd.admin.v1.AdminService/GetDomainPolicy").unwrap();
        metrics.started(Protocol::Grpc);
        metrics.finished(Protocol::Grpc, Some(method), Some(Code::Ok), Duration::from_micros(5));
        metrics.decided(DecisionSource::Check, false, Duration::from_micros(2));
        assert!(!metrics.render().contains("iamd_requests_total{"));
        assert!(metrics.render().contains("iamd_decisions_total{source=\"check\",decision=\"deny\"} 0\n"));
    }
}
