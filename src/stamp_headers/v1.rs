//! Version 1 of the header form: one header per field (`kts-id`, `kts-node`, … beside
//! `kts-v: 1`). Still read (`decode`), written only on request (`encode`) for readers that
//! predate version 2.
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
//! In `kts-vt` a node id's `%`, `,` and `=` are written `%25`, `%2C` and `%3D`; entries with a
//! zero counter are never written (a reader drops them). A known header given twice, or with a
//! null value, is an error; values must be UTF-8; `kts-vt` has at most `max_vector_entries`
//! entries (decoding stops at the first one over the cap), no empty, over-long or repeated node
//! ids, and well-formed escapes.

use super::{
    counter, hybrid, id_str, require_hybrid, shown, text, time, write_f64, EncodedHeaders, Stamp,
};
use super::{Header, HeaderError, VERSION};
use crate::clock::{ClockType, VectorTimestamp};
use crate::envelope::{write_u64, DecodeLimits, Envelope, Printable};
use crate::NodeId;
use std::fmt;

/// The version value of this header set.
pub(super) const VERSION_VALUE: &[u8] = b"1";

/// The message id header.
pub(super) const ID: &str = "kts-id";
const NODE: &str = "kts-node";
const SEQ: &str = "kts-seq";
const CLOCK: &str = "kts-clock";
const TS: &str = "kts-ts";
const PT: &str = "kts-pt";
const LT: &str = "kts-lt";
const VT: &str = "kts-vt";
const HLC: &str = "kts-hlc";
const SKEW: &str = "kts-skew";

/// The known headers, in the order [`encode`] writes them.
const KNOWN: [&str; 11] = [VERSION, ID, NODE, SEQ, CLOCK, TS, PT, LT, VT, HLC, SKEW];

/// Fills `out` with the version-1 header set of `env`.
pub(super) fn encode(out: &mut EncodedHeaders, env: &Envelope) {
    let ts = &env.timestamp;
    out.put(VERSION, |b| b.extend_from_slice(VERSION_VALUE));
    out.put(ID, |b| b.extend_from_slice(env.id.as_bytes()));
    out.put(NODE, |b| b.extend_from_slice(ts.node_id.as_bytes()));
    if let Some(seq) = env.seq {
        out.put(SEQ, |b| write_u64(b, seq));
    }
    out.put(CLOCK, |b| {
        b.extend_from_slice(ts.clock_type.as_str().as_bytes())
    });
    out.put(TS, |b| write_f64(b, ts.timestamp));
    if let Some(p) = ts.physical_time {
        out.put(PT, |b| write_f64(b, p));
    }
    if let Some(l) = ts.logical_time {
        out.put(LT, |b| write_u64(b, l));
    }
    if let Some(v) = &ts.vector_time {
        out.put(VT, |b| {
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
        out.put(HLC, |b| {
            write_u64(b, h.wall_ms);
            b.push(b':');
            write_u64(b, u64::from(h.logical));
        });
    }
    if let Some(skew) = env.simulated_skew_ms {
        out.put(SKEW, |b| write_f64(b, skew));
    }
}

/// Decodes a version-1 header set (the caller has checked the sizes and the version).
pub(super) fn decode(
    headers: &[Header<'_>],
    limits: &DecodeLimits,
) -> Result<Envelope, HeaderError> {
    let mut slots: [Option<&[u8]>; KNOWN.len()] = [None; KNOWN.len()];
    for &(name, value) in headers {
        if !name.starts_with(super::PREFIX) {
            continue;
        }
        let Some(i) = KNOWN.iter().position(|k| *k == name) else {
            continue; // another version's header: skipped
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
    let required = |name: &'static str| match get(name) {
        Some(v) => Ok(v),
        None => Err(HeaderError::Missing { header: name }),
    };
    let id = id_str(ID, required(ID)?, limits.max_id_len)?;
    let node_id = id_str(NODE, required(NODE)?, limits.max_node_id_len)?;
    let seq = get(SEQ).map(|v| counter(SEQ, v, u64::MAX)).transpose()?;
    let clock = text(CLOCK, required(CLOCK)?)?;
    let clock_type: ClockType = clock.parse().map_err(|_| HeaderError::UnknownClockType {
        header: CLOCK,
        found: shown(clock.as_bytes()),
    })?;
    let timestamp = time(TS, required(TS)?)?;
    let physical_time = get(PT).map(|v| time(PT, v)).transpose()?;
    let logical_time = get(LT).map(|v| counter(LT, v, u64::MAX)).transpose()?;
    let vector_time = get(VT).map(|v| vector(v, limits)).transpose()?;
    let hybrid_time = get(HLC).map(|v| hybrid(HLC, v)).transpose()?;
    require_hybrid(HLC, clock_type, hybrid_time.as_ref())?;
    let simulated_skew_ms = get(SKEW).map(|v| time(SKEW, v)).transpose()?;
    Ok(Stamp {
        id,
        node_id: node_id.into(),
        seq,
        clock_type,
        timestamp,
        physical_time,
        logical_time,
        vector_time,
        hybrid_time,
        simulated_skew_ms,
    }
    .envelope())
}

fn vector(v: &[u8], limits: &DecodeLimits) -> Result<VectorTimestamp, HeaderError> {
    let mut entries: Vec<(NodeId, u64)> = Vec::new();
    if v.is_empty() {
        return Ok(VectorTimestamp::new());
    }
    for (n, entry) in v.split(|&b| b == b',').enumerate() {
        if n >= limits.max_vector_entries {
            return Err(HeaderError::TooManyVectorEntries {
                header: VT,
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
