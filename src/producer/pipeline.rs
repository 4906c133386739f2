//! The Kafka side of the producer: stamp, persist (write-ahead, see [`crate::state`]), send with
//! every delivery report checked, print one line per delivered message.
//!
//! Throughput: the sending thread also serves the delivery reports (a `BaseProducer` polled
//! every 256 sends, as librdkafka's own `rdkafka_performance` does), so a message's
//! memory is freed by the thread that allocated it and no second thread competes for the CPU.
//! The send loop never waits for a delivery (librdkafka batches), reuses one encode buffer
//! (librdkafka copies the payload) and, when the local queue is full, serves reports until
//! there is room — nothing is dropped. The first failed delivery stops sending; the run then
//! drains the queue and reports the reason.

use super::observe::Observer;
use super::Stamper;
use crate::envelope::Form;
use crate::kafka::error::describe_code;
use crate::kafka::{describe, topic_partitions, ClientSettings, KafkaError, LogContext};
use crate::stamp_headers::{self, EncodedHeaders};
use crate::state::{StateError, StateStore};
use rdkafka::client::ClientContext;
use rdkafka::error::{KafkaError as RdError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::Message;
use std::io::{BufRead, BufReader, Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Delivery reports are served after every this many sends (and whenever the queue is full).
/// librdkafka reports a whole produce response (hundreds of messages) as one event, so this
/// keeps up with any send rate at a negligible cost per message.
const POLL_EVERY: u64 = 256;

/// Pause between checks while waiting on librdkafka: for room in a full queue, and for the last
/// delivery reports in [`drain`].
const WAIT_PAUSE: Duration = Duration::from_micros(200);

/// Output format of the per-message lines on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    /// `delivered seq=N partition=P offset=O id=…`
    #[default]
    Text,
    /// The acknowledgement log (docs/verify.md), one JSON object per line:
    /// `{"event":"delivered","id":"…","node":"…","seq":N,"partition":P,"offset":O}` and
    /// `{"event":"failed","id":"…","node":"…","seq":N,"error":"…"}`.
    Json,
}

/// What to send.
pub enum Input {
    /// One message.
    Message(String),
    /// Every line of a reader is a message (streamed; `\n` or `\r\n` stripped; in the JSON form
    /// invalid UTF-8 is replaced by U+FFFD, the headers form sends the bytes as they are).
    Lines(Box<dyn Read + Send>),
    /// One message whose content is any bytes (`--value-file`); the JSON form needs UTF-8.
    Value(Vec<u8>),
    /// `count` synthetic messages of `size` content bytes.
    Synthetic {
        /// Number of messages.
        count: u64,
        /// Content bytes per message.
        size: usize,
    },
}

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Input::Message(m) => f.debug_tuple("Message").field(&m.len()).finish(),
            Input::Value(v) => f.debug_tuple("Value").field(&v.len()).finish(),
            Input::Lines(_) => f.write_str("Lines"),
            Input::Synthetic { count, size } => write!(f, "Synthetic({count}x{size})"),
        }
    }
}

/// Options of one producer run.
#[derive(Debug, Clone)]
pub struct PipelineOptions {
    /// Target topic (must exist).
    pub topic: String,
    /// Message key; `None` = the node id (one node's messages stay in one partition).
    pub key: Option<String>,
    /// Per-message output format.
    pub format: OutputFormat,
    /// Where the stamp goes: the JSON envelope as the value, or record headers with the content
    /// as the value, byte for byte.
    pub form: Form,
    /// Run an [`Observer`] and catch up before the first send.
    pub observe: bool,
    /// Bound of metadata round trips (topic check, observer set-up).
    pub metadata_timeout: Duration,
    /// Bound of the `--observe` catch-up.
    pub catch_up_timeout: Duration,
    /// Counts delivered messages (`kafka_timesync_messages_produced_total`) when set.
    pub metrics: Option<Arc<crate::metrics::Metrics>>,
}

