//! The envelope's unit tests: the decoding rules and error messages, and the encoder against
//! serde_json.

use super::*;
use crate::clock::{ClockType, HybridTimestamp, VectorTimestamp};

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

    /// A value as content: exactly the envelope with that text as its content when the bytes
    /// are UTF-8 (plain ASCII taking the one-pass path, anything else escaped), nothing at all
    /// when they are not.
    #[test]
    fn encode_with_value_is_encode_with_the_text(
        value in proptest::prop_oneof![
            proptest::strategy::Strategy::prop_map(arb_json_text(), String::into_bytes),
            proptest::collection::vec(0x20u8..0x80, 0..200),
            proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
        ],
        at in proptest::prelude::any::<proptest::sample::Index>(),
        byte in proptest::prelude::any::<u8>(),
    ) {
        let env = sample();
        let mut value = value;
        if !value.is_empty() && byte % 4 == 0 {
            // One odd byte anywhere, also in a long plain run.
            let i = at.index(value.len());
            value[i] = byte;
        }
        let mut buf = b"prefix".to_vec();
        let wrote = env.encode_with_value(&value, &mut buf);
        match std::str::from_utf8(&value) {
            Ok(text) => {
                proptest::prop_assert!(wrote);
                let mut want = b"prefix".to_vec();
                env.encode_with_content(text, &mut want);
                proptest::prop_assert_eq!(buf, want);
            }
            Err(_) => {
                proptest::prop_assert!(!wrote);
                proptest::prop_assert_eq!(&buf[..], b"prefix");
            }
        }
    }
}
