//! Total-order delivery buffer. Placeholder.
