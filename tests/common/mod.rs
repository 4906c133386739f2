//! Shared helpers for integration tests against the real broker and NTP server of the test
//! environment (`scripts/testenv.sh run -- cargo test ...`).
//!
//! Missing `KTS_BOOTSTRAP` / `KTS_NTP_SERVER` make the test FAIL with a clear message: never skip.
#![allow(dead_code)]

pub mod watched;

use kafka_timesync::kafka::{Admin, ClientSettings};
use rdkafka::consumer::BaseConsumer;
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use rdkafka::producer::{DeliveryResult, ProducerContext};
use rdkafka::{ClientContext, Message};
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Generous bound for broker round trips and waits in tests.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// The broker address (`KTS_BOOTSTRAP`), or a panic telling how to run the tests.
pub fn bootstrap() -> String {
    std::env::var("KTS_BOOTSTRAP")
        .ok()
        .filter(|s| !s.is_empty())
        .expect("KTS_BOOTSTRAP not set: run tests through scripts/testenv.sh")
}

/// The NTP server address (`KTS_NTP_SERVER`), or a panic telling how to run the tests.
pub fn ntp_server() -> String {
    std::env::var("KTS_NTP_SERVER")
        .ok()
        .filter(|s| !s.is_empty())
        .expect("KTS_NTP_SERVER not set: run tests through scripts/testenv.sh")
}

/// Client settings for the test broker.
pub fn settings() -> ClientSettings {
    ClientSettings::new(bootstrap())
}

/// A fresh topic name `<prefix>-<uuid>` (not created).
pub fn unique_topic(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// Runs a future to completion on a fresh current-thread runtime.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(f)
}

/// Creates a unique topic with `partitions` partitions (replication 1) and waits until the broker
/// shows it with a leader for every partition. Returns its name.
pub fn create_topic(prefix: &str, partitions: i32) -> String {
    create_replicated_topic(prefix, partitions, 1)
}

/// Like [`create_topic`] with `replication` replicas of every partition.
pub fn create_replicated_topic(prefix: &str, partitions: i32, replication: i32) -> String {
    let topic = unique_topic(prefix);
    assert!(
        create_named_topic(&topic, partitions, replication, &[]),
        "topic {topic} already existed"
    );
    topic
}

/// Creates `topic` (unless it exists: then returns false) with `partitions` partitions,
/// `replication` replicas and topic-level `configs` (e.g. `max.message.bytes`), and waits until
/// the broker shows a leader for every partition.
pub fn create_named_topic(
    topic: &str,
    partitions: i32,
    replication: i32,
    configs: &[(&str, &str)],
) -> bool {
    let created = request_topic(topic, partitions, replication, configs);
    Admin::new(&settings())
        .expect("admin client")
        .wait_for_topic(topic, partitions as usize, TIMEOUT)
        .unwrap_or_else(|e| panic!("waiting for topic {topic}: {e}"));
    created
}

/// Creates `topic` as [`create_named_topic`] does but returns as soon as the broker has accepted
/// the request (false: it existed), without waiting for leaders: what a user's
/// `kafka-topics.sh --create` leaves behind.
pub fn request_topic(
    topic: &str,
    partitions: i32,
    replication: i32,
    configs: &[(&str, &str)],
) -> bool {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::types::RDKafkaErrorCode;
    let client: AdminClient<_> = settings().admin_config().create().expect("admin client");
    let mut new = NewTopic::new(topic, partitions, TopicReplication::Fixed(replication));
    for (k, v) in configs {
        new = new.set(k, v);
    }
    let opts = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    match block_on(client.create_topics([&new], &opts))
        .unwrap_or_else(|e| panic!("creating topic {topic}: {e}"))
        .pop()
    {
        Some(Ok(_)) => true,
        Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) => false,
        other => panic!("creating topic {topic}: {other:?}"),
    }
}

/// Deletes `topic` (it must exist): for tests whose topics are too large to leave on the broker.
pub fn delete_topic(topic: &str) {
    let admin = Admin::new(&settings()).expect("admin client");
    block_on(admin.with_timeout(TIMEOUT).delete_topic(topic))
        .unwrap_or_else(|e| panic!("deleting topic {topic}: {e}"));
}

