//! SNTP. Placeholder.
