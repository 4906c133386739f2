//! Issue 7, "secrets" and "bad command lines", for both binaries: a `-X sasl.password=…` value
//! never appears in any output (logs, errors, `--help`); unknown flags, a clock type that does not
//! exist, a negative buffer size and an unreachable bootstrap address each give a clear one-line
//! error and a non-zero exit within a bounded time, with no panic and no hang.

mod common;
mod reliability_support;

use common::RunOutput;
use reliability_support::{CONSUMER, PRODUCER};
use std::time::{Duration, Instant};

const SECRET: &str = "Hunter2-Zq9xK7-never-print-me";
/// Nothing listens on TCP port 1 of the loopback address.
const UNREACHABLE: &str = "127.0.0.1:1";
/// The bound of a failing invocation, unreachable broker included.
const BOUND: Duration = Duration::from_secs(60);

fn name(bin: &str) -> &str {
    bin.rsplit('/').next().unwrap_or(bin)
}

/// Runs `bin args` with no `KAFKA_BOOTSTRAP` from the environment; returns the output and the
/// wall time it took.
fn run(bin: &str, args: &[&str]) -> (RunOutput, Duration) {
    let start = Instant::now();
    let out = common::run_with_env(bin, args, &[("KAFKA_BOOTSTRAP", UNREACHABLE)], None, BOUND);
    (out, start.elapsed())
}

/// A failing invocation: non-zero exit (not killed), within [`BOUND`], no panic, and exactly one
/// stderr line saying "error" that contains every one of `mentions`.
fn assert_clear_failure(bin: &str, args: &[&str], mentions: &[&str]) -> String {
    let (out, took) = run(bin, args);
    let what = format!("{} {}", name(bin), args.join(" "));
    let shown = format!(
        "{what}: status {:?} after {took:?}\nstderr:\n{}\nstdout:\n{}",
        out.status, out.stderr, out.stdout
    );
    assert!(!out.timed_out, "hung for {BOUND:?}: {shown}");
    assert!(
        out.status
            .is_some_and(|s| !s.success() && s.code().is_some()),
        "expected a non-zero exit code: {shown}"
    );
    assert!(!out.stderr.contains("panicked"), "panic: {shown}");
    let errors: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.to_ascii_lowercase().contains("error"))
        .collect();
    assert_eq!(errors.len(), 1, "expected one error line: {shown}");
    for m in mentions {
        assert!(
            errors[0].contains(m),
            "the error line does not mention {m:?}: {shown}"
        );
    }
    errors[0].to_string()
}

#[test]
fn unknown_flags_are_one_line_errors() {
    for bin in [PRODUCER, CONSUMER] {
        assert_clear_failure(bin, &["--frobnicate", "t"], &["--frobnicate"]);
    }
}

#[test]
fn unknown_clock_type_is_a_one_line_error() {
    let line = assert_clear_failure(
        PRODUCER,
        &["--clock-type", "quantum", "t", "x"],
        &["quantum"],
    );
    // The error says what would have been valid.
    for valid in ["physical", "logical", "vector", "hybrid"] {
        assert!(line.contains(valid), "{line:?} does not list {valid}");
    }
}

#[test]
fn negative_or_zero_buffer_size_is_a_one_line_error() {
    assert_clear_failure(CONSUMER, &["--buffer-size", "-5", "t"], &["-5"]);
    assert_clear_failure(CONSUMER, &["--buffer-size=-5", "t"], &["-5"]);
    assert_clear_failure(CONSUMER, &["--buffer-size", "0", "t"], &["buffer-size"]);
}

#[test]
fn other_nonsense_values_are_one_line_errors() {
    assert_clear_failure(PRODUCER, &["--count", "-1", "t"], &["-1"]);
    assert_clear_failure(CONSUMER, &["--delivery", "sideways", "t"], &["sideways"]);
    assert_clear_failure(CONSUMER, &["--causal-timeout", "soon", "t"], &["soon"]);
    assert_clear_failure(
        PRODUCER,
        &["-X", "no-equals-sign", "t", "x"],
        &["KEY=VALUE"],
    );
}

#[test]
fn unreachable_bootstrap_fails_in_bounded_time() {
    let topic = "reliability-unreachable";
    for (bin, args) in [
        (
            PRODUCER,
            vec!["--bootstrap", UNREACHABLE, "--no-state", topic, "hello"],
        ),
        (
            CONSUMER,
            vec!["--bootstrap", UNREACHABLE, "--idle-timeout", "5", topic],
        ),
        (
            CONSUMER,
            vec![
                "--bootstrap",
                UNREACHABLE,
                "--delivery",
                "causal",
                "--format",
                "json",
                topic,
            ],
        ),
    ] {
        let line = assert_clear_failure(bin, &args, &[]);
        assert!(
            line.contains(UNREACHABLE) || line.to_ascii_lowercase().contains("reach"),
            "{} {}: the error does not say the broker is unreachable: {line}",
            name(bin),
            args.join(" ")
        );
    }
}

#[test]
fn secrets_never_appear_in_help_errors_or_logs() {
    let pw = format!("sasl.password={SECRET}");
    let cases: Vec<(&str, Vec<&str>)> = vec![
        // Help, with the secret on the command line too.
        (PRODUCER, vec!["-X", &pw, "--help"]),
        (CONSUMER, vec!["-X", &pw, "--help"]),
        // A usage error elsewhere on the same command line.
        (PRODUCER, vec!["-X", &pw, "--frobnicate", "t", "x"]),
        (CONSUMER, vec!["-X", &pw, "--frobnicate", "t"]),
        // An invalid SASL configuration (librdkafka rejects it, naming properties).
        (
            PRODUCER,
            vec![
                "-vv",
                "--bootstrap",
                UNREACHABLE,
                "--no-state",
                "-X",
                "security.protocol=SASL_PLAINTEXT",
                "-X",
                "sasl.mechanism=NOPE",
                "-X",
                &pw,
                "t",
                "x",
            ],
        ),
        (
            CONSUMER,
            vec![
                "--bootstrap",
                UNREACHABLE,
                "-X",
                "security.protocol=SASL_PLAINTEXT",
                "-X",
                "sasl.mechanism=NOPE",
                "-X",
                &pw,
                "t",
            ],
        ),
        // Unreachable broker with verbose logging: every log line is scrubbed.
        (
            PRODUCER,
            vec![
                "-vv",
                "--bootstrap",
                UNREACHABLE,
                "--no-state",
                "-X",
                "security.protocol=SASL_PLAINTEXT",
                "-X",
                "sasl.mechanism=PLAIN",
                "-X",
                "sasl.username=me",
                "-X",
                &pw,
                "t",
                "x",
            ],
        ),
        (
            CONSUMER,
            vec![
                "--bootstrap",
                UNREACHABLE,
                "--idle-timeout",
                "3",
                "-X",
                "security.protocol=SASL_PLAINTEXT",
                "-X",
                "sasl.mechanism=PLAIN",
                "-X",
                "sasl.username=me",
                "-X",
                &pw,
                "t",
            ],
        ),
    ];
    for (bin, args) in &cases {
        let (out, _) = run(bin, args);
        assert!(!out.timed_out, "{} {} hung", name(bin), args.join(" "));
        for (stream, text) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
            assert!(
                !text.contains(SECRET),
                "{} {}: the password appears on {stream}:\n{text}",
                name(bin),
                args.join(" ")
            );
        }
        assert!(!out.stderr.contains("panicked"), "panic:\n{}", out.stderr);
    }
}
