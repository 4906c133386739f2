//! Command-line plumbing shared by `kafka-producer` and `kafka-consumer`: the settings (config
//! file, environment and flags merged), one-line errors with secrets scrubbed, logging, the
//! Prometheus endpoint, shell completions and the man page.
//! (Binary-side only: this is the edge where `anyhow` lives.)

#![allow(dead_code)] // each binary uses a subset

use anyhow::{Context, Result};
use kafka_timesync::clock::PhysicalClock;
use kafka_timesync::config::values::Bound;
use kafka_timesync::config::{ConfigError, Overrides, TimeSyncConfig};
use kafka_timesync::kafka::{parse_property, redact, ClientSettings, KafkaError, SessionError};
use kafka_timesync::metrics::Metrics;
use kafka_timesync::ntp::{SyncEvent, SyncHandle};
use kafka_timesync::producer::pipeline::ProducerError;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The settings of this run: the config file (`--config`, or the defaults), `KAFKA_BOOTSTRAP`,
/// then the flags ([`TimeSyncConfig::merge`]). The file's warnings are printed as
/// `BIN: warning: …`.
pub fn settings(bin: &str, file: Option<&Path>, flags: &Overrides) -> Result<TimeSyncConfig> {
    let loaded = TimeSyncConfig::load(file)?;
    for w in &loaded.warnings {
        eprintln!("{bin}: warning: {w}");
    }
    Ok(loaded.config.merge(|k| std::env::var(k).ok(), flags)?)
}

/// The librdkafka client settings: the bootstrap servers, `client.id` when given, the config
/// file's `[kafka]` table, then `-X KEY=VALUE` (the last wins).
pub fn client_settings(
    cfg: &TimeSyncConfig,
    client_id: Option<&str>,
    properties: &[String],
) -> Result<ClientSettings> {
    let mut settings = ClientSettings::new(cfg.bootstrap.clone());
    if let Some(id) = client_id {
        settings.set("client.id", id);
    }
    settings.extend(cfg.kafka.iter().map(|(k, v)| (k.clone(), v.clone())));
    for p in properties {
        // The error never echoes the argument: it may be a secret.
        let (k, v) = parse_property(p)?;
        settings.set(k, v);
    }
    tracing::info!("kafka settings: {settings:?}");
    Ok(settings)
}

/// A clap `value_parser` for a number within `bound`.
pub fn bounded(bound: Bound) -> impl Fn(&str) -> Result<f64, String> + Clone + Send + Sync {
    move |s| bound.parse(s)
}

/// Every secret value given on the command line (`-X sasl.password=…`, also mistyped forms), so
/// no error or log line can echo it.
pub fn argv_secrets() -> Vec<String> {
    std::env::args()
        .filter_map(|a| {
            let (k, v) = a.split_once('=')?;
            let k = k.trim_start_matches('-');
            redact::is_sensitive(k).then(|| v.to_string())
        })
        .filter(|v| !v.is_empty())
        .collect()
}

/// Parses the command line. Help and version are printed (exit 0); a usage error becomes one
/// line on stderr, `BIN: error: … (see --help)`, with secrets scrubbed (exit 2).
pub fn parse<C: clap::Parser>(bin: &str) -> Result<C, ExitCode> {
    match C::try_parse() {
        Ok(c) => Ok(c),
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                return Err(ExitCode::SUCCESS);
            }
            // clap's message spans several lines (message, tip, usage): keep the message part.
            let text = e.to_string();
            let msg: Vec<&str> = text
                .lines()
                .map(str::trim)
                .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
                .filter(|l| !l.is_empty() && !l.starts_with("tip:"))
                .collect();
            let line = scrub(msg.join(" ").trim_start_matches("error: "));
            eprintln!("{bin}: error: {line} (see --help)");
            Err(ExitCode::from(2))
        }
    }
}

/// `text` with every command-line secret replaced by `***`.
pub fn scrub(text: &str) -> String {
    let secrets = argv_secrets();
    redact::scrub(text, secrets.iter().map(String::as_str))
}

/// Prints `BIN: error: …` as one line, secrets scrubbed.
pub fn report_error(bin: &str, e: &anyhow::Error) {
    let msg = scrub(&format!("{e:#}"));
    eprintln!(
        "{bin}: error: {}",
        msg.split_whitespace().collect::<Vec<_>>().join(" ")
    );
}

/// The exit status of a run that failed with `e`: 2 for a usage error found after parsing, that
/// is a bad configuration, whether given by a flag, `KAFKA_BOOTSTRAP` or the config file (a
/// value out of range, a file that cannot be read or parsed, a `-X` property that is not
/// `key=value` or that librdkafka refuses); 1 otherwise.
pub fn failure_code(e: &anyhow::Error) -> ExitCode {
    if e.chain().any(is_configuration) {
        ExitCode::from(2)
    } else {
        ExitCode::FAILURE
    }
}

fn is_configuration(e: &(dyn std::error::Error + 'static)) -> bool {
    let kafka = if let Some(k) = e.downcast_ref::<KafkaError>() {
        Some(k)
    } else if let Some(SessionError::Client(k)) = e.downcast_ref::<SessionError>() {
        Some(k)
    } else if let Some(ProducerError::Kafka(k)) = e.downcast_ref::<ProducerError>() {
        Some(k)
    } else {
        None
    };
    e.is::<ConfigError>() || kafka.is_some_and(KafkaError::is_configuration)
}

/// The binaries' small background runtime (one worker): signals, the SNTP task, the metrics
/// endpoint. The message path itself never awaits.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// SIGINT or SIGTERM sets `stop` (and logs `note` as a warning, when given): the run finishes
/// what it is doing and exits normally. A second signal exits at once with status 130.
pub fn stop_on_signal(
    runtime: &tokio::runtime::Runtime,
    stop: Arc<AtomicBool>,
    bin: &'static str,
    note: Option<&'static str>,
) {
    runtime.spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            eprintln!("{bin}: warning: cannot install signal handlers");
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
            if let Some(note) = note {
                tracing::warn!("{note}");
            }
        }
    });
}

