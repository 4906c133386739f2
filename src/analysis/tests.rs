use super::*;
use crate::clock::{ClockType, VectorTimestamp};
use crate::envelope::MessageTimestamp;

const T0: f64 = 1_790_000_000.0;

/// A message from `node` with `seq`, stamped at `T0 + at` seconds by an honest clock.
fn msg(node: &str, seq: u64, vt: Option<&[(&str, u64)]>, at: f64, logical: u64) -> Envelope {
    Envelope {
        id: format!("{node}-{seq}"),
        content: String::new(),
        seq: Some(seq),
        timestamp: MessageTimestamp {
            node_id: NodeId::from(node),
            timestamp: T0 + at,
            clock_type: if vt.is_some() {
                ClockType::Vector
            } else {
                ClockType::Logical
            },
            physical_time: Some(T0 + at),
            logical_time: Some(logical),
            vector_time: vt.map(|v| VectorTimestamp::from_entries(v.iter().map(|(k, c)| (*k, *c)))),
            hybrid_time: None,
            simulated_time: None,
            unmapped_vector_entries: None,
        },
        simulated_skew_ms: None,
    }
}

fn skewed(mut e: Envelope, skew_ms: f64) -> Envelope {
    e.timestamp.physical_time = e.timestamp.physical_time.map(|p| p + skew_ms / 1000.0);
    e
}

/// The causal-rule tests use a 1 s skew threshold so that skewed stamps do not also warn.
fn analyzer(window: usize) -> Analyzer {
    Analyzer::new(AnalysisConfig {
        window,
        max_skew_ms: 1000.0,
        max_nodes: 100,
    })
}

fn skew_analyzer(window: usize) -> Analyzer {
    Analyzer::new(AnalysisConfig {
        window,
        max_skew_ms: 100.0,
        max_nodes: 100,
    })
}

/// Feeds messages (arrival 1 ms after stamping) and returns all violations.
fn run(a: &mut Analyzer, msgs: &[Envelope]) -> Vec<Violation> {
    let mut out = Vec::new();
    for m in msgs {
        let recv = crate::time::secs_to_nanos(m.timestamp.timestamp + 0.001);
        a.observe(m, recv, &mut out);
    }
    out
}

fn kinds(v: &[Violation]) -> Vec<ViolationKind> {
    v.iter().map(|v| v.kind).collect()
}

#[test]
fn in_order_stream_is_clean() {
    let mut a = analyzer(100);
    let msgs: Vec<_> = (1..=10)
        .map(|s| msg("A", s, Some(&[("A", s)]), s as f64, s))
        .collect();
    assert!(run(&mut a, &msgs).is_empty());
    let s = a.summary();
    assert_eq!(s.messages, 10);
    assert_eq!(s.nodes[&NodeId::from("A")].messages, 10);
    assert_eq!(s.nodes[&NodeId::from("A")].highest_seq, 10);
    assert!(ViolationKind::ANALYSIS.iter().all(|&k| s.count(k) == 0));
}

#[test]
fn gap_then_late_fill_then_duplicate() {
    let mut a = analyzer(100);
    let v = run(
        &mut a,
        &[msg("A", 1, None, 1.0, 1), msg("A", 4, None, 4.0, 4)],
    );
    assert_eq!(kinds(&v), [ViolationKind::FifoGap]);
    assert_eq!(&*v[0].node, "A");
    assert_eq!(v[0].ids, ["A-4"]);
    assert!(v[0].detail.contains("2..=3"), "{}", v[0].detail);
    assert_eq!(a.summary().nodes[&NodeId::from("A")].missing, 2);

    let v = run(&mut a, &[msg("A", 3, None, 3.0, 3)]);
    assert_eq!(kinds(&v), [ViolationKind::FifoReorder]);
    assert!(v[0].detail.contains("after seq 4"), "{}", v[0].detail);

    let v = run(&mut a, &[msg("A", 3, None, 3.0, 3)]);
    assert_eq!(kinds(&v), [ViolationKind::Duplicate]);
    let s = a.summary();
    assert_eq!(s.messages, 3, "the duplicate is not counted as a message");
    assert_eq!(s.nodes[&NodeId::from("A")].missing, 1);
    assert_eq!(
        (
            s.count(ViolationKind::FifoGap),
            s.count(ViolationKind::FifoReorder)
        ),
        (1, 1)
    );
}

