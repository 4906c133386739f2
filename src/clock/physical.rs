//! The physical clock. Placeholder; implemented by the physical-clock work.

/// Placeholder.
#[derive(Debug)]
pub struct PhysicalClock;
