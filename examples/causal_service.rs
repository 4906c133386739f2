//! A service's own consumer loop that delivers a kafka-timesync topic in causal order.
//!
//! It uses the library's sans-IO core with rdkafka directly: an rdkafka `BaseConsumer` built here
//! (not kafka-timesync's binaries nor its `kafka` module) reads the topic in a consumer group,
//! [`stamp_headers::decode_record`] decodes each record's stamp (a JSON envelope or the header
//! form), and a [`CausalBuffer`] holds every message until all that happened before it has been
//! delivered. Each delivery is printed as one JSON line:
//!
//! ```text
//! {"node":"b","vector_entry":1,"release":"ready","id":"b-1","content":"re: hello","partition":0,"offset":0}
//! ```
//!
//! ```text
//! cargo run --example causal_service -- --bootstrap localhost:9092 --topic orders \
//!     [--group causal-service] [--max N] [--idle-secs S] [--causal-timeout-ms MS]
//! ```
//!
//! It stops after `--max` deliveries, or after `--idle-secs` without a record (releasing what
//! still waits, with `"release":"timeout"`), or else runs until killed. A message whose
//! predecessor does not come within `--causal-timeout-ms` is released early (`"timeout"`).
//! Offsets are not committed: a service that commits must commit, per partition, the lowest
//! offset still held by the buffer (what `kafka-consumer` does), or a crash loses held messages.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use kafka_timesync::clock::VectorTimestamp;
use kafka_timesync::delivery::{CausalBuffer, Delivered, DeliveryConfig, Offer, Release};
use kafka_timesync::envelope::{DecodeLimits, Form};
use kafka_timesync::stamp_headers::{self, Header};
use kafka_timesync::time::{SystemTimeSource, TimeSource};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};

const USAGE: &str = "usage: causal_service --topic TOPIC [--bootstrap HOST:PORT] [--group ID] \
                     [--max N] [--idle-secs S] [--causal-timeout-ms MS]";

/// The command line.
struct Args {
    bootstrap: String,
    topic: String,
    group: String,
    max: Option<u64>,
    idle: Option<Duration>,
    causal_timeout: Duration,
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut args = Args {
        bootstrap: "localhost:9092".into(),
        topic: String::new(),
        group: "causal-service".into(),
        max: None,
        idle: None,
        causal_timeout: Duration::from_secs(5),
    };
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        let number = |v: String| {
            v.parse::<u64>()
                .map_err(|_| format!("{flag}: '{v}' is not a whole number"))
        };
        match flag.as_str() {
            "--bootstrap" => args.bootstrap = value()?,
            "--topic" => args.topic = value()?,
            "--group" => args.group = value()?,
            "--max" => args.max = Some(number(value()?)?),
            "--idle-secs" => args.idle = Some(Duration::from_secs(number(value()?)?)),
            "--causal-timeout-ms" => {
                args.causal_timeout = Duration::from_millis(number(value()?)?);
            }
            other => return Err(format!("unknown argument '{other}'")),
        }
    }
    if args.topic.is_empty() {
        return Err("--topic is required".into());
    }
    Ok(args)
}

/// What the service keeps of a message until it is delivered.
struct Received {
    id: String,
    content: String,
    partition: i32,
    offset: i64,
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("causal_service: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("causal_service: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &args.bootstrap)
        .set("group.id", &args.group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()?;
    consumer.subscribe(&[args.topic.as_str()])?;

    let clock = SystemTimeSource;
    let max_wait_ns = i64::try_from(args.causal_timeout.as_nanos()).unwrap_or(i64::MAX);
    let mut buffer = CausalBuffer::new(DeliveryConfig::new(10_000, max_wait_ns));
    let limits = DecodeLimits::default();
    let mut out = Vec::new();
    let mut delivered = 0u64;
    let mut last_record = Instant::now();

    while args.max.map_or(true, |max| delivered < max) {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(msg)) => {
                last_record = Instant::now();
                let headers: Vec<Header<'_>> = msg
                    .headers()
                    .map(|hs| hs.iter().map(|h| (h.key, h.value)).collect())
                    .unwrap_or_default();
                let (form, env) =
                    match stamp_headers::decode_record(msg.payload(), &headers, &limits) {
                        Ok(decoded) => decoded,
                        Err(e) => {
                            eprintln!(
                                "causal_service: skipping the record at {}/{}: {e}",
                                msg.partition(),
                                msg.offset()
                            );
                            continue;
                        }
                    };
                let node = env.timestamp.node_id.clone();
                // Without a vector, a message still follows its own node's earlier messages.
                let vt = match (env.timestamp.vector_time, env.seq) {
                    (Some(vt), _) => vt,
                    (None, Some(seq)) => VectorTimestamp::from_entries([(node.clone(), seq)]),
                    // Neither: no known predecessor, delivered at once (as `late`).
                    (None, None) => VectorTimestamp::new(),
                };
                let content = match form {
                    Form::Json => env.content,
                    Form::Headers => {
                        String::from_utf8_lossy(msg.payload().unwrap_or_default()).into_owned()
                    }
                };
                let item = Received {
                    id: env.id,
                    content,
                    partition: msg.partition(),
                    offset: msg.offset(),
                };
                if let Offer::Duplicate(dup) =
                    buffer.offer(node, &vt, item, clock.now_ns(), &mut out)
                {
                    eprintln!("causal_service: duplicate of message {} ignored", dup.id);
                }
            }
            Some(Err(e)) => eprintln!("causal_service: {e}"),
            None => {
                if args.idle.is_some_and(|idle| last_record.elapsed() >= idle) {
                    buffer.drain(Release::Timeout, &mut out);
                    print(&mut out)?;
                    break;
                }
            }
        }
        buffer.expire(clock.now_ns(), &mut out);
        delivered += print(&mut out)?;
    }
    Ok(())
}

/// Prints the deliveries in `out` (emptying it), one JSON line each; returns how many.
fn print(out: &mut Vec<Delivered<Received>>) -> std::io::Result<u64> {
    let n = out.len() as u64;
    let mut stdout = std::io::stdout().lock();
    for d in out.drain(..) {
        let line = serde_json::json!({
            "node": &*d.node,
            "vector_entry": d.number.get(),
            "release": d.release.as_str(),
            "id": d.item.id,
            "content": d.item.content,
            "partition": d.item.partition,
            "offset": d.item.offset,
        });
        writeln!(stdout, "{line}")?;
    }
    stdout.flush()?;
    Ok(n)
}
