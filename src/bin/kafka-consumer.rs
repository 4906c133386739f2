//! kafka-consumer: read a topic of kafka-timesync messages, analyse their ordering and deliver them
//! in arrival, causal or total order. A thin shell around `kafka_timesync::consumer::ConsumerEngine`.

mod common;

use anyhow::{anyhow, Result};
use clap::{Parser, ValueEnum};
use kafka_timesync::clock::PhysicalClock;
use kafka_timesync::config::{values, Overrides, TimeSyncConfig};
use kafka_timesync::consumer::{
    ConsumerEngine, ConsumerSummary, DeliveryMode, EngineConfig, JsonSink, Resumed, TextSink,
};
use kafka_timesync::kafka::{ClientSettings, FlushSink, Reset, Session, SessionOptions, Start};
use kafka_timesync::time::{SystemTimeSource, TimeSource};
use kafka_timesync::verify;
use kafka_timesync::NodeId;
use std::io::{self, BufWriter};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

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
  kafka-producer time-sync --create-topic 3 --count 100000 --format json > acks.jsonl
  kafka-consumer time-sync --verify acks.jsonl --idle-timeout 5

  # SASL over TLS: any librdkafka property with -X (secrets are never printed)
  kafka-consumer time-sync -X security.protocol=SASL_SSL -X sasl.mechanisms=PLAIN \\
      -X sasl.username=me -X sasl.password=secret

Partitions and replicas:
  In causal and total modes the consumer reads ALL partitions of the topic itself (manual
  assignment; the group id only stores committed offsets), so several consumers are replicas that
  each deliver every message in the same order. Arrival mode uses normal group-managed
  partitions (consumers of one group share the partitions), except with --from-beginning,
  --history or --verify, which read every partition from the requested position.

Offsets:
  Only what has been delivered is committed (every second and at exit; never automatically): per
  partition, up to the lowest offset still held in the causal/total buffer. A run starts at the
  group's committed offsets (a partition without one: auto.offset.reset, earliest by default),
  never below them; --from-beginning and --history N ignore them. Held messages are read again by
  the next run; what a crash interrupted after the last commit is delivered again (at-least-once)
  in arrival mode.
  Restart in causal and total modes: each commit also stores the delivery order's state (per node
  the messages delivered; total order: its last position) in the offsets' commit metadata, so the
  next run continues exactly: a message whose predecessors were delivered before the restart is
  delivered at once (release ready), and one delivered before is not delivered again (summary:
  already_delivered). The state must fit in the broker's offset.metadata.max.bytes (4096 bytes by
  default: about 140 nodes of 20-character ids). If it does not, or is missing or unreadable, the
  consumer warns and resumes as with --history: everything a node sent before its first message
  read counts as delivered. (That rule expects each node's messages in one partition, as the
  producer writes them.)
  SIGINT/SIGTERM: stop, commit, print the summary. The summary is printed on every exit.

Message forms:
  Each record is read in the form it has, without a flag: a record with a kts-v header carries
  its clocks in kts-* headers and its value is the content, any bytes (kafka-producer --envelope
  headers); any other record is a JSON envelope. Both are analysed and delivered alike.

