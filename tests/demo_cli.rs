//! End-to-end tests of `time_sync_demo`: every demo runs offline (no arguments: on a machine with
//! no network at all), is repeatable for a given seed,
//! checks its invariants (and fails when an algorithm is broken on purpose), writes legible SVG
//! charts, and carries its messages through the real broker with `--bootstrap`.

use serde_json::Value;
use std::io::Read;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_time_sync_demo");

/// The demos that need nothing outside the process (every one of them).
const OFFLINE: &[&str] = &[
    "skew", "logical", "ntp", "vector", "causal", "total", "mutex", "berkeley",
];

fn env_addr(var: &str) -> String {
    std::env::var(var)
        .unwrap_or_else(|_| panic!("{var} not set: run tests through scripts/testenv.sh"))
}

/// Runs the demo binary with a generous bounded timeout.
fn run(args: &[&str]) -> Output {
    run_command(Command::new(BIN).args(args))
}

/// Runs the demo binary in a network namespace of its own (`unshare -rn`): no interface is up,
/// not even loopback, so any DNS lookup or datagram fails at once.
fn run_without_network(args: &[&str]) -> Output {
    run_command(Command::new("unshare").args(["-rn", BIN]).args(args))
}

fn run_command(cmd: &mut Command) -> Output {
    let mut child = cmd
        .env_remove("KAFKA_BOOTSTRAP")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {cmd:?}: {e}"));
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let t_out = std::thread::spawn(move || {
        let mut v = vec![];
        let _ = out.read_to_end(&mut v);
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = vec![];
        let _ = err.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + Duration::from_secs(180);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{cmd:?} did not finish within 180 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: t_out.join().unwrap_or_default(),
        stderr: t_err.join().unwrap_or_default(),
    }
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn json_of(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
            text(o),
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

fn assert_all_checks_pass(doc: &Value, demo: &str) {
    assert_eq!(doc["ok"], true, "{demo}: {doc:#}");
    let demos = doc["demos"].as_array().expect("demos array");
    let d = demos
        .iter()
        .find(|d| d["demo"] == demo)
        .unwrap_or_else(|| panic!("{demo} missing"));
    let checks = d["checks"].as_array().expect("checks");
    assert!(!checks.is_empty(), "{demo} checked nothing");
    for c in checks {
        assert_eq!(c["ok"], true, "{demo}: {c}");
    }
}

#[test]
fn every_offline_demo_passes_its_invariants_and_speaks_json() {
    for demo in OFFLINE {
        let o = run(&["--demo", demo, "--format", "json", "--seed", "7"]);
        assert!(
            o.status.success(),
            "{demo} failed: {}\n{}",
            text(&o),
            String::from_utf8_lossy(&o.stderr)
        );
        let doc = json_of(&o);
        assert_eq!(doc["seed"], 7);
        assert_eq!(doc["demos"].as_array().map(Vec::len), Some(1));
        assert_all_checks_pass(&doc, demo);
    }
}

#[test]
fn same_seed_same_output_other_seed_other_schedule() {
    for demo in OFFLINE {
        let a = run(&["--demo", demo, "--seed", "1234"]);
        let b = run(&["--demo", demo, "--seed", "1234"]);
        assert!(a.status.success(), "{demo}: {}", text(&a));
        assert_eq!(text(&a), text(&b), "{demo}: same seed, different output");
        let ja = run(&["--demo", demo, "--seed", "1234", "--format", "json"]);
        let jb = run(&["--demo", demo, "--seed", "1234", "--format", "json"]);
        assert_eq!(text(&ja), text(&jb), "{demo}: same seed, different JSON");
    }
    // The seed really drives the network: another seed gives another mutex schedule.
    let a = text(&run(&["--demo", "mutex", "--seed", "1"]));
    let b = text(&run(&["--demo", "mutex", "--seed", "2"]));
    assert_ne!(a, b);
}

#[test]
fn text_output_explains_and_shows_the_expected_numbers() {
    let mutex = text(&run(&["--demo", "mutex"]));
    for want in [
        "{A:1, B:0, C:0}",
        "{A:1, B:1, C:0}",
        "{A:1, B:1, C:1}",
        "{A:2, B:1, C:1}",
        "3(N-1) = 6",
        "2(N-1) = 4",
    ] {
        assert!(mutex.contains(want), "mutex output lacks {want}:\n{mutex}");
    }
    let vector = text(&run(&["--demo", "vector"]));
    for want in [
        "(2,1,0)",
        "(4,3,0)",
        "m2 may causally precede m4",
        "(4,1,0)",
        "(2,3,0)",
        "may conflict",
    ] {
        assert!(
            vector.contains(want),
            "vector output lacks {want}:\n{vector}"
        );
    }
}

#[test]
fn a_broken_algorithm_makes_the_demo_fail() {
    for demo in ["mutex", "causal", "total"] {
        let o = run(&["--demo", demo, "--inject-fault"]);
        assert_eq!(
            o.status.code(),
            Some(1),
            "{demo} with a fault must exit 1:\n{}",
            text(&o)
        );
        let out = text(&o);
        assert!(out.contains("[FAIL]"), "{out}");
        assert!(out.contains("INVARIANT VIOLATED"), "{out}");
    }
}

#[test]
fn bad_arguments_are_rejected_with_a_clear_message() {
    let o = run(&["--demo", "sundial"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("invalid value 'sundial'"), "{err}");
}

/// Contents of every `<text>` element of an SVG.
fn svg_texts(svg: &str) -> Vec<String> {
    svg.split("<text")
        .skip(1)
        .filter_map(|t| {
            let body = &t[t.find('>')? + 1..];
            Some(body[..body.find("</text>")?].trim().to_string())
        })
        .collect()
}

#[test]
fn plot_writes_legible_svg_charts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().join("charts");
    let ds = d.to_str().expect("utf-8 path");
    for demo in ["skew", "causal", "berkeley"] {
        let o = run(&["--demo", demo, "--plot", ds]);
        assert!(
            o.status.success(),
            "{demo}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let read = |name: &str| {
        std::fs::read_to_string(d.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    let skew = svg_texts(&read("skew_clock_error.svg"));
    assert!(
        skew.iter().any(|t| t.starts_with("B (+100 ms")),
        "legend names node B: {skew:?}"
    );
    assert!(skew.iter().any(|t| t == "true time (s)"), "{skew:?}");
    let causal = svg_texts(&read("causal_space_time.svg"));
    for p in ["P1", "P2", "P3"] {
        assert!(
            causal.iter().any(|t| t == p),
            "row {p} labelled: {causal:?}"
        );
    }
    let labels = causal
        .iter()
        .filter(|t| t.starts_with('m') && t.contains('('))
        .count();
    assert_eq!(
        labels, 9,
        "every message labelled with its vector timestamp: {causal:?}"
    );
    let berkeley = svg_texts(&read("berkeley_clock_error.svg"));
    assert!(berkeley.iter().any(|t| t == "round 1"), "{berkeley:?}");
}

#[test]
fn with_no_arguments_every_demo_passes_on_a_machine_without_network() {
    // The sandbox really has no network: the real-server mode cannot reach even loopback.
    let o = run_without_network(&["--demo", "ntp", "--ntp-server", "127.0.0.1:123"]);
    assert!(
        !o.status.success(),
        "the network namespace let an NTP exchange through: {}",
        text(&o)
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no NTP exchange with 127.0.0.1:123"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    let o = run_without_network(&[]);
    assert!(
        o.status.success(),
        "{}\n{}",
        text(&o),
        String::from_utf8_lossy(&o.stderr)
    );
    let out = text(&o);
    for demo in OFFLINE {
        assert!(
            out.contains(&format!("== {demo} — ")),
            "{demo} did not run:\n{out}"
        );
    }
    assert!(
        out.contains("All invariants held (8 demo(s), seed 42)."),
        "{out}"
    );
    assert!(!out.contains("[FAIL]"), "{out}");
}

#[test]
fn without_network_the_ntp_demo_runs_in_virtual_time_and_plots() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ds = dir.path().to_str().expect("utf-8 path");
    let started = Instant::now();
    let o = run_without_network(&["--demo", "ntp", "--format", "json", "--plot", ds]);
    let took = started.elapsed();
    assert!(
        o.status.success(),
        "{}\n{}",
        text(&o),
        String::from_utf8_lossy(&o.stderr)
    );
    let doc = json_of(&o);
    assert_all_checks_pass(&doc, "ntp");
    let data = &doc["demos"][0]["data"];
    assert_eq!(data["simulated"], true);
    // Minutes of polling, in far less real time than that: the time is virtual.
    let rounds = data["rounds"].as_array().expect("rounds");
    let span_s = rounds.last().expect("a round")["t_s"]
        .as_f64()
        .expect("t_s");
    assert!(span_s >= 200.0, "{span_s} s of rounds");
    assert!(
        took.as_secs_f64() < span_s / 4.0,
        "{took:?} of real time for {span_s} s of rounds"
    );
    let texts =
        svg_texts(&std::fs::read_to_string(dir.path().join("ntp_clock_error.svg")).expect("chart"));
    assert!(
        texts.contains(&"SNTP discipline against a simulated server: clock error".to_string()),
        "{texts:?}"
    );
    for decision in ["step", "slew", "ignore"] {
        assert!(
            texts.iter().any(|t| t == decision),
            "{decision} marked: {texts:?}"
        );
    }
    assert!(dir.path().join("ntp_clock_error_after_step.svg").exists());
}

#[test]
fn the_offline_ntp_demo_shows_the_exchange_the_bound_and_every_decision() {
    let o = run(&["--demo", "ntp", "--format", "json"]);
    assert!(o.status.success(), "{}", text(&o));
    let doc = json_of(&o);
    let data = &doc["demos"][0]["data"];
    assert_eq!(data["simulated"], true);
    let ex = data["exchanges"].as_array().expect("exchanges");
    for e in ex {
        let x = &e["exchange"];
        let (t1, t2, t3, t4) = (
            x["t1_ns"].as_i64().unwrap(),
            x["t2_ns"].as_i64().unwrap(),
            x["t3_ns"].as_i64().unwrap(),
            x["t4_ns"].as_i64().unwrap(),
        );
        let (theta, delta) = (
            x["offset_ns"].as_i64().unwrap(),
            x["delay_ns"].as_i64().unwrap(),
        );
        // θ and δ from the four timestamps (±1 ns of rounding), and the truth within δ/2.
        assert!((theta - ((t2 - t1) + (t3 - t4)) / 2).abs() <= 1, "{e}");
        assert!((delta - ((t4 - t1) - (t3 - t2))).abs() <= 1, "{e}");
        let truth = e["true_offset_ns"].as_i64().unwrap();
        assert!((theta - truth).abs() <= delta / 2 + 1_000, "{e}");
    }
    let actions: Vec<&str> = data["rounds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["record"]["action"].as_str().unwrap_or("-"))
        .collect();
    assert_eq!(actions[0], "step", "{actions:?}");
    for want in ["slew", "ignore"] {
        assert!(actions.contains(&want), "{want} missing: {actions:?}");
    }
    let text = text(&run(&["--demo", "ntp"]));
    for want in [
        "T1 (ours)",
        "T4 (ours)",
        "θ (ms)",
        "δ (ms)",
        "±δ/2 (ms)",
        "drift estimate",
    ] {
        assert!(text.contains(want), "{want} missing:\n{text}");
    }
}

#[test]
fn ntp_demo_disciplines_a_skewed_drifting_clock_against_the_test_server() {
    let server = env_addr("KTS_NTP_SERVER");
    let dir = tempfile::tempdir().expect("tempdir");
    let ds = dir.path().to_str().expect("utf-8 path");
    let o = run(&[
        "--demo",
        "ntp",
        "--ntp-server",
        &server,
        "--format",
        "json",
        "--plot",
        ds,
    ]);
    assert!(
        o.status.success(),
        "{}\n{}",
        text(&o),
        String::from_utf8_lossy(&o.stderr)
    );
    let doc = json_of(&o);
    assert_all_checks_pass(&doc, "ntp");
    let data = &doc["demos"][0]["data"];
    let ex = data["exchanges"].as_array().expect("exchanges");
    let accepted: Vec<&Value> = ex
        .iter()
        .filter(|e| e["exchange"]["rejected"].is_null())
        .collect();
    assert!(accepted.len() >= 5, "{ex:?}");
    for e in accepted {
        for k in ["t1_ns", "t2_ns", "t3_ns", "t4_ns", "offset_ns", "delay_ns"] {
            assert!(e["exchange"][k].is_i64(), "{k} missing in {e}");
        }
    }
    assert_eq!(data["rounds"][0]["record"]["action"], "step");
    assert!(dir.path().join("ntp_clock_error.svg").exists());
}

fn broker_topics(bootstrap: &str) -> Vec<String> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let c: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("metadata client");
    let md = c
        .fetch_metadata(None, Duration::from_secs(10))
        .expect("metadata");
    md.topics().iter().map(|t| t.name().to_string()).collect()
}

#[test]
fn bootstrap_carries_the_same_exchanges_through_the_broker_and_cleans_up() {
    let bootstrap = env_addr("KTS_BOOTSTRAP");
    for demo in ["mutex", "causal", "total"] {
        let offline = text(&run(&["--demo", demo]));
        assert!(offline.contains("Invariants:"), "{demo}: no offline output");
        let o = run(&["--demo", demo, "--bootstrap", &bootstrap]);
        assert!(
            o.status.success(),
            "{demo}: {}\n{}",
            text(&o),
            String::from_utf8_lossy(&o.stderr)
        );
        let kafka = text(&o);
        let body = |s: &str| {
            s.lines()
                .filter(|l| !l.starts_with("Messages carried by"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(
            body(&offline),
            body(&kafka),
            "{demo}: the broker run must print the seeded run"
        );
        assert!(kafka.contains("records through topic kts-demo-"), "{kafka}");

        let j = run(&[
            "--demo",
            demo,
            "--bootstrap",
            &bootstrap,
            "--format",
            "json",
        ]);
        assert!(j.status.success());
        let doc = json_of(&j);
        assert_all_checks_pass(&doc, demo);
        let t = &doc["transport"];
        assert_eq!(t["kind"], "kafka");
        assert_eq!(t["topic_deleted"], true);
        let produced = t["records_produced"].as_u64().expect("count");
        assert!(produced > 0);
        assert_eq!(
            t["records_consumed"].as_u64(),
            Some(produced),
            "every record read back"
        );
        let topic = t["topic"].as_str().expect("topic").to_string();
        // Deletion propagates through metadata: wait for it (bounded).
        let deadline = Instant::now() + Duration::from_secs(60);
        while broker_topics(&bootstrap).contains(&topic) {
            assert!(
                Instant::now() < deadline,
                "topic {topic} still listed 60 s after the run"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

#[test]
fn an_unreachable_broker_is_a_clear_error() {
    let o = run(&["--demo", "mutex", "--bootstrap", "127.0.0.1:1"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.starts_with("time_sync_demo: error:"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
