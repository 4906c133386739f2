//! Property tests of the ordering analysis against independent, brute-force computations over
//! random causal histories.

use kafka_timesync::analysis::{
    AnalysisConfig, Analyzer, ViolationKind, MAX_GAP_RANGES_PER_NODE, MAX_OFFSET_SAMPLES,
};
use kafka_timesync::clock::{CausalOrder, ClockType, LamportClock, VectorClock, VectorTimestamp};
use kafka_timesync::envelope::{Envelope, MessageTimestamp};
use kafka_timesync::time::secs_to_nanos;
use kafka_timesync::NodeId;
use proptest::prelude::*;
use std::collections::HashMap;

const T0: f64 = 1_790_000_000.0;

/// One step of a history: `node` sends, or receives the message chosen by `pick`.
#[derive(Debug, Clone, Copy)]
enum Step {
    Send(usize),
    Receive(usize, usize),
}

fn arb_history() -> impl Strategy<Value = (usize, Vec<Step>)> {
    (2usize..=6).prop_flat_map(|n| {
        let step = prop_oneof![
            3 => (0..n).prop_map(Step::Send),
            2 => (0..n, any::<usize>()).prop_map(|(a, b)| Step::Receive(a, b)),
        ];
        (Just(n), proptest::collection::vec(step, 1..80))
    })
}

/// Runs a history with real clocks: vector send stamps + merge on receive (what an observing
/// producer does), Lamport tick on send + update on receive. Physical time advances 1 ms per step;
/// `skew_ms[node]` is added to that node's physical clock (0 = perfect).
fn build(n: usize, steps: &[Step], skew_ms: &[f64]) -> Vec<Envelope> {
    let names: Vec<NodeId> = (0..n).map(|i| NodeId::from(format!("node-{i}"))).collect();
    let vcs: Vec<VectorClock> = names
        .iter()
        .map(|id| VectorClock::new(id.clone()))
        .collect();
    let lcs: Vec<LamportClock> = (0..n).map(|_| LamportClock::new()).collect();
    let mut seqs = vec![0u64; n];
    let mut sent: Vec<Envelope> = Vec::new();
    for (t, step) in steps.iter().enumerate() {
        let host = T0 + t as f64 * 0.001;
        match *step {
            Step::Send(i) => {
                seqs[i] += 1;
                let vt = vcs[i].send_stamp();
                let logical = lcs[i].tick();
                sent.push(Envelope {
                    id: format!("{}-{}", names[i], seqs[i]),
                    content: String::new(),
                    seq: Some(seqs[i]),
                    timestamp: MessageTimestamp {
                        node_id: names[i].clone(),
                        timestamp: host,
                        clock_type: ClockType::Vector,
                        physical_time: Some(host + skew_ms.get(i).copied().unwrap_or(0.0) / 1000.0),
                        logical_time: Some(logical),
                        vector_time: Some(vt),
                        hybrid_time: None,
                        simulated_time: None,
                        unmapped_vector_entries: None,
                    },
                    simulated_skew_ms: None,
                });
            }
            Step::Receive(j, pick) => {
                if sent.is_empty() {
                    continue;
                }
                let m = &sent[pick % sent.len()];
                if *m.timestamp.node_id == *names[j] {
                    continue;
                }
                let vt = m.timestamp.vector_time.as_ref().expect("vector stamped");
                vcs[j].merge(vt);
                lcs[j].update(m.timestamp.logical_time.unwrap());
            }
        }
    }
    sent
}

fn vt(m: &Envelope) -> &VectorTimestamp {
    m.timestamp.vector_time.as_ref().expect("vector stamped")
}

fn key(m: &Envelope) -> (NodeId, u64) {
    (m.timestamp.node_id.clone(), m.seq.unwrap())
}

/// Independent counts over an arrival sequence without duplicates.
#[derive(Debug, Default, PartialEq)]
struct Expected {
    gaps: u64,
    reorders: u64,
    arrival_before_cause: u64,
    physical_vs_causal: u64,
    concurrent_pairs: u64,
}