impl PipelineOptions {
    /// Defaults for `topic`.
    pub fn new(topic: impl Into<String>) -> Self {
        Self {
            topic: topic.into(),
            key: None,
            format: OutputFormat::Text,
            form: Form::Json,
            observe: false,
            metadata_timeout: Duration::from_secs(10),
            catch_up_timeout: Duration::from_secs(60),
            metrics: None,
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProducerSummary {
    /// Messages stamped and handed to librdkafka.
    pub sent: u64,
    /// Delivery reports with success.
    pub delivered: u64,
    /// Delivery reports with failure, plus messages with no report after the final flush.
    pub failed: u64,
    /// The first failure's reason.
    pub first_error: Option<String>,
    /// From the first send to the end of the final flush.
    pub elapsed: Duration,
    /// Timestamps of other nodes merged by `--observe`.
    pub observed: u64,
    /// First and last seq stamped in this run.
    pub seq_range: Option<(u64, u64)>,
    /// True when stopped by the stop flag (signal) before the input ended.
    pub interrupted: bool,
}

impl ProducerSummary {
    /// Delivered messages per second.
    pub fn rate(&self) -> f64 {
        let s = self.elapsed.as_secs_f64();
        if s > 0.0 {
            self.delivered as f64 / s
        } else {
            0.0
        }
    }
}

/// Errors of a producer run.
#[derive(Debug, thiserror::Error)]
pub enum ProducerError {
    /// Kafka set-up or metadata failure.
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    /// State file failure.
    #[error(transparent)]
    State(#[from] StateError),
    /// A binary value for the JSON envelope, which carries text only.
    #[error("the value is not UTF-8 text ({0}); the JSON envelope carries text only, use --envelope headers for binary values")]
    NotText(std::str::Utf8Error),
    /// Some messages were not delivered.
    #[error("{failed} of {sent} messages not delivered: {reason}")]
    NotDelivered {
        /// Messages not delivered.
        failed: u64,
        /// Messages handed to librdkafka.
        sent: u64,
        /// The first failure's reason.
        reason: String,
    },
}

struct Shared {
    delivered: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
    stop_sending: AtomicBool,
    out: Mutex<Output>,
    format: OutputFormat,
    /// Where each record's id is: the envelope in the value, or the `kts-id` header.
    form: Form,
    /// The sending node (in every JSON event): set once `prepare` has yielded the stamper,
    /// before the first send.
    node: std::sync::OnceLock<crate::NodeId>,
    /// `node` as a JSON string, rendered once for the delivered lines.
    node_json: std::sync::OnceLock<Vec<u8>>,
    flush_each: bool,
    metrics: Option<Arc<crate::metrics::Metrics>>,
}

impl Shared {
    /// The sending node ("" before `prepare` has run, when nothing has been sent yet).
    fn node(&self) -> &str {
        self.node.get().map_or("", |n| n.as_ref())
    }

    /// [`node`](Self::node) as a JSON string.
    fn node_json(&self) -> &[u8] {
        self.node_json.get().map_or(b"\"\"", Vec::as_slice)
    }
}

/// Where the per-message lines go, with the buffer each line is formatted in.
struct Output {
    sink: Box<dyn Write + Send>,
    line: Vec<u8>,
}

struct DeliveryContext {
    log: LogContext,
    shared: Arc<Shared>,
}

impl ClientContext for DeliveryContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, msg: &str) {
        self.log.log(level, fac, msg);
    }
    fn error(&self, error: RdError, reason: &str) {
        self.log.error(error, reason);
    }
}

/// The envelope id inside our own payload (`{"id":"…",…`), without parsing the whole JSON.
/// `"id":"` cannot occur inside a JSON string value (its quotes would be escaped).
fn payload_id(payload: &[u8]) -> &str {
    const MARK: &[u8] = b"\"id\":\"";
    payload
        .windows(MARK.len())
        .position(|w| w == MARK)
        .and_then(|i| {
            let rest = &payload[i + MARK.len()..];
            let end = rest.iter().position(|&b| b == b'"')?;
            std::str::from_utf8(&rest[..end]).ok()
        })
        .unwrap_or("")
}

/// The id of a record this producer wrote: the `kts-id` header in the header form (the value
/// is the application's content and is never searched), the envelope's `id` in the JSON form.
fn record_id(form: Form, m: &impl Message) -> &str {
    match form {
        Form::Json => payload_id(m.payload().unwrap_or_default()),
        Form::Headers => m
            .headers()
            .and_then(|hs| {
                use rdkafka::message::Headers as _;
                // The record's headers are exactly the EncodedHeaders this producer wrote: in
                // version 2 `kts-stamp` is at STAMP_INDEX after `kts-v` (which is neither stamp
                // nor id), so one header read gives what the scan would. Version 1 is scanned.
                match hs.try_get(stamp_headers::STAMP_INDEX) {
                    Some(h) if h.key == stamp_headers::STAMP => stamp_headers::stamp_id(h.value?),
                    _ => stamp_headers::id_of(hs.iter().map(|h| (h.key, h.value))),
                }
            })
            .unwrap_or(""),
    }
}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, seq: usize) {
        let sh = &self.shared;
        let mut guard = match sh.out.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let Output { sink: out, line } = &mut *guard;
        // Output errors (e.g. a closed pipe) must not stop deliveries from being counted.
        let _ = match result {
            Ok(m) => {
                sh.delivered.fetch_add(1, Ordering::Relaxed);
                if let Some(m) = &sh.metrics {
                    m.add_produced(1);
                }
                let id = record_id(sh.form, m);
                line.clear();
                let at = (m.partition(), m.offset());
                delivered_line(line, sh.format, sh.node_json(), seq, id, at);
                out.write_all(line)
            }
            Err((e, m)) => {
                sh.failed.fetch_add(1, Ordering::Relaxed);
                sh.stop_sending.store(true, Ordering::Relaxed);
                let reason = self.log.scrub(&describe(e));
                if let Ok(mut first) = sh.first_error.lock() {
                    if first.is_none() {
                        tracing::error!("message seq={seq} not delivered: {reason}");
                        *first = Some(reason.clone());
                    }
                }
                let id = record_id(sh.form, m);
                failed_line(out, sh, seq, id, &reason)
            }
        };
        if sh.flush_each {
            let _ = out.flush();
        }
    }
}

