//! Prometheus metrics shared by the producer and consumer, and a minimal HTTP endpoint for them.
//!
//! [`Metrics`] is a fixed set of atomics: every update is a single relaxed atomic operation, with
//! no lock and no allocation, so it can sit on the per-message hot path. Values are read only when
//! rendered ([`Metrics::render`]) in the Prometheus text exposition format (version 0.0.4). All
//! names carry the `kafka_timesync_` prefix and their unit (`_seconds`, `_ppm`, `_total`).
//!
//! [`serve`] answers `GET /metrics` (and `HEAD`) over HTTP/1.1 on a tokio listener; anything
//! else gets 404/405/400. Requests are bounded in size and time and connections in number, so a
//! slow or hostile client cannot hold the endpoint or exhaust memory.
//!
//! Invariants:
//! * Counters (`_total`) never decrease.
//! * Before the first successful sync, offset and delay render as `NaN` and the time since the
//!   last sync as `+Inf` (never synced is maximally stale); the drift is `NaN` until set.
//! * Every series is always present (violation kinds and release reasons start at zero), so
//!   rates and alerts work from the first scrape.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::time::{SystemTimeSource, TimeSource, NANOS_PER_SEC};
use crate::violation::ViolationKind;

/// Prefix of every metric name.
pub const PREFIX: &str = "kafka_timesync_";

/// `Content-Type` of the rendered metrics (Prometheus text format 0.0.4).
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

const NEVER: i64 = i64::MIN;

/// An `f64` stored as its bit pattern in an `AtomicU64`.
#[derive(Debug)]
struct AtomicF64(AtomicU64);

impl AtomicF64 {
    fn new(v: f64) -> Self {
        Self(AtomicU64::new(v.to_bits()))
    }
    fn set(&self, v: f64) {
        self.0.store(v.to_bits(), Ordering::Relaxed);
    }
    fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

/// The metrics registry of one producer or consumer process. Share it as `Arc<Metrics>`.
#[derive(Debug)]
pub struct Metrics {
    time: Arc<dyn TimeSource>,
    // Clock discipline.
    offset_ns: AtomicI64,
    delay_ns: AtomicI64,
    drift_ppm: AtomicF64,
    last_sync_ns: AtomicI64,
    syncs_ok: AtomicU64,
    syncs_failed: AtomicU64,
    // Messages.
    produced: AtomicU64,
    consumed: AtomicU64,
    delivered: AtomicU64,
    malformed: AtomicU64,
    // Ordering.
    violations: [AtomicU64; ViolationKind::COUNT],
    causal_buffer_depth: AtomicU64,
    released_timeout: AtomicU64,
    released_buffer_full: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry whose "time since last sync" is measured with the system clock.
    pub fn new() -> Self {
        Self::with_time_source(Arc::new(SystemTimeSource))
    }

    /// A registry measuring "time since last sync" with `time` (tests use a manual clock).
    pub fn with_time_source(time: Arc<dyn TimeSource>) -> Self {
        Self {
            time,
            offset_ns: AtomicI64::new(0),
            delay_ns: AtomicI64::new(0),
            drift_ppm: AtomicF64::new(f64::NAN),
            last_sync_ns: AtomicI64::new(NEVER),
            syncs_ok: AtomicU64::new(0),
            syncs_failed: AtomicU64::new(0),
            produced: AtomicU64::new(0),
            consumed: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            malformed: AtomicU64::new(0),
            violations: std::array::from_fn(|_| AtomicU64::new(0)),
            causal_buffer_depth: AtomicU64::new(0),
            released_timeout: AtomicU64::new(0),
            released_buffer_full: AtomicU64::new(0),
        }
    }

    /// Messages produced (delivered to the broker) so far.
    pub fn produced(&self) -> u64 {
        self.produced.load(Ordering::Relaxed)
    }

