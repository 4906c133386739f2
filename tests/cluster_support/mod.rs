//! The three-node Apache Kafka cluster of the test environment (`scripts/testenv.sh run
//! --brokers 3`, configured as docker/docker-compose.kafka.yml configures its services): node
//! processes to kill, stop and restart, partition leaders and in-sync replicas from the brokers'
//! metadata, and the partition a node id's messages go to.
//!
//! Only the `tests/cluster_*.rs` targets use it; scripts/test.sh runs them against the cluster.
#![allow(dead_code)]

use kafka_timesync::kafka::ClientSettings;
use rdkafka::consumer::{BaseConsumer, Consumer};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// Generous bound for cluster operations (elections, a node's restart, replicas catching up).
pub const CLUSTER_TIMEOUT: Duration = Duration::from_secs(180);

/// One partition as the cluster's metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionState {
    pub partition: i32,
    /// The leader's node id (-1 while there is none).
    pub leader: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

/// The running cluster.
pub struct Cluster {
    /// All three client listeners.
    pub bootstrap: String,
    dir: PathBuf,
    /// Node ids, ascending.
    pub nodes: Vec<i32>,
}

impl Cluster {
    /// The cluster of the test environment; panics (never skips) unless it has three nodes.
    pub fn from_env() -> Self {
        let var = |name: &str| {
            std::env::var(name).ok().filter(|s| !s.is_empty()).unwrap_or_else(|| {
                panic!("{name} not set: run through `scripts/testenv.sh run --brokers 3` (scripts/test.sh does)")
            })
        };
        let brokers = var("KTS_BROKERS");
        assert_eq!(
            brokers, "3",
            "this test needs the three-node cluster: scripts/testenv.sh run --brokers 3"
        );
        let pids = var("KTS_BROKER_PIDS");
        let nodes = (1..=pids.split_whitespace().count() as i32).collect();
        Self {
            bootstrap: var("KTS_BOOTSTRAP"),
            dir: PathBuf::from(var("KTS_TESTENV_DIR")),
            nodes,
        }
    }

    pub fn settings(&self) -> ClientSettings {
        ClientSettings::new(self.bootstrap.clone())
    }

    fn node_dir(&self, node: i32) -> PathBuf {
        self.dir.join(format!("node-{node}"))
    }

