//! Decoder fuzzing and hostile records (issue 7): the envelope decoder never panics, fails with a
//! typed error, never allocates beyond what its caps allow, and round-trips valid envelopes. The
//! same for the header form of the stamp (issue 16, [`kafka_timesync::stamp_headers`]), in both
//! of its versions (one header per field; the whole stamp in `kts-stamp`).

use kafka_timesync::clock::{ClockType, HybridTimestamp, VectorTimestamp};
use kafka_timesync::envelope::{decode, DecodeError, DecodeLimits, Envelope, MessageTimestamp};
use kafka_timesync::stamp_headers::{self, EncodedHeaders, Header};
use proptest::prelude::*;
use proptest::sample::Index;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

// ---------------------------------------------------------------------------------------------
// A per-thread allocation meter: tests run in parallel threads, so each measures only itself.

struct Meter;

thread_local! {
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

fn on_alloc(size: usize) {
    let _ = LIVE.try_with(|l| {
        let now = l.get() + size;
        l.set(now);
        let _ = PEAK.try_with(|p| p.set(p.get().max(now)));
    });
}

fn on_free(size: usize) {
    let _ = LIVE.try_with(|l| l.set(l.get().saturating_sub(size)));
}

unsafe impl GlobalAlloc for Meter {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        on_alloc(layout.size());
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        on_free(layout.size());
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        on_alloc(new_size);
        on_free(layout.size());
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static METER: Meter = Meter;

/// Runs `f` and returns its result with the peak number of bytes it had allocated at once.
fn peak_alloc<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.with(|l| l.get());
    PEAK.with(|p| p.set(base));
    let out = f();
    (out, PEAK.with(|p| p.get()) - base)
}

// ---------------------------------------------------------------------------------------------
// Generators

fn arb_node() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z]{1,3}-[0-9]{1,2}",
        // Unicode, quotes, backslashes and control characters exercise escaping.
        "\\PC{1,12}",
        "[\"\\\\\u{0}-\u{1f}a]{1,6}",
    ]
}

fn arb_time() -> impl Strategy<Value = f64> {
    prop_oneof![
        1.0e9f64..2.0e9,
        any::<f64>().prop_filter("finite", |v| v.is_finite()),
        Just(0.0),
        Just(-0.0),
        Just(f64::MAX),
        Just(f64::MIN_POSITIVE),
    ]
}

fn arb_vector() -> impl Strategy<Value = VectorTimestamp> {
    proptest::collection::vec((arb_node(), any::<u64>()), 0..8)
        .prop_map(VectorTimestamp::from_entries)
}

fn arb_envelope() -> impl Strategy<Value = Envelope> {
    let clock = prop_oneof![
        Just(ClockType::Physical),
        Just(ClockType::Logical),
        Just(ClockType::Vector),
        Just(ClockType::Hybrid)
    ];
    (
        // seq, physical_time, logical_time and simulated_time absent or present: the prototype
        // wrote some of them, kafka-timesync writes all but the last.
        (
            "[0-9a-f-]{1,36}",
            "\\PC{0,40}",
            proptest::option::of(any::<u64>()),
        ),
        (
            arb_node(),
            arb_time(),
            clock,
            proptest::option::of(arb_time()),
            proptest::option::of(any::<u64>()),
        ),
        (
            proptest::option::of(arb_vector()),
            proptest::option::of((any::<u64>(), any::<u32>())),
            proptest::option::of(arb_time()),
            proptest::option::of(arb_time()),
        ),
    )
        .prop_map(
            |((id, content, seq), (node, ts, clock_type, pt, lt), (vt, ht, skew, sim))| {
                let mut hybrid_time = ht.map(|(w, l)| HybridTimestamp::new(w, l));
                if clock_type == ClockType::Hybrid && hybrid_time.is_none() {
                    hybrid_time = Some(HybridTimestamp::new(seq.unwrap_or(1), 0));
                }
                Envelope {
                    id,
                    content,
                    seq,
                    timestamp: MessageTimestamp {
                        node_id: node.into(),
                        timestamp: ts,
                        clock_type,
                        physical_time: pt,
                        logical_time: lt,
                        vector_time: vt,
                        hybrid_time,
                        simulated_time: sim,
                        unmapped_vector_entries: None,
                    },
                    simulated_skew_ms: skew,
                }
            },
        )
}

