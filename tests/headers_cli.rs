//! Issue 16: the stamp in record headers, against the real broker of the test environment
//! (`scripts/testenv.sh run -- cargo test --all-features --test headers_cli`).
//!
//! Interop: records written by rdkafka directly (not kafka-producer), with arbitrary binary values
//! and kafka-timesync's `kts-*` headers in both versions of the header set, beside a JSON
//! envelope in the same topic, are analysed and delivered causally by kafka-consumer;
//! kafka-producer `--envelope headers` sends the content byte for byte with the version-2 set.

mod common;
mod reliability_support;

use common::{create_topic, delivered_value, read_all, run, RawRecord, TIMEOUT};
use reliability_support::{envelope, unique_node, CONSUMER, PRODUCER};
use serde_json::Value;
use std::collections::HashMap;

/// Runs kafka-consumer over the whole topic (JSON events) until it has delivered `n` messages.
fn consume(topic: &str, n: usize, extra: &[&str]) -> Vec<Value> {
    let n = n.to_string();
    let bs = common::bootstrap();
    let group = unique_node("headers-group");
    let mut args = vec![
        topic,
        "--bootstrap",
        &bs,
        "--group",
        &group,
        "--from-beginning",
        "--format",
        "json",
        "--max-messages",
        &n,
    ];
    args.extend_from_slice(extra);
    let out = run(CONSUMER, &args, None, TIMEOUT);
    out.assert_success();
    out.json_lines()
}

fn deliveries(events: &[Value]) -> Vec<&Value> {
    events.iter().filter(|e| e["event"] == "deliver").collect()
}

/// The ten fields of the stamp kafka-producer wrote on `r`: exactly the headers `kts-v: 2` and
/// `kts-stamp` (split at `;`: the tests' ids and node ids hold none).
fn stamp_fields(r: &common::TopicRecord) -> Vec<String> {
    let names: Vec<&str> = r.headers.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["kts-v", "kts-stamp"], "{:?}", r.headers);
    assert_eq!(r.headers[0].1.as_deref(), Some(&b"2"[..]), "version");
    let stamp = String::from_utf8(r.headers[1].1.clone().expect("kts-stamp")).expect("ASCII");
    let fields: Vec<String> = stamp.split(';').map(str::to_string).collect();
    assert_eq!(fields.len(), 10, "{stamp}");
    fields
}

/// A value no JSON envelope could carry: invalid UTF-8, NUL, line breaks, distinct per message.
fn binary_value(node: &str, seq: u64) -> Vec<u8> {
    let mut v = vec![0xff, 0x00, b'\n', 0xc3, 0x28, b'"', b'\\'];
    v.extend_from_slice(node.as_bytes());
    v.extend_from_slice(&seq.to_be_bytes());
    v
}

