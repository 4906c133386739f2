//! The `ntp` demo: a node whose physical clock is skewed and drifting synchronises with the
//! library's SNTP exchange evaluation and sync engine. Every exchange's T1..T4, θ, δ and the error
//! bound δ/2, every round's slew / step / ignore decision, the drift estimate, and the clock error
//! as it converges.
//!
//! By default the server is simulated on the seeded network of the other demos (`sim_net`): real
//! NTP packets, asymmetric path delays, virtual time (the run is instant and the same `--seed`
//! prints the same). The reference ("true time") is the virtual time, which the simulated server
//! serves exactly, so every θ can be checked against the truth: it is off by at most δ/2.
//! `--ntp-server HOST[:PORT]` asks a real server over UDP instead, in real time; the reference is
//! then this host's system clock.

use crate::plot::{self, Series};
use crate::report::{ms, ms_signed, Report, Table};
use crate::sim_net::{Event, NetConfig, SimNet, Wire, MS};
use anyhow::{bail, Context, Result};
use kafka_timesync::clock::physical::Simulation;
use kafka_timesync::clock::PhysicalClock;
use kafka_timesync::ntp::client::{resolve, Request};
use kafka_timesync::ntp::packet::{NtpTimestamp, Packet, MODE_SERVER};
use kafka_timesync::ntp::{exchange, SyncEngine, SyncOptions};
use kafka_timesync::ntp::{ExchangeRecord, RoundRecord, SyncStatus};
use kafka_timesync::time::{ManualTime, SystemTimeSource, TimeSource};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

const SKEW_MS: f64 = 300.0;
const DRIFT_MS_PER_S: f64 = 0.5;
const RANDOM_VARIATION_MS: f64 = 0.0;
/// Rounds and their spacing against a real server: ten seconds of real time.
const REAL_ROUNDS: usize = 10;
const REAL_ROUND_EVERY: Duration = Duration::from_secs(1);
/// Rounds and their spacing on the simulated network (virtual time costs nothing): a 16 s poll
/// interval, long enough for the drift to stand out of the asymmetric delays' noise.
const SIM_ROUNDS: usize = 16;
const SIM_ROUND_EVERY: Duration = Duration::from_secs(16);
/// Virtual time of the simulated run's start (2026-09-21 14:13:20 UTC): a fixed epoch, so the
/// printed times of day depend on the seed alone.
const SIM_START_NS: i64 = 1_790_000_000_000_000_000;
/// One-way network delay of the simulated path, both directions (ns).
const NET_DELAY_NS: (i64, i64) = (2 * MS, 12 * MS);
/// Extra delay of the simulated server → node direction after T3 is stamped (ns): the path
/// asymmetry that no NTP client can see, bounded by δ/2 in θ's error.
const ASYMMETRY_NS: (i64, i64) = (0, 10 * MS);
/// Server time between T2 and T3 (ns).
const SERVER_PROCESSING_NS: (i64, i64) = (50_000, 300_000);
/// The round whose replies come from a server 2000 s off (a broken server): the sync engine
/// must ignore so large an offset.
const FALSETICKER_ROUND: usize = 6;
const FALSETICKER_OFFSET_NS: i64 = 2_000_000_000_000;
/// The simulated server's address as the sync engine records it (TEST-NET-1, never contacted).
const SIM_ADDR: ([u8; 4], u16) = ([192, 0, 2, 1], 123);

/// The sync options of both runs: one round every `every`, two exchanges per round (four in the
/// first), and a short clock filter, so every round brings a fresh point for the drift
/// regression within the demo's few rounds.
fn sync_options(server: &str, every: Duration) -> SyncOptions {
    SyncOptions {
        servers: vec![server.to_string()],
        interval: every,
        drift_min_span: Duration::from_secs(2),
        filter_len: 2,
        samples_per_poll: 2,
        ..SyncOptions::default()
    }
}