/// One record read back from a topic.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicRecord {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    /// The record's Kafka timestamp (milliseconds since the epoch), when it has one.
    pub timestamp: Option<i64>,
    /// The record headers, in order.
    pub headers: HeaderList,
}

impl TopicRecord {
    /// The key as UTF-8 (lossy), "" when absent.
    pub fn key_str(&self) -> String {
        String::from_utf8_lossy(self.key.as_deref().unwrap_or_default()).into_owned()
    }

    /// The payload parsed as JSON (panics with the payload when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        let bytes = self.payload.as_deref().unwrap_or_default();
        serde_json::from_slice(bytes).unwrap_or_else(|e| {
            panic!(
                "record {}/{} is not JSON ({e}): {}",
                self.partition,
                self.offset,
                String::from_utf8_lossy(bytes)
            )
        })
    }
}

/// Every record currently in `topic`, sorted by (partition, offset): reads every partition from
/// the beginning until librdkafka reports end-of-partition for all of them. Panics if that does
/// not happen within [`TIMEOUT`].
pub fn read_all(topic: &str) -> Vec<TopicRecord> {
    let mut cfg = settings().consumer_config(None);
    cfg.set("enable.partition.eof", "true");
    let consumer: BaseConsumer = cfg.create().expect("consumer");
    let mut pending: std::collections::HashSet<i32> = kafka_timesync::kafka::assign_all_partitions(
        &consumer,
        topic,
        kafka_timesync::kafka::StartAt::Beginning,
        TIMEOUT,
    )
    .expect("assign partitions")
    .into_iter()
    .collect();
    let mut out = Vec::new();
    let deadline = Instant::now() + TIMEOUT;
    while !pending.is_empty() {
        assert!(
            Instant::now() < deadline,
            "read {} records of {topic} but partitions {pending:?} did not reach their end within {TIMEOUT:?}",
            out.len()
        );
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => out.push(TopicRecord {
                partition: m.partition(),
                offset: m.offset(),
                key: m.key().map(<[u8]>::to_vec),
                payload: m.payload().map(<[u8]>::to_vec),
                timestamp: m.timestamp().to_millis(),
                headers: m
                    .headers()
                    .map(|hs| {
                        use rdkafka::message::Headers as _;
                        hs.iter()
                            .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                            .collect()
                    })
                    .unwrap_or_default(),
            }),
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                pending.remove(&p);
            }
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            None => {}
        }
    }
    out.sort_by_key(|r| (r.partition, r.offset));
    out
}

/// Delivery reports by the index of the record in the batch sent.
type Deliveries = Arc<Mutex<Vec<(usize, Result<(i32, i64), String>)>>>;
struct DeliveryLog(Deliveries);
impl ClientContext for DeliveryLog {}
impl ProducerContext for DeliveryLog {
    type DeliveryOpaque = usize;
    fn delivery(&self, r: &DeliveryResult<'_>, index: usize) {
        let entry = match r {
            Ok(m) => Ok((m.partition(), m.offset())),
            Err((e, _)) => Err(e.to_string()),
        };
        self.0.lock().expect("delivery log").push((index, entry));
    }
}

/// Writes raw records straight to `topic` (each `(partition or None, key, payload)`), waits for
/// every delivery report and returns each record's (partition, offset), in the order of `records`.
pub fn produce_raw(topic: &str, records: &[(Option<i32>, &str, &[u8])]) -> Vec<(i32, i64)> {
    let keyed: Vec<(Option<i32>, Option<&str>, &[u8])> =
        records.iter().map(|&(p, k, v)| (p, Some(k), v)).collect();
    produce_records(topic, &keyed)
}

/// [`produce_raw`] where a record may have no key (`None`), as the Python prototype wrote them.
pub fn produce_records(
    topic: &str,
    records: &[(Option<i32>, Option<&str>, &[u8])],
) -> Vec<(i32, i64)> {
    let bare: Vec<RawRecord<'_>> = records
        .iter()
        .map(|&(partition, key, value)| RawRecord {
            partition,
            key,
            value,
            headers: &[],
        })
        .collect();
    produce_with_headers(topic, &[], &bare)
}

