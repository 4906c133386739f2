//! kafka-consumer: read a topic of kafka-timesync messages, analyse their ordering and deliver them
//! in arrival, causal or total order. A thin shell around `kafka_timesync::consumer::ConsumerEngine`.

mod common;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Parser, ValueEnum};
use kafka_timesync::clock::PhysicalClock;
use kafka_timesync::config::TimeSyncConfig;
use kafka_timesync::consumer::{
    ConsumerEngine, DeliveryMode, EngineConfig, EventSink, JsonSink, Record, Summary, TextSink,
};
use kafka_timesync::metrics::{Metrics, ViolationLabel};
use kafka_timesync::time::{SystemTimeSource, TimeSource};
use kafka_timesync::verify::Verifier;
use kafka_timesync::NodeId;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientContext;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const EXAMPLES: &str = "\
Examples:
  # print what arrives on topic time-sync, with ordering analysis
  kafka-consumer time-sync --analyze-ordering

  # causal delivery of everything in the topic, as JSON lines, stop after 5 s without news
  kafka-consumer time-sync --from-beginning --delivery causal --format json --idle-timeout 5

  # total order over three known producers; two such consumers print the same sequence
  kafka-consumer time-sync --delivery total --nodes producer-1,producer-2,producer-3

  # the last 100 messages of every partition, then follow; NTP-corrected arrival times
  kafka-consumer time-sync --history 100 --enable-ntp --ntp-server 127.0.0.1:11123

  # did Kafka keep every acknowledged write? (see docs/verify.md)
  kafka-producer time-sync --count 100000 --format json > acks.jsonl
  kafka-consumer time-sync --verify acks.jsonl --idle-timeout 5

  # SASL over TLS: any librdkafka property with -X (secrets are never printed)
  kafka-consumer time-sync -X security.protocol=SASL_SSL -X sasl.mechanisms=PLAIN \\
      -X sasl.username=me -X sasl.password=secret

Partitions and replicas:
  In causal and total modes the consumer reads ALL partitions of the topic itself (manual
  assignment; the group id only stores committed offsets), so several consumers are replicas that
  each deliver every message in the same order. Arrival mode uses normal group-managed
  partitions (consumers of one group share the partitions), except with --from-beginning or
  --history, which read every partition from the requested position.

Offsets:
  Only what has been delivered is committed: per partition, up to the lowest offset still held in
  the causal/total buffer. Held messages are read again by the next run (at-least-once).
  SIGINT/SIGTERM: stop, commit, print the summary. The summary is printed on every exit.