    /// Messages delivered to the consumer's output so far.
    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    /// Records a successful clock sync: the measured offset (reference minus local) and
    /// round-trip delay, in nanoseconds. Marks now as the time of the last good sync.
    pub fn record_sync(&self, offset_ns: i64, delay_ns: i64) {
        self.offset_ns.store(offset_ns, Ordering::Relaxed);
        self.delay_ns.store(delay_ns, Ordering::Relaxed);
        self.last_sync_ns
            .store(self.time.now_ns(), Ordering::Relaxed);
        self.syncs_ok.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a sync attempt that produced no usable sample (timeout, bad reply, rejected).
    pub fn record_sync_failure(&self) {
        self.syncs_failed.fetch_add(1, Ordering::Relaxed);
    }

    /// Sets the estimated clock drift in parts per million (positive: local clock runs fast).
    pub fn set_drift_ppm(&self, ppm: f64) {
        self.drift_ppm.set(ppm);
    }

    /// Counts `n` messages the broker acknowledged to the producer.
    pub fn add_produced(&self, n: u64) {
        self.produced.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts `n` records the consumer received from Kafka (before ordering/buffering).
    pub fn add_consumed(&self, n: u64) {
        self.consumed.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts `n` messages the consumer delivered to the application (after ordering).
    pub fn add_delivered(&self, n: u64) {
        self.delivered.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts `n` records the consumer could not decode.
    pub fn add_malformed(&self, n: u64) {
        self.malformed.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts one violation of `kind`.
    pub fn inc_violation(&self, kind: ViolationKind) {
        self.add_violations(kind, 1);
    }

    /// Counts `n` violations of `kind`.
    pub fn add_violations(&self, kind: ViolationKind, n: u64) {
        self.violations[kind.index()].fetch_add(n, Ordering::Relaxed);
    }

    /// Sets the number of messages currently held in the causal delivery buffer.
    pub fn set_causal_buffer_depth(&self, depth: usize) {
        self.causal_buffer_depth
            .store(depth as u64, Ordering::Relaxed);
    }

    /// Counts one message released from a delivery buffer because it waited the maximum time.
    pub fn inc_released_by_timeout(&self) {
        self.add_released_by_timeout(1);
    }

    /// Counts `n` messages released from a delivery buffer because they waited the maximum time.
    pub fn add_released_by_timeout(&self, n: u64) {
        self.released_timeout.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts one message released from a delivery buffer because the buffer was full.
    pub fn inc_released_buffer_full(&self) {
        self.add_released_buffer_full(1);
    }

    /// Counts `n` messages released from a delivery buffer because the buffer was full.
    pub fn add_released_buffer_full(&self, n: u64) {
        self.released_buffer_full.fetch_add(n, Ordering::Relaxed);
    }

    /// Renders every metric in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        self.render_into(&mut out);
        out
    }

    /// Appends every metric to `out` in the Prometheus text exposition format.
    pub fn render_into(&self, out: &mut String) {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let last = self.last_sync_ns.load(Ordering::Relaxed);
        let synced = last != NEVER;
        let ns_to_s = |ns: i64| ns as f64 / NANOS_PER_SEC as f64;
        let (offset, delay, age, last_ts) = if synced {
            let age_ns = self.time.now_ns().saturating_sub(last).max(0);
            (
                ns_to_s(self.offset_ns.load(Ordering::Relaxed)),
                ns_to_s(self.delay_ns.load(Ordering::Relaxed)),
                ns_to_s(age_ns),
                ns_to_s(last),
            )
        } else {
            (f64::NAN, f64::NAN, f64::INFINITY, f64::NAN)
        };

        let mut w = Writer { out };
        w.family(
            "build_info",
            "gauge",
            "Always 1; labelled with the kafka-timesync version.",
        );
        w.sample("build_info", &[("version", env!("CARGO_PKG_VERSION"))], 1.0);

        w.gauge(
            "clock_offset_seconds",
            "Clock offset (reference minus local) measured by the last successful sync; NaN before the first.",
            offset,
        );
        w.gauge(
            "clock_delay_seconds",
            "Round-trip delay of the last successful sync; NaN before the first.",
            delay,
        );
        w.gauge(
            "clock_drift_ppm",
            "Estimated drift of the local clock in parts per million (positive: runs fast); NaN until estimated.",
            self.drift_ppm.get(),
        );
        w.gauge(
            "time_since_last_sync_seconds",
            "Seconds since the last successful clock sync; +Inf if there has been none.",
            age,
        );
        w.gauge(
            "last_sync_timestamp_seconds",
            "Unix time of the last successful clock sync; NaN if there has been none.",
            last_ts,
        );
        w.family("syncs_total", "counter", "Clock sync attempts by result.");
        w.sample("syncs_total", &[("result", "ok")], load(&self.syncs_ok));
        w.sample(
            "syncs_total",
            &[("result", "failed")],
            load(&self.syncs_failed),
        );

        w.counter(
            "messages_produced_total",
            "Messages the broker acknowledged to the producer.",
            load(&self.produced),
        );
        w.counter(
            "messages_consumed_total",
            "Records the consumer received from Kafka.",
            load(&self.consumed),
        );
        w.counter(
            "messages_delivered_total",
            "Messages the consumer delivered to the application after ordering.",
            load(&self.delivered),
        );
        w.counter(
            "messages_malformed_total",
            "Records the consumer could not decode as a kafka-timesync envelope.",
            load(&self.malformed),
        );

        w.family(
            "violations_total",
            "counter",
            "Violations detected, by kind: ordering, and with --verify acknowledged writes.",
        );
        for kind in ViolationKind::ALL {
            let n = load(&self.violations[kind.index()]);
            w.sample("violations_total", &[("kind", kind.as_str())], n);
        }

        w.gauge(
            "causal_buffer_depth",
            "Messages currently waiting in the causal delivery buffer.",
            load(&self.causal_buffer_depth),
        );
        w.family(
            "released_early_total",
            "counter",
            "Messages released from the causal or total-order buffer before their ordering condition held, by reason.",
        );
        w.sample(
            "released_early_total",
            &[("reason", "timeout")],
            load(&self.released_timeout),
        );
        w.sample(
            "released_early_total",
            &[("reason", "buffer_full")],
            load(&self.released_buffer_full),
        );
    }
}

/// Writes exposition-format lines. Writing to a `String` cannot fail, so results are ignored.
struct Writer<'a> {
    out: &'a mut String,
}

impl Writer<'_> {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {PREFIX}{name} {help}");
        let _ = writeln!(self.out, "# TYPE {PREFIX}{name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Value) {
        let _ = write!(self.out, "{PREFIX}{name}");
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"");
                escape_label_value(self.out, v);
                self.out.push('"');
            }
            self.out.push('}');
        }
        self.out.push(' ');
        value.write_to(self.out);
        self.out.push('\n');
    }

