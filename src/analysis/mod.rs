//! Ordering analysis over a stream of received messages, in arrival order.
//!
//! [`Analyzer::observe`] takes each message as the consumer receives it and reports what its
//! arrival reveals; [`Analyzer::summary`] gives the totals. Everything is pure and deterministic:
//! the caller passes the consumer's own clock reading at arrival.
//!
//! # Rules
//!
//! Write `(k, c)` for the `c`-th message sent by node `k` (its `seq`).
//!
//! * **FIFO per node** (by `seq`, from 1): [`FifoGap`](ViolationKind::FifoGap) when a seq jumps
//!   ahead (the first message of a node counts from 1, so a consumer that starts in the middle of
//!   a topic sees one initial gap per node); [`FifoReorder`](ViolationKind::FifoReorder) when a
//!   missing seq arrives late; [`Duplicate`](ViolationKind::Duplicate) when `(node, seq)` was
//!   already received (the message is then not analysed further), or when a new `(node, seq)`
//!   reuses the id of a message still in the window.
//! * The vector rules need a *send-stamp* vector (`vector_time[own node] == seq`, entries count
//!   messages sent, as kafka-timesync stamps them). Then `x = (k, c) → m` iff
//!   `m.vector_time[k] ≥ c`, and the **latest predecessor** of `m` from node `k` is
//!   `(k, m.vector_time[k])`: one node's physical and Lamport clocks never run backwards, so it
//!   carries the largest physical and Lamport times of all of `m`'s predecessors from `k`. Other
//!   vectors are counted in [`AnalysisSummary::unusable_vectors`] and the message is analysed as
//!   if it had none. Without a vector, the only known order is the sender's own seq order.
//! * **Arrival before cause** ([`ArrivalBeforeCause`](ViolationKind::ArrivalBeforeCause)): `m`
//!   from `i` arrives while, for some `k ≠ i`, its latest predecessor `(k, vt[k])` has not arrived
//!   (above `k`'s highest seq, or in one of `k`'s tracked gaps). One violation per message, naming
//!   every `(k, vt[k])` it needed. Missing *earlier* messages of `k` are `k`'s FIFO violations, and
//!   the sender's own missing seqs are `fifo_gap`.
//! * **Physical / Lamport contra causality** ([`PhysicalVsCausal`](ViolationKind::PhysicalVsCausal),
//!   [`LamportVsCausal`](ViolationKind::LamportVsCausal)): for each message `m` and each of its latest
//!   predecessors `x` (one per node in its vector, plus `(i, seq − 1)` from its own node), when
//!   the two arrived fewer than `window` arrivals apart (duplicates not counted): `physical(m) < physical(x)`, resp. `logical(m) ≤ logical(x)`. The pair
//!   is checked when the later of the two arrives (a predecessor arriving after its successor is
//!   matched through a registration made when the successor arrived), so each pair is checked
//!   once, in `O(entries)` per message. If any predecessor `x'` of `m` from `k` violates the
//!   rule, the latest one does too, so every message with a contradicting predecessor in the
//!   window is reported. The violation's `node` is the successor's node, `ids` are
//!   `[predecessor, successor]`. Lamport violations are 0 for honest clocks; physical ones are the
//!   footprint of skew.
//! * **Concurrent pairs**: when `m` arrives, the analyzer counts the messages among the previous
//!   `window − 1` distinct arrivals that carry a usable vector and are concurrent with `m` (neither
//!   happened before the other); [`AnalysisSummary::concurrent_pairs`] is the running total, i.e.
//!   the number of concurrent pairs among messages fewer than `window` arrivals apart. Messages of
//!   one node are never concurrent. The count is `O(entries · log window)` per message: per node,
//!   the window's seqs are kept sorted, so predecessors (`seq ≤ m.vt[k]`) are counted by binary
//!   search, and messages that `m` precedes (which arrived before `m`) are exactly those registered
//!   as waiting for one of `m`'s node's seqs ≥ `m.seq`, kept as a counter. The late fill of a
//!   FIFO gap (never produced by Kafka for keyed messages: one partition per node) falls back to
//!   an `O(window)` scan.
//! * **Clock offset** per node and [`SkewThreshold`](ViolationKind::SkewThreshold): see
//!   "Clock offset" below.
//!
//! # Clock offset
//!
//! The estimate is the median of `physical_time − timestamp` over the node's last
//! `min(window, 64)` messages, with the hard bound "every one of them was stamped with a clock
//! error within `offset_ms ± error_ms`", and the receive-time lower bound as a cross-check. The
//! method, its error bound and the once-per-crossing warning rule are documented on
//! [`OffsetEstimate`].
//!
//! # Memory
//!
//! Bounded by the configuration, whatever the stream length: between calls the window holds the
//! latest `window − 1` messages (the next arrival is compared against them) (each with its vector and the registrations it made, at most one per entry); at most
//! `max_nodes` nodes are tracked (least recently seen evicted; an evicted node that reappears
//! starts afresh), each with at most [`MAX_GAP_RANGES_PER_NODE`] gap ranges and
//! `min(window, MAX_OFFSET_SAMPLES)` offset samples. [`Analyzer::footprint`] reports the sizes.

