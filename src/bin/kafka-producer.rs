//! kafka-producer: stamps messages with physical, Lamport, vector or hybrid logical clock
//! timestamps and sends them to a Kafka topic. See `kafka-producer --help`.

use anyhow::{bail, Context as _, Result};
use clap::{Parser, ValueEnum};
use kafka_timesync::clock::{ClockType, PhysicalClock};
use kafka_timesync::config::{values, Overrides};
use kafka_timesync::envelope::Form;
use kafka_timesync::kafka::KafkaError;
use kafka_timesync::producer::pipeline::{self, Input, OutputFormat, PipelineOptions};
use kafka_timesync::producer::{resume, Stamper, StamperConfig};
use kafka_timesync::state::{default_state_dir, PersistedClocks, StateStore};
use kafka_timesync::time::{SystemTimeSource, TimeSource};
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

mod common;

const EXAMPLES: &str = "\
Examples:
  # one message, physical clock, broker from $KAFKA_BOOTSTRAP or localhost:9092
  kafka-producer time-sync 'Hello World!'
  # every stdin line is a message (like kcat -P), Lamport clock, JSON delivery reports
  printf 'a\\nb\\n' | kafka-producer --node-id producer-1 --clock-type logical --format json time-sync
  # read the topic first and merge what others wrote (happened-before across nodes)
  kafka-producer --observe --node-id B --clock-type vector time-sync 'reply'
  # a node whose clock is 100 ms fast, drifts 0.1 ms/s and varies randomly by ±5 ms
  kafka-producer --simulate-skew 100 --simulate-drift 0.1 --random-variation 5 time-sync 'skewed'
  # discipline the clock with SNTP before the first message
  kafka-producer --enable-ntp --ntp-server 127.0.0.1:12300 --clock-type hybrid time-sync 'synced'
  # stamp an existing binary payload: the value is the file's bytes, the clocks go in headers
  kafka-producer --envelope headers --value-file photo.jpg time-sync
  # load: 100000 messages of 300 bytes, vector clock, no persisted state
  kafka-producer --count 100000 --size 300 --clock-type vector --no-state time-sync
  # on a broker that does not auto-create topics: create it with 3 partitions first
  kafka-producer --create-topic 3 time-sync 'first message'
  # SASL over TLS (secret values are never printed)
  kafka-producer -X security.protocol=SASL_SSL -X sasl.mechanism=PLAIN \\
      -X sasl.username=me -X sasl.password=... time-sync 'hi'

A restart continues the clocks exactly: at start-up the producer reads back its own last
record in the topic (in the partition its key maps to) and continues seq, Lamport, vector and
hybrid from it, so even after a kill the next message is seq + 1. The state file in --state-dir
(default $XDG_STATE_HOME/kafka-timesync or ~/.local/state/kafka-timesync) caches the clocks and
is the fallback when the topic cannot be read back: then a warning says so and seq may skip up
to 4096. After a kill it also waits until the killed run's last records have landed (2 s of
quiet); with --no-state it cannot tell a kill from a clean exit and does not wait. A second
running process with the same node id and state directory is refused.
Exit status: 0 when every message was delivered, 1 otherwise (with the reason), 2 for usage errors
and bad configuration (a flag, -X or a config-file value).";

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
}

