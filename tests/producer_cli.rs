//! kafka-producer against the real broker of the test environment (`KTS_BOOTSTRAP`), topics with
//! 3 partitions. Run: `scripts/testenv.sh run -- cargo test --test producer_cli`.

mod common;

use common::watched::Watched;
use common::{create_topic, read_all, run, run_with_env, RunOutput, TopicRecord, TIMEOUT};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_kafka-producer");

fn producer(args: &[&str]) -> RunOutput {
    let bs = common::bootstrap();
    let mut all = vec!["--bootstrap", bs.as_str()];
    all.extend_from_slice(args);
    run(BIN, &all, None, TIMEOUT)
}

fn producer_stdin(args: &[&str], input: &str) -> RunOutput {
    let bs = common::bootstrap();
    let mut all = vec!["--bootstrap", bs.as_str()];
    all.extend_from_slice(args);
    run(BIN, &all, Some(input.as_bytes()), TIMEOUT)
}

fn envelopes(records: &[TopicRecord]) -> Vec<Value> {
    records.iter().map(TopicRecord::json).collect()
}

fn ts(v: &Value) -> &Value {
    &v["timestamp"]
}

#[test]
fn one_message_round_trip_with_json_delivery_report() {
    let topic = create_topic("prod-one", 3);
    let out = producer(&[
        "--no-state",
        "--node-id",
        "A",
        "--clock-type",
        "logical",
        "--format",
        "json",
        &topic,
        "hello",
    ]);
    out.assert_success();
    let lines = out.json_lines();
    assert_eq!(lines.len(), 1, "one delivery report: {}", out.stdout);
    let rep = &lines[0];
    assert_eq!(rep["event"], "delivered");
    let recs = read_all(&topic);
    assert_eq!(recs.len(), 1);
    let (r, e) = (&recs[0], recs[0].json());
    assert_eq!(rep["id"], e["id"]);
    assert_eq!(rep["partition"], json!(r.partition));
    assert_eq!(rep["offset"], json!(r.offset));
    assert_eq!(r.key_str(), "A", "key defaults to the node id");
    assert_eq!(e["content"], "hello");
    assert_eq!(e["seq"], 1);
    assert_eq!(ts(&e)["node_id"], "A");
    assert_eq!(ts(&e)["clock_type"], "logical");
    assert_eq!(ts(&e)["logical_time"], 1);
    assert!(e.get("simulated_skew_ms").is_none());
}

#[test]
fn each_clock_type_stamps_its_fields() {
    let topic = create_topic("prod-types", 3);
    for ct in ["physical", "logical", "vector", "hybrid"] {
        producer(&[
            "--no-state",
            "--node-id",
            ct,
            "--clock-type",
            ct,
            &topic,
            ct,
        ])
        .assert_success();
    }
    producer(&[
        "--no-state",
        "--node-id",
        "skewed",
        "--simulate-skew",
        "250",
        &topic,
        "s",
    ])
    .assert_success();
    let records = read_all(&topic);
    // Every record's Kafka timestamp (CreateTime) is its envelope's `timestamp`, the host clock:
    // for the skewed node too, whose physical_time runs 250 ms ahead.
    for r in &records {
        let e = r.json();
        let want = (ts(&e)["timestamp"].as_f64().expect("timestamp") * 1e3).round() as i64;
        assert_eq!(r.timestamp, Some(want), "{e}");
    }
    let all = envelopes(&records);
    let by_node = |n: &str| {
        all.iter()
            .find(|e| ts(e)["node_id"] == n)
            .unwrap_or_else(|| panic!("no message of {n}"))
            .clone()
    };
    let v = by_node("vector");
    assert_eq!(ts(&v)["vector_time"], json!({"vector": 1}));
    let h = by_node("hybrid");
    let wall = ts(&h)["hybrid_time"]["wall_ms"]
        .as_u64()
        .expect("hybrid_time.wall_ms");
    let phys_ms = ts(&h)["physical_time"].as_f64().unwrap() * 1e3;
    assert!(
        (wall as f64 - phys_ms).abs() < 1_000.0,
        "HLC wall {wall} near physical {phys_ms}"
    );
    for n in ["physical", "logical"] {
        let e = by_node(n);
        assert!(
            ts(&e).get("vector_time").is_none() && ts(&e).get("hybrid_time").is_none(),
            "{e}"
        );
        assert_eq!(ts(&e)["clock_type"], n);
    }
    let s = by_node("skewed");
    assert_eq!(s["simulated_skew_ms"], 250.0);
    let ahead =
        (ts(&s)["physical_time"].as_f64().unwrap() - ts(&s)["timestamp"].as_f64().unwrap()) * 1e3;
    assert!(
        (ahead - 250.0).abs() < 1.0,
        "physical_time is 250 ms ahead of system time, got {ahead}"
    );
}

