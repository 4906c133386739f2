//! Issue 7, "connection cut and restored": clients talk to the test broker through a TCP proxy
//! (its proxied listener advertises the proxy's address, so reconnections go through it too). The
//! proxy cuts every connection and refuses new ones for a few seconds, then forwards again —
//! once while only a producer is sending, once while a consumer is reading a live stream. Every
//! message is delivered exactly once (counted by id) and the producer exits 0.

mod common;
mod reliability_support;

use reliability_support::*;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CUT: Duration = Duration::from_secs(4);

fn producer(bootstrap: &str, topic: &str, node: &str) -> Watched {
    Watched::spawn_with(
        "kafka-producer",
        PRODUCER,
        &[
            topic,
            "--bootstrap",
            bootstrap,
            "--node-id",
            node,
            "--clock-type",
            "vector",
            "--no-state",
            "--format",
            "json",
        ],
        true,
        &[],
    )
}

fn consumer(bootstrap: &str, topic: &str, idle: &str) -> Watched {
    Watched::spawn(
        "kafka-consumer",
        CONSUMER,
        &[
            topic,
            "--bootstrap",
            bootstrap,
            "--group",
            &unique_node("proxy-group"),
            "--from-beginning",
            "--format",
            "json",
            "--idle-timeout",
            idle,
        ],
    )
}

#[test]
fn connection_cut_during_produce_loses_and_duplicates_nothing() {
    const LINES: usize = 5_000;
    let broker = ProxiedBroker::start();
    let (proxy, bootstrap) = (&broker.proxy, broker.bootstrap.as_str());
    let topic = common::create_topic("rel-proxy-produce", 3);
    let mut p = producer(bootstrap, &topic, &unique_node("proxy-p"));
    for i in 0..LINES / 2 {
        p.write_line(&format!("cut-produce-{i}"));
    }
    p.wait_stdout("\"delivered\"", 500, Duration::from_secs(120));
    let before = p.count_stdout("\"delivered\"");
    let cut_at = Instant::now();
    proxy.cut();
    for i in LINES / 2..LINES {
        p.write_line(&format!("cut-produce-{i}"));
    }
    while cut_at.elapsed() < CUT {
        std::thread::sleep(Duration::from_millis(100));
    }
    let during = p.count_stdout("\"delivered\"") - before;
    let connections_before = proxy.connections();
    proxy.restore();
    let p = p.wait(Duration::from_secs(120));
    let reconnections = proxy.connections() - connections_before;
    // Read it all back after the fault.
    let c = consumer(bootstrap, &topic, "8").wait(Duration::from_secs(180));
    // The second half was written after the cut: none of it can be acknowledged before the
    // connections are back, so the cut really stopped the stream and the rest went through the
    // reconnection.
    assert!(
        before + during <= LINES / 2,
        "{before} delivered before the cut and {during} during it: more than the {} written \
         before it, so the proxy did not cut the producer off",
        LINES / 2
    );
    assert!(
        reconnections > 0,
        "the producer never reconnected through the proxy"
    );
    assert_exactly_once(
        "cut during produce",
        LINES,
        &p,
        &c,
        &format!(
            "{before} delivered before the {CUT:?} cut, {during} during it, {reconnections} \
             reconnections after it"
        ),
    );
}

#[test]
fn connection_cut_during_consume_loses_and_duplicates_nothing() {
    const LINES: usize = 6_000;
    let broker = ProxiedBroker::start();
    let (proxy, bootstrap) = (&broker.proxy, broker.bootstrap.as_str());
    let topic = common::create_topic("rel-proxy-consume", 3);
    let mut c = consumer(bootstrap, &topic, "30");
    let mut p = producer(bootstrap, &topic, &unique_node("proxy-c"));
    // A live stream: lines at a steady pace. The first half is written before the cut, the
    // second from the moment it starts, so the consumer is mid-stream when the cut comes however
    // fast or slow the machine is.
    let cut_started = Arc::new(AtomicBool::new(false));
    let mut stdin = p.take_stdin();
    let writer = {
        let cut_started = Arc::clone(&cut_started);
        std::thread::spawn(move || {
            for i in 0..LINES {
                if i == LINES / 2 {
                    let waited = Instant::now();
                    while !cut_started.load(Ordering::SeqCst) {
                        if waited.elapsed() > Duration::from_secs(300) {
                            return i;
                        }
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
                if writeln!(stdin, "cut-consume-{i}").is_err() {
                    return i;
                }
                if i % 10 == 9 {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            LINES
        })
    };
    c.wait_stdout("\"deliver\"", 1_000, Duration::from_secs(120));
    let consumed_before = c.count_stdout("\"deliver\"");
    let cut_at = Instant::now();
    proxy.cut();
    cut_started.store(true, Ordering::SeqCst);
    while cut_at.elapsed() < CUT {
        std::thread::sleep(Duration::from_millis(100));
    }
    let consumed_during = c.count_stdout("\"deliver\"") - consumed_before;
    proxy.restore();
    let written = writer.join().expect("writer");
    let p = p.wait(Duration::from_secs(120));
    // The consumer exits 30 s after the last message.
    let c = c.wait(Duration::from_secs(240));
    assert_eq!(written, LINES, "the writer stopped early");
    // The producer was cut off too, so by the end of the cut the consumer can have delivered
    // only what was written before it: the second half came after the reconnection.
    assert!(
        consumed_before + consumed_during <= LINES / 2,
        "{consumed_before} delivered before the cut and {consumed_during} during it: more than \
         the {} written before it, so the proxy did not cut the clients off",
        LINES / 2
    );
    assert_exactly_once(
        "cut during consume",
        LINES,
        &p,
        &c,
        &format!(
            "consumer had delivered {consumed_before} before the {CUT:?} cut, {consumed_during} \
             during it"
        ),
    );
}
