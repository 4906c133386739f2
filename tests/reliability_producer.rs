//! Issue 7, "producer killed": a producer is SIGKILLed mid-stream twice and restarted with the
//! same node id and state directory. Across the three runs, seq, Lamport, vector and hybrid
//! clocks continue exactly in the topic (no gap, never backwards: a restart continues from the
//! node's last record), and a consumer reports no FIFO violation.
//!
//! Issue 13: after such a kill and restart, a causal consumer delivers every message at once
//! (`release: ready`), with no `fifo_gap`.

mod common;
mod reliability_support;

use reliability_support::*;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Delivered messages per run before it is killed.
const PER_RUN: usize = 300;

/// Feeds numbered lines to a producer's stdin every 2 ms until stopped or the pipe breaks.
fn pace(
    mut stdin: std::process::ChildStdin,
    prefix: String,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let mut n = 0;
        while !stop.load(Ordering::SeqCst) {
            if writeln!(stdin, "{prefix}-{n}").is_err() {
                break;
            }
            n += 1;
            std::thread::sleep(Duration::from_millis(2));
        }
        n
    })
}

fn kill_and_restart(clock_type: &str) {
    let bootstrap = common::bootstrap();
    let topic = common::create_topic(&format!("rel-pkill-{clock_type}"), 3);
    let node = unique_node(&format!("pkill-{clock_type}"));
    let state = tempfile::tempdir().expect("state dir");
    let state_dir = state.path().to_str().expect("utf-8 path").to_string();
    let mut reported = Vec::new();
    let mut written = 0;
    for run in 1..=3 {
        let mut p = Watched::spawn_with(
            &format!("kafka-producer run {run}"),
            PRODUCER,
            &[
                &topic,
                "--bootstrap",
                &bootstrap,
                "--node-id",
                &node,
                "--clock-type",
                clock_type,
                "--state-dir",
                &state_dir,
                "--format",
                "json",
            ],
            true,
            &[],
        );
        let stop = Arc::new(AtomicBool::new(false));
        let writer = pace(p.take_stdin(), format!("run{run}"), Arc::clone(&stop));
        p.wait_stdout("\"delivered\"", PER_RUN, Duration::from_secs(120));
        let done = if run < 3 {
            let f = p.kill9();
            stop.store(true, Ordering::SeqCst);
            f
        } else {
            stop.store(true, Ordering::SeqCst);
            // The writer drops stdin when it stops: end of input, clean exit.
            let n = writer.join().expect("writer");
            written += n;
            let f = p.wait(Duration::from_secs(120));
            f.assert_success();
            reported.push(delivered_ids(&f.stdout));
            break;
        };
        written += writer.join().expect("writer");
        assert!(
            !done.stderr.iter().any(|l| l.contains("panicked")),
            "{}",
            done.describe()
        );
        reported.push(delivered_ids(&done.stdout));
    }

    // What is in the topic, in this node's partition order (the key is the node id).
    let records = common::read_all(&topic);
    let mine: Vec<serde_json::Value> = records
        .iter()
        .filter(|r| r.key_str() == node)
        .map(common::TopicRecord::json)
        .collect();
    let partitions: std::collections::BTreeSet<i32> = records.iter().map(|r| r.partition).collect();
    assert_eq!(
        partitions.len(),
        1,
        "one node's messages must stay in one partition: {partitions:?}"
    );
    let in_topic: std::collections::HashSet<&str> =
        mine.iter().filter_map(|m| m["id"].as_str()).collect();
    let per_run: Vec<usize> = reported.iter().map(Vec::len).collect();
    let lost: Vec<&String> = reported
        .iter()
        .flatten()
        .filter(|id| !in_topic.contains(id.as_str()))
        .collect();

    let mut gaps = Vec::new();
    let mut backwards = Vec::new();
    for w in mine.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        let (sa, sb) = (
            a["seq"].as_u64().unwrap_or(0),
            b["seq"].as_u64().unwrap_or(0),
        );
        if sb <= sa {
            backwards.push(format!("seq {sa} -> {sb}"));
        } else if sb != sa + 1 {
            gaps.push((sa, sb));
        }
        let (la, lb) = (
            &a["timestamp"]["logical_time"],
            &b["timestamp"]["logical_time"],
        );
        if lb.as_u64() <= la.as_u64() {
            backwards.push(format!("logical_time {la} -> {lb} at seq {sb}"));
        }
        let (va, vb) = (
            a["timestamp"]["vector_time"][&node].as_u64(),
            b["timestamp"]["vector_time"][&node].as_u64(),
        );
        if va.is_some() && vb <= va {
            backwards.push(format!("vector_time[{node}] {va:?} -> {vb:?} at seq {sb}"));
        }
        let hlc = |m: &serde_json::Value| {
            let h = &m["timestamp"]["hybrid_time"];
            h["wall_ms"].as_u64().zip(h["logical"].as_u64())
        };
        if hlc(a).is_some() && hlc(b) <= hlc(a) {
            backwards.push(format!(
                "hybrid_time {:?} -> {:?} at seq {sb}",
                hlc(a),
                hlc(b)
            ));
        }
    }
    if clock_type == "vector" {
        assert!(
            mine.iter()
                .all(|m| m["timestamp"]["vector_time"][&node].is_u64()),
            "vector_time missing"
        );
    }
    if clock_type == "hybrid" {
        assert!(
            mine.iter()
                .all(|m| m["timestamp"]["hybrid_time"].is_object()),
            "hybrid_time missing"
        );
    }

    // The consumer's view of the same stream, every record of the topic.
    let all_records = records.len().to_string();
    let c = common::run(
        CONSUMER,
        &[
            &topic,
            "--bootstrap",
            &bootstrap,
            "--group",
            &unique_node("pkill-check"),
            "--from-beginning",
            "--analyze-ordering",
            "--format",
            "json",
            "--max-messages",
            &all_records,
        ],
        None,
        Duration::from_secs(180),
    );
    c.assert_success();
    let d = Deliveries::from_events(&c.json_lines());
    let reported_gaps = d.violations_of("fifo_gap");
    let figures = format!(
        "{clock_type}: lines written {written}, delivery reports per run {per_run:?}, in the topic {}, \
         reported-but-missing {}, seq gaps (never sent) {gaps:?}, went backwards {backwards:?}; \
         consumer delivered {}, fifo_gap {reported_gaps}, fifo_reorder {}, duplicate {}",
        mine.len(),
        lost.len(),
        d.events,
        d.violations_of("fifo_reorder"),
        d.violations_of("duplicate"),
    );
    assert!(
        lost.is_empty(),
        "delivered messages missing from the topic: {figures}"
    );
    assert!(backwards.is_empty(), "a clock went backwards: {figures}");
    assert!(gaps.is_empty(), "a restart skipped seqs: {figures}");
    assert_eq!(d.events, mine.len(), "consumer deliveries: {figures}");
    assert_eq!(d.violations_of("fifo_reorder"), 0, "{figures}");
    assert_eq!(d.violations_of("duplicate"), 0, "{figures}");
    assert!(
        d.violations.is_empty(),
        "unexpected violations {:?}: {figures}",
        d.violations.keys().collect::<Vec<_>>()
    );
    eprintln!("producer kill: {figures}");
}