#[test]
fn observe_gives_the_issue_lamport_and_vector_values() {
    for (ct, check) in [("logical", false), ("vector", true)] {
        let topic = create_topic("prod-observe", 3);
        producer_stdin(
            &["--no-state", "--node-id", "A", "--clock-type", ct, &topic],
            "1\n2\n3\n",
        )
        .assert_success();
        let a = envelopes(&read_all(&topic));
        let lamports: Vec<u64> = a
            .iter()
            .map(|e| ts(e)["logical_time"].as_u64().unwrap())
            .collect();
        assert_eq!(
            lamports,
            vec![1, 2, 3],
            "A's three messages are in one partition, in order"
        );
        producer(&[
            "--no-state",
            "--observe",
            "--node-id",
            "B",
            "--clock-type",
            ct,
            &topic,
            "x",
        ])
        .assert_success();
        let all = envelopes(&read_all(&topic));
        let b: Vec<&Value> = all.iter().filter(|e| ts(e)["node_id"] == "B").collect();
        assert_eq!(b.len(), 1);
        assert_eq!(
            ts(b[0])["logical_time"],
            5,
            "three receives (→4) then the send (→5)"
        );
        if check {
            assert_eq!(ts(b[0])["vector_time"], json!({"A": 3, "B": 1}));
        }
    }
}

#[test]
fn stdin_lines_are_streamed_one_message_each_in_order() {
    let topic = create_topic("prod-stdin", 3);
    let lines: Vec<String> = (0..500)
        .map(|i| match i % 50 {
            7 => String::new(),
            9 => format!("ünïcødé {i} \"quoted\" \\ back"),
            _ => format!("line {i}"),
        })
        .collect();
    let mut input = lines.join("\n");
    input.push_str("\r\n"); // CRLF on the last line
    let out = producer_stdin(
        &["--no-state", "--node-id", "S", "--format", "json", &topic],
        &input,
    );
    out.assert_success();
    assert_eq!(out.json_lines().len(), 500);
    let recs = read_all(&topic);
    assert_eq!(recs.len(), 500);
    assert!(
        recs.iter().all(|r| r.partition == recs[0].partition),
        "one node, one partition"
    );
    let es = envelopes(&recs);
    let contents: Vec<&str> = es.iter().map(|e| e["content"].as_str().unwrap()).collect();
    assert_eq!(
        contents,
        lines.iter().map(String::as_str).collect::<Vec<_>>()
    );
    let seqs: Vec<u64> = es.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=500).collect::<Vec<_>>());
}