fn simulation() -> Simulation {
    Simulation {
        skew_ms: SKEW_MS,
        drift_ms_per_s: DRIFT_MS_PER_S,
        random_variation_ms: RANDOM_VARIATION_MS,
        seed: Some(1),
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

/// One exchange as the demo reports it.
struct Exchanged {
    round: usize,
    record: ExchangeRecord,
    /// The server's true offset from the node's clock during the exchange (simulation only).
    true_offset_ns: Option<i64>,
}

/// What a run collected.
struct Run {
    server: String,
    address: String,
    exchanges: Vec<Exchanged>,
    /// Each round's record, when it ended (s since the start) and the clock error then (ns).
    rounds: Vec<(RoundRecord, f64, i64)>,
    /// (s since the start, clock error in ms).
    samples: Vec<(f64, f64)>,
    status: SyncStatus,
}

fn intro(r: &mut Report, server: &str, every: Duration) {
    r.para(format!(
        "The node's clock starts {SKEW_MS:+} ms off and gains {DRIFT_MS_PER_S} ms every second \
         ({} ppm) (kafka_timesync::clock::PhysicalClock). Every {} s it asks {server} for the \
         time (4 exchanges in the first round, 2 after). Each exchange gives T1 (request sent, \
         our clock), T2 (received, server clock), T3 (reply sent, server clock), T4 (reply \
         received, our clock); θ = ((T2 − T1) + (T3 − T4)) / 2 is the offset of the server from \
         us, δ = (T4 − T1) − (T3 − T2) the round-trip delay. However the delay splits between \
         the two directions, the true offset lies within θ ± δ/2. The sync engine filters the \
         samples, then slews |θ| < 125 ms, steps up to 1000 s and ignores anything larger; from \
         the corrections over time it estimates the drift and sets the clock's frequency to \
         cancel it. A backward step never makes the clock run backwards: it holds (repeats its \
         last reading) until real time has caught up.",
        DRIFT_MS_PER_S * 1000.0,
        every.as_secs()
    ));
}

/// The `ntp` demo against a server simulated on the seeded network (no socket, virtual time).
pub fn demo(seed: u64, wire: &mut dyn Wire, plot_dir: Option<&Path>) -> Result<Report> {
    let mut r = Report::new(
        "ntp",
        "SNTP: a skewed, drifting clock disciplined by a server",
    );
    let server = "a simulated NTP server";
    intro(&mut r, server, SIM_ROUND_EVERY);
    r.para(format!(
        "The server is simulated on the seeded network (seed {seed}): one-way delays of {}–{} \
         ms, plus up to {} ms on the way back after T3 is stamped (an asymmetric path), \
         {}–{} µs between T2 and T3, virtual time (the run is instant). In round \
         {FALSETICKER_ROUND} the server's clock is {} s off, as a broken server's would be.",
        NET_DELAY_NS.0 / MS,
        NET_DELAY_NS.1 / MS,
        ASYMMETRY_NS.1 / MS,
        SERVER_PROCESSING_NS.0 / 1000,
        SERVER_PROCESSING_NS.1 / 1000,
        FALSETICKER_OFFSET_NS / 1_000_000_000
    ));
    let run = simulate(seed, wire)?;
    report(r, run, plot_dir, true)
}

/// The node (client) and the server on the simulated network.
const NODE: usize = 0;
const SERVER: usize = 1;

/// Timer tags: the kind in the high bits, the round (or a pending reply) in the low bits.
const T_ROUND: u64 = 1 << 32;
const T_SEND: u64 = 2 << 32;
const T_FINISH: u64 = 3 << 32;
const T_SAMPLE: u64 = 4 << 32;
const T_SERVE: u64 = 5 << 32;
const LOW: u64 = (1 << 32) - 1;

/// A request in flight: its round, the request, and the true offset when it was sent.
struct InFlight {
    round: usize,
    request: Request,
    truth1: i64,
}

fn simulate(seed: u64, wire: &mut dyn Wire) -> Result<Run> {
    let truth = Arc::new(ManualTime::new(SIM_START_NS));
    let source: Arc<dyn TimeSource> = truth.clone();
    let clock = PhysicalClock::with_simulation(source, simulation());
    let addr = SocketAddr::from(SIM_ADDR);
    let opts = sync_options(&addr.to_string(), SIM_ROUND_EVERY);
    clock.set_max_slew_ppm(opts.max_slew_ppm);
    let exchange_opts = opts.exchange;
    let mut engine = SyncEngine::new(opts);
    engine.set_addr(0, addr);

    let cfg = NetConfig {
        min_delay_ns: NET_DELAY_NS.0,
        max_delay_ns: NET_DELAY_NS.1,
        fifo: false,
    };
    let mut net: SimNet<Vec<u8>> = SimNet::new(cfg, seed, wire);
    let round_ns = SIM_ROUND_EVERY.as_nanos() as i64;
    net.set_timer(NODE, 0, T_ROUND | 1);
    for k in 1..=(SIM_ROUNDS as i64 * 10) {
        net.set_timer(NODE, k * round_ns / 10, T_SAMPLE);
    }
    let error_now = |clock: &PhysicalClock| clock.now_ns() - truth.now_ns();
    let mut in_flight: HashMap<u64, InFlight> = HashMap::new();
    let mut replies: Vec<Option<Vec<u8>>> = Vec::new();
    let mut run = Run {
        server: "simulated".into(),
        address: addr.to_string(),
        exchanges: vec![],
        rounds: vec![],
        samples: vec![],
        status: engine.status(&clock),
    };
    while let Some(ev) = net.next_event()? {
        let now = net.now_ns();
        truth.set(SIM_START_NS + now);
        let t_s = now as f64 / 1e9;
        match ev {
            Event::Timer { tag, .. } => match (tag & !LOW, (tag & LOW) as usize) {
                (T_ROUND, round) => {
                    let (servers, n) = engine.plan_round();
                    let n = if servers.is_empty() { 0 } else { n };
                    for k in 0..n as i64 {
                        net.set_timer(NODE, now + k * 50 * MS, T_SEND | round as u64);
                    }
                    net.set_timer(NODE, now + round_ns / 2, T_FINISH | round as u64);
                }
                (T_SEND, round) => {
                    let (request, datagram) =
                        Request::new(&clock).map_err(|e| anyhow::anyhow!("{e}"))?;
                    in_flight.insert(
                        request.transmit.0,
                        InFlight {
                            round,
                            request,
                            truth1: truth.now_ns() - request.t1(),
                        },
                    );
                    net.send(NODE, SERVER, &datagram.to_vec())?;
                }
                (T_FINISH, round) => {
                    let rec = engine.finish_round(&clock);
                    run.rounds.push((rec, t_s, error_now(&clock)));
                    if round < SIM_ROUNDS {
                        net.set_timer(NODE, round as i64 * round_ns, T_ROUND | (round as u64 + 1));
                    }
                }
                (T_SAMPLE, _) => run.samples.push((t_s, error_now(&clock) as f64 / 1e6)),
                (T_SERVE, i) => {
                    if let Some(bytes) = replies.get_mut(i).and_then(Option::take) {
                        net.send(SERVER, NODE, &bytes)?;
                    }
                }
                _ => bail!("unknown timer {tag:#x}"),
            },
            Event::Deliver(p) if p.to == SERVER => {
                let request = Packet::parse(&p.msg).map_err(|e| anyhow::anyhow!("{e}"))?;
                let round = in_flight.get(&request.transmit.0).map_or(0, |f| f.round);
                let off = if round == FALSETICKER_ROUND {
                    FALSETICKER_OFFSET_NS
                } else {
                    0
                };
                let t2 = truth.now_ns() + off;
                let processing = net.random_range(SERVER_PROCESSING_NS.0, SERVER_PROCESSING_NS.1);
                let t3 = t2 + processing;
                let reply = Packet {
                    leap: 0,
                    version: request.version,
                    mode: MODE_SERVER,
                    stratum: 1,
                    poll: request.poll,
                    precision: -20,
                    root_delay: 0,
                    root_dispersion: 1 << 4,
                    reference_id: *b"SIM\0",
                    reference: NtpTimestamp::from_unix_ns(t2 - 1_000_000_000),
                    origin: request.transmit,
                    receive: NtpTimestamp::from_unix_ns(t2),
                    transmit: NtpTimestamp::from_unix_ns(t3),
                };
                let asymmetry = net.random_range(ASYMMETRY_NS.0, ASYMMETRY_NS.1);
                replies.push(Some(reply.to_bytes().to_vec()));
                let i = (replies.len() - 1) as u64;
                net.set_timer(SERVER, now + processing + asymmetry, T_SERVE | i);
            }
            Event::Deliver(p) => {
                // The simulated network routes the reply to its request by the origin timestamp.
                let origin = Packet::parse(&p.msg)
                    .map_err(|e| anyhow::anyhow!("{e}"))?
                    .origin;
                let Some(f) = in_flight.remove(&origin.0) else {
                    bail!("a reply to no request in flight");
                };
                let result = f.request.complete(&clock, addr, &p.msg, &exchange_opts);
                let t4 = result.t4.unwrap_or_else(|| clock.read_raw().disciplined_ns);
                let record = engine.on_exchange(0, &result);
                // The server's true offset from the node's clock, averaged over the exchange
                // (the clock's error moves by drift and slew while the packets travel).
                let off = if f.round == FALSETICKER_ROUND {
                    FALSETICKER_OFFSET_NS
                } else {
                    0
                };
                let truth4 = truth.now_ns() - t4;
                run.exchanges.push(Exchanged {
                    round: f.round,
                    record,
                    true_offset_ns: Some((f.truth1 + truth4) / 2 + off),
                });
                run.samples.push((t_s, error_now(&clock) as f64 / 1e6));
            }
        }
    }
    run.status = engine.status(&clock);
    Ok(run)
}

/// The `ntp` demo against a real server (`host[:port]`) over UDP, in real time (ten seconds).
pub fn demo_server(server: &str, plot_dir: Option<&Path>) -> Result<Report> {
    let mut r = Report::new(
        "ntp",
        "SNTP: a skewed, drifting clock disciplined by a server",
    );
    intro(&mut r, server, REAL_ROUND_EVERY);
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
    let clock = PhysicalClock::with_simulation(system.clone(), simulation());
    let opts = sync_options(server, REAL_ROUND_EVERY);
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
    let mut exchanges: Vec<Exchanged> = vec![];
    let mut rounds: Vec<(RoundRecord, f64, i64)> = vec![];
    rt.block_on(async {
        for round in 1..=REAL_ROUNDS {
            let (servers, n) = engine.plan_round();
            for idx in servers {
                for _ in 0..n {
                    let res = exchange(&clock, addr, &exchange_opts).await;
                    exchanges.push(Exchanged {
                        round,
                        record: engine.on_exchange(idx, &res),
                        true_offset_ns: None,
                    });
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
                tokio::time::sleep(REAL_ROUND_EVERY / 10).await;
                let (t, e) = error_now(&clock);
                samples.push((t, e as f64 / 1e6));
            }
        }
    });
    let run = Run {
        server: server.to_string(),
        address: addr.to_string(),
        exchanges,
        rounds,
        samples,
        status: engine.status(&clock),
    };
    report(r, run, plot_dir, false)
}

/// Tables, checks, charts and data of a run. `simulated`: the truth is known, θ is checked
/// against it and the falseticker round must be ignored.
fn report(mut r: Report, run: Run, plot_dir: Option<&Path>, simulated: bool) -> Result<Report> {
    let mut header = vec![
        "round",
        "T1 (ours)",
        "T2 (server)",
        "T3 (server)",
        "T4 (ours)",
        ">θ (ms)",
        ">δ (ms)",
        ">±δ/2 (ms)",
    ];
    if simulated {
        header.push(">true offset (ms)");
    }
    header.push("result");
    let mut t = Table::new(&header);
    for x in &run.exchanges {
        let rec = &x.record;
        let mut row = vec![
            x.round.to_string(),
            clock_time(rec.t1_ns),
            clock_time(rec.t2_ns),
            clock_time(rec.t3_ns),
            clock_time(rec.t4_ns),
            rec.offset_ns
                .map(|v| ms_signed(v, 3))
                .unwrap_or_else(|| "-".into()),
            rec.delay_ns.map(|v| ms(v, 3)).unwrap_or_else(|| "-".into()),
            rec.delay_ns
                .map(|v| ms(v / 2, 3))
                .unwrap_or_else(|| "-".into()),
        ];
        if simulated {
            row.push(
                x.true_offset_ns
                    .map(|v| ms_signed(v, 3))
                    .unwrap_or_else(|| "-".into()),
            );
        }
        row.push(match &rec.rejected {
            None => "accepted".into(),
            Some(reason) => format!("rejected: {reason}"),
        });
        t.row(row);
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
    for (k, (rec, at, err)) in run.rounds.iter().enumerate() {
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
    let reference = if simulated {
        "the true (virtual) time"
    } else {
        "this host's system clock"
    };
    r.para(format!("Rounds (clock error = our clock − {reference}):"));
    r.table(&t);
    let accepted = run
        .exchanges
        .iter()
        .filter(|x| x.record.rejected.is_none())
        .count();
    if accepted == 0 {
        bail!(
            "no NTP exchange with {} succeeded ({} tried)",
            run.server,
            run.exchanges.len()
        );
    }
    let final_err = run.rounds.last().map(|x| x.2).unwrap_or(i64::MAX);
    let last_delay = run
        .exchanges
        .iter()
        .rev()
        .find_map(|x| x.record.delay_ns)
        .unwrap_or(0);
    let tolerance = (5 * 1_000_000).max(2 * last_delay);
    let action = |k: usize| {
        run.rounds
            .get(k)
            .and_then(|x| x.0.action)
            .map_or("none", |a| a.as_str())
    };
    r.check(
        "the first round steps the 300 ms error (|θ| >= 125 ms)",
        action(0) == "step",
        format!("first decision: {}", action(0)),
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
    let drift = run.rounds.iter().rev().find_map(|x| x.0.drift_ppm);
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
    if simulated {
        // 1 µs: the node's own timestamp precision and the NTP format's rounding.
        let worst = run
            .exchanges
            .iter()
            .filter_map(|x| {
                let rec = &x.record;
                Some((rec.offset_ns? - x.true_offset_ns?).abs() - rec.delay_ns? / 2)
            })
            .max()
            .unwrap_or(i64::MAX);
        r.check(
            "every θ is within δ/2 of the true offset (the error bound)",
            worst <= 1_000,
            format!(
                "largest |θ − true offset| − δ/2 over {} exchanges: {} ms",
                run.exchanges.len(),
                ms_signed(worst, 3)
            ),
        );
        let k = FALSETICKER_ROUND - 1;
        let before = k
            .checked_sub(1)
            .and_then(|j| run.rounds.get(j))
            .map(|x| x.2);
        let after = run.rounds.get(k).map(|x| x.2);
        r.check(
            format!(
                "round {FALSETICKER_ROUND}: the {} s offset is ignored, the clock not touched",
                FALSETICKER_OFFSET_NS / 1_000_000_000
            ),
            action(k) == "ignore"
                && before
                    .zip(after)
                    .is_some_and(|(b, a)| (a - b).abs() <= tolerance),
            format!(
                "decision: {}; clock error {} → {} ms",
                action(k),
                before.map_or("-".into(), |v| ms_signed(v, 3)),
                after.map_or("-".into(), |v| ms_signed(v, 3))
            ),
        );
        let slews = (0..run.rounds.len())
            .filter(|&k| action(k) == "slew")
            .count();
        r.check(
            "after the step, small offsets are slewed (|θ| < 125 ms)",
            slews >= 2,
            format!("{slews} slewing rounds"),
        );
    }
    if let Some(dir) = plot_dir {
        let marks: Vec<(f64, String)> = run
            .rounds
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
        let against = if simulated {
            "a simulated server"
        } else {
            run.server.as_str()
        };
        plot::clock_error_chart(
            &path,
            &format!("SNTP discipline against {against}: clock error"),
            &[Series {
                name: name.clone(),
                points: run.samples.clone(),
            }],
            &marks,
        )?;
        let after: Vec<(f64, f64)> = run
            .samples
            .iter()
            .copied()
            .filter(|p| run.rounds.first().is_some_and(|x| p.0 > x.1 + 0.3))
            .collect();
        let path2 = dir.join("ntp_clock_error_after_step.svg");
        plot::clock_error_chart(
            &path2,
            "After the first step: drift, slews and frequency correction",
            &[Series {
                name,
                points: after,
            }],
            marks.get(1..).unwrap_or(&[]),
        )?;
        r.para(format!(
            "Charts written: {}, {}",
            path.display(),
            path2.display()
        ));
    }
    let exchanges: Vec<Value> = run
        .exchanges
        .iter()
        .map(
            |x| json!({"round": x.round, "exchange": x.record, "true_offset_ns": x.true_offset_ns}),
        )
        .collect();
    r.data = json!({
        "server": run.server,
        "address": run.address,
        "simulated": simulated,
        "simulation": { "skew_ms": SKEW_MS, "drift_ms_per_s": DRIFT_MS_PER_S, "random_variation_ms": RANDOM_VARIATION_MS },
        "exchanges": exchanges,
        "rounds": run.rounds.iter().map(|(rec, at, err)| json!({"t_s": at, "record": rec, "clock_error_ns": err})).collect::<Vec<_>>(),
        "status": run.status,
    });
    Ok(r)
}