mod causality;
mod fifo;
mod nodes;
mod skew;
mod window;

pub use crate::violation::ViolationKind;
pub use skew::OffsetEstimate;

use crate::envelope::Envelope;
use crate::NodeId;
use causality::{Arrival, Causes, End};
use fifo::SeqTracker;
use nodes::{Evicted, NodeKey, NodeTable};
use serde::Serialize;
use skew::OffsetEstimator;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

/// Default analysis window (messages).
pub const DEFAULT_WINDOW: usize = 1000;
/// Default skew warning threshold (ms).
pub const DEFAULT_MAX_SKEW_MS: f64 = 100.0;
/// Default cap on tracked nodes.
pub const DEFAULT_MAX_NODES: usize = 10_000;
/// Gap ranges remembered per node; beyond it the oldest are forgotten.
pub const MAX_GAP_RANGES_PER_NODE: usize = 64;
/// Offset samples kept per node (fewer when the window is smaller).
pub const MAX_OFFSET_SAMPLES: usize = 64;

/// Analysis settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AnalysisConfig {
    /// The analysis window in messages (`--buffer-size`); 0 is treated as 1.
    pub window: usize,
    /// Skew warning threshold in ms (`--max-skew-ms`). Negative values count by magnitude;
    /// NaN means the default; infinity disables the warning.
    pub max_skew_ms: f64,
    /// Most nodes tracked at once; 0 is treated as 1.
    pub max_nodes: usize,
}

impl Default for AnalysisConfig {
    fn default() -> Self {
        Self {
            window: DEFAULT_WINDOW,
            max_skew_ms: DEFAULT_MAX_SKEW_MS,
            max_nodes: DEFAULT_MAX_NODES,
        }
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// What was found.
    pub kind: ViolationKind,
    /// The node it concerns (for causal pairs: the successor's node).
    pub node: NodeId,
    /// Message ids involved (for causal pairs: `[predecessor, successor]`).
    pub ids: Vec<String>,
    /// A readable explanation with the seqs and times involved.
    pub detail: String,
}

/// Per-node totals.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnalysisNodeSummary {
    /// Distinct messages received from the node (duplicates excluded).
    pub messages: u64,
    /// Highest seq received.
    pub highest_seq: u64,
    /// Seqs below `highest_seq` still missing (within the tracked gap ranges).
    pub missing: u64,
    /// Clock-offset estimate (ms); `None` without usable samples.
    pub offset_ms: Option<f64>,
    /// The estimate's bound (ms): see [`OffsetEstimate::error_ms`].
    pub offset_error_ms: Option<f64>,
    /// Receive-time lower bound on (node clock − consumer clock) (ms).
    pub receive_bound_ms: Option<f64>,
    /// Samples behind the estimate.
    pub offset_samples: usize,
}

/// Totals since the analyzer was created.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnalysisSummary {
    /// Distinct messages analysed (duplicates of `(node, seq)` excluded; seq 0 excluded).
    pub messages: u64,
    /// Violations by kind; every kind is present, zeros included.
    pub violations: BTreeMap<ViolationKind, u64>,
    /// Concurrent pairs among messages fewer than `window` arrivals apart (see the module docs).
    pub concurrent_pairs: u64,
    /// Per tracked node.
    pub nodes: BTreeMap<NodeId, AnalysisNodeSummary>,
    /// Nodes evicted from tracking because more than `max_nodes` were active.
    pub evicted_nodes: u64,
    /// Messages whose vector was not a send stamp (`vector_time[own node] != seq`).
    pub unusable_vectors: u64,
    /// Messages with seq 0 (seqs count from 1), not analysed.
    pub unsequenced: u64,
    /// Messages without seq (the prototype's): FIFO-checked by Kafka offset, counted in
    /// `messages`, outside the causal rules.
    pub seq_absent: u64,
}