fn expected(arrivals: &[Envelope], window: usize) -> Expected {
    let pos: HashMap<(NodeId, u64), usize> = arrivals
        .iter()
        .enumerate()
        .map(|(p, m)| (key(m), p))
        .collect();
    let mut e = Expected::default();
    let mut highest: HashMap<NodeId, u64> = HashMap::new();
    for (p, m) in arrivals.iter().enumerate() {
        let node = &m.timestamp.node_id;
        let h = highest.entry(node.clone()).or_insert(0);
        if m.seq.unwrap() > *h + 1 {
            e.gaps += 1;
        }
        if m.seq.unwrap() < *h {
            e.reorders += 1;
        }
        *h = (*h).max(m.seq.unwrap());
        // Latest predecessors: (k, vt[k]) for other nodes, (i, seq − 1) for its own.
        let mut preds: Vec<(NodeId, u64)> = vt(m)
            .iter()
            .filter(|(k, _)| *k != node)
            .map(|(k, c)| (k.clone(), c))
            .collect();
        if vt(m)
            .iter()
            .any(|(k, c)| k != node && pos[&(k.clone(), c)] > p)
        {
            e.arrival_before_cause += 1;
        }
        if m.seq.unwrap() > 1 {
            preds.push((node.clone(), m.seq.unwrap() - 1));
        }
        for pk in preds {
            let q = pos[&pk];
            let x = &arrivals[q];
            if q.abs_diff(p) < window && m.timestamp.physical_time < x.timestamp.physical_time {
                e.physical_vs_causal += 1;
            }
        }
        for x in &arrivals[p.saturating_sub(window - 1)..p] {
            if vt(x).compare(vt(m)) == CausalOrder::Concurrent {
                e.concurrent_pairs += 1;
            }
        }
    }
    e
}

fn analyze(
    arrivals: &[Envelope],
    window: usize,
    max_nodes: usize,
) -> (Analyzer, Vec<ViolationKind>) {
    let mut a = Analyzer::new(AnalysisConfig {
        window,
        max_skew_ms: 100.0,
        max_nodes,
    });
    let mut out = Vec::new();
    for m in arrivals {
        a.observe(m, secs_to_nanos(m.timestamp.timestamp + 0.002), &mut out);
    }
    (a, out.iter().map(|v| v.kind).collect())
}

