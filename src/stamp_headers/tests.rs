//! Version 1: the set written before version 2, which every reader must keep decoding.
use super::*;
use crate::clock::VectorTimestamp;
use crate::envelope::MessageTimestamp;
use proptest::prelude::*;

pub(super) fn env() -> Envelope {
    Envelope {
        id: "6f1c-1".into(),
        content: String::new(),
        seq: Some(17),
        timestamp: MessageTimestamp {
            node_id: "producer-1".into(),
            timestamp: 1_790_000_000.123,
            clock_type: ClockType::Hybrid,
            physical_time: Some(1_790_000_000.223),
            logical_time: Some(5),
            vector_time: Some(VectorTimestamp::from_entries([
                ("producer-1", 17),
                ("a,b=c%d", 3),
            ])),
            hybrid_time: Some(HybridTimestamp::new(1_790_000_000_223, 2)),
            simulated_time: None,
            unmapped_vector_entries: None,
        },
        simulated_skew_ms: Some(-100.5),
    }
}

/// The encoded stamp of `env()` as owned (name, value) pairs, for editing.
fn owned() -> Vec<(String, Option<Vec<u8>>)> {
    let mut h = EncodedHeaders::new();
    h.encode_v1(&env());
    h.iter()
        .map(|(n, v)| (n.to_string(), Some(v.to_vec())))
        .collect()
}

fn decode_owned(
    hs: &[(String, Option<Vec<u8>>)],
    limits: &DecodeLimits,
) -> Result<Envelope, HeaderError> {
    let view: Vec<Header<'_>> = hs.iter().map(|(n, v)| (n.as_str(), v.as_deref())).collect();
    decode(&view, 0, limits)
}

fn with(name: &str, value: &[u8]) -> Result<Envelope, HeaderError> {
    let mut hs = owned();
    match hs.iter_mut().find(|(n, _)| n == name) {
        Some(h) => h.1 = Some(value.to_vec()),
        None => hs.push((name.to_string(), Some(value.to_vec()))),
    }
    decode_owned(&hs, &DecodeLimits::default())
}

#[test]
fn encodes_the_documented_header_set() {
    let mut h = EncodedHeaders::new();
    h.encode_v1(&env());
    let got: Vec<(&str, String)> = h
        .iter()
        .map(|(n, v)| (n, String::from_utf8(v.to_vec()).unwrap()))
        .collect();
    let want = [
        ("kts-v", "1"),
        ("kts-id", "6f1c-1"),
        ("kts-node", "producer-1"),
        ("kts-seq", "17"),
        ("kts-clock", "hybrid"),
        ("kts-ts", "1790000000.123"),
        ("kts-pt", "1790000000.223"),
        ("kts-lt", "5"),
        ("kts-vt", "a%2Cb%3Dc%25d=3,producer-1=17"),
        ("kts-hlc", "1790000000223:2"),
        ("kts-skew", "-100.5"),
    ];
    let want: Vec<(&str, String)> = want.iter().map(|(n, v)| (*n, v.to_string())).collect();
    assert_eq!(got, want);
}

#[test]
fn round_trips_and_ignores_foreign_headers() {
    let mut hs = owned();
    hs.insert(0, ("traceparent".into(), Some(b"00-abc-01".to_vec())));
    hs.push(("kts-future".into(), Some(b"\xff".to_vec())));
    hs.push(("other".into(), None));
    assert_eq!(decode_owned(&hs, &DecodeLimits::default()).unwrap(), env());
}

#[test]
fn detection_needs_the_version_header() {
    assert!(is_stamped(&[("x", None), (VERSION, Some(b"2"))]));
    assert!(!is_stamped(&[
        ("kts-id", Some(b"x")),
        ("kts-V", Some(b"1"))
    ]));
}