#[test]
fn first_message_above_one_is_a_gap() {
    let mut a = analyzer(100);
    let v = run(&mut a, &[msg("A", 3, None, 1.0, 1)]);
    assert_eq!(kinds(&v), [ViolationKind::FifoGap]);
}

#[test]
fn duplicate_of_message_outside_window_is_still_detected() {
    let mut a = analyzer(2);
    let msgs: Vec<_> = (1..=5).map(|s| msg("A", s, None, s as f64, s)).collect();
    run(&mut a, &msgs);
    let v = run(&mut a, &[msg("A", 1, None, 1.0, 1)]);
    assert_eq!(kinds(&v), [ViolationKind::Duplicate]);
}

#[test]
fn reused_id_is_a_duplicate() {
    let mut a = analyzer(100);
    let mut b = msg("B", 1, None, 2.0, 2);
    b.id = "A-1".into();
    let v = run(&mut a, &[msg("A", 1, None, 1.0, 1), b]);
    assert_eq!(kinds(&v), [ViolationKind::Duplicate]);
    assert!(v[0].detail.contains("reuses"), "{}", v[0].detail);
    assert_eq!(
        a.summary().messages,
        2,
        "a new (node, seq) is still analysed"
    );
}

#[test]
fn arrival_before_cause_names_the_missing_predecessor() {
    let mut a = analyzer(100);
    // A sends a1; B receives it and sends b1. The broker hands over b1 first.
    let a1 = msg("A", 1, Some(&[("A", 1)]), 1.0, 1);
    let b1 = msg("B", 1, Some(&[("A", 1), ("B", 1)]), 2.0, 3);
    let v = run(&mut a, &[b1]);
    assert_eq!(kinds(&v), [ViolationKind::ArrivalBeforeCause]);
    assert_eq!(&*v[0].node, "B");
    assert_eq!(v[0].ids, ["B-1"]);
    assert!(v[0].detail.contains("A:1"), "{}", v[0].detail);
    // The cause arriving later reveals nothing new (its clocks are consistent).
    assert!(run(&mut a, &[a1]).is_empty());
    // In causal order there is nothing to report.
    let mut a = analyzer(100);
    let v = run(
        &mut a,
        &[
            msg("A", 1, Some(&[("A", 1)]), 1.0, 1),
            msg("B", 1, Some(&[("A", 1), ("B", 1)]), 2.0, 3),
        ],
    );
    assert!(v.is_empty(), "{v:?}");
}

#[test]
fn own_missing_seq_is_a_fifo_gap_not_arrival_before_cause() {
    let mut a = analyzer(100);
    let v = run(&mut a, &[msg("B", 2, Some(&[("B", 2)]), 2.0, 2)]);
    assert_eq!(kinds(&v), [ViolationKind::FifoGap]);
}

#[test]
fn arrival_before_cause_after_a_gap_of_the_cause_node() {
    let mut a = analyzer(100);
    // A:2 is missing (gap) when B's message that depends on it arrives.
    let v = run(
        &mut a,
        &[
            msg("A", 1, Some(&[("A", 1)]), 1.0, 1),
            msg("A", 3, Some(&[("A", 3)]), 3.0, 3),
            msg("B", 1, Some(&[("A", 2), ("B", 1)]), 4.0, 4),
        ],
    );
    assert_eq!(
        kinds(&v),
        [ViolationKind::FifoGap, ViolationKind::ArrivalBeforeCause]
    );
    assert!(
        v[1].detail.contains("A:2 (received up to A:3)"),
        "{}",
        v[1].detail
    );
}

