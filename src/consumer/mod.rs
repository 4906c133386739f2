//! The consumer engine: records in, events and commit positions out. Pure and sans-IO.
//!
//! The Kafka shell (`kafka-consumer`) feeds every record it reads to
//! [`ConsumerEngine::on_record`] together with the arrival time read from the consumer's own
//! physical clock, calls [`ConsumerEngine::tick`] when [`ConsumerEngine::next_deadline`] passes,
//! and commits [`ConsumerEngine::commit_positions`]. The engine decodes and validates each record,
//! runs the ordering analysis on arrival order (when enabled), orders messages for delivery
//! (arrival, causal or total) and reports everything to an [`EventSink`].
//!
//! # Delivery modes
//! * **arrival** — every valid message is delivered as soon as it is read.
//! * **causal** — a [`CausalBuffer`] holds a message until everything that happened before it has
//!   been delivered. Messages without `vector_time` (physical, logical and hybrid producers that
//!   keep no vector clock) are given the FIFO-only stamp `{node: seq}`: they wait for their own
//!   node's earlier messages and for nothing else, because they carry no information about other
//!   nodes. A message with neither vector nor seq (the prototype's) has no known predecessor and
//!   is delivered on arrival. Both are counted in [`ConsumerSummary::without_vector`].
//! * **total** — a [`TotalOrderBuffer`] delivers by Lamport `(logical_time, node id)`, the same
//!   sequence in every replica. A message without seq or Lamport time cannot be placed in it and
//!   is delivered on arrival ([`ConsumerSummary::unordered`]).
//!
//! In causal and total modes a message whose predecessor does not come is released after the
//! causal timeout (`"release":"timeout"`) or when the buffer is full (`"buffer-full"`), and a
//! `released_early` violation says what was missing; a message whose order then holds only because
//! of that skip is delivered with `"release":"after-skip"`, and a skipped predecessor that turns
//! up later is delivered at once with `"release":"late"`. Nothing is dropped silently.
//!
//! # Commit positions
//! For each partition the position to commit is the lowest offset still held by the engine (in the
//! ordering buffer, or withheld after `--max-messages`), or else one past the last record read
//! (or the position the partition started at, [`ConsumerEngine::start_partition`]). Everything
//! below it was delivered, reported malformed or refused as a duplicate, so a crash after a commit
//! never loses a message: whatever was held is read again by the next run.
//!
//! # Resuming
//! The shell commits [`ConsumerEngine::checkpoint`] together with the positions (same instant,
//! same commit); at the next start [`resume`] gives it back to [`ConsumerEngine::restore`] before
//! the first record. The restored order knows what was delivered before: a message whose
//! predecessors were delivered by the earlier run is delivered at once (`ready`), and a message
//! read again that the earlier run had already delivered (it lay between the committed position
//! and the last record read) is counted in [`ConsumerSummary::already_delivered`], not delivered twice.
//! Without a usable checkpoint at a start that is not the beginning of the log (`--history`, say),
//! [`ConsumerEngine::assume_delivered_before_start`] makes the causal order assume that
//! everything a node sent before its first message read in this run was delivered, and, once the
//! shell reports [`ConsumerEngine::caught_up`], that every node not read at all lies wholly before
//! the start. That rule relies on each node's messages being in one partition in send order (the
//! producer keys them by node id).
//!
//! # Invariants
//! * Every record read is accounted for exactly once: delivered, malformed, duplicate, already
//!   delivered (before a restart) or held (see [`ConsumerSummary`]).
//! * Bad input never panics and never stalls a partition: a record that fails to decode is
//!   reported and its offset becomes committable at once.
//! * Memory is bounded by the buffer size (ordering buffer and analysis window) plus per-node
//!   bookkeeping capped at [`MAX_TRACKED_NODES`] nodes.

mod config;
mod event;
mod render;
mod restart;
mod resume;

