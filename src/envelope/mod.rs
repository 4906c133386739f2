//! The message envelope: the JSON every kafka-timesync message carries (a superset of the
//! Python prototype's format), its compact encoder and its strict, bounded decoder.
//!
//! ```json
//! {"id":"6f1c…","content":"hello","seq":17,
//!  "timestamp":{"node_id":"producer-1","timestamp":1790000000.123,"clock_type":"vector",
//!    "physical_time":1790000000.223,"logical_time":5,
//!    "vector_time":{"producer-1":17,"producer-2":3},
//!    "hybrid_time":{"wall_ms":1790000000223,"logical":0}},
//!  "simulated_skew_ms":100.0}
//! ```
//!
//! # Decoding rules ([`decode`])
//!
//! Decoding checks the size and UTF-8, then parses the JSON in one pass that checks every field
//! as it is read, with fixed limits ([`DecodeLimits`]); every failure is a typed
//! [`DecodeError`] that names the offending field (e.g.
//! `timestamp.logical_time: negative counter -3`). In order:
//!
//! * the record must be non-empty, at most `max_bytes` long (checked before anything else, so
//!   unknown fields count towards the cap), valid UTF-8 and one JSON object;
//! * `id` (non-empty, ≤ `max_id_len` bytes), `content` and `timestamp` are required; inside
//!   `timestamp`, `node_id` (non-empty, ≤ `max_node_id_len`), `timestamp` and `clock_type` are
//!   required. `seq`, `physical_time` and `logical_time` are optional on read (kafka-timesync
//!   always writes them; the Python prototype wrote none of `seq`, and only its clock type's
//!   field), as are `vector_time`, `simulated_time` and `simulated_skew_ms`;
//! * counters (`seq`, `logical_time`, vector entries, `hybrid_time.wall_ms`) are integers in
//!   `0..=u64::MAX` (`hybrid_time.logical` in `0..=u32::MAX`): negative, fractional and
//!   overflowing values are rejected; an integral float such as `3.0` is accepted as 3;
//! * times (`timestamp`, `physical_time`, `simulated_time`, `simulated_skew_ms`) are finite
//!   numbers (a literal
//!   such as `1e400` that overflows to infinity is rejected);
//! * `clock_type` is one of `physical`, `logical`, `vector`, `hybrid`;
//! * `vector_time` is an object of node id → counter with at most `max_vector_entries` entries
//!   (the decoder stops at the first entry over the cap, before allocating it), no duplicate or
//!   empty node ids; zero counters are dropped (a missing entry *is* zero). The prototype's array
//!   form `[1,2,3]` is mapped when [`DecodeLimits::legacy_vector_nodes`] gives the node order
//!   (same length required); without one its entries are checked all the same, and the message
//!   has no vector ([`MessageTimestamp::unmapped_vector_entries`] says how many it carried);
//! * `hybrid_time` is required for clock type `hybrid`; clock type `vector` without
//!   `vector_time` (the prototype never created its vector clock) is a message with no vector;
//! * optional fields may be `null`, which means absent;
//! * a known field given twice is an error; unknown fields are skipped (forward compatibility)
//!   but may nest at most `max_depth` levels — skipping is bounded, never recursive beyond that,
//!   so a 10 000-deep document cannot overflow the stack.
//!
//! Semantic checks that need history (duplicate ids with different content, seq gaps) are not
//! the decoder's business: the consumer's analysis reports them.

mod decode;
mod encode;
mod error;
#[cfg(test)]
mod tests;

pub use decode::decode;
#[cfg(feature = "kafka")]
pub(crate) use encode::write_json_str;
pub(crate) use encode::write_u64;
pub(crate) use error::Printable;
pub use error::{DecodeError, DecodeLimits};

use crate::clock::{ClockType, HybridTimestamp, VectorTimestamp};
use crate::NodeId;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Where a record carries its stamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Form {
    /// The JSON [`Envelope`] is the record value, the content one of its fields.
    #[default]
    Json,
    /// The stamp is in record headers ([`crate::stamp_headers`]); the value is the content,
    /// byte for byte.
    Headers,
}

impl Form {
    /// The command-line and configuration name.
    pub fn as_str(self) -> &'static str {
        match self {
            Form::Json => "json",
            Form::Headers => "headers",
        }
    }
}

impl fmt::Display for Form {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A form name that is neither `json` nor `headers`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown envelope form '{0}' (expected json or headers)")]
pub struct UnknownForm(pub String);

impl std::str::FromStr for Form {
    type Err = UnknownForm;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "json" => Ok(Form::Json),
            "headers" => Ok(Form::Headers),
            other => Err(UnknownForm(other.to_string())),
        }
    }
}

