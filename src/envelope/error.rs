//! The decoder's bounds ([`DecodeLimits`]) and its typed errors ([`DecodeError`]).

use crate::clock::ClockType;
use crate::NodeId;
use std::fmt::{self, Write as _};

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
    /// entry cap) but not mapped; the message then has no vector and its
    /// [`unmapped_vector_entries`](super::MessageTimestamp::unmapped_vector_entries) gives the
    /// array's length.
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

    /// `max_depth`, clamped to the documented `3..=64`.
    pub(super) fn depth_cap(&self) -> usize {
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