#[test]
fn physical_time_contra_causality() {
    let mut a = analyzer(100);
    // A's clock is 250 ms ahead; B stamps 100 ms (true time) after receiving a1.
    let a1 = skewed(msg("A", 1, Some(&[("A", 1)]), 1.0, 1), 250.0);
    let b1 = msg("B", 1, Some(&[("A", 1), ("B", 1)]), 1.1, 2);
    let v = run(&mut a, &[a1.clone(), b1.clone()]);
    assert_eq!(kinds(&v), [ViolationKind::PhysicalVsCausal]);
    assert_eq!(&*v[0].node, "B");
    assert_eq!(v[0].ids, ["A-1", "B-1"]);
    assert!(
        v[0].detail.contains("150.000 ms earlier"),
        "{}",
        v[0].detail
    );
    // Reversed arrival: found when the cause arrives.
    let mut a = analyzer(100);
    let v = run(&mut a, &[b1, a1]);
    assert_eq!(
        kinds(&v),
        [
            ViolationKind::ArrivalBeforeCause,
            ViolationKind::PhysicalVsCausal
        ]
    );
    assert_eq!(v[1].ids, ["A-1", "B-1"]);
}

#[test]
fn only_the_latest_predecessor_per_node_is_compared() {
    let mut a = analyzer(100);
    // b1 depends on a1 and a2 and is stamped between them: only a2, the latest, contradicts it.
    let v = run(
        &mut a,
        &[
            msg("A", 1, Some(&[("A", 1)]), 1.0, 1),
            msg("A", 2, Some(&[("A", 2)]), 3.0, 2),
            msg("B", 1, Some(&[("A", 2), ("B", 1)]), 2.0, 3),
        ],
    );
    assert_eq!(kinds(&v), [ViolationKind::PhysicalVsCausal]);
    assert_eq!(v[0].ids, ["A-2", "B-1"]);
}

#[test]
fn lamport_contra_causality() {
    let mut a = analyzer(100);
    let v = run(
        &mut a,
        &[
            msg("A", 1, Some(&[("A", 1)]), 1.0, 5),
            msg("B", 1, Some(&[("A", 1), ("B", 1)]), 2.0, 5),
        ],
    );
    assert_eq!(kinds(&v), [ViolationKind::LamportVsCausal]);
    assert_eq!(v[0].ids, ["A-1", "B-1"]);
}

#[test]
fn own_node_order_without_vectors() {
    let mut a = analyzer(100);
    // The node's clocks ran backwards between its own messages.
    let v = run(
        &mut a,
        &[msg("A", 1, None, 2.0, 7), msg("A", 2, None, 1.0, 7)],
    );
    assert_eq!(
        kinds(&v),
        [
            ViolationKind::PhysicalVsCausal,
            ViolationKind::LamportVsCausal
        ]
    );
    // Late fill: checked against the successor already received.
    let mut a = analyzer(100);
    let v = run(
        &mut a,
        &[msg("A", 2, None, 1.0, 2), msg("A", 1, None, 2.0, 1)],
    );
    assert_eq!(
        kinds(&v),
        [
            ViolationKind::FifoGap,
            ViolationKind::FifoReorder,
            ViolationKind::PhysicalVsCausal
        ]
    );
    assert_eq!(v[2].ids, ["A-1", "A-2"]);
}

#[test]
fn pairs_outside_the_window_are_not_compared() {
    let mut a = analyzer(2);
    let v = run(
        &mut a,
        &[
            skewed(msg("A", 1, Some(&[("A", 1)]), 1.0, 1), 500.0),
            msg("C", 1, Some(&[("C", 1)]), 1.2, 1),
            msg("D", 1, Some(&[("D", 1)]), 1.2, 1),
            msg("B", 1, Some(&[("A", 1), ("B", 1)]), 1.1, 2),
        ],
    );
    assert!(
        !kinds(&v).contains(&ViolationKind::PhysicalVsCausal),
        "{v:?}"
    );
}

#[test]
fn concurrent_pairs_in_the_window() {
    let a1 = msg("A", 1, Some(&[("A", 1)]), 1.0, 1);
    let b1 = msg("B", 1, Some(&[("B", 1)]), 1.0, 1);
    let a2 = msg("A", 2, Some(&[("A", 2), ("B", 1)]), 2.0, 2);
    let b2 = msg("B", 2, Some(&[("B", 2)]), 2.0, 2);
    let msgs = [a1, b1, a2, b2];
    // a1 ∥ b1; b1 → a2; a1 ∥ b2; a2 ∥ b2.
    let mut a = analyzer(100);
    run(&mut a, &msgs);
    assert_eq!(a.summary().concurrent_pairs, 3);
    // Window 2: only pairs of adjacent arrivals: (a1,b1) ∥, (b1,a2) ordered, (a2,b2) ∥.
    let mut a = analyzer(2);
    run(&mut a, &msgs);
    assert_eq!(a.summary().concurrent_pairs, 2);
}