/// Writes the line printed for a message whose delivery failed.
fn failed_line(
    out: &mut dyn Write,
    sh: &Shared,
    seq: usize,
    id: &str,
    reason: &str,
) -> std::io::Result<()> {
    match sh.format {
        OutputFormat::Json => writeln!(
            out,
            "{}",
            serde_json::json!({"event": "failed", "id": id, "node": sh.node(), "seq": seq, "error": reason})
        ),
        OutputFormat::Text => writeln!(out, "FAILED seq={seq} id={id}: {reason}"),
    }
}

/// `s` as a JSON string (quoted and escaped).
fn json_str(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len() + 2);
    crate::envelope::write_json_str(&mut out, s);
    out
}

/// Appends the line printed for a delivered message at `(partition, offset)` (hand-formatted:
/// it is written once per message). `node_json` is the node id as a JSON string ([`json_str`]).
fn delivered_line(
    line: &mut Vec<u8>,
    format: OutputFormat,
    node_json: &[u8],
    seq: usize,
    id: &str,
    (partition, offset): (i32, i64),
) {
    let mut num = itoa::Buffer::new();
    match format {
        OutputFormat::Json => {
            // Envelope ids written by this crate are UUIDs; anything else is escaped.
            line.extend_from_slice(b"{\"event\":\"delivered\",\"id\":");
            crate::envelope::write_json_str(line, id);
            line.extend_from_slice(b",\"node\":");
            line.extend_from_slice(node_json);
            line.extend_from_slice(b",\"seq\":");
            line.extend_from_slice(num.format(seq).as_bytes());
            line.extend_from_slice(b",\"partition\":");
            line.extend_from_slice(num.format(partition).as_bytes());
            line.extend_from_slice(b",\"offset\":");
            line.extend_from_slice(num.format(offset).as_bytes());
            line.extend_from_slice(b"}\n");
        }
        OutputFormat::Text => {
            line.extend_from_slice(b"delivered seq=");
            line.extend_from_slice(num.format(seq).as_bytes());
            line.extend_from_slice(b" partition=");
            line.extend_from_slice(num.format(partition).as_bytes());
            line.extend_from_slice(b" offset=");
            line.extend_from_slice(num.format(offset).as_bytes());
            line.extend_from_slice(b" id=");
            line.extend_from_slice(id.as_bytes());
            line.push(b'\n');
        }
    }
}

