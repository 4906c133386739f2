//! The Python prototype's messages (notdulain/wiber at 8ab9b69) are messages: the fixtures in
//! `tests/fixtures/prototype/` are byte for byte what its `kafka-producer.py` writes
//! (`json.dumps(…, indent=2)`, no seq, no key, only its clock type's field), plus the design
//! doc's example. They decode, are analysed with what they carry and are delivered causally,
//! alone (sans-IO engine) and mixed with kafka-timesync messages on one topic of the real broker.
//!
//! Run: `scripts/testenv.sh run -- cargo test --all-features --test prototype_compat`.

mod common;

use common::{bootstrap, create_topic, produce_records, TIMEOUT};
use kafka_timesync::analysis::{AnalysisConfig, Analyzer, ViolationKind};
use kafka_timesync::clock::{ClockType, VectorTimestamp};
use kafka_timesync::consumer::{
    CollectSink, ConsumedRecord, ConsumerEngine, DeliveryMode, EngineConfig, Event,
};
use kafka_timesync::delivery::Release;
use kafka_timesync::envelope::{DecodeLimits, Envelope};
use serde_json::Value;

const CONSUMER: &str = env!("CARGO_BIN_EXE_kafka-consumer");
const PRODUCER: &str = env!("CARGO_BIN_EXE_kafka-producer");

