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
//! Decoding is a single pass over the bytes with fixed limits ([`DecodeLimits`]); every failure
//! is a typed [`DecodeError`] that names the offending field (e.g.
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

use crate::clock::{ClockType, HybridTimestamp, VectorTimestamp};
use crate::NodeId;
use serde::de::{self, DeserializeSeed, Deserializer as _, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::fmt::{self, Write as _};

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
    /// Times must be finite: JSON cannot carry NaN or infinity (they would be written as `null`,
    /// which [`decode`] rejects).
    pub fn encode(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(256 + self.content.len() + self.id.len());
        self.encode_into(&mut buf);
        buf
    }

    /// Appends the compact JSON of this envelope to `buf` (lets a producer reuse one buffer).
    ///
    /// The bytes are exactly serde_json's compact serialization of the envelope (property-tested):
    /// the same field order, strings escaped by [`write_json_str`], integers by `itoa` and
    /// floats by `zmij` as serde_json does (a non-finite float is written as `null`).
    pub fn encode_into(&self, buf: &mut Vec<u8>) {
        self.encode_with_content(&self.content, buf);
    }

    /// Appends the compact JSON of this envelope with `content` in place of its own (renders a
    /// header-stamped record, whose content is its value, as the equivalent envelope).
    pub fn encode_with_content(&self, content: &str, buf: &mut Vec<u8>) {
        let ts = &self.timestamp;
        let vector_len = ts.vector_time.as_ref().map_or(0, |v| v.len());
        buf.reserve(240 + self.id.len() + content.len() + ts.node_id.len() * (1 + vector_len));
        buf.extend_from_slice(b"{\"id\":");
        write_json_str(buf, &self.id);
        buf.extend_from_slice(b",\"content\":");
        write_json_str(buf, content);
        if let Some(seq) = self.seq {
            buf.extend_from_slice(b",\"seq\":");
            write_u64(buf, seq);
        }
        buf.extend_from_slice(b",\"timestamp\":{\"node_id\":");
        write_json_str(buf, &ts.node_id);
        buf.extend_from_slice(b",\"timestamp\":");
        write_f64(buf, ts.timestamp);
        buf.extend_from_slice(b",\"clock_type\":\"");
        // Clock type names are lower-case ASCII letters: nothing to escape.
        buf.extend_from_slice(ts.clock_type.as_str().as_bytes());
        buf.push(b'"');
        if let Some(physical) = ts.physical_time {
            buf.extend_from_slice(b",\"physical_time\":");
            write_f64(buf, physical);
        }
        if let Some(logical) = ts.logical_time {
            buf.extend_from_slice(b",\"logical_time\":");
            write_u64(buf, logical);
        }
        if let Some(v) = &ts.vector_time {
            buf.extend_from_slice(b",\"vector_time\":{");
            for (i, (node, count)) in v.iter().enumerate() {
                if i > 0 {
                    buf.push(b',');
                }
                write_json_str(buf, node);
                buf.push(b':');
                write_u64(buf, count);
            }
            buf.push(b'}');
        }
        if let Some(h) = &ts.hybrid_time {
            buf.extend_from_slice(b",\"hybrid_time\":{\"wall_ms\":");
            write_u64(buf, h.wall_ms);
            buf.extend_from_slice(b",\"logical\":");
            write_u64(buf, u64::from(h.logical));
            buf.push(b'}');
        }
        if let Some(sim) = ts.simulated_time {
            buf.extend_from_slice(b",\"simulated_time\":");
            write_f64(buf, sim);
        }
        buf.push(b'}');
        if let Some(skew) = self.simulated_skew_ms {
            buf.extend_from_slice(b",\"simulated_skew_ms\":");
            write_f64(buf, skew);
        }
        buf.push(b'}');
    }

    /// Compact JSON as a string (the same bytes as [`encode`](Self::encode)).
    pub fn to_json(&self) -> String {
        // serde_json only ever writes valid UTF-8.
        String::from_utf8(self.encode()).expect("serde_json writes UTF-8")
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

/// Appends `n` in decimal, as serde_json writes integers.
fn write_u64(buf: &mut Vec<u8>, n: u64) {
    buf.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// Appends `x` as serde_json writes an `f64`: the shortest round-tripping decimal (`zmij`, with
/// `.0` for integral values), or `null` when it is not finite.
fn write_f64(buf: &mut Vec<u8>, x: f64) {
    if x.is_finite() {
        buf.extend_from_slice(zmij::Buffer::new().format_finite(x).as_bytes());
    } else {
        buf.extend_from_slice(b"null");
    }
}

/// True for the bytes a JSON string must escape (branch-free, so a fold over it can vectorize).
#[inline]
fn needs_escape(b: u8) -> bool {
    (b < 0x20) | (b == b'"') | (b == b'\\')
}

/// Bytes [`write_json_str`] tests per step.
const SCAN: usize = 32;

/// Appends `s` as a JSON string literal, byte for byte what serde_json writes: `"` and `\\`
/// backslash-escaped, `\b \t \n \f \r` as short escapes, other bytes below 0x20 as `\u00xx`
/// (lower-case hex), everything else (DEL and non-ASCII UTF-8 included) copied as is.
///
/// A string with nothing to escape (ids, node ids, most content) is tested in one branch-free
/// pass, a reduction the compiler can vectorize, and copied whole; otherwise [`SCAN`] bytes are
/// tested per step and runs with nothing to escape are copied in bulk.
pub(crate) fn write_json_str(buf: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    buf.push(b'"');
    // The common case, whatever the length: nothing to escape.
    if bytes
        .iter()
        .fold(0u8, |acc, &b| acc | u8::from(needs_escape(b)))
        == 0
    {
        buf.extend_from_slice(bytes);
        buf.push(b'"');
        return;
    }
    let mut start = 0; // first byte not yet copied
    let mut i = 0;
    while i < bytes.len() {
        if let Some(chunk) = bytes.get(i..).and_then(|b| b.first_chunk::<SCAN>()) {
            let clean = chunk
                .iter()
                .fold(0u8, |acc, &b| acc | u8::from(needs_escape(b)))
                == 0;
            if clean {
                i += SCAN;
                continue;
            }
        }
        // A short tail, or this chunk holds something to escape: byte by byte.
        let end = (i + SCAN).min(bytes.len());
        while i < end {
            let b = bytes[i];
            let short = match b {
                b'"' => b'"',
                b'\\' => b'\\',
                0x08 => b'b',
                0x09 => b't',
                0x0a => b'n',
                0x0c => b'f',
                0x0d => b'r',
                0x00..=0x1f => b'u',
                _ => {
                    i += 1;
                    continue;
                }
            };
            buf.extend_from_slice(&bytes[start..i]);
            if short == b'u' {
                buf.extend_from_slice(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(b >> 4)],
                    HEX[usize::from(b & 0xf)],
                ]);
            } else {
                buf.extend_from_slice(&[b'\\', short]);
            }
            i += 1;
            start = i;
        }
    }
    buf.extend_from_slice(&bytes[start..]);
    buf.push(b'"');
}

/// Bounds the decoder enforces on untrusted input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest accepted record, in bytes (default 1 MiB); for a header-stamped record, its value
    /// plus every header name and value.
    pub max_bytes: usize,
    /// Most entries in `vector_time` (default 1024).
    pub max_vector_entries: usize,
    /// Most record headers (all of them, not only the stamp's) on a header-stamped record
    /// ([`crate::stamp_headers`]; default 256).
    pub max_headers: usize,
    /// Deepest nesting of objects/arrays, the envelope itself being level 1 (default 32). The
    /// known schema needs 3; deeper levels can only occur inside unknown fields. Values are
    /// clamped to `3..=64`.
    pub max_depth: usize,
    /// Longest `id`, in bytes (default 256).
    pub max_id_len: usize,
    /// Longest node id (`timestamp.node_id` and `vector_time` keys), in bytes (default 256).
    pub max_node_id_len: usize,
    /// Node order for the prototype's array form `"vector_time":[1,2,3]`: entry *i* is the
    /// counter of node *i*. `None` (the default): the array is checked like any vector (counters,
    /// entry cap) but not mapped; the message then has no vector and
    /// [`MessageTimestamp::unmapped_vector_entries`] gives the array's length.
    pub legacy_vector_nodes: Option<Vec<NodeId>>,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_bytes: 1024 * 1024,
            max_vector_entries: 1024,
            max_headers: 256,
            max_depth: 32,
            max_id_len: 256,
            max_node_id_len: 256,
            legacy_vector_nodes: None,
        }
    }
}

