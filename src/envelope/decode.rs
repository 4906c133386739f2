//! The strict, bounded decoder: serde_json's tokenizer driven by hand-written visitors that
//! check every field as it is read (the rules are in the [module documentation](super)).

use super::error::Printable;
use super::{DecodeError, DecodeLimits, Envelope, MessageTimestamp};
use crate::clock::{ClockType, HybridTimestamp};
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
        .deserialize_any(EnvelopeV {
            ctx: &ctx,
            field: Field::Static(F_RECORD),
        })
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

/// What serde_json's own "number out of range" means for a field: a non-finite time, a counter
/// over its maximum, or nothing of ours.
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

/// What every field visitor knows: where it is, what it expects, and what serde_json's own
/// "number out of range" means there.
trait FieldVisitor {
    fn ctx(&self) -> &Ctx<'_>;
    fn field(&self) -> Field<'_>;
    fn expected(&self) -> &'static str;
    fn kind(&self) -> Kind {
        Kind::Other
    }
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
        field_visitor!($ty, $expected, Kind::Other);
    };
    ($ty:ident, $expected:expr, $kind:expr) => {
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
            fn kind(&self) -> Kind {
                $kind
            }
        }
    };
}

// After the macros: the value seeds use them.
mod values;
use values::{ClockTypeV, CounterV, Nullable, StrV, TimeV, VectorField, VectorV};

/// Reads one value of a known field with `seed`, giving serde_json's own errors (number out of
/// range) the field's context.
fn value<'de, A, S>(
    map: &mut A,
    ctx: &Ctx<'_>,
    field: Field<'_>,
    seed: S,
) -> Result<S::Value, A::Error>
where
    A: MapAccess<'de>,
    S: DeserializeSeed<'de> + FieldVisitor,
{
    let kind = seed.kind();
    map.next_value_seed(seed)
        .map_err(|e| ctx.annotate(&field, kind, e))
}

/// Reads the value of the known field `name` into `slot` with the seed `seed(ctx, field)`; a
/// second occurrence of the field is an error.
fn read_once<'de, 'c, 'l, A, S>(
    map: &mut A,
    ctx: &'c Ctx<'l>,
    slot: &mut Option<S::Value>,
    name: &'static str,
    seed: impl FnOnce(&'c Ctx<'l>, Field<'c>) -> S,
) -> Result<(), A::Error>
where
    A: MapAccess<'de>,
    S: DeserializeSeed<'de> + FieldVisitor,
{
    let field = Field::Static(name);
    let v = value(map, ctx, field, seed(ctx, field))?;
    if slot.is_some() {
        return Err(ctx.fail(DecodeError::Duplicate {
            field: name.to_string(),
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
// The objects: hybrid_time, timestamp, the envelope

/// `hybrid_time`: `null` (absent) or an object with `wall_ms` and `logical`.
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
                Key::WallMs => read_once(&mut map, ctx, &mut wall, F_HYB_WALL, |c, f| {
                    CounterV::new(c, f, u64::MAX)
                })?,
                Key::Logical => read_once(&mut map, ctx, &mut logical, F_HYB_LOGICAL, |c, f| {
                    CounterV::new(c, f, u64::from(u32::MAX))
                })?,
                _ => map.next_value_seed(Skip {
                    ctx,
                    depth: 4,
                    field: self.field,
                })?,
            }
        }
        Ok(Some(HybridTimestamp {
            wall_ms: missing(ctx, wall, F_HYB_WALL)?,
            // The seed's maximum is u32::MAX.
            logical: missing(ctx, logical, F_HYB_LOGICAL)? as u32,
        }))
    }
    reject!(bool, num, str, seq);
}

/// The `timestamp` object.
struct TimestampV<'c, 'l> {
    ctx: &'c Ctx<'l>,
    field: Field<'c>,
}
field_visitor!(TimestampV, "an object");

impl<'c, 'l> TimestampV<'c, 'l> {
    fn new(ctx: &'c Ctx<'l>, field: Field<'c>) -> Self {
        Self { ctx, field }
    }
}

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
        let max_node_id_len = ctx.limits.max_node_id_len;
        let mut node_id = None;
        let mut timestamp = None;
        let mut clock_type = None;
        let mut physical_time: Option<Option<f64>> = None;
        let mut logical_time: Option<Option<u64>> = None;
        let mut simulated_time: Option<Option<f64>> = None;
        let mut vector_time: Option<VectorField> = None;
        let mut hybrid_time: Option<Option<HybridTimestamp>> = None;
        while let Some(key) = map.next_key_seed(KeySeed(Obj::Timestamp))? {
            let m = &mut map;
            match key {
                Key::NodeId => read_once(m, ctx, &mut node_id, F_NODE, |c, f| {
                    StrV::new(c, f, max_node_id_len, true)
                })?,
                Key::Timestamp => read_once(m, ctx, &mut timestamp, F_TS_TS, TimeV::new)?,
                Key::ClockType => read_once(m, ctx, &mut clock_type, F_CLOCK, ClockTypeV::new)?,
                Key::PhysicalTime => read_once(m, ctx, &mut physical_time, F_PHYS, |c, f| {
                    Nullable(TimeV::new(c, f))
                })?,
                Key::SimulatedTime => read_once(m, ctx, &mut simulated_time, F_SIM, |c, f| {
                    Nullable(TimeV::new(c, f))
                })?,
                Key::LogicalTime => read_once(m, ctx, &mut logical_time, F_LOGICAL, |c, f| {
                    Nullable(CounterV::new(c, f, u64::MAX))
                })?,
                Key::VectorTime => read_once(m, ctx, &mut vector_time, F_VECTOR, VectorV::new)?,
                Key::HybridTime => read_once(m, ctx, &mut hybrid_time, F_HYBRID, |c, f| HybridV {
                    ctx: c,
                    field: f,
                })?,
                _ => m.next_value_seed(Skip {
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

/// The record: one envelope object.
struct EnvelopeV<'c, 'l> {
    ctx: &'c Ctx<'l>,
    field: Field<'c>,
}
field_visitor!(EnvelopeV, "a JSON object");

impl<'de> Visitor<'de> for EnvelopeV<'_, '_> {
    type Value = Envelope;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expected())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Envelope, A::Error> {
        let ctx = self.ctx;
        let max_id_len = ctx.limits.max_id_len;
        let mut id = None;
        let mut content = None;
        let mut seq: Option<Option<u64>> = None;
        let mut timestamp = None;
        let mut skew: Option<Option<f64>> = None;
        while let Some(key) = map.next_key_seed(KeySeed(Obj::Envelope))? {
            let m = &mut map;
            match key {
                Key::Id => read_once(m, ctx, &mut id, F_ID, |c, f| {
                    StrV::new(c, f, max_id_len, true)
                })?,
                Key::Content => read_once(m, ctx, &mut content, F_CONTENT, |c, f| {
                    StrV::new(c, f, usize::MAX, false)
                })?,
                Key::Seq => read_once(m, ctx, &mut seq, F_SEQ, |c, f| {
                    Nullable(CounterV::new(c, f, u64::MAX))
                })?,
                Key::Timestamp => read_once(m, ctx, &mut timestamp, F_TS, TimestampV::new)?,
                Key::Skew => {
                    read_once(m, ctx, &mut skew, F_SKEW, |c, f| Nullable(TimeV::new(c, f)))?
                }
                _ => m.next_value_seed(Skip {
                    ctx,
                    depth: 2,
                    field: self.field,
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
