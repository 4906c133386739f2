//! The header form of the stamp: the clocks of an [`Envelope`] in Kafka record headers, the
//! record value left exactly as the application wrote it (any bytes: Avro, Protobuf, an image).
//!
//! Every header name of the format starts with [`PREFIX`] (`kts-`). The version header
//! [`VERSION`] (`kts-v`) marks a record as header-stamped and selects the header set:
//!
//! * **version 2** ([`v2`], written by [`EncodedHeaders::encode`]): `kts-v: 2` and one header,
//!   `kts-stamp`, whose value carries every field in a compact text encoding
//!   (`6:6f1c-1;10:producer-1;17;hybrid;…`). Two headers instead of ten: librdkafka allocates,
//!   copies, serialises and frees per header, and the broker validates per header.
//! * **version 1** ([`v1`], [`EncodedHeaders::encode_v1`]): `kts-v: 1` and one header per field
//!   (`kts-id`, `kts-node`, …). Still decoded, so records already on a topic stay readable.
//!
//! Numbers in both are ASCII decimals: counters are digits without sign or leading zeros (`0`
//! itself excepted); times are written as the shortest decimal that reads back to the same
//! `f64` (as in the JSON envelope) and read as `-?digits(.digits)?([eE][+-]?digits)?`.
//!
//! # Decoding rules ([`decode`])
//!
//! The same limits as the JSON decoder ([`DecodeLimits`]), every failure a typed
//! [`HeaderError`] that names the header (for version 2, the field: `kts-stamp.<field>`):
//!
//! * at most `max_headers` headers in all (ours and others'), and the value plus every header's
//!   name and value at most `max_bytes` bytes, both checked before any header is read;
//! * headers without the prefix are ignored (other tools' metadata, e.g. `traceparent`);
//!   unknown names with the prefix — including the other version's — are skipped (forward
//!   compatibility, as unknown JSON fields);
//! * `kts-v` must be `1` or `2`; a known header given twice, or with a null value, is an error;
//!   ids and node ids are non-empty UTF-8 of at most `max_id_len` / `max_node_id_len` bytes;
//!   counters fit `u64` (the hybrid clock's logical part `u32`); times are finite; a vector has at
//!   most `max_vector_entries` entries (decoding stops at the first one over the cap) and no
//!   repeated node;
//! * the hybrid timestamp is required for clock type `hybrid`.
//!
//! The decoded [`Envelope`] has an empty `content`: the content is the record value, untouched.

use crate::clock::{ClockType, HybridTimestamp};
use crate::envelope::{self, DecodeError, DecodeLimits, Envelope, Form, Printable};
use std::fmt;
use std::ops::Range;

pub mod v1;
pub mod v2;

/// The prefix of every header name of the format.
pub const PREFIX: &str = "kts-";
/// The version header: its presence makes a record header-stamped.
pub const VERSION: &str = "kts-v";
/// The format version [`EncodedHeaders::encode`] writes.
pub const VERSION_VALUE: &[u8] = v2::VERSION_VALUE;
/// The header carrying the whole stamp in version 2.
pub const STAMP: &str = v2::STAMP;

/// One record header as Kafka gives it: a name and a value that may be null.
pub type Header<'a> = (&'a str, Option<&'a [u8]>);

/// True when the record carries the version header (it is then decoded by [`decode`], whatever
/// its value; otherwise it is a JSON envelope).
pub fn is_stamped(headers: &[Header<'_>]) -> bool {
    headers.iter().any(|(name, _)| *name == VERSION)
}

/// The message id of a header-stamped record, without decoding the rest of the stamp: the first
/// field of `kts-stamp` (version 2) or the `kts-id` header (version 1), whichever comes first;
/// `None` when neither is there, null, malformed or not UTF-8. Only the headers are read (never
/// the value, which is the application's content).
pub fn id_of<'a>(headers: impl IntoIterator<Item = Header<'a>>) -> Option<&'a str> {
    let (name, value) = headers
        .into_iter()
        .find(|(name, _)| *name == STAMP || *name == v1::ID)?;
    if name == STAMP {
        v2::id_of(value?)
    } else {
        std::str::from_utf8(value?).ok()
    }
}

/// Where [`EncodedHeaders::encode`] puts `kts-stamp` (after `kts-v`): a record this crate
/// stamped in version 2 has its stamp at this header index.
pub const STAMP_INDEX: usize = 1;

/// The id (first field) of a `kts-stamp` value, as [`id_of`] reads it, without the rest.
pub fn stamp_id(value: &[u8]) -> Option<&str> {
    v2::id_of(value)
}