/// Record headers as a test writes them: (name, value or null).
pub type RawHeaders = [(String, Option<Vec<u8>>)];
/// Owned [`RawHeaders`].
pub type HeaderList = Vec<(String, Option<Vec<u8>>)>;

/// A record written by rdkafka directly, headers included.
#[derive(Debug, Clone, Copy)]
pub struct RawRecord<'a> {
    /// Target partition (`None`: the partitioner's choice by key).
    pub partition: Option<i32>,
    /// Key (`None`: no key).
    pub key: Option<&'a str>,
    /// Value.
    pub value: &'a [u8],
    /// Headers, in this order.
    pub headers: &'a RawHeaders,
}

/// Writes records (with their headers) straight to `topic` with extra librdkafka `props`, waits
/// for every delivery report and returns each record's (partition, offset), in the order of
/// `records` (reports of different partitions come back in any order).
pub fn produce_with_headers(
    topic: &str,
    props: &[(&str, &str)],
    records: &[RawRecord<'_>],
) -> Vec<(i32, i64)> {
    use rdkafka::message::{Header, OwnedHeaders};
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut settings = settings();
    for (k, v) in props {
        settings.set(*k, *v);
    }
    let producer: ThreadedProducer<DeliveryLog> = settings
        .producer_config()
        .create_with_context(DeliveryLog(Arc::clone(&log)))
        .expect("producer");
    for (i, r) in records.iter().enumerate() {
        let mut rec = BaseRecord::<str, [u8], usize>::with_opaque_to(topic, i).payload(r.value);
        if let Some(k) = r.key {
            rec = rec.key(k);
        }
        if let Some(p) = r.partition {
            rec = rec.partition(p);
        }
        if !r.headers.is_empty() {
            let mut hs = OwnedHeaders::new_with_capacity(r.headers.len());
            for (key, value) in r.headers {
                hs = hs.insert(Header {
                    key: key.as_str(),
                    value: value.as_deref(),
                });
            }
            rec = rec.headers(hs);
        }
        producer
            .send(rec)
            .map_err(|(e, _)| e)
            .expect("enqueue record");
    }
    producer.flush(TIMEOUT).expect("flush");
    let mut log = log.lock().expect("delivery log");
    assert_eq!(log.len(), records.len(), "missing delivery reports");
    log.sort_by_key(|(i, _)| *i);
    log.iter()
        .map(|(_, r)| {
            r.clone()
                .unwrap_or_else(|e| panic!("raw record not delivered: {e}"))
        })
        .collect()
}

/// A message of `node` as `kafka-producer --clock-type vector` stamps it: id `NODE-SEQ`, content
/// `NODE says SEQ`, vector send stamp `vt`, Lamport time the sum of its entries, physical and
/// stamp time `at` (seconds since the epoch).
pub fn vector_envelope(
    node: &str,
    seq: u64,
    vt: &[(&str, u64)],
    at: f64,
) -> kafka_timesync::envelope::Envelope {
    use kafka_timesync::clock::{ClockType, VectorTimestamp};
    use kafka_timesync::envelope::{Envelope, MessageTimestamp};
    Envelope {
        id: format!("{node}-{seq}"),
        content: format!("{node} says {seq}"),
        seq: Some(seq),
        timestamp: MessageTimestamp {
            node_id: node.into(),
            timestamp: at,
            clock_type: ClockType::Vector,
            physical_time: Some(at),
            logical_time: Some(vt.iter().map(|(_, c)| c).sum()),
            vector_time: Some(VectorTimestamp::from_entries(vt.iter().copied())),
            hybrid_time: None,
            simulated_time: None,
            unmapped_vector_entries: None,
        },
        simulated_skew_ms: None,
    }
}

/// The stamp of `env` as record headers (kafka-timesync's header form, the version
/// `kafka-producer --envelope headers` writes: `kts-v: 2` and `kts-stamp`).
pub fn stamp_headers(env: &kafka_timesync::envelope::Envelope) -> HeaderList {
    let mut h = kafka_timesync::stamp_headers::EncodedHeaders::new();
    h.encode(env);
    owned_headers(&h)
}

/// The stamp of `env` in the header form's version 1 (`kts-v: 1`, one header per field), as
/// records written before version 2 carry it.
pub fn stamp_headers_v1(env: &kafka_timesync::envelope::Envelope) -> HeaderList {
    let mut h = kafka_timesync::stamp_headers::EncodedHeaders::new();
    h.encode_v1(env);
    owned_headers(&h)
}

fn owned_headers(h: &kafka_timesync::stamp_headers::EncodedHeaders) -> HeaderList {
    h.iter()
        .map(|(n, v)| (n.to_string(), Some(v.to_vec())))
        .collect()
}

/// The result of running a binary.
#[derive(Debug)]
pub struct RunOutput {
    /// None when killed on timeout.
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
}

impl RunOutput {
    /// True when it exited by itself with status 0.
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    /// Non-empty stdout lines parsed as JSON (panics naming the bad line).
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {l}"))
            })
            .collect()
    }

    /// Panics with both streams unless the run succeeded.
    pub fn assert_success(&self) -> &Self {
        assert!(
            self.success(),
            "command failed: {:?}\nstdout:\n{}\nstderr:\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
        self
    }
}

