//! Version 2 of the header form: the whole stamp in one header, `kts-stamp`, beside `kts-v: 2`.
//!
//! The value is ASCII text (ids and node ids as UTF-8 bytes), ten fields in a fixed order, each
//! followed by `;` except the last:
//!
//! ```text
//! id;node;seq;clock;ts;pt;lt;vt;hlc;skew
//! 6:6f1c-1;10:producer-1;17;hybrid;1790000000.123;1790000000.223;5;[7:a,b=c%d=3,10:producer-1=17];1790000000223:2;-100.5
//! ```
//!
//! | field   | JSON field                | value                                                      | required |
//! |---------|---------------------------|------------------------------------------------------------|----------|
//! | `id`    | `id`                      | `<length>:<bytes>`                                          | yes      |
//! | `node`  | `timestamp.node_id`       | `<length>:<bytes>`                                          | yes      |
//! | `seq`   | `seq`                     | decimal counter                                             | no       |
//! | `clock` | `timestamp.clock_type`    | `physical`, `logical`, `vector` or `hybrid`                 | yes      |
//! | `ts`    | `timestamp.timestamp`     | decimal seconds since the epoch                             | yes      |
//! | `pt`    | `timestamp.physical_time` | decimal seconds since the epoch                             | no       |
//! | `lt`    | `timestamp.logical_time`  | decimal counter                                             | no       |
//! | `vt`    | `timestamp.vector_time`   | `[<length>:<node>=<count>,…]`, node ids in ascending byte order | no   |
//! | `hlc`   | `timestamp.hybrid_time`   | `wall_ms:logical`, two decimal counters                     | hybrid   |
//! | `skew`  | `simulated_skew_ms`       | decimal milliseconds                                        | no       |
//!
//! An absent optional field is empty (`;;`); an empty vector is `[]`. Strings carry their byte
//! length in front, so no byte of an id or node id (`;`, `,`, `=`, `]`, anything) can break the
//! framing and nothing is escaped. Lengths and counters are canonical decimals (no sign, no
//! leading zero); vector counters are above zero and the node ids strictly ascending, so a
//! repeated node is the previous entry's and is found without sorting. Errors name the field as
//! `kts-stamp.<field>` (vector entries `kts-stamp.vt.<node>`).

use super::{
    counter, hybrid, require_hybrid, shown, time, write_f64, EncodedHeaders, Entry, HeaderError,
    Stamp, VERSION,
};
use crate::clock::{ClockType, VectorTimestamp};
use crate::envelope::{write_u64, DecodeLimits, Envelope};
use crate::NodeId;

/// The version value of this header set.
pub(super) const VERSION_VALUE: &[u8] = b"2";
/// The header carrying the stamp.
pub(super) const STAMP: &str = "kts-stamp";

const ID: &str = "kts-stamp.id";
const NODE: &str = "kts-stamp.node";
const SEQ: &str = "kts-stamp.seq";
const CLOCK: &str = "kts-stamp.clock";
const TS: &str = "kts-stamp.ts";
const PT: &str = "kts-stamp.pt";
const LT: &str = "kts-stamp.lt";
const VT: &str = "kts-stamp.vt";
const HLC: &str = "kts-stamp.hlc";
const SKEW: &str = "kts-stamp.skew";

/// Fills `out` with the version-2 header set of `env`.
pub(super) fn encode(out: &mut EncodedHeaders, env: &Envelope) {
    let ts = &env.timestamp;
    out.put(VERSION, |b| b.extend_from_slice(VERSION_VALUE));
    out.put(STAMP, |b| {
        put_str(b, &env.id);
        b.push(b';');
        put_str(b, &ts.node_id);
        b.push(b';');
        if let Some(seq) = env.seq {
            write_u64(b, seq);
        }
        b.push(b';');
        b.extend_from_slice(ts.clock_type.as_str().as_bytes());
        b.push(b';');
        write_f64(b, ts.timestamp);
        b.push(b';');
        if let Some(p) = ts.physical_time {
            write_f64(b, p);
        }
        b.push(b';');
        if let Some(l) = ts.logical_time {
            write_u64(b, l);
        }
        b.push(b';');
        if let Some(v) = &ts.vector_time {
            b.push(b'[');
            for (i, (node, count)) in v.iter().enumerate() {
                if i > 0 {
                    b.push(b',');
                }
                put_str(b, node);
                b.push(b'=');
                write_u64(b, count);
            }
            b.push(b']');
        }
        b.push(b';');
        if let Some(h) = &ts.hybrid_time {
            write_u64(b, h.wall_ms);
            b.push(b':');
            write_u64(b, u64::from(h.logical));
        }
        b.push(b';');
        if let Some(skew) = env.simulated_skew_ms {
            write_f64(b, skew);
        }
    });
}

