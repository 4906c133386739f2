//! Faults on the three-node Apache Kafka cluster (issue 12): while three vector-stamping producers
//! (idempotent, acks=all, each reading the others' messages with `--observe`, so their messages
//! depend on each other across partitions) send 50 000 messages over 3 partitions and a
//! `--delivery causal` consumer reads them,
//!   - the leader of a busy partition is SIGKILLed, then restarted and rejoins;
//!   - all three nodes are restarted one at a time (a rolling restart).
//!
//! Every producer exits 0, every acknowledged message is delivered exactly once, in causal order
//! and without a timeout release, and every partition ends with 3 in-sync replicas.
//!
//! Run by scripts/test.sh against the cluster (`test = false` in Cargo.toml).

mod cluster_support;
mod common;
mod reliability_support;

use cluster_support::*;
use reliability_support::*;
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const MESSAGES: usize = 50_000;
const PARTITIONS: i32 = 3;
/// Lines a producer is fed per second until the fault is over (then the rest at once), so the
/// load spans the whole fault.
const PACE_PER_S: u64 = 100;

/// The faults change the cluster: one test at a time.
fn exclusive() -> std::sync::MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    TURN.lock().unwrap_or_else(|p| p.into_inner())
}

/// Three producers, one per partition, fed from threads.
struct Load {
    nodes: Vec<String>,
    producers: Vec<Watched>,
    writers: Vec<JoinHandle<usize>>,
    hurry: Arc<AtomicBool>,
}

impl Load {
    fn start(cluster: &Cluster, topic: &str, prefix: &str) -> Self {
        let hurry = Arc::new(AtomicBool::new(false));
        let (mut nodes, mut producers, mut writers) = (Vec::new(), Vec::new(), Vec::new());
        for partition in 0..PARTITIONS {
            let share = MESSAGES / PARTITIONS as usize
                + usize::from((partition as usize) < MESSAGES % PARTITIONS as usize);
            let node = node_on_partition(&unique_node(prefix), partition, PARTITIONS);
            let mut p = Watched::spawn_with(
                &node,
                PRODUCER,
                &[
                    topic,
                    "--bootstrap",
                    &cluster.bootstrap,
                    "--node-id",
                    &node,
                    "--clock-type",
                    "vector",
                    "--observe",
                    "--no-state",
                    "--format",
                    "json",
                    // The failover budget: a SIGKILLed leader is fenced after the brokers'
                    // session timeout (9 s) and a new one elected; messages wait for it.
                    "-X",
                    "message.timeout.ms=120000",
                ],
                true,
                &[],
            );
            let mut stdin = p.take_stdin();
            let hurry = Arc::clone(&hurry);
            let tag = node.clone();
            writers.push(std::thread::spawn(move || {
                let started = Instant::now();
                for i in 0..share {
                    if writeln!(stdin, "{tag} line {i}").is_err() {
                        return i;
                    }
                    if !hurry.load(Ordering::SeqCst) {
                        let due = Duration::from_micros(i as u64 * 1_000_000 / PACE_PER_S);
                        if let Some(wait) = due.checked_sub(started.elapsed()) {
                            std::thread::sleep(wait);
                        }
                    }
                }
                share
            }));
            nodes.push(node);
            producers.push(p);
        }
        Self {
            nodes,
            producers,
            writers,
            hurry,
        }
    }

    /// Waits until every producer has had `n` messages acknowledged.
    fn wait_acknowledged(&mut self, n: usize) {
        for p in &mut self.producers {
            p.wait_stdout("\"delivered\"", n, CLUSTER_TIMEOUT);
        }
    }

    /// Feeds the rest at once, closes stdin and waits for every producer to exit.
    fn finish(self) -> Vec<Finished> {
        self.hurry.store(true, Ordering::SeqCst);
        let written: usize = self
            .writers
            .into_iter()
            .map(|w| w.join().expect("writer"))
            .sum();
        assert_eq!(written, MESSAGES, "a producer stopped reading its input");
        self.producers
            .into_iter()
            .map(|mut p| {
                p.close_stdin();
                p.wait(CLUSTER_TIMEOUT)
            })
            .collect()
    }
}

fn causal_consumer(cluster: &Cluster, topic: &str) -> Watched {
    Watched::spawn(
        "kafka-consumer",
        CONSUMER,
        &[
            topic,
            "--bootstrap",
            &cluster.bootstrap,
            "--group",
            &unique_node("failover-readers"),
            "--from-beginning",
            "--delivery",
            "causal",
            // Nothing may be released early: a partition without a leader holds back what
            // depends on it until a new leader serves it.
            "--causal-timeout",
            "600000",
            "--buffer-size",
            "1000000",
            "--format",
            "json",
            "--max-messages",
            &MESSAGES.to_string(),
        ],
    )
}

