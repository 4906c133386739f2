//! The `ntp` demo: a node whose physical clock is skewed and drifting synchronises against a real
//! NTP server with the library's SNTP client and sync engine. Every exchange's T1..T4, θ and δ,
//! every round's slew/step decision, the drift estimate, and the clock error as it converges.
//!
//! The reference ("true time") is this host's system clock: a local chronyd serves exactly that,
//! and a public server agrees with it to within the host's own synchronisation error.

use crate::plot::{self, Series};
use crate::report::{ms, ms_signed, Report, Table};
use anyhow::{bail, Context, Result};
use kafka_timesync::clock::physical::Simulation;
use kafka_timesync::clock::PhysicalClock;
use kafka_timesync::ntp::client::{resolve, ExchangeOptions};
use kafka_timesync::ntp::sync::{ExchangeRecord, RoundRecord};
use kafka_timesync::ntp::{exchange, SyncEngine, SyncOptions};
use kafka_timesync::time::{SystemTimeSource, TimeSource};
use serde_json::json;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

const SKEW_MS: f64 = 300.0;
const DRIFT_MS_PER_S: f64 = 0.5;
const JITTER_MS: f64 = 0.0;
const ROUNDS: usize = 10;
const ROUND_EVERY: Duration = Duration::from_secs(1);

/// The server to use when none is given: a local NTP server if one answers, else pool.ntp.org.
pub fn default_server() -> String {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(_) => return "pool.ntp.org".into(),
    };
    let local = "127.0.0.1:123";
    let answered = rt.block_on(async {
        let Ok(addrs) = resolve(local).await else {
            return false;
        };
        let Some(addr) = addrs.first().copied() else {
            return false;
        };
        let opts = ExchangeOptions {
            timeout: Duration::from_millis(500),
            ..ExchangeOptions::default()
        };
        exchange(&PhysicalClock::system(), addr, &opts)
            .await
            .outcome
            .is_ok()
    });
    if answered {
        local.into()
    } else {
        "pool.ntp.org".into()
    }
}

fn clock_time(ns: Option<i64>) -> String {
    match ns {
        Some(ns) => {
            let secs_of_day = ns.rem_euclid(86_400 * 1_000_000_000);
            let (h, rest) = (
                secs_of_day / 3_600_000_000_000,
                secs_of_day % 3_600_000_000_000,
            );
            let (m, rest) = (rest / 60_000_000_000, rest % 60_000_000_000);
            format!(
                "{h:02}:{m:02}:{:02}.{:06}",
                rest / 1_000_000_000,
                (rest % 1_000_000_000) / 1000
            )
        }
        None => "-".into(),
    }
}

