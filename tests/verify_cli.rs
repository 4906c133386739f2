//! `kafka-consumer --verify` against the real broker of the test environment (`KTS_BOOTSTRAP`),
//! with every anomaly made to happen for real: records deleted with the DeleteRecords admin API
//! (lost_write), a send that timed out on a frozen broker and was written anyway (aborted_read),
//! forged and hand-edited acknowledgement logs (aborted_read, inconsistent_offset,
//! nonmonotonic_send), and a consumer SIGKILLed and restarted (a redelivery, not a
//! duplicate_write).
//!
//! Run: `scripts/testenv.sh run -- cargo test --all-features --test verify_cli`.

mod common;
mod reliability_support;

use common::{bootstrap, create_topic, RunOutput, TIMEOUT};
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use reliability_support::{broker_pid, FrozenBroker, Watched};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{RwLock, RwLockReadGuard};
use std::time::Duration;

const CONSUMER: &str = env!("CARGO_BIN_EXE_kafka-consumer");
const PRODUCER: &str = env!("CARGO_BIN_EXE_kafka-producer");

/// The test that freezes the shared broker runs alone; the others share it.
static BROKER: RwLock<()> = RwLock::new(());

fn shared_broker() -> RwLockReadGuard<'static, ()> {
    BROKER.read().unwrap_or_else(|p| p.into_inner())
}

/// Sends `count` synthetic messages as `node`; returns the acknowledgement log's lines.
fn produce(topic: &str, node: &str, count: u64) -> Vec<String> {
    produce_with(topic, node, count, &[])
}

/// [`produce`] with more producer arguments.
fn produce_with(topic: &str, node: &str, count: u64, extra: &[&str]) -> Vec<String> {
    let n = count.to_string();
    let bs = bootstrap();
    let mut args = vec![
        topic,
        "--bootstrap",
        &bs,
        "--node-id",
        node,
        "--no-state",
        "--count",
        &n,
        "--format",
        "json",
    ];
    args.extend_from_slice(extra);
    let out = common::run(PRODUCER, &args, None, TIMEOUT);
    out.assert_success();
    let lines: Vec<String> = out.stdout.lines().map(str::to_string).collect();
    assert_eq!(
        lines.len() as u64,
        count,
        "one event per message: {}",
        out.stdout
    );
    for l in &lines {
        let v: Value = serde_json::from_str(l).expect("JSON line");
        assert_eq!(v["event"], "delivered");
        assert_eq!(v["node"], node);
        assert!(
            v["seq"].as_u64().is_some() && v["offset"].as_i64().is_some(),
            "{l}"
        );
    }
    lines
}

fn write_log(dir: &Path, name: &str, lines: &[String]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, lines.join("\n") + "\n").expect("write log");
    path
}

/// A fresh consumer group whose coordinator answers (a broker that has just started loads the
/// offsets topic for a while, and the consumer does not retry its committed-offsets request).
fn ready_group(topic: &str) -> String {
    let group = format!("kts-verify-{}", uuid::Uuid::new_v4());
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .set("group.id", &group)
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, 0);
    common::wait_until("the group coordinator", TIMEOUT, || {
        consumer
            .committed_offsets(tpl.clone(), Duration::from_secs(5))
            .is_ok()
    });
    group
}

/// Runs the consumer with `--verify` for every log, in JSON, until it has read the `records` the
/// topic holds (`--max-messages`); a topic with none left to read ends on a 3 s idle timeout
/// (nothing can arrive, so its length does not matter).
fn verify(topic: &str, records: usize, logs: &[&Path], extra: &[&str]) -> RunOutput {
    let group = ready_group(topic);
    let end = if records == 0 {
        ["--idle-timeout".to_string(), "3".to_string()]
    } else {
        ["--max-messages".to_string(), records.to_string()]
    };
    let mut args: Vec<String> = vec![
        topic.into(),
        "--bootstrap".into(),
        bootstrap(),
        "--group".into(),
        group,
    ];
    args.extend(end);
    if !extra.contains(&"--format") {
        args.extend(["--format".into(), "json".into()]);
    }
    for l in logs {
        args.push("--verify".into());
        args.push(l.display().to_string());
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = common::run(CONSUMER, &args, None, TIMEOUT);
    assert!(!out.timed_out, "consumer timed out: {}", out.stderr);
    out
}

fn summary_of(out: &RunOutput) -> Value {
    let lines = out.json_lines();
    let last = lines.last().expect("output").clone();
    assert_eq!(last["event"], "summary", "{}", out.stderr);
    last["verify"].clone()
}

fn violations<'a>(lines: &'a [Value], kind: &str) -> Vec<&'a Value> {
    lines
        .iter()
        .filter(|l| l["event"] == "violation" && l["kind"] == kind)
        .collect()
}