fn arb_permutation(len: usize) -> impl Strategy<Value = Vec<usize>> {
    Just((0..len).collect::<Vec<_>>()).prop_shuffle()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// Delivered in send order (a causal order) with perfect clocks: nothing to report, and the
    /// concurrent-pair count matches the pairwise vector comparison.
    #[test]
    fn causal_order_with_perfect_clocks_is_clean((n, steps) in arb_history(), window in 1usize..100) {
        let msgs = build(n, &steps, &[]);
        let (a, _) = analyze(&msgs, window, 100);
        let s = a.summary();
        for k in ViolationKind::ANALYSIS {
            prop_assert_eq!(s.count(k), 0, "{}", k);
        }
        prop_assert_eq!(s.messages, msgs.len() as u64);
        prop_assert_eq!(s.concurrent_pairs, expected(&msgs, window).concurrent_pairs);
    }

    /// Any arrival order: every count equals the brute-force count; honest Lamport clocks and
    /// perfect physical clocks never contradict causality, however messages arrive.
    #[test]
    fn permuted_arrivals_match_independent_counts(
        (n, steps, perm) in arb_history().prop_flat_map(|(n, steps)| {
            let len = build(n, &steps, &[]).len();
            (Just(n), Just(steps), arb_permutation(len))
        }),
        window in 1usize..100,
    ) {
        let msgs = build(n, &steps, &[]);
        let arrivals: Vec<Envelope> = perm.iter().map(|&i| msgs[i].clone()).collect();
        let (a, _) = analyze(&arrivals, window, 100);
        let s = a.summary();
        let e = expected(&arrivals, window);
        prop_assert_eq!(s.count(ViolationKind::ArrivalBeforeCause), e.arrival_before_cause);
        prop_assert_eq!(s.count(ViolationKind::FifoGap), e.gaps);
        prop_assert_eq!(s.count(ViolationKind::FifoReorder), e.reorders);
        prop_assert_eq!(s.concurrent_pairs, e.concurrent_pairs);
        prop_assert_eq!(s.count(ViolationKind::Duplicate), 0);
        prop_assert_eq!(s.count(ViolationKind::LamportVsCausal), 0);
        prop_assert_eq!(s.count(ViolationKind::PhysicalVsCausal), 0);
        prop_assert_eq!(s.count(ViolationKind::SkewThreshold), 0);
    }

    /// One node's clock runs ahead: physical_vs_causal counts exactly the (latest predecessor,
    /// message) pairs within the window whose physical times are inverted; only that node warns.
    #[test]
    fn skewed_node_footprint(
        (n, steps, perm) in arb_history().prop_flat_map(|(n, steps)| {
            let len = build(n, &steps, &[]).len();
            (Just(n), Just(steps), arb_permutation(len))
        }),
        skew in 150.0f64..2000.0,
        window in 1usize..100,
        in_order in any::<bool>(),
    ) {
        let msgs = build(n, &steps, &[skew]);
        let arrivals: Vec<Envelope> =
            if in_order { msgs.clone() } else { perm.iter().map(|&i| msgs[i].clone()).collect() };
        let (a, kinds) = analyze(&arrivals, window, 100);
        let s = a.summary();
        let e = expected(&arrivals, window);
        prop_assert_eq!(s.count(ViolationKind::PhysicalVsCausal), e.physical_vs_causal);
        prop_assert_eq!(s.count(ViolationKind::LamportVsCausal), 0);
        let skewed_sent = msgs.iter().any(|m| &*m.timestamp.node_id == "node-0");
        prop_assert_eq!(s.count(ViolationKind::SkewThreshold), u64::from(skewed_sent));
        prop_assert_eq!(kinds.len() as u64, s.violations.values().sum::<u64>());
        if skewed_sent {
            let est = s.nodes[&NodeId::from("node-0")].offset_ms.unwrap();
            prop_assert!((est - skew).abs() < 0.01, "estimate {} for skew {}", est, skew);
        }
    }

    /// Re-delivered messages are reported as duplicates exactly once each and change nothing else.
    #[test]
    fn duplicates_are_reported_and_ignored(
        (n, steps) in arb_history(),
        dups in proptest::collection::vec((any::<usize>(), any::<usize>()), 0..20),
        window in 1usize..100,
    ) {
        let msgs = build(n, &steps, &[]);
        prop_assume!(!msgs.is_empty());
        let mut arrivals = msgs.clone();
        for &(which, at) in &dups {
            let m = msgs[which % msgs.len()].clone();
            // Re-deliver after the original.
            let orig = arrivals.iter().position(|x| key(x) == key(&m)).unwrap();
            let at = orig + 1 + at % (arrivals.len() - orig);
            arrivals.insert(at, m);
        }
        let (a, _) = analyze(&arrivals, window, 100);
        let s = a.summary();
        prop_assert_eq!(s.count(ViolationKind::Duplicate), dups.len() as u64);
        prop_assert_eq!(s.messages, msgs.len() as u64);
        for k in [ViolationKind::FifoGap, ViolationKind::FifoReorder, ViolationKind::ArrivalBeforeCause,
                  ViolationKind::PhysicalVsCausal, ViolationKind::LamportVsCausal] {
            prop_assert_eq!(s.count(k), 0, "{}", k);
        }
    }
}

