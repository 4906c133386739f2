//! Configuration. Placeholder.