fn exit_code(out: &RunOutput) -> i32 {
    out.status.and_then(|s| s.code()).unwrap_or(-1)
}

/// The verify counts as (acknowledged, delivered, unseen, lost).
fn accounting(v: &Value) -> (u64, u64, u64, u64) {
    let n = |k: &str| v[k].as_u64().unwrap_or_else(|| panic!("{k} in {v}"));
    (n("acknowledged"), n("delivered"), n("unseen"), n("lost"))
}

/// Moves the start of `partition`'s log to `before` (DeleteRecords).
fn delete_records(topic: &str, partition: i32, before: i64) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap())
        .create()
        .expect("admin client");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(before))
        .expect("partition offset");
    let res =
        common::block_on(admin.delete_records(&tpl, &AdminOptions::new())).expect("DeleteRecords");
    for e in res.elements() {
        assert!(e.error().is_ok(), "DeleteRecords {e:?}");
    }
}

#[test]
fn deleted_acknowledged_records_are_exactly_the_lost_writes() {
    let _broker = shared_broker();
    let topic = create_topic("verify-delete", 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let acks = produce(&topic, "v-del", 300);
    let log = write_log(dir.path(), "acks.jsonl", &acks);

    // Nothing removed: every acknowledged write is read where it was acknowledged.
    let out = verify(&topic, 300, &[&log], &[]);
    assert_eq!(exit_code(&out), 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(accounting(&summary_of(&out)), (300, 300, 0, 0));

    // DeleteRecords below offset 100: exactly the writes acknowledged there are lost.
    delete_records(&topic, 0, 100);
    let out = verify(&topic, 200, &[&log], &[]);
    assert_eq!(exit_code(&out), 3, "loss exits 3: {}", out.stderr);
    let lines = out.json_lines();
    let lost: BTreeSet<String> = violations(&lines, "lost_write")
        .iter()
        .map(|v| {
            assert_eq!(v["partition"], 0);
            v["ids"][0].as_str().expect("id").to_string()
        })
        .collect();
    let expected: BTreeSet<String> = acks
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).expect("json"))
        .filter(|v| v["offset"].as_i64().expect("offset") < 100)
        .map(|v| v["id"].as_str().expect("id").to_string())
        .collect();
    assert_eq!(expected.len(), 100);
    assert_eq!(lost, expected);
    let v = summary_of(&out);
    assert_eq!(accounting(&v), (300, 200, 0, 100));
    assert_eq!(v["violations"]["lost_write"], 100);
    assert_eq!(v["violations"]["inconsistent_offset"], 0);

    // Everything deleted: nothing is read, and the log start says all of it is gone.
    delete_records(&topic, 0, 300);
    let out = verify(&topic, 0, &[&log], &["--format", "text"]);
    assert_eq!(exit_code(&out), 3, "{}", out.stderr);
    assert_eq!(out.stdout.matches("!! lost_write").count(), 300);
    assert!(out.stdout.contains("── verify ──"), "{}", out.stdout);
    assert!(out.stdout.contains("verdict: LOSS"), "{}", out.stdout);
}

