//! The header form of the stamp: the clocks of an [`Envelope`] in Kafka record headers, the
//! record value left exactly as the application wrote it (any bytes: Avro, Protobuf, an image).
//!
//! # Header set, version 1
//!
//! Every name starts with [`PREFIX`] (`kts-`); every value is ASCII text (UTF-8 for ids).
//!
//! | header      | JSON field                   | value                                          | required |
//! |-------------|------------------------------|------------------------------------------------|----------|
//! | `kts-v`     | —                            | `1`, the format version                        | yes      |
//! | `kts-id`    | `id`                         | the message id                                 | yes      |
//! | `kts-node`  | `timestamp.node_id`          | the sending node                               | yes      |
//! | `kts-seq`   | `seq`                        | decimal counter                                | no       |
//! | `kts-clock` | `timestamp.clock_type`       | `physical`, `logical`, `vector` or `hybrid`    | yes      |
//! | `kts-ts`    | `timestamp.timestamp`        | decimal seconds since the epoch                | yes      |
//! | `kts-pt`    | `timestamp.physical_time`    | decimal seconds since the epoch                | no       |
//! | `kts-lt`    | `timestamp.logical_time`     | decimal counter                                | no       |
//! | `kts-vt`    | `timestamp.vector_time`      | `node=count,node=count` (see below)            | no       |
//! | `kts-hlc`   | `timestamp.hybrid_time`      | `wall_ms:logical`, two decimal counters        | hybrid   |
//! | `kts-skew`  | `simulated_skew_ms`          | decimal milliseconds                           | no       |
//!
//! Counters are decimal digits without sign or leading zeros (`0` itself excepted); times are
//! the shortest decimal that reads back to the same `f64` (as in the JSON envelope), optionally
//! negative, with an optional fraction and exponent. In `kts-vt` a node id's `%`, `,` and `=`
//! are written `%25`, `%2C` and `%3D`; entries with a zero counter are never written.
//!
//! # Decoding rules ([`decode`])
//!
//! The same limits as the JSON decoder ([`DecodeLimits`]), every failure a typed
//! [`HeaderError`] that names the header:
//!
//! * at most `max_headers` headers in all (ours and others'), and the value plus every header's
//!   name and value at most `max_bytes` bytes, both checked before any header is read;
//! * headers without the prefix are ignored (other tools' metadata, e.g. `traceparent`);
//!   unknown names with the prefix are skipped (forward compatibility, as unknown JSON fields);
//! * `kts-v` must be `1`; a known header given twice, or with a null value, is an error; values
//!   must be UTF-8; `kts-id` and `kts-node` are non-empty and at most `max_id_len` /
//!   `max_node_id_len` bytes; counters fit `u64` (`kts-hlc`'s logical part `u32`); times are
//!   finite; `kts-vt` has at most `max_vector_entries` entries (decoding stops at the first one
//!   over the cap), no empty, over-long or repeated node ids, and well-formed escapes;
//! * `kts-hlc` is required for clock type `hybrid`.
//!
//! The decoded [`Envelope`] has an empty `content`: the content is the record value, untouched.

use crate::clock::{ClockType, HybridTimestamp, VectorTimestamp};
use crate::envelope::write_u64;
use crate::envelope::{
    self, DecodeError, DecodeLimits, Envelope, Form, MessageTimestamp, Printable,
};
use crate::NodeId;
use std::fmt;
use std::ops::Range;

/// The prefix of every header name of the format.
pub const PREFIX: &str = "kts-";
/// The version header: its presence makes a record header-stamped.
pub const VERSION: &str = "kts-v";
/// The format version written and accepted.
pub const VERSION_VALUE: &[u8] = b"1";

const ID: &str = "kts-id";
const NODE: &str = "kts-node";
const SEQ: &str = "kts-seq";
const CLOCK: &str = "kts-clock";
const TS: &str = "kts-ts";
const PT: &str = "kts-pt";
const LT: &str = "kts-lt";
const VT: &str = "kts-vt";
const HLC: &str = "kts-hlc";
const SKEW: &str = "kts-skew";

/// The known headers, in the order [`EncodedHeaders`] writes them.
const KNOWN: [&str; 11] = [VERSION, ID, NODE, SEQ, CLOCK, TS, PT, LT, VT, HLC, SKEW];

/// One record header as Kafka gives it: a name and a value that may be null.
pub type Header<'a> = (&'a str, Option<&'a [u8]>);

