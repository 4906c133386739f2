//! kafka-consumer against the real broker of the test environment (`KTS_BOOTSTRAP`):
//! causal and total delivery through Kafka, timeouts, restart from committed offsets, malformed
//! records, text output, bad command lines and secrets.
//!
//! Run: `scripts/testenv.sh run -- cargo test --test consumer_cli`.

mod common;

use common::watched::{json_events, Watched};
use common::{bootstrap, create_topic, produce_raw, TIMEOUT};
use kafka_timesync::clock::{ClockType, VectorTimestamp};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_kafka-consumer");

fn group() -> String {
    format!("kts-test-{}", uuid::Uuid::new_v4())
}

/// An envelope as a producer would stamp it; vector stamps when `vt` is given.
fn message(node: &str, seq: u64, vt: Option<&[(&str, u64)]>, lamport: u64) -> Vec<u8> {
    let at = 1_790_000_000.0 + seq as f64 / 1000.0;
    let mut e = common::vector_envelope(node, seq, vt.unwrap_or_default(), at);
    e.timestamp.logical_time = Some(lamport);
    if vt.is_none() {
        e.timestamp.clock_type = ClockType::Logical;
        e.timestamp.vector_time = None;
    }
    e.encode()
}

fn events<'a>(lines: &'a [Value], kind: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["event"] == kind).collect()
}

fn delivered_ids(lines: &[Value]) -> Vec<String> {
    events(lines, "deliver")
        .iter()
        .map(|d| d["message"]["id"].as_str().expect("message id").to_string())
        .collect()
}

fn summary(lines: &[Value]) -> &Value {
    let last = lines.last().expect("no output at all");
    assert_eq!(
        last["event"], "summary",
        "the last line must be the summary: {last}"
    );
    last
}

/// Checks that `ids` (delivered in this order) is a linear extension of happened-before for the
/// given vector stamps: every causal predecessor present in the output comes earlier.
fn assert_causal(ids: &[String], stamps: &HashMap<String, (String, u64, VectorTimestamp)>) {
    let pos: HashMap<&str, usize> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    for (i, id) in ids.iter().enumerate() {
        let (_, _, vt) = &stamps[id];
        for (other, (node, seq, _)) in stamps {
            let before = vt.get(node) >= *seq && other != id;
            if before {
                if let Some(j) = pos.get(other.as_str()) {
                    assert!(
                        *j < i,
                        "{other} happened before {id} but was delivered after it: {ids:?}"
                    );
                }
            }
        }
    }
}

/// A consumer running in the background, its output collected as it comes.
fn live(args: &[&str]) -> Watched {
    Watched::spawn("kafka-consumer", BIN, args)
}

/// The JSON events a live consumer has printed so far.
fn printed(c: &Watched) -> Vec<Value> {
    json_events(&c.stdout())
}

/// `TOPIC --bootstrap BS --group GROUP --format json`, then `extra`.
fn json_args<'a>(topic: &'a str, bs: &'a str, group: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        topic,
        "--bootstrap",
        bs,
        "--group",
        group,
        "--format",
        "json",
    ];
    args.extend_from_slice(extra);
    args
}

fn run_consumer(args: &[&str]) -> (Vec<Value>, String) {
    let out = common::run(BIN, args, None, TIMEOUT);
    out.assert_success();
    (out.json_lines(), out.stderr)
}

/// Runs the consumer until it has delivered `n` messages (`--max-messages n`): the run ends on
/// what the test expects, not on a quiet spell. Fails, with its output, if it does not get there
/// within [`TIMEOUT`].
fn run_consumer_until(n: usize, args: &[&str]) -> (Vec<Value>, String) {
    let n = n.to_string();
    run_consumer(&[args, &["--max-messages", n.as_str()]].concat())
}

/// Stops a live consumer with SIGTERM once `what` holds for its JSON events; returns every event
/// (the summary last) and its stderr, having checked that it exited 0.
fn stop_when(mut c: Watched, what: &str, cond: impl Fn(&[Value]) -> bool) -> (Vec<Value>, String) {
    c.wait_events(what, TIMEOUT, cond);
    let done = c.terminate(TIMEOUT);
    done.assert_success();
    (done.events(), done.stderr.join("\n"))
}

fn committed(group: &str, topic: &str, partitions: i32) -> BTreeMap<i32, i64> {
    let consumer: BaseConsumer = common::settings()
        .consumer_config(Some(group))
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let got = consumer
        .committed_offsets(tpl, TIMEOUT)
        .expect("committed offsets");
    got.elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect()
}

