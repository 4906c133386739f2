//! Issue 7, "consumer killed": a causal consumer is SIGKILLed in the middle of a causal backlog
//! and restarted, three times. Over all runs every message is delivered at least once, no run's
//! output violates causal order, and a message is delivered again only if it was at or after its
//! partition's committed offset when the previous run died (the number of such duplicates is
//! reported).
//!
//! The backlog: three nodes A → B → C with happened-before chains (B_i depends on A_i, C_i on B_i;
//! each on its own predecessor), each node in its own partition. All of B's and C's messages are
//! written before the consumer starts; A's are written a third at a time, one third per run, so
//! at every kill the consumer holds B's and C's messages waiting for A's that do not exist yet.

mod common;
mod reliability_support;

use reliability_support::*;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// Messages per node.
const N: u64 = 900;
const NODES: [&str; 3] = ["A", "B", "C"];

/// The vector timestamp of node `k`'s message `i` (A: {A:i}; B: {A:i,B:i}; C: {A:i,B:i,C:i}).
fn vector(k: usize, i: u64) -> Vec<(&'static str, u64)> {
    NODES[..=k].iter().map(|n| (*n, i)).collect()
}

/// A delivered message: (node, seq, partition, offset, vector entries).
#[derive(Debug, Clone)]
struct Got {
    node: String,
    seq: u64,
    partition: i32,
    offset: i64,
    vector: Vec<(String, u64)>,
}