#[test]
fn synthetic_load_delivers_every_message_once() {
    let topic = create_topic("prod-count", 3);
    let out = producer(&[
        "--no-state",
        "--node-id",
        "L",
        "--clock-type",
        "vector",
        "--count",
        "3000",
        "--size",
        "300",
        "--format",
        "json",
        &topic,
    ]);
    out.assert_success();
    let reports = out.json_lines();
    assert_eq!(reports.len(), 3000);
    let ids: HashSet<&str> = reports.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 3000, "distinct ids");
    assert!(
        out.stderr.contains("msgs/s"),
        "rate reported: {}",
        out.stderr
    );
    let es = envelopes(&read_all(&topic));
    assert_eq!(es.len(), 3000);
    assert!(es
        .iter()
        .all(|e| e["content"].as_str().unwrap().len() == 300));
    let own: Vec<u64> = es
        .iter()
        .map(|e| ts(e)["vector_time"]["L"].as_u64().unwrap())
        .collect();
    assert_eq!(
        own,
        (1..=3000).collect::<Vec<_>>(),
        "vector own entry counts sends"
    );
}

#[test]
fn key_flag_overrides_the_node_id() {
    let topic = create_topic("prod-key", 3);
    producer(&[
        "--no-state",
        "--node-id",
        "A",
        "--key",
        "custom",
        &topic,
        "m",
    ])
    .assert_success();
    assert_eq!(read_all(&topic)[0].key_str(), "custom");
}