pub use config::{DeliveryMode, EngineConfig, UnknownDeliveryMode};
pub use event::{
    CollectSink, ConsumerNodeSummary, ConsumerSummary, Delivery, EarlyReleases, Event, EventSink,
    ViolationReport,
};
pub use render::{JsonSink, TextSink};
pub use restart::ModeMismatch;
pub use resume::{resume, Resumed};

use crate::analysis::{AnalysisConfig, Analyzer, Violation, ViolationKind};
use crate::clock::VectorTimestamp;
use crate::delivery::{CausalBuffer, Delivered, DeliveryConfig, Offer, Release, TotalOrderBuffer};
use crate::envelope::{Envelope, Form};
use crate::stamp_headers::{self, Header};
use crate::NodeId;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

/// Per-node message counts are kept for at most this many nodes (hostile input may carry a new
/// node id in every record); further nodes are still processed but not listed in the summary.
pub const MAX_TRACKED_NODES: usize = 10_000;

/// One record read from Kafka.
#[derive(Debug, Clone, Copy)]
pub struct ConsumedRecord<'a> {
    /// Partition.
    pub partition: i32,
    /// Offset in the partition.
    pub offset: i64,
    /// The record value (`None` for a null value).
    pub payload: Option<&'a [u8]>,
    /// The record headers (a header-stamped record carries its stamp there).
    pub headers: &'a [Header<'a>],
    /// When it was read, from the consumer's physical clock (ns since the epoch).
    pub arrival_ns: i64,
}

/// A message offered to an ordering buffer.
#[derive(Debug)]
struct BufferedMessage {
    partition: i32,
    offset: i64,
    /// What a delivery shows of the record value ([`shown`]), copied when the buffer keeps the
    /// message ([`BufferedMessage::keep`]). `None` while the message is the record being
    /// offered, whose value is still at hand: a message the buffer delivers at once is never
    /// copied.
    raw: Option<Box<[u8]>>,
    form: Form,
    env: Envelope,
}

impl BufferedMessage {
    /// Copies what a delivery shows of `value` (the record's value), for a buffer that keeps
    /// the message beyond the record.
    fn keep(&mut self, value: &[u8]) {
        if self.raw.is_none() {
            self.raw = Some(shown(self.form, value).into_owned().into_boxed_slice());
        }
    }

    /// The vector stamp the causal buffer orders it by.
    fn vector(&self) -> Option<&VectorTimestamp> {
        self.env.timestamp.vector_time.as_ref()
    }
}

enum Orderer {
    Arrival,
    Causal(CausalBuffer<BufferedMessage>),
    Total(TotalOrderBuffer<BufferedMessage>),
}

#[derive(Debug, Default, Clone, Copy)]
struct PartitionState {
    /// One past the highest offset read.
    next: i64,
    /// Messages of this partition held by the ordering buffer.
    held: u64,
    /// Lowest offset withheld after `max_messages` was reached.
    withheld_min: Option<i64>,
}

/// The consumer engine. See the module documentation.
pub struct ConsumerEngine {
    cfg: EngineConfig,
    orderer: Orderer,
    analyzer: Option<Analyzer>,
    released: Vec<Delivered<BufferedMessage>>,
    found: Vec<Violation>,
    partitions: BTreeMap<i32, PartitionState>,
    node_messages: HashMap<NodeId, u64>,
    violations: [u64; ViolationKind::COUNT],
    received: u64,
    delivered: u64,
    malformed: u64,
    duplicates: u64,
    withheld: u64,
    without_seq: u64,
    without_vector: u64,
    unordered: u64,
    /// Nodes already warned about an unmapped array-form vector (at most [`MAX_TRACKED_NODES`]).
    warned_unmapped: std::collections::HashSet<NodeId>,
    already_delivered: u64,
    /// Messages the delivery order released early, by reason.
    released_early: EarlyReleases,
    /// Per node, the count (causal) or seq (total) up to which the restored state says messages
    /// were delivered by an earlier run.
    restored: VectorTimestamp,
    /// Causal mode: a node's predecessors of its first message read count as delivered.
    assume_before_start: bool,
    /// Nodes whose first message was read (with `assume_before_start`).
    started: HashSet<NodeId>,
    /// After `max_messages`: per node, the lowest count (causal) or seq (total) the order released
    /// but the engine withheld, with its Lamport time (total).
    unsent: HashMap<NodeId, (u64, Option<u64>)>,
    /// Total order: the last key delivered in order.
    last_in_order: Option<(u64, NodeId, u64)>,
}

