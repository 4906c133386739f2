//! The four clocks a node can stamp messages with.
//!
//! Every clock here is `Send + Sync`: one instance is shared by all tasks of a node.

pub mod hybrid;
pub mod lamport;
pub mod physical;
pub mod vector;

pub use hybrid::{HybridClock, HybridTimestamp};
pub use lamport::LamportClock;
pub use physical::{PhysicalClock, PhysicalReading, Simulation};
pub use vector::{CausalOrder, VectorClock, VectorTimestamp};

use serde::{Deserialize, Serialize};

/// Which clock orders a message (`timestamp.clock_type` in the envelope).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClockType {
    /// The node's physical clock (simulation and correction applied).
    Physical,
    /// Lamport's logical clock.
    Logical,
    /// A vector clock keyed by node id.
    Vector,
    /// A hybrid logical clock (Kulkarni et al., 2014).
    Hybrid,
}

impl ClockType {
    /// The name used on the wire and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            ClockType::Physical => "physical",
            ClockType::Logical => "logical",
            ClockType::Vector => "vector",
            ClockType::Hybrid => "hybrid",
        }
    }
}

impl std::fmt::Display for ClockType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ClockType {
    type Err = UnknownClockType;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "physical" => Ok(ClockType::Physical),
            "logical" | "lamport" => Ok(ClockType::Logical),
            "vector" => Ok(ClockType::Vector),
            "hybrid" | "hlc" => Ok(ClockType::Hybrid),
            other => Err(UnknownClockType(other.to_string())),
        }
    }
}

/// A clock type name that is none of physical, logical, vector, hybrid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown clock type '{0}' (expected physical, logical, vector or hybrid)")]
pub struct UnknownClockType(pub String);
