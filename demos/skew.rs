//! The `skew` and `logical` demos: one seeded exchange between three nodes whose physical clocks
//! have the prototype's skew/drift/random-variation profiles, ordered by physical time and by
//! Lamport time.

use crate::exchange::{self, Exchange, Kind};
use crate::plot::{self, Series};
use crate::report::{ms, ms_signed, Report, Table};
use crate::sim_net::{Wire, MS};
use anyhow::Result;
use kafka_timesync::clock::physical::Simulation;
use kafka_timesync::clock::PhysicalClock;
use kafka_timesync::time::{ManualTime, TimeSource};
use serde_json::json;
use std::path::Path;
use std::sync::Arc;

/// The start of every simulated run, Unix ns (a fixed instant, so output is repeatable).
pub const EPOCH_NS: i64 = 1_790_000_000_000_000_000;

/// A node's clock profile (the prototype's `--simulate-skew/--simulate-drift/--random-variation`).
#[derive(Debug, Clone, Copy)]
pub struct Profile {
    /// Node name.
    pub name: &'static str,
    /// Constant offset, ms.
    pub skew_ms: f64,
    /// Drift, ms per s.
    pub drift_ms_per_s: f64,
    /// Jitter half-width, ms.
    pub random_variation_ms: f64,
}

/// The three profiles of the prototype's design doc.
pub const PROFILES: [Profile; 3] = [
    Profile {
        name: "A",
        skew_ms: 0.0,
        drift_ms_per_s: 0.0,
        random_variation_ms: 0.0,
    },
    Profile {
        name: "B",
        skew_ms: 100.0,
        drift_ms_per_s: 0.1,
        random_variation_ms: 5.0,
    },
    Profile {
        name: "C",
        skew_ms: -50.0,
        drift_ms_per_s: -0.05,
        random_variation_ms: 3.0,
    },
];

impl Profile {
    fn describe(&self) -> String {
        format!(
            "{:+} ms, {:+} ms/s, ±{} ms",
            self.skew_ms, self.drift_ms_per_s, self.random_variation_ms
        )
    }
}

/// Physical clocks of the given profiles over one shared simulated true time.
pub struct Clocks {
    truth: Arc<ManualTime>,
    clocks: Vec<PhysicalClock>,
}

impl Clocks {
    /// One `PhysicalClock` per profile, created at true time 0, random variation seeded from `seed`.
    pub fn new(profiles: &[Profile], seed: u64) -> Self {
        let truth = Arc::new(ManualTime::new(EPOCH_NS));
        let clocks = profiles
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let source: Arc<dyn TimeSource> = truth.clone();
                let sim = Simulation {
                    skew_ms: p.skew_ms,
                    drift_ms_per_s: p.drift_ms_per_s,
                    random_variation_ms: p.random_variation_ms,
                    seed: Some(seed.wrapping_mul(31).wrapping_add(i as u64)),
                };
                PhysicalClock::with_simulation(source, sim)
            })
            .collect();
        Self { truth, clocks }
    }

    /// Node `i`'s physical clock at true time `true_ns` (both ns since the start of the run).
    pub fn read(&self, i: usize, true_ns: i64) -> i64 {
        self.truth.set(EPOCH_NS + true_ns);
        self.clocks[i].now_ns() - EPOCH_NS
    }

    /// The clock of node `i`.
    pub fn clock(&self, i: usize) -> &PhysicalClock {
        &self.clocks[i]
    }

    /// Sets the shared true time (ns since the start of the run).
    pub fn set_true(&self, true_ns: i64) {
        self.truth.set(EPOCH_NS + true_ns);
    }
}

/// The exchange both demos look at: 12 messages, two on every ordered pair of nodes.
pub fn stamped_exchange(seed: u64, wire: &mut dyn Wire) -> Result<Exchange> {
    let clocks = Clocks::new(&PROFILES, seed);
    let names: Vec<&str> = PROFILES.iter().map(|p| p.name).collect();
    exchange::run(&names, 12, seed, wire, &mut |node, t| clocks.read(node, t))
}