/// The four messages the prototype's producer wrote (`--clock-type physical`, `logical`,
/// `vector`, and `physical` with `--simulate-skew 100 --simulate-drift 0.1 --random-variation 5`)
/// and the design doc's example, in that order.
const FIXTURES: [&str; 5] = [
    "physical.json",
    "logical.json",
    "vector.json",
    "physical_simulated.json",
    "design_doc_example.json",
];

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/prototype/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn decode(name: &str) -> Envelope {
    Envelope::decode(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// A kafka-timesync message with a vector send stamp, as `kafka-producer --clock-type vector`
/// writes it.
fn ours(node: &str, seq: u64, vt: &[(&str, u64)]) -> Vec<u8> {
    common::vector_envelope(node, seq, vt, 1_764_158_240.0 + seq as f64 / 1000.0).encode()
}

#[test]
fn the_fixtures_are_multi_line_json_without_seq_or_trailing_newline() {
    for name in &FIXTURES[..4] {
        let raw = String::from_utf8(fixture(name)).unwrap();
        assert!(raw.starts_with("{\n  \"id\": \""), "{name}");
        assert!(raw.ends_with("\n}"), "{name}: json.dumps adds no newline");
        assert!(!raw.contains("\"seq\""), "{name}");
    }
}

#[test]
fn each_prototype_message_decodes_with_what_it_carries() {
    let e = decode("physical.json");
    let ts = &e.timestamp;
    assert_eq!((e.seq, &*ts.node_id), (None, "producer-1"));
    assert_eq!(ts.clock_type, ClockType::Physical);
    assert_eq!(ts.timestamp, 1_764_158_212.418_336_2);
    assert_eq!(ts.physical_time, Some(1_764_158_212.418_337_3));
    assert_eq!((ts.logical_time, &ts.vector_time), (None, &None));

    let e = decode("logical.json");
    assert_eq!(e.timestamp.clock_type, ClockType::Logical);
    assert_eq!(e.timestamp.logical_time, Some(1));
    assert_eq!(e.timestamp.physical_time, None);
    assert_eq!(e.timestamp.clock_reading(), e.timestamp.timestamp);

    // The prototype never creates its vector clock: clock type vector, no vector.
    let e = decode("vector.json");
    assert_eq!(e.timestamp.clock_type, ClockType::Vector);
    assert_eq!(e.timestamp.vector_time, None);
    assert_eq!(e.timestamp.unmapped_vector_entries, None);

    let e = decode("physical_simulated.json");
    let ts = &e.timestamp;
    assert_eq!(e.simulated_skew_ms, Some(176_415_925.368_739_78));
    assert_eq!(ts.simulated_time, Some(1_764_334_646.438_116));
    // The simulated reading is the node's clock: its error is the injected skew.
    let error_ms = (ts.clock_reading() - ts.timestamp) * 1000.0;
    assert!(
        (error_ms - 176_415_925.368_739_78).abs() < 0.01,
        "{error_ms}"
    );
    assert_eq!(e.content, "Message 1");
}

#[test]
fn the_design_doc_example_maps_its_array_vector_by_the_node_order() {
    let e = decode("design_doc_example.json");
    assert_eq!(e.timestamp.logical_time, Some(5));
    assert_eq!(e.timestamp.vector_time, None);
    assert_eq!(e.timestamp.unmapped_vector_entries, Some(3));
    assert_eq!(e.simulated_skew_ms, Some(100.5));

    let limits = DecodeLimits::default().with_legacy_vector_nodes(["A", "B", "C"]);
    let e = Envelope::decode_with(&fixture("design_doc_example.json"), &limits).unwrap();
    assert_eq!(
        e.timestamp.vector_time,
        Some(VectorTimestamp::from_entries([
            ("A", 1),
            ("B", 2),
            ("C", 3)
        ]))
    );
    assert_eq!(e.timestamp.unmapped_vector_entries, None);
}

#[test]
fn kafka_producer_still_writes_every_field() {
    // Reading fewer fields changed nothing on the writing side: seq, physical_time and
    // logical_time on every message, and the clock type's own field.
    let topic = create_topic("prototype-ours", 1);
    let bs = bootstrap();
    for ct in ["physical", "logical", "vector", "hybrid"] {
        common::run(
            PRODUCER,
            &[
                &topic,
                "--bootstrap",
                &bs,
                "--no-state",
                "--node-id",
                ct,
                "--clock-type",
                ct,
                "m",
            ],
            None,
            TIMEOUT,
        )
        .assert_success();
    }
    let records = common::read_all(&topic);
    assert_eq!(records.len(), 4);
    for r in &records {
        let e = r.json();
        let ts = &e["timestamp"];
        let ct = ts["clock_type"].as_str().expect("clock_type");
        assert_eq!(e["seq"], 1, "{e}");
        assert!(ts["physical_time"].is_number(), "{e}");
        assert!(ts["logical_time"].is_u64(), "{e}");
        assert_eq!(ts["vector_time"].is_object(), ct == "vector", "{e}");
        assert_eq!(ts["hybrid_time"].is_object(), ct == "hybrid", "{e}");
    }
}

#[test]
fn the_clock_offset_is_estimated_from_whichever_time_fields_exist() {
    let mut a = Analyzer::new(AnalysisConfig::default());
    let mut out = Vec::new();
    let mut skewed = decode("physical_simulated.json");
    skewed.timestamp.node_id = "skewed".into();
    let recv = |e: &Envelope| (e.timestamp.timestamp * 1e9) as i64;
    a.observe_at(&skewed, Some((0, 0)), recv(&skewed), &mut out);
    let logical = decode("logical.json");
    a.observe_at(&logical, Some((0, 1)), recv(&logical), &mut out);

    let est = a
        .offset_estimate("skewed")
        .expect("an estimate from simulated_time");
    assert!(
        (est.offset_ms - 176_415_925.368_739_78).abs() < 0.01,
        "{est:?}"
    );
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].kind, ViolationKind::SkewThreshold);
    // A node that sent no reading of its own stamped with its host clock: offset 0.
    assert_eq!(a.offset_estimate("producer-1").unwrap().offset_ms, 0.0);
    let s = a.summary();
    assert_eq!((s.messages, s.seq_absent), (2, 2));
}