JSON events (--format json), one per line on stdout:
  {\"event\":\"deliver\",\"partition\":P,\"offset\":O,\"release\":\"ready\"|\"after-skip\"|\"timeout\"|\"buffer-full\"|\"late\",\"message\":{...}}
    (header-stamped records: the equivalent envelope, the value as content, then
     ,\"form\":\"headers\",\"value_encoding\":\"text\"|\"base64\")
  {\"event\":\"violation\",\"kind\":K,\"node\":\"...\",\"ids\":[\"...\"],\"detail\":\"...\"}
  {\"event\":\"malformed\",\"partition\":P,\"offset\":O,\"error\":\"...\"}
  {\"event\":\"summary\",\"received\":N,\"delivered\":N,\"malformed\":N,\"buffered\":N,\"duplicates\":N,\"already_delivered\":N,
   \"violations\":{K:N,...},\"concurrent_pairs\":N,\"without_seq\":N,\"without_vector\":N,\"unordered\":N,
   \"nodes\":{\"<id>\":{\"messages\":N,\"offset_ms\":X}},\"verify\":{...} (with --verify)}

Verification (--verify ACKS.jsonl, the producers' `--format json` output; docs/verify.md):
  every partition is read from its start (committed offsets are ignored); violations lost_write,
  inconsistent_offset, duplicate_write, nonmonotonic_send, aborted_read (with \"partition\" and
  \"offsets\"). Exit status: 0 every acknowledged write read where acknowledged; 3 acknowledged
  writes lost; 4 other violations, none lost; 5 no violation but some acknowledged writes not
  reached; 1 error; 2 usage or bad configuration (a flag, -X or a config-file value), in every
  mode.";

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

    /// Kafka bootstrap servers (host:port[,host:port...]) [env: KAFKA_BOOTSTRAP] [default: the
    /// config file's bootstrap, else localhost:9092].
    #[arg(long, value_name = "HOSTS")]
    bootstrap: Option<String>,

    /// Consumer group: shares partitions in arrival mode, stores committed offsets in every mode.
    #[arg(long, value_name = "GROUP", default_value = "kafka-timesync")]
    group: String,

    /// Start at the beginning of every partition, ignoring committed offsets. (Without it the
    /// group's committed offsets are used; a partition without one starts as auto.offset.reset
    /// says: the beginning unless -X auto.offset.reset=latest.)
    #[arg(long, conflicts_with = "history")]
    from_beginning: bool,

    /// First read the last N messages of every partition, then follow. In causal mode what a
    /// node sent before them counts as delivered (nothing waits for it).
    #[arg(long, value_name = "N")]
    history: Option<u64>,

    /// This consumer's node id (client id and reports). Default: consumer-<pid>.
    #[arg(long, value_name = "ID")]
    node_id: Option<String>,

    /// Discipline the consumer's clock with SNTP (arrival times for skew analysis and timeouts).
    #[arg(long)]
    enable_ntp: bool,

    /// NTP server host[:port] (repeatable; a malformed address or a port beyond 65535 is a usage
    /// error, an unreachable server a warning). Default: the config file's, else public pools.
    #[arg(long = "ntp-server", value_name = "HOST[:PORT]", value_parser = values::parse_ntp_server)]
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

    /// How long a message waits for a missing predecessor, ms (≥ 1) [default: 5000].
    #[arg(long, value_name = "MS", value_parser = positive_ms)]
    causal_timeout: Option<u64>,

    /// Total-order membership (default: the nodes seen so far).
    #[arg(long, value_name = "A,B,C", value_delimiter = ',')]
    nodes: Vec<String>,

    /// Node order of the Python prototype's array-form vector_time ([1,2,3]: entry i is node
    /// i's counter) [default: config key legacy_vector_nodes; unmapped arrays carry no vector].
    #[arg(long, value_name = "A,B,C", value_delimiter = ',')]
    legacy_vector_nodes: Option<Vec<String>>,

    /// Warn when a node's clock offset estimate exceeds this, ms (≥ 0) [default: 100].
    #[arg(long, value_name = "MS", allow_negative_numbers = true, value_parser = non_negative_ms)]
    max_skew_ms: Option<f64>,

    /// Exit once nothing new has arrived for this many seconds (> 0).
    #[arg(long, value_name = "SECS", value_parser = positive_seconds)]
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
    let runtime = match common::runtime() {
        Ok(rt) => rt,
        Err(e) => {
            common::report_error("kafka-consumer", &e);
            return ExitCode::FAILURE;
        }
    };
    // SIGINT / SIGTERM: the read loop notices within its poll interval, commits and prints the
    // summary.
    common::stop_on_signal(&runtime, stop.clone(), "kafka-consumer", None);
    let mut out: Box<dyn FlushSink> = match cli.format {
        FormatArg::Json => Box::new(JsonSink::new(BufWriter::with_capacity(
            1 << 16,
            io::stdout(),
        ))),
        FormatArg::Text => Box::new(TextSink::new(
            BufWriter::with_capacity(1 << 16, io::stdout()),
            io::stderr(),
        )),
    };
    let mut summary: Option<ConsumerSummary> = None;
    let result = run(&cli, &runtime, &stop, out.as_mut(), &mut summary);
    // The summary is printed on every exit path, even when nothing could be read.
    let summary = summary.unwrap_or_else(|| ConsumerEngine::new(EngineConfig::default()).summary());
    out.summary(&summary);
    let flushed = out.flush_output();
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
            common::failure_code(&e)
        }
    }
}

/// The exit status of a run that ended without error (documented in EXAMPLES).
fn verify_exit(report: Option<&verify::Report>) -> ExitCode {
    match report.map(|r| r.outcome()) {
        Some(verify::Outcome::Loss) => ExitCode::from(3),
        Some(verify::Outcome::Violations) => ExitCode::from(4),
        Some(verify::Outcome::Incomplete) => ExitCode::from(5),
        Some(verify::Outcome::Clean) | None => ExitCode::SUCCESS,
    }
}

impl Cli {
    /// The flags that override config keys.
    fn overrides(&self) -> Overrides {
        Overrides {
            bootstrap: self.bootstrap.clone(),
            node_id: self.node_id.clone(),
            enable_ntp: self.enable_ntp,
            ntp_servers: self.ntp_server.clone(),
            max_skew_ms: self.max_skew_ms,
            causal_timeout_ms: self.causal_timeout,
            buffer_size: self
                .buffer_size
                .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
            legacy_vector_nodes: self.legacy_vector_nodes.clone(),
            ..Overrides::default()
        }
    }
}

/// `--causal-timeout`: a whole number of milliseconds, at least 1.
fn positive_ms(s: &str) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(t) if t >= 1 => Ok(t),
        _ => Err(format!(
            "'{s}' is not a whole number of milliseconds from 1"
        )),
    }
}

/// `--max-skew-ms`: a non-negative, finite number of milliseconds.
fn non_negative_ms(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(t) if t.is_finite() && t >= 0.0 => Ok(t),
        _ => Err(format!(
            "'{s}' is not a non-negative number of milliseconds"
        )),
    }
}

/// `--idle-timeout`: a positive, finite number of seconds.
fn positive_seconds(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(t) if t.is_finite() && t > 0.0 => Ok(t),
        _ => Err(format!("'{s}' is not a positive number of seconds")),
    }
}