impl DecodeLimits {
    /// These limits, accepting the array form of `vector_time` with the given node order.
    pub fn with_legacy_vector_nodes<I, S>(mut self, nodes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<NodeId>,
    {
        self.legacy_vector_nodes = Some(nodes.into_iter().map(Into::into).collect());
        self
    }

    fn depth_cap(&self) -> usize {
        self.max_depth.clamp(3, 64)
    }
}

/// Why a record is not a valid envelope. Every variant that concerns a field names it by its
/// dotted path (`timestamp.vector_time.producer-1`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    /// A zero-length record.
    #[error("empty record")]
    Empty,
    /// The record exceeds the size cap.
    #[error("record of {len} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// Record length.
        len: usize,
        /// The cap.
        max: usize,
    },
    /// The record is not valid UTF-8.
    #[error("record is not valid UTF-8 (invalid byte at offset {valid_up_to})")]
    NotUtf8 {
        /// Length of the valid prefix.
        valid_up_to: usize,
    },
    /// The record is not (exactly one) well-formed JSON value.
    #[error("record is not valid JSON: {message} (line {line}, column {column})")]
    Syntax {
        /// serde_json's description.
        message: String,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
    },
    /// Objects/arrays nest deeper than the limit.
    #[error("{field}: nesting deeper than {max_depth} levels")]
    TooDeep {
        /// Where the limit was hit.
        field: String,
        /// The (clamped) limit.
        max_depth: usize,
    },
    /// A required field is missing.
    #[error("{field}: missing")]
    Missing {
        /// The missing field.
        field: String,
    },
    /// A known field appears twice in the same object.
    #[error("{field}: duplicate field")]
    Duplicate {
        /// The repeated field (for vector entries: the repeated node id).
        field: String,
    },
    /// A field has the wrong JSON type.
    #[error("{field}: expected {expected}, found {found}")]
    WrongType {
        /// The field (`record` for the top level).
        field: String,
        /// What the field must be.
        expected: &'static str,
        /// What the record holds.
        found: &'static str,
    },
    /// A counter is negative.
    #[error("{field}: negative counter {value}")]
    NegativeCounter {
        /// The field.
        field: String,
        /// The value (for negative floats, their integral part).
        value: i64,
    },
    /// A counter has a fractional part.
    #[error("{field}: fractional counter {value}")]
    FractionalCounter {
        /// The field.
        field: String,
        /// The value.
        value: f64,
    },
    /// A counter does not fit its type.
    #[error("{field}: counter overflows (maximum {max})")]
    CounterOverflow {
        /// The field.
        field: String,
        /// The largest representable value.
        max: u64,
    },
    /// A time is NaN or infinite (e.g. the literal `1e400`).
    #[error("{field}: time is not a finite number")]
    NonFinite {
        /// The field.
        field: String,
    },
    /// `clock_type` is not one of the four clock names.
    #[error(
        "{field}: unknown clock type '{value}' (expected physical, logical, vector or hybrid)"
    )]
    UnknownClockType {
        /// The field (`timestamp.clock_type`).
        field: String,
        /// The given name (truncated to 64 characters, control characters escaped).
        value: String,
    },
    /// A string is longer than its limit.
    #[error("{field}: {len} bytes exceeds the {max}-byte limit")]
    TooLong {
        /// The field.
        field: String,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A string that must not be empty is empty.
    #[error("{field}: must not be empty")]
    EmptyString {
        /// The field.
        field: String,
    },
    /// `vector_time` has more entries than the cap.
    #[error("{field}: more than {max} vector entries")]
    TooManyVectorEntries {
        /// The field (`timestamp.vector_time`).
        field: String,
        /// The cap.
        max: usize,
    },
    /// The array form of `vector_time` has a different length than the node order.
    #[error("{field}: array form has {found} entries, the node order has {expected}")]
    LegacyVectorLength {
        /// The field (`timestamp.vector_time`).
        field: String,
        /// Number of nodes in the configured order.
        expected: usize,
        /// Entries seen (for too long arrays: `expected + 1`, where decoding stopped).
        found: usize,
    },
    /// A clock field required by `clock_type` is absent.
    #[error("{field}: required for clock type {clock_type}")]
    MissingForClockType {
        /// The absent field.
        field: String,
        /// The envelope's clock type.
        clock_type: ClockType,
    },
}

impl DecodeError {
    /// The dotted path of the offending field, if the error concerns one.
    pub fn field(&self) -> Option<&str> {
        use DecodeError::*;
        match self {
            Empty | TooLarge { .. } | NotUtf8 { .. } | Syntax { .. } => None,
            TooDeep { field, .. }
            | Missing { field }
            | Duplicate { field }
            | WrongType { field, .. }
            | NegativeCounter { field, .. }
            | FractionalCounter { field, .. }
            | CounterOverflow { field, .. }
            | NonFinite { field }
            | UnknownClockType { field, .. }
            | TooLong { field, .. }
            | EmptyString { field }
            | TooManyVectorEntries { field, .. }
            | LegacyVectorLength { field, .. }
            | MissingForClockType { field, .. } => Some(field),
        }
    }
}

/// Decodes one record strictly (see the [module documentation](self) for the rules).
pub fn decode(bytes: &[u8], limits: &DecodeLimits) -> Result<Envelope, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    if bytes.len() > limits.max_bytes {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            max: limits.max_bytes,
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|e| DecodeError::NotUtf8 {
        valid_up_to: e.valid_up_to(),
    })?;
    let ctx = Ctx {
        limits,
        error: RefCell::new(None),
    };
    let mut de = serde_json::Deserializer::from_str(text);
    let result = (&mut de)
        .deserialize_any(EnvelopeV { ctx: &ctx })
        .and_then(|env| de.end().map(|()| env));
    match result {
        Ok(env) => Ok(env),
        Err(e) => Err(ctx.error.into_inner().unwrap_or_else(|| syntax_error(&e))),
    }
}

fn syntax_error(e: &serde_json::Error) -> DecodeError {
    let full = e.to_string();
    // serde_json appends " at line L column C"; keep the message without the position.
    let message = match full.rfind(" at line ") {
        Some(i) => full[..i].to_string(),
        None => full,
    };
    DecodeError::Syntax {
        message,
        line: e.line(),
        column: e.column(),
    }
}

/// Decoding state shared by the visitors: the limits and the first typed error. A visitor that
/// finds a problem records the typed error here and returns an opaque serde error, which unwinds
/// the parse; [`decode`] then reports the recorded error.
struct Ctx<'a> {
    limits: &'a DecodeLimits,
    error: RefCell<Option<DecodeError>>,
}

impl Ctx<'_> {
    fn fail<E: de::Error>(&self, err: DecodeError) -> E {
        let mut slot = self.error.borrow_mut();
        if slot.is_none() {
            *slot = Some(err);
        }
        E::custom("invalid envelope")
    }

    /// Gives a field context to an error serde_json raised while parsing that field's value
    /// (only "number out of range" needs one; syntax errors keep their position).
    fn annotate<E: de::Error>(&self, field: &Field<'_>, kind: Kind, e: E) -> E {
        if self.error.borrow().is_none() && e.to_string().starts_with("number out of range") {
            let err = match kind {
                Kind::Time => DecodeError::NonFinite {
                    field: field.to_string(),
                },
                Kind::Counter(max) => DecodeError::CounterOverflow {
                    field: field.to_string(),
                    max,
                },
                Kind::Other => return e,
            };
            *self.error.borrow_mut() = Some(err);
        }
        e
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Time,
    Counter(u64),
    Other,
}

/// A field path, rendered only when an error needs it.
#[derive(Clone, Copy)]
enum Field<'a> {
    Static(&'static str),
    Entry(&'static str, &'a str),
    Index(&'static str, usize),
}

impl fmt::Display for Field<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Field::Static(s) => f.write_str(s),
            Field::Entry(p, k) => write!(f, "{p}.{}", Printable(k)),
            Field::Index(p, i) => write!(f, "{p}[{i}]"),
        }
    }
}