/// Tokens that move a valid record towards the interesting error paths.
const TOKENS: &[&str] = &[
    "-",
    "-1",
    "1e400",
    "-1e400",
    "1.5",
    "18446744073709551616",
    "18446744073709551615",
    "null",
    "[",
    "]",
    "{",
    "}",
    "\"",
    ",",
    ":",
    "\\",
    "\\u0000",
    "\\ud800",
    "NaN",
    "Infinity",
    "true",
    "\"x\":",
    "[[[[[[[[",
    "{\"a\":{\"a\":",
    "\u{ff}",
    "0",
    "\"atomic\"",
    "\"vector\"",
    "\"hybrid\"",
    "{}",
    "[]",
    "\"vector_time\":",
];

#[derive(Debug, Clone)]
enum Mutation {
    SetByte(Index, u8),
    Insert(Index, usize),
    Delete(Index, usize),
    Truncate(Index),
    /// Replaces the number (or token) at the index with a token.
    ReplaceAt(Index, usize),
}

fn arb_mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::SetByte(i, b)),
        (any::<Index>(), 0..TOKENS.len()).prop_map(|(i, t)| Mutation::Insert(i, t)),
        (any::<Index>(), 1usize..8).prop_map(|(i, n)| Mutation::Delete(i, n)),
        any::<Index>().prop_map(Mutation::Truncate),
        (any::<Index>(), 0..TOKENS.len()).prop_map(|(i, t)| Mutation::ReplaceAt(i, t)),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    if bytes.is_empty() {
        return;
    }
    match m {
        Mutation::SetByte(i, b) => {
            let i = i.index(bytes.len());
            bytes[i] = *b;
        }
        Mutation::Insert(i, t) => {
            let i = i.index(bytes.len() + 1);
            bytes.splice(i..i, TOKENS[*t].bytes());
        }
        Mutation::Delete(i, n) => {
            let i = i.index(bytes.len());
            let end = (i + n).min(bytes.len());
            bytes.drain(i..end);
        }
        Mutation::Truncate(i) => bytes.truncate(i.index(bytes.len())),
        Mutation::ReplaceAt(i, t) => {
            let i = i.index(bytes.len());
            let end = bytes[i..]
                .iter()
                .position(|b| matches!(b, b',' | b'}' | b']'))
                .map_or(bytes.len(), |p| i + p);
            bytes.splice(i..end, TOKENS[*t].bytes());
        }
    }
}

