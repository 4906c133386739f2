//! What the consumer engine reports, and the sink it reports to.
//!
//! The engine never formats anything itself: it calls an [`EventSink`] synchronously with borrowed
//! views ([`Delivery`], [`ViolationReport`]) so that a message in arrival mode goes from the Kafka
//! buffer to stdout without being copied. [`Event`] is the owned form, collected by
//! [`CollectSink`] (tests, tools).

use crate::delivery::Release;
use crate::envelope::{Envelope, Form};
use crate::violation::ViolationKind;
use crate::NodeId;
use serde::Serialize;
use std::collections::BTreeMap;

/// One message handed to the application.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    /// Kafka partition the record came from.
    pub partition: i32,
    /// Its offset in that partition.
    pub offset: i64,
    /// Why it was released now.
    pub release: Release,
    /// Where the record carried its stamp.
    pub form: Form,
    /// The record's value: for [`Form::Json`] the envelope as received (valid JSON, raw line
    /// breaks removed); for [`Form::Headers`] the content exactly as received (any bytes).
    pub raw: &'a [u8],
    /// The decoded stamp (for [`Form::Headers`] its `content` is empty: the content is `raw`).
    pub envelope: &'a Envelope,
}

/// One ordering violation (analysis), forced release (delivery) or verification violation
/// ([`crate::verify`]).
#[derive(Debug, Clone, Copy)]
pub struct ViolationReport<'a> {
    /// What was found.
    pub kind: ViolationKind,
    /// The node whose message revealed it.
    pub node: &'a str,
    /// The message ids involved.
    pub ids: &'a [String],
    /// A sentence for people.
    pub detail: &'a str,
    /// The partition concerned (verification violations).
    pub partition: Option<i32>,
    /// The offsets concerned (verification violations).
    pub offsets: &'a [i64],
}

impl<'a> ViolationReport<'a> {
    /// A report without partition or offsets (ordering violations and forced releases).
    pub fn new(kind: ViolationKind, node: &'a str, ids: &'a [String], detail: &'a str) -> Self {
        Self {
            kind,
            node,
            ids,
            detail,
            partition: None,
            offsets: &[],
        }
    }
}

/// Receives the engine's events as they happen.
///
/// Methods are infallible: writers remember their first I/O error for the caller to check, so the
/// engine's bookkeeping is never left half-done by a broken pipe.
pub trait EventSink {
    /// A message is delivered.
    fn deliver(&mut self, d: &Delivery<'_>);
    /// An ordering violation or a forced release.
    fn violation(&mut self, v: &ViolationReport<'_>);
    /// A record that is not a valid envelope; it is skipped.
    fn malformed(&mut self, partition: i32, offset: i64, error: &str);
    /// The final report (printed on every exit path).
    fn summary(&mut self, s: &ConsumerSummary);
}

/// Per-node figures in the summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConsumerNodeSummary {
    /// Valid messages received from the node.
    pub messages: u64,
    /// Estimated clock offset of the node in milliseconds (ordering analysis only; `null` when
    /// `--analyze-ordering` is off or there is not enough data).
    pub offset_ms: Option<f64>,
}

/// The final report.
///
/// Accounting: every record read is counted in `received`; it then ends up in exactly one of
/// `malformed`, `delivered`, `buffered` (still held at exit: not committed, read again by the next
/// run) or — in causal and total modes — `duplicates` (refused by the buffer, not delivered again)
/// or `already_delivered` (read again after a restart, delivered by an earlier run).
/// In arrival mode duplicates are delivered as they come and `duplicates` counts what the ordering
/// analysis recognised as such (0 without `--analyze-ordering`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConsumerSummary {
    /// Records read from Kafka (valid or not).
    pub received: u64,
    /// Messages delivered.
    pub delivered: u64,
    /// Records that were not valid envelopes.
    pub malformed: u64,
    /// Messages still held (waiting for predecessors, or past `--max-messages`) at exit.
    pub buffered: u64,
    /// Duplicate messages (see the type's documentation).
    pub duplicates: u64,
    /// Messages read again after a restart that an earlier run had delivered after its last
    /// commit position (causal and total modes): not delivered again.
    pub already_delivered: u64,
    /// Reported violations by kind name; every kind of [`ViolationKind::CONSUMER`] is present.
    pub violations: BTreeMap<&'static str, u64>,
    /// Concurrent pairs counted by the ordering analysis (0 without it).
    pub concurrent_pairs: u64,
    /// Valid messages without `seq` (the prototype's): FIFO-checked by Kafka offset.
    pub without_seq: u64,
    /// Causal mode: messages delivered without a vector. They have no causal predecessors but
    /// their own node's earlier seqs (none without a seq: delivered on arrival).
    pub without_vector: u64,
    /// Causal and total modes: messages delivered on arrival because they lack what the order
    /// needs (causal: a vector or a seq; total: a seq and a Lamport time).
    pub unordered: u64,
    /// Per-node figures, by node id.
    pub nodes: BTreeMap<String, ConsumerNodeSummary>,
    /// Causal and total modes: the `released_early` violations by reason (not in the JSON
    /// summary; the metrics' `released_early_total{reason}`).
    #[serde(skip)]
    pub released_early: EarlyReleases,
    /// The verification report (`kafka-consumer --verify`; absent without it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify: Option<crate::verify::Report>,
}

