//! `time_sync_demo`: the course's time and coordination algorithms, runnable, checked and drawn.
//!
//! Every demo runs offline by default: its nodes are actors in one process exchanging messages
//! over a seeded simulated network (see `sim_net`), so the same `--seed` prints the same output.
//! Each demo checks its own invariant; the exit status is non-zero if any check fails.

#[path = "exchange.rs"]
mod exchange;
#[path = "mutex.rs"]
mod mutex;
#[path = "plot.rs"]
mod plot;
#[path = "report.rs"]
mod report;
#[path = "sim_net.rs"]
mod sim_net;
#[path = "vector.rs"]
mod vector;

use anyhow::{bail, Result};
use clap::{Parser, ValueEnum};
use report::Report;
use sim_net::{MemoryWire, Wire};
use std::path::PathBuf;
use std::process::ExitCode;

/// Which demo to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DemoName {
    /// Physical clocks with skew, drift and jitter: true order vs timestamp order.
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
    /// Seed of the simulated network (delays, reordering) and of the clock jitter.
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
    #[arg(long, value_name = "HOST:PORT", env = "KAFKA_BOOTSTRAP")]
    bootstrap: Option<String>,
    /// NTP server for the ntp demo (HOST or HOST:PORT). Default: a chronyd/ntpd on
    /// 127.0.0.1:123 if one answers, else pool.ntp.org.
    #[arg(long, value_name = "HOST[:PORT]")]
    ntp_server: Option<String>,
    /// Break each algorithm on purpose (skip its waiting rule) to watch the invariant checks fail.
    #[arg(long, hide = true)]
    inject_fault: bool,
}

fn run_one(name: DemoName, cli: &Cli, wire: &mut dyn Wire) -> Result<Report> {
    match name {
        DemoName::Vector => vector::demo(cli.seed, wire),
        DemoName::Mutex => mutex::demo(cli.seed, cli.inject_fault, wire),
        other => bail!("demo {other:?} is not available yet"),
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
    let mut wire = MemoryWire::default();
    let transport = wire.describe();
    let mut reports = vec![];
    for n in names {
        let r = run_one(n, cli, &mut wire)?;
        if cli.format == Format::Text {
            println!("{}", r.render_text());
        }
        reports.push(r);
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
            println!("{}", serde_json::to_string_pretty(&doc)?);
        }
        Format::Text => {
            let failed: Vec<&str> = reports.iter().filter(|r| !r.ok).map(|r| r.demo).collect();
            if failed.is_empty() {
                println!("All invariants held ({} demo(s), seed {}, {transport}).", reports.len(), cli.seed);
            } else {
                println!("INVARIANT VIOLATED in: {}", failed.join(", "));
            }
        }
    }
    Ok(ok)
}
