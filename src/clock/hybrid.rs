//! Hybrid logical clock (Kulkarni, Demirbas et al., 2014). Implementation: see issue #2 brief.

use serde::{Deserialize, Serialize};

/// An HLC timestamp: wall-clock milliseconds plus a logical counter that orders events within
/// the same millisecond. Ordered lexicographically (wall_ms, then logical).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct HybridTimestamp {
    /// Milliseconds since the Unix epoch (the largest physical time seen).
    pub wall_ms: u64,
    /// Events at the same `wall_ms`.
    pub logical: u32,
}

/// Placeholder; implemented by the HLC work.
#[derive(Debug)]
pub struct HybridClock;
