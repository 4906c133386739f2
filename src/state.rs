//! Per-node clock state persisted across invocations: a cache of what the topic records, and the
//! fallback when the topic cannot be read. Crash-safe without a per-message fsync.
//!
//! The log is the truth: at start-up the producer recovers its exact clocks from its own last
//! record in the topic and only falls back to this file's floors when the broker cannot be read
//! (see `producer::resume`).
//!
//! # Files
//! In the state directory (default [`default_state_dir`]), node `N` owns `<enc(N)>.state.json`
//! (the state) and `<enc(N)>.lock` (an OS advisory lock, `flock`, held while a process uses the
//! node id; the OS releases it when the process dies, even by SIGKILL). `enc` keeps
//! `[A-Za-z0-9_-]` and percent-encodes every other byte, so any node id maps to one safe file
//! name.
//!
//! # Exact values and floors
//! After a clean exit ([`StateStore::save`]) the file holds the exact clocks and no
//! [`RunRecord`]. While a run is going, it holds a [`RunRecord`] (topic, partition and the exact
//! clocks the run started from, written by [`StateStore::begin`]) and *floors*.
//!
//! # Write-ahead reservation
//! Invariant: **every seq, Lamport time, own vector entry and HLC a message may carry is ≤ the
//! value on disk** (the *floor*). Before a message whose seq, Lamport time, own vector entry or
//! HLC exceeds the floor is handed to Kafka, [`StateStore::cover`] writes new floors
//! `value + reservation` (seq/Lamport/own vector entry: [`DEFAULT_RESERVATION`]; HLC:
//! `wall_ms +` [`HLC_RESERVATION_MS`]) and fsyncs them — one fsync per `reservation` messages,
//! not per message. Floors are only used when the topic cannot be read at the next start; then
//! the seqs between the last one sent and the floor are never used (a gap consumers report).
//!
//! Other nodes' vector entries (learned by `--observe`) are not reserved and cost no I/O per
//! message: they are written along with the floors and at exit. Nothing depends on them being
//! durable: every message carries them into the topic, and a restarted `--observe` producer
//! re-learns them all from the topic before its first send.
//!
//! Every write is: write a temp file in the same directory, (fsync it,) rename over the state file
//! (atomic: a reader sees the old or the new state, never a torn one), (fsync the directory).

use crate::clock::{HybridTimestamp, VectorTimestamp};
use fs4::fs_std::FileExt;
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Messages reserved ahead per fsync, for seq, Lamport time and the own vector entry.
pub const DEFAULT_RESERVATION: u64 = 4096;

/// Milliseconds reserved ahead for the HLC wall component. Small, because a restarted node's HLC
/// may run up to this far ahead of its physical clock (receivers bound how far ahead they accept).
pub const HLC_RESERVATION_MS: u64 = 100;

/// Version 2 added `exact` and [`RunRecord`]; a version-1 file counts as floors.
const FORMAT_VERSION: u32 = 2;

/// Errors of the state store. Every `Display` names the file involved.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Another live process holds the node's lock.
    #[error("node id '{node}' is already in use by another running process (lock file {path}); use another --node-id, wait for it to exit, or pass --no-state")]
    Locked {
        /// The node id.
        node: String,
        /// The lock file.
        path: PathBuf,
    },
    /// An I/O error on a state file.
    #[error("state file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The state file exists but cannot be understood.
    #[error("state file {path} is corrupt ({reason}); move it away to start node '{node}' afresh")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The node id.
        node: String,
        /// What is wrong.
        reason: String,
    },
    /// No state directory could be determined.
    #[error("no state directory: set XDG_STATE_HOME or HOME, pass --state-dir DIR, or --no-state")]
    NoStateDir,
}

/// The persisted clocks of one node: exact after a clean exit, floors (≥ every value used) while
/// a run is going or after a crash ([`PersistedClocks::run`] present).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PersistedClocks {
    /// File format version.
    #[serde(default)]
    pub version: u32,
    /// The node these clocks belong to.
    pub node_id: String,
    /// Last seq used (next message gets `seq + 1`).
    pub seq: u64,
    /// Lamport clock value.
    pub lamport: u64,
    /// Vector clock (own entry and what was learned of others).
    #[serde(default)]
    pub vector: VectorTimestamp,
    /// Hybrid logical clock, once one was used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hybrid: Option<HybridTimestamp>,
    /// True when the values are exact (a clean exit, or a node that never ran); false when they
    /// are floors (a run in progress or killed, or a version-1 file).
    #[serde(default)]
    pub exact: bool,
    /// The run that wrote these floors, absent after a clean exit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<RunRecord>,
}

