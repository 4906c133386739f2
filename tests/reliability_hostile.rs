//! Issue 7, "hostile records": records no kafka-timesync producer would write go straight to the
//! topic (rdkafka), between 300 valid messages of one node. The consumer reports each one — as
//! malformed (with its partition and offset), duplicate or ordering violation — keeps delivering
//! every valid message, and its peak resident memory stays under [`PEAK_RSS_BOUND_MIB`].
//!
//! The topic allows records up to 30 MB (`max.message.bytes`): the broker's own 1 MB default would
//! refuse the largest hostile records before the consumer ever saw them.

mod common;
mod reliability_support;

use reliability_support::*;
use serde_json::{json, Value};
use std::time::Duration;

/// The consumer's peak RSS bound. The two largest records are ~10 MB and ~14 MB and librdkafka
/// holds each fetched record once; the decoder rejects them by size before parsing. Measured:
/// 21 MiB. Parsing the 10^6-entry vector into a map, or copying the 10 MB content a few times,
/// would go well past this bound.
const PEAK_RSS_BOUND_MIB: u64 = 64;

const NODE: &str = "good";
const VALID: u64 = 300;

/// A valid envelope of [`NODE`] as a JSON value, to be mutated.
fn valid(seq: u64) -> Value {
    serde_json::from_slice(&envelope_bytes(
        NODE,
        seq,
        &[(NODE, seq)],
        &format!("valid-{seq}"),
    ))
    .expect("valid envelope")
}

fn with(mut v: Value, path: &[&str], new: Value) -> Value {
    let mut at = &mut v;
    for p in &path[..path.len() - 1] {
        at = &mut at[*p];
    }
    at[path[path.len() - 1]] = new;
    v
}

fn bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).expect("json")
}

/// How the consumer must report a hostile record.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    Malformed,
    /// A `duplicate` violation (or the summary's duplicate count).
    Duplicate,
    /// Some ordering violation naming this record's id.
    Violation,
}

