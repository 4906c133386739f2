//! Issue 7, "NTP server lost mid-run": a producer disciplined by its own private chronyd keeps
//! stamping with its last correction while the server is gone, warns once, and takes samples
//! again when the server answers again. The producer simulates a 300 ms fast clock, so a message
//! stamped without the correction would show it at once.

mod common;
mod reliability_support;

use reliability_support::*;
use std::time::{Duration, Instant};

const SKEW_MS: f64 = 300.0;
/// How far a corrected stamp may be from the host's clock (chronyd serves this host's clock).
const TOLERANCE_MS: f64 = 25.0;

/// (physical_time − timestamp) in ms of the delivered message with content `content`.
fn error_ms(records: &[common::TopicRecord], content: &str) -> f64 {
    let m = records
        .iter()
        .map(common::TopicRecord::json)
        .find(|m| m["content"] == content)
        .unwrap_or_else(|| panic!("message {content:?} not in the topic"));
    let ts = &m["timestamp"];
    (ts["physical_time"].as_f64().expect("physical_time")
        - ts["timestamp"].as_f64().expect("timestamp"))
        * 1000.0
}

/// Lines of the producer's stderr that are NTP warnings.
fn ntp_warnings(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter(|l| l.contains("WARN") && l.to_ascii_lowercase().contains("ntp"))
        .cloned()
        .collect()
}

#[test]
fn ntp_server_lost_mid_run_keeps_last_correction_warns_once_and_recovers() {
    let bootstrap = common::bootstrap();
    let topic = common::create_topic("rel-ntp", 3);
    let mut chrony = OwnChrony::start();
    let node = unique_node("ntp-loss");
    let server = chrony.addr();
    let skew = SKEW_MS.to_string();
    let mut producer = Watched::spawn_with(
        "kafka-producer",
        PRODUCER,
        &[
            &topic,
            "--bootstrap",
            &bootstrap,
            "--node-id",
            &node,
            "--clock-type",
            "hybrid",
            "--no-state",
            "--format",
            "json",
            "--enable-ntp",
            "--ntp-server",
            &server,
            "--sync-interval",
            "1",
            "--simulate-skew",
            &skew,
            // debug: every accepted NTP sample is logged, which is how recovery is observed.
            "-vv",
        ],
        true,
        &[],
    );
    let mut sent = 0usize;
    let mut send = |p: &mut Watched, phase: &str| {
        sent += 1;
        p.write_line(&format!("{phase}-{sent}"));
        p.wait_stdout("\"delivered\"", sent, Duration::from_secs(60));
        format!("{phase}-{sent}")
    };

    // Phase 1: synchronised.
    let synced = send(&mut producer, "synced");
    producer.wait_stderr("ntp sample accepted", Duration::from_secs(30));

    // Phase 2: the server disappears; keep stamping for several sync intervals.
    chrony.stop();
    let lost_at_line = producer.stderr().len();
    let outage = Instant::now();
    let mut lost = Vec::new();
    while outage.elapsed() < Duration::from_secs(8) {
        lost.push(send(&mut producer, "lost"));
        std::thread::sleep(Duration::from_millis(250));
    }
    // At least one failed round must have happened for the test to mean anything.
    wait_for(
        "a warning about the lost NTP server",
        Duration::from_secs(60),
        || (!ntp_warnings(&producer.stderr()[lost_at_line..]).is_empty()).then_some(()),
    );
    let outage_stderr: Vec<String> = producer.stderr()[lost_at_line..].to_vec();

    // Phase 3: the server answers again on the same port.
    chrony.resume();
    let back_at_line = producer.stderr().len();
    let back = Instant::now();
    let mut recovered = Vec::new();
    let recovered_after = loop {
        recovered.push(send(&mut producer, "back"));
        if producer.stderr()[back_at_line..]
            .iter()
            .any(|l| l.contains("ntp sample accepted"))
        {
            break back.elapsed();
        }
        assert!(
            back.elapsed() < Duration::from_secs(120),
            "no NTP sample accepted within 120 s of the server coming back; stderr since:\n{}",
            producer.stderr()[back_at_line..].join("\n")
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    let after = send(&mut producer, "after");
    let p = producer.wait(Duration::from_secs(60));
    p.assert_success();

    // Control: the same skew without NTP shows in the stamp, so the figures above are corrections.
    let control = format!("control-{node}");
    common::run(
        PRODUCER,
        &[
            &topic,
            "--bootstrap",
            &bootstrap,
            "--node-id",
            &format!("{node}-control"),
            "--clock-type",
            "hybrid",
            "--no-state",
            "--simulate-skew",
            &skew,
            &control,
        ],
        None,
        Duration::from_secs(60),
    )
    .assert_success();

    let records = common::read_all(&topic);
    let control_err = error_ms(&records, &control);
    assert!(
        (control_err - SKEW_MS).abs() < TOLERANCE_MS,
        "without NTP the stamp should show the simulated {SKEW_MS} ms, shows {control_err:.3} ms"
    );
    let records: Vec<common::TopicRecord> = records
        .into_iter()
        .filter(|r| r.json()["content"] != control.as_str())
        .collect();
    let all_sent = sent;
    assert_eq!(
        records.len(),
        all_sent,
        "sent {all_sent}, {} in the topic",
        records.len()
    );
    let synced_err = error_ms(&records, &synced);
    let lost_err: Vec<f64> = lost.iter().map(|c| error_ms(&records, c)).collect();
    let after_err = error_ms(&records, &after);
    let worst_lost = lost_err.iter().fold(0f64, |a, e| a.max(e.abs()));
    let warnings = ntp_warnings(&outage_stderr);
    let figures = format!(
        "simulated skew {SKEW_MS} ms; error of the stamp vs host clock: synced {synced_err:.3} ms (without NTP {control_err:.1} ms), \
         worst of {} stamped while the server was gone {worst_lost:.3} ms, after recovery \
         {after_err:.3} ms; NTP warnings during the outage: {}; samples again {:.1} s after the \
         server came back; messages sent {all_sent}, delivered {}, lost 0",
        lost.len(),
        warnings.len(),
        recovered_after.as_secs_f64(),
        records.len()
    );
    assert!(
        synced_err.abs() < TOLERANCE_MS,
        "not corrected when synced: {figures}"
    );
    assert!(
        worst_lost < TOLERANCE_MS,
        "the last correction was not kept while the server was gone: {figures}"
    );
    assert!(
        after_err.abs() < TOLERANCE_MS,
        "not corrected after recovery: {figures}"
    );
    assert_eq!(
        warnings.len(),
        1,
        "expected exactly one warning for the lost server: {figures}\nwarnings:\n{}",
        warnings.join("\n")
    );
    assert!(
        !p.stderr.iter().any(|l| l.contains("panicked")),
        "panic: {figures}"
    );
    eprintln!("ntp loss: {figures}");
}
