//! Issue 7, "producer killed": a producer is SIGKILLed mid-stream twice and restarted with the
//! same node id and state directory. Across the three runs, seq, Lamport, vector and hybrid
//! clocks never go backwards in the topic, and a consumer reports no FIFO violation except gaps
//! of seqs that were never sent.

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
        .map(common::Record::json)
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

    // The consumer's view of the same stream.
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
            "--idle-timeout",
            "8",
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
    assert!(gaps.len() <= 2, "more gaps than crashes: {figures}");
    assert_eq!(d.events, mine.len(), "consumer deliveries: {figures}");
    assert_eq!(d.violations_of("fifo_reorder"), 0, "{figures}");
    assert_eq!(d.violations_of("duplicate"), 0, "{figures}");
    assert_eq!(
        reported_gaps,
        gaps.len(),
        "every fifo_gap is a gap of never-sent seqs: {figures}"
    );
    let other: Vec<&String> = d.violations.keys().filter(|k| *k != "fifo_gap").collect();
    assert!(
        other.is_empty(),
        "unexpected violations {other:?}: {figures}"
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