fn delivered(events: &[serde_json::Value]) -> Vec<Got> {
    events
        .iter()
        .filter(|e| e["event"] == "deliver")
        .map(|e| {
            let m = &e["message"];
            Got {
                node: m["timestamp"]["node_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                seq: m["seq"].as_u64().unwrap_or(0),
                partition: e["partition"].as_i64().unwrap_or(-1) as i32,
                offset: e["offset"].as_i64().unwrap_or(-1),
                vector: m["timestamp"]["vector_time"]
                    .as_object()
                    .map(|o| {
                        o.iter()
                            .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                            .collect()
                    })
                    .unwrap_or_default(),
            }
        })
        .collect()
}

#[test]
fn consumer_killed_three_times_mid_causal_backlog_loses_nothing() {
    let bootstrap = common::bootstrap();
    let topic = common::create_topic("rel-ckill", 3);
    let group = unique_node("ckill-group");
    // A run prefix (unique node names per test run are not needed: the topic is unique).
    let write = |k: usize, range: std::ops::RangeInclusive<u64>| {
        let recs: Vec<(i32, &str, Vec<u8>)> = range
            .map(|i| {
                (
                    k as i32,
                    NODES[k],
                    envelope_bytes(NODES[k], i, &vector(k, i), &format!("{}{i}", NODES[k])),
                )
            })
            .collect();
        produce_at(&bootstrap, &[("linger.ms", "5")], &topic, &recs);
    };
    // Successors first: all of C's and B's messages, none of their causes yet.
    write(2, 1..=N);
    write(1, 1..=N);

    let third = N / 3;
    let mut seen: HashSet<(String, u64)> = HashSet::new();
    let mut runs: Vec<String> = Vec::new();
    let mut total_dups = 0usize;
    let mut commits: Vec<i64> = vec![-1; 3];
    for run in 1..=4u64 {
        // The first run starts at the beginning; the others resume from the group's commits.
        let start: &[&str] = if run == 1 { &["--from-beginning"] } else { &[] };
        let c = Watched::spawn(
            &format!("kafka-consumer run {run}"),
            CONSUMER,
            &[
                start,
                &[
                    topic.as_str(),
                    "--bootstrap",
                    &bootstrap,
                    "--group",
                    &group,
                    "--delivery",
                    "causal",
                    "--format",
                    "json",
                    "--buffer-size",
                    "100000",
                    "--causal-timeout",
                    "600000",
                    "--idle-timeout",
                    "600",
                ],
            ]
            .concat(),
        );
        // A's next third (the last run gets nothing new: it must finish what is left).
        if run <= 3 {
            write(0, (run - 1) * third + 1..=run * third);
        }
        // Everything causally complete so far: A, B, C up to `upto`.
        let upto = (run.min(3)) * third;
        let expected: Vec<(String, u64)> = NODES
            .iter()
            .flat_map(|n| (1..=upto).map(move |i| (n.to_string(), i)))
            .collect();
        // Wait until this run has delivered what is deliverable and not yet delivered.
        let before: HashSet<(String, u64)> = seen.clone();
        let todo: Vec<&(String, u64)> = expected.iter().filter(|k| !before.contains(*k)).collect();
        let want = todo.len();
        wait_for(
            &format!("run {run} to deliver its {want} new messages"),
            Duration::from_secs(180),
            || {
                let got: HashSet<(String, u64)> = delivered(&json_events(&c.stdout()))
                    .into_iter()
                    .map(|g| (g.node, g.seq))
                    .collect();
                todo.iter().all(|k| got.contains(*k)).then_some(())
            },
        );
        // Kill once the group has committed something for every partition (a consumer killed
        // before its first commit restarts at the end of the topic, like any Kafka consumer
        // without committed offsets), so that deliveries after that commit are the ones at risk.
        if run <= 3 {
            let mut last = Vec::new();
            wait_for(
                &format!("run {run} to commit on every partition"),
                Duration::from_secs(60),
                || {
                    last = committed_offsets(&bootstrap, &group, &topic, 3);
                    let progressed = last.iter().zip(&commits).all(|(now, before)| now > before);
                    progressed.then_some(())
                },
            );
        }
        let f = if run <= 3 {
            c.kill9()
        } else {
            c.terminate(Duration::from_secs(60))
        };
        let got = delivered(&f.events());

        // Causal order within the run: every entry of a message's vector names a message
        // delivered before it (in this run or an earlier one).
        let mut known = seen.clone();
        for g in &got {
            for (n, v) in &g.vector {
                let need = if *n == g.node {
                    v.saturating_sub(1)
                } else {
                    *v
                };
                assert!(
                    need == 0 || known.contains(&(n.clone(), need)),
                    "run {run}: {}{} delivered before its cause {n}{need}",
                    g.node,
                    g.seq
                );
            }
            known.insert((g.node.clone(), g.seq));
        }
        // Duplicates only at or after the committed offset of the previous run.
        let dups: Vec<&Got> = got
            .iter()
            .filter(|g| seen.contains(&(g.node.clone(), g.seq)))
            .collect();
        for g in &dups {
            let committed = commits[g.partition as usize];
            assert!(
                g.offset >= committed,
                "run {run}: {}{} at {}/{} redelivered although the previous run had committed \
                 offset {committed}",
                g.node,
                g.seq,
                g.partition,
                g.offset
            );
        }
        let mut per_id: HashMap<(String, u64), usize> = HashMap::new();
        for g in &got {
            *per_id.entry((g.node.clone(), g.seq)).or_default() += 1;
        }
        let within = per_id.values().filter(|&&n| n > 1).count();
        assert_eq!(within, 0, "run {run} delivered a message twice");
        total_dups += dups.len();
        runs.push(format!(
            "run {run}: delivered {} ({} again after the last commit {:?}), {}",
            got.len(),
            dups.len(),
            commits,
            if run <= 3 {
                "then SIGKILL"
            } else {
                "then SIGTERM"
            }
        ));
        seen.extend(got.iter().map(|g| (g.node.clone(), g.seq)));
        if run <= 3 {
            commits = committed_offsets(&bootstrap, &group, &topic, 3);
            // Nothing held by the killed run was committed: C's and B's partitions are
            // committed no further than the first message still waiting for A.
            for (k, &c) in commits.iter().enumerate().skip(1) {
                let first_waiting = upto as i64; // offsets are 0-based, seqs 1-based
                assert!(
                    c <= first_waiting,
                    "run {run}: partition {k} committed at {c}, past the held message at offset \
                     {first_waiting} ({}{})",
                    NODES[k],
                    upto + 1
                );
            }
        } else {
            assert!(f.success(), "{}", f.describe());
            let summary = f
                .events()
                .into_iter()
                .find(|e| e["event"] == "summary")
                .expect("summary after SIGTERM");
            assert_eq!(
                summary["buffered"], 0,
                "final run left messages buffered: {summary}"
            );
        }
    }
    let missing: Vec<String> = NODES
        .iter()
        .flat_map(|n| (1..=N).map(move |i| (n.to_string(), i)))
        .filter(|k| !seen.contains(k))
        .map(|(n, i)| format!("{n}{i}"))
        .collect();
    let figures = format!(
        "sent {} ({} per node), delivered at least once {}, lost {}, duplicates {total_dups} (all \
         at or after the last commit); {}",
        3 * N,
        N,
        seen.len(),
        missing.len(),
        runs.join("; ")
    );
    assert!(
        missing.is_empty(),
        "missing {:?}: {figures}",
        &missing[..missing.len().min(10)]
    );
    eprintln!("consumer kill: {figures}");
}

/// Issue 13, "restart cost": a causal consumer delivers and commits 10^5 messages and is
/// SIGKILLed; three more messages are written, the first two following the last of the 10^5.
/// The restarted consumer starts at the commit: it delivers exactly the three new messages, all
/// `ready` (the stored delivery state says their predecessors were delivered), reads none of the
/// 10^5 again, and the time from its start to its first delivery is printed.
#[test]
fn killed_after_100k_committed_messages_restarts_at_the_commit() {
    const N: u64 = 50_000; // per node: A in partition 0, B (each after A's same count) in 1
    let bootstrap = common::bootstrap();
    let topic = common::create_topic("rel-ckill-100k", 3);
    let group = unique_node("ckill100k-group");
    let old: Vec<(i32, &str, Vec<u8>)> = (1..=N)
        .flat_map(|i| {
            [
                (0, "A", envelope_bytes("A", i, &[("A", i)], "a")),
                (1, "B", envelope_bytes("B", i, &[("A", i), ("B", i)], "b")),
            ]
        })
        .collect();
    produce_many_at(&bootstrap, &topic, &old);
    let args = [
        topic.as_str(),
        "--bootstrap",
        &bootstrap,
        "--group",
        &group,
        "--delivery",
        "causal",
        "--format",
        "json",
        "--causal-timeout",
        "600000",
        "--idle-timeout",
        "600",
    ];
    let c = Watched::spawn("kafka-consumer run 1", CONSUMER, &args);
    let n = N as i64;
    wait_for(
        "run 1 to commit all 10^5 messages",
        Duration::from_secs(600),
        || (committed_offsets(&bootstrap, &group, &topic, 3) == [n, n, 0]).then_some(()),
    );
    let run1 = c.kill9();
    let delivered1 = delivered(&run1.events()).len();
    assert_eq!(delivered1, 2 * N as usize, "run 1 delivered everything");

    // C1 follows the last of A and B; A and B go on.
    let new = [
        (
            2,
            "C",
            envelope_bytes("C", 1, &[("A", N), ("B", N), ("C", 1)], "c"),
        ),
        (
            1,
            "B",
            envelope_bytes("B", N + 1, &[("A", N), ("B", N + 1)], "b"),
        ),
        (0, "A", envelope_bytes("A", N + 1, &[("A", N + 1)], "a")),
    ];
    produce_at(&bootstrap, &[], &topic, &new);
    let started = std::time::Instant::now();
    let mut c = Watched::spawn("kafka-consumer run 2", CONSUMER, &args);
    c.wait_stdout("\"event\":\"deliver\"", 1, Duration::from_secs(120));
    let first = started.elapsed();
    c.wait_stdout("\"event\":\"deliver\"", 3, Duration::from_secs(120));
    let run2 = c.terminate(Duration::from_secs(60));
    assert!(run2.success(), "{}", run2.describe());
    let events = run2.events();
    let got: Vec<(String, u64)> = delivered(&events)
        .into_iter()
        .map(|g| (g.node, g.seq))
        .collect();
    let mut sorted = got.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [("A".into(), N + 1), ("B".into(), N + 1), ("C".into(), 1)],
        "run 2 delivers the new messages, none of the old"
    );
    for e in events.iter().filter(|e| e["event"] == "deliver") {
        assert_eq!(e["release"], "ready", "{e}");
    }
    let summary = events
        .iter()
        .find(|e| e["event"] == "summary")
        .expect("summary");
    assert_eq!(
        summary["received"], 3,
        "run 2 read only the new records: {summary}"
    );
    assert_eq!(summary["buffered"], 0, "{summary}");
    assert_eq!(summary["violations"]["released_early"], 0, "{summary}");
    // Without the stored state the fallback would deliver the same three messages `ready`; it
    // warns, so no warning means the state committed with the offsets was restored.
    assert!(
        !run2.stderr.iter().any(|l| l.contains("warning")),
        "{}",
        run2.describe()
    );
    assert_eq!(
        committed_offsets(&bootstrap, &group, &topic, 3),
        [n + 1, n + 1, 1]
    );
    eprintln!(
        "consumer restart after 10^5 committed messages: first new delivery {:.0} ms after the \
         start (process start-up, metadata, committed offsets included); records read again: 0",
        first.as_secs_f64() * 1e3
    );
}