/// A hostile message: arbitrary node ids, seqs and vector entries.
fn arb_hostile() -> impl Strategy<Value = Envelope> {
    let seq = prop_oneof![4 => 0u64..40, 1 => any::<u64>()];
    let count = prop_oneof![4 => 0u64..40, 1 => any::<u64>()];
    (
        0u32..60,
        seq,
        proptest::collection::vec((0u32..60, count), 0..8),
        any::<bool>(),
        -5000.0f64..5000.0,
        any::<u64>(),
        0u32..8,
    )
        .prop_map(|(node, seq, entries, own_entry, skew_ms, logical, id)| {
            let node_id = NodeId::from(format!("h{node}"));
            let mut vt = VectorTimestamp::from_entries(
                entries.into_iter().map(|(k, c)| (format!("h{k}"), c)),
            );
            if own_entry {
                vt.set(&node_id, seq);
            }
            Envelope {
                id: format!("id-{id}"),
                content: String::new(),
                seq: Some(seq),
                timestamp: MessageTimestamp {
                    node_id,
                    timestamp: T0,
                    clock_type: ClockType::Vector,
                    physical_time: Some(T0 + skew_ms / 1000.0),
                    logical_time: Some(logical),
                    vector_time: Some(vt),
                    hybrid_time: None,
                    simulated_time: None,
                    unmapped_vector_entries: None,
                },
                simulated_skew_ms: None,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// A stream ten times the window, hostile or not, keeps every internal structure within its
    /// configured bound at every step (and never panics).
    #[test]
    fn memory_stays_bounded(
        window in 1usize..20,
        max_nodes in 1usize..12,
        stream in proptest::collection::vec(arb_hostile(), 200),
    ) {
        let mut a = Analyzer::new(AnalysisConfig { window, max_skew_ms: 100.0, max_nodes });
        let mut out = Vec::new();
        for (i, m) in stream.iter().cycle().take(10 * window.max(20)).enumerate() {
            a.observe(m, i as i64, &mut out);
            let f = a.footprint();
            prop_assert!(f.window < window);
            prop_assert!(f.seq_index < window && f.id_index < window);
            prop_assert!(f.nodes <= max_nodes);
            prop_assert!(f.recency_queue <= 2 * max_nodes + 64 + 1);
            prop_assert!(f.gap_ranges <= max_nodes * MAX_GAP_RANGES_PER_NODE);
            prop_assert!(f.offset_samples <= max_nodes * window.min(MAX_OFFSET_SAMPLES));
            prop_assert!(f.window_seqs < window);
            prop_assert!(f.registrations <= f.vector_entries);
            prop_assert!(f.vector_entries <= window * 8);
        }
        let s = a.summary();
        prop_assert!(s.nodes.len() <= max_nodes);
    }
}

/// An honest stream a hundred times the window: sizes after 10× and after 100× are equal.
#[test]
fn footprint_is_flat_in_stream_length() {
    let steps: Vec<Step> = (0..200_000usize)
        .map(|i| {
            if i % 3 == 2 {
                Step::Receive(i % 5, i / 3)
            } else {
                Step::Send((i * 7) % 5)
            }
        })
        .collect();
    let msgs = build(5, &steps, &[]);
    let window = 500;
    let mut a = Analyzer::new(AnalysisConfig {
        window,
        max_skew_ms: 100.0,
        max_nodes: 100,
    });
    let mut out = Vec::new();
    let mut at_10x = None;
    for (i, m) in msgs.iter().enumerate().take(100 * window) {
        a.observe(m, secs_to_nanos(m.timestamp.timestamp), &mut out);
        if i + 1 == 10 * window {
            at_10x = Some(a.footprint());
        }
    }
    assert!(out.is_empty(), "{:?}", &out[..out.len().min(3)]);
    // The recency queue is compacted lazily, so its length oscillates (within its own bound).
    let flat = |f: kafka_timesync::analysis::Footprint| kafka_timesync::analysis::Footprint {
        recency_queue: 0,
        ..f
    };
    let at_100x = a.footprint();
    assert_eq!(at_10x.map(flat), Some(flat(at_100x)));
    assert_eq!(
        at_100x.window,
        window - 1,
        "the window keeps the latest window − 1 for the next arrival"
    );
}