/// What a running (or killed) producer run recorded about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The topic it writes to.
    pub topic: String,
    /// The partition its records go to; `None` when the partitioner spreads them.
    pub partition: Option<i32>,
    /// Exact seq when it started (its first message has `start_seq + 1`).
    pub start_seq: u64,
    /// Exact Lamport time when it started.
    pub start_lamport: u64,
    /// Exact own vector entry when it started.
    pub start_own: u64,
    /// Exact HLC when it started, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_hybrid: Option<HybridTimestamp>,
}

impl PersistedClocks {
    /// The zero state of `node`.
    pub fn new(node: &str) -> Self {
        Self {
            version: FORMAT_VERSION,
            node_id: node.to_string(),
            exact: true,
            ..Self::default()
        }
    }

    /// True when the values are exact (see [`PersistedClocks::exact`]).
    pub fn is_exact(&self) -> bool {
        self.exact
    }
}

/// The clock values one message is about to carry (borrowed: no allocation per message).
#[derive(Debug, Clone, Copy)]
pub struct ClockValues<'a> {
    /// The message's seq.
    pub seq: u64,
    /// The Lamport clock after stamping.
    pub lamport: u64,
    /// The vector clock after stamping, if the node keeps one.
    pub vector: Option<&'a VectorTimestamp>,
    /// The HLC after stamping, if the node keeps one.
    pub hybrid: Option<HybridTimestamp>,
}

/// The default state directory: `$XDG_STATE_HOME/kafka-timesync`, else
/// `$HOME/.local/state/kafka-timesync`; `None` if neither variable is set.
pub fn default_state_dir() -> Option<PathBuf> {
    let nonempty = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    nonempty("XDG_STATE_HOME")
        .or_else(|| nonempty("HOME").map(|h| h.join(".local").join("state")))
        .map(|d| d.join("kafka-timesync"))
}

/// File-name-safe encoding of a node id (see the module docs).
pub fn encode_node_id(node: &str) -> String {
    let mut out = String::with_capacity(node.len());
    for b in node.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if out.is_empty() {
        out.push_str("%00");
    }
    out
}

/// An open, locked state file of one node.
#[derive(Debug)]
pub struct StateStore {
    path: PathBuf,
    dir: PathBuf,
    node: String,
    /// Holds the OS lock for the lifetime of the store.
    _lock: File,
    /// What the file currently says.
    on_disk: PersistedClocks,
    reservation: u64,
    writes: u64,
    fsyncs: u64,
}