/// True when the record carries the version header (it is then decoded by [`decode`], whatever
/// its value; otherwise it is a JSON envelope).
pub fn is_stamped(headers: &[Header<'_>]) -> bool {
    headers.iter().any(|(name, _)| *name == VERSION)
}

/// The message id (`kts-id`) of a header-stamped record, without decoding the rest of the stamp:
/// `None` when the header is absent, null or not UTF-8. Only the headers are read (never the
/// value, which is the application's content); the first `kts-id` counts.
pub fn id_of<'a>(headers: impl IntoIterator<Item = Header<'a>>) -> Option<&'a str> {
    let (_, value) = headers.into_iter().find(|(name, _)| *name == ID)?;
    std::str::from_utf8(value?).ok()
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
    #[error("header kts-v: unsupported version '{found}' (expected 1)")]
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
    /// `kts-clock` is not one of the four clock names.
    #[error("header kts-clock: unknown clock type '{found}' (expected physical, logical, vector or hybrid)")]
    UnknownClockType {
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
    /// `kts-vt` has more entries than the cap.
    #[error("header kts-vt: more than {max} vector entries")]
    TooManyVectorEntries {
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
            UnknownClockType { .. } => Some(CLOCK),
            TooManyVectorEntries { .. } => Some(VT),
            Missing { header }
            | Null { header }
            | NotUtf8 { header }
            | NonFinite { header }
            | TooLong { header, .. }
            | EmptyString { header }
            | BadEntry { header, .. }
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

    /// Replaces the set with the stamp of `env` (its `content` is not part of it). Times must
    /// be finite (as in the JSON envelope).
    pub fn encode(&mut self, env: &Envelope) {
        self.buf.clear();
        self.spans.clear();
        let ts = &env.timestamp;
        self.put(VERSION, |b| b.extend_from_slice(VERSION_VALUE));
        self.put(ID, |b| b.extend_from_slice(env.id.as_bytes()));
        self.put(NODE, |b| b.extend_from_slice(ts.node_id.as_bytes()));
        if let Some(seq) = env.seq {
            self.put(SEQ, |b| write_u64(b, seq));
        }
        self.put(CLOCK, |b| {
            b.extend_from_slice(ts.clock_type.as_str().as_bytes())
        });
        self.put(TS, |b| write_f64(b, ts.timestamp));
        if let Some(p) = ts.physical_time {
            self.put(PT, |b| write_f64(b, p));
        }
        if let Some(l) = ts.logical_time {
            self.put(LT, |b| write_u64(b, l));
        }
        if let Some(v) = &ts.vector_time {
            self.put(VT, |b| {
                for (i, (node, count)) in v.iter().enumerate() {
                    if i > 0 {
                        b.push(b',');
                    }
                    for &c in node.as_bytes() {
                        match c {
                            b'%' => b.extend_from_slice(b"%25"),
                            b',' => b.extend_from_slice(b"%2C"),
                            b'=' => b.extend_from_slice(b"%3D"),
                            _ => b.push(c),
                        }
                    }
                    b.push(b'=');
                    write_u64(b, count);
                }
            });
        }
        if let Some(h) = &ts.hybrid_time {
            self.put(HLC, |b| {
                write_u64(b, h.wall_ms);
                b.push(b':');
                write_u64(b, u64::from(h.logical));
            });
        }
        if let Some(skew) = env.simulated_skew_ms {
            self.put(SKEW, |b| write_f64(b, skew));
        }
    }

    fn put(&mut self, name: &'static str, write: impl FnOnce(&mut Vec<u8>)) {
        let start = self.buf.len();
        write(&mut self.buf);
        self.spans.push((name, start..self.buf.len()));
    }

    /// The headers as (name, value), in the order of the table in the module documentation.
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
    let mut slots: [Option<&[u8]>; KNOWN.len()] = [None; KNOWN.len()];
    for &(name, value) in headers {
        if !name.starts_with(PREFIX) {
            continue;
        }
        let Some(i) = KNOWN.iter().position(|k| *k == name) else {
            continue; // a later version's header: skipped
        };
        let header = KNOWN[i];
        let Some(value) = value else {
            return Err(HeaderError::Null { header });
        };
        if slots[i].replace(value).is_some() {
            return Err(HeaderError::Duplicate {
                header: header.to_string(),
            });
        }
    }
    let get = |name: &'static str| -> Option<&[u8]> {
        KNOWN.iter().position(|k| *k == name).and_then(|i| slots[i])
    };
    let version = get(VERSION).ok_or(HeaderError::Missing { header: VERSION })?;
    if version != VERSION_VALUE {
        return Err(HeaderError::UnsupportedVersion {
            found: shown(version),
        });
    }
    let required = |name: &'static str| get(name).ok_or(HeaderError::Missing { header: name });
    let id = id_str(ID, required(ID)?, limits.max_id_len)?;
    let node_id = id_str(NODE, required(NODE)?, limits.max_node_id_len)?;
    let seq = get(SEQ).map(|v| counter(SEQ, v, u64::MAX)).transpose()?;
    let clock = text(CLOCK, required(CLOCK)?)?;
    let clock_type: ClockType = clock.parse().map_err(|_| HeaderError::UnknownClockType {
        found: shown(clock.as_bytes()),
    })?;
    let timestamp = time(TS, required(TS)?)?;
    let physical_time = get(PT).map(|v| time(PT, v)).transpose()?;
    let logical_time = get(LT).map(|v| counter(LT, v, u64::MAX)).transpose()?;
    let vector_time = get(VT).map(|v| vector(v, limits)).transpose()?;
    let hybrid_time = get(HLC).map(hybrid).transpose()?;
    if clock_type == ClockType::Hybrid && hybrid_time.is_none() {
        return Err(HeaderError::MissingForClockType {
            header: HLC,
            clock_type,
        });
    }
    let simulated_skew_ms = get(SKEW).map(|v| time(SKEW, v)).transpose()?;
    Ok(Envelope {
        id: id.to_string(),
        content: String::new(),
        seq,
        timestamp: MessageTimestamp {
            node_id: NodeId::from(node_id),
            timestamp,
            clock_type,
            physical_time,
            logical_time,
            vector_time,
            hybrid_time,
            simulated_time: None,
            unmapped_vector_entries: None,
        },
        simulated_skew_ms,
    })
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
    let well_formed =
        !v.is_empty() && v.iter().all(u8::is_ascii_digit) && (v[0] != b'0' || v.len() == 1);
    if !well_formed {
        return Err(HeaderError::BadNumber {
            header: header.to_string(),
            expected: "a decimal counter",
            found: shown(v),
        });
    }
    let mut n: u64 = 0;
    for &d in v {
        n = match n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(d - b'0')))
        {
            Some(n) if n <= max => n,
            _ => {
                return Err(HeaderError::CounterOverflow {
                    header: header.to_string(),
                    max,
                })
            }
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

fn vector(v: &[u8], limits: &DecodeLimits) -> Result<VectorTimestamp, HeaderError> {
    let mut entries: Vec<(NodeId, u64)> = Vec::new();
    if v.is_empty() {
        return Ok(VectorTimestamp::new());
    }
    for (n, entry) in v.split(|&b| b == b',').enumerate() {
        if n >= limits.max_vector_entries {
            return Err(HeaderError::TooManyVectorEntries {
                max: limits.max_vector_entries,
            });
        }
        let bad = || HeaderError::BadEntry {
            header: VT,
            expected: "node=count",
            found: shown(entry),
        };
        let eq = entry.iter().position(|&b| b == b'=').ok_or_else(bad)?;
        let (raw_node, count) = (&entry[..eq], &entry[eq + 1..]);
        let node = unescape(raw_node).ok_or_else(bad)?;
        if node.is_empty() {
            return Err(HeaderError::EmptyString { header: VT });
        }
        if node.len() > limits.max_node_id_len {
            return Err(HeaderError::TooLong {
                header: VT,
                len: node.len(),
                max: limits.max_node_id_len,
            });
        }
        let node = std::str::from_utf8(&node).map_err(|_| HeaderError::NotUtf8 { header: VT })?;
        let count = counter(VtEntry(node), count, u64::MAX)?;
        entries.push((NodeId::from(node), count));
    }
    // Repeated node ids are adjacent once sorted (the timestamp sorts its entries anyway).
    entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    if let Some(w) = entries.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(HeaderError::Duplicate {
            header: VtEntry(&w[0].0).to_string(),
        });
    }
    Ok(VectorTimestamp::from_entries(entries))
}

