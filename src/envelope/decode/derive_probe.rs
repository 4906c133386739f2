//! PROBE (issue 17, measured and removed): the envelope decoded by `#[derive(Deserialize)]`
//! plus `deserialize_with` functions. A `deserialize_with` function receives no context, so the
//! limits and the first typed error travel through thread-locals; each function wraps one of
//! the hand-written value seeds.

use super::{syntax_error, F_CONTENT, F_ID, F_LOGICAL, F_NODE, F_PHYS, F_SEQ, F_SIM, F_SKEW};
use super::{
    ClockTypeV, CounterV, Ctx, Field, NodeIdV, Nullable, StrV, TimeV, VectorField, VectorV,
};
use super::{F_CLOCK, F_HYBRID, F_HYB_LOGICAL, F_HYB_WALL, F_TS_TS, F_VECTOR};
use crate::clock::{ClockType, HybridTimestamp};
use crate::envelope::{DecodeError, DecodeLimits, Envelope, MessageTimestamp};
use crate::NodeId;
use serde::de::DeserializeSeed;
use serde::{Deserialize, Deserializer};
use std::cell::RefCell;

thread_local! {
    static LIMITS: RefCell<DecodeLimits> = RefCell::new(DecodeLimits::default());
    static ERROR: RefCell<Option<DecodeError>> = const { RefCell::new(None) };
}

/// Runs `f` with a context built from the thread's limits; keeps the first typed error.
fn with_ctx<T>(f: impl FnOnce(&Ctx<'_>) -> T) -> T {
    LIMITS.with_borrow(|limits| {
        let ctx = Ctx {
            limits,
            error: RefCell::new(None),
        };
        let out = f(&ctx);
        if let Some(e) = ctx.error.into_inner() {
            ERROR.with_borrow_mut(|slot| {
                slot.get_or_insert(e);
            });
        }
        out
    })
}

#[derive(Deserialize)]
struct RawEnvelope {
    #[serde(deserialize_with = "id")]
    id: String,
    #[serde(deserialize_with = "content")]
    content: String,
    #[serde(default, deserialize_with = "seq")]
    seq: Option<u64>,
    timestamp: RawTimestamp,
    #[serde(default, deserialize_with = "skew")]
    simulated_skew_ms: Option<f64>,
}

#[derive(Deserialize)]
struct RawTimestamp {
    #[serde(deserialize_with = "node_id")]
    node_id: NodeId,
    #[serde(deserialize_with = "ts")]
    timestamp: f64,
    #[serde(deserialize_with = "clock_type")]
    clock_type: ClockType,
    #[serde(default, deserialize_with = "physical_time")]
    physical_time: Option<f64>,
    #[serde(default, deserialize_with = "logical_time")]
    logical_time: Option<u64>,
    #[serde(default, deserialize_with = "vector_time")]
    vector_time: Option<VectorField>,
    #[serde(default, deserialize_with = "hybrid_time")]
    hybrid_time: Option<RawHybrid>,
    #[serde(default, deserialize_with = "simulated_time")]
    simulated_time: Option<f64>,
}

#[derive(Deserialize)]
struct RawHybrid {
    #[serde(deserialize_with = "wall_ms")]
    wall_ms: u64,
    #[serde(deserialize_with = "hlc_logical")]
    logical: u64,
}

fn id<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    with_ctx(|ctx| {
        StrV {
            ctx,
            field: Field::Static(F_ID),
            max: ctx.limits.max_id_len,
            non_empty: true,
        }
        .deserialize(d)
    })
}
fn content<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    with_ctx(|ctx| {
        StrV {
            ctx,
            field: Field::Static(F_CONTENT),
            max: usize::MAX,
            non_empty: false,
        }
        .deserialize(d)
    })
}
fn node_id<'de, D: Deserializer<'de>>(d: D) -> Result<NodeId, D::Error> {
    with_ctx(|ctx| {
        NodeIdV(StrV {
            ctx,
            field: Field::Static(F_NODE),
            max: ctx.limits.max_node_id_len,
            non_empty: true,
        })
        .deserialize(d)
    })
}
fn counter<'de, D: Deserializer<'de>>(
    d: D,
    field: &'static str,
    max: u64,
) -> Result<Option<u64>, D::Error> {
    with_ctx(|ctx| {
        Nullable(CounterV {
            ctx,
            field: Field::Static(field),
            max,
        })
        .deserialize(d)
    })
}
fn time<'de, D: Deserializer<'de>>(d: D, field: &'static str) -> Result<Option<f64>, D::Error> {
    with_ctx(|ctx| {
        Nullable(TimeV {
            ctx,
            field: Field::Static(field),
        })
        .deserialize(d)
    })
}
fn seq<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    counter(d, F_SEQ, u64::MAX)
}
fn logical_time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    counter(d, F_LOGICAL, u64::MAX)
}
fn wall_ms<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    with_ctx(|ctx| {
        CounterV {
            ctx,
            field: Field::Static(F_HYB_WALL),
            max: u64::MAX,
        }
        .deserialize(d)
    })
}
fn hlc_logical<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    with_ctx(|ctx| {
        CounterV {
            ctx,
            field: Field::Static(F_HYB_LOGICAL),
            max: u64::from(u32::MAX),
        }
        .deserialize(d)
    })
}
fn ts<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    with_ctx(|ctx| {
        TimeV {
            ctx,
            field: Field::Static(F_TS_TS),
        }
        .deserialize(d)
    })
}
fn skew<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    time(d, F_SKEW)
}
fn physical_time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    time(d, F_PHYS)
}
fn simulated_time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    time(d, F_SIM)
}
fn clock_type<'de, D: Deserializer<'de>>(d: D) -> Result<ClockType, D::Error> {
    with_ctx(|ctx| {
        ClockTypeV {
            ctx,
            field: Field::Static(F_CLOCK),
        }
        .deserialize(d)
    })
}
fn vector_time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<VectorField>, D::Error> {
    with_ctx(|ctx| {
        VectorV {
            ctx,
            field: Field::Static(F_VECTOR),
        }
        .deserialize(d)
        .map(Some)
    })
}
fn hybrid_time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<RawHybrid>, D::Error> {
    Option::<RawHybrid>::deserialize(d)
}

