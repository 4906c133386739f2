//! Ordering analysis. Placeholder.