/// Every message was delivered after everything it depends on (its vector clock) and released
/// as `ready`: per node, delivered counts must cover the vector's other entries, and its own
/// entry must be the next of that node.
fn assert_causal_order(what: &str, nodes: &[String], consumer: &Finished) {
    let mut delivered: BTreeMap<String, u64> = BTreeMap::new();
    let mut releases: BTreeMap<String, usize> = BTreeMap::new();
    for (i, e) in consumer
        .events()
        .iter()
        .filter(|e| e["event"] == "deliver")
        .enumerate()
    {
        *releases
            .entry(e["release"].as_str().unwrap_or("?").to_string())
            .or_default() += 1;
        let ts = &e["message"]["timestamp"];
        let node = ts["node_id"].as_str().expect("node_id").to_string();
        let vector = ts["vector_time"].as_object().expect("vector_time");
        for (n, v) in vector {
            let v = v.as_u64().expect("vector entry");
            let have = delivered.get(n).copied().unwrap_or(0);
            if *n == node {
                assert_eq!(
                    v,
                    have + 1,
                    "{what}: delivery #{i} ({node}) is not its node's next: {e}"
                );
            } else {
                assert!(v <= have, "{what}: delivery #{i} ({node}) before its cause {n}:{v} (delivered {have}): {e}");
            }
        }
        *delivered.entry(node).or_default() += 1;
    }
    for n in nodes {
        assert!(
            delivered.contains_key(n),
            "{what}: nothing of {n} delivered"
        );
    }
    assert_eq!(
        releases.keys().collect::<Vec<_>>(),
        ["ready"],
        "{what}: releases {releases:?}"
    );
}

#[test]
fn leader_killed_under_load_loses_nothing_and_rejoins() {
    let _turn = exclusive();
    let cluster = Cluster::from_env();
    let topic = common::unique_topic("failover-kill");
    cluster.create_topic(&topic, PARTITIONS, 3);
    let consumer = causal_consumer(&cluster, &topic);
    let mut load = Load::start(&cluster, &topic, "kill");
    load.wait_acknowledged(2_000);

    // The leader of the first producer's partition: a busy one.
    let victim = cluster.leader(&topic, 0);
    let killed_at = Instant::now();
    cluster.kill(victim);
    let new_leader = cluster.leader_other_than(&topic, 0, victim);
    let failover = killed_at.elapsed();
    // The load goes on for a while without the node, then the node comes back.
    load.wait_acknowledged(4_000);
    cluster.start(victim);
    let nodes = load.nodes.clone();
    let producers = load.finish();
    let parts = cluster.wait_in_sync(&topic, PARTITIONS as usize, 3);
    let rejoined = killed_at.elapsed();

    let consumer = consumer.wait(CLUSTER_TIMEOUT);
    let refs: Vec<&Finished> = producers.iter().collect();
    assert_exactly_once_from(
        "leader SIGKILL",
        MESSAGES,
        &refs,
        &consumer,
        &format!(
            "node {victim} killed; partition 0 led by {new_leader} after {failover:?}; \
             all replicas in sync {rejoined:?} after the kill: {parts:?}"
        ),
    );
    assert_causal_order("leader SIGKILL", &nodes, &consumer);
}

#[test]
fn rolling_restart_under_load_loses_nothing() {
    let _turn = exclusive();
    let cluster = Cluster::from_env();
    let topic = common::unique_topic("failover-rolling");
    cluster.create_topic(&topic, PARTITIONS, 3);
    let consumer = causal_consumer(&cluster, &topic);
    let mut load = Load::start(&cluster, &topic, "roll");
    load.wait_acknowledged(1_000);
    let started = Instant::now();
    let mut steps = Vec::new();
    for &node in &cluster.nodes.clone() {
        let t = Instant::now();
        cluster.stop(node);
        let stopped = t.elapsed();
        cluster.start(node);
        cluster.wait_in_sync(&topic, PARTITIONS as usize, 3);
        steps.push(format!(
            "node {node}: stopped in {stopped:?}, back in sync after {:?}",
            t.elapsed()
        ));
    }
    let acknowledged_during: usize = load
        .producers
        .iter()
        .map(|p| p.count_stdout("\"delivered\""))
        .sum();
    assert!(
        acknowledged_during < MESSAGES,
        "the load was over before the restarts were: {}",
        steps.join("; ")
    );
    let nodes = load.nodes.clone();
    let producers = load.finish();
    let consumer = consumer.wait(CLUSTER_TIMEOUT);
    let refs: Vec<&Finished> = producers.iter().collect();
    assert_exactly_once_from(
        "rolling restart",
        MESSAGES,
        &refs,
        &consumer,
        &format!(
            "{} in {:?}; {acknowledged_during} acknowledged by the end of the restarts",
            steps.join("; "),
            started.elapsed()
        ),
    );
    assert_causal_order("rolling restart", &nodes, &consumer);
}