#[test]
fn without_seq_fifo_is_checked_by_kafka_offset_per_node_and_partition() {
    let mut a = Analyzer::new(AnalysisConfig::default());
    let mut out = Vec::new();
    let m = decode("physical.json");
    let at = (m.timestamp.timestamp * 1e9) as i64;
    // Offsets 5 and 7 in partition 0, 2 in partition 1: in order.
    for pos in [(0, 5), (0, 7), (1, 2)] {
        a.observe_at(&m, Some(pos), at, &mut out);
    }
    assert!(out.is_empty(), "{out:?}");
    a.observe_at(&m, Some((0, 7)), at, &mut out);
    a.observe_at(&m, Some((0, 6)), at, &mut out);
    let kinds: Vec<_> = out.iter().map(|v| v.kind).collect();
    assert_eq!(
        kinds,
        [ViolationKind::Duplicate, ViolationKind::FifoReorder],
        "{out:?}"
    );
    assert_eq!(a.summary().messages, 4, "the duplicate is not counted");
}

fn feed(e: &mut ConsumerEngine, sink: &mut CollectSink, partition: i32, offset: i64, v: &[u8]) {
    e.on_record(
        &ConsumedRecord {
            partition,
            offset,
            payload: Some(v),
            headers: &[],
            arrival_ns: 1_764_158_300_000_000_000 + offset * 1_000_000,
        },
        sink,
    );
}