/// Pairs (a, b) with a before b in true time but b's physical stamp earlier than a's.
fn physical_inversions(ex: &Exchange) -> Vec<(usize, usize)> {
    let mut v = vec![];
    for a in &ex.events {
        for b in &ex.events[a.idx + 1..] {
            if a.true_ns < b.true_ns && a.physical_ns > b.physical_ns {
                v.push((a.idx, b.idx));
            }
        }
    }
    v
}

/// Happened-before pairs (a → b) whose stamps say otherwise (stamp(a) ≥ stamp(b)).
fn causality_violations(ex: &Exchange, stamp: impl Fn(usize) -> i128) -> Vec<(usize, usize)> {
    let mut v = vec![];
    for a in &ex.events {
        for b in &ex.events {
            if ex.happened_before(a.idx, b.idx) && stamp(a.idx) >= stamp(b.idx) {
                v.push((a.idx, b.idx));
            }
        }
    }
    v
}

fn profile_table() -> Table {
    let mut t = Table::new(&["node", ">skew", ">drift", ">random variation"]);
    for p in PROFILES {
        t.row(vec![
            p.name.into(),
            format!("{:+} ms", p.skew_ms),
            format!("{:+} ms/s", p.drift_ms_per_s),
            format!("±{} ms", p.random_variation_ms),
        ]);
    }
    t
}

