//! Version 2: the whole stamp in `kts-stamp`.
use super::tests::{arb_envelope, env};
use super::*;
use crate::clock::VectorTimestamp;
use proptest::prelude::*;

const STAMP_OF_ENV: &str = "6:6f1c-1;10:producer-1;17;hybrid;1790000000.123;1790000000.223;5;\
[7:a,b=c%d=3,10:producer-1=17];1790000000223:2;-100.5";

fn encoded(e: &Envelope) -> Vec<(String, Option<Vec<u8>>)> {
    let mut h = EncodedHeaders::new();
    h.encode(e);
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

/// Decodes `kts-v: 2` with `stamp` as the `kts-stamp` value.
fn stamp(stamp: &[u8]) -> Result<Envelope, HeaderError> {
    decode(
        &[("kts-v", Some(b"2")), ("kts-stamp", Some(stamp))],
        0,
        &DecodeLimits::default(),
    )
}

#[test]
fn encodes_two_headers_in_the_documented_form() {
    let got = encoded(&env());
    assert_eq!(
        got,
        vec![
            ("kts-v".to_string(), Some(b"2".to_vec())),
            (
                "kts-stamp".to_string(),
                Some(STAMP_OF_ENV.as_bytes().to_vec())
            ),
        ]
    );
    assert_eq!(stamp(STAMP_OF_ENV.as_bytes()).unwrap(), env());
}

#[test]
fn absent_fields_are_empty_and_an_empty_vector_is_brackets() {
    let mut e = env();
    e.seq = None;
    e.simulated_skew_ms = None;
    e.timestamp.clock_type = ClockType::Vector;
    e.timestamp.physical_time = None;
    e.timestamp.logical_time = None;
    e.timestamp.hybrid_time = None;
    e.timestamp.vector_time = Some(VectorTimestamp::new());
    let hs = encoded(&e);
    assert_eq!(
        hs[1].1.as_deref(),
        Some(&b"6:6f1c-1;10:producer-1;;vector;1790000000.123;;;[];;"[..])
    );
    assert_eq!(decode_owned(&hs, &DecodeLimits::default()).unwrap(), e);
    e.timestamp.vector_time = None;
    let hs = encoded(&e);
    assert!(hs[1].1.as_deref().unwrap().ends_with(b";;;;;"));
    assert_eq!(decode_owned(&hs, &DecodeLimits::default()).unwrap(), e);
}

#[test]
fn any_bytes_in_ids_keep_the_framing() {
    let mut e = env();
    e.id = "a;b]c[=,9:x;".into();
    e.timestamp.node_id = "n;ö=1,]".into();
    e.timestamp.vector_time = Some(VectorTimestamp::from_entries([("n;ö=1,]", 4), ("]", 1)]));
    let hs = encoded(&e);
    let value = String::from_utf8(hs[1].1.clone().unwrap()).unwrap();
    assert!(value.starts_with("12:a;b]c[=,9:x;;8:n;ö=1,];"), "{value}");
    assert!(value.contains(";[1:]=1,8:n;ö=1,]=4];"), "{value}");
    assert_eq!(decode_owned(&hs, &DecodeLimits::default()).unwrap(), e);
    assert_eq!(
        id_of(hs.iter().map(|(n, v)| (n.as_str(), v.as_deref()))),
        Some("a;b]c[=,9:x;")
    );
}

#[test]
fn foreign_and_version_1_headers_are_skipped() {
    let mut hs = encoded(&env());
    hs.insert(0, ("traceparent".into(), Some(b"00-abc-01".to_vec())));
    hs.push(("kts-id".into(), None));
    hs.push(("kts-seq".into(), Some(b"x".to_vec())));
    hs.push(("kts-future".into(), Some(b"\xff".to_vec())));
    assert_eq!(decode_owned(&hs, &DecodeLimits::default()).unwrap(), env());
    // And the other way: a version-1 set ignores a stray `kts-stamp`.
    let mut h = EncodedHeaders::new();
    h.encode_v1(&env());
    let mut hs: Vec<(String, Option<Vec<u8>>)> = h
        .iter()
        .map(|(n, v)| (n.to_string(), Some(v.to_vec())))
        .collect();
    hs.push(("kts-stamp".into(), None));
    assert_eq!(decode_owned(&hs, &DecodeLimits::default()).unwrap(), env());
}

#[test]
fn version_and_stamp_headers_are_checked() {
    let lim = DecodeLimits::default();
    let base = encoded(&env());
    let mut hs = base.clone();
    hs.push(("kts-stamp".into(), Some(b"x".to_vec())));
    assert_eq!(
        decode_owned(&hs, &lim).unwrap_err().to_string(),
        "header kts-stamp: duplicate header"
    );
    let mut hs = base.clone();
    hs.push(("kts-v".into(), Some(b"2".to_vec())));
    assert_eq!(
        decode_owned(&hs, &lim).unwrap_err().to_string(),
        "header kts-v: duplicate header"
    );
    let mut hs = base.clone();
    hs[0].1 = None;
    assert_eq!(
        decode_owned(&hs, &lim).unwrap_err(),
        HeaderError::Null { header: "kts-v" }
    );
    let mut hs = base.clone();
    hs[1].1 = None;
    assert_eq!(
        decode_owned(&hs, &lim).unwrap_err(),
        HeaderError::Null {
            header: "kts-stamp"
        }
    );
    assert_eq!(
        decode_owned(&base[..1], &lim).unwrap_err().to_string(),
        "header kts-stamp: missing"
    );
}

#[test]
fn rejects_each_malformed_field_by_name() {
    let ok = STAMP_OF_ENV;
    // (stamp, message): each a one-place edit of the valid stamp.
    let cases: Vec<(String, &str)> = vec![
        (String::new(), "header kts-stamp.id: missing"),
        (ok.replacen("6:6f1c-1", "0:", 1), "header kts-stamp.id: must not be empty"),
        (ok.replacen("6:6f1c-1", "06:6f1c-1", 1), "header kts-stamp.id: expected a decimal counter, found '06'"),
        (ok.replacen("6:6f1c-1", "6f1c-1", 1), "header kts-stamp.id: expected <length>:<bytes>, found '6f1c-1;10:producer-1;17;hybrid;1790000000.123;1790000000.223;5;['"),
        (ok.replacen("6:6f1c-1", "5:6f1c-1", 1), "header kts-stamp.id: expected ';' after the string, found '1;10:producer-1;17;hybrid;1790000000.123;1790000000.223;5;[7:a,b'"),
        ("9:abc".into(), "header kts-stamp.id: the stamp ends before the field is complete"),
        ("3:abc".into(), "header kts-stamp.id: the stamp ends before the field is complete"),
        ("99999999999999999999:a".into(), "header kts-stamp.id: counter overflows (maximum 18446744073709551615)"),
        ("300:a".into(), "header kts-stamp.id: 300 bytes exceeds the 256-byte limit"),
        (ok.replacen("10:producer-1", "", 1), "header kts-stamp.node: missing"),
        (ok.replacen(";17;", ";-1;", 1), "header kts-stamp.seq: expected a decimal counter, found '-1'"),
        (ok.replacen(";17;", ";18446744073709551616;", 1), "header kts-stamp.seq: counter overflows (maximum 18446744073709551615)"),
        (ok.replacen("hybrid", "", 1), "header kts-stamp.clock: missing"),
        (ok.replacen("hybrid", "atomic", 1), "header kts-stamp.clock: unknown clock type 'atomic' (expected physical, logical, vector or hybrid)"),
        (ok.replacen("1790000000.123", "", 1), "header kts-stamp.ts: missing"),
        (ok.replacen("1790000000.123", "inf", 1), "header kts-stamp.ts: expected a decimal number, found 'inf'"),
        (ok.replacen("1790000000.123", "1e400", 1), "header kts-stamp.ts: time is not a finite number"),
        (ok.replacen("1790000000.223", "1.", 1), "header kts-stamp.pt: expected a decimal number, found '1.'"),
        (ok.replacen(";5;", ";3.0;", 1), "header kts-stamp.lt: expected a decimal counter, found '3.0'"),
        (ok.replacen("[7:a,b=c%d=3,10:producer-1=17]", "7:a=1", 1), "header kts-stamp.vt: expected '[' or an empty field, found '7:a=1;1790000000223:2;-100.5'"),
        (ok.replacen("7:a,b=c%d=3,", "1:z=1,", 1), "header kts-stamp.vt: expected node ids in ascending byte order, found 'producer-1'"),
        (ok.replacen("7:a,b=c%d=3,", "10:producer-1=2,", 1), "header kts-stamp.vt.producer-1: duplicate header"),
        (ok.replacen("=3,", "=0,", 1), "header kts-stamp.vt.a,b=c%d: expected a counter above zero, found '0'"),
        (ok.replacen("=3,", "=,", 1), "header kts-stamp.vt.a,b=c%d: expected a decimal counter, found ''"),
        (ok.replacen("=3,", "=3;", 1), "header kts-stamp.vt: expected ',' or ']' after a counter, found ';10:producer-1=17];1790000000223:2;-100.5'"),
        (ok.replacen("7:a,b=c%d=3", "7:a,b=c%d3", 1), "header kts-stamp.vt: expected '=' after the node id, found '3,10:producer-1=17];1790000000223:2;-100.5'"),
        (ok.replacen("7:a,b=c%d", "0:", 1), "header kts-stamp.vt: must not be empty"),
        (ok.replacen("=17]", "=17],", 1), "header kts-stamp.vt: expected ';' after ']', found ',;1790000000223:2;-100.5'"),
        (ok.replacen("1790000000223:2", "12", 1), "header kts-stamp.hlc: malformed entry '12' (expected wall_ms:logical)"),
        (ok.replacen("1790000000223:2", "12:4294967296", 1), "header kts-stamp.hlc: counter overflows (maximum 4294967295)"),
        (ok.replacen("1790000000223:2", "", 1), "header kts-stamp.hlc: required for clock type hybrid"),
        (ok.replacen("-100.5", "-100.5x", 1), "header kts-stamp.skew: expected a decimal number, found '-100.5x'"),
        (format!("{ok};"), "header kts-stamp.skew: expected the last of ten fields, found ';'"),
        (ok.replacen(";-100.5", "", 1), "header kts-stamp.hlc: the stamp ends before the field is complete"),
        (ok[..ok.find('[').unwrap() + 3].to_string(), "header kts-stamp.vt: the stamp ends before the field is complete"),
    ];
    for (value, msg) in cases {
        let err = stamp(value.as_bytes()).expect_err(&value);
        assert_eq!(err.to_string(), msg, "{value:?}");
        let header = err.header().unwrap();
        assert!(
            msg.starts_with(&format!("header {header}")),
            "{err:?} names {header}"
        );
    }
    // Not UTF-8: an id, a node id of the vector, the clock.
    assert_eq!(
        stamp(b"2:\xff\xfe;").unwrap_err(),
        HeaderError::NotUtf8 {
            header: "kts-stamp.id"
        }
    );
    let mut v = ok.as_bytes().to_vec();
    let at = ok.find("7:a,b").unwrap() + 2;
    v[at] = 0xff;
    assert_eq!(
        stamp(&v).unwrap_err(),
        HeaderError::NotUtf8 {
            header: "kts-stamp.vt"
        }
    );
    let v = ok.replacen("hybrid", "hybri\u{e9}", 1);
    assert!(matches!(
        stamp(v.as_bytes()).unwrap_err(),
        HeaderError::UnknownClockType {
            header: "kts-stamp.clock",
            ..
        }
    ));
}

#[test]
fn limits_apply() {
    let hs = encoded(&env());
    let view: Vec<Header<'_>> = hs.iter().map(|(n, v)| (n.as_str(), v.as_deref())).collect();
    let size: usize = 5 + 1 + 9 + STAMP_OF_ENV.len();
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
            largest: format!("header kts-stamp ({} bytes)", 9 + STAMP_OF_ENV.len())
        }
    );
    let lim = DecodeLimits {
        max_headers: 1,
        ..DecodeLimits::default()
    };
    assert_eq!(
        decode(&view, 0, &lim).unwrap_err(),
        HeaderError::TooManyHeaders { count: 2, max: 1 }
    );
    let lim = DecodeLimits {
        max_vector_entries: 1,
        ..DecodeLimits::default()
    };
    assert_eq!(
        decode(&view, 0, &lim).unwrap_err().to_string(),
        "header kts-stamp.vt: more than 1 vector entries"
    );
    let lim = DecodeLimits {
        max_id_len: 5,
        max_node_id_len: 9,
        ..DecodeLimits::default()
    };
    assert_eq!(
        decode(&view, 0, &lim).unwrap_err(),
        HeaderError::TooLong {
            header: "kts-stamp.id",
            len: 6,
            max: 5
        }
    );
    let lim = DecodeLimits {
        max_node_id_len: 9,
        ..DecodeLimits::default()
    };
    assert_eq!(
        decode(&view, 0, &lim).unwrap_err(),
        HeaderError::TooLong {
            header: "kts-stamp.node",
            len: 10,
            max: 9
        }
    );
}