impl fmt::Debug for ConsumerEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsumerEngine")
            .field("mode", &self.cfg.mode)
            .field("received", &self.received)
            .field("delivered", &self.delivered)
            .field("buffered", &self.buffered())
            .finish_non_exhaustive()
    }
}

/// What a delivery shows of a record value: a JSON envelope on one line ([`one_line`]), the
/// value of a header-stamped record as it is.
fn shown(form: Form, payload: &[u8]) -> Cow<'_, [u8]> {
    match form {
        Form::Json => one_line(payload),
        Form::Headers => Cow::Borrowed(payload),
    }
}

/// The record value with raw line breaks removed, so it can be embedded in one JSON line. A valid
/// JSON text can only contain CR/LF as whitespace between tokens (inside strings they must be
/// escaped), so removing them never changes its meaning.
fn one_line(payload: &[u8]) -> Cow<'_, [u8]> {
    let Some(first) = memchr::memchr2(b'\n', b'\r', payload) else {
        return Cow::Borrowed(payload);
    };
    let mut out = Vec::with_capacity(payload.len() - 1);
    out.extend_from_slice(&payload[..first]);
    let mut rest = &payload[first + 1..];
    while let Some(i) = memchr::memchr2(b'\n', b'\r', rest) {
        out.extend_from_slice(&rest[..i]);
        rest = &rest[i + 1..];
    }
    out.extend_from_slice(rest);
    Cow::Owned(out)
}

impl ConsumerEngine {
    /// A new engine.
    pub fn new(cfg: EngineConfig) -> Self {
        let capacity = cfg.buffer_size.max(1);
        let dcfg = DeliveryConfig {
            capacity,
            max_wait_ns: i64::try_from(cfg.causal_timeout_ms)
                .unwrap_or(i64::MAX)
                .saturating_mul(1_000_000),
        };
        let orderer = match cfg.mode {
            DeliveryMode::Arrival => Orderer::Arrival,
            DeliveryMode::Causal => Orderer::Causal(CausalBuffer::new(dcfg)),
            DeliveryMode::Total => Orderer::Total(TotalOrderBuffer::new(dcfg, cfg.nodes.clone())),
        };
        let analyzer = cfg.analyze.then(|| {
            Analyzer::new(AnalysisConfig {
                window: capacity,
                max_skew_ms: cfg.max_skew_ms,
                max_nodes: MAX_TRACKED_NODES,
            })
        });
        Self {
            cfg,
            orderer,
            analyzer,
            released: Vec::new(),
            found: Vec::new(),
            partitions: BTreeMap::new(),
            node_messages: HashMap::new(),
            violations: [0; ViolationKind::COUNT],
            received: 0,
            delivered: 0,
            malformed: 0,
            duplicates: 0,
            withheld: 0,
            without_seq: 0,
            without_vector: 0,
            unordered: 0,
            warned_unmapped: Default::default(),
            already_delivered: 0,
            released_early: EarlyReleases::default(),
            restored: VectorTimestamp::new(),
            assume_before_start: false,
            started: HashSet::new(),
            unsent: HashMap::new(),
            last_in_order: None,
        }
    }

