//! The strict, bounded decoder: serde_json's tokenizer driven by hand-written visitors that
//! check every field as it is read (the rules are in the [module documentation](super)).

use super::error::Printable;
use super::{DecodeError, DecodeLimits, Envelope, MessageTimestamp};
use crate::clock::{ClockType, HybridTimestamp, VectorTimestamp};
use crate::NodeId;
use serde::de::{self, DeserializeSeed, Deserializer as _, MapAccess, SeqAccess, Visitor};
use std::cell::RefCell;
use std::fmt;

/// Decodes one record strictly (see the [module documentation](super) for the rules).
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