    fn gauge(&mut self, name: &str, help: &str, value: impl Value) {
        self.family(name, "gauge", help);
        self.sample(name, &[], value);
    }

    fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.family(name, "counter", help);
        self.sample(name, &[], value);
    }
}

trait Value {
    fn write_to(self, out: &mut String);
}

impl Value for u64 {
    fn write_to(self, out: &mut String) {
        let _ = write!(out, "{self}");
    }
}

impl Value for f64 {
    fn write_to(self, out: &mut String) {
        out.push_str(&format_f64(self));
    }
}

/// Formats a sample value as Prometheus expects: `NaN`, `+Inf`, `-Inf`, or a decimal that parses
/// back to exactly the same `f64`.
pub fn format_f64(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v == f64::INFINITY {
        "+Inf".to_string()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        // `{:?}` is the shortest representation that round-trips, with an exponent for very
        // large or small magnitudes (which Prometheus parses).
        format!("{v:?}")
    }
}

fn escape_label_value(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

// -------------------------------------------------------------------------------------------
// HTTP endpoint
// -------------------------------------------------------------------------------------------

/// Limits of the metrics endpoint.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Time a client has to send its complete request head; then it gets 408 and is closed.
    pub read_timeout: Duration,
    /// Time allowed for writing the response before the connection is dropped.
    pub write_timeout: Duration,
    /// Largest request head accepted (request line plus headers); larger gets 431.
    pub max_request_bytes: usize,
    /// Connections served at once; further ones wait in the listen backlog.
    pub max_connections: usize,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            read_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(5),
            max_request_bytes: 8 * 1024,
            max_connections: 32,
        }
    }
}