/// Messages a delivery order released before their ordering condition held, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EarlyReleases {
    /// Waited `--causal-timeout` ([`Release::Timeout`]).
    pub timeout: u64,
    /// The buffer was full ([`Release::BufferFull`]).
    pub buffer_full: u64,
}

/// Owned form of everything an [`EventSink`] receives.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// See [`Delivery`].
    Deliver {
        /// Partition.
        partition: i32,
        /// Offset.
        offset: i64,
        /// Release reason.
        release: Release,
        /// Sending node.
        node: NodeId,
        /// The sender's seq (`None` for the prototype's messages).
        seq: Option<u64>,
        /// The message id.
        id: String,
        /// The raw record value.
        raw: Vec<u8>,
    },
    /// See [`ViolationReport`].
    Violation {
        /// Kind.
        kind: ViolationKind,
        /// Node.
        node: String,
        /// Ids.
        ids: Vec<String>,
        /// Detail.
        detail: String,
        /// Partition (verification violations).
        partition: Option<i32>,
        /// Offsets (verification violations).
        offsets: Vec<i64>,
    },
    /// A malformed record.
    Malformed {
        /// Partition.
        partition: i32,
        /// Offset.
        offset: i64,
        /// Error.
        error: String,
    },
    /// The summary.
    Summary(ConsumerSummary),
}

/// A sink that keeps every event (tests and tools).
#[derive(Debug, Default, Clone)]
pub struct CollectSink {
    /// Events in the order they were reported.
    pub events: Vec<Event>,
}

impl CollectSink {
    /// Delivered messages as (node, seq, release), in delivery order; seq 0 stands for a
    /// message without one.
    pub fn delivered(&self) -> Vec<(String, u64, Release)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Deliver {
                    node, seq, release, ..
                } => Some((node.to_string(), seq.unwrap_or(0), *release)),
                _ => None,
            })
            .collect()
    }

    /// Reported violations as (kind, node).
    pub fn violations(&self) -> Vec<(&'static str, String)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Violation { kind, node, .. } => Some((kind.as_str(), node.clone())),
                _ => None,
            })
            .collect()
    }

    /// Malformed records as (partition, offset).
    pub fn malformed(&self) -> Vec<(i32, i64)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Malformed {
                    partition, offset, ..
                } => Some((*partition, *offset)),
                _ => None,
            })
            .collect()
    }
}

impl EventSink for CollectSink {
    fn deliver(&mut self, d: &Delivery<'_>) {
        self.events.push(Event::Deliver {
            partition: d.partition,
            offset: d.offset,
            release: d.release,
            node: d.envelope.timestamp.node_id.clone(),
            seq: d.envelope.seq,
            id: d.envelope.id.clone(),
            raw: d.raw.to_vec(),
        });
    }

    fn violation(&mut self, v: &ViolationReport<'_>) {
        self.events.push(Event::Violation {
            kind: v.kind,
            node: v.node.to_string(),
            ids: v.ids.to_vec(),
            detail: v.detail.to_string(),
            partition: v.partition,
            offsets: v.offsets.to_vec(),
        });
    }

    fn malformed(&mut self, partition: i32, offset: i64, error: &str) {
        self.events.push(Event::Malformed {
            partition,
            offset,
            error: error.to_string(),
        });
    }

    fn summary(&mut self, s: &ConsumerSummary) {
        self.events.push(Event::Summary(s.clone()));
    }
}