impl StateStore {
    /// Opens (creating the directory if needed) and locks `node`'s state in `dir`, returning the
    /// store and the state to resume from (zero for a new node).
    pub fn open(dir: &Path, node: &str) -> Result<(Self, PersistedClocks), StateError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StateError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let base = encode_node_id(node);
        let lock_path = dir.join(format!("{base}.lock"));
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        match lock.try_lock_exclusive() {
            Ok(true) => {}
            Ok(false) => {
                return Err(StateError::Locked {
                    node: node.to_string(),
                    path: lock_path,
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                return Err(StateError::Locked {
                    node: node.to_string(),
                    path: lock_path,
                })
            }
            Err(e) => {
                return Err(StateError::Io {
                    path: lock_path,
                    source: e,
                })
            }
        }
        let path = dir.join(format!("{base}.state.json"));
        let state = match std::fs::read(&path) {
            Ok(bytes) => {
                let corrupt = |reason: String| StateError::Corrupt {
                    path: path.clone(),
                    node: node.to_string(),
                    reason,
                };
                let s: PersistedClocks =
                    serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
                if s.node_id != node {
                    return Err(corrupt(format!("it belongs to node '{}'", s.node_id)));
                }
                if s.version > FORMAT_VERSION {
                    return Err(corrupt(format!(
                        "written by a newer version (format {})",
                        s.version
                    )));
                }
                s
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => PersistedClocks::new(node),
            Err(e) => return Err(StateError::Io { path, source: e }),
        };
        let store = Self {
            path,
            dir: dir.to_path_buf(),
            node: node.to_string(),
            _lock: lock,
            on_disk: state.clone(),
            reservation: DEFAULT_RESERVATION,
            writes: 0,
            fsyncs: 0,
        };
        Ok((store, state))
    }

    /// Sets how many seq/Lamport values are reserved per fsync (at least 1).
    pub fn with_reservation(mut self, n: u64) -> Self {
        self.reservation = n.max(1);
        self
    }

    /// The state file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the state file currently holds.
    pub fn on_disk(&self) -> &PersistedClocks {
        &self.on_disk
    }

    /// (writes, fsyncs) performed so far.
    pub fn write_counts(&self) -> (u64, u64) {
        (self.writes, self.fsyncs)
    }

    /// Records the start of a run to `topic`: the exact clocks it resumes from (`resumed`) and
    /// the partition its records go to. The floors become the larger of the current floors and
    /// `resumed`, so they stay ≥ every value ever used. Written and fsynced at once.
    pub fn begin(
        &mut self,
        topic: &str,
        partition: Option<i32>,
        resumed: &PersistedClocks,
    ) -> Result<(), StateError> {
        let d = &self.on_disk;
        let own_id: crate::NodeId = self.node.as_str().into();
        let own = resumed.vector.get(&self.node);
        let mut s = resumed.clone();
        s.version = FORMAT_VERSION;
        s.node_id = self.node.clone();
        s.exact = false;
        s.seq = s.seq.max(d.seq);
        s.lamport = s.lamport.max(d.lamport);
        s.hybrid = s.hybrid.max(d.hybrid);
        s.vector.merge(&d.vector);
        s.vector.set(&own_id, own.max(d.vector.get(&self.node)));
        s.run = Some(RunRecord {
            topic: topic.to_string(),
            partition,
            start_seq: resumed.seq,
            start_lamport: resumed.lamport,
            start_own: own,
            start_hybrid: resumed.hybrid,
        });
        self.write(&s, true)
    }

    /// Makes sure the file covers `v` before a message carrying `v` is sent: when seq, Lamport,
    /// the own vector entry or the HLC exceed the floors, new floors (value + reservation) are
    /// written and fsynced, with the other nodes' entries of `v`. Otherwise nothing is done (the
    /// common case: no I/O at all), however other nodes' entries advanced.
    pub fn cover(&mut self, v: &ClockValues<'_>) -> Result<(), StateError> {
        let d = &self.on_disk;
        let own = v.vector.map_or(0, |vt| vt.get(&self.node));
        let exceeded = v.seq > d.seq
            || v.lamport > d.lamport
            || own > d.vector.get(&self.node)
            || matches!((v.hybrid, d.hybrid), (Some(h), Some(f)) if h > f)
            || (v.hybrid.is_some() && d.hybrid.is_none());
        if !exceeded {
            return Ok(());
        }
        let r = self.reservation;
        let mut next = d.clone();
        next.exact = false;
        next.seq = next.seq.max(v.seq.saturating_add(r));
        next.lamport = next.lamport.max(v.lamport.saturating_add(r));
        if let Some(h) = v.hybrid {
            let floor = HybridTimestamp {
                wall_ms: h.wall_ms.saturating_add(HLC_RESERVATION_MS),
                logical: 0,
            };
            next.hybrid = Some(next.hybrid.map_or(floor, |f| f.max(floor)));
        }
        if let Some(vt) = v.vector {
            next.vector.merge(vt);
            let floor = own.saturating_add(r).max(d.vector.get(&self.node));
            let node: crate::NodeId = self.node.as_str().into();
            next.vector.set(&node, floor);
        }
        self.write(&next, true)
    }

    /// Writes the exact current values (clean shutdown), fsynced. Values never go below what a
    /// message carried, because `current` is the clocks' state after the last stamp.
    pub fn save(&mut self, current: &PersistedClocks) -> Result<(), StateError> {
        let mut s = current.clone();
        s.version = FORMAT_VERSION;
        s.node_id = self.node.clone();
        s.exact = true;
        s.run = None;
        self.write(&s, true)
    }

    fn write(&mut self, state: &PersistedClocks, durable: bool) -> Result<(), StateError> {
        let tmp = self
            .dir
            .join(format!(".{}.state.json.tmp", encode_node_id(&self.node)));
        let io = |p: &Path| {
            let p = p.to_path_buf();
            move |source| StateError::Io { path: p, source }
        };
        let bytes = serde_json::to_vec_pretty(state).map_err(|e| StateError::Io {
            path: self.path.clone(),
            source: std::io::Error::other(e),
        })?;
        {
            let mut f = File::create(&tmp).map_err(io(&tmp))?;
            f.write_all(&bytes).map_err(io(&tmp))?;
            if durable {
                f.sync_all().map_err(io(&tmp))?;
            }
        }
        std::fs::rename(&tmp, &self.path).map_err(io(&self.path))?;
        if durable {
            // The rename itself is durable only once the directory is synced.
            if let Ok(d) = File::open(&self.dir) {
                let _ = d.sync_all();
            }
            self.fsyncs += 1;
        }
        self.writes += 1;
        self.on_disk = state.clone();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vt(pairs: &[(&str, u64)]) -> VectorTimestamp {
        VectorTimestamp::from_entries(pairs.iter().map(|(k, v)| (*k, *v)))
    }

    /// Simulates a node stamping `n` messages (seq, Lamport and own vector entry tick together,
    /// HLC advances 1 ms each) from `start`, covering each before "sending" it. Returns the last
    /// values sent.
    fn stamp(store: &mut StateStore, start: &PersistedClocks, n: u64) -> PersistedClocks {
        let mut s = start.clone();
        let node: crate::NodeId = s.node_id.as_str().into();
        for _ in 0..n {
            s.seq += 1;
            s.lamport += 1;
            s.vector.increment(&node);
            let h = s.hybrid.unwrap_or_default();
            s.hybrid = Some(HybridTimestamp {
                wall_ms: h.wall_ms + 1,
                logical: 0,
            });
            store
                .cover(&ClockValues {
                    seq: s.seq,
                    lamport: s.lamport,
                    vector: Some(&s.vector),
                    hybrid: s.hybrid,
                })
                .unwrap();
        }
        s
    }

    #[test]
    fn new_node_starts_at_zero_and_clean_save_continues_without_gap() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, s0) = StateStore::open(dir.path(), "A").unwrap();
        assert_eq!(
            (s0.seq, s0.lamport, s0.vector.len(), s0.hybrid),
            (0, 0, 0, None)
        );
        let last = stamp(&mut store, &s0, 5);
        store.save(&last).unwrap();
        drop(store);
        let (_, s1) = StateStore::open(dir.path(), "A").unwrap();
        assert_eq!(
            s1,
            PersistedClocks {
                version: FORMAT_VERSION,
                ..last
            }
        );
    }

    #[test]
    fn crash_without_save_resumes_at_or_above_everything_sent_with_few_fsyncs() {
        let dir = tempfile::tempdir().unwrap();
        let (store, s0) = StateStore::open(dir.path(), "node/1").unwrap();
        let mut store = store.with_reservation(100);
        let sent = stamp(&mut store, &s0, 1_000);
        let (_, fsyncs) = store.write_counts();
        assert!(
            fsyncs <= 10 + 1,
            "{fsyncs} fsyncs for 1000 messages, reservation 100"
        );
        drop(store); // crash: no save
        let (mut store, r) = StateStore::open(dir.path(), "node/1").unwrap();
        assert!(r.seq >= sent.seq && r.lamport >= sent.lamport);
        assert!(r.vector.get("node/1") >= sent.vector.get("node/1"));
        assert!(r.hybrid.unwrap() > sent.hybrid.unwrap());
        // And again after more messages: still never backwards.
        let sent2 = stamp(&mut store, &r, 37);
        drop(store);
        let (_, r2) = StateStore::open(dir.path(), "node/1").unwrap();
        assert!(r2.seq >= sent2.seq && r2.seq > sent.seq);
        assert!(r2.lamport >= sent2.lamport);
    }

    /// Under `--observe` a peer's entry advances between (nearly) all of the node's messages: that
    /// costs no write; the entries reach the file with the next reservation and at exit.
    #[test]
    fn a_peer_entry_advancing_on_every_message_costs_no_write() {
        let dir = tempfile::tempdir().unwrap();
        let (store, s0) = StateStore::open(dir.path(), "B").unwrap();
        let mut store = store.with_reservation(100);
        let node: crate::NodeId = "B".into();
        let mut s = s0.clone();
        for i in 1..=1_000u64 {
            s.vector.merge(&vt(&[("A", i)]));
            s.seq += 1;
            s.lamport = s.lamport.max(i) + 1;
            s.vector.increment(&node);
            store
                .cover(&ClockValues {
                    seq: s.seq,
                    lamport: s.lamport,
                    vector: Some(&s.vector),
                    hybrid: None,
                })
                .unwrap();
        }
        let (writes, _) = store.write_counts();
        assert!(
            writes <= 1_000 / 100 + 1,
            "{writes} writes for 1000 messages"
        );
        assert!(
            store.on_disk().vector.get("A") > 0,
            "written with the floors"
        );
        store.save(&s).unwrap();
        drop(store);
        let (_, r) = StateStore::open(dir.path(), "B").unwrap();
        assert_eq!(r.vector.get("A"), 1_000);
        assert!(r.is_exact());
    }

    #[test]
    fn begin_records_the_run_and_keeps_the_floors() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, s0) = StateStore::open(dir.path(), "R").unwrap();
        assert!(s0.is_exact(), "a new node is exact (zero)");
        let sent = stamp(&mut store, &s0, 10);
        assert!(!store.on_disk().is_exact());
        drop(store); // crash: floors on disk
        let (mut store, floors) = StateStore::open(dir.path(), "R").unwrap();
        assert!(floors.seq > 10);
        store.begin("t", Some(2), &sent).unwrap();
        drop(store);
        let (_, r) = StateStore::open(dir.path(), "R").unwrap();
        let run = r.run.clone().expect("run record");
        assert_eq!((run.start_seq, run.start_own), (10, 10));
        assert_eq!(r.seq, floors.seq, "floors never drop below a value used");
        assert_eq!((run.topic.as_str(), run.partition), ("t", Some(2)));
        assert!(!r.is_exact());
    }

    #[test]
    fn covered_values_cause_no_io() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, s0) = StateStore::open(dir.path(), "C").unwrap();
        stamp(&mut store, &s0, 10);
        assert_eq!(store.write_counts(), (1, 1));
    }

    #[test]
    fn a_second_holder_of_the_node_id_is_refused_until_the_first_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let (first, _) = StateStore::open(dir.path(), "A").unwrap();
        let err = StateStore::open(dir.path(), "A").unwrap_err();
        assert!(matches!(err, StateError::Locked { .. }), "{err}");
        assert!(err.to_string().contains("already in use"));
        assert!(
            StateStore::open(dir.path(), "B").is_ok(),
            "other node ids are independent"
        );
        drop(first);
        assert!(StateStore::open(dir.path(), "A").is_ok());
    }

    #[test]
    fn corrupt_or_foreign_state_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("A.state.json"), b"{not json").unwrap();
        let err = StateStore::open(dir.path(), "A").unwrap_err();
        assert!(err.to_string().contains("corrupt"), "{err}");
        let other = serde_json::to_vec(&PersistedClocks::new("Z")).unwrap();
        std::fs::write(dir.path().join("B.state.json"), other).unwrap();
        let err = StateStore::open(dir.path(), "B").unwrap_err();
        assert!(err.to_string().contains("belongs to node 'Z'"), "{err}");
    }

    #[test]
    fn node_ids_map_to_distinct_safe_file_names() {
        assert_eq!(encode_node_id("producer-1"), "producer-1");
        assert_eq!(encode_node_id("a/b"), "a%2Fb");
        assert_eq!(encode_node_id(".."), "%2E%2E");
        assert_ne!(encode_node_id("a.b"), encode_node_id("a%2Eb"));
        assert_eq!(encode_node_id(""), "%00");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(100))]
        /// Any sequence of runs, each stamping some messages and then crashing or exiting
        /// cleanly: seq, Lamport and own vector entry never go backwards across runs.
        #[test]
        fn clocks_never_go_backwards_across_crashes(
            runs in proptest::collection::vec((0u64..200, proptest::bool::ANY), 1..6),
            reservation in 8u64..64,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let mut max_sent = (0u64, 0u64, 0u64);
            for (n, clean) in runs {
                let (store, start) = StateStore::open(dir.path(), "P").unwrap();
                proptest::prop_assert!(start.seq >= max_sent.0);
                proptest::prop_assert!(start.lamport >= max_sent.1);
                proptest::prop_assert!(start.vector.get("P") >= max_sent.2);
                let mut store = store.with_reservation(reservation);
                let last = stamp(&mut store, &start, n);
                if n > 0 {
                    max_sent = (last.seq, last.lamport, last.vector.get("P"));
                }
                if clean {
                    store.save(&last).unwrap();
                }
            }
        }
    }
}