#[test]
fn causal_delivery_respects_happened_before_that_arrival_order_breaks() {
    let topic = create_topic("consumer-causal", 3);
    let bs = bootstrap();
    let common_args = [
        "--bootstrap",
        &bs,
        "--from-beginning",
        "--analyze-ordering",
        "--format",
        "json",
    ];
    let (g1, g2) = (group(), group());
    let mut causal = live(
        &[
            &[topic.as_str(), "--delivery", "causal", "--group", &g1][..],
            &common_args[..],
        ]
        .concat(),
    );
    let mut arrival = live(
        &[
            &[topic.as_str(), "--delivery", "arrival", "--group", &g2][..],
            &common_args[..],
        ]
        .concat(),
    );

    // A sends twice; B sends after seeing A's both; C after seeing B's. Each node has its own
    // partition, and every successor is written (and read) before its causes.
    let stamps: HashMap<String, (String, u64, VectorTimestamp)> = [
        ("A", 1, vec![("A", 1)]),
        ("A", 2, vec![("A", 2)]),
        ("B", 1, vec![("A", 2), ("B", 1)]),
        ("C", 1, vec![("A", 2), ("B", 1), ("C", 1)]),
    ]
    .into_iter()
    .map(|(n, s, vt)| {
        (
            format!("{n}-{s}"),
            (n.to_string(), s, VectorTimestamp::from_entries(vt)),
        )
    })
    .collect();
    let c1 = message("C", 1, Some(&[("A", 2), ("B", 1), ("C", 1)]), 4);
    let b1 = message("B", 1, Some(&[("A", 2), ("B", 1)]), 3);
    let a1 = message("A", 1, Some(&[("A", 1)]), 1);
    let a2 = message("A", 2, Some(&[("A", 2)]), 2);

    produce_raw(&topic, &[(Some(2), "C", &c1)]);
    arrival.wait_events("C-1 delivered in arrival mode", TIMEOUT, |l| {
        delivered_ids(l).len() == 1
    });
    causal.wait_events("C-1 seen by the causal consumer", TIMEOUT, |l| {
        events(l, "violation")
            .iter()
            .any(|v| v["kind"] == "arrival_before_cause" && v["node"] == "C")
    });
    assert!(
        delivered_ids(&printed(&causal)).is_empty(),
        "C-1 must wait for its causes"
    );

    produce_raw(&topic, &[(Some(1), "B", &b1)]);
    arrival.wait_events("B-1 delivered in arrival mode", TIMEOUT, |l| {
        delivered_ids(l).len() == 2
    });
    causal.wait_events("B-1 seen by the causal consumer", TIMEOUT, |l| {
        events(l, "violation")
            .iter()
            .any(|v| v["kind"] == "arrival_before_cause" && v["node"] == "B")
    });
    assert!(delivered_ids(&printed(&causal)).is_empty());

    produce_raw(&topic, &[(Some(0), "A", &a1), (Some(0), "A", &a2)]);
    causal.wait_events("all four delivered causally", TIMEOUT, |l| {
        delivered_ids(l).len() == 4
    });
    arrival.wait_events("all four delivered on arrival", TIMEOUT, |l| {
        delivered_ids(l).len() == 4
    });

    let causal_lines = causal.terminate(TIMEOUT).assert_success().events();
    let arrival_lines = arrival.terminate(TIMEOUT).assert_success().events();

    let causal_ids = delivered_ids(&causal_lines);
    assert_eq!(causal_ids, ["A-1", "A-2", "B-1", "C-1"]);
    assert_causal(&causal_ids, &stamps);
    assert!(events(&causal_lines, "deliver")
        .iter()
        .all(|d| d["release"] == "ready"));
    let s = summary(&causal_lines);
    assert_eq!(
        (
            s["received"].as_u64(),
            s["delivered"].as_u64(),
            s["buffered"].as_u64()
        ),
        (Some(4), Some(4), Some(0))
    );

    let arrival_ids = delivered_ids(&arrival_lines);
    assert_eq!(arrival_ids, ["C-1", "B-1", "A-1", "A-2"]);
    let abc: HashSet<String> = events(&arrival_lines, "violation")
        .iter()
        .filter(|v| v["kind"] == "arrival_before_cause")
        .map(|v| v["node"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(abc, HashSet::from(["B".to_string(), "C".to_string()]));
    assert!(summary(&arrival_lines)["violations"]["arrival_before_cause"].as_u64() >= Some(2));

    // SIGTERM committed everything delivered: one past the last record of each partition.
    assert_eq!(
        committed(&g1, &topic, 3),
        BTreeMap::from([(0, 2), (1, 1), (2, 1)])
    );
}

#[test]
fn total_order_is_the_same_sequence_in_two_consumer_groups() {
    let topic = create_topic("consumer-total", 3);
    let bs = bootstrap();
    // Three nodes with interleaved and tied Lamport times, each in its own partition.
    let plan: [(&str, i32, &[u64]); 3] = [
        ("A", 0, &[1, 3, 5, 8, 9]),
        ("B", 1, &[2, 3, 4, 8, 12]),
        ("C", 2, &[1, 2, 6, 7, 10]),
    ];
    let mut records = Vec::new();
    let mut expected = Vec::new();
    for (node, p, times) in plan {
        for (i, t) in times.iter().enumerate() {
            let seq = i as u64 + 1;
            records.push((Some(p), node, message(node, seq, None, *t)));
            expected.push((*t, node.to_string(), format!("{node}-{seq}")));
        }
    }
    let refs: Vec<(Option<i32>, &str, &[u8])> = records
        .iter()
        .map(|(p, k, m)| (*p, *k, m.as_slice()))
        .collect();
    produce_raw(&topic, &refs);
    expected.sort();
    let expected: Vec<String> = expected.into_iter().map(|(_, _, id)| id).collect();

    let run = || {
        let g = group();
        let (lines, _) = run_consumer_until(
            expected.len(),
            &json_args(
                &topic,
                &bs,
                &g,
                &[
                    "--from-beginning",
                    "--delivery",
                    "total",
                    "--nodes",
                    "A,B,C",
                    "--causal-timeout",
                    "1000",
                ],
            ),
        );
        lines
    };
    let first = run();
    let second = run();
    assert_eq!(
        delivered_ids(&first),
        delivered_ids(&second),
        "replicas disagree"
    );
    assert_eq!(
        delivered_ids(&first),
        expected,
        "not in (Lamport time, node id) order"
    );
    assert_eq!(summary(&first)["delivered"], 15);
}

#[test]
fn a_missing_predecessor_is_released_after_the_causal_timeout_and_reported() {
    let topic = create_topic("consumer-timeout", 3);
    let bs = bootstrap();
    let g = group();
    // C saw A's fifth message, which was never written; D depends on nothing.
    let c1 = message("C", 1, Some(&[("A", 5), ("C", 1)]), 6);
    let d1 = message("D", 1, Some(&[("D", 1)]), 1);
    produce_raw(&topic, &[(Some(2), "C", &c1), (Some(0), "D", &d1)]);
    let (lines, _) = run_consumer_until(
        2,
        &json_args(
            &topic,
            &bs,
            &g,
            &[
                "--from-beginning",
                "--delivery",
                "causal",
                "--causal-timeout",
                "500",
            ],
        ),
    );
    let delivered: HashMap<String, String> = events(&lines, "deliver")
        .iter()
        .map(|d| {
            (
                d["message"]["id"].as_str().unwrap().to_string(),
                d["release"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(delivered.get("D-1").map(String::as_str), Some("ready"));
    assert_eq!(delivered.get("C-1").map(String::as_str), Some("timeout"));
    let early = events(&lines, "violation");
    assert_eq!(early.len(), 1, "{early:?}");
    assert_eq!(early[0]["kind"], "released_early");
    assert_eq!(early[0]["ids"], serde_json::json!(["C-1"]));
    assert!(
        early[0]["detail"].as_str().unwrap().contains("A 1..5"),
        "{}",
        early[0]["detail"]
    );
    let s = summary(&lines);
    assert_eq!(
        (s["delivered"].as_u64(), s["buffered"].as_u64()),
        (Some(2), Some(0)),
        "nothing dropped"
    );
    assert_eq!(s["violations"]["released_early"], 1);
}

/// Node ids' stamps by message id: (node, seq, vector).
type Stamps = HashMap<String, (String, u64, VectorTimestamp)>;

/// Writes `n` messages of A (partition 0) and `n` of B (partition 1), B's i-th sent after B saw
/// A's i-th. B's partition is written first, so a consumer meets B's messages before their causes.
/// Returns every message's stamp and its (partition, offset), by id.
fn write_b_before_a(topic: &str, n: u64) -> (Stamps, HashMap<String, (i32, i64)>) {
    let mut records = Vec::new();
    let mut stamps = HashMap::new();
    for i in 1..=n {
        let vt = [("A", i), ("B", i)];
        records.push((Some(1), "B", message("B", i, Some(&vt), 2 * i)));
        stamps.insert(
            format!("B-{i}"),
            ("B".to_string(), i, VectorTimestamp::from_entries(vt)),
        );
    }
    for i in 1..=n {
        records.push((Some(0), "A", message("A", i, Some(&[("A", i)]), 2 * i - 1)));
        stamps.insert(
            format!("A-{i}"),
            (
                "A".to_string(),
                i,
                VectorTimestamp::from_entries([("A", i)]),
            ),
        );
    }
    let refs: Vec<(Option<i32>, &str, &[u8])> = records
        .iter()
        .map(|(p, k, m)| (*p, *k, m.as_slice()))
        .collect();
    let pos = produce_raw(topic, &refs);
    let positions = records
        .iter()
        .zip(pos)
        .map(|((_, _, m), p)| {
            let id = serde_json::from_slice::<Value>(m).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string();
            (id, p)
        })
        .collect();
    (stamps, positions)
}

#[test]
fn stopped_mid_backlog_and_restarted_loses_nothing_and_redelivers_only_after_the_commit() {
    let topic = create_topic("consumer-restart", 3);
    let bs = bootstrap();
    let g = group();
    const N: u64 = 40;
    let (stamps, positions) = write_b_before_a(&topic, N);

    // Run 1 stops after 30 deliveries, in the middle of the backlog.
    let (run1, _) = run_consumer(&json_args(
        &topic,
        &bs,
        &g,
        &[
            "--from-beginning",
            "--delivery",
            "causal",
            "--max-messages",
            "30",
        ],
    ));
    let ids1 = delivered_ids(&run1);
    assert_eq!(ids1.len(), 30);
    assert_causal(&ids1, &stamps);
    let commits = committed(&g, &topic, 3);
    // Every record below a commit position was delivered in run 1.
    let delivered1: HashSet<&String> = ids1.iter().collect();
    for (id, (p, o)) in &positions {
        if *o < commits.get(p).copied().unwrap_or(0) {
            assert!(
                delivered1.contains(id),
                "{id} at {p}/{o} is below the commit {commits:?} but was never delivered"
            );
        }
    }

    // Run 2 resumes from the committed offsets and ends once it has delivered the other 50 (a
    // redelivery would take the place of a message never delivered: "lost" below).
    let (run2, _) = run_consumer_until(
        2 * N as usize - 30,
        &json_args(
            &topic,
            &bs,
            &g,
            &["--delivery", "causal", "--causal-timeout", "1000"],
        ),
    );
    let ids2 = delivered_ids(&run2);
    let all: HashSet<&String> = ids1.iter().chain(ids2.iter()).collect();
    assert_eq!(
        all.len(),
        2 * N as usize,
        "lost: {:?}",
        stamps
            .keys()
            .filter(|k| !all.contains(k))
            .collect::<Vec<_>>()
    );
    let mut redelivered = 0;
    for id in &ids2 {
        let (p, o) = positions[id];
        assert!(
            o >= commits.get(&p).copied().unwrap_or(0),
            "{id} at {p}/{o} redelivered although below the commit {commits:?}"
        );
        if delivered1.contains(id) {
            redelivered += 1;
        }
    }
    eprintln!("restart: 80 messages, run 1 delivered 30, run 2 delivered {}, redelivered {redelivered}, lost 0", ids2.len());
    let s2 = summary(&run2);
    assert_eq!(s2["buffered"], 0);
    // Run 2 restored the delivery state committed with the offsets: no message waited for a
    // predecessor that run 1 had delivered, and nothing run 1 delivered was delivered again.
    assert_eq!(s2["violations"]["released_early"], 0, "{s2}");
    assert_eq!(redelivered, 0, "{s2}");
    assert_causal(&ids2, &stamps);
}

/// The consumer arguments shared by the restart tests: causal delivery that would hold a message
/// with a missing predecessor far longer than the run may last (a run that waits for one fails on
/// [`TIMEOUT`] before delivering all it expects).
fn causal_args<'a>(topic: &'a str, bs: &'a str, g: &'a str) -> Vec<&'a str> {
    json_args(
        topic,
        bs,
        g,
        &["--delivery", "causal", "--causal-timeout", "600000"],
    )
}

#[test]
fn a_restarted_causal_consumer_delivers_successors_at_once_without_reading_the_topic_again() {
    let topic = create_topic("consumer-resume", 3);
    let bs = bootstrap();
    let g = group();
    const N: u64 = 100;
    let mut old: Vec<(Option<i32>, String, Vec<u8>)> = Vec::new();
    for i in 1..=N {
        old.push((Some(0), "A".into(), message("A", i, Some(&[("A", i)]), i)));
        let vt = [("A", i), ("B", i)];
        old.push((Some(1), "B".into(), message("B", i, Some(&vt), i + 1)));
    }
    let refs: Vec<(Option<i32>, &str, &[u8])> = old
        .iter()
        .map(|(p, k, v)| (*p, k.as_str(), v.as_slice()))
        .collect();
    produce_raw(&topic, &refs);
    let (run1, err1) = run_consumer_until(2 * N as usize, &causal_args(&topic, &bs, &g));
    assert_eq!(delivered_ids(&run1).len(), 2 * N as usize, "{err1}");
    assert_eq!(
        committed(&g, &topic, 3),
        BTreeMap::from([(0, 100), (1, 100), (2, 0)])
    );

    // New messages that follow the last ones delivered before the restart.
    let c1 = message("C", 1, Some(&[("A", N), ("B", N), ("C", 1)]), 2 * N);
    let b = message("B", N + 1, Some(&[("A", N), ("B", N + 1)]), 2 * N);
    produce_raw(&topic, &[(Some(2), "C", &c1), (Some(1), "B", &b)]);
    let (run2, err2) = run_consumer_until(2, &causal_args(&topic, &bs, &g));
    let mut ids = delivered_ids(&run2);
    ids.sort();
    assert_eq!(ids, [format!("B-{}", N + 1), "C-1".to_string()], "{err2}");
    for d in events(&run2, "deliver") {
        assert_eq!(d["release"], "ready", "{d}");
    }
    let s = summary(&run2);
    assert_eq!(s["received"], 2, "only the new records are read: {s}");
    assert_eq!(s["buffered"], 0, "{s}");
    assert!(!err2.contains("warning"), "{err2}");
}

#[test]
fn foreign_commit_metadata_gives_a_warning_and_the_documented_fallback() {
    let topic = create_topic("consumer-foreign-meta", 3);
    let bs = bootstrap();
    let g = group();
    let mut recs: Vec<(Option<i32>, String, Vec<u8>)> = Vec::new();
    for i in 1..=10u64 {
        recs.push((Some(0), "A".into(), message("A", i, Some(&[("A", i)]), i)));
        let vt = [("A", i), ("B", i)];
        recs.push((Some(1), "B".into(), message("B", i, Some(&vt), i + 1)));
    }
    let refs: Vec<(Option<i32>, &str, &[u8])> = recs
        .iter()
        .map(|(p, k, v)| (*p, k.as_str(), v.as_slice()))
        .collect();
    produce_raw(&topic, &refs);
    // Another program committed the group at A6 and B6, with its own metadata.
    let other: BaseConsumer = common::settings()
        .consumer_config(Some(&g))
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..2 {
        tpl.add_partition_offset(&topic, p, Offset::Offset(5))
            .expect("offset");
        tpl.find_partition(&topic, p)
            .expect("partition")
            .set_metadata("{\"owner\":\"someone else\"}");
    }
    // (A new group's coordinator may need a moment.)
    common::wait_until("the foreign commit", TIMEOUT, || {
        other
            .commit(&tpl, rdkafka::consumer::CommitMode::Sync)
            .is_ok()
    });
    let (out, err) = run_consumer_until(10, &causal_args(&topic, &bs, &g));
    assert!(
        err.contains("warning") && err.contains("not a kafka-timesync checkpoint"),
        "{err}"
    );
    let mut ids = delivered_ids(&out);
    ids.sort();
    let mut want: Vec<String> = (6..=10)
        .flat_map(|i| [format!("A-{i}"), format!("B-{i}")])
        .collect();
    want.sort();
    assert_eq!(ids, want, "{err}");
    for d in events(&out, "deliver") {
        assert_eq!(d["release"], "ready", "{d}");
    }
}

/// The metadata strings the group committed with each partition of `topic` that has a commit.
fn committed_metadata(group: &str, topic: &str, partitions: i32) -> BTreeMap<i32, String> {
    let consumer: BaseConsumer = common::settings()
        .consumer_config(Some(group))
        .create()
        .expect("consumer");
    let ps: Vec<i32> = (0..partitions).collect();
    kafka_timesync::kafka::committed(&consumer, topic, &ps, TIMEOUT)
        .expect("committed offsets")
        .into_iter()
        .map(|c| (c.partition, c.metadata))
        .collect()
}

#[test]
fn a_causal_state_too_large_for_the_commit_metadata_warns_and_the_restart_falls_back() {
    let topic = create_topic("consumer-meta-too-large", 3);
    let bs = bootstrap();
    let g = group();
    // 300 nodes with 20-character ids, one message each: their causal state (about 23 bytes a
    // node) exceeds the 4096 bytes Kafka keeps with a committed offset.
    let node = |i: usize| format!("node-{i:015}");
    let recs: Vec<(Option<i32>, String, Vec<u8>)> = (0..300)
        .map(|i| {
            let n = node(i);
            let m = message(&n, 1, Some(&[(n.as_str(), 1)]), 1);
            (Some((i % 3) as i32), n, m)
        })
        .collect();
    let refs: Vec<(Option<i32>, &str, &[u8])> = recs
        .iter()
        .map(|(p, k, v)| (*p, k.as_str(), v.as_slice()))
        .collect();
    produce_raw(&topic, &refs);
    let (run1, err1) = run_consumer_until(300, &causal_args(&topic, &bs, &g));
    assert_eq!(delivered_ids(&run1).len(), 300, "{err1}");
    assert!(
        err1.contains("the delivery state of 300 nodes does not fit in the commit metadata"),
        "the writer warns: {err1}"
    );
    assert_eq!(
        committed(&g, &topic, 3),
        BTreeMap::from([(0, 100), (1, 100), (2, 100)])
    );
    // The offsets were committed with the marker, not a truncated state.
    for (p, m) in committed_metadata(&g, &topic, 3) {
        assert_eq!(m, "kts1-", "partition {p}");
    }

    // After the restart: node 0's next message, and a new node's that follows node 1's.
    let (n0, n1) = (node(0), node(1));
    let again = message(&n0, 2, Some(&[(n0.as_str(), 2)]), 2);
    let z = message("Z", 1, Some(&[(n1.as_str(), 1), ("Z", 1)]), 2);
    produce_raw(&topic, &[(Some(0), &n0, &again), (Some(2), "Z", &z)]);
    let (run2, err2) = run_consumer_until(2, &causal_args(&topic, &bs, &g));
    assert!(
        err2.contains("warning") && err2.contains("did not fit in the commit metadata"),
        "the reader warns and falls back: {err2}"
    );
    let mut ids = delivered_ids(&run2);
    ids.sort();
    assert_eq!(ids, ["Z-1".to_string(), format!("{n0}-2")], "{err2}");
    // The fallback (predecessors before the start count as delivered) releases both at once.
    for d in events(&run2, "deliver") {
        assert_eq!(d["release"], "ready", "{d}");
    }
    let s = summary(&run2);
    assert_eq!(s["received"], 2, "the restart starts at the commit: {s}");
    assert_eq!(s["violations"]["released_early"], 0, "{s}");
}

#[test]
fn a_restarted_total_order_consumer_continues_the_sequence_at_its_commit() {
    let topic = create_topic("consumer-total-restart", 3);
    let bs = bootstrap();
    let g = group();
    // A (partition 0) at Lamport times 1..=10, B (partition 1) at 1..=5 for now.
    let a: Vec<Vec<u8>> = (1..=10).map(|t| message("A", t, None, t)).collect();
    let b: Vec<Vec<u8>> = (1..=10).map(|t| message("B", t, None, t)).collect();
    let mut refs: Vec<(Option<i32>, &str, &[u8])> =
        a.iter().map(|m| (Some(0), "A", m.as_slice())).collect();
    refs.extend(b[..5].iter().map(|m| (Some(1), "B", m.as_slice())));
    produce_raw(&topic, &refs);
    let args = json_args(
        &topic,
        &bs,
        &g,
        &[
            "--delivery",
            "total",
            "--nodes",
            "A,B",
            "--causal-timeout",
            "600000",
        ],
    );
    // Run 1 delivers up to (6, A); A's 7..=10 wait for B, which may still send (6, B).
    let (run1, err1) = stop_when(live(&args), "run 1 to deliver 11", |e| {
        events(e, "deliver").len() >= 11
    });
    let want1: Vec<String> = (1..=5)
        .flat_map(|t| [format!("A-{t}"), format!("B-{t}")])
        .chain(["A-6".to_string()])
        .collect();
    assert_eq!(delivered_ids(&run1), want1, "{err1}");
    assert_eq!(summary(&run1)["buffered"], 4);
    let commits = committed(&g, &topic, 3);
    assert_eq!(
        (commits.get(&0), commits.get(&1)),
        (Some(&6), Some(&5)),
        "A's held messages are not committed: {commits:?}"
    );

    // B goes on; the restart reads A's held messages again and B's new ones.
    let more: Vec<(Option<i32>, &str, &[u8])> = b[5..]
        .iter()
        .map(|m| (Some(1), "B", m.as_slice()))
        .collect();
    produce_raw(&topic, &more);
    let (run2, err2) = run_consumer_until(9, &args);
    let want: Vec<String> = (6..=10)
        .flat_map(|t| [format!("A-{t}"), format!("B-{t}")])
        .skip(1)
        .collect();
    assert_eq!(delivered_ids(&run2), want, "the sequence continues: {err2}");
    for d in events(&run2, "deliver") {
        assert_eq!(d["release"], "ready", "{d}");
    }
    let s = summary(&run2);
    assert_eq!(s["received"], 9, "only the held and the new records: {s}");
    assert_eq!(s["already_delivered"], 0, "{s}");
    assert!(
        !err2.contains("warning"),
        "the stored state was restored: {err2}"
    );
}

#[test]
fn without_a_commit_auto_offset_reset_latest_starts_at_the_end() {
    let topic = create_topic("consumer-reset-latest", 3);
    let bs = bootstrap();
    let g = group();
    let old: Vec<Vec<u8>> = (1..=5)
        .map(|i| message("A", i, Some(&[("A", i)]), i))
        .collect();
    let refs: Vec<(Option<i32>, &str, &[u8])> =
        old.iter().map(|m| (Some(0), "A", m.as_slice())).collect();
    produce_raw(&topic, &refs);
    let mut args = causal_args(&topic, &bs, &g);
    args.extend(["-X", "auto.offset.reset=latest"]);
    let c = live(&args);
    // Placed: its first commit stores where each partition starts, the end of A's.
    common::wait_until("the consumer's first commit", TIMEOUT, || {
        committed(&g, &topic, 3).get(&0) == Some(&5)
    });
    let a6 = message("A", 6, Some(&[("A", 6)]), 6);
    let b1 = message("B", 1, Some(&[("A", 6), ("B", 1)]), 7);
    produce_raw(&topic, &[(Some(0), "A", &a6), (Some(1), "B", &b1)]);
    let (out, err) = stop_when(c, "two deliveries", |e| events(e, "deliver").len() >= 2);
    // What A sent before the start counts as delivered: A-6 and its successor go at once.
    assert_eq!(delivered_ids(&out), ["A-6", "B-1"], "{err}");
    for d in events(&out, "deliver") {
        assert_eq!(d["release"], "ready", "{d}");
    }
    assert_eq!(
        summary(&out)["received"],
        2,
        "nothing before the start is read"
    );
    assert!(!err.contains("warning"), "{err}");
}

#[test]
fn history_in_causal_mode_counts_what_lies_before_it_as_delivered() {
    let topic = create_topic("consumer-history", 3);
    let bs = bootstrap();
    // A in partition 0; D wrote once, long ago, in partition 2 (then E ten times); every B
    // follows A's same count and D's only message.
    let mut recs: Vec<(Option<i32>, String, Vec<u8>)> = Vec::new();
    recs.push((Some(2), "D".into(), message("D", 1, Some(&[("D", 1)]), 1)));
    for i in 1..=20u64 {
        recs.push((Some(0), "A".into(), message("A", i, Some(&[("A", i)]), i)));
        let vt = [("A", i), ("B", i), ("D", 1)];
        recs.push((Some(1), "B".into(), message("B", i, Some(&vt), i + 2)));
        if i <= 10 {
            recs.push((Some(2), "E".into(), message("E", i, Some(&[("E", i)]), i)));
        }
    }
    let refs: Vec<(Option<i32>, &str, &[u8])> = recs
        .iter()
        .map(|(p, k, v)| (*p, k.as_str(), v.as_slice()))
        .collect();
    produce_raw(&topic, &refs);
    let g = group();
    let mut args = causal_args(&topic, &bs, &g);
    args.extend(["--history", "5"]);
    // 15 deliveries end the run; one that waited for the 10-minute causal timeout would fail it.
    let (out, err) = run_consumer_until(15, &args);
    let mut ids = delivered_ids(&out);
    ids.sort();
    let mut want: Vec<String> = (16..=20)
        .flat_map(|i| [format!("A-{i}"), format!("B-{i}")])
        .chain((6..=10).map(|i| format!("E-{i}")))
        .collect();
    want.sort();
    assert_eq!(ids, want, "{err}");
    for d in events(&out, "deliver") {
        assert_eq!(d["release"], "ready", "{d}");
    }
    let s = summary(&out);
    assert_eq!(s["violations"]["released_early"], 0, "{s}");
}

#[test]
fn garbage_records_are_reported_and_valid_ones_still_flow() {
    let topic = create_topic("consumer-garbage", 3);
    let bs = bootstrap();
    let deep = "[".repeat(10_000);
    let valid: Vec<Vec<u8>> = (1..=5)
        .map(|i| message("A", i, Some(&[("A", i)]), i))
        .collect();
    let garbage: [&[u8]; 5] = [
        b"\x00\x01\x02 binary \xff",
        b"not json at all",
        br#"{"id":"x","content":"no timestamp","seq":1}"#,
        deep.as_bytes(),
        br#"{"id":"y","content":"","seq":-3,"timestamp":{"node_id":"A","timestamp":1.0,"clock_type":"vector","physical_time":1.0,"logical_time":1}}"#,
    ];
    let mut recs: Vec<(Option<i32>, &str, &[u8])> = Vec::new();
    for i in 0..5 {
        recs.push((Some(0), "A", &valid[i]));
        recs.push((Some(0), "junk", garbage[i]));
    }
    let pos = produce_raw(&topic, &recs);
    let bad_positions: HashSet<(i64, i64)> = pos
        .iter()
        .skip(1)
        .step_by(2)
        .map(|(p, o)| (i64::from(*p), *o))
        .collect();

    for mode in ["causal", "arrival"] {
        let g = group();
        // The last record is garbage: the run ends once all ten records are accounted for.
        let c = live(&json_args(
            &topic,
            &bs,
            &g,
            &["--from-beginning", "--delivery", mode],
        ));
        let (lines, _) = stop_when(c, "5 deliveries and 5 malformed records", |l| {
            events(l, "deliver").len() + events(l, "malformed").len() >= 10
        });
        assert_eq!(
            delivered_ids(&lines),
            ["A-1", "A-2", "A-3", "A-4", "A-5"],
            "{mode}"
        );
        let malformed: HashSet<(i64, i64)> = events(&lines, "malformed")
            .iter()
            .map(|m| {
                (
                    m["partition"].as_i64().unwrap(),
                    m["offset"].as_i64().unwrap(),
                )
            })
            .collect();
        assert_eq!(malformed, bad_positions, "{mode}");
        assert!(events(&lines, "malformed")
            .iter()
            .all(|m| !m["error"].as_str().unwrap().is_empty()));
        let s = summary(&lines);
        assert_eq!(
            (s["received"].as_u64(), s["malformed"].as_u64()),
            (Some(10), Some(5)),
            "{mode}"
        );
    }
}

#[test]
fn text_format_prints_a_line_per_message_a_report_and_warnings_on_stderr() {
    let topic = create_topic("consumer-text", 3);
    let bs = bootstrap();
    let m1 = message("producer-1", 1, Some(&[("producer-1", 1)]), 1);
    produce_raw(
        &topic,
        &[(Some(0), "producer-1", &m1), (Some(0), "x", b"garbage")],
    );
    let mut c = live(&[
        &topic,
        "--bootstrap",
        &bs,
        "--group",
        &group(),
        "--from-beginning",
    ]);
    // The garbage record comes last: its warning means both records were read.
    c.wait_stderr("partition 0 offset 1", TIMEOUT);
    let out = c.terminate(TIMEOUT);
    out.assert_success();
    let stdout = out.stdout.join("\n");
    let first = out.stdout.first().map(String::as_str).unwrap_or_default();
    assert!(
        first.contains("producer-1#1") && first.contains("producer-1 says 1"),
        "{stdout}"
    );
    assert!(
        stdout.contains("summary") && stdout.contains("malformed"),
        "{stdout}"
    );
    assert!(!stdout.contains("garbage"), "{stdout}");
}

#[test]
fn a_consumer_started_right_after_its_topic_is_created_waits_for_the_leaders() {
    // For a moment after its creation is accepted, a topic is unknown to the broker, then its
    // partitions have no leader (with 100 partitions, in most rounds on the test broker); a
    // consumer started then waits for them instead of failing. Each mode places itself
    // differently: watermarks; committed offsets, then watermarks; a group subscription.
    let bs = bootstrap();
    let modes: [&[&str]; 3] = [&["--from-beginning"], &["--delivery", "causal"], &[]];
    for round in 0..modes.len() {
        let topic = common::unique_topic("cons-fresh");
        assert!(common::request_topic(&topic, 100, 1, &[]));
        let g = group();
        let mode = modes[round % modes.len()];
        let args = json_args(&topic, &bs, &g, &[mode, &["--idle-timeout", "1"]].concat());
        let out = common::run(BIN, &args, None, TIMEOUT);
        assert!(
            out.success(),
            "round {round} {mode:?}: {:?}\n{}",
            out.status,
            out.stderr
        );
        assert_eq!(summary(&out.json_lines())["received"], 0, "{}", out.stdout);
        common::delete_topic(&topic);
    }
}

#[test]
fn a_missing_topic_is_one_line_saying_how_to_create_it() {
    let topic = common::unique_topic("cons-missing");
    let bs = bootstrap();
    let g = group();
    for mode in [&["--from-beginning"][..], &[]] {
        let out = common::run(BIN, &json_args(&topic, &bs, &g, mode), None, TIMEOUT);
        assert_eq!(
            out.status.and_then(|s| s.code()),
            Some(1),
            "{mode:?}: {out:?}"
        );
        assert_eq!(
            out.stderr.trim(),
            format!(
                "kafka-consumer: error: reading topic '{topic}' from Kafka at {bs}: topic \
                 '{topic}' does not exist and is not created on first use: create it with \
                 kafka-producer --create-topic N {topic} (N partitions)"
            ),
            "{mode:?}"
        );
        assert_eq!(summary(&out.json_lines())["received"], 0);
    }
}

#[test]
fn bad_command_lines_fail_fast_with_one_line_errors() {
    let cases: [&[&str]; 4] = [
        &["t", "--no-such-flag"],
        &["t", "--delivery", "sideways"],
        &["t", "--buffer-size", "-5"],
        &["t", "--buffer-size", "0"],
    ];
    for args in cases {
        let started = Instant::now();
        let out = common::run(BIN, args, None, Duration::from_secs(30));
        assert!(
            !out.timed_out && !out.success(),
            "{args:?} should fail: {out:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
        assert_eq!(out.stderr.lines().count(), 1, "{args:?}: {}", out.stderr);
        assert!(
            out.stderr
                .lines()
                .next()
                .is_some_and(|l| l.starts_with("kafka-consumer: error:")),
            "{args:?}: {}",
            out.stderr
        );
    }
    // Unreachable broker: bounded, one clear line, the summary still printed.
    let started = Instant::now();
    let out = common::run(
        BIN,
        &[
            "t",
            "--bootstrap",
            "127.0.0.1:1",
            "--format",
            "json",
            "-X",
            "sasl.password=hunter2-secret",
        ],
        None,
        Duration::from_secs(60),
    );
    assert!(!out.timed_out && !out.success(), "{out:?}");
    assert!(started.elapsed() < Duration::from_secs(30));
    let errors: Vec<&str> = out.stderr.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(errors.len(), 1, "{}", out.stderr);
    assert!(errors[0].contains("127.0.0.1:1"), "{}", errors[0]);
    assert_eq!(out.json_lines().last().unwrap()["event"], "summary");
    assert!(!out.stderr.contains("hunter2") && !out.stdout.contains("hunter2"));
    let help = common::run(BIN, &["--help"], None, Duration::from_secs(30));
    assert!(
        help.success() && help.stdout.contains("--delivery") && help.stdout.contains("Examples")
    );
}

#[test]
fn malformed_ntp_servers_and_out_of_range_numbers_are_usage_errors() {
    for (args, mention) in [
        (
            &["--enable-ntp", "--ntp-server", "999.1.1.1:99999"][..],
            "invalid value '999.1.1.1:99999' for '--ntp-server <HOST[:PORT]>': port 99999 is not in 1..=65535",
        ),
        (&["--ntp-server", "ntp host"][..], "'ntp host' is not a valid host name"),
        (&["--causal-timeout", "0"][..], "'0' is not a whole number of milliseconds from 1"),
        (&["--max-skew-ms", "-1"][..], "'-1' is not a non-negative number of milliseconds"),
        (&["--max-skew-ms", "nan"][..], "'nan' is not a non-negative number of milliseconds"),
        (&["--idle-timeout", "0"][..], "'0' is not a positive number of seconds"),
    ] {
        let mut all = vec!["t"];
        all.extend_from_slice(args);
        let out = common::run(BIN, &all, None, Duration::from_secs(30));
        assert_eq!(out.status.and_then(|s| s.code()), Some(2), "{all:?}: {out:?}");
        let err = out.stderr.trim();
        assert_eq!(err.lines().count(), 1, "{all:?}: {err}");
        assert!(err.starts_with("kafka-consumer: error: "), "{all:?}: {err}");
        assert!(err.contains(mention), "{all:?}: {err}");
    }
}

#[test]
fn bad_configuration_exits_2_by_flag_config_file_or_kafka_property() {
    // Refused before any connection: the bootstrap address is never used.
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    };
    let (zero, unknown, broken, bad_kafka) = (
        file("zero.toml", "buffer_size = 0\n"),
        file("unknown.toml", "no_such_key = 1\n"),
        file("broken.toml", "buffer_size = \n"),
        file("kafka.toml", "[kafka]\n\"no.such.property\" = \"1\"\n"),
    );
    let missing = dir.path().join("missing.toml");
    let missing = missing.to_str().unwrap();
    for (args, mention) in [
        (vec!["--buffer-size", "0"], "--buffer-size"),
        (vec!["--config", &zero], "buffer_size"),
        (vec!["--config", &unknown], "no_such_key"),
        (vec!["--config", &broken], "buffer_size"),
        (vec!["--config", missing], "cannot read config file"),
        (vec!["-X", "no.such.property=1"], "no.such.property"),
        (vec!["--config", &bad_kafka], "no.such.property"),
        (vec!["-X", "=1"], "invalid Kafka property"),
        (
            vec!["--from-beginning", "-X", "fetch.wait.max.ms=-1"],
            "fetch.wait.max.ms",
        ),
    ] {
        let mut all = vec!["t", "--bootstrap", "127.0.0.1:1", "--format", "json"];
        all.extend_from_slice(&args);
        let out = common::run(BIN, &all, None, Duration::from_secs(30));
        assert_eq!(
            out.status.and_then(|s| s.code()),
            Some(2),
            "{args:?}: {out:?}"
        );
        let err = out.stderr.trim();
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.starts_with("kafka-consumer: error: "),
            "{args:?}: {err}"
        );
        assert!(err.contains(mention), "{args:?}: {err}");
    }
}

#[test]
fn a_prototype_config_with_logical_clock_enabled_warns_and_false_is_refused() {
    let topic = create_topic("cons-retired-key", 1);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("prototype.toml");
    let bs = common::bootstrap();
    let g = group();
    let args = |p: &str| {
        vec![
            topic.clone(),
            "--bootstrap".into(),
            bs.clone(),
            "--group".into(),
            g.clone(),
            "--config".into(),
            p.to_string(),
            "--format".into(),
            "json".into(),
            "--idle-timeout".into(),
            "1".into(),
        ]
    };
    std::fs::write(&path, "logical_clock_enabled = true\nbuffer_size = 10\n").unwrap();
    let a = args(path.to_str().unwrap());
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let out = common::run(BIN, &a, None, TIMEOUT);
    out.assert_success();
    assert!(
        out.stderr.contains(&format!(
            "kafka-consumer: warning: {}: logical_clock_enabled is deprecated and ignored",
            path.display()
        )),
        "{}",
        out.stderr
    );
    std::fs::write(&path, "logical_clock_enabled = false\n").unwrap();
    let out = common::run(BIN, &a, None, TIMEOUT);
    assert_eq!(out.status.and_then(|s| s.code()), Some(2), "{out:?}");
    assert!(
        out.stderr.contains(&format!(
            "kafka-consumer: error: {}: logical_clock_enabled: false is not supported",
            path.display()
        )),
        "{}",
        out.stderr
    );
}

#[test]
fn round_trip_for_each_clock_type_shows_what_the_producer_sent() {
    let topic = create_topic("consumer-roundtrip", 3);
    let bs = bootstrap();
    let producer = env!("CARGO_BIN_EXE_kafka-producer");
    let mut sent: HashMap<String, String> = HashMap::new(); // id -> clock type
    for clock in ["physical", "logical", "vector", "hybrid"] {
        let node = format!("rt-{clock}");
        let input = format!("first {clock}\nsecond {clock}\n");
        let out = common::run(
            producer,
            &[
                &topic,
                "--bootstrap",
                &bs,
                "--node-id",
                &node,
                "--clock-type",
                clock,
                "--no-state",
                "--format",
                "json",
            ],
            Some(input.as_bytes()),
            TIMEOUT,
        );
        out.assert_success();
        let delivered = events(&out.json_lines(), "delivered").len();
        assert_eq!(delivered, 2, "{}", out.stdout);
        for ev in out.json_lines() {
            if ev["event"] == "delivered" {
                sent.insert(ev["id"].as_str().unwrap().to_string(), clock.to_string());
            }
        }
    }
    // The consumer's own clock disciplined by chronyd: arrival times only, nothing else changes.
    let ntp = common::ntp_server();
    let (lines, _) = run_consumer_until(
        sent.len(),
        &json_args(
            &topic,
            &bs,
            &group(),
            &[
                "--from-beginning",
                "--enable-ntp",
                "--ntp-server",
                &ntp,
                "--analyze-ordering",
            ],
        ),
    );
    let got = events(&lines, "deliver");
    assert_eq!(got.len(), sent.len(), "{lines:?}");
    for d in got {
        let m = &d["message"];
        let id = m["id"].as_str().unwrap();
        let clock = &sent[id];
        let ts = &m["timestamp"];
        assert_eq!(ts["clock_type"], clock.as_str(), "{m}");
        assert_eq!(ts["node_id"], format!("rt-{clock}"));
        assert!(
            m["content"].as_str().unwrap().ends_with(clock.as_str()),
            "{m}"
        );
        assert!(m["seq"].as_u64().is_some_and(|s| s == 1 || s == 2), "{m}");
        match clock.as_str() {
            "vector" => assert!(ts["vector_time"].is_object(), "{m}"),
            "hybrid" => assert!(ts["hybrid_time"]["wall_ms"].is_u64(), "{m}"),
            _ => {}
        }
    }
    assert_eq!(summary(&lines)["malformed"], 0);
}

#[test]
fn killed_with_sigkill_and_restarted_delivers_everything_at_least_once() {
    let topic = create_topic("consumer-sigkill", 3);
    let bs = bootstrap();
    let g = group();
    const N: u64 = 2000;
    let (stamps, positions) = write_b_before_a(&topic, N);

    // Run 1 (no committed offsets yet: starts at the beginning), killed as soon as it has
    // delivered something: whatever it had committed by then (possibly nothing) is where run 2
    // resumes.
    let mut run1 = live(&json_args(&topic, &bs, &g, &["--delivery", "causal"]));
    run1.wait_events("50 deliveries", TIMEOUT, |l| delivered_ids(l).len() >= 50);
    let lines1 = run1.kill9().events();
    assert!(
        lines1.iter().all(|l| l["event"] != "summary"),
        "SIGKILL leaves no summary"
    );
    let ids1 = delivered_ids(&lines1);
    assert_causal(&ids1, &stamps);
    let commits = committed(&g, &topic, 3);

    // Run 2 runs until every message has been delivered by one run or the other.
    let run2 = live(&json_args(&topic, &bs, &g, &["--delivery", "causal"]));
    let (run2, _) = stop_when(run2, "every message delivered by run 1 or 2", |l| {
        let all: HashSet<String> = ids1.iter().cloned().chain(delivered_ids(l)).collect();
        all.len() == stamps.len()
    });
    let ids2 = delivered_ids(&run2);
    assert_causal(&ids2, &stamps);
    let first: HashSet<&String> = ids1.iter().collect();
    let all: HashSet<&String> = ids1.iter().chain(ids2.iter()).collect();
    let lost: Vec<&String> = stamps.keys().filter(|k| !all.contains(k)).collect();
    let duplicated = ids2.iter().filter(|id| first.contains(id)).count();
    assert!(
        lost.is_empty(),
        "sent {}, delivered {} + {}, duplicated {duplicated}, lost {}: {lost:?}",
        2 * N,
        ids1.len(),
        ids2.len(),
        lost.len()
    );
    for id in &ids2 {
        let (p, o) = positions[id];
        assert!(
            o >= commits.get(&p).copied().unwrap_or(0),
            "{id} at {p}/{o} delivered again although below the last commit {commits:?}"
        );
    }
    assert_eq!(summary(&run2)["violations"]["released_early"], 0);
    eprintln!(
        "SIGKILL: sent {}, run 1 delivered {} (commits {commits:?}), run 2 delivered {}, duplicated {duplicated}, lost 0",
        2 * N,
        ids1.len(),
        ids2.len()
    );
}

#[test]
fn skewed_producer_is_flagged_and_an_ntp_corrected_one_is_not() {
    let topic = create_topic("consumer-skew", 3);
    let bs = bootstrap();
    let ntp = common::ntp_server();
    let producer = env!("CARGO_BIN_EXE_kafka-producer");
    // Node state persists between the invocations of one node (seq and clocks continue).
    let state = tempfile::tempdir().expect("state dir");
    let state_dir = state.path().to_str().expect("utf-8 path").to_string();
    let send = |node: &str, extra: &[&str], text: &str| {
        let mut args = vec![
            topic.as_str(),
            "--bootstrap",
            &bs,
            "--node-id",
            node,
            "--clock-type",
            "vector",
            "--state-dir",
            &state_dir,
            "--observe",
        ];
        args.extend_from_slice(extra);
        args.push(text);
        common::run(producer, &args, None, TIMEOUT).assert_success();
    };
    // A causal chain: fast (30 s ahead, so its successors are stamped "earlier" whatever the
    // scheduling) -> honest -> fast -> honest; then a node 250 ms ahead but disciplined by chronyd.
    send("fast", &["--simulate-skew", "30000"], "f1");
    send("honest", &[], "h1");
    send("fast", &["--simulate-skew", "30000"], "f2");
    send("honest", &[], "h2");
    // The issue's figure: a node 250 ms ahead, not disciplined, answering h2.
    send("ahead", &["--simulate-skew", "250"], "a1");
    send(
        "synced",
        &[
            "--simulate-skew",
            "250",
            "--enable-ntp",
            "--ntp-server",
            &ntp,
        ],
        "s1",
    );
    send(
        "synced",
        &[
            "--simulate-skew",
            "250",
            "--enable-ntp",
            "--ntp-server",
            &ntp,
        ],
        "s2",
    );

    let (lines, _) = run_consumer_until(
        7,
        &json_args(
            &topic,
            &bs,
            &group(),
            &[
                "--from-beginning",
                "--analyze-ordering",
                "--delivery",
                "causal",
            ],
        ),
    );
    assert_eq!(delivered_ids(&lines).len(), 7, "{lines:?}");
    let kinds = |kind: &str| -> Vec<String> {
        events(&lines, "violation")
            .iter()
            .filter(|v| v["kind"] == kind)
            .map(|v| v["node"].as_str().unwrap().to_string())
            .collect()
    };
    // Every successor of the fast node's messages looks "earlier" than its cause; the fast node
    // itself never does.
    let pvc = kinds("physical_vs_causal");
    assert!(
        pvc.contains(&"honest".to_string()) && !pvc.contains(&"fast".to_string()),
        "{pvc:?}"
    );
    let mut warned = kinds("skew_threshold");
    warned.sort();
    assert_eq!(warned, ["ahead", "fast"], "{lines:?}");
    let nodes = &summary(&lines)["nodes"];
    assert!(
        nodes["fast"]["offset_ms"]
            .as_f64()
            .is_some_and(|o| o > 20_000.0),
        "{nodes}"
    );
    assert!(
        nodes["ahead"]["offset_ms"]
            .as_f64()
            .is_some_and(|o| (o - 250.0).abs() < 10.0),
        "{nodes}"
    );
    assert!(
        nodes["synced"]["offset_ms"]
            .as_f64()
            .is_some_and(|o| o.abs() < 100.0),
        "{nodes}"
    );
}
