//! The library used without our binaries: `examples/causal_service.rs`, a service's own rdkafka
//! consumer loop, delivers a topic written out of causal order in causal order.
//!
//! Run through the test environment: `scripts/testenv.sh run -- cargo test --all-features --test
//! example_causal_service`.

mod common;
mod reliability_support;

use common::{RawRecord, TIMEOUT};
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

/// Builds the example with this test's cargo and profile (a no-op when `cargo test` already
/// built it) and returns the path of its executable.
fn build_example(name: &str) -> PathBuf {
    let mut cmd = Command::new(env!("CARGO"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR")).args([
        "build",
        "--example",
        name,
        "--message-format=json",
    ]);
    // This test requires every feature: the same set, so the library is not built again.
    cmd.arg("--all-features");
    if !cfg!(debug_assertions) {
        cmd.arg("--release");
    }
    let out = cmd.output().expect("run cargo build --example");
    assert!(
        out.status.success(),
        "cargo build --example {name} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == name)
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .unwrap_or_else(|| panic!("cargo reported no executable for example {name}"))
}

#[test]
fn the_example_service_delivers_a_reversed_topic_in_causal_order() {
    let topic = common::create_topic("example-causal", 1);
    // A conversation: b answers a's first message, a replies to b, c answers a's reply.
    let a1 = reliability_support::envelope("a", 1, &[("a", 1)], "hello");
    let b1 = reliability_support::envelope("b", 1, &[("a", 1), ("b", 1)], "re: hello");
    let a2 = reliability_support::envelope("a", 2, &[("a", 2), ("b", 1)], "re: re: hello");
    let c1 = reliability_support::envelope("c", 1, &[("a", 2), ("b", 1), ("c", 1)], "me too");
    // Written in reverse, one partition: every message is read before its predecessors, so each
    // must be held until a1 arrives last. Two of them in the header form (value = content).
    let (a1_json, a2_json) = (a1.encode(), a2.encode());
    let (b1_headers, c1_headers) = (common::stamp_headers(&b1), common::stamp_headers(&c1));
    let written = common::produce_with_headers(
        &topic,
        &[],
        &[
            RawRecord {
                partition: Some(0),
                key: Some("c"),
                value: c1.content.as_bytes(),
                headers: &c1_headers,
            },
            RawRecord {
                partition: Some(0),
                key: Some("a"),
                value: &a2_json,
                headers: &[],
            },
            RawRecord {
                partition: Some(0),
                key: Some("b"),
                value: b1.content.as_bytes(),
                headers: &b1_headers,
            },
            RawRecord {
                partition: Some(0),
                key: Some("a"),
                value: &a1_json,
                headers: &[],
            },
        ],
    );
    assert_eq!(written, [(0, 0), (0, 1), (0, 2), (0, 3)]);

    let example = build_example("causal_service");
    let group = format!("example-causal-{}", uuid::Uuid::new_v4().simple());
    let bootstrap = common::bootstrap();
    // A causal timeout far beyond the run: nothing may be released early.
    let out = common::run(
        &example,
        &[
            "--bootstrap",
            &bootstrap,
            "--topic",
            &topic,
            "--group",
            &group,
            "--max",
            "4",
            "--causal-timeout-ms",
            "600000",
        ],
        None,
        TIMEOUT,
    );
    out.assert_success();
    let lines = out.json_lines();
    let got: Vec<(&str, u64, &str, &str, i64)> = lines
        .iter()
        .map(|l| {
            (
                l["id"].as_str().expect("id"),
                l["vector_entry"].as_u64().expect("vector_entry"),
                l["release"].as_str().expect("release"),
                l["content"].as_str().expect("content"),
                l["offset"].as_i64().expect("offset"),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (a1.id.as_str(), 1, "ready", "hello", 3),
            (b1.id.as_str(), 1, "ready", "re: hello", 2),
            (a2.id.as_str(), 2, "ready", "re: re: hello", 1),
            (c1.id.as_str(), 1, "ready", "me too", 0),
        ],
        "stdout:\n{}\nstderr:\n{}",
        out.stdout,
        out.stderr
    );
}

#[test]
fn the_example_service_rejects_a_bad_command_line() {
    let example = build_example("causal_service");
    let out = common::run(&example, &["--max", "4"], None, TIMEOUT);
    assert_eq!(out.status.and_then(|s| s.code()), Some(2), "{out:?}");
    assert!(
        out.stderr.contains("--topic is required"),
        "stderr: {}",
        out.stderr
    );
    let out = common::run(&example, &["--topic", "t", "--max", "x"], None, TIMEOUT);
    assert_eq!(out.status.and_then(|s| s.code()), Some(2), "{out:?}");
    assert!(
        out.stderr.contains("--max: 'x' is not a whole number"),
        "stderr: {}",
        out.stderr
    );
}