/// Logs go to stderr through `tracing`: `RUST_LOG` when set, else warn / info (-v) / debug (-vv).
pub fn init_logging(verbosity: u8) {
    let filter = match verbosity {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter)),
        )
        .init();
}

/// Starts the Prometheus endpoint at `http://ADDR/metrics` on `runtime`; logs the bound address.
pub fn serve_metrics(runtime: &tokio::runtime::Runtime, addr: SocketAddr) -> Result<Arc<Metrics>> {
    let metrics = Arc::new(Metrics::new());
    let (bound, _task) = runtime
        .block_on(kafka_timesync::metrics::serve(addr, Arc::clone(&metrics)))
        .with_context(|| format!("--metrics-addr {addr}"))?;
    tracing::info!("metrics at http://{bound}/metrics");
    Ok(metrics)
}

/// Copies every finished SNTP round into `metrics` (offset, delay, drift, failures).
pub fn follow_sync(
    runtime: &tokio::runtime::Runtime,
    metrics: Arc<Metrics>,
    sync: Arc<SyncHandle>,
) {
    let mut events = sync.subscribe();
    let mut good_rounds = 0;
    runtime.spawn(async move {
        loop {
            match events.recv().await {
                Ok(SyncEvent::Round(_)) => {
                    let st = sync.status();
                    if st.good_rounds > good_rounds {
                        good_rounds = st.good_rounds;
                        metrics.record_sync(
                            st.last_offset_ns.unwrap_or(0),
                            st.last_delay_ns.unwrap_or(0),
                        );
                    } else {
                        metrics.record_sync_failure();
                    }
                    if let Some(ppm) = st.drift_ppm {
                        metrics.set_drift_ppm(ppm);
                    }
                }
                Ok(SyncEvent::Exchange(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            }
        }
    });
}

/// A progress bar on stderr for a long run, only when stderr is a terminal (silent when piped or
/// redirected). It follows `count()` until the guard is dropped.
pub struct Progress {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    /// `total`: the expected count (a bar), or None (a spinner with a rate).
    pub fn start(
        total: Option<u64>,
        what: &'static str,
        count: impl Fn() -> u64 + Send + 'static,
    ) -> Option<Progress> {
        if !std::io::stderr().is_terminal() {
            return None;
        }
        let bar = match total {
            Some(n) => indicatif::ProgressBar::new(n).with_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:40} {human_pos}/{human_len} {msg} (eta {eta})",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            ),
            None => indicatif::ProgressBar::new_spinner().with_style(
                indicatif::ProgressStyle::with_template("{spinner} {human_pos} {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            ),
        };
        bar.set_message(what);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("progress".into())
            .spawn(move || {
                while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                    bar.set_position(count());
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                bar.set_position(count());
                bar.finish_and_clear();
            })
            .ok()?;
        Some(Progress {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Shell completions or the man page, when asked for: prints it and returns true.
pub fn generate(
    cmd: clap::Command,
    completions: Option<clap_complete::Shell>,
    man: bool,
) -> Result<bool> {
    let mut cmd = cmd;
    let name = cmd.get_name().to_string();
    // Rendered into memory first: clap_complete panics on a write error (e.g. `| head`).
    let mut text = Vec::new();
    if let Some(shell) = completions {
        clap_complete::generate(shell, &mut cmd, name, &mut text);
    } else if man {
        clap_mangen::Man::new(cmd)
            .render(&mut text)
            .context("rendering the man page")?;
    } else {
        return Ok(false);
    }
    use std::io::Write;
    match std::io::stdout().lock().write_all(&text) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e).context("writing to stdout"),
        _ => Ok(true),
    }
}

/// Starts the SNTP sync task of `physical` with `cfg`'s servers and thresholds on `runtime`,
/// feeding `metrics` when there are any, and waits up to 5 s for the first good round (see
/// [`wait_initial_sync`]; `what` completes its warning).
pub fn start_sync(
    runtime: &tokio::runtime::Runtime,
    physical: &Arc<PhysicalClock>,
    cfg: &TimeSyncConfig,
    metrics: Option<&Arc<Metrics>>,
    what: &str,
) -> Arc<SyncHandle> {
    let handle = Arc::new({
        let _guard = runtime.enter();
        kafka_timesync::ntp::spawn(Arc::clone(physical), cfg.sync_options())
    });
    if let Some(m) = metrics {
        follow_sync(runtime, Arc::clone(m), Arc::clone(&handle));
    }
    wait_initial_sync(&handle, std::time::Duration::from_secs(5), what);
    handle
}

/// Waits (bounded) until the sync task has completed a good round, so the first stamp or arrival
/// time is already corrected; warns "no initial synchronisation …; `what` the unsynchronised
/// clock" when it has not.
pub fn wait_initial_sync(handle: &SyncHandle, bound: std::time::Duration, what: &str) {
    let start = std::time::Instant::now();
    while start.elapsed() < bound {
        if handle.status().good_rounds > 0 {
            tracing::info!("ntp: initial synchronisation done in {:?}", start.elapsed());
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    tracing::warn!(
        "ntp: no initial synchronisation within {bound:?}; {what} the unsynchronised clock"
    );
}