/// Text from the record shown in an error message: control characters (a decoded `\n`, say)
/// are escaped, so every message stays on one line.
pub(crate) struct Printable<'a>(pub(crate) &'a str);

impl fmt::Display for Printable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            if c.is_control() {
                write!(f, "{}", c.escape_debug())?;
            } else {
                f.write_char(c)?;
            }
        }
        Ok(())
    }
}

const F_RECORD: &str = "record";
const F_ID: &str = "id";
const F_CONTENT: &str = "content";
const F_SEQ: &str = "seq";
const F_TS: &str = "timestamp";
const F_SKEW: &str = "simulated_skew_ms";
const F_NODE: &str = "timestamp.node_id";
const F_TS_TS: &str = "timestamp.timestamp";
const F_CLOCK: &str = "timestamp.clock_type";
const F_PHYS: &str = "timestamp.physical_time";
const F_LOGICAL: &str = "timestamp.logical_time";
const F_VECTOR: &str = "timestamp.vector_time";
const F_HYBRID: &str = "timestamp.hybrid_time";
const F_SIM: &str = "timestamp.simulated_time";
const F_HYB_WALL: &str = "timestamp.hybrid_time.wall_ms";
const F_HYB_LOGICAL: &str = "timestamp.hybrid_time.logical";

/// Implements the `visit_*` methods for JSON types a visitor does not accept, recording a
/// [`DecodeError::WrongType`] for its field.
macro_rules! reject {
    (unit) => {
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Err(self.wrong("null"))
        }
    };
    (bool) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Err(self.wrong("a boolean"))
        }
    };
    (num) => {
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Err(self.wrong("a number"))
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Err(self.wrong("a number"))
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Err(self.wrong("a number"))
        }
    };
    (str) => {
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Err(self.wrong("a string"))
        }
    };
    (seq) => {
        fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
            Err(self.wrong("an array"))
        }
    };
    (map) => {
        fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
            Err(self.wrong("an object"))
        }
    };
    ($($t:ident),+) => { $( reject!($t); )+ };
}

/// What every field visitor knows: where it is and what it expects.
trait FieldVisitor {
    fn ctx(&self) -> &Ctx<'_>;
    fn field(&self) -> Field<'_>;
    fn expected(&self) -> &'static str;
    fn wrong<E: de::Error>(&self, found: &'static str) -> E {
        self.ctx().fail(DecodeError::WrongType {
            field: self.field().to_string(),
            expected: self.expected(),
            found,
        })
    }
}

macro_rules! field_visitor {
    ($ty:ident, $expected:expr) => {
        impl FieldVisitor for $ty<'_, '_> {
            fn ctx(&self) -> &Ctx<'_> {
                self.ctx
            }
            fn field(&self) -> Field<'_> {
                self.field
            }
            fn expected(&self) -> &'static str {
                $expected
            }
        }
    };
}

/// Reads one value of a known field with the given seed, giving serde_json's own errors (number
/// out of range) the field's context.
fn value<'de, A, S>(
    map: &mut A,
    ctx: &Ctx<'_>,
    field: Field<'_>,
    kind: Kind,
    seed: S,
) -> Result<S::Value, A::Error>
where
    A: MapAccess<'de>,
    S: DeserializeSeed<'de>,
{
    map.next_value_seed(seed)
        .map_err(|e| ctx.annotate(&field, kind, e))
}

fn set_once<T, E: de::Error>(
    ctx: &Ctx<'_>,
    slot: &mut Option<T>,
    v: T,
    field: &'static str,
) -> Result<(), E> {
    if slot.is_some() {
        return Err(ctx.fail(DecodeError::Duplicate {
            field: field.to_string(),
        }));
    }
    *slot = Some(v);
    Ok(())
}

fn missing<T, E: de::Error>(ctx: &Ctx<'_>, slot: Option<T>, field: &'static str) -> Result<T, E> {
    slot.ok_or_else(|| {
        ctx.fail(DecodeError::Missing {
            field: field.to_string(),
        })
    })
}

// ---------------------------------------------------------------------------------------------
// Keys

/// Object keys we recognise, per object; anything else is `Other`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Key {
    Id,
    Content,
    Seq,
    Timestamp,
    Skew,
    NodeId,
    ClockType,
    PhysicalTime,
    LogicalTime,
    VectorTime,
    HybridTime,
    SimulatedTime,
    WallMs,
    Logical,
    Other,
}

#[derive(Clone, Copy)]
enum Obj {
    Envelope,
    Timestamp,
    Hybrid,
}