JSON events (--format json), one per line on stdout:
  {\"event\":\"deliver\",\"partition\":P,\"offset\":O,\"release\":\"ready\"|\"timeout\"|\"buffer-full\"|\"late\",\"message\":{...}}
  {\"event\":\"violation\",\"kind\":K,\"node\":\"...\",\"ids\":[\"...\"],\"detail\":\"...\"}
  {\"event\":\"malformed\",\"partition\":P,\"offset\":O,\"error\":\"...\"}
  {\"event\":\"summary\",\"received\":N,\"delivered\":N,\"malformed\":N,\"buffered\":N,\"duplicates\":N,
   \"violations\":{K:N,...},\"concurrent_pairs\":N,\"nodes\":{\"<id>\":{\"messages\":N,\"offset_ms\":X}},
   \"verify\":{...} (with --verify)}

Verification (--verify ACKS.jsonl, the producers' `--format json` output; docs/verify.md):
  every partition is read from its start; violations lost_write, inconsistent_offset,
  duplicate_write, nonmonotonic_send, aborted_read (with \"partition\" and \"offsets\").
  Exit status: 0 every acknowledged write read where acknowledged; 3 acknowledged writes lost;
  4 other violations, none lost; 5 no violation but some acknowledged writes not reached;
  1 error; 2 usage.";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DeliveryArg {
    /// Deliver in the order read.
    Arrival,
    /// Respect happened-before (vector clocks).
    Causal,
    /// One total order (Lamport time, node id), identical in every replica.
    Total,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum FormatArg {
    /// A line per message and a readable report; diagnostics on stderr.
    Text,
    /// JSON lines on stdout.
    Json,
}

/// Read kafka-timesync messages: ordering analysis and causal / total-order delivery.
#[derive(Debug, Parser)]
#[command(name = "kafka-consumer", version, after_help = EXAMPLES)]
struct Cli {
    /// The topic to read.
    #[arg(required_unless_present_any = ["completions", "man"])]
    topic: Option<String>,

    /// Kafka bootstrap servers (host:port[,host:port...]).
    #[arg(long, env = "KAFKA_BOOTSTRAP", value_name = "HOSTS")]
    bootstrap: Option<String>,

    /// Consumer group: shares partitions in arrival mode, stores committed offsets in every mode.
    #[arg(long, value_name = "GROUP", default_value = "kafka-timesync")]
    group: String,

    /// Start at the beginning of every partition, ignoring committed offsets. (Without it the
    /// group's committed offsets are used; a group without any starts at the beginning too.)
    #[arg(long, conflicts_with = "history")]
    from_beginning: bool,

    /// First read the last N messages of every partition, then follow.
    #[arg(long, value_name = "N")]
    history: Option<u64>,

    /// This consumer's node id (client id and reports). Default: consumer-<pid>.
    #[arg(long, value_name = "ID")]
    node_id: Option<String>,

    /// Discipline the consumer's clock with SNTP (arrival times for skew analysis and timeouts).
    #[arg(long)]
    enable_ntp: bool,

    /// NTP server host[:port] (repeatable). Default: the config file's, else public pools.
    #[arg(long = "ntp-server", value_name = "HOST[:PORT]")]
    ntp_server: Vec<String>,

    /// Analyse the ordering of what arrives (FIFO, causality, skew) and report violations.
    #[arg(long)]
    analyze_ordering: bool,

    /// Analysis window and causal/total buffer capacity, in messages [default: 1000]. To deliver a
    /// large backlog causally, make it exceed partitions × records per producer batch (e.g. 10000):
    /// Kafka hands over whole batches, and a full buffer releases messages early ("buffer-full").
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    buffer_size: Option<u64>,

    /// Delivery order.
    #[arg(long, value_enum, default_value = "arrival")]
    delivery: DeliveryArg,

    /// How long a message waits for a missing predecessor, ms [default: 5000].
    #[arg(long, value_name = "MS")]
    causal_timeout: Option<u64>,

    /// Total-order membership (default: the nodes seen so far).
    #[arg(long, value_name = "A,B,C", value_delimiter = ',')]
    nodes: Vec<String>,

    /// Warn when a node's clock offset estimate exceeds this, ms [default: 100].
    #[arg(long, value_name = "MS")]
    max_skew_ms: Option<f64>,

    /// Exit once nothing new has arrived for this many seconds.
    #[arg(long, value_name = "SECS")]
    idle_timeout: Option<f64>,

    /// Exit after delivering N messages (later ones are not committed).
    #[arg(long, value_name = "N")]
    max_messages: Option<u64>,

    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: FormatArg,

    /// Check what is read against a producer's acknowledgement log (`kafka-producer --format
    /// json` output; repeatable, one per producer; `-` for stdin). Reads every partition from
    /// its start; see the exit status below.
    #[arg(long, value_name = "ACKS.jsonl", conflicts_with = "history")]
    verify: Vec<PathBuf>,

    /// Any librdkafka property, e.g. -X security.protocol=SASL_SSL (repeatable).
    #[arg(short = 'X', value_name = "KEY=VALUE")]
    properties: Vec<String>,

    /// TOML configuration file (flags override it).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,

    /// Serve Prometheus metrics at http://HOST:PORT/metrics while running (records consumed,
    /// delivered, malformed, violations by kind, buffer depth, SNTP figures with --enable-ntp).
    #[arg(long, value_name = "HOST:PORT")]
    metrics_addr: Option<std::net::SocketAddr>,

    /// Print shell completions for SHELL and exit.
    #[arg(long, value_name = "SHELL", exclusive = true)]
    completions: Option<clap_complete::Shell>,

    /// Print the man page (roff) and exit.
    #[arg(long, exclusive = true)]
    man: bool,

    /// More diagnostics on stderr (-v info, -vv debug; RUST_LOG overrides).
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count)]
    verbose: u8,
}

fn main() -> ExitCode {
    let cli: Cli = match common::parse("kafka-consumer") {
        Ok(c) => c,
        Err(code) => return code,
    };
    common::init_logging(cli.verbose);
    match common::generate(
        <Cli as clap::CommandFactory>::command(),
        cli.completions,
        cli.man,
    ) {
        Ok(true) => return ExitCode::SUCCESS,
        Ok(false) => {}
        Err(e) => {
            common::report_error("kafka-consumer", &e);
            return ExitCode::FAILURE;
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    // A small runtime in the background: signals and the SNTP task. The read loop itself is
    // synchronous (no per-message await).
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kafka-consumer: error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    install_signal_handlers(&runtime, stop.clone());
    let mut out: Box<dyn Output> = match cli.format {
        FormatArg::Json => Box::new(JsonSink::new(BufWriter::with_capacity(
            1 << 16,
            io::stdout(),
        ))),
        FormatArg::Text => Box::new(TextSink::new(
            BufWriter::with_capacity(1 << 16, io::stdout()),
            io::stderr(),
        )),
    };
    let mut summary: Option<Summary> = None;
    let result = run(&cli, &runtime, &stop, out.as_mut(), &mut summary);
    // The summary is printed on every exit path, even when nothing could be read.
    let summary = summary.unwrap_or_else(|| ConsumerEngine::new(EngineConfig::default()).summary());
    out.summary(&summary);
    let flushed = out.flush_all();
    match result {
        Ok(()) => match flushed {
            Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
                eprintln!("kafka-consumer: error: writing output: {e}");
                ExitCode::FAILURE
            }
            _ => verify_exit(summary.verify.as_ref()),
        },
        Err(e) => {
            common::report_error("kafka-consumer", &e);
            ExitCode::FAILURE
        }
    }
}

/// The exit status of a run that ended without error (documented in EXAMPLES).
fn verify_exit(report: Option<&kafka_timesync::verify::Report>) -> ExitCode {
    use kafka_timesync::verify::Outcome;
    match report.map(|r| r.outcome()) {
        Some(Outcome::Loss) => ExitCode::from(3),
        Some(Outcome::Violations) => ExitCode::from(4),
        Some(Outcome::Incomplete) => ExitCode::from(5),
        Some(Outcome::Clean) | None => ExitCode::SUCCESS,
    }
}

/// A sink the loop can flush and check.
trait Output: EventSink {
    fn flush_all(&mut self) -> io::Result<()>;
}

impl<W: Write> Output for JsonSink<W> {
    fn flush_all(&mut self) -> io::Result<()> {
        self.flush()
    }
}

impl<W: Write, E: Write> Output for TextSink<W, E> {
    fn flush_all(&mut self) -> io::Result<()> {
        self.flush()
    }
}

/// SIGINT / SIGTERM set `stop`; the read loop notices within its poll interval, commits and
/// prints the summary. A second signal exits at once.
fn install_signal_handlers(runtime: &tokio::runtime::Runtime, stop: Arc<AtomicBool>) {
    runtime.spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            eprintln!("kafka-consumer: warning: cannot install signal handlers");
            return;
        };
        for _ in 0..2 {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            if stop.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
        }
    });
}

/// Settings after overlaying the flags on the config file and the defaults.
struct Settings {
    topic: String,
    bootstrap: String,
    properties: Vec<(String, String)>,
    engine: EngineConfig,
    manual: bool,
    enable_ntp: bool,
    ntp_servers: Vec<String>,
    node_id: Option<String>,
    file: TimeSyncConfig,
}

fn settings(cli: &Cli) -> Result<Settings> {
    // Flags override the config file, which overrides the defaults.
    let file = TimeSyncConfig::load(cli.config.as_deref())?;
    let mut properties: Vec<(String, String)> = file
        .kafka
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for p in &cli.properties {
        // The error never echoes the argument: it may be a secret.
        properties.push(kafka_timesync::kafka::parse_property(p)?);
    }
    let mode = match cli.delivery {
        DeliveryArg::Arrival => DeliveryMode::Arrival,
        DeliveryArg::Causal => DeliveryMode::Causal,
        DeliveryArg::Total => DeliveryMode::Total,
    };
    if !cli.nodes.is_empty() && mode != DeliveryMode::Total {
        eprintln!("kafka-consumer: warning: --nodes only matters with --delivery total");
    }
    let max_skew_ms = cli.max_skew_ms.unwrap_or(file.max_skew_threshold);
    if !(max_skew_ms.is_finite() && max_skew_ms >= 0.0) {
        bail!("--max-skew-ms must be a non-negative number of milliseconds, got {max_skew_ms}");
    }
    if let Some(t) = cli.idle_timeout {
        if !(t.is_finite() && t > 0.0) {
            bail!("--idle-timeout must be a positive number of seconds, got {t}");
        }
    }
    let causal_timeout_ms = cli.causal_timeout.unwrap_or(file.causal_timeout_ms);
    if causal_timeout_ms == 0 {
        bail!("--causal-timeout must be at least 1 ms");
    }
    let nodes: Vec<NodeId> = cli
        .nodes
        .iter()
        .map(|n| n.trim())
        .filter(|n| !n.is_empty())
        .map(NodeId::from)
        .collect();
    let buffer_size = match cli.buffer_size {
        Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
        None => file.buffer_size,
    };
    let engine = EngineConfig {
        mode,
        buffer_size,
        causal_timeout_ms,
        nodes: (!nodes.is_empty()).then_some(nodes),
        analyze: cli.analyze_ordering,
        max_skew_ms,
        max_messages: cli.max_messages,
        limits: file.decode_limits(),
    };
    let ntp_servers = if cli.ntp_server.is_empty() {
        file.ntp_servers.clone()
    } else {
        cli.ntp_server.clone()
    };
    Ok(Settings {
        topic: cli.topic.clone().unwrap_or_default(),
        bootstrap: cli
            .bootstrap
            .clone()
            .unwrap_or_else(|| file.bootstrap.clone()),
        properties,
        manual: mode != DeliveryMode::Arrival
            || cli.from_beginning
            || cli.history.is_some()
            || !cli.verify.is_empty(),
        engine,
        enable_ntp: cli.enable_ntp || file.enable_ntp,
        ntp_servers,
        node_id: cli.node_id.clone().or_else(|| file.node_id.clone()),
        file,
    })
}

fn client_config(s: &Settings, cli: &Cli, node: &str) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", &s.bootstrap)
        .set("group.id", &cli.group)
        .set("client.id", node)
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .set("auto.commit.interval.ms", "1000")
        // A group's first run reads from the start: a crash before the first commit must not
        // skip anything on restart (at-least-once).
        .set("auto.offset.reset", "earliest")
        .set(
            "enable.partition.eof",
            if s.manual { "true" } else { "false" },
        )
        .set("socket.timeout.ms", "10000");
    if s.manual {
        // Every partition is prefetched into its own queue; bound what librdkafka holds per
        // partition (the default, 64 MiB each, is far more than the round-robin reader needs).
        cfg.set("queued.max.messages.kbytes", "16384");
    }
    // librdkafka's own log lines (connection failures are retried and logged per attempt) would
    // drown the one-line errors this binary reports itself: only with -v / -vv.
    let level = match cli.verbose {
        0 => RDKafkaLogLevel::Critical,
        1 => RDKafkaLogLevel::Warning,
        _ => RDKafkaLogLevel::Debug,
    };
    cfg.set_log_level(level);
    // rdkafka applies `set_log_level` only after creating the client, by which time the first
    // connection attempt may already have logged its failure; the property applies from the
    // start.
    cfg.set("log_level", (level as i32).to_string());
    for (k, v) in &s.properties {
        cfg.set(k, v);
    }
    cfg
}

fn kafka_error(e: &KafkaError, bootstrap: &str) -> String {
    match e.rdkafka_error_code() {
        Some(RDKafkaErrorCode::BrokerTransportFailure)
        | Some(RDKafkaErrorCode::AllBrokersDown)
        | Some(RDKafkaErrorCode::OperationTimedOut) => {
            format!("cannot reach Kafka at {bootstrap}: {e}")
        }
        _ => e.to_string(),
    }
}

fn run(
    cli: &Cli,
    runtime: &tokio::runtime::Runtime,
    stop: &AtomicBool,
    out: &mut dyn Output,
    summary: &mut Option<Summary>,
) -> Result<()> {
    let s = settings(cli)?;
    let acked = if cli.verify.is_empty() {
        None
    } else {
        let (acked, truncated) = kafka_timesync::verify::load_ack_logs(&cli.verify)?;
        for name in truncated {
            eprintln!("kafka-consumer: warning: {name}: the last line is cut short (a producer killed while writing?); skipped");
        }
        Some(acked)
    };
    let node = s
        .node_id
        .clone()
        .unwrap_or_else(|| format!("consumer-{}", std::process::id()));
    // Arrival times (skew analysis, timeouts) come from this node's physical clock, disciplined
    // by SNTP with --enable-ntp.
    let physical = Arc::new(PhysicalClock::new(Arc::new(SystemTimeSource)));
    let metrics = match cli.metrics_addr {
        Some(addr) => Some(common::serve_metrics(runtime, addr)?),
        None => None,
    };
    let _sync = if s.enable_ntp {
        let mut cfg = s.file.clone();
        cfg.ntp_servers = s.ntp_servers.clone();
        let handle = {
            let _guard = runtime.enter();
            kafka_timesync::ntp::spawn(Arc::clone(&physical), cfg.sync_options())
        };
        let handle = Arc::new(handle);
        if let Some(m) = &metrics {
            common::follow_sync(runtime, Arc::clone(m), Arc::clone(&handle));
        }
        common::wait_initial_sync(&handle, Duration::from_secs(5), "arrival times use");
        Some(handle)
    } else {
        None
    };
    let clock: Arc<dyn TimeSource> = physical;
    let consumer: Arc<BaseConsumer<Quiet>> = Arc::new(
        client_config(&s, cli, &node)
            .create_with_context(Quiet)
            .map_err(|e| anyhow!("invalid Kafka client configuration: {e}"))?,
    );

    let metadata = consumer
        .fetch_metadata(Some(&s.topic), Duration::from_secs(10))
        .map_err(|e| anyhow!("{}", kafka_error(&e, &s.bootstrap)))?;
    let topic_md = metadata
        .topics()
        .iter()
        .find(|t| t.name() == s.topic)
        .ok_or_else(|| anyhow!("topic '{}' not found on {}", s.topic, s.bootstrap))?;
    if let Some(err) = topic_md.error() {
        bail!(
            "topic '{}' is not readable on {}: {:?}",
            s.topic,
            s.bootstrap,
            err
        );
    }
    let partitions: Vec<i32> = topic_md.partitions().iter().map(|p| p.id()).collect();
    if partitions.is_empty() {
        bail!("topic '{}' does not exist on {}", s.topic, s.bootstrap);
    }

    let mut floors: BTreeMap<i32, i64> = BTreeMap::new();
    if s.manual {
        // Committed offsets are fetched explicitly: not every broker honours Offset::Stored on a
        // manual assignment.
        let stored = if cli.from_beginning || cli.history.is_some() {
            None
        } else {
            let mut tpl = TopicPartitionList::new();
            for &p in &partitions {
                tpl.add_partition(&s.topic, p);
            }
            Some(
                consumer
                    .committed_offsets(tpl, Duration::from_secs(10))
                    .map_err(|e| {
                        anyhow!(
                            "fetching committed offsets of group '{}': {}",
                            cli.group,
                            kafka_error(&e, &s.bootstrap)
                        )
                    })?,
            )
        };
        let mut tpl = TopicPartitionList::new();
        for &p in &partitions {
            let offset = if cli.from_beginning {
                Offset::Beginning
            } else if let Some(n) = cli.history {
                let (lo, hi) = consumer
                    .fetch_watermarks(&s.topic, p, Duration::from_secs(10))
                    .map_err(|e| anyhow!("{}", kafka_error(&e, &s.bootstrap)))?;
                Offset::Offset(lo.max(hi.saturating_sub(i64::try_from(n).unwrap_or(i64::MAX))))
            } else {
                match stored
                    .as_ref()
                    .and_then(|c| c.find_partition(&s.topic, p))
                    .map(|e| e.offset())
                {
                    // Resume: read from the partition's start; what lies below the commit is
                    // replayed into the ordering state, not delivered again. Also, a fetch
                    // starting inside a record batch is not served correctly by every broker
                    // (Tansu 0.6 skips the rest of that batch), so starting at the commit itself
                    // could lose messages.
                    Some(Offset::Offset(c)) if c > 0 => {
                        floors.insert(p, c);
                        Offset::Beginning
                    }
                    // Nothing committed yet: from the start (see auto.offset.reset).
                    _ => Offset::Beginning,
                }
            };
            tpl.add_partition_offset(&s.topic, p, offset)
                .map_err(|e| anyhow!("assigning partition {p}: {e}"))?;
        }
        consumer
            .assign(&tpl)
            .map_err(|e| anyhow!("assigning partitions: {e}"))?;
    } else {
        consumer
            .subscribe(&[&s.topic])
            .map_err(|e| anyhow!("subscribing to '{}': {e}", s.topic))?;
    }

    let mut engine = ConsumerEngine::new(s.engine.clone());
    let mut verifier =
        acked.map(|a| Verifier::new(kafka_timesync::verify::Checker::new(a), metrics.clone()));
    if let Some(v) = verifier.as_mut() {
        v.start(out);
    }
    let mut gauges = Gauges {
        metrics,
        last: None,
    };
    let result = consume(
        cli,
        &s,
        stop,
        &consumer,
        &partitions,
        &mut engine,
        clock.as_ref(),
        out,
        floors,
        &mut gauges,
        verifier.as_mut(),
    );
    // Stop, commit what was delivered, report — whatever ended the loop.
    let committed = commit(&consumer, &s.topic, &engine, CommitMode::Sync);
    gauges.update(&engine);
    let mut report = engine.summary();
    if let Some(v) = verifier.as_mut() {
        // Where each log starts now: acknowledged writes below it can no longer be read.
        for &p in &partitions {
            if let Ok((low, _)) = consumer.fetch_watermarks(&s.topic, p, Duration::from_secs(10)) {
                v.read_up_to(p, low, out);
            }
        }
        report.verify = Some(v.report());
    }
    *summary = Some(report);
    result?;
    committed.map_err(|e| anyhow!("committing offsets: {}", kafka_error(&e, &s.bootstrap)))
}

fn positions_tpl(
    topic: &str,
    engine: &ConsumerEngine,
    assigned: &BTreeSet<i32>,
) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    for (p, o) in engine.commit_positions() {
        if assigned.contains(&p) {
            let _ = tpl.add_partition_offset(topic, p, Offset::Offset(o));
        }
    }
    tpl
}

