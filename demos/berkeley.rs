//! The `berkeley` demo: the Berkeley algorithm (Gusella & Zatti) — internal synchronisation with
//! no reference clock. A master polls every node's clock, estimates each offset from the round
//! trip (Cristian), averages the offsets while discarding outliers, and sends every node (the
//! outliers too) the adjustment that brings it to the average. Nodes apply it with the SNTP
//! discipline's rule: slew below 125 ms, step above (a backward step holds the clock).

use crate::plot::{self, Series};
use crate::report::{ms, ms_signed, Report, Table};
use crate::sim_net::{Event, NetConfig, SimNet, Wire, MS};
use crate::skew::{Clocks, Profile, PROFILES};
use anyhow::Result;
use kafka_timesync::ntp::{Action, Thresholds};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::path::Path;

/// The master, the prototype's three profiles, and an outlier 4 s ahead.
const NODES: [Profile; 5] = [
    Profile {
        name: "M",
        skew_ms: 20.0,
        drift_ms_per_s: 0.02,
        random_variation_ms: 1.0,
    },
    PROFILES[0],
    PROFILES[1],
    PROFILES[2],
    Profile {
        name: "D",
        skew_ms: 4000.0,
        drift_ms_per_s: 0.0,
        random_variation_ms: 0.0,
    },
];
const MASTER: usize = 0;
/// Offsets further than this from the median are not averaged.
const MAX_DEVIATION_NS: i64 = 500 * MS;
const ROUND_EVERY_NS: i64 = 10_000 * MS;
const ROUNDS: u64 = 3;
const MIN_DELAY: i64 = 2 * MS;
const MAX_DELAY: i64 = 10 * MS;

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
enum Msg {
    Poll,
    Time { clock_ns: i64 },
    Adjust { delta_ns: i64 },
}

#[derive(Debug, Clone, Serialize)]
struct NodeRound {
    node: &'static str,
    error_before_ns: i64,
    estimate_ns: i64,
    rtt_ns: i64,
    averaged: bool,
    adjustment_ns: i64,
    action: &'static str,
}

#[derive(Debug, Clone, Serialize)]
struct Round {
    at_s: f64,
    average_ns: i64,
    spread_before_all_ns: i64,
    spread_before_without_outliers_ns: i64,
    nodes: Vec<NodeRound>,
}

fn spread(errors: &[i64]) -> i64 {
    errors.iter().max().copied().unwrap_or(0) - errors.iter().min().copied().unwrap_or(0)
}

const TAG_ROUND: u64 = 1;
const TAG_SAMPLE: u64 = 2;

