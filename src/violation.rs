//! The kinds of violation the tools report, with their wire names.
//!
//! One enum for every kind: the ordering analysis finds the first seven, the delivery orders
//! report `released_early`, and `kafka-consumer --verify` the last five. [`ViolationKind::as_str`]
//! is the only place their names are written: events, summaries, reports, metrics labels and
//! serde all go through it, and [`ViolationKind::from_str`](std::str::FromStr) refuses any other
//! name ([`UnknownViolationKind`]).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// A kind of violation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ViolationKind {
    /// A node's seq jumped ahead.
    FifoGap,
    /// A missing seq arrived after a higher one.
    FifoReorder,
    /// The same `(node, seq)` again, or a reused message id.
    Duplicate,
    /// A message arrived before one of its causal predecessors.
    ArrivalBeforeCause,
    /// `m1 → m2` but `physical(m2) < physical(m1)`.
    PhysicalVsCausal,
    /// `m1 → m2` but `logical(m2) ≤ logical(m1)`.
    LamportVsCausal,
    /// A node's clock-offset estimate crossed the threshold.
    SkewThreshold,
    /// A delivery order released a message before its ordering condition held (timeout or full
    /// buffer).
    ReleasedEarly,
    /// Acknowledged at P/O; the consumer read P past O without seeing it.
    LostWrite,
    /// The record read at an acknowledged P/O carries another id (or is no message at all).
    InconsistentOffset,
    /// One id at two offsets: read where it was acknowledged and elsewhere too.
    DuplicateWrite,
    /// Within one node and partition, a later seq at a lower offset.
    NonmonotonicSend,
    /// A message whose send was reported failed is in the log.
    AbortedRead,
}

impl ViolationKind {
    /// Number of kinds.
    pub const COUNT: usize = 13;

    /// Every kind, in declaration order (the order metrics render them).
    pub const ALL: [ViolationKind; Self::COUNT] = [
        Self::FifoGap,
        Self::FifoReorder,
        Self::Duplicate,
        Self::ArrivalBeforeCause,
        Self::PhysicalVsCausal,
        Self::LamportVsCausal,
        Self::SkewThreshold,
        Self::ReleasedEarly,
        Self::LostWrite,
        Self::InconsistentOffset,
        Self::DuplicateWrite,
        Self::NonmonotonicSend,
        Self::AbortedRead,
    ];

    /// What the ordering analysis finds.
    pub const ANALYSIS: [ViolationKind; 7] = [
        Self::FifoGap,
        Self::FifoReorder,
        Self::Duplicate,
        Self::ArrivalBeforeCause,
        Self::PhysicalVsCausal,
        Self::LamportVsCausal,
        Self::SkewThreshold,
    ];

    /// What the consumer counts in its summary's `violations`: the analysis and the delivery
    /// orders, in the order the text summary lists them.
    pub const CONSUMER: [ViolationKind; 8] = [
        Self::FifoGap,
        Self::FifoReorder,
        Self::Duplicate,
        Self::ArrivalBeforeCause,
        Self::PhysicalVsCausal,
        Self::LamportVsCausal,
        Self::SkewThreshold,
        Self::ReleasedEarly,
    ];

    /// What the verification (`kafka-consumer --verify`) finds, in the order its report lists
    /// them.
    pub const VERIFICATION: [ViolationKind; 5] = [
        Self::LostWrite,
        Self::InconsistentOffset,
        Self::DuplicateWrite,
        Self::NonmonotonicSend,
        Self::AbortedRead,
    ];

    /// The wire name, e.g. `fifo_gap`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::FifoGap => "fifo_gap",
            Self::FifoReorder => "fifo_reorder",
            Self::Duplicate => "duplicate",
            Self::ArrivalBeforeCause => "arrival_before_cause",
            Self::PhysicalVsCausal => "physical_vs_causal",
            Self::LamportVsCausal => "lamport_vs_causal",
            Self::SkewThreshold => "skew_threshold",
            Self::ReleasedEarly => "released_early",
            Self::LostWrite => "lost_write",
            Self::InconsistentOffset => "inconsistent_offset",
            Self::DuplicateWrite => "duplicate_write",
            Self::NonmonotonicSend => "nonmonotonic_send",
            Self::AbortedRead => "aborted_read",
        }
    }

    /// The position in [`ALL`](Self::ALL), for per-kind counter arrays of
    /// [`COUNT`](Self::COUNT) entries.
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for ViolationKind {
    /// The wire name (honours width and alignment, e.g. `{:<22}`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// A violation kind name that is not one of [`ViolationKind::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown violation kind {0:?}")]
pub struct UnknownViolationKind(pub String);

impl FromStr for ViolationKind {
    type Err = UnknownViolationKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownViolationKind(s.to_string()))
    }
}

impl Serialize for ViolationKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ViolationKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_nothing_else_parses() {
        for k in ViolationKind::ALL {
            assert_eq!(k.as_str().parse::<ViolationKind>(), Ok(k));
            assert_eq!(k.to_string(), k.as_str());
            let json = serde_json::to_string(&k).unwrap();
            assert_eq!(json, format!("\"{}\"", k.as_str()));
            assert_eq!(serde_json::from_str::<ViolationKind>(&json).unwrap(), k);
        }
        for bad in ["fifo-gap", "FIFO_GAP", "", "released_early "] {
            assert_eq!(
                bad.parse::<ViolationKind>(),
                Err(UnknownViolationKind(bad.to_string()))
            );
            assert!(serde_json::from_str::<ViolationKind>(&format!("{bad:?}")).is_err());
        }
        let distinct: std::collections::HashSet<&str> =
            ViolationKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(distinct.len(), ViolationKind::COUNT);
    }

    #[test]
    fn the_subsets_partition_all_and_index_is_the_position() {
        for (i, k) in ViolationKind::ALL.into_iter().enumerate() {
            assert_eq!(k.index(), i);
            let in_consumer = ViolationKind::CONSUMER.contains(&k);
            let in_verification = ViolationKind::VERIFICATION.contains(&k);
            assert!(in_consumer != in_verification, "{k} in exactly one report");
            assert_eq!(
                ViolationKind::ANALYSIS.contains(&k),
                in_consumer && k != ViolationKind::ReleasedEarly
            );
        }
    }

    #[test]
    fn display_pads_like_a_str() {
        assert_eq!(
            format!("[{:<16}]", ViolationKind::FifoGap),
            "[fifo_gap        ]"
        );
    }
}