fn assigned(consumer: &BaseConsumer<Quiet>) -> BTreeSet<i32> {
    consumer
        .assignment()
        .map(|tpl| tpl.elements().iter().map(|e| e.partition()).collect())
        .unwrap_or_default()
}

fn commit(
    consumer: &BaseConsumer<Quiet>,
    topic: &str,
    engine: &ConsumerEngine,
    mode: CommitMode,
) -> std::result::Result<(), KafkaError> {
    let tpl = positions_tpl(topic, engine, &assigned(consumer));
    if tpl.count() == 0 {
        return Ok(());
    }
    consumer.store_offsets(&tpl)?;
    consumer.commit(&tpl, mode)
}

/// Per-run reading state shared by the main queue and the partition queues.
struct Reader<'a> {
    engine: &'a mut ConsumerEngine,
    out: &'a mut dyn Output,
    clock: &'a dyn TimeSource,
    /// Per partition, one past the last offset taken in this run.
    seen: BTreeMap<i32, i64>,
    /// Per partition, the committed position this run resumed from.
    floors: BTreeMap<i32, i64>,
    last_record: Instant,
    transient_errors: u64,
    bootstrap: &'a str,
    /// `--verify`: sees every record taken from Kafka, before any filtering.
    verify: Option<&'a mut Verifier>,
}