/// The `ntp` demo against `server` (`host[:port]`).
pub fn demo(server: &str, plot_dir: Option<&Path>) -> Result<Report> {
    let mut r = Report::new(
        "ntp",
        "SNTP: a skewed, drifting clock disciplined by a server",
    );
    r.para(format!(
        "The node's clock starts {SKEW_MS:+} ms off and gains {DRIFT_MS_PER_S} ms every second \
         ({} ppm) (kafka_timesync::clock::PhysicalClock). Once a \
         second it asks {server} for the time (4 exchanges in the first round). Each exchange \
         gives T1 (request sent, our clock), T2 (received, server clock), T3 (reply sent, server \
         clock), T4 (reply received, our clock); θ = ((T2 − T1) + (T3 − T4)) / 2 is the offset \
         of the server from us, δ = (T4 − T1) − (T3 − T2) the round-trip delay. The sync engine \
         filters the samples, then slews |θ| < 125 ms, steps up to 1000 s and ignores anything \
         larger; from the corrections over time it estimates the drift and sets the clock's \
         frequency to cancel it. A backward step never makes the clock run backwards: it holds \
         (repeats its last reading) until real time has caught up.",
        DRIFT_MS_PER_S * 1000.0
    ));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let addr = rt
        .block_on(resolve(server))
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("resolving NTP server {server}"))?
        .first()
        .copied()
        .with_context(|| format!("NTP server {server} resolved to no address"))?;
    let system: Arc<dyn TimeSource> = Arc::new(SystemTimeSource);
    let sim = Simulation {
        skew_ms: SKEW_MS,
        drift_ms_per_s: DRIFT_MS_PER_S,
        jitter_ms: JITTER_MS,
        seed: Some(1),
    };
    let clock = PhysicalClock::with_simulation(system.clone(), sim);
    let opts = SyncOptions {
        servers: vec![server.to_string()],
        interval: ROUND_EVERY,
        drift_min_span: Duration::from_secs(2),
        // A short clock filter and two samples per round, so that every round brings a fresh
        // point for the drift regression within the demo's ten seconds.
        filter_len: 2,
        samples_per_poll: 2,
        ..SyncOptions::default()
    };
    clock.set_max_slew_ppm(opts.max_slew_ppm);
    let exchange_opts = opts.exchange;
    let mut engine = SyncEngine::new(opts);
    engine.set_addr(0, addr);
    let start = system.now_ns();
    let error_now = |clock: &PhysicalClock| {
        let t = system.now_ns();
        let e = clock.now_ns() - t;
        ((t - start) as f64 / 1e9, e)
    };
    let mut samples: Vec<(f64, f64)> = vec![];
    let mut exchanges: Vec<(usize, ExchangeRecord)> = vec![];
    let mut rounds: Vec<(RoundRecord, f64, i64)> = vec![];
    rt.block_on(async {
        for round in 1..=ROUNDS {
            let (servers, n) = engine.plan_round();
            for idx in servers {
                for _ in 0..n {
                    let res = exchange(&clock, addr, &exchange_opts).await;
                    exchanges.push((round, engine.on_exchange(idx, &res)));
                    let (t, e) = error_now(&clock);
                    samples.push((t, e as f64 / 1e6));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            let rec = engine.finish_round(&clock);
            let (t, e) = error_now(&clock);
            rounds.push((rec, t, e));
            // Sample the error while waiting for the next round (slews are visible here).
            for _ in 0..10 {
                tokio::time::sleep(ROUND_EVERY / 10).await;
                let (t, e) = error_now(&clock);
                samples.push((t, e as f64 / 1e6));
            }
        }
    });
    let mut t = Table::new(&[
        "round",
        "T1 (ours)",
        "T2 (server)",
        "T3 (server)",
        "T4 (ours)",
        ">θ (ms)",
        ">δ (ms)",
        "result",
    ]);
    for (round, x) in &exchanges {
        t.row(vec![
            round.to_string(),
            clock_time(x.t1_ns),
            clock_time(x.t2_ns),
            clock_time(x.t3_ns),
            clock_time(x.t4_ns),
            x.offset_ns
                .map(|v| ms_signed(v, 3))
                .unwrap_or_else(|| "-".into()),
            x.delay_ns.map(|v| ms(v, 3)).unwrap_or_else(|| "-".into()),
            match &x.rejected {
                None => "accepted".into(),
                Some(reason) => format!("rejected: {reason}"),
            },
        ]);
    }
    r.para("Exchanges (times of day, UTC):");
    r.table(&t);
    let mut t = Table::new(&[
        "round",
        ">t (s)",
        ">combined θ (ms)",
        "decision",
        ">drift estimate (ppm)",
        ">frequency corr. (ppm)",
        ">clock error after (ms)",
    ]);
    for (k, (rec, at, err)) in rounds.iter().enumerate() {
        t.row(vec![
            (k + 1).to_string(),
            format!("{at:.1}"),
            rec.offset_ns
                .map(|v| ms_signed(v, 3))
                .unwrap_or_else(|| "-".into()),
            rec.action
                .map(|a| a.as_str().to_string())
                .or_else(|| rec.note.clone())
                .unwrap_or_else(|| "-".into()),
            rec.drift_ppm
                .map(|v| format!("{v:+.1}"))
                .unwrap_or_else(|| "-".into()),
            format!("{:+.1}", rec.frequency_ppm),
            ms_signed(*err, 3),
        ]);
    }
    r.para("Rounds (clock error = our clock − this host's system clock):");
    r.table(&t);
    let accepted = exchanges
        .iter()
        .filter(|(_, x)| x.rejected.is_none())
        .count();
    if accepted == 0 {
        bail!(
            "no NTP exchange with {server} succeeded ({} tried)",
            exchanges.len()
        );
    }
    let final_err = rounds.last().map(|x| x.2).unwrap_or(i64::MAX);
    let last_delay = exchanges
        .iter()
        .rev()
        .find_map(|(_, x)| x.delay_ns)
        .unwrap_or(0);
    let tolerance = (5 * 1_000_000).max(2 * last_delay);
    let first_action = rounds
        .first()
        .and_then(|x| x.0.action)
        .map(|a| a.as_str())
        .unwrap_or("none");
    r.check(
        "the first round steps the 300 ms error (|θ| >= 125 ms)",
        first_action == "step",
        format!("first decision: {first_action}"),
    );
    r.check(
        "the clock converges: final |error| within max(5 ms, 2δ)",
        final_err.abs() <= tolerance,
        format!(
            "final error {} ms, tolerance {} ms",
            ms_signed(final_err, 3),
            ms(tolerance, 1)
        ),
    );
    let drift = rounds.iter().rev().find_map(|x| x.0.drift_ppm);
    let want = DRIFT_MS_PER_S * 1000.0;
    r.check(
        format!("the drift estimate finds the simulated {want:.0} ppm (within 20%)"),
        drift.is_some_and(|d| (d - want).abs() <= 0.2 * want),
        format!(
            "estimate {}",
            drift
                .map(|d| format!("{d:+.1} ppm"))
                .unwrap_or_else(|| "none".into())
        ),
    );
    if let Some(dir) = plot_dir {
        let marks: Vec<(f64, String)> = rounds
            .iter()
            .map(|(rec, at, _)| {
                (
                    *at,
                    rec.action
                        .map(|a| a.as_str().to_string())
                        .unwrap_or_default(),
                )
            })
            .collect();
        let name = format!("node (started {SKEW_MS:+} ms, drifting {DRIFT_MS_PER_S:+} ms/s)");
        let path = dir.join("ntp_clock_error.svg");
        plot::clock_error_chart(
            &path,
            &format!("SNTP discipline against {server}: clock error"),
            &[Series {
                name: name.clone(),
                points: samples.clone(),
            }],
            &marks,
        )?;
        let after: Vec<(f64, f64)> = samples
            .iter()
            .copied()
            .filter(|p| rounds.first().is_some_and(|x| p.0 > x.1 + 0.3))
            .collect();
        let path2 = dir.join("ntp_clock_error_after_step.svg");
        plot::clock_error_chart(
            &path2,
            "After the first step: drift, slews and frequency correction",
            &[Series {
                name,
                points: after,
            }],
            &marks[1..],
        )?;
        r.para(format!(
            "Charts written: {}, {}",
            path.display(),
            path2.display()
        ));
    }
    r.data = json!({
        "server": server,
        "address": addr.to_string(),
        "simulation": { "skew_ms": SKEW_MS, "drift_ms_per_s": DRIFT_MS_PER_S, "jitter_ms": JITTER_MS },
        "exchanges": exchanges.iter().map(|(k, x)| json!({"round": k, "exchange": x})).collect::<Vec<_>>(),
        "rounds": rounds.iter().map(|(rec, at, err)| json!({"t_s": at, "record": rec, "clock_error_ns": err})).collect::<Vec<_>>(),
        "status": engine.status(&clock),
    });
    Ok(r)
}