struct KeySeed(Obj);

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Key;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Key, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Key;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Key, E> {
        Ok(match (self.0, s) {
            (Obj::Envelope, "id") => Key::Id,
            (Obj::Envelope, "content") => Key::Content,
            (Obj::Envelope, "seq") => Key::Seq,
            (Obj::Envelope, "timestamp") => Key::Timestamp,
            (Obj::Envelope, "simulated_skew_ms") => Key::Skew,
            (Obj::Timestamp, "node_id") => Key::NodeId,
            (Obj::Timestamp, "timestamp") => Key::Timestamp,
            (Obj::Timestamp, "clock_type") => Key::ClockType,
            (Obj::Timestamp, "physical_time") => Key::PhysicalTime,
            (Obj::Timestamp, "logical_time") => Key::LogicalTime,
            (Obj::Timestamp, "vector_time") => Key::VectorTime,
            (Obj::Timestamp, "hybrid_time") => Key::HybridTime,
            (Obj::Timestamp, "simulated_time") => Key::SimulatedTime,
            (Obj::Hybrid, "wall_ms") => Key::WallMs,
            (Obj::Hybrid, "logical") => Key::Logical,
            _ => Key::Other,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Bounded skipping of unknown values

/// Skips a value of an unknown field; `depth` is the nesting level the value would open.
struct Skip<'c, 'l> {
    ctx: &'c Ctx<'l>,
    depth: usize,
    field: Field<'c>,
}

impl<'de> DeserializeSeed<'de> for Skip<'_, '_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl Skip<'_, '_> {
    fn enter<E: de::Error>(&self) -> Result<(), E> {
        let max_depth = self.ctx.limits.depth_cap();
        if self.depth > max_depth {
            return Err(self.ctx.fail(DecodeError::TooDeep {
                field: self.field.to_string(),
                max_depth,
            }));
        }
        Ok(())
    }
}

impl<'de> Visitor<'de> for Skip<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.enter()?;
        while seq
            .next_element_seed(Skip {
                ctx: self.ctx,
                depth: self.depth + 1,
                field: self.field,
            })?
            .is_some()
        {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.enter()?;
        while map.next_key::<de::IgnoredAny>()?.is_some() {
            map.next_value_seed(Skip {
                ctx: self.ctx,
                depth: self.depth + 1,
                field: self.field,
            })?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Scalars

/// An unsigned counter with a maximum (`u64::MAX` or `u32::MAX`).
struct CounterV<'c, 'l> {
    ctx: &'c Ctx<'l>,
    field: Field<'c>,
    max: u64,
}
field_visitor!(CounterV, "a non-negative integer");

impl<'de> DeserializeSeed<'de> for CounterV<'_, '_> {
    type Value = u64;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<u64, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for CounterV<'_, '_> {
    type Value = u64;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expected())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        if v > self.max {
            return Err(self.ctx.fail(DecodeError::CounterOverflow {
                field: self.field.to_string(),
                max: self.max,
            }));
        }
        Ok(v)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
        if v < 0 {
            return Err(self.ctx.fail(DecodeError::NegativeCounter {
                field: self.field.to_string(),
                value: v,
            }));
        }
        self.visit_u64(v as u64)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<u64, E> {
        let field = || self.field.to_string();
        if !v.is_finite() {
            return Err(self.ctx.fail(DecodeError::NonFinite { field: field() }));
        }
        if v < 0.0 && v.trunc() != 0.0 {
            // Truncation saturates at i64::MIN for huge negatives; the sign is what matters.
            return Err(self.ctx.fail(DecodeError::NegativeCounter {
                field: field(),
                value: v.trunc() as i64,
            }));
        }
        if v.fract() != 0.0 {
            return Err(self.ctx.fail(DecodeError::FractionalCounter {
                field: field(),
                value: v,
            }));
        }
        // 2^64 is exactly representable; every integral f64 below it fits a u64 exactly.
        if v >= 18_446_744_073_709_551_616.0 {
            return Err(self.ctx.fail(DecodeError::CounterOverflow {
                field: field(),
                max: self.max,
            }));
        }
        self.visit_u64(v as u64)
    }
    reject!(unit, bool, str, seq, map);
}

/// A finite time in seconds (or milliseconds, for the skew).
struct TimeV<'c, 'l> {
    ctx: &'c Ctx<'l>,
    field: Field<'c>,
}
field_visitor!(TimeV, "a finite number");

impl<'de> DeserializeSeed<'de> for TimeV<'_, '_> {
    type Value = f64;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<f64, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TimeV<'_, '_> {
    type Value = f64;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expected())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
        Ok(v as f64)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
        Ok(v as f64)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
        if !v.is_finite() {
            return Err(self.ctx.fail(DecodeError::NonFinite {
                field: self.field.to_string(),
            }));
        }
        Ok(v)
    }
    reject!(unit, bool, str, seq, map);
}

/// An optional field's value: `null` means absent, anything else goes to the inner seed.
struct Nullable<S>(S);

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Nullable<S> {
    type Value = Option<S::Value>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de, S: DeserializeSeed<'de>> Visitor<'de> for Nullable<S> {
    type Value = Option<S::Value>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a value or null")
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.0.deserialize(d).map(Some)
    }
}

/// A bounded string; `max == usize::MAX` for no limit of its own (the record cap applies).
struct StrV<'c, 'l> {
    ctx: &'c Ctx<'l>,
    field: Field<'c>,
    max: usize,
    non_empty: bool,
}
field_visitor!(StrV, "a string");

impl StrV<'_, '_> {
    fn check<E: de::Error>(&self, s: &str) -> Result<(), E> {
        if s.len() > self.max {
            return Err(self.ctx.fail(DecodeError::TooLong {
                field: self.field.to_string(),
                len: s.len(),
                max: self.max,
            }));
        }
        if self.non_empty && s.is_empty() {
            return Err(self.ctx.fail(DecodeError::EmptyString {
                field: self.field.to_string(),
            }));
        }
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for StrV<'_, '_> {
    type Value = String;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrV<'_, '_> {
    type Value = String;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<String, E> {
        self.check(s)?;
        Ok(s.to_owned())
    }
    reject!(unit, bool, num, seq, map);
}

/// A node id (`timestamp.node_id`): a bounded, non-empty string, allocated once as an `Arc<str>`.
struct NodeIdV<'c, 'l>(StrV<'c, 'l>);

impl<'de> DeserializeSeed<'de> for NodeIdV<'_, '_> {
    type Value = NodeId;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<NodeId, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for NodeIdV<'_, '_> {
    type Value = NodeId;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a node id")
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<NodeId, E> {
        self.0.check(s)?;
        Ok(NodeId::from(s))
    }
    fn visit_unit<E: de::Error>(self) -> Result<NodeId, E> {
        Err(self.0.wrong("null"))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<NodeId, E> {
        Err(self.0.wrong("a boolean"))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<NodeId, E> {
        Err(self.0.wrong("a number"))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<NodeId, E> {
        Err(self.0.wrong("a number"))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<NodeId, E> {
        Err(self.0.wrong("a number"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<NodeId, A::Error> {
        Err(self.0.wrong("an array"))
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<NodeId, A::Error> {
        Err(self.0.wrong("an object"))
    }
}

struct ClockTypeV<'c, 'l> {
    ctx: &'c Ctx<'l>,
    field: Field<'c>,
}
field_visitor!(ClockTypeV, "a clock type name");

impl<'de> DeserializeSeed<'de> for ClockTypeV<'_, '_> {
    type Value = ClockType;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<ClockType, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ClockTypeV<'_, '_> {
    type Value = ClockType;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expected())
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<ClockType, E> {
        match s {
            "physical" => Ok(ClockType::Physical),
            "logical" => Ok(ClockType::Logical),
            "vector" => Ok(ClockType::Vector),
            "hybrid" => Ok(ClockType::Hybrid),
            other => Err(self.ctx.fail(DecodeError::UnknownClockType {
                field: self.field.to_string(),
                value: Printable(&other.chars().take(64).collect::<String>()).to_string(),
            })),
        }
    }
    reject!(unit, bool, num, seq, map);
}

// ---------------------------------------------------------------------------------------------
// vector_time

/// What a `vector_time` field held.
enum VectorField {
    /// `null`: absent.
    Null,
    /// An object node → counter, or an array mapped by the configured node order.
    Map(VectorTimestamp),
    /// The prototype's array form with no node order to map it: its (checked) entry count.
    Unmapped(usize),
}

/// `vector_time`: `null` (absent), an object node → counter, or the prototype's array (mapped
/// when a node order is configured, else checked and counted).
struct VectorV<'c, 'l> {
    ctx: &'c Ctx<'l>,
    field: Field<'c>,
}
field_visitor!(VectorV, "an object mapping node ids to counters");

impl<'de> DeserializeSeed<'de> for VectorV<'_, '_> {
    type Value = VectorField;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

/// A `vector_time` key: checked against the entry cap *before* it is allocated.
struct VectorKeyV<'c, 'l> {
    ctx: &'c Ctx<'l>,
    field: Field<'c>,
    full: bool,
}

impl<'de> DeserializeSeed<'de> for VectorKeyV<'_, '_> {
    type Value = NodeId;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<NodeId, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for VectorKeyV<'_, '_> {
    type Value = NodeId;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a node id")
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<NodeId, E> {
        let limits = self.ctx.limits;
        if self.full {
            return Err(self.ctx.fail(DecodeError::TooManyVectorEntries {
                field: self.field.to_string(),
                max: limits.max_vector_entries,
            }));
        }
        let key_field = || Field::Entry(F_VECTOR, s).to_string();
        if s.is_empty() {
            return Err(self
                .ctx
                .fail(DecodeError::EmptyString { field: key_field() }));
        }
        if s.len() > limits.max_node_id_len {
            return Err(self.ctx.fail(DecodeError::TooLong {
                field: format!("{F_VECTOR} key"),
                len: s.len(),
                max: limits.max_node_id_len,
            }));
        }
        Ok(NodeId::from(s))
    }
}

impl<'de> Visitor<'de> for VectorV<'_, '_> {
    type Value = VectorField;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expected())
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(VectorField::Null)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let cap = self.ctx.limits.max_vector_entries;
        let mut entries: Vec<(NodeId, u64)> = Vec::with_capacity(cap.min(16));
        while let Some(node) = map.next_key_seed(VectorKeyV {
            ctx: self.ctx,
            field: self.field,
            full: entries.len() >= cap,
        })? {
            let field = Field::Entry(F_VECTOR, &node);
            let c = value(
                &mut map,
                self.ctx,
                field,
                Kind::Counter(u64::MAX),
                CounterV {
                    ctx: self.ctx,
                    field,
                    max: u64::MAX,
                },
            )?;
            entries.push((node, c));
        }
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        if let Some(w) = entries.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(self.ctx.fail(DecodeError::Duplicate {
                field: Field::Entry(F_VECTOR, &w[0].0).to_string(),
            }));
        }
        Ok(VectorField::Map(VectorTimestamp::from_entries(entries)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let limits = self.ctx.limits;
        let nodes = limits.legacy_vector_nodes.as_deref();
        let cap = limits.max_vector_entries;
        let order_len = nodes.map_or(0, <[NodeId]>::len);
        let mut entries: Vec<(NodeId, u64)> = Vec::with_capacity(order_len.min(cap).min(16));
        let mut i = 0;
        loop {
            let field = Field::Index(F_VECTOR, i);
            let counter = CounterV {
                ctx: self.ctx,
                field,
                max: u64::MAX,
            };
            let next = seq
                .next_element_seed(counter)
                .map_err(|e| self.ctx.annotate(&field, Kind::Counter(u64::MAX), e))?;
            let Some(c) = next else { break };
            if i >= cap {
                return Err(self.ctx.fail(DecodeError::TooManyVectorEntries {
                    field: self.field.to_string(),
                    max: cap,
                }));
            }
            let Some(nodes) = nodes else {
                i += 1;
                continue;
            };
            let Some(node) = nodes.get(i) else {
                return Err(self.ctx.fail(DecodeError::LegacyVectorLength {
                    field: self.field.to_string(),
                    expected: nodes.len(),
                    found: i + 1,
                }));
            };
            entries.push((node.clone(), c));
            i += 1;
        }
        let Some(nodes) = nodes else {
            return Ok(VectorField::Unmapped(i));
        };
        if i != nodes.len() {
            return Err(self.ctx.fail(DecodeError::LegacyVectorLength {
                field: self.field.to_string(),
                expected: nodes.len(),
                found: i,
            }));
        }
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        if let Some(w) = entries.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(self.ctx.fail(DecodeError::Duplicate {
                field: Field::Entry(F_VECTOR, &w[0].0).to_string(),
            }));
        }
        Ok(VectorField::Map(VectorTimestamp::from_entries(entries)))
    }
    reject!(bool, num, str);
}

// ---------------------------------------------------------------------------------------------
// hybrid_time

struct HybridV<'c, 'l> {
    ctx: &'c Ctx<'l>,
    field: Field<'c>,
}
field_visitor!(HybridV, "an object with wall_ms and logical");

impl<'de> DeserializeSeed<'de> for HybridV<'_, '_> {
    type Value = Option<HybridTimestamp>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for HybridV<'_, '_> {
    type Value = Option<HybridTimestamp>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expected())
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let ctx = self.ctx;
        let (mut wall, mut logical) = (None, None);
        while let Some(key) = map.next_key_seed(KeySeed(Obj::Hybrid))? {
            match key {
                Key::WallMs => {
                    let f = Field::Static(F_HYB_WALL);
                    let v = value(
                        &mut map,
                        ctx,
                        f,
                        Kind::Counter(u64::MAX),
                        CounterV {
                            ctx,
                            field: f,
                            max: u64::MAX,
                        },
                    )?;
                    set_once(ctx, &mut wall, v, F_HYB_WALL)?;
                }
                Key::Logical => {
                    let f = Field::Static(F_HYB_LOGICAL);
                    let max = u64::from(u32::MAX);
                    let v = value(
                        &mut map,
                        ctx,
                        f,
                        Kind::Counter(max),
                        CounterV { ctx, field: f, max },
                    )?;
                    set_once(ctx, &mut logical, v as u32, F_HYB_LOGICAL)?;
                }
                _ => map.next_value_seed(Skip {
                    ctx,
                    depth: 4,
                    field: self.field,
                })?,
            }
        }
        Ok(Some(HybridTimestamp {
            wall_ms: missing(ctx, wall, F_HYB_WALL)?,
            logical: missing(ctx, logical, F_HYB_LOGICAL)?,
        }))
    }
    reject!(bool, num, str, seq);
}

// ---------------------------------------------------------------------------------------------
// timestamp

struct TimestampV<'c, 'l> {
    ctx: &'c Ctx<'l>,
    field: Field<'c>,
}
field_visitor!(TimestampV, "an object");

impl<'de> DeserializeSeed<'de> for TimestampV<'_, '_> {
    type Value = MessageTimestamp;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TimestampV<'_, '_> {
    type Value = MessageTimestamp;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expected())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let ctx = self.ctx;
        let limits = ctx.limits;
        let mut node_id = None;
        let mut timestamp = None;
        let mut clock_type = None;
        let mut physical_time: Option<Option<f64>> = None;
        let mut logical_time: Option<Option<u64>> = None;
        let mut simulated_time: Option<Option<f64>> = None;
        let mut vector_time: Option<VectorField> = None;
        let mut hybrid_time: Option<Option<HybridTimestamp>> = None;
        while let Some(key) = map.next_key_seed(KeySeed(Obj::Timestamp))? {
            match key {
                Key::NodeId => {
                    let f = Field::Static(F_NODE);
                    let seed = NodeIdV(StrV {
                        ctx,
                        field: f,
                        max: limits.max_node_id_len,
                        non_empty: true,
                    });
                    let v = value(&mut map, ctx, f, Kind::Other, seed)?;
                    set_once(ctx, &mut node_id, v, F_NODE)?;
                }
                Key::Timestamp => {
                    let f = Field::Static(F_TS_TS);
                    let v = value(&mut map, ctx, f, Kind::Time, TimeV { ctx, field: f })?;
                    set_once(ctx, &mut timestamp, v, F_TS_TS)?;
                }
                Key::ClockType => {
                    let f = Field::Static(F_CLOCK);
                    let v = value(&mut map, ctx, f, Kind::Other, ClockTypeV { ctx, field: f })?;
                    set_once(ctx, &mut clock_type, v, F_CLOCK)?;
                }
                Key::PhysicalTime => {
                    let f = Field::Static(F_PHYS);
                    let seed = Nullable(TimeV { ctx, field: f });
                    let v = value(&mut map, ctx, f, Kind::Time, seed)?;
                    set_once(ctx, &mut physical_time, v, F_PHYS)?;
                }
                Key::SimulatedTime => {
                    let f = Field::Static(F_SIM);
                    let seed = Nullable(TimeV { ctx, field: f });
                    let v = value(&mut map, ctx, f, Kind::Time, seed)?;
                    set_once(ctx, &mut simulated_time, v, F_SIM)?;
                }
                Key::LogicalTime => {
                    let f = Field::Static(F_LOGICAL);
                    let v = value(
                        &mut map,
                        ctx,
                        f,
                        Kind::Counter(u64::MAX),
                        Nullable(CounterV {
                            ctx,
                            field: f,
                            max: u64::MAX,
                        }),
                    )?;
                    set_once(ctx, &mut logical_time, v, F_LOGICAL)?;
                }
                Key::VectorTime => {
                    let f = Field::Static(F_VECTOR);
                    let v = value(&mut map, ctx, f, Kind::Other, VectorV { ctx, field: f })?;
                    set_once(ctx, &mut vector_time, v, F_VECTOR)?;
                }
                Key::HybridTime => {
                    let f = Field::Static(F_HYBRID);
                    let v = value(&mut map, ctx, f, Kind::Other, HybridV { ctx, field: f })?;
                    set_once(ctx, &mut hybrid_time, v, F_HYBRID)?;
                }
                _ => map.next_value_seed(Skip {
                    ctx,
                    depth: 3,
                    field: self.field,
                })?,
            }
        }
        let clock_type = missing(ctx, clock_type, F_CLOCK)?;
        let (vector_time, unmapped_vector_entries) = match vector_time {
            Some(VectorField::Map(v)) => (Some(v), None),
            Some(VectorField::Unmapped(n)) => (None, Some(n)),
            Some(VectorField::Null) | None => (None, None),
        };
        let ts = MessageTimestamp {
            node_id: missing(ctx, node_id, F_NODE)?,
            timestamp: missing(ctx, timestamp, F_TS_TS)?,
            clock_type,
            physical_time: physical_time.flatten(),
            logical_time: logical_time.flatten(),
            vector_time,
            hybrid_time: hybrid_time.flatten(),
            simulated_time: simulated_time.flatten(),
            unmapped_vector_entries,
        };
        if clock_type == ClockType::Hybrid && ts.hybrid_time.is_none() {
            return Err(ctx.fail(DecodeError::MissingForClockType {
                field: F_HYBRID.to_string(),
                clock_type,
            }));
        }
        Ok(ts)
    }
    reject!(unit, bool, num, str, seq);
}

// ---------------------------------------------------------------------------------------------
// envelope

struct EnvelopeV<'c, 'l> {
    ctx: &'c Ctx<'l>,
}

impl FieldVisitor for EnvelopeV<'_, '_> {
    fn ctx(&self) -> &Ctx<'_> {
        self.ctx
    }
    fn field(&self) -> Field<'_> {
        Field::Static(F_RECORD)
    }
    fn expected(&self) -> &'static str {
        "a JSON object"
    }
}

impl<'de> Visitor<'de> for EnvelopeV<'_, '_> {
    type Value = Envelope;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expected())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Envelope, A::Error> {
        let ctx = self.ctx;
        let limits = ctx.limits;
        let mut id = None;
        let mut content = None;
        let mut seq: Option<Option<u64>> = None;
        let mut timestamp = None;
        let mut skew: Option<Option<f64>> = None;
        while let Some(key) = map.next_key_seed(KeySeed(Obj::Envelope))? {
            match key {
                Key::Id => {
                    let f = Field::Static(F_ID);
                    let v = value(
                        &mut map,
                        ctx,
                        f,
                        Kind::Other,
                        StrV {
                            ctx,
                            field: f,
                            max: limits.max_id_len,
                            non_empty: true,
                        },
                    )?;
                    set_once(ctx, &mut id, v, F_ID)?;
                }
                Key::Content => {
                    let f = Field::Static(F_CONTENT);
                    let v = value(
                        &mut map,
                        ctx,
                        f,
                        Kind::Other,
                        StrV {
                            ctx,
                            field: f,
                            max: usize::MAX,
                            non_empty: false,
                        },
                    )?;
                    set_once(ctx, &mut content, v, F_CONTENT)?;
                }
                Key::Seq => {
                    let f = Field::Static(F_SEQ);
                    let v = value(
                        &mut map,
                        ctx,
                        f,
                        Kind::Counter(u64::MAX),
                        Nullable(CounterV {
                            ctx,
                            field: f,
                            max: u64::MAX,
                        }),
                    )?;
                    set_once(ctx, &mut seq, v, F_SEQ)?;
                }
                Key::Timestamp => {
                    let f = Field::Static(F_TS);
                    let v = value(&mut map, ctx, f, Kind::Other, TimestampV { ctx, field: f })?;
                    set_once(ctx, &mut timestamp, v, F_TS)?;
                }
                Key::Skew => {
                    let f = Field::Static(F_SKEW);
                    let v = value(
                        &mut map,
                        ctx,
                        f,
                        Kind::Time,
                        Nullable(TimeV { ctx, field: f }),
                    )?;
                    set_once(ctx, &mut skew, v, F_SKEW)?;
                }
                _ => map.next_value_seed(Skip {
                    ctx,
                    depth: 2,
                    field: Field::Static(F_RECORD),
                })?,
            }
        }
        Ok(Envelope {
            id: missing(ctx, id, F_ID)?,
            content: missing(ctx, content, F_CONTENT)?,
            seq: seq.flatten(),
            timestamp: missing(ctx, timestamp, F_TS)?,
            simulated_skew_ms: skew.flatten(),
        })
    }
    reject!(unit, bool, num, str, seq);
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = r#"{"id":"6f1c","content":"hello","seq":17,
        "timestamp":{"node_id":"producer-1","timestamp":1790000000.123,"clock_type":"vector",
        "physical_time":1790000000.223,"logical_time":5,
        "vector_time":{"producer-1":17,"producer-2":3},
        "hybrid_time":{"wall_ms":1790000000223,"logical":0}},
        "simulated_skew_ms":100.0}"#;

    fn sample() -> Envelope {
        Envelope {
            id: "6f1c".into(),
            content: "hello".into(),
            seq: Some(17),
            timestamp: MessageTimestamp {
                node_id: "producer-1".into(),
                timestamp: 1_790_000_000.123,
                clock_type: ClockType::Vector,
                physical_time: Some(1_790_000_000.223),
                logical_time: Some(5),
                vector_time: Some(VectorTimestamp::from_entries([
                    ("producer-1", 17),
                    ("producer-2", 3),
                ])),
                hybrid_time: Some(HybridTimestamp::new(1_790_000_000_223, 0)),
                simulated_time: None,
                unmapped_vector_entries: None,
            },
            simulated_skew_ms: Some(100.0),
        }
    }

    fn err(json: &str) -> DecodeError {
        Envelope::decode(json.as_bytes()).expect_err(json)
    }

    /// `VALID` with `from` replaced by `to` (exactly one occurrence required).
    fn patched(from: &str, to: &str) -> String {
        assert_eq!(VALID.matches(from).count(), 1, "{from}");
        VALID.replace(from, to)
    }

    #[test]
    fn decodes_the_issue_example() {
        assert_eq!(Envelope::decode(VALID.as_bytes()).unwrap(), sample());
    }

    #[test]
    fn encodes_compact_json_in_field_order() {
        let json = sample().to_json();
        assert_eq!(
            json,
            r#"{"id":"6f1c","content":"hello","seq":17,"timestamp":{"node_id":"producer-1","timestamp":1790000000.123,"clock_type":"vector","physical_time":1790000000.223,"logical_time":5,"vector_time":{"producer-1":17,"producer-2":3},"hybrid_time":{"wall_ms":1790000000223,"logical":0}},"simulated_skew_ms":100.0}"#
        );
        assert_eq!(Envelope::decode(json.as_bytes()).unwrap(), sample());
    }

    #[test]
    fn absent_optional_fields_are_omitted() {
        let mut e = sample();
        e.timestamp.clock_type = ClockType::Logical;
        e.timestamp.vector_time = None;
        e.timestamp.hybrid_time = None;
        e.simulated_skew_ms = None;
        let json = e.to_json();
        for absent in ["vector_time", "hybrid_time", "simulated_skew_ms"] {
            assert!(!json.contains(absent), "{json}");
        }
        assert_eq!(Envelope::decode(&e.encode()).unwrap(), e);
    }

    #[test]
    fn null_optional_fields_mean_absent() {
        let json = patched(r#""clock_type":"vector""#, r#""clock_type":"logical""#)
            .replace(r#"{"producer-1":17,"producer-2":3}"#, "null")
            .replace(r#"{"wall_ms":1790000000223,"logical":0}"#, "null")
            .replace("100.0", "null");
        let e = Envelope::decode(json.as_bytes()).unwrap();
        assert_eq!(e.timestamp.vector_time, None);
        assert_eq!(e.timestamp.hybrid_time, None);
        assert_eq!(e.simulated_skew_ms, None);
    }

    #[test]
    fn error_messages_name_the_field() {
        let e = err(&patched(r#""logical_time":5"#, r#""logical_time":-3"#));
        assert_eq!(e.to_string(), "timestamp.logical_time: negative counter -3");
        assert_eq!(e.field(), Some("timestamp.logical_time"));
        let e = err(&patched(r#""seq":17"#, r#""seq":1.5"#));
        assert_eq!(e.to_string(), "seq: fractional counter 1.5");
        let e = err(&patched(r#""producer-2":3"#, r#""producer-2":-1"#));
        assert_eq!(
            e.to_string(),
            "timestamp.vector_time.producer-2: negative counter -1"
        );
    }

    #[test]
    fn counters_are_strict_integers() {
        assert_eq!(
            Envelope::decode(patched(r#""seq":17"#, r#""seq":18446744073709551615"#).as_bytes())
                .unwrap()
                .seq,
            Some(u64::MAX)
        );
        assert!(matches!(
            err(&patched(r#""seq":17"#, r#""seq":18446744073709551616"#)),
            DecodeError::CounterOverflow { ref field, max: u64::MAX } if field == "seq"
        ));
        assert!(matches!(
            err(&patched(r#""seq":17"#, r#""seq":1e400"#)),
            DecodeError::CounterOverflow { ref field, .. } if field == "seq"
        ));
        assert!(matches!(
            err(&patched(r#""seq":17"#, r#""seq":-1e300"#)),
            DecodeError::NegativeCounter { .. }
        ));
        assert!(matches!(
            err(&patched(r#""seq":17"#, r#""seq":"17""#)),
            DecodeError::WrongType { .. }
        ));
        assert_eq!(
            Envelope::decode(patched(r#""seq":17"#, r#""seq":null"#).as_bytes())
                .unwrap()
                .seq,
            None
        );
        // An integral float is the integer it denotes; -0 is zero.
        assert_eq!(
            Envelope::decode(patched(r#""seq":17"#, r#""seq":17.0"#).as_bytes())
                .unwrap()
                .seq,
            Some(17)
        );
        assert_eq!(
            Envelope::decode(patched(r#""seq":17"#, r#""seq":-0"#).as_bytes())
                .unwrap()
                .seq,
            Some(0)
        );
        let e = err(&patched(r#""logical":0"#, r#""logical":4294967296"#));
        assert_eq!(
            e.to_string(),
            "timestamp.hybrid_time.logical: counter overflows (maximum 4294967295)"
        );
    }

    #[test]
    fn times_must_be_finite_numbers() {
        let e = err(&patched("1790000000.223", "1e400"));
        assert_eq!(
            e,
            DecodeError::NonFinite {
                field: "timestamp.physical_time".into()
            }
        );
        let e = err(&patched("1790000000.123", "-1e999"));
        assert_eq!(
            e,
            DecodeError::NonFinite {
                field: "timestamp.timestamp".into()
            }
        );
        let e = err(&patched("100.0", "1e309"));
        assert_eq!(
            e,
            DecodeError::NonFinite {
                field: "simulated_skew_ms".into()
            }
        );
        assert!(matches!(
            err(&patched("1790000000.223", "NaN")),
            DecodeError::Syntax { .. }
        ));
        // Integers are fine as times.
        let e = Envelope::decode(patched("1790000000.223", "1790000000").as_bytes()).unwrap();
        assert_eq!(e.timestamp.physical_time, Some(1_790_000_000.0));
    }

    #[test]
    fn required_fields() {
        for (field, from, to) in [
            ("id", r#""id":"6f1c","#, ""),
            ("content", r#""content":"hello","#, ""),
            ("timestamp.node_id", r#""node_id":"producer-1","#, ""),
            ("timestamp.timestamp", r#""timestamp":1790000000.123,"#, ""),
            ("timestamp.clock_type", r#""clock_type":"vector","#, ""),
            ("timestamp.hybrid_time.logical", r#","logical":0"#, ""),
        ] {
            assert_eq!(
                err(&patched(from, to)),
                DecodeError::Missing {
                    field: field.into()
                },
                "{field}"
            );
        }
        let no_ts = r#"{"id":"a","content":"","seq":1}"#;
        assert_eq!(
            err(no_ts),
            DecodeError::Missing {
                field: "timestamp".into()
            }
        );
    }

    #[test]
    fn seq_and_clock_readings_are_optional_on_read() {
        let json = patched(r#""seq":17,"#, "")
            .replace(r#""physical_time":1790000000.223,"#, "")
            .replace(r#""logical_time":5,"#, "");
        let e = Envelope::decode(json.as_bytes()).unwrap();
        assert_eq!(
            (e.seq, e.timestamp.physical_time, e.timestamp.logical_time),
            (None, None, None)
        );
        // With no clock reading of its own, the node's clock is its host clock.
        assert_eq!(e.timestamp.clock_reading(), 1_790_000_000.123);
        // Absent fields stay absent when encoded again; present ones are still checked.
        let again = Envelope::decode(&e.encode()).unwrap();
        assert_eq!(again, e);
        assert!(!e.to_json().contains("\"seq\""));
        assert_eq!(
            err(&json.replace(r#""clock_type""#, r#""logical_time":-1,"clock_type""#)),
            DecodeError::NegativeCounter {
                field: "timestamp.logical_time".into(),
                value: -1
            }
        );
    }

    #[test]
    fn simulated_time_is_a_checked_time_and_the_preferred_clock_reading() {
        let json = patched(
            r#""logical_time":5,"#,
            r#""logical_time":5,"simulated_time":1790000000.5,"#,
        );
        let e = Envelope::decode(json.as_bytes()).unwrap();
        assert_eq!(e.timestamp.simulated_time, Some(1_790_000_000.5));
        assert_eq!(e.timestamp.clock_reading(), 1_790_000_000.5);
        assert_eq!(Envelope::decode(&e.encode()).unwrap(), e);
        let e = err(&patched(
            r#""logical_time":5,"#,
            r#""logical_time":5,"simulated_time":"soon","#,
        ));
        assert_eq!(
            e.to_string(),
            "timestamp.simulated_time: expected a finite number, found a string"
        );
        assert_eq!(
            err(&patched(
                r#""logical_time":5,"#,
                r#""logical_time":5,"simulated_time":1e400,"#
            )),
            DecodeError::NonFinite {
                field: "timestamp.simulated_time".into()
            }
        );
    }

    #[test]
    fn clock_specific_fields_are_required() {
        // The prototype's vector clock type without a vector: a message with no vector.
        let e = Envelope::decode(
            patched(r#""vector_time":{"producer-1":17,"producer-2":3},"#, "").as_bytes(),
        )
        .unwrap();
        assert_eq!(e.timestamp.clock_type, ClockType::Vector);
        assert_eq!(e.timestamp.vector_time, None);
        let hybrid = patched(r#""clock_type":"vector""#, r#""clock_type":"hybrid""#);
        let e = err(&hybrid.replace(
            r#""hybrid_time":{"wall_ms":1790000000223,"logical":0}"#,
            r#""x":0"#,
        ));
        assert_eq!(
            e.to_string(),
            "timestamp.hybrid_time: required for clock type hybrid"
        );
    }

    #[test]
    fn strings_are_bounded_and_ids_non_empty() {
        assert_eq!(
            err(&patched(r#""id":"6f1c""#, r#""id":"""#)),
            DecodeError::EmptyString { field: "id".into() }
        );
        let long = format!(r#""node_id":"{}""#, "n".repeat(257));
        assert!(matches!(
            err(&patched(r#""node_id":"producer-1""#, &long)),
            DecodeError::TooLong { ref field, len: 257, max: 256 } if field == "timestamp.node_id"
        ));
        assert!(matches!(
            err(&patched(r#""node_id":"producer-1""#, r#""node_id":7"#)),
            DecodeError::WrongType { .. }
        ));
        assert!(matches!(
            err(&patched(r#""producer-2":3"#, r#""":3"#)),
            DecodeError::EmptyString { .. }
        ));
    }

    #[test]
    fn clock_type_names() {
        let e = err(&patched(
            r#""clock_type":"vector""#,
            r#""clock_type":"atomic""#,
        ));
        assert_eq!(
            e.to_string(),
            "timestamp.clock_type: unknown clock type 'atomic' (expected physical, logical, vector or hybrid)"
        );
        for name in ["physical", "logical", "hybrid"] {
            let json = patched(
                r#""clock_type":"vector""#,
                &format!(r#""clock_type":"{name}""#),
            );
            assert_eq!(
                Envelope::decode(json.as_bytes())
                    .unwrap()
                    .timestamp
                    .clock_type
                    .as_str(),
                name
            );
        }
    }

    #[test]
    fn vector_time_shape() {
        let e = err(&patched(r#"{"producer-1":17,"producer-2":3}"#, r#""x""#));
        assert_eq!(
            e,
            DecodeError::WrongType {
                field: "timestamp.vector_time".into(),
                expected: "an object mapping node ids to counters",
                found: "a string"
            }
        );
        let e = err(&patched(r#""producer-2":3"#, r#""producer-1":3"#));
        assert_eq!(
            e,
            DecodeError::Duplicate {
                field: "timestamp.vector_time.producer-1".into()
            }
        );
        // Zero entries are the same as missing ones.
        let json = patched(r#""producer-2":3"#, r#""producer-3":0"#);
        let vt = Envelope::decode(json.as_bytes())
            .unwrap()
            .timestamp
            .vector_time
            .unwrap();
        assert_eq!(vt, VectorTimestamp::from_entries([("producer-1", 17)]));
    }

    #[test]
    fn vector_entry_cap() {
        let limits = DecodeLimits {
            max_vector_entries: 2,
            ..DecodeLimits::default()
        };
        assert!(Envelope::decode_with(VALID.as_bytes(), &limits).is_ok());
        let json = patched(r#""producer-2":3"#, r#""producer-2":3,"producer-3":1"#);
        assert_eq!(
            Envelope::decode_with(json.as_bytes(), &limits).unwrap_err(),
            DecodeError::TooManyVectorEntries {
                field: "timestamp.vector_time".into(),
                max: 2
            }
        );
    }

    #[test]
    fn legacy_array_vector_is_mapped_by_the_node_order() {
        let json = patched(r#"{"producer-1":17,"producer-2":3}"#, "[1,2,3]");
        // Without a node order: a message without a vector that says how many entries it had.
        let e = Envelope::decode(json.as_bytes()).unwrap();
        assert_eq!(e.timestamp.vector_time, None);
        assert_eq!(e.timestamp.unmapped_vector_entries, Some(3));
        // ... whose entries are still checked.
        let neg = patched(r#"{"producer-1":17,"producer-2":3}"#, "[1,-2,3]");
        assert_eq!(
            err(&neg).to_string(),
            "timestamp.vector_time[1]: negative counter -2"
        );
        let capped = DecodeLimits {
            max_vector_entries: 2,
            ..DecodeLimits::default()
        };
        assert_eq!(
            Envelope::decode_with(json.as_bytes(), &capped).unwrap_err(),
            DecodeError::TooManyVectorEntries {
                field: "timestamp.vector_time".into(),
                max: 2
            }
        );

        let limits = DecodeLimits::default().with_legacy_vector_nodes(["a", "b", "c"]);
        let env = Envelope::decode_with(json.as_bytes(), &limits).unwrap();
        assert_eq!(
            env.timestamp.vector_time,
            Some(VectorTimestamp::from_entries([
                ("a", 1),
                ("b", 2),
                ("c", 3)
            ]))
        );

        let short = DecodeLimits::default().with_legacy_vector_nodes(["a", "b"]);
        assert_eq!(
            Envelope::decode_with(json.as_bytes(), &short).unwrap_err(),
            DecodeError::LegacyVectorLength {
                field: "timestamp.vector_time".into(),
                expected: 2,
                found: 3
            }
        );
        let long = DecodeLimits::default().with_legacy_vector_nodes(["a", "b", "c", "d"]);
        assert_eq!(
            Envelope::decode_with(json.as_bytes(), &long).unwrap_err(),
            DecodeError::LegacyVectorLength {
                field: "timestamp.vector_time".into(),
                expected: 4,
                found: 3
            }
        );
        let neg = patched(r#"{"producer-1":17,"producer-2":3}"#, "[1,-2,3]");
        assert_eq!(
            Envelope::decode_with(neg.as_bytes(), &limits)
                .unwrap_err()
                .to_string(),
            "timestamp.vector_time[1]: negative counter -2"
        );
    }

    #[test]
    fn unknown_fields_are_ignored_but_bounded() {
        let json = patched(
            r#""seq":17"#,
            r#""seq":17,"extra":{"a":[1,{"b":null}],"c":"d"}"#,
        )
        .replace(r#""logical_time":5"#, r#""logical_time":5,"future":[true]"#)
        .replace(r#""logical":0"#, r#""logical":0,"x":1"#);
        assert_eq!(Envelope::decode(json.as_bytes()).unwrap(), sample());
        // Unknown fields count towards the size cap.
        let limits = DecodeLimits {
            max_bytes: VALID.len(),
            ..DecodeLimits::default()
        };
        assert!(Envelope::decode_with(VALID.as_bytes(), &limits).is_ok());
        assert!(matches!(
            Envelope::decode_with(json.as_bytes(), &limits),
            Err(DecodeError::TooLarge { .. })
        ));
        // Nesting inside an unknown field is bounded by max_depth.
        let deep = patched(
            r#""seq":17"#,
            &format!(r#""seq":17,"extra":{}1{}"#, "[".repeat(40), "]".repeat(40)),
        );
        assert_eq!(
            err(&deep),
            DecodeError::TooDeep {
                field: "record".into(),
                max_depth: 32
            }
        );
    }

    #[test]
    fn record_text_in_errors_is_escaped_to_one_line() {
        let e = err(&patched(
            r#""clock_type":"vector""#,
            r#""clock_type":"\nx""#,
        ));
        assert_eq!(
            e.to_string(),
            "timestamp.clock_type: unknown clock type '\\nx' (expected physical, logical, \
             vector or hybrid)"
        );
        let e = err(&patched(
            r#""vector_time":{"#,
            r#""vector_time":{"a\nb":1,"a\nb":2,"#,
        ));
        assert_eq!(
            e.to_string(),
            "timestamp.vector_time.a\\nb: duplicate field"
        );
    }

    #[test]
    fn duplicate_known_fields_are_rejected() {
        let e = err(&patched(r#""seq":17"#, r#""seq":17,"seq":18"#));
        assert_eq!(
            e,
            DecodeError::Duplicate {
                field: "seq".into()
            }
        );
    }

    #[test]
    fn structural_errors() {
        assert_eq!(Envelope::decode(b""), Err(DecodeError::Empty));
        assert_eq!(
            Envelope::decode(b"\xff\xfe{}"),
            Err(DecodeError::NotUtf8 { valid_up_to: 0 })
        );
        assert!(matches!(err("{\"id\":"), DecodeError::Syntax { .. }));
        assert!(matches!(err("not json"), DecodeError::Syntax { .. }));
        assert!(matches!(
            err(&format!("{VALID} {{}}")),
            DecodeError::Syntax { .. }
        ));
        assert_eq!(
            err("[1,2]"),
            DecodeError::WrongType {
                field: "record".into(),
                expected: "a JSON object",
                found: "an array"
            }
        );
        assert!(matches!(
            err(&patched(r#""logical":0}"#, r#""logical":0]"#)),
            DecodeError::Syntax { .. }
        ));
        let limits = DecodeLimits {
            max_bytes: 10,
            ..DecodeLimits::default()
        };
        assert_eq!(
            Envelope::decode_with(VALID.as_bytes(), &limits),
            Err(DecodeError::TooLarge {
                len: VALID.len(),
                max: 10
            })
        );
    }

    /// Strings dense in what needs escaping: ASCII (controls, `"`, `\`, DEL) and any char.
    fn arb_json_text() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        proptest::collection::vec(
            prop_oneof![
                (0u8..0x80).prop_map(char::from),
                prop::sample::select(vec!['"', '\\', '\n', '\r', '\t', '\u{8}', '\u{c}', '\0']),
                any::<char>(),
            ],
            0..400,
        )
        .prop_map(|cs| cs.into_iter().collect())
    }

    /// Any float, NaN and both infinities included (proptest's `any::<f64>()` leaves them out).
    fn arb_f64() -> impl proptest::strategy::Strategy<Value = f64> {
        use proptest::prelude::*;
        prop_oneof![
            8 => any::<f64>(),
            1 => prop::sample::select(vec![f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -0.0]),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// The hand-written encoder writes exactly serde_json's bytes for any strings (content,
        /// id, node ids, vector keys), any floats (non-finite ones included: `null`), any
        /// counters and every combination of the optional fields.
        #[test]
        fn encode_matches_serde_json(
            content in arb_json_text(),
            id in arb_json_text(),
            node in arb_json_text(),
            seq in proptest::option::of(proptest::prelude::any::<u64>()),
            times in (
                arb_f64(),
                proptest::option::of(arb_f64()),
                proptest::option::of(proptest::prelude::any::<u64>()),
            ),
            simulated in proptest::option::of(arb_f64()),
            skew in proptest::option::of(arb_f64()),
            clock_type in proptest::sample::select(vec![
                ClockType::Physical, ClockType::Logical, ClockType::Vector, ClockType::Hybrid,
            ]),
            vector in proptest::option::of(proptest::collection::vec(
                (arb_json_text(), proptest::prelude::any::<u64>()), 0..5)),
            hybrid in proptest::option::of(proptest::prelude::any::<(u64, u32)>()),
        ) {
            let mut env = sample();
            env.content = content;
            env.id = id;
            env.seq = seq;
            env.timestamp.node_id = node.as_str().into();
            (env.timestamp.timestamp, env.timestamp.physical_time, env.timestamp.logical_time) =
                times;
            env.timestamp.clock_type = clock_type;
            env.timestamp.vector_time = vector.map(VectorTimestamp::from_entries);
            env.timestamp.hybrid_time = hybrid.map(|(wall_ms, logical)| HybridTimestamp {
                wall_ms,
                logical,
            });
            env.simulated_skew_ms = skew;
            env.timestamp.simulated_time = simulated;
            let expected = serde_json::to_vec(&env).expect("serde_json encodes an envelope");
            proptest::prop_assert_eq!(env.encode(), expected.clone());
            let mut buf = b"prefix".to_vec();
            env.encode_into(&mut buf);
            proptest::prop_assert_eq!(&buf[6..], &expected[..]);
        }
    }
}