#[test]
fn vector_producer_killed_twice_never_goes_backwards() {
    kill_and_restart("vector");
}

#[test]
fn hybrid_producer_killed_twice_never_goes_backwards() {
    kill_and_restart("hybrid");
}

/// Issue 13: a vector-clock producer is SIGKILLed after ≥ 300 delivery reports and restarted with
/// the same node id and state directory; it sends 200 more and exits. A causal consumer reading
/// the topic from the beginning delivers every message at once, in order, and its analysis finds
/// no gap: the restart continued seq and the vector clock from the node's last record instead of
/// jumping by the write-ahead reservation.
#[test]
fn causal_consumer_delivers_everything_at_once_after_a_producer_kill_and_restart() {
    const AFTER_RESTART: usize = 200;
    let bootstrap = common::bootstrap();
    let topic = common::create_topic("rel-prestart", 3);
    let node = unique_node("prestart");
    let state = tempfile::tempdir().expect("state dir");
    let state_dir = state.path().to_str().expect("utf-8 path").to_string();
    let args = [
        topic.as_str(),
        "--bootstrap",
        &bootstrap,
        "--node-id",
        &node,
        "--clock-type",
        "vector",
        "--state-dir",
        &state_dir,
        "--format",
        "json",
    ];

    let mut first = Watched::spawn_with("kafka-producer run 1", PRODUCER, &args, true, &[]);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = pace(first.take_stdin(), "run1".into(), Arc::clone(&stop));
    first.wait_stdout("\"delivered\"", PER_RUN, Duration::from_secs(120));
    let killed = first.kill9();
    stop.store(true, Ordering::SeqCst);
    writer.join().expect("writer");
    let mut acknowledged = delivered_ids(&killed.stdout);
    assert!(acknowledged.len() >= PER_RUN, "{}", killed.describe());

    let mut second = Watched::spawn_with("kafka-producer run 2", PRODUCER, &args, true, &[]);
    for i in 0..AFTER_RESTART {
        second.write_line(&format!("run2-{i}"));
    }
    second.close_stdin();
    let done = second.wait(Duration::from_secs(120));
    done.assert_success();
    let after = delivered_ids(&done.stdout);
    assert_eq!(after.len(), AFTER_RESTART, "{}", done.describe());
    assert!(
        !done.stderr.iter().any(|l| l.contains("reservation")),
        "the restart fell back to the reservation: {}",
        done.describe()
    );
    acknowledged.extend(after);

    // In the topic: seq and the node's vector entry are 1, 2, …, n without a jump.
    let mine: Vec<serde_json::Value> = common::read_all(&topic)
        .iter()
        .map(common::TopicRecord::json)
        .collect();
    let seqs: Vec<u64> = mine.iter().map(|m| m["seq"].as_u64().unwrap()).collect();
    let own: Vec<u64> = mine
        .iter()
        .map(|m| m["timestamp"]["vector_time"][&node].as_u64().unwrap())
        .collect();
    let expected: Vec<u64> = (1..=mine.len() as u64).collect();
    assert_eq!(seqs, expected, "seq continues exactly across the kill");
    assert_eq!(own, expected, "the vector entry continues exactly");

    // The run ends once every record of the topic is delivered (a duplicate would take a
    // missing message's place: "not delivered" below).
    let all_records = mine.len().to_string();
    let c = common::run(
        CONSUMER,
        &[
            &topic,
            "--bootstrap",
            &bootstrap,
            "--group",
            &unique_node("prestart-check"),
            "--delivery",
            "causal",
            "--causal-timeout",
            "30000",
            "--from-beginning",
            "--analyze-ordering",
            "--format",
            "json",
            "--max-messages",
            &all_records,
        ],
        None,
        Duration::from_secs(180),
    );
    c.assert_success();
    let events = c.json_lines();
    let d = Deliveries::from_events(&events);
    let not_ready: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["event"] == "deliver" && e["release"] != "ready")
        .collect();
    let figures = format!(
        "acknowledged {} ({} before the kill), in the topic {}, consumer delivered {}, \
         not released ready {}, violations {:?}, summary {:?}",
        acknowledged.len(),
        acknowledged.len() - AFTER_RESTART,
        mine.len(),
        d.events,
        not_ready.len(),
        d.violations.keys().collect::<Vec<_>>(),
        d.summary
    );
    assert!(
        d.missing(&acknowledged).is_empty(),
        "acknowledged messages not delivered: {figures}"
    );
    assert_eq!(d.events, mine.len(), "every record delivered: {figures}");
    assert!(not_ready.is_empty(), "{figures}: {not_ready:?}");
    assert_eq!(d.violations_of("fifo_gap"), 0, "{figures}");
    assert!(d.violations.is_empty(), "{figures}");
    eprintln!("producer kill and restart, causal consumer: {figures}");
}
