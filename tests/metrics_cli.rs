//! `--metrics-addr`: the binaries serve Prometheus metrics while they run. Scraped over HTTP
//! against the real broker and NTP server of the test environment.

mod common;
mod reliability_support;

use common::{create_topic, produce_raw, wait_until, TIMEOUT};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

const PRODUCER: &str = env!("CARGO_BIN_EXE_kafka-producer");
const CONSUMER: &str = env!("CARGO_BIN_EXE_kafka-consumer");

/// A causal consumer of `topic` from its beginning, in `group`, serving metrics on `port`, with
/// `extra` flags; it stops after 60 s without news (the tests kill it sooner).
fn spawn_consumer(group: &str, extra: &[&str], port: u16, topic: &str) -> std::process::Child {
    Command::new(CONSUMER)
        .args(["--bootstrap", &common::bootstrap(), "--group", group])
        .args(["--from-beginning", "--delivery", "causal"])
        .args(extra)
        .args(["--idle-timeout", "60", "--format", "json"])
        .args(["--metrics-addr", &format!("127.0.0.1:{port}"), topic])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn kafka-consumer")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// GET /metrics; None while nothing listens yet.
fn scrape(port: u16) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    body.starts_with("HTTP/1.1 200").then_some(body)
}

/// The value of the first sample line of `name` (exact metric name, no labels).
fn value(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

#[test]
fn producer_serves_produced_count_and_sync_figures() {
    let topic = create_topic("metrics", 3);
    let port = free_port();
    let mut child = Command::new(PRODUCER)
        .args([
            "--bootstrap",
            &common::bootstrap(),
            "--no-state",
            "--node-id",
            "M",
        ])
        .args(["--enable-ntp", "--ntp-server", &common::ntp_server()])
        .args([
            "--simulate-skew",
            "200",
            "--metrics-addr",
            &format!("127.0.0.1:{port}"),
        ])
        .args(["--format", "json", &topic])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn kafka-producer");
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for i in 0..3 {
        writeln!(stdin, "line {i}").unwrap();
        stdin.flush().unwrap();
        let line = lines.next().expect("a delivery report").unwrap();
        assert!(line.contains("\"event\":\"delivered\""), "{line}");
    }
    let mut text = String::new();
    wait_until("metrics show 3 produced messages", TIMEOUT, || {
        text = scrape(port).unwrap_or_default();
        value(&text, "kafka_timesync_messages_produced_total") == Some(3.0)
    });
    // The first sync measured the simulated +200 ms (the offset is the correction: about -0.2 s).
    let offset = value(&text, "kafka_timesync_clock_offset_seconds").expect("offset sample");
    assert!(
        (offset + 0.2).abs() < 0.01,
        "offset {offset} s, expected about -0.2 s\n{text}"
    );
    let delay = value(&text, "kafka_timesync_clock_delay_seconds").expect("delay sample");
    assert!((0.0..0.5).contains(&delay), "delay {delay}\n{text}");
    let since = value(&text, "kafka_timesync_time_since_last_sync_seconds").expect("since");
    assert!(
        since.is_finite() && since >= 0.0,
        "since last sync {since}\n{text}"
    );
    drop(stdin);
    let status = child.wait().expect("producer exits");
    assert!(status.success(), "{status}");
}

#[test]
fn consumer_serves_delivered_malformed_and_violation_counts() {
    let topic = create_topic("metrics-consumer", 3);
    let out = common::run(
        PRODUCER,
        &[
            "--bootstrap",
            &common::bootstrap(),
            "--no-state",
            "--node-id",
            "P",
            "--clock-type",
            "vector",
            "--count",
            "5",
            &topic,
        ],
        None,
        TIMEOUT,
    );
    assert!(out.success(), "{}", out.stderr);
    common::produce_raw(&topic, &[(Some(0), "junk", b"not json at all")]);

    let port = free_port();
    let mut child = spawn_consumer("metrics-test", &["--analyze-ordering"], port, &topic);
    let mut text = String::new();
    let mut seen = || {
        text = scrape(port).unwrap_or_default();
        value(&text, "kafka_timesync_messages_delivered_total") == Some(5.0)
            && value(&text, "kafka_timesync_messages_malformed_total") == Some(1.0)
    };
    let deadline = std::time::Instant::now() + TIMEOUT;
    while !seen() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("metrics never showed 5 delivered and 1 malformed:\n{text}");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        value(&text, "kafka_timesync_causal_buffer_depth"),
        Some(0.0),
        "{text}"
    );
    assert!(
        text.contains("kafka_timesync_violations_total{kind=\"physical_vs_causal\"} 0"),
        "every violation kind is exported, zero included:\n{text}"
    );
    assert_eq!(value(&text, TIMEOUT_RELEASES), Some(0.0), "{text}");
}

const TIMEOUT_RELEASES: &str = "kafka_timesync_released_early_total{reason=\"timeout\"}";

#[test]
fn consumer_counts_messages_released_early_by_reason() {
    let topic = create_topic("metrics-released", 1);
    // B's first message has seen A's first, which is never written: it waits out the timeout.
    let b1 = reliability_support::envelope_bytes("B", 1, &[("A", 1), ("B", 1)], "b1");
    produce_raw(&topic, &[(Some(0), "B", &b1)]);

    let port = free_port();
    let mut child = spawn_consumer(
        "metrics-released",
        &["--causal-timeout", "200"],
        port,
        &topic,
    );
    let mut text = String::new();
    let deadline = std::time::Instant::now() + TIMEOUT;
    // The release counters are fed last in an update: once this one shows, the rest has too.
    while value(&text, TIMEOUT_RELEASES) != Some(1.0) {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("metrics never showed the release by timeout:\n{text}");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        text = scrape(port).unwrap_or_default();
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        value(&text, "kafka_timesync_messages_delivered_total"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            "kafka_timesync_released_early_total{reason=\"buffer_full\"}"
        ),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            "kafka_timesync_violations_total{kind=\"released_early\"}"
        ),
        Some(1.0),
        "{text}"
    );
}