/// Why a record carries no valid stamp in either form.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RecordError {
    /// No version header and a null value: nothing to decode.
    #[error("empty record (null value)")]
    NullValue,
    /// The value is not a valid JSON envelope.
    #[error(transparent)]
    Json(#[from] DecodeError),
    /// The headers are not a valid stamp.
    #[error(transparent)]
    Headers(#[from] HeaderError),
}

/// Decodes the stamp of a Kafka record, whichever form it has: from its headers when the version
/// header is present (the value is then the content, any bytes, possibly null), else from the
/// value as a JSON envelope.
///
/// # Example
///
/// One envelope written both ways: as a JSON value, and as headers beside the content.
///
/// ```
/// use kafka_timesync::clock::{ClockType, LamportClock};
/// use kafka_timesync::envelope::{DecodeLimits, Envelope, Form, MessageTimestamp};
/// use kafka_timesync::stamp_headers::{decode_record, EncodedHeaders, Header, RecordError};
///
/// let lamport = LamportClock::new();
/// let envelope = Envelope {
///     id: "m-1".into(),
///     content: "hello".into(),
///     seq: Some(1),
///     timestamp: MessageTimestamp {
///         node_id: "n1".into(),
///         timestamp: 1_790_000_000.25,
///         clock_type: ClockType::Logical,
///         physical_time: Some(1_790_000_000.25),
///         logical_time: Some(lamport.tick()),
///         vector_time: None,
///         hybrid_time: None,
///         simulated_time: None,
///         unmapped_vector_entries: None,
///     },
///     simulated_skew_ms: None,
/// };
/// let limits = DecodeLimits::default();
///
/// // JSON form: the envelope is the value.
/// let value = envelope.encode();
/// assert!(value.starts_with(br#"{"id":"m-1","content":"hello","seq":1,"#));
/// let (form, decoded) = decode_record(Some(&value[..]), &[], &limits).unwrap();
/// assert_eq!((form, &decoded), (Form::Json, &envelope));
///
/// // Header form: the value is the content, the stamp is in `kts-` headers.
/// let mut stamp = EncodedHeaders::new();
/// stamp.encode(&envelope);
/// let headers: Vec<Header<'_>> = stamp.iter().map(|(name, v)| (name, Some(v))).collect();
/// let (form, decoded) = decode_record(Some(b"hello"), &headers, &limits).unwrap();
/// assert_eq!(form, Form::Headers);
/// assert_eq!(decoded.content, "", "the content is the record value");
/// assert_eq!(decoded.timestamp, envelope.timestamp);
///
/// // A malformed record is a typed error naming the field.
/// let err = decode_record(Some(&b"{\"id\":7}"[..]), &[], &limits).unwrap_err();
/// assert!(matches!(&err, RecordError::Json(e) if e.field() == Some("id")), "{err}");
/// ```
pub fn decode_record(
    value: Option<&[u8]>,
    headers: &[Header<'_>],
    limits: &DecodeLimits,
) -> Result<(Form, Envelope), RecordError> {
    if is_stamped(headers) {
        let env = decode(headers, value.map_or(0, <[u8]>::len), limits)?;
        return Ok((Form::Headers, env));
    }
    let value = value.ok_or(RecordError::NullValue)?;
    Ok((Form::Json, envelope::decode(value, limits)?))
}

/// Why a header set is not a valid stamp. Every variant about one header names it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HeaderError {
    /// Value plus headers exceed the size cap.
    #[error("record of {len} bytes (value and headers) exceeds the {max}-byte limit; largest part: {largest}")]
    TooLarge {
        /// Value and header bytes.
        len: usize,
        /// The cap.
        max: usize,
        /// The largest part: `header <name> (<n> bytes)` or `the value (<n> bytes)`.
        largest: String,
    },
    /// More headers than the cap.
    #[error("{count} headers exceed the limit of {max}")]
    TooManyHeaders {
        /// Headers on the record.
        count: usize,
        /// The cap.
        max: usize,
    },
    /// The version header holds another version.
    #[error("header kts-v: unsupported version '{found}' (expected 1 or 2)")]
    UnsupportedVersion {
        /// The value (printable, truncated to 64 characters).
        found: String,
    },
    /// A required header is absent.
    #[error("header {header}: missing")]
    Missing {
        /// The header.
        header: &'static str,
    },
    /// A known header appears twice.
    #[error("header {header}: duplicate header")]
    Duplicate {
        /// The header (for vector entries `kts-vt.<node>`).
        header: String,
    },
    /// A known header has a null value.
    #[error("header {header}: null value")]
    Null {
        /// The header.
        header: &'static str,
    },
    /// A header value is not UTF-8.
    #[error("header {header}: not valid UTF-8")]
    NotUtf8 {
        /// The header.
        header: &'static str,
    },
    /// A counter or time is not a decimal number of the required form.
    #[error("header {header}: expected {expected}, found '{found}'")]
    BadNumber {
        /// The header.
        header: String,
        /// What the value must be.
        expected: &'static str,
        /// The value (printable, truncated to 64 characters).
        found: String,
    },
    /// A counter does not fit its type.
    #[error("header {header}: counter overflows (maximum {max})")]
    CounterOverflow {
        /// The header.
        header: String,
        /// The largest representable value.
        max: u64,
    },
    /// A time overflows to infinity.
    #[error("header {header}: time is not a finite number")]
    NonFinite {
        /// The header.
        header: &'static str,
    },
    /// The clock type is not one of the four clock names.
    #[error("header {header}: unknown clock type '{found}' (expected physical, logical, vector or hybrid)")]
    UnknownClockType {
        /// The header (`kts-clock`) or field (`kts-stamp.clock`).
        header: &'static str,
        /// The value (printable, truncated to 64 characters).
        found: String,
    },
    /// A string is longer than its limit.
    #[error("header {header}: {len} bytes exceeds the {max}-byte limit")]
    TooLong {
        /// The header.
        header: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// An id that must not be empty is empty.
    #[error("header {header}: must not be empty")]
    EmptyString {
        /// The header.
        header: &'static str,
    },
    /// A vector has more entries than the cap.
    #[error("header {header}: more than {max} vector entries")]
    TooManyVectorEntries {
        /// The header (`kts-vt`) or field (`kts-stamp.vt`).
        header: &'static str,
        /// The cap.
        max: usize,
    },
    /// A `kts-vt` entry is not `node=count`, or `kts-hlc` is not `wall_ms:logical`.
    #[error("header {header}: malformed entry '{found}' (expected {expected})")]
    BadEntry {
        /// The header.
        header: &'static str,
        /// The expected form.
        expected: &'static str,
        /// The entry (printable, truncated to 64 characters).
        found: String,
    },
    /// A `kts-stamp` value ends inside or before this field.
    #[error("header {header}: the stamp ends before the field is complete")]
    Truncated {
        /// The field.
        header: &'static str,
    },
    /// A `kts-stamp` value does not have the documented framing here.
    #[error("header {header}: expected {expected}, found '{found}'")]
    Malformed {
        /// The field.
        header: &'static str,
        /// What the framing requires at this point.
        expected: &'static str,
        /// The bytes from there on (printable, truncated to 64 characters).
        found: String,
    },
    /// A header required by the clock type is absent.
    #[error("header {header}: required for clock type {clock_type}")]
    MissingForClockType {
        /// The header.
        header: &'static str,
        /// The clock type.
        clock_type: ClockType,
    },
}

impl HeaderError {
    /// The offending header's name (vector entries: `kts-vt.<node>`), if the error concerns one.
    pub fn header(&self) -> Option<&str> {
        use HeaderError::*;
        match self {
            // A size error concerns the whole record (its message names the largest part).
            TooManyHeaders { .. } | TooLarge { .. } => None,
            UnsupportedVersion { .. } => Some(VERSION),
            Missing { header }
            | Null { header }
            | NotUtf8 { header }
            | NonFinite { header }
            | TooLong { header, .. }
            | EmptyString { header }
            | BadEntry { header, .. }
            | UnknownClockType { header, .. }
            | TooManyVectorEntries { header, .. }
            | Truncated { header }
            | Malformed { header, .. }
            | MissingForClockType { header, .. } => Some(header),
            Duplicate { header } | BadNumber { header, .. } | CounterOverflow { header, .. } => {
                Some(header)
            }
        }
    }
}

/// Bytes of a record value shown in an error: printable, at most 64 characters.
fn shown(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let cut: String = text.chars().take(64).collect();
    Printable(&cut).to_string()
}

/// The stamp of an envelope as headers, in one reusable buffer (a producer keeps one and
/// refills it per message with [`encode`](Self::encode)).
#[derive(Debug, Default, Clone)]
pub struct EncodedHeaders {
    buf: Vec<u8>,
    spans: Vec<(&'static str, Range<usize>)>,
}

impl EncodedHeaders {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the set with the version-2 stamp of `env` (`kts-v`, `kts-stamp`; its `content`
    /// is not part of it). Times must be finite (as in the JSON envelope).
    pub fn encode(&mut self, env: &Envelope) {
        self.clear();
        v2::encode(self, env);
    }

    /// Replaces the set with the version-1 stamp of `env` (one header per field), which readers
    /// that predate version 2 understand.
    pub fn encode_v1(&mut self, env: &Envelope) {
        self.clear();
        v1::encode(self, env);
    }

    fn clear(&mut self) {
        self.buf.clear();
        self.spans.clear();
    }

    fn put(&mut self, name: &'static str, write: impl FnOnce(&mut Vec<u8>)) {
        let start = self.buf.len();
        write(&mut self.buf);
        self.spans.push((name, start..self.buf.len()));
    }

    /// The headers as (name, value), in the order of the version's table.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &[u8])> + '_ {
        self.spans
            .iter()
            .map(|(name, r)| (*name, &self.buf[r.clone()]))
    }

    /// Number of headers.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// True before the first [`encode`](Self::encode).
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }
}

/// The fields both header versions decode, in the form [`Stamp::envelope`] turns into the
/// envelope (content empty: the content is the record's value).
struct Stamp<'a> {
    id: &'a str,
    node_id: crate::NodeId,
    seq: Option<u64>,
    clock_type: ClockType,
    timestamp: f64,
    physical_time: Option<f64>,
    logical_time: Option<u64>,
    vector_time: Option<crate::clock::VectorTimestamp>,
    hybrid_time: Option<HybridTimestamp>,
    simulated_skew_ms: Option<f64>,
}

impl Stamp<'_> {
    fn envelope(self) -> Envelope {
        Envelope {
            id: self.id.to_string(),
            content: String::new(),
            seq: self.seq,
            timestamp: envelope::MessageTimestamp {
                node_id: self.node_id,
                timestamp: self.timestamp,
                clock_type: self.clock_type,
                physical_time: self.physical_time,
                logical_time: self.logical_time,
                vector_time: self.vector_time,
                hybrid_time: self.hybrid_time,
                simulated_time: None,
                unmapped_vector_entries: None,
            },
            simulated_skew_ms: self.simulated_skew_ms,
        }
    }
}