impl AnalysisSummary {
    /// The count for one kind.
    pub fn count(&self, kind: ViolationKind) -> u64 {
        self.violations.get(&kind).copied().unwrap_or(0)
    }
}

/// Current sizes of the analyzer's internal structures (for tests and benchmarks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Footprint {
    /// Messages kept for comparison with the next arrival (at most `window − 1`).
    pub window: usize,
    /// `(node, seq)` index entries.
    pub seq_index: usize,
    /// Message-id index entries.
    pub id_index: usize,
    /// Tracked nodes.
    pub nodes: usize,
    /// Entries of the recency queue.
    pub recency_queue: usize,
    /// Gap ranges over all nodes.
    pub gap_ranges: usize,
    /// Offset samples over all nodes.
    pub offset_samples: usize,
    /// Window seqs indexed per node (vector-stamped messages).
    pub window_seqs: usize,
    /// Outstanding "waiting for a predecessor" registrations.
    pub registrations: usize,
    /// Vector entries stored with window messages.
    pub vector_entries: usize,
}

/// Per-node analysis state.
#[derive(Debug)]
struct TrackedNode {
    seqs: SeqTracker,
    messages: u64,
    /// `(seq, arrival index)` of this node's vector-stamped messages in the window, by seq.
    window_seqs: VecDeque<(u64, u64)>,
    /// `c` → arrival indexes of window messages (of other nodes) whose latest predecessor from
    /// this node is `(this, c)` and had not arrived when they did.
    pending: BTreeMap<u64, Vec<u64>>,
    /// Registrations in `pending` with `c > seqs.highest()`.
    ahead: usize,
    offset: OffsetEstimator,
    /// Messages without seq: the highest Kafka offset read, per partition.
    offsets: BTreeMap<i32, i64>,
}

impl TrackedNode {
    fn new(offset_samples: usize) -> Self {
        Self {
            seqs: SeqTracker::default(),
            messages: 0,
            window_seqs: VecDeque::new(),
            pending: BTreeMap::new(),
            ahead: 0,
            offset: OffsetEstimator::new(offset_samples),
            offsets: BTreeMap::new(),
        }
    }
}

/// The ordering analyzer. See the module docs for the rules.
///
/// # Example
///
/// `b` answered `a`'s message, but its clock is 50 ms behind: its reply carries an earlier
/// physical time than the message it answers, and it is read first.
///
/// ```
/// use kafka_timesync::analysis::{AnalysisConfig, Analyzer, ViolationKind};
/// use kafka_timesync::clock::{ClockType, VectorTimestamp};
/// use kafka_timesync::envelope::{Envelope, MessageTimestamp};
///
/// fn stamped(node: &str, vector: &[(&str, u64)], physical_time: f64) -> Envelope {
///     let vt = VectorTimestamp::from_entries(vector.iter().copied());
///     Envelope {
///         id: format!("{node}-1"),
///         content: String::new(),
///         seq: Some(vt.get(node)),
///         timestamp: MessageTimestamp {
///             node_id: node.into(),
///             timestamp: physical_time,
///             clock_type: ClockType::Vector,
///             physical_time: Some(physical_time),
///             logical_time: Some(vector.iter().map(|&(_, count)| count).sum()),
///             vector_time: Some(vt),
///             hybrid_time: None,
///             simulated_time: None,
///             unmapped_vector_entries: None,
///         },
///         simulated_skew_ms: None,
///     }
/// }
///
/// let arrivals = [
///     stamped("b", &[("a", 1), ("b", 1)], 1_790_000_000.060), // the reply, read first
///     stamped("a", &[("a", 1)], 1_790_000_000.100),
/// ];
/// let mut analyzer = Analyzer::new(AnalysisConfig::default());
/// let mut violations = Vec::new();
/// for (i, envelope) in arrivals.iter().enumerate() {
///     let received_ns = 1_790_000_000_200_000_000 + i as i64 * 1_000_000;
///     analyzer.observe(envelope, received_ns, &mut violations);
/// }
/// let found: Vec<_> = violations.iter().map(|v| (v.kind, &*v.node)).collect();
/// assert_eq!(
///     found,
///     [(ViolationKind::ArrivalBeforeCause, "b"), (ViolationKind::PhysicalVsCausal, "b")]
/// );
/// assert_eq!(violations[1].ids, ["a-1", "b-1"]); // [predecessor, successor]
/// assert_eq!(analyzer.summary().messages, 2);
/// ```
#[derive(Debug)]
pub struct Analyzer {
    window_cap: usize,
    threshold_ms: f64,
    offset_samples: usize,
    nodes: NodeTable<TrackedNode>,
    window: VecDeque<window::WindowEntry>,
    /// Arrival index of `window[0]`.
    front: u64,
    by_seq: HashMap<(NodeKey, u64), u64>,
    ids: HashMap<Arc<str>, u32>,
    /// Window messages with a usable vector whose node is still tracked.
    vt_in_window: usize,
    counts: [u64; ViolationKind::COUNT],
    concurrent_pairs: u64,
    messages: u64,
    evicted_nodes: u64,
    unusable_vectors: u64,
    unsequenced: u64,
    seq_absent: u64,
    /// Node keys of the last vector's entries, by position: consecutive vectors usually list
    /// the same nodes, so a string comparison replaces a hash lookup.
    resolve_cache: Vec<(NodeId, NodeKey)>,
}