#[test]
fn rejects_each_malformed_header_by_name() {
    let cases: Vec<(&str, &[u8], &str)> = vec![
        ("kts-v", b"3", "header kts-v: unsupported version '3' (expected 1 or 2)"),
        ("kts-seq", b"-1", "header kts-seq: expected a decimal counter, found '-1'"),
        ("kts-seq", b"01", "header kts-seq: expected a decimal counter, found '01'"),
        ("kts-seq", b"18446744073709551616", "header kts-seq: counter overflows (maximum 18446744073709551615)"),
        ("kts-lt", b"3.0", "header kts-lt: expected a decimal counter, found '3.0'"),
        ("kts-ts", b"inf", "header kts-ts: expected a decimal number, found 'inf'"),
        ("kts-ts", b"1e400", "header kts-ts: time is not a finite number"),
        ("kts-pt", b"1.", "header kts-pt: expected a decimal number, found '1.'"),
        ("kts-clock", b"atomic", "header kts-clock: unknown clock type 'atomic' (expected physical, logical, vector or hybrid)"),
        ("kts-node", b"", "header kts-node: must not be empty"),
        ("kts-node", b"\xff", "header kts-node: not valid UTF-8"),
        ("kts-vt", b"a=1,a=2", "header kts-vt.a: duplicate header"),
        ("kts-vt", b"a", "header kts-vt: malformed entry 'a' (expected node=count)"),
        ("kts-vt", b"a%2=1", "header kts-vt: malformed entry 'a%2=1' (expected node=count)"),
        ("kts-vt", b"a%+1=1", "header kts-vt: malformed entry 'a%+1=1' (expected node=count)"),
        ("kts-vt", b"=1", "header kts-vt: must not be empty"),
        ("kts-vt", b"a=x", "header kts-vt.a: expected a decimal counter, found 'x'"),
        ("kts-hlc", b"12", "header kts-hlc: malformed entry '12' (expected wall_ms:logical)"),
        ("kts-hlc", b"12:4294967296", "header kts-hlc: counter overflows (maximum 4294967295)"),
    ];
    for (name, value, msg) in cases {
        let err = with(name, value).expect_err(name);
        assert_eq!(err.to_string(), msg, "{name}={value:?}");
        assert!(err.header().unwrap().starts_with(name), "{err:?}");
    }
}

#[test]
fn duplicate_null_and_missing_headers_are_errors() {
    let mut hs = owned();
    hs.push(("kts-seq".into(), Some(b"18".to_vec())));
    let lim = DecodeLimits::default();
    assert_eq!(
        decode_owned(&hs, &lim).unwrap_err(),
        HeaderError::Duplicate {
            header: "kts-seq".into()
        }
    );
    let mut hs = owned();
    hs[1].1 = None;
    assert_eq!(
        decode_owned(&hs, &lim).unwrap_err(),
        HeaderError::Null { header: "kts-id" }
    );
    for required in ["kts-id", "kts-node", "kts-clock", "kts-ts"] {
        let hs: Vec<_> = owned().into_iter().filter(|(n, _)| n != required).collect();
        assert_eq!(
            decode_owned(&hs, &lim).unwrap_err(),
            HeaderError::Missing { header: required }
        );
    }
    let hs: Vec<_> = owned()
        .into_iter()
        .filter(|(n, _)| n != "kts-hlc")
        .collect();
    assert_eq!(
        decode_owned(&hs, &lim).unwrap_err(),
        HeaderError::MissingForClockType {
            header: "kts-hlc",
            clock_type: ClockType::Hybrid
        }
    );
}

#[test]
fn limits_apply_before_decoding() {
    let hs = owned();
    let view: Vec<Header<'_>> = hs.iter().map(|(n, v)| (n.as_str(), v.as_deref())).collect();
    let size: usize = hs
        .iter()
        .map(|(n, v)| n.len() + v.as_ref().map_or(0, Vec::len))
        .sum();
    let lim = DecodeLimits {
        max_bytes: size + 10,
        ..DecodeLimits::default()
    };
    assert!(decode(&view, 10, &lim).is_ok());
    assert_eq!(
        decode(&view, 11, &lim).unwrap_err(),
        HeaderError::TooLarge {
            len: size + 11,
            max: size + 10,
            largest: "header kts-vt (35 bytes)".into()
        }
    );
    let lim = DecodeLimits {
        max_headers: view.len() - 1,
        ..DecodeLimits::default()
    };
    assert!(matches!(
        decode(&view, 0, &lim).unwrap_err(),
        HeaderError::TooManyHeaders { .. }
    ));
    let lim = DecodeLimits {
        max_vector_entries: 1,
        ..DecodeLimits::default()
    };
    assert_eq!(
        decode(&view, 0, &lim).unwrap_err(),
        HeaderError::TooManyVectorEntries {
            header: "kts-vt",
            max: 1
        }
    );
    let lim = DecodeLimits {
        max_id_len: 5,
        ..DecodeLimits::default()
    };
    assert_eq!(
        decode(&view, 0, &lim).unwrap_err(),
        HeaderError::TooLong {
            header: "kts-id",
            len: 6,
            max: 5
        }
    );
}