#[test]
fn a_header_stamped_topic_verifies_like_an_enveloped_one() {
    let _broker = shared_broker();
    let topic = create_topic("verify-headers", 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let acks = produce_with(&topic, "v-hdr", 200, &["--envelope", "headers"]);
    // Each acknowledgement names its record's id (the kts-id header), all distinct.
    let ids: BTreeSet<String> = acks
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).expect("json")["id"].to_string())
        .collect();
    assert_eq!(ids.len(), 200, "distinct ids: {acks:?}");
    assert!(!ids.contains("\"\""), "an empty id: {acks:?}");
    let log = write_log(dir.path(), "acks.jsonl", &acks);
    let out = verify(&topic, 200, &[&log], &[]);
    assert_eq!(exit_code(&out), 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(accounting(&summary_of(&out)), (200, 200, 0, 0));

    // A lost header-stamped write is found by its id like an enveloped one.
    delete_records(&topic, 0, 50);
    let out = verify(&topic, 150, &[&log], &[]);
    assert_eq!(exit_code(&out), 3, "loss exits 3: {}", out.stderr);
    assert_eq!(accounting(&summary_of(&out)), (200, 150, 0, 50));
}

#[test]
fn forged_and_edited_logs_reveal_aborted_reads_inconsistent_offsets_and_nonmonotonic_sends() {
    let _broker = shared_broker();
    let topic = create_topic("verify-forged", 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let acks = produce(&topic, "v-forge", 50);
    let parsed: Vec<Value> = acks
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let at = |o: i64| {
        parsed
            .iter()
            .position(|v| v["offset"] == o)
            .expect("offset in log")
    };

    // aborted_read from a forged log: it says the send at offset 10 failed, yet it is there.
    let mut forged = acks.clone();
    let (i10, id10) = (at(10), parsed[at(10)]["id"].as_str().unwrap().to_string());
    forged[i10] = serde_json::json!({
        "event": "failed", "id": id10, "node": "v-forge", "seq": parsed[i10]["seq"],
        "error": "Local: Message timed out"
    })
    .to_string();
    let log = write_log(dir.path(), "forged.jsonl", &forged);
    let out = verify(&topic, 50, &[&log], &[]);
    assert_eq!(
        exit_code(&out),
        4,
        "violations without loss exit 4: {}",
        out.stderr
    );
    let lines = out.json_lines();
    let aborted = violations(&lines, "aborted_read");
    assert_eq!(aborted.len(), 1, "{}", out.stdout);
    assert_eq!(aborted[0]["ids"][0], id10.as_str());
    assert_eq!(aborted[0]["offsets"][0], 10);
    let v = summary_of(&out);
    assert_eq!(accounting(&v), (49, 49, 0, 0));
    assert_eq!(v["failed_sends"], 1);

    // inconsistent_offset: the ids acknowledged at offsets 20 and 21 swapped.
    let mut edited = acks.clone();
    let (i20, i21) = (at(20), at(21));
    let (a, b) = (parsed[i20]["id"].clone(), parsed[i21]["id"].clone());
    let mut e20 = parsed[i20].clone();
    let mut e21 = parsed[i21].clone();
    e20["id"] = b;
    e21["id"] = a;
    edited[i20] = e20.to_string();
    edited[i21] = e21.to_string();
    let log = write_log(dir.path(), "swapped.jsonl", &edited);
    let out = verify(&topic, 50, &[&log], &[]);
    assert_eq!(exit_code(&out), 3, "{}", out.stderr);
    let lines = out.json_lines();
    let offsets: Vec<i64> = violations(&lines, "inconsistent_offset")
        .iter()
        .map(|v| v["offsets"][0].as_i64().unwrap())
        .collect();
    assert_eq!(offsets, vec![20, 21]);
    assert!(violations(&lines, "duplicate_write").is_empty());
    assert_eq!(accounting(&summary_of(&out)), (50, 48, 0, 2));

    // nonmonotonic_send: the seqs acknowledged at offsets 30 and 31 swapped.
    let mut edited = acks.clone();
    let (i30, i31) = (at(30), at(31));
    let mut e30 = parsed[i30].clone();
    let mut e31 = parsed[i31].clone();
    e30["seq"] = parsed[i31]["seq"].clone();
    e31["seq"] = parsed[i30]["seq"].clone();
    edited[i30] = e30.to_string();
    edited[i31] = e31.to_string();
    let log = write_log(dir.path(), "reordered.jsonl", &edited);
    let out = verify(&topic, 50, &[&log], &[]);
    assert_eq!(exit_code(&out), 4, "{}", out.stderr);
    let lines = out.json_lines();
    let nm = violations(&lines, "nonmonotonic_send");
    assert_eq!(nm.len(), 1, "{}", out.stdout);
    assert_eq!(nm[0]["offsets"], serde_json::json!([30, 31]));
    assert_eq!(accounting(&summary_of(&out)), (50, 50, 0, 0));
}

#[test]
fn a_redelivery_after_a_consumer_sigkill_is_not_a_duplicate_write() {
    let _broker = shared_broker();
    let topic = create_topic("verify-redelivery", 2);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut acks = produce(&topic, "v-re-1", 400);
    acks.extend(produce(&topic, "v-re-2", 400));
    let log = write_log(dir.path(), "acks.jsonl", &acks);
    let group = ready_group(&topic);
    let bs = bootstrap();
    let base = [
        topic.as_str(),
        "--bootstrap",
        &bs,
        "--group",
        &group,
        "--format",
        "json",
        // Manual assignment: resumes from the group's commit without joining the group, so a
        // killed run leaves no member behind.
        "--delivery",
        "causal",
    ];
    let delivered_ids = |events: &[Value]| -> Vec<String> {
        events
            .iter()
            .filter(|e| e["event"] == "deliver")
            .map(|e| e["message"]["id"].as_str().expect("id").to_string())
            .collect()
    };

    // Run 0 commits 300 deliveries and exits.
    let run0: Vec<&str> = base
        .iter()
        .copied()
        .chain(["--max-messages", "300"])
        .collect();
    let out = common::run(CONSUMER, &run0, None, TIMEOUT);
    out.assert_success();

    // Run 1 delivers the rest (at least the 500 not delivered by run 0) but never commits
    // (auto-commit off), and is SIGKILLed.
    let run1: Vec<&str> = base
        .iter()
        .copied()
        .chain(["-X", "enable.auto.commit=false"])
        .collect();
    let mut first = Watched::spawn("consumer-1", CONSUMER, &run1);
    first.wait_stdout("\"event\":\"deliver\"", 500, TIMEOUT);
    let killed = first.kill9();
    let run1_ids: BTreeSet<String> = delivered_ids(&killed.events()).into_iter().collect();
    assert!(run1_ids.len() >= 500, "{}", run1_ids.len());

    // Run 2 verifies: it reads every partition from its start, so it ends once it has delivered
    // all 800, run 1's deliveries among them again.
    let logs = log.display().to_string();
    let run2: Vec<&str> = base
        .iter()
        .copied()
        .chain(["--max-messages", "800", "--verify", &logs])
        .collect();
    let out = common::run(CONSUMER, &run2, None, TIMEOUT);
    assert_eq!(exit_code(&out), 0, "{}\n{}", out.stdout, out.stderr);
    let lines = out.json_lines();
    let again: BTreeSet<String> = delivered_ids(&lines).into_iter().collect();
    assert!(
        again.is_superset(&run1_ids),
        "run 2 redelivers what run 1 delivered and did not commit"
    );
    assert!(violations(&lines, "duplicate_write").is_empty());
    let v = summary_of(&out);
    assert_eq!(accounting(&v), (800, 800, 0, 0));
    assert_eq!(v["violations"]["duplicate_write"], 0);
}

#[test]
fn unusable_logs_and_flags_are_clear_errors() {
    let _broker = shared_broker();
    let topic = create_topic("verify-errors", 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("missing.jsonl");
    let out = verify(&topic, 0, &[&missing], &[]);
    assert_eq!(exit_code(&out), 1);
    assert!(out.stderr.contains("missing.jsonl"), "{}", out.stderr);

    let bad = write_log(
        dir.path(),
        "bad.jsonl",
        &["{\"event\":\"delivered\"}".into()],
    );
    let out = verify(&topic, 0, &[&bad], &[]);
    assert_eq!(exit_code(&out), 1);
    assert!(
        out.stderr.contains("bad.jsonl:1:") && out.stderr.lines().count() == 1,
        "{}",
        out.stderr
    );

    let out = verify(&topic, 0, &[&bad], &["--history", "5"]);
    assert_eq!(exit_code(&out), 2, "{}", out.stderr);
}

#[test]
fn acknowledged_writes_not_reached_are_unseen_not_lost() {
    let _broker = shared_broker();
    let topic = create_topic("verify-unseen", 1);
    let acks = produce(&topic, "v-unseen", 100);
    // Standard input as the log, and a consumer that stops after 40 messages.
    let bs = bootstrap();
    let group = ready_group(&topic);
    let input = acks.join("\n");
    let out = common::run(
        CONSUMER,
        &[
            &topic,
            "--bootstrap",
            &bs,
            "--group",
            &group,
            "--format",
            "json",
            "--verify",
            "-",
            "--max-messages",
            "40",
        ],
        Some(input.as_bytes()),
        TIMEOUT,
    );
    let v = summary_of(&out);
    let (ack, delivered, unseen, lost) = accounting(&v);
    assert_eq!((ack, lost), (100, 0));
    assert_eq!(delivered + unseen, 100);
    assert!(unseen > 0, "{v}");
    assert_eq!(v["unseen_by_partition"]["0"], unseen);
    assert_eq!(exit_code(&out), 5, "{}", out.stderr);
}

#[test]
fn a_send_that_timed_out_on_a_frozen_broker_and_was_written_anyway_is_an_aborted_read() {
    let _alone = BROKER.write().unwrap_or_else(|p| p.into_inner());
    let topic = create_topic("verify-aborted", 1);
    let bs = bootstrap();
    let mut producer = Watched::spawn_with(
        "producer",
        PRODUCER,
        &[
            &topic,
            "--bootstrap",
            &bs,
            "--node-id",
            "v-abort",
            "--no-state",
            "--format",
            "json",
            "-X",
            "message.timeout.ms=3000",
        ],
        true,
        &[],
    );
    producer.write_line("before the freeze");
    producer.wait_stdout("\"event\":\"delivered\"", 1, TIMEOUT);
    // The produce request reaches the frozen broker's socket; the producer gives up on it after
    // message.timeout.ms and reports the send failed; thawed, the broker writes it.
    let frozen = FrozenBroker::freeze(broker_pid());
    producer.write_line("while frozen");
    producer.wait_stdout("\"event\":\"failed\"", 1, TIMEOUT);
    frozen.thaw();
    let produced = producer.wait(TIMEOUT);
    assert!(!produced.success(), "the producer reports the failure");
    let events = produced.events();
    let failed: Vec<&Value> = events.iter().filter(|e| e["event"] == "failed").collect();
    assert_eq!(failed.len(), 1, "{}", produced.describe());
    assert!(failed[0]["error"]
        .as_str()
        .unwrap_or("")
        .contains("MessageTimedOut"));
    // The second message of the node: seq 2.
    assert_eq!(
        (&failed[0]["node"], &failed[0]["seq"]),
        (&"v-abort".into(), &2.into())
    );
    let lines: Vec<String> = events.iter().map(Value::to_string).collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let log = write_log(dir.path(), "acks.jsonl", &lines);

    // In the topic: the write before the freeze and the one that timed out.
    let out = verify(&topic, 2, &[&log], &[]);
    assert_eq!(exit_code(&out), 4, "{}\n{}", out.stdout, out.stderr);
    let lines = out.json_lines();
    let aborted = violations(&lines, "aborted_read");
    assert_eq!(aborted.len(), 1, "{}", out.stdout);
    assert_eq!(aborted[0]["ids"][0], failed[0]["id"]);
    assert_eq!(aborted[0]["offsets"][0], 1);
    let v = summary_of(&out);
    assert_eq!(accounting(&v), (1, 1, 0, 0));
    assert_eq!(v["failed_sends"], 1);
}

#[test]
fn a_send_refused_before_it_reached_the_broker_is_logged_failed_and_is_no_aborted_read() {
    let _broker = shared_broker();
    let topic = create_topic("verify-refused", 1);
    let bs = bootstrap();
    // Larger than librdkafka's message.max.bytes (1 MB by default): refused by the client.
    let out = common::run(
        PRODUCER,
        &[
            &topic,
            "--bootstrap",
            &bs,
            "--node-id",
            "v-refused",
            "--no-state",
            "--count",
            "1",
            "--size",
            "2000000",
            "--format",
            "json",
        ],
        None,
        TIMEOUT,
    );
    assert_eq!(exit_code(&out), 1, "{}", out.stderr);
    let events = out.json_lines();
    assert_eq!(events.len(), 1, "{}", out.stdout);
    let f = &events[0];
    assert_eq!(f["event"], "failed", "{f}");
    assert_eq!((&f["node"], &f["seq"]), (&"v-refused".into(), &1.into()));
    let id = f["id"].as_str().expect("id");
    assert!(uuid::Uuid::parse_str(id).is_ok(), "the envelope's id: {f}");
    assert!(
        f["error"].as_str().expect("error").contains("too large"),
        "{f}"
    );

    // Nothing was written: a failed send, no aborted_read, nothing to miss.
    let dir = tempfile::tempdir().expect("tempdir");
    let log = write_log(dir.path(), "acks.jsonl", &[f.to_string()]);
    let out = verify(&topic, 0, &[&log], &[]);
    assert_eq!(exit_code(&out), 0, "{}\n{}", out.stdout, out.stderr);
    let v = summary_of(&out);
    assert_eq!(accounting(&v), (0, 0, 0, 0));
    assert_eq!(v["failed_sends"], 1);
    assert_eq!(v["violations"]["aborted_read"], 0);
}

#[test]
fn a_message_written_twice_is_a_duplicate_write() {
    let _broker = shared_broker();
    let topic = create_topic("verify-twice", 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let acks = produce(&topic, "v-twice", 20);
    let log = write_log(dir.path(), "acks.jsonl", &acks);
    // The record at offset 5 written again, byte for byte, as a retried send without
    // idempotence writes it: it lands at offset 20.
    let records = common::read_all(&topic);
    let again = records[5].payload.clone().expect("payload");
    let id = records[5].json()["id"].as_str().expect("id").to_string();
    assert_eq!(
        common::produce_raw(&topic, &[(Some(0), "v-twice", &again)]),
        [(0, 20)]
    );

    let out = verify(&topic, 21, &[&log], &[]);
    assert_eq!(exit_code(&out), 4, "{}\n{}", out.stdout, out.stderr);
    let lines = out.json_lines();
    let dup = violations(&lines, "duplicate_write");
    assert_eq!(dup.len(), 1, "{}", out.stdout);
    assert_eq!(dup[0]["ids"][0], id.as_str());
    assert_eq!(dup[0]["offsets"], serde_json::json!([5, 20]));
    // Still every acknowledged write read where it was acknowledged: a duplicate, not a loss.
    let v = summary_of(&out);
    assert_eq!(accounting(&v), (20, 20, 0, 0));
    assert_eq!(v["redelivered"], 0);
}

#[test]
fn one_log_per_producer_one_of_them_on_standard_input() {
    let _broker = shared_broker();
    let topic = create_topic("verify-two-logs", 2);
    let dir = tempfile::tempdir().expect("tempdir");
    let first = produce(&topic, "v-two-1", 60);
    let second = produce(&topic, "v-two-2", 40);
    let log = write_log(dir.path(), "first.jsonl", &first);
    let bs = bootstrap();
    let group = ready_group(&topic);
    let logs = log.display().to_string();
    let args = [
        topic.as_str(),
        "--bootstrap",
        &bs,
        "--group",
        &group,
        "--format",
        "json",
        "--max-messages",
        "100",
        "--verify",
        &logs,
        "--verify",
        "-",
    ];
    let input = second.join("\n");
    let out = common::run(CONSUMER, &args, Some(input.as_bytes()), TIMEOUT);
    assert_eq!(exit_code(&out), 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(accounting(&summary_of(&out)), (100, 100, 0, 0));

    // Without the second producer's log its writes are simply not checked.
    let out = verify(&topic, 100, &[&log], &[]);
    assert_eq!(exit_code(&out), 0, "{}", out.stderr);
    assert_eq!(accounting(&summary_of(&out)), (60, 60, 0, 0));
}