/// `<length>:<bytes>`.
fn put_str(b: &mut Vec<u8>, s: &str) {
    write_u64(b, s.len() as u64);
    b.push(b':');
    b.extend_from_slice(s.as_bytes());
}

/// The id (first field) of a `kts-stamp` value, without reading the rest: `Some` exactly when
/// the decoder's reading of the field (unbounded length) succeeds, and then the same string.
/// Hand-written because the producer reads it once per delivered message; no error is built.
pub(super) fn id_of(value: &[u8]) -> Option<&str> {
    let digits = value.iter().take_while(|b| b.is_ascii_digit()).count();
    // A canonical length: digits, no leading zero (which also rules out the empty id), ':'.
    if digits == 0 || value[0] == b'0' || value.get(digits) != Some(&b':') {
        return None;
    }
    let mut len: usize = 0;
    for &d in &value[..digits] {
        len = len.checked_mul(10)?.checked_add(usize::from(d - b'0'))?;
    }
    let start = digits + 1;
    let end = start.checked_add(len)?;
    let bytes = value.get(start..end)?;
    if value.get(end) != Some(&b';') {
        return None;
    }
    std::str::from_utf8(bytes).ok()
}

/// Decodes a `kts-stamp` value (the caller has checked the record's size and the version).
pub(super) fn decode(value: &[u8], limits: &DecodeLimits) -> Result<Envelope, HeaderError> {
    let mut c = Cursor::new(value);
    let id = c.string(ID, limits.max_id_len, b';')?;
    let node_id = NodeId::from(c.string(NODE, limits.max_node_id_len, b';')?);
    let seq = opt(c.plain(SEQ)?)
        .map(|v| counter(SEQ, v, u64::MAX))
        .transpose()?;
    let clock = required(CLOCK, c.plain(CLOCK)?)?;
    let clock_type: ClockType = std::str::from_utf8(clock)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| HeaderError::UnknownClockType {
            header: CLOCK,
            found: shown(clock),
        })?;
    let timestamp = time(TS, required(TS, c.plain(TS)?)?)?;
    let physical_time = opt(c.plain(PT)?).map(|v| time(PT, v)).transpose()?;
    let logical_time = opt(c.plain(LT)?)
        .map(|v| counter(LT, v, u64::MAX))
        .transpose()?;
    let vector_time = c.vector(limits, &node_id)?;
    let hybrid_time = opt(c.plain(HLC)?).map(|v| hybrid(HLC, v)).transpose()?;
    require_hybrid(HLC, clock_type, hybrid_time.as_ref())?;
    let simulated_skew_ms = opt(c.last(SKEW)?).map(|v| time(SKEW, v)).transpose()?;
    Ok(Stamp {
        id,
        node_id,
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

/// An optional field: empty means absent.
fn opt(v: &[u8]) -> Option<&[u8]> {
    (!v.is_empty()).then_some(v)
}

fn required<'a>(header: &'static str, v: &'a [u8]) -> Result<&'a [u8], HeaderError> {
    // Matched rather than `ok_or`: an error built on every call is also dropped on every call.
    match opt(v) {
        Some(v) => Ok(v),
        None => Err(HeaderError::Missing { header }),
    }
}

/// A reading position in a `kts-stamp` value.
struct Cursor<'a> {
    v: &'a [u8],
    /// The value as text when it is all UTF-8 (then a string field is UTF-8 exactly when it
    /// starts and ends on character boundaries, and is not checked again).
    text: Option<&'a str>,
    at: usize,
}

impl<'a> Cursor<'a> {
    fn new(v: &'a [u8]) -> Self {
        // One check over the whole value instead of one per string field.
        let text = std::str::from_utf8(v).ok();
        Cursor { v, text, at: 0 }
    }

    fn rest(&self) -> &'a [u8] {
        &self.v[self.at..]
    }

    /// A field up to the next `;` (consumed).
    fn plain(&mut self, header: &'static str) -> Result<&'a [u8], HeaderError> {
        let rest = self.rest();
        let Some(end) = rest.iter().position(|&b| b == b';') else {
            return Err(HeaderError::Truncated { header });
        };
        self.at += end + 1;
        Ok(&rest[..end])
    }

    /// The last field: the rest of the value, which holds no more separators.
    fn last(&mut self, header: &'static str) -> Result<&'a [u8], HeaderError> {
        let rest = self.rest();
        if let Some(extra) = rest.iter().position(|&b| b == b';') {
            return Err(HeaderError::Malformed {
                header,
                expected: "the last of ten fields",
                found: shown(&rest[extra..]),
            });
        }
        self.at = self.v.len();
        Ok(rest)
    }

    /// `<length>:<bytes>` followed by `term` (consumed): a non-empty UTF-8 string of at most
    /// `max` bytes.
    fn string(
        &mut self,
        header: &'static str,
        max: usize,
        term: u8,
    ) -> Result<&'a str, HeaderError> {
        let rest = self.rest();
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        let expected = "<length>:<bytes>";
        match rest.get(digits) {
            _ if digits == 0 && matches!(rest.first(), None | Some(b';')) => {
                return Err(HeaderError::Missing { header })
            }
            Some(b':') if digits > 0 => {}
            None => return Err(HeaderError::Truncated { header }),
            _ => {
                return Err(HeaderError::Malformed {
                    header,
                    expected,
                    found: shown(rest),
                })
            }
        }
        let len = counter(header, &rest[..digits], u64::MAX)?;
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if len == 0 {
            return Err(HeaderError::EmptyString { header });
        }
        if len > max {
            return Err(HeaderError::TooLong { header, len, max });
        }
        let start = digits + 1;
        let Some(bytes) = rest.get(start..start.saturating_add(len)) else {
            return Err(HeaderError::Truncated { header });
        };
        let s = match self.text {
            // A slice of valid UTF-8 is valid exactly when both its ends are character
            // boundaries, which is what `get` checks.
            Some(text) => text.get(self.at + start..self.at + start + len),
            None => std::str::from_utf8(bytes).ok(),
        };
        let Some(s) = s else {
            return Err(HeaderError::NotUtf8 { header });
        };
        match rest.get(start + len) {
            Some(&b) if b == term => {}
            None => return Err(HeaderError::Truncated { header }),
            Some(_) => {
                return Err(HeaderError::Malformed {
                    header,
                    expected: if term == b';' {
                        "';' after the string"
                    } else {
                        "'=' after the node id"
                    },
                    found: shown(&rest[start + len..]),
                })
            }
        }
        self.at += start + len + 1;
        Ok(s)
    }

    /// The `vt` field and its `;`: absent, or `[entries]`. The entry of `own` (the stamp's node)
    /// shares its id rather than allocating another.
    fn vector(
        &mut self,
        limits: &DecodeLimits,
        own: &NodeId,
    ) -> Result<Option<VectorTimestamp>, HeaderError> {
        match self.rest().first() {
            Some(b';') => {
                self.at += 1;
                return Ok(None);
            }
            Some(b'[') => self.at += 1,
            None => return Err(HeaderError::Truncated { header: VT }),
            Some(_) => {
                return Err(HeaderError::Malformed {
                    header: VT,
                    expected: "'[' or an empty field",
                    found: shown(self.rest()),
                })
            }
        }
        let mut entries: Vec<(NodeId, u64)> = Vec::new();
        if self.rest().first() == Some(&b']') {
            self.at += 1;
        } else {
            let mut previous: Option<&str> = None;
            loop {
                if entries.len() >= limits.max_vector_entries {
                    return Err(HeaderError::TooManyVectorEntries {
                        header: VT,
                        max: limits.max_vector_entries,
                    });
                }
                let node = self.string(VT, limits.max_node_id_len, b'=')?;
                let rest = self.rest();
                let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
                let count = counter(Entry(VT, node), &rest[..digits], u64::MAX)?;
                if count == 0 {
                    return Err(HeaderError::BadNumber {
                        header: Entry(VT, node).to_string(),
                        expected: "a counter above zero",
                        found: "0".into(),
                    });
                }
                match previous {
                    Some(p) if p == node => {
                        return Err(HeaderError::Duplicate {
                            header: Entry(VT, node).to_string(),
                        })
                    }
                    Some(p) if p > node => {
                        return Err(HeaderError::Malformed {
                            header: VT,
                            expected: "node ids in ascending byte order",
                            found: shown(node.as_bytes()),
                        })
                    }
                    _ => previous = Some(node),
                }
                let id = if node == &**own {
                    own.clone()
                } else {
                    NodeId::from(node)
                };
                entries.push((id, count));
                self.at += digits + 1;
                match rest.get(digits) {
                    Some(b',') => {}
                    Some(b']') => break,
                    None => return Err(HeaderError::Truncated { header: VT }),
                    Some(_) => {
                        return Err(HeaderError::Malformed {
                            header: VT,
                            expected: "',' or ']' after a counter",
                            found: shown(&rest[digits..]),
                        })
                    }
                }
            }
        }
        match self.rest().first() {
            Some(b';') => self.at += 1,
            None => return Err(HeaderError::Truncated { header: VT }),
            Some(_) => {
                return Err(HeaderError::Malformed {
                    header: VT,
                    expected: "';' after ']'",
                    found: shown(self.rest()),
                })
            }
        }
        // Already in the timestamp's order, without zeros or repeats: nothing is dropped.
        Ok(Some(VectorTimestamp::from_entries(entries)))
    }
}

#[cfg(test)]
mod id_of_tests {
    use super::{id_of, Cursor, ID};
    use proptest::prelude::*;

    /// What the decoder reads as the first field.
    fn decoded(value: &[u8]) -> Option<&str> {
        Cursor::new(value).string(ID, usize::MAX, b';').ok()
    }

    proptest! {
        /// The direct lookup agrees with the decoder on any bytes, framed or not.
        #[test]
        fn agrees_with_the_decoder(
            len in prop_oneof![Just(String::new()), "0|01|[1-9][0-9]{0,2}|99999999999999999999999"],
            sep in prop_oneof![Just(":"), Just(";"), Just("")],
            rest in proptest::collection::vec(prop_oneof![Just(b';'), Just(b':'), any::<u8>()], 0..40),
        ) {
            let mut v = format!("{len}{sep}").into_bytes();
            v.extend_from_slice(&rest);
            prop_assert_eq!(id_of(&v), decoded(&v));
        }

        /// Checking the value's UTF-8 once reads every string field as checking each field
        /// does: the same strings, the same errors (cut characters and stray bytes included).
        #[test]
        fn one_utf8_check_agrees_with_per_field_checks(
            len in 0usize..12,
            bytes in proptest::collection::vec(
                prop_oneof![Just(b';'), Just(0xc3u8), Just(0xa9u8), Just(0xffu8), any::<u8>(), 0x20u8..0x7f],
                0..16,
            ),
            tail in proptest::collection::vec(prop_oneof![Just(0xe2u8), any::<u8>()], 0..4),
        ) {
            let mut v = format!("1:a;{len}:").into_bytes();
            v.extend_from_slice(&bytes);
            v.extend_from_slice(&tail);
            let read = |mut c: Cursor<'_>| {
                c.string(ID, usize::MAX, b';').unwrap();
                c.string(ID, usize::MAX, b';').map(str::to_owned)
            };
            let per_field = Cursor { v: &v, text: None, at: 0 };
            prop_assert_eq!(read(Cursor::new(&v)), read(per_field));
        }

        /// Framed ids of any text, followed by anything or nothing.
        #[test]
        fn finds_framed_ids(id in "\\PC{0,20}", tail in prop_oneof![Just(""), Just(";"), Just(";x"), Just("x")]) {
            let v = format!("{}:{id}{tail}", id.len()).into_bytes();
            prop_assert_eq!(id_of(&v), decoded(&v));
        }
    }
}
