//! kafka-timesync: physical, Lamport, vector and hybrid logical clocks for Kafka messages, SNTP
//! discipline of a node's software clock, and causal / total-order delivery on the consumer side.
//!
//! The library is split into an I/O-free core and thin shells:
//!
//! * [`time`] — the injected time source every "now" comes from.
//! * [`clock`] — physical (simulated skew/drift/random variation plus correction), Lamport, vector, hybrid.
//! * [`envelope`] — the JSON message format and its strict, bounded decoder.
//! * [`stamp_headers`] — the same stamp in Kafka record headers, the value left untouched.
//! * [`delivery`] — causal and total-order delivery buffers.
//! * [`analysis`] — ordering analysis over a stream (FIFO, causality, skew).
//! * [`ntp`] — SNTP math, filtering, selection and clock discipline (pure) plus the UDP client.
//! * [`config`] — `TimeSyncConfig`, loadable from TOML, and the one flag > environment > file merge.
//! * [`verify`] — did Kafka keep every acknowledged write (acknowledgement logs vs. what was read).
//!
//! Nothing in the core opens a socket or reads the system clock directly: whatever needs the time
//! takes a [`time::TimeSource`].

pub mod analysis;
pub mod clock;
pub mod config;
pub mod consumer;
pub mod delivery;
pub mod envelope;
pub mod kafka;
pub mod metrics;
pub mod ntp;
pub mod producer;
pub mod stamp_headers;
pub mod state;
pub mod time;
pub mod verify;
pub mod violation;

/// A node's identifier (the Kafka message key). Cheap to clone.
pub type NodeId = std::sync::Arc<str>;