/// Waits until every message handed to librdkafka has had its delivery report served, or
/// `bound` has passed. Unlike `Producer::flush`, which serves reports in 100 ms slices, this
/// returns about a millisecond after the last report.
fn drain(producer: &BaseProducer<DeliveryContext>, bound: Duration) -> Result<(), RdError> {
    let deadline = Instant::now() + bound;
    // Wakes librdkafka's broker threads, which send lingering messages at once if they get
    // there while the flush is in progress (best effort: the zero timeout makes the call
    // return at once, with a time-out error that is expected here); otherwise linger.ms
    // (5 ms by default) delays the last batch.
    let _ = producer.flush(Duration::ZERO);
    while producer.in_flight_count() > 0 {
        if Instant::now() >= deadline {
            return Err(RdError::Flush(RDKafkaErrorCode::OperationTimedOut));
        }
        producer.poll(Duration::ZERO);
        std::thread::sleep(WAIT_PAUSE);
    }
    Ok(())
}

/// The stamper and the state store (if any) of a run, once the node's clocks are known.
pub type Prepared = Result<(Stamper, Option<StateStore>), ProducerError>;

/// Stamps and sends `input` to `opts.topic`; see the module docs. `prepare` yields the stamper
/// and the state store; it is called once the producer has its metadata, so a caller can overlap
/// its own start-up work (reading back the node's last record) with the producer's. `stop` ends
/// the run early (what has been sent is still flushed and checked). On return the state (if
/// any) holds the clocks after the last stamp.
pub fn run(
    settings: &ClientSettings,
    prepare: impl FnOnce() -> Prepared,
    opts: &PipelineOptions,
    input: Input,
    out: Box<dyn Write + Send>,
    stop: Arc<AtomicBool>,
) -> Result<ProducerSummary, ProducerError> {
    let flush_each = !matches!(input, Input::Synthetic { .. });
    let shared = Arc::new(Shared {
        delivered: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        first_error: Mutex::new(None),
        stop_sending: AtomicBool::new(false),
        out: Mutex::new(Output {
            sink: out,
            line: Vec::with_capacity(128),
        }),
        format: opts.format,
        form: opts.form,
        node: std::sync::OnceLock::new(),
        node_json: std::sync::OnceLock::new(),
        flush_each,
        metrics: opts.metrics.clone(),
    });
    let cfg = settings.producer_config();
    let message_timeout_ms: u64 = cfg
        .get("message.timeout.ms")
        .or_else(|| cfg.get("delivery.timeout.ms"))
        .and_then(|v| v.parse().ok())
        .unwrap_or(300_000);
    let producer: BaseProducer<DeliveryContext> = cfg
        .create_with_context(DeliveryContext {
            log: LogContext::new(settings),
            shared: Arc::clone(&shared),
        })
        .map_err(|e| settings.client_error("producer", &e))?;
    // Fails fast and clearly on a missing topic or an unreachable broker.
    topic_partitions(producer.client(), &opts.topic, opts.metadata_timeout)?;
    // The idempotent producer asks for its producer id right after start-up, before any broker
    // connection is up, and then retries only every 500 ms, or at once when a metadata
    // response arrives. The answer above came from the bootstrap connection, which librdkafka
    // replaces by one to the broker's advertised address; a second request goes over that
    // one, so the first message does not wait up to 500 ms for an id.
    let _ = producer
        .client()
        .fetch_metadata(Some(&opts.topic), opts.metadata_timeout);
    let (stamper, mut state) = prepare()?;
    let _ = shared.node.set(stamper.node().clone());
    let _ = shared.node_json.set(json_str(stamper.node()));

    let key: String = opts
        .key
        .clone()
        .unwrap_or_else(|| stamper.node().to_string());
    let stamper = Arc::new(Mutex::new(stamper));
    let observer = if opts.observe {
        let o = Observer::start(
            settings,
            &opts.topic,
            Arc::clone(&stamper),
            opts.metadata_timeout,
        )?;
        o.wait_caught_up(opts.catch_up_timeout)?;
        Some(o)
    } else {
        None
    };

    let mut summary = ProducerSummary::default();
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    let started = Instant::now();
    let mut stamp_headers = EncodedHeaders::new();
    let mut send_one =
        |content: &[u8], summary: &mut ProducerSummary| -> Result<bool, ProducerError> {
            if stop.load(Ordering::Relaxed) {
                summary.interrupted = true;
                return Ok(false);
            }
            if shared.stop_sending.load(Ordering::Relaxed) {
                return Ok(false);
            }
            let (seq, create_time_ms) = {
                let mut s = match stamper.lock() {
                    Ok(g) => g,
                    Err(p) => p.into_inner(),
                };
                buf.clear();
                let env = match opts.form {
                    Form::Json => {
                        let text = std::str::from_utf8(content).map_err(ProducerError::NotText)?;
                        let env = s.stamp(text);
                        env.encode_into(&mut buf);
                        env
                    }
                    Form::Headers => {
                        let env = s.stamp("");
                        stamp_headers.encode(env);
                        buf.extend_from_slice(content);
                        env
                    }
                };
                // The record's Kafka timestamp is the envelope's `timestamp` (the host clock, not the
                // simulated one); librdkafka would otherwise read the clock again.
                let create_time_ms = (env.timestamp.timestamp * 1e3).round() as i64;
                let seq = s.seq();
                if let Some(st) = state.as_mut() {
                    st.cover(&s.values())?;
                }
                (seq, create_time_ms)
            };
            summary.seq_range = Some((summary.seq_range.map_or(seq, |r| r.0), seq));
            let mut record = BaseRecord::with_opaque_to(&opts.topic, seq as usize)
                .key(key.as_str())
                .payload(&buf)
                .timestamp(create_time_ms);
            if opts.form == Form::Headers {
                let mut headers = OwnedHeaders::new_with_capacity(stamp_headers.len());
                for (key, value) in stamp_headers.iter() {
                    headers = headers.insert(Header {
                        key,
                        value: Some(value),
                    });
                }
                record = record.headers(headers);
            }
            let mut full = 0u32;
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((RdError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                        // Serving reports frees room in the queue; while there is none to serve,
                        // wait in short sleeps (`poll` with a timeout would spin on the clock for
                        // its last millisecond).
                        record = r;
                        if full > 0 {
                            std::thread::sleep(WAIT_PAUSE);
                        }
                        full = full.saturating_add(1);
                        producer.poll(Duration::ZERO);
                    }
                    Err((e, _)) => {
                        // Not handed over: the seq is burnt (a gap the consumer reports).
                        let reason = settings.scrub(&describe(&e));
                        shared.failed.fetch_add(1, Ordering::Relaxed);
                        let id = match opts.form {
                            Form::Json => payload_id(&buf),
                            Form::Headers => stamp_headers::id_of(
                                stamp_headers.iter().map(|(k, v)| (k, Some(v))),
                            )
                            .unwrap_or(""),
                        };
                        if let Ok(mut o) = shared.out.lock() {
                            let _ = failed_line(&mut o.sink, &shared, seq as usize, id, &reason);
                        }
                        if let Ok(mut first) = shared.first_error.lock() {
                            first.get_or_insert(reason);
                        }
                        summary.sent += 1;
                        return Ok(false);
                    }
                }
            }
            summary.sent += 1;
            if summary.sent % POLL_EVERY == 0 {
                producer.poll(Duration::ZERO);
            }
            Ok(true)
        };

    let result: Result<(), ProducerError> = (|| {
        match input {
            Input::Message(m) => {
                send_one(m.as_bytes(), &mut summary)?;
            }
            Input::Value(v) => {
                send_one(&v, &mut summary)?;
            }
            Input::Synthetic { count, size } => {
                let content: String = (0..size).map(|i| (b'a' + (i % 26) as u8) as char).collect();
                for _ in 0..count {
                    if !send_one(content.as_bytes(), &mut summary)? {
                        break;
                    }
                }
            }
            Input::Lines(reader) => {
                // A reader thread keeps the loop responsive to `stop` while stdin blocks; the
                // bounded channel is the backpressure.
                let (tx, rx) = sync_channel::<Vec<u8>>(1024);
                std::thread::Builder::new()
                    .name("stdin".into())
                    .spawn(move || {
                        let mut r = BufReader::new(reader);
                        let mut line = Vec::new();
                        loop {
                            line.clear();
                            match r.read_until(b'\n', &mut line) {
                                Ok(0) => break,
                                Ok(_) => {
                                    if line.last() == Some(&b'\n') {
                                        line.pop();
                                        if line.last() == Some(&b'\r') {
                                            line.pop();
                                        }
                                    }
                                    if tx.send(std::mem::take(&mut line)).is_err() {
                                        break;
                                    }
                                }
                                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                                Err(e) => {
                                    tracing::error!("reading standard input: {e}");
                                    break;
                                }
                            }
                        }
                    })
                    .map_err(|e| KafkaError::Operation {
                        operation: "start the stdin reader".into(),
                        message: e.to_string(),
                    })?;
                loop {
                    // Lines may come slowly (a terminal): serve reports between them so each
                    // "delivered" line appears within a few milliseconds.
                    producer.poll(Duration::ZERO);
                    match rx.recv_timeout(Duration::from_millis(10)) {
                        Ok(line) => {
                            // The JSON envelope carries text: invalid UTF-8 becomes U+FFFD
                            // there; the headers form sends the line's bytes as they are.
                            let lossy;
                            let bytes: &[u8] = match opts.form {
                                Form::Json => {
                                    lossy = String::from_utf8_lossy(&line);
                                    lossy.as_bytes()
                                }
                                Form::Headers => &line,
                            };
                            if !send_one(bytes, &mut summary)? {
                                break;
                            }
                        }
                        Err(RecvTimeoutError::Timeout) => {
                            if stop.load(Ordering::Relaxed) {
                                summary.interrupted = true;
                                break;
                            }
                        }
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
            }
        }
        Ok(())
    })();

    // Every message handed over gets its report: wait at most the delivery timeout (+ margin).
    let flush_bound = Duration::from_millis(message_timeout_ms.saturating_add(5_000));
    let flushed = drain(&producer, flush_bound);
    summary.elapsed = started.elapsed();
    if let Some(o) = observer {
        let stats = o.stop();
        let malformed = stats.malformed.load(Ordering::Relaxed);
        if malformed > 0 {
            tracing::warn!("--observe skipped {malformed} malformed records");
        }
    }
    {
        let s = match stamper.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        summary.observed = s.observed_count();
        if let Some(st) = state.as_mut() {
            st.save(&s.snapshot())?;
        }
    }
    if let Ok(mut o) = shared.out.lock() {
        let _ = o.sink.flush();
    }
    result?;
    summary.delivered = shared.delivered.load(Ordering::Relaxed);
    let reported = summary.delivered + shared.failed.load(Ordering::Relaxed);
    summary.failed = summary.sent.saturating_sub(summary.delivered);
    summary.first_error = shared.first_error.lock().ok().and_then(|g| g.clone());
    if summary.failed > 0 {
        let reason = summary
            .first_error
            .clone()
            .unwrap_or_else(|| match &flushed {
                Err(e) => format!("no delivery report within {flush_bound:?}: {}", describe(e)),
                Ok(()) if reported < summary.sent => {
                    format!(
                        "no delivery report for {} messages",
                        summary.sent - reported
                    )
                }
                Ok(()) => describe_code(RDKafkaErrorCode::Fail),
            });
        return Err(ProducerError::NotDelivered {
            failed: summary.failed,
            sent: summary.sent,
            reason,
        });
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::{delivered_line, json_str, payload_id, OutputFormat};

    #[test]
    fn payload_id_finds_the_top_level_id() {
        let p = br#"{"id":"6f1c-1","content":"say \"id\":\"x\"","seq":1}"#;
        assert_eq!(payload_id(p), "6f1c-1");
        assert_eq!(payload_id(b"garbage"), "");
    }

    #[test]
    fn delivered_lines_keep_their_documented_shape() {
        let mut line = Vec::new();
        delivered_line(
            &mut line,
            OutputFormat::Text,
            &json_str("n1"),
            7,
            "6f1c-1",
            (2, 41),
        );
        assert_eq!(line, b"delivered seq=7 partition=2 offset=41 id=6f1c-1\n");

        line.clear();
        delivered_line(
            &mut line,
            OutputFormat::Json,
            &json_str("n1"),
            7,
            "6f1c-1",
            (2, -1001),
        );
        assert_eq!(
            line,
            b"{\"event\":\"delivered\",\"id\":\"6f1c-1\",\"node\":\"n1\",\"seq\":7,\"partition\":2,\"offset\":-1001}\n"
        );

        // An id that is not a UUID still yields one valid JSON line.
        line.clear();
        delivered_line(
            &mut line,
            OutputFormat::Json,
            &json_str("n\"1"),
            1,
            "a\"b\\c\n",
            (0, 0),
        );
        assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
        let v: serde_json::Value = serde_json::from_slice(&line).expect("valid JSON");
        assert_eq!(v["id"], "a\"b\\c\n");
        assert_eq!(v["event"], "delivered");
        assert_eq!(v["node"], "n\"1");
    }
}