/// A hybrid stamp must carry its hybrid time (`header` names the field that holds it).
fn require_hybrid(
    header: &'static str,
    clock_type: ClockType,
    hybrid_time: Option<&HybridTimestamp>,
) -> Result<(), HeaderError> {
    if clock_type == ClockType::Hybrid && hybrid_time.is_none() {
        return Err(HeaderError::MissingForClockType { header, clock_type });
    }
    Ok(())
}

/// The shortest round-tripping decimal; a non-finite time (which no clock produces) as `NaN` or
/// `inf`, which [`decode`] rejects, like the JSON envelope's `null`.
fn write_f64(buf: &mut Vec<u8>, x: f64) {
    if x.is_finite() {
        buf.extend_from_slice(zmij::Buffer::new().format_finite(x).as_bytes());
    } else {
        buf.extend_from_slice(x.to_string().as_bytes());
    }
}

/// Decodes the stamp of a record with `value_len` value bytes from its headers (see the
/// [module documentation](self) for the rules). The returned envelope's `content` is empty.
pub fn decode(
    headers: &[Header<'_>],
    value_len: usize,
    limits: &DecodeLimits,
) -> Result<Envelope, HeaderError> {
    if headers.len() > limits.max_headers {
        return Err(HeaderError::TooManyHeaders {
            count: headers.len(),
            max: limits.max_headers,
        });
    }
    let size = |(name, value): &Header<'_>| name.len().saturating_add(value.map_or(0, <[u8]>::len));
    let len = headers
        .iter()
        .fold(value_len, |acc, h| acc.saturating_add(size(h)));
    if len > limits.max_bytes {
        let biggest = headers.iter().max_by_key(|h| size(h));
        let largest = match biggest {
            Some(h) if size(h) > value_len => {
                format!(
                    "header {} ({} bytes)",
                    Printable(&shown(h.0.as_bytes())),
                    size(h)
                )
            }
            _ => format!("the value ({value_len} bytes)"),
        };
        return Err(HeaderError::TooLarge {
            len,
            max: limits.max_bytes,
            largest,
        });
    }
    // One pass for the version and the version-2 stamp; a version-1 set is read by `v1`.
    let (mut version, mut stamp) = (None, None);
    for &(name, value) in headers {
        let slot = match name {
            VERSION => &mut version,
            STAMP => &mut stamp,
            _ => continue,
        };
        if slot.replace(value).is_some() {
            let header = if name == VERSION { VERSION } else { STAMP };
            return Err(HeaderError::Duplicate {
                header: header.to_string(),
            });
        }
    }
    let version = match version {
        None => return Err(HeaderError::Missing { header: VERSION }),
        Some(None) => return Err(HeaderError::Null { header: VERSION }),
        Some(Some(v)) => v,
    };
    if version == v2::VERSION_VALUE {
        match stamp {
            None => Err(HeaderError::Missing { header: STAMP }),
            Some(None) => Err(HeaderError::Null { header: STAMP }),
            Some(Some(v)) => v2::decode(v, limits),
        }
    } else if version == v1::VERSION_VALUE {
        v1::decode(headers, limits)
    } else {
        Err(HeaderError::UnsupportedVersion {
            found: shown(version),
        })
    }
}

fn text<'a>(header: &'static str, v: &'a [u8]) -> Result<&'a str, HeaderError> {
    std::str::from_utf8(v).map_err(|_| HeaderError::NotUtf8 { header })
}

fn id_str<'a>(header: &'static str, v: &'a [u8], max: usize) -> Result<&'a str, HeaderError> {
    if v.is_empty() {
        return Err(HeaderError::EmptyString { header });
    }
    if v.len() > max {
        return Err(HeaderError::TooLong {
            header,
            len: v.len(),
            max,
        });
    }
    text(header, v)
}

/// A decimal counter: digits only, no leading zero (but `0`), at most `max`.
fn counter(header: impl fmt::Display, v: &[u8], max: u64) -> Result<u64, HeaderError> {
    let bad = |header: &dyn fmt::Display| HeaderError::BadNumber {
        header: header.to_string(),
        expected: "a decimal counter",
        found: shown(v),
    };
    let overflow = |header: &dyn fmt::Display| HeaderError::CounterOverflow {
        header: header.to_string(),
        max,
    };
    if v.is_empty() || (v[0] == b'0' && v.len() > 1) {
        return Err(bad(&header));
    }
    // Up to 19 digits cannot overflow a u64 (10^19 - 1 < 2^64): checked and summed in one pass.
    if v.len() <= 19 {
        let mut n: u64 = 0;
        for &d in v {
            if !d.is_ascii_digit() {
                return Err(bad(&header));
            }
            n = n * 10 + u64::from(d - b'0');
        }
        return if n <= max {
            Ok(n)
        } else {
            Err(overflow(&header))
        };
    }
    if !v.iter().all(u8::is_ascii_digit) {
        return Err(bad(&header));
    }
    let mut n: u64 = 0;
    for &d in v {
        n = match n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(d - b'0')))
        {
            Some(n) if n <= max => n,
            _ => return Err(overflow(&header)),
        };
    }
    Ok(n)
}