/// Errors starting the metrics endpoint.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The listening socket could not be bound (address in use, not permitted, ...).
    #[error("cannot listen for metrics on {addr}: {source}")]
    Bind {
        /// The requested address.
        addr: SocketAddr,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The bound socket's address could not be read.
    #[error("cannot read the metrics listener's address: {0}")]
    LocalAddr(#[source] std::io::Error),
    /// [`ServeOptions`] that cannot serve anything.
    #[error("invalid metrics endpoint options: {0}")]
    InvalidOptions(&'static str),
}

/// Serves `metrics` at `http://addr/metrics` with [`ServeOptions::default`].
///
/// Returns the bound address (useful with port 0) and the server task; abort the task to stop.
/// Must be called within a tokio runtime.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
) -> Result<(SocketAddr, JoinHandle<()>), MetricsError> {
    serve_with_options(addr, metrics, ServeOptions::default()).await
}

/// Like [`serve`], with explicit limits.
pub async fn serve_with_options(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    options: ServeOptions,
) -> Result<(SocketAddr, JoinHandle<()>), MetricsError> {
    if options.max_connections == 0 {
        return Err(MetricsError::InvalidOptions(
            "max_connections must be at least 1",
        ));
    }
    if options.max_request_bytes < 16 {
        return Err(MetricsError::InvalidOptions(
            "max_request_bytes must be at least 16",
        ));
    }
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| MetricsError::Bind { addr, source })?;
    let local = listener.local_addr().map_err(MetricsError::LocalAddr)?;
    tracing::info!(%local, "serving Prometheus metrics at http://{local}/metrics");
    let task = tokio::spawn(accept_loop(listener, metrics, Arc::new(options)));
    Ok((local, task))
}

