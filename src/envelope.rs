//! The message envelope: the JSON every kafka-timesync message carries (a superset of the
//! Python prototype's format). Placeholder for the strict decoder.

use crate::clock::{ClockType, HybridTimestamp, VectorTimestamp};
use crate::NodeId;
use serde::{Deserialize, Serialize};

/// One message as it travels through Kafka.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Unique message id (a UUID v4 string when produced by kafka-timesync).
    pub id: String,
    /// The payload.
    pub content: String,
    /// The sending node's send counter, from 1.
    pub seq: u64,
    /// When and by which clock the message was stamped.
    pub timestamp: MessageTimestamp,
    /// The error injected by clock simulation at stamping time; present only while simulating.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub simulated_skew_ms: Option<f64>,
}

/// The `timestamp` object of an envelope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageTimestamp {
    /// The sending node.
    pub node_id: NodeId,
    /// The host's system time when stamped (seconds since the epoch).
    pub timestamp: f64,
    /// The clock that orders this message.
    pub clock_type: ClockType,
    /// The node's physical clock (simulation and correction applied), seconds since the epoch.
    pub physical_time: f64,
    /// The node's Lamport clock.
    pub logical_time: u64,
    /// The node's vector clock, whenever it keeps one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector_time: Option<VectorTimestamp>,
    /// The node's hybrid logical clock, for clock type `hybrid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hybrid_time: Option<HybridTimestamp>,
}