/// Whatever the decoder makes of `bytes`, it is a typed result; a success must survive a
/// re-encode unchanged. Returns whether it decoded.
fn check_any(bytes: &[u8], limits: &DecodeLimits) -> Result<bool, TestCaseError> {
    match decode(bytes, limits) {
        Ok(env) => {
            let again = decode(&env.encode(), limits);
            prop_assert_eq!(
                again.as_ref(),
                Ok(&env),
                "re-encoding changed {:?}",
                String::from_utf8_lossy(bytes)
            );
            Ok(true)
        }
        Err(e) => {
            // Every error renders to a one-line message; field errors name their field first.
            let msg = e.to_string();
            prop_assert!(
                !msg.is_empty() && !msg.contains('\n'),
                "bad message {:?}",
                msg
            );
            if let Some(field) = e.field() {
                prop_assert!(
                    msg.starts_with(field),
                    "{:?} does not start with {:?}",
                    msg,
                    field
                );
            }
            Ok(false)
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn valid_envelopes_round_trip(env in arb_envelope()) {
        let bytes = env.encode();
        prop_assert_eq!(decode(&bytes, &DecodeLimits::default()), Ok(env.clone()));
        prop_assert_eq!(env.to_json().into_bytes(), bytes);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        check_any(&bytes, &DecodeLimits::default())?;
    }

    #[test]
    fn json_like_text_never_panics(text in "[\\[\\]{}\":,0-9a-z_.eE+\\- \\\\]{0,300}") {
        check_any(text.as_bytes(), &DecodeLimits::default())?;
    }

    #[test]
    fn mutated_envelopes_never_panic(
        env in arb_envelope(),
        mutations in proptest::collection::vec(arb_mutation(), 1..5),
    ) {
        let mut bytes = env.encode();
        for m in &mutations {
            apply(&mut bytes, m);
        }
        let limits = DecodeLimits { max_vector_entries: 4, ..DecodeLimits::default() }
            .with_legacy_vector_nodes(["a", "b", "c"]);
        check_any(&bytes, &limits)?;
        check_any(&bytes, &DecodeLimits::default())?;
    }

    #[test]
    fn decoding_allocates_within_the_record_size(env in arb_envelope(), m in arb_mutation()) {
        // Peak memory while decoding is bounded by a small multiple of the record (the decoded
        // strings and vector), whatever the input.
        let mut bytes = env.encode();
        apply(&mut bytes, &m);
        let (_, peak) = peak_alloc(|| decode(&bytes, &DecodeLimits::default()));
        prop_assert!(peak <= 4 * bytes.len() + 4096, "{} bytes allocated for a {}-byte record", peak, bytes.len());
    }
}

// ---------------------------------------------------------------------------------------------
// The header form (issue 16)

/// Header names that reach every branch of the header decoder.
const HEADER_NAMES: &[&str] = &[
    "kts-v",
    "kts-id",
    "kts-node",
    "kts-seq",
    "kts-clock",
    "kts-ts",
    "kts-pt",
    "kts-lt",
    "kts-vt",
    "kts-hlc",
    "kts-skew",
    "kts-stamp",
    "kts-future",
    "traceparent",
    "KTS-V",
    "",
];

/// The envelope as the header form carries it: no content (the value), no `simulated_time`
/// (the prototype's, never written by kafka-timesync).
fn header_form(mut env: Envelope) -> Envelope {
    env.content.clear();
    env.timestamp.simulated_time = None;
    env
}

/// The header set of `env` in format `version` (1: one header per field; 2: `kts-stamp`).
fn owned_headers(env: &Envelope, version: u8) -> Vec<(String, Option<Vec<u8>>)> {
    let mut h = EncodedHeaders::new();
    match version {
        1 => h.encode_v1(env),
        _ => h.encode(env),
    }
    h.iter()
        .map(|(n, v)| (n.to_string(), Some(v.to_vec())))
        .collect()
}

#[derive(Debug, Clone)]
enum HeaderMutation {
    /// Mutates the value of one header as the JSON mutations do.
    Value(Index, Mutation),
    /// Nulls one header's value.
    Null(Index),
    /// Removes one header.
    Drop(Index),
    /// Repeats one header.
    Repeat(Index),
    /// Renames one header.
    Rename(Index, usize),
}

fn arb_header_mutation() -> impl Strategy<Value = HeaderMutation> {
    prop_oneof![
        4 => (any::<Index>(), arb_mutation()).prop_map(|(i, m)| HeaderMutation::Value(i, m)),
        1 => any::<Index>().prop_map(HeaderMutation::Null),
        1 => any::<Index>().prop_map(HeaderMutation::Drop),
        1 => any::<Index>().prop_map(HeaderMutation::Repeat),
        1 => (any::<Index>(), 0..HEADER_NAMES.len()).prop_map(|(i, n)| HeaderMutation::Rename(i, n)),
    ]
}

fn apply_to_headers(hs: &mut Vec<(String, Option<Vec<u8>>)>, m: &HeaderMutation) {
    if hs.is_empty() {
        return;
    }
    match m {
        HeaderMutation::Value(i, m) => {
            let i = i.index(hs.len());
            if let Some(v) = hs[i].1.as_mut() {
                apply(v, m);
            }
        }
        HeaderMutation::Null(i) => {
            let i = i.index(hs.len());
            hs[i].1 = None;
        }
        HeaderMutation::Drop(i) => {
            hs.remove(i.index(hs.len()));
        }
        HeaderMutation::Repeat(i) => {
            let h = hs[i.index(hs.len())].clone();
            hs.push(h);
        }
        HeaderMutation::Rename(i, n) => {
            let i = i.index(hs.len());
            hs[i].0 = HEADER_NAMES[*n].to_string();
        }
    }
}

/// Whatever the header decoder makes of a header set, it is a typed result; a success survives
/// a re-encode unchanged; an error is one line naming its header first. Returns whether it
/// decoded.
fn check_headers(
    hs: &[(String, Option<Vec<u8>>)],
    limits: &DecodeLimits,
) -> Result<bool, TestCaseError> {
    let view: Vec<Header<'_>> = hs.iter().map(|(n, v)| (n.as_str(), v.as_deref())).collect();
    match stamp_headers::decode(&view, 0, limits) {
        Ok(env) => {
            // The current encoder writes what any accepted set decoded to.
            let again = owned_headers(&env, 2);
            let again: Vec<Header<'_>> = again
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_deref()))
                .collect();
            prop_assert_eq!(stamp_headers::decode(&again, 0, limits), Ok(env));
            Ok(true)
        }
        Err(e) => {
            let msg = e.to_string();
            prop_assert!(
                !msg.is_empty() && !msg.contains('\n'),
                "bad message {:?}",
                msg
            );
            if let Some(header) = e.header() {
                let prefix = format!("header {header}");
                prop_assert!(
                    msg.starts_with(&prefix),
                    "{:?} does not name {:?}",
                    msg,
                    header
                );
            }
            Ok(false)
        }
    }
}