#[test]
fn state_continues_clocks_across_invocations() {
    let topic = create_topic("prod-state", 3);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    for m in ["one", "two"] {
        producer(&[
            "--state-dir",
            d,
            "--node-id",
            "P",
            "--clock-type",
            "vector",
            &topic,
            m,
        ])
        .assert_success();
    }
    producer_stdin(
        &[
            "--state-dir",
            d,
            "--node-id",
            "P",
            "--clock-type",
            "vector",
            &topic,
        ],
        "three\nfour\n",
    )
    .assert_success();
    let es = envelopes(&read_all(&topic));
    let got: Vec<(u64, u64, u64)> = es
        .iter()
        .map(|e| {
            (
                e["seq"].as_u64().unwrap(),
                ts(e)["logical_time"].as_u64().unwrap(),
                ts(e)["vector_time"]["P"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![(1, 1, 1), (2, 2, 2), (3, 3, 3), (4, 4, 4)],
        "clean exits continue without gaps"
    );
    // --no-state leaves the file alone, yet continues from the node's last record in the topic;
    // the file (exact, seq 4) then yields to the newer record.
    producer(&["--no-state", "--node-id", "P", &topic, "fresh"]).assert_success();
    producer(&[
        "--state-dir",
        d,
        "--node-id",
        "P",
        "--clock-type",
        "vector",
        &topic,
        "five",
    ])
    .assert_success();
    let es = envelopes(&read_all(&topic));
    let fresh = es.iter().find(|e| e["content"] == "fresh").unwrap();
    assert_eq!(fresh["seq"], 5);
    let five = es.iter().find(|e| e["content"] == "five").unwrap();
    assert_eq!(five["seq"], 6);
    assert_eq!(ts(five)["vector_time"]["P"], 6);
}

/// A producer reading stdin (written with `write_line`), watched while it runs.
fn streaming(args: &[&str]) -> Watched {
    let bs = common::bootstrap();
    let all = [&["--bootstrap", bs.as_str()], args].concat();
    Watched::spawn_with("kafka-producer", BIN, &all, true, &[])
}

#[test]
fn a_second_live_process_with_the_same_node_id_is_refused() {
    let topic = create_topic("prod-lock", 3);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let mut first = streaming(&["--state-dir", d, "--node-id", "L", &topic]);
    first.write_line("hello");
    first.wait_stdout("delivered", 1, TIMEOUT);
    let second = producer(&["--state-dir", d, "--node-id", "L", &topic, "x"]);
    assert!(!second.success() && !second.timed_out);
    assert!(
        second.stderr.contains("already in use"),
        "{}",
        second.stderr
    );
    assert_eq!(
        second.stderr.trim().lines().count(),
        1,
        "one-line error: {}",
        second.stderr
    );
    // End of input: the first exits cleanly.
    first.wait(TIMEOUT).assert_success();
    producer(&["--state-dir", d, "--node-id", "L", &topic, "after"]).assert_success();
    assert_eq!(read_all(&topic).len(), 2);
}

#[test]
fn sigkilled_producer_restarts_with_clocks_that_never_go_backwards() {
    let topic = create_topic("prod-kill", 3);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let mut max_seen = (0u64, 0u64, 0u64);
    for round in 0..3 {
        let mut p = streaming(&[
            "--state-dir",
            d,
            "--node-id",
            "K",
            "--clock-type",
            "vector",
            &topic,
        ]);
        for i in 0..20 {
            p.write_line(&format!("r{round} m{i}"));
        }
        p.wait_stdout("delivered", 20, TIMEOUT);
        p.kill9();
        let es = envelopes(&read_all(&topic));
        let mine: Vec<&Value> = es
            .iter()
            .filter(|e| {
                e["content"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("r{round} "))
            })
            .collect();
        assert_eq!(mine.len(), 20, "round {round}: all 20 delivered");
        let first = mine[0];
        let (s, l, v) = (
            first["seq"].as_u64().unwrap(),
            ts(first)["logical_time"].as_u64().unwrap(),
            ts(first)["vector_time"]["K"].as_u64().unwrap(),
        );
        assert!(
            s > max_seen.0 && l > max_seen.1 && v > max_seen.2,
            "round {round}: ({s},{l},{v}) after {max_seen:?}"
        );
        for e in &mine {
            max_seen.0 = max_seen.0.max(e["seq"].as_u64().unwrap());
            max_seen.1 = max_seen.1.max(ts(e)["logical_time"].as_u64().unwrap());
            max_seen.2 = max_seen.2.max(ts(e)["vector_time"]["K"].as_u64().unwrap());
        }
    }
}

#[test]
fn a_producer_started_right_after_its_topic_is_created_waits_for_the_leaders() {
    // Its read-back of the node's last record and --observe read every partition's watermarks;
    // right after the creation is accepted the partitions have no leader yet (with 300
    // partitions, on the test broker; the producer starts more slowly than the consumer). Both
    // wait for them: no error, no read-back warning (librdkafka may still log the leaderless
    // moment).
    for round in 0..2 {
        let topic = common::unique_topic("prod-fresh");
        assert!(common::request_topic(&topic, 300, 1, &[]));
        let out = producer(&["--no-state", "--observe", "--node-id", "F", &topic, "x"]);
        assert!(
            out.success() && !out.stderr.contains("cannot read back"),
            "round {round}: {:?}\n{}",
            out.status,
            out.stderr
        );
        assert_eq!(read_all(&topic).len(), 1, "round {round}");
        common::delete_topic(&topic);
    }
}

#[test]
fn missing_topic_is_a_clear_one_line_error() {
    let out = producer(&["--no-state", "no-such-topic-for-kafka-timesync", "x"]);
    assert!(!out.timed_out, "{out:?}");
    assert_eq!(out.status.and_then(|s| s.code()), Some(1), "{}", out.stderr);
    // It says how to fix it: the broker does not create topics on first use.
    assert_eq!(
        out.stderr.trim(),
        "kafka-producer: error: topic 'no-such-topic-for-kafka-timesync' does not exist and is \
         not created on first use: create it with kafka-producer --create-topic N \
         no-such-topic-for-kafka-timesync (N partitions)"
    );
}

#[test]
fn create_topic_creates_a_missing_topic_with_the_partitions_asked_for() {
    let topic = common::unique_topic("created");
    let out = producer(&["--no-state", "--create-topic", "3", &topic, "first"]);
    assert!(out.success(), "{}", out.stderr);
    let admin = kafka_timesync::kafka::Admin::new(&common::settings()).expect("admin");
    assert_eq!(admin.partitions(&topic).expect("partitions").len(), 3);
    // A second run on the now existing topic is fine and appends.
    let out = producer(&["--no-state", "--create-topic", "3", &topic, "second"]);
    assert!(out.success(), "{}", out.stderr);
    let contents: Vec<String> = read_all(&topic)
        .iter()
        .map(|r| {
            serde_json::from_slice::<Value>(r.payload.as_deref().unwrap()).unwrap()["content"]
                .to_string()
        })
        .collect();
    assert_eq!(contents.len(), 2, "{contents:?}");
}

#[test]
fn unreachable_bootstrap_fails_in_bounded_time_with_a_clear_error() {
    let started = Instant::now();
    let out = run(
        BIN,
        &["--bootstrap", "127.0.0.1:1", "--no-state", "t", "x"],
        None,
        Duration::from_secs(60),
    );
    assert!(!out.timed_out, "must not hang");
    assert!(!out.success());
    assert!(
        started.elapsed() < Duration::from_secs(45),
        "took {:?}",
        started.elapsed()
    );
    let last = out.stderr.trim().lines().last().unwrap_or_default();
    assert!(
        last.starts_with("kafka-producer: error:") && last.contains("bootstrap"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("panicked"));
}

#[test]
fn secret_values_never_appear_in_any_output() {
    let secret = "s3cr3t-Value-42";
    let pw = format!("sasl.password={secret}");
    // Unreachable broker with SASL settings and full debug logging.
    let out = run_with_env(
        BIN,
        &[
            "--bootstrap",
            "127.0.0.1:1",
            "--no-state",
            "-vv",
            "-X",
            "security.protocol=SASL_PLAINTEXT",
            "-X",
            "sasl.mechanism=PLAIN",
            "-X",
            "sasl.username=u",
            "-X",
            &pw,
            "t",
            "x",
        ],
        &[("RUST_LOG", "debug")],
        None,
        Duration::from_secs(60),
    );
    assert!(!out.success());
    assert!(
        !out.stdout.contains(secret) && !out.stderr.contains(secret),
        "secret leaked:\n{}\n{}",
        out.stdout,
        out.stderr
    );
    // An invalid value for a secret property, and a usage error next to one.
    for args in [
        vec![
            "--no-state",
            "-X",
            "sasl.oauthbearer.config=s3cr3t-Value-42",
            "-X",
            "sasl.mechanism=NOPE",
            "t",
            "x",
        ],
        vec!["--bogus", "-X", &pw, "t", "x"],
        vec!["-X", "s3cr3t-Value-42", "t", "x"],
    ] {
        let out = run(BIN, &args, None, Duration::from_secs(60));
        assert!(!out.success());
        assert!(
            !out.stderr.contains(secret) && !out.stdout.contains(secret),
            "secret leaked for {args:?}:\n{}",
            out.stderr
        );
    }
}

#[test]
fn bad_command_lines_give_one_line_errors() {
    for (args, expect) in [
        (vec!["--bogus-flag", "t"], "--bogus-flag"),
        (vec!["--clock-type", "sundial", "t", "x"], "sundial"),
        (vec!["--count", "-5", "t"], "-5"),
        (vec!["--size", "3", "t"], "--count"),
        (
            vec!["--no-state", "--state-dir", "/tmp", "t", "x"],
            "--state-dir",
        ),
        (vec![], "TOPIC"),
    ] {
        let out = run(BIN, &args, None, Duration::from_secs(30));
        assert!(
            !out.timed_out && out.status.and_then(|s| s.code()) == Some(2),
            "{args:?}: {out:?}"
        );
        let err = out.stderr.trim();
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(expect), "{args:?}: {err}");
        assert!(!err.contains("panicked"));
    }
    let help = run(BIN, &["--help"], None, Duration::from_secs(30));
    assert!(help.success());
    for flag in [
        "--bootstrap",
        "--node-id",
        "--clock-type",
        "--enable-ntp",
        "--ntp-server",
        "--sync-interval",
        "--simulate-skew",
        "--simulate-drift",
        "--random-variation",
        "--key",
        "-X",
        "--config",
        "--observe",
        "--state-dir",
        "--no-state",
        "--format",
        "--count",
        "--size",
        "--envelope",
        "--value-file",
        "Examples:",
    ] {
        assert!(help.stdout.contains(flag), "--help lacks {flag}");
    }
}

/// Runs the producer with `args` and expects a usage error (exit 2) whose one stderr line
/// contains every one of `mentions`.
fn assert_usage_error(args: &[&str], mentions: &[&str]) {
    let out = run(BIN, args, None, Duration::from_secs(30));
    assert!(
        !out.timed_out && out.status.and_then(|s| s.code()) == Some(2),
        "{args:?}: {out:?}"
    );
    let err = out.stderr.trim();
    assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    assert!(
        err.starts_with("kafka-producer: error: "),
        "{args:?}: {err}"
    );
    for m in mentions {
        assert!(err.contains(m), "{args:?}: {err} lacks {m:?}");
    }
}

#[test]
fn a_kafka_property_librdkafka_refuses_is_a_usage_error_by_flag_or_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kafka.toml");
    std::fs::write(&path, "[kafka]\n\"acks\" = \"sometimes\"\n").unwrap();
    let path = path.to_str().unwrap();
    for args in [
        &["-X", "acks=sometimes", "--no-state", "t", "x"][..],
        &["--config", path, "--no-state", "t", "x"],
    ] {
        assert_usage_error(args, &["cannot create Kafka", "acks=sometimes"]);
    }
    assert_usage_error(
        &["-X", "acks", "--no-state", "t", "x"],
        &["invalid Kafka property"],
    );
}

#[test]
fn simulation_flags_out_of_range_and_malformed_ntp_servers_are_usage_errors() {
    let day = "-86400000..=86400000 ms";
    for (args, mentions) in [
        (
            vec!["--simulate-skew", "1e308"],
            vec!["--simulate-skew", "1e308 is outside", day],
        ),
        (
            vec!["--simulate-skew", "-86400001"],
            vec!["--simulate-skew", day],
        ),
        (
            vec!["--simulate-skew", "nan"],
            vec!["--simulate-skew", "NaN is outside"],
        ),
        (
            vec!["--simulate-drift", "501"],
            vec!["--simulate-drift", "-500..=500 ms/s"],
        ),
        (
            vec!["--simulate-drift=-inf"],
            vec!["--simulate-drift", "-inf is outside"],
        ),
        (
            vec!["--random-variation", "-1"],
            vec!["--random-variation", "0..=86400000 ms"],
        ),
        (
            vec!["--random-variation", "inf"],
            vec!["--random-variation", "inf is outside"],
        ),
        (
            vec!["--random-variation", "five"],
            vec!["'five' is not a number"],
        ),
        (
            vec!["--enable-ntp", "--ntp-server", "999.1.1.1:99999"],
            vec!["--ntp-server", "port 99999 is not in 1..=65535"],
        ),
        // Checked after parsing, against the config key's range, but still named and exit 2.
        (
            vec!["--sync-interval", "0"],
            vec!["--sync-interval: must be a positive number of seconds, got 0"],
        ),
        (
            vec!["--ntp-server", "999.1.1.1"],
            vec!["--ntp-server", "'999.1.1.1' is not an IPv4 address"],
        ),
    ] {
        let mut all = args.clone();
        all.extend(["--no-state", "t", "x"]);
        assert_usage_error(&all, &mentions);
    }
    // The same bounds hold for the config keys, with the same exit status (the file and key
    // named).
    let dir = tempfile::tempdir().unwrap();
    for (toml, mention) in [
        (
            "[simulation]\nskew_ms = 1e308\n",
            "simulation.skew_ms: 1e308 is outside",
        ),
        (
            "[simulation]\ndrift_ms_per_s = -600\n",
            "simulation.drift_ms_per_s: -600 is outside",
        ),
        (
            "ntp_servers = [\"999.1.1.1:99999\"]\n",
            "ntp_servers: entry 1 (\"999.1.1.1:99999\"): port 99999 is not in 1..=65535",
        ),
        (
            "logical_clock_enabled = false\n",
            "logical_clock_enabled: false is not supported",
        ),
    ] {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, toml).unwrap();
        let out = run(
            BIN,
            &["--config", path.to_str().unwrap(), "--no-state", "t", "x"],
            None,
            Duration::from_secs(30),
        );
        assert_eq!(
            out.status.and_then(|s| s.code()),
            Some(2),
            "{toml}: {out:?}"
        );
        let err = out.stderr.trim();
        assert_eq!(err.lines().count(), 1, "{toml}: {err}");
        let expect = format!("kafka-producer: error: {}: {mention}", path.display());
        assert!(err.starts_with(&expect), "{toml}: {err}");
    }
}

#[test]
fn an_unreachable_well_formed_ntp_server_and_a_retired_key_are_only_warnings() {
    let topic = create_topic("prod-ntp-unreachable", 3);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("prototype.toml");
    // The prototype's example file sets the retired key to its default.
    std::fs::write(&path, "logical_clock_enabled = true\n").unwrap();
    // Nothing answers NTP on the loopback's port 9 (discard).
    let out = producer(&[
        "--config",
        path.to_str().unwrap(),
        "--no-state",
        "--enable-ntp",
        "--ntp-server",
        "127.0.0.1:9",
        &topic,
        "unsynchronised",
    ]);
    out.assert_success();
    assert!(
        out.stderr.contains("no initial synchronisation"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(&format!(
            "kafka-producer: warning: {}: logical_clock_enabled is deprecated and ignored",
            path.display()
        )),
        "{}",
        out.stderr
    );
    let e = read_all(&topic)[0].json();
    assert_eq!(e["content"], "unsynchronised");
    assert_eq!(ts(&e)["logical_time"], 1);
}

#[test]
fn a_message_that_cannot_be_delivered_fails_the_run_with_the_reason() {
    let topic = create_topic("prod-fail", 3);
    // Larger than librdkafka's message.max.bytes (1 MB by default).
    let out = producer(&["--no-state", "--count", "1", "--size", "2000000", &topic]);
    assert!(!out.success() && !out.timed_out);
    let last = out.stderr.trim().lines().last().unwrap_or_default();
    assert!(
        last.contains("1 of 1 messages not delivered") && last.contains("too large"),
        "{}",
        out.stderr
    );
}

#[test]
fn config_file_supplies_bootstrap_node_and_kafka_properties() {
    let topic = create_topic("prod-config", 3);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kts.toml");
    std::fs::write(
        &path,
        format!("bootstrap = \"{}\"\nnode_id = \"from-file\"\nclock_type = \"logical\"\n[kafka]\n\"linger.ms\" = 1\n", common::bootstrap()),
    )
    .unwrap();
    let out = run(
        BIN,
        &[
            "--config",
            path.to_str().unwrap(),
            "--no-state",
            &topic,
            "cfg",
        ],
        None,
        TIMEOUT,
    );
    out.assert_success();
    let e = read_all(&topic)[0].json();
    assert_eq!(ts(&e)["node_id"], "from-file");
    assert_eq!(ts(&e)["clock_type"], "logical");
}

#[test]
fn enable_ntp_synchronises_before_the_first_message() {
    let topic = create_topic("prod-ntp", 3);
    let ntp = common::ntp_server();
    let out = producer(&[
        "--no-state",
        "--enable-ntp",
        "--ntp-server",
        &ntp,
        "--simulate-skew",
        "300",
        "-v",
        &topic,
        "synced",
    ]);
    out.assert_success();
    assert!(
        out.stderr.contains("initial synchronisation done"),
        "{}",
        out.stderr
    );
    let e = read_all(&topic)[0].json();
    let err_ms =
        (ts(&e)["physical_time"].as_f64().unwrap() - ts(&e)["timestamp"].as_f64().unwrap()) * 1e3;
    assert!(
        err_ms.abs() < 300.0,
        "a 300 ms skew was being corrected before the first stamp: {err_ms} ms"
    );
}
