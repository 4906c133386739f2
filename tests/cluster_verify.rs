//! `kafka-consumer --verify` on the three-node Apache Kafka cluster: the partition leader is
//! SIGKILLed while a producer sends 50 000 messages, then restarted.
//!
//! * acks=all (the producer's default, idempotent): not one acknowledged write is lost or
//!   displaced;
//! * acks=1: loss may or may not happen; the verifier's accounting is exact (every acknowledged
//!   write is delivered, unseen or lost, and every count is backed by as many events).
//!
//! Run by scripts/test.sh under `scripts/testenv.sh run --brokers 3` (which exports
//! `KTS_BOOTSTRAP`, `KTS_BROKER_PIDS` and `KTS_TESTENV_DIR`).

mod common;
mod reliability_support;

use common::{bootstrap, create_replicated_topic, TIMEOUT};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use reliability_support::{signal, Watched, CONSUMER, PRODUCER};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

const MESSAGES: u64 = 50_000;

fn testenv_dir() -> PathBuf {
    PathBuf::from(
        std::env::var("KTS_TESTENV_DIR")
            .expect("KTS_TESTENV_DIR not set: run through scripts/testenv.sh run --brokers 3"),
    )
}

fn metadata_consumer() -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .create()
        .expect("metadata client")
}

/// (leader, replicas, in-sync replicas) of partition 0 of `topic`.
fn partition_state(client: &BaseConsumer, topic: &str) -> Option<(i32, Vec<i32>, Vec<i32>)> {
    let md = client
        .fetch_metadata(Some(topic), Duration::from_secs(5))
        .ok()?;
    let p = md.topics().first()?.partitions().first()?;
    Some((p.leader(), p.replicas().to_vec(), p.isr().to_vec()))
}

/// One leader is killed at a time: the tests of this file take turns.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The pid of node `id` (from `KTS_BROKER_PIDS`, in node-id order).
fn broker_pid(id: i32) -> u32 {
    let pids = std::env::var("KTS_BROKER_PIDS")
        .expect("KTS_BROKER_PIDS not set: run through scripts/testenv.sh run --brokers 3");
    let pids: Vec<u32> = pids
        .split_whitespace()
        .map(|p| p.parse().expect("pid"))
        .collect();
    assert_eq!(pids.len(), 3, "three brokers expected: {pids:?}");
    let current = testenv_dir().join(format!("node-{id}/pid"));
    std::fs::read_to_string(current)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(pids[(id - 1) as usize])
}

/// A node SIGKILLed by the test. [`KilledNode::restart_and_resync`] brings it back; if the test
/// fails before that, dropping it restarts the node so that the cluster stays whole for the
/// other tests.
struct KilledNode {
    id: i32,
    restarted: bool,
}

impl KilledNode {
    fn kill(id: i32) -> Self {
        assert!(signal(broker_pid(id), "KILL"), "SIGKILL node {id}");
        KilledNode {
            id,
            restarted: false,
        }
    }

    fn start(&mut self) {
        self.restarted = true;
        let start = testenv_dir().join(format!("node-{}/start", self.id));
        let status = Command::new(&start).status().expect("run the start script");
        assert!(status.success(), "{} failed", start.display());
    }

    /// Restarts the node and waits until every replica of partition 0 of `topic` is in sync.
    fn restart_and_resync(mut self, client: &BaseConsumer, topic: &str) {
        self.start();
        common::wait_until(
            "the restarted node back in the in-sync replicas",
            Duration::from_secs(180),
            || {
                partition_state(client, topic)
                    .is_some_and(|(_, replicas, isr)| replicas.len() == 3 && isr.len() == 3)
            },
        );
    }
}

impl Drop for KilledNode {
    fn drop(&mut self) {
        if !self.restarted {
            // Never panics here (it may run while a failed test unwinds).
            let start = testenv_dir().join(format!("node-{}/start", self.id));
            if let Err(e) = Command::new(&start).status() {
                eprintln!("restarting node {}: {e}", self.id);
            }
        }
    }
}