/// Valid starts of a `kts-stamp` value, so that random tails reach the later fields.
const STAMP_PREFIXES: &[&[u8]] = &[b"", b"1:a;1:n;", b"1:a;1:n;;vector;1;;;"];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn header_stamps_round_trip(env in arb_envelope(), version in 1..=2u8) {
        let env = header_form(env);
        let hs = owned_headers(&env, version);
        let view: Vec<Header<'_>> = hs.iter().map(|(n, v)| (n.as_str(), v.as_deref())).collect();
        prop_assert!(stamp_headers::is_stamped(&view));
        prop_assert_eq!(stamp_headers::decode(&view, 0, &DecodeLimits::default()), Ok(env));
    }

    #[test]
    fn mutated_header_sets_never_panic(
        env in arb_envelope(),
        version in 1..=2u8,
        mutations in proptest::collection::vec(arb_header_mutation(), 1..5),
    ) {
        let mut hs = owned_headers(&header_form(env), version);
        for m in &mutations {
            apply_to_headers(&mut hs, m);
        }
        let tight = DecodeLimits { max_vector_entries: 4, max_headers: 12, ..DecodeLimits::default() };
        check_headers(&hs, &tight)?;
        check_headers(&hs, &DecodeLimits::default())?;
    }

    #[test]
    fn arbitrary_header_sets_never_panic(
        hs in proptest::collection::vec(
            (0..HEADER_NAMES.len(), proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40))),
            0..16,
        ),
    ) {
        let hs: Vec<(String, Option<Vec<u8>>)> =
            hs.into_iter().map(|(n, v)| (HEADER_NAMES[n].to_string(), v)).collect();
        check_headers(&hs, &DecodeLimits::default())?;
    }

    /// `kts-stamp` values of the format's own bytes (digits, separators, brackets) reach every
    /// branch of the version-2 parser, which random bytes rarely pass the first field of.
    #[test]
    fn arbitrary_stamps_never_panic(
        stamp in proptest::collection::vec(proptest::sample::select(&b"0123456789:;[],=.-e1aph\xff"[..]), 0..120),
        prefix in proptest::sample::select(STAMP_PREFIXES),
    ) {
        let value = [prefix, &stamp[..]].concat();
        let hs = vec![("kts-v".to_string(), Some(b"2".to_vec())), ("kts-stamp".to_string(), Some(value))];
        check_headers(&hs, &DecodeLimits::default())?;
        let tight = DecodeLimits { max_vector_entries: 2, max_node_id_len: 3, max_id_len: 3, ..DecodeLimits::default() };
        check_headers(&hs, &tight)?;
    }

    #[test]
    fn header_decoding_allocates_within_the_header_size(
        env in arb_envelope(),
        version in 1..=2u8,
        m in arb_header_mutation(),
    ) {
        let mut hs = owned_headers(&header_form(env), version);
        apply_to_headers(&mut hs, &m);
        let size: usize = hs.iter().map(|(n, v)| n.len() + v.as_ref().map_or(0, Vec::len)).sum();
        let view: Vec<Header<'_>> = hs.iter().map(|(n, v)| (n.as_str(), v.as_deref())).collect();
        let (_, peak) = peak_alloc(|| stamp_headers::decode(&view, 0, &DecodeLimits::default()));
        prop_assert!(peak <= 4 * size + 4096, "{} bytes allocated for {} header bytes", peak, size);
    }
}