#[test]
fn causal_delivery_delivers_vectorless_prototype_messages_on_arrival_and_counts_them() {
    let mut e = ConsumerEngine::new(EngineConfig {
        mode: DeliveryMode::Causal,
        analyze: true,
        ..EngineConfig::default()
    });
    let mut sink = CollectSink::default();
    let b1 = ours("B", 1, &[("A", 1), ("B", 1)]);
    let a1 = ours("A", 1, &[("A", 1)]);
    // B1 (which needs A1) first, prototype messages in between, A1 last.
    feed(&mut e, &mut sink, 1, 0, &b1);
    for (i, name) in FIXTURES.iter().enumerate() {
        feed(&mut e, &mut sink, 2, i as i64, &fixture(name));
    }
    feed(&mut e, &mut sink, 0, 0, &a1);

    let delivered = sink.delivered();
    let expected: Vec<(String, u64, Release)> = std::iter::repeat_n("producer-1", 5)
        .map(|n| (n.to_string(), 0, Release::Ready))
        .chain([
            ("A".to_string(), 1, Release::Ready),
            ("B".to_string(), 1, Release::Ready),
        ])
        .collect();
    assert_eq!(delivered, expected);
    assert!(sink.malformed().is_empty());
    let s = e.summary();
    assert_eq!((s.received, s.delivered, s.malformed), (7, 7, 0));
    assert_eq!((s.without_seq, s.without_vector, s.unordered), (5, 5, 5));
    assert_eq!(s.nodes["producer-1"].messages, 5);
    // The analysis saw B1 before A1; the prototype's messages gave it nothing to report.
    let violations: Vec<_> = sink
        .events
        .iter()
        .filter_map(|ev| match ev {
            Event::Violation { kind, node, .. } => Some((kind.as_str(), node.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(violations, [("arrival_before_cause", "B")]);
}

#[test]
fn with_the_node_order_the_design_doc_example_is_ordered_by_its_vector() {
    let mut e = ConsumerEngine::new(EngineConfig {
        mode: DeliveryMode::Causal,
        limits: DecodeLimits::default().with_legacy_vector_nodes(["A", "B", "C"]),
        ..EngineConfig::default()
    });
    let mut sink = CollectSink::default();
    feed(&mut e, &mut sink, 0, 0, &fixture("design_doc_example.json"));
    let s = e.summary();
    // It has a vector now, but no seq: the causal buffer cannot place it.
    assert_eq!((s.delivered, s.without_vector, s.unordered), (1, 0, 1));
}

// ---------------------------------------------------------------------------------------------
// The real broker

fn summary(lines: &[Value]) -> &Value {
    let last = lines.last().expect("no output at all");
    assert_eq!(last["event"], "summary", "{last}");
    last
}

/// Runs a causal consumer over the whole topic until it has delivered `n` messages.
fn consume(topic: &str, n: usize, extra: &[&str]) -> (Vec<Value>, String) {
    let n = n.to_string();
    let bs = bootstrap();
    let group = format!("kts-test-{}", uuid::Uuid::new_v4());
    let args = [
        topic,
        "--bootstrap",
        &bs,
        "--group",
        &group,
        "--from-beginning",
        "--analyze-ordering",
        "--delivery",
        "causal",
        "--format",
        "json",
        "--max-messages",
        &n,
    ];
    let out = common::run(CONSUMER, &[&args[..], extra].concat(), None, TIMEOUT);
    out.assert_success();
    (out.json_lines(), out.stderr)
}

#[test]
fn a_topic_of_prototype_and_kafka_timesync_messages_is_analysed_and_delivered_causally() {
    let topic = create_topic("prototype-mixed", 3);
    let a1 = ours("A", 1, &[("A", 1)]);
    let b1 = ours("B", 1, &[("A", 1), ("B", 1)]);
    let c1 = ours("C", 1, &[("A", 1), ("B", 1), ("C", 1)]);
    let mut prototype: Vec<Vec<u8>> = FIXTURES.iter().map(|n| fixture(n)).collect();
    // Array-form vectors: producer-1's twice, and twice from a second node.
    let example = fixture("design_doc_example.json");
    let other = String::from_utf8(example.clone())
        .unwrap()
        .replace(r#""node_id": "producer-1""#, r#""node_id": "legacy-2""#);
    prototype.extend([example, other.clone().into_bytes(), other.into_bytes()]);
    // Ours keyed by node (each its own partition, successors written first); the prototype's
    // keyless, as confluent-kafka wrote them.
    let mut records: Vec<(Option<i32>, Option<&str>, &[u8])> =
        vec![(Some(2), Some("C"), &c1), (Some(1), Some("B"), &b1)];
    records.extend(prototype.iter().map(|p| (None, None, p.as_slice())));
    records.push((Some(0), Some("A"), &a1));
    produce_records(&topic, &records);

    let (lines, stderr) = consume(&topic, records.len(), &[]);
    let s = summary(&lines);
    assert_eq!(s["received"], 11, "{s}");
    assert_eq!(s["delivered"], 11, "{s}");
    assert_eq!(s["malformed"], 0, "{s}");
    assert_eq!(s["without_seq"], 8, "{s}");
    assert_eq!(s["without_vector"], 8, "{s}");
    assert_eq!(s["unordered"], 8, "{s}");
    // Keyless records belong to the node their timestamp names.
    assert_eq!(s["nodes"]["producer-1"]["messages"], 6, "{s}");
    assert_eq!(s["nodes"]["legacy-2"]["messages"], 2, "{s}");
    // Partitions interleave as they will (arrival_before_cause depends on it), but no FIFO
    // finding: the prototype's messages are FIFO-checked per partition by offset.
    for kind in ["fifo_gap", "fifo_reorder", "duplicate", "released_early"] {
        assert_eq!(s["violations"][kind], 0, "{kind}: {s}");
    }
    // Ours in causal order, whatever the partitions' interleaving.
    let ours_order: Vec<&str> = lines
        .iter()
        .filter(|l| l["event"] == "deliver")
        .filter_map(|l| l["message"]["seq"].as_u64().map(|_| &l["message"]["id"]))
        .map(|id| id.as_str().unwrap())
        .collect();
    assert_eq!(ours_order, ["A-1", "B-1", "C-1"]);
    // Every prototype message delivered exactly as written, line breaks aside.
    for p in &prototype {
        let v: Value = serde_json::from_slice(p).unwrap();
        assert!(
            lines.iter().any(|l| l["message"] == v),
            "not delivered: {v}"
        );
    }
    // The array-form vectors: one warning per node (not per message), saying how to map them.
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("--legacy-vector-nodes"))
        .collect();
    assert_eq!(warnings.len(), 2, "{stderr}");
    for node in ["node producer-1:", "node legacy-2:"] {
        assert_eq!(
            warnings.iter().filter(|w| w.contains(node)).count(),
            1,
            "{stderr}"
        );
    }

    // With the node order the design doc's vector is mapped, and nothing is to be warned about.
    let (lines, stderr) = consume(&topic, records.len(), &["--legacy-vector-nodes", "A,B,C"]);
    let s = summary(&lines);
    assert_eq!(
        (&s["delivered"], &s["without_vector"]),
        (&11.into(), &4.into())
    );
    assert!(!stderr.contains("--legacy-vector-nodes"), "{stderr}");
}

#[test]
fn the_issues_command_reads_the_five_prototype_messages_as_messages() {
    // As the prototype wrote them: keyless, on a topic of one partition, in this order.
    let topic = create_topic("prototype-five", 1);
    let fixtures: Vec<Vec<u8>> = FIXTURES.iter().map(|n| fixture(n)).collect();
    let records: Vec<(Option<i32>, Option<&str>, &[u8])> = fixtures
        .iter()
        .map(|f| (None, None, f.as_slice()))
        .collect();
    produce_records(&topic, &records);
    let bs = bootstrap();
    let group = format!("kts-test-{}", uuid::Uuid::new_v4());
    let out = common::run(
        CONSUMER,
        &[
            &topic,
            "--bootstrap",
            &bs,
            "--group",
            &group,
            "--from-beginning",
            "--analyze-ordering",
            "--max-messages",
            "5",
        ],
        None,
        TIMEOUT,
    );
    out.assert_success();
    // The text summary: `name   N`.
    let count = |name: &str| -> u64 {
        out.stdout
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} line: {}", out.stdout))
    };
    assert_eq!(
        [
            "received",
            "delivered",
            "malformed",
            "without seq",
            "violations"
        ]
        .map(count),
        [5, 5, 0, 5, 0],
        "{}",
        out.stdout
    );
    for content in [
        "Hello World!",
        "Logical message",
        "Vector message",
        "Message 1",
        "message content",
    ] {
        assert!(
            out.stdout.lines().any(|l| l.ends_with(content)),
            "{content} not delivered: {}",
            out.stdout
        );
    }
    // The design doc's array vector: one warning, naming the node and the flag.
    let warnings: Vec<&str> = out.stderr.lines().filter(|l| l.contains("WARN")).collect();
    assert_eq!(warnings.len(), 1, "{}", out.stderr);
    assert!(
        warnings[0].contains("node producer-1:") && warnings[0].contains("--legacy-vector-nodes"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_bad_legacy_node_order_is_a_usage_error() {
    // Refused before any connection: the bootstrap address is never used.
    let out = common::run(
        CONSUMER,
        &[
            "t",
            "--bootstrap",
            "127.0.0.1:1",
            "--legacy-vector-nodes",
            "A,B,A",
        ],
        None,
        TIMEOUT,
    );
    assert_eq!(out.status.and_then(|s| s.code()), Some(2), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("--legacy-vector-nodes: node id \"A\" is listed twice"),
        "{}",
        out.stderr
    );
    assert_eq!(out.stderr.trim().lines().count(), 1, "{}", out.stderr);
    // The same mistake in the config file: the same exit status, the file and key named.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("legacy.toml");
    std::fs::write(&path, "legacy_vector_nodes = [\"A\", \"B\", \"A\"]\n").unwrap();
    let out = common::run(
        CONSUMER,
        &[
            "t",
            "--bootstrap",
            "127.0.0.1:1",
            "--config",
            path.to_str().unwrap(),
        ],
        None,
        TIMEOUT,
    );
    assert_eq!(out.status.and_then(|s| s.code()), Some(2), "{}", out.stderr);
    assert_eq!(
        out.stderr.trim(),
        format!(
            "kafka-consumer: error: {}: legacy_vector_nodes: node id \"A\" is listed twice",
            path.display()
        )
    );
}