    /// The node's current pid (node-N/pid, rewritten by every restart).
    pub fn pid(&self, node: i32) -> u32 {
        let f = self.node_dir(node).join("pid");
        std::fs::read_to_string(&f)
            .unwrap_or_else(|e| panic!("reading {}: {e}", f.display()))
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()))
    }

    /// True while the node's process exists and is not a zombie.
    pub fn is_running(&self, node: i32) -> bool {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid(node)));
        match stat {
            Ok(s) => s
                .rsplit_once(") ")
                .is_some_and(|(_, rest)| !rest.starts_with('Z')),
            Err(_) => false,
        }
    }

    fn signal_and_wait(&self, node: i32, signal: &str, limit: Duration) {
        let pid = self.pid(node);
        let ok = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill {signal} {pid} (node {node}) failed");
        let deadline = Instant::now() + limit;
        while self.is_running(node) {
            assert!(
                Instant::now() < deadline,
                "node {node} (pid {pid}) still running {limit:?} after {signal}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: the node dies at once, mid-request, without telling anyone.
    pub fn kill(&self, node: i32) {
        self.signal_and_wait(node, "-KILL", Duration::from_secs(30));
    }

    /// SIGTERM: a controlled shutdown (leadership moved away first), as in a rolling restart.
    pub fn stop(&self, node: i32) {
        self.signal_and_wait(node, "-TERM", CLUSTER_TIMEOUT);
    }

    /// Starts a stopped node again with its own configuration and data (node-N/start).
    pub fn start(&self, node: i32) {
        assert!(!self.is_running(node), "node {node} is already running");
        let script = self.node_dir(node).join("start");
        let out = Command::new(&script)
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
        assert!(
            out.status.success(),
            "{} failed: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The node's broker log so far (for failure messages).
    pub fn log_tail(&self, node: i32, lines: usize) -> String {
        let text =
            std::fs::read_to_string(self.node_dir(node).join("broker.log")).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Creates `topic` with `partitions` partitions and `replication` replicas and waits until
    /// every partition has a leader and all its replicas in sync.
    pub fn create_topic(&self, topic: &str, partitions: i32, replication: i32) {
        crate::common::create_named_topic(topic, partitions, replication, &[]);
        self.wait_in_sync(topic, partitions as usize, replication as usize);
    }

    /// The topic's partitions, as the cluster's metadata describes them now.
    pub fn partitions(&self, topic: &str) -> Result<Vec<PartitionState>, String> {
        let consumer: BaseConsumer = self
            .settings()
            .consumer_config(None)
            .create()
            .map_err(|e| e.to_string())?;
        let md = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .map_err(|e| e.to_string())?;
        let t = md
            .topics()
            .iter()
            .find(|t| t.name() == topic)
            .ok_or_else(|| format!("topic {topic} not in metadata"))?;
        if let Some(e) = t.error() {
            return Err(format!("topic {topic}: {e:?}"));
        }
        let mut out: Vec<PartitionState> = t
            .partitions()
            .iter()
            .map(|p| PartitionState {
                partition: p.id(),
                leader: p.leader(),
                replicas: p.replicas().to_vec(),
                isr: p.isr().to_vec(),
            })
            .collect();
        out.sort_by_key(|p| p.partition);
        Ok(out)
    }

    /// Waits until `topic` has `partitions` partitions, each with a leader and `replicas` replicas
    /// all in sync; returns their state.
    pub fn wait_in_sync(
        &self,
        topic: &str,
        partitions: usize,
        replicas: usize,
    ) -> Vec<PartitionState> {
        let deadline = Instant::now() + CLUSTER_TIMEOUT;
        let mut last: Result<Vec<PartitionState>, String> = Err("not asked yet".into());
        loop {
            if let Ok(ps) = &last {
                if ps.len() == partitions
                    && ps.iter().all(|p| {
                        p.leader >= 0 && p.replicas.len() == replicas && p.isr.len() == replicas
                    })
                {
                    return ps.clone();
                }
            }
            assert!(
                Instant::now() < deadline,
                "{topic}: not {partitions} partitions with {replicas} in-sync replicas within \
                 {CLUSTER_TIMEOUT:?}; last seen: {last:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
            last = self.partitions(topic);
        }
    }

    /// The current leader of `topic`'s `partition` (waits for one).
    pub fn leader(&self, topic: &str, partition: i32) -> i32 {
        self.leader_other_than(topic, partition, -1)
    }

    /// Waits until `topic`'s `partition` has a leader other than `node` (after `node` died, the
    /// metadata names it until the controller has fenced it and elected another) and returns it.
    pub fn leader_other_than(&self, topic: &str, partition: i32, node: i32) -> i32 {
        let deadline = Instant::now() + CLUSTER_TIMEOUT;
        loop {
            if let Ok(ps) = self.partitions(topic) {
                if let Some(p) = ps
                    .iter()
                    .find(|p| p.partition == partition && p.leader >= 0 && p.leader != node)
                {
                    return p.leader;
                }
            }
            assert!(
                Instant::now() < deadline,
                "{topic}/{partition} has no leader other than {node} within {CLUSTER_TIMEOUT:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// CRC-32 (IEEE), the hash of librdkafka's default partitioner (`consistent_random`): a keyed
/// message goes to partition `crc32(key) % partitions`.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

/// A node id (`<prefix>-<n>`) whose messages (keyed by the node id) go to `partition` of a topic
/// with `partitions` partitions.
pub fn node_on_partition(prefix: &str, partition: i32, partitions: i32) -> String {
    (0..)
        .map(|n| format!("{prefix}-{n}"))
        .find(|id| crc32(id.as_bytes()) % partitions as u32 == partition as u32)
        .expect("some id lands on every partition")
}