/// The name of a `kts-vt` entry in errors, `kts-vt.<node>` (rendered only for an error).
struct VtEntry<'a>(&'a str);

impl fmt::Display for VtEntry<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{VT}.{}", Printable(self.0))
    }
}

/// Undoes the `%XX` escapes of a node id in `kts-vt` (`None`: a malformed escape).
fn unescape(raw: &[u8]) -> Option<std::borrow::Cow<'_, [u8]>> {
    if !raw.contains(&b'%') {
        return Some(std::borrow::Cow::Borrowed(raw));
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' {
            let hex = raw.get(i + 1..i + 3)?;
            let digit = |b: u8| char::from(b).to_digit(16);
            out.push(u8::try_from(digit(hex[0])? * 16 + digit(hex[1])?).ok()?);
            i += 3;
        } else {
            out.push(raw[i]);
            i += 1;
        }
    }
    Some(std::borrow::Cow::Owned(out))
}

fn hybrid(v: &[u8]) -> Result<HybridTimestamp, HeaderError> {
    let colon = v
        .iter()
        .position(|&b| b == b':')
        .ok_or_else(|| HeaderError::BadEntry {
            header: HLC,
            expected: "wall_ms:logical",
            found: shown(v),
        })?;
    let wall_ms = counter(HLC, &v[..colon], u64::MAX)?;
    let logical = counter(HLC, &v[colon + 1..], u64::from(u32::MAX))?;
    Ok(HybridTimestamp::new(
        wall_ms,
        u32::try_from(logical).unwrap_or(u32::MAX),
    ))
}

#[cfg(test)]
mod tests;