/// Stamp Kafka messages with physical, Lamport, vector or hybrid logical clock timestamps.
#[derive(Debug, Parser)]
#[command(name = "kafka-producer", version, after_help = EXAMPLES)]
struct Cli {
    /// Topic to send to (must exist unless --create-topic is given).
    #[arg(required_unless_present_any = ["completions", "man"])]
    topic: Option<String>,
    /// Send this one message. Without it, every line of standard input is a message.
    #[arg(conflicts_with_all = ["count", "value_file"])]
    message: Option<String>,
    /// Send the bytes of this file as one message (binary safe with --envelope headers; the
    /// JSON envelope needs UTF-8 text).
    #[arg(long, value_name = "PATH", conflicts_with = "count")]
    value_file: Option<PathBuf>,
    /// Where the clocks go: json wraps the content in the JSON envelope (the record value);
    /// headers puts them in kts-* record headers and sends the content as the value, byte for
    /// byte [default: json, or the config file's `envelope`].
    #[arg(long, value_name = "FORM", value_parser = parse_form)]
    envelope: Option<Form>,
    /// Kafka bootstrap servers, host:port[,host:port…] [env: KAFKA_BOOTSTRAP] [default: the config
    /// file's bootstrap, else localhost:9092].
    #[arg(long, value_name = "HOST:PORT")]
    bootstrap: Option<String>,
    /// This node's id: the message key and the vector-clock entry [default: producer-<hostname>].
    #[arg(long, value_name = "ID")]
    node_id: Option<String>,
    /// The clock that orders the messages.
    #[arg(long, value_name = "TYPE", value_parser = parse_clock_type)]
    clock_type: Option<ClockType>,
    /// Discipline the clock with SNTP; the first message waits (a few seconds at most) for the
    /// initial synchronisation.
    #[arg(long)]
    enable_ntp: bool,
    /// NTP server host[:port] (repeatable; a malformed address or a port beyond 65535 is a usage
    /// error, an unreachable server a warning) [default: pool.ntp.org, time.google.com,
    /// time.cloudflare.com].
    #[arg(long, value_name = "HOST[:PORT]", value_parser = values::parse_ntp_server)]
    ntp_server: Vec<String>,
    /// Seconds between SNTP polls.
    #[arg(long, value_name = "SECS")]
    sync_interval: Option<f64>,
    /// Simulated constant clock offset, milliseconds (positive = ahead), within ±86400000 (one
    /// day).
    #[arg(long, value_name = "MS", allow_negative_numbers = true, value_parser = common::bounded(values::SKEW_MS))]
    simulate_skew: Option<f64>,
    /// Simulated drift, milliseconds gained per second since start, within ±500 (the clock keeps
    /// running forwards).
    #[arg(long, value_name = "MS_PER_S", allow_negative_numbers = true, value_parser = common::bounded(values::DRIFT_MS_PER_S))]
    simulate_drift: Option<f64>,
    /// Simulated random variation, uniform ±MS per reading, 0 to 86400000 (one day).
    #[arg(long, value_name = "MS", allow_negative_numbers = true, value_parser = common::bounded(values::RANDOM_VARIATION_MS))]
    random_variation: Option<f64>,
    /// Seed of the random variation (reproducible runs).
    #[arg(long, value_name = "N")]
    simulation_seed: Option<u64>,
    /// Message key [default: the node id, so one node's messages stay in one partition].
    #[arg(long)]
    key: Option<String>,
    /// Any librdkafka property, KEY=VALUE (repeatable), e.g. -X acks=1 -X security.protocol=SSL.
    #[arg(short = 'X', value_name = "KEY=VALUE")]
    property: Vec<String>,
    /// TOML config file (see kafka-timesync.example.toml: bootstrap, node_id, clock_type,
    /// ntp_servers, sync_interval, [simulation], [kafka] librdkafka properties, …); flags win.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Also read the topic (all partitions) and merge every timestamp into this node's clocks;
    /// catches up to the topic's end before the first send.
    #[arg(long)]
    observe: bool,
    /// Directory of the node state file: the clocks' cache, and the fallback when the topic
    /// cannot be read back at start-up.
    #[arg(long, value_name = "DIR", conflicts_with = "no_state")]
    state_dir: Option<PathBuf>,
    /// No state file: the clocks continue from the node's last record in the topic (from zero
    /// if it has none, or if the topic cannot be read).
    #[arg(long)]
    no_state: bool,
    /// Output: a readable line per delivered message, or JSON lines: the acknowledgement log
    /// that `kafka-consumer --verify` checks (docs/verify.md).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Send N synthetic messages (load and benchmarks).
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// Content bytes of each synthetic message.
    #[arg(long, value_name = "BYTES", requires = "count", default_value_t = 100)]
    size: usize,
    /// Create the topic with this many partitions if it does not exist yet (clusters with
    /// auto-creation off, like the docker-compose one, do not create topics on first use).
    #[arg(long, value_name = "PARTITIONS", value_parser = clap::value_parser!(i32).range(1..))]
    create_topic: Option<i32>,
    /// Replication factor of a topic created by --create-topic [default: the cluster's
    /// default.replication.factor: 3 on the docker-compose cluster, 1 on a single broker].
    #[arg(long, value_name = "N", requires = "create_topic", value_parser = clap::value_parser!(i32).range(1..))]
    replication_factor: Option<i32>,
    /// Refuse observed hybrid timestamps further ahead than this [default: 500].
    #[arg(long, value_name = "MS")]
    max_hlc_offset_ms: Option<u64>,
    /// Serve Prometheus metrics at http://HOST:PORT/metrics while running (messages produced,
    /// clock offset / delay / drift of the last SNTP sync, seconds since it).
    #[arg(long, value_name = "HOST:PORT")]
    metrics_addr: Option<SocketAddr>,
    /// Print shell completions for SHELL and exit.
    #[arg(long, value_name = "SHELL", exclusive = true)]
    completions: Option<clap_complete::Shell>,
    /// Print the man page (roff) and exit.
    #[arg(long, exclusive = true)]
    man: bool,
    /// More diagnostics on stderr (-v: info, -vv: debug).
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
}

