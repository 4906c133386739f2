//! The seeds of the envelope's field values: counters, times, strings, the clock type and the
//! vector clock. Each checks its value as serde_json reads it and records a typed error naming
//! its field.

use super::{Ctx, Field, FieldVisitor, Kind, F_VECTOR};
use crate::clock::{ClockType, VectorTimestamp};
use crate::envelope::error::Printable;
use crate::envelope::DecodeError;
use crate::NodeId;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use std::fmt;
use std::marker::PhantomData;

/// An unsigned counter with a maximum (`u64::MAX` or `u32::MAX`).
pub(super) struct CounterV<'c, 'l> {
    ctx: &'c Ctx<'l>,
    field: Field<'c>,
    max: u64,
}

impl FieldVisitor for CounterV<'_, '_> {
    fn ctx(&self) -> &Ctx<'_> {
        self.ctx
    }
    fn field(&self) -> Field<'_> {
        self.field
    }
    fn expected(&self) -> &'static str {
        "a non-negative integer"
    }
    fn kind(&self) -> Kind {
        Kind::Counter(self.max)
    }
}

impl<'c, 'l> CounterV<'c, 'l> {
    pub(super) fn new(ctx: &'c Ctx<'l>, field: Field<'c>, max: u64) -> Self {
        Self { ctx, field, max }
    }
}

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
pub(super) struct TimeV<'c, 'l> {
    ctx: &'c Ctx<'l>,
    field: Field<'c>,
}
field_visitor!(TimeV, "a finite number", Kind::Time);

impl<'c, 'l> TimeV<'c, 'l> {
    pub(super) fn new(ctx: &'c Ctx<'l>, field: Field<'c>) -> Self {
        Self { ctx, field }
    }
}

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
pub(super) struct Nullable<S>(pub(super) S);

impl<S: FieldVisitor> FieldVisitor for Nullable<S> {
    fn ctx(&self) -> &Ctx<'_> {
        self.0.ctx()
    }
    fn field(&self) -> Field<'_> {
        self.0.field()
    }
    fn expected(&self) -> &'static str {
        self.0.expected()
    }
    fn kind(&self) -> Kind {
        self.0.kind()
    }
}

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

/// A bounded string, read as a `T` (`String`, or [`NodeId`], allocated once as an `Arc<str>`);
/// `max == usize::MAX` for no limit of its own (the record cap applies).
pub(super) struct StrV<'c, 'l, T> {
    ctx: &'c Ctx<'l>,
    field: Field<'c>,
    max: usize,
    non_empty: bool,
    out: PhantomData<T>,
}

impl<'c, 'l, T> StrV<'c, 'l, T> {
    pub(super) fn new(ctx: &'c Ctx<'l>, field: Field<'c>, max: usize, non_empty: bool) -> Self {
        Self {
            ctx,
            field,
            max,
            non_empty,
            out: PhantomData,
        }
    }
}

impl<T> FieldVisitor for StrV<'_, '_, T> {
    fn ctx(&self) -> &Ctx<'_> {
        self.ctx
    }
    fn field(&self) -> Field<'_> {
        self.field
    }
    fn expected(&self) -> &'static str {
        "a string"
    }
}

impl<'de, T: for<'s> From<&'s str>> DeserializeSeed<'de> for StrV<'_, '_, T> {
    type Value = T;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, T: for<'s> From<&'s str>> Visitor<'de> for StrV<'_, '_, T> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expected())
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<T, E> {
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
        Ok(T::from(s))
    }
    reject!(unit, bool, num, seq, map);
}

/// `timestamp.clock_type`: one of the four canonical names.
pub(super) struct ClockTypeV<'c, 'l> {
    ctx: &'c Ctx<'l>,
    field: Field<'c>,
}
field_visitor!(ClockTypeV, "a clock type name");

impl<'c, 'l> ClockTypeV<'c, 'l> {
    pub(super) fn new(ctx: &'c Ctx<'l>, field: Field<'c>) -> Self {
        Self { ctx, field }
    }
}

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

/// What a `vector_time` field held.
pub(super) enum VectorField {
    /// `null`: absent.
    Null,
    /// An object node → counter, or an array mapped by the configured node order.
    Map(VectorTimestamp),
    /// The prototype's array form with no node order to map it: its (checked) entry count.
    Unmapped(usize),
}

/// `vector_time`: `null` (absent), an object node → counter, or the prototype's array (mapped
/// when a node order is configured, else checked and counted).
pub(super) struct VectorV<'c, 'l> {
    ctx: &'c Ctx<'l>,
    field: Field<'c>,
}
field_visitor!(VectorV, "an object mapping node ids to counters");

impl<'c, 'l> VectorV<'c, 'l> {
    pub(super) fn new(ctx: &'c Ctx<'l>, field: Field<'c>) -> Self {
        Self { ctx, field }
    }

    /// The vector of `entries`, which must name each node once.
    fn finish<E: de::Error>(&self, mut entries: Vec<(NodeId, u64)>) -> Result<VectorField, E> {
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        if let Some(w) = entries.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(self.ctx.fail(DecodeError::Duplicate {
                field: Field::Entry(F_VECTOR, &w[0].0).to_string(),
            }));
        }
        Ok(VectorField::Map(VectorTimestamp::from_entries(entries)))
    }
}

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
        if s.is_empty() {
            return Err(self.ctx.fail(DecodeError::EmptyString {
                field: Field::Entry(F_VECTOR, s).to_string(),
            }));
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
            let c = super::value(
                &mut map,
                self.ctx,
                field,
                CounterV::new(self.ctx, field, u64::MAX),
            )?;
            entries.push((node, c));
        }
        self.finish(entries)
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
            let counter = CounterV::new(self.ctx, field, u64::MAX);
            let kind = counter.kind();
            let next = seq
                .next_element_seed(counter)
                .map_err(|e| self.ctx.annotate(&field, kind, e))?;
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
        self.finish(entries)
    }
    reject!(bool, num, str);
}
