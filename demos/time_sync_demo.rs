//! `time_sync_demo`: the course's time and coordination algorithms, runnable, checked and drawn.
//!
//! Every demo runs offline by default: its nodes are actors in one process exchanging messages
//! over a seeded simulated network (see `sim_net`), so the same `--seed` prints the same output.
//! Each demo checks its own invariant; the exit status is non-zero if any check fails.

#[path = "berkeley.rs"]
mod berkeley;
#[path = "causal.rs"]
mod causal;
#[path = "exchange.rs"]
mod exchange;
#[path = "kafka_wire.rs"]
mod kafka_wire;
#[path = "mutex.rs"]
mod mutex;
#[path = "ntp_demo.rs"]
mod ntp_demo;
#[path = "plot.rs"]
mod plot;
#[path = "report.rs"]
mod report;
#[path = "sim_net.rs"]
mod sim_net;
#[path = "skew.rs"]
mod skew;
#[path = "total.rs"]
mod total;
#[path = "vector.rs"]
mod vector;

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use report::Report;
use sim_net::{MemoryWire, Wire};
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

/// Which demo to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DemoName {
    /// Physical clocks with skew, drift and random variation: true order vs timestamp order.
    Skew,
    /// The same exchange with Lamport clocks, and their limit.
    Logical,
    /// A skewed, drifting clock disciplined by SNTP.
    Ntp,
    /// Vector clocks: the slides' worked example.
    Vector,
    /// Causally ordered multicast over a reordering network.
    Causal,
    /// Totally ordered multicast: the two-replica bank account.
    Total,
    /// Mutual exclusion: Lamport and Ricart–Agrawala.
    Mutex,
    /// The Berkeley algorithm.
    Berkeley,
    /// Every demo in turn.
    All,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// Tables and explanations.
    Text,
    /// One JSON document on stdout.
    Json,
}

/// Distributed-systems time and coordination algorithms, simulated and checked.
///
/// Examples:
///   time_sync_demo                          # every demo, offline, seed 42
///   time_sync_demo --demo mutex --seed 7    # one demo, another (repeatable) network schedule
///   time_sync_demo --demo causal --plot out # also write SVG charts to out/
///   time_sync_demo --format json | jq '.demos[] | {demo, ok}'
#[derive(Debug, Parser)]
#[command(name = "time_sync_demo", version, verbatim_doc_comment)]
struct Cli {
    /// Which demo to run.
    #[arg(long, value_enum, default_value = "all")]
    demo: DemoName,
    /// Seed of the simulated network (delays, reordering) and of the clocks' random variation.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// Write SVG charts into this directory (created if missing).
    #[arg(long, value_name = "DIR")]
    plot: Option<PathBuf>,
    /// Carry the demo's messages through this Kafka broker instead of memory (a topic is created
    /// for the run and deleted after).
    #[arg(long, value_name = "HOST:PORT")]
    bootstrap: Option<String>,
    /// Run the ntp demo against this real NTP server (HOST or HOST:PORT) over UDP, in real time.
    /// Default: a simulated server on the seeded network, like every other demo.
    #[arg(long, value_name = "HOST[:PORT]")]
    ntp_server: Option<String>,
    /// Break each algorithm on purpose (skip its waiting rule) to watch the invariant checks fail.
    #[arg(long, hide = true)]
    inject_fault: bool,
}

fn run_one(name: DemoName, cli: &Cli, wire: &mut dyn Wire) -> Result<Report> {
    let plot = cli.plot.as_deref();
    match name {
        DemoName::Skew => skew::demo_skew(cli.seed, wire, plot),
        DemoName::Logical => skew::demo_logical(cli.seed, wire),
        DemoName::Vector => vector::demo(cli.seed, wire),
        DemoName::Causal => causal::demo(cli.seed, cli.inject_fault, wire, plot),
        DemoName::Total => total::demo(cli.seed, cli.inject_fault, wire),
        DemoName::Berkeley => berkeley::demo(cli.seed, wire, plot),
        DemoName::Ntp => match &cli.ntp_server {
            Some(server) => ntp_demo::demo_server(server, plot),
            None => ntp_demo::demo(cli.seed, wire, plot),
        },
        DemoName::Mutex => mutex::demo(cli.seed, cli.inject_fault, wire),
        DemoName::All => bail!("--demo all is expanded before running"),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match real_main(&cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("time_sync_demo: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// Prints a line; once stdout is closed (`| head`), stays quiet instead of panicking, so the run
/// still finishes and cleans up (the Kafka topic).
fn say(s: &str) {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{s}").and_then(|_| out.flush()).is_err() {
        STDOUT_CLOSED.store(true, Ordering::Relaxed);
    }
}

fn real_main(cli: &Cli) -> Result<bool> {
    let names: Vec<DemoName> = if cli.demo == DemoName::All {
        vec![
            DemoName::Skew,
            DemoName::Logical,
            DemoName::Ntp,
            DemoName::Vector,
            DemoName::Causal,
            DemoName::Total,
            DemoName::Mutex,
            DemoName::Berkeley,
        ]
    } else {
        vec![cli.demo]
    };
    if let Some(dir) = &cli.plot {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut memory = MemoryWire::default();
    let mut kafka = match &cli.bootstrap {
        Some(b) => Some(kafka_wire::KafkaWire::connect(b)?),
        None => None,
    };
    let mut reports = vec![];
    let mut failure = None;
    for n in names {
        let wire: &mut dyn Wire = match kafka.as_mut() {
            Some(k) => k,
            None => &mut memory,
        };
        match run_one(n, cli, wire) {
            Ok(r) => {
                if cli.format == Format::Text {
                    say(&r.render_text());
                }
                reports.push(r);
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    let (transport, summary) = match kafka.as_mut() {
        Some(k) => {
            let closed = k.close();
            let mut t = k.describe();
            t["topic_deleted"] = serde_json::Value::Bool(closed.is_ok());
            if let (Err(e), None) = (closed, &failure) {
                failure = Some(e);
            }
            (t, k.summary())
        }
        None => (memory.describe(), memory.summary()),
    };
    if let Some(e) = failure {
        return Err(e);
    }
    let ok = reports.iter().all(|r| r.ok);
    match cli.format {
        Format::Json => {
            let doc = serde_json::json!({
                "seed": cli.seed,
                "transport": transport,
                "ok": ok,
                "demos": reports,
            });
            say(&serde_json::to_string_pretty(&doc)?);
        }
        Format::Text => {
            let failed: Vec<&str> = reports.iter().filter(|r| !r.ok).map(|r| r.demo).collect();
            if failed.is_empty() {
                say(&format!(
                    "All invariants held ({} demo(s), seed {}).",
                    reports.len(),
                    cli.seed
                ));
            } else {
                say(&format!("INVARIANT VIOLATED in: {}", failed.join(", ")));
            }
            say(&format!("Messages carried by: {summary}."));
        }
    }
    Ok(ok)
}