impl Reader<'_> {
    fn record(&mut self, msg: &BorrowedMessage<'_>) {
        self.last_record = Instant::now();
        // Offsets below `seen` were taken already in this run (a broker serving a batch twice);
        // offsets below the resume position were processed by an earlier run and only restore
        // the ordering state.
        let (p, o) = (msg.partition(), msg.offset());
        if let Some(v) = self.verify.as_deref_mut() {
            v.record(p, o, msg.payload(), self.out);
        }
        let next = self.seen.entry(p).or_insert(0);
        if o < *next {
            return;
        }
        *next = o.saturating_add(1);
        let rec = Record {
            partition: p,
            offset: o,
            payload: msg.payload(),
            arrival_ns: self.clock.now_ns(),
        };
        if self.floors.get(&p).is_some_and(|f| o < *f) {
            self.engine.replay(&rec, self.out);
        } else {
            self.engine.on_record(&rec, self.out);
        }
    }

    /// Fatal errors end the run; transient ones are reported (sparsely) and retried by librdkafka.
    fn error(&mut self, e: &KafkaError) -> Result<()> {
        if let Some(code) = e.rdkafka_error_code() {
            if matches!(
                code,
                RDKafkaErrorCode::UnknownTopicOrPartition
                    | RDKafkaErrorCode::UnknownTopic
                    | RDKafkaErrorCode::TopicAuthorizationFailed
                    | RDKafkaErrorCode::GroupAuthorizationFailed
                    | RDKafkaErrorCode::SaslAuthenticationFailed
                    | RDKafkaErrorCode::Fatal
            ) {
                bail!("{}", kafka_error(e, self.bootstrap));
            }
        }
        self.transient_errors += 1;
        if self.transient_errors.is_power_of_two() {
            eprintln!(
                "kafka-consumer: warning: {} (retrying; {} so far)",
                kafka_error(e, self.bootstrap),
                self.transient_errors
            );
        }
        Ok(())
    }
}