/// One message as it travels through Kafka.
///
/// [`Envelope::encode_into`] writes these fields by hand, in this order: a new field belongs
/// there too (the property test `encode_matches_serde_json` compares it with serde_json).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Unique message id (a UUID v4 string when produced by kafka-timesync).
    pub id: String,
    /// The payload.
    pub content: String,
    /// The sending node's send counter, from 1. kafka-timesync always writes it; the prototype
    /// never did (its messages are FIFO-checked by Kafka offset instead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// When and by which clock the message was stamped.
    pub timestamp: MessageTimestamp,
    /// The error injected by clock simulation at stamping time; present only while simulating.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub simulated_skew_ms: Option<f64>,
}

/// The `timestamp` object of an envelope.
///
/// [`Envelope::encode_into`] writes these fields by hand, in this order: a new field belongs
/// there too (the property test `encode_matches_serde_json` compares it with serde_json).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageTimestamp {
    /// The sending node.
    pub node_id: NodeId,
    /// The host's system time when stamped (seconds since the epoch).
    pub timestamp: f64,
    /// The clock that orders this message.
    pub clock_type: ClockType,
    /// The node's physical clock (simulation and correction applied), seconds since the epoch.
    /// kafka-timesync always writes it; the prototype only for clock type `physical`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub physical_time: Option<f64>,
    /// The node's Lamport clock. kafka-timesync always writes it; the prototype only for clock
    /// type `logical`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logical_time: Option<u64>,
    /// The node's vector clock, whenever it keeps one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector_time: Option<VectorTimestamp>,
    /// The node's hybrid logical clock, for clock type `hybrid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hybrid_time: Option<HybridTimestamp>,
    /// The prototype's simulated clock reading (`timestamp + simulated_skew_ms / 1000`), seconds
    /// since the epoch; kafka-timesync folds simulation into `physical_time` and never writes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub simulated_time: Option<f64>,
    /// Entries of an array-form `vector_time` that could not be mapped to nodes (no
    /// [`DecodeLimits::legacy_vector_nodes`]); `vector_time` is then `None`. Never encoded.
    #[serde(skip)]
    pub unmapped_vector_entries: Option<usize>,
}

impl MessageTimestamp {
    /// The sending node's clock reading at stamping, from whichever time fields exist:
    /// `simulated_time` (the prototype's skewed clock), else `physical_time`, else `timestamp`
    /// (a node that sent no clock reading of its own stamped with its host clock).
    pub fn clock_reading(&self) -> f64 {
        self.simulated_time
            .or(self.physical_time)
            .unwrap_or(self.timestamp)
    }
}

impl Envelope {
    /// Compact JSON bytes (the wire format). Absent optional fields are omitted.
    ///
    /// Times must be finite: JSON cannot carry NaN or infinity. A non-finite time is written as
    /// `null`, which [`decode`] rejects for `timestamp.timestamp` and reads as an absent field
    /// everywhere else.
    pub fn encode(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(256 + self.content.len() + self.id.len());
        self.encode_into(&mut buf);
        buf
    }

    /// Appends the compact JSON of this envelope to `buf` (lets a producer reuse one buffer).
    ///
    /// The bytes are exactly serde_json's compact serialization of the envelope (property-tested):
    /// the same field order, strings escaped by `write_json_str`, integers by `itoa` and
    /// floats by `zmij` as serde_json does (a non-finite float is written as `null`).
    pub fn encode_into(&self, buf: &mut Vec<u8>) {
        self.encode_with_content(&self.content, buf);
    }

    /// Appends the compact JSON of this envelope with `content` in place of its own (renders a
    /// header-stamped record, whose content is its value, as the equivalent envelope).
    pub fn encode_with_content(&self, content: &str, buf: &mut Vec<u8>) {
        encode::write_envelope(self, content, buf);
    }

    /// Appends what [`encode_with_content`](Self::encode_with_content) appends for the content
    /// `value` when `value` is UTF-8, and returns true; appends nothing and returns false when
    /// it is not.
    pub fn encode_with_value(&self, value: &[u8], buf: &mut Vec<u8>) -> bool {
        encode::write_envelope_with_value(self, value, buf)
    }

    /// Compact JSON as a string (the same bytes as [`encode`](Self::encode)).
    pub fn to_json(&self) -> String {
        // The encoder copies whole `&str`s and otherwise writes ASCII: its bytes are UTF-8.
        String::from_utf8(self.encode()).expect("the encoder writes UTF-8")
    }

    /// Decodes with the default [`DecodeLimits`].
    pub fn decode(bytes: &[u8]) -> Result<Envelope, DecodeError> {
        decode(bytes, &DecodeLimits::default())
    }

    /// Decodes with the given limits.
    pub fn decode_with(bytes: &[u8], limits: &DecodeLimits) -> Result<Envelope, DecodeError> {
        decode(bytes, limits)
    }
}