    /// Declares where a partition starts (its committed or requested position), so that it has a
    /// commit position before anything is read from it.
    pub fn start_partition(&mut self, partition: i32, offset: i64) {
        let st = self.partitions.entry(partition).or_default();
        st.next = st.next.max(offset);
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// Processes one record read from Kafka. Time moves to `rec.arrival_ns` first (timeouts due
    /// by then fire before the record is considered).
    pub fn on_record<S: EventSink + ?Sized>(&mut self, rec: &ConsumedRecord<'_>, sink: &mut S) {
        self.received += 1;
        let st = self.partitions.entry(rec.partition).or_default();
        st.next = st.next.max(rec.offset.saturating_add(1));
        self.tick(rec.arrival_ns, sink);

        if self.is_done() {
            self.withhold(rec.partition, rec.offset);
            return;
        }
        // The stamp is in the headers when the version header is there, else the value is a
        // JSON envelope.
        let (form, env) =
            match stamp_headers::decode_record(rec.payload, rec.headers, &self.cfg.limits) {
                Ok(decoded) => decoded,
                Err(e) => {
                    self.report_malformed(rec.partition, rec.offset, &e.to_string(), sink);
                    return;
                }
            };
        let payload = rec.payload.unwrap_or_default();
        self.count_node(&env.timestamp.node_id);
        self.note_lacking(&env);

        if let Some(an) = self.analyzer.as_mut() {
            let position = Some((rec.partition, rec.offset));
            an.observe_at(&env, position, rec.arrival_ns, &mut self.found);
        }

        if matches!(self.orderer, Orderer::Arrival) {
            self.deliver_now(rec, form, payload, &env, sink);
        } else if !self.orderable(&env) {
            self.unordered += 1;
            self.deliver_now(rec, form, payload, &env, sink);
        } else {
            self.offer(rec, form, payload, env, sink);
        }
    }

    fn deliver_now<S: EventSink + ?Sized>(
        &mut self,
        rec: &ConsumedRecord<'_>,
        form: Form,
        payload: &[u8],
        env: &Envelope,
        sink: &mut S,
    ) {
        self.emit_found(false, sink);
        let raw = shown(form, payload);
        self.delivered += 1;
        sink.deliver(&Delivery {
            partition: rec.partition,
            offset: rec.offset,
            release: Release::Ready,
            form,
            raw: &raw,
            envelope: env,
        });
    }

    /// Whether the ordering buffer can place `env`: causal needs a seq (a vector is optional),
    /// total a seq and a Lamport time.
    fn orderable(&self, env: &Envelope) -> bool {
        match self.orderer {
            Orderer::Arrival => true,
            Orderer::Causal(_) => env.seq.is_some(),
            Orderer::Total(_) => env.seq.is_some() && env.timestamp.logical_time.is_some(),
        }
    }

    /// Counts what a valid message lacks, and warns once per node about an array-form vector
    /// that no node order maps.
    fn note_lacking(&mut self, env: &Envelope) {
        let ts = &env.timestamp;
        if env.seq.is_none() {
            self.without_seq += 1;
        }
        if matches!(self.orderer, Orderer::Causal(_)) && ts.vector_time.is_none() {
            self.without_vector += 1;
        }
        if let Some(n) = ts.unmapped_vector_entries {
            if self.warned_unmapped.len() < MAX_TRACKED_NODES
                && self.warned_unmapped.insert(ts.node_id.clone())
            {
                tracing::warn!(
                    "node {}: vector_time is the prototype's array form ({n} entries), delivered \
                     without a vector; to map it, pass --legacy-vector-nodes with the {n} node ids \
                     in the prototype's order (or set legacy_vector_nodes in the config file)",
                    crate::envelope::Printable(&ts.node_id)
                );
            }
        }
    }

    fn offer<S: EventSink + ?Sized>(
        &mut self,
        rec: &ConsumedRecord<'_>,
        form: Form,
        payload: &[u8],
        env: Envelope,
        sink: &mut S,
    ) {
        let node = env.timestamp.node_id.clone();
        let seq = env.seq;
        let held = BufferedMessage {
            partition: rec.partition,
            offset: rec.offset,
            raw: None,
            form,
            env,
        };
        let offered = self.offer_to_buffer(held, payload, rec.arrival_ns);
        match offered {
            Offer::Accepted => {
                self.emit_found(false, sink);
                if let Some(st) = self.partitions.get_mut(&rec.partition) {
                    st.held += 1;
                }
            }
            Offer::Duplicate(dup) if self.delivered_before_restart(&dup.env) => {
                // Delivered by an earlier run (read again from the committed position).
                self.emit_found(true, sink);
                self.already_delivered += 1;
            }
            Offer::Duplicate(dup) => {
                // The buffer's verdict is exact; the analysis' own duplicate report for the same
                // record would say the same thing twice.
                self.emit_found(true, sink);
                self.duplicates += 1;
                let detail = format!(
                    "node {} seq {} was already delivered or is waiting (partition {} offset {}); not delivered again",
                    node, seq.unwrap_or_default(), dup.partition, dup.offset
                );
                self.report(
                    &ViolationReport::new(
                        ViolationKind::Duplicate,
                        &node,
                        std::slice::from_ref(&dup.env.id),
                        &detail,
                    ),
                    sink,
                );
            }
        }
        self.emit_released_with(payload, sink);
    }

    /// Offers `held` (the record being processed, with value `value`) to the ordering buffer.
    fn offer_to_buffer(
        &mut self,
        mut held: BufferedMessage,
        value: &[u8],
        now_ns: i64,
    ) -> Offer<BufferedMessage> {
        let node = held.env.timestamp.node_id.clone();
        // Only orderable messages reach the buffer: they carry a seq (and, for total order, a
        // Lamport time).
        let seq = held.env.seq.unwrap_or_default();
        match &mut self.orderer {
            Orderer::Causal(buf) => {
                // Without a vector the stamp is `{node: seq}`; the buffer reads the stamp from
                // the message it takes (the envelope keeps it for rendering).
                if self.assume_before_start && !self.started.contains(&node) {
                    self.started.insert(node.clone());
                    let own = match &held.env.timestamp.vector_time {
                        Some(vt) => vt.get(&node),
                        None => seq,
                    };
                    if own > 1 {
                        buf.assume_delivered(&node, own - 1, &mut self.released);
                    }
                }
                let keep = |h: &mut BufferedMessage| h.keep(value);
                buf.offer_with(
                    node,
                    held,
                    BufferedMessage::vector,
                    keep,
                    seq,
                    now_ns,
                    &mut self.released,
                )
            }
            Orderer::Total(buf) => {
                held.keep(value);
                let lamport = held.env.timestamp.logical_time.unwrap_or_default();
                buf.offer(node, seq, lamport, held, now_ns, &mut self.released)
            }
            Orderer::Arrival => Offer::Accepted,
        }
    }

    /// Advances time: releases messages whose wait expired.
    pub fn tick<S: EventSink + ?Sized>(&mut self, now_ns: i64, sink: &mut S) {
        match &mut self.orderer {
            Orderer::Arrival => return,
            Orderer::Causal(buf) => {
                if buf.next_deadline().is_some_and(|d| d <= now_ns) {
                    buf.expire(now_ns, &mut self.released);
                }
            }
            Orderer::Total(buf) => {
                if buf.next_deadline().is_some_and(|d| d <= now_ns) {
                    buf.expire(now_ns, &mut self.released);
                }
            }
        }
        self.emit_released(sink);
    }

    /// When [`tick`](Self::tick) must be called next (ns since the epoch), if anything waits.
    pub fn next_deadline(&self) -> Option<i64> {
        match &self.orderer {
            Orderer::Arrival => None,
            Orderer::Causal(buf) => buf.next_deadline(),
            Orderer::Total(buf) => buf.next_deadline(),
        }
    }

    /// True once `max_messages` messages were delivered: the caller should stop reading.
    pub fn is_done(&self) -> bool {
        self.cfg.max_messages.is_some_and(|m| self.delivered >= m)
    }

    /// Messages delivered so far.
    pub fn delivered_count(&self) -> u64 {
        self.delivered
    }

    /// Messages currently held (ordering buffer + withheld after `max_messages`).
    pub fn buffered(&self) -> u64 {
        let in_buffer = match &self.orderer {
            Orderer::Arrival => 0,
            Orderer::Causal(buf) => buf.len(),
            Orderer::Total(buf) => buf.len(),
        };
        in_buffer as u64 + self.withheld
    }

    /// Messages held in the ordering buffer per partition (partitions holding none are omitted).
    pub fn held_by_partition(&self) -> impl Iterator<Item = (i32, u64)> + '_ {
        self.partitions
            .iter()
            .filter(|(_, s)| s.held > 0)
            .map(|(p, s)| (*p, s.held))
    }