/// The `skew` demo.
pub fn demo_skew(seed: u64, wire: &mut dyn Wire, plot_dir: Option<&Path>) -> Result<Report> {
    let mut r = Report::new(
        "skew",
        "physical clocks with skew, drift and random variation",
    );
    r.para(
        "Three nodes stamp events with their own physical clocks (kafka_timesync::clock::PhysicalClock \
         with the prototype's simulation profiles). They exchange 12 messages over a network with \
         1–40 ms delays. Sorting the events by their timestamps should give the true order; with \
         skewed clocks it does not.",
    );
    r.table(&profile_table());
    let ex = stamped_exchange(seed, wire)?;
    let inv = physical_inversions(&ex);
    let bad = causality_violations(&ex, |i| ex.events[i].physical_ns as i128);
    let mut t = Table::new(&[
        ">#",
        ">true t (ms)",
        "event",
        ">physical stamp (ms)",
        ">error (ms)",
        ">rank by stamp",
    ]);
    let mut by_stamp: Vec<usize> = (0..ex.events.len()).collect();
    by_stamp.sort_by_key(|i| (ex.events[*i].physical_ns, *i));
    let mut rank = vec![0; ex.events.len()];
    for (k, i) in by_stamp.iter().enumerate() {
        rank[*i] = k + 1;
    }
    for e in &ex.events {
        let moved = if rank[e.idx] != e.idx + 1 { " *" } else { "" };
        t.row(vec![
            (e.idx + 1).to_string(),
            ms(e.true_ns, 2),
            ex.label(e),
            ms(e.physical_ns, 2),
            ms_signed(e.physical_ns - e.true_ns, 2),
            format!("{}{moved}", rank[e.idx]),
        ]);
    }
    r.para("Events in true order (* = out of place when sorted by physical timestamp):");
    r.table(&t);
    let msgs = ex.messages();
    let backwards: Vec<_> = msgs
        .iter()
        .filter(|(s, rcv)| ex.events[*rcv].physical_ns < ex.events[*s].physical_ns)
        .collect();
    let mut t = Table::new(&[
        "message",
        ">sent at (stamp ms)",
        ">received at (stamp ms)",
        ">apparent delay (ms)",
    ]);
    for (s, rcv) in &backwards {
        let (a, b) = (&ex.events[*s], &ex.events[*rcv]);
        let name = match a.kind {
            Kind::Send { msg, .. } => format!("m{msg} {}→{}", ex.nodes[a.node], ex.nodes[b.node]),
            Kind::Recv { .. } => String::new(),
        };
        t.row(vec![
            name,
            ms(a.physical_ns, 2),
            ms(b.physical_ns, 2),
            ms_signed(b.physical_ns - a.physical_ns, 2),
        ]);
    }
    r.para(format!(
        "{} of {} pairs of events are inverted by physical time; {} of the {} happened-before \
         pairs are contradicted; {} of {} messages were received before they were sent, by the \
         clocks:",
        inv.len(),
        ex.events.len() * (ex.events.len() - 1) / 2,
        bad.len(),
        ex.events
            .iter()
            .map(|a| ex
                .events
                .iter()
                .filter(|b| ex.happened_before(a.idx, b.idx))
                .count())
            .sum::<usize>(),
        backwards.len(),
        msgs.len()
    ));
    r.table(&t);
    // Invariants of the physical clock itself.
    let mut mono = true;
    let mut within = true;
    for (i, p) in PROFILES.iter().enumerate() {
        let mine: Vec<_> = ex.events.iter().filter(|e| e.node == i).collect();
        mono &= mine
            .windows(2)
            .all(|w| w[0].physical_ns <= w[1].physical_ns);
        for e in &mine {
            let expect =
                p.skew_ms * MS as f64 + p.drift_ms_per_s * MS as f64 * (e.true_ns as f64 / 1e9);
            let err = (e.physical_ns - e.true_ns) as f64;
            // The monotonic guard may hold a reading back by at most twice the random variation.
            within &= (err - expect).abs() <= 2.0 * p.random_variation_ms * MS as f64 + 1.0;
        }
    }
    r.check(
        "each node's physical clock never runs backwards",
        mono,
        "stamps per node are non-decreasing",
    );
    r.check(
        "each clock's error = skew + drift·t within the random-variation bound",
        within,
        PROFILES
            .iter()
            .map(|p| format!("{}: {}", p.name, p.describe()))
            .collect::<Vec<_>>()
            .join("; "),
    );
    r.check(
        "physical-time order contradicts the true order (inversions counted)",
        !inv.is_empty() && !backwards.is_empty(),
        format!(
            "{} inverted pairs, {} messages received 'before' being sent",
            inv.len(),
            backwards.len()
        ),
    );
    if let Some(dir) = plot_dir {
        let path = dir.join("skew_clock_error.svg");
        let series = error_series(seed, 120.0, 0.5);
        plot::clock_error_chart(
            &path,
            "Clock error of nodes A, B, C (skew + drift + random variation)",
            &series,
            &[],
        )?;
        r.para(format!("Chart written: {}", path.display()));
    }
    r.data = json!({
        "profiles": PROFILES.iter().map(|p| json!({"node": p.name, "skew_ms": p.skew_ms, "drift_ms_per_s": p.drift_ms_per_s, "random_variation_ms": p.random_variation_ms})).collect::<Vec<_>>(),
        "events": ex.events,
        "inverted_pairs": inv.len(),
        "causality_violations": bad.len(),
        "messages_received_before_sent": backwards.len(),
    });
    Ok(r)
}

/// Clock error (ms) of every profile sampled every `step_s` over `span_s` seconds.
fn error_series(seed: u64, span_s: f64, step_s: f64) -> Vec<Series> {
    let clocks = Clocks::new(&PROFILES, seed);
    let steps = (span_s / step_s) as usize;
    PROFILES
        .iter()
        .enumerate()
        .map(|(i, p)| Series {
            name: format!("{} ({})", p.name, p.describe()),
            points: (0..=steps)
                .map(|k| {
                    let t = (k as f64 * step_s * 1e9) as i64;
                    (t as f64 / 1e9, (clocks.read(i, t) - t) as f64 / 1e6)
                })
                .collect(),
        })
        .collect()
}

