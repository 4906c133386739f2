//! `--metrics-addr`: the binaries serve Prometheus metrics while they run. Scraped over HTTP
//! against the real broker and NTP server of the test environment.

mod common;

use common::{create_topic, wait_until, TIMEOUT};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

const PRODUCER: &str = env!("CARGO_BIN_EXE_kafka-producer");

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