#[test]
fn records_of_another_client_with_our_headers_are_delivered_causally() {
    const ROUNDS: u64 = 20;
    let topic = create_topic("headers-interop", 1);
    // A and B alternate, each message depending on the other node's previous one: A1 → B1 → A2 …
    let mut a = Vec::new();
    let mut b = Vec::new();
    for k in 1..=ROUNDS {
        a.push(envelope("A", k, &[("A", k), ("B", k - 1)], ""));
        b.push(envelope("B", k, &[("A", k), ("B", k)], ""));
    }
    let stamped: Vec<(String, u64, common::HeaderList, Vec<u8>)> = b
        .iter()
        .chain(a.iter())
        .map(|e| {
            let node = e.timestamp.node_id.to_string();
            let seq = e.seq.unwrap_or_default();
            // A's records in the header form's version 1 (one header per field, as written
            // before version 2), B's in version 2 (`kts-stamp`): both are read.
            let mut headers = if node == "A" {
                common::stamp_headers_v1(e)
            } else {
                common::stamp_headers(e)
            };
            // Other tools' headers ride along and are ignored.
            headers.insert(
                0,
                ("traceparent".into(), Some(b"00-4bf92f-00f067-01".to_vec())),
            );
            let value = binary_value(&node, seq);
            (node, seq, headers, value)
        })
        .collect();
    // All of B first, then A, in one partition: B's messages arrive before their causes.
    let records: Vec<RawRecord<'_>> = stamped
        .iter()
        .map(|(node, _, headers, value)| RawRecord {
            partition: Some(0),
            key: Some(node),
            value,
            headers,
        })
        .collect();
    common::produce_with_headers(&topic, &[], &records);
    // A JSON envelope of a third node in the same topic: both forms side by side.
    let c = envelope("C", 1, &[("C", 1)], "plain JSON");
    common::produce_raw(&topic, &[(Some(0), "C", &c.encode())]);

    let events = consume(
        &topic,
        2 * ROUNDS as usize + 1,
        &[
            "--delivery",
            "causal",
            "--analyze-ordering",
            "--causal-timeout",
            "30000",
        ],
    );
    let delivered = deliveries(&events);
    assert_eq!(delivered.len() as u64, 2 * ROUNDS + 1, "events: {events:?}");
    let mut position: HashMap<(String, u64), usize> = HashMap::new();
    for (i, d) in delivered.iter().enumerate() {
        let m = &d["message"];
        let node = m["timestamp"]["node_id"].as_str().unwrap().to_string();
        let seq = m["seq"].as_u64().unwrap();
        assert_eq!(d["release"], "ready", "{d}");
        if node == "C" {
            assert_eq!(
                d.get("form"),
                None,
                "a JSON envelope is embedded as before: {d}"
            );
            assert_eq!(m["content"], "plain JSON");
        } else {
            assert_eq!(d["form"], "headers", "{d}");
            assert_eq!(d["value_encoding"], "base64", "{d}");
            assert_eq!(delivered_value(d), binary_value(&node, seq), "{d}");
            assert_eq!(m["timestamp"]["clock_type"], "vector");
        }
        position.insert((node, seq), i);
    }
    for k in 1..=ROUNDS {
        let at = |n: &str, s: u64| position[&(n.to_string(), s)];
        assert!(at("A", k) < at("B", k), "A{k} before B{k}");
        if k > 1 {
            assert!(at("B", k - 1) < at("A", k), "B{} before A{k}", k - 1);
        }
    }
    let summary = events
        .iter()
        .find(|e| e["event"] == "summary")
        .expect("summary");
    assert_eq!(summary["malformed"], 0, "{summary}");
    assert_eq!(summary["nodes"]["A"]["messages"], ROUNDS);
    assert_eq!(summary["nodes"]["B"]["messages"], ROUNDS);
    // The analysis saw B's messages arrive before their causes.
    assert!(
        summary["violations"]["arrival_before_cause"].as_u64() > Some(0),
        "{summary}"
    );
}