#[test]
fn id_of_reads_the_first_field_only() {
    let hs = encoded(&env());
    assert_eq!(
        id_of(hs.iter().map(|(n, v)| (n.as_str(), v.as_deref()))),
        Some("6f1c-1")
    );
    assert_eq!(
        id_of([("kts-stamp", Some(&b"3:abc"[..]))]),
        None,
        "unterminated"
    );
    assert_eq!(id_of([("kts-stamp", Some(&b"x;"[..]))]), None);
    assert_eq!(id_of([("kts-stamp", None)]), None);
}

proptest! {
    /// Whatever the producer can stamp reads back exactly (times bit for bit), and the encoding
    /// is canonical: decoding and encoding again gives the same bytes.
    #[test]
    fn encode_decode_round_trip(e in arb_envelope()) {
        let hs = encoded(&e);
        let d = decode_owned(&hs, &DecodeLimits::default()).unwrap();
        prop_assert_eq!(d.timestamp.timestamp.to_bits(), e.timestamp.timestamp.to_bits());
        prop_assert_eq!(&d, &e);
        prop_assert_eq!(encoded(&d), hs);
    }

    /// A version-2 record and its version-1 twin decode to the same envelope.
    #[test]
    fn both_versions_agree(e in arb_envelope()) {
        let mut h = EncodedHeaders::new();
        h.encode_v1(&e);
        let v1: Vec<Header<'_>> = h.iter().map(|(n, v)| (n, Some(v))).collect();
        let from_v1 = decode(&v1, 0, &DecodeLimits::default()).unwrap();
        prop_assert_eq!(decode_owned(&encoded(&e), &DecodeLimits::default()).unwrap(), from_v1);
    }

    /// The producer's direct lookup (the header at STAMP_INDEX, then its first field) finds the
    /// id the full decoder and the header scan find, for every stamp the producer can write.
    #[test]
    fn stamp_at_its_index_gives_the_decoded_id(e in arb_envelope()) {
        let mut h = EncodedHeaders::new();
        h.encode(&e);
        let hs: Vec<Header<'_>> = h.iter().map(|(n, v)| (n, Some(v))).collect();
        let (name, value) = hs[STAMP_INDEX];
        prop_assert_eq!(name, STAMP);
        let direct = stamp_id(value.unwrap());
        prop_assert_eq!(direct, Some(e.id.as_str()));
        prop_assert_eq!(direct, id_of(hs.iter().copied()));
        let decoded = decode(&hs, 0, &DecodeLimits::default()).unwrap();
        prop_assert_eq!(direct, Some(decoded.id.as_str()));
    }
}