#[test]
fn a_cause_arriving_after_its_effects_is_not_concurrent_with_them() {
    let mut a = analyzer(100);
    run(
        &mut a,
        &[
            msg("B", 1, Some(&[("A", 2), ("B", 1)]), 3.0, 3),
            msg("C", 1, Some(&[("A", 1), ("C", 1)]), 3.0, 3),
            msg("A", 1, Some(&[("A", 1)]), 1.0, 1),
            msg("A", 2, Some(&[("A", 2)]), 2.0, 2),
        ],
    );
    // a1 → b1, a1 → c1, a2 → b1 (all arriving after their effects); b1 ∥ c1 and a2 ∥ c1.
    assert_eq!(a.summary().concurrent_pairs, 2);
}

#[test]
fn late_fill_is_ordered_with_its_known_successors() {
    let mut a = analyzer(100);
    run(
        &mut a,
        &[
            msg("A", 1, Some(&[("A", 1)]), 1.0, 1),
            msg("A", 3, Some(&[("A", 3)]), 3.0, 3),
            msg("B", 1, Some(&[("A", 3), ("B", 1)]), 4.0, 4),
            msg("A", 2, Some(&[("A", 2)]), 2.0, 2),
        ],
    );
    assert_eq!(a.summary().concurrent_pairs, 0);
}

#[test]
fn skew_warning_for_the_skewed_node_only_and_once() {
    let mut a = skew_analyzer(100);
    let mut msgs = Vec::new();
    for s in 1..=20u64 {
        let t = s as f64;
        msgs.push(skewed(msg("fast", s, None, t, s), 250.0));
        msgs.push(msg("honest", s, None, t + 0.5, s));
    }
    let v = run(&mut a, &msgs);
    let skew: Vec<_> = v
        .iter()
        .filter(|v| v.kind == ViolationKind::SkewThreshold)
        .collect();
    assert_eq!(skew.len(), 1, "{skew:?}");
    assert_eq!(&*skew[0].node, "fast");
    assert!(skew[0].detail.contains("+250.000 ms"), "{}", skew[0].detail);
    let s = a.summary();
    let fast = &s.nodes[&NodeId::from("fast")];
    assert!((fast.offset_ms.unwrap() - 250.0).abs() < 0.01);
    assert!(fast.offset_error_ms.unwrap() < 0.01);
    // Arrivals 1 ms after the true send: the bound is 250 − 1 ms.
    assert!((fast.receive_bound_ms.unwrap() - 249.0).abs() < 0.01);
    assert!(s.nodes[&NodeId::from("honest")].offset_ms.unwrap().abs() < 0.01);
}

#[test]
fn ntp_corrected_node_does_not_warn() {
    let mut a = skew_analyzer(100);
    // Corrected: physical ≈ host time (sub-ms residual), however far off the arrival is.
    let msgs: Vec<_> = (1..=20u64)
        .map(|s| skewed(msg("n", s, None, s as f64, s), 0.3))
        .collect();
    let mut out = Vec::new();
    for m in &msgs {
        // A backlog read an hour later: the receive-time method would be useless here.
        a.observe(
            m,
            crate::time::secs_to_nanos(m.timestamp.timestamp + 3600.0),
            &mut out,
        );
    }
    assert!(out.is_empty(), "{out:?}");
    let e = a.offset_estimate("n").unwrap();
    assert!((e.offset_ms - 0.3).abs() < 0.01);
    assert!(e.receive_bound_ms < -3_599_000.0);
}