    /// Per partition, the offset to commit: the lowest offset still held, else one past the last
    /// record read. Only partitions from which something was read are listed.
    ///
    /// Costs O(buffered messages); call it at commit time, not per record.
    pub fn commit_positions(&self) -> Vec<(i32, i64)> {
        let mut pos: BTreeMap<i32, i64> = self
            .partitions
            .iter()
            .map(|(p, s)| (*p, s.withheld_min.map_or(s.next, |w| w.min(s.next))))
            .collect();
        let mut lower = |h: &BufferedMessage| {
            if let Some(p) = pos.get_mut(&h.partition) {
                *p = (*p).min(h.offset);
            }
        };
        match &self.orderer {
            Orderer::Arrival => {}
            Orderer::Causal(buf) => buf.iter_waiting().for_each(&mut lower),
            Orderer::Total(buf) => buf.iter_waiting().for_each(&mut lower),
        }
        pos.into_iter().collect()
    }

    /// The report so far (the shell prints it on every exit path).
    pub fn summary(&self) -> ConsumerSummary {
        let violations = ViolationKind::CONSUMER
            .iter()
            .map(|k| (k.as_str(), self.violations[k.index()]))
            .collect();
        let mut nodes: BTreeMap<String, ConsumerNodeSummary> = self
            .node_messages
            .iter()
            .map(|(n, m)| {
                (
                    n.to_string(),
                    ConsumerNodeSummary {
                        messages: *m,
                        offset_ms: None,
                    },
                )
            })
            .collect();
        let mut concurrent_pairs = 0;
        if let Some(an) = &self.analyzer {
            let s = an.summary();
            concurrent_pairs = s.concurrent_pairs;
            for (node, st) in s.nodes.iter() {
                if let Some(ns) = nodes.get_mut(&**node) {
                    ns.offset_ms = st.offset_ms.filter(|x| x.is_finite());
                }
            }
        }
        ConsumerSummary {
            received: self.received,
            delivered: self.delivered,
            malformed: self.malformed,
            buffered: self.buffered(),
            duplicates: self.duplicates,
            already_delivered: self.already_delivered,
            released_early: self.released_early,
            violations,
            concurrent_pairs,
            without_seq: self.without_seq,
            without_vector: self.without_vector,
            unordered: self.unordered,
            nodes,
            verify: None,
        }
    }

