//! kafka-timesync: physical, Lamport, vector and hybrid logical clocks for Kafka messages, SNTP
//! discipline of a node's software clock, and causal / total-order delivery on the consumer side.
//!
//! The library is split into an I/O-free core and thin shells. The core needs no cargo feature
//! (`default-features = false` builds it without librdkafka, tokio or clap):
//!
//! * [`time`] — the injected time source every "now" comes from.
//! * [`clock`] — physical (simulated skew/drift/random variation plus correction), Lamport, vector, hybrid.
//! * [`envelope`] — the JSON message format and its strict, bounded decoder.
//! * [`stamp_headers`] — the same stamp in Kafka record headers, the value left untouched.
//! * [`delivery`] — causal and total-order delivery buffers.
//! * [`analysis`] — ordering analysis over a stream (FIFO, causality, skew).
//! * [`ntp`] — SNTP math, filtering, selection and clock discipline (pure), and the request and
//!   reply of one exchange without a socket.
//! * [`consumer`] — the consumer engine: records in; deliveries, violations, commit positions out.
//! * [`config`] — `TimeSyncConfig`, loadable from TOML, and the one flag > environment > file merge.
//! * [`verify`] — did Kafka keep every acknowledged write (acknowledgement logs vs. what was read).
//! * [`violation`], [`redact`], [`state`] — violation kinds, secret redaction, saved clock state.
//!
//! The `kafka` feature (default) adds the shells on rdkafka and tokio: `kafka` (the Kafka
//! client layer), `producer`, `metrics` (with its HTTP endpoint), the NTP UDP client and
//! background task (`ntp::exchange`, `ntp::spawn`) and `verify::Verifier`. The `cli` feature
//! (default) is what the `kafka-producer`, `kafka-consumer` and `time_sync_demo` binaries need.
//!
//! Nothing in the core opens a socket or reads the system clock directly: whatever needs the time
//! takes a [`time::TimeSource`].
//!
//! # A tour
//!
//! Node `b` answers node `a`; the answer reaches the consumer first. Each message is stamped
//! with its node's vector clock, travels as a JSON envelope, and the consumer's
//! [`delivery::CausalBuffer`] delivers the question before the answer:
//!
//! ```
//! use kafka_timesync::clock::{ClockType, VectorClock};
//! use kafka_timesync::delivery::{CausalBuffer, DeliveryConfig, Release};
//! use kafka_timesync::envelope::{Envelope, MessageTimestamp};
//!
//! // A producer stamps a message and encodes it as the record value.
//! fn send(clock: &VectorClock, content: &str) -> Vec<u8> {
//!     let vt = clock.send_stamp();
//!     Envelope {
//!         id: format!("{}-{}", clock.node(), vt.get(clock.node())),
//!         content: content.into(),
//!         seq: Some(vt.get(clock.node())),
//!         timestamp: MessageTimestamp {
//!             node_id: clock.node().clone(),
//!             timestamp: 1_790_000_000.0,
//!             clock_type: ClockType::Vector,
//!             physical_time: None,
//!             logical_time: None,
//!             vector_time: Some(vt),
//!             hybrid_time: None,
//!             simulated_time: None,
//!             unmapped_vector_entries: None,
//!         },
//!         simulated_skew_ms: None,
//!     }
//!     .encode()
//! }
//!
//! let (a, b) = (VectorClock::new("a"), VectorClock::new("b"));
//! let question = send(&a, "ready?");
//! b.merge(&a.snapshot()); // b has read a's question
//! let answer = send(&b, "yes");
//!
//! // The consumer decodes what it reads and delivers causally.
//! let mut buffer = CausalBuffer::new(DeliveryConfig::default());
//! let mut out = Vec::new();
//! for (now_ns, record) in [(1, &answer), (2, &question)] {
//!     let env = Envelope::decode(record).expect("a valid envelope");
//!     let vt = env.timestamp.vector_time.clone().expect("vector stamped");
//!     buffer.offer(env.timestamp.node_id.clone(), &vt, env.content, now_ns, &mut out);
//! }
//! let delivered: Vec<(&str, Release)> = out.iter().map(|d| (&*d.item, d.release)).collect();
//! assert_eq!(delivered, [("ready?", Release::Ready), ("yes", Release::Ready)]);
//! ```
//!
//! `examples/causal_service.rs` is the same loop around an rdkafka consumer.

pub mod analysis;
pub mod clock;
pub mod config;
pub mod consumer;
pub mod delivery;
pub mod envelope;
#[cfg(feature = "kafka")]
pub mod kafka;
#[cfg(feature = "kafka")]
pub mod metrics;
pub mod ntp;
#[cfg(feature = "kafka")]
pub mod producer;
pub mod redact;
pub mod stamp_headers;
pub mod state;
pub mod time;
pub mod verify;
pub mod violation;

/// A node's identifier (the Kafka message key). Cheap to clone.
pub type NodeId = std::sync::Arc<str>;
