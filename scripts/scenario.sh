#!/usr/bin/env bash
# The main job, end to end on this machine: build the tools, start a throw-away Apache Kafka and an
# NTP server (scripts/testenv.sh), then
#   1. three producers take turns on a fresh topic, each reading what the others wrote before
#      replying (--observe), so their vector-stamped messages form real happened-before chains
#      across partitions. A's clock is exact; B has the prototype's profile (+100 ms, +0.1 ms/s,
#      ±5 ms); C's runs 2 s slow (−2000 ms, −0.05 ms/s, ±3 ms), so its answers carry physical
#      timestamps *before* the messages they answer;
#   2. a causal consumer (--delivery causal --analyze-ordering) reads all partitions (arriving out
#      of causal order), delivers every message in causal order, and prints its ordering report:
#      arrivals before their causes, physical time contradicting causality (C), the per-node clock
#      offset estimates and the skew warnings (B and C, threshold 75 ms).
#
#   scripts/scenario.sh               on a one-node Apache Kafka started by scripts/testenv.sh
#   scripts/scenario.sh --brokers 3   on the three-node cluster of docker/docker-compose.kafka.yml
#                                     (booted from the jars; the topic gets 3 replicas)
# With KAFKA_BOOTSTRAP set (e.g. the docker-compose cluster itself), it uses that cluster instead.
set -euo pipefail
cd "$(dirname "$0")/.."

BROKERS=1
case "${1:-}" in
    --brokers) BROKERS=${2:-}; shift 2 ;;
    --brokers=*) BROKERS=${1#--brokers=}; shift ;;
    "") ;;
    *) echo "usage: scripts/scenario.sh [--brokers 1|3]" >&2; exit 2 ;;
esac
if [ -z "${KTS_BOOTSTRAP:-}" ] && [ -z "${KAFKA_BOOTSTRAP:-}" ]; then
    exec scripts/testenv.sh run --brokers "$BROKERS" -- "$0" --brokers "$BROKERS"
fi
BOOTSTRAP="${KAFKA_BOOTSTRAP:-$KTS_BOOTSTRAP}"
# Replicas: one per node, up to the three of the compose cluster.
REPLICAS=${KTS_BROKERS:-$(awk -F, '{ print (NF < 3 ? NF : 3) }' <<<"$BOOTSTRAP")}

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
        --clock-type vector --observe --create-topic 3 --replication-factor "$REPLICAS" "$@" \
        "$TOPIC" "$msg" | sed "s/^/  /"
}

echo "== $ROUNDS rounds of A → B → C on topic $TOPIC (brokers $BOOTSTRAP, $REPLICAS replica(s))"
for r in $(seq 1 "$ROUNDS"); do
    produce A "round $r: A asks"
    produce B "round $r: B answers A" --simulate-skew 100 --simulate-drift 0.1 --random-variation 5 --simulation-seed "$r"
    produce C "round $r: C answers B" --simulate-skew -2000 --simulate-drift -0.05 --random-variation 3 --simulation-seed "$r"
done

echo
echo "== causal consumer: every message in causal order, then the ordering report"
"$BIN/kafka-consumer" --bootstrap "$BOOTSTRAP" --group "scenario-$$" --from-beginning \
    --delivery causal --analyze-ordering --max-skew-ms 75 --idle-timeout 3 "$TOPIC"