async fn accept_loop(listener: TcpListener, metrics: Arc<Metrics>, options: Arc<ServeOptions>) {
    let slots = Arc::new(Semaphore::new(options.max_connections));
    loop {
        let Ok(permit) = Arc::clone(&slots).acquire_owned().await else {
            return; // semaphore closed: cannot happen, as it is never closed
        };
        match listener.accept().await {
            Ok((stream, peer)) => {
                let metrics = Arc::clone(&metrics);
                let options = Arc::clone(&options);
                tokio::spawn(async move {
                    handle_connection(stream, &metrics, &options).await;
                    tracing::trace!(%peer, "metrics connection closed");
                    drop(permit);
                });
            }
            Err(e) => {
                // Typically out of file descriptors: back off instead of spinning.
                tracing::warn!(error = %e, "metrics endpoint: accept failed");
                drop(permit);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

#[derive(Debug)]
enum HeadError {
    TooLarge,
    Closed,
}

/// Reads until the blank line ending the request head. Never buffers more than `max` bytes.
async fn read_head(stream: &mut TcpStream, max: usize) -> Result<Vec<u8>, HeadError> {
    let mut head = Vec::with_capacity(512.min(max));
    let mut chunk = [0u8; 1024];
    loop {
        let room = (max + 1).saturating_sub(head.len()).min(chunk.len());
        let n = match stream.read(&mut chunk[..room]).await {
            Ok(0) | Err(_) => return Err(HeadError::Closed),
            Ok(n) => n,
        };
        let scan_from = head.len().saturating_sub(3);
        head.extend_from_slice(&chunk[..n]);
        if let Some(end) = find_head_end(&head[scan_from..]) {
            head.truncate(scan_from + end);
            return Ok(head);
        }
        if head.len() > max {
            return Err(HeadError::TooLarge);
        }
    }
}

/// Index just past the first `\r\n\r\n` (or bare `\n\n`) in `buf`.
fn find_head_end(buf: &[u8]) -> Option<usize> {
    (0..buf.len()).find_map(|i| {
        if buf[i..].starts_with(b"\r\n\r\n") {
            Some(i + 4)
        } else if buf[i..].starts_with(b"\n\n") {
            Some(i + 2)
        } else {
            None
        }
    })
}

/// A response ready to be written: status line, headers and body.
#[derive(Debug, PartialEq, Eq)]
struct Response {
    status: u16,
    reason: &'static str,
    content_type: &'static str,
    extra_header: Option<&'static str>,
    body: String,
    head_only: bool,
}

impl Response {
    fn plain(status: u16, reason: &'static str, body: &str) -> Self {
        Self {
            status,
            reason,
            content_type: "text/plain; charset=utf-8",
            extra_header: None,
            body: format!("{body}\n"),
            head_only: false,
        }
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.status,
            self.reason,
            self.content_type,
            self.body.len()
        );
        if let Some(h) = self.extra_header {
            head.push_str(h);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        if !self.head_only {
            bytes.extend_from_slice(self.body.as_bytes());
        }
        bytes
    }
}

/// Decides the response to a complete request head.
fn route(head: &[u8], metrics: &Metrics) -> Response {
    let Ok(text) = std::str::from_utf8(head) else {
        return Response::plain(400, "Bad Request", "request is not valid UTF-8");
    };
    let request_line = text.lines().next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Response::plain(400, "Bad Request", "malformed request line");
    };
    if !version.starts_with("HTTP/1.") {
        return Response::plain(400, "Bad Request", "only HTTP/1.x is supported");
    }
    let path = target.split('?').next().unwrap_or_default();
    if path != "/metrics" {
        return Response::plain(404, "Not Found", "not found; metrics are at /metrics");
    }
    match method {
        "GET" | "HEAD" => Response {
            status: 200,
            reason: "OK",
            content_type: CONTENT_TYPE,
            extra_header: None,
            body: metrics.render(),
            head_only: method == "HEAD",
        },
        _ => Response {
            extra_header: Some("Allow: GET, HEAD"),
            ..Response::plain(405, "Method Not Allowed", "use GET")
        },
    }
}

async fn handle_connection(mut stream: TcpStream, metrics: &Metrics, options: &ServeOptions) {
    let read = tokio::time::timeout(
        options.read_timeout,
        read_head(&mut stream, options.max_request_bytes),
    )
    .await;
    let response = match read {
        Ok(Ok(head)) => route(&head, metrics),
        Ok(Err(HeadError::TooLarge)) => Response::plain(
            431,
            "Request Header Fields Too Large",
            "request head too large",
        ),
        Ok(Err(HeadError::Closed)) => return,
        Err(_elapsed) => Response::plain(408, "Request Timeout", "request not received in time"),
    };
    tracing::debug!(status = response.status, "metrics request");
    let bytes = response.to_bytes();
    let write = async {
        stream.write_all(&bytes).await?;
        stream.shutdown().await
    };
    match tokio::time::timeout(options.write_timeout, write).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "metrics endpoint: writing the response failed");
            return;
        }
        Err(_elapsed) => return,
    }
    // Lingering close: read and discard what the client is still sending (bounded) before
    // dropping the socket. Closing with unread input makes the kernel send a reset, which can
    // destroy the response before the client has read it.
    let drain = async {
        let mut sink = [0u8; 4096];
        let mut left = LINGER_MAX_BYTES;
        while left > 0 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    };
    let _ = tokio::time::timeout(LINGER_TIMEOUT, drain).await;
}