/// Runs `bin args…` with optional stdin, killing it after `timeout`.
pub fn run(
    bin: impl AsRef<Path>,
    args: &[&str],
    stdin: Option<&[u8]>,
    timeout: Duration,
) -> RunOutput {
    run_with_env(bin, args, &[], stdin, timeout)
}

/// Like [`run`] with extra environment variables.
pub fn run_with_env(
    bin: impl AsRef<Path>,
    args: &[&str],
    env: &[(&str, &str)],
    stdin: Option<&[u8]>,
    timeout: Duration,
) -> RunOutput {
    let mut cmd = Command::new(bin.as_ref());
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.as_ref().display()));
    let writer = stdin.map(|data| {
        let mut pipe = child.stdin.take().expect("stdin pipe");
        let data = data.to_vec();
        std::thread::spawn(move || {
            let _ = pipe.write_all(&data);
        })
    });
    let out = collect(child, timeout);
    if let Some(w) = writer {
        let _ = w.join();
    }
    out
}

/// Waits for a spawned child (stdout/stderr piped) up to `timeout`, killing it then.
pub fn collect(mut child: Child, timeout: Duration) -> RunOutput {
    let mut so = child.stdout.take();
    let mut se = child.stderr.take();
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(p) = so.as_mut() {
            let _ = p.read_to_string(&mut s);
        }
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(p) = se.as_mut() {
            let _ = p.read_to_string(&mut s);
        }
        s
    });
    let deadline = Instant::now() + timeout;
    let (status, timed_out) = loop {
        match child.try_wait() {
            Ok(Some(st)) => break (Some(st), false),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break (None, true);
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("waiting for child: {e}"),
        }
    };
    RunOutput {
        status,
        stdout: t_out.join().unwrap_or_default(),
        stderr: t_err.join().unwrap_or_default(),
        timed_out,
    }
}

/// Polls `cond` every 50 ms until it holds, panicking with `what` after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Decodes standard base64 (the consumer's `"value_encoding":"base64"`); panics on bad input.
pub fn base64_decode(text: &str) -> Vec<u8> {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let digits: Vec<u32> = text
        .bytes()
        .filter(|&b| b != b'=')
        .map(|b| {
            ABC.iter()
                .position(|&c| c == b)
                .unwrap_or_else(|| panic!("not base64: {text:?}")) as u32
        })
        .collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, d)| n | d << (18 - 6 * i));
        for i in 0..chunk.len().saturating_sub(1) {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    out
}

/// The value a consumer's `deliver` event carries: the envelope's content for a JSON envelope or a
/// header-stamped text value, the decoded bytes for `"value_encoding":"base64"`.
pub fn delivered_value(event: &serde_json::Value) -> Vec<u8> {
    let content = event["message"]["content"].as_str().unwrap_or_default();
    match event["value_encoding"].as_str() {
        Some("base64") => base64_decode(content),
        _ => content.as_bytes().to_vec(),
    }
}