    fn count_node(&mut self, node: &NodeId) {
        if let Some(n) = self.node_messages.get_mut(node) {
            *n += 1;
        } else if self.node_messages.len() < MAX_TRACKED_NODES {
            self.node_messages.insert(node.clone(), 1);
        }
    }

    fn withhold(&mut self, partition: i32, offset: i64) {
        self.withheld += 1;
        let st = self.partitions.entry(partition).or_default();
        st.withheld_min = Some(st.withheld_min.map_or(offset, |w| w.min(offset)));
    }

    fn report_malformed<S: EventSink + ?Sized>(
        &mut self,
        partition: i32,
        offset: i64,
        error: &str,
        sink: &mut S,
    ) {
        self.malformed += 1;
        sink.malformed(partition, offset, error);
    }

    fn report<S: EventSink + ?Sized>(&mut self, v: &ViolationReport<'_>, sink: &mut S) {
        self.violations[v.kind.index()] += 1;
        sink.violation(v);
    }

    /// Reports the analysis findings of the current record. `buffer_saw_duplicate`: the delivery
    /// buffer already reports this record as a duplicate.
    fn emit_found<S: EventSink + ?Sized>(&mut self, buffer_saw_duplicate: bool, sink: &mut S) {
        let mut found = std::mem::take(&mut self.found);
        for v in found.drain(..) {
            if v.kind == ViolationKind::Duplicate {
                if buffer_saw_duplicate {
                    continue;
                }
                if matches!(self.orderer, Orderer::Arrival) {
                    self.duplicates += 1;
                }
            }
            self.report(
                &ViolationReport::new(v.kind, &v.node, &v.ids, &v.detail),
                sink,
            );
        }
        self.found = found;
    }