/// Issue 13, "held partitions are paused": B's messages (partition 1) each follow A's of the same
/// count, and A's lie in partition 0 behind 20 000 messages of another node, X. With a causal
/// buffer of 100 messages the reader must stop taking B's records (pause B's partition) while it
/// reads through X's to reach A's: taking them would overflow the buffer and release B's
/// messages early (`buffer-full`). Every message is delivered `ready`, in causal order, none
/// early; the consumer's peak RSS is printed.
#[test]
fn held_partitions_are_paused_so_a_small_buffer_waits_for_causes_behind_a_backlog() {
    const X: u64 = 20_000;
    const N: u64 = 2_000;
    let bootstrap = common::bootstrap();
    let topic = common::create_topic("rel-pause", 3);
    let mut recs: Vec<(i32, &str, Vec<u8>)> = (1..=X)
        .map(|i| (0, "X", envelope_bytes("X", i, &[("X", i)], "x")))
        .collect();
    for i in 1..=N {
        recs.push((0, "A", envelope_bytes("A", i, &[("A", i)], "a")));
        recs.push((1, "B", envelope_bytes("B", i, &[("A", i), ("B", i)], "b")));
    }
    produce_many_at(&bootstrap, &topic, &recs);
    let total = (X + 2 * N).to_string();
    let c = Watched::spawn(
        "kafka-consumer",
        CONSUMER,
        &[
            &topic,
            "--bootstrap",
            &bootstrap,
            "--group",
            &unique_node("pause-group"),
            "--from-beginning",
            "--delivery",
            "causal",
            "--buffer-size",
            "100",
            "--causal-timeout",
            "600000",
            "--format",
            "json",
            "--max-messages",
            &total,
        ],
    )
    .wait(Duration::from_secs(300));
    c.assert_success();
    let events = c.events();
    let got = delivered(&events);
    let not_ready = events
        .iter()
        .filter(|e| e["event"] == "deliver" && e["release"] != "ready")
        .count();
    let summary = events
        .iter()
        .find(|e| e["event"] == "summary")
        .expect("summary");
    let figures = format!(
        "delivered {} of {total}, not ready {not_ready}, released_early {}, peak RSS {} MiB",
        got.len(),
        summary["violations"]["released_early"],
        c.peak_kib / 1024
    );
    assert_eq!(got.len(), (X + 2 * N) as usize, "{figures}");
    assert_eq!(not_ready, 0, "{figures}");
    assert_eq!(summary["violations"]["released_early"], 0, "{figures}");
    // B_i only after A_i.
    let mut a_done = 0;
    for g in &got {
        match g.node.as_str() {
            "A" => a_done = g.seq,
            "B" => assert!(g.seq <= a_done, "B{} before A{}: {figures}", g.seq, g.seq),
            _ => {}
        }
    }
    eprintln!("paused partitions: {figures}");
}