#[test]
fn hostile_header_vector_with_a_million_entries_is_stopped_at_the_cap() {
    let env = header_form(valid_envelope());
    let limits = DecodeLimits {
        max_bytes: 64 << 20,
        ..DecodeLimits::default()
    };
    // Version 1: a million `node=count` entries in `kts-vt`.
    let mut hs = owned_headers(&env, 1);
    let huge: Vec<u8> = (0..1_000_000)
        .map(|i| format!("n{i}=1"))
        .collect::<Vec<_>>()
        .join(",")
        .into_bytes();
    hs.retain(|(n, _)| n != "kts-vt");
    hs.push(("kts-vt".into(), Some(huge)));
    // Version 2: a million ascending `<length>:<node>=<count>` entries in the `vt` field.
    let entries: Vec<String> = (0..1_000_000).map(|i| format!("7:n{i:06}=1")).collect();
    let stamp = format!("1:a;1:n;1;vector;1.5;;;[{}];;", entries.join(","));
    let v2 = vec![
        ("kts-v".to_string(), Some(b"2".to_vec())),
        ("kts-stamp".to_string(), Some(stamp.into_bytes())),
    ];
    for (hs, header) in [(hs, "kts-vt"), (v2, "kts-stamp.vt")] {
        let view: Vec<Header<'_>> = hs.iter().map(|(n, v)| (n.as_str(), v.as_deref())).collect();
        let (result, peak) = peak_alloc(|| stamp_headers::decode(&view, 0, &limits));
        assert_eq!(
            result.unwrap_err(),
            stamp_headers::HeaderError::TooManyVectorEntries { header, max: 1024 }
        );
        // Stopped at entry 1025: nothing like the 10^6 entries was ever allocated.
        assert!(peak < 256 * 1024, "{header}: {peak} bytes allocated");
    }
}

// ---------------------------------------------------------------------------------------------
// Hostile records (issue 7)

/// The envelope of [`valid_json`].
fn valid_envelope() -> Envelope {
    dec(&valid_json()).expect("valid")
}

fn valid_json() -> String {
    r#"{"id":"a","content":"x","seq":1,"timestamp":{"node_id":"n","timestamp":1.5,"clock_type":"logical","physical_time":1.5,"logical_time":1}}"#
        .to_string()
}

