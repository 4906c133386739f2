//! Issue 7, "broker frozen": the shared test broker is stopped with SIGSTOP for 10 s and resumed
//! with SIGCONT while a producer sends 20 000 messages and a consumer reads them. Every message is
//! delivered exactly once (counted by id), the producer exits 0.
//!
//! This is the only test of this binary: freezing the shared broker must not overlap with other
//! tests of the same binary (cargo runs test binaries one after another).
//!
//! A freeze of 10 s outlasts Apache Kafka's `broker.session.timeout.ms` (9 s): on thawing, the
//! controller may fence its own broker before the broker's next heartbeat arrives, and the
//! partitions are leaderless until the broker is unfenced and the leaders are elected again. How
//! long that takes depends on the machine's load. A user who expects such outages gives the
//! producer a delivery timeout that outlasts them, and so does this test (`message.timeout.ms`
//! 120 s instead of the tool's 20 s): what it checks is that the retries across the freeze lose
//! and duplicate nothing, not the default timeout.

mod common;
mod reliability_support;

use reliability_support::*;
use std::collections::HashSet;
use std::io::Write;
use std::time::{Duration, Instant};

const TOTAL: usize = 20_000;
/// Lines written before the freeze; the rest is written while the broker is frozen.
const BEFORE: usize = 5_000;
const FREEZE: Duration = Duration::from_secs(10);

#[test]
fn broker_frozen_for_10s_while_20000_messages_are_sent_loses_and_duplicates_nothing() {
    let bootstrap = common::bootstrap();
    let pid = broker_pid();
    let topic = common::create_topic("rel-freeze", 3);
    let node = unique_node("freeze");
    let group = unique_node("freeze-group");

    // The consumer reads throughout, so it lives through the freeze too.
    let mut consumer = Watched::spawn(
        "kafka-consumer",
        CONSUMER,
        &[
            &topic,
            "--bootstrap",
            &bootstrap,
            "--group",
            &group,
            "--from-beginning",
            "--format",
            "json",
            "--idle-timeout",
            "40",
        ],
    );
    let mut producer = Watched::spawn_with(
        "kafka-producer",
        PRODUCER,
        &[
            &topic,
            "--bootstrap",
            &bootstrap,
            "--node-id",
            &node,
            "--clock-type",
            "vector",
            "--no-state",
            "--format",
            "json",
            "-X",
            "message.timeout.ms=120000",
        ],
        true,
        &[],
    );
    for i in 0..BEFORE {
        producer.write_line(&format!("freeze-{i}"));
    }
    // Mid-stream: the producer has delivered some, and the consumer has seen some.
    producer.wait_stdout("\"delivered\"", 1_000, Duration::from_secs(120));
    consumer.wait_stdout("\"deliver\"", 100, Duration::from_secs(120));

    let frozen_at = Instant::now();
    let delivered_before_freeze = producer.count_stdout("\"delivered\"");
    let consumed_before_freeze = consumer.count_stdout("\"deliver\"");
    let freeze = FrozenBroker::freeze(pid);
    // The rest of the stream is handed to the producer while the broker cannot answer. Written
    // from a thread, so a blocked pipe can never keep the broker frozen.
    let mut stdin = producer.take_stdin();
    let writer = std::thread::spawn(move || {
        for i in BEFORE..TOTAL {
            writeln!(stdin, "freeze-{i}").expect("producer stdin");
        }
        drop(stdin);
    });
    while frozen_at.elapsed() < FREEZE {
        std::thread::sleep(Duration::from_millis(100));
    }
    let delivered_while_frozen = producer.count_stdout("\"delivered\"") - delivered_before_freeze;
    freeze.thaw();
    writer.join().expect("stdin writer");

    let p = producer.wait(Duration::from_secs(180));
    let c = consumer.wait(Duration::from_secs(240));
    assert!(
        delivered_before_freeze < TOTAL,
        "the freeze did not happen mid-stream: {delivered_before_freeze} of {TOTAL} delivered before it"
    );
    let figures = format!(
        "{delivered_before_freeze} delivered before the freeze, {delivered_while_frozen} during \
         it, {consumed_before_freeze} consumed before it"
    );
    assert_exactly_once("broker frozen 10 s", TOTAL, &p, &c, &figures);

    // And in the log itself: idempotence wrote every message once, across the retries.
    let records = common::read_all(&topic);
    let in_log: Vec<String> = records
        .iter()
        .map(|r| r.json()["id"].as_str().unwrap_or_default().to_string())
        .collect();
    let in_log_set: HashSet<&String> = in_log.iter().collect();
    assert_eq!(
        (in_log.len(), in_log_set.len()),
        (TOTAL, TOTAL),
        "records in the topic (total, distinct) after the freeze: {figures}"
    );
}
