//! The engine's settings: the delivery mode and the limits the consumer's command line maps onto.

use crate::envelope::DecodeLimits;
use crate::NodeId;
use std::fmt;

/// How messages are ordered for delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeliveryMode {
    /// In the order they are read.
    #[default]
    Arrival,
    /// Respecting happened-before (vector clocks).
    Causal,
    /// One total order (Lamport time, node id), identical in every replica.
    Total,
}

impl DeliveryMode {
    /// The command-line name.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryMode::Arrival => "arrival",
            DeliveryMode::Causal => "causal",
            DeliveryMode::Total => "total",
        }
    }
}

impl fmt::Display for DeliveryMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A delivery mode name that is none of arrival, causal, total.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown delivery mode '{0}' (expected arrival, causal or total)")]
pub struct UnknownDeliveryMode(pub String);

impl std::str::FromStr for DeliveryMode {
    type Err = UnknownDeliveryMode;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "arrival" => Ok(DeliveryMode::Arrival),
            "causal" => Ok(DeliveryMode::Causal),
            "total" => Ok(DeliveryMode::Total),
            other => Err(UnknownDeliveryMode(other.to_string())),
        }
    }
}

/// The engine's settings (the consumer's command line maps onto these).
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Delivery order.
    pub mode: DeliveryMode,
    /// Capacity of the causal/total buffer and size of the analysis window (`--buffer-size`).
    pub buffer_size: usize,
    /// Longest a message waits for a missing predecessor, ms (`--causal-timeout`).
    pub causal_timeout_ms: u64,
    /// Total-order membership (`--nodes`); `None` = the nodes seen so far.
    pub nodes: Option<Vec<NodeId>>,
    /// Run the ordering analysis (`--analyze-ordering`).
    pub analyze: bool,
    /// Skew warning threshold, ms (`--max-skew-ms`).
    pub max_skew_ms: f64,
    /// Deliver at most this many messages (`--max-messages`); later ones are held, not committed.
    pub max_messages: Option<u64>,
    /// Limits of the envelope decoder.
    pub limits: DecodeLimits,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            mode: DeliveryMode::Arrival,
            buffer_size: 1_000,
            causal_timeout_ms: 5_000,
            nodes: None,
            analyze: false,
            max_skew_ms: 100.0,
            max_messages: None,
            limits: DecodeLimits::default(),
        }
    }
}