struct Run {
    topic: String,
    /// The acknowledgement log.
    acks: Vec<Value>,
    /// The consumer's JSON events.
    events: Vec<Value>,
    /// The `verify` part of its summary.
    verify: Value,
    exit: Option<i32>,
}

/// Sends MESSAGES with `producer_props`, SIGKILLs the partition leader a fifth of the way in,
/// restarts it once the producer is done, and verifies.
fn leader_kill_run(prefix: &str, producer_props: &[&str]) -> Run {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let topic = create_replicated_topic(prefix, 1, 3);
    let client = metadata_consumer();
    let (leader, replicas, _) = partition_state(&client, &topic).expect("metadata");
    assert_eq!(replicas.len(), 3);
    let count = MESSAGES.to_string();
    let bs = bootstrap();
    let mut args = vec![
        topic.as_str(),
        "--bootstrap",
        &bs,
        "--node-id",
        prefix,
        "--no-state",
        "--count",
        &count,
        "--format",
        "json",
        // A failover takes the controller's broker session timeout: the test is about what is
        // kept, so sends are given time to be retried on the new leader.
        "-X",
        "message.timeout.ms=120000",
    ];
    for p in producer_props {
        args.extend(["-X", p]);
    }
    let mut producer = Watched::spawn("producer", PRODUCER, &args);
    producer.wait_stdout("\"event\":\"delivered\"", (MESSAGES / 5) as usize, TIMEOUT);
    let killed = KilledNode::kill(leader);
    let produced = producer.wait(Duration::from_secs(300));
    eprintln!("{prefix}: producer: {}", produced.describe());
    killed.restart_and_resync(&client, &topic);

    let acks: Vec<Value> = produced.events();
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("acks.jsonl");
    let text: Vec<String> = acks.iter().map(Value::to_string).collect();
    std::fs::write(&log, text.join("\n")).expect("write log");
    let logs = log.display().to_string();
    let group = format!("kts-cluster-verify-{}", uuid::Uuid::new_v4());
    let out = common::run(
        CONSUMER,
        &[
            &topic,
            "--bootstrap",
            &bs,
            "--group",
            &group,
            "--from-beginning",
            "--format",
            "json",
            "--idle-timeout",
            "5",
            "--verify",
            &logs,
        ],
        None,
        Duration::from_secs(300),
    );
    assert!(!out.timed_out, "consumer timed out: {}", out.stderr);
    let events = out.json_lines();
    let summary = events.last().expect("output").clone();
    assert_eq!(summary["event"], "summary", "{}", out.stderr);
    eprintln!("{prefix}: verify: {}", summary["verify"]);
    Run {
        topic,
        acks,
        events,
        verify: summary["verify"].clone(),
        exit: out.status.and_then(|s| s.code()),
    }
}

/// Checks the accounting of a run against its events, and returns (delivered, unseen, lost).
fn assert_exact_accounting(run: &Run) -> (u64, u64, u64) {
    let v = &run.verify;
    let n = |k: &str| v[k].as_u64().unwrap_or_else(|| panic!("{k} in {v}"));
    let delivered_acks = run
        .acks
        .iter()
        .filter(|a| a["event"] == "delivered")
        .count() as u64;
    assert!(
        delivered_acks > MESSAGES / 5,
        "{delivered_acks} acknowledged"
    );
    assert_eq!(n("acknowledged"), delivered_acks);
    assert_eq!(n("delivered") + n("unseen") + n("lost"), n("acknowledged"));
    let kind = |k: &str| v["violations"][k].as_u64().expect("kind count");
    assert_eq!(n("lost"), kind("lost_write") + kind("inconsistent_offset"));
    for k in [
        "lost_write",
        "inconsistent_offset",
        "duplicate_write",
        "nonmonotonic_send",
        "aborted_read",
    ] {
        let events = run
            .events
            .iter()
            .filter(|e| e["event"] == "violation" && e["kind"] == k)
            .count() as u64;
        assert_eq!(events, kind(k), "{k}: one event per count");
    }
    // The consumer's deliveries agree with the verifier: every acknowledged write it found is a
    // record it read.
    let read = run
        .events
        .iter()
        .filter(|e| e["event"] == "deliver")
        .count() as u64;
    assert!(
        read >= n("delivered"),
        "{read} read, {} delivered",
        n("delivered")
    );
    let expected_exit = if n("lost") > 0 {
        3
    } else if v["violations"]
        .as_object()
        .expect("violations")
        .values()
        .any(|c| c.as_u64() != Some(0))
    {
        4
    } else if n("unseen") > 0 {
        5
    } else {
        0
    };
    assert_eq!(run.exit, Some(expected_exit), "exit status of {v}");
    assert_matches_an_independent_read(run);
    (n("delivered"), n("unseen"), n("lost"))
}