/// Vector positions remembered by the resolve cache.
const RESOLVE_CACHE: usize = 256;

impl Analyzer {
    /// An analyzer with the given settings.
    pub fn new(cfg: AnalysisConfig) -> Self {
        let window_cap = cfg.window.max(1);
        let threshold_ms = if cfg.max_skew_ms.is_nan() {
            DEFAULT_MAX_SKEW_MS
        } else {
            cfg.max_skew_ms.abs()
        };
        Self {
            window_cap,
            threshold_ms,
            offset_samples: window_cap.min(MAX_OFFSET_SAMPLES),
            nodes: NodeTable::new(cfg.max_nodes),
            window: VecDeque::with_capacity(window_cap.min(1 << 16)),
            front: 0,
            by_seq: HashMap::new(),
            ids: HashMap::new(),
            vt_in_window: 0,
            counts: [0; ViolationKind::COUNT],
            concurrent_pairs: 0,
            messages: 0,
            evicted_nodes: 0,
            unusable_vectors: 0,
            unsequenced: 0,
            seq_absent: 0,
            resolve_cache: Vec::new(),
        }
    }

    /// The key of a tracked node named at position `pos` of a vector.
    fn resolve(&mut self, pos: usize, id: &NodeId) -> Option<NodeKey> {
        if let Some((cid, ck)) = self.resolve_cache.get(pos) {
            if (Arc::ptr_eq(cid, id) || **cid == **id) && self.nodes.get(*ck).is_some() {
                return Some(*ck);
            }
        }
        let k = self.nodes.find(id)?;
        if pos < RESOLVE_CACHE {
            if pos >= self.resolve_cache.len() {
                // Positions skipped so far (the sender's own entry) get placeholders that simply miss.
                self.resolve_cache.resize(pos + 1, (id.clone(), k));
            } else {
                self.resolve_cache[pos] = (id.clone(), k);
            }
        }
        Some(k)
    }

    fn report(
        &mut self,
        out: &mut Vec<Violation>,
        kind: ViolationKind,
        node: &NodeId,
        ids: Vec<String>,
        detail: String,
    ) {
        self.counts[kind.index()] += 1;
        out.push(Violation {
            kind,
            node: node.clone(),
            ids,
            detail,
        });
    }

    fn forget_node(&mut self, ev: Evicted<TrackedNode>) {
        self.evicted_nodes += 1;
        self.vt_in_window = self.vt_in_window.saturating_sub(ev.value.window_seqs.len());
        drop(ev.id);
    }

    /// One received message, in arrival order, whose Kafka position is unknown. See
    /// [`observe_at`](Self::observe_at).
    pub fn observe(&mut self, env: &Envelope, received_ns: i64, out: &mut Vec<Violation>) {
        self.observe_at(env, None, received_ns, out);
    }

