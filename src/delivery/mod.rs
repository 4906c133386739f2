//! Delivery orders for a consumer: causal (vector clocks) and total (Lamport time, node id).
//!
//! Both buffers are sans-IO and single-threaded: the caller hands in every message together with
//! the current time (`now_ns`, Unix nanoseconds from its [`TimeSource`](crate::time::TimeSource))
//! and receives the messages that became deliverable, in delivery order, appended to an output
//! vector. Nothing is ever dropped silently: every accepted message eventually comes out exactly
//! once, either because its ordering condition holds ([`Release::Ready`], or
//! [`Release::AfterSkip`] when it holds only because a predecessor was given up on), because it
//! waited the configured maximum ([`Release::Timeout`]), because the buffer was full
//! ([`Release::BufferFull`]), or because its place in the order had already passed when it
//! arrived ([`Release::Late`]). A second copy of a message is handed back as [`Offer::Duplicate`].
//!
//! Memory is bounded by [`DeliveryConfig::capacity`] waiting messages plus O(nodes) bookkeeping.

pub mod causal;
pub mod checkpoint;
pub mod total;

mod arrivals;
mod ranges;

pub use causal::CausalBuffer;
pub use checkpoint::{CausalNode, Checkpoint, CheckpointError, TotalNode, TotalState};
pub use total::TotalOrderBuffer;

use crate::NodeId;
use std::fmt;

/// Why a message left a delivery buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Release {
    /// Its ordering condition holds: everything it must follow has been delivered.
    Ready,
    /// Its ordering condition holds, but only because predecessors were given up on: one of its
    /// causal predecessors was skipped by an early release (of itself or of another message) and
    /// has not been delivered before it. Causal delivery only: in total order a message's
    /// condition never depends on what was given up.
    AfterSkip,
    /// Released early: it waited the configured maximum for something that did not come.
    Timeout,
    /// Released early: the buffer was full (the causal buffer releases the oldest waiting
    /// message, the total-order buffer the smallest one in the order).
    BufferFull,
    /// It arrived after its place in the order had been given up or passed; delivered at once.
    Late,
}

impl Release {
    /// The name used in JSON output: "ready", "after-skip", "timeout", "buffer-full", "late".
    pub fn as_str(self) -> &'static str {
        match self {
            Release::Ready => "ready",
            Release::AfterSkip => "after-skip",
            Release::Timeout => "timeout",
            Release::BufferFull => "buffer-full",
            Release::Late => "late",
        }
    }

    /// True for a release that did not wait for the ordering condition (`Timeout`, `BufferFull`).
    pub fn is_early(self) -> bool {
        matches!(self, Release::Timeout | Release::BufferFull)
    }
}

impl fmt::Display for Release {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A run of one node's messages, by that node's send count (`first..=last`), that a delivery
/// gave up waiting for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Gap {
    /// The node whose messages are missing.
    pub node: NodeId,
    /// The first missing send count.
    pub first: u64,
    /// The last missing send count (inclusive).
    pub last: u64,
}

impl Gap {
    /// How many messages the gap spans (saturating).
    pub fn count(&self) -> u64 {
        self.last.saturating_sub(self.first).saturating_add(1)
    }
}

/// Which of its sender's messages a released message is. The causal buffer knows a message by
/// the sender's own vector entry, the total-order buffer by its seq; the two are equal for a send
/// stamp (a kafka-timesync vector counts messages sent), not for arbitrary input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SenderNumber {
    /// Causal buffer: the sender's own vector entry (messages it had sent, this one included).
    VectorEntry(u64),
    /// Total-order buffer: the message's seq.
    Seq(u64),
}

impl SenderNumber {
    /// The number, whichever buffer gave it.
    pub fn get(self) -> u64 {
        match self {
            SenderNumber::VectorEntry(n) | SenderNumber::Seq(n) => n,
        }
    }
}

/// A message leaving a buffer.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivered<T> {
    /// The sending node.
    pub node: NodeId,
    /// Which of the sender's messages this is, as the releasing buffer numbers them.
    pub number: SenderNumber,
    /// Why it was released now.
    pub release: Release,
    /// The caller's payload, as offered.
    pub item: T,
    /// Causal buffer, early release: the causal predecessors given up on so that this message
    /// could be delivered. A given-up message that arrives later is delivered as
    /// [`Release::Late`]. Empty otherwise.
    pub missing: Vec<Gap>,
    /// Total-order buffer, early release: the members that could still send something ordered
    /// before this message (the silent ones it stopped waiting for). Empty otherwise.
    pub silent: Vec<NodeId>,
}

/// The outcome of offering a message to a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Offer<T> {
    /// The message is buffered or already delivered (look at the output vector).
    Accepted,
    /// The same (node, send count) was already delivered or is waiting: the copy is handed back
    /// to be reported; it is never delivered twice.
    Duplicate(T),
}

impl<T> Offer<T> {
    /// True for [`Offer::Duplicate`].
    pub fn is_duplicate(&self) -> bool {
        matches!(self, Offer::Duplicate(_))
    }
}

/// Bounds shared by both buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryConfig {
    /// The most messages held at once. Offering one more releases one early with
    /// [`Release::BufferFull`] (the causal buffer's oldest waiting message, the total-order
    /// buffer's smallest in the order). With 0, nothing waits.
    pub capacity: usize,
    /// The longest a message waits, in nanoseconds from when it was offered, before it is
    /// released early with [`Release::Timeout`] (negative counts as 0).
    pub max_wait_ns: i64,
}

impl DeliveryConfig {
    /// A configuration with the given capacity and maximum wait.
    pub fn new(capacity: usize, max_wait_ns: i64) -> Self {
        Self {
            capacity,
            max_wait_ns,
        }
    }

    /// The deadline for a message offered at `now_ns`.
    pub(crate) fn deadline(&self, now_ns: i64) -> i64 {
        now_ns.saturating_add(self.max_wait_ns.max(0))
    }
}

impl Default for DeliveryConfig {
    /// 10 000 messages, 5 s (the consumer's `--causal-timeout` default).
    fn default() -> Self {
        Self {
            capacity: 10_000,
            max_wait_ns: 5_000_000_000,
        }
    }
}