#[test]
fn hostile_records_are_reported_and_valid_messages_keep_flowing() {
    let bootstrap = common::bootstrap();
    let topic = common::unique_topic("rel-hostile");
    common::create_named_topic(&topic, 3, 1, &[("max.message.bytes", "30000000")]);

    // (label, partition, bytes, expectation)
    let mut hostile: Vec<(&str, i32, Vec<u8>, Expect)> = Vec::new();
    hostile.push((
        "binary",
        1,
        vec![0xff, 0xfe, 0x00, 0x01, 0x80, 0xc3, 0x28, 0x7b],
        Expect::Malformed,
    ));
    hostile.push(("not JSON", 2, b"hello, world".to_vec(), Expect::Malformed));
    hostile.push(("empty value", 1, Vec::new(), Expect::Malformed));
    let big = "x".repeat(10 * 1024 * 1024);
    hostile.push((
        "10 MB payload",
        1,
        bytes(&with(valid(1), &["content"], json!(big))),
        Expect::Malformed,
    ));
    drop(big);
    let deep = {
        let mut s = String::from("{\"deep\":");
        s.push_str(&"[".repeat(10_000));
        s.push_str(&"]".repeat(10_000));
        s.push_str(",\"rest\":1}");
        let mut v = bytes(&valid(1));
        // Insert the deep unknown field just after the opening brace.
        let tail = v.split_off(1);
        v.extend_from_slice(format!("\"nested\":{s},").as_bytes());
        v.extend_from_slice(&tail);
        v
    };
    hostile.push(("10 000-deep JSON", 2, deep, Expect::Malformed));
    let huge_vector: serde_json::Map<String, Value> = (0..1_000_000)
        .map(|i| (format!("n{i}"), json!(1)))
        .collect();
    hostile.push((
        "vector with 10^6 entries",
        1,
        bytes(&with(
            valid(1),
            &["timestamp", "vector_time"],
            Value::Object(huge_vector),
        )),
        Expect::Malformed,
    ));
    hostile.push((
        "negative seq",
        2,
        bytes(&with(valid(7), &["seq"], json!(-1))),
        Expect::Malformed,
    ));
    hostile.push((
        "negative logical_time",
        1,
        bytes(&with(valid(7), &["timestamp", "logical_time"], json!(-5))),
        Expect::Malformed,
    ));
    hostile.push((
        "negative vector entry",
        2,
        bytes(&with(
            valid(7),
            &["timestamp", "vector_time", NODE],
            json!(-3),
        )),
        Expect::Malformed,
    ));
    let nan = String::from_utf8(bytes(&with(
        valid(7),
        &["timestamp", "physical_time"],
        json!(12345.5),
    )))
    .expect("utf-8")
    .replace("12345.5", "NaN");
    hostile.push(("NaN time", 1, nan.into_bytes(), Expect::Malformed));
    let inf = String::from_utf8(bytes(&with(
        valid(7),
        &["timestamp", "timestamp"],
        json!(12345.5),
    )))
    .expect("utf-8")
    .replace("12345.5", "1e400");
    hostile.push(("infinite time", 2, inf.into_bytes(), Expect::Malformed));
    hostile.push((
        "unknown clock type",
        1,
        bytes(&with(
            valid(7),
            &["timestamp", "clock_type"],
            json!("quantum"),
        )),
        Expect::Malformed,
    ));

    // The valid stream, in partition 0, with the hostile records in between.
    let goods: Vec<Vec<u8>> = (1..=VALID).map(|s| bytes(&valid(s))).collect();
    let good_ids: Vec<String> = goods.iter().map(|b| id_of(b)).collect();
    let mut records: Vec<(i32, &str, Vec<u8>)> = Vec::new();
    let mut labels: Vec<Option<(String, Expect)>> = Vec::new();
    for (s, g) in goods.iter().enumerate() {
        records.push((0, NODE, g.clone()));
        labels.push(None);
        if s == 100 {
            for (label, p, b, e) in hostile.drain(..) {
                records.push((p, "hostile", b));
                labels.push(Some((label.to_string(), e)));
            }
        }
        if s == 150 {
            // seq 2^64 − 1 in the middle of the node's stream.
            let v = with(valid(u64::MAX), &["seq"], json!(u64::MAX));
            records.push((0, NODE, bytes(&v)));
            labels.push(Some(("seq 2^64-1".into(), Expect::Violation)));
        }
        if s == 200 {
            // The id of message 50, with different content.
            let v = with(valid(9_999), &["id"], json!(good_ids[50]));
            records.push((0, NODE, bytes(&v)));
            labels.push(Some((
                "same id, different content".into(),
                Expect::Duplicate,
            )));
        }
    }
    let positions = produce_at(
        &bootstrap,
        &[("message.max.bytes", "30000000"), ("linger.ms", "5")],
        &topic,
        &records,
    );

    let group = unique_node("hostile-group");
    let c = Watched::spawn(
        "kafka-consumer",
        CONSUMER,
        &[
            &topic,
            "--bootstrap",
            &bootstrap,
            "--group",
            &group,
            "--from-beginning",
            "--analyze-ordering",
            "--format",
            "json",
            "--idle-timeout",
            "10",
        ],
    )
    .wait(Duration::from_secs(240));
    c.assert_success();
    let d = Deliveries::from_events(&c.events());

    let mut report = Vec::new();
    let mut unreported = Vec::new();
    for ((label, (_, _, bytes)), &(partition, offset)) in labels
        .iter()
        .zip(&records)
        .zip(&positions)
        .filter_map(|((l, r), pos)| l.as_ref().map(|l| ((l, r), pos)))
    {
        let (label, expect) = label;
        let id = serde_json::from_slice::<Value>(bytes)
            .ok()
            .and_then(|v| v["id"].as_str().map(str::to_string));
        let malformed = d
            .malformed
            .iter()
            .any(|m| m["partition"] == partition && m["offset"] == offset);
        let names_id = |kinds: &[&str]| {
            d.violations.iter().any(|(k, vs)| {
                (kinds.is_empty() || kinds.contains(&k.as_str()))
                    && vs.iter().any(|v| {
                        id.as_ref().is_some_and(|id| {
                            v["ids"]
                                .as_array()
                                .is_some_and(|a| a.iter().any(|x| x == id.as_str()))
                        })
                    })
            })
        };
        let ok = match expect {
            Expect::Malformed => malformed,
            Expect::Duplicate => {
                names_id(&["duplicate"])
                    || d.summary
                        .as_ref()
                        .is_some_and(|s| s["duplicates"].as_u64() >= Some(1))
            }
            Expect::Violation => names_id(&[]),
        };
        report.push(format!(
            "{label} @{partition}/{offset}: {}",
            if ok { "reported" } else { "NOT reported" }
        ));
        if !ok {
            unreported.push(label.clone());
        }
    }
    let delivered_valid = good_ids
        .iter()
        .filter(|id| d.by_id.contains_key(*id))
        .count();
    let peak_mib = c.peak_kib / 1024;
    let figures = format!(
        "{} hostile records ({}), valid messages sent {VALID}, delivered {delivered_valid}, lost {}; \
         malformed events {}, violations {:?}; consumer peak RSS {peak_mib} MiB (bound \
         {PEAK_RSS_BOUND_MIB} MiB)",
        report.len(),
        report.join(", "),
        VALID as usize - delivered_valid,
        d.malformed.len(),
        d.violations.iter().map(|(k, v)| (k.clone(), v.len())).collect::<Vec<_>>(),
    );
    assert!(
        unreported.is_empty(),
        "unreported hostile records {unreported:?}: {figures}"
    );
    assert_eq!(
        delivered_valid, VALID as usize,
        "valid messages lost: {figures}"
    );
    assert!(c.peak_kib > 0, "peak memory was never sampled: {figures}");
    assert!(
        peak_mib < PEAK_RSS_BOUND_MIB,
        "memory bound exceeded: {figures}"
    );
    assert!(
        !c.stderr.iter().any(|l| l.contains("panicked")),
        "panic: {figures}"
    );
    eprintln!("hostile: {figures}");
}