/// The read loop.
///
/// With manual assignment every partition gets its own librdkafka queue, read round-robin one
/// record at a time: librdkafka prefetches each partition independently and, from a single queue,
/// would hand over tens of thousands of records of one partition before the next — which a causal
/// or total-order buffer can only absorb by releasing messages early. Round-robin keeps the nodes
/// (one partition each, by key) in step, so the buffer holds only what is really out of order.
#[allow(clippy::too_many_arguments)]
fn consume(
    cli: &Cli,
    s: &Settings,
    stop: &AtomicBool,
    consumer: &Arc<BaseConsumer<Quiet>>,
    partitions: &[i32],
    engine: &mut ConsumerEngine,
    clock: &dyn TimeSource,
    out: &mut dyn Output,
    floors: BTreeMap<i32, i64>,
    gauges: &mut Gauges,
    verify: Option<&mut Verifier>,
) -> Result<()> {
    const POLL: Duration = Duration::from_millis(100);
    const HOUSEKEEPING: Duration = Duration::from_millis(200);
    let idle = cli.idle_timeout.map(Duration::from_secs_f64);
    let mut queues = Vec::new();
    if s.manual {
        let me = std::thread::current();
        for &p in partitions {
            if let Some(mut q) = consumer.split_partition_queue(&s.topic, p) {
                let me = me.clone();
                q.set_nonempty_callback(move || me.unpark());
                queues.push((p, q));
            }
        }
    }
    let ordering = s.manual && engine.config().mode != DeliveryMode::Arrival;
    let cap = engine.config().buffer_size.max(1) as u64;
    // Flow control: partitions not read for now, and partitions known to be caught up.
    let mut holding: BTreeSet<i32> = BTreeSet::new();
    let mut at_eof: BTreeSet<i32> = BTreeSet::new();
    let mut since_check = 0u32;
    let mut r = Reader {
        engine,
        out,
        clock,
        seen: BTreeMap::new(),
        floors,
        last_record: Instant::now(),
        transient_errors: 0,
        bootstrap: &s.bootstrap,
        verify,
    };
    if !queues.is_empty() {
        // Records fetched between the assignment and the split above wait on the main queue,
        // ahead of everything the partition queues will hold: they are taken first, or they
        // would come after later offsets of their partition (and be taken for a batch served
        // twice). `kafka-consumer --verify` found this on the three-node cluster.
        while let Some(res) = consumer.poll(Duration::ZERO) {
            match res {
                Ok(msg) => r.record(&msg),
                Err(KafkaError::PartitionEOF(_)) => {}
                Err(e) => r.error(&e)?,
            }
        }
    }
    let mut last_housekeeping = Instant::now();
    while !stop.load(Ordering::Relaxed) && !r.engine.is_done() {
        let now = clock.now_ns();
        let wait = match r.engine.next_deadline() {
            Some(d) if d <= now => Duration::ZERO,
            Some(d) => POLL.min(Duration::from_nanos(u64::try_from(d - now).unwrap_or(0))),
            None => POLL,
        };
        if ordering {
            since_check += 1;
            let b4 = r.engine.buffered().saturating_mul(4);
            if b4 <= cap {
                holding.clear();
            } else if b4 >= 2 * cap && (holding.is_empty() || since_check >= 64) {
                since_check = 0;
                holding = hold_back(r.engine, queues.len(), cap);
            }
            if !holding.is_empty()
                && queues
                    .iter()
                    .all(|(p, _)| holding.contains(p) || at_eof.contains(p))
            {
                // Everything else is caught up: the held messages' causes are not coming now.
                holding.clear();
            }
        }
        let mut got = false;
        for (p, q) in &queues {
            if holding.contains(p) {
                continue;
            }
            match q.poll(Duration::ZERO) {
                Some(Ok(msg)) => {
                    at_eof.remove(p);
                    r.record(&msg);
                    got = true;
                }
                Some(Err(KafkaError::PartitionEOF(_))) => {
                    at_eof.insert(*p);
                }
                Some(Err(e)) => r.error(&e)?,
                None => {}
            }
        }
        if got {
            // Serve librdkafka's main queue (errors, events) without waiting, and go on.
            if let Some(res) = consumer.poll(Duration::ZERO) {
                match res {
                    Ok(msg) => r.record(&msg),
                    Err(e) => r.error(&e)?,
                }
            }
            r.engine.tick(clock.now_ns(), r.out);
            continue;
        }
        // Nothing in the partition queues: wait on the main queue (group mode: the records
        // themselves) or, with partition queues, until one of them wakes us.
        let main_wait = if queues.is_empty() {
            wait
        } else {
            Duration::ZERO
        };
        match consumer.poll(main_wait) {
            Some(Ok(msg)) => {
                r.record(&msg);
                continue;
            }
            Some(Err(KafkaError::PartitionEOF(_))) => {}
            Some(Err(e)) => r.error(&e)?,
            None => {
                // Quiet moment: make output visible to people and pipes.
                r.out.flush_all().context("writing output")?;
                if !queues.is_empty() {
                    std::thread::park_timeout(wait.min(Duration::from_millis(1)));
                }
            }
        }
        r.engine.tick(clock.now_ns(), r.out);
        if !holding.is_empty() {
            // Held-back partitions still have records: the idle clock does not run.
            r.last_record = Instant::now();
        }
        if idle.is_some_and(|d| r.last_record.elapsed() >= d) {
            break;
        }
        if last_housekeeping.elapsed() >= HOUSEKEEPING {
            last_housekeeping = Instant::now();
            gauges.update(r.engine);
            let tpl = positions_tpl(&s.topic, r.engine, &assigned(consumer));
            if tpl.count() > 0 {
                // Auto-commit (every second) commits what is stored; store only delivered
                // positions.
                let _ = consumer.store_offsets(&tpl);
            }
        }
    }
    Ok(())
}