/// Decodes one record with the derived deserializer (same pre-checks as [`super::decode`]).
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
    LIMITS.with_borrow_mut(|l| l.clone_from(limits));
    ERROR.with_borrow_mut(|e| *e = None);
    let raw: RawEnvelope = match serde_json::from_str(text) {
        Ok(raw) => raw,
        Err(e) => return Err(ERROR.take().unwrap_or_else(|| syntax_error(&e))),
    };
    let ts = raw.timestamp;
    let (vector_time, unmapped_vector_entries) = match ts.vector_time {
        Some(VectorField::Map(v)) => (Some(v), None),
        Some(VectorField::Unmapped(n)) => (None, Some(n)),
        Some(VectorField::Null) | None => (None, None),
    };
    if ts.clock_type == ClockType::Hybrid && ts.hybrid_time.is_none() {
        return Err(DecodeError::MissingForClockType {
            field: F_HYBRID.to_string(),
            clock_type: ts.clock_type,
        });
    }
    Ok(Envelope {
        id: raw.id,
        content: raw.content,
        seq: raw.seq,
        timestamp: MessageTimestamp {
            node_id: ts.node_id,
            timestamp: ts.timestamp,
            clock_type: ts.clock_type,
            physical_time: ts.physical_time,
            logical_time: ts.logical_time,
            vector_time,
            hybrid_time: ts.hybrid_time.map(|h| HybridTimestamp {
                wall_ms: h.wall_ms,
                logical: h.logical as u32,
            }),
            simulated_time: ts.simulated_time,
            unmapped_vector_entries,
        },
        simulated_skew_ms: raw.simulated_skew_ms,
    })
}