/// The `berkeley` demo.
pub fn demo(seed: u64, wire: &mut dyn Wire, plot_dir: Option<&Path>) -> Result<Report> {
    let mut r = Report::new(
        "berkeley",
        "the Berkeley algorithm: a master averages the clocks",
    );
    r.para(
        "Master M polls A, B, C, D every 10 s. For each reply it estimates the node's offset \
         from its own clock as (node's time + RTT/2) − M's time. It averages the offsets of \
         itself and every node within 500 ms of the median (D, 4 s ahead, is an outlier and is \
         left out), then tells each node — D included — how much to adjust. There is no \
         reference clock: the nodes agree with each other, not with true time.",
    );
    let mut t = Table::new(&["node", ">skew", ">drift", ">random variation"]);
    for p in NODES {
        t.row(vec![
            p.name.into(),
            format!("{:+} ms", p.skew_ms),
            format!("{:+} ms/s", p.drift_ms_per_s),
            format!("±{} ms", p.random_variation_ms),
        ]);
    }
    r.table(&t);
    let clocks = Clocks::new(&NODES, seed);
    let n = NODES.len();
    let cfg = NetConfig {
        min_delay_ns: MIN_DELAY,
        max_delay_ns: MAX_DELAY,
        fifo: true,
    };
    let mut net: SimNet<Msg> = SimNet::new(cfg, seed, wire);
    let thresholds = Thresholds::default();
    for k in 1..=ROUNDS {
        net.set_timer(MASTER, k as i64 * ROUND_EVERY_NS, TAG_ROUND);
    }
    let end_ns = (ROUNDS as i64 + 1) * ROUND_EVERY_NS;
    let sample_every = 250 * MS;
    for k in 0..=(end_ns / sample_every) {
        net.set_timer(MASTER, k * sample_every, TAG_SAMPLE);
    }
    let errors_now = |true_ns: i64| -> Vec<i64> {
        clocks.set_true(true_ns);
        (0..n).map(|i| clocks.read(i, true_ns) - true_ns).collect()
    };
    let mut series: Vec<Vec<(f64, f64)>> = vec![vec![]; n];
    let mut poll_sent = vec![0i64; n];
    let mut replies: Vec<Option<(i64, i64)>> = vec![None; n]; // (estimate, rtt)
    let mut rounds: Vec<Round> = vec![];
    let mut before: Vec<i64> = vec![];
    let mut spread_after: Vec<(i64, i64)> = vec![];
    while let Some(ev) = net.next_event()? {
        let now = net.now_ns();
        match ev {
            Event::Timer {
                tag: TAG_SAMPLE, ..
            } => {
                let e = errors_now(now);
                for (i, v) in e.iter().enumerate() {
                    series[i].push((now as f64 / 1e9, *v as f64 / 1e6));
                }
                if now == end_ns || (now % ROUND_EVERY_NS == 0 && now > ROUND_EVERY_NS) {
                    let without_d: Vec<i64> = e
                        .iter()
                        .zip(NODES)
                        .filter(|(_, p)| p.name != "D")
                        .map(|(v, _)| *v)
                        .collect();
                    spread_after.push((spread(&e), spread(&without_d)));
                }
            }
            Event::Timer { .. } => {
                before = errors_now(now);
                replies = vec![None; n];
                replies[MASTER] = Some((0, 0));
                for (i, sent) in poll_sent.iter_mut().enumerate() {
                    if i != MASTER {
                        *sent = clocks.read(MASTER, now);
                        net.send(MASTER, i, &Msg::Poll)?;
                    }
                }
            }
            Event::Deliver(p) => match p.msg {
                Msg::Poll => {
                    let clock_ns = clocks.read(p.to, now);
                    net.send(p.to, MASTER, &Msg::Time { clock_ns })?;
                }
                Msg::Time { clock_ns } => {
                    let t4 = clocks.read(MASTER, now);
                    let rtt = t4 - poll_sent[p.from];
                    replies[p.from] = Some((clock_ns + rtt / 2 - t4, rtt));
                    if replies.iter().all(Option::is_some) {
                        let est: Vec<(i64, i64)> =
                            replies.iter().map(|x| x.unwrap_or((0, 0))).collect();
                        let mut sorted: Vec<i64> = est.iter().map(|e| e.0).collect();
                        sorted.sort_unstable();
                        let median = sorted[sorted.len() / 2];
                        let used: Vec<bool> = est
                            .iter()
                            .map(|e| (e.0 - median).abs() <= MAX_DEVIATION_NS)
                            .collect();
                        let kept: Vec<i64> = est
                            .iter()
                            .zip(&used)
                            .filter(|(_, u)| **u)
                            .map(|(e, _)| e.0)
                            .collect();
                        let avg = kept.iter().sum::<i64>() / kept.len().max(1) as i64;
                        let mut nodes = vec![];
                        for i in 0..n {
                            let adj = avg - est[i].0;
                            let action = thresholds.decide(adj);
                            if i == MASTER {
                                apply(clocks.clock(MASTER), action, adj);
                            } else {
                                net.send(MASTER, i, &Msg::Adjust { delta_ns: adj })?;
                            }
                            nodes.push(NodeRound {
                                node: NODES[i].name,
                                error_before_ns: before[i],
                                estimate_ns: est[i].0,
                                rtt_ns: est[i].1,
                                averaged: used[i],
                                adjustment_ns: adj,
                                action: action.as_str(),
                            });
                        }
                        let inliers: Vec<i64> = before
                            .iter()
                            .zip(&used)
                            .filter(|(_, u)| **u)
                            .map(|(e, _)| *e)
                            .collect();
                        rounds.push(Round {
                            at_s: now as f64 / 1e9,
                            average_ns: avg,
                            spread_before_all_ns: spread(&before),
                            spread_before_without_outliers_ns: spread(&inliers),
                            nodes,
                        });
                    }
                }
                Msg::Adjust { delta_ns } => {
                    clocks.set_true(now);
                    apply(clocks.clock(p.to), thresholds.decide(delta_ns), delta_ns);
                }
            },
        }
    }
    for (k, round) in rounds.iter().enumerate() {
        let mut t = Table::new(&[
            "node",
            ">clock error (ms)",
            ">RTT (ms)",
            ">estimated offset vs M (ms)",
            "averaged?",
            ">adjustment (ms)",
            "applied as",
        ]);
        for nr in &round.nodes {
            t.row(vec![
                nr.node.into(),
                ms_signed(nr.error_before_ns, 2),
                ms(nr.rtt_ns, 2),
                ms_signed(nr.estimate_ns, 2),
                if nr.averaged {
                    "yes".into()
                } else {
                    "no (outlier)".into()
                },
                ms_signed(nr.adjustment_ns, 2),
                nr.action.into(),
            ]);
        }
        r.para(format!(
            "Round {} at t = {:.0} s — average offset {} ms (clock errors are against true time, \
             which no node knows):",
            k + 1,
            round.at_s,
            ms_signed(round.average_ns, 2)
        ));
        r.table(&t);
    }
    let mut t = Table::new(&["", ">spread, all nodes (ms)", ">spread without D (ms)"]);
    let first = rounds.first();
    t.row(vec![
        "before round 1".into(),
        first
            .map(|x| ms(x.spread_before_all_ns, 2))
            .unwrap_or_default(),
        first
            .map(|x| ms(x.spread_before_without_outliers_ns, 2))
            .unwrap_or_default(),
    ]);
    for (k, s) in spread_after.iter().enumerate() {
        t.row(vec![
            format!("{} s after round {}", ROUND_EVERY_NS / 1_000_000_000, k + 1),
            ms(s.0, 2),
            ms(s.1, 2),
        ]);
    }
    r.para("Spread = largest minus smallest clock:");
    r.table(&t);
    // What the estimate can get wrong: half the delay asymmetry, the random variation of both
    // readings, and what drift adds until the spread is measured; twice that between two nodes,
    // plus the random variation of the two readings that measure the spread.
    let max_variation = NODES
        .iter()
        .map(|p| p.random_variation_ms)
        .fold(0.0, f64::max)
        * MS as f64;
    let master_variation = NODES[MASTER].random_variation_ms * MS as f64;
    let drift = NODES
        .iter()
        .map(|p| p.drift_ms_per_s.abs())
        .fold(0.0, f64::max)
        * MS as f64
        * 10.0;
    let per_node =
        (MAX_DELAY - MIN_DELAY) as f64 / 2.0 + max_variation + 2.0 * master_variation + drift;
    let bound = (2.0 * per_node + 2.0 * max_variation) as i64;
    r.para(format!(
        "Bound on the spread after a round: 2 × (delay asymmetry/2 + random variation + master \
         random variation + drift over 10 s) + measurement random variation = {} ms.",
        ms(bound, 1)
    ));
    let first_round_ok = rounds
        .first()
        .is_some_and(|x| x.nodes.iter().all(|nr| nr.averaged == (nr.node != "D")));
    let later_all_used = rounds
        .iter()
        .skip(1)
        .all(|x| x.nodes.iter().all(|nr| nr.averaged));
    r.check(
        "round 1 leaves the outlier D (4 s ahead) out of the average; once corrected, D counts again",
        first_round_ok && later_all_used && rounds.len() as u64 == ROUNDS,
        format!("{} rounds; averaged in round 1: {}", rounds.len(), rounds.first().map(|x| x.nodes.iter().filter(|n| n.averaged).map(|n| n.node).collect::<Vec<_>>().join(",")).unwrap_or_default()),
    );
    let before_spread = first
        .map(|x| x.spread_before_without_outliers_ns)
        .unwrap_or(0);
    let worst_after = spread_after.iter().map(|s| s.0).max().unwrap_or(i64::MAX);
    r.check(
        "after each round every clock (D included) is within the bound of the others",
        !spread_after.is_empty() && worst_after <= bound && worst_after < before_spread,
        format!(
            "spread {} ms before, at most {} ms after (bound {} ms)",
            ms(before_spread, 2),
            ms(worst_after, 2),
            ms(bound, 1)
        ),
    );
    if let Some(dir) = plot_dir {
        let path = dir.join("berkeley_clock_error.svg");
        let s: Vec<Series> = (0..n)
            .filter(|i| NODES[*i].name != "D")
            .map(|i| Series {
                name: format!("{} (start {:+} ms)", NODES[i].name, NODES[i].skew_ms),
                points: series[i].clone(),
            })
            .collect();
        let marks: Vec<(f64, String)> = (1..=ROUNDS)
            .map(|k| {
                (
                    (k as i64 * ROUND_EVERY_NS) as f64 / 1e9,
                    format!("round {k}"),
                )
            })
            .collect();
        plot::clock_error_chart(
            &path,
            "Berkeley algorithm: clock error of M, A, B, C (D, 4 s off, not drawn)",
            &s,
            &marks,
        )?;
        r.para(format!("Chart written: {}", path.display()));
    }
    r.data = json!({ "rounds": rounds, "spread_after_ns": spread_after, "bound_ns": bound });
    Ok(r)
}

fn apply(clock: &kafka_timesync::clock::PhysicalClock, action: Action, delta_ns: i64) {
    match action {
        Action::Slew => clock.slew(delta_ns),
        Action::Step => clock.step(delta_ns),
        Action::Ignore => {}
    }
}
