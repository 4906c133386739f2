use super::*;
use crate::clock::ClockType;
use crate::delivery::Checkpoint;
use crate::envelope::MessageTimestamp;
use proptest::prelude::*;

const MS: i64 = 1_000_000;
const T0: i64 = 1_790_000_000_000_000_000;

fn envelope(node: &str, seq: u64, vt: Option<&[(&str, u64)]>, lamport: u64) -> Envelope {
    Envelope {
        id: format!("{node}-{seq}"),
        content: format!("message {seq} from {node}"),
        seq: Some(seq),
        timestamp: MessageTimestamp {
            node_id: node.into(),
            timestamp: 1_790_000_000.0 + seq as f64,
            clock_type: if vt.is_some() {
                ClockType::Vector
            } else {
                ClockType::Logical
            },
            physical_time: Some(1_790_000_000.0 + seq as f64),
            logical_time: Some(lamport),
            vector_time: vt.map(|e| VectorTimestamp::from_entries(e.iter().map(|(k, v)| (*k, *v)))),
            hybrid_time: None,
            simulated_time: None,
            unmapped_vector_entries: None,
        },
        simulated_skew_ms: None,
    }
}

fn bytes(env: &Envelope) -> Vec<u8> {
    serde_json::to_vec(env).unwrap()
}

fn vmsg(node: &str, seq: u64, vt: &[(&str, u64)]) -> Vec<u8> {
    bytes(&envelope(node, seq, Some(vt), seq))
}

fn feed(
    e: &mut ConsumerEngine,
    sink: &mut CollectSink,
    partition: i32,
    offset: i64,
    payload: &[u8],
    at: i64,
) {
    e.on_record(
        &ConsumedRecord {
            partition,
            offset,
            payload: Some(payload),
            headers: &[],
            arrival_ns: at,
        },
        sink,
    );
}

fn engine(mode: DeliveryMode) -> ConsumerEngine {
    ConsumerEngine::new(EngineConfig {
        mode,
        ..EngineConfig::default()
    })
}

fn pos(e: &ConsumerEngine, p: i32) -> Option<i64> {
    e.commit_positions()
        .into_iter()
        .find(|(q, _)| *q == p)
        .map(|(_, o)| o)
}

#[test]
fn arrival_mode_delivers_each_record_at_once_byte_for_byte() {
    let mut e = engine(DeliveryMode::Arrival);
    let mut sink = CollectSink::default();
    let a2 = vmsg("A", 2, &[("A", 2)]);
    let a1 = vmsg("A", 1, &[("A", 1)]);
    feed(&mut e, &mut sink, 0, 10, &a2, T0);
    feed(&mut e, &mut sink, 0, 11, &a1, T0);
    assert_eq!(
        sink.delivered(),
        vec![
            ("A".into(), 2, Release::Ready),
            ("A".into(), 1, Release::Ready)
        ]
    );
    match &sink.events[0] {
        Event::Deliver {
            raw,
            partition,
            offset,
            ..
        } => {
            assert_eq!(raw, &a2);
            assert_eq!((*partition, *offset), (0, 10));
        }
        other => panic!("expected a delivery, got {other:?}"),
    }
    assert_eq!(e.commit_positions(), vec![(0, 12)]);
    assert_eq!(e.next_deadline(), None);
}