#[test]
fn skew_warning_fires_again_after_recovery() {
    let mut a = Analyzer::new(AnalysisConfig {
        window: 4,
        max_skew_ms: 100.0,
        max_nodes: 10,
    });
    let mut msgs = Vec::new();
    for s in 1..=30u64 {
        let skew = if (11..=20).contains(&s) { 0.0 } else { 300.0 };
        msgs.push(skewed(msg("n", s, None, s as f64, s), skew));
    }
    let v = run(&mut a, &msgs);
    assert_eq!(
        v.iter()
            .filter(|v| v.kind == ViolationKind::SkewThreshold)
            .count(),
        2
    );
}

#[test]
fn unusable_vector_is_counted_and_skipped() {
    let mut a = analyzer(100);
    // Own entry 5 ≠ seq 1: an event-counting clock, not a send stamp.
    let v = run(&mut a, &[msg("A", 1, Some(&[("A", 5), ("B", 9)]), 1.0, 1)]);
    assert!(v.is_empty(), "{v:?}");
    assert_eq!(a.summary().unusable_vectors, 1);
}

#[test]
fn seq_zero_is_not_analysed() {
    let mut a = analyzer(100);
    let v = run(
        &mut a,
        &[msg("A", 0, None, 1.0, 1), msg("A", 1, None, 1.0, 1)],
    );
    assert!(v.is_empty());
    let s = a.summary();
    assert_eq!((s.unsequenced, s.messages), (1, 1));
}

#[test]
fn node_table_is_capped() {
    let mut a = Analyzer::new(AnalysisConfig {
        window: 10,
        max_skew_ms: 100.0,
        max_nodes: 3,
    });
    let msgs: Vec<_> = (0..50)
        .map(|i| msg(&format!("n{i}"), 1, Some(&[(&format!("n{i}"), 1)]), 1.0, 1))
        .collect();
    let v = run(&mut a, &msgs);
    assert!(v.is_empty());
    assert_eq!(a.footprint().nodes, 3);
    let s = a.summary();
    assert_eq!(s.evicted_nodes, 47);
    assert_eq!(s.nodes.len(), 3);
    // All 50 are mutually concurrent; each pair within the window of 10 counts, but pairs with
    // messages of evicted nodes are not indexed any more: the count never exceeds the true one.
    assert!(s.concurrent_pairs <= 9 * 50);
}

#[test]
fn violation_kind_names() {
    let names = [
        "fifo_gap",
        "fifo_reorder",
        "duplicate",
        "arrival_before_cause",
        "physical_vs_causal",
        "lamport_vs_causal",
        "skew_threshold",
    ];
    for (k, n) in ViolationKind::ANALYSIS.iter().zip(names) {
        assert_eq!(k.as_str(), n);
        assert_eq!(serde_json::to_string(k).unwrap(), format!("\"{n}\""));
        assert_eq!(
            serde_json::from_str::<ViolationKind>(&format!("\"{n}\"")).unwrap(),
            *k
        );
    }
    let s = serde_json::to_value(analyzer(10).summary()).unwrap();
    assert_eq!(s["violations"]["arrival_before_cause"], 0);
    assert_eq!(s["violations"].as_object().unwrap().len(), 7);
}

#[test]
fn violation_serializes_with_the_json_event_fields() {
    let mut a = analyzer(10);
    let v = run(&mut a, &[msg("A", 2, None, 1.0, 1)]);
    let j = serde_json::to_value(&v[0]).unwrap();
    assert_eq!(j["kind"], "fifo_gap");
    assert_eq!(j["node"], "A");
    assert_eq!(j["ids"][0], "A-2");
    assert!(j["detail"].is_string());
}

#[test]
fn eviction_keeps_the_waiting_count_exact() {
    // b2 waits for a1 and leaves the window exactly when a1 arrives: a1 must then be counted
    // concurrent with b1 (found by the randomized comparison with brute force).
    let mut a = analyzer(2);
    run(
        &mut a,
        &[
            msg("B", 2, Some(&[("A", 1), ("B", 2)]), 1.0, 1),
            msg("B", 1, Some(&[("B", 1)]), 1.0, 1),
            msg("A", 1, Some(&[("A", 1)]), 1.0, 1),
        ],
    );
    assert_eq!(a.summary().concurrent_pairs, 1);
}