    fn emit_released<S: EventSink + ?Sized>(&mut self, sink: &mut S) {
        self.emit_released_with(&[], sink);
    }

    /// Delivers what the ordering buffer released. `current` is the value of the record being
    /// offered, if any: the only message that may come out without its own copy
    /// ([`BufferedMessage::raw`]); every other caller has none to give.
    fn emit_released_with<S: EventSink + ?Sized>(&mut self, current: &[u8], sink: &mut S) {
        if self.released.is_empty() {
            return;
        }
        let mut released = std::mem::take(&mut self.released);
        for d in released.drain(..) {
            if let Some(st) = self.partitions.get_mut(&d.item.partition) {
                st.held = st.held.saturating_sub(1);
            }
            if d.release.is_early() {
                if d.release == Release::Timeout {
                    self.released_early.timeout += 1;
                } else {
                    self.released_early.buffer_full += 1;
                }
                let detail = describe_early_release(&d, self.cfg.causal_timeout_ms);
                let h = &d.item;
                self.report(
                    &ViolationReport::new(
                        ViolationKind::ReleasedEarly,
                        &d.node,
                        std::slice::from_ref(&h.env.id),
                        &detail,
                    ),
                    sink,
                );
            }
            let h = d.item;
            if self.is_done() {
                // Released by the order but not delivered: the checkpoint must not count it.
                let t = h.env.timestamp.logical_time;
                let n = d.number.get();
                let c = self.unsent.entry(d.node.clone()).or_insert((n, t));
                if n < c.0 {
                    *c = (n, t);
                }
                self.withhold(h.partition, h.offset);
                continue;
            }
            if matches!(self.orderer, Orderer::Total(_)) && d.release != Release::Late {
                self.last_in_order = Some((
                    h.env.timestamp.logical_time.unwrap_or_default(),
                    d.node.clone(),
                    d.number.get(),
                ));
            }
            self.delivered += 1;
            let raw = match &h.raw {
                Some(kept) => Cow::Borrowed(&kept[..]),
                None => shown(h.form, current),
            };
            sink.deliver(&Delivery {
                partition: h.partition,
                offset: h.offset,
                release: d.release,
                form: h.form,
                raw: &raw,
                envelope: &h.env,
            });
        }
        self.released = released;
    }
}

/// "node B seq 4 released after waiting 5000 ms; missing: A 3..5; silent members: C".
fn describe_early_release<T>(d: &Delivered<T>, timeout_ms: u64) -> String {
    use std::fmt::Write;
    // A send stamp's own vector entry is its seq, so both buffers' numbers read as a seq.
    let (node, seq) = (&d.node, d.number.get());
    let mut s = match d.release {
        Release::Timeout => format!("node {node} seq {seq} released after waiting {timeout_ms} ms"),
        _ => format!("node {node} seq {seq} released because the buffer is full"),
    };
    if !d.missing.is_empty() {
        s.push_str("; missing:");
        for (i, g) in d.missing.iter().enumerate() {
            let sep = if i == 0 { " " } else { ", " };
            if g.first == g.last {
                let _ = write!(s, "{sep}{} {}", g.node, g.first);
            } else {
                let _ = write!(s, "{sep}{} {}..{}", g.node, g.first, g.last);
            }
        }
    }
    if !d.silent.is_empty() {
        s.push_str("; silent members:");
        for (i, n) in d.silent.iter().enumerate() {
            let _ = write!(s, "{}{n}", if i == 0 { " " } else { ", " });
        }
    }
    if d.missing.is_empty() && d.silent.is_empty() {
        s.push_str(" before everything it depends on arrived");
    }
    s
}

#[cfg(test)]
mod tests;