    /// One received message, in arrival order, read at `position` (Kafka partition and offset).
    /// `received_ns` is the consumer's own (possibly NTP-corrected) physical time at arrival.
    /// Appends the violations this message reveals.
    ///
    /// A message without `seq` (the prototype's) is FIFO-checked by its Kafka offset within its
    /// node and partition when `position` is given (the node's last offset in that partition
    /// again is a duplicate, a lower one a reorder), gives a clock-offset sample, and takes no
    /// part in the causal rules: with no seq it cannot be named as anyone's predecessor.
    pub fn observe_at(
        &mut self,
        env: &Envelope,
        position: Option<(i32, i64)>,
        received_ns: i64,
        out: &mut Vec<Violation>,
    ) {
        let ts = &env.timestamp;
        self.nodes.begin_epoch();
        let found = self.nodes.find(&ts.node_id);
        // `None` is unreachable: nothing is touched yet in this epoch, so a victim exists.
        let Some(key) = self.track(found, &ts.node_id) else {
            return;
        };
        let Some(seq) = env.seq else {
            self.observe_without_seq(key, env, position, received_ns, out);
            return;
        };
        if seq == 0 {
            self.unsequenced += 1;
            return;
        }
        let Some(old_high) = self.check_fifo(key, env, seq, out) else {
            return;
        };
        self.check_id_reuse(env, seq, out);
        if let Some(st) = self.nodes.get_mut(key) {
            st.messages += 1;
        }
        self.messages += 1;

        let m = Arrival {
            key,
            idx: self.front + self.window.len() as u64,
            late: seq <= old_high,
            end: End {
                node: &ts.node_id,
                seq,
                id: env.id.as_str(),
                physical: ts.clock_reading(),
                logical: ts.logical_time,
            },
        };
        self.check_own_order(&m, out);
        let vt = self.usable_vector(env, seq);
        let causes = match vt {
            Some(vt) => self.check_causes(&m, vt, out),
            None => Causes::default(),
        };
        let successors = self.resolve_waiting(&m, old_high, out);
        if vt.is_some() {
            let successors = if m.late {
                self.count_successors(key, seq)
            } else {
                successors
            };
            self.count_concurrent(key, successors + causes.preds);
        }
        self.offset_sample(key, env, received_ns, out);
        let entries = vt.is_some().then_some(causes.entries);
        self.admit(&m, entries, causes.regs);
    }

    /// The key of node `id`, `found` or else inserted (evicting the least recently seen node
    /// when the table is full); `None` when every tracked node was seen in this epoch.
    fn track(&mut self, found: Option<NodeKey>, id: &NodeId) -> Option<NodeKey> {
        if let Some(k) = found {
            self.nodes.touch(k);
            return Some(k);
        }
        let (k, evicted) = self
            .nodes
            .insert(id, TrackedNode::new(self.offset_samples))?;
        if let Some(ev) = evicted {
            self.forget_node(ev);
        }
        Some(k)
    }

    /// Totals: counts by kind, concurrent pairs, per-node messages and offset estimates.
    pub fn summary(&self) -> AnalysisSummary {
        let violations = ViolationKind::ANALYSIS
            .iter()
            .map(|&k| (k, self.counts[k.index()]))
            .collect();
        let nodes = self
            .nodes
            .iter()
            .filter(|(_, st)| st.messages > 0)
            .map(|(id, st)| {
                let est = st.offset.estimate();
                let s = AnalysisNodeSummary {
                    messages: st.messages,
                    highest_seq: st.seqs.highest(),
                    missing: st.seqs.missing(),
                    offset_ms: est.map(|e| e.offset_ms),
                    offset_error_ms: est.map(|e| e.error_ms),
                    receive_bound_ms: est.map(|e| e.receive_bound_ms),
                    offset_samples: est.map_or(0, |e| e.samples),
                };
                (id.clone(), s)
            })
            .collect();
        AnalysisSummary {
            messages: self.messages,
            violations,
            concurrent_pairs: self.concurrent_pairs,
            nodes,
            evicted_nodes: self.evicted_nodes,
            unusable_vectors: self.unusable_vectors,
            unsequenced: self.unsequenced,
            seq_absent: self.seq_absent,
        }
    }

    /// The current offset estimate of one node.
    pub fn offset_estimate(&self, node: &str) -> Option<OffsetEstimate> {
        self.nodes
            .find(node)
            .and_then(|k| self.nodes.get(k))
            .and_then(|st| st.offset.estimate())
    }

    /// Current sizes of the internal structures; all bounded by the configuration.
    pub fn footprint(&self) -> Footprint {
        let mut f = Footprint {
            window: self.window.len(),
            seq_index: self.by_seq.len(),
            id_index: self.ids.len(),
            nodes: self.nodes.len(),
            recency_queue: self.nodes.lru_len(),
            vector_entries: self
                .window
                .iter()
                .map(|r| r.vt.as_ref().map_or(0, |v| v.len()))
                .sum(),
            ..Footprint::default()
        };
        for (_, st) in self.nodes.iter() {
            f.gap_ranges += st.seqs.gap_ranges();
            f.offset_samples += st.offset.len();
            f.window_seqs += st.window_seqs.len();
            f.registrations += st.pending.values().map(Vec::len).sum::<usize>();
        }
        f
    }
}

#[cfg(test)]
mod tests;