/// Most input discarded after a response has been sent.
const LINGER_MAX_BYTES: usize = 256 * 1024;
/// Longest wait for the client to finish sending after a response has been sent.
const LINGER_TIMEOUT: Duration = Duration::from_secs(2);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::ManualTime;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    /// Parses exposition text into `series -> value` and checks its grammar on the way: every
    /// sample belongs to a family announced by HELP and TYPE lines just before it.
    fn parse(text: &str) -> BTreeMap<String, f64> {
        let mut samples = BTreeMap::new();
        let mut current: Option<(String, String)> = None; // (name, type)
        let mut help_for: Option<String> = None;
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let name = rest.split(' ').next().unwrap_or_default();
                help_for = Some(name.to_string());
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut it = rest.split(' ');
                let (name, kind) = (it.next().unwrap_or_default(), it.next().unwrap_or_default());
                assert_eq!(help_for.as_deref(), Some(name), "TYPE without HELP: {line}");
                assert!(matches!(kind, "gauge" | "counter"), "{line}");
                if kind == "counter" {
                    assert!(name.ends_with("_total"), "counter without _total: {name}");
                }
                current = Some((name.to_string(), kind.to_string()));
            } else {
                let (series, value) = line.rsplit_once(' ').expect("sample line");
                let name = series.split('{').next().unwrap_or_default();
                let (family, _) = current.as_ref().expect("sample before TYPE");
                assert_eq!(name, family, "sample outside its family");
                assert!(name.starts_with(PREFIX), "{name} lacks prefix");
                let v = match value {
                    "NaN" => f64::NAN,
                    "+Inf" => f64::INFINITY,
                    "-Inf" => f64::NEG_INFINITY,
                    v => v.parse().expect("numeric value"),
                };
                assert!(
                    samples.insert(series.to_string(), v).is_none(),
                    "duplicate {series}"
                );
            }
        }
        samples
    }

    #[test]
    fn fresh_registry_reports_no_sync_and_zero_counters() {
        let m = Metrics::with_time_source(Arc::new(ManualTime::new(0)));
        let s = parse(&m.render());
        assert!(s["kafka_timesync_clock_offset_seconds"].is_nan());
        assert!(s["kafka_timesync_clock_delay_seconds"].is_nan());
        assert!(s["kafka_timesync_clock_drift_ppm"].is_nan());
        assert_eq!(
            s["kafka_timesync_time_since_last_sync_seconds"],
            f64::INFINITY
        );
        assert_eq!(s["kafka_timesync_messages_produced_total"], 0.0);
        for kind in ViolationKind::ALL {
            let key = format!("kafka_timesync_violations_total{{kind=\"{kind}\"}}");
            assert_eq!(s[&key], 0.0, "{key}");
        }
        assert_eq!(
            s["kafka_timesync_released_early_total{reason=\"timeout\"}"],
            0.0
        );
    }

    #[test]
    fn sync_age_follows_the_time_source_and_never_goes_negative() {
        let t = Arc::new(ManualTime::new(1_700_000_000 * NANOS_PER_SEC));
        let m = Metrics::with_time_source(t.clone());
        m.record_sync(-2_500_000, 12_000_000);
        t.advance_ms(7_500);
        let s = parse(&m.render());
        assert_eq!(s["kafka_timesync_clock_offset_seconds"], -0.0025);
        assert_eq!(s["kafka_timesync_clock_delay_seconds"], 0.012);
        assert_eq!(s["kafka_timesync_time_since_last_sync_seconds"], 7.5);
        assert_eq!(
            s["kafka_timesync_last_sync_timestamp_seconds"],
            1_700_000_000.0
        );
        assert_eq!(s["kafka_timesync_syncs_total{result=\"ok\"}"], 1.0);
        // The system clock stepping back must not produce a negative age.
        t.advance_ms(-60_000);
        let s = parse(&m.render());
        assert_eq!(s["kafka_timesync_time_since_last_sync_seconds"], 0.0);
    }

    #[test]
    fn each_update_lands_in_its_own_series() {
        let m = Metrics::with_time_source(Arc::new(ManualTime::new(0)));
        m.add_produced(3);
        m.add_consumed(5);
        m.add_delivered(4);
        m.add_malformed(1);
        m.set_drift_ppm(-12.25);
        m.set_causal_buffer_depth(9);
        m.inc_released_by_timeout();
        m.inc_released_buffer_full();
        m.inc_released_buffer_full();
        m.record_sync_failure();
        for (i, kind) in ViolationKind::ALL.into_iter().enumerate() {
            for _ in 0..=i {
                m.inc_violation(kind);
            }
        }
        let s = parse(&m.render());
        assert_eq!(s["kafka_timesync_messages_produced_total"], 3.0);
        assert_eq!(s["kafka_timesync_messages_consumed_total"], 5.0);
        assert_eq!(s["kafka_timesync_messages_delivered_total"], 4.0);
        assert_eq!(s["kafka_timesync_messages_malformed_total"], 1.0);
        assert_eq!(s["kafka_timesync_clock_drift_ppm"], -12.25);
        assert_eq!(s["kafka_timesync_causal_buffer_depth"], 9.0);
        assert_eq!(
            s["kafka_timesync_released_early_total{reason=\"timeout\"}"],
            1.0
        );
        assert_eq!(
            s["kafka_timesync_released_early_total{reason=\"buffer_full\"}"],
            2.0
        );
        assert_eq!(s["kafka_timesync_syncs_total{result=\"failed\"}"], 1.0);
        for (i, kind) in ViolationKind::ALL.into_iter().enumerate() {
            let key = format!("kafka_timesync_violations_total{{kind=\"{kind}\"}}");
            assert_eq!(s[&key], (i + 1) as f64, "{key}");
        }
    }

    #[test]
    fn concurrent_updates_are_all_counted() {
        let m = Arc::new(Metrics::new());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let m = Arc::clone(&m);
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        m.add_produced(1);
                        m.inc_violation(ViolationKind::Duplicate);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("updater thread");
        }
        let s = parse(&m.render());
        assert_eq!(s["kafka_timesync_messages_produced_total"], 40_000.0);
        assert_eq!(
            s["kafka_timesync_violations_total{kind=\"duplicate\"}"],
            40_000.0
        );
    }

    #[test]
    fn routing_answers_metrics_and_rejects_the_rest() {
        let m = Metrics::new();
        let ok = route(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", &m);
        assert_eq!(ok.status, 200);
        assert_eq!(ok.content_type, CONTENT_TYPE);
        let with_query = route(b"GET /metrics?x=1 HTTP/1.0\r\n\r\n", &m);
        assert_eq!(with_query.status, 200);
        let head = route(b"HEAD /metrics HTTP/1.1\r\n\r\n", &m);
        assert_eq!((head.status, head.head_only), (200, true));
        assert!(!String::from_utf8_lossy(&head.to_bytes()).contains("# HELP"));
        assert_eq!(route(b"GET / HTTP/1.1\r\n\r\n", &m).status, 404);
        assert_eq!(route(b"GET /metricsx HTTP/1.1\r\n\r\n", &m).status, 404);
        assert_eq!(route(b"POST /metrics HTTP/1.1\r\n\r\n", &m).status, 405);
        assert_eq!(route(b"GET /metrics\r\n\r\n", &m).status, 400);
        assert_eq!(route(b"GET /metrics HTTP/2\r\n\r\n", &m).status, 400);
        assert_eq!(route(b"\xff\xfe\r\n\r\n", &m).status, 400);
    }

    #[test]
    fn head_end_is_found_with_either_line_ending() {
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n\r\nbody"), Some(18));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\n\n"), Some(16));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\nHost: x\r\n"), None);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Every f64 renders to text Prometheus parses back to the same value.
        #[test]
        fn floats_round_trip_through_the_text_format(bits in any::<u64>()) {
            let v = f64::from_bits(bits);
            let text = format_f64(v);
            let back = match text.as_str() {
                "NaN" => f64::NAN,
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                t => t.parse::<f64>().expect("parseable"),
            };
            if v.is_nan() {
                prop_assert!(back.is_nan());
            } else {
                prop_assert_eq!(back.to_bits(), v.to_bits());
            }
        }

        /// Label values with quotes, backslashes and newlines stay on one line and unescape back.
        #[test]
        fn label_values_are_escaped(v in ".*") {
            let mut out = String::new();
            escape_label_value(&mut out, &v);
            prop_assert!(!out.contains('\n'));
            let mut back = String::new();
            let mut chars = out.chars();
            while let Some(c) = chars.next() {
                if c == '\\' {
                    match chars.next() {
                        Some('n') => back.push('\n'),
                        Some(o) => back.push(o),
                        None => prop_assert!(false, "dangling escape"),
                    }
                } else {
                    prop_assert!(c != '"', "unescaped quote");
                    back.push(c);
                }
            }
            prop_assert_eq!(back, v);
        }
    }
}