pub(super) fn arb_envelope() -> impl Strategy<Value = Envelope> {
    let node = "[a-z0-9%,=:-]{1,8}";
    (
        "[ -~]{1,16}",
        node,
        proptest::option::of(any::<u64>()),
        prop_oneof![
            Just(ClockType::Physical),
            Just(ClockType::Logical),
            Just(ClockType::Vector),
            Just(ClockType::Hybrid)
        ],
        any::<f64>().prop_filter("finite", |x| x.is_finite()),
        proptest::option::of(-1e12f64..1e12),
        proptest::option::of(any::<u64>()),
        proptest::option::of(proptest::collection::vec((node, any::<u64>()), 0..5)),
        (any::<u64>(), any::<u32>()),
        proptest::option::of(-1e6f64..1e6),
    )
        .prop_map(
            |(id, node, seq, clock_type, ts, pt, lt, vt, hlc, skew)| Envelope {
                id,
                content: String::new(),
                seq,
                timestamp: MessageTimestamp {
                    node_id: node.as_str().into(),
                    timestamp: ts,
                    clock_type,
                    physical_time: pt,
                    logical_time: lt,
                    vector_time: vt.map(VectorTimestamp::from_entries),
                    hybrid_time: (clock_type == ClockType::Hybrid)
                        .then(|| HybridTimestamp::new(hlc.0, hlc.1)),
                    simulated_time: None,
                    unmapped_vector_entries: None,
                },
                simulated_skew_ms: skew,
            },
        )
}

proptest! {
    /// Whatever the producer can stamp reads back exactly (times bit for bit).
    #[test]
    fn encode_decode_round_trip(e in arb_envelope()) {
        let mut h = EncodedHeaders::new();
        h.encode_v1(&e);
        let view: Vec<Header<'_>> = h.iter().map(|(n, v)| (n, Some(v))).collect();
        prop_assert!(is_stamped(&view));
        let d = decode(&view, 0, &DecodeLimits::default()).unwrap();
        prop_assert_eq!(d.timestamp.timestamp.to_bits(), e.timestamp.timestamp.to_bits());
        prop_assert_eq!(d, e);
    }
}

#[test]
fn id_of_reads_the_id_header_only() {
    let mut h = EncodedHeaders::new();
    h.encode_v1(&env());
    assert_eq!(id_of(h.iter().map(|(k, v)| (k, Some(v)))), Some("6f1c-1"));
    // The value is never searched: a record without the header has no id, whatever it carries.
    assert_eq!(
        id_of([("kts-v", Some(&b"1"[..])), ("id", Some(&b"x"[..]))]),
        None
    );
    assert_eq!(id_of([("kts-id", None)]), None);
    assert_eq!(id_of([("kts-id", Some(&b"\xff"[..]))]), None);
    assert_eq!(
        id_of([("kts-id", Some(&b"a"[..])), ("kts-id", Some(&b"b"[..]))]),
        Some("a")
    );
}

/// What `counter` must accept: the canonical decimal spelling of a number up to `max`, and
/// nothing else (the rule, independent of how `counter` reads it).
fn counter_rule(v: &[u8], max: u64) -> Result<u64, &'static str> {
    let canonical =
        !v.is_empty() && v.iter().all(u8::is_ascii_digit) && (v[0] != b'0' || v.len() == 1);
    if !canonical {
        return Err("bad");
    }
    match std::str::from_utf8(v).unwrap().parse::<u128>() {
        Ok(n) if n <= u128::from(max) => Ok(n as u64),
        _ => Err("overflow"),
    }
}

proptest! {
    /// Counters of every length (around the 19- and 20-digit edges too), with and without
    /// stray bytes, read exactly as the rule says, and errors are the documented kinds.
    #[test]
    fn counters_follow_the_rule(
        digits in "[0-9]{0,24}",
        stray in proptest::option::of((0usize..25, prop_oneof![Just(b'-'), Just(b'.'), Just(b' '), any::<u8>()])),
        max in prop_oneof![Just(u64::MAX), Just(u64::from(u32::MAX)), any::<u64>()],
    ) {
        let mut v = digits.into_bytes();
        if let Some((at, b)) = stray {
            v.insert(at.min(v.len()), b);
        }
        let got = counter("h", &v, max);
        match counter_rule(&v, max) {
            Ok(n) => prop_assert_eq!(got, Ok(n)),
            Err("bad") => prop_assert!(matches!(got, Err(HeaderError::BadNumber { .. })), "{:?}", got),
            Err(_) => prop_assert_eq!(got, Err(HeaderError::CounterOverflow { header: "h".into(), max })),
        }
    }
}

#[test]
fn counters_at_the_u64_edge() {
    assert_eq!(
        counter("h", b"18446744073709551615", u64::MAX),
        Ok(u64::MAX)
    );
    assert_eq!(
        counter("h", b"9999999999999999999", u64::MAX),
        Ok(9_999_999_999_999_999_999)
    );
    assert!(matches!(
        counter("h", b"18446744073709551616", u64::MAX),
        Err(HeaderError::CounterOverflow { .. })
    ));
    assert!(matches!(
        counter("h", b"4294967296", u64::from(u32::MAX)),
        Err(HeaderError::CounterOverflow { .. })
    ));
    assert!(matches!(
        counter("h", b"00", u64::MAX),
        Err(HeaderError::BadNumber { .. })
    ));
}