/// Classifies every acknowledged write from a read of the whole topic made by the test itself,
/// without the verifier: delivered when the record at its partition/offset carries its id, lost
/// when another record is there or the partition goes on past it, unseen otherwise. The
/// verifier's counts must be those, and its loss events must name exactly the lost ids, each
/// once.
fn assert_matches_an_independent_read(run: &Run) {
    let records = common::read_all(&run.topic);
    let at: BTreeMap<(i64, i64), String> = records
        .iter()
        .map(|r| {
            let id = r.json()["id"].as_str().expect("record id").to_string();
            ((i64::from(r.partition), r.offset), id)
        })
        .collect();
    // The keys ascend, so each partition's last insert is its highest offset read.
    let last: BTreeMap<i64, i64> = at.keys().copied().collect();
    let (mut delivered, mut unseen) = (0u64, 0u64);
    let mut lost = BTreeSet::new();
    for a in run.acks.iter().filter(|a| a["event"] == "delivered") {
        let id = a["id"].as_str().expect("ack id");
        let (p, o) = (
            a["partition"].as_i64().expect("partition"),
            a["offset"].as_i64().expect("offset"),
        );
        match at.get(&(p, o)) {
            Some(found) if found == id => delivered += 1,
            Some(_) => assert!(lost.insert(id.to_string()), "{id} acknowledged twice"),
            None if last.get(&p).is_some_and(|&l| l > o) => {
                assert!(lost.insert(id.to_string()), "{id} acknowledged twice")
            }
            None => unseen += 1,
        }
    }
    let v = &run.verify;
    let counts = (&v["delivered"], &v["unseen"], &v["lost"]);
    assert_eq!(
        counts,
        (
            &delivered.into(),
            &unseen.into(),
            &(lost.len() as u64).into()
        ),
        "the verifier against the test's own read of {} records",
        records.len()
    );
    let reported: Vec<String> = run
        .events
        .iter()
        .filter(|e| {
            e["event"] == "violation"
                && (e["kind"] == "lost_write" || e["kind"] == "inconsistent_offset")
        })
        .map(|e| e["ids"][0].as_str().expect("acknowledged id").to_string())
        .collect();
    assert_eq!(reported.len(), lost.len(), "one loss event per lost write");
    assert_eq!(reported.into_iter().collect::<BTreeSet<_>>(), lost);
}

#[test]
fn leader_sigkill_under_acks_all_loses_nothing() {
    let run = leader_kill_run("cluster-verify-all", &[]);
    let (delivered, unseen, lost) = assert_exact_accounting(&run);
    assert_eq!(lost, 0, "acks=all lost acknowledged writes: {}", run.verify);
    assert_eq!(run.verify["violations"]["inconsistent_offset"], 0);
    assert_eq!(unseen, 0, "{}", run.verify);
    assert_eq!(delivered, run.verify["acknowledged"].as_u64().unwrap());
}

#[test]
fn leader_sigkill_under_acks_1_is_accounted_exactly() {
    let run = leader_kill_run(
        "cluster-verify-one",
        &["acks=1", "enable.idempotence=false"],
    );
    let (delivered, unseen, lost) = assert_exact_accounting(&run);
    eprintln!(
        "acks=1 after a leader SIGKILL: {delivered} delivered, {unseen} unseen, {lost} lost ({} lost_write, {} inconsistent_offset, {} duplicate_write)",
        run.verify["violations"]["lost_write"],
        run.verify["violations"]["inconsistent_offset"],
        run.verify["violations"]["duplicate_write"]
    );
}