#[test]
fn malformed_records_are_reported_skipped_and_committable() {
    for mode in [
        DeliveryMode::Arrival,
        DeliveryMode::Causal,
        DeliveryMode::Total,
    ] {
        let mut e = engine(mode);
        let mut sink = CollectSink::default();
        let good = vmsg("A", 1, &[("A", 1)]);
        feed(&mut e, &mut sink, 1, 0, b"\xff\xfe binary", T0);
        feed(&mut e, &mut sink, 1, 1, b"not json", T0);
        feed(&mut e, &mut sink, 1, 2, br#"{"id":"x"}"#, T0);
        e.on_record(
            &ConsumedRecord {
                partition: 1,
                offset: 3,
                payload: None,
                headers: &[],
                arrival_ns: T0,
            },
            &mut sink,
        );
        feed(&mut e, &mut sink, 1, 4, &good, T0);
        assert_eq!(
            sink.malformed(),
            vec![(1, 0), (1, 1), (1, 2), (1, 3)],
            "{mode}"
        );
        if mode != DeliveryMode::Total {
            // (total order holds a lone message until every member has spoken)
            assert_eq!(
                sink.delivered(),
                vec![("A".into(), 1, Release::Ready)],
                "{mode}"
            );
            assert_eq!(pos(&e, 1), Some(5), "{mode}");
        }
        let s = e.summary();
        assert_eq!((s.received, s.malformed), (5, 4), "{mode}");
    }
}

#[test]
fn causal_mode_holds_a_successor_until_its_cause_and_commits_below_it() {
    let mut e = engine(DeliveryMode::Causal);
    let mut sink = CollectSink::default();
    // B's message was sent after B saw A:1; it reaches us first, in partition 1.
    feed(
        &mut e,
        &mut sink,
        1,
        7,
        &vmsg("B", 1, &[("A", 1), ("B", 1)]),
        T0,
    );
    assert!(sink.delivered().is_empty());
    assert_eq!(e.buffered(), 1);
    assert_eq!(pos(&e, 1), Some(7), "a held message must not be committed");
    assert_eq!(e.held_by_partition().collect::<Vec<_>>(), vec![(1, 1)]);
    assert_eq!(e.next_deadline(), Some(T0 + 5_000 * MS));

    feed(&mut e, &mut sink, 0, 3, &vmsg("A", 1, &[("A", 1)]), T0 + MS);
    assert_eq!(
        sink.delivered(),
        vec![
            ("A".into(), 1, Release::Ready),
            ("B".into(), 1, Release::Ready)
        ]
    );
    assert_eq!(e.commit_positions(), vec![(0, 4), (1, 8)]);
    assert_eq!(e.buffered(), 0);
    assert_eq!(e.held_by_partition().count(), 0);
    assert!(sink.violations().is_empty());
}

#[test]
fn causal_mode_releases_a_message_whose_cause_never_comes_after_the_timeout() {
    let mut e = ConsumerEngine::new(EngineConfig {
        mode: DeliveryMode::Causal,
        causal_timeout_ms: 200,
        ..EngineConfig::default()
    });
    let mut sink = CollectSink::default();
    feed(
        &mut e,
        &mut sink,
        2,
        0,
        &vmsg("C", 1, &[("A", 5), ("C", 1)]),
        T0,
    );
    assert_eq!(e.next_deadline(), Some(T0 + 200 * MS));
    e.tick(T0 + 199 * MS, &mut sink);
    assert!(sink.delivered().is_empty(), "released before the timeout");
    e.tick(T0 + 200 * MS, &mut sink);
    assert_eq!(sink.delivered(), vec![("C".into(), 1, Release::Timeout)]);
    assert_eq!(sink.violations(), vec![("released_early", "C".to_string())]);
    let detail = sink
        .events
        .iter()
        .find_map(|ev| match ev {
            Event::Violation { detail, .. } => Some(detail.clone()),
            _ => None,
        })
        .unwrap();
    assert!(detail.contains("200 ms"), "{detail}");
    assert_eq!(e.summary().violations["released_early"], 1);
    assert_eq!(pos(&e, 2), Some(1));
    assert_eq!(e.next_deadline(), None);
    // C's next message is in order, but A's first five messages were given up: not `ready`.
    let c2 = vmsg("C", 2, &[("A", 5), ("C", 2)]);
    feed(&mut e, &mut sink, 2, 1, &c2, T0 + 300 * MS);
    assert_eq!(sink.delivered()[1], ("C".into(), 2, Release::AfterSkip));
    assert_eq!(
        e.summary().violations["released_early"],
        1,
        "not an early release"
    );
}

#[test]
fn causal_mode_without_vector_time_keeps_fifo_per_node_only() {
    let mut e = engine(DeliveryMode::Causal);
    let mut sink = CollectSink::default();
    let a2 = bytes(&envelope("A", 2, None, 9));
    let a1 = bytes(&envelope("A", 1, None, 8));
    let b1 = bytes(&envelope("B", 1, None, 50));
    feed(&mut e, &mut sink, 0, 0, &a2, T0);
    feed(&mut e, &mut sink, 1, 0, &b1, T0);
    assert_eq!(
        sink.delivered(),
        vec![("B".into(), 1, Release::Ready)],
        "B depends on nothing"
    );
    feed(&mut e, &mut sink, 0, 1, &a1, T0);
    assert_eq!(
        sink.delivered(),
        vec![
            ("B".into(), 1, Release::Ready),
            ("A".into(), 1, Release::Ready),
            ("A".into(), 2, Release::Ready)
        ]
    );
}

#[test]
fn duplicates_are_reported_once_and_not_delivered_again() {
    for analyze in [false, true] {
        let mut e = ConsumerEngine::new(EngineConfig {
            mode: DeliveryMode::Causal,
            analyze,
            ..EngineConfig::default()
        });
        let mut sink = CollectSink::default();
        let a1 = vmsg("A", 1, &[("A", 1)]);
        feed(&mut e, &mut sink, 0, 0, &a1, T0);
        feed(&mut e, &mut sink, 0, 1, &a1, T0);
        assert_eq!(sink.delivered().len(), 1);
        assert_eq!(
            sink.violations(),
            vec![("duplicate", "A".to_string())],
            "analyze={analyze}"
        );
        let s = e.summary();
        assert_eq!((s.duplicates, s.violations["duplicate"]), (1, 1));
        assert_eq!(pos(&e, 0), Some(2), "a refused duplicate is committable");
    }
}

#[test]
fn a_restored_causal_engine_delivers_successors_of_earlier_deliveries_at_once() {
    let cfg = EngineConfig {
        mode: DeliveryMode::Causal,
        causal_timeout_ms: 600_000,
        ..EngineConfig::default()
    };
    let mut e1 = ConsumerEngine::new(cfg.clone());
    let mut sink = CollectSink::default();
    feed(&mut e1, &mut sink, 0, 0, &vmsg("A", 1, &[("A", 1)]), T0);
    feed(
        &mut e1,
        &mut sink,
        1,
        0,
        &vmsg("B", 1, &[("A", 1), ("B", 1)]),
        T0,
    );
    feed(
        &mut e1,
        &mut sink,
        1,
        1,
        &vmsg("B", 2, &[("A", 2), ("B", 2)]),
        T0,
    );
    assert_eq!(e1.commit_positions(), vec![(0, 1), (1, 1)]);
    let cp = e1.checkpoint().unwrap();

    let mut e2 = ConsumerEngine::new(cfg);
    let mut sink = CollectSink::default();
    e2.restore(&cp).unwrap();
    e2.start_partition(0, 1);
    e2.start_partition(1, 1);
    assert_eq!(e2.commit_positions(), vec![(0, 1), (1, 1)]);
    // B2 is read again (held at the commit), then A2 arrives: both at once, nothing early.
    feed(
        &mut e2,
        &mut sink,
        1,
        1,
        &vmsg("B", 2, &[("A", 2), ("B", 2)]),
        T0,
    );
    feed(&mut e2, &mut sink, 0, 1, &vmsg("A", 2, &[("A", 2)]), T0);
    feed(
        &mut e2,
        &mut sink,
        1,
        2,
        &vmsg("B", 3, &[("A", 2), ("B", 3)]),
        T0,
    );
    assert_eq!(
        sink.delivered(),
        vec![
            ("A".to_string(), 2, Release::Ready),
            ("B".to_string(), 2, Release::Ready),
            ("B".to_string(), 3, Release::Ready),
        ]
    );
    assert!(sink.violations().is_empty());
    // A total-order checkpoint is refused.
    let mut total = engine(DeliveryMode::Total);
    assert!(total.restore(&cp).is_err());
}

#[test]
fn what_max_messages_withholds_is_not_in_the_checkpoint() {
    let cfg = EngineConfig {
        mode: DeliveryMode::Causal,
        max_messages: Some(1),
        ..EngineConfig::default()
    };
    let mut e1 = ConsumerEngine::new(cfg.clone());
    let mut sink = CollectSink::default();
    // B1 waits for A1; A1 releases both at once, but only one message may be delivered.
    feed(
        &mut e1,
        &mut sink,
        1,
        0,
        &vmsg("B", 1, &[("A", 1), ("B", 1)]),
        T0,
    );
    feed(&mut e1, &mut sink, 0, 0, &vmsg("A", 1, &[("A", 1)]), T0);
    assert_eq!(sink.delivered().len(), 1);
    assert_eq!(e1.commit_positions(), vec![(0, 1), (1, 0)]);
    let cp = e1.checkpoint().unwrap();
    assert_eq!(cp.encode(), "kts1c;A=1");

    let mut e2 = ConsumerEngine::new(EngineConfig {
        max_messages: None,
        ..cfg
    });
    let mut sink = CollectSink::default();
    e2.restore(&cp).unwrap();
    feed(
        &mut e2,
        &mut sink,
        1,
        0,
        &vmsg("B", 1, &[("A", 1), ("B", 1)]),
        T0,
    );
    assert_eq!(sink.delivered(), vec![("B".to_string(), 1, Release::Ready)]);

    // Total order: the last key is the last one delivered, not the last one released.
    let cfg = EngineConfig {
        mode: DeliveryMode::Total,
        max_messages: Some(1),
        nodes: Some(vec!["A".into(), "B".into()]),
        ..EngineConfig::default()
    };
    let mut e = ConsumerEngine::new(cfg);
    let mut sink = CollectSink::default();
    let tmsg = |n: &str, seq: u64, t: u64| bytes(&envelope(n, seq, None, t));
    feed(&mut e, &mut sink, 0, 0, &tmsg("A", 1, 1), T0);
    feed(&mut e, &mut sink, 0, 1, &tmsg("A", 2, 2), T0);
    feed(&mut e, &mut sink, 1, 0, &tmsg("B", 1, 5), T0);
    assert_eq!(sink.delivered().len(), 1);
    // A2 (time 2) is withheld and read again: A's saved time stays below it. B1 is held.
    assert_eq!(e.checkpoint().unwrap().encode(), "kts1t;1:A:1;A=1:1;B=0:-");
}

#[test]
fn a_record_delivered_before_the_restart_is_not_delivered_again() {
    let cfg = EngineConfig {
        mode: DeliveryMode::Causal,
        ..EngineConfig::default()
    };
    let mut e1 = ConsumerEngine::new(cfg.clone());
    let mut sink = CollectSink::default();
    // Partition 0: B1 (waiting for A1, which is in partition 1, not read yet), then C1. C1 is
    // delivered, B1 held: partition 0 is committed at B1's offset, below the delivered C1.
    feed(
        &mut e1,
        &mut sink,
        0,
        0,
        &vmsg("B", 1, &[("A", 1), ("B", 1)]),
        T0,
    );
    feed(&mut e1, &mut sink, 0, 1, &vmsg("C", 1, &[("C", 1)]), T0);
    assert_eq!(sink.delivered().len(), 1, "C1 delivered after the held B1");
    let positions = e1.commit_positions();
    assert_eq!(positions, vec![(0, 0)]);
    let cp = e1.checkpoint().unwrap();

    let mut e2 = ConsumerEngine::new(cfg);
    let mut sink = CollectSink::default();
    e2.restore(&cp).unwrap();
    feed(
        &mut e2,
        &mut sink,
        0,
        0,
        &vmsg("B", 1, &[("A", 1), ("B", 1)]),
        T0,
    );
    feed(&mut e2, &mut sink, 0, 1, &vmsg("C", 1, &[("C", 1)]), T0);
    feed(&mut e2, &mut sink, 1, 0, &vmsg("A", 1, &[("A", 1)]), T0);
    let got: Vec<String> = sink
        .delivered()
        .into_iter()
        .map(|(n, s, _)| format!("{n}{s}"))
        .collect();
    assert_eq!(got, ["A1", "B1"]);
    assert!(sink.violations().is_empty(), "{:?}", sink.violations());
    let s = e2.summary();
    assert_eq!((s.already_delivered, s.duplicates), (1, 0));
}

#[test]
fn without_a_checkpoint_predecessors_before_the_start_count_as_delivered() {
    let mut e = ConsumerEngine::new(EngineConfig {
        mode: DeliveryMode::Causal,
        causal_timeout_ms: 600_000,
        ..EngineConfig::default()
    });
    e.assume_delivered_before_start();
    let mut sink = CollectSink::default();
    // The history starts at A's 41st and B's 90th message; B90 also follows C's 7th, and C sent
    // nothing since the start.
    feed(
        &mut e,
        &mut sink,
        1,
        89,
        &vmsg("B", 90, &[("A", 41), ("B", 90), ("C", 7)]),
        T0,
    );
    assert!(
        sink.delivered().is_empty(),
        "A41 is in the history: wait for it"
    );
    feed(&mut e, &mut sink, 0, 40, &vmsg("A", 41, &[("A", 41)]), T0);
    assert!(
        sink.delivered().len() == 1,
        "A41 at once; B90 still waits for C"
    );
    e.caught_up(&mut sink);
    assert_eq!(
        sink.delivered(),
        vec![
            ("A".to_string(), 41, Release::Ready),
            ("B".to_string(), 90, Release::Ready),
        ]
    );
    assert!(sink.violations().is_empty());
    // A node first read after catching up: its predecessors count as delivered too.
    feed(&mut e, &mut sink, 2, 9, &vmsg("D", 10, &[("D", 10)]), T0);
    assert_eq!(sink.delivered()[2], ("D".to_string(), 10, Release::Ready));
}

#[test]
fn total_order_is_identical_for_different_interleavings() {
    // Two nodes, Lamport times interleaved; per-node FIFO kept in both interleavings.
    let a: Vec<Vec<u8>> = [(1, 1), (2, 4), (3, 6)]
        .iter()
        .map(|&(s, l)| bytes(&envelope("A", s, None, l)))
        .collect();
    let b: Vec<Vec<u8>> = [(1, 2), (2, 3), (3, 7)]
        .iter()
        .map(|&(s, l)| bytes(&envelope("B", s, None, l)))
        .collect();
    let run = |order: &[(char, usize)]| {
        let mut e = ConsumerEngine::new(EngineConfig {
            mode: DeliveryMode::Total,
            nodes: Some(vec!["A".into(), "B".into()]),
            causal_timeout_ms: 1_000,
            ..EngineConfig::default()
        });
        let mut sink = CollectSink::default();
        for (i, (n, k)) in order.iter().enumerate() {
            let (p, m) = if *n == 'A' { (0, &a[*k]) } else { (1, &b[*k]) };
            feed(&mut e, &mut sink, p, *k as i64, m, T0 + i as i64);
        }
        // The last message of each member has no successor: it goes when its wait expires.
        e.tick(T0 + 10_000 * MS, &mut sink);
        sink.delivered()
            .into_iter()
            .map(|(n, s, _)| (n, s))
            .collect::<Vec<_>>()
    };
    let first = run(&[('A', 0), ('A', 1), ('A', 2), ('B', 0), ('B', 1), ('B', 2)]);
    let second = run(&[('B', 0), ('A', 0), ('B', 1), ('B', 2), ('A', 1), ('A', 2)]);
    assert_eq!(first, second);
    let expected: Vec<(String, u64)> = vec![
        ("A".into(), 1),
        ("B".into(), 1),
        ("B".into(), 2),
        ("A".into(), 2),
        ("A".into(), 3),
        ("B".into(), 3),
    ];
    assert_eq!(first, expected);
}

#[test]
fn max_messages_withholds_the_rest_and_does_not_commit_it() {
    let mut e = ConsumerEngine::new(EngineConfig {
        mode: DeliveryMode::Causal,
        max_messages: Some(2),
        ..EngineConfig::default()
    });
    let mut sink = CollectSink::default();
    // A:3 and A:2 wait for A:1; when it comes, all three are released at once.
    feed(&mut e, &mut sink, 0, 5, &vmsg("A", 3, &[("A", 3)]), T0);
    feed(&mut e, &mut sink, 0, 6, &vmsg("A", 2, &[("A", 2)]), T0);
    assert!(!e.is_done());
    feed(&mut e, &mut sink, 0, 7, &vmsg("A", 1, &[("A", 1)]), T0);
    assert_eq!(sink.delivered().len(), 2);
    assert!(e.is_done());
    assert_eq!(pos(&e, 0), Some(5), "A:3 at offset 5 was not delivered");
    feed(&mut e, &mut sink, 0, 8, &vmsg("A", 4, &[("A", 4)]), T0);
    assert_eq!(sink.delivered().len(), 2);
    let s = e.summary();
    assert_eq!((s.received, s.delivered, s.buffered), (4, 2, 2));
}

#[test]
fn summary_lists_every_violation_kind_and_node_counts() {
    let mut e = engine(DeliveryMode::Arrival);
    let mut sink = CollectSink::default();
    feed(&mut e, &mut sink, 0, 0, &vmsg("A", 1, &[("A", 1)]), T0);
    feed(&mut e, &mut sink, 0, 1, &vmsg("A", 2, &[("A", 2)]), T0);
    feed(&mut e, &mut sink, 1, 0, &vmsg("B", 1, &[("B", 1)]), T0);
    let s = e.summary();
    assert_eq!(s.violations.len(), ViolationKind::CONSUMER.len());
    assert!(s.violations.values().all(|n| *n == 0));
    assert_eq!(s.nodes["A"].messages, 2);
    assert_eq!(s.nodes["B"].messages, 1);
    assert_eq!(
        s.nodes["A"].offset_ms, None,
        "no estimate without the analysis"
    );
}

#[test]
fn analysis_in_arrival_mode_reports_arrival_before_cause() {
    let mut e = ConsumerEngine::new(EngineConfig {
        analyze: true,
        ..EngineConfig::default()
    });
    let mut sink = CollectSink::default();
    feed(
        &mut e,
        &mut sink,
        1,
        0,
        &vmsg("B", 1, &[("A", 1), ("B", 1)]),
        T0,
    );
    feed(&mut e, &mut sink, 0, 0, &vmsg("A", 1, &[("A", 1)]), T0);
    assert_eq!(
        sink.delivered().len(),
        2,
        "arrival mode delivers regardless"
    );
    assert!(sink
        .violations()
        .contains(&("arrival_before_cause", "B".to_string())));
    assert_eq!(e.summary().violations["arrival_before_cause"], 1);
}

#[test]
fn one_line_removes_only_line_breaks() {
    let pretty = b"{\n  \"a\": \"x y\",\r\n  \"b\": [1,\n2]\n}\n";
    let flat = one_line(pretty);
    assert!(!flat.contains(&b'\n') && !flat.contains(&b'\r'));
    let v1: serde_json::Value = serde_json::from_slice(pretty).unwrap();
    let v2: serde_json::Value = serde_json::from_slice(&flat).unwrap();
    assert_eq!(v1, v2);
    assert!(matches!(one_line(b"{\"a\":1}"), Cow::Borrowed(_)));
}

// ---------------------------------------------------------------- rendering

fn json_lines(run: impl FnOnce(&mut JsonSink<Vec<u8>>)) -> Vec<serde_json::Value> {
    let mut sink = JsonSink::new(Vec::new());
    run(&mut sink);
    assert!(sink.take_error().is_none());
    let out = String::from_utf8(sink.into_inner()).unwrap();
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn json_output_has_exactly_the_documented_shapes() {
    let pretty = serde_json::to_vec_pretty(&envelope("A", 1, Some(&[("A", 1)]), 1)).unwrap();
    let lines = json_lines(|sink| {
        let mut e = ConsumerEngine::new(EngineConfig {
            mode: DeliveryMode::Causal,
            causal_timeout_ms: 1,
            ..EngineConfig::default()
        });
        e.on_record(
            &ConsumedRecord {
                partition: 0,
                offset: 0,
                payload: Some(&pretty),
                headers: &[],
                arrival_ns: T0,
            },
            sink,
        );
        e.on_record(
            &ConsumedRecord {
                partition: 0,
                offset: 1,
                payload: Some(b"{oops"),
                headers: &[],
                arrival_ns: T0,
            },
            sink,
        );
        let b = vmsg("B", 1, &[("Z", 1), ("B", 1)]);
        e.on_record(
            &ConsumedRecord {
                partition: 1,
                offset: 0,
                payload: Some(&b),
                headers: &[],
                arrival_ns: T0,
            },
            sink,
        );
        e.tick(T0 + 2 * MS, sink);
        sink.summary(&e.summary());
    });
    let events: Vec<&str> = lines.iter().map(|l| l["event"].as_str().unwrap()).collect();
    assert_eq!(
        events,
        ["deliver", "malformed", "violation", "deliver", "summary"]
    );

    let d = &lines[0];
    assert_eq!(d["partition"], 0);
    assert_eq!(d["offset"], 0);
    assert_eq!(d["release"], "ready");
    let sent: serde_json::Value = serde_json::from_slice(&pretty).unwrap();
    assert_eq!(d["message"], sent, "the envelope as received");
    assert_eq!(d.as_object().unwrap().len(), 5);

    assert_eq!(lines[1]["offset"], 1);
    assert!(lines[1]["error"].as_str().unwrap().len() > 3);
    assert_eq!(lines[2]["kind"], "released_early");
    assert_eq!(lines[2]["node"], "B");
    assert_eq!(lines[2]["ids"], serde_json::json!(["B-1"]));
    assert_eq!(lines[3]["release"], "timeout");

    let s = lines[4].as_object().unwrap();
    let keys: Vec<&str> = s.keys().map(|k| k.as_str()).collect();
    for k in [
        "event",
        "received",
        "delivered",
        "malformed",
        "buffered",
        "duplicates",
        "already_delivered",
        "violations",
        "concurrent_pairs",
        "nodes",
    ] {
        assert!(keys.contains(&k), "summary lacks {k}: {keys:?}");
    }
    assert_eq!(s["received"], 3);
    assert_eq!(s["delivered"], 2);
    assert_eq!(s["malformed"], 1);
    assert_eq!(s["violations"]["released_early"], 1);
    assert_eq!(s["nodes"]["A"]["messages"], 1);
}

#[test]
fn text_output_is_readable_and_diagnostics_go_to_stderr() {
    let mut sink = TextSink::new(Vec::new(), Vec::new());
    let mut e = engine(DeliveryMode::Arrival);
    let m = bytes(&envelope(
        "producer-1",
        17,
        Some(&[("producer-1", 17), ("producer-2", 3)]),
        5,
    ));
    e.on_record(
        &ConsumedRecord {
            partition: 2,
            offset: 40,
            payload: Some(&m),
            headers: &[],
            arrival_ns: T0,
        },
        &mut sink,
    );
    e.on_record(
        &ConsumedRecord {
            partition: 2,
            offset: 41,
            payload: Some(b"junk"),
            headers: &[],
            arrival_ns: T0,
        },
        &mut sink,
    );
    sink.summary(&e.summary());
    let (out, diag) = sink.into_inner();
    let out = String::from_utf8(out).unwrap();
    let diag = String::from_utf8(diag).unwrap();
    let first = out.lines().next().unwrap();
    for part in [
        "p2@40",
        "producer-1#17",
        "vector",
        "producer-2:3",
        "L5",
        "message 17 from producer-1",
    ] {
        assert!(first.contains(part), "{part:?} missing in {first:?}");
    }
    assert!(
        diag.contains("partition 2 offset 41") && diag.contains("malformed"),
        "{diag}"
    );
    assert!(!out.contains("junk"));
    assert!(
        out.contains("received           2") && out.contains("delivered          1"),
        "{out}"
    );
}

#[test]
fn clock_time_formats_utc_time_of_day() {
    assert_eq!(render::clock_time(3_723.004), "01:02:03.004");
    assert_eq!(render::clock_time(f64::NAN), "?");
}

// ---------------------------------------------------------------- properties

/// A random causal history of `n` nodes: each step a node sends (send_stamp) or receives an
/// earlier message of another node (merge). Returns per-node message lists (node, seq, vt).
fn history(n: usize, steps: &[(usize, bool, usize)]) -> Vec<Vec<(String, u64, VectorTimestamp)>> {
    let names: Vec<String> = (0..n).map(|i| format!("n{i}")).collect();
    let mut clocks: Vec<VectorTimestamp> = vec![VectorTimestamp::new(); n];
    let mut sent: Vec<Vec<(String, u64, VectorTimestamp)>> = vec![Vec::new(); n];
    for &(who, send, pick) in steps {
        let who = who % n;
        if send {
            let id: NodeId = names[who].as_str().into();
            let seq = clocks[who].increment(&id);
            sent[who].push((names[who].clone(), seq, clocks[who].clone()));
        } else {
            let from = pick % n;
            if from != who && !sent[from].is_empty() {
                let vt = sent[from][pick % sent[from].len()].2.clone();
                clocks[who].merge(&vt);
            }
        }
    }
    sent
}

fn arb_history() -> impl Strategy<Value = (usize, Vec<(usize, bool, usize)>)> {
    (
        2usize..6,
        prop::collection::vec((0usize..8, any::<bool>(), 0usize..64), 1..60),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// Each node writes to its own partition; partitions are read in a random interleaving (FIFO
    /// per partition) with garbage records mixed in; the consumer (causal or total order)
    /// "crashes" at a random point and a second run restarts from the committed positions with the
    /// checkpoint committed with them.
    /// Over both runs every message is delivered exactly once (what the first run delivered after
    /// its commit position is read again and counted as already delivered), and every record of
    /// each run is accounted for exactly once.
    #[test]
    fn crash_and_restart_from_commit_loses_nothing(
        (n, steps) in arb_history(),
        interleave in prop::collection::vec(0usize..8, 0..200),
        garbage in prop::collection::vec((0usize..8, 0usize..64), 0..6),
        crash_at in 0usize..200,
        cap in prop::sample::select(vec![1usize, 2, 3, 5, 8, 1000]),
        total in any::<bool>(),
    ) {
        let mode = if total { DeliveryMode::Total } else { DeliveryMode::Causal };
        let hist = history(n, &steps);
        // partition p = node p: records (offset order) = that node's messages, garbage spliced in.
        let mut parts: Vec<Vec<Vec<u8>>> = hist.iter().map(|msgs| msgs.iter().map(|(node, seq, vt)| {
            let mut env = envelope(node, *seq, None, *seq);
            env.timestamp.vector_time = Some(vt.clone());
            bytes(&env)
        }).collect()).collect();
        for (p, at) in garbage {
            let p = p % n;
            let at = at % (parts[p].len() + 1);
            parts[p].insert(at, b"\x00garbage".to_vec());
        }
        let total_valid: usize = hist.iter().map(|m| m.len()).sum();
        // One read order of (partition, offset).
        let mut cursors = vec![0usize; n];
        let mut order = Vec::new();
        let mut choice = interleave.into_iter().cycle();
        while order.len() < parts.iter().map(|p| p.len()).sum::<usize>() {
            let mut p = choice.next().unwrap_or(0) % n;
            while cursors[p] >= parts[p].len() { p = (p + 1) % n; }
            order.push((p, cursors[p]));
            cursors[p] += 1;
        }
        let cfg = EngineConfig { mode, buffer_size: cap, causal_timeout_ms: 1_000_000, ..EngineConfig::default() };

        // Run 1 until the crash.
        let mut e1 = ConsumerEngine::new(cfg.clone());
        let mut s1 = CollectSink::default();
        let crash = crash_at.min(order.len());
        for (i, &(p, o)) in order[..crash].iter().enumerate() {
            feed(&mut e1, &mut s1, p as i32, o as i64, &parts[p][o], T0 + i as i64);
        }
        let sum1 = e1.summary();
        let checkpoint = e1.checkpoint().expect("causal and total modes have a checkpoint");
        prop_assert_eq!(sum1.received, crash as u64);
        prop_assert_eq!(sum1.received, sum1.delivered + sum1.malformed + sum1.buffered + sum1.duplicates);
        let commits: HashMap<i32, i64> = e1.commit_positions().into_iter().collect();
        // A commit never goes past a held message, nor past what was read.
        for (p, o) in &commits {
            let read = order[..crash].iter().filter(|(q, _)| *q as i32 == *p).count() as i64;
            prop_assert!(*o <= read);
        }

        // Run 2 from the committed positions and the checkpoint, to the end.
        let mut e2 = ConsumerEngine::new(cfg);
        let mut s2 = CollectSink::default();
        let text = checkpoint.encode();
        prop_assert_eq!(e2.restore(&Checkpoint::decode(&text).unwrap()), Ok(()));
        for (p, c) in &commits {
            e2.start_partition(*p, *c);
        }
        for (i, &(p, o)) in order.iter().enumerate() {
            if (o as i64) < commits.get(&(p as i32)).copied().unwrap_or(0) {
                continue;
            }
            feed(&mut e2, &mut s2, p as i32, o as i64, &parts[p][o], T0 + i as i64);
        }
        let commits2: HashMap<i32, i64> = e2.commit_positions().into_iter().collect();
        for (p, c) in &commits {
            prop_assert!(commits2.get(p).is_some_and(|c2| c2 >= c), "commit went backwards: {:?} -> {:?}", commits, commits2);
        }
        if !total && cap >= total_valid && sum1.violations["released_early"] == 0 {
            // The checkpoint restored what run 1 delivered: nothing waits for a message that is
            // not read again, so nothing is held or released early, and no message waits at all
            // unless run 1 held it too.
            prop_assert_eq!(e2.buffered(), 0);
            prop_assert!(s2.violations().is_empty(), "{:?}", s2.violations());
            prop_assert!(s2.delivered().iter().all(|d| d.2 == Release::Ready));
        }
        e2.tick(i64::MAX, &mut s2);
        let sum2 = e2.summary();
        prop_assert_eq!(sum2.received, sum2.delivered + sum2.malformed + sum2.buffered + sum2.duplicates + sum2.already_delivered);
        let mut seen = std::collections::HashSet::new();
        for s in [&s1, &s2] {
            for (node, seq, _) in s.delivered() {
                prop_assert!(seen.insert((node.clone(), seq)), "{}{} delivered twice", node, seq);
            }
        }
        prop_assert_eq!(seen.len(), total_valid, "every message delivered exactly once");
        prop_assert_eq!(sum2.buffered, 0);
    }

    /// Any bytes in any partition: no panic, every record accounted for, commit positions never
    /// beyond what was read.
    #[test]
    fn arbitrary_records_never_panic_and_are_accounted_for(
        recs in prop::collection::vec((0i32..3, prop::collection::vec(any::<u8>(), 0..40), any::<bool>()), 0..40),
        mode in prop::sample::select(vec![DeliveryMode::Arrival, DeliveryMode::Causal, DeliveryMode::Total]),
    ) {
        let mut e = ConsumerEngine::new(EngineConfig { mode, buffer_size: 4, analyze: true, ..EngineConfig::default() });
        let mut sink = CollectSink::default();
        let mut next = [0i64; 3];
        for (i, (p, junk, valid)) in recs.iter().enumerate() {
            let payload = if *valid { vmsg(&format!("n{}", junk.len() % 3), (junk.len() % 5) as u64 + 1, &[("n0", (junk.len() % 4) as u64)]) } else { junk.clone() };
            feed(&mut e, &mut sink, *p, next[*p as usize], &payload, T0 + i as i64 * MS);
            next[*p as usize] += 1;
        }
        let s = e.summary();
        prop_assert_eq!(s.received, recs.len() as u64);
        if mode != DeliveryMode::Arrival {
            prop_assert_eq!(s.received, s.delivered + s.malformed + s.buffered + s.duplicates);
        }
        for (p, o) in e.commit_positions() {
            prop_assert!(o <= next[p as usize]);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// `one_line` drops exactly the CR and LF bytes, keeps everything else in order, and borrows
    /// when there is nothing to drop.
    #[test]
    fn one_line_equals_filtering_line_breaks(
        payload in proptest::collection::vec(
            prop_oneof![Just(b'\n'), Just(b'\r'), any::<u8>()], 0..200),
    ) {
        let expected: Vec<u8> =
            payload.iter().copied().filter(|&b| b != b'\n' && b != b'\r').collect();
        let flat = one_line(&payload);
        prop_assert_eq!(&flat[..], &expected[..]);
        prop_assert_eq!(matches!(flat, Cow::Borrowed(_)), expected.len() == payload.len());
    }
}

/// The stamp of `env` as headers (owned), and a binary value standing for its content.
fn stamped(env: &Envelope) -> (Vec<(&'static str, Vec<u8>)>, Vec<u8>) {
    let mut h = crate::stamp_headers::EncodedHeaders::new();
    h.encode(env);
    let headers = h.iter().map(|(n, v)| (n, v.to_vec())).collect();
    let mut value = vec![0xff, 0x00, b'\n'];
    value.extend_from_slice(env.id.as_bytes());
    (headers, value)
}

fn feed_stamped(e: &mut ConsumerEngine, sink: &mut CollectSink, offset: i64, env: &Envelope) {
    let (headers, value) = stamped(env);
    let view: Vec<Header<'_>> = headers.iter().map(|(n, v)| (*n, Some(&v[..]))).collect();
    e.on_record(
        &ConsumedRecord {
            partition: 0,
            offset,
            payload: Some(&value),
            headers: &view,
            arrival_ns: T0 + offset * MS,
        },
        sink,
    );
}

/// A causal history over two nodes: B's messages depend on A's.
fn two_node_history() -> Vec<Envelope> {
    vec![
        envelope("A", 1, Some(&[("A", 1)]), 1),
        envelope("B", 1, Some(&[("A", 1), ("B", 1)]), 2),
        envelope("A", 2, Some(&[("A", 2), ("B", 1)]), 3),
        envelope("B", 2, Some(&[("A", 2), ("B", 2)]), 4),
        envelope("B", 2, Some(&[("A", 2), ("B", 2)]), 4),
        envelope("A", 3, Some(&[("A", 3)]), 5),
    ]
}

proptest! {
    /// Whatever the arrival order, a header-stamped stream is analysed and delivered exactly as
    /// the same stream of JSON envelopes, in every mode; the delivered value is the record's.
    #[test]
    fn both_forms_are_delivered_and_analysed_identically(
        order in Just(two_node_history()).prop_shuffle(),
        mode in prop_oneof![Just(DeliveryMode::Arrival), Just(DeliveryMode::Causal), Just(DeliveryMode::Total)],
    ) {
        let cfg = EngineConfig { mode, analyze: true, ..EngineConfig::default() };
        let (mut ej, mut eh) = (ConsumerEngine::new(cfg.clone()), ConsumerEngine::new(cfg));
        let (mut sj, mut sh) = (CollectSink::default(), CollectSink::default());
        for (i, env) in order.iter().enumerate() {
            feed(&mut ej, &mut sj, 0, i as i64, &bytes(env), T0 + i as i64 * MS);
            feed_stamped(&mut eh, &mut sh, i as i64, env);
        }
        let end = T0 + 60_000 * MS;
        ej.tick(end, &mut sj);
        eh.tick(end, &mut sh);
        prop_assert_eq!(sj.delivered(), sh.delivered());
        prop_assert_eq!(sj.violations(), sh.violations());
        prop_assert_eq!(ej.summary(), eh.summary());
        prop_assert_eq!(ej.commit_positions(), eh.commit_positions());
        for ev in &sh.events {
            if let Event::Deliver { raw, id, .. } = ev {
                prop_assert_eq!(raw, &stamped(order.iter().find(|e| &e.id == id).unwrap()).1);
            }
        }
    }
}

#[test]
fn a_malformed_header_set_is_reported_by_header_name() {
    let mut e = engine(DeliveryMode::Causal);
    let mut sink = CollectSink::default();
    let headers: [Header<'_>; 3] = [
        ("kts-v", Some(b"1")),
        ("kts-seq", Some(b"1")),
        ("kts-seq", Some(b"2")),
    ];
    e.on_record(
        &ConsumedRecord {
            partition: 0,
            offset: 7,
            payload: Some(b"\x00binary"),
            headers: &headers,
            arrival_ns: T0,
        },
        &mut sink,
    );
    match &sink.events[..] {
        [Event::Malformed {
            offset: 7, error, ..
        }] => {
            assert_eq!(error, "header kts-seq: duplicate header")
        }
        other => panic!("expected one malformed event, got {other:?}"),
    }
    assert_eq!(e.commit_positions(), vec![(0, 8)]);
}

#[test]
fn json_events_show_a_stamped_record_as_its_envelope_with_the_value_encoding() {
    let env = envelope("A", 1, Some(&[("A", 1)]), 1);
    for (value, encoding, content) in [
        (&b"caf\xc3\xa9 \"x\""[..], "text", "café \"x\""),
        (&b"\x89PNG\r\n"[..], "base64", "iVBORw0K"),
    ] {
        let mut stamp = env.clone();
        stamp.content.clear();
        let mut sink = JsonSink::new(Vec::new());
        sink.deliver(&Delivery {
            partition: 2,
            offset: 9,
            release: Release::Ready,
            form: Form::Headers,
            raw: value,
            envelope: &stamp,
        });
        let line = String::from_utf8(sink.into_inner()).unwrap();
        let v: serde_json::Value = serde_json::from_str(line.trim_end()).unwrap();
        assert_eq!(v["form"], "headers");
        assert_eq!(v["value_encoding"], encoding);
        assert_eq!(v["message"]["content"], content);
        let mut want = env.clone();
        want.content = content.to_string();
        assert_eq!(
            Envelope::decode(v["message"].to_string().as_bytes()).unwrap(),
            want
        );
    }
}

#[test]
fn text_lines_show_a_stamped_value_as_text_or_base64() {
    let mut stamp = envelope("A", 1, Some(&[("A", 1)]), 1);
    stamp.content.clear();
    let mut sink = TextSink::new(Vec::new(), Vec::new());
    for value in [&b"hello\n"[..], &b"\xff\x00"[..]] {
        sink.deliver(&Delivery {
            partition: 0,
            offset: 1,
            release: Release::Ready,
            form: Form::Headers,
            raw: value,
            envelope: &stamp,
        });
    }
    let (out, _) = sink.into_inner();
    let out = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].ends_with("  hello\\n"), "{out}");
    assert!(lines[1].ends_with("  [2 bytes, base64] /wA="), "{out}");
}

/// A writer that takes `budget` bytes and then fails.
struct FailingAfter {
    budget: usize,
    taken: Vec<u8>,
}

impl std::io::Write for FailingAfter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.budget == 0 {
            return Err(std::io::ErrorKind::BrokenPipe.into());
        }
        let n = buf.len().min(self.budget);
        self.budget -= n;
        self.taken.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn json_sink_writes_every_event_in_order_however_many_and_reports_a_write_error() {
    let mut stamp = envelope("A", 1, Some(&[("A", 1)]), 1);
    stamp.content.clear();
    let run = |sink: &mut dyn EventSink, n: i64| {
        for offset in 0..n {
            sink.deliver(&Delivery {
                partition: 0,
                offset,
                release: Release::Ready,
                form: Form::Headers,
                raw: &[b'x'; 300],
                envelope: &stamp,
            });
            if offset % 1000 == 0 {
                sink.malformed(1, offset, "bad");
            }
        }
    };
    // Far more than one chunk: every line arrives, in order.
    let mut sink = JsonSink::new(Vec::new());
    run(&mut sink, 5000);
    sink.flush().unwrap();
    let out = String::from_utf8(sink.into_inner()).unwrap();
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5005);
    let mut offsets = lines.iter().filter(|v| v["event"] == "deliver");
    assert!((0..5000).all(|o| offsets.next().unwrap()["offset"] == o));
    assert_eq!(lines[1]["event"], "malformed");
    // A writer that fails part-way: the error is reported, and it took a prefix of the output.
    let mut sink = JsonSink::new(FailingAfter {
        budget: 100_000,
        taken: Vec::new(),
    });
    run(&mut sink, 5000);
    let err = sink.flush().unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::BrokenPipe);
    let taken = sink.into_inner().taken;
    assert_eq!(taken.len(), 100_000);
    assert!(out.as_bytes().starts_with(&taken));
}