/// The `logical` demo.
pub fn demo_logical(seed: u64, wire: &mut dyn Wire) -> Result<Report> {
    let mut r = Report::new("logical", "Lamport clocks on the same exchange");
    r.para(
        "The same 12 messages (same seed) stamped with Lamport clocks instead: increment before \
         each event, send the value with the message, on receipt take max(local, received) + 1. \
         Ties are broken by node name, which makes the order total.",
    );
    let ex = stamped_exchange(seed, wire)?;
    let phys_bad = causality_violations(&ex, |i| ex.events[i].physical_ns as i128);
    let lam_bad = causality_violations(&ex, |i| ex.events[i].lamport as i128);
    let hb_pairs: usize = ex
        .events
        .iter()
        .map(|a| {
            ex.events
                .iter()
                .filter(|b| ex.happened_before(a.idx, b.idx))
                .count()
        })
        .sum();
    let mut t = Table::new(&[
        ">#",
        ">true t (ms)",
        "event",
        ">physical (ms)",
        ">Lamport",
        "vector",
    ]);
    for e in &ex.events {
        t.row(vec![
            (e.idx + 1).to_string(),
            ms(e.true_ns, 2),
            ex.label(e),
            ms(e.physical_ns, 2),
            e.lamport.to_string(),
            exchange::vt_tuple(&e.vector, &ex.nodes),
        ]);
    }
    r.table(&t);
    let mut s = Table::new(&["ordering by", ">happened-before pairs", ">contradicted"]);
    s.row(vec![
        "physical timestamp".into(),
        hb_pairs.to_string(),
        phys_bad.len().to_string(),
    ]);
    s.row(vec![
        "Lamport timestamp".into(),
        hb_pairs.to_string(),
        lam_bad.len().to_string(),
    ]);
    r.table(&s);
    if let Some((a, b)) = phys_bad.first() {
        r.para(format!(
            "For example \"{}\" happened before \"{}\", yet its physical stamp is {} ms later; \
             their Lamport times are {} < {}.",
            ex.label(&ex.events[*a]),
            ex.label(&ex.events[*b]),
            ms(ex.events[*a].physical_ns - ex.events[*b].physical_ns, 2),
            ex.events[*a].lamport,
            ex.events[*b].lamport
        ));
    }
    // The limit: C(a) < C(b) does not mean a → b.
    let limit = ex.events.iter().find_map(|a| {
        ex.events
            .iter()
            .find(|b| ex.concurrent(a.idx, b.idx) && a.lamport < b.lamport)
            .map(|b| (a.idx, b.idx))
    });
    let concurrent_ordered = ex
        .events
        .iter()
        .map(|a| {
            ex.events
                .iter()
                .filter(|b| ex.concurrent(a.idx, b.idx) && a.lamport < b.lamport)
                .count()
        })
        .sum::<usize>();
    if let Some((a, b)) = limit {
        let (ea, eb) = (&ex.events[a], &ex.events[b]);
        r.para(format!(
            "The limit: C(a) < C(b) does not imply a → b. a = \"{}\" (C={}, vector {}) and b = \"{}\" \
             (C={}, vector {}) are concurrent — neither vector is below the other — yet Lamport \
             orders a first. {} concurrent pairs of this exchange get such an order; only vector \
             clocks tell them apart.",
            ex.label(ea),
            ea.lamport,
            exchange::vt_tuple(&ea.vector, &ex.nodes),
            ex.label(eb),
            eb.lamport,
            exchange::vt_tuple(&eb.vector, &ex.nodes),
            concurrent_ordered
        ));
    }
    r.check(
        "Lamport order never contradicts happened-before (clock condition)",
        lam_bad.is_empty(),
        format!(
            "{} of {hb_pairs} happened-before pairs contradicted",
            lam_bad.len()
        ),
    );
    r.check(
        "physical order does contradict happened-before with these skews",
        !phys_bad.is_empty(),
        format!(
            "{} of {hb_pairs} happened-before pairs contradicted",
            phys_bad.len()
        ),
    );
    r.data = json!({
        "events": ex.events,
        "happened_before_pairs": hb_pairs,
        "physical_contradictions": phys_bad.len(),
        "lamport_contradictions": lam_bad.len(),
        "concurrent_pairs_ordered_by_lamport": concurrent_ordered,
        "example_limit": limit.map(|(a, b)| json!({"a": a, "b": b})),
    });
    Ok(r)
}