/// Issue 16: header-stamped records (binary values) with hostile header sets in both versions of
/// the header form (`kts-*` headers per field; the whole stamp in `kts-stamp`), between 300 valid
/// header-stamped messages of one node written alternately in the two versions. Each is reported
/// as `malformed` naming the offending header or field; every valid message is delivered
/// causally; memory stays bounded.
#[test]
fn hostile_header_sets_are_reported_by_name_and_valid_messages_keep_flowing() {
    let bootstrap = common::bootstrap();
    let topic = common::unique_topic("rel-hostile-headers");
    common::create_named_topic(&topic, 2, 1, &[("max.message.bytes", "30000000")]);
    let value: Vec<u8> = (0..=255u8).collect();
    let stamp = |seq: u64| {
        let env = reliability_support::envelope(NODE, seq, &[(NODE, seq)], "");
        let hs = if seq % 2 == 0 {
            common::stamp_headers(&env)
        } else {
            common::stamp_headers_v1(&env)
        };
        (env.id.clone(), hs)
    };
    let set = |mut hs: common::HeaderList, name: &str, v: Option<Vec<u8>>| {
        match hs.iter_mut().find(|(n, _)| n == name) {
            Some(h) => h.1 = v,
            None => hs.push((name.to_string(), v)),
        }
        hs
    };
    // (label, headers, what the malformed event must say)
    let mut hostile: Vec<(&str, common::HeaderList, &str)> = Vec::new();
    // Version 1 (seq 7 is odd).
    let base = || stamp(7).1;
    let mut dup = base();
    dup.push(("kts-seq".into(), Some(b"8".to_vec())));
    hostile.push(("duplicate header", dup, "header kts-seq: duplicate header"));
    hostile.push((
        "oversized header",
        set(base(), "kts-id", Some(vec![b'x'; 2 * 1024 * 1024])),
        "exceeds the 1048576-byte limit; largest part: header kts-id (2097158 bytes)",
    ));
    hostile.push((
        "bad number",
        set(base(), "kts-lt", Some(b"-5".to_vec())),
        "header kts-lt: expected a decimal counter",
    ));
    hostile.push((
        "fractional seq",
        set(base(), "kts-seq", Some(b"7.5".to_vec())),
        "header kts-seq: expected a decimal counter",
    ));
    hostile.push((
        "infinite time",
        set(base(), "kts-pt", Some(b"1e400".to_vec())),
        "header kts-pt: time is not a finite number",
    ));
    let many: Vec<u8> = (0..100_000)
        .map(|i| format!("n{i}=1"))
        .collect::<Vec<_>>()
        .join(",")
        .into_bytes();
    hostile.push((
        "too many vector entries",
        set(base(), "kts-vt", Some(many)),
        "header kts-vt: more than 1024 vector entries",
    ));
    hostile.push((
        "unknown version",
        set(base(), "kts-v", Some(b"3".to_vec())),
        "header kts-v: unsupported version '3' (expected 1 or 2)",
    ));
    hostile.push((
        "null value",
        set(base(), "kts-node", None),
        "header kts-node: null value",
    ));
    hostile.push((
        "missing node",
        base()
            .into_iter()
            .filter(|(n, _)| n != "kts-node")
            .collect(),
        "header kts-node: missing",
    ));
    let mut crowd = base();
    crowd.extend((0..1000).map(|i| (format!("x-{i}"), None)));
    hostile.push(("1000 headers", crowd, "headers exceed the limit of 256"));

    // Version 2 (seq 8 is even): the `kts-stamp` value with field `i` (of the ten) replaced.
    let base2 = || stamp(8).1;
    let with_field = |i: usize, new: &str| {
        let hs = base2();
        let old = String::from_utf8(hs[1].1.clone().expect("kts-stamp")).expect("ASCII");
        let mut fields: Vec<&str> = old.split(';').collect();
        assert_eq!(fields.len(), 10, "{old}");
        fields[i] = new;
        set(hs, "kts-stamp", Some(fields.join(";").into_bytes()))
    };
    let mut dup = base2();
    dup.push(("kts-stamp".into(), dup[1].1.clone()));
    hostile.push((
        "v2 duplicate stamp",
        dup,
        "header kts-stamp: duplicate header",
    ));
    let huge_id = format!("{}:{}", 2 * 1024 * 1024, "x".repeat(2 * 1024 * 1024));
    hostile.push((
        "v2 oversized stamp",
        with_field(0, &huge_id),
        "exceeds the 1048576-byte limit; largest part: header kts-stamp (",
    ));
    hostile.push((
        "v2 length past the end",
        set(base2(), "kts-stamp", Some(b"99:abc;".to_vec())),
        "header kts-stamp.id: the stamp ends before the field is complete",
    ));
    hostile.push((
        "v2 bad number",
        with_field(2, "7.5"),
        "header kts-stamp.seq: expected a decimal counter, found '7.5'",
    ));
    hostile.push((
        "v2 infinite time",
        with_field(4, "1e400"),
        "header kts-stamp.ts: time is not a finite number",
    ));
    // 50 000 entries of 12 bytes: within the 1 MiB record limit, far over the entry cap.
    let many: Vec<String> = (0..50_000).map(|i| format!("7:n{i:06}=1")).collect();
    hostile.push((
        "v2 too many vector entries",
        with_field(7, &format!("[{}]", many.join(","))),
        "header kts-stamp.vt: more than 1024 vector entries",
    ));
    hostile.push((
        "v2 repeated vector node",
        with_field(7, "[1:a=1,1:a=2]"),
        "header kts-stamp.vt.a: duplicate header",
    ));
    hostile.push((
        "v2 null stamp",
        set(base2(), "kts-stamp", None),
        "header kts-stamp: null value",
    ));
    hostile.push((
        "v2 missing stamp",
        base2()
            .into_iter()
            .filter(|(n, _)| n != "kts-stamp")
            .collect(),
        "header kts-stamp: missing",
    ));
    hostile.push((
        "v2 extra field",
        with_field(9, "1;2"),
        "header kts-stamp.skew: expected the last of ten fields, found ';2'",
    ));

    let goods: Vec<(String, common::HeaderList)> = (1..=VALID).map(stamp).collect();
    let mut records: Vec<common::RawRecord<'_>> = Vec::new();
    for (s, (_, hs)) in goods.iter().enumerate() {
        records.push(common::RawRecord {
            partition: Some(0),
            key: Some(NODE),
            value: &value,
            headers: hs,
        });
        if s == 100 {
            for (_, hs, _) in &hostile {
                records.push(common::RawRecord {
                    partition: Some(1),
                    key: Some("hostile"),
                    value: &value,
                    headers: hs,
                });
            }
        }
    }
    common::produce_with_headers(
        &topic,
        &[("message.max.bytes", "30000000"), ("linger.ms", "5")],
        &records,
    );

    let group = unique_node("hostile-headers-group");
    let c = Watched::spawn(
        "kafka-consumer",
        CONSUMER,
        &[
            &topic,
            "--bootstrap",
            &bootstrap,
            "--group",
            &group,
            "--from-beginning",
            "--delivery",
            "causal",
            "--analyze-ordering",
            "--format",
            "json",
            "--idle-timeout",
            "10",
        ],
    )
    .wait(Duration::from_secs(240));
    c.assert_success();
    let events = c.events();
    let d = Deliveries::from_events(&events);
    let errors: Vec<String> = d
        .malformed
        .iter()
        .map(|m| m["error"].as_str().unwrap_or_default().to_string())
        .collect();
    let unreported: Vec<&str> = hostile
        .iter()
        .filter(|(_, _, want)| !errors.iter().any(|e| e.contains(want)))
        .map(|(label, _, _)| *label)
        .collect();
    let delivered_valid = goods
        .iter()
        .filter(|(id, _)| d.by_id.contains_key(id))
        .count();
    let figures = format!(
        "{} hostile header sets, malformed events {:?}; valid sent {VALID}, delivered \
         {delivered_valid} (in order: {}); consumer peak RSS {} MiB",
        hostile.len(),
        errors,
        d.order.windows(2).all(|w| w[0].1 < w[1].1),
        c.peak_kib / 1024,
    );
    assert!(
        unreported.is_empty(),
        "unreported: {unreported:?}: {figures}"
    );
    assert_eq!(errors.len(), hostile.len(), "{figures}");
    assert_eq!(
        delivered_valid, VALID as usize,
        "valid messages lost: {figures}"
    );
    assert!(d.order.windows(2).all(|w| w[0].1 < w[1].1), "{figures}");
    // Every delivered value is the binary value, byte for byte (base64 in the JSON event).
    for e in events.iter().filter(|e| e["event"] == "deliver") {
        assert_eq!(e["form"], "headers");
        assert_eq!(e["value_encoding"], "base64");
        assert_eq!(common::delivered_value(e), value);
    }
    assert!(
        c.peak_kib / 1024 < PEAK_RSS_BOUND_MIB,
        "memory bound exceeded: {figures}"
    );
    eprintln!("hostile headers: {figures}");
}