/// A finite decimal: `-?digits(.digits)?([eE][+-]?digits)?`.
fn time(header: &'static str, v: &[u8]) -> Result<f64, HeaderError> {
    let bad = || HeaderError::BadNumber {
        header: header.to_string(),
        expected: "a decimal number",
        found: shown(v),
    };
    let mut i = usize::from(v.first() == Some(&b'-'));
    let digits = |i: &mut usize| {
        let start = *i;
        while v.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i > start
    };
    if !digits(&mut i) {
        return Err(bad());
    }
    if v.get(i) == Some(&b'.') {
        i += 1;
        if !digits(&mut i) {
            return Err(bad());
        }
    }
    if matches!(v.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(v.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if !digits(&mut i) {
            return Err(bad());
        }
    }
    if i != v.len() {
        return Err(bad());
    }
    // Only ASCII digits and signs were accepted: valid UTF-8 and a valid float literal.
    let x: f64 = std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    if x.is_finite() {
        Ok(x)
    } else {
        Err(HeaderError::NonFinite { header })
    }
}

/// The name of a vector entry in errors, `<header>.<node>` (rendered only for an error).
struct Entry<'a>(&'static str, &'a str);

impl fmt::Display for Entry<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.0, Printable(self.1))
    }
}

/// `wall_ms:logical`.
fn hybrid(header: &'static str, v: &[u8]) -> Result<HybridTimestamp, HeaderError> {
    let colon = v
        .iter()
        .position(|&b| b == b':')
        .ok_or_else(|| HeaderError::BadEntry {
            header,
            expected: "wall_ms:logical",
            found: shown(v),
        })?;
    let wall_ms = counter(header, &v[..colon], u64::MAX)?;
    let logical = counter(header, &v[colon + 1..], u64::from(u32::MAX))?;
    Ok(HybridTimestamp::new(
        wall_ms,
        u32::try_from(logical).unwrap_or(u32::MAX),
    ))
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_v2;