fn parse_clock_type(s: &str) -> Result<ClockType, String> {
    s.parse()
        .map_err(|e: kafka_timesync::clock::UnknownClockType| e.to_string())
}

fn parse_form(s: &str) -> Result<Form, String> {
    s.parse()
        .map_err(|e: kafka_timesync::envelope::UnknownForm| e.to_string())
}

impl Cli {
    /// The flags that override config keys.
    fn overrides(&self) -> Overrides {
        Overrides {
            bootstrap: self.bootstrap.clone(),
            node_id: self.node_id.clone(),
            clock_type: self.clock_type,
            envelope: self.envelope,
            enable_ntp: self.enable_ntp,
            ntp_servers: self.ntp_server.clone(),
            sync_interval: self.sync_interval,
            max_hlc_offset_ms: self.max_hlc_offset_ms,
            state_dir: self.state_dir.clone(),
            simulate_skew: self.simulate_skew,
            simulate_drift: self.simulate_drift,
            random_variation: self.random_variation,
            simulation_seed: self.simulation_seed,
            ..Overrides::default()
        }
    }
}

fn default_node_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "1".into());
    format!("producer-{host}")
}

fn main() -> ExitCode {
    let cli: Cli = match common::parse("kafka-producer") {
        Ok(c) => c,
        Err(code) => return code,
    };
    common::init_logging(cli.verbose);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            common::report_error("kafka-producer", &e);
            common::failure_code(&e)
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    if common::generate(
        <Cli as clap::CommandFactory>::command(),
        cli.completions,
        cli.man,
    )? {
        return Ok(());
    }
    let topic = cli.topic.clone().unwrap_or_default();
    let cfg = common::settings("kafka-producer", cli.config.as_deref(), &cli.overrides())?;
    let settings = common::client_settings(&cfg, None, &cli.property)?;

    // Validated by the merge: never empty.
    let node_id = cfg.node_id.clone().unwrap_or_else(default_node_id);
    let clock_type = cfg.clock_type;

    // The state lock is taken before anything touches the network, so a second process with the
    // same node id is refused at once.
    let (mut state, cached) = if cli.no_state {
        (None, PersistedClocks::new(&node_id))
    } else {
        let dir = cfg
            .state_dir
            .clone()
            .or_else(default_state_dir)
            .ok_or(kafka_timesync::state::StateError::NoStateDir)?;
        let (store, cached) = StateStore::open(&dir, &node_id)?;
        (Some(store), cached)
    };

    let source: Arc<dyn TimeSource> = Arc::new(SystemTimeSource);
    let physical = Arc::new(PhysicalClock::with_simulation(
        source,
        cfg.simulation.clock_simulation(),
    ));

    let runtime = common::runtime()?;
    let stop = Arc::new(AtomicBool::new(false));
    common::stop_on_signal(
        &runtime,
        Arc::clone(&stop),
        "kafka-producer",
        Some("interrupted: finishing deliveries (interrupt again to abort)"),
    );

    if let Some(partitions) = cli.create_topic {
        let admin = kafka_timesync::kafka::Admin::new(&settings)?;
        let created =
            runtime.block_on(admin.create_topic(&topic, partitions, cli.replication_factor))?;
        admin.wait_for_topic(&topic, 1, Duration::from_secs(30))?;
        if created {
            tracing::info!("created topic '{}' with {partitions} partitions", topic);
        }
    }

    let metrics = match cli.metrics_addr {
        Some(addr) => Some(common::serve_metrics(&runtime, addr)?),
        // Counting costs one relaxed atomic add per delivery: always on, for the progress bar.
        None => Some(Arc::new(kafka_timesync::metrics::Metrics::new())),
    };
    let _sync = cfg
        .enable_ntp
        .then(|| common::start_sync(&runtime, &physical, &cfg, metrics.as_ref(), "stamping with"));

    // The clocks continue from this node's last record in the topic; the state file is the
    // cache, and its reservation the fallback when the topic cannot be read. The read-back runs
    // while the producer connects.
    let reader = {
        let (settings, topic, node_id) = (settings.clone(), topic.clone(), node_id.clone());
        let key = cli.key.clone().unwrap_or_else(|| node_id.clone());
        let has_state_file = state.is_some();
        std::thread::Builder::new()
            .name("read-back".into())
            .spawn(move || {
                resume::recover(&settings, &topic, &node_id, &key, &cached, has_state_file)
            })
            .context("cannot start the read-back thread")?
    };
    let stamper_cfg = StamperConfig {
        max_hlc_offset_ms: cfg.max_hlc_offset_ms,
        send_vector: cfg.vector_clock_enabled,
        ..StamperConfig::new(node_id.as_str(), clock_type)
    };
    let prepare = {
        let topic = topic.clone();
        move || -> pipeline::Prepared {
            let (resume, partition) = reader.join().map_err(|_| KafkaError::Operation {
                operation: "read back this node's last record".into(),
                message: "the reading thread panicked".into(),
            })??;
            if let Some(store) = state.as_mut() {
                store.begin(&topic, partition, &resume)?;
            }
            Ok((Stamper::new(&stamper_cfg, physical, &resume), state))
        }
    };

    let input = match (&cli.message, cli.count, &cli.value_file) {
        (Some(m), _, _) => Input::Message(m.clone()),
        (None, _, Some(path)) => {
            let bytes = std::fs::read(path)
                .with_context(|| format!("cannot read --value-file {}", path.display()))?;
            if cfg.envelope == Form::Json {
                if let Err(e) = std::str::from_utf8(&bytes) {
                    bail!(
                        "--value-file {}: not UTF-8 text ({e}); the JSON envelope carries text \
                         only, use --envelope headers for binary values",
                        path.display()
                    );
                }
            }
            Input::Value(bytes)
        }
        (None, Some(count), None) => Input::Synthetic {
            count,
            size: cli.size,
        },
        (None, None, None) => {
            if std::io::stdin().is_terminal() {
                eprintln!("kafka-producer: reading messages from standard input, one per line (Ctrl-D to end)");
            }
            Input::Lines(Box::new(std::io::stdin()))
        }
    };
    let synthetic = matches!(input, Input::Synthetic { .. });
    let opts = PipelineOptions {
        key: cli.key.clone(),
        form: cfg.envelope,
        format: match cli.format {
            Format::Text => OutputFormat::Text,
            Format::Json => OutputFormat::Json,
        },
        observe: cli.observe,
        metrics: metrics.clone(),
        ..PipelineOptions::new(topic.clone())
    };
    let out: Box<dyn std::io::Write + Send> = Box::new(std::io::BufWriter::with_capacity(
        64 * 1024,
        std::io::stdout(),
    ));
    let progress = match (&metrics, cli.count) {
        (Some(m), Some(n)) if cli.message.is_none() => {
            let m = Arc::clone(m);
            common::Progress::start(Some(n), "messages", move || m.produced())
        }
        _ => None,
    };
    let summary = pipeline::run(&settings, prepare, &opts, input, out, stop);
    drop(progress);
    let summary = summary?;
    if synthetic || cli.verbose > 0 {
        eprintln!(
            "kafka-producer: {} messages delivered in {:.3} s ({:.0} msgs/s), seq {}",
            summary.delivered,
            summary.elapsed.as_secs_f64(),
            summary.rate(),
            summary
                .seq_range
                .map_or("-".to_string(), |(a, b)| format!("{a}..{b}")),
        );
    }
    Ok(())
}
