#!/usr/bin/env bash
# The main job, end to end on this machine: build the tools, start a throw-away Kafka-API broker and
# NTP server (scripts/testenv.sh), then
#   1. three producers with the prototype's clock profiles (A: exact; B: +100 ms, +0.1 ms/s, ±5 ms;
#      C: -50 ms, -0.05 ms/s, ±3 ms) take turns on topic `time-sync`, each reading what the others
#      wrote before replying (--observe), so their vector-stamped messages form real happened-before
#      chains across partitions;
#   2. a causal consumer (--delivery causal --analyze-ordering) delivers every message in causal order
#      and prints its ordering report: physical time contradicting causality, per-node clock offset
#      estimates, the skew warning for B only.
# With KAFKA_BOOTSTRAP set (e.g. the docker-compose cluster), it uses that cluster instead.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${KTS_BOOTSTRAP:-}" ] && [ -z "${KAFKA_BOOTSTRAP:-}" ]; then
    exec scripts/testenv.sh run -- "$0" "$@"
fi
BOOTSTRAP="${KAFKA_BOOTSTRAP:-$KTS_BOOTSTRAP}"

echo "== building kafka-producer and kafka-consumer"
cargo build --locked --quiet --bins
BIN="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug"

TOPIC="time-sync-scenario-$(date +%s)"
STATE=$(mktemp -d "${TMPDIR:-/tmp}/kts-scenario.XXXXXX")
trap 'rm -rf "$STATE"' EXIT
ROUNDS="${ROUNDS:-4}"

produce() { # node, message, extra flags...
    local node=$1 msg=$2; shift 2
    "$BIN/kafka-producer" --bootstrap "$BOOTSTRAP" --state-dir "$STATE" --node-id "$node" \
        --clock-type vector --observe --create-topic 3 "$@" "$TOPIC" "$msg" | sed "s/^/  /"
}

echo "== $ROUNDS rounds of A → B → C on topic $TOPIC (broker $BOOTSTRAP)"
for r in $(seq 1 "$ROUNDS"); do
    produce A "round $r: A asks"
    produce B "round $r: B answers A" --simulate-skew 100 --simulate-drift 0.1 --random-variation 5 --simulation-seed "$r"
    produce C "round $r: C answers B" --simulate-skew -50 --simulate-drift -0.05 --random-variation 3 --simulation-seed "$r"
done

echo
echo "== causal consumer: every message in causal order, then the ordering report"
"$BIN/kafka-consumer" --bootstrap "$BOOTSTRAP" --group "scenario-$$" --from-beginning \
    --delivery causal --analyze-ordering --max-skew-ms 75 --idle-timeout 3 "$TOPIC"
