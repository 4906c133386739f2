//! Causal delivery buffer. Placeholder.