fn with_seq(seq: &str) -> String {
    valid_json().replace(r#""seq":1"#, &format!(r#""seq":{seq}"#))
}

fn dec(s: &str) -> Result<Envelope, DecodeError> {
    decode(s.as_bytes(), &DecodeLimits::default())
}

#[test]
fn hostile_empty_record() {
    assert_eq!(
        decode(b"", &DecodeLimits::default()),
        Err(DecodeError::Empty)
    );
}

#[test]
fn hostile_binary_records() {
    assert!(matches!(
        decode(b"\x00\x01\x02\xff", &DecodeLimits::default()),
        Err(DecodeError::NotUtf8 { .. })
    ));
    assert!(matches!(
        decode(b"\x00\x01\x02", &DecodeLimits::default()),
        Err(DecodeError::Syntax { .. })
    ));
    // Invalid UTF-8 inside a string value.
    let mut b = valid_json().into_bytes();
    b[25] = 0xC3;
    assert!(matches!(
        decode(&b, &DecodeLimits::default()),
        Err(DecodeError::NotUtf8 { valid_up_to: 25 })
    ));
}

#[test]
fn hostile_ten_megabyte_payload_is_rejected_before_parsing() {
    let big = valid_json().replace(
        r#""content":"x""#,
        &format!(r#""content":"{}""#, "x".repeat(10_000_000)),
    );
    let (res, peak) = peak_alloc(|| decode(big.as_bytes(), &DecodeLimits::default()));
    assert_eq!(
        res,
        Err(DecodeError::TooLarge {
            len: big.len(),
            max: 1024 * 1024
        })
    );
    assert_eq!(peak, 0, "nothing may be allocated for an oversized record");
    // With a raised cap, the same record is valid.
    let limits = DecodeLimits {
        max_bytes: 16 << 20,
        ..DecodeLimits::default()
    };
    assert_eq!(
        decode(big.as_bytes(), &limits).map(|e| e.content.len()),
        Ok(10_000_000)
    );
}

#[test]
fn hostile_ten_thousand_deep_nesting_does_not_overflow_the_stack() {
    // On a thread with a deliberately small stack: recursion is bounded by max_depth, not by
    // the input.
    let handle = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(|| {
            let n = 10_000;
            let arrays = format!("{}{}", "[".repeat(n), "]".repeat(n));
            let objects = format!("{}1{}", r#"{"a":"#.repeat(n), "}".repeat(n));
            let mut errors = vec![dec(&arrays).unwrap_err(), dec(&objects).unwrap_err()];
            for (from, to) in [
                (r#""seq":1"#, format!(r#""seq":1,"ext":{arrays}"#)),
                (r#""seq":1"#, format!(r#""seq":{arrays}"#)),
                (
                    r#""logical_time":1"#,
                    format!(r#""logical_time":1,"ext":{objects}"#),
                ),
                (
                    r#""logical_time":1"#,
                    format!(r#""logical_time":1,"vector_time":{objects}"#),
                ),
                (
                    r#""logical_time":1"#,
                    format!(r#""logical_time":1,"hybrid_time":{{"x":{arrays}}}"#),
                ),
            ] {
                errors.push(dec(&valid_json().replace(from, &to)).unwrap_err());
            }
            errors
        })
        .unwrap();
    let errors = handle
        .join()
        .expect("decoder overflowed its stack or panicked");
    assert_eq!(
        errors[0],
        DecodeError::WrongType {
            field: "record".into(),
            expected: "a JSON object",
            found: "an array"
        }
    );
    assert_eq!(
        errors[1],
        DecodeError::TooDeep {
            field: "record".into(),
            max_depth: 32
        }
    );
    assert_eq!(
        errors[2],
        DecodeError::TooDeep {
            field: "record".into(),
            max_depth: 32
        }
    );
    assert!(matches!(&errors[3], DecodeError::WrongType { field, .. } if field == "seq"));
    assert_eq!(
        errors[4],
        DecodeError::TooDeep {
            field: "timestamp".into(),
            max_depth: 32
        }
    );
    assert!(
        matches!(&errors[5], DecodeError::WrongType { field, .. } if field == "timestamp.vector_time.a")
    );
    assert_eq!(
        errors[6],
        DecodeError::TooDeep {
            field: "timestamp.hybrid_time".into(),
            max_depth: 32
        }
    );
}

#[test]
fn hostile_million_entry_vector_is_stopped_at_the_cap() {
    let mut entries = String::with_capacity(16_000_000);
    for i in 0..1_000_000 {
        if i > 0 {
            entries.push(',');
        }
        entries.push_str(&format!(r#""n{i}":1"#));
    }
    let json = valid_json().replace(
        r#""logical_time":1"#,
        &format!(r#""logical_time":1,"vector_time":{{{entries}}}"#),
    );
    // Default limits: rejected by size before parsing.
    assert!(matches!(dec(&json), Err(DecodeError::TooLarge { .. })));
    // With the size cap lifted, the entry cap stops it, and memory stays proportional to the cap.
    let limits = DecodeLimits {
        max_bytes: 64 << 20,
        ..DecodeLimits::default()
    };
    let (res, peak) = peak_alloc(|| decode(json.as_bytes(), &limits));
    assert_eq!(
        res,
        Err(DecodeError::TooManyVectorEntries {
            field: "timestamp.vector_time".into(),
            max: 1024
        })
    );
    assert!(
        peak < 256 * 1024,
        "peak allocation {peak} bytes for 1024 entries"
    );
    // The same through the legacy array form.
    let array = format!("[{}]", vec!["1"; 1_000_000].join(","));
    let json = valid_json().replace(
        r#""logical_time":1"#,
        &format!(r#""logical_time":1,"vector_time":{array}"#),
    );
    // Without a node order (the array is checked, not mapped) and with one.
    let nodes: Vec<String> = (0..2000).map(|i| format!("n{i}")).collect();
    let mapped = limits.clone().with_legacy_vector_nodes(nodes);
    for limits in [limits, mapped] {
        let (res, peak) = peak_alloc(|| decode(json.as_bytes(), &limits));
        assert_eq!(
            res,
            Err(DecodeError::TooManyVectorEntries {
                field: "timestamp.vector_time".into(),
                max: 1024
            })
        );
        assert!(
            peak < 256 * 1024,
            "peak allocation {peak} bytes for 1024 entries"
        );
    }
}

#[test]
fn hostile_seq_extremes() {
    assert_eq!(
        dec(&with_seq("18446744073709551615")).map(|e| e.seq),
        Ok(Some(u64::MAX))
    );
    assert_eq!(
        dec(&with_seq("18446744073709551616")),
        Err(DecodeError::CounterOverflow {
            field: "seq".into(),
            max: u64::MAX
        })
    );
    assert_eq!(
        dec(&with_seq("1e20")),
        Err(DecodeError::CounterOverflow {
            field: "seq".into(),
            max: u64::MAX
        })
    );
    assert_eq!(
        dec(&with_seq(&"9".repeat(500))),
        Err(DecodeError::CounterOverflow {
            field: "seq".into(),
            max: u64::MAX
        })
    );
}

#[test]
fn hostile_negative_counters() {
    assert_eq!(
        dec(&with_seq("-1")).unwrap_err().to_string(),
        "seq: negative counter -1"
    );
    let lt = valid_json().replace(r#""logical_time":1"#, r#""logical_time":-3"#);
    assert_eq!(
        dec(&lt).unwrap_err().to_string(),
        "timestamp.logical_time: negative counter -3"
    );
    let vt = valid_json().replace(
        r#""logical_time":1"#,
        r#""logical_time":1,"vector_time":{"n":-9223372036854775808}"#,
    );
    assert_eq!(
        dec(&vt),
        Err(DecodeError::NegativeCounter {
            field: "timestamp.vector_time.n".into(),
            value: i64::MIN
        })
    );
    let ht = valid_json().replace(
        r#""logical_time":1"#,
        r#""logical_time":1,"hybrid_time":{"wall_ms":-1,"logical":0}"#,
    );
    assert_eq!(
        dec(&ht).unwrap_err().field(),
        Some("timestamp.hybrid_time.wall_ms")
    );
}

#[test]
fn hostile_huge_and_non_finite_times() {
    for (lit, kind) in [
        ("1e400", "non-finite"),
        ("-1e400", "non-finite"),
        ("NaN", "syntax"),
        ("Infinity", "syntax"),
    ] {
        let json = valid_json().replace(
            r#""physical_time":1.5"#,
            &format!(r#""physical_time":{lit}"#),
        );
        match (dec(&json), kind) {
            (Err(DecodeError::NonFinite { field }), "non-finite") => {
                assert_eq!(field, "timestamp.physical_time")
            }
            (Err(DecodeError::Syntax { .. }), "syntax") => {}
            (other, _) => panic!("{lit}: {other:?}"),
        }
    }
    // Huge but finite is a valid (if absurd) time; the analysis judges plausibility.
    let json = valid_json().replace(r#""physical_time":1.5"#, r#""physical_time":1e300"#);
    assert_eq!(
        dec(&json).map(|e| e.timestamp.physical_time),
        Ok(Some(1e300))
    );
}

#[test]
fn hostile_unknown_clock_type() {
    let json = valid_json().replace(r#""logical""#, r#""sundial""#);
    assert_eq!(
        dec(&json),
        Err(DecodeError::UnknownClockType {
            field: "timestamp.clock_type".into(),
            value: "sundial".into()
        })
    );
    // Over-long names are truncated in the error.
    let json = valid_json().replace(r#""logical""#, &format!(r#""{}""#, "z".repeat(10_000)));
    match dec(&json) {
        Err(DecodeError::UnknownClockType { value, .. }) => assert_eq!(value.len(), 64),
        other => panic!("{other:?}"),
    }
}

#[test]
fn same_id_different_content_is_not_the_decoders_business() {
    let a = dec(&valid_json()).unwrap();
    let b = dec(&valid_json().replace(r#""content":"x""#, r#""content":"y""#)).unwrap();
    assert_eq!(a.id, b.id);
    assert_ne!(a.content, b.content);
}

#[test]
fn typical_decode_allocates_little() {
    let env = dec(&valid_json()).unwrap();
    let bytes = env.encode();
    let (res, peak) = peak_alloc(|| decode(&bytes, &DecodeLimits::default()));
    assert_eq!(res, Ok(env));
    assert!(
        peak < 1024,
        "{peak} bytes allocated to decode {} bytes",
        bytes.len()
    );
}