/// This run's settings: the merged configuration and what the consumer derives from it.
struct Settings {
    topic: String,
    /// Bootstrap, the config file's `[kafka]` table, then `-X` (the last wins), over `client.id`.
    kafka: ClientSettings,
    engine: EngineConfig,
    manual: bool,
    cfg: TimeSyncConfig,
}

fn settings(cli: &Cli) -> Result<Settings> {
    let cfg = common::settings("kafka-consumer", cli.config.as_deref(), &cli.overrides())?;
    let node = cfg
        .node_id
        .clone()
        .unwrap_or_else(|| format!("consumer-{}", std::process::id()));
    let kafka = common::client_settings(&cfg, Some(&node), &cli.properties)?;
    let mode = match cli.delivery {
        DeliveryArg::Arrival => DeliveryMode::Arrival,
        DeliveryArg::Causal => DeliveryMode::Causal,
        DeliveryArg::Total => DeliveryMode::Total,
    };
    if !cli.nodes.is_empty() && mode != DeliveryMode::Total {
        eprintln!("kafka-consumer: warning: --nodes only matters with --delivery total");
    }
    let nodes: Vec<NodeId> = cli
        .nodes
        .iter()
        .map(|n| n.trim())
        .filter(|n| !n.is_empty())
        .map(NodeId::from)
        .collect();
    let engine = EngineConfig {
        mode,
        buffer_size: cfg.buffer_size,
        causal_timeout_ms: cfg.causal_timeout_ms,
        nodes: (!nodes.is_empty()).then_some(nodes),
        analyze: cli.analyze_ordering,
        max_skew_ms: cfg.max_skew_threshold,
        max_messages: cli.max_messages,
        limits: cfg.decode_limits(),
    };
    Ok(Settings {
        topic: cli.topic.clone().unwrap_or_default(),
        kafka,
        manual: mode != DeliveryMode::Arrival
            || cli.from_beginning
            || cli.history.is_some()
            || !cli.verify.is_empty(),
        engine,
        cfg,
    })
}

fn run(
    cli: &Cli,
    runtime: &tokio::runtime::Runtime,
    stop: &AtomicBool,
    out: &mut dyn FlushSink,
    summary: &mut Option<ConsumerSummary>,
) -> Result<()> {
    let s = settings(cli)?;
    let acked = if cli.verify.is_empty() {
        None
    } else {
        let (acked, truncated) = verify::load_ack_logs(&cli.verify)?;
        for name in truncated {
            eprintln!("kafka-consumer: warning: {name}: the last line is cut short (a producer killed while writing?); skipped");
        }
        Some(acked)
    };
    // Arrival times (skew analysis, timeouts) come from this node's physical clock, disciplined
    // by SNTP with --enable-ntp.
    let physical = Arc::new(PhysicalClock::new(Arc::new(SystemTimeSource)));
    let metrics = match cli.metrics_addr {
        Some(addr) => Some(common::serve_metrics(runtime, addr)?),
        None => None,
    };
    let _sync = s.cfg.enable_ntp.then(|| {
        common::start_sync(
            runtime,
            &physical,
            &s.cfg,
            metrics.as_ref(),
            "arrival times use",
        )
    });
    // Verification checks the whole log, whatever the group committed.
    let start = if cli.from_beginning || acked.is_some() {
        Start::Beginning
    } else if let Some(n) = cli.history {
        Start::Last(n)
    } else {
        let reset = s.kafka.get("auto.offset.reset").unwrap_or("earliest");
        let fallback = Reset::parse(reset).ok_or_else(|| {
            anyhow!("auto.offset.reset={reset} is not supported here (use earliest or latest)")
        })?;
        Start::Committed { fallback }
    };
    let mode = s.engine.mode;
    let (session, resumed) = Session::open(SessionOptions {
        topic: &s.topic,
        group: &cli.group,
        kafka: &s.kafka,
        engine: s.engine,
        manual: s.manual,
        start,
    })?;
    match resumed {
        Some(Resumed::Assumed { why: Some(why) }) => eprintln!(
            "kafka-consumer: warning: {why}; resuming without it{} (see --help, Offsets)",
            if mode == DeliveryMode::Causal {
                ": a node's messages before its first one read count as delivered"
            } else {
                ""
            }
        ),
        Some(Resumed::Restored { nodes }) => tracing::info!(
            "resuming {mode} delivery at the committed offsets with the stored state of {nodes} nodes"
        ),
        _ => {}
    }
    let clock: &dyn TimeSource = physical.as_ref();
    let idle = cli.idle_timeout.map(Duration::from_secs_f64);
    let (report, result) = session.run(idle, stop, clock, out, acked, metrics);
    *summary = Some(report);
    Ok(result?)
}