/// The partitions to stop reading while the ordering buffer is at least half full: those holding
/// more than their share of the waiting messages. Their messages wait for causes in the other
/// partitions, which librdkafka may not have fetched yet; reading on would only overflow the
/// buffer and force early releases. (Pausing in librdkafka instead would refetch from the middle
/// of a record batch on resume, which not every broker serves correctly.) Never all of them.
fn hold_back(engine: &ConsumerEngine, partitions: usize, cap: u64) -> BTreeSet<i32> {
    let share = cap / (2 * partitions.max(1) as u64);
    let set: BTreeSet<i32> = engine
        .held_by_partition()
        .filter(|(_, n)| *n > share)
        .map(|(p, _)| p)
        .collect();
    if set.len() >= partitions {
        BTreeSet::new()
    } else {
        set
    }
}

/// Prometheus metrics fed from the engine's counters (at housekeeping, not per record).
struct Gauges {
    metrics: Option<Arc<Metrics>>,
    last: Option<Summary>,
}

impl Gauges {
    fn update(&mut self, engine: &ConsumerEngine) {
        let Some(m) = &self.metrics else { return };
        let now = engine.summary();
        let zero = ConsumerEngine::new(EngineConfig::default()).summary();
        let last = self.last.as_ref().unwrap_or(&zero);
        m.add_consumed(now.received.saturating_sub(last.received));
        m.add_delivered(now.delivered.saturating_sub(last.delivered));
        m.add_malformed(now.malformed.saturating_sub(last.malformed));
        for (kind, n) in &now.violations {
            let before = last.violations.get(kind).copied().unwrap_or(0);
            if let Ok(label) = kind.parse::<ViolationLabel>() {
                for _ in before..*n {
                    m.inc_violation(label);
                }
            }
        }
        m.set_causal_buffer_depth(usize::try_from(now.buffered).unwrap_or(usize::MAX));
        self.last = Some(now);
    }
}

/// The librdkafka client context: librdkafka's own error callbacks (connection failures are
/// retried and reported per attempt) go to `tracing` at debug level, secrets scrubbed, so the
/// one-line errors this binary reports itself are not drowned. `-vv` shows them.
struct Quiet;

impl ClientContext for Quiet {
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!(target: "librdkafka", "{}", common::scrub(&format!("{error}: {reason}")));
    }
}

impl ConsumerContext for Quiet {}
