//! The three-node Apache Kafka cluster of docker/docker-compose.kafka.yml, booted from the jars by
//! `scripts/testenv.sh run --brokers 3` with the compose file's own configuration (only addresses
//! mapped to loopback): the topic `time-sync` created as the compose file's `kafka-init` creates
//! it (3 partitions, replication factor 3) has every partition on all three nodes and in sync, and
//! kafka-timesync's producer and consumer write and read through it.
//!
//! Run by scripts/test.sh against the cluster (`test = false` in Cargo.toml: not against one node).

mod cluster_support;
mod common;
mod reliability_support;

use cluster_support::*;
use reliability_support::*;
use std::collections::BTreeSet;

#[test]
fn time_sync_is_replicated_on_all_three_nodes_and_carries_messages() {
    let cluster = Cluster::from_env();
    // kafka-init: --create --if-not-exists --topic time-sync --partitions 3 --replication-factor 3
    cluster.create_topic("time-sync", 3, 3);
    let parts = cluster.wait_in_sync("time-sync", 3, 3);
    let all: BTreeSet<i32> = cluster.nodes.iter().copied().collect();
    for p in &parts {
        let replicas: BTreeSet<i32> = p.replicas.iter().copied().collect();
        assert_eq!(
            replicas, all,
            "partition {} not on every node: {p:?}",
            p.partition
        );
    }
    let leaders: BTreeSet<i32> = parts.iter().map(|p| p.leader).collect();
    eprintln!("time-sync: {parts:?} (leaders {leaders:?})");

    // Three vector-clock nodes write through the cluster; a causal consumer reads them back.
    let mut sent = BTreeSet::new();
    for node in ["cluster-A", "cluster-B", "cluster-C"] {
        for i in 0..3 {
            let out = common::run(
                PRODUCER,
                &[
                    "time-sync",
                    &format!("{node} says {i}"),
                    "--bootstrap",
                    &cluster.bootstrap,
                    "--node-id",
                    &unique_node(node),
                    "--clock-type",
                    "vector",
                    "--no-state",
                    "--format",
                    "json",
                ],
                None,
                common::TIMEOUT,
            );
            out.assert_success();
            let delivered: Vec<_> = out
                .json_lines()
                .into_iter()
                .filter(|e| e["event"] == "delivered")
                .collect();
            assert_eq!(delivered.len(), 1, "{}", out.stdout);
            sent.insert(delivered[0]["id"].as_str().expect("id").to_string());
        }
    }
    let out = common::run(
        CONSUMER,
        &[
            "time-sync",
            "--bootstrap",
            &cluster.bootstrap,
            "--group",
            &unique_node("cluster-readers"),
            "--from-beginning",
            "--delivery",
            "causal",
            "--format",
            "json",
            "--max-messages",
            &sent.len().to_string(),
        ],
        None,
        common::TIMEOUT,
    );
    out.assert_success();
    let d = Deliveries::from_events(&out.json_lines());
    let got: BTreeSet<String> = d.by_id.keys().cloned().collect();
    assert_eq!(
        got, sent,
        "the consumer read other messages than were acknowledged"
    );
}

#[test]
fn a_node_id_goes_to_the_partition_the_default_partitioner_picks() {
    // The failover tests pick node ids by partition; this checks the rule on the real cluster.
    let cluster = Cluster::from_env();
    let topic = common::unique_topic("cluster-partitioner");
    cluster.create_topic(&topic, 3, 3);
    for partition in 0..3 {
        let node = node_on_partition(&unique_node("part"), partition, 3);
        let out = common::run(
            PRODUCER,
            &[
                &topic,
                "x",
                "--bootstrap",
                &cluster.bootstrap,
                "--node-id",
                &node,
                "--no-state",
                "--format",
                "json",
            ],
            None,
            common::TIMEOUT,
        );
        out.assert_success();
        let delivered = out
            .json_lines()
            .into_iter()
            .find(|e| e["event"] == "delivered")
            .unwrap_or_else(|| panic!("no delivered event: {}", out.stdout));
        assert_eq!(
            delivered["partition"], partition,
            "node id {node}: {delivered}"
        );
    }
}

#[test]
fn create_topic_takes_the_clusters_default_replication_factor() {
    // The compose file sets default.replication.factor=3: a topic made by `--create-topic`
    // without `--replication-factor` is replicated on all three nodes, like kafka-init's.
    let cluster = Cluster::from_env();
    let topic = common::unique_topic("cluster-created");
    let out = common::run(
        PRODUCER,
        &[
            &topic,
            "first",
            "--bootstrap",
            &cluster.bootstrap,
            "--create-topic",
            "2",
            "--no-state",
        ],
        None,
        common::TIMEOUT,
    );
    out.assert_success();
    cluster.wait_in_sync(&topic, 2, 3);
}