#[test]
fn producer_headers_mode_sends_a_file_byte_for_byte_and_the_consumer_reads_it() {
    let topic = create_topic("headers-file", 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("photo.jpg");
    let mut bytes: Vec<u8> = (0..3000u32).map(|i| (i * 7 % 256) as u8).collect();
    // A JSON-envelope-like id inside the value must not be taken for the message's id.
    bytes.extend_from_slice(br#"{"id":"decoy"}"#);
    std::fs::write(&path, &bytes).expect("write file");
    let bs = common::bootstrap();
    let path_arg = path.to_str().unwrap();
    let out = run(
        PRODUCER,
        &[
            "--bootstrap",
            &bs,
            "--no-state",
            "--node-id",
            "P",
            "--clock-type",
            "hybrid",
            "--envelope",
            "headers",
            "--value-file",
            path_arg,
            "--format",
            "json",
            &topic,
        ],
        None,
        TIMEOUT,
    );
    out.assert_success();
    let ack: Value = serde_json::from_str(out.stdout.trim()).expect("one acknowledgement line");
    assert_eq!(ack["event"], "delivered", "{ack}");
    let recs = read_all(&topic);
    assert_eq!(recs.len(), 1);
    let r = &recs[0];
    assert_eq!(
        r.payload.as_deref(),
        Some(&bytes[..]),
        "the value is the file"
    );
    let stamp = stamp_fields(r);
    assert_eq!(stamp[1], "1:P", "node");
    assert_eq!(stamp[2], "1", "seq");
    assert_eq!(stamp[3], "hybrid");
    assert!(stamp[8].contains(':'), "hlc");
    let id = stamp[0]
        .split_once(':')
        .expect("<length>:<id>")
        .1
        .to_string();
    let ts: f64 = stamp[4].parse().unwrap();
    assert_eq!(
        r.timestamp,
        Some((ts * 1e3).round() as i64),
        "Kafka timestamp as in JSON mode"
    );

    let events = consume(&topic, 1, &["--delivery", "total"]);
    let delivered = deliveries(&events);
    assert_eq!(delivered.len(), 1, "{events:?}");
    assert_eq!(delivered_value(delivered[0]), bytes);
    assert_eq!(delivered[0]["message"]["id"], id);
    assert_eq!(ack["id"], id, "the acknowledgement names the record's id");
}

#[test]
fn producer_headers_mode_sends_stdin_lines_as_they_are() {
    let topic = create_topic("headers-lines", 1);
    let bs = common::bootstrap();
    let out = run(
        PRODUCER,
        &[
            "--bootstrap",
            &bs,
            "--no-state",
            "--node-id",
            "L",
            "--envelope",
            "headers",
            &topic,
        ],
        Some(b"plain text\nbin\xff\xfe\n{\"not\":\"an envelope\"}\n"),
        TIMEOUT,
    );
    out.assert_success();
    let values: Vec<Vec<u8>> = read_all(&topic)
        .into_iter()
        .map(|r| r.payload.unwrap_or_default())
        .collect();
    let want: Vec<&[u8]> = vec![b"plain text", b"bin\xff\xfe", b"{\"not\":\"an envelope\"}"];
    assert_eq!(values, want);
    let events = consume(&topic, want.len(), &[]);
    let encodings: Vec<&str> = deliveries(&events)
        .iter()
        .map(|d| d["value_encoding"].as_str().unwrap())
        .collect();
    assert_eq!(encodings, ["text", "base64", "text"]);
    let got: Vec<Vec<u8>> = deliveries(&events)
        .into_iter()
        .map(delivered_value)
        .collect();
    assert_eq!(got, want);
}

#[test]
fn a_binary_value_file_in_json_mode_is_refused_clearly() {
    let topic = create_topic("headers-refuse", 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("blob.bin");
    std::fs::write(&path, b"\x00\xff\xfe").expect("write file");
    let bs = common::bootstrap();
    let out = run(
        PRODUCER,
        &[
            "--bootstrap",
            &bs,
            "--no-state",
            "--value-file",
            path.to_str().unwrap(),
            &topic,
        ],
        None,
        TIMEOUT,
    );
    assert_eq!(out.status.and_then(|s| s.code()), Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("use --envelope headers"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    assert!(read_all(&topic).is_empty(), "nothing sent");
}

#[test]
fn observe_merges_the_clocks_of_header_stamped_records() {
    let topic = create_topic("headers-observe", 1);
    let bs = common::bootstrap();
    let producer = |args: &[&str], stdin: &[u8]| {
        let mut all = vec![
            "--bootstrap",
            bs.as_str(),
            "--no-state",
            "--clock-type",
            "vector",
        ];
        all.extend_from_slice(args);
        all.push(topic.as_str());
        run(PRODUCER, &all, Some(stdin), TIMEOUT).assert_success();
    };
    producer(
        &["--node-id", "A", "--envelope", "headers"],
        b"first\nsecond\n",
    );
    producer(&["--node-id", "B", "--observe"], b"reply\n");
    let recs = read_all(&topic);
    assert_eq!(recs.len(), 3);
    let b = recs[2].json();
    assert_eq!(
        b["timestamp"]["vector_time"]["A"], 2,
        "B saw A's two messages: {b}"
    );
    assert_eq!(b["timestamp"]["vector_time"]["B"], 1, "{b}");
}

#[test]
fn a_producer_without_its_state_file_continues_from_its_header_stamped_records() {
    let topic = create_topic("headers-readback", 1);
    let bs = common::bootstrap();
    let send = |state: &std::path::Path, stdin: &[u8]| {
        let dir = state.to_str().unwrap();
        let args = [
            "--bootstrap",
            &bs,
            "--state-dir",
            dir,
            "--node-id",
            "R",
            "--clock-type",
            "logical",
            "--envelope",
            "headers",
            &topic,
        ];
        run(PRODUCER, &args, Some(stdin), TIMEOUT).assert_success();
    };
    let first = tempfile::tempdir().expect("tempdir");
    send(first.path(), b"a\nb\nc\n");
    // A fresh state directory: only the topic knows where node R stopped.
    let second = tempfile::tempdir().expect("tempdir");
    send(second.path(), b"d\n");
    let seqs: Vec<String> = read_all(&topic)
        .iter()
        .map(|r| stamp_fields(r)[2].clone())
        .collect();
    assert_eq!(seqs, ["1", "2", "3", "4"], "seq continues from the topic");
}
